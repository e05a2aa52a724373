/* ir.c: building graphs. Nodes are appended after their inputs, so the node
 * array is always in topological order; the shape of every new node is
 * inferred at once, which lets the elaborator report a mismatch at the DSL
 * expression that caused it. */
#include "ir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Grows an array of the graph; the old block stays in the arena (freed with it). */
#define IR_GROW(g, arr, n, cap)                                                  \
    do {                                                                         \
        if ((n) == (cap)) {                                                      \
            int32_t ncap_ = (cap) ? (cap) * 2 : 16;                              \
            void *p_ = arena_alloc(&(g)->arena, (size_t)ncap_ * sizeof(*(arr))); \
            if ((n)) memcpy(p_, (arr), (size_t)(n) * sizeof(*(arr)));            \
            (arr) = p_;                                                          \
            (cap) = ncap_;                                                       \
        }                                                                        \
    } while (0)

IrGraph *ir_new(const char *name)
{
    IrGraph *g = nnc_xcalloc(1, sizeof *g);
    g->name = arena_strdup(&g->arena, name ? name : "model");
    return g;
}

void ir_free(IrGraph *g)
{
    if (!g) return;
    arena_free(&g->arena);
    free(g);
}

static int32_t new_value(IrGraph *g, ValueKind kind, const IrShape *shape, const char *name)
{
    IR_GROW(g, g->values, g->n_values, g->cap_values);
    IrValue *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    if (shape) v->shape = *shape;
    v->dtype = DT_F32;
    v->layout = LAYOUT_NCHW;
    v->kind = kind;
    v->node = -1;
    v->name = name ? arena_strdup(&g->arena, name) : NULL;
    return g->n_values++;
}

int32_t ir_add_input(IrGraph *g, const char *name, const IrShape *shape)
{
    int32_t v = new_value(g, VK_INPUT, shape, name);
    IR_GROW(g, g->inputs, g->n_inputs, g->cap_inputs);
    g->inputs[g->n_inputs++] = v;
    return v;
}

int32_t ir_add_param(IrGraph *g, const char *name, const IrShape *shape, InitKind init, int64_t fan_in)
{
    int32_t v = new_value(g, VK_PARAM, shape, name);
    g->values[v].init = init;
    g->values[v].fan_in = fan_in;
    IR_GROW(g, g->params, g->n_params, g->cap_params);
    g->params[g->n_params++] = v;
    return v;
}

int32_t ir_add_node(IrGraph *g, OpKind op, const int32_t *ins, int n_in, const IrAttr *attr,
                    IrLoc loc, const char *scope, char *err, size_t errlen)
{
    const OpInfo *info = &ir_ops[op];
    NNC_ASSERT(op > OP_PARAM && op < OP_COUNT);
    NNC_ASSERT(n_in >= info->min_in && (info->max_in < 0 || n_in <= info->max_in));
    if (g->n_nodes >= IR_MAX_NODES) {
        snprintf(err, errlen, "the network has more than %d operations; is a loop unbounded?", IR_MAX_NODES);
        return -1;
    }
    int32_t first = g->n_ins;
    for (int i = 0; i < n_in; i++) {
        NNC_ASSERT(ins[i] >= 0 && ins[i] < g->n_values);
        IR_GROW(g, g->ins, g->n_ins, g->cap_ins);
        g->ins[g->n_ins++] = ins[i];
    }
    IR_GROW(g, g->nodes, g->n_nodes, g->cap_nodes);
    IrNode *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->in_first = first;
    n->n_in = n_in;
    n->loc = loc;
    /* the path may live in the frontend's arena; the graph keeps its own copy */
    if (loc.file) {
        int32_t prev = g->n_nodes - 1;
        n->loc.file = prev >= 0 && g->nodes[prev].loc.file && strcmp(g->nodes[prev].loc.file, loc.file) == 0
                          ? g->nodes[prev].loc.file : arena_strdup(&g->arena, loc.file);
    }
    n->scope = scope ? arena_strdup(&g->arena, scope) : NULL;
    if (attr) n->attr = *attr;
    n->out = -1;
    IrShape shape;
    memset(&shape, 0, sizeof shape);
    if (!info->shape(g, n, &shape, err, errlen)) {
        g->n_ins = first;  /* forget the half-made node */
        return -1;
    }
    int64_t elems = ir_shape_elems(&shape);
    if (elems <= 0 || elems > IR_MAX_ELEMS) {
        char buf[96];
        snprintf(err, errlen, "%s would produce a tensor of shape %s, which is %s", info->name,
                 ir_shape_str(&shape, buf, sizeof buf), elems <= 0 ? "empty" : "too large (over 2^31 elements per sample)");
        g->n_ins = first;
        return -1;
    }
    int32_t v = new_value(g, VK_ACT, &shape, NULL);
    n = &g->nodes[g->n_nodes];  /* new_value may not move nodes, but be plain about it */
    n->out = v;
    g->values[v].node = g->n_nodes;
    g->values[v].layout = ir_node_layout(g, n);
    g->n_nodes++;
    return v;
}

void ir_add_output(IrGraph *g, const char *name, int32_t value)
{
    IR_GROW(g, g->outputs, g->n_outputs, g->cap_outputs);
    g->outputs[g->n_outputs].name = arena_strdup(&g->arena, name);
    g->outputs[g->n_outputs].value = value;
    g->n_outputs++;
}

void ir_mark_constants(const IrGraph *g, bool *is_const)
{
    for (int32_t v = 0; v < g->n_values; v++) is_const[v] = g->values[v].kind == VK_PARAM;
    for (int32_t i = 0; i < g->n_nodes; i++) {  /* topological order: inputs are marked first */
        const IrNode *n = &g->nodes[i];
        bool c = n->n_in > 0;
        for (int j = 0; j < n->n_in && c; j++) c = is_const[ir_in(g, n, j)];
        is_const[n->out] = c;
    }
}

int64_t ir_shape_elems(const IrShape *s)
{
    int64_t e = 1;
    for (int i = 0; i < s->rank; i++) {
        if (s->dim[i] <= 0) return 0;
        if (e > IR_MAX_ELEMS * 4 / s->dim[i] + 1) return IR_MAX_ELEMS * 4;  /* saturate, no overflow */
        e *= s->dim[i];
    }
    return e;
}

int64_t ir_value_elems(const IrValue *v)
{
    if (v->layout != LAYOUT_NCHW16C || v->shape.rank < 1) return ir_shape_elems(&v->shape);
    IrShape s = v->shape;
    s.dim[0] = (s.dim[0] + IR_BLOCK - 1) / IR_BLOCK * IR_BLOCK;
    return ir_shape_elems(&s);
}

Layout ir_node_layout(const IrGraph *g, const IrNode *n)
{
    switch (n->op) {
    case OP_REORDER: return n->attr.reorder.to;
    case OP_CONV2D: return n->attr.conv.blocked ? LAYOUT_NCHW16C : LAYOUT_NCHW;
    case OP_MAXPOOL2D:
    case OP_AVGPOOL2D: return n->attr.pool.blocked ? LAYOUT_NCHW16C : LAYOUT_NCHW;
    case OP_ADD:
    case OP_IDENTITY:
    case OP_DROPOUT: return g->values[ir_in(g, n, 0)].layout;
    default: return ir_ops[n->op].act != ACT_NONE ? g->values[ir_in(g, n, 0)].layout : LAYOUT_NCHW;
    }
}

const char *ir_layout_name(Layout l) { return l == LAYOUT_NCHW16C ? "nchw16c" : "nchw"; }

char *ir_shape_str(const IrShape *s, char *buf, size_t len)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, len - o, "[");
    for (int i = 0; i < s->rank && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, i ? ", %lld" : "%lld", (long long)s->dim[i]);
    if (o < len) snprintf(buf + o, len - o, "]");
    return buf;
}

int64_t ir_count_params(const IrGraph *g)
{
    int64_t total = 0;
    for (int32_t i = 0; i < g->n_params; i++)
        if (!g->values[g->params[i]].buffer) total += ir_shape_elems(&g->values[g->params[i]].shape);
    return total;
}

int64_t ir_count_macs(const IrGraph *g)
{
    int64_t total = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) total += ir_ops[g->nodes[i].op].macs(g, &g->nodes[i]);
    return total;
}
