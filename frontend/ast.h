/* ast.h: the syntax tree the parser builds and the elaborator walks.
 *
 * The tree is a plain description of the text: `a |> f(b)` is already
 * rewritten by the parser into the call f(a, b), and `a |> f` into f(a), so the
 * elaborator sees only calls. Nodes come from the compilation's arena. Every
 * node carries its Loc for diagnostics. Expression depth is bounded at parse
 * time (AST_MAX_DEPTH) so the recursive elaborator cannot exhaust the stack. */
#ifndef NNC_AST_H
#define NNC_AST_H

#include "diag.h"

#include <stdbool.h>

enum { AST_MAX_DEPTH = 400 };

typedef struct Expr Expr;
typedef struct Stmt Stmt;

typedef enum {
    EX_INT, EX_FLOAT, EX_STRING, EX_BOOL,
    EX_NAME,    /* a variable, block or builtin */
    EX_TUPLE,   /* (a, b) */
    EX_LIST,    /* [a, b] */
    EX_BINARY,  /* a op b */
    EX_UNARY,   /* -a, not a */
    EX_CALL,    /* f(args), with an optional `as NAME` */
    EX_FIELD,   /* x.channels */
    EX_INDEX,   /* xs[i] */
} ExprKind;

typedef enum {
    BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV, BIN_MOD,
    BIN_EQ, BIN_NE, BIN_LT, BIN_LE, BIN_GT, BIN_GE,
    BIN_AND, BIN_OR,
} BinOp;

typedef enum { UN_NEG, UN_NOT } UnOp;

typedef struct Arg {
    const char *name;  /* keyword, or NULL for a positional argument */
    Expr *value;
    Loc loc;
    struct Arg *next;
} Arg;

typedef struct ExprList {
    Expr *e;
    struct ExprList *next;
} ExprList;

/* One segment of an `as` path: `as layer1.0.conv` has three. A segment is a
 * name or a number written as is, or `(expr)` computed at elaboration (an
 * integer or a string of letters, digits and '_'). */
typedef struct AsSeg {
    const char *text;     /* written segment, or NULL */
    Expr *expr;           /* computed segment, or NULL */
    Loc loc;
    struct AsSeg *next;
} AsSeg;

struct Expr {
    ExprKind kind;
    Loc loc;
    int depth;                 /* 1 + depth of the deepest child */
    union {
        int64_t i;             /* EX_INT */
        double f;              /* EX_FLOAT */
        const char *s;         /* EX_STRING, EX_NAME */
        bool b;                /* EX_BOOL */
        ExprList *items;       /* EX_TUPLE, EX_LIST */
        struct { BinOp op; Expr *l, *r; } bin;
        struct { UnOp op; Expr *e; } un;
        struct { Expr *fn; Arg *args; AsSeg *as; Loc as_loc; bool piped; } call;
        struct { Expr *e; const char *field; } field;
        struct { Expr *seq, *index; } index;
    } u;
};

typedef struct Param {
    const char *name;
    Expr *def;         /* default value, or NULL */
    Loc loc;
    struct Param *next;
} Param;

typedef struct NameList {
    const char *name;
    Loc loc;
    struct NameList *next;
} NameList;

typedef enum {
    ST_INPUT,    /* input NAME: [dims] */
    ST_OUTPUT,   /* output NAME = expr */
    ST_ASSIGN,   /* NAME = expr */
    ST_IF,       /* if cond { } else { } */
    ST_FOR,      /* for a, b in expr { } */
    ST_REPEAT,   /* repeat n { } */
    ST_RETURN,   /* return expr */
} StmtKind;

struct Stmt {
    StmtKind kind;
    Loc loc;
    const char *name;        /* INPUT, OUTPUT, ASSIGN */
    Expr *e;                 /* value, condition, iterable, count, dims (EX_LIST) */
    NameList *vars;          /* FOR */
    Stmt *body, *orelse;     /* IF, FOR, REPEAT */
    Stmt *next;
};

typedef enum { DECL_BLOCK, DECL_NETWORK, DECL_IMPORT, DECL_TRAIN } DeclKind;

typedef struct Setting {       /* one `key = expr` of a train section */
    const char *key;
    Expr *value;
    Loc loc;
    struct Setting *next;
} Setting;

typedef struct Decl {
    DeclKind kind;
    Loc loc;
    const char *name;          /* block/network/train target; import path */
    Param *params;
    Stmt *body;
    Setting *settings;         /* DECL_TRAIN */
    struct Decl *next;
} Decl;

/* Parses one file's text into declarations. Reports syntax errors to d and
 * returns false on any. */
bool fe_parse(Diag *d, const SrcFile *file, Decl **out);

#endif
