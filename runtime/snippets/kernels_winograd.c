/* kernels_winograd.c: 3x3 stride-1 convolutions by Winograd's minimal
 * filtering F(4x4, 3x3) (Lavin and Gray, "Fast Algorithms for Convolutional
 * Neural Networks", 2015), on the packed GEMM's micro-kernels.
 *
 * Each 4x4 block of the output (a tile) comes from a 6x6 block of the input:
 *   Y = A^T [ sum over c of (G g_kc G^T) . (B^T d_c B) ] A
 * where . multiplies element by element. The 36 positions xi of the 6x6
 * transformed domain are independent, so the sum over input channels is 36
 * GEMMs, each (tiles x c) * (c x k): 36 * 16/... = 2.25 multiply-adds per
 * output and input channel, against 9 for the direct convolution (4x fewer).
 * The weight transform U = G g G^T is done once, at create
 * (nnc_winograd_weights; passes/pack_weights.c chooses the layers). The
 * points are 0, +-1, +-2 and infinity; their rounding (a few ulps more than
 * the direct convolution, growing with c) stays well within the zoo's parity
 * tolerance: tests/unit/test_kernels_winograd.c bounds it against a double
 * reference. */

/* @kernel conv2d_winograd needs: gemm_packed */
/* U's layout: for each xi, the c x k matrix U_xi[c][k] in panels of 32
 * columns (output channels), each panel c rows of 32 floats, zero past k:
 * the B operand of the micro-kernel, read sequentially. So U has 36 * c *
 * NNC_WINO_KP(k) floats. V (the transformed input) is the A operand: for each
 * xi, panels of 8 tiles, each c rows of 8 floats. */
enum {
    NNC_WINO_XI = 36,     /* positions of the 6x6 transformed tile */
    NNC_WINO_NP = 32,     /* U's panel width (output channels) */
    NNC_WINO_BLOCK = 4,   /* panels of 8 tiles a lane transforms and multiplies at once */
    NNC_WINO_KB = 64,     /* output channels per pass over a block (M: 36 x 32 tiles x 64) */
    NNC_WINO_SLOTS = 4    /* lanes with a scratch slot of their own: at most 4 threads share a layer */
};
#define NNC_WINO_KP(k) (((k) + NNC_WINO_NP - 1) / NNC_WINO_NP * NNC_WINO_NP)

/* Floats of one lane's scratch: V for a block, then M for a block and a
 * chunk of NNC_WINO_KB output channels. */
static NNC_MAYBE_UNUSED size_t nnc_wino_slot(int c)
{
    return (size_t)NNC_WINO_XI * (size_t)(NNC_WINO_BLOCK * 8) * ((size_t)c + NNC_WINO_KB);
}

/* Floats of scratch nnc_conv2d_winograd needs (any batch). */
static NNC_MAYBE_UNUSED size_t nnc_conv2d_winograd_scratch(int c) { return NNC_WINO_SLOTS * nnc_wino_slot(c); }

/* dst = the Winograd transform of w [k][c][3][3] in the layout above; with
 * gamma (else NULL) each output channel's weights first scaled by
 * gamma[o] / sqrt(var[o] + eps) in float, exactly as nnc_bn_fold_weight does,
 * so folding a batchnorm and the transform are one pass at create. The
 * transform itself runs in double and rounds once. */
static NNC_MAYBE_UNUSED void nnc_winograd_weights(const float *w, int k, int c, const float *gamma, const float *var,
                                                  float eps, float *dst)
{
    static const double G[6][3] = {{1.0 / 4, 0, 0},
                                   {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                   {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                   {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                   {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                   {0, 0, 1}};
    size_t kp = (size_t)NNC_WINO_KP(k), plane = (size_t)c * kp;
    int o0, o, ci, i, j, q;
    memset(dst, 0, NNC_WINO_XI * plane * sizeof(float));
    for (o0 = 0; o0 < k; o0 += NNC_WINO_NP)  /* a panel of output channels: each (xi, ci) row written in one run */
        for (ci = 0; ci < c; ci++)
            for (o = o0; o < k && o < o0 + NNC_WINO_NP; o++) {
                const float *g = w + ((size_t)o * (size_t)c + (size_t)ci) * 9;
                float scale = gamma ? gamma[o] / sqrtf(var[o] + eps) : 1.0f;
                float *to = dst + (size_t)o0 * (size_t)c + (size_t)ci * NNC_WINO_NP + (size_t)(o - o0);
                double gs[3][3], t[6][3], u;
                for (i = 0; i < 3; i++)
                    for (j = 0; j < 3; j++) gs[i][j] = gamma ? (double)(g[i * 3 + j] * scale) : (double)g[i * 3 + j];
                for (i = 0; i < 6; i++)  /* t = G g */
                    for (j = 0; j < 3; j++) t[i][j] = G[i][0] * gs[0][j] + G[i][1] * gs[1][j] + G[i][2] * gs[2][j];
                for (i = 0; i < 6; i++)  /* u = t G^T */
                    for (j = 0; j < 6; j++) {
                        for (u = 0.0, q = 0; q < 3; q++) u += t[i][q] * G[j][q];
                        to[(size_t)(i * 6 + j) * plane] = (float)u;
                    }
            }
}

/* One convolution as nnc_conv2d_winograd's lanes see it. */
typedef struct {
    const float *x, *u, *bias, *residual;
    float *y, *scratch;
    size_t xs, ys, rs;
    int c, h, w, k, oh, ow, ph, pw, act, act_k;
    float slope;
    int tw, tpi, tiles, panels;  /* tiles a row and an image; tiles and panels of 8 in all */
    int lanes, klanes;           /* lanes; of them, how many split the output channels of one range of tiles */
    nnc_ukernel kern;
    int nr, isa;
} nnc_wino_job;

/* B^T d for one column of a tile, 8 tiles at once: d[i][r] is row i. */
#define NNC_WINO_BT(d, t, r)                                                                                          \
    do {                                                                                                              \
        t[0][r] = 4.0f * d[0][r] - 5.0f * d[2][r] + d[4][r];                                                          \
        t[1][r] = -4.0f * (d[1][r] + d[2][r]) + d[3][r] + d[4][r];                                                    \
        t[2][r] = 4.0f * (d[1][r] - d[2][r]) - d[3][r] + d[4][r];                                                     \
        t[3][r] = 2.0f * (d[3][r] - d[1][r]) - d[2][r] + d[4][r];                                                     \
        t[4][r] = 2.0f * (d[1][r] - d[3][r]) - d[2][r] + d[4][r];                                                     \
        t[5][r] = 4.0f * d[1][r] - 5.0f * d[3][r] + d[5][r];                                                          \
    } while (0)

/* V for the tiles of panels [p0, p0+np) of the job: V[xi][q][ci][r] (panel q
 * of the block, tile r of the panel), zeros for tiles past the last. The 6x6
 * input block of tile (ty, tx) starts at (4ty - ph, 4tx - pw); what falls
 * outside the image is the zero padding. */
static NNC_MAYBE_UNUSED void nnc_wino_input_c(const nnc_wino_job *j, int p0, int np, float *v)
{
    size_t hw = (size_t)j->h * (size_t)j->w, qs = (size_t)j->c * 8, xs = (size_t)NNC_WINO_BLOCK * qs;
    int q, r, ci, a, b;
    for (q = 0; q < np; q++) {
        const float *base[8];
        int y0[8], x0[8], inside[8];
        for (r = 0; r < 8; r++) {
            int t = (p0 + q) * 8 + r, img, rem;
            base[r] = NULL, y0[r] = x0[r] = 0, inside[r] = 0;
            if (t >= j->tiles) continue;
            img = t / j->tpi, rem = t % j->tpi;
            y0[r] = rem / j->tw * 4 - j->ph, x0[r] = rem % j->tw * 4 - j->pw;
            base[r] = j->x + (size_t)img * j->xs;
            inside[r] = y0[r] >= 0 && x0[r] >= 0 && y0[r] + 6 <= j->h && x0[r] + 6 <= j->w;
        }
        for (ci = 0; ci < j->c; ci++) {
            float d[6][6][8], t[6][6][8], col[6][8], out[6][8];
            float *vq = v + (size_t)q * qs + (size_t)ci * 8;
            for (r = 0; r < 8; r++) {
                const float *xc = base[r] ? base[r] + (size_t)ci * hw : NULL;
                if (inside[r]) {
                    for (a = 0; a < 6; a++)
                        for (b = 0; b < 6; b++) d[a][b][r] = xc[(size_t)(y0[r] + a) * (size_t)j->w + (size_t)(x0[r] + b)];
                } else {
                    for (a = 0; a < 6; a++)
                        for (b = 0; b < 6; b++) {
                            int yy = y0[r] + a, xx = x0[r] + b;
                            d[a][b][r] = xc && yy >= 0 && yy < j->h && xx >= 0 && xx < j->w
                                             ? xc[(size_t)yy * (size_t)j->w + (size_t)xx]
                                             : 0.0f;
                        }
                }
            }
            for (b = 0; b < 6; b++) {  /* t[.][b] = B^T d[.][b], column by column */
                for (a = 0; a < 6; a++)
                    for (r = 0; r < 8; r++) col[a][r] = d[a][b][r];
                for (r = 0; r < 8; r++) NNC_WINO_BT(col, out, r);
                for (a = 0; a < 6; a++)
                    for (r = 0; r < 8; r++) t[a][b][r] = out[a][r];
            }
            for (a = 0; a < 6; a++) {  /* V[a][.] = (t B)[a][.] = B^T applied to row a of t */
                for (r = 0; r < 8; r++) NNC_WINO_BT(t[a], out, r);
                for (b = 0; b < 6; b++)
                    for (r = 0; r < 8; r++) vq[(size_t)(a * 6 + b) * xs + (size_t)r] = out[b][r];
            }
        }
    }
}
#undef NNC_WINO_BT

#if NNC_X86
/* Where tile r of panel p0+q reads its 6x6 blocks: the offset of its origin
 * (4ty - ph, 4tx - pw) from x in channel 0 (for the vector loads; fits an int,
 * nnc_wino_input checks), its first row, and which of its 8 loaded columns
 * are in the image (bit b; bits 6 and 7 never: the transform reads 6). A
 * tile past the last has no column. */
static NNC_MAYBE_UNUSED void nnc_wino_origins(const nnc_wino_job *j, int p, long off[8], int y0[8], int cols[8])
{
    int r, b;
    for (r = 0; r < 8; r++) {
        int t = p * 8 + r, img, rem, x0;
        off[r] = 0, y0[r] = 0, cols[r] = 0;
        if (t >= j->tiles) continue;
        img = t / j->tpi, rem = t % j->tpi;
        y0[r] = rem / j->tw * 4 - j->ph, x0 = rem % j->tw * 4 - j->pw;
        off[r] = (long)img * (long)j->xs + (long)y0[r] * j->w + x0;
        for (b = 0; b < 6; b++)
            if (x0 + b >= 0 && x0 + b < j->w) cols[r] |= 1 << b;
    }
}

/* The 6x6 block's rows (row[r]: 8 columns of tile r, the last two unused)
 * transposed to d[b]: column b of the 8 tiles. */
__attribute__((target("avx2,fma"), always_inline)) static inline void nnc_wino_tr6_avx2(const __m256 row[8], __m256 d[6])
{
    __m256 t0 = _mm256_unpacklo_ps(row[0], row[1]), t1 = _mm256_unpackhi_ps(row[0], row[1]);
    __m256 t2 = _mm256_unpacklo_ps(row[2], row[3]), t3 = _mm256_unpackhi_ps(row[2], row[3]);
    __m256 t4 = _mm256_unpacklo_ps(row[4], row[5]), t5 = _mm256_unpackhi_ps(row[4], row[5]);
    __m256 t6 = _mm256_unpacklo_ps(row[6], row[7]), t7 = _mm256_unpackhi_ps(row[6], row[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    d[0] = _mm256_permute2f128_ps(u0, u4, 0x20), d[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    d[2] = _mm256_permute2f128_ps(u2, u6, 0x20), d[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    d[4] = _mm256_permute2f128_ps(u0, u4, 0x31), d[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
}

/* o[i] = (B^T d)[i] for 6 vectors d[0..5], each d[i] at d + i * step. */
__attribute__((target("avx2,fma"), always_inline)) static inline void nnc_wino_bt_avx2(const __m256 *d, int step, __m256 o[6])
{
    __m256 d0 = d[0], d1 = d[step], d2 = d[2 * step], d3 = d[3 * step], d4 = d[4 * step], d5 = d[5 * step];
    __m256 four = _mm256_set1_ps(4.0f), five = _mm256_set1_ps(5.0f), two = _mm256_set1_ps(2.0f);
    __m256 s42 = _mm256_sub_ps(d4, d2), s31 = _mm256_sub_ps(d3, d1);
    o[0] = _mm256_add_ps(_mm256_fmsub_ps(four, d0, _mm256_mul_ps(five, d2)), d4);
    o[1] = _mm256_fnmadd_ps(four, _mm256_add_ps(d1, d2), _mm256_add_ps(d3, d4));
    o[2] = _mm256_fmadd_ps(four, _mm256_sub_ps(d1, d2), _mm256_sub_ps(d4, d3));
    o[3] = _mm256_fmadd_ps(two, s31, s42);
    o[4] = _mm256_fnmadd_ps(two, s31, s42);
    o[5] = _mm256_add_ps(_mm256_fmsub_ps(four, d1, _mm256_mul_ps(five, d3)), d5);
}

/* The rows of one channel's blocks, transposed and transformed, stored as
 * nnc_wino_input stores them (vq: this channel's 8 floats of xi 0; xs: the
 * distance between two xi). */
__attribute__((target("avx2,fma"), always_inline)) static inline void nnc_wino_in_tile_avx2(__m256 d[6][6], float *vq, size_t xs)
{
    __m256 t[6][6], o[6];
    int a, b;
    for (b = 0; b < 6; b++) {  /* columns: t[.][b] = B^T d[.][b] */
        nnc_wino_bt_avx2(&d[0][b], 6, o);
        for (a = 0; a < 6; a++) t[a][b] = o[a];
    }
    for (a = 0; a < 6; a++) {  /* rows: V[a][.] = B^T t[a][.] */
        nnc_wino_bt_avx2(t[a], 1, o);
        for (b = 0; b < 6; b++) _mm256_storeu_ps(vq + (size_t)(a * 6 + b) * xs, o[b]);
    }
}

/* nnc_wino_input with AVX2: per channel, each tile's 6 rows come in by
 * masked loads (columns outside the image, and the 2 past the block, read as
 * zero without being touched), 8 tiles' rows are transposed in registers
 * into vectors of 8 tiles, and B^T . B runs on those. The scalar gather of
 * the 36 x 8 values cost more than the transform itself. */
__attribute__((target("avx2,fma"))) static NNC_MAYBE_UNUSED void nnc_wino_input_avx2(const nnc_wino_job *j, int p0,
                                                                                  int np, float *v)
{
    size_t hw = (size_t)j->h * (size_t)j->w, qs = (size_t)j->c * 8, xs = (size_t)NNC_WINO_BLOCK * qs;
    int q, r, ci, a, b;
    for (q = 0; q < np; q++) {
        long off[8];
        int y0[8], cols[8];
        __m256i mask[8];
        nnc_wino_origins(j, p0 + q, off, y0, cols);
        for (r = 0; r < 8; r++) {
            int m[8];
            for (b = 0; b < 8; b++) m[b] = cols[r] >> b & 1 ? -1 : 0;
            mask[r] = _mm256_setr_epi32(m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7]);
        }
        for (ci = 0; ci < j->c; ci++) {
            const float *xc = j->x + (size_t)ci * hw;
            __m256 d[6][6], row[8];
            for (a = 0; a < 6; a++) {
                for (r = 0; r < 8; r++)
                    row[r] = cols[r] && y0[r] + a >= 0 && y0[r] + a < j->h
                                 ? _mm256_maskload_ps(xc + off[r] + (long)a * j->w, mask[r])
                                 : _mm256_setzero_ps();
                nnc_wino_tr6_avx2(row, d[a]);
            }
            nnc_wino_in_tile_avx2(d, v + (size_t)q * qs + (size_t)ci * 8, xs);
        }
    }
}

/* The same with AVX-512's masked loads, and its 32 registers for the 36
 * vectors of a block. */
__attribute__((target("avx2,fma,avx512f,avx512vl"))) static NNC_MAYBE_UNUSED void
nnc_wino_input_avx512(const nnc_wino_job *j, int p0, int np, float *v)
{
    size_t hw = (size_t)j->h * (size_t)j->w, qs = (size_t)j->c * 8, xs = (size_t)NNC_WINO_BLOCK * qs;
    int q, r, ci, a;
    for (q = 0; q < np; q++) {
        long off[8];
        int y0[8], cols[8];
        nnc_wino_origins(j, p0 + q, off, y0, cols);
        for (ci = 0; ci < j->c; ci++) {
            const float *xc = j->x + (size_t)ci * hw;
            __m256 d[6][6], row[8];
            for (a = 0; a < 6; a++) {
                for (r = 0; r < 8; r++)
                    row[r] = y0[r] + a >= 0 && y0[r] + a < j->h
                                 ? _mm256_maskz_loadu_ps((__mmask8)cols[r], xc + off[r] + (long)a * j->w)
                                 : _mm256_setzero_ps();
                nnc_wino_tr6_avx2(row, d[a]);
            }
            nnc_wino_in_tile_avx2(d, v + (size_t)q * qs + (size_t)ci * 8, xs);
        }
    }
}
#endif

/* V for the tiles of panels [p0, p0+np): by the vector paths when the CPU
 * has them and every offset they compute fits an int's range (a long may be
 * 32 bits). */
static NNC_MAYBE_UNUSED void nnc_wino_input(const nnc_wino_job *j, int p0, int np, float *v)
{
#if NNC_X86
    double extent = (double)(j->tiles / j->tpi) * (double)j->xs + (double)j->c * (double)j->h * (double)j->w;
    if (extent < 2147483647.0 - 16.0) {
        if (j->isa == NNC_ISA_AVX512) {
            nnc_wino_input_avx512(j, p0, np, v);
            return;
        }
        if (j->isa == NNC_ISA_AVX2) {
            nnc_wino_input_avx2(j, p0, np, v);
            return;
        }
    }
#endif
    nnc_wino_input_c(j, p0, np, v);
}

/* A^T m for one column, 16 output channels at once: m[i][l] is row i. */
#define NNC_WINO_AT(m, o, l)                                                                                          \
    do {                                                                                                              \
        float s12 = m[1][l] + m[2][l], d12 = m[1][l] - m[2][l], s34 = m[3][l] + m[4][l], d34 = m[3][l] - m[4][l];    \
        o[0][l] = m[0][l] + s12 + s34;                                                                                \
        o[1][l] = d12 + 2.0f * d34;                                                                                   \
        o[2][l] = s12 + 4.0f * s34;                                                                                   \
        o[3][l] = d12 + 8.0f * d34 + m[5][l];                                                                         \
    } while (0)

/* The outputs of tiles [t0, t0+nt) and channels [k0, k0+nk) from M
 * (M[xi][tile of the block][channel of the chunk], rows of NNC_WINO_KB), with
 * the bias, the residual and the activation, clipped to the image. */
static NNC_MAYBE_UNUSED void nnc_wino_output_c(const nnc_wino_job *j, const float *mm, int t0, int nt, int k0, int nk)
{
    size_t ohw = (size_t)j->oh * (size_t)j->ow, xs = (size_t)(NNC_WINO_BLOCK * 8) * NNC_WINO_KB;
    int tt, kk, a, b, l;
    for (tt = 0; tt < nt; tt++) {
        int t = t0 + tt, img = t / j->tpi, rem = t % j->tpi, oy = rem / j->tw * 4, ox = rem % j->tw * 4;
        int rows = j->oh - oy < 4 ? j->oh - oy : 4, cols = j->ow - ox < 4 ? j->ow - ox : 4;
        float *yi = j->y + (size_t)img * j->ys;
        const float *ri = j->residual ? j->residual + (size_t)img * j->rs : NULL;
        for (kk = 0; kk < nk; kk += 16) {
            float m[6][6][16], s[4][6][16], col[6][16], o[4][16], res[4][4][16];
            int nl = nk - kk < 16 ? nk - kk : 16;
            for (a = 0; a < 6; a++)
                for (b = 0; b < 6; b++)
                    for (l = 0; l < 16; l++) m[a][b][l] = mm[(size_t)(a * 6 + b) * xs + (size_t)tt * NNC_WINO_KB + (size_t)(kk + l)];
            for (b = 0; b < 6; b++) {  /* s[.][b] = A^T m[.][b] */
                for (a = 0; a < 6; a++)
                    for (l = 0; l < 16; l++) col[a][l] = m[a][b][l];
                for (l = 0; l < 16; l++) NNC_WINO_AT(col, o, l);
                for (a = 0; a < 4; a++)
                    for (l = 0; l < 16; l++) s[a][b][l] = o[a][l];
            }
            for (a = 0; a < 4; a++) {  /* res[a][.] = (s A)[a][.] */
                for (l = 0; l < 16; l++) NNC_WINO_AT(s[a], o, l);
                for (b = 0; b < 4; b++)
                    for (l = 0; l < 16; l++) res[a][b][l] = o[b][l];
            }
            for (l = 0; l < nl; l++) {
                int ko = k0 + kk + l, act = ko < j->act_k ? j->act : NNC_ACT_NONE;
                float bias = j->bias ? j->bias[ko] : 0.0f, *yk = yi + (size_t)ko * ohw, v[4][4];
                const float *rk = ri ? ri + (size_t)ko * ohw + (size_t)oy * (size_t)j->ow + (size_t)ox : NULL;
                for (a = 0; a < 4; a++)
                    for (b = 0; b < 4; b++) v[a][b] = res[a][b][l] + bias;
                if (rk)
                    for (a = 0; a < rows; a++)
                        for (b = 0; b < cols; b++) v[a][b] += rk[(size_t)a * (size_t)j->ow + (size_t)b];
                if (act == NNC_ACT_RELU) {  /* the common case, without a call per value */
                    for (a = 0; a < 4; a++)
                        for (b = 0; b < 4; b++) v[a][b] = v[a][b] < 0.0f ? 0.0f : v[a][b];  /* as activations.h: NaN stays */
                } else if (act != NNC_ACT_NONE) {
                    for (a = 0; a < rows; a++)
                        for (b = 0; b < cols; b++) v[a][b] = nnc_act1(v[a][b], act, j->slope);
                }
                for (a = 0; a < rows; a++) {
                    float *dst = yk + (size_t)(oy + a) * (size_t)j->ow + (size_t)ox;
                    if (cols == 4)
                        memcpy(dst, v[a], 4 * sizeof(float));
                    else
                        for (b = 0; b < cols; b++) dst[b] = v[a][b];
                }
            }
        }
    }
}
#undef NNC_WINO_AT

#if NNC_X86
/* o[i] = (A^T m)[i] for 6 vectors m[0..5], each m[i] at m + i * step. */
__attribute__((target("avx512f"), always_inline)) static inline void nnc_wino_at_avx512(const __m512 *m, int step,
                                                                                      __m512 o[4])
{
    __m512 m0 = m[0], m5 = m[5 * step], two = _mm512_set1_ps(2.0f), four = _mm512_set1_ps(4.0f);
    __m512 s12 = _mm512_add_ps(m[step], m[2 * step]), d12 = _mm512_sub_ps(m[step], m[2 * step]);
    __m512 s34 = _mm512_add_ps(m[3 * step], m[4 * step]), d34 = _mm512_sub_ps(m[3 * step], m[4 * step]);
    o[0] = _mm512_add_ps(_mm512_add_ps(m0, s12), s34);
    o[1] = _mm512_fmadd_ps(two, d34, d12);
    o[2] = _mm512_fmadd_ps(four, s34, s12);
    o[3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0f), d34, d12), m5);
}

/* nnc_wino_output with AVX-512, channels in the lanes: M's rows are already
 * 16 channels wide, so A^T . A and the bias are vector operations as they
 * stand; then per output row a 4 x 16 -> 16 x 4 transposition gives each
 * channel its 4 outputs, one 128-bit store (with the residual's row and relu;
 * masked in tiles clipped by the right edge: at 14x14, 7 of the 16 tiles are
 * clipped). Activations other than relu take the scalar path. */
__attribute__((target("avx512f"))) static NNC_MAYBE_UNUSED void
nnc_wino_output_avx512(const nnc_wino_job *j, const float *mm, int t0, int nt, int k0, int nk)
{
    size_t ohw = (size_t)j->oh * (size_t)j->ow, xs = (size_t)(NNC_WINO_BLOCK * 8) * NNC_WINO_KB;
    int tt, kk, a, b, l, vec = j->act == NNC_ACT_NONE || j->act == NNC_ACT_RELU;
    for (tt = 0; tt < nt; tt++) {
        int t = t0 + tt, img = t / j->tpi, rem = t % j->tpi, oy = rem / j->tw * 4, ox = rem % j->tw * 4;
        float *yi = j->y + (size_t)img * j->ys;
        const float *ri = j->residual ? j->residual + (size_t)img * j->rs : NULL;
        int rows = j->oh - oy < 4 ? j->oh - oy : 4, cols = j->ow - ox < 4 ? j->ow - ox : 4;
        __m128i cm = _mm_cmpgt_epi32(_mm_set1_epi32(cols), _mm_setr_epi32(0, 1, 2, 3));
        if (!vec) {
            nnc_wino_output_c(j, mm + (size_t)tt * NNC_WINO_KB, t, 1, k0, nk);
            continue;
        }
        for (kk = 0; kk < nk; kk += 16) {
            const float *mp = mm + (size_t)tt * NNC_WINO_KB + (size_t)kk;
            __m512 m[6][6], s[4][6], o[4], res[4][4], bv;
            float sub[4][16];
            int nl = nk - kk < 16 ? nk - kk : 16;
            for (a = 0; a < 6; a++)
                for (b = 0; b < 6; b++) m[a][b] = _mm512_loadu_ps(mp + (size_t)(a * 6 + b) * xs);
            for (b = 0; b < 6; b++) {  /* s[.][b] = A^T m[.][b] */
                nnc_wino_at_avx512(&m[0][b], 6, o);
                for (a = 0; a < 4; a++) s[a][b] = o[a];
            }
            bv = j->bias ? _mm512_maskz_loadu_ps((__mmask16)((1u << nl) - 1u), j->bias + k0 + kk) : _mm512_setzero_ps();
            for (a = 0; a < 4; a++) {  /* res[a][.] = (s A)[a][.] + bias */
                nnc_wino_at_avx512(s[a], 1, o);
                for (b = 0; b < 4; b++) res[a][b] = _mm512_add_ps(o[b], bv);
            }
            for (a = 0; a < rows; a++) {  /* sub[l & 3][4 (l >> 2) + b] = res[a][b][l] */
                __m512 t0v = _mm512_unpacklo_ps(res[a][0], res[a][1]), t1v = _mm512_unpackhi_ps(res[a][0], res[a][1]);
                __m512 t2v = _mm512_unpacklo_ps(res[a][2], res[a][3]), t3v = _mm512_unpackhi_ps(res[a][2], res[a][3]);
                _mm512_storeu_ps(sub[0], _mm512_shuffle_ps(t0v, t2v, 0x44));
                _mm512_storeu_ps(sub[1], _mm512_shuffle_ps(t0v, t2v, 0xEE));
                _mm512_storeu_ps(sub[2], _mm512_shuffle_ps(t1v, t3v, 0x44));
                _mm512_storeu_ps(sub[3], _mm512_shuffle_ps(t1v, t3v, 0xEE));
                for (l = 0; l < nl; l++) {
                    int ko = k0 + kk + l;
                    size_t at = (size_t)ko * ohw + (size_t)(oy + a) * (size_t)j->ow + (size_t)ox;
                    __m128 v = _mm_loadu_ps(&sub[l & 3][(l >> 2) * 4]);
                    if (ri) v = _mm_add_ps(v, cols == 4 ? _mm_loadu_ps(ri + at) : _mm_maskload_ps(ri + at, cm));
                    if (j->act == NNC_ACT_RELU && ko < j->act_k) v = _mm_max_ps(_mm_setzero_ps(), v);  /* NaN stays */
                    if (cols == 4)
                        _mm_storeu_ps(yi + at, v);
                    else  /* a tile clipped by the right edge: only its columns in the map */
                        _mm_maskstore_ps(yi + at, cm, v);
                }
            }
        }
    }
}
#endif

#if NNC_X86
/* nnc_wino_at_avx512 on 8 channels. */
__attribute__((target("avx2,fma"), always_inline)) static inline void nnc_wino_at_avx2(const __m256 *m, int step,
                                                                                     __m256 o[4])
{
    __m256 m0 = m[0], m5 = m[5 * step], two = _mm256_set1_ps(2.0f), four = _mm256_set1_ps(4.0f);
    __m256 s12 = _mm256_add_ps(m[step], m[2 * step]), d12 = _mm256_sub_ps(m[step], m[2 * step]);
    __m256 s34 = _mm256_add_ps(m[3 * step], m[4 * step]), d34 = _mm256_sub_ps(m[3 * step], m[4 * step]);
    o[0] = _mm256_add_ps(_mm256_add_ps(m0, s12), s34);
    o[1] = _mm256_fmadd_ps(two, d34, d12);
    o[2] = _mm256_fmadd_ps(four, s34, s12);
    o[3] = _mm256_add_ps(_mm256_fmadd_ps(_mm256_set1_ps(8.0f), d34, d12), m5);
}

/* nnc_wino_output_avx512 with AVX2: 8 channels a vector. */
__attribute__((target("avx2,fma"))) static NNC_MAYBE_UNUSED void
nnc_wino_output_avx2(const nnc_wino_job *j, const float *mm, int t0, int nt, int k0, int nk)
{
    size_t ohw = (size_t)j->oh * (size_t)j->ow, xs = (size_t)(NNC_WINO_BLOCK * 8) * NNC_WINO_KB;
    int tt, kk, a, b, l, vec = j->act == NNC_ACT_NONE || j->act == NNC_ACT_RELU;
    for (tt = 0; tt < nt; tt++) {
        int t = t0 + tt, img = t / j->tpi, rem = t % j->tpi, oy = rem / j->tw * 4, ox = rem % j->tw * 4;
        float *yi = j->y + (size_t)img * j->ys;
        const float *ri = j->residual ? j->residual + (size_t)img * j->rs : NULL;
        int rows = j->oh - oy < 4 ? j->oh - oy : 4, cols = j->ow - ox < 4 ? j->ow - ox : 4;
        __m128i cm = _mm_cmpgt_epi32(_mm_set1_epi32(cols), _mm_setr_epi32(0, 1, 2, 3));
        if (!vec) {
            nnc_wino_output_c(j, mm + (size_t)tt * NNC_WINO_KB, t, 1, k0, nk);
            continue;
        }
        for (kk = 0; kk < nk; kk += 8) {
            const float *mp = mm + (size_t)tt * NNC_WINO_KB + (size_t)kk;
            __m256 m[6][6], s[4][6], o[4], res[4][4], bv = _mm256_setzero_ps();
            float sub[4][8];
            int nl = nk - kk < 8 ? nk - kk : 8;
            for (a = 0; a < 6; a++)
                for (b = 0; b < 6; b++) m[a][b] = _mm256_loadu_ps(mp + (size_t)(a * 6 + b) * xs);
            for (b = 0; b < 6; b++) {  /* s[.][b] = A^T m[.][b] */
                nnc_wino_at_avx2(&m[0][b], 6, o);
                for (a = 0; a < 4; a++) s[a][b] = o[a];
            }
            if (j->bias)
                bv = _mm256_maskload_ps(j->bias + k0 + kk, _mm256_cmpgt_epi32(_mm256_set1_epi32(nl),
                                                                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
            for (a = 0; a < 4; a++) {  /* res[a][.] = (s A)[a][.] + bias */
                nnc_wino_at_avx2(s[a], 1, o);
                for (b = 0; b < 4; b++) res[a][b] = _mm256_add_ps(o[b], bv);
            }
            for (a = 0; a < rows; a++) {  /* sub[l & 3][4 (l >> 2) + b] = res[a][b][l] */
                __m256 t0v = _mm256_unpacklo_ps(res[a][0], res[a][1]), t1v = _mm256_unpackhi_ps(res[a][0], res[a][1]);
                __m256 t2v = _mm256_unpacklo_ps(res[a][2], res[a][3]), t3v = _mm256_unpackhi_ps(res[a][2], res[a][3]);
                _mm256_storeu_ps(sub[0], _mm256_shuffle_ps(t0v, t2v, 0x44));
                _mm256_storeu_ps(sub[1], _mm256_shuffle_ps(t0v, t2v, 0xEE));
                _mm256_storeu_ps(sub[2], _mm256_shuffle_ps(t1v, t3v, 0x44));
                _mm256_storeu_ps(sub[3], _mm256_shuffle_ps(t1v, t3v, 0xEE));
                for (l = 0; l < nl; l++) {
                    int ko = k0 + kk + l;
                    size_t at = (size_t)ko * ohw + (size_t)(oy + a) * (size_t)j->ow + (size_t)ox;
                    __m128 v = _mm_loadu_ps(&sub[l & 3][(l >> 2) * 4]);
                    if (ri) v = _mm_add_ps(v, cols == 4 ? _mm_loadu_ps(ri + at) : _mm_maskload_ps(ri + at, cm));
                    if (j->act == NNC_ACT_RELU && ko < j->act_k) v = _mm_max_ps(_mm_setzero_ps(), v);  /* NaN stays */
                    if (cols == 4)
                        _mm_storeu_ps(yi + at, v);
                    else  /* a tile clipped by the right edge: only its columns in the map */
                        _mm_maskstore_ps(yi + at, cm, v);
                }
            }
        }
    }
}
#endif

/* The outputs of tiles [t0, t0+nt) and channels [k0, k0+nk): see nnc_wino_output_c. */
static NNC_MAYBE_UNUSED void nnc_wino_output(const nnc_wino_job *j, const float *mm, int t0, int nt, int k0, int nk)
{
#if NNC_X86
    if (j->isa == NNC_ISA_AVX512) {
        nnc_wino_output_avx512(j, mm, t0, nt, k0, nk);
        return;
    }
    if (j->isa == NNC_ISA_AVX2) {
        nnc_wino_output_avx2(j, mm, t0, nt, k0, nk);
        return;
    }
#endif
    nnc_wino_output_c(j, mm, t0, nt, k0, nk);
}

/* Lane l: a range of panels of tiles (l / klanes of lanes / klanes) and of
 * them a range of output channels, in units of 32 (l % klanes of klanes),
 * with its own scratch slot. Per block of NNC_WINO_BLOCK panels: V (all input
 * channels), then per chunk of output channels the 36 GEMMs into M and the
 * output transform. With less than a block of tiles per lane (small maps),
 * lanes share a range of tiles and each transforms its input again: a little
 * more work, but each streams its own part of U (nnc_conv2d_winograd). Each
 * output's arithmetic is the same whatever lane or block holds it. */
static NNC_MAYBE_UNUSED void nnc_wino_lane(void *arg, int l)
{
    const nnc_wino_job *j = (const nnc_wino_job *)arg;
    float *v = j->scratch + (size_t)l * nnc_wino_slot(j->c);
    float *mm = v + (size_t)NNC_WINO_XI * (NNC_WINO_BLOCK * 8) * (size_t)j->c;
    float bbuf[NNC_KC * NNC_NR_MAX];
    size_t plane = (size_t)j->c * (size_t)NNC_WINO_KP(j->k), vs = (size_t)NNC_WINO_BLOCK * 8 * (size_t)j->c;
    size_t ms = (size_t)(NNC_WINO_BLOCK * 8) * NNC_WINO_KB;
    int pl = j->lanes / j->klanes, li = l / j->klanes, kl = l % j->klanes, units = NNC_WINO_KP(j->k) / NNC_WINO_NP;
    int pb = (int)((long long)j->panels * li / pl), pe = (int)((long long)j->panels * (li + 1) / pl);
    int kbeg = units * kl / j->klanes * NNC_WINO_NP, kp = units * (kl + 1) / j->klanes * NNC_WINO_NP;
    int p0, k0, xi, kq, c0, q, s, p;
    for (p0 = pb; p0 < pe; p0 += NNC_WINO_BLOCK) {
        int np = pe - p0 < NNC_WINO_BLOCK ? pe - p0 : NNC_WINO_BLOCK;
        int t0 = p0 * 8, nt = j->tiles - t0 < np * 8 ? j->tiles - t0 : np * 8;
        nnc_wino_input(j, p0, np, v);
        for (k0 = kbeg; k0 < kp; k0 += NNC_WINO_KB) {
            int kb = kp - k0 < NNC_WINO_KB ? kp - k0 : NNC_WINO_KB;
            for (xi = 0; xi < NNC_WINO_XI; xi++)
                for (kq = k0; kq < k0 + kb; kq += NNC_WINO_NP)
                    for (c0 = 0; c0 < j->c; c0 += NNC_KC) {
                        int kc = j->c - c0 < NNC_KC ? j->c - c0 : NNC_KC;
                        const float *panel = j->u + (size_t)xi * plane + (size_t)kq * (size_t)j->c + (size_t)c0 * NNC_WINO_NP;
                        for (s = 0; s < NNC_WINO_NP; s += j->nr) {
                            const float *bp = panel;
                            if (j->nr != NNC_WINO_NP) {  /* a narrower micro-kernel: its half of the panel, contiguous */
                                for (p = 0; p < kc; p++)
                                    memcpy(bbuf + (size_t)p * (size_t)j->nr, panel + (size_t)p * NNC_WINO_NP + (size_t)s,
                                           (size_t)j->nr * sizeof(float));
                                bp = bbuf;
                            }
                            for (q = 0; q < np; q++)
                                j->kern(kc, v + (size_t)xi * vs + (size_t)q * 8 * (size_t)j->c + (size_t)c0 * 8, bp,
                                        mm + (size_t)xi * ms + (size_t)q * 8 * NNC_WINO_KB + (size_t)(kq - k0 + s),
                                        NNC_WINO_KB, NULL, c0 > 0);
                        }
                    }
            nnc_wino_output(j, mm, t0, nt, k0, j->k - k0 < kb ? j->k - k0 : kb);
        }
    }
}

/* nnc_conv2d_packed's arguments and contract for a 3x3, stride-1, undilated,
 * ungrouped convolution without prologue (the pass guarantees it; the
 * others are ignored), its weight transformed at create by
 * nnc_winograd_weights; scratch holds nnc_conv2d_winograd_scratch(c) floats.
 * The tiles of all samples are split into panels of 8 over up to
 * NNC_WINO_SLOTS lanes of the instance's threads, or, with few tiles, the
 * output channels are. */
static NNC_MAYBE_UNUSED void nnc_conv2d_winograd(const nnc_ctx *ctx, int n, const float *x, size_t xs, int c, int h,
                                                 int w, const float *u, const float *bias, float *y, size_t ys, int k,
                                                 int oh, int ow, int kh, int kw, int sh, int sw, int ph, int pw, int dh,
                                                 int dw, int groups, float *scratch, const float *residual, size_t rs,
                                                 int act, float slope, int act_k, const float *pscale,
                                                 const float *pshift, int pact, float pslope)
{
    nnc_wino_job j;
    int threads = ctx ? ctx->threads : 1, th = (oh + 3) / 4, pl;
    (void)kh, (void)kw, (void)sh, (void)sw, (void)dh, (void)dw, (void)groups;
    (void)pscale, (void)pshift, (void)pact, (void)pslope;
    if (n <= 0 || k <= 0) return;
    j.x = x, j.xs = xs, j.c = c, j.h = h, j.w = w, j.u = u, j.bias = bias, j.y = y, j.ys = ys, j.k = k;
    j.oh = oh, j.ow = ow, j.ph = ph, j.pw = pw, j.scratch = scratch, j.residual = residual, j.rs = rs;
    j.act = act, j.slope = slope, j.act_k = act_k;
    j.tw = (ow + 3) / 4, j.tpi = th * j.tw, j.tiles = n * j.tpi, j.panels = (j.tiles + 7) / 8;
    j.isa = ctx ? ctx->isa : nnc_cpu_isa();
    j.kern = nnc_ukernel_for(j.isa, &j.nr);
    j.lanes = threads < NNC_WINO_SLOTS ? threads : NNC_WINO_SLOTS;
    j.klanes = 1;
    if ((j.panels + NNC_WINO_BLOCK - 1) / NNC_WINO_BLOCK < j.lanes) {
        /* Fewer blocks of tiles than lanes: lanes splitting the tiles would
         * each stream all of U for part of a block (at 14x14, batch 1, both
         * threads read 9.4 MB for 8 tiles each, and 2 threads ran slower
         * than 1 with U cold). Split the output channels instead: each lane
         * streams its own part of U once per block, less than one U in all,
         * and transforms the whole input again (cheap by comparison). With
         * as many blocks as lanes (28x28: 7 panels, 2 lanes), the tile split
         * reads no more of U in all and transforms the input once. */
        int units = NNC_WINO_KP(k) / NNC_WINO_NP;
        j.klanes = j.lanes < units ? j.lanes : units;
    }
    pl = j.lanes / j.klanes;
    j.lanes = (pl < j.panels ? pl : j.panels) * j.klanes;
    nnc_parallel_work(ctx, (double)j.tiles * 36.0 * (double)c * (double)k, j.lanes, nnc_wino_lane, &j);
}
