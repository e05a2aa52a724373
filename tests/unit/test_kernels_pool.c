/* test_kernels_pool.c: nnc_maxpool2d and nnc_avgpool2d (runtime/snippets/
 * kernels_pool.c) on many odd shapes, against
 *   - the kernels as they were before their interior got a vectorized loop
 *     (issue 11): one call of the per-window function per output, copied below
 *     verbatim from kernels_pool.c at dca37a4. The new kernels must give the
 *     same bits: ties, +0/-0, NaNs with distinct payloads and infinities
 *     included (for average pooling, the same taps summed in the same order);
 *   - a naive double-precision reference written from PyTorch's definition
 *     (max: exact; average: kernel_test.h's tolerance), on finite inputs.
 * Shapes: every height and width 1..9 with random kernels 1..4, strides 1..3,
 * padding 0..k/2, dilation 1..2 (max pooling; average pooling has none),
 * ceil_mode both ways, count_include_pad both ways; then widths up to 70, so
 * rows take the 16-column interior blocks, the block anchored at the right end
 * and the short interior. The input sits inside NaN guards with a batch stride
 * longer than c*h*w, and the output is a channel slice of longer samples whose
 * other floats must stay untouched. test_kernels_layers.c has the fixed cases. */
#include "tests/unit/kernel_test.h"

/* ---- the kernels before issue 11 (kernels_pool.c at dca37a4, verbatim but for the names) ---- */

static float old_maxpool_window(const float *xc, int h, int w, int ys, int xs, int kh, int kw, int dh, int dw)
{
    float m = -INFINITY;
    int ki, kj;
    for (ki = 0; ki < kh; ki++) {
        int iy = ys + ki * dh;
        const float *row;
        if (iy < 0 || iy >= h) continue;
        row = xc + (size_t)iy * (size_t)w;
        for (kj = 0; kj < kw; kj++) {
            int ix = xs + kj * dw;
            if (ix >= 0 && ix < w && (row[ix] > m || row[ix] != row[ix])) m = row[ix];
        }
    }
    return m;
}

static void old_maxpool2d(int n, const float *x, size_t xs, int c, int h, int w, float *y, size_t ys, int oh, int ow,
                          int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw)
{
    size_t plane, hw = (size_t)h * (size_t)w, ohw = (size_t)oh * (size_t)ow;
    int oy, ox;
    for (plane = 0; plane < (size_t)n * (size_t)c; plane++) {
        const float *xc = x + plane / (size_t)c * xs + plane % (size_t)c * hw;
        float *yc = y + plane / (size_t)c * ys + plane % (size_t)c * ohw;
        for (oy = 0; oy < oh; oy++)
            for (ox = 0; ox < ow; ox++)
                yc[(size_t)oy * (size_t)ow + (size_t)ox] =
                    old_maxpool_window(xc, h, w, oy * sh - ph, ox * sw - pw, kh, kw, dh, dw);
    }
}

static float old_avgpool_window(const float *xc, int h, int w, int ys, int xs, int kh, int kw, int ph, int pw,
                                int count_include_pad)
{
    int ye = ys + kh < h + ph ? ys + kh : h + ph;
    int xe = xs + kw < w + pw ? xs + kw : w + pw;
    int pool = (ye - ys) * (xe - xs), iy, ix;
    float s = 0.0f;
    if (ys < 0) ys = 0;
    if (xs < 0) xs = 0;
    if (ye > h) ye = h;
    if (xe > w) xe = w;
    for (iy = ys; iy < ye; iy++)
        for (ix = xs; ix < xe; ix++) s += xc[(size_t)iy * (size_t)w + (size_t)ix];
    return s / (float)(count_include_pad ? pool : (ye - ys) * (xe - xs));
}

static void old_avgpool2d(int n, const float *x, size_t xs, int c, int h, int w, float *y, size_t ys, int oh, int ow,
                          int kh, int kw, int sh, int sw, int ph, int pw, int count_include_pad)
{
    size_t plane, hw = (size_t)h * (size_t)w, ohw = (size_t)oh * (size_t)ow;
    int oy, ox;
    for (plane = 0; plane < (size_t)n * (size_t)c; plane++) {
        const float *xc = x + plane / (size_t)c * xs + plane % (size_t)c * hw;
        float *yc = y + plane / (size_t)c * ys + plane % (size_t)c * ohw;
        for (oy = 0; oy < oh; oy++)
            for (ox = 0; ox < ow; ox++)
                yc[(size_t)oy * (size_t)ow + (size_t)ox] =
                    old_avgpool_window(xc, h, w, oy * sh - ph, ox * sw - pw, kh, kw, ph, pw, count_include_pad);
    }
}

/* ---- shapes, inputs, references ---- */

typedef struct Pool {
    int n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, ceil, cip, oh, ow;
} Pool;

/* PyTorch's pooling output size; a ceil-mode window must start inside the padded image. */
static int out_size(int in, int k, int s, int p, int d, int ceil_mode)
{
    int span = in + 2 * p - d * (k - 1) - 1;
    int o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (ceil_mode && (o - 1) * s >= in + p) o--;
    return o;
}

/* A random pooling of an h x w input that PyTorch accepts (padding <= k/2, the
 * dilated window no larger than the padded input); dilation only for max. */
static Pool random_pool(Rng *r, int h, int w, int max)
{
    Pool t;
    do {
        t.n = rng_int(r, 1, 2), t.c = rng_int(r, 1, 3), t.h = h, t.w = w;
        t.kh = rng_int(r, 1, 4), t.kw = rng_int(r, 1, 4);
        t.sh = rng_int(r, 1, 3), t.sw = rng_int(r, 1, 3);
        t.ph = rng_int(r, 0, t.kh / 2), t.pw = rng_int(r, 0, t.kw / 2);
        t.dh = max ? rng_int(r, 1, 2) : 1, t.dw = max ? rng_int(r, 1, 2) : 1;
        t.ceil = rng_int(r, 0, 1), t.cip = rng_int(r, 0, 1);
    } while (t.dh * (t.kh - 1) + 1 > h + 2 * t.ph || t.dw * (t.kw - 1) + 1 > w + 2 * t.pw);
    t.oh = out_size(h, t.kh, t.sh, t.ph, t.dh, t.ceil), t.ow = out_size(w, t.kw, t.sw, t.pw, t.dw, t.ceil);
    return t;
}

enum { FINITE, TIES, SPECIAL, N_KINDS };

/* Inputs: random reals; small integers and signed zeros (many ties, +0 against
 * -0); or reals mixed with NaNs of distinct payloads, +-inf and signed zeros. */
static float input_value(Rng *r, int kind)
{
    int pick = rng_int(r, 0, 15);
    if (kind == FINITE) return 4.0f * rng_float(r);
    if (kind == TIES) return pick < 4 ? (pick & 1 ? -0.0f : 0.0f) : (float)rng_int(r, -2, 1);
    if (pick == 0 || pick == 1) {  /* a quiet NaN, sign and payload random: which NaN wins shows */
        uint32_t bits = 0x7FC00000u | (uint32_t)rng_int(r, 1, 0x3FFFFF) | (pick ? 0x80000000u : 0u);
        float v;
        memcpy(&v, &bits, sizeof v);
        return v;
    }
    if (pick == 2) return rng_int(r, 0, 1) ? INFINITY : -INFINITY;
    if (pick == 3) return rng_int(r, 0, 1) ? 0.0f : -0.0f;
    return 4.0f * rng_float(r);
}

static double ref_max(const Pool *t, const float *xc, int oy, int ox)
{
    double m = -INFINITY;
    for (int ki = 0; ki < t->kh; ki++)
        for (int kj = 0; kj < t->kw; kj++) {
            int iy = oy * t->sh - t->ph + ki * t->dh, ix = ox * t->sw - t->pw + kj * t->dw;
            if (iy >= 0 && iy < t->h && ix >= 0 && ix < t->w && xc[iy * t->w + ix] > m) m = xc[iy * t->w + ix];
        }
    return m;
}

/* count_include_pad counts the taps inside the padded image (rows < h+ph, columns < w+pw), else those inside the image. */
static double ref_avg(const Pool *t, const float *xc, int oy, int ox)
{
    double s = 0.0;
    int padded = 0, inside = 0;
    for (int ki = 0; ki < t->kh; ki++)
        for (int kj = 0; kj < t->kw; kj++) {
            int iy = oy * t->sh - t->ph + ki, ix = ox * t->sw - t->pw + kj;
            if (iy >= t->h + t->ph || ix >= t->w + t->pw) continue;
            padded++;
            if (iy < 0 || iy >= t->h || ix < 0 || ix >= t->w) continue;
            inside++;
            s += xc[iy * t->w + ix];
        }
    return s / (t->cip ? padded : inside);
}

/* check_equal, but a NaN matches any NaN: of two NaNs added, which one's sign
 * and payload the sum keeps depends on the order of the operands in the
 * instruction, which C leaves to the compiler (gcc's vector add takes them the
 * other way round from its scalar one). Only sums of two or more NaNs differ. */
static void same_but_nan_payloads(const float *out, const float *want, size_t count, const char *what)
{
    for (size_t i = 0; i < count; i++)
        if (memcmp(&out[i], &want[i], sizeof(float)) != 0 && !(isnan(out[i]) && isnan(want[i])))
            fail_msg("%s: element %zu is %g, want %g", what, i, (double)out[i], (double)want[i]);
}

enum { GUARD = 5, X_GAP = 7, Y_OFF = 3, Y_GAP = 6 };  /* floats around and between the samples */

/* One pooling, max or average, on every kind of input: new kernel against the old
 * (bits), and against the double reference (finite inputs); the guards stay. */
static void run_pool(Rng *r, const Pool *t, int max)
{
    size_t chw = (size_t)t->c * t->h * t->w, cohw = (size_t)t->c * t->oh * t->ow;
    size_t xs = chw + X_GAP, ys = cohw + Y_GAP, xlen = 2 * GUARD + (size_t)t->n * xs, ylen = (size_t)t->n * ys;
    float *xbuf = nan_floats(xlen), *x = xbuf + GUARD, *y = new_floats(ylen), *want = new_floats(ylen);
    double *ref = new_doubles((size_t)t->n * cohw);
    float *got = new_floats((size_t)t->n * cohw);
    char what[160];
    snprintf(what, sizeof what, "%s n%d c%d %dx%d k%d,%d s%d,%d p%d,%d d%d,%d ceil%d%s -> %dx%d",
             max ? "maxpool2d" : "avgpool2d", t->n, t->c, t->h, t->w, t->kh, t->kw, t->sh, t->sw, t->ph, t->pw, t->dh,
             t->dw, t->ceil, max ? "" : t->cip ? " count_include_pad" : " exclude_pad", t->oh, t->ow);
    for (int kind = 0; kind < N_KINDS; kind++) {
        for (int i = 0; i < t->n; i++)
            for (size_t e = 0; e < chw; e++) x[(size_t)i * xs + e] = input_value(r, kind);
        for (size_t e = 0; e < ylen; e++) y[e] = want[e] = 12345.0f;  /* the floats outside the slice */
        if (max) {
            nnc_maxpool2d(t->n, x, xs, t->c, t->h, t->w, y + Y_OFF, ys, t->oh, t->ow, t->kh, t->kw, t->sh, t->sw, t->ph,
                          t->pw, t->dh, t->dw);
            old_maxpool2d(t->n, x, xs, t->c, t->h, t->w, want + Y_OFF, ys, t->oh, t->ow, t->kh, t->kw, t->sh, t->sw,
                          t->ph, t->pw, t->dh, t->dw);
        } else {
            nnc_avgpool2d(t->n, x, xs, t->c, t->h, t->w, y + Y_OFF, ys, t->oh, t->ow, t->kh, t->kw, t->sh, t->sw, t->ph,
                          t->pw, t->cip);
            old_avgpool2d(t->n, x, xs, t->c, t->h, t->w, want + Y_OFF, ys, t->oh, t->ow, t->kh, t->kw, t->sh, t->sw,
                          t->ph, t->pw, t->cip);
        }
        if (max || kind != SPECIAL)
            check_equal(y, want, ylen, what);  /* the outputs and, around them, the untouched floats */
        else
            same_but_nan_payloads(y, want, ylen, what);
        if (kind != FINITE) continue;
        for (int i = 0; i < t->n; i++)
            for (int ch = 0; ch < t->c; ch++) {
                const float *xc = x + (size_t)i * xs + (size_t)ch * t->h * t->w;
                for (int oy = 0; oy < t->oh; oy++)
                    for (int ox = 0; ox < t->ow; ox++) {
                        size_t o = (((size_t)i * t->c + ch) * t->oh + oy) * t->ow + ox;
                        ref[o] = max ? ref_max(t, xc, oy, ox) : ref_avg(t, xc, oy, ox);
                        got[o] = y[Y_OFF + (size_t)i * ys + o - (size_t)i * cohw];
                        if (max && (double)got[o] != ref[o])  /* a max is exact (-inf: a window all padding) */
                            fail_msg("%s: output %zu is %g, want %g", what, o, (double)got[o], ref[o]);
                    }
            }
        if (!max) check_close(got, ref, (size_t)t->n * cohw, what);
    }
    free(xbuf), free(y), free(want), free(ref), free(got);
}

/* ---- the tests ---- */

/* Every height and width 1..9, eight random poolings each, for max and for
 * average pooling (each with its own seed). */
static void test_pool_small_shapes(void **state)
{
    static const struct {
        int max;
        uint64_t seed;
    } kinds[] = {{1, 0x5A11ULL}, {0, 0xA11ULL}};
    (void)state;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        Rng r = {kinds[k].seed};
        for (int h = 1; h <= 9; h++)
            for (int w = 1; w <= 9; w++)
                for (int i = 0; i < 8; i++) {
                    Pool t = random_pool(&r, h, w, kinds[k].max);
                    run_pool(&r, &t, kinds[k].max);
                }
    }
}

/* Rows wide enough for the 16-column blocks: one block, several, the last
 * anchored at the right end, and interiors just under and over 16 columns. */
static void test_pool_wide_rows(void **state)
{
    Rng r = {0x3171DEULL};
    (void)state;
    for (int i = 0; i < 300; i++) {
        int max = i % 2, h = rng_int(&r, 1, 12), w = rng_int(&r, 10, 70);
        Pool t = random_pool(&r, h, w, max);
        run_pool(&r, &t, max);
    }
}

/* The networks' pools, at their sizes: ResNet's and DenseNet's stem (3x3/2 pad 1),
 * GoogLeNet's ceil-mode and stride-1 ones, DenseNet's 2x2/2 transition, Inception's 3x3/1 average. */
static void test_pool_network_shapes(void **state)
{
    static const Pool shapes[] = {
        /* n c   h    w  kh kw sh sw ph pw dh dw ceil cip */
        {2, 3, 112, 112, 3, 3, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0},
        {1, 3, 112, 112, 3, 3, 2, 2, 0, 0, 1, 1, 1, 0, 0, 0},
        {1, 4, 28, 28, 3, 3, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0},
        {1, 4, 14, 14, 3, 3, 2, 2, 0, 0, 1, 1, 1, 0, 0, 0},
        {1, 4, 7, 7, 3, 3, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0},
        {2, 4, 56, 56, 2, 2, 2, 2, 0, 0, 1, 1, 0, 1, 0, 0},
        {1, 4, 35, 35, 3, 3, 1, 1, 1, 1, 1, 1, 0, 1, 0, 0},
        {1, 4, 35, 35, 3, 3, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0},
    };
    Rng r = {0x4E7ULL};
    (void)state;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        Pool t = shapes[i];
        t.oh = out_size(t.h, t.kh, t.sh, t.ph, t.dh, t.ceil), t.ow = out_size(t.w, t.kw, t.sw, t.pw, t.dw, t.ceil);
        run_pool(&r, &t, 1);
        if (t.dh == 1 && t.dw == 1) run_pool(&r, &t, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_small_shapes),
        cmocka_unit_test(test_pool_wide_rows),
        cmocka_unit_test(test_pool_network_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
