/* kernels_blocked_conv.c: the convolution (groups 1) on the blocked channel
 * layout NCHW16c of kernels_blocked.c, a direct convolution register-blocked
 * as ONNX Runtime's MLAS NCHWc kernels are, no im2col and no scratch.
 *
 * A tile of output is one or two blocks of 16 output channels by up to NX
 * consecutive pixels of one output row, its accumulators in vector registers
 * (AVX-512: 2 blocks x 12 pixels, 24 zmm; AVX2: 1 block x 6 pixels, 12 ymm;
 * plain C: 1 block x 8 pixels). For each input block, kernel tap and input
 * channel it loads the 16 (32) weights of the output channels and, per
 * pixel, broadcasts the input value and multiply-adds. Each output's sum is
 * the same sequence of operations, in the order (input block, ky, kx, input
 * channel), whatever the tile's width, so where the tiles fall never changes
 * a result: 1, 2 and 3 threads give bit-identical outputs.
 *
 * Borders: the taps of a row of the kernel that fall above or below the
 * input are skipped for the whole output row; a tap kx that falls left or
 * right of it for some pixels of a tile runs for the others only (the first
 * or the last pixel missing, the usual case, are instances of their own), so
 * a border costs no narrower tiles (a 7x7 map's rows are one tile each). A
 * 1x1 stride-1 unpadded convolution is a GEMM over the plane: its h x w
 * pixels are one row, so tiles span rows of the map.
 *
 * When a group of output blocks has more weights than stay in L2 while its
 * rows run (ResNet's 512 x 512 x 3 x 3: 590 KB a pair of blocks), the sum
 * runs in parts over the input blocks, some 128 KB of weights each, the
 * tile's partial sums stored in y and loaded back (exact: the same floats
 * as kept in registers).
 *
 * Epilogue, on the tile in registers before its one store, with the
 * arithmetic of nnc_epilogue: sum + bias, + residual, then relu or relu6 as
 * a max and a min; other activations go through nnc_activation_inplace on
 * the stored tile. Padding lanes are written 0.0f (masked after the
 * activation). */

/* @kernel conv2d_blocked needs: blocked activation */
/* Packed weight of a convolution of k output and c input channels: for each
 * block of 16 output channels ob, each block of 16 input channels ib, each
 * tap (ky, kx), each input channel i of the block, the 16 output channels'
 * weights: element ((((ob * CB + ib) * kh + ky) * kw + kx) * 16 + i) * 16 + o,
 * CB = ceil(c / 16); zero for padding channels, in and out. */
static NNC_MAYBE_UNUSED size_t nnc_pack_blocked_floats(int k, int c, int kh, int kw)
{
    return (size_t)((k + NNC_CB - 1) / NNC_CB) * (size_t)((c + NNC_CB - 1) / NNC_CB) * (size_t)kh * (size_t)kw *
           (size_t)(NNC_CB * NNC_CB);
}

/* wp = w [k][c][kh][kw] in the layout above; with gamma (else NULL) each
 * output channel o's weights first scaled by gamma[o] / sqrtf(var[o] + eps),
 * exactly as nnc_bn_fold_weight and nnc_pack_weights scale them. */
static NNC_MAYBE_UNUSED void nnc_pack_weights_blocked(const float *w, int k, int c, int kh, int kw, const float *gamma,
                                                      const float *var, float eps, float *wp)
{
    int kb = (k + NNC_CB - 1) / NNC_CB, cb = (c + NNC_CB - 1) / NNC_CB, o, i, t, taps = kh * kw;
    for (o = 0; o < kb * NNC_CB; o++) {
        float scale = gamma && o < k ? gamma[o] / sqrtf(var[o] + eps) : 1.0f;
        for (i = 0; i < cb * NNC_CB; i++)
            for (t = 0; t < taps; t++) {
                size_t d = ((((size_t)(o / NNC_CB) * (size_t)cb + (size_t)(i / NNC_CB)) * (size_t)taps + (size_t)t) *
                                NNC_CB + (size_t)(i % NNC_CB)) * NNC_CB + (size_t)(o % NNC_CB);
                float v = 0.0f;
                if (o < k && i < c) {
                    v = w[((size_t)o * (size_t)c + (size_t)i) * (size_t)taps + (size_t)t];
                    if (gamma) v = v * scale;
                }
                wp[d] = v;
            }
    }
}

/* One tile: nob blocks of output channels by nx pixels of an output row. */
typedef struct {
    const float *x;    /* the sample's input, block 0 */
    const float *wt;   /* packed weights of the tile's first output block */
    const float *bias; /* nob x 16: the blocks' biases, zero past k */
    const float *res;  /* the residual at the tile's first output, or NULL */
    float *y;          /* the output at the tile's first output */
    size_t plane;      /* floats of one input block: h * w * 16 */
    size_t oplane;     /* floats of one output block: oh * ow * 16 */
    size_t wob;        /* floats of one output block's packed weights */
    int cb, c, iw, kh, kw, sx, sw, dw; /* sx: floats between the pixels' inputs (stride * 16) */
    int iy0, dh, ky0, ky1;             /* input row of ky = 0, dilation, the rows of taps inside the input */
    int ix0;                           /* input column of the first pixel's kx = 0 (may be < 0) */
    int nob, nx, act, lanes;           /* act: NONE, RELU or RELU6; lanes: real channels of the last block */
    int ib0, ib1, load, fin;           /* input blocks [ib0, ib1); start from y's partial sums; the last part */
    const char *pf;                    /* weights to ask into L2 as the tile runs (AVX-512): pfn lines of */
    int pfl, pfn;                      /* 64 bytes from pf (and pf + wob floats), pfl per kernel tap */
} nnc_bconv_tile;

typedef void (*nnc_bconv_tile_fn)(const nnc_bconv_tile *t);

/* The tile's pixels [ja, jb) whose tap kx falls inside the input row (none:
 * ja >= jb), and ix, the input column of pixel ja. Taps outside are
 * skipped, so an output's sum runs over its taps inside the input in the
 * same order whatever tile it is in. A macro: a call inside the kernels'
 * loops would spill their accumulators (every vector register is the
 * caller's to save). */
#define NNC_BCONV_COLS(t, nx, kx, ja, jb, ix)                                                                        \
    do {                                                                                                              \
        int v_ = (t)->ix0 + (kx) * (t)->dw;                                                                           \
        if (v_ >= 0 && v_ + ((nx) - 1) * (t)->sw < (t)->iw) {                                                         \
            ja = 0, jb = (nx);                                                                                        \
        } else {                                                                                                      \
            ja = v_ >= 0 ? 0 : (-v_ + (t)->sw - 1) / (t)->sw;                                                         \
            jb = v_ > (t)->iw - 1 ? 0 : ((t)->iw - 1 - v_) / (t)->sw + 1;                                             \
            if (jb > (nx)) jb = (nx);                                                                                 \
        }                                                                                                             \
        ix = v_ + ja * (t)->sw;                                                                                       \
    } while (0)

/* Plain C: one block by up to 8 pixels; the epilogue's activation is left to the caller. */
enum { NNC_BCONV_NX_C = 8 };
static NNC_MAYBE_UNUSED void nnc_bconv_tile_c(const nnc_bconv_tile *t)
{
    float acc[NNC_BCONV_NX_C][NNC_CB];
    int b, ky, kx, ci, j, l, nx = t->nx;
    for (j = 0; j < nx; j++)
        for (l = 0; l < NNC_CB; l++) acc[j][l] = t->load ? t->y[(size_t)j * NNC_CB + (size_t)l] : 0.0f;
    for (b = t->ib0; b < t->ib1; b++) {
        int cl = t->c - b * NNC_CB < NNC_CB ? t->c - b * NNC_CB : NNC_CB;
        for (ky = t->ky0; ky < t->ky1; ky++) {
            const float *xr = t->x + (size_t)b * t->plane + (size_t)(t->iy0 + ky * t->dh) * (size_t)t->iw * NNC_CB;
            const float *wr = t->wt + (((size_t)b * (size_t)t->kh + (size_t)ky) * (size_t)t->kw) * (NNC_CB * NNC_CB);
            for (kx = 0; kx < t->kw; kx++) {
                int ja, jb, ix;
                const float *xp, *wk = wr + (size_t)kx * (NNC_CB * NNC_CB);
                NNC_BCONV_COLS(t, nx, kx, ja, jb, ix);
                if (ja >= jb) continue;
                xp = xr + (size_t)ix * NNC_CB;
                for (ci = 0; ci < cl; ci++, xp++, wk += NNC_CB)
                    for (j = ja; j < jb; j++) {
                        float xv = xp[(size_t)(j - ja) * (size_t)t->sx];
                        for (l = 0; l < NNC_CB; l++) acc[j][l] += xv * wk[l];
                    }
            }
        }
    }
    for (j = 0; j < nx; j++) {
        float *yp = t->y + (size_t)j * NNC_CB;
        for (l = 0; l < NNC_CB && !t->fin; l++) yp[l] = acc[j][l];
        for (l = 0; l < NNC_CB && t->fin; l++) {
            float v = acc[j][l] + t->bias[l];
            if (t->res) v = v + t->res[(size_t)j * NNC_CB + (size_t)l];
            yp[l] = l < t->lanes ? v : 0.0f;
        }
    }
}

/* The tile width and the blocks a tile covers, per instruction set. */
enum { NNC_BCONV_NX_AVX2 = 6, NNC_BCONV_NX_AVX512 = 12 };

/* Which vector instances get compiled: bit NX of NNC_BCONV_AVX512_1 (tiles
 * of one block), NNC_BCONV_AVX512_2 (two blocks) and NNC_BCONV_AVX2 keeps
 * the instance of NX pixels; NNC_BCONV_S1, NNC_BCONV_S2 keep the strides.
 * Each instance costs the C compiler some 0.3 s, so the generator defines
 * these to what a network's convolutions use (their widths for 1 to 8
 * threads, codegen/ops_c.c cg_bconv_plan; bit 1 in every mask of a tile
 * shape used, 0 for one never used); undefined, all are compiled (the
 * kernel tests). A tile of a width left out (another
 * thread count) runs as tiles of the widths kept (nnc_bconv_split): the
 * same sums in the same order, so the same outputs. A stride left out takes
 * the plain C tiles (nnc_conv2d_blocked): never, for generated code. */
#ifndef NNC_BCONV_AVX512_1
#define NNC_BCONV_AVX512_1 0x1FFE
#endif
#ifndef NNC_BCONV_AVX512_2
#define NNC_BCONV_AVX512_2 0x1FFE
#endif
#ifndef NNC_BCONV_AVX2
#define NNC_BCONV_AVX2 0x7E
#endif
#ifndef NNC_BCONV_S1
#define NNC_BCONV_S1 1
#endif
#ifndef NNC_BCONV_S2
#define NNC_BCONV_S2 1
#endif

/* Tile t as tiles of the widths fns has (fns[1] at least), widest first,
 * each pixel's sum the same sequence of operations as in one tile; the
 * prefetch of the next weights (a hint) goes with the first. */
static NNC_MAYBE_UNUSED void nnc_bconv_split(const nnc_bconv_tile *t, const nnc_bconv_tile_fn *fns)
{
    nnc_bconv_tile u = *t;
    int done = 0, w;
    for (; done < t->nx; done += w) {
        for (w = t->nx - done; w > 1 && !fns[w]; w--) continue;
        u.nx = w, u.ix0 = t->ix0 + done * t->sw, u.pfn = done ? 0 : t->pfn;
        u.y = t->y + (size_t)done * NNC_CB, u.res = t->res ? t->res + (size_t)done * NNC_CB : NULL;
        fns[w](&u);
    }
}
#if NNC_X86
/* AVX-512: nob (1 or 2) blocks by NX (1..12) pixels, 24 zmm accumulators at
 * most; per input channel two weight loads and NX broadcasts (embedded in the
 * FMA) feed 2 * NX FMAs. NOB, NX and SX (the pixels' distance in x: 16 at
 * stride 1, 32 at 2, else a variable) are constants of each instance, so the accumulators are
 * registers at -O2. The epilogue: + bias, + residual, relu / relu6 as max /
 * min (max(0, v) is v < 0 ? 0 : v, as nnc_epilogue's relu), padding lanes
 * zeroed, one store. */
#define NNC_BC512_FMA(j, JA, JB)                                                                                      \
    if (NX > (j) && (j) >= (JA) && (j) < (JB)) {                                                                      \
        __m512 xv = _mm512_set1_ps(xp[(size_t)((j) - (JA)) * (size_t)SX]);                                           \
        a##j = _mm512_fmadd_ps(xv, w0, a##j);                                                                         \
        if (NOB > 1) b##j = _mm512_fmadd_ps(xv, w1, b##j);                                                            \
    }
/* The sum over a tap's input channels for pixels [JA, JB), xp at pixel JA. */
#define NNC_BC512_CI(JA, JB)                                                                                          \
    for (ci = 0; ci < cl; ci++, xp++, wk += NNC_CB) {                                                                 \
        __m512 w0 = _mm512_loadu_ps(wk), w1 = NOB > 1 ? _mm512_loadu_ps(wk + wob) : w0;                              \
        NNC_BC512_FMA(0, JA, JB) NNC_BC512_FMA(1, JA, JB) NNC_BC512_FMA(2, JA, JB) NNC_BC512_FMA(3, JA, JB)           \
        NNC_BC512_FMA(4, JA, JB) NNC_BC512_FMA(5, JA, JB) NNC_BC512_FMA(6, JA, JB) NNC_BC512_FMA(7, JA, JB)           \
        NNC_BC512_FMA(8, JA, JB) NNC_BC512_FMA(9, JA, JB) NNC_BC512_FMA(10, JA, JB) NNC_BC512_FMA(11, JA, JB)         \
    }
#define NNC_BC512_OUT1(acc, j, bv, q, m)                                                                              \
    {                                                                                                                 \
        __m512 v = _mm512_add_ps(acc, bv);                                                                            \
        if (res) v = _mm512_add_ps(v, _mm512_loadu_ps(res + (size_t)(q) * opl + (size_t)(j) * NNC_CB));               \
        if (relu) v = _mm512_max_ps(z, v);                                                                            \
        if (relu6) v = _mm512_min_ps(six, v);                                                                         \
        _mm512_storeu_ps(yo + (size_t)(q) * opl + (size_t)(j) * NNC_CB, _mm512_maskz_mov_ps(m, v));                   \
    }
/* A partial sum's tile from y and back (a sum split over parts of the input blocks). */
#define NNC_BC512_LOAD(j)                                                                                             \
    if (NX > (j)) {                                                                                                   \
        a##j = _mm512_loadu_ps(yo + (size_t)(j) * NNC_CB);                                                            \
        if (NOB > 1) b##j = _mm512_loadu_ps(yo + opl + (size_t)(j) * NNC_CB);                                         \
    }
#define NNC_BC512_SAVE(j)                                                                                             \
    if (NX > (j)) {                                                                                                   \
        _mm512_storeu_ps(yo + (size_t)(j) * NNC_CB, a##j);                                                            \
        if (NOB > 1) _mm512_storeu_ps(yo + opl + (size_t)(j) * NNC_CB, b##j);                                         \
    }
#define NNC_BC512_OUT(j)                                                                                              \
    if (NX > (j)) {                                                                                                   \
        NNC_BC512_OUT1(a##j, j, bv0, 0, m0)                                                                           \
        if (NOB > 1) NNC_BC512_OUT1(b##j, j, bv1, 1, m1)                                                              \
    }
__attribute__((target("avx512f"), always_inline)) static inline void nnc_bconv_avx512_body(const nnc_bconv_tile *t,
                                                                                           const int NOB, const int NX,
                                                                                           const int SX)
{
    __m512 a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, b0, b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11;
    __m512 z = _mm512_setzero_ps(), six = _mm512_set1_ps(6.0f), bv0, bv1;
    __mmask16 ml = (__mmask16)(t->lanes < NNC_CB ? (1u << t->lanes) - 1u : 0xFFFFu), m0 = NOB > 1 ? 0xFFFF : ml, m1 = ml;
    size_t wob = t->wob, opl;
    const float *res;
    float *yo;
    int b, ky, kx, ci, relu, relu6;
    const char *pf = t->pf;
    int pfn = t->pfn;
    yo = t->y, opl = t->oplane;
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = a8 = a9 = a10 = a11 = z;
    b0 = b1 = b2 = b3 = b4 = b5 = b6 = b7 = b8 = b9 = b10 = b11 = z;
    if (t->load) {
        NNC_BC512_LOAD(0) NNC_BC512_LOAD(1) NNC_BC512_LOAD(2) NNC_BC512_LOAD(3)
        NNC_BC512_LOAD(4) NNC_BC512_LOAD(5) NNC_BC512_LOAD(6) NNC_BC512_LOAD(7)
        NNC_BC512_LOAD(8) NNC_BC512_LOAD(9) NNC_BC512_LOAD(10) NNC_BC512_LOAD(11)
    }
    for (b = t->ib0; b < t->ib1; b++) {
        int cl = t->c - b * NNC_CB < NNC_CB ? t->c - b * NNC_CB : NNC_CB;
        for (ky = t->ky0; ky < t->ky1; ky++) {
            const float *xr = t->x + (size_t)b * t->plane + (size_t)(t->iy0 + ky * t->dh) * (size_t)t->iw * NNC_CB;
            const float *wr = t->wt + (((size_t)b * (size_t)t->kh + (size_t)ky) * (size_t)t->kw) * (NNC_CB * NNC_CB);
            for (kx = 0; kx < t->kw; kx++) {
                int ja, jb, ix;
                const float *xp, *wk = wr + (size_t)kx * (NNC_CB * NNC_CB);
                NNC_BCONV_COLS(t, NX, kx, ja, jb, ix);
                if (ja >= jb) continue;
                xp = xr + (size_t)ix * NNC_CB;
                if (pfn > 0) {
                    int q;
                    for (q = 0; q < t->pfl && q < pfn; q++, pf += 64) {
                        _mm_prefetch(pf, _MM_HINT_T1);
                        if (NOB > 1) _mm_prefetch(pf + wob * sizeof(float), _MM_HINT_T1);
                    }
                    pfn -= q;
                }
                if (ja == 0 && jb == NX)
                    NNC_BC512_CI(0, NX)
                else if (ja == 1 && jb == NX)  /* a left border */
                    NNC_BC512_CI(1, NX)
                else if (ja == 0 && jb == NX - 1)  /* a right border */
                    NNC_BC512_CI(0, NX - 1)
                else
                    NNC_BC512_CI(ja, jb)
            }
        }
    }
    if (!t->fin) {
        NNC_BC512_SAVE(0) NNC_BC512_SAVE(1) NNC_BC512_SAVE(2) NNC_BC512_SAVE(3)
        NNC_BC512_SAVE(4) NNC_BC512_SAVE(5) NNC_BC512_SAVE(6) NNC_BC512_SAVE(7)
        NNC_BC512_SAVE(8) NNC_BC512_SAVE(9) NNC_BC512_SAVE(10) NNC_BC512_SAVE(11)
        return;
    }
    /* the epilogue's operands in locals: loads through t would be repeated after every store */
    res = t->res, relu = t->act != NNC_ACT_NONE, relu6 = t->act == NNC_ACT_RELU6;
    bv0 = _mm512_loadu_ps(t->bias);
    bv1 = NOB > 1 ? _mm512_loadu_ps(t->bias + NNC_CB) : z;
    NNC_BC512_OUT(0) NNC_BC512_OUT(1) NNC_BC512_OUT(2) NNC_BC512_OUT(3)
    NNC_BC512_OUT(4) NNC_BC512_OUT(5) NNC_BC512_OUT(6) NNC_BC512_OUT(7)
    NNC_BC512_OUT(8) NNC_BC512_OUT(9) NNC_BC512_OUT(10) NNC_BC512_OUT(11)
}
#define NNC_BC512_FN(NOB, NX)                                                                                         \
    __attribute__((target("avx512f"))) static NNC_MAYBE_UNUSED void nnc_bconv512_##NOB##_##NX(const nnc_bconv_tile *t) \
    {                                                                                                                 \
        if (NNC_BCONV_S1 && (t->sx == NNC_CB || !NNC_BCONV_S2))                                                       \
            nnc_bconv_avx512_body(t, NOB, NX, NNC_CB);                                                                \
        else /* stride 2: wider strides take the plain C tiles (nnc_conv2d_blocked) */                                \
            nnc_bconv_avx512_body(t, NOB, NX, 2 * NNC_CB);                                                            \
    }
#define NNC_BC512_FNS(NOB)                                                                                            \
    NNC_BC512_FN(NOB, 1) NNC_BC512_FN(NOB, 2) NNC_BC512_FN(NOB, 3) NNC_BC512_FN(NOB, 4) NNC_BC512_FN(NOB, 5)         \
    NNC_BC512_FN(NOB, 6) NNC_BC512_FN(NOB, 7) NNC_BC512_FN(NOB, 8) NNC_BC512_FN(NOB, 9) NNC_BC512_FN(NOB, 10)        \
    NNC_BC512_FN(NOB, 11) NNC_BC512_FN(NOB, 12)
NNC_BC512_FNS(1)
NNC_BC512_FNS(2)
/* The instances, by blocks and width; NULL where NNC_BCONV_AVX512_1/_2 leave
 * one out (a constant the compiler folds, so the instance is never compiled). */
#define NNC_BC512_IF(NOB, NX) ((NNC_BCONV_AVX512_##NOB >> (NX) & 1) ? nnc_bconv512_##NOB##_##NX : NULL)
#define NNC_BC512_ROW(NOB)                                                                                            \
    { NULL, NNC_BC512_IF(NOB, 1), NNC_BC512_IF(NOB, 2), NNC_BC512_IF(NOB, 3), NNC_BC512_IF(NOB, 4),                   \
      NNC_BC512_IF(NOB, 5), NNC_BC512_IF(NOB, 6), NNC_BC512_IF(NOB, 7), NNC_BC512_IF(NOB, 8),                         \
      NNC_BC512_IF(NOB, 9), NNC_BC512_IF(NOB, 10), NNC_BC512_IF(NOB, 11), NNC_BC512_IF(NOB, 12) }
static NNC_MAYBE_UNUSED const nnc_bconv_tile_fn nnc_bconv512_fns[2][NNC_BCONV_NX_AVX512 + 1] = { NNC_BC512_ROW(1), NNC_BC512_ROW(2) };
static NNC_MAYBE_UNUSED void nnc_bconv_tile_avx512(const nnc_bconv_tile *t)
{
    nnc_bconv_tile_fn fn = nnc_bconv512_fns[t->nob - 1][t->nx];
    if (fn)
        fn(t);
    else
        nnc_bconv_split(t, nnc_bconv512_fns[t->nob - 1]);
}
#undef NNC_BC512_ROW
#undef NNC_BC512_IF
#undef NNC_BC512_FNS
#undef NNC_BC512_FN
#undef NNC_BC512_OUT
#undef NNC_BC512_LOAD
#undef NNC_BC512_SAVE
#undef NNC_BC512_OUT1
#undef NNC_BC512_CI
#undef NNC_BC512_FMA

/* AVX2 + FMA: one block (two ymm) by NX (1..6) pixels, 12 ymm accumulators,
 * two for the weights, one for the broadcast. */
#define NNC_BC256_FMA(j, JA, JB)                                                                                      \
    if (NX > (j) && (j) >= (JA) && (j) < (JB)) {                                                                      \
        __m256 xv = _mm256_broadcast_ss(xp + (size_t)((j) - (JA)) * (size_t)SX);                                      \
        a##j = _mm256_fmadd_ps(xv, w0, a##j);                                                                         \
        b##j = _mm256_fmadd_ps(xv, w1, b##j);                                                                         \
    }
#define NNC_BC256_CI(JA, JB)                                                                                          \
    for (ci = 0; ci < cl; ci++, xp++, wk += NNC_CB) {                                                                 \
        __m256 w0 = _mm256_loadu_ps(wk), w1 = _mm256_loadu_ps(wk + 8);                                                \
        NNC_BC256_FMA(0, JA, JB) NNC_BC256_FMA(1, JA, JB) NNC_BC256_FMA(2, JA, JB)                                    \
        NNC_BC256_FMA(3, JA, JB) NNC_BC256_FMA(4, JA, JB) NNC_BC256_FMA(5, JA, JB)                                    \
    }
#define NNC_BC256_OUT1(acc, j, h, bv, m)                                                                              \
    {                                                                                                                 \
        __m256 v = _mm256_add_ps(acc, bv);                                                                            \
        if (res) v = _mm256_add_ps(v, _mm256_loadu_ps(res + (size_t)(j) * NNC_CB + (h)));                             \
        if (relu) v = _mm256_max_ps(z, v);                                                                            \
        if (relu6) v = _mm256_min_ps(six, v);                                                                         \
        _mm256_storeu_ps(yo + (size_t)(j) * NNC_CB + (h), _mm256_and_ps(v, m));                                       \
    }
#define NNC_BC256_LOAD(j)                                                                                             \
    if (NX > (j)) {                                                                                                   \
        a##j = _mm256_loadu_ps(yo + (size_t)(j) * NNC_CB);                                                            \
        b##j = _mm256_loadu_ps(yo + (size_t)(j) * NNC_CB + 8);                                                        \
    }
#define NNC_BC256_SAVE(j)                                                                                             \
    if (NX > (j)) {                                                                                                   \
        _mm256_storeu_ps(yo + (size_t)(j) * NNC_CB, a##j);                                                            \
        _mm256_storeu_ps(yo + (size_t)(j) * NNC_CB + 8, b##j);                                                        \
    }
#define NNC_BC256_OUT(j)                                                                                              \
    if (NX > (j)) {                                                                                                   \
        NNC_BC256_OUT1(a##j, j, 0, bv0, m0)                                                                           \
        NNC_BC256_OUT1(b##j, j, 8, bv1, m1)                                                                           \
    }
__attribute__((target("avx2,fma"), always_inline)) static inline void nnc_bconv_avx2_body(const nnc_bconv_tile *t,
                                                                                         const int NX, const int SX)
{
    __m256 a0, a1, a2, a3, a4, a5, b0, b1, b2, b3, b4, b5;
    __m256 z = _mm256_setzero_ps(), six = _mm256_set1_ps(6.0f), bv0, bv1;
    __m256i lanes = _mm256_set1_epi32(t->lanes);
    __m256 m0 = _mm256_castsi256_ps(_mm256_cmpgt_epi32(lanes, _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
    __m256 m1 = _mm256_castsi256_ps(_mm256_cmpgt_epi32(lanes, _mm256_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15)));
    const float *res;
    float *yo;
    int b, ky, kx, ci, relu, relu6;
    yo = t->y;
    a0 = a1 = a2 = a3 = a4 = a5 = z;
    b0 = b1 = b2 = b3 = b4 = b5 = z;
    if (t->load) {
        NNC_BC256_LOAD(0) NNC_BC256_LOAD(1) NNC_BC256_LOAD(2) NNC_BC256_LOAD(3) NNC_BC256_LOAD(4) NNC_BC256_LOAD(5)
    }
    for (b = t->ib0; b < t->ib1; b++) {
        int cl = t->c - b * NNC_CB < NNC_CB ? t->c - b * NNC_CB : NNC_CB;
        for (ky = t->ky0; ky < t->ky1; ky++) {
            const float *xr = t->x + (size_t)b * t->plane + (size_t)(t->iy0 + ky * t->dh) * (size_t)t->iw * NNC_CB;
            const float *wr = t->wt + (((size_t)b * (size_t)t->kh + (size_t)ky) * (size_t)t->kw) * (NNC_CB * NNC_CB);
            for (kx = 0; kx < t->kw; kx++) {
                int ja, jb, ix;
                const float *xp, *wk = wr + (size_t)kx * (NNC_CB * NNC_CB);
                NNC_BCONV_COLS(t, NX, kx, ja, jb, ix);
                if (ja >= jb) continue;
                xp = xr + (size_t)ix * NNC_CB;
                if (ja == 0 && jb == NX)
                    NNC_BC256_CI(0, NX)
                else if (ja == 1 && jb == NX)
                    NNC_BC256_CI(1, NX)
                else if (ja == 0 && jb == NX - 1)
                    NNC_BC256_CI(0, NX - 1)
                else
                    NNC_BC256_CI(ja, jb)
            }
        }
    }
    if (!t->fin) {
        NNC_BC256_SAVE(0) NNC_BC256_SAVE(1) NNC_BC256_SAVE(2) NNC_BC256_SAVE(3) NNC_BC256_SAVE(4) NNC_BC256_SAVE(5)
        return;
    }
    res = t->res, relu = t->act != NNC_ACT_NONE, relu6 = t->act == NNC_ACT_RELU6;
    bv0 = _mm256_loadu_ps(t->bias), bv1 = _mm256_loadu_ps(t->bias + 8);
    NNC_BC256_OUT(0) NNC_BC256_OUT(1) NNC_BC256_OUT(2) NNC_BC256_OUT(3) NNC_BC256_OUT(4) NNC_BC256_OUT(5)
}
#define NNC_BC256_FN(NX)                                                                                              \
    __attribute__((target("avx2,fma"))) static NNC_MAYBE_UNUSED void nnc_bconv256_##NX(const nnc_bconv_tile *t)     \
    {                                                                                                                 \
        if (NNC_BCONV_S1 && (t->sx == NNC_CB || !NNC_BCONV_S2))                                                       \
            nnc_bconv_avx2_body(t, NX, NNC_CB);                                                                       \
        else /* stride 2: wider strides take the plain C tiles (nnc_conv2d_blocked) */                                \
            nnc_bconv_avx2_body(t, NX, 2 * NNC_CB);                                                                   \
    }
NNC_BC256_FN(1)
NNC_BC256_FN(2)
NNC_BC256_FN(3)
NNC_BC256_FN(4)
NNC_BC256_FN(5)
NNC_BC256_FN(6)
#define NNC_BC256_IF(NX) ((NNC_BCONV_AVX2 >> (NX) & 1) ? nnc_bconv256_##NX : NULL)
static NNC_MAYBE_UNUSED const nnc_bconv_tile_fn nnc_bconv256_fns[NNC_BCONV_NX_AVX2 + 1] = {
    NULL, NNC_BC256_IF(1), NNC_BC256_IF(2), NNC_BC256_IF(3), NNC_BC256_IF(4), NNC_BC256_IF(5), NNC_BC256_IF(6) };
static NNC_MAYBE_UNUSED void nnc_bconv_tile_avx2(const nnc_bconv_tile *t)
{
    nnc_bconv_tile_fn fn = nnc_bconv256_fns[t->nx];
    if (fn)
        fn(t);
    else
        nnc_bconv_split(t, nnc_bconv256_fns);
}
#undef NNC_BC256_IF
#undef NNC_BC256_FN
#undef NNC_BC256_OUT
#undef NNC_BC256_LOAD
#undef NNC_BC256_SAVE
#undef NNC_BC256_OUT1
#undef NNC_BC256_CI
#undef NNC_BC256_FMA
#endif
#undef NNC_BCONV_COLS

/* One blocked convolution, as its tasks see it. */
typedef struct {
    const float *x, *wp, *bias, *res;
    float *y;
    size_t xs, ys, rs;
    int c, h, w, k, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, act;
    float slope;
    int kb, cb, gob, nx, groups, rchunks, cchunks, fused, pixel_major, parts;
    nnc_bconv_tile_fn tile;
} nnc_bconv_job;

/* The taps q in [0, kn) of a kernel axis whose input coordinate i0 + q * d
 * falls inside [0, n): [*q0, *q1). */
static NNC_MAYBE_UNUSED void nnc_bconv_taps(int i0, int d, int kn, int n, int *q0, int *q1)
{
    int a = i0 >= 0 ? 0 : (-i0 + d - 1) / d, b = i0 > n - 1 ? 0 : (n - 1 - i0) / d + 1;
    if (b > kn) b = kn;
    if (a > kn) a = kn;
    *q0 = a, *q1 = b > a ? b : a;
}

/* Task t: sample, group of output blocks, chunk of output rows, chunk of
 * output columns; each row of the chunk in tiles of at most NX pixels, of
 * even widths. */
static NNC_MAYBE_UNUSED void nnc_bconv_task(void *arg, int task)
{
    const nnc_bconv_job *j = (const nnc_bconv_job *)arg;
    int per = j->groups * j->rchunks * j->cchunks, s = task / per, u = task % per, g, rc, cc, ob, q, l, oy, ox;
    int oy_a, oy_b, ox_a, ox_b, ntiles, ti, part;
    float bias[2 * NNC_CB];
    size_t ohw = (size_t)j->oh * (size_t)j->ow;
    float *yb;
    const float *rb;
    nnc_bconv_tile t;
    if (j->pixel_major)
        g = u % j->groups, cc = u / j->groups % j->cchunks, rc = u / j->groups / j->cchunks;
    else
        cc = u % j->cchunks, rc = u / j->cchunks % j->rchunks, g = u / j->cchunks / j->rchunks;
    ob = g * j->gob;
    oy_a = (int)((long)j->oh * rc / j->rchunks), oy_b = (int)((long)j->oh * (rc + 1) / j->rchunks);
    ox_a = (int)((long)j->ow * cc / j->cchunks), ox_b = (int)((long)j->ow * (cc + 1) / j->cchunks);
    ntiles = (ox_b - ox_a + j->nx - 1) / j->nx;
    t.nob = j->kb - ob < j->gob ? j->kb - ob : j->gob;
    for (q = 0; q < t.nob; q++)
        for (l = 0; l < NNC_CB; l++) {
            int o = (ob + q) * NNC_CB + l;
            bias[q * NNC_CB + l] = j->bias && o < j->k ? j->bias[o] : 0.0f;
        }
    t.lanes = j->k - (ob + t.nob - 1) * NNC_CB < NNC_CB ? j->k - (ob + t.nob - 1) * NNC_CB : NNC_CB;
    t.x = j->x + (size_t)s * j->xs;
    t.wob = (size_t)j->cb * (size_t)j->kh * (size_t)j->kw * (NNC_CB * NNC_CB);
    t.wt = j->wp + (size_t)ob * t.wob;
    t.bias = bias;
    t.plane = (size_t)j->h * (size_t)j->w * NNC_CB;
    t.oplane = ohw * NNC_CB;
    t.cb = j->cb, t.c = j->c, t.iw = j->w, t.kh = j->kh, t.kw = j->kw, t.sx = j->sw * NNC_CB;
    t.sw = j->sw, t.dw = j->dw, t.dh = j->dh, t.act = j->fused ? j->act : NNC_ACT_NONE;
    yb = j->y + (size_t)s * j->ys + (size_t)ob * t.oplane;
    rb = j->res ? j->res + (size_t)s * j->rs + (size_t)ob * t.oplane : NULL;
    t.pf = NULL, t.pfl = 0, t.pfn = 0;
    for (part = 0; part < j->parts; part++) {
        int tiles = (oy_b - oy_a) * ntiles, tile = 0;
        t.ib0 = (int)((long)j->cb * part / j->parts), t.ib1 = (int)((long)j->cb * (part + 1) / j->parts);
        t.load = part > 0, t.fin = part == j->parts - 1;
        for (oy = oy_a; oy < oy_b; oy++) {
            t.iy0 = oy * j->sh - j->ph;
            nnc_bconv_taps(t.iy0, j->dh, j->kh, j->h, &t.ky0, &t.ky1);
            for (ti = 0; ti < ntiles; ti++) {
                size_t at;
                ox = ox_a + (int)((long)(ox_b - ox_a) * ti / ntiles);
                t.nx = ox_a + (int)((long)(ox_b - ox_a) * (ti + 1) / ntiles) - ox;
                at = ((size_t)oy * (size_t)j->ow + (size_t)ox) * NNC_CB;
                t.ix0 = ox * j->sw - j->pw;
                t.y = yb + at;
                t.res = rb ? rb + at : NULL;
                t.pfn = 0;
                if (j->parts > 1 && (part + 1 < j->parts || g + 2 < j->groups ||
                                     (g + 1 < j->groups && j->kb % j->gob == 0))) {
                    /* this tile's share of the next part's weights (or the next, whole, group's first part):
                     * asked into L2 while this part runs from it (512x512 3x3 at 7x7: 1.2 -> 1.1 ms) */
                    size_t per_block = (size_t)j->kh * (size_t)j->kw * (NNC_CB * NNC_CB * sizeof(float));
                    int nb0 = part + 1 < j->parts ? (int)((long)j->cb * (part + 1) / j->parts) : 0;
                    int nb1 = part + 1 < j->parts ? (int)((long)j->cb * (part + 2) / j->parts)
                                                  : (int)((long)j->cb / j->parts);
                    const char *next = (const char *)(part + 1 < j->parts ? t.wt : t.wt + (size_t)j->gob * t.wob);
                    int lines = (int)((size_t)(nb1 - nb0) * per_block / 64), taps = (t.ib1 - t.ib0) * j->kh * j->kw;
                    int from = (int)((long)lines * tile / tiles), to = (int)((long)lines * (tile + 1) / tiles);
                    t.pf = next + (size_t)nb0 * per_block + (size_t)from * 64;
                    t.pfn = to - from, t.pfl = (t.pfn + taps - 1) / taps;
                }
                tile++;
                j->tile(&t);
                if (t.fin && !j->fused && j->act != NNC_ACT_NONE)
                    for (q = 0; q < t.nob; q++) {
                        float *yp = t.y + (size_t)q * t.oplane;
                        int p;
                        nnc_activation_inplace(yp, (size_t)t.nx * NNC_CB, j->act, j->slope);
                        if (q == t.nob - 1 && t.lanes < NNC_CB)  /* sigmoid(0) is not 0 */
                            for (p = 0; p < t.nx; p++)
                                for (l = t.lanes; l < NNC_CB; l++) yp[(size_t)p * NNC_CB + (size_t)l] = 0.0f;
                    }
            }
        }
    }
}

/* y (NCHW16c, k channels of oh x ow, batch stride ys) = the convolution of x
 * (NCHW16c, c channels of h x w, batch stride xs) by wp (packed by
 * nnc_pack_weights_blocked) + bias[k] (or NULL), + residual (NCHW16c like
 * y, batch stride rs, or NULL), then act: nnc_epilogue's arithmetic. Any
 * kernel, stride, zero padding and dilation; groups 1. Over ctx's threads
 * (ctx NULL: one thread, the best instruction set). */
static NNC_MAYBE_UNUSED void nnc_conv2d_blocked(const nnc_ctx *ctx, int n, const float *x, size_t xs, int c, int h,
                                                int w, const float *wp, const float *bias, float *y, size_t ys, int k,
                                                int oh, int ow, int kh, int kw, int sh, int sw, int ph, int pw, int dh,
                                                int dw, const float *residual, size_t rs, int act, float slope)
{
    nnc_bconv_job j;
    int isa = ctx ? ctx->isa : nnc_cpu_isa();
    double work, unit;
    if (n <= 0 || k <= 0 || oh <= 0 || ow <= 0) return;
    j.x = x, j.wp = wp, j.bias = bias, j.res = residual, j.y = y, j.xs = xs, j.ys = ys, j.rs = rs;
    j.c = c, j.h = h, j.w = w, j.k = k, j.oh = oh, j.ow = ow, j.kh = kh, j.kw = kw, j.sh = sh, j.sw = sw;
    j.ph = ph, j.pw = pw, j.dh = dh, j.dw = dw, j.act = act, j.slope = slope;
    if (kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0 && oh == h && ow == w)
        j.w = j.ow = h * w, j.h = j.oh = 1;  /* the plane is one row */
    j.kb = (k + NNC_CB - 1) / NNC_CB, j.cb = (c + NNC_CB - 1) / NNC_CB;
    j.tile = nnc_bconv_tile_c, j.gob = 1, j.nx = NNC_BCONV_NX_C, j.fused = 0;
#if NNC_X86
    if (isa == NNC_ISA_AVX512)
        j.tile = nnc_bconv_tile_avx512, j.gob = 2, j.nx = NNC_BCONV_NX_AVX512, j.fused = 1;
    else if (isa == NNC_ISA_AVX2)
        j.tile = nnc_bconv_tile_avx2, j.gob = 1, j.nx = NNC_BCONV_NX_AVX2, j.fused = 1;
#else
    (void)isa;
#endif
    /* The vector tiles are instances for strides 1 and 2 only: an instance
     * with the stride a variable took as long to compile as the others
     * together (LeNet-5's C: 36 -> 18 s at -O3 -march=native, machine
     * loaded), and no network of the zoo has a wider stride here. */
    if (sw > 2 || (sw == 1 && !NNC_BCONV_S1) || (sw == 2 && !NNC_BCONV_S2))
        j.tile = nnc_bconv_tile_c, j.gob = 1, j.nx = NNC_BCONV_NX_C, j.fused = 0;
    j.fused = j.fused && (act == NNC_ACT_NONE || act == NNC_ACT_RELU || act == NNC_ACT_RELU6);
    j.groups = (j.kb + j.gob - 1) / j.gob;
    /* tasks of some 2^17 multiply-adds at least: runs of whole rows, or of a
     * one-row plane's pixels, of even lengths */
    unit = (double)j.gob * NNC_CB * (double)c * (double)kh * (double)kw;
    work = unit * (double)n * (double)j.groups * (double)j.oh * (double)j.ow;
    j.rchunks = 1, j.cchunks = 1;
    /* a group's weights that would not stay in L2 while its rows run: the sum
     * in parts of the input blocks, some 128 KB of weights each, the partial
     * sums kept in y; tasks of 64 pixels at least, each part's weights read
     * from L2 by all of them */
    j.parts = 1;
    if ((double)j.gob * (double)j.cb * (double)kh * (double)kw * (NNC_CB * NNC_CB * sizeof(float)) > 262144.0) {
        int per_part = (int)(131072.0 / ((double)j.gob * (double)kh * (double)kw * (NNC_CB * NNC_CB * sizeof(float))));
        j.parts = (j.cb + (per_part < 1 ? 1 : per_part) - 1) / (per_part < 1 ? 1 : per_part);
    }
    if (j.oh > 1) {
        double rows = ceil(131072.0 / (unit * (double)j.ow));
        if (j.parts > 1 && rows < ceil(64.0 / (double)j.ow)) rows = ceil(64.0 / (double)j.ow);
        j.rchunks = rows >= (double)j.oh ? 1 : (int)((j.oh + rows - 1) / rows);
    } else {
        double cols = ceil(131072.0 / unit) < 48.0 ? 48.0 : ceil(131072.0 / unit);  /* 4 tiles at least */
        j.cchunks = cols >= (double)j.ow ? 1 : (int)((j.ow + cols - 1) / cols);
    }
    /* the order of the tasks: by group of output blocks, each group's weights
     * read over its pixels while in cache; or, when all weights are small, by
     * pixels, their input read by every group while in cache */
    j.pixel_major = (double)k * (double)c * (double)kh * (double)kw * sizeof(float) <= 65536.0;
    if (n == 1 && ctx && ctx->threads > 1) {  /* a band of pixels per thread: the ones its previous layer wrote */
        j.pixel_major = 1;
        if (j.oh > 1 && j.rchunks < ctx->threads) j.rchunks = ctx->threads < j.oh ? ctx->threads : j.oh;
        if (j.oh == 1 && j.cchunks < ctx->threads) j.cchunks = ctx->threads;
    }
    nnc_parallel_work(ctx, work, n * j.groups * j.rchunks * j.cchunks, nnc_bconv_task, &j);
}
