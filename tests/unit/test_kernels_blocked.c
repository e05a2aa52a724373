/* test_kernels_blocked.c: the layout itself and the stem
 * (runtime/snippets/kernels_blocked.c): nnc_to_blocked / nnc_from_blocked
 * (every element where the layout says, padding lanes zero, batch strides
 * kept, a round trip the identity), and nnc_conv2d_nchw_blocked, a
 * convolution of an NCHW image of a few channels into NCHW16c, against a
 * double-precision direct convolution written from the definition: input
 * channels 1, 3 and 5, output channels 3, 16, 20 and 32, kernels 1x1 to
 * 7x7, strides 1 and 2, padding 0 to 3, dilation 2, maps 1x1 to 13x11 and
 * wider than a tile of 8; with and without bias, residual (blocked, its
 * padding lanes garbage), relu, relu6, sigmoid; batch 1 and 3 with batch
 * strides larger than a sample; at every instruction set this CPU runs and
 * 1, 2 and 3 threads, bit-identical; the output's padding lanes exactly +0;
 * folding a batchnorm while packing equals packing the folded weight. */
#define NNC_PAR_MIN_WORK 0.0 /* split every loop, however small: 1, 2 and 3 threads must agree */
#include "kernel_test.h"

#define KB_COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void test_reorder(void **state)
{
    (void)state;
    Rng r = {0xB10CULL};
    static const int cs[] = {1, 3, 16, 17, 40};
    for (size_t i = 0; i < KB_COUNT(cs); i++) {
        int c = cs[i], n = 2, cb = (c + NNC_CB - 1) / NNC_CB;
        size_t hw = 13, xs = (size_t)c * hw + 3, bs = nnc_blocked_floats(c, hw) + 5;
        float *x = rand_floats(&r, (size_t)n * xs, 1.0f), *b = nan_floats((size_t)n * bs), *back = nan_floats((size_t)n * xs);
        nnc_ctx ctx;
        ctx_for(&ctx, nnc_cpu_isa(), 2);
        nnc_to_blocked(&ctx, n, x, xs, c, hw, b, bs);
        for (int s = 0; s < n; s++)
            for (int k = 0; k < cb * NNC_CB; k++)
                for (size_t p = 0; p < hw; p++) {
                    float v = b[(size_t)s * bs + ((size_t)(k / NNC_CB) * hw + p) * NNC_CB + (size_t)(k % NNC_CB)];
                    if (k < c) assert_true(v == x[(size_t)s * xs + (size_t)k * hw + p]);
                    else assert_true(v == 0.0f && !signbit(v));
                }
        nnc_from_blocked(&ctx, n, b, bs, c, hw, back, xs);
        for (int s = 0; s < n; s++) {
            assert_memory_equal(back + (size_t)s * xs, x + (size_t)s * xs, (size_t)c * hw * sizeof(float));
            for (size_t p = (size_t)c * hw; p < xs; p++) assert_true(isnan(back[(size_t)s * xs + p]));  /* gaps untouched */
        }
        nnc_ctx_stop(&ctx);
        free(x), free(b), free(back);
    }
}

typedef struct {
    int n, c, h, w, k, kh, kw, sh, sw, ph, pw, dh, dw;
} SCase;

static int sout(int in, int k, int s, int p, int d) { return (in + 2 * p - d * (k - 1) - 1) / s + 1; }

static void ref_stem(const SCase *t, const float *x, size_t xs, const float *wt, const float *bias, const float *res, int act,
                     int oh, int ow, double *ref)
{
    for (int i = 0; i < t->n; i++)
        for (int ko = 0; ko < t->k; ko++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    double s = 0.0;
                    size_t o = (((size_t)i * (size_t)t->k + (size_t)ko) * (size_t)oh + (size_t)oy) * (size_t)ow + (size_t)ox;
                    for (int ci = 0; ci < t->c; ci++)
                        for (int a = 0; a < t->kh; a++)
                            for (int b = 0; b < t->kw; b++) {
                                int iy = oy * t->sh - t->ph + a * t->dh, ix = ox * t->sw - t->pw + b * t->dw;
                                if (iy < 0 || iy >= t->h || ix < 0 || ix >= t->w) continue;
                                s += (double)x[(size_t)i * xs + ((size_t)ci * (size_t)t->h + (size_t)iy) * (size_t)t->w +
                                               (size_t)ix] *
                                     wt[(((size_t)ko * (size_t)t->c + (size_t)ci) * (size_t)t->kh + (size_t)a) *
                                            (size_t)t->kw + (size_t)b];
                            }
                    if (bias) s += bias[ko];
                    if (res) s += res[o];
                    ref[o] = act_ref(act, s);
                }
}

static void stem_case(Rng *r, const SCase *t)
{
    static const struct {
        int bias, res, act;
    } forms[] = {{0, 0, NNC_ACT_NONE}, {1, 0, NNC_ACT_RELU6}, {1, 1, NNC_ACT_RELU}, {1, 1, NNC_ACT_SIGMOID}};
    int oh = sout(t->h, t->kh, t->sh, t->ph, t->dh), ow = sout(t->w, t->kw, t->sw, t->pw, t->dw), list[3], ni = isas(list);
    size_t hw = (size_t)t->h * (size_t)t->w, ohw = (size_t)oh * (size_t)ow, used = nnc_blocked_floats(t->k, ohw);
    size_t xs = (size_t)t->c * hw + 7, ys = (size_t)t->k * ohw, bys = used + 11, brs = used + 3;
    size_t wn = (size_t)t->k * (size_t)t->c * (size_t)t->kh * (size_t)t->kw, pn = nnc_pack_nchw_blocked_floats(t->k, t->c, t->kh, t->kw);
    float *x = rand_floats(r, (size_t)t->n * xs, 1.0f), *wt = rand_floats(r, wn, 0.5f), *wp = nan_floats(pn);
    float *bias = rand_floats(r, (size_t)t->k, 1.0f), *res = rand_floats(r, (size_t)t->n * ys, 1.0f);
    float *rb = nan_floats((size_t)t->n * brs), *out = nan_floats((size_t)t->n * ys), *y[3];
    double *ref = new_doubles((size_t)t->n * ys);
    char what[200];
    for (int q = 0; q < 3; q++) y[q] = nan_floats((size_t)t->n * bys);
    nnc_to_blocked(NULL, t->n, res, ys, t->k, ohw, rb, brs);
    for (int s = 0; s < t->n; s++)  /* the residual's padding lanes: garbage that must not reach an output */
        for (size_t p = 0; p < used; p++)
            if ((int)(p / (ohw * NNC_CB)) * NNC_CB + (int)(p % NNC_CB) >= t->k) rb[(size_t)s * brs + p] = 1e3f;
    nnc_pack_nchw_blocked(wt, t->k, t->c, t->kh, t->kw, NULL, NULL, 0.0f, wp);
    for (size_t i = 0; i < pn; i++) assert_false(isnan(wp[i]));  /* every float written */
    for (size_t f = 0; f < KB_COUNT(forms); f++) {
        const float *b = forms[f].bias ? bias : NULL;
        ref_stem(t, x, xs, wt, b, forms[f].res ? res : NULL, forms[f].act, oh, ow, ref);
        for (int s = 0; s < ni; s++) {
            for (int q = 0; q < 3; q++) {
                nnc_ctx ctx;
                ctx_for(&ctx, list[s], q + 1);
                for (size_t i = 0; i < (size_t)t->n * bys; i++) y[q][i] = NAN;
                nnc_conv2d_nchw_blocked(&ctx, t->n, x, xs, t->c, t->h, t->w, wp, b, y[q], bys, t->k, oh, ow, t->kh,
                                        t->kw, t->sh, t->sw, t->ph, t->pw, t->dh, t->dw, forms[f].res ? rb : NULL, brs,
                                        forms[f].act, 0.0f);
                nnc_ctx_stop(&ctx);
            }
            snprintf(what, sizeof what, "conv2d_nchw_blocked isa %d bias%d res%d %s n%d c%d %dx%d k%d %dx%d s%d p%d d%d",
                     list[s], forms[f].bias, forms[f].res, act_names[forms[f].act], t->n, t->c, t->h, t->w, t->k,
                     t->kh, t->kw, t->sh, t->ph, t->dh);
            for (int i = 0; i < t->n; i++) {
                for (int q = 1; q < 3; q++)
                    if (memcmp(y[0] + (size_t)i * bys, y[q] + (size_t)i * bys, used * sizeof(float)) != 0)
                        fail_msg("%s: %d threads differ from 1", what, q + 1);
                for (size_t p = 0; p < used; p++) {
                    float v = y[0][(size_t)i * bys + p];
                    if ((int)(p / (ohw * NNC_CB)) * NNC_CB + (int)(p % NNC_CB) >= t->k && (v != 0.0f || signbit(v)))
                        fail_msg("%s: padding lane %zu of sample %d is %g, not +0", what, p, i, (double)v);
                }
                for (size_t p = used; p < bys; p++)
                    if (!isnan(y[0][(size_t)i * bys + p])) fail_msg("%s: wrote past sample %d's blocks", what, i);
            }
            nnc_from_blocked(NULL, t->n, y[0], bys, t->k, ohw, out, ys);
            check_close(out, ref, (size_t)t->n * ys, what);
        }
    }
    for (int q = 0; q < 3; q++) free(y[q]);
    free(x), free(wt), free(wp), free(bias), free(res), free(rb), free(out), free(ref);
}

static void test_stem(void **state)
{
    (void)state;
    Rng r = {0x57E3ULL};
    static const SCase cases[] = {
        /* n  c   h   w   k  kh kw sh sw ph pw dh dw */
        {1, 3, 13, 11, 32, 3, 3, 2, 2, 1, 1, 1, 1},  /* MobileNet's stem, odd map */
        {1, 3, 19, 21, 16, 7, 7, 2, 2, 3, 3, 1, 1},  /* ResNet's 7x7 stem */
        {3, 1, 9, 10, 20, 5, 5, 1, 1, 2, 2, 1, 1},   /* LeNet-like, batch 3, k not a multiple of 16 */
        {1, 5, 7, 7, 3, 3, 3, 1, 1, 0, 0, 2, 2},     /* dilation 2, no padding, 3 output channels */
        {2, 3, 1, 1, 17, 1, 1, 1, 1, 0, 0, 1, 1},    /* a 1x1 map */
        {1, 2, 6, 30, 16, 1, 3, 1, 2, 0, 1, 1, 1},   /* 1x3 window, stride (1, 2): tiles of 8 and a tail */
    };
    for (size_t i = 0; i < KB_COUNT(cases); i++) stem_case(&r, &cases[i]);
}

/* Folding a batchnorm while packing gives the floats of packing the folded weight. */
static void test_stem_fold(void **state)
{
    (void)state;
    Rng r = {0xF01DULL};
    int k = 20, c = 3, kh = 3, kw = 3;
    size_t wn = (size_t)k * (size_t)c * (size_t)kh * (size_t)kw, pn = nnc_pack_nchw_blocked_floats(k, c, kh, kw);
    float *w = rand_floats(&r, wn, 1.0f), *gamma = rand_floats(&r, (size_t)k, 1.0f), *var = rand_floats(&r, (size_t)k, 1.0f);
    float *folded = nan_floats(wn), *p1 = nan_floats(pn), *p2 = nan_floats(pn);
    for (int i = 0; i < k; i++) var[i] = var[i] * var[i] + 0.1f;
    nnc_bn_fold_weight(w, k, 1, (long)(c * kh * kw), k, gamma, var, 1e-5f, folded);
    nnc_pack_nchw_blocked(folded, k, c, kh, kw, NULL, NULL, 0.0f, p1);
    nnc_pack_nchw_blocked(w, k, c, kh, kw, gamma, var, 1e-5f, p2);
    assert_memory_equal(p1, p2, pn * sizeof(float));
    free(w), free(gamma), free(var), free(folded), free(p1), free(p2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reorder),
        cmocka_unit_test(test_stem),
        cmocka_unit_test(test_stem_fold),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
