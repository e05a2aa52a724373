/* bench.c: `nnc bench MODEL.net` (issue 11): how fast the generated code runs
 * here, measured the way `nnc run` builds it, printed as one `key: value` per
 * line for scripts (bench/) to read.
 *
 * Inference: the model is compiled at -O2 (or the level given) for --batch N,
 * its code generated and built by the loader `nnc run` uses (api/nnc.c
 * nnc_load_graph: the system C compiler at -O2, cblas when available), with
 * weights initialized as `nnc init` does and inputs drawn from a fixed
 * generator; then --warmup calls, then --runs timed calls of the forward pass
 * on N samples. --train times one training step instead (forward, loss,
 * backward, SGD update) on N samples with fixed labels.
 *
 * Keys: model, batch, threads, runs, median_ms, min_ms, max_ms (per call),
 * images_per_s (N / median), gflops (2 x the direct-convolution and linear
 * multiply-accumulates of N samples / median; --train: 3x that, forward and
 * the two gradients), compile_ms (nnc's own time: parse, passes, code
 * generation), cc_ms (the C compiler's, with loading and create; code built
 * before, with the same compiler, flags and CPU, comes from the disk cache,
 * runtime/jit_cache.h: NNC_CACHE=off times the compiler every time).
 *
 * --threads T sets the threads of the instance (NNC_THREADS, read at create:
 * its own pool, kernels_parallel.c) and of the BLAS when the code was built
 * with one (OPENBLAS_NUM_THREADS); 1 by default.
 *
 * --profile (inference): the code is generated with a hook after each layer
 * (CgOptions.profile), and after the keys come the layers, one a line, in
 * the order they run: mean milliseconds per call over the timed runs, the
 * share of the sum, and the layer (op, name, place in the source). The hook
 * costs a clock read per layer, so the total runs a little above median_ms.
 *
 * --jit-times (inference): after the keys, what loading the generated code
 * costs, compile and load (rt_load, rt_unload; no create), for each loader:
 * jit_compile_cold_ms and jit_compile_cached_ms (the in-process Clang/LLVM
 * JIT; "unavailable" when not built in or NNC_JIT_BLAS=1), cc_compile_cold_ms
 * and cc_compile_cached_ms (the system C compiler and dlopen). Cold: an empty
 * cache directory of its own (a temporary, removed after); cached: the median
 * of 3 loads from it. The generated code is the same source `nnc run` makes
 * (model.h, the model's prefix, --batch). */
#include "api/init_weights.h"
#include "common/common.h"
#include "frontend/frontend.h"
#include "ir/ir.h"
#include "passes/passes.h"
#include "codegen/emit_c.h"
#include "codegen/emit_train.h"
#include "runtime/jit.h"
#include "runtime/tensor_io.h"
#include "runtime/train_abi.h"
#include "api/nnc_internal.h"
#include "tools/train.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { BENCH_MAX_DEFINES = 32, BENCH_MAX_RUNS = 100000 };

typedef struct {
    const char *model;
    int batch, threads, runs, warmup, level;
    bool train, profile, jit_times;
    FeOptions fe;
    FeDefine defines[BENCH_MAX_DEFINES];
} Bench;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int bench_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "nnc bench: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nRun 'nnc --help' for the usage.\n");
    return 2;
}

static bool parse_int(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi) return false;
    *out = (int)v;
    return true;
}

static int parse(int argc, char **argv, Bench *b)
{
    memset(b, 0, sizeof *b);
    b->batch = 1, b->threads = 1, b->runs = 20, b->warmup = 3, b->level = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (strcmp(a, "--batch") == 0 && ++i) {
            if (!parse_int(v, 1, 1 << 16, &b->batch)) return bench_usage("--batch needs a whole number from 1 to 65536, got '%s'", v);
        } else if (strcmp(a, "--threads") == 0 && ++i) {
            if (!parse_int(v, 1, 256, &b->threads)) return bench_usage("--threads needs a whole number from 1 to 256, got '%s'", v);
        } else if (strcmp(a, "--runs") == 0 && ++i) {
            if (!parse_int(v, 1, BENCH_MAX_RUNS, &b->runs)) return bench_usage("--runs needs a whole number from 1 to 100000, got '%s'", v);
        } else if (strcmp(a, "--warmup") == 0 && ++i) {
            if (!parse_int(v, 0, 1000, &b->warmup)) return bench_usage("--warmup needs a whole number from 0 to 1000, got '%s'", v);
        } else if (strcmp(a, "--train") == 0) {
            b->train = true;
        } else if (strcmp(a, "--profile") == 0) {
            b->profile = true;
        } else if (strcmp(a, "--jit-times") == 0) {
            b->jit_times = true;
        } else if (strcmp(a, "-O0") == 0 || strcmp(a, "-O1") == 0 || strcmp(a, "-O2") == 0) {
            b->level = a[2] - '0';
        } else if (strcmp(a, "--network") == 0 && ++i) {
            b->fe.network = v;
        } else if (strcmp(a, "--set") == 0 && ++i) {
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || b->fe.n_defines == BENCH_MAX_DEFINES) return bench_usage("--set needs NAME=VALUE, got '%s'", v);
            b->defines[b->fe.n_defines].name = strndup(v, (size_t)(eq - v));
            b->defines[b->fe.n_defines++].value = eq + 1;
        } else if (a[0] == '-' && a[1]) {
            return bench_usage("unknown option '%s'", a);
        } else if (!b->model) {
            b->model = a;
        } else {
            return bench_usage("unexpected argument '%s' (one model file at a time)", a);
        }
        if (i >= argc) return bench_usage("%s needs a value", a);
    }
    b->fe.defines = b->defines;
    if (!b->model) return bench_usage("no model file given%s", "");
    if (b->profile && b->train) return bench_usage("--profile times inference only, not --train%s", "");
    if (b->jit_times && (b->train || b->profile))
        return bench_usage("--jit-times times inference modules only, not --train or --profile%s", "");
    return 0;
}

/* n floats from a fixed generator, in [-1, 1). */
static float *random_floats(size_t n, uint64_t seed)
{
    float *x = nnc_xmalloc((n ? n : 1) * sizeof *x);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = (float)((double)(seed >> 40) / (double)(1ULL << 24) * 2.0 - 1.0);
    }
    return x;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The weights `nnc init` would write, in a temporary file (*path). */
static bool write_weights(const IrGraph *g, char *path, size_t len, int *slot)
{
    char err[512];
    if (!tool_temp_path(path, len, "weights", slot)) return false;
    RtTensor *ts = nnc_init_tensors(g, 1);
    bool ok = rt_st_write(path, ts, g->n_params, "{\"format\":\"pt\"}", err, sizeof err) == 0;
    if (!ok) fprintf(stderr, "nnc bench: %s\n", err);
    nnc_init_free(ts, g->n_params);
    return ok;
}

static void print_times(const Bench *b, const IrGraph *g, double *t, double compile_ms, double cc_ms)
{
    qsort(t, (size_t)b->runs, sizeof *t, cmp_double);
    double med = b->runs % 2 ? t[b->runs / 2] : (t[b->runs / 2 - 1] + t[b->runs / 2]) / 2;
    double flops = 2.0 * (double)ir_count_macs(g) * b->batch * (b->train ? 3.0 : 1.0);
    printf("model: %s\nmode: %s\nbatch: %d\nthreads: %d\nruns: %d\n", g->name, b->train ? "train" : "inference",
           b->batch, b->threads, b->runs);
    printf("median_ms: %.4f\nmin_ms: %.4f\nmax_ms: %.4f\n", med, t[0], t[b->runs - 1]);
    printf("images_per_s: %.1f\ngflops: %.2f\n", b->batch / (med / 1e3), flops / (med / 1e3) / 1e9);
    printf("compile_ms: %.1f\ncc_ms: %.1f\n", compile_ms, cc_ms);
}

/* --profile: the time since the previous mark goes to the layer just done. */
typedef struct {
    double last, *acc;
} Profile;

static void profile_hook(void *ctx, int node)
{
    Profile *p = ctx;
    double t = now_ms();
    if (node >= 0) p->acc[node] += t - p->last;
    p->last = t;
}

static void print_profile(const Bench *b, const IrGraph *g, const Profile *p)
{
    double sum = 0.0;
    for (int32_t i = 0; i < g->n_nodes; i++) sum += p->acc[i];
    printf("profile:\n");
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const IrNode *n = &g->nodes[i];
        if (p->acc[i] <= 0.0) continue;  /* constants (run at create) and views */
        printf("  %10.4f ms %5.1f%%  %%%d %s", p->acc[i] / b->runs, sum > 0 ? 100.0 * p->acc[i] / sum : 0.0,
               (int)n->out, ir_ops[n->op].name);
        if (n->scope && *n->scope) printf(" %s", n->scope);
        if (n->loc.file) printf(" @ %s:%d:%d", n->loc.file, n->loc.line, n->loc.col);
        printf("\n");
    }
}

static int bench_inference(const Bench *b, IrGraph *g, double compile_ms, double emit_ms)
{
    char path[1100], *why = NULL;
    int slot = -1, rc = 1;
    if (!write_weights(g, path, sizeof path, &slot)) return 1;
    CgOptions o = {.max_batch = b->batch, .header_name = "model.h", .source_path = b->model,
                   .no_memory_plan = b->level < 2, .profile = b->profile};
    nnc_instance *inst = NULL;
    Profile prof = {0.0, nnc_xcalloc((size_t)g->n_nodes + 1, sizeof(double))};
    double t0 = now_ms();
    int stage = nnc_load_graph(g, &o, path, &inst, &why);
    double cc_ms = now_ms() - t0 - emit_ms;
    unlink(path);
    nnc_tmp_untrack(slot);
    if (stage != 0) {
        fprintf(stderr, "nnc bench: %s: %s\n", b->model, why ? why : "cannot load the generated code");
        free(why);
        return 1;
    }
    float **ins = nnc_xcalloc((size_t)g->n_inputs + 1, sizeof *ins), **outs = nnc_xcalloc((size_t)g->n_outputs + 1, sizeof *outs);
    for (int32_t i = 0; i < g->n_inputs; i++)
        ins[i] = random_floats((size_t)b->batch * (size_t)ir_shape_elems(&g->values[g->inputs[i]].shape), 7 + (uint64_t)i);
    for (int32_t o2 = 0; o2 < g->n_outputs; o2++)
        outs[o2] = nnc_xmalloc((size_t)b->batch * (size_t)ir_shape_elems(&g->values[g->outputs[o2].value].shape) * sizeof(float));
    double *t = nnc_xmalloc((size_t)b->runs * sizeof *t);
    if (b->profile) {
        Arena names = {0};
        bool hooked = nnc_instance_set_profile_hook(inst, cg_c_prefix(&names, g->name), profile_hook, &prof);
        arena_free(&names);
        if (!hooked) {
            fprintf(stderr, "nnc bench: internal error: the generated code has no profile hook\n");
            goto done;
        }
    }
    for (int r = -b->warmup; r < b->runs; r++) {
        if (r == 0) memset(prof.acc, 0, (size_t)g->n_nodes * sizeof *prof.acc);  /* the timed runs only */
        double s = now_ms();
        if (nnc_forward(inst, b->batch, (const float *const *)ins, outs) != 0) {
            fprintf(stderr, "nnc bench: %s\n", nnc_instance_error(inst));
            goto done;
        }
        if (r >= 0) t[r] = now_ms() - s;
    }
    print_times(b, g, t, compile_ms, cc_ms);
    if (b->profile) print_profile(b, g, &prof);
    rc = 0;
done:
    free(prof.acc);
    for (int32_t i = 0; i < g->n_inputs; i++) free(ins[i]);
    for (int32_t o2 = 0; o2 < g->n_outputs; o2++) free(outs[o2]);
    free(ins), free(outs), free(t);
    nnc_instance_free(inst);
    return rc;
}

static int bench_train(const Bench *b, IrGraph *g, double compile_ms)
{
    StrBuf c = {0}, h = {0};
    char err[2048], path[1100];
    int rc = 1, slot = -1;
    IrLoc where = {NULL, 0, 0};
    RtTrainModule m;
    void *inst = NULL;
    double t0 = now_ms();
    CgTrainOptions o = {.max_batch = b->batch, .header_name = "model_train.h", .source_path = b->model, .err_loc = &where};
    if (!cg_emit_train_c(g, &o, &c, &h, err, sizeof err)) {
        if (where.file) fe_report_at(where, err);
        else fprintf(stderr, "nnc bench: %s: %s\n", b->model, err);
        goto out;
    }
    compile_ms += now_ms() - t0;
    Arena names = {0};
    t0 = now_ms();
    bool loaded = rt_load_train(c.data, h.data, "model_train.h", cg_c_prefix(&names, g->name), &m, err, sizeof err) == 0;
    arena_free(&names);
    if (!loaded) {
        fprintf(stderr, "nnc bench: %s: %s\n", b->model, err);
        goto out;
    }
    RtTrainConfig cfg;
    memset(&cfg, 0, sizeof cfg);  /* SGD, no momentum: the step's cost without the optimizer's state */
    if (!write_weights(g, path, sizeof path, &slot)) goto unload;
    if (m.create(&inst, path, &cfg) != 0) fprintf(stderr, "nnc bench: %s\n", m.last_error(inst));
    unlink(path);
    nnc_tmp_untrack(slot);
    double cc_ms = now_ms() - t0;
    if (inst && m.last_error(inst)[0] == '\0') {
        int64_t classes = ir_shape_elems(&g->values[g->outputs[0].value].shape);
        float *x = random_floats((size_t)b->batch * (size_t)ir_shape_elems(&g->values[g->inputs[0]].shape), 7);
        int32_t *y = nnc_xmalloc((size_t)b->batch * sizeof *y);
        double *t = nnc_xmalloc((size_t)b->runs * sizeof *t);
        for (int i = 0; i < b->batch; i++) y[i] = (int32_t)(classes > 1 ? i % classes : i % 2);
        rc = 0;
        for (int r = -b->warmup; r < b->runs && rc == 0; r++) {
            float loss;
            long correct;
            double s = now_ms();
            if (m.step(inst, b->batch, x, y, 1e-3, &loss, &correct) != 0) {
                fprintf(stderr, "nnc bench: %s\n", m.last_error(inst));
                rc = 1;
            }
            if (r >= 0) t[r] = now_ms() - s;
        }
        if (rc == 0) print_times(b, g, t, compile_ms, cc_ms);
        free(x), free(y), free(t);
    }
    if (inst) m.destroy(inst);
unload:
    rt_unload_train(&m);
out:
    sb_free(&c), sb_free(&h);
    return rc;
}

/* ---- --jit-times ---- */

/* Sets NAME to value (NULL: unsets); the previous value into old (a copy, or "" with *had false). */
static void swap_env(const char *name, const char *value, char *old, size_t len, bool *had)
{
    const char *o = getenv(name);
    *had = o != NULL;
    snprintf(old, len, "%s", o ? o : "");
    if (value) setenv(name, value, 1);
    else unsetenv(name);
}

static void restore_env(const char *name, const char *old, bool had)
{
    if (had) setenv(name, old, 1);
    else unsetenv(name);
}

/* Empties and removes a cache directory of ours (its entries and any temporary). */
static void remove_cache_dir(const char *dir)
{
    char path[4200];
    DIR *d = opendir(dir);
    if (d) {
        for (struct dirent *e; (e = readdir(d));) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* One loader (NNC_JIT=jit) timed: a load into an empty cache, then the median of 3 from it. false: it failed. */
static bool time_loader(const char *c, const char *h, const char *prefix, const char *jit, double *cold, double *cached)
{
    char dir[1100], err[4096], old_jit[64], old_dir[4096], old_cache[64];
    bool had_jit, had_dir, had_cache, ok = true;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/nnc-bench-cache-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        fprintf(stderr, "nnc bench: cannot create a temporary directory %s: %s\n", dir, strerror(errno));
        return false;
    }
    int slot = nnc_tmp_track(dir, 1);  /* removed (empty) on a signal; the entries are best effort */
    swap_env("NNC_JIT", jit, old_jit, sizeof old_jit, &had_jit);
    swap_env("NNC_CACHE_DIR", dir, old_dir, sizeof old_dir, &had_dir);
    swap_env("NNC_CACHE", NULL, old_cache, sizeof old_cache, &had_cache);
    double t[4];
    for (int r = 0; r < 4 && ok; r++) {
        RtModel m;
        double t0 = now_ms();
        ok = rt_load(c, h, "model.h", prefix, &m, err, sizeof err) == 0;
        if (ok) rt_unload(&m);
        t[r] = now_ms() - t0;
        if (!ok) fprintf(stderr, "nnc bench: --jit-times (%s): %s\n", jit, err);
    }
    restore_env("NNC_JIT", old_jit, had_jit);
    restore_env("NNC_CACHE_DIR", old_dir, had_dir);
    restore_env("NNC_CACHE", old_cache, had_cache);
    remove_cache_dir(dir);
    nnc_tmp_untrack(slot);
    if (!ok) return false;
    qsort(t + 1, 3, sizeof *t, cmp_double);
    *cold = t[0], *cached = t[2];
    return true;
}

/* The --jit-times keys for the inference module of g. */
static int print_jit_times(const Bench *b, IrGraph *g)
{
    StrBuf c = {0}, h = {0};
    char err[2048];
    Arena names = {0};
    CgOptions o = {.max_batch = b->batch, .header_name = "model.h", .source_path = b->model,
                   .no_memory_plan = b->level < 2};
    int rc = 1;
    if (!cg_emit_c(g, &o, &c, &h, err, sizeof err)) {
        fprintf(stderr, "nnc bench: %s: %s\n", b->model, err);
        goto out;
    }
    const char *prefix = cg_c_prefix(&names, g->name);
    double cold, cached;
    char old[64];
    bool had, llvm;
    swap_env("NNC_JIT", "llvm", old, sizeof old, &had);
    llvm = rt_jit_in_process();  /* built in, and not NNC_JIT_BLAS=1 */
    restore_env("NNC_JIT", old, had);
    if (!llvm) printf("jit_compile_cold_ms: unavailable\njit_compile_cached_ms: unavailable\n");
    else if (time_loader(c.data, h.data, prefix, "llvm", &cold, &cached))
        printf("jit_compile_cold_ms: %.1f\njit_compile_cached_ms: %.1f\n", cold, cached);
    else
        goto out;
    if (!time_loader(c.data, h.data, prefix, "cc", &cold, &cached)) goto out;
    printf("cc_compile_cold_ms: %.1f\ncc_compile_cached_ms: %.1f\n", cold, cached);
    rc = 0;
out:
    arena_free(&names);
    sb_free(&c), sb_free(&h);
    return rc;
}

int bench_main(int argc, char **argv)
{
    Bench b;
    int rc = parse(argc, argv, &b);
    if (rc) return rc;
    char threads[16];
    snprintf(threads, sizeof threads, "%d", b.threads);
    setenv("OPENBLAS_NUM_THREADS", threads, 1);  /* before the generated code loads its BLAS */
    setenv("NNC_THREADS", threads, 1);           /* what the instance's create reads */
    Arena arena = {0};
    Diag d;
    diag_init(&d, &arena);
    double t0 = now_ms();
    IrGraph *g = fe_compile(b.model, &b.fe, &d);
    fputs(d.out.data ? d.out.data : "", stderr);
    diag_free(&d);
    char err[512];
    bool ok = g && (b.train ? pass_run_training_pipeline(g, b.level, b.batch, NULL, NULL, err, sizeof err)
                            : pass_run_pipeline_batch(g, b.level, b.batch, NULL, NULL, err, sizeof err));
    if (g && !ok) fprintf(stderr, "nnc: internal error after a pass: %s\n", err);
    double emit_ms = 0.0;
    if (ok && !b.train) {  /* nnc's code generation, timed on its own (the loader generates it again) */
        StrBuf c = {0}, h = {0};
        CgOptions o = {.max_batch = b.batch, .header_name = "model.h", .no_memory_plan = b.level < 2};
        double e0 = now_ms();
        ok = cg_emit_c(g, &o, &c, &h, err, sizeof err);
        emit_ms = now_ms() - e0;
        if (!ok) fprintf(stderr, "nnc bench: %s: %s\n", b.model, err);
        sb_free(&c), sb_free(&h);
    }
    double compile_ms = now_ms() - t0;
    rc = !ok ? 1 : b.train ? bench_train(&b, g, compile_ms) : bench_inference(&b, g, compile_ms, emit_ms);
    if (rc == 0 && b.jit_times) rc = print_jit_times(&b, g);
    if (g) ir_free(g);
    for (int i = 0; i < b.fe.n_defines; i++) free((char *)b.defines[i].name);
    arena_free(&arena);
    return rc;
}
