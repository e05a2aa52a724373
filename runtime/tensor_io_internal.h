/* tensor_io_internal.h: what the three parts of tensor_io.h's module share:
 * tensor_io.c (safetensors, the RNG, and these helpers), npy.c and idx.c. */
#ifndef NNC_RUNTIME_TENSOR_IO_INTERNAL_H
#define NNC_RUNTIME_TENSOR_IO_INTERNAL_H

#include "common/common.h"
#include "runtime/tensor_io.h"

#include <stddef.h>
#include <stdint.h>

/* Writes "PATH: message" into err (errlen bytes; err may be NULL) and returns -1. */
int rt_fail(char *err, size_t errlen, const char *path, const char *fmt, ...) NNC_PRINTF(4, 5);
#define RT_FAIL(...) rt_fail(err, errlen, path, __VA_ARGS__)

/* A name (any bytes) for a one-line message: control bytes as \xNN, cut after 100 bytes. */
const char *rt_quote(char *buf, size_t size, const char *s, size_t len);

/* Refuses a big-endian host (the files are little-endian). */
int rt_check_host(const char *path, char *err, size_t errlen);

/* A shape the NumPy way, "(2, 3)", "(5,)", "()". */
const char *rt_tuple_str(char *buf, size_t size, int rank, const int64_t *shape);

/* Checks a caller's tensor before writing it; *bytes receives its data size;
 * index names it in messages when it has no name (-1: "the array"). */
int rt_check_tensor(const char *path, const RtTensor *t, int index, int64_t *bytes, char *err, size_t errlen);

#endif
