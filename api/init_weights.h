/* init_weights.h: the initial weights of a network, as `nnc init` writes them
 * and as `nnc train`, `nnc bench` and the training API (api/nnc_train.c)
 * start from: one copy of the rule, in the library.
 *
 * Every parameter and buffer of g (g->params order) initialized as PyTorch
 * does by default, reproducibly from seed (runtime/tensor_io.h RtRng):
 * Kaiming-uniform weights and uniform biases with bound 1/sqrt(fan_in),
 * batchnorm weight and running_var 1, bias and running_mean 0. */
#ifndef NNC_API_INIT_WEIGHTS_H
#define NNC_API_INIT_WEIGHTS_H

#include "ir/ir.h"
#include "runtime/tensor_io.h"

#include <stdint.h>

/* g->n_params tensors whose names are g's (borrowed: valid while g lives) and
 * whose data is owned; free with nnc_init_free(ts, g->n_params). */
RtTensor *nnc_init_tensors(const IrGraph *g, uint64_t seed);
void nnc_init_free(RtTensor *ts, int n);

#endif
