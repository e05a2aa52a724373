/* test_kernels_conv.c: the GEMM and the convolution kernels of
 * runtime/snippets/kernels_gemm.c and kernels_conv.c (conv2d, depthwise +
 * pointwise, conv_transpose2d) against naive double-precision references,
 * and their epilogues (residual add and activation, fused) bit for bit
 * against the unfused chain. References, RNG and tolerance: kernel_test.h. */
#include "tests/unit/kernel_test.h"

/* ---- gemm ---- */

static void ref_gemm(int ta, int tb, int M, int N, int K, double alpha, const float *A, int lda, const float *B,
                     int ldb, double beta, const float *C0, int ldc, double *ref)
{
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0.0;
            for (int p = 0; p < K; p++)
                s += (double)(ta ? A[p * lda + i] : A[i * lda + p]) * (double)(tb ? B[j * ldb + p] : B[p * ldb + j]);
            ref[i * N + j] = alpha * s + (beta == 0.0 ? 0.0 : beta * C0[i * ldc + j]);
        }
}

static void run_gemm(Rng *r, int ta, int tb, int M, int N, int K, float alpha, float beta, int pad)
{
    int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    size_t asz = (size_t)(ta ? K : M) * lda, bsz = (size_t)(tb ? N : K) * ldb, csz = (size_t)M * ldc;
    float *A = rand_floats(r, asz, 1.0f), *B = rand_floats(r, bsz, 1.0f);
    float *C = beta == 0.0f ? nan_floats(csz) : rand_floats(r, csz, 1.0f);
    float *out = new_floats((size_t)M * N);
    double *ref = new_doubles((size_t)M * N);
    char what[128];
    ref_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ref);
    nnc_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    for (int i = 0; i < M; i++) memcpy(out + (size_t)i * N, C + (size_t)i * ldc, (size_t)N * sizeof(float));
    snprintf(what, sizeof what, "sgemm ta=%d tb=%d M=%d N=%d K=%d alpha=%g beta=%g pad=%d", ta, tb, M, N, K,
             (double)alpha, (double)beta, pad);
    check_close(out, ref, (size_t)M * N, what);
    free(A), free(B), free(C), free(out), free(ref);
}

static void test_gemm(void **state)
{
    static const int shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {16, 16, 16}, {7, 1, 13}, {1, 9, 4},
                                    {37, 1100, 300}, {64, 49, 576}, {2, 33, 1000}, {12, 64, 600}};
    static const float ab[][2] = {{1.0f, 0.0f}, {1.0f, 1.0f}, {-0.5f, 0.25f}, {2.0f, -1.0f}};
    Rng r = {0x1234567ULL};
    (void)state;
    for (int t = 0; t < 4; t++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (size_t a = 0; a < sizeof ab / sizeof ab[0]; a++)
                run_gemm(&r, t & 1, t >> 1, shapes[s][0], shapes[s][1], shapes[s][2], ab[a][0], ab[a][1],
                         (int)(a + s) % 3);
    for (int i = 0; i < 30; i++)
        run_gemm(&r, rng_int(&r, 0, 1), rng_int(&r, 0, 1), rng_int(&r, 1, 40), rng_int(&r, 1, 600),
                 rng_int(&r, 1, 200), rng_float(&r), i % 2 ? rng_float(&r) : 0.0f, rng_int(&r, 0, 3));
}

/* ---- conv2d and conv_transpose2d ---- */

typedef struct ConvCase {
    int n, c, h, w, k, kh, kw, sh, sw, ph, pw, dh, dw, groups, bias, opad;  /* opad: transposed only */
} ConvCase;

static const ConvCase conv_cases[] = {
    /* n  c   h   w   k kh kw sh sw ph pw dh dw  g bias opad */
    {1, 1, 5, 5, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0},     /* smallest 3x3 same */
    {2, 3, 9, 11, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1},    /* stride 2, odd sizes */
    {1, 3, 17, 15, 8, 7, 7, 2, 2, 3, 3, 1, 1, 1, 0, 1},   /* ResNet stem shape, no bias */
    {2, 4, 10, 9, 6, 3, 3, 1, 1, 2, 2, 2, 2, 1, 1, 0},    /* dilation 2 */
    {1, 2, 12, 13, 3, 3, 5, 2, 1, 1, 2, 1, 1, 1, 1, 1},   /* non-square kernel, stride, pad */
    {2, 5, 8, 8, 5, 3, 3, 1, 1, 1, 1, 1, 1, 5, 1, 0},     /* depthwise */
    {3, 6, 7, 9, 12, 3, 3, 2, 2, 1, 1, 1, 1, 6, 0, 1},    /* depthwise, multiplier 2, stride 2 */
    {2, 4, 7, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1, 2, 1, 0},     /* groups 2, 4 -> 6 */
    {2, 4, 7, 6, 6, 2, 3, 2, 3, 0, 1, 2, 1, 2, 1, 1},     /* groups 2, everything non-square */
    {3, 8, 6, 7, 5, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0},     /* 1x1: GEMM on x directly */
    {2, 8, 6, 7, 4, 1, 1, 1, 1, 0, 0, 1, 1, 2, 0, 0},     /* 1x1 grouped: direct too */
    {2, 8, 9, 7, 5, 1, 1, 2, 2, 0, 0, 1, 1, 1, 1, 1},     /* 1x1 stride 2: needs im2col */
    {1, 3, 6, 6, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0},     /* 1x1 padded */
    {1, 2, 4, 4, 3, 5, 5, 1, 1, 2, 2, 1, 1, 1, 1, 0},     /* kernel wider than the image */
    {2, 3, 5, 6, 2, 3, 2, 3, 2, 1, 0, 1, 2, 1, 1, 2},     /* stride 3, output padding 2 */
    {1, 64, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0}, /* a ResNet layer in small */
};

static int conv_out(int in, int k, int s, int p, int d) { return (in + 2 * p - d * (k - 1) - 1) / s + 1; }

static void ref_conv2d(const ConvCase *t, const float *x, const float *wt, const float *bias, int oh, int ow,
                       double *ref)
{
    int cg = t->c / t->groups, kg = t->k / t->groups;
    for (int i = 0; i < t->n; i++)
        for (int ko = 0; ko < t->k; ko++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    double s = bias ? bias[ko] : 0.0;
                    for (int ci = 0; ci < cg; ci++)
                        for (int ki = 0; ki < t->kh; ki++)
                            for (int kj = 0; kj < t->kw; kj++) {
                                int iy = oy * t->sh - t->ph + ki * t->dh, ix = ox * t->sw - t->pw + kj * t->dw;
                                int cin = ko / kg * cg + ci;
                                if (iy < 0 || iy >= t->h || ix < 0 || ix >= t->w) continue;
                                s += (double)x[((i * t->c + cin) * t->h + iy) * t->w + ix] *
                                     wt[((ko * cg + ci) * t->kh + ki) * t->kw + kj];
                            }
                    ref[((i * t->k + ko) * oh + oy) * ow + ox] = s;
                }
}

static size_t conv_scratch(const ConvCase *t, int n, int oh, int ow, int prologue)
{
    return nnc_conv2d_scratch(n, t->c, t->h, t->w, t->k, t->kh, t->kw, t->sh, t->sw, t->ph, t->pw, oh, ow, t->groups,
                              prologue);
}

/* nnc_conv2d on whole, contiguous tensors with no prologue. */
static void conv2d_plain(const ConvCase *t, const float *x, const float *wt, const float *bias, float *y, int oh,
                         int ow, float *scratch, const float *res, int act, float slope)
{
    nnc_conv2d(t->n, x, (size_t)t->c * t->h * t->w, t->c, t->h, t->w, wt, bias, y, (size_t)t->k * oh * ow, t->k, oh,
               ow, t->kh, t->kw, t->sh, t->sw, t->ph, t->pw, t->dh, t->dw, t->groups, scratch, res,
               (size_t)t->k * oh * ow, act, slope, t->k, NULL, NULL, NNC_ACT_NONE, 0.0f);
}

/* Three ways: whole tensors; x and y as channel slices of larger tensors (batch
 * strides, concat_elim.c), where the floats around the slices must stay
 * untouched; and with a prologue (relu(x*scale + shift) before the conv),
 * against the reference on the transformed input. */
static void run_conv2d(Rng *r, const ConvCase *t)
{
    int oh = conv_out(t->h, t->kh, t->sh, t->ph, t->dh), ow = conv_out(t->w, t->kw, t->sw, t->pw, t->dw);
    size_t xs1 = (size_t)t->c * t->h * t->w, ys1 = (size_t)t->k * oh * ow;
    size_t xsz = (size_t)t->n * xs1, ysz = (size_t)t->n * ys1;
    size_t ssz = conv_scratch(t, t->n, oh, ow, 1), ssz0 = conv_scratch(t, t->n, oh, ow, 0);
    float *x = rand_floats(r, xsz, 1.0f), *y = nan_floats(ysz);
    float *wt = rand_floats(r, (size_t)t->k * (t->c / t->groups) * t->kh * t->kw, 1.0f);
    float *bias = t->bias ? rand_floats(r, (size_t)t->k, 1.0f) : NULL;
    float *scratch = ssz ? nan_floats(ssz) : NULL;
    float *scale = rand_floats(r, (size_t)t->c, 1.0f), *shift = rand_floats(r, (size_t)t->c, 1.0f);
    float *xp = new_floats(xsz);
    size_t xst = xs1 + 5, yst = ys1 + 7;  /* slices at float 3 and 2 of longer samples */
    float *xbig = rand_floats(r, (size_t)t->n * xst, 1.0f), *ybig = rand_floats(r, (size_t)t->n * yst, 1.0f);
    float *ykeep = new_floats((size_t)t->n * yst);
    double *ref = new_doubles(ysz);
    char what[160];
    snprintf(what, sizeof what, "conv2d n%d c%d %dx%d k%d %dx%d s%d,%d p%d,%d d%d,%d g%d bias%d", t->n, t->c, t->h,
             t->w, t->k, t->kh, t->kw, t->sh, t->sw, t->ph, t->pw, t->dh, t->dw, t->groups, t->bias);
    /* a prologue runs one sample at a time: its copy of the sample, then one im2col matrix */
    assert_true(conv_scratch(t, 1, oh, ow, 0) + xs1 == ssz);
    if (ssz0 > ssz) {  /* blocks of samples side by side (nnc_conv2d_block) need more */
        free(scratch);
        scratch = nan_floats(ssz0);
    }
    ref_conv2d(t, x, wt, bias, oh, ow, ref);
    conv2d_plain(t, x, wt, bias, y, oh, ow, ssz0 ? scratch : NULL, NULL, NNC_ACT_NONE, 0.0f);
    check_close(y, ref, ysz, what);

    for (int i = 0; i < t->n; i++) memcpy(xbig + i * xst + 3, x + i * xs1, xs1 * sizeof(float));
    memcpy(ykeep, ybig, (size_t)t->n * yst * sizeof(float));
    nnc_conv2d(t->n, xbig + 3, xst, t->c, t->h, t->w, wt, bias, ybig + 2, yst, t->k, oh, ow, t->kh, t->kw, t->sh,
               t->sw, t->ph, t->pw, t->dh, t->dw, t->groups, scratch, NULL, 0, NNC_ACT_NONE, 0.0f, t->k, NULL, NULL,
               NNC_ACT_NONE, 0.0f);
    for (int i = 0; i < t->n; i++) {
        check_equal(ybig + i * yst + 2, y + i * ys1, ys1, what);
        assert_memory_equal(ybig + i * yst, ykeep + i * yst, 2 * sizeof(float));
        assert_memory_equal(ybig + i * yst + 2 + ys1, ykeep + i * yst + 2 + ys1, 5 * sizeof(float));
    }

    for (size_t i = 0; i < xsz; i++) {
        size_t ch = i / ((size_t)t->h * t->w) % (size_t)t->c;
        float v = x[i] * scale[ch] + shift[ch];
        xp[i] = v < 0.0f ? 0.0f : v;
    }
    ref_conv2d(t, xp, wt, bias, oh, ow, ref);
    nnc_conv2d(t->n, xbig + 3, xst, t->c, t->h, t->w, wt, bias, y, ys1, t->k, oh, ow, t->kh, t->kw, t->sh, t->sw,
               t->ph, t->pw, t->dh, t->dw, t->groups, scratch, NULL, 0, NNC_ACT_NONE, 0.0f, t->k, scale, shift,
               NNC_ACT_RELU, 0.0f);
    strncat(what, " prologue relu", sizeof what - strlen(what) - 1);
    check_close(y, ref, ysz, what);
    free(x), free(y), free(wt), free(bias), free(scratch), free(ref), free(scale), free(shift), free(xp);
    free(xbig), free(ybig), free(ykeep);
}

/* A random valid convolution: groups is 1, 2 or depthwise; the output is at least 1x1. */
static ConvCase random_conv(Rng *r)
{
    ConvCase t;
    int g = rng_int(r, 0, 2);
    t.groups = g == 0 ? 1 : g == 1 ? 2 : rng_int(r, 1, 6);
    t.c = t.groups * (g == 2 ? 1 : rng_int(r, 1, 4));
    t.k = t.groups * rng_int(r, 1, 4);
    t.n = rng_int(r, 1, 3);
    t.kh = rng_int(r, 1, 5), t.kw = rng_int(r, 1, 5);
    t.sh = rng_int(r, 1, 3), t.sw = rng_int(r, 1, 3);
    t.dh = rng_int(r, 1, 3), t.dw = rng_int(r, 1, 3);
    t.ph = rng_int(r, 0, 3), t.pw = rng_int(r, 0, 3);
    t.h = t.dh * (t.kh - 1) + 1 + rng_int(r, 0, 9) - 2 * t.ph;
    t.w = t.dw * (t.kw - 1) + 1 + rng_int(r, 0, 9) - 2 * t.pw;
    if (t.h < 1) t.h = 1 + rng_int(r, 0, 3), t.ph = (t.dh * (t.kh - 1) + 1) / 2 + 1;
    if (t.w < 1) t.w = 1 + rng_int(r, 0, 3), t.pw = (t.dw * (t.kw - 1) + 1) / 2 + 1;
    t.bias = rng_int(r, 0, 1);
    t.opad = rng_int(r, 0, (t.sh > t.dh ? t.sh : t.dh) - 1);
    return t;
}

static void test_conv2d(void **state)
{
    Rng r = {0xC0FFEEULL};
    (void)state;
    for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++) run_conv2d(&r, &conv_cases[i]);
    for (int i = 0; i < 200; i++) {
        ConvCase t = random_conv(&r);
        if (conv_out(t.h, t.kh, t.sh, t.ph, t.dh) >= 1 && conv_out(t.w, t.kw, t.sw, t.pw, t.dw) >= 1)
            run_conv2d(&r, &t);
    }
}

/* ConvTranspose2d by its definition: every input pixel scatters x * w into the
 * output pixel (iy*s - p + ki*d, ix*s - p + kj*d); weights are [c][k/g][kh][kw]. */
static void ref_conv_transpose2d(const ConvCase *t, const float *x, const float *wt, const float *bias, int oh,
                                 int ow, double *ref)
{
    int cg = t->c / t->groups, kg = t->k / t->groups;
    for (int i = 0; i < t->n; i++)
        for (int ko = 0; ko < t->k; ko++)
            for (int p = 0; p < oh * ow; p++) ref[(i * t->k + ko) * oh * ow + p] = bias ? bias[ko] : 0.0;
    for (int i = 0; i < t->n; i++)
        for (int ci = 0; ci < t->c; ci++)
            for (int iy = 0; iy < t->h; iy++)
                for (int ix = 0; ix < t->w; ix++)
                    for (int kq = 0; kq < kg; kq++)
                        for (int ki = 0; ki < t->kh; ki++)
                            for (int kj = 0; kj < t->kw; kj++) {
                                int oy = iy * t->sh - t->ph + ki * t->dh, ox = ix * t->sw - t->pw + kj * t->dw;
                                int ko = ci / cg * kg + kq;
                                if (oy < 0 || oy >= oh || ox < 0 || ox >= ow) continue;
                                ref[((i * t->k + ko) * oh + oy) * ow + ox] +=
                                    (double)x[((i * t->c + ci) * t->h + iy) * t->w + ix] *
                                    wt[((ci * kg + kq) * t->kh + ki) * t->kw + kj];
                            }
}

static void run_conv_transpose2d(Rng *r, const ConvCase *t)
{
    int oh = (t->h - 1) * t->sh - 2 * t->ph + t->dh * (t->kh - 1) + t->opad + 1;
    int ow = (t->w - 1) * t->sw - 2 * t->pw + t->dw * (t->kw - 1) + t->opad + 1;
    size_t xsz = (size_t)t->n * t->c * t->h * t->w, ysz = (size_t)t->n * t->k * oh * ow;
    size_t ssz = nnc_conv_transpose2d_scratch(t->h, t->w, t->k, t->kh, t->kw, t->groups);
    float *x = rand_floats(r, xsz, 1.0f), *y = nan_floats(ysz);
    float *wt = rand_floats(r, (size_t)t->c * (t->k / t->groups) * t->kh * t->kw, 1.0f);
    float *bias = t->bias ? rand_floats(r, (size_t)t->k, 1.0f) : NULL;
    float *scratch = nan_floats(ssz);
    double *ref = new_doubles(ysz);
    char what[160];
    ref_conv_transpose2d(t, x, wt, bias, oh, ow, ref);
    nnc_conv_transpose2d(t->n, x, t->c, t->h, t->w, wt, bias, y, t->k, oh, ow, t->kh, t->kw, t->sh, t->sw, t->ph,
                         t->pw, t->dh, t->dw, t->groups, scratch, NULL, NNC_ACT_NONE, 0.0f);
    snprintf(what, sizeof what, "conv_transpose2d n%d c%d %dx%d k%d %dx%d s%d,%d p%d,%d d%d,%d g%d bias%d op%d",
             t->n, t->c, t->h, t->w, t->k, t->kh, t->kw, t->sh, t->sw, t->ph, t->pw, t->dh, t->dw, t->groups,
             t->bias, t->opad);
    check_close(y, ref, ysz, what);
    free(x), free(y), free(wt), free(bias), free(scratch), free(ref);
}

static void test_conv_transpose2d(void **state)
{
    Rng r = {0xDECAFULL};
    (void)state;
    for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++) {
        ConvCase t = conv_cases[i];
        /* PyTorch needs output_padding < max(stride, dilation). */
        if (t.opad >= t.sh && t.opad >= t.dh) t.opad = 0;
        if (t.opad >= t.sw && t.opad >= t.dw) t.opad = 0;
        if ((t.h - 1) * t.sh - 2 * t.ph + t.dh * (t.kh - 1) + t.opad + 1 < 1) continue;
        if ((t.w - 1) * t.sw - 2 * t.pw + t.dw * (t.kw - 1) + t.opad + 1 < 1) continue;
        run_conv_transpose2d(&r, &t);
    }
    for (int i = 0; i < 200; i++) {
        ConvCase t = random_conv(&r);
        int ms = t.sh < t.sw ? t.sh : t.sw, md = t.dh < t.dw ? t.dh : t.dw;
        if (t.opad >= (ms > md ? ms : md)) t.opad = 0;
        if ((t.h - 1) * t.sh - 2 * t.ph + t.dh * (t.kh - 1) + t.opad + 1 < 1) continue;
        if ((t.w - 1) * t.sw - 2 * t.pw + t.dw * (t.kw - 1) + t.opad + 1 < 1) continue;
        run_conv_transpose2d(&r, &t);
    }
}


/* ---- epilogues of conv2d and linear ---- */

/* conv2d with every activation, with and without a residual: against the
 * double reference, and bit for bit against the unfused chain. */
static void run_conv2d_epilogue(Rng *r, const ConvCase *t, int act, int with_res)
{
    int oh = conv_out(t->h, t->kh, t->sh, t->ph, t->dh), ow = conv_out(t->w, t->kw, t->sw, t->pw, t->dw);
    size_t xsz = (size_t)t->n * t->c * t->h * t->w, ysz = (size_t)t->n * t->k * oh * ow;
    size_t ssz = conv_scratch(t, t->n, oh, ow, 0);
    float *x = rand_floats(r, xsz, 1.0f), *y = nan_floats(ysz), *y0 = nan_floats(ysz);
    float *wt = rand_floats(r, (size_t)t->k * (t->c / t->groups) * t->kh * t->kw, 1.0f);
    float *bias = t->bias ? rand_floats(r, (size_t)t->k, 1.0f) : NULL;
    float *res = with_res ? rand_floats(r, ysz, 2.0f) : NULL;
    float *scratch = ssz ? nan_floats(ssz) : NULL;
    double *ref = new_doubles(ysz);
    char what[160];
    ref_conv2d(t, x, wt, bias, oh, ow, ref);
    for (size_t i = 0; i < ysz; i++) ref[i] = act_ref(act, ref[i] + (res ? (double)res[i] : 0.0));
    conv2d_plain(t, x, wt, bias, y, oh, ow, scratch, res, act, 0.125f);
    snprintf(what, sizeof what, "conv2d n%d c%d %dx%d k%d g%d, epilogue%s %s", t->n, t->c, t->h, t->w, t->k,
             t->groups, res ? " +res" : "", act_names[act]);
    check_close(y, ref, ysz, what);
    conv2d_plain(t, x, wt, bias, y0, oh, ow, scratch, NULL, NNC_ACT_NONE, 0.0f);
    unfused_epilogue(y0, ysz, res, act);
    check_equal(y, y0, ysz, what);
    free(x), free(y), free(y0), free(wt), free(bias), free(res), free(scratch), free(ref);
}

/* dwpw: the depthwise conv2d (with its activation), then the 1x1 conv2d with
 * its epilogue, through the unfused kernels, for tiles of 1 row, 3 rows and
 * the whole image, with x and y as channel slices (batch strides). The
 * depthwise sums run in the same order in both, and the pointwise GEMM
 * computes each output from the same operands, so they must agree to a few
 * ulps; the double reference checks the unfused chain. */
static void run_dwpw(Rng *r, int n, int c, int h, int w, int k, int kh, int s, int pad, int dil, int bias, int res)
{
    ConvCase dw = {n, c, h, w, c, kh, kh, s, s, pad, pad, dil, dil, c, bias, 0};
    int oh = conv_out(h, kh, s, pad, dil), ow = conv_out(w, kh, s, pad, dil);
    ConvCase pw = {n, c, oh, ow, k, 1, 1, 1, 1, 0, 0, 1, 1, 1, bias, 0};
    size_t xs1 = (size_t)c * h * w, ts1 = (size_t)c * oh * ow, ys1 = (size_t)k * oh * ow;
    float *x = rand_floats(r, (size_t)n * (xs1 + 3), 1.0f);
    float *dwt = rand_floats(r, (size_t)c * kh * kh, 1.0f), *dwb = bias ? rand_floats(r, (size_t)c, 1.0f) : NULL;
    float *pwt = rand_floats(r, (size_t)k * c, 1.0f), *pwb = bias ? rand_floats(r, (size_t)k, 1.0f) : NULL;
    float *resid = res ? rand_floats(r, (size_t)n * ys1, 1.0f) : NULL;
    float *t = nan_floats((size_t)n * ts1), *y0 = nan_floats((size_t)n * ys1);
    float *y = nan_floats((size_t)n * (ys1 + 5)), *sc = nan_floats(nnc_dwpw_scratch(c, ow, oh));
    char what[128];
    nnc_conv2d(n, x + 1, xs1 + 3, c, h, w, dwt, dwb, t, ts1, c, oh, ow, kh, kh, s, s, pad, pad, dil, dil, c, NULL,
               NULL, 0, NNC_ACT_RELU6, 0.0f, c, NULL, NULL, NNC_ACT_NONE, 0.0f);
    {
        float *xc = new_floats((size_t)n * xs1);
        double *ref = new_doubles((size_t)n * ts1);
        for (int i = 0; i < n; i++) memcpy(xc + i * xs1, x + 1 + i * (xs1 + 3), xs1 * sizeof(float));
        ref_conv2d(&dw, xc, dwt, dwb, oh, ow, ref);
        for (size_t e = 0; e < (size_t)n * ts1; e++) ref[e] = ref[e] < 0 ? 0 : ref[e] > 6 ? 6 : ref[e];
        check_close(t, ref, (size_t)n * ts1, "depthwise conv2d (direct path)");
        free(xc), free(ref);
    }
    {  /* the pointwise conv of small maps takes samples in blocks (nnc_conv2d_block): scratch then */
        size_t pss = conv_scratch(&pw, n, oh, ow, 0);
        float *ps = pss ? nan_floats(pss) : NULL;
        conv2d_plain(&pw, t, pwt, pwb, y0, oh, ow, ps, resid, NNC_ACT_LEAKY_RELU, 0.125f);
        free(ps);
    }
    for (int tile = 1; tile <= oh + 2; tile = tile == 1 ? 3 : tile == 3 ? oh : oh + 3) {
        nnc_dwpw(n, x + 1, xs1 + 3, c, h, w, dwt, dwb, kh, kh, s, s, pad, pad, dil, dil, NNC_ACT_RELU6, 0.0f, pwt, pwb,
                 y + 2, ys1 + 5, k, oh, ow, resid, NNC_ACT_LEAKY_RELU, 0.125f, tile, sc);
        snprintf(what, sizeof what, "dwpw c%d %dx%d k%d %dx%d s%d p%d d%d bias%d res%d tile %d", c, h, w, k, kh, kh, s,
                 pad, dil, bias, res, tile);
        for (int i = 0; i < n; i++) {
            const float *yi = y + 2 + (size_t)i * (ys1 + 5), *y0i = y0 + (size_t)i * ys1;
            for (size_t e = 0; e < ys1; e++)
                if (fabsf(yi[e] - y0i[e]) > 1e-5f * (1.0f + fabsf(y0i[e]))) {
                    print_error("%s: sample %d element %zu is %.9g, the unfused chain gives %.9g\n", what, i, e,
                                (double)yi[e], (double)y0i[e]);
                    fail();
                }
        }
    }
    free(x), free(dwt), free(dwb), free(pwt), free(pwb), free(resid), free(t), free(y0), free(y), free(sc);
}

static void test_dwpw(void **state)
{
    Rng r = {0xD3D3ULL};
    (void)state;
    run_dwpw(&r, 2, 8, 9, 7, 5, 3, 1, 1, 1, 1, 1);   /* MobileNet v2 block with its residual */
    run_dwpw(&r, 1, 6, 11, 10, 12, 3, 2, 1, 1, 0, 0); /* stride 2, no biases */
    run_dwpw(&r, 3, 4, 8, 8, 4, 5, 1, 2, 2, 1, 0);   /* 5x5, dilation 2 */
    run_dwpw(&r, 1, 32, 7, 7, 16, 3, 1, 1, 1, 1, 1);
}

/* conv_transpose2d's epilogue (DCGAN's generator: folded batchnorm, then relu;
 * tanh at the end) is the unfused chain bit for bit. */
static void test_conv_transpose2d_epilogue(void **state)
{
    static const int cases[] = {1, 2, 6, 14};
    Rng r = {0x7E9ULL};
    (void)state;
    for (int act = NNC_ACT_NONE; act < N_ACTS; act++)
        for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
            const ConvCase *t = &conv_cases[cases[ci]];
            int oh = (t->h - 1) * t->sh - 2 * t->ph + t->dh * (t->kh - 1) + t->opad + 1;
            int ow = (t->w - 1) * t->sw - 2 * t->pw + t->dw * (t->kw - 1) + t->opad + 1;
            size_t ysz = (size_t)t->n * t->k * oh * ow;
            float *x = rand_floats(&r, (size_t)t->n * t->c * t->h * t->w, 1.0f), *y = nan_floats(ysz);
            float *y0 = nan_floats(ysz), *res = act % 2 ? rand_floats(&r, ysz, 1.0f) : NULL;
            float *wt = rand_floats(&r, (size_t)t->c * (t->k / t->groups) * t->kh * t->kw, 1.0f);
            float *sc = nan_floats(nnc_conv_transpose2d_scratch(t->h, t->w, t->k, t->kh, t->kw, t->groups));
            nnc_conv_transpose2d(t->n, x, t->c, t->h, t->w, wt, NULL, y, t->k, oh, ow, t->kh, t->kw, t->sh, t->sw,
                                 t->ph, t->pw, t->dh, t->dw, t->groups, sc, res, act, 0.125f);
            nnc_conv_transpose2d(t->n, x, t->c, t->h, t->w, wt, NULL, y0, t->k, oh, ow, t->kh, t->kw, t->sh, t->sw,
                                 t->ph, t->pw, t->dh, t->dw, t->groups, sc, NULL, NNC_ACT_NONE, 0.0f);
            unfused_epilogue(y0, ysz, res, act);
            check_equal(y, y0, ysz, "conv_transpose2d epilogue");
            free(x), free(y), free(y0), free(res), free(wt), free(sc);
        }
}

/* Horizontally fused siblings: the activation on the first act_k output
 * channels only, a residual read through a batch stride (a slice of a larger
 * tensor). Bit for bit the unfused chain on each part. */
/* nnc_conv2d puts the samples of a small map side by side (nnc_conv2d_block):
 * a batch of two full blocks and a tail, with strided input, output and
 * residual and an activation on some channels, must give what one call per
 * sample gives (which never blocks), for 3x3, 1x1 and grouped convolutions. */
static void test_conv2d_blocks(void **state)
{
    (void)state;
    Rng r = {0xB10C2ULL};
    const ConvCase shapes[] = {
        /* n  c  h  w  k kh kw sh sw ph pw dh dw g bias opad */
        {0, 4, 3, 3, 6, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0},
        {0, 4, 3, 3, 6, 1, 1, 1, 1, 0, 0, 1, 1, 1, 0, 0},
        {0, 4, 5, 4, 6, 3, 3, 2, 2, 1, 1, 1, 1, 2, 1, 0},
    };
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        ConvCase t = shapes[si];
        int oh = conv_out(t.h, t.kh, t.sh, t.ph, t.dh), ow = conv_out(t.w, t.kw, t.sw, t.pw, t.dw);
        int nb = nnc_conv2d_block(1 << 20, t.c, t.kh, t.kw, t.sh, t.sw, t.ph, t.pw, oh, ow, t.groups, 0), n = 2 * nb + 3;
        size_t xs = (size_t)t.c * t.h * t.w + 3, ys = (size_t)t.k * oh * ow + 5, rs = ys + 2;
        size_t ssz = nnc_conv2d_scratch(n, t.c, t.h, t.w, t.k, t.kh, t.kw, t.sh, t.sw, t.ph, t.pw, oh, ow, t.groups, 0);
        size_t s1 = nnc_conv2d_scratch(1, t.c, t.h, t.w, t.k, t.kh, t.kw, t.sh, t.sw, t.ph, t.pw, oh, ow, t.groups, 0);
        float *x = rand_floats(&r, (size_t)n * xs, 1.0f), *res = rand_floats(&r, (size_t)n * rs, 1.0f);
        float *wt = rand_floats(&r, (size_t)t.k * (t.c / t.groups) * t.kh * t.kw, 1.0f);
        float *bias = t.bias ? rand_floats(&r, (size_t)t.k, 1.0f) : NULL;
        float *y = nan_floats((size_t)n * ys), *y1 = nan_floats((size_t)n * ys);
        float *sc = nan_floats(ssz), *sc1 = s1 ? nan_floats(s1) : NULL;
        assert_true(nb > 1 && ssz > s1);
        nnc_conv2d(n, x + 1, xs, t.c, t.h, t.w, wt, bias, y, ys, t.k, oh, ow, t.kh, t.kw, t.sh, t.sw, t.ph, t.pw, t.dh,
                   t.dw, t.groups, sc, res + 2, rs, NNC_ACT_RELU, 0.0f, 4, NULL, NULL, NNC_ACT_NONE, 0.0f);
        for (int i = 0; i < n; i++)
            nnc_conv2d(1, x + 1 + (size_t)i * xs, xs, t.c, t.h, t.w, wt, bias, y1 + (size_t)i * ys, ys, t.k, oh, ow,
                       t.kh, t.kw, t.sh, t.sw, t.ph, t.pw, t.dh, t.dw, t.groups, sc1, res + 2 + (size_t)i * rs, rs,
                       NNC_ACT_RELU, 0.0f, 4, NULL, NULL, NNC_ACT_NONE, 0.0f);
        for (int i = 0; i < n; i++) {
            const float *a = y + (size_t)i * ys, *b = y1 + (size_t)i * ys;
            for (size_t e = 0; e < (size_t)t.k * oh * ow; e++)
                if (fabsf(a[e] - b[e]) > 1e-5f * (1.0f + fabsf(b[e]))) {
                    print_error("conv2d blocks shape %zu: sample %d element %zu is %.9g, alone %.9g\n", si, i, e,
                                (double)a[e], (double)b[e]);
                    fail();
                }
            for (size_t e = (size_t)t.k * oh * ow; e < ys; e++) assert_true(isnan(a[e]));  /* the gaps stay */
        }
        free(x), free(res), free(wt), free(bias), free(y), free(y1), free(sc), free(sc1);
    }
}

/* nnc_dw_plane adds each output's taps in kernel order, in float, whichever
 * path it takes (three taps a row in one pass over the interior columns, tap
 * by tap at the borders and for other widths): bit for bit what this plain
 * loop computes, so depthwise results do not depend on the path. */
static void test_dw_plane_order(void **state)
{
    (void)state;
    Rng r = {0xD3DULL};
    for (int it = 0; it < 4000; it++) {
        int h = rng_int(&r, 1, 12), w = rng_int(&r, 1, 12), kh = rng_int(&r, 1, 4);
        int kw = rng_int(&r, 0, 2) ? 3 : rng_int(&r, 1, 4), sh = rng_int(&r, 1, 2), sw = rng_int(&r, 1, 3);
        int ph = rng_int(&r, 0, 2), pw = rng_int(&r, 0, 2), dh = rng_int(&r, 1, 2), dw = rng_int(&r, 1, 2);
        int oh = conv_out(h, kh, sh, ph, dh), ow = conv_out(w, kw, sw, pw, dw);
        if (oh < 1 || ow < 1) continue;
        float *x = rand_floats(&r, (size_t)h * w, 1.0f), *wk = rand_floats(&r, (size_t)kh * kw, 1.0f);
        float *y = nan_floats((size_t)oh * ow), *want = new_floats((size_t)oh * ow);
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                float s = 0.5f;
                for (int ki = 0; ki < kh; ki++)
                    for (int kj = 0; kj < kw; kj++) {
                        int iy = oy * sh - ph + ki * dh, ix = ox * sw - pw + kj * dw;
                        if (iy >= 0 && iy < h && ix >= 0 && ix < w) s += wk[ki * kw + kj] * x[iy * w + ix];
                    }
                want[oy * ow + ox] = s;
            }
        nnc_dw_plane(x, h, w, wk, 0.5f, y, 0, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw);
        char what[96];
        snprintf(what, sizeof what, "dw_plane %dx%d k%dx%d s%d,%d p%d,%d d%d,%d", h, w, kh, kw, sh, sw, ph, pw, dh, dw);
        check_equal(y, want, (size_t)oh * ow, what);
        free(x), free(wk), free(y), free(want);
    }
}

static void test_conv2d_act_channels(void **state)
{
    static const int cases[] = {9, 10, 15};  /* 1x1 direct, 1x1 grouped, a 3x3 layer */
    Rng r = {0xAC7ULL};
    (void)state;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int act_k = 0; act_k <= conv_cases[cases[ci]].k; act_k += 2) {
            const ConvCase *t = &conv_cases[cases[ci]];
            int oh = conv_out(t->h, t->kh, t->sh, t->ph, t->dh), ow = conv_out(t->w, t->kw, t->sw, t->pw, t->dw);
            size_t ys1 = (size_t)t->k * oh * ow, ysz = (size_t)t->n * ys1, rst = ys1 + 11, plane = (size_t)oh * ow;
            float *x = rand_floats(&r, (size_t)t->n * t->c * t->h * t->w, 1.0f), *y = nan_floats(ysz);
            float *y0 = nan_floats(ysz), *res = rand_floats(&r, (size_t)t->n * rst, 1.0f);
            float *wt = rand_floats(&r, (size_t)t->k * (t->c / t->groups) * t->kh * t->kw, 1.0f);
            size_t ssz = conv_scratch(t, t->n, oh, ow, 0);
            float *sc = ssz ? nan_floats(ssz) : NULL;
            nnc_conv2d(t->n, x, (size_t)t->c * t->h * t->w, t->c, t->h, t->w, wt, NULL, y, ys1, t->k, oh, ow, t->kh,
                       t->kw, t->sh, t->sw, t->ph, t->pw, t->dh, t->dw, t->groups, sc, res + 5, rst, NNC_ACT_RELU6,
                       0.0f, act_k, NULL, NULL, NNC_ACT_NONE, 0.0f);
            conv2d_plain(t, x, wt, NULL, y0, oh, ow, sc, NULL, NNC_ACT_NONE, 0.0f);
            for (int i = 0; i < t->n; i++)
                for (int o = 0; o < t->k; o++)
                    for (size_t p = 0; p < plane; p++) {
                        float v = y0[(size_t)i * ys1 + (size_t)o * plane + p] + res[5 + (size_t)i * rst + (size_t)o * plane + p];
                        if (o < act_k) v = v < 0.0f ? 0.0f : v > 6.0f ? 6.0f : v;
                        y0[(size_t)i * ys1 + (size_t)o * plane + p] = v;
                    }
            check_equal(y, y0, ysz, "conv2d with act_k and a strided residual");
            free(x), free(y), free(y0), free(res), free(wt), free(sc);
        }
}

static void test_conv2d_epilogue(void **state)
{
    static const int cases[] = {1, 2, 5, 9, 10, 15};  /* stride 2, no bias, depthwise, 1x1 direct, grouped, ResNet */
    Rng r = {0xE91ULL};
    (void)state;
    for (int act = NNC_ACT_NONE; act < N_ACTS; act++)
        for (int res = 0; res <= 1; res++)
            for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
                run_conv2d_epilogue(&r, &conv_cases[cases[i]], act, res);
}

/* ---- the depthwise fast paths (issue 11) ---- */

/* The plain loop test_dw_plane_order compares with: rows [oy0, oy1) of one
 * plane, each output's taps inside the image added to b in kernel order. */
static void dw_plane_plain(const float *x, int h, int w, const float *wk, float b, float *y, int oy0, int oy1, int ow,
                           int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw)
{
    for (int oy = oy0; oy < oy1; oy++)
        for (int ox = 0; ox < ow; ox++) {
            float s = b;
            for (int ki = 0; ki < kh; ki++)
                for (int kj = 0; kj < kw; kj++) {
                    int iy = oy * sh - ph + ki * dh, ix = ox * sw - pw + kj * dw;
                    if (iy >= 0 && iy < h && ix >= 0 && ix < w) s += wk[ki * kw + kj] * x[iy * w + ix];
                }
            y[(oy - oy0) * ow + ox] = s;
        }
}

/* nnc_dw_plane's 3x3 paths (nnc_dw3_plane) on rows wide enough for their
 * vector steps (16 outputs), the moved-back last step, several stride-2
 * chunks (128 outputs) and groups of output rows, and the flattened run of
 * "same" stride-1 planes: bit for bit the plain loop, for a random band of
 * rows [oy0, oy1) (nnc_dwpw's tiles), writing nothing past the band. Half the
 * cases have b = -0.0 and inputs with signed zeros, where adding a padding
 * tap's +-0 product instead of skipping it would show. */
static void test_dw_plane_wide(void **state)
{
    static const int widths[] = {1, 2, 3, 7, 14, 15, 16, 17, 18, 31, 32, 33, 34, 35, 47, 56, 63, 64, 65, 66,
                                 112, 129, 254, 255, 256, 257, 258, 259, 260, 300};
    (void)state;
    Rng r = {0x3D3DULL};
    for (int it = 0; it < 3000; it++) {
        int w = widths[rng_int(&r, 0, (int)(sizeof widths / sizeof widths[0]) - 1)] + rng_int(&r, 0, 1);
        int h = rng_int(&r, 1, it % 3 ? 9 : 40), sh = rng_int(&r, 1, 2), sw = rng_int(&r, 1, 2);
        int ph = rng_int(&r, 0, 2), pw = rng_int(&r, 0, 2), dh = rng_int(&r, 1, 2), dw = rng_int(&r, 1, 2);
        int oh = conv_out(h, 3, sh, ph, dh), ow = conv_out(w, 3, sw, pw, dw), zeros = it % 2;
        if (it % 4 == 0) sh = sw = 1, ph = pw = dh = dw = 1, oh = h, ow = w;  /* "same": the flattened run */
        if (it % 4 == 1) sh = sw = 2, ph = pw = dh = dw = 1, oh = conv_out(h, 3, 2, 1, 1), ow = conv_out(w, 3, 2, 1, 1);
        if (oh < 1 || ow < 1) continue;
        int oy0 = rng_int(&r, 0, oh - 1), oy1 = rng_int(&r, oy0 + 1, oh);
        if (it % 3 == 0) oy0 = 0, oy1 = oh;
        size_t count = (size_t)(oy1 - oy0) * ow;
        float *x = rand_floats(&r, (size_t)h * w, 1.0f), *wk = rand_floats(&r, 9, 1.0f);
        float *y = nan_floats(count + 7), *want = nan_floats(count), b = zeros ? -0.0f : rng_float(&r);
        if (zeros)
            for (int i = 0; i < h * w; i++)
                if (rng_int(&r, 0, 2) == 0) x[i] = rng_int(&r, 0, 1) ? 0.0f : -0.0f;
        dw_plane_plain(x, h, w, wk, b, want, oy0, oy1, ow, 3, 3, sh, sw, ph, pw, dh, dw);
        nnc_dw_plane(x, h, w, wk, b, y, oy0, oy1, ow, 3, 3, sh, sw, ph, pw, dh, dw);
        char what[128];
        snprintf(what, sizeof what, "dw_plane %dx%d rows [%d, %d) s%d,%d p%d,%d d%d,%d b %g", h, w, oy0, oy1, sh, sw, ph,
                 pw, dh, dw, (double)b);
        check_equal(y, want, count, what);
        for (size_t i = count; i < count + 7; i++) assert_true(isnan(y[i]));
        free(x), free(wk), free(y), free(want);
    }
}

/* nnc_dw_plane's stride-1 path for kernels not 3 wide (nnc_dwk_s1: LeNet-5's
 * 5x5 first layer) on rows wide enough for its steps of 16 outputs, with the
 * moved-back last step, dilation, padding, bands of rows, b = -0.0 and signed
 * zeros: bit for bit the plain loop, nothing written past the band. */
static void test_dw_plane_wide_k(void **state)
{
    static const int widths[] = {16, 17, 20, 28, 31, 32, 33, 47, 64, 65, 100};
    (void)state;
    Rng r = {0x5D5DULL};
    for (int it = 0; it < 1500; it++) {
        int w = widths[rng_int(&r, 0, (int)(sizeof widths / sizeof widths[0]) - 1)] + rng_int(&r, 0, 8);
        int kh = rng_int(&r, 1, 7), kw = rng_int(&r, 1, 7), h = rng_int(&r, 1, 12), sh = rng_int(&r, 1, 2);
        int ph = rng_int(&r, 0, 3), pw = rng_int(&r, 0, 3), dh = rng_int(&r, 1, 2), dw = rng_int(&r, 1, 2);
        int zeros = it % 2;
        if (kw == 3) kw = 5;
        if (it % 4 == 0) kh = kw = 5, sh = dh = dw = 1, ph = pw = 2;  /* LeNet-5's conv1 */
        int oh = conv_out(h, kh, sh, ph, dh), ow = conv_out(w, kw, 1, pw, dw);
        if (oh < 1 || ow < 1) continue;
        int oy0 = rng_int(&r, 0, oh - 1), oy1 = rng_int(&r, oy0 + 1, oh);
        if (it % 3 == 0) oy0 = 0, oy1 = oh;
        unsigned rows = (unsigned)(oy1 - oy0), cols = (unsigned)ow;
        size_t count = (size_t)rows * cols;
        float *x = rand_floats(&r, (size_t)h * w, 1.0f), *wk = rand_floats(&r, (size_t)kh * kw, 1.0f);
        float *y = nan_floats(count + 7), *want = nan_floats(count), b = zeros ? -0.0f : rng_float(&r);
        if (zeros)
            for (int i = 0; i < h * w; i++)
                if (rng_int(&r, 0, 2) == 0) x[i] = rng_int(&r, 0, 1) ? 0.0f : -0.0f;
        dw_plane_plain(x, h, w, wk, b, want, oy0, oy1, ow, kh, kw, sh, 1, ph, pw, dh, dw);
        nnc_dw_plane(x, h, w, wk, b, y, oy0, oy1, ow, kh, kw, sh, 1, ph, pw, dh, dw);
        char what[128];
        snprintf(what, sizeof what, "dw_plane %dx%d k%dx%d rows [%d, %d) s%d,1 p%d,%d d%d,%d b %g", h, w, kh, kw, oy0,
                 oy1, sh, ph, pw, dh, dw, (double)b);
        check_equal(y, want, count, what);
        for (size_t i = count; i < count + 7; i++) assert_true(isnan(y[i]));
        free(x), free(wk), free(y), free(want);
    }
}

/* nnc_dwpw against a double-precision reference of the whole chain
 * (depthwise conv + bias, activation, 1x1 conv + bias, + residual,
 * activation) on odd shapes: h, w 1..11, strides 1..2, padding 0..2,
 * dilation 1..2, kernels 1x1, 3x3, 5x5, 1..17 channels, with and without
 * biases, residual and activations, batch 1..3 with batch strides, tiles of
 * 1 row to more than the map. */
static void test_dwpw_odd_shapes(void **state)
{
    static const int kernels[] = {1, 3, 5};
    (void)state;
    Rng r = {0xD1CEULL};
    for (int it = 0; it < 1500; it++) {
        int n = rng_int(&r, 1, 3), c = rng_int(&r, 1, 17), k = rng_int(&r, 1, 17), h = rng_int(&r, 1, 11);
        int w = rng_int(&r, 1, 11), kh = kernels[rng_int(&r, 0, 2)], s = rng_int(&r, 1, 2), pad = rng_int(&r, 0, 2);
        int dil = rng_int(&r, 1, 2), bias = rng_int(&r, 0, 1), res = rng_int(&r, 0, 1);
        int dact = rng_int(&r, 0, N_ACTS - 1), act = rng_int(&r, 0, N_ACTS - 1);
        int oh = conv_out(h, kh, s, pad, dil), ow = conv_out(w, kh, s, pad, dil);
        if (oh < 1 || ow < 1) continue;
        int tile = rng_int(&r, 1, oh + 1);
        ConvCase dwc = {n, c, h, w, c, kh, kh, s, s, pad, pad, dil, dil, c, bias, 0};
        size_t xs = (size_t)c * h * w + 3, ys = (size_t)k * oh * ow + 5, plane = (size_t)oh * ow;
        float *x = rand_floats(&r, (size_t)n * xs, 1.0f), *xc = new_floats((size_t)n * c * h * w);
        float *dwt = rand_floats(&r, (size_t)c * kh * kh, 1.0f), *dwb = bias ? rand_floats(&r, (size_t)c, 1.0f) : NULL;
        float *pwt = rand_floats(&r, (size_t)k * c, 1.0f), *pwb = bias ? rand_floats(&r, (size_t)k, 1.0f) : NULL;
        float *resid = res ? rand_floats(&r, (size_t)n * k * plane, 1.0f) : NULL;
        float *y = nan_floats((size_t)n * ys), *out = new_floats((size_t)n * k * plane);
        float *sc = nan_floats(nnc_dwpw_scratch(c, ow, tile));
        double *t = new_doubles((size_t)n * c * plane), *ref = new_doubles((size_t)n * k * plane);
        char what[160];
        for (int i = 0; i < n; i++) memcpy(xc + (size_t)i * c * h * w, x + (size_t)i * xs, (size_t)c * h * w * sizeof(float));
        ref_conv2d(&dwc, xc, dwt, dwb, oh, ow, t);
        for (size_t e = 0; e < (size_t)n * c * plane; e++) t[e] = act_ref(dact, t[e]);
        for (int i = 0; i < n; i++)
            for (int o = 0; o < k; o++)
                for (size_t p = 0; p < plane; p++) {
                    double v = pwb ? pwb[o] : 0.0;
                    for (int ch = 0; ch < c; ch++) v += (double)pwt[o * c + ch] * t[((size_t)i * c + ch) * plane + p];
                    if (resid) v += resid[((size_t)i * k + o) * plane + p];
                    ref[((size_t)i * k + o) * plane + p] = act_ref(act, v);
                }
        nnc_dwpw(n, x, xs, c, h, w, dwt, dwb, kh, kh, s, s, pad, pad, dil, dil, dact, 0.125f, pwt, pwb, y, ys, k, oh,
                 ow, resid, act, 0.125f, tile, sc);
        for (int i = 0; i < n; i++) {
            memcpy(out + (size_t)i * k * plane, y + (size_t)i * ys, (size_t)k * plane * sizeof(float));
            for (size_t e = (size_t)k * plane; e < ys; e++) assert_true(isnan(y[(size_t)i * ys + e]));
        }
        snprintf(what, sizeof what, "dwpw n%d c%d %dx%d k%d %dx%d s%d p%d d%d bias%d res%d %s/%s tile %d", n, c, h, w,
                 k, kh, kh, s, pad, dil, bias, res, act_names[dact], act_names[act], tile);
        check_close(out, ref, (size_t)n * k * plane, what);
        free(x), free(xc), free(dwt), free(dwb), free(pwt), free(pwb), free(resid), free(y), free(out), free(sc);
        free(t), free(ref);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_conv2d),
        cmocka_unit_test(test_conv_transpose2d),
        cmocka_unit_test(test_conv2d_epilogue),
        cmocka_unit_test(test_conv2d_act_channels),
        cmocka_unit_test(test_conv2d_blocks),
        cmocka_unit_test(test_dw_plane_order),
        cmocka_unit_test(test_conv_transpose2d_epilogue),
        cmocka_unit_test(test_dwpw),
        cmocka_unit_test(test_dw_plane_wide),
        cmocka_unit_test(test_dw_plane_wide_k),
        cmocka_unit_test(test_dwpw_odd_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
