/* memplan.c: greedy-by-size workspace planning (see memplan.h). */
#include "memplan.h"

#include "../common/common.h"

#include <stdbool.h>
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


/* One greedy pass in the given order: each buffer goes into a gap between the
 * placed buffers live at the same time: the lowest gap that fits (first fit),
 * or the smallest (best fit; the open space above all of them counts as
 * unbounded). */
static int64_t place(MpBuffer *bufs, const int32_t *order, int32_t n, int64_t align, Span *busy, bool best_fit)
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
        int64_t off = -1, best_gap = INT64_MAX, end = 0;
        for (int32_t j = 0; j <= nb && size > 0; j++) {
            int64_t lo = end, hi = j < nb ? busy[j].lo : INT64_MAX;
            if (hi - lo >= size && (off < 0 || (best_fit && hi - lo < best_gap))) {
                off = lo;
                best_gap = hi - lo;
                if (!best_fit) break;
            }
            if (j < nb && busy[j].hi > end) end = busy[j].hi;
        }
        b->offset = off < 0 ? 0 : off;
        if (b->offset + size > total) total = b->offset + size;
    }
    return total;
}

enum { MP_RANDOM_TRIES = 64 };

/* Greedy placement under several orders (by size, by birth, by size x
 * lifetime, by lifetime, buffers that outlive their step before one-step ones
 * such as convolution scratch), then sizes jittered at random with a fixed
 * seed (which escapes the ties that trap plain greedy on ResNet-50), each with
 * both fit rules; the smallest plan wins, and the
 * search stops as soon as one meets the lower bound. Each try is
 * O(n^2 log n); n is a few thousand at most. */
int64_t mp_plan(MpBuffer *bufs, int32_t n, int64_t align)
{
    int32_t *order = nnc_xmalloc((size_t)(n ? n : 1) * sizeof *order);
    Key *keys = nnc_xmalloc((size_t)(n ? n : 1) * sizeof *keys);
    Span *busy = nnc_xmalloc((size_t)(n ? n : 1) * sizeof *busy);
    int64_t *best_off = nnc_xmalloc((size_t)(n ? n : 1) * sizeof *best_off);
    int64_t best = INT64_MAX, bound = mp_lower_bound(bufs, n, align);
    uint64_t rng = 0x9e3779b97f4a7c15ull;  /* fixed seed: the same graph always gets the same plan */
    for (int h = 0; h < 10 + 2 * MP_RANDOM_TRIES && best > bound; h++) {
        for (int32_t i = 0; i < n; i++) {
            int64_t life = (int64_t)bufs[i].last - bufs[i].first + 1, key;
            if (h >= 10) {  /* size, jittered by a factor in [0.5, 1.5): other orders of near-equal sizes */
                rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
                key = (int64_t)((double)bufs[i].size * (0.5 + (double)(rng >> 11) / 9007199254740992.0));
                keys[i] = (Key){key, bufs[i].first, i};
                continue;
            }
            switch (h / 2) {
            case 0: key = bufs[i].size; break;
            case 1: key = -(int64_t)bufs[i].first; break;
            case 2: key = bufs[i].size * life; break;
            case 3: key = life; break;
            default: key = bufs[i].size + (life > 1 ? ((int64_t)1 << 52) : 0); break;  /* long-lived first */
            }
            keys[i] = (Key){key, bufs[i].first, i};
        }
        qsort(keys, (size_t)n, sizeof *keys, by_size);
        for (int32_t i = 0; i < n; i++) order[i] = keys[i].idx;
        int64_t total = place(bufs, order, n, align, busy, h % 2 == 1);
        if (total < best) {
            best = total;
            for (int32_t i = 0; i < n; i++) best_off[i] = bufs[i].offset;
        }
    }
    for (int32_t i = 0; i < n; i++) bufs[i].offset = best_off[i];
    free(best_off);
    free(busy);
    free(keys);
    free(order);
    return n ? best : 0;
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
