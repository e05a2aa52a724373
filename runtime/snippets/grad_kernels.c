/* grad_kernels.c: the training kernels nnc pastes into generated training code:
 * forward passes that differ in training mode (batchnorm with batch
 * statistics, dropout), the backward pass of every differentiable op, and the
 * losses.
 *
 * Format and rules are those of kernels.c (read its top comment): sections
 * open with a marker line "slash-star @kernel NAME [needs: DEPS] star-slash",
 * C99, static NNC_MAYBE_UNUSED functions only, no global mutable state, no
 * exit/printing/allocation, no VLAs, size_t offsets for batch-sized tensors,
 * warning-free with and without NNC_USE_CBLAS. This file is pasted AFTER
 * kernels.c, as if it were its continuation: its sections may need any
 * kernels.c section (gemm, conv_common, conv2d for nnc_im2col,
 * conv_transpose2d for nnc_col2im, ...), and names are one namespace across
 * both files. The code generator must therefore select sections from the two
 * texts as from one file, kernels.c first, and keep "prologue" (which this
 * file relies on: math.h, string.h, stddef.h, NNC_MAYBE_UNUSED).
 *
 * Semantics are PyTorch autograd's, fp32, NCHW, PyTorch parameter layouts.
 *
 * THE GRADIENT CONVENTION: every gradient output ACCUMULATES, dx += ...,
 * dw += ..., db += ..., dlogits += ... (a tensor read by several nodes gets
 * the sum of their contributions, as autograd's fan-out does). The training
 * step zeroes every gradient buffer before the backward pass. A gradient
 * pointer that is NULL is not wanted and not computed (the first layer's dx,
 * a layer without bias's db, frozen parameters). Forward results (y, the
 * saved batch statistics, the running statistics, the losses) are stored,
 * not accumulated. A gradient buffer must not alias any input of the kernel.
 *
 * tests/unit/test_grad_kernels.c checks every backward against central finite
 * differences of a double-precision reference forward and compiles every
 * section in isolation (with its needs from both files). */

/* @kernel grad_accumulate */
/* dx += dy: the backward of add (once per operand), copy, flatten and reshape,
 * and the sum of a fan-out. */
static NNC_MAYBE_UNUSED void nnc_grad_accumulate(size_t count, const float *dy, float *dx)
{
    size_t i;
    for (i = 0; i < count; i++) dx[i] += dy[i];
}

/* @kernel grad_bias */
/* db[o] += sum of dy[i][o][0..inner) over the batch i: the bias gradient of
 * conv2d (inner = oh*ow), conv_transpose2d and linear (inner = 1). */
static NNC_MAYBE_UNUSED void nnc_bias_backward(int n, const float *dy, int k, size_t inner, float *db)
{
    int i, o;
    size_t p;
    for (o = 0; o < k; o++) {
        double s = 0.0;
        for (i = 0; i < n; i++) {
            const float *d = dy + ((size_t)i * (size_t)k + (size_t)o) * inner;
            for (p = 0; p < inner; p++) s += d[p];
        }
        db[o] += (float)s;
    }
}

/* @kernel conv2d_backward needs: gemm conv_common conv2d conv_transpose2d grad_bias */
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
 * directly (no scratch use). */
static NNC_MAYBE_UNUSED void nnc_conv2d_backward(int n, const float *x, int c, int h, int w, const float *wt,
                                                 const float *dy, int k, int oh, int ow, int kh, int kw, int sh,
                                                 int sw, int ph, int pw, int dh, int dw, int groups, float *dx,
                                                 float *dwt, float *db, float *scratch)
{
    int cg = c / groups, kg = k / groups, nb = nnc_conv_backward_samples(oh, ow), i0, j, g, o;
    int kdim = cg * kh * kw, ohw = oh * ow;
    size_t hw = (size_t)h * (size_t)w;
    int direct = nb == 1 && kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0 && oh == h && ow == w;
    if (db) nnc_bias_backward(n, dy, k, (size_t)ohw, db);
    if (!dx && !dwt) return;
    for (i0 = 0; i0 < n; i0 += nb) {
        int m = n - i0 < nb ? n - i0 : nb;  /* samples in this block */
        size_t ld = (size_t)m * (size_t)ohw;
        for (g = 0; g < groups; g++) {
            const float *wg = wt + (size_t)g * (size_t)kg * (size_t)kdim;
            const float *dyb = dy + ((size_t)i0 * (size_t)k + (size_t)g * (size_t)kg) * (size_t)ohw;
            float *cols = scratch;
            if (nb > 1) {  /* dY: the block's output gradients side by side, after the column matrix */
                float *d = scratch + (size_t)kdim * ld;
                for (o = 0; o < kg; o++)
                    for (j = 0; j < m; j++)
                        memcpy(d + (size_t)o * ld + (size_t)j * (size_t)ohw,
                               dyb + ((size_t)j * (size_t)k + (size_t)o) * (size_t)ohw, (size_t)ohw * sizeof(float));
                dyb = d;
            }
            if (dwt) {
                if (direct) cols = (float *)(x + ((size_t)i0 * (size_t)c + (size_t)g * (size_t)cg) * hw);
                else
                    for (j = 0; j < m; j++)
                        nnc_im2col(x + ((size_t)(i0 + j) * (size_t)c + (size_t)g * (size_t)cg) * hw, cg, h, w,
                                   scratch + (size_t)j * (size_t)ohw, ld, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw);
                nnc_sgemm(0, 1, kg, kdim, (int)ld, 1.0f, dyb, (int)ld, cols, (int)ld, 1.0f,
                          dwt + (size_t)g * (size_t)kg * (size_t)kdim, kdim);
            }
            if (dx && direct) {
                nnc_sgemm(1, 0, cg, ohw, kg, 1.0f, wg, kdim, dyb, ohw, 1.0f,
                          dx + ((size_t)i0 * (size_t)c + (size_t)g * (size_t)cg) * hw, ohw);
            } else if (dx) {
                nnc_sgemm(1, 0, kdim, (int)ld, kg, 1.0f, wg, kdim, dyb, (int)ld, 0.0f, scratch, (int)ld);
                for (j = 0; j < m; j++)
                    nnc_col2im(scratch + (size_t)j * (size_t)ohw, ld, cg, oh, ow,
                               dx + ((size_t)(i0 + j) * (size_t)c + (size_t)g * (size_t)cg) * hw, h, w, kh, kw, sh,
                               sw, ph, pw, dh, dw);
            }
        }
    }
}

/* @kernel conv_transpose2d_backward needs: gemm conv_common conv2d grad_bias */
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
 * is already in oh, ow); dx, dwt, db may each be NULL. */
static NNC_MAYBE_UNUSED void nnc_conv_transpose2d_backward(int n, const float *x, int c, int h, int w,
                                                           const float *wt, const float *dy, int k, int oh,
                                                           int ow, int kh, int kw, int sh, int sw, int ph, int pw,
                                                           int dh, int dw, int groups, float *dx, float *dwt,
                                                           float *db, float *scratch)
{
    int cg = c / groups, kg = k / groups, i, g;
    int kdim = kg * kh * kw, hw = h * w;
    size_t ohw = (size_t)oh * (size_t)ow;
    if (db) nnc_bias_backward(n, dy, k, ohw, db);
    if (!dx && !dwt) return;
    for (i = 0; i < n; i++)
        for (g = 0; g < groups; g++) {
            size_t xoff = ((size_t)i * (size_t)c + (size_t)g * (size_t)cg) * (size_t)hw;
            const float *dyg = dy + ((size_t)i * (size_t)k + (size_t)g * (size_t)kg) * ohw;
            size_t woff = (size_t)g * (size_t)cg * (size_t)kdim;
            nnc_im2col(dyg, kg, oh, ow, scratch, (size_t)hw, h, w, kh, kw, sh, sw, ph, pw, dh, dw);
            if (dx) nnc_sgemm(0, 0, cg, hw, kdim, 1.0f, wt + woff, kdim, scratch, hw, 1.0f, dx + xoff, hw);
            if (dwt) nnc_sgemm(0, 1, cg, kdim, hw, 1.0f, x + xoff, hw, scratch, hw, 1.0f, dwt + woff, kdim);
        }
}

/* @kernel linear_backward needs: gemm grad_bias */
/* The backward of nnc_linear without epilogue (y = x * W^T + b):
 *   dx[n][in] += dy * W,   dW[out][in] += dy^T * x,   db[out] += sum over n of dy.
 * dx, dwt, db may each be NULL. */
static NNC_MAYBE_UNUSED void nnc_linear_backward(int n, const float *x, int in, const float *wt, const float *dy,
                                                 int out, float *dx, float *dwt, float *db)
{
    if (dx) nnc_sgemm(0, 0, n, in, out, 1.0f, dy, out, wt, in, 1.0f, dx, in);
    if (dwt) nnc_sgemm(1, 0, out, in, n, 1.0f, dy, out, x, in, 1.0f, dwt, in);
    if (db) nnc_bias_backward(n, dy, out, 1, db);
}

/* @kernel maxpool2d_backward */
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

/* The backward of nnc_maxpool2d: each dy goes to the tap its window picked
 * (nnc_maxpool_argmax, recomputed from the forward's input x). */
static NNC_MAYBE_UNUSED void nnc_maxpool2d_backward(int n, const float *x, int c, int h, int w, const float *dy,
                                                    int oh, int ow, int kh, int kw, int sh, int sw, int ph, int pw,
                                                    int dh, int dw, float *dx)
{
    size_t plane, hw = (size_t)h * (size_t)w, ohw = (size_t)oh * (size_t)ow;
    int oy, ox;
    for (plane = 0; plane < (size_t)n * (size_t)c; plane++) {
        const float *xc = x + plane * hw, *dyc = dy + plane * ohw;
        float *dxc = dx + plane * hw;
        for (oy = 0; oy < oh; oy++)
            for (ox = 0; ox < ow; ox++) {
                long at = nnc_maxpool_argmax(xc, h, w, oy * sh - ph, ox * sw - pw, kh, kw, dh, dw);
                if (at >= 0) dxc[at] += dyc[(size_t)oy * (size_t)ow + (size_t)ox];
            }
    }
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

/* @kernel batchnorm_train */
/* torch.nn.BatchNorm1d/2d in training mode, x [n][c][hw] (BatchNorm1d on [n][c]:
 * hw = 1). Per channel, over the m = n*hw values: mean, the biased variance
 * var, invstd = 1/sqrt(var + eps), and y = (x - mean)*invstd*gamma + beta
 * (gamma/beta NULL: affine=False). save_mean and save_invstd [c] receive mean
 * and invstd for nnc_batchnorm_backward. running_mean/running_var (NULL:
 * track_running_stats=False) are updated as PyTorch does with a float momentum:
 *   running_mean = (1 - momentum)*running_mean + momentum*mean,
 *   running_var  = (1 - momentum)*running_var  + momentum*var*m/(m - 1)
 * (the UNBIASED variance; PyTorch refuses m == 1, here the biased one is used
 * then). Statistics are summed in double. y may equal x only if the backward
 * does not need x afterwards (nnc_batchnorm_backward reads x). */
static NNC_MAYBE_UNUSED void nnc_batchnorm_train(int n, const float *x, int c, long hw, const float *gamma,
                                                 const float *beta, float eps, float momentum, float *running_mean,
                                                 float *running_var, float *y, float *save_mean,
                                                 float *save_invstd)
{
    int i, ch;
    long p;
    double m = (double)n * (double)hw;
    for (ch = 0; ch < c; ch++) {
        double s = 0.0, ss = 0.0, mean, var;
        float invstd, scale, shift;
        for (i = 0; i < n; i++) {
            const float *xc = x + ((size_t)i * (size_t)c + (size_t)ch) * (size_t)hw;
            for (p = 0; p < hw; p++) s += xc[p];
        }
        mean = m > 0.0 ? s / m : 0.0;
        for (i = 0; i < n; i++) {
            const float *xc = x + ((size_t)i * (size_t)c + (size_t)ch) * (size_t)hw;
            for (p = 0; p < hw; p++) ss += ((double)xc[p] - mean) * ((double)xc[p] - mean);
        }
        var = m > 0.0 ? ss / m : 0.0;
        invstd = (float)(1.0 / sqrt(var + (double)eps));
        save_mean[ch] = (float)mean;
        save_invstd[ch] = invstd;
        if (running_mean) running_mean[ch] = (1.0f - momentum) * running_mean[ch] + momentum * (float)mean;
        if (running_var)
            running_var[ch] = (1.0f - momentum) * running_var[ch] + momentum * (float)(m > 1.0 ? ss / (m - 1.0) : var);
        scale = (gamma ? gamma[ch] : 1.0f) * invstd;
        shift = (beta ? beta[ch] : 0.0f) - (float)mean * scale;
        for (i = 0; i < n; i++) {
            size_t base = ((size_t)i * (size_t)c + (size_t)ch) * (size_t)hw;
            for (p = 0; p < hw; p++) y[base + (size_t)p] = x[base + (size_t)p] * scale + shift;
        }
    }
}

/* The gradient at the activation's input, from its output y and the gradient dy there. */
static NNC_MAYBE_UNUSED float nnc_act_grad(float y, float dy, int act, float slope)
{
    switch (act) {
    case NNC_ACT_RELU: return y <= 0.0f ? 0.0f : dy;
    case NNC_ACT_RELU6: return (y <= 0.0f || y >= 6.0f) ? 0.0f : dy;
    case NNC_ACT_LEAKY_RELU: return y > 0.0f ? dy : slope * dy;  /* slope > 0: y > 0 exactly when x > 0 */
    case NNC_ACT_SIGMOID: return dy * (y * (1.0f - y));
    case NNC_ACT_TANH: return dy * (1.0f - y * y);
    default: return dy;
    }
}

/* The backward of act(nnc_batchnorm_train(x)) in one pass per channel: as
 * nnc_batchnorm_backward below with dy replaced by the activation's backward,
 * act'(y) dy, recomputed per element from the activation's output y (never
 * stored). y NULL with NNC_ACT_NONE: batchnorm alone. */
static NNC_MAYBE_UNUSED void nnc_batchnorm_act_backward(int n, const float *x, int c, long hw, const float *gamma,
                                                        const float *mean, const float *invstd, const float *y,
                                                        const float *dy, int act, float slope, float *dx,
                                                        float *dgamma, float *dbeta)
{
    int i, ch;
    long p;
    double m = (double)n * (double)hw;
    for (ch = 0; ch < c; ch++) {
        double sdy = 0.0, sdyx = 0.0;
        float mu = mean[ch], is = invstd[ch], a, k1, k2;
        for (i = 0; i < n; i++) {
            size_t base = ((size_t)i * (size_t)c + (size_t)ch) * (size_t)hw;
            for (p = 0; p < hw; p++) {
                double g = y ? nnc_act_grad(y[base + (size_t)p], dy[base + (size_t)p], act, slope)
                             : dy[base + (size_t)p];
                sdy += g;
                sdyx += g * ((double)x[base + (size_t)p] - mu) * is;
            }
        }
        if (dbeta) dbeta[ch] += (float)sdy;
        if (dgamma) dgamma[ch] += (float)sdyx;
        if (!dx || m <= 0.0) continue;
        a = (gamma ? gamma[ch] : 1.0f) * is;
        k1 = (float)(sdy / m);
        k2 = (float)(sdyx / m);
        for (i = 0; i < n; i++) {
            size_t base = ((size_t)i * (size_t)c + (size_t)ch) * (size_t)hw;
            for (p = 0; p < hw; p++) {
                float xhat = (x[base + (size_t)p] - mu) * is;
                float g = y ? nnc_act_grad(y[base + (size_t)p], dy[base + (size_t)p], act, slope)
                            : dy[base + (size_t)p];
                dx[base + (size_t)p] += a * (g - k1 - xhat * k2);
            }
        }
    }
}

/* The backward of nnc_batchnorm_train (batch statistics depend on x), per
 * channel with xhat = (x - mean)*invstd and sums over the m = n*hw values:
 *   dbeta += sum dy,   dgamma += sum dy*xhat,
 *   dx += gamma*invstd * (dy - sum dy/m - xhat * sum(dy*xhat)/m).
 * mean, invstd are the forward's save_mean, save_invstd; gamma NULL means 1;
 * dx, dgamma, dbeta may each be NULL. */
static NNC_MAYBE_UNUSED void nnc_batchnorm_backward(int n, const float *x, int c, long hw, const float *gamma,
                                                    const float *mean, const float *invstd, const float *dy,
                                                    float *dx, float *dgamma, float *dbeta)
{
    nnc_batchnorm_act_backward(n, x, c, hw, gamma, mean, invstd, NULL, dy, NNC_ACT_NONE, 0.0f, dx, dgamma, dbeta);
}

/* @kernel bn_train_fused needs: conv2d batchnorm_train epilogue */
/* Training-mode conv -> batchnorm -> activation with fewer passes over memory
 * (codegen/emit_train.c uses them when the conv's output feeds only the
 * batchnorm, and the batchnorm's only the activation):
 *
 *   nnc_conv2d_stats        the convolution, a block of samples at a time
 *                           (nnc_conv2d_block; scratch: nnc_conv2d_scratch(n,
 *                           ...)), then, per sample while its output is still
 *                           in cache, the per-channel sum and sum of squares
 *                           batchnorm needs (stats: 2*k doubles, accumulated,
 *                           zero them first);
 *   nnc_batchnorm_act_train mean = sum/m, var = sumsq/m - mean^2 (in double, so
 *                           the cancellation costs about 1e-16 * E[x^2]/var),
 *                           running averages as nnc_batchnorm_train, and
 *                           y = act(x * scale + shift) in one pass: the
 *                           batchnorm's own output never exists;
 *   nnc_batchnorm_act_backward  (section batchnorm_train, which the plain
 *                           backward shares) the activation's backward folded
 *                           into batchnorm's: the gradient between the two is
 *                           recomputed per element, never stored.
 * Unfused, the same chain reads the conv output three times, writes it twice,
 * and stores one more gradient tensor. */
static NNC_MAYBE_UNUSED void nnc_conv2d_stats(int n, const float *x, int c, int h, int w, const float *wt,
                                              const float *bias, float *y, int k, int oh, int ow, int kh, int kw,
                                              int sh, int sw, int ph, int pw, int dh, int dw, int groups,
                                              float *scratch, double *stats)
{
    size_t xs = (size_t)c * (size_t)h * (size_t)w, ohw = (size_t)oh * (size_t)ow, ys = (size_t)k * ohw, p;
    int nb = nnc_conv2d_block(n, c, kh, kw, sh, sw, ph, pw, oh, ow, groups, 0), i, ch;
    for (i = 0; i < n; i++) {
        float *yi = y + (size_t)i * ys;
        if (i % nb == 0)  /* the next block of samples (nnc_conv2d's own blocks: one GEMM each) */
            nnc_conv2d(n - i < nb ? n - i : nb, x + (size_t)i * xs, xs, c, h, w, wt, bias, yi, ys, k, oh, ow, kh, kw,
                       sh, sw, ph, pw, dh, dw, groups, scratch, NULL, 0, NNC_ACT_NONE, 0.0f, k, NULL, NULL,
                       NNC_ACT_NONE, 0.0f);
        for (ch = 0; ch < k; ch++) {
            const float *yc = yi + (size_t)ch * ohw;
            double s = 0.0, ss = 0.0;
            for (p = 0; p < ohw; p++) {
                double v = yc[p];
                s += v;
                ss += v * v;
            }
            stats[2 * ch] += s;
            stats[2 * ch + 1] += ss;
        }
    }
}

static NNC_MAYBE_UNUSED void nnc_batchnorm_act_train(int n, const float *x, int c, long hw, const double *stats,
                                                     const float *gamma, const float *beta, float eps,
                                                     float momentum, float *running_mean, float *running_var,
                                                     float *y, float *save_mean, float *save_invstd, int act,
                                                     float slope)
{
    int i, ch;
    double m = (double)n * (double)hw;
    for (ch = 0; ch < c; ch++) {
        double mean = m > 0.0 ? stats[2 * ch] / m : 0.0;
        double var = m > 0.0 ? stats[2 * ch + 1] / m - mean * mean : 0.0;
        float invstd, scale, shift;
        if (var < 0.0) var = 0.0;  /* rounding of sumsq/m - mean^2 */
        invstd = (float)(1.0 / sqrt(var + (double)eps));
        save_mean[ch] = (float)mean;
        save_invstd[ch] = invstd;
        if (running_mean) running_mean[ch] = (1.0f - momentum) * running_mean[ch] + momentum * (float)mean;
        if (running_var)
            running_var[ch] = (1.0f - momentum) * running_var[ch] + momentum * (float)(m > 1.0 ? var * m / (m - 1.0) : var);
        scale = (gamma ? gamma[ch] : 1.0f) * invstd;
        shift = (beta ? beta[ch] : 0.0f) - (float)mean * scale;
        for (i = 0; i < n; i++) {
            size_t base = ((size_t)i * (size_t)c + (size_t)ch) * (size_t)hw;
            long p;
            for (p = 0; p < hw; p++) y[base + (size_t)p] = x[base + (size_t)p] * scale + shift;
            nnc_epilogue(y + base, (size_t)hw, NULL, act, slope);
        }
    }
}


/* The activation's backward then batchnorm's in inference mode, in one pass:
 * dx += act'(y) dy * gamma / sqrt(running_var + eps). */
static NNC_MAYBE_UNUSED void nnc_batchnorm_act_eval_backward(int n, int c, long hw, const float *gamma,
                                                             const float *running_var, float eps, const float *y,
                                                             const float *dy, int act, float slope, float *dx)
{
    int i, ch;
    long p;
    for (i = 0; i < n; i++)
        for (ch = 0; ch < c; ch++) {
            size_t base = ((size_t)i * (size_t)c + (size_t)ch) * (size_t)hw;
            float a = (gamma ? gamma[ch] : 1.0f) / sqrtf(running_var[ch] + eps);
            for (p = 0; p < hw; p++)
                dx[base + (size_t)p] += nnc_act_grad(y[base + (size_t)p], dy[base + (size_t)p], act, slope) * a;
        }
}

/* @kernel batchnorm_eval_backward */
/* The backward of batchnorm in inference mode (nnc_batchnorm: running
 * statistics, an affine map per channel) with respect to its input:
 *   dx += dy * gamma / sqrt(running_var + eps)    (gamma NULL: 1).
 * For gradients with respect to a network's input (adversarial examples,
 * style transfer) taken with the network in inference mode. */
static NNC_MAYBE_UNUSED void nnc_batchnorm_eval_backward(int n, const float *dy, int c, long hw, const float *gamma,
                                                         const float *running_var, float eps, float *dx)
{
    int i, ch;
    long p;
    for (i = 0; i < n; i++)
        for (ch = 0; ch < c; ch++) {
            size_t base = ((size_t)i * (size_t)c + (size_t)ch) * (size_t)hw;
            float a = (gamma ? gamma[ch] : 1.0f) / sqrtf(running_var[ch] + eps);
            for (p = 0; p < hw; p++) dx[base + (size_t)p] += dy[base + (size_t)p] * a;
        }
}

/* @kernel relu_backward */
/* The backward of torch.relu from its output y (as PyTorch's threshold_backward):
 * dx += y <= 0 ? 0 : dy. Works after an in-place relu. */
static NNC_MAYBE_UNUSED void nnc_relu_backward(size_t count, const float *y, const float *dy, float *dx)
{
    size_t i;
    for (i = 0; i < count; i++)
        if (!(y[i] <= 0.0f)) dx[i] += dy[i];
}

/* @kernel relu6_backward */
/* The backward of torch.nn.ReLU6 (hardtanh(0, 6)): dx += (v <= 0 || v >= 6) ? 0 : dy,
 * v the input x or the output y (the same test on either). */
static NNC_MAYBE_UNUSED void nnc_relu6_backward(size_t count, const float *v, const float *dy, float *dx)
{
    size_t i;
    for (i = 0; i < count; i++)
        if (!(v[i] <= 0.0f || v[i] >= 6.0f)) dx[i] += dy[i];
}

/* @kernel leaky_relu_backward */
/* The backward of torch.nn.LeakyReLU(slope): dx += v > 0 ? dy : slope*dy, v the
 * input x (PyTorch's rule), or the output y when slope > 0 (the same test). */
static NNC_MAYBE_UNUSED void nnc_leaky_relu_backward(size_t count, const float *v, const float *dy, float *dx,
                                                     float slope)
{
    size_t i;
    for (i = 0; i < count; i++) dx[i] += v[i] > 0.0f ? dy[i] : slope * dy[i];
}

/* @kernel sigmoid_backward */
/* The backward of torch.sigmoid from its output y: dx += dy * y * (1 - y). */
static NNC_MAYBE_UNUSED void nnc_sigmoid_backward(size_t count, const float *y, const float *dy, float *dx)
{
    size_t i;
    for (i = 0; i < count; i++) dx[i] += dy[i] * (y[i] * (1.0f - y[i]));
}

/* @kernel tanh_backward */
/* The backward of torch.tanh from its output y: dx += dy * (1 - y^2). */
static NNC_MAYBE_UNUSED void nnc_tanh_backward(size_t count, const float *y, const float *dy, float *dx)
{
    size_t i;
    for (i = 0; i < count; i++) dx[i] += dy[i] * (1.0f - y[i] * y[i]);
}

/* @kernel concat_backward */
/* The backward of nnc_concat_part: dx[i] += the slice of dy[i] that starts at
 * offset, per sample (one call per input of the concatenation). */
static NNC_MAYBE_UNUSED void nnc_concat_part_backward(int n, const float *dy, long y_per_sample, long offset,
                                                      float *dx, long x_per_sample)
{
    int i;
    long p;
    for (i = 0; i < n; i++) {
        const float *d = dy + (size_t)i * (size_t)y_per_sample + (size_t)offset;
        float *g = dx + (size_t)i * (size_t)x_per_sample;
        for (p = 0; p < x_per_sample; p++) g[p] += d[p];
    }
}

/* @kernel softmax_backward */
/* The backward of nnc_softmax (dim 1 of [n][c][inner]) from its output y:
 * dx += y * (dy - sum over c of dy*y), the sum in double. */
static NNC_MAYBE_UNUSED void nnc_softmax_backward(int n, const float *y, const float *dy, int c, long inner,
                                                  float *dx)
{
    int i, ch;
    long j;
    for (i = 0; i < n; i++)
        for (j = 0; j < inner; j++) {
            size_t base = (size_t)i * (size_t)c * (size_t)inner + (size_t)j, st = (size_t)inner;
            double dot = 0.0;
            float fdot;
            for (ch = 0; ch < c; ch++) dot += (double)dy[base + (size_t)ch * st] * y[base + (size_t)ch * st];
            fdot = (float)dot;
            for (ch = 0; ch < c; ch++)
                dx[base + (size_t)ch * st] += y[base + (size_t)ch * st] * (dy[base + (size_t)ch * st] - fdot);
        }
}

/* @kernel dropout_train */
#include <stdint.h>
/* A counter-based generator: the k-th draw of a stream is a hash of (key, k),
 * so the dropout mask need not be stored: the backward regenerates it from the
 * counter the forward started at. The state is this plain struct (one per
 * model instance or per training run, seeded by the caller; copy it to replay). */
typedef struct NncRng {
    uint64_t key;      /* the seed */
    uint64_t counter;  /* draws taken so far */
} NncRng;

/* The splitmix64 finalizer: a bijection of 64-bit words with full avalanche. */
static NNC_MAYBE_UNUSED uint64_t nnc_mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Takes count draws from the stream; returns the counter of the first (pass it
 * to the forward and keep it for the backward of the same step). */
static NNC_MAYBE_UNUSED uint64_t nnc_rng_reserve(NncRng *rng, size_t count)
{
    uint64_t start = rng->counter;
    rng->counter += (uint64_t)count;
    return start;
}

/* Whether element i of a dropout with drop probability p keeps its value: a
 * 24-bit uniform draw u from draw (key, start + i) keeps when u >= p*2^24. */
static NNC_MAYBE_UNUSED int nnc_dropout_keep(uint64_t key, uint64_t start, size_t i, uint32_t threshold)
{
    return (uint32_t)(nnc_mix64(key ^ nnc_mix64(start + (uint64_t)i)) >> 40) >= threshold;
}

static NNC_MAYBE_UNUSED uint32_t nnc_dropout_threshold(float p)
{
    return p <= 0.0f ? 0u : p >= 1.0f ? (1u << 24) : (uint32_t)((double)p * 16777216.0);
}

/* torch.nn.Dropout(p) in training mode: y = keep ? x * 1/(1 - p) : 0 (p >= 1:
 * all zeros), the mask from draws (key, start + i). y may equal x. */
static NNC_MAYBE_UNUSED void nnc_dropout_train(size_t count, const float *x, float *y, float p, uint64_t key,
                                               uint64_t start)
{
    uint32_t thr = nnc_dropout_threshold(p);
    float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    size_t i;
    for (i = 0; i < count; i++) y[i] = nnc_dropout_keep(key, start, i, thr) ? x[i] * scale : 0.0f;
}

/* The backward of nnc_dropout_train with the same p, key and start:
 * dx += keep ? dy * 1/(1 - p) : 0. */
static NNC_MAYBE_UNUSED void nnc_dropout_backward(size_t count, const float *dy, float *dx, float p, uint64_t key,
                                                  uint64_t start)
{
    uint32_t thr = nnc_dropout_threshold(p);
    float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    size_t i;
    for (i = 0; i < count; i++)
        if (nnc_dropout_keep(key, start, i, thr)) dx[i] += dy[i] * scale;
}

/* @kernel cross_entropy */
/* torch.nn.CrossEntropyLoss(label_smoothing=eps), reduction mean, of logits
 * [n][c] and class labels [n] in [0, c): returns
 *   mean over samples of (1 - eps)*(-log p[label]) + eps * mean over classes of (-log p),
 * p = softmax(logits), in double, and (dlogits not NULL) adds its gradient for
 * an upstream gradient of 1: dlogits += (p - (1 - eps)*onehot - eps/c) / n.
 * A label outside [0, c) returns NaN and adds nothing. */
static NNC_MAYBE_UNUSED float nnc_cross_entropy(int n, const float *logits, int c, const int *labels,
                                                float smoothing, float *dlogits)
{
    int i, ch;
    double total = 0.0, eps = smoothing;
    for (i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= c) return NAN;
    for (i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * (size_t)c;
        double mx = -INFINITY, sum = 0.0, sumz = 0.0, lse;
        for (ch = 0; ch < c; ch++)
            if (z[ch] > mx) mx = z[ch];
        for (ch = 0; ch < c; ch++) {
            sum += exp((double)z[ch] - mx);
            sumz += z[ch];
        }
        lse = mx + log(sum);
        /* -log p[ch] = lse - z[ch] */
        total += (1.0 - eps) * (lse - z[labels[i]]) + eps * (lse - sumz / c);
        if (dlogits) {
            float *g = dlogits + (size_t)i * (size_t)c;
            for (ch = 0; ch < c; ch++) {
                double t = (ch == labels[i] ? 1.0 - eps : 0.0) + eps / c;
                g[ch] += (float)((exp((double)z[ch] - lse) - t) / n);
            }
        }
    }
    return n > 0 ? (float)(total / n) : NAN;
}

/* @kernel bce_with_logits */
/* torch.nn.BCEWithLogitsLoss, reduction mean, over count elements of logits x
 * and targets t: returns the mean of PyTorch's stable form
 *   (1 - t)*x + mx + log(exp(-mx) + exp(-x - mx)),  mx = max(-x, 0),
 * in double, and (dx not NULL) adds dx += (sigmoid(x) - t) / count. */
static NNC_MAYBE_UNUSED float nnc_bce_with_logits(size_t count, const float *x, const float *t, float *dx)
{
    double total = 0.0;
    size_t i;
    for (i = 0; i < count; i++) {
        double v = x[i], mx = v < 0.0 ? -v : 0.0, s;
        total += (1.0 - t[i]) * v + mx + log(exp(-mx) + exp(-v - mx));
        if (dx) {
            s = v >= 0.0 ? 1.0 / (1.0 + exp(-v)) : exp(v) / (1.0 + exp(v));
            dx[i] += (float)((s - t[i]) / (double)count);
        }
    }
    return count > 0 ? (float)(total / (double)count) : NAN;
}

/* @kernel mse_loss */
/* torch.nn.MSELoss, reduction mean: returns mean of (x - t)^2 over count
 * elements, in double, and (dx not NULL) adds dx += 2*(x - t)/count. */
static NNC_MAYBE_UNUSED float nnc_mse_loss(size_t count, const float *x, const float *t, float *dx)
{
    double total = 0.0;
    size_t i;
    for (i = 0; i < count; i++) {
        double d = (double)x[i] - (double)t[i];
        total += d * d;
        if (dx) dx[i] += (float)(2.0 * d / (double)count);
    }
    return count > 0 ? (float)(total / (double)count) : NAN;
}

/* @kernel count_correct */
/* How many rows of logits [n][c] have their arg-max (torch.argmax: the first
 * maximum; a NaN counts as the maximum) equal to the label. */
static NNC_MAYBE_UNUSED long nnc_count_correct(int n, const float *logits, int c, const int *labels)
{
    int i, ch;
    long correct = 0;
    for (i = 0; i < n; i++) {
        const float *z = logits + (size_t)i * (size_t)c;
        int best = 0;
        for (ch = 1; ch < c && z[best] == z[best]; ch++)
            if (z[ch] > z[best] || z[ch] != z[ch]) best = ch;
        correct += best == labels[i];
    }
    return correct;
}

/* @kernel lrn_backward */
/* Floats of scratch nnc_lrn_backward needs. */
static NNC_MAYBE_UNUSED size_t nnc_lrn_backward_scratch(int c)
{
    return 2 * (size_t)c;
}

/* The backward of nnc_lrn (y_j = x_j * S_j^-beta, S_j = k + alpha/size * sum of
 * x^2 over the window [j - size/2, j + (size-1)/2]), per pixel:
 *   dx_j += dy_j * S_j^-beta - 2*alpha*beta/size * x_j * sum over the channels
 *           ch whose window holds j of dy_ch * x_ch * S_ch^(-beta-1),
 * those ch being [j - (size-1)/2, j + size/2]. scratch: nnc_lrn_backward_scratch(c). */
static NNC_MAYBE_UNUSED void nnc_lrn_backward(int n, const float *x, int c, long hw, const float *dy, int size,
                                              float alpha, float beta, float k, float *dx, float *scratch)
{
    float *s = scratch, *t = scratch + c, coef = 2.0f * alpha * beta / (float)size;
    int i, ch, c2;
    long p;
    for (i = 0; i < n; i++)
        for (p = 0; p < hw; p++) {
            size_t base = (size_t)i * (size_t)c * (size_t)hw + (size_t)p, st = (size_t)hw;
            for (ch = 0; ch < c; ch++) {
                int lo = ch - size / 2 < 0 ? 0 : ch - size / 2;
                int hi = ch + (size - 1) / 2 >= c ? c - 1 : ch + (size - 1) / 2;
                float sq = 0.0f, xc = x[base + (size_t)ch * st];
                for (c2 = lo; c2 <= hi; c2++) sq += x[base + (size_t)c2 * st] * x[base + (size_t)c2 * st];
                s[ch] = k + alpha / (float)size * sq;
                t[ch] = dy[base + (size_t)ch * st] * xc * powf(s[ch], -beta - 1.0f);
            }
            for (ch = 0; ch < c; ch++) {
                int lo = ch - (size - 1) / 2 < 0 ? 0 : ch - (size - 1) / 2;
                int hi = ch + size / 2 >= c ? c - 1 : ch + size / 2;
                float acc = 0.0f;
                for (c2 = lo; c2 <= hi; c2++) acc += t[c2];
                dx[base + (size_t)ch * st] +=
                    dy[base + (size_t)ch * st] * powf(s[ch], -beta) - coef * x[base + (size_t)ch * st] * acc;
            }
        }
}
