/* common.h: the few things every module of nnc shares.
 *
 * Two error channels (STYLE.md 11): user mistakes are reported through the
 * diagnostics of frontend/diag.h (or a message returned to the caller); internal
 * bugs go through NNC_ASSERT, which names the source position and aborts.
 *
 * Memory lives as long as the compilation: an Arena hands out blocks that are
 * all released together by arena_free(). Nothing allocated from an arena is
 * freed on its own. */
#ifndef NNC_COMMON_H
#define NNC_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define NNC_VERSION "0.1.0"

#define NNC_ASSERT(c) \
    ((c) ? (void)0 : nnc_die(__FILE__, __LINE__, "assertion failed: %s", #c))
#define NNC_COUNT(a) (sizeof(a) / sizeof((a)[0]))

#if defined(__GNUC__)
#define NNC_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define NNC_NORETURN __attribute__((noreturn))
#else
#define NNC_PRINTF(f, a)
#define NNC_NORETURN
#endif

/* Reports an internal bug (never a user mistake) and aborts. */
NNC_NORETURN void nnc_die(const char *file, int line, const char *fmt, ...) NNC_PRINTF(3, 4);

/* malloc/calloc/realloc that die on exhaustion: only for the compiler's own
 * bookkeeping, never for sizes a user controls without a prior bound check. */
void *nnc_xmalloc(size_t n);
void *nnc_xcalloc(size_t n, size_t size);
void *nnc_xrealloc(void *p, size_t n);

typedef struct ArenaBlock ArenaBlock;
typedef struct Arena {
    ArenaBlock *head;  /* newest block first */
} Arena;

void *arena_alloc(Arena *a, size_t n);              /* zeroed, 16-byte aligned */
char *arena_strdup(Arena *a, const char *s);
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_printf(Arena *a, const char *fmt, ...) NNC_PRINTF(2, 3);
void  arena_free(Arena *a);

/* A growable string for building text (generated code, dumps). */
typedef struct StrBuf {
    char  *data;  /* always NUL-terminated once anything was appended */
    size_t len;
    size_t cap;
} StrBuf;

void sb_append(StrBuf *sb, const char *s);
void sb_appendn(StrBuf *sb, const char *s, size_t n);
void sb_printf(StrBuf *sb, const char *fmt, ...) NNC_PRINTF(2, 3);
void sb_vprintf(StrBuf *sb, const char *fmt, va_list ap);
void sb_free(StrBuf *sb);

/* Reads a whole file. Returns NULL and sets *err (static text from strerror,
 * or "file is too large") on failure. The result is NUL-terminated. */
char *nnc_read_file(const char *path, size_t *len, const char **err);

/* Writes a file atomically: data goes to PATH.tmp.PID, is flushed with fsync,
 * then renamed over PATH, so a crash never leaves a half-written file. Returns
 * 0, or -1 with errno set. */
int nnc_write_file_atomic(const char *path, const void *data, size_t len);

#endif
