/* kernel_test.h: what the tests of the forward kernels share (test_kernels_conv.c,
 * test_kernels_layers.c): the kernel library itself (runtime/snippets/kernels.c,
 * included), a fixed-seed RNG, buffers, the comparisons, and a reference of
 * every activation.
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
 * Each test file is built twice: as itself (the kernels' own GEMM) and as
 * NAME_blas (-DNNC_USE_CBLAS=1, OpenBLAS; tests/CMakeLists.txt). Included by
 * one test file each; every helper is static. */
#ifndef NNC_TEST_KERNEL_TEST_H
#define NNC_TEST_KERNEL_TEST_H

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

#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wunused-function"
#endif

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

/* A ctx with `threads` threads that runs instruction set isa (the tests of
 * the kernels that take one: every isa, 1 and more threads). */
static inline void ctx_for(nnc_ctx *c, int isa, int threads)
{
    assert_int_equal(nnc_ctx_init(c, threads), 0);
    assert_int_equal(c->threads, threads);
    c->isa = isa;
}

/* The instruction sets to test: those this CPU has, into out[0..3); how many. */
static inline int isas(int *out)
{
    int n = 0, best = nnc_cpu_isa();
    out[n++] = NNC_ISA_C;
    if (best >= NNC_ISA_AVX2) out[n++] = NNC_ISA_AVX2;
    if (best >= NNC_ISA_AVX512) out[n++] = NNC_ISA_AVX512;
    return n;
}

static void check_equal(const float *out, const float *want, size_t count, const char *what)
{
    for (size_t i = 0; i < count; i++)
        if (memcmp(&out[i], &want[i], sizeof(float)) != 0)
            fail_msg("%s: element %zu is %g, want %g", what, i, (double)out[i], (double)want[i]);
}

/* ---- the activations ---- */

/* How many activations the table has, NNC_ACT_NONE included, and their names. */
#define KT_ONE_(...) +1
enum { N_ACTS = 1 NNC_ACTIVATIONS(KT_ONE_) };
#undef KT_ONE_
#define KT_NAME_(ID, name, ...) #name,
static const char *const act_names[] = {"none", NNC_ACTIVATIONS(KT_NAME_)};
#undef KT_NAME_

/* The reference of activation act (NNC_ACT_NONE: identity) at v, leaky slope
 * 0.125, in double from PyTorch's definition; an activation without a
 * reference fails the test that asks. */
static double act_ref(int act, double v)
{
    switch (act) {
    case NNC_ACT_NONE: return v;
    case NNC_ACT_RELU: return v > 0 ? v : 0.0;
    case NNC_ACT_RELU6: return v < 0 ? 0.0 : v > 6 ? 6.0 : v;
    case NNC_ACT_LEAKY_RELU: return v >= 0 ? v : 0.125 * v;
    case NNC_ACT_SIGMOID: return v >= 0 ? 1.0 / (1.0 + exp(-v)) : exp(v) / (1.0 + exp(v));
    case NNC_ACT_TANH: return tanh(v);
    case NNC_ACT_SILU: return v / (1.0 + exp(-v));                                  /* torch.nn.SiLU */
    case NNC_ACT_HARDSWISH: return v * (v + 3 < 0 ? 0.0 : v + 3 > 6 ? 6.0 : v + 3) / 6; /* torch.nn.Hardswish */
    case NNC_ACT_GELU: return 0.5 * v * (1.0 + erf(v / sqrt(2.0)));                 /* torch.nn.GELU() */
    default: fail_msg("activation %d has no reference in kernel_test.h", act);
    }
    return NAN;
}

/* The unfused chain an epilogue replaces: nnc_add, then the activation kernel, in place. */
static void unfused_epilogue(float *y, size_t count, const float *residual, int act)
{
    if (residual) nnc_add(count, y, residual, y);
    nnc_activation(count, y, y, act, 0.125f);
}

#endif
