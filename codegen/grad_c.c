/* grad_c.c: the gradient rules, one per GRAD entry of ir/ops.def, and the
 * backward walk (cgen.h). Each writes the calls that add the gradients of a
 * node's inputs (those that need one: cx->dname not NULL) from the gradient
 * of its output; the forward values it reads (its inputs, its output, the
 * parameters) are kept alive for it by the training module's memory plan.
 * tr_bwd_none: the op has no rule, and a network using it cannot be trained
 * yet. Gradients accumulate (+=): the training module zeroes each buffer just
 * before its first contribution. */
#include "cgen.h"

#include <string.h>

typedef void (*CgGradFn)(CgEmit *cx, const IrNode *n);



/* The gradient of value v, or "NULL" when the backward does not compute it. */
static const char *cg_d(CgEmit *cx, int32_t v) { return cx->dname[v] ? cx->dname[v] : "NULL"; }
static const char *cg_x(CgEmit *cx, int32_t v) { return cx->cname[v]; }
static const IrShape *cg_shape(CgEmit *cx, int32_t v) { return &cx->g->values[v].shape; }
static const char *cg_lit(CgEmit *cx, float f) { return cg_float_literal(cx->arena, f); }


static void tr_bwd_none(CgEmit *cx, const IrNode *n) { (void)cx, (void)n; }

static void tr_bwd_conv(CgEmit *cx, const IrNode *n)
{
    const IrGraph *g = cx->g;
    int32_t x = ir_in(g, n, 0), y = n->out, w = ir_in(g, n, 1);
    const ConvAttr *c = &n->attr.conv;
    const IrShape *xs = cg_shape(cx, x), *ys = cg_shape(cx, y);
    const char *k = n->op == OP_CONV_T2D ? "conv_transpose2d_backward" : "conv2d_backward";
    cg_need(cx, k);
    cg_call_begin(cx, k);
    cg_arg(cx, "the instance's threads and instruction set", "%s", cx->ctx);
    cg_arg(cx, "x", "n, %s, %lld, %lld, %lld", cg_x(cx, x), cg_dim(xs, 0), cg_dim(xs, 1), cg_dim(xs, 2));
    cg_arg(cx, "weight, dy", "%s, %s, %d, %lld, %lld", cg_x(cx, w), cg_d(cx, y), c->out_channels, cg_dim(ys, 1),
           cg_dim(ys, 2));
    cg_arg(cx, "kernel, stride, padding, dilation, groups", "%d, %d, %d, %d, %d, %d, %d, %d, %d", c->kh, c->kw, c->sh,
           c->sw, c->ph, c->pw, c->dh, c->dw, c->groups);
    cg_arg(cx, "dx, dweight, dbias; scratch", "%s, %s, %s, %s", cg_d(cx, x), cg_d(cx, w),
           c->bias ? cg_d(cx, ir_in(g, n, 2)) : "NULL", cx->scratch[n - g->nodes]);
    cg_call_end(cx);
}

static void tr_bwd_linear(CgEmit *cx, const IrNode *n)
{
    const IrGraph *g = cx->g;
    int32_t x = ir_in(g, n, 0), y = n->out, w = ir_in(g, n, 1);
    cg_need(cx, "linear_backward");
    cg_call_begin(cx, "linear_backward");
    cg_arg(cx, "the instance's threads and instruction set", "%s", cx->ctx);
    cg_arg(cx, "x, weight, dy", "n, %s, %lld, %s, %s, %d", cg_x(cx, x), cg_elems_from(cg_shape(cx, x), 0),
           cg_x(cx, w), cg_d(cx, y), n->attr.linear.out_features);
    cg_arg(cx, "dx, dweight, dbias", "%s, %s, %s", cg_d(cx, x), cg_d(cx, w),
           n->attr.linear.bias ? cg_d(cx, ir_in(g, n, 2)) : "NULL");
    cg_call_end(cx);
}

/* Training mode: through the batch statistics; inference mode: an affine map
 * (input gradients only). Fused (BnAttr.fused): the activation's backward
 * folded in, from the output (the batchnorm's own output is never stored). */
static void tr_bwd_batchnorm(CgEmit *cx, const IrNode *n)
{
    const IrGraph *g = cx->g;
    const BnAttr *b = &n->attr.bn;
    int32_t x = ir_in(g, n, 0), y = n->out, i = (int32_t)(n - g->nodes);
    long long c = cg_dim(cg_shape(cx, x), 0), hw = cg_elems_from(cg_shape(cx, x), 1);
    const char *gamma = cg_x(cx, ir_in(g, n, 1)), *var = cg_x(cx, ir_in(g, n, 4)), *dx = cg_d(cx, x);
    cg_line(cx, "if (%s)", cx->tr->train);
    cx->indent = 8;
    cg_need(cx, b->fused ? "bn_train_fused" : "batchnorm_train");
    cg_call_begin(cx, b->fused ? "batchnorm_act_backward" : "batchnorm_backward");
    if (b->fused) cg_arg(cx, "the instance's threads and instruction set", "%s", cx->ctx);
    cg_arg(cx, "x, gamma, batch mean and 1/std", "n, %s, %lld, %lld, %s, %s, %s", cg_x(cx, x), c, hw, gamma,
           cx->tr->bn_mean[i], cx->tr->bn_invstd[i]);
    if (b->fused)
        cg_arg(cx, arena_printf(cx->arena, "y, dy, through %s", ir_act_name(b->act)), "%s, %s, %s, %s", cg_x(cx, y),
               cg_d(cx, y), cg_act_macro(b->act), cg_lit(cx, ir_act_has_slope(b->act) ? b->slope : 0.0f));
    else
        cg_arg(cx, "dy", "%s", cg_d(cx, y));
    cg_arg(cx, "dx, dgamma, dbeta", "%s, %s, %s", dx, cg_d(cx, ir_in(g, n, 1)), cg_d(cx, ir_in(g, n, 2)));
    cg_call_end(cx);
    cx->indent = 4;
    if (!b->fused && strcmp(dx, "NULL") == 0) return;  /* inference mode: input gradients only, none wanted */
    /* a workspace gradient always exists ("if (ws + k)" is always true: gcc's -Waddress); the caller's dinput may be NULL */
    cg_line(cx, "else%s  /* inference mode: %san affine map (input gradients only) */",
            strcmp(dx, cx->tr->dinput) == 0 ? arena_printf(cx->arena, " if (%s)", cx->tr->dinput) : "",
            b->fused ? "the activation, then " : "");
    cx->indent = 8;
    cg_need(cx, b->fused ? "bn_train_fused" : "batchnorm_eval_backward");
    cg_call_begin(cx, b->fused ? "batchnorm_act_eval_backward" : "batchnorm_eval_backward");
    if (b->fused) {
        cg_arg(cx, "gamma, running var, eps", "n, %lld, %lld, %s, %s, %s", c, hw, gamma, var, cg_lit(cx, b->eps));
        cg_arg(cx, "y, dy, activation; dx", "%s, %s, %s, %s, %s", cg_x(cx, y), cg_d(cx, y), cg_act_macro(b->act),
               cg_lit(cx, ir_act_has_slope(b->act) ? b->slope : 0.0f), dx);
    } else {
        cg_arg(cx, "dy, gamma, running var, eps; dx", "n, %s, %lld, %lld, %s, %s, %s, %s", cg_d(cx, y), c, hw, gamma,
               var, cg_lit(cx, b->eps), dx);
    }
    cg_call_end(cx);
    cx->indent = 4;
}

/* An activation (activations.h): from its output or its input, as FROM says. */
static void tr_bwd_act(CgEmit *cx, const IrNode *n)
{
    const IrGraph *g = cx->g;
    ActKind act = ir_ops[n->op].act;
    int32_t x = ir_in(g, n, 0), y = n->out;
    const char *v = ir_act_from(act) == NNC_FROM_Y ? cg_x(cx, y) : cg_x(cx, x);
    cg_need(cx, "activation_backward");
    cg_call_begin(cx, "activation_backward");
    cg_arg(cx, NULL, "%s, %s, %s, %s, %s, %s", cg_count(cx, y), v, cg_d(cx, y), cg_d(cx, x), cg_act_macro(act),
           cg_lit(cx, ir_act_has_slope(act) ? n->attr.act.slope : 0.0f));
    cg_call_end(cx);
}

static void cg_accumulate(CgEmit *cx, int32_t y, const char *dx)
{
    cg_need(cx, "grad_accumulate");
    cg_call_begin(cx, "grad_accumulate");
    cg_arg(cx, NULL, "%s, %s, %s", cg_count(cx, y), cg_d(cx, y), dx);
    cg_call_end(cx);
}

static void tr_bwd_dropout(CgEmit *cx, const IrNode *n)
{
    const IrGraph *g = cx->g;
    int32_t x = ir_in(g, n, 0), y = n->out, i = (int32_t)(n - g->nodes);
    int indent = cx->indent;
    cg_line(cx, "if (%s)", cx->tr->train);
    cx->indent = indent + 4;
    cg_need(cx, "dropout_train");
    cg_call_begin(cx, "dropout_backward");
    cg_arg(cx, NULL, "%s, %s, %s, %s, %s, %s", cg_count(cx, y), cg_d(cx, y), cg_d(cx, x),
           cg_lit(cx, n->attr.dropout.p), cx->tr->seed, cx->tr->drop_stream[i]);
    cg_call_end(cx);
    cx->indent = indent;
    cg_line(cx, "else");
    cx->indent = indent + 4;
    cg_accumulate(cx, y, cg_d(cx, x));
    cx->indent = indent;
}

static void tr_bwd_copy(CgEmit *cx, const IrNode *n) { cg_accumulate(cx, n->out, cg_d(cx, ir_in(cx->g, n, 0))); }

static void tr_bwd_add(CgEmit *cx, const IrNode *n)
{
    for (int j = 0; j < 2; j++) {
        int32_t x = ir_in(cx->g, n, j);
        if (!cx->dname[x]) continue;
        bool guard = cx->g->values[x].kind == VK_INPUT;  /* the caller's dinput, which may be NULL */
        if (guard) cg_line(cx, "if (%s)", cx->tr->dinput), cx->indent += 4;
        cg_accumulate(cx, n->out, cg_d(cx, x));
        if (guard) cx->indent -= 4;
    }
}

static void tr_bwd_maxpool(CgEmit *cx, const IrNode *n)
{
    const IrGraph *g = cx->g;
    int32_t x = ir_in(g, n, 0), y = n->out;
    const IrShape *xs = cg_shape(cx, x), *ys = cg_shape(cx, y);
    const PoolAttr *p = &n->attr.pool;
    cg_need(cx, "maxpool2d_backward");
    cg_call_begin(cx, "maxpool2d_backward");
    cg_arg(cx, "the instance's threads and instruction set", "%s", cx->ctx);
    cg_arg(cx, "x, dy", "n, %s, %lld, %lld, %lld, %s, %lld, %lld", cg_x(cx, x), cg_dim(xs, 0), cg_dim(xs, 1),
           cg_dim(xs, 2), cg_d(cx, y), cg_dim(ys, 1), cg_dim(ys, 2));
    cg_arg(cx, "kernel, stride, padding, dilation; dx", "%d, %d, %d, %d, %d, %d, %d, %d, %s", p->kh, p->kw, p->sh,
           p->sw, p->ph, p->pw, p->dh, p->dw, cg_d(cx, x));
    cg_call_end(cx);
}

static void tr_bwd_avgpool(CgEmit *cx, const IrNode *n)
{
    const IrGraph *g = cx->g;
    int32_t x = ir_in(g, n, 0), y = n->out;
    const IrShape *xs = cg_shape(cx, x), *ys = cg_shape(cx, y);
    const PoolAttr *p = &n->attr.pool;
    cg_need(cx, "avgpool2d_backward");
    cg_call_begin(cx, "avgpool2d_backward");
    cg_arg(cx, "dy, x's shape, y's map", "n, %s, %lld, %lld, %lld, %lld, %lld", cg_d(cx, y), cg_dim(xs, 0),
           cg_dim(xs, 1), cg_dim(xs, 2), cg_dim(ys, 1), cg_dim(ys, 2));
    cg_arg(cx, "kernel, stride, padding, count_include_pad; dx", "%d, %d, %d, %d, %d, %d, %d, %s", p->kh, p->kw,
           p->sh, p->sw, p->ph, p->pw, p->count_include_pad ? 1 : 0, cg_d(cx, x));
    cg_call_end(cx);
}

static void tr_bwd_global_avgpool(CgEmit *cx, const IrNode *n)
{
    int32_t x = ir_in(cx->g, n, 0);
    cg_need(cx, "global_avgpool_backward");
    cg_call_begin(cx, "global_avgpool_backward");
    cg_arg(cx, NULL, "n, %s, %lld, %lld, %s", cg_d(cx, n->out), cg_dim(cg_shape(cx, x), 0),
           cg_elems_from(cg_shape(cx, x), 1), cg_d(cx, x));
    cg_call_end(cx);
}

static void tr_bwd_adaptive_avgpool(CgEmit *cx, const IrNode *n)
{
    int32_t x = ir_in(cx->g, n, 0), y = n->out;
    const IrShape *xs = cg_shape(cx, x), *ys = cg_shape(cx, y);
    cg_need(cx, "adaptive_avgpool2d_backward");
    cg_call_begin(cx, "adaptive_avgpool2d_backward");
    cg_arg(cx, NULL, "n, %s, %lld, %lld, %lld, %lld, %lld, %s", cg_d(cx, y), cg_dim(xs, 0), cg_dim(xs, 1),
           cg_dim(xs, 2), cg_dim(ys, 1), cg_dim(ys, 2), cg_d(cx, x));
    cg_call_end(cx);
}

static void tr_bwd_concat(CgEmit *cx, const IrNode *n)
{
    const IrGraph *g = cx->g;
    int32_t y = n->out;
    int axis = n->attr.concat.axis;
    long long outer = 1, off = 0, yrow = cg_elems_from(cg_shape(cx, y), axis);
    for (int d = 0; d < axis; d++) outer *= cg_dim(cg_shape(cx, y), d);
    cg_need(cx, "concat_backward");
    for (int j = 0; j < n->n_in; j++) {
        int32_t xj = ir_in(g, n, j);
        long long xrow = cg_elems_from(cg_shape(cx, xj), axis);
        if (cx->dname[xj]) {
            bool guard = g->values[xj].kind == VK_INPUT;
            if (guard) cg_line(cx, "if (%s)", cx->tr->dinput), cx->indent += 4;
            cg_call_begin(cx, "concat_part_backward");
            cg_arg(cx, NULL, "n * %lld, %s, %lld, %lld, %s, %lld", outer, cg_d(cx, y), yrow, off, cg_d(cx, xj), xrow);
            cg_call_end(cx);
            if (guard) cx->indent -= 4;
        }
        off += xrow;
    }
}

static void tr_bwd_softmax(CgEmit *cx, const IrNode *n)
{
    int32_t x = ir_in(cx->g, n, 0), y = n->out;
    cg_need(cx, "softmax_backward");
    cg_call_begin(cx, "softmax_backward");
    cg_arg(cx, NULL, "n, %s, %s, %lld, %lld, %s", cg_x(cx, y), cg_d(cx, y), cg_dim(cg_shape(cx, x), 0),
           cg_elems_from(cg_shape(cx, x), 1), cg_d(cx, x));
    cg_call_end(cx);
}

static void tr_bwd_lrn(CgEmit *cx, const IrNode *n)
{
    int32_t x = ir_in(cx->g, n, 0), y = n->out;
    const LrnAttr *a = &n->attr.lrn;
    cg_need(cx, "lrn_backward");
    cg_call_begin(cx, "lrn_backward");
    cg_arg(cx, "x, dy", "n, %s, %lld, %lld, %s", cg_x(cx, x), cg_dim(cg_shape(cx, x), 0),
           cg_elems_from(cg_shape(cx, x), 1), cg_d(cx, y));
    cg_arg(cx, "size, alpha, beta, k; dx; scratch", "%d, %s, %s, %s, %s, %s", a->size, cg_lit(cx, a->alpha),
           cg_lit(cx, a->beta), cg_lit(cx, a->k), cg_d(cx, x), cx->scratch[n - cx->g->nodes]);
    cg_call_end(cx);
}

/* The dispatch table, from the GRAD column of ir/ops.def. */
static const CgGradFn cg_grads[OP_COUNT] = {
#define OP(id, nm, dsl, mn, mx, attr, act, inpl, bstr, tfwd, shape, macs, emit, grad) [OP_##id] = grad,
#include "../ir/ops.def"
#undef OP
};

bool cg_has_gradient(OpKind op) { return cg_grads[op] != tr_bwd_none; }

void cg_emit_backward(CgEmit *cx, const IrNode *n)
{
    const IrGraph *g = cx->g;
    /* an op whose input gradient would go to the caller's dinput, which may be NULL */
    bool guard = n->op != OP_CONV2D && n->op != OP_CONV_T2D && n->op != OP_LINEAR && n->op != OP_BATCHNORM &&
                 n->op != OP_ADD && n->op != OP_CONCAT && n->n_in && g->values[ir_in(g, n, 0)].kind == VK_INPUT;
    cx->indent = 4;
    if (guard) {
        cg_line(cx, "if (%s) {", cx->tr->dinput);
        cx->indent = 8;
    }
    cg_grads[n->op](cx, n);
    cx->indent = 4;
    if (guard) cg_line(cx, "}");
}
