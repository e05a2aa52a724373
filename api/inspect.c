/* inspect.c: what a compiled model says about itself (include/nnc/nnc.h:
 * its name, inputs, outputs and parameters with their shapes) and the text
 * it generates (the IR, the C source and header).
 *
 * Shapes come from the graph: an input's or output's IrShape is one sample's
 * (the batch, the model's max_batch, is put in front), a parameter's is the
 * whole tensor, as the weights file stores it. */
#include "nnc/nnc.h"
#include "api/nnc_internal.h"

#include "codegen/emit_c.h"
#include "codegen/emit_train.h"
#include "passes/plan_memory.h"

#include <stdlib.h>
#include <string.h>

const char *nnc_model_name(const nnc_model *m) { return m->g->name; }
int nnc_model_inputs(const nnc_model *m) { return m->g->n_inputs; }
int nnc_model_outputs(const nnc_model *m) { return m->g->n_outputs; }
int nnc_model_params(const nnc_model *m) { return m->g->n_params; }
int nnc_model_max_batch(const nnc_model *m) { return m->max_batch; }
nnc_mode nnc_model_mode(const nnc_model *m) { return m->mode; }

/* The shapes of input i, output i and parameter i, or NULL when there is none. */
static const IrShape *input_shape(const nnc_model *m, int i)
{
    return i >= 0 && i < m->g->n_inputs ? &m->g->values[m->g->inputs[i]].shape : NULL;
}

static const IrShape *output_shape(const nnc_model *m, int i)
{
    return i >= 0 && i < m->g->n_outputs ? &m->g->values[m->g->outputs[i].value].shape : NULL;
}

static const IrShape *param_shape(const nnc_model *m, int i)
{
    return i >= 0 && i < m->g->n_params ? &m->g->values[m->g->params[i]].shape : NULL;
}

const char *nnc_model_input_name(const nnc_model *m, int i)
{
    return input_shape(m, i) ? m->g->values[m->g->inputs[i]].name : NULL;
}

const char *nnc_model_output_name(const nnc_model *m, int i)
{
    return output_shape(m, i) ? m->g->outputs[i].name : NULL;
}

const char *nnc_model_param_name(const nnc_model *m, int i)
{
    return param_shape(m, i) ? m->g->values[m->g->params[i]].name : NULL;
}

long long nnc_model_input_size(const nnc_model *m, int i)
{
    const IrShape *s = input_shape(m, i);
    return s ? (long long)ir_shape_elems(s) : -1;
}

long long nnc_model_output_size(const nnc_model *m, int i)
{
    const IrShape *s = output_shape(m, i);
    return s ? (long long)ir_shape_elems(s) : -1;
}

/* Writes [batch,] s's dims to dims (at most max_dims of them); returns the
 * rank written for, or -1 for no shape. batch < 0: none in front. */
static int put_shape(const IrShape *s, int64_t batch, int64_t *dims, int max_dims)
{
    if (!s) return -1;
    int rank = s->rank + (batch >= 0), k = 0;
    if (batch >= 0 && k < max_dims) dims[k] = batch;
    if (batch >= 0) k++;
    for (int j = 0; j < s->rank; j++, k++)
        if (k < max_dims) dims[k] = s->dim[j];
    return rank;
}

int nnc_model_input_shape(const nnc_model *m, int i, int64_t *dims, int max_dims)
{
    return put_shape(input_shape(m, i), m->max_batch, dims, max_dims);
}

int nnc_model_output_shape(const nnc_model *m, int i, int64_t *dims, int max_dims)
{
    return put_shape(output_shape(m, i), m->max_batch, dims, max_dims);
}

int nnc_model_param_shape(const nnc_model *m, int i, int64_t *dims, int max_dims)
{
    return put_shape(param_shape(m, i), -1, dims, max_dims);
}

int nnc_emit_ir(const nnc_model *m, char **text)
{
    StrBuf sb = {0};
    ir_print(m->g, &sb);
    *text = sb.data;  /* StrBuf data is malloc'd: the caller frees it */
    return 0;
}

int nnc_emit_c(const nnc_model *m, int max_batch, const char *header_name, char **c_source, char **header,
               char **error)
{
    StrBuf c = {0}, h = {0};
    char err[512];
    int batch = max_batch > 0 ? max_batch : m->max_batch;
    *c_source = *header = NULL;
    if (error) *error = NULL;
    bool ok;
    if (m->mode == NNC_TRAINING) {
        CgTrainOptions o = {.max_batch = batch, .header_name = header_name, .source_path = NULL};
        IrTrainPlan *p = m->g->train_plan;  /* planned for the model's batch: again for another */
        ok = (p && p->max_batch == batch) || pass_plan_training_memory(m->g, batch, err, sizeof err);
        ok = ok && cg_emit_train_c(m->g, &o, &c, &h, err, sizeof err);
    } else {
        CgOptions o = {.max_batch = batch, .header_name = header_name, .source_path = NULL};
        ok = nnc_plan_for(m->g, &o, err, sizeof err) && cg_emit_c(m->g, &o, &c, &h, err, sizeof err);
    }
    if (!ok) {
        sb_free(&c);
        sb_free(&h);
        if (error) *error = strdup(err);
        return -1;
    }
    *c_source = c.data;
    *header = h.data;
    return 0;
}
