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
 * and the graph (ir/ir.h's IR_MAX_NODES) are bounded; the parser already
 * bounded expression depth.
 * Variables, blocks and parameter names are found through hash maps, so no
 * lookup grows with the length of the program.
 *
 * This file holds the core of the elaborator (values as messages show them,
 * errors, names, variables) and the statements; elab_internal.h lists the
 * other pieces. */
#include "elab_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *func_name(const Func *fn) { return fn->block ? fn->block->name : elab_builtin_name(fn->builtin); }

/* A value as a message shows it: "the integer 3", "a tensor of shape [3, 8, 8]". */
const char *elab_describe(Elab *E, const Val *v)
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
void elab_error(Elab *E, Loc loc, const char *fmt, ...)
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

void *elab_map_get(const NameMap *m, const char *key)
{
    if (!m->cap) return NULL;
    for (size_t j = hash_str(key) & (m->cap - 1); m->keys[j]; j = (j + 1) & (m->cap - 1))
        if (strcmp(m->keys[j], key) == 0) return m->vals[j];
    return NULL;
}

/* Inserts key, or replaces its value. */
void elab_map_put(NameMap *m, const char *key, void *val)
{
    if ((m->len + 1) * 2 > m->cap) {
        NameMap n = {0};
        n.cap = m->cap ? m->cap * 2 : 16;
        n.keys = nnc_xcalloc(n.cap, sizeof *n.keys);
        n.vals = nnc_xcalloc(n.cap, sizeof *n.vals);
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i]) elab_map_put(&n, m->keys[i], m->vals[i]);
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

void elab_map_free(NameMap *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* Adds a parameter name; false when it was given already. */
bool elab_name_insert(Elab *E, const char *name)
{
    if (elab_map_get(&E->names, name)) return false;
    elab_map_put(&E->names, name, (void *)name);
    return true;
}

/* The name of a new layer of kind base in frame f: the author's `as` name or base<k>. */
const char *elab_layer_name(Elab *E, Frame *f, const char *base, const char *as)
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

Var *elab_lookup_var(Frame *f, const char *name) { return elab_map_get(&f->vars, name); }

void elab_set_var(Elab *E, Frame *f, const char *name, Val val)
{
    Var *v = elab_lookup_var(f, name);
    if (!v) {
        v = arena_alloc(E->a, sizeof *v);
        v->name = name;
        elab_map_put(&f->vars, name, v);
    }
    v->val = val;
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
                       MAX_DIM, elab_describe(E, d));
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
    if (!elab_eval(E, f, s->e, &dims) || !check_dims(E, s, &dims, &shape)) return false;
    elab_set_var(E, f, s->name, vtensor(ir_add_input(E->g, s->name, &shape)));
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
    if (!elab_eval(E, f, s->e, &v)) return false;
    if (v.k != V_TENSOR) {
        elab_error(E, s->e->loc, "output '%s' must be a tensor, got %s", s->name, elab_describe(E, &v));
        return false;
    }
    ir_add_output(E->g, s->name, v.u.t);
    elab_set_var(E, f, s->name, v);
    return true;
}

static ExecResult exec_for(Elab *E, Frame *f, const Stmt *s)
{
    Val it;
    if (!elab_eval(E, f, s->e, &it)) return EX_FAILED;
    if (it.k != V_LIST && it.k != V_TUPLE) {
        elab_error(E, s->e->loc, "'for' needs a list or a tuple to walk, got %s", elab_describe(E, &it));
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
            elab_set_var(E, f, s->vars->name, *item);
        } else {
            if ((item->k != V_TUPLE && item->k != V_LIST) || item->u.seq.n != nvars) {
                elab_error(E, item_loc(s->e, i), "element %d is %s, which does not unpack into the %d names %s", i + 1,
                           elab_describe(E, item), nvars, elab_name_list(E, names, nvars < 8 ? nvars : 8));
                return EX_FAILED;
            }
            int j = 0;
            for (const NameList *n = s->vars; n; n = n->next, j++) elab_set_var(E, f, n->name, item->u.seq.v[j]);
        }
        ExecResult r = elab_exec_stmts(E, f, s->body);
        if (r != EX_OK) return r;
    }
    return EX_OK;
}

static ExecResult exec_repeat(Elab *E, Frame *f, const Stmt *s)
{
    Val n;
    if (!elab_eval(E, f, s->e, &n)) return EX_FAILED;
    if (n.k != V_INT || n.u.i < 0 || n.u.i > MAX_REPEAT) {
        if (n.k == V_INT)
            elab_error(E, s->e->loc, "repeat count %lld is out of range (0 to %d)", (long long)n.u.i, MAX_REPEAT);
        else
            elab_error(E, s->e->loc, "repeat needs an integer count, got %s", elab_describe(E, &n));
        return EX_FAILED;
    }
    for (int64_t i = 0; i < n.u.i; i++) {
        ExecResult r = elab_exec_stmts(E, f, s->body);
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
        if (!elab_eval(E, f, s->e, &v)) return EX_FAILED;
        elab_set_var(E, f, s->name, v);
        return EX_OK;
    case ST_IF:
        if (!elab_eval(E, f, s->e, &v)) return EX_FAILED;
        if (v.k != V_BOOL) {
            elab_error(E, s->e->loc, "the condition must be true or false, got %s", elab_describe(E, &v));
            return EX_FAILED;
        }
        return elab_exec_stmts(E, f, v.u.b ? s->body : s->orelse);
    case ST_FOR: return exec_for(E, f, s);
    case ST_REPEAT: return exec_repeat(E, f, s);
    case ST_RETURN:
        if (f->is_network) {
            elab_error(E, s->loc, "'return' belongs in a block; a network names its results with 'output'");
            return EX_FAILED;
        }
        if (!elab_eval(E, f, s->e, &f->ret)) return EX_FAILED;
        return EX_RETURNED;
    }
    return EX_FAILED;
}

ExecResult elab_exec_stmts(Elab *E, Frame *f, const Stmt *s)
{
    if (!s) return EX_OK;
    if (!elab_enter(E, s->loc)) return EX_FAILED;
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
            if (!elab_eval(E, &empty, p->def, &v)) return false;
        } else {
            diag_error(E->d, p->loc, "network parameter '%s' has no default; give a value with --set %s=VALUE",
                       p->name, p->name);
            return false;
        }
        elab_set_var(E, f, p->name, v);
    }
    return true;
}

IrGraph *elab_network(Elab *E, const Decl *net, const FeOptions *opt)
{
    E->g = ir_new(net->name);
    E->g->source = arena_strdup(&E->g->arena, net->loc.file->path);
    E->g->loc = (IrLoc){E->g->source, net->loc.line, net->loc.col};
    Frame f;
    memset(&f, 0, sizeof f);
    f.scope = "";
    f.is_network = true;
    E->frame = &f;
    bool ok = bind_network_params(E, &f, net, opt) && elab_exec_stmts(E, &f, net->body) == EX_OK;
    elab_map_free(&f.vars);
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

