/* test_tensor_io.c: the tensor file formats, against good files, bad files, and noise.
 *
 * Round trips must be bit-exact. Every refusal must be a message that starts with the
 * path, so each error test builds a bad file by hand and checks the message. The fuzz
 * test mutates valid files thousands of times (seeded, so a failure reproduces) and
 * asks only that every read either succeeds or fails with such a message; run under
 * the ASan+UBSan build, it is what shows that no input crashes the readers. The
 * safetensors snippet is included here as the generated code includes it, and is also
 * compiled alone with gcc and clang under the flags users build models with. */
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
#include <unistd.h>
#include <zlib.h>

#include "common/common.h"
#include "runtime/tensor_io.h"
#include "runtime/snippets/safetensors_load.c"

#ifndef NNC_SOURCE_DIR
#define NNC_SOURCE_DIR "."
#endif

#define FASHION "/usr/share/datasets/fashion-mnist/"

static char g_dir[256];   /* this run's scratch directory */
static char g_err[1024];  /* the message of the last failed call */

/* ---- helpers ---- */

/* A path in the scratch directory; four rotating buffers so a test can hold several. */
static const char *tpath(const char *name)
{
    static char bufs[4][512];
    static int next;
    char *b = bufs[next++ % 4];
    snprintf(b, 512, "%s/%s", g_dir, name);
    return b;
}

static void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len) assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Writes a safetensors file from a header text and a data area of data_len bytes
 * (filled with 0x3f so the floats are finite). */
/* Writes a string literal's bytes, without its terminating NUL. */
#define write_lit(path, lit) write_bytes(path, lit, sizeof lit - 1)

static void write_st_n(const char *path, const char *header, size_t hlen, size_t data_len)
{
    size_t size = 8 + hlen + data_len;
    unsigned char *b = malloc(size);
    assert_non_null(b);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    memcpy(b + 8, header, hlen);
    memset(b + 8 + hlen, 0x3f, data_len);
    write_bytes(path, b, size);
    free(b);
}

static void write_st(const char *path, const char *header, size_t data_len)
{
    write_st_n(path, header, strlen(header), data_len);
}

/* Asserts that a call failed with a one-line message "PATH: ...<part>...". */
static void expect_fail(int rc, const char *path, const char *part)
{
    size_t n = strlen(path);
    if (rc != -1 || strncmp(g_err, path, n) != 0 || strncmp(g_err + n, ": ", 2) != 0 ||
        strchr(g_err, '\n') || (part && !strstr(g_err, part)))
        fail_msg("rc %d, message \"%s\", wanted a failure about \"%s\"", rc, g_err, part ? part : "");
}

/* Asserts the exact message "PATH: text". */
static void expect_msg(int rc, const char *path, const char *text)
{
    char want[1200];
    snprintf(want, sizeof want, "%s: %s", path, text);
    assert_int_equal(rc, -1);
    assert_string_equal(g_err, want);
}

/* nnc_st_load of one F32 tensor of the given rank and shape, into a scratch buffer. */
static int load1(const char *path, const char *name, int rank, long long d0, long long d1, long long d2, long long d3)
{
    static float buf[4096];
    nnc_st_want w = {name, rank, {d0, d1, d2, d3}, buf};
    return nnc_st_load(path, &w, 1, g_err, sizeof g_err);
}

static void fill_random(float *v, size_t n, RtRng *r)
{
    for (size_t i = 0; i < n; i++) v[i] = rt_rng_uniform(r, -1.0f, 1.0f);
}

static int setup(void **state)
{
    (void)state;
    const char *t = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/nnc_tio_XXXXXX", t && *t ? t : "/tmp");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    DIR *d = opendir(g_dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlink(tpath(e->d_name));
    if (d) closedir(d);
    return rmdir(g_dir);
}

/* ---- safetensors: round trips ---- */

static void test_st_roundtrip(void **state)
{
    (void)state;
    RtRng r;
    static float w[6 * 1 * 5 * 5], b[6], s[1] = {-0.0f}, sp[8];
    rt_rng_seed(&r, 1);
    fill_random(w, 150, &r);
    fill_random(b, 6, &r);
    uint32_t bits[8] = {0x7fc01234u, 0xff800000u, 0x7f800000u, 0x00000001u, 0x80000000u, 0x7f7fffffu, 0x3f800000u, 0xffffffffu};
    memcpy(sp, bits, sizeof sp);
    RtTensor in[] = {
        {"conv1.weight", 4, {6, 1, 5, 5}, w},
        {"conv1.bias", 1, {6}, b},
        {"scalar", 0, {0}, s},
        {"empty", 2, {0, 3}, NULL},
        {"specials \"q\" \\ \n\t \xd1\x81\xd0\xbb\xd0\xbe\xd0\xb9 \xf0\x9f\x98\x80", 2, {2, 4}, sp},
    };
    const char *p = tpath("rt.safetensors");
    assert_int_equal(rt_st_write(p, in, 5, "{\"format\": \"pt\", \"nnc\": \"0.1\"}", g_err, sizeof g_err), 0);

    RtTensor *out = NULL;
    int n = 0;
    assert_int_equal(rt_st_read(p, &out, &n, g_err, sizeof g_err), 0);
    assert_int_equal(n, 5);
    for (int i = 0; i < n; i++) {
        assert_string_equal(out[i].name, in[i].name);
        assert_int_equal(out[i].rank, in[i].rank);
        for (int d = 0; d < in[i].rank; d++) assert_int_equal(out[i].shape[d], in[i].shape[d]);
        int64_t ne = rt_tensor_numel(&in[i]);
        if (ne) assert_memory_equal(out[i].data, in[i].data, (size_t)ne * 4);
    }
    rt_tensors_free(out, n);

    /* the header is padded to a multiple of 8, and the model-side loader agrees */
    FILE *f = fopen(p, "rb");
    unsigned char h8[8];
    assert_int_equal(fread(h8, 1, 8, f), 8);
    fclose(f);
    assert_int_equal(h8[0] % 8, 0);
    static float w2[150], b2[6];
    nnc_st_want want[] = {{"conv1.bias", 1, {6}, b2}, {"conv1.weight", 4, {6, 1, 5, 5}, w2}};
    assert_int_equal(nnc_st_load(p, want, 2, g_err, sizeof g_err), 0);
    assert_memory_equal(w2, w, sizeof w);
    assert_memory_equal(b2, b, sizeof b);
}

static void test_st_empty_file_list(void **state)
{
    (void)state;
    const char *p = tpath("none.safetensors");
    RtTensor *out = NULL;
    int n = -1;
    assert_int_equal(rt_st_write(p, NULL, 0, NULL, g_err, sizeof g_err), 0);
    assert_int_equal(rt_st_read(p, &out, &n, g_err, sizeof g_err), 0);
    assert_int_equal(n, 0);
    rt_tensors_free(out, n);
    assert_int_equal(nnc_st_load(p, NULL, 0, g_err, sizeof g_err), 0);
}

/* Files other writers may produce: escapes, padding, extra keys, other dtypes. */
static void test_st_accepts_valid_variants(void **state)
{
    (void)state;
    const char *p = tpath("variants.safetensors");
    write_st(p,
             " { \"__metadata__\" : {\"format\":\"pt\"},\n"
             "\"num_batches_tracked\": {\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]},\n"
             "\"caf\\u00e9.\\ud83d\\ude00\\/\\u20acw\": {\"shape\":[2],\"dtype\":\"F32\",\"extra\":[{\"a\":[1.5e3,-2,true,null]}],\"data_offsets\":[8,16]},\n"
             "\"z\": {\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[16,16]},"
             "\"half\": {\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[16,22]}}        ",
             22);
    static float v[2];
    nnc_st_want w[] = {{"caf\xc3\xa9.\xf0\x9f\x98\x80/\xe2\x82\xacw", 1, {2}, v}, {"z", 1, {0}, NULL}};
    assert_int_equal(nnc_st_load(p, w, 2, g_err, sizeof g_err), 0);
    unsigned char want[8];
    memset(want, 0x3f, 8);
    assert_memory_equal(v, want, 8);
}

/* A wrong weight list is a code generator bug, but still an error, not a crash. */
static void test_st_bad_want_list(void **state)
{
    (void)state;
    const char *p = tpath("w.safetensors");
    static float v[2];
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
    nnc_st_want bad[] = {{NULL, 1, {2}, v}, {"a", 5, {2}, v}, {"a", 1, {-2}, v}, {"a", 1, {2}, NULL}};
    expect_fail(nnc_st_load(p, &bad[0], 1, g_err, sizeof g_err), p, "entry with no name or a rank outside 0..4");
    expect_fail(nnc_st_load(p, &bad[1], 1, g_err, sizeof g_err), p, "entry with no name or a rank outside 0..4");
    expect_fail(nnc_st_load(p, &bad[2], 1, g_err, sizeof g_err), p, "negative dimension");
    expect_fail(nnc_st_load(p, &bad[3], 1, g_err, sizeof g_err), p, "the model gave no buffer for tensor 'a'");
    expect_fail(nnc_st_load(p, NULL, 1, g_err, sizeof g_err), p, "the model's weight list is invalid");
    expect_fail(nnc_st_load(p, bad, -1, g_err, sizeof g_err), p, "the model's weight list is invalid");
    expect_fail(nnc_st_load(NULL, bad, 0, g_err, sizeof g_err), "(no path)", "no weights file given");
}

/* ---- safetensors: the messages of the contract ---- */

static void test_st_missing_tensor(void **state)
{
    (void)state;
    const char *p = tpath("w.safetensors");
    write_st(p, "{\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
    expect_msg(load1(p, "conv1.weight", 4, 6, 1, 5, 5), p, "tensor 'conv1.weight' is missing");
}

static void test_st_wrong_shape(void **state)
{
    (void)state;
    const char *p = tpath("w.safetensors");
    write_st(p, "{\"conv1.weight\":{\"dtype\":\"F32\",\"shape\":[6,1,3,3],\"data_offsets\":[0,216]}}", 216);
    expect_msg(load1(p, "conv1.weight", 4, 6, 1, 5, 5), p,
               "tensor 'conv1.weight' has shape [6, 1, 3, 3], the model expects [6, 1, 5, 5]");
    expect_msg(load1(p, "conv1.weight", 2, 6, 9, 0, 0), p,
               "tensor 'conv1.weight' has shape [6, 1, 3, 3], the model expects [6, 9]");
}

static void test_st_wrong_dtype(void **state)
{
    (void)state;
    const char *p = tpath("w.safetensors");
    write_st(p, "{\"fc.bias\":{\"dtype\":\"F16\",\"shape\":[10],\"data_offsets\":[0,20]}}", 20);
    expect_msg(load1(p, "fc.bias", 1, 10, 0, 0, 0), p, "tensor 'fc.bias' has dtype F16, the model expects F32");
    RtTensor *t = NULL;
    int n = 0;
    expect_fail(rt_st_read(p, &t, &n, g_err, sizeof g_err), p, "tensor 'fc.bias' has dtype F16; nnc reads F32 tensors only");
    assert_null(t);
}

static void test_st_bad_json(void **state)
{
    (void)state;
    const char *p = tpath("w.safetensors");
    /* the ':' is missing before header offset 11: byte 19 of the file */
    write_st(p, "{\"fc.bias\" {\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
    expect_msg(load1(p, "fc.bias", 1, 2, 0, 0, 0), p, "header is not valid JSON at byte 19: expected ':'");
    static const struct { const char *header, *part; } cases[] = {
        {"", "expected '{', found the end"},
        {"[]", "expected '{'"},
        {"{", "expected a string, found the end"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", "expected ',' or '}', found the end"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}x", "unexpected bytes after the header object"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},}", "expected a string"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2,],\"data_offsets\":[0,8]}}", "expected a number"},
        {"{\"a\\q\":{}}", "invalid escape"},
        {"{\"a\\u12\":{}}", "\\u needs 4 hex digits"},
        {"{\"a\\udc00\":{}}", "lone low surrogate"},
        {"{\"a\\ud800x\":{}}", "without its low half"},
        {"{\"a\tb\":{}}", "control character in a string"},
        {"{\"a\xff\":{}}", "invalid UTF-8"},
        {"{\"a\xc0\xaf\":{}}", "invalid UTF-8"},
        {"{\"a\xed\xa0\x80\":{}}", "invalid UTF-8"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}", "expected ',' or ']'"},
        {"{\"a\":{\"x\":tru,\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", "expected a value"},
        {"{\"a\":{\"x\":1.,\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", "expected a digit after '.'"},
        {"{\"a\":{\"x\":1e+,\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}", "expected a digit in the exponent"},
        {"{\"__metadata__\":{\"k\":1}}", "__metadata__ values must be strings"},
        {"{\"__metadata__\":[]}", "expected '{'"},
    };
    for (size_t i = 0; i < NNC_COUNT(cases); i++) {
        write_st(p, cases[i].header, 8);
        expect_fail(load1(p, "a", 1, 2, 0, 0, 0), p, cases[i].part);
    }
    /* NUL padding is not whitespace */
    const char nul[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}\0";
    write_st_n(p, nul, sizeof nul - 1, 8);
    expect_fail(load1(p, "a", 1, 2, 0, 0, 0), p, "unexpected bytes after the header object");
    /* nesting is limited, so deep input cannot exhaust the stack */
    char deep[400] = "{\"a\":{\"x\":";
    for (int i = 0; i < 100; i++) strcat(deep, "[");
    write_st(p, deep, 0);
    expect_fail(load1(p, "a", 0, 0, 0, 0, 0), p, "nested deeper than 64 levels");
}

static void test_st_bad_entries(void **state)
{
    (void)state;
    const char *p = tpath("w.safetensors");
    static const struct { const char *header, *part; } cases[] = {
        {"{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", "tensor 'a' has dtype 'Q4', which is not a safetensors dtype"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", "tensor 'a' has \"shape\" with -2: it must hold integers >= 0"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", "tensor 'a' has \"shape\" with 2.0"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,8]}}", "below 2^63"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", "more than 8 dimensions"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", "tensor 'a' has no \"data_offsets\""},
        {"{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", "tensor 'a' has no \"shape\""},
        {"{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", "tensor 'a' has no \"dtype\""},
        {"{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "has \"dtype\" twice"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", "it must be [begin, end]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}}", "it must be [begin, end]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", "data_offsets [8, 0], which end before they begin"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", "data_offsets [0, 8] (8 bytes), but [3] of F32 takes 12 bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", "overflows 64 bits"},
        {"{\"a\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}", "do not fill whole bytes"},
        {"{\"a\\u0000b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "tensor 'a' has a NUL character"},
        {"{\"__metadata__\":{},\"__metadata__\":{}}", "header has \"__metadata__\" twice"},
    };
    for (size_t i = 0; i < NNC_COUNT(cases); i++) {
        write_st(p, cases[i].header, 8);
        expect_fail(load1(p, "a", 1, 2, 0, 0, 0), p, cases[i].part);
    }
}

static void test_st_offsets(void **state)
{
    (void)state;
    const char *p = tpath("w.safetensors");
    const char *ok2 = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}";
    write_st(p, ok2, 12);
    expect_fail(load1(p, "a", 1, 2, 0, 0, 0), p, "tensors 'a' and 'b' overlap: data_offsets [0, 8] and [4, 12]");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
    expect_fail(load1(p, "a", 1, 2, 0, 0, 0), p, "overlap");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12);
    expect_fail(load1(p, "a", 1, 2, 0, 0, 0), p, "belong to no tensor (a gap in data_offsets before tensor 'a')");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12);
    expect_fail(load1(p, "a", 1, 2, 0, 0, 0), p, "file has 4 bytes after the last tensor's data");

    /* out of range: the contract's message, with file offsets */
    const char *h = "{\"fc.bias\":{\"dtype\":\"F32\",\"shape\":[10],\"data_offsets\":[0,40]}}";
    write_st(p, h, 30);
    char msg[200];
    size_t ds = 8 + strlen(h);
    snprintf(msg, sizeof msg, "file is truncated: tensor 'fc.bias' ends at byte %zu but the file has %zu", ds + 40, ds + 30);
    expect_msg(load1(p, "fc.bias", 1, 10, 0, 0, 0), p, msg);
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[9223372036854775000,9223372036854775008]}}", 8);
    expect_fail(load1(p, "a", 1, 2, 0, 0, 0), p, "file is truncated: tensor 'a' ends at byte");
}

static void test_st_duplicates(void **state)
{
    (void)state;
    const char *p = tpath("w.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", 16);
    expect_msg(load1(p, "a", 1, 2, 0, 0, 0), p, "tensor 'a' appears twice in the header");
}

static void test_st_prefix(void **state)
{
    (void)state;
    const char *p = tpath("w.safetensors");
    write_lit(p, "\x10\0\0");
    expect_msg(load1(p, "a", 0, 0, 0, 0, 0), p,
               "file is too short to be safetensors (3 bytes; it must start with an 8-byte header length)");
    write_lit(p, "\x40\0\0\0\0\0\0\0{}");
    expect_msg(load1(p, "a", 0, 0, 0, 0, 0), p,
               "header length 64 (bytes 0-7) runs past the end of the file (10 bytes): the file is truncated or not safetensors");
    write_lit(p, "\x93NUMPY\x01\x00v\x00{'descr'");
    expect_fail(load1(p, "a", 0, 0, 0, 0, 0), p, "is over the 100 MB limit: this is not a safetensors file");
    write_lit(p, "");
    expect_fail(load1(p, "a", 0, 0, 0, 0, 0), p, "file is too short");
    expect_fail(load1(tpath("does-not-exist"), "a", 0, 0, 0, 0, 0), tpath("does-not-exist"), "cannot open: No such file");
    expect_fail(load1(g_dir, "a", 0, 0, 0, 0, 0), g_dir, "cannot read");
    /* a truncated copy of a good file */
    RtTensor t = {"x", 1, {100}, NULL};
    static float v[100];
    t.data = v;
    assert_int_equal(rt_st_write(p, &t, 1, NULL, g_err, sizeof g_err), 0);
    assert_int_equal(truncate(p, 300), 0);
    expect_fail(load1(p, "x", 1, 100, 0, 0, 0), p, "file is truncated: tensor 'x' ends at byte");
    assert_int_equal(truncate(p, 30), 0);
    expect_fail(load1(p, "x", 1, 100, 0, 0, 0), p, "runs past the end of the file");
}

static void test_st_names_in_messages(void **state)
{
    (void)state;
    const char *p = tpath("w.safetensors");
    char name[300];
    memset(name, 'n', sizeof name);
    name[299] = 0;
    name[3] = '\n';
    write_st(p, "{}", 0);
    expect_fail(load1(p, name, 0, 0, 0, 0, 0), p, "tensor 'nnn\\x0an");   /* stays one line */
    assert_non_null(strstr(g_err, "...' is missing"));                   /* and is cut short */
    assert_true(strlen(g_err) < 200 + strlen(p));
    char small[12];
    nnc_st_want w = {"x", 0, {0}, NULL};
    assert_int_equal(nnc_st_load(p, &w, 1, small, sizeof small), -1);   /* truncated, terminated */
    assert_true(strlen(small) == sizeof small - 1);
    assert_int_equal(nnc_st_load(p, &w, 1, NULL, 0), -1);               /* no buffer at all */
}

static void test_st_write_errors(void **state)
{
    (void)state;
    const char *p = tpath("bad.safetensors");
    static float v[4];
    RtTensor dup[] = {{"a", 1, {2}, v}, {"a", 1, {2}, v}};
    expect_msg(rt_st_write(p, dup, 2, NULL, g_err, sizeof g_err), p, "tensor 'a' appears twice in the header");
    RtTensor bad_utf8 = {"a\xff", 1, {2}, v};
    expect_fail(rt_st_write(p, &bad_utf8, 1, NULL, g_err, sizeof g_err), p, "tensor 0's name is not valid UTF-8");
    RtTensor reserved = {"__metadata__", 1, {2}, v};
    expect_fail(rt_st_write(p, &reserved, 1, NULL, g_err, sizeof g_err), p, "which safetensors reserves");
    RtTensor neg = {"n", 2, {2, -1}, v};
    expect_msg(rt_st_write(p, &neg, 1, NULL, g_err, sizeof g_err), p, "tensor 'n' has a negative dimension (shape[1] = -1)");
    RtTensor rank9 = {"r", 9, {1}, v};
    expect_fail(rt_st_write(p, &rank9, 1, NULL, g_err, sizeof g_err), p, "nnc supports 0 to 8 dimensions");
    RtTensor huge = {"h", 3, {1 << 20, 1 << 20, 1 << 20}, v};
    expect_fail(rt_st_write(p, &huge, 1, NULL, g_err, sizeof g_err), p, "2^40-byte limit");
    RtTensor nodata = {"d", 1, {2}, NULL};
    expect_fail(rt_st_write(p, &nodata, 1, NULL, g_err, sizeof g_err), p, "tensor 'd' has no data");
    RtTensor ok = {"ok", 1, {2}, v};
    expect_msg(rt_st_write(p, &ok, 1, "{\"a\" \"b\"}", g_err, sizeof g_err), p, "metadata is not valid JSON at byte 5: expected ':'");
    expect_fail(rt_st_write(p, &ok, 1, "{\"a\": 3}", g_err, sizeof g_err), p, "__metadata__ values must be strings");
    expect_fail(rt_st_write(p, &ok, 1, "{} {}", g_err, sizeof g_err), p, "unexpected bytes after the metadata object");
    expect_fail(rt_st_write(p, &ok, -1, NULL, g_err, sizeof g_err), p, "invalid tensor list");
    assert_int_equal(access(p, F_OK), -1);   /* none of these left a file behind */
    const char *nodir = tpath("no/such/dir.safetensors");
    expect_fail(rt_st_write(nodir, &ok, 1, NULL, g_err, sizeof g_err), nodir, "cannot write: No such file or directory");
}

/* A failed write must leave the previous file intact. */
static void test_st_write_is_atomic(void **state)
{
    (void)state;
    const char *p = tpath("atomic.safetensors");
    static float v[3] = {1, 2, 3};
    RtTensor t = {"v", 1, {3}, v};
    assert_int_equal(rt_st_write(p, &t, 1, NULL, g_err, sizeof g_err), 0);
    RtTensor dup[] = {{"v", 1, {3}, v}, {"v", 1, {3}, v}};
    assert_int_equal(rt_st_write(p, dup, 2, NULL, g_err, sizeof g_err), -1);
    static float back[3];
    nnc_st_want w = {"v", 1, {3}, back};
    assert_int_equal(nnc_st_load(p, &w, 1, g_err, sizeof g_err), 0);
    assert_memory_equal(back, v, sizeof v);
    DIR *d = opendir(g_dir);
    struct dirent *e;
    while ((e = readdir(d))) assert_null(strstr(e->d_name, ".tmp."));
    closedir(d);
}

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

static void test_snippet_compiles_alone(void **state)
{
    (void)state;
    size_t len = 0;
    const char *why = NULL;
    char *text = nnc_read_file(NNC_SOURCE_DIR "/runtime/snippets/safetensors_load.c", &len, &why);
    assert_non_null(text);
    const char *src = tpath("snippet_alone.c");
    FILE *f = fopen(src, "w");
    assert_non_null(f);
    fputs("/* generated model source, reduced to the weights loader */\n", f);
    fwrite(text, 1, len, f);
    fputs("\nint main(void)\n{\n    static float w[6];\n    char err[256];\n"
          "    nnc_st_want want[1] = {{\"fc.bias\", 1, {6, 0, 0, 0}, w}};\n"
          "    return nnc_st_load(\"w.safetensors\", want, 1, err, sizeof err) ? 1 : 0;\n}\n", f);
    fclose(f);
    free(text);
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
        cmocka_unit_test(test_st_roundtrip),
        cmocka_unit_test(test_st_empty_file_list),
        cmocka_unit_test(test_st_accepts_valid_variants),
        cmocka_unit_test(test_st_bad_want_list),
        cmocka_unit_test(test_st_missing_tensor),
        cmocka_unit_test(test_st_wrong_shape),
        cmocka_unit_test(test_st_wrong_dtype),
        cmocka_unit_test(test_st_bad_json),
        cmocka_unit_test(test_st_bad_entries),
        cmocka_unit_test(test_st_offsets),
        cmocka_unit_test(test_st_duplicates),
        cmocka_unit_test(test_st_prefix),
        cmocka_unit_test(test_st_names_in_messages),
        cmocka_unit_test(test_st_write_errors),
        cmocka_unit_test(test_st_write_is_atomic),
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
