/* data.h: training and test data for `nnc train` and `nnc eval`.
 *
 * A data set is named on the command line as KIND:DIR:
 *
 *   mnist:DIR, fashion-mnist:DIR   the four IDX files under their official names,
 *                                  each plain or gzipped (NAME or NAME.gz):
 *                                  train-images-idx3-ubyte, train-labels-idx1-ubyte,
 *                                  t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte
 *   cifar10:DIR                    the CIFAR-10 binary version: data_batch_1.bin ..
 *                                  data_batch_5.bin (train), test_batch.bin (test);
 *                                  records of 1 label byte + 3072 pixel bytes, CHW
 *   npy:DIR                        train_images.npy, train_labels.npy and, optionally,
 *                                  test_images.npy, test_labels.npy
 *
 * dt_open loads one split whole into memory as float32 N x C x H x W plus int32
 * labels: bytes (IDX, CIFAR, uint8 .npy) are scaled to [0, 1] by x / 255; float
 * images (.npy float32 or float64) are used as given. A DtLoader then hands out
 * batches of that set, shuffled or not, normalized and augmented only if asked:
 *
 *   for each sample, in this order (each step only when its option is on):
 *   1. crop     pad the image with crop_pad zeros on every side, then cut an H x W
 *               window at a uniformly random offset: the image moves by (dy, dx),
 *               each uniform in [-crop_pad, crop_pad], and what comes in is zero.
 *   2. flip     with probability 1/2, mirror left-right (x -> W-1-x).
 *   3. jitter   amount a: contrast, then brightness, with uc and ub each uniform in
 *               [-a, a):  x = m + (x - m) * (1 + uc) + ub,  m the mean of the whole
 *               image (all channels) after steps 1 and 2. Nothing is clamped, so
 *               float images outside [0, 1] keep their meaning.
 *   4. normalize  x = (x - mean[c]) / std[c], one pair for every channel or C pairs.
 *
 * Zero padding happens before normalization, as torchvision's RandomCrop before
 * Normalize does: padding is black, not the mean.
 *
 * Randomness and checkpoints. Every random choice comes from RtRng (tensor_io.h),
 * seeded by hashing the options' seed with what the choice is for:
 *   - the order of epoch e is a Fisher-Yates shuffle drawn from (seed, e) alone;
 *   - the augmentation of sample i in epoch e is drawn from (seed, e, i) alone.
 * So nothing random carries over from one batch to the next: batch b of epoch e is
 * a pure function of (set, options, e, b), whatever happened before, and a
 * different batch size reorders nothing. The state of a loader is therefore just
 * (epoch, position): a checkpoint written at the end of epoch e resumes exactly with
 * dt_epoch_begin(l, e + 1), and DtLoaderState restores mid-epoch as well.
 *
 * Errors: every function that can fail returns -1 (or a negative count) with a
 * one-line message in err (errlen bytes; err may be NULL) that starts with the data
 * spec, names the file and what is wrong and says what to do, e.g.
 *   cifar10:/x: /x/data_batch_1.bin: no such file; expected the CIFAR-10 binary
 *   version (data_batch_1.bin ... data_batch_5.bin, test_batch.bin)
 * No file contents can crash the loader: every size is checked before use, and sets
 * over RT_MAX_BYTES of floats are refused. */
#ifndef NNC_RUNTIME_DATA_H
#define NNC_RUNTIME_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "runtime/tensor_io.h"

#define DT_MAX_CHANNELS 64   /* most channels a per-channel --normalize list may give */

typedef enum DtSplit {
    DT_TRAIN,   /* the training split */
    DT_TEST,    /* the test split (t10k-*, test_batch.bin, test_*.npy) */
} DtSplit;

/* One split of a data set, in memory. Owns everything; release with dt_close. */
typedef struct DtSet {
    char *spec;          /* "KIND:DIR" as given, for messages */
    const char *kind;    /* "mnist", "fashion-mnist", "cifar10" or "npy" (static) */
    DtSplit split;       /* which split this is */
    int64_t n;           /* samples, >= 1 */
    int64_t c, h, w;     /* channels, rows, columns of one image, each >= 1 */
    float *images;       /* n * c * h * w floats, sample-major, CHW within a sample */
    int32_t *labels;     /* n labels, each in [0, classes) */
    int32_t classes;     /* 10 for mnist, fashion-mnist, cifar10; max label + 1 for npy */
} DtSet;

/* Loads one split of spec ("KIND:DIR") into *set. On failure *set is left empty
 * (dt_close on it is harmless). */
int dt_open(DtSet *set, const char *spec, DtSplit split, char *err, size_t errlen);

/* 1 if spec names a known kind whose test split's files exist in DIR (for npy,
 * whose test split is optional: test_images.npy), else 0. Reads no data. */
int dt_has_test(const char *spec);

void dt_close(DtSet *set);   /* frees everything, clears set */

/* Floats in one image: c * h * w. */
int64_t dt_image_size(const DtSet *set);

/* Checks that every label fits a model with `classes` outputs, e.g.
 * "npy:/d: label 12 of sample 7 is out of range for a model with 10 classes". */
int dt_check_classes(const DtSet *set, int64_t classes, char *err, size_t errlen);

/* ---- batches ---- */

/* What a loader does to the set. All zero (memset or {0}) means: file order, no
 * normalization, no augmentation, which is what evaluation wants. */
typedef struct DtOptions {
    int shuffle;                   /* 1: a new order every epoch; 0: file order */
    uint64_t seed;                 /* seeds the order and the augmentation */
    int norm_count;                /* 0: no normalization; 1: mean[0], std[0] for every channel; C: one pair each */
    float mean[DT_MAX_CHANNELS];   /* subtracted, per channel */
    float std[DT_MAX_CHANNELS];    /* then divided by, per channel; > 0 */
    int crop_pad;                  /* 0: off; P >= 1: zero-pad P, random crop back to H x W (P <= H, W) */
    int hflip;                     /* 1: mirror left-right with probability 1/2 */
    float jitter;                  /* 0: off; a in (0, 1]: brightness and contrast jitter of amount a */
} DtOptions;

/* Parses a --normalize value: 2k comma-separated numbers, the k means then the k
 * standard deviations, k = 1 (every channel) or the number of channels ("0.5,0.25";
 * "0.49,0.48,0.45,0.25,0.24,0.26"). Stds must be > 0; k is checked against the
 * set's channels by dt_loader_init. Messages start with "--normalize 'TEXT'". */
int dt_parse_normalize(const char *text, DtOptions *opt, char *err, size_t errlen);

/* A loader: a set, options and a position. Only through the functions below. */
typedef struct DtLoader {
    const DtSet *set;    /* not owned; must outlive the loader */
    DtOptions opt;       /* copied at init */
    int64_t *order;      /* order[p] = sample delivered at position p of this epoch */
    int64_t epoch;       /* the epoch in progress (first: 0), -1 before dt_epoch_begin */
    int64_t pos;         /* samples of this epoch already delivered */
} DtLoader;

/* The loader's whole state, plain data, to store in a checkpoint. */
typedef struct DtLoaderState {
    uint64_t seed;       /* the options' seed, checked on restore */
    int64_t epoch;       /* the epoch in progress */
    int64_t pos;         /* samples of it already delivered */
} DtLoaderState;

/* Checks opt against set (normalize count, crop_pad, jitter) and prepares a loader.
 * Call dt_epoch_begin before the first batch. */
int dt_loader_init(DtLoader *l, const DtSet *set, const DtOptions *opt, char *err, size_t errlen);
void dt_loader_free(DtLoader *l);   /* frees the order, clears l; not the set */

/* Starts epoch `epoch` (>= 0): its order (from (seed, epoch) if shuffling), position 0. */
void dt_epoch_begin(DtLoader *l, int64_t epoch);

/* Writes the next min(max_batch, samples left) images (max_batch * dt_image_size
 * floats must fit in images) and labels, and returns how many: max_batch until the
 * last batch of the epoch, which has n % max_batch samples if that is not 0, then 0
 * at the end of the epoch. Returns -1 if max_batch < 1 or no epoch was begun. */
int dt_next_batch(DtLoader *l, float *images, int32_t *labels, int max_batch);

/* Batches in one epoch of batch size `batch` (>= 1): ceil(n / batch). */
int64_t dt_batches_per_epoch(const DtLoader *l, int batch);

void dt_loader_save(const DtLoader *l, DtLoaderState *s);
/* Restores a saved state into a loader made with the same set and options; the
 * following batches are exactly those the saved loader would have given. Refuses a
 * state of another seed or a position past the set. */
int dt_loader_restore(DtLoader *l, const DtLoaderState *s, char *err, size_t errlen);

/* ---- prefetching ---- */

/* A loader's batches made one ahead, on a thread of the prefetcher's own: while
 * the caller trains on batch b, the reader thread gathers, augments and
 * normalizes batch b + 1 into a second buffer (double buffering, a mutex and a
 * condition variable). The batches are the loader's, bit for bit and in its
 * order: each is a pure function of (set, options, epoch, batch), so which thread
 * makes it changes nothing. Without a thread (threaded 0, or when none can be
 * started) dt_prefetch_next makes each batch itself, through the same calls.
 *
 *   DtPrefetch *p;
 *   dt_prefetch_init(&p, &loader, batch, 1, err, errlen);
 *   dt_prefetch_epoch(p, e);                     // dt_epoch_begin, then the reader starts
 *   while ((n = dt_prefetch_next(p, &images, &labels)) > 0) ... use images, labels ...
 *   dt_prefetch_free(p);                         // stops and joins the reader
 *
 * The pointers dt_prefetch_next gives stay valid until the next call of
 * dt_prefetch_next, dt_prefetch_epoch or dt_prefetch_free. The loader is the
 * reader's between dt_prefetch_epoch and the end of that epoch: do not call it
 * directly meanwhile. The set lives in memory (dt_open reads it whole), so the
 * reader does no I/O; a batch it cannot make (dt_next_batch's -1) comes back as
 * -1 from dt_prefetch_next with a message in the prefetcher's error text. */
typedef struct DtPrefetch DtPrefetch;

/* Prepares a prefetcher of batches of up to max_batch (>= 1) samples of l (which
 * must outlive it); threaded 1 starts the reader thread. Returns -1 with a
 * message when out of memory. */
int dt_prefetch_init(DtPrefetch **p, DtLoader *l, int max_batch, int threaded, char *err, size_t errlen);

/* Whether the reader thread runs (0: batches are made on the caller's thread). */
int dt_prefetch_threaded(const DtPrefetch *p);

/* Starts epoch `epoch` of the loader (dt_epoch_begin) and, threaded, the reading of
 * its first batch. Waits for a batch being made for the previous epoch. */
void dt_prefetch_epoch(DtPrefetch *p, int64_t epoch);

/* The next batch: its count (as dt_next_batch: max_batch until the last batch, then
 * 0 at the end of the epoch) with *images and *labels pointing at it, or -1 with
 * the message in dt_prefetch_error. */
int dt_prefetch_next(DtPrefetch *p, const float **images, const int32_t **labels);

/* The message of the last -1 of dt_prefetch_next. */
const char *dt_prefetch_error(const DtPrefetch *p);

/* Stops the reader (after the batch it is making), joins it, frees everything. NULL is fine. */
void dt_prefetch_free(DtPrefetch *p);

#endif
