/* test_codegen_fusions.c: the generated C after the fusion passes computes
 * what it computed before: batchnorm folding (passes/fold_bn.c, the folded
 * weights computed once at create by the prepare step) and epilogue fusion
 * (passes/fuse_epilogue.c, activations and residual adds inside conv and
 * linear), each compared with the unfused code on the same weights file and
 * compiled under gcc and clang with -Werror -pedantic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/unit/codegen_fixture.h"
#include "passes/fold_bn.h"
#include "passes/fuse_epilogue.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* conv -> bn -> relu, grouped conv_transpose (no bias) -> bn, linear -> bn: every
 * kind of fold of passes/fold_bn.c. */
static Net *fold_net(void)
{
    Net *net = net_new("folded");
    int32_t x = net_input(net, "image", 3, 4, 6, 6);
    x = net_unary(net, OP_RELU, net_bn(net, net_conv(net, x, "conv1", 6, 3, 1, 1, 2, true, false, 0), "bn1"));
    x = net_unary(net, OP_RELU, net_bn(net, net_conv(net, x, "up", 4, 3, 2, 1, 2, false, true, 1), "bn2"));
    x = net_unary(net, OP_FLATTEN, net_unary(net, OP_GLOBAL_AVGPOOL, x));
    ir_add_output(net->g, "logits", net_bn(net, net_linear(net, x, "fc", 5), "bn3"));
    return net;
}

/* Runs forward_v on n samples of in (one input, one output of out_floats per sample). */
static float *forward_once(Loaded *l, int n, const float *in, int64_t out_floats)
{
    float *out = calloc((size_t)(n * out_floats), sizeof(float));
    const float *ins[1] = {in};
    if (l->rt.forward_v(l->m, n, ins, &out) != 0) fail_msg("forward: %s", l->rt.last_error(l->m));
    return out;
}

/* Compiles and loads l's emitted code and creates an instance on weights. */
static void load_emitted(Loaded *l, const char *weights)
{
    char err[4096] = "";
    if (rt_cc_load(l->e.c.data, l->e.h.data, l->e.header, l->e.prefix, &l->rt, err, sizeof err) != 0)
        fail_msg("rt_cc_load: %s", err);
    if (l->rt.create(&l->m, weights, NULL) != 0) fail_msg("create: %s", l->rt.last_error(l->m));
}

/* got equals want within 1e-5 of want's largest magnitude (per-element relative
 * error is fragile near zero). */
static void assert_close_normalized(const float *got, const float *want, int64_t count, const char *what)
{
    double peak = 0;
    for (int64_t i = 0; i < count; i++) peak = fabs(want[i]) > peak ? fabs(want[i]) : peak;
    for (int64_t i = 0; i < count; i++)
        if (fabs((double)got[i] - want[i]) > 1e-5 * peak)
            fail_msg("%s output [%lld] = %.9g, expected %.9g (largest %g)", what, (long long)i, (double)got[i],
                     (double)want[i], peak);
}

/* Batchnorm folding changes the forward pass, not its numbers: the generated
 * code of the graph after pass_fold_bn, with the same weights file, gives the
 * outputs of the graph before, within 1e-5 of the largest output; the folded
 * weights are computed once, at create, by the prepare step. */
static void test_fold_bn_numerics(void **state)
{
    (void)state;
    char err[256] = "", path[256];
    Net *net = fold_net();
    Loaded before, after;
    if (load(net, &before, NULL, NULL, true) != 0) fail_msg("create: %s", before.rt.last_error(before.m));
    assert_forward_matches(net, &before, MAX_BATCH);  /* the unfolded code is right to begin with */
    int64_t in_floats = ir_shape_elems(&net->g->values[net->g->inputs[0]].shape);
    int64_t out_floats = ir_shape_elems(&net->g->values[net->g->outputs[0].value].shape);
    float *x = random_batch(&net->rng, MAX_BATCH * in_floats);
    float *want = forward_once(&before, MAX_BATCH, x, out_floats);

    if (!pass_fold_bn(net->g, err, sizeof err)) fail_msg("pass_fold_bn: %s", err);
    if (!ir_verify(net->g, err, sizeof err)) fail_msg("ir_verify: %s", err);
    for (int32_t i = 0; i < net->g->n_nodes; i++) assert_int_not_equal(net->g->nodes[i].op, OP_BATCHNORM);
    emit(net, MAX_BATCH, &after.e);
    assert_non_null(strstr(after.e.c.data, "static int folded_prepare(folded_model *m, nnc_st_file *sf)"));
    assert_non_null(strstr(after.e.c.data, "nnc_bn_fold_weight("));
    assert_null(strstr(after.e.c.data, "nnc_batchnorm("));
    assert_non_null(strstr(after.e.h.data, "#define FOLDED_CONST_FLOATS"));
    assert_non_null(strstr(after.e.h.data, "(create only)"));
    {  /* what only the folding reads is never in m->params: the forward's parameters come first, and
        * create holds only them; prepare reads the others into its stage as each constant is made */
        int64_t kept = 0;
        char def[96];
        bool *is_const = calloc((size_t)net->g->n_values, sizeof *is_const);
        ir_mark_constants(net->g, is_const);
        for (int32_t p = 0; p < net->g->n_params; p++) {
            int32_t v = net->g->params[p];
            bool read = false;
            for (int32_t i = 0; i < net->g->n_nodes; i++)
                for (int j = 0; j < net->g->nodes[i].n_in; j++)
                    read |= ir_in(net->g, &net->g->nodes[i], j) == v && !is_const[net->g->nodes[i].out];
            if (read) kept += ir_shape_elems(&net->g->values[v].shape);
        }
        free(is_const);
        snprintf(def, sizeof def, "#define FOLDED_PARAM_KEPT_FLOATS  %lld ", (long long)kept);
        assert_non_null(strstr(after.e.h.data, def));
        assert_non_null(strstr(after.e.c.data, "malloc(((size_t)FOLDED_PARAM_KEPT_FLOATS + 1) * sizeof(float))"));
        assert_non_null(strstr(after.e.c.data, "folded_stage(m, sf, stage + 0, "));
        assert_null(strstr(after.e.c.data, "realloc(m->params"));
    }
    path_in(&before.e, "w.safetensors", path, sizeof path);
    load_emitted(&after, path);
    float *got = forward_once(&after, MAX_BATCH, x, out_floats);
    assert_close_normalized(got, want, MAX_BATCH * out_floats, "folded");
    free(got);
    free(want);
    free(x);
    unload(&after);
    unload(&before);
    assert_compiles_cleanly(net);  /* the prepare step under gcc and clang, -Werror -pedantic */
    net_free(net);
}

/* Every epilogue of passes/fuse_epilogue.c: conv -> bn -> relu; ResNet's
 * conv -> bn -> add -> relu (grouped, no bias, the residual read twice);
 * conv -> leaky_relu; a 1x1 conv -> sigmoid; a strided conv -> relu6;
 * linear -> tanh; linear -> add -> sigmoid. */
static Net *fuse_net(void)
{
    Net *net = net_new("fused");
    int32_t x = net_input(net, "image", 3, 4, 6, 6);
    IrAttr leaky = {.act = {0.1f}};
    int32_t a = net_unary(net, OP_RELU, net_bn(net, net_conv(net, x, "conv1", 6, 3, 1, 1, 1, true, false, 0), "bn1"));
    int32_t c = net_bn(net, net_conv(net, a, "conv2", 6, 3, 1, 1, 2, false, false, 0), "bn2");
    int32_t sum[2] = {c, a};
    x = net_unary(net, OP_RELU, net_node(net, OP_ADD, sum, 2, NULL, "res"));
    x = net_conv(net, x, "conv3", 6, 3, 1, 1, 1, true, false, 0);
    x = net_node(net, OP_LEAKY_RELU, &x, 1, &leaky, NULL);
    x = net_unary(net, OP_SIGMOID, net_conv(net, x, "conv4", 6, 1, 1, 0, 1, true, false, 0));
    x = net_unary(net, OP_RELU6, net_conv(net, x, "conv5", 8, 3, 2, 1, 1, true, false, 0));
    x = net_unary(net, OP_FLATTEN, net_unary(net, OP_GLOBAL_AVGPOOL, x));
    int32_t h = net_unary(net, OP_TANH, net_linear(net, x, "fc1", 8));
    int32_t lin[2] = {h, net_linear(net, h, "fc2", 8)};
    ir_add_output(net->g, "probs", net_unary(net, OP_SIGMOID, net_node(net, OP_ADD, lin, 2, NULL, "res2")));
    return net;
}

/* Epilogue fusion changes the kernel calls, not the numbers: the generated
 * code of the graph after pass_fold_bn and pass_fuse_epilogue gives the
 * outputs of the graph after pass_fold_bn alone within 1e-5 of the largest
 * output (in fact bit for bit: the epilogue computes as the unfused kernels);
 * no activation or add kernel is left. */
static void test_fuse_epilogue_numerics(void **state)
{
    (void)state;
    char err[256] = "", path[256];
    Net *net = fuse_net();
    Loaded before, after;
    if (load(net, &before, NULL, NULL, true) != 0) fail_msg("create: %s", before.rt.last_error(before.m));
    assert_forward_matches(net, &before, MAX_BATCH);
    int64_t in_floats = ir_shape_elems(&net->g->values[net->g->inputs[0]].shape);
    int64_t out_floats = ir_shape_elems(&net->g->values[net->g->outputs[0].value].shape);
    float *x = random_batch(&net->rng, MAX_BATCH * in_floats);
    if (!pass_fold_bn(net->g, err, sizeof err)) fail_msg("pass_fold_bn: %s", err);
    Loaded folded;  /* the same weights file: parameters keep their names */
    emit(net, MAX_BATCH, &folded.e);
    path_in(&before.e, "w.safetensors", path, sizeof path);
    load_emitted(&folded, path);
    float *want = forward_once(&folded, MAX_BATCH, x, out_floats);

    if (!pass_fuse_epilogue(net->g, err, sizeof err)) fail_msg("pass_fuse_epilogue: %s", err);
    if (!ir_verify(net->g, err, sizeof err)) fail_msg("ir_verify: %s", err);
    for (int32_t i = 0; i < net->g->n_nodes; i++) {
        OpKind op = net->g->nodes[i].op;
        assert_true(ir_ops[op].act == ACT_NONE && op != OP_ADD);
    }
    emit(net, MAX_BATCH, &after.e);
    const char *c = after.e.c.data;
    assert_non_null(strstr(c, "NNC_ACT_RELU, 0.0f,"));
    assert_non_null(strstr(c, "NNC_ACT_LEAKY_RELU, 0.1f"));
    assert_non_null(strstr(c, "/* residual [6, 6, 6], batch stride */"));
    assert_non_null(strstr(c, "/* then relu */"));
    assert_non_null(strstr(c, "/* epilogue: + residual [8], then sigmoid */"));
    assert_null(strstr(c, "nnc_relu(")), assert_null(strstr(c, "nnc_add(")), assert_null(strstr(c, "nnc_sigmoid("));
    load_emitted(&after, path);
    float *got = forward_once(&after, MAX_BATCH, x, out_floats);
    assert_close_normalized(got, want, MAX_BATCH * out_floats, "fused");
    free(got);
    free(want);
    free(x);
    unload(&after);
    unload(&folded);
    unload(&before);
    assert_compiles_cleanly(net);  /* the epilogue section under gcc and clang, -Werror -pedantic */
    net_free(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fold_bn_numerics),
        cmocka_unit_test(test_fuse_epilogue_numerics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
