/* jit_cache.c: the in-process JIT's disk cache (jit_cache.h says what an
 * entry is and where it lives). */
#include "jit_cache.h"

#include "../common/common.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------ SHA-256 ---- */

static const uint32_t sha_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void sha_block(uint32_t h[8], const unsigned char *p)
{
    uint32_t w[64], a[8];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(a, h, sizeof a);
    for (int i = 0; i < 64; i++) {
        uint32_t s1 = rotr(a[4], 6) ^ rotr(a[4], 11) ^ rotr(a[4], 25);
        uint32_t ch = (a[4] & a[5]) ^ (~a[4] & a[6]);
        uint32_t t1 = a[7] + s1 + ch + sha_k[i] + w[i];
        uint32_t s0 = rotr(a[0], 2) ^ rotr(a[0], 13) ^ rotr(a[0], 22);
        uint32_t maj = (a[0] & a[1]) ^ (a[0] & a[2]) ^ (a[1] & a[2]);
        uint32_t t2 = s0 + maj;
        memmove(a + 1, a, 7 * sizeof a[0]);
        a[4] += t1;
        a[0] = t1 + t2;
    }
    for (int i = 0; i < 8; i++) h[i] += a[i];
}

void rt_sha256_init(RtSha256 *s)
{
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(s->h, h0, sizeof h0);
    s->len = 0;
    s->used = 0;
}

void rt_sha256_update(RtSha256 *s, const void *data, size_t len)
{
    const unsigned char *p = data;
    s->len += len;
    if (s->used) {
        size_t take = 64 - s->used < len ? 64 - s->used : len;
        memcpy(s->buf + s->used, p, take);
        s->used += take, p += take, len -= take;
        if (s->used < 64) return;
        sha_block(s->h, s->buf);
        s->used = 0;
    }
    for (; len >= 64; p += 64, len -= 64) sha_block(s->h, p);
    memcpy(s->buf, p, len);
    s->used = len;
}

void rt_sha256_final(RtSha256 *s, unsigned char out[32])
{
    uint64_t bits = s->len * 8;
    unsigned char pad[72] = {0x80};
    size_t n = s->used < 56 ? 56 - s->used : 120 - s->used;
    for (int i = 0; i < 8; i++) pad[n + (size_t)i] = (unsigned char)(bits >> (56 - 8 * i));
    rt_sha256_update(s, pad, n + 8);
    for (int i = 0; i < 8; i++)
        for (int b = 0; b < 4; b++) out[4 * i + b] = (unsigned char)(s->h[i] >> (24 - 8 * b));
}

void rt_sha256(const void *data, size_t len, unsigned char out[32])
{
    RtSha256 s;
    rt_sha256_init(&s);
    rt_sha256_update(&s, data, len);
    rt_sha256_final(&s, out);
}

void rt_cache_key(const char *const *parts, int n, unsigned char key[RT_CACHE_KEY])
{
    RtSha256 s;
    rt_sha256_init(&s);
    rt_sha256_update(&s, "nnc-jit-cache", 13);
    for (int i = 0; i < n; i++) {
        const char *p = parts[i] ? parts[i] : "";
        uint64_t len = strlen(p);
        unsigned char le[8];
        for (int b = 0; b < 8; b++) le[b] = (unsigned char)(len >> (8 * b));
        rt_sha256_update(&s, le, 8);
        rt_sha256_update(&s, p, len);
    }
    rt_sha256_final(&s, key);
}

/* ------------------------------------------------------------- entries ---- */

static atomic_long st_hits, st_misses, st_corrupt, st_stores, st_store_failures;
/* one writer at a time in this process: the atomic writer's temporary is
 * named after the PID, which two threads share */
static pthread_mutex_t put_lock = PTHREAD_MUTEX_INITIALIZER;

static const char cache_magic[8] = {'N', 'N', 'C', 'J', 'I', 'T', 'O', 0};

bool rt_cache_dir(char *buf, size_t len)
{
    const char *off = getenv("NNC_CACHE");
    if (off && (strcmp(off, "off") == 0 || strcmp(off, "0") == 0)) return false;
    const char *dir = getenv("NNC_CACHE_DIR"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    int n;
    if (dir && *dir) n = snprintf(buf, len, "%s", dir);
    else if (xdg && *xdg == '/') n = snprintf(buf, len, "%s/nnc", xdg);
    else if (home && *home) n = snprintf(buf, len, "%s/.cache/nnc", home);
    else return false;
    return n > 0 && (size_t)n < len - 80;  /* room for the entry's name */
}

void rt_cache_path(const char *dir, const unsigned char key[RT_CACHE_KEY], char *buf, size_t len)
{
    char hex[2 * RT_CACHE_KEY + 1];
    for (int i = 0; i < RT_CACHE_KEY; i++) snprintf(hex + 2 * i, 3, "%02x", key[i]);
    snprintf(buf, len, "%s/%s.o", dir, hex);
}

static void put_u32(unsigned char *p, uint32_t v)
{
    for (int b = 0; b < 4; b++) p[b] = (unsigned char)(v >> (8 * b));
}
static void put_u64(unsigned char *p, uint64_t v)
{
    for (int b = 0; b < 8; b++) p[b] = (unsigned char)(v >> (8 * b));
}
static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int b = 0; b < 8; b++) v |= (uint64_t)p[b] << (8 * b);
    return v;
}
static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Whether dir (when it exists) is safe to take code from: a directory of
 * this user that no one else can write to. An entry is machine code this
 * process runs; a cache anyone can write to would run anyone's code. */
static bool dir_trusted(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) != 0) return errno == ENOENT;
    return S_ISDIR(st.st_mode) && st.st_uid == geteuid() && (st.st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

bool rt_cache_get(const char *dir, const unsigned char key[RT_CACHE_KEY], void **payload, size_t *len)
{
    char path[4200];
    size_t n = 0;
    const char *why = NULL;
    *payload = NULL;
    *len = 0;
    rt_cache_path(dir, key, path, sizeof path);
    if (!dir_trusted(dir)) {
        atomic_fetch_add(&st_misses, 1);
        return false;
    }
    unsigned char *f = (unsigned char *)nnc_read_file_max(path, (size_t)1 << 32, 0, &n, &why);
    if (!f) {
        atomic_fetch_add(&st_misses, 1);
        return false;
    }
    unsigned char sum[32];
    bool ok = n >= RT_CACHE_HEADER && memcmp(f, cache_magic, 8) == 0 && get_u32(f + 8) == RT_CACHE_VERSION &&
              get_u32(f + 12) == 0 && memcmp(f + 16, key, RT_CACHE_KEY) == 0 &&
              get_u64(f + 48) == n - RT_CACHE_HEADER;
    if (ok) {
        rt_sha256(f + RT_CACHE_HEADER, n - RT_CACHE_HEADER, sum);
        ok = memcmp(sum, f + 56, 32) == 0;
    }
    if (!ok) {
        free(f);
        atomic_fetch_add(&st_corrupt, 1);
        return false;
    }
    memmove(f, f + RT_CACHE_HEADER, n - RT_CACHE_HEADER);
    *payload = f;
    *len = n - RT_CACHE_HEADER;
    atomic_fetch_add(&st_hits, 1);
    return true;
}

/* mkdir -p with mode 0700 for what it creates. */
static bool make_dirs(const char *dir)
{
    char p[4200];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1;; s++) {
        bool end = *s == 0;
        if (*s == '/' || end) {
            *s = 0;
            if (mkdir(p, 0700) != 0 && errno != EEXIST) return false;
            if (end) break;
            *s = '/';
        }
    }
    struct stat st;
    return stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
}

bool rt_cache_put(const char *dir, const unsigned char key[RT_CACHE_KEY], const void *payload, size_t len)
{
    char path[4200];
    unsigned char *e = malloc(RT_CACHE_HEADER + len);
    if (!e) return false;
    memcpy(e, cache_magic, 8);
    put_u32(e + 8, RT_CACHE_VERSION);
    put_u32(e + 12, 0);
    memcpy(e + 16, key, RT_CACHE_KEY);
    put_u64(e + 48, len);
    rt_sha256(payload, len, e + 56);
    memcpy(e + RT_CACHE_HEADER, payload, len);
    rt_cache_path(dir, key, path, sizeof path);
    pthread_mutex_lock(&put_lock);
    bool ok = make_dirs(dir) && dir_trusted(dir) && nnc_write_file_atomic(path, e, RT_CACHE_HEADER + len) == 0;
    pthread_mutex_unlock(&put_lock);
    free(e);
    atomic_fetch_add(ok ? &st_stores : &st_store_failures, 1);
    return ok;
}

int rt_cache_build(const char *const *parts, int n, const RtCacheLoader *l, char *err, size_t errlen)
{
    char dir[4096];
    unsigned char key[RT_CACHE_KEY];
    bool cache = rt_cache_dir(dir, sizeof dir);
    void *payload = NULL;
    size_t len = 0;
    if (cache) {
        rt_cache_key(parts, n, key);
        if (rt_cache_get(dir, key, &payload, &len)) {
            int rc = l->open(l->ctx, payload, len, err, errlen);
            free(payload);
            if (rc == 0) return 0;
            atomic_fetch_sub(&st_hits, 1), atomic_fetch_add(&st_corrupt, 1);  /* a whole entry that does not load */
        }
    }
    if (l->compile(l->ctx, &payload, &len, err, errlen) != 0) return -1;
    if (cache) rt_cache_put(dir, key, payload, len);  /* a failure to store costs the next load a compile, nothing else */
    int rc = l->open(l->ctx, payload, len, err, errlen);
    free(payload);
    return rc;
}

void rt_cache_stats(RtCacheStats *out)
{
    out->hits = atomic_load(&st_hits);
    out->misses = atomic_load(&st_misses);
    out->corrupt = atomic_load(&st_corrupt);
    out->stores = atomic_load(&st_stores);
    out->store_failures = atomic_load(&st_store_failures);
}

void rt_cache_reset_stats(void)
{
    atomic_store(&st_hits, 0);
    atomic_store(&st_misses, 0);
    atomic_store(&st_corrupt, 0);
    atomic_store(&st_stores, 0);
    atomic_store(&st_store_failures, 0);
}
