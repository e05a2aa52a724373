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

/* Reads a whole regular file (of at most 16 GiB). Returns NULL and sets *err
 * (static text: strerror's, a refusal of a special file, or nnc_err_too_large)
 * on failure. The result is NUL-terminated. */
char *nnc_read_file(const char *path, size_t *len, const char **err);

/* ---- bounded reading ----
 * Every reader of a user's file knows how much it expects and refuses more:
 * /dev/zero, a FIFO without a writer, a directory or a terminal must end in an
 * error in bounded time and memory, never in an endless read. */

/* nnc_read_file with a limit: a file over max bytes is refused with *err ==
 * nnc_err_too_large (callers say their limit in their own words). Only regular
 * files are read, unless flags has NNC_READ_PIPE: then a FIFO or pipe (shell
 * process substitution <(...), /dev/stdin from a pipe) is read to its end or
 * to max + 1 bytes, whichever comes first. */
#define NNC_READ_PIPE 1
char *nnc_read_file_max(const char *path, size_t max, int flags, size_t *len, const char **err);
extern const char nnc_err_too_large[];  /* "the file is too large" */

/* Opens path for reading if it is a regular file: returns the descriptor and
 * its size in *size, or -1 with *err static text (strerror's, or
 * "not a regular file (a character device); give a file"). The open itself
 * cannot block (O_NONBLOCK, cleared once the file is known to be regular), so a
 * FIFO with no writer is refused at once rather than waited on. */
int nnc_open_regular(const char *path, int64_t *size, const char **err);

/* The refusal of a file whose st_mode is mode, e.g. "not a regular file (a FIFO);
 * give a file" (static text). */
const char *nnc_not_regular_msg(unsigned mode);

/* ---- temporaries of nnc's own (common.c) ----
 *
 * Every temporary file or folder nnc creates carries its owner's process id
 * in a recognizable name, so a later run can tell a leftover of a killed
 * process from one still in use:
 *     DIR/.NAME.nnc-tmp.PID           the atomic writer's temporary for DIR/NAME
 *     DIR/.NAME.nnc-tmp.PID-old       the previous DIR/NAME during a pair write
 *     $TMPDIR/nnc-jit-PID-XXXXXX/     a JIT build folder (runtime/jit_cc.c)
 *     $TMPDIR/nnc-weights-PID-XXXXXX  nnc train's initial weights (tools/train.c)
 * While one exists it is tracked (nnc_tmp_track): error paths remove it and
 * untrack it; SIGINT, SIGTERM and SIGHUP remove every tracked temporary (files
 * first, then folders; a tracked child process is stopped before) and end
 * the process by the same signal. The handlers
 * are installed at the first nnc_tmp_track, and only for a signal whose
 * disposition is still the default (a program embedding libnnc keeps its own
 * handlers; its leftovers are swept by the next run). A kill -9 leaves them:
 * the next run that writes the same file, or builds in the same TMPDIR,
 * removes those whose owner no longer runs (nnc_tmp_sweep: kill(pid, 0) fails
 * with ESRCH) and that belong to this user. */

/* Tracks path (a file, or a folder whose files are tracked too) for removal
 * on a fatal signal. Returns a slot for nnc_tmp_untrack, or -1 when every
 * slot is taken (the temporary is then left to the sweeps). */
int nnc_tmp_track(const char *path, int is_dir);
void nnc_tmp_untrack(int slot);  /* -1 is ignored */

/* Tracks a child process that writes into a tracked folder (the JIT's C
 * compiler), the leader of its own process group: a fatal signal stops the
 * group (SIGTERM, so the compiler driver removes its own temporaries) and
 * reaps the child before the files and folders are removed, so that nothing
 * recreates a file in a folder being removed. Untrack it once it has been
 * waited for. */
int nnc_tmp_track_child(long pid);

/* Removes the entries DIR/PREFIX<pid> and DIR/PREFIX<pid>-... whose process
 * <pid> no longer runs and that this user owns (a folder: its files, then
 * itself; nothing is followed through a symbolic link). */
void nnc_tmp_sweep(const char *dir, const char *prefix);

/* The atomic writer's temporary for path, DIR/.NAME.nnc-tmp.PID, plus suffix. */
void nnc_tmp_name(char *buf, size_t size, const char *path, const char *suffix);

/* Whether path can be written by nnc_write_file_atomic, checked before any
 * work: path is not a folder, its folder exists, and a temporary can be
 * created there (it is created and removed at once). Returns 0, or -1 with a
 * reason ("is a directory", "the directory 'd' does not exist", "Permission
 * denied") in why. */
int nnc_check_writable(const char *path, char *why, size_t whylen);

/* Writes a file atomically: data goes to DIR/.NAME.nnc-tmp.PID, is flushed with
 * fsync, then renamed over PATH, so a crash never leaves a half-written file;
 * stale temporaries of PATH from killed runs are removed first. Returns 0, or
 * -1 with errno set (the temporary removed). */
int nnc_write_file_atomic(const char *path, const void *data, size_t len);

/* Writes n files together (a generated .c and its .h): every temporary is
 * written completely first, then they are renamed one after another; when a
 * write or a rename fails, the files already renamed get their previous
 * contents back (kept as hard links, DIR/.NAME.nnc-tmp.PID-old) and every
 * temporary is removed, so the old set stays whole. Returns 0, or -1 with
 * errno set and *failed (if not NULL) the index of the path that failed. */
int nnc_write_files_atomic(int n, const char *const *paths, const void *const *data, const size_t *lens,
                           int *failed);

#endif
