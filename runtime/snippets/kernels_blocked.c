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
