/* memplan.h: the static memory plan of the workspace.
 *
 * Every buffer the generated code needs at run time (activations, convolution
 * scratch) is live over a range of steps (node indices). The planner gives
 * each buffer an offset in one workspace such that buffers live at the same
 * time never overlap, and the workspace is as small as it can make it. The
 * lower bound no plan can beat is the largest total size of the buffers live
 * at one step; `nnc --stats` prints both.
 *
 * Algorithm: greedy by size (as TFLite's and ggml's allocators): buffers are
 * placed largest first, each at the lowest offset where it overlaps no placed
 * buffer that is live at the same time. Large buffers fix the skeleton, small
 * ones fill the gaps; on the zoo this lands within a few percent of the bound
 * (docs/passes.md has the numbers). */
#ifndef NNC_MEMPLAN_H
#define NNC_MEMPLAN_H

#include <stdint.h>

typedef struct {
    int64_t size;          /* bytes; 0 for a buffer that needs no space */
    int32_t first, last;   /* live during steps first..last, inclusive */
    int64_t offset;        /* the result: byte offset in the workspace */
} MpBuffer;

/* Assigns every buffer's offset (multiples of align, a power of two) and
 * returns the workspace size in bytes. */
int64_t mp_plan(MpBuffer *bufs, int32_t n, int64_t align);

/* The largest total size of buffers live at one step (sizes rounded up to align). */
int64_t mp_lower_bound(const MpBuffer *bufs, int32_t n, int64_t align);

#endif
