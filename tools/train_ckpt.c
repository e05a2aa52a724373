/* train_ckpt.c: checkpoints of `nnc train` (written after every epoch,
 * verified and checked against the run before --resume), their metadata and
 * the fingerprint of the settings an exact resume depends on, and the
 * --out weights. The reasons are in train.c's comment (exact resume,
 * integrity); the file format and checksum in runtime/checkpoint.h. */
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
bool write_checkpoint(const TrainArgs *t, const IrGraph *g, const RtTrainModule *m, void *inst, long epochs_done)
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
bool train_verify_weights(const char *cmd, const char *what, const char *path)
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
bool restore_checkpoint(const TrainArgs *t, const IrGraph *g, const RtTrainModule *m, void *inst, long batches,
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
bool write_weights(const TrainArgs *t, const IrGraph *g, const RtTrainModule *m, void *inst, long epochs)
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
