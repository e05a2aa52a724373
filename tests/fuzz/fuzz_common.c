/* fuzz_common.c: the helpers of fuzz_common.h. */
#define _GNU_SOURCE 1  /* memfd_create, nftw's FTW_DEPTH */
#include "fuzz_common.h"

#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static const uint8_t *fz_data;
static size_t fz_size;

void fz_begin(const uint8_t *data, size_t size)
{
    fz_data = data;
    fz_size = size;
}

void fz_die(const char *fmt, ...)
{
    va_list ap;
    fputs("fuzz: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n---- the input (%zu bytes, C-escaped) ----\n", fz_size);
    size_t n = fz_size < 4096 ? fz_size : 4096;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = fz_data[i];
        if (c == '\n') fputs("\\n\n", stderr);
        else if (c == '\\') fputs("\\\\", stderr);
        else if (c >= 32 && c < 127) fputc(c, stderr);
        else fprintf(stderr, "\\x%02x", c);
    }
    fprintf(stderr, "%s\n---- end of input ----\n", n < fz_size ? "..." : "");
    abort();
}

void fz_file_init(FzFile *f, const char *name)
{
    f->fd = memfd_create(name, MFD_CLOEXEC);
    if (f->fd < 0) {
        perror("fuzz: memfd_create");
        abort();
    }
    snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
}

void fz_file_set(FzFile *f, const void *p, size_t n)
{
    if (ftruncate(f->fd, 0) != 0 || (n && pwrite(f->fd, p, n, 0) != (ssize_t)n)) {
        perror("fuzz: writing the memfd");
        abort();
    }
}

static char fz_dir[4096];

static int fz_remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;
}

static void fz_remove_tmpdir(void)
{
    if (fz_dir[0]) nftw(fz_dir, fz_remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *fz_tmpdir(void)
{
    if (fz_dir[0]) return fz_dir;
    const char *base = getenv("TMPDIR");
    snprintf(fz_dir, sizeof fz_dir, "%s/nnc-fuzz-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(fz_dir)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(fz_remove_tmpdir);
    return fz_dir;
}

void fz_write(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

uint64_t fz_hash(const uint8_t *data, size_t size)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < size; i++) h = (h ^ data[i]) * 1099511628211ull;
    return h;
}
