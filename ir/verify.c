/* verify.c: the IR verifier (STYLE.md 7).
 *
 * Checks what every pass must keep true: ids in range (the op, each input
 * list and input value, each node's output value, each value's producer, the
 * graph's outputs); only activations have a producing node, and every rank is
 * 1 .. IR_MAX_RANK; each node's inputs made by earlier nodes (topological
 * order) and of dtype f32; the arity within the op table's MIN..MAX; each
 * node's output value naming that node as its producer; and every stored shape
 * equal to what the op's shape rule computes now. Attributes are checked only
 * as far as the shape rule reads them (kernel, stride, dilation and padding,
 * groups, the bias flag against the arity, the epilogue and prologue
 * activations, the concat axis, the slice range): the attribute kind is not
 * checked (IrAttr is an untagged union, its member implied by the op), nor
 * values no rule reads (batchnorm's eps and momentum, dropout's p). Not
 * checked either: that a value naming a producer is that node's output, and
 * the graph's inputs and params lists. passes/pass.c runs it before the first
 * pass and after each one unless NDEBUG is defined (CMake defines it for
 * RelWithDebInfo and Release, so only Debug builds verify);
 * tests/unit/test_verify.c shows it refusing each kind of broken graph, and
 * the pass tests run it on the graphs they build. */
#include "ir.h"

#include <stdio.h>
#include <string.h>

#define BAD(...) do { snprintf(err, errlen, __VA_ARGS__); return false; } while (0)

static bool same_shape(const IrShape *a, const IrShape *b)
{
    if (a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (a->dim[i] != b->dim[i]) return false;
    return true;
}

/* The layouts (ir.h Layout): the output's is what ir_node_layout says; a
 * blocked conv2d reads its image (but a stem, ir_conv_stem_blocked) and residual blocked, a blocked pool its
 * image, a reorder the other layout than it makes, add two of one layout,
 * global_avgpool either; every other activation input is NCHW. */
static bool verify_layouts(const IrGraph *g, int32_t i, char *err, size_t errlen)
{
    const IrNode *n = &g->nodes[i];
    const char *name = ir_ops[n->op].name;
    Layout out = g->values[n->out].layout;
    if (out != ir_node_layout(g, n))
        BAD("node %d (%s) makes a value in %s, but its op gives %s", i, name, ir_layout_name(out),
            ir_layout_name(ir_node_layout(g, n)));
    if (n->op == OP_CONV2D && n->attr.conv.blocked &&
        (n->attr.conv.pro.on || n->attr.conv.epi.act_channels ||
         (n->attr.conv.groups != 1 && n->attr.conv.groups != n->attr.conv.out_channels)))
        BAD("node %d (conv2d +blocked) has a prologue, a partial activation or groups other than 1 or depthwise", i);
    for (int j = 0; j < n->n_in; j++) {
        const IrValue *v = &g->values[ir_in(g, n, j)];
        Layout want = LAYOUT_NCHW;
        if (v->kind == VK_PARAM) continue;
        if (n->op == OP_REORDER) want = n->attr.reorder.to == LAYOUT_NCHW ? LAYOUT_NCHW16C : LAYOUT_NCHW;
        else if (n->op == OP_CONV2D && n->attr.conv.blocked && j == ir_residual_in(n)) want = LAYOUT_NCHW16C;
        else if (n->op == OP_CONV2D && n->attr.conv.blocked && j == 0)  /* a stem (few channels) may read NCHW */
            want = ir_conv_stem_blocked(g, n) && v->shape.dim[0] < IR_BLOCK / 2 ? LAYOUT_NCHW : LAYOUT_NCHW16C;
        else if ((n->op == OP_MAXPOOL2D || n->op == OP_AVGPOOL2D) && n->attr.pool.blocked) want = LAYOUT_NCHW16C;
        else if (n->op == OP_GLOBAL_AVGPOOL) continue;
        else if (n->op == OP_ADD || n->op == OP_IDENTITY || n->op == OP_DROPOUT || ir_ops[n->op].act != ACT_NONE)
            want = g->values[ir_in(g, n, 0)].layout;
        if (v->layout != want)
            BAD("node %d (%s) reads %%%d in %s where it takes %s", i, name, ir_in(g, n, j), ir_layout_name(v->layout),
                ir_layout_name(want));
    }
    return true;
}

static bool verify_node(const IrGraph *g, int32_t i, char *err, size_t errlen)
{
    const IrNode *n = &g->nodes[i];
    if ((int)n->op <= OP_PARAM || (int)n->op >= OP_COUNT) BAD("node %d has an invalid op %d", i, (int)n->op);
    const OpInfo *info = &ir_ops[n->op];  /* only once op is known to be in range */
    if (n->n_in < info->min_in || (info->max_in >= 0 && n->n_in > info->max_in))
        BAD("node %d (%s) has %d inputs", i, info->name, n->n_in);
    if (n->in_first < 0 || n->in_first + n->n_in > g->n_ins) BAD("node %d has its inputs out of range", i);
    for (int j = 0; j < n->n_in; j++) {
        int32_t v = ir_in(g, n, j);
        if (v < 0 || v >= g->n_values) BAD("node %d input %d is an invalid value %d", i, j, v);
        int32_t p = g->values[v].node;
        if (p >= i) BAD("node %d (%s) reads %%%d before node %d makes it", i, info->name, v, p);
        if (g->values[v].dtype != DT_F32) BAD("node %d reads %%%d of a dtype it does not support", i, v);
    }
    if (n->out < 0 || n->out >= g->n_values || g->values[n->out].node != i)
        BAD("node %d (%s) claims value %d, which does not name it as producer", i, info->name, n->out);
    IrShape s;
    memset(&s, 0, sizeof s);
    char why[256];
    if (!info->shape(g, n, &s, why, sizeof why)) BAD("node %d (%s): %s", i, info->name, why);
    if (!same_shape(&s, &g->values[n->out].shape)) {
        char a[96], b[96];
        BAD("node %d (%s) has shape %s, but its rule gives %s", i, info->name,
            ir_shape_str(&g->values[n->out].shape, a, sizeof a), ir_shape_str(&s, b, sizeof b));
    }
    return verify_layouts(g, i, err, errlen);
}

bool ir_verify(const IrGraph *g, char *err, size_t errlen)
{
    for (int32_t v = 0; v < g->n_values; v++) {
        const IrValue *x = &g->values[v];
        if ((x->kind == VK_ACT) != (x->node >= 0)) BAD("value %d: only activations have a producing node", v);
        if (x->node >= g->n_nodes) BAD("value %d names a node %d that does not exist", v, x->node);
        if (x->shape.rank < 1 || x->shape.rank > IR_MAX_RANK) BAD("value %d has rank %d", v, x->shape.rank);
    }
    for (int32_t i = 0; i < g->n_nodes; i++)
        if (!verify_node(g, i, err, errlen)) return false;
    for (int32_t i = 0; i < g->n_outputs; i++)
        if (g->outputs[i].value < 0 || g->outputs[i].value >= g->n_values) BAD("output %d is an invalid value", i);
    return true;
}
