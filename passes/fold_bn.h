/* fold_bn.h: batchnorm folded into the layer before it (inference, -O2). */
#ifndef NNC_PASSES_FOLD_BN_H
#define NNC_PASSES_FOLD_BN_H

#include "../ir/ir.h"

/* Rewrites every conv2d / conv_transpose2d / linear whose output only a
 * batchnorm reads into one layer with a folded weight and bias (fold_bn.c).
 * False only for an internal error, described in err. */
bool pass_fold_bn(IrGraph *g, char *err, size_t errlen);

#endif
