/* train.c: `nnc train` and `nnc eval`, the driver of a generated training module.
 *
 *   nnc train MODEL.net --data KIND:PATH [options]    (options: the usage text in tools/nnc_usage.c)
 *   nnc eval MODEL.net --weights W --data KIND:PATH [--batch N]
 *
 * The command line and the train section are in train_args.c, checkpoints
 * and --out in train_ckpt.c, what they share in train_internal.h.
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
 *                      source; compiled and loaded by rt_load_train
 *   create_instance    the initial weights: what `nnc init --seed S` writes,
 *                      overlaid by name with --weights (a tensor missing from
 *                      the file, or of another shape, stays fresh: the
 *                      "replace the classifier head" mode), handed to
 *                      PREFIX_train_create through a temporary safetensors file
 *   apply_freeze       --freeze globs: set_trainable(i, 0)
 *   restore_checkpoint --resume: checksum verified, settings compared, epoch
 *                      and step checked, tensors and step restored
 *   run_epochs         steps, test evaluation, progress, --log, --checkpoint;
 *                      each next batch is read and augmented on a thread of
 *                      the loader's while the step runs (DtPrefetch,
 *                      runtime/data.h; --no-prefetch: in turn, the same bits)
 *   write_weights      --out: parameters and buffers
 *
 * Exact resume. A checkpoint (written at the end of every epoch, atomically)
 * holds the whole tensor table of the module (parameters, buffers, optimizer
 * state) and the step counter. Everything else a run depends on is a pure
 * function of the command line and the epoch: the loader's order and
 * augmentation of epoch e come from (seed, e) (runtime/data.h), the learning
 * rate of epoch e is nnc_lr_at(e) (runtime/snippets/optim.c, included
 * by train_internal.h), dropout masks come from (seed, step). So restoring the table and the
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
#include "tools/train_internal.h"

#include "api/init_weights.h"
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
    if (!pass_run_training_pipeline(g, 2, (int)t->batch, NULL, NULL, err, sizeof err)) {
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
        ok = rt_load_train(src->c_src, src->h_src, src->header_name, src->prefix, m, err, TR_ERR) == 0;
    } else {
        IrLoc where = {NULL, 0, 0};
        CgTrainOptions o = {.max_batch = (int)t->batch, .header_name = "model_train.h", .source_path = t->model,
                            .err_loc = &where};
        if (!cg_emit_train_c(g, &o, &c, &h, err, TR_ERR)) {
            if (where.file)  /* about a place in the network: FILE:LINE:COL: error: ..., its line, a caret */
                fe_report_at(where, err);
            else
                fprintf(stderr, "nnc %s: %s: cannot generate training code for network '%s': %s\n", t->cmd,
                        t->model, g->name, err);
            goto done;
        }
        Arena names = {0};
        ok = rt_load_train(c.data, h.data, "model_train.h", cg_c_prefix(&names, g->name), m, err, TR_ERR) == 0;
        arena_free(&names);
    }
    if (!ok) fprintf(stderr, "nnc %s: %s\n", t->cmd, err);
    else if (m->max_batch() < t->batch) {
        fprintf(stderr, "nnc %s: the training module takes batches of at most %d, not %ld\n", t->cmd, m->max_batch(),
                t->batch);
        rt_unload_train(m);
        ok = false;
    }
done:
    sb_free(&c);
    sb_free(&h);
    free(err);
    return ok;
}

bool same_shape(const RtTensor *a, const RtTensor *b)
{
    if (a->rank != b->rank) return false;
    for (int d = 0; d < a->rank; d++)
        if (a->shape[d] != b->shape[d]) return false;
    return true;
}

const char *shape_text(const RtTensor *t, char *buf, size_t len)
{
    size_t k = (size_t)snprintf(buf, len, "[");
    for (int d = 0; d < t->rank && k < len; d++)
        k += (size_t)snprintf(buf + k, len - k, d ? ", %lld" : "%lld", (long long)t->shape[d]);
    if (k < len) snprintf(buf + k, len - k, "]");
    return buf;
}

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
bool tool_temp_path(char *path, size_t len, const char *what, int *slot)
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
    RtTensor *ts = nnc_init_tensors(g, t->cfg.seed);
    if (t->weights && !t->resume && !overlay_weights(t, g, ts)) goto done;
    if (!tool_temp_path(path, sizeof path, "weights", &slot)) goto done;
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
    nnc_init_free(ts, g->n_params);
    return inst;
}

TableEntry table_entry(const RtTrainModule *m, void *inst, int i)
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
static bool evaluate(const TrainArgs *t, const RtTrainModule *m, void *inst, DtPrefetch *p, double *loss,
                     double *acc)
{
    double sum = 0;
    long correct = 0, seen = 0;
    const float *images;
    const int32_t *labels;
    dt_prefetch_epoch(p, 0);
    int n;
    while ((n = dt_prefetch_next(p, &images, &labels)) > 0) {
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
    if (n < 0) {
        fprintf(stderr, "nnc %s: evaluation: %s\n", t->cmd, dt_prefetch_error(p));
        return false;
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
    DtPrefetch *train_batches, *test_batches;  /* the loaders' batches, made one ahead (--no-prefetch: in turn) */
} Run;

/* One epoch of steps; false when a step fails (a loss that is not finite). */
static bool train_epoch(Run *r, EpochStats *s, long e, bool tty)
{
    const TrainArgs *t = r->t;
    double lr = nnc_lr_at(&t->sched, e), last_draw = 0, t0 = now_seconds();
    const float *images;
    const int32_t *labels;
    dt_prefetch_epoch(r->train_batches, e);
    int n;
    while ((n = dt_prefetch_next(r->train_batches, &images, &labels)) > 0) {
        float loss;
        long correct;
        if (r->m->step(r->inst, n, images, labels, lr, &loss, &correct) != 0) {
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
    if (n < 0) {
        if (tty) printf("\n");
        fprintf(stderr, "nnc train: epoch %ld, step %ld of %ld: %s; training stopped\n", s->epoch, s->batch_no + 1,
                s->batches, dt_prefetch_error(r->train_batches));
        return false;
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
        if (r->has_test && !evaluate(t, r->m, r->inst, r->test_batches, &test_loss, &test_acc)) {
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
    int threaded = !t->no_prefetch;
    if ((!t->eval && dt_prefetch_init(&r->train_batches, &r->train_loader, (int)t->batch, threaded, err, sizeof err)) ||
        (r->has_test && dt_prefetch_init(&r->test_batches, &r->test_loader, (int)t->batch, threaded, err, sizeof err))) {
        fprintf(stderr, "nnc %s: %s\n", t->cmd, err);
        return false;
    }
    return true;
}

static void run_close(Run *r)
{
    if (r->inst) r->m->destroy(r->inst);
    dt_prefetch_free(r->train_batches);  /* the readers first: they use the loaders */
    dt_prefetch_free(r->test_batches);
    dt_loader_free(&r->train_loader);
    dt_loader_free(&r->test_loader);
    dt_close(&r->train);
    dt_close(&r->test);
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
    if (!evaluate(t, r->m, r->inst, r->test_batches, &loss, &acc)) return 1;
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
    rt_unload_train(&m);
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

