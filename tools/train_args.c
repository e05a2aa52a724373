/* train_args.c: the command line of `nnc train` and `nnc eval`, and the
 * model's train section, into TrainArgs (train_internal.h). The section's
 * values come first and remember where they stand (FILE:LINE:COL), flags
 * override them; the options are then checked together, a wrong one with
 * exit status 2 and, when the section gave it, its place. */
#include "tools/train_internal.h"

#include "codegen/emit_c.h"
#include "codegen/emit_train.h"
#include "passes/passes.h"
#include "runtime/checkpoint.h"

#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- the command line ---- */


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

int usage_error(const TrainArgs *t, const char *fmt, ...)
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
    {"--aux-weight", true, true},    {"--no-prefetch", false, true},
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
    else if (strcmp(name, "--no-prefetch") == 0) t->no_prefetch = true;
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

int parse_args(int argc, char **argv, TrainArgs *t)
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

void free_args(TrainArgs *t)
{
    for (int i = 0; i < t->fe.n_defines; i++) free((char *)t->defines[i].name);
    for (int i = 0; i < t->n_kept; i++) free(t->kept[i]);
    for (int i = 0; i < t->n_origin; i++) free(t->origin[i].at);
    free(t->model_text);
}
