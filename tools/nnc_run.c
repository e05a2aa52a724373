/* nnc_run.c: `nnc run`, inference from the command line. Everything that can
 * be checked is checked before the model is compiled: the weights file, the
 * --output names, every --input's header against the input's declared shape
 * and the batch limit (then its data), and the --labels count. The model is
 * then generated, compiled and loaded as the public API does (api/nnc.c), run
 * once on the whole batch, and its outputs written as .npy, or their arg-max
 * printed per sample (against the labels, if given). */
#include "tools/nnc_internal.h"

#include "api/nnc_internal.h"
#include "codegen/emit_c.h"
#include "runtime/checkpoint.h"
#include "runtime/tensor_io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static bool is_idx(const char *path) { return ends_with(path, "-ubyte") || ends_with(path, "-ubyte.gz"); }

#define RUN_MAX_BATCH (1 << 20)  /* most samples nnc run takes at once; --limit takes fewer */

/* An --input file whose header has been read and whose data has not: the
 * shape is checked against the input's declaration and the batch limit first,
 * so /dev/zero, a huge header or the wrong file ends before any data is read. */
typedef struct {
    bool idx;           /* IDX (MNIST) bytes, else .npy float32 */
    RtNpyReader npy;
    RtIdxReader ubyte;
} InputFile;

/* Opens an input file and puts its header's shape in t (no data yet). */
static bool open_input(const char *path, InputFile *f, RtTensor *t, char *err, size_t errlen)
{
    memset(f, 0, sizeof *f);
    memset(t, 0, sizeof *t);
    f->npy.fd = -1;
    f->idx = is_idx(path);
    if (f->idx ? rt_idx_open(&f->ubyte, path, err, errlen) : rt_npy_open(&f->npy, path, err, errlen)) return false;
    t->rank = f->idx ? f->ubyte.rank : f->npy.rank;
    memcpy(t->shape, f->idx ? f->ubyte.dims : f->npy.shape, sizeof t->shape);
    return true;
}

static void close_input(InputFile *f)
{
    if (f->idx) rt_idx_close(&f->ubyte);
    else rt_npy_close(&f->npy);
}

/* Reads the first `rows` samples of an opened input into t->data (t's shape,
 * checked by match_input, gets rows as its batch): .npy float32 as is, IDX
 * bytes scaled to [0, 1]. */
static bool read_input(InputFile *f, int64_t rows, RtTensor *t, char *err, size_t errlen)
{
    t->shape[0] = rows;
    if (!f->idx) {
        RtTensor got;
        if (rt_npy_read_rows(&f->npy, rows, &got, err, errlen) != 0) return false;
        t->data = got.data;
        return true;
    }
    RtIdx idx;
    if (rt_idx_read_rows(&f->ubyte, rows, &idx, err, errlen) != 0) return false;
    t->data = nnc_xmalloc((idx.size ? idx.size : 1) * sizeof(float));
    for (size_t i = 0; i < idx.size; i++) t->data[i] = idx.data[i] / 255.0f;
    rt_idx_free(&idx);
    return true;
}

/* Checks t against input value v: [N, dims...], or IDX images [N, H, W] for a
 * [1, H, W] input, which gains its channel axis here. */
static bool match_input(const IrValue *v, const char *path, RtTensor *t, char *err, size_t errlen)
{
    char want[96];
    ir_shape_str(&v->shape, want, sizeof want);
    /* [N, H, W] given for a [1, H, W] input (IDX images): add the channel axis */
    if (t->rank == v->shape.rank && v->shape.rank >= 2 && v->shape.dim[0] == 1 && t->shape[1] == v->shape.dim[1]) {
        for (int i = t->rank; i > 1; i--) t->shape[i] = t->shape[i - 1];
        t->shape[1] = 1;
        t->rank++;
    }
    bool ok = t->rank == v->shape.rank + 1 && t->shape[0] >= 1;
    for (int i = 0; ok && i < v->shape.rank; i++) ok = t->shape[i + 1] == v->shape.dim[i];
    if (!ok) {
        StrBuf got = {0};
        for (int i = 0; i < t->rank; i++) sb_printf(&got, i ? ", %lld" : "%lld", (long long)t->shape[i]);
        snprintf(err, errlen, "%s: input '%s' has shape [%s], the network expects [N, %s", path, v->name,
                 got.data ? got.data : "", want + 1);
        sb_free(&got);
        return false;
    }
    return true;
}

static int find_input(const IrGraph *g, const char *name)
{
    for (int32_t i = 0; i < g->n_inputs; i++)
        if (strcmp(g->values[g->inputs[i]].name, name) == 0) return i;
    return -1;
}

static int find_output(const IrGraph *g, const char *name)
{
    for (int32_t i = 0; i < g->n_outputs; i++)
        if (strcmp(g->outputs[i].name, name) == 0) return i;
    return -1;
}

/* Splits "NAME=PATH"; false when there is no '='. */
static bool split_binding(const char *s, char *name, size_t len, const char **path)
{
    const char *eq = strchr(s, '=');
    if (!eq || eq == s || (size_t)(eq - s) >= len || !eq[1]) return false;
    memcpy(name, s, (size_t)(eq - s));
    name[eq - s] = 0;
    *path = eq + 1;
    return true;
}

/* Reads every --input: *batch receives the samples used (after --limit),
 * *samples those the first input's file holds (what --labels must match). */
static bool load_inputs(const Cli *c, const IrGraph *g, RtTensor *ins, int64_t *batch, int64_t *samples)
{
    char name[256], err[1024];
    const char *path;
    *batch = *samples = -1;
    for (int i = 0; i < c->n_inputs; i++) {
        if (!split_binding(c->inputs[i], name, sizeof name, &path)) {
            fprintf(stderr, "nnc: --input needs NAME=FILE, got '%s'\n", c->inputs[i]);
            return false;
        }
        int k = find_input(g, name);
        if (k < 0) {
            fprintf(stderr, "nnc: --input %s: network '%s' has no input named '%s'\n", c->inputs[i], g->name, name);
            return false;
        }
        if (ins[k].data) {
            fprintf(stderr, "nnc: --input: input '%s' is given twice\n", name);
            return false;
        }
        InputFile f;
        RtTensor t;
        if (!open_input(path, &f, &t, err, sizeof err)) {
            fprintf(stderr, "nnc: %s\n", err);
            return false;
        }
        if (!match_input(&g->values[g->inputs[k]], path, &t, err, sizeof err)) {
            fprintf(stderr, "nnc: %s\n", err);
            close_input(&f);
            return false;
        }
        int64_t have = t.shape[0], use = c->limit > 0 && have > c->limit ? c->limit : have;
        bool ok = false;
        if (use > RUN_MAX_BATCH)
            fprintf(stderr, "nnc: %s: input '%s' has %lld samples, more than nnc run takes at once (%d); use --limit\n",
                    path, name, (long long)use, RUN_MAX_BATCH);
        else if (*batch >= 0 && use != *batch)
            fprintf(stderr, "nnc: %s: input '%s' has %lld samples, but another input has %lld; all inputs need the same batch\n",
                    path, name, (long long)use, (long long)*batch);
        else if (!read_input(&f, use, &t, err, sizeof err))
            fprintf(stderr, "nnc: %s\n", err);
        else
            ok = true;
        close_input(&f);
        if (!ok) return false;
        ins[k] = t;
        *batch = use;
        if (*samples < 0) *samples = have;
    }
    for (int32_t i = 0; i < g->n_inputs; i++)
        if (!ins[i].data) {
            const char *nm = g->values[g->inputs[i]].name;
            fprintf(stderr, "nnc: input '%s' of network '%s' is not given; add --input %s=FILE.npy\n", nm, g->name, nm);
            return false;
        }
    return true;
}

/* Reads --labels (a 1-d IDX file, a byte per sample) before the model runs:
 * it holds one label per sample of the input file (or per sample used, with
 * --limit); *labels receives the first n. */
static bool load_labels(const char *path, int64_t samples, int64_t n, RtIdx *labels)
{
    RtIdxReader r;
    char err[1024];
    if (rt_idx_open(&r, path, err, sizeof err) != 0) {
        fprintf(stderr, "nnc: --labels %s\n", err);
        return false;
    }
    bool ok = false;
    if (r.rank != 1)
        fprintf(stderr, "nnc: --labels %s: has %d dimensions; labels are a 1-d IDX file, one byte per sample\n", path, r.rank);
    else if (r.dims[0] != samples && r.dims[0] != n)
        fprintf(stderr, "nnc: --labels %s: holds %lld labels, but the input has %lld samples%s; give the labels of the same samples\n",
                path, (long long)r.dims[0], (long long)samples, n != samples ? " (fewer with --limit)" : "");
    else if (rt_idx_read_rows(&r, n, labels, err, sizeof err) != 0)
        fprintf(stderr, "nnc: --labels %s\n", err);
    else
        ok = true;
    rt_idx_close(&r);
    return ok;
}

/* Prints each output's arg-max per sample, compared with labels if given
 * (already checked: one per sample). */
static void print_predictions(const IrGraph *g, float *const *outs, int64_t n, const RtIdx *labels)
{
    bool have_labels = labels != NULL;
    for (int32_t o = 0; o < g->n_outputs; o++) {
        int64_t per = ir_shape_elems(&g->values[g->outputs[o].value].shape), correct = 0;
        for (int64_t i = 0; i < n; i++) {
            const float *y = outs[o] + i * per;
            int64_t best = 0;
            for (int64_t k = 1; k < per; k++)
                if (y[k] > y[best]) best = k;
            printf("%s[%lld]: class %lld (score %.4g)", g->outputs[o].name, (long long)i, (long long)best, y[best]);
            if (have_labels) {
                printf(", label %d%s", labels->data[i], labels->data[i] == best ? "" : "  <- wrong");
                correct += labels->data[i] == best;
            }
            printf("\n");
        }
        if (have_labels)
            printf("%s: %lld of %lld correct (%.1f%%)\n", g->outputs[o].name, (long long)correct, (long long)n,
                   100.0 * (double)correct / (double)n);
    }
}

static int write_outputs(const Cli *c, const IrGraph *g, float *const *outs, int64_t n)
{
    char name[256], err[1024];
    const char *path;
    for (int i = 0; i < c->n_outputs; i++) {
        split_binding(c->outputs[i], name, sizeof name, &path);
        int k = find_output(g, name);
        const IrShape *s = &g->values[g->outputs[k].value].shape;
        RtTensor t = {.name = name, .rank = s->rank + 1, .data = outs[k]};
        t.shape[0] = n;
        for (int d = 0; d < s->rank; d++) t.shape[d + 1] = s->dim[d];
        if (rt_npy_write(path, &t, err, sizeof err) != 0) {
            fprintf(stderr, "nnc: %s\n", err);
            return 1;
        }
    }
    return 0;
}

static bool check_outputs(const Cli *c, const IrGraph *g)
{
    char name[256];
    const char *path;
    for (int i = 0; i < c->n_outputs; i++) {
        if (!split_binding(c->outputs[i], name, sizeof name, &path)) {
            fprintf(stderr, "nnc: --output needs NAME=FILE.npy, got '%s'\n", c->outputs[i]);
            return false;
        }
        if (find_output(g, name) < 0) {
            fprintf(stderr, "nnc: --output %s: network '%s' has no output named '%s'\n", c->outputs[i], g->name, name);
            return false;
        }
    }
    return true;
}

/* The weights file may hold tensors the network does not read (a checkpoint
 * of a larger model, auxiliary heads switched off): fine, but a misspelled
 * layer name would hide among them, so say which, on standard error. */
static void note_unused_weights(const char *path, const IrGraph *g)
{
    char **names, err[512];
    int n, unused = 0;
    if (rt_st_names(path, &names, &n, err, sizeof err) != 0) return;  /* create has read it already */
    StrBuf list = {0};
    for (int i = 0; i < n; i++) {
        size_t len = strlen(names[i]);
        if (len >= 19 && strcmp(names[i] + len - 19, "num_batches_tracked") == 0) continue;  /* PyTorch's counter */
        bool used = false;
        for (int32_t p = 0; p < g->n_params && !used; p++) used = strcmp(g->values[g->params[p]].name, names[i]) == 0;
        if (used) continue;
        if (unused++ < 5) sb_printf(&list, "%s%s", unused > 1 ? ", " : "", names[i]);
    }
    if (unused)
        fprintf(stderr, "nnc: note: %s: %d tensor%s not used by network '%s' (%s%s)\n", path, unused,
                unused == 1 ? " is" : "s are", g->name, list.data, unused > 5 ? ", ..." : "");
    sb_free(&list);
    free(names);
}

static int run_model(const Cli *c, IrGraph *g, RtTensor *ins, int64_t n, const RtIdx *labels)
{
    CgOptions o = {.max_batch = (int)n, .header_name = "model.h", .source_path = c->model,
                   .no_memory_plan = c->opt_level < 2};
    char err[4096], *why = NULL;
    int rc = 1;
    nnc_instance *inst = NULL;
    float **outs = nnc_xcalloc((size_t)g->n_outputs, sizeof *outs);
    const float **in_ptrs = nnc_xcalloc((size_t)g->n_inputs, sizeof *in_ptrs);
    /* a checkpoint's checksum, before the code is generated and compiled */
    if (rt_checkpoint_verify_file(c->weights, err, sizeof err) == RT_CKPT_CORRUPT) {
        fprintf(stderr, "nnc run: --weights %s\n", err);
        goto done;
    }
    int stage = nnc_load_graph(g, &o, c->weights, &inst, &why);  /* generate, compile, load, create (api/nnc.c) */
    if (stage == NNC_LOAD_EMIT) fprintf(stderr, "nnc: %s: %s\n", c->model, why);
    else if (stage != 0) fprintf(stderr, "nnc: %s\n", why);
    if (stage != 0) goto done;
    note_unused_weights(c->weights, g);
    for (int32_t i = 0; i < g->n_inputs; i++) in_ptrs[i] = ins[i].data;
    for (int32_t i = 0; i < g->n_outputs; i++)
        outs[i] = nnc_xmalloc((size_t)n * (size_t)ir_shape_elems(&g->values[g->outputs[i].value].shape) * sizeof(float));
    if (nnc_forward(inst, (int)n, in_ptrs, outs) != 0) {
        fprintf(stderr, "nnc: %s\n", nnc_instance_error(inst));
    } else if (c->n_outputs) {
        rc = write_outputs(c, g, outs, n);
    } else {
        print_predictions(g, outs, n, labels);
        rc = 0;
    }
done:
    nnc_instance_free(inst);
    free(why);
    for (int32_t i = 0; i < g->n_outputs; i++) free(outs[i]);
    free(outs);
    free(in_ptrs);
    return rc;
}

int cmd_run(const Cli *c)
{
    if (!c->weights) return cli_fail_usage("nnc run needs --weights W.safetensors%s", "");
    Arena arena = {0};
    IrGraph *g = cli_load_model(c, &arena);
    if (!g) { arena_free(&arena); return 1; }
    RtTensor *ins = nnc_xcalloc((size_t)g->n_inputs, sizeof *ins);
    RtIdx labels = {0};
    int64_t n, samples;
    int rc = 1;
    /* everything checked before the model is compiled and run: the weights
     * file is a regular file (the generated loader would block on a FIFO),
     * the inputs' shapes, the labels' count */
    const char *why = NULL;
    int64_t wsize;
    int wfd = nnc_open_regular(c->weights, &wsize, &why);
    if (wfd < 0) fprintf(stderr, "nnc: --weights %s: cannot read: %s\n", c->weights, why);
    else close(wfd);
    if (wfd >= 0 && check_outputs(c, g) && load_inputs(c, g, ins, &n, &samples) &&
        (!c->labels || load_labels(c->labels, samples, n, &labels)))
        rc = run_model(c, g, ins, n, c->labels ? &labels : NULL);
    rt_idx_free(&labels);
    for (int32_t i = 0; i < g->n_inputs; i++) free(ins[i].data);
    free(ins);
    ir_free(g);
    arena_free(&arena);
    return rc;
}
