/* test_kernels_layers.c: the kernels of runtime/snippets/kernels_elementwise.c
 * and kernels_pool.c (batchnorm and its folding, linear and its epilogue, the
 * activations, add and copy, pooling, LRN, concat, softmax) against naive
 * double-precision references. References, RNG and tolerance: kernel_test.h. */
#include "tests/unit/kernel_test.h"

/* ---- batchnorm, linear ---- */

static void run_batchnorm(Rng *r, int n, int c, long hw, int affine, int in_place)
{
    size_t sz = (size_t)n * c * hw;
    float *x = rand_floats(r, sz, 3.0f), *y = in_place ? x : nan_floats(sz);
    float *gamma = affine ? rand_floats(r, (size_t)c, 2.0f) : NULL;
    float *beta = affine ? rand_floats(r, (size_t)c, 1.0f) : NULL;
    float *mean = rand_floats(r, (size_t)c, 1.0f), *var = rand_floats(r, (size_t)c, 1.0f);
    double *ref = new_doubles(sz);
    const float eps = 1e-5f;
    for (int ch = 0; ch < c; ch++) var[ch] = var[ch] * var[ch] + (ch % 3 == 0 ? 0.0f : 0.05f);  /* some var 0-ish */
    for (size_t e = 0; e < sz; e++) {
        int ch = (int)(e / (size_t)hw % (size_t)c);
        ref[e] = ((double)x[e] - mean[ch]) / sqrt((double)var[ch] + eps) * (affine ? gamma[ch] : 1.0) +
                 (affine ? beta[ch] : 0.0);
    }
    nnc_batchnorm(n, x, (size_t)c * (size_t)hw, c, hw, gamma, beta, mean, var, eps, y, (size_t)c * (size_t)hw);
    check_close(y, ref, sz, "batchnorm");
    if (!in_place) free(y);
    free(x), free(gamma), free(beta), free(mean), free(var), free(ref);
}

static void test_batchnorm(void **state)
{
    Rng r = {0xBA7C4ULL};
    (void)state;
    run_batchnorm(&r, 1, 1, 1, 1, 0);
    run_batchnorm(&r, 3, 7, 1, 1, 0);    /* BatchNorm1d on features */
    run_batchnorm(&r, 2, 5, 35, 1, 0);
    run_batchnorm(&r, 2, 5, 35, 0, 0);   /* affine=False */
    run_batchnorm(&r, 4, 16, 49, 1, 1);  /* in place */
}

/* ---- bn_fold ---- */

static float *positive_floats(Rng *r, size_t count)  /* in [0.5, 1.5): gammas and variances */
{
    float *p = new_floats(count);
    for (size_t i = 0; i < count; i++) p[i] = 1.0f + 0.5f * rng_float(r);
    return p;
}

/* A weight of shape [a][b][inner] whose output channel is dim 0 (conv2d, linear:
 * transposed 0) or, per group of a/groups rows, dim 1 (conv_transpose2d). */
static void run_bn_fold_weight(Rng *r, int a, int b, int inner, int groups, int transposed)
{
    int c_out = transposed ? b * groups : a;
    size_t count = (size_t)a * b * inner;
    float *w = rand_floats(r, count, 1.0f), *gamma = positive_floats(r, c_out), *var = positive_floats(r, c_out);
    float *y = nan_floats(count), eps = 1e-3f;
    double *ref = new_doubles(count);
    char what[96];
    for (int i = 0; i < a; i++)
        for (int j = 0; j < b; j++)
            for (int p = 0; p < inner; p++) {
                int o = transposed ? i / (a / groups) * b + j : i;
                size_t at = ((size_t)i * b + j) * inner + p;
                ref[at] = w[at] * (double)gamma[o] / sqrt((double)var[o] + eps);
            }
    if (transposed) nnc_bn_fold_weight(w, a, b, inner, groups, gamma, var, eps, y);
    else nnc_bn_fold_weight(w, a, 1, (long)b * inner, a, gamma, var, eps, y);
    snprintf(what, sizeof what, "bn_fold_weight %dx%dx%d groups %d transposed %d", a, b, inner, groups, transposed);
    check_close(y, ref, count, what);
    free(w), free(gamma), free(var), free(y), free(ref);
}

static void run_bn_fold_bias(Rng *r, int c, int has_bias)
{
    float *gamma = positive_floats(r, c), *beta = rand_floats(r, c, 1.0f), *mean = rand_floats(r, c, 1.0f);
    float *var = positive_floats(r, c), *b = has_bias ? rand_floats(r, c, 1.0f) : NULL, *y = nan_floats(c);
    double *ref = new_doubles(c);
    char what[64];
    for (int o = 0; o < c; o++)
        ref[o] = ((b ? b[o] : 0.0) - mean[o]) * gamma[o] / sqrt((double)var[o] + 1e-5) + beta[o];
    nnc_bn_fold_bias(c, gamma, beta, mean, var, 1e-5f, b, y);
    snprintf(what, sizeof what, "bn_fold_bias c%d bias%d", c, has_bias);
    check_close(y, ref, c, what);
    free(gamma), free(beta), free(mean), free(var), free(b), free(y), free(ref);
}

/* The folded layer equals the layer then batchnorm, through the real conv
 * kernels: the channel arithmetic agrees with nnc_conv2d and nnc_conv_transpose2d. */
static void run_bn_fold_conv(Rng *r, int transposed, int c, int k, int groups, int has_bias)
{
    int n = 2, h = 5, w = 6, ks = 3, oh = transposed ? h + 2 : h, ow = transposed ? w + 2 : w;
    int pad = transposed ? 0 : 1;
    size_t wcount = (size_t)(transposed ? c * (k / groups) : k * (c / groups)) * ks * ks;
    size_t ycount = (size_t)n * k * oh * ow;
    size_t scratch = transposed ? nnc_conv_transpose2d_scratch(h, w, k, ks, ks, groups)
                                : nnc_conv2d_scratch(n, c, h, w, k, ks, ks, 1, 1, pad, pad, oh, ow, groups, 0);
    float *x = rand_floats(r, (size_t)n * c * h * w, 1.0f), *wt = rand_floats(r, wcount, 1.0f);
    float *bias = has_bias ? rand_floats(r, k, 1.0f) : NULL, *gamma = positive_floats(r, k);
    float *beta = rand_floats(r, k, 1.0f), *mean = rand_floats(r, k, 1.0f), *var = positive_floats(r, k);
    float *wf = nan_floats(wcount), *bf = nan_floats(k), *y = nan_floats(ycount), *yf = nan_floats(ycount);
    float *sc = new_floats(scratch);
    double *ref = new_doubles(ycount);
    char what[96];
    if (transposed) {
        nnc_bn_fold_weight(wt, c, k / groups, (long)ks * ks, groups, gamma, var, 1e-5f, wf);
        nnc_conv_transpose2d(n, x, c, h, w, wt, bias, y, k, oh, ow, ks, ks, 1, 1, pad, pad, 1, 1, groups, sc, NULL,
                             NNC_ACT_NONE, 0.0f);
    } else {
        nnc_bn_fold_weight(wt, k, 1, (long)(c / groups) * ks * ks, k, gamma, var, 1e-5f, wf);
        nnc_conv2d(n, x, (size_t)c * h * w, c, h, w, wt, bias, y, (size_t)k * oh * ow, k, oh, ow, ks, ks, 1, 1, pad,
                   pad, 1, 1, groups, sc, NULL, 0, NNC_ACT_NONE, 0.0f, k, NULL, NULL, NNC_ACT_NONE, 0.0f);
    }
    nnc_bn_fold_bias(k, gamma, beta, mean, var, 1e-5f, bias, bf);
    nnc_batchnorm(n, y, (size_t)k * oh * ow, k, (long)oh * ow, gamma, beta, mean, var, 1e-5f, y,
                  (size_t)k * oh * ow);
    for (size_t i = 0; i < ycount; i++) ref[i] = y[i];
    if (transposed)
        nnc_conv_transpose2d(n, x, c, h, w, wf, bf, yf, k, oh, ow, ks, ks, 1, 1, pad, pad, 1, 1, groups, sc, NULL,
                             NNC_ACT_NONE, 0.0f);
    else
        nnc_conv2d(n, x, (size_t)c * h * w, c, h, w, wf, bf, yf, (size_t)k * oh * ow, k, oh, ow, ks, ks, 1, 1, pad,
                   pad, 1, 1, groups, sc, NULL, 0, NNC_ACT_NONE, 0.0f, k, NULL, NULL, NNC_ACT_NONE, 0.0f);
    snprintf(what, sizeof what, "bn folded into %s c%d k%d g%d bias%d", transposed ? "conv_transpose2d" : "conv2d", c,
             k, groups, has_bias);
    check_close(yf, ref, ycount, what);
    free(x), free(wt), free(bias), free(gamma), free(beta), free(mean), free(var);
    free(wf), free(bf), free(y), free(yf), free(sc), free(ref);
}

static void test_bn_fold(void **state)
{
    Rng r = {0xF01DULL};
    (void)state;
    run_bn_fold_weight(&r, 6, 4, 9, 1, 0);    /* conv2d [6][4][3][3] */
    run_bn_fold_weight(&r, 5, 10, 1, 1, 0);   /* linear [5][10] */
    run_bn_fold_weight(&r, 4, 3, 9, 1, 1);    /* conv_transpose2d [4][3][3][3] */
    run_bn_fold_weight(&r, 4, 3, 9, 2, 1);    /* ... groups 2: c_out 6 */
    run_bn_fold_weight(&r, 8, 1, 4, 8, 1);    /* ... depthwise */
    run_bn_fold_bias(&r, 1, 1);
    run_bn_fold_bias(&r, 7, 1);
    run_bn_fold_bias(&r, 7, 0);
    run_bn_fold_conv(&r, 0, 4, 6, 2, 1);
    run_bn_fold_conv(&r, 0, 4, 4, 4, 0);
    run_bn_fold_conv(&r, 1, 4, 6, 2, 1);
    run_bn_fold_conv(&r, 1, 6, 3, 3, 0);
    run_bn_fold_conv(&r, 1, 3, 5, 1, 0);
}

static void run_linear(Rng *r, int n, int in, int out, int has_bias)
{
    float *x = rand_floats(r, (size_t)n * in, 1.0f), *wt = rand_floats(r, (size_t)out * in, 1.0f);
    float *bias = has_bias ? rand_floats(r, (size_t)out, 1.0f) : NULL, *y = nan_floats((size_t)n * out);
    double *ref = new_doubles((size_t)n * out);
    char what[64];
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double s = bias ? bias[o] : 0.0;
            for (int p = 0; p < in; p++) s += (double)x[i * in + p] * wt[o * in + p];
            ref[i * out + o] = s;
        }
    nnc_linear(n, x, in, wt, bias, y, out, NULL, NNC_ACT_NONE, 0.0f);
    snprintf(what, sizeof what, "linear n%d in%d out%d bias%d", n, in, out, has_bias);
    check_close(y, ref, (size_t)n * out, what);
    free(x), free(wt), free(bias), free(y), free(ref);
}

static void test_linear(void **state)
{
    Rng r = {0x11AEA7ULL};
    (void)state;
    run_linear(&r, 1, 1, 1, 1);
    run_linear(&r, 3, 17, 10, 1);
    run_linear(&r, 3, 17, 10, 0);
    run_linear(&r, 5, 400, 33, 1);
    run_linear(&r, 2, 3, 120, 0);
    for (int i = 0; i < 20; i++) run_linear(&r, rng_int(&r, 1, 8), rng_int(&r, 1, 300), rng_int(&r, 1, 50), i % 2);
}


static void test_bn_scale(void **state)
{
    Rng r = {0xB5CULL};
    float gamma[7], var[7], y[7];
    double ref[7];
    (void)state;
    for (int i = 0; i < 7; i++) gamma[i] = rng_float(&r), var[i] = 0.5f + (float)i, ref[i] = gamma[i] / sqrt((double)var[i] + 1e-3);
    nnc_bn_scale(7, gamma, var, 1e-3f, y);
    check_close(y, ref, 7, "bn_scale");
}

static void run_linear_epilogue(Rng *r, int n, int in, int out, int has_bias, int act, int with_res)
{
    size_t ysz = (size_t)n * out;
    float *x = rand_floats(r, (size_t)n * in, 1.0f), *wt = rand_floats(r, (size_t)out * in, 1.0f);
    float *bias = has_bias ? rand_floats(r, (size_t)out, 1.0f) : NULL, *y = nan_floats(ysz), *y0 = nan_floats(ysz);
    float *res = with_res ? rand_floats(r, ysz, 2.0f) : NULL;
    double *ref = new_doubles(ysz);
    char what[96];
    for (int i = 0; i < n; i++)
        for (int o = 0; o < out; o++) {
            double s = bias ? bias[o] : 0.0;
            for (int p = 0; p < in; p++) s += (double)x[i * in + p] * wt[o * in + p];
            ref[i * out + o] = act_ref(act, s + (res ? (double)res[i * out + o] : 0.0));
        }
    nnc_linear(n, x, in, wt, bias, y, out, res, act, 0.125f);
    snprintf(what, sizeof what, "linear n%d in%d out%d bias%d, epilogue%s %s", n, in, out, has_bias,
             res ? " +res" : "", act_names[act]);
    check_close(y, ref, ysz, what);
    nnc_linear(n, x, in, wt, bias, y0, out, NULL, NNC_ACT_NONE, 0.0f);
    unfused_epilogue(y0, ysz, res, act);
    check_equal(y, y0, ysz, what);
    free(x), free(wt), free(bias), free(y), free(y0), free(res), free(ref);
}

static void test_linear_epilogue(void **state)
{
    Rng r = {0xE92ULL};
    (void)state;
    for (int act = NNC_ACT_NONE; act < N_ACTS; act++)
        for (int res = 0; res <= 1; res++) {
            run_linear_epilogue(&r, 3, 17, 10, 1, act, res);
            run_linear_epilogue(&r, 2, 40, 7, 0, act, res);
        }
}

/* ---- elementwise ---- */

enum { EW_COUNT = 1037 };

/* Random values with large ones mixed in, to exercise overflow paths. */
static float *ew_input(Rng *r)
{
    static const float big[] = {0.0f, -0.0f, 88.0f, -88.0f, 100.0f, -100.0f, 1e4f, -1e4f, 1e30f, -1e30f, 6.0f, -6.0f};
    float *x = rand_floats(r, EW_COUNT, 8.0f);
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) x[i * 37] = big[i];
    return x;
}

/* nnc_activation with every activation (NNC_ACT_NONE: a copy) and nnc_copy,
 * out of place and in place. */
static void test_elementwise(void **state)
{
    Rng r = {0xE1E3ULL};
    (void)state;
    for (int act = NNC_ACT_NONE; act <= N_ACTS; act++)  /* N_ACTS: nnc_copy */
        for (int in_place = 0; in_place <= 1; in_place++) {
            float *x = ew_input(&r), *y = in_place ? x : nan_floats(EW_COUNT);
            double *ref = new_doubles(EW_COUNT);
            int exact = act == NNC_ACT_NONE || act == NNC_ACT_RELU || act == NNC_ACT_RELU6 ||
                        act == NNC_ACT_LEAKY_RELU || act == N_ACTS;  /* piecewise linear: no rounding */
            char what[64];
            for (size_t i = 0; i < EW_COUNT; i++) ref[i] = act < N_ACTS ? act_ref(act, x[i]) : x[i];
            if (act < N_ACTS)
                nnc_activation(EW_COUNT, x, y, act, 0.125f);
            else
                nnc_copy(EW_COUNT, x, y);
            snprintf(what, sizeof what, "%s%s", act < N_ACTS ? act_names[act] : "copy", in_place ? " in place" : "");
            /* Large values dominate max|ref| for relu/copy; check those exactly as well. */
            check_close(y, ref, EW_COUNT, what);
            for (size_t i = 0; i < EW_COUNT; i++)
                if (exact && (double)y[i] != (double)(float)ref[i])
                    fail_msg("%s: element %zu is %g, want %g", what, i, (double)y[i], ref[i]);
            if (!in_place) free(y);
            free(x), free(ref);
        }
}

static void test_sigmoid_extremes(void **state)
{
    float x[] = {-1e30f, -1e4f, -200.0f, -88.8f, -30.0f, 0.0f, 30.0f, 88.8f, 200.0f, 1e4f, 1e30f, INFINITY, -INFINITY};
    float y[sizeof x / sizeof x[0]];
    (void)state;
    nnc_activation(sizeof x / sizeof x[0], x, y, NNC_ACT_SIGMOID, 0.0f);
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++) {
        assert_false(isnan(y[i]));
        assert_true(y[i] >= 0.0f && y[i] <= 1.0f);
    }
    assert_true(y[0] == 0.0f && y[10] == 1.0f && y[5] == 0.5f && y[11] == 1.0f && y[12] == 0.0f);
    nnc_activation(sizeof x / sizeof x[0], x, y, NNC_ACT_TANH, 0.0f);
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++) assert_true(fabsf(y[i]) <= 1.0f);
}

static void test_add_and_copy(void **state)
{
    Rng r = {0xADDULL};
    float *a = rand_floats(&r, EW_COUNT, 5.0f), *b = rand_floats(&r, EW_COUNT, 5.0f);
    float *y = nan_floats(EW_COUNT), *want = new_floats(EW_COUNT);
    (void)state;
    for (size_t i = 0; i < EW_COUNT; i++) want[i] = a[i] + b[i];
    nnc_add(EW_COUNT, a, b, y);
    check_equal(y, want, EW_COUNT, "add");
    memcpy(y, a, EW_COUNT * sizeof(float));
    nnc_add(EW_COUNT, y, b, y);  /* y aliases a */
    check_equal(y, want, EW_COUNT, "add, y == a");
    memcpy(y, b, EW_COUNT * sizeof(float));
    nnc_add(EW_COUNT, a, y, y);  /* y aliases b */
    check_equal(y, want, EW_COUNT, "add, y == b");
    for (size_t i = 0; i < EW_COUNT; i++) want[i] = a[i] + a[i];
    nnc_add(EW_COUNT, a, a, a);  /* all three the same */
    check_equal(a, want, EW_COUNT, "add, y == a == b");
    memcpy(want, b + 10, (EW_COUNT - 10) * sizeof(float));
    nnc_copy(EW_COUNT - 10, b + 10, b);  /* overlapping ranges */
    check_equal(b, want, EW_COUNT - 10, "copy, overlapping");
    nnc_copy(0, NULL, NULL);
    free(a), free(b), free(y), free(want);
}

/* ---- pooling ---- */

typedef struct PoolCase {
    int n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ceil;
} PoolCase;

static const PoolCase pool_cases[] = {
    /* n c   h   w kh kw sh sw ph pw dh dw ceil */
    {1, 1, 4, 4, 2, 2, 2, 2, 0, 0, 1, 1, 0},    /* plain 2x2 */
    {2, 3, 7, 7, 2, 2, 2, 2, 0, 0, 1, 1, 1},    /* ceil mode: last window half off the edge */
    {2, 3, 15, 13, 3, 3, 2, 2, 1, 1, 1, 1, 0},  /* ResNet stem pool */
    {1, 4, 14, 13, 3, 3, 2, 2, 0, 0, 1, 1, 1},  /* GoogLeNet ceil pool */
    {2, 2, 10, 11, 3, 3, 2, 2, 1, 1, 1, 1, 1},  /* ceil with padding */
    {1, 2, 9, 10, 2, 3, 1, 2, 1, 0, 1, 1, 0},   /* non-square */
    {2, 2, 11, 12, 3, 2, 3, 2, 1, 1, 1, 1, 1},  /* non-square ceil */
    {1, 3, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1, 0},    /* stride 1 same (Inception branch) */
    {1, 1, 5, 5, 5, 5, 5, 5, 2, 2, 1, 1, 1},    /* one window, padded */
    {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0},    /* 1x1 */
};

/* PyTorch's pooling output size, floor or ceil; a ceil window must start inside the padded image. */
static int pool_out(int in, int k, int s, int p, int d, int ceil_mode)
{
    int span = in + 2 * p - d * (k - 1) - 1;
    int o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (ceil_mode && (o - 1) * s >= in + p) o--;
    return o;
}

static void ref_maxpool(const PoolCase *t, const float *x, int oh, int ow, double *ref)
{
    for (int pl = 0; pl < t->n * t->c; pl++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                double m = -INFINITY;
                for (int ki = 0; ki < t->kh; ki++)
                    for (int kj = 0; kj < t->kw; kj++) {
                        int iy = oy * t->sh - t->ph + ki * t->dh, ix = ox * t->sw - t->pw + kj * t->dw;
                        if (iy >= 0 && iy < t->h && ix >= 0 && ix < t->w && x[(pl * t->h + iy) * t->w + ix] > m)
                            m = x[(pl * t->h + iy) * t->w + ix];
                    }
                ref[(pl * oh + oy) * ow + ox] = m;
            }
}

/* Maxpool on small integers (many ties), and on random reals. */
static void run_maxpool(Rng *r, const PoolCase *t)
{
    int oh = pool_out(t->h, t->kh, t->sh, t->ph, t->dh, t->ceil);
    int ow = pool_out(t->w, t->kw, t->sw, t->pw, t->dw, t->ceil);
    size_t xsz = (size_t)t->n * t->c * t->h * t->w, ysz = (size_t)t->n * t->c * oh * ow;
    char what[128];
    snprintf(what, sizeof what, "maxpool2d %dx%d k%d,%d s%d,%d p%d,%d d%d,%d ceil%d", t->h, t->w, t->kh, t->kw, t->sh,
             t->sw, t->ph, t->pw, t->dh, t->dw, t->ceil);
    for (int ties = 0; ties <= 1; ties++) {
        float *x = rand_floats(r, xsz, 4.0f), *y = nan_floats(ysz);
        double *ref = new_doubles(ysz);
        if (ties)
            for (size_t i = 0; i < xsz; i++) x[i] = (float)rng_int(r, -2, 1);
        ref_maxpool(t, x, oh, ow, ref);
        nnc_maxpool2d(t->n, x, xsz / (size_t)t->n, t->c, t->h, t->w, y, ysz / (size_t)t->n, oh, ow, t->kh, t->kw,
                      t->sh, t->sw, t->ph, t->pw, t->dh, t->dw);
        check_close(y, ref, ysz, what);
        if (ties) {  /* y as a channel slice at float 4 of samples 9 floats longer (concat_elim.c) */
            size_t ys1 = ysz / (size_t)t->n, st = ys1 + 9;
            float *big = nan_floats((size_t)t->n * st);
            nnc_maxpool2d(t->n, x, xsz / (size_t)t->n, t->c, t->h, t->w, big + 4, st, oh, ow, t->kh, t->kw, t->sh,
                          t->sw, t->ph, t->pw, t->dh, t->dw);
            for (int i = 0; i < t->n; i++) {
                check_equal(big + (size_t)i * st + 4, y + (size_t)i * ys1, ys1, what);
                for (size_t j = 0; j < st; j++)
                    if (j < 4 || j >= 4 + ys1) assert_true(isnan(big[(size_t)i * st + j]));
            }
            free(big);
        }
        free(x), free(y), free(ref);
    }
}

static PoolCase random_pool(Rng *r)
{
    PoolCase t;
    t.n = rng_int(r, 1, 2), t.c = rng_int(r, 1, 3);
    t.kh = rng_int(r, 1, 4), t.kw = rng_int(r, 1, 4);
    t.sh = rng_int(r, 1, 3), t.sw = rng_int(r, 1, 3);
    t.dh = rng_int(r, 1, 2), t.dw = rng_int(r, 1, 2);
    t.ph = rng_int(r, 0, (t.dh * (t.kh - 1) + 1) / 2), t.pw = rng_int(r, 0, (t.dw * (t.kw - 1) + 1) / 2);
    t.h = t.dh * (t.kh - 1) + 1 + rng_int(r, 0, 8), t.w = t.dw * (t.kw - 1) + 1 + rng_int(r, 0, 8);
    t.ceil = rng_int(r, 0, 1);
    return t;
}

static void test_maxpool2d(void **state)
{
    Rng r = {0x3A7ULL};
    PoolCase dil = {2, 2, 11, 9, 3, 2, 2, 1, 2, 1, 2, 3, 0};  /* dilation, PyTorch allows pad <= k/2 */
    (void)state;
    for (size_t i = 0; i < sizeof pool_cases / sizeof pool_cases[0]; i++) run_maxpool(&r, &pool_cases[i]);
    run_maxpool(&r, &dil);
    dil.ceil = 1;
    run_maxpool(&r, &dil);
    for (int i = 0; i < 100; i++) {
        PoolCase t = random_pool(&r);
        run_maxpool(&r, &t);
    }
}

/* AvgPool2d by counting: a tap counts toward the padded window size while it
 * lies inside the padded image (rows < h+ph, cols < w+pw), and toward the
 * unpadded size while it lies inside the image. */
static void ref_avgpool(const PoolCase *t, int cip, const float *x, int oh, int ow, double *ref)
{
    for (int pl = 0; pl < t->n * t->c; pl++)
        for (int oy = 0; oy < oh; oy++)
            for (int ox = 0; ox < ow; ox++) {
                double s = 0.0;
                int padded = 0, inside = 0;
                for (int ki = 0; ki < t->kh; ki++)
                    for (int kj = 0; kj < t->kw; kj++) {
                        int iy = oy * t->sh - t->ph + ki, ix = ox * t->sw - t->pw + kj;
                        if (iy >= t->h + t->ph || ix >= t->w + t->pw) continue;
                        padded++;
                        if (iy < 0 || iy >= t->h || ix < 0 || ix >= t->w) continue;
                        inside++;
                        s += x[(pl * t->h + iy) * t->w + ix];
                    }
                ref[(pl * oh + oy) * ow + ox] = s / (cip ? padded : inside);
            }
}

static void run_avgpool(Rng *r, const PoolCase *t, int cip)
{
    int oh = pool_out(t->h, t->kh, t->sh, t->ph, 1, t->ceil), ow = pool_out(t->w, t->kw, t->sw, t->pw, 1, t->ceil);
    size_t xsz = (size_t)t->n * t->c * t->h * t->w, ysz = (size_t)t->n * t->c * oh * ow;
    float *x = rand_floats(r, xsz, 4.0f), *y = nan_floats(ysz);
    double *ref = new_doubles(ysz);
    char what[128];
    snprintf(what, sizeof what, "avgpool2d %dx%d k%d,%d s%d,%d p%d,%d ceil%d count_include_pad%d", t->h, t->w, t->kh,
             t->kw, t->sh, t->sw, t->ph, t->pw, t->ceil, cip);
    ref_avgpool(t, cip, x, oh, ow, ref);
    nnc_avgpool2d(t->n, x, xsz / (size_t)t->n, t->c, t->h, t->w, y, ysz / (size_t)t->n, oh, ow, t->kh, t->kw, t->sh,
                  t->sw, t->ph, t->pw, cip);
    check_close(y, ref, ysz, what);
    free(x), free(y), free(ref);
}

static void test_avgpool2d(void **state)
{
    Rng r = {0xA7EULL};
    (void)state;
    for (int cip = 0; cip <= 1; cip++) {
        for (size_t i = 0; i < sizeof pool_cases / sizeof pool_cases[0]; i++) run_avgpool(&r, &pool_cases[i], cip);
        for (int i = 0; i < 100; i++) {
            PoolCase t = random_pool(&r);
            t.dh = t.dw = 1;
            t.ph = rng_int(&r, 0, t.kh / 2), t.pw = rng_int(&r, 0, t.kw / 2);
            run_avgpool(&r, &t, cip);
        }
    }
}

/* Known values from PyTorch 2 (torch.nn.AvgPool2d(3, stride=2, padding=1,
 * ceil_mode=True) on a 1x1x4x4 ramp 0..15), times 36, for both count_include_pad. */
static void test_avgpool2d_torch_values(void **state)
{
    static const double with_pad36[] = {40, 96, 60, 204, 360, 198, 150, 252, 135};
    static const double without36[] = {90, 144, 180, 306, 360, 396, 450, 504, 540};
    double with_pad[9], without[9];
    float x[16], y[9];
    (void)state;
    for (int i = 0; i < 9; i++) with_pad[i] = with_pad36[i] / 36, without[i] = without36[i] / 36;
    for (int i = 0; i < 16; i++) x[i] = (float)i;
    nnc_avgpool2d(1, x, 16, 1, 4, 4, y, 9, 3, 3, 3, 3, 2, 2, 1, 1, 1);
    check_close(y, with_pad, 9, "avgpool2d vs torch, count_include_pad");
    nnc_avgpool2d(1, x, 16, 1, 4, 4, y, 9, 3, 3, 3, 3, 2, 2, 1, 1, 0);
    check_close(y, without, 9, "avgpool2d vs torch, no pad count");
}

static void test_global_avgpool(void **state)
{
    static const long hws[] = {1, 7, 49, 1000};
    Rng r = {0x61084ULL};
    (void)state;
    for (size_t t = 0; t < sizeof hws / sizeof hws[0]; t++) {
        int n = 3, c = 5;
        long hw = hws[t];
        float *x = rand_floats(&r, (size_t)n * c * hw, 2.0f), *y = nan_floats((size_t)n * c);
        double *ref = new_doubles((size_t)n * c);
        for (int p = 0; p < n * c; p++) {
            for (long q = 0; q < hw; q++) ref[p] += x[p * hw + q];
            ref[p] /= (double)hw;
        }
        nnc_global_avgpool(n, x, c, hw, y);
        check_close(y, ref, (size_t)n * c, "global_avgpool");
        free(x), free(y), free(ref);
    }
}

/* AdaptiveAvgPool2d from its definition (start floor(i*h/oh), end ceil((i+1)*h/oh)),
 * on shrinking, equal and growing sizes, plus values printed by PyTorch. */
static void test_adaptive_avgpool2d(void **state)
{
    static const int cases[][4] = {{5, 7, 3, 4}, {6, 6, 6, 6}, {13, 13, 6, 6}, {3, 2, 7, 7}, {14, 9, 4, 4}, {1, 1, 2, 3}};
    static const double torch_5x7_to_3x4[12] = {4.0, 5.5, 7.5, 9.0, 14.5, 16.0, 18.0, 19.5, 25.0, 26.5, 28.5, 30.0};
    Rng r = {0xada97ULL};
    float x35[35], y12[12];
    (void)state;
    for (size_t t = 0; t < sizeof cases / sizeof cases[0]; t++) {
        int n = 2, c = 3, h = cases[t][0], w = cases[t][1], oh = cases[t][2], ow = cases[t][3];
        float *x = rand_floats(&r, (size_t)n * c * h * w, 2.0f), *y = nan_floats((size_t)n * c * oh * ow);
        float *xp = new_floats((size_t)n * c * h * w), scale[3], shift[3];
        double *ref = new_doubles((size_t)n * c * oh * ow);
        for (int ch = 0; ch < c; ch++) scale[ch] = rng_float(&r), shift[ch] = rng_float(&r);
        for (size_t e = 0; e < (size_t)n * c * h * w; e++) {  /* the prologue: relu6(x*scale + shift) */
            size_t ch = e / ((size_t)h * w) % (size_t)c;
            float v = x[e] * scale[ch] + shift[ch];
            v = v < 0.0f ? 0.0f : v;
            xp[e] = v > 6.0f ? 6.0f : v;
        }
        for (int pro = 0; pro <= 1; pro++) {
        const float *xr = pro ? xp : x;
        for (int p = 0; p < n * c; p++)
            for (int i = 0; i < oh; i++)
                for (int j = 0; j < ow; j++) {
                    int r0 = (int)floor((double)i * h / oh), r1 = (int)ceil((double)(i + 1) * h / oh);
                    int q0 = (int)floor((double)j * w / ow), q1 = (int)ceil((double)(j + 1) * w / ow);
                    double s = 0.0;
                    for (int a = r0; a < r1; a++)
                        for (int b = q0; b < q1; b++) s += xr[((size_t)p * h + a) * w + b];
                    ref[((size_t)p * oh + i) * ow + j] = s / ((r1 - r0) * (q1 - q0));
                }
        nnc_adaptive_avgpool2d(n, x, (size_t)c * h * w, c, h, w, y, (size_t)c * oh * ow, oh, ow, pro ? scale : NULL,
                               pro ? shift : NULL, NNC_ACT_RELU6, 0.0f);
        check_close(y, ref, (size_t)n * c * oh * ow, pro ? "adaptive_avgpool2d with a prologue" : "adaptive_avgpool2d");
        }
        free(x), free(y), free(ref), free(xp);
    }
    for (int i = 0; i < 35; i++) x35[i] = (float)i;
    nnc_adaptive_avgpool2d(1, x35, 35, 1, 5, 7, y12, 12, 3, 4, NULL, NULL, NNC_ACT_NONE, 0.0f);
    check_close(y12, torch_5x7_to_3x4, 12, "adaptive_avgpool2d vs torch");
}

/* ---- lrn, concat, softmax ---- */

static void run_lrn(Rng *r, int n, int c, long hw, int size, float alpha, float beta, float k)
{
    size_t sz = (size_t)n * c * hw;
    float *x = rand_floats(r, sz, 3.0f), *y = nan_floats(sz);
    double *ref = new_doubles(sz);
    char what[96];
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++)
            for (long p = 0; p < hw; p++) {
                double s = 0.0;
                for (int c2 = ch - size / 2; c2 <= ch + (size - 1) / 2; c2++)
                    if (c2 >= 0 && c2 < c) s += (double)x[(i * c + c2) * hw + p] * x[(i * c + c2) * hw + p];
                ref[(i * c + ch) * hw + p] = x[(i * c + ch) * hw + p] / pow(k + alpha * s / size, beta);
            }
    nnc_lrn(n, x, c, hw, y, size, alpha, beta, k);
    snprintf(what, sizeof what, "lrn n%d c%d hw%ld size%d alpha%g beta%g k%g", n, c, hw, size, (double)alpha,
             (double)beta, (double)k);
    check_close(y, ref, sz, what);
    free(x), free(y), free(ref);
}

static void test_lrn(void **state)
{
    Rng r = {0x1A2ULL};
    (void)state;
    run_lrn(&r, 2, 12, 9, 5, 1e-4f, 0.75f, 2.0f);  /* AlexNet */
    run_lrn(&r, 2, 7, 5, 5, 0.5f, 0.9f, 1.0f);     /* strong normalization */
    run_lrn(&r, 1, 3, 4, 4, 0.3f, 0.75f, 1.0f);    /* even size: window [c-2, c+1] */
    run_lrn(&r, 2, 3, 6, 9, 0.3f, 0.5f, 1.5f);     /* window wider than the channels */
    run_lrn(&r, 3, 4, 1, 1, 0.7f, 1.0f, 1.0f);     /* size 1, hw 1 */
}

static void test_concat(void **state)
{
    static const long parts[] = {2 * 15, 3 * 15, 1 * 15};
    Rng r = {0xCA7ULL};
    const int n = 3;
    long total = parts[0] + parts[1] + parts[2], offset = 0;
    float *y = nan_floats((size_t)n * total), *want = new_floats((size_t)n * total);
    (void)state;
    for (size_t p = 0; p < 3; p++) {
        float *x = rand_floats(&r, (size_t)n * parts[p], 1.0f);
        for (int i = 0; i < n; i++)
            memcpy(want + i * total + offset, x + i * parts[p], (size_t)parts[p] * sizeof(float));
        nnc_concat_part(n, x, parts[p], y, total, offset);
        offset += parts[p];
        free(x);
    }
    check_equal(y, want, (size_t)n * total, "concat");
    free(y), free(want);
}

static void run_softmax(Rng *r, int n, int c, long inner, float scale, int in_place)
{
    size_t sz = (size_t)n * c * inner;
    float *x = rand_floats(r, sz, scale), *y = in_place ? x : nan_floats(sz);
    double *ref = new_doubles(sz);
    char what[96];
    for (int i = 0; i < n; i++)
        for (long j = 0; j < inner; j++) {
            double m = -INFINITY, s = 0.0;
            for (int ch = 0; ch < c; ch++) m = fmax(m, x[(i * c + ch) * inner + j]);
            for (int ch = 0; ch < c; ch++) s += exp(x[(i * c + ch) * inner + j] - m);
            for (int ch = 0; ch < c; ch++) ref[(i * c + ch) * inner + j] = exp(x[(i * c + ch) * inner + j] - m) / s;
        }
    nnc_softmax(n, x, c, inner, y);
    snprintf(what, sizeof what, "softmax n%d c%d inner%ld scale%g%s", n, c, inner, (double)scale,
             in_place ? " in place" : "");
    check_close(y, ref, sz, what);
    if (!in_place) free(y);
    free(x), free(ref);
}

static void test_softmax(void **state)
{
    Rng r = {0x50F7ULL};
    (void)state;
    run_softmax(&r, 1, 1, 1, 1.0f, 0);
    run_softmax(&r, 3, 10, 1, 3.0f, 0);
    run_softmax(&r, 2, 1000, 1, 5.0f, 0);     /* ImageNet logits */
    run_softmax(&r, 2, 10, 1, 1000.0f, 0);    /* exp would overflow without the max */
    run_softmax(&r, 2, 10, 1, 1e30f, 1);
    run_softmax(&r, 2, 6, 7, 50.0f, 0);       /* over channels of [n][c][hw] */
    run_softmax(&r, 3, 5, 13, 200.0f, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batchnorm),
        cmocka_unit_test(test_bn_fold),
        cmocka_unit_test(test_bn_scale),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_linear_epilogue),
        cmocka_unit_test(test_elementwise),
        cmocka_unit_test(test_sigmoid_extremes),
        cmocka_unit_test(test_add_and_copy),
        cmocka_unit_test(test_maxpool2d),
        cmocka_unit_test(test_avgpool2d),
        cmocka_unit_test(test_avgpool2d_torch_values),
        cmocka_unit_test(test_global_avgpool),
        cmocka_unit_test(test_adaptive_avgpool2d),
        cmocka_unit_test(test_lrn),
        cmocka_unit_test(test_concat),
        cmocka_unit_test(test_softmax),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
