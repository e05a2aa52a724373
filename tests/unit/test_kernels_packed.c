/* test_kernels_packed.c: the GEMM on packed weights and the convolution on it
 * (runtime/snippets/kernels_parallel.c, kernels_layers_mt.c nnc_conv2d_packed),
 * depthwise + pointwise on it, and the layers split over the threads,
 * against double-precision references written from the definitions, at every
 * instruction set this CPU runs (plain C always; AVX2 and AVX-512 when
 * present: the test says which it ran) and with 1 and 2 threads, whose
 * outputs must be bit-identical. Shapes hit the edges of the blocking: rows
 * not a multiple of the 8-row panel, columns not a multiple of the panel
 * width, sums shorter and longer than a block of 256 steps. */
#define NNC_PAR_MIN_WORK 0.0  /* split every loop, however small: 1 and 2 threads must agree */
#include "kernel_test.h"
#include <time.h>

static void test_pack_weights(void **state)
{
    Rng r = {0x5EEDULL};
    (void)state;
    for (int M = 1; M <= 19; M += 3)
        for (long K = 1; K <= 40; K += 13) {
            float *w = rand_floats(&r, (size_t)M * (size_t)K, 1.0f), *p = nan_floats((size_t)M * (size_t)K);
            float *gamma = rand_floats(&r, (size_t)M, 1.0f), *var = rand_floats(&r, (size_t)M, 1.0f);
            float *folded = new_floats((size_t)M * (size_t)K), *pf = nan_floats((size_t)M * (size_t)K);
            for (int i = 0; i < M; i++) var[i] = var[i] * var[i] + 0.1f;
            nnc_pack_weights(w, M, K, NULL, NULL, 0.0f, p);
            for (int i = 0; i < M; i++) {
                int i0 = i / NNC_MR * NNC_MR, rows = M - i0 < NNC_MR ? M - i0 : NNC_MR;
                for (long k = 0; k < K; k++)
                    assert_true(p[(size_t)i0 * (size_t)K + (size_t)k * (size_t)rows + (size_t)(i - i0)] ==
                                w[(size_t)i * (size_t)K + (size_t)k]);
            }
            /* folding while packing is bn_fold_weight, bit for bit, then packing */
            nnc_bn_fold_weight(w, M, 1, K, M, gamma, var, 1e-5f, folded);
            nnc_pack_weights(folded, M, K, NULL, NULL, 0.0f, p);
            nnc_pack_weights(w, M, K, gamma, var, 1e-5f, pf);
            assert_memory_equal(p, pf, (size_t)M * (size_t)K * sizeof(float));
            free(w), free(p), free(gamma), free(var), free(folded), free(pf);
        }
}

/* One GEMM case at every isa and 1, 2 and 3 threads (each splits C its own
 * way: nnc_gemm_split). */
static void run_gemm(Rng *r, int M, int N, long K, int with_bias, int with_res, int act, int act_rows)
{
    size_t mn = (size_t)M * (size_t)N;
    float *a = rand_floats(r, (size_t)M * (size_t)K, 1.0f), *ap = new_floats((size_t)M * (size_t)K);
    float *b = rand_floats(r, (size_t)K * (size_t)N, 1.0f), *bias = with_bias ? rand_floats(r, (size_t)M, 1.0f) : NULL;
    float *res = with_res ? rand_floats(r, mn, 1.0f) : NULL, *c1 = nan_floats(mn), *c2 = nan_floats(mn);
    float *c3 = nan_floats(mn);
    double *ref = new_doubles(mn);
    int list[3], n = isas(list);
    char what[160];
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = bias ? bias[i] : 0.0;
            for (long k = 0; k < K; k++) s += (double)a[(size_t)i * (size_t)K + (size_t)k] * b[(size_t)k * (size_t)N + (size_t)j];
            if (res) s += res[(size_t)i * (size_t)N + (size_t)j];
            ref[(size_t)i * (size_t)N + (size_t)j] = i < act_rows ? act_ref(act, s) : s;
        }
    nnc_pack_weights(a, M, K, NULL, NULL, 0.0f, ap);
    for (int s = 0; s < n; s++) {
        nnc_ctx one, two, three;
        ctx_for(&one, list[s], 1);
        ctx_for(&two, list[s], 2);
        ctx_for(&three, list[s], 3);
        snprintf(what, sizeof what, "gemm_packed isa %d M%d N%d K%ld bias%d res%d act %s rows %d", list[s], M, N, K,
                 with_bias, with_res, act_names[act], act_rows);
        nnc_gemm_packed(&one, M, N, K, ap, b, (size_t)N, c1, (size_t)N, bias, res, act, 0.125f, act_rows);
        check_close(c1, ref, mn, what);
        nnc_gemm_packed(&two, M, N, K, ap, b, (size_t)N, c2, (size_t)N, bias, res, act, 0.125f, act_rows);
        assert_memory_equal(c1, c2, mn * sizeof(float));  /* 1 and 2 threads: bit-identical */
        nnc_gemm_packed(&three, M, N, K, ap, b, (size_t)N, c3, (size_t)N, bias, res, act, 0.125f, act_rows);
        assert_memory_equal(c1, c3, mn * sizeof(float));
        nnc_ctx_stop(&one);
        nnc_ctx_stop(&two);
        nnc_ctx_stop(&three);
    }
    free(a), free(ap), free(b), free(bias), free(res), free(c1), free(c2), free(c3), free(ref);
}

static void test_gemm_packed(void **state)
{
    static const int Ms[] = {1, 3, 8, 9, 17, 64, 70};
    static const int Ns[] = {1, 5, 16, 31, 32, 33, 97};
    static const long Ks[] = {1, 7, 256, 257, 600};
    Rng r = {0xBEEFULL};
    (void)state;
    for (size_t i = 0; i < sizeof Ms / sizeof Ms[0]; i++)
        for (size_t j = 0; j < sizeof Ns / sizeof Ns[0]; j++)
            for (size_t k = 0; k < sizeof Ks / sizeof Ks[0]; k++) {
                int v = (int)(i + j + k);
                /* relu and relu6 are applied inside the kernel, leaky_relu after it */
                static const int acts[] = {NNC_ACT_RELU, NNC_ACT_NONE, NNC_ACT_RELU6, NNC_ACT_NONE, NNC_ACT_LEAKY_RELU};
                run_gemm(&r, Ms[i], Ns[j], Ks[k], v % 2, v % 3 == 0, acts[v % 5], v % 7 == 0 ? Ms[i] / 2 : Ms[i]);
            }
    run_gemm(&r, 130, 70, 1100, 1, 1, NNC_ACT_RELU, 130);  /* rows split in two, several sum blocks */
    run_gemm(&r, 130, 300, 600, 1, 0, NNC_ACT_RELU, 100);  /* columns split, several groups of panels a task */
    run_gemm(&r, 600, 40, 300, 1, 1, NNC_ACT_NONE, 600);   /* 3 chunks of 256 rows: 4 at 2 threads, 3 at 3 */
    run_gemm(&r, 520, 300, 40, 0, 0, NNC_ACT_RELU, 520);   /* 3 chunks, the last one short */
}

typedef struct {
    int n, c, h, w, k, kh, kw, sh, sw, ph, pw, dh, dw;
} PCase;

static int pconv_out(int in, int k, int s, int p, int d) { return (in + 2 * p - d * (k - 1) - 1) / s + 1; }

static void ref_pconv(const PCase *t, const float *x, const float *wt, const float *bias, const float *res, int act,
                      int oh, int ow, double *ref)
{
    for (int i = 0; i < t->n; i++)
        for (int ko = 0; ko < t->k; ko++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    double s = bias ? bias[ko] : 0.0;
                    size_t o = (((size_t)i * (size_t)t->k + (size_t)ko) * (size_t)oh + (size_t)oy) * (size_t)ow + (size_t)ox;
                    for (int ci = 0; ci < t->c; ci++)
                        for (int ki = 0; ki < t->kh; ki++)
                            for (int kj = 0; kj < t->kw; kj++) {
                                int iy = oy * t->sh - t->ph + ki * t->dh, ix = ox * t->sw - t->pw + kj * t->dw;
                                if (iy < 0 || iy >= t->h || ix < 0 || ix >= t->w) continue;
                                s += (double)x[(((size_t)i * (size_t)t->c + (size_t)ci) * (size_t)t->h + (size_t)iy) * (size_t)t->w + (size_t)ix] *
                                     wt[(((size_t)ko * (size_t)t->c + (size_t)ci) * (size_t)t->kh + (size_t)ki) * (size_t)t->kw + (size_t)kj];
                            }
                    if (res) s += res[o];
                    ref[o] = act_ref(act, s);
                }
}

/* nnc_conv2d_packed against the reference, at every isa and 1 and 2 threads,
 * with and without bias, residual + relu, and a prologue. */
static void run_pconv(Rng *r, const PCase *t)
{
    int oh = pconv_out(t->h, t->kh, t->sh, t->ph, t->dh), ow = pconv_out(t->w, t->kw, t->sw, t->pw, t->dw);
    size_t xs = (size_t)t->c * (size_t)t->h * (size_t)t->w, ys = (size_t)t->k * (size_t)oh * (size_t)ow;
    size_t wn = (size_t)t->k * (size_t)t->c * (size_t)t->kh * (size_t)t->kw;
    size_t s1 = nnc_conv2d_packed_scratch(t->n, t->c, t->h, t->w, t->k, t->kh, t->kw, t->sh, t->sw, t->ph, t->pw, oh,
                                          ow, 1);
    size_t s0 = nnc_conv2d_packed_scratch(t->n, t->c, t->h, t->w, t->k, t->kh, t->kw, t->sh, t->sw, t->ph, t->pw, oh,
                                          ow, 0);
    float *x = rand_floats(r, t->n * xs, 1.0f), *wt = rand_floats(r, wn, 1.0f), *wp = new_floats(wn);
    float *bias = rand_floats(r, (size_t)t->k, 1.0f), *res = rand_floats(r, t->n * ys, 1.0f);
    float *scale = rand_floats(r, (size_t)t->c, 1.0f), *shift = rand_floats(r, (size_t)t->c, 1.0f);
    float *xp = new_floats(t->n * xs), *scratch = nan_floats((s0 > s1 ? s0 : s1) + 1);
    float *y1 = nan_floats(t->n * ys), *y2 = nan_floats(t->n * ys);
    double *ref = new_doubles(t->n * ys), *refp = new_doubles(t->n * ys);
    int list[3], ni = isas(list);
    char what[200];
    for (size_t i = 0; i < t->n * xs; i++) {
        size_t ch = i / ((size_t)t->h * (size_t)t->w) % (size_t)t->c;
        float v = x[i] * scale[ch] + shift[ch];
        xp[i] = v < 0.0f ? 0.0f : v;
    }
    nnc_pack_weights(wt, t->k, (long)wn / t->k, NULL, NULL, 0.0f, wp);
    for (int s = 0; s < ni; s++)
        for (int form = 0; form < 3; form++) {
            nnc_ctx one, two;
            const float *rr = form == 1 ? res : NULL, *sc = form == 2 ? scale : NULL, *sh = form == 2 ? shift : NULL;
            const float *b = form == 0 ? NULL : bias;
            int act = form == 1 ? NNC_ACT_RELU : NNC_ACT_NONE;
            ctx_for(&one, list[s], 1);
            ctx_for(&two, list[s], 2);
            snprintf(what, sizeof what, "conv2d_packed isa %d form %d n%d c%d %dx%d k%d %dx%d s%d,%d p%d,%d d%d,%d",
                     list[s], form, t->n, t->c, t->h, t->w, t->k, t->kh, t->kw, t->sh, t->sw, t->ph, t->pw, t->dh, t->dw);
            ref_pconv(t, form == 2 ? xp : x, wt, b, rr, act, oh, ow, form == 2 ? refp : ref);
            nnc_conv2d_packed(&one, t->n, x, xs, t->c, t->h, t->w, wp, b, y1, ys, t->k, oh, ow, t->kh, t->kw, t->sh,
                              t->sw, t->ph, t->pw, t->dh, t->dw, 1, scratch, rr, ys, act, 0.0f, t->k, sc, sh,
                              NNC_ACT_RELU, 0.0f);
            check_close(y1, form == 2 ? refp : ref, t->n * ys, what);
            nnc_conv2d_packed(&two, t->n, x, xs, t->c, t->h, t->w, wp, b, y2, ys, t->k, oh, ow, t->kh, t->kw, t->sh,
                              t->sw, t->ph, t->pw, t->dh, t->dw, 1, scratch, rr, ys, act, 0.0f, t->k, sc, sh,
                              NNC_ACT_RELU, 0.0f);
            assert_memory_equal(y1, y2, t->n * ys * sizeof(float));
            if (form == 2)  /* with a prologue, blocks of samples give each sample's own floats */
                for (int i = 0; i < t->n; i++) {
                    nnc_conv2d_packed(&two, 1, x + (size_t)i * xs, xs, t->c, t->h, t->w, wp, b, y2, ys, t->k, oh, ow,
                                      t->kh, t->kw, t->sh, t->sw, t->ph, t->pw, t->dh, t->dw, 1, scratch, NULL, ys,
                                      act, 0.0f, t->k, sc, sh, NNC_ACT_RELU, 0.0f);
                    assert_memory_equal(y1 + (size_t)i * ys, y2, ys * sizeof(float));
                }
            nnc_ctx_stop(&one);
            nnc_ctx_stop(&two);
        }
    free(x), free(wt), free(wp), free(bias), free(res), free(scale), free(shift), free(xp), free(scratch);
    free(y1), free(y2), free(ref), free(refp);
}

static void test_conv2d_packed(void **state)
{
    static const PCase cases[] = {
        /* n  c   h   w   k  kh kw sh sw ph pw dh dw */
        {1, 3, 17, 15, 8, 7, 7, 2, 2, 3, 3, 1, 1},    /* a stem */
        {2, 4, 10, 9, 13, 3, 3, 1, 1, 2, 2, 2, 2},    /* dilation, 13 channels: a short panel */
        {3, 8, 6, 7, 5, 1, 1, 1, 1, 0, 0, 1, 1},      /* 1x1: the GEMM reads x; samples in blocks */
        {2, 8, 9, 7, 9, 1, 1, 2, 2, 0, 0, 1, 1},      /* 1x1 stride 2 */
        {1, 2, 12, 13, 3, 3, 5, 2, 1, 1, 2, 1, 1},    /* non-square */
        {1, 64, 14, 14, 70, 3, 3, 1, 1, 1, 1, 1, 1},  /* a ResNet layer in small, K = 576 > 256 */
        {2, 33, 40, 40, 17, 3, 3, 1, 1, 1, 1, 1, 1},  /* one sample a GEMM, 1600 columns */
        {16, 12, 7, 7, 19, 1, 1, 1, 1, 0, 0, 1, 1},   /* blocks of 8 + 8 samples; the prologue fills the matrix */
        {13, 5, 5, 6, 11, 3, 3, 1, 1, 1, 1, 1, 1},    /* blocks of 13 samples of 5x6, 3x3: prologue, then im2col */
        {3, 6, 30, 30, 9, 3, 3, 2, 2, 1, 1, 1, 1},    /* 15x15 maps: blocks of 3 */
    };
    Rng r = {0xC0DEULL};
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_pconv(&r, &cases[i]);
    for (int i = 0; i < 40; i++) {
        PCase t;
        t.n = rng_int(&r, 1, 3), t.c = rng_int(&r, 2, 9), t.k = rng_int(&r, 1, 20);
        t.kh = rng_int(&r, 1, 4), t.kw = rng_int(&r, 1, 4), t.sh = rng_int(&r, 1, 3), t.sw = rng_int(&r, 1, 3);
        t.dh = rng_int(&r, 1, 2), t.dw = rng_int(&r, 1, 2), t.ph = rng_int(&r, 0, 2), t.pw = rng_int(&r, 0, 2);
        t.h = t.dh * (t.kh - 1) + 1 + rng_int(&r, 0, 12);
        t.w = t.dw * (t.kw - 1) + 1 + rng_int(&r, 0, 12);
        run_pconv(&r, &t);
    }
}

/* nnc_dwpw_packed against nnc_dwpw on the same weights (its pointwise GEMM
 * rounds differently: within the tolerance), 1 and 2 threads bit-identical,
 * and batch n (blocks of samples for small maps) bit-identical to each
 * sample alone (tiles of rows);
 * nnc_linear_mt against nnc_linear, bit-identical (each output is the same
 * dot product whichever block it falls in). */
static void test_dwpw_and_linear(void **state)
{
    static const int shapes[][8] = {
        /* c  h   w   k  stride pad tile n */
        {5, 9, 11, 7, 1, 1, 2, 2},
        {16, 14, 14, 24, 2, 1, 3, 1},
        {32, 7, 7, 70, 1, 1, 7, 3},
        {3, 5, 4, 9, 2, 0, 1, 2},
        {13, 6, 5, 17, 1, 1, 2, 16},  /* blocks of 8 + 8 samples */
        {9, 15, 13, 10, 2, 1, 3, 5},  /* 8x7 maps, stride 2: one block of 5 */
        {4, 24, 24, 6, 1, 1, 5, 3},   /* 576 pixels: tiles of rows, a sample per thread, one left over */
        {6, 50, 46, 5, 2, 1, 4, 5},   /* 25x23, stride 2: the same */
    };
    Rng r = {0xD00DULL};
    int list[3], ni = isas(list);
    (void)state;
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        int c = shapes[t][0], h = shapes[t][1], w = shapes[t][2], k = shapes[t][3], st = shapes[t][4];
        int pd = shapes[t][5], tile = shapes[t][6], n = shapes[t][7];
        int oh = (h + 2 * pd - 3) / st + 1, ow = (w + 2 * pd - 3) / st + 1;
        size_t xs = (size_t)c * h * w, ys = (size_t)k * oh * ow;
        float *x = rand_floats(&r, n * xs, 1.0f), *dwt = rand_floats(&r, (size_t)c * 9, 1.0f);
        float *dwb = rand_floats(&r, (size_t)c, 1.0f), *pwt = rand_floats(&r, (size_t)k * c, 1.0f);
        float *pwp = new_floats((size_t)k * c), *pwb = rand_floats(&r, (size_t)k, 1.0f);
        float *res = rand_floats(&r, n * ys, 1.0f), *want = nan_floats(n * ys), *y1 = nan_floats(n * ys);
        float *y2 = nan_floats(n * ys), *scratch = nan_floats(nnc_dwpw_packed_scratch(n, c, k, oh, ow, tile));
        double *ref = new_doubles(n * ys);
        nnc_pack_weights(pwt, k, c, NULL, NULL, 0.0f, pwp);
        nnc_dwpw(n, x, xs, c, h, w, dwt, dwb, 3, 3, st, st, pd, pd, 1, 1, NNC_ACT_RELU6, 0.0f, pwt, pwb, want, ys, k,
                 oh, ow, res, NNC_ACT_NONE, 0.0f, tile, scratch);
        for (size_t i = 0; i < n * ys; i++) ref[i] = want[i];
        for (int s = 0; s < ni; s++) {
            nnc_ctx one, two;
            char what[96];
            ctx_for(&one, list[s], 1);
            ctx_for(&two, list[s], 2);
            snprintf(what, sizeof what, "dwpw_packed isa %d case %d", list[s], (int)t);
            nnc_dwpw_packed(&one, n, x, xs, c, h, w, dwt, dwb, 3, 3, st, st, pd, pd, 1, 1, NNC_ACT_RELU6, 0.0f, pwp,
                            pwb, y1, ys, k, oh, ow, res, NNC_ACT_NONE, 0.0f, tile, scratch);
            check_close(y1, ref, n * ys, what);
            nnc_dwpw_packed(&two, n, x, xs, c, h, w, dwt, dwb, 3, 3, st, st, pd, pd, 1, 1, NNC_ACT_RELU6, 0.0f, pwp,
                            pwb, y2, ys, k, oh, ow, res, NNC_ACT_NONE, 0.0f, tile, scratch);
            assert_memory_equal(y1, y2, n * ys * sizeof(float));
            for (int i = 0; i < n; i++) {
                nnc_dwpw_packed(&two, 1, x + (size_t)i * xs, xs, c, h, w, dwt, dwb, 3, 3, st, st, pd, pd, 1, 1,
                                NNC_ACT_RELU6, 0.0f, pwp, pwb, y2, ys, k, oh, ow, res + (size_t)i * ys, NNC_ACT_NONE,
                                0.0f, tile, scratch);
                assert_memory_equal(y1 + (size_t)i * ys, y2, ys * sizeof(float));
            }
            nnc_ctx_stop(&one);
            nnc_ctx_stop(&two);
        }
        free(x), free(dwt), free(dwb), free(pwt), free(pwp), free(pwb), free(res), free(want), free(y1), free(y2);
        free(scratch), free(ref);
    }
    for (int t = 0; t < 6; t++) {
        int n = 1 + t % 3, in = 1 + 37 * t, out = 1 + 61 * t;
        float *x = rand_floats(&r, (size_t)n * in, 1.0f), *wt = rand_floats(&r, (size_t)out * in, 1.0f);
        float *b = t % 2 ? rand_floats(&r, (size_t)out, 1.0f) : NULL, *res = rand_floats(&r, (size_t)n * out, 1.0f);
        float *want = nan_floats((size_t)n * out), *got = nan_floats((size_t)n * out);
        nnc_ctx two;
        ctx_for(&two, nnc_cpu_isa(), 2);
        nnc_linear(n, x, in, wt, b, want, out, res, NNC_ACT_RELU, 0.0f);
        nnc_linear_mt(&two, n, x, in, wt, b, got, out, res, NNC_ACT_RELU, 0.0f);
        assert_memory_equal(want, got, (size_t)n * out * sizeof(float));
        nnc_ctx_stop(&two);
        free(x), free(wt), free(b), free(res), free(want), free(got);
    }
}

/* nnc_maxpool2d_mt and nnc_avgpool2d_mt against the serial kernels, 1 and 2
 * threads: bit-identical, batch strides longer than a sample, the floats
 * between the samples' outputs untouched. */
static void test_pool_mt(void **state)
{
    Rng r = {0x9001ULL};
    (void)state;
    for (int t = 0; t < 40; t++) {
        int n = rng_int(&r, 1, 4), c = rng_int(&r, 1, 6), h = rng_int(&r, 3, 20), w = rng_int(&r, 3, 40);
        int k = rng_int(&r, 1, 3), st = rng_int(&r, 1, 2), pd = rng_int(&r, 0, k / 2), cip = t % 2;
        int oh = (h + 2 * pd - k) / st + 1, ow = (w + 2 * pd - k) / st + 1;
        size_t xs = (size_t)c * h * w + 3, ys = (size_t)c * oh * ow + 5;
        float *x = rand_floats(&r, n * xs, 1.0f), *want = new_floats(n * ys), *got = new_floats(n * ys);
        for (int threads = 1; threads <= 2; threads++) {
            nnc_ctx ctx;
            ctx_for(&ctx, nnc_cpu_isa(), threads);
            for (size_t i = 0; i < n * ys; i++) want[i] = got[i] = -7.0f;
            nnc_maxpool2d(n, x, xs, c, h, w, want, ys, oh, ow, k, k, st, st, pd, pd, 1, 1);
            nnc_maxpool2d_mt(&ctx, n, x, xs, c, h, w, got, ys, oh, ow, k, k, st, st, pd, pd, 1, 1);
            assert_memory_equal(want, got, n * ys * sizeof(float));
            nnc_avgpool2d(n, x, xs, c, h, w, want, ys, oh, ow, k, k, st, st, pd, pd, cip);
            nnc_avgpool2d_mt(&ctx, n, x, xs, c, h, w, got, ys, oh, ow, k, k, st, st, pd, pd, cip);
            assert_memory_equal(want, got, n * ys * sizeof(float));
            nnc_ctx_stop(&ctx);
        }
        free(x), free(want), free(got);
    }
}

/* Two instances' pools in one process, created and freed in turn, and a ctx of
 * one thread starting none. */
static void test_ctx(void **state)
{
    nnc_ctx a, b, one;
    (void)state;
    assert_int_equal(nnc_ctx_init(&a, 2), 0);
    assert_int_equal(nnc_ctx_init(&b, 3), 0);
    assert_int_equal(nnc_ctx_init(&one, 1), 0);
    assert_int_equal(a.threads, 2);
    assert_int_equal(b.threads, 3);
    assert_int_equal(one.threads, 1);
#if NNC_HAVE_THREADS
    assert_int_equal(one.started, 0);
#endif
    nnc_ctx_stop(&a);
    nnc_ctx_stop(&b);
    nnc_ctx_stop(&one);
    printf("instruction set of this CPU: %s\n", nnc_cpu_isa() == NNC_ISA_AVX512 ? "avx512"
                                                : nnc_cpu_isa() == NNC_ISA_AVX2 ? "avx2" : "c");
}

#if NNC_HAVE_THREADS
/* A job whose task `hold` returns only once every other task has run. The
 * thread that holds it cannot run the rest of its share, so the job finishes
 * only if the other thread claims them (nnc_run_share); without that it would
 * wait out the 10 s limit and the test fails. */
typedef struct {
    int n, hold, done, timed_out;
} StealJob;

static void steal_task(void *arg, int t)
{
    StealJob *j = (StealJob *)arg;
    if (t == j->hold) {
        double waited = 0;
        while (__atomic_load_n(&j->done, __ATOMIC_ACQUIRE) < j->n - 1 && waited < 10.0) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
            waited += 1e-3;
        }
        if (waited >= 10.0) j->timed_out = 1;
    }
    __atomic_fetch_add(&j->done, 1, __ATOMIC_ACQ_REL);
}

static void test_pool_claims_unstarted_tasks(void **state)
{
    nnc_ctx ctx;
    (void)state;
    assert_int_equal(nnc_ctx_init(&ctx, 2), 0);
    for (int hold = 0; hold < 16; hold += 5) {  /* in the caller's share (0, 5) and the worker's (10, 15) */
        StealJob j = {16, hold, 0, 0};
        nnc_parallel(&ctx, j.n, steal_task, &j);
        assert_int_equal(j.done, j.n);
        assert_int_equal(j.timed_out, 0);
    }
    nnc_ctx_stop(&ctx);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
#if NNC_HAVE_THREADS
        cmocka_unit_test(test_pool_claims_unstarted_tasks),
#endif
        cmocka_unit_test(test_ctx),
        cmocka_unit_test(test_pack_weights),
        cmocka_unit_test(test_gemm_packed),
        cmocka_unit_test(test_conv2d_packed),
        cmocka_unit_test(test_dwpw_and_linear),
        cmocka_unit_test(test_pool_mt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
