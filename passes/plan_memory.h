/* plan_memory.h: the memory plan of an inference graph, the last pass of the
 * pipeline (pass.c runs it after the rewrites; the code generator reads it).
 *
 * Every value lives somewhere the generated code can name: a parameter in the
 * parameter array, a constant in the constants array (computed at create), an
 * input in the caller's buffer, a graph output straight in the caller's output
 * buffer (the first output of a value), and every other activation in one
 * workspace, with each convolution's scratch. The plan places the workspace
 * buffers (passes/memplan.h): a buffer is live from its node to its last
 * reader, buffers live at the same time never overlap, and with reuse (-O2) an
 * elementwise node whose input dies there writes over it (ops.def INPL) and a
 * flatten is a view of its input. Views: a slice (fuse_siblings.c) is a
 * channel range of its input, an in-place concat (concat_elim.c) owns the
 * storage of its inputs, each a channel slice its producer writes through. */
#ifndef NNC_PASSES_PLAN_MEMORY_H
#define NNC_PASSES_PLAN_MEMORY_H

#include "../ir/ir.h"

typedef struct IrMemPlan {
    int max_batch;          /* planned for batches of up to this many samples */
    bool reuse;             /* buffers share space, in place where they may (-O2); else one region each */
    int64_t ws_bytes;       /* the workspace, at max_batch */
    int64_t lower_bound;    /* the largest total size of buffers live at once, which no plan can beat */
    int64_t scratch_floats; /* the largest scratch of one node */
    bool *is_const;         /* per value: a parameter or computed from parameters only (ir_mark_constants) */
    int32_t *bound_out;     /* per value: the graph output its node writes straight into, or -1 */
    int32_t *root;          /* per value: the value whose storage holds it (itself, or a view's owner) */
    int64_t *view_off;      /* per value: where in each sample of root it starts, in floats */
    int64_t *ws_offset;     /* per value: byte offset in the workspace, or -1 */
    int64_t *scratch_off;   /* per node: byte offset of its scratch in the workspace, or -1 */
} IrMemPlan;

enum { PLAN_ALIGN = 64 };   /* byte alignment of every workspace region */
#define PLAN_MAX_WS_BYTES ((int64_t)1 << 50)  /* refuse workspaces larger than 1 PiB */

/* Plans g's memory for batches up to max_batch and attaches the plan to g
 * (g->plan, in g's arena; a rewrite of g drops it). False with a sentence in
 * err for a graph that cannot be planned (a view the kernels cannot write, a
 * workspace beyond PLAN_MAX_WS_BYTES). */
bool pass_plan_memory(IrGraph *g, int max_batch, bool reuse, char *err, size_t errlen);

/* The memory plan of a training graph (plan_train_memory.c), the training
 * pipeline's last pass: activations and their gradients share one workspace,
 * planned over a timeline of 2N+1 steps (forward node i at step i, the loss at
 * N, the backward of node i at 2N - i). An activation lives from its node to
 * the last step that reads it, forward or backward (the backward of a node
 * reads its inputs and its output); a gradient from the backward of its last
 * reader (or the loss) to the backward of its producer. Parameters, their
 * gradients, optimizer state, batchnorm statistics and dropout streams are laid
 * out once, at create. */
typedef struct IrTrainPlan {
    int max_batch;
    bool *grad;             /* per value: the backward computes its gradient (parameters, not buffers, and what
                             * is computed from them; the input too, for PREFIX_train_input_grad) */
    int64_t *param_off;     /* per value: floats into the parameters (and, same layout, their gradients), or -1 */
    int64_t *act_off;       /* per value: byte offset of the activation in the workspace, or -1 */
    int64_t *grad_off;      /* per value: byte offset of its gradient, or -1 */
    int64_t *first_grad;    /* per value: the step of the gradient's first contribution (it is zeroed then) */
    int64_t *bn_off;        /* per node: floats into the batchnorms' saved mean and 1/std, or -1 */
    int64_t *drop_off;      /* per node: a dropout's draws before it in one step, or -1 */
    int64_t param_floats, learn_floats, bn_floats, drop_per_step, ws_bytes, scratch_floats;
    int n_learn;            /* learnable parameter tensors */
} IrTrainPlan;

/* Plans training graph g for batches up to max_batch and attaches the plan
 * (g->train_plan, in g's arena). */
bool pass_plan_training_memory(IrGraph *g, int max_batch, char *err, size_t errlen);

/* The kernels' scratch needs, as their own *_scratch functions compute them
 * (runtime/snippets/kernels.c); the generated create checks the two agree.
 * Floats node n's forward kernel needs at batches up to max_batch (conv2d,
 * conv_transpose2d, dwpw; 0 for the others). */
int64_t plan_scratch_floats(const IrGraph *g, const IrNode *n, int max_batch);
/* Floats the backward kernels of node n need (conv2d, conv_transpose2d: the
 * kernels' nnc_conv2d_backward_scratch and _transpose2d_; lrn; 0 for the others). */
int64_t plan_backward_scratch_floats(const IrGraph *g, const IrNode *n);
/* Samples a convolution block puts side by side for a map of ohw output
 * pixels (kernels.c nnc_conv_samples: enough for NNC_CONV_COLS = 512 columns). */
int64_t plan_conv_samples(int64_t ohw);
/* Rows of a dwpw tile (kernels.c nnc_dwpw). */
int plan_dwpw_tile(const IrGraph *g, const IrNode *n);

#endif
