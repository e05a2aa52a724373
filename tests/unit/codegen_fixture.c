/* codegen_fixture.c: the graphs, the reference interpreter and the plumbing
 * the code generator's tests share (codegen_fixture.h says what is here). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/unit/codegen_fixture.h"
#include "passes/plan_memory.h"

#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* ------------------------------------------------------------ graphs ---- */

Net *net_new(const char *name)
{
    Net *net = calloc(1, sizeof *net);
    net->g = ir_new(name);
    net->g->source = "test.net";
    rt_rng_seed(&net->rng, 42);
    net->line = 1;
    return net;
}

void net_free(Net *net)
{
    for (int v = 0; v < MAX_VALUES; v++)
        if (net->owned[v]) free(net->data[v]);
    ir_free(net->g);
    free(net);
}

IrShape shape_of(int rank, const int64_t *d)
{
    IrShape s = {rank, {0, 0, 0, 0}};
    for (int i = 0; i < rank; i++) s.dim[i] = d[i];
    return s;
}

int32_t net_input(Net *net, const char *name, int rank, int64_t c, int64_t h, int64_t w)
{
    int64_t d[3] = {c, h, w};
    IrShape s = shape_of(rank, d);
    return ir_add_input(net->g, name, &s);
}

int32_t net_param(Net *net, const char *name, IrShape s, float lo, float hi)
{
    int32_t v = ir_add_param(net->g, name, &s, INIT_NONE, 0);
    assert_true(v < MAX_VALUES);
    int64_t e = ir_shape_elems(&s);
    net->data[v] = malloc((size_t)e * sizeof(float));
    net->owned[v] = true;
    for (int64_t i = 0; i < e; i++) net->data[v][i] = rt_rng_uniform(&net->rng, lo, hi);
    return v;
}

int32_t net_node(Net *net, OpKind op, const int32_t *ins, int n_in, const IrAttr *attr, const char *scope)
{
    char err[256] = "";
    IrLoc loc = {"test.net", net->line++, 5};
    int32_t v = ir_add_node(net->g, op, ins, n_in, attr, loc, scope, err, sizeof err);
    if (v < 0) fail_msg("ir_add_node(%s): %s", ir_ops[op].name, err);
    assert_true(v < MAX_VALUES);
    return v;
}

int32_t net_unary(Net *net, OpKind op, int32_t x) { return net_node(net, op, &x, 1, NULL, NULL); }

char *scoped(const char *scope, const char *leaf)
{
    static char buf[8][128];
    static int i;
    i = (i + 1) % 8;
    snprintf(buf[i], sizeof buf[i], "%s.%s", scope, leaf);
    return buf[i];
}

/* conv (or conv_transpose) with PyTorch-layout weight and optional bias. */
int32_t net_conv(Net *net, int32_t x, const char *scope, int k, int ks, int stride, int pad, int groups,
                        bool bias, bool transposed, int out_pad)
{
    const IrShape *xs = &net->g->values[x].shape;
    int64_t c = xs->dim[0];
    IrAttr a = {.conv = {.kh = ks, .kw = ks, .sh = stride, .sw = stride, .ph = pad, .pw = pad, .dh = 1, .dw = 1,
                         .oph = out_pad, .opw = out_pad, .groups = groups, .out_channels = k, .bias = bias}};
    int64_t wd[4] = {transposed ? c : k, transposed ? k / groups : c / groups, ks, ks}, bd[1] = {k};
    float b = 1.0f / sqrtf((float)(c / groups * ks * ks));
    int32_t ins[3] = {x, net_param(net, scoped(scope, "weight"), shape_of(4, wd), -b, b), -1};
    if (bias) ins[2] = net_param(net, scoped(scope, "bias"), shape_of(1, bd), -b, b);
    return net_node(net, transposed ? OP_CONV_T2D : OP_CONV2D, ins, bias ? 3 : 2, &a, scope);
}

int32_t net_bn(Net *net, int32_t x, const char *scope)
{
    int64_t d[1] = {net->g->values[x].shape.dim[0]};
    IrAttr a = {.bn = {.eps = 1e-5f, .momentum = 0.1f}};
    int32_t ins[5] = {x, net_param(net, scoped(scope, "weight"), shape_of(1, d), 0.5f, 1.5f),
                      net_param(net, scoped(scope, "bias"), shape_of(1, d), -0.5f, 0.5f),
                      net_param(net, scoped(scope, "running_mean"), shape_of(1, d), -0.5f, 0.5f),
                      net_param(net, scoped(scope, "running_var"), shape_of(1, d), 0.5f, 2.0f)};
    return net_node(net, OP_BATCHNORM, ins, 5, &a, scope);
}

int32_t net_linear(Net *net, int32_t x, const char *scope, int out)
{
    int64_t in = net->g->values[x].shape.dim[0], wd[2] = {out, in}, bd[1] = {out};
    float b = 1.0f / sqrtf((float)in);
    IrAttr a = {.linear = {.out_features = out, .bias = true}};
    int32_t ins[3] = {x, net_param(net, scoped(scope, "weight"), shape_of(2, wd), -b, b),
                      net_param(net, scoped(scope, "bias"), shape_of(1, bd), -b, b)};
    return net_node(net, OP_LINEAR, ins, 3, &a, scope);
}

int32_t net_pool(Net *net, OpKind op, int32_t x, int k, int stride, int pad)
{
    IrAttr a = {.pool = {.kh = k, .kw = k, .sh = stride, .sw = stride, .ph = pad, .pw = pad, .dh = 1, .dw = 1,
                         .count_include_pad = true}};
    return net_node(net, op, &x, 1, &a, NULL);
}

/* ------------------------------------------------- reference interpreter ---- */

typedef struct { int n; const IrShape *x, *y; const float *in; float *out; } RefArgs;

static void ref_conv(const Net *net, const IrNode *nd, RefArgs *r)
{
    const ConvAttr *a = &nd->attr.conv;
    const float *w = net->data[ir_in(net->g, nd, 1)], *b = ir_has_bias(nd) ? net->data[ir_in(net->g, nd, 2)] : NULL;
    int64_t C = r->x->dim[0], H = r->x->dim[1], W = r->x->dim[2], K = r->y->dim[0], OH = r->y->dim[1],
            OW = r->y->dim[2], cg = C / a->groups, kg = K / a->groups;
    for (int s = 0; s < r->n; s++)
        for (int64_t k = 0; k < K; k++)
            for (int64_t oy = 0; oy < OH; oy++)
                for (int64_t ox = 0; ox < OW; ox++) {
                    double acc = b ? b[k] : 0;
                    for (int64_t ci = 0; ci < cg; ci++)
                        for (int i = 0; i < a->kh; i++)
                            for (int j = 0; j < a->kw; j++) {
                                int64_t iy = oy * a->sh - a->ph + i * a->dh, ix = ox * a->sw - a->pw + j * a->dw;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                acc += (double)r->in[((s * C + k / kg * cg + ci) * H + iy) * W + ix] *
                                       w[((k * cg + ci) * a->kh + i) * a->kw + j];
                            }
                    r->out[((s * K + k) * OH + oy) * OW + ox] = (float)acc;
                }
}

static void ref_conv_t(const Net *net, const IrNode *nd, RefArgs *r)
{
    const ConvAttr *a = &nd->attr.conv;
    const float *w = net->data[ir_in(net->g, nd, 1)], *b = ir_has_bias(nd) ? net->data[ir_in(net->g, nd, 2)] : NULL;
    int64_t C = r->x->dim[0], H = r->x->dim[1], W = r->x->dim[2], K = r->y->dim[0], OH = r->y->dim[1],
            OW = r->y->dim[2], cg = C / a->groups, kg = K / a->groups;
    double *acc = calloc((size_t)(K * OH * OW), sizeof *acc);
    for (int s = 0; s < r->n; s++) {
        for (int64_t i = 0; i < K * OH * OW; i++) acc[i] = b ? b[i / (OH * OW)] : 0;
        for (int64_t ci = 0; ci < C; ci++)
            for (int64_t iy = 0; iy < H; iy++)
                for (int64_t ix = 0; ix < W; ix++)
                    for (int64_t co = 0; co < kg; co++)
                        for (int i = 0; i < a->kh; i++)
                            for (int j = 0; j < a->kw; j++) {
                                int64_t oy = iy * a->sh - a->ph + i * a->dh, ox = ix * a->sw - a->pw + j * a->dw;
                                if (oy < 0 || oy >= OH || ox < 0 || ox >= OW) continue;
                                acc[((ci / cg * kg + co) * OH + oy) * OW + ox] +=
                                    (double)r->in[((s * C + ci) * H + iy) * W + ix] * w[((ci * kg + co) * a->kh + i) * a->kw + j];
                            }
        for (int64_t i = 0; i < K * OH * OW; i++) r->out[s * K * OH * OW + i] = (float)acc[i];
    }
    free(acc);
}

static void ref_batchnorm(const Net *net, const IrNode *nd, RefArgs *r)
{
    const float *g = net->data[ir_in(net->g, nd, 1)], *b = net->data[ir_in(net->g, nd, 2)],
                *m = net->data[ir_in(net->g, nd, 3)], *v = net->data[ir_in(net->g, nd, 4)];
    int64_t C = r->x->dim[0], hw = ir_shape_elems(r->x) / C;
    for (int64_t i = 0; i < r->n * C * hw; i++) {
        int64_t c = i / hw % C;
        r->out[i] = (float)((r->in[i] - m[c]) / sqrt((double)v[c] + nd->attr.bn.eps) * g[c] + b[c]);
    }
}

static void ref_linear(const Net *net, const IrNode *nd, RefArgs *r)
{
    const float *w = net->data[ir_in(net->g, nd, 1)], *b = ir_has_bias(nd) ? net->data[ir_in(net->g, nd, 2)] : NULL;
    int64_t in = r->x->dim[0], out = r->y->dim[0];
    for (int s = 0; s < r->n; s++)
        for (int64_t o = 0; o < out; o++) {
            double acc = b ? b[o] : 0;
            for (int64_t i = 0; i < in; i++) acc += (double)r->in[s * in + i] * w[o * in + i];
            r->out[s * out + o] = (float)acc;
        }
}

static void ref_pool(const IrNode *nd, RefArgs *r)
{
    const PoolAttr *a = &nd->attr.pool;
    int64_t H = r->x->dim[1], W = r->x->dim[2], OH = r->y->dim[1], OW = r->y->dim[2];
    for (int64_t p = 0; p < r->n * r->x->dim[0]; p++)
        for (int64_t oy = 0; oy < OH; oy++)
            for (int64_t ox = 0; ox < OW; ox++) {
                double best = -INFINITY, sum = 0;
                for (int i = 0; i < a->kh; i++)
                    for (int j = 0; j < a->kw; j++) {
                        int64_t iy = oy * a->sh - a->ph + i * a->dh, ix = ox * a->sw - a->pw + j * a->dw;
                        if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                        double v = r->in[(p * H + iy) * W + ix];
                        best = v > best ? v : best;
                        sum += v;
                    }
                r->out[(p * OH + oy) * OW + ox] = (float)(nd->op == OP_MAXPOOL2D ? best : sum / (a->kh * a->kw));
            }
}

/* Per channel over the rest: global_avgpool, softmax, lrn. */
static void ref_channelwise(const IrNode *nd, RefArgs *r)
{
    int64_t C = r->x->dim[0], hw = ir_shape_elems(r->x) / C;
    const LrnAttr *l = &nd->attr.lrn;
    for (int s = 0; s < r->n; s++)
        for (int64_t i = 0; i < hw; i++) {
            const float *x = r->in + s * C * hw + i;
            double mx = -INFINITY, sum = 0;
            for (int64_t c = 0; c < C; c++) mx = x[c * hw] > mx ? x[c * hw] : mx;
            for (int64_t c = 0; c < C; c++) sum += exp(x[c * hw] - mx);
            for (int64_t c = 0; c < C; c++) {
                if (nd->op == OP_SOFTMAX) {
                    r->out[s * C * hw + c * hw + i] = (float)(exp(x[c * hw] - mx) / sum);
                } else if (nd->op == OP_LRN) {
                    double sq = 0;
                    for (int64_t d = c - l->size / 2; d <= c + (l->size - 1) / 2; d++)
                        if (d >= 0 && d < C) sq += (double)x[d * hw] * x[d * hw];
                    r->out[s * C * hw + c * hw + i] = (float)(x[c * hw] / pow(l->k + l->alpha * sq / l->size, l->beta));
                }
            }
        }
    if (nd->op == OP_GLOBAL_AVGPOOL)
        for (int64_t p = 0; p < r->n * C; p++) {
            double sum = 0;
            for (int64_t i = 0; i < hw; i++) sum += r->in[p * hw + i];
            r->out[p] = (float)(sum / hw);
        }
}

static float ref_scalar(const IrNode *nd, float x)
{
    switch (nd->op) {
    case OP_RELU: return x > 0 ? x : 0;
    case OP_RELU6: return x < 0 ? 0 : x > 6 ? 6 : x;
    case OP_LEAKY_RELU: return x > 0 ? x : nd->attr.act.slope * x;
    case OP_SIGMOID: return (float)(1 / (1 + exp(-(double)x)));
    case OP_TANH: return (float)tanh(x);
    default: return x;  /* identity, dropout, flatten */
    }
}

static void ref_concat(const Net *net, const IrNode *nd, RefArgs *r)
{
    int axis = nd->attr.concat.axis;
    int64_t outer = 1, y_row = 1, off = 0;
    for (int d = 0; d < axis; d++) outer *= r->y->dim[d];
    for (int d = axis; d < r->y->rank; d++) y_row *= r->y->dim[d];
    for (int i = 0; i < nd->n_in; i++) {
        const IrShape *xs = ir_in_shape(net->g, nd, i);
        int64_t x_row = ir_shape_elems(xs) / outer;
        for (int64_t q = 0; q < r->n * outer; q++)
            memcpy(r->out + q * y_row + off, net->data[ir_in(net->g, nd, i)] + q * x_row, (size_t)x_row * sizeof(float));
        off += x_row;
    }
}

/* Runs the graph on n samples of the given inputs; afterwards net->data[v] holds every value. */
void ref_run(Net *net, int n, float *const *inputs)
{
    const IrGraph *g = net->g;
    for (int i = 0; i < g->n_inputs; i++) net->data[g->inputs[i]] = inputs[i];
    for (int32_t k = 0; k < g->n_nodes; k++) {
        const IrNode *nd = &g->nodes[k];
        const IrShape *ys = &g->values[nd->out].shape;
        int64_t ye = ir_shape_elems(ys) * n;
        RefArgs r = {n, ir_in_shape(g, nd, 0), ys, net->data[ir_in(g, nd, 0)], calloc((size_t)ye, sizeof(float))};
        if (net->owned[nd->out]) free(net->data[nd->out]);  /* from an earlier run */
        net->data[nd->out] = r.out;
        net->owned[nd->out] = true;
        const Epilogue *e = ir_epilogue(nd);
        if (e && (e->act != ACT_NONE || e->residual))  /* graphs after the pass: compare with the unfused code */
            fail_msg("the reference interpreter runs no epilogues (node %d)", k);
        switch (nd->op) {
        case OP_CONV2D: ref_conv(net, nd, &r); break;
        case OP_CONV_T2D: ref_conv_t(net, nd, &r); break;
        case OP_BATCHNORM: ref_batchnorm(net, nd, &r); break;
        case OP_LINEAR: ref_linear(net, nd, &r); break;
        case OP_MAXPOOL2D: case OP_AVGPOOL2D: ref_pool(nd, &r); break;
        case OP_GLOBAL_AVGPOOL: case OP_SOFTMAX: case OP_LRN: ref_channelwise(nd, &r); break;
        case OP_CONCAT: ref_concat(net, nd, &r); break;
        case OP_ADD:
            for (int64_t i = 0; i < ye; i++) r.out[i] = r.in[i] + net->data[ir_in(g, nd, 1)][i];
            break;
        default:
            for (int64_t i = 0; i < ye; i++) r.out[i] = ref_scalar(nd, r.in[i]);
        }
    }
}

/* ----------------------------------------------------------- plumbing ---- */

void emit(Net *net, int max_batch, Emitted *e)
{
    char err[256] = "";
    memset(e, 0, sizeof *e);
    snprintf(e->dir, sizeof e->dir, "/tmp/nnc-test-codegen-XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    Arena names = {0};
    snprintf(e->prefix, sizeof e->prefix, "%s", cg_c_prefix(&names, net->g->name));
    arena_free(&names);
    snprintf(e->header, sizeof e->header, "%s.h", e->prefix);
    CgOptions opt = {.max_batch = max_batch, .header_name = e->header, .source_path = "test.net"};
    if (!pass_plan_memory(net->g, max_batch, true, err, sizeof err)) fail_msg("pass_plan_memory: %s", err);
    if (!cg_emit_c(net->g, &opt, &e->c, &e->h, err, sizeof err)) fail_msg("cg_emit_c: %s", err);
}

void path_in(const Emitted *e, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%s", e->dir, name);
}

void write_text(const Emitted *e, const char *name, const char *text)
{
    char path[256];
    path_in(e, name, path, sizeof path);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

void emitted_free(Emitted *e)
{
    const char *files[] = {"w.safetensors", "model.c", "model.o", "cc.log", e->header};
    char path[256];
    for (size_t i = 0; i < NNC_COUNT(files); i++) {
        path_in(e, files[i], path, sizeof path);
        unlink(path);
    }
    rmdir(e->dir);
    sb_free(&e->c);
    sb_free(&e->h);
}

void write_weights(const Net *net, const Emitted *e, const char *skip, const char *reshape)
{
    const IrGraph *g = net->g;
    RtTensor *t = calloc((size_t)g->n_params + 1, sizeof *t);
    int nt = 0;
    char path[256], err[256] = "";
    for (int32_t p = 0; p < g->n_params; p++) {
        const IrValue *v = &g->values[g->params[p]];
        if (skip && strcmp(v->name, skip) == 0) continue;
        t[nt].name = v->name;
        t[nt].rank = v->shape.rank;
        for (int d = 0; d < v->shape.rank; d++) t[nt].shape[d] = v->shape.dim[d];
        if (reshape && strcmp(v->name, reshape) == 0) {  /* same size, other shape */
            t[nt].rank = 1;
            t[nt].shape[0] = ir_shape_elems(&v->shape);
        }
        t[nt++].data = net->data[g->params[p]];
    }
    path_in(e, "w.safetensors", path, sizeof path);
    if (rt_st_write(path, t, nt, NULL, err, sizeof err) != 0) fail_msg("rt_st_write: %s", err);
    free(t);
}

int run_logged(const char *log, char *const *argv)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ), status = 0;
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return 127;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != 127) {
        size_t len;
        const char *why;
        char *text = nnc_read_file(log, &len, &why);
        print_error("%s failed:\n%s\n", argv[0], text ? text : why);
        free(text);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

int run(const Emitted *e, char *const *argv)
{
    char log[256];
    path_in(e, "cc.log", log, sizeof log);
    return run_logged(log, argv);
}

const char *cblas_dir(void)
{
    static const char *dirs[] = {"/usr/include/x86_64-linux-gnu/openblas-pthread", "/usr/include/openblas",
                                 "/usr/include/aarch64-linux-gnu/openblas-pthread", "/usr/include"};
    char path[256];
    for (size_t i = 0; i < NNC_COUNT(dirs); i++) {
        snprintf(path, sizeof path, "%s/cblas.h", dirs[i]);
        if (access(path, R_OK) == 0) return dirs[i];
    }
    return NULL;
}

/* (a) the generated .c compiles without a warning under gcc and clang, with and without BLAS. */
void assert_compiles_cleanly(Net *net)
{
    Emitted e;
    emit(net, MAX_BATCH, &e);
    write_text(&e, e.header, e.h.data);
    write_text(&e, "model.c", e.c.data);
    char src[256], obj[256], inc[300];
    path_in(&e, "model.c", src, sizeof src);
    path_in(&e, "model.o", obj, sizeof obj);
    const char *blas = cblas_dir();
    snprintf(inc, sizeof inc, "-I%s", blas ? blas : ".");
    const char *ccs[] = {"gcc", "clang"};
    for (size_t c = 0; c < NNC_COUNT(ccs); c++)
        for (int use_blas = 0; use_blas < 2; use_blas++) {
            if (use_blas && !blas) continue;
            char *argv[] = {(char *)ccs[c], "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2",
                            "-c", src, "-o", obj, "-DNNC_USE_CBLAS", inc, NULL};
            if (!use_blas) argv[11] = NULL;  /* the command ends before the BLAS flags */
            int st = run(&e, argv);
            if (st == 127) {
                print_message("note: %s not found, not checked\n", ccs[c]);
                continue;
            }
            if (st != 0) fail_msg("%s%s rejects the generated code of %s", ccs[c], use_blas ? " (BLAS)" : "",
                                  net->g->name);
        }
    emitted_free(&e);
}

/* Emits, writes weights, compiles and loads; returns create's code (m set either way). */
int load(Net *net, Loaded *l, const char *skip, const char *reshape, bool weights)
{
    char err[4096] = "", path[256];
    emit(net, MAX_BATCH, &l->e);
    write_weights(net, &l->e, skip, reshape);
    if (rt_cc_load(l->e.c.data, l->e.h.data, l->e.header, l->e.prefix, &l->rt, err, sizeof err) != 0)
        fail_msg("rt_cc_load: %s", err);
    path_in(&l->e, "w.safetensors", path, sizeof path);
    return l->rt.create(&l->m, weights ? path : NULL, NULL);
}

void unload(Loaded *l)
{
    l->rt.destroy(l->m);
    rt_cc_unload(&l->rt);
    emitted_free(&l->e);
}

float *random_batch(RtRng *rng, int64_t count)
{
    float *x = malloc((size_t)count * sizeof *x);
    for (int64_t i = 0; i < count; i++) x[i] = rt_rng_uniform(rng, -1, 1);
    return x;
}

/* (b) forward on a random batch of n matches the reference within float tolerance. */
void assert_forward_matches(Net *net, Loaded *l, int n)
{
    const IrGraph *g = net->g;
    float *in[8], *out[8];
    for (int i = 0; i < g->n_inputs; i++)
        in[i] = random_batch(&net->rng, n * ir_shape_elems(&g->values[g->inputs[i]].shape));
    for (int o = 0; o < g->n_outputs; o++)
        out[o] = calloc((size_t)(n * ir_shape_elems(&g->values[g->outputs[o].value].shape)), sizeof(float));
    if (l->rt.forward_v(l->m, n, (const float *const *)in, out) != 0)
        fail_msg("forward: %s", l->rt.last_error(l->m));
    ref_run(net, n, in);
    for (int o = 0; o < g->n_outputs; o++) {
        int32_t v = g->outputs[o].value;
        int64_t per = ir_shape_elems(&g->values[v].shape);
        bool param = g->values[v].kind == VK_PARAM;  /* unbatched: repeated per sample */
        for (int64_t i = 0; i < per * n; i++) {
            float want = net->data[v][param ? i % per : i];
            if (fabsf(out[o][i] - want) > 1e-4f + 1e-4f * fabsf(want))
                fail_msg("%s, n = %d: output %s[%lld] = %g, the reference says %g", g->name, n,
                         g->outputs[o].name, (long long)i, (double)out[o][i], (double)want);
        }
        free(out[o]);
    }
    for (int i = 0; i < g->n_inputs; i++) {
        free(in[i]);
        net->data[g->inputs[i]] = NULL;
    }
}

/* ------------------------------------------------------------- the nets ---- */

/* conv -> bn -> relu -> maxpool -> flatten -> linear */
Net *cnn_net(void)
{
    Net *net = net_new("cnn");
    int32_t x = net_input(net, "image", 3, 3, 10, 10);
    x = net_conv(net, x, "features.conv0", 8, 3, 1, 1, 1, false, false, 0);
    x = net_bn(net, x, "features.bn0");
    x = net_unary(net, OP_RELU, x);
    x = net_pool(net, OP_MAXPOOL2D, x, 2, 2, 0);
    x = net_unary(net, OP_FLATTEN, x);
    ir_add_output(net->g, "logits", net_linear(net, x, "fc", 10));
    return net;
}

/* two branches concatenated along the channels (and along the height), then a residual add */
Net *concat_add_net(void)
{
    Net *net = net_new("branches");
    int32_t x = net_input(net, "x", 3, 4, 6, 6);
    int32_t a = net_conv(net, x, "a", 3, 1, 1, 0, 1, true, false, 0);
    int32_t b = net_conv(net, x, "b", 5, 3, 1, 1, 1, true, false, 0);
    int32_t ab[2] = {a, b};
    IrAttr ch = {.concat = {.axis = 0}}, ht = {.concat = {.axis = 1}};
    int32_t cat = net_node(net, OP_CONCAT, ab, 2, &ch, "cat");
    int32_t skip = net_conv(net, x, "skip", 8, 3, 1, 1, 2, true, false, 0);
    int32_t sum[2] = {cat, skip};
    int32_t y = net_node(net, OP_ADD, sum, 2, NULL, "res");
    int32_t yy[2] = {y, cat};
    ir_add_output(net->g, "y", net_node(net, OP_CONCAT, yy, 2, &ht, "tall"));
    return net;
}

/* transposed convolutions: stride 2 with output padding and groups, then stride 1 */
Net *conv_t_net(void)
{
    Net *net = net_new("Up-Sampler");
    int32_t x = net_input(net, "z", 3, 4, 5, 5);
    x = net_conv(net, x, "up1", 6, 3, 2, 1, 2, true, true, 1);
    x = net_unary(net, OP_TANH, x);
    ir_add_output(net->g, "img", net_conv(net, x, "up2", 2, 2, 1, 0, 1, false, true, 0));
    return net;
}

/* the output is the input: no params, no workspace, weights may be NULL */
Net *passthrough_net(void)
{
    Net *net = net_new("passthrough");
    int32_t x = net_input(net, "x", 1, 7, 0, 0);
    ir_add_output(net->g, "y", x);
    return net;
}

/* two outputs of one graph, one of them also read by later nodes; a value bound
 * twice, a parameter as an output, and names that collide with C */
Net *two_outputs_net(void)
{
    Net *net = net_new("int");
    int32_t x = net_input(net, "n", 1, 12, 0, 0);
    int32_t h = net_unary(net, OP_RELU, net_linear(net, x, "fc1", 16));
    int32_t logits = net_linear(net, h, "fc2", 3);
    ir_add_output(net->g, "hidden", h);
    ir_add_output(net->g, "int", net_unary(net, OP_SOFTMAX, logits));
    ir_add_output(net->g, "hidden_again", h);
    ir_add_output(net->g, "bias", ir_in(net->g, &net->g->nodes[net->g->values[logits].node], 2));
    return net;
}

/* every other op once: activations, pools, lrn, softmax, copies */
Net *zoo_net(void)
{
    Net *net = net_new("zoo");
    int32_t x = net_input(net, "image", 3, 6, 9, 9);
    x = net_unary(net, OP_RELU6, net_conv(net, x, "c", 6, 3, 1, 1, 3, true, false, 0));
    IrAttr leaky = {.act = {0.1f}}, drop = {.dropout = {0.5f}};
    IrAttr lrn = {.lrn = {3, 1e-2f, 0.75f, 2.0f}};
    x = net_node(net, OP_LEAKY_RELU, &x, 1, &leaky, NULL);
    x = net_node(net, OP_LRN, &x, 1, &lrn, "lrn");
    x = net_pool(net, OP_AVGPOOL2D, x, 3, 2, 1);
    int32_t s = net_unary(net, OP_SIGMOID, x);
    s = net_node(net, OP_DROPOUT, &s, 1, &drop, NULL);
    x = net_unary(net, OP_IDENTITY, net_unary(net, OP_GLOBAL_AVGPOOL, s));
    ir_add_output(net->g, "pooled", x);
    ir_add_output(net->g, "probs", net_unary(net, OP_SOFTMAX, s));
    return net;
}

/* no input at all: the output is a parameter (repeated per sample) */
Net *constant_net(void)
{
    Net *net = net_new("nnc_st");  /* the loader's prefix: the network's must differ */
    int64_t d[2] = {2, 3};
    ir_add_output(net->g, "table", net_param(net, "table", shape_of(2, d), -1, 1));
    return net;
}

const NetFn all_nets[N_ALL_NETS] = {cnn_net,         concat_add_net, conv_t_net,  passthrough_net,
                                 two_outputs_net, zoo_net,        constant_net};
