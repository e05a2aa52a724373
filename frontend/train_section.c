/* train_section.c: the train section (elab_internal.h).
 *
 * `train NETWORK { key = value ... }` gives `nnc train` its defaults; each
 * setting stands for command-line options, which come after it and override
 * it. The values are literals and calls of the recipe's vocabulary below,
 * checked here so that a mistake is reported at its line and column. */
#include "elab_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    elab_loader_init(&L, path, d);
    L.opt = opt;
    NameMap blocks = {0};
    const Decl *net = elab_load_text(&L, path, text, len, (Loc){0}, 0) && elab_check_decls(d, L.decls, &blocks) ? elab_pick_network(d, &L, opt) : NULL;
    TrainSec s = {d, d->arena, NULL, 0, 0};
    bool ok = net != NULL;
    for (const Decl *x = L.main_decls; x && ok; x = x->next)
        if (x->kind == DECL_TRAIN && strcmp(x->name, net->name) == 0)
            for (const Setting *st = x->settings; st && ok; st = st->next) ok = ts_setting(&s, net, st);
    elab_map_free(&blocks);
    free(L.seen);
    if (ok) *out = s.out, *n = s.n;
    return ok;
}
