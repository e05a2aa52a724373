/* pack_weights.h: conv2d weights packed at create for the GEMM (-O2). */
#ifndef NNC_PASSES_PACK_WEIGHTS_H
#define NNC_PASSES_PACK_WEIGHTS_H

#include "../ir/ir.h"

/* Gives every ungrouped conv2d with a constant weight a pack_weights node
 * (pack_weights.c). False only for an internal error, described in err. */
bool pass_pack_weights(IrGraph *g, char *err, size_t errlen);

/* Whether pack_weights would run conv2d n by Winograd's F(4x4, 3x3) (its
 * rule and NNC_WINOGRAD): layout_blocked keeps such a layer in NCHW where
 * it is asked to. */
bool pass_winograd_fits(const IrGraph *g, const IrNode *n);

#endif
