/* tensor_io.c: safetensors, .npy and IDX files for the nnc tools. See tensor_io.h.
 *
 * Reading safetensors goes through runtime/snippets/safetensors_load.c, included
 * below: the parser the generated models carry is the only one in the project, so
 * what the tools accept is exactly what a model accepts. Writing builds the whole file
 * in memory and hands it to nnc_write_file_atomic (temp file + fsync + rename): a
 * reader never sees half a file, and a failed write leaves the old file in place. The
 * header we write is parsed back by the snippet before anything touches the disk,
 * which checks names (duplicates, UTF-8) and metadata with the reader's own rules.
 *
 * Bounded reads. Every file is opened with nnc_open_regular: a directory, a FIFO,
 * /dev/zero or a terminal is refused at once, before a byte is read (a FIFO has
 * no size and would have to be read to its end; nothing here needs one). .npy
 * and IDX are read in two steps, the header and then the data (rt_npy_open,
 * rt_idx_open), so that a caller checks the shape against what it expects
 * (nnc run: the input's declared shape and its batch limit) before any data is
 * read or allocated, and reads only the rows it will use. A .npy header's
 * data size is compared with the file's size before anything is allocated,
 * so a file shorter or longer than its header says is refused naming both
 * sizes. IDX files are usually gzipped, so their length is unknown until
 * read: the data buffer grows with the bytes that really arrive, the
 * decompressed stream is read no further than the header's size plus one
 * byte (a gzip bomb costs what its header declares, no more), and a header
 * claiming a terabyte costs nothing until the bytes exist. */
#include "runtime/tensor_io.h"

#include "common/common.h"
#include "runtime/snippets/safetensors_load.c"

#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <unistd.h>
#include <zlib.h>

#define RT_FAIL(...) nnc_st_fail(err, errlen, path, __VA_ARGS__)

static int rt_check_host(const char *path, char *err, size_t errlen)
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
static const char *rt_tuple_str(char *buf, size_t size, int rank, const int64_t *shape)
{
    size_t o = (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < rank && o < size; i++)
        o += (size_t)snprintf(buf + o, size - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < size) snprintf(buf + o, size - o, rank == 1 ? ",)" : ")");
    return buf;
}

/* Checks a caller's tensor before writing it; *bytes receives its data size. */
static int rt_check_tensor(const char *path, const RtTensor *t, int index, int64_t *bytes,
                           char *err, size_t errlen)
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

int rt_st_write(const char *path, const RtTensor *t, int n, const char *meta, char *err, size_t errlen)
{
    int64_t total = 0;
    StrBuf sb = {0};
    nnc_st_header h;
    if (rt_check_host(path, err, errlen) || rt_st_check_args(path, t, n, meta, &total, err, errlen)) return -1;
    rt_st_header(&sb, t, n, meta);
    if (sb.len > NNC_ST_MAX_HEADER) {
        size_t len = sb.len;
        sb_free(&sb);
        return RT_FAIL("the header would be %zu bytes, over the 100 MB that readers accept", len);
    }
    memset(&h, 0, sizeof h);
    if (nnc_st_parse_header(&h, path, (const unsigned char *)sb.data, sb.len, 8, (uint64_t)total, err, errlen)) {
        sb_free(&sb);
        return -1;   /* duplicate names, reported by the reader's own rules */
    }
    nnc_st_header_free(&h);
    size_t size;
    unsigned char *buf = rt_st_pack(&sb, t, n, (size_t)total, &size);
    if (!buf) { sb_free(&sb); return RT_FAIL("out of memory (%zu bytes)", size); }
    int rc = nnc_write_file_atomic(path, buf, size);
    int e = errno;
    free(buf);
    sb_free(&sb);
    return rc ? RT_FAIL("cannot write: %s", strerror(e)) : 0;
}

/* Reads entry e (F32, validated) of an open file into a new tensor. */
static int rt_st_read_one(FILE *f, const char *path, const nnc_st_header *h, const nnc_st_entry *e,
                          RtTensor *t, char *err, size_t errlen)
{
    char q[512];
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
    return nnc_st_read_data(f, path, h, e, t->data, err, errlen);
}

/* nnc_st_open (the generated code's) with a regular-file check first: a FIFO
 * or a character device never reaches fopen, which could block or read for
 * ever. The descriptor checked is the one read, so nothing can be swapped in
 * between. */
static int rt_st_open(const char *path, FILE **fp, nnc_st_header *h, char *err, size_t errlen)
{
    uint64_t hlen = 0, fsize = 0;
    const char *why = NULL;
    int64_t size = 0;
    memset(h, 0, sizeof *h);
    *fp = NULL;
    if (!path) return RT_FAIL("no weights file given");
    int fd = nnc_open_regular(path, &size, &why);
    if (fd < 0) return RT_FAIL("cannot open: %s", why);
    FILE *f = fdopen(fd, "rb");
    if (!f) { close(fd); return RT_FAIL("cannot open: %s", strerror(errno)); }
    if (nnc_st_read_prefix(f, path, &hlen, &fsize, err, errlen)) { fclose(f); return -1; }
    unsigned char *text = malloc((size_t)hlen + 1);
    if (!text) { fclose(f); return RT_FAIL("out of memory reading the header"); }
    if (fread(text, 1, (size_t)hlen, f) != (size_t)hlen) {
        RT_FAIL("cannot read the header: %s", ferror(f) ? strerror(errno) : "the file shrank while reading");
        free(text);
        fclose(f);
        return -1;
    }
    if (nnc_st_parse_header(h, path, text, (size_t)hlen, 8, fsize - 8 - hlen, err, errlen)) {
        free(text);
        fclose(f);
        return -1;
    }
    h->text = text;
    *fp = f;
    return 0;
}

int rt_st_read(const char *path, RtTensor **tensors, int *n, char *err, size_t errlen)
{
    nnc_st_header h;
    FILE *f = NULL;
    int rc = 0;
    *tensors = NULL;
    *n = 0;
    if (rt_check_host(path, err, errlen) || rt_st_open(path, &f, &h, err, errlen)) return -1;
    RtTensor *v = h.n < (size_t)INT_MAX ? calloc(h.n ? h.n : 1, sizeof *v) : NULL;
    if (!v) rc = RT_FAIL("out of memory for %zu tensors", h.n);
    for (size_t i = 0; v && i < h.n && rc == 0; i++)
        rc = rt_st_read_one(f, path, &h, &h.entries[i], &v[i], err, errlen);
    if (rc == 0) {
        *tensors = v;
        *n = (int)h.n;
    } else if (v) {
        rt_tensors_free(v, (int)h.n);
    }
    nnc_st_header_free(&h);
    fclose(f);
    return rc;
}

int rt_st_names(const char *path, char ***names, int *n, char *err, size_t errlen)
{
    nnc_st_header h;
    FILE *f = NULL;
    *names = NULL;
    *n = 0;
    if (rt_check_host(path, err, errlen) || rt_st_open(path, &f, &h, err, errlen)) return -1;
    fclose(f);
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

/* ---- .npy ----
 * The format (numpy/lib/format.py): "\x93NUMPY", major and minor version bytes, the
 * header length (u16 in 1.0, u32 in 2.0 and 3.0, little-endian), and a header that is
 * a Python dict literal, e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * padded with spaces and a newline; then the raw data. */

/* The header dict being parsed. */
typedef struct {
    const char *path;                /* for messages */
    const char *start, *p, *end;     /* the dict text and the read position */
    size_t base;                     /* file offset of start */
    char *err;                       /* message buffer */
    size_t errlen;                   /* its size */
    const char *descr;               /* the dtype string (not NUL-terminated) */
    size_t descr_len;                /* its length */
    int fortran;                     /* fortran_order, or -1 if absent */
    int rank;                        /* dimensions, or -1 if absent */
    int64_t shape[RT_MAX_RANK];      /* dimensions */
} NpyHeader;

static int npy_syntax(NpyHeader *H, const char *msg)
{
    return nnc_st_fail(H->err, H->errlen, H->path, "header is not a valid dict at byte %zu: %s",
                       H->base + (size_t)(H->p - H->start), msg);
}

static void npy_ws(NpyHeader *H)
{
    while (H->p < H->end && (*H->p == ' ' || *H->p == '\t' || *H->p == '\n' || *H->p == '\r')) H->p++;
}

/* Consumes c after whitespace, if it is there. */
static int npy_accept(NpyHeader *H, char c)
{
    npy_ws(H);
    if (H->p < H->end && *H->p == c) { H->p++; return 1; }
    return 0;
}

/* str := "'" chars "'" | '"' chars '"' (no escapes: numpy writes none) */
static int npy_string(NpyHeader *H, const char **s, size_t *len)
{
    npy_ws(H);
    if (H->p >= H->end || (*H->p != '\'' && *H->p != '"')) return npy_syntax(H, "expected a quoted string");
    char q = *H->p++;
    *s = H->p;
    while (H->p < H->end && *H->p != q) {
        if (*H->p == '\\' || (unsigned char)*H->p < 0x20) return npy_syntax(H, "unsupported character in a string");
        H->p++;
    }
    if (H->p >= H->end) return npy_syntax(H, "unterminated string");
    *len = (size_t)(H->p++ - *s);
    return 0;
}

/* int := digit+ 'L'?   (Python 2 wrote 3L) */
static int npy_int(NpyHeader *H, int64_t *v)
{
    npy_ws(H);
    *v = 0;
    if (H->p >= H->end || *H->p < '0' || *H->p > '9') return npy_syntax(H, "expected a dimension (an integer >= 0)");
    for (; H->p < H->end && *H->p >= '0' && *H->p <= '9'; H->p++) {
        if (*v > (INT64_MAX - 9) / 10) return npy_syntax(H, "dimension is too large");
        *v = *v * 10 + (*H->p - '0');
    }
    if (H->p < H->end && (*H->p == 'L' || *H->p == 'l')) H->p++;
    return 0;
}

/* shape := '(' ')' | '(' int ',' ')' | '(' int (',' int)+ ','? ')' */
static int npy_shape(NpyHeader *H)
{
    int comma = 0;
    if (H->rank >= 0) return npy_syntax(H, "'shape' appears twice");
    if (!npy_accept(H, '(')) return npy_syntax(H, "expected '(' to open the shape tuple");
    H->rank = 0;
    while (!npy_accept(H, ')')) {
        if (H->rank == RT_MAX_RANK) return npy_syntax(H, "shape has more than 8 dimensions; nnc supports at most 8");
        if (npy_int(H, &H->shape[H->rank++])) return -1;
        comma = npy_accept(H, ',');
        npy_ws(H);
        if (!comma && (H->p >= H->end || *H->p != ')')) return npy_syntax(H, "expected ',' or ')' in the shape tuple");
    }
    if (H->rank == 1 && !comma) return npy_syntax(H, "a one-dimensional shape is written (n,), not (n)");
    return 0;
}

/* fortran_order := 'True' | 'False' */
static int npy_bool(NpyHeader *H)
{
    npy_ws(H);
    if (H->fortran >= 0) return npy_syntax(H, "'fortran_order' appears twice");
    if (H->end - H->p >= 4 && memcmp(H->p, "True", 4) == 0) { H->p += 4; H->fortran = 1; return 0; }
    if (H->end - H->p >= 5 && memcmp(H->p, "False", 5) == 0) { H->p += 5; H->fortran = 0; return 0; }
    return npy_syntax(H, "expected True or False for 'fortran_order'");
}

/* One "key: value" of the dict. */
static int npy_member(NpyHeader *H)
{
    const char *key = NULL;
    size_t len = 0;
    char q[128];
    if (npy_string(H, &key, &len)) return -1;
    if (!npy_accept(H, ':')) return npy_syntax(H, "expected ':'");
    if (len == 5 && memcmp(key, "descr", 5) == 0) {
        if (H->descr) return npy_syntax(H, "'descr' appears twice");
        npy_ws(H);
        if (H->p < H->end && *H->p == '[')
            return nnc_st_fail(H->err, H->errlen, H->path, "dtype is a structured (record) dtype; nnc needs float32 ('<f4')");
        return npy_string(H, &H->descr, &H->descr_len);
    }
    if (len == 13 && memcmp(key, "fortran_order", 13) == 0) return npy_bool(H);
    if (len == 5 && memcmp(key, "shape", 5) == 0) return npy_shape(H);
    H->p = key;
    char msg[200];
    snprintf(msg, sizeof msg, "unknown key '%s' (a .npy header has 'descr', 'fortran_order' and 'shape')",
             nnc_st_quote(q, sizeof q, key, len));
    return npy_syntax(H, msg);
}

/* dict := '{' (member (',' member)* ','?)? '}' whitespace* */
static int npy_dict(NpyHeader *H)
{
    if (!npy_accept(H, '{')) return npy_syntax(H, "expected '{'");
    while (!npy_accept(H, '}')) {
        if (npy_member(H)) return -1;
        if (!npy_accept(H, ',')) {
            if (npy_accept(H, '}')) break;
            return npy_syntax(H, "expected ',' or '}'");
        }
    }
    npy_ws(H);
    if (H->p < H->end) return npy_syntax(H, "unexpected bytes after the dict");
    if (!H->descr) return nnc_st_fail(H->err, H->errlen, H->path, "header dict has no 'descr'");
    if (H->fortran < 0) return nnc_st_fail(H->err, H->errlen, H->path, "header dict has no 'fortran_order'");
    if (H->rank < 0) return nnc_st_fail(H->err, H->errlen, H->path, "header dict has no 'shape'");
    return 0;
}

/* The NumPy name of a dtype string such as '<f8', or NULL. */
static const char *npy_dtype_name(const char *d, size_t len)
{
    static const char *const names[][2] = {
        {"f2", "float16"}, {"f4", "float32"}, {"f8", "float64"}, {"f16", "float128"},
        {"i1", "int8"}, {"i2", "int16"}, {"i4", "int32"}, {"i8", "int64"},
        {"u1", "uint8"}, {"u2", "uint16"}, {"u4", "uint32"}, {"u8", "uint64"},
        {"b1", "bool"}, {"c8", "complex64"}, {"c16", "complex128"},
    };
    if (len > 0 && strchr("<>|=", d[0])) { d++; len--; }
    for (size_t i = 0; i < NNC_COUNT(names); i++)
        if (strlen(names[i][0]) == len && memcmp(names[i][0], d, len) == 0) return names[i][1];
    return NULL;
}

/* Accepts '<f4' in C order (or any order for rank <= 1: the bytes are the same). */
static int npy_check_dtype(const NpyHeader *H, const char *path, char *err, size_t errlen)
{
    char q[128], name[64] = "";
    const char *n = npy_dtype_name(H->descr, H->descr_len);
    nnc_st_quote(q, sizeof q, H->descr, H->descr_len);
    if (n) snprintf(name, sizeof name, " (%s%s)", H->descr[0] == '>' ? "big-endian " : "", n);
    if (H->descr_len == 3 && memcmp(H->descr, ">f4", 3) == 0)
        return RT_FAIL("dtype is '%s'%s; nnc needs little-endian float32 ('<f4'): convert with a.astype('<f4')", q, name);
    if (H->descr_len != 3 || memcmp(H->descr, "<f4", 3) != 0)
        return RT_FAIL("dtype is '%s'%s; nnc needs float32 ('<f4'): convert with a.astype(numpy.float32)", q, name);
    if (H->fortran && H->rank > 1)
        return RT_FAIL("array is stored in Fortran order; nnc needs C order: save numpy.ascontiguousarray(a)");
    return 0;
}

/* Checks the magic and version; *hstart and *hlen locate the header dict. */
static int npy_prefix(const unsigned char *b, size_t len, const char *path, size_t *hstart, size_t *hlen,
                      char *err, size_t errlen)
{
    if (len < 6 || memcmp(b, "\x93NUMPY", 6) != 0)
        return RT_FAIL("not a .npy file: it does not start with the magic bytes \\x93NUMPY");
    if (len < 8) return RT_FAIL("file is truncated: it ends inside the .npy version bytes");
    if ((b[6] != 1 && b[6] != 2 && b[6] != 3) || b[7] != 0)
        return RT_FAIL(".npy format version %d.%d is not supported (1.0, 2.0 and 3.0 are)", b[6], b[7]);
    *hstart = b[6] == 1 ? 10 : 12;
    if (len < *hstart) return RT_FAIL("file is truncated: it ends inside the .npy header length");
    *hlen = b[6] == 1 ? (size_t)b[8] | (size_t)b[9] << 8
                      : (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
    if (*hlen > len - *hstart)
        return RT_FAIL("file is truncated: the header is %zu bytes but only %zu follow its length field", *hlen, len - *hstart);
    return 0;
}

/* Parses the magic, version and header dict of an .npy file held in b. */
static int npy_parse(const unsigned char *b, size_t len, const char *path, NpyHeader *H, size_t *data_at,
                     char *err, size_t errlen)
{
    size_t hstart = 0, hlen = 0;
    if (npy_prefix(b, len, path, &hstart, &hlen, err, errlen)) return -1;
    memset(H, 0, sizeof *H);
    H->path = path;
    H->start = H->p = (const char *)b + hstart;
    H->end = H->start + hlen;
    H->base = hstart;
    H->err = err;
    H->errlen = errlen;
    H->fortran = H->rank = -1;
    if (memchr(H->start, 0, hlen)) {
        H->p = memchr(H->start, 0, hlen);
        return npy_syntax(H, "NUL byte in the header");
    }
    *data_at = hstart + hlen;
    return npy_dict(H) || npy_check_dtype(H, path, err, errlen) ? -1 : 0;
}

/* Checks that the data after the header (avail bytes) is exactly what t's shape needs. */
static int npy_check_size(const RtTensor *t, size_t avail, const char *path, char *err, size_t errlen)
{
    char tuple[300];
    int64_t n = rt_tensor_numel(t);
    rt_tuple_str(tuple, sizeof tuple, t->rank, t->shape);
    if (n < 0) return RT_FAIL("shape %s is larger than the 2^40-byte limit", tuple);
    if ((uint64_t)n * 4 > avail)
        return RT_FAIL("data is truncated: shape %s of float32 needs %lld bytes after the header, the file has %zu",
                       tuple, (long long)n * 4, avail);
    if ((uint64_t)n * 4 < avail)
        return RT_FAIL("file has %zu bytes of trailing data after the array (shape %s of float32 takes %lld bytes)",
                       avail - (size_t)n * 4, tuple, (long long)n * 4);
    return 0;
}

/* Reads exactly n bytes at offset at of fd; -1 with a message otherwise. */
static int rt_pread_all(int fd, void *buf, size_t n, uint64_t at, const char *path, char *err, size_t errlen)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (char *)buf + got, n - got, (off_t)(at + got));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return RT_FAIL("cannot read: %s", strerror(errno));
        if (r == 0) return RT_FAIL("the file shrank while being read");
        got += (size_t)r;
    }
    return 0;
}

int rt_npy_open(RtNpyReader *r, const char *path, char *err, size_t errlen)
{
    const char *why = NULL;
    unsigned char pre[12];
    size_t hstart = 0, hlen = 0, at = 0;
    int64_t size = 0;
    NpyHeader H;
    memset(r, 0, sizeof *r);
    r->fd = -1;
    if (rt_check_host(path, err, errlen)) return -1;
    int fd = nnc_open_regular(path, &size, &why);
    if (fd < 0) return RT_FAIL("cannot read: %s", why);
    size_t plen = size < 12 ? (size_t)size : 12;
    /* npy_prefix sees the file's true length but reads only the bytes it has checked exist */
    int rc = rt_pread_all(fd, pre, plen, 0, path, err, errlen);
    if (rc == 0) rc = npy_prefix(pre, (size_t)size, path, &hstart, &hlen, err, errlen);
    if (rc == 0 && hlen > RT_NPY_MAX_HEADER)
        rc = RT_FAIL("the .npy header is %zu bytes, over the %d that nnc reads (numpy writes a few hundred): "
                     "this is not a .npy file of an array", hlen, RT_NPY_MAX_HEADER);
    unsigned char *b = rc == 0 ? malloc(hstart + hlen) : NULL;
    if (rc == 0 && !b) rc = RT_FAIL("out of memory");
    if (rc == 0) rc = rt_pread_all(fd, b, hstart + hlen, 0, path, err, errlen);
    if (rc == 0) rc = npy_parse(b, hstart + hlen, path, &H, &at, err, errlen);
    free(b);
    if (rc) { close(fd); return -1; }
    r->path = path;
    r->fd = fd;
    r->rank = H.rank;
    memcpy(r->shape, H.shape, sizeof r->shape);
    r->data_at = at;
    r->file_size = (uint64_t)size;
    return 0;
}

int rt_npy_read_rows(RtNpyReader *r, int64_t rows, RtTensor *out, char *err, size_t errlen)
{
    const char *path = r->path;
    RtTensor t = {0};
    memset(out, 0, sizeof *out);
    t.rank = r->rank;
    memcpy(t.shape, r->shape, sizeof t.shape);
    /* the whole array must be there, exactly, whatever part of it is read */
    if (npy_check_size(&t, (size_t)(r->file_size - r->data_at), path, err, errlen)) return -1;
    if (r->rank > 0 && rows >= 0 && rows < t.shape[0]) t.shape[0] = rows;
    size_t bytes = (size_t)rt_tensor_numel(&t) * 4;   /* at most the whole array: checked above */
    if (!(t.data = malloc(bytes ? bytes : 4))) return RT_FAIL("out of memory (%zu bytes)", bytes);
    if (rt_pread_all(r->fd, t.data, bytes, r->data_at, path, err, errlen)) {
        free(t.data);
        return -1;
    }
    *out = t;
    return 0;
}

void rt_npy_close(RtNpyReader *r)
{
    if (r->fd >= 0) close(r->fd);
    memset(r, 0, sizeof *r);
    r->fd = -1;
}

int rt_npy_read(const char *path, RtTensor *out, char *err, size_t errlen)
{
    RtNpyReader r;
    memset(out, 0, sizeof *out);
    if (rt_npy_open(&r, path, err, errlen)) return -1;
    int rc = rt_npy_read_rows(&r, -1, out, err, errlen);
    rt_npy_close(&r);
    return rc;
}

int rt_npy_write(const char *path, const RtTensor *t, char *err, size_t errlen)
{
    int64_t bytes = 0;
    char dict[400], tuple[300];
    if (rt_check_host(path, err, errlen) || rt_check_tensor(path, t, -1, &bytes, err, errlen)) return -1;
    int dl = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }",
                      rt_tuple_str(tuple, sizeof tuple, t->rank, t->shape));
    size_t hlen = (size_t)dl + 1;               /* the dict and a newline */
    hlen += (64 - (10 + hlen) % 64) % 64;       /* numpy aligns the data to 64 bytes */
    size_t size = 10 + hlen + (size_t)bytes;
    unsigned char *buf = malloc(size);
    if (!buf) return RT_FAIL("out of memory (%zu bytes)", size);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)(hlen & 0xff);
    buf[9] = (unsigned char)(hlen >> 8);
    memset(buf + 10, ' ', hlen);
    memcpy(buf + 10, dict, (size_t)dl);
    buf[10 + hlen - 1] = '\n';
    if (bytes) memcpy(buf + 10 + hlen, t->data, (size_t)bytes);
    int rc = nnc_write_file_atomic(path, buf, size);
    int e = errno;
    free(buf);
    return rc ? RT_FAIL("cannot write: %s", strerror(e)) : 0;
}

/* ---- IDX ----
 * The format (http://yann.lecun.com/exdb/mnist/): bytes 0 0, an element type byte, a
 * rank byte, the dimensions as big-endian u32, then the elements, row-major. */

/* Reads up to n bytes; returns the count, or -1 on a read or decompression error. */
static int64_t idx_read(gzFile g, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        size_t want = n - got > (1u << 30) ? (1u << 30) : n - got;
        int r = gzread(g, (char *)buf + got, (unsigned)want);
        if (r < 0) return -1;
        if (r == 0) break;
        got += (size_t)r;
    }
    int errnum = Z_OK;
    gzerror(g, &errnum);
    return errnum == Z_OK || errnum == Z_STREAM_END ? (int64_t)got : -1;
}

/* The message for a failed idx_read. */
static int idx_read_error(gzFile g, const char *path, char *err, size_t errlen)
{
    int errnum = Z_OK;
    const char *msg = gzerror(g, &errnum);
    if (errnum == Z_ERRNO) return RT_FAIL("cannot read: %s", strerror(errno));
    return RT_FAIL("gzip data is corrupt or truncated: %s", msg ? msg : "unknown zlib error");
}

static const char *idx_type_name(int type)
{
    switch (type) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "16-bit integer";
    case 0x0C: return "32-bit integer";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    default:   return "not an IDX type";
    }
}

/* Reads and checks the magic and the dimensions. */
static int idx_header(gzFile g, const char *path, RtIdx *out, char *err, size_t errlen)
{
    unsigned char m[4], d[4 * RT_MAX_RANK];
    int64_t got = idx_read(g, m, 4);
    if (got < 0) return idx_read_error(g, path, err, errlen);
    if (got < 4) return RT_FAIL("file is too short to be IDX (%lld bytes; the header alone has at least 8)", (long long)got);
    if (m[0] != 0 || m[1] != 0)
        return RT_FAIL("not an IDX file: it starts with bytes %02x %02x %02x %02x, and IDX files start with 00 00, a type byte and a rank byte",
                       m[0], m[1], m[2], m[3]);
    if (m[2] != 0x08)
        return RT_FAIL("IDX element type is 0x%02X (%s); nnc reads IDX files of unsigned bytes (type 0x08), as MNIST and Fashion-MNIST are",
                       m[2], idx_type_name(m[2]));
    if (m[3] < 1 || m[3] > RT_MAX_RANK) return RT_FAIL("IDX rank is %d; nnc reads 1 to %d dimensions", m[3], RT_MAX_RANK);
    out->rank = m[3];
    got = idx_read(g, d, 4 * (size_t)out->rank);
    if (got < 0) return idx_read_error(g, path, err, errlen);
    if (got < 4 * out->rank) return RT_FAIL("file is truncated inside the IDX dimensions");
    uint64_t size = 1;
    for (int i = 0; i < out->rank; i++) {
        const unsigned char *p = d + 4 * i;
        uint64_t dim = (uint64_t)p[0] << 24 | (uint64_t)p[1] << 16 | (uint64_t)p[2] << 8 | p[3];
        out->dims[i] = (int64_t)dim;
        if (dim != 0 && size > (uint64_t)RT_MAX_BYTES / dim)
            return RT_FAIL("IDX dimensions describe more than the 2^40-byte limit");
        size *= dim;
    }
    out->size = (size_t)size;
    return 0;
}

/* Reads exactly want bytes of data into out->data, growing the buffer with the
 * bytes that arrive (a gzipped file's length is unknown until inflated). */
static int idx_data(gzFile g, const char *path, size_t want, size_t total, RtIdx *out, char *err, size_t errlen)
{
    size_t have = 0, cap = want < (1u << 20) ? want : (1u << 20);
    out->data = malloc(cap ? cap : 1);
    if (!out->data) return RT_FAIL("out of memory");
    while (have < want) {
        if (have == cap) {
            size_t ncap = cap > want / 2 ? want : cap * 2;
            uint8_t *nd = realloc(out->data, ncap);
            if (!nd) return RT_FAIL("out of memory (%zu bytes)", ncap);
            out->data = nd;
            cap = ncap;
        }
        int64_t got = idx_read(g, out->data + have, cap - have);
        if (got < 0) return idx_read_error(g, path, err, errlen);
        if (got == 0)
            return RT_FAIL("data is truncated: the dimensions need %zu bytes of data, the file has %zu", total, have);
        have += (size_t)got;
    }
    return 0;
}

/* Reads the data from `from` to the declared end without keeping it (the rows
 * a caller skipped), then checks that nothing follows: at most total + 1 bytes
 * are ever inflated. */
static int idx_check_rest(gzFile g, const char *path, size_t from, size_t total, char *err, size_t errlen)
{
    unsigned char buf[1 << 16];
    size_t at = from;
    while (at < total) {
        size_t want = total - at < sizeof buf ? total - at : sizeof buf;
        int64_t got = idx_read(g, buf, want);
        if (got < 0) return idx_read_error(g, path, err, errlen);
        if (got == 0)
            return RT_FAIL("data is truncated: the dimensions need %zu bytes of data, the file has %zu", total, at);
        at += (size_t)got;
    }
    int64_t more = idx_read(g, buf, 1);
    if (more < 0) return idx_read_error(g, path, err, errlen);
    if (more > 0)
        return RT_FAIL("file has trailing bytes after the %zu bytes of data its dimensions describe (decompressed)", total);
    return 0;
}

int rt_idx_open(RtIdxReader *r, const char *path, char *err, size_t errlen)
{
    const char *why = NULL;
    int64_t size = 0;
    RtIdx h;
    memset(r, 0, sizeof *r);
    memset(&h, 0, sizeof h);
    int fd = nnc_open_regular(path, &size, &why);
    if (fd < 0) return RT_FAIL("cannot open: %s", why);
    gzFile g = gzdopen(fd, "rb");
    if (!g) { close(fd); return RT_FAIL("cannot open: out of memory"); }
    gzbuffer(g, 1u << 17);
    if (idx_header(g, path, &h, err, errlen)) { gzclose(g); return -1; }
    r->path = path;
    r->gz = g;
    r->plain_data = gzdirect(g) ? size - 4 - 4 * (int64_t)h.rank : -1;
    r->rank = h.rank;
    memcpy(r->dims, h.dims, sizeof r->dims);
    r->size = h.size;
    return 0;
}

int rt_idx_read_rows(RtIdxReader *r, int64_t rows, RtIdx *out, char *err, size_t errlen)
{
    const char *path = r->path;
    memset(out, 0, sizeof *out);
    /* not gzipped: the file's size is known, so its data size is checked first */
    if (r->plain_data >= 0 && r->plain_data < (int64_t)r->size)
        return RT_FAIL("data is truncated: the dimensions need %zu bytes of data, the file has %lld", r->size,
                       (long long)r->plain_data);
    if (r->plain_data > (int64_t)r->size)
        return RT_FAIL("file has trailing bytes: the dimensions describe %zu bytes of data, the file has %lld", r->size,
                       (long long)r->plain_data);
    out->rank = r->rank;
    memcpy(out->dims, r->dims, sizeof out->dims);
    out->size = r->size;
    if (rows >= 0 && rows < out->dims[0]) {
        out->dims[0] = rows;
        out->size = r->dims[0] ? r->size / (size_t)r->dims[0] * (size_t)rows : 0;
    }
    int rc = idx_data(r->gz, path, out->size, r->size, out, err, errlen);
    if (rc == 0) rc = idx_check_rest(r->gz, path, out->size, r->size, err, errlen);
    if (rc) rt_idx_free(out);
    return rc;
}

void rt_idx_close(RtIdxReader *r)
{
    if (r->gz) gzclose((gzFile)r->gz);
    memset(r, 0, sizeof *r);
}

int rt_idx_read(const char *path, RtIdx *out, char *err, size_t errlen)
{
    RtIdxReader r;
    memset(out, 0, sizeof *out);
    if (rt_idx_open(&r, path, err, errlen)) return -1;
    int rc = rt_idx_read_rows(&r, -1, out, err, errlen);
    rt_idx_close(&r);
    return rc;
}

void rt_idx_free(RtIdx *idx)
{
    if (!idx) return;
    free(idx->data);
    memset(idx, 0, sizeof *idx);
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
