/* grad_kernels_norm.c: training kernels (grad_kernels.c, whose top comment
 * gives the gradient convention and the file order): batchnorm with batch
 * statistics and its backward, the fused training chain conv -> batchnorm ->
 * activation, batchnorm's backward in inference mode, and the backward of
 * the activations (generated from activations.h's table). */

/* @kernel batchnorm_train needs: ctx */
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

/* The gradient at the activation's input from the value v its row's FROM
 * names (activations.h; the output y where the fusion uses this) and the
 * gradient dy at its output: GRAD where GRAD_IF holds, else 0. */
static NNC_MAYBE_UNUSED float nnc_act_grad(float v, float dy, int act, float slope)
{
    const float s = slope;
    (void)s;
    switch (act) {
#define NNC_ACT_GRAD_CASE_(ID, name, FROM, SLOPE, FORWARD, GRAD_IF, GRAD) \
    case NNC_ACT_##ID: return (GRAD_IF) ? (GRAD) : 0.0f;
        NNC_ACTIVATIONS(NNC_ACT_GRAD_CASE_)
#undef NNC_ACT_GRAD_CASE_
    default: return dy;
    }
}

/* The two sums of nnc_batchnorm_act_backward for channels ch0 .. ch0+nb-1 (nb
 * at most 4): sdy[j] = sum g, sdyx[j] = sum g*(x - mean)*invstd with g the
 * gradient at the batchnorm's output, each in double over i then p, as one
 * channel at a time would add them (the same bits). The channels go side by
 * side: eight independent chains of additions, not two that wait on the
 * adder's latency at every element; spare lanes sum channel ch0 again. */
static NNC_MAYBE_UNUSED void nnc_bn_grad_sums(int n, const float *x, int c, long hw, const float *mean,
                                              const float *invstd, const float *y, const float *dy, int act,
                                              float slope, int ch0, int nb, double *sdy, double *sdyx)
{
    double a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0, b0 = 0.0, b1 = 0.0, b2 = 0.0, b3 = 0.0;
    float mu[4], is[4];
    int i, j, ch[4];
    long p;
    for (j = 0; j < 4; j++) {
        ch[j] = ch0 + (j < nb ? j : 0);
        mu[j] = mean[ch[j]], is[j] = invstd[ch[j]];
    }
    for (i = 0; i < n; i++) {
        const float *x0 = x + ((size_t)i * (size_t)c + (size_t)ch[0]) * (size_t)hw;
        const float *x1 = x + ((size_t)i * (size_t)c + (size_t)ch[1]) * (size_t)hw;
        const float *x2 = x + ((size_t)i * (size_t)c + (size_t)ch[2]) * (size_t)hw;
        const float *x3 = x + ((size_t)i * (size_t)c + (size_t)ch[3]) * (size_t)hw;
        const float *d0 = dy + (x0 - x), *d1 = dy + (x1 - x), *d2 = dy + (x2 - x), *d3 = dy + (x3 - x);
        const float *y0 = y ? y + (x0 - x) : d0, *y1 = y ? y + (x1 - x) : d1;
        const float *y2 = y ? y + (x2 - x) : d2, *y3 = y ? y + (x3 - x) : d3;
        for (p = 0; p < hw; p++) {
            double g0 = y ? nnc_act_grad(y0[p], d0[p], act, slope) : d0[p];
            double g1 = y ? nnc_act_grad(y1[p], d1[p], act, slope) : d1[p];
            double g2 = y ? nnc_act_grad(y2[p], d2[p], act, slope) : d2[p];
            double g3 = y ? nnc_act_grad(y3[p], d3[p], act, slope) : d3[p];
            a0 += g0, a1 += g1, a2 += g2, a3 += g3;
            b0 += g0 * ((double)x0[p] - mu[0]) * is[0];
            b1 += g1 * ((double)x1[p] - mu[1]) * is[1];
            b2 += g2 * ((double)x2[p] - mu[2]) * is[2];
            b3 += g3 * ((double)x3[p] - mu[3]) * is[3];
        }
    }
    sdy[0] = a0, sdy[1] = a1, sdy[2] = a2, sdy[3] = a3;
    sdyx[0] = b0, sdyx[1] = b1, sdyx[2] = b2, sdyx[3] = b3;
}

/* The arguments of nnc_batchnorm_act_backward, for its tasks. */
typedef struct {
    const float *x, *gamma, *mean, *invstd, *y, *dy;
    float *dx, *dgamma, *dbeta;
    int n, c, act;
    long hw;
    float slope;
} nnc_bn_bwd_job;

/* Task t: channels 4t .. 4t+3 (nnc_bn_grad_sums side by side), then each
 * one's dx. A channel's arithmetic is the same whichever thread runs it. */
static NNC_MAYBE_UNUSED void nnc_bn_bwd_group(void *arg, int t)
{
    const nnc_bn_bwd_job *j = (const nnc_bn_bwd_job *)arg;
    const float *x = j->x, *y = j->y, *dy = j->dy;
    int i, n = j->n, c = j->c, act = j->act, ch0 = 4 * t, nb = c - ch0 < 4 ? c - ch0 : 4, q;
    long p, hw = j->hw;
    double m = (double)n * (double)hw, sums[2][4];
    nnc_bn_grad_sums(n, x, c, hw, j->mean, j->invstd, y, dy, act, j->slope, ch0, nb, sums[0], sums[1]);
    for (q = 0; q < nb; q++) {
        int ch = ch0 + q;
        double sdy = sums[0][q], sdyx = sums[1][q];
        float mu = j->mean[ch], is = j->invstd[ch], a, k1, k2;
        if (j->dbeta) j->dbeta[ch] += (float)sdy;
        if (j->dgamma) j->dgamma[ch] += (float)sdyx;
        if (!j->dx || m <= 0.0) continue;
        a = (j->gamma ? j->gamma[ch] : 1.0f) * is;
        k1 = (float)(sdy / m);
        k2 = (float)(sdyx / m);
        for (i = 0; i < n; i++) {
            size_t base = ((size_t)i * (size_t)c + (size_t)ch) * (size_t)hw;
            for (p = 0; p < hw; p++) {
                float xhat = (x[base + (size_t)p] - mu) * is;
                float g = y ? nnc_act_grad(y[base + (size_t)p], dy[base + (size_t)p], act, j->slope)
                            : dy[base + (size_t)p];
                j->dx[base + (size_t)p] += a * (g - k1 - xhat * k2);
            }
        }
    }
}

/* The backward of act(nnc_batchnorm_train(x)) in one pass per channel: as
 * nnc_batchnorm_backward below with dy replaced by the activation's backward,
 * act'(y) dy, recomputed per element from the activation's output y (never
 * stored). y NULL with NNC_ACT_NONE: batchnorm alone. Tasks of four channels
 * (nnc_bn_grad_sums: their sums side by side) over ctx's threads (NULL: the
 * caller's alone); a channel's sums are the same whichever thread runs it. */
static NNC_MAYBE_UNUSED void nnc_batchnorm_act_backward(const nnc_ctx *ctx, int n, const float *x, int c, long hw,
                                                        const float *gamma, const float *mean, const float *invstd,
                                                        const float *y, const float *dy, int act, float slope,
                                                        float *dx, float *dgamma, float *dbeta)
{
    nnc_bn_bwd_job j;
    j.x = x, j.gamma = gamma, j.mean = mean, j.invstd = invstd, j.y = y, j.dy = dy, j.dx = dx, j.dgamma = dgamma;
    j.dbeta = dbeta, j.n = n, j.c = c, j.act = act, j.hw = hw, j.slope = slope;
    nnc_parallel_work(ctx, 3.0 * n * (double)c * (double)hw, (c + 3) / 4, nnc_bn_bwd_group, &j);
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
    nnc_batchnorm_act_backward(NULL, n, x, c, hw, gamma, mean, invstd, NULL, dy, NNC_ACT_NONE, 0.0f, dx, dgamma,
                               dbeta);
}

/* @kernel bn_train_fused needs: conv_mt batchnorm_train epilogue */
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
static NNC_MAYBE_UNUSED void nnc_conv2d_stats(const nnc_ctx *ctx, int n, const float *x, int c, int h, int w,
                                              const float *wt, const float *bias, float *y, int k, int oh, int ow,
                                              int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                                              int groups, float *scratch, double *stats)
{
    size_t xs = (size_t)c * (size_t)h * (size_t)w, ohw = (size_t)oh * (size_t)ow, ys = (size_t)k * ohw, p;
    int nb = nnc_conv2d_block(n, c, kh, kw, sh, sw, ph, pw, oh, ow, groups, 0), i, ch;
    for (i = 0; i < n; i++) {
        float *yi = y + (size_t)i * ys;
        if (i % nb == 0)  /* the next block of samples (nnc_conv2d's own blocks: one GEMM each) */
            nnc_conv2d_mt(ctx, n - i < nb ? n - i : nb, x + (size_t)i * xs, xs, c, h, w, wt, bias, yi, ys, k, oh,
                          ow, kh, kw, sh, sw, ph, pw, dh, dw, groups, scratch, NULL, 0, NNC_ACT_NONE, 0.0f, k, NULL,
                          NULL, NNC_ACT_NONE, 0.0f);
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

/* The normalization pass of nnc_batchnorm_act_train, a task per channel. */
typedef struct {
    const float *x, *gamma, *beta, *mean, *invstd;
    float *y;
    int n, c, act;
    long hw;
    float slope;
} nnc_bn_act_job;

static NNC_MAYBE_UNUSED void nnc_bn_act_channel(void *arg, int ch)
{
    const nnc_bn_act_job *j = (const nnc_bn_act_job *)arg;
    float scale = (j->gamma ? j->gamma[ch] : 1.0f) * j->invstd[ch];
    float shift = (j->beta ? j->beta[ch] : 0.0f) - j->mean[ch] * scale;
    int i;
    for (i = 0; i < j->n; i++) {
        size_t base = ((size_t)i * (size_t)j->c + (size_t)ch) * (size_t)j->hw;
        long p;
        for (p = 0; p < j->hw; p++) j->y[base + (size_t)p] = j->x[base + (size_t)p] * scale + shift;
        nnc_epilogue(j->y + base, (size_t)j->hw, NULL, j->act, j->slope);
    }
}

static NNC_MAYBE_UNUSED void nnc_batchnorm_act_train(const nnc_ctx *ctx, int n, const float *x, int c, long hw,
                                                     const double *stats, const float *gamma, const float *beta,
                                                     float eps, float momentum, float *running_mean,
                                                     float *running_var, float *y, float *save_mean,
                                                     float *save_invstd, int act, float slope)
{
    nnc_bn_act_job j;
    int ch;
    double m = (double)n * (double)hw;
    for (ch = 0; ch < c; ch++) {
        double mean = m > 0.0 ? stats[2 * ch] / m : 0.0;
        double var = m > 0.0 ? stats[2 * ch + 1] / m - mean * mean : 0.0;
        float invstd;
        if (var < 0.0) var = 0.0;  /* rounding of sumsq/m - mean^2 */
        invstd = (float)(1.0 / sqrt(var + (double)eps));
        save_mean[ch] = (float)mean;
        save_invstd[ch] = invstd;
        if (running_mean) running_mean[ch] = (1.0f - momentum) * running_mean[ch] + momentum * (float)mean;
        if (running_var)
            running_var[ch] = (1.0f - momentum) * running_var[ch] + momentum * (float)(m > 1.0 ? var * m / (m - 1.0) : var);
    }
    /* y = act(x * scale + shift), scale and shift from the saved statistics, over the threads by channel */
    j.x = x, j.gamma = gamma, j.beta = beta, j.mean = save_mean, j.invstd = save_invstd, j.y = y, j.n = n, j.c = c;
    j.act = act, j.hw = hw, j.slope = slope;
    nnc_parallel_work(ctx, 2.0 * n * (double)c * (double)hw, c, nnc_bn_act_channel, &j);
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

/* @kernel activation_backward */
/* The backward of nnc_activation: dx += GRAD where GRAD_IF holds (nothing
 * where it does not: -0 + 0 would be +0), with the expressions of the
 * activation's row in activations.h, one loop per activation. v is the value
 * the row's FROM names: the output y (NNC_FROM_Y: works after an in-place
 * activation), the input x (NNC_FROM_X), or either when slope > 0
 * (NNC_FROM_XS: leaky_relu, whose output has the sign of its input). These
 * are PyTorch's autograd formulas (threshold_backward for relu, hardtanh's
 * for relu6, leaky_relu_backward on the input, sigmoid's and tanh's from the
 * output). NNC_ACT_NONE: dx += dy. */
static NNC_MAYBE_UNUSED void nnc_activation_backward(size_t count, const float *vs, const float *dys, float *dx,
                                                     int act, float slope)
{
    const float s = slope;
    size_t i;
    (void)s;
    switch (act) {
#define NNC_ACTIVATION_BACKWARD_CASE_(ID, name, FROM, SLOPE, FORWARD, GRAD_IF, GRAD) \
    case NNC_ACT_##ID:                                                              \
        for (i = 0; i < count; i++) {                                               \
            float v = vs[i], dy = dys[i];                                           \
            if (GRAD_IF) dx[i] += (GRAD);                                           \
        }                                                                           \
        break;
        NNC_ACTIVATIONS(NNC_ACTIVATION_BACKWARD_CASE_)
#undef NNC_ACTIVATION_BACKWARD_CASE_
    default:
        for (i = 0; i < count; i++) dx[i] += dys[i];
        break;
    }
}

