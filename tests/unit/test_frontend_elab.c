/* test_frontend_elab.c: the elaborator.
 *
 * Elaboration tests compile small programs with fe_compile_text
 * (frontend_test.h) and look at the graph: shapes, op kinds, parameter names.
 * Every graph that compiles is also run through ir_verify. Expected shapes of
 * convolutions and poolings were computed with PyTorch (torch.nn.Conv2d,
 * ConvTranspose2d, MaxPool2d, AvgPool2d) on the same arguments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend_test.h"

/* ---- elaboration ---- */

static void test_block_defaults_and_keywords(void **state)
{
    (void)state;
    const char *blk = "block cb(x, c, k = 3, stride = 1, pad = 0) { return x |> conv(c, k, stride: stride, pad: pad) }\n";
    char src[1024];
    struct { const char *call; int c, h, w; } cases[] = {
        {"cb(x, 8)", 8, 14, 14},
        {"cb(x, 8, 5)", 8, 12, 12},
        {"cb(x, 8, stride: 2)", 8, 7, 7},
        {"cb(x, c: 4, k: 1, pad: 1)", 4, 18, 18},
        {"x |> cb(6, pad: 1, stride: 2)", 6, 8, 8},
    };
    for (size_t i = 0; i < NNC_COUNT(cases); i++) {
        snprintf(src, sizeof src, "%snetwork t { input x: [3, 16, 16] output y = %s }\n", blk, cases[i].call);
        IrGraph *g = compile_ok(src);
        char want[64];
        snprintf(want, sizeof want, "[%d, %d, %d]", cases[i].c, cases[i].h, cases[i].w);
        assert_shape(output_shape(g, 0), want);
        ir_free(g);
    }
    snprintf(src, sizeof src, "%snetwork t { input x: [3, 16, 16] output y = cb(x) }\n", blk);
    char *err = compile_fail(src);
    assert_contains(err, "block 'cb' needs the argument 'c'");
    free(err);
    snprintf(src, sizeof src, "%snetwork t { input x: [3, 16, 16] output y = cb(x, 8, strides: 2) }\n", blk);
    err = compile_fail(src);
    assert_contains(err, "block 'cb' has no parameter 'strides'; did you mean 'stride'?");
    free(err);
}

static void test_functions_as_values(void **state)
{
    (void)state;
    IrGraph *g = compile_ok("block unit(x, act = relu) { return x |> conv(4, 1) |> act }\n"
                            "network t {\n"
                            "    input x: [3, 8, 8]\n"
                            "    act = sigmoid\n"
                            "    a = x |> unit\n"
                            "    b = x |> unit(act: act)\n"
                            "    c = x |> unit(act: tanh)\n"
                            "    f = unit\n"
                            "    d = f(x, identity)\n"
                            "    output y = concat(a, b, c, d)\n"
                            "}\n");
    assert_int_equal(count_ops(g, OP_RELU), 1);
    assert_int_equal(count_ops(g, OP_SIGMOID), 1);
    assert_int_equal(count_ops(g, OP_TANH), 1);
    assert_int_equal(count_ops(g, OP_IDENTITY), 1);
    assert_shape(output_shape(g, 0), "[16, 8, 8]");
    ir_free(g);
}

static void test_conditions(void **state)
{
    (void)state;
    const char *tmpl = "network t(k = %d) {\n"
                       "    input x: [1]\n"
                       "    if k < 0 { w = 1 } else if k == 0 { w = 2 } else if k < 10 { w = 3 } else { w = 4 }\n"
                       "    output y = x |> linear(w)\n"
                       "}\n";
    int ks[] = {-5, 0, 7, 10}, want[] = {1, 2, 3, 4};
    for (int i = 0; i < 4; i++) {
        char src[512];
        snprintf(src, sizeof src, tmpl, ks[i]);
        IrGraph *g = compile_ok(src);
        assert_int_equal(output_shape(g, 0)->dim[0], want[i]);
        ir_free(g);
    }
    /* short circuit: the right side is not evaluated */
    assert_false(eval_bool("", "false and undefined_name"));
    assert_true(eval_bool("", "true or 1 / 0 == 1"));
}

static void test_loops(void **state)
{
    (void)state;
    IrGraph *g = compile_ok("network t {\n"
                            "    input x: [3, 32, 32]\n"
                            "    for c, s in [(8, 1), (16, 2), (32, 2)] { x = x |> conv(c, 3, stride: s, pad: 1) }\n"
                            "    repeat 3 { x = relu(x) }\n"
                            "    repeat 0 { x = sigmoid(x) }\n"
                            "    n = 0\n"
                            "    for i in range(4) { n = n + i }\n"        /* 0+1+2+3 */
                            "    for i in range(1, 7, 2) { n = n + i }\n"  /* 1+3+5 */
                            "    for i in range(3, 0, -1) { n = n + i }\n" /* 3+2+1 */
                            "    for i in (1, 2) { n = n + i }\n"          /* tuples walk too */
                            "    for i in [] { n = n + 100 }\n"
                            "    output y = x |> flatten |> linear(n + len(range(5)))\n"
                            "}\n");
    assert_int_equal(count_ops(g, OP_CONV2D), 3);
    assert_int_equal(count_ops(g, OP_RELU), 3);
    assert_int_equal(count_ops(g, OP_SIGMOID), 0);
    assert_shape(&g->values[g->nodes[2].out].shape, "[32, 8, 8]");
    assert_shape(output_shape(g, 0), "[29]");  /* 6 + 9 + 6 + 3 + len(range(5)) */
    ir_free(g);
}

static void test_shape_queries(void **state)
{
    (void)state;
    IrGraph *g = compile_ok("network t {\n"
                            "    input x: [3, 10, 12]\n"
                            "    v = flatten(x)\n"
                            "    s = x.shape\n"
                            "    for a, b, c in [s] { n = a * 10000 + b * 100 + c }\n"
                            "    output y = v |> linear(n + x.channels + x.height + x.width + v.features)\n"
                            "}\n");
    assert_int_equal(output_shape(g, 0)->dim[0], 31012 + 3 + 10 + 12 + 360);
    ir_free(g);
}

static void test_integer_arithmetic(void **state)
{
    (void)state;
    assert_int_equal(eval_int("", "7 / 2"), 3);
    assert_int_equal(eval_int("", "-7 / 2"), -4);
    assert_int_equal(eval_int("", "7 / -2"), -4);
    assert_int_equal(eval_int("", "-7 / -2"), 3);
    assert_int_equal(eval_int("", "6 / 3"), 2);
    assert_int_equal(eval_int("", "7 % 3"), 1);
    assert_int_equal(eval_int("", "-7 % 3"), 2);
    assert_int_equal(eval_int("", "7 % -3"), -2);
    assert_int_equal(eval_int("", "min(3, 5) + max(3, 5)"), 8);
    assert_true(eval_bool("", "7.0 / 2 == 3.5"));
    assert_true(eval_bool("", "-7.5 % 2 == 0.5"));
    assert_true(eval_bool("", "1 < 1.5"));
    char *err = compile_fail("network t { input x: [1] k = 9007199254740992 * 9007199254740992 output y = relu(x) }");
    assert_contains(err, "integer overflow");
    free(err);
    err = compile_fail("network t { input x: [1] k = 1 / 0 output y = relu(x) }");
    assert_contains(err, "division by zero");
    free(err);
}

static void test_parameter_names(void **state)
{
    (void)state;
    const char *src =
        "block basic(x, c, stride = 1) {\n"
        "    y = x |> conv(c, 3, stride: stride, pad: 1, bias: false) |> batchnorm |> relu\n"
        "    y = y |> conv(c, 3, pad: 1, bias: false) |> batchnorm\n"
        "    if stride != 1 or x.channels != c { x = x |> conv(c, 1, stride: stride, bias: false) as down }\n"
        "    return relu(x + y)\n"
        "}\n"
        "block stage(x, c) { return x |> basic(c, 2) |> basic(c) }\n"
        "network t {\n"
        "    input image: [3, 32, 32]\n"
        "    x = image |> conv(16, 3, pad: 1) |> conv(16, 3, pad: 1)\n"
        "    for c, s in [(16, 1), (32, 2)] { x = x |> basic(c, s) }\n"
        "    x = x |> stage(64) as layer3\n"
        "    output logits = x |> global_avgpool |> flatten |> linear(10) as fc\n"
        "}\n";
    IrGraph *g = compile_ok(src);
    const char *present[] = {
        "conv0.weight", "conv0.bias", "conv1.weight", "conv1.bias",
        "basic0.conv0.weight", "basic0.batchnorm0.weight", "basic0.batchnorm0.running_var",
        "basic0.conv1.weight", "basic0.batchnorm1.bias",
        "basic1.conv0.weight", "basic1.conv1.weight", "basic1.down.weight",
        "layer3.basic0.conv0.weight", "layer3.basic0.down.weight", "layer3.basic1.conv1.weight",
        "fc.weight", "fc.bias",
    };
    for (size_t i = 0; i < NNC_COUNT(present); i++)
        if (!find_param(g, present[i])) fail_msg("no parameter '%s'", present[i]);
    const char *absent[] = {"basic0.down.weight", "basic0.conv0.bias", "layer3.basic1.down.weight", "linear0.weight"};
    for (size_t i = 0; i < NNC_COUNT(absent); i++)
        if (find_param(g, absent[i])) fail_msg("unexpected parameter '%s'", absent[i]);
    assert_shape(&find_param(g, "basic1.down.weight")->shape, "[32, 16, 1, 1]");
    assert_int_equal(find_param(g, "fc.weight")->shape.dim[1], 64);
    /* the same text gives the same names, in the same order */
    IrGraph *g2 = compile_ok(src);
    assert_int_equal(g->n_params, g2->n_params);
    for (int32_t i = 0; i < g->n_params; i++)
        assert_string_equal(g->values[g->params[i]].name, g2->values[g2->params[i]].name);
    ir_free(g2);
    ir_free(g);
    /* names from loop iterations count on; an 'as' name repeated by a loop collides */
    g = compile_ok("network t { input x: [4] repeat 3 { x = x |> linear(4) } output y = x }");
    assert_non_null(find_param(g, "linear2.weight"));
    ir_free(g);
    char *err = compile_fail("network t { input x: [4] repeat 2 { x = x |> linear(4) as fc } output y = x }");
    assert_contains(err, "the layer name 'fc' is used twice");
    free(err);
    /* LeNet-5 from the model zoo: names as the PyTorch module has them */
    Arena a = {0};
    Diag d;
    diag_init(&d, &a);
    g = fe_compile(NNC_SOURCE_DIR "/models/lenet5.net", NULL, &d);
    assert_non_null(g);
    verify_or_fail(g);
    const char *lenet[] = {"conv1.weight", "conv1.bias", "conv2.weight", "fc1.weight", "fc2.bias", "fc3.weight"};
    for (size_t i = 0; i < NNC_COUNT(lenet); i++) assert_non_null(find_param(g, lenet[i]));
    assert_shape(&find_param(g, "fc1.weight")->shape, "[120, 400]");
    assert_shape(output_shape(g, 0), "[10]");
    ir_free(g);
    diag_free(&d);
    arena_free(&a);
}

/* `as` paths: dotted, numeric and computed segments, as torchvision's state_dict keys need. */
static void test_as_paths(void **state)
{
    (void)state;
    const char *src =
        "block bneck(x, c, stride) {\n"
        "    y = x |> conv(c, 3, stride: stride, pad: 1, bias: false) as conv1 |> batchnorm as bn1 |> relu\n"
        "    if stride != 1 or x.channels != c { x = x |> conv(c, 1, stride: stride, bias: false) as downsample.0 |> batchnorm as downsample.1 }\n"
        "    return relu(x + y)\n"
        "}\n"
        "network t {\n"
        "    input image: [3, 16, 16]\n"
        "    x = image\n"
        "    for k, c in [(1, 8), (2, 16)] {\n"
        "        for i in range(2) { x = x |> bneck(c, if_first(i, k)) as (\"layer\" + str(k)).(i) }\n"
        "    }\n"
        "    x = x |> adaptive_avgpool((3, 2)) |> flatten\n"
        "    for v in [4, \"M\"] { if v == \"M\" { x = x } }\n"
        "    output y = x |> dropout |> linear(10) as classifier.1\n"
        "}\n"
        "block if_first(i, k) { if i == 0 { return k } return 1 }\n";
    IrGraph *g = compile_ok(src);
    const char *present[] = {"layer1.0.conv1.weight", "layer1.1.bn1.running_var", "layer2.0.downsample.0.weight",
                             "layer2.0.downsample.1.bias", "layer2.1.conv1.weight", "classifier.1.weight"};
    for (size_t i = 0; i < NNC_COUNT(present); i++)
        if (!find_param(g, present[i])) fail_msg("no parameter '%s'", present[i]);
    assert_non_null(find_param(g, "layer1.0.downsample.0.weight"));
    assert_null(find_param(g, "layer1.1.downsample.0.weight"));
    assert_shape(&find_param(g, "classifier.1.weight")->shape, "[10, 96]");
    /* buffers are not learnable parameters: 2x(8*3*9 + 16) + ... counted as PyTorch does */
    assert_true(find_param(g, "layer1.0.bn1.running_mean")->buffer);
    assert_false(find_param(g, "layer1.0.bn1.weight")->buffer);
    int64_t learn = 0;
    for (int32_t i = 0; i < g->n_params; i++)
        if (!g->values[g->params[i]].buffer) learn += ir_shape_elems(&g->values[g->params[i]].shape);
    assert_int_equal(ir_count_params(g), learn);
    ir_free(g);
    char *err = compile_fail("network t { input x: [4] output y = x |> linear(4) as (1.5) }");
    assert_contains(err, "a computed layer name must be an integer >= 0 or a string");
    free(err);
    err = compile_fail("network t { input x: [4] output y = x |> linear(4) as (\"a.b\") }");
    assert_contains(err, "a computed layer name");
    free(err);
}

/* xs[i] on lists and tuples, and `as _`: a block call that keeps the caller's names. */
static void test_index_and_transparent_calls(void **state)
{
    (void)state;
    IrGraph *g = compile_ok(
        "block stem(x) { return x |> conv(4, 3, pad: 1, bias: false) as conv1 |> batchnorm as bn1 |> relu }\n"
        "block head(x, classes) { return x |> global_avgpool |> flatten |> linear(classes) as fc }\n"
        "network t {\n"
        "    input image: [3, 8, 8]\n"
        "    cfg = [(1, 4), (2, 8)]\n"
        "    x = image |> stem as _\n"
        "    x = x |> conv(cfg[-1][1], 3) as (\"layer\" + str(cfg[1][0]))\n"
        "    output logits = x |> head(10) as _\n"
        "}\n");
    const char *present[] = {"conv1.weight", "bn1.running_var", "layer2.weight", "fc.weight"};
    for (size_t i = 0; i < NNC_COUNT(present); i++)
        if (!find_param(g, present[i])) fail_msg("no parameter '%s'", present[i]);
    assert_shape(&find_param(g, "layer2.weight")->shape, "[8, 4, 3, 3]");
    assert_null(find_param(g, "stem0.conv1.weight"));
    ir_free(g);
    char *err = compile_fail("network t { input x: [4] xs = (1, 2) output y = x |> linear(xs[-3]) }");
    assert_contains(err, "index -3 is out of range for 2 elements");
    free(err);
}

/* Shapes computed by PyTorch for the same layer on the same input. */
static void test_shape_inference(void **state)
{
    (void)state;
    struct { const char *layer; int64_t in[3]; int64_t out[3]; } cases[] = {
        {"conv(16, 3)", {3, 32, 32}, {16, 30, 30}},
        {"conv(16, 3, stride: 2, pad: 1)", {3, 32, 32}, {16, 16, 16}},
        {"conv(8, 3, dilation: 2)", {3, 32, 32}, {8, 28, 28}},
        {"conv(8, (3, 5), stride: (1, 2), pad: (1, 0))", {3, 17, 17}, {8, 17, 7}},
        {"conv(12, 3, groups: 3, pad: 2, dilation: 2, stride: 3)", {6, 20, 23}, {12, 7, 8}},
        {"conv_transpose(8, 4, stride: 2, pad: 1)", {16, 8, 8}, {8, 16, 16}},
        {"conv_transpose(8, 3, stride: 2, pad: 1, output_pad: 1)", {16, 8, 8}, {8, 16, 16}},
        {"conv_transpose(4, 3, stride: 3, dilation: 2, groups: 2)", {16, 5, 7}, {4, 17, 23}},
        {"maxpool(2)", {3, 7, 7}, {3, 3, 3}},
        {"maxpool(2, ceil: true)", {3, 7, 7}, {3, 4, 4}},
        /* ceil mode drops a last window that would start in the right padding */
        {"maxpool(2, stride: 2, pad: 1, ceil: true)", {3, 5, 5}, {3, 3, 3}},
        {"maxpool(3, stride: 2, ceil: true)", {3, 6, 6}, {3, 3, 3}},
        {"maxpool(3, stride: 2, pad: 1)", {3, 112, 112}, {3, 56, 56}},
        {"maxpool(3, stride: 2, pad: 1, dilation: 2)", {3, 11, 11}, {3, 5, 5}},
        {"avgpool(3, stride: 2)", {3, 7, 7}, {3, 3, 3}},
        {"avgpool(2, stride: 3, pad: 1, ceil: true)", {3, 8, 8}, {3, 3, 3}},
        {"global_avgpool", {5, 7, 9}, {5, 1, 1}},
        {"batchnorm", {5, 7, 9}, {5, 7, 9}},
        {"lrn(5)", {5, 7, 9}, {5, 7, 9}},
        {"leaky_relu(slope: 0.2)", {5, 7, 9}, {5, 7, 9}},
        {"dropout(0.1)", {5, 7, 9}, {5, 7, 9}},
        {"softmax", {5, 7, 9}, {5, 7, 9}},
    };
    for (size_t i = 0; i < NNC_COUNT(cases); i++) {
        char src[512];
        snprintf(src, sizeof src, "network t { input x: [%lld, %lld, %lld] output y = x |> %s }",
                 (long long)cases[i].in[0], (long long)cases[i].in[1], (long long)cases[i].in[2], cases[i].layer);
        IrGraph *g = compile_ok(src);
        const IrShape *s = output_shape(g, 0);
        if (s->rank != 3 || s->dim[0] != cases[i].out[0] || s->dim[1] != cases[i].out[1] || s->dim[2] != cases[i].out[2]) {
            char buf[96];
            fail_msg("%s on [%lld, %lld, %lld] gave %s, PyTorch gives [%lld, %lld, %lld]", cases[i].layer,
                     (long long)cases[i].in[0], (long long)cases[i].in[1], (long long)cases[i].in[2],
                     ir_shape_str(s, buf, sizeof buf), (long long)cases[i].out[0], (long long)cases[i].out[1],
                     (long long)cases[i].out[2]);
        }
        ir_free(g);
    }
    /* weights of grouped and transposed convolutions, as PyTorch lays them out */
    IrGraph *g = compile_ok("network t { input x: [6, 8, 8] a = x |> conv(12, 3, groups: 3)\n"
                            "  b = x |> conv_transpose(4, 3, groups: 2, bias: false) output y = a output z = b }");
    assert_shape(&find_param(g, "conv0.weight")->shape, "[12, 2, 3, 3]");
    assert_shape(&find_param(g, "conv_transpose0.weight")->shape, "[6, 2, 3, 3]");
    assert_null(find_param(g, "conv_transpose0.bias"));
    ir_free(g);
    /* flatten, linear, concat */
    g = compile_ok("network t {\n"
                   "    input x: [5, 7, 9]\n"
                   "    input v: [20]\n"
                   "    a = x |> conv(3, 1)\n"
                   "    output c = concat(x, a, x)\n"
                   "    output f = flatten(x)\n"
                   "    output l = x |> flatten |> linear(11)\n"
                   "    output w = v |> linear(7, bias: false) |> batchnorm\n"
                   "    output g = x |> global_avgpool |> flatten\n"
                   "}\n");
    assert_shape(output_shape(g, 0), "[13, 7, 9]");
    assert_shape(output_shape(g, 1), "[315]");
    assert_shape(output_shape(g, 2), "[11]");
    assert_shape(&find_param(g, "linear0.weight")->shape, "[11, 315]");
    assert_shape(output_shape(g, 3), "[7]");
    assert_null(find_param(g, "linear1.bias"));
    assert_shape(output_shape(g, 4), "[5]");
    ir_free(g);
}

/* The built-ins come from the op table: every op with a DSL name is a
 * built-in (a block may not take its name), and every activation of
 * runtime/snippets/activations.h is one, taking `slope` (default 0.01) when its
 * row has one, with no list of them in the frontend. */
static void test_builtins_from_op_table(void **state)
{
    (void)state;
    int acts = 0;
    for (int op = 0; op < OP_COUNT; op++) {
        const char *dsl = ir_ops[op].dsl;
        char src[512];
        if (!dsl) continue;
        snprintf(src, sizeof src, "block %s(x) { return x }\nnetwork t { input x: [4] output y = x }\n", dsl);
        char *out = compile_fail(src);
        char want[128];
        snprintf(want, sizeof want, "'%s' is a built-in operation", dsl);
        assert_contains(out, want);
        free(out);
        if (ir_ops[op].act == ACT_NONE) continue;
        acts++;
        bool slope = ir_act_has_slope(ir_ops[op].act);
        snprintf(src, sizeof src, "block b(x) { return x |> %s }\nnetwork t { input x: [2, 3, 3] output y = x |> %s%s "
                 "output z = x |> b }\n", dsl, dsl, slope ? "(slope: 0.25)" : "");
        IrGraph *g = compile_ok(src);
        assert_int_equal(count_ops(g, (OpKind)op), 2);
        assert_int_equal(g->n_nodes, 2);
        assert_shape(output_shape(g, 0), "[2, 3, 3]");
        for (int32_t i = 0; i < g->n_nodes; i++) {
            const IrNode *n = &g->nodes[i];
            if (slope) assert_true(n->attr.act.slope == (i == 0 ? 0.25f : 0.01f));
            if (i == 1) assert_string_equal(n->scope, "b0");  /* made inside block b */
        }
        ir_free(g);
        if (!slope) {
            snprintf(src, sizeof src, "network t { input x: [4] output y = x |> %s(slope: 0.5) }\n", dsl);
            out = compile_fail(src);
            snprintf(want, sizeof want, "%s has no parameter 'slope'; its only parameter is x", dsl);
            assert_contains(out, want);
            free(out);
        }
    }
    assert_int_equal(acts, ACT_COUNT - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block_defaults_and_keywords),
        cmocka_unit_test(test_functions_as_values),
        cmocka_unit_test(test_conditions),
        cmocka_unit_test(test_loops),
        cmocka_unit_test(test_shape_queries),
        cmocka_unit_test(test_integer_arithmetic),
        cmocka_unit_test(test_parameter_names),
        cmocka_unit_test(test_as_paths),
        cmocka_unit_test(test_index_and_transparent_calls),
        cmocka_unit_test(test_shape_inference),
        cmocka_unit_test(test_builtins_from_op_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
