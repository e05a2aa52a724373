/* data.c: the data sets of `nnc train` and `nnc eval`, read from their files
 * into memory. The loader that makes batches of a set is in data_loader.c,
 * its reader thread in data_prefetch.c. See data.h for the formats, the
 * augmentations and the checkpoint contract.
 *
 * Loading. Each kind is a row of dt_kinds: its name, how to load a split, and how to
 * tell whether the test split exists. Every loader reads whole files (IDX through
 * rt_idx_open/rt_idx_read_rows, which also inflate .gz; CIFAR and .npy through
 * nnc_read_file), checks shapes, counts and labels against what the format
 * promises, and converts the pixels to float32 once, so that batches are plain
 * copies. Sizes are checked before any allocation: a set may hold at most
 * RT_MAX_BYTES of floats. Only regular files are read (nnc_read_file and
 * rt_idx_open refuse a directory, FIFO or device such as /dev/zero before
 * reading), and a file's length bounds what is allocated for it: IDX headers
 * are compared with each other before any data is read, and a gzipped IDX is
 * inflated no further than its header's size.
 *
 * .npy. The header is read by tensor_io's parser (rt_npy_header, the only one);
 * this file takes the dtypes a data set uses from it: float32, float64 and uint8
 * images, and 8- to 64-bit integer labels of either byte order. Elements are
 * decoded byte by byte, so the host's byte order does not matter. */
#include "runtime/data.h"

#include "common/common.h"
#include "runtime/data_internal.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DT_KINDS_TEXT "mnist, fashion-mnist, cifar10, npy"
#define DT_MNIST_FILES "the IDX files train-images-idx3-ubyte, train-labels-idx1-ubyte, " \
                       "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, each plain or gzipped (.gz)"
#define DT_CIFAR_FILES "the CIFAR-10 binary version (data_batch_1.bin ... data_batch_5.bin, test_batch.bin)"
#define DT_NPY_FILES "train_images.npy and train_labels.npy (and optionally test_images.npy, test_labels.npy)"
#define DT_CIFAR_RECORD 3073        /* 1 label byte + 3 x 32 x 32 pixel bytes */
#define DT_PATH_MAX 4096

/* What a loading function needs besides the set: the spec, the directory, and
 * where messages go. */
typedef struct DtCtx {
    const char *spec;   /* "KIND:DIR", the prefix of every message */
    const char *dir;    /* DIR, inside spec */
    const char *kind;   /* the kind's name (static) */
    char *err;          /* message buffer, may be NULL */
    size_t errlen;      /* its size */
} DtCtx;

/* Writes "SPEC: message" into err and returns -1. */
int dt_fail(char *err, size_t errlen, const char *spec, const char *fmt, ...)
{
    if (!err || errlen == 0) return -1;
    int n = snprintf(err, errlen, "%s: ", spec ? spec : "(no data spec)");
    if (n >= 0 && (size_t)n < errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

#define DT_FAIL(C, ...) dt_fail((C)->err, (C)->errlen, (C)->spec, __VA_ARGS__)

/* ---- files ---- */

/* DIR/name into buf; -1 with a message if it does not fit. */
static int dt_join(const DtCtx *C, char *buf, const char *name)
{
    size_t dl = strlen(C->dir);
    const char *sep = dl > 0 && C->dir[dl - 1] == '/' ? "" : "/";
    int n = snprintf(buf, DT_PATH_MAX, "%s%s%s", C->dir, sep, name);
    if (n < 0 || n >= DT_PATH_MAX) return DT_FAIL(C, "directory path is too long (over %d bytes)", DT_PATH_MAX - 100);
    return 0;
}

static int dt_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Reads DIR/name whole; a missing file gets a message naming the kind's files. */
static unsigned char *dt_read(const DtCtx *C, const char *name, const char *expected, char *path, size_t *len)
{
    const char *why = NULL;
    if (dt_join(C, path, name)) return NULL;
    if (!dt_exists(path)) {
        DT_FAIL(C, "%s: no such file; expected %s", path, expected);
        return NULL;
    }
    unsigned char *b = (unsigned char *)nnc_read_file(path, len, &why);
    if (!b) DT_FAIL(C, "%s: cannot read: %s", path, why);
    return b;
}

/* ---- the set ---- */

/* Allocates images and labels for n samples of c x h x w, checking every product. */
static int dt_alloc(const DtCtx *C, DtSet *set, int64_t n, int64_t c, int64_t h, int64_t w, const char *path)
{
    int64_t dims[4] = {n, c, h, w}, numel = 1;
    for (int i = 0; i < 4; i++) {
        if (dims[i] < 1) return DT_FAIL(C, "%s: holds %s; a data set needs at least one sample of at least 1 x 1 pixels",
                                        path, i == 0 ? "no samples" : "images with a zero dimension");
        if (numel > RT_MAX_BYTES / 4 / dims[i])
            return DT_FAIL(C, "%s: %lld images of %lld x %lld x %lld are more than the 2^40-byte limit as float32",
                           path, (long long)n, (long long)c, (long long)h, (long long)w);
        numel *= dims[i];
    }
    set->images = malloc((size_t)numel * sizeof(float));
    set->labels = malloc((size_t)n * sizeof(int32_t));
    if (!set->images || !set->labels)
        return DT_FAIL(C, "out of memory for %lld images (%lld bytes)", (long long)n, (long long)numel * 4);
    set->n = n;
    set->c = c;
    set->h = h;
    set->w = w;
    return 0;
}

int64_t dt_image_size(const DtSet *set)
{
    return set->c * set->h * set->w;
}

/* Copies byte labels, refusing any >= classes. */
static int dt_byte_labels(const DtCtx *C, DtSet *set, int64_t at, const uint8_t *src, int64_t stride, int64_t n,
                          const char *path)
{
    for (int64_t i = 0; i < n; i++) {
        uint8_t v = src[i * stride];
        if (v >= set->classes)
            return DT_FAIL(C, "%s: label %d of sample %lld is out of range; %s labels are 0..%d: is this the right file?",
                           path, v, (long long)i, C->kind, set->classes - 1);
        set->labels[at + i] = v;
    }
    return 0;
}

/* ---- mnist, fashion-mnist: IDX ---- */

/* Finds DIR/name or DIR/name.gz. */
static int dt_find_idx(const DtCtx *C, const char *name, char *path)
{
    char gzname[64], gz[DT_PATH_MAX];
    if (dt_join(C, path, name)) return -1;
    if (dt_exists(path)) return 0;
    snprintf(gzname, sizeof gzname, "%s.gz", name);
    if (dt_join(C, gz, gzname)) return -1;
    if (dt_exists(gz)) { memcpy(path, gz, strlen(gz) + 1); return 0; }
    return DT_FAIL(C, "%s: no such file (nor %s.gz); expected %s", path, name, DT_MNIST_FILES);
}

/* Opens one IDX file of the given rank and reads its header (no data yet). */
static int dt_open_idx(const DtCtx *C, const char *name, int rank, const char *what, RtIdxReader *r, char *path)
{
    char msg[1500];
    if (dt_find_idx(C, name, path)) return -1;
    if (rt_idx_open(r, path, msg, sizeof msg)) return DT_FAIL(C, "%s", msg);
    if (r->rank != rank)
        return DT_FAIL(C, "%s: has %d dimensions, but %s %s have %d (%s)", path, r->rank, C->kind, what, rank,
                       rank == 3 ? "count, rows, columns" : "count");
    return 0;
}

/* Both headers are read and compared before any data: a wrong file ends
 * before its data is inflated. */
static int dt_load_idx(DtSet *set, const DtCtx *C, DtSplit split)
{
    char ipath[DT_PATH_MAX], lpath[DT_PATH_MAX], msg[1500];
    RtIdx im = {0}, lb = {0};
    RtIdxReader ir = {0}, lr = {0};
    int train = split == DT_TRAIN;
    int rc = dt_open_idx(C, train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte", 3, "images", &ir, ipath);
    if (rc == 0)
        rc = dt_open_idx(C, train ? "train-labels-idx1-ubyte" : "t10k-labels-idx1-ubyte", 1, "labels", &lr, lpath);
    if (rc == 0 && ir.dims[0] != lr.dims[0])
        rc = DT_FAIL(C, "%s holds %lld images but %s holds %lld labels; both must come from the same split of one data set",
                     ipath, (long long)ir.dims[0], lpath, (long long)lr.dims[0]);
    if (rc == 0 && rt_idx_read_rows(&lr, -1, &lb, msg, sizeof msg)) rc = DT_FAIL(C, "%s", msg);
    if (rc == 0 && rt_idx_read_rows(&ir, -1, &im, msg, sizeof msg)) rc = DT_FAIL(C, "%s", msg);
    rt_idx_close(&ir);
    rt_idx_close(&lr);
    set->classes = 10;
    if (rc == 0) rc = dt_alloc(C, set, im.dims[0], 1, im.dims[1], im.dims[2], ipath);
    if (rc == 0) rc = dt_byte_labels(C, set, 0, lb.data, 1, set->n, lpath);
    if (rc == 0)
        for (size_t i = 0; i < im.size; i++) set->images[i] = im.data[i] / 255.0f;
    rt_idx_free(&im);
    rt_idx_free(&lb);
    return rc;
}

static int dt_has_test_idx(const DtCtx *C)
{
    char path[DT_PATH_MAX];
    if (dt_join(C, path, "t10k-images-idx3-ubyte")) return 0;
    if (dt_exists(path)) return 1;
    return dt_join(C, path, "t10k-images-idx3-ubyte.gz") == 0 && dt_exists(path);
}

/* ---- cifar10: binary batches ---- */

/* Checks one batch file's size; *records receives its record count. */
static int dt_cifar_size(const DtCtx *C, const char *path, size_t len, int64_t *records)
{
    if (len == 0) return DT_FAIL(C, "%s: file is empty; expected %s", path, DT_CIFAR_FILES);
    if (len % DT_CIFAR_RECORD != 0) {
        if (len % 3074 == 0)
            return DT_FAIL(C, "%s: %zu bytes make whole records of 3074 bytes, as CIFAR-100 has (2 label bytes); cifar10 reads %s",
                           path, len, DT_CIFAR_FILES);
        return DT_FAIL(C, "%s: %zu bytes is not a whole number of 3073-byte records (1 label byte + 3072 pixel bytes, CHW); "
                       "expected %s, not the Python or MATLAB version", path, len, DT_CIFAR_FILES);
    }
    *records = (int64_t)(len / DT_CIFAR_RECORD);
    return 0;
}

static int dt_load_cifar(DtSet *set, const DtCtx *C, DtSplit split)
{
    static const char *const train_files[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                                              "data_batch_4.bin", "data_batch_5.bin"};
    static const char *const test_files[] = {"test_batch.bin"};
    const char *const *files = split == DT_TRAIN ? train_files : test_files;
    int nfiles = split == DT_TRAIN ? 5 : 1;
    unsigned char *data[5] = {0};
    size_t len[5] = {0};
    int64_t records[5] = {0}, total = 0;
    char path[5][DT_PATH_MAX];
    int rc = 0;
    set->classes = 10;
    for (int f = 0; f < nfiles && rc == 0; f++) {
        if (!(data[f] = dt_read(C, files[f], DT_CIFAR_FILES, path[f], &len[f]))) rc = -1;
        if (rc == 0) rc = dt_cifar_size(C, path[f], len[f], &records[f]);
        total += records[f];
    }
    if (rc == 0) rc = dt_alloc(C, set, total, 3, 32, 32, path[0]);
    int64_t at = 0;
    for (int f = 0; f < nfiles && rc == 0; at += records[f], f++) {
        rc = dt_byte_labels(C, set, at, data[f], DT_CIFAR_RECORD, records[f], path[f]);
        for (int64_t r = 0; r < records[f] && rc == 0; r++) {
            const unsigned char *px = data[f] + r * DT_CIFAR_RECORD + 1;
            float *dst = set->images + (at + r) * 3072;
            for (int i = 0; i < 3072; i++) dst[i] = px[i] / 255.0f;
        }
    }
    for (int f = 0; f < nfiles; f++) free(data[f]);
    return rc;
}

static int dt_has_test_cifar(const DtCtx *C)
{
    char path[DT_PATH_MAX];
    return dt_join(C, path, "test_batch.bin") == 0 && dt_exists(path);
}

/* ---- npy: tensor_io's header parser (rt_npy_header), the dtypes of data sets ---- */

typedef struct DtNpy {
    int rank;                        /* dimensions */
    int64_t shape[RT_MAX_RANK];      /* sizes, outermost first */
    int64_t count;                   /* product of shape */
    char type;                       /* NumPy kind letter: 'f', 'i', 'u', ... */
    int bytes;                       /* element size (0: none named) */
    int big;                         /* 1: big-endian elements */
    char descr[40];                  /* the dtype string */
    const unsigned char *data;       /* count * bytes elements */
} DtNpy;

/* Parses the file held in b (len bytes) into a; messages "SPEC: PATH: ...". */
static int dt_npy_parse(const DtCtx *C, const char *path, const unsigned char *b, size_t len, DtNpy *a)
{
    RtNpyHeader h;
    char msg[1024];
    memset(a, 0, sizeof *a);
    if (rt_npy_header(b, len, path, &h, msg, sizeof msg)) return DT_FAIL(C, "%s; save arrays with numpy.save", msg);
    if (h.fortran && h.rank > 1)
        return DT_FAIL(C, "%s: array is in Fortran order; save numpy.ascontiguousarray(a) instead", path);
    a->rank = h.rank;
    memcpy(a->shape, h.shape, sizeof a->shape);
    a->type = h.kind;
    a->bytes = h.bytes;
    a->big = h.big_endian;
    memcpy(a->descr, h.descr, sizeof a->descr);
    a->count = 1;
    for (int i = 0; i < a->rank; i++) {
        if (a->shape[i] != 0 && a->count > RT_MAX_BYTES / 8 / a->shape[i])
            return DT_FAIL(C, "%s: shape is larger than the 2^40-byte limit", path);
        a->count *= a->shape[i];
    }
    a->data = b + h.data_at;
    size_t avail = len - h.data_at;
    if (a->bytes > 0 && (uint64_t)a->count * (uint64_t)a->bytes != avail)
        return DT_FAIL(C, "%s: the shape and dtype '%s' need %lld bytes of data, the file has %zu after the header "
                       "(truncated or trailing data)", path, a->descr, (long long)a->count * a->bytes, avail);
    return 0;
}

/* The integer element i of a ('i' or 'u', 1 to 8 bytes), as int64 (uint64 above INT64_MAX: INT64_MAX). */
static int64_t dt_npy_int(const DtNpy *a, int64_t i)
{
    const unsigned char *p = a->data + i * a->bytes;
    uint64_t v = 0;
    for (int k = 0; k < a->bytes; k++) v |= (uint64_t)p[a->big ? k : a->bytes - 1 - k] << (8 * (a->bytes - 1 - k));
    if (a->type == 'i' && a->bytes < 8 && (v >> (8 * a->bytes - 1)) & 1) v |= ~UINT64_C(0) << (8 * a->bytes);
    if (a->type == 'u' && v > (uint64_t)INT64_MAX) return INT64_MAX;   /* out of range all the same */
    return (int64_t)v;
}

/* The float element i of a ('f', 4 or 8 bytes). */
static float dt_npy_float(const DtNpy *a, int64_t i)
{
    const unsigned char *p = a->data + i * a->bytes;
    uint64_t v = 0;
    for (int k = 0; k < a->bytes; k++) v |= (uint64_t)p[a->big ? a->bytes - 1 - k : k] << (8 * k);
    if (a->bytes == 4) {
        uint32_t u = (uint32_t)v;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    double d;
    memcpy(&d, &v, 8);
    return (float)d;
}

static int dt_npy_images(const DtCtx *C, DtSet *set, const char *path, const DtNpy *a)
{
    int is_float = a->type == 'f' && (a->bytes == 4 || a->bytes == 8);
    int is_byte = a->type == 'u' && a->bytes == 1;
    if (!is_float && !is_byte)
        return DT_FAIL(C, "%s: images have dtype '%s'; nnc reads float32 or float64 images (used as given) or uint8 "
                       "(scaled to [0, 1]): convert with a.astype(numpy.float32)", path, a->descr);
    if (a->rank != 4 && a->rank != 3)
        return DT_FAIL(C, "%s: images have %d dimensions; expected (N, C, H, W), or (N, H, W) for one channel",
                       path, a->rank);
    int c3 = a->rank == 3;
    if (dt_alloc(C, set, a->shape[0], c3 ? 1 : a->shape[1], a->shape[c3 ? 1 : 2], a->shape[c3 ? 2 : 3], path)) return -1;
    for (int64_t i = 0; i < a->count; i++) {
        float v = is_byte ? a->data[i] / 255.0f : dt_npy_float(a, i);
        if (!isfinite(v))
            return DT_FAIL(C, "%s: image %lld holds %s; training needs finite pixels (numpy.nan_to_num can fix them)", path,
                           (long long)(i / dt_image_size(set)), isnan(v) ? "NaN" : "an infinity or a float64 beyond float32");
        set->images[i] = v;
    }
    return 0;
}

static int dt_npy_labels(const DtCtx *C, DtSet *set, const char *path, const DtNpy *a, const char *ipath)
{
    if ((a->type != 'i' && a->type != 'u') || (a->bytes != 1 && a->bytes != 2 && a->bytes != 4 && a->bytes != 8))
        return DT_FAIL(C, "%s: labels have dtype '%s'; labels are integer class indices (int64, int32, uint8 ...): "
                       "convert with labels.astype(numpy.int64)", path, a->descr);
    if (a->rank != 1)
        return DT_FAIL(C, "%s: labels have %d dimensions; expected one, (N,): save labels.reshape(-1)", path, a->rank);
    if (a->shape[0] != set->n)
        return DT_FAIL(C, "%s holds %lld images but %s holds %lld labels; there must be one label per image",
                       ipath, (long long)set->n, path, (long long)a->shape[0]);
    set->classes = 0;
    for (int64_t i = 0; i < set->n; i++) {
        int64_t v = dt_npy_int(a, i);
        if (v < 0 || v >= INT32_MAX)
            return DT_FAIL(C, "%s: label %lld of sample %lld is out of range; labels are class indices 0, 1, ... below 2^31 - 1",
                           path, (long long)v, (long long)i);
        set->labels[i] = (int32_t)v;
        if (v >= set->classes) set->classes = (int32_t)v + 1;
    }
    return 0;
}

static int dt_load_npy(DtSet *set, const DtCtx *C, DtSplit split)
{
    char ipath[DT_PATH_MAX], lpath[DT_PATH_MAX];
    const char *what = split == DT_TRAIN ? DT_NPY_FILES
                                         : "test_images.npy and test_labels.npy for the test split (which npy data may omit)";
    size_t ilen = 0, llen = 0;
    DtNpy im, lb;
    unsigned char *ib = dt_read(C, split == DT_TRAIN ? "train_images.npy" : "test_images.npy", what, ipath, &ilen);
    unsigned char *lbuf = ib ? dt_read(C, split == DT_TRAIN ? "train_labels.npy" : "test_labels.npy", what, lpath, &llen) : NULL;
    int rc = ib && lbuf ? 0 : -1;
    if (rc == 0) rc = dt_npy_parse(C, ipath, ib, ilen, &im);
    if (rc == 0) rc = dt_npy_parse(C, lpath, lbuf, llen, &lb);
    if (rc == 0) rc = dt_npy_images(C, set, ipath, &im);
    if (rc == 0) rc = dt_npy_labels(C, set, lpath, &lb, ipath);
    free(ib);
    free(lbuf);
    return rc;
}

static int dt_has_test_npy(const DtCtx *C)
{
    char path[DT_PATH_MAX];
    return dt_join(C, path, "test_images.npy") == 0 && dt_exists(path);
}

/* ---- kinds ---- */

typedef int (*DtLoadFn)(DtSet *set, const DtCtx *C, DtSplit split);
typedef int (*DtHasTestFn)(const DtCtx *C);

/* name | loads a split | whether the test split exists */
static const struct {
    const char *name;
    DtLoadFn load;
    DtHasTestFn has_test;
} dt_kinds[] = {
    {"mnist",         dt_load_idx,   dt_has_test_idx},
    {"fashion-mnist", dt_load_idx,   dt_has_test_idx},
    {"cifar10",       dt_load_cifar, dt_has_test_cifar},
    {"npy",           dt_load_npy,   dt_has_test_npy},
};

/* Splits spec into a kind (index into dt_kinds) and C->dir, checking the directory. */
static int dt_parse_spec(DtCtx *C, const char *spec, int *kind)
{
    C->spec = spec ? spec : "(null)";
    const char *colon = spec ? strchr(spec, ':') : NULL;
    if (!colon)
        return DT_FAIL(C, "no ':' in the data set name; write KIND:DIR with KIND one of " DT_KINDS_TEXT
                       " (e.g. fashion-mnist:/usr/share/datasets/fashion-mnist)");
    size_t kl = (size_t)(colon - spec);
    for (*kind = 0; *kind < (int)NNC_COUNT(dt_kinds); (*kind)++)
        if (strlen(dt_kinds[*kind].name) == kl && memcmp(dt_kinds[*kind].name, spec, kl) == 0) break;
    if (*kind == (int)NNC_COUNT(dt_kinds))
        return DT_FAIL(C, "unknown data kind '%.*s'; the known kinds are " DT_KINDS_TEXT, (int)(kl > 64 ? 64 : kl), spec);
    C->kind = dt_kinds[*kind].name;
    C->dir = colon + 1;
    if (!*C->dir) return DT_FAIL(C, "no directory after '%s:'; write %s:DIR", C->kind, C->kind);
    struct stat st;
    if (stat(C->dir, &st) != 0)
        return DT_FAIL(C, "%s: %s; write %s:DIR with DIR the directory that holds the data files",
                       C->dir, errno == ENOENT ? "no such directory" : strerror(errno), C->kind);
    if (!S_ISDIR(st.st_mode))
        return DT_FAIL(C, "%s: not a directory; write %s:DIR with DIR the directory that holds the data files",
                       C->dir, C->kind);
    return 0;
}

int dt_open(DtSet *set, const char *spec, DtSplit split, char *err, size_t errlen)
{
    DtCtx C = {.err = err, .errlen = errlen};
    int kind = 0;
    memset(set, 0, sizeof *set);
    if (dt_parse_spec(&C, spec, &kind)) return -1;
    size_t sl = strlen(spec);
    if (!(set->spec = malloc(sl + 1))) return DT_FAIL(&C, "out of memory");
    memcpy(set->spec, spec, sl + 1);
    set->kind = dt_kinds[kind].name;
    set->split = split;
    if (dt_kinds[kind].load(set, &C, split) == 0) return 0;
    dt_close(set);
    return -1;
}

int dt_has_test(const char *spec)
{
    DtCtx C = {0};
    int kind = 0;
    return dt_parse_spec(&C, spec, &kind) == 0 && dt_kinds[kind].has_test(&C);
}

void dt_close(DtSet *set)
{
    if (!set) return;
    free(set->spec);
    free(set->images);
    free(set->labels);
    memset(set, 0, sizeof *set);
}

int dt_check_classes(const DtSet *set, int64_t classes, char *err, size_t errlen)
{
    for (int64_t i = 0; i < set->n; i++)
        if (set->labels[i] >= classes)
            return dt_fail(err, errlen, set->spec, "label %d of sample %lld (%s split) is out of range for a model with "
                           "%lld classes; give the model at least %d outputs", set->labels[i], (long long)i,
                           set->split == DT_TRAIN ? "train" : "test", (long long)classes, set->classes);
    return 0;
}
