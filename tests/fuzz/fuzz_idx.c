/* fuzz_idx.c: libFuzzer harness for the IDX reader (MNIST, Fashion-MNIST).
 *
 * rt_idx_read (runtime/tensor_io.c) reads IDX files plain or gzipped, through
 * zlib's gz* functions, from a path. Each input is read three ways:
 *
 *   1. as it is, from a memfd (a gzip input exercises the gzip path as well);
 *   2. gzip-compressed by the harness (zlib, level 1), from a second memfd:
 *      unless the input is itself gzip (1f 8b), both reads must agree, in
 *      success, shape and bytes;
 *   3. when (1) gives a rank-3 array, as train-images-idx3-ubyte of an
 *      mnist:DIR data set whose train-labels-idx1-ubyte the harness writes
 *      with one label per image, taken from the input's bytes modulo 11 (so
 *      that label 10, out of range, happens), loaded by dt_open
 *      (runtime/data.c).
 *
 * The seeds (corpus/idx/) are small IDX files, plain and gzipped, written by
 * tests/fuzz/make_seeds.py; idx.dict has the magic numbers. */
#include "fuzz_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "runtime/data.h"
#include "runtime/tensor_io.h"

static FzFile plain, gz;
static char images_path[4200], labels_path[4200], spec[4200];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fz_file_init(&plain, "fuzz.idx");
    fz_file_init(&gz, "fuzz.idx.gz");
    const char *dir = fz_tmpdir();
    snprintf(images_path, sizeof images_path, "%s/train-images-idx3-ubyte", dir);
    snprintf(labels_path, sizeof labels_path, "%s/train-labels-idx1-ubyte", dir);
    snprintf(spec, sizeof spec, "mnist:%s", dir);
    return 0;
}

/* The input in gzip format (deflate with a gzip wrapper: windowBits 16 + 9).
 * A small window and memLevel 1 keep zlib's state under ASan's large-block
 * threshold: a fresh mmap per input would halve the speed of the harness. */
static unsigned char *gzip(const uint8_t *data, size_t size, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 1, Z_DEFLATED, 16 + 9, 1, Z_DEFAULT_STRATEGY) != Z_OK) fz_die("deflateInit2");
    size_t cap = deflateBound(&z, (uLong)size) + 64;
    unsigned char *out = malloc(cap);
    z.next_in = (Bytef *)data;
    z.avail_in = (uInt)size;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) fz_die("deflate");
    *out_len = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

static void check_same(const RtIdx *a, int rc_a, const RtIdx *b, int rc_b, const char *err_b)
{
    if (rc_a != rc_b) fz_die("plain and gzipped reads disagree: %s", rc_a ? "only the gzipped one succeeded" : err_b);
    if (rc_a) return;
    if (a->rank != b->rank || a->size != b->size || memcmp(a->dims, b->dims, sizeof a->dims[0] * (size_t)a->rank) != 0 ||
        (a->size && memcmp(a->data, b->data, a->size) != 0))
        fz_die("plain and gzipped reads give different arrays");
}

static void data_set(const RtIdx *im, const uint8_t *data, size_t size)
{
    size_t n = (size_t)im->dims[0];
    if (n > 1u << 16) return;
    unsigned char *lb = malloc(8 + n);
    memcpy(lb, "\0\0\x08\x01", 4);
    lb[4] = (unsigned char)(n >> 24), lb[5] = (unsigned char)(n >> 16), lb[6] = (unsigned char)(n >> 8), lb[7] = (unsigned char)n;
    for (size_t i = 0; i < n; i++) lb[8 + i] = size ? data[i % size] % 11 : 0;
    fz_write(images_path, data, size);
    fz_write(labels_path, lb, 8 + n);
    free(lb);
    DtSet set = {0};
    char err[2048];
    if (dt_open(&set, spec, DT_TRAIN, err, sizeof err) == 0) {
        if (set.n != (int64_t)n || set.c != 1 || set.h != im->dims[1] || set.w != im->dims[2])
            fz_die("dt_open: the set's shape is not the file's");
        for (size_t i = 0; i < im->size; i++)
            if (set.images[i] != im->data[i] / 255.0f) fz_die("dt_open: pixel %zu is not the file's byte / 255", i);
    } else if (!err[0]) {
        fz_die("dt_open failed without a message");
    }
    dt_close(&set);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_begin(data, size);
    fz_file_set(&plain, data, size);
    RtIdx a, b;
    char err_a[1024], err_b[1024];
    int rc_a = rt_idx_read(plain.path, &a, err_a, sizeof err_a);
    if (rc_a == 0 && (a.rank < 1 || a.rank > RT_MAX_RANK || (a.size && !a.data))) fz_die("rt_idx_read: an incomplete array");
    if (rc_a != 0 && !err_a[0]) fz_die("rt_idx_read failed without a message");
    bool is_gzip = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
    size_t zlen = 0;
    unsigned char *z = gzip(data, size, &zlen);
    fz_file_set(&gz, z, zlen);
    free(z);
    int rc_b = rt_idx_read(gz.path, &b, err_b, sizeof err_b);
    if (!is_gzip) check_same(&a, rc_a, &b, rc_b, err_b);
    if (rc_b == 0) rt_idx_free(&b);
    if (rc_a == 0) {
        if (a.rank == 3 && !is_gzip) data_set(&a, data, size);
        rt_idx_free(&a);
    }
    return 0;
}
