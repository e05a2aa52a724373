/* grad_test.h: what the tests of the training kernels share
 * (test_grad_kernels_layers.c, test_grad_kernels_train.c): the kernel library
 * (runtime/snippets/kernels.c and grad_kernels.c, included), an RNG, tensors
 * held in float and double, finite differences and the comparisons.
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
 * Each test file is built twice: as itself and, with OpenBLAS behind the
 * GEMMs, as NAME_blas (-DNNC_USE_CBLAS=1; tests/CMakeLists.txt). Included by
 * one test file each; every helper is static. */
#ifndef NNC_TEST_GRAD_TEST_H
#define NNC_TEST_GRAD_TEST_H

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

#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wunused-function"
#endif

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

#endif
