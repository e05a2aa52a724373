/* test_kernels_winograd.c: 3x3 stride-1 convolutions by Winograd's F(4x4, 3x3)
 * (runtime/snippets/kernels_winograd.c) against a double-precision direct
 * convolution written from the definition, at every instruction set this CPU
 * runs and with 1, 2 and 3 threads, whose outputs must be bit-identical.
 * Shapes hit the edges: maps not a multiple of the 4x4 tile, tiles not a
 * multiple of the 8-tile panel, fewer blocks of 4 panels than threads (the
 * lanes then split the output channels), output channels not a multiple of 32 and more
 * than one chunk of 64, input channels past one block of 256, padding 0, 1
 * and 2, batches of several samples, maps smaller than one 6x6 block (the
 * vector input transform's masked loads). The rounding is bounded by kernel_test.h
 * check_close (1e-4 of the largest output); the test prints the worst
 * relative error it saw. */
#define NNC_PAR_MIN_WORK 0.0  /* split every loop, however small: the thread counts must agree */
#include "kernel_test.h"

static double worst_rel;

/* Folding a batchnorm while transforming is nnc_bn_fold_weight, bit for bit,
 * then the transform; and the transform of a one-hot 3x3 kernel is the
 * column of G times the row of G^T (spot-checked in double). */
static void test_winograd_weights(void **state)
{
    Rng r = {0x3A3ULL};
    (void)state;
    for (int k = 1; k <= 70; k += 23)
        for (int c = 1; c <= 9; c += 4) {
            size_t wn = (size_t)k * (size_t)c * 9, un = 36 * (size_t)c * (size_t)NNC_WINO_KP(k);
            float *w = rand_floats(&r, wn, 1.0f), *gamma = rand_floats(&r, (size_t)k, 1.0f);
            float *var = rand_floats(&r, (size_t)k, 1.0f), *folded = new_floats(wn);
            float *u1 = nan_floats(un), *u2 = nan_floats(un);
            for (int i = 0; i < k; i++) var[i] = var[i] * var[i] + 0.1f;
            nnc_bn_fold_weight(w, k, 1, (long)c * 9, k, gamma, var, 1e-5f, folded);
            nnc_winograd_weights(folded, k, c, NULL, NULL, 0.0f, u1);
            nnc_winograd_weights(w, k, c, gamma, var, 1e-5f, u2);
            assert_memory_equal(u1, u2, un * sizeof(float));
            free(w), free(gamma), free(var), free(folded), free(u1), free(u2);
        }
    {
        static const double G[6][3] = {{0.25, 0, 0}, {-1.0 / 6, -1.0 / 6, -1.0 / 6}, {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                       {1.0 / 24, 1.0 / 12, 1.0 / 6}, {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1}};
        float w[9], u[36 * 32];
        for (int tap = 0; tap < 9; tap++) {
            memset(w, 0, sizeof w);
            w[tap] = 1.0f;
            nnc_winograd_weights(w, 1, 1, NULL, NULL, 0.0f, u);
            for (int xi = 0; xi < 36; xi++) {
                assert_true(fabs(u[xi * 32] - (float)(G[xi / 6][tap / 3] * G[xi % 6][tap % 3])) < 1e-7);
                for (int col = 1; col < 32; col++) assert_true(u[xi * 32 + col] == 0.0f);  /* the panel's padding */
            }
        }
    }
}

typedef struct {
    int n, c, h, w, k, pad;
} WCase;

static void ref_conv3(const WCase *t, const float *x, const float *wt, const float *bias, const float *res, int act,
                      int act_k, int oh, int ow, double *ref)
{
    for (int i = 0; i < t->n; i++)
        for (int ko = 0; ko < t->k; ko++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    double s = bias ? bias[ko] : 0.0;
                    size_t o = (((size_t)i * (size_t)t->k + (size_t)ko) * (size_t)oh + (size_t)oy) * (size_t)ow + (size_t)ox;
                    for (int ci = 0; ci < t->c; ci++)
                        for (int ki = 0; ki < 3; ki++)
                            for (int kj = 0; kj < 3; kj++) {
                                int iy = oy - t->pad + ki, ix = ox - t->pad + kj;
                                if (iy < 0 || iy >= t->h || ix < 0 || ix >= t->w) continue;
                                s += (double)x[(((size_t)i * (size_t)t->c + (size_t)ci) * (size_t)t->h + (size_t)iy) * (size_t)t->w + (size_t)ix] *
                                     wt[(((size_t)ko * (size_t)t->c + (size_t)ci) * 3 + (size_t)ki) * 3 + (size_t)kj];
                            }
                    if (res) s += res[o];
                    ref[o] = ko < act_k ? act_ref(act, s) : s;
                }
}

static void note_error(const float *y, const double *ref, size_t count)
{
    double maxref = 1e-30, maxdiff = 0.0;
    for (size_t i = 0; i < count; i++) {
        if (fabs(ref[i]) > maxref) maxref = fabs(ref[i]);
        if (fabs((double)y[i] - ref[i]) > maxdiff) maxdiff = fabs((double)y[i] - ref[i]);
    }
    if (maxdiff / maxref > worst_rel) worst_rel = maxdiff / maxref;
}

/* One case: forms (no bias; bias; bias + residual + relu on some channels;
 * the same with relu6, which the vector epilogues leave to the scalar one),
 * every isa, 1, 2 and 3 threads. */
static void run_wconv(Rng *r, const WCase *t)
{
    int oh = t->h + 2 * t->pad - 2, ow = t->w + 2 * t->pad - 2;
    size_t xs = (size_t)t->c * (size_t)t->h * (size_t)t->w, ys = (size_t)t->k * (size_t)oh * (size_t)ow;
    size_t wn = (size_t)t->k * (size_t)t->c * 9, un = 36 * (size_t)t->c * (size_t)NNC_WINO_KP(t->k);
    float *x = rand_floats(r, t->n * xs, 1.0f), *wt = rand_floats(r, wn, 1.0f), *u = nan_floats(un);
    float *bias = rand_floats(r, (size_t)t->k, 1.0f), *res = rand_floats(r, t->n * ys, 1.0f);
    float *scratch = nan_floats(nnc_conv2d_winograd_scratch(t->c)), *y[3];
    double *ref = new_doubles(t->n * ys);
    int list[3], ni = isas(list);
    char what[200];
    for (int i = 0; i < 3; i++) y[i] = nan_floats(t->n * ys);
    nnc_winograd_weights(wt, t->k, t->c, NULL, NULL, 0.0f, u);
    for (int form = 0; form < 4; form++) {
        const float *b = form == 0 ? NULL : bias, *rr = form >= 2 ? res : NULL;
        int act = form == 2 ? NNC_ACT_RELU : form == 3 ? NNC_ACT_RELU6 : NNC_ACT_NONE;
        int act_k = form >= 2 ? (t->k + 1) / 2 : t->k;
        ref_conv3(t, x, wt, b, rr, act, act_k, oh, ow, ref);
        for (int s = 0; s < ni; s++)
            for (int th = 1; th <= 3; th++) {
                nnc_ctx ctx;
                ctx_for(&ctx, list[s], th);
                snprintf(what, sizeof what, "conv2d_winograd isa %d threads %d form %d n%d c%d %dx%d k%d pad %d",
                         list[s], th, form, t->n, t->c, t->h, t->w, t->k, t->pad);
                nnc_conv2d_winograd(&ctx, t->n, x, xs, t->c, t->h, t->w, u, b, y[th - 1], ys, t->k, oh, ow, 3, 3, 1,
                                    1, t->pad, t->pad, 1, 1, 1, scratch, rr, ys, act, 0.0f, act_k, NULL, NULL,
                                    NNC_ACT_NONE, 0.0f);
                nnc_ctx_stop(&ctx);
                check_close(y[th - 1], ref, t->n * ys, what);
                note_error(y[th - 1], ref, t->n * ys);
                if (th > 1) assert_memory_equal(y[0], y[th - 1], t->n * ys * sizeof(float));
            }
    }
    free(x), free(wt), free(u), free(bias), free(res), free(scratch), free(ref);
    for (int i = 0; i < 3; i++) free(y[i]);
}

static void test_conv2d_winograd(void **state)
{
    static const WCase cases[] = {
        /* n  c   h   w   k  pad */
        {1, 16, 8, 8, 32, 1},     /* 4 tiles: one panel, half empty; lanes split the channels */
        {2, 5, 7, 9, 13, 1},      /* maps not a multiple of 4; one short panel of channels */
        {1, 3, 6, 6, 1, 0},       /* unpadded, one output channel */
        {3, 17, 11, 5, 40, 2},    /* padding 2; 40 channels: a panel and a short one */
        {1, 4, 3, 3, 8, 0},       /* a 1x1 output */
        {1, 64, 14, 14, 70, 1},   /* a ResNet layer in small: 16 tiles, 3 channel panels */
        {2, 300, 9, 9, 33, 1},    /* 300 input channels: two blocks of the sum */
        {1, 8, 30, 30, 96, 1},    /* 64 tiles: several blocks per lane; two chunks of 64 channels */
        {4, 24, 13, 13, 64, 1},   /* 64 tiles over 4 samples, tiles straddling samples within a panel */
        {1, 20, 28, 28, 72, 1},   /* 7 panels: 2 threads split the tiles, 3 the channels (2 blocks a lane) */
        {1, 3, 9, 42, 17, 1},     /* a tile row longer than a panel; the last column of tiles clipped */
        {2, 7, 5, 4, 9, 2},       /* maps smaller than a 6x6 block: every load of it partly outside */
        {1, 33, 7, 7, 100, 1},    /* ResNet's 7x7 in small: 4 tiles, 3 threads on 4 panels of channels */
    };
    Rng r = {0x71E5ULL};
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_wconv(&r, &cases[i]);
    print_message("worst relative error of Winograd F(4x4, 3x3) against the double reference: %.2e\n", worst_rel);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_winograd_weights),
        cmocka_unit_test(test_conv2d_winograd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
