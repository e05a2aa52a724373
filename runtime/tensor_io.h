/* tensor_io.h: tensor files for the nnc tools: safetensors, .npy, IDX, and a seeded RNG
 * (runtime/tensor_io.c, npy.c, idx.c).
 *
 * The generated model code reads its weights with runtime/snippets/safetensors_load.c,
 * pasted into it; this module is the other side, linked into libnnc for the `nnc`
 * tools and the tests: it writes weights (initialised with RtRng, or trained), reads
 * them back whole, reads and writes NumPy arrays, and reads the IDX files of
 * MNIST-like datasets. It parses safetensors with the very code the generated models
 * use (it #includes the snippet), so the two cannot disagree about a file.
 *
 * Every function returns 0, or -1 with a one-line message "PATH: what is wrong" in
 * err (errlen bytes; err may be NULL). No input bytes can make them crash: every size
 * is checked before it is used, and tensors over 8 dimensions or 2^40 bytes are
 * refused. Readers open regular files only (a directory, FIFO, socket or device such
 * as /dev/zero is refused before a byte is read) and never allocate from a size a
 * file claims before the file is known to hold it. Writes are atomic (nnc_write_file_atomic: temp file, fsync, rename), so a
 * crash or a full disk during training never leaves a half-written weights file where
 * the previous good one was. Data is float32 in host order, which must be
 * little-endian (both formats store little-endian). */
#ifndef NNC_RUNTIME_TENSOR_IO_H
#define NNC_RUNTIME_TENSOR_IO_H

#include "../common/common.h"

#include <stddef.h>
#include <stdint.h>

#define RT_MAX_RANK 8                     /* most dimensions a tensor may have */
#define RT_MAX_BYTES ((int64_t)1 << 40)   /* largest tensor or file payload accepted */

/* A named float32 tensor, row-major (C order). For rt_st_write the caller owns
 * everything; tensors returned by rt_st_read and rt_npy_read own their name and data
 * (malloc'd), released by rt_tensor_free / rt_tensors_free. */
typedef struct RtTensor {
    const char *name;             /* safetensors name (UTF-8); NULL for .npy */
    int rank;                     /* number of dimensions, 0..RT_MAX_RANK (0: a scalar) */
    int64_t shape[RT_MAX_RANK];   /* dimensions, outermost first; entries >= rank unused */
    float *data;                  /* product(shape) floats (1 for a scalar) */
} RtTensor;

/* Elements of t (1 for a scalar), or -1 if a dimension is negative or the product
 * passes RT_MAX_BYTES / 4. */
int64_t rt_tensor_numel(const RtTensor *t);
void rt_tensor_free(RtTensor *t);               /* frees name and data, clears t */
void rt_tensors_free(RtTensor *t, int n);       /* frees n tensors and the array */

/* ---- safetensors ---- */

/* Appends s to sb as a JSON string (quotes, '"' and '\\' escaped, control
 * bytes as \u00XX); s must already be known to be valid UTF-8. For the
 * headers and metadata of safetensors files. */
void rt_json_string(StrBuf *sb, const char *s);

/* A whole safetensors file in memory: the header's length (u64, little
 * endian), the header text, then each tensor's float32 data in order
 * (data_bytes in all). Returns a malloc'd buffer of *size bytes, or NULL when
 * out of memory (*size still says how much was asked). */
unsigned char *rt_st_pack(const StrBuf *header, const RtTensor *t, int n, size_t data_bytes, size_t *size);

/* Writes n float32 tensors to path (dtype F32), in the given order, atomically.
 * metadata_json, if not NULL, is a JSON object of strings (e.g. {"format":"pt"})
 * stored as "__metadata__". Names must be distinct, valid UTF-8, not "__metadata__". */
int rt_st_write(const char *path, const RtTensor *tensors, int n, const char *metadata_json,
                char *err, size_t errlen);

/* The bytes rt_st_write writes, in memory: a malloc'd buffer of *size bytes,
 * or NULL with the message in err (path only names the tensors in it). */
unsigned char *rt_st_encode(const char *path, const RtTensor *tensors, int n, const char *metadata_json,
                            size_t *size, char *err, size_t errlen);

/* Reads the "__metadata__" of a safetensors header (text: the len bytes after
 * the 8-byte length) with the generated loader's own JSON reader, the one in
 * nnc: fn receives each pair in file order, key and value decoded (valid only
 * during the call), and where the raw value lies in text (after its opening
 * quote, raw_len bytes). Tensor entries are checked as JSON and skipped, not
 * validated as tensors. Returns 0, or -1 with err (may be NULL) when text is
 * not a JSON object whose "__metadata__" members are objects of strings. */
typedef void (*RtStMetaFn)(void *ctx, const char *key, const char *value, size_t raw_at, size_t raw_len);
int rt_st_metadata_scan(const char *path, const char *text, size_t len, RtStMetaFn fn, void *ctx, char *err,
                        size_t errlen);

/* Reads every tensor of a safetensors file (all must be F32) in header order into a
 * new array *tensors of *n tensors; free with rt_tensors_free(*tensors, *n). */
int rt_st_read(const char *path, RtTensor **tensors, int *n, char *err, size_t errlen);

/* Reads only the header of a safetensors file: the names of its tensors, in
 * header order, into a new array *names of *n strings (one allocation: free
 * *names alone). */
int rt_st_names(const char *path, char ***names, int *n, char *err, size_t errlen);

/* ---- NumPy .npy ---- */

/* Reads a .npy file (format 1.0, 2.0 or 3.0) holding a little-endian float32 array
 * ('<f4') in C order. out->name is NULL; free with rt_tensor_free. */
int rt_npy_read(const char *path, RtTensor *out, char *err, size_t errlen);

#define RT_NPY_MAX_HEADER 65536   /* largest .npy header dict read, in bytes */

/* The same in two steps, so that the shape is checked before any data is read:
 * rt_npy_open reads and validates the header (at most RT_NPY_MAX_HEADER bytes;
 * dtype, order, shape) and fills rank and shape; rt_npy_read_rows checks that
 * the file holds exactly the data the shape needs (or fails naming both sizes)
 * and reads the first `rows` entries of the outermost dimension (all of them if
 * rows < 0 or the array is a scalar); rt_npy_close releases the file. */
typedef struct RtNpyReader {
    const char *path;             /* as given, for messages */
    int fd;                       /* open file, -1 when closed */
    int rank;                     /* the header's shape ... */
    int64_t shape[RT_MAX_RANK];   /* ... outermost first */
    uint64_t data_at;             /* file offset of the data */
    uint64_t file_size;           /* the file's length at open */
} RtNpyReader;

int rt_npy_open(RtNpyReader *r, const char *path, char *err, size_t errlen);
int rt_npy_read_rows(RtNpyReader *r, int64_t rows, RtTensor *out, char *err, size_t errlen);
void rt_npy_close(RtNpyReader *r);

/* The header of a .npy file of any dtype, for readers of other dtypes than
 * float32 (runtime/data.c: uint8 and float64 images, integer labels). */
typedef struct RtNpyHeader {
    int rank;                     /* the header's shape ... */
    int64_t shape[RT_MAX_RANK];   /* ... outermost first */
    char descr[40];               /* the dtype string as written ('<f4', '|u1'; cut at 39 bytes) */
    char kind;                    /* its kind letter ('f', 'i', 'u', 'b', 'c', ...), 0 if none */
    int bytes;                    /* its element size, 1 to 16; 0 when it names none */
    int big_endian;               /* '>': big-endian elements */
    int fortran;                  /* fortran_order */
    size_t data_at;               /* file offset of the data */
} RtNpyHeader;

/* Parses the magic, version and header dict of a .npy file whose first len
 * bytes b holds (the whole header at least): the one .npy header parser,
 * also behind rt_npy_open. Checks neither the dtype nor the data's size. */
int rt_npy_header(const unsigned char *b, size_t len, const char *path, RtNpyHeader *h, char *err, size_t errlen);

/* Writes t as a .npy file, format 1.0, dtype '<f4', atomically. t->name is ignored. */
int rt_npy_write(const char *path, const RtTensor *t, char *err, size_t errlen);

/* ---- IDX (MNIST, Fashion-MNIST), plain or gzipped ---- */

/* An IDX array of unsigned bytes (type 0x08). */
typedef struct RtIdx {
    int rank;                    /* number of dimensions, 1..RT_MAX_RANK */
    int64_t dims[RT_MAX_RANK];   /* sizes, outermost first (images: n, rows, cols) */
    uint8_t *data;               /* product(dims) bytes, row-major */
    size_t size;                 /* product(dims) */
} RtIdx;

/* Reads an IDX file, gzip-compressed or not (zlib tells them apart). */
int rt_idx_read(const char *path, RtIdx *out, char *err, size_t errlen);
void rt_idx_free(RtIdx *idx);                   /* frees data, clears idx */

/* The same in two steps: rt_idx_open reads the header (rank, dims, size),
 * rt_idx_read_rows checks a plain file's length against it (before reading),
 * reads the first `rows` entries of the outermost dimension (all if rows < 0)
 * and then checks that the data has exactly the declared length, without
 * keeping the rest: a gzipped stream is inflated no further than the declared size plus
 * one byte. rt_idx_close releases the file. */
typedef struct RtIdxReader {
    const char *path;             /* as given, for messages */
    void *gz;                     /* zlib's gzFile */
    int rank;                     /* as in RtIdx */
    int64_t dims[RT_MAX_RANK];
    size_t size;                  /* product(dims) */
    int64_t plain_data;           /* bytes after the header of a plain file; -1 if gzipped */
} RtIdxReader;

int rt_idx_open(RtIdxReader *r, const char *path, char *err, size_t errlen);
int rt_idx_read_rows(RtIdxReader *r, int64_t rows, RtIdx *out, char *err, size_t errlen);
void rt_idx_close(RtIdxReader *r);

/* ---- a seeded random number generator for weight initialisation ----
 * xoshiro256** (Blackman and Vigna, 2018) seeded through splitmix64: fast, 256 bits
 * of state, and the same sequence on every platform for the same seed, so that
 * `nnc init --seed 1` gives the same weights everywhere. Not for cryptography. */
typedef struct RtRng {
    uint64_t s[4];   /* xoshiro256** state; never all zero after rt_rng_seed */
} RtRng;

void rt_rng_seed(RtRng *r, uint64_t seed);
uint64_t rt_rng_next_u64(RtRng *r);
/* A float uniformly distributed in [lo, hi) (lo when hi <= lo), from 24 random bits. */
float rt_rng_uniform(RtRng *r, float lo, float hi);

#endif
