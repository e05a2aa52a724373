/* sections.h: the checks the snippet tests share (test_kernel_sections.c,
 * test_optim.c): split a sectioned snippet file
 * (codegen/snippet.c's format) into its sections, close a section over its
 * needs, refuse forbidden calls, and compile a selection alone with gcc and
 * clang under the strict warning set, with and without CBLAS. Included by one
 * test file each; every helper is static. */
#ifndef NNC_TEST_SECTIONS_H
#define NNC_TEST_SECTIONS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wunused-function"
#endif

enum { MAX_SECTIONS = 128, MAX_NEEDS = 8 };

typedef struct Section {
    char name[32];
    int needs[MAX_NEEDS], n_needs;  /* indices of earlier sections (of either file) */
    const char *text;               /* from the marker to the next one */
    size_t len;
    int tag;                        /* which file it came from (split_sections' tag) */
} Section;

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long len;
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    buf[len] = '\0';
    fclose(f);
    return buf;
}

static int find_section(const Section *s, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s[i].name, name) == 0) return i;
    return -1;
}

/* Parses one marker line "/ * @kernel NAME [needs: A B] * /" into all[idx];
 * needs must name earlier sections (of any file split into the same array). */
static void parse_marker(const char *line, size_t len, Section *all, int idx)
{
    char buf[256], *tok, *save = NULL;
    Section *s = &all[idx];
    assert_true(len < sizeof buf);
    memcpy(buf, line, len);
    buf[len] = '\0';
    if (len < 14 || strncmp(buf, "/* @kernel ", 11) != 0 || strcmp(buf + len - 3, " */") != 0)
        fail_msg("malformed marker line '%s'", buf);
    buf[len - 3] = '\0';
    tok = strtok_r(buf + 11, " ", &save);
    assert_non_null(tok);
    assert_true(strlen(tok) < sizeof s->name);
    strcpy(s->name, tok);
    if (find_section(all, idx, s->name) >= 0) fail_msg("section '%s' appears twice (names span all files split together)", s->name);
    tok = strtok_r(NULL, " ", &save);
    if (tok && strcmp(tok, "needs:") != 0) fail_msg("marker of '%s' has stray text '%s'", s->name, tok);
    while ((tok = strtok_r(NULL, " ", &save)) != NULL) {
        int d = find_section(all, idx, tok);
        if (d < 0) fail_msg("section '%s' needs '%s', which is not an earlier section", s->name, tok);
        assert_true(s->n_needs < MAX_NEEDS);
        s->needs[s->n_needs++] = d;
    }
}

/* Appends the sections of text to s[n..] (text before the first marker is dropped); returns the new n. */
static int split_sections(const char *text, Section *s, int n, int tag)
{
    const char *p = text;
    int first = n;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (strncmp(p, "/* @kernel", 10) == 0) {
            assert_true(n < MAX_SECTIONS);
            memset(&s[n], 0, sizeof s[n]);
            parse_marker(p, len, s, n);
            s[n].text = p;
            s[n].tag = tag;
            if (n > first) s[n - 1].len = (size_t)(p - s[n - 1].text);
            n++;
        } else if (strncmp(p + strspn(p, " \t"), "/* @kernel", 10) == 0) {
            fail_msg("indented marker line (markers start in column 1): %.*s", (int)len, p);
        }
        p += eol ? len + 1 : len;
    }
    if (n > first) s[n - 1].len = (size_t)(p - s[n - 1].text);
    return n;
}

static void mark_needs(const Section *s, int i, int *keep)
{
    keep[i] = 1;
    for (int d = 0; d < s[i].n_needs; d++) mark_needs(s, s[i].needs[d], keep);
}

/* Fails if the code of a section (comments stripped) calls exit, prints,
 * allocates, or declares a static variable (no global mutable state). */
static void check_forbidden(const Section *s)
{
    static const char *const bad[] = {"exit(", "printf(", "puts(", "malloc(", "calloc(", "realloc(", "free(",
                                      "abort(", "static float ", "static double ", "static int "};
    char *code = malloc(s->len + 1);
    size_t m = 0;
    assert_non_null(code);
    for (size_t i = 0; i < s->len; i++) {
        if (s->text[i] == '/' && i + 1 < s->len && s->text[i + 1] == '*') {
            const char *e = strstr(s->text + i + 2, "*/");
            i = e ? (size_t)(e - s->text) + 1 : s->len;
            continue;
        }
        code[m++] = s->text[i];
    }
    code[m] = '\0';
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++)
        if (strstr(code, bad[b])) fail_msg("section '%s' uses %s", s->name, bad[b]);
    free(code);
}

static int have_program(const char *prog)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", prog);
    return system(cmd) == 0;
}

/* Compiles file with one compiler, with and without CBLAS; fails with the compiler's output. */
static void compile_or_fail(const char *cc, const char *file, const char *mode, const char *log, const char *what)
{
    static const char *const defs[] = {"", "-DNNC_USE_CBLAS"};
    for (int d = 0; d < 2; d++) {
        char cmd[4096];
        snprintf(cmd, sizeof cmd,
                 "%s -std=c99 -Wall -Wextra -Werror -pedantic -Wshadow -Wstrict-prototypes -Wmissing-prototypes "
                 "%s %s '%s' >'%s' 2>&1",
                 cc, defs[d], mode, file, log);
        if (system(cmd) != 0) {
            char *out = read_file(log);
            fail_msg("%s does not compile alone (%s %s):\n%s", what, cc, defs[d], out ? out : "");
        }
    }
}

static void write_file(const char *path, const Section *s, int n, const int *keep)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < n; i++)
        if (keep[i]) fwrite(s[i].text, 1, s[i].len, f);
    fclose(f);
}

#endif
