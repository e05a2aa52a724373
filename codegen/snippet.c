/* snippet.c: the kernel library and picking sections out of it.
 *
 * The kernels are C files under runtime/snippets/ (kernels.c and the files it
 * includes, then grad_kernels.c and its) that compile, and are unit-tested,
 * as C; cmake/embed.cmake carries them in nnc as text, and cg_kernel_library
 * gives that text as one sectioned library. Generated code gets only the
 * sections its graph calls, so a LeNet's .c does not carry Winograd or LRN. A
 * section starts at its marker line and runs to the next marker:
 *
 *     / * @kernel conv2d needs: gemm * /
 *     static size_t nnc_conv2d_scratch(...) { ... }
 *     static void nnc_conv2d(...) { ... }
 *
 * Selection marks the wanted sections, then closes over "needs:" until
 * nothing changes (a handful of sections, so the quadratic loop is fine), and
 * copies the marked sections in file order, so a dependency always precedes
 * its users, as it does in the file. */
#include "emit_c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CG_MAX_SECTIONS = 128 };

typedef struct {
    const char *name;  size_t name_len;   /* "conv2d" */
    const char *needs; size_t needs_len;  /* "gemm im2col", or empty */
    const char *text;  size_t text_len;   /* from the marker line to the next marker */
    bool keep;
} CgSection;

static const char CG_MARKER[] = "/* @kernel ";

/* Finds the next marker at the start of a line, at or after p. */
static const char *cg_next_marker(const char *p, const char *end)
{
    size_t mlen = sizeof CG_MARKER - 1;
    for (; p && p + mlen <= end; p = memchr(p, '\n', (size_t)(end - p)), p = p ? p + 1 : NULL)
        if (memcmp(p, CG_MARKER, mlen) == 0) return p;
    return NULL;
}

static bool cg_is_space(char c) { return c == ' ' || c == '\t'; }

/* Splits a marker line "/ * @kernel NAME [needs: DEPS] * /" into its name and deps. */
static bool cg_parse_marker(const char *p, const char *end, CgSection *s, char *err, size_t errlen)
{
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *close;
    if (!eol) eol = end;
    p += sizeof CG_MARKER - 1;
    for (close = p; close + 1 < eol && !(close[0] == '*' && close[1] == '/'); close++) continue;
    if (close + 1 >= eol) {
        snprintf(err, errlen, "kernels snippet: unterminated marker line '%.*s'", (int)(eol - p), p);
        return false;
    }
    while (p < close && cg_is_space(*p)) p++;
    s->name = p;
    while (p < close && !cg_is_space(*p)) p++;
    s->name_len = (size_t)(p - s->name);
    while (p < close && cg_is_space(*p)) p++;
    s->needs = p;
    s->needs_len = 0;
    if (p < close && strncmp(p, "needs:", 6) == 0) {
        s->needs = p + 6;
        s->needs_len = (size_t)(close - s->needs);
    } else if (p < close) {
        snprintf(err, errlen, "kernels snippet: marker of '%.*s' has stray text", (int)s->name_len, s->name);
        return false;
    }
    return true;
}

static int cg_find_section(const CgSection *s, int n, const char *name, size_t len)
{
    for (int i = 0; i < n; i++)
        if (s[i].name_len == len && memcmp(s[i].name, name, len) == 0) return i;
    return -1;
}

static int cg_split_sections(const char *text, size_t len, CgSection *s, char *err, size_t errlen)
{
    const char *end = text + len;
    const char *p = cg_next_marker(text, end);
    int n = 0;
    while (p) {
        if (n == CG_MAX_SECTIONS) {
            snprintf(err, errlen, "kernels snippet: more than %d sections", CG_MAX_SECTIONS);
            return -1;
        }
        memset(&s[n], 0, sizeof s[n]);
        if (!cg_parse_marker(p, end, &s[n], err, errlen)) return -1;
        const char *next = cg_next_marker(p + 1, end);
        s[n].text = p;
        s[n].text_len = (size_t)((next ? next : end) - p);
        n++;
        p = next;
    }
    return n;
}

/* Marks the "needs:" of every kept section; returns -1 on an unknown name, else how many were newly marked. */
static int cg_mark_needs(CgSection *s, int n, char *err, size_t errlen)
{
    int added = 0;
    for (int i = 0; i < n; i++) {
        if (!s[i].keep) continue;
        const char *p = s[i].needs, *end = s[i].needs + s[i].needs_len;
        while (p < end) {
            while (p < end && cg_is_space(*p)) p++;
            const char *w = p;
            while (p < end && !cg_is_space(*p)) p++;
            if (p == w) break;
            int d = cg_find_section(s, n, w, (size_t)(p - w));
            if (d < 0) {
                snprintf(err, errlen, "kernels snippet: section '%.*s' needs '%.*s', which has no section",
                         (int)s[i].name_len, s[i].name, (int)(p - w), w);
                return -1;
            }
            if (!s[d].keep) s[d].keep = true, added++;
        }
    }
    return added;
}

bool cg_snippet_select(const char *text, size_t len, const char *const *names, int n_names, StrBuf *out,
                       char *err, size_t errlen)
{
    CgSection *s = nnc_xcalloc(CG_MAX_SECTIONS, sizeof *s);
    int n = cg_split_sections(text, len, s, err, errlen);
    bool ok = n > 0 && s[0].name_len == 8 && memcmp(s[0].name, "prologue", 8) == 0;
    if (n >= 0 && !ok) snprintf(err, errlen, "kernels snippet: the first section must be 'prologue'");
    if (ok) s[0].keep = true;
    for (int i = 0; ok && i < n_names; i++) {
        int k = cg_find_section(s, n, names[i], strlen(names[i]));
        if (k < 0) {
            snprintf(err, errlen, "kernels snippet: no section '%s'", names[i]);
            ok = false;
        } else {
            s[k].keep = true;
        }
    }
    int added = 1;
    while (ok && added > 0) {
        added = cg_mark_needs(s, n, err, errlen);
        ok = added >= 0;
    }
    for (int i = 0; ok && i < n; i++) {
        if (!s[i].keep) continue;
        sb_appendn(out, s[i].text, s[i].text_len);
        if (s[i].text[s[i].text_len - 1] != '\n') sb_append(out, "\n");
    }
    free(s);
    return ok;
}

/* The library's files as embedded (their #includes expanded), forward first. */
static const struct {
    const char *text;
    const size_t *len;
} CG_LIBRARY[] = {
    {nnc_snippet_kernels, &nnc_snippet_kernels_len},
    {nnc_snippet_grad_kernels, &nnc_snippet_grad_kernels_len},
};

void cg_kernel_library(StrBuf *out)
{
    for (size_t i = 0; i < sizeof CG_LIBRARY / sizeof CG_LIBRARY[0]; i++) {
        const char *text = CG_LIBRARY[i].text, *end = text + *CG_LIBRARY[i].len;
        const char *p = cg_next_marker(text, end);
        if (p) sb_appendn(out, p, (size_t)(end - p));
        if (out->len && out->data[out->len - 1] != '\n') sb_append(out, "\n");
    }
}

bool cg_kernel_select(const char *const *names, int n_names, StrBuf *out, char *err, size_t errlen)
{
    StrBuf lib = {0};
    cg_kernel_library(&lib);
    bool ok = cg_snippet_select(lib.data, lib.len, names, n_names, out, err, errlen);
    sb_free(&lib);
    return ok;
}
