/* test_safetensors_memory.c: the generated code's safetensors loader reading
 * from memory (nnc_st_load_memory, nnc_st_begin_memory) runs the very checks
 * it runs on a file.
 *
 * The proof is differential: each case is written to a file and also held in
 * memory, loaded both ways, and the two outcomes must agree: both succeed with
 * the same floats, or both fail with the same message once the file's path is
 * read as "<memory>" and "file" as "buffer". The cases are the malformed
 * inputs of test_tensor_io.c's families (prefix, JSON, entries, offsets,
 * tiling, shapes, names) and some thousands of random mutations (bytes
 * flipped, the buffer cut short) of a valid file. The memory-only cases (a
 * NULL buffer, a label) are checked on their own. Built under the sanitizers
 * (build-asan), every read stays inside [data, data + size). */
#include "tensor_io_test.h"

/* The file message of a failure, rewritten as the memory path must say it:
 * the path becomes "<memory>" and the word "file" becomes "buffer" (but not
 * in "not a safetensors file", which is true of both). */
static void as_memory_message(const char *path, const char *msg, char *out, size_t len)
{
    const char *start = msg;
    size_t o = 0, n = strlen(path);
    if (strncmp(msg, path, n) == 0) {
        o = (size_t)snprintf(out, len, "<memory>");
        msg += n;
        start = msg;
    }
    while (*msg && o + 8 < len) {
        if (strncmp(msg, "file", 4) == 0 && !(msg - start >= 12 && strncmp(msg - 12, "safetensors ", 12) == 0)) {
            memcpy(out + o, "buffer", 6);
            o += 6;
            msg += 4;
        } else {
            out[o++] = *msg++;
        }
    }
    out[o] = '\0';
}

/* Loads the file at path and its bytes from memory with the same want list
 * (tensors of 4096 floats at most) and asserts the outcomes agree. Returns
 * the return code. */
static int load_both(const char *path, const nnc_st_want *want, int n)
{
    static float fbuf[8][4096], mbuf[8][4096];
    nnc_st_want wf[8], wm[8];
    char ferr[1024] = "", merr[1024] = "", expect[1200];
    unsigned char *bytes = NULL;
    size_t size = 0;
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    size = (size_t)ftell(f);
    rewind(f);
    bytes = malloc(size ? size : 1);  /* exactly size bytes: the sanitizers see any read past them */
    assert_non_null(bytes);
    assert_int_equal(fread(bytes, 1, size, f), size);
    fclose(f);
    assert_true(n <= 8);
    for (int i = 0; i < n; i++) {
        wf[i] = wm[i] = want[i];
        wf[i].dst = want[i].dst ? fbuf[i] : NULL;
        wm[i].dst = want[i].dst ? mbuf[i] : NULL;
    }
    memset(fbuf, 0, sizeof fbuf);
    memset(mbuf, 0, sizeof mbuf);
    int rf = nnc_st_load(path, wf, n, ferr, sizeof ferr);
    int rm = nnc_st_load_memory(bytes, size, NULL, wm, n, merr, sizeof merr);
    free(bytes);
    if (rf != rm) fail_msg("file: %d \"%s\"; memory: %d \"%s\"", rf, ferr, rm, merr);
    if (rf == 0) {
        assert_memory_equal(fbuf, mbuf, sizeof fbuf);
        return 0;
    }
    as_memory_message(path, ferr, expect, sizeof expect);
    assert_string_equal(merr, expect);
    snprintf(g_err, sizeof g_err, "%s", merr);
    return rf;
}

/* One F32 tensor "a" of shape [2]: the want list most cases use. */
static int load_a(const char *path)
{
    static float dst[4];
    nnc_st_want w = {"a", 1, {2}, dst};
    return load_both(path, &w, 1);
}

static const char *const bad_headers[] = {
    /* JSON */
    "", "{", "[]", "{\"a\":", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", "{\"a\" {}}",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},}", "{\"\\ud800\":{}}", "{\"a\xff\":{}}",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} x", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":[[[[1]]]]}}",
    /* entries */
    "{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", "{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}",
    "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}}",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}",
    "{\"a\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,8]}}", "{\"a\\u0000\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
    /* offsets and tiling */
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"__metadata__\":{\"k\":1}}",
    "{\"__metadata__\":{},\"__metadata__\":{},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
    /* what the model wants: absent, another dtype, another shape */
    "{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", "{\"a\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,2],\"data_offsets\":[0,8]}}",
    /* valid */
    "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}  ",
    "{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
};

/* Every malformed header, over data areas of 0 to 16 bytes: the same verdicts and messages. */
static void test_memory_matches_file_on_bad_headers(void **state)
{
    (void)state;
    const char *p = tpath("h.safetensors");
    int failures = 0;
    for (size_t i = 0; i < sizeof bad_headers / sizeof bad_headers[0]; i++)
        for (size_t data = 0; data <= 16; data += 4) {
            write_st(p, bad_headers[i], data);
            failures += load_a(p) != 0;
        }
    assert_true(failures > 100);  /* the cases do fail: the comparison is not vacuous */
}

/* The prefix: too short, a length over the limit, a length past the end. */
static void test_memory_matches_file_on_prefixes(void **state)
{
    (void)state;
    const char *p = tpath("p.safetensors");
    static const unsigned char over[8] = {0, 0, 0, 0, 0, 0, 0, 1}, past[10] = {64, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    write_bytes(p, "", 0);
    assert_int_equal(load_a(p), -1);
    assert_string_equal(g_err, "<memory>: buffer is too short to be safetensors (0 bytes; it must start with an 8-byte header length)");
    write_bytes(p, "abc", 3);
    assert_int_equal(load_a(p), -1);
    write_bytes(p, over, sizeof over);
    assert_int_equal(load_a(p), -1);
    assert_non_null(strstr(g_err, "is over the 100 MB limit"));
    write_bytes(p, past, sizeof past);
    assert_int_equal(load_a(p), -1);
    assert_string_equal(g_err, "<memory>: header length 64 (bytes 0-7) runs past the end of the buffer (10 bytes): "
                               "the buffer is truncated or not safetensors");
}

/* Random damage to a valid three-tensor file, and every length it can be cut to. */
static void test_memory_matches_file_on_damage(void **state)
{
    (void)state;
    const char *p = tpath("w.safetensors"), *q = tpath("d.safetensors");
    float a[6], b[5], c[1];
    RtRng r;
    rt_rng_seed(&r, 12);
    fill_random(a, 6, &r);
    fill_random(b, 5, &r);
    fill_random(c, 1, &r);
    RtTensor t[3] = {{"conv.weight", 2, {2, 3}, a}, {"conv.bias", 1, {5}, b}, {"scale", 0, {0}, c}};
    assert_int_equal(rt_st_write(p, t, 3, "{\"format\":\"pt\"}", g_err, sizeof g_err), 0);
    nnc_st_want w[3] = {{"conv.weight", 2, {2, 3}, a}, {"conv.bias", 1, {5}, b}, {"scale", 0, {0}, c}};
    assert_int_equal(load_both(p, w, 3), 0);
    FILE *f = fopen(p, "rb");
    unsigned char good[1024];
    size_t size = fread(good, 1, sizeof good, f);
    fclose(f);
    for (size_t cut = 0; cut < size; cut++) {  /* every truncation fails, the same way */
        write_bytes(q, good, cut);
        assert_int_equal(load_both(q, w, 3), -1);
    }
    for (int round = 0; round < 3000; round++) {  /* 1 to 3 bytes set at random, anywhere */
        unsigned char bad[1024];
        memcpy(bad, good, size);
        for (int k = 0, flips = 1 + (int)(rt_rng_next_u64(&r) % 3); k < flips; k++)
            bad[rt_rng_next_u64(&r) % size] = (unsigned char)rt_rng_next_u64(&r);
        write_bytes(q, bad, size);
        load_both(q, w, 3);
    }
}

/* What only memory has: a NULL buffer, a label, the begin/read/end cycle the
 * generated create uses. */
static void test_memory_entry_points(void **state)
{
    (void)state;
    char err[512];
    float a[2] = {0, 0};
    nnc_st_want w = {"a", 1, {2}, a};
    nnc_st_file sf;
    assert_int_equal(nnc_st_load_memory(NULL, 0, NULL, &w, 1, err, sizeof err), -1);
    assert_string_equal(err, "<memory>: no weights given (the buffer is NULL, size 0)");
    assert_int_equal(nnc_st_load_memory(NULL, 5, "weights.bin", &w, 1, err, sizeof err), -1);
    assert_string_equal(err, "weights.bin: no weights given (the buffer is NULL, size 5)");
    assert_int_equal(nnc_st_load_memory("", 0, NULL, NULL, -1, err, sizeof err), -1);
    assert_string_equal(err, "<memory>: the model's weight list is invalid");

    /* a valid image built in memory: the header, then 8 bytes of floats 1 and 2 */
    static const char hdr[] = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    unsigned char img[8 + sizeof hdr - 1 + 8];
    const float v[2] = {1.0f, 2.0f};
    for (int i = 0; i < 8; i++) img[i] = (unsigned char)((sizeof hdr - 1) >> (8 * i));
    memcpy(img + 8, hdr, sizeof hdr - 1);
    memcpy(img + 8 + sizeof hdr - 1, v, sizeof v);
    assert_int_equal(nnc_st_begin_memory(&sf, img, sizeof img, "blob", err, sizeof err), 0);
    assert_int_equal(nnc_st_read(&sf, &w, err, sizeof err), 0);
    assert_true(a[0] == 1.0f && a[1] == 2.0f);
    w.shape[0] = 3;
    assert_int_equal(nnc_st_read(&sf, &w, err, sizeof err), -1);
    assert_string_equal(err, "blob: tensor 'a' has shape [2], the model expects [3]");
    nnc_st_end(&sf);
    nnc_st_end(&sf);  /* ending twice is harmless */
    assert_int_equal(nnc_st_begin_memory(&sf, img, sizeof img - 1, NULL, err, sizeof err), -1);
    assert_string_equal(err, "<memory>: buffer is truncated: tensor 'a' ends at byte 70 but the buffer has 69");
    nnc_st_end(&sf);  /* after a failed begin: nothing to close */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_matches_file_on_bad_headers),
        cmocka_unit_test(test_memory_matches_file_on_prefixes),
        cmocka_unit_test(test_memory_matches_file_on_damage),
        cmocka_unit_test(test_memory_entry_points),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
