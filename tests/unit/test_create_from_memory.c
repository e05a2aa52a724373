/* test_create_from_memory.c: a generated inference module created from the
 * bytes of a safetensors file in memory (PREFIX_create_from_memory).
 *
 * LeNet-5 (models/lenet5.net) is compiled with the library, its C built by
 * the system compiler and loaded with rt_cc_load, as `nnc run` without the
 * in-process JIT does, and given random weights. Created from the file and
 * from the same bytes in memory, the two instances give bit-identical
 * outputs; the bytes may be freed as soon as create returns. Damaged images
 * (cut short, a header length past the end, a wrong shape, a missing
 * tensor, nothing at all) each fail with a message that names "<memory>"
 * and says what is wrong, and the instance that holds it destroys cleanly.
 * The in-process JIT (rt_load) finds the entry point too, and a network
 * without parameters takes NULL, 0. Under build-asan the loader's reads are
 * checked against the exact bytes given. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "nnc/nnc.h"
#include "runtime/jit.h"
#include "runtime/jit_cc.h"
#include "runtime/tensor_io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { BATCH = 4, IMAGE = 784, CLASSES = 10, N_PARAMS = 10 };

/* LeNet-5's parameters as the header lists them. */
static const struct { const char *name; int rank; int64_t shape[4]; } params[N_PARAMS] = {
    {"conv1.weight", 4, {6, 1, 5, 5}}, {"conv1.bias", 1, {6}},  {"conv2.weight", 4, {16, 6, 5, 5}},
    {"conv2.bias", 1, {16}},           {"fc1.weight", 2, {120, 400}}, {"fc1.bias", 1, {120}},
    {"fc2.weight", 2, {84, 120}},      {"fc2.bias", 1, {84}},   {"fc3.weight", 2, {10, 84}},
    {"fc3.bias", 1, {10}},
};

static RtModel g_rt;          /* lenet5, loaded once */
static char g_dir[256];       /* scratch directory */
static char g_path[320];      /* the weights file */
static unsigned char *g_img;  /* its bytes */
static size_t g_size;
static float g_input[BATCH * IMAGE];

/* Writes LeNet-5's parameters to path, random, leaving out skip and giving
 * reshape the shape [1, numel] (both may be NULL); returns the file's bytes. */
static unsigned char *write_weights(const char *path, const char *skip, const char *reshape, size_t *size)
{
    RtTensor t[N_PARAMS];
    RtRng rng;
    char err[512];
    int n = 0;
    rt_rng_seed(&rng, 5);
    for (int i = 0; i < N_PARAMS; i++) {
        if (skip && strcmp(params[i].name, skip) == 0) continue;
        RtTensor *x = &t[n++];
        memset(x, 0, sizeof *x);
        x->name = params[i].name;
        x->rank = params[i].rank;
        memcpy(x->shape, params[i].shape, sizeof params[i].shape);
        int64_t count = rt_tensor_numel(x);
        if (reshape && strcmp(params[i].name, reshape) == 0) x->rank = 2, x->shape[0] = 1, x->shape[1] = count;
        x->data = malloc((size_t)count * sizeof(float));
        assert_non_null(x->data);
        for (int64_t k = 0; k < count; k++) x->data[k] = rt_rng_uniform(&rng, -0.3f, 0.3f);
    }
    if (rt_st_write(path, t, n, NULL, err, sizeof err) != 0) fail_msg("rt_st_write: %s", err);
    for (int i = 0; i < n; i++) free(t[i].data);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    rewind(f);
    unsigned char *b = malloc(*size);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, *size, f), *size);
    fclose(f);
    return b;
}

static int setup(void **state)
{
    (void)state;
    nnc_model *m = NULL;
    char *diag = NULL, *c = NULL, *h = NULL, *err = NULL, why[8192] = "";
    const char *t = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/nnc_cfm_XXXXXX", t && *t ? t : "/tmp");
    if (!mkdtemp(g_dir)) return -1;
    snprintf(g_path, sizeof g_path, "%s/lenet5.safetensors", g_dir);
    if (nnc_compile_file(NNC_SOURCE_DIR "/models/lenet5.net", NULL, &m, &diag) != 0) {
        fprintf(stderr, "%s", diag ? diag : "compile failed\n");
        return -1;
    }
    if (nnc_emit_c(m, BATCH, "lenet5.h", &c, &h, &err) != 0) {
        fprintf(stderr, "emit: %s\n", err);
        return -1;
    }
    int rc = rt_cc_load(c, h, "lenet5.h", "lenet5", &g_rt, why, sizeof why);
    if (rc != 0) fprintf(stderr, "rt_cc_load: %s\n", why);
    free(c);
    free(h);
    nnc_model_free(m);
    RtRng rng;
    rt_rng_seed(&rng, 9);
    for (int i = 0; i < BATCH * IMAGE; i++) g_input[i] = rt_rng_uniform(&rng, 0.0f, 1.0f);
    return rc;
}

static int teardown(void **state)
{
    (void)state;
    rt_cc_unload(&g_rt);
    free(g_img);
    unlink(g_path);
    return rmdir(g_dir);
}

/* Runs inst on the test batch into out (BATCH x CLASSES floats). */
static void run(const RtModel *rt, void *inst, float *out)
{
    const float *in[1] = {g_input};
    float *o[1] = {out};
    if (rt->forward_v(inst, BATCH, in, o) != 0) fail_msg("forward: %s", rt->last_error(inst));
}

/* Creates from a copy of [img, img + size) that is freed as soon as create
 * returns; returns create's code, *inst set either way. */
static int create_from_copy(const RtModel *rt, void **inst, const unsigned char *img, size_t size)
{
    unsigned char *copy = malloc(size ? size : 1);
    assert_non_null(copy);
    if (size) memcpy(copy, img, size);
    int rc = rt->create_from_memory(inst, copy, size, NULL);
    memset(copy, 0xa5, size);  /* create keeps nothing of the bytes: spoil, then free them */
    free(copy);
    return rc;
}

/* File and memory give the same outputs, to the bit. */
static void test_memory_equals_file(void **state)
{
    (void)state;
    void *a = NULL, *b = NULL;
    float ya[BATCH * CLASSES], yb[BATCH * CLASSES];
    free(g_img);
    g_img = write_weights(g_path, NULL, NULL, &g_size);
    if (g_rt.create(&a, g_path, NULL) != 0) fail_msg("create: %s", g_rt.last_error(a));
    if (create_from_copy(&g_rt, &b, g_img, g_size) != 0) fail_msg("create_from_memory: %s", g_rt.last_error(b));
    run(&g_rt, a, ya);
    run(&g_rt, b, yb);
    assert_memory_equal(ya, yb, sizeof ya);
    float sum = 0;
    for (int i = 0; i < BATCH * CLASSES; i++) sum += ya[i] < 0 ? -ya[i] : ya[i];
    assert_true(sum > 0.0f);  /* the outputs say something: not all zero */
    g_rt.destroy(a);
    g_rt.destroy(b);
}

/* create_from_memory on img fails with code and a message containing part. */
static void expect_failure(const unsigned char *img, size_t size, int code, const char *part)
{
    void *m = NULL;
    int rc = create_from_copy(&g_rt, &m, img, size);
    const char *msg = g_rt.last_error(m);
    if (rc != code || !strstr(msg, part))
        fail_msg("code %d, message \"%s\"; wanted %d and \"%s\"", rc, msg, code, part);
    assert_null(strchr(msg, '\n'));
    g_rt.destroy(m);
}

/* Cut short anywhere: in the length, in the header, in the data. */
static void test_truncated(void **state)
{
    (void)state;
    char want[256];
    if (!g_img) g_img = write_weights(g_path, NULL, NULL, &g_size);
    expect_failure(g_img, 5, 2,
                   "lenet5_create: <memory>: buffer is too short to be safetensors (5 bytes; it must start with an 8-byte header length)");
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | g_img[i];
    snprintf(want, sizeof want,
             "lenet5_create: <memory>: header length %llu (bytes 0-7) runs past the end of the buffer (%llu bytes)",
             (unsigned long long)hlen, (unsigned long long)(8 + hlen / 2));
    expect_failure(g_img, (size_t)(8 + hlen / 2), 2, want);
    snprintf(want, sizeof want, "but the buffer has %zu", g_size - 4);
    expect_failure(g_img, g_size - 4, 2, "lenet5_create: <memory>: buffer is truncated: tensor '");
    expect_failure(g_img, g_size - 4, 2, want);
}

/* A header length that points past the end, or over the limit. */
static void test_header_length(void **state)
{
    (void)state;
    char want[256];
    if (!g_img) g_img = write_weights(g_path, NULL, NULL, &g_size);
    unsigned char *bad = malloc(g_size);
    assert_non_null(bad);
    memcpy(bad, g_img, g_size);
    for (int i = 0; i < 8; i++) bad[i] = (unsigned char)((uint64_t)g_size >> (8 * i));
    snprintf(want, sizeof want,
             "lenet5_create: <memory>: header length %zu (bytes 0-7) runs past the end of the buffer (%zu bytes): "
             "the buffer is truncated or not safetensors", g_size, g_size);
    expect_failure(bad, g_size, 2, want);
    memset(bad, 0xff, 8);
    expect_failure(bad, g_size, 2, "is over the 100 MB limit");
    free(bad);
}

/* A tensor with another shape, a tensor absent: named, as from a file. */
static void test_wrong_shape_and_missing(void **state)
{
    (void)state;
    size_t size;
    unsigned char *img = write_weights(g_path, NULL, "fc1.weight", &size);
    expect_failure(img, size, 2, "lenet5_create: <memory>: tensor 'fc1.weight' has shape [1, 48000], the model expects [120, 400]");
    free(img);
    img = write_weights(g_path, "conv2.weight", NULL, &size);  /* one only the constants read */
    expect_failure(img, size, 2, "lenet5_create: <memory>: tensor 'conv2.weight' is missing");
    free(img);
    img = write_weights(g_path, "fc3.bias", NULL, &size);
    expect_failure(img, size, 2, "lenet5_create: <memory>: tensor 'fc3.bias' is missing");
    void *m = NULL;  /* the file says the same of itself */
    assert_int_equal(g_rt.create(&m, g_path, NULL), 2);
    assert_non_null(strstr(g_rt.last_error(m), "lenet5.safetensors: tensor 'fc3.bias' is missing"));
    g_rt.destroy(m);
    free(img);
    free(g_img);
    g_img = write_weights(g_path, NULL, NULL, &g_size);
}

/* Nothing given, to a network that has parameters. */
static void test_nothing_given(void **state)
{
    (void)state;
    void *m = NULL;
    assert_int_equal(g_rt.create_from_memory(&m, NULL, 0, NULL), 1);
    assert_string_equal(g_rt.last_error(m), "lenet5_create_from_memory: the weights are NULL, but lenet5 has parameters");
    g_rt.destroy(m);
    assert_int_equal(g_rt.create_from_memory(&m, NULL, 100, NULL), 1);
    assert_string_equal(g_rt.last_error(m), "lenet5_create_from_memory: the weights are NULL, but lenet5 has parameters");
    g_rt.destroy(m);
    expect_failure((const unsigned char *)"", 0, 2,
                   "lenet5_create: <memory>: buffer is too short to be safetensors (0 bytes; it must start with an 8-byte header length)");
    assert_int_equal(g_rt.create_from_memory(NULL, g_img, g_size, NULL), 1);
}

/* The in-process JIT loads create_from_memory too; a network without
 * parameters takes NULL, 0 (as create takes a NULL path). */
static void test_jit_and_no_params(void **state)
{
    (void)state;
    static const char src[] = "network relu4 {\n    input x: [4]\n    output y = x |> relu\n}\n";
    nnc_model *nm = NULL;
    char *diag = NULL, *c = NULL, *h = NULL, *err = NULL, why[8192] = "";
    RtModel rt;
    assert_int_equal(nnc_compile_string("relu4.net", src, NULL, &nm, &diag), 0);
    assert_int_equal(nnc_emit_c(nm, 2, "relu4.h", &c, &h, &err), 0);
    if (rt_load(c, h, "relu4.h", "relu4", &rt, why, sizeof why) != 0) fail_msg("rt_load: %s", why);
    assert_non_null(rt.create_from_memory);
    void *m = NULL;
    const float x[4] = {-1, 2, -3, 4};
    float y[4] = {0};
    const float *in[1] = {x};
    float *out[1] = {y};
    assert_int_equal(rt.create_from_memory(&m, NULL, 0, NULL), 0);
    assert_int_equal(rt.forward_v(m, 1, in, out), 0);
    assert_true(y[0] == 0 && y[1] == 2 && y[2] == 0 && y[3] == 4);
    rt.destroy(m);
    rt_unload(&rt);
    free(c);
    free(h);
    nnc_model_free(nm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_equals_file),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_header_length),
        cmocka_unit_test(test_wrong_shape_and_missing),
        cmocka_unit_test(test_nothing_given),
        cmocka_unit_test(test_jit_and_no_params),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
