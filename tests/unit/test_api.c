/* test_api.c: the public API (include/nnc/nnc.h), as an embedding program uses it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "nnc/nnc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void test_compile_errors_are_positioned(void **state)
{
    (void)state;
    nnc_model *m = (nnc_model *)1;
    char *diag = NULL;
    assert_int_equal(nnc_compile_string("bad.net", "network t { input x: [4] output y = x |> relu( }", NULL, &m, &diag), -1);
    assert_null(m);
    assert_non_null(diag);
    assert_true(strncmp(diag, "bad.net:1:", 10) == 0);
    assert_non_null(strstr(diag, "error: "));
    free(diag);
    assert_int_equal(nnc_compile_file(NNC_SOURCE_DIR "/no/such.net", NULL, &m, &diag), -1);
    assert_non_null(strstr(diag, "cannot read"));
    free(diag);
}

static void test_model_queries_and_emitters(void **state)
{
    (void)state;
    nnc_model *m;
    char *diag, *ir, *c, *h, *err;
    assert_int_equal(nnc_compile_file(NNC_SOURCE_DIR "/models/lenet5.net", NULL, &m, &diag), 0);
    assert_string_equal(nnc_model_name(m), "lenet5");
    assert_int_equal(nnc_model_inputs(m), 1);
    assert_int_equal(nnc_model_outputs(m), 1);
    assert_string_equal(nnc_model_input_name(m, 0), "image");
    assert_string_equal(nnc_model_output_name(m, 0), "logits");
    assert_int_equal(nnc_model_input_size(m, 0), 784);
    assert_int_equal(nnc_model_output_size(m, 0), 10);
    assert_null(nnc_model_input_name(m, 1));
    assert_int_equal(nnc_emit_ir(m, &ir), 0);
    assert_non_null(strstr(ir, "conv1.weight [6, 1, 5, 5]"));
    free(ir);
    assert_int_equal(nnc_emit_c(m, 16, "lenet5.h", &c, &h, &err), 0);
    assert_non_null(strstr(h, "#define LENET5_MAX_BATCH          16"));
    assert_non_null(strstr(c, "#include \"lenet5.h\""));
    free(c);
    free(h);
    /* loading needs the weights: a missing file is an error with the path */
    nnc_instance *inst;
    assert_int_equal(nnc_load(m, "/no/such/weights.safetensors", 4, &inst, &err), -1);
    assert_non_null(strstr(err, "/no/such/weights.safetensors"));
    free(err);
    nnc_model_free(m);
}

/* A network with no parameters compiles, loads and runs in process. */
static void test_load_and_forward(void **state)
{
    (void)state;
    const char *defines[] = {"k=3"};
    nnc_options opt = {.opt_level = 2, .defines = defines, .n_defines = 1};
    nnc_model *m;
    char *diag, *err;
    assert_int_equal(nnc_compile_string("t.net", "network t(k = 2) { input x: [2, 4, 4]\n"
                                        "  output y = x |> maxpool(k, stride: 1) |> flatten |> softmax }",
                                        &opt, &m, &diag), 0);
    assert_int_equal(nnc_model_output_size(m, 0), 2 * 2 * 2);
    nnc_instance *inst;
    if (nnc_load(m, NULL, 3, &inst, &err) != 0) fail_msg("%s", err);
    float x[3 * 32], y[3 * 8];
    for (int i = 0; i < 3 * 32; i++) x[i] = (float)((i * 7) % 11);
    const float *in[1] = {x};
    float *out[1] = {y};
    assert_int_equal(nnc_forward(inst, 3, in, out), 0);
    for (int s = 0; s < 3; s++) {
        double sum = 0;
        for (int i = 0; i < 8; i++) sum += y[s * 8 + i];
        assert_true(fabs(sum - 1.0) < 1e-5);  /* a softmax over the 8 features */
    }
    assert_int_equal(nnc_forward(inst, 4, in, out), -1);  /* over the maximum batch */
    assert_non_null(strstr(nnc_instance_error(inst), "n = 4"));
    nnc_instance_free(inst);
    nnc_model_free(m);
    assert_string_equal(nnc_version(), "0.1.0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compile_errors_are_positioned),
        cmocka_unit_test(test_model_queries_and_emitters),
        cmocka_unit_test(test_load_and_forward),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
