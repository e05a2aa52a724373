/* ops_c.c: the forward emitters, one per EMIT entry of ir/ops.def, and the
 * forward walk (cgen.h). Each writes the kernel call of one node through the
 * call builder, which lines the arguments up with a comment per line, and
 * names the kernel section it needs. In a training module (cx->tr), an op
 * whose forward differs when training (ops.def TFWD, and a conv2d summing
 * batchnorm statistics) writes both forms under the run-time flag. */
#include "cgen.h"
#include "../passes/plan_memory.h"
#include <math.h>

#include <stdio.h>
#include <string.h>

typedef bool (*CgEmitFn)(CgEmit *cx, const IrNode *n);


/* Opens "if (train) {" (training forms) and, with train false, "} else {". */
static void cg_mode_open(CgEmit *cx, bool train, const char *comment)
{
    cx->indent = 4;
    if (train) cg_line(cx, "if (%s) {%s%s%s", cx->tr->train, comment ? "  /* " : "", comment ? comment : "",
                       comment ? " */" : "");
    else cg_line(cx, "} else {");
    cx->indent = 8;
}

static void cg_mode_close(CgEmit *cx)
{
    cx->indent = 4;
    cg_line(cx, "}");
}

static const char *cg_lit(CgEmit *cx, float f) { return cg_float_literal(cx->arena, f); }


static bool emit_c_leaf(CgEmit *cx, const IrNode *n)
{
    CG_FAIL(cx, "internal error: a node of op '%s' in the graph", ir_ops[n->op].name);
}

/* The weight and bias arguments of conv and linear, and their comment. */
static void cg_weight_args(CgEmit *cx, const IrNode *n)
{
    bool bias = ir_has_bias(n);
    cg_arg(cx, arena_printf(cx->arena, "%s, %s", cg_label(cx, ir_in(cx->g, n, 1)),
                            bias ? cg_label(cx, ir_in(cx->g, n, 2)) : "no bias"),
           "%s, %s", cg_in(cx, n, 1), bias ? cg_in(cx, n, 2) : "NULL");
}

/* The activation and its slope: "NNC_ACT_RELU, 0.0f". */
static const char *cg_act_args(CgEmit *cx, ActKind act, float slope)
{
    return arena_printf(cx->arena, "%s, %s", cg_act_macro(act), cg_lit(cx, ir_act_has_slope(act) ? slope : 0.0f));
}

/* The prologue arguments of conv2d and adaptive_avgpool2d (scale, shift,
 * NNC_ACT_*, slope) and their comment. */
static bool cg_prologue_args(CgEmit *cx, const IrNode *n)
{
    const Prologue *p = ir_prologue(n);
    int i = ir_prologue_in(n);
    if (i < 0) {
        cg_arg(cx, "prologue: none", "NULL, NULL, NNC_ACT_NONE, 0.0f");
        return true;
    }
    if (ir_act_has_slope(p->act) && !cg_finite(cx, n, "the prologue slope", p->slope)) return false;
    const char *affine = arena_printf(cx->arena, "x * %s + %s", cg_label(cx, ir_in(cx->g, n, i)),
                                      cg_label(cx, ir_in(cx->g, n, i + 1)));
    cg_arg(cx,
           arena_printf(cx->arena, "prologue: %s", p->act == ACT_NONE ? affine
                                                   : arena_printf(cx->arena, "%s(%s)", ir_act_name(p->act), affine)),
           "%s, %s, %s", cg_in(cx, n, i), cg_in(cx, n, i + 1), cg_act_args(cx, p->act, p->slope));
    return true;
}

/* The epilogue arguments of conv2d and linear (residual or NULL, NNC_ACT_*, slope)
 * and their comment: "epilogue: + residual [64, 56, 56], then relu", "epilogue: none". */
static bool cg_epilogue_args(CgEmit *cx, const IrNode *n)
{
    const Epilogue *e = ir_epilogue(n);
    int r = ir_residual_in(n);
    if (ir_act_has_slope(e->act) && !cg_finite(cx, n, "the epilogue slope", e->slope)) return false;
    if (n->op == OP_CONV2D && n->attr.conv.blocked) {  /* the residual's batch stride; no partial activation */
        cg_arg(cx, r < 0 ? "no residual" : arena_printf(cx->arena, "residual %s, batch stride",
                                                                 cg_label(cx, ir_in(cx->g, n, r))),
               "%s, %lld", r < 0 ? "NULL" : cg_in(cx, n, r), r < 0 ? 0LL : cg_stride(cx, ir_in(cx->g, n, r)));
        cg_arg(cx, arena_printf(cx->arena, "then %s", ir_act_name(e->act)), "%s", cg_act_args(cx, e->act, e->slope));
        return true;
    }
    if (n->op == OP_CONV2D) {  /* nnc_conv2d: the residual's batch stride; the channels the activation covers */
        long long k = cx->g->values[n->out].shape.dim[0];
        cg_arg(cx, r < 0 ? "no residual" : arena_printf(cx->arena, "residual %s, batch stride",
                                                                 cg_label(cx, ir_in(cx->g, n, r))),
               "%s, %lld", r < 0 ? "NULL" : cg_in(cx, n, r), r < 0 ? 0LL : cg_stride(cx, ir_in(cx->g, n, r)));
        cg_arg(cx, e->act_channels ? arena_printf(cx->arena, "then %s on channels 0..%d", ir_act_name(e->act),
                                                  e->act_channels - 1)
                                   : arena_printf(cx->arena, "then %s", ir_act_name(e->act)),
               "%s, %lld", cg_act_args(cx, e->act, e->slope), e->act_channels ? (long long)e->act_channels : k);
        return true;
    }
    const char *plus = r < 0 ? "" : arena_printf(cx->arena, "+ residual %s", cg_label(cx, ir_in(cx->g, n, r)));
    const char *what = e->act == ACT_NONE ? (r < 0 ? "none" : plus)
                       : r < 0 ? ir_act_name(e->act)
                       : arena_printf(cx->arena, "%s, then %s", plus, ir_act_name(e->act));
    cg_arg(cx, arena_printf(cx->arena, "epilogue: %s", what), "%s, %s", r < 0 ? "NULL" : cg_in(cx, n, r),
           cg_act_args(cx, e->act, e->slope));
    return true;
}

/* The x line of a convolution or pooling call: "n, x, batch stride, c, h, w". */
static void cg_image_arg(CgEmit *cx, const IrNode *n, bool strided)
{
    const IrShape *x = ir_in_shape(cx->g, n, 0);
    int32_t v = ir_in(cx->g, n, 0);
    if (strided)
        cg_arg(cx, arena_printf(cx->arena, "x: %s, batch stride", cg_label(cx, v)), "n, %s, %lld, %lld, %lld, %lld",
               cg_in(cx, n, 0), cg_stride(cx, v), cg_dim(x, 0), cg_dim(x, 1), cg_dim(x, 2));
    else
        cg_arg(cx, arena_printf(cx->arena, "x: %s", cg_label(cx, v)), "n, %s, %lld, %lld, %lld", cg_in(cx, n, 0),
               cg_dim(x, 0), cg_dim(x, 1), cg_dim(x, 2));
}

static const char *cg_scratch_of(CgEmit *cx, const IrNode *n)
{
    const char *s = cx->scratch ? cx->scratch[n - cx->g->nodes] : NULL;
    return s ? s : "NULL";
}

/* ---- the tile instances of nnc_conv2d_blocked a network needs ----
 *
 * kernels_blocked_conv.c compiles a vector tile instance per width (1..12
 * pixels by 1 or 2 blocks for AVX-512, 1..6 for AVX2) and stride, each some
 * 0.3 s of the C compiler; a network uses a few. Here, the widths that
 * nnc_conv2d_blocked's planning cuts each convolution's rows into, for
 * either instruction set, a batch of 1 or more and 1 to CG_BCONV_THREADS
 * threads (more threads only split 1-row planes finer), become the masks
 * NNC_BCONV_* the kernel's file reads. The arithmetic below mirrors the
 * kernel's; should they drift apart, a tile of a width left out runs as
 * narrower tiles there (nnc_bconv_split): slower, the same outputs. */
enum { CG_BCONV_THREADS = 8 };

/* The widths of the tiles of a row of ow pixels cut in cchunks chunks, at most nx each. */
static unsigned cg_bconv_widths(int ow, int nx, int cchunks)
{
    unsigned m = 0;
    for (int cc = 0; cc < cchunks; cc++) {
        int a = (int)((long)ow * cc / cchunks), b = (int)((long)ow * (cc + 1) / cchunks);
        int ntiles = (b - a + nx - 1) / nx;
        for (int ti = 0; ti < ntiles; ti++)
            m |= 1u << ((int)((long)(b - a) * (ti + 1) / ntiles) - (int)((long)(b - a) * ti / ntiles));
    }
    return m;
}

/* The widths of one instruction set's tiles (gob blocks, nx pixels) over a c-channel, kh x kw convolution's output oh x ow. */
static unsigned cg_bconv_isa_widths(int gob, int nx, int c, int kh, int kw, int oh, int ow)
{
    double unit = (double)gob * 16 * (double)c * (double)kh * (double)kw;
    double cols = ceil(131072.0 / unit) < 48.0 ? 48.0 : ceil(131072.0 / unit);
    int cchunks = oh > 1 || cols >= (double)ow ? 1 : (int)((ow + cols - 1) / cols);
    unsigned m = 1u << 1;  /* width 1 always: what nnc_bconv_split falls back to */
    for (int t = 1; t <= CG_BCONV_THREADS; t++)  /* a batch of 1 over t threads; t = 1: any batch */
        m |= cg_bconv_widths(ow, nx, oh == 1 && t > 1 && cchunks < t ? t : cchunks);
    return m;
}

static void cg_bconv_plan(CgEmit *cx, const IrNode *n)
{
    const ConvAttr *c = &n->attr.conv;
    const IrShape *x = ir_in_shape(cx->g, n, 0), *y = &cx->g->values[n->out].shape;
    int ch = (int)x->dim[0], h = (int)x->dim[1], w = (int)x->dim[2];
    int k = (int)y->dim[0], oh = (int)y->dim[1], ow = (int)y->dim[2], kb = (k + 15) / 16;
    cx->bconv[3] |= 1u;     /* planned: the defines are written */
    if (c->sw > 2) return;  /* the plain C tiles */
    cx->bconv[3] |= 1u << c->sw;
    if (c->kh == 1 && c->kw == 1 && c->sh == 1 && c->sw == 1 && c->ph == 0 && c->pw == 0 && oh == h && ow == w)
        ow = h * w, oh = 1;  /* the plane is one row */
    unsigned m512 = cg_bconv_isa_widths(2, 12, ch, c->kh, c->kw, oh, ow);
    if (kb % 2) cx->bconv[0] |= m512;  /* the last group has one block */
    if (kb > 1) cx->bconv[1] |= m512;
    cx->bconv[2] |= cg_bconv_isa_widths(1, 6, ch, c->kh, c->kw, oh, ow);
}

void cg_bconv_defines(const CgEmit *cx, StrBuf *out)
{
    if (!cx->bconv[3]) return;
    sb_append(out, "/* the tile instances of nnc_conv2d_blocked this network's convolutions use (bit n: n pixels) */\n");
    sb_printf(out, "#define NNC_BCONV_AVX512_1 0x%04X\n", cx->bconv[0]);
    sb_printf(out, "#define NNC_BCONV_AVX512_2 0x%04X\n", cx->bconv[1]);
    sb_printf(out, "#define NNC_BCONV_AVX2     0x%04X\n", cx->bconv[2]);
    sb_printf(out, "#define NNC_BCONV_S1       %d\n", (cx->bconv[3] >> 1) & 1);
    sb_printf(out, "#define NNC_BCONV_S2       %d\n\n", (cx->bconv[3] >> 2) & 1);
}

/* A blocked conv2d (kernels_blocked_conv.c, kernels_blocked_dw.c): image,
 * residual and output in NCHW16c, the weight packed at create. */
static bool cg_conv_blocked_call(CgEmit *cx, const IrNode *n)
{
    const ConvAttr *c = &n->attr.conv;
    const IrShape *y = &cx->g->values[n->out].shape;
    bool dw = c->groups != 1;
    const char *kernel = dw ? "dwconv_blocked" : ir_conv_stem_blocked(cx->g, n) ? "conv2d_nchw_blocked" : "conv2d_blocked";
    if (!c->packed) CG_FAIL(cx, "internal error: a blocked conv2d whose weight is not packed");
    cg_need(cx, kernel);
    if (!dw && strcmp(kernel, "conv2d_blocked") == 0) cg_bconv_plan(cx, n);
    cg_call_begin(cx, kernel);
    cg_arg(cx, "the instance's threads and instruction set", "%s", cx->ctx);
    cg_image_arg(cx, n, true);
    cg_weight_args(cx, n);
    if (dw)
        cg_arg(cx, arena_printf(cx->arena, "y: %s, batch stride", cg_dims(cx->arena, y)), "%s, %lld, %lld, %lld",
               cg_out(cx, n), cg_stride(cx, n->out), cg_dim(y, 1), cg_dim(y, 2));
    else
        cg_arg(cx, arena_printf(cx->arena, "y: %s, batch stride", cg_dims(cx->arena, y)), "%s, %lld, %lld, %lld, %lld",
               cg_out(cx, n), cg_stride(cx, n->out), cg_dim(y, 0), cg_dim(y, 1), cg_dim(y, 2));
    cg_arg(cx, "kernel, stride, padding, dilation", "%d, %d, %d, %d, %d, %d, %d, %d", c->kh, c->kw, c->sh, c->sw,
           c->ph, c->pw, c->dh, c->dw);
    if (!cg_epilogue_args(cx, n)) return false;
    cg_call_end(cx);
    return true;
}

/* conv2d's or conv_transpose2d's call (without its batchnorm statistics). */
static bool cg_conv_call(CgEmit *cx, const IrNode *n)
{
    const ConvAttr *c = &n->attr.conv;
    const IrShape *y = &cx->g->values[n->out].shape;
    bool t = n->op == OP_CONV_T2D;
    if (!t && c->blocked) return cg_conv_blocked_call(cx, n);
    int64_t scratch = plan_scratch_floats(cx->g, n, cx->max_batch);
    /* a training step's run over the instance's threads on nnc_sgemm_ctx (kernels_sgemm.c, section conv_mt) */
    bool mt = c->packed || c->winograd || cx->tr;
    const char *kernel = t ? (cx->tr ? "conv_transpose2d_mt" : "conv_transpose2d")
                           : c->winograd ? "conv2d_winograd" : c->packed ? "conv2d_packed" : cx->tr ? "conv2d_mt" : "conv2d";
    cg_need(cx, cx->tr ? "conv_mt" : kernel);
    if (scratch > 0) cg_scratch_check(cx, cg_scratch_call(cx->arena, cx->g, n, cx->max_batch), scratch);
    cg_call_begin(cx, kernel);
    if (mt) cg_arg(cx, "the instance's threads and instruction set", "%s", cx->ctx);
    cg_image_arg(cx, n, !t);
    cg_weight_args(cx, n);
    if (t)
        cg_arg(cx, arena_printf(cx->arena, "y: %s", cg_dims(cx->arena, y)), "%s, %lld, %lld, %lld", cg_out(cx, n),
               cg_dim(y, 0), cg_dim(y, 1), cg_dim(y, 2));
    else
        cg_arg(cx, arena_printf(cx->arena, "y: %s, batch stride", cg_dims(cx->arena, y)), "%s, %lld, %lld, %lld, %lld",
               cg_out(cx, n), cg_stride(cx, n->out), cg_dim(y, 0), cg_dim(y, 1), cg_dim(y, 2));
    cg_arg(cx, "kernel, stride, padding, dilation, groups, scratch", "%d, %d, %d, %d, %d, %d, %d, %d, %d, %s", c->kh,
           c->kw, c->sh, c->sw, c->ph, c->pw, c->dh, c->dw, c->groups, cg_scratch_of(cx, n));
    if (!cg_epilogue_args(cx, n) || (!t && !cg_prologue_args(cx, n))) return false;  /* no prologue on conv_transpose2d */
    cg_call_end(cx);
    return true;
}

static bool emit_c_conv2d(CgEmit *cx, const IrNode *n)
{
    if (!cx->tr || !n->attr.conv.bn_stats) return cg_conv_call(cx, n);
    const ConvAttr *c = &n->attr.conv;
    const IrShape *y = &cx->g->values[n->out].shape;
    cg_mode_open(cx, true, "the convolution, with its batchnorm's statistics");
    cg_line(cx, "%s", cx->d->zero(cx->arena, cx->tr->stats, arena_printf(cx->arena, "%lld", 2 * cg_dim(y, 0)), "double"));
    cg_need(cx, "bn_train_fused");
    cg_call_begin(cx, "conv2d_stats");
    cg_arg(cx, "the instance's threads and instruction set", "%s", cx->ctx);
    cg_image_arg(cx, n, false);
    cg_weight_args(cx, n);
    cg_arg(cx, arena_printf(cx->arena, "y: %s", cg_dims(cx->arena, y)), "%s, %lld, %lld, %lld", cg_out(cx, n),
           cg_dim(y, 0), cg_dim(y, 1), cg_dim(y, 2));
    cg_arg(cx, "kernel, stride, padding, dilation, groups", "%d, %d, %d, %d, %d, %d, %d, %d, %d", c->kh, c->kw, c->sh,
           c->sw, c->ph, c->pw, c->dh, c->dw, c->groups);
    cg_arg(cx, "scratch; per-channel sums for the batchnorm", "%s, %s", cg_scratch_of(cx, n), cx->tr->stats);
    cg_call_end(cx);
    cg_mode_open(cx, false, NULL);
    if (!cg_conv_call(cx, n)) return false;
    cg_mode_close(cx);
    return true;
}

static bool emit_c_conv_t2d(CgEmit *cx, const IrNode *n) { return cg_conv_call(cx, n); }

/* Depthwise then pointwise, tile by tile (nnc_dwpw). */
static bool emit_c_dwpw(CgEmit *cx, const IrNode *n)
{
    const DwPwAttr *a = &n->attr.dwpw;
    const IrShape *y = &cx->g->values[n->out].shape;
    int pwi = ir_dwpw_pw_in(n);
    if (ir_act_has_slope(a->dw.epi.act) && !cg_finite(cx, n, "the depthwise slope", a->dw.epi.slope)) return false;
    const char *kernel = a->pw.packed ? "dwpw_packed" : "dwpw";
    cg_need(cx, kernel);
    cg_scratch_check(cx, cg_scratch_call(cx->arena, cx->g, n, cx->max_batch),
                     plan_scratch_floats(cx->g, n, cx->max_batch));
    cg_call_begin(cx, kernel);
    if (a->pw.packed) cg_arg(cx, "the instance's threads and instruction set", "%s", cx->ctx);
    cg_image_arg(cx, n, true);
    cg_arg(cx, arena_printf(cx->arena, "depthwise: %s, %s", cg_label(cx, ir_in(cx->g, n, 1)),
                            a->dw.bias ? cg_label(cx, ir_in(cx->g, n, 2)) : "no bias"),
           "%s, %s", cg_in(cx, n, 1), a->dw.bias ? cg_in(cx, n, 2) : "NULL");
    cg_arg(cx, "kernel, stride, padding, dilation", "%d, %d, %d, %d, %d, %d, %d, %d", a->dw.kh, a->dw.kw, a->dw.sh,
           a->dw.sw, a->dw.ph, a->dw.pw, a->dw.dh, a->dw.dw);
    cg_arg(cx, arena_printf(cx->arena, "then %s", ir_act_name(a->dw.epi.act)), "%s",
           cg_act_args(cx, a->dw.epi.act, a->dw.epi.slope));
    cg_arg(cx, arena_printf(cx->arena, "pointwise: %s, %s", cg_label(cx, ir_in(cx->g, n, pwi)),
                            a->pw.bias ? cg_label(cx, ir_in(cx->g, n, pwi + 1)) : "no bias"),
           "%s, %s", cg_in(cx, n, pwi), a->pw.bias ? cg_in(cx, n, pwi + 1) : "NULL");
    cg_arg(cx, arena_printf(cx->arena, "y: %s, batch stride", cg_dims(cx->arena, y)), "%s, %lld, %lld, %lld, %lld",
           cg_out(cx, n), cg_stride(cx, n->out), cg_dim(y, 0), cg_dim(y, 1), cg_dim(y, 2));
    if (!cg_epilogue_args(cx, n)) return false;
    cg_arg(cx, "rows per tile, scratch", "%d, %s", plan_dwpw_tile(cx->g, n), cg_scratch_of(cx, n));
    cg_call_end(cx);
    return true;
}

/* An activation's kernel on count floats from x into y (y may be x). */
static void cg_act_call(CgEmit *cx, const char *count, const char *x, const char *y, ActKind act, float slope)
{
    cg_need(cx, "activation");
    cg_call_begin(cx, "activation");
    cg_arg(cx, NULL, "%s, %s, %s, %s", count, x, y, cg_act_args(cx, act, slope));
    cg_call_end(cx);
}

/* Batchnorm with the running statistics (inference, and a training module's inference mode). */
static void cg_batchnorm_eval(CgEmit *cx, const IrNode *n)
{
    const IrShape *x = ir_in_shape(cx->g, n, 0);
    cg_need(cx, "batchnorm");
    cg_call_begin(cx, "batchnorm");
    cg_arg(cx, arena_printf(cx->arena, "x: %s, batch stride", cg_label(cx, ir_in(cx->g, n, 0))),
           "n, %s, %lld, %lld, %lld", cg_in(cx, n, 0), cg_stride(cx, ir_in(cx->g, n, 0)), cg_dim(x, 0),
           cg_elems_from(x, 1));
    cg_arg(cx, arena_printf(cx->arena, "%s, %s", cg_label(cx, ir_in(cx->g, n, 1)), cg_label(cx, ir_in(cx->g, n, 2))),
           "%s, %s", cg_in(cx, n, 1), cg_in(cx, n, 2));
    cg_arg(cx, arena_printf(cx->arena, "%s, %s", cg_label(cx, ir_in(cx->g, n, 3)), cg_label(cx, ir_in(cx->g, n, 4))),
           "%s, %s", cg_in(cx, n, 3), cg_in(cx, n, 4));
    cg_arg(cx, "eps, y, batch stride", "%s, %s, %lld", cg_lit(cx, n->attr.bn.eps), cg_out(cx, n),
           cg_stride(cx, n->out));
    cg_call_end(cx);
}

/* Training mode: batch statistics, running averages updated, mean and 1/std
 * saved for the backward; fused, from the conv's sums, with the activation. */
static void cg_batchnorm_train(CgEmit *cx, const IrNode *n)
{
    const IrShape *x = ir_in_shape(cx->g, n, 0);
    const BnAttr *b = &n->attr.bn;
    int32_t i = (int32_t)(n - cx->g->nodes);
    cg_need(cx, b->fused ? "bn_train_fused" : "batchnorm_train");
    cg_call_begin(cx, b->fused ? "batchnorm_act_train" : "batchnorm_train");
    if (b->fused) cg_arg(cx, "the instance's threads and instruction set", "%s", cx->ctx);
    cg_arg(cx, arena_printf(cx->arena, "x: %s", cg_label(cx, ir_in(cx->g, n, 0))), "n, %s, %lld, %lld",
           cg_in(cx, n, 0), cg_dim(x, 0), cg_elems_from(x, 1));
    if (b->fused) cg_arg(cx, "the conv's per-channel sums", "%s", cx->tr->stats);
    cg_arg(cx, arena_printf(cx->arena, "%s, %s; eps, momentum", cg_label(cx, ir_in(cx->g, n, 1)),
                            cg_label(cx, ir_in(cx->g, n, 2))),
           "%s, %s, %s, %s", cg_in(cx, n, 1), cg_in(cx, n, 2), cg_lit(cx, b->eps), cg_lit(cx, b->momentum));
    cg_arg(cx, arena_printf(cx->arena, "%s, %s (updated)", cg_label(cx, ir_in(cx->g, n, 3)),
                            cg_label(cx, ir_in(cx->g, n, 4))),
           "%s, %s", cg_in(cx, n, 3), cg_in(cx, n, 4));
    cg_arg(cx, "y; batch mean and 1/std, saved", "%s, %s, %s", cg_out(cx, n), cx->tr->bn_mean[i], cx->tr->bn_invstd[i]);
    if (b->fused) cg_arg(cx, arena_printf(cx->arena, "then %s", ir_act_name(b->act)), "%s", cg_act_args(cx, b->act, b->slope));
    cg_call_end(cx);
}

static bool emit_c_batchnorm(CgEmit *cx, const IrNode *n)
{
    const BnAttr *b = &n->attr.bn;
    if (!cg_finite(cx, n, "eps", b->eps)) return false;
    if (!cx->tr) {
        cg_batchnorm_eval(cx, n);
        return true;
    }
    if (!cg_finite(cx, n, "momentum", b->momentum)) return false;
    if (ir_act_has_slope(b->act) && !cg_finite(cx, n, "the slope", b->slope)) return false;
    cg_mode_open(cx, true, b->fused ? arena_printf(cx->arena, "normalization and %s in one pass", ir_act_name(b->act))
                                    : NULL);
    cg_batchnorm_train(cx, n);
    cg_mode_open(cx, false, NULL);
    cg_batchnorm_eval(cx, n);
    if (b->act != ACT_NONE) cg_act_call(cx, cg_count(cx, n->out), cg_out(cx, n), cg_out(cx, n), b->act, b->slope);
    cg_mode_close(cx);
    return true;
}

static bool emit_c_linear(CgEmit *cx, const IrNode *n)
{
    const IrShape *x = ir_in_shape(cx->g, n, 0);
    /* over the instance's threads: a batch as one GEMM (nnc_linear_gemm), batch 1 as nnc_linear_mt */
    const char *kernel = cx->tr || cx->max_batch > 1 ? "linear_gemm" : "linear_mt";
    cg_need(cx, kernel);
    cg_call_begin(cx, kernel);
    cg_arg(cx, "the instance's threads and instruction set", "%s", cx->ctx);
    cg_arg(cx, arena_printf(cx->arena, "x: %s", cg_label(cx, ir_in(cx->g, n, 0))), "n, %s, %lld", cg_in(cx, n, 0),
           cg_dim(x, 0));
    cg_weight_args(cx, n);
    cg_arg(cx, arena_printf(cx->arena, "y: %s", cg_dims(cx->arena, &cx->g->values[n->out].shape)), "%s, %d",
           cg_out(cx, n), n->attr.linear.out_features);
    if (!cg_epilogue_args(cx, n)) return false;
    cg_call_end(cx);
    return true;
}

/* An activation op (activations.h): the kernel on count elements. */
static bool emit_c_act(CgEmit *cx, const IrNode *n)
{
    ActKind act = ir_ops[n->op].act;
    if (ir_act_has_slope(act) && !cg_finite(cx, n, "the slope", n->attr.act.slope)) return false;
    cg_act_call(cx, cg_count(cx, n->out), cg_in(cx, n, 0), cg_out(cx, n), act, n->attr.act.slope);
    return true;
}

static void cg_copy_call(CgEmit *cx, const IrNode *n)
{
    cg_need(cx, "copy");
    cg_call_begin(cx, "copy");
    cg_arg(cx, NULL, "%s, %s, %s", cg_count(cx, n->out), cg_in(cx, n, 0), cg_out(cx, n));
    cg_call_end(cx);
}

/* identity, flatten: a copy, or nothing when the plan made the output a view of the input. */
static bool emit_c_copy(CgEmit *cx, const IrNode *n)
{
    int32_t x = ir_in(cx->g, n, 0);
    if (n->op == OP_FLATTEN && cx->ws_offset && cx->ws_offset[x] >= 0 && cx->ws_offset[n->out] == cx->ws_offset[x]) {
        cg_line(cx, "/* %s is a view of %s: no copy */", cx->cname[n->out], cx->cname[x]);
        return true;
    }
    cg_copy_call(cx, n);
    return true;
}

/* Dropout: the identity in inference; a mask drawn from the step's stream when training. */
static bool emit_c_dropout(CgEmit *cx, const IrNode *n)
{
    if (!cx->tr) return emit_c_copy(cx, n);
    int32_t i = (int32_t)(n - cx->g->nodes);
    if (!cg_finite(cx, n, "p", n->attr.dropout.p)) return false;
    cg_mode_open(cx, true, NULL);
    cg_need(cx, "dropout_train");
    cg_call_begin(cx, "dropout_train");
    cg_arg(cx, NULL, "%s, %s, %s, %s, %s, %s", cg_count(cx, n->out), cg_in(cx, n, 0), cg_out(cx, n),
           cg_lit(cx, n->attr.dropout.p), cx->tr->seed, cx->tr->drop_stream[i]);
    cg_call_end(cx);
    cg_mode_open(cx, false, NULL);
    cg_copy_call(cx, n);
    cg_mode_close(cx);
    return true;
}

static bool emit_c_add(CgEmit *cx, const IrNode *n)
{
    cg_need(cx, "add");
    cg_call_begin(cx, "add");
    cg_arg(cx, NULL, "%s, %s, %s, %s", cg_count(cx, n->out), cg_in(cx, n, 0), cg_in(cx, n, 1), cg_out(cx, n));
    cg_call_end(cx);
    return true;
}

/* The y line of a pooling call, with its batch stride (the x line: cg_image_arg). */
static void cg_pool_args(CgEmit *cx, const IrNode *n)
{
    const IrShape *y = &cx->g->values[n->out].shape;
    cg_image_arg(cx, n, true);
    cg_arg(cx, arena_printf(cx->arena, "y: %s, batch stride", cg_dims(cx->arena, y)), "%s, %lld, %lld, %lld",
           cg_out(cx, n), cg_stride(cx, n->out), cg_dim(y, 1), cg_dim(y, 2));
}

/* Pooling: in inference over the instance's threads (maxpool2d_mt,
 * avgpool2d_mt); a training step keeps the serial kernels. */
static bool emit_c_maxpool2d(CgEmit *cx, const IrNode *n)
{
    const PoolAttr *p = &n->attr.pool;
    bool mt = !cx->tr;
    const char *kernel = p->blocked ? "maxpool2d_blocked" : mt ? "maxpool2d_mt" : "maxpool2d";
    cg_need(cx, p->blocked ? "pool_blocked" : kernel);
    cg_call_begin(cx, kernel);
    if (mt) cg_arg(cx, "the instance's threads and instruction set", "%s", cx->ctx);
    cg_pool_args(cx, n);
    cg_arg(cx, "kernel, stride, padding, dilation", "%d, %d, %d, %d, %d, %d, %d, %d", p->kh, p->kw, p->sh, p->sw,
           p->ph, p->pw, p->dh, p->dw);
    cg_call_end(cx);
    return true;
}

static bool emit_c_avgpool2d(CgEmit *cx, const IrNode *n)
{
    const PoolAttr *p = &n->attr.pool;
    if (p->dh != 1 || p->dw != 1) CG_FAIL(cx, "avgpool2d: a dilation other than 1 is not supported");
    bool mt = !cx->tr;
    const char *kernel = p->blocked ? "avgpool2d_blocked" : mt ? "avgpool2d_mt" : "avgpool2d";
    cg_need(cx, p->blocked ? "pool_blocked" : kernel);
    cg_call_begin(cx, kernel);
    if (mt) cg_arg(cx, "the instance's threads and instruction set", "%s", cx->ctx);
    cg_pool_args(cx, n);
    cg_arg(cx, "kernel, stride, padding, count_include_pad", "%d, %d, %d, %d, %d, %d, %d", p->kh, p->kw, p->sh,
           p->sw, p->ph, p->pw, p->count_include_pad ? 1 : 0);
    cg_call_end(cx);
    return true;
}

/* A kernel of the form f(n, x, channels, elements per channel, y), from section `section`. */
static bool cg_emit_per_channel(CgEmit *cx, const IrNode *n, const char *section)
{
    const IrShape *x = ir_in_shape(cx->g, n, 0);
    cg_need(cx, section);
    cg_call_begin(cx, section);
    cg_arg(cx, NULL, "n, %s, %lld, %lld, %s", cg_in(cx, n, 0), cg_dim(x, 0), cg_elems_from(x, 1), cg_out(cx, n));
    cg_call_end(cx);
    return true;
}

static bool emit_c_global_avgpool(CgEmit *cx, const IrNode *n)
{
    const IrShape *x = ir_in_shape(cx->g, n, 0);
    int32_t v = ir_in(cx->g, n, 0);
    if (cx->g->values[v].layout != LAYOUT_NCHW16C) return cg_emit_per_channel(cx, n, "global_avgpool");
    cg_need(cx, "pool_blocked");
    cg_call_begin(cx, "global_avgpool_blocked");
    cg_arg(cx, "the instance's threads and instruction set", "%s", cx->ctx);
    cg_arg(cx, arena_printf(cx->arena, "x: %s (nchw16c), batch stride", cg_label(cx, v)), "n, %s, %lld, %lld, %lld",
           cg_in(cx, n, 0), cg_stride(cx, v), cg_dim(x, 0), cg_elems_from(x, 1));
    cg_arg(cx, "y", "%s", cg_out(cx, n));
    cg_call_end(cx);
    return true;
}

/* A tensor into the other layout (kernels_blocked.c nnc_to_blocked, nnc_from_blocked). */
static bool emit_c_reorder(CgEmit *cx, const IrNode *n)
{
    const IrShape *x = ir_in_shape(cx->g, n, 0);
    int32_t v = ir_in(cx->g, n, 0);
    bool to = n->attr.reorder.to == LAYOUT_NCHW16C;
    if (x->rank != 3) CG_FAIL(cx, "internal error: a reorder of a tensor of rank %d", x->rank);
    cg_need(cx, "blocked");
    cg_call_begin(cx, to ? "to_blocked" : "from_blocked");
    cg_arg(cx, "the instance's threads and instruction set", "%s", cx->ctx);
    cg_arg(cx, arena_printf(cx->arena, "x: %s, batch stride; channels, pixels", cg_label(cx, v)),
           "n, %s, %lld, %lld, %lld", cg_in(cx, n, 0), cg_stride(cx, v), cg_dim(x, 0), cg_elems_from(x, 1));
    cg_arg(cx, arena_printf(cx->arena, "y (%s), batch stride", ir_layout_name(n->attr.reorder.to)), "%s, %lld",
           cg_out(cx, n), cg_stride(cx, n->out));
    cg_call_end(cx);
    return true;
}

/* Softmax over the channels (PyTorch's dim=1), at every position. */
static bool emit_c_softmax(CgEmit *cx, const IrNode *n) { return cg_emit_per_channel(cx, n, "softmax"); }

static bool emit_c_adaptive_avgpool2d(CgEmit *cx, const IrNode *n)
{
    cg_need(cx, "adaptive_avgpool2d");
    cg_call_begin(cx, "adaptive_avgpool2d");
    cg_pool_args(cx, n);
    if (!cg_prologue_args(cx, n)) return false;
    cg_call_end(cx);
    return true;
}

static bool emit_c_lrn(CgEmit *cx, const IrNode *n)
{
    const LrnAttr *a = &n->attr.lrn;
    const IrShape *x = ir_in_shape(cx->g, n, 0);
    if (!cg_finite(cx, n, "alpha", a->alpha) || !cg_finite(cx, n, "beta", a->beta) || !cg_finite(cx, n, "k", a->k))
        return false;
    cg_need(cx, "lrn");
    cg_call_begin(cx, "lrn");
    cg_arg(cx, arena_printf(cx->arena, "x: %s; y", cg_label(cx, ir_in(cx->g, n, 0))), "n, %s, %lld, %lld, %s",
           cg_in(cx, n, 0), cg_dim(x, 0), cg_elems_from(x, 1), cg_out(cx, n));
    cg_arg(cx, "size, alpha, beta, k", "%d, %s, %s, %s", a->size, cg_lit(cx, a->alpha), cg_lit(cx, a->beta),
           cg_lit(cx, a->k));
    cg_call_end(cx);
    return true;
}

/* Concatenation along per-sample axis a, seen as [n * outer][dim_a * inner]:
 * each input is a block of rows copied at a column offset. */
static bool emit_c_concat(CgEmit *cx, const IrNode *n)
{
    const IrShape *y = &cx->g->values[n->out].shape;
    if (n->attr.concat.in_place) {  /* its inputs' producers wrote their slices (emit_c.c cg_bind_views) */
        sb_printf(cx->body, "    /* in place: %s", cg_in(cx, n, 0));
        for (int i = 1; i < n->n_in; i++) sb_printf(cx->body, ", %s", cg_in(cx, n, i));
        sb_printf(cx->body, " are its slices; nothing to copy */\n");
        return true;
    }
    int axis = n->attr.concat.axis;
    long long outer = 1, offset = 0, y_row = cg_elems_from(y, axis);
    for (int d = 0; d < axis; d++) outer *= y->dim[d];
    /* a constant (weights joined by fuse_siblings.c) is one "sample" */
    const char *rows = cx->is_const && cx->is_const[n->out] ? "1"
                       : outer == 1                         ? "n"
                                                            : arena_printf(cx->arena, "n * %lld", outer);
    cg_need(cx, "concat");
    for (int i = 0; i < n->n_in; i++) {
        long long x_row = cg_elems_from(ir_in_shape(cx->g, n, i), axis);
        cg_call_begin(cx, "concat_part");
        cg_arg(cx, NULL, "%s, %s, %lld, %s, %lld, %lld", rows, cg_in(cx, n, i), x_row, cg_out(cx, n),
               outer == 1 ? cg_stride(cx, n->out) : y_row, offset);
        cg_call_end(cx);
        offset += x_row;
    }
    return true;
}

/* Batchnorm folded into a conv2d / linear weight (output channel dim 0) or a
 * conv_transpose2d weight [c_in, c_out/g, kh, kw]: see nnc_bn_fold_weight. */
static bool emit_c_bn_fold_weight(CgEmit *cx, const IrNode *n)
{
    const IrShape *w = ir_in_shape(cx->g, n, 0);
    bool t = n->op == OP_BN_FOLD_WEIGHT_T;
    long long rows = cg_dim(w, 0), cols = t ? cg_dim(w, 1) : 1, inner = cg_elems_from(w, t ? 2 : 1);
    long long groups = t ? cg_dim(ir_in_shape(cx->g, n, 1), 0) / cols : rows;
    if (!cg_finite(cx, n, "eps", n->attr.bn.eps)) return false;
    cg_need(cx, "bn_fold");
    cg_call_begin(cx, "bn_fold_weight");
    cg_arg(cx, arena_printf(cx->arena, "w: %s %s as [rows][cols][inner], groups", cg_label(cx, ir_in(cx->g, n, 0)),
                            cg_dims(cx->arena, w)),
           "%s, %lld, %lld, %lld, %lld", cg_in(cx, n, 0), rows, cols, inner, groups);
    cg_arg(cx, arena_printf(cx->arena, "%s, %s", cg_label(cx, ir_in(cx->g, n, 1)), cg_label(cx, ir_in(cx->g, n, 2))),
           "%s, %s", cg_in(cx, n, 1), cg_in(cx, n, 2));
    cg_arg(cx, "eps, y", "%s, %s", cg_lit(cx, n->attr.bn.eps), cg_out(cx, n));
    cg_call_end(cx);
    return true;
}

/* A weight's reordering at create, a batchnorm folded in when the node has
 * gamma and var: nnc_<call>(w, d0, d1, gamma|NULL, var|NULL, eps, y). */
static bool cg_weight_transform(CgEmit *cx, const IrNode *n, const char *section, const char *call, const char *as,
                                long long d0, long long d1)
{
    const IrShape *w = ir_in_shape(cx->g, n, 0);
    bool fold = n->n_in == 3;
    if (fold && !cg_finite(cx, n, "eps", n->attr.bn.eps)) return false;
    cg_need(cx, section);
    cg_call_begin(cx, call);
    cg_arg(cx, arena_printf(cx->arena, "w: %s %s %s", cg_label(cx, ir_in(cx->g, n, 0)), cg_dims(cx->arena, w), as),
           "%s, %lld, %lld", cg_in(cx, n, 0), d0, d1);
    if (fold)
        cg_arg(cx, arena_printf(cx->arena, "folding %s, %s", cg_label(cx, ir_in(cx->g, n, 1)), cg_label(cx, ir_in(cx->g, n, 2))),
               "%s, %s, %s", cg_in(cx, n, 1), cg_in(cx, n, 2), cg_lit(cx, n->attr.bn.eps));
    else
        cg_arg(cx, "no batchnorm to fold", "NULL, NULL, 0.0f");
    cg_arg(cx, "y", "%s", cg_out(cx, n));
    cg_call_end(cx);
    return true;
}

/* A conv2d's weight packed for the GEMM's micro-kernel (ops.def PACK_WEIGHTS). */
static bool emit_c_pack_weights(CgEmit *cx, const IrNode *n)
{
    const IrShape *w = ir_in_shape(cx->g, n, 0);
    return cg_weight_transform(cx, n, "gemm_packed", "pack_weights", "as [rows][cols]", cg_dim(w, 0),
                               cg_elems_from(w, 1));
}

/* A blocked conv2d's weight packed for its kernel (ops.def PACK_BLOCKED,
 * PACK_NCHW_BLOCKED, PACK_DW_BLOCKED): nnc_pack_weights_blocked(w, k, c, kh,
 * kw, gamma, var, eps, y), a stem's nnc_pack_nchw_blocked with the same
 * arguments, or nnc_pack_dw_blocked(w, c, kh, kw, ...). */
static bool emit_c_pack_blocked(CgEmit *cx, const IrNode *n)
{
    const IrShape *w = ir_in_shape(cx->g, n, 0);
    bool dw = n->op == OP_PACK_DW_BLOCKED, fold = n->n_in == 3, stem = n->op == OP_PACK_NCHW_BLOCKED;
    if (fold && !cg_finite(cx, n, "eps", n->attr.bn.eps)) return false;
    cg_need(cx, dw ? "dwconv_blocked" : stem ? "conv2d_nchw_blocked" : "conv2d_blocked");
    cg_call_begin(cx, dw ? "pack_dw_blocked" : stem ? "pack_nchw_blocked" : "pack_weights_blocked");
    if (dw)
        cg_arg(cx, arena_printf(cx->arena, "w: %s %s (channels, kernel)", cg_label(cx, ir_in(cx->g, n, 0)),
                                cg_dims(cx->arena, w)),
               "%s, %lld, %lld, %lld", cg_in(cx, n, 0), cg_dim(w, 0), cg_dim(w, 2), cg_dim(w, 3));
    else
        cg_arg(cx, arena_printf(cx->arena, "w: %s %s (out, in channels, kernel)", cg_label(cx, ir_in(cx->g, n, 0)),
                                cg_dims(cx->arena, w)),
               "%s, %lld, %lld, %lld, %lld", cg_in(cx, n, 0), cg_dim(w, 0), cg_dim(w, 1), cg_dim(w, 2), cg_dim(w, 3));
    if (fold)
        cg_arg(cx, arena_printf(cx->arena, "folding %s, %s", cg_label(cx, ir_in(cx->g, n, 1)), cg_label(cx, ir_in(cx->g, n, 2))),
               "%s, %s, %s", cg_in(cx, n, 1), cg_in(cx, n, 2), cg_lit(cx, n->attr.bn.eps));
    else
        cg_arg(cx, "no batchnorm to fold", "NULL, NULL, 0.0f");
    cg_arg(cx, "y", "%s", cg_out(cx, n));
    cg_call_end(cx);
    return true;
}

/* A 3x3 conv2d's weight in Winograd's domain (ops.def WINOGRAD_WEIGHTS). */
static bool emit_c_winograd_weights(CgEmit *cx, const IrNode *n)
{
    const IrShape *w = ir_in_shape(cx->g, n, 0);
    return cg_weight_transform(cx, n, "conv2d_winograd", "winograd_weights", "(out, in channels)", cg_dim(w, 0),
                               cg_dim(w, 1));
}

/* A slice is a view of its input (emit_c.c cg_bind_views): nothing to run. */
static bool emit_c_slice(CgEmit *cx, const IrNode *n)
{
    cg_line(cx, "/* %s is channels %d..%d of %s: a view */", cg_out(cx, n), n->attr.slice.start,
            n->attr.slice.start + n->attr.slice.count - 1, cg_in(cx, n, 0));
    return true;
}

static bool emit_c_bn_scale(CgEmit *cx, const IrNode *n)
{
    const IrGraph *g = cx->g;
    if (!cg_finite(cx, n, "eps", n->attr.bn.eps)) return false;
    cg_need(cx, "bn_scale");
    cg_call_begin(cx, "bn_scale");
    cg_arg(cx, arena_printf(cx->arena, "%s, %s; eps, y", cg_label(cx, ir_in(g, n, 0)), cg_label(cx, ir_in(g, n, 1))),
           "%lld, %s, %s, %s, %s", cg_dim(ir_in_shape(g, n, 0), 0), cg_in(cx, n, 0), cg_in(cx, n, 1),
           cg_lit(cx, n->attr.bn.eps), cg_out(cx, n));
    cg_call_end(cx);
    return true;
}

static bool emit_c_bn_fold_bias(CgEmit *cx, const IrNode *n)
{
    const IrGraph *g = cx->g;
    bool bias = n->n_in == 5;
    if (!cg_finite(cx, n, "eps", n->attr.bn.eps)) return false;
    cg_need(cx, "bn_fold");
    cg_call_begin(cx, "bn_fold_bias");
    cg_arg(cx, arena_printf(cx->arena, "%s, %s", cg_label(cx, ir_in(g, n, 0)), cg_label(cx, ir_in(g, n, 1))),
           "%lld, %s, %s", cg_dim(ir_in_shape(g, n, 0), 0), cg_in(cx, n, 0), cg_in(cx, n, 1));
    cg_arg(cx, arena_printf(cx->arena, "%s, %s", cg_label(cx, ir_in(g, n, 2)), cg_label(cx, ir_in(g, n, 3))),
           "%s, %s", cg_in(cx, n, 2), cg_in(cx, n, 3));
    cg_arg(cx, arena_printf(cx->arena, "eps, %s, y", bias ? cg_label(cx, ir_in(g, n, 4)) : "no bias"), "%s, %s, %s",
           cg_lit(cx, n->attr.bn.eps), bias ? cg_in(cx, n, 4) : "NULL", cg_out(cx, n));
    cg_call_end(cx);
    return true;
}

/* The dispatch table, from the EMIT column of ir/ops.def. */
static const CgEmitFn cg_emitters[OP_COUNT] = {
#define OP(id, nm, dsl, mn, mx, attr, act, inpl, bstr, tfwd, shape, macs, emit, grad) [OP_##id] = emit,
#include "../ir/ops.def"
#undef OP
};

bool cg_emit_forward(CgEmit *cx, const IrNode *n)
{
    sb_printf(cx->body, "\n    /* %s */\n", cg_node_origin(cx->arena, n));
    cx->indent = 4;
    return cg_emitters[n->op](cx, n);
}
