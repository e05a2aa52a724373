/* fuse_epilogue.h: activations and residual adds fused into the conv2d or
 * linear before them (inference, -O2). */
#ifndef NNC_PASSES_FUSE_EPILOGUE_H
#define NNC_PASSES_FUSE_EPILOGUE_H

#include "../ir/ir.h"

/* Rewrites conv2d / linear -> [add(residual)] -> [activation] chains whose
 * intermediate values have no other reader into one conv2d / linear with an
 * epilogue (fuse_epilogue.c). False only for an internal error, described in err. */
bool pass_fuse_epilogue(IrGraph *g, char *err, size_t errlen);

#endif
