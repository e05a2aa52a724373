/* kernels_elementwise.c: the per-element and per-channel kernels of the
 * kernel library (kernels.c, whose top comment gives the format and the
 * rules): batchnorm in inference mode and its folding into the layer before
 * it, torch.nn.Linear (a GEMM and the epilogue), the activations (one generic
 * kernel over the table of activations.h), copy and add. */

/* @kernel batchnorm */
/* torch.nn.BatchNorm1d/2d in eval mode: y = (x - mean)/sqrt(var + eps)*gamma + beta per channel.
 * gamma/beta may be NULL (affine=False: 1 and 0). xs, ys: batch strides in floats
 * (c*hw for whole tensors). y may equal x. */
static NNC_MAYBE_UNUSED void nnc_batchnorm(int n, const float *x, size_t xs, int c, long hw, const float *gamma,
                                           const float *beta, const float *mean, const float *var, float eps,
                                           float *y, size_t ys)
{
    int i, ch;
    long p;
    for (i = 0; i < n; i++)
        for (ch = 0; ch < c; ch++) {
            const float *xc = x + (size_t)i * xs + (size_t)ch * (size_t)hw;
            float *yc = y + (size_t)i * ys + (size_t)ch * (size_t)hw;
            float scale = (gamma ? gamma[ch] : 1.0f) / sqrtf(var[ch] + eps);
            float shift = (beta ? beta[ch] : 0.0f) - mean[ch] * scale;
            for (p = 0; p < hw; p++) yc[p] = xc[p] * scale + shift;
        }
}

/* @kernel bn_scale */
/* The scale of a batchnorm as nnc_batchnorm computes it: y[o] = gamma[o]/sqrt(var[o] + eps). */
static NNC_MAYBE_UNUSED void nnc_bn_scale(int c, const float *gamma, const float *var, float eps, float *y)
{
    int o;
    for (o = 0; o < c; o++) y[o] = gamma[o] / sqrtf(var[o] + eps);
}

/* @kernel bn_fold */
/* Batchnorm folded into the convolution or linear layer before it (inference):
 * w'[..] = w[..] * gamma[o]/sqrt(var[o] + eps), o the output channel of the
 * element. w is seen as [rows][cols][inner] and the output channel of row r,
 * column c is (r / (rows/groups)) * cols + c:
 *   conv2d [c_out][c_in/g][kh][kw], linear [out][in]:  rows = c_out, cols = 1, groups = c_out;
 *   conv_transpose2d [c_in][c_out/g][kh][kw]:          rows = c_in, cols = c_out/g, groups = g.
 * The scale is computed as nnc_batchnorm computes it. y may equal w. */
static NNC_MAYBE_UNUSED void nnc_bn_fold_weight(const float *w, int rows, int cols, long inner, int groups,
                                                const float *gamma, const float *var, float eps, float *y)
{
    int r, c, rows_per_group = rows / groups;
    long p;
    for (r = 0; r < rows; r++)
        for (c = 0; c < cols; c++) {
            int o = r / rows_per_group * cols + c;
            float scale = gamma[o] / sqrtf(var[o] + eps);
            size_t base = ((size_t)r * (size_t)cols + (size_t)c) * (size_t)inner;
            for (p = 0; p < inner; p++) y[base + (size_t)p] = w[base + (size_t)p] * scale;
        }
}

/* The folded bias: y[o] = (b[o] - mean[o]) * gamma[o]/sqrt(var[o] + eps) + beta[o]
 * (b NULL: the layer had no bias, b = 0). y may equal any input. */
static NNC_MAYBE_UNUSED void nnc_bn_fold_bias(int c, const float *gamma, const float *beta, const float *mean,
                                              const float *var, float eps, const float *b, float *y)
{
    int o;
    for (o = 0; o < c; o++) {
        float scale = gamma[o] / sqrtf(var[o] + eps);
        y[o] = ((b ? b[o] : 0.0f) - mean[o]) * scale + beta[o];
    }
}

/* @kernel linear needs: gemm epilogue */
/* torch.nn.Linear: y[n][out] = x[n][in] * wt[out][in]^T + bias (bias may be NULL),
 * then the epilogue y = act(y + residual) (nnc_epilogue; residual [n][out] or
 * NULL, act NNC_ACT_*, slope for leaky_relu). The GEMM covers the whole batch,
 * so each weight row is read once; the epilogue follows it over y, which is
 * small (n rows of out floats). */
static NNC_MAYBE_UNUSED void nnc_linear(int n, const float *x, int in, const float *wt, const float *bias,
                                        float *y, int out, const float *residual, int act, float slope)
{
    int i;
    if (bias)
        for (i = 0; i < n; i++) memcpy(y + (size_t)i * (size_t)out, bias, (size_t)out * sizeof(float));
    nnc_sgemm(0, 1, n, out, in, 1.0f, x, in, wt, in, bias ? 1.0f : 0.0f, y, out);
    if (residual || act != NNC_ACT_NONE) nnc_epilogue(y, (size_t)n * (size_t)out, residual, act, slope);
}

/* @kernel copy */
/* Identity / flatten / reshape: y = x (the ranges may overlap). */
static NNC_MAYBE_UNUSED void nnc_copy(size_t count, const float *x, float *y)
{
    if (x != y && count > 0) memmove(y, x, count * sizeof(float));
}

/* @kernel add */
/* torch.add of two same-shaped tensors: y = a + b. y may equal a or b. */
static NNC_MAYBE_UNUSED void nnc_add(size_t count, const float *a, const float *b, float *y)
{
    size_t i;
    for (i = 0; i < count; i++) y[i] = a[i] + b[i];
}

