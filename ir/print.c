/* print.c: the graph as text (--emit=ir) and as Graphviz (--emit=dot).
 *
 * Text form, one line per value, in topological order:
 *
 *   graph lenet5
 *     input  %0 image [1, 28, 28]
 *     param  %1 conv0.weight [6, 1, 5, 5]
 *     %3 = conv2d(%0, %1, %2) k=5x5 s=1x1 p=2x2 d=1x1 g=1 [6, 28, 28]   # lenet5.net:4:22
 *     %9 = conv2d(%7, %8, %4, %6) k=3x3 s=1x1 p=1x1 d=1x1 g=1 +res relu [6, 28, 28]   # with an epilogue
 *     %11 = reorder(%9) to=nchw16c [6, 28, 28] nchw16c   # a value not in NCHW names its layout
 *     output logits = %12
 *
 * Stable and diffable: golden tests compare it byte for byte. */
#include "ir.h"

#include <stdio.h>
#include <string.h>

/* " +res relu", " leaky_relu slope=0.1", "" (no epilogue). */
static void print_epilogue(const Epilogue *e, StrBuf *out)
{
    if (e->residual) sb_append(out, " +res");
    if (e->act != ACT_NONE) sb_printf(out, " %s", ir_act_name(e->act));
    if (e->act == ACT_LEAKY_RELU) sb_printf(out, " slope=%g", e->slope);
    if (e->act_channels) sb_printf(out, " on=0..%d", e->act_channels - 1);
}

/* " pro relu" / " pro" (affine only) / "" (no prologue). */
static void print_prologue(const Prologue *p, StrBuf *out)
{
    if (!p->on) return;
    sb_append(out, " pro");
    if (p->act != ACT_NONE) sb_printf(out, " %s", ir_act_name(p->act));
    if (p->act == ACT_LEAKY_RELU) sb_printf(out, " slope=%g", p->slope);
}

static void print_attr(const IrNode *n, StrBuf *out)
{
    const IrAttr *a = &n->attr;
    switch (ir_ops[n->op].attr) {
    case AT_CONV:
        sb_printf(out, " k=%dx%d s=%dx%d p=%dx%d d=%dx%d g=%d", a->conv.kh, a->conv.kw, a->conv.sh, a->conv.sw,
                  a->conv.ph, a->conv.pw, a->conv.dh, a->conv.dw, a->conv.groups);
        if (n->op == OP_CONV_T2D) sb_printf(out, " op=%dx%d", a->conv.oph, a->conv.opw);
        print_prologue(&a->conv.pro, out);
        print_epilogue(&a->conv.epi, out);
        if (a->conv.bn_stats) sb_append(out, " +bn_stats");
        if (a->conv.packed) sb_append(out, " +packed");
        if (a->conv.winograd) sb_append(out, " +winograd");
        if (a->conv.blocked) sb_append(out, " +blocked");
        break;
    case AT_POOL:
        sb_printf(out, " k=%dx%d s=%dx%d p=%dx%d", a->pool.kh, a->pool.kw, a->pool.sh, a->pool.sw, a->pool.ph, a->pool.pw);
        if (a->pool.dh != 1 || a->pool.dw != 1) sb_printf(out, " d=%dx%d", a->pool.dh, a->pool.dw);
        if (a->pool.ceil_mode) sb_append(out, " ceil");
        if (n->op == OP_AVGPOOL2D && !a->pool.count_include_pad) sb_append(out, " exclude_pad");
        if (a->pool.blocked) sb_append(out, " +blocked");
        break;
    case AT_BN:
        if (n->op != OP_BATCHNORM) {  /* the fold ops: momentum means nothing there */
            sb_printf(out, " eps=%g", a->bn.eps);
            break;
        }
        sb_printf(out, " eps=%g momentum=%g", a->bn.eps, a->bn.momentum);
        if (a->bn.fused) {  /* training: statistics from the conv, then act */
            sb_append(out, " fused");
            if (a->bn.act != ACT_NONE) sb_printf(out, " %s", ir_act_name(a->bn.act));
            if (ir_act_has_slope(a->bn.act)) sb_printf(out, " slope=%g", a->bn.slope);
        }
        break;
    case AT_LINEAR:
        sb_printf(out, " out=%d", a->linear.out_features);
        print_epilogue(&a->linear.epi, out);
        break;
    case AT_ACT: sb_printf(out, " slope=%g", a->act.slope); break;
    case AT_DROPOUT: sb_printf(out, " p=%g", a->dropout.p); break;
    case AT_LRN: sb_printf(out, " size=%d alpha=%g beta=%g k=%g", a->lrn.size, a->lrn.alpha, a->lrn.beta, a->lrn.k); break;
    case AT_ADAPTIVE:
        sb_printf(out, " out=%dx%d", a->adaptive.oh, a->adaptive.ow);
        print_prologue(&a->adaptive.pro, out);
        break;
    case AT_CONCAT: sb_printf(out, " axis=%d%s", a->concat.axis, a->concat.in_place ? " in_place" : ""); break;
    case AT_SLICE: sb_printf(out, " channels=%d..%d", a->slice.start, a->slice.start + a->slice.count - 1); break;
    case AT_DWPW:
        sb_printf(out, " dw k=%dx%d s=%dx%d p=%dx%d d=%dx%d", a->dwpw.dw.kh, a->dwpw.dw.kw, a->dwpw.dw.sh,
                  a->dwpw.dw.sw, a->dwpw.dw.ph, a->dwpw.dw.pw, a->dwpw.dw.dh, a->dwpw.dw.dw);
        if (a->dwpw.dw.epi.act != ACT_NONE) sb_printf(out, " %s", ir_act_name(a->dwpw.dw.epi.act));
        if (a->dwpw.dw.epi.act == ACT_LEAKY_RELU) sb_printf(out, " slope=%g", a->dwpw.dw.epi.slope);
        sb_printf(out, " pw out=%d", a->dwpw.pw.out_channels);
        if (a->dwpw.pw.packed) sb_append(out, " +packed");
        print_epilogue(&a->dwpw.pw.epi, out);
        break;
    case AT_REORDER: sb_printf(out, " to=%s", ir_layout_name(a->reorder.to)); break;
    case AT_NONE: break;
    }
}

void ir_print(const IrGraph *g, StrBuf *out)
{
    char buf[96];
    sb_printf(out, "graph %s\n", g->name);
    for (int32_t i = 0; i < g->n_inputs; i++) {
        const IrValue *v = &g->values[g->inputs[i]];
        sb_printf(out, "  input  %%%d %s %s\n", g->inputs[i], v->name, ir_shape_str(&v->shape, buf, sizeof buf));
    }
    for (int32_t i = 0; i < g->n_params; i++) {
        const IrValue *v = &g->values[g->params[i]];
        sb_printf(out, "  param  %%%d %s %s\n", g->params[i], v->name, ir_shape_str(&v->shape, buf, sizeof buf));
    }
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const IrNode *n = &g->nodes[i];
        sb_printf(out, "  %%%d = %s(", n->out, ir_ops[n->op].name);
        for (int j = 0; j < n->n_in; j++) sb_printf(out, j ? ", %%%d" : "%%%d", ir_in(g, n, j));
        sb_append(out, ")");
        print_attr(n, out);
        sb_printf(out, " %s", ir_shape_str(&g->values[n->out].shape, buf, sizeof buf));
        if (g->values[n->out].layout != LAYOUT_NCHW) sb_printf(out, " %s", ir_layout_name(g->values[n->out].layout));
        if (n->loc.file) {
            const char *base = strrchr(n->loc.file, '/');
            sb_printf(out, "   # %s:%d:%d", base ? base + 1 : n->loc.file, n->loc.line, n->loc.col);
        }
        sb_append(out, "\n");
    }
    for (int32_t i = 0; i < g->n_outputs; i++)
        sb_printf(out, "  output %s = %%%d\n", g->outputs[i].name, g->outputs[i].value);
}

/* Graphviz: one box per op with its output shape; params are folded into the
 * box of the op that uses them, so the picture shows the network, not its weights. */
void ir_print_dot(const IrGraph *g, StrBuf *out)
{
    char buf[96];
    sb_printf(out, "digraph \"%s\" {\n  rankdir=TB;\n  node [shape=box, fontname=\"Helvetica\", fontsize=10];\n", g->name);
    for (int32_t i = 0; i < g->n_inputs; i++) {
        const IrValue *v = &g->values[g->inputs[i]];
        sb_printf(out, "  v%d [label=\"input %s\\n%s\", shape=ellipse];\n", g->inputs[i], v->name,
                  ir_shape_str(&v->shape, buf, sizeof buf));
    }
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const IrNode *n = &g->nodes[i];
        sb_printf(out, "  v%d [label=\"%s", n->out, ir_ops[n->op].name);
        if (n->scope) sb_printf(out, " %s", n->scope);
        StrBuf attr = {0};
        print_attr(n, &attr);
        if (attr.len) sb_printf(out, "\\n%s", attr.data + 1);
        sb_free(&attr);
        sb_printf(out, "\\n%s\"];\n", ir_shape_str(&g->values[n->out].shape, buf, sizeof buf));
        for (int j = 0; j < n->n_in; j++) {
            int32_t src = ir_in(g, n, j);
            if (g->values[src].kind != VK_PARAM) sb_printf(out, "  v%d -> v%d;\n", src, n->out);
        }
    }
    for (int32_t i = 0; i < g->n_outputs; i++) {
        sb_printf(out, "  out%d [label=\"output %s\", shape=ellipse];\n", i, g->outputs[i].name);
        sb_printf(out, "  v%d -> out%d;\n", g->outputs[i].value, i);
    }
    sb_append(out, "}\n");
}
