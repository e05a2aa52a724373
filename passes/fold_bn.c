/* fold_bn.c: batchnorm folded into the convolution or linear layer before it.
 *
 * Requires: a verified inference graph (batchnorm uses its running statistics).
 * Keeps: inputs, parameters (all of them, in order: the weights file still
 * holds them), outputs (by name and order), the shapes and values of
 * everything the outputs depend on (up to float rounding), the node order
 * otherwise.
 *
 *   x -> conv(w, [b]) -> t -> batchnorm(gamma, beta, mean, var, eps) -> y
 *
 * becomes, where the batchnorm was,
 *
 *   w' = bn_fold_weight(w, gamma, var)        w * gamma/sqrt(var + eps) per output channel
 *   b' = bn_fold_bias(gamma, beta, mean, var[, b])   (b - mean) * gamma/sqrt(var + eps) + beta
 *   y  = conv(x, w', b')                      (with a bias now), y's readers read it
 *
 * for conv2d and linear (output channel: weight dim 0) and conv_transpose2d
 * (bn_fold_weight_t: weight [c_in, c_out/g, kh, kw], channel from dim 1 and
 * the group). The new nodes carry the conv's scope and location. The inputs of
 * the fold nodes are parameters (or constants), so the fold nodes are
 * constants: the generated code computes them once, at create
 * (codegen/emit_c.c). The pattern fires only when the batchnorm is the one
 * reader of t (t is no graph output, no other node reads it) and the weights
 * and batchnorm tensors are constant; otherwise the nodes stay as they were.
 *
 * The rewritten group goes at the batchnorm's position: every input of the
 * conv and of the batchnorm is made before it, and nothing between the two
 * read t, so the order stays topological. The graph is rebuilt, as dce.c does. */
#include "fold_bn.h"
#include "passes.h"

#include <stdlib.h>
#include <string.h>

static bool foldable_layer(OpKind op) { return op == OP_CONV2D || op == OP_CONV_T2D || op == OP_LINEAR; }

/* For each node, the producer of its value when it is a batchnorm the pass
 * folds (the layer's node index), else -1. */
static int32_t *find_folds(const IrGraph *g, int *n_folds)
{
    int32_t *uses = nnc_xcalloc((size_t)g->n_values, sizeof *uses);
    bool *is_const = nnc_xcalloc((size_t)g->n_values, sizeof *is_const);
    int32_t *fold = nnc_xmalloc((size_t)(g->n_nodes ? g->n_nodes : 1) * sizeof *fold);
    ir_mark_constants(g, is_const);
    for (int32_t i = 0; i < g->n_ins; i++) uses[g->ins[i]]++;
    for (int32_t o = 0; o < g->n_outputs; o++) uses[g->outputs[o].value]++;
    *n_folds = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const IrNode *bn = &g->nodes[i];
        fold[i] = -1;
        if (bn->op != OP_BATCHNORM) continue;
        int32_t t = ir_in(g, bn, 0), p = g->values[t].node;
        if (p < 0 || !foldable_layer(g->nodes[p].op) || uses[t] != 1) continue;
        const IrNode *layer = &g->nodes[p];
        const Epilogue *e = ir_epilogue(layer);
        if (e && (e->act != ACT_NONE || e->residual)) continue;  /* the batchnorm reads act(...), not the layer */
        bool consts = true;
        for (int j = 1; j < layer->n_in; j++) consts &= is_const[ir_in(g, layer, j)];
        for (int j = 1; j < bn->n_in; j++) consts &= is_const[ir_in(g, bn, j)];
        if (!consts) continue;
        fold[i] = p;
        ++*n_folds;
    }
    free(uses);
    free(is_const);
    return fold;
}

/* Appends w', b' and the layer that reads them to ng; returns the layer's value or -1. */
static int32_t emit_folded(IrGraph *ng, const IrGraph *g, const IrNode *layer, const IrNode *bn, const int32_t *map,
                           char *err, size_t errlen)
{
    int32_t m_gamma = map[ir_in(g, bn, 1)], m_beta = map[ir_in(g, bn, 2)];
    int32_t m_mean = map[ir_in(g, bn, 3)], m_var = map[ir_in(g, bn, 4)];
    IrAttr fa;
    memset(&fa, 0, sizeof fa);
    fa.bn.eps = bn->attr.bn.eps;
    int32_t w_in[3] = {map[ir_in(g, layer, 1)], m_gamma, m_var};
    OpKind wop = layer->op == OP_CONV_T2D ? OP_BN_FOLD_WEIGHT_T : OP_BN_FOLD_WEIGHT;
    int32_t w = ir_add_node(ng, wop, w_in, 3, &fa, layer->loc, layer->scope, err, errlen);
    if (w < 0) return -1;
    bool bias = ir_has_bias(layer);
    int32_t b_in[5] = {m_gamma, m_beta, m_mean, m_var, bias ? map[ir_in(g, layer, 2)] : -1};
    int32_t b = ir_add_node(ng, OP_BN_FOLD_BIAS, b_in, bias ? 5 : 4, &fa, layer->loc, layer->scope, err, errlen);
    if (b < 0) return -1;
    IrAttr la = layer->attr;
    if (layer->op == OP_LINEAR) la.linear.bias = true;
    else la.conv.bias = true;
    int32_t l_in[3] = {map[ir_in(g, layer, 0)], w, b};
    return ir_add_node(ng, layer->op, l_in, 3, &la, layer->loc, layer->scope, err, errlen);
}

bool pass_fold_bn(IrGraph *g, char *err, size_t errlen)
{
    int n_folds;
    int32_t *fold = find_folds(g, &n_folds);
    if (!n_folds) {
        free(fold);
        return true;
    }
    bool *folded_layer = nnc_xcalloc((size_t)g->n_nodes, sizeof *folded_layer);
    for (int32_t i = 0; i < g->n_nodes; i++)
        if (fold[i] >= 0) folded_layer[fold[i]] = true;
    int32_t *map;
    IrGraph *ng = pass_rebuild_begin(g, NULL, &map);
    bool ok = true;
    for (int32_t i = 0; i < g->n_nodes && ok; i++) {
        const IrNode *n = &g->nodes[i];
        if (folded_layer[i]) continue;  /* emitted at its batchnorm */
        map[n->out] = fold[i] >= 0 ? emit_folded(ng, g, &g->nodes[fold[i]], n, map, err, errlen)
                                   : pass_copy_node(ng, g, n, map, err, errlen);
        ok = map[n->out] >= 0;
    }
    free(folded_layer);
    free(fold);
    return pass_rebuild_end(g, ng, map, ok);
}
