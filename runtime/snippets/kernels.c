/* kernels.c: the C kernels that nnc pastes into generated model sources.
 *
 * Generated code must be one self-contained C99 file that users drop into
 * their own builds, so the kernels are not a library to link: the code
 * generator copies them as text (codegen/snippet.c). To keep a LeNet's output
 * free of LRN and transposed convolutions, the file is cut into sections. A
 * section opens with a marker line, alone on its line, of the form
 *     slash-star @kernel NAME [needs: DEP1 DEP2] star-slash
 * and runs to the next marker. The generator takes "prologue" (always), the
 * sections the graph calls and, transitively, their needs, in file order; so
 * a section must come after everything it needs, and must compile with only
 * those before it. Text above the first marker (this paragraph) is not copied.
 *
 * Rules for every section: C99, warning-free under gcc and clang with
 * -Wall -Wextra -Werror -pedantic -Wshadow -Wstrict-prototypes
 * -Wmissing-prototypes, with and without NNC_USE_CBLAS; only static functions
 * (marked NNC_MAYBE_UNUSED, since a model may paste a section and call only
 * part of it); no global mutable state (two model instances may run in two
 * threads); no exit() and no printing; no VLAs; size_t offsets wherever a
 * batch-sized tensor is indexed. Tensors are fp32 NCHW, batch n at run time,
 * parameters in PyTorch layouts. tests/unit/test_kernels.c checks every
 * kernel against a double-precision reference and compiles each section in
 * isolation. */

/* @kernel prologue */
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
/* The activation of an epilogue (nnc_conv2d, nnc_linear): y = act(y + residual). */
enum { NNC_ACT_NONE, NNC_ACT_RELU, NNC_ACT_RELU6, NNC_ACT_LEAKY_RELU, NNC_ACT_SIGMOID, NNC_ACT_TANH };

/* @kernel epilogue */
/* y[0..count) = act(y + residual) (residual NULL: none), with the arithmetic of
 * nnc_add and of the activation kernels below, so a fused layer computes the
 * same floats as the unfused chain. The layer calls it on an output block it
 * has just written, while the block is still in cache. residual must not alias y. */
static NNC_MAYBE_UNUSED void nnc_epilogue(float *y, size_t count, const float *residual, int act, float slope)
{
    size_t i;
    if (residual)
        for (i = 0; i < count; i++) y[i] = y[i] + residual[i];
    switch (act) {
    case NNC_ACT_RELU:
        for (i = 0; i < count; i++) y[i] = y[i] < 0.0f ? 0.0f : y[i];
        break;
    case NNC_ACT_RELU6:
        for (i = 0; i < count; i++) {
            float v = y[i] < 0.0f ? 0.0f : y[i];
            y[i] = v > 6.0f ? 6.0f : v;
        }
        break;
    case NNC_ACT_LEAKY_RELU:
        for (i = 0; i < count; i++) y[i] = y[i] < 0.0f ? slope * y[i] : y[i];
        break;
    case NNC_ACT_SIGMOID:
        for (i = 0; i < count; i++) {
            float v = y[i];
            if (v >= 0.0f) {
                y[i] = 1.0f / (1.0f + expf(-v));
            } else {
                float e = expf(v);
                y[i] = e / (1.0f + e);
            }
        }
        break;
    case NNC_ACT_TANH:
        for (i = 0; i < count; i++) y[i] = tanhf(y[i]);
        break;
    default:
        break;
    }
}

/* One value through an activation, with the arithmetic of nnc_epilogue. */
static NNC_MAYBE_UNUSED float nnc_act1(float v, int act, float slope)
{
    switch (act) {
    case NNC_ACT_RELU: return v < 0.0f ? 0.0f : v;
    case NNC_ACT_RELU6: v = v < 0.0f ? 0.0f : v; return v > 6.0f ? 6.0f : v;
    case NNC_ACT_LEAKY_RELU: return v < 0.0f ? slope * v : v;
    case NNC_ACT_SIGMOID: {
        float e;
        if (v >= 0.0f) return 1.0f / (1.0f + expf(-v));
        e = expf(v);
        return e / (1.0f + e);
    }
    case NNC_ACT_TANH: return tanhf(v);
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

/* @kernel conv_common */
/* y[r][0..cols) = bias[r] for r < rows, or 0 when bias is NULL. */
static NNC_MAYBE_UNUSED void nnc_fill_rows(float *y, int rows, size_t cols, const float *bias)
{
    int r;
    size_t j;
    for (r = 0; r < rows; r++) {
        float v = bias ? bias[r] : 0.0f;
        float *row = y + (size_t)r * cols;
        for (j = 0; j < cols; j++) row[j] = v;
    }
}

/* Columns one convolution GEMM should have at least. With few pixels per
 * sample (CIFAR's maps, the late layers of any network: 49 columns at 7x7)
 * one GEMM per sample is skinny and packs the weights again for each, so the
 * kernels put the samples of a block side by side (nnc_conv_samples) and run
 * one GEMM of normal shape per block. */
enum { NNC_CONV_COLS = 512 };

/* Samples per block for maps of ohw pixels, at most n: 1 when a sample alone
 * has NNC_CONV_COLS columns. */
static NNC_MAYBE_UNUSED int nnc_conv_samples(int n, int ohw)
{
    int nb = ohw >= NNC_CONV_COLS ? 1 : (NNC_CONV_COLS + ohw - 1) / ohw;
    return nb < n ? nb : n < 1 ? 1 : n;
}

/* The indices t in [0, count) with 0 <= t*stride + off < limit form [*lo, *hi)
 * (empty: *lo == *hi); the clipping bounds of a convolution window row. */
static NNC_MAYBE_UNUSED void nnc_valid_range(int count, int stride, int off, int limit, int *lo, int *hi)
{
    int a = off >= 0 ? 0 : (-off + stride - 1) / stride;
    int b = limit - 1 - off < 0 ? 0 : (limit - 1 - off) / stride + 1;
    if (a > count) a = count;
    if (b > count) b = count;
    if (b < a) b = a;
    *lo = a;
    *hi = b;
}

/* @kernel conv2d needs: gemm conv_common epilogue */
/* One row of an im2col matrix: row[ox] = src[ox*sw + off], 0 outside [0, w). */
static NNC_MAYBE_UNUSED void nnc_im2col_row(const float *src, int w, float *row, int ow, int sw, int off)
{
    int ox, lo, hi;
    nnc_valid_range(ow, sw, off, w, &lo, &hi);
    for (ox = 0; ox < lo; ox++) row[ox] = 0.0f;
    if (sw == 1) {
        if (hi > lo) memcpy(row + lo, src + lo + off, (size_t)(hi - lo) * sizeof(float));
    } else {
        for (ox = lo; ox < hi; ox++) row[ox] = src[ox * sw + off];
    }
    for (ox = hi; ox < ow; ox++) row[ox] = 0.0f;
}

/* Unfolds x[cg][h][w] into col[cg*kh*kw][oh*ow]: row (ci,ki,kj), column (oy,ox)
 * holds the input pixel that kernel tap meets at that output (0 in padding).
 * ld is the distance between rows of col in floats: oh*ow for one sample's
 * matrix, more when col is one sample's block of columns in a wider matrix
 * (several samples side by side, nnc_conv2d_backward). */
static NNC_MAYBE_UNUSED void nnc_im2col(const float *x, int cg, int h, int w, float *col, size_t ld, int oh, int ow,
                                        int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw)
{
    int ci, ki, kj, oy;
    size_t r = 0;
    for (ci = 0; ci < cg; ci++)
        for (ki = 0; ki < kh; ki++)
            for (kj = 0; kj < kw; kj++, r++) {
                float *row = col + r * ld;
                for (oy = 0; oy < oh; oy++, row += ow) {
                    int iy = oy * sh - ph + ki * dh;
                    if (iy < 0 || iy >= h)
                        memset(row, 0, (size_t)ow * sizeof(float));
                    else
                        nnc_im2col_row(x + ((size_t)ci * (size_t)h + (size_t)iy) * (size_t)w, w, row, ow, sw,
                                       kj * dw - pw);
                }
            }
}

/* Columns [c0, c1) of one output row of a depthwise plane: yrow[ox] += the
 * taps of kernel row ki inside the image, one tap after another (the order
 * every path of nnc_dw_plane adds them in). */
static NNC_MAYBE_UNUSED void nnc_dw_row_taps(const float *xrow, int w, const float *wr, float *yrow, int c0, int c1,
                                             int kw, int sw, int pw, int dw)
{
    int kj, ox;
    for (kj = 0; kj < kw; kj++) {
        int off = kj * dw - pw, lo, hi;
        float wv = wr[kj];
        nnc_valid_range(c1, sw, off, w, &lo, &hi);
        if (lo < c0) lo = c0;
        if (sw == 1) {
            const float *xs = xrow + off;
            for (ox = lo; ox < hi; ox++) yrow[ox] += wv * xs[ox];
        } else {
            for (ox = lo; ox < hi; ox++) yrow[ox] += wv * xrow[ox * sw + off];
        }
    }
}

/* One depthwise plane, rows [oy0, oy1) of the output: y[oy - oy0][ox] = b +
 * sum of wk[ki][kj] * xc[oy*sh - ph + ki*dh][ox*sw - pw + kj*dw] over the taps
 * inside the image (zero padding), added in kernel order. y holds (oy1 - oy0)
 * rows of ow floats. A direct loop: with one input channel per group, im2col
 * would build a kh*kw-row matrix for a GEMM of a single output row. For the
 * usual three taps a row, the columns whose taps are all inside the image add
 * a kernel row's three in one pass over the output row (the same sums in the
 * same order as tap by tap, a third of the loads and stores of y). */
static NNC_MAYBE_UNUSED void nnc_dw_plane(const float *xc, int h, int w, const float *wk, float b, float *y, int oy0,
                                          int oy1, int ow, int kh, int kw, int sh, int sw, int ph, int pw, int dh,
                                          int dw)
{
    int oy, ox, ki;
    /* columns with every tap inside: ox*sw - pw >= 0 and ox*sw - pw + (kw-1)*dw <= w - 1 */
    int xlo = (pw + sw - 1) / sw, xhi = w - 1 + pw - (kw - 1) * dw < 0 ? 0 : (w - 1 + pw - (kw - 1) * dw) / sw + 1;
    if (xhi > ow) xhi = ow;
    if (xlo > xhi || kw != 3) xlo = xhi = 0;  /* tap by tap everywhere */
    for (oy = oy0; oy < oy1; oy++) {
        float *yrow = y + (size_t)(oy - oy0) * (size_t)ow;
        for (ox = 0; ox < ow; ox++) yrow[ox] = b;
        for (ki = 0; ki < kh; ki++) {
            int iy = oy * sh - ph + ki * dh;
            const float *xrow, *wr = wk + ki * kw;
            if (iy < 0 || iy >= h) continue;
            xrow = xc + (size_t)iy * (size_t)w;
            if (xlo < xhi) {
                const float w0 = wr[0], w1 = wr[1], w2 = wr[2];
                const float *x0 = xrow - pw, *x1 = x0 + dw, *x2 = x1 + dw;
                nnc_dw_row_taps(xrow, w, wr, yrow, 0, xlo, kw, sw, pw, dw);
                if (sw == 1)
                    for (ox = xlo; ox < xhi; ox++) yrow[ox] = ((yrow[ox] + w0 * x0[ox]) + w1 * x1[ox]) + w2 * x2[ox];
                else
                    for (ox = xlo; ox < xhi; ox++) {
                        size_t p = (size_t)ox * (size_t)sw;
                        yrow[ox] = ((yrow[ox] + w0 * x0[p]) + w1 * x1[p]) + w2 * x2[p];
                    }
                nnc_dw_row_taps(xrow, w, wr, yrow, xhi, ow, kw, sw, pw, dw);
            } else {
                nnc_dw_row_taps(xrow, w, wr, yrow, 0, ow, kw, sw, pw, dw);
            }
        }
    }
}

/* Samples per GEMM block of nnc_conv2d at batch n: several only for a plain
 * convolution (no prologue, not depthwise) of a small map. */
static NNC_MAYBE_UNUSED int nnc_conv2d_block(int n, int c, int kh, int kw, int sh, int sw, int ph, int pw, int oh,
                                             int ow, int groups, int prologue)
{
    int direct = kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0;
    if (prologue || (c / groups == 1 && !direct)) return 1;
    return nnc_conv_samples(n, oh * ow);
}

/* Floats of scratch nnc_conv2d needs at batches up to n: the prologue's copy
 * of one sample (c*h*w, when it has one), then one im2col matrix (one sample,
 * one group), which a 1x1 stride-1 unpadded convolution and a depthwise one
 * (one input channel per group) do without; or, for blocks of several samples
 * (nnc_conv2d_block), their im2col matrices side by side and the block's
 * output beside them. */
static NNC_MAYBE_UNUSED size_t nnc_conv2d_scratch(int n, int c, int h, int w, int k, int kh, int kw, int sh, int sw,
                                                  int ph, int pw, int oh, int ow, int groups, int prologue)
{
    size_t s = prologue ? (size_t)c * (size_t)h * (size_t)w : 0, ohw = (size_t)oh * (size_t)ow;
    size_t nb = (size_t)nnc_conv2d_block(n, c, kh, kw, sh, sw, ph, pw, oh, ow, groups, prologue);
    int direct = kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0;
    if (nb > 1) return ((size_t)(c / groups) * (size_t)kh * (size_t)kw + (size_t)(k / groups)) * nb * ohw;
    if (!direct && c / groups > 1) s += (size_t)(c / groups) * (size_t)kh * (size_t)kw * ohw;
    return s;
}

/* The epilogue of one sample's group of channels yg [kg][ohw]: y = act(y +
 * residual) (rg: the residual's same block, or NULL), the activation on the
 * group's channels below act_k only (a fused group of sibling convolutions,
 * some without one). */
static NNC_MAYBE_UNUSED void nnc_conv_epilogue(float *yg, int g, int kg, size_t ohw, const float *rg, int act,
                                               float slope, int act_k)
{
    int on = act_k - g * kg;  /* channels of this group the activation covers */
    on = on < 0 ? 0 : on > kg ? kg : on;
    if (on > 0) nnc_epilogue(yg, (size_t)on * ohw, rg, act, slope);
    if (on < kg) nnc_epilogue(yg + (size_t)on * ohw, (size_t)(kg - on) * ohw, rg ? rg + (size_t)on * ohw : NULL,
                              NNC_ACT_NONE, 0.0f);
}

/* nnc_conv2d for a block of m samples side by side (nnc_conv2d_block): per
 * group, their im2col matrices fill the scratch's columns (row stride m*ohw),
 * one GEMM writes the block's output after them, and each sample's rows go
 * out with the bias added, then through the epilogue. */
static NNC_MAYBE_UNUSED void nnc_conv2d_blocked(int m, const float *x, size_t xs, int c, int h, int w,
                                                const float *wt, const float *bias, float *y, size_t ys, int k,
                                                int oh, int ow, int kh, int kw, int sh, int sw, int ph, int pw,
                                                int dh, int dw, int groups, float *scratch, const float *residual,
                                                size_t rs, int act, float slope, int act_k)
{
    int cg = c / groups, kg = k / groups, kdim = cg * kh * kw, g, j, o;
    size_t ohw = (size_t)oh * (size_t)ow, ld = (size_t)m * ohw, hw = (size_t)h * (size_t)w, p;
    float *out = scratch + (size_t)kdim * ld;
    for (g = 0; g < groups; g++) {
        for (j = 0; j < m; j++)
            nnc_im2col(x + (size_t)j * xs + (size_t)g * (size_t)cg * hw, cg, h, w, scratch + (size_t)j * ohw, ld, oh,
                       ow, kh, kw, sh, sw, ph, pw, dh, dw);
        nnc_sgemm(0, 0, kg, (int)ld, kdim, 1.0f, wt + (size_t)g * (size_t)kg * (size_t)kdim, kdim, scratch, (int)ld,
                  0.0f, out, (int)ld);
        for (j = 0; j < m; j++) {
            float *yg = y + (size_t)j * ys + (size_t)g * (size_t)kg * ohw;
            for (o = 0; o < kg; o++) {
                const float *src = out + (size_t)o * ld + (size_t)j * ohw;
                float b = bias ? bias[g * kg + o] : 0.0f, *dst = yg + (size_t)o * ohw;
                for (p = 0; p < ohw; p++) dst[p] = src[p] + b;
            }
            if (residual || act != NNC_ACT_NONE)
                nnc_conv_epilogue(yg, g, kg, ohw, residual ? residual + (size_t)j * rs + (size_t)g * (size_t)kg * ohw
                                                           : NULL, act, slope, act_k);
        }
    }
}

/* torch.nn.Conv2d (zero padding): per sample and group, y = W * im2col(x) + bias,
 * then the epilogue y = act(y + residual) on that block (nnc_epilogue; residual
 * [n][k][oh][ow] with batch stride rs, or NULL; act NNC_ACT_*, slope for
 * leaky_relu), the activation on output channels [0, act_k) only (k: all; a
 * fused group of sibling convolutions, some without one). xs and ys are the
 * batch strides of x and y in floats (c*h*w and k*oh*ow for whole tensors;
 * more when x or y is a channel slice of a larger tensor). With
 * pscale (else NULL), each sample first goes through the prologue
 * x' = pact(x * pscale + pshift) into the scratch (nnc_prologue), so padding
 * stays zero after it as PyTorch's BN-ReLU-Conv has it. A 1x1, stride-1,
 * unpadded convolution multiplies x directly (no im2col); a depthwise one runs
 * nnc_dw_plane per channel. Small maps go in blocks of samples
 * (nnc_conv2d_blocked); the scratch holds nnc_conv2d_scratch(n, ...) floats. */
static NNC_MAYBE_UNUSED void nnc_conv2d(int n, const float *x, size_t xs, int c, int h, int w, const float *wt,
                                        const float *bias, float *y, size_t ys, int k, int oh, int ow, int kh, int kw,
                                        int sh, int sw, int ph, int pw, int dh, int dw, int groups, float *scratch,
                                        const float *residual, size_t rs, int act, float slope, int act_k,
                                        const float *pscale, const float *pshift, int pact, float pslope)
{
    int cg = c / groups, kg = k / groups, i, g, o;
    int kdim = cg * kh * kw, ohw = oh * ow;
    size_t hw = (size_t)h * (size_t)w;
    int direct = kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0 && oh == h && ow == w;
    int nb = nnc_conv2d_block(n, c, kh, kw, sh, sw, ph, pw, oh, ow, groups, pscale != NULL);
    if (nb > 1) {
        for (i = 0; i < n; i += nb)
            nnc_conv2d_blocked(n - i < nb ? n - i : nb, x + (size_t)i * xs, xs, c, h, w, wt, bias,
                               y + (size_t)i * ys, ys, k, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, groups, scratch,
                               residual ? residual + (size_t)i * rs : NULL, rs, act, slope, act_k);
        return;
    }
    for (i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * xs;
        float *yi = y + (size_t)i * ys, *cols_buf = scratch;
        if (pscale) {
            nnc_prologue(xi, c, hw, pscale, pshift, pact, pslope, scratch);
            xi = scratch;
            cols_buf = scratch + (size_t)c * hw;
        }
        for (g = 0; g < groups; g++) {
            const float *xg = xi + (size_t)g * (size_t)cg * hw;
            float *yg = yi + (size_t)g * (size_t)kg * (size_t)ohw;
            if (cg == 1 && !direct) {
                for (o = 0; o < kg; o++) {
                    int oc = g * kg + o;
                    nnc_dw_plane(xg, h, w, wt + (size_t)oc * (size_t)kdim, bias ? bias[oc] : 0.0f,
                                 yg + (size_t)o * (size_t)ohw, 0, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw);
                }
            } else {
                const float *cols = xg;
                if (!direct) {
                    nnc_im2col(xg, cg, h, w, cols_buf, (size_t)ohw, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw);
                    cols = cols_buf;
                }
                if (bias) nnc_fill_rows(yg, kg, (size_t)ohw, bias + (size_t)g * (size_t)kg);
                nnc_sgemm(0, 0, kg, ohw, kdim, 1.0f, wt + (size_t)g * (size_t)kg * (size_t)kdim, kdim, cols, ohw,
                          bias ? 1.0f : 0.0f, yg, ohw);
            }
            if (residual || act != NNC_ACT_NONE)
                nnc_conv_epilogue(yg, g, kg, (size_t)ohw,
                                  residual ? residual + (size_t)i * rs + (size_t)g * (size_t)kg * (size_t)ohw : NULL,
                                  act, slope, act_k);
        }
    }
}

/* @kernel dwpw needs: gemm conv2d epilogue */
/* Floats of scratch nnc_dwpw needs: the depthwise output of one tile of rows. */
static NNC_MAYBE_UNUSED size_t nnc_dwpw_scratch(int c, int ow, int tile_rows)
{
    return (size_t)c * (size_t)tile_rows * (size_t)ow;
}

/* A depthwise convolution (torch.nn.Conv2d with groups = c = channels) with
 * bias dwb and activation dact, then a 1x1 convolution to k channels with bias
 * pwb and the epilogue y = act(y + residual), computed tile_rows output rows at
 * a time: the depthwise rows of all channels go to the scratch (c x tile_rows x
 * ow floats, sized to stay in cache), the pointwise GEMM reads them from there
 * and writes the tile's rows of y. The depthwise output never exists whole.
 * xs, ys: batch strides of x and y in floats; residual is contiguous. */
static NNC_MAYBE_UNUSED void nnc_dwpw(int n, const float *x, size_t xs, int c, int h, int w, const float *dwt,
                                      const float *dwb, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                                      int dact, float dslope, const float *pwt, const float *pwb, float *y, size_t ys,
                                      int k, int oh, int ow, const float *residual, int act, float slope,
                                      int tile_rows, float *scratch)
{
    int i, r0, ch, o;
    size_t hw = (size_t)h * (size_t)w, ohw = (size_t)oh * (size_t)ow;
    if (tile_rows < 1) tile_rows = 1;
    for (i = 0; i < n; i++)
        for (r0 = 0; r0 < oh; r0 += tile_rows) {
            int rows = oh - r0 < tile_rows ? oh - r0 : tile_rows, cols = rows * ow;
            float *yt = y + (size_t)i * ys + (size_t)r0 * (size_t)ow;
            for (ch = 0; ch < c; ch++)
                nnc_dw_plane(x + (size_t)i * xs + (size_t)ch * hw, h, w, dwt + (size_t)ch * (size_t)(kh * kw),
                             dwb ? dwb[ch] : 0.0f, scratch + (size_t)ch * (size_t)cols, r0, r0 + rows, ow, kh, kw,
                             sh, sw, ph, pw, dh, dw);
            nnc_epilogue(scratch, (size_t)c * (size_t)cols, NULL, dact, dslope);
            if (pwb)
                for (o = 0; o < k; o++) {
                    float *row = yt + (size_t)o * ohw;
                    int j;
                    for (j = 0; j < cols; j++) row[j] = pwb[o];
                }
            nnc_sgemm(0, 0, k, cols, c, 1.0f, pwt, c, scratch, cols, pwb ? 1.0f : 0.0f, yt, (int)ohw);
            if (residual || act != NNC_ACT_NONE)
                for (o = 0; o < k; o++)
                    nnc_epilogue(yt + (size_t)o * ohw, (size_t)cols,
                                 residual ? residual + ((size_t)i * (size_t)k + (size_t)o) * ohw +
                                                (size_t)r0 * (size_t)ow
                                          : NULL,
                                 act, slope);
        }
}

/* @kernel conv_transpose2d needs: gemm conv_common epilogue */
/* Folds col[kg*kh*kw][h*w] back into y[kg][oh][ow], adding each column entry at
 * the output pixel its kernel tap reaches (taps landing outside are dropped).
 * ld: the distance between rows of col in floats (h*w, or more as nnc_im2col's). */
static NNC_MAYBE_UNUSED void nnc_col2im(const float *col, size_t ld, int kg, int h, int w, float *y, int oh, int ow,
                                        int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw)
{
    int ko, ki, kj, iy, ix;
    size_t r = 0;
    for (ko = 0; ko < kg; ko++)
        for (ki = 0; ki < kh; ki++)
            for (kj = 0; kj < kw; kj++, r++) {
                const float *row = col + r * ld;
                float *yk = y + (size_t)ko * (size_t)oh * (size_t)ow;
                int off = kj * dw - pw, lo, hi;
                nnc_valid_range(w, sw, off, ow, &lo, &hi);
                for (iy = 0; iy < h; iy++, row += w) {
                    int oy = iy * sh - ph + ki * dh;
                    float *yrow;
                    if (oy < 0 || oy >= oh) continue;
                    yrow = yk + (size_t)oy * (size_t)ow;
                    for (ix = lo; ix < hi; ix++) yrow[ix * sw + off] += row[ix];
                }
            }
}

/* Floats of scratch nnc_conv_transpose2d needs: one column matrix (one sample, one group). */
static NNC_MAYBE_UNUSED size_t nnc_conv_transpose2d_scratch(int h, int w, int k, int kh, int kw, int groups)
{
    return (size_t)(k / groups) * (size_t)kh * (size_t)kw * (size_t)h * (size_t)w;
}

/* torch.nn.ConvTranspose2d: per sample and group, col = W^T * x, then y = bias + col2im(col),
 * then the epilogue y = act(y + residual) on that block, as nnc_conv2d's. */
static NNC_MAYBE_UNUSED void nnc_conv_transpose2d(int n, const float *x, int c, int h, int w, const float *wt,
                                                  const float *bias, float *y, int k, int oh, int ow, int kh,
                                                  int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                                                  int groups, float *scratch, const float *residual, int act,
                                                  float slope)
{
    int cg = c / groups, kg = k / groups, i, g;
    int kdim = kg * kh * kw, hw = h * w;
    size_t ohw = (size_t)oh * (size_t)ow;
    for (i = 0; i < n; i++)
        for (g = 0; g < groups; g++) {
            const float *xg = x + ((size_t)i * (size_t)c + (size_t)g * (size_t)cg) * (size_t)hw;
            float *yg = y + ((size_t)i * (size_t)k + (size_t)g * (size_t)kg) * ohw;
            nnc_sgemm(1, 0, kdim, hw, cg, 1.0f, wt + (size_t)g * (size_t)cg * (size_t)kdim, kdim, xg, hw, 0.0f,
                      scratch, hw);
            nnc_fill_rows(yg, kg, ohw, bias ? bias + (size_t)g * (size_t)kg : NULL);
            nnc_col2im(scratch, (size_t)hw, kg, h, w, yg, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw);
            if (residual || act != NNC_ACT_NONE)
                nnc_epilogue(yg, (size_t)kg * ohw, residual ? residual + (yg - y) : NULL, act, slope);
        }
}

/* @kernel batchnorm */
/* torch.nn.BatchNorm1d/2d in eval mode: y = (x - mean)/sqrt(var + eps)*gamma + beta per channel.
 * gamma/beta may be NULL (affine=False: 1 and 0). xs, ys: batch strides in floats
 * (c*hw for whole tensors). y may equal x. */
static NNC_MAYBE_UNUSED void nnc_batchnorm(int n, const float *x, size_t xs, int c, long hw, const float *gamma,
                                           const float *beta, const float *mean, const float *var, float eps,
                                           float *y, size_t ys)
{
    int i, ch;
    long p;
    for (i = 0; i < n; i++)
        for (ch = 0; ch < c; ch++) {
            const float *xc = x + (size_t)i * xs + (size_t)ch * (size_t)hw;
            float *yc = y + (size_t)i * ys + (size_t)ch * (size_t)hw;
            float scale = (gamma ? gamma[ch] : 1.0f) / sqrtf(var[ch] + eps);
            float shift = (beta ? beta[ch] : 0.0f) - mean[ch] * scale;
            for (p = 0; p < hw; p++) yc[p] = xc[p] * scale + shift;
        }
}

/* @kernel bn_scale */
/* The scale of a batchnorm as nnc_batchnorm computes it: y[o] = gamma[o]/sqrt(var[o] + eps). */
static NNC_MAYBE_UNUSED void nnc_bn_scale(int c, const float *gamma, const float *var, float eps, float *y)
{
    int o;
    for (o = 0; o < c; o++) y[o] = gamma[o] / sqrtf(var[o] + eps);
}

/* @kernel bn_fold */
/* Batchnorm folded into the convolution or linear layer before it (inference):
 * w'[..] = w[..] * gamma[o]/sqrt(var[o] + eps), o the output channel of the
 * element. w is seen as [rows][cols][inner] and the output channel of row r,
 * column c is (r / (rows/groups)) * cols + c:
 *   conv2d [c_out][c_in/g][kh][kw], linear [out][in]:  rows = c_out, cols = 1, groups = c_out;
 *   conv_transpose2d [c_in][c_out/g][kh][kw]:          rows = c_in, cols = c_out/g, groups = g.
 * The scale is computed as nnc_batchnorm computes it. y may equal w. */
static NNC_MAYBE_UNUSED void nnc_bn_fold_weight(const float *w, int rows, int cols, long inner, int groups,
                                                const float *gamma, const float *var, float eps, float *y)
{
    int r, c, rows_per_group = rows / groups;
    long p;
    for (r = 0; r < rows; r++)
        for (c = 0; c < cols; c++) {
            int o = r / rows_per_group * cols + c;
            float scale = gamma[o] / sqrtf(var[o] + eps);
            size_t base = ((size_t)r * (size_t)cols + (size_t)c) * (size_t)inner;
            for (p = 0; p < inner; p++) y[base + (size_t)p] = w[base + (size_t)p] * scale;
        }
}

/* The folded bias: y[o] = (b[o] - mean[o]) * gamma[o]/sqrt(var[o] + eps) + beta[o]
 * (b NULL: the layer had no bias, b = 0). y may equal any input. */
static NNC_MAYBE_UNUSED void nnc_bn_fold_bias(int c, const float *gamma, const float *beta, const float *mean,
                                              const float *var, float eps, const float *b, float *y)
{
    int o;
    for (o = 0; o < c; o++) {
        float scale = gamma[o] / sqrtf(var[o] + eps);
        y[o] = ((b ? b[o] : 0.0f) - mean[o]) * scale + beta[o];
    }
}

/* @kernel linear needs: gemm epilogue */
/* torch.nn.Linear: y[n][out] = x[n][in] * wt[out][in]^T + bias (bias may be NULL),
 * then the epilogue y = act(y + residual) (nnc_epilogue; residual [n][out] or
 * NULL, act NNC_ACT_*, slope for leaky_relu). The GEMM covers the whole batch,
 * so each weight row is read once; the epilogue follows it over y, which is
 * small (n rows of out floats). */
static NNC_MAYBE_UNUSED void nnc_linear(int n, const float *x, int in, const float *wt, const float *bias,
                                        float *y, int out, const float *residual, int act, float slope)
{
    int i;
    if (bias)
        for (i = 0; i < n; i++) memcpy(y + (size_t)i * (size_t)out, bias, (size_t)out * sizeof(float));
    nnc_sgemm(0, 1, n, out, in, 1.0f, x, in, wt, in, bias ? 1.0f : 0.0f, y, out);
    if (residual || act != NNC_ACT_NONE) nnc_epilogue(y, (size_t)n * (size_t)out, residual, act, slope);
}

/* @kernel relu */
/* torch.relu: y = max(x, 0) (NaN stays NaN). y may equal x. */
static NNC_MAYBE_UNUSED void nnc_relu(size_t count, const float *x, float *y)
{
    size_t i;
    for (i = 0; i < count; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

/* @kernel relu6 */
/* torch.nn.ReLU6: y = min(max(x, 0), 6). y may equal x. */
static NNC_MAYBE_UNUSED void nnc_relu6(size_t count, const float *x, float *y)
{
    size_t i;
    for (i = 0; i < count; i++) {
        float v = x[i] < 0.0f ? 0.0f : x[i];
        y[i] = v > 6.0f ? 6.0f : v;
    }
}

/* @kernel leaky_relu */
/* torch.nn.LeakyReLU(slope): y = x >= 0 ? x : slope*x. y may equal x. */
static NNC_MAYBE_UNUSED void nnc_leaky_relu(size_t count, const float *x, float *y, float slope)
{
    size_t i;
    for (i = 0; i < count; i++) y[i] = x[i] < 0.0f ? slope * x[i] : x[i];
}

/* @kernel sigmoid */
/* torch.sigmoid: y = 1/(1 + exp(-x)), with exp taken of -|x| only so it never overflows. y may equal x. */
static NNC_MAYBE_UNUSED void nnc_sigmoid(size_t count, const float *x, float *y)
{
    size_t i;
    for (i = 0; i < count; i++) {
        float v = x[i];
        if (v >= 0.0f) {
            y[i] = 1.0f / (1.0f + expf(-v));
        } else {
            float e = expf(v);
            y[i] = e / (1.0f + e);
        }
    }
}

/* @kernel tanh */
/* torch.tanh. y may equal x. */
static NNC_MAYBE_UNUSED void nnc_tanh(size_t count, const float *x, float *y)
{
    size_t i;
    for (i = 0; i < count; i++) y[i] = tanhf(x[i]);
}

/* @kernel copy */
/* Identity / flatten / reshape: y = x (the ranges may overlap). */
static NNC_MAYBE_UNUSED void nnc_copy(size_t count, const float *x, float *y)
{
    if (x != y && count > 0) memmove(y, x, count * sizeof(float));
}

/* @kernel add */
/* torch.add of two same-shaped tensors: y = a + b. y may equal a or b. */
static NNC_MAYBE_UNUSED void nnc_add(size_t count, const float *a, const float *b, float *y)
{
    size_t i;
    for (i = 0; i < count; i++) y[i] = a[i] + b[i];
}

/* @kernel maxpool2d */
/* Max of one pooling window of the plane xc[h][w] whose top-left tap is (ys, xs);
 * taps in padding are skipped (PyTorch pads with -inf). A NaN tap wins, as in PyTorch. */
static NNC_MAYBE_UNUSED float nnc_maxpool_window(const float *xc, int h, int w, int ys, int xs, int kh, int kw,
                                                 int dh, int dw)
{
    float m = -INFINITY;
    int ki, kj;
    for (ki = 0; ki < kh; ki++) {
        int iy = ys + ki * dh;
        const float *row;
        if (iy < 0 || iy >= h) continue;
        row = xc + (size_t)iy * (size_t)w;
        for (kj = 0; kj < kw; kj++) {
            int ix = xs + kj * dw;
            if (ix >= 0 && ix < w && (row[ix] > m || row[ix] != row[ix])) m = row[ix];
        }
    }
    return m;
}

/* torch.nn.MaxPool2d (padding, dilation; ceil_mode through the caller's oh/ow).
 * xs, ys: batch strides in floats (c*h*w and c*oh*ow for whole tensors). */
static NNC_MAYBE_UNUSED void nnc_maxpool2d(int n, const float *x, size_t xs, int c, int h, int w, float *y, size_t ys,
                                           int oh, int ow, int kh, int kw, int sh, int sw, int ph, int pw, int dh,
                                           int dw)
{
    size_t plane, hw = (size_t)h * (size_t)w, ohw = (size_t)oh * (size_t)ow;
    int oy, ox;
    for (plane = 0; plane < (size_t)n * (size_t)c; plane++) {
        const float *xc = x + plane / (size_t)c * xs + plane % (size_t)c * hw;
        float *yc = y + plane / (size_t)c * ys + plane % (size_t)c * ohw;
        for (oy = 0; oy < oh; oy++)
            for (ox = 0; ox < ow; ox++)
                yc[(size_t)oy * (size_t)ow + (size_t)ox] =
                    nnc_maxpool_window(xc, h, w, oy * sh - ph, ox * sw - pw, kh, kw, dh, dw);
    }
}

/* @kernel avgpool2d */
/* Average of the window [ys, ye) x [xs, xe) of xc[h][w], divided by the PyTorch
 * divisor: the padded window size (cut at h+ph, w+pw) or only the pixels inside. */
static NNC_MAYBE_UNUSED float nnc_avgpool_window(const float *xc, int h, int w, int ys, int xs, int kh, int kw,
                                                 int ph, int pw, int count_include_pad)
{
    int ye = ys + kh < h + ph ? ys + kh : h + ph;
    int xe = xs + kw < w + pw ? xs + kw : w + pw;
    int pool = (ye - ys) * (xe - xs), iy, ix;
    float s = 0.0f;
    if (ys < 0) ys = 0;
    if (xs < 0) xs = 0;
    if (ye > h) ye = h;
    if (xe > w) xe = w;
    for (iy = ys; iy < ye; iy++)
        for (ix = xs; ix < xe; ix++) s += xc[(size_t)iy * (size_t)w + (size_t)ix];
    return s / (float)(count_include_pad ? pool : (ye - ys) * (xe - xs));
}

/* torch.nn.AvgPool2d (padding, count_include_pad; ceil_mode through the caller's
 * oh/ow). xs, ys: batch strides in floats (c*h*w and c*oh*ow for whole tensors). */
static NNC_MAYBE_UNUSED void nnc_avgpool2d(int n, const float *x, size_t xs, int c, int h, int w, float *y, size_t ys,
                                           int oh, int ow, int kh, int kw, int sh, int sw, int ph, int pw,
                                           int count_include_pad)
{
    size_t plane, hw = (size_t)h * (size_t)w, ohw = (size_t)oh * (size_t)ow;
    int oy, ox;
    for (plane = 0; plane < (size_t)n * (size_t)c; plane++) {
        const float *xc = x + plane / (size_t)c * xs + plane % (size_t)c * hw;
        float *yc = y + plane / (size_t)c * ys + plane % (size_t)c * ohw;
        for (oy = 0; oy < oh; oy++)
            for (ox = 0; ox < ow; ox++)
                yc[(size_t)oy * (size_t)ow + (size_t)ox] =
                    nnc_avgpool_window(xc, h, w, oy * sh - ph, ox * sw - pw, kh, kw, ph, pw, count_include_pad);
    }
}

/* @kernel global_avgpool */
/* torch.nn.AdaptiveAvgPool2d(1) / mean over H,W: y[n][c] = mean of x[n][c][0..hw). */
static NNC_MAYBE_UNUSED void nnc_global_avgpool(int n, const float *x, int c, long hw, float *y)
{
    size_t plane;
    long p;
    for (plane = 0; plane < (size_t)n * (size_t)c; plane++) {
        const float *xc = x + plane * (size_t)hw;
        double s = 0.0;
        for (p = 0; p < hw; p++) s += xc[p];
        y[plane] = (float)(s / (double)hw);
    }
}

/* @kernel adaptive_avgpool2d needs: epilogue */
/* torch.nn.AdaptiveAvgPool2d((oh, ow)): output cell (i, j) averages rows
 * [floor(i*h/oh), ceil((i+1)*h/oh)) and columns [floor(j*w/ow), ceil((j+1)*w/ow)).
 * xs, ys: batch strides in floats. With pscale (else NULL) every input value
 * first goes through the prologue pact(x * pscale[ch] + pshift[ch]). */
static NNC_MAYBE_UNUSED void nnc_adaptive_avgpool2d(int n, const float *x, size_t xs, int c, int h, int w, float *y,
                                                    size_t ys, int oh, int ow, const float *pscale,
                                                    const float *pshift, int pact, float pslope)
{
    size_t plane;
    int i, j, r, q;
    for (plane = 0; plane < (size_t)n * (size_t)c; plane++) {
        size_t ch = plane % (size_t)c;
        const float *xc = x + plane / (size_t)c * xs + ch * (size_t)h * (size_t)w;
        float *yc = y + plane / (size_t)c * ys + ch * (size_t)oh * (size_t)ow;
        for (i = 0; i < oh; i++) {
            int r0 = (int)((long)i * h / oh), r1 = (int)(((long)(i + 1) * h + oh - 1) / oh);
            for (j = 0; j < ow; j++) {
                int q0 = (int)((long)j * w / ow), q1 = (int)(((long)(j + 1) * w + ow - 1) / ow);
                double s = 0.0;
                for (r = r0; r < r1; r++)
                    for (q = q0; q < q1; q++) {
                        float v = xc[(size_t)r * (size_t)w + (size_t)q];
                        s += pscale ? nnc_act1(v * pscale[ch] + pshift[ch], pact, pslope) : v;
                    }
                yc[(size_t)i * (size_t)ow + (size_t)j] = (float)(s / (double)((r1 - r0) * (q1 - q0)));
            }
        }
    }
}

/* @kernel lrn */
/* torch.nn.LocalResponseNorm(size, alpha, beta, k) across channels:
 * y = x / (k + alpha/size * sum of x^2 over channels [ch - size/2, ch + (size-1)/2])^beta.
 * y must not alias x (it holds the running sums). */
static NNC_MAYBE_UNUSED void nnc_lrn(int n, const float *x, int c, long hw, float *y, int size, float alpha,
                                     float beta, float k)
{
    int i, ch, c2;
    long p;
    for (i = 0; i < n; i++)
        for (ch = 0; ch < c; ch++) {
            const float *xs = x + (size_t)i * (size_t)c * (size_t)hw;
            float *yc = y + ((size_t)i * (size_t)c + (size_t)ch) * (size_t)hw;
            int lo = ch - size / 2 < 0 ? 0 : ch - size / 2;
            int hi = ch + (size - 1) / 2 >= c ? c - 1 : ch + (size - 1) / 2;
            for (p = 0; p < hw; p++) yc[p] = 0.0f;
            for (c2 = lo; c2 <= hi; c2++) {
                const float *xc = xs + (size_t)c2 * (size_t)hw;
                for (p = 0; p < hw; p++) yc[p] += xc[p] * xc[p];
            }
            for (p = 0; p < hw; p++)
                yc[p] = xs[(size_t)ch * (size_t)hw + (size_t)p] / powf(k + alpha / (float)size * yc[p], beta);
        }
}

/* @kernel concat */
/* One input of torch.cat(dim=1): copies x[i] into the slice of y[i] that starts at offset, per sample. */
static NNC_MAYBE_UNUSED void nnc_concat_part(int n, const float *x, long x_per_sample, float *y,
                                             long y_per_sample, long offset)
{
    int i;
    for (i = 0; i < n; i++)
        memcpy(y + (size_t)i * (size_t)y_per_sample + (size_t)offset, x + (size_t)i * (size_t)x_per_sample,
               (size_t)x_per_sample * sizeof(float));
}

/* @kernel softmax */
/* torch.softmax(x, dim=1) of x[n][c][inner]: exp(x - max) / sum, max and sum over c. y may equal x. */
static NNC_MAYBE_UNUSED void nnc_softmax(int n, const float *x, int c, long inner, float *y)
{
    int i, ch;
    long j;
    for (i = 0; i < n; i++)
        for (j = 0; j < inner; j++) {
            size_t base = (size_t)i * (size_t)c * (size_t)inner + (size_t)j, st = (size_t)inner;
            float m = -INFINITY;
            double sum = 0.0;
            float inv;
            for (ch = 0; ch < c; ch++)
                if (x[base + (size_t)ch * st] > m) m = x[base + (size_t)ch * st];
            for (ch = 0; ch < c; ch++) {
                float e = expf(x[base + (size_t)ch * st] - m);
                y[base + (size_t)ch * st] = e;
                sum += e;
            }
            inv = (float)(1.0 / sum);
            for (ch = 0; ch < c; ch++) y[base + (size_t)ch * st] *= inv;
        }
}
