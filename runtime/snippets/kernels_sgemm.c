/* kernels_sgemm.c: the last file of the kernel library (kernels.c, whose top
 * comment gives the format and the rules): a general GEMM on the micro-kernels
 * of kernels_parallel.c, over an instance's threads, and the layers of a
 * training step (whose weights change every step, so nothing is packed at
 * create) and of batched linear layers that run on it.
 *
 * Why a second GEMM: nnc_gemm_packed needs A packed once at create, which a
 * weight that the optimizer updates, a gradient, or an activation is not;
 * nnc_sgemm (kernels_gemm.c) is portable C on one thread. nnc_sgemm_ctx packs
 * both operands per call, in either transposition, into the layouts the
 * micro-kernels read, and splits the product over the threads. */

/* @kernel sgemm_mt needs: gemm gemm_packed */
/* Row-major C[M][N] = alpha*op(A)*op(B) + beta*C, BLAS sgemm's semantics (op:
 * the transpose when trans* is 1; beta == 0 never reads C, which may hold
 * NaN), on the instruction set and threads of ctx. ctx NULL: one thread, on
 * the best instruction set of this CPU (nnc_cpu_isa, which reads NNC_ISA).
 * With NNC_USE_CBLAS, cblas_sgemm (the BLAS has its own threads).
 *
 * Blocking (BLIS's loops, as far as the stack holds them): a task is a chunk
 * of NNC_SG_MC rows of C by a chunk of column panels (NR columns each, the
 * micro-kernel's width). Per block of NNC_KC steps of the sum, it packs its
 * rows of op(A), times alpha, into 8-row panels (NNC_SG_MC x NNC_KC floats,
 * 128 KB, held in L2), then for each of its column panels packs that panel of
 * op(B) (NNC_KC x NR floats, held in L1) and runs every 8-row panel over it,
 * each call adding kc steps to an 8 x NR tile of C. Edge tiles go through a
 * full-size tile on the stack. The task's buffers are on its stack (about
 * 165 KB). A tile's arithmetic (the blocks of the sum in order, each step one
 * multiply-add per element) does not depend on how the tasks are cut or which
 * thread runs them, so 1 and 2 threads give bit-identical results. */
enum { NNC_SG_MC = 128 };

#if NNC_X86
/* dst[i*ldd + q] = alpha * src[q*lds + i] for i, q < 8: an 8 x 8 block
 * transposed in registers (the packing of a transposed operand; scalar, it
 * cost half as much as the products of a weight gradient). */
__attribute__((target("avx2"))) static NNC_MAYBE_UNUSED void nnc_tr8_avx2(const float *src, size_t lds, float *dst,
                                                                       size_t ldd, float alpha)
{
    __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + lds), r2 = _mm256_loadu_ps(src + 2 * lds);
    __m256 r3 = _mm256_loadu_ps(src + 3 * lds), r4 = _mm256_loadu_ps(src + 4 * lds);
    __m256 r5 = _mm256_loadu_ps(src + 5 * lds), r6 = _mm256_loadu_ps(src + 6 * lds);
    __m256 r7 = _mm256_loadu_ps(src + 7 * lds), al = _mm256_set1_ps(alpha);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3);
    __m256 t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    if (alpha != 1.0f) {
        u0 = _mm256_mul_ps(u0, al), u1 = _mm256_mul_ps(u1, al), u2 = _mm256_mul_ps(u2, al);
        u3 = _mm256_mul_ps(u3, al), u4 = _mm256_mul_ps(u4, al), u5 = _mm256_mul_ps(u5, al);
        u6 = _mm256_mul_ps(u6, al), u7 = _mm256_mul_ps(u7, al);
    }
    _mm256_storeu_ps(dst, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(dst + ldd, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(dst + 2 * ldd, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(dst + 3 * ldd, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(dst + 4 * ldd, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(dst + 5 * ldd, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(dst + 6 * ldd, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(dst + 7 * ldd, _mm256_permute2f128_ps(u3, u7, 0x31));
}
#endif

/* dst[i*ldd + q] = alpha * src[q*lds + i] for q < 8 and i < kc: eight rows
 * of src, kc long, as kc groups of eight. */
static NNC_MAYBE_UNUSED void nnc_tr8(int isa, const float *src, size_t lds, int kc, float *dst, size_t ldd,
                                     float alpha)
{
    int i = 0, q;
#if NNC_X86
    if (isa >= NNC_ISA_AVX2)
        for (; i + 8 <= kc; i += 8) nnc_tr8_avx2(src + i, lds, dst + (size_t)i * ldd, ldd, alpha);
#else
    (void)isa;
#endif
    for (; i < kc; i++)
        for (q = 0; q < 8; q++) dst[(size_t)i * ldd + (size_t)q] = alpha * src[(size_t)q * lds + (size_t)i];
}

typedef struct {
    int isa, ta, tb, M, N, K;
    float alpha, beta;
    const float *a, *b;
    size_t lda, ldb, ldc;
    float *c;
    nnc_ukernel kern;
    int nr, panels, chunk, col_chunks;  /* chunk: column panels per task */
} nnc_sgemm_job;

/* Rows [i0, i0+rows) (rows <= 8) and steps [p0, p0+kc) of op(A), times alpha,
 * into dst as kc groups of 8 values (zeros past rows). */
static NNC_MAYBE_UNUSED void nnc_sgemm_pack_a(const nnc_sgemm_job *g, int i0, int rows, int p0, int kc, float *dst)
{
    float al = g->alpha;
    int r, p;
    if (g->ta) {  /* op(A)[i][p] = A[p][i]: the 8 values of a step are contiguous */
        for (p = 0; p < kc; p++) {
            const float *src = g->a + (size_t)(p0 + p) * g->lda + (size_t)i0;
            float *d = dst + (size_t)p * NNC_MR;
            if (rows == NNC_MR && al == 1.0f) {
                memcpy(d, src, NNC_MR * sizeof(float));
            } else if (rows == NNC_MR) {
                for (r = 0; r < NNC_MR; r++) d[r] = al * src[r];
            } else {
                for (r = 0; r < rows; r++) d[r] = al * src[r];
                for (; r < NNC_MR; r++) d[r] = 0.0f;
            }
        }
        return;
    }
    if (rows == NNC_MR) {
        nnc_tr8(g->isa, g->a + (size_t)i0 * g->lda + (size_t)p0, g->lda, kc, dst, NNC_MR, al);
        return;
    }
    for (r = 0; r < rows; r++) {
        const float *src = g->a + (size_t)(i0 + r) * g->lda + (size_t)p0;
        for (p = 0; p < kc; p++) dst[(size_t)p * NNC_MR + (size_t)r] = al * src[p];
    }
    for (; r < NNC_MR; r++)
        for (p = 0; p < kc; p++) dst[(size_t)p * NNC_MR + (size_t)r] = 0.0f;
}

/* Columns [j0, j0+cols) and steps [p0, p0+kc) of op(B) into buf as kc rows of
 * nr floats, zero past cols. */
static NNC_MAYBE_UNUSED void nnc_sgemm_pack_b(const nnc_sgemm_job *g, int p0, int kc, int j0, int cols, float *buf)
{
    int nr = g->nr, j, p;
    if (!g->tb) {
        nnc_pack_b(g->b, g->ldb, p0, kc, j0, cols, nr, buf);
        return;
    }
    /* op(B)[p][j] = B[j][p]: a row of B is a column of the panel; eight at a
     * time, so each step's store covers a run of eight floats */
    for (j = 0; j + 8 <= cols; j += 8)
        nnc_tr8(g->isa, g->b + (size_t)(j0 + j) * g->ldb + (size_t)p0, g->ldb, kc, buf + j, (size_t)nr, 1.0f);
    for (; j < cols; j++) {
        const float *src = g->b + (size_t)(j0 + j) * g->ldb + (size_t)p0;
        for (p = 0; p < kc; p++) buf[(size_t)p * (size_t)nr + (size_t)j] = src[p];
    }
    for (; j < nr; j++)
        for (p = 0; p < kc; p++) buf[(size_t)p * (size_t)nr + (size_t)j] = 0.0f;
}

/* Task t: rows chunk t / col_chunks, column panels chunk t % col_chunks. */
static NNC_MAYBE_UNUSED void nnc_sgemm_task(void *arg, int t)
{
    const nnc_sgemm_job *g = (const nnc_sgemm_job *)arg;
    float abuf[NNC_SG_MC * NNC_KC], bbuf[NNC_KC * NNC_NR_MAX], tile[NNC_MR * NNC_NR_MAX];
    int nr = g->nr, i_lo = t / g->col_chunks * NNC_SG_MC, i_hi = g->M - i_lo < NNC_SG_MC ? g->M : i_lo + NNC_SG_MC;
    int q_lo = t % g->col_chunks * g->chunk, q_hi = g->panels - q_lo < g->chunk ? g->panels : q_lo + g->chunk;
    int p0, i0, q, r, j;
    if (g->beta != 0.0f && g->beta != 1.0f) {  /* this task's block of C, scaled once */
        int j_lo = q_lo * nr, j_hi = q_hi * nr < g->N ? q_hi * nr : g->N;
        for (r = i_lo; r < i_hi; r++) {
            float *row = g->c + (size_t)r * g->ldc;
            for (j = j_lo; j < j_hi; j++) row[j] *= g->beta;
        }
    }
    for (p0 = 0; p0 < g->K; p0 += NNC_KC) {
        int kc = g->K - p0 < NNC_KC ? g->K - p0 : NNC_KC, load = p0 > 0 || g->beta != 0.0f;
        for (i0 = i_lo; i0 < i_hi; i0 += NNC_MR)
            nnc_sgemm_pack_a(g, i0, g->M - i0 < NNC_MR ? g->M - i0 : NNC_MR, p0, kc, abuf + (size_t)(i0 - i_lo) * kc);
        for (q = q_lo; q < q_hi; q++) {
            int j0 = q * nr, cols = g->N - j0 < nr ? g->N - j0 : nr;
            nnc_sgemm_pack_b(g, p0, kc, j0, cols, bbuf);
            for (i0 = i_lo; i0 < i_hi; i0 += NNC_MR) {
                int rows = g->M - i0 < NNC_MR ? g->M - i0 : NNC_MR;
                const float *ap = abuf + (size_t)(i0 - i_lo) * kc;
                float *cp = g->c + (size_t)i0 * g->ldc + (size_t)j0;
                if (rows == NNC_MR && cols == nr) {
                    g->kern(kc, ap, bbuf, cp, g->ldc, NULL, load);
                } else {  /* an edge tile: through a full-size tile of our own */
                    if (load)
                        for (r = 0; r < rows; r++)
                            for (j = 0; j < cols; j++) tile[r * nr + j] = cp[(size_t)r * g->ldc + (size_t)j];
                    g->kern(kc, ap, bbuf, tile, (size_t)nr, NULL, load);
                    for (r = 0; r < rows; r++)
                        for (j = 0; j < cols; j++) cp[(size_t)r * g->ldc + (size_t)j] = tile[r * nr + j];
                }
            }
        }
    }
}

/* nnc_sgemm_ctx on nnc's micro-kernels of instruction set isa (NNC_ISA_*),
 * over the threads of par (NULL: the caller's alone), with or without
 * NNC_USE_CBLAS: a layer that already splits its work calls it inside its
 * tasks this way (a BLAS call per task would wake the BLAS's threads). */
static NNC_MAYBE_UNUSED void nnc_sgemm_isa(const nnc_ctx *par, int isa, int transA, int transB, int M, int N, int K,
                                           float alpha, const float *A, int lda, const float *B, int ldb,
                                           float beta, float *C, int ldc)
{
    nnc_sgemm_job g;
    int threads = par ? par->threads : 1, row_chunks, want;
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0.0f) {  /* no product: C = beta*C, zeros when beta == 0 */
        int i, j;
        for (i = 0; i < M; i++) {
            float *row = C + (size_t)i * (size_t)ldc;
            for (j = 0; j < N; j++) row[j] = beta == 0.0f ? 0.0f : row[j] * beta;
        }
        return;
    }
    g.isa = isa, g.ta = transA, g.tb = transB, g.M = M, g.N = N, g.K = K, g.alpha = alpha, g.beta = beta;
    g.a = A, g.b = B, g.lda = (size_t)lda, g.ldb = (size_t)ldb, g.ldc = (size_t)ldc, g.c = C;
    g.kern = nnc_ukernel_for(isa, &g.nr);
    g.panels = (N + g.nr - 1) / g.nr;
    row_chunks = (M + NNC_SG_MC - 1) / NNC_SG_MC;
    /* one column chunk per thread's share, about four tasks a thread: each
     * chunk packs its rows of A again, so no more chunks than that */
    want = threads > 1 ? (4 * threads + row_chunks - 1) / row_chunks : 1;
    g.chunk = (g.panels + want - 1) / want;
    g.col_chunks = (g.panels + g.chunk - 1) / g.chunk;
    nnc_parallel_work(par, (double)M * (double)N * (double)K, row_chunks * g.col_chunks, nnc_sgemm_task, &g);
}

static NNC_MAYBE_UNUSED void nnc_sgemm_ctx(const nnc_ctx *ctx, int transA, int transB, int M, int N, int K,
                                           float alpha, const float *A, int lda, const float *B, int ldb,
                                           float beta, float *C, int ldc)
{
#ifdef NNC_USE_CBLAS
    (void)ctx;
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N, K,
                alpha, A, lda, B, ldb, beta, C, ldc);
#else
    nnc_sgemm_isa(ctx, ctx ? ctx->isa : nnc_cpu_isa(), transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

/* @kernel conv_mt needs: sgemm_mt conv2d conv_transpose2d */
/* The convolutions of a training step (codegen/emit_train.c) on nnc_sgemm_ctx,
 * with im2col and col2im split over the instance's threads: a task per
 * sample and channel, each writing rows (im2col) or a channel (col2im) of its
 * own, so the split is race-free and changes no result. */
typedef struct {
    const float *src;
    float *dst;
    size_t ss, ds, ld;   /* batch strides of src and dst; row stride of the column matrix */
    size_t cols;         /* columns of one sample in the column matrix */
    int ch, h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw;
} nnc_cols_job;

static NNC_MAYBE_UNUSED void nnc_im2col_mt_task(void *arg, int t)
{
    const nnc_cols_job *j = (const nnc_cols_job *)arg;
    int s = t / j->ch, ci = t % j->ch;
    nnc_im2col(j->src + (size_t)s * j->ss + (size_t)ci * (size_t)j->h * (size_t)j->w, 1, j->h, j->w,
               j->dst + (size_t)s * j->cols + (size_t)ci * (size_t)(j->kh * j->kw) * j->ld, j->ld, j->oh, j->ow,
               j->kh, j->kw, j->sh, j->sw, j->ph, j->pw, j->dh, j->dw);
}

/* nnc_im2col of m samples (x, batch stride xs, c channels) side by side:
 * sample s's columns start at col + s*oh*ow, rows ld apart. */
static NNC_MAYBE_UNUSED void nnc_im2col_mt(const nnc_ctx *ctx, int m, const float *x, size_t xs, int c, int h, int w,
                                           float *col, size_t ld, int oh, int ow, int kh, int kw, int sh, int sw,
                                           int ph, int pw, int dh, int dw)
{
    nnc_cols_job j;
    j.src = x, j.dst = col, j.ss = xs, j.ds = 0, j.ld = ld, j.cols = (size_t)oh * (size_t)ow, j.ch = c, j.h = h;
    j.w = w, j.oh = oh, j.ow = ow, j.kh = kh, j.kw = kw, j.sh = sh, j.sw = sw, j.ph = ph, j.pw = pw, j.dh = dh;
    j.dw = dw;
    nnc_parallel_work(ctx, NNC_PAR_COPY * (double)m * c * kh * kw * (double)oh * ow, m * c, nnc_im2col_mt_task, &j);
}

static NNC_MAYBE_UNUSED void nnc_col2im_mt_task(void *arg, int t)
{
    const nnc_cols_job *j = (const nnc_cols_job *)arg;
    int s = t / j->ch, ko = t % j->ch;
    nnc_col2im(j->src + (size_t)s * j->cols + (size_t)ko * (size_t)(j->kh * j->kw) * j->ld, j->ld, 1, j->h, j->w,
               j->dst + (size_t)s * j->ds + (size_t)ko * (size_t)j->oh * (size_t)j->ow, j->oh, j->ow, j->kh, j->kw,
               j->sh, j->sw, j->ph, j->pw, j->dh, j->dw);
}

/* nnc_col2im of m samples side by side (sample s's columns at col + s*h*w,
 * rows ld apart), each adding into its k channels of y (batch stride ys). */
static NNC_MAYBE_UNUSED void nnc_col2im_mt(const nnc_ctx *ctx, int m, const float *col, size_t ld, int k, int h, int w,
                                           float *y, size_t ys, int oh, int ow, int kh, int kw, int sh, int sw, int ph,
                                           int pw, int dh, int dw)
{
    nnc_cols_job j;
    j.src = col, j.dst = y, j.ss = 0, j.ds = ys, j.ld = ld, j.cols = (size_t)h * (size_t)w, j.ch = k, j.h = h;
    j.w = w, j.oh = oh, j.ow = ow, j.kh = kh, j.kw = kw, j.sh = sh, j.sw = sw, j.ph = ph, j.pw = pw, j.dh = dh;
    j.dw = dw;
    nnc_parallel_work(ctx, NNC_PAR_COPY * (double)m * k * kh * kw * (double)h * w, m * k, nnc_col2im_mt_task, &j);
}

/* A block of m samples side by side (channel o's row at blk + o*ld, sample
 * s's part of it at + s*ohw) and the samples themselves (channel o of sample
 * s at img + s*is + o*ohw): a task per channel copies one way or the other. */
typedef struct {
    const float *cblk, *cimg, *bias;
    float *blk, *img;
    size_t ld, is, ohw;
    int m;
} nnc_blk_job;

/* The block from the samples (a training step's output gradients, nnc_conv2d_backward). */
static NNC_MAYBE_UNUSED void nnc_blk_gather_task(void *arg, int o)
{
    const nnc_blk_job *j = (const nnc_blk_job *)arg;
    int s;
    for (s = 0; s < j->m; s++)
        memcpy(j->blk + (size_t)o * j->ld + (size_t)s * j->ohw, j->cimg + (size_t)s * j->is + (size_t)o * j->ohw,
               j->ohw * sizeof(float));
}

/* The samples from the block, plus bias[o] (or 0). */
static NNC_MAYBE_UNUSED void nnc_blk_scatter_task(void *arg, int o)
{
    const nnc_blk_job *j = (const nnc_blk_job *)arg;
    float b = j->bias ? j->bias[o] : 0.0f;
    size_t p;
    int s;
    for (s = 0; s < j->m; s++) {
        const float *src = j->cblk + (size_t)o * j->ld + (size_t)s * j->ohw;
        float *dst = j->img + (size_t)s * j->is + (size_t)o * j->ohw;
        for (p = 0; p < j->ohw; p++) dst[p] = src[p] + b;
    }
}

/* Channels [0, k) between a block and its m samples over ctx's threads: to
 * the block (gather) or, with the bias added, to the samples. */
static NNC_MAYBE_UNUSED void nnc_blk_copy(const nnc_ctx *ctx, int gather, int m, int k, float *blk, size_t ld,
                                          float *img, size_t is, size_t ohw, const float *bias)
{
    nnc_blk_job j;
    j.cblk = blk, j.cimg = img, j.bias = bias, j.blk = blk, j.img = img, j.ld = ld, j.is = is, j.ohw = ohw, j.m = m;
    nnc_parallel_work(ctx, NNC_PAR_COPY * (double)m * k * (double)ohw, k, gather ? nnc_blk_gather_task : nnc_blk_scatter_task, &j);
}

/* A depthwise-style convolution (one input channel per group) split over the
 * threads, a task per sample and output channel. */
typedef struct {
    const float *x, *wt, *bias;
    float *y;
    size_t xs, ys, hw, ohw;
    int k, kg, h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw;
} nnc_dw_mt_job;

static NNC_MAYBE_UNUSED void nnc_dw_mt_task(void *arg, int t)
{
    const nnc_dw_mt_job *j = (const nnc_dw_mt_job *)arg;
    int i = t / j->k, oc = t % j->k;
    nnc_dw_plane(j->x + (size_t)i * j->xs + (size_t)(oc / j->kg) * j->hw, j->h, j->w,
                 j->wt + (size_t)oc * (size_t)(j->kh * j->kw), j->bias ? j->bias[oc] : 0.0f,
                 j->y + (size_t)i * j->ys + (size_t)oc * j->ohw, 0, j->oh, j->ow, j->kh, j->kw, j->sh, j->sw, j->ph,
                 j->pw, j->dh, j->dw);
}

/* A convolution of a one-channel image (MNIST's first layer), whose
 * nnc_conv2d_scratch has no room for an im2col matrix, in bands of output
 * rows: a task per sample and band builds the band's columns on its stack
 * (NNC_BAND_FLOATS at most) and multiplies them on one thread. */
enum { NNC_BAND_FLOATS = 8192 };
typedef struct {
    const float *x, *wt, *bias;
    float *y;
    size_t xs, ys;
    int isa, k, h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, rows, bands;
} nnc_band_job;

static NNC_MAYBE_UNUSED void nnc_conv_band_task(void *arg, int t)
{
    const nnc_band_job *j = (const nnc_band_job *)arg;
    float col[NNC_BAND_FLOATS];
    int i = t / j->bands, r0 = t % j->bands * j->rows, rows = j->oh - r0 < j->rows ? j->oh - r0 : j->rows, o;
    int kdim = j->kh * j->kw, cols = rows * j->ow;
    size_t ohw = (size_t)j->oh * (size_t)j->ow, p;
    float *yb = j->y + (size_t)i * j->ys + (size_t)r0 * (size_t)j->ow;
    /* rows [r0, r0+rows) of the output: im2col's with the padding moved up r0 strides */
    nnc_im2col(j->x + (size_t)i * j->xs, 1, j->h, j->w, col, (size_t)cols, rows, j->ow, j->kh, j->kw, j->sh, j->sw,
               j->ph - r0 * j->sh, j->pw, j->dh, j->dw);
    if (j->bias)
        for (o = 0; o < j->k; o++)
            for (p = 0; p < (size_t)cols; p++) yb[(size_t)o * ohw + p] = j->bias[o];
    nnc_sgemm_isa(NULL, j->isa, 0, 0, j->k, cols, kdim, 1.0f, j->wt, kdim, col, cols, j->bias ? 1.0f : 0.0f, yb,
                  (int)ohw);
}

/* nnc_conv2d (the same arguments and scratch, nnc_conv2d_scratch) over the
 * instance's threads: the same blocks of samples, their im2col matrices
 * built by nnc_im2col_mt, and nnc_sgemm_ctx for the products. With a
 * prologue (never in a training step) it is nnc_conv2d. */
static NNC_MAYBE_UNUSED void nnc_conv2d_mt(const nnc_ctx *ctx, int n, const float *x, size_t xs, int c, int h, int w,
                                           const float *wt, const float *bias, float *y, size_t ys, int k, int oh,
                                           int ow, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                                           int groups, float *scratch, const float *residual, size_t rs, int act,
                                           float slope, int act_k, const float *pscale, const float *pshift,
                                           int pact, float pslope)
{
    int cg = c / groups, kg = k / groups, kdim = cg * kh * kw, ohw = oh * ow, i, g, s;
    size_t hw = (size_t)h * (size_t)w;
    int direct = kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0 && oh == h && ow == w;
    int nb = nnc_conv2d_block(n, c, kh, kw, sh, sw, ph, pw, oh, ow, groups, pscale != NULL);
    if (pscale) {
        nnc_conv2d(n, x, xs, c, h, w, wt, bias, y, ys, k, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, groups, scratch,
                   residual, rs, act, slope, act_k, pscale, pshift, pact, pslope);
        return;
    }
    if (c == 1 && groups == 1 && !direct && kh * kw * ow <= NNC_BAND_FLOATS) {
        nnc_band_job j;
        j.x = x, j.wt = wt, j.bias = bias, j.y = y, j.xs = xs, j.ys = ys, j.isa = ctx ? ctx->isa : nnc_cpu_isa();
        j.k = k, j.h = h, j.w = w, j.oh = oh, j.ow = ow, j.kh = kh, j.kw = kw, j.sh = sh, j.sw = sw, j.ph = ph;
        j.pw = pw, j.dh = dh, j.dw = dw, j.rows = NNC_BAND_FLOATS / (kh * kw * ow);
        j.bands = (oh + j.rows - 1) / j.rows;
        nnc_parallel_work(ctx, (double)n * k * kh * kw * (double)ohw, n * j.bands, nnc_conv_band_task, &j);
        nb = n;  /* for the epilogue below */
    } else if (cg == 1 && !direct) {
        nnc_dw_mt_job j;
        j.x = x, j.wt = wt, j.bias = bias, j.y = y, j.xs = xs, j.ys = ys, j.hw = hw, j.ohw = (size_t)ohw, j.k = k;
        j.kg = kg, j.h = h, j.w = w, j.oh = oh, j.ow = ow, j.kh = kh, j.kw = kw, j.sh = sh, j.sw = sw, j.ph = ph;
        j.pw = pw, j.dh = dh, j.dw = dw;
        nnc_parallel_work(ctx, (double)n * k * kh * kw * (double)ohw, n * k, nnc_dw_mt_task, &j);
        nb = n;  /* for the epilogue below */
    }
    for (i = 0; i < n; i += nb) {
        int m = n - i < nb ? n - i : nb;
        size_t ld = (size_t)m * (size_t)ohw;
        for (g = 0; g < groups && !(cg == 1 && !direct); g++) {
            const float *wg = wt + (size_t)g * (size_t)kg * (size_t)kdim, *cols = scratch;
            const float *xg = x + (size_t)i * xs + (size_t)g * (size_t)cg * hw;
            if (m == 1 && direct) cols = xg;
            else nnc_im2col_mt(ctx, m, xg, xs, cg, h, w, scratch, ld, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw);
            if (m == 1) {
                float *yg = y + (size_t)i * ys + (size_t)g * (size_t)kg * (size_t)ohw;
                if (bias) nnc_fill_rows(yg, kg, (size_t)ohw, bias + (size_t)g * (size_t)kg);
                nnc_sgemm_ctx(ctx, 0, 0, kg, ohw, kdim, 1.0f, wg, kdim, cols, ohw, bias ? 1.0f : 0.0f, yg, ohw);
            } else {  /* the block's output after its columns, then each sample's rows out with the bias */
                float *out = scratch + (size_t)kdim * ld;
                nnc_sgemm_ctx(ctx, 0, 0, kg, (int)ld, kdim, 1.0f, wg, kdim, cols, (int)ld, 0.0f, out, (int)ld);
                nnc_blk_copy(ctx, 0, m, kg, out, ld, y + (size_t)i * ys + (size_t)g * (size_t)kg * (size_t)ohw, ys,
                             (size_t)ohw, bias ? bias + (size_t)g * (size_t)kg : NULL);
            }
        }
        if (residual || act != NNC_ACT_NONE)
            for (s = i; s < i + m; s++)
                for (g = 0; g < groups; g++)
                    nnc_conv_epilogue(y + (size_t)s * ys + (size_t)g * (size_t)kg * (size_t)ohw, g, kg, (size_t)ohw,
                                      residual ? residual + (size_t)s * rs + (size_t)g * (size_t)kg * (size_t)ohw
                                               : NULL,
                                      act, slope, act_k);
    }
}

/* nnc_conv_transpose2d (the same arguments and scratch) on nnc_sgemm_ctx,
 * col2im split over the threads by output channel. */
static NNC_MAYBE_UNUSED void nnc_conv_transpose2d_mt(const nnc_ctx *ctx, int n, const float *x, int c, int h, int w,
                                                     const float *wt, const float *bias, float *y, int k, int oh,
                                                     int ow, int kh, int kw, int sh, int sw, int ph, int pw, int dh,
                                                     int dw, int groups, float *scratch, const float *residual,
                                                     int act, float slope)
{
    int cg = c / groups, kg = k / groups, i, g;
    int kdim = kg * kh * kw, hw = h * w;
    size_t ohw = (size_t)oh * (size_t)ow;
    for (i = 0; i < n; i++)
        for (g = 0; g < groups; g++) {
            const float *xg = x + ((size_t)i * (size_t)c + (size_t)g * (size_t)cg) * (size_t)hw;
            float *yg = y + ((size_t)i * (size_t)k + (size_t)g * (size_t)kg) * ohw;
            nnc_sgemm_ctx(ctx, 1, 0, kdim, hw, cg, 1.0f, wt + (size_t)g * (size_t)cg * (size_t)kdim, kdim, xg, hw,
                          0.0f, scratch, hw);
            nnc_fill_rows(yg, kg, ohw, bias ? bias + (size_t)g * (size_t)kg : NULL);
            nnc_col2im_mt(ctx, 1, scratch, (size_t)hw, kg, h, w, yg, 0, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw);
            if (residual || act != NNC_ACT_NONE)
                nnc_epilogue(yg, (size_t)kg * ohw, residual ? residual + (yg - y) : NULL, act, slope);
        }
}

/* @kernel linear_gemm needs: linear_mt sgemm_mt */
/* nnc_linear (y = x * W^T + bias, then the epilogue) over the instance's
 * threads: a batch of samples is one nnc_sgemm_ctx (W^T packed a panel at a
 * time); one sample is nnc_linear_mt, which streams the weight once across
 * the threads. Each row's epilogue is nnc_epilogue's. */
static NNC_MAYBE_UNUSED void nnc_linear_gemm(const nnc_ctx *ctx, int n, const float *x, int in, const float *wt,
                                             const float *bias, float *y, int out, const float *residual, int act,
                                             float slope)
{
    int i;
    if (n <= 1) {
        nnc_linear_mt(ctx, n, x, in, wt, bias, y, out, residual, act, slope);
        return;
    }
    if (bias)
        for (i = 0; i < n; i++) memcpy(y + (size_t)i * (size_t)out, bias, (size_t)out * sizeof(float));
    nnc_sgemm_ctx(ctx, 0, 1, n, out, in, 1.0f, x, in, wt, in, bias ? 1.0f : 0.0f, y, out);
    if (residual || act != NNC_ACT_NONE)
        for (i = 0; i < n; i++) {
            size_t off = (size_t)i * (size_t)out;
            nnc_epilogue(y + off, (size_t)out, residual ? residual + off : NULL, act, slope);
        }
}
