/* plan_train_memory.c: the memory plan of a training graph (plan_memory.h
 * IrTrainPlan), the training pipeline's last pass; codegen/emit_train.c reads
 * it. */
#include "plan_memory.h"
#include "memplan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t elems(const IrGraph *g, int32_t v) { return ir_shape_elems(&g->values[v].shape); }

int64_t plan_backward_scratch_floats(const IrGraph *g, const IrNode *n)
{
    const ConvAttr *c = &n->attr.conv;
    const IrShape *x = ir_in_shape(g, n, 0), *y = &g->values[n->out].shape;
    if (n->op == OP_CONV_T2D) return (int64_t)c->out_channels / c->groups * c->kh * c->kw * x->dim[1] * x->dim[2];
    if (n->op == OP_CONV2D) {
        int64_t ohw = y->dim[1] * y->dim[2], nb = plan_conv_samples(ohw);
        return (x->dim[0] / c->groups * c->kh * c->kw + (nb > 1 ? c->out_channels / c->groups : 0)) * nb * ohw;
    }
    if (n->op == OP_LRN) return x->dim[0] * 2;  /* nnc_lrn_backward */
    return 0;
}

/* Which values need a gradient: parameters (not buffers), the input, and
 * every value computed from one; batchnorm's running statistics are buffers. */
static void mark_grads(const IrGraph *g, bool *grad)
{
    for (int32_t p = 0; p < g->n_params; p++) grad[g->params[p]] = !g->values[g->params[p]].buffer;
    for (int32_t i = 0; i < g->n_inputs; i++) grad[g->inputs[i]] = true;  /* PREFIX_train_input_grad */
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->op == OP_BATCHNORM) {
            grad[n->out] = grad[ir_in(g, n, 0)] || grad[ir_in(g, n, 1)] || grad[ir_in(g, n, 2)];
            continue;
        }
        for (int j = 0; j < n->n_in; j++) grad[n->out] |= grad[ir_in(g, n, j)];
    }
}

bool pass_plan_training_memory(IrGraph *g, int max_batch, char *err, size_t errlen)
{
    Arena *a = &g->arena;
    int32_t N = g->n_nodes, nv = g->n_values;
    int64_t mb = max_batch;
    IrTrainPlan *t = arena_alloc(a, sizeof *t);
    memset(t, 0, sizeof *t);
    g->train_plan = NULL;
    if (max_batch < 1) {
        snprintf(err, errlen, "the training batch must be at least 1, not %d", max_batch);
        return false;
    }
    t->max_batch = max_batch;
    t->grad = arena_alloc(a, (size_t)(nv + 1) * sizeof *t->grad);
    memset(t->grad, 0, (size_t)(nv + 1) * sizeof *t->grad);
    t->param_off = arena_alloc(a, (size_t)(nv + 1) * sizeof *t->param_off);
    t->act_off = arena_alloc(a, (size_t)(nv + 1) * sizeof *t->act_off);
    t->grad_off = arena_alloc(a, (size_t)(nv + 1) * sizeof *t->grad_off);
    t->first_grad = arena_alloc(a, (size_t)(nv + 1) * sizeof *t->first_grad);
    t->bn_off = arena_alloc(a, (size_t)(N + 1) * sizeof *t->bn_off);
    t->drop_off = arena_alloc(a, (size_t)(N + 1) * sizeof *t->drop_off);
    int32_t *last = nnc_xmalloc((size_t)(nv + 1) * sizeof *last);
    int32_t *reader = nnc_xmalloc((size_t)(nv + 1) * sizeof *reader);  /* the last node that reads a value */
    mark_grads(g, t->grad);
    for (int32_t v = 0; v < nv; v++) t->param_off[v] = t->act_off[v] = t->grad_off[v] = -1, last[v] = reader[v] = -1;
    for (int32_t p = 0; p < g->n_params; p++) {
        int32_t v = g->params[p];
        t->param_off[v] = t->param_floats;
        t->param_floats += elems(g, v);
        if (!g->values[v].buffer) t->learn_floats += elems(g, v), t->n_learn++;
    }
    /* timeline: forward node i at step i, the loss at N, backward of node i at 2N - i */
    for (int32_t i = 0; i < N; i++) {
        const IrNode *n = &g->nodes[i];
        for (int j = 0; j < n->n_in; j++) {
            int32_t v = ir_in(g, n, j);
            reader[v] = i;
            if (2 * N - i > last[v]) last[v] = 2 * N - i;  /* the backward of a reader reads its inputs */
        }
        if (2 * N - i > last[n->out]) last[n->out] = 2 * N - i;  /* ... and its output */
        t->bn_off[i] = t->drop_off[i] = -1;
        if (n->op == OP_BATCHNORM) t->bn_off[i] = t->bn_floats, t->bn_floats += 2 * ir_in_shape(g, n, 0)->dim[0];
        if (n->op == OP_DROPOUT) t->drop_off[i] = t->drop_per_step, t->drop_per_step += mb * elems(g, n->out);
        int64_t s = plan_scratch_floats(g, n, max_batch), b = plan_backward_scratch_floats(g, n);
        if (b > s) s = b;
        if (s > t->scratch_floats) t->scratch_floats = s;
    }
    for (int32_t k = 0; k < g->n_outputs; k++)  /* the loss reads every output */
        if (2 * N + 1 > last[g->outputs[k].value]) last[g->outputs[k].value] = 2 * N + 1;
    MpBuffer *bufs = nnc_xmalloc((size_t)(2 * N + 2) * sizeof *bufs);
    int32_t *owner = nnc_xmalloc((size_t)(2 * N + 2) * sizeof *owner);  /* value id; grads as -(id + 1) */
    int32_t nb = 0;
    for (int32_t i = 0; i < N; i++) {
        int32_t v = g->nodes[i].out;
        int64_t bytes = elems(g, v) * mb * (int64_t)sizeof(float);
        owner[nb] = v;
        bufs[nb++] = (MpBuffer){bytes, i, last[v], 0};
        if (!t->grad[v]) continue;
        int32_t first = 2 * N - i;  /* the gradient: from its last reader's backward (or the loss) to its producer's */
        for (int32_t k = 0; k < g->n_outputs; k++)
            if (v == g->outputs[k].value) first = N;  /* the loss contributes first */
        if (reader[v] > i && 2 * N - reader[v] < first) first = 2 * N - reader[v];  /* the last reader's backward */
        t->first_grad[v] = first;
        owner[nb] = -(v + 1);
        bufs[nb++] = (MpBuffer){bytes, first, 2 * N - i, 0};
    }
    t->ws_bytes = mp_plan(bufs, nb, PLAN_ALIGN);
    for (int32_t b = 0; b < nb; b++) {
        if (owner[b] >= 0) t->act_off[owner[b]] = bufs[b].offset;
        else t->grad_off[-owner[b] - 1] = bufs[b].offset;
    }
    free(last), free(reader), free(bufs), free(owner);
    g->train_plan = t;
    return true;
}
