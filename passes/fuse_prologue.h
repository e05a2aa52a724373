/* fuse_prologue.h: batchnorm [+ activation] fused into the layer after it (inference, -O2). */
#ifndef NNC_PASSES_FUSE_PROLOGUE_H
#define NNC_PASSES_FUSE_PROLOGUE_H

#include "../ir/ir.h"

/* Rewrites batchnorm -> [activation] -> conv2d / adaptive_avgpool2d chains into
 * the layer with a prologue (fuse_prologue.c). False only for an internal
 * error, described in err. */
bool pass_fuse_prologue(IrGraph *g, char *err, size_t errlen);

#endif
