/* test_kernels_blocked_conv.c: the convolution on the blocked layout NCHW16c
 * (runtime/snippets/kernels_blocked_conv.c: nnc_pack_weights_blocked,
 * nnc_conv2d_blocked) against a double-precision direct convolution written
 * from the definition on NCHW tensors, the blocked ones made and read back
 * by nnc_to_blocked / nnc_from_blocked. At every instruction set this CPU
 * runs (the test prints which) and 1, 2 and 3 threads, whose outputs must be
 * bit-identical. Channels not multiples of 16 (1, 3, 17, 24, 40), kernels
 * 1x1 to 7x7, 1x3 and 2x3, strides 1, 2 and 3, padding 0 to 3, dilation 2
 * and 3, maps 1x1, 7x7, 13x11 and wider than a tile; with and without
 * bias, residual, relu, relu6, leaky_relu, sigmoid; batch 1 and 3 with batch
 * strides larger than a sample; sums split in parts over the input blocks
 * (large weights). The layout's contract: the inputs' padding lanes hold
 * garbage (1e3, finite) that must not reach a real output; the output's
 * padding lanes must be exactly +0.0f; the output is prefilled with NaN. ctx
 * NULL runs one thread at the best instruction set. */
#define NNC_PAR_MIN_WORK 0.0 /* split every loop, however small: 1, 2 and 3 threads must agree */
#include "kernel_test.h"

typedef struct {
    int n, c, h, w, k, kh, kw, sh, sw, ph, pw, dh, dw;
} BCase;

static int bout(int in, int k, int s, int p, int d) { return (in + 2 * p - d * (k - 1) - 1) / s + 1; }

static void ref_conv(const BCase *t, const float *x, const float *wt, const float *bias, const float *res, int act,
                     int oh, int ow, double *ref)
{
    for (int i = 0; i < t->n; i++)
        for (int ko = 0; ko < t->k; ko++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    double s = 0.0;
                    size_t o = (((size_t)i * (size_t)t->k + (size_t)ko) * (size_t)oh + (size_t)oy) * (size_t)ow + (size_t)ox;
                    for (int ci = 0; ci < t->c; ci++)
                        for (int ki = 0; ki < t->kh; ki++)
                            for (int kj = 0; kj < t->kw; kj++) {
                                int iy = oy * t->sh - t->ph + ki * t->dh, ix = ox * t->sw - t->pw + kj * t->dw;
                                if (iy < 0 || iy >= t->h || ix < 0 || ix >= t->w) continue;
                                s += (double)x[(((size_t)i * (size_t)t->c + (size_t)ci) * (size_t)t->h + (size_t)iy) * (size_t)t->w + (size_t)ix] *
                                     wt[(((size_t)ko * (size_t)t->c + (size_t)ci) * (size_t)t->kh + (size_t)ki) * (size_t)t->kw + (size_t)kj];
                            }
                    if (bias) s += bias[ko];
                    if (res) s += res[o];
                    ref[o] = act_ref(act, s);
                }
}

/* Floats of n samples of `used` floats at batch stride bs, the last one
 * ending the buffer (ASan sees a read past it). */
static size_t span(int n, size_t bs, size_t used) { return (size_t)(n - 1) * bs + used; }

/* n samples of c channels of hw pixels, NCHW, into NCHW16c with batch
 * stride bs, the padding lanes (and the gap between samples) then set to garbage. */
static float *blocked_garbage(const float *x, int n, int c, size_t hw, size_t bs)
{
    size_t total = span(n, bs, nnc_blocked_floats(c, hw));
    float *b = new_floats(total);
    for (size_t i = 0; i < total; i++) b[i] = 7.0f;
    nnc_to_blocked(NULL, n, x, (size_t)c * hw, c, hw, b, bs);
    for (int s = 0; s < n; s++)
        for (size_t p = 0; p < nnc_blocked_floats(c, hw); p++)
            if ((int)(p / (hw * NNC_CB)) * NNC_CB + (int)(p % NNC_CB) >= c) b[(size_t)s * bs + p] = 1e3f;
    return b;
}

static const char *isa_name(int isa) { return isa == NNC_ISA_AVX512 ? "avx512" : isa == NNC_ISA_AVX2 ? "avx2" : "c"; }

/* One case in every form (bias, residual, activation) at every isa and 1, 2, 3 threads. */
static void run_case(Rng *r, const BCase *t)
{
    static const struct {
        int bias, res, act;
    } forms[] = {
        {0, 0, NNC_ACT_NONE}, {1, 0, NNC_ACT_RELU}, {1, 1, NNC_ACT_RELU6},
        {1, 1, NNC_ACT_SIGMOID}, {0, 1, NNC_ACT_LEAKY_RELU}, {1, 1, NNC_ACT_NONE},
    };
    int oh = bout(t->h, t->kh, t->sh, t->ph, t->dh), ow = bout(t->w, t->kw, t->sw, t->pw, t->dw);
    size_t hw = (size_t)t->h * (size_t)t->w, ohw = (size_t)oh * (size_t)ow;
    size_t xs = (size_t)t->c * hw, ys = (size_t)t->k * ohw, wn = (size_t)t->k * (size_t)t->c * (size_t)t->kh * (size_t)t->kw;
    size_t bxs = nnc_blocked_floats(t->c, hw) + 37, bys = nnc_blocked_floats(t->k, ohw) + 21;  /* larger strides */
    size_t brs = nnc_blocked_floats(t->k, ohw) + 5, pn = nnc_pack_blocked_floats(t->k, t->c, t->kh, t->kw);
    float *x = rand_floats(r, (size_t)t->n * xs, 1.0f), *wt = rand_floats(r, wn, 0.5f), *wp = nan_floats(pn);
    float *bias = rand_floats(r, (size_t)t->k, 1.0f), *res = rand_floats(r, (size_t)t->n * ys, 1.0f);
    float *xb = blocked_garbage(x, t->n, t->c, hw, bxs), *rb = blocked_garbage(res, t->n, t->k, ohw, brs);
    float *y[3], *out = new_floats((size_t)t->n * ys);
    double *ref = new_doubles((size_t)t->n * ys);
    int list[3], ni = isas(list);
    char what[240];
    assert_true(oh >= 1 && ow >= 1);
    size_t ytotal = span(t->n, bys, nnc_blocked_floats(t->k, ohw));
    for (int q = 0; q < 3; q++) y[q] = new_floats(ytotal);
    nnc_pack_weights_blocked(wt, t->k, t->c, t->kh, t->kw, NULL, NULL, 0.0f, wp);
    for (size_t i = 0; i < pn; i++) assert_false(isnan(wp[i]));  /* every float written */
    for (size_t f = 0; f < sizeof forms / sizeof forms[0]; f++) {
        const float *b = forms[f].bias ? bias : NULL;
        ref_conv(t, x, wt, b, forms[f].res ? res : NULL, forms[f].act, oh, ow, ref);
        for (int s = 0; s < ni; s++) {
            for (int q = 0; q < 3; q++) {
                nnc_ctx ctx;
                ctx_for(&ctx, list[s], q + 1);
                for (size_t i = 0; i < ytotal; i++) y[q][i] = NAN;
                nnc_conv2d_blocked(&ctx, t->n, xb, bxs, t->c, t->h, t->w, wp, b, y[q], bys, t->k, oh, ow, t->kh, t->kw,
                                   t->sh, t->sw, t->ph, t->pw, t->dh, t->dw, forms[f].res ? rb : NULL, brs,
                                   forms[f].act, 0.125f);
                nnc_ctx_stop(&ctx);
            }
            if (list[s] == nnc_cpu_isa()) {  /* ctx NULL: one thread at the best isa, the same floats */
                float *y0 = nan_floats(ytotal);
                nnc_conv2d_blocked(NULL, t->n, xb, bxs, t->c, t->h, t->w, wp, b, y0, bys, t->k, oh, ow, t->kh, t->kw,
                                   t->sh, t->sw, t->ph, t->pw, t->dh, t->dw, forms[f].res ? rb : NULL, brs,
                                   forms[f].act, 0.125f);
                for (int i = 0; i < t->n; i++)
                    assert_memory_equal(y0 + (size_t)i * bys, y[0] + (size_t)i * bys,
                                        nnc_blocked_floats(t->k, ohw) * sizeof(float));
                free(y0);
            }
            snprintf(what, sizeof what,
                     "conv2d_blocked %s bias%d res%d %s n%d c%d %dx%d k%d %dx%d s%d,%d p%d,%d d%d,%d", isa_name(list[s]),
                     forms[f].bias, forms[f].res, act_names[forms[f].act], t->n, t->c, t->h, t->w, t->k, t->kh, t->kw,
                     t->sh, t->sw, t->ph, t->pw, t->dh, t->dw);
            for (int i = 0; i < t->n; i++) {  /* the samples' blocks; the gaps between them untouched */
                size_t used = nnc_blocked_floats(t->k, ohw);
                for (int q = 1; q < 3; q++)
                    if (memcmp(y[0] + (size_t)i * bys, y[q] + (size_t)i * bys, used * sizeof(float)) != 0)
                        fail_msg("%s: %d threads differ from 1", what, q + 1);
                for (size_t p = 0; p < used; p++) {
                    float v = y[0][(size_t)i * bys + p];
                    if ((int)(p / (ohw * NNC_CB)) * NNC_CB + (int)(p % NNC_CB) >= t->k && (v != 0.0f || signbit(v)))
                        fail_msg("%s: padding lane %zu of sample %d is %g, not +0", what, p, i, (double)v);
                }
                for (size_t p = used; p < bys && i < t->n - 1; p++)
                    if (!isnan(y[0][(size_t)i * bys + p])) fail_msg("%s: wrote past sample %d's blocks", what, i);
            }
            nnc_from_blocked(NULL, t->n, y[0], bys, t->k, ohw, out, ys);
            check_close(out, ref, (size_t)t->n * ys, what);
        }
    }
    for (int q = 0; q < 3; q++) free(y[q]);
    free(x), free(wt), free(wp), free(bias), free(res), free(xb), free(rb), free(out), free(ref);
}

static void test_conv2d_blocked(void **state)
{
    static const BCase cases[] = {
        /* n  c   h   w   k  kh kw sh sw ph pw dh dw */
        {1, 1, 7, 7, 1, 1, 1, 1, 1, 0, 0, 1, 1},      /* one channel in, one out: a plane as one row */
        {1, 3, 13, 11, 17, 3, 3, 1, 1, 1, 1, 1, 1},   /* c 3, k 17: two output blocks, the second of one lane */
        {3, 17, 13, 11, 24, 3, 3, 2, 2, 1, 1, 1, 1},  /* stride 2, batch 3 */
        {1, 24, 7, 7, 40, 1, 1, 1, 1, 0, 0, 1, 1},    /* 1x1: 49 pixels in tiles across rows, 3 output blocks */
        {3, 40, 13, 11, 17, 1, 1, 1, 1, 0, 0, 1, 1},  /* 1x1, 3 input blocks, batch 3 */
        {1, 3, 13, 11, 32, 5, 5, 1, 1, 2, 2, 1, 1},   /* 5x5 */
        {1, 17, 13, 11, 3, 7, 7, 2, 2, 3, 3, 1, 1},   /* 7x7 stride 2 padding 3 */
        {1, 24, 13, 11, 40, 1, 3, 1, 1, 0, 1, 1, 1},  /* 1x3 */
        {2, 17, 13, 11, 24, 3, 3, 1, 1, 2, 2, 2, 2},  /* dilation 2 */
        {1, 40, 1, 1, 17, 1, 1, 1, 1, 0, 0, 1, 1},    /* a 1x1 map */
        {1, 17, 1, 1, 24, 3, 3, 1, 1, 1, 1, 1, 1},    /* a 1x1 map under a padded 3x3: one tap */
        {1, 16, 7, 7, 32, 3, 3, 1, 1, 0, 0, 1, 1},    /* no padding, whole blocks */
        {1, 33, 30, 29, 48, 3, 3, 1, 1, 1, 1, 1, 1},  /* rows wider than a tile */
        {1, 24, 20, 21, 24, 1, 1, 2, 2, 0, 0, 1, 1},  /* 1x1 stride 2 */
        {1, 5, 9, 8, 20, 3, 2, 2, 1, 3, 0, 1, 2},     /* padding 3 > kernel: rows without a tap */
        {1, 3, 30, 30, 32, 3, 3, 2, 2, 1, 1, 1, 1},   /* a stem */
        {3, 64, 14, 14, 70, 1, 1, 1, 1, 0, 0, 1, 1},  /* 1x1, several chunks of columns a plane */
        {1, 24, 7, 7, 17, 3, 3, 1, 1, 3, 3, 1, 1},    /* padding 3 on 3x3: border pixels with no taps */
        {1, 17, 13, 11, 24, 3, 3, 3, 2, 1, 1, 1, 1},  /* strides 3 and 2 */
        {2, 5, 11, 13, 17, 2, 3, 2, 3, 0, 1, 1, 1},   /* a 2x3 kernel, column stride 3: the generic stride */
        {1, 40, 14, 14, 40, 3, 3, 1, 1, 1, 1, 3, 3},  /* dilation 3, 3 input and output blocks */
        {2, 100, 9, 8, 20, 7, 7, 1, 1, 3, 3, 1, 1},   /* 7 input blocks of 7x7 weights: the sum in parts */
        {1, 130, 5, 6, 33, 5, 5, 1, 1, 2, 2, 1, 1},   /* 9 blocks of 5x5: parts at AVX-512's 2 output blocks */
    };
    Rng r = {0xB10CULL};
    int list[3], ni = isas(list);
    (void)state;
    printf("conv2d_blocked at isa:");
    for (int s = 0; s < ni; s++) printf(" %s", isa_name(list[s]));
    printf("\n");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&r, &cases[i]);
}

#if NNC_X86
/* One tile of every width and blocks, at strides 1 and 2, with a left border
 * (ix0 < 0), partial sums (load) and a relu epilogue, through its instance
 * and through nnc_bconv_split over tables that lack widths (what generated
 * code runs when its NNC_BCONV_* masks lack a width): the same floats. */
static void split_case(Rng *r, const nnc_bconv_tile_fn *all, int maxnx, int nob, int stride, const int *keep)
{
    enum { C = 20, H = 3, W = 40, KH = 3, KW = 3 };
    int k = nob * NNC_CB - 3, cb = (C + NNC_CB - 1) / NNC_CB, ow = (W + 2 - KW) / stride + 1;
    size_t plane = (size_t)H * W * NNC_CB, oplane = (size_t)H * (size_t)ow * NNC_CB;
    size_t pn = nnc_pack_blocked_floats(k, C, KH, KW), yn = (size_t)nob * oplane;
    float *x = rand_floats(r, (size_t)cb * plane, 1.0f), *w = rand_floats(r, (size_t)k * C * KH * KW, 0.5f);
    float *wp = new_floats(pn), *res = rand_floats(r, yn, 1.0f), *y0 = rand_floats(r, yn, 1.0f), *y1 = new_floats(yn);
    float bias[2 * NNC_CB] = {0};
    nnc_bconv_tile_fn some[NNC_BCONV_NX_AVX512 + 1] = {NULL};
    for (int i = 0; keep[i]; i++)
        if (keep[i] <= maxnx) some[keep[i]] = all[keep[i]];
    for (int i = 0; i < 2 * NNC_CB; i++) bias[i] = (float)i * 0.01f;
    nnc_pack_weights_blocked(w, k, C, KH, KW, NULL, NULL, 0.0f, wp);
    for (int nx = 1; nx <= maxnx; nx++)
        for (int load = 0; load < 2; load++) {
            nnc_bconv_tile t = {0};
            t.x = x, t.wt = wp, t.bias = bias, t.res = res + (size_t)ow * NNC_CB, t.plane = plane, t.oplane = oplane;
            t.wob = (size_t)cb * KH * KW * NNC_CB * NNC_CB, t.cb = cb, t.c = C, t.iw = W, t.kh = KH, t.kw = KW;
            t.sx = stride * NNC_CB, t.sw = stride, t.dw = 1, t.dh = 1, t.iy0 = 0, t.ky0 = 0, t.ky1 = KH, t.ix0 = -1;
            t.nob = nob, t.nx = nx, t.act = NNC_ACT_RELU, t.lanes = k - (nob - 1) * NNC_CB, t.ib0 = load, t.ib1 = cb;
            t.load = load, t.fin = 1;
            memcpy(y1, y0, yn * sizeof(float));
            t.y = y0 + (size_t)ow * NNC_CB;
            all[nx](&t);
            t.y = y1 + (size_t)ow * NNC_CB;
            nnc_bconv_split(&t, some);
            if (memcmp(y0, y1, yn * sizeof(float)) != 0)
                fail_msg("nnc_bconv_split: %d blocks, %d pixels, stride %d, load %d differ", nob, nx, stride, load);
        }
    free(x), free(w), free(wp), free(res), free(y0), free(y1);
}

static void test_bconv_split(void **state)
{
    static const int keeps[][4] = {{1, 0}, {1, 5, 0}, {1, 7, 11, 0}};
    Rng r = {0x5E17ULL};
    (void)state;
    for (int s = 1; s <= 2; s++)
        for (size_t q = 0; q < sizeof keeps / sizeof keeps[0]; q++) {
            if (nnc_cpu_isa() >= NNC_ISA_AVX512)
                for (int nob = 1; nob <= 2; nob++)
                    split_case(&r, nnc_bconv512_fns[nob - 1], NNC_BCONV_NX_AVX512, nob, s, keeps[q]);
            if (nnc_cpu_isa() >= NNC_ISA_AVX2) split_case(&r, nnc_bconv256_fns, NNC_BCONV_NX_AVX2, 1, s, keeps[q]);
        }
}
#endif

/* Folding a batchnorm while packing is nnc_bn_fold_weight, bit for bit, then packing. */
static void test_pack_blocked_fold(void **state)
{
    static const int shapes[][4] = {{17, 3, 3, 3}, {40, 24, 1, 1}, {1, 1, 1, 1}, {24, 17, 1, 3}};
    Rng r = {0xF01DULL};
    (void)state;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        int k = shapes[i][0], c = shapes[i][1], kh = shapes[i][2], kw = shapes[i][3];
        size_t wn = (size_t)k * (size_t)c * (size_t)kh * (size_t)kw, pn = nnc_pack_blocked_floats(k, c, kh, kw);
        float *w = rand_floats(&r, wn, 1.0f), *gamma = rand_floats(&r, (size_t)k, 1.0f);
        float *var = rand_floats(&r, (size_t)k, 1.0f), *folded = new_floats(wn);
        float *p1 = nan_floats(pn), *p2 = nan_floats(pn);
        for (int o = 0; o < k; o++) var[o] = var[o] * var[o] + 0.1f;
        nnc_bn_fold_weight(w, k, 1, (long)(wn / (size_t)k), k, gamma, var, 1e-5f, folded);
        nnc_pack_weights_blocked(folded, k, c, kh, kw, NULL, NULL, 0.0f, p1);
        nnc_pack_weights_blocked(w, k, c, kh, kw, gamma, var, 1e-5f, p2);
        assert_memory_equal(p1, p2, pn * sizeof(float));
        /* the layout: element (o, i, ky, kx) where the header says; zero past k and c */
        for (int o = 0; o < (k + 15) / 16 * 16; o++)
            for (int ci = 0; ci < (c + 15) / 16 * 16; ci++)
                for (int t = 0; t < kh * kw; t++) {
                    size_t d = ((((size_t)(o / 16) * (size_t)((c + 15) / 16) + (size_t)(ci / 16)) * (size_t)(kh * kw) +
                                 (size_t)t) * 16 + (size_t)(ci % 16)) * 16 + (size_t)(o % 16);
                    float want = o < k && ci < c ? folded[((size_t)o * (size_t)c + (size_t)ci) * (size_t)(kh * kw) + (size_t)t]
                                                 : 0.0f;
                    assert_true(d < pn);
                    assert_memory_equal(&p1[d], &want, sizeof(float));
                }
        free(w), free(gamma), free(var), free(folded), free(p1), free(p2);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pack_blocked_fold),
        cmocka_unit_test(test_conv2d_blocked),
#if NNC_X86
        cmocka_unit_test(test_bconv_split),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
