/* test_kernels.c: every kernel of runtime/snippets/kernels.c against a naive
 * reference, and every section of that file compiled on its own.
 *
 * The references are direct loops written from each op's definition (the
 * PyTorch documentation), in double precision, deliberately sharing no code
 * with the kernels (no im2col, no GEMM, no window clipping arithmetic). Shapes
 * come from fixed lists that hit the edge cases by name (padding, stride,
 * dilation, groups, non-square windows, ceil-mode pooling, batch > 1) and from
 * a fixed-seed xorshift generator, so a failure reproduces exactly.
 *
 * Tolerance, for every kernel: max|out - ref| <= 1e-4 * max(1, max|ref|).
 * Outputs are pre-filled with NaN, so an element the kernel forgets to write
 * fails the comparison.
 *
 * This file is built twice: as test_kernels (the kernels' own GEMM) and as
 * test_kernels_blas (-DNNC_USE_CBLAS=1, OpenBLAS). */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/snippets/kernels.c"
#include "tests/unit/sections.h"

/* ---- helpers: RNG, buffers, comparison ---- */

typedef struct Rng { uint64_t s; } Rng;  /* xorshift64*, never seeded with 0 */

static uint64_t rng_next(Rng *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1DULL;
}

static float rng_float(Rng *r)  /* uniform in [-1, 1) */
{
    return (float)((double)(rng_next(r) >> 40) / (double)(1ULL << 23) - 1.0);
}

static int rng_int(Rng *r, int lo, int hi)  /* uniform in [lo, hi] */
{
    return lo + (int)(rng_next(r) % (uint64_t)(hi - lo + 1));
}

static float *new_floats(size_t count)
{
    float *p = malloc((count ? count : 1) * sizeof *p);
    assert_non_null(p);
    return p;
}

static double *new_doubles(size_t count)
{
    double *p = calloc(count ? count : 1, sizeof *p);
    assert_non_null(p);
    return p;
}

static float *rand_floats(Rng *r, size_t count, float scale)
{
    float *p = new_floats(count);
    for (size_t i = 0; i < count; i++) p[i] = scale * rng_float(r);
    return p;
}

static float *nan_floats(size_t count)
{
    float *p = new_floats(count);
    for (size_t i = 0; i < count; i++) p[i] = NAN;
    return p;
}

/* Fails unless max|out - ref| <= 1e-4 * max(1, max|ref|) (NaN in out fails). */
static void check_close(const float *out, const double *ref, size_t count, const char *what)
{
    double maxref = 1.0, maxdiff = 0.0;
    size_t worst = 0;
    int nan = 0;
    for (size_t i = 0; i < count; i++)
        if (fabs(ref[i]) > maxref) maxref = fabs(ref[i]);
    for (size_t i = 0; i < count && !nan; i++) {
        double d = fabs((double)out[i] - ref[i]);
        if (isnan(d) || d > maxdiff) maxdiff = d, worst = i, nan = isnan(d);
    }
    if (nan || maxdiff > 1e-4 * maxref)
        fail_msg("%s: max|diff| %g at %zu (got %g, want %g), max|ref| %g", what, maxdiff, worst,
                 (double)out[worst], ref[worst], maxref);
}

static void check_equal(const float *out, const float *want, size_t count, const char *what)
{
    for (size_t i = 0; i < count; i++)
        if (memcmp(&out[i], &want[i], sizeof(float)) != 0)
            fail_msg("%s: element %zu is %g, want %g", what, i, (double)out[i], (double)want[i]);
}

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

/* ---- batchnorm, linear ---- */

static void run_batchnorm(Rng *r, int n, int c, long hw, int affine, int in_place)
{
    size_t sz = (size_t)n * c * hw;
    float *x = rand_floats(r, sz, 3.0f), *y = in_place ? x : nan_floats(sz);
    float *gamma = affine ? rand_floats(r, (size_t)c, 2.0f) : NULL;
    float *beta = affine ? rand_floats(r, (size_t)c, 1.0f) : NULL;
    float *mean = rand_floats(r, (size_t)c, 1.0f), *var = rand_floats(r, (size_t)c, 1.0f);
    double *ref = new_doubles(sz);
    const float eps = 1e-5f;
    for (int ch = 0; ch < c; ch++) var[ch] = var[ch] * var[ch] + (ch % 3 == 0 ? 0.0f : 0.05f);  /* some var 0-ish */
    for (size_t e = 0; e < sz; e++) {
        int ch = (int)(e / (size_t)hw % (size_t)c);
        ref[e] = ((double)x[e] - mean[ch]) / sqrt((double)var[ch] + eps) * (affine ? gamma[ch] : 1.0) +
                 (affine ? beta[ch] : 0.0);
    }
    nnc_batchnorm(n, x, (size_t)c * (size_t)hw, c, hw, gamma, beta, mean, var, eps, y, (size_t)c * (size_t)hw);
    check_close(y, ref, sz, "batchnorm");
    if (!in_place) free(y);
    free(x), free(gamma), free(beta), free(mean), free(var), free(ref);
}

static void test_batchnorm(void **state)
{
    Rng r = {0xBA7C4ULL};
    (void)state;
    run_batchnorm(&r, 1, 1, 1, 1, 0);
    run_batchnorm(&r, 3, 7, 1, 1, 0);    /* BatchNorm1d on features */
    run_batchnorm(&r, 2, 5, 35, 1, 0);
    run_batchnorm(&r, 2, 5, 35, 0, 0);   /* affine=False */
    run_batchnorm(&r, 4, 16, 49, 1, 1);  /* in place */
}

/* ---- bn_fold ---- */

static float *positive_floats(Rng *r, size_t count)  /* in [0.5, 1.5): gammas and variances */
{
    float *p = new_floats(count);
    for (size_t i = 0; i < count; i++) p[i] = 1.0f + 0.5f * rng_float(r);
    return p;
}

/* A weight of shape [a][b][inner] whose output channel is dim 0 (conv2d, linear:
 * transposed 0) or, per group of a/groups rows, dim 1 (conv_transpose2d). */
static void run_bn_fold_weight(Rng *r, int a, int b, int inner, int groups, int transposed)
{
    int c_out = transposed ? b * groups : a;
    size_t count = (size_t)a * b * inner;
    float *w = rand_floats(r, count, 1.0f), *gamma = positive_floats(r, c_out), *var = positive_floats(r, c_out);
    float *y = nan_floats(count), eps = 1e-3f;
    double *ref = new_doubles(count);
    char what[96];
    for (int i = 0; i < a; i++)
        for (int j = 0; j < b; j++)
            for (int p = 0; p < inner; p++) {
                int o = transposed ? i / (a / groups) * b + j : i;
                size_t at = ((size_t)i * b + j) * inner + p;
                ref[at] = w[at] * (double)gamma[o] / sqrt((double)var[o] + eps);
            }
    if (transposed) nnc_bn_fold_weight(w, a, b, inner, groups, gamma, var, eps, y);
    else nnc_bn_fold_weight(w, a, 1, (long)b * inner, a, gamma, var, eps, y);
    snprintf(what, sizeof what, "bn_fold_weight %dx%dx%d groups %d transposed %d", a, b, inner, groups, transposed);
    check_close(y, ref, count, what);
    free(w), free(gamma), free(var), free(y), free(ref);
}

static void run_bn_fold_bias(Rng *r, int c, int has_bias)
{
    float *gamma = positive_floats(r, c), *beta = rand_floats(r, c, 1.0f), *mean = rand_floats(r, c, 1.0f);
    float *var = positive_floats(r, c), *b = has_bias ? rand_floats(r, c, 1.0f) : NULL, *y = nan_floats(c);
    double *ref = new_doubles(c);
    char what[64];
    for (int o = 0; o < c; o++)
        ref[o] = ((b ? b[o] : 0.0) - mean[o]) * gamma[o] / sqrt((double)var[o] + 1e-5) + beta[o];
    nnc_bn_fold_bias(c, gamma, beta, mean, var, 1e-5f, b, y);
    snprintf(what, sizeof what, "bn_fold_bias c%d bias%d", c, has_bias);
    check_close(y, ref, c, what);
    free(gamma), free(beta), free(mean), free(var), free(b), free(y), free(ref);
}

/* The folded layer equals the layer then batchnorm, through the real conv
 * kernels: the channel arithmetic agrees with nnc_conv2d and nnc_conv_transpose2d. */
static void run_bn_fold_conv(Rng *r, int transposed, int c, int k, int groups, int has_bias)
{
    int n = 2, h = 5, w = 6, ks = 3, oh = transposed ? h + 2 : h, ow = transposed ? w + 2 : w;
    int pad = transposed ? 0 : 1;
    size_t wcount = (size_t)(transposed ? c * (k / groups) : k * (c / groups)) * ks * ks;
    size_t ycount = (size_t)n * k * oh * ow;
    size_t scratch = transposed ? nnc_conv_transpose2d_scratch(h, w, k, ks, ks, groups)
                                : nnc_conv2d_scratch(n, c, h, w, k, ks, ks, 1, 1, pad, pad, oh, ow, groups, 0);
    float *x = rand_floats(r, (size_t)n * c * h * w, 1.0f), *wt = rand_floats(r, wcount, 1.0f);
    float *bias = has_bias ? rand_floats(r, k, 1.0f) : NULL, *gamma = positive_floats(r, k);
    float *beta = rand_floats(r, k, 1.0f), *mean = rand_floats(r, k, 1.0f), *var = positive_floats(r, k);
    float *wf = nan_floats(wcount), *bf = nan_floats(k), *y = nan_floats(ycount), *yf = nan_floats(ycount);
    float *sc = new_floats(scratch);
    double *ref = new_doubles(ycount);
    char what[96];
    if (transposed) {
        nnc_bn_fold_weight(wt, c, k / groups, (long)ks * ks, groups, gamma, var, 1e-5f, wf);
        nnc_conv_transpose2d(n, x, c, h, w, wt, bias, y, k, oh, ow, ks, ks, 1, 1, pad, pad, 1, 1, groups, sc, NULL,
                             NNC_ACT_NONE, 0.0f);
    } else {
        nnc_bn_fold_weight(wt, k, 1, (long)(c / groups) * ks * ks, k, gamma, var, 1e-5f, wf);
        nnc_conv2d(n, x, (size_t)c * h * w, c, h, w, wt, bias, y, (size_t)k * oh * ow, k, oh, ow, ks, ks, 1, 1, pad,
                   pad, 1, 1, groups, sc, NULL, 0, NNC_ACT_NONE, 0.0f, k, NULL, NULL, NNC_ACT_NONE, 0.0f);
    }
    nnc_bn_fold_bias(k, gamma, beta, mean, var, 1e-5f, bias, bf);
    nnc_batchnorm(n, y, (size_t)k * oh * ow, k, (long)oh * ow, gamma, beta, mean, var, 1e-5f, y,
                  (size_t)k * oh * ow);
    for (size_t i = 0; i < ycount; i++) ref[i] = y[i];
    if (transposed)
        nnc_conv_transpose2d(n, x, c, h, w, wf, bf, yf, k, oh, ow, ks, ks, 1, 1, pad, pad, 1, 1, groups, sc, NULL,
                             NNC_ACT_NONE, 0.0f);
    else
        nnc_conv2d(n, x, (size_t)c * h * w, c, h, w, wf, bf, yf, (size_t)k * oh * ow, k, oh, ow, ks, ks, 1, 1, pad,
                   pad, 1, 1, groups, sc, NULL, 0, NNC_ACT_NONE, 0.0f, k, NULL, NULL, NNC_ACT_NONE, 0.0f);
    snprintf(what, sizeof what, "bn folded into %s c%d k%d g%d bias%d", transposed ? "conv_transpose2d" : "conv2d", c,
             k, groups, has_bias);
    check_close(yf, ref, ycount, what);
    free(x), free(wt), free(bias), free(gamma), free(beta), free(mean), free(var);
    free(wf), free(bf), free(y), free(yf), free(sc), free(ref);
}

static void test_bn_fold(void **state)
{
    Rng r = {0xF01DULL};
    (void)state;
    run_bn_fold_weight(&r, 6, 4, 9, 1, 0);    /* conv2d [6][4][3][3] */
    run_bn_fold_weight(&r, 5, 10, 1, 1, 0);   /* linear [5][10] */
    run_bn_fold_weight(&r, 4, 3, 9, 1, 1);    /* conv_transpose2d [4][3][3][3] */
    run_bn_fold_weight(&r, 4, 3, 9, 2, 1);    /* ... groups 2: c_out 6 */
    run_bn_fold_weight(&r, 8, 1, 4, 8, 1);    /* ... depthwise */
    run_bn_fold_bias(&r, 1, 1);
    run_bn_fold_bias(&r, 7, 1);
    run_bn_fold_bias(&r, 7, 0);
    run_bn_fold_conv(&r, 0, 4, 6, 2, 1);
    run_bn_fold_conv(&r, 0, 4, 4, 4, 0);
    run_bn_fold_conv(&r, 1, 4, 6, 2, 1);
    run_bn_fold_conv(&r, 1, 6, 3, 3, 0);
    run_bn_fold_conv(&r, 1, 3, 5, 1, 0);
}

static void run_linear(Rng *r, int n, int in, int out, int has_bias)
{
    float *x = rand_floats(r, (size_t)n * in, 1.0f), *wt = rand_floats(r, (size_t)out * in, 1.0f);
    float *bias = has_bias ? rand_floats(r, (size_t)out, 1.0f) : NULL, *y = nan_floats((size_t)n * out);
    double *ref = new_doubles((size_t)n * out);
    char what[64];
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double s = bias ? bias[o] : 0.0;
            for (int p = 0; p < in; p++) s += (double)x[i * in + p] * wt[o * in + p];
            ref[i * out + o] = s;
        }
    nnc_linear(n, x, in, wt, bias, y, out, NULL, NNC_ACT_NONE, 0.0f);
    snprintf(what, sizeof what, "linear n%d in%d out%d bias%d", n, in, out, has_bias);
    check_close(y, ref, (size_t)n * out, what);
    free(x), free(wt), free(bias), free(y), free(ref);
}

static void test_linear(void **state)
{
    Rng r = {0x11AEA7ULL};
    (void)state;
    run_linear(&r, 1, 1, 1, 1);
    run_linear(&r, 3, 17, 10, 1);
    run_linear(&r, 3, 17, 10, 0);
    run_linear(&r, 5, 400, 33, 1);
    run_linear(&r, 2, 3, 120, 0);
    for (int i = 0; i < 20; i++) run_linear(&r, rng_int(&r, 1, 8), rng_int(&r, 1, 300), rng_int(&r, 1, 50), i % 2);
}

/* ---- elementwise ---- */

enum { EW_COUNT = 1037 };

/* Random values with large ones mixed in, to exercise overflow paths. */
static float *ew_input(Rng *r)
{
    static const float big[] = {0.0f, -0.0f, 88.0f, -88.0f, 100.0f, -100.0f, 1e4f, -1e4f, 1e30f, -1e30f, 6.0f, -6.0f};
    float *x = rand_floats(r, EW_COUNT, 8.0f);
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) x[i * 37] = big[i];
    return x;
}

typedef enum { EW_RELU, EW_RELU6, EW_LEAKY, EW_SIGMOID, EW_TANH, EW_COPY } EwOp;

static double ew_ref(EwOp op, double v)
{
    switch (op) {
    case EW_RELU: return v > 0 ? v : 0.0;
    case EW_RELU6: return v < 0 ? 0.0 : v > 6 ? 6.0 : v;
    case EW_LEAKY: return v >= 0 ? v : 0.125 * v;
    case EW_SIGMOID: return v >= 0 ? 1.0 / (1.0 + exp(-v)) : exp(v) / (1.0 + exp(v));
    case EW_TANH: return tanh(v);
    case EW_COPY: return v;
    }
    return NAN;
}

static void ew_run(EwOp op, const float *x, float *y)
{
    switch (op) {
    case EW_RELU: nnc_relu(EW_COUNT, x, y); break;
    case EW_RELU6: nnc_relu6(EW_COUNT, x, y); break;
    case EW_LEAKY: nnc_leaky_relu(EW_COUNT, x, y, 0.125f); break;
    case EW_SIGMOID: nnc_sigmoid(EW_COUNT, x, y); break;
    case EW_TANH: nnc_tanh(EW_COUNT, x, y); break;
    case EW_COPY: nnc_copy(EW_COUNT, x, y); break;
    }
}

static void test_elementwise(void **state)
{
    static const char *const names[] = {"relu", "relu6", "leaky_relu", "sigmoid", "tanh", "copy"};
    Rng r = {0xE1E3ULL};
    (void)state;
    for (int op = EW_RELU; op <= EW_COPY; op++)
        for (int in_place = 0; in_place <= 1; in_place++) {
            float *x = ew_input(&r), *y = in_place ? x : nan_floats(EW_COUNT);
            double *ref = new_doubles(EW_COUNT);
            char what[64];
            for (size_t i = 0; i < EW_COUNT; i++) ref[i] = ew_ref((EwOp)op, x[i]);
            ew_run((EwOp)op, x, y);
            snprintf(what, sizeof what, "%s%s", names[op], in_place ? " in place" : "");
            /* Large values dominate max|ref| for relu/copy; check those exactly as well. */
            check_close(y, ref, EW_COUNT, what);
            for (size_t i = 0; i < EW_COUNT; i++)
                if (op != EW_TANH && op != EW_SIGMOID && (double)y[i] != (double)(float)ref[i])
                    fail_msg("%s: element %zu is %g, want %g", what, i, (double)y[i], ref[i]);
            if (!in_place) free(y);
            free(x), free(ref);
        }
}

static void test_sigmoid_extremes(void **state)
{
    float x[] = {-1e30f, -1e4f, -200.0f, -88.8f, -30.0f, 0.0f, 30.0f, 88.8f, 200.0f, 1e4f, 1e30f, INFINITY, -INFINITY};
    float y[sizeof x / sizeof x[0]];
    (void)state;
    nnc_sigmoid(sizeof x / sizeof x[0], x, y);
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++) {
        assert_false(isnan(y[i]));
        assert_true(y[i] >= 0.0f && y[i] <= 1.0f);
    }
    assert_true(y[0] == 0.0f && y[10] == 1.0f && y[5] == 0.5f && y[11] == 1.0f && y[12] == 0.0f);
    nnc_tanh(sizeof x / sizeof x[0], x, y);
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++) assert_true(fabsf(y[i]) <= 1.0f);
}

static void test_add_and_copy(void **state)
{
    Rng r = {0xADDULL};
    float *a = rand_floats(&r, EW_COUNT, 5.0f), *b = rand_floats(&r, EW_COUNT, 5.0f);
    float *y = nan_floats(EW_COUNT), *want = new_floats(EW_COUNT);
    (void)state;
    for (size_t i = 0; i < EW_COUNT; i++) want[i] = a[i] + b[i];
    nnc_add(EW_COUNT, a, b, y);
    check_equal(y, want, EW_COUNT, "add");
    memcpy(y, a, EW_COUNT * sizeof(float));
    nnc_add(EW_COUNT, y, b, y);  /* y aliases a */
    check_equal(y, want, EW_COUNT, "add, y == a");
    memcpy(y, b, EW_COUNT * sizeof(float));
    nnc_add(EW_COUNT, a, y, y);  /* y aliases b */
    check_equal(y, want, EW_COUNT, "add, y == b");
    for (size_t i = 0; i < EW_COUNT; i++) want[i] = a[i] + a[i];
    nnc_add(EW_COUNT, a, a, a);  /* all three the same */
    check_equal(a, want, EW_COUNT, "add, y == a == b");
    memcpy(want, b + 10, (EW_COUNT - 10) * sizeof(float));
    nnc_copy(EW_COUNT - 10, b + 10, b);  /* overlapping ranges */
    check_equal(b, want, EW_COUNT - 10, "copy, overlapping");
    nnc_copy(0, NULL, NULL);
    free(a), free(b), free(y), free(want);
}

/* ---- pooling ---- */

typedef struct PoolCase {
    int n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ceil;
} PoolCase;

static const PoolCase pool_cases[] = {
    /* n c   h   w kh kw sh sw ph pw dh dw ceil */
    {1, 1, 4, 4, 2, 2, 2, 2, 0, 0, 1, 1, 0},    /* plain 2x2 */
    {2, 3, 7, 7, 2, 2, 2, 2, 0, 0, 1, 1, 1},    /* ceil mode: last window half off the edge */
    {2, 3, 15, 13, 3, 3, 2, 2, 1, 1, 1, 1, 0},  /* ResNet stem pool */
    {1, 4, 14, 13, 3, 3, 2, 2, 0, 0, 1, 1, 1},  /* GoogLeNet ceil pool */
    {2, 2, 10, 11, 3, 3, 2, 2, 1, 1, 1, 1, 1},  /* ceil with padding */
    {1, 2, 9, 10, 2, 3, 1, 2, 1, 0, 1, 1, 0},   /* non-square */
    {2, 2, 11, 12, 3, 2, 3, 2, 1, 1, 1, 1, 1},  /* non-square ceil */
    {1, 3, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1, 0},    /* stride 1 same (Inception branch) */
    {1, 1, 5, 5, 5, 5, 5, 5, 2, 2, 1, 1, 1},    /* one window, padded */
    {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0},    /* 1x1 */
};

/* PyTorch's pooling output size, floor or ceil; a ceil window must start inside the padded image. */
static int pool_out(int in, int k, int s, int p, int d, int ceil_mode)
{
    int span = in + 2 * p - d * (k - 1) - 1;
    int o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (ceil_mode && (o - 1) * s >= in + p) o--;
    return o;
}

static void ref_maxpool(const PoolCase *t, const float *x, int oh, int ow, double *ref)
{
    for (int pl = 0; pl < t->n * t->c; pl++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                double m = -INFINITY;
                for (int ki = 0; ki < t->kh; ki++)
                    for (int kj = 0; kj < t->kw; kj++) {
                        int iy = oy * t->sh - t->ph + ki * t->dh, ix = ox * t->sw - t->pw + kj * t->dw;
                        if (iy >= 0 && iy < t->h && ix >= 0 && ix < t->w && x[(pl * t->h + iy) * t->w + ix] > m)
                            m = x[(pl * t->h + iy) * t->w + ix];
                    }
                ref[(pl * oh + oy) * ow + ox] = m;
            }
}

/* Maxpool on small integers (many ties), and on random reals. */
static void run_maxpool(Rng *r, const PoolCase *t)
{
    int oh = pool_out(t->h, t->kh, t->sh, t->ph, t->dh, t->ceil);
    int ow = pool_out(t->w, t->kw, t->sw, t->pw, t->dw, t->ceil);
    size_t xsz = (size_t)t->n * t->c * t->h * t->w, ysz = (size_t)t->n * t->c * oh * ow;
    char what[128];
    snprintf(what, sizeof what, "maxpool2d %dx%d k%d,%d s%d,%d p%d,%d d%d,%d ceil%d", t->h, t->w, t->kh, t->kw, t->sh,
             t->sw, t->ph, t->pw, t->dh, t->dw, t->ceil);
    for (int ties = 0; ties <= 1; ties++) {
        float *x = rand_floats(r, xsz, 4.0f), *y = nan_floats(ysz);
        double *ref = new_doubles(ysz);
        if (ties)
            for (size_t i = 0; i < xsz; i++) x[i] = (float)rng_int(r, -2, 1);
        ref_maxpool(t, x, oh, ow, ref);
        nnc_maxpool2d(t->n, x, xsz / (size_t)t->n, t->c, t->h, t->w, y, ysz / (size_t)t->n, oh, ow, t->kh, t->kw,
                      t->sh, t->sw, t->ph, t->pw, t->dh, t->dw);
        check_close(y, ref, ysz, what);
        if (ties) {  /* y as a channel slice at float 4 of samples 9 floats longer (concat_elim.c) */
            size_t ys1 = ysz / (size_t)t->n, st = ys1 + 9;
            float *big = nan_floats((size_t)t->n * st);
            nnc_maxpool2d(t->n, x, xsz / (size_t)t->n, t->c, t->h, t->w, big + 4, st, oh, ow, t->kh, t->kw, t->sh,
                          t->sw, t->ph, t->pw, t->dh, t->dw);
            for (int i = 0; i < t->n; i++) {
                check_equal(big + (size_t)i * st + 4, y + (size_t)i * ys1, ys1, what);
                for (size_t j = 0; j < st; j++)
                    if (j < 4 || j >= 4 + ys1) assert_true(isnan(big[(size_t)i * st + j]));
            }
            free(big);
        }
        free(x), free(y), free(ref);
    }
}

static PoolCase random_pool(Rng *r)
{
    PoolCase t;
    t.n = rng_int(r, 1, 2), t.c = rng_int(r, 1, 3);
    t.kh = rng_int(r, 1, 4), t.kw = rng_int(r, 1, 4);
    t.sh = rng_int(r, 1, 3), t.sw = rng_int(r, 1, 3);
    t.dh = rng_int(r, 1, 2), t.dw = rng_int(r, 1, 2);
    t.ph = rng_int(r, 0, (t.dh * (t.kh - 1) + 1) / 2), t.pw = rng_int(r, 0, (t.dw * (t.kw - 1) + 1) / 2);
    t.h = t.dh * (t.kh - 1) + 1 + rng_int(r, 0, 8), t.w = t.dw * (t.kw - 1) + 1 + rng_int(r, 0, 8);
    t.ceil = rng_int(r, 0, 1);
    return t;
}

static void test_maxpool2d(void **state)
{
    Rng r = {0x3A7ULL};
    PoolCase dil = {2, 2, 11, 9, 3, 2, 2, 1, 2, 1, 2, 3, 0};  /* dilation, PyTorch allows pad <= k/2 */
    (void)state;
    for (size_t i = 0; i < sizeof pool_cases / sizeof pool_cases[0]; i++) run_maxpool(&r, &pool_cases[i]);
    run_maxpool(&r, &dil);
    dil.ceil = 1;
    run_maxpool(&r, &dil);
    for (int i = 0; i < 100; i++) {
        PoolCase t = random_pool(&r);
        run_maxpool(&r, &t);
    }
}

/* AvgPool2d by counting: a tap counts toward the padded window size while it
 * lies inside the padded image (rows < h+ph, cols < w+pw), and toward the
 * unpadded size while it lies inside the image. */
static void ref_avgpool(const PoolCase *t, int cip, const float *x, int oh, int ow, double *ref)
{
    for (int pl = 0; pl < t->n * t->c; pl++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                double s = 0.0;
                int padded = 0, inside = 0;
                for (int ki = 0; ki < t->kh; ki++)
                    for (int kj = 0; kj < t->kw; kj++) {
                        int iy = oy * t->sh - t->ph + ki, ix = ox * t->sw - t->pw + kj;
                        if (iy >= t->h + t->ph || ix >= t->w + t->pw) continue;
                        padded++;
                        if (iy < 0 || iy >= t->h || ix < 0 || ix >= t->w) continue;
                        inside++;
                        s += x[(pl * t->h + iy) * t->w + ix];
                    }
                ref[(pl * oh + oy) * ow + ox] = s / (cip ? padded : inside);
            }
}

static void run_avgpool(Rng *r, const PoolCase *t, int cip)
{
    int oh = pool_out(t->h, t->kh, t->sh, t->ph, 1, t->ceil), ow = pool_out(t->w, t->kw, t->sw, t->pw, 1, t->ceil);
    size_t xsz = (size_t)t->n * t->c * t->h * t->w, ysz = (size_t)t->n * t->c * oh * ow;
    float *x = rand_floats(r, xsz, 4.0f), *y = nan_floats(ysz);
    double *ref = new_doubles(ysz);
    char what[128];
    snprintf(what, sizeof what, "avgpool2d %dx%d k%d,%d s%d,%d p%d,%d ceil%d count_include_pad%d", t->h, t->w, t->kh,
             t->kw, t->sh, t->sw, t->ph, t->pw, t->ceil, cip);
    ref_avgpool(t, cip, x, oh, ow, ref);
    nnc_avgpool2d(t->n, x, xsz / (size_t)t->n, t->c, t->h, t->w, y, ysz / (size_t)t->n, oh, ow, t->kh, t->kw, t->sh,
                  t->sw, t->ph, t->pw, cip);
    check_close(y, ref, ysz, what);
    free(x), free(y), free(ref);
}

static void test_avgpool2d(void **state)
{
    Rng r = {0xA7EULL};
    (void)state;
    for (int cip = 0; cip <= 1; cip++) {
        for (size_t i = 0; i < sizeof pool_cases / sizeof pool_cases[0]; i++) run_avgpool(&r, &pool_cases[i], cip);
        for (int i = 0; i < 100; i++) {
            PoolCase t = random_pool(&r);
            t.dh = t.dw = 1;
            t.ph = rng_int(&r, 0, t.kh / 2), t.pw = rng_int(&r, 0, t.kw / 2);
            run_avgpool(&r, &t, cip);
        }
    }
}

/* Known values from PyTorch 2 (torch.nn.AvgPool2d(3, stride=2, padding=1,
 * ceil_mode=True) on a 1x1x4x4 ramp 0..15), times 36, for both count_include_pad. */
static void test_avgpool2d_torch_values(void **state)
{
    static const double with_pad36[] = {40, 96, 60, 204, 360, 198, 150, 252, 135};
    static const double without36[] = {90, 144, 180, 306, 360, 396, 450, 504, 540};
    double with_pad[9], without[9];
    float x[16], y[9];
    (void)state;
    for (int i = 0; i < 9; i++) with_pad[i] = with_pad36[i] / 36, without[i] = without36[i] / 36;
    for (int i = 0; i < 16; i++) x[i] = (float)i;
    nnc_avgpool2d(1, x, 16, 1, 4, 4, y, 9, 3, 3, 3, 3, 2, 2, 1, 1, 1);
    check_close(y, with_pad, 9, "avgpool2d vs torch, count_include_pad");
    nnc_avgpool2d(1, x, 16, 1, 4, 4, y, 9, 3, 3, 3, 3, 2, 2, 1, 1, 0);
    check_close(y, without, 9, "avgpool2d vs torch, no pad count");
}

static void test_global_avgpool(void **state)
{
    static const long hws[] = {1, 7, 49, 1000};
    Rng r = {0x61084ULL};
    (void)state;
    for (size_t t = 0; t < sizeof hws / sizeof hws[0]; t++) {
        int n = 3, c = 5;
        long hw = hws[t];
        float *x = rand_floats(&r, (size_t)n * c * hw, 2.0f), *y = nan_floats((size_t)n * c);
        double *ref = new_doubles((size_t)n * c);
        for (int p = 0; p < n * c; p++) {
            for (long q = 0; q < hw; q++) ref[p] += x[p * hw + q];
            ref[p] /= (double)hw;
        }
        nnc_global_avgpool(n, x, c, hw, y);
        check_close(y, ref, (size_t)n * c, "global_avgpool");
        free(x), free(y), free(ref);
    }
}

/* AdaptiveAvgPool2d from its definition (start floor(i*h/oh), end ceil((i+1)*h/oh)),
 * on shrinking, equal and growing sizes, plus values printed by PyTorch. */
static void test_adaptive_avgpool2d(void **state)
{
    static const int cases[][4] = {{5, 7, 3, 4}, {6, 6, 6, 6}, {13, 13, 6, 6}, {3, 2, 7, 7}, {14, 9, 4, 4}, {1, 1, 2, 3}};
    static const double torch_5x7_to_3x4[12] = {4.0, 5.5, 7.5, 9.0, 14.5, 16.0, 18.0, 19.5, 25.0, 26.5, 28.5, 30.0};
    Rng r = {0xada97ULL};
    float x35[35], y12[12];
    (void)state;
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        int n = 2, c = 3, h = cases[t][0], w = cases[t][1], oh = cases[t][2], ow = cases[t][3];
        float *x = rand_floats(&r, (size_t)n * c * h * w, 2.0f), *y = nan_floats((size_t)n * c * oh * ow);
        float *xp = new_floats((size_t)n * c * h * w), scale[3], shift[3];
        double *ref = new_doubles((size_t)n * c * oh * ow);
        for (int ch = 0; ch < c; ch++) scale[ch] = rng_float(&r), shift[ch] = rng_float(&r);
        for (size_t e = 0; e < (size_t)n * c * h * w; e++) {  /* the prologue: relu6(x*scale + shift) */
            size_t ch = e / ((size_t)h * w) % (size_t)c;
            float v = x[e] * scale[ch] + shift[ch];
            v = v < 0.0f ? 0.0f : v;
            xp[e] = v > 6.0f ? 6.0f : v;
        }
        for (int pro = 0; pro <= 1; pro++) {
        const float *xr = pro ? xp : x;
        for (int p = 0; p < n * c; p++)
            for (int i = 0; i < oh; i++)
                for (int j = 0; j < ow; j++) {
                    int r0 = (int)floor((double)i * h / oh), r1 = (int)ceil((double)(i + 1) * h / oh);
                    int q0 = (int)floor((double)j * w / ow), q1 = (int)ceil((double)(j + 1) * w / ow);
                    double s = 0.0;
                    for (int a = r0; a < r1; a++)
                        for (int b = q0; b < q1; b++) s += xr[((size_t)p * h + a) * w + b];
                    ref[((size_t)p * oh + i) * ow + j] = s / ((r1 - r0) * (q1 - q0));
                }
        nnc_adaptive_avgpool2d(n, x, (size_t)c * h * w, c, h, w, y, (size_t)c * oh * ow, oh, ow, pro ? scale : NULL,
                               pro ? shift : NULL, NNC_ACT_RELU6, 0.0f);
        check_close(y, ref, (size_t)n * c * oh * ow, pro ? "adaptive_avgpool2d with a prologue" : "adaptive_avgpool2d");
        }
        free(x), free(y), free(ref), free(xp);
    }
    for (int i = 0; i < 35; i++) x35[i] = (float)i;
    nnc_adaptive_avgpool2d(1, x35, 35, 1, 5, 7, y12, 12, 3, 4, NULL, NULL, NNC_ACT_NONE, 0.0f);
    check_close(y12, torch_5x7_to_3x4, 12, "adaptive_avgpool2d vs torch");
}

/* ---- lrn, concat, softmax ---- */

static void run_lrn(Rng *r, int n, int c, long hw, int size, float alpha, float beta, float k)
{
    size_t sz = (size_t)n * c * hw;
    float *x = rand_floats(r, sz, 3.0f), *y = nan_floats(sz);
    double *ref = new_doubles(sz);
    char what[96];
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++)
            for (long p = 0; p < hw; p++) {
                double s = 0.0;
                for (int c2 = ch - size / 2; c2 <= ch + (size - 1) / 2; c2++)
                    if (c2 >= 0 && c2 < c) s += (double)x[(i * c + c2) * hw + p] * x[(i * c + c2) * hw + p];
                ref[(i * c + ch) * hw + p] = x[(i * c + ch) * hw + p] / pow(k + alpha * s / size, beta);
            }
    nnc_lrn(n, x, c, hw, y, size, alpha, beta, k);
    snprintf(what, sizeof what, "lrn n%d c%d hw%ld size%d alpha%g beta%g k%g", n, c, hw, size, (double)alpha,
             (double)beta, (double)k);
    check_close(y, ref, sz, what);
    free(x), free(y), free(ref);
}

static void test_lrn(void **state)
{
    Rng r = {0x1A2ULL};
    (void)state;
    run_lrn(&r, 2, 12, 9, 5, 1e-4f, 0.75f, 2.0f);  /* AlexNet */
    run_lrn(&r, 2, 7, 5, 5, 0.5f, 0.9f, 1.0f);     /* strong normalization */
    run_lrn(&r, 1, 3, 4, 4, 0.3f, 0.75f, 1.0f);    /* even size: window [c-2, c+1] */
    run_lrn(&r, 2, 3, 6, 9, 0.3f, 0.5f, 1.5f);     /* window wider than the channels */
    run_lrn(&r, 3, 4, 1, 1, 0.7f, 1.0f, 1.0f);     /* size 1, hw 1 */
}

static void test_concat(void **state)
{
    static const long parts[] = {2 * 15, 3 * 15, 1 * 15};
    Rng r = {0xCA7ULL};
    const int n = 3;
    long total = parts[0] + parts[1] + parts[2], offset = 0;
    float *y = nan_floats((size_t)n * total), *want = new_floats((size_t)n * total);
    (void)state;
    for (size_t p = 0; p < 3; p++) {
        float *x = rand_floats(&r, (size_t)n * parts[p], 1.0f);
        for (int i = 0; i < n; i++)
            memcpy(want + i * total + offset, x + i * parts[p], (size_t)parts[p] * sizeof(float));
        nnc_concat_part(n, x, parts[p], y, total, offset);
        offset += parts[p];
        free(x);
    }
    check_equal(y, want, (size_t)n * total, "concat");
    free(y), free(want);
}

static void run_softmax(Rng *r, int n, int c, long inner, float scale, int in_place)
{
    size_t sz = (size_t)n * c * inner;
    float *x = rand_floats(r, sz, scale), *y = in_place ? x : nan_floats(sz);
    double *ref = new_doubles(sz);
    char what[96];
    for (int i = 0; i < n; i++)
        for (long j = 0; j < inner; j++) {
            double m = -INFINITY, s = 0.0;
            for (int ch = 0; ch < c; ch++) m = fmax(m, x[(i * c + ch) * inner + j]);
            for (int ch = 0; ch < c; ch++) s += exp(x[(i * c + ch) * inner + j] - m);
            for (int ch = 0; ch < c; ch++) ref[(i * c + ch) * inner + j] = exp(x[(i * c + ch) * inner + j] - m) / s;
        }
    nnc_softmax(n, x, c, inner, y);
    snprintf(what, sizeof what, "softmax n%d c%d inner%ld scale%g%s", n, c, inner, (double)scale,
             in_place ? " in place" : "");
    check_close(y, ref, sz, what);
    if (!in_place) free(y);
    free(x), free(ref);
}

static void test_softmax(void **state)
{
    Rng r = {0x50F7ULL};
    (void)state;
    run_softmax(&r, 1, 1, 1, 1.0f, 0);
    run_softmax(&r, 3, 10, 1, 3.0f, 0);
    run_softmax(&r, 2, 1000, 1, 5.0f, 0);     /* ImageNet logits */
    run_softmax(&r, 2, 10, 1, 1000.0f, 0);    /* exp would overflow without the max */
    run_softmax(&r, 2, 10, 1, 1e30f, 1);
    run_softmax(&r, 2, 6, 7, 50.0f, 0);       /* over channels of [n][c][hw] */
    run_softmax(&r, 3, 5, 13, 200.0f, 1);
}

/* ---- every section compiles on its own ---- */

static void kernels_path(char *buf, size_t len)
{
#ifdef NNC_SOURCE_DIR
    snprintf(buf, len, "%s/runtime/snippets/kernels.c", NNC_SOURCE_DIR);
#else
    /* test_kernels_blas gets no NNC_SOURCE_DIR: find the repo from this file's path. */
    const char *tail = strstr(__FILE__, "tests/unit/test_kernels.c");
    snprintf(buf, len, "%.*sruntime/snippets/kernels.c", tail ? (int)(tail - __FILE__) : 0, __FILE__);
#endif
}

/* ---- epilogues of conv2d and linear ---- */

static const char *const act_names[] = {"none", "relu", "relu6", "leaky_relu", "sigmoid", "tanh"};

/* The reference of an epilogue: act(v + residual), leaky slope 0.125 as ew_ref's. */
static double epi_ref(int act, double v)
{
    static const EwOp ew[] = {EW_COPY, EW_RELU, EW_RELU6, EW_LEAKY, EW_SIGMOID, EW_TANH};
    return ew_ref(ew[act], v);
}

/* The unfused chain the epilogue replaces: nnc_add, then the activation kernel, in place. */
static void unfused_epilogue(float *y, size_t count, const float *residual, int act)
{
    if (residual) nnc_add(count, y, residual, y);
    switch (act) {
    case NNC_ACT_RELU: nnc_relu(count, y, y); break;
    case NNC_ACT_RELU6: nnc_relu6(count, y, y); break;
    case NNC_ACT_LEAKY_RELU: nnc_leaky_relu(count, y, y, 0.125f); break;
    case NNC_ACT_SIGMOID: nnc_sigmoid(count, y, y); break;
    case NNC_ACT_TANH: nnc_tanh(count, y, y); break;
    default: break;
    }
}

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
    for (size_t i = 0; i < ysz; i++) ref[i] = epi_ref(act, ref[i] + (res ? (double)res[i] : 0.0));
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

static void test_bn_scale(void **state)
{
    Rng r = {0xB5CULL};
    float gamma[7], var[7], y[7];
    double ref[7];
    (void)state;
    for (int i = 0; i < 7; i++) gamma[i] = rng_float(&r), var[i] = 0.5f + (float)i, ref[i] = gamma[i] / sqrt((double)var[i] + 1e-3);
    nnc_bn_scale(7, gamma, var, 1e-3f, y);
    check_close(y, ref, 7, "bn_scale");
}

/* conv_transpose2d's epilogue (DCGAN's generator: folded batchnorm, then relu;
 * tanh at the end) is the unfused chain bit for bit. */
static void test_conv_transpose2d_epilogue(void **state)
{
    static const int cases[] = {1, 2, 6, 14};
    Rng r = {0x7E9ULL};
    (void)state;
    for (int act = NNC_ACT_NONE; act <= NNC_ACT_TANH; act++)
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
    for (int act = NNC_ACT_NONE; act <= NNC_ACT_TANH; act++)
        for (int res = 0; res <= 1; res++)
            for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
                run_conv2d_epilogue(&r, &conv_cases[cases[i]], act, res);
}

static void run_linear_epilogue(Rng *r, int n, int in, int out, int has_bias, int act, int with_res)
{
    size_t ysz = (size_t)n * out;
    float *x = rand_floats(r, (size_t)n * in, 1.0f), *wt = rand_floats(r, (size_t)out * in, 1.0f);
    float *bias = has_bias ? rand_floats(r, (size_t)out, 1.0f) : NULL, *y = nan_floats(ysz), *y0 = nan_floats(ysz);
    float *res = with_res ? rand_floats(r, ysz, 2.0f) : NULL;
    double *ref = new_doubles(ysz);
    char what[96];
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double s = bias ? bias[o] : 0.0;
            for (int p = 0; p < in; p++) s += (double)x[i * in + p] * wt[o * in + p];
            ref[i * out + o] = epi_ref(act, s + (res ? (double)res[i * out + o] : 0.0));
        }
    nnc_linear(n, x, in, wt, bias, y, out, res, act, 0.125f);
    snprintf(what, sizeof what, "linear n%d in%d out%d bias%d, epilogue%s %s", n, in, out, has_bias,
             res ? " +res" : "", act_names[act]);
    check_close(y, ref, ysz, what);
    nnc_linear(n, x, in, wt, bias, y0, out, NULL, NNC_ACT_NONE, 0.0f);
    unfused_epilogue(y0, ysz, res, act);
    check_equal(y, y0, ysz, what);
    free(x), free(wt), free(bias), free(y), free(y0), free(res), free(ref);
}

static void test_linear_epilogue(void **state)
{
    Rng r = {0xE92ULL};
    (void)state;
    for (int act = NNC_ACT_NONE; act <= NNC_ACT_TANH; act++)
        for (int res = 0; res <= 1; res++) {
            run_linear_epilogue(&r, 3, 17, 10, 1, act, res);
            run_linear_epilogue(&r, 2, 40, 7, 0, act, res);
        }
}

static void test_sections_compile_alone(void **state)
{
    static const char *const ccs[] = {"gcc", "clang"};
    static Section s[MAX_SECTIONS];
    char path[1024], dir[] = "/tmp/nnc_kernels_XXXXXX", file[64], log[64];
    char *text;
    int n, compilers = 0;
    (void)state;
    kernels_path(path, sizeof path);
    text = read_file(path);
    if (!text) {
        print_message("cannot read %s; skipped\n", path);
        skip();
    }
    n = split_sections(text, s, 0, 0);
    assert_true(n > 1);
    assert_string_equal(s[0].name, "prologue");
    assert_non_null(mkdtemp(dir));
    snprintf(file, sizeof file, "%s/section.c", dir);
    snprintf(log, sizeof log, "%s/cc.log", dir);
    for (size_t c = 0; c < 2; c++) {
        if (!have_program(ccs[c])) continue;
        compilers++;
        for (int i = 0; i < n; i++) {
            int keep[MAX_SECTIONS] = {0};
            keep[0] = 1;
            mark_needs(s, i, keep);
            check_forbidden(&s[i]);
            write_file(file, s, n, keep);
            compile_or_fail(ccs[c], file, "-fsyntax-only", log, s[i].name);
        }
        /* The whole file, optimized, for the warnings only the optimizer finds. */
        compile_or_fail(ccs[c], path, "-O2 -c -o /dev/null", log, "the whole file");
    }
    remove(file), remove(log), rmdir(dir);
    free(text);
    assert_true(compilers > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gemm),
        cmocka_unit_test(test_conv2d),
        cmocka_unit_test(test_conv_transpose2d),
        cmocka_unit_test(test_batchnorm),
        cmocka_unit_test(test_bn_fold),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_conv2d_epilogue),
        cmocka_unit_test(test_conv2d_act_channels),
        cmocka_unit_test(test_conv2d_blocks),
        cmocka_unit_test(test_dw_plane_order),
        cmocka_unit_test(test_conv_transpose2d_epilogue),
        cmocka_unit_test(test_dwpw),
        cmocka_unit_test(test_bn_scale),
        cmocka_unit_test(test_linear_epilogue),
        cmocka_unit_test(test_elementwise),
        cmocka_unit_test(test_sigmoid_extremes),
        cmocka_unit_test(test_add_and_copy),
        cmocka_unit_test(test_maxpool2d),
        cmocka_unit_test(test_avgpool2d),
        cmocka_unit_test(test_avgpool2d_torch_values),
        cmocka_unit_test(test_global_avgpool),
        cmocka_unit_test(test_adaptive_avgpool2d),
        cmocka_unit_test(test_lrn),
        cmocka_unit_test(test_concat),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_sections_compile_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
