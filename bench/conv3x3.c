/* conv3x3.c: one 3x3 stride-1 convolution (padding 1, bias, relu) by the two
 * kernels nnc chooses between, Winograd F(4x4, 3x3) and im2col + the packed
 * GEMM, taking turns; prints the best and the median time of each over the
 * runs and the direct-convolution GFLOP/s. Measures, asserts nothing.
 *
 *   cc -O3 -march=native -I. bench/conv3x3.c -o /tmp/conv3x3 -lm -lpthread
 *   /tmp/conv3x3 N C HW K [THREADS=1] [RUNS=30] [COLD=0]
 *
 * e.g. ResNet's stages at batch 1: 1 64 56 64, 1 128 28 128, 1 256 14 256,
 * 1 512 7 512.
 *
 * COLD=1 evicts the caches before each timed call (reads a 64 MB buffer, not
 * timed) and then reads the input back in: in a network the weights come
 * from DRAM (ResNet-50's 100 MB of them pass through the caches between two
 * uses of one layer's) while the input was just written by the layer
 * before. Rerunning the same layer hot keeps its weights (9.4 MB
 * transformed at 256 x 256) in L2/L3 and flatters the kernel that reads the
 * most weight per multiply-add, Winograd at small maps. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define NNC_MAYBE_UNUSED __attribute__((unused))
#include "runtime/snippets/kernels.c"

enum { EVICT_FLOATS = 16 << 20 }; /* 64 MB: several times L2 + L3 here */
static volatile float evict_sink;

/* Pushes the weights out of the caches, then brings x (n floats) back in. */
static void go_cold(const float *evict, const float *x, size_t n)
{
    float s = 0.0f;
    for (size_t i = 0; i < EVICT_FLOATS; i += 16) s += evict[i];
    for (size_t i = 0; i < n; i += 16) s += x[i];
    evict_sink = s;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s N C HW K [THREADS] [RUNS] [COLD]\n", argv[0]);
        return 2;
    }
    int n = atoi(argv[1]), c = atoi(argv[2]), h = atoi(argv[3]), k = atoi(argv[4]);
    int threads = argc > 5 ? atoi(argv[5]) : 1, runs = argc > 6 ? atoi(argv[6]) : 30, cold = argc > 7 && atoi(argv[7]);
    if (n < 1 || c < 1 || h < 1 || k < 1 || threads < 1 || runs < 1) {
        fprintf(stderr, "%s: N, C, HW, K, THREADS and RUNS must be positive\n", argv[0]);
        return 2;
    }
    size_t xs = (size_t)c * (size_t)h * (size_t)h, ys = (size_t)k * (size_t)h * (size_t)h, wn = (size_t)k * (size_t)c * 9;
    size_t s1 = nnc_conv2d_winograd_scratch(c), s2 = nnc_conv2d_scratch(n, c, h, h, k, 3, 3, 1, 1, 1, 1, h, h, 1, 0);
    float *x = malloc((size_t)n * xs * sizeof(float)), *wt = malloc(wn * sizeof(float));
    float *y = malloc((size_t)n * ys * sizeof(float)), *bias = calloc((size_t)k, sizeof(float));
    float *u = malloc(36 * (size_t)c * (size_t)NNC_WINO_KP(k) * sizeof(float)), *wp = malloc(wn * sizeof(float));
    float *scratch = malloc((s1 > s2 ? s1 : s2) * sizeof(float));
    float *evict = cold ? malloc((size_t)EVICT_FLOATS * sizeof(float)) : NULL;
    double *tw = malloc((size_t)runs * sizeof(double)), *tp = malloc((size_t)runs * sizeof(double)), gflop = 2.0 * n * h * h * (double)k * c * 9 / 1e9;
    nnc_ctx ctx;
    if (!x || !wt || !y || !bias || !u || !wp || !scratch || !tw || !tp || (cold && !evict)) {
        fprintf(stderr, "%s: out of memory\n", argv[0]);
        return 1;
    }
    for (size_t i = 0; i < (size_t)n * xs; i++) x[i] = (float)(i % 17) / 17.0f - 0.5f;
    for (size_t i = 0; cold && i < (size_t)EVICT_FLOATS; i++) evict[i] = (float)(i & 7);
    for (size_t i = 0; i < wn; i++) wt[i] = (float)(i % 13) / 13.0f - 0.5f;
    nnc_winograd_weights(wt, k, c, NULL, NULL, 0.0f, u);
    nnc_pack_weights(wt, k, (long)c * 9, NULL, NULL, 0.0f, wp);
    if (nnc_ctx_init(&ctx, threads) != 0) fprintf(stderr, "%s: threads not started; one thread\n", argv[0]);
    for (int r = 0; r < runs; r++) {
        double t0, t1;
        if (cold) go_cold(evict, x, (size_t)n * xs);
        t0 = now_ms();
        nnc_conv2d_winograd(&ctx, n, x, xs, c, h, h, u, bias, y, ys, k, h, h, 3, 3, 1, 1, 1, 1, 1, 1, 1, scratch, NULL,
                            0, NNC_ACT_RELU, 0.0f, k, NULL, NULL, NNC_ACT_NONE, 0.0f);
        t1 = now_ms();
        tw[r] = t1 - t0;
        if (cold) go_cold(evict, x, (size_t)n * xs);
        t0 = now_ms();
        nnc_conv2d_packed(&ctx, n, x, xs, c, h, h, wp, bias, y, ys, k, h, h, 3, 3, 1, 1, 1, 1, 1, 1, 1, scratch, NULL, 0,
                          NNC_ACT_RELU, 0.0f, k, NULL, NULL, NNC_ACT_NONE, 0.0f);
        t1 = now_ms();
        tp[r] = t1 - t0;
    }
    qsort(tw, (size_t)runs, sizeof *tw, cmp_double);
    qsort(tp, (size_t)runs, sizeof *tp, cmp_double);
    printf("n %d c %d %dx%d k %d threads %d %s: winograd %.3f ms median %.3f (%.0f GFLOP/s)  im2col+packed %.3f ms "
           "median %.3f (%.0f GFLOP/s)  ratio of medians %.2f\n", n, c, h, h, k, ctx.threads, cold ? "cold" : "hot",
           tw[0], tw[runs / 2], gflop / tw[runs / 2] * 1e3, tp[0], tp[runs / 2], gflop / tp[runs / 2] * 1e3,
           tp[runs / 2] / tw[runs / 2]);
    nnc_ctx_stop(&ctx);
    free(x), free(wt), free(y), free(bias), free(u), free(wp), free(scratch), free(evict), free(tw), free(tp);
    return 0;
}
