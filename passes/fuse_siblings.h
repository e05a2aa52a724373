/* fuse_siblings.h: horizontal fusion of sibling 1x1 convolutions (-O2). */
#ifndef NNC_PASSES_FUSE_SIBLINGS_H
#define NNC_PASSES_FUSE_SIBLINGS_H

#include "../ir/ir.h"

/* Rewrites 1x1 convolutions that read the same input into one convolution
 * whose output is sliced by channel (fuse_siblings.c). False only for an
 * internal error, described in err. */
bool pass_fuse_siblings(IrGraph *g, char *err, size_t errlen);

#endif
