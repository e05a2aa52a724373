/* data_prefetch.c: DtPrefetch (data.h), a loader's batches (data_loader.c)
 * made one ahead, so that the next batch is ready when the caller's step ends.
 *
 * Prefetching. DtPrefetch runs dt_next_batch on a reader thread into two slots
 * used in turn: the reader fills slot `fill` when it is empty, the caller takes
 * slot `take` when it is full and hands it back (empty) at its next call. A slot
 * holds a count (DT_SLOT_EMPTY, or dt_next_batch's result); one mutex guards the
 * counts and flags, one condition variable wakes either side. The loader is
 * touched only by the reader while an epoch is active or a batch is being made
 * (busy), and only by the caller otherwise. */
#include "runtime/data.h"

#include "runtime/data_internal.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

enum { DT_SLOT_EMPTY = -2 };   /* a slot's count when no batch is in it */

struct DtPrefetch {
    DtLoader *l;             /* the loader (not owned) */
    int max_batch;           /* samples a batch at most */
    int threaded;            /* the reader thread runs */
    float *images[2];        /* the two slots: max_batch images each */
    int32_t *labels[2];      /* and labels */
    int count[2];            /* DT_SLOT_EMPTY, or what dt_next_batch returned into the slot */
    int fill, take;          /* the slot the reader fills next; the slot the caller takes next */
    int held;                /* the slot the caller has (its last batch), or -1 */
    int active;              /* the reader may fill: an epoch is begun and its end not yet made */
    int busy;                /* the reader is making a batch (outside the lock) */
    int stop;                /* dt_prefetch_free: the reader returns */
    pthread_mutex_t mu;      /* guards count, fill, take, held, active, busy, stop */
    pthread_cond_t cv;       /* signalled on every change of them */
    pthread_t thread;        /* the reader */
    char err[256];           /* the message of the last -1 */
};

/* The reader: fills the next slot whenever it is empty and the epoch goes on. */
static void *dt_reader(void *arg)
{
    DtPrefetch *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && !(p->active && p->count[p->fill] == DT_SLOT_EMPTY)) pthread_cond_wait(&p->cv, &p->mu);
        if (p->stop) break;
        int s = p->fill;
        p->busy = 1;
        pthread_mutex_unlock(&p->mu);
        int n = dt_next_batch(p->l, p->images[s], p->labels[s], p->max_batch);
        pthread_mutex_lock(&p->mu);
        p->busy = 0;
        p->count[s] = n;
        p->fill ^= 1;
        if (n <= 0) p->active = 0;   /* the end of the epoch (or a failure): nothing more to make */
        pthread_cond_broadcast(&p->cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int dt_prefetch_init(DtPrefetch **out, DtLoader *l, int max_batch, int threaded, char *err, size_t errlen)
{
    *out = NULL;
    const char *spec = l->set ? l->set->spec : NULL;
    if (max_batch < 1 || !l->set) return dt_fail(err, errlen, spec, "internal error: prefetcher of batch %d", max_batch);
    DtPrefetch *p = calloc(1, sizeof *p);
    int64_t size = dt_image_size(l->set);
    if (!p) return dt_fail(err, errlen, spec, "out of memory");
    p->l = l;
    p->max_batch = max_batch;
    p->held = -1;
    p->count[0] = p->count[1] = DT_SLOT_EMPTY;
    for (int s = 0; s < (threaded ? 2 : 1); s++) {
        if ((uint64_t)size > SIZE_MAX / sizeof(float) / (size_t)max_batch ||
            !(p->images[s] = malloc((size_t)max_batch * (size_t)size * sizeof(float))) ||
            !(p->labels[s] = malloc((size_t)max_batch * sizeof(int32_t)))) {
            dt_prefetch_free(p);
            return dt_fail(err, errlen, spec, "out of memory for batches of %d images", max_batch);
        }
    }
    if (threaded && pthread_mutex_init(&p->mu, NULL) == 0) {
        if (pthread_cond_init(&p->cv, NULL) != 0) pthread_mutex_destroy(&p->mu);
        else if (pthread_create(&p->thread, NULL, dt_reader, p) != 0) {
            pthread_cond_destroy(&p->cv);
            pthread_mutex_destroy(&p->mu);
        } else
            p->threaded = 1;
    }   /* no thread to be had: the same batches, made on the caller's thread */
    *out = p;
    return 0;
}

int dt_prefetch_threaded(const DtPrefetch *p)
{
    return p->threaded;
}

void dt_prefetch_epoch(DtPrefetch *p, int64_t epoch)
{
    if (!p->threaded) {
        dt_epoch_begin(p->l, epoch);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->active = 0;
    while (p->busy) pthread_cond_wait(&p->cv, &p->mu);   /* the loader is ours again */
    dt_epoch_begin(p->l, epoch);
    p->count[0] = p->count[1] = DT_SLOT_EMPTY;
    p->fill = p->take = 0;
    p->held = -1;
    p->active = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

int dt_prefetch_next(DtPrefetch *p, const float **images, const int32_t **labels)
{
    int n;
    if (!p->threaded) {
        n = dt_next_batch(p->l, p->images[0], p->labels[0], p->max_batch);
        *images = p->images[0], *labels = p->labels[0];
    } else {
        pthread_mutex_lock(&p->mu);
        if (p->held >= 0) {   /* the caller is done with its last batch: the reader may refill it */
            p->count[p->held] = DT_SLOT_EMPTY;
            p->held = -1;
            pthread_cond_broadcast(&p->cv);
        }
        while (p->count[p->take] == DT_SLOT_EMPTY && (p->active || p->busy)) pthread_cond_wait(&p->cv, &p->mu);
        n = p->count[p->take];
        if (n == DT_SLOT_EMPTY) n = p->l->epoch < 0 ? -1 : 0;   /* no epoch begun, or its end already read */
        *images = p->images[p->take], *labels = p->labels[p->take];
        if (n > 0) {
            p->held = p->take;
            p->take ^= 1;
        }
        pthread_mutex_unlock(&p->mu);
    }
    if (n < 0)
        dt_fail(p->err, sizeof p->err, p->l->set->spec, "internal error: no batch to read (no epoch begun?)");
    return n;
}

const char *dt_prefetch_error(const DtPrefetch *p)
{
    return p->err;
}

void dt_prefetch_free(DtPrefetch *p)
{
    if (!p) return;
    if (p->threaded) {
        pthread_mutex_lock(&p->mu);
        p->stop = 1;
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
        pthread_join(p->thread, NULL);
        pthread_cond_destroy(&p->cv);
        pthread_mutex_destroy(&p->mu);
    }
    for (int s = 0; s < 2; s++) {
        free(p->images[s]);
        free(p->labels[s]);
    }
    free(p);
}
