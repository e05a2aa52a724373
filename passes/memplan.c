/* memplan.c: greedy-by-size workspace planning (see memplan.h). */
#include "memplan.h"

#include "../common/common.h"

#include <stdlib.h>
#include <string.h>

static int64_t round_up(int64_t x, int64_t align) { return (x + align - 1) & ~(align - 1); }

typedef struct { int64_t size; int32_t first, idx; } Key;

/* Larger first; among equals the earlier-born first, then by index: deterministic. */
static int by_size(const void *a, const void *b)
{
    const Key *x = a, *y = b;
    if (x->size != y->size) return x->size > y->size ? -1 : 1;
    if (x->first != y->first) return x->first < y->first ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

typedef struct { int64_t lo, hi; } Span;

static int by_lo(const void *a, const void *b)
{
    const Span *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static int32_t *sorted_by_size(const MpBuffer *bufs, int32_t n)
{
    Key *keys = nnc_xmalloc((size_t)(n ? n : 1) * sizeof *keys);
    for (int32_t i = 0; i < n; i++) keys[i] = (Key){bufs[i].size, bufs[i].first, i};
    qsort(keys, (size_t)n, sizeof *keys, by_size);
    int32_t *order = nnc_xmalloc((size_t)(n ? n : 1) * sizeof *order);
    for (int32_t i = 0; i < n; i++) order[i] = keys[i].idx;
    free(keys);
    return order;
}

/* One greedy pass in the given order: each buffer at the lowest offset where
 * it overlaps no placed buffer that is live at the same time. */
static int64_t place(MpBuffer *bufs, const int32_t *order, int32_t n, int64_t align, Span *busy)
{
    int64_t total = 0;
    for (int32_t k = 0; k < n; k++) {
        MpBuffer *b = &bufs[order[k]];
        int64_t size = round_up(b->size, align);
        int32_t nb = 0;
        for (int32_t j = 0; j < k; j++) {  /* placed buffers alive at the same time */
            const MpBuffer *p = &bufs[order[j]];
            if (p->first <= b->last && b->first <= p->last && p->size > 0)
                busy[nb++] = (Span){p->offset, p->offset + round_up(p->size, align)};
        }
        qsort(busy, (size_t)nb, sizeof *busy, by_lo);
        int64_t off = 0;
        for (int32_t j = 0; j < nb && size > 0; j++) {
            if (busy[j].lo >= off + size) break;  /* the gap before this span fits */
            if (busy[j].hi > off) off = busy[j].hi;
        }
        b->offset = off;
        if (off + size > total) total = off + size;
    }
    return total;
}

/* Greedy by size first; when that misses the lower bound, greedy in order of
 * birth (which suits chains) and by size x lifetime are tried too, and the
 * smallest plan wins. Each is O(n^2 log n); n is a few thousand at most. */
int64_t mp_plan(MpBuffer *bufs, int32_t n, int64_t align)
{
    int32_t *order = sorted_by_size(bufs, n);
    Span *busy = nnc_xmalloc((size_t)(n ? n : 1) * sizeof *busy);
    int64_t *best_off = nnc_xmalloc((size_t)(n ? n : 1) * sizeof *best_off);
    int64_t best = place(bufs, order, n, align, busy), bound = mp_lower_bound(bufs, n, align);
    for (int32_t i = 0; i < n; i++) best_off[i] = bufs[i].offset;
    for (int h = 0; h < 2 && best > bound; h++) {
        Key *keys = nnc_xmalloc((size_t)(n ? n : 1) * sizeof *keys);
        for (int32_t i = 0; i < n; i++) {
            int64_t life = (int64_t)bufs[i].last - bufs[i].first + 1;
            keys[i] = (Key){h == 0 ? -(int64_t)bufs[i].first : bufs[i].size * life, bufs[i].first, i};
        }
        qsort(keys, (size_t)n, sizeof *keys, by_size);
        for (int32_t i = 0; i < n; i++) order[i] = keys[i].idx;
        free(keys);
        int64_t total = place(bufs, order, n, align, busy);
        if (total < best) {
            best = total;
            for (int32_t i = 0; i < n; i++) best_off[i] = bufs[i].offset;
        }
    }
    for (int32_t i = 0; i < n; i++) bufs[i].offset = best_off[i];
    free(best_off);
    free(busy);
    free(order);
    return best;
}

int64_t mp_lower_bound(const MpBuffer *bufs, int32_t n, int64_t align)
{
    int32_t steps = 0;
    for (int32_t i = 0; i < n; i++)
        if (bufs[i].last + 1 > steps) steps = bufs[i].last + 1;
    int64_t *live = nnc_xcalloc((size_t)steps + 1, sizeof *live), best = 0;
    /* a difference array: +size at first, -size after last */
    for (int32_t i = 0; i < n; i++) {
        live[bufs[i].first] += round_up(bufs[i].size, align);
        live[bufs[i].last + 1] -= round_up(bufs[i].size, align);
    }
    int64_t cur = 0;
    for (int32_t s = 0; s < steps; s++) {
        cur += live[s];
        if (cur > best) best = cur;
    }
    free(live);
    return best;
}
