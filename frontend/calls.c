/* calls.c: calls of built-ins and blocks (elab_internal.h).
 *
 * Arguments bind to named parameters, positional first, then keywords; a
 * built-in checks their types and fills in its defaults, a block evaluates its
 * defaults in a frame that sees only blocks and built-ins, then runs its body
 * in a frame of its own, named by `as` or counted like a layer. */
#include "elab_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    elab_error(E, loc, "%s expects %s for '%s', got %s", fname, want, pname, elab_describe(E, v));
    return false;
}

/* "x, channels, kernel and bias" */
const char *elab_name_list(Elab *E, const char *const *names, int n)
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
    for (int i = 0; i < n; i++) elab_consider(a->name, names[i], &best, &bd);
    if (best) elab_error(E, a->loc, "%s has no parameter '%s'; did you mean '%s'?", fname, a->name, best);
    else if (n == 0) elab_error(E, a->loc, "%s has no parameter '%s'; it takes no arguments", fname, a->name);
    else if (n == 1) elab_error(E, a->loc, "%s has no parameter '%s'; its only parameter is %s", fname, a->name, names[0]);
    else elab_error(E, a->loc, "%s has no parameter '%s'; its parameters are %s", fname, a->name, elab_name_list(E, names, n));
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
                if (!elab_eval(E, f, a->value, &(*rest)[(*n_rest)++])) return false;
                continue;
            }
            if (pos >= n) {
                elab_error(E, a->loc, "%s takes at most %d argument%s (%s), but %d were given",
                           callee(E, name, is_block), n, n == 1 ? "" : "s", elab_name_list(E, names, n), npos);
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
        if (!elab_eval(E, f, a->value, &vals[idx])) return false;
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
            ok = elab_eval(E, f, a->expr, &v);
            if (!ok) break;
            if (v.k == V_INT && v.u.i >= 0) {
                text = arena_printf(E->a, "%lld", (long long)v.u.i);
            } else if (v.k == V_STR && v.u.s[0] && strspn(v.u.s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == strlen(v.u.s) && strlen(v.u.s) <= 200) {
                text = v.u.s;
            } else {
                elab_error(E, a->loc, "a computed layer name must be an integer >= 0 or a string of letters, digits "
                           "and '_', got %s", elab_describe(E, &v));
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
    const char *name = elab_builtin_name(bi);
    Bound b;
    memset(&b, 0, sizeof b);
    b.call = call;
    b.frame = f;
    const char *names[BI_MAX_PARAMS];
    int n = 0, var = -1;
    for (; n < BI_MAX_PARAMS && bi->params[n].name; n++) {
        names[n] = bi->params[n].name;
        if (bi->params[n].type == A_TENSORS) var = n;
    }
    if (!bind_args(E, f, call, name, false, names, n, var, b.v, b.given, b.at, &b.rest, &b.rest_at, &b.n_rest))
        return false;
    for (int i = 0; i < b.n_rest; i++)
        if (!check_type(E, b.rest_at[i], name, "tensors", A_TENSOR, &b.rest[i])) return false;
    for (int i = 0; i < n; i++) {
        const BParam *p = &bi->params[i];
        if (i == var) continue;
        if (!b.given[i]) {
            if (p->required) {
                elab_error(E, call->loc, "%s needs the argument '%s'", name, p->name);
                return false;
            }
            b.at[i] = call->loc;
            if (isnan(p->def)) b.v[i] = (Val){V_NONE, {0}};
            else if (p->type == A_BOOL) b.v[i] = (Val){V_BOOL, {.b = p->def != 0}};
            else if (p->type == A_FLOAT) b.v[i] = (Val){V_FLOAT, {.f = p->def}};
            else b.v[i] = vint((int64_t)p->def);
            continue;
        }
        if (!check_type(E, b.at[i], name, p->name, p->type, &b.v[i])) return false;
    }
    if (call->u.call.as && !bi->layer) {
        elab_error(E, call->u.call.as_loc, "'as' names layers with parameters and block calls; %s has no parameters", name);
        return false;
    }
    if (!resolve_as(E, f, call, &b.as)) return false;
    if (b.as && strcmp(b.as, "_") == 0) {
        elab_error(E, call->u.call.as_loc, "'as _' keeps the caller's names and applies to block calls; "
                   "name this %s layer", name);
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
    nf.scope = as && strcmp(as, "_") == 0 ? f->scope : elab_layer_name(E, f, blk->name, as);
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
            if (!elab_eval(E, &empty, p->def, &vals[i])) goto out;
        }
        elab_set_var(E, &nf, p->name, vals[i]);
    }
    r = elab_exec_stmts(E, &nf, blk->body);
    if (r == EX_OK) {
        elab_error(E, blk->loc, "block '%s' ended without reaching a 'return'; every path through it must return a value",
                   blk->name);
        r = EX_FAILED;
    }
out:
    E->depth--;
    E->frame = saved;
    elab_map_free(&nf.vars);
    if (r == EX_FAILED) return false;
    *out = nf.ret;
    return true;
}

bool elab_eval_call(Elab *E, Frame *f, const Expr *e, Val *out)
{
    Val fn;
    if (!elab_eval(E, f, e->u.call.fn, &fn)) return false;
    if (fn.k != V_FUNC) {
        if (e->u.call.fn->kind == EX_NAME)
            elab_error(E, e->loc, "'%s' is %s, not a function; only layers, blocks and built-ins can be called",
                       e->u.call.fn->u.s, elab_describe(E, &fn));
        else
            elab_error(E, e->loc, "%s is not a function; only layers, blocks and built-ins can be called",
                       elab_describe(E, &fn));
        return false;
    }
    if (fn.u.fn->builtin) return call_builtin(E, f, e, fn.u.fn->builtin, out);
    return call_block(E, f, e, fn.u.fn->block, out);
}

