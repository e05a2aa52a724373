/* dw_blocked.c: MobileNet-v2's depthwise layers (3x3, padding 1, bias,
 * relu6) at batch 1 by the NCHW16c kernel nnc_dwconv_blocked against the
 * NCHW depthwise the packed dwpw path runs (nnc_dw_task: nnc_dw_plane and the
 * epilogue per channel, over the threads by channel), taking turns; prints
 * the best and the median time of each over the runs and GMAC/s (of the
 * best, and of the median). Measures, asserts nothing; the data stay in the
 * caches between runs (the largest layer's input and output are 5 MB).
 *
 *   cc -O2 -I. bench/dw_blocked.c -o /tmp/dw_blocked -lm -lpthread
 *   /tmp/dw_blocked [THREADS=1] [RUNS=200]
 *
 * -O2 without -march, as users build the generated code: the ISA is chosen
 * at run time (NNC_ISA=avx2 or c in the environment lowers it).
 *
 * Measured 2026-12-07 on this 2-core Zen 5 VM, gcc 12, AVX-512, medians of
 * 300 runs (ms) and their GMAC/s, NCHW -> NCHW16c:
 *
 *   layer            1 thread                     2 threads
 *   112x112x32 s1    0.398 (9)  -> 0.091 (40)     0.204 (18) -> 0.041 (89)
 *   112x112x96 s2    0.623 (4)  -> 0.210 (13)     0.257 (11) -> 0.059 (46)
 *   56x56x144 s1     0.493 (8)  -> 0.082 (50)     0.243 (17) -> 0.045 (91)
 *   56x56x144 s2     0.208 (5)  -> 0.031 (33)     0.108 (9)  -> 0.021 (48)
 *   28x28x192 s1     0.177 (8)  -> 0.028 (49)     0.092 (15) -> 0.015 (93)
 *   14x14x384 s1     0.137 (5)  -> 0.014 (49)     0.065 (10) -> 0.008 (84)
 *   14x14x576 s1     0.202 (5)  -> 0.021 (49)     0.096 (11) -> 0.012 (86)
 *   14x14x576 s2     0.083 (3)  -> 0.009 (30)     0.081 (3)  -> 0.010 (24)
 *   7x7x960 s1       0.137 (3)  -> 0.012 (35)     0.073 (6)  -> 0.008 (53)
 *   all nine         2.458 (6)  -> 0.497 (30)     1.218 (12) -> 0.218 (69)
 *
 * (14x14x576 s2 is under NNC_PAR_MIN_WORK: one thread either way.) Timings
 * with another process on the second core are meaningless at 2 threads: run
 * it on a quiet machine. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#define NNC_MAYBE_UNUSED __attribute__((unused))
#include "runtime/snippets/kernels.c"

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

static float *rnd(size_t n)
{
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    return p;
}

int main(int argc, char **argv)
{
    static const int shapes[][4] = {/* c, h, stride */
                                    {32, 112, 1}, {96, 112, 2}, {144, 56, 1}, {144, 56, 2}, {192, 28, 1},
                                    {384, 14, 1}, {576, 14, 1}, {576, 14, 2}, {960, 7, 1}};
    int threads = argc > 1 ? atoi(argv[1]) : 1, runs = argc > 2 ? atoi(argv[2]) : 200;
    nnc_ctx ctx;
    double tot_b = 0, tot_p = 0;
    if (nnc_ctx_init(&ctx, threads) != 0) return 1;
    printf("isa %s, %d thread(s), %d runs; ms min / median, GMAC/s at min / median\n",
           ctx.isa == NNC_ISA_AVX512 ? "avx512" : ctx.isa == NNC_ISA_AVX2 ? "avx2" : "c", ctx.threads, runs);
    printf("%-22s %24s %24s %8s\n", "layer", "NCHW (nnc_dw_plane)", "NCHW16c (blocked)", "speedup");
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int c = shapes[si][0], h = shapes[si][1], s = shapes[si][2], w = h, oh = (h + 2 - 3) / s + 1, ow = oh;
        size_t hw = (size_t)h * w, ohw = (size_t)oh * ow;
        float *x = rnd((size_t)c * hw), *wt = rnd((size_t)c * 9), *b = rnd((size_t)c), *y = rnd((size_t)c * ohw);
        float *xb = rnd(nnc_blocked_floats(c, hw)), *yb = rnd(nnc_blocked_floats(c, ohw));
        float *wp = rnd(nnc_pack_dw_blocked_floats(c, 3, 3));
        double *tp = malloc((size_t)runs * sizeof *tp), *tb = malloc((size_t)runs * sizeof *tb);
        double mac = (double)c * (double)ohw * 9.0;
        nnc_dw_job j;
        char name[64];
        nnc_to_blocked(NULL, 1, x, 0, c, hw, xb, 0);
        nnc_pack_dw_blocked(wt, c, 3, 3, NULL, NULL, 0.0f, wp);
        memset(&j, 0, sizeof j);
        j.x = x, j.dwt = wt, j.dwb = b, j.scratch = y, j.xs = 0, j.hw = hw, j.ld = ohw, j.cs = 0, j.c = c, j.h = h;
        j.w = w, j.r0 = 0, j.rows = oh, j.ow = ow, j.kh = 3, j.kw = 3, j.sh = s, j.sw = s, j.ph = 1, j.pw = 1;
        j.dh = 1, j.dw = 1, j.dact = NNC_ACT_RELU6, j.dslope = 0.0f;
        nnc_ctx_begin(&ctx);
        for (int r = -10; r < runs; r++) {
            double t0 = now_ms(), t1, t2;
            nnc_parallel_work(&ctx, mac, c, nnc_dw_task, &j);
            t1 = now_ms();
            nnc_dwconv_blocked(&ctx, 1, xb, 0, c, h, w, wp, b, yb, 0, oh, ow, 3, 3, s, s, 1, 1, 1, 1, NULL, 0,
                               NNC_ACT_RELU6, 0.0f);
            t2 = now_ms();
            if (r >= 0) tp[r] = t1 - t0, tb[r] = t2 - t1;
        }
        nnc_ctx_end(&ctx);
        { /* the two agree (to rounding: FMA against multiply-add) */
            float *back = rnd((size_t)c * ohw);
            double md = 0;
            nnc_from_blocked(NULL, 1, yb, 0, c, ohw, back, 0);
            for (size_t i = 0; i < (size_t)c * ohw; i++) md = fmax(md, fabs((double)back[i] - y[i]));
            if (md > 1e-4) printf("  MISMATCH %g\n", md);
            free(back);
        }
        qsort(tp, (size_t)runs, sizeof *tp, cmp_double);
        qsort(tb, (size_t)runs, sizeof *tb, cmp_double);
        snprintf(name, sizeof name, "%dx%dx%d s%d", h, w, c, s);
        printf("%-22s %6.3f/%6.3f %4.0f/%4.0f  %6.3f/%6.3f %4.0f/%4.0f  %6.1fx\n", name, tp[0], tp[runs / 2],
               mac / tp[0] / 1e6, mac / tp[runs / 2] / 1e6, tb[0], tb[runs / 2], mac / tb[0] / 1e6,
               mac / tb[runs / 2] / 1e6, tp[runs / 2] / tb[runs / 2]);
        tot_p += tp[runs / 2], tot_b += tb[runs / 2];
        free(x), free(wt), free(b), free(y), free(xb), free(yb), free(wp), free(tp), free(tb);
    }
    printf("sum of medians: NCHW %.3f ms, NCHW16c %.3f ms (%.1fx)\n", tot_p, tot_b, tot_p / tot_b);
    nnc_ctx_stop(&ctx);
    return 0;
}
