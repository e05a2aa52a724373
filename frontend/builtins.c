/* builtins.c: the built-in operations of the language (elab_internal.h): the
 * table of built-ins, their parameters, and the functions that check their
 * arguments and append nodes or compute values. */
#include "elab_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
bool elab_add_node(Elab *E, const Expr *call, OpKind op, const int32_t *ins, int n_in, const IrAttr *attr,
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
    if (!elab_name_insert(E, name)) {
        elab_error(E, call->u.call.as ? call->u.call.as_loc : call->loc,
                   "the layer name '%s' is used twice; give this layer another name with 'as'", layer);
        return false;
    }
    *id = ir_add_param(E->g, name, &shape, init, fan_in);
    return true;
}

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
    const char *layer = elab_layer_name(E, b->frame, op, b->as);
    IrShape ws = transposed ? (IrShape){4, {cin, c.out_channels / c.groups, c.kh, c.kw}}
                            : (IrShape){4, {c.out_channels, cin / c.groups, c.kh, c.kw}};
    int64_t fan_in = ws.dim[1] * c.kh * c.kw;
    int32_t ins[3];
    if (!add_param(E, b->call, layer, "weight", ws, INIT_KAIMING_UNIFORM, fan_in, &ins[1])) return false;
    if (c.bias && !add_param(E, b->call, layer, "bias", (IrShape){1, {c.out_channels}}, INIT_BIAS_UNIFORM, fan_in, &ins[2]))
        return false;
    ins[0] = b->v[0].u.t;
    IrAttr attr = {.conv = c};
    return elab_add_node(E, b->call, transposed ? OP_CONV_T2D : OP_CONV2D, ins, c.bias ? 3 : 2, &attr, layer, out);
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
    const char *layer = elab_layer_name(E, b->frame, "batchnorm", b->as);
    IrShape ps = {1, {s->dim[0]}};
    int32_t ins[5] = {b->v[0].u.t};
    if (!add_param(E, b->call, layer, "weight", ps, INIT_ONES, 0, &ins[1]) ||
        !add_param(E, b->call, layer, "bias", ps, INIT_ZEROS, 0, &ins[2]) ||
        !add_param(E, b->call, layer, "running_mean", ps, INIT_ZEROS, 0, &ins[3]) ||
        !add_param(E, b->call, layer, "running_var", ps, INIT_ONES, 0, &ins[4]))
        return false;
    E->g->values[ins[3]].buffer = E->g->values[ins[4]].buffer = true;  /* state, not learned */
    IrAttr attr = {.bn = {(float)eps, (float)mom}};
    return elab_add_node(E, b->call, OP_BATCHNORM, ins, 5, &attr, layer, out);
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
    const char *layer = elab_layer_name(E, b->frame, "linear", b->as);
    int32_t ins[3] = {b->v[0].u.t};
    if (!add_param(E, b->call, layer, "weight", (IrShape){2, {la.out_features, s->dim[0]}}, INIT_KAIMING_UNIFORM,
                   s->dim[0], &ins[1]))
        return false;
    if (la.bias && !add_param(E, b->call, layer, "bias", (IrShape){1, {la.out_features}}, INIT_BIAS_UNIFORM, s->dim[0], &ins[2]))
        return false;
    IrAttr attr = {.linear = la};
    return elab_add_node(E, b->call, OP_LINEAR, ins, la.bias ? 3 : 2, &attr, layer, out);
}

/* relu, sigmoid, flatten, …: one tensor in, no attributes. */
static bool bi_simple(Elab *E, Bound *b, const Builtin *self, Val *out)
{
    return elab_add_node(E, b->call, self->op, &b->v[0].u.t, 1, NULL, b->frame->scope[0] ? b->frame->scope : NULL, out);
}

static bool bi_leaky_relu(Elab *E, Bound *b, const Builtin *self, Val *out)
{
    (void)self;
    IrAttr attr = {.act = {(float)arg_num(b, 1)}};
    return elab_add_node(E, b->call, OP_LEAKY_RELU, &b->v[0].u.t, 1, &attr, NULL, out);
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
    return elab_add_node(E, b->call, OP_DROPOUT, &b->v[0].u.t, 1, &attr, NULL, out);
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
    return elab_add_node(E, b->call, self->op, &b->v[0].u.t, 1, &attr, NULL, out);
}

static bool bi_lrn(Elab *E, Bound *b, const Builtin *self, Val *out)
{
    (void)self;
    if (!in_range(E, b, 1, "the lrn size", 1, MAX_WINDOW)) return false;
    IrAttr attr = {.lrn = {(int)arg_int(b, 1), (float)arg_num(b, 2), (float)arg_num(b, 3), (float)arg_num(b, 4)}};
    return elab_add_node(E, b->call, OP_LRN, &b->v[0].u.t, 1, &attr, NULL, out);
}

static bool bi_adaptive_pool(Elab *E, Bound *b, const Builtin *self, Val *out)
{
    (void)self;
    if (!need_image(E, b, "adaptive_avgpool") || !in_range(E, b, 1, "the output size", 1, MAX_WINDOW)) return false;
    IrAttr attr;
    memset(&attr, 0, sizeof attr);
    arg_pair(b, 1, &attr.adaptive.oh, &attr.adaptive.ow);
    return elab_add_node(E, b->call, OP_ADAPTIVE_AVGPOOL, &b->v[0].u.t, 1, &attr, NULL, out);
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
        elab_error(E, b->at[0], "str needs an integer, a number, a boolean or a string, got %s", elab_describe(E, v));
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
        elab_error(E, b->at[0], "error needs a message string, got %s", elab_describe(E, &b->v[0]));
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
    return elab_add_node(E, b->call, OP_CONCAT, ins, b->n_rest, &attr, NULL, out);
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
    if (!elab_make_list(E, b->call, n, out)) return false;
    for (int64_t i = 0; i < n; i++) out->u.seq.v[i] = vint(lo + i * step);
    return true;
}

static bool bi_len(Elab *E, Bound *b, const Builtin *self, Val *out)
{
    (void)self;
    if (b->v[0].k != V_LIST && b->v[0].k != V_TUPLE) {
        elab_error(E, b->at[0], "len expects a list or a tuple, got %s", elab_describe(E, &b->v[0]));
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
            elab_error(E, b->at[i], "%s expects numbers, got %s", self->name, elab_describe(E, &b->v[i]));
            return false;
        }
    bool first = is_min ? arg_num(b, 0) <= arg_num(b, 1) : arg_num(b, 0) >= arg_num(b, 1);
    *out = b->v[first ? 0 : 1];
    return true;
}


#define X {NULL, A_ANY, false, 0}
#define T(n) {n, A_TENSOR, true, 0}
#define NONE NAN
const Builtin elab_builtins[] = {
    {"conv", {T("x"), {"channels", A_INT, true, 0}, {"kernel", A_INT2, true, 0}, {"stride", A_INT2, false, 1},
              {"pad", A_INT2, false, 0}, {"dilation", A_INT2, false, 1}, {"groups", A_INT, false, 1},
              {"bias", A_BOOL, false, 1}, X}, bi_conv, OP_CONV2D, true},
    {"conv_transpose", {T("x"), {"channels", A_INT, true, 0}, {"kernel", A_INT2, true, 0}, {"stride", A_INT2, false, 1},
              {"pad", A_INT2, false, 0}, {"output_pad", A_INT2, false, 0}, {"dilation", A_INT2, false, 1},
              {"groups", A_INT, false, 1}, {"bias", A_BOOL, false, 1}, X}, bi_conv_t, OP_CONV_T2D, true},
    {"batchnorm", {T("x"), {"eps", A_FLOAT, false, 1e-5}, {"momentum", A_FLOAT, false, 0.1}, X}, bi_batchnorm, OP_BATCHNORM, true},
    {"linear", {T("x"), {"features", A_INT, true, 0}, {"bias", A_BOOL, false, 1}, X}, bi_linear, OP_LINEAR, true},
    {"relu", {T("x"), X}, bi_simple, OP_RELU, false},
    {"relu6", {T("x"), X}, bi_simple, OP_RELU6, false},
    {"leaky_relu", {T("x"), {"slope", A_FLOAT, false, 0.01}, X}, bi_leaky_relu, OP_LEAKY_RELU, false},
    {"sigmoid", {T("x"), X}, bi_simple, OP_SIGMOID, false},
    {"tanh", {T("x"), X}, bi_simple, OP_TANH, false},
    {"identity", {T("x"), X}, bi_simple, OP_IDENTITY, false},
    {"dropout", {T("x"), {"p", A_FLOAT, false, 0.5}, X}, bi_dropout, OP_DROPOUT, false},
    {"flatten", {T("x"), X}, bi_simple, OP_FLATTEN, false},
    {"maxpool", {T("x"), {"kernel", A_INT2, true, 0}, {"stride", A_INT2, false, NONE}, {"pad", A_INT2, false, 0},
                 {"dilation", A_INT2, false, 1}, {"ceil", A_BOOL, false, 0}, X}, bi_pool, OP_MAXPOOL2D, false},
    {"avgpool", {T("x"), {"kernel", A_INT2, true, 0}, {"stride", A_INT2, false, NONE}, {"pad", A_INT2, false, 0},
                 {"ceil", A_BOOL, false, 0}, {"count_pad", A_BOOL, false, 1}, X}, bi_pool, OP_AVGPOOL2D, false},
    {"global_avgpool", {T("x"), X}, bi_simple, OP_GLOBAL_AVGPOOL, false},
    {"adaptive_avgpool", {T("x"), {"size", A_INT2, true, 0}, X}, bi_adaptive_pool, OP_ADAPTIVE_AVGPOOL, false},
    {"lrn", {T("x"), {"size", A_INT, true, 0}, {"alpha", A_FLOAT, false, 1e-4}, {"beta", A_FLOAT, false, 0.75},
             {"k", A_FLOAT, false, 1.0}, X}, bi_lrn, OP_LRN, false},
    {"concat", {{"tensors", A_TENSORS, true, 0}, X}, bi_concat, OP_CONCAT, false},
    {"softmax", {T("x"), X}, bi_simple, OP_SOFTMAX, false},
    {"range", {{"start", A_INT, true, 0}, {"stop", A_INT, false, NONE}, {"step", A_INT, false, 1}, X}, bi_range, OP_INPUT, false},
    {"len", {{"sequence", A_ANY, true, 0}, X}, bi_len, OP_INPUT, false},
    {"str", {{"value", A_ANY, true, 0}, X}, bi_str, OP_INPUT, false},
    {"error", {{"message", A_ANY, true, 0}, X}, bi_error, OP_INPUT, false},
    {"min", {{"a", A_ANY, true, 0}, {"b", A_ANY, true, 0}, X}, bi_minmax, OP_INPUT, false},
    {"max", {{"a", A_ANY, true, 0}, {"b", A_ANY, true, 0}, X}, bi_minmax, OP_INPUT, false},
};
#undef X
#undef T
#undef NONE
const size_t elab_n_builtins = NNC_COUNT(elab_builtins);

const char *elab_builtin_name(const Builtin *bi) { return bi->name; }

const Builtin *elab_find_builtin(const char *name)
{
    for (size_t i = 0; i < elab_n_builtins; i++)
        if (strcmp(elab_builtins[i].name, name) == 0) return &elab_builtins[i];
    return NULL;
}
