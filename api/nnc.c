/* nnc.c: loading and running (include/nnc/nnc.h: nnc_load, nnc_forward,
 * the instance), over runtime/jit.h. Compiling is compile.c, inspecting and
 * emitting inspect.c, the messages diagnostics.c (api/nnc_internal.h has
 * the structs they share). */
#include "nnc/nnc.h"
#include "api/nnc_internal.h"

#include "codegen/emit_c.h"
#include "common/common.h"
#include "passes/passes.h"
#include "passes/plan_memory.h"
#include "runtime/jit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *fmt(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 1;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s%s", a, b);
    return s;
}

bool nnc_plan_for(IrGraph *g, const CgOptions *o, char *err, size_t errlen)
{
    if (g->plan && g->plan->max_batch == o->max_batch && g->plan->reuse == !o->no_memory_plan) return true;
    return pass_plan_memory(g, o->max_batch, !o->no_memory_plan, err, errlen);
}

/* Where an instance's weights come from: a safetensors file (path, NULL for
 * none), or the bytes of one in memory. */
typedef struct {
    const char *path;
    const void *data;
    size_t size;
    bool in_memory;
} Weights;

/* nnc_load_graph for weights w. */
static int load_graph(IrGraph *g, const CgOptions *o, const Weights *w, nnc_instance **out, char **error)
{
    StrBuf c = {0}, h = {0};
    char err[4096];
    *out = NULL;
    if (error) *error = NULL;
    if (!nnc_plan_for(g, o, err, sizeof err) || !cg_emit_c(g, o, &c, &h, err, sizeof err)) {
        sb_free(&c);
        sb_free(&h);
        if (error) *error = strdup(err);
        return NNC_LOAD_EMIT;
    }
    nnc_instance *inst = nnc_xcalloc(1, sizeof *inst);
    Arena names = {0};
    int rc = rt_load(c.data, h.data, o->header_name, cg_c_prefix(&names, g->name), &inst->so, err, sizeof err);
    arena_free(&names);
    sb_free(&c);
    sb_free(&h);
    if (rc != 0) {
        if (error) *error = strdup(err);
        free(inst);
        return NNC_LOAD_CC;
    }
    if (w->in_memory && !inst->so.create_from_memory) {
        if (error) *error = strdup("the loaded code has no create_from_memory (a loader that predates it)");
        nnc_instance_free(inst);
        return NNC_LOAD_CREATE;
    }
    int created = w->in_memory ? inst->so.create_from_memory(&inst->m, w->data, w->size, NULL)
                               : inst->so.create(&inst->m, w->path, NULL);
    if (created != 0) {
        if (error) *error = fmt("", inst->so.last_error(inst->m));
        nnc_instance_free(inst);
        return NNC_LOAD_CREATE;
    }
    *out = inst;
    return 0;
}

int nnc_load_graph(IrGraph *g, const CgOptions *o, const char *weights, nnc_instance **out, char **error)
{
    Weights w = {.path = weights};
    return load_graph(g, o, &w, out, error);
}

int nnc_load_graph_memory(IrGraph *g, const CgOptions *o, const void *weights, size_t size, nnc_instance **out,
                          char **error)
{
    Weights w = {.data = weights, .size = size, .in_memory = true};
    return load_graph(g, o, &w, out, error);
}

/* nnc_load and nnc_load_memory: a model for inference, at its batch unless told. */
static int load_model(const nnc_model *m, const Weights *w, int max_batch, nnc_instance **out, char **error)
{
    *out = NULL;
    if (error) *error = NULL;
    if (m->mode == NNC_TRAINING) {
        if (error) *error = strdup("the model was compiled for training (NNC_TRAINING): load it with nnc_train_*, "
                                   "or compile it for inference");
        return -1;
    }
    CgOptions o = {.max_batch = max_batch > 0 ? max_batch : m->max_batch, .header_name = "model.h", .source_path = NULL};
    return load_graph(m->g, &o, w, out, error) == 0 ? 0 : -1;
}

int nnc_load(const nnc_model *m, const char *weights, int max_batch, nnc_instance **out, char **error)
{
    Weights w = {.path = weights};
    return load_model(m, &w, max_batch, out, error);
}

int nnc_load_memory(const nnc_model *m, const void *weights, size_t size, int max_batch, nnc_instance **out,
                    char **error)
{
    Weights w = {.data = weights, .size = size, .in_memory = true};
    return load_model(m, &w, max_batch, out, error);
}

int nnc_forward(nnc_instance *inst, int n, const float *const *inputs, float *const *outputs)
{
    return inst->so.forward_v(inst->m, n, inputs, outputs) == 0 ? 0 : -1;
}

const char *nnc_instance_error(const nnc_instance *inst) { return inst->so.last_error(inst->m); }

void nnc_instance_free(nnc_instance *inst)
{
    if (!inst) return;
    if (inst->so.destroy) inst->so.destroy(inst->m);
    rt_unload(&inst->so);
    free(inst);
}

const char *nnc_version(void) { return NNC_VERSION; }

bool nnc_instance_set_profile_hook(nnc_instance *inst, const char *prefix, void (*hook)(void *ctx, int node), void *ctx)
{
    char name[512];
    snprintf(name, sizeof name, "%s_set_profile_hook", prefix);
    void *sym = rt_symbol(&inst->so, name);  /* dlsym, or the JIT's lookup: inst->so.so is not a dlopen handle then */
    if (!sym) return false;
    void (*set)(void *, void (*)(void *, int), void *);
    memcpy(&set, &sym, sizeof set);  /* a data pointer as a function pointer: POSIX dlsym's contract */
    set(inst->m, hook, ctx);
    return true;
}
