/* test_tensor_io_npy_idx.c: .npy (runtime/npy.c), IDX (runtime/idx.c), the
 * RNG, random bytes through every reader, and the safetensors snippet
 * compiled alone as users compile generated code. safetensors itself is in
 * test_tensor_io.c; helpers in tensor_io_test.h. */
#include "tensor_io_test.h"

/* ---- .npy ---- */

static void test_npy_roundtrip(void **state)
{
    (void)state;
    RtRng r;
    static float v[2 * 3 * 5];
    rt_rng_seed(&r, 7);
    fill_random(v, NNC_COUNT(v), &r);
    RtTensor cases[] = {{NULL, 0, {0}, v}, {NULL, 1, {5}, v}, {NULL, 2, {2, 3}, v},
                        {NULL, 3, {2, 3, 5}, v}, {NULL, 3, {2, 0, 4}, NULL}};
    const char *p = tpath("a.npy");
    for (size_t i = 0; i < NNC_COUNT(cases); i++) {
        RtTensor out;
        assert_int_equal(rt_npy_write(p, &cases[i], g_err, sizeof g_err), 0);
        assert_int_equal(rt_npy_read(p, &out, g_err, sizeof g_err), 0);
        assert_int_equal(out.rank, cases[i].rank);
        for (int d = 0; d < out.rank; d++) assert_int_equal(out.shape[d], cases[i].shape[d]);
        int64_t n = rt_tensor_numel(&out);
        if (n) assert_memory_equal(out.data, v, (size_t)n * 4);
        assert_null(out.name);
        rt_tensor_free(&out);
        /* numpy's layout: data aligned to 64 bytes */
        FILE *f = fopen(p, "rb");
        unsigned char h[10];
        assert_int_equal(fread(h, 1, 10, f), 10);
        fclose(f);
        assert_int_equal((10 + h[8] + 256 * h[9]) % 64, 0);
    }
}

/* Builds an .npy file: version major.0, the header text padded to 64, then data. */
static void write_npy(const char *path, int major, const char *dict, size_t data_len)
{
    unsigned char b[4096];
    size_t pre = major == 1 ? 10 : 12, dl = strlen(dict), hlen = dl + 1;
    hlen += (64 - (pre + hlen) % 64) % 64;
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (unsigned char)major;
    b[7] = 0;
    for (size_t i = 0; i < pre - 8; i++) b[8 + i] = (unsigned char)(hlen >> (8 * i));
    memset(b + pre, ' ', hlen);
    memcpy(b + pre, dict, dl);
    b[pre + hlen - 1] = '\n';
    assert_true(pre + hlen + data_len <= sizeof b);
    memset(b + pre + hlen, 0, data_len);
    write_bytes(path, b, pre + hlen + data_len);
}

static void test_npy_variants(void **state)
{
    (void)state;
    const char *p = tpath("v.npy");
    RtTensor t;
    write_npy(p, 2, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24);
    assert_int_equal(rt_npy_read(p, &t, g_err, sizeof g_err), 0);
    assert_int_equal(t.rank, 2);
    rt_tensor_free(&t);
    write_npy(p, 3, "{\"shape\": (3L,2L,), \"descr\": \"<f4\", \"fortran_order\": False}", 24);
    assert_int_equal(rt_npy_read(p, &t, g_err, sizeof g_err), 0);
    assert_int_equal(t.shape[0], 3);
    rt_tensor_free(&t);
    write_npy(p, 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (4,), }", 16);
    assert_int_equal(rt_npy_read(p, &t, g_err, sizeof g_err), 0);   /* 1-d: same bytes either order */
    rt_tensor_free(&t);
}

static void test_npy_errors(void **state)
{
    (void)state;
    const char *p = tpath("x.npy");
    RtTensor t;
    write_lit(p, "PK\x03\x04 not numpy at all");
    expect_msg(rt_npy_read(p, &t, g_err, sizeof g_err), p, "not a .npy file: it does not start with the magic bytes \\x93NUMPY");
    write_npy(p, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", 16);
    expect_msg(rt_npy_read(p, &t, g_err, sizeof g_err), p,
               "dtype is '<f8' (float64); nnc needs float32 ('<f4'): convert with a.astype(numpy.float32)");
    write_npy(p, 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8);
    expect_fail(rt_npy_read(p, &t, g_err, sizeof g_err), p, "dtype is '>f4' (big-endian float32); nnc needs little-endian float32");
    write_npy(p, 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }", 2);
    expect_fail(rt_npy_read(p, &t, g_err, sizeof g_err), p, "dtype is '|u1' (uint8)");
    write_npy(p, 1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", 8);
    expect_fail(rt_npy_read(p, &t, g_err, sizeof g_err), p, "structured (record) dtype");
    write_npy(p, 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24);
    expect_msg(rt_npy_read(p, &t, g_err, sizeof g_err), p,
               "array is stored in Fortran order; nnc needs C order: save numpy.ascontiguousarray(a)");
    write_npy(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 20);
    expect_msg(rt_npy_read(p, &t, g_err, sizeof g_err), p,
               "data is truncated: shape (2, 3) of float32 needs 24 bytes after the header, the file has 20");
    write_npy(p, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 28);
    expect_msg(rt_npy_read(p, &t, g_err, sizeof g_err), p,
               "file has 4 bytes of trailing data after the array (shape (2, 3) of float32 takes 24 bytes)");
    static const struct { const char *dict, *part; } bad[] = {
        {"{'descr' '<f4', 'fortran_order': False, 'shape': (2,), }", "header is not a valid dict at byte 19: expected ':'"},
        {"'descr': '<f4'", "expected '{'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,) 'x'}", "expected ',' or '}'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}", "unknown key 'extra'"},
        {"{'descr': '<f4', 'fortran_order': False}", "header dict has no 'shape'"},
        {"{'descr': '<f4', 'shape': (2,)}", "header dict has no 'fortran_order'"},
        {"{'fortran_order': False, 'shape': (2,)}", "header dict has no 'descr'"},
        {"{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}", "expected True or False"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2)}", "a one-dimensional shape is written (n,)"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2 3)}", "expected ',' or ')'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}", "expected a dimension"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': [2]}", "expected '(' to open the shape tuple"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1)}", "more than 8 dimensions"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}", "dimension is too large"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1048576, 1048576, 1048576)}", "2^40-byte limit"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'shape': (2,)}", "'shape' appears twice"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} x", "unexpected bytes after the dict"},
        {"{'descr: '<f4', 'fortran_order': False, 'shape': (2,)}", "expected ':'"},
        {"{'descr': '<f4\\n', 'fortran_order': False, 'shape': (2,)}", "unsupported character in a string"},
    };
    for (size_t i = 0; i < NNC_COUNT(bad); i++) {
        write_npy(p, 1, bad[i].dict, 8);
        expect_fail(rt_npy_read(p, &t, g_err, sizeof g_err), p, bad[i].part);
    }
    write_lit(p, "\x93NUMPY\x04\x00\x10\x00");
    expect_msg(rt_npy_read(p, &t, g_err, sizeof g_err), p, ".npy format version 4.0 is not supported (1.0, 2.0 and 3.0 are)");
    write_lit(p, "\x93NUMPY\x01\x00\x40\x00{'descr'");
    expect_msg(rt_npy_read(p, &t, g_err, sizeof g_err), p, "file is truncated: the header is 64 bytes but only 8 follow its length field");
    write_lit(p, "\x93NUMPY\x02\x00\x40");
    expect_fail(rt_npy_read(p, &t, g_err, sizeof g_err), p, "file is truncated");
    expect_fail(rt_npy_read(tpath("none.npy"), &t, g_err, sizeof g_err), tpath("none.npy"), "cannot read: No such file");
    RtTensor neg = {NULL, 1, {-3}, NULL};
    expect_fail(rt_npy_write(p, &neg, g_err, sizeof g_err), p, "the array has a negative dimension");
}

/* ---- IDX ---- */

static void test_idx_fashion_mnist(void **state)
{
    (void)state;
    RtIdx im, lb;
    if (access(FASHION "t10k-images-idx3-ubyte.gz", R_OK) != 0) skip();
    assert_int_equal(rt_idx_read(FASHION "t10k-images-idx3-ubyte.gz", &im, g_err, sizeof g_err), 0);
    assert_int_equal(im.rank, 3);
    assert_int_equal(im.dims[0], 10000);
    assert_int_equal(im.dims[1], 28);
    assert_int_equal(im.dims[2], 28);
    assert_int_equal(im.size, 10000 * 28 * 28);
    int nonzero = 0;
    for (size_t i = 0; i < im.size; i++) nonzero += im.data[i] != 0;
    assert_true(nonzero > (int)im.size / 4);   /* real pictures, not zeros */
    rt_idx_free(&im);
    assert_null(im.data);
    assert_int_equal(rt_idx_read(FASHION "t10k-labels-idx1-ubyte.gz", &lb, g_err, sizeof g_err), 0);
    assert_int_equal(lb.rank, 1);
    assert_int_equal(lb.dims[0], 10000);
    int count[10] = {0};
    for (size_t i = 0; i < lb.size; i++) {
        assert_true(lb.data[i] <= 9);
        count[lb.data[i]]++;
    }
    for (int c = 0; c < 10; c++) assert_int_equal(count[c], 1000);   /* the test set is balanced */
    rt_idx_free(&lb);
}

/* Writes an IDX file, gzipped or plain. */
static void write_idx(const char *path, int gz, const void *data, size_t len)
{
    if (!gz) { write_bytes(path, data, len); return; }
    gzFile g = gzopen(path, "wb");
    assert_non_null(g);
    if (len) assert_int_equal(gzwrite(g, data, (unsigned)len), (int)len);
    assert_int_equal(gzclose(g), Z_OK);
}

#define write_idx_lit(path, gz, lit) write_idx(path, gz, lit, sizeof lit - 1)

static void test_idx_small_and_errors(void **state)
{
    (void)state;
    const char *p = tpath("i.idx.gz");
    unsigned char good[8 + 8 + 6] = {0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6};
    RtIdx x;
    for (int gz = 0; gz < 2; gz++) {
        write_idx(p, gz, good, 18);
        assert_int_equal(rt_idx_read(p, &x, g_err, sizeof g_err), 0);
        assert_int_equal(x.rank, 2);
        assert_int_equal(x.dims[1], 3);
        assert_memory_equal(x.data, good + 12, 6);
        rt_idx_free(&x);
        write_idx(p, gz, good, 17);
        expect_msg(rt_idx_read(p, &x, g_err, sizeof g_err), p, "data is truncated: the dimensions need 6 bytes of data, the file has 5");
        unsigned char more[19];
        memcpy(more, good, 18);
        more[18] = 7;
        write_idx(p, gz, more, 19);
        expect_msg(rt_idx_read(p, &x, g_err, sizeof g_err), p,
                   gz ? "file has trailing bytes after the 6 bytes of data its dimensions describe (decompressed)"
                      : "file has trailing bytes: the dimensions describe 6 bytes of data, the file has 7");
        unsigned char f32[8] = {0, 0, 0x0D, 1, 0, 0, 0, 1};
        write_idx(p, gz, f32, 8);
        expect_msg(rt_idx_read(p, &x, g_err, sizeof g_err), p,
                   "IDX element type is 0x0D (float32); nnc reads IDX files of unsigned bytes (type 0x08), as MNIST and Fashion-MNIST are");
        write_idx_lit(p, gz, "\x50\x4b\x03\x04");
        expect_fail(rt_idx_read(p, &x, g_err, sizeof g_err), p, "not an IDX file: it starts with bytes 50 4b 03 04");
        write_idx_lit(p, gz, "\0\0\x08\0");
        expect_fail(rt_idx_read(p, &x, g_err, sizeof g_err), p, "IDX rank is 0");
        write_idx_lit(p, gz, "\0\0\x08\x03\0\0\0\x01\0\0");
        expect_fail(rt_idx_read(p, &x, g_err, sizeof g_err), p, "truncated inside the IDX dimensions");
        write_idx_lit(p, gz, "\0\0\x08");
        expect_fail(rt_idx_read(p, &x, g_err, sizeof g_err), p, "too short to be IDX");
        write_idx_lit(p, gz, "\0\0\x08\x03\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff");
        expect_fail(rt_idx_read(p, &x, g_err, sizeof g_err), p, "2^40-byte limit");
        write_idx_lit(p, gz, "\0\0\x08\x02\0\x01\0\0\0\x01\0\0");   /* claims 2^32 bytes, has none */
        expect_fail(rt_idx_read(p, &x, g_err, sizeof g_err), p, "data is truncated");
        assert_null(x.data);
    }
    expect_fail(rt_idx_read(tpath("nope.gz"), &x, g_err, sizeof g_err), tpath("nope.gz"), "cannot open");
}

/* A damaged gzip stream is reported as such, not read as short data. */
static void test_idx_corrupt_gzip(void **state)
{
    (void)state;
    const char *p = tpath("c.idx.gz");
    static unsigned char big[16 + 4000];
    static const unsigned char hdr[16] = {0, 0, 8, 2, 0, 0, 0, 40, 0, 0, 0, 100};
    RtRng r;
    rt_rng_seed(&r, 3);
    memcpy(big, hdr, 16);
    for (size_t i = 16; i < sizeof big; i++) big[i] = (unsigned char)(rt_rng_next_u64(&r) % 7);
    write_idx(p, 1, big, sizeof big);
    size_t len = 0;
    const char *why = NULL;
    unsigned char *gzb = (unsigned char *)nnc_read_file(p, &len, &why);
    assert_non_null(gzb);
    write_bytes(p, gzb, len - 20);                 /* cut off the end */
    RtIdx x;
    expect_fail(rt_idx_read(p, &x, g_err, sizeof g_err), p, NULL);
    assert_true(strstr(g_err, "gzip data is corrupt or truncated") || strstr(g_err, "data is truncated"));
    gzb[len - 6] ^= 0x55;                          /* break the CRC */
    write_bytes(p, gzb, len);
    expect_fail(rt_idx_read(p, &x, g_err, sizeof g_err), p, "gzip data is corrupt or truncated");
    free(gzb);
}

/* ---- RNG ---- */

static void test_rng(void **state)
{
    (void)state;
    RtRng a, b;
    rt_rng_seed(&a, 0);   /* reference values from an independent implementation */
    assert_true(rt_rng_next_u64(&a) == UINT64_C(0x99ec5f36cb75f2b4));
    assert_true(rt_rng_next_u64(&a) == UINT64_C(0xbf6e1f784956452a));
    rt_rng_seed(&a, 42);
    assert_true(rt_rng_next_u64(&a) == UINT64_C(0x15780b2e0c2ec716));
    rt_rng_seed(&a, 5);
    rt_rng_seed(&b, 5);
    double sum = 0;
    for (int i = 0; i < 100000; i++) {
        float x = rt_rng_uniform(&a, -0.5f, 0.25f);
        assert_true(x == rt_rng_uniform(&b, -0.5f, 0.25f));
        assert_true(x >= -0.5f && x < 0.25f);
        sum += x;
    }
    assert_true(fabs(sum / 100000 - (-0.125)) < 0.005);
    assert_true(rt_rng_uniform(&a, 1.0f, 1.0f) == 1.0f);
    for (int i = 0; i < 1000; i++) {
        float x = rt_rng_uniform(&a, 1.0f, nextafterf(1.0f, 2.0f));
        assert_true(x == 1.0f);
    }
}

/* ---- fuzz ---- */

/* Applies one random mutation to b (len bytes, capacity cap); returns the new length.
 * hdr_len_at/hdr_len_size locate the header length field to overwrite. */
static size_t mutate(unsigned char *b, size_t len, size_t cap, RtRng *r, size_t hdr_len_at, size_t hdr_len_size)
{
    uint64_t x = rt_rng_next_u64(r);
    size_t pos = len ? (size_t)(rt_rng_next_u64(r) % len) : 0;
    if (len && rt_rng_next_u64(r) % 3 == 0) pos = pos % (len < 96 ? len : 96);   /* favour the headers */
    switch (x % 8) {
    case 0: if (len) b[pos] ^= (unsigned char)(1u << (x >> 8) % 8); break;
    case 1: if (len) b[pos] = 0; break;
    case 2: if (len) b[pos] = 0xff; break;
    case 3: if (len) b[pos] = (unsigned char)(x >> 16); break;
    case 4: return pos;                                               /* truncate */
    case 5: {                                                         /* insert a run */
        size_t n = 1 + (x >> 8) % 16;
        if (len + n > cap) break;
        memmove(b + pos + n, b + pos, len - pos);
        for (size_t i = 0; i < n; i++) b[pos + i] = (x >> 20) & 1 ? (unsigned char)rt_rng_next_u64(r) : b[(pos + i) % len];
        return len + n;
    }
    case 6: {                                                         /* delete a run */
        size_t n = 1 + (x >> 8) % 16;
        if (pos + n > len) n = len - pos;
        memmove(b + pos, b + pos + n, len - pos - n);
        return len - n;
    }
    default:                                                          /* header length */
        if (len >= hdr_len_at + hdr_len_size) {
            uint64_t v = (x >> 8) & 1 ? rt_rng_next_u64(r) >> (x >> 9) % 64 : (uint64_t)(len - 8 + (x >> 10) % 9) - 4;
            for (size_t i = 0; i < hdr_len_size; i++) b[hdr_len_at + i] = (unsigned char)(v >> (8 * i));
        }
    }
    return len;
}

/* Each read must succeed or fail with a one-line message naming the path. */
static void check_outcome(int rc, const char *path)
{
    if (rc == 0) return;
    expect_fail(rc, path, NULL);
    assert_true(strlen(g_err) > strlen(path) + 2);
}

static void fuzz_file(const unsigned char *seed, size_t seed_len, const char *path, int kind, int iters, uint64_t rs)
{
    static unsigned char b[8192];
    static float dst[64];
    RtRng r;
    rt_rng_seed(&r, rs);
    for (int it = 0; it < iters; it++) {
        size_t len = seed_len;
        memcpy(b, seed, seed_len);
        int n = 1 + (int)(rt_rng_next_u64(&r) % 3);
        for (int m = 0; m < n; m++)
            len = mutate(b, len, sizeof b, &r, kind == 1 ? 8 : 0, kind == 1 ? 2 : 8);
        write_bytes(path, b, len);
        g_err[0] = 0;
        if (kind == 0) {
            RtTensor *t = NULL;
            int nt = 0;
            int rc = rt_st_read(path, &t, &nt, g_err, sizeof g_err);
            check_outcome(rc, path);
            if (rc == 0) rt_tensors_free(t, nt);
            nnc_st_want w[] = {{"a.weight", 2, {3, 4}, dst}, {"a.bias", 1, {3}, dst + 12}, {"s", 0, {0}, dst + 16}};
            check_outcome(nnc_st_load(path, w, 3, g_err, sizeof g_err), path);
        } else if (kind == 1) {
            RtTensor t;
            int rc = rt_npy_read(path, &t, g_err, sizeof g_err);
            check_outcome(rc, path);
            if (rc == 0) rt_tensor_free(&t);
        } else {
            RtIdx x;
            int rc = rt_idx_read(path, &x, g_err, sizeof g_err);
            check_outcome(rc, path);
            if (rc == 0) rt_idx_free(&x);
        }
    }
}

static void test_fuzz(void **state)
{
    (void)state;
    static float v[16];
    RtRng r;
    rt_rng_seed(&r, 11);
    fill_random(v, 16, &r);
    RtTensor st[] = {{"a.weight", 2, {3, 4}, v}, {"a.bias", 1, {3}, v}, {"s", 0, {0}, v},
                     {"num_batches_tracked", 1, {1}, v}};
    const char *ps = tpath("seed.safetensors"), *pn = tpath("seed.npy"), *pf = tpath("fuzz.bin");
    assert_int_equal(rt_st_write(ps, st, 4, "{\"format\":\"pt\"}", g_err, sizeof g_err), 0);
    assert_int_equal(rt_npy_write(pn, &st[0], g_err, sizeof g_err), 0);
    size_t ls = 0, ln = 0;
    const char *why = NULL;
    unsigned char *seed_st = (unsigned char *)nnc_read_file(ps, &ls, &why);
    unsigned char *seed_npy = (unsigned char *)nnc_read_file(pn, &ln, &why);
    assert_non_null(seed_st);
    assert_non_null(seed_npy);
    unsigned char idx[16 + 12] = {0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 4, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    fuzz_file(seed_st, ls, pf, 0, 4000, 1);
    fuzz_file(seed_npy, ln, pf, 1, 3000, 2);
    fuzz_file(idx, sizeof idx, pf, 2, 1000, 3);
    free(seed_st);
    free(seed_npy);
}

/* ---- the snippet alone, as users compile generated code ---- */

static int compile_snippet(const char *cc, const char *src, const char *flags)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s -std=c99 -Wall -Wextra -Werror -pedantic -Wshadow -Wstrict-prototypes "
             "-Wmissing-prototypes %s %s 2>&1", cc, flags, src);
    FILE *pp = popen(cmd, "r");
    char line[512];
    while (pp && fgets(line, sizeof line, pp)) print_message("%s: %s", cc, line);
    return pp ? pclose(pp) : -1;
}

extern const char nnc_snippet_safetensors_load[];
extern const size_t nnc_snippet_safetensors_load_len;

static void test_snippet_compiles_alone(void **state)
{
    (void)state;
    /* the text generated code pastes: runtime/snippets/safetensors_load.c with
     * its #include "safetensors_json.c" expanded (cmake/embed.cmake) */
    size_t len = nnc_snippet_safetensors_load_len;
    const char *text = nnc_snippet_safetensors_load;
    assert_true(len > 0);
    const char *src = tpath("snippet_alone.c");
    FILE *f = fopen(src, "w");
    assert_non_null(f);
    fputs("/* generated model source, reduced to the weights loader */\n", f);
    fwrite(text, 1, len, f);
    fputs("\nint main(void)\n{\n    static float w[6];\n    char err[256];\n"
          "    nnc_st_want want[1] = {{\"fc.bias\", 1, {6, 0, 0, 0}, w}};\n"
          "    return nnc_st_load(\"w.safetensors\", want, 1, err, sizeof err) ? 1 : 0;\n}\n", f);
    fclose(f);
    char obj[600];
    snprintf(obj, sizeof obj, "-O2 -c -o %s", tpath("snippet_alone.o"));
    assert_int_equal(compile_snippet("gcc", src, "-fsyntax-only"), 0);
    assert_int_equal(compile_snippet("gcc", src, obj), 0);       /* -O2 finds more (maybe-uninitialized) */
    if (system("command -v clang >/dev/null 2>&1") != 0) { print_message("clang not found: skipped\n"); return; }
    assert_int_equal(compile_snippet("clang", src, "-fsyntax-only"), 0);
    assert_int_equal(compile_snippet("clang", src, obj), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_npy_roundtrip),
        cmocka_unit_test(test_npy_variants),
        cmocka_unit_test(test_npy_errors),
        cmocka_unit_test(test_idx_fashion_mnist),
        cmocka_unit_test(test_idx_small_and_errors),
        cmocka_unit_test(test_idx_corrupt_gzip),
        cmocka_unit_test(test_rng),
        cmocka_unit_test(test_fuzz),
        cmocka_unit_test(test_snippet_compiles_alone),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
