/* nnc.c: the public API (include/nnc/nnc.h) over the internal modules.
 *
 * A model owns its graph; the frontend's arena (AST, source text) is freed as
 * soon as the graph exists, since the graph keeps copies of what it needs. An
 * instance owns the loaded shared object (runtime/jit_cc.c) and the generated
 * model's own instance. */
#include "nnc/nnc.h"
#include "api/nnc_internal.h"

#include "codegen/emit_c.h"
#include "common/common.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "passes/plan_memory.h"
#include "runtime/jit.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct nnc_model {
    IrGraph *g;
    NncSource src;   /* how it was compiled: a trainer compiles it again (nnc_train.c) */
};

struct nnc_instance {
    RtModel so;      /* the loaded generated code */
    void *m;         /* its instance */
};

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static char *fmt(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 1;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s%s", a, b);
    return s;
}

static int compile(const char *path, const char *text, const nnc_options *opt, nnc_model **out, char **diagnostics)
{
    *out = NULL;
    if (diagnostics) *diagnostics = NULL;
    Arena arena = {0};
    Diag d;
    diag_init(&d, &arena);
    FeOptions fe = {0};
    FeDefine defs[64];
    int level = opt ? opt->opt_level : 2;
    if (opt) {
        fe.network = opt->network;
        for (int i = 0; i < opt->n_defines && i < 64; i++) {
            const char *eq = strchr(opt->defines[i], '=');
            if (!eq) {
                diag_error(&d, (Loc){0}, "define '%s' is not NAME=VALUE", opt->defines[i]);
                break;
            }
            defs[fe.n_defines].name = arena_strndup(&arena, opt->defines[i], (size_t)(eq - opt->defines[i]));
            defs[fe.n_defines++].value = eq + 1;
        }
        fe.defines = defs;
    }
    IrGraph *g = NULL;
    if (!d.errors)
        g = text ? fe_compile_text(path, text, strlen(text), &fe, &d) : fe_compile(path, &fe, &d);
    char err[512];
    if (g && !pass_run_pipeline(g, level < 0 ? 0 : level > 2 ? 2 : level, err, sizeof err)) {
        diag_error(&d, (Loc){0}, "internal error after a pass: %s", err);
        ir_free(g);
        g = NULL;
    }
    if (!g && diagnostics) *diagnostics = dup_or_null(d.out.data ? d.out.data : "nnc: error: compilation failed\n");
    diag_free(&d);
    arena_free(&arena);
    if (!g) return -1;
    *out = nnc_xcalloc(1, sizeof **out);
    (*out)->g = g;
    nnc_source_keep(&(*out)->src, path, text, opt);
    return 0;
}

int nnc_compile_file(const char *path, const nnc_options *opt, nnc_model **out, char **diagnostics)
{
    return compile(path, NULL, opt, out, diagnostics);
}

int nnc_compile_string(const char *path, const char *text, const nnc_options *opt, nnc_model **out,
                       char **diagnostics)
{
    return compile(path ? path : "<string>", text ? text : "", opt, out, diagnostics);
}

void nnc_model_free(nnc_model *m)
{
    if (!m) return;
    ir_free(m->g);
    nnc_source_free(&m->src);
    free(m);
}

const char *nnc_model_name(const nnc_model *m) { return m->g->name; }
const NncSource *nnc_model_source(const nnc_model *m) { return &m->src; }
int nnc_model_inputs(const nnc_model *m) { return m->g->n_inputs; }
int nnc_model_outputs(const nnc_model *m) { return m->g->n_outputs; }

const char *nnc_model_input_name(const nnc_model *m, int i)
{
    return i >= 0 && i < m->g->n_inputs ? m->g->values[m->g->inputs[i]].name : NULL;
}

const char *nnc_model_output_name(const nnc_model *m, int i)
{
    return i >= 0 && i < m->g->n_outputs ? m->g->outputs[i].name : NULL;
}

long long nnc_model_input_size(const nnc_model *m, int i)
{
    return i >= 0 && i < m->g->n_inputs ? (long long)ir_shape_elems(&m->g->values[m->g->inputs[i]].shape) : -1;
}

long long nnc_model_output_size(const nnc_model *m, int i)
{
    return i >= 0 && i < m->g->n_outputs ? (long long)ir_shape_elems(&m->g->values[m->g->outputs[i].value].shape)
                                         : -1;
}

int nnc_emit_ir(const nnc_model *m, char **text)
{
    StrBuf sb = {0};
    ir_print(m->g, &sb);
    *text = sb.data;  /* StrBuf data is malloc'd: the caller frees it */
    return 0;
}

int nnc_emit_c(const nnc_model *m, int max_batch, const char *header_name, char **c_source, char **header,
               char **error)
{
    StrBuf c = {0}, h = {0};
    char err[512];
    CgOptions o = {.max_batch = max_batch, .header_name = header_name, .source_path = NULL};
    *c_source = *header = NULL;
    if (error) *error = NULL;
    if (!nnc_plan_for(m->g, &o, err, sizeof err) || !cg_emit_c(m->g, &o, &c, &h, err, sizeof err)) {
        sb_free(&c);
        sb_free(&h);
        if (error) *error = strdup(err);
        return -1;
    }
    *c_source = c.data;
    *header = h.data;
    return 0;
}

bool nnc_plan_for(IrGraph *g, const CgOptions *o, char *err, size_t errlen)
{
    if (g->plan && g->plan->max_batch == o->max_batch && g->plan->reuse == !o->no_memory_plan) return true;
    return pass_plan_memory(g, o->max_batch, !o->no_memory_plan, err, errlen);
}

int nnc_load_graph(IrGraph *g, const CgOptions *o, const char *weights, nnc_instance **out, char **error)
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
    if (inst->so.create(&inst->m, weights, NULL) != 0) {
        if (error) *error = fmt("", inst->so.last_error(inst->m));
        nnc_instance_free(inst);
        return NNC_LOAD_CREATE;
    }
    *out = inst;
    return 0;
}

int nnc_load(const nnc_model *m, const char *weights, int max_batch, nnc_instance **out, char **error)
{
    CgOptions o = {.max_batch = max_batch, .header_name = "model.h", .source_path = NULL};
    return nnc_load_graph(m->g, &o, weights, out, error) == 0 ? 0 : -1;
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
    void *sym = dlsym(inst->so.so, name);
    if (!sym) return false;
    void (*set)(void *, void (*)(void *, int), void *);
    memcpy(&set, &sym, sizeof set);  /* a data pointer as a function pointer: POSIX dlsym's contract */
    set(inst->m, hook, ctx);
    return true;
}
