/* test_data.c: the data sets of runtime/data.c (data.h): the spec, mnist and
 * fashion-mnist, cifar10, npy, and their error messages. The loader (options,
 * batches, augmentation, state) is tested in test_data_loader.c; the helpers
 * and the scratch directory are in data_test.h. */
#include "data_test.h"

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
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
