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

static NNC_MAYBE_UNUSED void nnc_bias_backward_task(void *arg, int o)
{
    const nnc_bias_bwd_job *j = (const nnc_bias_bwd_job *)arg;
    double s = 0.0;
    size_t p;
    int i;
    for (i = 0; i < j->n; i++) {
        const float *d = j->dy + ((size_t)i * (size_t)j->k + (size_t)o) * j->inner;
        for (p = 0; p < j->inner; p++) s += d[p];
    }
    j->db[o] += (float)s;
}

/* db[o] += sum of dy[i][o][0..inner) over the batch i: the bias gradient of
 * conv2d (inner = oh*ow), conv_transpose2d and linear (inner = 1). A task per
 * channel over ctx's threads (NULL: the caller's alone). */
static NNC_MAYBE_UNUSED void nnc_bias_backward(const nnc_ctx *ctx, int n, const float *dy, int k, size_t inner,
                                               float *db)
{
    nnc_bias_bwd_job j;
    j.dy = dy, j.db = db, j.n = n, j.k = k, j.inner = inner;
    nnc_parallel_work(ctx, 4.0 * n * (double)k * (double)inner, k, nnc_bias_backward_task, &j);
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

/* Planes [p0, p1) of nnc_maxpool2d_backward. */
typedef struct {
    const float *x, *dy;
    float *dx;
    int h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw;
} nnc_maxpool_bwd_job;

static NNC_MAYBE_UNUSED void nnc_maxpool2d_backward_task(void *arg, int plane)
{
    const nnc_maxpool_bwd_job *j = (const nnc_maxpool_bwd_job *)arg;
    size_t hw = (size_t)j->h * (size_t)j->w, ohw = (size_t)j->oh * (size_t)j->ow;
    const float *xc = j->x + (size_t)plane * hw, *dyc = j->dy + (size_t)plane * ohw;
    float *dxc = j->dx + (size_t)plane * hw;
    int oy, ox, ki, kj;
    for (oy = 0; oy < j->oh; oy++)
        for (ox = 0; ox < j->ow; ox++) {
            int ys = oy * j->sh - j->ph, xs = ox * j->sw - j->pw;
            long at;
            if (ys >= 0 && xs >= 0 && ys + (j->kh - 1) * j->dh < j->h && xs + (j->kw - 1) * j->dw < j->w) {
                /* the window inside the image: nnc_maxpool_argmax's scan without its bounds tests */
                const float *win = xc + (size_t)ys * (size_t)j->w + (size_t)xs;
                float m = win[0];
                long best = 0;
                for (ki = 0; ki < j->kh; ki++)
                    for (kj = ki == 0; kj < j->kw; kj++) {
                        long off = (long)ki * j->dh * j->w + (long)kj * j->dw;
                        float v = win[off];
                        if (v > m || v != v) m = v, best = off;
                    }
                at = (long)ys * j->w + xs + best;
            } else {
                at = nnc_maxpool_argmax(xc, j->h, j->w, ys, xs, j->kh, j->kw, j->dh, j->dw);
            }
            if (at >= 0) dxc[at] += dyc[(size_t)oy * (size_t)j->ow + (size_t)ox];
        }
}

/* The backward of nnc_maxpool2d: each dy goes to the tap its window picked
 * (nnc_maxpool_argmax, recomputed from the forward's input x). A task per
 * plane (sample and channel), over ctx's threads: each writes its own plane. */
static NNC_MAYBE_UNUSED void nnc_maxpool2d_backward(const nnc_ctx *ctx, int n, const float *x, int c, int h, int w,
                                                    const float *dy, int oh, int ow, int kh, int kw, int sh, int sw,
                                                    int ph, int pw, int dh, int dw, float *dx)
{
    nnc_maxpool_bwd_job j;
    j.x = x, j.dy = dy, j.dx = dx, j.h = h, j.w = w, j.oh = oh, j.ow = ow, j.kh = kh, j.kw = kw, j.sh = sh;
    j.sw = sw, j.ph = ph, j.pw = pw, j.dh = dh, j.dw = dw;
    nnc_parallel_work(ctx, (double)n * c * oh * ow * kh * kw, n * c, nnc_maxpool2d_backward_task, &j);
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

