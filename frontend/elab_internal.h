/* elab_internal.h: what the pieces of the elaborator share, and nothing else
 * includes. The elaborator (see elab.c for how it works) is split along its
 * seams:
 *
 *   elab.c           values as messages show them, errors with the call chain,
 *                    names and variables, statements, a network's elaboration
 *   eval.c           expressions: names, arithmetic, comparisons, fields,
 *                    indexing, lists; the step and nesting budgets
 *   calls.c          calls: argument binding, built-in and block calls
 *   builtins.c       the built-in table (driven by ir/ops.def's DSL column and
 *                    runtime/snippets/activations.h) and the bi_* functions
 *   imports.c        files, imports, declarations, the choice of network, and
 *                    the public fe_compile*
 *   train_section.c  the `train NETWORK { ... }` section (fe_train_settings*) */
#ifndef NNC_ELAB_INTERNAL_H
#define NNC_ELAB_INTERNAL_H

#include "frontend.h"
#include "ast.h"

#include <stdbool.h>
#include <stdint.h>

/* Budgets (elab.c's comment says what each bounds). The graph's size is
 * bounded by ir/ir.h's IR_MAX_NODES, which ir_add_node enforces. */
enum {
    MAX_CALL_DEPTH = 100,
    MAX_NEST = 3000,          /* active elab_eval() and elab_exec_stmts() calls: bounds the C stack */
    MAX_REPEAT = 100000,
    MAX_LIST = 1000000,
    MAX_LIST_TOTAL = 1 << 22, /* elements of all lists made: bounds their memory (~100 MB) */
    MAX_DIM = 1 << 24,
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
 * first put; the table is malloc'ed and released by elab_map_free(). */
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
    int nest;                     /* elab_eval() and elab_exec_stmts() calls in progress */
    int64_t steps;
    int64_t list_elems;           /* elements of all lists and tuples made so far */
    int64_t total_params;
    NameMap names;                /* parameter names given so far */
} Elab;

typedef enum { EX_OK, EX_RETURNED, EX_FAILED } ExecResult;

static inline Val vint(int64_t i) { Val v = {V_INT, {.i = i}}; return v; }
static inline Val vtensor(int32_t t) { Val v = {V_TENSOR, {.t = t}}; return v; }
static inline bool is_num(const Val *v) { return v->k == V_INT || v->k == V_FLOAT; }
static inline double num(const Val *v) { return v->k == V_INT ? (double)v->u.i : v->u.f; }
static inline const IrShape *tshape(Elab *E, Val v) { return &E->g->values[v.u.t].shape; }

/* ---- built-ins (builtins.c) ---- */

typedef enum { A_TENSOR, A_TENSORS, A_INT, A_INT2, A_FLOAT, A_BOOL, A_ANY } ArgType;

typedef struct {
    const char *name;
    ArgType type;
    bool required;
    double def;        /* default for numbers and booleans; NAN means "none" */
} BParam;

enum { BI_MAX_PARAMS = 10 };

typedef struct {
    const Expr *call;
    Frame *frame;
    Val v[BI_MAX_PARAMS];       /* bound arguments, by parameter index */
    bool given[BI_MAX_PARAMS];
    Loc at[BI_MAX_PARAMS];      /* where each argument was written (the call, for defaults) */
    Val *rest;          /* A_TENSORS: all tensors */
    Loc *rest_at;
    int n_rest;
    const char *as;     /* the call's resolved `as` path, or NULL */
} Bound;

struct Builtin {
    const char *name;   /* NULL for a built-in that makes an op: its name is ir_ops[op].dsl */
    BParam params[BI_MAX_PARAMS];
    bool (*fn)(Elab *E, Bound *b, const Builtin *self, Val *out);
    OpKind op;          /* the op it makes (OP_INPUT: none) */
    bool layer;         /* makes a layer with parameters, which `as` may name */
};

/* The built-ins in a fixed order (the order "did you mean" considers them in). */
extern const Builtin elab_builtins[];
extern const size_t elab_n_builtins;

const char *elab_builtin_name(const Builtin *bi);
const Builtin *elab_find_builtin(const char *name);
/* Appends a node, reporting a shape error or a graph too large at the call. */
bool elab_add_node(Elab *E, const Expr *call, OpKind op, const int32_t *ins, int n_in, const IrAttr *attr,
                   const char *scope, Val *out);

/* ---- elab.c ---- */

const char *elab_describe(Elab *E, const Val *v);
void elab_error(Elab *E, Loc loc, const char *fmt, ...) NNC_PRINTF(3, 4);
void *elab_map_get(const NameMap *m, const char *key);
void elab_map_put(NameMap *m, const char *key, void *val);
void elab_map_free(NameMap *m);
bool elab_name_insert(Elab *E, const char *name);
const char *elab_layer_name(Elab *E, Frame *f, const char *base, const char *as);
Var *elab_lookup_var(Frame *f, const char *name);
void elab_set_var(Elab *E, Frame *f, const char *name, Val val);
ExecResult elab_exec_stmts(Elab *E, Frame *f, const Stmt *s);
IrGraph *elab_network(Elab *E, const Decl *net, const FeOptions *opt);

/* ---- eval.c ---- */

bool elab_eval(Elab *E, Frame *f, const Expr *e, Val *out);
bool elab_step(Elab *E, const Expr *e);
bool elab_enter(Elab *E, Loc loc);
bool elab_make_list(Elab *E, const Expr *at, int64_t n, Val *out);
void elab_consider(const char *written, const char *cand, const char **best, int *bd);

/* ---- calls.c ---- */

bool elab_eval_call(Elab *E, Frame *f, const Expr *e, Val *out);
const char *elab_name_list(Elab *E, const char *const *names, int n);

/* ---- imports.c ---- */

typedef struct {
    Diag *d;
    Arena *a;
    Decl *decls;              /* all files' declarations, concatenated */
    Decl **tail;
    const char **seen;        /* resolved paths already loaded */
    int n_seen;
    const Decl *main_decls;   /* the main file's own */
    const SrcFile *main_file; /* where whole-file messages point (1:1) */
    const FeOptions *opt;     /* its import resolver, if any; NULL: the disk */
} Loader;

void elab_loader_init(Loader *L, const char *path, Diag *d);
bool elab_load_text(Loader *L, const char *path, const char *text, size_t len, Loc from, int depth);
bool elab_check_decls(Diag *d, const Decl *all, NameMap *blocks);
const Decl *elab_pick_network(Diag *d, const Loader *L, const FeOptions *opt);

#endif
