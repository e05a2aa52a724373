/* pack_weights.h: conv2d weights packed at create for the GEMM (-O2). */
#ifndef NNC_PASSES_PACK_WEIGHTS_H
#define NNC_PASSES_PACK_WEIGHTS_H

#include "../ir/ir.h"

/* Gives every ungrouped conv2d with a constant weight a pack_weights node
 * (pack_weights.c). False only for an internal error, described in err. */
bool pass_pack_weights(IrGraph *g, char *err, size_t errlen);

#endif
