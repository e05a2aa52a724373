/* layout_blocked.c: the blocked channel layout NCHW16c (ir.h Layout) where it
 * pays: convolutions, and the elementwise ops and pools between them, compute
 * on tensors whose pixels hold 16 channels in one vector
 * (runtime/snippets/kernels_blocked*.c); reorders convert at the edges of
 * such a region, so the graph's inputs and outputs, and every op without a
 * blocked kernel, still see NCHW.
 *
 *   x -> conv2d -> relu6 -> conv2d(dw) -> conv2d -> add -> flatten
 *   x -> reorder(to nchw16c) -> conv2d+blocked -> relu6 -> conv2d+blocked
 *     -> conv2d+blocked -> add -> reorder(to nchw) -> flatten
 *
 * Which convolutions (blocked_mode): NNC_BLOCKED in nnc's environment, 0
 * never, 1 every eligible one, else (auto, the default) every eligible one
 * that pack_weights would not run by Winograd (pass_winograd_fits): those
 * multiply-add 4x less in NCHW, and VGG-16, all of whose 3x3 layers
 * qualify, ran 1.45x slower blocked. Measured at one thread, the auto rule
 * against NCHW everywhere (NNC_BLOCKED=0), same driver, two alternations:
 * MobileNet-v2 9.6 -> 4.6 ms, ResNet-18 22 -> 17.8, ResNet-50 51 -> 44.5,
 * AlexNet 21-25 -> 20, DenseNet-121 40 -> 38.5, VGG-16 unchanged. Auto also
 * leaves networks that concatenate channels alone (GoogLeNet, DenseNet):
 * there is no blocked concat yet, so every concat costs reorders around it
 * (GoogLeNet's kernels 74 -> 142), for GoogLeNet 1.5% slower, DenseNet ~3%
 * faster, both within the noise of those runs.
 * Eligible (eligible): conv2d of a constant weight, ungrouped or depthwise,
 * without a prologue or a partial activation. An ungrouped one of fewer than
 * IR_BLOCK / 2 input channels made in NCHW (an RGB stem's 3: padded to a
 * block, mostly zeros) reads its image as it is and writes NCHW16c
 * (ir_conv_stem_blocked).
 *
 * Then, node by node in order: an eligible convolution reads its image and
 * residual blocked and writes blocked; an elementwise op (activations, add)
 * whose input is blocked stays blocked, as a max or average pool does;
 * global_avgpool reads either layout and writes features; every other op
 * reads NCHW. A value needed in the layout it was not made in gets one
 * reorder node, made at its first such reader and shared by the others.
 *
 * Requires: a verified inference graph (-O2), after fold_bn, fuse_epilogue
 * and fuse_prologue, before fuse_dwpw, fuse_siblings and pack_weights (which
 * leave blocked convolutions alone, but for pack_weights packing their
 * weights with pack_blocked).
 * Keeps: inputs, parameters and outputs, and the values of everything, up to
 * rounding (the blocked kernels sum in another order than im2col + GEMM). */
#include "pack_weights.h"
#include "passes.h"

#include <stdlib.h>
#include <string.h>

static int blocked_mode(void)
{
    const char *e = getenv("NNC_BLOCKED");
    return e && strcmp(e, "0") == 0 ? 0 : e && strcmp(e, "1") == 0 ? 1 : 2;
}

static bool is_depthwise(const IrGraph *g, const IrNode *n)
{
    const ConvAttr *c = &n->attr.conv;
    int64_t ch = ir_in_shape(g, n, 0)->dim[0];
    return n->op == OP_CONV2D && ch > 1 && c->groups == ch && c->out_channels == ch;
}

/* mode: blocked_mode() (2, auto: not where Winograd runs) */
static bool eligible(const IrGraph *g, const IrNode *n, const bool *is_const, int mode)
{
    const ConvAttr *c = &n->attr.conv;
    if (mode == 2 && pass_winograd_fits(g, n)) return false;
    if (n->op != OP_CONV2D || c->pro.on || c->epi.act_channels || c->packed || c->winograd || c->blocked) return false;
    if (ir_in_shape(g, n, 0)->rank != 3 || !is_const[ir_in(g, n, 1)]) return false;
    return is_depthwise(g, n) || c->groups == 1;
}

static bool is_elementwise(OpKind op)
{
    return op == OP_ADD || op == OP_IDENTITY || op == OP_DROPOUT || ir_ops[op].act != ACT_NONE;
}

typedef struct {
    const IrGraph *g;
    IrGraph *ng;
    int32_t *map;   /* old value -> new value, in the layout its node makes */
    int32_t *alt;   /* old value -> its reorder into the other layout, or -1 */
    char *err;
    size_t errlen;
} Rewrite;

/* Old value v in layout want: as made, or through its (shared) reorder. */
static int32_t in_layout(Rewrite *w, int32_t v, Layout want)
{
    int32_t nv = w->map[v];
    if (nv < 0 || w->ng->values[nv].layout == want || w->ng->values[nv].kind == VK_PARAM) return nv;
    if (w->alt[v] < 0) {
        const IrValue *ov = &w->g->values[v];
        const IrNode *p = ov->node >= 0 ? &w->g->nodes[ov->node] : NULL;
        IrAttr a;
        memset(&a, 0, sizeof a);
        a.reorder.to = want;
        w->alt[v] = ir_add_node(w->ng, OP_REORDER, &nv, 1, &a, p ? p->loc : w->g->loc, p ? p->scope : NULL, w->err,
                                w->errlen);
    }
    return w->alt[v];
}

static bool any_blocked_input(const Rewrite *w, const IrNode *n)
{
    for (int j = 0; j < n->n_in; j++) {
        int32_t nv = w->map[ir_in(w->g, n, j)];
        if (nv >= 0 && w->ng->values[nv].layout == LAYOUT_NCHW16C) return true;
    }
    return false;
}

bool pass_layout_blocked(IrGraph *g, char *err, size_t errlen)
{
    int mode = blocked_mode();
    if (mode == 0) return true;
    bool *is_const = nnc_xcalloc((size_t)(g->n_values ? g->n_values : 1), sizeof *is_const);
    bool any = false, concat = false;
    ir_mark_constants(g, is_const);
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const IrNode *n = &g->nodes[i];
        any |= eligible(g, n, is_const, mode);
        concat |= n->op == OP_CONCAT && n->attr.concat.axis == 0 && !is_const[n->out];
    }
    if (!any || (mode == 2 && concat)) {
        free(is_const);
        return true;
    }
    Rewrite w = {g, NULL, NULL, NULL, err, errlen};
    w.ng = pass_rebuild_begin(g, NULL, &w.map);
    w.alt = nnc_xmalloc((size_t)(g->n_values ? g->n_values : 1) * sizeof *w.alt);
    for (int32_t v = 0; v < g->n_values; v++) w.alt[v] = -1;
    bool ok = true;
    for (int32_t i = 0; i < g->n_nodes && ok; i++) {
        const IrNode *n = &g->nodes[i];
        IrAttr a = n->attr;
        Layout want = LAYOUT_NCHW;
        bool keep = false;  /* global_avgpool: reads whatever it is given */
        if (eligible(g, n, is_const, mode)) {
            a.conv.blocked = true;
            want = LAYOUT_NCHW16C;
        } else if ((is_elementwise(n->op) || ((n->op == OP_MAXPOOL2D || n->op == OP_AVGPOOL2D) &&
                                              ir_in_shape(g, n, 0)->rank == 3)) &&
                   any_blocked_input(&w, n)) {
            if (n->op == OP_MAXPOOL2D || n->op == OP_AVGPOOL2D) a.pool.blocked = true;
            want = LAYOUT_NCHW16C;
        } else if (n->op == OP_GLOBAL_AVGPOOL) {
            keep = true;
        }
        int32_t ins[256];
        if (n->n_in > (int)NNC_COUNT(ins)) {
            ok = (w.map[n->out] = pass_copy_node(w.ng, g, n, w.map, err, errlen)) >= 0;
            continue;
        }
        for (int j = 0; j < n->n_in && ok; j++) {
            int32_t v = ir_in(g, n, j);
            bool image = j == 0 || is_elementwise(n->op) || (n->op == OP_CONV2D && j == ir_residual_in(n));
            /* a stem: few channels made in NCHW (an image) are read as they are, not padded to a block */
            bool stem = j == 0 && a.conv.blocked && a.conv.groups == 1 && ir_in_shape(g, n, 0)->dim[0] < IR_BLOCK / 2 &&
                        w.ng->values[w.map[v]].layout == LAYOUT_NCHW;
            ins[j] = keep ? w.map[v] : in_layout(&w, v, image && !stem ? want : LAYOUT_NCHW);
            ok = ins[j] >= 0;
        }
        if (ok) ok = (w.map[n->out] = ir_add_node(w.ng, n->op, ins, n->n_in, &a, n->loc, n->scope, err, errlen)) >= 0;
    }
    /* the graph's outputs in NCHW: a reorder where their node made them blocked */
    for (int32_t o = 0; o < g->n_outputs && ok; o++) {
        int32_t v = g->outputs[o].value, nv = in_layout(&w, v, LAYOUT_NCHW);
        ok = nv >= 0;
        if (ok && nv != w.map[v]) w.map[v] = nv;  /* pass_rebuild_end names map[v] as the output */
    }
    free(w.alt);
    free(is_const);
    return pass_rebuild_end(g, w.ng, w.map, ok);
}
