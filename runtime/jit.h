/* jit.h: generated C, compiled and loaded into this process.
 *
 * With Clang and LLVM at build time (CMake's NNC_JIT_LLVM, compile definition
 * NNC_HAVE_LLVM_JIT), rt_load compiles in memory and links with ORC
 * (runtime/jit_llvm.h), through the disk cache of compiled objects
 * (runtime/jit_cache.h): a source compiled once, with the same compiler,
 * flags and CPU, is loaded from its cached object the next time. Without
 * them, and at run time with NNC_JIT=cc (or NNC_JIT_BLAS=1: OpenBLAS is
 * linked by the cc path only), it is rt_cc_load: the system C compiler and
 * dlopen (runtime/jit_cc.h), its shared objects cached the same way. Same interface either way: the entry points in
 * an RtModel / RtTrainModule, whose `kind` says which loader to undo. */
#ifndef NNC_RUNTIME_JIT_H
#define NNC_RUNTIME_JIT_H

#include <stdbool.h>
#include <stddef.h>

#include "jit_cc.h"
#include "train_abi.h"

/* As rt_cc_load: compiles c_src (which #includes header_name, whose text is
 * h_src) and loads PREFIX_create, _forward_v, _last_error and _destroy. 0, or
 * -1 with the reason (the compiler's messages) in err. */
int rt_load(const char *c_src, const char *h_src, const char *header_name, const char *prefix, RtModel *out, char *err,
            size_t errlen);
void rt_unload(RtModel *m);

/* The address of another symbol of a loaded model (PREFIX_set_profile_hook),
 * from either loader (dlsym, or the in-process JIT's lookup); NULL when it
 * has none. */
void *rt_symbol(const RtModel *m, const char *name);

/* As rt_cc_load_train, for a training module. */
int rt_load_train(const char *c_src, const char *h_src, const char *header_name, const char *prefix,
                  RtTrainModule *out, char *err, size_t errlen);
void rt_unload_train(RtTrainModule *m);

/* Which JIT rt_load uses, for `nnc --version`: "clang/llvm 14 in process" or
 * "system C compiler (cc) and dlopen" (the built-in one; NNC_JIT=cc at run
 * time is said as such). */
const char *rt_jit_description(void);

/* Whether rt_load goes through the in-process JIT now: whenever it is built
 * in, except with NNC_JIT=cc or NNC_JIT_BLAS=1 (OpenBLAS is linked by the cc
 * path only). */
bool rt_jit_in_process(void);

#endif
