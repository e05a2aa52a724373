/* kernels_pool.c: the pooling and cross-channel kernels of the kernel library
 * (kernels.c, whose top comment gives the format and the rules):
 * torch.nn.MaxPool2d, AvgPool2d, global and adaptive average pooling (with a
 * fused prologue), LocalResponseNorm, one input of torch.cat, and softmax. */

/* @kernel maxpool2d */
/* Max of one pooling window of the plane xc[h][w] whose top-left tap is (ys, xs);
 * taps in padding are skipped (PyTorch pads with -inf). A NaN tap wins, as in PyTorch. */
static NNC_MAYBE_UNUSED float nnc_maxpool_window(const float *xc, int h, int w, int ys, int xs, int kh, int kw,
                                                 int dh, int dw)
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
            if (ix >= 0 && ix < w) m = row[ix] != row[ix] ? row[ix] : row[ix] > m ? row[ix] : m;
        }
    }
    return m;
}

/* torch.nn.MaxPool2d (padding, dilation; ceil_mode through the caller's oh/ow).
 * xs, ys: batch strides in floats (c*h*w and c*oh*ow for whole tensors).
 *
 * Output columns whose windows lie wholly inside the row ([ox0, ox1)) take no
 * bounds tests: per output row the rows of the window inside the image are
 * known ([k0, k1)), and the max runs 16 input columns at a time, every column
 * the top-left tap of a window ("dense"), in a loop of constant trip count
 * that gcc -O2 and clang vectorize; strided output columns then pick their
 * window's column. (The dense form does sw times the work but needs no
 * strided loads, which gcc's -O2 cost model does not vectorize.) Rows whose
 * interior is shorter than 16 columns, and the border columns, run per window.
 * Every output takes the same taps in the same order as nnc_maxpool_window,
 * each replacing the max when greater or NaN, so the results are bit-identical
 * to a window at a time (ties, signed zeros and NaN payloads included;
 * tests/unit/test_kernels_pool.c). The pragma keeps gcc -O3 (the JIT's) from
 * unrolling the 16 selects into branches before its vectorizer sees the loop;
 * -O2 vectorizes it as it is. */
static NNC_MAYBE_UNUSED void nnc_maxpool2d(int n, const float *x, size_t xs, int c, int h, int w, float *y, size_t ys,
                                           int oh, int ow, int kh, int kw, int sh, int sw, int ph, int pw, int dh,
                                           int dw)
{
    enum { SPAN = 16 };
    size_t plane, hw = (size_t)h * (size_t)w, ohw = (size_t)oh * (size_t)ow, rstep = (size_t)dh * (size_t)w;
    int ox0 = (pw + sw - 1) / sw, ox1 = w - 1 - (kw - 1) * dw + pw;
    int oy, ox, r, kj, q;
    float m[SPAN];
    ox1 = ox1 < 0 ? 0 : ox1 / sw + 1;
    if (ox1 > ow) ox1 = ow;
    if (ox0 > ox1) ox0 = ox1;
    for (plane = 0; plane < (size_t)n * (size_t)c; plane++) {
        const float *xc = x + plane / (size_t)c * xs + plane % (size_t)c * hw;
        float *yc = y + plane / (size_t)c * ys + plane % (size_t)c * ohw;
        for (oy = 0; oy < oh; oy++) {
            int ty = oy * sh - ph, k0 = 0, k1 = kh, nr, first, last;
            const float *x0;
            float *yr = yc + (size_t)oy * (size_t)ow;
            for (ox = 0; ox < ox0; ox++) yr[ox] = nnc_maxpool_window(xc, h, w, ty, ox * sw - pw, kh, kw, dh, dw);
            for (ox = ox1; ox < ow; ox++) yr[ox] = nnc_maxpool_window(xc, h, w, ty, ox * sw - pw, kh, kw, dh, dw);
            while (k0 < kh && ty + k0 * dh < 0) k0++;
            while (k1 > k0 && ty + (k1 - 1) * dh >= h) k1--;
            nr = k1 - k0;
            x0 = nr > 0 ? xc + (size_t)(ty + k0 * dh) * (size_t)w : xc;  /* the first row inside */
            ox = ox0;
            first = ox0 * sw - pw, last = (ox1 - 1) * sw - pw;  /* the interior's window columns */
            if (ox1 > ox0 && last - first + 1 >= SPAN)
                while (ox < ox1) {
                    int s = ox * sw - pw;
                    if (s > last - (SPAN - 1)) s = last - (SPAN - 1);  /* the last block ends at the last window */
                    for (q = 0; q < SPAN; q++) m[q] = -INFINITY;
                    for (r = 0; r < nr; r++)
                        for (kj = 0; kj < kw; kj++) {
                            const float *p = x0 + (size_t)r * rstep + (size_t)s + (size_t)kj * (size_t)dw;
#pragma GCC unroll 1
                            for (q = 0; q < SPAN; q++) {
                                float v = p[q];
                                m[q] = v != v ? v : v > m[q] ? v : m[q];
                            }
                        }
                    for (; ox < ox1 && ox * sw - pw < s + SPAN; ox++) yr[ox] = m[ox * sw - pw - s];
                }
            for (; ox < ox1; ox++) {  /* a short interior: per window, still without bounds tests */
                const float *p = x0 + (size_t)(ox * sw - pw);
                float mx = -INFINITY;
                for (r = 0; r < nr; r++)
                    for (kj = 0; kj < kw; kj++) {
                        float v = p[(size_t)r * rstep + (size_t)kj * (size_t)dw];
                        mx = v != v ? v : v > mx ? v : mx;
                    }
                yr[ox] = mx;
            }
        }
    }
}

/* @kernel avgpool2d */
/* Average of the window [ys, ye) x [xs, xe) of xc[h][w], divided by the PyTorch
 * divisor: the padded window size (cut at h+ph, w+pw) or only the pixels inside. */
static NNC_MAYBE_UNUSED float nnc_avgpool_window(const float *xc, int h, int w, int ys, int xs, int kh, int kw,
                                                 int ph, int pw, int count_include_pad)
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

/* torch.nn.AvgPool2d (padding, count_include_pad; ceil_mode through the caller's
 * oh/ow). xs, ys: batch strides in floats (c*h*w and c*oh*ow for whole tensors).
 * As nnc_maxpool2d: the interior columns sum 16 input columns at a time in a
 * vectorized loop, the border columns and short rows per window. Every output
 * adds the same taps in the same order (row by row, from 0.0f) as
 * nnc_avgpool_window and divides by the same divisor, so the results are
 * bit-identical (but for which NaN's payload a sum of two NaNs keeps, which C
 * leaves to the compiler). */
static NNC_MAYBE_UNUSED void nnc_avgpool2d(int n, const float *x, size_t xs, int c, int h, int w, float *y, size_t ys,
                                           int oh, int ow, int kh, int kw, int sh, int sw, int ph, int pw,
                                           int count_include_pad)
{
    enum { SPAN = 16 };
    size_t plane, hw = (size_t)h * (size_t)w, ohw = (size_t)oh * (size_t)ow;
    int ox0 = (pw + sw - 1) / sw, ox1 = w - kw + pw;
    int oy, ox, r, kj, q;
    float a[SPAN];
    ox1 = ox1 < 0 ? 0 : ox1 / sw + 1;
    if (ox1 > ow) ox1 = ow;
    if (ox0 > ox1) ox0 = ox1;
    for (plane = 0; plane < (size_t)n * (size_t)c; plane++) {
        const float *xc = x + plane / (size_t)c * xs + plane % (size_t)c * hw;
        float *yc = y + plane / (size_t)c * ys + plane % (size_t)c * ohw;
        for (oy = 0; oy < oh; oy++) {
            int ty = oy * sh - ph, ye = ty + kh < h + ph ? ty + kh : h + ph, top, bot, nr, first, last;
            float div;
            const float *x0;
            float *yr = yc + (size_t)oy * (size_t)ow;
            for (ox = 0; ox < ox0; ox++)
                yr[ox] = nnc_avgpool_window(xc, h, w, ty, ox * sw - pw, kh, kw, ph, pw, count_include_pad);
            for (ox = ox1; ox < ow; ox++)
                yr[ox] = nnc_avgpool_window(xc, h, w, ty, ox * sw - pw, kh, kw, ph, pw, count_include_pad);
            top = ty < 0 ? 0 : ty, bot = ye > h ? h : ye;
            nr = bot - top > 0 ? bot - top : 0;
            /* nnc_avgpool_window's divisor for a window whose columns are all inside */
            div = (float)(count_include_pad ? (ye - ty) * kw : (bot - top) * kw);
            x0 = nr > 0 ? xc + (size_t)top * (size_t)w : xc;
            ox = ox0;
            first = ox0 * sw - pw, last = (ox1 - 1) * sw - pw;
            if (ox1 > ox0 && last - first + 1 >= SPAN)
                while (ox < ox1) {
                    int s = ox * sw - pw;
                    if (s > last - (SPAN - 1)) s = last - (SPAN - 1);
                    for (q = 0; q < SPAN; q++) a[q] = 0.0f;
                    for (r = 0; r < nr; r++)
                        for (kj = 0; kj < kw; kj++) {
                            const float *p = x0 + (size_t)r * (size_t)w + (size_t)s + (size_t)kj;
                            for (q = 0; q < SPAN; q++) a[q] += p[q];
                        }
                    for (; ox < ox1 && ox * sw - pw < s + SPAN; ox++) yr[ox] = a[ox * sw - pw - s] / div;
                }
            for (; ox < ox1; ox++) {
                const float *p = x0 + (size_t)(ox * sw - pw);
                float sum = 0.0f;
                for (r = 0; r < nr; r++)
                    for (kj = 0; kj < kw; kj++) sum += p[(size_t)r * (size_t)w + (size_t)kj];
                yr[ox] = sum / div;
            }
        }
    }
}

/* @kernel global_avgpool */
/* torch.nn.AdaptiveAvgPool2d(1) / mean over H,W: y[n][c] = mean of x[n][c][0..hw). */
static NNC_MAYBE_UNUSED void nnc_global_avgpool(int n, const float *x, int c, long hw, float *y)
{
    size_t plane;
    long p;
    for (plane = 0; plane < (size_t)n * (size_t)c; plane++) {
        const float *xc = x + plane * (size_t)hw;
        double s = 0.0;
        for (p = 0; p < hw; p++) s += xc[p];
        y[plane] = (float)(s / (double)hw);
    }
}

/* @kernel adaptive_avgpool2d needs: epilogue */
/* torch.nn.AdaptiveAvgPool2d((oh, ow)): output cell (i, j) averages rows
 * [floor(i*h/oh), ceil((i+1)*h/oh)) and columns [floor(j*w/ow), ceil((j+1)*w/ow)).
 * xs, ys: batch strides in floats. With pscale (else NULL) every input value
 * first goes through the prologue pact(x * pscale[ch] + pshift[ch]). */
static NNC_MAYBE_UNUSED void nnc_adaptive_avgpool2d(int n, const float *x, size_t xs, int c, int h, int w, float *y,
                                                    size_t ys, int oh, int ow, const float *pscale,
                                                    const float *pshift, int pact, float pslope)
{
    size_t plane;
    int i, j, r, q;
    for (plane = 0; plane < (size_t)n * (size_t)c; plane++) {
        size_t ch = plane % (size_t)c;
        const float *xc = x + plane / (size_t)c * xs + ch * (size_t)h * (size_t)w;
        float *yc = y + plane / (size_t)c * ys + ch * (size_t)oh * (size_t)ow;
        for (i = 0; i < oh; i++) {
            int r0 = (int)((long)i * h / oh), r1 = (int)(((long)(i + 1) * h + oh - 1) / oh);
            for (j = 0; j < ow; j++) {
                int q0 = (int)((long)j * w / ow), q1 = (int)(((long)(j + 1) * w + ow - 1) / ow);
                double s = 0.0;
                for (r = r0; r < r1; r++)
                    for (q = q0; q < q1; q++) {
                        float v = xc[(size_t)r * (size_t)w + (size_t)q];
                        s += pscale ? nnc_act1(v * pscale[ch] + pshift[ch], pact, pslope) : v;
                    }
                yc[(size_t)i * (size_t)ow + (size_t)j] = (float)(s / (double)((r1 - r0) * (q1 - q0)));
            }
        }
    }
}

/* @kernel lrn */
/* torch.nn.LocalResponseNorm(size, alpha, beta, k) across channels:
 * y = x / (k + alpha/size * sum of x^2 over channels [ch - size/2, ch + (size-1)/2])^beta.
 * y must not alias x (it holds the running sums). */
static NNC_MAYBE_UNUSED void nnc_lrn(int n, const float *x, int c, long hw, float *y, int size, float alpha,
                                     float beta, float k)
{
    int i, ch, c2;
    long p;
    for (i = 0; i < n; i++)
        for (ch = 0; ch < c; ch++) {
            const float *xs = x + (size_t)i * (size_t)c * (size_t)hw;
            float *yc = y + ((size_t)i * (size_t)c + (size_t)ch) * (size_t)hw;
            int lo = ch - size / 2 < 0 ? 0 : ch - size / 2;
            int hi = ch + (size - 1) / 2 >= c ? c - 1 : ch + (size - 1) / 2;
            for (p = 0; p < hw; p++) yc[p] = 0.0f;
            for (c2 = lo; c2 <= hi; c2++) {
                const float *xc = xs + (size_t)c2 * (size_t)hw;
                for (p = 0; p < hw; p++) yc[p] += xc[p] * xc[p];
            }
            for (p = 0; p < hw; p++)
                yc[p] = xs[(size_t)ch * (size_t)hw + (size_t)p] / powf(k + alpha / (float)size * yc[p], beta);
        }
}

/* @kernel concat */
/* One input of torch.cat(dim=1): copies x[i] into the slice of y[i] that starts at offset, per sample. */
static NNC_MAYBE_UNUSED void nnc_concat_part(int n, const float *x, long x_per_sample, float *y,
                                             long y_per_sample, long offset)
{
    int i;
    for (i = 0; i < n; i++)
        memcpy(y + (size_t)i * (size_t)y_per_sample + (size_t)offset, x + (size_t)i * (size_t)x_per_sample,
               (size_t)x_per_sample * sizeof(float));
}

/* @kernel softmax */
/* torch.softmax(x, dim=1) of x[n][c][inner]: exp(x - max) / sum, max and sum over c. y may equal x. */
static NNC_MAYBE_UNUSED void nnc_softmax(int n, const float *x, int c, long inner, float *y)
{
    int i, ch;
    long j;
    for (i = 0; i < n; i++)
        for (j = 0; j < inner; j++) {
            size_t base = (size_t)i * (size_t)c * (size_t)inner + (size_t)j, st = (size_t)inner;
            float m = -INFINITY;
            double sum = 0.0;
            float inv;
            for (ch = 0; ch < c; ch++)
                if (x[base + (size_t)ch * st] > m) m = x[base + (size_t)ch * st];
            for (ch = 0; ch < c; ch++) {
                float e = expf(x[base + (size_t)ch * st] - m);
                y[base + (size_t)ch * st] = e;
                sum += e;
            }
            inv = (float)(1.0 / sum);
            for (ch = 0; ch < c; ch++) y[base + (size_t)ch * st] *= inv;
        }
}
