/* fuzz_common.h: what the libFuzzer harnesses of tests/fuzz share.
 *
 * Each harness fuzz_NAME.c defines LLVMFuzzerTestOneInput (and, if it needs
 * one, LLVMFuzzerInitialize) and links fuzz_common.c. The readers of nnc take
 * paths, not buffers, so the input goes to a memfd and the reader opens
 * /proc/self/fd/N: no file system traffic, no temporary left behind by a
 * crash, and a fresh open file description (offset 0) for every open. A
 * property the harness checks (beyond "no sanitizer report") fails through
 * fz_die, which prints the input and aborts, so that libFuzzer saves it as a
 * crash-* artifact like any other crash. */
#ifndef NNC_TESTS_FUZZ_COMMON_H
#define NNC_TESTS_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* The input being checked, printed by fz_die; set by fz_begin. */
void fz_begin(const uint8_t *data, size_t size);

/* Prints "fuzz: " and the message, the input (escaped, at most 4 KB) and aborts. */
NNC_NORETURN void fz_die(const char *fmt, ...) NNC_PRINTF(1, 2);

/* A memfd that holds a file's contents; fz_file_path names it for fopen. */
typedef struct {
    int fd;          /* the memfd, -1 before fz_file_init */
    char path[64];   /* "/proc/self/fd/N" */
} FzFile;

/* Creates the memfd (name is for /proc listings); dies when it cannot. */
void fz_file_init(FzFile *f, const char *name);
/* Replaces the contents with the n bytes at p. */
void fz_file_set(FzFile *f, const void *p, size_t n);

/* A folder of this process's own under $TMPDIR (or /tmp), created on the first
 * call and removed with what it holds at exit; the run scripts point TMPDIR
 * at their work folder, so even a crashed run leaves nothing in /tmp. */
const char *fz_tmpdir(void);
/* Writes n bytes to path (dies on failure). */
void fz_write(const char *path, const void *p, size_t n);

/* 64-bit FNV-1a of the input: a sample of inputs chosen by content is the same
 * sample on every replay. */
uint64_t fz_hash(const uint8_t *data, size_t size);

#endif
