/* kernels_blocked_pool.c: max, average and global average pooling on the
 * blocked layout NCHW16c (kernels_blocked.c), split from kernels_blocked_dw.c.
 *
 * Pooling computes every output pixel's window as the NCHW kernels
 * (nnc_maxpool2d, nnc_avgpool2d) do, lane by lane: the same taps in the same
 * order with the same arithmetic, so the outputs are theirs bit for bit
 * (max: a NaN tap wins; average: the sum from 0.0f divided by the same
 * divisor). Global average pooling sums each lane in double, in pixel order,
 * as nnc_global_avgpool does: its floats too.
 */

/* @kernel pool_blocked needs: blocked */
/* One pooling layer on NCHW16c as its tasks see it. */
typedef struct {
    const float *x;
    float *y;
    size_t xs, ys;
    int c, cb, h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, cip, isa, chunks, rows;
} nnc_poolb_job;

/* Fills a pooling job's split: tasks (sample, block, row range), some 16 of them. */
static NNC_MAYBE_UNUSED int nnc_poolb_split(nnc_poolb_job *j, int n)
{
    int planes = n * j->cb, want = planes >= 16 ? 1 : (16 + planes - 1) / planes;
    if (want > j->oh) want = j->oh;
    j->rows = (j->oh + want - 1) / want;
    j->chunks = (j->oh + j->rows - 1) / j->rows;
    return planes * j->chunks;
}

/* Max pooling of output rows [oy0, oy1) of one block, plain C: per pixel and
 * lane nnc_maxpool_window's taps in its order (a NaN tap wins); padding lanes 0. */
static NNC_MAYBE_UNUSED void nnc_maxpoolb_rows_c(const nnc_poolb_job *j, const float *xb, float *yb, int oy0,
                                                 int oy1, int lanes)
{
    int oy, ox, ki, kj, l;
    for (oy = oy0; oy < oy1; oy++)
        for (ox = 0; ox < j->ow; ox++) {
            float m[NNC_CB], *yp = yb + ((size_t)oy * (size_t)j->ow + (size_t)ox) * NNC_CB;
            int ty = oy * j->sh - j->ph, tx = ox * j->sw - j->pw;
            for (l = 0; l < NNC_CB; l++) m[l] = -INFINITY;
            for (ki = 0; ki < j->kh; ki++) {
                int iy = ty + ki * j->dh;
                if (iy < 0 || iy >= j->h) continue;
                for (kj = 0; kj < j->kw; kj++) {
                    int ix = tx + kj * j->dw;
                    const float *xp;
                    if (ix < 0 || ix >= j->w) continue;
                    xp = xb + ((size_t)iy * (size_t)j->w + (size_t)ix) * NNC_CB;
                    for (l = 0; l < NNC_CB; l++) {
                        float v = xp[l];
                        m[l] = v != v ? v : v > m[l] ? v : m[l];
                    }
                }
            }
            for (l = 0; l < NNC_CB; l++) yp[l] = l < lanes ? m[l] : 0.0f;
        }
}

/* Average pooling of output rows [oy0, oy1) of one block, plain C: per pixel
 * and lane nnc_avgpool_window's sum (row by row from 0.0f) and divisor. */
static NNC_MAYBE_UNUSED void nnc_avgpoolb_rows_c(const nnc_poolb_job *j, const float *xb, float *yb, int oy0,
                                                 int oy1, int lanes)
{
    int oy, ox, iy, ix, l;
    for (oy = oy0; oy < oy1; oy++)
        for (ox = 0; ox < j->ow; ox++) {
            float s[NNC_CB], div, *yp = yb + ((size_t)oy * (size_t)j->ow + (size_t)ox) * NNC_CB;
            int ys0 = oy * j->sh - j->ph, xs0 = ox * j->sw - j->pw;
            int ye = ys0 + j->kh < j->h + j->ph ? ys0 + j->kh : j->h + j->ph;
            int xe = xs0 + j->kw < j->w + j->pw ? xs0 + j->kw : j->w + j->pw;
            int pool = (ye - ys0) * (xe - xs0);
            if (ys0 < 0) ys0 = 0;
            if (xs0 < 0) xs0 = 0;
            if (ye > j->h) ye = j->h;
            if (xe > j->w) xe = j->w;
            div = (float)(j->cip ? pool : (ye - ys0) * (xe - xs0));
            for (l = 0; l < NNC_CB; l++) s[l] = 0.0f;
            for (iy = ys0; iy < ye; iy++)
                for (ix = xs0; ix < xe; ix++) {
                    const float *xp = xb + ((size_t)iy * (size_t)j->w + (size_t)ix) * NNC_CB;
                    for (l = 0; l < NNC_CB; l++) s[l] += xp[l];
                }
            for (l = 0; l < NNC_CB; l++) yp[l] = l < lanes ? s[l] / div : 0.0f;
        }
}

#if NNC_X86
/* The window of output pixel (oy, ox) as the NCHW kernels take it: max
 * pooling's taps inside the input [k0, k1) x [c0, c1) (kernel rows and
 * columns, dilated); average pooling's input rows [k0, k1) and columns
 * [c0, c1) and its divisor. */
static NNC_MAYBE_UNUSED void nnc_poolb_window(const nnc_poolb_job *j, int avg, int oy, int ox, int *k0, int *k1,
                                              int *c0, int *c1, float *div)
{
    int ty = oy * j->sh - j->ph, tx = ox * j->sw - j->pw;
    if (avg) {
        int ye = ty + j->kh < j->h + j->ph ? ty + j->kh : j->h + j->ph;
        int xe = tx + j->kw < j->w + j->pw ? tx + j->kw : j->w + j->pw, pool = (ye - ty) * (xe - tx);
        *k0 = ty < 0 ? 0 : ty, *k1 = ye > j->h ? j->h : ye, *c0 = tx < 0 ? 0 : tx, *c1 = xe > j->w ? j->w : xe;
        *div = (float)(j->cip ? pool : (*k1 - *k0) * (*c1 - *c0));
    } else {
        int a = 0, b = j->kh;
        while (a < j->kh && ty + a * j->dh < 0) a++;
        while (b > a && ty + (b - 1) * j->dh >= j->h) b--;
        *k0 = a, *k1 = b, a = 0, b = j->kw;
        while (a < j->kw && tx + a * j->dw < 0) a++;
        while (b > a && tx + (b - 1) * j->dw >= j->w) b--;
        *c0 = a, *c1 = b, *div = 1.0f;
    }
}

/* Pooling of output rows [oy0, oy1) of one block, AVX-512: per pixel the
 * NCHW kernel's taps in its order with its arithmetic on 16 lanes (average:
 * the sum from 0 divided by the divisor; max: a tap replaces the max when
 * greater or NaN, which is the running max of the numbers, ties keeping the
 * first, unless a tap is NaN: then the last NaN tap, kept on a chain of its
 * own), padding lanes written 0. */
__attribute__((target("avx512f"))) static NNC_MAYBE_UNUSED void nnc_poolb_rows_avx512(const nnc_poolb_job *j,
                                                                                      const float *xb, float *yb,
                                                                                      int oy0, int oy1, int lanes,
                                                                                      int avg)
{
    __mmask16 msk = (__mmask16)((1u << lanes) - 1u);
    size_t wf = (size_t)j->w * NNC_CB;
    int oy, ox, a, b, k0, k1, c0, c1;
    float div;
    for (oy = oy0; oy < oy1; oy++)
        for (ox = 0; ox < j->ow; ox++) {
            float *yp = yb + ((size_t)oy * (size_t)j->ow + (size_t)ox) * NNC_CB;
            __m512 v;
            nnc_poolb_window(j, avg, oy, ox, &k0, &k1, &c0, &c1, &div);
            if (avg) {
                v = _mm512_setzero_ps();
                for (a = k0; a < k1; a++)
                    for (b = c0; b < c1; b++)
                        v = _mm512_add_ps(v, _mm512_loadu_ps(xb + (size_t)a * wf + (size_t)b * NNC_CB));
                v = _mm512_div_ps(v, _mm512_set1_ps(div));
            } else {
                int ty = oy * j->sh - j->ph, tx = ox * j->sw - j->pw;
                __m512 nanv = _mm512_setzero_ps();
                v = _mm512_set1_ps(-INFINITY);
                for (a = k0; a < k1; a++)
                    for (b = c0; b < c1; b++) {
                        const float *p = xb + (size_t)(ty + a * j->dh) * wf + (size_t)(tx + b * j->dw) * NNC_CB;
                        __m512 t = _mm512_loadu_ps(p);
                        v = _mm512_max_ps(t, v);  /* t > v ? t : v; v, never NaN, when t is NaN */
                        nanv = _mm512_mask_mov_ps(nanv, _mm512_cmp_ps_mask(t, t, _CMP_UNORD_Q), t);  /* the last NaN */
                    }
                v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(nanv, nanv, _CMP_UNORD_Q), nanv);
            }
            _mm512_storeu_ps(yp, _mm512_maskz_mov_ps(msk, v));
        }
}

/* The same on AVX2, a pixel's two halves side by side. */
__attribute__((target("avx2,fma"))) static NNC_MAYBE_UNUSED void nnc_poolb_rows_avx2(const nnc_poolb_job *j,
                                                                                    const float *xb, float *yb,
                                                                                    int oy0, int oy1, int lanes,
                                                                                    int avg)
{
    __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256 m0 = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(lanes), idx));
    __m256 m1 = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(lanes - 8), idx));
    size_t wf = (size_t)j->w * NNC_CB;
    int oy, ox, a, b, k0, k1, c0, c1;
    float div;
    for (oy = oy0; oy < oy1; oy++)
        for (ox = 0; ox < j->ow; ox++) {
            float *yp = yb + ((size_t)oy * (size_t)j->ow + (size_t)ox) * NNC_CB;
            __m256 v0, v1;
            nnc_poolb_window(j, avg, oy, ox, &k0, &k1, &c0, &c1, &div);
            if (avg) {
                __m256 d = _mm256_set1_ps(div);
                v0 = v1 = _mm256_setzero_ps();
                for (a = k0; a < k1; a++)
                    for (b = c0; b < c1; b++) {
                        const float *p = xb + (size_t)a * wf + (size_t)b * NNC_CB;
                        v0 = _mm256_add_ps(v0, _mm256_loadu_ps(p)), v1 = _mm256_add_ps(v1, _mm256_loadu_ps(p + 8));
                    }
                v0 = _mm256_div_ps(v0, d), v1 = _mm256_div_ps(v1, d);
            } else {
                int ty = oy * j->sh - j->ph, tx = ox * j->sw - j->pw;
                __m256 n0 = _mm256_setzero_ps(), n1 = n0;
                v0 = v1 = _mm256_set1_ps(-INFINITY);
                for (a = k0; a < k1; a++)
                    for (b = c0; b < c1; b++) {
                        const float *p = xb + (size_t)(ty + a * j->dh) * wf + (size_t)(tx + b * j->dw) * NNC_CB;
                        __m256 t0 = _mm256_loadu_ps(p), t1 = _mm256_loadu_ps(p + 8);
                        v0 = _mm256_max_ps(t0, v0), v1 = _mm256_max_ps(t1, v1);
                        n0 = _mm256_blendv_ps(n0, t0, _mm256_cmp_ps(t0, t0, _CMP_UNORD_Q));
                        n1 = _mm256_blendv_ps(n1, t1, _mm256_cmp_ps(t1, t1, _CMP_UNORD_Q));
                    }
                v0 = _mm256_blendv_ps(v0, n0, _mm256_cmp_ps(n0, n0, _CMP_UNORD_Q));
                v1 = _mm256_blendv_ps(v1, n1, _mm256_cmp_ps(n1, n1, _CMP_UNORD_Q));
            }
            _mm256_storeu_ps(yp, _mm256_and_ps(m0, v0)), _mm256_storeu_ps(yp + 8, _mm256_and_ps(m1, v1));
        }
}
#endif

/* Task t of a pooling job: sample, block, row range as nnc_dwb_task's. */
static NNC_MAYBE_UNUSED void nnc_poolb_run(void *arg, int t, int avg)
{
    const nnc_poolb_job *j = (const nnc_poolb_job *)arg;
    int s = t / (j->cb * j->chunks), b = t / j->chunks % j->cb, ch = t % j->chunks;
    int oy0 = ch * j->rows, oy1 = oy0 + j->rows < j->oh ? oy0 + j->rows : j->oh;
    int lanes = j->c - b * NNC_CB < NNC_CB ? j->c - b * NNC_CB : NNC_CB;
    const float *xb = j->x + (size_t)s * j->xs + (size_t)b * NNC_CB * (size_t)j->h * (size_t)j->w;
    float *yb = j->y + (size_t)s * j->ys + (size_t)b * NNC_CB * (size_t)j->oh * (size_t)j->ow;
#if NNC_X86
    if (j->isa == NNC_ISA_AVX512)
        nnc_poolb_rows_avx512(j, xb, yb, oy0, oy1, lanes, avg);
    else if (j->isa == NNC_ISA_AVX2)
        nnc_poolb_rows_avx2(j, xb, yb, oy0, oy1, lanes, avg);
    else
#endif
    if (avg)
        nnc_avgpoolb_rows_c(j, xb, yb, oy0, oy1, lanes);
    else
        nnc_maxpoolb_rows_c(j, xb, yb, oy0, oy1, lanes);
}

static NNC_MAYBE_UNUSED void nnc_maxpoolb_task(void *arg, int t) { nnc_poolb_run(arg, t, 0); }
static NNC_MAYBE_UNUSED void nnc_avgpoolb_task(void *arg, int t) { nnc_poolb_run(arg, t, 1); }

static NNC_MAYBE_UNUSED void nnc_poolb_init(nnc_poolb_job *j, const nnc_ctx *ctx, const float *x, size_t xs, int c,
                                            int h, int w, float *y, size_t ys, int oh, int ow, int kh, int kw, int sh,
                                            int sw, int ph, int pw)
{
    j->x = x, j->y = y, j->xs = xs, j->ys = ys, j->c = c, j->cb = (c + NNC_CB - 1) / NNC_CB, j->h = h, j->w = w;
    j->oh = oh, j->ow = ow, j->kh = kh, j->kw = kw, j->sh = sh, j->sw = sw, j->ph = ph, j->pw = pw, j->dh = 1;
    j->dw = 1, j->cip = 0, j->isa = ctx ? ctx->isa : nnc_cpu_isa();
}

/* nnc_maxpool2d on NCHW16c (padding, dilation; ceil mode through oh/ow); the
 * padding lanes of y written 0. Over ctx's threads. */
static NNC_MAYBE_UNUSED void nnc_maxpool2d_blocked(const nnc_ctx *ctx, int n, const float *x, size_t xs, int c, int h,
                                                   int w, float *y, size_t ys, int oh, int ow, int kh, int kw, int sh,
                                                   int sw, int ph, int pw, int dh, int dw)
{
    nnc_poolb_job j;
    int tasks;
    if (n <= 0 || c <= 0 || oh <= 0 || ow <= 0) return;
    nnc_poolb_init(&j, ctx, x, xs, c, h, w, y, ys, oh, ow, kh, kw, sh, sw, ph, pw);
    j.dh = dh, j.dw = dw;
    tasks = nnc_poolb_split(&j, n);
    nnc_parallel_work(ctx, NNC_PAR_COPY * (double)n * j.cb * NNC_CB * (double)oh * ow * kh * kw, tasks,
                      nnc_maxpoolb_task, &j);
}

/* nnc_avgpool2d on NCHW16c (padding, count_include_pad; ceil mode through
 * oh/ow); the padding lanes of y written 0. Over ctx's threads. */
static NNC_MAYBE_UNUSED void nnc_avgpool2d_blocked(const nnc_ctx *ctx, int n, const float *x, size_t xs, int c, int h,
                                                   int w, float *y, size_t ys, int oh, int ow, int kh, int kw, int sh,
                                                   int sw, int ph, int pw, int count_include_pad)
{
    nnc_poolb_job j;
    int tasks;
    if (n <= 0 || c <= 0 || oh <= 0 || ow <= 0) return;
    nnc_poolb_init(&j, ctx, x, xs, c, h, w, y, ys, oh, ow, kh, kw, sh, sw, ph, pw);
    j.cip = count_include_pad;
    tasks = nnc_poolb_split(&j, n);
    nnc_parallel_work(ctx, NNC_PAR_COPY * (double)n * j.cb * NNC_CB * (double)oh * ow * kh * kw, tasks,
                      nnc_avgpoolb_task, &j);
}

/* Global average pooling as its tasks see it. */
typedef struct {
    const float *x;
    float *y;
    size_t xs, hw;
    int c, cb;
} nnc_gapb_job;

/* Task (sample, block): each real lane's mean as nnc_global_avgpool takes it
 * (a double sum in pixel order, divided by hw, rounded to float). */
static NNC_MAYBE_UNUSED void nnc_gapb_task(void *arg, int t)
{
    const nnc_gapb_job *j = (const nnc_gapb_job *)arg;
    int s = t / j->cb, b = t % j->cb, l, lanes = j->c - b * NNC_CB < NNC_CB ? j->c - b * NNC_CB : NNC_CB;
    const float *xb = j->x + (size_t)s * j->xs + (size_t)b * NNC_CB * j->hw;
    double acc[NNC_CB];
    size_t p;
    for (l = 0; l < NNC_CB; l++) acc[l] = 0.0;
    for (p = 0; p < j->hw; p++)
        for (l = 0; l < NNC_CB; l++) acc[l] += xb[p * NNC_CB + (size_t)l];
    for (l = 0; l < lanes; l++)
        j->y[(size_t)s * (size_t)j->c + (size_t)(b * NNC_CB + l)] = (float)(acc[l] / (double)j->hw);
}

/* y [n][c] (plain, contiguous) = the mean over the hw pixels of x (NCHW16c,
 * batch stride xs), per channel; the same floats as nnc_global_avgpool of
 * the NCHW tensor. Over ctx's threads by sample and block. */
static NNC_MAYBE_UNUSED void nnc_global_avgpool_blocked(const nnc_ctx *ctx, int n, const float *x, size_t xs, int c,
                                                        size_t hw, float *y)
{
    nnc_gapb_job j;
    if (n <= 0 || c <= 0) return;
    j.x = x, j.y = y, j.xs = xs, j.hw = hw, j.c = c, j.cb = (c + NNC_CB - 1) / NNC_CB;
    nnc_parallel_work(ctx, NNC_PAR_COPY * (double)n * j.cb * NNC_CB * (double)hw, n * j.cb, nnc_gapb_task, &j);
}
