/* kernels_blocked.c: the blocked channel layout (NCHW16c) and the reorders
 * between it and NCHW, the graph's edges (passes/layout_blocked.c chooses
 * which tensors are blocked; kernels_blocked_conv.c and kernels_blocked_dw.c
 * compute on them).
 *
 * NCHW16c: a sample of c channels of h x w is ceil(c / 16) blocks, each an
 * h x w plane of 16-channel vectors: channel ch at row y, column x is element
 * ((ch / 16) * h * w + y * w + x) * 16 + ch % 16 of the sample. One vector
 * of AVX-512 (two of AVX2) holds a pixel's 16 channels, so a depthwise or a
 * pointwise convolution, pooling and the epilogue vectorize across channels
 * whatever the map's width: MobileNet's 7x7 and 14x14 maps waste most of a
 * vector laid along a row.
 *
 * The lanes past c in the last block (c not a multiple of 16) are padding.
 * Contract of every kernel on this layout: it writes 0.0f to the padding
 * lanes of its output, and its real outputs do not depend on what finite
 * values its inputs' padding lanes hold (a convolution's packed weights are
 * zero there; per-lane kernels keep padding to padding). */

/* @kernel blocked needs: ctx */
enum { NNC_CB = 16 };  /* channels per block */

/* Floats of one sample of c channels of hw pixels in NCHW16c. */
static NNC_MAYBE_UNUSED size_t nnc_blocked_floats(int c, size_t hw)
{
    return (size_t)((c + NNC_CB - 1) / NNC_CB) * (size_t)NNC_CB * hw;
}

typedef struct {
    const float *x;
    float *y;
    size_t xs, ys, hw;
    int c, cb, to;  /* to: NCHW -> NCHW16c; else back */
} nnc_reorder_job;

/* Task (sample, block): a block's 16 planes interleaved into its vectors, or
 * the reverse; padding lanes written as zeros (to) or skipped (back). */
static NNC_MAYBE_UNUSED void nnc_reorder_task(void *arg, int task)
{
    const nnc_reorder_job *j = (const nnc_reorder_job *)arg;
    int s = task / j->cb, b = task % j->cb, lanes = j->c - b * NNC_CB < NNC_CB ? j->c - b * NNC_CB : NNC_CB, l;
    size_t p, hw = j->hw;
    if (j->to) {
        const float *x = j->x + (size_t)s * j->xs + (size_t)b * NNC_CB * hw;
        float *y = j->y + (size_t)s * j->ys + (size_t)b * NNC_CB * hw;
        for (p = 0; p < hw; p++) {
            for (l = 0; l < lanes; l++) y[p * NNC_CB + (size_t)l] = x[(size_t)l * hw + p];
            for (; l < NNC_CB; l++) y[p * NNC_CB + (size_t)l] = 0.0f;
        }
    } else {
        const float *x = j->x + (size_t)s * j->xs + (size_t)b * NNC_CB * hw;
        float *y = j->y + (size_t)s * j->ys + (size_t)b * NNC_CB * hw;
        for (l = 0; l < lanes; l++)
            for (p = 0; p < hw; p++) y[(size_t)l * hw + p] = x[p * NNC_CB + (size_t)l];
    }
}

/* y (NCHW16c, batch stride ys) = x (NCHW, batch stride xs), n samples of c
 * channels of hw pixels; over the instance's threads by sample and block. */
static NNC_MAYBE_UNUSED void nnc_to_blocked(const nnc_ctx *ctx, int n, const float *x, size_t xs, int c, size_t hw,
                                            float *y, size_t ys)
{
    nnc_reorder_job j;
    j.x = x, j.y = y, j.xs = xs, j.ys = ys, j.hw = hw, j.c = c, j.cb = (c + NNC_CB - 1) / NNC_CB, j.to = 1;
    nnc_parallel_work(ctx, NNC_PAR_COPY * (double)n * (double)j.cb * NNC_CB * (double)hw, n * j.cb, nnc_reorder_task,
                      &j);
}

/* y (NCHW, batch stride ys) = x (NCHW16c, batch stride xs): the reverse. */
static NNC_MAYBE_UNUSED void nnc_from_blocked(const nnc_ctx *ctx, int n, const float *x, size_t xs, int c, size_t hw,
                                              float *y, size_t ys)
{
    nnc_reorder_job j;
    j.x = x, j.y = y, j.xs = xs, j.ys = ys, j.hw = hw, j.c = c, j.cb = (c + NNC_CB - 1) / NNC_CB, j.to = 0;
    nnc_parallel_work(ctx, NNC_PAR_COPY * (double)n * (double)j.cb * NNC_CB * (double)hw, n * j.cb, nnc_reorder_task,
                      &j);
}

/* @kernel conv2d_nchw_blocked needs: blocked activation */
/* A convolution (groups 1) of an NCHW image of a few channels (an RGB
 * stem's 3) into NCHW16c: the first layer of a blocked region, which would
 * otherwise run im2col + GEMM into NCHW and then a reorder, or pad 3
 * channels to a block of 16 (5x the multiply-adds). The weight is packed
 * [k/16][c][kh][kw][16] (nnc_pack_nchw_blocked); a tile is a block of 16
 * output channels by NNC_NB_NX pixels of an output row, each input value
 * broadcast against the 16 weights of its tap. Every output's sum runs in
 * the order (input channel, ky, kx) from zero, then + bias, + residual, then
 * the activation (nnc_epilogue's arithmetic), whatever the tile: 1, 2 and 3
 * threads give the same floats. */
enum { NNC_NB_NX = 8 };

static NNC_MAYBE_UNUSED size_t nnc_pack_nchw_blocked_floats(int k, int c, int kh, int kw)
{
    return (size_t)((k + NNC_CB - 1) / NNC_CB) * NNC_CB * (size_t)c * (size_t)kh * (size_t)kw;
}

/* wp = w [k][c][kh][kw] as [k/16][c][kh][kw][16], zeros for the padding
 * output channels; with gamma (else NULL) output channel o's weights first
 * scaled by gamma[o] / sqrtf(var[o] + eps), as nnc_bn_fold_weight does. */
static NNC_MAYBE_UNUSED void nnc_pack_nchw_blocked(const float *w, int k, int c, int kh, int kw, const float *gamma,
                                                   const float *var, float eps, float *wp)
{
    int o, i, taps = kh * kw, t;
    for (o = 0; o < (k + NNC_CB - 1) / NNC_CB * NNC_CB; o++) {
        float scale = gamma && o < k ? gamma[o] / sqrtf(var[o] + eps) : 1.0f;
        for (i = 0; i < c; i++)
            for (t = 0; t < taps; t++) {
                float v = o < k ? w[((size_t)o * (size_t)c + (size_t)i) * (size_t)taps + (size_t)t] : 0.0f;
                if (gamma && o < k) v = v * scale;
                wp[(((size_t)(o / NNC_CB) * (size_t)c + (size_t)i) * (size_t)taps + (size_t)t) * NNC_CB +
                   (size_t)(o % NNC_CB)] = v;
            }
    }
}

typedef struct {
    const float *x, *wp, *bias, *res;
    float *y;
    size_t xs, ys, rs;
    int c, h, w, k, kb, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, act, isa;
    float slope;
} nnc_nchw_blocked_job;

/* acc[p] += the taps of pixels [x0 .. x0 + np) (ox = ox0 + p) of output row
 * oy, block ob, for one sample's image xi: the plain C form. */
static NNC_MAYBE_UNUSED void nnc_nb_tile_c(const nnc_nchw_blocked_job *j, const float *xi, int ob, int oy, int ox0,
                                           int np, float acc[NNC_NB_NX][NNC_CB])
{
    int ci, ky, kx, p, l;
    for (ci = 0; ci < j->c; ci++)
        for (ky = 0; ky < j->kh; ky++) {
            int iy = oy * j->sh - j->ph + ky * j->dh;
            const float *xr;
            if (iy < 0 || iy >= j->h) continue;
            xr = xi + ((size_t)ci * (size_t)j->h + (size_t)iy) * (size_t)j->w;
            for (kx = 0; kx < j->kw; kx++) {
                const float *wv = j->wp + ((((size_t)ob * (size_t)j->c + (size_t)ci) * (size_t)j->kh + (size_t)ky) *
                                               (size_t)j->kw + (size_t)kx) * NNC_CB;
                for (p = 0; p < np; p++) {
                    int ix = (ox0 + p) * j->sw - j->pw + kx * j->dw;
                    if (ix < 0 || ix >= j->w) continue;
                    for (l = 0; l < NNC_CB; l++) acc[p][l] += xr[ix] * wv[l];
                }
            }
        }
}

#if NNC_X86
/* AVX-512: a tile of blocks ob and ob + 1 (when there is one) by up to
 * NNC_NB_NX pixels in registers, each broadcast input feeding both blocks'
 * FMAs; taps inside the image for every pixel run unchecked. The epilogue
 * in registers too (+ bias, + residual, relu / relu6 as max(0, v) and
 * min(6, v), as nnc_epilogue's), padding lanes zeroed by the store's mask;
 * other activations on the stored pixels. Same sums as the plain C form. */
#define NNC_NB_FMA(p, a, b)                                                              \
    {                                                                                    \
        __m512 xv = _mm512_set1_ps(xp[(p) * sw]);                                        \
        a = _mm512_fmadd_ps(xv, w0, a);                                                  \
        if (two) b = _mm512_fmadd_ps(xv, w1, b);                                         \
    }
#define NNC_NB_FMAC(p, a, b)                                                             \
    if ((p) < np && x0 + (p) * sw >= 0 && x0 + (p) * sw < j->w) {                       \
        __m512 xv = _mm512_set1_ps(xr[x0 + (p) * sw]);                                   \
        a = _mm512_fmadd_ps(xv, w0, a);                                                  \
        if (two) b = _mm512_fmadd_ps(xv, w1, b);                                         \
    }
#define NNC_NB_OUT(p, a, bv, q, m)                                                       \
    if ((p) < np) {                                                                      \
        __m512 v = _mm512_add_ps(a, bv);                                                 \
        size_t o = (size_t)(q) * plane + (size_t)(ox0 + (p)) * NNC_CB;                   \
        if (ro) v = _mm512_add_ps(v, _mm512_loadu_ps(ro + o));                           \
        if (relu) v = _mm512_max_ps(z, v);                                               \
        if (relu6) v = _mm512_min_ps(six, v);                                            \
        _mm512_storeu_ps(yo + o, _mm512_maskz_mov_ps(m, v));                             \
    }
__attribute__((target("avx512f"))) static NNC_MAYBE_UNUSED void
nnc_nb_row_avx512(const nnc_nchw_blocked_job *j, const float *xi, int ob, int oy, float *yo, const float *ro)
{
    __m512 z = _mm512_setzero_ps(), six = _mm512_set1_ps(6.0f), bv0, bv1;
    int two = ob + 1 < j->kb, sw = j->sw, ox0, ci, ky, kx;
    int l0 = j->k - ob * NNC_CB < NNC_CB ? j->k - ob * NNC_CB : NNC_CB, l1 = two ? j->k - (ob + 1) * NNC_CB : 0;
    __mmask16 m0 = (__mmask16)((1u << l0) - 1u), m1 = (__mmask16)(l1 >= NNC_CB ? 0xFFFFu : (1u << (l1 > 0 ? l1 : 0)) - 1u);
    int relu = j->act == NNC_ACT_RELU || j->act == NNC_ACT_RELU6, relu6 = j->act == NNC_ACT_RELU6;
    size_t plane = (size_t)j->oh * (size_t)j->ow * NNC_CB, wstep = (size_t)j->c * (size_t)j->kh * (size_t)j->kw * NNC_CB;
    bv0 = j->bias ? _mm512_maskz_loadu_ps(m0, j->bias + ob * NNC_CB) : z;
    bv1 = j->bias && two ? _mm512_maskz_loadu_ps(m1, j->bias + (ob + 1) * NNC_CB) : z;
    for (ox0 = 0; ox0 < j->ow; ox0 += NNC_NB_NX) {
        __m512 a0 = z, a1 = z, a2 = z, a3 = z, a4 = z, a5 = z, a6 = z, a7 = z;
        __m512 b0 = z, b1 = z, b2 = z, b3 = z, b4 = z, b5 = z, b6 = z, b7 = z;
        int np = j->ow - ox0 < NNC_NB_NX ? j->ow - ox0 : NNC_NB_NX;
        for (ci = 0; ci < j->c; ci++)
            for (ky = 0; ky < j->kh; ky++) {
                int iy = oy * j->sh - j->ph + ky * j->dh;
                const float *xr, *wk;
                if (iy < 0 || iy >= j->h) continue;
                xr = xi + ((size_t)ci * (size_t)j->h + (size_t)iy) * (size_t)j->w;
                wk = j->wp + (((size_t)ob * (size_t)j->c + (size_t)ci) * (size_t)j->kh + (size_t)ky) * (size_t)j->kw * NNC_CB;
                for (kx = 0; kx < j->kw; kx++, wk += NNC_CB) {
                    __m512 w0 = _mm512_loadu_ps(wk), w1 = two ? _mm512_loadu_ps(wk + wstep) : w0;
                    int x0 = ox0 * sw - j->pw + kx * j->dw;
                    if (np == NNC_NB_NX && x0 >= 0 && x0 + (NNC_NB_NX - 1) * sw < j->w) {
                        const float *xp = xr + x0;
                        NNC_NB_FMA(0, a0, b0) NNC_NB_FMA(1, a1, b1) NNC_NB_FMA(2, a2, b2) NNC_NB_FMA(3, a3, b3)
                        NNC_NB_FMA(4, a4, b4) NNC_NB_FMA(5, a5, b5) NNC_NB_FMA(6, a6, b6) NNC_NB_FMA(7, a7, b7)
                    } else {
                        NNC_NB_FMAC(0, a0, b0) NNC_NB_FMAC(1, a1, b1) NNC_NB_FMAC(2, a2, b2) NNC_NB_FMAC(3, a3, b3)
                        NNC_NB_FMAC(4, a4, b4) NNC_NB_FMAC(5, a5, b5) NNC_NB_FMAC(6, a6, b6) NNC_NB_FMAC(7, a7, b7)
                    }
                }
            }
        NNC_NB_OUT(0, a0, bv0, 0, m0) NNC_NB_OUT(1, a1, bv0, 0, m0) NNC_NB_OUT(2, a2, bv0, 0, m0)
        NNC_NB_OUT(3, a3, bv0, 0, m0) NNC_NB_OUT(4, a4, bv0, 0, m0) NNC_NB_OUT(5, a5, bv0, 0, m0)
        NNC_NB_OUT(6, a6, bv0, 0, m0) NNC_NB_OUT(7, a7, bv0, 0, m0)
        if (two) {
            NNC_NB_OUT(0, b0, bv1, 1, m1) NNC_NB_OUT(1, b1, bv1, 1, m1) NNC_NB_OUT(2, b2, bv1, 1, m1)
            NNC_NB_OUT(3, b3, bv1, 1, m1) NNC_NB_OUT(4, b4, bv1, 1, m1) NNC_NB_OUT(5, b5, bv1, 1, m1)
            NNC_NB_OUT(6, b6, bv1, 1, m1) NNC_NB_OUT(7, b7, bv1, 1, m1)
        }
    }
}
#undef NNC_NB_FMA
#undef NNC_NB_FMAC
#undef NNC_NB_OUT
#endif

/* Task: (sample, pair of output blocks, output row). */
static NNC_MAYBE_UNUSED void nnc_nchw_blocked_task(void *arg, int task)
{
    const nnc_nchw_blocked_job *j = (const nnc_nchw_blocked_job *)arg;
    int pairs = (j->kb + 1) / 2, s = task / (pairs * j->oh), r = task % (pairs * j->oh), ob = r / j->oh * 2;
    int oy = r % j->oh, ox0, p, l, b;
    const float *xi = j->x + (size_t)s * j->xs;
    size_t plane = (size_t)j->oh * (size_t)j->ow * NNC_CB;
    size_t row = (size_t)ob * plane + (size_t)oy * (size_t)j->ow * NNC_CB;
    float *yo = j->y + (size_t)s * j->ys + row;
    const float *ro = j->res ? j->res + (size_t)s * j->rs + row : NULL;
#if NNC_X86
    if (j->isa == NNC_ISA_AVX512) {
        nnc_nb_row_avx512(j, xi, ob, oy, yo, ro);
        if (j->act != NNC_ACT_NONE && j->act != NNC_ACT_RELU && j->act != NNC_ACT_RELU6)
            for (b = ob; b < ob + 2 && b < j->kb; b++) {  /* the other activations on the stored row; padding back to 0 */
                int lanes = j->k - b * NNC_CB < NNC_CB ? j->k - b * NNC_CB : NNC_CB;
                float *yb = yo + (size_t)(b - ob) * plane;
                for (p = 0; p < j->ow; p++) {
                    nnc_activation_inplace(yb + (size_t)p * NNC_CB, (size_t)lanes, j->act, j->slope);
                }
            }
        return;
    }
#endif
    for (b = ob; b < ob + 2 && b < j->kb; b++) {
        int lanes = j->k - b * NNC_CB < NNC_CB ? j->k - b * NNC_CB : NNC_CB;
        float *yb = yo + (size_t)(b - ob) * plane;
        const float *rb = ro ? ro + (size_t)(b - ob) * plane : NULL;
        for (ox0 = 0; ox0 < j->ow; ox0 += NNC_NB_NX) {
            float acc[NNC_NB_NX][NNC_CB];
            int np = j->ow - ox0 < NNC_NB_NX ? j->ow - ox0 : NNC_NB_NX;
            memset(acc, 0, sizeof acc);
            nnc_nb_tile_c(j, xi, b, oy, ox0, np, acc);
            for (p = 0; p < np; p++) {  /* + bias, + residual, then the activation; padding lanes 0 */
                float *yp = yb + (size_t)(ox0 + p) * NNC_CB;
                for (l = 0; l < lanes; l++) {
                    float v = acc[p][l] + (j->bias ? j->bias[b * NNC_CB + l] : 0.0f);
                    if (rb) v = v + rb[(size_t)(ox0 + p) * NNC_CB + (size_t)l];
                    yp[l] = v;
                }
                nnc_activation_inplace(yp, (size_t)lanes, j->act, j->slope);
                for (; l < NNC_CB; l++) yp[l] = 0.0f;
            }
        }
    }
}

/* y (NCHW16c, k channels, oh x ow, batch stride ys) = conv(x (NCHW, c
 * channels, h x w, batch stride xs)) + bias [+ residual (NCHW16c like y,
 * batch stride rs)], then act; the arguments of nnc_conv2d_blocked. */
static NNC_MAYBE_UNUSED void nnc_conv2d_nchw_blocked(const nnc_ctx *ctx, int n, const float *x, size_t xs, int c,
                                                     int h, int w, const float *wp, const float *bias, float *y,
                                                     size_t ys, int k, int oh, int ow, int kh, int kw, int sh, int sw,
                                                     int ph, int pw, int dh, int dw, const float *residual, size_t rs,
                                                     int act, float slope)
{
    nnc_nchw_blocked_job j;
    j.x = x, j.wp = wp, j.bias = bias, j.res = residual, j.y = y, j.xs = xs, j.ys = ys, j.rs = rs, j.c = c, j.h = h;
    j.w = w, j.k = k, j.kb = (k + NNC_CB - 1) / NNC_CB, j.oh = oh, j.ow = ow, j.kh = kh, j.kw = kw, j.sh = sh;
    j.sw = sw, j.ph = ph, j.pw = pw, j.dh = dh, j.dw = dw, j.act = act, j.slope = slope;
    j.isa = ctx ? ctx->isa : nnc_cpu_isa();
    nnc_parallel_work(ctx, (double)n * k * c * kh * kw * (double)oh * ow, n * ((j.kb + 1) / 2) * oh,
                      nnc_nchw_blocked_task, &j);
}
