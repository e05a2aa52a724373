/* checkpoint.c: the checksum of nnc's checkpoints (see checkpoint.h).
 *
 * Design. The sum is CRC32C over the file's bytes minus the 8 hex digits of
 * the nnc_checksum value, so the writer can put the sum inside the very
 * bytes it covers: it serializes the file with "crc32c:00000000", sums
 * everything but the digits, writes the digits in, and hands the buffer to
 * the atomic writer. The verifier finds the digits in the "__metadata__"
 * object of the header's JSON (rt_st_metadata_scan: the generated loader's
 * JSON reader, which skips the tensor table), then sums the rest:
 * the header in memory, the data in blocks. Why CRC32C rather than SHA-256:
 * it guards against accidents (a bit flipped on a disk, a truncated copy, an
 * edit by hand), not against a forger, who could rewrite any sum; it is
 * short, needs no library, and runs at memory speed with the SSE4.2 crc32
 * instruction (a byte-wise table elsewhere, about 0.5 GB/s).
 *
 * The writer serializes safetensors itself (the format is a length, a JSON
 * header padded to 8 bytes, the data), in the layout of rt_st_write
 * (runtime/tensor_io.c): metadata first, then the tensors in order. rt_st_read
 * and the generated loaders read it like any other weights file. */
#include "runtime/checkpoint.h"

#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define CK_HW_CRC 1
#endif

enum {
    CK_DIGITS = 8,                           /* hex digits of the sum */
    CK_BLOCK = 1 << 20,                      /* bytes summed at a time when reading a file */
};
#define CK_MAX_HEADER ((uint64_t)100 << 20)  /* the safetensors readers' limit on the header */
static const char ck_prefix[] = "crc32c:";   /* the value: the prefix, then CK_DIGITS digits */

/* ---- CRC32C ---- */

/* The byte-wise table of the reflected polynomial 0x82f63b78 (Castagnoli). */
static const uint32_t ck_table[256] = {
    0x00000000, 0xf26b8303, 0xe13b70f7, 0x1350f3f4, 0xc79a971f, 0x35f1141c,
    0x26a1e7e8, 0xd4ca64eb, 0x8ad958cf, 0x78b2dbcc, 0x6be22838, 0x9989ab3b,
    0x4d43cfd0, 0xbf284cd3, 0xac78bf27, 0x5e133c24, 0x105ec76f, 0xe235446c,
    0xf165b798, 0x030e349b, 0xd7c45070, 0x25afd373, 0x36ff2087, 0xc494a384,
    0x9a879fa0, 0x68ec1ca3, 0x7bbcef57, 0x89d76c54, 0x5d1d08bf, 0xaf768bbc,
    0xbc267848, 0x4e4dfb4b, 0x20bd8ede, 0xd2d60ddd, 0xc186fe29, 0x33ed7d2a,
    0xe72719c1, 0x154c9ac2, 0x061c6936, 0xf477ea35, 0xaa64d611, 0x580f5512,
    0x4b5fa6e6, 0xb93425e5, 0x6dfe410e, 0x9f95c20d, 0x8cc531f9, 0x7eaeb2fa,
    0x30e349b1, 0xc288cab2, 0xd1d83946, 0x23b3ba45, 0xf779deae, 0x05125dad,
    0x1642ae59, 0xe4292d5a, 0xba3a117e, 0x4851927d, 0x5b016189, 0xa96ae28a,
    0x7da08661, 0x8fcb0562, 0x9c9bf696, 0x6ef07595, 0x417b1dbc, 0xb3109ebf,
    0xa0406d4b, 0x522bee48, 0x86e18aa3, 0x748a09a0, 0x67dafa54, 0x95b17957,
    0xcba24573, 0x39c9c670, 0x2a993584, 0xd8f2b687, 0x0c38d26c, 0xfe53516f,
    0xed03a29b, 0x1f682198, 0x5125dad3, 0xa34e59d0, 0xb01eaa24, 0x42752927,
    0x96bf4dcc, 0x64d4cecf, 0x77843d3b, 0x85efbe38, 0xdbfc821c, 0x2997011f,
    0x3ac7f2eb, 0xc8ac71e8, 0x1c661503, 0xee0d9600, 0xfd5d65f4, 0x0f36e6f7,
    0x61c69362, 0x93ad1061, 0x80fde395, 0x72966096, 0xa65c047d, 0x5437877e,
    0x4767748a, 0xb50cf789, 0xeb1fcbad, 0x197448ae, 0x0a24bb5a, 0xf84f3859,
    0x2c855cb2, 0xdeeedfb1, 0xcdbe2c45, 0x3fd5af46, 0x7198540d, 0x83f3d70e,
    0x90a324fa, 0x62c8a7f9, 0xb602c312, 0x44694011, 0x5739b3e5, 0xa55230e6,
    0xfb410cc2, 0x092a8fc1, 0x1a7a7c35, 0xe811ff36, 0x3cdb9bdd, 0xceb018de,
    0xdde0eb2a, 0x2f8b6829, 0x82f63b78, 0x709db87b, 0x63cd4b8f, 0x91a6c88c,
    0x456cac67, 0xb7072f64, 0xa457dc90, 0x563c5f93, 0x082f63b7, 0xfa44e0b4,
    0xe9141340, 0x1b7f9043, 0xcfb5f4a8, 0x3dde77ab, 0x2e8e845f, 0xdce5075c,
    0x92a8fc17, 0x60c37f14, 0x73938ce0, 0x81f80fe3, 0x55326b08, 0xa759e80b,
    0xb4091bff, 0x466298fc, 0x1871a4d8, 0xea1a27db, 0xf94ad42f, 0x0b21572c,
    0xdfeb33c7, 0x2d80b0c4, 0x3ed04330, 0xccbbc033, 0xa24bb5a6, 0x502036a5,
    0x4370c551, 0xb11b4652, 0x65d122b9, 0x97baa1ba, 0x84ea524e, 0x7681d14d,
    0x2892ed69, 0xdaf96e6a, 0xc9a99d9e, 0x3bc21e9d, 0xef087a76, 0x1d63f975,
    0x0e330a81, 0xfc588982, 0xb21572c9, 0x407ef1ca, 0x532e023e, 0xa145813d,
    0x758fe5d6, 0x87e466d5, 0x94b49521, 0x66df1622, 0x38cc2a06, 0xcaa7a905,
    0xd9f75af1, 0x2b9cd9f2, 0xff56bd19, 0x0d3d3e1a, 0x1e6dcdee, 0xec064eed,
    0xc38d26c4, 0x31e6a5c7, 0x22b65633, 0xd0ddd530, 0x0417b1db, 0xf67c32d8,
    0xe52cc12c, 0x1747422f, 0x49547e0b, 0xbb3ffd08, 0xa86f0efc, 0x5a048dff,
    0x8ecee914, 0x7ca56a17, 0x6ff599e3, 0x9d9e1ae0, 0xd3d3e1ab, 0x21b862a8,
    0x32e8915c, 0xc083125f, 0x144976b4, 0xe622f5b7, 0xf5720643, 0x07198540,
    0x590ab964, 0xab613a67, 0xb831c993, 0x4a5a4a90, 0x9e902e7b, 0x6cfbad78,
    0x7fab5e8c, 0x8dc0dd8f, 0xe330a81a, 0x115b2b19, 0x020bd8ed, 0xf0605bee,
    0x24aa3f05, 0xd6c1bc06, 0xc5914ff2, 0x37faccf1, 0x69e9f0d5, 0x9b8273d6,
    0x88d28022, 0x7ab90321, 0xae7367ca, 0x5c18e4c9, 0x4f48173d, 0xbd23943e,
    0xf36e6f75, 0x0105ec76, 0x12551f82, 0xe03e9c81, 0x34f4f86a, 0xc69f7b69,
    0xd5cf889d, 0x27a40b9e, 0x79b737ba, 0x8bdcb4b9, 0x988c474d, 0x6ae7c44e,
    0xbe2da0a5, 0x4c4623a6, 0x5f16d052, 0xad7d5351,
};

static uint32_t ck_crc_table(uint32_t c, const unsigned char *p, size_t n)
{
    while (n--) c = ck_table[(c ^ *p++) & 0xff] ^ (c >> 8);
    return c;
}

#ifdef CK_HW_CRC
__attribute__((target("sse4.2"))) static uint32_t ck_crc_hw(uint32_t c, const unsigned char *p, size_t n)
{
    uint64_t c64 = c;
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c64 = _mm_crc32_u64(c64, w);
    }
    c = (uint32_t)c64;
    while (n--) c = _mm_crc32_u8(c, *p++);
    return c;
}
#endif

uint32_t rt_crc32c(uint32_t crc, const void *data, size_t len)
{
    uint32_t c = ~crc;
#ifdef CK_HW_CRC
    if (__builtin_cpu_supports("sse4.2")) return ~ck_crc_hw(c, data, len);
#endif
    return ~ck_crc_table(c, data, len);
}

/* ---- the header's metadata ----
 * Read with rt_st_metadata_scan (tensor_io.c): the JSON reader of the
 * generated loader (runtime/snippets/safetensors_load.c), nnc's only one. */

/* What the scan found. */
typedef struct CkScan {
    bool want_kv;          /* collect the metadata pairs */
    char **kv;             /* 2 * n strings, key then value */
    int n, cap;
    int sums;              /* nnc_checksum keys seen */
    size_t sum_at, sum_len; /* the raw value of the last one: offset in the header and length */
} CkScan;

static char *ck_dup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(nnc_xmalloc(n), s, n);
}

static void ck_pair(void *ctx, const char *key, const char *value, size_t raw_at, size_t raw_len)
{
    CkScan *s = ctx;
    if (strcmp(key, RT_CKPT_KEY) == 0) {
        s->sums++;
        s->sum_at = raw_at;
        s->sum_len = raw_len;
    }
    if (!s->want_kv) return;
    if (s->n * 2 + 2 > s->cap) s->kv = nnc_xrealloc(s->kv, (size_t)(s->cap = s->cap * 2 + 16) * sizeof *s->kv);
    s->kv[2 * s->n] = ck_dup(key);
    s->kv[2 * s->n + 1] = ck_dup(value);
    s->n++;
}

static void ck_scan_free(CkScan *s)
{
    rt_checkpoint_meta_free(s->kv, s->n);
    s->kv = NULL;
    s->n = s->cap = 0;
}

static bool ck_scan(const char *hdr, size_t len, CkScan *s)
{
    return rt_st_metadata_scan("", hdr, len, ck_pair, s, NULL, 0) == 0;
}

/* ---- verification ---- */

static int ck_fail(char *err, size_t errlen, const char *name, const char *fmt, ...) NNC_PRINTF(4, 5);
static int ck_fail(char *err, size_t errlen, const char *name, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        int k = snprintf(err, errlen, "%s: ", name);
        va_start(ap, fmt);
        if (k >= 0 && (size_t)k < errlen) vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* The little-endian header length of the first 8 bytes. */
static uint64_t ck_le64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | b[i];
    return v;
}

/* Reads the sum the scan located; false when the value is not "crc32c:" and 8 lowercase hex digits. */
static bool ck_stored(const char *hdr, const CkScan *s, uint32_t *sum)
{
    const char *v = hdr + s->sum_at;
    size_t pl = sizeof ck_prefix - 1;
    if (s->sum_len != pl + CK_DIGITS || memcmp(v, ck_prefix, pl) != 0) return false;
    uint32_t x = 0;
    for (int i = 0; i < CK_DIGITS; i++) {
        char c = v[pl + (size_t)i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
        x = x << 4 | (uint32_t)(c <= '9' ? c - '0' : c - 'a' + 10);
    }
    *sum = x;
    return true;
}

/* Whether the header text holds the key's name or a sum's prefix anywhere. A
 * file without the key is unsigned; but one flipped bit in the key's name, or
 * in "__metadata__" (the scanner then skips the metadata as a tensor), must
 * not turn a checkpoint into an unsigned file: its sum is still there. */
static bool ck_mentions_sum(const char *hdr, size_t len)
{
    static const char *const marks[] = {ck_prefix, RT_CKPT_KEY};
    for (size_t m = 0; m < 2; m++) {
        size_t ml = strlen(marks[m]);
        for (size_t i = 0; i + ml <= len; i++)
            if (hdr[i] == marks[m][0] && memcmp(hdr + i, marks[m], ml) == 0) return true;
    }
    return false;
}

/* Checks the header (hlen bytes of hdr, after the 8-byte prefix) for the key.
 * Returns RT_CKPT_UNSIGNED, RT_CKPT_CORRUPT (err), or RT_CKPT_VERIFIED with
 * *digits the offset of the digits in the file and *stored the sum. */
static RtCkptStatus ck_locate(const char *hdr, uint64_t hlen, const char *name, size_t *digits, uint32_t *stored,
                              char *err, size_t errlen)
{
    CkScan s = {0};
    bool ok = ck_scan(hdr, (size_t)hlen, &s);
    ck_scan_free(&s);
    if (!ok) {
        ck_fail(err, errlen, name, "its header is not the JSON of a safetensors file; the file is damaged or not "
                                   "a weights file");
        return RT_CKPT_CORRUPT;
    }
    if (s.sums == 0 && ck_mentions_sum(hdr, (size_t)hlen)) {
        ck_fail(err, errlen, name, "its header holds a checksum (%s...) but no valid %s metadata key: the file is "
                                   "corrupted (damaged on disk or in a copy, or edited) and cannot be used",
                ck_prefix, RT_CKPT_KEY);
        return RT_CKPT_CORRUPT;
    }
    if (s.sums == 0) return RT_CKPT_UNSIGNED;
    if (s.sums > 1) {
        ck_fail(err, errlen, name, "its metadata holds %s %d times; the file was edited or is damaged", RT_CKPT_KEY,
                s.sums);
        return RT_CKPT_CORRUPT;
    }
    if (!ck_stored(hdr, &s, stored)) {
        ck_fail(err, errlen, name, "%s = '%.*s' is not crc32c: and 8 hex digits; the file was edited or is damaged",
                RT_CKPT_KEY, (int)(s.sum_len > 64 ? 64 : s.sum_len), hdr + s.sum_at);
        return RT_CKPT_CORRUPT;
    }
    *digits = 8 + s.sum_at + sizeof ck_prefix - 1;
    return RT_CKPT_VERIFIED;
}

static RtCkptStatus ck_compare(uint32_t stored, uint32_t computed, const char *name, char *err, size_t errlen)
{
    if (stored == computed) return RT_CKPT_VERIFIED;
    ck_fail(err, errlen, name, "checksum mismatch: %s says crc32c:%08x, the contents give crc32c:%08x; the file is "
                               "corrupted (damaged on disk or in a copy, truncated, or edited) and cannot be used: "
                               "take an intact copy, or an earlier checkpoint, or train afresh",
            RT_CKPT_KEY, (unsigned)stored, (unsigned)computed);
    return RT_CKPT_CORRUPT;
}

RtCkptStatus rt_checkpoint_check_bytes(const void *bytes, size_t len, const char *name, char *err, size_t errlen)
{
    const unsigned char *b = bytes;
    if (len < 8) {
        ck_fail(err, errlen, name, "%zu bytes: too short for a safetensors file", len);
        return RT_CKPT_CORRUPT;
    }
    uint64_t hlen = ck_le64(b);
    if (hlen > len - 8 || hlen > CK_MAX_HEADER) {
        ck_fail(err, errlen, name, "its header length %llu does not fit in its %zu bytes; the file is truncated or "
                                   "not a weights file", (unsigned long long)hlen, len);
        return RT_CKPT_CORRUPT;
    }
    size_t digits;
    uint32_t stored;
    RtCkptStatus st = ck_locate((const char *)b + 8, hlen, name, &digits, &stored, err, errlen);
    if (st != RT_CKPT_VERIFIED) return st;
    uint32_t c = rt_crc32c(0, b, digits);
    c = rt_crc32c(c, b + digits + CK_DIGITS, len - digits - CK_DIGITS);
    return ck_compare(stored, c, name, err, errlen);
}

bool rt_checkpoint_verify_bytes(const void *bytes, size_t len, const char *name, char *err, size_t errlen)
{
    return rt_checkpoint_check_bytes(bytes, len, name, err, errlen) != RT_CKPT_CORRUPT;
}

/* Reads exactly n bytes at the current offset; false at an error or a short file. */
static bool ck_read(int fd, void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t got = read(fd, p, n);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) return false;
        p += got;
        n -= (size_t)got;
    }
    return true;
}

/* The header of an open regular file of size bytes: 8 + *hlen bytes into a new *hdr. */
static RtCkptStatus ck_read_header(int fd, const char *path, uint64_t size, unsigned char **hdr, uint64_t *hlen,
                                   char *err, size_t errlen)
{
    unsigned char len8[8];
    *hdr = NULL;
    if (size < 8 || !ck_read(fd, len8, 8)) {
        ck_fail(err, errlen, path, "%llu bytes: too short for a safetensors file", (unsigned long long)size);
        return RT_CKPT_CORRUPT;
    }
    *hlen = ck_le64(len8);
    if (*hlen > size - 8 || *hlen > CK_MAX_HEADER) {
        ck_fail(err, errlen, path, "its header length %llu does not fit in its %llu bytes; the file is truncated "
                                   "or not a weights file", (unsigned long long)*hlen, (unsigned long long)size);
        return RT_CKPT_CORRUPT;
    }
    *hdr = nnc_xmalloc((size_t)*hlen + 8);
    memcpy(*hdr, len8, 8);
    if (!ck_read(fd, *hdr + 8, (size_t)*hlen)) {
        ck_fail(err, errlen, path, "cannot read its header: %s", errno ? strerror(errno) : "the file is shorter");
        return RT_CKPT_CORRUPT;
    }
    return RT_CKPT_VERIFIED;
}

/* Sums the data after the header, in blocks, up to size; continues from c. */
static bool ck_sum_rest(int fd, uint64_t left, uint32_t *c)
{
    unsigned char *buf = nnc_xmalloc(CK_BLOCK);
    bool ok = true;
    while (ok && left > 0) {
        size_t n = left < CK_BLOCK ? (size_t)left : CK_BLOCK;
        ok = ck_read(fd, buf, n);
        if (ok) *c = rt_crc32c(*c, buf, n);
        left -= n;
    }
    free(buf);
    return ok;
}

static RtCkptStatus ck_verify_fd(int fd, const char *path, uint64_t size, char *err, size_t errlen)
{
    unsigned char *hdr;
    uint64_t hlen;
    size_t digits;
    uint32_t stored;
    RtCkptStatus st = ck_read_header(fd, path, size, &hdr, &hlen, err, errlen);
    if (st == RT_CKPT_VERIFIED) st = ck_locate((const char *)hdr + 8, hlen, path, &digits, &stored, err, errlen);
    if (st == RT_CKPT_VERIFIED) {
        uint32_t c = rt_crc32c(0, hdr, digits);
        c = rt_crc32c(c, hdr + digits + CK_DIGITS, (size_t)(8 + hlen) - digits - CK_DIGITS);
        if (!ck_sum_rest(fd, size - 8 - hlen, &c)) {
            ck_fail(err, errlen, path, "cannot read its data: %s", errno ? strerror(errno) : "the file got shorter");
            st = RT_CKPT_CORRUPT;
        } else {
            st = ck_compare(stored, c, path, err, errlen);
        }
    }
    free(hdr);
    return st;
}

RtCkptStatus rt_checkpoint_verify_file(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);  /* a FIFO without a writer must not block */
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        ck_fail(err, errlen, path, "%s", strerror(errno));
        if (fd >= 0) close(fd);
        return RT_CKPT_CORRUPT;
    }
    RtCkptStatus rc = RT_CKPT_UNSIGNED;  /* only a regular file can be read twice: a special one is left to its reader */
    errno = 0;
    if (S_ISREG(st.st_mode)) rc = ck_verify_fd(fd, path, (uint64_t)st.st_size, err, errlen);
    close(fd);
    return rc;
}

/* ---- writing ---- */

/* The header as rt_st_write lays it out, with the checksum key (digits zero)
 * last in the metadata; *digits is the digits' offset in the header text. */
static void ck_header(StrBuf *sb, const RtTensor *t, int n, const char *meta, size_t *digits)
{
    size_t ml = strlen(meta);
    while (ml > 0 && meta[ml - 1] != '}') ml--;  /* the closing brace of the object */
    bool empty = true;
    for (size_t i = 1; i + 1 < ml && empty; i++) empty = meta[i] == ' ' || meta[i] == '\t' || meta[i] == '\n';
    sb_append(sb, "{\"__metadata__\":");
    sb_appendn(sb, meta, ml ? ml - 1 : 0);
    sb_printf(sb, "%s\"%s\":\"%s", empty ? "" : ",", RT_CKPT_KEY, ck_prefix);
    *digits = sb->len;
    sb_printf(sb, "00000000\"}%s", n ? "," : "");
    uint64_t at = 0;
    for (int i = 0; i < n; i++) {
        uint64_t bytes = (uint64_t)rt_tensor_numel(&t[i]) * 4;
        rt_json_string(sb, t[i].name);
        sb_append(sb, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t[i].rank; d++) sb_printf(sb, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
        sb_printf(sb, "],\"data_offsets\":[%llu,%llu]}%s", (unsigned long long)at, (unsigned long long)(at + bytes),
                  i + 1 < n ? "," : "");
        at += bytes;
    }
    sb_append(sb, "}");
    while (sb->len % 8) sb_append(sb, " ");
}

/* Checks what the writer is given; *total gets the data's size. */
static int ck_check_args(const char *path, const RtTensor *t, int n, const char *meta, uint64_t *total, char *err,
                         size_t errlen)
{
    *total = 0;
    if (!meta || meta[0] != '{' || strstr(meta, "\"" RT_CKPT_KEY "\""))
        return ck_fail(err, errlen, path, "the metadata must be a JSON object without %s", RT_CKPT_KEY);
    if (n < 0 || (n > 0 && !t)) return ck_fail(err, errlen, path, "invalid tensor list (n = %d)", n);
    for (int i = 0; i < n; i++) {
        int64_t e = rt_tensor_numel(&t[i]);
        if (!t[i].name || e < 0 || t[i].rank < 0 || t[i].rank > RT_MAX_RANK || (e > 0 && !t[i].data))
            return ck_fail(err, errlen, path, "tensor %d has no name, a bad shape or no data", i);
        *total += (uint64_t)e * 4;
        if (*total > (uint64_t)RT_MAX_BYTES) return ck_fail(err, errlen, path, "the tensors hold more than 2^40 bytes");
    }
    return 0;
}

int rt_checkpoint_write(const char *path, const RtTensor *t, int n, const char *meta, char *err, size_t errlen)
{
    uint64_t total;
    if (ck_check_args(path, t, n, meta, &total, err, errlen) != 0) return -1;
    StrBuf hdr = {0};
    size_t digits;
    ck_header(&hdr, t, n, meta, &digits);
    size_t size;
    unsigned char *buf = rt_st_pack(&hdr, t, n, (size_t)total, &size);
    if (!buf) {
        sb_free(&hdr);
        return ck_fail(err, errlen, path, "out of memory (%zu bytes)", size);
    }
    digits += 8;
    uint32_t c = rt_crc32c(rt_crc32c(0, buf, digits), buf + digits + CK_DIGITS, size - digits - CK_DIGITS);
    char hex[CK_DIGITS + 1];
    snprintf(hex, sizeof hex, "%08x", (unsigned)c);
    memcpy(buf + digits, hex, CK_DIGITS);
    int rc = nnc_write_file_atomic(path, buf, size);
    int e = errno;
    free(buf);
    sb_free(&hdr);
    return rc ? ck_fail(err, errlen, path, "cannot write: %s", strerror(e)) : 0;
}

/* ---- metadata ---- */

bool rt_checkpoint_metadata(const char *path, char ***kv, int *n)
{
    *kv = NULL;
    *n = 0;
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0) return false;
    unsigned char *hdr = NULL;
    uint64_t hlen = 0;
    bool ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
              ck_read_header(fd, path, (uint64_t)st.st_size, &hdr, &hlen, NULL, 0) == RT_CKPT_VERIFIED;
    close(fd);
    CkScan s = {.want_kv = true};
    ok = ok && ck_scan((const char *)hdr + 8, (size_t)hlen, &s);
    free(hdr);
    *kv = s.kv;
    *n = s.n;
    return ok;
}

const char *rt_checkpoint_meta_get(char **kv, int n, const char *key)
{
    for (int i = 0; i < n; i++)
        if (strcmp(kv[2 * i], key) == 0) return kv[2 * i + 1];
    return NULL;
}

void rt_checkpoint_meta_free(char **kv, int n)
{
    for (int i = 0; i < 2 * n; i++) free(kv[i]);
    free(kv);
}
