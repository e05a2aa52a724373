/* template.c: fills in the templates of generated-module scaffolding
 * (runtime/snippets/module_*.c; cgen.h cg_template). */
#include "cgen.h"

#include <stdio.h>
#include <string.h>

enum { CG_TEMPLATE_DEPTH = 8 };

/* The NAME of a marker line "/ * @KIND NAME * /" of this kind, or NULL. */
static const char *marker(Arena *a, const char *line, size_t len, const char *kind)
{
    char open[32];
    int k = snprintf(open, sizeof open, "/* @%s", kind);
    if (len < (size_t)k + 3 || strncmp(line, open, (size_t)k) != 0 || strncmp(line + len - 3, " */", 3) != 0)
        return NULL;
    const char *s = line + k, *e = line + len - 3;
    while (s < e && *s == ' ') s++;
    return arena_printf(a, "%.*s", (int)(e - s), s);
}

static int find_flag(const CgTemplate *t, const char *name)
{
    for (int i = 0; i < t->n_flags; i++)
        if (strcmp(t->flags[i].name, name) == 0) return i;
    return -1;
}

bool cg_template(Arena *a, const char *text, size_t len, const char *part, const CgTemplate *t, StrBuf *out,
                 char *err, size_t errlen)
{
    bool in_part = false, found = false, keep[CG_TEMPLATE_DEPTH + 1] = {true}, seen_else[CG_TEMPLATE_DEPTH + 1];
    int depth = 0, line_no = 0;
    for (size_t p = 0; p < len;) {
        const char *line = text + p, *nl = memchr(line, '\n', len - p);
        size_t n = nl ? (size_t)(nl - line) : len - p;
        p += n + (nl != NULL);
        line_no++;
        const char *name;
        if ((name = marker(a, line, n, "part"))) {
            in_part = strcmp(name, part) == 0;
            found |= in_part;
            continue;
        }
        if (!in_part) continue;
        if ((name = marker(a, line, n, "if"))) {
            bool neg = name[0] == '!';
            int f = find_flag(t, name + neg);
            if (f < 0 || depth == CG_TEMPLATE_DEPTH) {
                snprintf(err, errlen, "template line %d: unknown flag '%s' (or nested too deep)", line_no, name + neg);
                return false;
            }
            depth++;
            keep[depth] = keep[depth - 1] && t->flags[f].on != neg;
            seen_else[depth] = false;
        } else if (marker(a, line, n, "else")) {
            if (!depth || seen_else[depth]) {
                snprintf(err, errlen, "template line %d: @else without @if", line_no);
                return false;
            }
            seen_else[depth] = true;
            keep[depth] = keep[depth - 1] && !keep[depth];
        } else if (marker(a, line, n, "endif")) {
            if (!depth) {
                snprintf(err, errlen, "template line %d: @endif without @if", line_no);
                return false;
            }
            depth--;
        } else if ((name = marker(a, line, n, "fill"))) {
            int f = -1;
            for (int i = 0; i < t->n_fills; i++)
                if (strcmp(t->fills[i].name, name) == 0) f = i;
            if (f < 0) {
                snprintf(err, errlen, "template line %d: nothing to fill '%s' with", line_no, name);
                return false;
            }
            if (keep[depth]) sb_append(out, t->fills[f].text);
        } else if (keep[depth]) {
            StrBuf l = {0};
            sb_appendn(&l, line, n);
            sb_append(&l, "\n");
            cg_put_template(out, l.data, t->prefix, t->upper);
            sb_free(&l);
        }
    }
    if (!found || depth) {
        snprintf(err, errlen, found ? "template part '%s': an @if is not closed" : "no template part '%s'", part);
        return false;
    }
    return true;
}
