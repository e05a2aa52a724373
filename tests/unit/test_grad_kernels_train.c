/* test_grad_kernels_train.c: the training kernels of
 * runtime/snippets/grad_kernels_norm.c and grad_kernels_loss.c: batchnorm in
 * training mode, the backward of the activations, softmax, concat and LRN,
 * dropout, the losses and count_correct, against central finite differences
 * of double-precision references (method and tolerance: grad_test.h); and the
 * fused chain conv -> batchnorm -> activation against the unfused kernels. */
#include "tests/unit/grad_test.h"

/* How many activations the table has, NNC_ACT_NONE included. */
#define GT_ONE_(...) +1
enum { N_ACTS = 1 NNC_ACTIVATIONS(GT_ONE_) };
#undef GT_ONE_

/* ---- batchnorm in training mode ---- */

typedef struct BnCtx {
    int n, c;
    long hw;
    const T *x, *gamma, *beta;
    double eps;
} BnCtx;

/* BatchNorm with batch statistics, from the definition: biased variance, in double. */
static void ref_bn_train(const void *vctx, double *y)
{
    const BnCtx *cx = vctx;
    double m = (double)cx->n * cx->hw;
    for (int ch = 0; ch < cx->c; ch++) {
        double s = 0.0, ss = 0.0, mean, var;
        for (int i = 0; i < cx->n; i++)
            for (long p = 0; p < cx->hw; p++) s += cx->x->d[((size_t)i * cx->c + ch) * cx->hw + p];
        mean = s / m;
        for (int i = 0; i < cx->n; i++)
            for (long p = 0; p < cx->hw; p++) {
                double d = cx->x->d[((size_t)i * cx->c + ch) * cx->hw + p] - mean;
                ss += d * d;
            }
        var = ss / m;
        for (int i = 0; i < cx->n; i++)
            for (long p = 0; p < cx->hw; p++) {
                size_t e = ((size_t)i * cx->c + ch) * cx->hw + p;
                y[e] = (cx->x->d[e] - mean) / sqrt(var + cx->eps) * (cx->gamma ? cx->gamma->d[ch] : 1.0) +
                       (cx->beta ? cx->beta->d[ch] : 0.0);
            }
    }
}

static void check_close_d(const float *out, const double *ref, size_t count, double tol, const char *what)
{
    for (size_t i = 0; i < count; i++) {
        double scale = fabs(ref[i]) > 1.0 ? fabs(ref[i]) : 1.0;
        if (!(fabs((double)out[i] - ref[i]) <= tol * scale))
            fail_msg("%s: element %zu is %.9g, want %.9g", what, i, (double)out[i], ref[i]);
    }
}

/* offset shifts x (|mean| >> std tests the centring); affine 0: gamma = beta = NULL. */
static void run_bn_train(Rng *r, int n, int c, long hw, int affine, float offset, int track)
{
    size_t sz = (size_t)n * c * hw;
    T x = t_rand(r, sz, 2.0f), gamma = t_rand(r, (size_t)c, 2.0f), beta = t_rand(r, (size_t)c, 1.0f);
    T dy = t_rand(r, sz, 1.0f);
    G dx = g_new(r, sz), dgamma = g_new(r, (size_t)c), dbeta = g_new(r, (size_t)c);
    float *y = malloc(sz * sizeof *y), *smean = malloc((size_t)c * sizeof(float)), *sinv = malloc((size_t)c * sizeof(float));
    float *rm = malloc((size_t)c * sizeof(float)), *rv = malloc((size_t)c * sizeof(float));
    double *yref = new_doubles(sz), *want_rm = new_doubles((size_t)c), *want_rv = new_doubles((size_t)c);
    double *want_mean = new_doubles((size_t)c), *want_inv = new_doubles((size_t)c);
    const float eps = 1e-5f, momentum = 0.1f;
    BnCtx cx = {n, c, hw, &x, affine ? &gamma : NULL, affine ? &beta : NULL, eps};
    Fd f = {ref_bn_train, &cx, sz, dy.d, new_doubles(sz)};
    double m = (double)n * hw;
    char what[128];
    assert_true(y && smean && sinv && rm && rv);
    for (size_t i = 0; i < sz; i++) x.f[i] += offset, x.d[i] = x.f[i];
    for (int ch = 0; ch < c; ch++) {
        double s = 0.0, ss = 0.0;
        rm[ch] = rng_float(r), rv[ch] = 1.0f + 0.5f * rng_float(r);
        for (int i = 0; i < n; i++)
            for (long p = 0; p < hw; p++) s += x.d[((size_t)i * c + ch) * hw + p];
        want_mean[ch] = s / m;
        for (int i = 0; i < n; i++)
            for (long p = 0; p < hw; p++) {
                double d = x.d[((size_t)i * c + ch) * hw + p] - want_mean[ch];
                ss += d * d;
            }
        want_inv[ch] = 1.0 / sqrt(ss / m + eps);
        want_rm[ch] = 0.9 * rm[ch] + 0.1 * want_mean[ch];
        want_rv[ch] = 0.9 * rv[ch] + 0.1 * ss / (m - 1.0);  /* the unbiased variance */
    }
    snprintf(what, sizeof what, "batchnorm_train n%d c%d hw%ld affine%d offset%g", n, c, hw, affine, (double)offset);
    nnc_batchnorm_train(n, x.f, c, hw, affine ? gamma.f : NULL, affine ? beta.f : NULL, eps, momentum,
                        track ? rm : NULL, track ? rv : NULL, y, smean, sinv);
    ref_bn_train(&cx, yref);
    check_close_d(y, yref, sz, 1e-4, what);
    check_close_d(smean, want_mean, (size_t)c, 1e-6, "save_mean");
    check_close_d(sinv, want_inv, (size_t)c, 1e-5, "save_invstd");
    if (track) {
        check_close_d(rm, want_rm, (size_t)c, 1e-6, "running_mean");
        check_close_d(rv, want_rv, (size_t)c, 1e-6, "running_var");
    }
    nnc_batchnorm_backward(n, x.f, c, hw, affine ? gamma.f : NULL, smean, sinv, dy.f, dx.g,
                           affine ? dgamma.g : NULL, affine ? dbeta.g : NULL);
    check_fd(&f, &x, &dx, what);
    if (affine) {
        check_fd(&f, &gamma, &dgamma, what);
        check_fd(&f, &beta, &dbeta, what);
    }
    free(y), free(smean), free(sinv), free(rm), free(rv), free(yref), free(want_rm), free(want_rv);
    free(want_mean), free(want_inv), free(f.ybuf);
    t_free(&x), t_free(&gamma), t_free(&beta), t_free(&dy);
    g_free(&dx), g_free(&dgamma), g_free(&dbeta);
}

static void test_batchnorm_train(void **state)
{
    Rng r = {0xB47ULL};
    (void)state;
    run_bn_train(&r, 2, 3, 1, 1, 0.0f, 1);    /* BatchNorm1d, m = 2 */
    run_bn_train(&r, 7, 5, 1, 1, 0.0f, 1);    /* BatchNorm1d on [n][c] */
    run_bn_train(&r, 2, 3, 25, 1, 0.0f, 1);   /* BatchNorm2d 5x5 */
    run_bn_train(&r, 3, 4, 13, 0, 0.0f, 1);   /* affine=False */
    run_bn_train(&r, 1, 2, 9, 1, 0.0f, 0);    /* batch 1 (statistics over the plane), no running stats */
    run_bn_train(&r, 4, 2, 6, 1, 20.0f, 1);   /* mean far from zero */
}

/* The running statistics over several steps, against numbers PyTorch prints for
 * torch.nn.BatchNorm1d(1, momentum=0.1) fed [[1],[2],[3],[6]] twice:
 * running_mean 0.3 then 0.57, running_var 0.9 + 0.1*14/3 = 1.3666667 then 1.6966667. */
static void test_batchnorm_running_stats(void **state)
{
    float x[4] = {1.0f, 2.0f, 3.0f, 6.0f}, y[4], sm, si, rm = 0.0f, rv = 1.0f;
    (void)state;
    nnc_batchnorm_train(4, x, 1, 1, NULL, NULL, 1e-5f, 0.1f, &rm, &rv, y, &sm, &si);
    assert_float_equal(rm, 0.3f, 1e-6f);
    assert_float_equal(rv, 1.3666667f, 1e-6f);
    assert_float_equal(sm, 3.0f, 1e-6f);
    assert_float_equal(si, (float)(1.0 / sqrt(3.5 + 1e-5)), 1e-6f);
    nnc_batchnorm_train(4, x, 1, 1, NULL, NULL, 1e-5f, 0.1f, &rm, &rv, y, &sm, &si);
    assert_float_equal(rm, 0.57f, 1e-6f);
    assert_float_equal(rv, 1.6966667f, 1e-6f);
}

/* ---- activations, softmax, concat, accumulate ---- */

typedef struct ActCtx {
    int act;
    const T *x;
} ActCtx;

static void ref_act(const void *vctx, double *y)
{
    const ActCtx *cx = vctx;
    for (size_t i = 0; i < cx->x->n; i++) {
        double v = cx->x->d[i];
        switch (cx->act) {
        case NNC_ACT_RELU: y[i] = v > 0 ? v : 0; break;
        case NNC_ACT_RELU6: y[i] = v < 0 ? 0 : v > 6 ? 6 : v; break;
        case NNC_ACT_LEAKY_RELU: y[i] = v > 0 ? v : 0.125 * v; break;
        case NNC_ACT_SIGMOID: y[i] = 1.0 / (1.0 + exp(-v)); break;
        case NNC_ACT_TANH: y[i] = tanh(v); break;
        case NNC_ACT_SILU: y[i] = v / (1.0 + exp(-v)); break;
        case NNC_ACT_HARDSWISH: y[i] = v * (v + 3 < 0 ? 0 : v + 3 > 6 ? 6 : v + 3) / 6; break;
        case NNC_ACT_GELU: y[i] = 0.5 * v * (1.0 + erf(v / sqrt(2.0))); break;
        default: fail_msg("activation %d has no reference in test_grad_kernels_train.c", cx->act);
        }
    }
}

/* What nnc_activation_backward reads as v for act: the FROM of its row of activations.h. */
static int act_from(int act)
{
    switch (act) {
#define FROM_CASE_(ID, name, FROM, ...) case NNC_ACT_##ID: return FROM;
        NNC_ACTIVATIONS(FROM_CASE_)
#undef FROM_CASE_
    default: return NNC_FROM_Y;
    }
}

/* nnc_activation, then nnc_activation_backward from the value the table says
 * (the output, or the input for NNC_FROM_X and _XS), against finite
 * differences; for NNC_FROM_XS also from the output, which a positive slope allows. */
static void run_act_backward(Rng *r, int act, int from_y)
{
    enum { N = 301 };
    T x = t_rand(r, N, 8.0f), dy = t_rand(r, N, 1.0f);
    G dx = g_new(r, N);
    float y[N];
    ActCtx cx = {act, &x};
    Fd f = {ref_act, &cx, N, dy.d, new_doubles(N)};
    char what[64];
    for (size_t i = 0; i < N; i++) {  /* keep every x 1e-3 away from the kinks at 0, 6 and +-3 (hardswish) */
        if (fabsf(x.f[i]) < 1e-3f) x.f[i] = 0.5f;
        if (fabsf(x.f[i] - 6.0f) < 1e-3f) x.f[i] = 5.5f;
        if (fabsf(fabsf(x.f[i]) - 3.0f) < 1e-3f) x.f[i] = 2.5f;
        x.d[i] = x.f[i];
    }
    nnc_activation(N, x.f, y, act, 0.125f);
    nnc_activation_backward(N, from_y ? y : x.f, dy.f, dx.g, act, 0.125f);
    snprintf(what, sizeof what, "activation_backward %d from %s", act, from_y ? "y" : "x");
    check_fd(&f, &x, &dx, what);
    free(f.ybuf);
    t_free(&x), t_free(&dy);
    g_free(&dx);
}

static void test_activation_backward(void **state)
{
    Rng r = {0xAC7ULL};
    float v[4] = {0.0f, -0.0f, 6.0f, NAN}, dy[4] = {1.0f, 1.0f, 1.0f, 1.0f}, dx[4] = {0};
    (void)state;
    for (int act = NNC_ACT_NONE + 1; act < N_ACTS; act++) {
        run_act_backward(&r, act, act_from(act) == NNC_FROM_Y);
        if (act_from(act) == NNC_FROM_XS) run_act_backward(&r, act, 1);
    }
    /* PyTorch at the kinks: relu'(0) = 0, hardtanh'(0) = hardtanh'(6) = 0, leaky'(0) = slope. */
    nnc_activation_backward(3, v, dy, dx, NNC_ACT_RELU, 0.0f);
    assert_true(dx[0] == 0.0f && dx[1] == 0.0f && dx[2] == 1.0f);
    memset(dx, 0, sizeof dx);
    nnc_activation_backward(3, v, dy, dx, NNC_ACT_RELU6, 0.0f);
    assert_true(dx[0] == 0.0f && dx[1] == 0.0f && dx[2] == 0.0f);
    memset(dx, 0, sizeof dx);
    nnc_activation_backward(2, v, dy, dx, NNC_ACT_LEAKY_RELU, 0.25f);
    assert_true(dx[0] == 0.25f && dx[1] == 0.25f);
    /* where the gradient is 0, nothing is added: -0 stays -0 */
    dx[0] = -0.0f;
    nnc_activation_backward(1, v, dy, dx, NNC_ACT_RELU, 0.0f);
    assert_true(dx[0] == 0.0f && signbit(dx[0]));
}

typedef struct SmCtx {
    int n, c;
    long inner;
    const T *x;
} SmCtx;

static void ref_softmax(const void *vctx, double *y)
{
    const SmCtx *cx = vctx;
    for (int i = 0; i < cx->n; i++)
        for (long j = 0; j < cx->inner; j++) {
            double m = -INFINITY, s = 0.0;
            for (int ch = 0; ch < cx->c; ch++) m = fmax(m, cx->x->d[(i * cx->c + ch) * cx->inner + j]);
            for (int ch = 0; ch < cx->c; ch++) s += exp(cx->x->d[(i * cx->c + ch) * cx->inner + j] - m);
            for (int ch = 0; ch < cx->c; ch++)
                y[(i * cx->c + ch) * cx->inner + j] = exp(cx->x->d[(i * cx->c + ch) * cx->inner + j] - m) / s;
        }
}

static void run_softmax_backward(Rng *r, int n, int c, long inner, float scale)
{
    size_t sz = (size_t)n * c * inner;
    T x = t_rand(r, sz, scale), dy = t_rand(r, sz, 1.0f);
    G dx = g_new(r, sz);
    float *y = malloc(sz * sizeof *y);
    SmCtx cx = {n, c, inner, &x};
    Fd f = {ref_softmax, &cx, sz, dy.d, new_doubles(sz)};
    assert_non_null(y);
    nnc_softmax(n, x.f, c, inner, y);
    nnc_softmax_backward(n, y, dy.f, c, inner, dx.g);
    check_fd(&f, &x, &dx, "softmax_backward");
    free(y), free(f.ybuf);
    t_free(&x), t_free(&dy);
    g_free(&dx);
}

static void test_softmax_backward(void **state)
{
    Rng r = {0x50F7ULL};
    (void)state;
    run_softmax_backward(&r, 3, 10, 1, 3.0f);
    run_softmax_backward(&r, 2, 6, 7, 5.0f);
    run_softmax_backward(&r, 1, 1, 4, 1.0f);  /* one class: gradient 0 */
}

static void test_concat_and_accumulate(void **state)
{
    Rng r = {0xCA7ULL};
    enum { N = 3, A = 5, B = 7 };
    T dy = t_rand(&r, N * (A + B), 1.0f);
    G da = g_new(&r, N * A), db = g_new(&r, N * B), dsum = g_new(&r, N * A);
    double *want_a = new_doubles(N * A), *want_b = new_doubles(N * B);
    (void)state;
    for (int i = 0; i < N; i++) {
        for (int p = 0; p < A; p++) want_a[i * A + p] = dy.d[i * (A + B) + p];
        for (int p = 0; p < B; p++) want_b[i * B + p] = dy.d[i * (A + B) + A + p];
    }
    nnc_concat_part_backward(N, dy.f, A + B, 0, da.g, A);
    nnc_concat_part_backward(N, dy.f, A + B, A, db.g, B);
    check_grad(da.g, da.before, want_a, N * A, "concat_backward first part");
    check_grad(db.g, db.before, want_b, N * B, "concat_backward second part");
    nnc_grad_accumulate(N * A, dy.f, dsum.g);
    for (int i = 0; i < N * A; i++) want_a[i] = dy.d[i];
    check_grad(dsum.g, dsum.before, want_a, N * A, "grad_accumulate");
    free(want_a), free(want_b);
    t_free(&dy);
    g_free(&da), g_free(&db), g_free(&dsum);
}

/* ---- dropout ---- */

static void test_dropout(void **state)
{
    enum { N = 200000 };
    float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y), *y2 = malloc(N * sizeof *y2);
    float *dy = malloc(N * sizeof *dy), *dx = malloc(N * sizeof *dx);
    Rng r = {0xD20ULL};
    NncRng rng = {42, 0};
    const float p = 0.3f, scale = 1.0f / (1.0f - p);
    uint64_t s1, s2;
    size_t kept = 0, same = 0;
    (void)state;
    assert_true(x && y && y2 && dy && dx);
    for (size_t i = 0; i < N; i++) x[i] = 1.0f + fabsf(rng_float(&r)), dy[i] = rng_float(&r), dx[i] = 1.0f;
    s1 = nnc_rng_reserve(&rng, N);
    s2 = nnc_rng_reserve(&rng, N);
    assert_true(s1 == 0 && s2 == N && rng.counter == 2 * (uint64_t)N);
    nnc_dropout_train(N, x, y, p, rng.key, s1);
    for (size_t i = 0; i < N; i++) {
        assert_true(y[i] == 0.0f || y[i] == x[i] * scale);
        kept += y[i] != 0.0f;
    }
    /* kept ~ Binomial(N, 0.7): sd = sqrt(N*0.21) ~ 205, so 0.7N +- 2000 is ~10 sd. */
    assert_true(kept > (size_t)(0.7 * N) - 2000 && kept < (size_t)(0.7 * N) + 2000);
    /* the same key and start give the same mask; the backward regenerates it */
    nnc_dropout_train(N, x, y2, p, rng.key, s1);
    assert_memory_equal(y, y2, N * sizeof *y);
    nnc_dropout_backward(N, dy, dx, p, rng.key, s1);
    for (size_t i = 0; i < N; i++) assert_true(dx[i] == (y[i] != 0.0f ? 1.0f + dy[i] * scale : 1.0f));
    /* the next draws give a different mask (agreeing at ~ 0.7^2 + 0.3^2 = 58% of places) */
    nnc_dropout_train(N, x, y2, p, rng.key, s2);
    for (size_t i = 0; i < N; i++) same += (y[i] != 0.0f) == (y2[i] != 0.0f);
    assert_true(same > (size_t)(0.55 * N) && same < (size_t)(0.61 * N));
    /* in place, p = 0 (identity) and p = 1 (zeros, as PyTorch) */
    memcpy(y2, x, N * sizeof *x);
    nnc_dropout_train(N, y2, y2, p, rng.key, s1);
    assert_memory_equal(y, y2, N * sizeof *y);
    nnc_dropout_train(N, x, y, 0.0f, 7, 0);
    assert_memory_equal(x, y, N * sizeof *y);
    nnc_dropout_train(N, x, y, 1.0f, 7, 0);
    for (size_t i = 0; i < N; i++) assert_true(y[i] == 0.0f);
    free(x), free(y), free(y2), free(dy), free(dx);
}

/* ---- losses ---- */

typedef struct CeCtx {
    int n, c;
    const T *z;
    const int *labels;
    double eps;
} CeCtx;

/* CrossEntropyLoss(label_smoothing=eps) as PyTorch documents it, with log p from log-softmax in double. */
static void ref_cross_entropy(const void *vctx, double *loss)
{
    const CeCtx *cx = vctx;
    double total = 0.0;
    for (int i = 0; i < cx->n; i++) {
        const double *z = cx->z->d + (size_t)i * cx->c;
        double m = -INFINITY, s = 0.0, lse, smooth = 0.0;
        for (int ch = 0; ch < cx->c; ch++) m = fmax(m, z[ch]);
        for (int ch = 0; ch < cx->c; ch++) s += exp(z[ch] - m);
        lse = m + log(s);
        for (int ch = 0; ch < cx->c; ch++) smooth += -(z[ch] - lse);
        total += (1.0 - cx->eps) * -(z[cx->labels[i]] - lse) + cx->eps * smooth / cx->c;
    }
    *loss = total / cx->n;
}

static void run_cross_entropy(Rng *r, int n, int c, float scale, float eps)
{
    T z = t_rand(r, (size_t)n * c, scale);
    G dz = g_new(r, (size_t)n * c);
    int *labels = malloc((size_t)n * sizeof *labels);
    double one = 1.0, want;
    CeCtx cx = {n, c, &z, labels, eps};
    Fd f = {ref_cross_entropy, &cx, 1, &one, new_doubles(1)};
    char what[96];
    float loss;
    assert_non_null(labels);
    for (int i = 0; i < n; i++) labels[i] = rng_int(r, 0, c - 1);
    loss = nnc_cross_entropy(n, z.f, c, labels, eps, dz.g);
    ref_cross_entropy(&cx, &want);
    snprintf(what, sizeof what, "cross_entropy n%d c%d scale%g eps%g", n, c, (double)scale, (double)eps);
    if (!(fabs(loss - want) <= 1e-5 * fmax(1.0, fabs(want)))) fail_msg("%s: loss %.9g, want %.9g", what, (double)loss, want);
    check_fd(&f, &z, &dz, what);
    free(labels), free(f.ybuf);
    t_free(&z);
    g_free(&dz);
}

static void test_cross_entropy(void **state)
{
    Rng r = {0xCEULL};
    float z[6] = {1.0f, 2.0f, 3.0f, 0.5f, 0.5f, 0.5f}, dz[6] = {0};
    int labels[2] = {2, 0}, bad[2] = {2, 3};
    (void)state;
    for (int e = 0; e < 3; e++) {
        float eps = e == 0 ? 0.0f : e == 1 ? 0.1f : 0.5f;
        run_cross_entropy(&r, 1, 1, 1.0f, eps);
        run_cross_entropy(&r, 4, 10, 3.0f, eps);
        run_cross_entropy(&r, 7, 3, 1.0f, eps);
        run_cross_entropy(&r, 3, 5, 40.0f, eps);  /* logits where naive exp overflows float */
    }
    /* PyTorch: F.cross_entropy(tensor([[1.,2,3],[.5,.5,.5]]), tensor([2,0])) = 0.7531091,
     * and with label_smoothing=0.1: 0.8031090. */
    assert_float_equal(nnc_cross_entropy(2, z, 3, labels, 0.0f, NULL), 0.7531091f, 1e-6f);
    assert_float_equal(nnc_cross_entropy(2, z, 3, labels, 0.1f, NULL), 0.8031090f, 1e-6f);
    /* a label out of range: NaN, nothing written */
    assert_true(isnan(nnc_cross_entropy(2, z, 3, bad, 0.0f, dz)));
    for (int i = 0; i < 6; i++) assert_true(dz[i] == 0.0f);
}

typedef struct PairCtx {
    const T *x, *t;
    int bce;
} PairCtx;

/* BCE from its textbook form -(t log s + (1 - t) log(1 - s)), s = sigmoid(x), or MSE. */
static void ref_pair_loss(const void *vctx, double *loss)
{
    const PairCtx *cx = vctx;
    double total = 0.0;
    for (size_t i = 0; i < cx->x->n; i++) {
        double v = cx->x->d[i], t = cx->t->d[i];
        if (cx->bce) {
            double s = 1.0 / (1.0 + exp(-v));
            total += -(t * log(s) + (1.0 - t) * log1p(-s));
        } else {
            total += (v - t) * (v - t);
        }
    }
    *loss = total / (double)cx->x->n;
}

static void run_pair_loss(Rng *r, size_t n, int bce)
{
    T x = t_rand(r, n, 4.0f), t = t_rand(r, n, 1.0f);
    G dx = g_new(r, n);
    double one = 1.0, want;
    PairCtx cx = {&x, &t, bce};
    Fd f = {ref_pair_loss, &cx, 1, &one, new_doubles(1)};
    float loss;
    if (bce)
        for (size_t i = 0; i < n; i++) t.f[i] = i % 3 == 0 ? 0.5f * (t.f[i] + 1.0f) : (float)(i % 2), t.d[i] = t.f[i];
    loss = bce ? nnc_bce_with_logits(n, x.f, t.f, dx.g) : nnc_mse_loss(n, x.f, t.f, dx.g);
    ref_pair_loss(&cx, &want);
    if (!(fabs(loss - want) <= 1e-5 * fmax(1.0, fabs(want))))
        fail_msg("%s: loss %.9g, want %.9g", bce ? "bce" : "mse", (double)loss, want);
    check_fd(&f, &x, &dx, bce ? "bce_with_logits" : "mse_loss");
    free(f.ybuf);
    t_free(&x), t_free(&t);
    g_free(&dx);
}

static void test_bce_mse(void **state)
{
    Rng r = {0xBCEULL};
    float x[4] = {100.0f, -100.0f, 100.0f, -100.0f}, t[4] = {1.0f, 0.0f, 0.0f, 1.0f}, dx[4] = {0};
    float a[3] = {1.0f, 2.0f, 3.0f}, b[3] = {0.0f, 2.5f, 1.0f};
    float loss;
    (void)state;
    run_pair_loss(&r, 1, 1);
    run_pair_loss(&r, 37, 1);
    run_pair_loss(&r, 1, 0);
    run_pair_loss(&r, 37, 0);
    /* extreme logits stay finite: PyTorch gives (0 + 0 + 100 + 100)/4 = 50 */
    loss = nnc_bce_with_logits(4, x, t, dx);
    assert_float_equal(loss, 50.0f, 1e-4f);
    assert_float_equal(dx[0], 0.0f, 1e-7f);
    assert_float_equal(dx[2], 0.25f, 1e-7f);
    assert_float_equal(dx[3], -0.25f, 1e-7f);
    /* MSELoss: (1 + 0.25 + 4)/3 */
    assert_float_equal(nnc_mse_loss(3, a, b, NULL), 1.75f, 1e-6f);
}

static void test_count_correct(void **state)
{
    float z[4 * 3] = {0.1f, 0.9f, 0.3f,    /* argmax 1 */
                      0.5f, 0.5f, 0.2f,    /* tie: torch.argmax takes the first, 0 */
                      -1.0f, -2.0f, -0.5f, /* 2 */
                      1.0f, NAN, 2.0f};    /* NaN is the max: 1 */
    int labels[4] = {1, 1, 2, 1};
    (void)state;
    assert_int_equal(nnc_count_correct(4, z, 3, labels), 3);
    labels[1] = 0;
    assert_int_equal(nnc_count_correct(4, z, 3, labels), 4);
}

/* ---- lrn ---- */

typedef struct LrnCtx {
    int n, c, size;
    long hw;
    double alpha, beta, k;
    const T *x;
} LrnCtx;

static void ref_lrn(const void *vctx, double *y)
{
    const LrnCtx *cx = vctx;
    for (int i = 0; i < cx->n; i++)
        for (int ch = 0; ch < cx->c; ch++)
            for (long p = 0; p < cx->hw; p++) {
                double s = 0.0;
                for (int c2 = ch - cx->size / 2; c2 <= ch + (cx->size - 1) / 2; c2++)
                    if (c2 >= 0 && c2 < cx->c) {
                        double v = cx->x->d[((size_t)i * cx->c + c2) * cx->hw + p];
                        s += v * v;
                    }
                y[((size_t)i * cx->c + ch) * cx->hw + p] =
                    cx->x->d[((size_t)i * cx->c + ch) * cx->hw + p] / pow(cx->k + cx->alpha / cx->size * s, cx->beta);
            }
}

static void run_lrn_backward(Rng *r, int n, int c, long hw, int size, float alpha, float beta, float k)
{
    size_t sz = (size_t)n * c * hw;
    T x = t_rand(r, sz, 2.0f), dy = t_rand(r, sz, 1.0f);
    G dx = g_new(r, sz);
    float *scratch = malloc(nnc_lrn_backward_scratch(c) * sizeof(float));
    LrnCtx cx = {n, c, size, hw, alpha, beta, k, &x};
    Fd f = {ref_lrn, &cx, sz, dy.d, new_doubles(sz)};
    char what[64];
    assert_non_null(scratch);
    nnc_lrn_backward(n, x.f, c, hw, dy.f, size, alpha, beta, k, dx.g, scratch);
    snprintf(what, sizeof what, "lrn_backward c%d size%d", c, size);
    check_fd(&f, &x, &dx, what);
    free(scratch), free(f.ybuf);
    t_free(&x), t_free(&dy);
    g_free(&dx);
}

static void test_lrn_backward(void **state)
{
    Rng r = {0x1A7ULL};
    (void)state;
    run_lrn_backward(&r, 2, 7, 5, 5, 1e-1f, 0.75f, 2.0f);  /* AlexNet's parameters, larger alpha */
    run_lrn_backward(&r, 1, 6, 4, 4, 0.5f, 0.75f, 1.0f);   /* even size: asymmetric window */
    run_lrn_backward(&r, 2, 3, 3, 7, 0.3f, 0.5f, 1.0f);    /* window wider than the channels */
}

/* ---- the fused training chain: conv -> batchnorm -> activation ---- */

static float *rnd(Rng *r, size_t n, float scale)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) p[i] = scale * rng_float(r);
    return p;
}

static void close_to(const float *a, const float *b, size_t n, float tol, const char *what)
{
    float m = 0.0f;
    for (size_t i = 0; i < n; i++) m = fabsf(b[i]) > m ? fabsf(b[i]) : m;
    for (size_t i = 0; i < n; i++)
        if (fabsf(a[i] - b[i]) > tol * (m > 1.0f ? m : 1.0f))
            fail_msg("%s: element %zu is %.9g, unfused %.9g", what, i, (double)a[i], (double)b[i]);
}

/* nnc_conv2d_stats + nnc_batchnorm_act_train against nnc_conv2d +
 * nnc_batchnorm_train + the activation kernel, and nnc_batchnorm_act_backward
 * against the activation's backward + nnc_batchnorm_backward: same outputs,
 * running statistics, saved statistics and gradients up to rounding (the
 * fused variance is sumsq/m - mean^2 in double, the unfused a second pass;
 * the fused convolution is nnc_conv2d_mt's). */
static void test_bn_train_fused(void **state)
{
    (void)state;
    Rng r = {0xF05EDULL};
    for (int a = NNC_ACT_NONE; a < N_ACTS; a++) {
        int n = 3, c = 4, h = 7, w = 6, k = 5, oh = 7, ow = 6, act = a;
        size_t xs = (size_t)n * c * h * w, ys = (size_t)n * k * oh * ow;
        long hw = (long)oh * ow;
        float *x = rnd(&r, xs, 1.0f), *wt = rnd(&r, (size_t)k * c * 9, 0.5f), *bias = rnd(&r, (size_t)k, 1.0f);
        float *gamma = rnd(&r, (size_t)k, 1.0f), *beta = rnd(&r, (size_t)k, 1.0f);
        float *sc = malloc(nnc_conv2d_scratch(n, c, h, w, k, 3, 3, 1, 1, 1, 1, oh, ow, 1, 0) * sizeof *sc);
        float *t1 = malloc(ys * sizeof *t1), *t2 = malloc(ys * sizeof *t2), *y1 = malloc(ys * sizeof *y1);
        float *y2 = malloc(ys * sizeof *y2), rm1[5], rv1[5], rm2[5], rv2[5], sm1[5], si1[5], sm2[5], si2[5];
        double stats[10] = {0};
        for (int i = 0; i < k; i++) rm1[i] = rm2[i] = 0.1f * (float)i, rv1[i] = rv2[i] = 1.0f + 0.2f * (float)i;
        /* unfused */
        nnc_conv2d(n, x, (size_t)c * h * w, c, h, w, wt, bias, t1, (size_t)k * hw, k, oh, ow, 3, 3, 1, 1, 1, 1, 1, 1, 1,
                   sc, NULL, 0, NNC_ACT_NONE, 0.0f, k, NULL, NULL, NNC_ACT_NONE, 0.0f);
        nnc_batchnorm_train(n, t1, k, hw, gamma, beta, 1e-5f, 0.1f, rm1, rv1, y1, sm1, si1);
        nnc_epilogue(y1, ys, NULL, act, 0.1f);
        /* fused */
        nnc_conv2d_stats(NULL, n, x, c, h, w, wt, bias, t2, k, oh, ow, 3, 3, 1, 1, 1, 1, 1, 1, 1, sc, stats);
        nnc_batchnorm_act_train(NULL, n, t2, k, hw, stats, gamma, beta, 1e-5f, 0.1f, rm2, rv2, y2, sm2, si2, act, 0.1f);
        close_to(t2, t1, ys, 1e-5f, "conv2d_stats output");  /* nnc_conv2d_mt's GEMM blocks the sums its own way */
        close_to(y2, y1, ys, 2e-5f, "batchnorm_act_train output");
        close_to(rm2, rm1, (size_t)k, 1e-6f, "running mean");
        close_to(rv2, rv1, (size_t)k, 1e-5f, "running var");
        close_to(si2, si1, (size_t)k, 1e-5f, "saved 1/std");
        /* backward */
        float *dy = rnd(&r, ys, 1.0f), *g = calloc(ys, sizeof *g), *dx1 = calloc(ys, sizeof *dx1);
        float *dx2 = calloc(ys, sizeof *dx2), dg1[5] = {0}, db1[5] = {0}, dg2[5] = {0}, db2[5] = {0};
        nnc_activation_backward(ys, y1, dy, g, act, 0.1f);  /* NNC_ACT_NONE: g += dy */
        nnc_batchnorm_backward(n, t1, k, hw, gamma, sm1, si1, g, dx1, dg1, db1);
        nnc_batchnorm_act_backward(NULL, n, t1, k, hw, gamma, sm1, si1, y1, dy, act, 0.1f, dx2, dg2, db2);
        close_to(dx2, dx1, ys, 1e-6f, "batchnorm_act_backward dx");
        close_to(dg2, dg1, (size_t)k, 1e-6f, "dgamma");
        close_to(db2, db1, (size_t)k, 1e-6f, "dbeta");
        free(x), free(wt), free(bias), free(gamma), free(beta), free(sc), free(t1), free(t2), free(y1), free(y2);
        free(dy), free(g), free(dx1), free(dx2);
    }
}

/* nnc_batchnorm_act_backward as it was, one channel at a time, two double sums
 * per channel: the reference of test_bn_backward_order. */
static void bn_act_backward_plain(int n, const float *x, int c, long hw, const float *gamma, const float *mean,
                                  const float *invstd, const float *y, const float *dy, int act, float slope,
                                  float *dx, float *dgamma, float *dbeta)
{
    double m = (double)n * (double)hw;
    for (int ch = 0; ch < c; ch++) {
        double sdy = 0.0, sdyx = 0.0;
        float mu = mean[ch], is = invstd[ch];
        for (int i = 0; i < n; i++)
            for (long p = 0; p < hw; p++) {
                size_t e = ((size_t)i * c + ch) * (size_t)hw + (size_t)p;
                double g = y ? nnc_act_grad(y[e], dy[e], act, slope) : dy[e];
                sdy += g;
                sdyx += g * ((double)x[e] - mu) * is;
            }
        dbeta[ch] += (float)sdy;
        dgamma[ch] += (float)sdyx;
        float a = (gamma ? gamma[ch] : 1.0f) * is, k1 = (float)(sdy / m), k2 = (float)(sdyx / m);
        for (int i = 0; i < n; i++)
            for (long p = 0; p < hw; p++) {
                size_t e = ((size_t)i * c + ch) * (size_t)hw + (size_t)p;
                float xhat = (x[e] - mu) * is;
                float g = y ? nnc_act_grad(y[e], dy[e], act, slope) : dy[e];
                dx[e] += a * (g - k1 - xhat * k2);
            }
    }
}

/* nnc_batchnorm_act_backward sums four channels side by side: bit for bit
 * the channel-at-a-time loops, for channel counts around the groups of four,
 * every activation and none, with and without gamma, into nonzero gradients. */
static void test_bn_backward_order(void **state)
{
    (void)state;
    Rng r = {0xB40DULL};
    for (int it = 0; it < 200; it++) {
        int n = 1 + it % 3, c = 1 + it % 11, act = it % N_ACTS, affine = it % 2;
        long hw = 1 + (it * 7) % 40;
        size_t count = (size_t)n * c * (size_t)hw;
        float *x = rnd(&r, count, 2.0f), *y = rnd(&r, count, 1.0f), *dy = rnd(&r, count, 1.0f);
        float *gamma = rnd(&r, (size_t)c, 1.0f), *mean = rnd(&r, (size_t)c, 0.5f), *inv = rnd(&r, (size_t)c, 1.0f);
        float *dx1 = rnd(&r, count, 0.1f), *dx2 = malloc(count * sizeof *dx2);
        float *dg1 = rnd(&r, (size_t)c, 0.1f), *db1 = rnd(&r, (size_t)c, 0.1f);
        float *dg2 = malloc((size_t)c * sizeof *dg2), *db2 = malloc((size_t)c * sizeof *db2);
        memcpy(dx2, dx1, count * sizeof *dx2);
        memcpy(dg2, dg1, (size_t)c * sizeof *dg2);
        memcpy(db2, db1, (size_t)c * sizeof *db2);
        const float *yy = act == NNC_ACT_NONE ? NULL : y;
        bn_act_backward_plain(n, x, c, hw, affine ? gamma : NULL, mean, inv, yy, dy, act, 0.1f, dx1, dg1, db1);
        nnc_batchnorm_act_backward(NULL, n, x, c, hw, affine ? gamma : NULL, mean, inv, yy, dy, act, 0.1f, dx2, dg2, db2);
        assert_memory_equal(dx2, dx1, count * sizeof *dx1);
        assert_memory_equal(dg2, dg1, (size_t)c * sizeof *dg1);
        assert_memory_equal(db2, db1, (size_t)c * sizeof *db1);
        free(x), free(y), free(dy), free(gamma), free(mean), free(inv), free(dx1), free(dx2), free(dg1), free(db1);
        free(dg2), free(db2);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batchnorm_train),
        cmocka_unit_test(test_batchnorm_running_stats),
        cmocka_unit_test(test_activation_backward),
        cmocka_unit_test(test_softmax_backward),
        cmocka_unit_test(test_concat_and_accumulate),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_cross_entropy),
        cmocka_unit_test(test_bce_mse),
        cmocka_unit_test(test_count_correct),
        cmocka_unit_test(test_lrn_backward),
        cmocka_unit_test(test_bn_train_fused),
        cmocka_unit_test(test_bn_backward_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
