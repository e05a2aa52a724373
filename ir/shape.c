/* shape.c: each op's shape rule and cost, and the op table built from ops.def.
 *
 * A shape rule reads the node's input shapes and attributes and either writes
 * the output shape or explains, in one sentence with no position, why the
 * inputs do not fit; the caller (the elaborator) adds the DSL position and the
 * chain of block calls. Per-sample shapes: [C, H, W] for images, [F] for
 * feature vectors. Output-size formulas follow PyTorch exactly. */
#include "ir.h"

#include <stdio.h>
#include <string.h>

#define FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); return false; } while (0)

static const char *sstr(const IrShape *s, char *buf, size_t n) { return ir_shape_str(s, buf, n); }

static bool shape_leaf(const IrGraph *g, const IrNode *n, IrShape *out, char *err, size_t errlen)
{
    (void)g; (void)n; (void)out;
    FAIL("inputs and parameters are not computed by nodes");
}

static bool shape_same(const IrGraph *g, const IrNode *n, IrShape *out, char *err, size_t errlen)
{
    (void)err; (void)errlen;
    *out = *ir_in_shape(g, n, 0);
    return true;
}

static bool need_image(const IrShape *s, const char *op, char *err, size_t errlen)
{
    char b[96];
    if (s->rank != 3)
        FAIL("%s expects an image [channels, height, width], but its input has shape %s", op, sstr(s, b, sizeof b));
    return true;
}

static bool shape_same_chw(const IrGraph *g, const IrNode *n, IrShape *out, char *err, size_t errlen)
{
    if (!need_image(ir_in_shape(g, n, 0), ir_ops[n->op].name, err, errlen)) return false;
    *out = *ir_in_shape(g, n, 0);
    return true;
}

/* PyTorch's output size of a convolution or pooling window along one axis. */
static int64_t window_out(int64_t in, int k, int s, int p, int d, bool ceil_mode)
{
    int64_t span = in + 2 * (int64_t)p - (int64_t)d * (k - 1) - 1;
    if (span < 0) return 0;
    int64_t o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    /* ceil mode: the last window must start inside the input or the left padding */
    if (ceil_mode && (o - 1) * s >= in + p) o--;
    return o;
}

static bool check_window(const ConvAttr *c, char *err, size_t errlen)
{
    if (c->kh < 1 || c->kw < 1) FAIL("the kernel size must be at least 1");
    if (c->sh < 1 || c->sw < 1) FAIL("the stride must be at least 1");
    if (c->dh < 1 || c->dw < 1) FAIL("the dilation must be at least 1");
    if (c->ph < 0 || c->pw < 0) FAIL("the padding must not be negative");
    return true;
}

/* " (dilated 2x2)" and " with padding 1x1", or "" when there is none. */
static const char *dilation_text(int dh, int dw, char *buf, size_t len)
{
    if (dh == 1 && dw == 1) return "";
    snprintf(buf, len, " (dilated %dx%d)", dh, dw);
    return buf;
}

static const char *padding_text(int ph, int pw, char *buf, size_t len)
{
    if (ph == 0 && pw == 0) return "";
    snprintf(buf, len, " with padding %dx%d", ph, pw);
    return buf;
}

/* The inputs after the weight: the bias when the attributes say so, then the
 * residual of an epilogue (ir.h Epilogue), which has the output's shape. */
/* A prologue's scale and shift (the last two inputs): [channels of x] each. */
static bool check_prologue(const IrGraph *g, const IrNode *n, char *err, size_t errlen)
{
    const Prologue *p = ir_prologue(n);
    char b[96];
    if (!p || !p->on) return true;
    if ((unsigned)p->act > (unsigned)(ACT_COUNT - 1)) FAIL("the prologue activation %d is unknown", (int)p->act);
    int64_t c = ir_in_shape(g, n, 0)->dim[0];
    for (int i = n->n_in - 2; i < n->n_in; i++) {
        const IrShape *v = ir_in_shape(g, n, i);
        if (v->rank != 1 || v->dim[0] != c)
            FAIL("the prologue %s has shape %s, expected [%lld] (one per input channel)",
                 i == n->n_in - 2 ? "scale" : "shift", sstr(v, b, sizeof b), (long long)c);
    }
    return true;
}

static bool check_bias_residual(const IrGraph *g, const IrNode *n, const IrShape *out, char *err, size_t errlen)
{
    const Epilogue *e = ir_epilogue(n);
    const Prologue *p = ir_prologue(n);
    bool pro = p && p->on;
    int res = ir_residual_in(n), want = 2 + ir_has_bias(n) + (res >= 0) + 2 * pro;
    char b1[96], b2[96];
    if (n->n_in != want)
        FAIL("%s has %d inputs, but its attributes (%s bias%s%s) call for %d", ir_ops[n->op].name, n->n_in,
             ir_has_bias(n) ? "a" : "no", res >= 0 ? ", a residual" : "", pro ? ", a prologue" : "", want);
    if (!check_prologue(g, n, err, errlen)) return false;
    if (e && (unsigned)e->act > (unsigned)(ACT_COUNT - 1)) FAIL("the epilogue activation %d is unknown", (int)e->act);
    if (e && (e->act_channels < 0 || e->act_channels > out->dim[0] || (e->act_channels && n->op != OP_CONV2D)))
        FAIL("the epilogue's activation covers %d channels of %lld", e->act_channels, (long long)out->dim[0]);
    if (res < 0) return true;
    const IrShape *r = ir_in_shape(g, n, res);
    bool same = r->rank == out->rank;
    for (int d = 0; same && d < r->rank; d++) same = r->dim[d] == out->dim[d];
    if (!same)
        FAIL("the residual has shape %s, but the output has shape %s", sstr(r, b1, sizeof b1),
             sstr(out, b2, sizeof b2));
    return true;
}

static bool shape_conv2d(const IrGraph *g, const IrNode *n, IrShape *out, char *err, size_t errlen)
{
    const ConvAttr *c = &n->attr.conv;
    const IrShape *x = ir_in_shape(g, n, 0);
    char b[96], db[48], pb[48];
    if (!need_image(x, "conv", err, errlen) || !check_window(c, err, errlen)) return false;
    if (c->groups < 1 || x->dim[0] % c->groups || c->out_channels % c->groups)
        FAIL("groups = %d must divide both the input channels (%lld) and the output channels (%d)",
             c->groups, (long long)x->dim[0], c->out_channels);
    const IrShape *w = ir_in_shape(g, n, 1);
    if (c->winograd) {  /* a winograd_weights node's output: [36][c][k rounded up to 32] */
        if (c->kh != 3 || c->kw != 3 || c->sh != 1 || c->sw != 1 || c->dh != 1 || c->dw != 1 || c->groups != 1 ||
            c->pro.on || w->rank != 3 || w->dim[0] != 36 || w->dim[1] != x->dim[0] ||
            w->dim[2] != (c->out_channels + 31) / 32 * 32)
            FAIL("the Winograd weight has shape %s, which does not fit the convolution", sstr(w, b, sizeof b));
    } else if (c->blocked && c->packed) {  /* a pack_blocked or pack_dw_blocked node's output: its floats */
        int64_t kb = (c->out_channels + IR_BLOCK - 1) / IR_BLOCK * IR_BLOCK;
        int64_t cb = c->groups != 1              ? 1
                     : ir_conv_stem_blocked(g, n) ? x->dim[0]  /* a stem's, [k/16][c][kh][kw][16] */
                                                  : (x->dim[0] + IR_BLOCK - 1) / IR_BLOCK * IR_BLOCK;
        if (w->rank != 1 || w->dim[0] != kb * cb * c->kh * c->kw)
            FAIL("the blocked weight has shape %s, which does not fit the convolution", sstr(w, b, sizeof b));
    } else if (w->rank != 4 || w->dim[0] != c->out_channels || w->dim[1] != x->dim[0] / c->groups ||
               w->dim[2] != c->kh || w->dim[3] != c->kw) {
        FAIL("the weight has shape %s, which does not fit the convolution", sstr(w, b, sizeof b));
    }
    int64_t oh = window_out(x->dim[1], c->kh, c->sh, c->ph, c->dh, false);
    int64_t ow = window_out(x->dim[2], c->kw, c->sw, c->pw, c->dw, false);
    if (oh < 1 || ow < 1)
        FAIL("the %dx%d kernel%s does not fit the input %s%s; use a smaller kernel or pad the input", c->kh, c->kw,
             dilation_text(c->dh, c->dw, db, sizeof db), sstr(x, b, sizeof b), padding_text(c->ph, c->pw, pb, sizeof pb));
    *out = (IrShape){3, {c->out_channels, oh, ow, 0}};
    return check_bias_residual(g, n, out, err, errlen);
}

static bool shape_conv_t2d(const IrGraph *g, const IrNode *n, IrShape *out, char *err, size_t errlen)
{
    const ConvAttr *c = &n->attr.conv;
    const IrShape *x = ir_in_shape(g, n, 0);
    char b[96];
    if (!need_image(x, "conv_transpose", err, errlen) || !check_window(c, err, errlen)) return false;
    if (c->groups < 1 || x->dim[0] % c->groups || c->out_channels % c->groups)
        FAIL("groups = %d must divide both the input channels (%lld) and the output channels (%d)",
             c->groups, (long long)x->dim[0], c->out_channels);
    if (c->oph < 0 || c->opw < 0 || (c->oph >= c->sh && c->oph >= c->dh) || (c->opw >= c->sw && c->opw >= c->dw))
        FAIL("the output padding %dx%d must be smaller than the stride %dx%d or the dilation %dx%d", c->oph, c->opw,
             c->sh, c->sw, c->dh, c->dw);
    const IrShape *w = ir_in_shape(g, n, 1);
    if (w->rank != 4 || w->dim[0] != x->dim[0] || w->dim[1] != c->out_channels / c->groups ||
        w->dim[2] != c->kh || w->dim[3] != c->kw)
        FAIL("the weight has shape %s, which does not fit the transposed convolution", sstr(w, b, sizeof b));
    int64_t oh = (x->dim[1] - 1) * c->sh - 2 * (int64_t)c->ph + (int64_t)c->dh * (c->kh - 1) + c->oph + 1;
    int64_t ow = (x->dim[2] - 1) * c->sw - 2 * (int64_t)c->pw + (int64_t)c->dw * (c->kw - 1) + c->opw + 1;
    if (oh < 1 || ow < 1)
        FAIL("the padding %dx%d is too large for the input %s and the %dx%d kernel", c->ph, c->pw, sstr(x, b, sizeof b),
             c->kh, c->kw);
    *out = (IrShape){3, {c->out_channels, oh, ow, 0}};
    return check_bias_residual(g, n, out, err, errlen);
}

static bool shape_batchnorm(const IrGraph *g, const IrNode *n, IrShape *out, char *err, size_t errlen)
{
    const IrShape *x = ir_in_shape(g, n, 0);
    char b[96];
    if (x->rank != 1 && x->rank != 3)
        FAIL("batchnorm expects [channels, height, width] or [features], but its input has shape %s",
             sstr(x, b, sizeof b));
    for (int i = 1; i < 5; i++) {
        const IrShape *p = ir_in_shape(g, n, i);
        if (p->rank != 1 || p->dim[0] != x->dim[0])
            FAIL("batchnorm parameter %d has shape %s, expected [%lld]", i, sstr(p, b, sizeof b), (long long)x->dim[0]);
    }
    *out = *x;
    return true;
}

static bool shape_linear(const IrGraph *g, const IrNode *n, IrShape *out, char *err, size_t errlen)
{
    const IrShape *x = ir_in_shape(g, n, 0);
    const IrShape *w = ir_in_shape(g, n, 1);
    char b[96];
    if (x->rank != 1)
        FAIL("linear expects a feature vector [features], but its input has shape %s; insert flatten before it",
             sstr(x, b, sizeof b));
    if (w->rank != 2 || w->dim[1] != x->dim[0] || w->dim[0] != n->attr.linear.out_features)
        FAIL("the weight has shape %s, which does not fit the input %lld features", sstr(w, b, sizeof b),
             (long long)x->dim[0]);
    *out = (IrShape){1, {n->attr.linear.out_features, 0, 0, 0}};
    return check_bias_residual(g, n, out, err, errlen);
}

static bool shape_flatten(const IrGraph *g, const IrNode *n, IrShape *out, char *err, size_t errlen)
{
    (void)err; (void)errlen;
    *out = (IrShape){1, {ir_shape_elems(ir_in_shape(g, n, 0)), 0, 0, 0}};
    return true;
}

static bool shape_pool2d(const IrGraph *g, const IrNode *n, IrShape *out, char *err, size_t errlen)
{
    const PoolAttr *p = &n->attr.pool;
    const IrShape *x = ir_in_shape(g, n, 0);
    char b[96];
    if (!need_image(x, ir_ops[n->op].name, err, errlen)) return false;
    ConvAttr c = {.kh = p->kh, .kw = p->kw, .sh = p->sh, .sw = p->sw, .ph = p->ph, .pw = p->pw, .dh = p->dh, .dw = p->dw};
    if (!check_window(&c, err, errlen)) return false;
    if (2 * p->ph > p->kh || 2 * p->pw > p->kw) {
        bool h = 2 * p->ph > p->kh;
        FAIL("the padding %d is more than half the window size %d; use at most %d", h ? p->ph : p->pw,
             h ? p->kh : p->kw, (h ? p->kh : p->kw) / 2);
    }
    int64_t oh = window_out(x->dim[1], p->kh, p->sh, p->ph, p->dh, p->ceil_mode);
    int64_t ow = window_out(x->dim[2], p->kw, p->sw, p->pw, p->dw, p->ceil_mode);
    if (oh < 1 || ow < 1)
        FAIL("the %dx%d window does not fit the input %s; use a smaller window or pad the input", p->kh, p->kw,
             sstr(x, b, sizeof b));
    *out = (IrShape){3, {x->dim[0], oh, ow, 0}};
    return true;
}

static bool shape_global_pool(const IrGraph *g, const IrNode *n, IrShape *out, char *err, size_t errlen)
{
    const IrShape *x = ir_in_shape(g, n, 0);
    if (!need_image(x, "global_avgpool", err, errlen)) return false;
    *out = (IrShape){3, {x->dim[0], 1, 1, 0}};
    return true;
}

static bool shape_adaptive_pool(const IrGraph *g, const IrNode *n, IrShape *out, char *err, size_t errlen)
{
    const IrShape *x = ir_in_shape(g, n, 0);
    if (!need_image(x, "adaptive_avgpool", err, errlen)) return false;
    if (n->attr.adaptive.oh < 1 || n->attr.adaptive.ow < 1) FAIL("the output size must be at least 1");
    if (n->n_in != 1 + 2 * n->attr.adaptive.pro.on)
        FAIL("adaptive_avgpool2d has %d inputs, but %s", n->n_in,
             n->attr.adaptive.pro.on ? "its prologue calls for 3" : "it takes 1 without a prologue");
    if (!check_prologue(g, n, err, errlen)) return false;
    *out = (IrShape){3, {x->dim[0], n->attr.adaptive.oh, n->attr.adaptive.ow, 0}};
    return true;
}

static bool shape_concat(const IrGraph *g, const IrNode *n, IrShape *out, char *err, size_t errlen)
{
    const IrShape *a = ir_in_shape(g, n, 0);
    int axis = n->attr.concat.axis;
    char b1[96], b2[96];
    if (axis < 0 || axis >= a->rank) FAIL("concat axis %d is out of range for shape %s", axis, sstr(a, b1, sizeof b1));
    *out = *a;
    for (int i = 1; i < n->n_in; i++) {
        const IrShape *s = ir_in_shape(g, n, i);
        bool ok = s->rank == a->rank;
        for (int d = 0; ok && d < a->rank; d++) ok = d == axis || s->dim[d] == a->dim[d];
        if (!ok)
            FAIL("concat joins tensors along the channels, so the other dimensions must agree, but input 1 has "
                 "shape %s and input %d has shape %s", sstr(a, b2, sizeof b2), i + 1, sstr(s, b1, sizeof b1));
        out->dim[axis] += s->dim[axis];
    }
    return true;
}

static bool shape_add(const IrGraph *g, const IrNode *n, IrShape *out, char *err, size_t errlen)
{
    const IrShape *a = ir_in_shape(g, n, 0), *b = ir_in_shape(g, n, 1);
    char b1[96], b2[96];
    bool same = a->rank == b->rank;
    for (int d = 0; same && d < a->rank; d++) same = a->dim[d] == b->dim[d];
    if (!same)
        FAIL("cannot add tensors of shapes %s and %s; '+' needs equal shapes", sstr(a, b1, sizeof b1),
             sstr(b, b2, sizeof b2));
    *out = *a;
    return true;
}

/* gamma and var of a fold node: [channels] each. */
static bool fold_vectors(const IrGraph *g, const IrNode *n, int first, int count, int64_t c, char *err, size_t errlen)
{
    char b[96];
    for (int i = first; i < first + count; i++) {
        const IrShape *p = ir_in_shape(g, n, i);
        if (p->rank != 1 || p->dim[0] != c)
            FAIL("%s input %d has shape %s, expected [%lld]", ir_ops[n->op].name, i + 1, sstr(p, b, sizeof b),
                 (long long)c);
    }
    return true;
}

/* bn_fold_weight(w, gamma, var): w is a conv2d weight [c_out, c_in/g, kh, kw] or
 * a linear weight [out, in]; the output channel is dim 0. */
static bool shape_bn_fold_weight(const IrGraph *g, const IrNode *n, IrShape *out, char *err, size_t errlen)
{
    const IrShape *w = ir_in_shape(g, n, 0);
    char b[96];
    if (w->rank != 2 && w->rank != 4)
        FAIL("bn_fold_weight expects a conv2d or linear weight, but the weight has shape %s", sstr(w, b, sizeof b));
    if (!fold_vectors(g, n, 1, 2, w->dim[0], err, errlen)) return false;
    *out = *w;
    return true;
}

/* pack_weights(w) or pack_weights(w, gamma, var): w's shape (a permutation of
 * its values, folded by the batchnorm's scale in the second form). */
static bool shape_pack_weights(const IrGraph *g, const IrNode *n, IrShape *out, char *err, size_t errlen)
{
    const IrShape *w = ir_in_shape(g, n, 0);
    char b[96];
    if (n->n_in == 3) return shape_bn_fold_weight(g, n, out, err, errlen);
    if (n->n_in != 1) FAIL("pack_weights takes a weight, or a weight with a batchnorm's gamma and var");
    if (w->rank != 4) FAIL("pack_weights expects a conv2d weight, but the weight has shape %s", sstr(w, b, sizeof b));
    *out = *w;
    return true;
}

/* winograd_weights(w [, gamma, var]): w a 3x3 conv2d weight [k][c][3][3]. */
static bool shape_winograd_weights(const IrGraph *g, const IrNode *n, IrShape *out, char *err, size_t errlen)
{
    const IrShape *w = ir_in_shape(g, n, 0);
    char b[96];
    if (n->n_in == 3 && !shape_bn_fold_weight(g, n, out, err, errlen)) return false;
    if (n->n_in != 1 && n->n_in != 3)
        FAIL("winograd_weights takes a weight, or a weight with a batchnorm's gamma and var");
    if (w->rank != 4 || w->dim[2] != 3 || w->dim[3] != 3)
        FAIL("winograd_weights expects a 3x3 conv2d weight, but the weight has shape %s", sstr(w, b, sizeof b));
    *out = (IrShape){3, {36, w->dim[1], (w->dim[0] + 31) / 32 * 32, 0}};
    return true;
}

/* pack_blocked(w [, gamma, var]), pack_nchw_blocked and pack_dw_blocked: the
 * packed weight's floats, output and input channels rounded up to whole
 * blocks of 16 (pack_nchw_blocked: the input channels not; pack_dw_blocked:
 * w is [c][1][kh][kw], one block dimension). */
static bool shape_pack_blocked(const IrGraph *g, const IrNode *n, IrShape *out, char *err, size_t errlen)
{
    const IrShape *w = ir_in_shape(g, n, 0);
    char b[96];
    if (n->n_in == 3 && !shape_bn_fold_weight(g, n, out, err, errlen)) return false;
    if (n->n_in != 1 && n->n_in != 3) FAIL("%s takes a weight, or a weight with a batchnorm's gamma and var", ir_ops[n->op].name);
    if (w->rank != 4) FAIL("%s expects a conv2d weight, but the weight has shape %s", ir_ops[n->op].name, sstr(w, b, sizeof b));
    if (n->op == OP_PACK_DW_BLOCKED && w->dim[1] != 1)
        FAIL("pack_dw_blocked expects a depthwise weight [c, 1, kh, kw], but the weight has shape %s", sstr(w, b, sizeof b));
    int64_t kb = (w->dim[0] + IR_BLOCK - 1) / IR_BLOCK * IR_BLOCK, cb = (w->dim[1] + IR_BLOCK - 1) / IR_BLOCK * IR_BLOCK;
    if (n->op == OP_PACK_NCHW_BLOCKED) cb = w->dim[1];  /* a stem's (ir_conv_stem_blocked): input channels not blocked */
    *out = (IrShape){1, {(n->op == OP_PACK_DW_BLOCKED ? kb : kb * cb) * w->dim[2] * w->dim[3], 0, 0, 0}};
    return true;
}

/* bn_fold_weight_t(w, gamma, var): w is a conv_transpose2d weight
 * [c_in, c_out/g, kh, kw]; gamma's length c_out gives the groups g = c_out / dim 1. */
static bool shape_bn_fold_weight_t(const IrGraph *g, const IrNode *n, IrShape *out, char *err, size_t errlen)
{
    const IrShape *w = ir_in_shape(g, n, 0), *gamma = ir_in_shape(g, n, 1);
    char b1[96], b2[96];
    if (w->rank != 4)
        FAIL("bn_fold_weight_t expects a conv_transpose2d weight, but it has shape %s", sstr(w, b1, sizeof b1));
    int64_t per_group = w->dim[1], c = gamma->rank == 1 ? gamma->dim[0] : 0;
    if (c < per_group || c % per_group || w->dim[0] % (c / per_group))
        FAIL("bn_fold_weight_t: gamma has shape %s, which is no whole number of groups of the weight %s",
             sstr(gamma, b1, sizeof b1), sstr(w, b2, sizeof b2));
    if (!fold_vectors(g, n, 1, 2, gamma->dim[0], err, errlen)) return false;
    *out = *w;
    return true;
}

/* bn_fold_bias(gamma, beta, mean, var[, b]): all [channels]. */
static bool shape_bn_fold_bias(const IrGraph *g, const IrNode *n, IrShape *out, char *err, size_t errlen)
{
    const IrShape *gamma = ir_in_shape(g, n, 0);
    char b[96];
    if (gamma->rank != 1) FAIL("bn_fold_bias expects [channels] vectors, but gamma has shape %s", sstr(gamma, b, sizeof b));
    if (!fold_vectors(g, n, 1, n->n_in - 1, gamma->dim[0], err, errlen)) return false;
    *out = *gamma;
    return true;
}

/* slice(x): channels [start, start + count) of x. */
static bool shape_slice(const IrGraph *g, const IrNode *n, IrShape *out, char *err, size_t errlen)
{
    const IrShape *x = ir_in_shape(g, n, 0);
    const SliceAttr *a = &n->attr.slice;
    char b[96];
    if (a->start < 0 || a->count < 1 || (int64_t)a->start + a->count > x->dim[0])
        FAIL("slice [%d, %d) is outside the %lld channels of %s", a->start, a->start + a->count,
             (long long)x->dim[0], sstr(x, b, sizeof b));
    *out = *x;
    out->dim[0] = a->count;
    return true;
}

/* bn_scale(gamma, var): [channels] each. */
static bool shape_bn_scale(const IrGraph *g, const IrNode *n, IrShape *out, char *err, size_t errlen)
{
    const IrShape *gamma = ir_in_shape(g, n, 0);
    char b[96];
    if (gamma->rank != 1) FAIL("bn_scale expects [channels] vectors, but gamma has shape %s", sstr(gamma, b, sizeof b));
    if (!fold_vectors(g, n, 1, 1, gamma->dim[0], err, errlen)) return false;
    *out = *gamma;
    return true;
}

/* dwpw(x, dw weight, [dw bias], pw weight, [pw bias], [residual]): the shapes of
 * the depthwise conv2d it stands for, then of the 1x1 conv2d on its output. */
static bool shape_dwpw(const IrGraph *g, const IrNode *n, IrShape *out, char *err, size_t errlen)
{
    const DwPwAttr *a = &n->attr.dwpw;
    const IrShape *x = ir_in_shape(g, n, 0);
    char b[96];
    if (!need_image(x, "dwpw", err, errlen) || !check_window(&a->dw, err, errlen)) return false;
    if (a->dw.groups != x->dim[0] || a->dw.out_channels != x->dim[0])
        FAIL("dwpw: the depthwise part must have groups = in = out channels (%lld), not %d and %d",
             (long long)x->dim[0], a->dw.groups, a->dw.out_channels);
    if (a->dw.epi.residual) FAIL("dwpw: the depthwise part takes no residual");
    if ((unsigned)a->dw.epi.act > (unsigned)(ACT_COUNT - 1)) FAIL("the depthwise activation %d is unknown", (int)a->dw.epi.act);
    const IrShape *dw = ir_in_shape(g, n, 1);
    if (dw->rank != 4 || dw->dim[0] != x->dim[0] || dw->dim[1] != 1 || dw->dim[2] != a->dw.kh || dw->dim[3] != a->dw.kw)
        FAIL("dwpw: the depthwise weight has shape %s, which does not fit", sstr(dw, b, sizeof b));
    if (a->dw.bias) {
        const IrShape *db = ir_in_shape(g, n, 2);
        if (db->rank != 1 || db->dim[0] != x->dim[0]) FAIL("dwpw: the depthwise bias has shape %s", sstr(db, b, sizeof b));
    }
    int64_t oh = window_out(x->dim[1], a->dw.kh, a->dw.sh, a->dw.ph, a->dw.dh, false);
    int64_t ow = window_out(x->dim[2], a->dw.kw, a->dw.sw, a->dw.pw, a->dw.dw, false);
    if (oh < 1 || ow < 1) FAIL("dwpw: the depthwise kernel does not fit the input %s", sstr(x, b, sizeof b));
    const ConvAttr *p = &a->pw;
    if (p->kh != 1 || p->kw != 1 || p->sh != 1 || p->sw != 1 || p->ph != 0 || p->pw != 0 || p->groups != 1)
        FAIL("dwpw: the pointwise part must be a 1x1, stride-1, unpadded, ungrouped convolution");
    int pwi = ir_dwpw_pw_in(n);
    if (pwi >= n->n_in) FAIL("dwpw has %d inputs, too few for its attributes", n->n_in);
    const IrShape *pw = ir_in_shape(g, n, pwi);
    if (pw->rank != 4 || pw->dim[0] != p->out_channels || pw->dim[1] != x->dim[0] || pw->dim[2] != 1 || pw->dim[3] != 1)
        FAIL("dwpw: the pointwise weight has shape %s, which does not fit", sstr(pw, b, sizeof b));
    int want = pwi + 1 + p->bias + p->epi.residual;
    if (n->n_in != want) FAIL("dwpw has %d inputs, but its attributes call for %d", n->n_in, want);
    if (p->bias) {
        const IrShape *pb = ir_in_shape(g, n, pwi + 1);
        if (pb->rank != 1 || pb->dim[0] != p->out_channels)
            FAIL("dwpw: the pointwise bias has shape %s", sstr(pb, b, sizeof b));
    }
    if ((unsigned)p->epi.act > (unsigned)(ACT_COUNT - 1)) FAIL("the epilogue activation %d is unknown", (int)p->epi.act);
    *out = (IrShape){3, {p->out_channels, oh, ow, 0}};
    if (p->epi.residual) {
        const IrShape *r = ir_in_shape(g, n, n->n_in - 1);
        bool same = r->rank == 3;
        for (int d = 0; same && d < 3; d++) same = r->dim[d] == out->dim[d];
        if (!same) FAIL("dwpw: the residual has shape %s, not the output's", sstr(r, b, sizeof b));
    }
    return true;
}

/* ---- costs: multiply-accumulates per sample ---- */

/* MACs count the multiply-accumulates of convolutions and linear layers, the
 * usual measure of a network's cost (what hooks on PyTorch's Conv2d,
 * ConvTranspose2d and Linear count); elementwise work, pooling and batchnorm
 * count as none. */
static int64_t macs_zero(const IrGraph *g, const IrNode *n) { (void)g; (void)n; return 0; }

static int64_t macs_conv2d(const IrGraph *g, const IrNode *n)
{
    const ConvAttr *c = &n->attr.conv;
    const IrShape *x = ir_in_shape(g, n, 0);
    return ir_shape_elems(&g->values[n->out].shape) * (x->dim[0] / c->groups) * c->kh * c->kw;
}

static int64_t macs_conv_t2d(const IrGraph *g, const IrNode *n)
{
    const ConvAttr *c = &n->attr.conv;
    return ir_shape_elems(ir_in_shape(g, n, 0)) * (c->out_channels / c->groups) * c->kh * c->kw;
}


static int64_t macs_dwpw(const IrGraph *g, const IrNode *n)
{
    const DwPwAttr *a = &n->attr.dwpw;
    const IrShape *y = &g->values[n->out].shape, *x = ir_in_shape(g, n, 0);
    return y->dim[1] * y->dim[2] * x->dim[0] * ((int64_t)a->dw.kh * a->dw.kw + a->pw.out_channels);
}

static int64_t macs_linear(const IrGraph *g, const IrNode *n)
{
    return ir_shape_elems(ir_in_shape(g, n, 0)) * n->attr.linear.out_features;
}

OpKind ir_act_op(ActKind act)
{
    static const OpKind ops[ACT_COUNT] = {
        [ACT_NONE] = OP_IDENTITY,
#define IR_ACT_OP(id, nm, from, slope, fwd, gif, grad) [ACT_##id] = OP_##id,
        NNC_ACTIVATIONS(IR_ACT_OP)
#undef IR_ACT_OP
    };
    return ops[act];
}

const char *ir_act_name(ActKind act) { return act == ACT_NONE ? "none" : ir_ops[ir_act_op(act)].name; }

int ir_act_from(ActKind act)
{
    static const int from[ACT_COUNT] = {
#define IR_ACT_FROM(id, nm, fr, slope, fwd, gif, grad) [ACT_##id] = fr,
        NNC_ACTIVATIONS(IR_ACT_FROM)
#undef IR_ACT_FROM
    };
    return from[act];
}

bool ir_act_has_slope(ActKind act) { return act != ACT_NONE && ir_ops[ir_act_op(act)].attr == AT_ACT; }

const OpInfo ir_ops[OP_COUNT] = {
#define OP(id, nm, dsl, mn, mx, at, act, inpl, bstr, tfwd, shape, macs, emit, grad)                                   \
    [OP_##id] = {nm, dsl, mn, mx, at, act, inpl, bstr, tfwd, shape, macs},
#include "ops.def"
#undef OP
};
