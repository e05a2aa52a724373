/* jit_cpu.h: the addresses of libgcc's __cpu_model, __cpu_features2 and
 * __cpu_indicator_init in this process (runtime/jit_cpu.c), or NULL where
 * the target has none (not x86). */
#ifndef NNC_RUNTIME_JIT_CPU_H
#define NNC_RUNTIME_JIT_CPU_H

#ifdef __cplusplus
extern "C" {
#endif

typedef int (*RtCpuInitFn)(void);
void *rt_jit_cpu_model(void);
void *rt_jit_cpu_features2(void);
RtCpuInitFn rt_jit_cpu_init(void);

#ifdef __cplusplus
}
#endif

#endif
