/* memplan.h: the static memory plan of the workspace.
 *
 * Every buffer the generated code needs at run time (activations, convolution
 * scratch) is live over a range of steps (node indices). The planner gives
 * each buffer an offset in one workspace such that buffers live at the same
 * time never overlap, and the workspace is as small as it can make it. The
 * lower bound no plan can beat is the largest total size of the buffers live
 * at one step; `nnc --stats` prints both.
 *
 * Algorithm: greedy by size (as TFLite's allocator): buffers are placed
 * largest first, each at the lowest offset where it overlaps no placed buffer
 * that is live at the same time. Large buffers fix the skeleton, small ones
 * fill the gaps; several orders are tried and the smallest plan is kept; on
 * the zoo this meets the bound (docs/passes.md has the numbers). The space
 * taken during a buffer's lifetime comes from a segment tree of steps over
 * sets of byte ranges, not from a scan of every placed buffer.
 *
 * A graph with more than MP_SEARCH_MAX buffers (a zoo model has at most about
 * 1,200; a chain of 30,000 layers trained has 120,000) is planned by one
 * sweep over the steps instead, placing the buffers born at each step,
 * largest first, at the lowest free offset once the dead ones are freed:
 * O(n log n), within a few hundred bytes of the bound on such chains. */
#ifndef NNC_MEMPLAN_H
#define NNC_MEMPLAN_H

#include <stdint.h>

enum { MP_SEARCH_MAX = 2048 };  /* buffers: above it, the sweep */

typedef struct {
    int64_t size;          /* bytes; 0 for a buffer that needs no space */
    int32_t first, last;   /* live during steps first..last, inclusive (0 <= first <= last) */
    int64_t offset;        /* the result: byte offset in the workspace */
} MpBuffer;

/* Assigns every buffer's offset (multiples of align, a power of two) and
 * returns the workspace size in bytes. */
int64_t mp_plan(MpBuffer *bufs, int32_t n, int64_t align);

/* The largest total size of buffers live at one step (sizes rounded up to align). */
int64_t mp_lower_bound(const MpBuffer *bufs, int32_t n, int64_t align);

#endif
