/* test_cleanup.c: the clean-up passes (passes/cleanup.c, passes/dce.c) at the
 * IR level: a small graph before, the exact graph after (ir_print text),
 * including the cases where a rewrite must not fire. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "frontend/frontend.h"
#include "passes/passes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Compiles src, runs pass (cleanup, or the -O level when pass is NULL), and
 * returns the printed graph, with the parameter lines left out. */
static char *after(const char *src, bool (*pass)(IrGraph *, char *, size_t), int level)
{
    Arena a = {0};
    Diag d;
    diag_init(&d, &a);
    IrGraph *g = fe_compile_text("t.net", src, strlen(src), NULL, &d);
    if (!g) fail_msg("%s", d.out.data);
    char err[512];
    bool ok = pass ? pass(g, err, sizeof err) : pass_run_pipeline(g, level, err, sizeof err);
    if (!ok) fail_msg("pass failed: %s", err);
    if (!ir_verify(g, err, sizeof err)) fail_msg("ir_verify: %s", err);
    StrBuf sb = {0}, out = {0};
    ir_print(g, &sb);
    for (char *line = strtok(sb.data, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "  param", 7) == 0) continue;
        char *hash = strstr(line, "   #");  /* source positions: not what these tests are about */
        if (hash) *hash = 0;
        sb_printf(&out, "%s\n", line);
    }
    sb_free(&sb);
    ir_free(g);
    diag_free(&d);
    arena_free(&a);
    return out.data;
}

static void expect(const char *src, bool (*pass)(IrGraph *, char *, size_t), int level, const char *want)
{
    char *got = after(src, pass, level);
    if (strcmp(got, want) != 0) fail_msg("after the pass:\n%s\nexpected:\n%s", got, want);
    free(got);
}

static void test_identity_and_dropout_removed(void **state)
{
    (void)state;
    expect("network t { input x: [4] output y = x |> dropout |> identity |> relu |> dropout(p: 0.1) }",
           pass_cleanup, 0,
           "graph t\n"
           "  input  %0 x [4]\n"
           "  %1 = relu(%0) [4]\n"
           "  output y = %1\n");
    /* an output that is only an identity of the input becomes the input itself */
    expect("network t { input x: [4] output y = identity(x) }", pass_cleanup, 0,
           "graph t\n"
           "  input  %0 x [4]\n"
           "  output y = %0\n");
}

static void test_cse(void **state)
{
    (void)state;
    /* the same op on the same input with the same attributes: once */
    expect("network t { input x: [2, 8, 8] a = maxpool(x, 2) b = maxpool(x, 2) output y = a + b }", pass_cleanup, 0,
           "graph t\n"
           "  input  %0 x [2, 8, 8]\n"
           "  %1 = maxpool2d(%0) k=2x2 s=2x2 p=0x0 [2, 4, 4]\n"
           "  %2 = add(%1, %1) [2, 4, 4]\n"
           "  output y = %2\n");
    /* must not fire: other attributes, other inputs, other ops */
    expect("network t { input x: [2, 8, 8] a = maxpool(x, 2) b = maxpool(x, 2, stride: 1, pad: 1, ceil: true)\n"
           "  output y = concat(a |> relu, a |> sigmoid, b |> relu |> maxpool(2)) }",
           pass_cleanup, 0,
           "graph t\n"
           "  input  %0 x [2, 8, 8]\n"
           "  %1 = maxpool2d(%0) k=2x2 s=2x2 p=0x0 [2, 4, 4]\n"
           "  %2 = maxpool2d(%0) k=2x2 s=1x1 p=1x1 ceil [2, 9, 9]\n"
           "  %3 = relu(%1) [2, 4, 4]\n"
           "  %4 = sigmoid(%1) [2, 4, 4]\n"
           "  %5 = relu(%2) [2, 9, 9]\n"
           "  %6 = maxpool2d(%5) k=2x2 s=2x2 p=0x0 [2, 4, 4]\n"
           "  %7 = concat(%3, %4, %6) axis=0 [6, 4, 4]\n"
           "  output y = %7\n");
    /* two convolutions of the same input have their own weights: not the same */
    expect("network t { input x: [2, 4, 4] output y = conv(x, 2, 1) + conv(x, 2, 1) }", pass_cleanup, 0,
           "graph t\n"
           "  input  %0 x [2, 4, 4]\n"
           "  %5 = conv2d(%0, %1, %2) k=1x1 s=1x1 p=0x0 d=1x1 g=1 [2, 4, 4]\n"
           "  %6 = conv2d(%0, %3, %4) k=1x1 s=1x1 p=0x0 d=1x1 g=1 [2, 4, 4]\n"
           "  %7 = add(%5, %6) [2, 4, 4]\n"
           "  output y = %7\n");
}

static void test_pipeline_levels(void **state)
{
    (void)state;
    const char *src = "network t { input x: [4] input unused: [2] dead = x |> sigmoid\n"
                      "  output y = x |> dropout |> relu |> identity }";
    /* -O0: nothing changes */
    expect(src, NULL, 0,
           "graph t\n"
           "  input  %0 x [4]\n"
           "  input  %1 unused [2]\n"
           "  %2 = sigmoid(%0) [4]\n"
           "  %3 = dropout(%0) p=0.5 [4]\n"
           "  %4 = relu(%3) [4]\n"
           "  %5 = identity(%4) [4]\n"
           "  output y = %5\n");
    /* -O1: clean-up and dead code; inputs stay (they are the API) */
    expect(src, NULL, 1,
           "graph t\n"
           "  input  %0 x [4]\n"
           "  input  %1 unused [2]\n"
           "  %2 = relu(%0) [4]\n"
           "  output y = %2\n");
}

static void test_pass_names(void **state)
{
    (void)state;
    assert_true(pass_known("cleanup"));
    assert_true(pass_known("dce"));
    assert_true(pass_known("all"));
    assert_false(pass_known("nope"));
    StrBuf names = {0};
    pass_list(&names);
    assert_non_null(strstr(names.data, "cleanup"));
    sb_free(&names);
    /* --print-after dumps the IR after the named pass */
    Arena a = {0};
    Diag d;
    diag_init(&d, &a);
    const char *src = "network t { input x: [4] output y = x |> dropout |> relu }";
    IrGraph *g = fe_compile_text("t.net", src, strlen(src), NULL, &d);
    assert_non_null(g);
    StrBuf dump = {0};
    char err[256];
    assert_true(pass_run_pipeline_dump(g, 2, "cleanup", &dump, err, sizeof err));
    assert_non_null(strstr(dump.data, "# after cleanup\ngraph t\n"));
    assert_null(strstr(dump.data, "# after dce"));
    assert_null(strstr(dump.data, "dropout"));
    sb_free(&dump);
    ir_free(g);
    diag_free(&d);
    arena_free(&a);
}

/* The training form: identity goes, dropout stays, and dropout and batchnorm
 * are never merged (two masks; two updates of the running statistics); other
 * ops still are. */
static void test_cleanup_train(void **state)
{
    (void)state;
    const char *src = "network t { input x: [2, 8, 8] a = x |> identity |> dropout\n"
                      "  output y = concat(a, dropout(x), batchnorm(a), dropout(x)) +\n"
                      "             concat(maxpool(x, 3, stride: 1, pad: 1), maxpool(x, 3, stride: 1, pad: 1),\n"
                      "                    x, x) }";
    expect(src, pass_cleanup_train, 0,
           "graph t\n"
           "  input  %0 x [2, 8, 8]\n"
           "  %5 = dropout(%0) p=0.5 [2, 8, 8]\n"
           "  %6 = dropout(%0) p=0.5 [2, 8, 8]\n"
           "  %7 = batchnorm(%5, %1, %2, %3, %4) eps=1e-05 momentum=0.1 [2, 8, 8]\n"
           "  %8 = dropout(%0) p=0.5 [2, 8, 8]\n"
           "  %9 = concat(%5, %6, %7, %8) axis=0 [8, 8, 8]\n"
           "  %10 = maxpool2d(%0) k=3x3 s=1x1 p=1x1 [2, 8, 8]\n"
           "  %11 = concat(%10, %10, %0, %0) axis=0 [8, 8, 8]\n"
           "  %12 = add(%9, %11) [8, 8, 8]\n"
           "  output y = %12\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity_and_dropout_removed),
        cmocka_unit_test(test_cse),
        cmocka_unit_test(test_cleanup_train),
        cmocka_unit_test(test_pipeline_levels),
        cmocka_unit_test(test_pass_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
