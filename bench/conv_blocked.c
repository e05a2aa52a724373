/* conv_blocked.c: MobileNet-v2 and ResNet convolutions at batch 1 by the
 * direct convolution on the blocked layout (nnc_conv2d_blocked, NCHW16c in
 * and out) and by im2col + the packed GEMM (nnc_conv2d_packed, NCHW), taking
 * turns, hot (the same layer rerun: weights in cache) or cold; bias and relu
 * on both.
 * Prints the best and the median time of each over the runs and the
 * GFLOP/s of the medians (2 * k * c * kh * kw * oh * ow flops, real
 * channels only). Measures, asserts nothing.
 *
 *   cc -O2 -I. bench/conv_blocked.c -o /tmp/conv_blocked -lm -lpthread
 *   /tmp/conv_blocked [THREADS=1] [RUNS=200] [C HW K KSIZE STRIDE PAD]
 *
 * (the six last: one layer of your own instead of the list). COLD=1 in the
 * environment evicts the caches before each timed call (reads a 64 MB
 * buffer, untimed) and reads the input back in, as bench/conv3x3.c does: in
 * a network the weights come from DRAM, the input was just written.
 *
 * -O2 without -march, as users build generated code: the kernels pick
 * AVX-512 or AVX2 at run time (NNC_ISA=avx2 or c in the environment lowers
 * it). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define NNC_MAYBE_UNUSED __attribute__((unused))
#include "runtime/snippets/kernels.c"

enum { EVICT_FLOATS = 16 << 20 }; /* 64 MB */
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

typedef struct {
    const char *name;
    int c, h, k, ks, s, p;
} Shape;

int main(int argc, char **argv)
{
    static const Shape shapes[] = {
        {"mbv2 1x1 expand", 64, 14, 384, 1, 1, 0},  {"mbv2 1x1 project", 384, 14, 64, 1, 1, 0},
        {"mbv2 1x1 project", 960, 7, 160, 1, 1, 0}, {"mbv2 1x1 expand", 24, 56, 144, 1, 1, 0},
        {"resnet 3x3", 512, 7, 512, 3, 1, 1},       {"resnet 3x3", 256, 14, 256, 3, 1, 1},
        {"mbv2 stem 3x3 s2", 3, 224, 32, 3, 2, 1},
    };
    int threads = argc > 1 ? atoi(argv[1]) : 1, runs = argc > 2 ? atoi(argv[2]) : 200;
    size_t nshapes = sizeof shapes / sizeof shapes[0];
    const Shape *list = shapes;
    Shape own = {"given", 0, 0, 0, 0, 0, 0};
    const char *cold_env = getenv("COLD");
    int cold = cold_env && atoi(cold_env) != 0;
    float *evict = cold ? malloc((size_t)EVICT_FLOATS * sizeof(float)) : NULL;
    nnc_ctx ctx;
    if (cold && !evict) {
        fprintf(stderr, "%s: out of memory\n", argv[0]);
        return 1;
    }
    for (size_t i = 0; cold && i < (size_t)EVICT_FLOATS; i++) evict[i] = (float)(i & 7);
    if (argc > 8) {
        own.c = atoi(argv[3]), own.h = atoi(argv[4]), own.k = atoi(argv[5]), own.ks = atoi(argv[6]);
        own.s = atoi(argv[7]), own.p = atoi(argv[8]);
        if (own.c < 1 || own.h < 1 || own.k < 1 || own.ks < 1 || own.s < 1 || own.p < 0 || own.h + 2 * own.p < own.ks) {
            fprintf(stderr, "%s: bad layer\n", argv[0]);
            return 2;
        }
        list = &own, nshapes = 1;
    }
    if (threads < 1 || runs < 1) {
        fprintf(stderr, "usage: %s [THREADS] [RUNS]\n", argv[0]);
        return 2;
    }
    if (nnc_ctx_init(&ctx, threads) != 0) fprintf(stderr, "%s: threads not started; one thread\n", argv[0]);
    printf("threads %d, isa %s, %d runs each, %s\n", ctx.threads,
           ctx.isa == NNC_ISA_AVX512 ? "avx512" : ctx.isa == NNC_ISA_AVX2 ? "avx2" : "c", runs, cold ? "cold" : "hot");
    printf("%-18s %-22s %9s %9s %7s | %9s %9s %7s | %s\n", "layer", "shape", "blk min", "blk med", "GF/s", "pk min",
           "pk med", "GF/s", "packed/blocked");
    for (size_t si = 0; si < nshapes; si++) {
        const Shape *sh = &list[si];
        int c = sh->c, h = sh->h, k = sh->k, ks = sh->ks, oh = (h + 2 * sh->p - ks) / sh->s + 1;
        size_t hw = (size_t)h * (size_t)h, ohw = (size_t)oh * (size_t)oh, wn = (size_t)k * (size_t)c * (size_t)(ks * ks);
        size_t xs = (size_t)c * hw, ys = (size_t)k * ohw, bxs = nnc_blocked_floats(c, hw), bys = nnc_blocked_floats(k, ohw);
        size_t sn = nnc_conv2d_packed_scratch(1, c, h, h, k, ks, ks, sh->s, sh->s, sh->p, sh->p, oh, oh, 0);
        float *x = malloc(xs * sizeof(float)), *xb = malloc(bxs * sizeof(float)), *wt = malloc(wn * sizeof(float));
        float *wp = malloc(wn * sizeof(float)), *wb = malloc(nnc_pack_blocked_floats(k, c, ks, ks) * sizeof(float));
        float *y = malloc(ys * sizeof(float)), *yb = malloc(bys * sizeof(float)), *bias = malloc((size_t)k * sizeof(float));
        float *scratch = malloc((sn + 1) * sizeof(float)), *yc = malloc(ys * sizeof(float));
        double *tb = malloc((size_t)runs * sizeof(double)), *tp = malloc((size_t)runs * sizeof(double));
        double gflop = 2.0 * (double)k * c * ks * ks * (double)ohw / 1e9, maxd = 0.0;
        char shape[64];
        if (!x || !xb || !wt || !wp || !wb || !y || !yb || !bias || !scratch || !yc || !tb || !tp) {
            fprintf(stderr, "%s: out of memory\n", argv[0]);
            return 1;
        }
        for (size_t i = 0; i < xs; i++) x[i] = (float)(i % 17) / 17.0f - 0.5f;
        for (size_t i = 0; i < wn; i++) wt[i] = (float)(i % 13) / 13.0f - 0.5f;
        for (int i = 0; i < k; i++) bias[i] = (float)(i % 5) / 5.0f - 0.4f;
        nnc_to_blocked(NULL, 1, x, xs, c, hw, xb, bxs);
        nnc_pack_weights(wt, k, (long)c * ks * ks, NULL, NULL, 0.0f, wp);
        nnc_pack_weights_blocked(wt, k, c, ks, ks, NULL, NULL, 0.0f, wb);
        for (int r = -3; r < runs; r++) {  /* 3 warm-up runs */
            double t0, t1;
            if (cold) go_cold(evict, xb, bxs);
            t0 = now_ms();
            nnc_conv2d_blocked(&ctx, 1, xb, bxs, c, h, h, wb, bias, yb, bys, k, oh, oh, ks, ks, sh->s, sh->s, sh->p,
                               sh->p, 1, 1, NULL, 0, NNC_ACT_RELU, 0.0f);
            t1 = now_ms();
            if (r >= 0) tb[r] = t1 - t0;
            if (cold) go_cold(evict, x, xs);
            t0 = now_ms();
            nnc_conv2d_packed(&ctx, 1, x, xs, c, h, h, wp, bias, y, ys, k, oh, oh, ks, ks, sh->s, sh->s, sh->p, sh->p,
                              1, 1, 1, scratch, NULL, 0, NNC_ACT_RELU, 0.0f, k, NULL, NULL, NNC_ACT_NONE, 0.0f);
            t1 = now_ms();
            if (r >= 0) tp[r] = t1 - t0;
        }
        nnc_from_blocked(NULL, 1, yb, bys, k, ohw, yc, ys);  /* the two agree */
        for (size_t i = 0; i < ys; i++) maxd = fmax(maxd, fabs((double)yc[i] - y[i]));
        qsort(tb, (size_t)runs, sizeof *tb, cmp_double);
        qsort(tp, (size_t)runs, sizeof *tp, cmp_double);
        snprintf(shape, sizeof shape, "%dx%d %d->%d %dx%d s%d", h, h, c, k, ks, ks, sh->s);
        printf("%-18s %-22s %9.4f %9.4f %7.1f | %9.4f %9.4f %7.1f | %.2fx  (max|diff| %.1e)\n", sh->name, shape, tb[0],
               tb[runs / 2], gflop / tb[runs / 2] * 1e3, tp[0], tp[runs / 2], gflop / tp[runs / 2] * 1e3,
               tp[runs / 2] / tb[runs / 2], maxd);
        free(x), free(xb), free(wt), free(wp), free(wb), free(y), free(yb), free(bias), free(scratch), free(yc);
        free(tb), free(tp);
    }
    nnc_ctx_stop(&ctx);
    free(evict);
    return 0;
}
