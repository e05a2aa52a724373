/* test_errors.c: golden diagnostics, the files tests/errors/NAME.net.
 *
 * Each file is a small program with exactly one user error, followed by the
 * diagnostics the frontend must print for it, as comment lines (QBE-style
 * golden files that carry their own expected output):
 *
 *     network n {
 *         input x: [3, 8, 8]
 *         output y = x |> conv(4, 3 pad: 1)
 *     }
 *     #> syntax_missing_comma.net:3:31: error: unexpected 'pad', expected ',' or ')'
 *     #>         output y = x |> conv(4, 3 pad: 1)
 *     #>                                   ^
 *
 * Every line of fe_compile's output, run in tests/errors on the bare file
 * name, is written "#> LINE" ("#>" alone for an empty line). The test checks,
 * for every file in sorted order, that compilation fails, that the output
 * equals the "#>" lines byte for byte (a diff is printed otherwise), and that
 * the first line reads "NAME.net:LINE:COL: error: " (or "nnc: error: " for an
 * error with no position).
 *
 * Messages evolve. To take the current output as the new expectation, run
 *
 *     NNC_UPDATE_GOLDENS=1 ./test_errors
 *
 * which rewrites the "#>" block at the end of each file, then review the
 * change with git diff. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frontend/frontend.h"

#define ERRORS_DIR NNC_SOURCE_DIR "/tests/errors"
enum { MIN_GOLDENS = 35 };

/* ---- golden files ---- */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.net files of dir, sorted; *n receives their count. */
static char **list_goldens(const char *dir, int *n)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    char **names = NULL;
    int count = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".net") != 0) continue;
        names = realloc(names, (size_t)(count + 1) * sizeof *names);
        assert_non_null(names);
        names[count++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)count, sizeof *names, cmp_names);
    *n = count;
    return names;
}

static bool is_expect_line(const char *line, size_t len)
{
    return (len == 2 && memcmp(line, "#>", 2) == 0) || (len >= 3 && memcmp(line, "#> ", 3) == 0);
}

/* Splits text into the program (every line that is not an expectation) and
 * the expected output (the "#>" lines without their prefix). */
static void split_golden(const char *text, StrBuf *program, StrBuf *expected)
{
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (is_expect_line(p, len)) {
            if (len > 3) sb_appendn(expected, p + 3, len - 3);
            sb_append(expected, "\n");
        } else {
            sb_appendn(program, p, len);
            if (nl) sb_append(program, "\n");
        }
        p += len + (nl != NULL);
    }
}

/* The output as an expectation block: "#> " before each line. */
static void to_block(const char *out, StrBuf *block)
{
    for (const char *p = out; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        sb_append(block, len ? "#> " : "#>");
        sb_appendn(block, p, len);
        sb_append(block, "\n");
        p += len + (nl != NULL);
    }
}

/* Rewrites name with the program, then the actual output as its "#>" block. */
static void update_golden(const char *name, const StrBuf *program, const char *actual)
{
    StrBuf text = {0};
    size_t len = program->len;
    while (len > 0 && program->data[len - 1] == '\n') len--;  /* one newline before the block */
    sb_appendn(&text, program->data ? program->data : "", len);
    sb_append(&text, "\n");
    to_block(actual, &text);
    assert_int_equal(nnc_write_file_atomic(name, text.data, text.len), 0);
    sb_free(&text);
}

/* A line-by-line comparison, printed only on a mismatch. */
static void print_diff(const char *name, const char *want, const char *got)
{
    fprintf(stderr, "--- %s (expected)\n+++ %s (actual)\n", name, name);
    const char *a = want, *b = got;
    while (*a || *b) {
        const char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
        size_t la = ea ? (size_t)(ea - a) : strlen(a), lb = eb ? (size_t)(eb - b) : strlen(b);
        if (*a && *b && la == lb && memcmp(a, b, la) == 0) {
            fprintf(stderr, " %.*s\n", (int)la, a);
        } else {
            if (*a) fprintf(stderr, "-%.*s\n", (int)la, a);
            if (*b) fprintf(stderr, "+%.*s\n", (int)lb, b);
        }
        if (*a) a += la + (ea != NULL);
        if (*b) b += lb + (eb != NULL);
    }
}

/* "NAME:LINE:COL: error: " with NAME the golden's own file name. */
static bool first_line_ok(const char *name, const char *out)
{
    if (strncmp(out, "nnc: error: ", 12) == 0) return true;
    size_t n = strlen(name);
    if (strncmp(out, name, n) != 0 || out[n] != ':') return false;
    const char *p = out + n + 1;
    for (int field = 0; field < 2; field++) {
        if (*p < '1' || *p > '9') return false;
        while (*p >= '0' && *p <= '9') p++;
        if (*p++ != ':') return false;
    }
    return strncmp(p, " error: ", 8) == 0;
}

/* Compiles one golden; returns true when it behaves as its block says. */
static bool check_golden(const char *name, bool update)
{
    size_t len;
    const char *err;
    char *text = nnc_read_file(name, &len, &err);
    if (!text) {
        fprintf(stderr, "%s: cannot read: %s\n", name, err);
        return false;
    }
    StrBuf program = {0}, expected = {0};
    split_golden(text, &program, &expected);
    Arena arena = {0};
    Diag d;
    diag_init(&d, &arena);
    IrGraph *g = fe_compile(name, NULL, &d);
    const char *actual = d.out.data ? d.out.data : "";
    const char *want = expected.data ? expected.data : "";
    bool ok = true;
    if (g) {
        fprintf(stderr, "%s: compiled, but it holds an error\n", name);
        ir_free(g);
        ok = false;
    } else if (!first_line_ok(name, actual)) {
        fprintf(stderr, "%s: the first line is not '%s:LINE:COL: error: ...' or 'nnc: error: ...':\n%s", name, name,
                actual);
        ok = false;
    }
    if (update && strcmp(want, actual) != 0) {
        update_golden(name, &program, actual);
        fprintf(stderr, "%s: updated\n", name);
    } else if (strcmp(want, actual) != 0) {
        print_diff(name, want, actual);
        ok = false;
    }
    diag_free(&d);
    arena_free(&arena);
    sb_free(&program);
    sb_free(&expected);
    free(text);
    return ok;
}

static void test_goldens(void **state)
{
    (void)state;
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(ERRORS_DIR), 0);
    const char *env = getenv("NNC_UPDATE_GOLDENS");
    bool update = env && strcmp(env, "1") == 0;
    int n, failed = 0;
    char **names = list_goldens(".", &n);
    for (int i = 0; i < n; i++) {
        if (!check_golden(names[i], update)) failed++;
        free(names[i]);
    }
    free(names);
    assert_int_equal(chdir(cwd), 0);
    printf("%d golden diagnostics, %d failed\n", n, failed);
    assert_true(n >= MIN_GOLDENS);
    assert_int_equal(failed, 0);
}

/* The helpers themselves: splitting and rebuilding a block is lossless. */
static void test_block_roundtrip(void **state)
{
    (void)state;
    const char *out = "a.net:1:2: error: x\n    y\n\n    ^\n";
    StrBuf block = {0}, program = {0}, expected = {0};
    to_block(out, &block);
    assert_string_equal(block.data, "#> a.net:1:2: error: x\n#>     y\n#>\n#>     ^\n");
    StrBuf text = {0};
    sb_append(&text, "network n {}\n");
    sb_append(&text, block.data);
    split_golden(text.data, &program, &expected);
    assert_string_equal(program.data, "network n {}\n");
    assert_string_equal(expected.data, out);
    assert_true(first_line_ok("a.net", out));
    assert_false(first_line_ok("b.net", out));
    assert_true(first_line_ok("b.net", "nnc: error: b.net: defines no network\n"));
    assert_false(first_line_ok("a.net", "a.net:0:2: error: x\n"));
    sb_free(&block);
    sb_free(&program);
    sb_free(&expected);
    sb_free(&text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block_roundtrip),
        cmocka_unit_test(test_goldens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
