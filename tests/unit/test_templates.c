/* test_templates.c: the generated modules' scaffolding templates
 * (runtime/snippets/module_infer.c, module_train.c) and their filler
 * (codegen/template.c cg_template).
 *
 * The engine: @if / @if ! / @else / @endif nested, @fill, $p and $P, part
 * selection, and each error (unknown flag or fill, an unclosed @if, @else or
 * @endif without @if, a second @else, a missing part) refused with a message.
 *
 * The templates compile on their own, like the kernels: module_infer.c's part
 * "module" for every combination of its flags (consts only with params: the
 * constants are computed from them; shrink only with consts), module_train.c's
 * parts "header" and "source" with the scratch flag on and off. Each instance
 * gets small stub fills that use what the real ones use, and the declarations
 * the emitters put before it (the header's macros and prototypes, the
 * loader's nnc_st_want and nnc_st_load, the kernels the scaffolding calls) as
 * stubs; it is compiled with gcc and clang under -std=c99 -Wall -Wextra
 * -Werror -pedantic (and the project's -Wshadow -Wstrict-prototypes
 * -Wmissing-prototypes). The templates are read from the source tree
 * (NNC_SOURCE_DIR); a missing one fails. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "codegen/cgen.h"
#include "runtime/train_abi.h"
#include "tests/unit/codegen_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SNIPPETS NNC_SOURCE_DIR "/runtime/snippets/"

/* ------------------------------------------------------------ the engine ---- */

static const char engine_text[] = "before any part: not copied\n"
                                  "/* @part one */\n"
                                  "head $p $P $x $\n"
                                  "/* @if a */\n"
                                  "a on\n"
                                  "/* @if !b */\n"
                                  "a on, b off\n"
                                  "/* @else */\n"
                                  "a on, b on\n"
                                  "/* @endif */\n"
                                  "/* @else */\n"
                                  "a off\n"
                                  "/* @if b */\n"
                                  "a off, b on\n"
                                  "/* @endif */\n"
                                  "/* @endif */\n"
                                  "/* @fill body */\n"
                                  "/* @if !a */\n"
                                  "/* @fill body */\n"
                                  "/* @endif */\n"
                                  "tail\n"
                                  "/* @part two */\n"
                                  "two $p";

/* Fills part of text with flags a and b; returns the output (free it) or NULL with err set. */
static char *fill(const char *text, const char *part, bool a, bool b, const char *fill_name, char *err, size_t errlen)
{
    const CgFlag flags[] = {{"a", a}, {"b", b}};
    const CgFill fills[] = {{fill_name, "filled $p text\n"}};
    const CgTemplate t = {"pre", "PRE", flags, 2, fills, 1};
    Arena arena = {0};
    StrBuf out = {0};
    err[0] = '\0';
    bool ok = cg_template(&arena, text, strlen(text), part, &t, &out, err, errlen);
    arena_free(&arena);
    if (!ok) {
        sb_free(&out);
        return NULL;
    }
    return out.data ? out.data : calloc(1, 1);
}

static void test_engine_flags_and_fills(void **state)
{
    (void)state;
    static const char *const want[4] = {
        /* a off, b off */ "head pre PRE $x $\na off\nfilled $p text\nfilled $p text\ntail\n",
        /* a off, b on */ "head pre PRE $x $\na off\na off, b on\nfilled $p text\nfilled $p text\ntail\n",
        /* a on, b off */ "head pre PRE $x $\na on\na on, b off\nfilled $p text\ntail\n",
        /* a on, b on */ "head pre PRE $x $\na on\na on, b on\nfilled $p text\ntail\n",
    };
    char err[256];
    for (int k = 0; k < 4; k++) {
        char *out = fill(engine_text, "one", k & 2, k & 1, "body", err, sizeof err);
        if (!out) fail_msg("a = %d, b = %d: %s", k >> 1, k & 1, err);
        assert_string_equal(out, want[k]);  /* a fill's text is copied as is: no $p in it is replaced */
        free(out);
    }
    char *two = fill(engine_text, "two", false, false, "body", err, sizeof err);
    assert_non_null(two);
    assert_string_equal(two, "two pre\n");  /* the last line gets its newline */
    free(two);
}

/* text fails to fill (part "p", flags a and b on, fill "body") with a message containing each of want. */
static void assert_refused(const char *text, const char *part, const char *want1, const char *want2)
{
    char err[256];
    char *out = fill(text, part, true, true, "body", err, sizeof err);
    if (out) fail_msg("filled, expected an error (%s):\n%s", want1, out);
    if (!strstr(err, want1) || (want2 && !strstr(err, want2)))
        fail_msg("the message '%s' lacks '%s'%s%s", err, want1, want2 ? " or " : "", want2 ? want2 : "");
}

static void test_engine_errors(void **state)
{
    (void)state;
    assert_refused("/* @part p */\n/* @if nosuch */\n/* @endif */\n", "p", "unknown flag 'nosuch'", "line 2");
    assert_refused("/* @part p */\nx\n/* @if !nosuch */\n/* @endif */\n", "p", "unknown flag 'nosuch'", "line 3");
    assert_refused("/* @part p */\n/* @fill other */\n", "p", "'other'", "line 2");
    assert_refused("/* @part p */\n/* @if a */\nx\n", "p", "not closed", "'p'");
    assert_refused("/* @part p */\n/* @if a */\n/* @if b */\n/* @endif */\n", "p", "not closed", NULL);
    assert_refused("/* @part p */\n/* @else */\n", "p", "@else without @if", "line 2");
    assert_refused("/* @part p */\n/* @if a */\n/* @else */\n/* @else */\n/* @endif */\n", "p", "@else", "line 4");
    assert_refused("/* @part p */\n/* @endif */\n", "p", "@endif without @if", "line 2");
    assert_refused("/* @part p */\nx\n", "q", "no template part 'q'", NULL);
    assert_refused(engine_text, "three", "'three'", NULL);
    /* an unknown flag in a part not asked for is no error: only the part is read */
    char err[256], *out = fill("/* @part p */\nok\n/* @part q */\n/* @if nosuch */\n", "p", true, true, "body",
                               err, sizeof err);
    if (!out) fail_msg("%s", err);
    assert_string_equal(out, "ok\n");
    free(out);
}

/* -------------------------------------------------- compiling instances ---- */

static char *read_template(const char *name)
{
    char path[1024];
    size_t len;
    const char *why;
    snprintf(path, sizeof path, SNIPPETS "%s", name);
    char *text = nnc_read_file(path, &len, &why);
    if (!text) fail_msg("cannot read the template %s: %s", path, why);
    return text;
}

typedef struct {
    char dir[64];
    int n_files, compilers;
} Instances;

static void instances_open(Instances *in)
{
    memset(in, 0, sizeof *in);
    snprintf(in->dir, sizeof in->dir, "/tmp/nnc-test-templates-XXXXXX");
    assert_non_null(mkdtemp(in->dir));
}

/* Writes prelude + part of text filled as t says to DIR/name.c, and compiles it. */
static void instance(Instances *in, const char *name, const char *prelude, const char *text, const char *part,
                     const CgTemplate *t)
{
    Arena arena = {0};
    StrBuf src = {0};
    char err[256] = "", path[256], obj[256], log[256];
    sb_append(&src, prelude);
    if (!cg_template(&arena, text, strlen(text), part, t, &src, err, sizeof err))
        fail_msg("%s: cg_template: %s", name, err);
    arena_free(&arena);
    snprintf(path, sizeof path, "%s/%s.c", in->dir, name);
    snprintf(obj, sizeof obj, "%s/%s.o", in->dir, name);
    snprintf(log, sizeof log, "%s/cc.log", in->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(src.data, f);
    fclose(f);
    sb_free(&src);
    static const char *const ccs[] = {"gcc", "clang"};
    for (size_t c = 0; c < NNC_COUNT(ccs); c++) {
        char *argv[] = {(char *)ccs[c], "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wshadow",
                        "-Wstrict-prototypes", "-Wmissing-prototypes", "-c", path, "-o", obj, NULL};
        int st = run_logged(log, argv);
        if (st == 127) continue;  /* not installed: the test fails below if neither is */
        if (st != 0) fail_msg("%s rejects the template instance %s (kept for a look)", ccs[c], path);
        in->compilers |= 1 << c;
        unlink(obj);
    }
    unlink(path);
    in->n_files++;
}

static void instances_close(Instances *in)
{
    char log[256];
    snprintf(log, sizeof log, "%s/cc.log", in->dir);
    unlink(log);
    rmdir(in->dir);
    if (in->compilers != 3)
        print_message("note: %s not found, not checked\n", in->compilers & 1 ? "clang" : "gcc");
    if (!in->compilers) fail_msg("neither gcc nor clang found: no template instance was compiled");
}

enum { F_PARAMS, F_CONSTS, F_SHRINK, F_SCRATCH, F_WS, F_INPUTS, F_PROFILE, N_FLAGS };
static const char *const infer_flags[N_FLAGS] = {"params", "consts", "shrink", "scratch", "ws", "inputs", "profile"};

/* What NAME.h declares and NAME.c has before the module (for network "net"
 * with input x[3] if inputs, output y[2], parameters w[2] and b[2] if params). */
static void infer_prelude(StrBuf *b, const bool *on)
{
    sb_printf(b, "/* instance: params %d consts %d shrink %d scratch %d ws %d inputs %d profile %d */\n", on[F_PARAMS],
              on[F_CONSTS], on[F_SHRINK], on[F_SCRATCH], on[F_WS], on[F_INPUTS], on[F_PROFILE]);
    if (on[F_PROFILE])  /* the header's declaration (emit_c.c cg_write_header) */
        sb_append(b, "struct net_model;\n"
                     "void net_set_profile_hook(struct net_model *m, void (*hook)(void *ctx, int node), void *ctx);\n");
    sb_append(b, "#include <stddef.h>\n#define NET_MAX_BATCH 4\n");  /* the header's include (size_t) */
    sb_printf(b, "#define NET_WORKSPACE_BYTES %d\n", on[F_WS] ? 256 : 0);
    sb_printf(b, "#define NET_PARAM_FLOATS %d\n", on[F_PARAMS] ? 4 : 0);
    if (on[F_SHRINK]) sb_append(b, "#define NET_PARAM_KEPT_FLOATS 2\n#define NET_STAGE_FLOATS 2\n");
    if (on[F_CONSTS]) sb_append(b, "#define NET_CONST_FLOATS 2\n");
    sb_printf(b, "#define NET_N_PARAMS %d\n#define NET_N_INPUTS %d\n#define NET_N_OUTPUTS 1\n", on[F_PARAMS] ? 2 : 0,
              on[F_INPUTS] ? 1 : 0);
    if (on[F_INPUTS]) sb_append(b, "#define NET_IN_X_FLOATS 3\n");
    sb_append(b, "#define NET_OUT_Y_FLOATS 2\n"
                 "enum { NET_OK = 0, NET_ERR_ARG = 1, NET_ERR_WEIGHTS = 2, NET_ERR_NOMEM = 3, NET_ERR_INTERNAL = 4 };\n"
                 "typedef struct net_model net_model;\n"
                 "int net_create(net_model **m, const char *weights_safetensors, void *workspace);\n"
                 "int net_create_from_memory(net_model **m, const void *weights, size_t size, void *workspace);\n");
    sb_append(b, on[F_INPUTS] ? "int net_forward(net_model *m, int n, const float *in_x, float *out_y);\n"
                              : "int net_forward(net_model *m, int n, float *out_y);\n");
    sb_append(b, "int net_forward_v(net_model *m, int n, const float *const *inputs, float *const *outputs);\n"
                 "const char *net_last_error(const net_model *m);\n"
                 "int net_set_threads(net_model *m, int threads);\n"
                 "void net_destroy(net_model *m);\n\n"
                 "#include <stdarg.h>\n#include <stdint.h>\n#include <stdio.h>\n#include <stdlib.h>\n"
                 "#include <string.h>\n\n"
                 /* the kernels' context (runtime/snippets/kernels_parallel.c), which every module owns */
                 "typedef struct { int isa, threads; } nnc_ctx;\n"
                 "static int nnc_ctx_init(nnc_ctx *c, int threads) { c->isa = 0, c->threads = threads; return 0; }\n"
                 "static void nnc_ctx_stop(nnc_ctx *c) { c->threads = 1; }\n"
                 "static void nnc_ctx_begin(nnc_ctx *c) { (void)c; }\n"
                 "static void nnc_ctx_end(nnc_ctx *c) { (void)c; }\n\n");
    if (on[F_PARAMS])  /* the loader, pasted only when there are parameters */
        sb_append(b, "typedef struct { const char *name; int rank; long long shape[4]; float *dst; } nnc_st_want;\n"
                     "typedef struct { FILE *f; int n; } nnc_st_file;\n"
                     "static int nnc_st_begin(nnc_st_file *sf, const char *path, char *err, size_t errlen)\n"
                     "{\n"
                     "    sf->f = NULL, sf->n = 0;\n"
                     "    snprintf(err, errlen, \"%s\", path);\n"
                     "    return 0;\n"
                     "}\n"
                     "static int nnc_st_read(nnc_st_file *sf, const nnc_st_want *w, char *err, size_t errlen)\n"
                     "{\n"
                     "    if (w->dst) w->dst[0] = (float)w->shape[0];\n"
                     "    snprintf(err, errlen, \"%s\", w->name);\n"
                     "    return sf->n++ < 0;\n"
                     "}\n"
                     "static int nnc_st_begin_memory(nnc_st_file *sf, const void *data, size_t size, const char *label,\n"
                     "                               char *err, size_t errlen)\n"
                     "{\n"
                     "    sf->f = NULL, sf->n = data ? (int)(size % 2u) : 0;\n"
                     "    snprintf(err, errlen, \"%s\", label ? label : \"<memory>\");\n"
                     "    return 0;\n"
                     "}\n"
                     "static void nnc_st_end(nnc_st_file *sf) { sf->f = NULL; }\n\n");
    if (on[F_SCRATCH])  /* a kernel's scratch function, pasted with its kernel */
        sb_append(b, "static size_t nnc_stub_scratch(int n) { return (size_t)n * 8u; }\n\n");
}

/* The run function: touches what the real one declares (inputs, outputs, params, consts, ws). */
static void infer_run(StrBuf *b, const bool *on)
{
    sb_append(b, "static void net_run(net_model *m, int n, const float *const *inputs, float *const *outputs)\n"
                 "{\n"
                 "    float *out_y = outputs[0];\n"
                 "    int i;\n\n");
    if (!on[F_INPUTS]) sb_append(b, "    (void)inputs;\n");
    if (!on[F_PARAMS] && !on[F_CONSTS] && !on[F_WS]) sb_append(b, "    (void)m;\n");
    sb_append(b, "    for (i = 0; i < n * NET_OUT_Y_FLOATS; i++)\n        out_y[i] = 0.0f;\n");
    if (on[F_INPUTS]) sb_append(b, "    out_y[0] += inputs[0][0];\n");
    if (on[F_PARAMS]) sb_append(b, "    out_y[0] += m->params[0];\n");
    if (on[F_CONSTS]) sb_append(b, "    out_y[0] += m->consts[0];\n");
    if (on[F_WS]) sb_append(b, "    out_y[0] += (float)m->ws[0];\n");
    sb_append(b, "}\n\n");
}

static void infer_forward(StrBuf *b, const bool *on)
{
    if (on[F_INPUTS])
        sb_append(b, "int net_forward(net_model *m, int n, const float *in_x, float *out_y)\n{\n"
                     "    const float *inputs[NET_N_INPUTS];\n    float *outputs[NET_N_OUTPUTS];\n\n"
                     "    inputs[0] = in_x;\n    outputs[0] = out_y;\n"
                     "    return net_forward_v(m, n, inputs, outputs);\n}\n\n");
    else
        sb_append(b, "int net_forward(net_model *m, int n, float *out_y)\n{\n"
                     "    float *outputs[NET_N_OUTPUTS];\n\n    outputs[0] = out_y;\n"
                     "    return net_forward_v(m, n, NULL, outputs);\n}\n\n");
}

static void test_module_infer_compiles(void **state)
{
    (void)state;
    char *text = read_template("module_infer.c");
    Instances in;
    instances_open(&in);
    for (int bits = 0; bits < 1 << N_FLAGS; bits++) {
        bool on[N_FLAGS];
        for (int f = 0; f < N_FLAGS; f++) on[f] = bits >> f & 1;
        if ((on[F_CONSTS] && !on[F_PARAMS]) || (on[F_SHRINK] && !on[F_CONSTS])) continue;
        StrBuf prelude = {0}, names = {0}, run_fn = {0}, fwd = {0};
        infer_prelude(&prelude, on);
        if (on[F_INPUTS]) sb_append(&names, "static const char *const net_input_names[NET_N_INPUTS] = { \"x\" };\n");
        sb_append(&names, "static const char *const net_output_names[NET_N_OUTPUTS] = { \"y\" };\n");
        infer_run(&run_fn, on);
        infer_forward(&fwd, on);
        CgFlag flags[N_FLAGS];
        for (int f = 0; f < N_FLAGS; f++) flags[f] = (CgFlag){infer_flags[f], on[f]};
        const CgFill fills[] = {
            {"param_rows", on[F_PARAMS] ? "    { \"w\", 1, { 2, 0, 0, 0 }, 0 },\n"
                                          "    { \"b\", 1, { 2, 0, 0, 0 }, 2 },\n"
                                        : ""},
            {"names", names.data},
            {"scratch_checks", "    return nnc_stub_scratch(NET_MAX_BATCH) <= 64;\n"},
            {"prepare_body", on[F_SHRINK] ? "    if ((rc = net_stage(m, sf, stage + 0, 1)) != NET_OK)\n        goto done;\n"
                                            "    consts[0] = params[0] * 2.0f;\n    consts[1] = stage[0] + 1.0f;\n"
                                          : "    consts[0] = params[0] * 2.0f;\n    consts[1] = params[3] + 1.0f;\n"},
            {"run", run_fn.data},
            {"forward", fwd.data},
        };
        const CgTemplate t = {"net", "NET", flags, N_FLAGS, fills, (int)NNC_COUNT(fills)};
        char name[64];
        snprintf(name, sizeof name, "infer_%d%d%d%d%d%d%d", on[0], on[1], on[2], on[3], on[4], on[5], on[6]);
        instance(&in, name, prelude.data, text, "module", &t);
        sb_free(&prelude), sb_free(&names), sb_free(&run_fn), sb_free(&fwd);
    }
    assert_int_equal(in.n_files, 64);  /* params off: 8 (ws, scratch, inputs); on: 3 x 8 (consts, shrink); x2 profile */
    instances_close(&in);
    free(text);
}

/* module_train.c's header part, filled for network "net" (3 classes, batch 4). */
static void train_header(StrBuf *out, const char *text, const CgFlag *flag)
{
    StrBuf fields = {0};
#define FIELD(type, name, comment) sb_printf(&fields, "    %s %s; /* %s */\n", #type, #name, comment);
    RT_TRAIN_CONFIG_FIELDS(FIELD)
#undef FIELD
    const CgFill fills[] = {
        {"banner", "/* net_train.h: generated by test_templates.c. Do not edit.\n"},
        {"limits", "#define NET_TRAIN_MAX_BATCH 4\n#define NET_TRAIN_CLASSES 3\n"},
        {"config_fields", fields.data},
    };
    const CgTemplate t = {"net", "NET", flag, 1, fills, (int)NNC_COUNT(fills)};
    Arena arena = {0};
    char err[256] = "";
    if (!cg_template(&arena, text, strlen(text), "header", &t, out, err, sizeof err))
        fail_msg("header: cg_template: %s", err);
    arena_free(&arena);
    sb_free(&fields);
}

/* What NAME_train.c has between its header and the template: the includes and
 * the kernels the scaffolding calls (the losses, the optimizer, the loader), as stubs. */
static const char train_kernels[] =
    "\n#include <math.h>\n#include <stdarg.h>\n#include <stdint.h>\n#include <stdio.h>\n#include <stdlib.h>\n"
    "#include <string.h>\n\n"
    "static long nnc_count_correct(int n, const float *logits, int c, const int *labels)\n"
    "{\n    return n > 0 && c > 0 && logits[0] > 0.0f && labels[0] == 0;\n}\n"
    "static float nnc_cross_entropy(int n, const float *logits, int c, const int *labels, float smoothing, float *dx)\n"
    "{\n    if (dx) dx[0] = smoothing;\n    return logits[0] * (float)(n + c + labels[0]);\n}\n"
    "static float nnc_bce_with_logits(size_t count, const float *x, const float *t, float *dx)\n"
    "{\n    dx[0] = x[0] - t[0];\n    return (float)count;\n}\n"
    "static float nnc_mse_loss(size_t count, const float *x, const float *t, float *dx)\n"
    "{\n    dx[0] = x[0] - t[0];\n    return (float)count;\n}\n"
    "typedef struct {\n    int kind;\n    double momentum, dampening;\n    int nesterov;\n"
    "    double beta1, beta2, eps;\n    int amsgrad;\n    double weight_decay;\n} nnc_optim;\n"
    "static size_t nnc_optim_state_floats(const nnc_optim *o) { return o->kind != 0 ? 2u : 1u; }\n"
    "static void nnc_optim_step(float *param, const float *grad, float *state, size_t count, long step, double lr,\n"
    "                           const nnc_optim *o)\n"
    "{\n    param[0] -= (float)(lr * grad[0] + (double)state[0] + (double)count + (double)step + o->eps);\n}\n"
    "typedef struct { const char *name; int rank; long long shape[4]; float *dst; } nnc_st_want;\n"
    "static int nnc_st_load(const char *path, const nnc_st_want *want, int n_want, char *err, size_t errlen)\n"
    "{\n    snprintf(err, errlen, \"%s\", path);\n    return n_want > 0 && want[0].dst == NULL;\n}\n"
    "static int nnc_st_load_memory(const void *data, size_t size, const char *label, const nnc_st_want *want,\n"
    "                              int n_want, char *err, size_t errlen)\n"
    "{\n    snprintf(err, errlen, \"%s\", label ? label : \"<memory>\");\n"
    "    return !data || size == 0 || (n_want > 0 && want[0].dst == NULL);\n}\n"
    /* the kernels' context (runtime/snippets/kernels_parallel.c), which every module owns */
    "typedef struct { int isa, threads; } nnc_ctx;\n"
    "static int nnc_ctx_init(nnc_ctx *c, int threads) { c->isa = 0, c->threads = threads; return 0; }\n"
    "static void nnc_ctx_stop(nnc_ctx *c) { c->threads = 1; }\n"
    "static void nnc_ctx_begin(nnc_ctx *c) { (void)c; }\n"
    "static void nnc_ctx_end(nnc_ctx *c) { (void)c; }\n\n";

static void test_module_train_compiles(void **state)
{
    (void)state;
    char *text = read_template("module_train.c");
    Instances in;
    instances_open(&in);
    for (int scratch = 0; scratch < 2; scratch++) {
        const CgFlag flag[1] = {{"scratch", scratch}};
        char name[64];
        StrBuf header = {0}, prelude = {0};
        train_header(&header, text, flag);
        {  /* the header alone: a translation unit of its own (an empty part after it) */
            const CgTemplate none = {"net", "NET", flag, 1, NULL, 0};
            snprintf(name, sizeof name, "train_header_%d", scratch);
            instance(&in, name, header.data, "/* @part empty */\n", "empty", &none);
        }
        sb_append(&prelude, header.data);
        sb_append(&prelude, train_kernels);
        if (scratch) sb_append(&prelude, "static size_t nnc_stub_scratch(int n) { return (size_t)n * 8u; }\n\n");
        const CgFill fills[] = {
            {"defines", "#define NET_N_PARAMS 2\n#define NET_PARAM_FLOATS 4\n#define NET_LEARN_FLOATS 2\n"
                        "#define NET_WS_BYTES 256\n#define NET_SCRATCH_FLOATS 64\n#define NET_BN_FLOATS 4\n"
                        "#define NET_STATS_DOUBLES 4\n#define NET_N_OPTIMIZERS 3\n#define NET_N_LOSSES 3\n"},
            {"param_rows", "    {\"w\", 0, 1, {2, 0, 0, 0}, 0, 1},\n    {\"bn.running_mean\", 1, 1, {2, 0, 0, 0}, 2, 1},\n"},
            {"forward", "    ((float *)(ws + 0))[0] = input[0] * (float)n + t->params[0] + (float)train;\n"},
            {"backward", "    if (dinput) memset(dinput, 0, (size_t)n * 3 * sizeof(float));\n"
                         "    t->grads[0] += ((float *)(ws + 64))[0] + input[0] + (float)train;\n"},
            {"outputs", "#define NET_N_OUTPUTS 1\n#define NET_LOGITS(t) ((float *)((t)->ws + 0))\n"
                        "static const long net_out_off[1] = {0};\nstatic const long net_dout_off[1] = {64};\n"},
            {"scratch_checks", "    if (nnc_stub_scratch(NET_TRAIN_MAX_BATCH) > (size_t)NET_SCRATCH_FLOATS)\n"
                               "        return net_train_fail(t, -1, \"internal error: scratch\");\n"},
        };
        const CgTemplate t = {"net", "NET", flag, 1, fills, (int)NNC_COUNT(fills)};
        snprintf(name, sizeof name, "train_source_%d", scratch);
        instance(&in, name, prelude.data, text, "source", &t);
        sb_free(&header), sb_free(&prelude);
    }
    assert_int_equal(in.n_files, 4);
    instances_close(&in);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_engine_flags_and_fills),
        cmocka_unit_test(test_engine_errors),
        cmocka_unit_test(test_module_infer_compiles),
        cmocka_unit_test(test_module_train_compiles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
