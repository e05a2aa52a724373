/* test_grad_kernels.c: the training kernels of runtime/snippets/grad_kernels.c
 * against finite differences of double-precision references, and every
 * section of that file compiled on its own (with its needs from kernels.c).
 *
 * Each backward kernel is checked as autograd defines it: for a random upstream
 * gradient dy, dx must equal the gradient of L(x) = sum(dy * f(x)), where f is
 * a naive forward written here from the op's definition, in double, sharing no
 * code with the kernels. That gradient is taken by central differences,
 *   dL/dx_i ~ (L(x + h e_i) - L(x - h e_i)) / 2h,  h = 1e-5,
 * whose error in double is about h^2 |L'''| + 1e-16 |L| / h, below 1e-9 for
 * the O(1) values used here (and exact up to rounding for the ops linear in
 * x: conv, linear, pooling). Piecewise ops (relu, maxpool) get inputs at least
 * 1e-3 from their kinks, so no difference straddles one.
 *
 * The gradient convention is accumulation, so every gradient buffer starts
 * with random "earlier contributions" and the check is on (after - before).
 *
 * Tolerance: max|(after - before) - fd| <= 1e-4 * max(1, max|fd|). The
 * kernels compute in fp32 (sums of at most a few hundred products, each
 * rounded to 2^-24 relative), giving errors near 1e-6 of the largest gradient;
 * 1e-4 leaves room for that and for the rounding of before + gradient, while a
 * wrong index, a missing term or a dropped scale factor gives errors of order 1.
 *
 * This file is built twice: as test_grad_kernels and, with OpenBLAS behind the
 * GEMMs, as test_grad_kernels_blas (-DNNC_USE_CBLAS=1). */
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
#include "runtime/snippets/grad_kernels.c"
#include "tests/unit/sections.h"

/* ---- helpers: RNG, tensors, finite differences, comparison ---- */

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

/* A tensor held twice: f for the kernel, d (an exact copy) for the reference. */
typedef struct T {
    float *f;
    double *d;
    size_t n;
} T;

static T t_new(size_t n)
{
    T t;
    t.n = n;
    t.f = calloc(n ? n : 1, sizeof *t.f);
    t.d = calloc(n ? n : 1, sizeof *t.d);
    assert_non_null(t.f);
    assert_non_null(t.d);
    return t;
}

static T t_rand(Rng *r, size_t n, float scale)
{
    T t = t_new(n);
    for (size_t i = 0; i < n; i++) t.f[i] = scale * rng_float(r), t.d[i] = t.f[i];
    return t;
}

static void t_free(T *t)
{
    free(t->f), free(t->d);
    t->f = NULL, t->d = NULL;
}

static float *copy_floats(const float *p, size_t n)
{
    float *q = malloc((n ? n : 1) * sizeof *q);
    assert_non_null(q);
    if (n) memcpy(q, p, n * sizeof *q);
    return q;
}

static double *new_doubles(size_t count)
{
    double *p = calloc(count ? count : 1, sizeof *p);
    assert_non_null(p);
    return p;
}

/* A reference forward: y[0..ysz) from the double tensors ctx points at. */
typedef void (*FwdFn)(const void *ctx, double *y);

typedef struct Fd {
    FwdFn fwd;
    const void *ctx;
    size_t ysz;
    const double *dy;  /* the upstream gradient; L = sum dy*y */
    double *ybuf;
} Fd;

static double fd_loss(const Fd *f)
{
    double s = 0.0;
    f->fwd(f->ctx, f->ybuf);
    for (size_t i = 0; i < f->ysz; i++) s += f->dy[i] * f->ybuf[i];
    return s;
}

/* grad[i] = dL/dparam[i] by central differences (param is read by fwd through ctx). */
static void fd_grad(const Fd *f, double *param, size_t count, double *grad)
{
    const double h = 1e-5;
    for (size_t i = 0; i < count; i++) {
        double v = param[i], lp, lm;
        param[i] = v + h;
        lp = fd_loss(f);
        param[i] = v - h;
        lm = fd_loss(f);
        param[i] = v;
        grad[i] = (lp - lm) / (2.0 * h);
    }
}

/* Fails unless max|(after - before) - ref| <= 1e-4 * max(1, max|ref|) (NaN fails). */
static void check_grad(const float *after, const float *before, const double *ref, size_t count, const char *what)
{
    double maxref = 1.0, maxdiff = 0.0;
    size_t worst = 0;
    int nan = 0;
    for (size_t i = 0; i < count; i++)
        if (fabs(ref[i]) > maxref) maxref = fabs(ref[i]);
    for (size_t i = 0; i < count && !nan; i++) {
        double got = (double)after[i] - (before ? (double)before[i] : 0.0);
        double d = fabs(got - ref[i]);
        if (isnan(d) || d > maxdiff) maxdiff = d, worst = i, nan = isnan(d);
    }
    if (nan || maxdiff > 1e-4 * maxref)
        fail_msg("%s: max|diff| %g at %zu (got %g, want %g), max|ref| %g", what, maxdiff, worst,
                 (double)after[worst] - (before ? (double)before[worst] : 0.0), ref[worst], maxref);
}

/* A gradient buffer with random earlier contributions, and their copy. */
typedef struct G {
    float *g, *before;
    size_t n;
} G;

static G g_new(Rng *r, size_t n)
{
    G g;
    g.n = n;
    g.g = malloc((n ? n : 1) * sizeof *g.g);
    assert_non_null(g.g);
    for (size_t i = 0; i < n; i++) g.g[i] = rng_float(r);
    g.before = copy_floats(g.g, n);
    return g;
}

static void g_free(G *g)
{
    free(g->g), free(g->before);
}

/* Checks the gradient kernel's g against FD of the reference with respect to p. */
static void check_fd(const Fd *f, T *p, const G *g, const char *what)
{
    double *ref = new_doubles(p->n);
    fd_grad(f, p->d, p->n, ref);
    check_grad(g->g, g->before, ref, p->n, what);
    free(ref);
}

/* ---- conv2d and conv_transpose2d ---- */

typedef struct ConvCase {
    int n, c, h, w, k, kh, kw, sh, sw, ph, pw, dh, dw, groups, bias, opad;  /* opad: transposed only */
} ConvCase;

static const ConvCase conv_cases[] = {
    /* n  c   h   w   k kh kw sh sw ph pw dh dw  g bias opad */
    {1, 1, 5, 5, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0},   /* smallest 3x3 same */
    {2, 3, 9, 11, 4, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1},  /* stride 2, odd sizes */
    {1, 2, 11, 9, 3, 5, 5, 2, 2, 2, 2, 1, 1, 1, 0, 1},  /* 5x5 stride 2, no bias */
    {2, 3, 9, 8, 4, 3, 3, 1, 1, 2, 2, 2, 2, 1, 1, 0},   /* dilation 2 */
    {1, 2, 8, 9, 3, 3, 5, 2, 1, 1, 2, 1, 1, 1, 1, 1},   /* non-square kernel, stride, pad */
    {2, 4, 6, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1, 4, 1, 0},   /* depthwise */
    {2, 3, 7, 7, 6, 3, 3, 2, 2, 1, 1, 1, 1, 3, 0, 1},   /* depthwise, multiplier 2, stride 2 */
    {2, 4, 7, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1, 2, 1, 0},   /* groups 2, 4 -> 6 */
    {2, 4, 7, 6, 6, 2, 3, 2, 3, 0, 1, 2, 1, 2, 1, 1},   /* groups 2, everything non-square */
    {2, 6, 5, 7, 4, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0},   /* 1x1: direct GEMMs */
    {2, 6, 5, 7, 4, 1, 1, 1, 1, 0, 0, 1, 1, 2, 0, 0},   /* 1x1 grouped: direct too */
    {2, 4, 9, 7, 3, 1, 1, 2, 2, 0, 0, 1, 1, 1, 1, 1},   /* 1x1 stride 2: im2col */
    {1, 2, 4, 4, 3, 5, 5, 1, 1, 2, 2, 1, 1, 1, 1, 0},   /* kernel wider than the image */
    {2, 3, 5, 6, 2, 3, 2, 3, 2, 1, 0, 1, 2, 1, 1, 2},   /* stride 3, output padding 2 */
    {2, 1, 24, 24, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0}, /* 576 pixels: one sample a GEMM (nnc_conv_backward_samples) */
    {2, 2, 23, 23, 2, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 0}, /* 529 pixels, 1x1: x and dy multiplied directly */
};

static int conv_out(int in, int k, int s, int p, int d) { return (in + 2 * p - d * (k - 1) - 1) / s + 1; }

typedef struct ConvCtx {
    const ConvCase *t;
    const T *x, *w, *b;
    int oh, ow;
} ConvCtx;

/* Conv2d from its definition, weights [k][c/g][kh][kw]. */
static void ref_conv2d(const void *vctx, double *y)
{
    const ConvCtx *cx = vctx;
    const ConvCase *t = cx->t;
    int cg = t->c / t->groups, kg = t->k / t->groups, oh = cx->oh, ow = cx->ow;
    for (int i = 0; i < t->n; i++)
        for (int ko = 0; ko < t->k; ko++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    double s = cx->b ? cx->b->d[ko] : 0.0;
                    for (int ci = 0; ci < cg; ci++)
                        for (int ki = 0; ki < t->kh; ki++)
                            for (int kj = 0; kj < t->kw; kj++) {
                                int iy = oy * t->sh - t->ph + ki * t->dh, ix = ox * t->sw - t->pw + kj * t->dw;
                                int cin = ko / kg * cg + ci;
                                if (iy < 0 || iy >= t->h || ix < 0 || ix >= t->w) continue;
                                s += cx->x->d[((i * t->c + cin) * t->h + iy) * t->w + ix] *
                                     cx->w->d[((ko * cg + ci) * t->kh + ki) * t->kw + kj];
                            }
                    y[((i * t->k + ko) * oh + oy) * ow + ox] = s;
                }
}

/* ConvTranspose2d from its definition: every input pixel scatters x*w; weights [c][k/g][kh][kw]. */
static void ref_conv_transpose2d(const void *vctx, double *y)
{
    const ConvCtx *cx = vctx;
    const ConvCase *t = cx->t;
    int cg = t->c / t->groups, kg = t->k / t->groups, oh = cx->oh, ow = cx->ow;
    for (int i = 0; i < t->n; i++)
        for (int ko = 0; ko < t->k; ko++)
            for (int p = 0; p < oh * ow; p++) y[(i * t->k + ko) * oh * ow + p] = cx->b ? cx->b->d[ko] : 0.0;
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
                                y[((i * t->k + ko) * oh + oy) * ow + ox] +=
                                    cx->x->d[((i * t->c + ci) * t->h + iy) * t->w + ix] *
                                    cx->w->d[((ci * kg + kq) * t->kh + ki) * t->kw + kj];
                            }
}

/* Which gradients a run asks for: bit 0 dx, bit 1 dw, bit 2 db (the others are NULL). */
static void run_conv_backward(Rng *r, const ConvCase *t, int transposed, int want)
{
    int oh, ow;
    size_t wsz, ssz;
    if (transposed) {
        oh = (t->h - 1) * t->sh - 2 * t->ph + t->dh * (t->kh - 1) + t->opad + 1;
        ow = (t->w - 1) * t->sw - 2 * t->pw + t->dw * (t->kw - 1) + t->opad + 1;
        wsz = (size_t)t->c * (t->k / t->groups) * t->kh * t->kw;
        ssz = nnc_conv_transpose2d_backward_scratch(t->h, t->w, t->k, t->kh, t->kw, t->groups);
    } else {
        oh = conv_out(t->h, t->kh, t->sh, t->ph, t->dh), ow = conv_out(t->w, t->kw, t->sw, t->pw, t->dw);
        wsz = (size_t)t->k * (t->c / t->groups) * t->kh * t->kw;
        ssz = nnc_conv2d_backward_scratch(t->c, t->k, t->kh, t->kw, oh, ow, t->groups);
    }
    size_t xsz = (size_t)t->n * t->c * t->h * t->w, ysz = (size_t)t->n * t->k * oh * ow;
    T x = t_rand(r, xsz, 1.0f), w = t_rand(r, wsz, 1.0f), b = t_rand(r, (size_t)t->k, 1.0f), dy = t_rand(r, ysz, 1.0f);
    G dx = g_new(r, xsz), dw = g_new(r, wsz), db = g_new(r, (size_t)t->k);
    float *scratch = malloc((ssz ? ssz : 1) * sizeof(float));
    ConvCtx cx = {t, &x, &w, t->bias ? &b : NULL, oh, ow};
    Fd f = {transposed ? ref_conv_transpose2d : ref_conv2d, &cx, ysz, dy.d, new_doubles(ysz)};
    char what[200];
    assert_non_null(scratch);
    for (size_t i = 0; i < ssz; i++) scratch[i] = NAN;  /* the kernel must write before it reads */
    if (transposed)
        nnc_conv_transpose2d_backward(t->n, x.f, t->c, t->h, t->w, w.f, dy.f, t->k, oh, ow, t->kh, t->kw, t->sh,
                                      t->sw, t->ph, t->pw, t->dh, t->dw, t->groups, want & 1 ? dx.g : NULL,
                                      want & 2 ? dw.g : NULL, want & 4 ? db.g : NULL, scratch);
    else
        nnc_conv2d_backward(t->n, x.f, t->c, t->h, t->w, w.f, dy.f, t->k, oh, ow, t->kh, t->kw, t->sh, t->sw, t->ph,
                            t->pw, t->dh, t->dw, t->groups, want & 1 ? dx.g : NULL, want & 2 ? dw.g : NULL,
                            want & 4 ? db.g : NULL, scratch);
    snprintf(what, sizeof what, "%s n%d c%d %dx%d k%d %dx%d s%d,%d p%d,%d d%d,%d g%d op%d",
             transposed ? "conv_transpose2d_backward" : "conv2d_backward", t->n, t->c, t->h, t->w, t->k, t->kh,
             t->kw, t->sh, t->sw, t->ph, t->pw, t->dh, t->dw, t->groups, transposed ? t->opad : 0);
    if (want & 1) {
        char m[240];
        snprintf(m, sizeof m, "%s: dx", what);
        check_fd(&f, &x, &dx, m);
    } else {
        if (memcmp(dx.g, dx.before, xsz * sizeof(float)) != 0) fail_msg("%s: dx written though NULL?", what);
    }
    if (want & 2) {
        char m[240];
        snprintf(m, sizeof m, "%s: dw", what);
        check_fd(&f, &w, &dw, m);
    }
    if (want & 4) {
        char m[240];
        snprintf(m, sizeof m, "%s: db", what);
        /* db is the gradient of the bias the forward adds (always, for the check). */
        cx.b = &b;
        check_fd(&f, &b, &db, m);
    }
    free(f.ybuf), free(scratch);
    t_free(&x), t_free(&w), t_free(&b), t_free(&dy);
    g_free(&dx), g_free(&dw), g_free(&db);
}

/* A random small valid convolution: groups 1, 2 or depthwise; output at least 1x1. */
static ConvCase random_conv(Rng *r)
{
    ConvCase t;
    int g = rng_int(r, 0, 2);
    t.groups = g == 0 ? 1 : g == 1 ? 2 : rng_int(r, 1, 4);
    t.c = t.groups * (g == 2 ? 1 : rng_int(r, 1, 3));
    t.k = t.groups * rng_int(r, 1, 3);
    t.n = rng_int(r, 1, 2);
    t.kh = rng_int(r, 1, 4), t.kw = rng_int(r, 1, 4);
    t.sh = rng_int(r, 1, 3), t.sw = rng_int(r, 1, 3);
    t.dh = rng_int(r, 1, 2), t.dw = rng_int(r, 1, 2);
    t.ph = rng_int(r, 0, 2), t.pw = rng_int(r, 0, 2);
    t.h = t.dh * (t.kh - 1) + 1 + rng_int(r, 0, 5) - 2 * t.ph;
    t.w = t.dw * (t.kw - 1) + 1 + rng_int(r, 0, 5) - 2 * t.pw;
    if (t.h < 1) t.h = 1 + rng_int(r, 0, 3), t.ph = (t.dh * (t.kh - 1) + 1) / 2 + 1;
    if (t.w < 1) t.w = 1 + rng_int(r, 0, 3), t.pw = (t.dw * (t.kw - 1) + 1) / 2 + 1;
    t.bias = rng_int(r, 0, 1);
    t.opad = rng_int(r, 0, (t.sh > t.dh ? t.sh : t.dh) - 1);
    return t;
}

static int transposed_ok(ConvCase *t)
{
    /* PyTorch needs output_padding < max(stride, dilation) in both directions. */
    int ms = t->sh < t->sw ? t->sh : t->sw, md = t->dh < t->dw ? t->dh : t->dw;
    if (t->opad >= (ms > md ? ms : md)) t->opad = 0;
    return (t->h - 1) * t->sh - 2 * t->ph + t->dh * (t->kh - 1) + t->opad + 1 >= 1 &&
           (t->w - 1) * t->sw - 2 * t->pw + t->dw * (t->kw - 1) + t->opad + 1 >= 1;
}

static void test_conv2d_backward(void **state)
{
    Rng r = {0xC0DEULL};
    (void)state;
    for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++) {
        run_conv_backward(&r, &conv_cases[i], 0, 7);
        run_conv_backward(&r, &conv_cases[i], 0, (int)(i % 3) == 0 ? 6 : (int)(i % 3) == 1 ? 1 : 2);
    }
    for (int i = 0; i < 60; i++) {
        ConvCase t = random_conv(&r);
        if (conv_out(t.h, t.kh, t.sh, t.ph, t.dh) >= 1 && conv_out(t.w, t.kw, t.sw, t.pw, t.dw) >= 1)
            run_conv_backward(&r, &t, 0, 7);
    }
}

/* nnc_conv2d_backward puts the samples of a small map side by side, blocks of
 * nnc_conv_backward_samples: a batch of two full blocks and a tail must give
 * what one call per sample gives (the finite-difference checks above cover a
 * block of up to two samples). */
static void test_conv2d_backward_blocks(void **state)
{
    (void)state;
    Rng r = {0xB10CULL};
    for (int groups = 1; groups <= 2; groups++) {
        int c = 4, k = 6, h = 3, w = 3, nb = nnc_conv_backward_samples(h, w), n = 2 * nb + 3;
        size_t xsz = (size_t)n * c * h * w, wsz = (size_t)k * (c / groups) * 9, ysz = (size_t)n * k * h * w;
        size_t ssz = nnc_conv2d_backward_scratch(c, k, 3, 3, h, w, groups);
        T x = t_rand(&r, xsz, 1.0f), wt = t_rand(&r, wsz, 1.0f), dy = t_rand(&r, ysz, 1.0f);
        float *dx = calloc(xsz, sizeof *dx), *dw = calloc(wsz, sizeof *dw), *db = calloc((size_t)k, sizeof *db);
        float *dx1 = calloc(xsz, sizeof *dx1), *dw1 = calloc(wsz, sizeof *dw1), *db1 = calloc((size_t)k, sizeof *db1);
        float *scratch = malloc(ssz * sizeof *scratch);
        assert_true(nb > 1 && dx && dw && db && dx1 && dw1 && db1 && scratch);
        nnc_conv2d_backward(n, x.f, c, h, w, wt.f, dy.f, k, h, w, 3, 3, 1, 1, 1, 1, 1, 1, groups, dx, dw, db, scratch);
        for (int i = 0; i < n; i++)
            nnc_conv2d_backward(1, x.f + (size_t)i * c * h * w, c, h, w, wt.f, dy.f + (size_t)i * k * h * w, k, h, w,
                                3, 3, 1, 1, 1, 1, 1, 1, groups, dx1 + (size_t)i * c * h * w, dw1, db1, scratch);
        for (size_t i = 0; i < xsz; i++) assert_float_equal(dx[i], dx1[i], 1e-5);
        for (size_t i = 0; i < wsz; i++) assert_float_equal(dw[i], dw1[i], 1e-4 * (1.0 + fabs(dw1[i])));
        for (int i = 0; i < k; i++) assert_float_equal(db[i], db1[i], 1e-4 * (1.0 + fabs(db1[i])));
        free(dx), free(dw), free(db), free(dx1), free(dw1), free(db1), free(scratch);
        t_free(&x), t_free(&wt), t_free(&dy);
    }
}

static void test_conv_transpose2d_backward(void **state)
{
    Rng r = {0x7C0DEULL};
    (void)state;
    for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++) {
        ConvCase t = conv_cases[i];
        if (!transposed_ok(&t)) continue;
        run_conv_backward(&r, &t, 1, 7);
        run_conv_backward(&r, &t, 1, (int)(i % 3) == 0 ? 6 : (int)(i % 3) == 1 ? 1 : 2);
    }
    for (int i = 0; i < 60; i++) {
        ConvCase t = random_conv(&r);
        if (transposed_ok(&t)) run_conv_backward(&r, &t, 1, 7);
    }
}

/* ---- linear ---- */

typedef struct LinCtx {
    int n, in, out;
    const T *x, *w, *b;
} LinCtx;

static void ref_linear(const void *vctx, double *y)
{
    const LinCtx *cx = vctx;
    for (int i = 0; i < cx->n; i++)
        for (int o = 0; o < cx->out; o++) {
            double s = cx->b->d[o];
            for (int p = 0; p < cx->in; p++) s += cx->x->d[i * cx->in + p] * cx->w->d[o * cx->in + p];
            y[i * cx->out + o] = s;
        }
}

static void run_linear_backward(Rng *r, int n, int in, int out, int want)
{
    size_t xsz = (size_t)n * in, wsz = (size_t)out * in, ysz = (size_t)n * out;
    T x = t_rand(r, xsz, 1.0f), w = t_rand(r, wsz, 1.0f), b = t_rand(r, (size_t)out, 1.0f), dy = t_rand(r, ysz, 1.0f);
    G dx = g_new(r, xsz), dw = g_new(r, wsz), db = g_new(r, (size_t)out);
    LinCtx cx = {n, in, out, &x, &w, &b};
    Fd f = {ref_linear, &cx, ysz, dy.d, new_doubles(ysz)};
    char what[96];
    nnc_linear_backward(n, x.f, in, w.f, dy.f, out, want & 1 ? dx.g : NULL, want & 2 ? dw.g : NULL,
                        want & 4 ? db.g : NULL);
    snprintf(what, sizeof what, "linear_backward n%d in%d out%d want%d", n, in, out, want);
    if (want & 1) check_fd(&f, &x, &dx, what);
    if (want & 2) check_fd(&f, &w, &dw, what);
    if (want & 4) check_fd(&f, &b, &db, what);
    if (!(want & 1) && memcmp(dx.g, dx.before, xsz * sizeof(float)) != 0) fail_msg("%s: dx written", what);
    free(f.ybuf);
    t_free(&x), t_free(&w), t_free(&b), t_free(&dy);
    g_free(&dx), g_free(&dw), g_free(&db);
}

static void test_linear_backward(void **state)
{
    Rng r = {0x11EULL};
    (void)state;
    run_linear_backward(&r, 1, 1, 1, 7);
    run_linear_backward(&r, 3, 17, 10, 7);
    run_linear_backward(&r, 5, 40, 7, 7);
    run_linear_backward(&r, 4, 9, 13, 6);
    run_linear_backward(&r, 2, 33, 3, 3);
    for (int i = 0; i < 10; i++)
        run_linear_backward(&r, rng_int(&r, 1, 6), rng_int(&r, 1, 30), rng_int(&r, 1, 12), 7);
}

/* ---- pooling ---- */

typedef struct PoolCase {
    int n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ceil;
} PoolCase;

static const PoolCase pool_cases[] = {
    /* n c   h   w kh kw sh sw ph pw dh dw ceil */
    {1, 1, 4, 4, 2, 2, 2, 2, 0, 0, 1, 1, 0},   /* plain 2x2 */
    {2, 3, 7, 7, 2, 2, 2, 2, 0, 0, 1, 1, 1},   /* ceil mode: last window half off the edge */
    {2, 2, 9, 11, 3, 3, 2, 2, 1, 1, 1, 1, 0},  /* ResNet stem pool */
    {1, 2, 10, 9, 3, 3, 2, 2, 0, 0, 1, 1, 1},  /* GoogLeNet ceil pool */
    {2, 2, 10, 11, 3, 3, 2, 2, 1, 1, 1, 1, 1}, /* ceil with padding */
    {1, 2, 9, 10, 2, 3, 1, 2, 1, 0, 1, 1, 0},  /* non-square */
    {1, 3, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1, 0},   /* stride 1, overlapping windows */
    {1, 1, 5, 5, 5, 5, 5, 5, 2, 2, 1, 1, 1},   /* one window, padded */
    {2, 2, 11, 9, 3, 2, 2, 1, 2, 1, 2, 3, 0},  /* dilation */
    {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0},   /* 1x1 */
};

/* PyTorch's pooling output size, floor or ceil; a ceil window must start inside the padded image. */
static int pool_out(int in, int k, int s, int p, int d, int ceil_mode)
{
    int span = in + 2 * p - d * (k - 1) - 1;
    int o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (ceil_mode && (o - 1) * s >= in + p) o--;
    return o;
}

typedef struct PoolCtx {
    const PoolCase *t;
    const T *x;
    int oh, ow, cip;
} PoolCtx;

/* MaxPool2d as the max over the taps inside the image (two passes: the max,
 * then the first tap in row-major window order that equals it: *arg). */
static double ref_max_window(const PoolCtx *cx, int pl, int oy, int ox, int *arg)
{
    const PoolCase *t = cx->t;
    double m = -INFINITY;
    *arg = -1;
    for (int pass = 0; pass < 2; pass++)
        for (int ki = 0; ki < t->kh; ki++)
            for (int kj = 0; kj < t->kw; kj++) {
                int iy = oy * t->sh - t->ph + ki * t->dh, ix = ox * t->sw - t->pw + kj * t->dw;
                double v;
                if (iy < 0 || iy >= t->h || ix < 0 || ix >= t->w) continue;
                v = cx->x->d[(pl * t->h + iy) * t->w + ix];
                if (pass == 0 && v > m) m = v;
                if (pass == 1 && v == m && *arg < 0) *arg = iy * t->w + ix;
            }
    return m;
}

static void ref_maxpool(const void *vctx, double *y)
{
    const PoolCtx *cx = vctx;
    int arg;
    for (int pl = 0; pl < cx->t->n * cx->t->c; pl++)
        for (int oy = 0; oy < cx->oh; oy++)
            for (int ox = 0; ox < cx->ow; ox++)
                y[(pl * cx->oh + oy) * cx->ow + ox] = ref_max_window(cx, pl, oy, ox, &arg);
}

/* AvgPool2d by PyTorch's definition: window [s, min(s+k, in+p)) gives the padded
 * divisor, then is clipped to the image for the sum (and for the other divisor). */
static void ref_avgpool(const void *vctx, double *y)
{
    const PoolCtx *cx = vctx;
    const PoolCase *t = cx->t;
    for (int pl = 0; pl < t->n * t->c; pl++)
        for (int oy = 0; oy < cx->oh; oy++)
            for (int ox = 0; ox < cx->ow; ox++) {
                int y0 = oy * t->sh - t->ph, x0 = ox * t->sw - t->pw;
                int y1 = y0 + t->kh < t->h + t->ph ? y0 + t->kh : t->h + t->ph;
                int x1 = x0 + t->kw < t->w + t->pw ? x0 + t->kw : t->w + t->pw;
                int pool = (y1 - y0) * (x1 - x0), inside = 0;
                double s = 0.0;
                for (int iy = y0; iy < y1; iy++)
                    for (int ix = x0; ix < x1; ix++)
                        if (iy >= 0 && iy < t->h && ix >= 0 && ix < t->w)
                            s += cx->x->d[(pl * t->h + iy) * t->w + ix], inside++;
                y[(pl * cx->oh + oy) * cx->ow + ox] = s / (cx->cip ? pool : inside);
            }
}

/* x with all values distinct, at least 1e-2 apart (a shuffled ramp), so no FD step changes an arg-max. */
static T distinct_values(Rng *r, size_t n)
{
    T t = t_new(n);
    for (size_t i = 0; i < n; i++) t.d[i] = (double)i;
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(rng_next(r) % i);
        double v = t.d[i - 1];
        t.d[i - 1] = t.d[j], t.d[j] = v;
    }
    for (size_t i = 0; i < n; i++) t.f[i] = (float)(t.d[i] * 0.01 - 1.0), t.d[i] = t.f[i];
    return t;
}

static void run_pool_backward(Rng *r, const PoolCase *t, int avg, int cip)
{
    int oh = pool_out(t->h, t->kh, t->sh, t->ph, avg ? 1 : t->dh, t->ceil);
    int ow = pool_out(t->w, t->kw, t->sw, t->pw, avg ? 1 : t->dw, t->ceil);
    size_t xsz = (size_t)t->n * t->c * t->h * t->w, ysz = (size_t)t->n * t->c * oh * ow;
    T x = avg ? t_rand(r, xsz, 1.0f) : distinct_values(r, xsz), dy = t_rand(r, ysz, 1.0f);
    G dx = g_new(r, xsz);
    PoolCtx cx = {t, &x, oh, ow, cip};
    Fd f = {avg ? ref_avgpool : ref_maxpool, &cx, ysz, dy.d, new_doubles(ysz)};
    char what[160];
    if (avg)
        nnc_avgpool2d_backward(t->n, dy.f, t->c, t->h, t->w, oh, ow, t->kh, t->kw, t->sh, t->sw, t->ph, t->pw, cip,
                               dx.g);
    else
        nnc_maxpool2d_backward(t->n, x.f, t->c, t->h, t->w, dy.f, oh, ow, t->kh, t->kw, t->sh, t->sw, t->ph, t->pw,
                               t->dh, t->dw, dx.g);
    snprintf(what, sizeof what, "%s %dx%d k%d,%d s%d,%d p%d,%d d%d,%d ceil%d cip%d",
             avg ? "avgpool2d_backward" : "maxpool2d_backward", t->h, t->w, t->kh, t->kw, t->sh, t->sw, t->ph,
             t->pw, avg ? 1 : t->dh, avg ? 1 : t->dw, t->ceil, cip);
    check_fd(&f, &x, &dx, what);
    free(f.ybuf);
    t_free(&x), t_free(&dy);
    g_free(&dx);
}

/* Ties (small integers): each dy must go to the FIRST maximum of its window in
 * row-major order, as PyTorch's CPU kernel picks. The expected dx is built
 * from ref_max_window's two-pass search. */
static void run_maxpool_ties(Rng *r, const PoolCase *t)
{
    int oh = pool_out(t->h, t->kh, t->sh, t->ph, t->dh, t->ceil), ow = pool_out(t->w, t->kw, t->sw, t->pw, t->dw, t->ceil);
    size_t xsz = (size_t)t->n * t->c * t->h * t->w, ysz = (size_t)t->n * t->c * oh * ow;
    T x = t_new(xsz), dy = t_rand(r, ysz, 1.0f);
    G dx = g_new(r, xsz);
    double *want = new_doubles(xsz);
    PoolCtx cx = {t, &x, oh, ow, 0};
    for (size_t i = 0; i < xsz; i++) x.f[i] = (float)rng_int(r, -1, 1), x.d[i] = x.f[i];
    for (int pl = 0; pl < t->n * t->c; pl++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                int arg;
                ref_max_window(&cx, pl, oy, ox, &arg);
                want[(size_t)pl * t->h * t->w + (size_t)arg] += dy.d[(pl * oh + oy) * ow + ox];
            }
    nnc_maxpool2d_backward(t->n, x.f, t->c, t->h, t->w, dy.f, oh, ow, t->kh, t->kw, t->sh, t->sw, t->ph, t->pw,
                           t->dh, t->dw, dx.g);
    check_grad(dx.g, dx.before, want, xsz, "maxpool2d_backward with ties");
    free(want);
    t_free(&x), t_free(&dy);
    g_free(&dx);
}

static void test_maxpool2d_backward(void **state)
{
    Rng r = {0x3A7BULL};
    (void)state;
    for (size_t i = 0; i < sizeof pool_cases / sizeof pool_cases[0]; i++) {
        run_pool_backward(&r, &pool_cases[i], 0, 0);
        run_maxpool_ties(&r, &pool_cases[i]);
    }
}

/* Known answers for ties: a constant 1x1x4x4 image, 2x2 windows at stride 1:
 * every window's first tap is its top-left, so dx[iy][ix] = dy[iy][ix] for
 * iy, ix < 3 and 0 elsewhere. With padding 1 (3x3, stride 2) the first tap
 * INSIDE the image wins, as PyTorch starts its scan at the first valid row and
 * column. An all -inf window also routes to its first valid tap. */
static void test_maxpool2d_backward_first_max(void **state)
{
    float x[16], dy[9], dx[16];
    (void)state;
    for (int i = 0; i < 16; i++) x[i] = 2.0f;
    for (int i = 0; i < 9; i++) dy[i] = (float)(i + 1);
    memset(dx, 0, sizeof dx);
    nnc_maxpool2d_backward(1, x, 1, 4, 4, dy, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1, dx);
    for (int iy = 0; iy < 4; iy++)
        for (int ix = 0; ix < 4; ix++)
            assert_true(dx[iy * 4 + ix] == (iy < 3 && ix < 3 ? dy[iy * 3 + ix] : 0.0f));
    /* pad 1, 3x3, stride 2 on 4x4: outputs 2x2 with windows starting at -1 and 1. */
    memset(dx, 0, sizeof dx);
    nnc_maxpool2d_backward(1, x, 1, 4, 4, dy, 2, 2, 3, 3, 2, 2, 1, 1, 1, 1, dx);
    assert_true(dx[0 * 4 + 0] == dy[0]);  /* window rows -1..1, cols -1..1: first inside (0,0) */
    assert_true(dx[0 * 4 + 1] == dy[1]);  /* cols 1..3 */
    assert_true(dx[1 * 4 + 0] == dy[2]);  /* rows 1..3 */
    assert_true(dx[1 * 4 + 1] == dy[3]);
    /* a later, larger value takes the gradient; an equal one does not */
    x[5] = 3.0f, x[6] = 3.0f;
    memset(dx, 0, sizeof dx);
    nnc_maxpool2d_backward(1, x, 1, 4, 4, dy, 1, 1, 4, 4, 1, 1, 0, 0, 1, 1, dx);
    assert_true(dx[5] == dy[0] && dx[6] == 0.0f && dx[0] == 0.0f);
    for (int i = 0; i < 16; i++) x[i] = -INFINITY;
    memset(dx, 0, sizeof dx);
    nnc_maxpool2d_backward(1, x, 1, 4, 4, dy, 2, 2, 3, 3, 2, 2, 1, 1, 1, 1, dx);
    assert_true(dx[0] == dy[0] && dx[1] == dy[1] && dx[4] == dy[2] && dx[5] == dy[3]);
}

static void test_avgpool2d_backward(void **state)
{
    Rng r = {0xA7BULL};
    (void)state;
    for (size_t i = 0; i < sizeof pool_cases / sizeof pool_cases[0]; i++) {
        PoolCase t = pool_cases[i];
        t.dh = t.dw = 1;  /* AvgPool2d has no dilation */
        if (t.ph > t.kh / 2 || t.pw > t.kw / 2) continue;
        run_pool_backward(&r, &t, 1, 1);
        run_pool_backward(&r, &t, 1, 0);
    }
}

typedef struct GapCtx {
    int n, c, h, w, oh, ow;
    const T *x;
} GapCtx;

/* AdaptiveAvgPool2d from its definition (start floor(i*h/oh), end ceil((i+1)*h/oh)). */
static void ref_adaptive(const void *vctx, double *y)
{
    const GapCtx *cx = vctx;
    for (int pl = 0; pl < cx->n * cx->c; pl++)
        for (int i = 0; i < cx->oh; i++)
            for (int j = 0; j < cx->ow; j++) {
                int r0 = (int)floor((double)i * cx->h / cx->oh), r1 = (int)ceil((double)(i + 1) * cx->h / cx->oh);
                int q0 = (int)floor((double)j * cx->w / cx->ow), q1 = (int)ceil((double)(j + 1) * cx->w / cx->ow);
                double s = 0.0;
                for (int a = r0; a < r1; a++)
                    for (int b = q0; b < q1; b++) s += cx->x->d[(pl * cx->h + a) * cx->w + b];
                y[(pl * cx->oh + i) * cx->ow + j] = s / ((r1 - r0) * (q1 - q0));
            }
}

static void run_adaptive_backward(Rng *r, int n, int c, int h, int w, int oh, int ow, int global)
{
    size_t xsz = (size_t)n * c * h * w, ysz = (size_t)n * c * oh * ow;
    T x = t_rand(r, xsz, 1.0f), dy = t_rand(r, ysz, 1.0f);
    G dx = g_new(r, xsz);
    GapCtx cx = {n, c, h, w, oh, ow, &x};
    Fd f = {ref_adaptive, &cx, ysz, dy.d, new_doubles(ysz)};
    char what[96];
    if (global)
        nnc_global_avgpool_backward(n, dy.f, c, (long)h * w, dx.g);
    else
        nnc_adaptive_avgpool2d_backward(n, dy.f, c, h, w, oh, ow, dx.g);
    snprintf(what, sizeof what, "%s %dx%d -> %dx%d", global ? "global_avgpool_backward" : "adaptive_avgpool2d_backward",
             h, w, oh, ow);
    check_fd(&f, &x, &dx, what);
    free(f.ybuf);
    t_free(&x), t_free(&dy);
    g_free(&dx);
}

static void test_global_adaptive_avgpool_backward(void **state)
{
    Rng r = {0x6A9ULL};
    (void)state;
    run_adaptive_backward(&r, 2, 3, 7, 5, 1, 1, 1);
    run_adaptive_backward(&r, 3, 4, 1, 1, 1, 1, 1);
    run_adaptive_backward(&r, 2, 2, 7, 5, 1, 1, 0);
    run_adaptive_backward(&r, 2, 2, 7, 5, 3, 2, 0);   /* overlapping cells */
    run_adaptive_backward(&r, 1, 3, 10, 9, 4, 4, 0);
    run_adaptive_backward(&r, 1, 2, 3, 3, 5, 6, 0);   /* upsampling: cells repeat pixels */
    run_adaptive_backward(&r, 2, 2, 6, 6, 6, 6, 0);   /* identity */
}

/* ---- batchnorm in training mode ---- */

typedef struct BnCtx {
    int n, c;
    long hw;
    const T *x, *gamma, *beta;
    double eps;
} BnCtx;

/* BatchNorm with batch statistics, from the definition: biased variance, in double. */
static void ref_bn_train(const void *vctx, double *y)
{
    const BnCtx *cx = vctx;
    double m = (double)cx->n * cx->hw;
    for (int ch = 0; ch < cx->c; ch++) {
        double s = 0.0, ss = 0.0, mean, var;
        for (int i = 0; i < cx->n; i++)
            for (long p = 0; p < cx->hw; p++) s += cx->x->d[((size_t)i * cx->c + ch) * cx->hw + p];
        mean = s / m;
        for (int i = 0; i < cx->n; i++)
            for (long p = 0; p < cx->hw; p++) {
                double d = cx->x->d[((size_t)i * cx->c + ch) * cx->hw + p] - mean;
                ss += d * d;
            }
        var = ss / m;
        for (int i = 0; i < cx->n; i++)
            for (long p = 0; p < cx->hw; p++) {
                size_t e = ((size_t)i * cx->c + ch) * cx->hw + p;
                y[e] = (cx->x->d[e] - mean) / sqrt(var + cx->eps) * (cx->gamma ? cx->gamma->d[ch] : 1.0) +
                       (cx->beta ? cx->beta->d[ch] : 0.0);
            }
    }
}

static void check_close_d(const float *out, const double *ref, size_t count, double tol, const char *what)
{
    for (size_t i = 0; i < count; i++) {
        double scale = fabs(ref[i]) > 1.0 ? fabs(ref[i]) : 1.0;
        if (!(fabs((double)out[i] - ref[i]) <= tol * scale))
            fail_msg("%s: element %zu is %.9g, want %.9g", what, i, (double)out[i], ref[i]);
    }
}

/* offset shifts x (|mean| >> std tests the centring); affine 0: gamma = beta = NULL. */
static void run_bn_train(Rng *r, int n, int c, long hw, int affine, float offset, int track)
{
    size_t sz = (size_t)n * c * hw;
    T x = t_rand(r, sz, 2.0f), gamma = t_rand(r, (size_t)c, 2.0f), beta = t_rand(r, (size_t)c, 1.0f);
    T dy = t_rand(r, sz, 1.0f);
    G dx = g_new(r, sz), dgamma = g_new(r, (size_t)c), dbeta = g_new(r, (size_t)c);
    float *y = malloc(sz * sizeof *y), *smean = malloc((size_t)c * sizeof(float)), *sinv = malloc((size_t)c * sizeof(float));
    float *rm = malloc((size_t)c * sizeof(float)), *rv = malloc((size_t)c * sizeof(float));
    double *yref = new_doubles(sz), *want_rm = new_doubles((size_t)c), *want_rv = new_doubles((size_t)c);
    double *want_mean = new_doubles((size_t)c), *want_inv = new_doubles((size_t)c);
    const float eps = 1e-5f, momentum = 0.1f;
    BnCtx cx = {n, c, hw, &x, affine ? &gamma : NULL, affine ? &beta : NULL, eps};
    Fd f = {ref_bn_train, &cx, sz, dy.d, new_doubles(sz)};
    double m = (double)n * hw;
    char what[128];
    assert_true(y && smean && sinv && rm && rv);
    for (size_t i = 0; i < sz; i++) x.f[i] += offset, x.d[i] = x.f[i];
    for (int ch = 0; ch < c; ch++) {
        double s = 0.0, ss = 0.0;
        rm[ch] = rng_float(r), rv[ch] = 1.0f + 0.5f * rng_float(r);
        for (int i = 0; i < n; i++)
            for (long p = 0; p < hw; p++) s += x.d[((size_t)i * c + ch) * hw + p];
        want_mean[ch] = s / m;
        for (int i = 0; i < n; i++)
            for (long p = 0; p < hw; p++) {
                double d = x.d[((size_t)i * c + ch) * hw + p] - want_mean[ch];
                ss += d * d;
            }
        want_inv[ch] = 1.0 / sqrt(ss / m + eps);
        want_rm[ch] = 0.9 * rm[ch] + 0.1 * want_mean[ch];
        want_rv[ch] = 0.9 * rv[ch] + 0.1 * ss / (m - 1.0);  /* the unbiased variance */
    }
    snprintf(what, sizeof what, "batchnorm_train n%d c%d hw%ld affine%d offset%g", n, c, hw, affine, (double)offset);
    nnc_batchnorm_train(n, x.f, c, hw, affine ? gamma.f : NULL, affine ? beta.f : NULL, eps, momentum,
                        track ? rm : NULL, track ? rv : NULL, y, smean, sinv);
    ref_bn_train(&cx, yref);
    check_close_d(y, yref, sz, 1e-4, what);
    check_close_d(smean, want_mean, (size_t)c, 1e-6, "save_mean");
    check_close_d(sinv, want_inv, (size_t)c, 1e-5, "save_invstd");
    if (track) {
        check_close_d(rm, want_rm, (size_t)c, 1e-6, "running_mean");
        check_close_d(rv, want_rv, (size_t)c, 1e-6, "running_var");
    }
    nnc_batchnorm_backward(n, x.f, c, hw, affine ? gamma.f : NULL, smean, sinv, dy.f, dx.g,
                           affine ? dgamma.g : NULL, affine ? dbeta.g : NULL);
    check_fd(&f, &x, &dx, what);
    if (affine) {
        check_fd(&f, &gamma, &dgamma, what);
        check_fd(&f, &beta, &dbeta, what);
    }
    free(y), free(smean), free(sinv), free(rm), free(rv), free(yref), free(want_rm), free(want_rv);
    free(want_mean), free(want_inv), free(f.ybuf);
    t_free(&x), t_free(&gamma), t_free(&beta), t_free(&dy);
    g_free(&dx), g_free(&dgamma), g_free(&dbeta);
}

static void test_batchnorm_train(void **state)
{
    Rng r = {0xB47ULL};
    (void)state;
    run_bn_train(&r, 2, 3, 1, 1, 0.0f, 1);    /* BatchNorm1d, m = 2 */
    run_bn_train(&r, 7, 5, 1, 1, 0.0f, 1);    /* BatchNorm1d on [n][c] */
    run_bn_train(&r, 2, 3, 25, 1, 0.0f, 1);   /* BatchNorm2d 5x5 */
    run_bn_train(&r, 3, 4, 13, 0, 0.0f, 1);   /* affine=False */
    run_bn_train(&r, 1, 2, 9, 1, 0.0f, 0);    /* batch 1 (statistics over the plane), no running stats */
    run_bn_train(&r, 4, 2, 6, 1, 20.0f, 1);   /* mean far from zero */
}

/* The running statistics over several steps, against numbers PyTorch prints for
 * torch.nn.BatchNorm1d(1, momentum=0.1) fed [[1],[2],[3],[6]] twice:
 * running_mean 0.3 then 0.57, running_var 0.9 + 0.1*14/3 = 1.3666667 then 1.6966667. */
static void test_batchnorm_running_stats(void **state)
{
    float x[4] = {1.0f, 2.0f, 3.0f, 6.0f}, y[4], sm, si, rm = 0.0f, rv = 1.0f;
    (void)state;
    nnc_batchnorm_train(4, x, 1, 1, NULL, NULL, 1e-5f, 0.1f, &rm, &rv, y, &sm, &si);
    assert_float_equal(rm, 0.3f, 1e-6f);
    assert_float_equal(rv, 1.3666667f, 1e-6f);
    assert_float_equal(sm, 3.0f, 1e-6f);
    assert_float_equal(si, (float)(1.0 / sqrt(3.5 + 1e-5)), 1e-6f);
    nnc_batchnorm_train(4, x, 1, 1, NULL, NULL, 1e-5f, 0.1f, &rm, &rv, y, &sm, &si);
    assert_float_equal(rm, 0.57f, 1e-6f);
    assert_float_equal(rv, 1.6966667f, 1e-6f);
}

/* ---- activations, softmax, concat, accumulate ---- */

typedef enum { A_RELU, A_RELU6, A_LEAKY, A_SIGMOID, A_TANH } ActOp;

typedef struct ActCtx {
    ActOp op;
    const T *x;
} ActCtx;

static void ref_act(const void *vctx, double *y)
{
    const ActCtx *cx = vctx;
    for (size_t i = 0; i < cx->x->n; i++) {
        double v = cx->x->d[i];
        switch (cx->op) {
        case A_RELU: y[i] = v > 0 ? v : 0; break;
        case A_RELU6: y[i] = v < 0 ? 0 : v > 6 ? 6 : v; break;
        case A_LEAKY: y[i] = v > 0 ? v : 0.125 * v; break;
        case A_SIGMOID: y[i] = 1.0 / (1.0 + exp(-v)); break;
        case A_TANH: y[i] = tanh(v); break;
        }
    }
}

static void run_act_backward(Rng *r, ActOp op, const char *name)
{
    enum { N = 301 };
    T x = t_rand(r, N, 8.0f), dy = t_rand(r, N, 1.0f);
    G dx = g_new(r, N);
    float y[N];
    ActCtx cx = {op, &x};
    Fd f = {ref_act, &cx, N, dy.d, new_doubles(N)};
    for (size_t i = 0; i < N; i++) {  /* keep every x 1e-3 away from the kinks at 0 and 6 */
        if (fabsf(x.f[i]) < 1e-3f) x.f[i] = 0.5f;
        if (fabsf(x.f[i] - 6.0f) < 1e-3f) x.f[i] = 5.5f;
        x.d[i] = x.f[i];
    }
    switch (op) {
    case A_RELU: nnc_relu(N, x.f, y), nnc_relu_backward(N, y, dy.f, dx.g); break;
    case A_RELU6: nnc_relu6(N, x.f, y), nnc_relu6_backward(N, y, dy.f, dx.g); break;
    case A_LEAKY: nnc_leaky_relu(N, x.f, y, 0.125f), nnc_leaky_relu_backward(N, x.f, dy.f, dx.g, 0.125f); break;
    case A_SIGMOID: nnc_sigmoid(N, x.f, y), nnc_sigmoid_backward(N, y, dy.f, dx.g); break;
    case A_TANH: nnc_tanh(N, x.f, y), nnc_tanh_backward(N, y, dy.f, dx.g); break;
    }
    check_fd(&f, &x, &dx, name);
    free(f.ybuf);
    t_free(&x), t_free(&dy);
    g_free(&dx);
}

static void test_activation_backward(void **state)
{
    Rng r = {0xAC7ULL};
    float v[4] = {0.0f, -0.0f, 6.0f, NAN}, dy[4] = {1.0f, 1.0f, 1.0f, 1.0f}, dx[4] = {0};
    (void)state;
    run_act_backward(&r, A_RELU, "relu_backward");
    run_act_backward(&r, A_RELU6, "relu6_backward");
    run_act_backward(&r, A_LEAKY, "leaky_relu_backward");
    run_act_backward(&r, A_SIGMOID, "sigmoid_backward");
    run_act_backward(&r, A_TANH, "tanh_backward");
    /* PyTorch at the kinks: relu'(0) = 0, hardtanh'(0) = hardtanh'(6) = 0, leaky'(0) = slope. */
    nnc_relu_backward(3, v, dy, dx);
    assert_true(dx[0] == 0.0f && dx[1] == 0.0f && dx[2] == 1.0f);
    memset(dx, 0, sizeof dx);
    nnc_relu6_backward(3, v, dy, dx);
    assert_true(dx[0] == 0.0f && dx[1] == 0.0f && dx[2] == 0.0f);
    memset(dx, 0, sizeof dx);
    nnc_leaky_relu_backward(2, v, dy, dx, 0.25f);
    assert_true(dx[0] == 0.25f && dx[1] == 0.25f);
}

typedef struct SmCtx {
    int n, c;
    long inner;
    const T *x;
} SmCtx;

static void ref_softmax(const void *vctx, double *y)
{
    const SmCtx *cx = vctx;
    for (int i = 0; i < cx->n; i++)
        for (long j = 0; j < cx->inner; j++) {
            double m = -INFINITY, s = 0.0;
            for (int ch = 0; ch < cx->c; ch++) m = fmax(m, cx->x->d[(i * cx->c + ch) * cx->inner + j]);
            for (int ch = 0; ch < cx->c; ch++) s += exp(cx->x->d[(i * cx->c + ch) * cx->inner + j] - m);
            for (int ch = 0; ch < cx->c; ch++)
                y[(i * cx->c + ch) * cx->inner + j] = exp(cx->x->d[(i * cx->c + ch) * cx->inner + j] - m) / s;
        }
}

static void run_softmax_backward(Rng *r, int n, int c, long inner, float scale)
{
    size_t sz = (size_t)n * c * inner;
    T x = t_rand(r, sz, scale), dy = t_rand(r, sz, 1.0f);
    G dx = g_new(r, sz);
    float *y = malloc(sz * sizeof *y);
    SmCtx cx = {n, c, inner, &x};
    Fd f = {ref_softmax, &cx, sz, dy.d, new_doubles(sz)};
    assert_non_null(y);
    nnc_softmax(n, x.f, c, inner, y);
    nnc_softmax_backward(n, y, dy.f, c, inner, dx.g);
    check_fd(&f, &x, &dx, "softmax_backward");
    free(y), free(f.ybuf);
    t_free(&x), t_free(&dy);
    g_free(&dx);
}

static void test_softmax_backward(void **state)
{
    Rng r = {0x50F7ULL};
    (void)state;
    run_softmax_backward(&r, 3, 10, 1, 3.0f);
    run_softmax_backward(&r, 2, 6, 7, 5.0f);
    run_softmax_backward(&r, 1, 1, 4, 1.0f);  /* one class: gradient 0 */
}

static void test_concat_and_accumulate(void **state)
{
    Rng r = {0xCA7ULL};
    enum { N = 3, A = 5, B = 7 };
    T dy = t_rand(&r, N * (A + B), 1.0f);
    G da = g_new(&r, N * A), db = g_new(&r, N * B), dsum = g_new(&r, N * A);
    double *want_a = new_doubles(N * A), *want_b = new_doubles(N * B);
    (void)state;
    for (int i = 0; i < N; i++) {
        for (int p = 0; p < A; p++) want_a[i * A + p] = dy.d[i * (A + B) + p];
        for (int p = 0; p < B; p++) want_b[i * B + p] = dy.d[i * (A + B) + A + p];
    }
    nnc_concat_part_backward(N, dy.f, A + B, 0, da.g, A);
    nnc_concat_part_backward(N, dy.f, A + B, A, db.g, B);
    check_grad(da.g, da.before, want_a, N * A, "concat_backward first part");
    check_grad(db.g, db.before, want_b, N * B, "concat_backward second part");
    nnc_grad_accumulate(N * A, dy.f, dsum.g);
    for (int i = 0; i < N * A; i++) want_a[i] = dy.d[i];
    check_grad(dsum.g, dsum.before, want_a, N * A, "grad_accumulate");
    free(want_a), free(want_b);
    t_free(&dy);
    g_free(&da), g_free(&db), g_free(&dsum);
}

/* ---- dropout ---- */

static void test_dropout(void **state)
{
    enum { N = 200000 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y), *y2 = malloc(N * sizeof *y2);
    float *dy = malloc(N * sizeof *dy), *dx = malloc(N * sizeof *dx);
    Rng r = {0xD20ULL};
    NncRng rng = {42, 0};
    const float p = 0.3f, scale = 1.0f / (1.0f - p);
    uint64_t s1, s2;
    size_t kept = 0, same = 0;
    (void)state;
    assert_true(x && y && y2 && dy && dx);
    for (size_t i = 0; i < N; i++) x[i] = 1.0f + fabsf(rng_float(&r)), dy[i] = rng_float(&r), dx[i] = 1.0f;
    s1 = nnc_rng_reserve(&rng, N);
    s2 = nnc_rng_reserve(&rng, N);
    assert_true(s1 == 0 && s2 == N && rng.counter == 2 * (uint64_t)N);
    nnc_dropout_train(N, x, y, p, rng.key, s1);
    for (size_t i = 0; i < N; i++) {
        assert_true(y[i] == 0.0f || y[i] == x[i] * scale);
        kept += y[i] != 0.0f;
    }
    /* kept ~ Binomial(N, 0.7): sd = sqrt(N*0.21) ~ 205, so 0.7N +- 2000 is ~10 sd. */
    assert_true(kept > (size_t)(0.7 * N) - 2000 && kept < (size_t)(0.7 * N) + 2000);
    /* the same key and start give the same mask; the backward regenerates it */
    nnc_dropout_train(N, x, y2, p, rng.key, s1);
    assert_memory_equal(y, y2, N * sizeof *y);
    nnc_dropout_backward(N, dy, dx, p, rng.key, s1);
    for (size_t i = 0; i < N; i++) assert_true(dx[i] == (y[i] != 0.0f ? 1.0f + dy[i] * scale : 1.0f));
    /* the next draws give a different mask (agreeing at ~ 0.7^2 + 0.3^2 = 58% of places) */
    nnc_dropout_train(N, x, y2, p, rng.key, s2);
    for (size_t i = 0; i < N; i++) same += (y[i] != 0.0f) == (y2[i] != 0.0f);
    assert_true(same > (size_t)(0.55 * N) && same < (size_t)(0.61 * N));
    /* in place, p = 0 (identity) and p = 1 (zeros, as PyTorch) */
    memcpy(y2, x, N * sizeof *x);
    nnc_dropout_train(N, y2, y2, p, rng.key, s1);
    assert_memory_equal(y, y2, N * sizeof *y);
    nnc_dropout_train(N, x, y, 0.0f, 7, 0);
    assert_memory_equal(x, y, N * sizeof *y);
    nnc_dropout_train(N, x, y, 1.0f, 7, 0);
    for (size_t i = 0; i < N; i++) assert_true(y[i] == 0.0f);
    free(x), free(y), free(y2), free(dy), free(dx);
}

/* ---- losses ---- */

typedef struct CeCtx {
    int n, c;
    const T *z;
    const int *labels;
    double eps;
} CeCtx;

/* CrossEntropyLoss(label_smoothing=eps) as PyTorch documents it, with log p from log-softmax in double. */
static void ref_cross_entropy(const void *vctx, double *loss)
{
    const CeCtx *cx = vctx;
    double total = 0.0;
    for (int i = 0; i < cx->n; i++) {
        const double *z = cx->z->d + (size_t)i * cx->c;
        double m = -INFINITY, s = 0.0, lse, smooth = 0.0;
        for (int ch = 0; ch < cx->c; ch++) m = fmax(m, z[ch]);
        for (int ch = 0; ch < cx->c; ch++) s += exp(z[ch] - m);
        lse = m + log(s);
        for (int ch = 0; ch < cx->c; ch++) smooth += -(z[ch] - lse);
        total += (1.0 - cx->eps) * -(z[cx->labels[i]] - lse) + cx->eps * smooth / cx->c;
    }
    *loss = total / cx->n;
}

static void run_cross_entropy(Rng *r, int n, int c, float scale, float eps)
{
    T z = t_rand(r, (size_t)n * c, scale);
    G dz = g_new(r, (size_t)n * c);
    int *labels = malloc((size_t)n * sizeof *labels);
    double one = 1.0, want;
    CeCtx cx = {n, c, &z, labels, eps};
    Fd f = {ref_cross_entropy, &cx, 1, &one, new_doubles(1)};
    char what[96];
    float loss;
    assert_non_null(labels);
    for (int i = 0; i < n; i++) labels[i] = rng_int(r, 0, c - 1);
    loss = nnc_cross_entropy(n, z.f, c, labels, eps, dz.g);
    ref_cross_entropy(&cx, &want);
    snprintf(what, sizeof what, "cross_entropy n%d c%d scale%g eps%g", n, c, (double)scale, (double)eps);
    if (!(fabs(loss - want) <= 1e-5 * fmax(1.0, fabs(want)))) fail_msg("%s: loss %.9g, want %.9g", what, (double)loss, want);
    check_fd(&f, &z, &dz, what);
    free(labels), free(f.ybuf);
    t_free(&z);
    g_free(&dz);
}

static void test_cross_entropy(void **state)
{
    Rng r = {0xCEULL};
    float z[6] = {1.0f, 2.0f, 3.0f, 0.5f, 0.5f, 0.5f}, dz[6] = {0};
    int labels[2] = {2, 0}, bad[2] = {2, 3};
    (void)state;
    for (int e = 0; e < 3; e++) {
        float eps = e == 0 ? 0.0f : e == 1 ? 0.1f : 0.5f;
        run_cross_entropy(&r, 1, 1, 1.0f, eps);
        run_cross_entropy(&r, 4, 10, 3.0f, eps);
        run_cross_entropy(&r, 7, 3, 1.0f, eps);
        run_cross_entropy(&r, 3, 5, 40.0f, eps);  /* logits where naive exp overflows float */
    }
    /* PyTorch: F.cross_entropy(tensor([[1.,2,3],[.5,.5,.5]]), tensor([2,0])) = 0.7531091,
     * and with label_smoothing=0.1: 0.8031090. */
    assert_float_equal(nnc_cross_entropy(2, z, 3, labels, 0.0f, NULL), 0.7531091f, 1e-6f);
    assert_float_equal(nnc_cross_entropy(2, z, 3, labels, 0.1f, NULL), 0.8031090f, 1e-6f);
    /* a label out of range: NaN, nothing written */
    assert_true(isnan(nnc_cross_entropy(2, z, 3, bad, 0.0f, dz)));
    for (int i = 0; i < 6; i++) assert_true(dz[i] == 0.0f);
}

typedef struct PairCtx {
    const T *x, *t;
    int bce;
} PairCtx;

/* BCE from its textbook form -(t log s + (1 - t) log(1 - s)), s = sigmoid(x), or MSE. */
static void ref_pair_loss(const void *vctx, double *loss)
{
    const PairCtx *cx = vctx;
    double total = 0.0;
    for (size_t i = 0; i < cx->x->n; i++) {
        double v = cx->x->d[i], t = cx->t->d[i];
        if (cx->bce) {
            double s = 1.0 / (1.0 + exp(-v));
            total += -(t * log(s) + (1.0 - t) * log1p(-s));
        } else {
            total += (v - t) * (v - t);
        }
    }
    *loss = total / (double)cx->x->n;
}

static void run_pair_loss(Rng *r, size_t n, int bce)
{
    T x = t_rand(r, n, 4.0f), t = t_rand(r, n, 1.0f);
    G dx = g_new(r, n);
    double one = 1.0, want;
    PairCtx cx = {&x, &t, bce};
    Fd f = {ref_pair_loss, &cx, 1, &one, new_doubles(1)};
    float loss;
    if (bce)
        for (size_t i = 0; i < n; i++) t.f[i] = i % 3 == 0 ? 0.5f * (t.f[i] + 1.0f) : (float)(i % 2), t.d[i] = t.f[i];
    loss = bce ? nnc_bce_with_logits(n, x.f, t.f, dx.g) : nnc_mse_loss(n, x.f, t.f, dx.g);
    ref_pair_loss(&cx, &want);
    if (!(fabs(loss - want) <= 1e-5 * fmax(1.0, fabs(want))))
        fail_msg("%s: loss %.9g, want %.9g", bce ? "bce" : "mse", (double)loss, want);
    check_fd(&f, &x, &dx, bce ? "bce_with_logits" : "mse_loss");
    free(f.ybuf);
    t_free(&x), t_free(&t);
    g_free(&dx);
}

static void test_bce_mse(void **state)
{
    Rng r = {0xBCEULL};
    float x[4] = {100.0f, -100.0f, 100.0f, -100.0f}, t[4] = {1.0f, 0.0f, 0.0f, 1.0f}, dx[4] = {0};
    float a[3] = {1.0f, 2.0f, 3.0f}, b[3] = {0.0f, 2.5f, 1.0f};
    float loss;
    (void)state;
    run_pair_loss(&r, 1, 1);
    run_pair_loss(&r, 37, 1);
    run_pair_loss(&r, 1, 0);
    run_pair_loss(&r, 37, 0);
    /* extreme logits stay finite: PyTorch gives (0 + 0 + 100 + 100)/4 = 50 */
    loss = nnc_bce_with_logits(4, x, t, dx);
    assert_float_equal(loss, 50.0f, 1e-4f);
    assert_float_equal(dx[0], 0.0f, 1e-7f);
    assert_float_equal(dx[2], 0.25f, 1e-7f);
    assert_float_equal(dx[3], -0.25f, 1e-7f);
    /* MSELoss: (1 + 0.25 + 4)/3 */
    assert_float_equal(nnc_mse_loss(3, a, b, NULL), 1.75f, 1e-6f);
}

static void test_count_correct(void **state)
{
    float z[4 * 3] = {0.1f, 0.9f, 0.3f,    /* argmax 1 */
                      0.5f, 0.5f, 0.2f,    /* tie: torch.argmax takes the first, 0 */
                      -1.0f, -2.0f, -0.5f, /* 2 */
                      1.0f, NAN, 2.0f};    /* NaN is the max: 1 */
    int labels[4] = {1, 1, 2, 1};
    (void)state;
    assert_int_equal(nnc_count_correct(4, z, 3, labels), 3);
    labels[1] = 0;
    assert_int_equal(nnc_count_correct(4, z, 3, labels), 4);
}

/* ---- lrn ---- */

typedef struct LrnCtx {
    int n, c, size;
    long hw;
    double alpha, beta, k;
    const T *x;
} LrnCtx;

static void ref_lrn(const void *vctx, double *y)
{
    const LrnCtx *cx = vctx;
    for (int i = 0; i < cx->n; i++)
        for (int ch = 0; ch < cx->c; ch++)
            for (long p = 0; p < cx->hw; p++) {
                double s = 0.0;
                for (int c2 = ch - cx->size / 2; c2 <= ch + (cx->size - 1) / 2; c2++)
                    if (c2 >= 0 && c2 < cx->c) {
                        double v = cx->x->d[((size_t)i * cx->c + c2) * cx->hw + p];
                        s += v * v;
                    }
                y[((size_t)i * cx->c + ch) * cx->hw + p] =
                    cx->x->d[((size_t)i * cx->c + ch) * cx->hw + p] / pow(cx->k + cx->alpha / cx->size * s, cx->beta);
            }
}

static void run_lrn_backward(Rng *r, int n, int c, long hw, int size, float alpha, float beta, float k)
{
    size_t sz = (size_t)n * c * hw;
    T x = t_rand(r, sz, 2.0f), dy = t_rand(r, sz, 1.0f);
    G dx = g_new(r, sz);
    float *scratch = malloc(nnc_lrn_backward_scratch(c) * sizeof(float));
    LrnCtx cx = {n, c, size, hw, alpha, beta, k, &x};
    Fd f = {ref_lrn, &cx, sz, dy.d, new_doubles(sz)};
    char what[64];
    assert_non_null(scratch);
    nnc_lrn_backward(n, x.f, c, hw, dy.f, size, alpha, beta, k, dx.g, scratch);
    snprintf(what, sizeof what, "lrn_backward c%d size%d", c, size);
    check_fd(&f, &x, &dx, what);
    free(scratch), free(f.ybuf);
    t_free(&x), t_free(&dy);
    g_free(&dx);
}

static void test_lrn_backward(void **state)
{
    Rng r = {0x1A7ULL};
    (void)state;
    run_lrn_backward(&r, 2, 7, 5, 5, 1e-1f, 0.75f, 2.0f);  /* AlexNet's parameters, larger alpha */
    run_lrn_backward(&r, 1, 6, 4, 4, 0.5f, 0.75f, 1.0f);   /* even size: asymmetric window */
    run_lrn_backward(&r, 2, 3, 3, 7, 0.3f, 0.5f, 1.0f);    /* window wider than the channels */
}

/* ---- the fused training chain: conv -> batchnorm -> activation ---- */

static float *rnd(Rng *r, size_t n, float scale)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) p[i] = scale * rng_float(r);
    return p;
}

static void close_to(const float *a, const float *b, size_t n, float tol, const char *what)
{
    float m = 0.0f;
    for (size_t i = 0; i < n; i++) m = fabsf(b[i]) > m ? fabsf(b[i]) : m;
    for (size_t i = 0; i < n; i++)
        if (fabsf(a[i] - b[i]) > tol * (m > 1.0f ? m : 1.0f))
            fail_msg("%s: element %zu is %.9g, unfused %.9g", what, i, (double)a[i], (double)b[i]);
}

/* nnc_conv2d_stats + nnc_batchnorm_act_train against nnc_conv2d +
 * nnc_batchnorm_train + the activation kernel, and nnc_batchnorm_act_backward
 * against the activation's backward + nnc_batchnorm_backward: same outputs,
 * running statistics, saved statistics and gradients up to rounding (the
 * fused variance is sumsq/m - mean^2 in double, the unfused a second pass). */
static void test_bn_train_fused(void **state)
{
    (void)state;
    Rng r = {0xF05EDULL};
    const int acts[] = {NNC_ACT_NONE, NNC_ACT_RELU, NNC_ACT_RELU6, NNC_ACT_LEAKY_RELU, NNC_ACT_SIGMOID, NNC_ACT_TANH};
    for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++) {
        int n = 3, c = 4, h = 7, w = 6, k = 5, oh = 7, ow = 6, act = acts[a];
        size_t xs = (size_t)n * c * h * w, ys = (size_t)n * k * oh * ow;
        long hw = (long)oh * ow;
        float *x = rnd(&r, xs, 1.0f), *wt = rnd(&r, (size_t)k * c * 9, 0.5f), *bias = rnd(&r, (size_t)k, 1.0f);
        float *gamma = rnd(&r, (size_t)k, 1.0f), *beta = rnd(&r, (size_t)k, 1.0f);
        float *sc = malloc(nnc_conv2d_scratch(n, c, h, w, k, 3, 3, 1, 1, 1, 1, oh, ow, 1, 0) * sizeof *sc);
        float *t1 = malloc(ys * sizeof *t1), *t2 = malloc(ys * sizeof *t2), *y1 = malloc(ys * sizeof *y1);
        float *y2 = malloc(ys * sizeof *y2), rm1[5], rv1[5], rm2[5], rv2[5], sm1[5], si1[5], sm2[5], si2[5];
        double stats[10] = {0};
        for (int i = 0; i < k; i++) rm1[i] = rm2[i] = 0.1f * (float)i, rv1[i] = rv2[i] = 1.0f + 0.2f * (float)i;
        /* unfused */
        nnc_conv2d(n, x, (size_t)c * h * w, c, h, w, wt, bias, t1, (size_t)k * hw, k, oh, ow, 3, 3, 1, 1, 1, 1, 1, 1, 1,
                   sc, NULL, 0, NNC_ACT_NONE, 0.0f, k, NULL, NULL, NNC_ACT_NONE, 0.0f);
        nnc_batchnorm_train(n, t1, k, hw, gamma, beta, 1e-5f, 0.1f, rm1, rv1, y1, sm1, si1);
        nnc_epilogue(y1, ys, NULL, act, 0.1f);
        /* fused */
        nnc_conv2d_stats(n, x, c, h, w, wt, bias, t2, k, oh, ow, 3, 3, 1, 1, 1, 1, 1, 1, 1, sc, stats);
        nnc_batchnorm_act_train(n, t2, k, hw, stats, gamma, beta, 1e-5f, 0.1f, rm2, rv2, y2, sm2, si2, act, 0.1f);
        close_to(t2, t1, ys, 0.0f, "conv2d_stats output");
        close_to(y2, y1, ys, 2e-5f, "batchnorm_act_train output");
        close_to(rm2, rm1, (size_t)k, 1e-6f, "running mean");
        close_to(rv2, rv1, (size_t)k, 1e-5f, "running var");
        close_to(si2, si1, (size_t)k, 1e-5f, "saved 1/std");
        /* backward */
        float *dy = rnd(&r, ys, 1.0f), *g = calloc(ys, sizeof *g), *dx1 = calloc(ys, sizeof *dx1);
        float *dx2 = calloc(ys, sizeof *dx2), dg1[5] = {0}, db1[5] = {0}, dg2[5] = {0}, db2[5] = {0};
        switch (act) {
        case NNC_ACT_RELU: nnc_relu_backward(ys, y1, dy, g); break;
        case NNC_ACT_RELU6: nnc_relu6_backward(ys, y1, dy, g); break;
        case NNC_ACT_LEAKY_RELU: nnc_leaky_relu_backward(ys, y1, dy, g, 0.1f); break;
        case NNC_ACT_SIGMOID: nnc_sigmoid_backward(ys, y1, dy, g); break;
        case NNC_ACT_TANH: nnc_tanh_backward(ys, y1, dy, g); break;
        default: nnc_grad_accumulate(ys, dy, g); break;
        }
        nnc_batchnorm_backward(n, t1, k, hw, gamma, sm1, si1, g, dx1, dg1, db1);
        nnc_batchnorm_act_backward(n, t1, k, hw, gamma, sm1, si1, y1, dy, act, 0.1f, dx2, dg2, db2);
        close_to(dx2, dx1, ys, 1e-6f, "batchnorm_act_backward dx");
        close_to(dg2, dg1, (size_t)k, 1e-6f, "dgamma");
        close_to(db2, db1, (size_t)k, 1e-6f, "dbeta");
        free(x), free(wt), free(bias), free(gamma), free(beta), free(sc), free(t1), free(t2), free(y1), free(y2);
        free(dy), free(g), free(dx1), free(dx2);
    }
}

/* ---- every section compiles on its own ---- */

static void snippet_path(char *buf, size_t len, const char *name)
{
#ifdef NNC_SOURCE_DIR
    snprintf(buf, len, "%s/runtime/snippets/%s", NNC_SOURCE_DIR, name);
#else
    /* test_grad_kernels_blas gets no NNC_SOURCE_DIR: find the repo from this file's path. */
    const char *tail = strstr(__FILE__, "tests/unit/test_grad_kernels.c");
    snprintf(buf, len, "%.*sruntime/snippets/%s", tail ? (int)(tail - __FILE__) : 0, __FILE__, name);
#endif
}

/* Every section of grad_kernels.c with "prologue" and its needs (closed over
 * both files, in file order, kernels.c first: what the generator pastes), and
 * then both files whole at -O2. */
static void test_sections_compile_alone(void **state)
{
    static const char *const ccs[] = {"gcc", "clang"};
    static Section s[MAX_SECTIONS];
    char kpath[1024], gpath[1024], dir[] = "/tmp/nnc_grad_kernels_XXXXXX", file[64], log[64];
    char *ktext, *gtext;
    int n, nk, compilers = 0;
    (void)state;
    snippet_path(kpath, sizeof kpath, "kernels.c");
    snippet_path(gpath, sizeof gpath, "grad_kernels.c");
    ktext = read_file(kpath);
    gtext = read_file(gpath);
    if (!ktext || !gtext) {
        print_message("cannot read %s or %s; skipped\n", kpath, gpath);
        skip();
    }
    nk = split_sections(ktext, s, 0, 0);
    n = split_sections(gtext, s, nk, 1);
    assert_true(nk > 1 && n > nk);
    assert_string_equal(s[0].name, "prologue");
    assert_non_null(mkdtemp(dir));
    snprintf(file, sizeof file, "%s/section.c", dir);
    snprintf(log, sizeof log, "%s/cc.log", dir);
    for (size_t c = 0; c < 2; c++) {
        if (!have_program(ccs[c])) continue;
        compilers++;
        for (int i = nk; i < n; i++) {
            int keep[MAX_SECTIONS] = {0};
            keep[0] = 1;
            mark_needs(s, i, keep);
            check_forbidden(&s[i]);
            write_file(file, s, n, keep);
            compile_or_fail(ccs[c], file, "-fsyntax-only", log, s[i].name);
        }
        {
            int keep[MAX_SECTIONS];
            for (int i = 0; i < n; i++) keep[i] = 1;
            write_file(file, s, n, keep);
            compile_or_fail(ccs[c], file, "-O2 -c -o /dev/null", log, "kernels.c + grad_kernels.c");
        }
    }
    remove(file), remove(log), rmdir(dir);
    free(ktext), free(gtext);
    assert_true(compilers > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv2d_backward),
        cmocka_unit_test(test_conv2d_backward_blocks),
        cmocka_unit_test(test_conv_transpose2d_backward),
        cmocka_unit_test(test_linear_backward),
        cmocka_unit_test(test_maxpool2d_backward),
        cmocka_unit_test(test_maxpool2d_backward_first_max),
        cmocka_unit_test(test_avgpool2d_backward),
        cmocka_unit_test(test_global_adaptive_avgpool_backward),
        cmocka_unit_test(test_batchnorm_train),
        cmocka_unit_test(test_batchnorm_running_stats),
        cmocka_unit_test(test_activation_backward),
        cmocka_unit_test(test_softmax_backward),
        cmocka_unit_test(test_concat_and_accumulate),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_cross_entropy),
        cmocka_unit_test(test_bce_mse),
        cmocka_unit_test(test_count_correct),
        cmocka_unit_test(test_lrn_backward),
        cmocka_unit_test(test_bn_train_fused),
        cmocka_unit_test(test_sections_compile_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
