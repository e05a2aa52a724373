/* jit_cache.h: compiled generated code cached on disk: the in-process JIT's
 * objects (runtime/jit.c) and the system compiler's shared objects
 * (runtime/jit_cc.c), through one flow (rt_cache_build).
 *
 * An entry is the object file Clang made from one generated source, or the
 * shared object the system C compiler made (runtime/jit_cc.c), under the
 * name KEY.o in the cache directory, KEY the hex SHA-256 of everything the
 * object depends on: the source, the header, the compiler's identity (its
 * version, the host's triple, CPU and features: runtime/jit_llvm.h
 * rt_llvm_identity; for cc its path, size and modification time and the
 * CPU) and the flags. Its layout (integers little-endian):
 *     "NNCJITO\0"  magic, 8 bytes
 *     u32          format version (RT_CACHE_VERSION)
 *     u32          0
 *     32 bytes     the key
 *     u64          payload length
 *     32 bytes     SHA-256 of the payload
 *     payload      the object file
 * An entry is written atomically (common.h nnc_write_file_atomic: a
 * temporary in the same directory, fsync, rename), so a reader sees a whole
 * entry or none, and two processes storing the same entry both succeed (the
 * second rename replaces the first's identical file). An entry whose magic,
 * version, key, length or checksum is wrong (truncated, corrupted, another
 * format) is counted as corrupt, never loaded, and the caller rebuilds and
 * replaces it.
 *
 * The directory: $NNC_CACHE_DIR, else $XDG_CACHE_HOME/nnc, else
 * $HOME/.cache/nnc (created, mode 0700, when first written). NNC_CACHE=off
 * (or 0) turns the cache off: nothing is read or written. A directory of
 * another user, or one that group or others can write to, is not used (an
 * entry is code this process runs). */
#ifndef NNC_RUNTIME_JIT_CACHE_H
#define NNC_RUNTIME_JIT_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { RT_CACHE_VERSION = 1, RT_CACHE_KEY = 32, RT_CACHE_HEADER = 8 + 4 + 4 + 32 + 8 + 32 };

/* SHA-256, incrementally. */
typedef struct {
    uint32_t h[8];
    uint64_t len;
    unsigned char buf[64];
    size_t used;
} RtSha256;
void rt_sha256_init(RtSha256 *s);
void rt_sha256_update(RtSha256 *s, const void *data, size_t len);
void rt_sha256_final(RtSha256 *s, unsigned char out[32]);
void rt_sha256(const void *data, size_t len, unsigned char out[32]);

/* The key of n strings (each hashed with its length, so ("ab","c") and
 * ("a","bc") differ; a NULL string counts as empty). */
void rt_cache_key(const char *const *parts, int n, unsigned char key[RT_CACHE_KEY]);

/* The cache directory into buf; false when the cache is off (NNC_CACHE=off
 * or 0) or no directory can be named. */
bool rt_cache_dir(char *buf, size_t len);

/* The path of key's entry in dir. */
void rt_cache_path(const char *dir, const unsigned char key[RT_CACHE_KEY], char *buf, size_t len);

/* Looks key up: true with the payload in *payload (malloc'd) and *len; false
 * when there is no entry or it is corrupt (counted; the caller rebuilds). */
bool rt_cache_get(const char *dir, const unsigned char key[RT_CACHE_KEY], void **payload, size_t *len);

/* Stores an entry (creating dir). false, with nothing left behind, when it
 * cannot (the caller carries on without the cache). */
bool rt_cache_put(const char *dir, const unsigned char key[RT_CACHE_KEY], const void *payload, size_t len);

/* The one flow of every loader (the in-process JIT's objects, runtime/jit.c;
 * the system compiler's shared objects, runtime/jit_cc.c): the key of parts;
 * with the cache on, the entry's payload given to open (an entry open
 * refuses is treated as corrupt: rebuilt and replaced); else compile (a
 * malloc'd payload), store, open. 0, or -1 with the reason in err. */
typedef struct {
    void *ctx;  /* the loader's, passed to both */
    int (*compile)(void *ctx, void **payload, size_t *len, char *err, size_t errlen);
    int (*open)(void *ctx, const void *payload, size_t len, char *err, size_t errlen);
} RtCacheLoader;
int rt_cache_build(const char *const *parts, int n, const RtCacheLoader *l, char *err, size_t errlen);

/* What this process's cache did so far. */
typedef struct {
    long hits;     /* entries loaded */
    long misses;   /* lookups that found no entry */
    long corrupt;  /* entries refused (bad magic, version, key, length or checksum) */
    long stores;   /* entries written */
    long store_failures;
} RtCacheStats;
void rt_cache_stats(RtCacheStats *out);
void rt_cache_reset_stats(void);

#endif
