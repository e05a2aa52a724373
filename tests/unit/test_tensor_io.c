/* test_tensor_io.c: safetensors in runtime/tensor_io.c (tensor_io.h) and the
 * generated loader it shares (runtime/snippets/safetensors_load.c): round
 * trips and the messages of the contract. .npy, IDX, the RNG, the fuzz loop
 * and the snippet compiled alone are in test_tensor_io_npy_idx.c; helpers in
 * tensor_io_test.h. */
#include "tensor_io_test.h"

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
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
