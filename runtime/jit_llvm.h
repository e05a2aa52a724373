/* jit_llvm.h: C source compiled in memory by Clang and linked in process by
 * LLVM's ORC JIT (runtime/jit_llvm.cpp, the one C++ file of nnc; built only
 * when CMake finds Clang and LLVM 14, NNC_HAVE_LLVM_JIT).
 *
 * The compile is that of
 *     clang -c -std=c99 -O3 -march=native -fPIC -ffp-contract=off -fno-math-errno model.c
 * (the flags of runtime/jit_cc.c's cc line; -ffp-contract=off because clang,
 * unlike gcc -std=c99, contracts a*b+c into an FMA by default), run by the
 * Clang driver and cc1 inside this process on files that exist only in
 * memory: DIR/model.c and DIR/HEADER under a virtual directory. Its product is
 * an ELF relocatable object in memory, which rt_llvm_load links into an LLJIT
 * of its own: symbols not in the object come from the process (libc, libm,
 * pthreads) and, for __builtin_cpu_supports, from libgcc's __cpu_model that
 * runtime/jit_cpu.c exports (clang's code reads that structure, which the
 * nnc executable has but does not export). Every function returns 0, or -1
 * with the reason (for a compile, Clang's diagnostics) in err. */
#ifndef NNC_RUNTIME_JIT_LLVM_H
#define NNC_RUNTIME_JIT_LLVM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct RtJit RtJit;

/* What a compiled object depends on besides its source and flags, for the
 * cache key: "clang version 14.0.6 ...; x86_64-pc-linux-gnu; CPU; +feature,..." */
const char *rt_llvm_identity(void);

/* The fixed compile flags (space-separated), also part of the cache key. */
const char *rt_llvm_flags(void);

/* Compiles c_src (which #includes header_name, whose text is h_src) with the
 * flags above plus cflags_extra (space-separated driver flags, or NULL) into
 * an object; *obj (malloc'd, the caller frees it) and *len. */
int rt_llvm_compile_object(const char *c_src, const char *h_src, const char *header_name, const char *cflags_extra,
                           void **obj, size_t *len, char *err, size_t errlen);

/* Links an object (a copy is taken) into a new JIT; *out is its handle. Its
 * symbols are resolved, and its code made executable, by the first lookup. */
int rt_llvm_load(const void *obj, size_t len, RtJit **out, char *err, size_t errlen);

/* rt_llvm_compile_object then rt_llvm_load. */
int rt_llvm_compile(const char *c_src, const char *h_src, const char *header_name, const char *cflags_extra,
                    RtJit **out, char *err, size_t errlen);

/* The address of a function or variable of the module, or NULL (with the
 * reason in err, when err is not NULL: a missing symbol, or one the object
 * needs that nothing defines). */
void *rt_llvm_lookup(RtJit *j, const char *name, char *err, size_t errlen);

/* Frees the JIT and its code (the module's instances must be gone). */
void rt_llvm_free(RtJit *j);

#ifdef __cplusplus
}
#endif

#endif
