/* idx.c: IDX files (MNIST, Fashion-MNIST), plain or gzipped, for the nnc
 * tools and the data sets. See tensor_io.h.
 *
 * Bounded reads. IDX files are usually gzipped, so their length is unknown
 * until read: the data buffer grows with the bytes that really arrive, the
 * decompressed stream is read no further than the header's size plus one
 * byte (a gzip bomb costs what its header declares, no more), and a header
 * claiming a terabyte costs nothing until the bytes exist. The file is opened
 * with nnc_open_regular, so a directory, FIFO or device is refused at once. */
#include "runtime/tensor_io.h"
#include "runtime/tensor_io_internal.h"

#include "common/common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

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

