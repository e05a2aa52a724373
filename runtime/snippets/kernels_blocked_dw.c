/* kernels_blocked_dw.c: depthwise convolution with its epilogue on the
 * blocked layout NCHW16c (kernels_blocked.c gives the layout and its
 * contract); its pooling kernels are in kernels_blocked_pool.c.
 *
 * A block's 16 channels are one vector (AVX-512; two of AVX2; 16-float loops
 * in plain C), so every output pixel is a vector of FMAs whatever the map's
 * width. The depthwise convolution computes, per output row, tiles of
 * consecutive output pixels held in registers: each tap's weight vector is
 * loaded once per tile and multiplied into every pixel's input vector. The
 * columns whose taps all lie inside the input take that path without bounds
 * tests; the border columns go a pixel at a time, as one-pixel tiles of
 * their taps inside the input. Kernel rows outside the input are cut per
 * output row, for all its pixels. Kernels 3 or 5 wide at column dilation 1
 * and stride 1 or 2 (MobileNet's, EfficientNet's) have "register" tiles of
 * their own: each input vector of a kernel row is loaded once and multiplied
 * into every pixel it meets (3x3 at stride 1: a third of the loads); with
 * padding (kw - 1) / 2 the row goes whole in tiles of 14 and 7 pixels
 * (AVX-512; 7 on AVX2), MobileNet's widths, the tiles at the row's ends
 * skipping the inputs outside, so no border pixel takes the slow path. (1
 * thread of a Zen 5, 14x14x576 3x3: 6 GMAC/s for NCHW's nnc_dw_plane, 36 for
 * the generic tiles, 57 for these; 5x5: 25 -> 65; bench/dw_blocked.c.) Plain
 * C tiles 4 interior pixels in 16-lane loops, which gcc -O2 vectorizes for
 * SSE2 (0.6 to 1.7 times NCHW's speed).
 *
 * Every output pixel's sum is the same sequence of operations on every path
 * and tile size: the bias (or 0), then the taps inside the input in kernel
 * order (row by row), each one FMA (plain C: a multiply and an add), then the
 * residual, then the activation; so which task, tile or thread computes a
 * pixel never changes it, and 1, 2 and 3 threads give bit-identical outputs.
 * relu and relu6 are applied in registers as max/min with nnc_epilogue's
 * semantics; the others by nnc_activation_inplace on the finished row. The
 * padding lanes are written as 0.0f after the activation (sigmoid(0) is not
 * 0), whatever the input's, the residual's and the weights' padding lanes
 * hold.
 *
 * Threads: tasks are (sample, block, range of output rows); each output
 * element belongs to one task. */

/* @kernel dwconv_blocked needs: blocked epilogue */
/* Floats of a depthwise weight [c][1][kh][kw] packed for nnc_dwconv_blocked. */
static NNC_MAYBE_UNUSED size_t nnc_pack_dw_blocked_floats(int c, int kh, int kw)
{
    return (size_t)((c + NNC_CB - 1) / NNC_CB) * (size_t)kh * (size_t)kw * (size_t)NNC_CB;
}

/* Packs w [c][1][kh][kw] at create as [c/16][kh][kw][16], zeros for the
 * padding channels; with gamma (else NULL), channel o's weights first scaled
 * by gamma[o] / sqrtf(var[o] + eps), the floats nnc_bn_fold_weight and
 * nnc_pack_weights compute. */
static NNC_MAYBE_UNUSED void nnc_pack_dw_blocked(const float *w, int c, int kh, int kw, const float *gamma,
                                                 const float *var, float eps, float *wp)
{
    int cb = (c + NNC_CB - 1) / NNC_CB, b, l, k, kk = kh * kw;
    for (b = 0; b < cb; b++)
        for (l = 0; l < NNC_CB; l++) {
            int o = b * NNC_CB + l;
            float *dst = wp + (size_t)b * (size_t)kk * NNC_CB + (size_t)l;
            if (o >= c) {
                for (k = 0; k < kk; k++) dst[(size_t)k * NNC_CB] = 0.0f;
            } else if (gamma) {
                float scale = gamma[o] / sqrtf(var[o] + eps);
                for (k = 0; k < kk; k++) dst[(size_t)k * NNC_CB] = w[(size_t)o * (size_t)kk + (size_t)k] * scale;
            } else {
                for (k = 0; k < kk; k++) dst[(size_t)k * NNC_CB] = w[(size_t)o * (size_t)kk + (size_t)k];
            }
        }
}

/* One depthwise layer on NCHW16c as its tasks see it. */
typedef struct {
    const float *x, *wp, *bias, *res;
    float *y;
    size_t xs, ys, rs;
    int c, cb, h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, act, isa, chunks, rows;
    float slope;
} nnc_dwb_job;

/* What one output row of one block needs: its input block, packed weights,
 * the block's bias (16 floats, zero past c), the row's output and residual,
 * the kernel rows inside the input [k0, k1), the first input row of k0, the
 * interior columns [xlo, xhi), and how many lanes are real. */
typedef struct {
    const float *xb, *wb, *bias, *res;
    float *y;
    int ty, k0, k1, xlo, xhi, lanes, inreg;  /* inreg: the activation is applied in registers */
} nnc_dwb_row;

/* Output pixel ox of a row with per-tap column bounds, plain C. */
static NNC_MAYBE_UNUSED void nnc_dwb_pixel_c(const nnc_dwb_job *j, const nnc_dwb_row *r, int ox)
{
    float acc[NNC_CB];
    int ki, kj, l, ix0 = ox * j->sw - j->pw;
    for (l = 0; l < NNC_CB; l++) acc[l] = r->bias[l];
    for (ki = r->k0; ki < r->k1; ki++) {
        const float *xr = r->xb + (size_t)(r->ty + ki * j->dh) * (size_t)j->w * NNC_CB;
        const float *wr = r->wb + (size_t)(ki * j->kw) * NNC_CB;
        for (kj = 0; kj < j->kw; kj++) {
            int ix = ix0 + kj * j->dw;
            const float *xp, *wv = wr + (size_t)kj * NNC_CB;
            if (ix < 0 || ix >= j->w) continue;
            xp = xr + (size_t)ix * NNC_CB;
            for (l = 0; l < NNC_CB; l++) acc[l] += wv[l] * xp[l];
        }
    }
    {
        float *yp = r->y + (size_t)ox * NNC_CB;
        if (r->res) {
            const float *rp = r->res + (size_t)ox * NNC_CB;
            for (l = 0; l < NNC_CB; l++) acc[l] = acc[l] + rp[l];
        }
        for (l = 0; l < NNC_CB; l++) yp[l] = l < r->lanes ? acc[l] : 0.0f;
    }
}

/* NNC_DWB_TC interior pixels from ox (every tap inside), plain C: the
 * 16-lane loops have a constant trip count, which gcc's -O2 vectorizes. */
enum { NNC_DWB_TC = 4 };
static NNC_MAYBE_UNUSED void nnc_dwb_tile_c(const nnc_dwb_job *j, const nnc_dwb_row *r, int ox)
{
    float acc[NNC_DWB_TC][NNC_CB];
    size_t rstep = (size_t)j->dh * (size_t)j->w * NNC_CB, kstep = (size_t)j->dw * NNC_CB;
    size_t pstep = (size_t)j->sw * NNC_CB;
    const float *xt = r->xb + ((size_t)(r->ty + r->k0 * j->dh) * (size_t)j->w + (size_t)(ox * j->sw - j->pw)) * NNC_CB;
    const float *wt = r->wb + (size_t)(r->k0 * j->kw) * NNC_CB;
    float *y = r->y + (size_t)ox * NNC_CB;
    int ki, kj, p, l;
    for (p = 0; p < NNC_DWB_TC; p++)
        for (l = 0; l < NNC_CB; l++) acc[p][l] = r->bias[l];
    for (ki = r->k0; ki < r->k1; ki++, xt += rstep, wt += (size_t)j->kw * NNC_CB)
        for (kj = 0; kj < j->kw; kj++) {
            const float *wv = wt + (size_t)kj * NNC_CB, *xp = xt + (size_t)kj * kstep;
            for (p = 0; p < NNC_DWB_TC; p++, xp += pstep)
                for (l = 0; l < NNC_CB; l++) acc[p][l] += wv[l] * xp[l];
        }
    for (p = 0; p < NNC_DWB_TC; p++, y += NNC_CB) {
        if (r->res) {
            const float *rp = r->res + (size_t)(ox + p) * NNC_CB;
            for (l = 0; l < NNC_CB; l++) acc[p][l] = acc[p][l] + rp[l];
        }
        for (l = 0; l < NNC_CB; l++) y[l] = l < r->lanes ? acc[p][l] : 0.0f;
    }
}

/* Output pixels [ox0, ox1) of a row, plain C: the interior in tiles, the
 * rest one pixel at a time with per-tap bounds. */
static NNC_MAYBE_UNUSED void nnc_dwb_cols_c(const nnc_dwb_job *j, const nnc_dwb_row *r, int ox0, int ox1)
{
    int ox = ox0, hi = r->xhi < ox1 ? r->xhi : ox1;
    if (r->k1 > r->k0)
        for (; ox < ox1; ox++) {
            if (ox >= r->xlo && ox + NNC_DWB_TC <= hi) {
                nnc_dwb_tile_c(j, r, ox);
                ox += NNC_DWB_TC - 1;
            } else {
                nnc_dwb_pixel_c(j, r, ox);
            }
        }
    for (; ox < ox1; ox++) nnc_dwb_pixel_c(j, r, ox);
}

#if NNC_X86
/* The tiles of the SIMD paths: T consecutive output pixels of a row whose
 * taps are all inside the input, a0 .. a(T-1) accumulators in registers.
 * Any kernel (TAPS_ANY): xt is the input vector of the first pixel's first
 * tap (kernel row k0); rstep floats between kernel rows, kstep between a
 * row's taps, pstep between consecutive pixels' inputs; kn taps a row, the
 * weights of consecutive kernel rows wrow floats apart.
 *
 * Kernels 3 or 5 wide (K) at column dilation 1 and stride S1 or S2
 * (TAPS_R, the "register" tiles r{T}s{S}k{K}): every input vector of a
 * kernel row is loaded once and multiplied into each pixel it meets (SEQ:
 * input j, counted from pixel 0's first tap, into the taps (pixel p, tap k)
 * with p*S + k = j, so each pixel's taps come in kernel order); the empty asm
 * keeps the compiler from folding the load into every use instead (3x3 at
 * stride 1: a third of the loads). xt is pixel 0's middle tap. Inputs j <
 * jlo and j > jhi, which only a tile at the row's ends has, lie outside the
 * input and are skipped with the taps that meet them, so a tile at the
 * border computes its border pixels' sums over exactly their inside taps
 * (MobileNet's padding-1 rows go whole in tiles). The SEQ lists are written
 * out (generated) for T, S, K. */
#define NNC_DWB_R1(X) X(0)
#define NNC_DWB_R4(X) X(0) X(1) X(2) X(3)
#define NNC_DWB_R7(X) NNC_DWB_R4(X) X(4) X(5) X(6)
#define NNC_DWB_R8(X) NNC_DWB_R4(X) X(4) X(5) X(6) X(7)
#define NNC_DWB_R12(X) NNC_DWB_R8(X) X(8) X(9) X(10) X(11)
#define NNC_DWB_R14(X) NNC_DWB_R12(X) X(12) X(13)
#define NNC_DWB512_DECL(p) __m512 a##p = bv;
#define NNC_DWB512_FMA(p) a##p = _mm512_fmadd_ps(wv, _mm512_loadu_ps(xp + (size_t)(p) * pstep), a##p);
#define NNC_DWB512_RES(p) a##p = _mm512_add_ps(a##p, _mm512_loadu_ps(res + (size_t)(p) * NNC_CB));
#define NNC_DWB512_RELU(p) a##p = _mm512_max_ps(z, a##p);
#define NNC_DWB512_MIN6(p) a##p = _mm512_min_ps(six, a##p);
#define NNC_DWB512_STORE(p) _mm512_storeu_ps(y + (size_t)(p) * NNC_CB, _mm512_maskz_mov_ps(m, a##p));
#define NNC_DWB512_TAPS_ANY(R)                                                                                        \
    for (ki = 0; ki < nk; ki++, xt += rstep, wt += wrow)                                                              \
        for (kj = 0; kj < kn; kj++) {                                                                                 \
            const float *xp = xt + (size_t)kj * kstep;                                                                \
            wv = _mm512_loadu_ps(wt + (size_t)kj * NNC_CB);                                                           \
            R(NNC_DWB512_FMA)                                                                                         \
        }
#define NNC_DWB512_LX(j)                                                                                              \
    xv = _mm512_loadu_ps(xt + ((ptrdiff_t)(j)-hk) * NNC_CB);                                                          \
    __asm__("" : "+v"(xv));
#define NNC_DWB512_Q(p, k) a##p = _mm512_fmadd_ps(w##k, xv, a##p);
#define NNC_DWB512_W3                                                                                                 \
    __m512 w0 = _mm512_loadu_ps(wt), w1 = _mm512_loadu_ps(wt + NNC_CB), w2 = _mm512_loadu_ps(wt + 2 * NNC_CB);
#define NNC_DWB512_W5                                                                                                 \
    __m512 w0 = _mm512_loadu_ps(wt), w1 = _mm512_loadu_ps(wt + NNC_CB), w2 = _mm512_loadu_ps(wt + 2 * NNC_CB);        \
    __m512 w3 = _mm512_loadu_ps(wt + 3 * NNC_CB), w4 = _mm512_loadu_ps(wt + 4 * NNC_CB);
#define NNC_DWB512_SEQ14S1K3                                                                                          \
    if (0 >= jlo) { NNC_DWB512_LX(0) NNC_DWB512_Q(0, 0) }                                                             \
    NNC_DWB512_LX(1) NNC_DWB512_Q(1, 0) NNC_DWB512_Q(0, 1)                                                            \
    NNC_DWB512_LX(2) NNC_DWB512_Q(2, 0) NNC_DWB512_Q(1, 1) NNC_DWB512_Q(0, 2)                                         \
    NNC_DWB512_LX(3) NNC_DWB512_Q(3, 0) NNC_DWB512_Q(2, 1) NNC_DWB512_Q(1, 2)                                         \
    NNC_DWB512_LX(4) NNC_DWB512_Q(4, 0) NNC_DWB512_Q(3, 1) NNC_DWB512_Q(2, 2)                                         \
    NNC_DWB512_LX(5) NNC_DWB512_Q(5, 0) NNC_DWB512_Q(4, 1) NNC_DWB512_Q(3, 2)                                         \
    NNC_DWB512_LX(6) NNC_DWB512_Q(6, 0) NNC_DWB512_Q(5, 1) NNC_DWB512_Q(4, 2)                                         \
    NNC_DWB512_LX(7) NNC_DWB512_Q(7, 0) NNC_DWB512_Q(6, 1) NNC_DWB512_Q(5, 2)                                         \
    NNC_DWB512_LX(8) NNC_DWB512_Q(8, 0) NNC_DWB512_Q(7, 1) NNC_DWB512_Q(6, 2)                                         \
    NNC_DWB512_LX(9) NNC_DWB512_Q(9, 0) NNC_DWB512_Q(8, 1) NNC_DWB512_Q(7, 2)                                         \
    NNC_DWB512_LX(10) NNC_DWB512_Q(10, 0) NNC_DWB512_Q(9, 1) NNC_DWB512_Q(8, 2)                                       \
    NNC_DWB512_LX(11) NNC_DWB512_Q(11, 0) NNC_DWB512_Q(10, 1) NNC_DWB512_Q(9, 2)                                      \
    NNC_DWB512_LX(12) NNC_DWB512_Q(12, 0) NNC_DWB512_Q(11, 1) NNC_DWB512_Q(10, 2)                                     \
    NNC_DWB512_LX(13) NNC_DWB512_Q(13, 0) NNC_DWB512_Q(12, 1) NNC_DWB512_Q(11, 2)                                     \
    NNC_DWB512_LX(14) NNC_DWB512_Q(13, 1) NNC_DWB512_Q(12, 2)                                                         \
    if (15 <= jhi) { NNC_DWB512_LX(15) NNC_DWB512_Q(13, 2) }
#define NNC_DWB512_SEQ14S1K5                                                                                          \
    if (0 >= jlo) { NNC_DWB512_LX(0) NNC_DWB512_Q(0, 0) }                                                             \
    if (1 >= jlo) { NNC_DWB512_LX(1) NNC_DWB512_Q(1, 0) NNC_DWB512_Q(0, 1) }                                          \
    NNC_DWB512_LX(2) NNC_DWB512_Q(2, 0) NNC_DWB512_Q(1, 1) NNC_DWB512_Q(0, 2)                                         \
    NNC_DWB512_LX(3) NNC_DWB512_Q(3, 0) NNC_DWB512_Q(2, 1) NNC_DWB512_Q(1, 2) NNC_DWB512_Q(0, 3)                      \
    NNC_DWB512_LX(4) NNC_DWB512_Q(4, 0) NNC_DWB512_Q(3, 1) NNC_DWB512_Q(2, 2) NNC_DWB512_Q(1, 3) NNC_DWB512_Q(0, 4)   \
    NNC_DWB512_LX(5) NNC_DWB512_Q(5, 0) NNC_DWB512_Q(4, 1) NNC_DWB512_Q(3, 2) NNC_DWB512_Q(2, 3) NNC_DWB512_Q(1, 4)   \
    NNC_DWB512_LX(6) NNC_DWB512_Q(6, 0) NNC_DWB512_Q(5, 1) NNC_DWB512_Q(4, 2) NNC_DWB512_Q(3, 3) NNC_DWB512_Q(2, 4)   \
    NNC_DWB512_LX(7) NNC_DWB512_Q(7, 0) NNC_DWB512_Q(6, 1) NNC_DWB512_Q(5, 2) NNC_DWB512_Q(4, 3) NNC_DWB512_Q(3, 4)   \
    NNC_DWB512_LX(8) NNC_DWB512_Q(8, 0) NNC_DWB512_Q(7, 1) NNC_DWB512_Q(6, 2) NNC_DWB512_Q(5, 3) NNC_DWB512_Q(4, 4)   \
    NNC_DWB512_LX(9) NNC_DWB512_Q(9, 0) NNC_DWB512_Q(8, 1) NNC_DWB512_Q(7, 2) NNC_DWB512_Q(6, 3) NNC_DWB512_Q(5, 4)   \
    NNC_DWB512_LX(10) NNC_DWB512_Q(10, 0) NNC_DWB512_Q(9, 1) NNC_DWB512_Q(8, 2) NNC_DWB512_Q(7, 3) NNC_DWB512_Q(6, 4) \
    NNC_DWB512_LX(11) NNC_DWB512_Q(11, 0) NNC_DWB512_Q(10, 1) NNC_DWB512_Q(9, 2) NNC_DWB512_Q(8, 3) NNC_DWB512_Q(7, 4)\
    NNC_DWB512_LX(12) NNC_DWB512_Q(12, 0) NNC_DWB512_Q(11, 1) NNC_DWB512_Q(10, 2) NNC_DWB512_Q(9, 3) NNC_DWB512_Q(8, 4)\
    NNC_DWB512_LX(13) NNC_DWB512_Q(13, 0) NNC_DWB512_Q(12, 1) NNC_DWB512_Q(11, 2)                                     \
        NNC_DWB512_Q(10, 3) NNC_DWB512_Q(9, 4)                                                                        \
    NNC_DWB512_LX(14) NNC_DWB512_Q(13, 1) NNC_DWB512_Q(12, 2) NNC_DWB512_Q(11, 3) NNC_DWB512_Q(10, 4)                 \
    NNC_DWB512_LX(15) NNC_DWB512_Q(13, 2) NNC_DWB512_Q(12, 3) NNC_DWB512_Q(11, 4)                                     \
    if (16 <= jhi) { NNC_DWB512_LX(16) NNC_DWB512_Q(13, 3) NNC_DWB512_Q(12, 4) }                                      \
    if (17 <= jhi) { NNC_DWB512_LX(17) NNC_DWB512_Q(13, 4) }
#define NNC_DWB512_SEQ14S2K3                                                                                          \
    if (0 >= jlo) { NNC_DWB512_LX(0) NNC_DWB512_Q(0, 0) }                                                             \
    NNC_DWB512_LX(1) NNC_DWB512_Q(0, 1)                                                                               \
    NNC_DWB512_LX(2) NNC_DWB512_Q(1, 0) NNC_DWB512_Q(0, 2)                                                            \
    NNC_DWB512_LX(3) NNC_DWB512_Q(1, 1)                                                                               \
    NNC_DWB512_LX(4) NNC_DWB512_Q(2, 0) NNC_DWB512_Q(1, 2)                                                            \
    NNC_DWB512_LX(5) NNC_DWB512_Q(2, 1)                                                                               \
    NNC_DWB512_LX(6) NNC_DWB512_Q(3, 0) NNC_DWB512_Q(2, 2)                                                            \
    NNC_DWB512_LX(7) NNC_DWB512_Q(3, 1)                                                                               \
    NNC_DWB512_LX(8) NNC_DWB512_Q(4, 0) NNC_DWB512_Q(3, 2)                                                            \
    NNC_DWB512_LX(9) NNC_DWB512_Q(4, 1)                                                                               \
    NNC_DWB512_LX(10) NNC_DWB512_Q(5, 0) NNC_DWB512_Q(4, 2)                                                           \
    NNC_DWB512_LX(11) NNC_DWB512_Q(5, 1)                                                                              \
    NNC_DWB512_LX(12) NNC_DWB512_Q(6, 0) NNC_DWB512_Q(5, 2)                                                           \
    NNC_DWB512_LX(13) NNC_DWB512_Q(6, 1)                                                                              \
    NNC_DWB512_LX(14) NNC_DWB512_Q(7, 0) NNC_DWB512_Q(6, 2)                                                           \
    NNC_DWB512_LX(15) NNC_DWB512_Q(7, 1)                                                                              \
    NNC_DWB512_LX(16) NNC_DWB512_Q(8, 0) NNC_DWB512_Q(7, 2)                                                           \
    NNC_DWB512_LX(17) NNC_DWB512_Q(8, 1)                                                                              \
    NNC_DWB512_LX(18) NNC_DWB512_Q(9, 0) NNC_DWB512_Q(8, 2)                                                           \
    NNC_DWB512_LX(19) NNC_DWB512_Q(9, 1)                                                                              \
    NNC_DWB512_LX(20) NNC_DWB512_Q(10, 0) NNC_DWB512_Q(9, 2)                                                          \
    NNC_DWB512_LX(21) NNC_DWB512_Q(10, 1)                                                                             \
    NNC_DWB512_LX(22) NNC_DWB512_Q(11, 0) NNC_DWB512_Q(10, 2)                                                         \
    NNC_DWB512_LX(23) NNC_DWB512_Q(11, 1)                                                                             \
    NNC_DWB512_LX(24) NNC_DWB512_Q(12, 0) NNC_DWB512_Q(11, 2)                                                         \
    NNC_DWB512_LX(25) NNC_DWB512_Q(12, 1)                                                                             \
    NNC_DWB512_LX(26) NNC_DWB512_Q(13, 0) NNC_DWB512_Q(12, 2)                                                         \
    NNC_DWB512_LX(27) NNC_DWB512_Q(13, 1)                                                                             \
    if (28 <= jhi) { NNC_DWB512_LX(28) NNC_DWB512_Q(13, 2) }
#define NNC_DWB512_SEQ14S2K5                                                                                          \
    if (0 >= jlo) { NNC_DWB512_LX(0) NNC_DWB512_Q(0, 0) }                                                             \
    if (1 >= jlo) { NNC_DWB512_LX(1) NNC_DWB512_Q(0, 1) }                                                             \
    NNC_DWB512_LX(2) NNC_DWB512_Q(1, 0) NNC_DWB512_Q(0, 2)                                                            \
    NNC_DWB512_LX(3) NNC_DWB512_Q(1, 1) NNC_DWB512_Q(0, 3)                                                            \
    NNC_DWB512_LX(4) NNC_DWB512_Q(2, 0) NNC_DWB512_Q(1, 2) NNC_DWB512_Q(0, 4)                                         \
    NNC_DWB512_LX(5) NNC_DWB512_Q(2, 1) NNC_DWB512_Q(1, 3)                                                            \
    NNC_DWB512_LX(6) NNC_DWB512_Q(3, 0) NNC_DWB512_Q(2, 2) NNC_DWB512_Q(1, 4)                                         \
    NNC_DWB512_LX(7) NNC_DWB512_Q(3, 1) NNC_DWB512_Q(2, 3)                                                            \
    NNC_DWB512_LX(8) NNC_DWB512_Q(4, 0) NNC_DWB512_Q(3, 2) NNC_DWB512_Q(2, 4)                                         \
    NNC_DWB512_LX(9) NNC_DWB512_Q(4, 1) NNC_DWB512_Q(3, 3)                                                            \
    NNC_DWB512_LX(10) NNC_DWB512_Q(5, 0) NNC_DWB512_Q(4, 2) NNC_DWB512_Q(3, 4)                                        \
    NNC_DWB512_LX(11) NNC_DWB512_Q(5, 1) NNC_DWB512_Q(4, 3)                                                           \
    NNC_DWB512_LX(12) NNC_DWB512_Q(6, 0) NNC_DWB512_Q(5, 2) NNC_DWB512_Q(4, 4)                                        \
    NNC_DWB512_LX(13) NNC_DWB512_Q(6, 1) NNC_DWB512_Q(5, 3)                                                           \
    NNC_DWB512_LX(14) NNC_DWB512_Q(7, 0) NNC_DWB512_Q(6, 2) NNC_DWB512_Q(5, 4)                                        \
    NNC_DWB512_LX(15) NNC_DWB512_Q(7, 1) NNC_DWB512_Q(6, 3)                                                           \
    NNC_DWB512_LX(16) NNC_DWB512_Q(8, 0) NNC_DWB512_Q(7, 2) NNC_DWB512_Q(6, 4)                                        \
    NNC_DWB512_LX(17) NNC_DWB512_Q(8, 1) NNC_DWB512_Q(7, 3)                                                           \
    NNC_DWB512_LX(18) NNC_DWB512_Q(9, 0) NNC_DWB512_Q(8, 2) NNC_DWB512_Q(7, 4)                                        \
    NNC_DWB512_LX(19) NNC_DWB512_Q(9, 1) NNC_DWB512_Q(8, 3)                                                           \
    NNC_DWB512_LX(20) NNC_DWB512_Q(10, 0) NNC_DWB512_Q(9, 2) NNC_DWB512_Q(8, 4)                                       \
    NNC_DWB512_LX(21) NNC_DWB512_Q(10, 1) NNC_DWB512_Q(9, 3)                                                          \
    NNC_DWB512_LX(22) NNC_DWB512_Q(11, 0) NNC_DWB512_Q(10, 2) NNC_DWB512_Q(9, 4)                                      \
    NNC_DWB512_LX(23) NNC_DWB512_Q(11, 1) NNC_DWB512_Q(10, 3)                                                         \
    NNC_DWB512_LX(24) NNC_DWB512_Q(12, 0) NNC_DWB512_Q(11, 2) NNC_DWB512_Q(10, 4)                                     \
    NNC_DWB512_LX(25) NNC_DWB512_Q(12, 1) NNC_DWB512_Q(11, 3)                                                         \
    NNC_DWB512_LX(26) NNC_DWB512_Q(13, 0) NNC_DWB512_Q(12, 2) NNC_DWB512_Q(11, 4)                                     \
    NNC_DWB512_LX(27) NNC_DWB512_Q(13, 1) NNC_DWB512_Q(12, 3)                                                         \
    NNC_DWB512_LX(28) NNC_DWB512_Q(13, 2) NNC_DWB512_Q(12, 4)                                                         \
    if (29 <= jhi) { NNC_DWB512_LX(29) NNC_DWB512_Q(13, 3) }                                                          \
    if (30 <= jhi) { NNC_DWB512_LX(30) NNC_DWB512_Q(13, 4) }
#define NNC_DWB512_SEQ12S1K3                                                                                          \
    if (0 >= jlo) { NNC_DWB512_LX(0) NNC_DWB512_Q(0, 0) }                                                             \
    NNC_DWB512_LX(1) NNC_DWB512_Q(1, 0) NNC_DWB512_Q(0, 1)                                                            \
    NNC_DWB512_LX(2) NNC_DWB512_Q(2, 0) NNC_DWB512_Q(1, 1) NNC_DWB512_Q(0, 2)                                         \
    NNC_DWB512_LX(3) NNC_DWB512_Q(3, 0) NNC_DWB512_Q(2, 1) NNC_DWB512_Q(1, 2)                                         \
    NNC_DWB512_LX(4) NNC_DWB512_Q(4, 0) NNC_DWB512_Q(3, 1) NNC_DWB512_Q(2, 2)                                         \
    NNC_DWB512_LX(5) NNC_DWB512_Q(5, 0) NNC_DWB512_Q(4, 1) NNC_DWB512_Q(3, 2)                                         \
    NNC_DWB512_LX(6) NNC_DWB512_Q(6, 0) NNC_DWB512_Q(5, 1) NNC_DWB512_Q(4, 2)                                         \
    NNC_DWB512_LX(7) NNC_DWB512_Q(7, 0) NNC_DWB512_Q(6, 1) NNC_DWB512_Q(5, 2)                                         \
    NNC_DWB512_LX(8) NNC_DWB512_Q(8, 0) NNC_DWB512_Q(7, 1) NNC_DWB512_Q(6, 2)                                         \
    NNC_DWB512_LX(9) NNC_DWB512_Q(9, 0) NNC_DWB512_Q(8, 1) NNC_DWB512_Q(7, 2)                                         \
    NNC_DWB512_LX(10) NNC_DWB512_Q(10, 0) NNC_DWB512_Q(9, 1) NNC_DWB512_Q(8, 2)                                       \
    NNC_DWB512_LX(11) NNC_DWB512_Q(11, 0) NNC_DWB512_Q(10, 1) NNC_DWB512_Q(9, 2)                                      \
    NNC_DWB512_LX(12) NNC_DWB512_Q(11, 1) NNC_DWB512_Q(10, 2)                                                         \
    if (13 <= jhi) { NNC_DWB512_LX(13) NNC_DWB512_Q(11, 2) }
#define NNC_DWB512_SEQ12S1K5                                                                                          \
    if (0 >= jlo) { NNC_DWB512_LX(0) NNC_DWB512_Q(0, 0) }                                                             \
    if (1 >= jlo) { NNC_DWB512_LX(1) NNC_DWB512_Q(1, 0) NNC_DWB512_Q(0, 1) }                                          \
    NNC_DWB512_LX(2) NNC_DWB512_Q(2, 0) NNC_DWB512_Q(1, 1) NNC_DWB512_Q(0, 2)                                         \
    NNC_DWB512_LX(3) NNC_DWB512_Q(3, 0) NNC_DWB512_Q(2, 1) NNC_DWB512_Q(1, 2) NNC_DWB512_Q(0, 3)                      \
    NNC_DWB512_LX(4) NNC_DWB512_Q(4, 0) NNC_DWB512_Q(3, 1) NNC_DWB512_Q(2, 2) NNC_DWB512_Q(1, 3) NNC_DWB512_Q(0, 4)   \
    NNC_DWB512_LX(5) NNC_DWB512_Q(5, 0) NNC_DWB512_Q(4, 1) NNC_DWB512_Q(3, 2) NNC_DWB512_Q(2, 3) NNC_DWB512_Q(1, 4)   \
    NNC_DWB512_LX(6) NNC_DWB512_Q(6, 0) NNC_DWB512_Q(5, 1) NNC_DWB512_Q(4, 2) NNC_DWB512_Q(3, 3) NNC_DWB512_Q(2, 4)   \
    NNC_DWB512_LX(7) NNC_DWB512_Q(7, 0) NNC_DWB512_Q(6, 1) NNC_DWB512_Q(5, 2) NNC_DWB512_Q(4, 3) NNC_DWB512_Q(3, 4)   \
    NNC_DWB512_LX(8) NNC_DWB512_Q(8, 0) NNC_DWB512_Q(7, 1) NNC_DWB512_Q(6, 2) NNC_DWB512_Q(5, 3) NNC_DWB512_Q(4, 4)   \
    NNC_DWB512_LX(9) NNC_DWB512_Q(9, 0) NNC_DWB512_Q(8, 1) NNC_DWB512_Q(7, 2) NNC_DWB512_Q(6, 3) NNC_DWB512_Q(5, 4)   \
    NNC_DWB512_LX(10) NNC_DWB512_Q(10, 0) NNC_DWB512_Q(9, 1) NNC_DWB512_Q(8, 2) NNC_DWB512_Q(7, 3) NNC_DWB512_Q(6, 4) \
    NNC_DWB512_LX(11) NNC_DWB512_Q(11, 0) NNC_DWB512_Q(10, 1) NNC_DWB512_Q(9, 2) NNC_DWB512_Q(8, 3) NNC_DWB512_Q(7, 4)\
    NNC_DWB512_LX(12) NNC_DWB512_Q(11, 1) NNC_DWB512_Q(10, 2) NNC_DWB512_Q(9, 3) NNC_DWB512_Q(8, 4)                   \
    NNC_DWB512_LX(13) NNC_DWB512_Q(11, 2) NNC_DWB512_Q(10, 3) NNC_DWB512_Q(9, 4)                                      \
    if (14 <= jhi) { NNC_DWB512_LX(14) NNC_DWB512_Q(11, 3) NNC_DWB512_Q(10, 4) }                                      \
    if (15 <= jhi) { NNC_DWB512_LX(15) NNC_DWB512_Q(11, 4) }
#define NNC_DWB512_SEQ12S2K3                                                                                          \
    if (0 >= jlo) { NNC_DWB512_LX(0) NNC_DWB512_Q(0, 0) }                                                             \
    NNC_DWB512_LX(1) NNC_DWB512_Q(0, 1)                                                                               \
    NNC_DWB512_LX(2) NNC_DWB512_Q(1, 0) NNC_DWB512_Q(0, 2)                                                            \
    NNC_DWB512_LX(3) NNC_DWB512_Q(1, 1)                                                                               \
    NNC_DWB512_LX(4) NNC_DWB512_Q(2, 0) NNC_DWB512_Q(1, 2)                                                            \
    NNC_DWB512_LX(5) NNC_DWB512_Q(2, 1)                                                                               \
    NNC_DWB512_LX(6) NNC_DWB512_Q(3, 0) NNC_DWB512_Q(2, 2)                                                            \
    NNC_DWB512_LX(7) NNC_DWB512_Q(3, 1)                                                                               \
    NNC_DWB512_LX(8) NNC_DWB512_Q(4, 0) NNC_DWB512_Q(3, 2)                                                            \
    NNC_DWB512_LX(9) NNC_DWB512_Q(4, 1)                                                                               \
    NNC_DWB512_LX(10) NNC_DWB512_Q(5, 0) NNC_DWB512_Q(4, 2)                                                           \
    NNC_DWB512_LX(11) NNC_DWB512_Q(5, 1)                                                                              \
    NNC_DWB512_LX(12) NNC_DWB512_Q(6, 0) NNC_DWB512_Q(5, 2)                                                           \
    NNC_DWB512_LX(13) NNC_DWB512_Q(6, 1)                                                                              \
    NNC_DWB512_LX(14) NNC_DWB512_Q(7, 0) NNC_DWB512_Q(6, 2)                                                           \
    NNC_DWB512_LX(15) NNC_DWB512_Q(7, 1)                                                                              \
    NNC_DWB512_LX(16) NNC_DWB512_Q(8, 0) NNC_DWB512_Q(7, 2)                                                           \
    NNC_DWB512_LX(17) NNC_DWB512_Q(8, 1)                                                                              \
    NNC_DWB512_LX(18) NNC_DWB512_Q(9, 0) NNC_DWB512_Q(8, 2)                                                           \
    NNC_DWB512_LX(19) NNC_DWB512_Q(9, 1)                                                                              \
    NNC_DWB512_LX(20) NNC_DWB512_Q(10, 0) NNC_DWB512_Q(9, 2)                                                          \
    NNC_DWB512_LX(21) NNC_DWB512_Q(10, 1)                                                                             \
    NNC_DWB512_LX(22) NNC_DWB512_Q(11, 0) NNC_DWB512_Q(10, 2)                                                         \
    NNC_DWB512_LX(23) NNC_DWB512_Q(11, 1)                                                                             \
    if (24 <= jhi) { NNC_DWB512_LX(24) NNC_DWB512_Q(11, 2) }
#define NNC_DWB512_SEQ12S2K5                                                                                          \
    if (0 >= jlo) { NNC_DWB512_LX(0) NNC_DWB512_Q(0, 0) }                                                             \
    if (1 >= jlo) { NNC_DWB512_LX(1) NNC_DWB512_Q(0, 1) }                                                             \
    NNC_DWB512_LX(2) NNC_DWB512_Q(1, 0) NNC_DWB512_Q(0, 2)                                                            \
    NNC_DWB512_LX(3) NNC_DWB512_Q(1, 1) NNC_DWB512_Q(0, 3)                                                            \
    NNC_DWB512_LX(4) NNC_DWB512_Q(2, 0) NNC_DWB512_Q(1, 2) NNC_DWB512_Q(0, 4)                                         \
    NNC_DWB512_LX(5) NNC_DWB512_Q(2, 1) NNC_DWB512_Q(1, 3)                                                            \
    NNC_DWB512_LX(6) NNC_DWB512_Q(3, 0) NNC_DWB512_Q(2, 2) NNC_DWB512_Q(1, 4)                                         \
    NNC_DWB512_LX(7) NNC_DWB512_Q(3, 1) NNC_DWB512_Q(2, 3)                                                            \
    NNC_DWB512_LX(8) NNC_DWB512_Q(4, 0) NNC_DWB512_Q(3, 2) NNC_DWB512_Q(2, 4)                                         \
    NNC_DWB512_LX(9) NNC_DWB512_Q(4, 1) NNC_DWB512_Q(3, 3)                                                            \
    NNC_DWB512_LX(10) NNC_DWB512_Q(5, 0) NNC_DWB512_Q(4, 2) NNC_DWB512_Q(3, 4)                                        \
    NNC_DWB512_LX(11) NNC_DWB512_Q(5, 1) NNC_DWB512_Q(4, 3)                                                           \
    NNC_DWB512_LX(12) NNC_DWB512_Q(6, 0) NNC_DWB512_Q(5, 2) NNC_DWB512_Q(4, 4)                                        \
    NNC_DWB512_LX(13) NNC_DWB512_Q(6, 1) NNC_DWB512_Q(5, 3)                                                           \
    NNC_DWB512_LX(14) NNC_DWB512_Q(7, 0) NNC_DWB512_Q(6, 2) NNC_DWB512_Q(5, 4)                                        \
    NNC_DWB512_LX(15) NNC_DWB512_Q(7, 1) NNC_DWB512_Q(6, 3)                                                           \
    NNC_DWB512_LX(16) NNC_DWB512_Q(8, 0) NNC_DWB512_Q(7, 2) NNC_DWB512_Q(6, 4)                                        \
    NNC_DWB512_LX(17) NNC_DWB512_Q(8, 1) NNC_DWB512_Q(7, 3)                                                           \
    NNC_DWB512_LX(18) NNC_DWB512_Q(9, 0) NNC_DWB512_Q(8, 2) NNC_DWB512_Q(7, 4)                                        \
    NNC_DWB512_LX(19) NNC_DWB512_Q(9, 1) NNC_DWB512_Q(8, 3)                                                           \
    NNC_DWB512_LX(20) NNC_DWB512_Q(10, 0) NNC_DWB512_Q(9, 2) NNC_DWB512_Q(8, 4)                                       \
    NNC_DWB512_LX(21) NNC_DWB512_Q(10, 1) NNC_DWB512_Q(9, 3)                                                          \
    NNC_DWB512_LX(22) NNC_DWB512_Q(11, 0) NNC_DWB512_Q(10, 2) NNC_DWB512_Q(9, 4)                                      \
    NNC_DWB512_LX(23) NNC_DWB512_Q(11, 1) NNC_DWB512_Q(10, 3)                                                         \
    NNC_DWB512_LX(24) NNC_DWB512_Q(11, 2) NNC_DWB512_Q(10, 4)                                                         \
    if (25 <= jhi) { NNC_DWB512_LX(25) NNC_DWB512_Q(11, 3) }                                                          \
    if (26 <= jhi) { NNC_DWB512_LX(26) NNC_DWB512_Q(11, 4) }
#define NNC_DWB512_SEQ7S1K3                                                                                           \
    if (0 >= jlo) { NNC_DWB512_LX(0) NNC_DWB512_Q(0, 0) }                                                             \
    NNC_DWB512_LX(1) NNC_DWB512_Q(1, 0) NNC_DWB512_Q(0, 1)                                                            \
    NNC_DWB512_LX(2) NNC_DWB512_Q(2, 0) NNC_DWB512_Q(1, 1) NNC_DWB512_Q(0, 2)                                         \
    NNC_DWB512_LX(3) NNC_DWB512_Q(3, 0) NNC_DWB512_Q(2, 1) NNC_DWB512_Q(1, 2)                                         \
    NNC_DWB512_LX(4) NNC_DWB512_Q(4, 0) NNC_DWB512_Q(3, 1) NNC_DWB512_Q(2, 2)                                         \
    NNC_DWB512_LX(5) NNC_DWB512_Q(5, 0) NNC_DWB512_Q(4, 1) NNC_DWB512_Q(3, 2)                                         \
    NNC_DWB512_LX(6) NNC_DWB512_Q(6, 0) NNC_DWB512_Q(5, 1) NNC_DWB512_Q(4, 2)                                         \
    NNC_DWB512_LX(7) NNC_DWB512_Q(6, 1) NNC_DWB512_Q(5, 2)                                                            \
    if (8 <= jhi) { NNC_DWB512_LX(8) NNC_DWB512_Q(6, 2) }
#define NNC_DWB512_SEQ7S1K5                                                                                           \
    if (0 >= jlo) { NNC_DWB512_LX(0) NNC_DWB512_Q(0, 0) }                                                             \
    if (1 >= jlo) { NNC_DWB512_LX(1) NNC_DWB512_Q(1, 0) NNC_DWB512_Q(0, 1) }                                          \
    NNC_DWB512_LX(2) NNC_DWB512_Q(2, 0) NNC_DWB512_Q(1, 1) NNC_DWB512_Q(0, 2)                                         \
    NNC_DWB512_LX(3) NNC_DWB512_Q(3, 0) NNC_DWB512_Q(2, 1) NNC_DWB512_Q(1, 2) NNC_DWB512_Q(0, 3)                      \
    NNC_DWB512_LX(4) NNC_DWB512_Q(4, 0) NNC_DWB512_Q(3, 1) NNC_DWB512_Q(2, 2) NNC_DWB512_Q(1, 3) NNC_DWB512_Q(0, 4)   \
    NNC_DWB512_LX(5) NNC_DWB512_Q(5, 0) NNC_DWB512_Q(4, 1) NNC_DWB512_Q(3, 2) NNC_DWB512_Q(2, 3) NNC_DWB512_Q(1, 4)   \
    NNC_DWB512_LX(6) NNC_DWB512_Q(6, 0) NNC_DWB512_Q(5, 1) NNC_DWB512_Q(4, 2) NNC_DWB512_Q(3, 3) NNC_DWB512_Q(2, 4)   \
    NNC_DWB512_LX(7) NNC_DWB512_Q(6, 1) NNC_DWB512_Q(5, 2) NNC_DWB512_Q(4, 3) NNC_DWB512_Q(3, 4)                      \
    NNC_DWB512_LX(8) NNC_DWB512_Q(6, 2) NNC_DWB512_Q(5, 3) NNC_DWB512_Q(4, 4)                                         \
    if (9 <= jhi) { NNC_DWB512_LX(9) NNC_DWB512_Q(6, 3) NNC_DWB512_Q(5, 4) }                                          \
    if (10 <= jhi) { NNC_DWB512_LX(10) NNC_DWB512_Q(6, 4) }
#define NNC_DWB512_SEQ7S2K3                                                                                           \
    if (0 >= jlo) { NNC_DWB512_LX(0) NNC_DWB512_Q(0, 0) }                                                             \
    NNC_DWB512_LX(1) NNC_DWB512_Q(0, 1)                                                                               \
    NNC_DWB512_LX(2) NNC_DWB512_Q(1, 0) NNC_DWB512_Q(0, 2)                                                            \
    NNC_DWB512_LX(3) NNC_DWB512_Q(1, 1)                                                                               \
    NNC_DWB512_LX(4) NNC_DWB512_Q(2, 0) NNC_DWB512_Q(1, 2)                                                            \
    NNC_DWB512_LX(5) NNC_DWB512_Q(2, 1)                                                                               \
    NNC_DWB512_LX(6) NNC_DWB512_Q(3, 0) NNC_DWB512_Q(2, 2)                                                            \
    NNC_DWB512_LX(7) NNC_DWB512_Q(3, 1)                                                                               \
    NNC_DWB512_LX(8) NNC_DWB512_Q(4, 0) NNC_DWB512_Q(3, 2)                                                            \
    NNC_DWB512_LX(9) NNC_DWB512_Q(4, 1)                                                                               \
    NNC_DWB512_LX(10) NNC_DWB512_Q(5, 0) NNC_DWB512_Q(4, 2)                                                           \
    NNC_DWB512_LX(11) NNC_DWB512_Q(5, 1)                                                                              \
    NNC_DWB512_LX(12) NNC_DWB512_Q(6, 0) NNC_DWB512_Q(5, 2)                                                           \
    NNC_DWB512_LX(13) NNC_DWB512_Q(6, 1)                                                                              \
    if (14 <= jhi) { NNC_DWB512_LX(14) NNC_DWB512_Q(6, 2) }
#define NNC_DWB512_SEQ7S2K5                                                                                           \
    if (0 >= jlo) { NNC_DWB512_LX(0) NNC_DWB512_Q(0, 0) }                                                             \
    if (1 >= jlo) { NNC_DWB512_LX(1) NNC_DWB512_Q(0, 1) }                                                             \
    NNC_DWB512_LX(2) NNC_DWB512_Q(1, 0) NNC_DWB512_Q(0, 2)                                                            \
    NNC_DWB512_LX(3) NNC_DWB512_Q(1, 1) NNC_DWB512_Q(0, 3)                                                            \
    NNC_DWB512_LX(4) NNC_DWB512_Q(2, 0) NNC_DWB512_Q(1, 2) NNC_DWB512_Q(0, 4)                                         \
    NNC_DWB512_LX(5) NNC_DWB512_Q(2, 1) NNC_DWB512_Q(1, 3)                                                            \
    NNC_DWB512_LX(6) NNC_DWB512_Q(3, 0) NNC_DWB512_Q(2, 2) NNC_DWB512_Q(1, 4)                                         \
    NNC_DWB512_LX(7) NNC_DWB512_Q(3, 1) NNC_DWB512_Q(2, 3)                                                            \
    NNC_DWB512_LX(8) NNC_DWB512_Q(4, 0) NNC_DWB512_Q(3, 2) NNC_DWB512_Q(2, 4)                                         \
    NNC_DWB512_LX(9) NNC_DWB512_Q(4, 1) NNC_DWB512_Q(3, 3)                                                            \
    NNC_DWB512_LX(10) NNC_DWB512_Q(5, 0) NNC_DWB512_Q(4, 2) NNC_DWB512_Q(3, 4)                                        \
    NNC_DWB512_LX(11) NNC_DWB512_Q(5, 1) NNC_DWB512_Q(4, 3)                                                           \
    NNC_DWB512_LX(12) NNC_DWB512_Q(6, 0) NNC_DWB512_Q(5, 2) NNC_DWB512_Q(4, 4)                                        \
    NNC_DWB512_LX(13) NNC_DWB512_Q(6, 1) NNC_DWB512_Q(5, 3)                                                           \
    NNC_DWB512_LX(14) NNC_DWB512_Q(6, 2) NNC_DWB512_Q(5, 4)                                                           \
    if (15 <= jhi) { NNC_DWB512_LX(15) NNC_DWB512_Q(6, 3) }                                                           \
    if (16 <= jhi) { NNC_DWB512_LX(16) NNC_DWB512_Q(6, 4) }
#define NNC_DWB512_TAPS_R(SEQ, WK, K)                                                                                 \
    const int hk = ((K)-1) / 2;                                                                                       \
    (void)kstep, (void)pstep, (void)kn, (void)wv, (void)kj;                                                           \
    for (ki = 0; ki < nk; ki++, xt += rstep, wt += wrow) {                                                            \
        WK __m512 xv;                                                                                                 \
        SEQ                                                                                                           \
    }
#define NNC_DWB512_TILE(NAME, R, TAPS)                                                                                \
    __attribute__((target("avx512f"))) static NNC_MAYBE_UNUSED void NAME(                                             \
        const float *xt, size_t rstep, size_t kstep, size_t pstep, int nk, int kn, size_t wrow, const float *wt,      \
        const float *bias, const float *res, float *y, int act, __mmask16 m, int jlo, int jhi)                        \
    {                                                                                                                 \
        __m512 bv = _mm512_loadu_ps(bias), wv, z = _mm512_setzero_ps(), six = _mm512_set1_ps(6.0f);                   \
        int ki, kj;                                                                                                   \
        R(NNC_DWB512_DECL)                                                                                            \
        (void)jlo, (void)jhi;                                                                                         \
        TAPS                                                                                                          \
        if (res) {                                                                                                    \
            R(NNC_DWB512_RES)                                                                                         \
        }                                                                                                             \
        if (act == NNC_ACT_RELU || act == NNC_ACT_RELU6) {                                                            \
            R(NNC_DWB512_RELU)                                                                                        \
        }                                                                                                             \
        if (act == NNC_ACT_RELU6) {                                                                                   \
            R(NNC_DWB512_MIN6)                                                                                        \
        }                                                                                                             \
        R(NNC_DWB512_STORE)                                                                                           \
    }
NNC_DWB512_TILE(nnc_dwb512_t1, NNC_DWB_R1, NNC_DWB512_TAPS_ANY(NNC_DWB_R1))
NNC_DWB512_TILE(nnc_dwb512_t4, NNC_DWB_R4, NNC_DWB512_TAPS_ANY(NNC_DWB_R4))
NNC_DWB512_TILE(nnc_dwb512_t12, NNC_DWB_R12, NNC_DWB512_TAPS_ANY(NNC_DWB_R12))
NNC_DWB512_TILE(nnc_dwb512_r14s1k3, NNC_DWB_R14, NNC_DWB512_TAPS_R(NNC_DWB512_SEQ14S1K3, NNC_DWB512_W3, 3))
NNC_DWB512_TILE(nnc_dwb512_r14s1k5, NNC_DWB_R14, NNC_DWB512_TAPS_R(NNC_DWB512_SEQ14S1K5, NNC_DWB512_W5, 5))
NNC_DWB512_TILE(nnc_dwb512_r14s2k3, NNC_DWB_R14, NNC_DWB512_TAPS_R(NNC_DWB512_SEQ14S2K3, NNC_DWB512_W3, 3))
NNC_DWB512_TILE(nnc_dwb512_r14s2k5, NNC_DWB_R14, NNC_DWB512_TAPS_R(NNC_DWB512_SEQ14S2K5, NNC_DWB512_W5, 5))
NNC_DWB512_TILE(nnc_dwb512_r12s1k3, NNC_DWB_R12, NNC_DWB512_TAPS_R(NNC_DWB512_SEQ12S1K3, NNC_DWB512_W3, 3))
NNC_DWB512_TILE(nnc_dwb512_r12s1k5, NNC_DWB_R12, NNC_DWB512_TAPS_R(NNC_DWB512_SEQ12S1K5, NNC_DWB512_W5, 5))
NNC_DWB512_TILE(nnc_dwb512_r12s2k3, NNC_DWB_R12, NNC_DWB512_TAPS_R(NNC_DWB512_SEQ12S2K3, NNC_DWB512_W3, 3))
NNC_DWB512_TILE(nnc_dwb512_r12s2k5, NNC_DWB_R12, NNC_DWB512_TAPS_R(NNC_DWB512_SEQ12S2K5, NNC_DWB512_W5, 5))
NNC_DWB512_TILE(nnc_dwb512_r7s1k3, NNC_DWB_R7, NNC_DWB512_TAPS_R(NNC_DWB512_SEQ7S1K3, NNC_DWB512_W3, 3))
NNC_DWB512_TILE(nnc_dwb512_r7s1k5, NNC_DWB_R7, NNC_DWB512_TAPS_R(NNC_DWB512_SEQ7S1K5, NNC_DWB512_W5, 5))
NNC_DWB512_TILE(nnc_dwb512_r7s2k3, NNC_DWB_R7, NNC_DWB512_TAPS_R(NNC_DWB512_SEQ7S2K3, NNC_DWB512_W3, 3))
NNC_DWB512_TILE(nnc_dwb512_r7s2k5, NNC_DWB_R7, NNC_DWB512_TAPS_R(NNC_DWB512_SEQ7S2K5, NNC_DWB512_W5, 5))
typedef void (*nnc_dwb512_fn)(const float *, size_t, size_t, size_t, int, int, size_t, const float *, const float *,
                              const float *, float *, int, __mmask16, int, int);
/* The register tile of t pixels (14, 12, 7) at stride 1 (s1) or 2, kernel width 3 (k3) or 5. */
__attribute__((target("avx512f"))) static NNC_MAYBE_UNUSED nnc_dwb512_fn nnc_dwb512_pick(int t, int s1, int k3)
{
    if (t == 14)
        return s1 ? (k3 ? nnc_dwb512_r14s1k3 : nnc_dwb512_r14s1k5)
                  : (k3 ? nnc_dwb512_r14s2k3 : nnc_dwb512_r14s2k5);
    if (t == 12)
        return s1 ? (k3 ? nnc_dwb512_r12s1k3 : nnc_dwb512_r12s1k5)
                  : (k3 ? nnc_dwb512_r12s2k3 : nnc_dwb512_r12s2k5);
    (void)t;
    return s1 ? (k3 ? nnc_dwb512_r7s1k3 : nnc_dwb512_r7s1k5) : (k3 ? nnc_dwb512_r7s2k3 : nnc_dwb512_r7s2k5);
}

/* Output pixels [ox0, ox1) of a row, AVX-512. Kernels 3 or 5 wide at
 * column dilation 1, stride 1 or 2 and padding (kw - 1) / 2 (MobileNet's,
 * EfficientNet's): the whole row in register tiles of 14, then 7 pixels
 * (MobileNet's widths; a short tail re-runs a whole tile ending at the row's
 * end: the same values written again), the pixels left one at a time.
 * Otherwise a border pixel goes as a one-pixel tile of its taps inside the
 * input (per kernel row a range of columns), the interior in tiles of 12
 * (register tiles when the kernel allows), then 4, then 1. */
__attribute__((target("avx512f"))) static NNC_MAYBE_UNUSED void nnc_dwb_cols_avx512(const nnc_dwb_job *j,
                                                                                    const nnc_dwb_row *r, int ox0,
                                                                                    int ox1)
{
    int act = r->inreg ? j->act : NNC_ACT_NONE, ox, lo = r->xlo > ox0 ? r->xlo : ox0, hi = r->xhi < ox1 ? r->xhi : ox1;
    __mmask16 m = (__mmask16)((1u << r->lanes) - 1u);
    size_t rstep = (size_t)j->dh * (size_t)j->w * NNC_CB, kstep = (size_t)j->dw * NNC_CB;
    size_t pstep = (size_t)j->sw * NNC_CB, wrow = (size_t)j->kw * NNC_CB;
    int nk = r->k1 - r->k0, kw = j->kw, sw = j->sw, hk = (kw - 1) / 2;
    int reg = (kw == 3 || kw == 5) && j->dw == 1 && (sw == 1 || sw == 2);
    const float *x0 = nk > 0 ? r->xb + (size_t)(r->ty + r->k0 * j->dh) * (size_t)j->w * NNC_CB : r->xb;
    const float *w0 = r->wb + (size_t)(r->k0 * kw) * NNC_CB;
    if (hi < lo) hi = lo;
    if (reg && j->pw == hk && ox0 == 0 && ox1 == j->ow && nk > 0) {
        nnc_dwb512_fn f14 = nnc_dwb512_pick(14, sw == 1, kw == 3), f7 = nnc_dwb512_pick(7, sw == 1, kw == 3);
#define NNC_DWB512_ROW(f, at)                                                                                         \
    f(x0 + (size_t)((at) * sw) * NNC_CB, rstep, kstep, pstep, nk, kw, wrow, w0, r->bias,                              \
      r->res ? r->res + (size_t)(at) * NNC_CB : NULL, r->y + (size_t)(at) * NNC_CB, act, m, hk - (at) * sw,            \
      j->w - 1 - (at) * sw + hk)
        for (ox = 0; ox + 14 <= ox1; ox += 14) NNC_DWB512_ROW(f14, ox);
        if (ox < ox1 && ox1 >= 14) {
            NNC_DWB512_ROW(f14, ox1 - 14);
            ox = ox1;
        }
        for (; ox + 7 <= ox1; ox += 7) NNC_DWB512_ROW(f7, ox);
        if (ox < ox1 && ox1 >= 7) {
            NNC_DWB512_ROW(f7, ox1 - 7);
            ox = ox1;
        }
#undef NNC_DWB512_ROW
        ox0 = ox, lo = hi = ox; /* the pixels left: one at a time */
    }
    for (ox = ox0; ox < ox1; ox++) {
        int ix0, kj0 = 0, kj1 = kw, n = nk;
        if (ox == lo) ox = hi;
        if (ox >= ox1) break;
        ix0 = ox * sw - j->pw;
        while (kj0 < kw && ix0 + kj0 * j->dw < 0) kj0++;
        while (kj1 > kj0 && ix0 + (kj1 - 1) * j->dw >= j->w) kj1--;
        if (kj1 <= kj0) n = 0;
        nnc_dwb512_t1(n ? x0 + (size_t)(ix0 + kj0 * j->dw) * NNC_CB : r->xb, rstep, kstep, pstep, n, kj1 - kj0, wrow,
                      w0 + (size_t)kj0 * NNC_CB, r->bias, r->res ? r->res + (size_t)ox * NNC_CB : NULL,
                      r->y + (size_t)ox * NNC_CB, act, m, 0, 0);
    }
    ox = lo;
#define NNC_DWB512_CALL(f, at, first)                                                                                 \
    f(nk ? x0 + (size_t)((at) * sw - j->pw + (first)) * NNC_CB : r->xb, rstep, kstep, pstep, nk, kw, wrow, w0,         \
      r->bias, r->res ? r->res + (size_t)(at) * NNC_CB : NULL, r->y + (size_t)(at) * NNC_CB, act, m, 0, 1 << 30)
#define NNC_DWB512_CALL12(at)                                                                                         \
    do {                                                                                                              \
        if (reg)                                                                                                      \
            NNC_DWB512_CALL(nnc_dwb512_pick(12, sw == 1, kw == 3), at, hk);                                           \
        else                                                                                                          \
            NNC_DWB512_CALL(nnc_dwb512_t12, at, 0);                                                                   \
    } while (0)
    while (ox < hi) {
        int rem = hi - ox;
        if (rem >= 12) {
            NNC_DWB512_CALL12(ox);
            ox += 12;
        } else if (hi - lo >= 12 && rem > 4) {
            NNC_DWB512_CALL12(hi - 12);
            ox = hi;
        } else if (rem >= 4) {
            NNC_DWB512_CALL(nnc_dwb512_t4, ox, 0);
            ox += 4;
        } else if (hi - lo >= 4) {
            NNC_DWB512_CALL(nnc_dwb512_t4, hi - 4, 0);
            ox = hi;
        } else {
            NNC_DWB512_CALL(nnc_dwb512_t1, ox, 0);
            ox++;
        }
    }
#undef NNC_DWB512_CALL
#undef NNC_DWB512_CALL12
}
#undef NNC_DWB512_DECL
#undef NNC_DWB512_FMA
#undef NNC_DWB512_RES
#undef NNC_DWB512_RELU
#undef NNC_DWB512_MIN6
#undef NNC_DWB512_STORE
#undef NNC_DWB512_TAPS_ANY
#undef NNC_DWB512_LX
#undef NNC_DWB512_Q
#undef NNC_DWB512_W3
#undef NNC_DWB512_W5
#undef NNC_DWB512_TAPS_R
#undef NNC_DWB512_TILE
#undef NNC_DWB512_SEQ14S1K3
#undef NNC_DWB512_SEQ14S1K5
#undef NNC_DWB512_SEQ14S2K3
#undef NNC_DWB512_SEQ14S2K5
#undef NNC_DWB512_SEQ12S1K3
#undef NNC_DWB512_SEQ12S1K5
#undef NNC_DWB512_SEQ12S2K3
#undef NNC_DWB512_SEQ12S2K5
#undef NNC_DWB512_SEQ7S1K3
#undef NNC_DWB512_SEQ7S1K5
#undef NNC_DWB512_SEQ7S2K3
#undef NNC_DWB512_SEQ7S2K5

/* AVX2: the same tiles on 8 lanes, a block's two halves one after the other
 * (every pointer offset by the half's 8 lanes; mask: the half's real lanes).
 * 16 registers: tiles of 8 pixels, 7 for the register tiles. */
#define NNC_DWB256_DECL(p) __m256 a##p = bv;
#define NNC_DWB256_FMA(p) a##p = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xp + (size_t)(p) * pstep), a##p);
#define NNC_DWB256_RES(p) a##p = _mm256_add_ps(a##p, _mm256_loadu_ps(res + (size_t)(p) * NNC_CB));
#define NNC_DWB256_RELU(p) a##p = _mm256_max_ps(z, a##p);
#define NNC_DWB256_MIN6(p) a##p = _mm256_min_ps(six, a##p);
#define NNC_DWB256_STORE(p) _mm256_storeu_ps(y + (size_t)(p) * NNC_CB, _mm256_and_ps(m, a##p));
#define NNC_DWB256_TAPS_ANY(R)                                                                                        \
    for (ki = 0; ki < nk; ki++, xt += rstep, wt += wrow)                                                              \
        for (kj = 0; kj < kn; kj++) {                                                                                 \
            const float *xp = xt + (size_t)kj * kstep;                                                                \
            wv = _mm256_loadu_ps(wt + (size_t)kj * NNC_CB);                                                           \
            R(NNC_DWB256_FMA)                                                                                         \
        }
#define NNC_DWB256_LX(j)                                                                                              \
    xv = _mm256_loadu_ps(xt + ((ptrdiff_t)(j)-hk) * NNC_CB);                                                          \
    __asm__("" : "+x"(xv));
#define NNC_DWB256_Q(p, k) a##p = _mm256_fmadd_ps(w##k, xv, a##p);
#define NNC_DWB256_W3                                                                                                 \
    __m256 w0 = _mm256_loadu_ps(wt), w1 = _mm256_loadu_ps(wt + NNC_CB), w2 = _mm256_loadu_ps(wt + 2 * NNC_CB);
#define NNC_DWB256_W5                                                                                                 \
    __m256 w0 = _mm256_loadu_ps(wt), w1 = _mm256_loadu_ps(wt + NNC_CB), w2 = _mm256_loadu_ps(wt + 2 * NNC_CB);        \
    __m256 w3 = _mm256_loadu_ps(wt + 3 * NNC_CB), w4 = _mm256_loadu_ps(wt + 4 * NNC_CB);
#define NNC_DWB256_SEQ7S1K3                                                                                           \
    if (0 >= jlo) { NNC_DWB256_LX(0) NNC_DWB256_Q(0, 0) }                                                             \
    NNC_DWB256_LX(1) NNC_DWB256_Q(1, 0) NNC_DWB256_Q(0, 1)                                                            \
    NNC_DWB256_LX(2) NNC_DWB256_Q(2, 0) NNC_DWB256_Q(1, 1) NNC_DWB256_Q(0, 2)                                         \
    NNC_DWB256_LX(3) NNC_DWB256_Q(3, 0) NNC_DWB256_Q(2, 1) NNC_DWB256_Q(1, 2)                                         \
    NNC_DWB256_LX(4) NNC_DWB256_Q(4, 0) NNC_DWB256_Q(3, 1) NNC_DWB256_Q(2, 2)                                         \
    NNC_DWB256_LX(5) NNC_DWB256_Q(5, 0) NNC_DWB256_Q(4, 1) NNC_DWB256_Q(3, 2)                                         \
    NNC_DWB256_LX(6) NNC_DWB256_Q(6, 0) NNC_DWB256_Q(5, 1) NNC_DWB256_Q(4, 2)                                         \
    NNC_DWB256_LX(7) NNC_DWB256_Q(6, 1) NNC_DWB256_Q(5, 2)                                                            \
    if (8 <= jhi) { NNC_DWB256_LX(8) NNC_DWB256_Q(6, 2) }
#define NNC_DWB256_SEQ7S1K5                                                                                           \
    if (0 >= jlo) { NNC_DWB256_LX(0) NNC_DWB256_Q(0, 0) }                                                             \
    if (1 >= jlo) { NNC_DWB256_LX(1) NNC_DWB256_Q(1, 0) NNC_DWB256_Q(0, 1) }                                          \
    NNC_DWB256_LX(2) NNC_DWB256_Q(2, 0) NNC_DWB256_Q(1, 1) NNC_DWB256_Q(0, 2)                                         \
    NNC_DWB256_LX(3) NNC_DWB256_Q(3, 0) NNC_DWB256_Q(2, 1) NNC_DWB256_Q(1, 2) NNC_DWB256_Q(0, 3)                      \
    NNC_DWB256_LX(4) NNC_DWB256_Q(4, 0) NNC_DWB256_Q(3, 1) NNC_DWB256_Q(2, 2) NNC_DWB256_Q(1, 3) NNC_DWB256_Q(0, 4)   \
    NNC_DWB256_LX(5) NNC_DWB256_Q(5, 0) NNC_DWB256_Q(4, 1) NNC_DWB256_Q(3, 2) NNC_DWB256_Q(2, 3) NNC_DWB256_Q(1, 4)   \
    NNC_DWB256_LX(6) NNC_DWB256_Q(6, 0) NNC_DWB256_Q(5, 1) NNC_DWB256_Q(4, 2) NNC_DWB256_Q(3, 3) NNC_DWB256_Q(2, 4)   \
    NNC_DWB256_LX(7) NNC_DWB256_Q(6, 1) NNC_DWB256_Q(5, 2) NNC_DWB256_Q(4, 3) NNC_DWB256_Q(3, 4)                      \
    NNC_DWB256_LX(8) NNC_DWB256_Q(6, 2) NNC_DWB256_Q(5, 3) NNC_DWB256_Q(4, 4)                                         \
    if (9 <= jhi) { NNC_DWB256_LX(9) NNC_DWB256_Q(6, 3) NNC_DWB256_Q(5, 4) }                                          \
    if (10 <= jhi) { NNC_DWB256_LX(10) NNC_DWB256_Q(6, 4) }
#define NNC_DWB256_SEQ7S2K3                                                                                           \
    if (0 >= jlo) { NNC_DWB256_LX(0) NNC_DWB256_Q(0, 0) }                                                             \
    NNC_DWB256_LX(1) NNC_DWB256_Q(0, 1)                                                                               \
    NNC_DWB256_LX(2) NNC_DWB256_Q(1, 0) NNC_DWB256_Q(0, 2)                                                            \
    NNC_DWB256_LX(3) NNC_DWB256_Q(1, 1)                                                                               \
    NNC_DWB256_LX(4) NNC_DWB256_Q(2, 0) NNC_DWB256_Q(1, 2)                                                            \
    NNC_DWB256_LX(5) NNC_DWB256_Q(2, 1)                                                                               \
    NNC_DWB256_LX(6) NNC_DWB256_Q(3, 0) NNC_DWB256_Q(2, 2)                                                            \
    NNC_DWB256_LX(7) NNC_DWB256_Q(3, 1)                                                                               \
    NNC_DWB256_LX(8) NNC_DWB256_Q(4, 0) NNC_DWB256_Q(3, 2)                                                            \
    NNC_DWB256_LX(9) NNC_DWB256_Q(4, 1)                                                                               \
    NNC_DWB256_LX(10) NNC_DWB256_Q(5, 0) NNC_DWB256_Q(4, 2)                                                           \
    NNC_DWB256_LX(11) NNC_DWB256_Q(5, 1)                                                                              \
    NNC_DWB256_LX(12) NNC_DWB256_Q(6, 0) NNC_DWB256_Q(5, 2)                                                           \
    NNC_DWB256_LX(13) NNC_DWB256_Q(6, 1)                                                                              \
    if (14 <= jhi) { NNC_DWB256_LX(14) NNC_DWB256_Q(6, 2) }
#define NNC_DWB256_SEQ7S2K5                                                                                           \
    if (0 >= jlo) { NNC_DWB256_LX(0) NNC_DWB256_Q(0, 0) }                                                             \
    if (1 >= jlo) { NNC_DWB256_LX(1) NNC_DWB256_Q(0, 1) }                                                             \
    NNC_DWB256_LX(2) NNC_DWB256_Q(1, 0) NNC_DWB256_Q(0, 2)                                                            \
    NNC_DWB256_LX(3) NNC_DWB256_Q(1, 1) NNC_DWB256_Q(0, 3)                                                            \
    NNC_DWB256_LX(4) NNC_DWB256_Q(2, 0) NNC_DWB256_Q(1, 2) NNC_DWB256_Q(0, 4)                                         \
    NNC_DWB256_LX(5) NNC_DWB256_Q(2, 1) NNC_DWB256_Q(1, 3)                                                            \
    NNC_DWB256_LX(6) NNC_DWB256_Q(3, 0) NNC_DWB256_Q(2, 2) NNC_DWB256_Q(1, 4)                                         \
    NNC_DWB256_LX(7) NNC_DWB256_Q(3, 1) NNC_DWB256_Q(2, 3)                                                            \
    NNC_DWB256_LX(8) NNC_DWB256_Q(4, 0) NNC_DWB256_Q(3, 2) NNC_DWB256_Q(2, 4)                                         \
    NNC_DWB256_LX(9) NNC_DWB256_Q(4, 1) NNC_DWB256_Q(3, 3)                                                            \
    NNC_DWB256_LX(10) NNC_DWB256_Q(5, 0) NNC_DWB256_Q(4, 2) NNC_DWB256_Q(3, 4)                                        \
    NNC_DWB256_LX(11) NNC_DWB256_Q(5, 1) NNC_DWB256_Q(4, 3)                                                           \
    NNC_DWB256_LX(12) NNC_DWB256_Q(6, 0) NNC_DWB256_Q(5, 2) NNC_DWB256_Q(4, 4)                                        \
    NNC_DWB256_LX(13) NNC_DWB256_Q(6, 1) NNC_DWB256_Q(5, 3)                                                           \
    NNC_DWB256_LX(14) NNC_DWB256_Q(6, 2) NNC_DWB256_Q(5, 4)                                                           \
    if (15 <= jhi) { NNC_DWB256_LX(15) NNC_DWB256_Q(6, 3) }                                                           \
    if (16 <= jhi) { NNC_DWB256_LX(16) NNC_DWB256_Q(6, 4) }
#define NNC_DWB256_TAPS_R(SEQ, WK, K)                                                                                 \
    const int hk = ((K)-1) / 2;                                                                                       \
    (void)kstep, (void)pstep, (void)kn, (void)wv, (void)kj;                                                           \
    for (ki = 0; ki < nk; ki++, xt += rstep, wt += wrow) {                                                            \
        WK __m256 xv;                                                                                                 \
        SEQ                                                                                                           \
    }
#define NNC_DWB256_TILE(NAME, R, TAPS)                                                                                \
    __attribute__((target("avx2,fma"))) static NNC_MAYBE_UNUSED void NAME(                                            \
        const float *xt, size_t rstep, size_t kstep, size_t pstep, int nk, int kn, size_t wrow, const float *wt,      \
        const float *bias, const float *res, float *y, int act, __m256 m, int jlo, int jhi)                           \
    {                                                                                                                 \
        __m256 bv = _mm256_loadu_ps(bias), wv, z = _mm256_setzero_ps(), six = _mm256_set1_ps(6.0f);                   \
        int ki, kj;                                                                                                   \
        R(NNC_DWB256_DECL)                                                                                            \
        (void)jlo, (void)jhi;                                                                                         \
        TAPS                                                                                                          \
        if (res) {                                                                                                    \
            R(NNC_DWB256_RES)                                                                                         \
        }                                                                                                             \
        if (act == NNC_ACT_RELU || act == NNC_ACT_RELU6) {                                                            \
            R(NNC_DWB256_RELU)                                                                                        \
        }                                                                                                             \
        if (act == NNC_ACT_RELU6) {                                                                                   \
            R(NNC_DWB256_MIN6)                                                                                        \
        }                                                                                                             \
        R(NNC_DWB256_STORE)                                                                                           \
    }
NNC_DWB256_TILE(nnc_dwb256_t1, NNC_DWB_R1, NNC_DWB256_TAPS_ANY(NNC_DWB_R1))
NNC_DWB256_TILE(nnc_dwb256_t4, NNC_DWB_R4, NNC_DWB256_TAPS_ANY(NNC_DWB_R4))
NNC_DWB256_TILE(nnc_dwb256_t8, NNC_DWB_R8, NNC_DWB256_TAPS_ANY(NNC_DWB_R8))
NNC_DWB256_TILE(nnc_dwb256_r7s1k3, NNC_DWB_R7, NNC_DWB256_TAPS_R(NNC_DWB256_SEQ7S1K3, NNC_DWB256_W3, 3))
NNC_DWB256_TILE(nnc_dwb256_r7s1k5, NNC_DWB_R7, NNC_DWB256_TAPS_R(NNC_DWB256_SEQ7S1K5, NNC_DWB256_W5, 5))
NNC_DWB256_TILE(nnc_dwb256_r7s2k3, NNC_DWB_R7, NNC_DWB256_TAPS_R(NNC_DWB256_SEQ7S2K3, NNC_DWB256_W3, 3))
NNC_DWB256_TILE(nnc_dwb256_r7s2k5, NNC_DWB_R7, NNC_DWB256_TAPS_R(NNC_DWB256_SEQ7S2K5, NNC_DWB256_W5, 5))
typedef void (*nnc_dwb256_fn)(const float *, size_t, size_t, size_t, int, int, size_t, const float *, const float *,
                              const float *, float *, int, __m256, int, int);
/* The register tile of t pixels (7) at stride 1 (s1) or 2, kernel width 3 (k3) or 5. */
__attribute__((target("avx2,fma"))) static NNC_MAYBE_UNUSED nnc_dwb256_fn nnc_dwb256_pick(int t, int s1, int k3)
{
    (void)t;
    return s1 ? (k3 ? nnc_dwb256_r7s1k3 : nnc_dwb256_r7s1k5) : (k3 ? nnc_dwb256_r7s2k3 : nnc_dwb256_r7s2k5);
}

/* The mask of the real lanes of half `half` of a block with `lanes` real lanes. */
__attribute__((target("avx2,fma"))) static NNC_MAYBE_UNUSED __m256 nnc_dwb256_mask(int lanes, int half)
{
    __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(lanes - 8 * half), idx));
}

/* Output pixels [ox0, ox1) of a row, AVX2: each half of the block as the
 * AVX-512 path does the whole, with register tiles of 7 (whole rows, or the
 * interior), other tiles of 8, 4, 1. */
__attribute__((target("avx2,fma"))) static NNC_MAYBE_UNUSED void nnc_dwb_cols_avx2(const nnc_dwb_job *j,
                                                                                  const nnc_dwb_row *r, int ox0,
                                                                                  int ox1)
{
    int act = r->inreg ? j->act : NNC_ACT_NONE, ox, half, kw = j->kw, sw = j->sw, hk = (kw - 1) / 2;
    size_t rstep = (size_t)j->dh * (size_t)j->w * NNC_CB, kstep = (size_t)j->dw * NNC_CB;
    size_t pstep = (size_t)sw * NNC_CB, wrow = (size_t)kw * NNC_CB;
    int nk = r->k1 - r->k0, reg = (kw == 3 || kw == 5) && j->dw == 1 && (sw == 1 || sw == 2);
    nnc_dwb256_fn f7 = reg ? nnc_dwb256_pick(7, sw == 1, kw == 3) : NULL;
    if (r->lanes <= 8)  /* the second half is all padding: zeros */
        for (ox = ox0; ox < ox1; ox++) _mm256_storeu_ps(r->y + (size_t)ox * NNC_CB + 8, _mm256_setzero_ps());
    for (half = 0; half < (r->lanes > 8 ? 2 : 1); half++) {
        const float *xb = r->xb + 8 * half, *bias = r->bias + 8 * half, *res = r->res ? r->res + 8 * half : NULL;
        const float *x0 = nk > 0 ? xb + (size_t)(r->ty + r->k0 * j->dh) * (size_t)j->w * NNC_CB : xb;
        const float *w0 = r->wb + (size_t)(r->k0 * kw) * NNC_CB + 8 * half;
        float *y = r->y + 8 * half;
        __m256 m = nnc_dwb256_mask(r->lanes, half);
        int lo = r->xlo > ox0 ? r->xlo : ox0, hi = r->xhi < ox1 ? r->xhi : ox1, a = ox0;
        if (hi < lo) hi = lo;
        if (reg && j->pw == hk && ox0 == 0 && ox1 == j->ow && nk > 0) {
#define NNC_DWB256_ROW(at)                                                                                            \
    f7(x0 + (size_t)((at) * sw) * NNC_CB, rstep, kstep, pstep, nk, kw, wrow, w0, bias,                                \
       res ? res + (size_t)(at) * NNC_CB : NULL, y + (size_t)(at) * NNC_CB, act, m, hk - (at) * sw,                   \
       j->w - 1 - (at) * sw + hk)
            for (ox = 0; ox + 7 <= ox1; ox += 7) NNC_DWB256_ROW(ox);
            if (ox < ox1 && ox1 >= 7) {
                NNC_DWB256_ROW(ox1 - 7);
                ox = ox1;
            }
#undef NNC_DWB256_ROW
            a = ox, lo = hi = ox; /* the pixels left: one at a time */
        }
        for (ox = a; ox < ox1; ox++) {
            int ix0, kj0 = 0, kj1 = kw, n = nk;
            if (ox == lo) ox = hi;
            if (ox >= ox1) break;
            ix0 = ox * sw - j->pw;
            while (kj0 < kw && ix0 + kj0 * j->dw < 0) kj0++;
            while (kj1 > kj0 && ix0 + (kj1 - 1) * j->dw >= j->w) kj1--;
            if (kj1 <= kj0) n = 0;
            nnc_dwb256_t1(n ? x0 + (size_t)(ix0 + kj0 * j->dw) * NNC_CB : xb, rstep, kstep, pstep, n, kj1 - kj0, wrow,
                          w0 + (size_t)kj0 * NNC_CB, bias, res ? res + (size_t)ox * NNC_CB : NULL,
                          y + (size_t)ox * NNC_CB, act, m, 0, 0);
        }
        ox = lo;
#define NNC_DWB256_CALL(f, at, first)                                                                                 \
    f(nk ? x0 + (size_t)((at) * sw - j->pw + (first)) * NNC_CB : xb, rstep, kstep, pstep, nk, kw, wrow, w0, bias,      \
      res ? res + (size_t)(at) * NNC_CB : NULL, y + (size_t)(at) * NNC_CB, act, m, 0, 1 << 30)
        while (ox < hi) {
            int rem = hi - ox;
            if (reg && rem >= 7) {
                NNC_DWB256_CALL(f7, ox, hk);
                ox += 7;
            } else if (reg && hi - lo >= 7) {
                NNC_DWB256_CALL(f7, hi - 7, hk);
                ox = hi;
            } else if (rem >= 8) {
                NNC_DWB256_CALL(nnc_dwb256_t8, ox, 0);
                ox += 8;
            } else if (hi - lo >= 8 && rem > 4) {
                NNC_DWB256_CALL(nnc_dwb256_t8, hi - 8, 0);
                ox = hi;
            } else if (rem >= 4) {
                NNC_DWB256_CALL(nnc_dwb256_t4, ox, 0);
                ox += 4;
            } else if (hi - lo >= 4) {
                NNC_DWB256_CALL(nnc_dwb256_t4, hi - 4, 0);
                ox = hi;
            } else {
                NNC_DWB256_CALL(nnc_dwb256_t1, ox, 0);
                ox++;
            }
        }
#undef NNC_DWB256_CALL
    }
}
#undef NNC_DWB256_DECL
#undef NNC_DWB256_FMA
#undef NNC_DWB256_RES
#undef NNC_DWB256_RELU
#undef NNC_DWB256_MIN6
#undef NNC_DWB256_STORE
#undef NNC_DWB256_TAPS_ANY
#undef NNC_DWB256_LX
#undef NNC_DWB256_Q
#undef NNC_DWB256_W3
#undef NNC_DWB256_W5
#undef NNC_DWB256_TAPS_R
#undef NNC_DWB256_TILE
#undef NNC_DWB256_SEQ7S1K3
#undef NNC_DWB256_SEQ7S1K5
#undef NNC_DWB256_SEQ7S2K3
#undef NNC_DWB256_SEQ7S2K5
#undef NNC_DWB_R1
#undef NNC_DWB_R4
#undef NNC_DWB_R7
#undef NNC_DWB_R8
#undef NNC_DWB_R12
#undef NNC_DWB_R14
#endif

/* Task t: sample t / (cb * chunks), block t / chunks % cb, output rows chunk
 * t % chunks; row by row, the instruction set's columns, then (activations
 * other than relu and relu6) the activation over the row and its padding
 * lanes zeroed again. */
static NNC_MAYBE_UNUSED void nnc_dwb_task(void *arg, int t)
{
    const nnc_dwb_job *j = (const nnc_dwb_job *)arg;
    /* row-chunk major: with contiguous shares, each thread takes the same
     * rows of every block, the rows its previous layer wrote (kept in its
     * core's cache) */
    int s = t / (j->cb * j->chunks), ch = t / j->cb % j->chunks, b = t % j->cb, l, oy, ox;
    int oy0 = ch * j->rows, oy1 = oy0 + j->rows < j->oh ? oy0 + j->rows : j->oh;
    size_t hw = (size_t)j->h * (size_t)j->w, ohw = (size_t)j->oh * (size_t)j->ow, rowf = (size_t)j->ow * NNC_CB;
    float bias[NNC_CB];
    nnc_dwb_row r;
    r.lanes = j->c - b * NNC_CB < NNC_CB ? j->c - b * NNC_CB : NNC_CB;
    for (l = 0; l < NNC_CB; l++) bias[l] = j->bias && l < r.lanes ? j->bias[b * NNC_CB + l] : 0.0f;
    r.bias = bias;
    r.xb = j->x + (size_t)s * j->xs + (size_t)b * NNC_CB * hw;
    r.wb = j->wp + (size_t)b * (size_t)(j->kh * j->kw) * NNC_CB;
    r.inreg = j->act == NNC_ACT_NONE || (j->isa != NNC_ISA_C && (j->act == NNC_ACT_RELU || j->act == NNC_ACT_RELU6));
    /* columns with every tap inside: ox*sw - pw >= 0 and ox*sw - pw + (kw-1)*dw <= w - 1 */
    r.xlo = (j->pw + j->sw - 1) / j->sw;
    r.xhi = j->w - 1 + j->pw - (j->kw - 1) * j->dw < 0 ? 0 : (j->w - 1 + j->pw - (j->kw - 1) * j->dw) / j->sw + 1;
    if (r.xhi > j->ow) r.xhi = j->ow;
    if (r.xlo > r.xhi) r.xlo = r.xhi;
    for (oy = oy0; oy < oy1; oy++) {
        r.ty = oy * j->sh - j->ph, r.k0 = 0, r.k1 = j->kh;
        while (r.k0 < j->kh && r.ty + r.k0 * j->dh < 0) r.k0++;
        while (r.k1 > r.k0 && r.ty + (r.k1 - 1) * j->dh >= j->h) r.k1--;
        r.y = j->y + (size_t)s * j->ys + (size_t)b * NNC_CB * ohw + (size_t)oy * rowf;
        r.res = j->res ? j->res + (size_t)s * j->rs + (size_t)b * NNC_CB * ohw + (size_t)oy * rowf : NULL;
#if NNC_X86
        if (j->isa == NNC_ISA_AVX512)
            nnc_dwb_cols_avx512(j, &r, 0, j->ow);
        else if (j->isa == NNC_ISA_AVX2)
            nnc_dwb_cols_avx2(j, &r, 0, j->ow);
        else
#endif
            nnc_dwb_cols_c(j, &r, 0, j->ow);
        if (!r.inreg) {
            nnc_activation_inplace(r.y, rowf, j->act, j->slope);
            if (r.lanes < NNC_CB)
                for (ox = 0; ox < j->ow; ox++)
                    for (l = r.lanes; l < NNC_CB; l++) r.y[(size_t)ox * NNC_CB + (size_t)l] = 0.0f;
        }
    }
}

/* Depthwise convolution (groups = c = output channels) on NCHW16c: y (c
 * channels, oh x ow, batch stride ys) = dwconv(x (h x w, batch stride xs))
 * + bias[c] (unpadded, or NULL) [+ residual (NCHW16c like y, batch stride
 * rs, or NULL)], then act (NNC_ACT_*, slope), nnc_epilogue's arithmetic. Any
 * kernel, stride, zero padding, dilation; wp from nnc_pack_dw_blocked. y
 * must alias neither x nor residual (a tile may be computed twice). Over
 * ctx's threads (NULL: one thread, nnc_cpu_isa()). */
static NNC_MAYBE_UNUSED void nnc_dwconv_blocked(const nnc_ctx *ctx, int n, const float *x, size_t xs, int c, int h,
                                                int w, const float *wp, const float *bias, float *y, size_t ys, int oh,
                                                int ow, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                                                const float *residual, size_t rs, int act, float slope)
{
    nnc_dwb_job j;
    int planes, want;
    if (n <= 0 || c <= 0 || oh <= 0 || ow <= 0) return;
    j.x = x, j.wp = wp, j.bias = bias, j.res = residual, j.y = y, j.xs = xs, j.ys = ys, j.rs = rs, j.c = c;
    j.cb = (c + NNC_CB - 1) / NNC_CB, j.h = h, j.w = w, j.oh = oh, j.ow = ow, j.kh = kh, j.kw = kw, j.sh = sh;
    j.sw = sw, j.ph = ph, j.pw = pw, j.dh = dh, j.dw = dw, j.act = act, j.slope = slope;
    j.isa = ctx ? ctx->isa : nnc_cpu_isa();
    /* planes split in row ranges until there are some 16 tasks (the split
     * changes no output: every pixel is computed on its own) */
    planes = n * j.cb;
    want = planes >= 16 ? 1 : (16 + planes - 1) / planes;
    if (n == 1 && ctx && ctx->threads > want) want = ctx->threads;  /* a band of rows per thread */
    if (want > oh) want = oh;
    j.rows = (oh + want - 1) / want;
    j.chunks = (oh + j.rows - 1) / j.rows;
    nnc_parallel_work(ctx, (double)planes * NNC_CB * (double)oh * (double)ow * (double)(kh * kw), planes * j.chunks,
                      nnc_dwb_task, &j);
}
