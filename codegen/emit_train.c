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
 *     single-tensor arithmetic, optim.c);
 *   - PREFIX_train_create reads the weights from a file, and
 *     PREFIX_train_create_from_memory from the bytes of one in memory (a
 *     program's embedded weights, the library's nnc_load_memory): one loader,
 *     safetensors_load.c, with the same checks for both (module_train.c).
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
#include "../passes/plan_memory.h"
#include "emit_c.h"
#include "../passes/memplan.h"
#include "../runtime/train_abi.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const IrGraph *g;
    const CgTrainOptions *opt;
    Arena arena;
    const char *prefix;               /* "lenet5" */
    const char *upper;                /* "LENET5" */
    int32_t out;                      /* the value the loss reads */
    int classes;                      /* its elements per sample */
    /* from the plan (passes/plan_train_memory.c, g->train_plan): */
    const bool *grad;                 /* per value: the backward pass computes its gradient */
    const int64_t *param_off;         /* per value: floats into params (parameters and buffers), or -1 */
    const int64_t *act_off, *grad_off; /* per value: byte offsets in the workspace, or -1 */
    const int64_t *first_grad;        /* per value: the backward step of the gradient's first contribution */
    const int64_t *bn_off;            /* per node: floats into bn_save (mean then invstd), or -1 */
    const int64_t *drop_off;          /* per node: the dropout's draws before it in one step, or -1 */
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

/* Fails with a message about the DSL place loc: into opt->err_loc when the
 * caller shows places (diag_error_at), else at the message's front. */
static bool tr_fail_at(Tr *t, IrLoc loc, const char *fmt, ...) NNC_PRINTF(3, 4);
static bool tr_fail_at(Tr *t, IrLoc loc, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (t->opt->err_loc) {
        *t->opt->err_loc = loc;
        snprintf(t->err, t->errlen, "%s", msg);
    } else if (loc.file) {
        snprintf(t->err, t->errlen, "%s:%d:%d: %s", loc.file, loc.line, loc.col, msg);
    } else {
        snprintf(t->err, t->errlen, "%s", msg);
    }
    return false;
}

/* Where value v comes from: its node's place, else the network's. */
static IrLoc tr_loc_of(const Tr *t, int32_t v)
{
    int32_t n = t->g->values[v].node;
    return n >= 0 && t->g->nodes[n].loc.file ? t->g->nodes[n].loc : t->g->loc;
}

static bool tr_check(Tr *t)
{
    const IrGraph *g = t->g;
    if (t->opt->max_batch < 1 || t->opt->max_batch > CG_MAX_BATCH)
        TR_FAIL(t, "the training batch must be between 1 and %d, not %d", CG_MAX_BATCH, t->opt->max_batch);
    if (g->n_inputs != 1)
        return tr_fail_at(t, g->loc, "network %s has %d inputs; training needs exactly one (the images)", g->name,
                          g->n_inputs);
    if (g->n_outputs < 1) return tr_fail_at(t, g->loc, "network %s has no output to train", g->name);
    if (g->n_params < 1) return tr_fail_at(t, g->loc, "network %s has no parameters: there is nothing to train", g->name);
    t->out = g->outputs[0].value;
    for (int32_t k = 0; k < g->n_outputs; k++) {  /* the logits, then auxiliary classifiers' (GoogLeNet) */
        int32_t v = g->outputs[k].value;
        const IrValue *o = &g->values[v];
        const char *name = g->outputs[k].name;
        if (o->kind != VK_ACT)
            return tr_fail_at(t, g->loc, "output %s of %s is not computed by the network", name, g->name);
        long long c = cg_elems_from(&o->shape, 0);
        if (cg_elems_from(&o->shape, 1) != 1 || c < 1 || c > 1000000)
            return tr_fail_at(t, tr_loc_of(t, v), "output %s of %s has shape [%lld, ...]: the loss needs [classes] logits",
                              name, g->name, (long long)o->shape.dim[0]);
        if (k == 0) t->classes = (int)c;
        else if (c != t->classes)
            return tr_fail_at(t, tr_loc_of(t, v),
                              "output %s of %s has %lld classes, the first output %d: auxiliary classifiers must agree",
                              name, g->name, c, t->classes);
        for (int32_t j = 0; j < k; j++)
            if (g->outputs[j].value == v)
                return tr_fail_at(t, tr_loc_of(t, v), "outputs %s and %s of %s are the same tensor", g->outputs[j].name,
                                  name, g->name);
    }
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const IrNode *n = &g->nodes[i];
        const Epilogue *e = ir_epilogue(n);
        const Prologue *p = ir_prologue(n);
        if (!cg_has_gradient(n->op))
            return tr_fail_at(t, n->loc, "%s has no gradient rule yet, so %s cannot be trained", ir_ops[n->op].name,
                              g->name);
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

/* Registers, for create to check, the scratch the backward kernels of the
 * convolutions need by their own formulas (grad_kernels.c
 * nnc_conv2d_backward_scratch and _transpose2d_) against the plan's (passes/
 * plan_train_memory.c plan_backward_scratch_floats), so the two cannot drift
 * apart unseen. */
static void tr_backward_scratch_checks(Tr *t)
{
    for (int32_t i = 0; i < t->g->n_nodes; i++) {
        const IrNode *n = &t->g->nodes[i];
        const ConvAttr *c = &n->attr.conv;
        const IrShape *x = ir_in_shape(t->g, n, 0), *y = &t->g->values[n->out].shape;
        if (n->op == OP_CONV_T2D)
            cg_scratch_check(&t->e, arena_printf(&t->arena, "nnc_conv_transpose2d_backward_scratch(%lld, %lld, %d, %d, %d, %d)",
                                                 (long long)x->dim[1], (long long)x->dim[2], c->out_channels, c->kh,
                                                 c->kw, c->groups),
                             plan_backward_scratch_floats(t->g, n));
        else if (n->op == OP_CONV2D)
            cg_scratch_check(&t->e, arena_printf(&t->arena, "nnc_conv2d_backward_scratch(%lld, %d, %d, %d, %lld, %lld, %d)",
                                                 (long long)x->dim[0], c->out_channels, c->kh, c->kw,
                                                 (long long)y->dim[1], (long long)y->dim[2], c->groups),
                             plan_backward_scratch_floats(t->g, n));
    }
}

/* The plan of the training pipeline's last pass (plan_memory.h IrTrainPlan). */
static bool tr_take_plan(Tr *t)
{
    const IrTrainPlan *p = t->g->train_plan;
    if (!p || p->max_batch != t->opt->max_batch)
        TR_FAIL(t, "internal error: %s has no training memory plan for a batch of %d (pass_plan_training_memory)",
                t->g->name, t->opt->max_batch);
    t->grad = p->grad;
    t->param_off = p->param_off, t->act_off = p->act_off, t->grad_off = p->grad_off;
    t->first_grad = p->first_grad, t->bn_off = p->bn_off, t->drop_off = p->drop_off;
    t->param_floats = p->param_floats, t->learn_floats = p->learn_floats, t->n_learn = p->n_learn;
    t->bn_floats = p->bn_floats, t->drop_per_step = p->drop_per_step;
    t->ws_bytes = p->ws_bytes, t->scratch_floats = p->scratch_floats;
    tr_backward_scratch_checks(t);
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
    e->ctx = "&t->ctx";  /* the instance's threads and instruction set (no packed weights: they change) */
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

/* Fills part `part` of runtime/snippets/module_train.c into out. */
static bool tr_template(Tr *t, const char *part, const CgFill *fills, int n_fills, StrBuf *out)
{
    const CgFlag flags[] = {{"scratch", t->e.n_checks > 0}};
    const CgTemplate tm = {t->prefix, t->upper, flags, (int)NNC_COUNT(flags), fills, n_fills};
    return cg_template(&t->arena, t->e.d->module_train, *t->e.d->module_train_len, part, &tm, out, t->err,
                       t->errlen);
}

static bool tr_write_header(Tr *t, StrBuf *h)
{
    StrBuf banner = {0}, limits = {0}, fields = {0};
    sb_append(&banner, "/* ");
    cg_append_comment(&banner, tr_header_name(t));
    tr_append_banner(t, &banner);
    sb_printf(&limits, "#define %s_TRAIN_MAX_BATCH %d\n#define %s_TRAIN_CLASSES %d\n", t->upper, t->opt->max_batch,
              t->upper, t->classes);
#define TR_FIELD(type, name, comment)                                                                             \
    do {                                                                                                          \
        size_t start = fields.len;                                                                                \
        sb_printf(&fields, "    %s %s;", #type, #name);                                                           \
        cg_pad(&fields, fields.len - start, 28);                                                                  \
        sb_printf(&fields, "/* %s */\n", comment);                                                                \
    } while (0);
    RT_TRAIN_CONFIG_FIELDS(TR_FIELD)
#undef TR_FIELD
    const CgFill fills[] = {{"banner", banner.data}, {"limits", limits.data}, {"config_fields", fields.data}};
    bool ok = tr_template(t, "header", fills, (int)NNC_COUNT(fills), h);
    sb_free(&banner), sb_free(&limits), sb_free(&fields);
    return ok;
}

/* The sizes of the module, and the compile-time check that optim.c numbers the
 * optimizers as runtime/train_abi.h does. */
static void tr_write_defines(Tr *t, StrBuf *b)
{
    const IrGraph *g = t->g;
    sb_printf(b, "#define %s_N_PARAMS %d\n#define %s_PARAM_FLOATS %lld\n#define %s_LEARN_FLOATS %lld\n"
                 "#define %s_WS_BYTES %lld\n#define %s_SCRATCH_FLOATS %lld\n#define %s_BN_FLOATS %lld\n"
                 "#define %s_STATS_DOUBLES %lld\n#define %s_N_OPTIMIZERS %d\n#define %s_N_LOSSES %d\n",
              t->upper, g->n_params, t->upper, (long long)t->param_floats, t->upper, (long long)t->learn_floats,
              t->upper, (long long)t->ws_bytes, t->upper, (long long)(t->scratch_floats ? t->scratch_floats : 1),
              t->upper, (long long)(t->bn_floats ? t->bn_floats : 1), t->upper,
              (long long)(t->stats_doubles ? t->stats_doubles : 1), t->upper, (int)RT_OPTIM_COUNT, t->upper,
              (int)RT_LOSS_COUNT);
    sb_printf(b, "/* the optimizer codes of runtime/train_abi.h are optim.c's */\ntypedef char %s_optimizer_codes[", t->prefix);
#define TR_OPTIM_CHECK(name, code) sb_printf(b, "NNC_OPTIM_%s == %d && ", #name, code);
    RT_OPTIMIZERS(TR_OPTIM_CHECK)
#undef TR_OPTIM_CHECK
    sb_append(b, "1 ? 1 : -1];\n");
}

/* The rows of the tensor table: name, kind, rank, shape, offset, read. */
static void tr_write_param_rows(Tr *t, StrBuf *c)
{
    const IrGraph *g = t->g;
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
}

/* Every output's logits and gradient offsets in the workspace. */
static bool tr_write_outputs(Tr *t, StrBuf *c)
{
    const IrGraph *g = t->g;
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
            return tr_fail_at(t, tr_loc_of(t, v),
                              "output %s of %s does not depend on any learned parameter: there is nothing to train",
                              g->outputs[k].name, g->name);
        sb_printf(c, "%s%lld", k ? ", " : "", (long long)t->grad_off[v]);
    }
    sb_append(c, "};\n");
    return true;
}

static bool tr_write_source(Tr *t, StrBuf *c)
{
    const IrGraph *g = t->g;
    char err[256];
    sb_printf(c, "/* %s_train.c", t->prefix);
    tr_append_banner(t, c);
    tr_put(t, c,
           " *\n"
           " * Training for network $p ($p_train.h): the forward pass (training or\n"
           " * inference mode), softmax cross-entropy, the backward pass (the nodes in\n"
           " * reverse, each op's backward kernel), and the optimizer. Kernels below are\n"
           " * nnc's, pasted; build: cc -std=c99 -O2 -c $p_train.c (-lm; define\n"
           " * NNC_USE_CBLAS and link -lopenblas for cblas_sgemm). */\n");
    sb_printf(c, "#include \"%s\"\n\n#include <math.h>\n%s\n", tr_header_name(t), t->e.d->includes);
    /* the kernels the walk named, and the losses' */
    cg_need(&t->e, "count_correct");
    cg_need(&t->e, "cross_entropy");
    cg_need(&t->e, "bce_with_logits");
    cg_need(&t->e, "mse_loss");
    cg_need(&t->e, "copy");
    cg_need(&t->e, "ctx");  /* the instance owns one (module_train.c) */
    bool ok = t->e.d->library(t->e.sections, t->e.n_sections, c, err, sizeof err);
    const char *opt_sections[] = {"optim"};
    ok = ok && cg_snippet_select(nnc_snippet_optim, nnc_snippet_optim_len, opt_sections, 1, c, err, sizeof err);
    if (!ok) TR_FAIL(t, "internal error: %s", err);
    sb_append(c, "\n");
    sb_append(c, nnc_snippet_safetensors_load);
    sb_printf(c, "\n/* ======== %s: training ======== */\n\n", t->prefix);
    StrBuf defines = {0}, rows = {0}, bwd = {0}, outputs = {0}, checks = {0};
    tr_write_defines(t, &defines);
    tr_write_param_rows(t, &rows);
    sb_printf(&bwd, "    if (dinput) %s\n",
              t->e.d->zero(&t->arena, "dinput", arena_printf(&t->arena, "(size_t)n * %lld", tr_elems(t, g->inputs[0])),
                           "float"));
    sb_append(&bwd, t->bwd.data);
    if (*t->e.d->sync) sb_printf(&t->fwd, "    %s\n", t->e.d->sync), sb_printf(&bwd, "    %s\n", t->e.d->sync);
    ok = tr_write_outputs(t, &outputs);
    sb_append(&checks, "    if (");
    for (int i = 0; i < t->e.n_checks; i++)
        sb_printf(&checks, "%s%s > (size_t)%s_SCRATCH_FLOATS", i ? " ||\n        " : "", t->e.checks[i].call, t->upper);
    sb_printf(&checks, ")\n        return %s_train_fail(t, -1, \"internal error: a kernel needs more scratch than \"\n"
                       "                                    \"%s_SCRATCH_FLOATS\");\n", t->prefix, t->upper);
    const CgFill fills[] = {{"defines", defines.data}, {"param_rows", rows.data ? rows.data : ""},
                            {"forward", t->fwd.data}, {"backward", bwd.data}, {"outputs", outputs.data ? outputs.data : ""},
                            {"scratch_checks", checks.data}};
    ok = ok && tr_template(t, "source", fills, (int)NNC_COUNT(fills), c);
    sb_free(&defines), sb_free(&rows), sb_free(&bwd), sb_free(&outputs), sb_free(&checks);
    return ok;
}

bool cg_emit_train_c(const IrGraph *g, const CgTrainOptions *opt, StrBuf *c_src, StrBuf *h_src, char *err,
                     size_t errlen)
{
    Tr t = {.g = g, .opt = opt, .err = err, .errlen = errlen};
    if (opt->err_loc) *opt->err_loc = (IrLoc){NULL, 0, 0};
    t.prefix = cg_c_prefix(&t.arena, g->name);
    t.upper = cg_c_upper(&t.arena, t.prefix);
    t.e.arena = &t.arena;  /* the backward kernels' scratch checks are registered before the walk */
    bool ok = (!opt->header_name || cg_header_name_ok(opt->header_name, err, errlen)) && tr_check(&t);
    if (ok) ok = tr_take_plan(&t);
    if (ok) {
        tr_walk_init(&t);
        ok = tr_emit_bodies(&t) && tr_write_source(&t, c_src);
    }
    if (ok) ok = tr_write_header(&t, h_src);
    sb_free(&t.fwd);
    sb_free(&t.bwd);
    arena_free(&t.arena);
    return ok;
}
