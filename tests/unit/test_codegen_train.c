/* test_codegen_train.c: the training module's refusals name their place.
 *
 * cg_emit_train_c refuses a network it cannot train (here: two inputs) with
 * a message about the network. With CgTrainOptions.err_loc set, the place
 * (the network's declaration, IrGraph.loc: file, line, column) comes back
 * through err_loc and the message leaves it out, for the caller to print with
 * its source line and a caret (nnc --emit=train, frontend.h diag_error_at);
 * without err_loc, the message starts with "FILE:LINE:COL: ". The graph comes
 * from .net text through the frontend and the training pipeline, as nnc
 * builds it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "codegen/emit_train.h"
#include "frontend/frontend.h"
#include "passes/passes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The network is declared at line 3; its place is its name, column 9. */
static const char two_inputs_net[] = "# two inputs: nothing to feed the images to\n"
                                     "\n"
                                     "network twin {\n"
                                     "    input left: [4]\n"
                                     "    input right: [4]\n"
                                     "    output logits = concat(left, right) |> linear(3) as fc\n"
                                     "}\n";

/* Compiles src as "twin.net" and runs the training pipeline on it. */
static IrGraph *training_graph(const char *src)
{
    Arena a = {0};
    Diag d;
    char err[512] = "";
    diag_init(&d, &a);
    IrGraph *g = fe_compile_text("twin.net", src, strlen(src), NULL, &d);
    if (!g) fail_msg("the frontend refused the test network:\n%s", d.out.data ? d.out.data : "(no diagnostics)");
    assert_int_equal(d.errors, 0);
    diag_free(&d);
    arena_free(&a);
    if (!pass_run_training_pipeline(g, 2, 4, NULL, NULL, err, sizeof err)) fail_msg("pass_run_training_pipeline: %s", err);
    assert_int_equal(g->n_inputs, 2);
    return g;
}

static void test_two_inputs_err_loc(void **state)
{
    (void)state;
    IrGraph *g = training_graph(two_inputs_net);
    StrBuf c = {0}, h = {0};
    char err[512] = "";
    IrLoc loc = {"stale", 99, 99};
    CgTrainOptions opt = {.max_batch = 4, .header_name = "twin_train.h", .err_loc = &loc};
    assert_false(cg_emit_train_c(g, &opt, &c, &h, err, sizeof err));
    assert_non_null(loc.file);
    assert_string_equal(loc.file, "twin.net");
    assert_int_equal(loc.line, 3);
    assert_int_equal(loc.col, 9);
    assert_non_null(strstr(err, "2 inputs"));
    assert_non_null(strstr(err, "twin"));
    assert_null(strstr(err, "twin.net"));  /* the position is err_loc's, not the message's */
    assert_null(strstr(err, ":3:"));
    sb_free(&c);
    sb_free(&h);
    ir_free(g);
}

static void test_two_inputs_position_in_message(void **state)
{
    (void)state;
    IrGraph *g = training_graph(two_inputs_net);
    StrBuf c = {0}, h = {0};
    char err[512] = "", alone[512] = "";
    IrLoc loc = {NULL, 0, 0};
    CgTrainOptions with = {.max_batch = 4, .header_name = "twin_train.h", .err_loc = &loc};
    assert_false(cg_emit_train_c(g, &with, &c, &h, alone, sizeof alone));
    sb_free(&c);
    sb_free(&h);
    CgTrainOptions opt = {.max_batch = 4, .header_name = "twin_train.h"};
    assert_false(cg_emit_train_c(g, &opt, &c, &h, err, sizeof err));
    const char *prefix = "twin.net:3:9: ";
    if (strncmp(err, prefix, strlen(prefix)) != 0) fail_msg("the message '%s' does not start with '%s'", err, prefix);
    assert_string_equal(err + strlen(prefix), alone);  /* the same sentence after the position */
    sb_free(&c);
    sb_free(&h);
    ir_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_inputs_err_loc),
        cmocka_unit_test(test_two_inputs_position_in_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
