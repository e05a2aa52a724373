/* test_fold_bn.c: the batchnorm folding pass (passes/fold_bn.c) on the IR.
 *
 * Small graphs built with the IR API, printed with ir_print before and after
 * pass_fold_bn and compared as text: where the pattern fires (conv2d with and
 * without bias, linear, grouped conv_transpose2d) and where it must not (the
 * conv's output read twice, or a graph output; a batchnorm after a non-conv).
 * Then the zoo, with exact counts: ResNet-18, MobileNet-V2, ResNet-50 and
 * GoogLeNet lose every batchnorm, DenseNet-121 59 of its 121, and all still
 * verify. Numerical equality of the generated code before and after the pass
 * is test_codegen.c's test_fold_bn_numerics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "frontend/frontend.h"
#include "passes/fold_bn.h"
#include "passes/passes.h"
#include "tests/unit/ir_builder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Runs the pass on b.g and compares the printed graph with want (NULL: unchanged). */
static void check_fold(B *b, const char *want) { check_pass(b, pass_fold_bn, "pass_fold_bn", want); }

static void test_conv_bn_relu(void **state)
{
    (void)state;
    B b = begin("t", shp(3, 4, 8, 8, 0));
    int32_t y = relu(&b, bn(&b, conv(&b, 0, "conv1", 6, 1, true, false), "bn1"));
    ir_add_output(b.g, "y", y);
    check_fold(&b, "graph t\n"
                   "  input  %0 x [4, 8, 8]\n"
                   "  param  %1 conv1.weight [6, 4, 3, 3]\n"
                   "  param  %2 conv1.bias [6]\n"
                   "  param  %3 bn1.weight [6]\n"
                   "  param  %4 bn1.bias [6]\n"
                   "  param  %5 bn1.running_mean [6]\n"
                   "  param  %6 bn1.running_var [6]\n"
                   "  %7 = bn_fold_weight(%1, %3, %6) eps=1e-05 [6, 4, 3, 3]   # t.net:1:3\n"
                   "  %8 = bn_fold_bias(%3, %4, %5, %6, %2) eps=1e-05 [6]   # t.net:1:3\n"
                   "  %9 = conv2d(%0, %7, %8) k=3x3 s=1x1 p=1x1 d=1x1 g=1 [6, 8, 8]   # t.net:1:3\n"
                   "  %10 = relu(%9) [6, 8, 8]   # t.net:3:3\n"
                   "  output y = %10\n");
}

/* No conv bias: bn_fold_bias has four inputs and the conv gains a bias; the
 * batchnorm's output is a graph output, which now names the conv. */
static void test_conv_without_bias(void **state)
{
    (void)state;
    B b = begin("t", shp(3, 4, 8, 8, 0));
    ir_add_output(b.g, "y", bn(&b, conv(&b, 0, "c", 4, 2, false, false), "n"));
    check_fold(&b, "graph t\n"
                   "  input  %0 x [4, 8, 8]\n"
                   "  param  %1 c.weight [4, 2, 3, 3]\n"
                   "  param  %2 n.weight [4]\n"
                   "  param  %3 n.bias [4]\n"
                   "  param  %4 n.running_mean [4]\n"
                   "  param  %5 n.running_var [4]\n"
                   "  %6 = bn_fold_weight(%1, %2, %5) eps=1e-05 [4, 2, 3, 3]   # t.net:1:3\n"
                   "  %7 = bn_fold_bias(%2, %3, %4, %5) eps=1e-05 [4]   # t.net:1:3\n"
                   "  %8 = conv2d(%0, %6, %7) k=3x3 s=1x1 p=1x1 d=1x1 g=2 [4, 8, 8]   # t.net:1:3\n"
                   "  output y = %8\n");
}

static void test_linear_bn(void **state)
{
    (void)state;
    B b = begin("t", shp(1, 10, 0, 0, 0));
    ir_add_output(b.g, "y", relu(&b, bn(&b, linear(&b, 0, "fc", 5), "bn")));
    check_fold(&b, "graph t\n"
                   "  input  %0 x [10]\n"
                   "  param  %1 fc.weight [5, 10]\n"
                   "  param  %2 fc.bias [5]\n"
                   "  param  %3 bn.weight [5]\n"
                   "  param  %4 bn.bias [5]\n"
                   "  param  %5 bn.running_mean [5]\n"
                   "  param  %6 bn.running_var [5]\n"
                   "  %7 = bn_fold_weight(%1, %3, %6) eps=1e-05 [5, 10]   # t.net:1:3\n"
                   "  %8 = bn_fold_bias(%3, %4, %5, %6, %2) eps=1e-05 [5]   # t.net:1:3\n"
                   "  %9 = linear(%0, %7, %8) out=5 [5]   # t.net:1:3\n"
                   "  %10 = relu(%9) [5]   # t.net:3:3\n"
                   "  output y = %10\n");
}

/* conv_transpose2d with groups: the weight is [c_in, c_out/g, kh, kw]. */
static void test_conv_transpose_bn(void **state)
{
    (void)state;
    B b = begin("t", shp(3, 4, 5, 5, 0));
    ir_add_output(b.g, "y", bn(&b, conv(&b, 0, "up", 6, 2, true, true), "bn"));
    check_fold(&b, "graph t\n"
                   "  input  %0 x [4, 5, 5]\n"
                   "  param  %1 up.weight [4, 3, 3, 3]\n"
                   "  param  %2 up.bias [6]\n"
                   "  param  %3 bn.weight [6]\n"
                   "  param  %4 bn.bias [6]\n"
                   "  param  %5 bn.running_mean [6]\n"
                   "  param  %6 bn.running_var [6]\n"
                   "  %7 = bn_fold_weight_t(%1, %3, %6) eps=1e-05 [4, 3, 3, 3]   # t.net:1:3\n"
                   "  %8 = bn_fold_bias(%3, %4, %5, %6, %2) eps=1e-05 [6]   # t.net:1:3\n"
                   "  %9 = conv_transpose2d(%0, %7, %8) k=3x3 s=1x1 p=1x1 d=1x1 g=2 op=0x0 [6, 5, 5]   # t.net:1:3\n"
                   "  output y = %9\n");
}

/* The conv's output has a second reader: folding would change what it reads. */
static void test_not_when_read_twice(void **state)
{
    (void)state;
    B b = begin("t", shp(3, 4, 8, 8, 0));
    int32_t c = conv(&b, 0, "c", 4, 1, true, false);
    int32_t ins[2] = {bn(&b, c, "bn"), relu(&b, c)};
    ir_add_output(b.g, "y", node(&b, OP_ADD, ins, 2, NULL, NULL));
    check_fold(&b, NULL);
}

/* The conv's output is a graph output: it must stay as it is. */
static void test_not_when_output(void **state)
{
    (void)state;
    B b = begin("t", shp(3, 4, 8, 8, 0));
    int32_t c = conv(&b, 0, "c", 4, 1, true, false);
    ir_add_output(b.g, "y", bn(&b, c, "bn"));
    ir_add_output(b.g, "features", c);
    check_fold(&b, NULL);
}

/* A batchnorm after something other than a conv or linear stays. */
static void test_not_after_non_conv(void **state)
{
    (void)state;
    B b = begin("t", shp(3, 4, 8, 8, 0));
    ir_add_output(b.g, "y", bn(&b, relu(&b, 0), "bn"));
    check_fold(&b, NULL);
}

/* Two folds in a row and one that must not fire, in one graph (DenseNet's shape:
 * bn after a concat): order and ids stay consistent. */
static void test_mixed(void **state)
{
    (void)state;
    B b = begin("t", shp(3, 4, 8, 8, 0));
    int32_t a = relu(&b, bn(&b, conv(&b, 0, "a", 4, 1, false, false), "a_bn"));
    int32_t c = bn(&b, conv(&b, a, "b", 4, 4, false, false), "b_bn");
    IrAttr cat = {.concat = {0}};
    int32_t ins[2] = {a, c};
    ir_add_output(b.g, "y", bn(&b, node(&b, OP_CONCAT, ins, 2, &cat, "cat"), "cat_bn"));
    check_fold(&b, "graph t\n"
                   "  input  %0 x [4, 8, 8]\n"
                   "  param  %1 a.weight [4, 4, 3, 3]\n"
                   "  param  %2 a_bn.weight [4]\n"
                   "  param  %3 a_bn.bias [4]\n"
                   "  param  %4 a_bn.running_mean [4]\n"
                   "  param  %5 a_bn.running_var [4]\n"
                   "  param  %6 b.weight [4, 1, 3, 3]\n"
                   "  param  %7 b_bn.weight [4]\n"
                   "  param  %8 b_bn.bias [4]\n"
                   "  param  %9 b_bn.running_mean [4]\n"
                   "  param  %10 b_bn.running_var [4]\n"
                   "  param  %11 cat_bn.weight [8]\n"
                   "  param  %12 cat_bn.bias [8]\n"
                   "  param  %13 cat_bn.running_mean [8]\n"
                   "  param  %14 cat_bn.running_var [8]\n"
                   "  %15 = bn_fold_weight(%1, %2, %5) eps=1e-05 [4, 4, 3, 3]   # t.net:1:3\n"
                   "  %16 = bn_fold_bias(%2, %3, %4, %5) eps=1e-05 [4]   # t.net:1:3\n"
                   "  %17 = conv2d(%0, %15, %16) k=3x3 s=1x1 p=1x1 d=1x1 g=1 [4, 8, 8]   # t.net:1:3\n"
                   "  %18 = relu(%17) [4, 8, 8]   # t.net:3:3\n"
                   "  %19 = bn_fold_weight(%6, %7, %10) eps=1e-05 [4, 1, 3, 3]   # t.net:4:3\n"
                   "  %20 = bn_fold_bias(%7, %8, %9, %10) eps=1e-05 [4]   # t.net:4:3\n"
                   "  %21 = conv2d(%18, %19, %20) k=3x3 s=1x1 p=1x1 d=1x1 g=4 [4, 8, 8]   # t.net:4:3\n"
                   "  %22 = concat(%18, %21) axis=0 [8, 8, 8]   # t.net:6:3\n"
                   "  %23 = batchnorm(%22, %11, %12, %13, %14) eps=1e-05 momentum=0.1 [8, 8, 8]   # t.net:7:3\n"
                   "  output y = %23\n");
}

/* ---- the zoo ---- */


/* What folding does to a zoo model: the batchnorms before and after, and the
 * graph's nodes before and after (each fold: -1 batchnorm, +2 constant nodes,
 * one kernel fewer per forward). Exact counts, so that a fold that stops
 * firing, or fires where it must not, fails here. */
typedef struct {
    const char *name;
    int bns, left;        /* batchnorm nodes before and after */
    int nodes, nodes_after;
} FoldCount;

static void fold_model(const FoldCount *want)
{
    char err[512] = "";
    IrGraph *g = compile_model(want->name);
    int before = g->n_nodes, bns = count_op(g, OP_BATCHNORM);
    int32_t params = g->n_params;
    if (!pass_fold_bn(g, err, sizeof err)) fail_msg("%s: pass_fold_bn: %s", want->name, err);
    if (!ir_verify(g, err, sizeof err)) fail_msg("%s: after pass_fold_bn: %s", want->name, err);
    assert_int_equal(g->n_params, params);
    int left = count_op(g, OP_BATCHNORM);
    int folds = count_op(g, OP_BN_FOLD_BIAS);
    assert_int_equal(folds, bns - left);
    assert_int_equal(count_op(g, OP_BN_FOLD_WEIGHT) + count_op(g, OP_BN_FOLD_WEIGHT_T), folds);
    assert_int_equal(g->n_nodes, before + folds);
    if (bns != want->bns || left != want->left || before != want->nodes || g->n_nodes != want->nodes_after)
        fail_msg("%s: batchnorms %d -> %d and nodes %d -> %d after pass_fold_bn, expected %d -> %d and %d -> %d",
                 want->name, bns, left, before, g->n_nodes, want->bns, want->left, want->nodes, want->nodes_after);
    ir_free(g);
}

/* ResNet-18 and MobileNet-V2 lose every batchnorm. */
static void test_zoo_resnet18_mobilenet_v2(void **state)
{
    (void)state;
    static const FoldCount want[] = {
        {"resnet18", 20, 0, 69, 89},
        {"mobilenet_v2", 52, 0, 153, 205},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) fold_model(&want[i]);
}

/* ResNet-50 and GoogLeNet lose every batchnorm too. DenseNet-121 keeps 62:
 * norm1 of each of its 58 dense layers, the 3 transitions' norm and norm5 read
 * a concat, not a conv (fuse_prologue takes them at -O2); its 58 norm2 and
 * norm0 fold. */
static void test_zoo_counts(void **state)
{
    (void)state;
    static const FoldCount want[] = {
        {"resnet50", 53, 0, 175, 228},
        {"densenet121", 121, 62, 427, 486},
        {"googlenet", 59, 0, 215, 274},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) fold_model(&want[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_bn_relu),
        cmocka_unit_test(test_conv_without_bias),
        cmocka_unit_test(test_linear_bn),
        cmocka_unit_test(test_conv_transpose_bn),
        cmocka_unit_test(test_not_when_read_twice),
        cmocka_unit_test(test_not_when_output),
        cmocka_unit_test(test_not_after_non_conv),
        cmocka_unit_test(test_mixed),
        cmocka_unit_test(test_zoo_resnet18_mobilenet_v2),
        cmocka_unit_test(test_zoo_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
