/* test_grad_kernels_layers.c: the backward of conv2d, conv_transpose2d,
 * linear and pooling (runtime/snippets/grad_kernels_layers.c) against central
 * finite differences of double-precision references (method and tolerance:
 * grad_test.h). */
#include "tests/unit/grad_test.h"

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
        nnc_conv_transpose2d_backward(NULL, t->n, x.f, t->c, t->h, t->w, w.f, dy.f, t->k, oh, ow, t->kh, t->kw, t->sh,
                                      t->sw, t->ph, t->pw, t->dh, t->dw, t->groups, want & 1 ? dx.g : NULL,
                                      want & 2 ? dw.g : NULL, want & 4 ? db.g : NULL, scratch);
    else
        nnc_conv2d_backward(NULL, t->n, x.f, t->c, t->h, t->w, w.f, dy.f, t->k, oh, ow, t->kh, t->kw, t->sh, t->sw, t->ph,
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
        nnc_conv2d_backward(NULL, n, x.f, c, h, w, wt.f, dy.f, k, h, w, 3, 3, 1, 1, 1, 1, 1, 1, groups, dx, dw, db, scratch);
        for (int i = 0; i < n; i++)
            nnc_conv2d_backward(NULL, 1, x.f + (size_t)i * c * h * w, c, h, w, wt.f, dy.f + (size_t)i * k * h * w, k, h, w,
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
    nnc_linear_backward(NULL, n, x.f, in, w.f, dy.f, out, want & 1 ? dx.g : NULL, want & 2 ? dw.g : NULL,
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

/* nnc_bias_backward sums eight channels side by side: bit for bit one double
 * sum per channel over i then p, for channel counts around the groups of
 * eight, inner sizes 1 (linear) and more, into a db that is not zero. */
static void test_bias_backward_order(void **state)
{
    Rng r = {0xB1A5ULL};
    (void)state;
    for (int it = 0; it < 300; it++) {
        int n = rng_int(&r, 1, 5), k = rng_int(&r, 1, 27);
        size_t inner = (size_t)(it % 3 == 0 ? 1 : rng_int(&r, 1, 120));
        T dy = t_rand(&r, (size_t)n * k * inner, 3.0f);
        float db[27], want[27];
        for (int o = 0; o < k; o++) {
            double sum = 0.0;
            db[o] = want[o] = (float)rng_int(&r, -5, 5) * 0.25f;
            for (int i = 0; i < n; i++)
                for (size_t p = 0; p < inner; p++) sum += dy.f[((size_t)i * k + o) * inner + p];
            want[o] += (float)sum;
        }
        nnc_bias_backward(NULL, n, dy.f, k, inner, db);
        assert_memory_equal(db, want, (size_t)k * sizeof(float));
        t_free(&dy);
    }
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
    {2, 2, 28, 28, 2, 2, 2, 2, 0, 0, 1, 1, 0}, /* LeNet-5's first pool: maxpool's 16-column blocks */
    {1, 2, 9, 37, 3, 3, 2, 2, 1, 1, 1, 1, 1},  /* wide, overlapping, padded, ceil */
    {1, 1, 7, 41, 2, 3, 1, 1, 0, 1, 2, 2, 0},  /* wide, stride 1, dilation */
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
        nnc_maxpool2d_backward(NULL, t->n, x.f, t->c, t->h, t->w, dy.f, oh, ow, t->kh, t->kw, t->sh, t->sw, t->ph, t->pw,
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
    nnc_maxpool2d_backward(NULL, t->n, x.f, t->c, t->h, t->w, dy.f, oh, ow, t->kh, t->kw, t->sh, t->sw, t->ph, t->pw,
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
    nnc_maxpool2d_backward(NULL, 1, x, 1, 4, 4, dy, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1, dx);
    for (int iy = 0; iy < 4; iy++)
        for (int ix = 0; ix < 4; ix++)
            assert_true(dx[iy * 4 + ix] == (iy < 3 && ix < 3 ? dy[iy * 3 + ix] : 0.0f));
    /* pad 1, 3x3, stride 2 on 4x4: outputs 2x2 with windows starting at -1 and 1. */
    memset(dx, 0, sizeof dx);
    nnc_maxpool2d_backward(NULL, 1, x, 1, 4, 4, dy, 2, 2, 3, 3, 2, 2, 1, 1, 1, 1, dx);
    assert_true(dx[0 * 4 + 0] == dy[0]);  /* window rows -1..1, cols -1..1: first inside (0,0) */
    assert_true(dx[0 * 4 + 1] == dy[1]);  /* cols 1..3 */
    assert_true(dx[1 * 4 + 0] == dy[2]);  /* rows 1..3 */
    assert_true(dx[1 * 4 + 1] == dy[3]);
    /* a later, larger value takes the gradient; an equal one does not */
    x[5] = 3.0f, x[6] = 3.0f;
    memset(dx, 0, sizeof dx);
    nnc_maxpool2d_backward(NULL, 1, x, 1, 4, 4, dy, 1, 1, 4, 4, 1, 1, 0, 0, 1, 1, dx);
    assert_true(dx[5] == dy[0] && dx[6] == 0.0f && dx[0] == 0.0f);
    for (int i = 0; i < 16; i++) x[i] = -INFINITY;
    memset(dx, 0, sizeof dx);
    nnc_maxpool2d_backward(NULL, 1, x, 1, 4, 4, dy, 2, 2, 3, 3, 2, 2, 1, 1, 1, 1, dx);
    assert_true(dx[0] == dy[0] && dx[1] == dy[1] && dx[4] == dy[2] && dx[5] == dy[3]);
}

/* The 16- and 8-column blocks and short interiors of nnc_maxpool2d_backward against
 * window-by-window routing (nnc_maxpool_route in row-major order, what it did before the
 * blocks) on wide maps of ties, signed zeros, infinities and NaNs, into a dx
 * that is not zero: the same bits. */
static void test_maxpool2d_backward_blocks(void **state)
{
    static const float vals[] = {-1.0f, 0.0f, -0.0f, 1.0f, 2.0f, INFINITY, -INFINITY, NAN};
    static const PoolCase cases[] = {
        /* n c   h   w kh kw sh sw ph pw dh dw ceil */
        {2, 3, 28, 28, 2, 2, 2, 2, 0, 0, 1, 1, 0},
        {1, 2, 13, 50, 3, 3, 2, 2, 1, 1, 1, 1, 1},
        {1, 2, 11, 45, 3, 3, 1, 1, 1, 1, 1, 1, 0},
        {1, 1, 12, 60, 3, 2, 2, 3, 2, 1, 2, 3, 0},
        {1, 1, 6, 33, 1, 1, 1, 1, 0, 0, 1, 1, 0},
        {2, 3, 10, 10, 2, 2, 2, 2, 0, 0, 1, 1, 0},  /* 8-column blocks (LeNet-5's second pool) */
        {1, 2, 7, 13, 3, 3, 1, 1, 1, 1, 1, 1, 0},   /* 8-column blocks, overlapping windows */
        {1, 2, 5, 19, 2, 2, 2, 2, 0, 0, 1, 1, 1},   /* 8-column blocks, ceil */
        {1, 1, 6, 7, 2, 2, 2, 2, 0, 0, 1, 1, 0},    /* a short interior: window by window */
        {1, 2, 9, 12, 3, 3, 2, 2, 1, 1, 1, 1, 1},
    };
    Rng r = {0x51EDULL};
    (void)state;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const PoolCase *t = &cases[k];
        int oh = pool_out(t->h, t->kh, t->sh, t->ph, t->dh, t->ceil), ow = pool_out(t->w, t->kw, t->sw, t->pw, t->dw, t->ceil);
        size_t xsz = (size_t)t->n * t->c * t->h * t->w, ysz = (size_t)t->n * t->c * oh * ow;
        float *x = malloc(xsz * sizeof *x), *dy = malloc(ysz * sizeof *dy);
        float *dx = malloc(xsz * sizeof *dx), *want = malloc(xsz * sizeof *want);
        for (size_t i = 0; i < xsz; i++) {
            x[i] = vals[rng_next(&r) % 8];
            dx[i] = want[i] = (float)rng_int(&r, -3, 3) * 0.1f;
        }
        for (size_t i = 0; i < ysz; i++) dy[i] = (float)rng_int(&r, -50, 50) * 0.37f;
        for (int pl = 0; pl < t->n * t->c; pl++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++)
                    nnc_maxpool_route(x + (size_t)pl * t->h * t->w, t->h, t->w, oy * t->sh - t->ph, ox * t->sw - t->pw,
                                      t->kh, t->kw, t->dh, t->dw, dy[((size_t)pl * oh + oy) * ow + ox],
                                      want + (size_t)pl * t->h * t->w);
        nnc_maxpool2d_backward(NULL, t->n, x, t->c, t->h, t->w, dy, oh, ow, t->kh, t->kw, t->sh, t->sw, t->ph, t->pw,
                               t->dh, t->dw, dx);
        assert_memory_equal(dx, want, xsz * sizeof *dx);
        free(x), free(dy), free(dx), free(want);
    }
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv2d_backward),
        cmocka_unit_test(test_conv2d_backward_blocks),
        cmocka_unit_test(test_conv_transpose2d_backward),
        cmocka_unit_test(test_linear_backward),
        cmocka_unit_test(test_bias_backward_order),
        cmocka_unit_test(test_maxpool2d_backward),
        cmocka_unit_test(test_maxpool2d_backward_first_max),
        cmocka_unit_test(test_maxpool2d_backward_blocks),
        cmocka_unit_test(test_avgpool2d_backward),
        cmocka_unit_test(test_global_adaptive_avgpool_backward),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
