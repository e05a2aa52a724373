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
    int nr;
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
static NNC_MAYBE_UNUSED void nnc_wino_input(const nnc_wino_job *j, int p0, int np, float *v)
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
static NNC_MAYBE_UNUSED void nnc_wino_output(const nnc_wino_job *j, const float *mm, int t0, int nt, int k0, int nk)
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

/* Lane l: a range of panels of tiles (l / klanes of lanes / klanes) and of
 * them a range of output channels, in units of 32 (l % klanes of klanes),
 * with its own scratch slot. Per block of NNC_WINO_BLOCK panels: V (all input
 * channels), then per chunk of output channels the 36 GEMMs into M and the
 * output transform. With fewer panels than lanes (small maps), lanes share a
 * range of tiles and each transforms its input again: a little more work,
 * but every thread busy. Each output's arithmetic is the same whatever lane
 * or block holds it. */
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
 * NNC_WINO_SLOTS lanes of the instance's threads. */
static NNC_MAYBE_UNUSED void nnc_conv2d_winograd(const nnc_ctx *ctx, int n, const float *x, size_t xs, int c, int h,
                                                 int w, const float *u, const float *bias, float *y, size_t ys, int k,
                                                 int oh, int ow, int kh, int kw, int sh, int sw, int ph, int pw, int dh,
                                                 int dw, int groups, float *scratch, const float *residual, size_t rs,
                                                 int act, float slope, int act_k, const float *pscale,
                                                 const float *pshift, int pact, float pslope)
{
    nnc_wino_job j;
    int threads = ctx ? ctx->threads : 1, th = (oh + 3) / 4;
    (void)kh, (void)kw, (void)sh, (void)sw, (void)dh, (void)dw, (void)groups;
    (void)pscale, (void)pshift, (void)pact, (void)pslope;
    if (n <= 0 || k <= 0) return;
    j.x = x, j.xs = xs, j.c = c, j.h = h, j.w = w, j.u = u, j.bias = bias, j.y = y, j.ys = ys, j.k = k;
    j.oh = oh, j.ow = ow, j.ph = ph, j.pw = pw, j.scratch = scratch, j.residual = residual, j.rs = rs;
    j.act = act, j.slope = slope, j.act_k = act_k;
    j.tw = (ow + 3) / 4, j.tpi = th * j.tw, j.tiles = n * j.tpi, j.panels = (j.tiles + 7) / 8;
    j.kern = nnc_ukernel_for(ctx ? ctx->isa : nnc_cpu_isa(), &j.nr);
    j.lanes = threads < NNC_WINO_SLOTS ? threads : NNC_WINO_SLOTS;
    j.klanes = 1;
    if (j.lanes > j.panels) {  /* too few tiles: split the output channels too, as far as they go */
        int units = NNC_WINO_KP(k) / NNC_WINO_NP, per = j.lanes / j.panels;
        j.klanes = per < units ? per : units;
        j.lanes = j.panels * j.klanes;
    }
    nnc_parallel_work(ctx, (double)j.tiles * 36.0 * (double)c * (double)k, j.lanes, nnc_wino_lane, &j);
}
