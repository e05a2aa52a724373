/* fuse_prologue.c: a batchnorm (and an activation after it) fused into the
 * conv2d or adaptive_avgpool2d that reads it, as that layer's prologue (ir.h
 * Prologue): DenseNet's pre-activation BN-ReLU-Conv, and its BN-ReLU-pool head.
 *
 * Requires: a verified inference graph; runs after fold_bn and fuse_epilogue,
 * so that every batchnorm that can fold into the layer before it already has,
 * and what is left is a batchnorm behind something that is no layer (a concat,
 * the network's input, a pool).
 * Keeps: inputs, parameters, outputs, and the values of everything the outputs
 * depend on: the kernel computes act(x * scale + shift) with nnc_batchnorm's
 * arithmetic (scale = gamma/sqrt(var + eps), shift = beta - mean*scale) and
 * the activation kernels', so the fused layer sees the same floats.
 *
 *        x                          x
 *        |                          |
 *    batchnorm(g, b, m, v)       conv2d(x, w, [b], [r], bn_scale(g, v), bn_fold_bias(g, b, m, v))
 *        | t                        pro = {act}
 *   [activation]                    |
 *        | u                        y
 *   conv2d / adaptive_avgpool2d (no prologue) / global_avgpool (which becomes an adaptive_avgpool2d to 1x1)
 *        | y
 *
 * A link fuses only when t (and u) have exactly one reader and are no graph
 * output, and the layer reads the chain at input 0 (the image). The scale and
 * the shift are constant nodes, computed once at create. A batchnorm can not
 * be folded into the weights of the layer after it when an activation sits
 * between them, nor, with zero padding, even without one: the padding would
 * have to be transformed too. Hence a prologue, applied by the kernel to each
 * sample as it reads it (docs/passes.md). */
#include "fuse_prologue.h"
#include "passes.h"

#include <stdlib.h>

/* For a layer node i: the batchnorm node of its prologue, or -1; *act the activation node or -1. */
static int32_t match(const PassReads *r, int32_t i, int32_t *act)
{
    const IrGraph *g = r->g;
    const IrNode *n = &g->nodes[i];
    const Prologue *p = ir_prologue(n);
    *act = -1;
    if (n->op != OP_GLOBAL_AVGPOOL && (!p || p->on)) return -1;
    int32_t v = ir_in(g, n, 0), q = g->values[v].node;
    if (q < 0 || !pass_sole_reader(r, v) || r->is_const[v]) return -1;
    if (ir_ops[g->nodes[q].op].act != ACT_NONE) {
        *act = q;
        v = ir_in(g, &g->nodes[q], 0);
        q = g->values[v].node;
        if (q < 0 || !pass_sole_reader(r, v)) return -1;
    }
    return g->nodes[q].op == OP_BATCHNORM ? q : -1;
}

bool pass_fuse_prologue(IrGraph *g, char *err, size_t errlen)
{
    PassReads r;
    pass_reads_init(&r, g);
    size_t nn = (size_t)(g->n_nodes ? g->n_nodes : 1);
    int32_t *bn = nnc_xmalloc(nn * sizeof *bn), *act = nnc_xmalloc(nn * sizeof *act);
    bool *absorbed = nnc_xcalloc(nn, sizeof *absorbed);
    int found = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        bn[i] = match(&r, i, &act[i]);
        if (bn[i] < 0) continue;
        absorbed[bn[i]] = true;
        if (act[i] >= 0) absorbed[act[i]] = true;
        found++;
    }
    pass_reads_free(&r);
    bool ok = true;
    if (found) {
        int32_t *map;
        IrGraph *ng = pass_rebuild_begin(g, NULL, &map);
        for (int32_t i = 0; i < g->n_nodes && ok; i++) {
            const IrNode *n = &g->nodes[i];
            if (absorbed[i]) continue;
            if (bn[i] < 0) {
                ok = (map[n->out] = pass_copy_node(ng, g, n, map, err, errlen)) >= 0;
                continue;
            }
            const IrNode *b = &g->nodes[bn[i]];
            int32_t gv = map[ir_in(g, b, 1)], vv = map[ir_in(g, b, 4)];
            int32_t sins[2] = {gv, vv}, fins[4] = {gv, map[ir_in(g, b, 2)], map[ir_in(g, b, 3)], vv};
            IrAttr ba = b->attr;
            int32_t scale = ir_add_node(ng, OP_BN_SCALE, sins, 2, &ba, b->loc, b->scope, err, errlen);
            int32_t shift = scale < 0 ? -1 : ir_add_node(ng, OP_BN_FOLD_BIAS, fins, 4, &ba, b->loc, b->scope, err, errlen);
            if (shift < 0) {
                ok = false;
                break;
            }
            int32_t ins[8];
            int k = 0;
            ins[k++] = map[ir_in(g, b, 0)];
            for (int j = 1; j < n->n_in; j++) ins[k++] = map[ir_in(g, n, j)];
            ins[k++] = scale;
            ins[k++] = shift;
            IrAttr a = n->attr;
            OpKind op = n->op;
            if (op == OP_GLOBAL_AVGPOOL) {  /* the same average, as the pool that takes a prologue */
                op = OP_ADAPTIVE_AVGPOOL;
                a.adaptive = (AdaptiveAttr){1, 1, {false, ACT_NONE, 0.0f}};
            }
            Prologue *p = op == OP_CONV2D ? &a.conv.pro : &a.adaptive.pro;
            p->on = true;
            p->act = act[i] >= 0 ? ir_ops[g->nodes[act[i]].op].act : ACT_NONE;
            p->slope = act[i] >= 0 && g->nodes[act[i]].op == OP_LEAKY_RELU ? g->nodes[act[i]].attr.act.slope : 0.0f;
            ok = (map[n->out] = ir_add_node(ng, op, ins, k, &a, n->loc, n->scope, err, errlen)) >= 0;
        }
        ok = pass_rebuild_end(g, ng, map, ok);
    }
    free(bn);
    free(act);
    free(absorbed);
    return ok;
}
