/* checkpoint.h: checkpoints that prove their integrity (runtime/checkpoint.c).
 *
 * A checkpoint of `nnc train` is a safetensors file whose metadata carries
 *
 *     "nnc_checksum": "crc32c:1a2b3c4d"
 *
 * the CRC32C (Castagnoli) of every byte of the file except those 8 hex
 * digits: the length prefix, the whole header (metadata and tensor table,
 * the key and the "crc32c:" prefix included) and the data. One flipped bit,
 * a truncated or an extended file, an edited number in the metadata: each
 * changes the sum. Any safetensors reader still reads the file (the key is
 * one more metadata string); nnc verifies it wherever it loads a file that
 * carries the key (`nnc train --resume` and `--weights`, `nnc run` and
 * `nnc eval --weights`); a file without the key (weights written by
 * PyTorch, by `nnc init`, by `nnc train --out`) loads as before.
 *
 * Every function is safe on any input bytes: sizes are checked before use,
 * the header scan is bounded by the header, errors are one-line messages
 * "NAME: what is wrong" in err (errlen bytes; err may be NULL). */
#ifndef NNC_RUNTIME_CHECKPOINT_H
#define NNC_RUNTIME_CHECKPOINT_H

#include "runtime/tensor_io.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RT_CKPT_KEY "nnc_checksum"  /* the metadata key of the checksum */

/* What verification found. */
typedef enum RtCkptStatus {
    RT_CKPT_CORRUPT = -1,   /* a checksum that does not match, or a malformed file or key: err says which */
    RT_CKPT_VERIFIED = 0,   /* the key is there and the sum matches */
    RT_CKPT_UNSIGNED = 1,   /* no key (a plain safetensors file), or a file that cannot be re-read (a pipe) */
} RtCkptStatus;

/* CRC32C of len bytes, continuing from crc (0 to start): rt_crc32c(rt_crc32c(0, a, n), b, m)
 * is the sum of a followed by b. rt_crc32c(0, "123456789", 9) == 0xe3069283. */
uint32_t rt_crc32c(uint32_t crc, const void *data, size_t len);

/* Verifies a whole file held in memory; name is for messages. */
RtCkptStatus rt_checkpoint_check_bytes(const void *bytes, size_t len, const char *name, char *err, size_t errlen);

/* The same as a yes or no, for a fuzz harness: true when the bytes carry a
 * checksum that matches or carry none; false (and err) otherwise. */
bool rt_checkpoint_verify_bytes(const void *bytes, size_t len, const char *name, char *err, size_t errlen);

/* Verifies the file at path, read in blocks (never whole in memory). A
 * special file (FIFO, device) is not re-readable and is RT_CKPT_UNSIGNED:
 * its reader refuses or reads it. A file that cannot be opened is
 * RT_CKPT_CORRUPT with the system's reason. */
RtCkptStatus rt_checkpoint_verify_file(const char *path, char *err, size_t errlen);

/* Writes n float32 tensors, in order, as a safetensors file with
 * metadata_json (an object of strings, e.g. {"format":"pt"}; must not hold
 * RT_CKPT_KEY) and the checksum key added, atomically (nnc_write_file_atomic).
 * Returns 0, or -1 with err. */
int rt_checkpoint_write(const char *path, const RtTensor *tensors, int n, const char *metadata_json, char *err,
                        size_t errlen);

/* The "__metadata__" of a safetensors file as 2 * *n strings, key then value
 * (JSON escapes decoded), in file order; free with rt_checkpoint_meta_free.
 * false: the file or its header cannot be read. */
bool rt_checkpoint_metadata(const char *path, char ***kv, int *n);
const char *rt_checkpoint_meta_get(char **kv, int n, const char *key);  /* NULL when absent */
void rt_checkpoint_meta_free(char **kv, int n);

#endif
