/* test_kernels_sgemm.c: the general GEMM on the micro-kernels and the layers
 * of a training step on it (runtime/snippets/kernels_sgemm.c), against
 * double-precision references written from the definitions, at every
 * instruction set this CPU runs and with 1 and 2 threads, whose outputs must
 * be bit-identical. The GEMM: all four transpositions, alpha and beta (beta 0
 * over a C of NaN, which must never be read), shapes at the edges of the
 * blocking (1, 7, 33, 257 rows, columns and steps), leading dimensions larger
 * than the matrices. The convolutions against nnc_conv2d and
 * nnc_conv_transpose2d, whose results they must match (not bit for bit: the
 * sums are blocked differently). */
#define NNC_PAR_MIN_WORK 0.0  /* split every loop, however small: 1 and 2 threads must agree */
#include "kernel_test.h"

/* One GEMM case: C (M x N, row stride ldc = N + pad) = alpha*op(A)*op(B) +
 * beta*C at every isa and 1 and 2 threads, and with ctx NULL. */
static void run_sgemm(Rng *r, int ta, int tb, int M, int N, int K, float alpha, float beta, int pad)
{
    int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
    size_t asz = (size_t)(ta ? K : M) * (size_t)lda, bsz = (size_t)(tb ? N : K) * (size_t)ldb;
    size_t csz = (size_t)M * (size_t)ldc;
    float *a = rand_floats(r, asz, 1.0f), *b = rand_floats(r, bsz, 1.0f), *c0 = rand_floats(r, csz, 1.0f);
    float *c1 = new_floats(csz), *c2 = new_floats(csz);
    double *ref = new_doubles(csz);
    int list[3], n = isas(list);
    char what[200];
    if (beta == 0.0f)
        for (size_t i = 0; i < csz; i++) c0[i] = NAN;  /* beta 0: C is never read */
    for (int i = 0; i < M; i++)
        for (int j = 0; j < ldc; j++) {
            double s = 0.0;
            size_t at = (size_t)i * (size_t)ldc + (size_t)j;
            if (j >= N) {  /* the padding between rows: untouched */
                ref[at] = c0[at];
                continue;
            }
            for (int p = 0; p < K; p++)
                s += (double)(ta ? a[(size_t)p * (size_t)lda + (size_t)i] : a[(size_t)i * (size_t)lda + (size_t)p]) *
                     (double)(tb ? b[(size_t)j * (size_t)ldb + (size_t)p] : b[(size_t)p * (size_t)ldb + (size_t)j]);
            ref[at] = (double)alpha * s + (beta == 0.0f ? 0.0 : (double)beta * c0[at]);
        }
    for (int s = 0; s < n; s++) {
        nnc_ctx one, two;
        ctx_for(&one, list[s], 1);
        ctx_for(&two, list[s], 2);
        snprintf(what, sizeof what, "sgemm isa %d trans %d%d M%d N%d K%d alpha %g beta %g pad %d", list[s], ta, tb, M,
                 N, K, (double)alpha, (double)beta, pad);
        memcpy(c1, c0, csz * sizeof(float));
        nnc_sgemm_ctx(&one, ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, c1, ldc);
        if (beta == 0.0f)  /* the padding keeps its NaN; the matrix must have none */
            for (int i = 0; i < M; i++)
                for (int j = N; j < ldc; j++) c1[(size_t)i * (size_t)ldc + (size_t)j] = 0.0f, ref[(size_t)i * (size_t)ldc + (size_t)j] = 0.0;
        check_close(c1, ref, csz, what);
        memcpy(c2, c0, csz * sizeof(float));
        nnc_sgemm_ctx(&two, ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, c2, ldc);
        if (beta == 0.0f)
            for (int i = 0; i < M; i++)
                for (int j = N; j < ldc; j++) c2[(size_t)i * (size_t)ldc + (size_t)j] = 0.0f;
        check_equal(c2, c1, csz, what);  /* 1 and 2 threads: bit-identical */
        nnc_ctx_stop(&one);
        nnc_ctx_stop(&two);
    }
    /* ctx NULL: one thread on the best instruction set, the same floats as a ctx of it */
    if (list[n - 1] == nnc_cpu_isa()) {
        nnc_ctx one;
        ctx_for(&one, list[n - 1], 1);
        memcpy(c1, c0, csz * sizeof(float));
        memcpy(c2, c0, csz * sizeof(float));
        nnc_sgemm_ctx(&one, ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, c1, ldc);
        nnc_sgemm_ctx(NULL, ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, c2, ldc);
        assert_memory_equal(c1, c2, csz * sizeof(float));
        nnc_ctx_stop(&one);
    }
    free(a), free(b), free(c0), free(c1), free(c2), free(ref);
}

static void test_sgemm_shapes(void **state)
{
    static const int dims[] = {1, 7, 33, 257};
    static const float alphas[] = {1.0f, -0.5f, 2.0f};
    static const float betas[] = {0.0f, 1.0f, 0.5f, -1.5f};
    Rng r = {0x5D6EULL};
    (void)state;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            for (int k = 0; k < 4; k++) {
                int v = i + 2 * j + 3 * k;
                run_sgemm(&r, v % 2, (v / 2) % 2, dims[i], dims[j], dims[k], alphas[v % 3], betas[v % 4], v % 3);
            }
}

static void test_sgemm_transpositions(void **state)
{
    Rng r = {0x7A45ULL};
    (void)state;
    for (int t = 0; t < 4; t++) {
        run_sgemm(&r, t % 2, t / 2, 33, 70, 300, 1.0f, 0.0f, 0);
        run_sgemm(&r, t % 2, t / 2, 9, 97, 31, -1.0f, 1.0f, 5);
        run_sgemm(&r, t % 2, t / 2, 140, 65, 520, 0.75f, -0.25f, 3);  /* two row chunks, three sum blocks */
        run_sgemm(&r, t % 2, t / 2, 16, 64, 0, 1.0f, 0.5f, 1);         /* no sum: C = beta*C */
        run_sgemm(&r, t % 2, t / 2, 5, 3, 0, 1.0f, 0.0f, 0);           /* ... zeros for beta 0 */
    }
    run_sgemm(&r, 0, 0, 8, 8, 8, 0.0f, 2.0f, 0);  /* alpha 0: C = beta*C */
}

/* nnc_linear_gemm against the definition, batch 1 (nnc_linear_mt) and more. */
static void test_linear_gemm(void **state)
{
    static const int shapes[][3] = {{1, 50, 33}, {3, 17, 9}, {64, 400, 120}, {7, 1, 1}, {9, 300, 70}};
    Rng r = {0x11EEULL};
    (void)state;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int n = shapes[s][0], in = shapes[s][1], out = shapes[s][2];
        size_t ys = (size_t)n * (size_t)out;
        float *x = rand_floats(&r, (size_t)n * (size_t)in, 1.0f), *w = rand_floats(&r, (size_t)out * (size_t)in, 1.0f);
        float *bias = s % 2 ? NULL : rand_floats(&r, (size_t)out, 1.0f), *res = rand_floats(&r, ys, 1.0f);
        float *y1 = nan_floats(ys), *y2 = nan_floats(ys);
        double *ref = new_doubles(ys);
        int list[3], m = isas(list);
        char what[120];
        for (int i = 0; i < n; i++)
            for (int o = 0; o < out; o++) {
                double v = bias ? bias[o] : 0.0;
                for (int p = 0; p < in; p++) v += (double)x[(size_t)i * (size_t)in + (size_t)p] * w[(size_t)o * (size_t)in + (size_t)p];
                v += res[(size_t)i * (size_t)out + (size_t)o];
                ref[(size_t)i * (size_t)out + (size_t)o] = act_ref(NNC_ACT_RELU, v);
            }
        for (int k = 0; k < m; k++) {
            nnc_ctx one, two;
            ctx_for(&one, list[k], 1);
            ctx_for(&two, list[k], 2);
            snprintf(what, sizeof what, "linear_gemm isa %d n%d in%d out%d", list[k], n, in, out);
            nnc_linear_gemm(&one, n, x, in, w, bias, y1, out, res, NNC_ACT_RELU, 0.0f);
            check_close(y1, ref, ys, what);
            nnc_linear_gemm(&two, n, x, in, w, bias, y2, out, res, NNC_ACT_RELU, 0.0f);
            check_equal(y2, y1, ys, what);
            nnc_ctx_stop(&one);
            nnc_ctx_stop(&two);
        }
        free(x), free(w), free(bias), free(res), free(y1), free(y2), free(ref);
    }
}

typedef struct {
    int n, c, h, w, k, kh, kw, sh, sw, ph, pw, dh, dw, groups;
} CCase;

/* nnc_conv2d_mt against nnc_conv2d (itself tested against the definition), with bias and an epilogue. */
static void run_conv_mt(Rng *r, const CCase *t)
{
    int oh = (t->h + 2 * t->ph - t->dh * (t->kh - 1) - 1) / t->sh + 1;
    int ow = (t->w + 2 * t->pw - t->dw * (t->kw - 1) - 1) / t->sw + 1;
    size_t xs = (size_t)t->c * t->h * t->w, ys = (size_t)t->k * oh * ow, ws = (size_t)t->k * (t->c / t->groups) * t->kh * t->kw;
    size_t sc = nnc_conv2d_scratch(t->n, t->c, t->h, t->w, t->k, t->kh, t->kw, t->sh, t->sw, t->ph, t->pw, oh, ow, t->groups, 0);
    float *x = rand_floats(r, xs * t->n, 1.0f), *w = rand_floats(r, ws, 1.0f), *b = rand_floats(r, (size_t)t->k, 1.0f);
    float *res = rand_floats(r, ys * t->n, 1.0f), *want = nan_floats(ys * t->n), *y1 = nan_floats(ys * t->n);
    float *y2 = nan_floats(ys * t->n), *scratch = nan_floats(sc ? sc : 1);
    double *ref = new_doubles(ys * t->n);
    int list[3], m = isas(list);
    char what[160];
    nnc_conv2d(t->n, x, xs, t->c, t->h, t->w, w, b, want, ys, t->k, oh, ow, t->kh, t->kw, t->sh, t->sw, t->ph, t->pw,
               t->dh, t->dw, t->groups, scratch, res, ys, NNC_ACT_RELU, 0.0f, t->k, NULL, NULL, NNC_ACT_NONE, 0.0f);
    for (size_t i = 0; i < ys * t->n; i++) ref[i] = want[i];
    for (int s = 0; s < m; s++) {
        nnc_ctx one, two;
        ctx_for(&one, list[s], 1);
        ctx_for(&two, list[s], 2);
        snprintf(what, sizeof what, "conv2d_mt isa %d n%d c%d %dx%d k%d %dx%d s%d p%d g%d", list[s], t->n, t->c, t->h,
                 t->w, t->k, t->kh, t->kw, t->sh, t->ph, t->groups);
        nnc_conv2d_mt(&one, t->n, x, xs, t->c, t->h, t->w, w, b, y1, ys, t->k, oh, ow, t->kh, t->kw, t->sh, t->sw,
                      t->ph, t->pw, t->dh, t->dw, t->groups, scratch, res, ys, NNC_ACT_RELU, 0.0f, t->k, NULL, NULL,
                      NNC_ACT_NONE, 0.0f);
        check_close(y1, ref, ys * t->n, what);
        nnc_conv2d_mt(&two, t->n, x, xs, t->c, t->h, t->w, w, b, y2, ys, t->k, oh, ow, t->kh, t->kw, t->sh, t->sw,
                      t->ph, t->pw, t->dh, t->dw, t->groups, scratch, res, ys, NNC_ACT_RELU, 0.0f, t->k, NULL, NULL,
                      NNC_ACT_NONE, 0.0f);
        check_equal(y2, y1, ys * t->n, what);
        nnc_ctx_stop(&one);
        nnc_ctx_stop(&two);
    }
    free(x), free(w), free(b), free(res), free(want), free(y1), free(y2), free(scratch), free(ref);
}

static void test_conv2d_mt(void **state)
{
    static const CCase cases[] = {
        {3, 1, 28, 28, 6, 5, 5, 1, 1, 2, 2, 1, 1, 1},    /* one input channel: bands of rows */
        {2, 1, 9, 300, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1},    /* ... of one row (wide) */
        {5, 6, 14, 14, 16, 5, 5, 1, 1, 0, 0, 1, 1, 1},   /* small maps: blocks of samples */
        {2, 8, 33, 33, 12, 3, 3, 2, 2, 1, 1, 1, 1, 1},   /* one sample a GEMM */
        {3, 16, 24, 24, 10, 1, 1, 1, 1, 0, 0, 1, 1, 1},  /* 1x1 direct */
        {4, 16, 5, 5, 8, 1, 1, 1, 1, 0, 0, 1, 1, 1},     /* 1x1 in blocks */
        {2, 6, 11, 11, 6, 3, 3, 1, 1, 1, 1, 1, 1, 6},    /* depthwise */
        {2, 8, 10, 10, 12, 3, 3, 1, 1, 2, 2, 2, 2, 4},   /* groups, dilation */
    };
    Rng r = {0xC0DEULL};
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_conv_mt(&r, &cases[i]);
}

/* nnc_conv_transpose2d_mt against nnc_conv_transpose2d. */
static void test_conv_transpose2d_mt(void **state)
{
    Rng r = {0x7C0DULL};
    int n = 2, c = 6, h = 7, w = 9, k = 4, kh = 3, kw = 3, s = 2, p = 1, groups = 2;
    int oh = (h - 1) * s - 2 * p + kh, ow = (w - 1) * s - 2 * p + kw;
    size_t xs = (size_t)c * h * w, ys = (size_t)k * oh * ow, sc = nnc_conv_transpose2d_scratch(h, w, k, kh, kw, groups);
    float *x = rand_floats(&r, xs * n, 1.0f), *wt = rand_floats(&r, (size_t)c * (k / groups) * kh * kw, 1.0f);
    float *b = rand_floats(&r, (size_t)k, 1.0f), *want = nan_floats(ys * n), *y1 = nan_floats(ys * n);
    float *y2 = nan_floats(ys * n), *scratch = new_floats(sc);
    double *ref = new_doubles(ys * n);
    int list[3], m = isas(list);
    (void)state;
    nnc_conv_transpose2d(n, x, c, h, w, wt, b, want, k, oh, ow, kh, kw, s, s, p, p, 1, 1, groups, scratch, NULL,
                         NNC_ACT_NONE, 0.0f);
    for (size_t i = 0; i < ys * n; i++) ref[i] = want[i];
    for (int q = 0; q < m; q++) {
        nnc_ctx one, two;
        ctx_for(&one, list[q], 1);
        ctx_for(&two, list[q], 2);
        nnc_conv_transpose2d_mt(&one, n, x, c, h, w, wt, b, y1, k, oh, ow, kh, kw, s, s, p, p, 1, 1, groups, scratch,
                                NULL, NNC_ACT_NONE, 0.0f);
        check_close(y1, ref, ys * n, "conv_transpose2d_mt");
        nnc_conv_transpose2d_mt(&two, n, x, c, h, w, wt, b, y2, k, oh, ow, kh, kw, s, s, p, p, 1, 1, groups, scratch,
                                NULL, NNC_ACT_NONE, 0.0f);
        check_equal(y2, y1, ys * n, "conv_transpose2d_mt, 2 threads");
        nnc_ctx_stop(&one);
        nnc_ctx_stop(&two);
    }
    free(x), free(wt), free(b), free(want), free(y1), free(y2), free(scratch), free(ref);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgemm_shapes),
        cmocka_unit_test(test_sgemm_transpositions),
        cmocka_unit_test(test_linear_gemm),
        cmocka_unit_test(test_conv2d_mt),
        cmocka_unit_test(test_conv_transpose2d_mt),
    };
    printf("instruction set of this CPU: %s\n", nnc_cpu_isa() == NNC_ISA_AVX512 ? "avx512"
                                                : nnc_cpu_isa() == NNC_ISA_AVX2 ? "avx2" : "c");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
