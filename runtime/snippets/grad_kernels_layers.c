/* grad_kernels_layers.c: training kernels (grad_kernels.c, whose top comment
 * gives the gradient convention and the file order): dx += dy and the bias
 * gradient, the backward of conv2d and conv_transpose2d (GEMMs over im2col
 * and col2im), linear, and max, average, global and adaptive pooling. */

/* @kernel grad_accumulate */
/* dx += dy: the backward of add (once per operand), copy, flatten and reshape,
 * and the sum of a fan-out. */
static NNC_MAYBE_UNUSED void nnc_grad_accumulate(size_t count, const float *dy, float *dx)
{
    size_t i;
    for (i = 0; i < count; i++) dx[i] += dy[i];
}

/* @kernel grad_bias needs: ctx */
typedef struct {
    const float *dy;
    float *db;
    int n, k;
    size_t inner;
} nnc_bias_bwd_job;

/* Channels 8t .. 8t+7 of nnc_bias_backward. Each channel is summed in double
 * over i, then p, as one loop per channel would (the same bits), but eight
 * channels go side by side, eight independent chains of additions instead of
 * one that waits on the adder's latency at every element; in the last group
 * of fewer than eight, the spare chains sum channel o again and are dropped. */
static NNC_MAYBE_UNUSED void nnc_bias_backward_task(void *arg, int t)
{
    const nnc_bias_bwd_job *jb = (const nnc_bias_bwd_job *)arg;
    int i, j, o = 8 * t, k = jb->k, nb = k - o < 8 ? k - o : 8;
    size_t p, inner = jb->inner;
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0, s4 = 0.0, s5 = 0.0, s6 = 0.0, s7 = 0.0, s[8];
    for (i = 0; i < jb->n; i++) {
        const float *d[8];
        for (j = 0; j < 8; j++) d[j] = jb->dy + ((size_t)i * (size_t)k + (size_t)(o + (j < nb ? j : 0))) * inner;
        for (p = 0; p < inner; p++) {
            s0 += d[0][p], s1 += d[1][p], s2 += d[2][p], s3 += d[3][p];
            s4 += d[4][p], s5 += d[5][p], s6 += d[6][p], s7 += d[7][p];
        }
    }
    s[0] = s0, s[1] = s1, s[2] = s2, s[3] = s3, s[4] = s4, s[5] = s5, s[6] = s6, s[7] = s7;
    for (j = 0; j < nb; j++) jb->db[o + j] += (float)s[j];
}

/* db[o] += sum of dy[i][o][0..inner) over the batch i: the bias gradient of
 * conv2d (inner = oh*ow), conv_transpose2d and linear (inner = 1). Tasks of
 * eight channels over ctx's threads (NULL: the caller's alone). */
static NNC_MAYBE_UNUSED void nnc_bias_backward(const nnc_ctx *ctx, int n, const float *dy, int k, size_t inner,
                                               float *db)
{
    nnc_bias_bwd_job j;
    j.dy = dy, j.db = db, j.n = n, j.k = k, j.inner = inner;
    nnc_parallel_work(ctx, 4.0 * n * (double)k * (double)inner, (k + 7) / 8, nnc_bias_backward_task, &j);
}

/* @kernel conv2d_backward needs: conv_mt conv_common grad_bias */
/* Samples one GEMM of nnc_conv2d_backward covers (nnc_conv_samples: enough
 * for NNC_CONV_COLS columns), whatever the batch, so the scratch a module
 * plans does not depend on it. */
static NNC_MAYBE_UNUSED int nnc_conv_backward_samples(int oh, int ow) { return nnc_conv_samples(1 << 30, oh * ow); }

/* Floats of scratch nnc_conv2d_backward needs: one im2col matrix of a block of
 * nnc_conv_backward_samples samples (one group), and beside it, when a block
 * has several samples, their output gradients gathered side by side. */
static NNC_MAYBE_UNUSED size_t nnc_conv2d_backward_scratch(int c, int k, int kh, int kw, int oh, int ow, int groups)
{
    size_t nb = (size_t)nnc_conv_backward_samples(oh, ow), cols = nb * (size_t)oh * (size_t)ow;
    return ((size_t)(c / groups) * (size_t)kh * (size_t)kw + (nb > 1 ? (size_t)(k / groups) : 0)) * cols;
}

/* The backward of nnc_conv2d without epilogue (the caller runs the activation's
 * backward first): per group and block of samples, with col = im2col(x) of the
 * block's samples side by side and dY their output gradients likewise,
 *   dW += dY * col^T,   dx += col2im(W^T * dY),   db += sum of dy over pixels.
 * x [n][c][h][w], wt [k][c/groups][kh][kw], dy [n][k][oh][ow]; dx, dwt, db
 * (same shapes as x, wt, bias) may each be NULL. The scratch is reused: first
 * for im2col(x), then for W^T * dY. With one sample a block (large maps), dY
 * is dy itself, and a 1x1, stride-1, unpadded convolution multiplies x and dy
 * directly (no scratch use). The GEMMs (nnc_sgemm_ctx), im2col and col2im
 * run over ctx's threads (NULL: the caller's alone). */
static NNC_MAYBE_UNUSED void nnc_conv2d_backward(const nnc_ctx *ctx, int n, const float *x, int c, int h, int w,
                                                 const float *wt, const float *dy, int k, int oh, int ow, int kh,
                                                 int kw, int sh, int sw, int ph, int pw, int dh, int dw, int groups,
                                                 float *dx, float *dwt, float *db, float *scratch)
{
    int cg = c / groups, kg = k / groups, nb = nnc_conv_backward_samples(oh, ow), i0, g;
    int kdim = cg * kh * kw, ohw = oh * ow;
    size_t hw = (size_t)h * (size_t)w, xs = (size_t)c * hw;
    int direct = nb == 1 && kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0 && oh == h && ow == w;
    if (db) nnc_bias_backward(ctx, n, dy, k, (size_t)ohw, db);
    if (!dx && !dwt) return;
    for (i0 = 0; i0 < n; i0 += nb) {
        int m = n - i0 < nb ? n - i0 : nb;  /* samples in this block */
        size_t ld = (size_t)m * (size_t)ohw;
        for (g = 0; g < groups; g++) {
            const float *wg = wt + (size_t)g * (size_t)kg * (size_t)kdim;
            const float *dyb = dy + ((size_t)i0 * (size_t)k + (size_t)g * (size_t)kg) * (size_t)ohw;
            const float *xg = x + (size_t)i0 * xs + (size_t)g * (size_t)cg * hw;
            float *cols = scratch, *dxg = dx ? dx + (size_t)i0 * xs + (size_t)g * (size_t)cg * hw : NULL;
            if (nb > 1) {  /* dY: the block's output gradients side by side, after the column matrix */
                float *d = scratch + (size_t)kdim * ld;
                nnc_blk_copy(ctx, 1, m, kg, d, ld, (float *)dyb, (size_t)k * (size_t)ohw, (size_t)ohw, NULL);
                dyb = d;
            }
            if (dwt) {
                if (direct) cols = (float *)xg;
                else nnc_im2col_mt(ctx, m, xg, xs, cg, h, w, scratch, ld, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw);
                nnc_sgemm_ctx(ctx, 0, 1, kg, kdim, (int)ld, 1.0f, dyb, (int)ld, cols, (int)ld, 1.0f,
                              dwt + (size_t)g * (size_t)kg * (size_t)kdim, kdim);
            }
            if (dx && direct) {
                nnc_sgemm_ctx(ctx, 1, 0, cg, ohw, kg, 1.0f, wg, kdim, dyb, ohw, 1.0f, dxg, ohw);
            } else if (dx) {
                nnc_sgemm_ctx(ctx, 1, 0, kdim, (int)ld, kg, 1.0f, wg, kdim, dyb, (int)ld, 0.0f, scratch, (int)ld);
                nnc_col2im_mt(ctx, m, scratch, ld, cg, oh, ow, dxg, xs, h, w, kh, kw, sh, sw, ph, pw, dh, dw);
            }
        }
    }
}

/* @kernel conv_transpose2d_backward needs: conv_mt conv_common grad_bias */
/* Floats of scratch nnc_conv_transpose2d_backward needs: one im2col matrix of dy
 * (one sample, one group), the size of the forward's column matrix. */
static NNC_MAYBE_UNUSED size_t nnc_conv_transpose2d_backward_scratch(int h, int w, int k, int kh, int kw,
                                                                     int groups)
{
    return (size_t)(k / groups) * (size_t)kh * (size_t)kw * (size_t)h * (size_t)w;
}

/* The backward of nnc_conv_transpose2d (y = bias + col2im(W^T * x)); im2col is
 * the adjoint of col2im, so per sample and group, with col = im2col(dy):
 *   dx += W * col,   dW += x * col^T,   db += sum of dy over pixels.
 * x [n][c][h][w], wt [c][k/groups][kh][kw], dy [n][k][oh][ow] (output padding
 * is already in oh, ow); dx, dwt, db may each be NULL. Over ctx's threads. */
static NNC_MAYBE_UNUSED void nnc_conv_transpose2d_backward(const nnc_ctx *ctx, int n, const float *x, int c, int h,
                                                           int w, const float *wt, const float *dy, int k, int oh,
                                                           int ow, int kh, int kw, int sh, int sw, int ph, int pw,
                                                           int dh, int dw, int groups, float *dx, float *dwt,
                                                           float *db, float *scratch)
{
    int cg = c / groups, kg = k / groups, i, g;
    int kdim = kg * kh * kw, hw = h * w;
    size_t ohw = (size_t)oh * (size_t)ow;
    if (db) nnc_bias_backward(ctx, n, dy, k, ohw, db);
    if (!dx && !dwt) return;
    for (i = 0; i < n; i++)
        for (g = 0; g < groups; g++) {
            size_t xoff = ((size_t)i * (size_t)c + (size_t)g * (size_t)cg) * (size_t)hw;
            const float *dyg = dy + ((size_t)i * (size_t)k + (size_t)g * (size_t)kg) * ohw;
            size_t woff = (size_t)g * (size_t)cg * (size_t)kdim;
            nnc_im2col_mt(ctx, 1, dyg, 0, kg, oh, ow, scratch, (size_t)hw, h, w, kh, kw, sh, sw, ph, pw, dh, dw);
            if (dx) nnc_sgemm_ctx(ctx, 0, 0, cg, hw, kdim, 1.0f, wt + woff, kdim, scratch, hw, 1.0f, dx + xoff, hw);
            if (dwt) nnc_sgemm_ctx(ctx, 0, 1, cg, kdim, hw, 1.0f, x + xoff, hw, scratch, hw, 1.0f, dwt + woff, kdim);
        }
}

/* @kernel linear_backward needs: sgemm_mt grad_bias */
/* The backward of nnc_linear without epilogue (y = x * W^T + b):
 *   dx[n][in] += dy * W,   dW[out][in] += dy^T * x,   db[out] += sum over n of dy.
 * dx, dwt, db may each be NULL. Over ctx's threads. */
static NNC_MAYBE_UNUSED void nnc_linear_backward(const nnc_ctx *ctx, int n, const float *x, int in, const float *wt,
                                                 const float *dy, int out, float *dx, float *dwt, float *db)
{
    if (dx) nnc_sgemm_ctx(ctx, 0, 0, n, in, out, 1.0f, dy, out, wt, in, 1.0f, dx, in);
    if (dwt) nnc_sgemm_ctx(ctx, 1, 0, out, in, n, 1.0f, dy, out, x, in, 1.0f, dwt, in);
    if (db) nnc_bias_backward(ctx, n, dy, out, 1, db);
}

/* @kernel maxpool2d_backward needs: ctx */
/* The plane index of the tap torch.nn.MaxPool2d picks in one window of xc[h][w]
 * whose top-left tap is (ys, xs): PyTorch's CPU kernel scans the window row by
 * row and takes a tap when (val > max || isnan(val)), so of equal maxima the
 * FIRST wins, of NaNs the last, and a window of -inf picks its first tap inside
 * the image. -1 when no tap is inside the image (PyTorch forbids that). */
static NNC_MAYBE_UNUSED long nnc_maxpool_argmax(const float *xc, int h, int w, int ys, int xs, int kh, int kw,
                                                int dh, int dw)
{
    float m = -INFINITY;
    long best = -1;
    int ki, kj;
    for (ki = 0; ki < kh; ki++) {
        int iy = ys + ki * dh;
        const float *row;
        if (iy < 0 || iy >= h) continue;
        row = xc + (size_t)iy * (size_t)w;
        for (kj = 0; kj < kw; kj++) {
            int ix = xs + kj * dw;
            if (ix < 0 || ix >= w) continue;
            if (best < 0 || row[ix] > m || row[ix] != row[ix]) {
                m = row[ix];
                best = (long)iy * w + ix;
            }
        }
    }
    return best;
}

/* dxc[at] += g for the tap `at` the window with top-left tap (ys, xs) picks
 * (nothing when no tap is inside the image). */
static NNC_MAYBE_UNUSED void nnc_maxpool_route(const float *xc, int h, int w, int ys, int xs, int kh, int kw, int dh,
                                               int dw, float g, float *dxc)
{
    long at = nnc_maxpool_argmax(xc, h, w, ys, xs, kh, kw, dh, dw);
    if (at >= 0) dxc[at] += g;
}

/* The backward of nnc_maxpool2d: each dy goes to the tap its window picked
 * (nnc_maxpool_argmax, recomputed from the forward's input x), output by
 * output in row-major order, so overlapping windows add in the same order.
 *
 * As nnc_maxpool2d does, the interior columns (windows wholly inside the row)
 * skip the bounds tests: per output row the window rows inside the image are
 * known ([k0, k1)), and the pick runs for 16 (or 8) input columns at a time, every
 * column the top-left tap of a window, in a loop of constant trip count that
 * gcc -O2 and clang vectorize; the strided output columns then route their
 * dy. Each column takes the first tap, then every later one that is greater
 * or NaN (the test of nnc_maxpool_argmax, as selects), so the picks are
 * nnc_maxpool_argmax's. Interiors shorter than 8 columns go window by
 * window with the same selects, border columns through nnc_maxpool_argmax.
 * The pragma keeps gcc -O3 from unrolling the selects into branches before
 * its vectorizer sees the loop (it then vectorizes as -O2 does); other
 * compilers ignore it or take it as meant. */
typedef struct {
    const float *x, *dy;
    float *dx;
    int h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw;
} nnc_maxpool_bwd_job;

/* The interior outputs [ox, ox1) of one output row of nnc_maxpool2d_backward
 * in blocks of SPAN input columns (see there): x0 and d0 are the first input
 * row inside the image and its dx row, last the interior's last window
 * column (at least SPAN - 1 past the first), nr the window rows inside.
 * Returns ox1. SPAN is a constant of each caller, so the loop over it has a
 * known trip count and vectorizes; 8 serves interiors of 8 to 15 columns,
 * which window by window took selects as branches (2x slower on LeNet-5's
 * second pool, ties of zeros after ReLU mispredicting). */
#define NNC_PRAGMA_UNROLL1 _Pragma("GCC unroll 1")
#define NNC_MAXPOOL_BWD_BLOCKS(NAME, SPAN)                                                                         \
    static NNC_MAYBE_UNUSED int NAME(const float *x0, float *d0, const float *dyr, int ox, int ox1, int last,      \
                                     int nr, int kw, int rstep, int sw, int pw, int dw)                           \
    {                                                                                                             \
        float m[SPAN];                                                                                            \
        int at[SPAN]; /* offset of the picked tap from the window's top-left tap inside */                       \
        int r, kj, q;                                                                                             \
        while (ox < ox1) {                                                                                        \
            int s = ox * sw - pw;                                                                                 \
            if (s > last - (SPAN - 1)) s = last - (SPAN - 1); /* the last block ends at the last window */        \
            for (q = 0; q < SPAN; q++) {                                                                          \
                m[q] = x0[s + q];                                                                                 \
                at[q] = 0;                                                                                        \
            }                                                                                                     \
            for (r = 0; r < nr; r++)                                                                              \
                for (kj = r ? 0 : 1; kj < kw; kj++) {                                                             \
                    int off = r * rstep + kj * dw;                                                                \
                    const float *p = x0 + s + off;                                                                \
                    NNC_PRAGMA_UNROLL1                                                                            \
                    for (q = 0; q < SPAN; q++) {                                                                  \
                        float v = p[q];                                                                           \
                        int take = (v > m[q]) | (v != v);                                                         \
                        m[q] = take ? v : m[q];                                                                   \
                        at[q] = take ? off : at[q];                                                               \
                    }                                                                                             \
                }                                                                                                 \
            for (; ox < ox1 && ox * sw - pw < s + SPAN; ox++) {                                                   \
                q = ox * sw - pw - s;                                                                             \
                d0[s + q + at[q]] += dyr[ox];                                                                     \
            }                                                                                                     \
        }                                                                                                         \
        return ox;                                                                                                \
    }
NNC_MAXPOOL_BWD_BLOCKS(nnc_maxpool_bwd_blocks16, 16)
NNC_MAXPOOL_BWD_BLOCKS(nnc_maxpool_bwd_blocks8, 8)

/* One plane (sample and channel) of nnc_maxpool2d_backward: a task. */
static NNC_MAYBE_UNUSED void nnc_maxpool2d_backward_task(void *arg, int pl)
{
    const nnc_maxpool_bwd_job *j = (const nnc_maxpool_bwd_job *)arg;
    const int h = j->h, w = j->w, oh = j->oh, ow = j->ow, kh = j->kh, kw = j->kw, sh = j->sh, sw = j->sw;
    const int ph = j->ph, pw = j->pw, dh = j->dh, dw = j->dw;
    size_t plane, hw = (size_t)h * (size_t)w, ohw = (size_t)oh * (size_t)ow;
    int ox0 = (pw + sw - 1) / sw, ox1 = w - 1 - (kw - 1) * dw + pw, rstep = dh * w;
    int oy, ox, r, kj;
    ox1 = ox1 < 0 ? 0 : ox1 / sw + 1;
    if (ox1 > ow) ox1 = ow;
    if (ox0 > ox1) ox0 = ox1;
    plane = (size_t)pl;
    {
        const float *xc = j->x + plane * hw, *dyc = j->dy + plane * ohw;
        float *dxc = j->dx + plane * hw;
        for (oy = 0; oy < oh; oy++) {
            int ty = oy * sh - ph, k0 = 0, k1 = kh, nr, first, last;
            const float *dyr = dyc + (size_t)oy * (size_t)ow, *x0;
            float *d0;
            while (k0 < kh && ty + k0 * dh < 0) k0++;
            while (k1 > k0 && ty + (k1 - 1) * dh >= h) k1--;
            nr = k1 - k0;
            if (nr <= 0) continue;  /* no window of this row has a tap inside */
            x0 = xc + (size_t)(ty + k0 * dh) * (size_t)w;  /* the first row inside */
            d0 = dxc + (size_t)(ty + k0 * dh) * (size_t)w;
            for (ox = 0; ox < ox0; ox++) nnc_maxpool_route(xc, h, w, ty, ox * sw - pw, kh, kw, dh, dw, dyr[ox], dxc);
            first = ox0 * sw - pw, last = (ox1 - 1) * sw - pw;  /* the interior's window columns */
            if (ox1 > ox0 && last - first + 1 >= 16)
                ox = nnc_maxpool_bwd_blocks16(x0, d0, dyr, ox, ox1, last, nr, kw, rstep, sw, pw, dw);
            else if (ox1 > ox0 && last - first + 1 >= 8)  /* LeNet-5's second pool: 9 window columns */
                ox = nnc_maxpool_bwd_blocks8(x0, d0, dyr, ox, ox1, last, nr, kw, rstep, sw, pw, dw);
            for (; ox < ox1; ox++) {  /* a short interior: window by window, still without bounds tests */
                const float *p = x0 + (ox * sw - pw);
                float mx = p[0];
                int a = 0;
                for (r = 0; r < nr; r++)
                    for (kj = r ? 0 : 1; kj < kw; kj++) {
                        int off = r * rstep + kj * dw, take = (p[off] > mx) | (p[off] != p[off]);
                        mx = take ? p[off] : mx;
                        a = take ? off : a;
                    }
                d0[ox * sw - pw + a] += dyr[ox];
            }
            for (; ox < ow; ox++) nnc_maxpool_route(xc, h, w, ty, ox * sw - pw, kh, kw, dh, dw, dyr[ox], dxc);
        }
    }
}

/* The backward of nnc_maxpool2d over ctx's threads (NULL: the caller's
 * alone), a task per plane: each writes its own plane of dx. */
static NNC_MAYBE_UNUSED void nnc_maxpool2d_backward(const nnc_ctx *ctx, int n, const float *x, int c, int h, int w,
                                                    const float *dy, int oh, int ow, int kh, int kw, int sh, int sw,
                                                    int ph, int pw, int dh, int dw, float *dx)
{
    nnc_maxpool_bwd_job j;
    j.x = x, j.dy = dy, j.dx = dx, j.h = h, j.w = w, j.oh = oh, j.ow = ow, j.kh = kh, j.kw = kw, j.sh = sh;
    j.sw = sw, j.ph = ph, j.pw = pw, j.dh = dh, j.dw = dw;
    nnc_parallel_work(ctx, NNC_PAR_COPY * (double)n * c * oh * ow * kh * kw, n * c, nnc_maxpool2d_backward_task, &j);
}

/* @kernel avgpool2d_backward */
/* The backward of nnc_avgpool2d: each dy, divided by its window's divisor (the
 * padded window cut at h+ph, w+pw, or only the pixels inside when
 * count_include_pad is 0, as the forward divides), is added to every pixel of
 * the window inside the image. */
static NNC_MAYBE_UNUSED void nnc_avgpool2d_backward(int n, const float *dy, int c, int h, int w, int oh, int ow,
                                                    int kh, int kw, int sh, int sw, int ph, int pw,
                                                    int count_include_pad, float *dx)
{
    size_t plane, hw = (size_t)h * (size_t)w, ohw = (size_t)oh * (size_t)ow;
    int oy, ox, iy, ix;
    for (plane = 0; plane < (size_t)n * (size_t)c; plane++) {
        const float *dyc = dy + plane * ohw;
        float *dxc = dx + plane * hw;
        for (oy = 0; oy < oh; oy++)
            for (ox = 0; ox < ow; ox++) {
                int ys = oy * sh - ph, xs = ox * sw - pw;
                int ye = ys + kh < h + ph ? ys + kh : h + ph;
                int xe = xs + kw < w + pw ? xs + kw : w + pw;
                int pool = (ye - ys) * (xe - xs);
                float g;
                if (ys < 0) ys = 0;
                if (xs < 0) xs = 0;
                if (ye > h) ye = h;
                if (xe > w) xe = w;
                if (ye <= ys || xe <= xs) continue;
                g = dyc[(size_t)oy * (size_t)ow + (size_t)ox] /
                    (float)(count_include_pad ? pool : (ye - ys) * (xe - xs));
                for (iy = ys; iy < ye; iy++)
                    for (ix = xs; ix < xe; ix++) dxc[(size_t)iy * (size_t)w + (size_t)ix] += g;
            }
    }
}

/* @kernel global_avgpool_backward */
/* The backward of nnc_global_avgpool: dx[n][c][p] += dy[n][c] / hw. */
static NNC_MAYBE_UNUSED void nnc_global_avgpool_backward(int n, const float *dy, int c, long hw, float *dx)
{
    size_t plane;
    long p;
    for (plane = 0; plane < (size_t)n * (size_t)c; plane++) {
        float g = dy[plane] / (float)hw;
        float *dxc = dx + plane * (size_t)hw;
        for (p = 0; p < hw; p++) dxc[p] += g;
    }
}

/* @kernel adaptive_avgpool2d_backward */
/* The backward of nnc_adaptive_avgpool2d: each dy, divided by its cell's area,
 * is added to every pixel of the cell (cells may overlap; their shares add). */
static NNC_MAYBE_UNUSED void nnc_adaptive_avgpool2d_backward(int n, const float *dy, int c, int h, int w, int oh,
                                                             int ow, float *dx)
{
    size_t plane;
    int i, j, r, q;
    for (plane = 0; plane < (size_t)n * (size_t)c; plane++) {
        float *dxc = dx + plane * (size_t)h * (size_t)w;
        const float *dyc = dy + plane * (size_t)oh * (size_t)ow;
        for (i = 0; i < oh; i++) {
            int r0 = (int)((long)i * h / oh), r1 = (int)(((long)(i + 1) * h + oh - 1) / oh);
            for (j = 0; j < ow; j++) {
                int q0 = (int)((long)j * w / ow), q1 = (int)(((long)(j + 1) * w + ow - 1) / ow);
                float g = dyc[(size_t)i * (size_t)ow + (size_t)j] / (float)((r1 - r0) * (q1 - q0));
                for (r = r0; r < r1; r++)
                    for (q = q0; q < q1; q++) dxc[(size_t)r * (size_t)w + (size_t)q] += g;
            }
        }
    }
}

