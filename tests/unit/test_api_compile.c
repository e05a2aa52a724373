/* test_api_compile.c: the public API's compile side (include/nnc/nnc.h):
 * nnc_compile from a file or a string, the diagnostics as data and as the
 * text the nnc command prints, the import resolver, the options, and the
 * shapes of inputs, outputs and parameters. Every object is freed (the
 * sanitizer build checks for leaks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "nnc/nnc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The whole of a file, NUL-terminated (free it). */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    char *s = NULL;
    size_t n = 0, cap = 0, k;
    do {
        if (n + 4096 + 1 > cap) s = realloc(s, cap = 2 * cap + 4096 + 1);
        k = fread(s + n, 1, 4096, f);
        n += k;
    } while (k > 0);
    fclose(f);
    s[n] = 0;
    return s;
}

/* What `nnc ARGS` prints on standard error (free it). */
static char *nnc_stderr(const char *args)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1 >/dev/null", NNC_EXE, args);
    FILE *p = popen(cmd, "r");
    if (!p) fail_msg("cannot run %s", cmd);
    char *s = NULL;
    size_t n = 0, cap = 0, k;
    do {
        if (n + 4096 + 1 > cap) s = realloc(s, cap = 2 * cap + 4096 + 1);
        k = fread(s + n, 1, 4096, p);
        n += k;
    } while (k > 0);
    pclose(p);
    s[n] = 0;
    return s;
}

#define ERR_NET NNC_SOURCE_DIR "/tests/errors/shape_add_two_levels.net"

/* A shape error two block calls deep: the error and its chain of notes come
 * back with their positions, and the text is what the nnc command prints. */
static void test_diagnostics_structured(void **state)
{
    (void)state;
    nnc_source src = {.path = ERR_NET};
    nnc_model *m = (nnc_model *)1;
    nnc_diagnostics *ds = NULL;
    assert_int_equal(nnc_compile(&src, NULL, &m, &ds), -1);
    assert_null(m);
    assert_int_equal(nnc_diagnostics_count(ds), 1);
    assert_int_equal(nnc_diagnostics_errors(ds), 1);
    const nnc_diagnostic *e = nnc_diagnostics_get(ds, 0);
    assert_non_null(e);
    assert_null(nnc_diagnostics_get(ds, 1));
    assert_null(nnc_diagnostics_get(ds, -1));
    assert_int_equal(e->severity, NNC_ERROR);
    assert_string_equal(e->file, ERR_NET);
    assert_int_equal(e->line, 3);
    assert_int_equal(e->column, 19);
    assert_string_equal(e->message,
                        "cannot add tensors of shapes [8, 16, 16] and [8, 14, 14]; '+' needs equal shapes");
    assert_int_equal(e->n_notes, 2);
    const nnc_diagnostic *n0 = &e->notes[0], *n1 = &e->notes[1];
    assert_int_equal(n0->severity, NNC_NOTE);
    assert_string_equal(n0->file, ERR_NET);
    assert_int_equal(n0->line, 7);
    assert_int_equal(n0->column, 17);
    assert_string_equal(n0->message, "in block 'residual', called here");
    assert_int_equal(n0->n_notes, 0);
    assert_null(n0->notes);
    assert_int_equal(n1->severity, NNC_NOTE);
    assert_int_equal(n1->line, 13);
    assert_int_equal(n1->column, 21);
    assert_string_equal(n1->message, "in block 'stage', called here");
    /* the text: the error's with its notes is all of it here, byte for byte the CLI's */
    char *cli = nnc_stderr("'" ERR_NET "'");
    assert_string_equal(nnc_diagnostics_text(ds), cli);
    assert_string_equal(e->text, cli);
    const char *note = ERR_NET ":13:21: note: in block 'stage', called here\n";
    assert_true(strncmp(n1->text, note, strlen(note)) == 0);  /* a note's text is its own */
    assert_non_null(strstr(e->text, n1->text));
    /* the older entry point returns the same text */
    char *text;
    assert_int_equal(nnc_compile_file(ERR_NET, NULL, &m, &text), -1);
    assert_string_equal(text, cli);
    free(text);
    free(cli);
    nnc_diagnostics_free(ds);
}

/* Two errors in one file (a block defined twice, its note), from a string. */
static void test_diagnostics_from_string(void **state)
{
    (void)state;
    const char *text = "block b(x) { return x }\n"
                       "block b(x) { return x }\n"
                       "network n { input x: [4]\n output y = x |> b }\n";
    nnc_source src = {.path = "dup.net", .text = text};
    nnc_model *m;
    nnc_diagnostics *ds;
    assert_int_equal(nnc_compile(&src, NULL, &m, &ds), -1);
    assert_int_equal(nnc_diagnostics_count(ds), 1);
    const nnc_diagnostic *e = nnc_diagnostics_get(ds, 0);
    assert_string_equal(e->file, "dup.net");
    assert_int_equal(e->line, 2);
    assert_int_equal(e->column, 7);
    assert_string_equal(e->message, "block 'b' is defined twice");
    assert_int_equal(e->n_notes, 1);
    assert_int_equal(e->notes[0].line, 1);
    assert_string_equal(e->notes[0].message, "first defined here");
    assert_string_equal(nnc_diagnostics_text(ds),
                        "dup.net:2:7: error: block 'b' is defined twice\n"
                        "    block b(x) { return x }\n"
                        "          ^\n"
                        "dup.net:1:7: note: first defined here\n"
                        "    block b(x) { return x }\n"
                        "          ^\n");
    nnc_diagnostics_free(ds);

    /* a syntax error; a source given by text alone is "<string>" */
    nnc_source s2 = {.text = "network t { input x: [4] output y = x |> relu( }"};
    assert_int_equal(nnc_compile(&s2, NULL, &m, &ds), -1);
    e = nnc_diagnostics_get(ds, 0);
    assert_non_null(e);
    assert_string_equal(e->file, "<string>");
    assert_int_equal(e->line, 1);
    assert_int_equal(e->column, 48);
    assert_int_equal(e->severity, NNC_ERROR);
    nnc_diagnostics_free(ds);

    /* success: an empty list, and NULL diags is allowed */
    nnc_source ok = {.text = "network t { input x: [4]\n output y = x |> relu }", .length = 0};
    assert_int_equal(nnc_compile(&ok, NULL, &m, &ds), 0);
    assert_int_equal(nnc_diagnostics_count(ds), 0);
    assert_string_equal(nnc_diagnostics_text(ds), "");
    nnc_diagnostics_free(ds);
    nnc_model_free(m);
    assert_int_equal(nnc_compile(&ok, NULL, &m, NULL), 0);
    nnc_model_free(m);
    /* length counts: the text after it is not read */
    nnc_source cut = {.text = "network t { input x: [4]\n output y = x |> relu }garbage", .length = 48};
    assert_int_equal(nnc_compile(&cut, NULL, &m, NULL), 0);
    nnc_model_free(m);
    /* the NULL list and no source */
    assert_int_equal(nnc_diagnostics_count(NULL), 0);
    assert_string_equal(nnc_diagnostics_text(NULL), "");
    nnc_diagnostics_free(NULL);
    nnc_source none = {0};
    assert_int_equal(nnc_compile(&none, NULL, &m, &ds), -1);
    assert_null(nnc_diagnostics_get(ds, 0)->file);
    nnc_diagnostics_free(ds);
}

/* ---- the import resolver ---- */

typedef struct {
    const char *files[4][2];  /* name as imported -> text */
    char calls[8][128];       /* "importer|import" per call */
    int n_calls;
    int answer;               /* what to say for names it does not hold */
} Resolver;

static int resolve(void *user, const char *importer, const char *import, nnc_import *out)
{
    Resolver *r = user;
    if (r->n_calls < 8) snprintf(r->calls[r->n_calls++], 128, "%s|%s", importer, import);
    for (int i = 0; i < 4 && r->files[i][0]; i++)
        if (strcmp(r->files[i][0], import) == 0) {
            out->name = strncmp(import, "lib/", 4) == 0 ? NULL : r->files[i][0];  /* lib/: named by its path */
            out->text = r->files[i][1];
            return NNC_IMPORT_FOUND;
        }
    out->error = "no such module in the test's table";
    return r->answer;
}

static void test_resolver(void **state)
{
    (void)state;
    const char *main_text = "import \"blocks.net\"\n"
                            "network n { input x: [3, 8, 8]\n output y = x |> widen(4) }\n";
    Resolver r = {.files = {{"blocks.net", "import \"act.net\"\nblock widen(x, c) { return x |> conv(c, 3, pad: 1) |> act }\n"},
                            {"act.net", "block act(x) { return relu(x) }\n"}},
                  .answer = NNC_IMPORT_FAILED};
    nnc_options opt = {.resolve = resolve, .resolve_user = &r};
    nnc_source src = {.path = "main.net", .text = main_text};
    nnc_model *m;
    nnc_diagnostics *ds;
    if (nnc_compile(&src, &opt, &m, &ds) != 0) fail_msg("%s", nnc_diagnostics_text(ds));
    nnc_diagnostics_free(ds);
    assert_int_equal(r.n_calls, 2);
    assert_string_equal(r.calls[0], "main.net|blocks.net");
    assert_string_equal(r.calls[1], "blocks.net|act.net");
    assert_int_equal(nnc_model_params(m), 2);
    nnc_model_free(m);

    /* a resolver's failure: an error at the import statement, with its reason */
    nnc_source bad = {.path = "main.net", .text = "network n { input x: [4]\n output y = x }\nimport \"nope.net\"\n"};
    r.n_calls = 0;
    assert_int_equal(nnc_compile(&bad, &opt, &m, &ds), -1);
    const nnc_diagnostic *e = nnc_diagnostics_get(ds, 0);
    assert_string_equal(e->file, "main.net");
    assert_int_equal(e->line, 3);
    assert_int_equal(e->column, 8);  /* the name's string */
    assert_string_equal(e->message, "cannot import 'nope.net': no such module in the test's table");
    nnc_diagnostics_free(ds);

    /* an error in imported text is named by the resolver's name for it */
    Resolver r2 = {.files = {{"broken.net", "block widen(x, c) {\n  return x |> conv(c, 3, pad: 1) +\n}\n"}},
                   .answer = NNC_IMPORT_FAILED};
    opt.resolve_user = &r2;
    nnc_source s2 = {.path = "main.net", .text = "import \"broken.net\"\nnetwork n { input x: [4]\n output y = x }\n"};
    assert_int_equal(nnc_compile(&s2, &opt, &m, &ds), -1);
    e = nnc_diagnostics_get(ds, 0);
    assert_string_equal(e->file, "broken.net");
    assert_int_equal(e->line, 2);
    assert_true(strncmp(nnc_diagnostics_text(ds), "broken.net:2:", 13) == 0);
    nnc_diagnostics_free(ds);

    /* NNC_IMPORT_FROM_DISK: the file is read as without a resolver (resnet18 imports lib/resnet.net) */
    Resolver r3 = {.answer = NNC_IMPORT_FROM_DISK};
    opt.resolve_user = &r3;
    nnc_source s3 = {.path = NNC_SOURCE_DIR "/models/resnet18.net"};
    if (nnc_compile(&s3, &opt, &m, &ds) != 0) fail_msg("%s", nnc_diagnostics_text(ds));
    nnc_diagnostics_free(ds);
    assert_int_equal(r3.n_calls, 1);
    assert_string_equal(r3.calls[0], NNC_SOURCE_DIR "/models/resnet18.net|lib/resnet.net");
    int n_disk = nnc_model_params(m);
    nnc_model_free(m);

    /* and the same import served from memory (name NULL: the disk's path names it) */
    char *lib = slurp(NNC_SOURCE_DIR "/models/lib/resnet.net");
    Resolver r4 = {.files = {{"lib/resnet.net", lib}}, .answer = NNC_IMPORT_FAILED};
    opt.resolve_user = &r4;
    char *main18 = slurp(NNC_SOURCE_DIR "/models/resnet18.net");
    nnc_source s4 = {.path = "/nowhere/resnet18.net", .text = main18};
    if (nnc_compile(&s4, &opt, &m, &ds) != 0) fail_msg("%s", nnc_diagnostics_text(ds));
    nnc_diagnostics_free(ds);
    assert_int_equal(nnc_model_params(m), n_disk);
    nnc_model_free(m);
    free(lib);
    free(main18);
}

/* ---- options ---- */

static void test_options(void **state)
{
    (void)state;
    nnc_model *m;
    nnc_diagnostics *ds;
    nnc_source src = {.path = NNC_SOURCE_DIR "/models/lenet5.net"};
    /* a target other than C is refused, naming the supported ones */
    nnc_options cuda = {.target = "cuda"};
    assert_int_equal(nnc_compile(&src, &cuda, &m, &ds), -1);
    const nnc_diagnostic *e = nnc_diagnostics_get(ds, 0);
    assert_null(e->file);
    assert_int_equal(e->line, 0);
    assert_string_equal(e->message, "target 'cuda' is not supported; supported targets: c");
    assert_string_equal(nnc_diagnostics_text(ds), "nnc: error: target 'cuda' is not supported; supported targets: c\n");
    nnc_diagnostics_free(ds);
    nnc_options c = {.target = "c"};
    assert_int_equal(nnc_compile(&src, &c, &m, NULL), 0);
    nnc_model_free(m);
    /* malformed defines and batches */
    const char *defs[] = {"classes"};
    nnc_options bad = {.defines = defs, .n_defines = 1};
    assert_int_equal(nnc_compile(&src, &bad, &m, &ds), -1);
    assert_string_equal(nnc_diagnostics_get(ds, 0)->message, "define 'classes' is not NAME=VALUE");
    nnc_diagnostics_free(ds);
    nnc_options neg = {.max_batch = -2};
    assert_int_equal(nnc_compile(&src, &neg, &m, NULL), -1);
    /* defines, network name, batch */
    const char *classes[] = {"classes=7"};
    nnc_options o = {.network = "lenet5", .defines = classes, .n_defines = 1, .max_batch = 8};
    assert_int_equal(nnc_compile(&src, &o, &m, NULL), 0);
    assert_int_equal(nnc_model_output_size(m, 0), 7);
    assert_int_equal(nnc_model_max_batch(m), 8);
    nnc_model_free(m);
    nnc_options other = {.network = "lenet6"};
    assert_int_equal(nnc_compile(&src, &other, &m, &ds), -1);
    assert_non_null(strstr(nnc_diagnostics_get(ds, 0)->message, "no network named 'lenet6'"));
    nnc_diagnostics_free(ds);
    /* levels: 0 is -O0 (the IR keeps its batchnorms unfolded), 2 and NULL options -O2 */
    nnc_source r18 = {.path = NNC_SOURCE_DIR "/models/resnet18.net"};
    char *ir0, *ir2, *ir_default;
    nnc_options o0 = {.opt_level = 0}, o2 = {.opt_level = 2};
    assert_int_equal(nnc_compile(&r18, &o0, &m, NULL), 0);
    nnc_emit_ir(m, &ir0);
    nnc_model_free(m);
    assert_int_equal(nnc_compile(&r18, &o2, &m, NULL), 0);
    nnc_emit_ir(m, &ir2);
    nnc_model_free(m);
    assert_int_equal(nnc_compile(&r18, NULL, &m, NULL), 0);
    nnc_emit_ir(m, &ir_default);
    nnc_model_free(m);
    assert_string_equal(ir2, ir_default);
    assert_string_not_equal(ir0, ir2);
    assert_non_null(strstr(ir0, "batchnorm"));
    free(ir0);
    free(ir2);
    free(ir_default);
    /* training: nnc_emit_c gives the training module, nnc_load refuses */
    nnc_options tr = {.mode = NNC_TRAINING, .max_batch = 4};
    assert_int_equal(nnc_compile(&src, &tr, &m, NULL), 0);
    assert_int_equal(nnc_model_mode(m), NNC_TRAINING);
    char *csrc, *h, *err;
    if (nnc_emit_c(m, 0, "lenet5_train.h", &csrc, &h, &err) != 0) fail_msg("%s", err);
    assert_non_null(strstr(h, "lenet5_train_create"));
    assert_non_null(strstr(h, "#define LENET5_TRAIN_MAX_BATCH 4"));
    free(csrc);
    free(h);
    if (nnc_emit_c(m, 6, "lenet5_train.h", &csrc, &h, &err) != 0) fail_msg("%s", err);  /* another batch */
    assert_non_null(strstr(h, "#define LENET5_TRAIN_MAX_BATCH 6"));
    free(csrc);
    free(h);
    nnc_instance *inst;
    assert_int_equal(nnc_load(m, NULL, 0, &inst, &err), -1);
    assert_non_null(strstr(err, "training"));
    free(err);
    nnc_model_free(m);
}

/* ---- shapes ---- */

static void assert_dims(int rank, const int64_t *dims, int want_rank, const int64_t *want)
{
    assert_int_equal(rank, want_rank);
    for (int i = 0; i < want_rank; i++) assert_int_equal(dims[i], want[i]);
}

static void test_shapes_lenet5(void **state)
{
    (void)state;
    nnc_source src = {.path = NNC_SOURCE_DIR "/models/lenet5.net"};
    nnc_options opt = {.opt_level = 2, .max_batch = 16};
    nnc_model *m;
    assert_int_equal(nnc_compile(&src, &opt, &m, NULL), 0);
    int64_t d[8];
    assert_dims(nnc_model_input_shape(m, 0, d, 8), d, 4, (int64_t[]){16, 1, 28, 28});
    assert_dims(nnc_model_output_shape(m, 0, d, 8), d, 2, (int64_t[]){16, 10});
    assert_int_equal(nnc_model_input_shape(m, 1, d, 8), -1);
    assert_int_equal(nnc_model_output_shape(m, -1, d, 8), -1);
    assert_int_equal(nnc_model_input_shape(m, 0, NULL, 0), 4);  /* the rank alone */
    d[1] = 99;
    assert_int_equal(nnc_model_input_shape(m, 0, d, 1), 4);     /* only max_dims written */
    assert_int_equal(d[0], 16);
    assert_int_equal(d[1], 99);
    static const struct { const char *name; int rank; int64_t dims[4]; } want[] = {
        {"conv1.weight", 4, {6, 1, 5, 5}}, {"conv1.bias", 1, {6}},  {"conv2.weight", 4, {16, 6, 5, 5}},
        {"conv2.bias", 1, {16}},           {"fc1.weight", 2, {120, 400}}, {"fc1.bias", 1, {120}},
        {"fc2.weight", 2, {84, 120}},      {"fc2.bias", 1, {84}},   {"fc3.weight", 2, {10, 84}},
        {"fc3.bias", 1, {10}},
    };
    assert_int_equal(nnc_model_params(m), 10);
    for (int i = 0; i < 10; i++) {
        assert_string_equal(nnc_model_param_name(m, i), want[i].name);
        assert_dims(nnc_model_param_shape(m, i, d, 8), d, want[i].rank, want[i].dims);
    }
    assert_null(nnc_model_param_name(m, 10));
    assert_int_equal(nnc_model_param_shape(m, 10, d, 8), -1);
    nnc_model_free(m);
}

/* ResNet-18 at -O2 lists the parameters of -O0 (what `nnc init` writes), by
 * the same names and shapes: folding the batchnorms does not change what
 * the weights file holds. */
static void test_shapes_resnet18(void **state)
{
    (void)state;
    nnc_source src = {.path = NNC_SOURCE_DIR "/models/resnet18.net"};
    nnc_options o0 = {.opt_level = 0};
    nnc_model *m0, *m2;
    assert_int_equal(nnc_compile(&src, &o0, &m0, NULL), 0);
    assert_int_equal(nnc_compile(&src, NULL, &m2, NULL), 0);
    int64_t d[8], d0[8];
    assert_dims(nnc_model_input_shape(m2, 0, d, 8), d, 4, (int64_t[]){1, 3, 224, 224});
    assert_dims(nnc_model_output_shape(m2, 0, d, 8), d, 2, (int64_t[]){1, 1000});
    assert_int_equal(nnc_model_params(m0), 102);  /* 20 convolutions, 20 batchnorms x 4 (with running statistics), fc x 2 */
    assert_int_equal(nnc_model_params(m2), nnc_model_params(m0));
    for (int i = 0; i < nnc_model_params(m0); i++) {
        assert_string_equal(nnc_model_param_name(m2, i), nnc_model_param_name(m0, i));
        int r0 = nnc_model_param_shape(m0, i, d0, 8);
        assert_dims(nnc_model_param_shape(m2, i, d, 8), d, r0, d0);
    }
    assert_string_equal(nnc_model_param_name(m2, 0), "conv1.weight");
    assert_dims(nnc_model_param_shape(m2, 0, d, 8), d, 4, (int64_t[]){64, 3, 7, 7});
    assert_string_equal(nnc_model_param_name(m2, 1), "bn1.weight");
    int last = nnc_model_params(m2) - 1;
    assert_string_equal(nnc_model_param_name(m2, last), "fc.bias");
    assert_dims(nnc_model_param_shape(m2, last, d, 8), d, 1, (int64_t[]){1000});
    nnc_model_free(m0);
    nnc_model_free(m2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_diagnostics_structured),
        cmocka_unit_test(test_diagnostics_from_string),
        cmocka_unit_test(test_resolver),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_shapes_lenet5),
        cmocka_unit_test(test_shapes_resnet18),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
