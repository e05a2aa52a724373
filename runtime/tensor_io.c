/* tensor_io.c: safetensors files for the nnc tools, the pieces the .npy and
 * IDX readers share (npy.c, idx.c), and the seeded RNG. See tensor_io.h.
 *
 * Reading safetensors goes through runtime/snippets/safetensors_load.c, included
 * below: the parser the generated models carry is the only one in the project, so
 * what the tools accept is exactly what a model accepts; the metadata of a header
 * (rt_st_metadata_scan: the checkpoints' keys and checksum) is read with that same
 * JSON reader. Writing builds the whole file
 * in memory and hands it to nnc_write_file_atomic (temp file + fsync + rename): a
 * reader never sees half a file, and a failed write leaves the old file in place. The
 * header we write is parsed back by the snippet before anything touches the disk,
 * which checks names (duplicates, UTF-8) and metadata with the reader's own rules.
 *
 * Bounded reads. Every file is opened with nnc_open_regular: a directory, a FIFO,
 * /dev/zero or a terminal is refused at once, before a byte is read (a FIFO has
 * no size and would have to be read to its end; nothing here needs one). The
 * .npy and IDX readers (npy.c, idx.c) read a header first and its data after. */
#include "runtime/tensor_io.h"
#include "runtime/tensor_io_internal.h"

#include "common/common.h"
#include "runtime/snippets/safetensors_load.c"

#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <unistd.h>

int rt_fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (!err || errlen == 0) return -1;
    n = snprintf(err, errlen, "%s: ", path ? path : "(no path)");
    if (n >= 0 && (size_t)n < errlen) {
        va_start(ap, fmt);
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

const char *rt_quote(char *buf, size_t size, const char *s, size_t len) { return nnc_st_quote(buf, size, s, len); }

int rt_check_host(const char *path, char *err, size_t errlen)
{
    (void)nnc_st_load;   /* the generated models' entry point; the tools use the pieces below it */
    if (!nnc_st_host_is_little_endian())
        return RT_FAIL("this machine is big-endian; nnc's tensor files are little-endian and are only supported on little-endian hosts");
    return 0;
}

int64_t rt_tensor_numel(const RtTensor *t)
{
    int64_t n = 1;
    if (t->rank < 0 || t->rank > RT_MAX_RANK) return -1;
    for (int i = 0; i < t->rank; i++) {
        if (t->shape[i] < 0) return -1;
        if (t->shape[i] != 0 && n > RT_MAX_BYTES / 4 / t->shape[i]) return -1;
        n *= t->shape[i];
    }
    return n;
}

void rt_tensor_free(RtTensor *t)
{
    if (!t) return;
    free((char *)t->name);
    free(t->data);
    memset(t, 0, sizeof *t);
}

void rt_tensors_free(RtTensor *t, int n)
{
    if (!t) return;
    for (int i = 0; i < n; i++) rt_tensor_free(&t[i]);
    free(t);
}

/* Formats a shape the NumPy way, "(2, 3)", "(5,)", "()". */
const char *rt_tuple_str(char *buf, size_t size, int rank, const int64_t *shape)
{
    size_t o = (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < rank && o < size; i++)
        o += (size_t)snprintf(buf + o, size - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < size) snprintf(buf + o, size - o, rank == 1 ? ",)" : ")");
    return buf;
}

/* Checks a caller's tensor before writing it; *bytes receives its data size. */
int rt_check_tensor(const char *path, const RtTensor *t, int index, int64_t *bytes, char *err, size_t errlen)
{
    char what[600], q[512];
    if (t->name) snprintf(what, sizeof what, "tensor '%s'", nnc_st_quote(q, sizeof q, t->name, strlen(t->name)));
    else if (index >= 0) snprintf(what, sizeof what, "tensor %d", index);
    else snprintf(what, sizeof what, "the array");
    if (t->rank < 0 || t->rank > RT_MAX_RANK)
        return RT_FAIL("%s has rank %d; nnc supports 0 to %d dimensions", what, t->rank, RT_MAX_RANK);
    for (int i = 0; i < t->rank; i++)
        if (t->shape[i] < 0) return RT_FAIL("%s has a negative dimension (shape[%d] = %lld)", what, i, (long long)t->shape[i]);
    int64_t n = rt_tensor_numel(t);
    if (n < 0) return RT_FAIL("%s is larger than the 2^40-byte limit", what);
    if (n > 0 && !t->data) return RT_FAIL("%s has no data", what);
    *bytes = n * 4;
    return 0;
}

/* ---- safetensors ---- */

unsigned char *rt_st_pack(const StrBuf *header, const RtTensor *t, int n, size_t data_bytes, size_t *size)
{
    *size = 8 + header->len + data_bytes;
    unsigned char *buf = malloc(*size);
    if (!buf) return NULL;
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)header->len >> (8 * i));  /* little-endian u64 */
    memcpy(buf + 8, header->data, header->len);
    size_t at = 8 + header->len;
    for (int i = 0; i < n; i++) {
        size_t bytes = (size_t)rt_tensor_numel(&t[i]) * 4;
        if (bytes) memcpy(buf + at, t[i].data, bytes);
        at += bytes;
    }
    return buf;
}

void rt_json_string(StrBuf *sb, const char *s)
{
    sb_append(sb, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') { char e[3] = {'\\', (char)c, 0}; sb_append(sb, e); }
        else if (c < 0x20) sb_printf(sb, "\\u%04x", c);
        else sb_appendn(sb, s, 1);
    }
    sb_append(sb, "\"");
}

/* Checks a tensor name for the header: valid UTF-8 and not the reserved key. */
static int rt_check_name(const char *path, const char *name, int index, char *err, size_t errlen)
{
    const unsigned char *s = (const unsigned char *)name, *end;
    if (!name) return RT_FAIL("tensor %d has no name", index);
    end = s + strlen(name);
    while (s < end) {
        size_t n = nnc_st_utf8_len(s, end);
        if (n == 0) return RT_FAIL("tensor %d's name is not valid UTF-8 (byte %d)", index, (int)(s - (const unsigned char *)name));
        s += n;
    }
    if (strcmp(name, "__metadata__") == 0) return RT_FAIL("tensor %d is named \"__metadata__\", which safetensors reserves", index);
    return 0;
}

/* Checks that metadata is a JSON object of strings, with the reader's own parser. */
static int rt_check_metadata(const char *path, const char *meta, char *err, size_t errlen)
{
    nnc_st_json J;
    size_t len = strlen(meta);
    memset(&J, 0, sizeof J);
    J.path = path;
    J.what = "metadata";
    J.start = J.p = (const unsigned char *)meta;
    J.end = J.start + len;
    J.err = err;
    J.errlen = errlen;
    J.pool = nnc_xmalloc(len + 1);
    int rc = nnc_st_metadata(&J);
    nnc_st_ws(&J);
    if (rc == 0 && J.p < J.end) rc = nnc_st_syntax(&J, "unexpected bytes after the metadata object");
    free(J.pool);
    return rc;
}

/* The pairs of one "__metadata__" object, handed to fn with the raw value's place. */
static int rt_st_meta_pairs(nnc_st_json *J, RtStMetaFn fn, void *ctx)
{
    int more = 0;
    if (nnc_st_expect(J, '{')) return -1;
    more = !nnc_st_empty(J, '}');
    while (more) {
        const char *k = NULL, *v = NULL;
        size_t kl = 0, vl = 0;
        if (nnc_st_string(J, &k, &kl) || nnc_st_expect(J, ':')) return -1;
        nnc_st_ws(J);
        if (J->p < J->end && *J->p != '"') return nnc_st_syntax(J, "__metadata__ values must be strings");
        const unsigned char *raw = J->p + 1;   /* the value's first byte after its quote */
        if (nnc_st_string(J, &v, &vl)) return -1;
        fn(ctx, k, v, (size_t)(raw - J->start), (size_t)(J->p - 1 - raw));
        if (nnc_st_next(J, '}', &more)) return -1;
    }
    return 0;
}

int rt_st_metadata_scan(const char *path, const char *text, size_t len, RtStMetaFn fn, void *ctx, char *err,
                        size_t errlen)
{
    nnc_st_json J;
    int more = 0;
    memset(&J, 0, sizeof J);
    J.path = path;
    J.what = "header";
    J.start = J.p = (const unsigned char *)text;
    J.end = J.start + len;
    J.base = 8;
    J.err = err;
    J.errlen = errlen;
    J.pool = nnc_xmalloc(len + 1);
    int rc = nnc_st_expect(&J, '{');
    if (rc == 0) more = !nnc_st_empty(&J, '}');
    while (rc == 0 && more) {
        const char *name = NULL;
        size_t nlen = 0, mark = J.pool_len;
        rc = nnc_st_string(&J, &name, &nlen) || nnc_st_expect(&J, ':') ? -1 : 0;
        if (rc == 0 && nlen == 12 && strcmp(name, "__metadata__") == 0) rc = rt_st_meta_pairs(&J, fn, ctx);
        else if (rc == 0) rc = nnc_st_value(&J, 1);   /* a tensor entry: checked as JSON, skipped */
        J.pool_len = mark;                            /* the strings handed to fn are done with */
        if (rc == 0) rc = nnc_st_next(&J, '}', &more);
    }
    if (rc == 0) {
        nnc_st_ws(&J);
        if (J.p < J.end) rc = nnc_st_syntax(&J, "unexpected bytes after the header object (only space padding may follow it)");
    }
    free(J.pool);
    return rc ? -1 : 0;
}

/* Builds the JSON header for tensors (validated) into sb, padded to a multiple of 8. */
static void rt_st_header(StrBuf *sb, const RtTensor *t, int n, const char *meta)
{
    uint64_t at = 0;
    sb_append(sb, "{");
    if (meta) sb_printf(sb, "\"__metadata__\":%s%s", meta, n ? "," : "");
    for (int i = 0; i < n; i++) {
        uint64_t bytes = (uint64_t)rt_tensor_numel(&t[i]) * 4;
        rt_json_string(sb, t[i].name);
        sb_append(sb, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < t[i].rank; d++) sb_printf(sb, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
        sb_printf(sb, "],\"data_offsets\":[%llu,%llu]}%s", (unsigned long long)at,
                  (unsigned long long)(at + bytes), i + 1 < n ? "," : "");
        at += bytes;
    }
    sb_append(sb, "}");
    while (sb->len % 8) sb_append(sb, " ");
}

/* Validates the arguments of rt_st_write; *total receives the data size. */
static int rt_st_check_args(const char *path, const RtTensor *t, int n, const char *meta,
                            int64_t *total, char *err, size_t errlen)
{
    *total = 0;
    if (n < 0 || (n > 0 && !t)) return RT_FAIL("invalid tensor list (n = %d)", n);
    for (int i = 0; i < n; i++) {
        int64_t bytes = 0;
        if (rt_check_name(path, t[i].name, i, err, errlen) || rt_check_tensor(path, &t[i], i, &bytes, err, errlen))
            return -1;
        if (*total > RT_MAX_BYTES - bytes) return RT_FAIL("the tensors hold more than the 2^40-byte limit");
        *total += bytes;
    }
    return meta ? rt_check_metadata(path, meta, err, errlen) : 0;
}

unsigned char *rt_st_encode(const char *path, const RtTensor *t, int n, const char *meta, size_t *size, char *err,
                            size_t errlen)
{
    int64_t total = 0;
    StrBuf sb = {0};
    nnc_st_header h;
    *size = 0;
    if (rt_check_host(path, err, errlen) || rt_st_check_args(path, t, n, meta, &total, err, errlen)) return NULL;
    rt_st_header(&sb, t, n, meta);
    if (sb.len > NNC_ST_MAX_HEADER) {
        size_t len = sb.len;
        sb_free(&sb);
        RT_FAIL("the header would be %zu bytes, over the 100 MB that readers accept", len);
        return NULL;
    }
    memset(&h, 0, sizeof h);
    if (nnc_st_parse_header_of(&h, path, "file", (const unsigned char *)sb.data, sb.len, 8, (uint64_t)total, err,
                               errlen)) {
        sb_free(&sb);
        return NULL;   /* duplicate names, reported by the reader's own rules */
    }
    nnc_st_header_free(&h);
    unsigned char *buf = rt_st_pack(&sb, t, n, (size_t)total, size);
    sb_free(&sb);
    if (!buf) RT_FAIL("out of memory (%zu bytes)", *size);
    return buf;
}

int rt_st_write(const char *path, const RtTensor *t, int n, const char *meta, char *err, size_t errlen)
{
    size_t size;
    unsigned char *buf = rt_st_encode(path, t, n, meta, &size, err, errlen);
    if (!buf) return -1;
    int rc = nnc_write_file_atomic(path, buf, size);
    int e = errno;
    free(buf);
    return rc ? RT_FAIL("cannot write: %s", strerror(e)) : 0;
}

/* Reads entry e (F32, validated) of the open file s into a new tensor. */
static int rt_st_read_one(const nnc_st_src *s, const nnc_st_header *h, const nnc_st_entry *e, RtTensor *t, char *err,
                          size_t errlen)
{
    char q[512];
    const char *path = s->name;  /* for RT_FAIL */
    uint64_t bytes = e->end - e->begin;
    nnc_st_quote(q, sizeof q, e->name, strlen(e->name));
    if (e->dtype != NNC_ST_F32)
        return RT_FAIL("tensor '%s' has dtype %s; nnc reads F32 tensors only (convert with tensor.float())", q,
                       nnc_st_dtypes[e->dtype].name);
    if (bytes > (uint64_t)RT_MAX_BYTES) return RT_FAIL("tensor '%s' is larger than the 2^40-byte limit", q);
    size_t len = strlen(e->name);
    char *name = malloc(len + 1);
    t->data = malloc(bytes ? (size_t)bytes : 4);
    if (!name || !t->data) { free(name); return RT_FAIL("out of memory reading tensor '%s'", q); }
    memcpy(name, e->name, len + 1);
    t->name = name;
    t->rank = e->rank;
    for (int i = 0; i < e->rank; i++) t->shape[i] = (int64_t)e->shape[i];
    return nnc_st_src_data(s, h, e, t->data, err, errlen);
}

/* nnc_st_open (the generated code's) with a regular-file check first: a FIFO
 * or a character device never reaches fopen, which could block or read for
 * ever. The descriptor checked is the one read, so nothing can be swapped in
 * between. */
static int rt_st_open(const char *path, nnc_st_src *s, nnc_st_header *h, char *err, size_t errlen)
{
    uint64_t hlen = 0;
    const char *why = NULL;
    int64_t size = 0;
    memset(h, 0, sizeof *h);
    memset(s, 0, sizeof *s);
    s->name = path;
    s->noun = "file";
    if (!path) return RT_FAIL("no weights file given");
    int fd = nnc_open_regular(path, &size, &why);
    if (fd < 0) return RT_FAIL("cannot open: %s", why);
    s->f = fdopen(fd, "rb");
    if (!s->f) { close(fd); return RT_FAIL("cannot open: %s", strerror(errno)); }
    if (nnc_st_src_prefix(s, &hlen, err, errlen) || nnc_st_src_header(s, hlen, h, err, errlen)) {
        fclose(s->f);
        s->f = NULL;
        return -1;
    }
    return 0;
}

int rt_st_read(const char *path, RtTensor **tensors, int *n, char *err, size_t errlen)
{
    nnc_st_header h;
    nnc_st_src src;
    int rc = 0;
    *tensors = NULL;
    *n = 0;
    if (rt_check_host(path, err, errlen) || rt_st_open(path, &src, &h, err, errlen)) return -1;
    RtTensor *v = h.n < (size_t)INT_MAX ? calloc(h.n ? h.n : 1, sizeof *v) : NULL;
    if (!v) rc = RT_FAIL("out of memory for %zu tensors", h.n);
    for (size_t i = 0; v && i < h.n && rc == 0; i++)
        rc = rt_st_read_one(&src, &h, &h.entries[i], &v[i], err, errlen);
    if (rc == 0) {
        *tensors = v;
        *n = (int)h.n;
    } else if (v) {
        rt_tensors_free(v, (int)h.n);
    }
    nnc_st_header_free(&h);
    fclose(src.f);
    return rc;
}

int rt_st_names(const char *path, char ***names, int *n, char *err, size_t errlen)
{
    nnc_st_header h;
    nnc_st_src src;
    *names = NULL;
    *n = 0;
    if (rt_check_host(path, err, errlen) || rt_st_open(path, &src, &h, err, errlen)) return -1;
    fclose(src.f);
    size_t bytes = (h.n + 1) * sizeof(char *);
    for (size_t i = 0; i < h.n; i++) bytes += strlen(h.entries[i].name) + 1;
    char **v = h.n < (size_t)INT_MAX ? malloc(bytes) : NULL;
    if (!v) {
        nnc_st_header_free(&h);
        return RT_FAIL("out of memory for %zu names", h.n);
    }
    char *pool = (char *)(v + h.n + 1);
    for (size_t i = 0; i < h.n; i++) {
        size_t len = strlen(h.entries[i].name) + 1;
        v[i] = memcpy(pool, h.entries[i].name, len);
        pool += len;
    }
    v[h.n] = NULL;
    *names = v;
    *n = (int)h.n;
    nnc_st_header_free(&h);
    return 0;
}

/* ---- RNG: splitmix64 seeding xoshiro256** (https://prng.di.unimi.it/) ---- */

static uint64_t rt_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static uint64_t rt_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void rt_rng_seed(RtRng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = rt_splitmix64(&seed);
}

uint64_t rt_rng_next_u64(RtRng *r)
{
    uint64_t *s = r->s, result = rt_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rt_rotl(s[3], 45);
    return result;
}

float rt_rng_uniform(RtRng *r, float lo, float hi)
{
    double u = (double)(rt_rng_next_u64(r) >> 40) * 0x1.0p-24;   /* 24 bits: [0, 1) */
    if (!(hi > lo)) return lo;
    float x = (float)((double)lo + ((double)hi - (double)lo) * u);
    return x < hi ? x : nextafterf(hi, lo);                        /* rounding may reach hi */
}

