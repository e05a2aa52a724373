/* frontend_test.h: what the frontend tests share (test_frontend_syntax.c,
 * test_frontend_elab.c, test_frontend_files.c): compiling a program as
 * "test.net" expecting success (and a graph that passes ir_verify) or failure,
 * and reading shapes, parameters, op counts and values back from the graph.
 * Included by one test file each, after cmocka.h; every helper is static and
 * may go unused. */
#ifndef NNC_TEST_FRONTEND_TEST_H
#define NNC_TEST_FRONTEND_TEST_H

#include "frontend/ast.h"
#include "frontend/frontend.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wunused-function"
#endif

static void verify_or_fail(const IrGraph *g)
{
    char err[512];
    if (!ir_verify(g, err, sizeof err)) fail_msg("ir_verify: %s", err);
}

/* Compiles src (as "test.net") and returns the graph, failing the test on any diagnostic. */
static IrGraph *compile_ok_opt(const char *src, const FeOptions *opt)
{
    Arena a = {0};
    Diag d;
    diag_init(&d, &a);
    IrGraph *g = fe_compile_text("test.net", src, strlen(src), opt, &d);
    if (!g) fprintf(stderr, "unexpected diagnostics for\n%s\n%s", src, d.out.data ? d.out.data : "(none)\n");
    assert_non_null(g);
    assert_int_equal(d.errors, 0);
    diag_free(&d);
    arena_free(&a);
    verify_or_fail(g);
    return g;
}

static IrGraph *compile_ok(const char *src) { return compile_ok_opt(src, NULL); }

/* Compiles src expecting failure; returns the diagnostics (free them). */
static char *compile_fail_opt(const char *src, const FeOptions *opt)
{
    Arena a = {0};
    Diag d;
    diag_init(&d, &a);
    IrGraph *g = fe_compile_text("test.net", src, strlen(src), opt, &d);
    if (g) fprintf(stderr, "compiled, but should not have:\n%s\n", src);
    assert_null(g);
    assert_true(d.errors > 0);
    assert_non_null(d.out.data);
    char *out = strdup(d.out.data);
    diag_free(&d);
    arena_free(&a);
    return out;
}

static char *compile_fail(const char *src) { return compile_fail_opt(src, NULL); }

static void assert_contains(const char *text, const char *part)
{
    if (!strstr(text, part)) fail_msg("expected to find \"%s\" in:\n%s", part, text);
}

static const IrShape *output_shape(const IrGraph *g, int i)
{
    assert_true(i < g->n_outputs);
    return &g->values[g->outputs[i].value].shape;
}

/* Compares a shape with its printed form, "[3, 8, 8]". */
static void assert_shape(const IrShape *s, const char *want)
{
    char buf[96];
    ir_shape_str(s, buf, sizeof buf);
    if (strcmp(buf, want) != 0) fail_msg("shape %s, expected %s", buf, want);
}

static const IrValue *find_param(const IrGraph *g, const char *name)
{
    for (int32_t i = 0; i < g->n_params; i++)
        if (strcmp(g->values[g->params[i]].name, name) == 0) return &g->values[g->params[i]];
    return NULL;
}

static int count_ops(const IrGraph *g, OpKind op)
{
    int n = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) n += g->nodes[i].op == op;
    return n;
}

/* The value of an integer expression, read back through linear's width. */
static int64_t eval_int(const char *prelude, const char *expr)
{
    char src[2048];
    snprintf(src, sizeof src,
             "network t {\n    input x: [1]\n    %s\n    output y = x |> linear(100000 + (%s))\n}\n", prelude, expr);
    IrGraph *g = compile_ok(src);
    int64_t v = output_shape(g, 0)->dim[0] - 100000;
    ir_free(g);
    return v;
}

/* The value of a boolean expression, read back through which branch ran. */
static bool eval_bool(const char *prelude, const char *expr)
{
    char src[2048];
    snprintf(src, sizeof src,
             "network t {\n    input x: [1]\n    %s\n    w = 2\n    if %s { w = 1 }\n    output y = x |> linear(w)\n}\n",
             prelude, expr);
    IrGraph *g = compile_ok(src);
    bool v = output_shape(g, 0)->dim[0] == 1;
    ir_free(g);
    return v;
}

#endif
