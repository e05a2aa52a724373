/* test_api_load.c: the public API's load side (include/nnc/nnc.h): weights
 * from a file and from memory give bit-identical outputs; the memory is not
 * kept; a bad buffer is refused with a message; every object is freed (the
 * sanitizer build checks for leaks). The weights are what `nnc init` writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "nnc/nnc.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The whole of a file (free it); its size in *n. */
static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    char *s = NULL;
    size_t cap = 0, k;
    *n = 0;
    do {
        if (*n + 4096 > cap) s = realloc(s, cap = 2 * cap + 4096);
        k = fread(s + *n, 1, 4096, f);
        *n += k;
    } while (k > 0);
    fclose(f);
    return s;
}

/* `nnc init` of net (a path; defines "--set ..." or "") into a temporary file, whose path it returns (free it). */
static char *init_weights(const char *net, const char *set)
{
    char *path = strdup("/tmp/nnc_test_api_load_XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) fail_msg("mkstemp");
    close(fd);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' init '%s' %s --seed 7 -o '%s'", NNC_EXE, net, set, path);
    if (system(cmd) != 0) fail_msg("%s failed", cmd);
    return path;
}

/* Runs n samples of m loaded both ways and compares the outputs bit for bit. */
static void same_outputs(const nnc_model *m, const char *weights, int n)
{
    size_t size;
    char *bytes = slurp(weights, &size);
    nnc_instance *a, *b;
    char *err;
    if (nnc_load(m, weights, n, &a, &err) != 0) fail_msg("%s", err);
    if (nnc_load_memory(m, bytes, size, n, &b, &err) != 0) fail_msg("%s", err);
    memset(bytes, 0xff, size);  /* the buffer is not kept */
    free(bytes);
    long long in_size = nnc_model_input_size(m, 0), out_size = nnc_model_output_size(m, 0);
    float *x = malloc(sizeof(float) * (size_t)(n * in_size));
    float *ya = malloc(sizeof(float) * (size_t)(n * out_size)), *yb = malloc(sizeof(float) * (size_t)(n * out_size));
    for (long long i = 0; i < n * in_size; i++) x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    const float *in[1] = {x};
    float *oa[1] = {ya}, *ob[1] = {yb};
    assert_int_equal(nnc_forward(a, n, in, oa), 0);
    assert_int_equal(nnc_forward(b, n, in, ob), 0);
    assert_memory_equal(ya, yb, sizeof(float) * (size_t)(n * out_size));
    bool nonzero = false;
    for (long long i = 0; i < n * out_size; i++) nonzero |= ya[i] != 0;
    assert_true(nonzero);
    free(x);
    free(ya);
    free(yb);
    nnc_instance_free(a);
    nnc_instance_free(b);
}

static void test_lenet5_file_and_memory(void **state)
{
    (void)state;
    char *w = init_weights(NNC_SOURCE_DIR "/models/lenet5.net", "");
    nnc_source src = {.path = NNC_SOURCE_DIR "/models/lenet5.net"};
    nnc_options opt = {.opt_level = 2, .max_batch = 4};
    nnc_model *m;
    assert_int_equal(nnc_compile(&src, &opt, &m, NULL), 0);
    same_outputs(m, w, 4);
    nnc_model_free(m);
    unlink(w);
    free(w);
}

/* A batchnorm folded into its convolution at -O2: the fold reads the
 * running statistics from memory as from the file. */
static void test_batchnorm_from_memory(void **state)
{
    (void)state;
    static const char net[] = "network t { input x: [3, 8, 8]\n"
                              "  output y = x |> conv(4, 3, pad: 1) as c |> batchnorm as bn |> relu |> flatten }\n";
    char path[] = "/tmp/nnc_test_api_net_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, net, sizeof net - 1) != (ssize_t)(sizeof net - 1)) fail_msg("cannot write %s", path);
    close(fd);
    char *w = init_weights(path, "");
    nnc_source src = {.path = "t.net", .text = net};
    nnc_model *m;
    assert_int_equal(nnc_compile(&src, NULL, &m, NULL), 0);
    assert_int_equal(nnc_model_params(m), 6);  /* c.weight, c.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var */
    same_outputs(m, w, 3);

    /* a truncated buffer, and one that is no safetensors file, are refused with a message */
    size_t size;
    char *bytes = slurp(w, &size);
    nnc_instance *inst = (nnc_instance *)1;
    char *err = NULL;
    assert_int_equal(nnc_load_memory(m, bytes, size / 2, 1, &inst, &err), -1);
    assert_null(inst);
    assert_non_null(err);
    if (!strstr(err, "<memory>")) fail_msg("the message does not name <memory>: %s", err);
    free(err);
    assert_int_equal(nnc_load_memory(m, "not a safetensors file", 22, 1, &inst, &err), -1);
    if (!strstr(err, "<memory>")) fail_msg("the message does not name <memory>: %s", err);
    free(err);
    free(bytes);
    nnc_model_free(m);
    unlink(w);
    free(w);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lenet5_file_and_memory),
        cmocka_unit_test(test_batchnorm_from_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
