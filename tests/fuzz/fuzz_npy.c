/* fuzz_npy.c: libFuzzer harness for the two .npy readers.
 *
 * nnc reads .npy in two places: rt_npy_read (runtime/tensor_io.c: float32
 * arrays for `nnc run --input`) and the npy:DIR data sets of runtime/data.c
 * (uint8, float32 or float64 images, integer labels), each with its own
 * header parser. Both take paths, so the input goes to a memfd and to files in
 * the harness's folder:
 *
 *   - the whole input is read by rt_npy_read; an array it accepts is written
 *     back with rt_npy_write and read again (for one input in 16, by hash: the
 *     write is atomic, with an fsync), which must give the same shape and bytes;
 *   - the input split at its second "\x93NUMPY" magic (or whole, with an empty
 *     labels file, when there is none) becomes train_images.npy and
 *     train_labels.npy of a data set that dt_open("npy:DIR") loads; a set it
 *     accepts goes through one shuffled epoch of a loader with every
 *     augmentation on.
 *
 * The seeds (corpus/npy/) are small arrays and image + label pairs written by
 * tests/fuzz/make_seeds.py; npy.dict has the header's tokens. */
#include "fuzz_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/data.h"
#include "runtime/tensor_io.h"

static FzFile file;
static char images_path[4200], labels_path[4200], out_path[4200], spec[4200];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fz_file_init(&file, "fuzz.npy");
    const char *dir = fz_tmpdir();
    snprintf(images_path, sizeof images_path, "%s/train_images.npy", dir);
    snprintf(labels_path, sizeof labels_path, "%s/train_labels.npy", dir);
    snprintf(out_path, sizeof out_path, "%s/out.npy", dir);
    snprintf(spec, sizeof spec, "npy:%s", dir);
    return 0;
}

static void round_trip(const RtTensor *t)
{
    char err[1024];
    RtTensor back = {0};
    if (rt_npy_write(out_path, t, err, sizeof err) != 0) fz_die("rt_npy_write of an array rt_npy_read accepted: %s", err);
    if (rt_npy_read(out_path, &back, err, sizeof err) != 0) fz_die("rt_npy_read of what rt_npy_write wrote: %s", err);
    int64_t n = rt_tensor_numel(t);
    if (back.rank != t->rank || memcmp(back.shape, t->shape, sizeof t->shape[0] * (size_t)t->rank) != 0 ||
        (n > 0 && memcmp(back.data, t->data, (size_t)n * 4) != 0))
        fz_die("an array written by rt_npy_write reads back different");
    rt_tensor_free(&back);
}

static void data_set(const uint8_t *data, size_t size)
{
    size_t split = size;
    for (size_t i = 1; i + 6 <= size; i++)
        if (memcmp(data + i, "\x93NUMPY", 6) == 0) {
            split = i;
            break;
        }
    fz_write(images_path, data, split);
    fz_write(labels_path, data + split, size - split);
    DtSet set = {0};
    char err[2048];
    if (dt_open(&set, spec, DT_TRAIN, err, sizeof err) == 0) {
        if (set.n < 1 || set.c < 1 || set.h < 1 || set.w < 1 || set.classes < 1) fz_die("dt_open accepted an empty set");
        for (int64_t i = 0; i < set.n; i++)
            if (set.labels[i] < 0 || set.labels[i] >= set.classes) fz_die("dt_open: label %d of sample %lld is outside [0, %d)", set.labels[i], (long long)i, set.classes);
        DtOptions o = {.shuffle = 1, .seed = 7, .crop_pad = set.h > 1 && set.w > 1 ? 1 : 0, .hflip = 1, .jitter = 0.1f,
                       .norm_count = 1, .mean = {0.5f}, .std = {0.25f}};
        DtLoader l;
        if (dt_loader_init(&l, &set, &o, err, sizeof err) == 0) {
            int64_t image = dt_image_size(&set);
            float *x = malloc((size_t)(4 * image) * sizeof *x);
            int32_t y[4];
            dt_epoch_begin(&l, 0);
            int64_t seen = 0;
            for (int got; (got = dt_next_batch(&l, x, y, 4)) > 0;) seen += got;
            if (seen != set.n) fz_die("an epoch delivered %lld samples of %lld", (long long)seen, (long long)set.n);
            free(x);
            dt_loader_free(&l);
        }
    } else if (!err[0]) {
        fz_die("dt_open failed without a message");
    }
    dt_close(&set);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_begin(data, size);
    fz_file_set(&file, data, size);
    RtTensor t = {0};
    char err[1024];
    if (rt_npy_read(file.path, &t, err, sizeof err) == 0) {
        if (!t.data || rt_tensor_numel(&t) < 0) fz_die("rt_npy_read returned an incomplete tensor");
        if (fz_hash(data, size) % 16 == 0) round_trip(&t);
        rt_tensor_free(&t);
    } else if (!err[0]) {
        fz_die("rt_npy_read failed without a message");
    }
    data_set(data, size);
    return 0;
}
