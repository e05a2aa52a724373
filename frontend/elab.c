/* elab.c: elaboration, from declarations to one IR graph.
 *
 * The language runs at compile time: a network body is executed statement by
 * statement, numbers and tuples are ordinary values, and a tensor is the id of
 * an IR value. Calling a built-in layer appends a node (its shape is inferred
 * at once, so a mismatch is reported at the expression that caused it);
 * calling a block runs its body in a new frame. Frames remember their caller,
 * so every error inside a block is followed by the chain of calls that led
 * there.
 *
 * Names: each layer that owns parameters (conv, conv_transpose, batchnorm,
 * linear) and each block call gets a name in its frame, either the one the
 * author wrote (`conv(6, 5) as conv1`) or `<kind><k>`, k counting that kind in
 * the frame from 0. A parameter's name is the path of frames plus its own
 * (`layer1.basic0.conv1.weight`), stable as long as the text is.
 *
 * Budgets keep any input from hanging or exhausting the stack or memory:
 * block calls (and the defaults they evaluate) nest at most MAX_CALL_DEPTH
 * deep; expressions and statement bodies nest at most MAX_NEST deep, counted
 * across block calls; evaluation takes at most MAX_STEPS steps, a list
 * counting a step per element; each list, all lists together, repeat counts
 * and the graph are bounded; the parser already bounded expression depth.
 * Variables, blocks and parameter names are found through hash maps, so no
 * lookup grows with the length of the program. */
#define _XOPEN_SOURCE 700 /* realpath */
#include "frontend.h"
#include "ast.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    MAX_CALL_DEPTH = 100,
    MAX_NEST = 3000,          /* active eval() and exec_stmts() calls: bounds the C stack */
    MAX_REPEAT = 100000,
    MAX_LIST = 1000000,
    MAX_LIST_TOTAL = 1 << 22, /* elements of all lists made: bounds their memory (~100 MB) */
    MAX_DIM = 1 << 24,
    MAX_NODES = 1 << 16,      /* operations in one network */
    MAX_BLOCK_PARAMS = 64,
    MAX_WINDOW = 1 << 12,     /* kernel sizes, strides, padding, dilation */
};
#define MAX_STEPS 20000000LL
#define MAX_TOTAL_PARAMS ((int64_t)1 << 32)

/* ---- values ---- */

typedef enum { V_NONE, V_INT, V_FLOAT, V_BOOL, V_STR, V_TENSOR, V_TUPLE, V_LIST, V_FUNC } VKind;

typedef struct Builtin Builtin;

typedef struct {
    const char *name;
    const Decl *block;        /* a user block, or */
    const Builtin *builtin;   /* a built-in operation */
} Func;

typedef struct Val {
    VKind k;
    union {
        int64_t i;
        double f;
        bool b;
        const char *s;
        int32_t t;                               /* IR value id */
        struct { int n; struct Val *v; } seq;    /* tuple, list */
        const Func *fn;
    } u;
} Val;

typedef struct Var {
    const char *name;
    Val val;
} Var;

/* A string-keyed hash map (open addressing, linear probing). Empty until the
 * first put; the table is malloc'ed and released by map_free(). */
typedef struct {
    const char **keys;
    void **vals;
    size_t cap, len;    /* cap: 0 or a power of two, at least twice len */
} NameMap;

typedef struct Counter {
    const char *base;
    int next;
    struct Counter *link;
} Counter;

typedef struct Frame {
    NameMap vars;                 /* name -> Var */
    const char *scope;            /* hierarchical name prefix, "" at the network */
    Counter *counters;            /* auto-name counters of this frame */
    const struct Frame *caller;   /* NULL for the network frame */
    const char *block;            /* block name (NULL for the network) */
    Loc call_loc;                 /* where this block was called */
    bool is_network;
    bool defaults;                /* evaluates parameter defaults: sees blocks and built-ins only */
    Val ret;                      /* the value of `return` */
} Frame;

typedef struct {
    Diag *d;
    Arena *a;
    IrGraph *g;
    const NameMap *blocks;        /* block name -> Decl */
    const Frame *frame;           /* innermost frame, for error notes */
    int depth;                    /* block calls in progress */
    int nest;                     /* eval() and exec_stmts() calls in progress */
    int64_t steps;
    int64_t list_elems;           /* elements of all lists and tuples made so far */
    int64_t total_params;
    NameMap names;                /* parameter names given so far */
} Elab;

typedef enum { EX_OK, EX_RETURNED, EX_FAILED } ExecResult;

static const char *func_name(const Func *fn);

/* A value as a message shows it: "the integer 3", "a tensor of shape [3, 8, 8]". */
static const char *describe(Elab *E, const Val *v)
{
    char buf[96];
    int n = v->k == V_TUPLE || v->k == V_LIST ? v->u.seq.n : 0;
    switch (v->k) {
    case V_INT: return arena_printf(E->a, "the integer %lld", (long long)v->u.i);
    case V_FLOAT: return arena_printf(E->a, "the number %g", v->u.f);
    case V_BOOL: return v->u.b ? "true" : "false";
    case V_STR: return arena_printf(E->a, "the string \"%.40s\"", v->u.s);
    case V_TENSOR:
        return arena_printf(E->a, "a tensor of shape %s", ir_shape_str(&E->g->values[v->u.t].shape, buf, sizeof buf));
    case V_TUPLE: return arena_printf(E->a, "a tuple of %d element%s", n, n == 1 ? "" : "s");
    case V_LIST: return arena_printf(E->a, "a list of %d element%s", n, n == 1 ? "" : "s");
    case V_FUNC:
        return arena_printf(E->a, "the function '%s'", func_name(v->u.fn));
    case V_NONE: break;
    }
    return "nothing";
}

/* Reports at loc, then the chain of block calls that led to it. */
static void elab_error(Elab *E, Loc loc, const char *fmt, ...) NNC_PRINTF(3, 4);
static void elab_error(Elab *E, Loc loc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    diag_verror(E->d, loc, fmt, ap);
    va_end(ap);
    /* the call chain, innermost first; a run of identical calls (recursion) is shown once */
    int shown = 0;
    for (const Frame *f = E->frame; f && f->block;) {
        int same = 0;
        const Frame *g = f->caller;
        while (g && g->block && g->call_loc.file == f->call_loc.file && g->call_loc.line == f->call_loc.line &&
               g->call_loc.col == f->call_loc.col) {
            same++;
            g = g->caller;
        }
        if (++shown > 10) {
            diag_note(E->d, (Loc){0}, "... and more calls");
            break;
        }
        if (same) diag_note(E->d, f->call_loc, "in block '%s', called here (%d times in a row)", f->block, same + 1);
        else diag_note(E->d, f->call_loc, "in block '%s', called here", f->block);
        f = g;
    }
}

/* ---- names ---- */

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void *map_get(const NameMap *m, const char *key)
{
    if (!m->cap) return NULL;
    for (size_t j = hash_str(key) & (m->cap - 1); m->keys[j]; j = (j + 1) & (m->cap - 1))
        if (strcmp(m->keys[j], key) == 0) return m->vals[j];
    return NULL;
}

/* Inserts key, or replaces its value. */
static void map_put(NameMap *m, const char *key, void *val)
{
    if ((m->len + 1) * 2 > m->cap) {
        NameMap n = {0};
        n.cap = m->cap ? m->cap * 2 : 16;
        n.keys = nnc_xcalloc(n.cap, sizeof *n.keys);
        n.vals = nnc_xcalloc(n.cap, sizeof *n.vals);
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i]) map_put(&n, m->keys[i], m->vals[i]);
        free(m->keys);
        free(m->vals);
        *m = n;
    }
    size_t j = hash_str(key) & (m->cap - 1);
    while (m->keys[j] && strcmp(m->keys[j], key) != 0) j = (j + 1) & (m->cap - 1);
    if (!m->keys[j]) m->len++;
    m->keys[j] = key;
    m->vals[j] = val;
}

static void map_free(NameMap *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* Adds a parameter name; false when it was given already. */
static bool name_insert(Elab *E, const char *name)
{
    if (map_get(&E->names, name)) return false;
    map_put(&E->names, name, (void *)name);
    return true;
}

/* The name of a new layer of kind base in frame f: the author's `as` name or base<k>. */
static const char *layer_name(Elab *E, Frame *f, const char *base, const char *as)
{
    const char *local = as;
    if (!local) {
        Counter *c = f->counters;
        while (c && strcmp(c->base, base) != 0) c = c->link;
        if (!c) {
            c = arena_alloc(E->a, sizeof *c);
            c->base = base;
            c->link = f->counters;
            f->counters = c;
        }
        local = arena_printf(E->a, "%s%d", base, c->next++);
    }
    return f->scope[0] ? arena_printf(E->a, "%s.%s", f->scope, local) : local;
}

/* ---- variables ---- */

static Var *lookup_var(Frame *f, const char *name) { return map_get(&f->vars, name); }

static void set_var(Elab *E, Frame *f, const char *name, Val val)
{
    Var *v = lookup_var(f, name);
    if (!v) {
        v = arena_alloc(E->a, sizeof *v);
        v->name = name;
        map_put(&f->vars, name, v);
    }
    v->val = val;
}

/* ---- built-ins ---- */

typedef enum { A_TENSOR, A_TENSORS, A_INT, A_INT2, A_FLOAT, A_BOOL, A_ANY } ArgType;

typedef struct {
    const char *name;
    ArgType type;
    bool required;
    double def;        /* default for numbers and booleans; NAN means "none" */
} BParam;

typedef struct {
    const Expr *call;
    Frame *frame;
    Val v[10];          /* bound arguments, by parameter index */
    bool given[10];
    Loc at[10];         /* where each argument was written (the call, for defaults) */
    Val *rest;          /* A_TENSORS: all tensors */
    Loc *rest_at;
    int n_rest;
    const char *as;     /* the call's resolved `as` path, or NULL */
} Bound;

struct Builtin {
    const char *name;
    BParam params[10];
    bool (*fn)(Elab *E, Bound *b, const Builtin *self, Val *out);
    OpKind op;          /* for the simple tensor ops */
};

static Val vint(int64_t i) { Val v = {V_INT, {.i = i}}; return v; }
static Val vtensor(int32_t t) { Val v = {V_TENSOR, {.t = t}}; return v; }

static int64_t arg_int(const Bound *b, int i) { return b->v[i].u.i; }
static double arg_num(const Bound *b, int i) { return b->v[i].k == V_INT ? (double)b->v[i].u.i : b->v[i].u.f; }
static bool arg_none(const Bound *b, int i) { return b->v[i].k == V_NONE; }

/* An A_INT2 argument: an integer n (meaning n, n) or a pair (h, w). */
static void arg_pair(const Bound *b, int i, int *h, int *w)
{
    const Val *v = &b->v[i];
    if (v->k == V_INT) {
        *h = *w = (int)v->u.i;
    } else {
        *h = (int)v->u.seq.v[0].u.i;
        *w = (int)v->u.seq.v[1].u.i;
    }
}

static IrLoc irloc(const Expr *e)
{
    return (IrLoc){e->loc.file ? e->loc.file->path : NULL, e->loc.line, e->loc.col};
}

/* Appends a node, reporting a shape error at the call. */
static bool add_node(Elab *E, const Expr *call, OpKind op, const int32_t *ins, int n_in, const IrAttr *attr,
                     const char *scope, Val *out)
{
    char err[512];
    if (E->g->n_nodes >= MAX_NODES) {
        elab_error(E, call->loc, "the network has more than %d operations; is a loop unbounded?", MAX_NODES);
        return false;
    }
    int32_t v = ir_add_node(E->g, op, ins, n_in, attr, irloc(call), scope, err, sizeof err);
    if (v < 0) {
        elab_error(E, call->loc, "%s", err);
        return false;
    }
    *out = vtensor(v);
    return true;
}

static bool add_param(Elab *E, const Expr *call, const char *layer, const char *what, IrShape shape,
                      InitKind init, int64_t fan_in, int32_t *id)
{
    const char *name = arena_printf(E->a, "%s.%s", layer, what);
    int64_t elems = ir_shape_elems(&shape);
    char buf[96];
    if (elems <= 0 || elems > IR_MAX_ELEMS) {
        elab_error(E, call->loc, "parameter '%s' would have shape %s, which is %s", name,
                   ir_shape_str(&shape, buf, sizeof buf), elems <= 0 ? "empty" : "too large (over 2^31 elements)");
        return false;
    }
    if ((E->total_params += elems) > MAX_TOTAL_PARAMS) {
        elab_error(E, call->loc, "the network's parameters exceed 2^32 values (16 GiB) at '%s'", name);
        return false;
    }
    if (!name_insert(E, name)) {
        elab_error(E, call->u.call.as ? call->u.call.as_loc : call->loc,
                   "the layer name '%s' is used twice; give this layer another name with 'as'", layer);
        return false;
    }
    *id = ir_add_param(E->g, name, &shape, init, fan_in);
    return true;
}

static const IrShape *tshape(Elab *E, Val v) { return &E->g->values[v.u.t].shape; }

/* A shape check before parameters are made: the input must be an image. */
static bool need_image(Elab *E, const Bound *b, const char *op)
{
    const IrShape *s = tshape(E, b->v[0]);
    char buf[96];
    if (s->rank != 3) {
        elab_error(E, b->call->loc, "%s expects an image [channels, height, width], but its input has shape %s%s", op,
                   ir_shape_str(s, buf, sizeof buf), s->rank == 1 ? "; a feature vector has no height and width" : "");
        return false;
    }
    return true;
}

/* Checks that argument i, an integer or a pair (h, w) of them (check_type has
 * seen to that), lies within [lo, hi], before anything narrows it to int. */
static bool in_range(Elab *E, const Bound *b, int i, const char *what, int64_t lo, int64_t hi)
{
    const Val *v = &b->v[i];
    int64_t h = v->k == V_INT ? v->u.i : v->u.seq.v[0].u.i;
    int64_t w = v->k == V_INT ? v->u.i : v->u.seq.v[1].u.i;
    if (h >= lo && h <= hi && w >= lo && w <= hi) return true;
    elab_error(E, b->at[i], "%s must be between %lld and %lld, got %lld", what, (long long)lo, (long long)hi,
               (long long)(h < lo || h > hi ? h : w));
    return false;
}

static bool conv_common(Elab *E, Bound *b, bool transposed, Val *out)
{
    const char *op = transposed ? "conv_transpose" : "conv";
    int gi = transposed ? 7 : 6, di = transposed ? 6 : 5;
    if (!need_image(E, b, op) || !in_range(E, b, 1, "the number of output channels", 1, MAX_DIM) ||
        !in_range(E, b, 2, "the kernel size", 1, MAX_WINDOW) || !in_range(E, b, 3, "the stride", 1, MAX_WINDOW) ||
        !in_range(E, b, 4, "the padding", 0, MAX_WINDOW) ||
        (transposed && !in_range(E, b, 5, "the output padding", 0, MAX_WINDOW)) ||
        !in_range(E, b, di, "the dilation", 1, MAX_WINDOW) || !in_range(E, b, gi, "groups", 1, MAX_DIM))
        return false;
    ConvAttr c = {0};
    c.out_channels = (int)arg_int(b, 1);
    arg_pair(b, 2, &c.kh, &c.kw);
    arg_pair(b, 3, &c.sh, &c.sw);
    arg_pair(b, 4, &c.ph, &c.pw);
    if (transposed) arg_pair(b, 5, &c.oph, &c.opw);
    arg_pair(b, di, &c.dh, &c.dw);
    c.groups = (int)arg_int(b, gi);
    c.bias = b->v[gi + 1].u.b;
    int64_t cin = tshape(E, b->v[0])->dim[0];
    if (cin % c.groups || c.out_channels % c.groups) {
        elab_error(E, b->at[gi], "groups = %d must divide both the input channels (%lld) and the output channels (%d)",
                   c.groups, (long long)cin, c.out_channels);
        return false;
    }
    const char *layer = layer_name(E, b->frame, op, b->as);
    IrShape ws = transposed ? (IrShape){4, {cin, c.out_channels / c.groups, c.kh, c.kw}}
                            : (IrShape){4, {c.out_channels, cin / c.groups, c.kh, c.kw}};
    int64_t fan_in = ws.dim[1] * c.kh * c.kw;
    int32_t ins[3];
    if (!add_param(E, b->call, layer, "weight", ws, INIT_KAIMING_UNIFORM, fan_in, &ins[1])) return false;
    if (c.bias && !add_param(E, b->call, layer, "bias", (IrShape){1, {c.out_channels}}, INIT_BIAS_UNIFORM, fan_in, &ins[2]))
        return false;
    ins[0] = b->v[0].u.t;
    IrAttr attr = {.conv = c};
    return add_node(E, b->call, transposed ? OP_CONV_T2D : OP_CONV2D, ins, c.bias ? 3 : 2, &attr, layer, out);
}

static bool bi_conv(Elab *E, Bound *b, const Builtin *self, Val *out) { (void)self; return conv_common(E, b, false, out); }
static bool bi_conv_t(Elab *E, Bound *b, const Builtin *self, Val *out) { (void)self; return conv_common(E, b, true, out); }

static bool bi_batchnorm(Elab *E, Bound *b, const Builtin *self, Val *out)
{
    (void)self;
    const IrShape *s = tshape(E, b->v[0]);
    char buf[96];
    if (s->rank != 1 && s->rank != 3) {
        elab_error(E, b->call->loc, "batchnorm expects [channels, height, width] or [features], but its input has shape %s",
                   ir_shape_str(s, buf, sizeof buf));
        return false;
    }
    double eps = arg_num(b, 1), mom = arg_num(b, 2);
    if (!(eps > 0 && eps < 1)) {
        elab_error(E, b->at[1], "batchnorm needs 0 < eps < 1, got %g", eps);
        return false;
    }
    if (!(mom >= 0 && mom <= 1)) {
        elab_error(E, b->at[2], "batchnorm needs 0 <= momentum <= 1, got %g", mom);
        return false;
    }
    const char *layer = layer_name(E, b->frame, "batchnorm", b->as);
    IrShape ps = {1, {s->dim[0]}};
    int32_t ins[5] = {b->v[0].u.t};
    if (!add_param(E, b->call, layer, "weight", ps, INIT_ONES, 0, &ins[1]) ||
        !add_param(E, b->call, layer, "bias", ps, INIT_ZEROS, 0, &ins[2]) ||
        !add_param(E, b->call, layer, "running_mean", ps, INIT_ZEROS, 0, &ins[3]) ||
        !add_param(E, b->call, layer, "running_var", ps, INIT_ONES, 0, &ins[4]))
        return false;
    E->g->values[ins[3]].buffer = E->g->values[ins[4]].buffer = true;  /* state, not learned */
    IrAttr attr = {.bn = {(float)eps, (float)mom}};
    return add_node(E, b->call, OP_BATCHNORM, ins, 5, &attr, layer, out);
}

static bool bi_linear(Elab *E, Bound *b, const Builtin *self, Val *out)
{
    (void)self;
    const IrShape *s = tshape(E, b->v[0]);
    char buf[96];
    if (s->rank != 1) {
        elab_error(E, b->call->loc, "linear expects a feature vector [features], but its input has shape %s; "
                   "insert flatten before it", ir_shape_str(s, buf, sizeof buf));
        return false;
    }
    if (!in_range(E, b, 1, "the number of output features", 1, MAX_DIM)) return false;
    LinearAttr la = {.out_features = (int)arg_int(b, 1), .bias = b->v[2].u.b};
    const char *layer = layer_name(E, b->frame, "linear", b->as);
    int32_t ins[3] = {b->v[0].u.t};
    if (!add_param(E, b->call, layer, "weight", (IrShape){2, {la.out_features, s->dim[0]}}, INIT_KAIMING_UNIFORM,
                   s->dim[0], &ins[1]))
        return false;
    if (la.bias && !add_param(E, b->call, layer, "bias", (IrShape){1, {la.out_features}}, INIT_BIAS_UNIFORM, s->dim[0], &ins[2]))
        return false;
    IrAttr attr = {.linear = la};
    return add_node(E, b->call, OP_LINEAR, ins, la.bias ? 3 : 2, &attr, layer, out);
}

/* relu, sigmoid, flatten, …: one tensor in, no attributes. */
static bool bi_simple(Elab *E, Bound *b, const Builtin *self, Val *out)
{
    return add_node(E, b->call, self->op, &b->v[0].u.t, 1, NULL, b->frame->scope[0] ? b->frame->scope : NULL, out);
}

static bool bi_leaky_relu(Elab *E, Bound *b, const Builtin *self, Val *out)
{
    (void)self;
    IrAttr attr = {.act = {(float)arg_num(b, 1)}};
    return add_node(E, b->call, OP_LEAKY_RELU, &b->v[0].u.t, 1, &attr, NULL, out);
}

static bool bi_dropout(Elab *E, Bound *b, const Builtin *self, Val *out)
{
    (void)self;
    double p = arg_num(b, 1);
    if (!(p >= 0 && p < 1)) {
        elab_error(E, b->at[1], "the dropout probability must be at least 0 and below 1, got %g", p);
        return false;
    }
    IrAttr attr = {.dropout = {(float)p}};
    return add_node(E, b->call, OP_DROPOUT, &b->v[0].u.t, 1, &attr, NULL, out);
}

static bool bi_pool(Elab *E, Bound *b, const Builtin *self, Val *out)
{
    bool is_max = self->op == OP_MAXPOOL2D;
    if (!need_image(E, b, self->name) || !in_range(E, b, 1, "the kernel size", 1, MAX_WINDOW) ||
        (!arg_none(b, 2) && !in_range(E, b, 2, "the stride", 1, MAX_WINDOW)) ||
        !in_range(E, b, 3, "the padding", 0, MAX_WINDOW) ||
        (is_max && !in_range(E, b, 4, "the dilation", 1, MAX_WINDOW)))
        return false;
    PoolAttr p = {0};
    arg_pair(b, 1, &p.kh, &p.kw);
    if (arg_none(b, 2)) { p.sh = p.kh; p.sw = p.kw; }   /* PyTorch: stride defaults to the kernel size */
    else arg_pair(b, 2, &p.sh, &p.sw);
    arg_pair(b, 3, &p.ph, &p.pw);
    if (is_max) {
        arg_pair(b, 4, &p.dh, &p.dw);
        p.ceil_mode = b->v[5].u.b;
    } else {
        p.dh = p.dw = 1;
        p.ceil_mode = b->v[4].u.b;
        p.count_include_pad = b->v[5].u.b;
    }
    IrAttr attr = {.pool = p};
    return add_node(E, b->call, self->op, &b->v[0].u.t, 1, &attr, NULL, out);
}

static bool bi_lrn(Elab *E, Bound *b, const Builtin *self, Val *out)
{
    (void)self;
    if (!in_range(E, b, 1, "the lrn size", 1, MAX_WINDOW)) return false;
    IrAttr attr = {.lrn = {(int)arg_int(b, 1), (float)arg_num(b, 2), (float)arg_num(b, 3), (float)arg_num(b, 4)}};
    return add_node(E, b->call, OP_LRN, &b->v[0].u.t, 1, &attr, NULL, out);
}

static bool bi_adaptive_pool(Elab *E, Bound *b, const Builtin *self, Val *out)
{
    (void)self;
    if (!need_image(E, b, "adaptive_avgpool") || !in_range(E, b, 1, "the output size", 1, MAX_WINDOW)) return false;
    IrAttr attr;
    memset(&attr, 0, sizeof attr);
    arg_pair(b, 1, &attr.adaptive.oh, &attr.adaptive.ow);
    return add_node(E, b->call, OP_ADAPTIVE_AVGPOOL, &b->v[0].u.t, 1, &attr, NULL, out);
}

/* str(v): an integer, number, boolean or string as text, for computed layer names. */
static bool bi_str(Elab *E, Bound *b, const Builtin *self, Val *out)
{
    (void)self;
    const Val *v = &b->v[0];
    const char *s;
    switch (v->k) {
    case V_INT: s = arena_printf(E->a, "%lld", (long long)v->u.i); break;
    case V_FLOAT: s = arena_printf(E->a, "%g", v->u.f); break;
    case V_BOOL: s = v->u.b ? "true" : "false"; break;
    case V_STR: s = v->u.s; break;
    default:
        elab_error(E, b->at[0], "str needs an integer, a number, a boolean or a string, got %s", describe(E, v));
        return false;
    }
    *out = (Val){V_STR, {.s = s}};
    return true;
}

/* error("message"): a user-defined compile error at the call, with the call chain. */
static bool bi_error(Elab *E, Bound *b, const Builtin *self, Val *out)
{
    (void)self;
    (void)out;
    if (b->v[0].k != V_STR) {
        elab_error(E, b->at[0], "error needs a message string, got %s", describe(E, &b->v[0]));
        return false;
    }
    elab_error(E, b->call->loc, "%s", b->v[0].u.s);
    return false;
}

static bool bi_concat(Elab *E, Bound *b, const Builtin *self, Val *out)
{
    (void)self;
    if (b->n_rest < 1) {
        elab_error(E, b->call->loc, "concat needs at least one tensor");
        return false;
    }
    int32_t *ins = arena_alloc(E->a, (size_t)b->n_rest * sizeof *ins);
    for (int i = 0; i < b->n_rest; i++) ins[i] = b->rest[i].u.t;
    IrAttr attr = {.concat = {0}};
    return add_node(E, b->call, OP_CONCAT, ins, b->n_rest, &attr, NULL, out);
}

static bool step(Elab *E, const Expr *e);

/* Lists count a step per element, and all lists together are bounded, so no
 * loop can pile up unbounded memory. */
static bool make_list(Elab *E, const Expr *at, int64_t n, Val *out)
{
    if (n > MAX_LIST) {
        elab_error(E, at->loc, "a list of %lld elements is too long (the limit is %d)", (long long)n, MAX_LIST);
        return false;
    }
    if (n > 0 && (E->list_elems += n) > MAX_LIST_TOTAL) {
        elab_error(E, at->loc, "the lists made so far hold more than %d elements; is a loop that builds lists unbounded?",
                   MAX_LIST_TOTAL);
        return false;
    }
    if (n > 0) E->steps += n - 1;
    if (!step(E, at)) return false;
    out->k = V_LIST;
    out->u.seq.n = (int)(n > 0 ? n : 0);
    out->u.seq.v = arena_alloc(E->a, (size_t)(n > 0 ? n : 1) * sizeof(Val));
    return true;
}

static bool bi_range(Elab *E, Bound *b, const Builtin *self, Val *out)
{
    (void)self;
    int64_t lo = 0, hi = arg_int(b, 0), step = arg_int(b, 2);
    if (!arg_none(b, 1)) { lo = hi; hi = arg_int(b, 1); }
    if (step == 0) {
        elab_error(E, b->at[2], "range step must not be 0");
        return false;
    }
    if (lo < -MAX_LIST || lo > MAX_LIST || hi < -MAX_LIST || hi > MAX_LIST || step < -MAX_LIST || step > MAX_LIST) {
        elab_error(E, b->call->loc, "range arguments must be within +-%d", MAX_LIST);
        return false;
    }
    int64_t n = step > 0 ? (hi - lo + step - 1) / step : (lo - hi - step - 1) / -step;
    if (!make_list(E, b->call, n, out)) return false;
    for (int64_t i = 0; i < n; i++) out->u.seq.v[i] = vint(lo + i * step);
    return true;
}

static bool bi_len(Elab *E, Bound *b, const Builtin *self, Val *out)
{
    (void)self;
    if (b->v[0].k != V_LIST && b->v[0].k != V_TUPLE) {
        elab_error(E, b->at[0], "len expects a list or a tuple, got %s", describe(E, &b->v[0]));
        return false;
    }
    *out = vint(b->v[0].u.seq.n);
    return true;
}

static bool bi_minmax(Elab *E, Bound *b, const Builtin *self, Val *out)
{
    bool is_min = strcmp(self->name, "min") == 0;
    for (int i = 0; i < 2; i++)
        if (b->v[i].k != V_INT && b->v[i].k != V_FLOAT) {
            elab_error(E, b->at[i], "%s expects numbers, got %s", self->name, describe(E, &b->v[i]));
            return false;
        }
    bool first = is_min ? arg_num(b, 0) <= arg_num(b, 1) : arg_num(b, 0) >= arg_num(b, 1);
    *out = b->v[first ? 0 : 1];
    return true;
}

#define X {NULL, A_ANY, false, 0}
#define T(n) {n, A_TENSOR, true, 0}
#define NONE NAN
static const Builtin builtins[] = {
    {"conv", {T("x"), {"channels", A_INT, true, 0}, {"kernel", A_INT2, true, 0}, {"stride", A_INT2, false, 1},
              {"pad", A_INT2, false, 0}, {"dilation", A_INT2, false, 1}, {"groups", A_INT, false, 1},
              {"bias", A_BOOL, false, 1}, X}, bi_conv, OP_CONV2D},
    {"conv_transpose", {T("x"), {"channels", A_INT, true, 0}, {"kernel", A_INT2, true, 0}, {"stride", A_INT2, false, 1},
              {"pad", A_INT2, false, 0}, {"output_pad", A_INT2, false, 0}, {"dilation", A_INT2, false, 1},
              {"groups", A_INT, false, 1}, {"bias", A_BOOL, false, 1}, X}, bi_conv_t, OP_CONV_T2D},
    {"batchnorm", {T("x"), {"eps", A_FLOAT, false, 1e-5}, {"momentum", A_FLOAT, false, 0.1}, X}, bi_batchnorm, OP_BATCHNORM},
    {"linear", {T("x"), {"features", A_INT, true, 0}, {"bias", A_BOOL, false, 1}, X}, bi_linear, OP_LINEAR},
    {"relu", {T("x"), X}, bi_simple, OP_RELU},
    {"relu6", {T("x"), X}, bi_simple, OP_RELU6},
    {"leaky_relu", {T("x"), {"slope", A_FLOAT, false, 0.01}, X}, bi_leaky_relu, OP_LEAKY_RELU},
    {"sigmoid", {T("x"), X}, bi_simple, OP_SIGMOID},
    {"tanh", {T("x"), X}, bi_simple, OP_TANH},
    {"identity", {T("x"), X}, bi_simple, OP_IDENTITY},
    {"dropout", {T("x"), {"p", A_FLOAT, false, 0.5}, X}, bi_dropout, OP_DROPOUT},
    {"flatten", {T("x"), X}, bi_simple, OP_FLATTEN},
    {"maxpool", {T("x"), {"kernel", A_INT2, true, 0}, {"stride", A_INT2, false, NONE}, {"pad", A_INT2, false, 0},
                 {"dilation", A_INT2, false, 1}, {"ceil", A_BOOL, false, 0}, X}, bi_pool, OP_MAXPOOL2D},
    {"avgpool", {T("x"), {"kernel", A_INT2, true, 0}, {"stride", A_INT2, false, NONE}, {"pad", A_INT2, false, 0},
                 {"ceil", A_BOOL, false, 0}, {"count_pad", A_BOOL, false, 1}, X}, bi_pool, OP_AVGPOOL2D},
    {"global_avgpool", {T("x"), X}, bi_simple, OP_GLOBAL_AVGPOOL},
    {"adaptive_avgpool", {T("x"), {"size", A_INT2, true, 0}, X}, bi_adaptive_pool, OP_ADAPTIVE_AVGPOOL},
    {"lrn", {T("x"), {"size", A_INT, true, 0}, {"alpha", A_FLOAT, false, 1e-4}, {"beta", A_FLOAT, false, 0.75},
             {"k", A_FLOAT, false, 1.0}, X}, bi_lrn, OP_LRN},
    {"concat", {{"tensors", A_TENSORS, true, 0}, X}, bi_concat, OP_CONCAT},
    {"softmax", {T("x"), X}, bi_simple, OP_SOFTMAX},
    {"range", {{"start", A_INT, true, 0}, {"stop", A_INT, false, NONE}, {"step", A_INT, false, 1}, X}, bi_range, OP_INPUT},
    {"len", {{"sequence", A_ANY, true, 0}, X}, bi_len, OP_INPUT},
    {"str", {{"value", A_ANY, true, 0}, X}, bi_str, OP_INPUT},
    {"error", {{"message", A_ANY, true, 0}, X}, bi_error, OP_INPUT},
    {"min", {{"a", A_ANY, true, 0}, {"b", A_ANY, true, 0}, X}, bi_minmax, OP_INPUT},
    {"max", {{"a", A_ANY, true, 0}, {"b", A_ANY, true, 0}, X}, bi_minmax, OP_INPUT},
};
#undef X
#undef T
#undef NONE



static const char *func_name(const Func *fn) { return fn->block ? fn->block->name : fn->builtin->name; }

static const Builtin *find_builtin(const char *name)
{
    for (size_t i = 0; i < NNC_COUNT(builtins); i++)
        if (strcmp(builtins[i].name, name) == 0) return &builtins[i];
    return NULL;
}

/* ---- evaluation ---- */

static bool eval(Elab *E, Frame *f, const Expr *e, Val *out);
static ExecResult exec_stmts(Elab *E, Frame *f, const Stmt *s);

static bool step(Elab *E, const Expr *e)
{
    if (++E->steps <= MAX_STEPS) return true;
    elab_error(E, e->loc, "evaluation takes more than %lld steps; is a loop or recursion unbounded?", MAX_STEPS);
    return false;
}

/* Levenshtein distance, for "did you mean". */
static int edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 40 || lb > 40) return 99;
    int d[41][41];
    for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
            d[i][j] = c;
        }
    return d[la][lb];
}

/* How far a candidate is from what was written, for "did you mean": the edit
 * distance, or 2 when one contains the other ("padding" and "pad"); 99 when
 * they are not alike (more than 2 edits, or nothing in common: 'z' and 'x'). */
static int likeness(const char *written, const char *cand)
{
    int d = edit_distance(written, cand);
    size_t lw = strlen(written), lc = strlen(cand);
    if (d > 2 && lw >= 3 && lc >= 3 && (strstr(written, cand) || strstr(cand, written))) d = 2;
    return d <= 2 && (size_t)d < (lw < lc ? lw : lc) ? d : 99;
}

static void consider(const char *written, const char *cand, const char **best, int *bd)
{
    int d = likeness(written, cand);
    if (d < *bd) {
        *bd = d;
        *best = cand;
    }
}

static const char *suggest_name(Elab *E, Frame *f, const char *name)
{
    const char *best = NULL;
    int bd = 99;
    for (size_t i = 0; i < f->vars.cap; i++)
        if (f->vars.keys[i]) consider(name, f->vars.keys[i], &best, &bd);
    for (size_t i = 0; i < NNC_COUNT(builtins); i++) consider(name, builtins[i].name, &best, &bd);
    for (size_t i = 0; i < E->blocks->cap; i++)
        if (E->blocks->keys[i]) consider(name, E->blocks->keys[i], &best, &bd);
    return best;
}

static bool eval_name(Elab *E, Frame *f, const Expr *e, Val *out)
{
    Var *v = lookup_var(f, e->u.s);
    if (v) { *out = v->val; return true; }
    const Decl *blk = map_get(E->blocks, e->u.s);
    if (blk) {
        Func *fn = arena_alloc(E->a, sizeof *fn);
        fn->name = blk->name;
        fn->block = blk;
        *out = (Val){V_FUNC, {.fn = fn}};
        return true;
    }
    const Builtin *bi = find_builtin(e->u.s);
    if (bi) {
        Func *fn = arena_alloc(E->a, sizeof *fn);
        fn->builtin = bi;
        *out = (Val){V_FUNC, {.fn = fn}};
        return true;
    }
    const char *sug = suggest_name(E, f, e->u.s);
    if (sug) elab_error(E, e->loc, "unknown name '%s'; did you mean '%s'?", e->u.s, sug);
    else if (f->block)
        elab_error(E, e->loc, "unknown name '%s'; a block sees only its parameters, its own variables, blocks and "
                   "built-ins", e->u.s);
    else if (f->defaults)
        elab_error(E, e->loc, "unknown name '%s'; a default value sees only blocks and built-ins, not other parameters",
                   e->u.s);
    else elab_error(E, e->loc, "unknown name '%s'", e->u.s);
    return false;
}

static bool eval_seq(Elab *E, Frame *f, const Expr *e, Val *out)
{
    int64_t n = 0;
    for (ExprList *l = e->u.items; l; l = l->next) n++;
    if (!make_list(E, e, n, out)) return false;
    out->k = e->kind == EX_TUPLE ? V_TUPLE : V_LIST;
    int i = 0;
    for (ExprList *l = e->u.items; l; l = l->next)
        if (!eval(E, f, l->e, &out->u.seq.v[i++])) return false;
    return true;
}

static bool is_num(const Val *v) { return v->k == V_INT || v->k == V_FLOAT; }
static double num(const Val *v) { return v->k == V_INT ? (double)v->u.i : v->u.f; }

static const char *binop_text(BinOp op)
{
    static const char *t[] = {"+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "and", "or"};
    return t[op];
}

static bool int_arith(Elab *E, const Expr *e, int64_t a, int64_t b, Val *out)
{
    int64_t r = 0;
    bool ovf = false;
    switch (e->u.bin.op) {
    case BIN_ADD: ovf = __builtin_add_overflow(a, b, &r); break;
    case BIN_SUB: ovf = __builtin_sub_overflow(a, b, &r); break;
    case BIN_MUL: ovf = __builtin_mul_overflow(a, b, &r); break;
    case BIN_DIV:
    case BIN_MOD:
        if (b == 0) {
            elab_error(E, e->loc, e->u.bin.op == BIN_DIV ? "division by zero" : "modulo by zero ('%%' needs a nonzero right side)");
            return false;
        }
        if (a == INT64_MIN && b == -1) { ovf = true; break; }
        r = e->u.bin.op == BIN_DIV ? a / b : a % b;
        /* floor division and a modulo with the divisor's sign, as in Python */
        if (r != 0 && e->u.bin.op == BIN_MOD && ((r < 0) != (b < 0))) r += b;
        if (e->u.bin.op == BIN_DIV && (a % b != 0) && ((a < 0) != (b < 0))) r--;
        break;
    default: NNC_ASSERT(0);
    }
    if (ovf) {
        elab_error(E, e->loc, "integer overflow: %lld %s %lld does not fit in 64 bits", (long long)a,
                   binop_text(e->u.bin.op), (long long)b);
        return false;
    }
    *out = vint(r);
    return true;
}

static bool compare(Elab *E, const Expr *e, const Val *a, const Val *b, Val *out)
{
    BinOp op = e->u.bin.op;
    int c;
    if (is_num(a) && is_num(b)) {
        double x = num(a), y = num(b);
        if (a->k == V_INT && b->k == V_INT) c = a->u.i < b->u.i ? -1 : a->u.i > b->u.i;
        else c = x < y ? -1 : x > y;
    } else if ((op == BIN_EQ || op == BIN_NE) && a->k == b->k && (a->k == V_BOOL || a->k == V_STR)) {
        c = a->k == V_BOOL ? (a->u.b != b->u.b) : (strcmp(a->u.s, b->u.s) != 0);
    } else if ((op == BIN_EQ || op == BIN_NE) && a->k != b->k && a->k <= V_STR && b->k <= V_STR) {
        c = 1;  /* values of different kinds are never equal: [64, "M"] lists can be tested with == "M" */
    } else {
        elab_error(E, e->loc, "cannot compare %s with %s using '%s'", describe(E, a), describe(E, b), binop_text(op));
        return false;
    }
    bool r = op == BIN_EQ ? c == 0 : op == BIN_NE ? c != 0 : op == BIN_LT ? c < 0
           : op == BIN_LE ? c <= 0 : op == BIN_GT ? c > 0 : c >= 0;
    *out = (Val){V_BOOL, {.b = r}};
    return true;
}

static bool eval_logic(Elab *E, Frame *f, const Expr *e, Val *out)
{
    const char *op = binop_text(e->u.bin.op);
    Val a, b;
    if (!eval(E, f, e->u.bin.l, &a)) return false;
    if (a.k != V_BOOL) {
        elab_error(E, e->u.bin.l->loc, "'%s' needs true or false on its left, got %s", op, describe(E, &a));
        return false;
    }
    if (a.u.b == (e->u.bin.op == BIN_OR)) { *out = a; return true; }  /* short circuit */
    if (!eval(E, f, e->u.bin.r, &b)) return false;
    if (b.k != V_BOOL) {
        elab_error(E, e->u.bin.r->loc, "'%s' needs true or false on its right, got %s", op, describe(E, &b));
        return false;
    }
    *out = b;
    return true;
}

static bool eval_binary(Elab *E, Frame *f, const Expr *e, Val *out)
{
    BinOp op = e->u.bin.op;
    if (op == BIN_AND || op == BIN_OR) return eval_logic(E, f, e, out);
    Val a, b;
    if (!eval(E, f, e->u.bin.l, &a) || !eval(E, f, e->u.bin.r, &b)) return false;
    if (op >= BIN_EQ) return compare(E, e, &a, &b, out);
    if (a.k == V_TENSOR && b.k == V_TENSOR && op == BIN_ADD) {
        int32_t ins[2] = {a.u.t, b.u.t};
        return add_node(E, e, OP_ADD, ins, 2, NULL, NULL, out);
    }
    if (a.k == V_STR && b.k == V_STR && op == BIN_ADD) {
        size_t la = strlen(a.u.s), lb = strlen(b.u.s);
        if (la + lb > 4096) {
            elab_error(E, e->loc, "the string would be longer than 4096 characters");
            return false;
        }
        char *cat = arena_alloc(E->a, la + lb + 1);
        memcpy(cat, a.u.s, la);
        memcpy(cat + la, b.u.s, lb + 1);
        *out = (Val){V_STR, {.s = cat}};
        return true;
    }
    if (a.k == V_TENSOR || b.k == V_TENSOR) {
        elab_error(E, e->loc, "'%s' cannot take %s and %s; tensors support only '+' with a tensor of the same shape",
                   binop_text(op), describe(E, &a), describe(E, &b));
        return false;
    }
    if (!is_num(&a) || !is_num(&b)) {
        elab_error(E, e->loc, "'%s' needs numbers, got %s and %s", binop_text(op), describe(E, &a), describe(E, &b));
        return false;
    }
    if (a.k == V_INT && b.k == V_INT) return int_arith(E, e, a.u.i, b.u.i, out);
    double x = num(&a), y = num(&b), r;
    if ((op == BIN_DIV || op == BIN_MOD) && y == 0) {
        elab_error(E, e->loc, op == BIN_DIV ? "division by zero" : "modulo by zero ('%%' needs a nonzero right side)");
        return false;
    }
    switch (op) {
    case BIN_ADD: r = x + y; break;
    case BIN_SUB: r = x - y; break;
    case BIN_MUL: r = x * y; break;
    case BIN_DIV: r = x / y; break;
    default: r = x - y * floor(x / y); break;
    }
    if (!isfinite(r)) {
        elab_error(E, e->loc, "the result of '%s' is not a finite number", binop_text(op));
        return false;
    }
    *out = (Val){V_FLOAT, {.f = r}};
    return true;
}

static bool eval_unary(Elab *E, Frame *f, const Expr *e, Val *out)
{
    Val a;
    if (!eval(E, f, e->u.un.e, &a)) return false;
    if (e->u.un.op == UN_NOT) {
        if (a.k != V_BOOL) {
            elab_error(E, e->loc, "'not' needs true or false, got %s", describe(E, &a));
            return false;
        }
        *out = (Val){V_BOOL, {.b = !a.u.b}};
        return true;
    }
    if (a.k == V_INT && a.u.i != INT64_MIN) { *out = vint(-a.u.i); return true; }
    if (a.k == V_FLOAT) { *out = (Val){V_FLOAT, {.f = -a.u.f}}; return true; }
    if (a.k == V_INT) elab_error(E, e->loc, "integer overflow: -(%lld) does not fit in 64 bits", (long long)a.u.i);
    else elab_error(E, e->loc, "'-' needs a number, got %s", describe(E, &a));
    return false;
}

static bool eval_field(Elab *E, Frame *f, const Expr *e, Val *out)
{
    Val x;
    if (!eval(E, f, e->u.field.e, &x)) return false;
    const char *fld = e->u.field.field;
    if (x.k != V_TENSOR) {
        elab_error(E, e->loc, "'.%s' asks a tensor for its shape, but this is %s", fld, describe(E, &x));
        return false;
    }
    const IrShape *s = tshape(E, x);
    char buf[96];
    if (strcmp(fld, "shape") == 0) {
        if (!make_list(E, e, s->rank, out)) return false;
        out->k = V_TUPLE;
        for (int i = 0; i < s->rank; i++) out->u.seq.v[i] = vint(s->dim[i]);
        return true;
    }
    static const char *img[] = {"channels", "height", "width"};
    bool image_field = false;
    for (int i = 0; i < 3; i++)
        if (strcmp(fld, img[i]) == 0) {
            if (s->rank == 3) {
                *out = vint(s->dim[i]);
                return true;
            }
            image_field = true;
        }
    bool features = strcmp(fld, "features") == 0;
    if (features && s->rank == 1) {
        *out = vint(s->dim[0]);
        return true;
    }
    ir_shape_str(s, buf, sizeof buf);
    if (image_field && s->rank == 1)
        elab_error(E, e->loc, "a feature vector %s has no '%s'; use '.features' for its size", buf, fld);
    else if (features && s->rank == 3)
        elab_error(E, e->loc, "an image %s has no 'features'; use '.channels', '.height' and '.width', or flatten it first",
                   buf);
    else if (image_field || features)
        elab_error(E, e->loc, "a tensor of shape %s has no '%s'; use '.shape'", buf, fld);
    else
        elab_error(E, e->loc, "unknown tensor property '%s'; use channels, height, width, features or shape", fld);
    return false;
}

/* xs[i]: an element of a list or tuple; negative i counts from the end. */
static bool eval_index(Elab *E, Frame *f, const Expr *e, Val *out)
{
    Val seq, idx;
    if (!eval(E, f, e->u.index.seq, &seq) || !eval(E, f, e->u.index.index, &idx)) return false;
    if (seq.k != V_LIST && seq.k != V_TUPLE) {
        elab_error(E, e->loc, "only lists and tuples can be indexed, not %s", describe(E, &seq));
        return false;
    }
    if (idx.k != V_INT) {
        elab_error(E, e->u.index.index->loc, "an index must be an integer, got %s", describe(E, &idx));
        return false;
    }
    int64_t i = idx.u.i < 0 ? idx.u.i + seq.u.seq.n : idx.u.i;
    if (i < 0 || i >= seq.u.seq.n) {
        elab_error(E, e->u.index.index->loc, "index %lld is out of range for %d elements (valid: %d to %d)",
                   (long long)idx.u.i, seq.u.seq.n, -seq.u.seq.n, seq.u.seq.n - 1);
        return false;
    }
    *out = seq.u.seq.v[i];
    return true;
}

/* ---- calls ---- */

static bool check_type(Elab *E, Loc loc, const char *fname, const char *pname, ArgType t, const Val *v)
{
    const char *want = NULL;
    switch (t) {
    case A_TENSOR: case A_TENSORS: if (v->k != V_TENSOR) want = "a tensor"; break;
    case A_INT: if (v->k != V_INT) want = "an integer"; break;
    case A_FLOAT: if (!is_num(v)) want = "a number"; break;
    case A_BOOL: if (v->k != V_BOOL) want = "true or false"; break;
    case A_INT2:
        if (v->k == V_INT) break;
        if (v->k == V_TUPLE && v->u.seq.n == 2 && v->u.seq.v[0].k == V_INT && v->u.seq.v[1].k == V_INT) break;
        want = "an integer or a pair of integers (h, w)";
        break;
    case A_ANY: break;
    }
    if (!want) return true;
    elab_error(E, loc, "%s expects %s for '%s', got %s", fname, want, pname, describe(E, v));
    return false;
}

/* "x, channels, kernel and bias" */
static const char *name_list(Elab *E, const char *const *names, int n)
{
    StrBuf sb = {0};
    for (int i = 0; i < n; i++) sb_printf(&sb, "%s%s", i == 0 ? "" : i == n - 1 ? " and " : ", ", names[i]);
    const char *r = arena_strdup(E->a, sb.data ? sb.data : "");
    sb_free(&sb);
    return r;
}

/* How messages name a callee: "conv", or "block 'basic'". */
static const char *callee(Elab *E, const char *name, bool is_block)
{
    return is_block ? arena_printf(E->a, "block '%s'", name) : name;
}

static void unknown_keyword(Elab *E, const Arg *a, const char *fname, const char *const *names, int n)
{
    const char *best = NULL;
    int bd = 99;
    for (int i = 0; i < n; i++) consider(a->name, names[i], &best, &bd);
    if (best) elab_error(E, a->loc, "%s has no parameter '%s'; did you mean '%s'?", fname, a->name, best);
    else if (n == 0) elab_error(E, a->loc, "%s has no parameter '%s'; it takes no arguments", fname, a->name);
    else if (n == 1) elab_error(E, a->loc, "%s has no parameter '%s'; its only parameter is %s", fname, a->name, names[0]);
    else elab_error(E, a->loc, "%s has no parameter '%s'; its parameters are %s", fname, a->name, name_list(E, names, n));
}

/* Binds a call's arguments to named parameters: positional first, then
 * keywords. vals[i] receives argument i's value, given[i] whether it came,
 * at[i] where it was written. A variadic parameter (index var, or -1)
 * swallows all positional arguments into rest/rest_at. */
static bool bind_args(Elab *E, Frame *f, const Expr *call, const char *name, bool is_block, const char *const *names,
                      int n, int var, Val *vals, bool *given, Loc *at, Val **rest, Loc **rest_at, int *n_rest)
{
    int pos = 0, npos = 0;
    for (const Arg *a = call->u.call.args; a; a = a->next) npos += !a->name;
    if (var >= 0) {
        *rest = arena_alloc(E->a, (size_t)(npos ? npos : 1) * sizeof(Val));
        *rest_at = arena_alloc(E->a, (size_t)(npos ? npos : 1) * sizeof(Loc));
    }
    bool seen_kw = false;
    for (const Arg *a = call->u.call.args; a; a = a->next) {
        int idx;
        if (!a->name) {
            if (seen_kw) {
                elab_error(E, a->loc, "a positional argument cannot follow a keyword argument; "
                           "give it by name or move it before the keywords");
                return false;
            }
            if (var >= 0) {
                (*rest_at)[*n_rest] = a->loc;
                if (!eval(E, f, a->value, &(*rest)[(*n_rest)++])) return false;
                continue;
            }
            if (pos >= n) {
                elab_error(E, a->loc, "%s takes at most %d argument%s (%s), but %d were given",
                           callee(E, name, is_block), n, n == 1 ? "" : "s", name_list(E, names, n), npos);
                return false;
            }
            idx = pos++;
        } else {
            seen_kw = true;
            for (idx = 0; idx < n && strcmp(names[idx], a->name) != 0; idx++) {}
            if (idx == n || idx == var) {
                unknown_keyword(E, a, callee(E, name, is_block), names, n);
                return false;
            }
            if (given[idx]) {
                elab_error(E, a->loc, "argument '%s' of %s is given twice", a->name, callee(E, name, is_block));
                return false;
            }
        }
        if (!eval(E, f, a->value, &vals[idx])) return false;
        given[idx] = true;
        at[idx] = a->value->loc;
    }
    return true;
}

/* The string an `as` path names: segments joined by '.', computed ones
 * evaluated (integers >= 0, or strings of letters, digits and '_'). */
static bool resolve_as(Elab *E, Frame *f, const Expr *call, const char **out)
{
    StrBuf sb = {0};
    bool ok = true;
    *out = NULL;
    for (const AsSeg *a = call->u.call.as; a && ok; a = a->next) {
        const char *text = a->text;
        if (a->expr) {
            Val v;
            ok = eval(E, f, a->expr, &v);
            if (!ok) break;
            if (v.k == V_INT && v.u.i >= 0) {
                text = arena_printf(E->a, "%lld", (long long)v.u.i);
            } else if (v.k == V_STR && v.u.s[0] && strspn(v.u.s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == strlen(v.u.s) && strlen(v.u.s) <= 200) {
                text = v.u.s;
            } else {
                elab_error(E, a->loc, "a computed layer name must be an integer >= 0 or a string of letters, digits "
                           "and '_', got %s", describe(E, &v));
                ok = false;
                break;
            }
        }
        sb_printf(&sb, "%s%s", sb.len ? "." : "", text);
    }
    if (ok && sb.data) *out = arena_strdup(E->a, sb.data);
    sb_free(&sb);
    return ok;
}

static bool call_builtin(Elab *E, Frame *f, const Expr *call, const Builtin *bi, Val *out)
{
    Bound b;
    memset(&b, 0, sizeof b);
    b.call = call;
    b.frame = f;
    const char *names[10];
    int n = 0, var = -1;
    for (; n < 10 && bi->params[n].name; n++) {
        names[n] = bi->params[n].name;
        if (bi->params[n].type == A_TENSORS) var = n;
    }
    if (!bind_args(E, f, call, bi->name, false, names, n, var, b.v, b.given, b.at, &b.rest, &b.rest_at, &b.n_rest))
        return false;
    for (int i = 0; i < b.n_rest; i++)
        if (!check_type(E, b.rest_at[i], bi->name, "tensors", A_TENSOR, &b.rest[i])) return false;
    for (int i = 0; i < n; i++) {
        const BParam *p = &bi->params[i];
        if (i == var) continue;
        if (!b.given[i]) {
            if (p->required) {
                elab_error(E, call->loc, "%s needs the argument '%s'", bi->name, p->name);
                return false;
            }
            b.at[i] = call->loc;
            if (isnan(p->def)) b.v[i] = (Val){V_NONE, {0}};
            else if (p->type == A_BOOL) b.v[i] = (Val){V_BOOL, {.b = p->def != 0}};
            else if (p->type == A_FLOAT) b.v[i] = (Val){V_FLOAT, {.f = p->def}};
            else b.v[i] = vint((int64_t)p->def);
            continue;
        }
        if (!check_type(E, b.at[i], bi->name, p->name, p->type, &b.v[i])) return false;
    }
    bool makes_layer = bi->fn == bi_conv || bi->fn == bi_conv_t || bi->fn == bi_batchnorm || bi->fn == bi_linear;
    if (call->u.call.as && !makes_layer) {
        elab_error(E, call->u.call.as_loc, "'as' names layers with parameters and block calls; %s has no parameters", bi->name);
        return false;
    }
    if (!resolve_as(E, f, call, &b.as)) return false;
    if (b.as && strcmp(b.as, "_") == 0) {
        elab_error(E, call->u.call.as_loc, "'as _' keeps the caller's names and applies to block calls; "
                   "name this %s layer", bi->name);
        return false;
    }
    return bi->fn(E, &b, bi, out);
}

static bool call_block(Elab *E, Frame *f, const Expr *call, const Decl *blk, Val *out)
{
    if (E->depth >= MAX_CALL_DEPTH) {
        elab_error(E, call->loc, "block calls nest more than %d deep; does '%s' call itself without end?", MAX_CALL_DEPTH,
                   blk->name);
        return false;
    }
    const char *names[MAX_BLOCK_PARAMS];
    int n = 0;
    for (const Param *p = blk->params; p && n < MAX_BLOCK_PARAMS; p = p->next) names[n++] = p->name;  /* checked */
    Val vals[MAX_BLOCK_PARAMS];
    bool given[MAX_BLOCK_PARAMS] = {0};
    Loc at[MAX_BLOCK_PARAMS];
    if (!bind_args(E, f, call, blk->name, true, names, n, -1, vals, given, at, NULL, NULL, NULL)) return false;
    Frame nf;
    memset(&nf, 0, sizeof nf);
    nf.caller = E->frame;
    nf.block = blk->name;
    nf.call_loc = call->loc;
    const char *as;
    if (!resolve_as(E, f, call, &as)) return false;
    /* `as _` opens no scope: the block's layers are named as if written here */
    nf.scope = as && strcmp(as, "_") == 0 ? f->scope : layer_name(E, f, blk->name, as);
    const Frame *saved = E->frame;
    E->frame = &nf;
    E->depth++;  /* defaults count too: a default may call the block again */
    ExecResult r = EX_FAILED;
    int i = 0;
    for (const Param *p = blk->params; p; p = p->next, i++) {
        if (!given[i]) {
            if (!p->def) {
                E->frame = saved;
                elab_error(E, call->loc, "block '%s' needs the argument '%s'", blk->name, p->name);
                goto out;
            }
            Frame empty = {0};  /* defaults see only built-ins and blocks */
            empty.scope = "";
            empty.defaults = true;
            if (!eval(E, &empty, p->def, &vals[i])) goto out;
        }
        set_var(E, &nf, p->name, vals[i]);
    }
    r = exec_stmts(E, &nf, blk->body);
    if (r == EX_OK) {
        elab_error(E, blk->loc, "block '%s' ended without reaching a 'return'; every path through it must return a value",
                   blk->name);
        r = EX_FAILED;
    }
out:
    E->depth--;
    E->frame = saved;
    map_free(&nf.vars);
    if (r == EX_FAILED) return false;
    *out = nf.ret;
    return true;
}

static bool eval_call(Elab *E, Frame *f, const Expr *e, Val *out)
{
    Val fn;
    if (!eval(E, f, e->u.call.fn, &fn)) return false;
    if (fn.k != V_FUNC) {
        if (e->u.call.fn->kind == EX_NAME)
            elab_error(E, e->loc, "'%s' is %s, not a function; only layers, blocks and built-ins can be called",
                       e->u.call.fn->u.s, describe(E, &fn));
        else
            elab_error(E, e->loc, "%s is not a function; only layers, blocks and built-ins can be called",
                       describe(E, &fn));
        return false;
    }
    if (fn.u.fn->builtin) return call_builtin(E, f, e, fn.u.fn->builtin, out);
    return call_block(E, f, e, fn.u.fn->block, out);
}

/* Nesting of eval() and exec_stmts() calls, across block calls: the C stack
 * they use grows with it, so it is bounded. */
static bool enter(Elab *E, Loc loc)
{
    if (++E->nest <= MAX_NEST) return true;
    E->nest--;
    elab_error(E, loc, "the program nests too deeply (more than %d expressions and bodies, counting block calls)",
               MAX_NEST);
    return false;
}

static bool eval_inner(Elab *E, Frame *f, const Expr *e, Val *out)
{
    switch (e->kind) {
    case EX_INT: *out = vint(e->u.i); return true;
    case EX_FLOAT: *out = (Val){V_FLOAT, {.f = e->u.f}}; return true;
    case EX_STRING: *out = (Val){V_STR, {.s = e->u.s}}; return true;
    case EX_BOOL: *out = (Val){V_BOOL, {.b = e->u.b}}; return true;
    case EX_NAME: return eval_name(E, f, e, out);
    case EX_TUPLE: case EX_LIST: return eval_seq(E, f, e, out);
    case EX_BINARY: return eval_binary(E, f, e, out);
    case EX_UNARY: return eval_unary(E, f, e, out);
    case EX_CALL: return eval_call(E, f, e, out);
    case EX_FIELD: return eval_field(E, f, e, out);
    case EX_INDEX: return eval_index(E, f, e, out);
    }
    NNC_ASSERT(0);
    return false;
}

static bool eval(Elab *E, Frame *f, const Expr *e, Val *out)
{
    if (!step(E, e) || !enter(E, e->loc)) return false;
    bool ok = eval_inner(E, f, e, out);
    E->nest--;
    return ok;
}

/* ---- statements ---- */

/* The place of element i of a list or tuple written in the text, or of the whole expression. */
static Loc item_loc(const Expr *e, int i)
{
    if (e->kind != EX_LIST && e->kind != EX_TUPLE) return e->loc;
    const ExprList *l = e->u.items;
    for (; l && i > 0; i--) l = l->next;
    return l ? l->e->loc : e->loc;
}

static bool check_dims(Elab *E, const Stmt *s, const Val *dims, IrShape *shape)
{
    int n = dims->u.seq.n;
    if (n < 1 || n > 3) {
        elab_error(E, s->e->loc, "an input has 1 to 3 dimensions ([features] or [channels, height, width]), not %d "
                   "(the batch dimension is implicit)", n);
        return false;
    }
    shape->rank = n;
    for (int i = 0; i < n; i++) {
        const Val *d = &dims->u.seq.v[i];
        if (d->k != V_INT || d->u.i < 1 || d->u.i > MAX_DIM) {
            elab_error(E, item_loc(s->e, i), "input dimension %d must be an integer between 1 and %d, got %s", i + 1,
                       MAX_DIM, describe(E, d));
            return false;
        }
        shape->dim[i] = d->u.i;
    }
    if (ir_shape_elems(shape) > IR_MAX_ELEMS) {
        elab_error(E, s->e->loc, "input '%s' has more than 2^31 elements per sample", s->name);
        return false;
    }
    return true;
}

static bool exec_input(Elab *E, Frame *f, const Stmt *s)
{
    if (!f->is_network) {
        elab_error(E, s->loc, "'input' declares a network input; a block receives its tensors as parameters");
        return false;
    }
    for (int32_t i = 0; i < E->g->n_inputs; i++)
        if (strcmp(E->g->values[E->g->inputs[i]].name, s->name) == 0) {
            elab_error(E, s->loc, "input '%s' is declared twice", s->name);
            return false;
        }
    Val dims;
    IrShape shape = {0};
    if (!eval(E, f, s->e, &dims) || !check_dims(E, s, &dims, &shape)) return false;
    set_var(E, f, s->name, vtensor(ir_add_input(E->g, s->name, &shape)));
    return true;
}

static bool exec_output(Elab *E, Frame *f, const Stmt *s)
{
    if (!f->is_network) {
        elab_error(E, s->loc, "'output' declares a network output; a block gives its result with 'return'");
        return false;
    }
    for (int32_t i = 0; i < E->g->n_outputs; i++)
        if (strcmp(E->g->outputs[i].name, s->name) == 0) {
            elab_error(E, s->loc, "output '%s' is declared twice", s->name);
            return false;
        }
    for (int32_t i = 0; i < E->g->n_inputs; i++)
        if (strcmp(E->g->values[E->g->inputs[i]].name, s->name) == 0) {
            elab_error(E, s->loc, "output '%s' has the name of an input; inputs and outputs need distinct names", s->name);
            return false;
        }
    Val v;
    if (!eval(E, f, s->e, &v)) return false;
    if (v.k != V_TENSOR) {
        elab_error(E, s->e->loc, "output '%s' must be a tensor, got %s", s->name, describe(E, &v));
        return false;
    }
    ir_add_output(E->g, s->name, v.u.t);
    set_var(E, f, s->name, v);
    return true;
}

static ExecResult exec_for(Elab *E, Frame *f, const Stmt *s)
{
    Val it;
    if (!eval(E, f, s->e, &it)) return EX_FAILED;
    if (it.k != V_LIST && it.k != V_TUPLE) {
        elab_error(E, s->e->loc, "'for' needs a list or a tuple to walk, got %s", describe(E, &it));
        return EX_FAILED;
    }
    int nvars = 0;
    const char *names[8];
    for (const NameList *n = s->vars; n; n = n->next) {
        if (nvars < 8) names[nvars] = n->name;
        nvars++;
    }
    for (int i = 0; i < it.u.seq.n; i++) {
        const Val *item = &it.u.seq.v[i];
        if (nvars == 1) {
            set_var(E, f, s->vars->name, *item);
        } else {
            if ((item->k != V_TUPLE && item->k != V_LIST) || item->u.seq.n != nvars) {
                elab_error(E, item_loc(s->e, i), "element %d is %s, which does not unpack into the %d names %s", i + 1,
                           describe(E, item), nvars, name_list(E, names, nvars < 8 ? nvars : 8));
                return EX_FAILED;
            }
            int j = 0;
            for (const NameList *n = s->vars; n; n = n->next, j++) set_var(E, f, n->name, item->u.seq.v[j]);
        }
        ExecResult r = exec_stmts(E, f, s->body);
        if (r != EX_OK) return r;
    }
    return EX_OK;
}

static ExecResult exec_repeat(Elab *E, Frame *f, const Stmt *s)
{
    Val n;
    if (!eval(E, f, s->e, &n)) return EX_FAILED;
    if (n.k != V_INT || n.u.i < 0 || n.u.i > MAX_REPEAT) {
        if (n.k == V_INT)
            elab_error(E, s->e->loc, "repeat count %lld is out of range (0 to %d)", (long long)n.u.i, MAX_REPEAT);
        else
            elab_error(E, s->e->loc, "repeat needs an integer count, got %s", describe(E, &n));
        return EX_FAILED;
    }
    for (int64_t i = 0; i < n.u.i; i++) {
        ExecResult r = exec_stmts(E, f, s->body);
        if (r != EX_OK) return r;
    }
    return EX_OK;
}

static ExecResult exec_stmt(Elab *E, Frame *f, const Stmt *s)
{
    Val v;
    switch (s->kind) {
    case ST_INPUT: return exec_input(E, f, s) ? EX_OK : EX_FAILED;
    case ST_OUTPUT: return exec_output(E, f, s) ? EX_OK : EX_FAILED;
    case ST_ASSIGN:
        if (!eval(E, f, s->e, &v)) return EX_FAILED;
        set_var(E, f, s->name, v);
        return EX_OK;
    case ST_IF:
        if (!eval(E, f, s->e, &v)) return EX_FAILED;
        if (v.k != V_BOOL) {
            elab_error(E, s->e->loc, "the condition must be true or false, got %s", describe(E, &v));
            return EX_FAILED;
        }
        return exec_stmts(E, f, v.u.b ? s->body : s->orelse);
    case ST_FOR: return exec_for(E, f, s);
    case ST_REPEAT: return exec_repeat(E, f, s);
    case ST_RETURN:
        if (f->is_network) {
            elab_error(E, s->loc, "'return' belongs in a block; a network names its results with 'output'");
            return EX_FAILED;
        }
        if (!eval(E, f, s->e, &f->ret)) return EX_FAILED;
        return EX_RETURNED;
    }
    return EX_FAILED;
}

static ExecResult exec_stmts(Elab *E, Frame *f, const Stmt *s)
{
    if (!s) return EX_OK;
    if (!enter(E, s->loc)) return EX_FAILED;
    ExecResult r = EX_OK;
    for (; s && r == EX_OK; s = s->next) r = exec_stmt(E, f, s);
    E->nest--;
    return r;
}

/* ---- networks ---- */

/* Parses a --set value ("5", "0.5", "true") as a DSL literal. */
static bool define_value(Elab *E, const FeDefine *def, Val *out)
{
    const char *s = def->value;
    char *end;
    if (strcmp(s, "true") == 0 || strcmp(s, "false") == 0) {
        *out = (Val){V_BOOL, {.b = s[0] == 't'}};
        return true;
    }
    errno = 0;
    long long i = strtoll(s, &end, 10);
    if (*s && !*end) {
        if (errno == ERANGE || i > ((long long)1 << 53) || i < -((long long)1 << 53)) {
            diag_error(E->d, (Loc){0}, "--set %s=%s: the integer is too large; integers go up to 2^53", def->name, s);
            return false;
        }
        *out = vint(i);
        return true;
    }
    double d = strtod(s, &end);
    if (*s && !*end && isfinite(d)) { *out = (Val){V_FLOAT, {.f = d}}; return true; }
    diag_error(E->d, (Loc){0}, "--set %s=%s: the value must be an integer, a number, true or false", def->name, s);
    return false;
}

static bool bind_network_params(Elab *E, Frame *f, const Decl *net, const FeOptions *opt)
{
    for (int i = 0; opt && i < opt->n_defines; i++) {
        const Param *p = net->params;
        while (p && strcmp(p->name, opt->defines[i].name) != 0) p = p->next;
        if (!p) {
            diag_error(E->d, (Loc){0}, "--set %s: network '%s' has no parameter '%s'", opt->defines[i].name, net->name,
                       opt->defines[i].name);
            return false;
        }
    }
    for (const Param *p = net->params; p; p = p->next) {
        Val v;
        const FeDefine *def = NULL;
        for (int i = 0; opt && i < opt->n_defines; i++)
            if (strcmp(opt->defines[i].name, p->name) == 0) def = &opt->defines[i];
        if (def) {
            if (!define_value(E, def, &v)) return false;
        } else if (p->def) {
            Frame empty = {0};
            empty.scope = "";
            empty.defaults = true;
            if (!eval(E, &empty, p->def, &v)) return false;
        } else {
            diag_error(E->d, p->loc, "network parameter '%s' has no default; give a value with --set %s=VALUE",
                       p->name, p->name);
            return false;
        }
        set_var(E, f, p->name, v);
    }
    return true;
}

static IrGraph *elaborate(Elab *E, const Decl *net, const FeOptions *opt)
{
    E->g = ir_new(net->name);
    E->g->source = arena_strdup(&E->g->arena, net->loc.file->path);
    Frame f;
    memset(&f, 0, sizeof f);
    f.scope = "";
    f.is_network = true;
    E->frame = &f;
    bool ok = bind_network_params(E, &f, net, opt) && exec_stmts(E, &f, net->body) == EX_OK;
    map_free(&f.vars);
    if (ok && E->g->n_inputs == 0) {
        diag_error(E->d, net->loc, "network '%s' declares no input; add one such as 'input image: [3, 224, 224]'", net->name);
        ok = false;
    }
    if (ok && E->g->n_outputs == 0) {
        diag_error(E->d, net->loc, "network '%s' declares no output; name its result with 'output NAME = ...'", net->name);
        ok = false;
    }
    if (!ok) {
        ir_free(E->g);
        return NULL;
    }
    return E->g;
}

/* ---- files and imports ---- */

typedef struct {
    Diag *d;
    Arena *a;
    Decl *decls;              /* all files' declarations, concatenated */
    Decl **tail;
    const char **seen;        /* resolved paths already loaded */
    int n_seen;
    const Decl *main_decls;   /* the main file's own */
    const SrcFile *main_file; /* where whole-file messages point (1:1) */
} Loader;

static char *dir_of(Arena *a, const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? arena_strndup(a, path, (size_t)(slash - path + 1)) : arena_strdup(a, "");
}

static bool load_text(Loader *L, const char *path, const char *text, size_t len, Loc from, int depth);

/* The text of a .net file: regular files and pipes (`nnc <(sed ... m.net)`
 * reads a pipe, and a FIFO with no writer reads as empty rather than
 * blocking), at most FE_MAX_SOURCE_BYTES, so /dev/zero or a mistyped path to a
 * data set ends in an error, not in an exhausted memory. NULL with *why. */
static char *read_net(const char *path, size_t *len, const char **why)
{
    char *text = nnc_read_file_max(path, FE_MAX_SOURCE_BYTES, NNC_READ_PIPE, len, why);
    if (!text && *why == nnc_err_too_large)
        *why = "the file is larger than 16 MiB; .net sources are limited to 16 MiB each (split a larger one with import)";
    return text;
}

static bool load_file(Loader *L, const char *path, Loc from, int depth)
{
    char *real = realpath(path, NULL);
    const char *key = real ? real : path;
    for (int i = 0; i < L->n_seen; i++)
        if (strcmp(L->seen[i], key) == 0) { free(real); return true; }  /* imported once only */
    L->seen = nnc_xrealloc(L->seen, (size_t)(L->n_seen + 1) * sizeof *L->seen);
    L->seen[L->n_seen++] = arena_strdup(L->a, key);
    free(real);
    size_t len;
    const char *err;
    char *text = read_net(path, &len, &err);
    if (!text) {
        diag_error(L->d, from, "cannot read '%s': %s%s", path, err,
                   path[0] == '/' ? "" : " (an import is found relative to the file that imports it)");
        return false;
    }
    bool ok = load_text(L, path, text, len, from, depth);
    free(text);
    return ok;
}

/* Parses one file and, first, everything it imports; from is the import
 * statement that named it (no position for the main file). */
static bool load_text(Loader *L, const char *path, const char *text, size_t len, Loc from, int depth)
{
    if (depth > 64) {
        diag_error(L->d, from, "importing '%s': imports nest more than 64 files deep", path);
        return false;
    }
    const SrcFile *file = diag_add_file(L->d, path, text, len);
    if (depth == 0) L->main_file = file;
    Decl *decls;
    if (!fe_parse(L->d, file, &decls)) return false;
    if (depth == 0) L->main_decls = decls;
    for (Decl *d = decls; d; d = d->next) {
        if (d->kind != DECL_IMPORT) continue;
        const char *p = d->name[0] == '/' ? d->name : arena_printf(L->a, "%s%s", dir_of(L->a, path), d->name);
        if (!load_file(L, p, d->loc, depth + 1)) return false;
    }
    /* splice this file's declarations after everything it imported */
    *L->tail = decls;
    while (*L->tail) L->tail = &(*L->tail)->next;
    return true;
}

/* Does any path through these statements return? (A block that never says
 * 'return' is reported where it is defined, called or not.) */
static bool has_return(const Stmt *s)
{
    for (; s; s = s->next)
        if (s->kind == ST_RETURN || has_return(s->body) || has_return(s->orelse)) return true;
    return false;
}

static bool check_params(Diag *d, const Decl *x)
{
    NameMap seen = {0};
    int n = 0;
    bool ok = true;
    for (const Param *p = x->params; p && ok; p = p->next, n++) {
        if (x->kind == DECL_BLOCK && n == MAX_BLOCK_PARAMS) {
            diag_error(d, p->loc, "block '%s' has more than %d parameters", x->name, MAX_BLOCK_PARAMS);
            ok = false;
        } else if (map_get(&seen, p->name)) {
            diag_error(d, p->loc, "parameter '%s' appears twice", p->name);
            ok = false;
        }
        map_put(&seen, p->name, (void *)p);
    }
    map_free(&seen);
    return ok;
}

/* Checks the declarations of all files and fills blocks (name -> Decl). */
static bool check_decls(Diag *d, const Decl *all, NameMap *blocks)
{
    NameMap networks = {0};
    bool ok = true;
    for (const Decl *x = all; x && ok; x = x->next) {
        if (x->kind != DECL_BLOCK && x->kind != DECL_NETWORK) continue;
        NameMap *m = x->kind == DECL_BLOCK ? blocks : &networks;
        const Decl *y = map_get(m, x->name);
        if (x->kind == DECL_BLOCK && find_builtin(x->name)) {
            diag_error(d, x->loc, "'%s' is a built-in operation; give the block another name", x->name);
            ok = false;
        } else if (y) {
            diag_error(d, x->loc, "%s '%s' is defined twice", x->kind == DECL_BLOCK ? "block" : "network", x->name);
            diag_note(d, y->loc, "first defined here");
            ok = false;
        } else if (!check_params(d, x)) {
            ok = false;
        } else if (x->kind == DECL_BLOCK && !has_return(x->body)) {
            diag_error(d, x->loc, "block '%s' has no 'return'; a block gives its result with 'return VALUE'", x->name);
            ok = false;
        }
        map_put(m, x->name, (void *)x);
    }
    for (const Decl *x = all; x && ok; x = x->next)
        if (x->kind == DECL_TRAIN && !map_get(&networks, x->name)) {
            diag_error(d, x->loc, "train section for unknown network '%s'", x->name);
            ok = false;
        }
    map_free(&networks);
    return ok;
}

/* The network of the main file that opt names, or its only one. Whole-file
 * messages carry a position like every other: the second network of an
 * ambiguous file, the first one of a file without the --network asked for,
 * and 1:1 of a file with none (empty: no source line is shown). */
static const Decl *pick_network(Diag *d, const Loader *L, const FeOptions *opt)
{
    const Decl *found = NULL, *first = NULL, *second = NULL;
    int count = 0;
    StrBuf names = {0};
    for (const Decl *x = L->main_decls; x; x = x->next) {
        if (x->kind != DECL_NETWORK) continue;
        count++;
        if (!first) first = x;
        else if (!second) second = x;
        sb_printf(&names, "%s%s", names.len ? ", " : "", x->name);
        if (opt && opt->network ? strcmp(x->name, opt->network) == 0 : !found) found = x;
    }
    Loc top = {L->main_file, 1, 1};
    if (opt && opt->network && !found)
        diag_error(d, first ? first->loc : top, "no network named '%s' (given with --network); this file defines: %s",
                   opt->network, names.len ? names.data : "none");
    else if (count == 0)
        diag_error(d, top, "the file defines no network; write 'network NAME { ... }'");
    else if (count > 1 && !(opt && opt->network))
        diag_error(d, second->loc, "the file defines several networks (%s); pick one with --network NAME", names.data);
    sb_free(&names);
    return d->errors ? NULL : found;
}

static IrGraph *compile(Loader *L, const FeOptions *opt)
{
    NameMap blocks = {0};
    const Decl *net = check_decls(L->d, L->decls, &blocks) ? pick_network(L->d, L, opt) : NULL;
    IrGraph *g = NULL;
    if (net) {
        Elab E;
        memset(&E, 0, sizeof E);
        E.d = L->d;
        E.a = L->a;
        E.blocks = &blocks;
        g = elaborate(&E, net, opt);
        map_free(&E.names);
    }
    map_free(&blocks);
    return g;
}

/* A loader whose main file is path (seen, so importing it again is caught); free L->seen after. */
static void loader_init(Loader *L, const char *path, Diag *d)
{
    memset(L, 0, sizeof *L);
    L->d = d;
    L->a = d->arena;
    L->tail = &L->decls;
    char *real = realpath(path, NULL);
    L->seen = nnc_xmalloc(sizeof *L->seen);
    L->seen[L->n_seen++] = arena_strdup(L->a, real ? real : path);
    free(real);
}

char *fe_read_source(const char *path, size_t *len, Diag *d)
{
    const char *err;
    char *text = read_net(path, len, &err);
    if (!text) diag_error(d, (Loc){0}, "cannot read '%s': %s", path, err);
    return text;
}

IrGraph *fe_compile_text(const char *path, const char *text, size_t len, const FeOptions *opt, Diag *d)
{
    Loader L;
    loader_init(&L, path, d);
    IrGraph *g = load_text(&L, path, text, len, (Loc){0}, 0) ? compile(&L, opt) : NULL;
    free(L.seen);
    return g;
}

IrGraph *fe_compile(const char *path, const FeOptions *opt, Diag *d)
{
    size_t len;
    char *text = fe_read_source(path, &len, d);
    if (!text) return NULL;
    IrGraph *g = fe_compile_text(path, text, len, opt, d);
    free(text);
    return g;
}

/* ---- the train section ---- *
 * `train NETWORK { key = value ... }` gives `nnc train` its defaults; each
 * setting stands for command-line options, which come after it and override
 * it. The values are literals and calls of the recipe's vocabulary below,
 * checked here so that a mistake is reported at its line and column. */

typedef struct {
    Diag *d;
    Arena *a;
    FeTrainSetting *out;
    int n, cap;
} TrainSec;

static void ts_add(TrainSec *s, const char *flag, const char *value, Loc loc)
{
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 16;
        FeTrainSetting *p = arena_alloc(s->a, (size_t)cap * sizeof *p);
        if (s->n) memcpy(p, s->out, (size_t)s->n * sizeof *p);
        s->out = p, s->cap = cap;
    }
    s->out[s->n++] = (FeTrainSetting){flag, value, loc};
}

/* A number literal (optionally negated) as text; NULL after an error. */
static const char *ts_number(TrainSec *s, const Expr *e, bool integer, const char *what)
{
    bool neg = e->kind == EX_UNARY && e->u.un.op == UN_NEG;
    const Expr *x = neg ? e->u.un.e : e;
    if (x->kind == EX_INT) return arena_printf(s->a, "%s%lld", neg ? "-" : "", (long long)x->u.i);
    if (x->kind == EX_FLOAT && !integer) return arena_printf(s->a, "%s%.17g", neg ? "-" : "", x->u.f);
    diag_error(s->d, e->loc, "%s must be %s", what, integer ? "a whole number" : "a number");
    return NULL;
}

/* The call f(...) of a setting: its name, or NULL after an error listing choices. */
static const char *ts_call(TrainSec *s, const Setting *st, const char *choices)
{
    const Expr *e = st->value;
    if (e->kind == EX_NAME) return e->u.s;  /* `schedule = cosine` without parentheses */
    if (e->kind != EX_CALL || e->u.call.fn->kind != EX_NAME) {
        diag_error(s->d, e->loc, "'%s' takes one of %s, e.g. %s = %s", st->key, choices, st->key, choices);
        return NULL;
    }
    return e->u.call.fn->u.s;
}

/* Checks every keyword of call e against the allowed list; positional arguments are refused unless allowed. */
static bool ts_args(TrainSec *s, const Expr *e, const char *const *allowed, int positional)
{
    if (e->kind != EX_CALL) return true;
    int pos = 0;
    for (const Arg *a = e->u.call.args; a; a = a->next) {
        if (!a->name) {
            if (pos++ < positional) continue;
            diag_error(s->d, a->loc, "'%s' takes its arguments by name (name: value)", e->u.call.fn->u.s);
            return false;
        }
        bool ok = false;
        for (int k = 0; allowed[k]; k++) ok |= strcmp(a->name, allowed[k]) == 0;
        if (!ok) {
            StrBuf b = {0};
            for (int k = 0; allowed[k]; k++) sb_printf(&b, "%s%s", k ? ", " : "", allowed[k]);
            diag_error(s->d, a->loc, "'%s' has no argument '%s'; it takes %s", e->u.call.fn->u.s, a->name,
                       b.data ? b.data : "none");
            sb_free(&b);
            return false;
        }
    }
    return true;
}

static const Arg *ts_kw(const Expr *e, const char *name)
{
    if (e->kind != EX_CALL) return NULL;
    for (const Arg *a = e->u.call.args; a; a = a->next)
        if (a->name && strcmp(a->name, name) == 0) return a;
    return NULL;
}

/* key: number keyword `kw` of call e, if given, as option flag. */
static bool ts_kw_number(TrainSec *s, const Expr *e, const char *kw, const char *flag, bool integer)
{
    const Arg *a = ts_kw(e, kw);
    if (!a) return true;
    const char *v = ts_number(s, a->value, integer, arena_printf(s->a, "'%s'", kw));
    if (v) ts_add(s, flag, v, a->loc);
    return v != NULL;
}

static bool ts_setting(TrainSec *s, const Decl *net, const Setting *st)
{
    const Expr *e = st->value;
    const char *k = st->key;
    if (strcmp(k, "batch") == 0 || strcmp(k, "epochs") == 0 || strcmp(k, "seed") == 0 || strcmp(k, "warmup") == 0) {
        const char *v = ts_number(s, e, true, arena_printf(s->a, "'%s'", k));
        if (v) ts_add(s, arena_printf(s->a, "--%s", k), v, st->loc);
        return v != NULL;
    }
    if (strcmp(k, "optimizer") == 0) {
        static const char *const sgd_args[] = {"lr", "momentum", "weight_decay", "nesterov", NULL};
        static const char *const adam_args[] = {"lr", "weight_decay", NULL};
        const char *f = ts_call(s, st, "sgd(...), adam(...) or adamw(...)");
        if (!f) return false;
        bool sgd = strcmp(f, "sgd") == 0;
        if (!sgd && strcmp(f, "adam") && strcmp(f, "adamw")) {
            diag_error(s->d, e->loc, "unknown optimizer '%s'; nnc has sgd, adam and adamw", f);
            return false;
        }
        if (!ts_args(s, e, sgd ? sgd_args : adam_args, 0)) return false;
        ts_add(s, "--optimizer", f, st->loc);
        if (!ts_kw_number(s, e, "lr", "--lr", false) || !ts_kw_number(s, e, "weight_decay", "--weight-decay", false) ||
            (sgd && !ts_kw_number(s, e, "momentum", "--momentum", false)))
            return false;
        const Arg *n = ts_kw(e, "nesterov");
        if (n && (n->value->kind != EX_BOOL)) {
            diag_error(s->d, n->value->loc, "'nesterov' is true or false");
            return false;
        }
        if (n && n->value->u.b) ts_add(s, "--nesterov", NULL, n->loc);
        return true;
    }
    if (strcmp(k, "loss") == 0) {
        static const char *const ce_args[] = {"label_smoothing", "aux_weight", NULL};
        static const char *const other_args[] = {"aux_weight", NULL};
        const char *f = ts_call(s, st, "cross_entropy(OUTPUT, LABELS)");
        if (!f) return false;
        const char *kind = strcmp(f, "cross_entropy") == 0 ? "cross-entropy" : strcmp(f, "bce_with_logits") == 0 ? "bce"
                           : strcmp(f, "mse") == 0 ? "mse" : NULL;
        if (!kind) {
            diag_error(s->d, e->loc, "unknown loss '%s'; nnc train has cross_entropy, bce_with_logits and mse "
                                     "(the last two against one-hot labels)", f);
            return false;
        }
        if (!ts_args(s, e, strcmp(kind, "cross-entropy") == 0 ? ce_args : other_args, 2)) return false;
        ts_add(s, "--loss", kind, st->loc);
        if (!ts_kw_number(s, e, "aux_weight", "--aux-weight", false)) return false;
        const Arg *first = e->kind == EX_CALL ? e->u.call.args : NULL;
        if (first && !first->name) {  /* the output it reads must be one of the network's */
            bool found = false;
            if (first->value->kind == EX_NAME)
                for (const Stmt *x = net->body; x; x = x->next) found |= x->kind == ST_OUTPUT && strcmp(x->name, first->value->u.s) == 0;
            if (!found) {
                diag_error(s->d, first->loc, "cross_entropy's first argument names an output of network '%s'", net->name);
                return false;
            }
        }
        return ts_kw_number(s, e, "label_smoothing", "--label-smoothing", false);
    }
    if (strcmp(k, "schedule") == 0) {
        static const char *const c_args[] = {"warmup", NULL};
        static const char *const st_args[] = {"step_size", "gamma", "warmup", NULL};
        static const char *const ms_args[] = {"milestones", "gamma", "warmup", NULL};
        static const char *const cos_args[] = {"eta_min", "warmup", NULL};
        const char *f = ts_call(s, st, "constant, step(step_size: N), multistep(milestones: [..]) or cosine");
        if (!f) return false;
        const char *const *allowed = strcmp(f, "constant") == 0 ? c_args : strcmp(f, "step") == 0 ? st_args
                                     : strcmp(f, "multistep") == 0 ? ms_args : strcmp(f, "cosine") == 0 ? cos_args : NULL;
        if (!allowed) {
            diag_error(s->d, e->loc, "unknown schedule '%s'; nnc has constant, step, multistep and cosine", f);
            return false;
        }
        if (!ts_args(s, e, allowed, 0)) return false;
        StrBuf b = {0};
        sb_append(&b, f);
        const Arg *a;
        bool ok = true;
        if ((a = ts_kw(e, "step_size"))) {
            const char *v = ts_number(s, a->value, true, "'step_size'");
            ok = v != NULL;
            if (v) sb_printf(&b, ":%s", v);
        } else if (strcmp(f, "step") == 0) {
            diag_error(s->d, e->loc, "step needs step_size: N (epochs between two decays)");
            ok = false;
        }
        if (ok && (a = ts_kw(e, "milestones"))) {
            if (a->value->kind != EX_LIST || !a->value->u.items) {
                diag_error(s->d, a->value->loc, "'milestones' is a list of epochs, e.g. [30, 60]");
                ok = false;
            }
            for (const ExprList *it = ok ? a->value->u.items : NULL; it && ok; it = it->next) {
                const char *v = ts_number(s, it->e, true, "a milestone");
                ok = v != NULL;
                if (v) sb_printf(&b, "%s%s", it == a->value->u.items ? ":" : ",", v);
            }
        } else if (ok && strcmp(f, "multistep") == 0) {
            diag_error(s->d, e->loc, "multistep needs milestones: [E1, E2, ...]");
            ok = false;
        }
        if (ok && (a = ts_kw(e, "gamma"))) {
            const char *v = ts_number(s, a->value, false, "'gamma'");
            ok = v != NULL;
            if (v) sb_printf(&b, ":%s", v);
        }
        if (ok && (a = ts_kw(e, "eta_min"))) {
            const char *v = ts_number(s, a->value, false, "'eta_min'");
            ok = v != NULL;
            if (v) sb_printf(&b, ":%s", v);
        }
        if (ok) ts_add(s, "--schedule", arena_strdup(s->a, b.data), st->loc);
        sb_free(&b);
        return ok && ts_kw_number(s, e, "warmup", "--warmup", true);
    }
    if (strcmp(k, "augment") == 0) {  /* [crop(4), flip, jitter(0.1)] -> --augment crop:4,flip,jitter:0.1 */
        if (e->kind != EX_LIST || !e->u.items) {
            diag_error(s->d, e->loc, "'augment' is a list, e.g. [crop(4), flip, jitter(0.1)]");
            return false;
        }
        StrBuf b = {0};
        bool ok = true;
        for (const ExprList *it = e->u.items; it && ok; it = it->next) {
            const Expr *x = it->e;
            const char *f = x->kind == EX_NAME ? x->u.s : x->kind == EX_CALL && x->u.call.fn->kind == EX_NAME ? x->u.call.fn->u.s : NULL;
            const Arg *a = x->kind == EX_CALL ? x->u.call.args : NULL;
            bool takes = f && (strcmp(f, "crop") == 0 || strcmp(f, "jitter") == 0);
            if (!f || (strcmp(f, "flip") && !takes)) {
                diag_error(s->d, x->loc, "an augmentation is crop(PAD), flip or jitter(AMOUNT)");
                ok = false;
            } else if (takes != (a && !a->name && !a->next)) {
                diag_error(s->d, x->loc, takes ? "'%s' takes one number, e.g. %s(%s)" : "'%s' takes no arguments", f, f,
                           strcmp(f, "crop") == 0 ? "4" : "0.1");
                ok = false;
            } else {
                const char *v = takes ? ts_number(s, a->value, strcmp(f, "crop") == 0, arena_printf(s->a, "%s's argument", f)) : "";
                ok = v != NULL;
                if (ok) sb_printf(&b, "%s%s%s%s", b.len ? "," : "", f, takes ? ":" : "", v);
            }
        }
        if (ok) ts_add(s, "--augment", arena_strdup(s->a, b.data), st->loc);
        sb_free(&b);
        return ok;
    }
    if (strcmp(k, "normalize") == 0) {  /* (mean, std) or ([means], [stds]) -> --normalize M,...,S,... */
        const ExprList *it = e->kind == EX_TUPLE ? e->u.items : NULL;
        if (!it || !it->next || it->next->next) {
            diag_error(s->d, e->loc, "'normalize' is (MEAN, STD), or ([MEANS], [STDS]) with one per channel");
            return false;
        }
        StrBuf b = {0};
        bool ok = true;
        for (int half = 0; half < 2 && ok; half++, it = it->next) {
            const Expr *x = it->e;
            const ExprList *one = &(ExprList){(Expr *)x, NULL};
            for (const ExprList *v = x->kind == EX_LIST ? x->u.items : one; v && ok; v = v->next) {
                const char *num = ts_number(s, v->e, false, half ? "a std" : "a mean");
                ok = num != NULL;
                if (ok) sb_printf(&b, "%s%s", b.len ? "," : "", num);
            }
        }
        if (ok) ts_add(s, "--normalize", arena_strdup(s->a, b.data), st->loc);
        sb_free(&b);
        return ok;
    }
    diag_error(s->d, st->loc, "unknown train setting '%s'; a train section sets batch, epochs, seed, warmup, optimizer, "
                              "loss, schedule, augment and normalize", k);
    return false;
}

bool fe_train_settings(const char *path, const FeOptions *opt, FeTrainSetting **out, int *n, Diag *d)
{
    *out = NULL;
    *n = 0;
    size_t len;
    char *text = fe_read_source(path, &len, d);
    if (!text) return false;
    bool ok = fe_train_settings_text(path, text, len, opt, out, n, d);
    free(text);
    return ok;
}

bool fe_train_settings_text(const char *path, const char *text, size_t len, const FeOptions *opt,
                            FeTrainSetting **out, int *n, Diag *d)
{
    *out = NULL;
    *n = 0;
    Loader L;
    loader_init(&L, path, d);
    NameMap blocks = {0};
    const Decl *net = load_text(&L, path, text, len, (Loc){0}, 0) && check_decls(d, L.decls, &blocks) ? pick_network(d, &L, opt) : NULL;
    TrainSec s = {d, d->arena, NULL, 0, 0};
    bool ok = net != NULL;
    for (const Decl *x = L.main_decls; x && ok; x = x->next)
        if (x->kind == DECL_TRAIN && strcmp(x->name, net->name) == 0)
            for (const Setting *st = x->settings; st && ok; st = st->next) ok = ts_setting(&s, net, st);
    map_free(&blocks);
    free(L.seen);
    if (ok) *out = s.out, *n = s.n;
    return ok;
}
