/* safetensors_load.c: the safetensors reader that nnc pastes into generated code.
 *
 * Every model source that nnc generates carries this file verbatim (cmake/embed.cmake
 * turns it into a string inside the nnc binary), so that the generated code loads its
 * weights with nothing but libc: no library to install beside it, no version to keep
 * in step. That is why it is C99, all `static`, warning-free under gcc and clang with
 * -Wall -Wextra -pedantic, keeps no global mutable state (two models may load in two
 * threads) and never prints or exits: every failure is a return of -1 with a one-line
 * message "PATH: what is wrong" in the caller's buffer. The nnc tools reuse the same
 * parser by #including this file (runtime/tensor_io.c), so there is one safetensors
 * parser in the project.
 *
 * The format (https://github.com/huggingface/safetensors): 8 bytes of header length N
 * (little-endian u64), N bytes of JSON header, then the data area. The header is an
 * object mapping tensor names to {"dtype", "shape", "data_offsets": [begin, end]}
 * (offsets relative to the data area), plus an optional "__metadata__" object of
 * strings. Any bytes at all may arrive here, so the reader is strict: a complete JSON
 * parser (with a depth limit, UTF-8 validation and \uXXXX escapes), a cap on the
 * header size, every size checked for overflow, duplicate names refused, and the
 * tensors must tile the data area exactly (no overlap, no gap, no trailing bytes, as
 * the reference implementation demands). Positions in messages ("at byte 57", "ends at
 * byte 1234") are offsets in the file, so `xxd -s 57` shows the place.
 *
 * The bytes come from a source (nnc_st_src): a file, read with fopen/fread/fseek (no
 * mmap: portable C99; fseek takes a long, so on platforms where long is 32 bits files
 * over 2 GB are refused with a message), or a span of memory [data, data + size) that a
 * program holds (weights linked into it, or read by the caller), used in place: only
 * the tensors' data is copied, each into its destination. Everything after the first
 * 8 bytes is the same code for both, so memory passes exactly the file's checks; its
 * messages name a label ("<memory>") where a file's name the path, and say "buffer"
 * where a file's say "file".
 * Data is copied as-is, which is right on little-endian hosts only; big-endian hosts
 * get an error rather than wrong weights. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One tensor the model wants: the contract between the code generator and loader. */
typedef struct {
    const char *name;    /* tensor name in the file, e.g. "layer1.0.conv1.weight" */
    int rank;            /* number of dimensions, 0..4 */
    long long shape[4];  /* expected dimensions; the file must match exactly */
    float *dst;          /* where the F32 data goes: room for the product of shape */
} nnc_st_want;

#define NNC_ST_MAX_HEADER (100ull * 1024 * 1024) /* larger headers are not safetensors */
#define NNC_ST_MAX_RANK   8                      /* more dimensions are refused */
#define NNC_ST_MAX_DEPTH  64                     /* JSON nesting limit (the stack) */
#define NNC_ST_F32        0                      /* index of F32 in nnc_st_dtypes */
/* The entry points (nnc_st_load, _load_memory; nnc_st_begin, _begin_memory,
 * _read, _end): a module pastes them all and calls those it needs. */
#if defined(__GNUC__) || defined(__clang__)
#define NNC_ST_ENTRY static __attribute__((unused))
#else
#define NNC_ST_ENTRY static
#endif

/* The safetensors dtypes and their sizes in bits (sub-byte types pack densely).
 * F32 comes first: NNC_ST_F32 is its index. */
static const struct {
    const char *name;  /* as spelled in the header */
    unsigned bits;     /* size of one element */
} nnc_st_dtypes[] = {
    {"F32", 32},    {"BOOL", 8},    {"U8", 8},      {"I8", 8},   {"F8_E5M2", 8},
    {"F8_E4M3", 8}, {"F8_E8M0", 8}, {"I16", 16},    {"U16", 16}, {"F16", 16},
    {"BF16", 16},   {"I32", 32},    {"U32", 32},    {"F64", 64}, {"I64", 64},
    {"U64", 64},    {"C64", 64},    {"F4", 4},      {"F6_E2M3", 6}, {"F6_E3M2", 6},
};

/* One tensor entry of the header, validated against the data area. */
typedef struct {
    const char *name;                 /* decoded, NUL-terminated, in the string pool */
    int dtype;                        /* index into nnc_st_dtypes, -1 while parsing */
    int rank;                         /* number of dimensions, -1 while parsing */
    uint64_t shape[NNC_ST_MAX_RANK];  /* dimensions */
    uint64_t begin, end;              /* data_offsets, relative to the data area */
    int has_offsets;                  /* data_offsets seen (parsing only) */
} nnc_st_entry;

/* A parsed header. Owns everything it points to; release with nnc_st_header_free. */
typedef struct {
    nnc_st_entry *entries;    /* tensors in header order */
    size_t n, cap;            /* entries used and allocated */
    nnc_st_entry **by_name;   /* the entries sorted by name, for lookups */
    char *pool;               /* decoded JSON strings (names point here) */
    unsigned char *text;      /* raw header bytes when read from a file, else NULL (memory: in place) */
    uint64_t data_start;      /* file offset of the data area: 8 + header length */
    uint64_t data_size;       /* bytes in the data area */
} nnc_st_header;

/* The JSON reader: a cursor over the text plus where errors go. */
typedef struct {
    const char *path;                      /* file named in messages */
    const char *what;                      /* "header" or "metadata", for messages */
    const char *noun;                      /* "file" or "buffer", for messages; NULL: "file" */
    const unsigned char *start, *p, *end;  /* the text and the read position */
    uint64_t base;                         /* file offset of start ("at byte N") */
    char *pool;                            /* decoded strings are appended here */
    size_t pool_len;                       /* bytes of pool used */
    char *err;                             /* message buffer, may be NULL */
    size_t errlen;                         /* its size */
} nnc_st_json;

/* What the bytes are called in J's messages. */
static const char *nnc_st_noun(const nnc_st_json *J) { return J->noun ? J->noun : "file"; }

#if defined(__GNUC__)
static int nnc_st_fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
#endif

/* Writes "PATH: message" into err and returns -1, so callers `return nnc_st_fail(..)`. */
static int nnc_st_fail(char *err, size_t errlen, const char *path, const char *fmt, ...)
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

/* Copies a name (any bytes) into buf for a one-line message: control bytes become
 * \xNN and long names are cut after 100 bytes at a character boundary. */
static const char *nnc_st_quote(char *buf, size_t size, const char *s, size_t len)
{
    size_t i, o = 0, shown = len > 100 ? 100 : len;
    while (shown < len && shown > 0 && ((unsigned char)s[shown] & 0xC0) == 0x80) shown--;
    for (i = 0; i < shown && o + 8 < size; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
        else buf[o++] = (char)c;
    }
    if (shown < len && o + 4 < size) { memcpy(buf + o, "...", 3); o += 3; }
    buf[o < size ? o : size - 1] = '\0';
    return buf;
}

/* Formats a shape as "[6, 1, 5, 5]" into buf (size >= 2; cut short if too small). */
static const char *nnc_st_shape_str(char *buf, size_t size, int rank, const uint64_t *dims)
{
    size_t o = 1;
    int i;
    buf[0] = '[';
    buf[1] = '\0';
    for (i = 0; i < rank && o < size; i++)
        o += (size_t)snprintf(buf + o, size - o, "%s%llu", i ? ", " : "", (unsigned long long)dims[i]);
    if (o < size) snprintf(buf + o, size - o, "]");
    return buf;
}

/* Length of the valid UTF-8 sequence at s (no overlong forms, no surrogates, at most
 * U+10FFFF), or 0 if the bytes there are not valid UTF-8. */
static size_t nnc_st_utf8_len(const unsigned char *s, const unsigned char *end)
{
    unsigned c = s[0], n, i;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) { n = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; cp = c & 0x07; }
    else return 0;
    if ((size_t)(end - s) < n) return 0;
    for (i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return 0;
    if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
    return n;
}

static int nnc_st_host_is_little_endian(void)
{
    uint32_t one = 1;
    unsigned char b[4];
    memcpy(b, &one, 4);
    return b[0] == 1;
}

#include "safetensors_json.c"

/* ---- the header ---- */

/* Reports a problem with the header entry of the tensor called name. */
static int nnc_st_bad_entry(nnc_st_json *J, const char *name, const char *detail)
{
    char q[512];
    return nnc_st_fail(J->err, J->errlen, J->path, "tensor '%s' %s",
                       nnc_st_quote(q, sizeof q, name, strlen(name)), detail);
}

/* A non-negative integer for "shape" or "data_offsets". */
static int nnc_st_uint(nnc_st_json *J, const nnc_st_entry *e, const char *key, uint64_t *out)
{
    char detail[160];
    const unsigned char *s;
    int is_uint = 0;
    nnc_st_ws(J);
    s = J->p;
    if (nnc_st_number(J, out, &is_uint)) return -1;
    if (is_uint) return 0;
    snprintf(detail, sizeof detail, "has \"%s\" with %.*s%s: it must hold integers >= 0 (below 2^63)",
             key, (int)(J->p - s > 24 ? 24 : J->p - s), (const char *)s, J->p - s > 24 ? "..." : "");
    return nnc_st_bad_entry(J, e->name, detail);
}

/* shape := '[' (uint (',' uint)*)? ']' */
static int nnc_st_shape(nnc_st_json *J, nnc_st_entry *e)
{
    int more = 0;
    if (e->rank >= 0) return nnc_st_bad_entry(J, e->name, "has \"shape\" twice");
    if (nnc_st_expect(J, '[')) return -1;
    e->rank = 0;
    more = !nnc_st_empty(J, ']');
    while (more) {
        if (e->rank == NNC_ST_MAX_RANK)
            return nnc_st_bad_entry(J, e->name, "has more than 8 dimensions; nnc supports at most 8");
        if (nnc_st_uint(J, e, "shape", &e->shape[e->rank++])) return -1;
        if (nnc_st_next(J, ']', &more)) return -1;
    }
    return 0;
}

/* data_offsets := '[' uint ',' uint ']' */
static int nnc_st_offsets(nnc_st_json *J, nnc_st_entry *e)
{
    int more = 0;
    if (e->has_offsets) return nnc_st_bad_entry(J, e->name, "has \"data_offsets\" twice");
    e->has_offsets = 1;
    if (nnc_st_expect(J, '[') || nnc_st_uint(J, e, "data_offsets", &e->begin)) return -1;
    if (nnc_st_next(J, ']', &more)) return -1;
    if (!more) return nnc_st_bad_entry(J, e->name, "has \"data_offsets\" with 1 number; it must be [begin, end]");
    if (nnc_st_uint(J, e, "data_offsets", &e->end) || nnc_st_next(J, ']', &more)) return -1;
    if (more) return nnc_st_bad_entry(J, e->name, "has \"data_offsets\" with more than 2 numbers; it must be [begin, end]");
    return 0;
}

/* "dtype": one of nnc_st_dtypes. */
static int nnc_st_dtype(nnc_st_json *J, nnc_st_entry *e)
{
    char detail[200], q[128];
    const char *s = NULL;
    size_t len = 0, i;
    if (e->dtype >= 0) return nnc_st_bad_entry(J, e->name, "has \"dtype\" twice");
    if (nnc_st_string(J, &s, &len)) return -1;
    for (i = 0; i < sizeof nnc_st_dtypes / sizeof nnc_st_dtypes[0]; i++)
        if (strlen(nnc_st_dtypes[i].name) == len && memcmp(nnc_st_dtypes[i].name, s, len) == 0) {
            e->dtype = (int)i;
            return 0;
        }
    snprintf(detail, sizeof detail, "has dtype '%s', which is not a safetensors dtype",
             nnc_st_quote(q, sizeof q, s, len));
    return nnc_st_bad_entry(J, e->name, detail);
}

/* entry := '{' ("dtype" | "shape" | "data_offsets" | other) ':' value ... '}' */
static int nnc_st_entry_body(nnc_st_json *J, nnc_st_entry *e)
{
    const char *key = NULL;
    int more = 0, rc;
    if (nnc_st_expect(J, '{')) return -1;
    more = !nnc_st_empty(J, '}');
    while (more) {
        if (nnc_st_string(J, &key, NULL) || nnc_st_expect(J, ':')) return -1;
        if (strcmp(key, "dtype") == 0) rc = nnc_st_dtype(J, e);
        else if (strcmp(key, "shape") == 0) rc = nnc_st_shape(J, e);
        else if (strcmp(key, "data_offsets") == 0) rc = nnc_st_offsets(J, e);
        else rc = nnc_st_value(J, 2);  /* unknown keys are allowed and ignored */
        if (rc || nnc_st_next(J, '}', &more)) return -1;
    }
    if (e->dtype < 0) return nnc_st_bad_entry(J, e->name, "has no \"dtype\"");
    if (e->rank < 0) return nnc_st_bad_entry(J, e->name, "has no \"shape\"");
    if (!e->has_offsets) return nnc_st_bad_entry(J, e->name, "has no \"data_offsets\"");
    return 0;
}

/* metadata := '{' (string ':' string (',' string ':' string)*)? '}'. The spec makes it
 * a text-to-text map, and the reference reader refuses anything else. */
static int nnc_st_metadata(nnc_st_json *J)
{
    int more = 0;
    if (nnc_st_expect(J, '{')) return -1;
    more = !nnc_st_empty(J, '}');
    while (more) {
        if (nnc_st_string(J, NULL, NULL) || nnc_st_expect(J, ':')) return -1;
        nnc_st_ws(J);
        if (J->p < J->end && *J->p != '"') return nnc_st_syntax(J, "__metadata__ values must be strings");
        if (nnc_st_string(J, NULL, NULL) || nnc_st_next(J, '}', &more)) return -1;
    }
    return 0;
}

/* Appends a new entry named name to the header. */
static int nnc_st_add_entry(nnc_st_header *h, nnc_st_json *J, const char *name)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 16;
        nnc_st_entry *ne = cap > SIZE_MAX / sizeof *ne ? NULL : (nnc_st_entry *)realloc(h->entries, cap * sizeof *ne);
        if (!ne) return nnc_st_fail(J->err, J->errlen, J->path, "out of memory reading the header");
        h->entries = ne;
        h->cap = cap;
    }
    memset(&h->entries[h->n], 0, sizeof h->entries[h->n]);
    h->entries[h->n].name = name;
    h->entries[h->n].dtype = -1;
    h->entries[h->n].rank = -1;
    h->n++;
    return 0;
}

/* header := '{' (member (',' member)*)? '}' whitespace*
 * member := "__metadata__" ':' metadata | name ':' entry */
static int nnc_st_members(nnc_st_header *h, nnc_st_json *J)
{
    int more, seen_meta = 0;
    const char *name = NULL;
    size_t len = 0;
    if (nnc_st_expect(J, '{')) return -1;
    more = !nnc_st_empty(J, '}');
    while (more) {
        if (nnc_st_string(J, &name, &len) || nnc_st_expect(J, ':')) return -1;
        if (strlen(name) != len) return nnc_st_bad_entry(J, name, "has a NUL character (\\u0000) in its name");
        if (strcmp(name, "__metadata__") == 0) {
            if (seen_meta++) return nnc_st_fail(J->err, J->errlen, J->path, "header has \"__metadata__\" twice");
            if (nnc_st_metadata(J)) return -1;
        } else if (nnc_st_add_entry(h, J, name) || nnc_st_entry_body(J, &h->entries[h->n - 1])) {
            return -1;
        }
        if (nnc_st_next(J, '}', &more)) return -1;
    }
    nnc_st_ws(J);
    if (J->p < J->end) return nnc_st_syntax(J, "unexpected bytes after the header object (only space padding may follow it)");
    return 0;
}

/* ---- validating the entries against the data area ---- */

/* Bytes of e's data by its dtype and shape; -1 (with a message) on overflow. */
static int nnc_st_entry_bytes(nnc_st_json *J, const nnc_st_entry *e, uint64_t *bytes)
{
    uint64_t count = 1, bits = nnc_st_dtypes[e->dtype].bits;
    int i;
    for (i = 0; i < e->rank; i++) {
        if (e->shape[i] != 0 && count > UINT64_MAX / e->shape[i])
            return nnc_st_bad_entry(J, e->name, "has a shape whose size overflows 64 bits");
        count *= e->shape[i];
    }
    if (count > UINT64_MAX / bits) return nnc_st_bad_entry(J, e->name, "has a shape whose size overflows 64 bits");
    if (count * bits % 8) return nnc_st_bad_entry(J, e->name, "has a sub-byte dtype whose elements do not fill whole bytes");
    *bytes = count * bits / 8;
    return 0;
}

/* Checks that e's data_offsets are ordered, sized for its dtype and shape, and inside
 * the data area. */
static int nnc_st_check_entry(nnc_st_header *h, nnc_st_json *J, const nnc_st_entry *e)
{
    char detail[512], s[200];
    char q[512];
    uint64_t bytes = 0;
    if (e->end < e->begin) {
        snprintf(detail, sizeof detail, "has data_offsets [%llu, %llu], which end before they begin",
                 (unsigned long long)e->begin, (unsigned long long)e->end);
        return nnc_st_bad_entry(J, e->name, detail);
    }
    if (nnc_st_entry_bytes(J, e, &bytes)) return -1;
    if (e->end - e->begin != bytes) {
        snprintf(detail, sizeof detail, "has data_offsets [%llu, %llu] (%llu bytes), but %s of %s takes %llu bytes",
                 (unsigned long long)e->begin, (unsigned long long)e->end, (unsigned long long)(e->end - e->begin),
                 nnc_st_shape_str(s, sizeof s, e->rank, e->shape), nnc_st_dtypes[e->dtype].name,
                 (unsigned long long)bytes);
        return nnc_st_bad_entry(J, e->name, detail);
    }
    if (e->end > h->data_size)
        return nnc_st_fail(J->err, J->errlen, J->path, "%s is truncated: tensor '%s' ends at byte %llu but the %s has %llu",
                           nnc_st_noun(J), nnc_st_quote(q, sizeof q, e->name, strlen(e->name)),
                           (unsigned long long)(h->data_start + e->end), nnc_st_noun(J),
                           (unsigned long long)(h->data_start + h->data_size));
    return 0;
}

static int nnc_st_cmp_name(const void *a, const void *b)
{
    return strcmp((*(nnc_st_entry *const *)a)->name, (*(nnc_st_entry *const *)b)->name);
}

static int nnc_st_cmp_offset(const void *a, const void *b)
{
    const nnc_st_entry *x = *(nnc_st_entry *const *)a, *y = *(nnc_st_entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* Checks that the tensors, sorted by offset in v, tile the data area exactly. */
static int nnc_st_check_tiling(nnc_st_header *h, nnc_st_json *J, nnc_st_entry **v)
{
    char qa[512], qb[512];
    uint64_t at = 0, d = h->data_start;
    size_t i;
    for (i = 0; i < h->n; i++) {
        const nnc_st_entry *e = v[i], *prev = i ? v[i - 1] : NULL;
        if (e->begin < at)
            return nnc_st_fail(J->err, J->errlen, J->path, "tensors '%s' and '%s' overlap: data_offsets [%llu, %llu] and [%llu, %llu]",
                               nnc_st_quote(qa, sizeof qa, prev->name, strlen(prev->name)),
                               nnc_st_quote(qb, sizeof qb, e->name, strlen(e->name)),
                               (unsigned long long)prev->begin, (unsigned long long)prev->end,
                               (unsigned long long)e->begin, (unsigned long long)e->end);
        if (e->begin > at)
            return nnc_st_fail(J->err, J->errlen, J->path, "bytes %llu to %llu of the %s belong to no tensor (a gap in data_offsets before tensor '%s')",
                               (unsigned long long)(d + at), (unsigned long long)(d + e->begin), nnc_st_noun(J),
                               nnc_st_quote(qa, sizeof qa, e->name, strlen(e->name)));
        at = e->end;
    }
    if (at != h->data_size)
        return nnc_st_fail(J->err, J->errlen, J->path, "%s has %llu bytes after the last tensor's data (bytes %llu to %llu belong to no tensor)",
                           nnc_st_noun(J), (unsigned long long)(h->data_size - at), (unsigned long long)(d + at),
                           (unsigned long long)(d + h->data_size));
    return 0;
}

/* Validates all entries, refuses duplicate names and builds h->by_name. */
static int nnc_st_check_entries(nnc_st_header *h, nnc_st_json *J)
{
    size_t i;
    int rc = 0;
    for (i = 0; i < h->n; i++)
        if (nnc_st_check_entry(h, J, &h->entries[i])) return -1;
    h->by_name = (nnc_st_entry **)malloc((h->n ? h->n : 1) * sizeof *h->by_name);
    if (!h->by_name) return nnc_st_fail(J->err, J->errlen, J->path, "out of memory reading the header");
    for (i = 0; i < h->n; i++) h->by_name[i] = &h->entries[i];
    qsort(h->by_name, h->n, sizeof *h->by_name, nnc_st_cmp_name);
    for (i = 1; i < h->n; i++)
        if (strcmp(h->by_name[i - 1]->name, h->by_name[i]->name) == 0)
            return nnc_st_bad_entry(J, h->by_name[i]->name, "appears twice in the header");
    {
        nnc_st_entry **v = (nnc_st_entry **)malloc((h->n ? h->n : 1) * sizeof *v);
        if (!v) return nnc_st_fail(J->err, J->errlen, J->path, "out of memory reading the header");
        memcpy(v, h->by_name, h->n * sizeof *v);
        qsort(v, h->n, sizeof *v, nnc_st_cmp_offset);
        rc = nnc_st_check_tiling(h, J, v);
        free(v);
    }
    return rc;
}

static void nnc_st_header_free(nnc_st_header *h)
{
    free(h->entries);
    free(h->by_name);
    free(h->pool);
    free(h->text);
    memset(h, 0, sizeof *h);
}

/* Parses and validates the header text (len bytes, found at offset base) of a file
 * (noun "file") or buffer ("buffer") whose data area holds data_size bytes. On
 * failure h is freed. */
static int nnc_st_parse_header_of(nnc_st_header *h, const char *path, const char *noun, const unsigned char *text,
                                  size_t len, uint64_t base, uint64_t data_size, char *err, size_t errlen)
{
    nnc_st_json J;
    memset(&J, 0, sizeof J);
    J.path = path;
    J.what = "header";
    J.noun = noun;
    J.start = J.p = text;
    J.end = text + len;
    J.base = base;
    J.err = err;
    J.errlen = errlen;
    h->data_start = base + len;
    h->data_size = data_size;
    h->pool = J.pool = (char *)malloc(len + 1);
    if (!h->pool) return nnc_st_fail(err, errlen, path, "out of memory reading the header (%llu bytes)", (unsigned long long)len);
    if (nnc_st_members(h, &J) || nnc_st_check_entries(h, &J)) {
        nnc_st_header_free(h);
        return -1;
    }
    return 0;
}

/* ---- the source: a file or a span of memory ---- */

/* Where the bytes are. A file is read through f; memory is read in place. */
typedef struct {
    FILE *f;                    /* the open file; NULL: the bytes are in memory */
    const unsigned char *data;  /* memory: the bytes, [data, data + size); not kept past the load */
    uint64_t size;              /* memory: their count; a file: its size, once the prefix is read */
    const char *name;           /* in messages: the path, or a label such as "<memory>" */
    const char *noun;           /* in messages: "file" or "buffer" */
} nnc_st_src;

/* The first 8 bytes of s into b: *got of them (fewer when s is shorter). A file
 * is left positioned after them and its size found; memory knows its size. */
static int nnc_st_src_head(nnc_st_src *s, unsigned char b[8], size_t *got, char *err, size_t errlen)
{
    long size;
    if (!s->f) {
        *got = s->size < 8 ? (size_t)s->size : 8;
        if (*got) memcpy(b, s->data, *got);
        return 0;
    }
    *got = fread(b, 1, 8, s->f);
    if (*got < 8 && ferror(s->f)) return nnc_st_fail(err, errlen, s->name, "cannot read: %s", strerror(errno));
    if (*got < 8) return 0;
    if (fseek(s->f, 0, SEEK_END) != 0 || (size = ftell(s->f)) < 0 || fseek(s->f, 8, SEEK_SET) != 0)
        return nnc_st_fail(err, errlen, s->name, "cannot find the file size (is it a regular file?): %s", strerror(errno));
    s->size = (uint64_t)size;
    if (s->size < 8) return nnc_st_fail(err, errlen, s->name, "the file shrank while being read");
    return 0;
}

/* Reads the length prefix and checks it against the size of s (a file is left
 * positioned after the prefix). */
static int nnc_st_src_prefix(nnc_st_src *s, uint64_t *hlen, char *err, size_t errlen)
{
    unsigned char b[8];
    size_t got = 0;
    int i;
    if (nnc_st_src_head(s, b, &got, err, errlen)) return -1;
    if (got < 8)
        return nnc_st_fail(err, errlen, s->name, "%s is too short to be safetensors (%u bytes; it must start with an 8-byte header length)",
                           s->noun, (unsigned)got);
    for (*hlen = 0, i = 7; i >= 0; i--) *hlen = *hlen << 8 | b[i];
    if (*hlen > NNC_ST_MAX_HEADER)
        return nnc_st_fail(err, errlen, s->name, "header length %llu (bytes 0-7) is over the 100 MB limit: this is not a safetensors file",
                           (unsigned long long)*hlen);
    if (*hlen > s->size - 8)
        return nnc_st_fail(err, errlen, s->name, "header length %llu (bytes 0-7) runs past the end of the %s (%llu bytes): the %s is truncated or not safetensors",
                           (unsigned long long)*hlen, s->noun, (unsigned long long)s->size, s->noun);
    return 0;
}

/* Parses the header of s (its prefix already read: hlen). A file's header is read
 * into h->text; memory's is parsed in place. On failure h is freed. */
static int nnc_st_src_header(nnc_st_src *s, uint64_t hlen, nnc_st_header *h, char *err, size_t errlen)
{
    const unsigned char *text = s->f ? NULL : s->data + 8;
    unsigned char *owned = NULL;
    if (s->f) {
        owned = (unsigned char *)malloc((size_t)hlen + 1);
        if (!owned) return nnc_st_fail(err, errlen, s->name, "out of memory reading the header");
        if (fread(owned, 1, (size_t)hlen, s->f) != (size_t)hlen) {
            nnc_st_fail(err, errlen, s->name, "cannot read the header: %s", ferror(s->f) ? strerror(errno) : "the file shrank while reading");
            free(owned);
            return -1;
        }
        text = owned;
    }
    /* parse_header frees h on failure: keep the text out of it until it succeeds */
    if (nnc_st_parse_header_of(h, s->name, s->noun, text, (size_t)hlen, 8, s->size - 8 - hlen, err, errlen)) {
        free(owned);
        return -1;
    }
    h->text = owned;
    return 0;
}

/* Opens a safetensors file and parses its header. On success *fp is open at no
 * particular position and h must be freed; on failure nothing is left open. */
static int nnc_st_open(const char *path, FILE **fp, nnc_st_header *h, char *err, size_t errlen)
{
    uint64_t hlen = 0;
    nnc_st_src s;
    memset(h, 0, sizeof *h);
    memset(&s, 0, sizeof s);
    *fp = NULL;
    if (!path) return nnc_st_fail(err, errlen, path, "no weights file given");
    s.name = path;
    s.noun = "file";
    s.f = fopen(path, "rb");
    if (!s.f) return nnc_st_fail(err, errlen, path, "cannot open: %s", strerror(errno));
    if (nnc_st_src_prefix(&s, &hlen, err, errlen) || nnc_st_src_header(&s, hlen, h, err, errlen)) {
        fclose(s.f);
        return -1;
    }
    *fp = s.f;
    return 0;
}

/* Finds the entry named name, or NULL. */
static const nnc_st_entry *nnc_st_find(const nnc_st_header *h, const char *name)
{
    size_t lo = 0, hi = h->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(h->by_name[mid]->name, name);
        if (c == 0) return h->by_name[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* Copies the data of entry e (already validated against h) from s into dst. */
static int nnc_st_src_data(const nnc_st_src *s, const nnc_st_header *h, const nnc_st_entry *e, void *dst,
                           char *err, size_t errlen)
{
    char q[512];
    uint64_t at = h->data_start + e->begin, bytes = e->end - e->begin;
    if (bytes == 0) return 0;
    if (!s->f) {  /* the header's checks put every tensor inside [0, size); this keeps memcpy in bounds regardless */
        if (at > s->size || bytes > s->size - at || bytes > (uint64_t)SIZE_MAX)
            return nnc_st_fail(err, errlen, s->name, "tensor '%s' at byte %llu lies past the end of the %s",
                               nnc_st_quote(q, sizeof q, e->name, strlen(e->name)), (unsigned long long)at, s->noun);
        memcpy(dst, s->data + at, (size_t)bytes);
        return 0;
    }
    if (at > (uint64_t)LONG_MAX || bytes > (uint64_t)SIZE_MAX)
        return nnc_st_fail(err, errlen, s->name, "tensor '%s' at byte %llu is beyond what this platform's fseek reaches",
                           nnc_st_quote(q, sizeof q, e->name, strlen(e->name)), (unsigned long long)at);
    if (fseek(s->f, (long)at, SEEK_SET) != 0)
        return nnc_st_fail(err, errlen, s->name, "cannot seek to tensor '%s': %s", nnc_st_quote(q, sizeof q, e->name, strlen(e->name)), strerror(errno));
    if (fread(dst, 1, (size_t)bytes, s->f) != (size_t)bytes)
        return nnc_st_fail(err, errlen, s->name, "cannot read tensor '%s': %s", nnc_st_quote(q, sizeof q, e->name, strlen(e->name)),
                           ferror(s->f) ? strerror(errno) : "the file shrank while reading");
    return 0;
}

/* ---- the loader the generated code calls ---- */

/* Checks one wanted tensor against its entry (or its absence) in the file. */
static int nnc_st_match(const char *path, const nnc_st_header *h, const nnc_st_want *w, int need_dst,
                        const nnc_st_entry **out, char *err, size_t errlen)
{
    char q[512], have[200], want[200];
    uint64_t dims[4];
    int i, same;
    if (!w->name || w->rank < 0 || w->rank > 4)
        return nnc_st_fail(err, errlen, path, "the model's weight list has an entry with no name or a rank outside 0..4");
    for (i = 0; i < w->rank; i++) {
        if (w->shape[i] < 0) return nnc_st_fail(err, errlen, path, "the model's weight list has a negative dimension");
        dims[i] = (uint64_t)w->shape[i];
    }
    nnc_st_quote(q, sizeof q, w->name, strlen(w->name));
    *out = nnc_st_find(h, w->name);
    if (!*out) return nnc_st_fail(err, errlen, path, "tensor '%s' is missing", q);
    if ((*out)->dtype != NNC_ST_F32)
        return nnc_st_fail(err, errlen, path, "tensor '%s' has dtype %s, the model expects F32", q, nnc_st_dtypes[(*out)->dtype].name);
    same = (*out)->rank == w->rank;
    for (i = 0; same && i < w->rank; i++) same = (*out)->shape[i] == dims[i];
    if (!same)
        return nnc_st_fail(err, errlen, path, "tensor '%s' has shape %s, the model expects %s", q,
                           nnc_st_shape_str(have, sizeof have, (*out)->rank, (*out)->shape),
                           nnc_st_shape_str(want, sizeof want, w->rank, dims));
    if (need_dst && !w->dst && (*out)->end > (*out)->begin)
        return nnc_st_fail(err, errlen, path, "the model gave no buffer for tensor '%s'", q);
    return 0;
}

/* A weights source held open (a file, or memory): its header parsed once,
 * tensors read one at a time (a model's create reads the parameters the
 * constants consume only as each constant is made, so they never all sit in
 * memory beside the constants). */
typedef struct {
    nnc_st_src src;    /* where the bytes are; src.f is the open file, if any */
    nnc_st_header h;   /* the parsed header */
    const char *path;  /* the name messages give: the path, or the memory's label */
    int open;          /* 1 between a successful begin and end */
} nnc_st_file;

/* Opens path and parses its header into sf. Returns 0, or -1 with the reason
 * in err (nothing left open). */
NNC_ST_ENTRY int nnc_st_begin(nnc_st_file *sf, const char *path, char *err, size_t errlen)
{
    FILE *f = NULL;
    memset(sf, 0, sizeof *sf);
    sf->path = sf->src.name = path;
    sf->src.noun = "file";
    if (err && errlen) err[0] = '\0';
    if (!nnc_st_host_is_little_endian())
        return nnc_st_fail(err, errlen, path, "this machine is big-endian; the safetensors loader supports little-endian hosts only");
    if (nnc_st_open(path, &f, &sf->h, err, errlen)) return -1;
    sf->src.f = f;
    sf->src.size = sf->h.data_start + sf->h.data_size;  /* what the prefix check found */
    sf->open = 1;
    return 0;
}

/* Parses the header of the safetensors bytes [data, data + size) into sf; label
 * (NULL: "<memory>") names them in messages. The bytes are read in place, so
 * they must stay put until nnc_st_end. Returns 0, or -1 with the reason in err. */
NNC_ST_ENTRY int nnc_st_begin_memory(nnc_st_file *sf, const void *data, size_t size, const char *label, char *err,
                                     size_t errlen)
{
    uint64_t hlen = 0;
    memset(sf, 0, sizeof *sf);
    sf->path = sf->src.name = label ? label : "<memory>";
    sf->src.noun = "buffer";
    sf->src.data = (const unsigned char *)data;
    sf->src.size = (uint64_t)size;
    if (err && errlen) err[0] = '\0';
    if (!nnc_st_host_is_little_endian())
        return nnc_st_fail(err, errlen, sf->path, "this machine is big-endian; the safetensors loader supports little-endian hosts only");
    if (!data)
        return nnc_st_fail(err, errlen, sf->path, "no weights given (the buffer is NULL, size %lu)", (unsigned long)size);
    if (nnc_st_src_prefix(&sf->src, &hlen, err, errlen) || nnc_st_src_header(&sf->src, hlen, &sf->h, err, errlen))
        return -1;
    sf->open = 1;
    return 0;
}

/* Checks one wanted tensor against the source (name, F32, exact shape) and,
 * when w->dst is not NULL, reads its data there. Returns 0, or -1 with a
 * one-line message "PATH: what is wrong" in err. */
NNC_ST_ENTRY int nnc_st_read(nnc_st_file *sf, const nnc_st_want *w, char *err, size_t errlen)
{
    const nnc_st_entry *e = NULL;
    if (nnc_st_match(sf->path, &sf->h, w, 0, &e, err, errlen)) return -1;
    return w->dst ? nnc_st_src_data(&sf->src, &sf->h, e, w->dst, err, errlen) : 0;
}

/* Closes what a begin opened (a zeroed or closed sf: nothing). */
NNC_ST_ENTRY void nnc_st_end(nnc_st_file *sf)
{
    if (sf->open) {
        nnc_st_header_free(&sf->h);
        if (sf->src.f) fclose(sf->src.f);
    }
    memset(sf, 0, sizeof *sf);
}

/* Reads every wanted tensor of a begun sf into its dst, then ends sf. */
static int nnc_st_load_all(nnc_st_file *sf, const nnc_st_want *want, int n_want, char *err, size_t errlen)
{
    const nnc_st_entry *e = NULL;
    int i, rc = 0;
    for (i = 0; i < n_want && rc == 0; i++) {
        rc = nnc_st_match(sf->path, &sf->h, &want[i], 1, &e, err, errlen);
        if (rc == 0) rc = nnc_st_src_data(&sf->src, &sf->h, e, want[i].dst, err, errlen);
    }
    nnc_st_end(sf);
    return rc;
}

/* Loads every wanted tensor from the safetensors file at path into its dst (F32 only;
 * shape must match exactly). Tensors in the file that are not wanted are ignored.
 * Returns 0, or -1 with a one-line message "PATH: what is wrong" in err. */
NNC_ST_ENTRY int nnc_st_load(const char *path, const nnc_st_want *want, int n_want, char *err, size_t errlen)
{
    nnc_st_file sf;
    if (n_want < 0 || (n_want > 0 && !want)) {
        if (err && errlen) err[0] = '\0';
        return nnc_st_fail(err, errlen, path, "the model's weight list is invalid");
    }
    if (nnc_st_begin(&sf, path, err, errlen)) return -1;
    return nnc_st_load_all(&sf, want, n_want, err, errlen);
}

/* nnc_st_load from the safetensors bytes [data, data + size), named label (NULL:
 * "<memory>") in messages. */
NNC_ST_ENTRY int nnc_st_load_memory(const void *data, size_t size, const char *label, const nnc_st_want *want,
                                    int n_want, char *err, size_t errlen)
{
    nnc_st_file sf;
    if (n_want < 0 || (n_want > 0 && !want)) {
        if (err && errlen) err[0] = '\0';
        return nnc_st_fail(err, errlen, label ? label : "<memory>", "the model's weight list is invalid");
    }
    if (nnc_st_begin_memory(&sf, data, size, label, err, errlen)) return -1;
    return nnc_st_load_all(&sf, want, n_want, err, errlen);
}
