/* verify.c: the IR verifier (STYLE.md 7).
 *
 * Checks what every pass must keep true: ids in range, each node's inputs made
 * by earlier nodes (topological order), arity and attribute kind as the op
 * table says, each value produced by the node that claims it, and every shape
 * equal to what the op's shape rule computes now. Passes run it between
 * themselves in debug builds; tests run it on every graph they build. */
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

static bool verify_node(const IrGraph *g, int32_t i, char *err, size_t errlen)
{
    const IrNode *n = &g->nodes[i];
    const OpInfo *info = &ir_ops[n->op];
    if (n->op <= OP_PARAM || n->op >= OP_COUNT) BAD("node %d has an invalid op %d", i, (int)n->op);
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
    return true;
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
