/* grad_kernels_loss.c: training kernels (grad_kernels.c, whose top comment
 * gives the gradient convention and the file order): the backward of concat
 * and softmax, dropout in training mode, the losses (cross-entropy with label
 * smoothing, BCE with logits, MSE) with their gradients, the count of correct
 * predictions, and the backward of LRN. */

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
