/* tensor_io_test.h: the helpers and fixtures of test_tensor_io.c and test_tensor_io_npy_idx.c, which
 * test, together, the tensor file formats, against good files, bad files, and noise.
 *
 * Round trips must be bit-exact. Every refusal must be a message that starts with the
 * path, so each error test builds a bad file by hand and checks the message. The fuzz
 * test mutates valid files thousands of times (seeded, so a failure reproduces) and
 * asks only that every read either succeeds or fails with such a message; run under
 * the ASan+UBSan build, it is what shows that no input crashes the readers. The
 * safetensors snippet is included here as the generated code includes it, and is also
 * compiled alone with gcc and clang under the flags users build models with. */
#ifndef NNC_TESTS_TENSOR_IO_TEST_H
#define NNC_TESTS_TENSOR_IO_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "common/common.h"
#include "runtime/tensor_io.h"
#include "runtime/snippets/safetensors_load.c"

/* Each test file of the family uses some of these helpers, not all. */
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-variable"

#ifndef NNC_SOURCE_DIR
#define NNC_SOURCE_DIR "."
#endif

#define FASHION "/usr/share/datasets/fashion-mnist/"

static char g_dir[256];   /* this run's scratch directory */
static char g_err[1024];  /* the message of the last failed call */

/* ---- helpers ---- */

/* A path in the scratch directory; four rotating buffers so a test can hold several. */
static const char *tpath(const char *name)
{
    static char bufs[4][512];
    static int next;
    char *b = bufs[next++ % 4];
    snprintf(b, 512, "%s/%s", g_dir, name);
    return b;
}

static void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len) assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Writes a safetensors file from a header text and a data area of data_len bytes
 * (filled with 0x3f so the floats are finite). */
/* Writes a string literal's bytes, without its terminating NUL. */
#define write_lit(path, lit) write_bytes(path, lit, sizeof lit - 1)

static void write_st_n(const char *path, const char *header, size_t hlen, size_t data_len)
{
    size_t size = 8 + hlen + data_len;
    unsigned char *b = malloc(size);
    assert_non_null(b);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    memcpy(b + 8, header, hlen);
    memset(b + 8 + hlen, 0x3f, data_len);
    write_bytes(path, b, size);
    free(b);
}

static void write_st(const char *path, const char *header, size_t data_len)
{
    write_st_n(path, header, strlen(header), data_len);
}

/* Asserts that a call failed with a one-line message "PATH: ...<part>...". */
static void expect_fail(int rc, const char *path, const char *part)
{
    size_t n = strlen(path);
    if (rc != -1 || strncmp(g_err, path, n) != 0 || strncmp(g_err + n, ": ", 2) != 0 ||
        strchr(g_err, '\n') || (part && !strstr(g_err, part)))
        fail_msg("rc %d, message \"%s\", wanted a failure about \"%s\"", rc, g_err, part ? part : "");
}

/* Asserts the exact message "PATH: text". */
static void expect_msg(int rc, const char *path, const char *text)
{
    char want[1200];
    snprintf(want, sizeof want, "%s: %s", path, text);
    assert_int_equal(rc, -1);
    assert_string_equal(g_err, want);
}

/* nnc_st_load of one F32 tensor of the given rank and shape, into a scratch buffer. */
static int load1(const char *path, const char *name, int rank, long long d0, long long d1, long long d2, long long d3)
{
    static float buf[4096];
    nnc_st_want w = {name, rank, {d0, d1, d2, d3}, buf};
    return nnc_st_load(path, &w, 1, g_err, sizeof g_err);
}

static void fill_random(float *v, size_t n, RtRng *r)
{
    for (size_t i = 0; i < n; i++) v[i] = rt_rng_uniform(r, -1.0f, 1.0f);
}

static int setup(void **state)
{
    (void)state;
    const char *t = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/nnc_tio_XXXXXX", t && *t ? t : "/tmp");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    DIR *d = opendir(g_dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) unlink(tpath(e->d_name));
    if (d) closedir(d);
    return rmdir(g_dir);
}

#endif
