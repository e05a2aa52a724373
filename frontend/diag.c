/* diag.c: rendering of positioned messages (see diag.h). */
#include "diag.h"

#include <stdlib.h>
#include <string.h>

void diag_init(Diag *d, Arena *arena)
{
    memset(d, 0, sizeof *d);
    d->arena = arena;
}

void diag_free(Diag *d)
{
    free(d->files);
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

/* Prints the source line of loc and a caret under its column. Tabs before the
 * column are copied so the caret lines up whatever the tab width; other bytes
 * that do not print (a NUL, control characters) are shown as '?'. */
static void show_line(StrBuf *out, Loc loc)
{
    const char *p = loc.file->text, *end = p + loc.file->len;
    for (int l = 1; l < loc.line && p < end; p++)
        if (*p == '\n') l++;
    const char *q = p;
    while (q < end && *q != '\n') q++;
    if (q > p && q[-1] == '\r') q--;
    size_t n = (size_t)(q - p);
    if (n > 240) n = 240;  /* a minified or binary file: keep the message readable */
    sb_append(out, "    ");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        char s[2] = {(c == '\t' || c >= 0x20) && c != 0x7f ? (char)c : '?', 0};
        sb_append(out, s);
    }
    sb_append(out, "\n    ");
    for (int i = 0; i + 1 < loc.col && (size_t)i < n; i++) sb_append(out, p[i] == '\t' ? "\t" : " ");
    sb_append(out, "^\n");
}

static void emit(Diag *d, Loc loc, const char *kind, const char *fmt, va_list ap)
{
    if (loc.file) sb_printf(&d->out, "%s:%d:%d: %s: ", loc.file->path, loc.line, loc.col, kind);
    else sb_printf(&d->out, "nnc: %s: ", kind);
    sb_vprintf(&d->out, fmt, ap);
    sb_append(&d->out, "\n");
    if (loc.file && loc.line > 0) show_line(&d->out, loc);
}

void diag_verror(Diag *d, Loc loc, const char *fmt, va_list ap)
{
    d->errors++;
    emit(d, loc, "error", fmt, ap);
}

void diag_error(Diag *d, Loc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_verror(d, loc, fmt, ap);
    va_end(ap);
}

void diag_note(Diag *d, Loc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(d, loc, "note", fmt, ap);
    va_end(ap);
}
