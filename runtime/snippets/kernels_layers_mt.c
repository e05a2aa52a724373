/* kernels_layers_mt.c: the part of the kernel library (kernels.c, whose top
 * comment gives the format and the rules) that runs whole layers on the
 * instance's context of kernels_parallel.c: convolutions and depthwise +
 * pointwise on weights packed at create, linear layers and pooling split over
 * the threads. Each keeps the arithmetic of its one-thread counterpart in
 * kernels_conv.c, kernels_elementwise.c or kernels_pool.c, so 1 and 2 threads
 * give bit-identical outputs. */

/* @kernel conv2d_packed needs: conv2d gemm_packed */
/* Samples per block of the packed convolutions at batch n for maps of ohw
 * pixels: nnc_conv_samples's count, evened out over the blocks (16 samples of
 * 7x7 go as 8 + 8, not 11 + 5), so never more than nnc_conv_samples(n, ohw),
 * which sizes the scratch. Which block a sample falls in changes none of its
 * results: each output's sum is the same sequence of operations whatever
 * the GEMM's width. */
static NNC_MAYBE_UNUSED int nnc_conv_block_samples(int n, int ohw)
{
    int nb = nnc_conv_samples(n, ohw), blocks = (n + nb - 1) / nb;
    return blocks > 1 ? (n + blocks - 1) / blocks : nb;
}

/* Floats of scratch nnc_conv2d_packed needs at batches up to n: one sample's
 * as nnc_conv2d_scratch (groups 1), or for blocks of nb samples of a small
 * map, their im2col matrices side by side (the input itself, put through
 * the prologue, for a 1x1 stride-1 unpadded one) and the block's output,
 * then with a prologue and im2col the block's samples through the
 * prologue. */
static NNC_MAYBE_UNUSED size_t nnc_conv2d_packed_scratch(int n, int c, int h, int w, int k, int kh, int kw, int sh,
                                                         int sw, int ph, int pw, int oh, int ow, int prologue)
{
    size_t ohw = (size_t)oh * (size_t)ow, nb = (size_t)nnc_conv_samples(n, oh * ow);
    int direct = kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0 && oh == h && ow == w;
    if (nb < 2) return nnc_conv2d_scratch(1, c, h, w, k, kh, kw, sh, sw, ph, pw, oh, ow, 1, prologue);
    return ((size_t)c * (size_t)kh * (size_t)kw + (size_t)k) * nb * ohw +
           (prologue && !direct ? nb * (size_t)c * (size_t)h * (size_t)w : 0);
}

/* nnc_im2col of m samples side by side (sample s's columns at s*cs in rows
 * ld floats apart), split over the instance's threads in units of one
 * sample's channel's kernel row (a ResNet stem has 3 channels: a task per
 * channel left one thread with twice the other's share), some 8,192 floats a
 * task at least (the 7x7 maps' units are 147 floats: a task each cost more in
 * claiming and shared cache lines than the copy). */
enum { NNC_IM2COL_TASK = 8192 };
typedef struct {
    const float *x;
    float *col;
    size_t xs, ld, cs;
    int c, h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, units, per;
} nnc_im2col_job;

static NNC_MAYBE_UNUSED void nnc_im2col_task(void *arg, int t)
{
    const nnc_im2col_job *j = (const nnc_im2col_job *)arg;
    int u, end = (t + 1) * j->per < j->units ? (t + 1) * j->per : j->units;
    for (u = t * j->per; u < end; u++) {
        int s = u / (j->c * j->kh), ci = u / j->kh % j->c, ki = u % j->kh;
        nnc_im2col_krows(j->x + (size_t)s * j->xs + (size_t)ci * (size_t)j->h * (size_t)j->w, j->h, j->w,
                         j->col + (size_t)s * j->cs + (size_t)(ci * j->kh + ki) * (size_t)j->kw * j->ld, j->ld,
                         j->oh, j->ow, ki, ki + 1, j->kw, j->sh, j->sw, j->ph, j->pw, j->dh, j->dw);
    }
}

static NNC_MAYBE_UNUSED void nnc_im2col_par(const nnc_ctx *ctx, int m, const float *x, size_t xs, int c, int h,
                                            int w, float *col, size_t ld, size_t cs, int oh, int ow, int kh, int kw,
                                            int sh, int sw, int ph, int pw, int dh, int dw)
{
    nnc_im2col_job j;
    long unit = (long)kw * oh * ow > 0 ? (long)kw * oh * ow : 1;
    j.x = x, j.col = col, j.xs = xs, j.ld = ld, j.cs = cs, j.c = c, j.h = h, j.w = w, j.oh = oh, j.ow = ow;
    j.kh = kh, j.kw = kw, j.sh = sh, j.sw = sw, j.ph = ph, j.pw = pw, j.dh = dh, j.dw = dw;
    j.units = m * c * kh;
    j.per = (int)((NNC_IM2COL_TASK + unit - 1) / unit);
    nnc_parallel_work(ctx, NNC_PAR_COPY * (double)m * c * kh * kw * (double)oh * ow, (j.units + j.per - 1) / j.per,
                      nnc_im2col_task, &j);
}

/* nnc_prologue of m samples (batch stride xs, c channels of hw floats) into
 * y, sample s's channel ch at s*ys + ch*yc, split over the threads a task
 * per sample and channel (the same arithmetic as nnc_prologue's loop). */
typedef struct {
    const float *x, *scale, *shift;
    float *y;
    size_t xs, hw, ys, yc;
    int c, act;
    float slope;
} nnc_prologue_job;

static NNC_MAYBE_UNUSED void nnc_prologue_task(void *arg, int t)
{
    const nnc_prologue_job *j = (const nnc_prologue_job *)arg;
    int s = t / j->c, ch = t % j->c;
    nnc_prologue(j->x + (size_t)s * j->xs + (size_t)ch * j->hw, 1, j->hw, j->scale + ch, j->shift + ch, j->act,
                 j->slope, j->y + (size_t)s * j->ys + (size_t)ch * j->yc);
}

static NNC_MAYBE_UNUSED void nnc_prologue_par(const nnc_ctx *ctx, int m, const float *x, size_t xs, int c, size_t hw,
                                              const float *scale, const float *shift, int act, float slope, float *y,
                                              size_t ys, size_t yc)
{
    nnc_prologue_job j;
    j.x = x, j.scale = scale, j.shift = shift, j.y = y, j.xs = xs, j.hw = hw, j.ys = ys, j.yc = yc, j.c = c;
    j.act = act, j.slope = slope;
    nnc_parallel_work(ctx, NNC_PAR_COPY * (double)m * c * (double)hw, m * c, nnc_prologue_task, &j);
}

/* nnc_conv_block_out for the m samples of a block (sample s to y + s*ys,
 * its residual at residual + s*rs), split over the threads a task per
 * sample and run of rows (some hundreds of floats). */
typedef struct {
    const float *out, *bias, *residual;
    float *y;
    size_t ld, ohw, ys, rs;
    int k, rows, runs, copy, act, act_k;
    float slope;
} nnc_block_out_job;

static NNC_MAYBE_UNUSED void nnc_block_out_task(void *arg, int t)
{
    const nnc_block_out_job *j = (const nnc_block_out_job *)arg;
    int s = t / j->runs, o0 = t % j->runs * j->rows, o1 = j->k - o0 < j->rows ? j->k : o0 + j->rows;
    nnc_conv_block_out(j->out, j->ld, s, j->ohw, o0, o1, j->bias, j->copy, j->y + (size_t)s * j->ys,
                       j->residual ? j->residual + (size_t)s * j->rs : NULL, j->act, j->slope, j->act_k);
}

static NNC_MAYBE_UNUSED void nnc_block_out_par(const nnc_ctx *ctx, int m, const float *out, size_t ohw, int k,
                                               const float *bias, int copy, float *y, size_t ys,
                                               const float *residual, size_t rs, int act, float slope, int act_k)
{
    nnc_block_out_job j;
    j.out = out, j.bias = bias, j.residual = residual, j.y = y, j.ld = (size_t)m * ohw, j.ohw = ohw, j.ys = ys;
    j.rs = rs, j.k = k, j.copy = copy, j.act = act, j.act_k = act_k, j.slope = slope;
    j.rows = ohw >= 256 ? 1 : (int)((256 + ohw - 1) / ohw);
    j.runs = (k + j.rows - 1) / j.rows;
    nnc_parallel_work(ctx, NNC_PAR_COPY * (double)m * k * (double)ohw, m * j.runs, nnc_block_out_task, &j);
}

/* nnc_conv2d (one group) on a weight packed at create (nnc_pack_weights of
 * [k][c*kh*kw]): the same arguments, plus the instance's ctx, and a scratch
 * of nnc_conv2d_packed_scratch(n, ...) floats. The GEMM reads im2col's
 * matrix (built over the threads) or, for a 1x1 stride-1 unpadded
 * convolution, x itself (or its prologue's copy), and applies the bias, the
 * residual and the activation to each tile of the output as it finishes it.
 * (Packing B straight from the image, skipping the im2col matrix, measured
 * 1.4-1.6x slower on ResNet-18/50 as written, a division-laden gather per 32
 * columns: the matrix costs memory traffic, but both of its passes are
 * vector copies.) Small maps go in blocks of samples side by side
 * (nnc_conv_block_samples): the prologue, if any, and the im2col matrices,
 * one GEMM into the scratch after them, then each sample's rows out with the
 * bias and the epilogue (nnc_conv_block_out), each step over the threads.
 * Without a prologue the block's GEMM adds the bias on the way out, as
 * nnc_conv2d_sampleblock does; with one, the GEMM starts from the bias as the
 * one-sample path does, so a densenet layer gives the same floats either
 * way. */
static NNC_MAYBE_UNUSED void nnc_conv2d_packed(const nnc_ctx *ctx, int n, const float *x, size_t xs, int c, int h,
                                               int w, const float *wp, const float *bias, float *y, size_t ys, int k,
                                               int oh, int ow, int kh, int kw, int sh, int sw, int ph, int pw, int dh,
                                               int dw, int groups, float *scratch, const float *residual, size_t rs,
                                               int act, float slope, int act_k, const float *pscale,
                                               const float *pshift, int pact, float pslope)
{
    long kdim = (long)c * kh * kw;
    size_t ohw = (size_t)oh * (size_t)ow, hw = (size_t)h * (size_t)w;
    int direct = kh == 1 && kw == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0 && oh == h && ow == w;
    int nb = n > 1 ? nnc_conv_block_samples(n, oh * ow) : 1, i;
    (void)groups;  /* 1: the pass packs only ungrouped convolutions */
    if (nb > 1) {
        for (i = 0; i < n; i += nb) {
            int m = n - i < nb ? n - i : nb;
            size_t ld = (size_t)m * ohw;
            float *col = scratch, *out = scratch + (size_t)kdim * ld;
            const float *xb = x + (size_t)i * xs;
            size_t bxs = xs;
            if (pscale && direct) {  /* the prologue writes the GEMM's matrix itself */
                nnc_prologue_par(ctx, m, xb, xs, c, hw, pscale, pshift, pact, pslope, col, ohw, ld);
            } else {
                if (pscale) {
                    float *pro = out + (size_t)k * ld;
                    nnc_prologue_par(ctx, m, xb, xs, c, hw, pscale, pshift, pact, pslope, pro, (size_t)c * hw, hw);
                    xb = pro, bxs = (size_t)c * hw;
                }
                nnc_im2col_par(ctx, m, xb, bxs, c, h, w, col, ld, ohw, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw);
            }
            nnc_gemm_packed(ctx, k, (long)ld, kdim, wp, col, ld, out, ld, pscale ? bias : NULL, NULL, NNC_ACT_NONE,
                            0.0f, 0);
            nnc_block_out_par(ctx, m, out, ohw, k, bias, pscale != NULL, y + (size_t)i * ys, ys,
                              residual ? residual + (size_t)i * rs : NULL, rs, act, slope, act_k);
        }
        return;
    }
    for (i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * xs;
        float *yi = y + (size_t)i * ys;
        const float *ri = residual ? residual + (size_t)i * rs : NULL;
        if (pscale) {
            nnc_prologue_par(ctx, 1, xi, xs, c, hw, pscale, pshift, pact, pslope, scratch, 0, hw);
            xi = scratch;
        }
        if (direct) {
            nnc_gemm_packed(ctx, k, (long)ohw, kdim, wp, xi, ohw, yi, ohw, bias, ri, act, slope, act_k);
        } else {
            float *cols = pscale ? scratch + (size_t)c * hw : scratch;
            nnc_im2col_par(ctx, 1, xi, 0, c, h, w, cols, ohw, 0, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw);
            nnc_gemm_packed(ctx, k, (long)ohw, kdim, wp, cols, ohw, yi, ohw, bias, ri, act, slope, act_k);
        }
    }
}

/* @kernel dwpw_packed needs: dwpw conv2d_packed */
/* The depthwise half of nnc_dwpw_packed for output rows [r0, r0+rows) of m
 * samples (batch stride xs), split over the threads a task per sample and
 * channel: sample s's channel ch goes to scratch + ch*ld + s*cs, then
 * through the depthwise activation while it is in L1. */
typedef struct {
    const float *x, *dwt, *dwb;
    float *scratch;
    size_t xs, hw, ld, cs;
    int c, h, w, r0, rows, ow, kh, kw, sh, sw, ph, pw, dh, dw, dact;
    float dslope;
} nnc_dw_job;

static NNC_MAYBE_UNUSED void nnc_dw_task(void *arg, int task)
{
    const nnc_dw_job *j = (const nnc_dw_job *)arg;
    int s = task / j->c, ch = task % j->c;
    float *t = j->scratch + (size_t)ch * j->ld + (size_t)s * j->cs;
    nnc_dw_plane(j->x + (size_t)s * j->xs + (size_t)ch * j->hw, j->h, j->w,
                 j->dwt + (size_t)ch * (size_t)(j->kh * j->kw), j->dwb ? j->dwb[ch] : 0.0f, t, j->r0,
                 j->r0 + j->rows, j->ow, j->kh, j->kw, j->sh, j->sw, j->ph, j->pw, j->dh, j->dw);
    nnc_epilogue(t, (size_t)j->rows * (size_t)j->ow, NULL, j->dact, j->dslope);
}

/* At batch > 1, the tiles of a large map go a sample per thread, each
 * thread with a tile of scratch of its own: up to this many threads. */
enum { NNC_DWPW_SLOTS = 4 };

/* Floats of scratch nnc_dwpw_packed needs at batches up to n: one tile's
 * depthwise rows (nnc_dwpw_scratch), NNC_DWPW_SLOTS of them at batch > 1;
 * or for blocks of nb samples of a small map (nnc_conv_samples), their
 * whole depthwise outputs side by side and the block's pointwise output. */
static NNC_MAYBE_UNUSED size_t nnc_dwpw_packed_scratch(int n, int c, int k, int oh, int ow, int tile_rows)
{
    size_t nb = (size_t)nnc_conv_samples(n, oh * ow);
    if (nb < 2) return (n > 1 ? (size_t)NNC_DWPW_SLOTS : 1) * nnc_dwpw_scratch(c, ow, tile_rows);
    return ((size_t)c + (size_t)k) * nb * (size_t)oh * (size_t)ow;
}

/* The pointwise half and the output of nnc_dwpw_packed, as its tiles see it. */
typedef struct {
    const float *x, *pwp, *pwb, *residual;  /* x: the batch's input */
    float *y;
    size_t ys, slot;
    int count, tasks, k, oh, ow, tile_rows, act, isa;  /* count: the samples split a sample per task */
    float slope;
    int dact;                   /* the depthwise activation, which the GEMM applies as it packs */
    float dslope;
    const nnc_dw_job *dw;
} nnc_dwpw_job;

/* Sample i of nnc_dwpw_packed tile by tile (dj: the depthwise job, its
 * scratch one tile's): the depthwise rows of all channels, then the
 * pointwise GEMM into y with the bias, residual and activation, each over
 * ctx's threads. */
static NNC_MAYBE_UNUSED void nnc_dwpw_tiles(const nnc_ctx *ctx, const nnc_dwpw_job *p, nnc_dw_job *dj, int i)
{
    size_t ohw = (size_t)p->oh * (size_t)p->ow;
    dj->x = p->x + (size_t)i * dj->xs;
    for (dj->r0 = 0; dj->r0 < p->oh; dj->r0 += p->tile_rows) {
        size_t off = (size_t)dj->r0 * (size_t)p->ow;
        dj->rows = p->oh - dj->r0 < p->tile_rows ? p->oh - dj->r0 : p->tile_rows;
        dj->ld = (size_t)dj->rows * (size_t)p->ow;
        nnc_parallel_work(ctx, (double)dj->c * dj->kh * dj->kw * (double)dj->ld, dj->c, nnc_dw_task, dj);
        nnc_gemm_packed_bact(ctx, p->k, (long)dj->ld, dj->c, p->pwp, dj->scratch, dj->ld,
                             p->y + (size_t)i * p->ys + off, ohw, p->pwb,
                             p->residual ? p->residual + (size_t)i * (size_t)p->k * ohw + off : NULL, p->act,
                             p->slope, p->k, p->dact, p->dslope);
    }
}

/* Task t of the samples [0, count), tasks a thread each: its share of them,
 * tile by tile on its own slot of the scratch. */
static NNC_MAYBE_UNUSED void nnc_dwpw_samples_task(void *arg, int t)
{
    const nnc_dwpw_job *p = (const nnc_dwpw_job *)arg;
    nnc_dw_job dj = *p->dw;
    nnc_ctx one;  /* the instance's instruction set, one thread */
    int i, lo = p->count * t / p->tasks, hi = p->count * (t + 1) / p->tasks;
    memset(&one, 0, sizeof one);
    one.isa = p->isa, one.threads = 1;
    dj.scratch = p->dw->scratch + (size_t)t * p->slot;
    for (i = lo; i < hi; i++) nnc_dwpw_tiles(&one, p, &dj, i);
}

/* nnc_dwpw with the pointwise weight packed at create (nnc_pack_weights of
 * [k][c]) and the instance's ctx, a scratch of nnc_dwpw_packed_scratch(n,
 * ...) floats. One sample: per tile, the depthwise rows of all channels
 * (split over the threads by channel), then nnc_gemm_packed with the bias,
 * residual and activation applied to each finished tile of y. At batch > 1,
 * maps of NNC_CONV_COLS pixels and more go the same way a sample per thread
 * (each thread on its own tile of scratch; whole rounds of samples, the
 * samples left over split as at batch 1), and small maps in blocks of
 * samples (nnc_conv_block_samples): the whole depthwise outputs of the
 * block's samples side by side (split by sample and channel), one GEMM over
 * all their columns into the scratch (its sums start from the bias, as the
 * tiles' do), then each sample's rows out through the epilogue
 * (nnc_conv_block_out). Every path gives each sample the same floats. */
static NNC_MAYBE_UNUSED void nnc_dwpw_packed(const nnc_ctx *ctx, int n, const float *x, size_t xs, int c, int h,
                                             int w, const float *dwt, const float *dwb, int kh, int kw, int sh, int sw,
                                             int ph, int pw, int dh, int dw, int dact, float dslope, const float *pwp,
                                             const float *pwb, float *y, size_t ys, int k, int oh, int ow,
                                             const float *residual, int act, float slope, int tile_rows,
                                             float *scratch)
{
    nnc_dw_job j;
    nnc_dwpw_job p;
    int i, nb = n > 1 ? nnc_conv_block_samples(n, oh * ow) : 1, threads = ctx ? ctx->threads : 1;
    size_t ohw = (size_t)oh * (size_t)ow;
    if (tile_rows < 1) tile_rows = 1;
    j.dwt = dwt, j.dwb = dwb, j.scratch = scratch, j.xs = xs, j.hw = (size_t)h * (size_t)w, j.c = c, j.h = h;
    j.w = w, j.ow = ow, j.kh = kh, j.kw = kw, j.sh = sh, j.sw = sw, j.ph = ph, j.pw = pw, j.dh = dh, j.dw = dw;
    /* The depthwise activation is applied by the GEMM as it packs the depthwise
     * output (the same floats), not by a pass of its own over each plane: on
     * MobileNet's 7x7 and 14x14 planes that pass was mostly call overhead. */
    j.dact = NNC_ACT_NONE, j.dslope = 0.0f;
    if (nb > 1) {
        for (i = 0; i < n; i += nb) {
            int m = n - i < nb ? n - i : nb;
            size_t ld = (size_t)m * ohw;
            float *out = scratch + (size_t)c * ld;
            j.x = x + (size_t)i * xs, j.ld = ld, j.cs = ohw, j.r0 = 0, j.rows = oh;
            nnc_parallel_work(ctx, (double)m * c * kh * kw * (double)ohw, m * c, nnc_dw_task, &j);
            nnc_gemm_packed_bact(ctx, k, (long)ld, c, pwp, scratch, ld, out, ld, pwb, NULL, NNC_ACT_NONE, 0.0f, 0, dact,
                                 dslope);
            nnc_block_out_par(ctx, m, out, ohw, k, NULL, 1, y + (size_t)i * ys, ys,
                              residual ? residual + (size_t)i * (size_t)k * ohw : NULL, (size_t)k * ohw, act, slope,
                              k);
        }
        return;
    }
    j.cs = 0;
    p.x = x, p.pwp = pwp, p.pwb = pwb, p.residual = residual, p.y = y, p.ys = ys, p.k = k, p.oh = oh, p.ow = ow;
    p.tile_rows = tile_rows, p.act = act, p.slope = slope, p.dw = &j, p.dact = dact, p.dslope = dslope;
    p.slot = nnc_dwpw_scratch(c, ow, tile_rows);
    p.isa = ctx ? ctx->isa : nnc_cpu_isa();
    p.tasks = threads < NNC_DWPW_SLOTS ? threads : NNC_DWPW_SLOTS;
    p.count = n > 1 && p.tasks > 1 ? n / p.tasks * p.tasks : 0;  /* whole rounds, a sample per thread */
    if (p.count > 0)
        nnc_parallel_work(ctx, (double)p.count * (double)c * (double)(kh * kw + k) * (double)ohw, p.tasks,
                          nnc_dwpw_samples_task, &p);
    for (i = p.count; i < n; i++) nnc_dwpw_tiles(ctx, &p, &j, i);
}

/* @kernel linear_mt needs: linear ctx */
/* nnc_linear split over the instance's threads by blocks of output features:
 * at batch 1 a linear layer streams its weight once (VGG's first one, 400
 * MB), and two cores read memory faster than one. Each block is the same
 * computation nnc_linear does for those columns, so the split changes no
 * result. With NNC_USE_CBLAS the BLAS runs it whole (it has its own threads). */
typedef struct {
    int n, in, out;
    const float *x, *wt, *bias, *residual;
    float *y;
    int act;
    float slope;
} nnc_linear_job;

enum { NNC_LINEAR_BLOCK = 64 };

static NNC_MAYBE_UNUSED void nnc_linear_task(void *arg, int t)
{
    const nnc_linear_job *j = (const nnc_linear_job *)arg;
    int o0 = t * NNC_LINEAR_BLOCK, cols = j->out - o0 < NNC_LINEAR_BLOCK ? j->out - o0 : NNC_LINEAR_BLOCK, i;
    for (i = 0; i < j->n; i++) {
        float *yi = j->y + (size_t)i * (size_t)j->out + (size_t)o0;
        if (j->bias)
            memcpy(yi, j->bias + o0, (size_t)cols * sizeof(float));
    }
    nnc_sgemm(0, 1, j->n, cols, j->in, 1.0f, j->x, j->in, j->wt + (size_t)o0 * (size_t)j->in, j->in,
              j->bias ? 1.0f : 0.0f, j->y + o0, j->out);
    if (j->residual || j->act != NNC_ACT_NONE)
        for (i = 0; i < j->n; i++) {
            size_t off = (size_t)i * (size_t)j->out + (size_t)o0;
            nnc_epilogue(j->y + off, (size_t)cols, j->residual ? j->residual + off : NULL, j->act, j->slope);
        }
}

static NNC_MAYBE_UNUSED void nnc_linear_mt(const nnc_ctx *ctx, int n, const float *x, int in, const float *wt,
                                           const float *bias, float *y, int out, const float *residual, int act,
                                           float slope)
{
#ifdef NNC_USE_CBLAS
    (void)ctx;
    nnc_linear(n, x, in, wt, bias, y, out, residual, act, slope);
#else
    nnc_linear_job j;
    j.n = n, j.in = in, j.out = out, j.x = x, j.wt = wt, j.bias = bias, j.residual = residual, j.y = y;
    j.act = act, j.slope = slope;
    nnc_parallel_work(ctx, (double)n * (double)in * (double)out, (out + NNC_LINEAR_BLOCK - 1) / NNC_LINEAR_BLOCK,
                      nnc_linear_task, &j);
#endif
}

/* @kernel pool_mt needs: ctx */
/* A pooling of n samples split over the instance's threads, a task per
 * sample and channel (its plane): at batch 16 a GoogLeNet's max pools read
 * some hundred megabytes, and two cores read memory faster than one. Each
 * plane is the one-plane call of the serial kernel, whose outputs do not
 * depend on the planes around them, so the split changes no result. */
typedef struct {
    const float *x;
    float *y;
    size_t xs, ys;
    int c, h, w, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, cip;
} nnc_pool_job;

static NNC_MAYBE_UNUSED void nnc_pool_job_init(nnc_pool_job *j, const float *x, size_t xs, int c, int h, int w,
                                               float *y, size_t ys, int oh, int ow, int kh, int kw, int sh, int sw,
                                               int ph, int pw)
{
    j->x = x, j->y = y, j->xs = xs, j->ys = ys, j->c = c, j->h = h, j->w = w, j->oh = oh, j->ow = ow;
    j->kh = kh, j->kw = kw, j->sh = sh, j->sw = sw, j->ph = ph, j->pw = pw, j->dh = 1, j->dw = 1, j->cip = 0;
}

/* Plane t's input and output. */
static NNC_MAYBE_UNUSED const float *nnc_pool_in(const nnc_pool_job *j, int t)
{
    return j->x + (size_t)(t / j->c) * j->xs + (size_t)(t % j->c) * (size_t)j->h * (size_t)j->w;
}

static NNC_MAYBE_UNUSED float *nnc_pool_out(const nnc_pool_job *j, int t)
{
    return j->y + (size_t)(t / j->c) * j->ys + (size_t)(t % j->c) * (size_t)j->oh * (size_t)j->ow;
}

/* @kernel maxpool2d_mt needs: maxpool2d pool_mt */
static NNC_MAYBE_UNUSED void nnc_maxpool2d_task(void *arg, int t)
{
    const nnc_pool_job *j = (const nnc_pool_job *)arg;
    nnc_maxpool2d(1, nnc_pool_in(j, t), 0, 1, j->h, j->w, nnc_pool_out(j, t), 0, j->oh, j->ow, j->kh, j->kw, j->sh,
                  j->sw, j->ph, j->pw, j->dh, j->dw);
}

/* nnc_maxpool2d over the instance's threads (pool_mt). */
static NNC_MAYBE_UNUSED void nnc_maxpool2d_mt(const nnc_ctx *ctx, int n, const float *x, size_t xs, int c, int h,
                                              int w, float *y, size_t ys, int oh, int ow, int kh, int kw, int sh,
                                              int sw, int ph, int pw, int dh, int dw)
{
    nnc_pool_job j;
    nnc_pool_job_init(&j, x, xs, c, h, w, y, ys, oh, ow, kh, kw, sh, sw, ph, pw);
    j.dh = dh, j.dw = dw;
    nnc_parallel_work(ctx, NNC_PAR_COPY * (double)n * c * (double)oh * ow * kh * kw, n * c, nnc_maxpool2d_task, &j);
}

/* @kernel avgpool2d_mt needs: avgpool2d pool_mt */
static NNC_MAYBE_UNUSED void nnc_avgpool2d_task(void *arg, int t)
{
    const nnc_pool_job *j = (const nnc_pool_job *)arg;
    nnc_avgpool2d(1, nnc_pool_in(j, t), 0, 1, j->h, j->w, nnc_pool_out(j, t), 0, j->oh, j->ow, j->kh, j->kw, j->sh,
                  j->sw, j->ph, j->pw, j->cip);
}

/* nnc_avgpool2d over the instance's threads (pool_mt). */
static NNC_MAYBE_UNUSED void nnc_avgpool2d_mt(const nnc_ctx *ctx, int n, const float *x, size_t xs, int c, int h,
                                              int w, float *y, size_t ys, int oh, int ow, int kh, int kw, int sh,
                                              int sw, int ph, int pw, int count_include_pad)
{
    nnc_pool_job j;
    nnc_pool_job_init(&j, x, xs, c, h, w, y, ys, oh, ow, kh, kw, sh, sw, ph, pw);
    j.cip = count_include_pad;
    nnc_parallel_work(ctx, NNC_PAR_COPY * (double)n * c * (double)oh * ow * kh * kw, n * c, nnc_avgpool2d_task, &j);
}
