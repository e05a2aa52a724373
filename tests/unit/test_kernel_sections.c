/* test_kernel_sections.c: the kernel library as the code generator pastes it
 * (codegen/snippet.c cg_kernel_library: runtime/snippets/kernels.c's files,
 * then grad_kernels.c's), every section compiled on its own with "prologue"
 * and its needs, with gcc and clang, with and without CBLAS, under the strict
 * warning set (tests/unit/sections.h); then the whole library at -O2, for the
 * warnings only the optimizer finds.
 *
 * And the library is complete: every file kernels.c and grad_kernels.c
 * include must exist (a missing one fails here, naming it, rather than
 * leaving its kernels untested), every section of those files is in the
 * library, and no sectioned file under runtime/snippets/ is left out of it
 * (optim.c is a library of its own, test_optim.c's). */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codegen/emit_c.h"
#include "tests/unit/sections.h"

#define SNIPPETS NNC_SOURCE_DIR "/runtime/snippets/"

/* The library's files: the #include "F" lines of kernels.c and grad_kernels.c. */
enum { MAX_FILES = 32 };

static int library_files(char names[][64])
{
    static const char *const tops[] = {"kernels.c", "grad_kernels.c"};
    int n = 0;
    for (size_t t = 0; t < 2; t++) {
        char path[4096], *text, *p;
        snprintf(path, sizeof path, SNIPPETS "%s", tops[t]);
        text = read_file(path);
        if (!text) fail_msg("cannot read %s: the kernel library's top file is missing", path);
        for (p = text; (p = strstr(p, "\n#include \"")) != NULL; p++) {
            const char *name = p + 11, *q = strchr(name, '"');
            assert_non_null(q);
            assert_true(n < MAX_FILES && q - name < 64);
            snprintf(names[n++], 64, "%.*s", (int)(q - name), name);
        }
        free(text);
    }
    return n;
}

static void test_library_complete(void **state)
{
    static Section lib[MAX_SECTIONS], file[MAX_SECTIONS];
    char names[MAX_FILES][64], *srcs[MAX_FILES];
    StrBuf text = {0};
    int n_lib, n_files = library_files(names);
    DIR *d;
    struct dirent *e;
    (void)state;
    cg_kernel_library(&text);
    n_lib = split_sections(text.data, lib, 0, 0);
    assert_true(n_files >= 2);
    for (int f = 0, n = 0; f < n_files; f++) {  /* in library order: a section's needs are earlier ones */
        char path[4096];
        int first = n;
        snprintf(path, sizeof path, SNIPPETS "%s", names[f]);
        srcs[f] = read_file(path);
        if (!srcs[f])
            fail_msg("cannot read %s, a file of the kernel library (kernels.c or grad_kernels.c includes it)", path);
        n = split_sections(srcs[f], file, n, f);
        if (n == first) fail_msg("%s has no sections", path);
        for (int i = first; i < n; i++)
            if (find_section(lib, n_lib, file[i].name) < 0)
                fail_msg("section '%s' of %s is not in cg_kernel_library's text (rebuild nnc?)", file[i].name, path);
    }
    for (int f = 0; f < n_files; f++) free(srcs[f]);
    d = opendir(SNIPPETS);
    if (!d) fail_msg("cannot list %s", SNIPPETS);
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        int listed = 0;
        char path[4096], *src;
        if (len < 3 || strcmp(e->d_name + len - 2, ".c") != 0 || strcmp(e->d_name, "optim.c") == 0) continue;
        snprintf(path, sizeof path, SNIPPETS "%s", e->d_name);
        src = read_file(path);
        assert_non_null(src);
        for (int f = 0; f < n_files; f++) listed |= strcmp(names[f], e->d_name) == 0;
        if (!listed && strcmp(e->d_name, "kernels.c") != 0 && strcmp(e->d_name, "grad_kernels.c") != 0 &&
            (strncmp(src, "/* @kernel ", 11) == 0 || strstr(src, "\n/* @kernel ")))
            fail_msg("%s has kernel sections but neither kernels.c nor grad_kernels.c includes it", path);
        free(src);
    }
    closedir(d);
    sb_free(&text);
}

static void test_sections_compile_alone(void **state)
{
    static const char *const ccs[] = {"gcc", "clang"};
    static Section s[MAX_SECTIONS];
    char dir[] = "/tmp/nnc_kernel_sections_XXXXXX", file[64], log[64];
    StrBuf text = {0};
    int n, compilers = 0;
    (void)state;
    cg_kernel_library(&text);
    n = split_sections(text.data, s, 0, 0);
    assert_true(n > 1);
    assert_string_equal(s[0].name, "prologue");
    assert_non_null(mkdtemp(dir));
    snprintf(file, sizeof file, "%s/section.c", dir);
    snprintf(log, sizeof log, "%s/cc.log", dir);
    for (size_t c = 0; c < 2; c++) {
        if (!have_program(ccs[c])) continue;
        compilers++;
        for (int i = 0; i < n; i++) {
            int keep[MAX_SECTIONS] = {0};
            keep[0] = 1;
            mark_needs(s, i, keep);
            check_forbidden(&s[i]);
            write_file(file, s, n, keep);
            compile_or_fail(ccs[c], file, "-fsyntax-only", log, s[i].name);
        }
        {
            int keep[MAX_SECTIONS];
            for (int i = 0; i < n; i++) keep[i] = 1;
            write_file(file, s, n, keep);
            compile_or_fail(ccs[c], file, "-O2 -c -o /dev/null", log, "the whole kernel library");
        }
    }
    remove(file), remove(log), rmdir(dir);
    sb_free(&text);
    assert_true(compilers > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_library_complete),
        cmocka_unit_test(test_sections_compile_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
