/* nnc_train.c: the training part of the public API (include/nnc/nnc.h,
 * between "---- training ----" and "---- end of training ----").
 *
 * A trainer is what `nnc train` (tools/train.c) builds for one run, minus the
 * data and the loop, which are the caller's:
 *   settings     built-in defaults, then the network's train section (read
 *                when the model was compiled for training, api/compile.c and
 *                train_settings.c), then the caller's nnc_train_options: the
 *                order of `nnc train`'s defaults, section and command line
 *   the graph    the model's, compiled with nnc_options.mode NNC_TRAINING
 *                (the training pipeline: batchnorm with batch statistics,
 *                dropout masks, as `nnc train`'s load_graph), its training
 *                memory planned again when the trainer's batch is another
 *   load_module  the training module generated from it
 *                (codegen/emit_train.h), loaded by runtime/jit.h
 *                rt_load_train: the one loader of the CLI and the API
 *   create       the module's PREFIX_train_create on a weights file, or
 *                PREFIX_train_create_from_memory on the bytes of one: the
 *                caller's, or the weights `nnc init` writes
 *                (api/init_weights.h), encoded in memory
 * The module's instance holds the parameters, the buffers and the optimizer's
 * state; steps, evaluation and the tensor table are its entry points
 * (runtime/train_abi.h). Nothing here prints: every failure is a message, in
 * *error at creation, in the trainer's buffer afterwards. */
#include "nnc/nnc.h"
#include "api/init_weights.h"
#include "api/nnc_internal.h"

#include "codegen/cnames.h"
#include "codegen/emit_train.h"
#include "common/common.h"
#include "passes/plan_memory.h"
#include "runtime/jit.h"
#include "runtime/tensor_io.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TR_ERRLEN = 8192 };  /* compiler messages can be long */

struct nnc_trainer {
    RtTrainModule mod;     /* the loaded training module */
    void *t;               /* its instance: weights, buffers, optimizer state */
    char *network;         /* the network's name, for the weights' metadata */
    int max_batch;
    int n_inputs;          /* of the network (one today) */
    double lr;             /* the train section's learning rate, else 0.01 */
    char err[1024];        /* nnc_trainer_error */
};

/* What a trainer is created with, after defaults, section and options. */
typedef struct Settings {
    RtTrainConfig cfg;
    double lr;
    long batch;
    bool weight_decay_set;
    bool negative_seed;     /* the train section's seed is below 0 */
} Settings;

static char *fmt_alloc(const char *fmt, ...) NNC_PRINTF(1, 2);
static char *fmt_alloc(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *s = nnc_xmalloc((size_t)(n > 0 ? n : 0) + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)(n > 0 ? n : 0) + 1, fmt, ap);
    va_end(ap);
    return s;
}

static int tr_fail(nnc_trainer *tr, const char *fmt, ...) NNC_PRINTF(2, 3);
static int tr_fail(nnc_trainer *tr, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tr->err, sizeof tr->err, fmt, ap);
    va_end(ap);
    return -1;
}

/* ---- settings ---- */

/* A number of the train section (its text is a literal the frontend checked). */
static double section_number(const char *v) { return v ? strtod(v, NULL) : 0.0; }

/* Applies one train-section setting (flag as `nnc train` spells it); the
 * settings of the data and the loop (epochs, schedule, augment...) are the
 * caller's and are skipped. */
static void apply_section(Settings *s, const NncSetting *st)
{
    const char *f = st->flag, *v = st->value;
    if (strcmp(f, "--optimizer") == 0)
        s->cfg.optimizer = strcmp(v, "adamw") == 0 ? RT_OPTIM_ADAMW : strcmp(v, "adam") == 0 ? RT_OPTIM_ADAM : RT_OPTIM_SGD;
    else if (strcmp(f, "--lr") == 0) s->lr = section_number(v);
    else if (strcmp(f, "--momentum") == 0) s->cfg.momentum = section_number(v);
    else if (strcmp(f, "--nesterov") == 0) s->cfg.nesterov = 1;
    else if (strcmp(f, "--weight-decay") == 0) s->cfg.weight_decay = section_number(v), s->weight_decay_set = true;
    else if (strcmp(f, "--label-smoothing") == 0) s->cfg.label_smoothing = section_number(v);
    else if (strcmp(f, "--aux-weight") == 0) s->cfg.aux_weight = section_number(v);
    else if (strcmp(f, "--seed") == 0 && v[0] == '-') s->negative_seed = true;  /* the frontend checks it is whole */
    else if (strcmp(f, "--seed") == 0) s->cfg.seed = strtoull(v, NULL, 10);
    else if (strcmp(f, "--batch") == 0) s->batch = strtol(v, NULL, 10);
    else if (strcmp(f, "--loss") == 0)
        s->cfg.loss = strcmp(v, "bce") == 0 ? RT_LOSS_BCE : strcmp(v, "mse") == 0 ? RT_LOSS_MSE : RT_LOSS_CROSS_ENTROPY;
}

/* A number option over the setting *dst: 0 keeps it, negative means 0. */
static void take(double *dst, double v)
{
    if (v != 0) *dst = v < 0 ? 0.0 : v;
}

static void apply_options(Settings *s, const nnc_train_options *o)
{
    static const int optim[] = {-1, RT_OPTIM_SGD, RT_OPTIM_ADAM, RT_OPTIM_ADAMW};
    static const int loss[] = {-1, RT_LOSS_CROSS_ENTROPY, RT_LOSS_BCE, RT_LOSS_MSE};
    if (o->optimizer > 0 && o->optimizer <= NNC_OPTIMIZER_ADAMW) s->cfg.optimizer = optim[o->optimizer];
    if (s->cfg.optimizer != RT_OPTIM_SGD) s->cfg.momentum = 0, s->cfg.nesterov = 0;  /* a section's sgd(...) replaced */
    if (o->loss > 0 && o->loss <= NNC_LOSS_MSE) s->cfg.loss = loss[o->loss];
    take(&s->cfg.momentum, o->momentum);
    if (o->nesterov) s->cfg.nesterov = o->nesterov > 0;
    take(&s->cfg.beta1, o->beta1);
    take(&s->cfg.beta2, o->beta2);
    take(&s->cfg.eps, o->eps);
    if (o->weight_decay != 0) s->weight_decay_set = true;
    take(&s->cfg.weight_decay, o->weight_decay);
    take(&s->cfg.label_smoothing, o->label_smoothing);
    take(&s->cfg.aux_weight, o->aux_weight);
    if (o->seed) s->cfg.seed = o->seed < 0 ? 0 : (uint64_t)o->seed, s->negative_seed = false;
}

/* The checks of `nnc train`'s command line (tools/train_args.c), as a sentence; NULL: fine. */
static char *check_settings(const Settings *s, const nnc_train_options *o)
{
    const RtTrainConfig *c = &s->cfg;
    if (o && (o->optimizer < 0 || o->optimizer > NNC_OPTIMIZER_ADAMW))
        return fmt_alloc("unknown optimizer %d (NNC_OPTIMIZER_SGD, _ADAM or _ADAMW)", (int)o->optimizer);
    if (o && (o->loss < 0 || o->loss > NNC_LOSS_MSE))
        return fmt_alloc("unknown loss %d (NNC_LOSS_CROSS_ENTROPY, _BCE or _MSE)", (int)o->loss);
    if (!(c->momentum < 1) || !isfinite(c->momentum))
        return fmt_alloc("momentum %g: it must be below 1 (0.9 is usual; at 1 or more the updates grow without bound)",
                         c->momentum);
    if (c->momentum != 0 && c->optimizer != RT_OPTIM_SGD)
        return fmt_alloc("momentum applies to SGD only (Adam and AdamW use beta1 and beta2)");
    if (c->nesterov && (c->optimizer != RT_OPTIM_SGD || c->momentum <= 0))
        return fmt_alloc("nesterov needs SGD with momentum greater than 0");
    if (!(c->beta1 < 1) || !(c->beta2 < 1))
        return fmt_alloc("Adam's betas must be below 1, got %g and %g", c->beta1, c->beta2);
    if (!(c->beta1 >= 0) || !(c->beta2 >= 0)) return fmt_alloc("Adam's betas must be 0 or more, got %g and %g", c->beta1, c->beta2);
    if (!(c->eps >= 0) || !(c->weight_decay >= 0) || !(c->aux_weight >= 0) || !isfinite(c->eps) ||
        !isfinite(c->weight_decay) || !isfinite(c->aux_weight))
        return fmt_alloc("eps, weight_decay and aux_weight must be finite numbers >= 0, got %g, %g and %g", c->eps,
                         c->weight_decay, c->aux_weight);
    if (!(c->label_smoothing >= 0 && c->label_smoothing <= 1))
        return fmt_alloc("label_smoothing %g: it must be from 0 to 1", c->label_smoothing);
    if (s->negative_seed) return fmt_alloc("the train section's seed is negative; seeds are whole numbers >= 0");
    if (!(s->lr >= 0) || !isfinite(s->lr)) return fmt_alloc("the train section's lr %g is not a number >= 0", s->lr);
    return NULL;
}

/* Defaults (tools/train_args.c parse_args), the train section, the options. */
static char *settings(const nnc_model *m, const nnc_train_options *o, Settings *s)
{
    memset(s, 0, sizeof *s);
    s->lr = 0.01;
    s->batch = 0;  /* none: the model's */
    s->cfg.optimizer = RT_OPTIM_SGD;
    s->cfg.loss = RT_LOSS_CROSS_ENTROPY;
    s->cfg.aux_weight = 0.3;  /* GoogLeNet's auxiliary classifiers */
    s->cfg.beta1 = 0.9, s->cfg.beta2 = 0.999, s->cfg.eps = 1e-8;  /* torch's Adam defaults */
    for (int i = 0; i < m->n_train; i++) apply_section(s, &m->train[i]);
    if (o) apply_options(s, o);
    if (s->cfg.optimizer == RT_OPTIM_ADAMW && !s->weight_decay_set) s->cfg.weight_decay = 0.01;  /* torch's default */
    return check_settings(s, o);
}

/* ---- the training graph and module ---- */

/* One input, and a first output of one score per class (tools/train.c check_network). */
static char *check_network(const IrGraph *g, const Settings *s)
{
    if (g->n_inputs != 1 || g->n_outputs < 1)
        return fmt_alloc("network '%s' has %d inputs and %d outputs; training takes one input and the class scores "
                         "as the first output (more outputs are auxiliary classifiers, as GoogLeNet's)",
                         g->name, g->n_inputs, g->n_outputs);
    const IrShape *out = &g->values[g->outputs[0].value].shape;
    if (out->rank != 1) {
        char shape[96];
        ir_shape_str(out, shape, sizeof shape);
        return fmt_alloc("output '%s' of network '%s' has shape %s; training needs one score per class, [classes]",
                         g->outputs[0].name, g->name, shape);
    }
    if (out->dim[0] == 1 && s->cfg.loss == RT_LOSS_CROSS_ENTROPY)
        return fmt_alloc("network '%s' has one output score: a binary classifier; use the loss NNC_LOSS_BCE (labels 0 "
                         "and 1)", g->name);
    return NULL;
}

/* The model's training graph, its training memory planned for max_batch. */
static IrGraph *training_graph(const nnc_model *m, int max_batch, char **why)
{
    if (m->mode != NNC_TRAINING) {
        *why = fmt_alloc("network '%s' was compiled for inference; compile it with nnc_options.mode = NNC_TRAINING "
                         "to train it (batchnorm on batch statistics, dropout active)", m->g->name);
        return NULL;
    }
    char err[512];
    IrTrainPlan *p = m->g->train_plan;  /* planned for the model's batch: again for another */
    if (!(p && p->max_batch == max_batch) && !pass_plan_training_memory(m->g, max_batch, err, sizeof err)) {
        *why = fmt_alloc("cannot plan the training memory of network '%s' for %d samples: %s", m->g->name, max_batch,
                         err);
        return NULL;
    }
    return m->g;
}

/* Generates the training module of g and loads it into tr->mod. */
static char *load_module(nnc_trainer *tr, const IrGraph *g)
{
    StrBuf c = {0}, h = {0};
    char *err = nnc_xmalloc(TR_ERRLEN), *why = NULL;
    IrLoc where = {NULL, 0, 0};
    CgTrainOptions o = {.max_batch = tr->max_batch, .header_name = "model_train.h", .source_path = NULL,
                        .err_loc = &where};
    if (!cg_emit_train_c(g, &o, &c, &h, err, TR_ERRLEN)) {
        why = where.file ? fmt_alloc("%s:%d:%d: error: %s", where.file, where.line, where.col, err)
                         : fmt_alloc("cannot generate training code for network '%s': %s", g->name, err);
    } else {
        Arena names = {0};
        if (rt_load_train(c.data, h.data, "model_train.h", cg_c_prefix(&names, g->name), &tr->mod, err, TR_ERRLEN))
            why = fmt_alloc("%s", err);
        arena_free(&names);
    }
    sb_free(&c);
    sb_free(&h);
    free(err);
    return why;
}

/* ---- initial weights ---- */

/* The module's create on the weights of a file. */
static char *create_from_file(nnc_trainer *tr, const char *path, const RtTrainConfig *cfg)
{
    if (tr->mod.create(&tr->t, path, cfg) == 0) return NULL;
    char *why = fmt_alloc("%s", tr->mod.last_error(tr->t));
    tr->mod.destroy(tr->t);
    tr->t = NULL;
    return why;
}

/* The module's create on the bytes of a safetensors file in memory
 * (PREFIX_train_create_from_memory: its messages name "<memory>"). */
static char *create_from_bytes(nnc_trainer *tr, const void *bytes, size_t size, const RtTrainConfig *cfg)
{
    if (tr->mod.create_from_memory(&tr->t, bytes, size, cfg) == 0) return NULL;
    char *why = fmt_alloc("%s", tr->mod.last_error(tr->t));
    tr->mod.destroy(tr->t);
    tr->t = NULL;
    return why;
}

/* The weights `nnc init --seed SEED` writes for g. */
static char *create_fresh(nnc_trainer *tr, const IrGraph *g, const RtTrainConfig *cfg)
{
    char err[1024], *why = NULL;
    size_t size;
    RtTensor *ts = nnc_init_tensors(g, cfg->seed);
    unsigned char *bytes = rt_st_encode("initial weights", ts, g->n_params, "{\"format\":\"pt\"}", &size, err, sizeof err);
    nnc_init_free(ts, g->n_params);
    why = bytes ? create_from_bytes(tr, bytes, size, cfg) : fmt_alloc("%s", err);
    free(bytes);
    return why;
}

/* ---- the API ---- */

/* Where the initial weights come from: a file, bytes in memory, or (both
 * NULL) the seed. */
typedef struct Weights {
    const char *path;
    const void *bytes;
    size_t size;
} Weights;

static int create(const nnc_model *m, int max_batch, const nnc_train_options *opt, const Weights *w,
                  nnc_trainer **out, char **error)
{
    if (error) *error = NULL;
    if (out) *out = NULL;
    if (!m || !out) {
        if (error) *error = fmt_alloc("nnc_trainer_create: %s is NULL", m ? "out" : "the model");
        return -1;
    }
    if (max_batch < 0) {
        if (error) *error = fmt_alloc("nnc_trainer_create: max_batch %d is negative (0: the train section's batch, else the model's)",
                                      max_batch);
        return -1;
    }
    Settings s;
    IrGraph *g = NULL;
    nnc_trainer *tr = nnc_xcalloc(1, sizeof *tr);
    char *why = settings(m, opt, &s);
    if (!why) {
        tr->max_batch = max_batch ? max_batch : s.batch > 0 && s.batch <= (1 << 20) ? (int)s.batch : m->max_batch;
        tr->lr = s.lr;
        g = training_graph(m, tr->max_batch, &why);
    }
    if (!why && !(why = check_network(g, &s))) {
        tr->network = strdup(g->name);
        tr->n_inputs = g->n_inputs;
        why = load_module(tr, g);
    }
    if (!why)
        why = w->path    ? create_from_file(tr, w->path, &s.cfg)
              : w->bytes ? create_from_bytes(tr, w->bytes, w->size, &s.cfg)
                         : create_fresh(tr, g, &s.cfg);
    if (why) {
        if (error) *error = why;
        else free(why);
        nnc_trainer_free(tr);
        return -1;
    }
    *out = tr;
    return 0;
}

int nnc_trainer_create(const nnc_model *m, int max_batch, const nnc_train_options *opt,
                       const char *weights_safetensors, nnc_trainer **out, char **error)
{
    Weights w = {weights_safetensors, NULL, 0};
    return create(m, max_batch, opt, &w, out, error);
}

int nnc_trainer_create_memory(const nnc_model *m, int max_batch, const nnc_train_options *opt, const void *weights,
                              size_t size, nnc_trainer **out, char **error)
{
    if (!weights) {
        if (error) *error = fmt_alloc("nnc_trainer_create_memory: the weights are NULL (nnc_trainer_create with "
                                      "NULL weights starts from fresh ones)");
        if (out) *out = NULL;
        return -1;
    }
    Weights w = {NULL, weights, size};
    return create(m, max_batch, opt, &w, out, error);
}

/* Arguments a step or an evaluation cannot take, as the module would not say them. */
static int check_batch(nnc_trainer *tr, const char *fn, int n, const float *const *inputs, const int32_t *labels)
{
    if (n < 1 || n > tr->max_batch)
        return tr_fail(tr, "%s: n = %d is outside 1..%d (the trainer's maximum batch)", fn, n, tr->max_batch);
    if (!inputs || !labels) return tr_fail(tr, "%s: %s is NULL", fn, inputs ? "labels" : "inputs");
    for (int i = 0; i < tr->n_inputs; i++)
        if (!inputs[i]) return tr_fail(tr, "%s: input %d is NULL", fn, i);
    return 0;
}

int nnc_train_step(nnc_trainer *tr, int n, const float *const *inputs, const int32_t *labels, double lr,
                   float *loss, long *correct)
{
    if (!tr) return -1;
    if (check_batch(tr, "nnc_train_step", n, inputs, labels)) return -1;
    if (!isfinite(lr) || lr < 0) return tr_fail(tr, "nnc_train_step: the learning rate %g is not a number >= 0", lr);
    float l = 0;
    long c = 0;
    if (tr->mod.step(tr->t, n, inputs[0], labels, lr, &l, &c) != 0)
        return tr_fail(tr, "nnc_train_step: %s", tr->mod.last_error(tr->t));
    if (loss) *loss = l;
    if (correct) *correct = c;
    return 0;
}

int nnc_train_eval(nnc_trainer *tr, int n, const float *const *inputs, const int32_t *labels, float *loss,
                   long *correct)
{
    if (!tr) return -1;
    if (check_batch(tr, "nnc_train_eval", n, inputs, labels)) return -1;
    float l = 0;
    long c = 0;
    if (tr->mod.eval(tr->t, n, inputs[0], labels, &l, &c) != 0)
        return tr_fail(tr, "nnc_train_eval: %s", tr->mod.last_error(tr->t));
    if (loss) *loss = l;
    if (correct) *correct = c;
    return 0;
}

long nnc_trainer_steps(const nnc_trainer *tr) { return tr ? tr->mod.get_step(tr->t) : -1; }
int nnc_trainer_max_batch(const nnc_trainer *tr) { return tr ? tr->max_batch : -1; }
double nnc_trainer_lr(const nnc_trainer *tr) { return tr ? tr->lr : 0.0; }

/* The parameters and buffers of the tensor table (pointing into the instance), as a safetensors file's bytes. */
static unsigned char *encode_weights(nnc_trainer *tr, const char *what, size_t *size)
{
    int n = tr->mod.tensor_count(tr->t), k = 0;
    RtTensor *ts = nnc_xcalloc((size_t)(n > 0 ? n : 1), sizeof *ts);
    for (int i = 0; i < n; i++) {
        const char *name;
        int kind, rank;
        float *data;
        int64_t shape[8] = {0};
        if (tr->mod.tensor(tr->t, i, &name, &kind, &data, &rank, shape) != 0) continue;
        if (kind != RT_TENSOR_PARAM && kind != RT_TENSOR_BUFFER) continue;
        ts[k].name = name, ts[k].data = data, ts[k].rank = rank;
        for (int d = 0; d < rank && d < RT_MAX_RANK; d++) ts[k].shape[d] = shape[d];
        k++;
    }
    StrBuf meta = {0};
    sb_append(&meta, "{");
    sb_append(&meta, "\"format\":\"pt\",\"nnc_network\":");
    rt_json_string(&meta, tr->network);
    sb_printf(&meta, ",\"nnc_steps\":\"%ld\"}", tr->mod.get_step(tr->t));
    char err[1024];
    unsigned char *bytes = rt_st_encode(what, ts, k, meta.data, size, err, sizeof err);
    if (!bytes) tr_fail(tr, "%s", err);
    sb_free(&meta);
    free(ts);
    return bytes;
}

int nnc_trainer_save_weights(nnc_trainer *tr, const char *path)
{
    if (!tr) return -1;
    if (!path) return tr_fail(tr, "nnc_trainer_save_weights: the path is NULL");
    size_t size;
    unsigned char *bytes = encode_weights(tr, path, &size);
    if (!bytes) return -1;
    int rc = nnc_write_file_atomic(path, bytes, size);
    int e = errno;
    free(bytes);
    return rc ? tr_fail(tr, "%s: cannot write: %s", path, strerror(e)) : 0;
}

int nnc_trainer_weights(nnc_trainer *tr, void **data, size_t *size)
{
    if (!tr) return -1;
    if (!data || !size) return tr_fail(tr, "nnc_trainer_weights: %s is NULL", data ? "size" : "data");
    *data = encode_weights(tr, "<memory>", size);
    return *data ? 0 : -1;
}

const char *nnc_trainer_error(const nnc_trainer *tr) { return tr ? tr->err : "no trainer (NULL)"; }

void nnc_trainer_free(nnc_trainer *tr)
{
    if (!tr) return;
    if (tr->t) tr->mod.destroy(tr->t);
    rt_unload_train(&tr->mod);
    free(tr->network);
    free(tr);
}
