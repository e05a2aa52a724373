/* jit_cc.h: generated C as a loaded shared object, through the system's C compiler.
 *
 * `nnc run` compiles the code codegen/emit_c produced and calls it in-process.
 * This first implementation writes the source into a private temporary
 * directory, runs `$CC` (default `cc`) to build a shared object, dlopens it and
 * looks up the four entry points every generated model has. The shared
 * object is cached on disk (runtime/jit_cache.h; NNC_CACHE=off, NNC_CACHE_DIR):
 * the same sources, compile command, compiler and CPU load it from there. A later
 * implementation (in-process Clang/LLVM) keeps this interface: one load, one
 * unload, and an RtModel of function pointers.
 *
 * The compile line is
 *     $CC -std=c99 -O2 -fPIC -shared [-DNNC_USE_CBLAS -I<cblas dir>] -o lib.so model.c [-lopenblas] -lm
 * $CC is split on blanks ("ccache gcc" works). OpenBLAS is used when nnc was
 * built with it (CMake passes the directory of cblas.h as NNC_CBLAS_INCLUDE;
 * empty or undefined: no BLAS, and at run time that header must still exist)
 * only with NNC_JIT_BLAS=1, for inference models and training modules alike;
 * by default (or NNC_JIT_BLAS=0) their GEMMs run on nnc's own kernels. With gcc or clang (cc) on
 * x86-64 and AArch64 it compiles for the host's instruction set
 * (-march=native); NNC_JIT_NATIVE=0 turns that off. */
#ifndef NNC_RUNTIME_JIT_CC_H
#define NNC_RUNTIME_JIT_CC_H

#include <stddef.h>

#include "train_abi.h"

/* A loaded model. The `void *` stands for the generated model's own type
 * (struct PREFIX); the calls are those documented in the generated header. */
typedef struct RtModel {
    void *so;                                         /* dlopen handle, or an RtJit (kind 1) */
    int kind;                                         /* 0: loaded by rt_cc_load; 1: by the in-process JIT (runtime/jit.h) */
    int (*create)(void **m, const char *weights_safetensors, void *workspace);
    int (*create_from_memory)(void **m, const void *weights, size_t size, void *workspace);  /* the safetensors bytes */
    int (*forward_v)(void *m, int n, const float *const *inputs, float *const *outputs);
    const char *(*last_error)(const void *m);
    void (*destroy)(void *m);
} RtModel;

/* Compiles c_src (which #includes header_name, whose text is h_src) and loads
 * the entry points PREFIX_create, _create_from_memory, _forward_v, _last_error
 * and _destroy into
 * *out. Returns 0, or -1 with the reason in err (for a compile failure, the
 * compiler's messages). The temporary directory is removed either way. */
int rt_cc_load(const char *c_src, const char *h_src, const char *header_name, const char *prefix, RtModel *out,
               char *err, size_t errlen);

/* Unloads a model loaded by rt_cc_load (its instances must be destroyed first). */
void rt_cc_unload(RtModel *m);

/* The same for a training module (runtime/train_abi.h, codegen/emit_train.h):
 * compiles c_src as rt_cc_load does and fills *out with PREFIX_train_create,
 * _create_from_memory, _step, _eval, _set_trainable, _tensor_count, _tensor,
 * _get_step, _set_step, _max_batch, _last_error and _destroy. Returns 0, or
 * -1 with the reason in err (a missing entry point is named). */
int rt_cc_load_train(const char *c_src, const char *h_src, const char *header_name, const char *prefix,
                     RtTrainModule *out, char *err, size_t errlen);

/* Unloads a training module (its instances must be destroyed first). */
void rt_cc_unload_train(RtTrainModule *m);

#endif
