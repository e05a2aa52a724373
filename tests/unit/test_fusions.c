/* test_fusions.c: the -O2 rewrites that need strided views or new kernels, on
 * the IR: fuse_prologue (batchnorm [+ activation] into the next layer),
 * fuse_dwpw (depthwise + pointwise in one node), fuse_siblings (sibling 1x1
 * convolutions as one) and concat_elim (producers write into their concat
 * slice). Small graphs built with the IR API, printed
 * before and after, compared as text, including the cases where a pattern
 * must not fire. Then the zoo: the "done when" for ResNet-50,
 * GoogLeNet, DenseNet-121 and MobileNet v2 at -O2 (no batchnorm, no standalone
 * activation or add, no concat copy, a workspace within 5% of its bound).
 * The numerics of the fused kernels are test_kernels.c's (test_dwpw, the
 * strided and prologue cases of test_conv2d); whole models against PyTorch are
 * the oracle tests, which run at -O2 and -O0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "codegen/emit_c.h"
#include "passes/concat_elim.h"
#include "passes/plan_memory.h"
#include "passes/fuse_dwpw.h"
#include "passes/fuse_epilogue.h"
#include "passes/fuse_prologue.h"
#include "passes/fuse_siblings.h"
#include "passes/passes.h"
#include "passes/plan_memory.h"
#include "tests/unit/ir_builder.h"

/* A conv2d of any window, no bias unless asked. */
static int32_t convk(B *b, int32_t x, const char *scope, int k, int ks, int stride, int groups, bool bias)
{
    int64_t c = b->g->values[x].shape.dim[0];
    IrAttr a = {.conv = {.kh = ks, .kw = ks, .sh = stride, .sw = stride, .ph = ks / 2, .pw = ks / 2, .dh = 1,
                         .dw = 1, .groups = groups, .out_channels = k, .bias = bias}};
    int32_t ins[3] = {x, param(b, scope, "weight", shp(4, k, c / groups, ks, ks)),
                      bias ? param(b, scope, "bias", shp(1, k, 0, 0, 0)) : -1};
    return node(b, OP_CONV2D, ins, bias ? 3 : 2, &a, scope);
}

static int32_t concat2(B *b, int32_t x, int32_t y)
{
    int32_t ins[2] = {x, y};
    IrAttr a = {.concat = {0, false}};
    return node(b, OP_CONCAT, ins, 2, &a, NULL);
}

static int32_t pool(B *b, OpKind op, int32_t x, int k, int s)
{
    IrAttr a = {.pool = {.kh = k, .kw = k, .sh = s, .sw = s, .dh = 1, .dw = 1, .count_include_pad = true}};
    return node(b, op, &x, 1, &a, NULL);
}

/* ---- fuse_bn_train (the training form of fold_bn) ---- */

static void check_bn_train(B *b, const char *want) { check_pass(b, pass_fuse_bn_train, "pass_fuse_bn_train", want); }

/* conv -> batchnorm -> relu: the conv sums the statistics, the batchnorm applies
 * the relu, the relu node goes and its reader reads the batchnorm. */
static void test_bn_train_conv_bn_relu(void **state)
{
    (void)state;
    B b = begin("t", shp(3, 4, 6, 6, 0));
    int32_t y = relu(&b, bn(&b, conv(&b, 0, "c", 4, 1, false, false), "n"));
    ir_add_output(b.g, "y", add(&b, y, 0));
    check_bn_train(&b, "graph t\n"
                       "  input  %0 x [4, 6, 6]\n"
                       "  param  %1 c.weight [4, 4, 3, 3]\n"
                       "  param  %2 n.weight [4]\n"
                       "  param  %3 n.bias [4]\n"
                       "  param  %4 n.running_mean [4]\n"
                       "  param  %5 n.running_var [4]\n"
                       "  %6 = conv2d(%0, %1) k=3x3 s=1x1 p=1x1 d=1x1 g=1 +bn_stats [4, 6, 6]   # t.net:1:3\n"
                       "  %7 = batchnorm(%6, %2, %3, %4, %5) eps=1e-05 momentum=0.1 fused relu [4, 6, 6]   # t.net:2:3\n"
                       "  %8 = add(%7, %0) [4, 6, 6]   # t.net:4:3\n"
                       "  output y = %8\n");
}

/* An activation whose backward needs its input (silu, activations.h
 * NNC_FROM_X) stays a node; the conv and batchnorm still fuse. */
static void test_bn_train_keeps_silu(void **state)
{
    (void)state;
    B b = begin("t", shp(3, 4, 6, 6, 0));
    ir_add_output(b.g, "y", unary(&b, OP_SILU, bn(&b, conv(&b, 0, "c", 4, 1, false, false), "n")));
    check_bn_train(&b, "graph t\n"
                       "  input  %0 x [4, 6, 6]\n"
                       "  param  %1 c.weight [4, 4, 3, 3]\n"
                       "  param  %2 n.weight [4]\n"
                       "  param  %3 n.bias [4]\n"
                       "  param  %4 n.running_mean [4]\n"
                       "  param  %5 n.running_var [4]\n"
                       "  %6 = conv2d(%0, %1) k=3x3 s=1x1 p=1x1 d=1x1 g=1 +bn_stats [4, 6, 6]   # t.net:1:3\n"
                       "  %7 = batchnorm(%6, %2, %3, %4, %5) eps=1e-05 momentum=0.1 fused [4, 6, 6]   # t.net:2:3\n"
                       "  %8 = silu(%7) [4, 6, 6]   # t.net:3:3\n"
                       "  output y = %8\n");
}

/* Nothing fuses: the conv's output read twice, a batchnorm after an add, a
 * batchnorm whose output is a graph output, a conv_transpose2d. */
static void test_bn_train_not(void **state)
{
    (void)state;
    B b = begin("t", shp(3, 4, 6, 6, 0));
    int32_t c = conv(&b, 0, "c", 4, 1, false, false);
    ir_add_output(b.g, "a", relu(&b, bn(&b, c, "n1")));
    ir_add_output(b.g, "b", add(&b, c, 0));
    ir_add_output(b.g, "c", relu(&b, bn(&b, add(&b, 0, 0), "n2")));
    ir_add_output(b.g, "d", bn(&b, conv(&b, 0, "t", 4, 1, false, true), "n3"));
    check_bn_train(&b, NULL);
}

/* ---- fuse_prologue ---- */

static void check_prologue(B *b, const char *want) { check_pass(b, pass_fuse_prologue, "pass_fuse_prologue", want); }

/* DenseNet's layer entry: concat -> batchnorm -> relu -> conv1x1. */
static void test_prologue_bn_relu_conv(void **state)
{
    (void)state;
    B b = begin("t", shp(3, 4, 6, 6, 0));
    int32_t c = concat2(&b, 0, relu(&b, 0));
    ir_add_output(b.g, "y", convk(&b, relu(&b, bn(&b, c, "norm1")), "conv1", 8, 1, 1, 1, false));
    check_prologue(&b, "graph t\n"
                       "  input  %0 x [4, 6, 6]\n"
                       "  param  %1 norm1.weight [8]\n"
                       "  param  %2 norm1.bias [8]\n"
                       "  param  %3 norm1.running_mean [8]\n"
                       "  param  %4 norm1.running_var [8]\n"
                       "  param  %5 conv1.weight [8, 8, 1, 1]\n"
                       "  %6 = relu(%0) [4, 6, 6]   # t.net:1:3\n"
                       "  %7 = concat(%0, %6) axis=0 [8, 6, 6]   # t.net:2:3\n"
                       "  %8 = bn_scale(%1, %4) eps=1e-05 [8]   # t.net:3:3\n"
                       "  %9 = bn_fold_bias(%1, %2, %3, %4) eps=1e-05 [8]   # t.net:3:3\n"
                       "  %10 = conv2d(%7, %5, %8, %9) k=1x1 s=1x1 p=0x0 d=1x1 g=1 pro relu [8, 6, 6]   # t.net:5:3\n"
                       "  output y = %10\n");
}

/* Without an activation, and into a padded 3x3 conv with a bias. */
static void test_prologue_bn_conv(void **state)
{
    (void)state;
    B b = begin("t", shp(3, 4, 6, 6, 0));
    ir_add_output(b.g, "y", convk(&b, bn(&b, 0, "norm"), "conv", 2, 3, 1, 1, true));
    check_prologue(&b, "graph t\n"
                       "  input  %0 x [4, 6, 6]\n"
                       "  param  %1 norm.weight [4]\n"
                       "  param  %2 norm.bias [4]\n"
                       "  param  %3 norm.running_mean [4]\n"
                       "  param  %4 norm.running_var [4]\n"
                       "  param  %5 conv.weight [2, 4, 3, 3]\n"
                       "  param  %6 conv.bias [2]\n"
                       "  %7 = bn_scale(%1, %4) eps=1e-05 [4]   # t.net:1:3\n"
                       "  %8 = bn_fold_bias(%1, %2, %3, %4) eps=1e-05 [4]   # t.net:1:3\n"
                       "  %9 = conv2d(%0, %5, %6, %7, %8) k=3x3 s=1x1 p=1x1 d=1x1 g=1 pro [2, 6, 6]   # t.net:2:3\n"
                       "  output y = %9\n");
}

/* DenseNet's head: batchnorm -> relu -> global_avgpool becomes an adaptive pool with a prologue. */
static void test_prologue_global_pool(void **state)
{
    (void)state;
    B b = begin("t", shp(3, 4, 6, 6, 0));
    ir_add_output(b.g, "y", unary(&b, OP_GLOBAL_AVGPOOL, relu(&b, bn(&b, 0, "norm5"))));
    check_prologue(&b, "graph t\n"
                       "  input  %0 x [4, 6, 6]\n"
                       "  param  %1 norm5.weight [4]\n"
                       "  param  %2 norm5.bias [4]\n"
                       "  param  %3 norm5.running_mean [4]\n"
                       "  param  %4 norm5.running_var [4]\n"
                       "  %5 = bn_scale(%1, %4) eps=1e-05 [4]   # t.net:1:3\n"
                       "  %6 = bn_fold_bias(%1, %2, %3, %4) eps=1e-05 [4]   # t.net:1:3\n"
                       "  %7 = adaptive_avgpool2d(%0, %5, %6) out=1x1 pro relu [4, 1, 1]   # t.net:3:3\n"
                       "  output y = %7\n");
}

/* Not: the batchnorm's output read twice; the relu's output a graph output;
 * the chain at the residual input; a conv that already has a prologue; a
 * batchnorm before a pool that takes none (maxpool). */
static void test_prologue_not(void **state)
{
    (void)state;
    B b = begin("t", shp(3, 4, 6, 6, 0));
    int32_t t = bn(&b, 0, "a");
    ir_add_output(b.g, "y1", convk(&b, relu(&b, t), "c1", 4, 1, 1, 1, false));
    ir_add_output(b.g, "y2", t);
    B b2 = begin("t", shp(3, 4, 6, 6, 0));
    int32_t u = relu(&b2, bn(&b2, 0, "a"));
    ir_add_output(b2.g, "y1", convk(&b2, u, "c1", 4, 1, 1, 1, false));
    ir_add_output(b2.g, "y2", u);
    B b3 = begin("t", shp(3, 4, 6, 6, 0));
    ir_add_output(b3.g, "y", pool(&b3, OP_MAXPOOL2D, relu(&b3, bn(&b3, 0, "a")), 2, 2));
    check_prologue(&b, NULL);
    check_prologue(&b2, NULL);
    check_prologue(&b3, NULL);
}

/* A prologue layer takes a residual (fuse_epilogue puts it before the scale and shift). */
static void test_prologue_then_epilogue(void **state)
{
    (void)state;
    char err[256];
    B b = begin("t", shp(3, 4, 6, 6, 0));
    int32_t y = convk(&b, relu(&b, bn(&b, 0, "n")), "c", 4, 3, 1, 1, false);
    ir_add_output(b.g, "y", relu(&b, add(&b, y, 0)));
    if (!pass_fuse_prologue(b.g, err, sizeof err)) fail_msg("%s", err);
    check_pass(&b, pass_fuse_epilogue, "pass_fuse_epilogue", "graph t\n"
                                                             "  input  %0 x [4, 6, 6]\n"
                                                             "  param  %1 n.weight [4]\n"
                                                             "  param  %2 n.bias [4]\n"
                                                             "  param  %3 n.running_mean [4]\n"
                                                             "  param  %4 n.running_var [4]\n"
                                                             "  param  %5 c.weight [4, 4, 3, 3]\n"
                                                             "  %6 = bn_scale(%1, %4) eps=1e-05 [4]   # t.net:1:3\n"
                                                             "  %7 = bn_fold_bias(%1, %2, %3, %4) eps=1e-05 [4]   # t.net:1:3\n"
                                                             "  %8 = conv2d(%0, %5, %0, %6, %7) k=3x3 s=1x1 p=1x1 d=1x1 g=1 pro relu +res relu [4, 6, 6]   # t.net:3:3\n"
                                                             "  output y = %8\n");
}

/* ---- fuse_dwpw ---- */

static void check_dwpw(B *b, const char *want) { check_pass(b, pass_fuse_dwpw, "pass_fuse_dwpw", want); }

/* MobileNet v2's depthwise (relu6 in its epilogue) and projection (with its residual). */
static void test_dwpw_inverted_residual(void **state)
{
    (void)state;
    B b = begin("t", shp(3, 8, 6, 6, 0));
    int32_t d = convk(&b, 0, "dw", 8, 3, 1, 8, true);
    b.g->nodes[b.g->values[d].node].attr.conv.epi.act = ACT_RELU6;
    IrAttr a = {.conv = {.kh = 1, .kw = 1, .sh = 1, .sw = 1, .dh = 1, .dw = 1, .groups = 1, .out_channels = 8,
                         .bias = true, .epi = {.residual = true}}};
    int32_t ins[4] = {d, param(&b, "pw", "weight", shp(4, 8, 8, 1, 1)), param(&b, "pw", "bias", shp(1, 8, 0, 0, 0)), 0};
    ir_add_output(b.g, "y", node(&b, OP_CONV2D, ins, 4, &a, "pw"));
    check_dwpw(&b, "graph t\n"
                   "  input  %0 x [8, 6, 6]\n"
                   "  param  %1 dw.weight [8, 1, 3, 3]\n"
                   "  param  %2 dw.bias [8]\n"
                   "  param  %3 pw.weight [8, 8, 1, 1]\n"
                   "  param  %4 pw.bias [8]\n"
                   "  %5 = dwpw(%0, %1, %2, %3, %4, %0) dw k=3x3 s=1x1 p=1x1 d=1x1 relu6 pw out=8 +res [8, 6, 6]   # t.net:2:3\n"
                   "  output y = %5\n");
}

/* MobileNet v1's stride-2 pair, no biases. */
static void test_dwpw_stride2(void **state)
{
    (void)state;
    B b = begin("t", shp(3, 4, 7, 7, 0));
    ir_add_output(b.g, "y", convk(&b, convk(&b, 0, "dw", 4, 3, 2, 4, false), "pw", 6, 1, 1, 1, false));
    check_dwpw(&b, "graph t\n"
                   "  input  %0 x [4, 7, 7]\n"
                   "  param  %1 dw.weight [4, 1, 3, 3]\n"
                   "  param  %2 pw.weight [6, 4, 1, 1]\n"
                   "  %3 = dwpw(%0, %1, %2) dw k=3x3 s=2x2 p=1x1 d=1x1 pw out=6 [6, 4, 4]   # t.net:2:3\n"
                   "  output y = %3\n");
}

/* Not: the depthwise output read twice; a grouped (not depthwise) conv; a
 * depthwise with a channel multiplier; a 3x3 after the depthwise; a
 * depthwise output that is a graph output. */
static void test_dwpw_not(void **state)
{
    (void)state;
    B b = begin("t", shp(3, 4, 6, 6, 0));
    int32_t d = convk(&b, 0, "dw", 4, 3, 1, 4, false);
    ir_add_output(b.g, "y", convk(&b, d, "pw", 4, 1, 1, 1, false));
    ir_add_output(b.g, "z", relu(&b, d));
    check_dwpw(&b, NULL);
    b = begin("t", shp(3, 4, 6, 6, 0));
    ir_add_output(b.g, "y", convk(&b, convk(&b, 0, "g", 4, 3, 1, 2, false), "pw", 4, 1, 1, 1, false));
    check_dwpw(&b, NULL);
    b = begin("t", shp(3, 4, 6, 6, 0));
    ir_add_output(b.g, "y", convk(&b, convk(&b, 0, "m", 8, 3, 1, 4, false), "pw", 4, 1, 1, 1, false));
    check_dwpw(&b, NULL);
    b = begin("t", shp(3, 4, 6, 6, 0));
    ir_add_output(b.g, "y", convk(&b, convk(&b, 0, "dw", 4, 3, 1, 4, false), "c3", 4, 3, 1, 1, false));
    check_dwpw(&b, NULL);
    b = begin("t", shp(3, 4, 6, 6, 0));
    d = convk(&b, 0, "dw", 4, 3, 1, 4, false);
    ir_add_output(b.g, "y", convk(&b, d, "pw", 4, 1, 1, 1, false));
    ir_add_output(b.g, "d", d);
    check_dwpw(&b, NULL);
}

/* ---- concat_elim ---- */

static void check_concat(B *b, const char *want) { check_pass(b, pass_concat_elim, "pass_concat_elim", want); }

/* An Inception module: four producers (three convs, a pool), one concat. */
static void test_concat_inception(void **state)
{
    (void)state;
    B b = begin("t", shp(3, 4, 6, 6, 0));
    int32_t ins[4];  /* one node per statement: the order of an initializer's evaluations is unspecified */
    ins[0] = convk(&b, 0, "b1", 2, 1, 1, 1, false);
    ins[1] = convk(&b, 0, "b2", 3, 3, 1, 1, false);
    ins[2] = convk(&b, 0, "b3", 1, 5, 1, 1, false);
    ins[3] = pool(&b, OP_MAXPOOL2D, 0, 1, 1);
    IrAttr a = {.concat = {0, false}};
    ir_add_output(b.g, "y", relu(&b, node(&b, OP_CONCAT, ins, 4, &a, NULL)));
    check_concat(&b, "graph t\n"
                     "  input  %0 x [4, 6, 6]\n"
                     "  param  %1 b1.weight [2, 4, 1, 1]\n"
                     "  param  %3 b2.weight [3, 4, 3, 3]\n"
                     "  param  %5 b3.weight [1, 4, 5, 5]\n"
                     "  %2 = conv2d(%0, %1) k=1x1 s=1x1 p=0x0 d=1x1 g=1 [2, 6, 6]   # t.net:1:3\n"
                     "  %4 = conv2d(%0, %3) k=3x3 s=1x1 p=1x1 d=1x1 g=1 [3, 6, 6]   # t.net:2:3\n"
                     "  %6 = conv2d(%0, %5) k=5x5 s=1x1 p=2x2 d=1x1 g=1 [1, 6, 6]   # t.net:3:3\n"
                     "  %7 = maxpool2d(%0) k=1x1 s=1x1 p=0x0 [4, 6, 6]   # t.net:4:3\n"
                     "  %8 = concat(%2, %4, %6, %7) axis=0 in_place [10, 6, 6]   # t.net:5:3\n"
                     "  %9 = relu(%8) [10, 6, 6]   # t.net:6:3\n"
                     "  output y = %9\n");
}

/* A dense block: nested concats, each read by the next layer's conv (image input). */
static void test_concat_dense_block(void **state)
{
    (void)state;
    B b = begin("t", shp(3, 4, 6, 6, 0));
    int32_t x = pool(&b, OP_MAXPOOL2D, 0, 1, 1);
    for (int i = 0; i < 3; i++) x = concat2(&b, x, convk(&b, x, i == 0 ? "l1" : i == 1 ? "l2" : "l3", 2, 3, 1, 1, false));
    ir_add_output(b.g, "y", unary(&b, OP_GLOBAL_AVGPOOL, x));
    check_concat(&b, "graph t\n"
                     "  input  %0 x [4, 6, 6]\n"
                     "  param  %2 l1.weight [2, 4, 3, 3]\n"
                     "  param  %5 l2.weight [2, 6, 3, 3]\n"
                     "  param  %8 l3.weight [2, 8, 3, 3]\n"
                     "  %1 = maxpool2d(%0) k=1x1 s=1x1 p=0x0 [4, 6, 6]   # t.net:1:3\n"
                     "  %3 = conv2d(%1, %2) k=3x3 s=1x1 p=1x1 d=1x1 g=1 [2, 6, 6]   # t.net:2:3\n"
                     "  %4 = concat(%1, %3) axis=0 in_place [6, 6, 6]   # t.net:3:3\n"
                     "  %6 = conv2d(%4, %5) k=3x3 s=1x1 p=1x1 d=1x1 g=1 [2, 6, 6]   # t.net:4:3\n"
                     "  %7 = concat(%4, %6) axis=0 in_place [8, 6, 6]   # t.net:5:3\n"
                     "  %9 = conv2d(%7, %8) k=3x3 s=1x1 p=1x1 d=1x1 g=1 [2, 6, 6]   # t.net:6:3\n"
                     "  %10 = concat(%7, %9) axis=0 in_place [10, 6, 6]   # t.net:7:3\n"
                     "  %11 = global_avgpool(%10) [10, 1, 1]   # t.net:8:3\n"
                     "  output y = %11\n");
}

/* Not: a graph input in the concat; an input that is also a graph output; an
 * input an elementwise op reads too; an input twice; an input of two concats
 * (only the first can own it... neither does: both read it whole); a
 * producer that cannot write a slice (relu). */
static void test_concat_not(void **state)
{
    (void)state;
    B b = begin("t", shp(3, 4, 6, 6, 0));
    ir_add_output(b.g, "y", concat2(&b, 0, convk(&b, 0, "c", 2, 1, 1, 1, false)));
    check_concat(&b, NULL);
    b = begin("t", shp(3, 4, 6, 6, 0));
    int32_t c = convk(&b, 0, "c", 2, 1, 1, 1, false);
    ir_add_output(b.g, "y", concat2(&b, c, convk(&b, 0, "d", 2, 1, 1, 1, false)));
    ir_add_output(b.g, "c", c);
    check_concat(&b, NULL);
    b = begin("t", shp(3, 4, 6, 6, 0));
    c = convk(&b, 0, "c", 2, 1, 1, 1, false);
    ir_add_output(b.g, "y", concat2(&b, c, convk(&b, 0, "d", 2, 1, 1, 1, false)));
    ir_add_output(b.g, "r", relu(&b, c));
    check_concat(&b, NULL);
    b = begin("t", shp(3, 4, 6, 6, 0));
    c = convk(&b, 0, "c", 2, 1, 1, 1, false);
    ir_add_output(b.g, "y", concat2(&b, c, c));
    check_concat(&b, NULL);
    b = begin("t", shp(3, 4, 6, 6, 0));
    c = convk(&b, 0, "c", 2, 1, 1, 1, false);
    ir_add_output(b.g, "y", concat2(&b, c, convk(&b, 0, "d", 2, 1, 1, 1, false)));
    ir_add_output(b.g, "z", concat2(&b, convk(&b, 0, "e", 2, 1, 1, 1, false), c));
    check_concat(&b, NULL);
    b = begin("t", shp(3, 4, 6, 6, 0));
    c = relu(&b, 0);
    ir_add_output(b.g, "y", concat2(&b, c, convk(&b, 0, "d", 2, 1, 1, 1, false)));
    check_concat(&b, NULL);
}

/* ---- fuse_siblings ---- */

static void check_siblings(B *b, const char *want) { check_pass(b, pass_fuse_siblings, "pass_fuse_siblings", want); }

static int32_t with_act(B *b, int32_t v, ActKind act)
{
    b->g->nodes[b->g->values[v].node].attr.conv.epi.act = act;
    return v;
}

/* Inception's reduce branches: two 1x1 convs with relu, each read by a larger conv. */
static void test_siblings_inception(void **state)
{
    (void)state;
    B b = begin("t", shp(3, 4, 6, 6, 0));
    int32_t r3 = with_act(&b, convk(&b, 0, "b2.0", 3, 1, 1, 1, true), ACT_RELU);
    int32_t r5 = with_act(&b, convk(&b, 0, "b3.0", 2, 1, 1, 1, true), ACT_RELU);
    int32_t c3 = convk(&b, r3, "b2.1", 2, 3, 1, 1, true);  /* one node per statement: argument order is unspecified */
    ir_add_output(b.g, "y", concat2(&b, c3, convk(&b, r5, "b3.1", 2, 5, 1, 1, true)));
    check_siblings(&b, "graph t\n"
                       "  input  %0 x [4, 6, 6]\n"
                       "  param  %1 b2.0.weight [3, 4, 1, 1]\n"
                       "  param  %2 b2.0.bias [3]\n"
                       "  param  %3 b3.0.weight [2, 4, 1, 1]\n"
                       "  param  %4 b3.0.bias [2]\n"
                       "  param  %5 b2.1.weight [2, 3, 3, 3]\n"
                       "  param  %6 b2.1.bias [2]\n"
                       "  param  %7 b3.1.weight [2, 2, 5, 5]\n"
                       "  param  %8 b3.1.bias [2]\n"
                       "  %9 = concat(%1, %3) axis=0 [5, 4, 1, 1]   # t.net:1:3\n"
                       "  %10 = concat(%2, %4) axis=0 [5]   # t.net:1:3\n"
                       "  %11 = conv2d(%0, %9, %10) k=1x1 s=1x1 p=0x0 d=1x1 g=1 relu [5, 6, 6]   # t.net:1:3\n"
                       "  %12 = slice(%11) channels=0..2 [3, 6, 6]   # t.net:1:3\n"
                       "  %13 = slice(%11) channels=3..4 [2, 6, 6]   # t.net:2:3\n"
                       "  %14 = conv2d(%12, %5, %6) k=3x3 s=1x1 p=1x1 d=1x1 g=1 [2, 6, 6]   # t.net:3:3\n"
                       "  %15 = conv2d(%13, %7, %8) k=5x5 s=1x1 p=2x2 d=1x1 g=1 [2, 6, 6]   # t.net:4:3\n"
                       "  %16 = concat(%14, %15) axis=0 [4, 6, 6]   # t.net:5:3\n"
                       "  output y = %16\n");
}

/* ResNet-50's first bottleneck: conv1 (relu) and the downsample (none, read as
 * the residual of conv3): the activation covers conv1's channels only. The
 * downsample comes first in the graph, conv1 first in the fused output. */
static void test_siblings_bottleneck(void **state)
{
    (void)state;
    B b = begin("t", shp(3, 4, 6, 6, 0));
    int32_t ds = convk(&b, 0, "downsample", 8, 1, 1, 1, true);
    int32_t c1 = with_act(&b, convk(&b, 0, "conv1", 2, 1, 1, 1, true), ACT_RELU);
    int32_t c2 = with_act(&b, convk(&b, c1, "conv2", 2, 3, 1, 1, true), ACT_RELU);
    IrAttr a = {.conv = {.kh = 1, .kw = 1, .sh = 1, .sw = 1, .dh = 1, .dw = 1, .groups = 1, .out_channels = 8,
                         .bias = true, .epi = {.act = ACT_RELU, .residual = true}}};
    int32_t ins[4] = {c2, param(&b, "conv3", "weight", shp(4, 8, 2, 1, 1)), param(&b, "conv3", "bias", shp(1, 8, 0, 0, 0)), ds};
    ir_add_output(b.g, "y", node(&b, OP_CONV2D, ins, 4, &a, "conv3"));
    check_siblings(&b, "graph t\n"
                       "  input  %0 x [4, 6, 6]\n"
                       "  param  %1 downsample.weight [8, 4, 1, 1]\n"
                       "  param  %2 downsample.bias [8]\n"
                       "  param  %3 conv1.weight [2, 4, 1, 1]\n"
                       "  param  %4 conv1.bias [2]\n"
                       "  param  %5 conv2.weight [2, 2, 3, 3]\n"
                       "  param  %6 conv2.bias [2]\n"
                       "  param  %7 conv3.weight [8, 2, 1, 1]\n"
                       "  param  %8 conv3.bias [8]\n"
                       "  %9 = concat(%3, %1) axis=0 [10, 4, 1, 1]   # t.net:1:3\n"
                       "  %10 = concat(%4, %2) axis=0 [10]   # t.net:1:3\n"
                       "  %11 = conv2d(%0, %9, %10) k=1x1 s=1x1 p=0x0 d=1x1 g=1 relu on=0..1 [10, 6, 6]   # t.net:1:3\n"
                       "  %12 = slice(%11) channels=0..1 [2, 6, 6]   # t.net:2:3\n"
                       "  %13 = slice(%11) channels=2..9 [8, 6, 6]   # t.net:1:3\n"
                       "  %14 = conv2d(%12, %5, %6) k=3x3 s=1x1 p=1x1 d=1x1 g=1 relu [2, 6, 6]   # t.net:3:3\n"
                       "  %15 = conv2d(%14, %7, %8, %13) k=1x1 s=1x1 p=0x0 d=1x1 g=1 +res relu [8, 6, 6]   # t.net:4:3\n"
                       "  output y = %15\n");
}

/* Not: a stride-2 sibling (ResNet's later downsamples); an output a concat
 * reads (concat_elim places it); different activations; one with a bias and
 * one without; an output read by an elementwise op; a single 1x1. */
static void test_siblings_not(void **state)
{
    (void)state;
    B b = begin("t", shp(3, 4, 6, 6, 0));
    int32_t a = convk(&b, 0, "a", 2, 1, 1, 1, true), c = convk(&b, 0, "c", 2, 1, 2, 1, true);
    ir_add_output(b.g, "y", pool(&b, OP_MAXPOOL2D, a, 2, 2));
    ir_add_output(b.g, "z", pool(&b, OP_MAXPOOL2D, c, 1, 1));
    check_siblings(&b, NULL);
    b = begin("t", shp(3, 4, 6, 6, 0));
    a = convk(&b, 0, "a", 2, 1, 1, 1, true);
    c = convk(&b, 0, "c", 2, 1, 1, 1, true);
    ir_add_output(b.g, "y", concat2(&b, a, convk(&b, c, "d", 2, 3, 1, 1, true)));
    check_siblings(&b, NULL);
    b = begin("t", shp(3, 4, 6, 6, 0));
    a = with_act(&b, convk(&b, 0, "a", 2, 1, 1, 1, true), ACT_RELU);
    c = with_act(&b, convk(&b, 0, "c", 2, 1, 1, 1, true), ACT_TANH);
    ir_add_output(b.g, "y", convk(&b, a, "d", 2, 3, 1, 1, true));
    ir_add_output(b.g, "z", convk(&b, c, "e", 2, 3, 1, 1, true));
    check_siblings(&b, NULL);
    b = begin("t", shp(3, 4, 6, 6, 0));
    a = convk(&b, 0, "a", 2, 1, 1, 1, true);
    c = convk(&b, 0, "c", 2, 1, 1, 1, false);
    ir_add_output(b.g, "y", convk(&b, a, "d", 2, 3, 1, 1, true));
    ir_add_output(b.g, "z", convk(&b, c, "e", 2, 3, 1, 1, true));
    check_siblings(&b, NULL);
    b = begin("t", shp(3, 4, 6, 6, 0));
    a = convk(&b, 0, "a", 2, 1, 1, 1, true);
    c = convk(&b, 0, "c", 2, 1, 1, 1, true);
    ir_add_output(b.g, "y", relu(&b, a));
    ir_add_output(b.g, "z", convk(&b, c, "e", 2, 3, 1, 1, true));
    check_siblings(&b, NULL);
    b = begin("t", shp(3, 4, 6, 6, 0));
    ir_add_output(b.g, "y", convk(&b, convk(&b, 0, "a", 2, 1, 1, 1, true), "e", 2, 3, 1, 1, true));
    check_siblings(&b, NULL);
}

/* ---- layout_blocked ---- */

static void check_blocked(B *b, const char *mode, const char *want)
{
    setenv("NNC_BLOCKED", mode, 1);
    check_pass(b, pass_layout_blocked, "pass_layout_blocked", want);
    unsetenv("NNC_BLOCKED");
}

/* An inverted residual: expand (relu6), depthwise (relu6), project, + x, then
 * a pool and a flatten. Everything up to the add is blocked; x is reordered
 * once for both its readers (the expand and the add); the max pool stays
 * blocked; the flatten reads NCHW, through a reorder. */
static B inverted_residual(void)
{
    B b = begin("t", shp(3, 8, 6, 6, 0));
    int32_t e = convk(&b, 0, "expand", 24, 1, 1, 1, true);
    b.g->nodes[b.g->values[e].node].attr.conv.epi.act = ACT_RELU6;
    int32_t d = convk(&b, e, "dw", 24, 3, 1, 24, true);
    b.g->nodes[b.g->values[d].node].attr.conv.epi.act = ACT_RELU6;
    int32_t p = convk(&b, d, "project", 8, 1, 1, 1, false);
    int32_t f = unary(&b, OP_FLATTEN, pool(&b, OP_MAXPOOL2D, add(&b, p, 0), 2, 2));
    ir_add_output(b.g, "y", f);
    return b;
}

static void test_blocked_inverted_residual(void **state)
{
    (void)state;
    B b = inverted_residual();
    check_blocked(&b, "auto", "graph t\n"
                              "  input  %0 x [8, 6, 6]\n"
                              "  param  %1 expand.weight [24, 8, 1, 1]\n"
                              "  param  %2 expand.bias [24]\n"
                              "  param  %3 dw.weight [24, 1, 3, 3]\n"
                              "  param  %4 dw.bias [24]\n"
                              "  param  %5 project.weight [8, 24, 1, 1]\n"
                              "  %6 = reorder(%0) to=nchw16c [8, 6, 6] nchw16c\n"
                              "  %7 = conv2d(%6, %1, %2) k=1x1 s=1x1 p=0x0 d=1x1 g=1 relu6 +blocked [24, 6, 6] nchw16c   # t.net:1:3\n"
                              "  %8 = conv2d(%7, %3, %4) k=3x3 s=1x1 p=1x1 d=1x1 g=24 relu6 +blocked [24, 6, 6] nchw16c   # t.net:2:3\n"
                              "  %9 = conv2d(%8, %5) k=1x1 s=1x1 p=0x0 d=1x1 g=1 +blocked [8, 6, 6] nchw16c   # t.net:3:3\n"
                              "  %10 = add(%9, %6) [8, 6, 6] nchw16c   # t.net:4:3\n"
                              "  %11 = maxpool2d(%10) k=2x2 s=2x2 p=0x0 +blocked [8, 3, 3] nchw16c   # t.net:5:3\n"
                              "  %12 = reorder(%11) to=nchw [8, 3, 3]   # t.net:5:3\n"
                              "  %13 = flatten(%12) [72]   # t.net:6:3\n"
                              "  output y = %13\n");
    /* NNC_BLOCKED=0: never */
    b = inverted_residual();
    check_blocked(&b, "0", NULL);
}

/* NNC_BLOCKED=0 leaves the graph alone; auto and NNC_BLOCKED=1 block every
 * convolution here (none runs by Winograd: 4 output tiles of 4x4 are too
 * few): a 3-channel stem reads its NCHW input and
 * writes NCHW16c (no reorder, no padding of 3 channels to 16). A blocked
 * graph output comes back in NCHW; global_avgpool reads the blocked tensor
 * itself. */
static void test_blocked_stem_and_outputs(void **state)
{
    (void)state;
    B b = begin("t", shp(3, 3, 8, 8, 0));
    int32_t s = convk(&b, 0, "stem", 16, 3, 2, 1, true);
    int32_t c = convk(&b, s, "c", 20, 3, 1, 1, false);
    ir_add_output(b.g, "feat", c);
    ir_add_output(b.g, "pooled", unary(&b, OP_GLOBAL_AVGPOOL, c));
    check_blocked(&b, "0", NULL);
    b = begin("t", shp(3, 3, 8, 8, 0));
    s = convk(&b, 0, "stem", 16, 3, 2, 1, true);
    c = convk(&b, s, "c", 20, 3, 1, 1, false);
    ir_add_output(b.g, "feat", c);
    ir_add_output(b.g, "pooled", unary(&b, OP_GLOBAL_AVGPOOL, c));
    check_blocked(&b, "1", "graph t\n"
                           "  input  %0 x [3, 8, 8]\n"
                           "  param  %1 stem.weight [16, 3, 3, 3]\n"
                           "  param  %2 stem.bias [16]\n"
                           "  param  %3 c.weight [20, 16, 3, 3]\n"
                           "  %4 = conv2d(%0, %1, %2) k=3x3 s=2x2 p=1x1 d=1x1 g=1 +blocked [16, 4, 4] nchw16c   # t.net:1:3\n"
                           "  %5 = conv2d(%4, %3) k=3x3 s=1x1 p=1x1 d=1x1 g=1 +blocked [20, 4, 4] nchw16c   # t.net:2:3\n"
                           "  %6 = global_avgpool(%5) [20, 1, 1]   # t.net:3:3\n"
                           "  %7 = reorder(%5) to=nchw [20, 4, 4]   # t.net:2:3\n"
                           "  output feat = %7\n"
                           "  output pooled = %6\n");
}

/* The verifier refuses a blocked convolution fed NCHW, and an add of two layouts. */
static void test_blocked_verify(void **state)
{
    (void)state;
    char err[256] = "";
    B b = begin("t", shp(3, 16, 4, 4, 0));
    int32_t c = convk(&b, 0, "c", 16, 3, 1, 1, false);
    b.g->nodes[b.g->values[c].node].attr.conv.blocked = true;
    b.g->values[c].layout = LAYOUT_NCHW16C;
    assert_false(ir_verify(b.g, err, sizeof err));
    assert_non_null(strstr(err, "reads %0 in nchw where it takes nchw16c"));
    ir_free(b.g);
    b = begin("t", shp(3, 16, 4, 4, 0));
    IrAttr a = {.reorder = {LAYOUT_NCHW16C}};
    int32_t r = node(&b, OP_REORDER, (int32_t[]){0}, 1, &a, NULL);
    add(&b, r, 0);
    assert_false(ir_verify(b.g, err, sizeof err));
    assert_non_null(strstr(err, "reads %0 in nchw where it takes nchw16c"));
    ir_free(b.g);
}

/* ---- the zoo: issue 4's "done when" ---- */

static void test_zoo_done_when(void **state)
{
    (void)state;
    const char *names[] = {"resnet50", "googlenet", "densenet121", "mobilenet_v2"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char err[512] = "";
        IrGraph *g = compile_model(names[i]);
        int before = g->n_nodes;
        if (!pass_run_pipeline(g, 2, err, sizeof err)) fail_msg("%s: -O2: %s", names[i], err);
        int standalone = 0, copies = 0;
        bool *is_const = calloc((size_t)g->n_values, sizeof *is_const);
        ir_mark_constants(g, is_const);
        for (int32_t j = 0; j < g->n_nodes; j++) {  /* (joined weights are constant concats: they run at create) */
            const IrNode *n = &g->nodes[j];
            standalone += n->op == OP_BATCHNORM || n->op == OP_ADD || ir_ops[n->op].act != ACT_NONE;
            copies += n->op == OP_CONCAT && !n->attr.concat.in_place && !is_const[n->out];
        }
        free(is_const);
        assert_non_null(g->plan);  /* the pipeline's last pass, for a batch of 1 */
        int64_t ws = g->plan->ws_bytes, lb = g->plan->lower_bound;
        print_message("%-13s nodes %4d -> %4d, kernels %3d, workspace %lld bytes, bound %lld (%.3f)\n", names[i],
                      before, g->n_nodes, pass_count_kernels(g), (long long)ws, (long long)lb, (double)ws / (double)lb);
        assert_int_equal(standalone, 0);
        assert_int_equal(copies, 0);
        assert_true(ws * 100 <= lb * 105);
        ir_free(g);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bn_train_conv_bn_relu),
        cmocka_unit_test(test_bn_train_keeps_silu),
        cmocka_unit_test(test_bn_train_not),
        cmocka_unit_test(test_prologue_bn_relu_conv),
        cmocka_unit_test(test_prologue_bn_conv),
        cmocka_unit_test(test_prologue_global_pool),
        cmocka_unit_test(test_prologue_not),
        cmocka_unit_test(test_prologue_then_epilogue),
        cmocka_unit_test(test_dwpw_inverted_residual),
        cmocka_unit_test(test_dwpw_stride2),
        cmocka_unit_test(test_dwpw_not),
        cmocka_unit_test(test_siblings_inception),
        cmocka_unit_test(test_siblings_bottleneck),
        cmocka_unit_test(test_siblings_not),
        cmocka_unit_test(test_concat_inception),
        cmocka_unit_test(test_concat_dense_block),
        cmocka_unit_test(test_concat_not),
        cmocka_unit_test(test_blocked_inverted_residual),
        cmocka_unit_test(test_blocked_stem_and_outputs),
        cmocka_unit_test(test_blocked_verify),
        cmocka_unit_test(test_zoo_done_when),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
