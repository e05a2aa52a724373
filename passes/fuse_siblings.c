/* fuse_siblings.c: horizontal fusion. 1x1 convolutions that read the same
 * input (an Inception module's reduce branches; ResNet-50's first bottleneck,
 * whose conv1 and downsample both read the stem's output at stride 1) become
 * one convolution, a single GEMM over the input, whose output channels are
 * the siblings' one after another; each sibling's output becomes a slice of
 * it (a view in the generated code: no copy).
 *
 * Requires: a verified inference graph; runs after fold_bn, fuse_epilogue,
 * fuse_prologue and fuse_dwpw (the siblings' weights are final, their
 * activations are in their epilogues), before concat_elim.
 * Keeps: inputs, parameters, outputs, and the values of everything the outputs
 * depend on: each output channel is computed from the same weights and input
 * by the same GEMM row, so the floats are the same as unfused up to the BLAS's
 * blocking. Constant nodes move to the front of the graph when a group fuses
 * (they depend on parameters only, and the joined weights need all of them
 * before the first sibling).
 *
 *        x                              x
 *     /  |  \                           |
 *  c1   c2   c3   1x1 conv2d       c = conv2d(x, concat(w1, w2, w3), concat(b1, b2, b3))
 *  |    |    |                      /   |   \
 *  y1   y2   y3                 slice  slice  slice  = y1, y2, y3
 *
 * A sibling is a conv2d reading x at input 0 with a 1x1 kernel, stride 1, no
 * padding, one group, no prologue and no residual, whose output is no graph
 * output and is read only where kernels take a strided view (ir.h
 * ir_reads_strided: the image input of a convolution or pool, a conv2d's
 * residual) -- so not by a concat, whose inputs concat_elim would rather
 * place. Siblings agree on having a bias and on their activation, or have
 * none: those with the activation go first, and the fused epilogue applies it
 * to their channels only (Epilogue.act_channels). */
#include "fuse_siblings.h"
#include "passes.h"

#include <stdlib.h>

static bool candidate(const PassReads *r, const IrNode *n, int32_t x)
{
    const IrGraph *g = r->g;
    const ConvAttr *c = &n->attr.conv;
    if (n->op != OP_CONV2D || ir_in(g, n, 0) != x || c->kh != 1 || c->kw != 1 || c->sh != 1 || c->sw != 1 ||
        c->ph != 0 || c->pw != 0 || c->groups != 1 || c->pro.on || c->epi.residual || c->epi.act_channels ||
        c->blocked)
        return false;
    return !r->is_out[n->out] && !r->is_const[n->out] && r->unstrided[n->out] == 0;
}

/* Whether conv node n can join a group led by node lead (same bias, activations compatible). */
static bool compatible(const IrNode *lead, const IrNode *n, ActKind *act, float *slope)
{
    const Epilogue *e = &n->attr.conv.epi;
    if (n->attr.conv.bias != lead->attr.conv.bias) return false;
    if (e->act == ACT_NONE) return true;
    if (*act != ACT_NONE && (*act != e->act || *slope != e->slope)) return false;
    *act = e->act, *slope = e->slope;
    return true;
}

typedef struct {
    int32_t *group;    /* per node: the first node of its group, or -1 */
    int32_t *members;  /* per group leader: how many */
} Groups;

static int plan(const IrGraph *g, Groups *gr)
{
    PassReads r;
    pass_reads_init(&r, g);
    size_t nn = (size_t)(g->n_nodes ? g->n_nodes : 1);
    gr->group = nnc_xmalloc(nn * sizeof *gr->group);
    gr->members = nnc_xcalloc(nn, sizeof *gr->members);
    for (int32_t i = 0; i < g->n_nodes; i++) gr->group[i] = -1;
    int groups = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const IrNode *lead = &g->nodes[i];
        int32_t x = lead->n_in ? ir_in(g, lead, 0) : -1;
        if (gr->group[i] >= 0 || x < 0 || r.is_const[x] || !candidate(&r, lead, x)) continue;
        ActKind act = lead->attr.conv.epi.act;
        float slope = lead->attr.conv.epi.slope;
        int k = 1;
        for (int32_t j = i + 1; j < g->n_nodes; j++) {
            const IrNode *n = &g->nodes[j];
            if (gr->group[j] < 0 && candidate(&r, n, x) && compatible(lead, n, &act, &slope)) {
                gr->group[j] = i;
                k++;
            }
        }
        if (k < 2) {
            for (int32_t j = i + 1; j < g->n_nodes; j++)
                if (gr->group[j] == i) gr->group[j] = -1;
            continue;
        }
        gr->group[i] = i;
        gr->members[i] = k;
        groups++;
    }
    pass_reads_free(&r);
    return groups;
}

/* The fused convolution of the group led by node l, its slices into map. */
static bool emit_group(IrGraph *ng, const IrGraph *g, const Groups *gr, int32_t l, int32_t *map, char *err,
                       size_t errlen)
{
    const IrNode *lead = &g->nodes[l];
    int m = gr->members[l], k = 0;
    int32_t *order = nnc_xmalloc((size_t)m * sizeof *order), *ws = nnc_xmalloc((size_t)m * sizeof *ws);
    int32_t *bs = nnc_xmalloc((size_t)m * sizeof *bs);
    ActKind act = ACT_NONE;
    float slope = 0.0f;
    for (int pass = 0; pass < 2; pass++)  /* members with the activation first, then those without */
        for (int32_t j = l; j < g->n_nodes; j++) {
            const Epilogue *e = &g->nodes[j].attr.conv.epi;
            if (gr->group[j] != l || (e->act != ACT_NONE) != (pass == 0)) continue;
            if (e->act != ACT_NONE) act = e->act, slope = e->slope;
            order[k++] = j;
        }
    int out = 0, act_out = 0;
    for (int i = 0; i < m; i++) {
        const IrNode *n = &g->nodes[order[i]];
        ws[i] = map[ir_in(g, n, 1)];
        bs[i] = lead->attr.conv.bias ? map[ir_in(g, n, 2)] : -1;
        out += n->attr.conv.out_channels;
        if (n->attr.conv.epi.act != ACT_NONE) act_out += n->attr.conv.out_channels;
    }
    IrAttr cat = {.concat = {0, false}};
    int32_t ins[3] = {map[ir_in(g, lead, 0)], ir_add_node(ng, OP_CONCAT, ws, m, &cat, lead->loc, lead->scope, err, errlen),
                      -1};
    bool ok = ins[1] >= 0;
    if (ok && lead->attr.conv.bias) ok = (ins[2] = ir_add_node(ng, OP_CONCAT, bs, m, &cat, lead->loc, lead->scope, err, errlen)) >= 0;
    IrAttr a = lead->attr;
    a.conv.out_channels = out;
    a.conv.epi.act = act;
    a.conv.epi.slope = slope;
    a.conv.epi.act_channels = act != ACT_NONE && act_out < out ? act_out : 0;
    int32_t fused = ok ? ir_add_node(ng, OP_CONV2D, ins, lead->attr.conv.bias ? 3 : 2, &a, lead->loc, lead->scope, err, errlen) : -1;
    ok = fused >= 0;
    for (int i = 0, start = 0; ok && i < m; i++) {
        const IrNode *n = &g->nodes[order[i]];
        IrAttr s = {.slice = {start, n->attr.conv.out_channels}};
        ok = (map[n->out] = ir_add_node(ng, OP_SLICE, &fused, 1, &s, n->loc, n->scope, err, errlen)) >= 0;
        start += n->attr.conv.out_channels;
    }
    free(order);
    free(ws);
    free(bs);
    return ok;
}

bool pass_fuse_siblings(IrGraph *g, char *err, size_t errlen)
{
    Groups gr;
    bool ok = true;
    if (plan(g, &gr)) {
        bool *is_const = nnc_xcalloc((size_t)(g->n_values ? g->n_values : 1), sizeof *is_const);
        ir_mark_constants(g, is_const);
        int32_t *map;
        IrGraph *ng = pass_rebuild_begin(g, NULL, &map);
        for (int32_t i = 0; i < g->n_nodes && ok; i++)  /* constants first: they read parameters only */
            if (is_const[g->nodes[i].out]) ok = (map[g->nodes[i].out] = pass_copy_node(ng, g, &g->nodes[i], map, err, errlen)) >= 0;
        for (int32_t i = 0; i < g->n_nodes && ok; i++) {
            const IrNode *n = &g->nodes[i];
            if (is_const[n->out] || (gr.group[i] >= 0 && gr.group[i] != i)) continue;  /* a member: done with its leader */
            ok = gr.group[i] == i ? emit_group(ng, g, &gr, i, map, err, errlen)
                                  : (map[n->out] = pass_copy_node(ng, g, n, map, err, errlen)) >= 0;
        }
        free(is_const);
        ok = pass_rebuild_end(g, ng, map, ok);
    }
    free(gr.group);
    free(gr.members);
    return ok;
}
