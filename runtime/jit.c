/* jit.c: rt_load, the in-process JIT with its disk cache, or the system C
 * compiler (jit.h). */
#include "jit.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef NNC_HAVE_LLVM_JIT
#include "jit_cache.h"
#include "jit_llvm.h"
#endif


bool rt_jit_in_process(void)
{
#ifdef NNC_HAVE_LLVM_JIT
    const char *jit = getenv("NNC_JIT"), *blas = getenv("NNC_JIT_BLAS");
    if (jit && strcmp(jit, "cc") == 0) return false;
    if (blas && strcmp(blas, "1") == 0) return false;  /* OpenBLAS is linked by the cc path */
    if (jit && strcmp(jit, "llvm") == 0) return true;
    /* Unset: the in-process JIT. Measured on 12-07 (2 threads, batch 1,
     * the two loaders alternating, 3 rounds each): its code ran as fast as
     * gcc 12's or faster (lenet5 0.015 against 0.030 ms, resnet18 8.85
     * against 9.90, resnet50 23.2 against 24.4, mobilenet_v2 3.85 against
     * 3.95), and it compiles sooner (no process, no temporary files). */
    return true;
#else
    return false;
#endif
}

const char *rt_jit_description(void)
{
#ifdef NNC_HAVE_LLVM_JIT
    return rt_jit_in_process() ? "clang/llvm 14 in process"
                               : "system C compiler (cc) and dlopen; clang/llvm 14 in process built in (the default; "
                                 "NNC_JIT=cc or NNC_JIT_BLAS=1 chose the system compiler)";
#else
    return "system C compiler (cc) and dlopen";
#endif
}

#ifdef NNC_HAVE_LLVM_JIT
static bool rt_jit_check_names(const char *header_name, const char *prefix, char *err, size_t errlen)
{
    size_t hl = strlen(header_name);
    if (hl < 3 || hl > 64 || strcmp(header_name + hl - 2, ".h") != 0 || strchr(header_name, '/') || header_name[0] == '.') {
        snprintf(err, errlen, "'%s' is not a plain header file name", header_name);
        return false;
    }
    if (!*prefix || strlen(prefix) > 200 || strspn(prefix, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(prefix)) {
        snprintf(err, errlen, "'%s' is not a generated model's prefix", prefix);
        return false;
    }
    return true;
}

/* The in-process JIT as a loader of the cache's flow (jit_cache.h rt_cache_build). */
typedef struct {
    const char *c_src, *h_src, *header_name;
    RtJit *j;
} RtLlvmBuild;

static int rt_llvm_compile_cb(void *ctx, void **obj, size_t *len, char *err, size_t errlen)
{
    const RtLlvmBuild *b = ctx;
    return rt_llvm_compile_object(b->c_src, b->h_src, b->header_name, NULL, obj, len, err, errlen);
}

static int rt_llvm_open_cb(void *ctx, const void *obj, size_t len, char *err, size_t errlen)
{
    return rt_llvm_load(obj, len, &((RtLlvmBuild *)ctx)->j, err, errlen);
}

/* The object of (c_src, h_src) from the cache, else compiled (and stored),
 * linked into a JIT of its own. A cached object that does not link is
 * treated as a corrupt entry: compiled again and replaced. */
static int rt_jit_build(const char *c_src, const char *h_src, const char *header_name, const char *prefix, RtJit **j,
                        char *err, size_t errlen)
{
    *j = NULL;
    if (!rt_jit_check_names(header_name, prefix, err, errlen)) return -1;
    RtLlvmBuild b = {c_src, h_src, header_name, NULL};
    const RtCacheLoader l = {&b, rt_llvm_compile_cb, rt_llvm_open_cb};
    const char *parts[] = {c_src, h_src, header_name, rt_llvm_identity(), rt_llvm_flags()};
    int rc = rt_cache_build(parts, (int)(sizeof parts / sizeof parts[0]), &l, err, errlen);
    *j = b.j;
    return rc;
}

/* Looks up PREFIX_SUFFIX; stores it through fn (a function pointer's address). */
static bool rt_jit_sym(RtJit *j, const char *prefix, const char *suffix, void *fn, char *err, size_t errlen)
{
    char name[256], why[1024] = "";
    snprintf(name, sizeof name, "%s_%s", prefix, suffix);
    void *sym = rt_llvm_lookup(j, name, why, sizeof why);
    if (!sym) {
        snprintf(err, errlen, "the compiled model has no function %s (%s)", name, why);
        return false;
    }
    memcpy(fn, &sym, sizeof sym);
    return true;
}
#endif

int rt_load(const char *c_src, const char *h_src, const char *header_name, const char *prefix, RtModel *out, char *err,
            size_t errlen)
{
#ifdef NNC_HAVE_LLVM_JIT
    if (rt_jit_in_process()) {
        RtJit *j;
        memset(out, 0, sizeof *out);
        if (rt_jit_build(c_src, h_src, header_name, prefix, &j, err, errlen) != 0) return -1;
        out->so = j;
        out->kind = 1;
        if (rt_jit_sym(j, prefix, "create", &out->create, err, errlen) &&
            rt_jit_sym(j, prefix, "create_from_memory", &out->create_from_memory, err, errlen) &&
            rt_jit_sym(j, prefix, "forward_v", &out->forward_v, err, errlen) &&
            rt_jit_sym(j, prefix, "last_error", &out->last_error, err, errlen) &&
            rt_jit_sym(j, prefix, "destroy", &out->destroy, err, errlen))
            return 0;
        rt_unload(out);
        return -1;
    }
#endif
    return rt_cc_load(c_src, h_src, header_name, prefix, out, err, errlen);
}

void rt_unload(RtModel *m)
{
#ifdef NNC_HAVE_LLVM_JIT
    if (m->kind == 1) {
        if (m->so) rt_llvm_free(m->so);
        memset(m, 0, sizeof *m);
        return;
    }
#endif
    rt_cc_unload(m);
}

void *rt_symbol(const RtModel *m, const char *name)
{
#ifdef NNC_HAVE_LLVM_JIT
    if (m->kind == 1) {
        char err[256];
        return m->so ? rt_llvm_lookup(m->so, name, err, sizeof err) : NULL;
    }
#endif
    return m->so ? dlsym(m->so, name) : NULL;
}

int rt_load_train(const char *c_src, const char *h_src, const char *header_name, const char *prefix,
                  RtTrainModule *out, char *err, size_t errlen)
{
#ifdef NNC_HAVE_LLVM_JIT
    if (rt_jit_in_process()) {
        RtJit *j;
        memset(out, 0, sizeof *out);
        if (rt_jit_build(c_src, h_src, header_name, prefix, &j, err, errlen) != 0) return -1;
        out->so = j;
        out->kind = 1;
        if (rt_jit_sym(j, prefix, "train_create", &out->create, err, errlen) &&
            rt_jit_sym(j, prefix, "train_create_from_memory", &out->create_from_memory, err, errlen) &&
            rt_jit_sym(j, prefix, "train_step", &out->step, err, errlen) &&
            rt_jit_sym(j, prefix, "train_eval", &out->eval, err, errlen) &&
            rt_jit_sym(j, prefix, "train_set_trainable", &out->set_trainable, err, errlen) &&
            rt_jit_sym(j, prefix, "train_tensor_count", &out->tensor_count, err, errlen) &&
            rt_jit_sym(j, prefix, "train_tensor", &out->tensor, err, errlen) &&
            rt_jit_sym(j, prefix, "train_get_step", &out->get_step, err, errlen) &&
            rt_jit_sym(j, prefix, "train_set_step", &out->set_step, err, errlen) &&
            rt_jit_sym(j, prefix, "train_max_batch", &out->max_batch, err, errlen) &&
            rt_jit_sym(j, prefix, "train_last_error", &out->last_error, err, errlen) &&
            rt_jit_sym(j, prefix, "train_destroy", &out->destroy, err, errlen))
            return 0;
        rt_unload_train(out);
        return -1;
    }
#endif
    return rt_cc_load_train(c_src, h_src, header_name, prefix, out, err, errlen);
}

void rt_unload_train(RtTrainModule *m)
{
#ifdef NNC_HAVE_LLVM_JIT
    if (m->kind == 1) {
        if (m->so) rt_llvm_free(m->so);
        memset(m, 0, sizeof *m);
        return;
    }
#endif
    rt_cc_unload_train(m);
}
