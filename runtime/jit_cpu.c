/* jit_cpu.c: libgcc's CPU model, for code the in-process JIT links
 * (runtime/jit_llvm.cpp).
 *
 * Clang compiles __builtin_cpu_supports("avx512f") into a read of the global
 * structure __cpu_model (and __cpu_features2) that libgcc's (or
 * compiler-rt's) __cpu_indicator_init fills at start-up. A shared object
 * built by `cc` links its own copy; JIT'd code has to find one in the
 * process, and the nnc executable has libgcc's linked in statically, but not
 * exported. These functions hand the JIT their addresses (the layouts of gcc
 * 12 and clang 14 agree: four unsigned ints, then feature words). */
#include "jit_cpu.h"

#if defined(__x86_64__) || defined(__i386__)
extern char __cpu_model[];
extern unsigned int __cpu_features2[];
extern int __cpu_indicator_init(void);

void *rt_jit_cpu_model(void)
{
    __builtin_cpu_init();  /* filled already by libgcc's constructor; harmless again */
    return (void *)__cpu_model;
}

void *rt_jit_cpu_features2(void) { return (void *)__cpu_features2; }

RtCpuInitFn rt_jit_cpu_init(void) { return __cpu_indicator_init; }
#else
void *rt_jit_cpu_model(void) { return 0; }
void *rt_jit_cpu_features2(void) { return 0; }
RtCpuInitFn rt_jit_cpu_init(void) { return 0; }
#endif
