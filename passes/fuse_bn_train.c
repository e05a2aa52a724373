/* fuse_bn_train.c: the training form of batchnorm folding (pass.c's table).
 *
 * A training graph cannot fold batchnorm into the convolution before it (the
 * statistics come from the batch), but it can save two passes over the
 * convolution's output: the conv2d sums, per output channel, what the
 * batchnorm's statistics need as it writes each block (ConvAttr.bn_stats), and
 * the batchnorm normalizes and applies the activation after it in one pass
 * (BnAttr.fused, act, slope); its backward folds the activation's in
 * (grad_kernels.c, section bn_train_fused). The training module keeps the
 * unfused form for its inference mode.
 *
 * Requires: a training graph (no epilogues, prologues or in-place concats).
 * Rewrites conv2d -> batchnorm [-> activation] where the conv's output is read
 * by the batchnorm alone and is no graph output; the activation joins when it
 * is the first node to read the batchnorm's output as its input 0, the only
 * reader, the output no graph output, and its backward can work from its
 * output (activations.h NNC_FROM_Y, or NNC_FROM_XS with a positive slope),
 * since the batchnorm's own output is never stored. The activation node goes;
 * its readers read the batchnorm's output. Keeps: everything else, in order. */
#include "passes.h"

#include <stdlib.h>

/* Whether the backward of activation node a can read its output instead of its input. */
static bool act_from_output(const IrNode *a)
{
    ActKind act = ir_ops[a->op].act;
    int from = ir_act_from(act);
    return act != ACT_NONE && (from == NNC_FROM_Y || (from == NNC_FROM_XS && a->attr.act.slope > 0.0f));
}

bool pass_fuse_bn_train(IrGraph *g, char *err, size_t errlen)
{
    size_t nv = (size_t)(g->n_values ? g->n_values : 1), nn = (size_t)(g->n_nodes ? g->n_nodes : 1);
    int32_t *uses = nnc_xcalloc(nv, sizeof *uses);
    int32_t *bn_of = nnc_xmalloc(nn * sizeof *bn_of);   /* conv node -> its batchnorm node */
    int32_t *act_of = nnc_xmalloc(nn * sizeof *act_of); /* batchnorm node -> its activation node */
    bool *gone = nnc_xcalloc(nn, sizeof *gone);          /* activation nodes folded away */
    int fused = 0;
    for (int32_t i = 0; i < g->n_ins; i++) uses[g->ins[i]]++;
    for (int32_t o = 0; o < g->n_outputs; o++) uses[g->outputs[o].value] += 2;  /* an output is never fused away */
    for (int32_t i = 0; i < g->n_nodes; i++) bn_of[i] = act_of[i] = -1;
    for (int32_t b = 0; b < g->n_nodes; b++) {
        const IrNode *bn = &g->nodes[b];
        if (bn->op != OP_BATCHNORM) continue;
        int32_t x = ir_in(g, bn, 0), c = g->values[x].node;
        if (c < 0 || g->nodes[c].op != OP_CONV2D || uses[x] != 1 || bn_of[c] >= 0) continue;
        bn_of[c] = b;
        fused++;
        if (uses[bn->out] != 1) continue;
        for (int32_t a = b + 1; a < g->n_nodes; a++) {
            const IrNode *an = &g->nodes[a];
            if (an->n_in < 1 || ir_in(g, an, 0) != bn->out) continue;
            if (act_from_output(an)) act_of[b] = a, gone[a] = true;
            break;
        }
    }
    free(uses);
    if (!fused) {
        free(bn_of), free(act_of), free(gone);
        return true;
    }
    int32_t *map;
    IrGraph *ng = pass_rebuild_begin(g, NULL, &map);
    bool ok = true;
    bool *is_bn = nnc_xcalloc(nn, sizeof *is_bn);
    for (int32_t i = 0; i < g->n_nodes; i++)
        if (bn_of[i] >= 0) is_bn[bn_of[i]] = true;
    for (int32_t i = 0; i < g->n_nodes && ok; i++) {
        const IrNode *n = &g->nodes[i];
        if (gone[i]) {  /* the activation: its value is the batchnorm's now */
            map[n->out] = map[ir_in(g, n, 0)];
            continue;
        }
        IrNode copy = *n;
        if (bn_of[i] >= 0) copy.attr.conv.bn_stats = true;
        if (is_bn[i]) {
            copy.attr.bn.fused = true;
            if (act_of[i] >= 0) {
                const IrNode *a = &g->nodes[act_of[i]];
                copy.attr.bn.act = ir_ops[a->op].act;
                copy.attr.bn.slope = ir_act_has_slope(copy.attr.bn.act) ? a->attr.act.slope : 0.0f;
            }
        }
        map[n->out] = pass_copy_node(ng, g, &copy, map, err, errlen);
        ok = map[n->out] >= 0;
    }
    free(bn_of), free(act_of), free(gone), free(is_bn);
    return pass_rebuild_end(g, ng, map, ok);
}
