/* fuzz_frontend.c: libFuzzer harness for the whole compiler, .net text to C.
 *
 * The input is a .net program (the fuzzer is seeded with the model zoo and the
 * error goldens, corpus/frontend/, and steered by frontend.dict: the DSL's
 * keywords, built-ins, keyword arguments and shape properties). Each input is
 * compiled the three ways nnc compiles:
 *
 *   1. inference at -O2: fe_compile_text, pass_run_pipeline(2), cg_emit_c;
 *   2. inference at -O0: the same with pass_run_pipeline(0) and no memory plan;
 *   3. training: pass_run_training_pipeline(2), cg_emit_train_c.
 *
 * and its train section is read once more by fe_train_settings (from a file:
 * that entry point takes a path). Beyond "no sanitizer report and no hang",
 * a failure is
 *
 *   - a rejected program whose first diagnostic is not "fuzz.net:L:C: error: "
 *     (or "lib/...", an imported file of the zoo, or "nnc: error: ");
 *   - an accepted program with diagnostics, or a graph that fails ir_verify
 *     before or after the passes;
 *   - an emitter that refuses a graph without saying why;
 *   - generated C that the system compiler rejects (`cc -std=c99
 *     -pedantic-errors -fsyntax-only`; NNC_FUZZ_CC_STRICT=1 adds -Wall
 *     -Wextra -Werror, what DESIGN.md promises: at the time of writing gcc 12
 *     refuses densenet121's training module with -Waddress, so it is not the
 *     default yet). This costs a process per file, so it runs for a sample of
 *     the inputs: those whose hash is 0 mod NNC_FUZZ_CC (default 256; 1 checks
 *     every input, 0 none), so a replay of a saved input always checks it
 *     again. The compiler is $CC, or cc.
 *
 * The process works in a folder of its own (fz_tmpdir) that holds lib/, a
 * link to the zoo's shared blocks, so that seeds importing "lib/resnet.net"
 * compile and mutated imports find nothing else: the files the harness
 * writes there (fuzz.net, model.c, ...) are removed before the next input,
 * so that no input can import what an earlier one left. */
#define _GNU_SOURCE 1  /* posix_spawn file actions */
#include "fuzz_common.h"

#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "codegen/emit_c.h"
#include "codegen/emit_train.h"
#include "frontend/frontend.h"
#include "passes/passes.h"

extern char **environ;

enum { MAX_INPUT = 1 << 16 };  /* bytes; the largest zoo model is under 2 KB */

static unsigned long cc_every = 256;  /* NNC_FUZZ_CC */
static const char *cc_prog = "cc";     /* $CC */
static bool cc_strict;                 /* NNC_FUZZ_CC_STRICT=1: -Wall -Wextra -Werror too */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    const char *dir = fz_tmpdir();
    char lib[4200];
    snprintf(lib, sizeof lib, "%s/lib", dir);
    if (symlink(NNC_SOURCE_DIR "/models/lib", lib) != 0 || chdir(dir) != 0) {
        perror("fuzz_frontend: preparing the work folder");
        abort();
    }
    const char *env = getenv("NNC_FUZZ_CC");
    if (env) cc_every = strtoul(env, NULL, 10);
    env = getenv("NNC_FUZZ_CC_STRICT");
    cc_strict = env && strcmp(env, "1") == 0;
    env = getenv("CC");
    if (env && *env) cc_prog = env;
    return 0;
}

/* "FILE:LINE:COL: error: " with FILE the input or a file of lib/, or "nnc: error: ". */
static bool first_line_ok(const char *out)
{
    if (strncmp(out, "nnc: error: ", 12) == 0) return true;
    size_t len = strncmp(out, "fuzz.net:", 9) == 0 ? 9 : strncmp(out, "lib/", 4) == 0 ? strcspn(out, ":\n") + 1 : 0;
    if (len == 0 || out[len - 1] != ':') return false;
    const char *p = out + len;
    for (int field = 0; field < 2; field++) {
        if (*p < '1' || *p > '9') return false;
        while (*p >= '0' && *p <= '9') p++;
        if (*p++ != ':') return false;
    }
    return strncmp(p, " error: ", 8) == 0;
}

/* Compiles name.c (which includes name.h) with the system compiler; dies with
 * its messages when it refuses what nnc emitted for an accepted program. */
static void check_with_cc(const char *what, const char *name, const StrBuf *c_src, const StrBuf *h_src)
{
    char c_path[64], h_path[64], log_path[64];
    snprintf(c_path, sizeof c_path, "%s.c", name);
    snprintf(h_path, sizeof h_path, "%s.h", name);
    snprintf(log_path, sizeof log_path, "%s.log", name);
    fz_write(c_path, c_src->data, c_src->len);
    fz_write(h_path, h_src->data, h_src->len);
    char *args[] = {(char *)cc_prog, "-std=c99", "-pedantic-errors", "-fsyntax-only", c_path,
                    cc_strict ? "-Wall" : NULL, "-Wextra", "-Werror", NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    int status = 0, rc = posix_spawnp(&pid, cc_prog, &fa, NULL, args, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) fz_die("cannot run %s: %s", cc_prog, strerror(rc));
    while (waitpid(pid, &status, 0) < 0) {}
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        remove(c_path), remove(h_path), remove(log_path);  /* nothing a later input could import */
        return;
    }
    const char *why = NULL;
    char *log = nnc_read_file(log_path, NULL, &why);
    fprintf(stderr, "---- %s -std=c99 -pedantic-errors -fsyntax-only %s%s ----\n%s\n", cc_prog, c_path,
            cc_strict ? " -Wall -Wextra -Werror" : "", log ? log : why);
    free(log);
    fz_die("%s: the C that nnc emitted for an accepted program does not compile (above)", what);
}

typedef enum { RUN_O2, RUN_O0, RUN_TRAIN } RunKind;

/* One compilation of the input; false when the frontend rejected it. */
static bool compile_once(const uint8_t *data, size_t size, RunKind kind, bool with_cc)
{
    static const char *const names[] = {"-O2", "-O0", "train"};
    Arena a = {0};
    Diag d;
    diag_init(&d, &a);
    IrGraph *g = fe_compile_text("fuzz.net", (const char *)data, size, NULL, &d);
    char err[512] = "";
    if (!g) {
        if (d.errors == 0 || !d.out.data || !first_line_ok(d.out.data))
            fz_die("rejected without a positioned error first:\n%s", d.out.data ? d.out.data : "(no diagnostics)");
        diag_free(&d);
        arena_free(&a);
        return false;
    }
    if (d.errors) fz_die("a graph and diagnostics both:\n%s", d.out.data);
    if (!ir_verify(g, err, sizeof err)) fz_die("the frontend's graph fails ir_verify: %s", err);
    bool ok = kind == RUN_TRAIN ? pass_run_training_pipeline(g, 2, 4, NULL, NULL, err, sizeof err)
                                : pass_run_pipeline_batch(g, kind == RUN_O2 ? 2 : 0, 4, NULL, NULL, err, sizeof err);
    if (!ok || !ir_verify(g, err, sizeof err)) fz_die("%s: the passes broke the graph: %s", names[kind], err);
    StrBuf c_src = {0}, h_src = {0};
    if (kind == RUN_TRAIN) {
        CgTrainOptions o = {.max_batch = 4, .header_name = "model_train.h", .source_path = "fuzz.net"};
        ok = cg_emit_train_c(g, &o, &c_src, &h_src, err, sizeof err);
    } else {
        CgOptions o = {.max_batch = 4, .header_name = "model.h", .source_path = "fuzz.net",
                       .no_memory_plan = kind == RUN_O0};
        ok = cg_emit_c(g, &o, &c_src, &h_src, err, sizeof err);
    }
    if (!ok && !err[0]) fz_die("%s: the emitter refused the graph without a message", names[kind]);
    if (ok && with_cc) check_with_cc(names[kind], kind == RUN_TRAIN ? "model_train" : "model", &c_src, &h_src);
    sb_free(&c_src);
    sb_free(&h_src);
    ir_free(g);
    diag_free(&d);
    arena_free(&a);
    return true;
}

/* The train section through the entry point `nnc train` uses, which reads a file. */
static void train_settings(const uint8_t *data, size_t size)
{
    fz_write("fuzz.net", data, size);
    Arena a = {0};
    Diag d;
    diag_init(&d, &a);
    FeTrainSetting *s = NULL;
    int n = 0;
    bool ok = fe_train_settings("fuzz.net", NULL, &s, &n, &d);
    remove("fuzz.net");  /* an input that imports "fuzz.net" must not see the previous input */
    if (!ok && (d.errors == 0 || !d.out.data || !first_line_ok(d.out.data)))
        fz_die("train section rejected without a positioned error first:\n%s", d.out.data ? d.out.data : "(none)");
    diag_free(&d);
    arena_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT) return -1;  /* not added to the corpus */
    fz_begin(data, size);
    bool with_cc = cc_every > 0 && fz_hash(data, size) % cc_every == 0;
    if (compile_once(data, size, RUN_O2, with_cc)) {
        compile_once(data, size, RUN_O0, with_cc);
        compile_once(data, size, RUN_TRAIN, with_cc);
    }
    train_settings(data, size);
    return 0;
}
