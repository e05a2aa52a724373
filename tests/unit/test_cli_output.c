/* test_cli_output.c: where `nnc MODEL.net -o ...` writes (tools/nnc.c).
 *
 * `-o -` is standard output, never a file named '-': the IR and the dot graph
 * go there whole (as with no -o); --emit=c and --emit=train send the C source
 * alone, byte for byte what -o FILE.c writes apart from the names in it, and
 * say on standard error that the header was not written; `nnc init -o -` is
 * refused (status 2). A stdout that cannot be written fails with status 1. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_dir[256];
static char g_out[1 << 20], g_err[1 << 14];

static const char model_net[] =
    "network tiny(classes = 3) {\n"
    "    input image: [1, 4, 4]\n"
    "    output logits = image |> flatten |> linear(classes) as fc\n"
    "}\n";

static void slurp(const char *path, char *buf, size_t size)
{
    buf[0] = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return;
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = 0;
    fclose(f);
}

/* Runs nnc in g_dir with argv; stdout goes to `out_path` (NULL: a file read
 * into g_out), stderr into g_err. Returns the exit status. */
static int run_to(const char *out_path, const char *const *argv)
{
    char outp[512], errp[512];
    snprintf(outp, sizeof outp, "%s/stdout.txt", g_dir);
    snprintf(errp, sizeof errp, "%s/stderr.txt", g_dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int o = open(out_path ? out_path : outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0 || chdir(g_dir) != 0) _exit(97);
        dup2(o, 1);
        dup2(e, 2);
        execv(NNC_EXE, (char *const *)argv);
        _exit(98);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) assert_int_equal(errno, EINTR);
    if (!out_path) slurp(outp, g_out, sizeof g_out);
    slurp(errp, g_err, sizeof g_err);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

#define NNC(...) run_to(NULL, (const char *const[]){"nnc", __VA_ARGS__, NULL})

static bool exists(const char *name)
{
    char p[512];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    return stat(p, &st) == 0;
}

static char *file_text(const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    char *buf = malloc(1 << 20);
    assert_non_null(buf);
    slurp(p, buf, 1 << 20);
    return buf;
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "%s/test_cli_output.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g_dir)) return -1;
    char p[512];
    snprintf(p, sizeof p, "%s/m.net", g_dir);
    FILE *f = fopen(p, "w");
    if (!f) return -1;
    fputs(model_net, f);
    fclose(f);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* IR and dot: -o - is what no -o gives. */
static void test_ir_and_dot_to_stdout(void **state)
{
    (void)state;
    static char plain[sizeof g_out];
    const char *emits[] = {"--emit=ir", "--emit=dot"};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(NNC("m.net", emits[i]), 0);
        snprintf(plain, sizeof plain, "%s", g_out);
        assert_true(strlen(plain) > 20);
        assert_int_equal(NNC("m.net", emits[i], "-o", "-"), 0);
        assert_string_equal(g_out, plain);
        assert_string_equal(g_err, "");
        assert_false(exists("-"));
    }
}

/* C (inference and training): the source on stdout, as -o FILE.c writes it
 * (its own name aside), no header, a note naming the header. */
static void test_c_source_to_stdout(void **state)
{
    (void)state;
    const char *emits[] = {"--emit=c", "--emit=train"};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(NNC("m.net", emits[i], "-o", "tiny.c"), 0);
        char *want = file_text("tiny.c");
        assert_true(exists("tiny.h"));
        char h[512];
        snprintf(h, sizeof h, "%s/tiny.h", g_dir);
        assert_int_equal(unlink(h), 0);
        assert_int_equal(NNC("m.net", emits[i], "-o", "-"), 0);
        assert_string_equal(g_out, want);  /* without -o, NETWORK.c: here tiny.c, the same names */
        assert_false(exists("-"));
        assert_false(exists("-.h"));
        assert_false(exists("tiny.h"));
        assert_non_null(strstr(g_err, "note: -o -: the C source went to standard output without its header 'tiny.h'"));
        free(want);
    }
}

static void test_init_refuses_stdout(void **state)
{
    (void)state;
    assert_int_equal(NNC("init", "m.net", "-o", "-"), 2);
    assert_non_null(strstr(g_err, "-o - (standard output) is not taken"));
    assert_false(exists("-"));
}

/* A full standard output is an error, not a silent success. */
static void test_stdout_write_error(void **state)
{
    (void)state;
    if (access("/dev/full", W_OK) != 0) skip();
    assert_int_equal(run_to("/dev/full", (const char *const[]){"nnc", "m.net", "--emit=ir", "-o", "-", NULL}), 1);
    assert_non_null(strstr(g_err, "nnc: cannot write to standard output"));
    assert_int_equal(run_to("/dev/full", (const char *const[]){"nnc", "m.net", "-o", "-", NULL}), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ir_and_dot_to_stdout),
        cmocka_unit_test(test_c_source_to_stdout),
        cmocka_unit_test(test_init_refuses_stdout),
        cmocka_unit_test(test_stdout_write_error),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
