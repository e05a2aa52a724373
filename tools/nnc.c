/* nnc.c: the command-line driver.
 *
 *   nnc MODEL.net [-o OUT.c] [--emit=c|ir|dot] [-O0|-O1|-O2] [--batch N] ...
 *   nnc init MODEL.net --seed S -o WEIGHTS.safetensors
 *   nnc run MODEL.net --weights W.safetensors --input NAME=IN.npy ... [--output NAME=OUT.npy ...]
 *   nnc train MODEL.net --data KIND:PATH [options]        (tools/train.c)
 *   nnc eval MODEL.net --weights W --data KIND:PATH [--batch N]
 *
 * These forms are an interface: scripts outside this repository call them as
 * written. Exit status: 0 on success, 1 on a user error (with a message naming
 * the file, tensor or argument at fault), 2 on a misuse of the command line. */
#include "api/nnc_internal.h"
#include "common/common.h"
#include "frontend/frontend.h"
#include "ir/ir.h"
#include "passes/passes.h"
#include "passes/plan_memory.h"
#include "codegen/emit_c.h"
#include "codegen/emit_train.h"
#include "runtime/checkpoint.h"
#include "runtime/tensor_io.h"
#include "tools/train.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The --help text, in parts (C99 compilers need not take string literals over 4095 bytes). */
static const char *const usage[] = {
    "usage: nnc MODEL.net [options]                 compile a network to C\n"
    "       nnc init MODEL.net --seed S -o W.safetensors\n"
    "                                               write freshly initialized weights\n"
    "       nnc run MODEL.net --weights W.safetensors --input NAME=FILE ... [--output NAME=OUT.npy ...]\n"
    "                                               compile, load and run inference\n"
    "       nnc train MODEL.net --data KIND:PATH [train options]\n"
    "                                               train the network, print progress\n"
    "       nnc eval MODEL.net --weights W.safetensors --data KIND:PATH [--batch N]\n"
    "                                               print 'loss: X' and 'accuracy: Y' on the test\n"
    "                                               split (the train split if there is none)\n"
    "       nnc bench MODEL.net [--batch N] [--threads T] [--train|--profile] [--runs R] [--warmup W]\n"
    "                                               time the generated code as nnc run builds it:\n"
    "                                               model, mode, batch, threads, runs, median_ms,\n"
    "                                               min_ms, max_ms, images_per_s, gflops,\n"
    "                                               compile_ms, cc_ms (one 'key: value' a line;\n"
    "                                               --train: one training step; --threads: the\n"
    "                                               instance's threads (NNC_THREADS), 1 by default;\n"
    "                                               --profile: then each layer's ms and share)\n"
    "       nnc --help | --version\n"
    "\n"
    "compile options:\n"
    "  -o FILE            output: FILE.c and FILE.h for --emit=c (default NETWORK.c in the\n"
    "                     current directory), FILE for ir and dot (default: standard output);\n"
    "                     -o - is standard output: for c and train the C source only, without\n"
    "                     its header NETWORK.h (a note says so on standard error)\n"
    "  --emit=c|ir|dot|train\n"
    "                     C source and header, the IR as text, a Graphviz graph, or\n"
    "                     the training module (forward, backward, optimizer; runtime/train_abi.h)\n"
    "  -O0 | -O1 | -O2    no optimization | clean-up passes | everything (default -O2);\n"
    "                     with --emit=train, -O1 and -O2 run the passes' training forms\n"
    "                     (clean-up; batchnorm and dropout kept)\n"
    "  --batch N          the largest batch the generated code accepts (default 1)\n"
    "  --stats            print params, macs, activation_bytes, nodes, kernels,\n"
    "                     workspace_bytes, workspace_lower_bound_bytes and a\n"
    "                     per-layer table, one 'key: value' per line\n"
    "  --print-after=PASS print the IR to standard error after pass PASS (or all)\n"
    "\n"
    "options for every command:\n"
    "  --network NAME     which network of the file (needed when it defines several)\n"
    "  --set NAME=VALUE   override a network parameter, e.g. --set classes=5\n"
    "\n"
    "init options:\n"
    "  --seed S           random seed (default 0); the same seed gives the same weights\n"
    "  -o FILE            the safetensors file to write (written atomically; not -)\n"
    "\n",
    "run options:\n"
    "  --weights FILE     safetensors weights (names as in 'nnc MODEL.net --emit=ir')\n"
    "  --input NAME=FILE  a float32 .npy array [N, ...] for input NAME; or an IDX file\n"
    "                     (MNIST format, .gz allowed) whose bytes are scaled to [0, 1]\n"
    "  --output NAME=FILE write output NAME as a float32 .npy array [N, ...]; without any\n"
    "                     --output, every output's arg-max per sample is printed\n"
    "  --limit K          use only the first K samples of each input\n"
    "  --labels FILE      IDX labels to compare the printed predictions with\n"
    "\n",
    "train options (softmax cross-entropy of the single output against integer labels;\n"
    "defaults: sgd, lr 0.01, momentum 0, constant schedule, batch 64, 1 epoch, seed 0;\n"
    "the model's train section, if it has one, replaces these and flags override it):\n"
    "  --data KIND:PATH   mnist:DIR, fashion-mnist:DIR (IDX files), cifar10:DIR (binary\n"
    "                     version), npy:DIR (train_images.npy, train_labels.npy, optional\n"
    "                     test_*.npy); the test split, if any, is evaluated every epoch\n"
    "  --epochs N         epochs to train (default 1)\n"
    "  --batch N          batch size (default 64)\n"
    "  --optimizer NAME   sgd, adam or adamw (PyTorch's; adam betas 0.9, 0.999, eps 1e-8)\n"
    "  --lr X             learning rate (default 0.01)\n"
    "  --momentum X       sgd momentum, 0 <= X < 1 (default 0); --nesterov for Nesterov momentum\n"
    "  --weight-decay X   L2 for sgd and adam, decoupled for adamw (default 0; adamw 0.01)\n"
    "  --label-smoothing X  cross-entropy label smoothing, 0 to 1 (default 0)\n"
    "  --loss NAME        cross-entropy (default), bce or mse (the last two against one-hot\n"
    "                     labels); nnc eval takes it too\n"
    "  --aux-weight X     weight of the losses of outputs after the first (GoogLeNet's\n"
    "                     auxiliary classifiers; default 0.3)\n"
    "  --schedule S       the lr per epoch: constant, step:STEP_SIZE[:GAMMA],\n"
    "                     multistep:M1,M2,...[:GAMMA] (GAMMA default 0.1), or\n"
    "                     cosine[:ETA_MIN] (annealed over the epochs after the warm-up)\n"
    "  --warmup W         W epochs rising linearly from lr/(W+1) before the schedule\n"
    "  --seed S           seeds the initial weights, the shuffle, augmentation, dropout\n"
    "  --weights FILE     start from these weights (by name); a tensor missing from the\n"
    "                     file or of another shape is initialized afresh, with a note\n"
    "                     (a replaced classifier head); default: as 'nnc init --seed S'\n"
    "  --freeze GLOB      do not update parameters whose names match ('features.*',\n"
    "                     'conv?.weight'); repeatable; each must match a parameter\n"
    "  --out FILE         write the trained parameters and buffers (safetensors)\n"
    "  --checkpoint FILE  write all tensors, optimizer state and step after every epoch,\n"
    "                     with a CRC32C of the file (checked by --resume and --weights)\n"
    "  --resume           continue from --checkpoint after its last epoch, with the same\n"
    "                     settings (checked); the result equals an uninterrupted run\n"
    "  --log FILE.csv     per-epoch epoch,train_loss,train_accuracy,test_loss,\n"
    "                     test_accuracy,images_per_second (rewritten every epoch)\n"
    "  --no-shuffle       keep the file order (default: a new order every epoch)\n"
    "  --no-prefetch      make each batch between the steps instead of on a reader thread\n"
    "                     while the step before runs (the same batches either way; train\n"
    "                     and eval)\n"
    "  --normalize M,S    subtract M, divide by S (one pair, or one per channel: means\n"
    "                     then stds); nnc eval takes it too and should get the same\n"
    "  --augment LIST     comma-separated crop:P (pad P, random crop), flip (random\n"
    "                     mirror), jitter:A (brightness and contrast, 0 < A <= 1)\n"
    "\n",
    /* (a piece of its own: C99 compilers need only take string literals of 4095 characters) */
    "environment (run, train, eval, bench, and the generated code's create):\n"
    "  NNC_THREADS=N      threads of an instance (default: one per online CPU; bench: --threads)\n"
    "  NNC_ISA=c|avx2     use no more than this instruction set (default: the CPU's best)\n"
    "  NNC_JIT_BLAS=1|0   build the generated code with OpenBLAS or without (default: inference\n"
    "                     without, on nnc's own kernels; training with it, where installed)\n"
    "  NNC_JIT_NATIVE=0   build it without -march=native; CC=...: the C compiler\n"
    "  NNC_WINOGRAD=0|1   when nnc generates code: 3x3 stride-1 convolutions by Winograd\n"
    "                     F(4x4,3x3) never (0), wherever possible (1), or (unset) where it\n"
    "                     pays: 16+ input channels, 16+ 4x4 tiles a batch\n"
    "\n"
    "Errors are reported as FILE:LINE:COL: error: MESSAGE. Exit status: 0 success,\n"
    "1 error in the input, 2 wrong command line. See README.md for the language.\n",
};

typedef struct {
    const char *cmd;        /* NULL (compile), "init", "run" */
    const char *model;
    const char *out;
    const char *emit;
    int opt_level;
    int batch;
    bool stats;
    const char *print_after;  /* --print-after=PASS */
    FeOptions fe;
    FeDefine defines[32];
    uint64_t seed;
    const char *weights;
    const char *inputs[16], *outputs[16];
    int n_inputs, n_outputs;
    long limit;
    const char *labels;
} Cli;

static int fail_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "nnc: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nRun 'nnc --help' for the usage.\n");
    return 2;
}

/* Takes the value of an option given as "--opt VALUE" or "--opt=VALUE". */
static const char *opt_value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) == 0 && argv[*i][n] == '=') return argv[*i] + n + 1;
    if (strcmp(argv[*i], name) != 0) return NULL;
    if (*i + 1 >= argc) return "";
    return argv[++*i];
}

static int parse_args(int argc, char **argv, Cli *c)
{
    memset(c, 0, sizeof *c);
    c->emit = "c";
    c->opt_level = 2;
    c->batch = 1;
    c->limit = -1;
    int i = 1;
    if (argc > 1 && (strcmp(argv[1], "init") == 0 || strcmp(argv[1], "run") == 0)) c->cmd = argv[i++];
    for (; i < argc; i++) {
        const char *a = argv[i], *v;
        long n;
        if ((v = opt_value(argc, argv, &i, "-o"))) c->out = v;
        else if ((v = opt_value(argc, argv, &i, "--emit"))) c->emit = v;
        else if (strcmp(a, "-O0") == 0 || strcmp(a, "-O1") == 0 || strcmp(a, "-O2") == 0) c->opt_level = a[2] - '0';
        else if ((v = opt_value(argc, argv, &i, "--batch"))) {
            if (!cli_parse_long(v, 1, 1 << 20, &n)) return fail_usage("--batch needs a whole number from 1 to 1048576, got '%s'", v);
            c->batch = (int)n;
        } else if (strcmp(a, "--stats") == 0) c->stats = true;
        else if ((v = opt_value(argc, argv, &i, "--print-after"))) {
            if (!pass_known(v)) {
                StrBuf names = {0};
                pass_list(&names);
                fprintf(stderr, "nnc: --print-after: no pass named '%s' (the passes: %s, or all)\n", v, names.data);
                sb_free(&names);
                return 2;
            }
            c->print_after = v;
        }
        else if ((v = opt_value(argc, argv, &i, "--network"))) c->fe.network = v;
        else if ((v = opt_value(argc, argv, &i, "--set"))) {
            const char *eq = strchr(v, '=');
            if (!eq || eq == v || c->fe.n_defines == 32) return fail_usage("--set needs NAME=VALUE, got '%s'", v);
            c->defines[c->fe.n_defines].name = strndup(v, (size_t)(eq - v));
            c->defines[c->fe.n_defines++].value = eq + 1;
        } else if ((v = opt_value(argc, argv, &i, "--seed"))) {
            char *end;
            errno = 0;
            c->seed = strtoull(v, &end, 10);
            if (!*v || *end || errno || v[0] == '-') return fail_usage("--seed needs a whole number, got '%s'", v);
        } else if ((v = opt_value(argc, argv, &i, "--weights"))) c->weights = v;
        else if ((v = opt_value(argc, argv, &i, "--input"))) {
            if (c->n_inputs == 16) return fail_usage("too many --input options (at most 16)%s", "");
            c->inputs[c->n_inputs++] = v;
        } else if ((v = opt_value(argc, argv, &i, "--output"))) {
            if (c->n_outputs == 16) return fail_usage("too many --output options (at most 16)%s", "");
            c->outputs[c->n_outputs++] = v;
        } else if ((v = opt_value(argc, argv, &i, "--limit"))) {
            if (!cli_parse_long(v, 1, 1L << 30, &c->limit)) return fail_usage("--limit needs a positive whole number, got '%s'", v);
        } else if ((v = opt_value(argc, argv, &i, "--labels"))) c->labels = v;
        else if (a[0] == '-' && a[1]) return fail_usage("unknown option '%s'", a);
        else if (!c->model) c->model = a;
        else return fail_usage("unexpected argument '%s' (one model file at a time)", a);
    }
    c->fe.defines = c->defines;
    if (!c->model) return fail_usage("no model file given%s", "");
    if (strcmp(c->emit, "c") && strcmp(c->emit, "ir") && strcmp(c->emit, "dot") && strcmp(c->emit, "train"))
        return fail_usage("--emit takes c, ir, dot or train, not '%s'", c->emit);
    return 0;
}

/* Parses and elaborates the model, runs the passes; prints diagnostics. */
static IrGraph *load_model(const Cli *c, Arena *arena)
{
    Diag d;
    diag_init(&d, arena);
    IrGraph *g = fe_compile(c->model, &c->fe, &d);
    fputs(d.out.data ? d.out.data : "", stderr);
    diag_free(&d);
    if (!g) return NULL;
    char err[512];
    StrBuf dump = {0};
    bool ok = strcmp(c->emit, "train") == 0  /* batch statistics and dropout masks: the training forms */
                  ? pass_run_training_pipeline(g, c->opt_level, c->batch, c->print_after, &dump, err, sizeof err)
                  : pass_run_pipeline_batch(g, c->opt_level, c->batch, c->print_after, &dump, err, sizeof err);
    fputs(dump.data ? dump.data : "", stderr);
    sb_free(&dump);
    if (!ok) {
        fprintf(stderr, "nnc: internal error after a pass: %s\n", err);
        ir_free(g);
        return NULL;
    }
    return g;
}

/* "-o -": standard output, as for no -o at all (a file named '-' is ./-). */
static bool is_stdout(const char *path) { return path && strcmp(path, "-") == 0; }

static int write_text(const char *path, const StrBuf *sb)
{
    if (!path || is_stdout(path)) {
        fputs(sb->data ? sb->data : "", stdout);
        if (fflush(stdout) == 0 && !ferror(stdout)) return 0;
        fprintf(stderr, "nnc: cannot write to standard output: %s\n", strerror(errno));
        return 1;
    }
    if (nnc_write_file_atomic(path, sb->data ? sb->data : "", sb->len) != 0) {
        fprintf(stderr, "nnc: cannot write '%s': %s\n", path, strerror(errno));
        return 1;
    }
    return 0;
}

/* The generated .c and .h, replaced together or not at all (common.h
 * nnc_write_files_atomic): a full disk or a failed rename between the two
 * leaves the previous pair as it was, never a new .c beside a stale .h. */
static int write_pair(const char *c_path, const StrBuf *c_src, const char *h_path, const StrBuf *h_src)
{
    const char *paths[2] = {c_path, h_path};
    const void *data[2] = {c_src->data ? c_src->data : "", h_src->data ? h_src->data : ""};
    size_t lens[2] = {c_src->len, h_src->len};
    int failed = 0;
    if (nnc_write_files_atomic(2, paths, data, lens, &failed) == 0) return 0;
    fprintf(stderr, "nnc: cannot write '%s': %s; neither '%s' nor '%s' was changed\n", paths[failed < 0 ? 0 : failed],
            strerror(errno), c_path, h_path);
    return 1;
}

static void print_stats(const IrGraph *g, int batch)
{
    /* activations: what the forward pass computes (constants are computed once, at create) */
    bool *is_const = nnc_xcalloc((size_t)(g->n_values ? g->n_values : 1), sizeof *is_const);
    ir_mark_constants(g, is_const);
    int64_t act = 0;
    for (int32_t i = 0; i < g->n_nodes; i++)
        if (!is_const[g->nodes[i].out]) act += ir_shape_elems(&g->values[g->nodes[i].out].shape);
    printf("params: %lld\n", (long long)ir_count_params(g));
    printf("macs: %lld\n", (long long)ir_count_macs(g));
    printf("activation_bytes: %lld\n", (long long)(act * 4 * batch));
    printf("nodes: %d\n", g->n_nodes);
    printf("kernels: %d\n", pass_count_kernels(g));
    if (g->plan) {  /* the pipeline's last pass, for this batch */
        printf("workspace_bytes: %lld\n", (long long)g->plan->ws_bytes);
        printf("workspace_lower_bound_bytes: %lld\n", (long long)g->plan->lower_bound);
    }
    printf("layers:\n");
    char buf[96];
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const IrNode *n = &g->nodes[i];
        const Epilogue *e = ir_epilogue(n);
        char epi[48] = "";
        if (e && (e->residual || e->act != ACT_NONE))  /* "  (+res relu)": the fused epilogue */
            snprintf(epi, sizeof epi, "  (%s%s%s)", e->residual ? "+res" : "", e->residual && e->act ? " " : "",
                     e->act ? ir_act_name(e->act) : "");
        printf("  %-18s %-28s %-18s macs=%lld%s%s\n", ir_ops[n->op].name, n->scope ? n->scope : "-",
               ir_shape_str(&g->values[n->out].shape, buf, sizeof buf), (long long)ir_ops[n->op].macs(g, n),
               is_const[n->out] ? "  (at create)" : "", epi);
    }
    free(is_const);
}

/* "dir/lenet.c" -> "dir/lenet.h" and "lenet.h" */
static void header_paths(const char *out, char **h_path, char **h_name)
{
    size_t n = strlen(out);
    if (n > 2 && strcmp(out + n - 2, ".c") == 0) n -= 2;
    *h_path = nnc_xmalloc(n + 3);
    memcpy(*h_path, out, n);
    strcpy(*h_path + n, ".h");
    const char *slash = strrchr(*h_path, '/');
    *h_name = strdup(slash ? slash + 1 : *h_path);
}

static int cmd_compile(const Cli *c)
{
    Arena arena = {0};
    IrGraph *g = load_model(c, &arena);
    int rc = 1;
    if (!g) goto done;
    if (c->stats) {
        print_stats(g, c->batch);
        rc = 0;
        goto done;
    }
    StrBuf a = {0}, b = {0};
    if (strcmp(c->emit, "ir") == 0) {
        ir_print(g, &a);
        rc = write_text(c->out, &a);
    } else if (strcmp(c->emit, "dot") == 0) {
        ir_print_dot(g, &a);
        rc = write_text(c->out, &a);
    } else {
        /* -o - sends the C source to standard output and writes no header
         * (two files do not fit one stream): a note names the header it
         * #includes, which -o FILE.c writes beside it */
        bool to_stdout = is_stdout(c->out);
        char *c_path = c->out && !to_stdout ? strdup(c->out) : NULL, *h_path, *h_name, err[512];
        if (!c_path) {
            c_path = nnc_xmalloc(strlen(g->name) + 3);
            sprintf(c_path, "%s.c", g->name);
        }
        header_paths(c_path, &h_path, &h_name);
        CgOptions o = {.max_batch = c->batch, .header_name = h_name, .source_path = c->model,
                       .no_memory_plan = c->opt_level < 2};
        IrLoc where = {NULL, 0, 0};
        CgTrainOptions to = {.max_batch = c->batch, .header_name = h_name, .source_path = c->model, .err_loc = &where};
        bool ok = strcmp(c->emit, "train") == 0 ? cg_emit_train_c(g, &to, &a, &b, err, sizeof err)
                                                : cg_emit_c(g, &o, &a, &b, err, sizeof err);
        if (!ok && where.file) fe_report_at(where, err);  /* FILE:LINE:COL: error: ..., the line, a caret */
        else if (!ok) fprintf(stderr, "nnc: %s: %s\n", c->model, err);
        else if (to_stdout) {
            rc = write_text(NULL, &a);
            fprintf(stderr, "nnc: note: -o -: the C source went to standard output without its header '%s'; "
                    "-o FILE.c writes both\n", h_name);
        } else rc = write_pair(c_path, &a, h_path, &b);
        free(c_path);
        free(h_path);
        free(h_name);
    }
    sb_free(&a);
    sb_free(&b);
done:
    ir_free(g);
    arena_free(&arena);
    return rc;
}

/* ---- nnc init ---- */

static int cmd_init(const Cli *c)
{
    if (!c->out) return fail_usage("nnc init needs -o WEIGHTS.safetensors%s", "");
    if (is_stdout(c->out))  /* a binary file is written atomically or not at all; a stream cannot promise that */
        return fail_usage("nnc init writes a file: -o - (standard output) is not taken; give -o WEIGHTS.safetensors%s", "");
    char why[1200];
    if (nnc_check_writable(c->out, why, sizeof why) != 0) {  /* before the model is compiled */
        fprintf(stderr, "nnc init: -o '%s' cannot be written: %s (choose a writable path)\n", c->out, why);
        return 1;
    }
    Arena arena = {0};
    Cli c0 = *c;
    c0.opt_level = 0;  /* every parameter, as the source declares it */
    IrGraph *g = load_model(&c0, &arena);
    if (!g) { arena_free(&arena); return 1; }
    RtTensor *ts = train_init_tensors(g, c->seed);  /* shared with nnc train */
    char err[512], meta[256];
    snprintf(meta, sizeof meta, "{\"format\":\"pt\",\"nnc_network\":\"%s\",\"nnc_seed\":\"%llu\"}", g->name,
             (unsigned long long)c->seed);
    int rc = 0;
    if (rt_st_write(c->out, ts, g->n_params, meta, err, sizeof err) != 0) {
        fprintf(stderr, "nnc: %s\n", err);
        rc = 1;
    }
    train_init_free(ts, g->n_params);
    ir_free(g);
    arena_free(&arena);
    return rc;
}

/* ---- nnc run ---- */

typedef struct {
    RtTensor t;       /* data as float32, shape [N, ...] */
    bool owned;
} RunInput;

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

static int cmd_run(const Cli *c)
{
    if (!c->weights) return fail_usage("nnc run needs --weights W.safetensors%s", "");
    Arena arena = {0};
    IrGraph *g = load_model(c, &arena);
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

int main(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        for (size_t k = 0; k < NNC_COUNT(usage); k++) fputs(usage[k], stdout);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("nnc %s\n", NNC_VERSION);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "train") == 0) return train_main(argc - 1, argv + 1, NULL);
    if (argc >= 2 && strcmp(argv[1], "eval") == 0) return eval_main(argc - 1, argv + 1, NULL);
    if (argc >= 2 && strcmp(argv[1], "bench") == 0) return bench_main(argc - 1, argv + 1);
    Cli c;
    int rc = parse_args(argc, argv, &c);
    if (rc == 0) {
        if (!c.cmd) rc = cmd_compile(&c);
        else if (strcmp(c.cmd, "init") == 0) rc = cmd_init(&c);
        else rc = cmd_run(&c);
    }
    for (int i = 0; i < c.fe.n_defines; i++) free((char *)c.defines[i].name);
    return rc;
}
