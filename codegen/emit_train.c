/* emit_train.c: an IR graph as a C training module (emit_train.h).
 *
 * What the generated NAME_train.c holds, and why:
 *
 *   - the kernels it calls: sections of runtime/snippets/kernels.c and
 *     grad_kernels.c (one sectioned text: the backward sections need forward
 *     ones), of optim.c, and the safetensors loader;
 *   - a tensor table: every parameter and buffer by name and shape, as the
 *     weights file holds them, then (built at create, since it depends on the
 *     optimizer) the optimizer's state tensors, named as PyTorch's state_dict
 *     keys; `nnc train` writes checkpoints through it (runtime/train_abi.h);
 *   - PREFIX_train_fwd: the forward pass, in training mode (batch statistics,
 *     running averages updated, dropout) or in inference mode, written by the
 *     one walk of the generator (cgen.h, ops_c.c): the same calls as the
 *     inference module, with both forms under `if (train)` where they differ;
 *   - PREFIX_train_bwd: reverse-mode differentiation of that forward pass, the
 *     nodes in reverse order, each calling its op's backward kernel (its
 *     gradient rule, the GRAD column of ops.def, grad_c.c). Gradients
 *     accumulate (+=) into buffers zeroed just before their first
 *     contribution, so a value read by several nodes (a residual, a DenseNet
 *     feature map) sums their gradients;
 *   - PREFIX_train_step: forward, softmax cross-entropy on the single output,
 *     backward, one optimizer update per trainable parameter tensor (torch's
 *     single-tensor arithmetic, optim.c).
 *
 * Memory: activations and activation gradients share one workspace planned
 * with passes/memplan.c over a timeline of 2N+1 steps: forward node i at step
 * i, the loss at N, the backward of node i at 2N - i. An activation lives from
 * its node to the last step that reads it, forward or backward (the backward
 * of a node reads its inputs and its output); a gradient lives from the
 * backward of its last reader to the backward of its producer. So what the
 * backward pass needs is kept and the rest reused. Parameter gradients,
 * optimizer state and batchnorm statistics are allocated once at create.
 *
 * The graph is the elaborated network after the training forms of the passes
 * (pass_run_training_pipeline: identity removal, CSE that never merges dropout
 * or batchnorm, dead code, conv -> batchnorm statistics -> activation fused by
 * passes/fuse_bn_train.c), never the -O2 rewrites: batchnorm cannot be folded
 * while its statistics come from the batch. */
#include "emit_train.h"
#include "cgen.h"
#include "emit_c.h"
#include "../passes/memplan.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char nnc_snippet_optim[];
extern const size_t nnc_snippet_optim_len;
extern const char nnc_snippet_safetensors_load[];
extern const size_t nnc_snippet_safetensors_load_len;

typedef struct {
    const IrGraph *g;
    const CgTrainOptions *opt;
    Arena arena;
    const char *prefix;               /* "lenet5" */
    const char *upper;                /* "LENET5" */
    int32_t out;                      /* the value the loss reads */
    int classes;                      /* its elements per sample */
    bool *grad;                       /* per value: the backward pass computes its gradient */
    int64_t *param_off;               /* per value: floats into params (parameters and buffers), or -1 */
    int64_t *act_off, *grad_off;      /* per value: byte offsets in the workspace, or -1 */
    int64_t *first_grad;              /* per value: the backward step of the gradient's first contribution */
    int64_t *bn_off;                  /* per node: floats into bn_save (mean then invstd), or -1 */
    int64_t *drop_off;                /* per node: the dropout's draws before it in one step, or -1 */
    int64_t stats_doubles;            /* the largest 2 * channels of a fused batchnorm */
    int64_t param_floats, learn_floats, bn_floats, drop_per_step, ws_bytes, scratch_floats;
    int n_learn;                      /* learnable parameter tensors */
    StrBuf fwd, bwd;                  /* bodies of the two functions */
    CgTrainState state;               /* what the walk addresses of the instance */
    CgEmit e;                         /* the walk */
    char *err; size_t errlen;
} Tr;

#define TR_FAIL(t, ...) do { snprintf((t)->err, (t)->errlen, __VA_ARGS__); return false; } while (0)

static long long tr_dim(const Tr *t, int32_t v, int i) { return (long long)t->g->values[v].shape.dim[i]; }
static long long tr_elems(const Tr *t, int32_t v) { return cg_elems_from(&t->g->values[v].shape, 0); }

/* ----------------------------------------------------------- planning ---- */

static bool tr_check(Tr *t)
{
    const IrGraph *g = t->g;
    if (t->opt->max_batch < 1 || t->opt->max_batch > CG_MAX_BATCH)
        TR_FAIL(t, "the training batch must be between 1 and %d, not %d", CG_MAX_BATCH, t->opt->max_batch);
    if (g->n_inputs != 1) TR_FAIL(t, "network %s has %d inputs; training needs exactly one (the images)", g->name, g->n_inputs);
    if (g->n_outputs < 1) TR_FAIL(t, "network %s has no output to train", g->name);
    if (g->n_params < 1) TR_FAIL(t, "network %s has no parameters: there is nothing to train", g->name);
    t->out = g->outputs[0].value;
    for (int32_t k = 0; k < g->n_outputs; k++) {  /* the logits, then auxiliary classifiers' (GoogLeNet) */
        int32_t v = g->outputs[k].value;
        const IrValue *o = &g->values[v];
        if (o->kind != VK_ACT) TR_FAIL(t, "output %s of %s is not computed by the network", g->outputs[k].name, g->name);
        long long c = cg_elems_from(&o->shape, 0);
        if (cg_elems_from(&o->shape, 1) != 1 || c < 1 || c > 1000000)
            TR_FAIL(t, "output %s of %s has shape [%lld, ...]: the loss needs [classes] logits", g->outputs[k].name,
                    g->name, (long long)o->shape.dim[0]);
        if (k == 0) t->classes = (int)c;
        else if (c != t->classes)
            TR_FAIL(t, "output %s of %s has %lld classes, the first output %d: auxiliary classifiers must agree",
                    g->outputs[k].name, g->name, c, t->classes);
        for (int32_t j = 0; j < k; j++)
            if (g->outputs[j].value == v) TR_FAIL(t, "outputs %s and %s of %s are the same tensor", g->outputs[j].name, g->outputs[k].name, g->name);
    }
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const IrNode *n = &g->nodes[i];
        const Epilogue *e = ir_epilogue(n);
        const Prologue *p = ir_prologue(n);
        if (!cg_has_gradient(n->op))
            TR_FAIL(t, "%s:%d:%d: %s has no gradient rule yet, so %s cannot be trained", n->loc.file ? n->loc.file : g->name,
                    n->loc.line, n->loc.col, ir_ops[n->op].name, g->name);
        if ((e && (e->act != ACT_NONE || e->residual)) || (p && p->on) || ir_is_view(n))
            TR_FAIL(t, "internal error: the training graph must not be optimized at -O2 (node %d)", i);
        if (n->op == OP_BATCHNORM && n->attr.bn.fused) {  /* fuse_bn_train.c: its conv left the sums */
            int32_t c = g->values[ir_in(g, n, 0)].node;
            if (c < 0 || g->nodes[c].op != OP_CONV2D || !g->nodes[c].attr.conv.bn_stats)
                TR_FAIL(t, "internal error: fused batchnorm (node %d) without its convolution's statistics", i);
            if (2 * tr_dim(t, n->out, 0) > t->stats_doubles) t->stats_doubles = 2 * tr_dim(t, n->out, 0);
        }
    }
    return true;
}

/* Which values need a gradient: parameters (not buffers), and every value
 * computed from one. The images need none. */
static void tr_mark_grads(Tr *t)
{
    const IrGraph *g = t->g;
    t->grad = arena_alloc(&t->arena, (size_t)g->n_values * sizeof *t->grad);
    for (int32_t p = 0; p < g->n_params; p++) t->grad[g->params[p]] = !g->values[g->params[p]].buffer;
    for (int32_t i = 0; i < g->n_inputs; i++) t->grad[g->inputs[i]] = true;  /* PREFIX_train_input_grad */
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->op == OP_BATCHNORM) {  /* running statistics are buffers: no gradient flows into them */
            t->grad[n->out] = t->grad[ir_in(g, n, 0)] || t->grad[ir_in(g, n, 1)] || t->grad[ir_in(g, n, 2)];
            continue;
        }
        for (int j = 0; j < n->n_in; j++) t->grad[n->out] |= t->grad[ir_in(g, n, j)];
    }
}

/* Floats of scratch the backward of a convolution needs: what the kernels'
 * nnc_conv2d_backward_scratch and nnc_conv_transpose2d_backward_scratch
 * (grad_kernels.c) compute, which the generated create checks against the
 * plan, so the two formulas cannot drift apart unseen. */
static int64_t tr_backward_scratch(Tr *t, const IrNode *n)
{
    const ConvAttr *c = &n->attr.conv;
    const IrShape *x = ir_in_shape(t->g, n, 0), *y = &t->g->values[n->out].shape;
    if (n->op == OP_CONV_T2D) {
        int64_t s = (int64_t)c->out_channels / c->groups * c->kh * c->kw * x->dim[1] * x->dim[2];
        cg_scratch_check(&t->e, arena_printf(&t->arena, "nnc_conv_transpose2d_backward_scratch(%lld, %lld, %d, %d, %d, %d)",
                                             (long long)x->dim[1], (long long)x->dim[2], c->out_channels, c->kh,
                                             c->kw, c->groups),
                         s);
        return s;
    }
    int64_t ohw = y->dim[1] * y->dim[2], nb = cg_conv_samples(ohw);
    int64_t s = (x->dim[0] / c->groups * c->kh * c->kw + (nb > 1 ? c->out_channels / c->groups : 0)) * nb * ohw;
    cg_scratch_check(&t->e, arena_printf(&t->arena, "nnc_conv2d_backward_scratch(%lld, %d, %d, %d, %lld, %lld, %d)",
                                         (long long)x->dim[0], c->out_channels, c->kh, c->kw, (long long)y->dim[1],
                                         (long long)y->dim[2], c->groups),
                     s);
    return s;
}

/* The scratch of node n, forward and backward (the largest is the module's). */
static int64_t tr_scratch(Tr *t, const IrNode *n)
{
    int64_t s = cg_scratch_floats(t->g, n, t->opt->max_batch);
    if (n->op == OP_CONV2D || n->op == OP_CONV_T2D) {
        int64_t b = tr_backward_scratch(t, n);
        if (b > s) s = b;
    }
    if (n->op == OP_LRN) s = ir_in_shape(t->g, n, 0)->dim[0] * 2;  /* nnc_lrn_backward */
    return s;
}

static bool tr_plan(Tr *t)
{
    const IrGraph *g = t->g;
    Arena *a = &t->arena;
    int32_t N = g->n_nodes, nv = g->n_values;
    int64_t mb = t->opt->max_batch;
    t->param_off = arena_alloc(a, (size_t)nv * sizeof *t->param_off);
    t->act_off = arena_alloc(a, (size_t)nv * sizeof *t->act_off);
    t->grad_off = arena_alloc(a, (size_t)nv * sizeof *t->grad_off);
    t->first_grad = arena_alloc(a, (size_t)nv * sizeof *t->first_grad);
    t->bn_off = arena_alloc(a, (size_t)(N + 1) * sizeof *t->bn_off);
    t->drop_off = arena_alloc(a, (size_t)(N + 1) * sizeof *t->drop_off);
    int32_t *last = arena_alloc(a, (size_t)nv * sizeof *last);
    int32_t *reader = arena_alloc(a, (size_t)nv * sizeof *reader);  /* the last node that reads a value */
    for (int32_t v = 0; v < nv; v++) t->param_off[v] = t->act_off[v] = t->grad_off[v] = -1, last[v] = reader[v] = -1;
    for (int32_t p = 0; p < g->n_params; p++) {
        int32_t v = g->params[p];
        t->param_off[v] = t->param_floats;
        t->param_floats += ir_shape_elems(&g->values[v].shape);
        if (!g->values[v].buffer) t->learn_floats += ir_shape_elems(&g->values[v].shape), t->n_learn++;
    }
    /* timeline: forward node i at step i, the loss at N, backward of node i at 2N - i */
    for (int32_t i = 0; i < N; i++) {
        const IrNode *n = &g->nodes[i];
        for (int j = 0; j < n->n_in; j++) {
            int32_t v = ir_in(g, n, j);
            reader[v] = i;
            if (2 * N - i > last[v]) last[v] = 2 * N - i;  /* the backward of a reader reads its inputs */
        }
        if (2 * N - i > last[n->out]) last[n->out] = 2 * N - i;  /* ... and its output */
        t->bn_off[i] = t->drop_off[i] = -1;
        if (n->op == OP_BATCHNORM) t->bn_off[i] = t->bn_floats, t->bn_floats += 2 * tr_dim(t, ir_in(g, n, 0), 0);
        if (n->op == OP_DROPOUT) t->drop_off[i] = t->drop_per_step, t->drop_per_step += mb * tr_elems(t, n->out);
        int64_t s = tr_scratch(t, n);
        if (s > t->scratch_floats) t->scratch_floats = s;
    }
    for (int32_t k = 0; k < g->n_outputs; k++)  /* the loss reads every output */
        if (2 * N + 1 > last[g->outputs[k].value]) last[g->outputs[k].value] = 2 * N + 1;
    MpBuffer *bufs = arena_alloc(a, (size_t)(2 * N + 2) * sizeof *bufs);
    int32_t *owner = arena_alloc(a, (size_t)(2 * N + 2) * sizeof *owner);  /* value id; grads as -(id + 1) */
    int32_t nb = 0;
    for (int32_t i = 0; i < N; i++) {
        int32_t v = g->nodes[i].out;
        int64_t bytes = tr_elems(t, v) * mb * (int64_t)sizeof(float);
        owner[nb] = v;
        bufs[nb++] = (MpBuffer){bytes, i, last[v], 0};
        if (!t->grad[v]) continue;
        int32_t first = 2 * N - i;  /* the gradient: from its last reader's backward (or the loss) to its producer's */
        for (int32_t k = 0; k < g->n_outputs; k++)
            if (v == g->outputs[k].value) first = N;  /* the loss contributes first */
        if (reader[v] > i && 2 * N - reader[v] < first) first = 2 * N - reader[v];  /* the last reader's backward */
        t->first_grad[v] = first;
        owner[nb] = -(v + 1);
        bufs[nb++] = (MpBuffer){bytes, first, 2 * N - i, 0};
    }
    t->ws_bytes = mp_plan(bufs, nb, CG_ALIGN);
    for (int32_t b = 0; b < nb; b++) {
        if (owner[b] >= 0) t->act_off[owner[b]] = bufs[b].offset;
        else t->grad_off[-owner[b] - 1] = bufs[b].offset;
    }
    return true;
}

/* ----------------------------------------------------------- emission ---- */

static void tr_put(Tr *t, StrBuf *out, const char *text) { cg_put_template(out, text, t->prefix, t->upper); }

/* The walk's view of the training module (cgen.h): values, gradients, state. */
static void tr_walk_init(Tr *t)
{
    const IrGraph *g = t->g;
    Arena *a = &t->arena;
    CgEmit *e = &t->e;
    const CgDialect *d = &cg_dialect_c;
    const char **cname = arena_alloc(a, (size_t)g->n_values * sizeof *cname);
    const char **dname = arena_alloc(a, (size_t)g->n_values * sizeof *dname);
    int64_t *stride = arena_alloc(a, (size_t)g->n_values * sizeof *stride);
    const char **scratch = arena_alloc(a, (size_t)(g->n_nodes + 1) * sizeof *scratch);
    CgTrainState *s = &t->state;
    s->bn_mean = arena_alloc(a, (size_t)(g->n_nodes + 1) * sizeof *s->bn_mean);
    s->bn_invstd = arena_alloc(a, (size_t)(g->n_nodes + 1) * sizeof *s->bn_invstd);
    s->drop_stream = arena_alloc(a, (size_t)(g->n_nodes + 1) * sizeof *s->drop_stream);
    s->stats = "t->stats";
    s->seed = "t->cfg.seed";
    s->train = "train";
    s->dinput = "dinput";
    for (int32_t v = 0; v < g->n_values; v++) {
        const IrValue *val = &g->values[v];
        stride[v] = tr_elems(t, v);
        if (val->kind == VK_INPUT) cname[v] = "input", dname[v] = t->grad[v] ? "dinput" : NULL;
        else if (val->kind == VK_PARAM)
            cname[v] = arena_printf(a, "t->params + %lld", (long long)t->param_off[v]),
            dname[v] = t->grad[v] ? arena_printf(a, "t->grads + %lld", (long long)t->param_off[v]) : NULL;
        else
            cname[v] = d->region(a, "ws", t->act_off[v]),
            dname[v] = t->grad[v] ? d->region(a, "ws", t->grad_off[v]) : NULL;
    }
    for (int32_t i = 0; i < g->n_nodes; i++) {
        scratch[i] = "t->scratch";
        if (t->bn_off[i] >= 0) {
            long long c = tr_dim(t, ir_in(g, &g->nodes[i], 0), 0);
            s->bn_mean[i] = arena_printf(a, "t->bn_save + %lld", (long long)t->bn_off[i]);
            s->bn_invstd[i] = arena_printf(a, "t->bn_save + %lld", (long long)t->bn_off[i] + c);
        }
        if (t->drop_off[i] >= 0)
            s->drop_stream[i] = arena_printf(a, "(uint64_t)t->step * %lld + %lld", (long long)t->drop_per_step,
                                             (long long)t->drop_off[i]);
    }
    e->g = g;
    e->d = d;
    e->arena = a;
    e->max_batch = t->opt->max_batch;
    e->cname = cname;
    e->dname = dname;
    e->stride = stride;
    e->scratch = scratch;
    e->tr = s;
    e->err = t->err;
    e->errlen = t->errlen;
}

static bool tr_emit_bodies(Tr *t)
{
    const IrGraph *g = t->g;
    CgEmit *e = &t->e;
    int32_t N = g->n_nodes;
    sb_append(&t->fwd, "");
    sb_append(&t->bwd, "");
    e->body = &t->fwd;
    for (int32_t i = 0; i < N; i++)
        if (!cg_emit_forward(e, &g->nodes[i])) return false;
    e->body = &t->bwd;
    for (int32_t i = N - 1; i >= 0; i--) {
        const IrNode *n = &g->nodes[i];
        if (!t->grad[n->out]) continue;
        sb_printf(&t->bwd, "\n    /* backward of %s */\n", cg_node_origin(&t->arena, n));
        e->indent = 4;
        for (int j = 0; j < n->n_in; j++) {  /* gradients whose first contribution comes now start at zero */
            int32_t v = ir_in(g, n, j);
            bool seen = false;
            for (int k = 0; k < j; k++) seen |= ir_in(g, n, k) == v;
            if (!seen && t->grad[v] && g->values[v].kind == VK_ACT && t->first_grad[v] == 2 * N - i)
                cg_line(e, "%s", e->d->zero(&t->arena, e->dname[v], cg_count(e, v), "float"));
        }
        cg_emit_backward(e, n);
    }
    return true;
}

/* The header's file name as the source #includes it (checked by cg_header_name_ok). */
static const char *tr_header_name(Tr *t)
{
    return t->opt->header_name ? t->opt->header_name : arena_printf(&t->arena, "%s_train.h", t->prefix);
}

/* ": generated by nnc VERSION from PATH. Do not edit." and a line break, the
 * path made safe for the comment it sits in (cnames.h). */
static void tr_append_banner(Tr *t, StrBuf *b)
{
    const char *src = t->opt->source_path ? t->opt->source_path : t->g->source;
    sb_printf(b, ": generated by nnc %s", NNC_VERSION);
    if (src) {
        sb_append(b, " from ");
        cg_append_comment(b, src);
    }
    sb_append(b, ". Do not edit.\n");
}

static void tr_write_header(Tr *t, StrBuf *h)
{
    sb_append(h, "/* ");
    cg_append_comment(h, tr_header_name(t));
    tr_append_banner(t, h);
    tr_put(t, h,
           " *\n"
           " * The training module of network $p: create it from a safetensors file\n"
           " * holding every parameter and buffer, then call $p_train_step once per\n"
           " * batch (forward in training mode, softmax cross-entropy against integer\n"
           " * labels, backward, one optimizer update with PyTorch's semantics) and\n"
           " * $p_train_eval to measure. Tensors (parameters, buffers, optimizer state)\n"
           " * are reachable by index through $p_train_tensor, for checkpoints.\n"
           " * Every function returning int returns 0 or a negative code; the message\n"
           " * is $p_train_last_error's. No global state: instances are independent.\n"
           " * Every name declared here is $p_train or $P_TRAIN followed by a word of\n"
           " * nnc's; $p is the network's name lowercased, with characters other than\n"
           " * letters, digits and '_' as '_' (net_ in front of one that starts with a\n"
           " * digit, '_' or nnc). Code nnc adds for itself uses nnc_ and NNC_. */\n"
           "#ifndef $P_TRAIN_H\n#define $P_TRAIN_H\n\n#include <stdint.h>\n\n");
    sb_printf(h, "#define %s_TRAIN_MAX_BATCH %d\n#define %s_TRAIN_CLASSES %d\n\n", t->upper, t->opt->max_batch, t->upper,
              t->classes);
    tr_put(t, h,
           "typedef struct $p_train $p_train;\n\n"
           "/* The optimizer and loss (laid out as nnc's RtTrainConfig, runtime/train_abi.h). */\n"
           "typedef struct $p_train_config {\n"
           "    int optimizer;           /* 0 SGD, 1 Adam, 2 AdamW */\n"
           "    double momentum, dampening;\n"
           "    int nesterov;\n"
           "    double beta1, beta2, eps;\n"
           "    int amsgrad;\n"
           "    double weight_decay;     /* SGD, Adam: L2 in the gradient; AdamW: decoupled */\n"
           "    double label_smoothing;\n"
           "    uint64_t seed;           /* dropout */\n"
           "    int loss;                /* 0 softmax cross-entropy, 1 BCE with logits, 2 MSE (one-hot targets) */\n"
           "    double aux_weight;       /* weight of the losses of outputs after the first (GoogLeNet: 0.3) */\n"
           "} $p_train_config;\n\n");
    tr_put(t, h,
           "int $p_train_create($p_train **t, const char *weights_safetensors, const $p_train_config *cfg);\n"
           "/* One step on n <= $P_TRAIN_MAX_BATCH samples: mean loss and correct count out. */\n");
    tr_put(t, h,
           "int $p_train_step($p_train *t, int n, const float *input, const int32_t *labels, double lr, float *loss,\n"
           "                  long *correct);\n"
           "/* Inference-mode forward on a batch: mean loss and correct count, nothing updated. */\n");
    tr_put(t, h,
           "int $p_train_eval($p_train *t, int n, const float *input, const int32_t *labels, float *loss, long *correct);\n");
    tr_put(t, h,
           "/* The gradient of the loss with respect to the input (adversarial examples, style\n"
           " * transfer) into dinput [n][input], with the network in training mode (train = 1:\n"
           " * batch statistics, dropout, auxiliary losses) or inference mode (0); nothing is\n"
           " * updated (running statistics are restored). */\n"
           "int $p_train_input_grad($p_train *t, int n, const float *input, const int32_t *labels, int train,\n"
           "                        float *dinput, float *loss);\n"
           "int $p_train_set_trainable($p_train *t, int i, int trainable);\n");
    tr_put(t, h,
           "int $p_train_tensor_count(const $p_train *t);\n"
           "/* kind: 0 parameter, 1 buffer, 2 optimizer state; data points into the instance. */\n");
    tr_put(t, h,
           "int $p_train_tensor($p_train *t, int i, const char **name, int *kind, float **data, int *rank, int64_t shape[8]);\n");
    tr_put(t, h,
           "long $p_train_get_step(const $p_train *t);\n");
    tr_put(t, h,
           "void $p_train_set_step($p_train *t, long step);\n");
    tr_put(t, h,
           "int $p_train_max_batch(void);\n");
    tr_put(t, h,
           "const char *$p_train_last_error(const $p_train *t);\n");
    tr_put(t, h,
           "void $p_train_destroy($p_train *t);\n\n"
           "#endif\n");
}

static bool tr_write_source(Tr *t, StrBuf *c)
{
    const IrGraph *g = t->g;
    char err[256];
    const char *hname = tr_header_name(t);
    sb_printf(c, "/* %s_train.c", t->prefix);
    tr_append_banner(t, c);
    tr_put(t, c,
           " *\n"
           " * Training for network $p ($p_train.h): the forward pass (training or\n"
           " * inference mode), softmax cross-entropy, the backward pass (the nodes in\n"
           " * reverse, each op's backward kernel), and the optimizer. Kernels below are\n"
           " * nnc's, pasted; build: cc -std=c99 -O2 -c $p_train.c (-lm; define\n"
           " * NNC_USE_CBLAS and link -lopenblas for cblas_sgemm). */\n");
    sb_printf(c, "#include \"%s\"\n\n#include <math.h>\n#include <stdarg.h>\n#include <stdint.h>\n#include <stdio.h>\n"
                 "#include <stdlib.h>\n#include <string.h>\n\n", hname);
    /* the kernels the walk named, and the losses' */
    cg_need(&t->e, "count_correct");
    cg_need(&t->e, "cross_entropy");
    cg_need(&t->e, "bce_with_logits");
    cg_need(&t->e, "mse_loss");
    cg_need(&t->e, "copy");
    bool ok = t->e.d->library(t->e.sections, t->e.n_sections, c, err, sizeof err);
    const char *opt_sections[] = {"optim"};
    ok = ok && cg_snippet_select(nnc_snippet_optim, nnc_snippet_optim_len, opt_sections, 1, c, err, sizeof err);
    if (!ok) TR_FAIL(t, "internal error: %s", err);
    sb_append(c, "\n");
    sb_append(c, nnc_snippet_safetensors_load);
    sb_printf(c, "\n/* ======== %s: training ======== */\n\n", t->prefix);

    /* the tensor table */
    sb_printf(c, "#define %s_N_PARAMS %d\n#define %s_PARAM_FLOATS %lld\n#define %s_LEARN_FLOATS %lld\n"
                 "#define %s_WS_BYTES %lld\n#define %s_SCRATCH_FLOATS %lld\n#define %s_BN_FLOATS %lld\n"
                 "#define %s_STATS_DOUBLES %lld\n\n",
              t->upper, g->n_params, t->upper, (long long)t->param_floats, t->upper, (long long)t->learn_floats,
              t->upper, (long long)t->ws_bytes, t->upper, (long long)(t->scratch_floats ? t->scratch_floats : 1),
              t->upper, (long long)(t->bn_floats ? t->bn_floats : 1), t->upper,
              (long long)(t->stats_doubles ? t->stats_doubles : 1));
    tr_put(t, c,
           "/* Parameters and buffers: name and shape as in the weights file, kind (0\n"
           " * learned, 1 buffer), offset in t->params, and whether the network reads\n"
           " * it (one that no output depends on gets no gradient, and the optimizer\n"
           " * leaves it alone, as torch.optim does a parameter whose grad is None). */\n"
           "static const struct { const char *name; int kind, rank; int64_t shape[4]; long offset; int read; } "
           "$p_params[$P_N_PARAMS] = {\n");
    bool *read = arena_alloc(&t->arena, (size_t)(g->n_values ? g->n_values : 1) * sizeof *read);
    memset(read, 0, (size_t)(g->n_values ? g->n_values : 1) * sizeof *read);
    for (int32_t i = 0; i < g->n_nodes; i++)
        for (int j = 0; j < g->nodes[i].n_in; j++) read[ir_in(g, &g->nodes[i], j)] = true;
    for (int32_t p = 0; p < g->n_params; p++) {
        const IrValue *v = &g->values[g->params[p]];
        sb_append(c, "    {");
        cg_append_string_literal(c, v->name);
        sb_printf(c, ", %d, %d, {", v->buffer ? 1 : 0, v->shape.rank);
        for (int d = 0; d < 4; d++) sb_printf(c, "%s%lld", d ? ", " : "", d < v->shape.rank ? (long long)v->shape.dim[d] : 0LL);
        sb_printf(c, "}, %lld, %d},\n", (long long)t->param_off[g->params[p]], read[g->params[p]] ? 1 : 0);
    }
    tr_put(t, c,
           "};\n\n"
           "struct $p_train {\n"
           "    float *params;            /* parameters and buffers, as $p_params */\n"
           "    float *grads;             /* the gradient of every parameter, same layout */\n"
           "    float *backup;            /* buffers (running statistics) before a forward, to undo it */\n"
           "    float *state;             /* optimizer state, per learned tensor (optim.c layout) */\n"
           "    float *bn_save;           /* batch mean and 1/std of every batchnorm, for its backward */\n"
           "    double *stats;            /* a fused batchnorm's sums, from its conv to it */\n"
           "    float *target, *dummy;    /* one-hot targets (bce, mse); a gradient nobody reads */\n"
           "    float *scratch;\n"
           "    unsigned char *ws;        /* activations and their gradients (planned) */\n"
           "    unsigned char trainable[$P_N_PARAMS];\n"
           "    char **state_names;       /* \"optim.NAME.KEY\" */\n"
           "    int n_state;              /* state tensors per learned tensor */\n"
           "    nnc_optim optim;\n"
           "    $p_train_config cfg;\n"
           "    long step;\n"
           "    char err[512];\n"
           "};\n\n");
    tr_put(t, c,
           "static int $p_train_fail($p_train *t, int code, const char *fmt, ...)\n"
           "{\n"
           "    va_list ap;\n"
           "    va_start(ap, fmt);\n"
           "    vsnprintf(t->err, sizeof t->err, fmt, ap);\n"
           "    va_end(ap);\n"
           "    return code;\n"
           "}\n\n");
    /* the forward and backward functions */
    tr_put(t, c,
           "/* The forward pass; train: batch statistics (running averages updated) and dropout. */\n");
    tr_put(t, c,
           "static void $p_train_fwd($p_train *t, int n, const float *input, int train)\n"
           "{\n"
           "    unsigned char *ws = t->ws;\n"
           "    (void)ws; (void)train; (void)input;\n");
    sb_append(c, t->fwd.data ? t->fwd.data : "");
    tr_put(t, c, "}\n\n/* The backward pass, from the gradients of the outputs (already in place);\n"
                 " * train: of the training-mode forward, else of the inference-mode one;\n"
                 " * dinput (or NULL) receives the gradient with respect to the input. */\n"
                 "static void $p_train_bwd($p_train *t, int n, const float *input, int train, float *dinput)\n"
                 "{\n"
                 "    unsigned char *ws = t->ws;\n"
                 "    (void)ws; (void)input; (void)train;\n");
    sb_printf(c, "    if (dinput) memset(dinput, 0, (size_t)n * %lld * sizeof(float));\n",
              tr_elems(t, g->inputs[0]));
    sb_append(c, t->bwd.data ? t->bwd.data : "");
    sb_append(c, "}\n\n");
    sb_printf(c, "#define %s_N_OUTPUTS %d\n#define %s_LOGITS(t) ((float *)((t)->ws + %lld))\n"
                 "/* every output's logits and gradient, in the workspace: the first is the network's,\n"
                 " * the others auxiliary classifiers' (weighted by cfg.aux_weight in the loss) */\n"
                 "static const long %s_out_off[%d] = {", t->upper, g->n_outputs, t->upper, (long long)t->act_off[t->out],
              t->prefix, g->n_outputs);
    for (int32_t k = 0; k < g->n_outputs; k++) sb_printf(c, "%s%lld", k ? ", " : "", (long long)t->act_off[g->outputs[k].value]);
    sb_printf(c, "};\nstatic const long %s_dout_off[%d] = {", t->prefix, g->n_outputs);
    for (int32_t k = 0; k < g->n_outputs; k++) {
        int32_t v = g->outputs[k].value;
        if (!t->grad[v])
            TR_FAIL(t, "output %s of %s does not depend on any learned parameter: there is nothing to train",
                    g->outputs[k].name, g->name);
        sb_printf(c, "%s%lld", k ? ", " : "", (long long)t->grad_off[v]);
    }
    sb_append(c, "};\n\n");
    tr_put(t, c,
           "/* Correct predictions: the arg-max equals the label; one logit: its sign (> 0: 1). */\n"
           "static long $p_train_correct(int n, const float *logits, const int32_t *labels)\n"
           "{\n"
           "    long k = 0;\n"
           "    int i;\n"
           "    if ($P_TRAIN_CLASSES > 1) return nnc_count_correct(n, logits, $P_TRAIN_CLASSES, (const int *)labels);\n"
           "    for (i = 0; i < n; i++) k += (logits[i] > 0.0f) == (labels[i] == 1);\n"
           "    return k;\n"
           "}\n\n");
    tr_put(t, c,
           "/* The loss of the first `outputs` outputs against the labels (cfg.loss: 0 softmax\n"
           " * cross-entropy with label smoothing, 1 binary cross-entropy with logits and 2 mean\n"
           " * squared error, both against one-hot targets), auxiliary outputs weighted by\n"
           " * cfg.aux_weight; with grad, each output's gradient is set (not added) for an\n"
           " * upstream gradient of 1. */\n"
           "static float $p_train_loss($p_train *t, int n, const int32_t *labels, int outputs, int grad)\n"
           "{\n"
           "    size_t count = (size_t)n * $P_TRAIN_CLASSES, i;\n"
           "    double total = 0.0;\n"
           "    int k;\n"
           "    if (t->cfg.loss != 0) {  /* one-hot targets; one logit (a binary classifier): the label itself */\n"
           "        memset(t->target, 0, count * sizeof(float));\n"
           "        for (i = 0; i < (size_t)n; i++)\n"
           "            if ($P_TRAIN_CLASSES == 1) t->target[i] = (float)labels[i];\n"
           "            else t->target[i * $P_TRAIN_CLASSES + (size_t)labels[i]] = 1.0f;\n"
           "    }\n"
           "    for (k = 0; k < (grad ? $P_N_OUTPUTS : outputs); k++) {\n"
           "        const float *x = (const float *)(t->ws + $p_out_off[k]);\n"
           "        float *dx = grad ? (float *)(t->ws + $p_dout_off[k]) : NULL, l;\n"
           "        float w = k == 0 ? 1.0f : (float)t->cfg.aux_weight;\n"
           "        if (dx) memset(dx, 0, count * sizeof(float));\n"
           "        if (k >= outputs) continue;  /* an auxiliary output outside this loss: gradient 0 */\n"
           "        if (t->cfg.loss == 1) l = dx ? nnc_bce_with_logits(count, x, t->target, dx) : nnc_bce_with_logits(count, x, t->target, t->dummy);\n"
           "        else if (t->cfg.loss == 2) l = dx ? nnc_mse_loss(count, x, t->target, dx) : nnc_mse_loss(count, x, t->target, t->dummy);\n"
           "        else l = nnc_cross_entropy(n, x, $P_TRAIN_CLASSES, (const int *)labels, (float)t->cfg.label_smoothing, dx);\n"
           "        if (dx && k > 0)\n"
           "            for (i = 0; i < count; i++) dx[i] *= w;\n"
           "        total += (double)w * (double)l;\n"
           "    }\n"
           "    return (float)total;\n"
           "}\n\n");
    tr_put(t, c,
           "static const char *const $p_state_keys[2][3] = {{\"momentum_buffer\", \"\", \"\"},\n"
           "                                                 {\"exp_avg\", \"exp_avg_sq\", \"max_exp_avg_sq\"}};\n\n");
    tr_put(t, c,
           "static void $p_train_release($p_train *t)\n"
           "{\n"
           "    int i;\n"
           "    if (t->state_names)\n"
           "        for (i = 0; i < $P_N_PARAMS * 3; i++) free(t->state_names[i]);\n"
           "    free(t->state_names);\n"
           "    free(t->params); free(t->grads); free(t->backup); free(t->state); free(t->bn_save); free(t->stats);\n"
           "    free(t->target); free(t->dummy);\n"
           "    free(t->scratch); free(t->ws);\n"
           "}\n\n");
    tr_put(t, c,
           "int $p_train_create($p_train **out, const char *weights, const $p_train_config *cfg)\n"
           "{\n"
           "    $p_train *t;\n"
           "    nnc_st_want want[$P_N_PARAMS];\n"
           "    char err[384];\n"
           "    int i, k;\n"
           "    if (!out) return -1;\n"
           "    *out = NULL;\n"
           "    t = ($p_train *)calloc(1, sizeof *t);\n"
           "    if (!t) return -2;\n"
           "    *out = t;\n"
           "    if (!cfg || !weights) return $p_train_fail(t, -1, \"$p_train_create: NULL weights path or config\");\n"
           "    if (cfg->optimizer < 0 || cfg->optimizer > 2)\n"
           "        return $p_train_fail(t, -1, \"$p_train_create: unknown optimizer %d\", cfg->optimizer);\n"
           "    if (cfg->loss < 0 || cfg->loss > 2)\n"
           "        return $p_train_fail(t, -1, \"$p_train_create: unknown loss %d\", cfg->loss);\n"
           "    if ($P_TRAIN_CLASSES == 1 && cfg->loss == 0)\n"
           "        return $p_train_fail(t, -1, \"$p_train_create: one output logit (a binary classifier) takes binary \"\n"
           "                                    \"cross-entropy with logits (loss 1), not softmax cross-entropy\");\n"
           "    t->cfg = *cfg;\n"
           "    t->optim.kind = cfg->optimizer;\n"
           "    t->optim.momentum = cfg->momentum;\n"
           "    t->optim.dampening = cfg->dampening;\n"
           "    t->optim.nesterov = cfg->nesterov;\n"
           "    t->optim.beta1 = cfg->beta1;\n"
           "    t->optim.beta2 = cfg->beta2;\n"
           "    t->optim.eps = cfg->eps;\n"
           "    t->optim.amsgrad = cfg->amsgrad;\n"
           "    t->optim.weight_decay = cfg->weight_decay;\n"
           "    t->n_state = (int)nnc_optim_state_floats(&t->optim);\n"
           "    t->params = (float *)malloc((size_t)$P_PARAM_FLOATS * sizeof(float));\n"
           "    t->grads = (float *)calloc((size_t)$P_PARAM_FLOATS, sizeof(float));\n"
           "    t->backup = (float *)malloc((size_t)$P_PARAM_FLOATS * sizeof(float));\n"
           "    t->state = (float *)calloc((size_t)$P_LEARN_FLOATS * (size_t)(t->n_state ? t->n_state : 1), sizeof(float));\n"
           "    t->bn_save = (float *)calloc((size_t)$P_BN_FLOATS, sizeof(float));\n"
           "    t->stats = (double *)calloc((size_t)$P_STATS_DOUBLES, sizeof(double));\n"
           "    t->target = (float *)calloc((size_t)$P_TRAIN_MAX_BATCH * $P_TRAIN_CLASSES, sizeof(float));\n"
           "    t->dummy = (float *)calloc((size_t)$P_TRAIN_MAX_BATCH * $P_TRAIN_CLASSES, sizeof(float));\n"
           "    t->scratch = (float *)malloc((size_t)$P_SCRATCH_FLOATS * sizeof(float));\n"
           "    t->ws = (unsigned char *)malloc((size_t)$P_WS_BYTES + 64);\n"
           "    t->state_names = (char **)calloc((size_t)$P_N_PARAMS * 3, sizeof(char *));\n"
           "    if (!t->params || !t->grads || !t->backup || !t->state || !t->bn_save || !t->stats || !t->scratch || !t->ws ||\n"
           "        !t->target || !t->dummy ||\n"
           "        !t->state_names)\n"
           "        return $p_train_fail(t, -2, \"$p_train_create: out of memory\");\n");
    if (t->e.n_checks) {  /* the kernels' own scratch needs against the plan */
        sb_append(c, "    if (");
        for (int i = 0; i < t->e.n_checks; i++)
            sb_printf(c, "%s%s > (size_t)%s_SCRATCH_FLOATS", i ? " ||\n        " : "", t->e.checks[i].call, t->upper);
        sb_printf(c, ")\n        return %s_train_fail(t, -1, \"internal error: a kernel needs more scratch than \"\n"
                     "                                    \"%s_SCRATCH_FLOATS\");\n", t->prefix, t->upper);
    }
    tr_put(t, c,
           "    for (i = 0; i < $P_N_PARAMS; i++) {\n"
           "        want[i].name = $p_params[i].name;\n"
           "        want[i].rank = $p_params[i].rank;\n"
           "        for (k = 0; k < 4; k++) want[i].shape[k] = (long long)$p_params[i].shape[k];\n"
           "        want[i].dst = t->params + $p_params[i].offset;\n"
           "        t->trainable[i] = (unsigned char)($p_params[i].kind == 0 && $p_params[i].read);\n"
           "        for (k = 0; k < t->n_state && $p_params[i].kind == 0; k++) {\n"
           "            const char *key = $p_state_keys[cfg->optimizer != 0][k];\n"
           "            size_t len = strlen($p_params[i].name) + strlen(key) + 8;\n"
           "            t->state_names[i * 3 + k] = (char *)malloc(len);\n"
           "            if (!t->state_names[i * 3 + k]) return $p_train_fail(t, -2, \"$p_train_create: out of memory\");\n"
           "            snprintf(t->state_names[i * 3 + k], len, \"optim.%s.%s\", $p_params[i].name, key);\n"
           "        }\n"
           "    }\n"
           "    if (nnc_st_load(weights, want, $P_N_PARAMS, err, sizeof err) != 0)\n"
           "        return $p_train_fail(t, -3, \"$p_train_create: %s\", err);\n"
           "    return 0;\n"
           "}\n\n");
    tr_put(t, c,
           "void $p_train_destroy($p_train *t)\n"
           "{\n"
           "    if (!t) return;\n"
           "    $p_train_release(t);\n"
           "    free(t);\n"
           "}\n\n");
    tr_put(t, c,
           "const char *$p_train_last_error(const $p_train *t) { return t ? t->err : \"no instance\"; }\n");
    tr_put(t, c,
           "int $p_train_max_batch(void) { return $P_TRAIN_MAX_BATCH; }\n");
    tr_put(t, c,
           "long $p_train_get_step(const $p_train *t) { return t->step; }\n");
    tr_put(t, c,
           "void $p_train_set_step($p_train *t, long step) { t->step = step; }\n\n");
    tr_put(t, c,
           "static int $p_train_check($p_train *t, int n, const float *input, const int32_t *labels)\n"
           "{\n"
           "    int i;\n"
           "    if (n < 1 || n > $P_TRAIN_MAX_BATCH)\n"
           "        return $p_train_fail(t, -1, \"batch of %d samples; this module takes 1 to %d\", n, $P_TRAIN_MAX_BATCH);\n"
           "    if (!input || !labels) return $p_train_fail(t, -1, \"NULL input or labels\");\n"
           "    for (i = 0; i < n; i++)  /* one logit: a binary classifier, labels 0 and 1 */\n"
           "        if (labels[i] < 0 || labels[i] >= ($P_TRAIN_CLASSES == 1 ? 2 : $P_TRAIN_CLASSES))\n"
           "            return $p_train_fail(t, -1, \"label %ld of sample %d is outside 0..%d\", (long)labels[i], i,\n"
           "                                 $P_TRAIN_CLASSES == 1 ? 1 : $P_TRAIN_CLASSES - 1);\n"
           "    return 0;\n"
           "}\n\n"
           "/* Copies the buffers (batchnorm's running statistics, which a training-mode\n"
           " * forward updates) to t->backup (save) or back (!save); parameters proper\n"
           " * change only in the optimizer step, after the loss is known to be finite. */\n"
           "static void $p_train_buffers($p_train *t, int save)\n"
           "{\n"
           "    int i, k;\n"
           "    for (i = 0; i < $P_N_PARAMS; i++) {\n"
           "        size_t count = 1, off = (size_t)$p_params[i].offset;\n"
           "        if ($p_params[i].kind != 1) continue;\n"
           "        for (k = 0; k < $p_params[i].rank; k++) count *= (size_t)$p_params[i].shape[k];\n"
           "        if (save) memcpy(t->backup + off, t->params + off, count * sizeof(float));\n"
           "        else memcpy(t->params + off, t->backup + off, count * sizeof(float));\n"
           "    }\n"
           "}\n\n");
    tr_put(t, c,
           "int $p_train_step($p_train *t, int n, const float *input, const int32_t *labels, double lr, float *loss,\n"
           "                  long *correct)\n"
           "{\n"
           "    float l;\n"
           "    long off = 0;\n"
           "    int i, rc = $p_train_check(t, n, input, labels);\n"
           "    if (rc) return rc;\n"
           "    $p_train_buffers(t, 1);\n"
           "    $p_train_fwd(t, n, input, 1);\n"
           "    l = $p_train_loss(t, n, labels, $P_N_OUTPUTS, 1);\n"
           "    if (correct) *correct = $p_train_correct(n, $P_LOGITS(t), labels);\n"
           "    if (loss) *loss = l;\n"
           "    if (!(l - l == 0.0f)) {  /* NaN or infinite: undo the running statistics, keep the weights */\n"
           "        $p_train_buffers(t, 0);\n"
           "        return $p_train_fail(t, -4, \"the loss is %g at step %ld\", (double)l, t->step + 1);\n"
           "    }\n"
           "    memset(t->grads, 0, (size_t)$P_PARAM_FLOATS * sizeof(float));\n"
           "    $p_train_bwd(t, n, input, 1, NULL);\n"
           "    for (i = 0; i < $P_N_PARAMS; i++) {\n"
           "        size_t count = 1;\n"
           "        int k;\n"
           "        if ($p_params[i].kind != 0) continue;\n"
           "        for (k = 0; k < $p_params[i].rank; k++) count *= (size_t)$p_params[i].shape[k];\n"
           "        if (t->trainable[i])\n"
           "            nnc_optim_step(t->params + $p_params[i].offset, t->grads + $p_params[i].offset,\n"
           "                           t->state + (size_t)off * (size_t)t->n_state, count, t->step + 1, lr, &t->optim);\n"
           "        off += (long)count;\n"
           "    }\n"
           "    t->step++;\n"
           "    return 0;\n"
           "}\n\n");
    tr_put(t, c,
           "int $p_train_eval($p_train *t, int n, const float *input, const int32_t *labels, float *loss, long *correct)\n"
           "{\n"
           "    float l;\n"
           "    int rc = $p_train_check(t, n, input, labels);\n"
           "    if (rc) return rc;\n"
           "    $p_train_fwd(t, n, input, 0);\n"
           "    l = $p_train_loss(t, n, labels, 1, 0);\n"
           "    if (loss) *loss = l;\n"
           "    if (correct) *correct = $p_train_correct(n, $P_LOGITS(t), labels);\n"
           "    return 0;\n"
           "}\n\n");
    tr_put(t, c,
           "int $p_train_input_grad($p_train *t, int n, const float *input, const int32_t *labels, int train,\n"
           "                        float *dinput, float *loss)\n"
           "{\n"
           "    float l;\n"
           "    int rc = $p_train_check(t, n, input, labels);\n"
           "    if (rc) return rc;\n"
           "    if (!dinput) return $p_train_fail(t, -1, \"$p_train_input_grad: NULL dinput\");\n"
           "    $p_train_buffers(t, 1);\n"
           "    $p_train_fwd(t, n, input, train);\n"
           "    l = $p_train_loss(t, n, labels, train ? $P_N_OUTPUTS : 1, 1);\n"
           "    memset(t->grads, 0, (size_t)$P_PARAM_FLOATS * sizeof(float));\n"
           "    $p_train_bwd(t, n, input, train, dinput);\n"
           "    $p_train_buffers(t, 0);  /* running statistics */\n"
           "    if (loss) *loss = l;\n"
           "    return 0;\n"
           "}\n\n"
           "int $p_train_set_trainable($p_train *t, int i, int trainable)\n"
           "{\n"
           "    if (i < 0 || i >= $P_N_PARAMS || $p_params[i].kind != 0)\n"
           "        return $p_train_fail(t, -1, \"tensor %d is not a learned parameter\", i);\n"
           "    t->trainable[i] = (unsigned char)(trainable != 0 && $p_params[i].read);  /* unread: no gradient */\n"
           "    return 0;\n"
           "}\n\n");
    tr_put(t, c,
           "int $p_train_tensor_count(const $p_train *t)\n"
           "{\n"
           "    int i, learned = 0;\n"
           "    for (i = 0; i < $P_N_PARAMS; i++) learned += $p_params[i].kind == 0;\n"
           "    return $P_N_PARAMS + learned * t->n_state;\n"
           "}\n\n");
    tr_put(t, c,
           "int $p_train_tensor($p_train *t, int i, const char **name, int *kind, float **data, int *rank, int64_t shape[8])\n"
           "{\n"
           "    int p, k;\n"
           "    long off = 0;\n"
           "    if (i < 0 || i >= $p_train_tensor_count(t)) return $p_train_fail(t, -1, \"no tensor %d\", i);\n"
           "    if (i < $P_N_PARAMS) {\n"
           "        *name = $p_params[i].name;\n"
           "        *kind = $p_params[i].kind;\n"
           "        *data = t->params + $p_params[i].offset;\n"
           "        *rank = $p_params[i].rank;\n"
           "        for (k = 0; k < 8; k++) shape[k] = k < *rank ? $p_params[i].shape[k] : 0;\n"
           "        return 0;\n"
           "    }\n"
           "    i -= $P_N_PARAMS;\n"
           "    for (p = 0; p < $P_N_PARAMS; p++) {  /* the i-th state tensor: learned tensor i / n_state, key i % n_state */\n"
           "        long count = 1;\n"
           "        if ($p_params[p].kind != 0) continue;\n"
           "        for (k = 0; k < $p_params[p].rank; k++) count *= (long)$p_params[p].shape[k];\n"
           "        if (i < t->n_state) {\n"
           "            *name = t->state_names[p * 3 + i];\n"
           "            *kind = 2;\n"
           "            *data = t->state + (size_t)off * (size_t)t->n_state + (size_t)i * (size_t)count;\n"
           "            *rank = $p_params[p].rank;\n"
           "            for (k = 0; k < 8; k++) shape[k] = k < *rank ? $p_params[p].shape[k] : 0;\n"
           "            return 0;\n"
           "        }\n"
           "        i -= t->n_state;\n"
           "        off += count;\n"
           "    }\n"
           "    return $p_train_fail(t, -1, \"no tensor\");\n"
           "}\n");
    return true;
}

bool cg_emit_train_c(const IrGraph *g, const CgTrainOptions *opt, StrBuf *c_src, StrBuf *h_src, char *err,
                     size_t errlen)
{
    Tr t;
    memset(&t, 0, sizeof t);
    t.g = g;
    t.opt = opt;
    t.err = err;
    t.errlen = errlen;
    t.prefix = cg_c_prefix(&t.arena, g->name);
    t.upper = cg_c_upper(&t.arena, t.prefix);
    t.e.arena = &t.arena;  /* the plan registers the backward kernels' scratch checks */
    bool ok = (!opt->header_name || cg_header_name_ok(opt->header_name, err, errlen)) && tr_check(&t);
    if (ok) {
        tr_mark_grads(&t);
        ok = tr_plan(&t);
    }
    if (ok) {
        tr_walk_init(&t);
        ok = tr_emit_bodies(&t) && tr_write_source(&t, c_src);
    }
    if (ok) tr_write_header(&t, h_src);
    sb_free(&t.fwd);
    sb_free(&t.bwd);
    arena_free(&t.arena);
    return ok;
}
