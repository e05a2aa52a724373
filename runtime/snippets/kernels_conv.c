/* kernels_conv.c: the convolutions of the kernel library (kernels.c, whose
 * top comment gives the format and the rules): the window arithmetic they
 * share, torch.nn.Conv2d as im2col + GEMM (or a direct loop where that is
 * faster), a depthwise convolution fused with the pointwise one after it, and
 * torch.nn.ConvTranspose2d as GEMM + col2im; each applies the epilogue of a
 * fused residual add and activation to its output. */

/* @kernel conv_common */
/* y[r][0..cols) = bias[r] for r < rows, or 0 when bias is NULL. */
static NNC_MAYBE_UNUSED void nnc_fill_rows(float *y, int rows, size_t cols, const float *bias)
{
    int r;
    size_t j;
    for (r = 0; r < rows; r++) {
        float v = bias ? bias[r] : 0.0f;
        float *row = y + (size_t)r * cols;
        for (j = 0; j < cols; j++) row[j] = v;
    }
}

/* Columns one convolution GEMM should have at least. With few pixels per
 * sample (CIFAR's maps, the late layers of any network: 49 columns at 7x7)
 * one GEMM per sample is skinny and packs the weights again for each, so the
 * kernels put the samples of a block side by side (nnc_conv_samples) and run
 * one GEMM of normal shape per block. */
enum { NNC_CONV_COLS = 512 };

/* Samples per block for maps of ohw pixels, at most n: 1 when a sample alone
 * has NNC_CONV_COLS columns. */
static NNC_MAYBE_UNUSED int nnc_conv_samples(int n, int ohw)
{
    int nb = ohw >= NNC_CONV_COLS ? 1 : (NNC_CONV_COLS + ohw - 1) / ohw;
    return nb < n ? nb : n < 1 ? 1 : n;
}

/* The indices t in [0, count) with 0 <= t*stride + off < limit form [*lo, *hi)
 * (empty: *lo == *hi); the clipping bounds of a convolution window row. */
static NNC_MAYBE_UNUSED void nnc_valid_range(int count, int stride, int off, int limit, int *lo, int *hi)
{
    int a = off >= 0 ? 0 : (-off + stride - 1) / stride;
    int b = limit - 1 - off < 0 ? 0 : (limit - 1 - off) / stride + 1;
    if (a > count) a = count;
    if (b > count) b = count;
    if (b < a) b = a;
    *lo = a;
    *hi = b;
}

/* @kernel conv2d needs: gemm conv_common epilogue */
/* Unfolds x[cg][h][w] into col[cg*kh*kw][oh*ow]: row (ci,ki,kj), column (oy,ox)
 * holds the input pixel that kernel tap meets at that output (0 in padding).
 * ld is the distance between rows of col in floats: oh*ow for one sample's
 * matrix, more when col is one sample's block of columns in a wider matrix
 * (several samples side by side, nnc_conv2d_backward). The columns inside the
 * image ([lo, hi), nnc_valid_range) are the same for every output row of a
 * tap, so they are found once a tap; rows are copied in a plain loop (the
 * maps of small networks have rows of 5 to 32 floats, shorter than a call to
 * memcpy is worth), from NNC_IM2COL_MEMCPY floats on with memcpy. */
enum { NNC_IM2COL_MEMCPY = 64 };
/* The rows of kernel rows [ki0, ki1) of one channel x[h][w]: col's row
 * (ki - ki0)*kw + kj. */
static NNC_MAYBE_UNUSED void nnc_im2col_krows(const float *x, int h, int w, float *col, size_t ld, int oh, int ow,
                                              int ki0, int ki1, int kw, int sh, int sw, int ph, int pw, int dh,
                                              int dw)
{
    int ki, kj, oy, ox;
    size_t r = 0;
    for (ki = ki0; ki < ki1; ki++)
        for (kj = 0; kj < kw; kj++, r++) {
            float *row = col + r * ld;
            int off = kj * dw - pw, lo, hi;
            nnc_valid_range(ow, sw, off, w, &lo, &hi);
            for (oy = 0; oy < oh; oy++, row += ow) {
                int iy = oy * sh - ph + ki * dh;
                const float *src;
                if (iy < 0 || iy >= h) {
                    for (ox = 0; ox < ow; ox++) row[ox] = 0.0f;
                    continue;
                }
                src = x + (size_t)iy * (size_t)w;
                for (ox = 0; ox < lo; ox++) row[ox] = 0.0f;
                if (sw == 1 && hi - lo >= NNC_IM2COL_MEMCPY)
                    memcpy(row + lo, src + (lo + off), (size_t)(hi - lo) * sizeof(float));
                else if (sw == 1)
                    for (ox = lo; ox < hi; ox++) row[ox] = src[ox + off];
                else if (sw == 2)  /* a constant stride: a vector gather of even lanes */
                    for (ox = lo; ox < hi; ox++) row[ox] = src[2 * ox + off];
                else
                    for (ox = lo; ox < hi; ox++) row[ox] = src[ox * sw + off];
                for (ox = hi; ox < ow; ox++) row[ox] = 0.0f;
            }
        }
}

static NNC_MAYBE_UNUSED void nnc_im2col(const float *x, int cg, int h, int w, float *col, size_t ld, int oh, int ow,
                                        int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw)
{
    int ci;
    for (ci = 0; ci < cg; ci++)
        nnc_im2col_krows(x + (size_t)ci * (size_t)h * (size_t)w, h, w, col + (size_t)ci * (size_t)(kh * kw) * ld, ld,
                         oh, ow, 0, kh, kw, sh, sw, ph, pw, dh, dw);
}

/* Columns [c0, c1) of one output row of a depthwise plane: yrow[ox] += the
 * taps of kernel row ki inside the image, one tap after another (the order
 * every path of nnc_dw_plane adds them in). */
static NNC_MAYBE_UNUSED void nnc_dw_row_taps(const float *xrow, int w, const float *wr, float *yrow, int c0, int c1,
                                             int kw, int sw, int pw, int dw)
{
    int kj, ox;
    for (kj = 0; kj < kw; kj++) {
        int off = kj * dw - pw, lo, hi;
        float wv = wr[kj];
        nnc_valid_range(c1, sw, off, w, &lo, &hi);
        if (lo < c0) lo = c0;
        if (sw == 1) {
            const float *xs = xrow + off;
            for (ox = lo; ox < hi; ox++) yrow[ox] += wv * xs[ox];
        } else {
            for (ox = lo; ox < hi; ox++) yrow[ox] += wv * xrow[ox * sw + off];
        }
    }
}

/* Outputs per step of the 3x3 loops below: their inner loops have this
 * constant trip count, which GCC's -O2 vectorizes (its cost model at -O2
 * leaves loops of unknown trip count scalar) and Clang too; 16 floats are one
 * AVX-512 register, two AVX or four SSE/NEON ones. */
enum { NNC_DW_VL = 16 };

/* Stride 1: y[j] = b + the taps of nk (1 to 3) kernel rows for n outputs
 * whose taps are all inside the input, added in kernel order: row k's input
 * xk (from the first output's first tap, j + 0, j + d, j + 2d for output j,
 * d the column dilation) and weights wk (three). In steps of NNC_DW_VL
 * outputs, the last one moved back to end at n (it recomputes a few outputs,
 * the same values); fewer than NNC_DW_VL outputs go one by one. */
static NNC_MAYBE_UNUSED void nnc_dw3_s1(float *restrict y, const float *restrict x0, const float *restrict x1,
                                        const float *restrict x2, const float *w0, const float *w1, const float *w2,
                                        int nk, int n, int d, float b)
{
    const float a0 = w0[0], a1 = w0[1], a2 = w0[2], b0 = w1[0], b1 = w1[1], b2 = w1[2];
    const float c0 = w2[0], c1 = w2[1], c2 = w2[2];
    const int d2 = 2 * d;
    int j, q;
    if (n >= NNC_DW_VL) {
        for (j = 0; j < n; j += NNC_DW_VL) {
            float acc[NNC_DW_VL];
            int s = j + NNC_DW_VL <= n ? j : n - NNC_DW_VL;
            const float *p0 = x0 + s, *p1 = x1 + s, *p2 = x2 + s;
            for (q = 0; q < NNC_DW_VL; q++) acc[q] = ((b + a0 * p0[q]) + a1 * p0[q + d]) + a2 * p0[q + d2];
            if (nk > 1)
                for (q = 0; q < NNC_DW_VL; q++) acc[q] = ((acc[q] + b0 * p1[q]) + b1 * p1[q + d]) + b2 * p1[q + d2];
            if (nk > 2)
                for (q = 0; q < NNC_DW_VL; q++) acc[q] = ((acc[q] + c0 * p2[q]) + c1 * p2[q + d]) + c2 * p2[q + d2];
            for (q = 0; q < NNC_DW_VL; q++) y[s + q] = acc[q];
        }
    } else {
        for (j = 0; j < n; j++) {
            float v = ((b + a0 * x0[j]) + a1 * x0[j + d]) + a2 * x0[j + d2];
            if (nk > 1) v = ((v + b0 * x1[j]) + b1 * x1[j + d]) + b2 * x1[j + d2];
            if (nk > 2) v = ((v + c0 * x2[j]) + c1 * x2[j + d]) + c2 * x2[j + d2];
            y[j] = v;
        }
    }
}

/* Outputs of a stride-2 chunk: the even and odd columns of its input rows
 * go to stack buffers of about this many floats (a multiple of NNC_DW_VL). */
enum { NNC_DW_CHUNK = 128, NNC_DW_S2ROWS = 4 };

/* Stride 2, dilation 1: nnc_dw3_s1's sums with output j's taps at columns
 * 2j, 2j + 1, 2j + 2 of its rows, for nr (up to NNC_DW_S2ROWS) output rows
 * (y, row stride ldy) two input rows apart: output row r adds kernel row k
 * (weights wr[k], k < nk) from input row xr[2r + k], so the rows between two
 * output rows' windows are shared. Per chunk of columns, each input row is
 * split once into its even and odd columns (zeros past the end), then every
 * tap is a unit-stride load and the outputs go in whole steps of NNC_DW_VL
 * (the last one moved back to end at the chunk's end, or stored only up to
 * it when the chunk is narrower than a step). Narrow rows (fewer than
 * NNC_DW_VL outputs) go one output at a time, straight from the input. */
static NNC_MAYBE_UNUSED void nnc_dw3_s2(float *restrict y, size_t ldy, int nr, const float *const *xr,
                                        const float *const *wr, int nk, int n, float b)
{
    float e[2 * NNC_DW_S2ROWS + 1][NNC_DW_CHUNK + 1], o[2 * NNC_DW_S2ROWS + 1][NNC_DW_CHUNK];
    const float a0 = wr[0][0], a1 = wr[0][1], a2 = wr[0][2], b0 = wr[nk > 1][0], b1 = wr[nk > 1][1];
    const float b2 = wr[nk > 1][2], c0 = wr[nk - 1][0], c1 = wr[nk - 1][1], c2 = wr[nk - 1][2];
    int nx = 2 * (nr - 1) + nk, j0, j, q, k, r;
    if (n < NNC_DW_VL) {
        for (r = 0; r < nr; r++)
            for (j = 0; j < n; j++) {
                const float *p0 = xr[2 * r] + 2 * j, *p1 = xr[2 * r + (nk > 1)] + 2 * j;
                const float *p2 = xr[2 * r + nk - 1] + 2 * j;
                float v = ((b + a0 * p0[0]) + a1 * p0[1]) + a2 * p0[2];
                if (nk > 1) v = ((v + b0 * p1[0]) + b1 * p1[1]) + b2 * p1[2];
                if (nk > 2) v = ((v + c0 * p2[0]) + c1 * p2[1]) + c2 * p2[2];
                y[(size_t)r * ldy + (size_t)j] = v;
            }
        return;
    }
    for (j0 = 0; j0 < n; j0 += NNC_DW_CHUNK) {
        int m = n - j0 < NNC_DW_CHUNK ? n - j0 : NNC_DW_CHUNK;
        for (k = 0; k < nx; k++) {
            const float *restrict a = xr[k] + 2 * (size_t)j0;
            float *restrict ek = e[k], *restrict ok = o[k];
            if (m >= NNC_DW_VL) {
                for (j = 0; j < m; j += NNC_DW_VL) {
                    int t = j + NNC_DW_VL <= m ? j : m - NNC_DW_VL;
                    for (q = 0; q < NNC_DW_VL; q++) {
                        ek[t + q] = a[2 * (t + q)];
                        ok[t + q] = a[2 * (t + q) + 1];
                    }
                }
            } else {
                for (j = 0; j < m; j++) {
                    ek[j] = a[2 * j];
                    ok[j] = a[2 * j + 1];
                }
                for (j = m; j < NNC_DW_VL; j++) ek[j + 1] = ok[j] = 0.0f;
            }
            ek[m] = a[2 * m];
        }
        for (r = 0; r < nr; r++) {
            const float *e0 = e[2 * r], *o0 = o[2 * r], *e1 = e[2 * r + (nk > 1)], *o1 = o[2 * r + (nk > 1)];
            const float *e2 = e[2 * r + nk - 1], *o2 = o[2 * r + nk - 1];
            float *yr = y + (size_t)r * ldy + (size_t)j0;
            for (j = 0; j < m; j += NNC_DW_VL) {
                float acc[NNC_DW_VL];
                if (m >= NNC_DW_VL && j + NNC_DW_VL > m) j = m - NNC_DW_VL;  /* the last step ends at m */
                for (q = 0; q < NNC_DW_VL; q++) acc[q] = ((b + a0 * e0[j + q]) + a1 * o0[j + q]) + a2 * e0[j + q + 1];
                if (nk > 1)
                    for (q = 0; q < NNC_DW_VL; q++)
                        acc[q] = ((acc[q] + b0 * e1[j + q]) + b1 * o1[j + q]) + b2 * e1[j + q + 1];
                if (nk > 2)
                    for (q = 0; q < NNC_DW_VL; q++)
                        acc[q] = ((acc[q] + c0 * e2[j + q]) + c1 * o2[j + q]) + c2 * e2[j + q + 1];
                if (j + NNC_DW_VL <= m)
                    for (q = 0; q < NNC_DW_VL; q++) yr[j + q] = acc[q];
                else
                    for (q = 0; q < m - j; q++) yr[j + q] = acc[q];
            }
        }
    }
}

/* Columns [c0, c1) of a 3x3 output row, one at a time: y[ox] = b + the taps
 * inside the input of its nk kernel rows (row k: input row xr[k], weights
 * wr[k]), in kernel order. The border columns of nnc_dw3_plane. */
static NNC_MAYBE_UNUSED void nnc_dw3_cols(const float *const *xr, const float *const *wr, int nk, float b, float *yrow,
                                          int c0, int c1, int w, int sw, int pw, int dw)
{
    int ox, k, kj;
    for (ox = c0; ox < c1; ox++) {
        float v = b;
        for (k = 0; k < nk; k++)
            for (kj = 0; kj < 3; kj++) {
                int ix = ox * sw - pw + kj * dw;
                if (ix >= 0 && ix < w) v += wr[k][kj] * xr[k][ix];
            }
        yrow[ox] = v;
    }
}

/* The border columns (outside [xlo, xhi)) of the 3x3 output rows [r0, r1),
 * whose three kernel rows are all inside the input: per column, the column
 * taps inside the input, [ka, kb), are found once, then each row adds its
 * taps in kernel order with no test. The rows are independent, so their add
 * chains overlap. y: row r0 of the output (rows of ow floats). */
static NNC_MAYBE_UNUSED void nnc_dw3_border(const float *xc, int w, const float *wk, float b, float *y, int r0, int r1,
                                            int ow, int xlo, int xhi, int sh, int sw, int ph, int pw, int dh, int dw)
{
    int ox, r, kj;
    for (ox = 0; ox < ow; ox++) {
        int ix0, ka = 0, kb = 3;
        if (ox == xlo) ox = xhi;
        if (ox >= ow) break;
        ix0 = ox * sw - pw;
        while (ka < 3 && ix0 + ka * dw < 0) ka++;
        while (kb > ka && ix0 + (kb - 1) * dw >= w) kb--;
        for (r = r0; r < r1; r++) {
            const float *x0 = xc + (size_t)(r * sh - ph) * (size_t)w, *x1 = x0 + (size_t)dh * (size_t)w;
            const float *x2 = x1 + (size_t)dh * (size_t)w;
            float v = b;
            for (kj = ka; kj < kb; kj++) v += wk[kj] * x0[ix0 + kj * dw];
            for (kj = ka; kj < kb; kj++) v += wk[3 + kj] * x1[ix0 + kj * dw];
            for (kj = ka; kj < kb; kj++) v += wk[6 + kj] * x2[ix0 + kj * dw];
            y[(size_t)(r - r0) * (size_t)ow + (size_t)ox] = v;
        }
    }
}

/* nnc_dw_plane for 3x3 kernels at column stride 1 (any dilation) or 2
 * (dilation 1), MobileNet's depthwise layers. The rows [fa, fb) whose three
 * kernel rows are inside the input: their columns [xlo, xhi), whose three
 * column taps are inside too, through nnc_dw3_s1 or nnc_dw3_s2; their border
 * columns through nnc_dw3_border. When the output is as wide as the input
 * (stride 1, "same" padding), those rows' interiors are one run of
 * nnc_dw3_s1 over the flattened rows (output p reads input p plus a fixed
 * offset per tap), so narrow maps (14, 7 columns) run in whole vector steps
 * too; the border columns, which read the end of the neighbouring row there,
 * are computed after it. The other rows (the window sticks out at the top or
 * bottom) find their kernel rows inside the input, then do the same with
 * nnc_dw3_cols for the borders. Same sums in the same order as the
 * tap-by-tap loop. */
static NNC_MAYBE_UNUSED void nnc_dw3_plane(const float *xc, int h, int w, const float *wk, float b, float *y, int oy0,
                                           int oy1, int ow, int sh, int sw, int ph, int pw, int dh, int dw)
{
    int xlo = (pw + sw - 1) / sw, xhi = w - 1 + pw - 2 * dw < 0 ? 0 : (w - 1 + pw - 2 * dw) / sw + 1;
    int fa = (ph + sh - 1) / sh, fb = h - 1 + ph - 2 * dh < 0 ? 0 : (h - 1 + ph - 2 * dh) / sh + 1;
    int n, oy, flat, j, ki;
    size_t col;
    if (xhi > ow) xhi = ow;
    if (xlo >= xhi) xlo = xhi = ow;  /* no interior column: border columns only */
    n = xhi - xlo;
    col = n > 0 ? (size_t)(xlo * sw - pw) : 0;
    if (fa < oy0) fa = oy0;
    if (fb > oy1) fb = oy1;
    if (fa >= fb) fa = fb = oy0;
    flat = sh == 1 && sw == 1 && ow == w && n > 0 && fa < fb;
    if (flat) {
        const float *x0 = xc + (size_t)(fa - ph) * (size_t)w + col;
        const float *x1 = x0 + (size_t)dh * (size_t)w, *x2 = x1 + (size_t)dh * (size_t)w;
        nnc_dw3_s1(y + (size_t)(fa - oy0) * (size_t)ow + (size_t)xlo, x0, x1, x2, wk, wk + 3, wk + 6, 3,
                   (fb - 1 - fa) * w + n, dw, b);
    }
    if (fa < fb && n < ow)
        nnc_dw3_border(xc, w, wk, b, y + (size_t)(fa - oy0) * (size_t)ow, fa, fb, ow, xlo, xhi, sh, sw, ph, pw, dh, dw);
    if (sw == 2 && sh == 2 && dh == 1 && n > 0)  /* full rows in groups sharing input rows */
        for (oy = fa; oy < fb; oy += NNC_DW_S2ROWS) {
            const float *xr[2 * NNC_DW_S2ROWS + 1], *wr[3];
            int nr = fb - oy < NNC_DW_S2ROWS ? fb - oy : NNC_DW_S2ROWS;
            for (ki = 0; ki < 2 * nr + 1; ki++) xr[ki] = xc + (size_t)(2 * oy - ph + ki) * (size_t)w + col;
            wr[0] = wk, wr[1] = wk + 3, wr[2] = wk + 6;
            nnc_dw3_s2(y + (size_t)(oy - oy0) * (size_t)ow + (size_t)xlo, (size_t)ow, nr, xr, wr, 3, n, b);
            flat = 1;  /* done, as the flat run's rows */
        }
    for (oy = oy0; oy < oy1; oy++) {
        float *yrow = y + (size_t)(oy - oy0) * (size_t)ow;
        const float *xr[3], *wr[3];
        int nk = 0, full = oy >= fa && oy < fb;
        if (n == 0 && full) continue;
        if (flat && full) continue;
        for (ki = 0; ki < 3; ki++) {
            int iy = oy * sh - ph + ki * dh;
            if (iy < 0 || iy >= h) continue;
            xr[nk] = xc + (size_t)iy * (size_t)w;
            wr[nk++] = wk + 3 * ki;
        }
        if (!full) {
            nnc_dw3_cols(xr, wr, nk, b, yrow, 0, xlo, w, sw, pw, dw);
            nnc_dw3_cols(xr, wr, nk, b, yrow, xhi, ow, w, sw, pw, dw);
        }
        if (n == 0) continue;
        if (nk == 0)
            for (j = xlo; j < xhi; j++) yrow[j] = b;
        else if (sw == 1)
            nnc_dw3_s1(yrow + xlo, xr[0] + col, xr[nk > 1] + col, xr[nk - 1] + col, wr[0], wr[nk > 1], wr[nk - 1],
                       nk, n, dw, b);
        else {
            for (ki = 0; ki < nk; ki++) xr[ki] += col;
            nnc_dw3_s2(yrow + xlo, (size_t)ow, 1, xr, wr, nk, n, b);
        }
    }
}

/* nnc_dw_plane at column stride 1 for kernels not 3 wide (LeNet-5's 5x5
 * first layer, one input channel, takes this path), any row stride, rows
 * [oy0, oy1): per output row, the interior columns [xlo, xhi) (every tap
 * inside the row; at least NNC_DW_VL of them) in steps of NNC_DW_VL outputs,
 * the last step moved back to end at xhi (it recomputes a few outputs, the
 * same values), each output's sum kept in a register: b, then the taps of
 * every kernel row inside the image in kernel order, as nnc_dw_row_taps adds
 * them one after another; the border columns one by one with the same sums.
 * Bit for bit tap by tap, with a kw-th of the loads and stores of y and no
 * range computed per tap. The pragma keeps gcc -O3 (the JIT's) from unrolling
 * the 16 outputs before its loop vectorizer runs, which left them in SSE
 * registers (LeNet-5's training step 1.3x slower); -O2 and clang vectorize
 * the loop either way. */
static NNC_MAYBE_UNUSED void nnc_dwk_s1(const float *xc, int h, int w, const float *wk, float b, float *y, int oy0,
                                        int oy1, int ow, int kh, int kw, int sh, int ph, int pw, int dh, int dw,
                                        int xlo, int xhi)
{
    int oy, ox, ki, kj, q;
    for (oy = oy0; oy < oy1; oy++) {
        float *yrow = y + (size_t)(oy - oy0) * (size_t)ow;
        int ty = oy * sh - ph, k0 = 0, k1 = kh;
        while (k0 < kh && ty + k0 * dh < 0) k0++;
        while (k1 > k0 && ty + (k1 - 1) * dh >= h) k1--;
        for (ox = xlo; ox < xhi; ox += NNC_DW_VL) {
            float acc[NNC_DW_VL];
            int s = ox + NNC_DW_VL <= xhi ? ox : xhi - NNC_DW_VL;
            for (q = 0; q < NNC_DW_VL; q++) acc[q] = b;
            for (ki = k0; ki < k1; ki++) {
                const float *xr = xc + (size_t)(ty + ki * dh) * (size_t)w + (s - pw), *wr = wk + ki * kw;
                for (kj = 0; kj < kw; kj++) {
                    const float wv = wr[kj], *p = xr + kj * dw;
#pragma GCC unroll 1
                    for (q = 0; q < NNC_DW_VL; q++) acc[q] += wv * p[q];
                }
            }
            for (q = 0; q < NNC_DW_VL; q++) yrow[s + q] = acc[q];
        }
        for (ox = 0; ox < ow; ox++) {
            float v = b;
            if (ox == xlo) ox = xhi;  /* past the interior */
            if (ox >= ow) break;
            for (ki = k0; ki < k1; ki++) {
                const float *xr = xc + (size_t)(ty + ki * dh) * (size_t)w, *wr = wk + ki * kw;
                for (kj = 0; kj < kw; kj++) {
                    int ix = ox - pw + kj * dw;
                    if (ix >= 0 && ix < w) v += wr[kj] * xr[ix];
                }
            }
            yrow[ox] = v;
        }
    }
}

/* One depthwise plane, rows [oy0, oy1) of the output: y[oy - oy0][ox] = b +
 * sum of wk[ki][kj] * xc[oy*sh - ph + ki*dh][ox*sw - pw + kj*dw] over the taps
 * inside the image (zero padding), added in kernel order. y holds (oy1 - oy0)
 * rows of ow floats. A direct loop: with one input channel per group, im2col
 * would build a kh*kw-row matrix for a GEMM of a single output row. For the
 * usual three taps a row, the columns whose taps are all inside the image add
 * a kernel row's three in one pass over the output row (the same sums in the
 * same order as tap by tap, a third of the loads and stores of y). 3x3
 * kernels at column stride 1, or 2 with dilation 1, take nnc_dw3_plane's
 * vectorized paths instead, other widths at column stride 1 with 16 interior
 * columns or more nnc_dwk_s1's, with the same sums in the same order. */
static NNC_MAYBE_UNUSED void nnc_dw_plane(const float *xc, int h, int w, const float *wk, float b, float *y, int oy0,
                                          int oy1, int ow, int kh, int kw, int sh, int sw, int ph, int pw, int dh,
                                          int dw)
{
    int oy, ox, ki;
    /* columns with every tap inside: ox*sw - pw >= 0 and ox*sw - pw + (kw-1)*dw <= w - 1 */
    int xlo = (pw + sw - 1) / sw, xhi = w - 1 + pw - (kw - 1) * dw < 0 ? 0 : (w - 1 + pw - (kw - 1) * dw) / sw + 1;
    if (kh == 3 && kw == 3 && (sw == 1 || (sw == 2 && dw == 1))) {
        nnc_dw3_plane(xc, h, w, wk, b, y, oy0, oy1, ow, sh, sw, ph, pw, dh, dw);
        return;
    }
    if (xhi > ow) xhi = ow;
    if (sw == 1 && kw != 3 && xhi - xlo >= NNC_DW_VL) {
        nnc_dwk_s1(xc, h, w, wk, b, y, oy0, oy1, ow, kh, kw, sh, ph, pw, dh, dw, xlo, xhi);
        return;
    }
    if (xlo > xhi || kw != 3) xlo = xhi = 0;  /* tap by tap everywhere */
    for (oy = oy0; oy < oy1; oy++) {
        float *yrow = y + (size_t)(oy - oy0) * (size_t)ow;
        for (ox = 0; ox < ow; ox++) yrow[ox] = b;
        for (ki = 0; ki < kh; ki++) {
            int iy = oy * sh - ph + ki * dh;
            const float *xrow, *wr = wk + ki * kw;
            if (iy < 0 || iy >= h) continue;
            xrow = xc + (size_t)iy * (size_t)w;
            if (xlo < xhi) {
                const float w0 = wr[0], w1 = wr[1], w2 = wr[2];
                const float *x0 = xrow - pw, *x1 = x0 + dw, *x2 = x1 + dw;
                nnc_dw_row_taps(xrow, w, wr, yrow, 0, xlo, kw, sw, pw, dw);
                if (sw == 1)
                    for (ox = xlo; ox < xhi; ox++) yrow[ox] = ((yrow[ox] + w0 * x0[ox]) + w1 * x1[ox]) + w2 * x2[ox];
                else
                    for (ox = xlo; ox < xhi; ox++) {
                        size_t p = (size_t)ox * (size_t)sw;
                        yrow[ox] = ((yrow[ox] + w0 * x0[p]) + w1 * x1[p]) + w2 * x2[p];
                    }
                nnc_dw_row_taps(xrow, w, wr, yrow, xhi, ow, kw, sw, pw, dw);
            } else {
                nnc_dw_row_taps(xrow, w, wr, yrow, 0, ow, kw, sw, pw, dw);
            }
        }
    }
}

/* Samples per GEMM block of nnc_conv2d at batch n: several only for a plain
 * convolution (no prologue, not depthwise) of a small map. */
static NNC_MAYBE_UNUSED int nnc_conv2d_block(int n, int c, int kh, int kw, int sh, int sw, int ph, int pw, int oh,
                                             int ow, int groups, int prologue)
{
    int direct = kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0;
    if (prologue || (c / groups == 1 && !direct)) return 1;
    return nnc_conv_samples(n, oh * ow);
}

/* Floats of scratch nnc_conv2d needs at batches up to n: the prologue's copy
 * of one sample (c*h*w, when it has one), then one im2col matrix (one sample,
 * one group), which a 1x1 stride-1 unpadded convolution and a depthwise one
 * (one input channel per group) do without; or, for blocks of several samples
 * (nnc_conv2d_block), their im2col matrices side by side and the block's
 * output beside them. */
static NNC_MAYBE_UNUSED size_t nnc_conv2d_scratch(int n, int c, int h, int w, int k, int kh, int kw, int sh, int sw,
                                                  int ph, int pw, int oh, int ow, int groups, int prologue)
{
    size_t s = prologue ? (size_t)c * (size_t)h * (size_t)w : 0, ohw = (size_t)oh * (size_t)ow;
    size_t nb = (size_t)nnc_conv2d_block(n, c, kh, kw, sh, sw, ph, pw, oh, ow, groups, prologue);
    int direct = kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0;
    if (nb > 1) return ((size_t)(c / groups) * (size_t)kh * (size_t)kw + (size_t)(k / groups)) * nb * ohw;
    if (!direct && c / groups > 1) s += (size_t)(c / groups) * (size_t)kh * (size_t)kw * ohw;
    return s;
}

/* The epilogue of one sample's group of channels yg [kg][ohw]: y = act(y +
 * residual) (rg: the residual's same block, or NULL), the activation on the
 * group's channels below act_k only (a fused group of sibling convolutions,
 * some without one). */
static NNC_MAYBE_UNUSED void nnc_conv_epilogue(float *yg, int g, int kg, size_t ohw, const float *rg, int act,
                                               float slope, int act_k)
{
    int on = act_k - g * kg;  /* channels of this group the activation covers */
    on = on < 0 ? 0 : on > kg ? kg : on;
    if (on > 0) nnc_epilogue(yg, (size_t)on * ohw, rg, act, slope);
    if (on < kg) nnc_epilogue(yg + (size_t)on * ohw, (size_t)(kg - on) * ohw, rg ? rg + (size_t)on * ohw : NULL,
                              NNC_ACT_NONE, 0.0f);
}

/* Rows [o0, o1) of sample j of a block's GEMM output (out: rows of ld
 * floats, sample j's ohw columns at j*ohw) out to their place yj [rows][ohw]:
 * yj[o] = out[o] + bias[o] (bias NULL: + 0.0f, which turns -0 into +0, as the
 * blocked convolutions always did), or a plain copy with copy set (a GEMM
 * that started its sums from the bias, as the one-sample paths do); then
 * each row through the epilogue y = act(y + residual) (rj: the sample's
 * residual rows, like yj, or NULL), the activation on rows below act_k only
 * (nnc_conv_epilogue's arithmetic). */
static NNC_MAYBE_UNUSED void nnc_conv_block_out(const float *out, size_t ld, int j, size_t ohw, int o0, int o1,
                                                const float *bias, int copy, float *yj, const float *rj, int act,
                                                float slope, int act_k)
{
    int o;
    size_t p;
    for (o = o0; o < o1; o++) {
        const float *src = out + (size_t)o * ld + (size_t)j * ohw;
        float *dst = yj + (size_t)o * ohw, b = bias ? bias[o] : 0.0f;
        if (copy)
            memcpy(dst, src, ohw * sizeof(float));
        else
            for (p = 0; p < ohw; p++) dst[p] = src[p] + b;
        if (rj || act != NNC_ACT_NONE)
            nnc_epilogue(dst, ohw, rj ? rj + (size_t)o * ohw : NULL, o < act_k ? act : NNC_ACT_NONE, slope);
    }
}

/* nnc_conv2d for a block of m samples side by side (nnc_conv2d_block): per
 * group, their im2col matrices fill the scratch's columns (row stride m*ohw),
 * one GEMM writes the block's output after them, and each sample's rows go
 * out with the bias added, then through the epilogue (nnc_conv_block_out). */
static NNC_MAYBE_UNUSED void nnc_conv2d_sampleblock(int m, const float *x, size_t xs, int c, int h, int w,
                                                    const float *wt, const float *bias, float *y, size_t ys, int k,
                                                    int oh, int ow, int kh, int kw, int sh, int sw, int ph, int pw,
                                                    int dh, int dw, int groups, float *scratch, const float *residual,
                                                    size_t rs, int act, float slope, int act_k)
{
    int cg = c / groups, kg = k / groups, kdim = cg * kh * kw, g, j;
    size_t ohw = (size_t)oh * (size_t)ow, ld = (size_t)m * ohw, hw = (size_t)h * (size_t)w;
    float *out = scratch + (size_t)kdim * ld;
    for (g = 0; g < groups; g++) {
        for (j = 0; j < m; j++)
            nnc_im2col(x + (size_t)j * xs + (size_t)g * (size_t)cg * hw, cg, h, w, scratch + (size_t)j * ohw, ld, oh,
                       ow, kh, kw, sh, sw, ph, pw, dh, dw);
        nnc_sgemm(0, 0, kg, (int)ld, kdim, 1.0f, wt + (size_t)g * (size_t)kg * (size_t)kdim, kdim, scratch, (int)ld,
                  0.0f, out, (int)ld);
        for (j = 0; j < m; j++)
            nnc_conv_block_out(out, ld, j, ohw, 0, kg, bias ? bias + (size_t)g * (size_t)kg : NULL, 0,
                               y + (size_t)j * ys + (size_t)g * (size_t)kg * ohw,
                               residual ? residual + (size_t)j * rs + (size_t)g * (size_t)kg * ohw : NULL, act, slope,
                               act_k - g * kg);
    }
}

/* torch.nn.Conv2d (zero padding): per sample and group, y = W * im2col(x) + bias,
 * then the epilogue y = act(y + residual) on that block (nnc_epilogue; residual
 * [n][k][oh][ow] with batch stride rs, or NULL; act NNC_ACT_*, slope for
 * leaky_relu), the activation on output channels [0, act_k) only (k: all; a
 * fused group of sibling convolutions, some without one). xs and ys are the
 * batch strides of x and y in floats (c*h*w and k*oh*ow for whole tensors;
 * more when x or y is a channel slice of a larger tensor). With
 * pscale (else NULL), each sample first goes through the prologue
 * x' = pact(x * pscale + pshift) into the scratch (nnc_prologue), so padding
 * stays zero after it as PyTorch's BN-ReLU-Conv has it. A 1x1, stride-1,
 * unpadded convolution multiplies x directly (no im2col); a depthwise one runs
 * nnc_dw_plane per channel. Small maps go in blocks of samples
 * (nnc_conv2d_sampleblock); the scratch holds nnc_conv2d_scratch(n, ...) floats. */
static NNC_MAYBE_UNUSED void nnc_conv2d(int n, const float *x, size_t xs, int c, int h, int w, const float *wt,
                                        const float *bias, float *y, size_t ys, int k, int oh, int ow, int kh, int kw,
                                        int sh, int sw, int ph, int pw, int dh, int dw, int groups, float *scratch,
                                        const float *residual, size_t rs, int act, float slope, int act_k,
                                        const float *pscale, const float *pshift, int pact, float pslope)
{
    int cg = c / groups, kg = k / groups, i, g, o;
    int kdim = cg * kh * kw, ohw = oh * ow;
    size_t hw = (size_t)h * (size_t)w;
    int direct = kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0 && oh == h && ow == w;
    int nb = nnc_conv2d_block(n, c, kh, kw, sh, sw, ph, pw, oh, ow, groups, pscale != NULL);
    if (nb > 1) {
        for (i = 0; i < n; i += nb)
            nnc_conv2d_sampleblock(n - i < nb ? n - i : nb, x + (size_t)i * xs, xs, c, h, w, wt, bias,
                                   y + (size_t)i * ys, ys, k, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, groups, scratch,
                                   residual ? residual + (size_t)i * rs : NULL, rs, act, slope, act_k);
        return;
    }
    for (i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * xs;
        float *yi = y + (size_t)i * ys, *cols_buf = scratch;
        if (pscale) {
            nnc_prologue(xi, c, hw, pscale, pshift, pact, pslope, scratch);
            xi = scratch;
            cols_buf = scratch + (size_t)c * hw;
        }
        for (g = 0; g < groups; g++) {
            const float *xg = xi + (size_t)g * (size_t)cg * hw;
            float *yg = yi + (size_t)g * (size_t)kg * (size_t)ohw;
            if (cg == 1 && !direct) {
                for (o = 0; o < kg; o++) {
                    int oc = g * kg + o;
                    nnc_dw_plane(xg, h, w, wt + (size_t)oc * (size_t)kdim, bias ? bias[oc] : 0.0f,
                                 yg + (size_t)o * (size_t)ohw, 0, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw);
                }
            } else {
                const float *cols = xg;
                if (!direct) {
                    nnc_im2col(xg, cg, h, w, cols_buf, (size_t)ohw, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw);
                    cols = cols_buf;
                }
                if (bias) nnc_fill_rows(yg, kg, (size_t)ohw, bias + (size_t)g * (size_t)kg);
                nnc_sgemm(0, 0, kg, ohw, kdim, 1.0f, wt + (size_t)g * (size_t)kg * (size_t)kdim, kdim, cols, ohw,
                          bias ? 1.0f : 0.0f, yg, ohw);
            }
            if (residual || act != NNC_ACT_NONE)
                nnc_conv_epilogue(yg, g, kg, (size_t)ohw,
                                  residual ? residual + (size_t)i * rs + (size_t)g * (size_t)kg * (size_t)ohw : NULL,
                                  act, slope, act_k);
        }
    }
}

/* @kernel dwpw needs: gemm conv2d epilogue */
/* Floats of scratch nnc_dwpw needs: the depthwise output of one tile of rows. */
static NNC_MAYBE_UNUSED size_t nnc_dwpw_scratch(int c, int ow, int tile_rows)
{
    return (size_t)c * (size_t)tile_rows * (size_t)ow;
}

/* A depthwise convolution (torch.nn.Conv2d with groups = c = channels) with
 * bias dwb and activation dact, then a 1x1 convolution to k channels with bias
 * pwb and the epilogue y = act(y + residual), computed tile_rows output rows at
 * a time: the depthwise rows of all channels go to the scratch (c x tile_rows x
 * ow floats, sized to stay in cache), the pointwise GEMM reads them from there
 * and writes the tile's rows of y. The depthwise output never exists whole.
 * Each channel's rows go through the depthwise activation right after they
 * are computed, and the tile's output rows through the epilogue right after
 * the GEMM (nnc_epilogue, whose loops gcc -O2 vectorizes).
 * xs, ys: batch strides of x and y in floats; residual is contiguous. */
static NNC_MAYBE_UNUSED void nnc_dwpw(int n, const float *x, size_t xs, int c, int h, int w, const float *dwt,
                                      const float *dwb, int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                                      int dact, float dslope, const float *pwt, const float *pwb, float *y, size_t ys,
                                      int k, int oh, int ow, const float *residual, int act, float slope,
                                      int tile_rows, float *scratch)
{
    int i, r0, ch, o;
    size_t hw = (size_t)h * (size_t)w, ohw = (size_t)oh * (size_t)ow;
    if (tile_rows < 1) tile_rows = 1;
    for (i = 0; i < n; i++)
        for (r0 = 0; r0 < oh; r0 += tile_rows) {
            int rows = oh - r0 < tile_rows ? oh - r0 : tile_rows, cols = rows * ow;
            float *yt = y + (size_t)i * ys + (size_t)r0 * (size_t)ow;
            for (ch = 0; ch < c; ch++) {
                float *t = scratch + (size_t)ch * (size_t)cols;
                nnc_dw_plane(x + (size_t)i * xs + (size_t)ch * hw, h, w, dwt + (size_t)ch * (size_t)(kh * kw),
                             dwb ? dwb[ch] : 0.0f, t, r0, r0 + rows, ow, kh, kw, sh, sw, ph, pw, dh, dw);
                nnc_epilogue(t, (size_t)cols, NULL, dact, dslope);  /* while the channel's rows are in L1 */
            }
            if (pwb)
                for (o = 0; o < k; o++) {
                    float *row = yt + (size_t)o * ohw;
                    int j;
                    for (j = 0; j < cols; j++) row[j] = pwb[o];
                }
            nnc_sgemm(0, 0, k, cols, c, 1.0f, pwt, c, scratch, cols, pwb ? 1.0f : 0.0f, yt, (int)ohw);
            if (residual || act != NNC_ACT_NONE)
                for (o = 0; o < k; o++)
                    nnc_epilogue(yt + (size_t)o * ohw, (size_t)cols,
                                    residual ? residual + ((size_t)i * (size_t)k + (size_t)o) * ohw +
                                                   (size_t)r0 * (size_t)ow
                                             : NULL,
                                    act, slope);
        }
}

/* @kernel conv_transpose2d needs: gemm conv_common epilogue */
/* Folds col[kg*kh*kw][h*w] back into y[kg][oh][ow], adding each column entry at
 * the output pixel its kernel tap reaches (taps landing outside are dropped).
 * ld: the distance between rows of col in floats (h*w, or more as nnc_im2col's). */
static NNC_MAYBE_UNUSED void nnc_col2im(const float *col, size_t ld, int kg, int h, int w, float *y, int oh, int ow,
                                        int kh, int kw, int sh, int sw, int ph, int pw, int dh, int dw)
{
    int ko, ki, kj, iy, ix;
    size_t r = 0;
    for (ko = 0; ko < kg; ko++)
        for (ki = 0; ki < kh; ki++)
            for (kj = 0; kj < kw; kj++, r++) {
                const float *row = col + r * ld;
                float *yk = y + (size_t)ko * (size_t)oh * (size_t)ow;
                int off = kj * dw - pw, lo, hi;
                nnc_valid_range(w, sw, off, ow, &lo, &hi);
                for (iy = 0; iy < h; iy++, row += w) {
                    int oy = iy * sh - ph + ki * dh;
                    float *yrow;
                    if (oy < 0 || oy >= oh) continue;
                    yrow = yk + (size_t)oy * (size_t)ow;
                    for (ix = lo; ix < hi; ix++) yrow[ix * sw + off] += row[ix];
                }
            }
}

/* Floats of scratch nnc_conv_transpose2d needs: one column matrix (one sample, one group). */
static NNC_MAYBE_UNUSED size_t nnc_conv_transpose2d_scratch(int h, int w, int k, int kh, int kw, int groups)
{
    return (size_t)(k / groups) * (size_t)kh * (size_t)kw * (size_t)h * (size_t)w;
}

/* torch.nn.ConvTranspose2d: per sample and group, col = W^T * x, then y = bias + col2im(col),
 * then the epilogue y = act(y + residual) on that block, as nnc_conv2d's. */
static NNC_MAYBE_UNUSED void nnc_conv_transpose2d(int n, const float *x, int c, int h, int w, const float *wt,
                                                  const float *bias, float *y, int k, int oh, int ow, int kh,
                                                  int kw, int sh, int sw, int ph, int pw, int dh, int dw,
                                                  int groups, float *scratch, const float *residual, int act,
                                                  float slope)
{
    int cg = c / groups, kg = k / groups, i, g;
    int kdim = kg * kh * kw, hw = h * w;
    size_t ohw = (size_t)oh * (size_t)ow;
    for (i = 0; i < n; i++)
        for (g = 0; g < groups; g++) {
            const float *xg = x + ((size_t)i * (size_t)c + (size_t)g * (size_t)cg) * (size_t)hw;
            float *yg = y + ((size_t)i * (size_t)k + (size_t)g * (size_t)kg) * ohw;
            nnc_sgemm(1, 0, kdim, hw, cg, 1.0f, wt + (size_t)g * (size_t)cg * (size_t)kdim, kdim, xg, hw, 0.0f,
                      scratch, hw);
            nnc_fill_rows(yg, kg, ohw, bias ? bias + (size_t)g * (size_t)kg : NULL);
            nnc_col2im(scratch, (size_t)hw, kg, h, w, yg, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw);
            if (residual || act != NNC_ACT_NONE)
                nnc_epilogue(yg, (size_t)kg * ohw, residual ? residual + (yg - y) : NULL, act, slope);
        }
}

