/* data_test.h: the helpers and fixtures of test_data.c and test_data_loader.c, which
 * test, together, the data sets of `nnc train` (runtime/data.h).
 *
 * Every format is tested on tiny files written here by hand (IDX plain and gzipped,
 * CIFAR-10 records, .npy of several dtypes), so the expected pixels and labels are
 * known exactly; each refusal is provoked by a file made wrong on purpose, and its
 * message is checked for the spec prefix and for the words that tell the user what
 * to do. The loader is tested for what training relies on: shuffles are
 * permutations that depend on (seed, epoch) only; augmentations do what data.h says
 * (checked pixel by pixel on small images, over enough draws to see every outcome);
 * and a restored state gives the very batches of an uninterrupted run. The real
 * Fashion-MNIST from Debian's dataset-fashion-mnist is loaded when installed. */
#ifndef NNC_TESTS_DATA_TEST_H
#define NNC_TESTS_DATA_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "runtime/data.h"

/* Each test file of the family uses some of these helpers, not all. */
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-variable"

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

static char g_dir[256];   /* this run's scratch directory */
static char g_err[2048];  /* the message of the last failed call */

/* ---- helpers ---- */

/* A fresh directory g_dir/name for one test, its path in out. */
static void make_dir(char *out, size_t size, const char *name)
{
    snprintf(out, size, "%s/%s", g_dir, name);
    assert_int_equal(mkdir(out, 0755), 0);
}

static void path_in(char *out, size_t size, const char *dir, const char *name)
{
    snprintf(out, size, "%s/%s", dir, name);
}

static void write_bytes(const char *dir, const char *name, const void *data, size_t len)
{
    char p[1024];
    path_in(p, sizeof p, dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    if (len) assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void remove_file(const char *dir, const char *name)
{
    char p[1024];
    path_in(p, sizeof p, dir, name);
    assert_int_equal(unlink(p), 0);
}

/* An IDX file of unsigned bytes, gzipped if gz (then NAME.gz). */
static void write_idx(const char *dir, const char *name, int gz, int rank, const uint32_t *dims, const uint8_t *data)
{
    unsigned char buf[4096];
    size_t n = 4, count = 1;
    buf[0] = buf[1] = 0;
    buf[2] = 0x08;
    buf[3] = (unsigned char)rank;
    for (int i = 0; i < rank; i++) {
        for (int k = 0; k < 4; k++) buf[n++] = (unsigned char)(dims[i] >> (24 - 8 * k));
        count *= dims[i];
    }
    assert_true(n + count <= sizeof buf);
    memcpy(buf + n, data, count);
    n += count;
    if (!gz) {
        write_bytes(dir, name, buf, n);
        return;
    }
    char p[1024];
    snprintf(p, sizeof p, "%s/%s.gz", dir, name);
    gzFile g = gzopen(p, "wb");
    assert_non_null(g);
    assert_int_equal(gzwrite(g, buf, (unsigned)n), (int)n);
    assert_int_equal(gzclose(g), Z_OK);
}

/* A .npy file, format 1.0, with any header dict text (padded as numpy pads it). */
static void write_npy_dict(const char *dir, const char *name, const char *dict, const void *data, size_t bytes)
{
    size_t dl = strlen(dict), hlen = dl + 1;
    hlen += (64 - (10 + hlen) % 64) % 64;
    size_t size = 10 + hlen + bytes;
    unsigned char *b = malloc(size);
    assert_non_null(b);
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (unsigned char)(hlen & 0xff);
    b[9] = (unsigned char)(hlen >> 8);
    memset(b + 10, ' ', hlen);
    memcpy(b + 10, dict, dl);
    b[10 + hlen - 1] = '\n';
    if (bytes) memcpy(b + 10 + hlen, data, bytes);
    write_bytes(dir, name, b, size);
    free(b);
}

/* A .npy file with the given dtype string and shape text ("(2, 3)"). */
static void write_npy(const char *dir, const char *name, const char *descr, const char *shape, const void *data,
                      size_t bytes)
{
    char dict[256];
    snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape);
    write_npy_dict(dir, name, dict, data, bytes);
}

/* Reads a whole small file into buf; returns its length. */
static size_t read_bytes(const char *dir, const char *name, unsigned char *buf, size_t size)
{
    char p[1024];
    path_in(p, sizeof p, dir, name);
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, size, f);
    assert_true(n < size);
    fclose(f);
    return n;
}

/* Asserts a failure whose one-line message starts with "SPEC: " and contains both parts. */
static void expect_fail(int rc, const char *spec, const char *part1, const char *part2)
{
    size_t n = strlen(spec);
    if (rc != -1 || strncmp(g_err, spec, n) != 0 || strncmp(g_err + n, ": ", 2) != 0 || strchr(g_err, '\n') ||
        (part1 && !strstr(g_err, part1)) || (part2 && !strstr(g_err, part2)))
        fail_msg("rc %d, message \"%s\", wanted \"%s: ...%s...%s...\"", rc, g_err, spec, part1 ? part1 : "",
                 part2 ? part2 : "");
}

/* dt_open that must fail, with the set left empty. */
static void open_fails(const char *spec, DtSplit split, const char *part1, const char *part2)
{
    DtSet s;
    g_err[0] = 0;
    expect_fail(dt_open(&s, spec, split, g_err, sizeof g_err), spec, part1, part2);
    assert_null(s.images);
    assert_null(s.labels);
    assert_null(s.spec);
    dt_close(&s);
}

static void open_ok(DtSet *s, const char *spec, DtSplit split)
{
    g_err[0] = 0;
    if (dt_open(s, spec, split, g_err, sizeof g_err) != 0) fail_msg("dt_open(%s): %s", spec, g_err);
}

/* A float32 .npy set of n images 1 x h x w with pixel k of image i = i * 100 + k + 1,
 * labels i % 3: distinct non-zero pixels, so a crop's shift and a flip can be read back. */
static void make_counting_set(const char *dir, int n, int c, int h, int w)
{
    size_t size = (size_t)c * h * w;
    float *im = malloc((size_t)n * size * sizeof(float));
    int64_t *lb = malloc((size_t)n * sizeof(int64_t));
    assert_non_null(im);
    assert_non_null(lb);
    for (int i = 0; i < n; i++) {
        for (size_t k = 0; k < size; k++) im[i * size + k] = (float)(i * 100 + (int)k + 1);
        lb[i] = i % 3;
    }
    char shape[64];
    snprintf(shape, sizeof shape, "(%d, %d, %d, %d)", n, c, h, w);
    write_npy(dir, "train_images.npy", "<f4", shape, im, (size_t)n * size * 4);
    snprintf(shape, sizeof shape, "(%d,)", n);
    write_npy(dir, "train_labels.npy", "<i8", shape, lb, (size_t)n * 8);
    free(im);
    free(lb);
}

static void loader_ok(DtLoader *l, const DtSet *s, const DtOptions *o)
{
    if (dt_loader_init(l, s, o, g_err, sizeof g_err) != 0) fail_msg("dt_loader_init: %s", g_err);
}

/* One whole epoch's images and labels, concatenated, in batches of `batch`. */
static void whole_epoch(DtLoader *l, int64_t epoch, int batch, float *images, int32_t *labels)
{
    int64_t size = dt_image_size(l->set), at = 0;
    int got;
    dt_epoch_begin(l, epoch);
    while ((got = dt_next_batch(l, images + at * size, labels + at, batch)) > 0) at += got;
    assert_int_equal(got, 0);
    assert_int_equal(at, l->set->n);
}

static int setup(void **state)
{
    (void)state;
    const char *t = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/nnc_data_XXXXXX", t && *t ? t : "/tmp");
    return mkdtemp(g_dir) ? 0 : -1;
}

/* Removes g_dir and the per-test directories in it (files only below them). */
static int teardown(void **state)
{
    (void)state;
    DIR *d = opendir(g_dir);
    struct dirent *e;
    char sub[512], p[1024];
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(sub, sizeof sub, "%s/%s", g_dir, e->d_name);
        DIR *s = opendir(sub);
        struct dirent *f;
        while (s && (f = readdir(s)))
            if (strcmp(f->d_name, ".") && strcmp(f->d_name, "..")) {
                snprintf(p, sizeof p, "%s/%s", sub, f->d_name);
                unlink(p);
            }
        if (s) closedir(s);
        if (rmdir(sub) != 0) unlink(sub);
    }
    if (d) closedir(d);
    return rmdir(g_dir);
}

/* Train plain, test gzipped: rt_idx_read handles both and dt_open must find either name. */
static void write_small_mnist(const char *dir)
{
    static const uint8_t train_px[3 * 2 * 3] = {0, 255, 1, 2, 3, 4, 10, 20, 30, 40, 50, 60, 254, 128, 127, 5, 6, 7};
    static const uint8_t train_lb[3] = {9, 0, 4};
    static const uint8_t test_px[2 * 2 * 3] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    static const uint8_t test_lb[2] = {3, 7};
    write_idx(dir, "train-images-idx3-ubyte", 0, 3, (uint32_t[]){3, 2, 3}, train_px);
    write_idx(dir, "train-labels-idx1-ubyte", 0, 1, (uint32_t[]){3}, train_lb);
    write_idx(dir, "t10k-images-idx3-ubyte", 1, 3, (uint32_t[]){2, 2, 3}, test_px);
    write_idx(dir, "t10k-labels-idx1-ubyte", 1, 1, (uint32_t[]){2}, test_lb);
}

#endif
