/* diag.c: rendering of positioned messages (see diag.h). */
#include "diag.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

void diag_init(Diag *d, Arena *arena)
{
    memset(d, 0, sizeof *d);
    d->arena = arena;
    d->last_main = -1;
}

void diag_free(Diag *d)
{
    free(d->files);
    free(d->recs);
    sb_free(&d->out);
}

const SrcFile *diag_add_file(Diag *d, const char *path, const char *text, size_t len)
{
    SrcFile *f = arena_alloc(d->arena, sizeof *f);
    f->path = arena_strdup(d->arena, path);
    f->text = arena_strndup(d->arena, text, len);
    f->len = len;
    if (d->n_files == d->cap_files) {
        d->cap_files = d->cap_files ? d->cap_files * 2 : 8;
        d->files = nnc_xrealloc(d->files, (size_t)d->cap_files * sizeof *d->files);
    }
    d->files[d->n_files++] = f;
    return f;
}

/* ---- bytes that must not reach a terminal ----
 * A .net file, a path or a --network name may hold control bytes (ESC starts
 * a terminal escape sequence), invalid UTF-8, or C1 controls (U+0080..U+009F;
 * U+009B is a CSI to some terminals). Diagnostics print none of them raw:
 * messages show them as \xNN (C's notation; a valid UTF-8 character other than
 * a C1 control is kept), and the echoed source line does the same, with the
 * caret line advanced by the width of what was printed so that it still points
 * at its column. Columns count bytes, as the lexer's do. */

/* Length of the printable unit at p (< end): a printable ASCII byte or tab (1),
 * a valid UTF-8 sequence of a character that is not a C1 control (2..4), or 0
 * for a byte to escape. Overlong forms and surrogates are invalid. */
static size_t printable_len(const unsigned char *p, const unsigned char *end, bool tab_ok)
{
    unsigned c = p[0];
    if (c < 0x80) return (c >= 0x20 && c != 0x7f) || (c == '\t' && tab_ok) ? 1 : 0;
    size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (n == 0 || (size_t)(end - p) < n) return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    if (c == 0xc2 && p[1] < 0xa0) return 0;                    /* C1 control */
    if (c == 0xe0 && p[1] < 0xa0) return 0;                    /* overlong */
    if (c == 0xed && p[1] >= 0xa0) return 0;                   /* surrogate */
    if (c == 0xf0 && p[1] < 0x90) return 0;                    /* overlong */
    if (c == 0xf4 && p[1] >= 0x90) return 0;                   /* past U+10FFFF */
    return n;
}

/* Appends s[0..n) with every byte printable_len refuses written as \xNN. */
static void append_escaped(StrBuf *out, const char *s, size_t n, bool tab_ok)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        size_t k = printable_len(p, end, tab_ok);
        if (k) sb_appendn(out, (const char *)p, k), p += k;
        else sb_printf(out, "\\x%02x", *p++);
    }
}

size_t diag_first_unprintable(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    for (size_t k; p < end; p += k)
        if (!(k = printable_len(p, end, false))) break;
    return (size_t)(p - (const unsigned char *)s);
}

/* Prints the source line of loc and a caret under its column. Tabs before the
 * column are copied so the caret lines up whatever the tab width; a UTF-8
 * character takes one column; a byte printed as \xNN takes four. An empty
 * file has no line to show. */
static void show_line(StrBuf *out, Loc loc)
{
    const char *p = loc.file->text, *end = p + loc.file->len;
    if (loc.file->len == 0) return;
    for (int l = 1; l < loc.line && p < end; p++)
        if (*p == '\n') l++;
    const char *q = p;
    while (q < end && *q != '\n') q++;
    if (q > p && q[-1] == '\r') q--;
    size_t n = (size_t)(q - p);
    if (n > 240) n = 240;  /* a minified or binary file: keep the message readable */
    StrBuf caret = {0};
    sb_append(out, "    ");
    sb_append(&caret, "    ");
    const unsigned char *u = (const unsigned char *)p, *uend = u + n;
    while (u < uend) {
        size_t k = printable_len(u, uend, true);
        bool before = u - (const unsigned char *)p + 1 < loc.col;
        if (k) sb_appendn(out, (const char *)u, k);
        else sb_printf(out, "\\x%02x", *u);
        if (before) sb_append(&caret, *u == '\t' ? "\t" : k ? " " : "    ");
        u += k ? k : 1;
    }
    sb_append(out, "\n");
    sb_append(out, caret.data);
    sb_append(out, "^\n");
    sb_free(&caret);
}

/* Renders one message onto d->out and records it as data (DiagRecord). */
static void emit(Diag *d, Loc loc, DiagSeverity sev, const char *fmt, va_list ap)
{
    static const char *const kinds[] = {"error", "warning", "note"};
    StrBuf msg = {0}, esc = {0};
    sb_vprintf(&msg, fmt, ap);
    append_escaped(&esc, msg.data ? msg.data : "", msg.len, false);
    sb_free(&msg);
    size_t start = d->out.len;
    const char *path = NULL;
    if (loc.file) {
        append_escaped(&d->out, loc.file->path, strlen(loc.file->path), false);
        path = arena_strndup(d->arena, d->out.len > start ? d->out.data + start : "", d->out.len - start);
        sb_printf(&d->out, ":%d:%d: %s: ", loc.line, loc.col, kinds[sev]);
    } else {
        sb_printf(&d->out, "nnc: %s: ", kinds[sev]);
    }
    sb_append(&d->out, esc.data ? esc.data : "");
    sb_append(&d->out, "\n");
    if (loc.file && loc.line > 0) show_line(&d->out, loc);
    int parent = sev == DIAG_NOTE ? d->last_main : -1;
    if (sev != DIAG_NOTE) d->last_main = d->n_recs;
    if (d->n_recs == d->cap_recs) {
        d->cap_recs = d->cap_recs ? d->cap_recs * 2 : 8;
        d->recs = nnc_xrealloc(d->recs, (size_t)d->cap_recs * sizeof *d->recs);
    }
    d->recs[d->n_recs++] = (DiagRecord){sev, path, loc.file ? loc.line : 0, loc.file ? loc.col : 0,
                                        arena_strdup(d->arena, esc.data ? esc.data : ""), parent, start,
                                        d->out.len - start};
    sb_free(&esc);
}

void diag_verror(Diag *d, Loc loc, const char *fmt, va_list ap)
{
    d->errors++;
    emit(d, loc, DIAG_ERROR, fmt, ap);
}

void diag_error(Diag *d, Loc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_verror(d, loc, fmt, ap);
    va_end(ap);
}

void diag_warning(Diag *d, Loc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(d, loc, DIAG_WARNING, fmt, ap);
    va_end(ap);
}

void diag_note(Diag *d, Loc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(d, loc, DIAG_NOTE, fmt, ap);
    va_end(ap);
}
