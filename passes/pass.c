/* pass.c: the pass manager. The pipeline is the table below, in order. */
#include "passes.h"
#include "fold_bn.h"
#include "concat_elim.h"
#include "fuse_dwpw.h"
#include "fuse_epilogue.h"
#include "fuse_prologue.h"
#include "fuse_siblings.h"
#include "pack_weights.h"
#include "plan_memory.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The pipeline, in order. -O1 cleans up; -O2 adds the rewrites that change
 * which kernels run (fusion, folding). The last column is a pass's form for a
 * training graph (pass_run_training_pipeline), NULL where it has none: batch
 * statistics cannot be folded; fold_bn's training form fuses conv + batchnorm
 * statistics + activation instead. It runs at every level, -O0 too: the
 * training kernels have always run that chain fused, and a training module's
 * numbers must not depend on -O. */
static const Pass pipeline[] = {
    {"cleanup", 1, pass_cleanup, pass_cleanup_train},  /* identity/dropout removal, CSE */
    {"dce",     1, pass_dce, pass_dce_train},          /* what no output needs */
    {"fold_bn", 2, pass_fold_bn, NULL},   /* conv/linear -> batchnorm into one layer, weights folded at create */
    {"fuse_bn_train", 0, NULL, pass_fuse_bn_train},  /* training: conv -> batchnorm statistics -> activation */
    {"fuse_epilogue", 2, pass_fuse_epilogue, NULL},  /* conv/linear -> [add] -> [activation] into one kernel call */
    {"fuse_prologue", 2, pass_fuse_prologue, NULL},  /* batchnorm -> [activation] -> conv/adaptive pool: into the layer */
    {"layout_blocked", 2, pass_layout_blocked, NULL},  /* NCHW16c where it pays, reorders at the edges */
    {"fuse_dwpw", 2, pass_fuse_dwpw, NULL},          /* depthwise conv -> 1x1 conv: one kernel, tile by tile */
    {"fuse_siblings", 2, pass_fuse_siblings, NULL},  /* 1x1 convs reading the same input: one GEMM, output sliced */
    {"pack_weights", 2, pass_pack_weights, NULL},    /* conv2d weights in the GEMM's layout, packed at create */
    {"concat_elim", 2, pass_concat_elim, NULL},      /* producers write into their slice of a concat */
};

#ifdef NDEBUG
static const bool verify_each = false;
#else
static const bool verify_each = true;
#endif

bool pass_known(const char *name)
{
    if (strcmp(name, "all") == 0) return true;
    for (size_t i = 0; i < NNC_COUNT(pipeline); i++)
        if (strcmp(pipeline[i].name, name) == 0) return true;
    return false;
}

void pass_list(StrBuf *out)
{
    for (size_t i = 0; i < NNC_COUNT(pipeline); i++) sb_printf(out, "%s%s", i ? ", " : "", pipeline[i].name);
}

bool pass_run_pipeline(IrGraph *g, int level, char *err, size_t errlen)
{
    return pass_run_pipeline_dump(g, level, NULL, NULL, err, errlen);
}

/* Runs the passes of -O<level>, each in its inference or training form; the
 * graph then gets its memory plan for max_batch (inference: reuse at -O2). */
static bool run_pipeline(IrGraph *g, int level, bool train, int max_batch, const char *print_after, StrBuf *dump,
                         char *err, size_t errlen)
{
    g->plan = NULL;
    g->max_batch = max_batch;
    char why[512];
    if (verify_each && !ir_verify(g, why, sizeof why)) {
        snprintf(err, errlen, "the elaborated graph is malformed: %s", why);
        return false;
    }
    for (size_t i = 0; i < NNC_COUNT(pipeline); i++) {
        bool (*run)(IrGraph *, char *, size_t) = train ? pipeline[i].train : pipeline[i].run;
        if (level < pipeline[i].min_level || !run) continue;
        if (!run(g, err, errlen)) return false;
        if (verify_each && !ir_verify(g, why, sizeof why)) {
            snprintf(err, errlen, "after pass '%s': %s", pipeline[i].name, why);
            return false;
        }
        if (dump && print_after && (strcmp(print_after, "all") == 0 || strcmp(print_after, pipeline[i].name) == 0)) {
            sb_printf(dump, "# after %s\n", pipeline[i].name);
            ir_print(g, dump);
        }
    }
    g->train_plan = NULL;
    if (!(train ? pass_plan_training_memory(g, max_batch, why, sizeof why)
                : pass_plan_memory(g, max_batch, level >= 2, why, sizeof why))) {
        snprintf(err, errlen, "planning memory: %s", why);
        return false;
    }
    return true;
}

bool pass_run_pipeline_dump(IrGraph *g, int level, const char *print_after, StrBuf *dump, char *err, size_t errlen)
{
    return run_pipeline(g, level, false, 1, print_after, dump, err, errlen);
}

bool pass_run_pipeline_batch(IrGraph *g, int level, int max_batch, const char *print_after, StrBuf *dump, char *err,
                             size_t errlen)
{
    return run_pipeline(g, level, false, max_batch, print_after, dump, err, errlen);
}

bool pass_run_training_pipeline(IrGraph *g, int level, int max_batch, const char *print_after, StrBuf *dump,
                                char *err, size_t errlen)
{
    return run_pipeline(g, level, true, max_batch, print_after, dump, err, errlen);
}

/* Kernels a forward pass calls: nodes that are not constants (constants run
 * once, at create), in-place concats (their producers did their work) or
 * slices (views). */
int pass_count_kernels(const IrGraph *g)
{
    bool *is_const = nnc_xcalloc((size_t)(g->n_values ? g->n_values : 1), sizeof *is_const);
    ir_mark_constants(g, is_const);
    int k = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) k += !is_const[g->nodes[i].out] && !ir_is_view(&g->nodes[i]);
    free(is_const);
    return k;
}

IrGraph *pass_rebuild_begin(const IrGraph *g, const bool *keep, int32_t **map)
{
    IrGraph *ng = ir_new(g->name);
    ng->max_batch = g->max_batch;
    ng->source = g->source ? arena_strdup(&ng->arena, g->source) : NULL;
    ng->loc = (IrLoc){ng->source, g->loc.line, g->loc.col};
    int32_t *m = nnc_xmalloc((size_t)(g->n_values ? g->n_values : 1) * sizeof *m);
    for (int32_t v = 0; v < g->n_values; v++) m[v] = -1;
    for (int32_t i = 0; i < g->n_inputs; i++) {
        const IrValue *v = &g->values[g->inputs[i]];
        m[g->inputs[i]] = ir_add_input(ng, v->name, &v->shape);
    }
    for (int32_t p = 0; p < g->n_params; p++) {
        const IrValue *v = &g->values[g->params[p]];
        if (keep && !keep[g->params[p]]) continue;
        m[g->params[p]] = ir_add_param(ng, v->name, &v->shape, v->init, v->fan_in);
        ng->values[m[g->params[p]]].buffer = v->buffer;
    }
    *map = m;
    return ng;
}

int32_t pass_copy_node(IrGraph *ng, const IrGraph *g, const IrNode *n, const int32_t *map, char *err, size_t errlen)
{
    int32_t ins[256] = {0}, *in = n->n_in <= 256 ? ins : nnc_xmalloc((size_t)n->n_in * sizeof *in);
    for (int j = 0; j < n->n_in; j++) in[j] = map[ir_in(g, n, j)];
    int32_t v = ir_add_node(ng, n->op, in, n->n_in, &n->attr, n->loc, n->scope, err, errlen);
    if (in != ins) free(in);
    return v;
}

void pass_replace_graph(IrGraph *dst, IrGraph *src)
{
    arena_free(&dst->arena);
    *dst = *src;
    free(src);
}

bool pass_rebuild_end(IrGraph *g, IrGraph *ng, int32_t *map, bool ok)
{
    for (int32_t o = 0; o < g->n_outputs && ok; o++) ir_add_output(ng, g->outputs[o].name, map[g->outputs[o].value]);
    free(map);
    if (ok) pass_replace_graph(g, ng);
    else ir_free(ng);
    return ok;
}

void pass_reads_init(PassReads *r, const IrGraph *g)
{
    size_t nv = (size_t)(g->n_values ? g->n_values : 1);
    r->g = g;
    r->uses = nnc_xcalloc(nv, sizeof *r->uses);
    r->is_out = nnc_xcalloc(nv, sizeof *r->is_out);
    r->is_const = nnc_xcalloc(nv, sizeof *r->is_const);
    r->unstrided = nnc_xcalloc(nv, sizeof *r->unstrided);
    ir_mark_constants(g, r->is_const);
    for (int32_t i = 0; i < g->n_ins; i++) r->uses[g->ins[i]]++;
    for (int32_t i = 0; i < g->n_nodes; i++)
        for (int j = 0; j < g->nodes[i].n_in; j++)
            if (!ir_reads_strided(&g->nodes[i], j)) r->unstrided[ir_in(g, &g->nodes[i], j)]++;
    for (int32_t o = 0; o < g->n_outputs; o++) r->uses[g->outputs[o].value]++, r->is_out[g->outputs[o].value] = true;
}

void pass_reads_free(PassReads *r)
{
    free(r->uses);
    free(r->is_out);
    free(r->is_const);
    free(r->unstrided);
}
