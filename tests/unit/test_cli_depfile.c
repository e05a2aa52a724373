/* test_cli_depfile.c: what `nnc MODEL.net` writes for build systems
 * (tools/nnc_outputs.c): --depfile, --embed-weights, --check-weights.
 *
 * The depfile names -o's file and every file the front end read, imports in
 * other directories and paths with spaces included, absolute and escaped as
 * gcc -MD escapes them, then the weights; --embed-weights checks the weights
 * first (a missing file, a missing tensor or a wrong shape: status 1, a
 * message naming the file and tensor, nothing written), then writes OUT.c,
 * OUT.h and OUT_weights.S (an .incbin of the file's absolute path) with
 * NETWORK_create_embedded (NETWORK_train_create_embedded for --emit=train),
 * and the .S assembles to an object holding the file's bytes between the two
 * symbols. Wrong combinations are refused with status 2. */
#define _XOPEN_SOURCE 700 /* realpath */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_dir[256], g_real[256];  /* g_dir, and as realpath gives it (the depfile's form) */
static char g_err[1 << 14];

static const char model_net[] =
    "import \"../lib dir/head.net\"\n"
    "network tiny(classes = 3) {\n"
    "    input image: [1, 4, 4]\n"
    "    output logits = image |> flatten |> head(classes) as fc\n"
    "}\n";
static const char head_net[] =
    "block head(x, n) {\n"
    "    return x |> linear(n)\n"
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

/* Runs nnc in g_dir with argv, stderr into g_err; returns the exit status. */
static int run(const char *const *argv)
{
    char errp[512];
    snprintf(errp, sizeof errp, "%s/stderr.txt", g_dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int e = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (e < 0 || chdir(g_dir) != 0) _exit(97);
        dup2(e, 2);
        execv(NNC_EXE, (char *const *)argv);
        _exit(98);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) assert_int_equal(errno, EINTR);
    slurp(errp, g_err, sizeof g_err);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

#define NNC(...) run((const char *const[]){"nnc", __VA_ARGS__, NULL})

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

static void remove_file(const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    unlink(p);
}

static int write_file(const char *name, const char *text)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    FILE *f = fopen(p, "w");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "%s/test_cli_depfile.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    char *real;
    if (!mkdtemp(g_dir) || !(real = realpath(g_dir, NULL))) return -1;
    int n = snprintf(g_real, sizeof g_real, "%s", real);
    free(real);
    if (n >= (int)sizeof g_real) return -1;
    char p[512];
    snprintf(p, sizeof p, "%s/my models", g_dir);
    if (mkdir(p, 0755) != 0) return -1;
    snprintf(p, sizeof p, "%s/lib dir", g_dir);
    if (mkdir(p, 0755) != 0) return -1;
    if (write_file("my models/m.net", model_net) || write_file("lib dir/head.net", head_net)) return -1;
    /* weights for classes 3, and for classes 5 (the wrong shape) */
    if (NNC("init", "my models/m.net", "-o", "w.safetensors") != 0) return -1;
    if (NNC("init", "my models/m.net", "--set", "classes=5", "-o", "w5.safetensors") != 0) return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* The main file, its import in another directory (a path with a space), in make syntax. */
static void test_depfile_lists_imports(void **state)
{
    (void)state;
    assert_int_equal(NNC("my models/m.net", "-o", "out/tiny.c", "--depfile", "out/tiny.d"), 1);  /* no out/ yet */
    assert_false(exists("out/tiny.d"));
    char p[512];
    snprintf(p, sizeof p, "%s/out", g_dir);
    assert_int_equal(mkdir(p, 0755), 0);
    assert_int_equal(NNC("my models/m.net", "-o", "out/tiny.c", "--depfile", "out/tiny.d"), 0);
    char want[2048];
    snprintf(want, sizeof want, "%s/out/tiny.c: \\\n  %s/my\\ models/m.net \\\n  %s/lib\\ dir/head.net\n", g_real,
             g_real, g_real);
    char *got = file_text("out/tiny.d");
    assert_string_equal(got, want);
    free(got);
    /* the IR too, with -o */
    assert_int_equal(NNC("my models/m.net", "--emit=ir", "-o", "out/tiny.ir", "--depfile", "out/ir.d"), 0);
    got = file_text("out/ir.d");
    assert_non_null(strstr(got, "/out/tiny.ir: \\\n"));
    assert_non_null(strstr(got, "/lib\\ dir/head.net\n"));
    free(got);
}

/* The .S, the wrapper in the C and the header, the weights in the depfile. */
static void test_embed_weights(void **state)
{
    (void)state;
    assert_int_equal(NNC("my models/m.net", "-o", "e.c", "--embed-weights", "w.safetensors", "--depfile", "e.d"), 0);
    assert_string_equal(g_err, "");
    char *s = file_text("e_weights.S"), *c = file_text("e.c"), *h = file_text("e.h"), *d = file_text("e.d");
    char want[1024];
    snprintf(want, sizeof want, ".incbin \"%s/w.safetensors\"", g_real);
    assert_non_null(strstr(s, want));
    assert_non_null(strstr(s, "tiny_weights_blob_end"));
    assert_non_null(strstr(c, "int tiny_create_embedded(tiny_model **m, void *workspace)\n"));
    assert_non_null(strstr(c, "return tiny_create_from_memory(m, tiny_weights_blob,"));
    assert_non_null(strstr(h, "int tiny_create_embedded(tiny_model **m, void *workspace);\n"));
    assert_true(strstr(h, "tiny_create_embedded") < strstr(h, "#ifdef __cplusplus\n}"));  /* inside extern "C" */
    assert_non_null(strstr(h, "#ifdef __cplusplus\n}\n#endif\n\n#endif"));
    snprintf(want, sizeof want, "/lib\\ dir/head.net \\\n  %s/w.safetensors\n", g_real);
    assert_non_null(strstr(d, want));
    free(s), free(c), free(h), free(d);

    /* it assembles, and holds the file's bytes between the two symbols */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd '%s' && cc -c e_weights.S -o e_weights.o && nm e_weights.o > e_weights.nm", g_dir);
    assert_int_equal(system(cmd), 0);
    char *nm = file_text("e_weights.nm");
    unsigned long long a = 0, b = 0;
    char *p = strstr(nm, " tiny_weights_blob\n"), *q = strstr(nm, " tiny_weights_blob_end\n");
    assert_non_null(p);
    assert_non_null(q);
    while (p > nm && p[-1] != '\n') p--;
    while (q > nm && q[-1] != '\n') q--;
    assert_int_equal(sscanf(p, "%llx", &a), 1);
    assert_int_equal(sscanf(q, "%llx", &b), 1);
    struct stat st;
    char w[512];
    snprintf(w, sizeof w, "%s/w.safetensors", g_dir);
    assert_int_equal(stat(w, &st), 0);
    assert_int_equal(b - a, (unsigned long long)st.st_size);
    assert_int_equal(a % 64, 0);
    free(nm);

    /* the training module gets its own */
    assert_int_equal(NNC("my models/m.net", "--emit=train", "-o", "t.c", "--embed-weights", "w.safetensors"), 0);
    h = file_text("t.h");
    assert_non_null(strstr(h, "int tiny_train_create_embedded(tiny_train **t, const tiny_train_config *cfg);"));
    free(h);
    assert_true(exists("t_weights.S"));
}

/* A path that would close the C comment naming it ("x*" + "/w..."): escaped there. */
static void test_embed_weights_path_in_comment(void **state)
{
    (void)state;
    char p[512];
    snprintf(p, sizeof p, "%s/x*", g_dir);
    assert_int_equal(mkdir(p, 0755), 0);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cp '%s/w.safetensors' '%s/x*/w.safetensors'", g_dir, g_dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(NNC("my models/m.net", "-o", "o.c", "--embed-weights", "x*/w.safetensors"), 0);
    char *c = file_text("o.c"), *h = file_text("o.h"), *s = file_text("o_weights.S");
    assert_null(strstr(c, "x*/w"));
    assert_non_null(strstr(c, "x*\\/w.safetensors ---- */"));
    assert_null(strstr(h, "x*/w"));
    assert_non_null(strstr(s, "/x*/w.safetensors\""));  /* the .incbin names the real path */
    free(c), free(h), free(s);
}

/* A wrong file: named, with the tensor; nothing written. */
static void test_embed_weights_checked(void **state)
{
    (void)state;
    remove_file("x.c");
    assert_int_equal(NNC("my models/m.net", "-o", "x.c", "--embed-weights", "w5.safetensors"), 1);
    assert_non_null(strstr(g_err, "w5.safetensors"));
    assert_non_null(strstr(g_err, "tensor 'fc.linear0.weight' has shape [5, 16], network tiny reads [3, 16]"));
    assert_false(exists("x.c"));
    assert_false(exists("x_weights.S"));
    assert_int_equal(NNC("my models/m.net", "-o", "x.c", "--embed-weights", "nope.safetensors"), 1);
    assert_non_null(strstr(g_err, "nope.safetensors"));
    assert_false(exists("x.c"));
    /* a file of another network: the first eight tensors told, then a count */
    assert_int_equal(NNC("my models/m.net", "-o", "x.c", "--check-weights", "w5.safetensors", "--set", "classes=3"), 1);
    assert_false(exists("x.c"));
}

/* --check-weights: the check and the depfile entry, no .S, no wrapper. */
static void test_check_weights(void **state)
{
    (void)state;
    assert_int_equal(NNC("my models/m.net", "-o", "k.c", "--check-weights", "w.safetensors", "--depfile", "k.d"), 0);
    assert_false(exists("k_weights.S"));
    char *c = file_text("k.c"), *d = file_text("k.d");
    assert_null(strstr(c, "create_embedded"));
    assert_non_null(strstr(d, "/w.safetensors\n"));
    free(c), free(d);
}

static void test_refused_combinations(void **state)
{
    (void)state;
    assert_int_equal(NNC("my models/m.net", "-o", "-", "--depfile", "x.d"), 2);
    assert_int_equal(NNC("my models/m.net", "--emit=ir", "--depfile", "x.d"), 2);
    assert_int_equal(NNC("my models/m.net", "-o", "-", "--embed-weights", "w.safetensors"), 2);
    assert_int_equal(NNC("my models/m.net", "--emit=ir", "-o", "x.ir", "--embed-weights", "w.safetensors"), 2);
    assert_int_equal(NNC("my models/m.net", "-o", "x.c", "--embed-weights", "w.safetensors", "--check-weights",
                         "w.safetensors"), 2);
    assert_int_equal(NNC("init", "my models/m.net", "-o", "y.safetensors", "--depfile", "x.d"), 2);
    assert_int_equal(NNC("my models/m.net", "-o", "x.c", "--depfile"), 2);
    assert_false(exists("x.d"));
    assert_false(exists("x.c"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_depfile_lists_imports),
        cmocka_unit_test(test_embed_weights),
        cmocka_unit_test(test_embed_weights_path_in_comment),
        cmocka_unit_test(test_embed_weights_checked),
        cmocka_unit_test(test_check_weights),
        cmocka_unit_test(test_refused_combinations),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
