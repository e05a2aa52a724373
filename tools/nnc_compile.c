/* nnc_compile.c: the commands that turn a model into files: `nnc MODEL.net`
 * (the C source and header, the IR as text, a Graphviz graph or the training
 * module, or with --stats the model's counts) and `nnc init` (freshly
 * initialized weights, as safetensors). Files are replaced atomically, the
 * generated .c and .h together; "-o -" means standard output. */
#include "tools/nnc_internal.h"

#include "api/init_weights.h"
#include "codegen/emit_c.h"
#include "codegen/emit_train.h"
#include "passes/passes.h"
#include "passes/plan_memory.h"
#include "runtime/tensor_io.h"
#include "tools/train.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* The generated .c and .h (and with --embed-weights the .S), replaced
 * together or not at all (common.h nnc_write_files_atomic): a full disk or a
 * failed rename between them leaves the previous set as it was, never a new
 * .c beside a stale .h. */
static int write_pair(const char *c_path, const StrBuf *c_src, const char *h_path, const StrBuf *h_src,
                      const char *s_path, const StrBuf *s_src)
{
    const char *paths[3] = {c_path, h_path, s_path};
    const void *data[3] = {c_src->data ? c_src->data : "", h_src->data ? h_src->data : "",
                           s_src && s_src->data ? s_src->data : ""};
    size_t lens[3] = {c_src->len, h_src->len, s_src ? s_src->len : 0};
    int failed = 0;
    if (nnc_write_files_atomic(s_path ? 3 : 2, paths, data, lens, &failed) == 0) return 0;
    fprintf(stderr, "nnc: cannot write '%s': %s; neither '%s' nor '%s'%s was changed\n", paths[failed < 0 ? 0 : failed],
            strerror(errno), c_path, h_path, s_path ? " nor the .S" : "");
    return 1;
}

static void print_stats(const IrGraph *g, int batch)
{
    /* activations: what the forward pass computes (constants are computed once, at create) */
    bool *is_const = nnc_xcalloc((size_t)(g->n_values ? g->n_values : 1), sizeof *is_const);
    ir_mark_constants(g, is_const);
    int64_t act = 0;
    for (int32_t i = 0; i < g->n_nodes; i++)
        if (!is_const[g->nodes[i].out]) act += ir_value_elems(&g->values[g->nodes[i].out]);
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

/* "dir/lenet.c" -> "dir/lenet_weights.S" */
static char *asm_path(const char *c_path)
{
    size_t n = strlen(c_path);
    if (n > 2 && strcmp(c_path + n - 2, ".c") == 0) n -= 2;
    char *s = nnc_xmalloc(n + 11);
    memcpy(s, c_path, n);
    strcpy(s + n, "_weights.S");
    return s;
}

int cmd_compile(const Cli *c)
{
    Arena arena = {0};
    const char **files = NULL;
    int n_files = 0;
    IrGraph *g = cli_load_model_files(c, &arena, &files, &n_files);
    int rc = 1;
    if (!g) goto done;
    const char *weights = c->embed_weights ? c->embed_weights : c->check_weights;  /* checked, and a dependency */
    if (weights && cli_check_weights(weights, g) != 0) goto done;
    if (c->stats) {
        print_stats(g, c->batch);
        rc = 0;
        goto done;
    }
    StrBuf a = {0}, b = {0}, s = {0};
    if (strcmp(c->emit, "ir") == 0) {
        ir_print(g, &a);
        rc = write_text(c->out, &a);
        if (rc == 0 && c->depfile && c->out) rc = cli_write_depfile(c->depfile, c->out, files, n_files, weights);
    } else if (strcmp(c->emit, "dot") == 0) {
        ir_print_dot(g, &a);
        rc = write_text(c->out, &a);
        if (rc == 0 && c->depfile && c->out) rc = cli_write_depfile(c->depfile, c->out, files, n_files, weights);
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
        } else if (c->embed_weights && cli_add_embedded(&a, &b, c->embed_weights, &s) != 0) {
            rc = 1;
        } else {
            char *s_path = c->embed_weights ? asm_path(c_path) : NULL;
            rc = write_pair(c_path, &a, h_path, &b, s_path, &s);
            free(s_path);
            if (rc == 0 && c->depfile) rc = cli_write_depfile(c->depfile, c_path, files, n_files, weights);
        }
        free(c_path);
        free(h_path);
        free(h_name);
    }
    sb_free(&a);
    sb_free(&b);
    sb_free(&s);
done:
    ir_free(g);
    arena_free(&arena);
    return rc;
}

/* ---- nnc init ---- */

int cmd_init(const Cli *c)
{
    if (!c->out) return cli_fail_usage("nnc init needs -o WEIGHTS.safetensors%s", "");
    if (is_stdout(c->out))  /* a binary file is written atomically or not at all; a stream cannot promise that */
        return cli_fail_usage("nnc init writes a file: -o - (standard output) is not taken; give -o WEIGHTS.safetensors%s", "");
    char why[1200];
    if (nnc_check_writable(c->out, why, sizeof why) != 0) {  /* before the model is compiled */
        fprintf(stderr, "nnc init: -o '%s' cannot be written: %s (choose a writable path)\n", c->out, why);
        return 1;
    }
    Arena arena = {0};
    Cli c0 = *c;
    c0.opt_level = 0;  /* every parameter, as the source declares it */
    IrGraph *g = cli_load_model(&c0, &arena);
    if (!g) { arena_free(&arena); return 1; }
    RtTensor *ts = nnc_init_tensors(g, c->seed);  /* shared with nnc train and the API */
    char err[512], meta[256];
    snprintf(meta, sizeof meta, "{\"format\":\"pt\",\"nnc_network\":\"%s\",\"nnc_seed\":\"%llu\"}", g->name,
             (unsigned long long)c->seed);
    int rc = 0;
    if (rt_st_write(c->out, ts, g->n_params, meta, err, sizeof err) != 0) {
        fprintf(stderr, "nnc: %s\n", err);
        rc = 1;
    }
    nnc_init_free(ts, g->n_params);
    ir_free(g);
    arena_free(&arena);
    return rc;
}
