/* pack_weights.c: weights packed once, at create, into the layout the GEMM's
 * micro-kernel reads (inference, -O2; the last rewrite before memory planning).
 *
 *   conv2d(x, w, ...)                          conv2d+packed(x, pack_weights(w), ...)
 *   conv2d(x, bn_fold_weight(w, g, v), ...)    conv2d+packed(x, pack_weights(w, g, v), ...)
 *   dwpw(x, dw, [b], pw, ...)                  dwpw+packed(x, dw, [b], pack_weights(pw), ...)
 *
 * A weight is a constant, so reordering it costs nothing at run time: the
 * kernel (runtime/snippets/kernels_parallel.c nnc_gemm_packed) then streams
 * panels of 8 output channels column by column instead of gathering them
 * from 8 rows for every block of every call. The second form folds the
 * batchnorm while packing (same arithmetic as bn_fold_weight, bit for bit),
 * so the folded weight never exists unpacked: the constants keep one copy of
 * the weights, not two. It fires when the bn_fold_weight is read by this
 * conv alone (fuse_siblings' merged weights and shared weights keep their
 * node, and pack_weights reads its output).
 *
 *   conv2d(x, w, ...) 3x3, stride 1           conv2d+winograd(x, winograd_weights(w), ...)
 *   conv2d+blocked(x, w, ...)                  conv2d+blocked+packed(x, pack_blocked(w), ...)
 *   conv2d+blocked(x, w, ...) depthwise        conv2d+blocked+packed(x, pack_dw_blocked(w), ...)
 *
 * The third form (winograd_fits) takes the weight to Winograd's transformed
 * domain instead (kernels_winograd.c), folding a batchnorm the same way.
 * Only ungrouped convolutions (groups = 1) of more than one input channel are
 * packed (nnc_conv2d runs one input channel as a direct loop, without a GEMM
 * or scratch, as it runs depthwise ones): depthwise ones run a
 * direct loop (dwpw's pointwise half is packed: it is a 1x1 conv2d), linear
 * layers keep nnc_linear, and a conv2d whose weight is computed from an input
 * is not constant.
 * The graph is rebuilt, as dce.c does; a fold node absorbed here is dropped. */
#include "pack_weights.h"
#include "passes.h"

#include <stdlib.h>
#include <string.h>

/* NNC_WINOGRAD in nnc's environment: 0 never, 1 every layer that can, else
 * (auto, the default) the layers where it measured faster. */
static int winograd_mode(void)
{
    const char *e = getenv("NNC_WINOGRAD");
    return e && strcmp(e, "0") == 0 ? 0 : e && strcmp(e, "1") == 0 ? 1 : 2;
}

/* Whether conv2d n runs by Winograd's F(4x4, 3x3) (kernels_winograd.c): 3x3,
 * stride 1, undilated, ungrouped, no prologue; and by default (auto) at
 * least 16 input channels and 16 output tiles of 4x4 in a batch of the
 * largest size the code is built for (at batch 1, maps of 13x13 and up):
 * with fewer, the weights (4x larger transformed) are read for too few
 * tiles and the GEMM runs mostly in padding. bench/conv3x3.c, one thread, at
 * batch 1: 1.55x faster at 56x56 (64 channels), 2.1x at 14x14 (256), 1.3x
 * at 7x7 (512; left out: 4 tiles, half a panel, and ResNet-50's 7x7 layers
 * would add 85 MB of transformed weights). With the weights cold, as in a
 * network (bench/conv3x3.c COLD=1), 14x14 at batch 1 stays ~1.9x faster than
 * im2col + GEMM (1.2 against 2.3 ms, one thread), and in ResNet-50 its five
 * layers took 10.4 ms against 21.6 with NNC_WINOGRAD=0 (medians of 3
 * alternations, machine loaded): the rule is unchanged. */
static bool winograd_fits(const IrGraph *g, const IrNode *n, int mode)
{
    const ConvAttr *c = &n->attr.conv;
    const IrShape *x = ir_in_shape(g, n, 0), *y = &g->values[n->out].shape;
    if (mode == 0 || c->kh != 3 || c->kw != 3 || c->sh != 1 || c->sw != 1 || c->dh != 1 || c->dw != 1 ||
        c->groups != 1 || c->pro.on)
        return false;
    if (36 * x->dim[0] * ((c->out_channels + 31) / 32 * 32) > IR_MAX_ELEMS)  /* the transformed weight */
        return false;  /* would be too large a tensor: the layer keeps the direct convolution */
    int64_t batch = g->max_batch > 1 ? g->max_batch : 1;
    return mode == 1 || (x->dim[0] >= 16 && batch * ((y->dim[1] + 3) / 4) * ((y->dim[2] + 3) / 4) >= 16);
}

bool pass_winograd_fits(const IrGraph *g, const IrNode *n)
{
    return n->op == OP_CONV2D && winograd_fits(g, n, winograd_mode());
}

/* The input index of node n's weight to pack, or -1: a conv2d's (one input
 * channel, LeNet's first layer, runs nnc_conv2d's direct loop, no GEMM), a
 * blocked conv2d's (groups 1 or depthwise: layout_blocked.c chose them), or
 * a dwpw's pointwise half. *wino: a conv2d that runs by Winograd. */
static int packable(const IrGraph *g, const IrNode *n, const bool *is_const, int mode, bool *wino)
{
    int wi = -1;
    *wino = false;
    if (n->op == OP_CONV2D && n->attr.conv.blocked && !n->attr.conv.packed) {
        return is_const[ir_in(g, n, 1)] ? 1 : -1;
    }
    if (n->op == OP_CONV2D && n->attr.conv.groups == 1 && !n->attr.conv.packed && !n->attr.conv.winograd &&
        ir_in_shape(g, n, 1)->dim[1] > 1)
        wi = 1;
    if (n->op == OP_DWPW && !n->attr.dwpw.pw.packed) wi = ir_dwpw_pw_in(n);
    if (wi < 0 || !is_const[ir_in(g, n, wi)]) return -1;
    *wino = n->op == OP_CONV2D && winograd_fits(g, n, mode);
    return wi;
}

bool pass_pack_weights(IrGraph *g, char *err, size_t errlen)
{
    PassReads r;
    bool *absorbed = nnc_xcalloc((size_t)(g->n_nodes ? g->n_nodes : 1), sizeof *absorbed);  /* folds packing takes over */
    const bool *is_const;
    int n_packed = 0, mode = winograd_mode();
    bool wino;
    pass_reads_init(&r, g);
    is_const = r.is_const;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const IrNode *n = &g->nodes[i];
        int wi = packable(g, n, is_const, mode, &wino);
        if (wi < 0) continue;
        int32_t w = ir_in(g, n, wi), p = g->values[w].node;
        n_packed++;
        if (p >= 0 && g->nodes[p].op == OP_BN_FOLD_WEIGHT && pass_sole_reader(&r, w)) absorbed[p] = true;
    }
    if (!n_packed) {
        pass_reads_free(&r), free(absorbed);
        return true;
    }
    int32_t *map;
    IrGraph *ng = pass_rebuild_begin(g, NULL, &map);
    bool ok = true;
    for (int32_t i = 0; i < g->n_nodes && ok; i++) {
        const IrNode *n = &g->nodes[i];
        if (absorbed[i]) continue;  /* packed (and folded) at its conv */
        int wi = packable(g, n, is_const, mode, &wino);
        if (wi < 0) {
            map[n->out] = pass_copy_node(ng, g, n, map, err, errlen);
            ok = map[n->out] >= 0;
            continue;
        }
        int32_t w = ir_in(g, n, wi), p = g->values[w].node, pin[3];
        int npin = 1;
        IrAttr pa;
        memset(&pa, 0, sizeof pa);
        if (p >= 0 && absorbed[p]) {
            const IrNode *f = &g->nodes[p];
            pin[0] = map[ir_in(g, f, 0)], pin[1] = map[ir_in(g, f, 1)], pin[2] = map[ir_in(g, f, 2)];
            npin = 3;
            pa.bn.eps = f->attr.bn.eps;
        } else {
            pin[0] = map[w];
        }
        OpKind pack = wino ? OP_WINOGRAD_WEIGHTS : OP_PACK_WEIGHTS;
        if (n->op == OP_CONV2D && n->attr.conv.blocked)
            pack = n->attr.conv.groups != 1 ? OP_PACK_DW_BLOCKED : ir_conv_stem_blocked(g, n) ? OP_PACK_NCHW_BLOCKED
                                                                                               : OP_PACK_BLOCKED;
        int32_t pw = ir_add_node(ng, pack, pin, npin, &pa, n->loc, n->scope, err, errlen);
        ok = pw >= 0;
        if (!ok) break;
        int32_t ins[8];
        for (int j = 0; j < n->n_in; j++) ins[j] = j == wi ? pw : map[ir_in(g, n, j)];
        IrAttr ca = n->attr;
        if (n->op == OP_DWPW) ca.dwpw.pw.packed = true;
        else if (wino) ca.conv.winograd = true;
        else ca.conv.packed = true;
        map[n->out] = ir_add_node(ng, n->op, ins, n->n_in, &ca, n->loc, n->scope, err, errlen);
        ok = map[n->out] >= 0;
    }
    pass_reads_free(&r), free(absorbed);
    return pass_rebuild_end(g, ng, map, ok);
}
