/* test_data.c: the data sets of `nnc train` (runtime/data.h).
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

/* ---- the spec ---- */

static void test_spec_errors(void **state)
{
    (void)state;
    char spec[600], file[512];
    open_fails("fashion-mnist", DT_TRAIN, "no ':'", "KIND:DIR");
    open_fails("imagenet:/tmp", DT_TRAIN, "unknown data kind 'imagenet'", "mnist, fashion-mnist, cifar10, npy");
    open_fails(":/tmp", DT_TRAIN, "unknown data kind ''", "cifar10");
    open_fails("mnist:", DT_TRAIN, "no directory after 'mnist:'", "mnist:DIR");
    snprintf(spec, sizeof spec, "cifar10:%s/absent", g_dir);
    open_fails(spec, DT_TRAIN, "/absent: no such directory", "the directory that holds");
    write_bytes(g_dir, "plainfile", "x", 1);
    path_in(file, sizeof file, g_dir, "plainfile");
    snprintf(spec, sizeof spec, "npy:%s", file);
    open_fails(spec, DT_TRAIN, "plainfile: not a directory", NULL);
    /* dt_has_test reads nothing and reports nothing: bad specs are simply "no" */
    assert_false(dt_has_test("mnist"));
    assert_false(dt_has_test("imagenet:/tmp"));
    assert_false(dt_has_test(spec));
    assert_false(dt_has_test(NULL));
    expect_fail(dt_open(&(DtSet){0}, NULL, DT_TRAIN, g_err, sizeof g_err), "(null)", "no ':'", NULL);
}

/* ---- mnist, fashion-mnist ---- */

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

static void test_mnist(void **state)
{
    (void)state;
    char dir[512], spec[600];
    make_dir(dir, sizeof dir, "mnist");
    write_small_mnist(dir);
    static const uint8_t px[18] = {0, 255, 1, 2, 3, 4, 10, 20, 30, 40, 50, 60, 254, 128, 127, 5, 6, 7};
    const char *kinds[2] = {"mnist", "fashion-mnist"};
    for (int k = 0; k < 2; k++) {
        DtSet s;
        snprintf(spec, sizeof spec, "%s:%s/", kinds[k], dir);   /* a trailing slash is fine */
        open_ok(&s, spec, DT_TRAIN);
        assert_string_equal(s.kind, kinds[k]);
        assert_string_equal(s.spec, spec);
        assert_int_equal(s.n, 3);
        assert_int_equal(s.c, 1);
        assert_int_equal(s.h, 2);
        assert_int_equal(s.w, 3);
        assert_int_equal(s.classes, 10);
        assert_int_equal(dt_image_size(&s), 6);
        for (int i = 0; i < 18; i++) assert_true(s.images[i] == px[i] / 255.0f);   /* bytes scaled by /255, exactly */
        assert_true(s.images[0] == 0.0f && s.images[1] == 1.0f);
        assert_int_equal(s.labels[0], 9);
        assert_int_equal(s.labels[1], 0);
        assert_int_equal(s.labels[2], 4);
        dt_close(&s);
        dt_close(&s);   /* twice is harmless */
        assert_true(dt_has_test(spec));
        open_ok(&s, spec, DT_TEST);   /* the gzipped pair */
        assert_int_equal(s.n, 2);
        assert_int_equal(s.split, DT_TEST);
        assert_true(s.images[11] == 12 / 255.0f);
        assert_int_equal(s.labels[1], 7);
        dt_close(&s);
    }
}

static void test_mnist_errors(void **state)
{
    (void)state;
    char dir[512], spec[600];
    make_dir(dir, sizeof dir, "mnist_bad");
    snprintf(spec, sizeof spec, "mnist:%s", dir);
    assert_false(dt_has_test(spec));
    open_fails(spec, DT_TRAIN, "/train-images-idx3-ubyte: no such file (nor train-images-idx3-ubyte.gz)",
               "t10k-labels-idx1-ubyte, each plain or gzipped");
    open_fails(spec, DT_TEST, "/t10k-images-idx3-ubyte: no such file", "expected the IDX files");

    /* labels missing */
    uint8_t px[2 * 2 * 2] = {1, 2, 3, 4, 5, 6, 7, 8}, lb[3] = {1, 2, 3};
    write_idx(dir, "train-images-idx3-ubyte", 1, 3, (uint32_t[]){2, 2, 2}, px);
    open_fails(spec, DT_TRAIN, "/train-labels-idx1-ubyte: no such file", NULL);

    /* counts disagree */
    write_idx(dir, "train-labels-idx1-ubyte", 0, 1, (uint32_t[]){3}, lb);
    open_fails(spec, DT_TRAIN, "holds 2 images but", "holds 3 labels");

    /* a label past 9 */
    lb[1] = 10;
    write_idx(dir, "train-labels-idx1-ubyte", 0, 1, (uint32_t[]){2}, lb);
    open_fails(spec, DT_TRAIN, "train-labels-idx1-ubyte: label 10 of sample 1 is out of range", "labels are 0..9");

    /* images of the wrong rank, and labels of the wrong rank */
    lb[1] = 2;
    write_idx(dir, "train-labels-idx1-ubyte", 0, 1, (uint32_t[]){2}, lb);
    remove_file(dir, "train-images-idx3-ubyte.gz");
    write_idx(dir, "train-images-idx3-ubyte", 0, 2, (uint32_t[]){2, 4}, px);
    open_fails(spec, DT_TRAIN, "train-images-idx3-ubyte: has 2 dimensions", "mnist images have 3 (count, rows, columns)");
    write_idx(dir, "train-images-idx3-ubyte", 0, 3, (uint32_t[]){2, 2, 2}, px);
    write_idx(dir, "train-labels-idx1-ubyte", 0, 2, (uint32_t[]){2, 1}, lb);
    open_fails(spec, DT_TRAIN, "train-labels-idx1-ubyte: has 2 dimensions", "mnist labels have 1 (count)");

    /* no images at all */
    write_idx(dir, "train-images-idx3-ubyte", 0, 3, (uint32_t[]){0, 2, 2}, px);
    write_idx(dir, "train-labels-idx1-ubyte", 0, 1, (uint32_t[]){0}, lb);
    open_fails(spec, DT_TRAIN, "train-images-idx3-ubyte: holds no samples", NULL);

    /* not IDX at all: rt_idx_read's message, behind the spec */
    write_bytes(dir, "train-images-idx3-ubyte", "hello, world", 12);
    open_fails(spec, DT_TRAIN, "train-images-idx3-ubyte: not an IDX file", NULL);
}

/* ---- cifar10 ---- */

/* Record r of a batch file: label, then 3072 pixels (CHW) derived from (file, r). */
static void cifar_record(unsigned char *rec, int file, int r, int label)
{
    rec[0] = (unsigned char)label;
    for (int i = 0; i < 3072; i++) rec[1 + i] = (unsigned char)((i * 7 + file * 31 + r * 13) & 0xff);
}

static void write_cifar(const char *dir)
{
    static unsigned char buf[3 * 3073];
    char name[64];
    for (int f = 1; f <= 6; f++) {
        int records = f == 6 ? 3 : 2;   /* file 6 is test_batch.bin */
        for (int r = 0; r < records; r++) cifar_record(buf + r * 3073, f, r, (f * 3 + r) % 10);
        if (f == 6) snprintf(name, sizeof name, "test_batch.bin");
        else snprintf(name, sizeof name, "data_batch_%d.bin", f);
        write_bytes(dir, name, buf, (size_t)records * 3073);
    }
}

static void test_cifar(void **state)
{
    (void)state;
    char dir[512], spec[600];
    static unsigned char rec[3073];
    make_dir(dir, sizeof dir, "cifar");
    write_cifar(dir);
    snprintf(spec, sizeof spec, "cifar10:%s", dir);
    DtSet s;
    open_ok(&s, spec, DT_TRAIN);
    assert_int_equal(s.n, 10);   /* 5 files of 2 records, in file order */
    assert_int_equal(s.c, 3);
    assert_int_equal(s.h, 32);
    assert_int_equal(s.w, 32);
    for (int f = 1; f <= 5; f++)
        for (int r = 0; r < 2; r++) {
            int64_t i = (f - 1) * 2 + r;
            cifar_record(rec, f, r, 0);
            assert_int_equal(s.labels[i], (f * 3 + r) % 10);
            for (int k = 0; k < 3072; k++) assert_true(s.images[i * 3072 + k] == rec[1 + k] / 255.0f);
        }
    dt_close(&s);
    assert_true(dt_has_test(spec));
    open_ok(&s, spec, DT_TEST);
    assert_int_equal(s.n, 3);
    cifar_record(rec, 6, 2, 0);
    assert_true(s.images[2 * 3072 + 1024 + 5] == rec[1 + 1024 + 5] / 255.0f);   /* green channel, pixel 5 */
    assert_int_equal(s.labels[2], (18 + 2) % 10);
    dt_close(&s);
}

static void test_cifar_errors(void **state)
{
    (void)state;
    char dir[512], spec[600];
    static unsigned char buf[2 * 3074];
    make_dir(dir, sizeof dir, "cifar_bad");
    snprintf(spec, sizeof spec, "cifar10:%s", dir);
    assert_false(dt_has_test(spec));
    open_fails(spec, DT_TRAIN, "/data_batch_1.bin: no such file",
               "expected the CIFAR-10 binary version (data_batch_1.bin ... data_batch_5.bin, test_batch.bin)");
    open_fails(spec, DT_TEST, "/test_batch.bin: no such file", NULL);
    write_cifar(dir);
    remove_file(dir, "data_batch_3.bin");
    open_fails(spec, DT_TRAIN, "/data_batch_3.bin: no such file", NULL);
    write_bytes(dir, "data_batch_3.bin", buf, 3073 + 100);
    open_fails(spec, DT_TRAIN, "data_batch_3.bin: 3173 bytes is not a whole number of 3073-byte records", "not the Python");
    write_bytes(dir, "data_batch_3.bin", buf, 2 * 3074);
    open_fails(spec, DT_TRAIN, "records of 3074 bytes, as CIFAR-100 has", NULL);
    write_bytes(dir, "data_batch_3.bin", buf, 0);
    open_fails(spec, DT_TRAIN, "data_batch_3.bin: file is empty", NULL);
    cifar_record(buf, 3, 0, 1);
    cifar_record(buf + 3073, 3, 1, 10);
    write_bytes(dir, "data_batch_3.bin", buf, 2 * 3073);
    open_fails(spec, DT_TRAIN, "data_batch_3.bin: label 10 of sample 1 is out of range", "cifar10 labels are 0..9");
}

/* ---- npy ---- */

static void test_npy(void **state)
{
    (void)state;
    char dir[512], spec[600];
    make_dir(dir, sizeof dir, "npy");
    snprintf(spec, sizeof spec, "npy:%s", dir);
    DtSet s;

    /* uint8 N x C x H x W images, int64 labels; no test split */
    uint8_t px[2 * 2 * 1 * 3] = {0, 51, 255, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    int64_t lb64[2] = {4, 1};
    write_npy(dir, "train_images.npy", "|u1", "(2, 2, 1, 3)", px, sizeof px);
    write_npy(dir, "train_labels.npy", "<i8", "(2,)", lb64, sizeof lb64);
    open_ok(&s, spec, DT_TRAIN);
    assert_string_equal(s.kind, "npy");
    assert_int_equal(s.n, 2);
    assert_int_equal(s.c, 2);
    assert_int_equal(s.h, 1);
    assert_int_equal(s.w, 3);
    assert_int_equal(s.classes, 5);   /* max label + 1 */
    for (int i = 0; i < 12; i++) assert_true(s.images[i] == px[i] / 255.0f);
    assert_int_equal(s.labels[0], 4);
    assert_int_equal(s.labels[1], 1);
    dt_close(&s);
    assert_false(dt_has_test(spec));
    open_fails(spec, DT_TEST, "/test_images.npy: no such file", "which npy data may omit");

    /* float32 images used as given (even outside [0, 1]), int32 labels, as the test split */
    float fl[3 * 1 * 2 * 2] = {-1.5f, 0, 0.25f, 1e3f, 1, 2, 3, 4, 5, 6, 7, 8};
    int32_t lb32[3] = {0, 2, 1};
    write_npy(dir, "test_images.npy", "<f4", "(3, 1, 2, 2)", fl, sizeof fl);
    assert_true(dt_has_test(spec));
    open_fails(spec, DT_TEST, "/test_labels.npy: no such file", NULL);
    write_npy(dir, "test_labels.npy", "<i4", "(3,)", lb32, sizeof lb32);
    open_ok(&s, spec, DT_TEST);
    assert_int_equal(s.n, 3);
    assert_memory_equal(s.images, fl, sizeof fl);
    assert_int_equal(s.labels[1], 2);
    assert_int_equal(s.classes, 3);
    dt_close(&s);

    /* (N, H, W) images are one channel; float64 images; uint8 labels */
    double f64[2 * 2 * 2] = {0.5, 1, 2, 3, 4, 5, 6, -7.25};
    uint8_t lb8[2] = {0, 6};
    write_npy(dir, "train_images.npy", "<f8", "(2, 2, 2)", f64, sizeof f64);
    write_npy(dir, "train_labels.npy", "|u1", "(2,)", lb8, sizeof lb8);
    open_ok(&s, spec, DT_TRAIN);
    assert_int_equal(s.c, 1);
    assert_int_equal(s.h, 2);
    assert_true(s.images[7] == -7.25f);
    assert_int_equal(s.labels[1], 6);
    dt_close(&s);

    /* big-endian labels and images decode the same */
    unsigned char be_lb[2 * 8] = {0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 1, 2};   /* 3, 258 */
    unsigned char be_im[2 * 4] = {0x3f, 0x80, 0, 0, 0xc0, 0x00, 0, 0};             /* 1.0f, -2.0f */
    write_npy(dir, "train_images.npy", ">f4", "(2, 1, 1, 1)", be_im, sizeof be_im);
    write_npy(dir, "train_labels.npy", ">i8", "(2,)", be_lb, sizeof be_lb);
    open_ok(&s, spec, DT_TRAIN);
    assert_true(s.images[0] == 1.0f && s.images[1] == -2.0f);
    assert_int_equal(s.labels[0], 3);
    assert_int_equal(s.labels[1], 258);
    assert_int_equal(s.classes, 259);
    dt_close(&s);
}

static void test_npy_errors(void **state)
{
    (void)state;
    char dir[512], spec[600];
    make_dir(dir, sizeof dir, "npy_bad");
    snprintf(spec, sizeof spec, "npy:%s", dir);
    open_fails(spec, DT_TRAIN, "/train_images.npy: no such file", "train_images.npy and train_labels.npy");

    float fl[4] = {1, 2, 3, 4};
    int64_t lb[2] = {0, 1};
    write_npy(dir, "train_images.npy", "<f4", "(2, 1, 1, 2)", fl, sizeof fl);
    open_fails(spec, DT_TRAIN, "/train_labels.npy: no such file", NULL);

    float flb[2] = {0, 1};
    write_npy(dir, "train_labels.npy", "<f4", "(2,)", flb, sizeof flb);
    open_fails(spec, DT_TRAIN, "train_labels.npy: labels have dtype '<f4'", "labels.astype(numpy.int64)");
    write_npy(dir, "train_labels.npy", "<i8", "(2, 1)", lb, sizeof lb);
    open_fails(spec, DT_TRAIN, "labels have 2 dimensions", "labels.reshape(-1)");
    write_npy(dir, "train_labels.npy", "<i8", "(1,)", lb, 8);
    open_fails(spec, DT_TRAIN, "holds 2 images but", "holds 1 labels");
    int64_t neg[2] = {0, -1};
    write_npy(dir, "train_labels.npy", "<i8", "(2,)", neg, sizeof neg);
    open_fails(spec, DT_TRAIN, "label -1 of sample 1 is out of range", NULL);
    int64_t big[2] = {0, (int64_t)1 << 40};
    write_npy(dir, "train_labels.npy", "<i8", "(2,)", big, sizeof big);
    open_fails(spec, DT_TRAIN, "label 1099511627776 of sample 1 is out of range", NULL);
    uint64_t huge[2] = {0, UINT64_MAX};
    write_npy(dir, "train_labels.npy", "<u8", "(2,)", huge, sizeof huge);
    open_fails(spec, DT_TRAIN, "of sample 1 is out of range", NULL);
    write_npy(dir, "train_labels.npy", "<i8", "(2,)", lb, sizeof lb);
    DtSet s;
    open_ok(&s, spec, DT_TRAIN);   /* now good: each error below is the only fault */
    dt_close(&s);

    int16_t i16[4] = {1, 2, 3, 4};
    write_npy(dir, "train_images.npy", "<i2", "(2, 1, 1, 2)", i16, sizeof i16);
    open_fails(spec, DT_TRAIN, "train_images.npy: images have dtype '<i2'", "a.astype(numpy.float32)");
    write_npy(dir, "train_images.npy", "<f4", "(4,)", fl, sizeof fl);
    open_fails(spec, DT_TRAIN, "images have 1 dimensions", "(N, C, H, W)");
    write_npy(dir, "train_images.npy", "<f4", "(2, 1, 1, 2)", fl, 12);
    open_fails(spec, DT_TRAIN, "need 16 bytes of data, the file has 12", NULL);
    write_npy(dir, "train_images.npy", "<f4", "(2, 1, 0, 2)", fl, 0);
    open_fails(spec, DT_TRAIN, "images with a zero dimension", NULL);
    float nan4[4] = {1, 2, NAN, 4};
    write_npy(dir, "train_images.npy", "<f4", "(2, 1, 1, 2)", nan4, sizeof nan4);
    open_fails(spec, DT_TRAIN, "image 1 holds NaN", "numpy.nan_to_num");

    static const char bad_dict[] = "\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'\n";
    write_bytes(dir, "train_images.npy", bad_dict, sizeof bad_dict - 1);
    open_fails(spec, DT_TRAIN, "train_images.npy: header is not a valid dict at byte 26", "numpy.save");
    write_bytes(dir, "train_images.npy", "PK\x03\x04zip", 7);
    open_fails(spec, DT_TRAIN, "not a .npy file", "numpy.save");
    static const char v9[] = "\x93NUMPY\x09\x00\x00\x00";
    write_bytes(dir, "train_images.npy", v9, sizeof v9 - 1);
    open_fails(spec, DT_TRAIN, "format version 9.0 is not supported", NULL);
    write_npy_dict(dir, "train_images.npy", "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 1, 1, 2), }", fl,
                   sizeof fl);
    open_fails(spec, DT_TRAIN, "Fortran order", "numpy.ascontiguousarray");
}

/* Random bytes after a valid header prefix must never crash the reader (run under ASan). */
static void test_npy_noise(void **state)
{
    (void)state;
    char dir[512], spec[600];
    make_dir(dir, sizeof dir, "npy_noise");
    snprintf(spec, sizeof spec, "npy:%s", dir);
    int64_t lb[2] = {0, 1};
    write_npy(dir, "train_labels.npy", "<i8", "(2,)", lb, sizeof lb);
    float px[2] = {1, 2};
    unsigned char good[256], buf[256];
    write_npy(dir, "train_images.npy", "<f4", "(2, 1, 1, 1)", px, sizeof px);
    size_t good_len = read_bytes(dir, "train_images.npy", good, sizeof good);
    RtRng r;
    rt_rng_seed(&r, 7);
    for (int t = 0; t < 600; t++) {
        memcpy(buf, good, good_len);
        int flips = 1 + (int)(rt_rng_next_u64(&r) % 4);
        for (int k = 0; k < flips; k++) buf[rt_rng_next_u64(&r) % good_len] = (unsigned char)rt_rng_next_u64(&r);
        size_t len = t % 5 == 0 ? (size_t)(rt_rng_next_u64(&r) % good_len) : good_len;
        write_bytes(dir, "train_images.npy", buf, len);
        DtSet s;
        int rc = dt_open(&s, spec, DT_TRAIN, g_err, sizeof g_err);
        if (rc != 0) expect_fail(rc, spec, NULL, NULL);
        dt_close(&s);
    }
}

/* ---- options ---- */

static void test_parse_normalize(void **state)
{
    (void)state;
    DtOptions o = {0};
    assert_int_equal(dt_parse_normalize("0.5,0.25", &o, g_err, sizeof g_err), 0);
    assert_int_equal(o.norm_count, 1);
    assert_true(o.mean[0] == 0.5f && o.std[0] == 0.25f);
    assert_int_equal(dt_parse_normalize("0.49,0.48,0.45,0.25,0.24,0.26", &o, g_err, sizeof g_err), 0);
    assert_int_equal(o.norm_count, 3);
    assert_true(o.mean[2] == 0.45f && o.std[0] == 0.25f && o.std[2] == 0.26f);
    expect_fail(dt_parse_normalize("0.5", &o, g_err, sizeof g_err), "--normalize '0.5'", "1 numbers", "as many means as stds");
    expect_fail(dt_parse_normalize("0.5,0", &o, g_err, sizeof g_err), "--normalize '0.5,0'", "std 0 (number 2) must be > 0", NULL);
    expect_fail(dt_parse_normalize("0.5,-1", &o, g_err, sizeof g_err), "--normalize '0.5,-1'", "must be > 0", NULL);
    expect_fail(dt_parse_normalize("0.5,x", &o, g_err, sizeof g_err), "--normalize '0.5,x'", "expected a number at 'x'", NULL);
    expect_fail(dt_parse_normalize("", &o, g_err, sizeof g_err), "--normalize ''", "expected a number", NULL);
    expect_fail(dt_parse_normalize("0.5;0.2", &o, g_err, sizeof g_err), "--normalize '0.5;0.2'", "expected ','", NULL);
    expect_fail(dt_parse_normalize("0.5,", &o, g_err, sizeof g_err), "--normalize '0.5,'", "expected a number", NULL);
    expect_fail(dt_parse_normalize("nan,1", &o, g_err, sizeof g_err), "--normalize 'nan,1'", "expected a number", NULL);
    char many[2000] = "0";
    for (int i = 1; i <= 2 * DT_MAX_CHANNELS; i++) strcat(many, ",1");
    char pre[100];
    snprintf(pre, sizeof pre, "--normalize '%.60s...'", many);   /* long values are cut in the message */
    expect_fail(dt_parse_normalize(many, &o, g_err, sizeof g_err), pre, "more than 128 numbers", NULL);
    assert_int_equal(o.norm_count, 3);   /* failures leave the options alone */
}

static void test_loader_option_errors(void **state)
{
    (void)state;
    char dir[512], spec[600];
    make_dir(dir, sizeof dir, "opt_bad");
    snprintf(spec, sizeof spec, "npy:%s", dir);
    make_counting_set(dir, 4, 2, 3, 3);
    DtSet s;
    DtLoader l;
    open_ok(&s, spec, DT_TRAIN);
    DtOptions o = {0};
    assert_int_equal(dt_parse_normalize("1,2,3,1,1,1", &o, g_err, sizeof g_err), 0);
    expect_fail(dt_loader_init(&l, &s, &o, g_err, sizeof g_err), spec, "--normalize gives 3 mean,std pairs",
                "images have 2 channels");
    o = (DtOptions){.norm_count = 1, .mean = {0}, .std = {0}};
    expect_fail(dt_loader_init(&l, &s, &o, g_err, sizeof g_err), spec, "std 0", "must be > 0");
    o = (DtOptions){.crop_pad = 4};
    expect_fail(dt_loader_init(&l, &s, &o, g_err, sizeof g_err), spec, "crop padding 4 is out of range for 3 x 3 images",
                "0 (off) to 3");
    o = (DtOptions){.crop_pad = -1};
    expect_fail(dt_loader_init(&l, &s, &o, g_err, sizeof g_err), spec, "crop padding -1", NULL);
    o = (DtOptions){.jitter = 1.5f};
    expect_fail(dt_loader_init(&l, &s, &o, g_err, sizeof g_err), spec, "jitter 1.5 is out of range", NULL);
    o = (DtOptions){.jitter = NAN};
    expect_fail(dt_loader_init(&l, &s, &o, g_err, sizeof g_err), spec, "jitter nan", NULL);
    o = (DtOptions){.hflip = 2};
    expect_fail(dt_loader_init(&l, &s, &o, g_err, sizeof g_err), spec, "hflip is 2", NULL);

    /* misuse of a good loader is a -1, not a crash */
    o = (DtOptions){0};
    loader_ok(&l, &s, &o);
    float img[4 * 18];
    int32_t lab[4];
    assert_int_equal(dt_next_batch(&l, img, lab, 4), -1);   /* no epoch begun */
    dt_epoch_begin(&l, 0);
    assert_int_equal(dt_next_batch(&l, img, lab, 0), -1);
    assert_int_equal(dt_batches_per_epoch(&l, 0), 0);
    dt_loader_free(&l);
    dt_loader_free(&l);
    dt_close(&s);
}

static void test_check_classes(void **state)
{
    (void)state;
    char dir[512], spec[600];
    make_dir(dir, sizeof dir, "classes");
    snprintf(spec, sizeof spec, "mnist:%s", dir);
    write_small_mnist(dir);
    DtSet s;
    open_ok(&s, spec, DT_TRAIN);
    assert_int_equal(dt_check_classes(&s, 10, g_err, sizeof g_err), 0);
    expect_fail(dt_check_classes(&s, 5, g_err, sizeof g_err), spec,
                "label 9 of sample 0 (train split) is out of range for a model with 5 classes", "at least 10 outputs");
    dt_close(&s);
}

/* ---- batches ---- */

static void test_order_and_batches(void **state)
{
    (void)state;
    char dir[512], spec[600];
    make_dir(dir, sizeof dir, "order");
    snprintf(spec, sizeof spec, "npy:%s", dir);
    enum { N = 10 };
    make_counting_set(dir, N, 1, 1, 2);
    DtSet s;
    DtLoader l, l2;
    open_ok(&s, spec, DT_TRAIN);
    float img[N * 2];
    int32_t lab[N];

    /* no shuffle: file order, batches of 4, 4, then the last partial batch of 2, then 0 */
    DtOptions o = {0};
    loader_ok(&l, &s, &o);
    assert_int_equal(dt_batches_per_epoch(&l, 4), 3);
    assert_int_equal(dt_batches_per_epoch(&l, 5), 2);
    for (int64_t e = 0; e < 2; e++) {
        dt_epoch_begin(&l, e);
        int sizes[3] = {4, 4, 2}, at = 0;
        for (int b = 0; b < 3; b++) {
            assert_int_equal(dt_next_batch(&l, img, lab, 4), sizes[b]);
            for (int k = 0; k < sizes[b]; k++) {
                assert_true(img[2 * k] == (float)((at + k) * 100 + 1));
                assert_int_equal(lab[k], (at + k) % 3);
            }
            at += sizes[b];
        }
        assert_int_equal(dt_next_batch(&l, img, lab, 4), 0);
        assert_int_equal(dt_next_batch(&l, img, lab, 4), 0);
    }
    dt_loader_free(&l);

    /* shuffle: a permutation, the same for the same (seed, epoch), different across
     * epochs and seeds; labels travel with their images */
    int64_t order[3][N];
    o.shuffle = 1;
    o.seed = 42;
    loader_ok(&l, &s, &o);
    loader_ok(&l2, &s, &o);
    for (int e = 0; e < 3; e++) {
        whole_epoch(&l, e, 3, img, lab);
        int seen[N] = {0};
        for (int k = 0; k < N; k++) {
            int i = (int)(img[2 * k] - 1) / 100;
            assert_true(i >= 0 && i < N);
            assert_true(img[2 * k + 1] == img[2 * k] + 1);
            assert_int_equal(lab[k], i % 3);
            seen[i]++;
            order[e][k] = i;
        }
        for (int i = 0; i < N; i++) assert_int_equal(seen[i], 1);
    }
    assert_memory_not_equal(order[0], order[1], sizeof order[0]);
    assert_memory_not_equal(order[1], order[2], sizeof order[0]);
    for (int e = 2; e >= 0; e--) {   /* another loader, epochs in another sequence: same orders */
        whole_epoch(&l2, e, 4, img, lab);
        for (int k = 0; k < N; k++) assert_int_equal((int)(img[2 * k] - 1) / 100, order[e][k]);
    }
    dt_loader_free(&l2);
    o.seed = 43;
    loader_ok(&l2, &s, &o);
    whole_epoch(&l2, 0, 4, img, lab);
    int same = 1;
    for (int k = 0; k < N; k++) same &= (int)(img[2 * k] - 1) / 100 == order[0][k];
    assert_false(same);
    dt_loader_free(&l2);
    dt_loader_free(&l);
    dt_close(&s);
}

static void test_normalize_values(void **state)
{
    (void)state;
    char dir[512], spec[600];
    make_dir(dir, sizeof dir, "norm");
    snprintf(spec, sizeof spec, "npy:%s", dir);
    make_counting_set(dir, 3, 2, 2, 2);
    DtSet s;
    DtLoader l;
    open_ok(&s, spec, DT_TRAIN);
    float img[3 * 8];
    int32_t lab[3];
    DtOptions o = {0};

    assert_int_equal(dt_parse_normalize("100,4", &o, g_err, sizeof g_err), 0);   /* one pair for both channels */
    loader_ok(&l, &s, &o);
    whole_epoch(&l, 0, 3, img, lab);
    for (int i = 0; i < 24; i++) assert_true(img[i] == (s.images[i] - 100.0f) / 4.0f);
    dt_loader_free(&l);

    assert_int_equal(dt_parse_normalize("1,2,0.5,0.25", &o, g_err, sizeof g_err), 0);   /* one pair each */
    loader_ok(&l, &s, &o);
    whole_epoch(&l, 0, 2, img, lab);
    for (int i = 0; i < 3; i++)
        for (int c = 0; c < 2; c++)
            for (int k = 0; k < 4; k++) {
                int at = i * 8 + c * 4 + k;
                assert_true(img[at] == (s.images[at] - (c ? 2.0f : 1.0f)) / (c ? 0.25f : 0.5f));
            }
    dt_loader_free(&l);

    /* the set itself is never changed by a loader */
    for (int i = 0; i < 3; i++) assert_true(s.images[i * 8] == (float)(i * 100 + 1));
    dt_close(&s);
}

/* The shift (dy, dx) with out(y, x) = in(y + dy, x + dx), zero outside; -99 if none fits. */
static int find_shift(const float *in, const float *out, int c, int h, int w, int pad, int *dy, int *dx, float zero)
{
    for (*dy = -pad; *dy <= pad; (*dy)++)
        for (*dx = -pad; *dx <= pad; (*dx)++) {
            int ok = 1;
            for (int ch = 0; ch < c && ok; ch++)
                for (int y = 0; y < h && ok; y++)
                    for (int x = 0; x < w && ok; x++) {
                        int sy = y + *dy, sx = x + *dx;
                        float want = sy >= 0 && sy < h && sx >= 0 && sx < w ? in[(ch * h + sy) * w + sx] : zero;
                        ok = out[(ch * h + y) * w + x] == want;
                    }
            if (ok) return 0;
        }
    return -99;
}

static void test_crop(void **state)
{
    (void)state;
    char dir[512], spec[600];
    make_dir(dir, sizeof dir, "crop");
    snprintf(spec, sizeof spec, "npy:%s", dir);
    enum { N = 4, C = 2, H = 4, W = 5, P = 2 };
    make_counting_set(dir, N, C, H, W);
    DtSet s;
    DtLoader l;
    open_ok(&s, spec, DT_TRAIN);
    float img[N * C * H * W];
    int32_t lab[N];
    DtOptions o = {.seed = 5, .crop_pad = P};
    loader_ok(&l, &s, &o);
    int hits[2 * P + 1][2 * P + 1] = {{0}};
    for (int e = 0; e < 100; e++) {
        whole_epoch(&l, e, 3, img, lab);
        for (int i = 0; i < N; i++) {
            int dy, dx;
            /* every channel moves by the same shift, and what comes in is exactly 0 */
            assert_int_equal(find_shift(s.images + i * C * H * W, img + i * C * H * W, C, H, W, P, &dy, &dx, 0.0f), 0);
            hits[dy + P][dx + P]++;
        }
    }
    for (int a = 0; a <= 2 * P; a++)
        for (int b = 0; b <= 2 * P; b++) assert_true(hits[a][b] > 0);   /* 400 draws over 25 shifts: all appear */
    dt_loader_free(&l);

    /* padding is black before normalization: padded pixels come out as (0 - mean) / std */
    assert_int_equal(dt_parse_normalize("0.5,0.25", &o, g_err, sizeof g_err), 0);
    loader_ok(&l, &s, &o);
    float raw[N * C * H * W];
    DtOptions plain = o;
    plain.norm_count = 0;
    DtLoader lp;
    loader_ok(&lp, &s, &plain);
    whole_epoch(&l, 3, N, img, lab);
    whole_epoch(&lp, 3, N, raw, lab);
    int padded = 0;
    for (int i = 0; i < N * C * H * W; i++) {
        assert_true(img[i] == (raw[i] - 0.5f) / 0.25f);
        padded += raw[i] == 0.0f;
        if (raw[i] == 0.0f) assert_true(img[i] == -2.0f);
    }
    assert_true(padded > 0);
    dt_loader_free(&lp);
    dt_loader_free(&l);
    dt_close(&s);
}

static void test_flip(void **state)
{
    (void)state;
    char dir[512], spec[600];
    make_dir(dir, sizeof dir, "flip");
    snprintf(spec, sizeof spec, "npy:%s", dir);
    enum { N = 5, C = 2, H = 2, W = 3 };
    make_counting_set(dir, N, C, H, W);
    DtSet s;
    DtLoader l;
    open_ok(&s, spec, DT_TRAIN);
    float img[N * C * H * W];
    int32_t lab[N];
    DtOptions o = {.seed = 9, .hflip = 1, .shuffle = 1};
    loader_ok(&l, &s, &o);
    int flipped = 0, kept = 0;
    for (int e = 0; e < 40; e++) {
        whole_epoch(&l, e, 2, img, lab);
        for (int k = 0; k < N; k++) {
            const float *out = img + k * C * H * W;
            int i = (int)(out[0] - 1) / 100;   /* every pixel of image i is i * 100 + 1 + k, mirrored or not */
            const float *in = s.images + i * C * H * W;
            int same = 1, mirror = 1;
            for (int r = 0; r < C * H; r++)
                for (int x = 0; x < W; x++) {
                    same &= out[r * W + x] == in[r * W + x];
                    mirror &= out[r * W + x] == in[r * W + (W - 1 - x)];
                }
            assert_true(same != mirror);   /* exactly one of the two, with all channels alike */
            flipped += mirror;
            kept += same;
        }
    }
    assert_true(flipped > 60 && kept > 60);   /* 200 coin tosses */
    dt_loader_free(&l);
    dt_close(&s);
}

static void test_jitter(void **state)
{
    (void)state;
    char dir[512], spec[600];
    make_dir(dir, sizeof dir, "jitter");
    snprintf(spec, sizeof spec, "npy:%s", dir);
    enum { N = 4, C = 1, H = 3, W = 3, S = C * H * W };
    make_counting_set(dir, N, C, H, W);
    DtSet s;
    DtLoader l;
    open_ok(&s, spec, DT_TRAIN);
    float img[N * S];
    int32_t lab[N];
    const float a = 0.3f;
    DtOptions o = {.seed = 11, .jitter = a};
    loader_ok(&l, &s, &o);
    float min_uc = 1, max_uc = -1, min_ub = 1, max_ub = -1;
    for (int e = 0; e < 50; e++) {
        whole_epoch(&l, e, N, img, lab);
        for (int i = 0; i < N; i++) {
            const float *in = s.images + i * S, *out = img + i * S;
            double m = 0;
            for (int k = 0; k < S; k++) m += in[k];
            m /= S;
            /* out = m + (in - m)(1 + uc) + ub: read uc from two pixels, ub from one, check all */
            double uc = (out[S - 1] - out[0]) / (in[S - 1] - in[0]) - 1;
            double ub = out[0] - m - (in[0] - m) * (1 + uc);
            assert_true(fabs(uc) <= a + 1e-4 && fabs(ub) <= a + 1e-2);
            for (int k = 0; k < S; k++) assert_true(fabs(out[k] - (m + (in[k] - m) * (1 + uc) + ub)) < 1e-2);
            min_uc = fminf(min_uc, (float)uc), max_uc = fmaxf(max_uc, (float)uc);
            min_ub = fminf(min_ub, (float)ub), max_ub = fmaxf(max_ub, (float)ub);
        }
    }
    /* 200 draws cover most of [-a, a] for both */
    assert_true(min_uc < -0.2f && max_uc > 0.2f && min_ub < -0.2f && max_ub > 0.2f);
    dt_loader_free(&l);
    dt_close(&s);
}

/* A loader with every random option on, for the checkpoint tests. */
static void random_loader(DtLoader *l, const DtSet *s, uint64_t seed)
{
    DtOptions o = {.shuffle = 1, .seed = seed, .crop_pad = 1, .hflip = 1, .jitter = 0.2f};
    assert_int_equal(dt_parse_normalize("0.5,0.25", &o, g_err, sizeof g_err), 0);
    loader_ok(l, s, &o);
}

static void test_state_restore(void **state)
{
    (void)state;
    char dir[512], spec[600];
    make_dir(dir, sizeof dir, "restore");
    snprintf(spec, sizeof spec, "npy:%s", dir);
    enum { N = 11, S = 1 * 3 * 3, B = 3 };
    make_counting_set(dir, N, 1, 3, 3);
    DtSet s;
    DtLoader a, b;
    DtLoaderState st;
    open_ok(&s, spec, DT_TRAIN);
    float ia[N * S], ib[N * S];
    int32_t la[N], lb[N];

    /* mid-epoch: save after two batches, restore into a fresh loader, compare what follows */
    random_loader(&a, &s, 77);
    dt_epoch_begin(&a, 4);
    assert_int_equal(dt_next_batch(&a, ia, la, B), B);
    assert_int_equal(dt_next_batch(&a, ia, la, B), B);
    dt_loader_save(&a, &st);
    assert_int_equal(st.epoch, 4);
    assert_int_equal(st.pos, 2 * B);
    random_loader(&b, &s, 77);
    assert_int_equal(dt_loader_restore(&b, &st, g_err, sizeof g_err), 0);
    for (int k = 0; k < 3; k++) {
        int na = dt_next_batch(&a, ia, la, B), nb = dt_next_batch(&b, ib, lb, B);
        assert_int_equal(na, nb);
        assert_memory_equal(ia, ib, (size_t)na * S * sizeof(float));
        assert_memory_equal(la, lb, (size_t)na * sizeof(int32_t));
    }

    /* at an epoch boundary (what the checkpoint of `nnc train` stores): epoch 5 of a
     * loader that ran epochs 0..4 equals epoch 5 of one that starts there */
    dt_loader_free(&b);
    random_loader(&b, &s, 77);
    for (int e = 0; e < 5; e++) whole_epoch(&a, e, B, ia, la);
    whole_epoch(&a, 5, B, ia, la);
    whole_epoch(&b, 5, B, ib, lb);
    assert_memory_equal(ia, ib, sizeof ia);
    assert_memory_equal(la, lb, sizeof la);

    /* the batch size changes nothing but the cut between batches */
    whole_epoch(&b, 5, 4, ib, lb);
    assert_memory_equal(ia, ib, sizeof ia);
    whole_epoch(&b, 6, 4, ib, lb);
    assert_memory_not_equal(ia, ib, sizeof ia);   /* and the next epoch differs */

    /* refusals: another seed, a position past the set */
    DtLoaderState bad = st;
    bad.seed = 78;
    expect_fail(dt_loader_restore(&b, &bad, g_err, sizeof g_err), spec, "data seed is 78 but this run's is 77",
                "resume with the same seed");
    bad = st;
    bad.pos = N + 1;
    expect_fail(dt_loader_restore(&b, &bad, g_err, sizeof g_err), spec, "(epoch 4, sample 12) does not fit a set of 11",
                NULL);
    bad.pos = -1;
    expect_fail(dt_loader_restore(&b, &bad, g_err, sizeof g_err), spec, "does not fit", NULL);

    /* a state saved before any epoch restores to "no epoch begun" */
    DtLoader c;
    random_loader(&c, &s, 77);
    dt_loader_save(&c, &st);
    assert_int_equal(st.epoch, -1);
    assert_int_equal(dt_loader_restore(&b, &st, g_err, sizeof g_err), 0);
    assert_int_equal(dt_next_batch(&b, ib, lb, B), -1);
    dt_loader_free(&c);
    dt_loader_free(&b);
    dt_loader_free(&a);
    dt_close(&s);
}

/* ---- the real thing ---- */

static void test_fashion_mnist(void **state)
{
    (void)state;
    struct stat st;
    if (stat(FASHION_DIR, &st) != 0) skip();   /* Debian's dataset-fashion-mnist is not installed */
    const char *spec = "fashion-mnist:" FASHION_DIR;
    assert_true(dt_has_test(spec));
    DtSplit splits[2] = {DT_TRAIN, DT_TEST};
    int64_t sizes[2] = {60000, 10000};
    for (int k = 0; k < 2; k++) {
        DtSet s;
        open_ok(&s, spec, splits[k]);
        assert_int_equal(s.n, sizes[k]);
        assert_int_equal(s.c, 1);
        assert_int_equal(s.h, 28);
        assert_int_equal(s.w, 28);
        int64_t count[10] = {0};
        for (int64_t i = 0; i < s.n; i++) {
            assert_true(s.labels[i] >= 0 && s.labels[i] < 10);
            count[s.labels[i]]++;
        }
        for (int c = 0; c < 10; c++) assert_int_equal(count[c], s.n / 10);   /* Fashion-MNIST is balanced */
        float lo = 1, hi = 0;
        for (int64_t i = 0; i < s.n * 784; i++) lo = fminf(lo, s.images[i]), hi = fmaxf(hi, s.images[i]);
        assert_true(lo == 0.0f && hi == 1.0f);
        if (k == 1) {   /* one augmented, shuffled epoch over the test split, as a smoke test */
            DtLoader l;
            DtOptions o = {.shuffle = 1, .seed = 1, .crop_pad = 4, .hflip = 1, .jitter = 0.1f};
            assert_int_equal(dt_parse_normalize("0.286,0.353", &o, g_err, sizeof g_err), 0);
            loader_ok(&l, &s, &o);
            static float img[256 * 784];
            static int32_t lab[256];
            dt_epoch_begin(&l, 0);
            int64_t total = 0, batches = 0;
            int got;
            while ((got = dt_next_batch(&l, img, lab, 256)) > 0) total += got, batches++;
            assert_int_equal(total, 10000);
            assert_int_equal(batches, dt_batches_per_epoch(&l, 256));
            assert_int_equal(got, 0);
            dt_loader_free(&l);
        }
        dt_close(&s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_errors),
        cmocka_unit_test(test_mnist),
        cmocka_unit_test(test_mnist_errors),
        cmocka_unit_test(test_cifar),
        cmocka_unit_test(test_cifar_errors),
        cmocka_unit_test(test_npy),
        cmocka_unit_test(test_npy_errors),
        cmocka_unit_test(test_npy_noise),
        cmocka_unit_test(test_parse_normalize),
        cmocka_unit_test(test_loader_option_errors),
        cmocka_unit_test(test_check_classes),
        cmocka_unit_test(test_order_and_batches),
        cmocka_unit_test(test_normalize_values),
        cmocka_unit_test(test_crop),
        cmocka_unit_test(test_flip),
        cmocka_unit_test(test_jitter),
        cmocka_unit_test(test_state_restore),
        cmocka_unit_test(test_fashion_mnist),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
