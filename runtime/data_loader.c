/* data_loader.c: the loader of data.h: what it does to a set in memory
 * (data.c) to hand out batches: the --normalize option, the order of an
 * epoch, the augmentation and normalization of each sample (the steps of
 * data.h, in that order), and the state a checkpoint keeps. The reader
 * thread that calls it ahead of the caller is in data_prefetch.c.
 *
 * Randomness. Nothing random is kept between calls: the order of epoch e and the
 * augmentation of sample i in epoch e each come from an RtRng seeded with a hash of
 * (seed, e[, i]). That is what makes a loader's state two integers, and a resumed
 * run identical to an uninterrupted one. */
#include "runtime/data.h"

#include "runtime/data_internal.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- options ---- */

int dt_parse_normalize(const char *text, DtOptions *opt, char *err, size_t errlen)
{
    float v[2 * DT_MAX_CHANNELS];
    int n = 0;
    char pre[160];
    size_t tl = text ? strlen(text) : 0;   /* long values are cut, with "..." to say so */
    snprintf(pre, sizeof pre, "--normalize '%.60s%s'", text ? text : "", tl > 60 ? "..." : "");
    const char *p = text ? text : "";
    for (;;) {
        char *end = NULL;
        errno = 0;
        double d = strtod(p, &end);
        if (end == p || !isfinite(d) || errno == ERANGE || fabs(d) > 1e30)
            return dt_fail(err, errlen, pre, "expected a number at '%.20s'; write MEAN,STD (one pair for every channel) "
                           "or the C means then the C stds, e.g. 0.49,0.48,0.45,0.25,0.24,0.26", p);
        if (n == 2 * DT_MAX_CHANNELS)
            return dt_fail(err, errlen, pre, "more than %d numbers; nnc normalizes at most %d channels one by one",
                           2 * DT_MAX_CHANNELS, DT_MAX_CHANNELS);
        v[n++] = (float)d;
        p = end;
        if (*p == 0) break;
        if (*p++ != ',')
            return dt_fail(err, errlen, pre, "expected ',' between the numbers at '%.20s'", p - 1);
    }
    if (n % 2)
        return dt_fail(err, errlen, pre, "%d numbers: expected as many means as stds (MEAN,STD, or C means then C stds)", n);
    for (int i = 0; i < n / 2; i++)
        if (!(v[n / 2 + i] > 0))
            return dt_fail(err, errlen, pre, "std %g (number %d) must be > 0", (double)v[n / 2 + i], n / 2 + i + 1);
    opt->norm_count = n / 2;
    for (int i = 0; i < n / 2; i++) {
        opt->mean[i] = v[i];
        opt->std[i] = v[n / 2 + i];
    }
    return 0;
}

/* ---- the loader ---- */

/* splitmix64's output function: a bijective 64-bit mix. */
static uint64_t dt_fmix(uint64_t z)
{
    z += UINT64_C(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

enum { DT_STREAM_ORDER = 1, DT_STREAM_AUGMENT = 2 };   /* what a generator is for */

/* The generator for (seed, epoch, stream, index): nothing else feeds it. */
static void dt_rng(RtRng *r, uint64_t seed, int64_t epoch, int stream, int64_t index)
{
    uint64_t h = dt_fmix(seed);
    h = dt_fmix(h ^ (uint64_t)epoch);
    h = dt_fmix(h ^ (uint64_t)stream);
    h = dt_fmix(h ^ (uint64_t)index);
    rt_rng_seed(r, h);
}

/* Uniform in [0, n), n >= 1, without modulo bias. */
static uint64_t dt_below(RtRng *r, uint64_t n)
{
    uint64_t limit = (0 - n) % n;   /* 2^64 mod n: values below it are rejected */
    for (;;) {
        uint64_t x = rt_rng_next_u64(r);
        if (x >= limit) return x % n;
    }
}

int dt_loader_init(DtLoader *l, const DtSet *set, const DtOptions *opt, char *err, size_t errlen)
{
    memset(l, 0, sizeof *l);
    const char *spec = set->spec;
    if (set->n < 1 || !set->images) return dt_fail(err, errlen, spec, "the data set is not open");
    if (opt->norm_count < 0 || opt->norm_count > DT_MAX_CHANNELS || (opt->norm_count > 1 && opt->norm_count != set->c))
        return dt_fail(err, errlen, spec, "--normalize gives %d mean,std pairs but the images have %lld channel%s; "
                       "give one pair for all channels or one for each", opt->norm_count, (long long)set->c,
                       set->c == 1 ? "" : "s");
    for (int i = 0; i < opt->norm_count; i++)
        if (!isfinite(opt->mean[i]) || !(opt->std[i] > 0) || !isfinite(opt->std[i]))
            return dt_fail(err, errlen, spec, "--normalize: channel %d has mean %g, std %g; the std must be > 0 and both finite",
                           i, (double)opt->mean[i], (double)opt->std[i]);
    if (opt->crop_pad < 0 || opt->crop_pad > set->h || opt->crop_pad > set->w)
        return dt_fail(err, errlen, spec, "crop padding %d is out of range for %lld x %lld images; use 0 (off) to %lld",
                       opt->crop_pad, (long long)set->h, (long long)set->w, (long long)(set->h < set->w ? set->h : set->w));
    if (!(opt->jitter >= 0 && opt->jitter <= 1))
        return dt_fail(err, errlen, spec, "jitter %g is out of range; use 0 (off) to 1", (double)opt->jitter);
    if (opt->hflip != 0 && opt->hflip != 1) return dt_fail(err, errlen, spec, "hflip is %d; use 0 or 1", opt->hflip);
    if ((uint64_t)set->n > SIZE_MAX / sizeof(int64_t) || !(l->order = malloc((size_t)set->n * sizeof(int64_t))))
        return dt_fail(err, errlen, spec, "out of memory for the order of %lld samples", (long long)set->n);
    l->set = set;
    l->opt = *opt;
    l->epoch = -1;
    return 0;
}

void dt_loader_free(DtLoader *l)
{
    if (!l) return;
    free(l->order);
    memset(l, 0, sizeof *l);
}

void dt_epoch_begin(DtLoader *l, int64_t epoch)
{
    int64_t n = l->set->n;
    for (int64_t i = 0; i < n; i++) l->order[i] = i;
    if (l->opt.shuffle) {   /* Fisher-Yates, from the last position down */
        RtRng r;
        dt_rng(&r, l->opt.seed, epoch, DT_STREAM_ORDER, 0);
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = (int64_t)dt_below(&r, (uint64_t)i + 1);
            int64_t t = l->order[i];
            l->order[i] = l->order[j];
            l->order[j] = t;
        }
    }
    l->epoch = epoch;
    l->pos = 0;
}

/* Step 1 of data.h: out(c, y, x) = in(c, y + dy, x + dx), zero outside the image. */
static void dt_crop(const DtSet *s, const float *in, float *out, int64_t dy, int64_t dx)
{
    for (int64_t c = 0; c < s->c; c++)
        for (int64_t y = 0; y < s->h; y++)
            for (int64_t x = 0; x < s->w; x++) {
                int64_t sy = y + dy, sx = x + dx;
                int inside = sy >= 0 && sy < s->h && sx >= 0 && sx < s->w;
                out[(c * s->h + y) * s->w + x] = inside ? in[(c * s->h + sy) * s->w + sx] : 0.0f;
            }
}

static void dt_flip(const DtSet *s, float *img)
{
    for (int64_t row = 0; row < s->c * s->h; row++) {
        float *r = img + row * s->w;
        for (int64_t a = 0, b = s->w - 1; a < b; a++, b--) {
            float t = r[a];
            r[a] = r[b];
            r[b] = t;
        }
    }
}

/* Step 3 of data.h: contrast around the image mean, then brightness. */
static void dt_jitter(float *img, int64_t size, float uc, float ub)
{
    double sum = 0;
    for (int64_t i = 0; i < size; i++) sum += img[i];
    float m = (float)(sum / (double)size);
    for (int64_t i = 0; i < size; i++) img[i] = m + (img[i] - m) * (1.0f + uc) + ub;
}

/* Writes sample `index` of the set, augmented for the current epoch and normalized, to out. */
static void dt_sample(const DtLoader *l, int64_t index, float *out)
{
    const DtSet *s = l->set;
    const DtOptions *o = &l->opt;
    int64_t size = dt_image_size(s), hw = s->h * s->w;
    const float *in = s->images + index * size;
    RtRng r;
    dt_rng(&r, o->seed, l->epoch, DT_STREAM_AUGMENT, index);
    if (o->crop_pad > 0) {
        int64_t dy = (int64_t)dt_below(&r, 2 * (uint64_t)o->crop_pad + 1) - o->crop_pad;
        int64_t dx = (int64_t)dt_below(&r, 2 * (uint64_t)o->crop_pad + 1) - o->crop_pad;
        dt_crop(s, in, out, dy, dx);
    } else {
        memcpy(out, in, (size_t)size * sizeof(float));
    }
    if (o->hflip && (rt_rng_next_u64(&r) >> 63)) dt_flip(s, out);
    if (o->jitter > 0) {
        float uc = rt_rng_uniform(&r, -o->jitter, o->jitter);
        float ub = rt_rng_uniform(&r, -o->jitter, o->jitter);
        dt_jitter(out, size, uc, ub);
    }
    for (int64_t c = 0; c < s->c && o->norm_count > 0; c++) {
        float m = o->mean[o->norm_count == 1 ? 0 : c], sd = o->std[o->norm_count == 1 ? 0 : c];
        for (int64_t i = 0; i < hw; i++) out[c * hw + i] = (out[c * hw + i] - m) / sd;
    }
}

int dt_next_batch(DtLoader *l, float *images, int32_t *labels, int max_batch)
{
    if (max_batch < 1 || l->epoch < 0 || !l->order) return -1;
    int64_t left = l->set->n - l->pos;
    int count = left < max_batch ? (int)left : max_batch;
    int64_t size = dt_image_size(l->set);
    for (int k = 0; k < count; k++) {
        int64_t index = l->order[l->pos + k];
        dt_sample(l, index, images + k * size);
        labels[k] = l->set->labels[index];
    }
    l->pos += count;
    return count;
}

int64_t dt_batches_per_epoch(const DtLoader *l, int batch)
{
    return batch < 1 ? 0 : (l->set->n + batch - 1) / batch;
}

void dt_loader_save(const DtLoader *l, DtLoaderState *s)
{
    memset(s, 0, sizeof *s);
    s->seed = l->opt.seed;
    s->epoch = l->epoch;
    s->pos = l->pos;
}

int dt_loader_restore(DtLoader *l, const DtLoaderState *s, char *err, size_t errlen)
{
    const char *spec = l->set ? l->set->spec : NULL;
    if (!l->order) return dt_fail(err, errlen, spec, "the loader is not initialized");
    if (s->seed != l->opt.seed)
        return dt_fail(err, errlen, spec, "the checkpoint's data seed is %llu but this run's is %llu; resume with the same seed",
                       (unsigned long long)s->seed, (unsigned long long)l->opt.seed);
    if (s->epoch < -1 || s->pos < 0 || s->pos > l->set->n || (s->epoch == -1 && s->pos != 0))
        return dt_fail(err, errlen, spec, "the checkpoint's data position (epoch %lld, sample %lld) does not fit a set of "
                       "%lld samples; resume with the same data", (long long)s->epoch, (long long)s->pos,
                       (long long)l->set->n);
    if (s->epoch >= 0) dt_epoch_begin(l, s->epoch);
    l->epoch = s->epoch;
    l->pos = s->pos;
    return 0;
}
