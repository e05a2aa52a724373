/* cleanup.c: identity removal and common-subexpression elimination.
 *
 * Requires: a verified inference graph. Keeps: inputs, outputs (by name and
 * order), parameters, node order, the shapes and values of everything the
 * outputs depend on.
 *
 *   identity, dropout   at inference both are y = x: their readers read x
 *                       instead, and the node disappears;
 *   CSE                 a node with the same op, the same inputs and the same
 *                       attributes as an earlier node is the earlier node.
 *
 * In training (pass_cleanup_train) only identity goes: dropout draws a mask,
 * so it stays, and neither dropout nor batchnorm (which updates its running
 * statistics, a side effect) is ever merged with another node: two dropouts of
 * one tensor draw two masks, two batchnorms update the statistics twice. A
 * node that computes a graph output is left alone too: the training step
 * computes each output (the logits, auxiliary classifiers) in a buffer of its
 * own, so no output may become an input or another output.
 *
 * The graph is rebuilt (as dce.c does) so ids stay dense and the node array
 * stays in topological order; dead nodes left behind are dce's business,
 * which runs after this pass. */
#include "passes.h"

#include <stdlib.h>
#include <string.h>

static bool epilogue_equal(const Epilogue *x, const Epilogue *y)
{
    return x->act == y->act && x->slope == y->slope && x->residual == y->residual &&
           x->act_channels == y->act_channels;
}

static bool prologue_equal(const Prologue *x, const Prologue *y)
{
    return x->on == y->on && x->act == y->act && x->slope == y->slope;
}

static bool conv_equal(const ConvAttr *x, const ConvAttr *y)
{
    return x->kh == y->kh && x->kw == y->kw && x->sh == y->sh && x->sw == y->sw && x->ph == y->ph &&
           x->pw == y->pw && x->dh == y->dh && x->dw == y->dw && x->oph == y->oph && x->opw == y->opw &&
           x->groups == y->groups && x->out_channels == y->out_channels && x->bias == y->bias &&
           x->blocked == y->blocked && epilogue_equal(&x->epi, &y->epi) && prologue_equal(&x->pro, &y->pro);
}

/* Attribute equality by kind: a memcmp of the union would compare padding. */
static bool attr_equal(AttrKind k, const IrAttr *a, const IrAttr *b)
{
    switch (k) {
    case AT_NONE: return true;
    case AT_CONV: return conv_equal(&a->conv, &b->conv);
    case AT_SLICE: return a->slice.start == b->slice.start && a->slice.count == b->slice.count;
    case AT_DWPW: return conv_equal(&a->dwpw.dw, &b->dwpw.dw) && conv_equal(&a->dwpw.pw, &b->dwpw.pw);
    case AT_POOL: {
        const PoolAttr *x = &a->pool, *y = &b->pool;
        return x->kh == y->kh && x->kw == y->kw && x->sh == y->sh && x->sw == y->sw && x->ph == y->ph &&
               x->pw == y->pw && x->dh == y->dh && x->dw == y->dw && x->ceil_mode == y->ceil_mode &&
               x->count_include_pad == y->count_include_pad && x->blocked == y->blocked;
    }
    case AT_BN: return a->bn.eps == b->bn.eps && a->bn.momentum == b->bn.momentum;
    case AT_LINEAR:
        return a->linear.out_features == b->linear.out_features && a->linear.bias == b->linear.bias &&
               epilogue_equal(&a->linear.epi, &b->linear.epi);
    case AT_ACT: return a->act.slope == b->act.slope;
    case AT_DROPOUT: return a->dropout.p == b->dropout.p;
    case AT_ADAPTIVE:
        return a->adaptive.oh == b->adaptive.oh && a->adaptive.ow == b->adaptive.ow &&
               prologue_equal(&a->adaptive.pro, &b->adaptive.pro);
    case AT_LRN:
        return a->lrn.size == b->lrn.size && a->lrn.alpha == b->lrn.alpha && a->lrn.beta == b->lrn.beta &&
               a->lrn.k == b->lrn.k;
    case AT_CONCAT: return a->concat.axis == b->concat.axis && a->concat.in_place == b->concat.in_place;
    case AT_REORDER: return a->reorder.to == b->reorder.to;
    }
    return false;
}

typedef struct {
    uint64_t *keys;     /* hash of each slot's node, 0 = empty */
    int32_t *node;      /* node index in the new graph */
    size_t cap;
} CseTable;

static uint64_t node_hash(OpKind op, const int32_t *ins, int n_in)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)op;
    for (int i = 0; i < n_in; i++) h = (h ^ (uint64_t)(uint32_t)ins[i]) * 1099511628211ull;
    return h ? h : 1;
}

/* The earlier node of ng equal to (op, ins, attr), or -1; remembers this one otherwise. */
static int32_t cse_find_or_add(CseTable *t, const IrGraph *ng, OpKind op, const int32_t *ins, int n_in,
                               const IrAttr *attr, int32_t new_node)
{
    uint64_t h = node_hash(op, ins, n_in);
    size_t i = h & (t->cap - 1);
    for (; t->keys[i]; i = (i + 1) & (t->cap - 1)) {
        if (t->keys[i] != h) continue;
        const IrNode *m = &ng->nodes[t->node[i]];
        if (m->op != op || m->n_in != n_in || memcmp(ir_node_ins(ng, m), ins, (size_t)n_in * sizeof *ins) != 0)
            continue;
        if (attr_equal(ir_ops[op].attr, &m->attr, attr)) return t->node[i];
    }
    if (new_node >= 0) {
        t->keys[i] = h;
        t->node[i] = new_node;
    }
    return -1;
}

static bool cleanup(IrGraph *g, bool train, char *err, size_t errlen)
{
    int32_t *map;
    IrGraph *ng = pass_rebuild_begin(g, NULL, &map);
    CseTable t = {0};
    t.cap = 64;
    while (t.cap < 2 * (size_t)g->n_nodes) t.cap *= 2;
    t.keys = nnc_xcalloc(t.cap, sizeof *t.keys);
    t.node = nnc_xcalloc(t.cap, sizeof *t.node);
    bool ok = true, *is_out = nnc_xcalloc((size_t)(g->n_values ? g->n_values : 1), sizeof *is_out);
    for (int32_t o = 0; o < g->n_outputs; o++) is_out[g->outputs[o].value] = true;
    int32_t *ins = NULL;
    int cap_ins = 0;
    for (int32_t i = 0; i < g->n_nodes && ok; i++) {
        const IrNode *n = &g->nodes[i];
        bool keep = train && is_out[n->out];
        if (!keep && (n->op == OP_IDENTITY || (n->op == OP_DROPOUT && !train))) {  /* y = x (dropout: at inference) */
            map[n->out] = map[ir_in(g, n, 0)];
            continue;
        }
        bool mergeable = !keep && (!train || (n->op != OP_DROPOUT && n->op != OP_BATCHNORM));
        if (n->n_in > cap_ins) {
            cap_ins = n->n_in * 2;
            ins = nnc_xrealloc(ins, (size_t)cap_ins * sizeof *ins);
        }
        for (int j = 0; j < n->n_in; j++) ins[j] = map[ir_in(g, n, j)];
        int32_t same = mergeable ? cse_find_or_add(&t, ng, n->op, ins, n->n_in, &n->attr, -1) : -1;
        if (same >= 0) {
            map[n->out] = ng->nodes[same].out;
            continue;
        }
        map[n->out] = ir_add_node(ng, n->op, ins, n->n_in, &n->attr, n->loc, n->scope, err, errlen);
        ok = map[n->out] >= 0;
        if (ok && mergeable) cse_find_or_add(&t, ng, n->op, ins, n->n_in, &n->attr, ng->n_nodes - 1);
    }
    free(ins);
    free(is_out);
    free(t.keys);
    free(t.node);
    return pass_rebuild_end(g, ng, map, ok);
}

bool pass_cleanup(IrGraph *g, char *err, size_t errlen) { return cleanup(g, false, err, errlen); }

bool pass_cleanup_train(IrGraph *g, char *err, size_t errlen) { return cleanup(g, true, err, errlen); }
