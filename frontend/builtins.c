/* builtins.c: the built-in operations of the language (elab_internal.h).
 *
 * A built-in that makes an op is named by the op's DSL column in ir/ops.def
 * (ir_ops[op].dsl); its table entry lists only its parameters and the function
 * that checks them and appends the node. The activations are not listed by
 * hand: one entry per row of runtime/snippets/activations.h (NNC_ACTIVATIONS),
 * taking x and, when the row has a slope, `slope` (default 0.01), so a new row
 * is a new built-in with no edit here. The rest (range, len, str, error, min,
 * max) compute values at compile time and are named here. */
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

/* Appends a node, reporting at the call a shape error or a graph grown past
 * IR_MAX_NODES (ir_add_node checks both: one node limit, ir/ir.h's). */
bool elab_add_node(Elab *E, const Expr *call, OpKind op, const int32_t *ins, int n_in, const IrAttr *attr,
                   const char *scope, Val *out)
{
    char err[512];
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

/* conv and conv_transpose */
static bool bi_conv(Elab *E, Bound *b, const Builtin *self, Val *out)
{
    bool transposed = self->op == OP_CONV_T2D;
    const char *op = elab_builtin_name(self);
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
    return elab_add_node(E, b->call, self->op, ins, c.bias ? 3 : 2, &attr, layer, out);
}

static bool bi_batchnorm(Elab *E, Bound *b, const Builtin *self, Val *out)
{
    const char *op = elab_builtin_name(self);
    const IrShape *s = tshape(E, b->v[0]);
    char buf[96];
    if (s->rank != 1 && s->rank != 3) {
        elab_error(E, b->call->loc, "%s expects [channels, height, width] or [features], but its input has shape %s",
                   op, ir_shape_str(s, buf, sizeof buf));
        return false;
    }
    double eps = arg_num(b, 1), mom = arg_num(b, 2);
    if (!(eps > 0 && eps < 1)) {
        elab_error(E, b->at[1], "%s needs 0 < eps < 1, got %g", op, eps);
        return false;
    }
    if (!(mom >= 0 && mom <= 1)) {
        elab_error(E, b->at[2], "%s needs 0 <= momentum <= 1, got %g", op, mom);
        return false;
    }
    const char *layer = elab_layer_name(E, b->frame, op, b->as);
    IrShape ps = {1, {s->dim[0]}};
    int32_t ins[5] = {b->v[0].u.t};
    if (!add_param(E, b->call, layer, "weight", ps, INIT_ONES, 0, &ins[1]) ||
        !add_param(E, b->call, layer, "bias", ps, INIT_ZEROS, 0, &ins[2]) ||
        !add_param(E, b->call, layer, "running_mean", ps, INIT_ZEROS, 0, &ins[3]) ||
        !add_param(E, b->call, layer, "running_var", ps, INIT_ONES, 0, &ins[4]))
        return false;
    E->g->values[ins[3]].buffer = E->g->values[ins[4]].buffer = true;  /* state, not learned */
    IrAttr attr = {.bn = {.eps = (float)eps, .momentum = (float)mom}};
    return elab_add_node(E, b->call, self->op, ins, 5, &attr, layer, out);
}

static bool bi_linear(Elab *E, Bound *b, const Builtin *self, Val *out)
{
    const char *op = elab_builtin_name(self);
    const IrShape *s = tshape(E, b->v[0]);
    char buf[96];
    if (s->rank != 1) {
        elab_error(E, b->call->loc, "%s expects a feature vector [features], but its input has shape %s; "
                   "insert flatten before it", op, ir_shape_str(s, buf, sizeof buf));
        return false;
    }
    if (!in_range(E, b, 1, "the number of output features", 1, MAX_DIM)) return false;
    LinearAttr la = {.out_features = (int)arg_int(b, 1), .bias = b->v[2].u.b};
    const char *layer = elab_layer_name(E, b->frame, op, b->as);
    int32_t ins[3] = {b->v[0].u.t};
    if (!add_param(E, b->call, layer, "weight", (IrShape){2, {la.out_features, s->dim[0]}}, INIT_KAIMING_UNIFORM,
                   s->dim[0], &ins[1]))
        return false;
    if (la.bias && !add_param(E, b->call, layer, "bias", (IrShape){1, {la.out_features}}, INIT_BIAS_UNIFORM, s->dim[0], &ins[2]))
        return false;
    IrAttr attr = {.linear = la};
    return elab_add_node(E, b->call, self->op, ins, la.bias ? 3 : 2, &attr, layer, out);
}

/* identity, flatten, global_avgpool, softmax: one tensor in, no attributes. */
static bool bi_simple(Elab *E, Bound *b, const Builtin *self, Val *out)
{
    return elab_add_node(E, b->call, self->op, &b->v[0].u.t, 1, NULL, b->frame->scope[0] ? b->frame->scope : NULL, out);
}

/* An activation (a row of activations.h): one tensor in; the slope, when the
 * row has one, is argument 1 and attr.act.slope. */
static bool bi_act(Elab *E, Bound *b, const Builtin *self, Val *out)
{
    IrAttr attr = {.act = {0}};
    bool slope = ir_ops[self->op].attr == AT_ACT;
    if (slope) attr.act.slope = (float)arg_num(b, 1);
    return elab_add_node(E, b->call, self->op, &b->v[0].u.t, 1, slope ? &attr : NULL,
                         b->frame->scope[0] ? b->frame->scope : NULL, out);
}

static bool bi_dropout(Elab *E, Bound *b, const Builtin *self, Val *out)
{
    double p = arg_num(b, 1);
    if (!(p >= 0 && p < 1)) {
        elab_error(E, b->at[1], "the dropout probability must be at least 0 and below 1, got %g", p);
        return false;
    }
    IrAttr attr = {.dropout = {(float)p}};
    return elab_add_node(E, b->call, self->op, &b->v[0].u.t, 1, &attr, NULL, out);
}

static bool bi_pool(Elab *E, Bound *b, const Builtin *self, Val *out)
{
    bool is_max = self->op == OP_MAXPOOL2D;
    if (!need_image(E, b, elab_builtin_name(self)) || !in_range(E, b, 1, "the kernel size", 1, MAX_WINDOW) ||
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
    if (!in_range(E, b, 1, "the lrn size", 1, MAX_WINDOW)) return false;
    IrAttr attr = {.lrn = {(int)arg_int(b, 1), (float)arg_num(b, 2), (float)arg_num(b, 3), (float)arg_num(b, 4)}};
    return elab_add_node(E, b->call, self->op, &b->v[0].u.t, 1, &attr, NULL, out);
}

static bool bi_adaptive_pool(Elab *E, Bound *b, const Builtin *self, Val *out)
{
    if (!need_image(E, b, elab_builtin_name(self)) || !in_range(E, b, 1, "the output size", 1, MAX_WINDOW)) return false;
    IrAttr attr;
    memset(&attr, 0, sizeof attr);
    arg_pair(b, 1, &attr.adaptive.oh, &attr.adaptive.ow);
    return elab_add_node(E, b->call, self->op, &b->v[0].u.t, 1, &attr, NULL, out);
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
    if (b->n_rest < 1) {
        elab_error(E, b->call->loc, "%s needs at least one tensor", elab_builtin_name(self));
        return false;
    }
    int32_t *ins = arena_alloc(E->a, (size_t)b->n_rest * sizeof *ins);
    for (int i = 0; i < b->n_rest; i++) ins[i] = b->rest[i].u.t;
    IrAttr attr = {.concat = {0}};
    return elab_add_node(E, b->call, self->op, ins, b->n_rest, &attr, NULL, out);
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


/* The order of the table is the order "did you mean" considers built-ins in
 * (the first of equally close names wins), so it stays as it was: layers, the
 * activations in the order of activations.h, the other ops, then the values. */
#define T(n) {n, A_TENSOR, true, 0}
#define NONE NAN
#define OPB(op, fn, layer, ...) {NULL, {__VA_ARGS__}, fn, op, layer}
#define VALB(name, fn, ...) {name, {__VA_ARGS__}, fn, OP_INPUT, false}
#define ACTB(id, nm, from, slope, fwd, gif, grad) \
    OPB(OP_##id, bi_act, false, T("x"), {(slope) ? "slope" : NULL, A_FLOAT, false, 0.01}),
const Builtin elab_builtins[] = {
    OPB(OP_CONV2D, bi_conv, true, T("x"), {"channels", A_INT, true, 0}, {"kernel", A_INT2, true, 0},
        {"stride", A_INT2, false, 1}, {"pad", A_INT2, false, 0}, {"dilation", A_INT2, false, 1},
        {"groups", A_INT, false, 1}, {"bias", A_BOOL, false, 1}),
    OPB(OP_CONV_T2D, bi_conv, true, T("x"), {"channels", A_INT, true, 0}, {"kernel", A_INT2, true, 0},
        {"stride", A_INT2, false, 1}, {"pad", A_INT2, false, 0}, {"output_pad", A_INT2, false, 0},
        {"dilation", A_INT2, false, 1}, {"groups", A_INT, false, 1}, {"bias", A_BOOL, false, 1}),
    OPB(OP_BATCHNORM, bi_batchnorm, true, T("x"), {"eps", A_FLOAT, false, 1e-5}, {"momentum", A_FLOAT, false, 0.1}),
    OPB(OP_LINEAR, bi_linear, true, T("x"), {"features", A_INT, true, 0}, {"bias", A_BOOL, false, 1}),
    NNC_ACTIVATIONS(ACTB)
    OPB(OP_IDENTITY, bi_simple, false, T("x")),
    OPB(OP_DROPOUT, bi_dropout, false, T("x"), {"p", A_FLOAT, false, 0.5}),
    OPB(OP_FLATTEN, bi_simple, false, T("x")),
    OPB(OP_MAXPOOL2D, bi_pool, false, T("x"), {"kernel", A_INT2, true, 0}, {"stride", A_INT2, false, NONE},
        {"pad", A_INT2, false, 0}, {"dilation", A_INT2, false, 1}, {"ceil", A_BOOL, false, 0}),
    OPB(OP_AVGPOOL2D, bi_pool, false, T("x"), {"kernel", A_INT2, true, 0}, {"stride", A_INT2, false, NONE},
        {"pad", A_INT2, false, 0}, {"ceil", A_BOOL, false, 0}, {"count_pad", A_BOOL, false, 1}),
    OPB(OP_GLOBAL_AVGPOOL, bi_simple, false, T("x")),
    OPB(OP_ADAPTIVE_AVGPOOL, bi_adaptive_pool, false, T("x"), {"size", A_INT2, true, 0}),
    OPB(OP_LRN, bi_lrn, false, T("x"), {"size", A_INT, true, 0}, {"alpha", A_FLOAT, false, 1e-4},
        {"beta", A_FLOAT, false, 0.75}, {"k", A_FLOAT, false, 1.0}),
    OPB(OP_CONCAT, bi_concat, false, {"tensors", A_TENSORS, true, 0}),
    OPB(OP_SOFTMAX, bi_simple, false, T("x")),
    VALB("range", bi_range, {"start", A_INT, true, 0}, {"stop", A_INT, false, NONE}, {"step", A_INT, false, 1}),
    VALB("len", bi_len, {"sequence", A_ANY, true, 0}),
    VALB("str", bi_str, {"value", A_ANY, true, 0}),
    VALB("error", bi_error, {"message", A_ANY, true, 0}),
    VALB("min", bi_minmax, {"a", A_ANY, true, 0}, {"b", A_ANY, true, 0}),
    VALB("max", bi_minmax, {"a", A_ANY, true, 0}, {"b", A_ANY, true, 0}),
};
#undef T
#undef NONE
#undef OPB
#undef VALB
#undef ACTB
const size_t elab_n_builtins = NNC_COUNT(elab_builtins);

const char *elab_builtin_name(const Builtin *bi) { return bi->name ? bi->name : ir_ops[bi->op].dsl; }

const Builtin *elab_find_builtin(const char *name)
{
    for (size_t i = 0; i < elab_n_builtins; i++)
        if (strcmp(elab_builtin_name(&elab_builtins[i]), name) == 0) return &elab_builtins[i];
    return NULL;
}
