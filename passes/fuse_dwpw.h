/* fuse_dwpw.h: depthwise convolution + pointwise convolution, tile by tile (-O2). */
#ifndef NNC_PASSES_FUSE_DWPW_H
#define NNC_PASSES_FUSE_DWPW_H

#include "../ir/ir.h"

/* Rewrites depthwise conv2d -> 1x1 conv2d pairs into one dwpw node
 * (fuse_dwpw.c). False only for an internal error, described in err. */
bool pass_fuse_dwpw(IrGraph *g, char *err, size_t errlen);

#endif
