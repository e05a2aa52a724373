/* common.c: arena, string buffer, whole-file I/O. See common.h. */
#define _POSIX_C_SOURCE 200809L
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

void nnc_die(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "nnc: internal error at %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nThis is a bug in nnc; please report it with the input that caused it.\n", stderr);
    abort();
}

void *nnc_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) nnc_die(__FILE__, __LINE__, "out of memory (%zu bytes)", n);
    return p;
}

void *nnc_xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) nnc_die(__FILE__, __LINE__, "out of memory (%zu x %zu bytes)", n, size);
    return p;
}

void *nnc_xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) nnc_die(__FILE__, __LINE__, "out of memory (%zu bytes)", n);
    return p;
}

/* ---- arena ---- */

struct ArenaBlock {
    ArenaBlock *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

#define ARENA_BLOCK 65536

void *arena_alloc(Arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    ArenaBlock *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
        b = nnc_xmalloc(sizeof(ArenaBlock) + cap);
        b->used = 0;
        b->cap = cap;
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *arena_strndup(Arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *arena_strdup(Arena *a, const char *s) { return arena_strndup(a, s, strlen(s)); }

char *arena_printf(Arena *a, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = arena_alloc(a, (size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return p;
}

void arena_free(Arena *a)
{
    ArenaBlock *b = a->head;
    while (b) {
        ArenaBlock *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
}

/* ---- string buffer ---- */

static void sb_reserve(StrBuf *sb, size_t extra)
{
    if (sb->len + extra + 1 <= sb->cap) return;
    size_t cap = sb->cap ? sb->cap : 256;
    while (cap < sb->len + extra + 1) cap *= 2;
    sb->data = nnc_xrealloc(sb->data, cap);
    sb->cap = cap;
}

void sb_appendn(StrBuf *sb, const char *s, size_t n)
{
    sb_reserve(sb, n);
    memcpy(sb->data + sb->len, s, n);
    sb->len += n;
    sb->data[sb->len] = 0;
}

void sb_append(StrBuf *sb, const char *s) { sb_appendn(sb, s, strlen(s)); }

void sb_vprintf(StrBuf *sb, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    sb_reserve(sb, (size_t)n);
    vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    sb->len += (size_t)n;
}

void sb_printf(StrBuf *sb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(sb, fmt, ap);
    va_end(ap);
}

void sb_free(StrBuf *sb)
{
    free(sb->data);
    sb->data = NULL;
    sb->len = sb->cap = 0;
}

/* ---- files ---- */

#define NNC_MAX_FILE ((size_t)1 << 34) /* 16 GiB: larger is surely a wrong path */

const char nnc_err_too_large[] = "the file is too large";

const char *nnc_not_regular_msg(unsigned mode)
{
    if (S_ISDIR(mode)) return "not a regular file (a directory); give a file";
    if (S_ISCHR(mode)) return "not a regular file (a character device); give a file";
    if (S_ISBLK(mode)) return "not a regular file (a block device); give a file";
    if (S_ISFIFO(mode)) return "not a regular file (a FIFO or pipe); give a file";
    if (S_ISSOCK(mode)) return "not a regular file (a socket); give a file";
    return "not a regular file; give a file";
}

/* Opens path without blocking (a FIFO with no writer would block a plain
 * open for ever), learns what it is, then makes reads blocking again. */
static int open_checked(const char *path, struct stat *st, const char **err)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) { *err = strerror(errno); return -1; }
    int fl = fcntl(fd, F_GETFL);
    if (fstat(fd, st) != 0 || fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        *err = strerror(errno);
        close(fd);
        return -1;
    }
    return fd;
}

int nnc_open_regular(const char *path, int64_t *size, const char **err)
{
    struct stat st;
    int fd = open_checked(path, &st, err);
    if (fd < 0) return -1;
    if (!S_ISREG(st.st_mode)) {
        *err = nnc_not_regular_msg((unsigned)st.st_mode);
        close(fd);
        return -1;
    }
    *size = (int64_t)st.st_size;
    return fd;
}

char *nnc_read_file_max(const char *path, size_t max, int flags, size_t *len, const char **err)
{
    struct stat st;
    int fd = open_checked(path, &st, err);
    if (fd < 0) return NULL;
    bool pipe = S_ISFIFO(st.st_mode) && (flags & NNC_READ_PIPE);
    if (!S_ISREG(st.st_mode) && !pipe) {
        *err = nnc_not_regular_msg((unsigned)st.st_mode);
        close(fd);
        return NULL;
    }
    if (max > NNC_MAX_FILE) max = NNC_MAX_FILE;
    if (!pipe && (uint64_t)st.st_size > max) { *err = nnc_err_too_large; close(fd); return NULL; }
    /* A regular file's size is known (reads stop there even if it grows); a
     * pipe's is not, so its buffer grows with the bytes that arrive, and one
     * byte past max is enough to know it is too large. */
    size_t cap = pipe ? 4096 : (size_t)st.st_size + 1, n = 0, limit = pipe ? max + 1 : (size_t)st.st_size;
    char *buf = malloc(cap);
    if (!buf) { *err = "out of memory"; close(fd); return NULL; }
    while (n < limit) {
        if (n + 1 >= cap) {
            size_t ncap = cap * 2 > limit + 1 ? limit + 1 : cap * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) { *err = "out of memory"; free(buf); close(fd); return NULL; }
            buf = nb;
            cap = ncap;
        }
        ssize_t got = read(fd, buf + n, cap - n - 1 < limit - n ? cap - n - 1 : limit - n);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) { *err = strerror(errno); free(buf); close(fd); return NULL; }
        if (got == 0) break;
        n += (size_t)got;
    }
    close(fd);
    if (n > max) { *err = nnc_err_too_large; free(buf); return NULL; }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

char *nnc_read_file(const char *path, size_t *len, const char **err)
{
    return nnc_read_file_max(path, NNC_MAX_FILE, 0, len, err);
}

/* ---- temporaries of nnc's own (see common.h) ----
 *
 * The registry is a fixed array, because the signal handler may read it at any
 * moment and must not allocate or lock: a slot is claimed with a compare and
 * swap (FREE -> FILLING), its path written, then published (ACTIVE); the
 * handler touches ACTIVE slots only, with unlink and rmdir, which are
 * async-signal-safe. */

enum { TMP_SLOTS = 32, TMP_PATH = 4096 };
enum { TMP_FREE, TMP_FILLING, TMP_ACTIVE };

static struct {
    atomic_int state;      /* TMP_FREE, TMP_FILLING or TMP_ACTIVE */
    int kind;              /* 0 a file (unlink), 1 a folder (rmdir, after every file), 2 a child process */
    long pid;              /* kind 2: stopped (SIGTERM) and reaped before any file goes */
    char path[TMP_PATH];   /* what to remove */
} tmp_slots[TMP_SLOTS];

static atomic_int tmp_handlers_installed;

/* Stops a child that writes into a temporary folder (the C compiler), with
 * the process group it leads (the driver's cc1, as and ld), and waits for it. */
static void tmp_stop_child(long pid)
{
    kill(-(pid_t)pid, SIGTERM);  /* the gcc and clang drivers remove their own temporaries on SIGTERM */
    while (waitpid((pid_t)pid, NULL, 0) < 0 && errno == EINTR) continue;
}

static void tmp_remove_all(void)
{
    static const int order[] = {2, 0, 1};  /* children first, then files, so the folders are empty */
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < TMP_SLOTS; i++) {
            if (atomic_load(&tmp_slots[i].state) != TMP_ACTIVE || tmp_slots[i].kind != order[k]) continue;
            if (order[k] == 2) tmp_stop_child(tmp_slots[i].pid);
            else (void)(order[k] ? rmdir(tmp_slots[i].path) : unlink(tmp_slots[i].path));
        }
}

/* Removes the temporaries, then lets the signal do what it would have done. */
static void tmp_on_signal(int sig)
{
    tmp_remove_all();
    signal(sig, SIG_DFL);
    raise(sig);  /* blocked while the handler runs: delivered when it returns */
}

static void tmp_install_handlers(void)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&tmp_handlers_installed, &expected, 1)) return;
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction old, sa;
        if (sigaction(sigs[i], NULL, &old) != 0 || old.sa_handler != SIG_DFL) continue;  /* someone else's */
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = tmp_on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(sigs[i], &sa, NULL);
    }
}

/* Claims a slot for kind, path or pid. */
static int tmp_claim(int kind, const char *path, long pid)
{
    if (path && strlen(path) >= TMP_PATH) return -1;
    tmp_install_handlers();
    for (int i = 0; i < TMP_SLOTS; i++) {
        int expected = TMP_FREE;
        if (!atomic_compare_exchange_strong(&tmp_slots[i].state, &expected, TMP_FILLING)) continue;
        if (path) strcpy(tmp_slots[i].path, path);
        tmp_slots[i].kind = kind;
        tmp_slots[i].pid = pid;
        atomic_store(&tmp_slots[i].state, TMP_ACTIVE);
        return i;
    }
    return -1;
}

int nnc_tmp_track(const char *path, int is_dir) { return tmp_claim(is_dir ? 1 : 0, path, 0); }

int nnc_tmp_track_child(long pid) { return pid > 0 ? tmp_claim(2, NULL, pid) : -1; }

void nnc_tmp_untrack(int slot)
{
    if (slot >= 0 && slot < TMP_SLOTS) atomic_store(&tmp_slots[slot].state, TMP_FREE);
}

/* The pid in name after prefix ("PREFIX1234" or "PREFIX1234-..."), or 0. */
static long tmp_owner(const char *name, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncmp(name, prefix, n) != 0 || name[n] < '0' || name[n] > '9') return 0;
    char *end;
    errno = 0;
    long pid = strtol(name + n, &end, 10);
    return errno == 0 && (*end == 0 || *end == '-') && pid > 0 ? pid : 0;
}

/* Whether process pid is gone (kill(pid, 0): ESRCH; EPERM means it runs as someone else). */
static bool tmp_owner_dead(long pid)
{
    return pid != (long)getpid() && (pid_t)pid == pid && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* Removes the files of folder name (in dirfd) and the folder, without following links. */
static void tmp_remove_folder(int dirfd, const char *name)
{
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0) close(fd);
        return;
    }
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlinkat(fd, e->d_name, 0);  /* a folder stays */
    closedir(d);
    unlinkat(dirfd, name, AT_REMOVEDIR);
}

void nnc_tmp_sweep(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    if (!d) return;
    int fd = dirfd(d);
    for (struct dirent *e; (e = readdir(d));) {
        struct stat st;
        long pid = tmp_owner(e->d_name, prefix);
        if (!pid || !tmp_owner_dead(pid) || fstatat(fd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            st.st_uid != geteuid())
            continue;
        if (S_ISDIR(st.st_mode)) tmp_remove_folder(fd, e->d_name);
        else unlinkat(fd, e->d_name, 0);
    }
    closedir(d);
}

/* The folder part of path ("." for a bare name) into buf; the name part returned. */
static const char *tmp_split(const char *path, char *buf, size_t size)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(buf, size, ".");
        return path;
    }
    size_t n = slash == path ? 1 : (size_t)(slash - path);  /* "/x": the root */
    snprintf(buf, size, "%.*s", (int)n, path);
    return slash + 1;
}

void nnc_tmp_name(char *buf, size_t size, const char *path, const char *suffix)
{
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    snprintf(buf, size, "%.*s.%s.nnc-tmp.%ld%s", (int)(name - path), path, name, (long)getpid(), suffix);
}

/* Removes the stale temporaries of path: DIR/.NAME.nnc-tmp.PID* of dead PIDs,
 * and DIR/NAME.tmp.PID, the name earlier versions of nnc gave them. */
static void tmp_sweep_for(const char *path)
{
    size_t len = strlen(path) + 16;
    char *dir = nnc_xmalloc(len), *prefix = nnc_xmalloc(len);
    const char *name = tmp_split(path, dir, len);
    snprintf(prefix, len, ".%s.nnc-tmp.", name);
    nnc_tmp_sweep(dir, prefix);
    snprintf(prefix, len, "%s.tmp.", name);
    nnc_tmp_sweep(dir, prefix);
    free(dir);
    free(prefix);
}

/* Creates tmp afresh: O_EXCL and O_NOFOLLOW, so a link planted under the name
 * is never followed; a leftover of a dead process that had this pid is
 * removed first. Returns the descriptor or -1. */
static int tmp_create(const char *tmp)
{
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 && errno == EEXIST && unlink(tmp) == 0)
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    return fd;
}

int nnc_check_writable(const char *path, char *why, size_t whylen)
{
    struct stat st;
    size_t len = strlen(path) + 40;
    char *dir = nnc_xmalloc(len), *tmp = nnc_xmalloc(len);
    int rc = -1;
    tmp_split(path, dir, len);
    nnc_tmp_name(tmp, len, path, "");
    if (!*path) snprintf(why, whylen, "is an empty path");
    else if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) snprintf(why, whylen, "is a directory; give a file name");
    else if (stat(dir, &st) != 0) snprintf(why, whylen, "the directory '%s' %s", dir, errno == ENOENT ? "does not exist" : strerror(errno));
    else if (!S_ISDIR(st.st_mode)) snprintf(why, whylen, "'%s' is not a directory", dir);
    else {
        int slot = nnc_tmp_track(tmp, 0);
        int fd = tmp_create(tmp);
        if (fd < 0) snprintf(why, whylen, "cannot create a file in '%s': %s", dir, strerror(errno));
        else close(fd), unlink(tmp), rc = 0;
        nnc_tmp_untrack(slot);
    }
    free(dir);
    free(tmp);
    return rc;
}

/* Writes len bytes of data to a new file tmp and flushes it. 0, or -1 (errno set, tmp removed). */
static int tmp_write(const char *tmp, const void *data, size_t len)
{
    int fd = tmp_create(tmp);
    if (fd < 0) return -1;
    const unsigned char *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) goto fail;
        p += w;
        len -= (size_t)w;
    }
    if (fsync(fd) != 0) goto fail;
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    return 0;
fail:;
    int e = errno;
    if (fd >= 0) close(fd);
    unlink(tmp);
    errno = e;
    return -1;
}

/* One file of a set being written: its temporary, its backup, their slots. */
typedef struct {
    char *tmp, *old;      /* DIR/.NAME.nnc-tmp.PID and ...-old */
    int tmp_slot, old_slot;
    bool existed;         /* PATH was there before */
    bool had_old;         /* old is a hard link to the previous PATH */
    bool renamed;         /* tmp is now PATH */
} TmpFile;

/* Puts back the previous contents of a renamed file, or removes the new one
 * where there was none (a file system without hard links: left as it is). */
static void tmp_roll_back(const char *path, TmpFile *f)
{
    if (f->had_old) rename(f->old, path);
    else if (!f->existed) unlink(path);
    f->had_old = false;
}

/* Renames every temporary over its path, keeping a link to each previous file
 * until all are in place. 0, or -1 with errno set and *failed. */
static int tmp_commit(int n, const char *const *paths, TmpFile *f, int *failed)
{
    for (int i = 0; i < n; i++) {
        struct stat st;
        f[i].existed = lstat(paths[i], &st) == 0;
        if (n > 1 && f[i].existed && link(paths[i], f[i].old) == 0) f[i].had_old = true;
        if (rename(f[i].tmp, paths[i]) != 0) {
            int e = errno;
            for (int k = 0; k < i; k++) tmp_roll_back(paths[k], &f[k]);
            *failed = i;
            errno = e;
            return -1;
        }
        f[i].renamed = true;
    }
    return 0;
}

int nnc_write_files_atomic(int n, const char *const *paths, const void *const *data, const size_t *lens,
                           int *failed)
{
    TmpFile *f = nnc_xcalloc((size_t)(n > 0 ? n : 1), sizeof *f);
    int rc = 0, bad = -1;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(paths[i]) + 48;
        f[i].tmp = nnc_xmalloc(len);
        f[i].old = nnc_xmalloc(len);
        nnc_tmp_name(f[i].tmp, len, paths[i], "");
        nnc_tmp_name(f[i].old, len, paths[i], "-old");
        f[i].tmp_slot = nnc_tmp_track(f[i].tmp, 0);
        f[i].old_slot = -1;
    }
    for (int i = 0; i < n && rc == 0; i++) {
        tmp_sweep_for(paths[i]);
        if (tmp_write(f[i].tmp, data[i], lens[i]) != 0) rc = -1, bad = i;
    }
    for (int i = 0; i < n && rc == 0 && n > 1; i++) {
        unlink(f[i].old);  /* a leftover of a dead process that had this pid */
        f[i].old_slot = nnc_tmp_track(f[i].old, 0);
    }
    if (rc == 0) rc = tmp_commit(n, paths, f, &bad);
    int e = errno;
    for (int i = 0; i < n; i++) {
        if (!f[i].renamed) unlink(f[i].tmp);
        if (f[i].had_old) unlink(f[i].old);
        nnc_tmp_untrack(f[i].tmp_slot);
        nnc_tmp_untrack(f[i].old_slot);
        free(f[i].tmp);
        free(f[i].old);
    }
    free(f);
    if (failed) *failed = bad;
    errno = e;
    return rc;
}

int nnc_write_file_atomic(const char *path, const void *data, size_t len)
{
    return nnc_write_files_atomic(1, &path, &data, &len, NULL);
}
