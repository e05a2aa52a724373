/* npy.c: NumPy .npy files for the nnc tools and the data sets. See tensor_io.h.
 *
 * The one .npy parser of nnc: rt_npy_header reads the magic, the version and
 * the header dict of any dtype (runtime/data.c takes uint8, float64 and
 * integer labels from it); rt_npy_open adds the check for float32 in C order
 * that the tools need. .npy is read in two steps, the header and then the data
 * (rt_npy_open, rt_npy_read_rows), so that a caller checks the shape against
 * what it expects (nnc run: the input's declared shape and its batch limit)
 * before any data is read or allocated, and reads only the rows it will use.
 * A header's data size is compared with the file's size before anything is
 * allocated, so a file shorter or longer than its header says is refused
 * naming both sizes. */
#include "runtime/tensor_io.h"
#include "runtime/tensor_io_internal.h"

#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    return rt_fail(H->err, H->errlen, H->path, "header is not a valid dict at byte %zu: %s",
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
            return rt_fail(H->err, H->errlen, H->path, "dtype is a structured (record) dtype; nnc reads arrays of plain numbers");
        return npy_string(H, &H->descr, &H->descr_len);
    }
    if (len == 13 && memcmp(key, "fortran_order", 13) == 0) return npy_bool(H);
    if (len == 5 && memcmp(key, "shape", 5) == 0) return npy_shape(H);
    H->p = key;
    char msg[200];
    snprintf(msg, sizeof msg, "unknown key '%s' (a .npy header has 'descr', 'fortran_order' and 'shape')",
             rt_quote(q, sizeof q, key, len));
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
    if (!H->descr) return rt_fail(H->err, H->errlen, H->path, "header dict has no 'descr'");
    if (H->fortran < 0) return rt_fail(H->err, H->errlen, H->path, "header dict has no 'fortran_order'");
    if (H->rank < 0) return rt_fail(H->err, H->errlen, H->path, "header dict has no 'shape'");
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
    rt_quote(q, sizeof q, H->descr, H->descr_len);
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

/* Parses the magic, version and header dict of an .npy file held in b (any dtype). */
static int npy_parse_dict(const unsigned char *b, size_t len, const char *path, NpyHeader *H, size_t *data_at,
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
    return npy_dict(H);
}

/* The same, for float32 in C order only. */
static int npy_parse(const unsigned char *b, size_t len, const char *path, NpyHeader *H, size_t *data_at,
                     char *err, size_t errlen)
{
    return npy_parse_dict(b, len, path, H, data_at, err, errlen) || npy_check_dtype(H, path, err, errlen) ? -1 : 0;
}

int rt_npy_header(const unsigned char *b, size_t len, const char *path, RtNpyHeader *h, char *err, size_t errlen)
{
    NpyHeader H;
    memset(h, 0, sizeof *h);
    if (npy_parse_dict(b, len, path, &H, &h->data_at, err, errlen)) return -1;
    h->rank = H.rank;
    memcpy(h->shape, H.shape, sizeof h->shape);
    h->fortran = H.fortran;
    size_t n = H.descr_len < sizeof h->descr - 1 ? H.descr_len : sizeof h->descr - 1;
    memcpy(h->descr, H.descr, n);
    h->descr[n] = 0;
    /* [<>|=]? kind-letter digits, e.g. '<f4', '|u1' */
    const char *d = h->descr;
    h->big_endian = *d == '>';
    if (*d && strchr("<>|=", *d)) d++;
    h->kind = *d;
    if (*d) d++;
    char *end = NULL;
    long bytes = strtol(d, &end, 10);
    h->bytes = d[0] >= '0' && d[0] <= '9' && *end == 0 && bytes > 0 && bytes <= 16 ? (int)bytes : 0;
    return 0;
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

