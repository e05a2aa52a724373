/* diag.h: user-facing diagnostics with source spans.
 *
 * Every user mistake is reported as
 *
 *     FILE:LINE:COL: error: MESSAGE
 *         the source line
 *             ^
 *
 * optionally followed by notes in the same form (the chain of block calls that
 * led to a shape error, the place a name was first defined). The source table
 * keeps the text of every file read in the compilation, so any location can be
 * shown. Messages accumulate in a StrBuf; the CLI prints them, the library hands
 * them to its caller. Each is also kept as data (a DiagRecord: severity,
 * position, message, the error a note belongs to, its span of the text), which
 * the library's nnc_diagnostics hands out (api/diagnostics.c). No byte that could drive a terminal is printed raw:
 * control bytes and invalid UTF-8 in messages, paths and echoed source lines
 * are shown as \xNN (diag.c). */
#ifndef NNC_DIAG_H
#define NNC_DIAG_H

#include "../common/common.h"

typedef struct {
    const char *path;  /* as the user wrote it (or as resolved relative to the importer) */
    const char *text;  /* whole file, NUL-terminated */
    size_t len;
} SrcFile;

typedef struct {
    const SrcFile *file;  /* NULL: no position (command-line errors) */
    int line, col;        /* 1-based; col counts bytes */
} Loc;

typedef enum { DIAG_ERROR, DIAG_WARNING, DIAG_NOTE } DiagSeverity;

/* One message as data. Its strings are as printed (the escaping below) and
 * live in the Diag's arena; its rendered form, the source line and caret
 * included, is out.data[text_start .. text_start + text_len). */
typedef struct {
    DiagSeverity severity;
    const char *path;     /* the file as printed, or NULL: no position */
    int line, col;        /* 1-based; 0 without a position */
    const char *message;  /* without the "FILE:LINE:COL: error: " prefix */
    int parent;           /* a note: index of the error or warning it belongs to; else -1 */
    size_t text_start, text_len;
} DiagRecord;

typedef struct Diag {
    Arena *arena;       /* owns the SrcFiles and the records' strings */
    SrcFile **files;
    int n_files, cap_files;
    StrBuf out;         /* rendered messages */
    int errors;
    DiagRecord *recs;   /* every message, in order, as data */
    int n_recs, cap_recs;
    int last_main;      /* the record of the last error or warning (what a note belongs to), or -1 */
} Diag;

void diag_init(Diag *d, Arena *arena);
void diag_free(Diag *d);
/* Registers a file's text (copied into the arena) and returns its entry. */
const SrcFile *diag_add_file(Diag *d, const char *path, const char *text, size_t len);

/* The offset of the first byte of s[0..n) that diagnostics would print
 * escaped (a control byte, tab included, invalid UTF-8, a C1 control), or n.
 * The lexer refuses such bytes in strings with it. */
size_t diag_first_unprintable(const char *s, size_t n);

void diag_error(Diag *d, Loc loc, const char *fmt, ...) NNC_PRINTF(3, 4);
void diag_verror(Diag *d, Loc loc, const char *fmt, va_list ap);
void diag_warning(Diag *d, Loc loc, const char *fmt, ...) NNC_PRINTF(3, 4);
/* A note belongs to the error or warning reported last before it. */
void diag_note(Diag *d, Loc loc, const char *fmt, ...) NNC_PRINTF(3, 4);

#endif
