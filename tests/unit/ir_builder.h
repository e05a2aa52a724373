/* ir_builder.h: small graphs built by hand for the pass tests (test_fold_bn.c,
 * test_fuse_epilogue.c), and the before/after check they share: run a pass,
 * print the graph, compare the text. Included by one test file each; every
 * helper is static and may go unused. */
#ifndef NNC_TEST_IR_BUILDER_H
#define NNC_TEST_IR_BUILDER_H

#include "frontend/frontend.h"
#include "ir/ir.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wunused-function"
#endif

typedef struct {
    IrGraph *g;
    int line;
} B;

static IrShape shp(int rank, int64_t a, int64_t b, int64_t c, int64_t d)
{
    IrShape s = {rank, {a, b, c, d}};
    return s;
}

static int32_t node(B *b, OpKind op, const int32_t *ins, int n_in, const IrAttr *attr, const char *scope)
{
    char err[256] = "";
    IrLoc loc = {"t.net", b->line++, 3};
    int32_t v = ir_add_node(b->g, op, ins, n_in, attr, loc, scope, err, sizeof err);
    if (v < 0) fail_msg("ir_add_node(%s): %s", ir_ops[op].name, err);
    return v;
}

static int32_t param(B *b, const char *scope, const char *leaf, IrShape s)
{
    char name[128];
    snprintf(name, sizeof name, "%s.%s", scope, leaf);
    return ir_add_param(b->g, name, &s, INIT_NONE, 0);
}

static int32_t conv(B *b, int32_t x, const char *scope, int k, int groups, bool bias, bool transposed)
{
    int64_t c = b->g->values[x].shape.dim[0];
    IrAttr a = {.conv = {.kh = 3, .kw = 3, .sh = 1, .sw = 1, .ph = 1, .pw = 1, .dh = 1, .dw = 1, .groups = groups,
                         .out_channels = k, .bias = bias}};
    int32_t ins[3] = {x, param(b, scope, "weight", transposed ? shp(4, c, k / groups, 3, 3) : shp(4, k, c / groups, 3, 3)),
                      bias ? param(b, scope, "bias", shp(1, k, 0, 0, 0)) : -1};
    return node(b, transposed ? OP_CONV_T2D : OP_CONV2D, ins, bias ? 3 : 2, &a, scope);
}

static int32_t linear(B *b, int32_t x, const char *scope, int out)
{
    IrAttr a = {.linear = {.out_features = out, .bias = true}};
    int32_t ins[3] = {x, param(b, scope, "weight", shp(2, out, b->g->values[x].shape.dim[0], 0, 0)),
                      param(b, scope, "bias", shp(1, out, 0, 0, 0))};
    return node(b, OP_LINEAR, ins, 3, &a, scope);
}

static int32_t bn(B *b, int32_t x, const char *scope)
{
    IrShape c = shp(1, b->g->values[x].shape.dim[0], 0, 0, 0);
    IrAttr a = {.bn = {.eps = 1e-5f, .momentum = 0.1f}};
    int32_t ins[5] = {x, param(b, scope, "weight", c), param(b, scope, "bias", c), param(b, scope, "running_mean", c),
                      param(b, scope, "running_var", c)};
    return node(b, OP_BATCHNORM, ins, 5, &a, scope);
}

static int32_t unary(B *b, OpKind op, int32_t x) { return node(b, op, &x, 1, NULL, NULL); }

static int32_t add(B *b, int32_t x, int32_t y)
{
    int32_t ins[2] = {x, y};
    return node(b, OP_ADD, ins, 2, NULL, NULL);
}

static int32_t relu(B *b, int32_t x) { return unary(b, OP_RELU, x); }

static B begin(const char *name, IrShape in)
{
    B b = {ir_new(name), 1};
    ir_add_input(b.g, "x", &in);
    return b;
}

static char *print(const IrGraph *g)
{
    StrBuf sb = {0};
    ir_print(g, &sb);
    char *s = strdup(sb.data);
    sb_free(&sb);
    return s;
}

/* Runs pass on b.g and compares the printed graph with want (NULL: unchanged). */
static void check_pass(B *b, bool (*pass)(IrGraph *, char *, size_t), const char *pass_name, const char *want)
{
    char err[512] = "";
    char *before = print(b->g);
    if (!ir_verify(b->g, err, sizeof err)) fail_msg("before: %s", err);
    if (!pass(b->g, err, sizeof err)) fail_msg("%s: %s", pass_name, err);
    if (!ir_verify(b->g, err, sizeof err)) fail_msg("after: %s", err);
    char *after = print(b->g);
    if (strcmp(after, want ? want : before) != 0) {
        fprintf(stderr, "after %s:\n%s\nwanted:\n%s", pass_name, after, want ? want : before);
        fail_msg("the graph after %s differs (above)", pass_name);
    }
    free(before);
    free(after);
    ir_free(b->g);
}

/* A zoo model (models/NAME.net), elaborated, no pass run. */
static IrGraph *compile_model(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/models/%s.net", NNC_SOURCE_DIR, name);
    Arena a = {0};
    Diag d;
    diag_init(&d, &a);
    IrGraph *g = fe_compile(path, NULL, &d);
    if (!g) fail_msg("%s: %s", path, d.out.data ? d.out.data : "(no message)");
    diag_free(&d);
    arena_free(&a);
    return g;
}

static int count_op(const IrGraph *g, OpKind op)
{
    int k = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) k += g->nodes[i].op == op;
    return k;
}

#endif
