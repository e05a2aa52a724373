/* emit_train.c: an IR graph as a C training module (emit_train.h).
 *
 * What the generated NAME_train.c holds, and why:
 *
 *   - the kernels it calls: sections of runtime/snippets/kernels.c and
 *     grad_kernels.c (one sectioned text: the backward sections need forward
 *     ones), of optim.c, and the safetensors loader;
 *   - a tensor table: every parameter and buffer by name and shape, as the
 *     weights file holds them, then (built at create, since it depends on the
 *     optimizer) the optimizer's state tensors, named as PyTorch's state_dict
 *     keys; `nnc train` writes checkpoints through it (runtime/train_abi.h);
 *   - PREFIX_train_fwd: the forward pass, in training mode (batch statistics,
 *     running averages updated, dropout) or in inference mode, as straight-
 *     line kernel calls under comments naming the layer and its source line;
 *   - PREFIX_train_bwd: reverse-mode differentiation of that forward pass, the
 *     nodes in reverse order, each calling its op's backward kernel (the
 *     BACKWARD rule of each op below: which kernel, on which of x, y and the
 *     parameters). Gradients accumulate (+=) into buffers zeroed just before
 *     their first contribution, so a value read by several nodes (a residual,
 *     a DenseNet feature map) sums their gradients;
 *   - PREFIX_train_step: forward, softmax cross-entropy on the single output,
 *     backward, one optimizer update per trainable parameter tensor (torch's
 *     single-tensor arithmetic, optim.c).
 *
 * Memory: activations and activation gradients share one workspace planned
 * with passes/memplan.c over a timeline of 2N+1 steps: forward node i at step
 * i, the loss at N, the backward of node i at 2N - i. An activation lives from
 * its node to the last step that reads it, forward or backward (the backward
 * of a node reads its inputs and its output); a gradient lives from the
 * backward of its last reader to the backward of its producer. So what the
 * backward pass needs is kept and the rest reused. Parameter gradients,
 * optimizer state and batchnorm statistics are allocated once at create.
 *
 * The graph is the elaborated network after the training forms of the passes
 * (pass_run_training_pipeline: identity removal, CSE that never merges dropout
 * or batchnorm, dead code), never the -O2 rewrites: batchnorm cannot be folded
 * while its statistics come from the batch. */
#include "emit_train.h"
#include "emit_c.h"
#include "../passes/memplan.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char nnc_snippet_kernels[];
extern const size_t nnc_snippet_kernels_len;
extern const char nnc_snippet_grad_kernels[];
extern const size_t nnc_snippet_grad_kernels_len;
extern const char nnc_snippet_optim[];
extern const size_t nnc_snippet_optim_len;
extern const char nnc_snippet_safetensors_load[];
extern const size_t nnc_snippet_safetensors_load_len;

enum { TR_MAX_SECTIONS = 96, TR_ALIGN = 64, TR_MAX_BATCH = 1 << 16 };

typedef struct {
    const IrGraph *g;
    const CgTrainOptions *opt;
    Arena arena;
    const char *prefix;               /* "lenet5" */
    const char *upper;                /* "LENET5" */
    int32_t out;                      /* the value the loss reads */
    int classes;                      /* its elements per sample */
    bool *grad;                       /* per value: the backward pass computes its gradient */
    int64_t *param_off;               /* per value: floats into params (parameters and buffers), or -1 */
    int64_t *act_off, *grad_off;      /* per value: byte offsets in the workspace, or -1 */
    int64_t *first_grad;              /* per value: the backward step of the gradient's first contribution */
    int64_t *bn_off;                  /* per node: floats into bn_save (mean then invstd), or -1 */
    int64_t *drop_off;                /* per node: the dropout's draws before it in one step, or -1 */
    int32_t *fused_bn;                /* per node: for a conv or an activation fused with a batchnorm, that
                                       * batchnorm's node; for the batchnorm itself, its own index; else -1 */
    int32_t *fused_act;               /* per batchnorm node of a fused chain: its activation node, or -1 */
    int64_t stats_doubles;            /* the largest 2 * channels of a fused batchnorm */
    int64_t param_floats, learn_floats, bn_floats, drop_per_step, ws_bytes, scratch_floats;
    int n_learn;                      /* learnable parameter tensors */
    const char *sections[TR_MAX_SECTIONS];  int n_sections;
    StrBuf fwd, bwd;                  /* bodies of the two functions */
    StrBuf scratch_checks;            /* "nnc_conv2d_backward_scratch(...)" calls, " ||"-joined: each must
                                       * not exceed the planned scratch (checked at create) */
    char *err; size_t errlen;
} Tr;

#define TR_FAIL(t, ...) do { snprintf((t)->err, (t)->errlen, __VA_ARGS__); return false; } while (0)

static void tr_need(Tr *t, const char *section)
{
    for (int i = 0; i < t->n_sections; i++)
        if (strcmp(t->sections[i], section) == 0) return;
    if (t->n_sections < TR_MAX_SECTIONS) t->sections[t->n_sections++] = section;
}

static long long tr_elems(const IrShape *s, int from)
{
    long long e = 1;
    for (int i = from; i < s->rank; i++) e *= s->dim[i];
    return e;
}

static const IrShape *tr_shape(const Tr *t, int32_t v) { return &t->g->values[v].shape; }
static long long tr_dim(const Tr *t, int32_t v, int i) { return (long long)t->g->values[v].shape.dim[i]; }

/* The C expression of a value's data in the forward pass. */
static const char *tr_x(Tr *t, int32_t v)
{
    const IrValue *val = &t->g->values[v];
    if (val->kind == VK_INPUT) return "input";
    if (val->kind == VK_PARAM) return arena_printf(&t->arena, "t->params + %lld", (long long)t->param_off[v]);
    return arena_printf(&t->arena, "(float *)(ws + %lld)", (long long)t->act_off[v]);
}

/* Its gradient: NULL when the backward pass does not compute it. */
static const char *tr_d(Tr *t, int32_t v)
{
    const IrValue *val = &t->g->values[v];
    if (!t->grad[v]) return "NULL";
    if (val->kind == VK_INPUT) return "dinput";  /* the caller's, or NULL: not wanted (a training step) */
    if (val->kind == VK_PARAM) return arena_printf(&t->arena, "t->grads + %lld", (long long)t->param_off[v]);
    return arena_printf(&t->arena, "(float *)(ws + %lld)", (long long)t->grad_off[v]);
}

static const char *tr_count(Tr *t, int32_t v) { return arena_printf(&t->arena, "(size_t)n * %lld", tr_elems(tr_shape(t, v), 0)); }

/* A float literal: "0.1f", "1e-05f", "2.0f" (never "2f", which is not C). */
static const char *tr_f(Tr *t, float f)
{
    char buf[48];
    snprintf(buf, sizeof buf, "%.9g", (double)f);
    bool dot = strpbrk(buf, ".en") != NULL;  /* a point, an exponent, or nan/inf (refused by tr_check) */
    return arena_printf(&t->arena, "%s%sf", buf, dot ? "" : ".0");
}

/* ------------------------------------------------------------ the ops ---- */

static const char *tr_scratch_macro(Tr *t) { return arena_printf(&t->arena, "(size_t)%s_SCRATCH_FLOATS", t->upper); }

/* Floats of scratch the forward kernel of n needs (the inference planner's
 * cg_scratch_floats at the training batch; the generated create checks it
 * against the kernel's own nnc_conv2d_scratch, tr_backward_scratch's way). */
static int64_t tr_scratch(Tr *t, const IrNode *n)
{
    const IrShape *x = ir_in_shape(t->g, n, 0);
    if (n->op == OP_CONV2D)
        sb_printf(&t->scratch_checks, "%s%s > %s", t->scratch_checks.len ? " ||\n        " : "",
                  cg_conv2d_scratch_call(&t->arena, t->g, n, t->opt->max_batch), tr_scratch_macro(t));
    if (n->op == OP_CONV2D || n->op == OP_CONV_T2D) return cg_scratch_floats(t->g, n, t->opt->max_batch);
    if (n->op == OP_LRN) return x->dim[0] * 2;
    return 0;
}

/* Floats of scratch the backward of a convolution needs: what the kernels'
 * nnc_conv2d_backward_scratch and nnc_conv_transpose2d_backward_scratch
 * (grad_kernels.c) compute, which the generated create checks against the
 * plan (tr_scratch_checks), so the two formulas cannot drift apart unseen. */
static int64_t tr_backward_scratch(Tr *t, const IrNode *n)
{
    const ConvAttr *c = &n->attr.conv;
    const IrShape *x = ir_in_shape(t->g, n, 0), *y = &t->g->values[n->out].shape;
    if (n->op == OP_CONV_T2D) {
        tr_need(t, "conv_transpose2d_backward");
        sb_printf(&t->scratch_checks, "%snnc_conv_transpose2d_backward_scratch(%lld, %lld, %d, %d, %d, %d) > %s",
                  t->scratch_checks.len ? " ||\n        " : "", (long long)x->dim[1], (long long)x->dim[2],
                  c->out_channels, c->kh, c->kw, c->groups, tr_scratch_macro(t));
        return (int64_t)c->out_channels / c->groups * c->kh * c->kw * x->dim[1] * x->dim[2];
    }
    int64_t ohw = y->dim[1] * y->dim[2], nb = cg_conv_samples(ohw);
    tr_need(t, "conv2d_backward");
    sb_printf(&t->scratch_checks, "%snnc_conv2d_backward_scratch(%lld, %d, %d, %d, %lld, %lld, %d) > %s",
              t->scratch_checks.len ? " ||\n        " : "", (long long)x->dim[0], c->out_channels, c->kh, c->kw,
              (long long)y->dim[1], (long long)y->dim[2], c->groups, tr_scratch_macro(t));
    return (x->dim[0] / c->groups * c->kh * c->kw + (nb > 1 ? c->out_channels / c->groups : 0)) * nb * ohw;
}

/* The forward call of node n: train selects training behaviour (batchnorm, dropout). */
static void tr_forward(Tr *t, const IrNode *n, StrBuf *b, bool train)
{
    const IrGraph *g = t->g;
    int32_t x = ir_in(g, n, 0), y = n->out, ni = (int32_t)(n - g->nodes);
    const char *X = tr_x(t, x), *Y = tr_x(t, y);
    long long xs = tr_elems(tr_shape(t, x), 0), ys = tr_elems(tr_shape(t, y), 0);
    switch (n->op) {
    case OP_CONV2D: {
        const ConvAttr *c = &n->attr.conv;
        tr_need(t, "conv2d");
        sb_printf(b, "    nnc_conv2d(n, %s, %lld, %lld, %lld, %lld, %s, %s, %s, %lld, %d, %lld, %lld,\n"
                     "               %d, %d, %d, %d, %d, %d, %d, %d, %d, t->scratch, NULL, 0, NNC_ACT_NONE, 0.0f, %d,\n"
                     "               NULL, NULL, NNC_ACT_NONE, 0.0f);\n",
                  X, xs, tr_dim(t, x, 0), tr_dim(t, x, 1), tr_dim(t, x, 2), tr_x(t, ir_in(g, n, 1)),
                  c->bias ? tr_x(t, ir_in(g, n, 2)) : "NULL", Y, ys, c->out_channels, tr_dim(t, y, 1), tr_dim(t, y, 2),
                  c->kh, c->kw, c->sh, c->sw, c->ph, c->pw, c->dh, c->dw, c->groups, c->out_channels);
        break;
    }
    case OP_CONV_T2D: {
        const ConvAttr *c = &n->attr.conv;
        tr_need(t, "conv_transpose2d");
        sb_printf(b, "    nnc_conv_transpose2d(n, %s, %lld, %lld, %lld, %s, %s, %s, %d, %lld, %lld,\n"
                     "                         %d, %d, %d, %d, %d, %d, %d, %d, %d, t->scratch, NULL, NNC_ACT_NONE, 0.0f);\n",
                  X, tr_dim(t, x, 0), tr_dim(t, x, 1), tr_dim(t, x, 2), tr_x(t, ir_in(g, n, 1)),
                  c->bias ? tr_x(t, ir_in(g, n, 2)) : "NULL", Y, c->out_channels, tr_dim(t, y, 1), tr_dim(t, y, 2),
                  c->kh, c->kw, c->sh, c->sw, c->ph, c->pw, c->dh, c->dw, c->groups);
        break;
    }
    case OP_LINEAR:
        tr_need(t, "linear");
        sb_printf(b, "    nnc_linear(n, %s, %lld, %s, %s, %s, %d, NULL, NNC_ACT_NONE, 0.0f);\n", X, xs,
                  tr_x(t, ir_in(g, n, 1)), n->attr.linear.bias ? tr_x(t, ir_in(g, n, 2)) : "NULL", Y,
                  n->attr.linear.out_features);
        break;
    case OP_BATCHNORM: {
        const char *gm = tr_x(t, ir_in(g, n, 1)), *bt = tr_x(t, ir_in(g, n, 2));
        const char *mu = tr_x(t, ir_in(g, n, 3)), *var = tr_x(t, ir_in(g, n, 4));
        long long c = tr_dim(t, x, 0), hw = tr_elems(tr_shape(t, x), 1);
        if (train) {
            tr_need(t, "batchnorm_train");
            sb_printf(b, "    nnc_batchnorm_train(n, %s, %lld, %lld, %s, %s, %s, %s, %s, %s, %s,\n"
                         "                        t->bn_save + %lld, t->bn_save + %lld);\n",
                      X, c, hw, gm, bt, tr_f(t, n->attr.bn.eps), tr_f(t, n->attr.bn.momentum), mu, var, Y,
                      (long long)t->bn_off[ni], (long long)t->bn_off[ni] + c);
        } else {
            tr_need(t, "batchnorm");
            sb_printf(b, "    nnc_batchnorm(n, %s, %lld, %lld, %lld, %s, %s, %s, %s, %s, %s, %lld);\n", X, xs, c, hw,
                      gm, bt, mu, var, tr_f(t, n->attr.bn.eps), Y, ys);
        }
        break;
    }
    case OP_RELU: case OP_RELU6: case OP_SIGMOID: case OP_TANH:
        tr_need(t, ir_ops[n->op].name);
        sb_printf(b, "    nnc_%s(%s, %s, %s);\n", ir_ops[n->op].name, tr_count(t, y), X, Y);
        break;
    case OP_LEAKY_RELU:
        tr_need(t, "leaky_relu");
        sb_printf(b, "    nnc_leaky_relu(%s, %s, %s, %s);\n", tr_count(t, y), X, Y, tr_f(t, n->attr.act.slope));
        break;
    case OP_DROPOUT: case OP_IDENTITY: case OP_FLATTEN:
        if (train && n->op == OP_DROPOUT) {
            tr_need(t, "dropout_train");
            sb_printf(b, "    nnc_dropout_train(%s, %s, %s, %s, t->cfg.seed, (uint64_t)t->step * %lld + %lld);\n",
                      tr_count(t, y), X, Y, tr_f(t, n->attr.dropout.p), (long long)t->drop_per_step,
                      (long long)t->drop_off[ni]);
            break;
        }  /* inference dropout is the identity */
        tr_need(t, "copy");
        sb_printf(b, "    nnc_copy(%s, %s, %s);\n", tr_count(t, y), X, Y);
        break;
    case OP_MAXPOOL2D: case OP_AVGPOOL2D: {
        const PoolAttr *p = &n->attr.pool;
        bool mx = n->op == OP_MAXPOOL2D;
        tr_need(t, mx ? "maxpool2d" : "avgpool2d");
        sb_printf(b, "    nnc_%s(n, %s, %lld, %lld, %lld, %lld, %s, %lld, %lld, %lld, %d, %d, %d, %d, %d, %d, ",
                  ir_ops[n->op].name, X, xs, tr_dim(t, x, 0), tr_dim(t, x, 1), tr_dim(t, x, 2), Y, ys, tr_dim(t, y, 1),
                  tr_dim(t, y, 2), p->kh, p->kw, p->sh, p->sw, p->ph, p->pw);
        if (mx) sb_printf(b, "%d, %d);\n", p->dh, p->dw);
        else sb_printf(b, "%d);\n", p->count_include_pad ? 1 : 0);
        break;
    }
    case OP_GLOBAL_AVGPOOL:
        tr_need(t, "global_avgpool");
        sb_printf(b, "    nnc_global_avgpool(n, %s, %lld, %lld, %s);\n", X, tr_dim(t, x, 0), tr_elems(tr_shape(t, x), 1), Y);
        break;
    case OP_ADAPTIVE_AVGPOOL:
        tr_need(t, "adaptive_avgpool2d");
        sb_printf(b, "    nnc_adaptive_avgpool2d(n, %s, %lld, %lld, %lld, %lld, %s, %lld, %lld, %lld, NULL, NULL, NNC_ACT_NONE, 0.0f);\n",
                  X, xs, tr_dim(t, x, 0), tr_dim(t, x, 1), tr_dim(t, x, 2), Y, ys, tr_dim(t, y, 1), tr_dim(t, y, 2));
        break;
    case OP_CONCAT: {
        int axis = n->attr.concat.axis;
        long long outer = 1, off = 0, yrow = tr_elems(tr_shape(t, y), axis);
        for (int d = 0; d < axis; d++) outer *= tr_dim(t, y, d);
        tr_need(t, "concat");
        for (int j = 0; j < n->n_in; j++) {
            long long xrow = tr_elems(ir_in_shape(g, n, j), axis);
            sb_printf(b, "    nnc_concat_part(n * %lld, %s, %lld, %s, %lld, %lld);\n", outer, tr_x(t, ir_in(g, n, j)),
                      xrow, Y, yrow, off);
            off += xrow;
        }
        break;
    }
    case OP_ADD:
        tr_need(t, "add");
        sb_printf(b, "    nnc_add(%s, %s, %s, %s);\n", tr_count(t, y), X, tr_x(t, ir_in(g, n, 1)), Y);
        break;
    case OP_SOFTMAX:
        tr_need(t, "softmax");
        sb_printf(b, "    nnc_softmax(n, %s, %lld, %lld, %s);\n", X, tr_dim(t, x, 0), tr_elems(tr_shape(t, x), 1), Y);
        break;
    case OP_LRN: {
        const LrnAttr *a = &n->attr.lrn;
        tr_need(t, "lrn");
        sb_printf(b, "    nnc_lrn(n, %s, %lld, %lld, %s, %d, %s, %s, %s);\n", X, tr_dim(t, x, 0),
                  tr_elems(tr_shape(t, x), 1), Y, a->size, tr_f(t, a->alpha), tr_f(t, a->beta), tr_f(t, a->k));
        break;
    }
    default:
        break;
    }
}

/* The backward call of node n: the gradients of its inputs (those that need
 * one) from the gradient of its output. */
/* The gradient rules: the backward of each op, named in the GRAD column of
 * ir/ops.def. Each writes the calls that add the gradients of the node's
 * inputs (those that need one) from the gradient of its output; the forward
 * values it reads (its inputs, its output, the parameters) are kept alive for
 * it by the memory plan (tr_plan). tr_bwd_none: the op has no rule, and a
 * network using it cannot be trained yet. */
static void tr_bwd_none(Tr *t, const IrNode *n, StrBuf *b) { (void)t, (void)n, (void)b; }

static void tr_bwd_conv(Tr *t, const IrNode *n, StrBuf *b)
{
    const IrGraph *g = t->g;
    int32_t x = ir_in(g, n, 0), y = n->out;
    const char *X = tr_x(t, x), *DX = tr_d(t, x), *DY = tr_d(t, y);
    const ConvAttr *c = &n->attr.conv;
    int32_t w = ir_in(g, n, 1);
    bool tconv = n->op == OP_CONV_T2D;
    tr_need(t, tconv ? "conv_transpose2d_backward" : "conv2d_backward");
    sb_printf(b, "    nnc_%s_backward(n, %s, %lld, %lld, %lld, %s, %s, %d, %lld, %lld,\n"
                 "        %d, %d, %d, %d, %d, %d, %d, %d, %d, %s, %s, %s, t->scratch);\n",
              tconv ? "conv_transpose2d" : "conv2d", X, tr_dim(t, x, 0), tr_dim(t, x, 1), tr_dim(t, x, 2),
              tr_x(t, w), DY, c->out_channels, tr_dim(t, y, 1), tr_dim(t, y, 2), c->kh, c->kw, c->sh, c->sw, c->ph,
              c->pw, c->dh, c->dw, c->groups, DX, tr_d(t, w), c->bias ? tr_d(t, ir_in(g, n, 2)) : "NULL");
}

static void tr_bwd_linear(Tr *t, const IrNode *n, StrBuf *b)
{
    const IrGraph *g = t->g;
    int32_t x = ir_in(g, n, 0), y = n->out;
    const char *X = tr_x(t, x), *DX = tr_d(t, x), *DY = tr_d(t, y);
    int32_t w = ir_in(g, n, 1);
    tr_need(t, "linear_backward");
    sb_printf(b, "    nnc_linear_backward(n, %s, %lld, %s, %s, %d, %s, %s, %s);\n", X, tr_elems(tr_shape(t, x), 0),
              tr_x(t, w), DY, n->attr.linear.out_features, DX, tr_d(t, w),
              n->attr.linear.bias ? tr_d(t, ir_in(g, n, 2)) : "NULL");
}

static void tr_bwd_batchnorm(Tr *t, const IrNode *n, StrBuf *b)
{
    const IrGraph *g = t->g;
    int32_t x = ir_in(g, n, 0), y = n->out, ni = (int32_t)(n - g->nodes);
    const char *X = tr_x(t, x), *DX = tr_d(t, x), *DY = tr_d(t, y);
    long long c = tr_dim(t, x, 0);
    tr_need(t, "batchnorm_train");
    tr_need(t, "batchnorm_eval_backward");
    sb_printf(b, "    if (train)\n"
                 "        nnc_batchnorm_backward(n, %s, %lld, %lld, %s, t->bn_save + %lld, t->bn_save + %lld, %s, %s, %s, %s);\n",
              X, c, tr_elems(tr_shape(t, x), 1), tr_x(t, ir_in(g, n, 1)), (long long)t->bn_off[ni],
              (long long)t->bn_off[ni] + c, DY, DX, tr_d(t, ir_in(g, n, 1)), tr_d(t, ir_in(g, n, 2)));
    if (strcmp(DX, "NULL") == 0) return;  /* inference mode: an affine map, input gradients only (none wanted) */
    /* a workspace gradient always exists ("if (ws + k)" is always true: gcc's -Waddress); the caller's dinput may be NULL */
    sb_printf(b, "    else%s  /* inference mode: an affine map (input gradients only) */\n"
                 "        nnc_batchnorm_eval_backward(n, %s, %lld, %lld, %s, %s, %s, %s);\n",
              strcmp(DX, "dinput") == 0 ? " if (dinput)" : "", DY, c, tr_elems(tr_shape(t, x), 1),
              tr_x(t, ir_in(g, n, 1)), tr_x(t, ir_in(g, n, 4)), tr_f(t, n->attr.bn.eps), DX);
}

static void tr_bwd_act_from_y(Tr *t, const IrNode *n, StrBuf *b)
{
    const IrGraph *g = t->g;
    int32_t x = ir_in(g, n, 0), y = n->out;
    const char *Y = tr_x(t, y), *DX = tr_d(t, x), *DY = tr_d(t, y);
    tr_need(t, arena_printf(&t->arena, "%s_backward", ir_ops[n->op].name));
    sb_printf(b, "    nnc_%s_backward(%s, %s, %s, %s);\n", ir_ops[n->op].name, tr_count(t, y), Y, DY, DX);
}

static void tr_bwd_leaky_relu(Tr *t, const IrNode *n, StrBuf *b)
{
    const IrGraph *g = t->g;
    int32_t x = ir_in(g, n, 0), y = n->out;
    const char *X = tr_x(t, x), *DX = tr_d(t, x), *DY = tr_d(t, y);
    tr_need(t, "leaky_relu_backward");
    sb_printf(b, "    nnc_leaky_relu_backward(%s, %s, %s, %s, %s);\n", tr_count(t, y), X, DY, DX,
              tr_f(t, n->attr.act.slope));
}

static void tr_bwd_dropout(Tr *t, const IrNode *n, StrBuf *b)
{
    const IrGraph *g = t->g;
    int32_t x = ir_in(g, n, 0), y = n->out, ni = (int32_t)(n - g->nodes);
    const char *DX = tr_d(t, x), *DY = tr_d(t, y);
    tr_need(t, "dropout_train");
    tr_need(t, "grad_accumulate");
    sb_printf(b, "    if (train)\n"
                 "        nnc_dropout_backward(%s, %s, %s, %s, t->cfg.seed, (uint64_t)t->step * %lld + %lld);\n"
                 "    else\n"
                 "        nnc_grad_accumulate(%s, %s, %s);\n",
              tr_count(t, y), DY, DX, tr_f(t, n->attr.dropout.p), (long long)t->drop_per_step,
              (long long)t->drop_off[ni], tr_count(t, y), DY, DX);
}

static void tr_bwd_copy(Tr *t, const IrNode *n, StrBuf *b)
{
    const IrGraph *g = t->g;
    int32_t x = ir_in(g, n, 0), y = n->out;
    const char *DX = tr_d(t, x), *DY = tr_d(t, y);
    tr_need(t, "grad_accumulate");
    sb_printf(b, "    nnc_grad_accumulate(%s, %s, %s);\n", tr_count(t, y), DY, DX);
}

static void tr_bwd_add(Tr *t, const IrNode *n, StrBuf *b)
{
    const IrGraph *g = t->g;
    int32_t y = n->out;
    const char *DY = tr_d(t, y);
    tr_need(t, "grad_accumulate");
    for (int j = 0; j < 2; j++)
        if (t->grad[ir_in(g, n, j)])
            sb_printf(b, "    %snnc_grad_accumulate(%s, %s, %s);\n",
                      g->values[ir_in(g, n, j)].kind == VK_INPUT ? "if (dinput) " : "", tr_count(t, y), DY,
                      tr_d(t, ir_in(g, n, j)));
}

static void tr_bwd_maxpool(Tr *t, const IrNode *n, StrBuf *b)
{
    const IrGraph *g = t->g;
    int32_t x = ir_in(g, n, 0), y = n->out;
    const char *X = tr_x(t, x), *DX = tr_d(t, x), *DY = tr_d(t, y);
    const PoolAttr *p = &n->attr.pool;
    tr_need(t, "maxpool2d_backward");
    sb_printf(b, "    nnc_maxpool2d_backward(n, %s, %lld, %lld, %lld, %s, %lld, %lld, %d, %d, %d, %d, %d, %d, %d, %d, %s);\n",
              X, tr_dim(t, x, 0), tr_dim(t, x, 1), tr_dim(t, x, 2), DY, tr_dim(t, y, 1), tr_dim(t, y, 2), p->kh,
              p->kw, p->sh, p->sw, p->ph, p->pw, p->dh, p->dw, DX);
}

static void tr_bwd_avgpool(Tr *t, const IrNode *n, StrBuf *b)
{
    const IrGraph *g = t->g;
    int32_t x = ir_in(g, n, 0), y = n->out;
    const char *DX = tr_d(t, x), *DY = tr_d(t, y);
    const PoolAttr *p = &n->attr.pool;
    tr_need(t, "avgpool2d_backward");
    sb_printf(b, "    nnc_avgpool2d_backward(n, %s, %lld, %lld, %lld, %lld, %lld, %d, %d, %d, %d, %d, %d, %d, %s);\n",
              DY, tr_dim(t, x, 0), tr_dim(t, x, 1), tr_dim(t, x, 2), tr_dim(t, y, 1), tr_dim(t, y, 2), p->kh, p->kw,
              p->sh, p->sw, p->ph, p->pw, p->count_include_pad ? 1 : 0, DX);
}

static void tr_bwd_global_avgpool(Tr *t, const IrNode *n, StrBuf *b)
{
    const IrGraph *g = t->g;
    int32_t x = ir_in(g, n, 0), y = n->out;
    const char *DX = tr_d(t, x), *DY = tr_d(t, y);
    tr_need(t, "global_avgpool_backward");
    sb_printf(b, "    nnc_global_avgpool_backward(n, %s, %lld, %lld, %s);\n", DY, tr_dim(t, x, 0),
              tr_elems(tr_shape(t, x), 1), DX);
}

static void tr_bwd_adaptive_avgpool(Tr *t, const IrNode *n, StrBuf *b)
{
    const IrGraph *g = t->g;
    int32_t x = ir_in(g, n, 0), y = n->out;
    const char *DX = tr_d(t, x), *DY = tr_d(t, y);
    tr_need(t, "adaptive_avgpool2d_backward");
    sb_printf(b, "    nnc_adaptive_avgpool2d_backward(n, %s, %lld, %lld, %lld, %lld, %lld, %s);\n", DY,
              tr_dim(t, x, 0), tr_dim(t, x, 1), tr_dim(t, x, 2), tr_dim(t, y, 1), tr_dim(t, y, 2), DX);
}

static void tr_bwd_concat(Tr *t, const IrNode *n, StrBuf *b)
{
    const IrGraph *g = t->g;
    int32_t y = n->out;
    const char *DY = tr_d(t, y);
    int axis = n->attr.concat.axis;
    long long outer = 1, off = 0, yrow = tr_elems(tr_shape(t, y), axis);
    for (int d = 0; d < axis; d++) outer *= tr_dim(t, y, d);
    tr_need(t, "concat_backward");
    for (int j = 0; j < n->n_in; j++) {
        int32_t xj = ir_in(g, n, j);
        long long xrow = tr_elems(tr_shape(t, xj), axis);
        if (t->grad[xj])
            sb_printf(b, "    %snnc_concat_part_backward(n * %lld, %s, %lld, %lld, %s, %lld);\n",
                      g->values[xj].kind == VK_INPUT ? "if (dinput) " : "", outer, DY, yrow, off, tr_d(t, xj), xrow);
        off += xrow;
    }
}

static void tr_bwd_softmax(Tr *t, const IrNode *n, StrBuf *b)
{
    const IrGraph *g = t->g;
    int32_t x = ir_in(g, n, 0), y = n->out;
    const char *Y = tr_x(t, y), *DX = tr_d(t, x), *DY = tr_d(t, y);
    tr_need(t, "softmax_backward");
    sb_printf(b, "    nnc_softmax_backward(n, %s, %s, %lld, %lld, %s);\n", Y, DY, tr_dim(t, x, 0),
              tr_elems(tr_shape(t, x), 1), DX);
}

static void tr_bwd_lrn(Tr *t, const IrNode *n, StrBuf *b)
{
    const IrGraph *g = t->g;
    int32_t x = ir_in(g, n, 0), y = n->out;
    const char *X = tr_x(t, x), *DX = tr_d(t, x), *DY = tr_d(t, y);
    const LrnAttr *a = &n->attr.lrn;
    tr_need(t, "lrn_backward");
    sb_printf(b, "    nnc_lrn_backward(n, %s, %lld, %lld, %s, %d, %s, %s, %s, %s, t->scratch);\n", X, tr_dim(t, x, 0),
              tr_elems(tr_shape(t, x), 1), DY, a->size, tr_f(t, a->alpha), tr_f(t, a->beta), tr_f(t, a->k), DX);
}

static void tr_bwd_act(Tr *t, const IrNode *n, StrBuf *b)
{
    if (n->op == OP_LEAKY_RELU) tr_bwd_leaky_relu(t, n, b);
    else tr_bwd_act_from_y(t, n, b);
}

typedef void (*TrBwdFn)(Tr *t, const IrNode *n, StrBuf *b);

#define OP(id, nm, dsl, mn, mx, attr, act, inpl, bstr, tfwd, shape, macs, emit, grad) [OP_##id] = grad,
static const TrBwdFn tr_backward_fns[OP_COUNT] = {
#include "../ir/ops.def"
};
#undef OP

static void tr_backward(Tr *t, const IrNode *n, StrBuf *b) { tr_backward_fns[n->op](t, n, b); }

/* ----------------------------------------------------------- planning ---- */

static bool tr_check(Tr *t)
{
    const IrGraph *g = t->g;
    if (t->opt->max_batch < 1 || t->opt->max_batch > TR_MAX_BATCH)
        TR_FAIL(t, "the training batch must be between 1 and %d, not %d", TR_MAX_BATCH, t->opt->max_batch);
    if (g->n_inputs != 1) TR_FAIL(t, "network %s has %d inputs; training needs exactly one (the images)", g->name, g->n_inputs);
    if (g->n_outputs < 1) TR_FAIL(t, "network %s has no output to train", g->name);
    if (g->n_params < 1) TR_FAIL(t, "network %s has no parameters: there is nothing to train", g->name);
    t->out = g->outputs[0].value;
    for (int32_t k = 0; k < g->n_outputs; k++) {  /* the logits, then auxiliary classifiers' (GoogLeNet) */
        int32_t v = g->outputs[k].value;
        const IrValue *o = &g->values[v];
        if (o->kind != VK_ACT) TR_FAIL(t, "output %s of %s is not computed by the network", g->outputs[k].name, g->name);
        long long c = tr_elems(&o->shape, 0);
        if (tr_elems(&o->shape, 1) != 1 || c < 1 || c > 1000000)
            TR_FAIL(t, "output %s of %s has shape [%lld, ...]: the loss needs [classes] logits", g->outputs[k].name,
                    g->name, (long long)o->shape.dim[0]);
        if (k == 0) t->classes = (int)c;
        else if (c != t->classes)
            TR_FAIL(t, "output %s of %s has %lld classes, the first output %d: auxiliary classifiers must agree",
                    g->outputs[k].name, g->name, c, t->classes);
        for (int32_t j = 0; j < k; j++)
            if (g->outputs[j].value == v) TR_FAIL(t, "outputs %s and %s of %s are the same tensor", g->outputs[j].name, g->outputs[k].name, g->name);
    }
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const IrNode *n = &g->nodes[i];
        const Epilogue *e = ir_epilogue(n);
        const Prologue *p = ir_prologue(n);
        if (tr_backward_fns[n->op] == tr_bwd_none)
            TR_FAIL(t, "%s:%d:%d: %s has no gradient rule yet, so %s cannot be trained", n->loc.file ? n->loc.file : g->name,
                    n->loc.line, n->loc.col, ir_ops[n->op].name, g->name);
        if ((e && (e->act != ACT_NONE || e->residual)) || (p && p->on) || (n->op == OP_CONCAT && n->attr.concat.in_place))
            TR_FAIL(t, "internal error: the training graph must not be optimized at -O2 (node %d)", i);
    }
    return true;
}

/* Which values need a gradient: parameters (not buffers), and every value
 * computed from one. The images need none. */
static void tr_mark_grads(Tr *t)
{
    const IrGraph *g = t->g;
    t->grad = arena_alloc(&t->arena, (size_t)g->n_values * sizeof *t->grad);
    for (int32_t p = 0; p < g->n_params; p++) t->grad[g->params[p]] = !g->values[g->params[p]].buffer;
    for (int32_t i = 0; i < g->n_inputs; i++) t->grad[g->inputs[i]] = true;  /* PREFIX_train_input_grad */
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->op == OP_BATCHNORM) {  /* running statistics are buffers: no gradient flows into them */
            t->grad[n->out] = t->grad[ir_in(g, n, 0)] || t->grad[ir_in(g, n, 1)] || t->grad[ir_in(g, n, 2)];
            continue;
        }
        for (int j = 0; j < n->n_in; j++) t->grad[n->out] |= t->grad[ir_in(g, n, j)];
    }
}

/* conv2d -> batchnorm -> [activation] chains the training step runs fused
 * (grad_kernels.c bn_train_fused): the conv's output read by the batchnorm
 * alone, the batchnorm's by the activation alone, neither a graph output. */
static void tr_find_fusions(Tr *t)
{
    const IrGraph *g = t->g;
    int32_t N = g->n_nodes;
    int32_t *uses = arena_alloc(&t->arena, (size_t)g->n_values * sizeof *uses);
    t->fused_bn = arena_alloc(&t->arena, (size_t)(N + 1) * sizeof *t->fused_bn);
    t->fused_act = arena_alloc(&t->arena, (size_t)(N + 1) * sizeof *t->fused_act);
    for (int32_t i = 0; i < g->n_ins; i++) uses[g->ins[i]]++;
    for (int32_t o = 0; o < g->n_outputs; o++) uses[g->outputs[o].value] += 2;  /* an output is never fused away */
    for (int32_t i = 0; i < N; i++) t->fused_bn[i] = t->fused_act[i] = -1;
    for (int32_t b = 0; b < N; b++) {
        const IrNode *bn = &g->nodes[b];
        if (bn->op != OP_BATCHNORM) continue;
        int32_t x = ir_in(g, bn, 0), c = g->values[x].node;
        if (c < 0 || g->nodes[c].op != OP_CONV2D || uses[x] != 1 || t->fused_bn[c] >= 0) continue;
        t->fused_bn[c] = t->fused_bn[b] = b;
        if (2 * tr_dim(t, x, 0) > t->stats_doubles) t->stats_doubles = 2 * tr_dim(t, x, 0);
        if (uses[bn->out] != 1) continue;
        for (int32_t a = b + 1; a < N; a++) {
            const IrNode *an = &g->nodes[a];
            if (an->n_in < 1 || ir_in(g, an, 0) != bn->out) continue;
            bool ok = an->op == OP_RELU || an->op == OP_RELU6 || an->op == OP_SIGMOID || an->op == OP_TANH ||
                      (an->op == OP_LEAKY_RELU && an->attr.act.slope > 0.0f);
            if (ok) t->fused_act[b] = a, t->fused_bn[a] = b;
            break;
        }
    }
}

/* The value a fused chain's batchnorm writes: its activation's output, or its own. */
static int32_t tr_chain_out(const Tr *t, int32_t b)
{
    return t->fused_act[b] >= 0 ? t->g->nodes[t->fused_act[b]].out : t->g->nodes[b].out;
}

static bool tr_plan(Tr *t)
{
    const IrGraph *g = t->g;
    Arena *a = &t->arena;
    int32_t N = g->n_nodes, nv = g->n_values;
    int64_t mb = t->opt->max_batch;
    t->param_off = arena_alloc(a, (size_t)nv * sizeof *t->param_off);
    t->act_off = arena_alloc(a, (size_t)nv * sizeof *t->act_off);
    t->grad_off = arena_alloc(a, (size_t)nv * sizeof *t->grad_off);
    t->first_grad = arena_alloc(a, (size_t)nv * sizeof *t->first_grad);
    t->bn_off = arena_alloc(a, (size_t)(N + 1) * sizeof *t->bn_off);
    t->drop_off = arena_alloc(a, (size_t)(N + 1) * sizeof *t->drop_off);
    int32_t *last = arena_alloc(a, (size_t)nv * sizeof *last);
    int32_t *reader = arena_alloc(a, (size_t)nv * sizeof *reader);  /* the last node that reads a value */
    for (int32_t v = 0; v < nv; v++) t->param_off[v] = t->act_off[v] = t->grad_off[v] = -1, last[v] = reader[v] = -1;
    for (int32_t p = 0; p < g->n_params; p++) {
        int32_t v = g->params[p];
        t->param_off[v] = t->param_floats;
        t->param_floats += ir_shape_elems(&g->values[v].shape);
        if (!g->values[v].buffer) t->learn_floats += ir_shape_elems(&g->values[v].shape), t->n_learn++;
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
        if (n->op == OP_BATCHNORM && t->fused_bn[i] == i && t->fused_act[i] >= 0) {
            int32_t y = tr_chain_out(t, i);  /* the fused backward reads the activation's output */
            if (2 * N - i > last[y]) last[y] = 2 * N - i;
        }
        t->bn_off[i] = t->drop_off[i] = -1;
        if (n->op == OP_BATCHNORM) t->bn_off[i] = t->bn_floats, t->bn_floats += 2 * tr_dim(t, ir_in(g, n, 0), 0);
        if (n->op == OP_DROPOUT) t->drop_off[i] = t->drop_per_step, t->drop_per_step += mb * tr_elems(tr_shape(t, n->out), 0);
        int64_t s = tr_scratch(t, n);
        if (s > t->scratch_floats) t->scratch_floats = s;
        if (n->op == OP_CONV2D || n->op == OP_CONV_T2D) {  /* the backward kernels' own needs */
            int64_t sb = tr_backward_scratch(t, n);
            if (sb > t->scratch_floats) t->scratch_floats = sb;
        }
    }
    for (int32_t k = 0; k < g->n_outputs; k++)  /* the loss reads every output */
        if (2 * N + 1 > last[g->outputs[k].value]) last[g->outputs[k].value] = 2 * N + 1;
    MpBuffer *bufs = arena_alloc(a, (size_t)(2 * N + 2) * sizeof *bufs);
    int32_t *owner = arena_alloc(a, (size_t)(2 * N + 2) * sizeof *owner);  /* value id; grads as -(id + 1) */
    int32_t nb = 0;
    for (int32_t i = 0; i < N; i++) {
        int32_t v = g->nodes[i].out;
        int64_t bytes = tr_elems(tr_shape(t, v), 0) * mb * (int64_t)sizeof(float);
        bool mid = g->nodes[i].op == OP_BATCHNORM && t->fused_bn[i] == i && t->fused_act[i] >= 0;
        if (mid) continue;  /* a fused batchnorm's own output never exists: it writes its activation's */
        int32_t born = t->fused_bn[i] >= 0 && g->nodes[i].op != OP_CONV2D && g->nodes[i].op != OP_BATCHNORM
                           ? t->fused_bn[i] : i;  /* an activation fused into batchnorm b is written at step b */
        owner[nb] = v;
        bufs[nb++] = (MpBuffer){bytes, born, last[v], 0};
        if (!t->grad[v]) continue;
        int32_t first = 2 * N - i;  /* the gradient: from its last reader's backward (or the loss) to its producer's */
        for (int32_t k = 0; k < g->n_outputs; k++)
            if (v == g->outputs[k].value) first = N;  /* the loss contributes first */
        if (reader[v] > i && 2 * N - reader[v] < first) first = 2 * N - reader[v];  /* the last reader's backward */
        t->first_grad[v] = first;
        owner[nb] = -(v + 1);
        bufs[nb++] = (MpBuffer){bytes, first, 2 * N - born, 0};  /* read by the batchnorm's backward when fused */
    }
    t->ws_bytes = mp_plan(bufs, nb, TR_ALIGN);
    for (int32_t b = 0; b < nb; b++) {
        if (owner[b] >= 0) t->act_off[owner[b]] = bufs[b].offset;
        else t->grad_off[-owner[b] - 1] = bufs[b].offset;
    }
    return true;
}

/* ----------------------------------------------------------- emission ---- */

static void tr_put(Tr *t, StrBuf *out, const char *text) { cg_put_template(out, text, t->prefix, t->upper); }

static const char *tr_node_comment(Tr *t, const IrNode *n) { return cg_node_origin(&t->arena, n); }

/* The forward of a fused chain: at the conv (training: with the statistics),
 * at the batchnorm (normalization and activation in one pass); the activation
 * node itself emits nothing. */
static bool tr_forward_fused(Tr *t, const IrNode *n, StrBuf *b)
{
    const IrGraph *g = t->g;
    int32_t i = (int32_t)(n - g->nodes), bi = t->fused_bn[i];
    if (bi < 0) return false;
    const IrNode *bn = &g->nodes[bi];
    int32_t x = ir_in(g, bn, 0), y = tr_chain_out(t, bi), a = t->fused_act[bi];
    ActKind act = a >= 0 ? ir_ops[g->nodes[a].op].act : ACT_NONE;
    float slope = a >= 0 && g->nodes[a].op == OP_LEAKY_RELU ? g->nodes[a].attr.act.slope : 0.0f;
    long long c = tr_dim(t, x, 0), hw = tr_elems(tr_shape(t, x), 1);
    if (n->op == OP_CONV2D) {
        const ConvAttr *ca = &n->attr.conv;
        int32_t cx = ir_in(g, n, 0);
        tr_need(t, "bn_train_fused");
        sb_printf(b, "    if (train) {  /* the convolution, with its batchnorm's statistics */\n"
                     "        memset(t->stats, 0, %lld * sizeof(double));\n"
                     "        nnc_conv2d_stats(n, %s, %lld, %lld, %lld, %s, %s, %s, %d, %lld, %lld,\n"
                     "                         %d, %d, %d, %d, %d, %d, %d, %d, %d, t->scratch, t->stats);\n"
                     "    } else {\n",
                  2 * c, tr_x(t, cx), tr_dim(t, cx, 0), tr_dim(t, cx, 1), tr_dim(t, cx, 2), tr_x(t, ir_in(g, n, 1)),
                  ca->bias ? tr_x(t, ir_in(g, n, 2)) : "NULL", tr_x(t, n->out), ca->out_channels, tr_dim(t, n->out, 1),
                  tr_dim(t, n->out, 2), ca->kh, ca->kw, ca->sh, ca->sw, ca->ph, ca->pw, ca->dh, ca->dw, ca->groups);
        tr_forward(t, n, b, false);
        sb_append(b, "    }\n");
        return true;
    }
    if (n->op == OP_BATCHNORM) {
        const char *X = tr_x(t, x), *Y = tr_x(t, y);
        sb_printf(b, "    if (train) {  /* normalization and %s in one pass */\n"
                     "        nnc_batchnorm_act_train(n, %s, %lld, %lld, t->stats, %s, %s, %s, %s, %s, %s, %s,\n"
                     "                                t->bn_save + %lld, t->bn_save + %lld, %s, %s);\n"
                     "    } else {\n",
                  ir_act_name(act), X, c, hw, tr_x(t, ir_in(g, n, 1)), tr_x(t, ir_in(g, n, 2)), tr_f(t, n->attr.bn.eps),
                  tr_f(t, n->attr.bn.momentum), tr_x(t, ir_in(g, n, 3)), tr_x(t, ir_in(g, n, 4)), Y,
                  (long long)t->bn_off[bi], (long long)t->bn_off[bi] + c,
                  cg_act_macro(act),
                  tr_f(t, slope));
        tr_need(t, "batchnorm");
        sb_printf(b, "        nnc_batchnorm(n, %s, %lld, %lld, %lld, %s, %s, %s, %s, %s, %s, %lld);\n", X,
                  tr_elems(tr_shape(t, x), 0), c, hw, tr_x(t, ir_in(g, n, 1)), tr_x(t, ir_in(g, n, 2)),
                  tr_x(t, ir_in(g, n, 3)), tr_x(t, ir_in(g, n, 4)), tr_f(t, n->attr.bn.eps), Y, tr_elems(tr_shape(t, x), 0));
        if (a >= 0) {
            tr_need(t, ir_ops[g->nodes[a].op].name);
            if (g->nodes[a].op == OP_LEAKY_RELU)
                sb_printf(b, "        nnc_leaky_relu(%s, %s, %s, %s);\n", tr_count(t, y), Y, Y, tr_f(t, slope));
            else
                sb_printf(b, "        nnc_%s(%s, %s, %s);\n", ir_ops[g->nodes[a].op].name, tr_count(t, y), Y, Y);
        }
        sb_append(b, "    }\n");
        return true;
    }
    sb_printf(b, "    /* fused into the batchnorm above */\n");
    return true;
}

/* The backward of a fused chain, at the batchnorm: the activation's backward
 * folded into batchnorm's (the activation node emits nothing). */
static bool tr_backward_fused(Tr *t, const IrNode *n, StrBuf *b)
{
    const IrGraph *g = t->g;
    int32_t i = (int32_t)(n - g->nodes), bi = t->fused_bn[i];
    if (bi < 0 || n->op == OP_CONV2D) return false;
    if (n->op != OP_BATCHNORM) {
        sb_printf(b, "    /* folded into the batchnorm's backward below */\n");
        return true;
    }
    int32_t x = ir_in(g, n, 0), y = tr_chain_out(t, bi), a = t->fused_act[bi];
    ActKind act = a >= 0 ? ir_ops[g->nodes[a].op].act : ACT_NONE;
    float slope = a >= 0 && g->nodes[a].op == OP_LEAKY_RELU ? g->nodes[a].attr.act.slope : 0.0f;
    long long c = tr_dim(t, x, 0);
    const char *an = cg_act_macro(act);
    tr_need(t, "bn_train_fused");
    sb_printf(b, "    if (train)\n"
                 "        nnc_batchnorm_act_backward(n, %s, %lld, %lld, %s, t->bn_save + %lld, t->bn_save + %lld, %s, %s,\n"
                 "                                   %s, %s, %s, %s, %s);\n"
                 "    else  /* inference mode: the activation, then an affine map (input gradients only) */\n"
                 "        nnc_batchnorm_act_eval_backward(n, %lld, %lld, %s, %s, %s, %s, %s, %s, %s, %s);\n",
              tr_x(t, x), c, tr_elems(tr_shape(t, x), 1), tr_x(t, ir_in(g, n, 1)), (long long)t->bn_off[bi],
              (long long)t->bn_off[bi] + c, tr_x(t, y), tr_d(t, y), an, tr_f(t, slope), tr_d(t, x),
              tr_d(t, ir_in(g, n, 1)), tr_d(t, ir_in(g, n, 2)), c, tr_elems(tr_shape(t, x), 1), tr_x(t, ir_in(g, n, 1)),
              tr_x(t, ir_in(g, n, 4)), tr_f(t, n->attr.bn.eps), tr_x(t, y), tr_d(t, y), an, tr_f(t, slope), tr_d(t, x));
    return true;
}

static void tr_emit_bodies(Tr *t)
{
    const IrGraph *g = t->g;
    int32_t N = g->n_nodes;
    sb_append(&t->fwd, "");
    sb_append(&t->bwd, "");
    for (int32_t i = 0; i < N; i++) {
        const IrNode *n = &g->nodes[i];
        sb_printf(&t->fwd, "\n    /* %s */\n", tr_node_comment(t, n));
        if (tr_forward_fused(t, n, &t->fwd)) continue;
        bool mode = n->op == OP_BATCHNORM || n->op == OP_DROPOUT;
        if (mode) {
            sb_append(&t->fwd, "    if (train) {\n    ");
            tr_forward(t, n, &t->fwd, true);
            sb_append(&t->fwd, "    } else {\n    ");
            tr_forward(t, n, &t->fwd, false);
            sb_append(&t->fwd, "    }\n");
        } else {
            tr_forward(t, n, &t->fwd, false);
        }
    }
    for (int32_t i = N - 1; i >= 0; i--) {
        const IrNode *n = &g->nodes[i];
        if (!t->grad[n->out]) continue;
        sb_printf(&t->bwd, "\n    /* backward of %s */\n", tr_node_comment(t, n));
        bool folded = t->fused_bn[i] >= 0 && n->op != OP_CONV2D && n->op != OP_BATCHNORM;
        for (int j = 0; !folded && j < n->n_in; j++) {  /* gradients whose first contribution comes now start at zero */
            int32_t v = ir_in(g, n, j);
            bool seen = false;
            for (int k = 0; k < j; k++) seen |= ir_in(g, n, k) == v;
            if (!seen && t->grad[v] && g->values[v].kind == VK_ACT && t->first_grad[v] == 2 * N - i)
                sb_printf(&t->bwd, "    memset(%s, 0, %s * sizeof(float));\n", tr_d(t, v), tr_count(t, v));
        }
        bool guard = false;  /* an op whose input gradient would go to the caller's dinput, which may be NULL */
        if (n->op != OP_CONV2D && n->op != OP_CONV_T2D && n->op != OP_LINEAR && n->op != OP_BATCHNORM &&
            n->op != OP_ADD && n->op != OP_CONCAT && n->n_in && g->values[ir_in(g, n, 0)].kind == VK_INPUT)
            guard = true;
        if (guard) sb_append(&t->bwd, "    if (dinput) {\n");
        if (!tr_backward_fused(t, n, &t->bwd)) tr_backward(t, n, &t->bwd);
        if (guard) sb_append(&t->bwd, "    }\n");
    }
}

/* The header's file name as the source #includes it (checked by cg_header_name_ok). */
static const char *tr_header_name(Tr *t)
{
    return t->opt->header_name ? t->opt->header_name : arena_printf(&t->arena, "%s_train.h", t->prefix);
}

/* ": generated by nnc VERSION from PATH. Do not edit." and a line break, the
 * path made safe for the comment it sits in (cnames.h). */
static void tr_append_banner(Tr *t, StrBuf *b)
{
    const char *src = t->opt->source_path ? t->opt->source_path : t->g->source;
    sb_printf(b, ": generated by nnc %s", NNC_VERSION);
    if (src) {
        sb_append(b, " from ");
        cg_append_comment(b, src);
    }
    sb_append(b, ". Do not edit.\n");
}

static void tr_write_header(Tr *t, StrBuf *h)
{
    sb_append(h, "/* ");
    cg_append_comment(h, tr_header_name(t));
    tr_append_banner(t, h);
    tr_put(t, h,
           " *\n"
           " * The training module of network $p: create it from a safetensors file\n"
           " * holding every parameter and buffer, then call $p_train_step once per\n"
           " * batch (forward in training mode, softmax cross-entropy against integer\n"
           " * labels, backward, one optimizer update with PyTorch's semantics) and\n"
           " * $p_train_eval to measure. Tensors (parameters, buffers, optimizer state)\n"
           " * are reachable by index through $p_train_tensor, for checkpoints.\n"
           " * Every function returning int returns 0 or a negative code; the message\n"
           " * is $p_train_last_error's. No global state: instances are independent.\n"
           " * Every name declared here is $p_train or $P_TRAIN followed by a word of\n"
           " * nnc's; $p is the network's name lowercased, with characters other than\n"
           " * letters, digits and '_' as '_' (net_ in front of one that starts with a\n"
           " * digit, '_' or nnc). Code nnc adds for itself uses nnc_ and NNC_. */\n"
           "#ifndef $P_TRAIN_H\n#define $P_TRAIN_H\n\n#include <stdint.h>\n\n");
    sb_printf(h, "#define %s_TRAIN_MAX_BATCH %d\n#define %s_TRAIN_CLASSES %d\n\n", t->upper, t->opt->max_batch, t->upper,
              t->classes);
    tr_put(t, h,
           "typedef struct $p_train $p_train;\n\n"
           "/* The optimizer and loss (laid out as nnc's RtTrainConfig, runtime/train_abi.h). */\n"
           "typedef struct $p_train_config {\n"
           "    int optimizer;           /* 0 SGD, 1 Adam, 2 AdamW */\n"
           "    double momentum, dampening;\n"
           "    int nesterov;\n"
           "    double beta1, beta2, eps;\n"
           "    int amsgrad;\n"
           "    double weight_decay;     /* SGD, Adam: L2 in the gradient; AdamW: decoupled */\n"
           "    double label_smoothing;\n"
           "    uint64_t seed;           /* dropout */\n"
           "    int loss;                /* 0 softmax cross-entropy, 1 BCE with logits, 2 MSE (one-hot targets) */\n"
           "    double aux_weight;       /* weight of the losses of outputs after the first (GoogLeNet: 0.3) */\n"
           "} $p_train_config;\n\n");
    tr_put(t, h,
           "int $p_train_create($p_train **t, const char *weights_safetensors, const $p_train_config *cfg);\n"
           "/* One step on n <= $P_TRAIN_MAX_BATCH samples: mean loss and correct count out. */\n");
    tr_put(t, h,
           "int $p_train_step($p_train *t, int n, const float *input, const int32_t *labels, double lr, float *loss,\n"
           "                  long *correct);\n"
           "/* Inference-mode forward on a batch: mean loss and correct count, nothing updated. */\n");
    tr_put(t, h,
           "int $p_train_eval($p_train *t, int n, const float *input, const int32_t *labels, float *loss, long *correct);\n");
    tr_put(t, h,
           "/* The gradient of the loss with respect to the input (adversarial examples, style\n"
           " * transfer) into dinput [n][input], with the network in training mode (train = 1:\n"
           " * batch statistics, dropout, auxiliary losses) or inference mode (0); nothing is\n"
           " * updated (running statistics are restored). */\n"
           "int $p_train_input_grad($p_train *t, int n, const float *input, const int32_t *labels, int train,\n"
           "                        float *dinput, float *loss);\n"
           "int $p_train_set_trainable($p_train *t, int i, int trainable);\n");
    tr_put(t, h,
           "int $p_train_tensor_count(const $p_train *t);\n"
           "/* kind: 0 parameter, 1 buffer, 2 optimizer state; data points into the instance. */\n");
    tr_put(t, h,
           "int $p_train_tensor($p_train *t, int i, const char **name, int *kind, float **data, int *rank, int64_t shape[8]);\n");
    tr_put(t, h,
           "long $p_train_get_step(const $p_train *t);\n");
    tr_put(t, h,
           "void $p_train_set_step($p_train *t, long step);\n");
    tr_put(t, h,
           "int $p_train_max_batch(void);\n");
    tr_put(t, h,
           "const char *$p_train_last_error(const $p_train *t);\n");
    tr_put(t, h,
           "void $p_train_destroy($p_train *t);\n\n"
           "#endif\n");
}

static bool tr_write_source(Tr *t, StrBuf *c)
{
    const IrGraph *g = t->g;
    char err[256];
    const char *hname = tr_header_name(t);
    sb_printf(c, "/* %s_train.c", t->prefix);
    tr_append_banner(t, c);
    tr_put(t, c,
           " *\n"
           " * Training for network $p ($p_train.h): the forward pass (training or\n"
           " * inference mode), softmax cross-entropy, the backward pass (the nodes in\n"
           " * reverse, each op's backward kernel), and the optimizer. Kernels below are\n"
           " * nnc's, pasted; build: cc -std=c99 -O2 -c $p_train.c (-lm; define\n"
           " * NNC_USE_CBLAS and link -lopenblas for cblas_sgemm). */\n");
    sb_printf(c, "#include \"%s\"\n\n#include <math.h>\n#include <stdarg.h>\n#include <stdint.h>\n#include <stdio.h>\n"
                 "#include <stdlib.h>\n#include <string.h>\n\n", hname);
    /* the kernels: kernels.c and grad_kernels.c as one sectioned text (the backward sections need forward ones) */
    tr_need(t, "count_correct");
    tr_need(t, "cross_entropy");
    tr_need(t, "bce_with_logits");
    tr_need(t, "mse_loss");
    tr_need(t, "copy");
    StrBuf all = {0};
    sb_append(&all, nnc_snippet_kernels);
    const char *gm = strstr(nnc_snippet_grad_kernels, "\n/* @kernel ");
    if (gm) sb_append(&all, gm + 1);
    bool ok = cg_snippet_select(all.data, all.len, t->sections, t->n_sections, c, err, sizeof err);
    sb_free(&all);
    const char *opt_sections[] = {"optim"};
    ok = ok && cg_snippet_select(nnc_snippet_optim, nnc_snippet_optim_len, opt_sections, 1, c, err, sizeof err);
    if (!ok) TR_FAIL(t, "internal error: %s", err);
    sb_append(c, "\n");
    sb_append(c, nnc_snippet_safetensors_load);
    sb_printf(c, "\n/* ======== %s: training ======== */\n\n", t->prefix);

    /* the tensor table */
    sb_printf(c, "#define %s_N_PARAMS %d\n#define %s_PARAM_FLOATS %lld\n#define %s_LEARN_FLOATS %lld\n"
                 "#define %s_WS_BYTES %lld\n#define %s_SCRATCH_FLOATS %lld\n#define %s_BN_FLOATS %lld\n"
                 "#define %s_STATS_DOUBLES %lld\n\n",
              t->upper, g->n_params, t->upper, (long long)t->param_floats, t->upper, (long long)t->learn_floats,
              t->upper, (long long)t->ws_bytes, t->upper, (long long)(t->scratch_floats ? t->scratch_floats : 1),
              t->upper, (long long)(t->bn_floats ? t->bn_floats : 1), t->upper,
              (long long)(t->stats_doubles ? t->stats_doubles : 1));
    tr_put(t, c,
           "/* Parameters and buffers: name and shape as in the weights file, kind (0\n"
           " * learned, 1 buffer), offset in t->params, and whether the network reads\n"
           " * it (one that no output depends on gets no gradient, and the optimizer\n"
           " * leaves it alone, as torch.optim does a parameter whose grad is None). */\n"
           "static const struct { const char *name; int kind, rank; int64_t shape[4]; long offset; int read; } "
           "$p_params[$P_N_PARAMS] = {\n");
    bool *read = arena_alloc(&t->arena, (size_t)(g->n_values ? g->n_values : 1) * sizeof *read);
    memset(read, 0, (size_t)(g->n_values ? g->n_values : 1) * sizeof *read);
    for (int32_t i = 0; i < g->n_nodes; i++)
        for (int j = 0; j < g->nodes[i].n_in; j++) read[ir_in(g, &g->nodes[i], j)] = true;
    for (int32_t p = 0; p < g->n_params; p++) {
        const IrValue *v = &g->values[g->params[p]];
        sb_append(c, "    {");
        cg_append_string_literal(c, v->name);
        sb_printf(c, ", %d, %d, {", v->buffer ? 1 : 0, v->shape.rank);
        for (int d = 0; d < 4; d++) sb_printf(c, "%s%lld", d ? ", " : "", d < v->shape.rank ? (long long)v->shape.dim[d] : 0LL);
        sb_printf(c, "}, %lld, %d},\n", (long long)t->param_off[g->params[p]], read[g->params[p]] ? 1 : 0);
    }
    tr_put(t, c,
           "};\n\n"
           "struct $p_train {\n"
           "    float *params;            /* parameters and buffers, as $p_params */\n"
           "    float *grads;             /* the gradient of every parameter, same layout */\n"
           "    float *backup;            /* buffers (running statistics) before a forward, to undo it */\n"
           "    float *state;             /* optimizer state, per learned tensor (optim.c layout) */\n"
           "    float *bn_save;           /* batch mean and 1/std of every batchnorm, for its backward */\n"
           "    double *stats;            /* a fused batchnorm's sums, from its conv to it */\n"
           "    float *target, *dummy;    /* one-hot targets (bce, mse); a gradient nobody reads */\n"
           "    float *scratch;\n"
           "    unsigned char *ws;        /* activations and their gradients (planned) */\n"
           "    unsigned char trainable[$P_N_PARAMS];\n"
           "    char **state_names;       /* \"optim.NAME.KEY\" */\n"
           "    int n_state;              /* state tensors per learned tensor */\n"
           "    nnc_optim optim;\n"
           "    $p_train_config cfg;\n"
           "    long step;\n"
           "    char err[512];\n"
           "};\n\n");
    tr_put(t, c,
           "static int $p_train_fail($p_train *t, int code, const char *fmt, ...)\n"
           "{\n"
           "    va_list ap;\n"
           "    va_start(ap, fmt);\n"
           "    vsnprintf(t->err, sizeof t->err, fmt, ap);\n"
           "    va_end(ap);\n"
           "    return code;\n"
           "}\n\n");
    /* the forward and backward functions */
    tr_put(t, c,
           "/* The forward pass; train: batch statistics (running averages updated) and dropout. */\n");
    tr_put(t, c,
           "static void $p_train_fwd($p_train *t, int n, const float *input, int train)\n"
           "{\n"
           "    unsigned char *ws = t->ws;\n"
           "    (void)ws; (void)train; (void)input;\n");
    sb_append(c, t->fwd.data ? t->fwd.data : "");
    tr_put(t, c, "}\n\n/* The backward pass, from the gradients of the outputs (already in place);\n"
                 " * train: of the training-mode forward, else of the inference-mode one;\n"
                 " * dinput (or NULL) receives the gradient with respect to the input. */\n"
                 "static void $p_train_bwd($p_train *t, int n, const float *input, int train, float *dinput)\n"
                 "{\n"
                 "    unsigned char *ws = t->ws;\n"
                 "    (void)ws; (void)input; (void)train;\n");
    sb_printf(c, "    if (dinput) memset(dinput, 0, (size_t)n * %lld * sizeof(float));\n",
              tr_elems(&g->values[g->inputs[0]].shape, 0));
    sb_append(c, t->bwd.data ? t->bwd.data : "");
    sb_append(c, "}\n\n");
    sb_printf(c, "#define %s_N_OUTPUTS %d\n#define %s_LOGITS(t) ((float *)((t)->ws + %lld))\n"
                 "/* every output's logits and gradient, in the workspace: the first is the network's,\n"
                 " * the others auxiliary classifiers' (weighted by cfg.aux_weight in the loss) */\n"
                 "static const long %s_out_off[%d] = {", t->upper, g->n_outputs, t->upper, (long long)t->act_off[t->out],
              t->prefix, g->n_outputs);
    for (int32_t k = 0; k < g->n_outputs; k++) sb_printf(c, "%s%lld", k ? ", " : "", (long long)t->act_off[g->outputs[k].value]);
    sb_printf(c, "};\nstatic const long %s_dout_off[%d] = {", t->prefix, g->n_outputs);
    for (int32_t k = 0; k < g->n_outputs; k++) {
        int32_t v = g->outputs[k].value;
        if (!t->grad[v])
            TR_FAIL(t, "output %s of %s does not depend on any learned parameter: there is nothing to train",
                    g->outputs[k].name, g->name);
        sb_printf(c, "%s%lld", k ? ", " : "", (long long)t->grad_off[v]);
    }
    sb_append(c, "};\n\n");
    tr_put(t, c,
           "/* Correct predictions: the arg-max equals the label; one logit: its sign (> 0: 1). */\n"
           "static long $p_train_correct(int n, const float *logits, const int32_t *labels)\n"
           "{\n"
           "    long k = 0;\n"
           "    int i;\n"
           "    if ($P_TRAIN_CLASSES > 1) return nnc_count_correct(n, logits, $P_TRAIN_CLASSES, (const int *)labels);\n"
           "    for (i = 0; i < n; i++) k += (logits[i] > 0.0f) == (labels[i] == 1);\n"
           "    return k;\n"
           "}\n\n");
    tr_put(t, c,
           "/* The loss of the first `outputs` outputs against the labels (cfg.loss: 0 softmax\n"
           " * cross-entropy with label smoothing, 1 binary cross-entropy with logits and 2 mean\n"
           " * squared error, both against one-hot targets), auxiliary outputs weighted by\n"
           " * cfg.aux_weight; with grad, each output's gradient is set (not added) for an\n"
           " * upstream gradient of 1. */\n"
           "static float $p_train_loss($p_train *t, int n, const int32_t *labels, int outputs, int grad)\n"
           "{\n"
           "    size_t count = (size_t)n * $P_TRAIN_CLASSES, i;\n"
           "    double total = 0.0;\n"
           "    int k;\n"
           "    if (t->cfg.loss != 0) {  /* one-hot targets; one logit (a binary classifier): the label itself */\n"
           "        memset(t->target, 0, count * sizeof(float));\n"
           "        for (i = 0; i < (size_t)n; i++)\n"
           "            if ($P_TRAIN_CLASSES == 1) t->target[i] = (float)labels[i];\n"
           "            else t->target[i * $P_TRAIN_CLASSES + (size_t)labels[i]] = 1.0f;\n"
           "    }\n"
           "    for (k = 0; k < (grad ? $P_N_OUTPUTS : outputs); k++) {\n"
           "        const float *x = (const float *)(t->ws + $p_out_off[k]);\n"
           "        float *dx = grad ? (float *)(t->ws + $p_dout_off[k]) : NULL, l;\n"
           "        float w = k == 0 ? 1.0f : (float)t->cfg.aux_weight;\n"
           "        if (dx) memset(dx, 0, count * sizeof(float));\n"
           "        if (k >= outputs) continue;  /* an auxiliary output outside this loss: gradient 0 */\n"
           "        if (t->cfg.loss == 1) l = dx ? nnc_bce_with_logits(count, x, t->target, dx) : nnc_bce_with_logits(count, x, t->target, t->dummy);\n"
           "        else if (t->cfg.loss == 2) l = dx ? nnc_mse_loss(count, x, t->target, dx) : nnc_mse_loss(count, x, t->target, t->dummy);\n"
           "        else l = nnc_cross_entropy(n, x, $P_TRAIN_CLASSES, (const int *)labels, (float)t->cfg.label_smoothing, dx);\n"
           "        if (dx && k > 0)\n"
           "            for (i = 0; i < count; i++) dx[i] *= w;\n"
           "        total += (double)w * (double)l;\n"
           "    }\n"
           "    return (float)total;\n"
           "}\n\n");
    tr_put(t, c,
           "static const char *const $p_state_keys[2][3] = {{\"momentum_buffer\", \"\", \"\"},\n"
           "                                                 {\"exp_avg\", \"exp_avg_sq\", \"max_exp_avg_sq\"}};\n\n");
    tr_put(t, c,
           "static void $p_train_release($p_train *t)\n"
           "{\n"
           "    int i;\n"
           "    if (t->state_names)\n"
           "        for (i = 0; i < $P_N_PARAMS * 3; i++) free(t->state_names[i]);\n"
           "    free(t->state_names);\n"
           "    free(t->params); free(t->grads); free(t->backup); free(t->state); free(t->bn_save); free(t->stats);\n"
           "    free(t->target); free(t->dummy);\n"
           "    free(t->scratch); free(t->ws);\n"
           "}\n\n");
    tr_put(t, c,
           "int $p_train_create($p_train **out, const char *weights, const $p_train_config *cfg)\n"
           "{\n"
           "    $p_train *t;\n"
           "    nnc_st_want want[$P_N_PARAMS];\n"
           "    char err[384];\n"
           "    int i, k;\n"
           "    if (!out) return -1;\n"
           "    *out = NULL;\n"
           "    t = ($p_train *)calloc(1, sizeof *t);\n"
           "    if (!t) return -2;\n"
           "    *out = t;\n"
           "    if (!cfg || !weights) return $p_train_fail(t, -1, \"$p_train_create: NULL weights path or config\");\n"
           "    if (cfg->optimizer < 0 || cfg->optimizer > 2)\n"
           "        return $p_train_fail(t, -1, \"$p_train_create: unknown optimizer %d\", cfg->optimizer);\n"
           "    if (cfg->loss < 0 || cfg->loss > 2)\n"
           "        return $p_train_fail(t, -1, \"$p_train_create: unknown loss %d\", cfg->loss);\n"
           "    if ($P_TRAIN_CLASSES == 1 && cfg->loss == 0)\n"
           "        return $p_train_fail(t, -1, \"$p_train_create: one output logit (a binary classifier) takes binary \"\n"
           "                                    \"cross-entropy with logits (loss 1), not softmax cross-entropy\");\n"
           "    t->cfg = *cfg;\n"
           "    t->optim.kind = cfg->optimizer;\n"
           "    t->optim.momentum = cfg->momentum;\n"
           "    t->optim.dampening = cfg->dampening;\n"
           "    t->optim.nesterov = cfg->nesterov;\n"
           "    t->optim.beta1 = cfg->beta1;\n"
           "    t->optim.beta2 = cfg->beta2;\n"
           "    t->optim.eps = cfg->eps;\n"
           "    t->optim.amsgrad = cfg->amsgrad;\n"
           "    t->optim.weight_decay = cfg->weight_decay;\n"
           "    t->n_state = (int)nnc_optim_state_floats(&t->optim);\n"
           "    t->params = (float *)malloc((size_t)$P_PARAM_FLOATS * sizeof(float));\n"
           "    t->grads = (float *)calloc((size_t)$P_PARAM_FLOATS, sizeof(float));\n"
           "    t->backup = (float *)malloc((size_t)$P_PARAM_FLOATS * sizeof(float));\n"
           "    t->state = (float *)calloc((size_t)$P_LEARN_FLOATS * (size_t)(t->n_state ? t->n_state : 1), sizeof(float));\n"
           "    t->bn_save = (float *)calloc((size_t)$P_BN_FLOATS, sizeof(float));\n"
           "    t->stats = (double *)calloc((size_t)$P_STATS_DOUBLES, sizeof(double));\n"
           "    t->target = (float *)calloc((size_t)$P_TRAIN_MAX_BATCH * $P_TRAIN_CLASSES, sizeof(float));\n"
           "    t->dummy = (float *)calloc((size_t)$P_TRAIN_MAX_BATCH * $P_TRAIN_CLASSES, sizeof(float));\n"
           "    t->scratch = (float *)malloc((size_t)$P_SCRATCH_FLOATS * sizeof(float));\n"
           "    t->ws = (unsigned char *)malloc((size_t)$P_WS_BYTES + 64);\n"
           "    t->state_names = (char **)calloc((size_t)$P_N_PARAMS * 3, sizeof(char *));\n"
           "    if (!t->params || !t->grads || !t->backup || !t->state || !t->bn_save || !t->stats || !t->scratch || !t->ws ||\n"
           "        !t->target || !t->dummy ||\n"
           "        !t->state_names)\n"
           "        return $p_train_fail(t, -2, \"$p_train_create: out of memory\");\n");
    if (t->scratch_checks.len)  /* the kernels' own scratch needs against the plan (tr_backward_scratch) */
        sb_printf(c, "    if (%s)\n        return %s_train_fail(t, -1, \"internal error: a backward kernel needs more "
                     "scratch than %s_SCRATCH_FLOATS\");\n", t->scratch_checks.data, t->prefix, t->upper);
    tr_put(t, c,
           "    for (i = 0; i < $P_N_PARAMS; i++) {\n"
           "        want[i].name = $p_params[i].name;\n"
           "        want[i].rank = $p_params[i].rank;\n"
           "        for (k = 0; k < 4; k++) want[i].shape[k] = (long long)$p_params[i].shape[k];\n"
           "        want[i].dst = t->params + $p_params[i].offset;\n"
           "        t->trainable[i] = (unsigned char)($p_params[i].kind == 0 && $p_params[i].read);\n"
           "        for (k = 0; k < t->n_state && $p_params[i].kind == 0; k++) {\n"
           "            const char *key = $p_state_keys[cfg->optimizer != 0][k];\n"
           "            size_t len = strlen($p_params[i].name) + strlen(key) + 8;\n"
           "            t->state_names[i * 3 + k] = (char *)malloc(len);\n"
           "            if (!t->state_names[i * 3 + k]) return $p_train_fail(t, -2, \"$p_train_create: out of memory\");\n"
           "            snprintf(t->state_names[i * 3 + k], len, \"optim.%s.%s\", $p_params[i].name, key);\n"
           "        }\n"
           "    }\n"
           "    if (nnc_st_load(weights, want, $P_N_PARAMS, err, sizeof err) != 0)\n"
           "        return $p_train_fail(t, -3, \"$p_train_create: %s\", err);\n"
           "    return 0;\n"
           "}\n\n");
    tr_put(t, c,
           "void $p_train_destroy($p_train *t)\n"
           "{\n"
           "    if (!t) return;\n"
           "    $p_train_release(t);\n"
           "    free(t);\n"
           "}\n\n");
    tr_put(t, c,
           "const char *$p_train_last_error(const $p_train *t) { return t ? t->err : \"no instance\"; }\n");
    tr_put(t, c,
           "int $p_train_max_batch(void) { return $P_TRAIN_MAX_BATCH; }\n");
    tr_put(t, c,
           "long $p_train_get_step(const $p_train *t) { return t->step; }\n");
    tr_put(t, c,
           "void $p_train_set_step($p_train *t, long step) { t->step = step; }\n\n");
    tr_put(t, c,
           "static int $p_train_check($p_train *t, int n, const float *input, const int32_t *labels)\n"
           "{\n"
           "    int i;\n"
           "    if (n < 1 || n > $P_TRAIN_MAX_BATCH)\n"
           "        return $p_train_fail(t, -1, \"batch of %d samples; this module takes 1 to %d\", n, $P_TRAIN_MAX_BATCH);\n"
           "    if (!input || !labels) return $p_train_fail(t, -1, \"NULL input or labels\");\n"
           "    for (i = 0; i < n; i++)  /* one logit: a binary classifier, labels 0 and 1 */\n"
           "        if (labels[i] < 0 || labels[i] >= ($P_TRAIN_CLASSES == 1 ? 2 : $P_TRAIN_CLASSES))\n"
           "            return $p_train_fail(t, -1, \"label %ld of sample %d is outside 0..%d\", (long)labels[i], i,\n"
           "                                 $P_TRAIN_CLASSES == 1 ? 1 : $P_TRAIN_CLASSES - 1);\n"
           "    return 0;\n"
           "}\n\n"
           "/* Copies the buffers (batchnorm's running statistics, which a training-mode\n"
           " * forward updates) to t->backup (save) or back (!save); parameters proper\n"
           " * change only in the optimizer step, after the loss is known to be finite. */\n"
           "static void $p_train_buffers($p_train *t, int save)\n"
           "{\n"
           "    int i, k;\n"
           "    for (i = 0; i < $P_N_PARAMS; i++) {\n"
           "        size_t count = 1, off = (size_t)$p_params[i].offset;\n"
           "        if ($p_params[i].kind != 1) continue;\n"
           "        for (k = 0; k < $p_params[i].rank; k++) count *= (size_t)$p_params[i].shape[k];\n"
           "        if (save) memcpy(t->backup + off, t->params + off, count * sizeof(float));\n"
           "        else memcpy(t->params + off, t->backup + off, count * sizeof(float));\n"
           "    }\n"
           "}\n\n");
    tr_put(t, c,
           "int $p_train_step($p_train *t, int n, const float *input, const int32_t *labels, double lr, float *loss,\n"
           "                  long *correct)\n"
           "{\n"
           "    float l;\n"
           "    long off = 0;\n"
           "    int i, rc = $p_train_check(t, n, input, labels);\n"
           "    if (rc) return rc;\n"
           "    $p_train_buffers(t, 1);\n"
           "    $p_train_fwd(t, n, input, 1);\n"
           "    l = $p_train_loss(t, n, labels, $P_N_OUTPUTS, 1);\n"
           "    if (correct) *correct = $p_train_correct(n, $P_LOGITS(t), labels);\n"
           "    if (loss) *loss = l;\n"
           "    if (!(l - l == 0.0f)) {  /* NaN or infinite: undo the running statistics, keep the weights */\n"
           "        $p_train_buffers(t, 0);\n"
           "        return $p_train_fail(t, -4, \"the loss is %g at step %ld\", (double)l, t->step + 1);\n"
           "    }\n"
           "    memset(t->grads, 0, (size_t)$P_PARAM_FLOATS * sizeof(float));\n"
           "    $p_train_bwd(t, n, input, 1, NULL);\n"
           "    for (i = 0; i < $P_N_PARAMS; i++) {\n"
           "        size_t count = 1;\n"
           "        int k;\n"
           "        if ($p_params[i].kind != 0) continue;\n"
           "        for (k = 0; k < $p_params[i].rank; k++) count *= (size_t)$p_params[i].shape[k];\n"
           "        if (t->trainable[i])\n"
           "            nnc_optim_step(t->params + $p_params[i].offset, t->grads + $p_params[i].offset,\n"
           "                           t->state + (size_t)off * (size_t)t->n_state, count, t->step + 1, lr, &t->optim);\n"
           "        off += (long)count;\n"
           "    }\n"
           "    t->step++;\n"
           "    return 0;\n"
           "}\n\n");
    tr_put(t, c,
           "int $p_train_eval($p_train *t, int n, const float *input, const int32_t *labels, float *loss, long *correct)\n"
           "{\n"
           "    float l;\n"
           "    int rc = $p_train_check(t, n, input, labels);\n"
           "    if (rc) return rc;\n"
           "    $p_train_fwd(t, n, input, 0);\n"
           "    l = $p_train_loss(t, n, labels, 1, 0);\n"
           "    if (loss) *loss = l;\n"
           "    if (correct) *correct = $p_train_correct(n, $P_LOGITS(t), labels);\n"
           "    return 0;\n"
           "}\n\n");
    tr_put(t, c,
           "int $p_train_input_grad($p_train *t, int n, const float *input, const int32_t *labels, int train,\n"
           "                        float *dinput, float *loss)\n"
           "{\n"
           "    float l;\n"
           "    int rc = $p_train_check(t, n, input, labels);\n"
           "    if (rc) return rc;\n"
           "    if (!dinput) return $p_train_fail(t, -1, \"$p_train_input_grad: NULL dinput\");\n"
           "    $p_train_buffers(t, 1);\n"
           "    $p_train_fwd(t, n, input, train);\n"
           "    l = $p_train_loss(t, n, labels, train ? $P_N_OUTPUTS : 1, 1);\n"
           "    memset(t->grads, 0, (size_t)$P_PARAM_FLOATS * sizeof(float));\n"
           "    $p_train_bwd(t, n, input, train, dinput);\n"
           "    $p_train_buffers(t, 0);  /* running statistics */\n"
           "    if (loss) *loss = l;\n"
           "    return 0;\n"
           "}\n\n"
           "int $p_train_set_trainable($p_train *t, int i, int trainable)\n"
           "{\n"
           "    if (i < 0 || i >= $P_N_PARAMS || $p_params[i].kind != 0)\n"
           "        return $p_train_fail(t, -1, \"tensor %d is not a learned parameter\", i);\n"
           "    t->trainable[i] = (unsigned char)(trainable != 0 && $p_params[i].read);  /* unread: no gradient */\n"
           "    return 0;\n"
           "}\n\n");
    tr_put(t, c,
           "int $p_train_tensor_count(const $p_train *t)\n"
           "{\n"
           "    int i, learned = 0;\n"
           "    for (i = 0; i < $P_N_PARAMS; i++) learned += $p_params[i].kind == 0;\n"
           "    return $P_N_PARAMS + learned * t->n_state;\n"
           "}\n\n");
    tr_put(t, c,
           "int $p_train_tensor($p_train *t, int i, const char **name, int *kind, float **data, int *rank, int64_t shape[8])\n"
           "{\n"
           "    int p, k;\n"
           "    long off = 0;\n"
           "    if (i < 0 || i >= $p_train_tensor_count(t)) return $p_train_fail(t, -1, \"no tensor %d\", i);\n"
           "    if (i < $P_N_PARAMS) {\n"
           "        *name = $p_params[i].name;\n"
           "        *kind = $p_params[i].kind;\n"
           "        *data = t->params + $p_params[i].offset;\n"
           "        *rank = $p_params[i].rank;\n"
           "        for (k = 0; k < 8; k++) shape[k] = k < *rank ? $p_params[i].shape[k] : 0;\n"
           "        return 0;\n"
           "    }\n"
           "    i -= $P_N_PARAMS;\n"
           "    for (p = 0; p < $P_N_PARAMS; p++) {  /* the i-th state tensor: learned tensor i / n_state, key i % n_state */\n"
           "        long count = 1;\n"
           "        if ($p_params[p].kind != 0) continue;\n"
           "        for (k = 0; k < $p_params[p].rank; k++) count *= (long)$p_params[p].shape[k];\n"
           "        if (i < t->n_state) {\n"
           "            *name = t->state_names[p * 3 + i];\n"
           "            *kind = 2;\n"
           "            *data = t->state + (size_t)off * (size_t)t->n_state + (size_t)i * (size_t)count;\n"
           "            *rank = $p_params[p].rank;\n"
           "            for (k = 0; k < 8; k++) shape[k] = k < *rank ? $p_params[p].shape[k] : 0;\n"
           "            return 0;\n"
           "        }\n"
           "        i -= t->n_state;\n"
           "        off += count;\n"
           "    }\n"
           "    return $p_train_fail(t, -1, \"no tensor\");\n"
           "}\n");
    return true;
}

bool cg_emit_train_c(const IrGraph *g, const CgTrainOptions *opt, StrBuf *c_src, StrBuf *h_src, char *err,
                     size_t errlen)
{
    Tr t;
    memset(&t, 0, sizeof t);
    t.g = g;
    t.opt = opt;
    t.err = err;
    t.errlen = errlen;
    t.prefix = cg_c_prefix(&t.arena, g->name);
    t.upper = cg_c_upper(&t.arena, t.prefix);
    bool ok = (!opt->header_name || cg_header_name_ok(opt->header_name, err, errlen)) && tr_check(&t);
    if (ok) {
        tr_mark_grads(&t);
        tr_find_fusions(&t);
        ok = tr_plan(&t);
    }
    if (ok) {
        tr_emit_bodies(&t);
        ok = tr_write_source(&t, c_src);
    }
    if (ok) tr_write_header(&t, h_src);
    sb_free(&t.fwd);
    sb_free(&t.scratch_checks);
    sb_free(&t.bwd);
    arena_free(&t.arena);
    return ok;
}
