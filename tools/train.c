/* train.c: `nnc train` and `nnc eval`, the driver of a generated training module.
 *
 *   nnc train MODEL.net --data KIND:PATH [options]    (options: the usage text in tools/nnc.c)
 *   nnc eval MODEL.net --weights W --data KIND:PATH [--batch N]
 *
 * train reads as a list, one function a step:
 *   parse_args         the command line into TrainArgs (exit 2 on a misuse,
 *                      optimizer settings outside PyTorch's ranges included)
 *   check_outputs      --out, --checkpoint, --log writable, before any work
 *   load_graph         the model elaborated and cleaned up by the training
 *                      forms of the passes (identity removal, CSE, dead code):
 *                      training needs batchnorm with batch statistics and
 *                      dropout, which the inference pipeline folds or removes
 *   open_data          the train split and, if the set has one, the test split;
 *                      image shape and labels checked against the network
 *   load_module        the training module generated from the graph
 *                      (codegen/emit_train.h) or, for the tests, given as
 *                      source; compiled and loaded by rt_cc_load_train
 *   create_instance    the initial weights: what `nnc init --seed S` writes,
 *                      overlaid by name with --weights (a tensor missing from
 *                      the file, or of another shape, stays fresh: the
 *                      "replace the classifier head" mode), handed to
 *                      PREFIX_train_create through a temporary safetensors file
 *   apply_freeze       --freeze globs: set_trainable(i, 0)
 *   restore_checkpoint --resume: checksum verified, settings compared, epoch
 *                      and step checked, tensors and step restored
 *   run_epochs         steps, test evaluation, progress, --log, --checkpoint
 *   write_weights      --out: parameters and buffers
 *
 * Exact resume. A checkpoint (written at the end of every epoch, atomically)
 * holds the whole tensor table of the module (parameters, buffers, optimizer
 * state) and the step counter. Everything else a run depends on is a pure
 * function of the command line and the epoch: the loader's order and
 * augmentation of epoch e come from (seed, e) (runtime/data.h), the learning
 * rate of epoch e is nnc_lr_at(e) (runtime/snippets/optim.c, included
 * below), dropout masks come from (seed, step). So restoring the table and the
 * step and starting at the next epoch computes exactly what an uninterrupted
 * run computes. The settings that replay depends on are the fingerprint
 * (fingerprint()): stored in the checkpoint's metadata one string per setting
 * ("nnc_setting.lr": "0.10000000000000001"), so a refused resume names the
 * setting that differs.
 *
 * Integrity. A checkpoint carries a CRC32C of its bytes (runtime/checkpoint.h,
 * metadata key nnc_checksum), verified before --resume or --weights reads a
 * file that has one; every metadata field the resume depends on is checked
 * and named with its value when it is wrong (nnc_epoch, nnc_step against
 * epoch times the steps of an epoch, nnc_network, nnc_seed, each setting).
 * Temporaries (the atomic writer's, the JIT's folder, the initial weights)
 * follow common.h's "temporaries of nnc's own": removed on every exit path
 * that runs code, swept by the next run after a kill -9.
 *
 * The --log CSV is rewritten whole (atomically) at the end of every epoch,
 * never appended: a crash leaves the previous complete file; on --resume the
 * rows of the epochs the checkpoint covers are kept from the old file. */
#include "tools/train.h"

#include "codegen/emit_c.h"
#include "codegen/emit_train.h"
#include "common/common.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/checkpoint.h"
#include "runtime/data.h"
#include "runtime/jit_cc.h"
#include "runtime/snippets/optim.c"
#include "runtime/tensor_io.h"
#include "runtime/train_abi.h"

#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum {
    TR_MAX_LIST = 32,        /* --set, --freeze, multistep milestones */
    TR_MAX_SETTINGS = 24,    /* entries of the fingerprint */
    TR_ERR = 8192,           /* error buffers (compiler messages can be long) */
};

/* ---- weight initialization (nnc init) ---- */

RtTensor *train_init_tensors(const IrGraph *g, uint64_t seed)
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

void train_init_free(RtTensor *ts, int n)
{
    for (int i = 0; ts && i < n; i++) free(ts[i].data);
    free(ts);
}

/* ---- the command line ---- */

typedef struct TrainArgs {
    const char *cmd;                 /* "train" or "eval", for messages */
    bool eval;                       /* nnc eval */
    const char *model, *data, *weights, *out, *checkpoint, *log;
    FeOptions fe;                    /* --network, --set */
    FeDefine defines[TR_MAX_LIST];
    long epochs, batch, warmup;
    const char *optimizer;           /* sgd, adam, adamw */
    const char *loss;                /* cross-entropy, bce, mse */
    RtTrainConfig cfg;               /* optimizer settings, label smoothing, seed */
    double lr;
    bool weight_decay_set, momentum_set;
    const char *schedule;            /* as given */
    nnc_lr_schedule sched;
    long milestones[TR_MAX_LIST];
    bool resume, no_shuffle;
    const char *normalize, *augment; /* as given (NULL: none) */
    DtOptions dopt;                  /* shuffle, seed, normalize, augment */
    const char *freeze[TR_MAX_LIST];
    int n_freeze;
    char *kept[TR_MAX_LIST];         /* copies of the train section's values, freed by free_args */
    int n_kept;
    const char *at;                  /* while the train section is applied: where the setting stands */
    char *model_text;                /* the model's source, read once (a pipe cannot be read twice); freed by free_args */
    size_t model_len;
    struct {
        const char *flag;            /* an option the train section set ("--momentum") */
        char *at;                    /* "FILE:LINE:COL" of it (malloc'd) */
    } origin[TR_MAX_LIST];           /* cleared by the command line's own value */
    int n_origin;
} TrainArgs;

/* A copy of s that lives as long as t (the train section's values). */
static const char *train_keep(TrainArgs *t, const char *s)
{
    if (t->n_kept == TR_MAX_LIST) return s;  /* cannot happen: a section has fewer settings */
    return t->kept[t->n_kept++] = strdup(s);
}

/* A wrong command line (status 2); at: the train section's FILE:LINE:COL when the value came from there. */
static int usage_verror(const TrainArgs *t, const char *at, const char *fmt, va_list ap)
{
    fprintf(stderr, "nnc %s: ", t->cmd);
    if (at) fprintf(stderr, "%s: in the train section: ", at);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\nRun 'nnc --help' for the usage.\n");
    return 2;
}

static int usage_error(const TrainArgs *t, const char *fmt, ...) NNC_PRINTF(2, 3);
static int usage_error(const TrainArgs *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = usage_verror(t, t->at, fmt, ap);
    va_end(ap);
    return rc;
}

/* Where the train section set flag, or NULL (the command line's or the default). */
static const char *origin_of(const TrainArgs *t, const char *flag)
{
    for (int i = 0; i < t->n_origin; i++)
        if (strcmp(t->origin[i].flag, flag) == 0) return t->origin[i].at;
    return NULL;
}

/* A wrong value of flag found when the options are checked together. */
static int flag_error(const TrainArgs *t, const char *flag, const char *fmt, ...) NNC_PRINTF(3, 4);
static int flag_error(const TrainArgs *t, const char *flag, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = usage_verror(t, origin_of(t, flag), fmt, ap);
    va_end(ap);
    return rc;
}

/* Notes that flag got its value at t->at (the train section), or from the command line (t->at NULL). */
static void set_origin(TrainArgs *t, const char *flag)
{
    for (int i = 0; i < t->n_origin; i++)
        if (strcmp(t->origin[i].flag, flag) == 0) {
            free(t->origin[i].at);
            t->origin[i] = t->origin[--t->n_origin];
            break;
        }
    if (t->at && t->n_origin < TR_MAX_LIST) t->origin[t->n_origin++].flag = flag, t->origin[t->n_origin - 1].at = strdup(t->at);
}

bool cli_parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static bool parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v) || v < lo || v > hi) return false;
    *out = v;
    return true;
}

/* The options: whether each takes a value, and whether nnc eval takes it too. */
static const struct {
    const char *name;
    bool value, eval;
} tr_options[] = {
    {"--data", true, true},          {"--batch", true, true},        {"--weights", true, true},
    {"--network", true, true},       {"--set", true, true},          {"--normalize", true, true},
    {"--epochs", true, false},       {"--optimizer", true, false},   {"--lr", true, false},
    {"--momentum", true, false},     {"--nesterov", false, false},   {"--weight-decay", true, false},
    {"--label-smoothing", true, false}, {"--schedule", true, false}, {"--warmup", true, false},
    {"--seed", true, false},         {"--freeze", true, false},      {"--out", true, false},
    {"--checkpoint", true, false},   {"--resume", false, false},     {"--log", true, false},
    {"--no-shuffle", false, false},  {"--augment", true, false},    {"--loss", true, true},
    {"--aux-weight", true, true},
};

/* Stores the value v of option name (known, value present when it takes one). */
static int set_option(TrainArgs *t, const char *name, const char *v)
{
    set_origin(t, name);
    if (strcmp(name, "--data") == 0) t->data = v;
    else if (strcmp(name, "--weights") == 0) t->weights = v;
    else if (strcmp(name, "--out") == 0) t->out = v;
    else if (strcmp(name, "--checkpoint") == 0) t->checkpoint = v;
    else if (strcmp(name, "--log") == 0) t->log = v;
    else if (strcmp(name, "--network") == 0) t->fe.network = v;
    else if (strcmp(name, "--normalize") == 0) t->normalize = v;
    else if (strcmp(name, "--augment") == 0) t->augment = v;
    else if (strcmp(name, "--schedule") == 0) t->schedule = v;
    else if (strcmp(name, "--optimizer") == 0) t->optimizer = v;
    else if (strcmp(name, "--loss") == 0) t->loss = v;
    else if (strcmp(name, "--aux-weight") == 0) {
        if (!parse_double(v, 0, 1e6, &t->cfg.aux_weight))
            return usage_error(t, "--aux-weight needs a number >= 0 (GoogLeNet's is 0.3), got '%s'", v);
    }
    else if (strcmp(name, "--nesterov") == 0) t->cfg.nesterov = 1;
    else if (strcmp(name, "--resume") == 0) t->resume = true;
    else if (strcmp(name, "--no-shuffle") == 0) t->no_shuffle = true;
    else if (strcmp(name, "--batch") == 0) {
        if (!cli_parse_long(v, 1, 1 << 20, &t->batch))
            return usage_error(t, "--batch needs a whole number from 1 to 1048576, got '%s'", v);
    } else if (strcmp(name, "--epochs") == 0) {
        if (!cli_parse_long(v, 1, 1000000, &t->epochs))
            return usage_error(t, "--epochs needs a whole number from 1 to 1000000, got '%s'", v);
    } else if (strcmp(name, "--warmup") == 0) {
        if (!cli_parse_long(v, 0, 1000000, &t->warmup))
            return usage_error(t, "--warmup needs a whole number of epochs (0 or more), got '%s'", v);
    } else if (strcmp(name, "--lr") == 0) {
        if (!parse_double(v, 0, 1e300, &t->lr)) return usage_error(t, "--lr needs a number >= 0, got '%s'", v);
    } else if (strcmp(name, "--momentum") == 0) {
        /* torch.optim.SGD takes any momentum >= 0; nnc refuses 1 and more, where the
         * buffer never forgets a gradient (1) or grows without bound (> 1): the
         * steps grow with every epoch and training diverges */
        if (!parse_double(v, 0, 1e300, &t->cfg.momentum) || t->cfg.momentum >= 1)
            return usage_error(t, "--momentum needs a number from 0 up to but not including 1 (0.9 is usual; at 1 "
                                  "or more the updates grow without bound), got '%s'", v);
        t->momentum_set = true;
    } else if (strcmp(name, "--weight-decay") == 0) {
        if (!parse_double(v, 0, 1e300, &t->cfg.weight_decay))
            return usage_error(t, "--weight-decay needs a number >= 0, got '%s'", v);
        t->weight_decay_set = true;
    } else if (strcmp(name, "--label-smoothing") == 0) {
        if (!parse_double(v, 0, 1, &t->cfg.label_smoothing))
            return usage_error(t, "--label-smoothing needs a number from 0 to 1, got '%s'", v);
    } else if (strcmp(name, "--seed") == 0) {
        char *end;
        errno = 0;
        t->cfg.seed = strtoull(v, &end, 10);
        if (!*v || *end || errno || v[0] == '-') return usage_error(t, "--seed needs a whole number >= 0, got '%s'", v);
    } else if (strcmp(name, "--set") == 0) {
        const char *eq = strchr(v, '=');
        if (!eq || eq == v || t->fe.n_defines == TR_MAX_LIST) return usage_error(t, "--set needs NAME=VALUE, got '%s'", v);
        t->defines[t->fe.n_defines].name = strndup(v, (size_t)(eq - v));
        t->defines[t->fe.n_defines++].value = eq + 1;
    } else if (strcmp(name, "--freeze") == 0) {
        if (t->n_freeze == TR_MAX_LIST) return usage_error(t, "too many --freeze options (at most %d)", TR_MAX_LIST);
        t->freeze[t->n_freeze++] = v;
    } else {
        NNC_ASSERT(!"an option of tr_options without a case in set_option");
    }
    return 0;
}

/* --schedule: constant | step:STEP_SIZE[:GAMMA] | multistep:M1,M2,...[:GAMMA] | cosine[:ETA_MIN].
 * GAMMA defaults to 0.1 and ETA_MIN to 0, as in torch; the cosine period is
 * the epochs after the warm-up. Warm-up (--warmup W) ramps linearly from
 * lr / (W + 1): torch's LinearLR(start_factor=1/(W+1), total_iters=W). */
static bool parse_schedule(TrainArgs *t, bool *unsorted)
{
    *unsorted = false;
    nnc_lr_schedule *s = &t->sched;
    memset(s, 0, sizeof *s);
    s->base_lr = t->lr;
    s->gamma = 0.1;
    s->warmup = t->warmup;
    s->warmup_start = 1.0 / (double)(t->warmup + 1);
    const char *v = t->schedule ? t->schedule : "constant";
    char *end;
    if (strcmp(v, "constant") == 0) {
        s->kind = NNC_LR_CONSTANT;
        return true;
    }
    if (strncmp(v, "step:", 5) == 0) {
        s->kind = NNC_LR_STEP;
        errno = 0;
        s->step_size = strtol(v + 5, &end, 10);
        if (end == v + 5 || errno || s->step_size < 1) return false;
        if (*end == ':') return parse_double(end + 1, 0, 1e300, &s->gamma);
        return *end == 0;
    }
    if (strncmp(v, "multistep:", 10) == 0) {
        s->kind = NNC_LR_MULTISTEP;
        s->milestones = t->milestones;
        const char *p = v + 10;
        for (;;) {
            if (s->n_milestones == TR_MAX_LIST) return false;
            errno = 0;
            long m = strtol(p, &end, 10);
            if (end == p || errno || m < 0 || *p == '-' || *p == '+') return false;
            if (s->n_milestones && m <= t->milestones[s->n_milestones - 1]) {
                *unsorted = true;  /* MultiStepLR counts a repeated milestone twice: refused, as is a step back */
                return false;
            }
            t->milestones[s->n_milestones++] = m;
            if (*end != ',') break;
            p = end + 1;
        }
        if (*end == ':') return parse_double(end + 1, 0, 1e300, &s->gamma);
        return *end == 0;
    }
    if (strncmp(v, "cosine", 6) == 0 && (v[6] == 0 || v[6] == ':')) {
        s->kind = NNC_LR_COSINE;
        s->t_max = t->epochs - t->warmup > 1 ? t->epochs - t->warmup : 1;
        return v[6] == 0 || parse_double(v + 7, 0, 1e300, &s->eta_min);
    }
    return false;
}

/* --augment: comma-separated crop:P, flip, jitter:A. */
static bool parse_augment(const char *v, DtOptions *o)
{
    const char *p = v;
    while (*p) {
        size_t len = strcspn(p, ",");
        char item[64];
        if (len == 0 || len >= sizeof item) return false;
        memcpy(item, p, len);
        item[len] = 0;
        long n;
        double a;
        if (strcmp(item, "flip") == 0) o->hflip = 1;
        else if (strncmp(item, "crop:", 5) == 0 && cli_parse_long(item + 5, 1, 1 << 20, &n)) o->crop_pad = (int)n;
        else if (strncmp(item, "jitter:", 7) == 0 && parse_double(item + 7, 1e-30, 1, &a)) o->jitter = (float)a;
        else return false;
        p += len;
        if (*p == ',') p++;
    }
    return true;
}

/* Checks the options together once all are read. */
static int check_args(TrainArgs *t)
{
    if (!t->model) return usage_error(t, "no model file given");
    if (!t->data) return usage_error(t, "--data KIND:PATH is required (kinds: mnist, fashion-mnist, cifar10, npy)");
    const char *ls = t->loss;
    if (strcmp(ls, "cross-entropy") == 0) t->cfg.loss = RT_LOSS_CROSS_ENTROPY;
    else if (strcmp(ls, "bce") == 0) t->cfg.loss = RT_LOSS_BCE;
    else if (strcmp(ls, "mse") == 0) t->cfg.loss = RT_LOSS_MSE;
    else return usage_error(t, "--loss takes cross-entropy, bce or mse, not '%s'", ls);
    if (t->eval) {
        if (!t->weights) return usage_error(t, "--weights W.safetensors is required");
    } else {
        const char *o = t->optimizer;
        if (strcmp(o, "sgd") == 0) t->cfg.optimizer = RT_OPTIM_SGD;
        else if (strcmp(o, "adam") == 0) t->cfg.optimizer = RT_OPTIM_ADAM;
        else if (strcmp(o, "adamw") == 0) t->cfg.optimizer = RT_OPTIM_ADAMW;
        else return usage_error(t, "--optimizer takes sgd, adam or adamw, not '%s'", o);
        if (t->momentum_set && t->cfg.optimizer != RT_OPTIM_SGD)
            return flag_error(t, "--momentum", "--momentum applies to --optimizer sgd only (adam and adamw use betas "
                                               "0.9, 0.999)");
        if (t->cfg.nesterov && t->cfg.optimizer != RT_OPTIM_SGD)
            return flag_error(t, "--nesterov", "--nesterov applies to --optimizer sgd only");
        if (t->cfg.nesterov && t->cfg.momentum <= 0)  /* torch: nesterov needs momentum > 0 and dampening 0 (nnc's is 0) */
            return flag_error(t, "--nesterov", "--nesterov needs --momentum greater than 0, got %g", t->cfg.momentum);
        if (t->cfg.optimizer == RT_OPTIM_ADAMW && !t->weight_decay_set) t->cfg.weight_decay = 0.01;  /* torch's default */
        bool unsorted;
        if (!parse_schedule(t, &unsorted) && unsorted)
            return flag_error(t, "--schedule", "--schedule '%s': the milestones of multistep must increase strictly "
                                               "(e.g. multistep:2,5)", t->schedule);
        if (!parse_schedule(t, &unsorted))
            return flag_error(t, "--schedule", "--schedule takes constant, step:STEP_SIZE[:GAMMA], "
                                               "multistep:M1,M2,...[:GAMMA] or cosine[:ETA_MIN] (whole epochs, numbers "
                                               ">= 0), not '%s'", t->schedule);
        if (t->augment && !parse_augment(t->augment, &t->dopt))
            return usage_error(t, "--augment takes crop:P (P >= 1 pixels), flip and jitter:A (0 < A <= 1), "
                                  "separated by commas, not '%s'", t->augment);
        if (t->resume && !t->checkpoint) return usage_error(t, "--resume needs --checkpoint PATH (the file to resume from)");
    }
    char err[512];
    if (t->normalize && dt_parse_normalize(t->normalize, &t->dopt, err, sizeof err) != 0) return usage_error(t, "%s", err);
    t->dopt.shuffle = !t->no_shuffle;
    t->dopt.seed = t->cfg.seed;
    return 0;
}

/* Whether option flag is given on the command line (as "--flag" or "--flag=V"). */
static bool on_command_line(int argc, char **argv, const char *flag)
{
    size_t n = strlen(flag);
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], flag, n) == 0 && (argv[i][n] == 0 || argv[i][n] == '=')) return true;
    return false;
}

/* Applies the model's train section (frontend.h fe_train_settings) as options.
 * The model and --network are found on the command line first; a section
 * setting that nnc eval does not take is skipped by it. */
static int section_defaults(int argc, char **argv, TrainArgs *t)
{
    const char *model = NULL;
    FeOptions fe = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || !a[1]) {
            if (!model) model = a;
        } else if (strcmp(a, "--network") == 0 && i + 1 < argc) {
            fe.network = argv[++i];
        } else if (strncmp(a, "--network=", 10) == 0) {
            fe.network = a + 10;
        } else {
            size_t len = strcspn(a, "=");
            for (size_t k = 0; k < NNC_COUNT(tr_options); k++)  /* skip the value of an option that takes one */
                if (strlen(tr_options[k].name) == len && strncmp(a, tr_options[k].name, len) == 0 &&
                    tr_options[k].value && a[len] != '=')
                    i++;
        }
    }
    if (!model) return 0;  /* check_args reports it */
    Arena arena = {0};
    Diag d;
    diag_init(&d, &arena);
    FeTrainSetting *st = NULL;
    int n = 0, rc = 0;
    t->model_text = fe_read_source(model, &t->model_len, &d);
    if (!t->model_text || !fe_train_settings_text(model, t->model_text, t->model_len, &fe, &st, &n, &d)) {
        fputs(d.out.data ? d.out.data : "", stderr);
        rc = 1;
    }
    for (int i = 0; i < n && !rc; i++) {
        size_t k = 0;
        while (k < NNC_COUNT(tr_options) && strcmp(tr_options[k].name, st[i].flag)) k++;
        NNC_ASSERT(k < NNC_COUNT(tr_options));
        if (t->eval && !tr_options[k].eval) continue;
        if (on_command_line(argc, argv, st[i].flag)) continue;  /* overridden: its value is never read, nor refused */
        char at[1200];
        const Loc *l = &st[i].loc;
        snprintf(at, sizeof at, "%s:%d:%d", l->file ? l->file->path : model, l->line, l->col);
        t->at = at;  /* a refused value names its place in the file */
        /* the values live in the arena: keep copies, TrainArgs points at them to the end */
        rc = set_option(t, tr_options[k].name, st[i].value ? train_keep(t, st[i].value) : NULL);
        t->at = NULL;
    }
    diag_free(&d);
    arena_free(&arena);
    return rc;
}

static int parse_args(int argc, char **argv, TrainArgs *t)
{
    memset(t, 0, sizeof *t);
    t->cmd = argv[0];
    t->eval = strcmp(argv[0], "eval") == 0;
    t->epochs = 1;
    t->batch = 64;
    t->lr = 0.01;
    t->optimizer = "sgd";
    t->loss = "cross-entropy";
    t->cfg.aux_weight = 0.3;  /* GoogLeNet's auxiliary classifiers (Szegedy et al.; torchvision) */
    t->cfg.beta1 = 0.9, t->cfg.beta2 = 0.999, t->cfg.eps = 1e-8;  /* torch's Adam defaults */
    t->fe.defines = t->defines;
    /* the .net file's `train` section supplies defaults between these built-in
     * ones and the command line (which is read after it and overrides it) */
    int rc0 = section_defaults(argc, argv, t);
    if (rc0) return rc0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || !a[1]) {
            if (t->model) return usage_error(t, "unexpected argument '%s' (one model file at a time)", a);
            t->model = a;
            continue;
        }
        size_t len = strcspn(a, "=");
        size_t k = 0;
        while (k < NNC_COUNT(tr_options) && (strlen(tr_options[k].name) != len || strncmp(a, tr_options[k].name, len)))
            k++;
        if (k == NNC_COUNT(tr_options)) return usage_error(t, "unknown option '%s'", a);
        const char *name = tr_options[k].name, *v = NULL;
        if (t->eval && !tr_options[k].eval) return usage_error(t, "%s is an option of nnc train, not of nnc eval", name);
        if (tr_options[k].value) {
            v = a[len] == '=' ? a + len + 1 : i + 1 < argc ? argv[++i] : "";
            if (!*v) return usage_error(t, "%s needs a value", name);
        } else if (a[len] == '=') {
            return usage_error(t, "%s takes no value", name);
        }
        int rc = set_option(t, name, v);
        if (rc) return rc;
    }
    return check_args(t);
}

static void free_args(TrainArgs *t)
{
    for (int i = 0; i < t->fe.n_defines; i++) free((char *)t->defines[i].name);
    for (int i = 0; i < t->n_kept; i++) free(t->kept[i]);
    for (int i = 0; i < t->n_origin; i++) free(t->origin[i].at);
    free(t->model_text);
}

/* ---- model, data, module ---- */

/* The model elaborated and cleaned up for training (pass_run_training_pipeline:
 * identity removal, CSE, dead code; batchnorm and dropout as they are);
 * diagnostics printed. */
static IrGraph *load_graph(const TrainArgs *t, Arena *arena)
{
    Diag d;
    diag_init(&d, arena);
    IrGraph *g = t->model_text ? fe_compile_text(t->model, t->model_text, t->model_len, &t->fe, &d)
                               : fe_compile(t->model, &t->fe, &d);
    fputs(d.out.data ? d.out.data : "", stderr);
    diag_free(&d);
    if (!g) return NULL;
    char err[512];
    if (!pass_run_training_pipeline(g, 2, NULL, NULL, err, sizeof err)) {
        fprintf(stderr, "nnc: internal error after a pass: %s\n", err);
        ir_free(g);
        return NULL;
    }
    return g;
}

/* One input of the data's image shape and one output of shape [classes]. */
static bool check_network(const TrainArgs *t, const IrGraph *g, const DtSet *set, int64_t *classes)
{
    if (g->n_inputs != 1 || g->n_outputs < 1) {
        fprintf(stderr, "nnc %s: %s: network '%s' has %d inputs and %d outputs; training and evaluation take "
                        "one input (the images) and the class scores as the first output (more outputs are "
                        "auxiliary classifiers, as GoogLeNet's)\n",
                t->cmd, t->model, g->name, g->n_inputs, g->n_outputs);
        return false;
    }
    const IrValue *in = &g->values[g->inputs[0]];
    const IrShape *out = &g->values[g->outputs[0].value].shape;
    char want[96], got[96];
    ir_shape_str(&in->shape, want, sizeof want);
    snprintf(got, sizeof got, "[%lld, %lld, %lld]", (long long)set->c, (long long)set->h, (long long)set->w);
    if (in->shape.rank != 3 || in->shape.dim[0] != set->c || in->shape.dim[1] != set->h || in->shape.dim[2] != set->w) {
        fprintf(stderr, "nnc %s: %s has images of shape %s, but input '%s' of network '%s' is %s\n", t->cmd, t->data,
                got, in->name, g->name, want);
        return false;
    }
    if (out->rank != 1) {
        ir_shape_str(out, want, sizeof want);
        fprintf(stderr, "nnc %s: %s: output '%s' of network '%s' has shape %s; training needs one score per class, [classes]\n",
                t->cmd, t->model, g->outputs[0].name, g->name, want);
        return false;
    }
    *classes = out->dim[0];
    if (*classes == 1 && t->cfg.loss != RT_LOSS_BCE && t->cfg.loss != RT_LOSS_MSE) {
        fprintf(stderr, "nnc %s: %s: network '%s' has one output score: a binary classifier; use --loss bce "
                        "(labels 0 and 1)\n", t->cmd, t->model, g->name);
        return false;
    }
    char err[1024];
    if (dt_check_classes(set, *classes == 1 ? 2 : *classes, err, sizeof err) != 0) {  /* one logit: labels 0, 1 */
        fprintf(stderr, "nnc %s: %s\n", t->cmd, err);
        return false;
    }
    return true;
}

/* Opens split of --data into set, checked against the network. */
static bool open_split(const TrainArgs *t, const IrGraph *g, DtSplit split, DtSet *set)
{
    char err[2048];
    int64_t classes;
    if (dt_open(set, t->data, split, err, sizeof err) != 0) {
        fprintf(stderr, "nnc %s: %s\n", t->cmd, err);
        return false;
    }
    return check_network(t, g, set, &classes);
}

/* Generates (or takes) the training module and loads it; checks its max batch. */
static bool load_module(const TrainArgs *t, const IrGraph *g, const TrainSource *src, RtTrainModule *m)
{
    char *err = nnc_xmalloc(TR_ERR);
    bool ok = false;
    StrBuf c = {0}, h = {0};
    if (src) {
        ok = rt_cc_load_train(src->c_src, src->h_src, src->header_name, src->prefix, m, err, TR_ERR) == 0;
    } else {
        CgTrainOptions o = {.max_batch = (int)t->batch, .header_name = "model_train.h", .source_path = t->model};
        if (!cg_emit_train_c(g, &o, &c, &h, err, TR_ERR)) {
            fprintf(stderr, "nnc %s: %s: cannot generate training code for network '%s': %s\n", t->cmd, t->model,
                    g->name, err);
            goto done;
        }
        Arena names = {0};
        ok = rt_cc_load_train(c.data, h.data, "model_train.h", cg_c_prefix(&names, g->name), m, err, TR_ERR) == 0;
        arena_free(&names);
    }
    if (!ok) fprintf(stderr, "nnc %s: %s\n", t->cmd, err);
    else if (m->max_batch() < t->batch) {
        fprintf(stderr, "nnc %s: the training module takes batches of at most %d, not %ld\n", t->cmd, m->max_batch(),
                t->batch);
        rt_cc_unload_train(m);
        ok = false;
    }
done:
    sb_free(&c);
    sb_free(&h);
    free(err);
    return ok;
}

static bool same_shape(const RtTensor *a, const RtTensor *b)
{
    if (a->rank != b->rank) return false;
    for (int d = 0; d < a->rank; d++)
        if (a->shape[d] != b->shape[d]) return false;
    return true;
}

static const char *shape_text(const RtTensor *t, char *buf, size_t len)
{
    size_t k = (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < t->rank && k < len; d++)
        k += (size_t)snprintf(buf + k, len - k, d ? ", %lld" : "%lld", (long long)t->shape[d]);
    if (k < len) snprintf(buf + k, len - k, "]");
    return buf;
}

static bool train_verify_weights(const char *cmd, const char *what, const char *path);

/* Overlays ts (the fresh tensors) with --weights by name; a tensor the file
 * lacks, or has in another shape, stays fresh, with a note naming it. */
static bool overlay_weights(const TrainArgs *t, const IrGraph *g, RtTensor *ts)
{
    RtTensor *w;
    int n;
    char err[1024], a[96], b[96];
    if (!train_verify_weights(t->cmd, "--weights", t->weights)) return false;
    if (rt_st_read(t->weights, &w, &n, err, sizeof err) != 0) {
        fprintf(stderr, "nnc %s: %s\n", t->cmd, err);
        return false;
    }
    int used = 0;
    for (int32_t i = 0; i < g->n_params; i++) {
        int j = 0;
        while (j < n && strcmp(w[j].name, ts[i].name) != 0) j++;
        if (j < n && same_shape(&w[j], &ts[i])) {
            memcpy(ts[i].data, w[j].data, (size_t)rt_tensor_numel(&ts[i]) * sizeof(float));
            used++;
        } else if (j < n) {
            fprintf(stderr, "nnc: note: %s: '%s' has shape %s, network '%s' has %s; initialized afresh (--seed %llu), "
                            "as a replaced classifier head\n", t->weights, ts[i].name, shape_text(&w[j], a, sizeof a),
                    g->name, shape_text(&ts[i], b, sizeof b), (unsigned long long)t->cfg.seed);
        } else {
            fprintf(stderr, "nnc: note: %s has no tensor '%s'; initialized afresh (--seed %llu)\n", t->weights,
                    ts[i].name, (unsigned long long)t->cfg.seed);
        }
    }
    if (used == 0 && g->n_params > 0)
        fprintf(stderr, "nnc: note: %s: no tensor of it is used by network '%s' (names differ?)\n", t->weights, g->name);
    rt_tensors_free(w, n);
    return true;
}

/* A fresh temporary file (it exists, empty), $TMPDIR/nnc-WHAT-PID-XXXXXX,
 * tracked for removal on a fatal signal (*slot; common.h, temporaries of
 * nnc's own); the leftovers of killed runs are swept first. */
static bool temp_path(char *path, size_t len, const char *what, int *slot)
{
    const char *tmp = getenv("TMPDIR");
    char prefix[64];
    tmp = tmp && *tmp ? tmp : "/tmp";
    snprintf(prefix, sizeof prefix, "nnc-%s-", what);
    nnc_tmp_sweep(tmp, prefix);
    snprintf(path, len, "%s/%s%ld-XXXXXX", tmp, prefix, (long)getpid());
    int fd = mkstemp(path);
    if (fd < 0) {
        fprintf(stderr, "nnc: cannot create a temporary file %s: %s\n", path, strerror(errno));
        return false;
    }
    *slot = nnc_tmp_track(path, 0);
    close(fd);
    return true;
}

/* A training instance with the initial weights (see the top comment). */
static void *create_instance(const TrainArgs *t, const IrGraph *g, const RtTrainModule *m)
{
    void *inst = NULL;
    char path[1100], err[1024];
    int slot = -1;
    RtTensor *ts = train_init_tensors(g, t->cfg.seed);
    if (t->weights && !t->resume && !overlay_weights(t, g, ts)) goto done;
    if (!temp_path(path, sizeof path, "weights", &slot)) goto done;
    if (rt_st_write(path, ts, g->n_params, "{\"format\":\"pt\"}", err, sizeof err) != 0) {
        fprintf(stderr, "nnc %s: %s\n", t->cmd, err);
    } else if (m->create(&inst, path, &t->cfg) != 0) {
        fprintf(stderr, "nnc %s: %s\n", t->cmd, m->last_error(inst));
        m->destroy(inst);
        inst = NULL;
    }
    unlink(path);
    nnc_tmp_untrack(slot);
done:
    train_init_free(ts, g->n_params);
    return inst;
}

/* One entry of the tensor table. */
typedef struct TableEntry {
    const char *name;
    int kind;
    RtTensor t;   /* name, rank, shape, data (the instance's) */
} TableEntry;

static TableEntry table_entry(const RtTrainModule *m, void *inst, int i)
{
    TableEntry e;
    memset(&e, 0, sizeof e);
    int64_t shape[8] = {0};
    m->tensor(inst, i, &e.name, &e.kind, &e.t.data, &e.t.rank, shape);
    e.t.name = e.name;
    for (int d = 0; d < e.t.rank && d < RT_MAX_RANK; d++) e.t.shape[d] = shape[d];
    return e;
}

/* --freeze: every parameter whose name matches a glob is not updated. */
static bool apply_freeze(const TrainArgs *t, const IrGraph *g, const RtTrainModule *m, void *inst)
{
    int n = m->tensor_count(inst), frozen = 0;
    for (int p = 0; p < t->n_freeze; p++) {
        int matched = 0;
        for (int i = 0; i < n; i++) {
            TableEntry e = table_entry(m, inst, i);
            if (e.kind != RT_TENSOR_PARAM || fnmatch(t->freeze[p], e.name, 0) != 0) continue;
            if (m->set_trainable(inst, i, 0) != 0) {
                fprintf(stderr, "nnc train: --freeze: %s\n", m->last_error(inst));
                return false;
            }
            matched++;
        }
        if (!matched) {
            StrBuf names = {0};
            int listed = 0;
            for (int i = 0; i < n && listed < 8; i++) {
                TableEntry e = table_entry(m, inst, i);
                if (e.kind == RT_TENSOR_PARAM) sb_printf(&names, "%s%s", listed++ ? ", " : "", e.name);
            }
            fprintf(stderr, "nnc train: --freeze '%s' matches no parameter of network '%s' (patterns use * and ?; "
                            "its parameters: %s%s)\n", t->freeze[p], g->name, names.data ? names.data : "none",
                    listed == 8 ? ", ..." : "");
            sb_free(&names);
            return false;
        }
        frozen += matched;
    }
    if (t->n_freeze) fprintf(stderr, "nnc: note: %d parameter tensor%s frozen\n", frozen, frozen == 1 ? "" : "s");
    return true;
}

/* ---- checkpoints: metadata and fingerprint ---- */

/* One setting an exact resume depends on: its option and canonical value. */
typedef struct Setting {
    const char *key;   /* the option without "--" ("lr"), or "model" */
    char *value;       /* malloc'd */
} Setting;

static char *xprintf(const char *fmt, ...) NNC_PRINTF(1, 2);
static char *xprintf(const char *fmt, ...)
{
    StrBuf sb = {0};
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&sb, fmt, ap);
    va_end(ap);
    return sb.data ? sb.data : strdup("");
}

/* path made absolute (a resume from another directory is the same run). */
static char *canonical_path(const char *path)
{
    char cwd[4096];
    if (path[0] == '/' || !getcwd(cwd, sizeof cwd)) return strdup(path);
    while (strncmp(path, "./", 2) == 0) path += 2;
    return xprintf("%s/%s", cwd, path);
}

static int fingerprint(const TrainArgs *t, const IrGraph *g, Setting *s)
{
    int n = 0;
    StrBuf sets = {0}, freeze = {0};
    for (int i = 0; i < t->fe.n_defines; i++) sb_printf(&sets, "%s%s=%s", i ? "," : "", t->defines[i].name, t->defines[i].value);
    for (int i = 0; i < t->n_freeze; i++) sb_printf(&freeze, "%s%s", i ? "," : "", t->freeze[i]);
    const char *colon = strchr(t->data, ':');
    char *dir = canonical_path(colon ? colon + 1 : t->data);
    s[n++] = (Setting){"model", canonical_path(t->model)};
    s[n++] = (Setting){"network", strdup(g->name)};
    s[n++] = (Setting){"set", strdup(sets.data ? sets.data : "")};
    s[n++] = (Setting){"data", xprintf("%.*s:%s", colon ? (int)(colon - t->data) : 0, t->data, dir)};
    s[n++] = (Setting){"batch", xprintf("%ld", t->batch)};
    s[n++] = (Setting){"optimizer", strdup(t->optimizer)};
    s[n++] = (Setting){"lr", xprintf("%.17g", t->lr)};
    s[n++] = (Setting){"momentum", xprintf("%.17g", t->cfg.momentum)};
    s[n++] = (Setting){"nesterov", xprintf("%d", t->cfg.nesterov)};
    s[n++] = (Setting){"weight-decay", xprintf("%.17g", t->cfg.weight_decay)};
    s[n++] = (Setting){"label-smoothing", xprintf("%.17g", t->cfg.label_smoothing)};
    s[n++] = (Setting){"loss", strdup(t->loss)};
    s[n++] = (Setting){"aux-weight", xprintf("%.17g", t->cfg.aux_weight)};
    if (t->sched.kind == NNC_LR_COSINE)  /* its period comes from --epochs */
        s[n++] = (Setting){"schedule", xprintf("%s (annealed over %ld epochs)", t->schedule, t->sched.t_max)};
    else
        s[n++] = (Setting){"schedule", strdup(t->schedule ? t->schedule : "constant")};
    s[n++] = (Setting){"warmup", xprintf("%ld", t->warmup)};
    s[n++] = (Setting){"seed", xprintf("%llu", (unsigned long long)t->cfg.seed)};
    s[n++] = (Setting){"no-shuffle", xprintf("%d", t->no_shuffle)};
    s[n++] = (Setting){"normalize", strdup(t->normalize ? t->normalize : "")};
    s[n++] = (Setting){"augment", strdup(t->augment ? t->augment : "")};
    s[n++] = (Setting){"freeze", strdup(freeze.data ? freeze.data : "")};
    NNC_ASSERT(n <= TR_MAX_SETTINGS);
    free(dir);
    sb_free(&sets);
    sb_free(&freeze);
    return n;
}

static void free_settings(Setting *s, int n)
{
    for (int i = 0; i < n; i++) free(s[i].value);
}

/* FNV-1a over "key=value\n" of every setting, as 16 hex digits. */
static void fingerprint_hash(const Setting *s, int n, char out[17])
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < n; i++) {
        const char *parts[] = {s[i].key, "=", s[i].value, "\n"};
        for (size_t p = 0; p < NNC_COUNT(parts); p++)
            for (const unsigned char *c = (const unsigned char *)parts[p]; *c; c++) h = (h ^ *c) * 1099511628211ull;
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

static void json_pair(StrBuf *sb, const char *key, const char *value)
{
    sb_append(sb, sb->len > 1 ? "," : "");
    rt_json_string(sb, key);
    sb_append(sb, ":");
    rt_json_string(sb, value);
}

/* The metadata of a safetensors file (runtime/checkpoint.h). */
static bool st_metadata(const char *path, char ***kv, int *n) { return rt_checkpoint_metadata(path, kv, n); }
static const char *meta_get(char **kv, int n, const char *key) { return rt_checkpoint_meta_get(kv, n, key); }
static void meta_free(char **kv, int n) { rt_checkpoint_meta_free(kv, n); }

/* Writes every tensor of the table and the metadata, atomically, with the
 * checksum of runtime/checkpoint.h. */
static bool write_checkpoint(const TrainArgs *t, const IrGraph *g, const RtTrainModule *m, void *inst, long epochs_done)
{
    int n = m->tensor_count(inst);
    RtTensor *ts = nnc_xcalloc((size_t)(n ? n : 1), sizeof *ts);
    for (int i = 0; i < n; i++) ts[i] = table_entry(m, inst, i).t;
    Setting s[TR_MAX_SETTINGS];
    int ns = fingerprint(t, g, s);
    char hash[17], num[32], err[1024];
    fingerprint_hash(s, ns, hash);
    StrBuf meta = {0};
    sb_append(&meta, "{");
    json_pair(&meta, "format", "pt");
    json_pair(&meta, "nnc_network", g->name);
    snprintf(num, sizeof num, "%ld", epochs_done);
    json_pair(&meta, "nnc_epoch", num);
    snprintf(num, sizeof num, "%ld", m->get_step(inst));
    json_pair(&meta, "nnc_step", num);
    snprintf(num, sizeof num, "%llu", (unsigned long long)t->cfg.seed);
    json_pair(&meta, "nnc_seed", num);
    json_pair(&meta, "nnc_fingerprint", hash);
    for (int i = 0; i < ns; i++) {
        char key[64];
        snprintf(key, sizeof key, "nnc_setting.%s", s[i].key);
        json_pair(&meta, key, s[i].value);
    }
    sb_append(&meta, "}");
    bool ok = rt_checkpoint_write(t->checkpoint, ts, n, meta.data, err, sizeof err) == 0;  /* with nnc_checksum */
    if (!ok) fprintf(stderr, "nnc train: %s\n", err);
    sb_free(&meta);
    free_settings(s, ns);
    free(ts);
    return ok;
}

/* Compares the checkpoint's settings with this run's; names the first that differs. */
static bool check_fingerprint(const TrainArgs *t, const IrGraph *g, char **kv, int nkv)
{
    Setting s[TR_MAX_SETTINGS];
    int ns = fingerprint(t, g, s);
    char hash[17];
    fingerprint_hash(s, ns, hash);
    const char *theirs = meta_get(kv, nkv, "nnc_fingerprint");
    bool ok = theirs && strcmp(theirs, hash) == 0;
    if (!theirs) {
        fprintf(stderr, "nnc train: --resume: %s is not a checkpoint of nnc train (its metadata has no nnc_fingerprint)\n",
                t->checkpoint);
    }
    bool named = false;
    for (int i = 0; theirs && !ok && i < ns; i++) {  /* every setting that differs */
        char key[64];
        snprintf(key, sizeof key, "nnc_setting.%s", s[i].key);
        const char *v = meta_get(kv, nkv, key);
        if (v && strcmp(v, s[i].value) == 0) continue;
        const char *dashes = strcmp(s[i].key, "model") == 0 ? "" : "--";
        fprintf(stderr, "nnc train: --resume: %s was written with %s%s '%s', this run has %s%s '%s'; an exact resume "
                        "needs the same settings (or start afresh without --resume)\n", t->checkpoint, dashes, s[i].key,
                v ? v : "(not recorded)", dashes, s[i].key, s[i].value);
        named = true;
    }
    if (theirs && !ok && !named)  /* every setting equal, the hash not: another version's fingerprint */
        fprintf(stderr, "nnc train: --resume: %s: its fingerprint %s differs from this run's %s\n", t->checkpoint,
                theirs, hash);
    free_settings(s, ns);
    return ok;
}

/* Verifies the checksum of a file weights are loaded from (runtime/checkpoint.h):
 * false after a message when it carries one that does not match; a file
 * without one (PyTorch's, nnc init's, --out's) passes. what: "--resume". */
static bool train_verify_weights(const char *cmd, const char *what, const char *path)
{
    char err[1024];
    int64_t size;
    const char *why;
    int fd = nnc_open_regular(path, &size, &why);  /* a FIFO would block the loader's fopen: refused here */
    if (fd < 0) {
        fprintf(stderr, "nnc %s: %s %s: %s\n", cmd, what, path, why);
        return false;
    }
    close(fd);
    if (rt_checkpoint_verify_file(path, err, sizeof err) != RT_CKPT_CORRUPT) return true;
    fprintf(stderr, "nnc %s: %s %s\n", cmd, what, err);
    return false;
}

/* A metadata number: a whole number >= 0 written alone; says what is wrong with it. */
static bool meta_count(const TrainArgs *t, char **kv, int nkv, const char *key, long *out)
{
    const char *v = meta_get(kv, nkv, key);
    if (v && cli_parse_long(v, 0, LONG_MAX, out)) return true;
    if (!v) fprintf(stderr, "nnc train: --resume: %s: %s is missing from its metadata\n", t->checkpoint, key);
    else fprintf(stderr, "nnc train: --resume: %s: %s = %s is not a whole number >= 0\n", t->checkpoint, key, v);
    return false;
}

/* The epoch and step of the checkpoint, each checked, and checked together:
 * a checkpoint is written after a whole epoch, so its step counter is
 * epochs times the steps of one epoch. Every inconsistent field is named. */
static bool checkpoint_position(const TrainArgs *t, const IrGraph *g, char **kv, int nkv, long batches, long *epoch,
                                long *step)
{
    bool ok = meta_count(t, kv, nkv, "nnc_epoch", epoch);
    ok = meta_count(t, kv, nkv, "nnc_step", step) && ok;
    if (ok && (*epoch > LONG_MAX / (batches ? batches : 1) || *step != *epoch * batches)) {
        fprintf(stderr, "nnc train: --resume: %s: nnc_step = %ld does not match epoch %ld of %ld steps (batches of "
                        "%ld); the checkpoint was edited, or the training data changed since it was written\n",
                t->checkpoint, *step, *epoch, batches, t->batch);
        ok = false;
    }
    const char *net = meta_get(kv, nkv, "nnc_network"), *seed = meta_get(kv, nkv, "nnc_seed");
    if (net && strcmp(net, g->name) != 0) {
        fprintf(stderr, "nnc train: --resume: %s: nnc_network = '%s', this run trains network '%s'\n", t->checkpoint,
                net, g->name);
        ok = false;
    }
    char mine[32];
    snprintf(mine, sizeof mine, "%llu", (unsigned long long)t->cfg.seed);
    if (seed && strcmp(seed, mine) != 0) {
        fprintf(stderr, "nnc train: --resume: %s: nnc_seed = %s, this run has --seed %s\n", t->checkpoint, seed, mine);
        ok = false;
    }
    return ok;
}

/* The checkpoint's tensors into the instance's table, each found by name and shape. */
static bool restore_tensors(const TrainArgs *t, const RtTrainModule *m, void *inst, const RtTensor *w, int n)
{
    char a[96], b[96];
    int count = m->tensor_count(inst);
    for (int i = 0; i < count; i++) {
        TableEntry e = table_entry(m, inst, i);
        int j = 0;
        while (j < n && strcmp(w[j].name, e.name) != 0) j++;
        if (j == n || !same_shape(&w[j], &e.t)) {
            if (j == n) fprintf(stderr, "nnc train: --resume: %s has no tensor '%s'\n", t->checkpoint, e.name);
            else fprintf(stderr, "nnc train: --resume: %s: '%s' has shape %s, the model %s\n", t->checkpoint, e.name,
                         shape_text(&w[j], a, sizeof a), shape_text(&e.t, b, sizeof b));
            return false;
        }
        memcpy(e.t.data, w[j].data, (size_t)rt_tensor_numel(&e.t) * sizeof(float));
    }
    return true;
}

/* --resume: checksum verified, settings compared, epoch and step checked,
 * every tensor of the table and the step restored; *start is the first epoch
 * still to run; batches the steps of one epoch.
 *
 * A checkpoint without nnc_checksum (written before checksums existed) is
 * accepted with a warning rather than refused: its settings, epoch, step and
 * every tensor's name and shape are still checked, refusing it would strand a
 * long run half way through an upgrade of nnc, and the checkpoints this run
 * writes carry the checksum. */
static bool restore_checkpoint(const TrainArgs *t, const IrGraph *g, const RtTrainModule *m, void *inst, long batches,
                               long *start)
{
    RtTensor *w = NULL;
    int n = 0, nkv = 0;
    char **kv = NULL, err[1024];
    long step = 0;
    bool ok = false;
    RtCkptStatus sum = rt_checkpoint_verify_file(t->checkpoint, err, sizeof err);
    if (sum == RT_CKPT_CORRUPT) {
        fprintf(stderr, "nnc train: --resume %s\n", err);
        return false;
    }
    if (rt_st_read(t->checkpoint, &w, &n, err, sizeof err) != 0) {
        fprintf(stderr, "nnc train: --resume: %s\n", err);
        return false;
    }
    if (!st_metadata(t->checkpoint, &kv, &nkv)) {
        fprintf(stderr, "nnc train: --resume: %s: cannot read its metadata\n", t->checkpoint);
        goto done;
    }
    if (!check_fingerprint(t, g, kv, nkv) || !checkpoint_position(t, g, kv, nkv, batches, start, &step) ||
        !restore_tensors(t, m, inst, w, n))
        goto done;
    if (sum == RT_CKPT_UNSIGNED)
        fprintf(stderr, "nnc: warning: %s has no %s (written by an nnc without checkpoint checksums); its integrity "
                        "cannot be verified, its settings, epoch, step and tensors were checked; the checkpoints of "
                        "this run carry the checksum\n", t->checkpoint, RT_CKPT_KEY);
    m->set_step(inst, step);
    ok = true;
done:
    meta_free(kv, nkv);
    rt_tensors_free(w, n);
    return ok;
}

/* --out: the parameters and buffers, as a weights file. */
static bool write_weights(const TrainArgs *t, const IrGraph *g, const RtTrainModule *m, void *inst, long epochs)
{
    int n = m->tensor_count(inst), k = 0;
    RtTensor *ts = nnc_xcalloc((size_t)(n ? n : 1), sizeof *ts);
    for (int i = 0; i < n; i++) {
        TableEntry e = table_entry(m, inst, i);
        if (e.kind == RT_TENSOR_PARAM || e.kind == RT_TENSOR_BUFFER) ts[k++] = e.t;
    }
    char err[1024], num[32];
    StrBuf meta = {0};
    sb_append(&meta, "{");
    json_pair(&meta, "format", "pt");
    json_pair(&meta, "nnc_network", g->name);
    snprintf(num, sizeof num, "%ld", epochs);
    json_pair(&meta, "nnc_epochs", num);
    sb_append(&meta, "}");
    bool ok = rt_st_write(t->out, ts, k, meta.data, err, sizeof err) == 0;
    if (!ok) fprintf(stderr, "nnc train: %s\n", err);
    sb_free(&meta);
    free(ts);
    return ok;
}

/* ---- the training loop ---- */

static const char log_header[] = "epoch,train_loss,train_accuracy,test_loss,test_accuracy,images_per_second\n";

/* The rows of an existing --log for epochs 1 .. epochs (a resumed run keeps them). */
static void log_keep_rows(const char *path, long epochs, StrBuf *rows)
{
    size_t len;
    const char *why;
    char *text = nnc_read_file(path, &len, &why);
    if (!text) return;
    if (strncmp(text, log_header, sizeof log_header - 1) == 0) {
        for (char *line = text + sizeof log_header - 1; *line;) {
            char *nl = strchr(line, '\n');
            if (!nl) break;  /* an unfinished row */
            long e = strtol(line, NULL, 10);
            if (e >= 1 && e <= epochs) sb_appendn(rows, line, (size_t)(nl - line + 1));
            line = nl + 1;
        }
    }
    free(text);
}

static bool log_write(const char *path, const StrBuf *rows)
{
    StrBuf all = {0};
    sb_append(&all, log_header);
    if (rows->data) sb_append(&all, rows->data);
    bool ok = nnc_write_file_atomic(path, all.data, all.len) == 0;
    if (!ok) fprintf(stderr, "nnc train: cannot write '%s': %s\n", path, strerror(errno));
    sb_free(&all);
    return ok;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* What an epoch has done so far, for the progress display and the log. */
typedef struct EpochStats {
    long epoch, epochs;         /* 1-based epoch, of epochs */
    long batch_no, batches;     /* batches done, of batches */
    double loss_sum;            /* sum of batch mean loss * batch size */
    long correct, images;
    double seconds;             /* training time of this epoch so far */
} EpochStats;

static double stat_loss(const EpochStats *s) { return s->images ? s->loss_sum / (double)s->images : 0.0; }
static double stat_acc(const EpochStats *s) { return s->images ? (double)s->correct / (double)s->images : 0.0; }
static double stat_rate(const EpochStats *s) { return s->seconds > 0 ? (double)s->images / s->seconds : 0.0; }

/* A terminal gets one line redrawn in place (at most 10 times a second); a
 * pipe or file a plain line every tenth of the epoch. */
static void show_progress(const EpochStats *s, bool tty, double *last_draw)
{
    if (tty) {
        double now = now_seconds();
        if (now - *last_draw < 0.1 && s->batch_no < s->batches) return;
        *last_draw = now;
        double per_batch = s->batch_no ? s->seconds / (double)s->batch_no : 0.0;
        long eta = (long)(per_batch * (double)(s->batches - s->batch_no + (s->epochs - s->epoch) * s->batches));
        char bar[21];
        int fill = (int)(20 * s->batch_no / (s->batches ? s->batches : 1));
        for (int i = 0; i < 20; i++) bar[i] = i < fill ? '=' : ' ';
        bar[20] = 0;
        printf("\repoch %ld/%ld [%s] %ld/%ld  loss %.4f  acc %.4f  %.0f img/s  ETA %ld:%02ld\033[K", s->epoch,
               s->epochs, bar, s->batch_no, s->batches, stat_loss(s), stat_acc(s), stat_rate(s), eta / 60, eta % 60);
        fflush(stdout);
        return;
    }
    long every = (s->batches + 9) / 10;
    if (s->batch_no % every == 0 && s->batch_no < s->batches) {
        printf("epoch %ld/%ld step %ld/%ld: loss %.4f accuracy %.4f, %.0f img/s\n", s->epoch, s->epochs, s->batch_no,
               s->batches, stat_loss(s), stat_acc(s), stat_rate(s));
        fflush(stdout);
    }
}

/* Loss and accuracy of the model in inference mode over a whole split. */
static bool evaluate(const TrainArgs *t, const RtTrainModule *m, void *inst, DtLoader *l, float *images,
                     int32_t *labels, double *loss, double *acc)
{
    double sum = 0;
    long correct = 0, seen = 0;
    dt_epoch_begin(l, 0);
    int n;
    while ((n = dt_next_batch(l, images, labels, (int)t->batch)) > 0) {
        float bl;
        long c;
        if (m->eval(inst, n, images, labels, &bl, &c) != 0) {
            fprintf(stderr, "nnc %s: evaluation: %s\n", t->cmd, m->last_error(inst));
            return false;
        }
        sum += (double)bl * n;
        correct += c;
        seen += n;
    }
    *loss = seen ? sum / (double)seen : 0;
    *acc = seen ? (double)correct / (double)seen : 0;
    return true;
}

/* Everything a run holds. */
typedef struct Run {
    const TrainArgs *t;
    const IrGraph *g;
    const RtTrainModule *m;
    void *inst;
    DtSet train, test;
    bool has_test;
    DtLoader train_loader, test_loader;
    float *images;
    int32_t *labels;
} Run;

/* One epoch of steps; false when a step fails (a loss that is not finite). */
static bool train_epoch(Run *r, EpochStats *s, long e, bool tty)
{
    const TrainArgs *t = r->t;
    double lr = nnc_lr_at(&t->sched, e), last_draw = 0, t0 = now_seconds();
    dt_epoch_begin(&r->train_loader, e);
    int n;
    while ((n = dt_next_batch(&r->train_loader, r->images, r->labels, (int)t->batch)) > 0) {
        float loss;
        long correct;
        if (r->m->step(r->inst, n, r->images, r->labels, lr, &loss, &correct) != 0) {
            if (tty) printf("\n");
            fprintf(stderr, "nnc train: epoch %ld, step %ld of %ld (lr %g): %s; training stopped", s->epoch,
                    s->batch_no + 1, s->batches, lr, r->m->last_error(r->inst));
            if (t->checkpoint && e > 0) fprintf(stderr, "; %s still holds epoch %ld", t->checkpoint, e);
            fprintf(stderr, "\n");
            return false;
        }
        s->batch_no++;
        s->loss_sum += (double)loss * n;
        s->correct += correct;
        s->images += n;
        s->seconds = now_seconds() - t0;
        show_progress(s, tty, &last_draw);
    }
    return true;
}

static int run_epochs(Run *r, long start)
{
    const TrainArgs *t = r->t;
    bool tty = isatty(1);
    StrBuf rows = {0};
    if (t->log && t->resume) log_keep_rows(t->log, start, &rows);
    int rc = 0;
    for (long e = start; e < t->epochs && rc == 0; e++) {
        EpochStats s = {.epoch = e + 1, .epochs = t->epochs};
        s.batches = dt_batches_per_epoch(&r->train_loader, (int)t->batch);
        if (!train_epoch(r, &s, e, tty)) {
            rc = 1;
            break;
        }
        double test_loss = 0, test_acc = 0;
        if (r->has_test && !evaluate(t, r->m, r->inst, &r->test_loader, r->images, r->labels, &test_loss, &test_acc)) {
            rc = 1;
            break;
        }
        printf("%sepoch %ld/%ld: train loss %.4f accuracy %.4f", tty ? "\r" : "", s.epoch, s.epochs, stat_loss(&s),
               stat_acc(&s));
        if (r->has_test) printf(", test loss %.4f accuracy %.4f", test_loss, test_acc);
        printf(", %.0f img/s, %.1f s%s\n", stat_rate(&s), s.seconds, tty ? "\033[K" : "");
        fflush(stdout);
        if (t->log) {
            sb_printf(&rows, "%ld,%.6f,%.6f,", s.epoch, stat_loss(&s), stat_acc(&s));
            if (r->has_test) sb_printf(&rows, "%.6f,%.6f", test_loss, test_acc);
            else sb_append(&rows, ",");
            sb_printf(&rows, ",%.1f\n", stat_rate(&s));
            if (!log_write(t->log, &rows)) rc = 1;
        }
        if (t->checkpoint && rc == 0 && !write_checkpoint(t, r->g, r->m, r->inst, e + 1)) rc = 1;
    }
    sb_free(&rows);
    return rc;
}

/* ---- the commands ---- */

/* The data of a run, checked against the network: what train and eval share.
 * false: an error was printed. */
static bool run_open(Run *r, const TrainArgs *t, const IrGraph *g)
{
    r->t = t, r->g = g;
    char err[1024];
    r->has_test = dt_has_test(t->data);
    if (t->eval) {  /* the test split if there is one, else the train split */
        if (!open_split(t, g, r->has_test ? DT_TEST : DT_TRAIN, &r->test)) return false;
        r->has_test = true;
    } else {
        if (!open_split(t, g, DT_TRAIN, &r->train)) return false;
        if (r->has_test && !open_split(t, g, DT_TEST, &r->test)) return false;
        if (dt_loader_init(&r->train_loader, &r->train, &t->dopt, err, sizeof err) != 0) {
            fprintf(stderr, "nnc %s: %s\n", t->cmd, err);
            return false;
        }
    }
    DtOptions plain = {0};  /* evaluation: file order, no augmentation, the same normalization */
    plain.norm_count = t->dopt.norm_count;
    memcpy(plain.mean, t->dopt.mean, sizeof plain.mean);
    memcpy(plain.std, t->dopt.std, sizeof plain.std);
    if (r->has_test && dt_loader_init(&r->test_loader, &r->test, &plain, err, sizeof err) != 0) {
        fprintf(stderr, "nnc %s: %s\n", t->cmd, err);
        return false;
    }
    const DtSet *any = t->eval ? &r->test : &r->train;
    r->images = nnc_xmalloc((size_t)t->batch * (size_t)dt_image_size(any) * sizeof(float));
    r->labels = nnc_xmalloc((size_t)t->batch * sizeof(int32_t));
    return true;
}

static void run_close(Run *r)
{
    if (r->inst) r->m->destroy(r->inst);
    dt_loader_free(&r->train_loader);
    dt_loader_free(&r->test_loader);
    dt_close(&r->train);
    dt_close(&r->test);
    free(r->images);
    free(r->labels);
}

static int train_run(Run *r)
{
    const TrainArgs *t = r->t;
    long start = 0;
    if (!(r->inst = create_instance(t, r->g, r->m))) return 1;
    if (!apply_freeze(t, r->g, r->m, r->inst)) return 1;
    if (t->resume) {
        long batches = dt_batches_per_epoch(&r->train_loader, (int)t->batch);
        if (!restore_checkpoint(t, r->g, r->m, r->inst, batches, &start)) return 1;
        if (start >= t->epochs)
            fprintf(stderr, "nnc: note: %s has %ld epochs done already (--epochs %ld); nothing to train\n",
                    t->checkpoint, start, t->epochs);
        else
            fprintf(stderr, "nnc: note: resuming from %s after epoch %ld\n", t->checkpoint, start);
    }
    if (run_epochs(r, start) != 0) return 1;
    return t->out && !write_weights(t, r->g, r->m, r->inst, start > t->epochs ? start : t->epochs) ? 1 : 0;
}

static int eval_run(Run *r)
{
    const TrainArgs *t = r->t;
    double loss, acc;
    if (!train_verify_weights(t->cmd, "--weights", t->weights)) return 1;
    if (r->m->create(&r->inst, t->weights, &t->cfg) != 0) {
        fprintf(stderr, "nnc eval: %s\n", r->m->last_error(r->inst));
        r->m->destroy(r->inst);
        r->inst = NULL;
        return 1;
    }
    fprintf(stderr, "nnc: evaluating on the %s split of %s (%lld images)\n", r->test.split == DT_TEST ? "test" : "train",
            t->data, (long long)r->test.n);
    if (!evaluate(t, r->m, r->inst, &r->test_loader, r->images, r->labels, &loss, &acc)) return 1;
    printf("loss: %.6f\naccuracy: %.6f\n", loss, acc);
    return 0;
}

/* Every output path of nnc train checked before any work, so that a long
 * run cannot end in "cannot write" (common.h nnc_check_writable: nothing is
 * left behind). Returns 0, 2 for one file named twice, 1 for a path that
 * cannot be written. */
static int check_outputs(const TrainArgs *t)
{
    const struct {
        const char *flag, *path;
    } outs[] = {{"--out", t->out}, {"--checkpoint", t->checkpoint}, {"--log", t->log}};
    char why[1200];
    for (size_t i = 0; i < NNC_COUNT(outs); i++) {
        if (!outs[i].path) continue;
        for (size_t j = 0; j < i; j++)
            if (outs[j].path && strcmp(outs[j].path, outs[i].path) == 0)
                return usage_error(t, "%s and %s name the same file '%s'; give each its own", outs[j].flag,
                                   outs[i].flag, outs[i].path);
        if (nnc_check_writable(outs[i].path, why, sizeof why) != 0) {
            fprintf(stderr, "nnc train: %s '%s' cannot be written: %s; nothing was trained (choose a writable path)\n",
                    outs[i].flag, outs[i].path, why);
            return 1;
        }
    }
    return 0;
}

/* Parses, elaborates, opens the data, loads the module, and runs train or eval. */
static int command(int argc, char **argv, const TrainSource *src)
{
    TrainArgs t;
    int rc = parse_args(argc, argv, &t);
    if (!rc && !t.eval) rc = check_outputs(&t);
    if (rc) {
        free_args(&t);
        return rc;
    }
    Arena arena = {0};
    RtTrainModule m;
    Run r;
    memset(&m, 0, sizeof m);
    memset(&r, 0, sizeof r);
    r.m = &m;
    IrGraph *g = load_graph(&t, &arena);
    rc = 1;
    if (g && run_open(&r, &t, g) && load_module(&t, g, src, &m)) rc = t.eval ? eval_run(&r) : train_run(&r);
    run_close(&r);
    rt_cc_unload_train(&m);
    ir_free(g);
    arena_free(&arena);
    free_args(&t);
    return rc;
}

int train_main(int argc, char **argv, const TrainSource *src)
{
    NNC_ASSERT(argc >= 1 && strcmp(argv[0], "train") == 0);
    return command(argc, argv, src);
}

int eval_main(int argc, char **argv, const TrainSource *src)
{
    NNC_ASSERT(argc >= 1 && strcmp(argv[0], "eval") == 0);
    return command(argc, argv, src);
}
