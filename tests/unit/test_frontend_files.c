/* test_frontend_files.c: files, imports, the choice of network, --set, and
 * the graph the frontend hands on (dead-code elimination, the printer). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frontend_test.h"
#include "passes/passes.h"

/* ---- files, networks and --set ---- */

static char tmpdir[256];

static void write_file(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, rel);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int make_tmpdir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/nnc_test_frontend_XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    char sub[512];
    snprintf(sub, sizeof sub, "%s/lib", tmpdir);
    return mkdir(sub, 0700);
}

static int remove_tmpdir(void **state)
{
    (void)state;
    const char *files[] = {"main.net", "lib/blocks.net", "lib/acts.net", "cycle_a.net", "cycle_b.net", "bad.net",
                           "lib/broken.net", "text.net"};
    char path[512];
    for (size_t i = 0; i < NNC_COUNT(files); i++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, files[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/lib", tmpdir);
    rmdir(path);
    return rmdir(tmpdir);
}

static void test_import(void **state)
{
    (void)state;
    /* main imports lib/blocks.net, which imports acts.net next to itself; main imports acts twice over */
    write_file("lib/acts.net", "block act(x) { return relu(x) }\n");
    write_file("lib/blocks.net", "import \"acts.net\"\nblock conv_act(x, c) { return x |> conv(c, 3, pad: 1) |> act }\n");
    write_file("main.net", "import \"lib/blocks.net\"\nimport \"lib/acts.net\"\n"
                           "network m { input x: [3, 8, 8] output y = x |> conv_act(5) |> act }\n");
    char path[512];
    snprintf(path, sizeof path, "%s/main.net", tmpdir);
    Arena a = {0};
    Diag d;
    diag_init(&d, &a);
    IrGraph *g = fe_compile(path, NULL, &d);
    if (!g) fail_msg("%s", d.out.data);
    verify_or_fail(g);
    assert_shape(output_shape(g, 0), "[5, 8, 8]");
    assert_int_equal(count_ops(g, OP_RELU), 2);
    assert_non_null(find_param(g, "conv_act0.conv0.weight"));
    ir_free(g);
    diag_free(&d);
    arena_free(&a);
    /* fe_compile_text resolves imports next to the path it is given */
    snprintf(path, sizeof path, "%s/text.net", tmpdir);
    const char *text = "import \"lib/blocks.net\"\nnetwork m { input x: [3, 8, 8] output y = conv_act(x, 2) }\n";
    diag_init(&d, &a);
    g = fe_compile_text(path, text, strlen(text), NULL, &d);
    if (!g) fail_msg("%s", d.out.data);
    ir_free(g);
    diag_free(&d);
    arena_free(&a);
    /* imports that form a cycle are read once each */
    write_file("cycle_a.net", "import \"cycle_b.net\"\nnetwork m { input x: [4] output y = bb(x) }\n");
    write_file("cycle_b.net", "import \"cycle_a.net\"\nblock bb(x) { return relu(x) }\n");
    snprintf(path, sizeof path, "%s/cycle_a.net", tmpdir);
    diag_init(&d, &a);
    g = fe_compile(path, NULL, &d);
    if (!g) fail_msg("%s", d.out.data);
    ir_free(g);
    diag_free(&d);
    arena_free(&a);
    /* an error inside an imported file is reported there, with the call chain back to main */
    write_file("lib/broken.net", "block widen(x) {\n    return x + conv(x, 8, 1)\n}\n");
    write_file("bad.net", "import \"lib/broken.net\"\nnetwork m {\n    input x: [3, 4, 4]\n    output y = widen(x)\n}\n");
    snprintf(path, sizeof path, "%s/bad.net", tmpdir);
    diag_init(&d, &a);
    assert_null(fe_compile(path, NULL, &d));
    assert_contains(d.out.data, "lib/broken.net:2:14: error: cannot add tensors of shapes [3, 4, 4] and [8, 4, 4]");
    assert_contains(d.out.data, "bad.net:4:16: note: in block 'widen', called here");
    diag_free(&d);
    arena_free(&a);
}

static void test_network_selection(void **state)
{
    (void)state;
    const char *src = "network small { input x: [4] output y = relu(x) }\n"
                      "network large { input x: [4] output y = x |> linear(100) }\n";
    FeOptions opt = {0};
    opt.network = "large";
    IrGraph *g = compile_ok_opt(src, &opt);
    assert_string_equal(g->name, "large");
    assert_shape(output_shape(g, 0), "[100]");
    ir_free(g);
    opt.network = "small";
    g = compile_ok_opt(src, &opt);
    assert_string_equal(g->name, "small");
    ir_free(g);
    opt.network = "medium";
    char *err = compile_fail_opt(src, &opt);
    assert_string_equal(err, "test.net:1:9: error: no network named 'medium' (given with --network); this file defines: small, large\n"
                             "    network small { input x: [4] output y = relu(x) }\n"
                             "            ^\n");
    free(err);
    err = compile_fail(src);
    assert_contains(err, "test.net:2:9: error: the file defines several networks (small, large); pick one with --network NAME");
    free(err);
    /* a single network needs no name; --network may still name it */
    opt.network = "only";
    g = compile_ok_opt("network only { input x: [4] output y = relu(x) }", &opt);
    ir_free(g);
    err = compile_fail("block b(x) { return x }");
    assert_string_equal(err, "test.net:1:1: error: the file defines no network; write 'network NAME { ... }'\n"
                             "    block b(x) { return x }\n"
                             "    ^\n");
    free(err);
    /* an empty file: the position, and no source line to show */
    err = compile_fail("");
    assert_string_equal(err, "test.net:1:1: error: the file defines no network; write 'network NAME { ... }'\n");
    free(err);
    err = compile_fail("# only a comment\n");
    assert_contains(err, "test.net:1:1: error: the file defines no network");
    free(err);
    /* a --network name with control bytes and invalid UTF-8 reaches the terminal escaped */
    opt.network = "\033[2J\xff\xc2\x9b";
    err = compile_fail_opt(src, &opt);
    assert_contains(err, "no network named '\\x1b[2J\\xff\\xc2\\x9b' (given with --network)");
    assert_null(strchr(err, '\033'));
    free(err);
}

static void test_defines(void **state)
{
    (void)state;
    const char *src = "network t(classes = 10, bias = true, p = 0.5, width) {\n"
                      "    input x: [8]\n"
                      "    output y = x |> linear(width) |> dropout(p) |> linear(classes, bias: bias)\n"
                      "}\n";
    FeDefine defs[] = {{"classes", "5"}, {"bias", "false"}, {"p", "0.25"}, {"width", "16"}};
    FeOptions opt = {0};
    opt.defines = defs;
    opt.n_defines = 4;
    IrGraph *g = compile_ok_opt(src, &opt);
    assert_shape(output_shape(g, 0), "[5]");
    assert_null(find_param(g, "linear1.bias"));
    assert_shape(&find_param(g, "linear0.weight")->shape, "[16, 8]");
    bool found = false;
    for (int32_t i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].op == OP_DROPOUT) {
            found = true;
            assert_true(g->nodes[i].attr.dropout.p == 0.25f);
        }
    assert_true(found);
    ir_free(g);
    /* without --set width, the parameter has no value */
    opt.n_defines = 3;
    char *err = compile_fail_opt(src, &opt);
    assert_contains(err, "test.net:1:47: error: network parameter 'width' has no default; give a value with --set width=VALUE");
    free(err);
    FeDefine bad_name[] = {{"width", "16"}, {"depth", "3"}};
    opt.defines = bad_name;
    opt.n_defines = 2;
    err = compile_fail_opt(src, &opt);
    assert_string_equal(err, "nnc: error: --set depth: network 't' has no parameter 'depth'\n");
    free(err);
    FeDefine bad_value[] = {{"width", "sixteen"}};
    opt.defines = bad_value;
    opt.n_defines = 1;
    err = compile_fail_opt(src, &opt);
    assert_contains(err, "--set width=sixteen: the value must be an integer, a number, true or false");
    free(err);
    FeDefine huge[] = {{"width", "99999999999999999999"}};
    opt.defines = huge;
    err = compile_fail_opt(src, &opt);
    assert_contains(err, "too large");
    free(err);
}

/* ---- the graph and the passes ---- */

static void test_dce(void **state)
{
    (void)state;
    IrGraph *g = compile_ok("network t {\n"
                            "    input a: [3, 8, 8]\n"
                            "    input unused: [10]\n"
                            "    dead = a |> conv(4, 3) |> relu\n"
                            "    also_dead = unused |> linear(3)\n"
                            "    output y = a |> conv(8, 3) as live |> relu\n"
                            "}\n");
    assert_int_equal(g->n_nodes, 5);
    assert_int_equal(g->n_params, 6);
    char err[512];
    assert_true(pass_run_pipeline(g, 1, err, sizeof err));
    verify_or_fail(g);
    assert_int_equal(g->n_nodes, 2);
    assert_int_equal(g->n_params, 2);
    assert_non_null(find_param(g, "live.weight"));
    assert_null(find_param(g, "conv0.weight"));
    assert_int_equal(g->n_inputs, 2);  /* inputs stay: they are the API's arguments */
    assert_string_equal(g->values[g->inputs[1]].name, "unused");
    assert_shape(output_shape(g, 0), "[8, 6, 6]");
    ir_free(g);
    /* -O0 keeps everything */
    g = compile_ok("network t { input a: [4] d = relu(a) output y = sigmoid(a) }");
    assert_true(pass_run_pipeline(g, 0, err, sizeof err));
    assert_int_equal(g->n_nodes, 2);
    ir_free(g);
}

static void test_printer(void **state)
{
    (void)state;
    IrGraph *g = compile_ok("network t {\n    input x: [3, 8, 8]\n    output y = x |> conv(4, 3) |> relu\n}\n");
    StrBuf sb = {0};
    ir_print(g, &sb);
    assert_string_equal(sb.data, "graph t\n"
                                 "  input  %0 x [3, 8, 8]\n"
                                 "  param  %1 conv0.weight [4, 3, 3, 3]\n"
                                 "  param  %2 conv0.bias [4]\n"
                                 "  %3 = conv2d(%0, %1, %2) k=3x3 s=1x1 p=0x0 d=1x1 g=1 [4, 6, 6]   # test.net:3:21\n"
                                 "  %4 = relu(%3) [4, 6, 6]   # test.net:3:35\n"
                                 "  output y = %4\n");
    sb_free(&sb);
    ir_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_import, make_tmpdir, remove_tmpdir),
        cmocka_unit_test(test_network_selection),
        cmocka_unit_test(test_defines),
        cmocka_unit_test(test_dce),
        cmocka_unit_test(test_printer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
