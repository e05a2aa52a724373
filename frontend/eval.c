/* eval.c: expressions, from the syntax tree to values (elab_internal.h).
 *
 * Every expression takes a step of the MAX_STEPS budget and a level of the
 * MAX_NEST one; names resolve to a variable of the frame, a block or a
 * built-in, in that order, and an unknown one gets a "did you mean". */
#include "elab_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool elab_step(Elab *E, const Expr *e)
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

void elab_consider(const char *written, const char *cand, const char **best, int *bd)
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
        if (f->vars.keys[i]) elab_consider(name, f->vars.keys[i], &best, &bd);
    /* the first of equally close candidates wins: variables, then built-ins in
     * their table's order, then blocks */
    for (size_t i = 0; i < elab_n_builtins; i++) elab_consider(name, elab_builtin_name(&elab_builtins[i]), &best, &bd);
    for (size_t i = 0; i < E->blocks->cap; i++)
        if (E->blocks->keys[i]) elab_consider(name, E->blocks->keys[i], &best, &bd);
    return best;
}

static bool eval_name(Elab *E, Frame *f, const Expr *e, Val *out)
{
    Var *v = elab_lookup_var(f, e->u.s);
    if (v) { *out = v->val; return true; }
    const Decl *blk = elab_map_get(E->blocks, e->u.s);
    if (blk) {
        Func *fn = arena_alloc(E->a, sizeof *fn);
        fn->name = blk->name;
        fn->block = blk;
        *out = (Val){V_FUNC, {.fn = fn}};
        return true;
    }
    const Builtin *bi = elab_find_builtin(e->u.s);
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
    if (!elab_make_list(E, e, n, out)) return false;
    out->k = e->kind == EX_TUPLE ? V_TUPLE : V_LIST;
    int i = 0;
    for (ExprList *l = e->u.items; l; l = l->next)
        if (!elab_eval(E, f, l->e, &out->u.seq.v[i++])) return false;
    return true;
}

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
        elab_error(E, e->loc, "cannot compare %s with %s using '%s'", elab_describe(E, a), elab_describe(E, b), binop_text(op));
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
    if (!elab_eval(E, f, e->u.bin.l, &a)) return false;
    if (a.k != V_BOOL) {
        elab_error(E, e->u.bin.l->loc, "'%s' needs true or false on its left, got %s", op, elab_describe(E, &a));
        return false;
    }
    if (a.u.b == (e->u.bin.op == BIN_OR)) { *out = a; return true; }  /* short circuit */
    if (!elab_eval(E, f, e->u.bin.r, &b)) return false;
    if (b.k != V_BOOL) {
        elab_error(E, e->u.bin.r->loc, "'%s' needs true or false on its right, got %s", op, elab_describe(E, &b));
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
    if (!elab_eval(E, f, e->u.bin.l, &a) || !elab_eval(E, f, e->u.bin.r, &b)) return false;
    if (op >= BIN_EQ) return compare(E, e, &a, &b, out);
    if (a.k == V_TENSOR && b.k == V_TENSOR && op == BIN_ADD) {
        int32_t ins[2] = {a.u.t, b.u.t};
        return elab_add_node(E, e, OP_ADD, ins, 2, NULL, NULL, out);
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
                   binop_text(op), elab_describe(E, &a), elab_describe(E, &b));
        return false;
    }
    if (!is_num(&a) || !is_num(&b)) {
        elab_error(E, e->loc, "'%s' needs numbers, got %s and %s", binop_text(op), elab_describe(E, &a), elab_describe(E, &b));
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
    if (!elab_eval(E, f, e->u.un.e, &a)) return false;
    if (e->u.un.op == UN_NOT) {
        if (a.k != V_BOOL) {
            elab_error(E, e->loc, "'not' needs true or false, got %s", elab_describe(E, &a));
            return false;
        }
        *out = (Val){V_BOOL, {.b = !a.u.b}};
        return true;
    }
    if (a.k == V_INT && a.u.i != INT64_MIN) { *out = vint(-a.u.i); return true; }
    if (a.k == V_FLOAT) { *out = (Val){V_FLOAT, {.f = -a.u.f}}; return true; }
    if (a.k == V_INT) elab_error(E, e->loc, "integer overflow: -(%lld) does not fit in 64 bits", (long long)a.u.i);
    else elab_error(E, e->loc, "'-' needs a number, got %s", elab_describe(E, &a));
    return false;
}

static bool eval_field(Elab *E, Frame *f, const Expr *e, Val *out)
{
    Val x;
    if (!elab_eval(E, f, e->u.field.e, &x)) return false;
    const char *fld = e->u.field.field;
    if (x.k != V_TENSOR) {
        elab_error(E, e->loc, "'.%s' asks a tensor for its shape, but this is %s", fld, elab_describe(E, &x));
        return false;
    }
    const IrShape *s = tshape(E, x);
    char buf[96];
    if (strcmp(fld, "shape") == 0) {
        if (!elab_make_list(E, e, s->rank, out)) return false;
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
    if (!elab_eval(E, f, e->u.index.seq, &seq) || !elab_eval(E, f, e->u.index.index, &idx)) return false;
    if (seq.k != V_LIST && seq.k != V_TUPLE) {
        elab_error(E, e->loc, "only lists and tuples can be indexed, not %s", elab_describe(E, &seq));
        return false;
    }
    if (idx.k != V_INT) {
        elab_error(E, e->u.index.index->loc, "an index must be an integer, got %s", elab_describe(E, &idx));
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

/* Lists count a step per element, and all lists together are bounded, so no
 * loop can pile up unbounded memory. */
bool elab_make_list(Elab *E, const Expr *at, int64_t n, Val *out)
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
    if (!elab_step(E, at)) return false;
    out->k = V_LIST;
    out->u.seq.n = (int)(n > 0 ? n : 0);
    out->u.seq.v = arena_alloc(E->a, (size_t)(n > 0 ? n : 1) * sizeof(Val));
    return true;
}

/* Nesting of elab_eval() and elab_exec_stmts() calls, across block calls: the C stack
 * they use grows with it, so it is bounded. */
bool elab_enter(Elab *E, Loc loc)
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
    case EX_CALL: return elab_eval_call(E, f, e, out);
    case EX_FIELD: return eval_field(E, f, e, out);
    case EX_INDEX: return eval_index(E, f, e, out);
    }
    NNC_ASSERT(0);
    return false;
}

bool elab_eval(Elab *E, Frame *f, const Expr *e, Val *out)
{
    if (!elab_step(E, e) || !elab_enter(E, e->loc)) return false;
    bool ok = eval_inner(E, f, e, out);
    E->nest--;
    return ok;
}
