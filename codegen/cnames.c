/* cnames.c: C identifiers, comments, string literals and header names made
 * from user text, for every emitter. The scheme and why it cannot collide is
 * in cnames.h; the tests (tests/unit/test_cnames.c) feed it every C keyword,
 * C99 and POSIX library name and nnc's own identifiers as network, input,
 * output and layer names and compile what comes out. */
#include "cnames.h"

#include <stdio.h>
#include <string.h>

static bool cg_is_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }
static char cg_lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }
static char cg_upper_char(char c) { return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c; }

/* s with every character outside [A-Za-z0-9_] as '_' (lowercased when lower);
 * "x" for an empty or NULL s. */
static char *cg_sanitize(Arena *a, const char *s, bool lower)
{
    if (!s || !*s) s = "x";
    char *r = arena_strdup(a, s);
    for (char *p = r; *p; p++) *p = cg_is_alnum(*p) ? (lower ? cg_lower(*p) : *p) : '_';
    return r;
}

const char *cg_c_prefix(Arena *a, const char *network_name)
{
    char *p = cg_sanitize(a, network_name, true);
    /* nnc's own file-scope names are nnc_* and NNC_*; a leading '_' or digit
     * would make P_... reserved or not an identifier at all */
    bool escape = (p[0] >= '0' && p[0] <= '9') || p[0] == '_' || strcmp(p, "nnc") == 0 || strncmp(p, "nnc_", 4) == 0;
    /* the generated code includes <pthread.h> (the instance's threads), which
     * declares pthread_create and, in GNU modes, <time.h>'s timer_create:
     * networks named so would define them again */
    static const char *const posix[] = {"pthread", "timer", "sched", "clock"};
    for (size_t i = 0; i < sizeof posix / sizeof posix[0]; i++) escape |= strcmp(p, posix[i]) == 0;
    return escape ? arena_printf(a, "net_%s", p) : p;
}

const char *cg_c_upper(Arena *a, const char *s)
{
    char *u = arena_strdup(a, s);
    for (char *p = u; *p; p++) *p = cg_upper_char(*p);
    return u;
}

const char *cg_io_base(Arena *a, const char *kind, const char *dsl_name)
{
    return arena_printf(a, "%s_%s", kind, cg_sanitize(a, dsl_name, false));
}

bool cg_same_c_name(const char *a, const char *b)
{
    for (; *a && *b; a++, b++)
        if (cg_lower(*a) != cg_lower(*b)) return false;
    return *a == *b;
}

void cg_append_comment(StrBuf *out, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
        if (*p < 0x20 || *p >= 0x7f || *p == '\\') {  /* a backslash could splice the line with what follows */
            sb_printf(out, "\\x%02x", *p);
            continue;
        }
        sb_appendn(out, (const char *)p, 1);
        bool pair = (p[0] == '*' && p[1] == '/') || (p[0] == '/' && p[1] == '*') || (p[0] == '?' && p[1] == '?');
        if (pair) sb_append(out, " ");
    }
}

void cg_append_string_literal(StrBuf *out, const char *s)
{
    sb_append(out, "\"");
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
        if (*p == '"' || *p == '\\' || *p == '?') sb_printf(out, "\\%c", *p);  /* "\?" keeps "??" from a trigraph */
        else if (*p < 0x20 || *p >= 0x7f) sb_printf(out, "\\%03o", *p);        /* octal: at most 3 digits, unlike \x */
        else sb_appendn(out, (const char *)p, 1);
    }
    sb_append(out, "\"");
}

bool cg_header_name_ok(const char *name, char *err, size_t errlen)
{
    bool ok = name && *name && name[0] != '.' && name[0] != ' ';
    for (const char *p = name; ok && *p; p++) ok = cg_is_alnum(*p) || strchr("_-.+ ", *p);
    if (!ok) {
        StrBuf shown = {0};
        cg_append_string_literal(&shown, name ? name : "");
        snprintf(err, errlen,
                 "the header name %s cannot be #included portably: name the output with letters, digits, spaces and "
                 "'_', '-', '.', '+' only (e.g. -o model.c)", shown.data);
        sb_free(&shown);
    }
    return ok;
}
