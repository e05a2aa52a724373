/* test_codegen.c: the C backend's emission. The network's C prefix, the
 * kernel library's section selection, refused options, the header (sizes,
 * documentation, the static memory plan), and the generated .c compiling
 * without a warning under gcc and clang with the strict flags users will use
 * (-std=c99 -Wall -Wextra -Werror -pedantic, with and without NNC_USE_CBLAS)
 * for every test network of codegen_fixture.c. Running the generated code:
 * test_codegen_run.c; after the fusion passes: test_codegen_fusions.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/unit/codegen_fixture.h"

#include <stdlib.h>
#include <string.h>

/* The network's C prefix (cnames.h): sanitized and lowercased; "net_" in
 * front of what would not start an identifier or would enter nnc_. Keywords
 * and library names stay: P never stands alone (P_model, P_create). */
static void test_prefix(void **state)
{
    (void)state;
    Arena a = {0};
    assert_string_equal(cg_c_prefix(&a, "ResNet-18"), "resnet_18");
    assert_string_equal(cg_c_prefix(&a, "int"), "int");
    assert_string_equal(cg_c_prefix(&a, "3d"), "net_3d");
    assert_string_equal(cg_c_prefix(&a, "_x"), "net__x");
    assert_string_equal(cg_c_prefix(&a, "lenet5"), "lenet5");
    assert_string_equal(cg_c_prefix(&a, "nnc"), "net_nnc");
    assert_string_equal(cg_c_prefix(&a, "NNC_st"), "net_nnc_st");
    assert_string_equal(cg_c_prefix(&a, "nncnet"), "nncnet");
    char longname[600];  /* never truncated */
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_string_equal(cg_c_prefix(&a, longname), longname);
    arena_free(&a);
}

static void test_snippet_select(void **state)
{
    (void)state;
    const char *text = "preamble, left out\n"
                       "/* @kernel prologue */\nP\n"
                       "/* @kernel a */\nA\n"
                       "/* @kernel b needs: a */\nB\n"
                       "/* @kernel c needs: b */\nC\n"
                       "/* @kernel d */\nD";
    const char *want[] = {"c"};
    StrBuf out = {0};
    char err[256] = "";
    assert_true(cg_snippet_select(text, strlen(text), want, 1, &out, err, sizeof err));
    assert_string_equal(out.data, "/* @kernel prologue */\nP\n/* @kernel a */\nA\n"
                                  "/* @kernel b needs: a */\nB\n/* @kernel c needs: b */\nC\n");
    sb_free(&out);
    const char *none[] = {"zz"};
    assert_false(cg_snippet_select(text, strlen(text), none, 1, &out, err, sizeof err));
    assert_non_null(strstr(err, "zz"));
    const char *bad = "/* @kernel prologue */\n/* @kernel x needs: y */\n";
    const char *x[] = {"x"};
    assert_false(cg_snippet_select(bad, strlen(bad), x, 1, &out, err, sizeof err));
    assert_non_null(strstr(err, "'y'"));
    sb_free(&out);
}

static void test_refuses_bad_options(void **state)
{
    (void)state;
    Net *net = cnn_net();
    StrBuf c = {0}, h = {0};
    char err[256] = "";
    CgOptions opt = {.max_batch = 0, .header_name = "cnn.h"};
    assert_false(cg_emit_c(net->g, &opt, &c, &h, err, sizeof err));
    assert_non_null(strstr(err, "batch"));
    sb_free(&c);
    sb_free(&h);
    net_free(net);
}

/* (c) the header carries the sizes and documents every parameter and the entry points. */
static void test_header_documents(void **state)
{
    (void)state;
    Net *net = cnn_net();
    Emitted e;
    emit(net, 64, &e);
    const char *h = e.h.data;
    assert_non_null(strstr(h, "#define CNN_MAX_BATCH"));
    assert_non_null(strstr(h, "#define CNN_WORKSPACE_BYTES"));
    assert_non_null(strstr(h, "#define CNN_PARAM_FLOATS"));
    assert_non_null(strstr(h, "int cnn_forward(cnn_model *m, int n, const float *in_image, float *out_logits);"));
    assert_non_null(strstr(h, "int cnn_create(cnn_model **m, const char *weights_safetensors, void *workspace);"));
    assert_non_null(strstr(h, "#define CNN_IN_IMAGE_FLOATS"));
    assert_non_null(strstr(h, "const float[n][3][10][10]"));
    for (int32_t p = 0; p < net->g->n_params; p++) {
        assert_non_null(strstr(h, net->g->values[net->g->params[p]].name));
        assert_non_null(strstr(e.c.data, net->g->values[net->g->params[p]].name));
    }
    /* the kernels a CNN does not call are left out; the DSL is pointed at */
    assert_null(strstr(e.c.data, "nnc_lrn"));
    assert_null(strstr(e.c.data, "nnc_conv_transpose2d"));
    assert_non_null(strstr(e.c.data, "/* conv2d features.conv0 @ test.net:1:5 */"));
    /* the static plan: conv's output A and bn's output B (8x10x10 floats at 64
     * samples, 204800 bytes each) are live together while bn runs; relu writes
     * over B, flatten over the pool's output; the conv's im2col scratch (27x100
     * floats of one sample) lives only during the conv, beside A, and the linear
     * writes into the caller's logits. The peak, and the plan, is A + B. */
    assert_int_equal(strtol(strstr(h, "CNN_WORKSPACE_BYTES") + strlen("CNN_WORKSPACE_BYTES"), NULL, 10), 409600);
    emitted_free(&e);
    net_free(net);
}

static void test_compiles_cleanly(void **state)
{
    (void)state;
    for (size_t i = 0; i < NNC_COUNT(all_nets); i++) {
        Net *net = all_nets[i]();
        assert_compiles_cleanly(net);
        net_free(net);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefix),
        cmocka_unit_test(test_snippet_select),
        cmocka_unit_test(test_refuses_bad_options),
        cmocka_unit_test(test_header_documents),
        cmocka_unit_test(test_compiles_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
