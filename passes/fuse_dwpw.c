/* fuse_dwpw.c: a depthwise convolution and the 1x1 convolution after it in one
 * dwpw node (ir.h DwPwAttr), computed tile by tile by nnc_dwpw: MobileNet's
 * depthwise-separable pair (v1) and the depthwise + projection of an inverted
 * residual (v2).
 *
 * Requires: a verified inference graph; runs after fold_bn and fuse_epilogue,
 * so each convolution already carries its folded batchnorm and its activation
 * (and the projection its residual).
 * Keeps: inputs, parameters, outputs, and the values of everything the outputs
 * depend on, up to rounding: the depthwise sums are those of the unfused
 * kernel, the pointwise GEMM runs on tiles of columns instead of all of them.
 *
 *        x                              x
 *        |                              |
 *   conv2d(x, dw, [db])  groups = c = out, epilogue act a, no residual, no prologue
 *        | t                =>     dwpw(x, dw, [db], pw, [pb], [r])
 *   conv2d(t, pw, [pb], [r])  1x1, stride 1, unpadded, ungrouped, no prologue
 *        | y                              | y
 *
 * The pair fuses only when t has exactly one reader (the pointwise layer, at
 * input 0) and is no graph output. The node goes where the pointwise layer was,
 * with its scope and location; the depthwise output never exists in memory. */
#include "fuse_dwpw.h"
#include "passes.h"

#include <stdlib.h>

static bool is_pointwise(const ConvAttr *c)
{
    return c->kh == 1 && c->kw == 1 && c->sh == 1 && c->sw == 1 && c->ph == 0 && c->pw == 0 && c->groups == 1 &&
           !c->pro.on;
}

/* For a pointwise node i, the depthwise node before it, or -1. */
static int32_t match(const PassReads *r, int32_t i)
{
    const IrGraph *g = r->g;
    const IrNode *n = &g->nodes[i];
    if (n->op != OP_CONV2D || !is_pointwise(&n->attr.conv) || n->attr.conv.blocked) return -1;
    int32_t t = ir_in(g, n, 0), q = g->values[t].node;
    if (q < 0 || r->is_const[t] || !pass_sole_reader(r, t)) return -1;
    const IrNode *d = &g->nodes[q];
    const ConvAttr *c = &d->attr.conv;
    int64_t ch = ir_in_shape(g, d, 0)->dim[0];
    if (d->op != OP_CONV2D || c->groups != ch || c->out_channels != ch || c->epi.residual || c->pro.on) return -1;
    return q;
}

bool pass_fuse_dwpw(IrGraph *g, char *err, size_t errlen)
{
    PassReads r;
    pass_reads_init(&r, g);
    size_t nn = (size_t)(g->n_nodes ? g->n_nodes : 1);
    int32_t *dw = nnc_xmalloc(nn * sizeof *dw);
    bool *absorbed = nnc_xcalloc(nn, sizeof *absorbed);
    int found = 0;
    for (int32_t i = 0; i < g->n_nodes; i++)
        if ((dw[i] = match(&r, i)) >= 0) absorbed[dw[i]] = true, found++;
    pass_reads_free(&r);
    bool ok = true;
    if (found) {
        int32_t *map;
        IrGraph *ng = pass_rebuild_begin(g, NULL, &map);
        for (int32_t i = 0; i < g->n_nodes && ok; i++) {
            const IrNode *n = &g->nodes[i];
            if (absorbed[i]) continue;
            if (dw[i] < 0) {
                ok = (map[n->out] = pass_copy_node(ng, g, n, map, err, errlen)) >= 0;
                continue;
            }
            const IrNode *d = &g->nodes[dw[i]];
            int32_t ins[6];
            int k = 0;
            for (int j = 0; j < d->n_in; j++) ins[k++] = map[ir_in(g, d, j)];
            for (int j = 1; j < n->n_in; j++) ins[k++] = map[ir_in(g, n, j)];
            IrAttr a;
            a.dwpw.dw = d->attr.conv;
            a.dwpw.pw = n->attr.conv;
            ok = (map[n->out] = ir_add_node(ng, OP_DWPW, ins, k, &a, n->loc, n->scope, err, errlen)) >= 0;
        }
        ok = pass_rebuild_end(g, ng, map, ok);
    }
    free(dw);
    free(absorbed);
    return ok;
}
