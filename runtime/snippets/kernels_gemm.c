/* kernels_gemm.c: the first file of the kernel library (kernels.c, whose top
 * comment gives the format and the rules): the prologue every generated file
 * starts with (the activation table, the includes, NNC_MAYBE_UNUSED, the
 * NNC_ACT_* enum), the epilogue and prologue that fused layers apply to a
 * block of their output or input, and the GEMM (the kernels' own, or
 * cblas_sgemm with NNC_USE_CBLAS). */

/* @kernel prologue */
#include "activations.h"
#include <math.h>
#include <string.h>
#include <stddef.h>
#include <float.h>
#ifdef NNC_USE_CBLAS
#include <cblas.h>
#endif
#ifndef NNC_MAYBE_UNUSED
#if defined(__GNUC__) || defined(__clang__)
#define NNC_MAYBE_UNUSED __attribute__((unused))
#else
#define NNC_MAYBE_UNUSED
#endif
#endif
/* The activation of an epilogue (nnc_conv2d, nnc_linear: y = act(y + residual)),
 * a prologue, or nnc_activation: NNC_ACT_NONE, then NNC_ACT_<ID> for each row
 * of NNC_ACTIVATIONS (activations.h), in the table's order. */
#define NNC_ACT_ENUM_(ID, name, FROM, SLOPE, FORWARD, GRAD_IF, GRAD) NNC_ACT_##ID,
enum { NNC_ACT_NONE, NNC_ACTIVATIONS(NNC_ACT_ENUM_) };
#undef NNC_ACT_ENUM_
/* Helpers of activations.h's rows: torch.sigmoid, with exp taken of -|v|
 * only, so it never overflows. */
static NNC_MAYBE_UNUSED float nnc_sigmoidf(float v)
{
    float e;
    if (v >= 0.0f) return 1.0f / (1.0f + expf(-v));
    e = expf(v);
    return e / (1.0f + e);
}

/* @kernel activation */
/* y = act(x) elementwise, act NNC_ACT_* and slope s for the activations that
 * take one (leaky_relu's negative slope): the FORWARD expression of the
 * activation's row in activations.h (nnc_epilogue applies it to a fused layer's output), one
 * loop per activation. NNC_ACT_NONE copies. y may equal x. The activations
 * are PyTorch's (torch.relu, nn.ReLU6, nn.LeakyReLU, torch.sigmoid with exp
 * taken of -|x| only so it never overflows, torch.tanh; NaN stays NaN). */
/* The elementwise loops go in steps of NNC_VL floats, then one by one: gcc's
 * -O2 (how users build) vectorizes only loops whose trip count it knows, so a
 * fixed-length inner loop is what gets vector instructions (the same float
 * operations on each element, in the same order, as a plain loop). */
enum { NNC_VL = 16 };

/* y = act(y) in place (one pointer: nothing to alias). */
static NNC_MAYBE_UNUSED void nnc_activation_inplace(float *y, size_t count, int act, float slope)
{
    const float s = slope;
    size_t i, q;
    (void)s;
    switch (act) {
#define NNC_ACTIVATION_CASE_(ID, name, FROM, SLOPE, FORWARD, GRAD_IF, GRAD) \
    case NNC_ACT_##ID:                                                     \
        for (i = 0; i + NNC_VL <= count; i += NNC_VL)                      \
            for (q = 0; q < NNC_VL; q++) {                                 \
                float v = y[i + q];                                        \
                y[i + q] = (FORWARD);                                      \
            }                                                              \
        for (; i < count; i++) {                                           \
            float v = y[i];                                                \
            y[i] = (FORWARD);                                              \
        }                                                                  \
        break;
        NNC_ACTIVATIONS(NNC_ACTIVATION_CASE_)
#undef NNC_ACTIVATION_CASE_
    default:
        break;
    }
}

static NNC_MAYBE_UNUSED void nnc_activation(size_t count, const float *x, float *y, int act, float slope)
{
    if (x != y && count > 0) memmove(y, x, count * sizeof(float));
    nnc_activation_inplace(y, count, act, slope);
}

/* @kernel epilogue needs: activation */
/* y[0..count) = act(y + residual) (residual NULL: none), with the arithmetic of
 * nnc_add and of nnc_activation, so a fused layer computes the same floats as
 * the unfused chain. The layer calls it on an output block it has just
 * written, while the block is still in cache. residual must not alias y. */
static NNC_MAYBE_UNUSED void nnc_epilogue(float *restrict y, size_t count, const float *restrict residual, int act,
                                          float slope)
{
    size_t i, q;
    if (residual) {
        for (i = 0; i + NNC_VL <= count; i += NNC_VL)
            for (q = 0; q < NNC_VL; q++) y[i + q] = y[i + q] + residual[i + q];
        for (; i < count; i++) y[i] = y[i] + residual[i];
    }
    nnc_activation_inplace(y, count, act, slope);  /* NNC_ACT_NONE: nothing */
}

/* One value through an activation, with the arithmetic of nnc_epilogue. */
static NNC_MAYBE_UNUSED float nnc_act1(float v, int act, float slope)
{
    const float s = slope;
    (void)s;
    switch (act) {
#define NNC_ACT1_CASE_(ID, name, FROM, SLOPE, FORWARD, GRAD_IF, GRAD) \
    case NNC_ACT_##ID: return (FORWARD);
        NNC_ACTIVATIONS(NNC_ACT1_CASE_)
#undef NNC_ACT1_CASE_
    default: return v;
    }
}

/* A prologue (a batchnorm and activation in front of a layer, fused into it):
 * y[ch][0..hw) = act(x[ch][p] * scale[ch] + shift[ch]) for one sample of c
 * channels, with the arithmetic of nnc_batchnorm then the activation kernels. */
static NNC_MAYBE_UNUSED void nnc_prologue(const float *x, int c, size_t hw, const float *scale, const float *shift,
                                          int act, float slope, float *y)
{
    int ch;
    size_t p;
    for (ch = 0; ch < c; ch++) {
        const float *xc = x + (size_t)ch * hw;
        float *yc = y + (size_t)ch * hw, sc = scale[ch], sh = shift[ch];
        for (p = 0; p < hw; p++) yc[p] = xc[p] * sc + sh;
        nnc_epilogue(yc, hw, NULL, act, slope);
    }
}

/* @kernel gemm */
#ifndef NNC_USE_CBLAS
/* C[i][0..N) *= beta for every row; beta == 0 stores zeros and never reads C (it may hold NaN). */
static NNC_MAYBE_UNUSED void nnc_sgemm_scale(int M, int N, float beta, float *C, int ldc)
{
    int i, j;
    if (beta == 1.0f) return;
    for (i = 0; i < M; i++) {
        float *c = C + (size_t)i * (size_t)ldc;
        if (beta == 0.0f) {
            for (j = 0; j < N; j++) c[j] = 0.0f;
        } else {
            for (j = 0; j < N; j++) c[j] *= beta;
        }
    }
}

/* op(A)[i][p]. */
static NNC_MAYBE_UNUSED float nnc_sgemm_a(int transA, const float *A, int lda, int i, int p)
{
    return transA ? A[(size_t)p * (size_t)lda + (size_t)i] : A[(size_t)i * (size_t)lda + (size_t)p];
}

/* One NNC_GEMM_MR x NNC_GEMM_NR block of C += alpha * op(A) * B over the
 * steps [pb, pe) of the sum: the block's sums stay in a local array the
 * compiler keeps in vector registers (32 floats a row: two 512-bit or four
 * 256-bit registers), and each step loads one row of B and MR values of A
 * for MR * NR multiply-adds. (The i-k-j loops of nnc_sgemm_rows load and
 * store a row of C for every four steps instead.) */
enum { NNC_GEMM_MR = 6, NNC_GEMM_NR = 32 };
static NNC_MAYBE_UNUSED void nnc_sgemm_block(int transA, int i0, int j0, int pb, int pe, float alpha,
                                             const float *restrict A, int lda, const float *restrict B, int ldb,
                                             float *restrict C, int ldc)
{
    float acc[NNC_GEMM_MR][NNC_GEMM_NR];
    int r, q, p;
    for (r = 0; r < NNC_GEMM_MR; r++)
        for (q = 0; q < NNC_GEMM_NR; q++) acc[r][q] = 0.0f;
    for (p = pb; p < pe; p++) {
        const float *restrict b = B + (size_t)p * (size_t)ldb + (size_t)j0;
#ifdef __clang__  /* unrolled, acc stays in registers: without, clang 14 ran VGG-16 at -O0 5x slower than gcc */
#pragma clang loop unroll(full)
#endif
        for (r = 0; r < NNC_GEMM_MR; r++) {
            float a = nnc_sgemm_a(transA, A, lda, i0 + r, p);
            for (q = 0; q < NNC_GEMM_NR; q++) acc[r][q] += a * b[q];
        }
    }
    for (r = 0; r < NNC_GEMM_MR; r++) {
        float *restrict c = C + (size_t)(i0 + r) * (size_t)ldc + (size_t)j0;
        for (q = 0; q < NNC_GEMM_NR; q++) c[q] += alpha * acc[r][q];
    }
}

/* Rows [i0, i1), columns [j0, j1) of C += alpha * op(A) * B over the steps
 * [pb, pe), i-k-j: what the blocks leave (the last rows and columns, and
 * matrices narrower than a block). */
static NNC_MAYBE_UNUSED void nnc_sgemm_rows(int transA, int i0, int i1, int j0, int j1, int pb, int pe, float alpha,
                                            const float *restrict A, int lda, const float *restrict B, int ldb,
                                            float *restrict C, int ldc)
{
    int i, j, p;
    for (i = i0; i < i1; i++) {
        float *restrict c = C + (size_t)i * (size_t)ldc;
        for (p = pb; p + 4 <= pe; p += 4) {
            const float *restrict b0 = B + (size_t)p * (size_t)ldb, *restrict b1 = b0 + ldb;
            const float *restrict b2 = b1 + ldb, *restrict b3 = b2 + ldb;
            float a0 = alpha * nnc_sgemm_a(transA, A, lda, i, p);
            float a1 = alpha * nnc_sgemm_a(transA, A, lda, i, p + 1);
            float a2 = alpha * nnc_sgemm_a(transA, A, lda, i, p + 2);
            float a3 = alpha * nnc_sgemm_a(transA, A, lda, i, p + 3);
            for (j = j0; j < j1; j++) c[j] += a0 * b0[j] + a1 * b1[j] + a2 * b2[j] + a3 * b3[j];
        }
        for (; p < pe; p++) {
            const float *restrict b = B + (size_t)p * (size_t)ldb;
            float a = alpha * nnc_sgemm_a(transA, A, lda, i, p);
            for (j = j0; j < j1; j++) c[j] += a * b[j];
        }
    }
}

/* C += alpha*op(A)*B (B not transposed), blocked so that a KB x NB panel of B
 * stays in L2 while the MR x NR blocks of C (nnc_sgemm_block) sweep it; the
 * rows and columns left over go through nnc_sgemm_rows. */
static NNC_MAYBE_UNUSED void nnc_sgemm_xn(int transA, int M, int N, int K, float alpha,
                                          const float *restrict A, int lda, const float *restrict B, int ldb,
                                          float *restrict C, int ldc)
{
    enum { NB = 512, KB = 256 };
    int i, j, jb, pb, mfull = M / NNC_GEMM_MR * NNC_GEMM_MR;
    for (jb = 0; jb < N; jb += NB) {
        int je = N - jb > NB ? jb + NB : N, jfull = jb + (je - jb) / NNC_GEMM_NR * NNC_GEMM_NR;
        for (pb = 0; pb < K; pb += KB) {
            int pe = K - pb > KB ? pb + KB : K;
            for (i = 0; i < mfull; i += NNC_GEMM_MR)
                for (j = jb; j < jfull; j += NNC_GEMM_NR)
                    nnc_sgemm_block(transA, i, j, pb, pe, alpha, A, lda, B, ldb, C, ldc);
            if (jfull < je) nnc_sgemm_rows(transA, 0, mfull, jfull, je, pb, pe, alpha, A, lda, B, ldb, C, ldc);
            if (mfull < M) nnc_sgemm_rows(transA, mfull, M, jb, je, pb, pe, alpha, A, lda, B, ldb, C, ldc);
        }
    }
}

/* Dot product of two contiguous vectors, four partial sums to break the add chain. */
static NNC_MAYBE_UNUSED float nnc_sdot(const float *a, const float *b, int K)
{
    float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
    int p = 0;
    for (; p + 4 <= K; p += 4) {
        s0 += a[p] * b[p];
        s1 += a[p + 1] * b[p + 1];
        s2 += a[p + 2] * b[p + 2];
        s3 += a[p + 3] * b[p + 3];
    }
    for (; p < K; p++) s0 += a[p] * b[p];
    return (s0 + s1) + (s2 + s3);
}

/* C += alpha*op(A)*B^T: rows of B are contiguous, so each C[i][j] is a dot
 * product. j is the outer loop so a row of B (a weight row of a linear layer)
 * is read from memory once and reused from cache for every row of A. */
static NNC_MAYBE_UNUSED void nnc_sgemm_xt(int transA, int M, int N, int K, float alpha,
                                          const float *A, int lda, const float *B, int ldb, float *C, int ldc)
{
    int i, j, p;
    for (j = 0; j < N; j++) {
        const float *b = B + (size_t)j * (size_t)ldb;
        for (i = 0; i < M; i++) {
            float s = 0.0f;
            if (!transA) {
                s = nnc_sdot(A + (size_t)i * (size_t)lda, b, K);
            } else {
                for (p = 0; p < K; p++) s += A[(size_t)p * (size_t)lda + (size_t)i] * b[p];
            }
            C[(size_t)i * (size_t)ldc + (size_t)j] += alpha * s;
        }
    }
}
#endif

/* Row-major C[M][N] = alpha*op(A)*op(B) + beta*C (BLAS sgemm; op = transpose when trans* is 1). */
static NNC_MAYBE_UNUSED void nnc_sgemm(int transA, int transB, int M, int N, int K, float alpha,
                                       const float *A, int lda, const float *B, int ldb, float beta,
                                       float *C, int ldc)
{
#ifdef NNC_USE_CBLAS
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#else
    if (M <= 0 || N <= 0) return;
    nnc_sgemm_scale(M, N, beta, C, ldc);
    if (K <= 0 || alpha == 0.0f) return;
    if (transB)
        nnc_sgemm_xt(transA, M, N, K, alpha, A, lda, B, ldb, C, ldc);
    else
        nnc_sgemm_xn(transA, M, N, K, alpha, A, lda, B, ldb, C, ldc);
#endif
}

