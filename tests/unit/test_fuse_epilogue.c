/* test_fuse_epilogue.c: the epilogue fusion pass (passes/fuse_epilogue.c) on the IR.
 *
 * Small graphs built with the IR API, printed with ir_print before and after
 * pass_fuse_epilogue and compared as text: where the pattern fires (conv ->
 * relu, ResNet's basic block conv -> add -> relu, linear -> relu, conv_transpose2d, conv ->
 * sigmoid, leaky_relu's slope, a residual without an activation) and where it
 * must not (the conv's output read twice or a graph output, an add of two
 * non-conv values, an activation after a pool). Then the
 * zoo: after the -O2 pipeline, ResNet-50 has no relu and no add node left, and
 * five models have exactly the nodes, kernels and fused layers recorded here.
 * Numerical equality of the generated code before and after the pass is
 * test_codegen.c's test_fuse_epilogue_numerics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "frontend/frontend.h"
#include "passes/fuse_epilogue.h"
#include "passes/passes.h"
#include "tests/unit/ir_builder.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Runs the pass on b.g and compares the printed graph with want (NULL: unchanged). */
static void check_fuse(B *b, const char *want) { check_pass(b, pass_fuse_epilogue, "pass_fuse_epilogue", want); }

static void test_conv_relu(void **state)
{
    (void)state;
    B b = begin("t", shp(3, 4, 8, 8, 0));
    ir_add_output(b.g, "y", relu(&b, conv(&b, 0, "conv1", 6, 1, true, false)));
    check_fuse(&b, "graph t\n"
                   "  input  %0 x [4, 8, 8]\n"
                   "  param  %1 conv1.weight [6, 4, 3, 3]\n"
                   "  param  %2 conv1.bias [6]\n"
                   "  %3 = conv2d(%0, %1, %2) k=3x3 s=1x1 p=1x1 d=1x1 g=1 relu [6, 8, 8]   # t.net:1:3\n"
                   "  output y = %3\n");
}

/* ResNet's basic block: conv -> relu -> conv -> add(., x) -> relu, the convs
 * without bias (as before fold_bn gives them one): the residual is input 2. */
static void test_basic_block(void **state)
{
    (void)state;
    B b = begin("t", shp(3, 4, 8, 8, 0));
    int32_t h = relu(&b, conv(&b, 0, "conv1", 4, 1, false, false));
    ir_add_output(b.g, "y", relu(&b, add(&b, conv(&b, h, "conv2", 4, 1, false, false), 0)));
    check_fuse(&b, "graph t\n"
                   "  input  %0 x [4, 8, 8]\n"
                   "  param  %1 conv1.weight [4, 4, 3, 3]\n"
                   "  param  %2 conv2.weight [4, 4, 3, 3]\n"
                   "  %3 = conv2d(%0, %1) k=3x3 s=1x1 p=1x1 d=1x1 g=1 relu [4, 8, 8]   # t.net:1:3\n"
                   "  %4 = conv2d(%3, %2, %0) k=3x3 s=1x1 p=1x1 d=1x1 g=1 +res relu [4, 8, 8]   # t.net:3:3\n"
                   "  output y = %4\n");
}

/* The residual on the left of the add, whose output is a graph output; no activation after. */
static void test_residual_only(void **state)
{
    (void)state;
    B b = begin("t", shp(3, 4, 8, 8, 0));
    int32_t r = unary(&b, OP_TANH, 0);
    ir_add_output(b.g, "y", add(&b, r, conv(&b, 0, "c", 4, 1, true, false)));
    check_fuse(&b, "graph t\n"
                   "  input  %0 x [4, 8, 8]\n"
                   "  param  %1 c.weight [4, 4, 3, 3]\n"
                   "  param  %2 c.bias [4]\n"
                   "  %3 = tanh(%0) [4, 8, 8]   # t.net:1:3\n"
                   "  %4 = conv2d(%0, %1, %2, %3) k=3x3 s=1x1 p=1x1 d=1x1 g=1 +res [4, 8, 8]   # t.net:2:3\n"
                   "  output y = %4\n");
}

static void test_linear_relu(void **state)
{
    (void)state;
    B b = begin("t", shp(1, 10, 0, 0, 0));
    ir_add_output(b.g, "y", relu(&b, linear(&b, 0, "fc", 5)));
    check_fuse(&b, "graph t\n"
                   "  input  %0 x [10]\n"
                   "  param  %1 fc.weight [5, 10]\n"
                   "  param  %2 fc.bias [5]\n"
                   "  %3 = linear(%0, %1, %2) out=5 relu [5]   # t.net:1:3\n"
                   "  output y = %3\n");
}

static void test_conv_sigmoid(void **state)
{
    (void)state;
    B b = begin("t", shp(3, 4, 8, 8, 0));
    ir_add_output(b.g, "y", unary(&b, OP_SIGMOID, conv(&b, 0, "c", 2, 1, true, false)));
    check_fuse(&b, "graph t\n"
                   "  input  %0 x [4, 8, 8]\n"
                   "  param  %1 c.weight [2, 4, 3, 3]\n"
                   "  param  %2 c.bias [2]\n"
                   "  %3 = conv2d(%0, %1, %2) k=3x3 s=1x1 p=1x1 d=1x1 g=1 sigmoid [2, 8, 8]   # t.net:1:3\n"
                   "  output y = %3\n");
}

/* leaky_relu's slope moves into the epilogue; relu6 after a linear; only the
 * first activation of a chain fuses (the second reads the fused layer). */
static void test_leaky_relu6_chain(void **state)
{
    (void)state;
    B b = begin("t", shp(3, 4, 8, 8, 0));
    IrAttr leaky = {.act = {0.2f}};
    int32_t c = conv(&b, 0, "c", 4, 1, true, false);
    int32_t y = node(&b, OP_LEAKY_RELU, &c, 1, &leaky, NULL);
    ir_add_output(b.g, "y", unary(&b, OP_TANH, y));
    int32_t f = unary(&b, OP_FLATTEN, y);
    ir_add_output(b.g, "z", unary(&b, OP_RELU6, linear(&b, f, "fc", 3)));
    check_fuse(&b, "graph t\n"
                   "  input  %0 x [4, 8, 8]\n"
                   "  param  %1 c.weight [4, 4, 3, 3]\n"
                   "  param  %2 c.bias [4]\n"
                   "  param  %3 fc.weight [3, 256]\n"
                   "  param  %4 fc.bias [3]\n"
                   "  %5 = conv2d(%0, %1, %2) k=3x3 s=1x1 p=1x1 d=1x1 g=1 leaky_relu slope=0.2 [4, 8, 8]   # t.net:1:3\n"
                   "  %6 = tanh(%5) [4, 8, 8]   # t.net:3:3\n"
                   "  %7 = flatten(%5) [256]   # t.net:4:3\n"
                   "  %8 = linear(%7, %3, %4) out=3 relu6 [3]   # t.net:5:3\n"
                   "  output y = %6\n"
                   "  output z = %8\n");
}

/* The conv's output has a second reader: fusing would change what it reads. */
static void test_not_when_read_twice(void **state)
{
    (void)state;
    B b = begin("t", shp(3, 4, 8, 8, 0));
    int32_t c = conv(&b, 0, "c", 4, 1, true, false);
    ir_add_output(b.g, "y", add(&b, relu(&b, c), c));
    check_fuse(&b, NULL);
}

/* The conv's output is a graph output: it must stay as it is. */
static void test_not_when_output(void **state)
{
    (void)state;
    B b = begin("t", shp(3, 4, 8, 8, 0));
    int32_t c = conv(&b, 0, "c", 4, 1, true, false);
    ir_add_output(b.g, "y", relu(&b, add(&b, c, 0)));
    ir_add_output(b.g, "features", c);
    check_fuse(&b, NULL);
}

/* An add of two values no conv or linear made, then a relu: nothing to fuse into. */
static void test_not_add_of_non_convs(void **state)
{
    (void)state;
    B b = begin("t", shp(3, 4, 8, 8, 0));
    ir_add_output(b.g, "y", relu(&b, add(&b, relu(&b, 0), unary(&b, OP_SIGMOID, 0))));
    check_fuse(&b, NULL);
}

/* maxpool is out-fusable in the lattice, but its kernel takes no epilogue. */
static void test_not_after_pool(void **state)
{
    (void)state;
    B b = begin("t", shp(3, 4, 8, 8, 0));
    IrAttr a = {.pool = {.kh = 2, .kw = 2, .sh = 2, .sw = 2, .dh = 1, .dw = 1}};
    int32_t x = 0;
    ir_add_output(b.g, "y", relu(&b, node(&b, OP_MAXPOOL2D, &x, 1, &a, NULL)));
    check_fuse(&b, NULL);
}

/* conv_transpose2d takes an epilogue too (DCGAN's generator: relu, tanh). */
static void test_conv_transpose(void **state)
{
    (void)state;
    B b = begin("t", shp(3, 4, 5, 5, 0));
    int32_t c = conv(&b, 0, "up", 4, 1, true, true);
    ir_add_output(b.g, "y", relu(&b, add(&b, c, 0)));
    check_fuse(&b, "graph t\n"
                   "  input  %0 x [4, 5, 5]\n"
                   "  param  %1 up.weight [4, 4, 3, 3]\n"
                   "  param  %2 up.bias [4]\n"
                   "  %3 = conv_transpose2d(%0, %1, %2, %0) k=3x3 s=1x1 p=1x1 d=1x1 g=1 op=0x0 +res relu [4, 5, 5]   # t.net:1:3\n"
                   "  output y = %3\n");
}

/* A layer that already has an epilogue takes no second one: the pass is idempotent. */
static void test_twice(void **state)
{
    (void)state;
    char err[256];
    B b = begin("t", shp(3, 4, 8, 8, 0));
    int32_t h = relu(&b, conv(&b, 0, "conv1", 4, 1, false, false));
    ir_add_output(b.g, "y", relu(&b, add(&b, conv(&b, h, "conv2", 4, 1, false, false), 0)));
    if (!pass_fuse_epilogue(b.g, err, sizeof err)) fail_msg("pass_fuse_epilogue: %s", err);
    check_fuse(&b, NULL);
}

/* The shape rule and the verifier: the residual must have the output's shape,
 * and the inputs must match the attributes. */
static void test_shape_rule(void **state)
{
    (void)state;
    char err[256] = "";
    B b = begin("t", shp(3, 4, 8, 8, 0));
    IrAttr a = {.conv = {.kh = 3, .kw = 3, .sh = 1, .sw = 1, .ph = 1, .pw = 1, .dh = 1, .dw = 1, .groups = 1,
                         .out_channels = 6, .epi = {.act = ACT_RELU, .residual = true}}};
    int32_t ins[3] = {0, param(&b, "c", "weight", shp(4, 6, 4, 3, 3)), 0};
    IrLoc loc = {"t.net", 1, 1};
    assert_int_equal(ir_add_node(b.g, OP_CONV2D, ins, 3, &a, loc, NULL, err, sizeof err), -1);
    assert_string_equal(err, "the residual has shape [4, 8, 8], but the output has shape [6, 8, 8]");
    assert_int_equal(ir_add_node(b.g, OP_CONV2D, ins, 2, &a, loc, NULL, err, sizeof err), -1);
    assert_string_equal(err, "conv2d has 2 inputs, but its attributes (no bias, a residual) call for 3");
    a.conv.out_channels = 4;
    ins[1] = param(&b, "d", "weight", shp(4, 4, 4, 3, 3));
    assert_true(ir_add_node(b.g, OP_CONV2D, ins, 3, &a, loc, NULL, err, sizeof err) >= 0);
    assert_true(ir_verify(b.g, err, sizeof err));
    ir_free(b.g);
}

/* ---- the zoo ---- */

/* What -O2 makes of a zoo model: nodes, kernels per forward, conv/linear
 * layers with an epilogue (an activation or a residual fused in) and those
 * with a residual. Exact counts, so that a fusion that stops firing (or fires
 * more) fails here; a change that is meant to alter them updates the table. */
typedef struct {
    const char *name;
    int nodes, kernels, fused, residual;
} FuseCount;

static IrGraph *o2_model(const FuseCount *want)
{
    char err[512] = "";
    IrGraph *g = compile_model(want->name);
    if (!pass_run_pipeline(g, 2, err, sizeof err)) fail_msg("%s: -O2: %s", want->name, err);
    if (!ir_verify(g, err, sizeof err)) fail_msg("%s: after -O2: %s", want->name, err);
    int fused = 0, res = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const Epilogue *e = ir_epilogue(&g->nodes[i]);
        fused += e && (e->act != ACT_NONE || e->residual);
        res += e && e->residual;
    }
    int kernels = pass_count_kernels(g);
    if (g->n_nodes != want->nodes || kernels != want->kernels || fused != want->fused || res != want->residual)
        fail_msg("%s at -O2: nodes %d, kernels %d, layers with an epilogue %d (%d with a residual); expected "
                 "%d, %d, %d (%d)", want->name, g->n_nodes, kernels, fused, res, want->nodes, want->kernels,
                 want->fused, want->residual);
    return g;
}

/* Every relu of ResNet-50 follows a conv (through its batchnorm, folded) or a
 * residual add, and every add reads a conv: after -O2 none is left. */
static void test_zoo_resnet50(void **state)
{
    (void)state;
    /* 23 of the kernels are reorders: the 3x3 layers Winograd runs stay NCHW, the rest is blocked (layout_blocked.c) */
    static const FuseCount want = {"resnet50", 185, 79, 49, 16};
    IrGraph *g = o2_model(&want);
    assert_int_equal(count_op(g, OP_RELU), 0);
    assert_int_equal(count_op(g, OP_ADD), 0);
    assert_int_equal(count_op(g, OP_BATCHNORM), 0);
    ir_free(g);
}

/* Nodes include the pack_weights nodes of passes/pack_weights.c: one per
 * packed conv2d, except where it absorbs the conv's bn_fold_weight (resnet's
 * convs but its merged sibling 1x1s; googlenet's merged siblings, densenet's
 * prologue convs add one each). */
static void test_zoo_counts(void **state)
{
    (void)state;
    static const FuseCount want[] = {
        {"resnet18", 72, 32, 17, 8},  /* 8 reorders around the layers Winograd runs (layout_blocked.c) */
        {"mobilenet_v2", 159, 55, 45, 10},  /* blocked (layout_blocked.c): no dwpw, no reorder (the stem writes NCHW16c) */
        {"googlenet", 246, 74, 52, 0},
        {"densenet121", 488, 127, 59, 0},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) ir_free(o2_model(&want[i]));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_relu),
        cmocka_unit_test(test_basic_block),
        cmocka_unit_test(test_residual_only),
        cmocka_unit_test(test_linear_relu),
        cmocka_unit_test(test_conv_sigmoid),
        cmocka_unit_test(test_leaky_relu6_chain),
        cmocka_unit_test(test_not_when_read_twice),
        cmocka_unit_test(test_not_when_output),
        cmocka_unit_test(test_not_add_of_non_convs),
        cmocka_unit_test(test_not_after_pool),
        cmocka_unit_test(test_conv_transpose),
        cmocka_unit_test(test_twice),
        cmocka_unit_test(test_shape_rule),
        cmocka_unit_test(test_zoo_resnet50),
        cmocka_unit_test(test_zoo_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
