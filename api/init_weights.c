/* init_weights.c: PyTorch's default initialization, from a seed (init_weights.h). */
#include "api/init_weights.h"

#include "common/common.h"

#include <math.h>
#include <stdlib.h>

RtTensor *nnc_init_tensors(const IrGraph *g, uint64_t seed)
{
    RtRng rng;
    rt_rng_seed(&rng, seed);
    RtTensor *ts = nnc_xcalloc((size_t)(g->n_params ? g->n_params : 1), sizeof *ts);
    for (int32_t i = 0; i < g->n_params; i++) {
        const IrValue *v = &g->values[g->params[i]];
        int64_t n = ir_shape_elems(&v->shape);
        ts[i].name = v->name;
        ts[i].rank = v->shape.rank;
        for (int d = 0; d < v->shape.rank; d++) ts[i].shape[d] = v->shape.dim[d];
        float *p = ts[i].data = nnc_xmalloc((size_t)(n ? n : 1) * sizeof(float));
        /* PyTorch's defaults: kaiming_uniform_(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for
         * weights, and biases use the same bound. */
        float bound = v->fan_in > 0 ? 1.0f / sqrtf((float)v->fan_in) : 0.0f;
        for (int64_t k = 0; k < n; k++) {
            switch (v->init) {
            case INIT_KAIMING_UNIFORM:
            case INIT_BIAS_UNIFORM: p[k] = rt_rng_uniform(&rng, -bound, bound); break;
            case INIT_ONES: p[k] = 1.0f; break;
            default: p[k] = 0.0f; break;
            }
        }
    }
    return ts;
}

void nnc_init_free(RtTensor *ts, int n)
{
    for (int i = 0; ts && i < n; i++) free(ts[i].data);
    free(ts);
}
