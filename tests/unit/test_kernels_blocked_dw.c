/* test_kernels_blocked_dw.c: the per-channel layers on NCHW16c
 * (runtime/snippets/kernels_blocked_dw.c): depthwise convolution against a
 * double-precision reference written from the definition, max and average
 * pooling against nnc_maxpool2d and nnc_avgpool2d of the same NCHW data, and
 * global average pooling against nnc_global_avgpool (the same floats, bit for
 * bit), at every instruction set this CPU runs (the test prints which) and
 * with 1, 2 and 3 threads, whose outputs must be bit-identical.
 *
 * Inputs are NCHW data reordered with nnc_to_blocked into buffers whose
 * batch stride is larger than a sample, their padding lanes then overwritten
 * with finite garbage (+-1e3): the real outputs must not depend on them, and
 * every output's padding lanes must be exactly 0.0f. Outputs are prefilled
 * with NaN; the floats between samples must stay NaN. Shapes: channels 1, 3,
 * 17, 24, 40, 96 (one block, partial blocks, several); kernels 3x3, 5x5,
 * 1x3; strides 1 and 2; padding 0 to 2; dilation 2; maps 1x1 to 112x112;
 * batches 1 and 3. */
#define NNC_PAR_MIN_WORK 0.0 /* split every loop, however small: 1, 2 and 3 threads must agree */
#include "kernel_test.h"

enum { GAP = 48 };  /* floats between two samples of a blocked buffer, past the sample */

/* A blocked copy of x (n samples of c x hw, NCHW) with batch stride
 * nnc_blocked_floats + GAP; its padding lanes and gaps hold garbage. */
static float *to_blocked_garbage(Rng *r, const float *x, int n, int c, size_t hw, size_t *bs)
{
    size_t s = nnc_blocked_floats(c, hw) + GAP, i, p;
    float *b = new_floats((size_t)n * s);
    int cb = (c + NNC_CB - 1) / NNC_CB, l;
    *bs = s;
    for (i = 0; i < (size_t)n * s; i++) b[i] = 1e3f * rng_float(r);
    nnc_to_blocked(NULL, n, x, (size_t)c * hw, c, hw, b, s);
    for (i = 0; i < (size_t)n; i++)
        for (p = 0; p < hw; p++)
            for (l = c - (cb - 1) * NNC_CB; l < NNC_CB; l++)
                b[i * s + ((size_t)(cb - 1) * hw + p) * NNC_CB + (size_t)l] = 1e3f * rng_float(r);
    return b;
}

/* Fails unless every padding lane of the blocked output y is exactly +0.0f
 * and the floats between samples are still NaN. */
static void check_blocked_padding(const float *y, int n, int c, size_t hw, size_t bs, const char *what)
{
    int cb = (c + NNC_CB - 1) / NNC_CB, l, i;
    size_t p, used = nnc_blocked_floats(c, hw);
    for (i = 0; i < n; i++) {
        for (p = 0; p < hw; p++)
            for (l = c - (cb - 1) * NNC_CB; l < NNC_CB; l++) {
                float v = y[(size_t)i * bs + ((size_t)(cb - 1) * hw + p) * NNC_CB + (size_t)l];
                if (!(v == 0.0f && !signbit(v)))
                    fail_msg("%s: padding lane %d of pixel %zu is %g", what, l, p, (double)v);
            }
        if (i + 1 < n)
            for (p = used; p < bs; p++)
                if (!isnan(y[(size_t)i * bs + p])) fail_msg("%s: the gap after sample %d was written", what, i);
    }
}

static int out_size(int in, int k, int s, int p, int d) { return (in + 2 * p - d * (k - 1) - 1) / s + 1; }

/* ---- packing ---- */

static void test_pack_dw(void **state)
{
    static const int cs[] = {1, 3, 16, 17, 40};
    Rng r = {0xD3ULL};
    (void)state;
    for (size_t ci = 0; ci < sizeof cs / sizeof cs[0]; ci++)
        for (int kh = 1; kh <= 5; kh += 2)
            for (int kw = 1; kw <= 5; kw += 2) {
                int c = cs[ci], kk = kh * kw, cb = (c + NNC_CB - 1) / NNC_CB;
                size_t np = nnc_pack_dw_blocked_floats(c, kh, kw), wn = (size_t)c * (size_t)kk;
                float *w = rand_floats(&r, wn, 1.0f), *gamma = rand_floats(&r, (size_t)c, 1.0f);
                float *var = rand_floats(&r, (size_t)c, 1.0f), *folded = new_floats(wn);
                float *p = nan_floats(np), *pf = nan_floats(np), *pg = nan_floats(np);
                assert_int_equal(np, (size_t)cb * (size_t)kk * NNC_CB);
                for (int i = 0; i < c; i++) var[i] = var[i] * var[i] + 0.1f;
                nnc_pack_dw_blocked(w, c, kh, kw, NULL, NULL, 0.0f, p);
                for (int b = 0; b < cb; b++)
                    for (int k = 0; k < kk; k++)
                        for (int l = 0; l < NNC_CB; l++) {
                            float v = p[((size_t)b * (size_t)kk + (size_t)k) * NNC_CB + (size_t)l];
                            int o = b * NNC_CB + l;
                            if (o < c)
                                assert_true(v == w[(size_t)o * (size_t)kk + (size_t)k]);
                            else
                                assert_true(v == 0.0f && !signbit(v));
                        }
                /* folding while packing is nnc_bn_fold_weight, bit for bit, then packing */
                nnc_bn_fold_weight(w, c, 1, kk, c, gamma, var, 1e-5f, folded);
                nnc_pack_dw_blocked(folded, c, kh, kw, NULL, NULL, 0.0f, pf);
                nnc_pack_dw_blocked(w, c, kh, kw, gamma, var, 1e-5f, pg);
                assert_memory_equal(pf, pg, np * sizeof(float));
                free(w), free(gamma), free(var), free(folded), free(p), free(pf), free(pg);
            }
}

/* ---- depthwise convolution ---- */

typedef struct {
    int n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw;
} DCase;

static void ref_dw(const DCase *t, const float *x, const float *wt, const float *bias, const float *res, int act,
                   int oh, int ow, double *ref)
{
    for (int i = 0; i < t->n; i++)
        for (int ch = 0; ch < t->c; ch++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    size_t plane = (size_t)i * (size_t)t->c + (size_t)ch;
                    size_t o = (plane * (size_t)oh + (size_t)oy) * (size_t)ow + (size_t)ox;
                    double s = bias ? bias[ch] : 0.0;
                    for (int ki = 0; ki < t->kh; ki++)
                        for (int kj = 0; kj < t->kw; kj++) {
                            int iy = oy * t->sh - t->ph + ki * t->dh, ix = ox * t->sw - t->pw + kj * t->dw;
                            if (iy < 0 || iy >= t->h || ix < 0 || ix >= t->w) continue;
                            s += (double)x[(plane * (size_t)t->h + (size_t)iy) * (size_t)t->w + (size_t)ix] *
                                 wt[((size_t)ch * (size_t)t->kh + (size_t)ki) * (size_t)t->kw + (size_t)kj];
                        }
                    if (res) s += res[o];
                    ref[o] = act_ref(act, s);
                }
}

/* One case at every isa and 1, 2, 3 threads, with bias or not, a residual or
 * not, and activation act. */
static void run_dw(Rng *r, const DCase *t, int with_bias, int with_res, int act)
{
    int oh = out_size(t->h, t->kh, t->sh, t->ph, t->dh), ow = out_size(t->w, t->kw, t->sw, t->pw, t->dw);
    size_t hw = (size_t)t->h * (size_t)t->w, ohw = (size_t)oh * (size_t)ow, xbs, rbs = 0;
    size_t ys = nnc_blocked_floats(t->c, ohw) + GAP, yn = (size_t)t->n * (size_t)t->c * ohw;
    size_t wn = (size_t)t->c * (size_t)t->kh * (size_t)t->kw;
    float *x = rand_floats(r, (size_t)t->n * (size_t)t->c * hw, 1.0f), *wt = rand_floats(r, wn, 1.0f);
    float *bias = with_bias ? rand_floats(r, (size_t)t->c, 1.0f) : NULL;
    float *res = with_res ? rand_floats(r, yn, 1.0f) : NULL, *xb, *rb = NULL, *wp, *y[3], *out = new_floats(yn);
    double *ref = new_doubles(yn);
    int list[3], ni = isas(list);
    char what[200];
    assert_true(oh > 0 && ow > 0);
    xb = to_blocked_garbage(r, x, t->n, t->c, hw, &xbs);
    if (res) rb = to_blocked_garbage(r, res, t->n, t->c, ohw, &rbs);
    wp = nan_floats(nnc_pack_dw_blocked_floats(t->c, t->kh, t->kw));
    nnc_pack_dw_blocked(wt, t->c, t->kh, t->kw, NULL, NULL, 0.0f, wp);
    ref_dw(t, x, wt, bias, res, act, oh, ow, ref);
    for (int k = 0; k < 3; k++) y[k] = new_floats((size_t)t->n * ys);
    for (int s = 0; s < ni; s++) {
        for (int th = 1; th <= 3; th++) {
            nnc_ctx ctx;
            float *yk = y[th - 1];
            for (size_t i = 0; i < (size_t)t->n * ys; i++) yk[i] = NAN;
            ctx_for(&ctx, list[s], th);
            snprintf(what, sizeof what,
                     "dwconv_blocked isa %d threads %d n%d c%d %dx%d k%dx%d s%d,%d p%d,%d d%d,%d bias%d res%d act %s",
                     list[s], th, t->n, t->c, t->h, t->w, t->kh, t->kw, t->sh, t->sw, t->ph, t->pw, t->dh, t->dw,
                     with_bias, with_res, act_names[act]);
            nnc_dwconv_blocked(&ctx, t->n, xb, xbs, t->c, t->h, t->w, wp, bias, yk, ys, oh, ow, t->kh, t->kw, t->sh,
                               t->sw, t->ph, t->pw, t->dh, t->dw, rb, rbs, act, 0.125f);
            nnc_ctx_stop(&ctx);
            check_blocked_padding(yk, t->n, t->c, ohw, ys, what);
            if (th == 1) {
                nnc_from_blocked(NULL, t->n, yk, ys, t->c, ohw, out, (size_t)t->c * ohw);
                check_close(out, ref, yn, what);
            } else {
                check_equal(yk, y[0], (size_t)t->n * ys, what);  /* bit-identical to one thread (NaN gaps too) */
            }
        }
    }
    /* ctx NULL: one thread at nnc_cpu_isa(), the best isa, tested last above */
    for (size_t i = 0; i < (size_t)t->n * ys; i++) y[1][i] = NAN;
    nnc_dwconv_blocked(NULL, t->n, xb, xbs, t->c, t->h, t->w, wp, bias, y[1], ys, oh, ow, t->kh, t->kw, t->sh, t->sw,
                       t->ph, t->pw, t->dh, t->dw, rb, rbs, act, 0.125f);
    if (getenv("NNC_ISA") == NULL) check_equal(y[1], y[0], (size_t)t->n * ys, "dwconv_blocked, ctx NULL");
    for (int k = 0; k < 3; k++) free(y[k]);
    free(x), free(wt), free(bias), free(res), free(xb), free(rb), free(wp), free(out), free(ref);
}

static void test_dwconv_blocked(void **state)
{
    static const DCase cases[] = {
        /* n  c   h    w   kh kw sh sw ph pw dh dw */
        {1, 1, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1},
        {1, 3, 13, 11, 3, 3, 2, 2, 1, 1, 1, 1},
        {1, 17, 14, 14, 3, 3, 1, 1, 1, 1, 1, 1},
        {1, 17, 14, 14, 3, 3, 1, 1, 2, 2, 2, 2},   /* dilation 2 */
        {1, 24, 13, 11, 5, 5, 1, 1, 2, 2, 1, 1},
        {1, 40, 7, 7, 5, 5, 2, 2, 2, 2, 1, 1},
        {1, 96, 14, 14, 3, 3, 2, 2, 1, 1, 1, 1},
        {1, 96, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1},
        {1, 17, 1, 1, 3, 3, 1, 1, 1, 1, 1, 1},     /* a 1x1 map: every tap but the centre outside */
        {1, 24, 13, 11, 1, 3, 1, 1, 0, 1, 1, 1},   /* 1x3 */
        {1, 3, 7, 7, 3, 3, 1, 1, 0, 0, 1, 1},      /* no padding */
        {1, 40, 28, 28, 3, 3, 1, 1, 1, 1, 1, 1},
        {1, 24, 29, 30, 3, 3, 2, 2, 1, 1, 1, 1},
        {1, 17, 13, 11, 3, 3, 2, 1, 0, 2, 2, 1},   /* mixed strides, paddings, dilations */
        {1, 17, 11, 40, 5, 5, 2, 2, 2, 2, 2, 2},
        {1, 3, 2, 2, 5, 5, 1, 1, 2, 2, 1, 1},      /* a map smaller than the kernel */
        {1, 17, 30, 30, 3, 3, 1, 1, 0, 0, 1, 1},   /* 3x3 interiors of 28 without padding: tiles of 12 */
        {1, 17, 31, 33, 3, 3, 2, 2, 2, 2, 1, 1},   /* padding 2: tiles of 12 at stride 2 */
        {1, 17, 12, 40, 3, 3, 1, 2, 0, 0, 1, 1},
        {1, 24, 20, 30, 3, 3, 2, 1, 1, 1, 2, 1},   /* padding 1, row stride and dilation 2: whole-row tiles */
        {1, 3, 5, 29, 3, 3, 1, 2, 1, 1, 1, 1},     /* odd width at stride 2: the last pixel misses a tap */
        {1, 17, 30, 30, 5, 5, 1, 1, 2, 2, 1, 1},   /* 5x5 padding 2: whole-row tiles of 14, one moved back */
        {1, 24, 29, 31, 5, 5, 2, 2, 2, 2, 1, 1},   /* the same at stride 2 */
        {1, 17, 20, 33, 5, 5, 1, 2, 0, 0, 1, 1},   /* 5x5 without padding: interior tiles of 12 */
        {1, 3, 9, 30, 5, 5, 1, 1, 1, 1, 1, 1},     /* 5x5 padding 1: interior tiles, border pixels */
        {3, 17, 13, 11, 3, 3, 1, 1, 1, 1, 1, 1},   /* batch 3 */
        {3, 40, 14, 14, 3, 3, 2, 2, 1, 1, 1, 1},
        {3, 1, 7, 7, 5, 5, 1, 1, 2, 2, 1, 1},
    };
    static const int acts[] = {NNC_ACT_NONE, NNC_ACT_RELU, NNC_ACT_RELU6, NNC_ACT_SIGMOID};
    Rng r = {0xD0D0ULL};
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int v = 0; v < 4; v++) run_dw(&r, &cases[i], v % 2 == 0, v / 2 == 1, acts[(i + (size_t)v) % 4]);
    {
        DCase big = {1, 40, 112, 112, 3, 3, 1, 1, 1, 1, 1, 1}, big2 = {1, 17, 112, 112, 3, 3, 2, 2, 1, 1, 1, 1};
        run_dw(&r, &big, 1, 1, NNC_ACT_RELU6);
        run_dw(&r, &big2, 1, 0, NNC_ACT_RELU);
    }
    {  /* leaky_relu's slope reaches the kernel */
        DCase t = {1, 17, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1};
        run_dw(&r, &t, 1, 1, NNC_ACT_LEAKY_RELU);
    }
}

/* ---- pooling ---- */

typedef struct {
    int n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ceil;
} PCase;

/* PyTorch's output size, ceil mode included (the last window must start
 * inside the input or its left padding). */
static int pool_out(int in, int k, int s, int p, int d, int ceil_mode)
{
    int span = in + 2 * p - d * (k - 1) - 1, o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (ceil_mode && (o - 1) * s >= in + p) o--;
    return o;
}

/* One pooling case, max (avg < 0), average without (0) or with (1) the padding
 * counted, at every isa and 1, 2, 3 threads, against the NCHW kernel's floats. */
static void run_pool(Rng *r, const PCase *t, int avg)
{
    int oh = pool_out(t->h, t->kh, t->sh, t->ph, t->dh, t->ceil);
    int ow = pool_out(t->w, t->kw, t->sw, t->pw, t->dw, t->ceil);
    size_t hw = (size_t)t->h * (size_t)t->w, ohw = (size_t)oh * (size_t)ow, xbs;
    size_t ys = nnc_blocked_floats(t->c, ohw) + GAP, yn = (size_t)t->n * (size_t)t->c * ohw;
    float *x = rand_floats(r, (size_t)t->n * (size_t)t->c * hw, 1.0f), *xb, *y[3], *out = new_floats(yn);
    float *want = nan_floats(yn);
    int list[3], ni = isas(list);
    char what[200];
    if (avg < 0 && t->n * t->c * (int)hw > 12) {  /* NaN taps win, the last one; ties keep the first (signed zeros) */
        uint32_t bits = 0x7fc01234u;
        float payload;
        memcpy(&payload, &bits, sizeof payload);
        x[5] = NAN, x[6] = payload, x[7] = -0.0f, x[8] = 0.0f, x[9] = 0.0f, x[10] = -0.0f, x[12] = -NAN;
    }
    xb = to_blocked_garbage(r, x, t->n, t->c, hw, &xbs);
    if (avg < 0)
        nnc_maxpool2d(t->n, x, (size_t)t->c * hw, t->c, t->h, t->w, want, (size_t)t->c * ohw, oh, ow, t->kh, t->kw,
                      t->sh, t->sw, t->ph, t->pw, t->dh, t->dw);
    else
        nnc_avgpool2d(t->n, x, (size_t)t->c * hw, t->c, t->h, t->w, want, (size_t)t->c * ohw, oh, ow, t->kh, t->kw,
                      t->sh, t->sw, t->ph, t->pw, avg);
    for (int k = 0; k < 3; k++) y[k] = new_floats((size_t)t->n * ys);
    for (int s = 0; s < ni; s++)
        for (int th = 1; th <= 3; th++) {
            nnc_ctx ctx;
            float *yk = y[th - 1];
            for (size_t i = 0; i < (size_t)t->n * ys; i++) yk[i] = NAN;
            ctx_for(&ctx, list[s], th);
            snprintf(what, sizeof what, "%s isa %d threads %d n%d c%d %dx%d k%dx%d s%d,%d p%d,%d d%d,%d ceil%d",
                     avg < 0 ? "maxpool2d_blocked" : avg ? "avgpool2d_blocked (count pad)" : "avgpool2d_blocked",
                     list[s], th, t->n, t->c, t->h, t->w, t->kh, t->kw, t->sh, t->sw, t->ph, t->pw, t->dh, t->dw,
                     t->ceil);
            if (avg < 0)
                nnc_maxpool2d_blocked(&ctx, t->n, xb, xbs, t->c, t->h, t->w, yk, ys, oh, ow, t->kh, t->kw, t->sh,
                                      t->sw, t->ph, t->pw, t->dh, t->dw);
            else
                nnc_avgpool2d_blocked(&ctx, t->n, xb, xbs, t->c, t->h, t->w, yk, ys, oh, ow, t->kh, t->kw, t->sh,
                                      t->sw, t->ph, t->pw, avg);
            nnc_ctx_stop(&ctx);
            check_blocked_padding(yk, t->n, t->c, ohw, ys, what);
            if (th == 1) {
                nnc_from_blocked(NULL, t->n, yk, ys, t->c, ohw, out, (size_t)t->c * ohw);
                check_equal(out, want, yn, what);  /* the NCHW kernel's floats, bit for bit */
            } else {
                check_equal(yk, y[0], (size_t)t->n * ys, what);
            }
        }
    for (int k = 0; k < 3; k++) free(y[k]);
    free(x), free(xb), free(out), free(want);
}

static void test_pool_blocked(void **state)
{
    static const PCase cases[] = {
        /* n  c   h    w   kh kw sh sw ph pw dh dw ceil */
        {1, 1, 7, 7, 3, 3, 2, 2, 1, 1, 1, 1, 0},
        {1, 3, 13, 11, 2, 2, 2, 2, 0, 0, 1, 1, 1},   /* ceil mode: a last window cut short */
        {1, 17, 14, 14, 3, 3, 1, 1, 1, 1, 1, 1, 0},
        {1, 24, 13, 11, 3, 3, 2, 2, 1, 1, 1, 1, 1},
        {1, 40, 112, 112, 3, 3, 2, 2, 0, 0, 1, 1, 1}, /* GoogLeNet's first pool */
        {1, 96, 7, 7, 5, 5, 3, 3, 2, 2, 1, 1, 1},
        {1, 17, 1, 1, 3, 3, 1, 1, 1, 1, 1, 1, 0},
        {1, 24, 13, 11, 1, 3, 1, 2, 0, 1, 1, 1, 0},
        {3, 17, 13, 11, 3, 3, 2, 2, 1, 1, 1, 1, 1},
        {3, 3, 14, 14, 2, 2, 2, 2, 0, 0, 1, 1, 0},
        {1, 17, 13, 11, 2, 3, 1, 2, 1, 1, 1, 1, 0},
    };
    static const PCase dil[] = {
        {1, 17, 13, 11, 3, 3, 1, 1, 1, 1, 2, 2, 0},  /* dilated max pooling */
        {3, 24, 14, 14, 3, 2, 2, 1, 1, 0, 2, 3, 1},
    };
    Rng r = {0xB001ULL};
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int avg = -1; avg <= 1; avg++) run_pool(&r, &cases[i], avg);
    for (size_t i = 0; i < sizeof dil / sizeof dil[0]; i++) run_pool(&r, &dil[i], -1);
}

static void test_global_avgpool_blocked(void **state)
{
    static const int cs[] = {1, 3, 17, 24, 40, 96};
    static const size_t hws[] = {1, 49, 143, 196};
    Rng r = {0x6A9ULL};
    (void)state;
    for (size_t ci = 0; ci < sizeof cs / sizeof cs[0]; ci++)
        for (size_t hi = 0; hi < sizeof hws / sizeof hws[0]; hi++)
            for (int n = 1; n <= 3; n += 2) {
                int c = cs[ci], list[3], ni = isas(list);
                size_t hw = hws[hi], xbs, yn = (size_t)n * (size_t)c;
                float *x = rand_floats(&r, yn * hw, 1.0f), *xb = to_blocked_garbage(&r, x, n, c, hw, &xbs);
                float *want = nan_floats(yn), *y = new_floats(yn);
                char what[120];
                nnc_global_avgpool(n, x, c, (long)hw, want);
                for (int s = 0; s < ni; s++)
                    for (int th = 1; th <= 3; th++) {
                        nnc_ctx ctx;
                        for (size_t i = 0; i < yn; i++) y[i] = NAN;
                        ctx_for(&ctx, list[s], th);
                        nnc_global_avgpool_blocked(&ctx, n, xb, xbs, c, hw, y);
                        nnc_ctx_stop(&ctx);
                        snprintf(what, sizeof what, "global_avgpool_blocked isa %d threads %d n%d c%d hw%zu", list[s],
                                 th, n, c, hw);
                        check_equal(y, want, yn, what);
                    }
                free(x), free(xb), free(want), free(y);
            }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pack_dw),
        cmocka_unit_test(test_dwconv_blocked),
        cmocka_unit_test(test_pool_blocked),
        cmocka_unit_test(test_global_avgpool_blocked),
    };
    int list[3], n = isas(list);
    printf("instruction sets tested:");
    for (int i = 0; i < n; i++) printf(" %s", list[i] == NNC_ISA_C ? "c" : list[i] == NNC_ISA_AVX2 ? "avx2" : "avx512");
    printf("\n");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
