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

/* ------------------------------------------------ sets of byte ranges ---- */

/* A set of disjoint byte ranges [lo, hi), ranges that touch merged into one:
 * a treap keyed by lo whose nodes live in one pool shared by all the sets
 * (indices; 0 is the empty tree). Each node also knows its subtree's first
 * byte, end and largest gap between two of its ranges, so the first gap of
 * some size is found without visiting the smaller ones. Adding a range is
 * O(log n) amortized (a range merged away is freed once); the queries are
 * O(log n). */
typedef struct {
    int64_t lo, hi;      /* the range */
    int64_t min_lo;      /* the subtree's: first byte, */
    int64_t max_hi;      /* ... end of its last range, */
    int64_t max_gap;     /* ... largest gap between two of its ranges (0: none) */
    int32_t kid[2];      /* the ranges before it, after it */
    uint32_t prio;       /* heap order: a parent's is at least its children's */
} SetNode;

typedef struct {
    SetNode *node;       /* node[0] stands for the empty tree */
    int32_t n, cap;      /* nodes used, allocated */
    int32_t free_list;   /* freed nodes, linked through kid[0] */
    uint32_t rng;        /* priorities: a fixed sequence, so runs repeat */
} SetPool;

static int32_t set_new(SetPool *p, int64_t lo, int64_t hi)
{
    int32_t i = p->free_list;
    if (i) {
        p->free_list = p->node[i].kid[0];
    } else {
        if (p->n == p->cap) {
            p->cap *= 2;
            p->node = nnc_xrealloc(p->node, (size_t)p->cap * sizeof *p->node);
        }
        i = p->n++;
    }
    p->rng ^= p->rng << 13, p->rng ^= p->rng >> 17, p->rng ^= p->rng << 5;
    p->node[i] = (SetNode){lo, hi, lo, hi, 0, {0, 0}, p->rng};
    return i;
}

/* Recomputes t's subtree summary from its children's. */
static void set_pull(SetPool *p, int32_t t)
{
    SetNode *n = &p->node[t];
    const SetNode *l = n->kid[0] ? &p->node[n->kid[0]] : NULL, *r = n->kid[1] ? &p->node[n->kid[1]] : NULL;
    n->min_lo = l ? l->min_lo : n->lo;
    n->max_hi = r ? r->max_hi : n->hi;
    n->max_gap = 0;
    if (l && l->max_gap > n->max_gap) n->max_gap = l->max_gap;
    if (l && n->lo - l->max_hi > n->max_gap) n->max_gap = n->lo - l->max_hi;
    if (r && r->max_gap > n->max_gap) n->max_gap = r->max_gap;
    if (r && r->min_lo - n->hi > n->max_gap) n->max_gap = r->min_lo - n->hi;
}

/* Returns every node of tree t to the pool. */
static void set_free(SetPool *p, int32_t t)
{
    while (t) {  /* down the left spine in a loop, right subtrees by recursion: depth O(log n) */
        set_free(p, p->node[t].kid[1]);
        int32_t left = p->node[t].kid[0];
        p->node[t].kid[0] = p->free_list;
        p->free_list = t;
        t = left;
    }
}

/* Splits t into the ranges with lo < key (*a) and the others (*b). */
static void set_split(SetPool *p, int32_t t, int64_t key, int32_t *a, int32_t *b)
{
    if (!t) {
        *a = *b = 0;
    } else if (p->node[t].lo < key) {
        int32_t right;
        set_split(p, p->node[t].kid[1], key, &right, b);
        p->node[t].kid[1] = right;
        set_pull(p, t);
        *a = t;
    } else {
        int32_t left;
        set_split(p, p->node[t].kid[0], key, a, &left);
        p->node[t].kid[0] = left;
        set_pull(p, t);
        *b = t;
    }
}

/* Joins a and b, every range of a before every range of b. */
static int32_t set_join(SetPool *p, int32_t a, int32_t b)
{
    if (!a || !b) return a ? a : b;
    if (p->node[a].prio >= p->node[b].prio) {
        int32_t right = set_join(p, p->node[a].kid[1], b);
        p->node[a].kid[1] = right;
        set_pull(p, a);
        return a;
    }
    int32_t left = set_join(p, a, p->node[b].kid[0]);
    p->node[b].kid[0] = left;
    set_pull(p, b);
    return b;
}

static int32_t set_last(const SetPool *p, int32_t t)
{
    while (t && p->node[t].kid[1]) t = p->node[t].kid[1];
    return t;
}

/* Adds [lo, hi) to the set *root, merged with the ranges it overlaps or touches. */
static void set_add(SetPool *p, int32_t *root, int64_t lo, int64_t hi)
{
    int32_t before, after, merged, rest;
    set_split(p, *root, lo, &before, &after);
    int32_t prev = set_last(p, before);  /* the one range starting before lo that can reach it */
    if (prev && p->node[prev].hi >= lo) {
        lo = p->node[prev].lo;
        if (p->node[prev].hi > hi) hi = p->node[prev].hi;
        set_split(p, before, lo, &before, &merged);
        set_free(p, merged);
    }
    set_split(p, after, hi + 1, &merged, &rest);  /* the ranges starting in [lo, hi] */
    int32_t end = set_last(p, merged);
    if (end && p->node[end].hi > hi) hi = p->node[end].hi;
    set_free(p, merged);
    int32_t node = set_new(p, lo, hi);
    *root = set_join(p, set_join(p, before, node), rest);
}

/* Removes [lo, hi) from the set *root, all of it inside one of its ranges. */
static void set_remove(SetPool *p, int32_t *root, int64_t lo, int64_t hi)
{
    int32_t before, after, range, pieces = 0;
    set_split(p, *root, lo + 1, &before, &after);
    int32_t r = set_last(p, before);  /* the range that holds [lo, hi) */
    NNC_ASSERT(r && p->node[r].lo <= lo && hi <= p->node[r].hi);
    int64_t r_lo = p->node[r].lo, r_hi = p->node[r].hi;
    set_split(p, before, r_lo, &before, &range);
    set_free(p, range);
    if (r_lo < lo) pieces = set_new(p, r_lo, lo);
    if (hi < r_hi) pieces = set_join(p, pieces, set_new(p, hi, r_hi));
    *root = set_join(p, set_join(p, before, pieces), after);
}

/* The end of the range that holds byte x, or x if none does. */
static int64_t set_cover(const SetPool *p, int32_t t, int64_t x)
{
    int32_t at = 0;
    while (t) {  /* the last range with lo <= x */
        if (p->node[t].lo <= x) at = t, t = p->node[t].kid[1];
        else t = p->node[t].kid[0];
    }
    return at && p->node[at].hi > x ? p->node[at].hi : x;
}

/* The start of the first range after byte x, or INT64_MAX. */
static int64_t set_next(const SetPool *p, int32_t t, int64_t x)
{
    int64_t next = INT64_MAX;
    while (t) {
        if (p->node[t].lo > x) next = p->node[t].lo, t = p->node[t].kid[0];
        else t = p->node[t].kid[1];
    }
    return next;
}

/* Scans the ranges of t with lo >= key in order, *end the end of the last
 * one scanned (-1: none yet); returns the end of the first of them followed
 * by a gap of size bytes or more, or -1 (*end is then the last range's end). */
static int64_t set_gap_after(const SetPool *p, int32_t t, int64_t key, int64_t size, int64_t *end)
{
    if (!t) return -1;
    const SetNode *n = &p->node[t];
    if (n->min_lo >= key) {  /* all of the subtree is scanned */
        if (*end >= 0 && n->min_lo - *end >= size) return *end;
        if (n->max_gap < size) {
            *end = n->max_hi;
            return -1;
        }
    }
    if (n->lo >= key) {
        int64_t at = set_gap_after(p, n->kid[0], key, size, end);
        if (at >= 0) return at;
        if (*end >= 0 && n->lo - *end >= size) return *end;
        *end = n->hi;
    }
    return set_gap_after(p, n->kid[1], key, size, end);
}

/* The lowest x' >= x such that [x', x' + size) is free in the set t. */
static int64_t set_fit(const SetPool *p, int32_t t, int64_t x, int64_t size)
{
    x = set_cover(p, t, x);
    int64_t next = set_next(p, t, x);
    if (next - x >= size) return x;
    int64_t end = -1, at = set_gap_after(p, t, next, size, &end);
    return at >= 0 ? at : end;
}

/* -------------------------------------------------- space over time ---- */

/* The placed buffers as byte ranges over a segment tree of the steps (node 1
 * is the root, node leaves + s the leaf of step s). A buffer live during
 * first..last goes into the `full` set of the O(log steps) nodes that cover
 * first..last exactly, and into the `part` set of those and of all their
 * ancestors. The buffers live at some step of first..last are then those in
 * `part` of the nodes that cover first..last and those in `full` of the
 * ancestors of the leaves first and last: the union of O(log steps) sets is
 * the space taken while a buffer lives, whatever the number of buffers. */
enum { SPACE_MAX_SETS = 4 * 32 };

typedef struct {
    int32_t leaves;      /* a power of two, more than the last step */
    int32_t *full;       /* per tree node: its set of the buffers live at all of its steps */
    int32_t *part;       /* per tree node: ... live at any of its steps */
    int32_t sets[SPACE_MAX_SETS]; /* the sets of one query */
    int64_t work;        /* set_fit calls so far: the search's budget */
    SetPool pool;
} Space;

static void space_init(Space *sp, int32_t steps)
{
    sp->leaves = 1;
    while (sp->leaves < steps) sp->leaves *= 2;
    sp->full = nnc_xcalloc(2 * (size_t)sp->leaves, sizeof *sp->full);
    sp->part = nnc_xcalloc(2 * (size_t)sp->leaves, sizeof *sp->part);
    sp->pool = (SetPool){nnc_xmalloc(1024 * sizeof(SetNode)), 1, 1024, 0, 0};
    sp->work = 0;
}

static void space_clear(Space *sp)
{
    memset(sp->full, 0, 2 * (size_t)sp->leaves * sizeof *sp->full);
    memset(sp->part, 0, 2 * (size_t)sp->leaves * sizeof *sp->part);
    sp->pool.n = 1, sp->pool.free_list = 0, sp->pool.rng = 0x2545f491u;
}

static void space_free(Space *sp)
{
    free(sp->full);
    free(sp->part);
    free(sp->pool.node);
}

static void space_add_at(Space *sp, int32_t v, int64_t lo, int64_t hi)
{
    set_add(&sp->pool, &sp->full[v], lo, hi);
    for (; v >= 1; v /= 2) set_add(&sp->pool, &sp->part[v], lo, hi);
}

/* Takes [lo, hi) during first..last. */
static void space_add(Space *sp, int32_t first, int32_t last, int64_t lo, int64_t hi)
{
    for (int32_t l = first + sp->leaves, r = last + sp->leaves + 1; l < r; l /= 2, r /= 2) {
        if (l & 1) space_add_at(sp, l++, lo, hi);
        if (r & 1) space_add_at(sp, --r, lo, hi);
    }
}

/* Fills sp->sets with the non-empty sets whose union is the space taken
 * during first..last; returns their number. */
static int32_t space_query(Space *sp, int32_t first, int32_t last)
{
    int32_t n = 0;
    for (int32_t l = first + sp->leaves, r = last + sp->leaves + 1; l < r; l /= 2, r /= 2) {
        if (l & 1) {
            if (sp->part[l]) sp->sets[n++] = sp->part[l];
            l++;
        }
        if (r & 1) {
            r--;
            if (sp->part[r]) sp->sets[n++] = sp->part[r];
        }
    }
    int32_t u = first + sp->leaves, w = last + sp->leaves;
    for (; u != w; u /= 2, w /= 2) {  /* the two paths up, until they meet */
        if (sp->full[u]) sp->sets[n++] = sp->full[u];
        if (sp->full[w]) sp->sets[n++] = sp->full[w];
    }
    for (; u >= 1; u /= 2)
        if (sp->full[u]) sp->sets[n++] = sp->full[u];
    return n;
}

/* The offset for `size` bytes in the space free in all the sets: the lowest
 * gap that fits (first fit) or the smallest (best fit, the lowest among
 * equals; the open space above everything counts as INT64_MAX - its start). */
static int64_t space_fit(Space *sp, int32_t n, int64_t size, bool best_fit)
{
    int64_t x = 0, off = -1, best_gap = INT64_MAX;
    for (;;) {
        for (int32_t agree = 0, k = 0; agree < n; k = (k + 1) % n) {  /* the lowest x' >= x free in all sets */
            int64_t fit = set_fit(&sp->pool, sp->sets[k], x, size);
            sp->work++;
            agree = fit > x ? 1 : agree + 1;
            x = fit;
        }
        int64_t next = INT64_MAX;  /* x starts a gap that fits: it ends at the first range after x */
        for (int32_t k = 0; k < n; k++) {
            int64_t lo = set_next(&sp->pool, sp->sets[k], x);
            if (lo < next) next = lo;
        }
        int64_t gap = next - x;
        if (off < 0 || gap < best_gap) {
            off = x;
            best_gap = gap;
            if (!best_fit || gap == size) return off;
        }
        if (next == INT64_MAX) return off;
        x = next;
    }
}

/* One greedy pass in the given order: each buffer goes at space_fit's offset
 * among the placed buffers live at the same time. O(n log n log steps) when
 * the space free at a step is in few pieces. */
static int64_t place(MpBuffer *bufs, const int32_t *order, int32_t n, int64_t align, Space *sp, bool best_fit)
{
    int64_t total = 0;
    space_clear(sp);
    for (int32_t k = 0; k < n; k++) {
        MpBuffer *b = &bufs[order[k]];
        int64_t size = round_up(b->size, align);
        b->offset = 0;
        if (size == 0) continue;
        b->offset = space_fit(sp, space_query(sp, b->first, b->last), size, best_fit);
        space_add(sp, b->first, b->last, b->offset, b->offset + size);
        if (b->offset + size > total) total = b->offset + size;
    }
    return total;
}

/* ---------------------------------------------------- large graphs ---- */

typedef struct { int32_t step, idx; } Event;

static int by_step(const void *a, const void *b)
{
    const Event *x = a, *y = b;
    if (x->step != y->step) return x->step < y->step ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* The plan of a graph too large for the search below: one sweep over the
 * steps, as a run-time allocator would do it but ahead of time. At each step
 * the buffers that died before it are freed, then the ones born there are
 * placed, largest first, each at the lowest offset free for its size (first
 * fit). O(n log n). */
static int64_t sweep(MpBuffer *bufs, int32_t n, int64_t align)
{
    Event *born = nnc_xmalloc((size_t)n * sizeof *born), *dead = nnc_xmalloc((size_t)n * sizeof *dead);
    Key *keys = nnc_xmalloc((size_t)n * sizeof *keys);
    for (int32_t i = 0; i < n; i++) {
        keys[i] = (Key){bufs[i].size, bufs[i].first, i};
        dead[i] = (Event){bufs[i].last, i};
    }
    qsort(keys, (size_t)n, sizeof *keys, by_size);  /* largest first ... */
    for (int32_t i = 0; i < n; i++) born[i] = (Event){bufs[keys[i].idx].first, i};
    qsort(born, (size_t)n, sizeof *born, by_step);  /* ... within a step (idx is the rank by size) */
    qsort(dead, (size_t)n, sizeof *dead, by_step);
    SetPool pool = {nnc_xmalloc(1024 * sizeof(SetNode)), 1, 1024, 0, 0x2545f491u};
    int32_t busy = 0, d = 0;
    int64_t total = 0;
    for (int32_t k = 0; k < n; k++) {
        MpBuffer *b = &bufs[keys[born[k].idx].idx];
        for (; d < n && dead[d].step < b->first; d++) {
            const MpBuffer *o = &bufs[dead[d].idx];
            if (o->size > 0) set_remove(&pool, &busy, o->offset, o->offset + round_up(o->size, align));
        }
        int64_t size = round_up(b->size, align);
        b->offset = 0;
        if (size == 0) continue;
        b->offset = set_fit(&pool, busy, 0, size);
        set_add(&pool, &busy, b->offset, b->offset + size);
        if (b->offset + size > total) total = b->offset + size;
    }
    free(pool.node);
    free(keys);
    free(dead);
    free(born);
    return total;
}

enum {
    MP_RANDOM_TRIES = 64,
    MP_WORK_BUDGET = 1 << 23,  /* set_fit calls, about 2 s: no more orders are tried after (the zoo needs 90,000) */
};

/* Up to MP_SEARCH_MAX buffers: greedy placement under several orders (by
 * size, by birth, by size x lifetime, by lifetime, buffers that outlive their
 * step before one-step ones such as convolution scratch), then sizes jittered
 * at random with a fixed seed (which escapes the ties that trap plain greedy
 * on ResNet-50), each with both fit rules; the smallest plan wins, and the
 * search stops as soon as one meets the lower bound. A try costs
 * O(n log n log steps) when the free space is in few pieces, O(n^2 log n) at
 * worst (a long residual chain, lifetimes at random), hence the limits: no new
 * order once the tries have done MP_WORK_BUDGET steps of search (counted, so
 * the plan never depends on the machine), and above MP_SEARCH_MAX buffers one
 * sweep instead. */
int64_t mp_plan(MpBuffer *bufs, int32_t n, int64_t align)
{
    int32_t steps = 1;
    for (int32_t i = 0; i < n; i++) {
        NNC_ASSERT(0 <= bufs[i].first && bufs[i].first <= bufs[i].last);
        if (bufs[i].last + 1 > steps) steps = bufs[i].last + 1;
    }
    if (n > MP_SEARCH_MAX) return sweep(bufs, n, align);
    int32_t *order = nnc_xmalloc((size_t)(n ? n : 1) * sizeof *order);
    Key *keys = nnc_xmalloc((size_t)(n ? n : 1) * sizeof *keys);
    Space space;
    space_init(&space, steps);
    int64_t *best_off = nnc_xmalloc((size_t)(n ? n : 1) * sizeof *best_off);
    int64_t best = INT64_MAX, bound = mp_lower_bound(bufs, n, align);
    uint64_t rng = 0x9e3779b97f4a7c15ull;  /* fixed seed: the same graph always gets the same plan */
    for (int h = 0; h < 10 + 2 * MP_RANDOM_TRIES && best > bound && (h == 0 || space.work < MP_WORK_BUDGET); h++) {
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
        int64_t total = place(bufs, order, n, align, &space, h % 2 == 1);
        if (total < best) {
            best = total;
            for (int32_t i = 0; i < n; i++) best_off[i] = bufs[i].offset;
        }
    }
    for (int32_t i = 0; i < n; i++) bufs[i].offset = best_off[i];
    free(best_off);
    space_free(&space);
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
