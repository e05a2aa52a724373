/* parser.y: the grammar of the nnc language (bison, reentrant, with locations).
 *
 *   file     := decl*
 *   decl     := 'import' STRING
 *             | 'block' NAME '(' params ')' '{' stmt* '}'
 *             | 'network' NAME ['(' params ')'] '{' stmt* '}'
 *             | 'train' NAME '{' (NAME '=' expr)* '}'
 *   stmt     := 'input' NAME ':' '[' exprs ']' | 'output' NAME '=' expr | NAME '=' expr
 *             | 'if' expr '{' stmt* '}' ['else' ('{' stmt* '}' | if-stmt)]
 *             | 'for' NAME (',' NAME)* 'in' expr '{' stmt* '}'
 *             | 'repeat' expr '{' stmt* '}' | 'return' expr
 *   expr     := or ('|>' postfix)*            -- a |> f(b) is f(a, b); a |> f is f(a)
 *   or       := and ('or' and)*    and := not ('and' not)*    not := 'not' not | cmp
 *   cmp      := sum [('=='|'!='|'<'|'<='|'>'|'>=') sum]
 *   sum      := term (('+'|'-') term)*      term := unary (('*'|'/'|'%') unary)*
 *   unary    := '-' unary | postfix
 *   postfix  := primary | postfix '(' args ')' | postfix '.' NAME | postfix 'as' NAME
 *   primary  := INT | FLOAT | STRING | 'true' | 'false' | NAME | '(' expr ')' | tuple | '[' exprs ']'
 *   args     := (expr | NAME ':' expr) (',' ...)* [',']
 *
 * Newlines carry no meaning. The first syntax error ends the parse: a message
 * that names what was expected at one position is more useful than a cascade.
 * Expression nesting is bounded (AST_MAX_DEPTH) so later recursive walks are safe. */
%define api.pure full
%define api.prefix {fe_yy}
%define parse.error custom
%locations
%param {void *scanner}
%parse-param {struct ParseState *ps}

%code requires {
#include "frontend/parse_state.h"
}

%union {
    int64_t i;
    double f;
    bool b;
    const char *s;
    Expr *expr;
    Stmt *stmt;
    Decl *decl;
    Param *param;
    Arg *arg;
    ExprList *list;
    NameList *names;
    Setting *setting;
}

%code {
#include <string.h>
#include <stdio.h>

int fe_yylex(FE_YYSTYPE *lval, FE_YYLTYPE *lloc, void *scanner);
static void fe_yyerror(FE_YYLTYPE *loc, void *scanner, struct ParseState *ps, const char *msg);

#define LOC(l) ((Loc){ps->file, (l).first_line, (l).first_column})
/* Rejects an expression nested deeper than AST_MAX_DEPTH: reports and aborts the parse. */
#define DEPTH_OK(e) do { if ((e)->depth > AST_MAX_DEPTH) {                                   \
        diag_error(ps->diag, (e)->loc, "expression is nested more than %d levels deep", AST_MAX_DEPTH); \
        YYABORT; } } while (0)

static Expr *mk(struct ParseState *ps, ExprKind k, Loc loc)
{
    Expr *e = arena_alloc(ps->arena, sizeof *e);
    e->kind = k;
    e->loc = loc;
    e->depth = 1;
    return e;
}

static int maxi(int a, int b) { return a > b ? a : b; }

static Expr *mk_bin(struct ParseState *ps, BinOp op, Expr *l, Expr *r, Loc loc)
{
    Expr *e = mk(ps, EX_BINARY, loc);
    e->u.bin.op = op;
    e->u.bin.l = l;
    e->u.bin.r = r;
    e->depth = 1 + maxi(l->depth, r->depth);
    return e;
}

static Expr *mk_un(struct ParseState *ps, UnOp op, Expr *x, Loc loc)
{
    Expr *e = mk(ps, EX_UNARY, loc);
    e->u.un.op = op;
    e->u.un.e = x;
    e->depth = 1 + x->depth;
    return e;
}

static int list_depth(ExprList *l)
{
    int d = 0;
    for (; l; l = l->next) d = maxi(d, l->e->depth);
    return d;
}

static int args_depth(Arg *a)
{
    int d = 0;
    for (; a; a = a->next) d = maxi(d, a->value->depth);
    return d;
}

static Expr *mk_seq(struct ParseState *ps, ExprKind k, ExprList *items, Loc loc)
{
    Expr *e = mk(ps, k, loc);
    e->u.items = items;
    e->depth = 1 + list_depth(items);
    return e;
}

static Expr *mk_call(struct ParseState *ps, Expr *fn, Arg *args, Loc loc)
{
    Expr *e = mk(ps, EX_CALL, loc);
    e->u.call.fn = fn;
    e->u.call.args = args;
    e->depth = 1 + maxi(fn->depth, args_depth(args));
    return e;
}

/* a |> f(b, c) becomes f(a, b, c); a |> f becomes f(a). */
static Expr *mk_pipe(struct ParseState *ps, Expr *lhs, Expr *rhs, Loc pipe_loc)
{
    Arg *a = arena_alloc(ps->arena, sizeof *a);
    a->value = lhs;
    a->loc = lhs->loc;
    Expr *call;
    if (rhs->kind == EX_CALL && !rhs->u.call.piped) {
        call = rhs;
        a->next = call->u.call.args;
        call->u.call.args = a;
        call->depth = maxi(call->depth, 1 + lhs->depth);
    } else {
        call = mk_call(ps, rhs, a, rhs->loc);
    }
    call->u.call.piped = true;
    (void)pipe_loc;
    return call;
}

static ExprList *cons(struct ParseState *ps, Expr *e, ExprList *next)
{
    ExprList *l = arena_alloc(ps->arena, sizeof *l);
    l->e = e;
    l->next = next;
    return l;
}

static ExprList *snoc(struct ParseState *ps, ExprList *l, Expr *e)
{
    ExprList *n = cons(ps, e, NULL), *p = l;
    if (!l) return n;
    while (p->next) p = p->next;
    p->next = n;
    return l;
}

static Stmt *mk_stmt(struct ParseState *ps, StmtKind k, Loc loc)
{
    Stmt *s = arena_alloc(ps->arena, sizeof *s);
    s->kind = k;
    s->loc = loc;
    return s;
}

static Stmt *stmt_append(Stmt *list, Stmt *s)
{
    if (!list) return s;
    Stmt *p = list;
    while (p->next) p = p->next;
    p->next = s;
    return list;
}

static Decl *mk_decl(struct ParseState *ps, DeclKind k, Loc loc, const char *name)
{
    Decl *d = arena_alloc(ps->arena, sizeof *d);
    d->kind = k;
    d->loc = loc;
    d->name = name;
    *ps->tail = d;
    ps->tail = &d->next;
    return d;
}
}

%token TK_NETWORK "'network'" TK_BLOCK "'block'" TK_INPUT "'input'" TK_OUTPUT "'output'"
%token TK_RETURN "'return'" TK_IF "'if'" TK_ELSE "'else'" TK_FOR "'for'" TK_IN "'in'"
%token TK_REPEAT "'repeat'" TK_AND "'and'" TK_OR "'or'" TK_NOT "'not'" TK_IMPORT "'import'"
%token TK_TRAIN "'train'" TK_AS "'as'"
%token TK_PIPE "'|>'" TK_EQ "'=='" TK_NE "'!='" TK_LE "'<='" TK_GE "'>='"
%token <i> TK_INT "integer"
%token <f> TK_FLOAT "number"
%token <b> TK_BOOL "boolean"
%token <s> TK_IDENT "name" TK_STRING "string"
%token TK_LEXERROR "invalid token"

%type <expr> expr or_expr and_expr not_expr cmp sum term unary postfix primary
%type <list> exprs exprs1
%type <arg> args args1 arg
%type <stmt> stmts stmt if_stmt else_opt
%type <param> params params1 param net_params
%type <names> names
%type <setting> settings

%%

file:
      %empty
    | file decl
    ;

decl:
      TK_IMPORT TK_STRING                        { mk_decl(ps, DECL_IMPORT, LOC(@2), $2); }
    | TK_BLOCK TK_IDENT '(' params ')' '{' stmts '}'
                                                 { Decl *d = mk_decl(ps, DECL_BLOCK, LOC(@2), $2); d->params = $4; d->body = $7; }
    | TK_NETWORK TK_IDENT net_params '{' stmts '}'
                                                 { Decl *d = mk_decl(ps, DECL_NETWORK, LOC(@2), $2); d->params = $3; d->body = $5; }
    | TK_TRAIN TK_IDENT '{' settings '}'         { Decl *d = mk_decl(ps, DECL_TRAIN, LOC(@2), $2); d->settings = $4; }
    ;

net_params:
      %empty                                     { $$ = NULL; }
    | '(' params ')'                             { $$ = $2; }
    ;

params:
      %empty                                     { $$ = NULL; }
    | params1                                    { $$ = $1; }
    | params1 ','                                { $$ = $1; }
    ;

params1:
      param                                      { $$ = $1; }
    | params1 ',' param                          { Param *p = $1; while (p->next) p = p->next; p->next = $3; $$ = $1; }
    ;

param:
      TK_IDENT                                   { $$ = arena_alloc(ps->arena, sizeof(Param)); $$->name = $1; $$->loc = LOC(@1); }
    | TK_IDENT '=' expr                          { $$ = arena_alloc(ps->arena, sizeof(Param)); $$->name = $1; $$->loc = LOC(@1); $$->def = $3; }
    ;

settings:
      %empty                                     { $$ = NULL; }
    | settings TK_IDENT '=' expr                 {
                                                     Setting *s = arena_alloc(ps->arena, sizeof *s);
                                                     s->key = $2; s->value = $4; s->loc = LOC(@2);
                                                     if (!$1) $$ = s;
                                                     else { Setting *p = $1; while (p->next) p = p->next; p->next = s; $$ = $1; }
                                                 }
    ;

stmts:
      %empty                                     { $$ = NULL; }
    | stmts stmt                                 { $$ = stmt_append($1, $2); }
    ;

stmt:
      TK_INPUT TK_IDENT ':' '[' exprs ']'        { $$ = mk_stmt(ps, ST_INPUT, LOC(@2)); $$->name = $2; $$->e = mk_seq(ps, EX_LIST, $5, LOC(@4)); }
    | TK_OUTPUT TK_IDENT '=' expr                { $$ = mk_stmt(ps, ST_OUTPUT, LOC(@2)); $$->name = $2; $$->e = $4; }
    | TK_IDENT '=' expr                          { $$ = mk_stmt(ps, ST_ASSIGN, LOC(@1)); $$->name = $1; $$->e = $3; }
    | if_stmt                                    { $$ = $1; }
    | TK_FOR names TK_IN expr '{' stmts '}'      { $$ = mk_stmt(ps, ST_FOR, LOC(@1)); $$->vars = $2; $$->e = $4; $$->body = $6; }
    | TK_REPEAT expr '{' stmts '}'               { $$ = mk_stmt(ps, ST_REPEAT, LOC(@1)); $$->e = $2; $$->body = $4; }
    | TK_RETURN expr                             { $$ = mk_stmt(ps, ST_RETURN, LOC(@1)); $$->e = $2; }
    ;

if_stmt:
      TK_IF expr '{' stmts '}' else_opt          { $$ = mk_stmt(ps, ST_IF, LOC(@1)); $$->e = $2; $$->body = $4; $$->orelse = $6; }
    ;

else_opt:
      %empty                                     { $$ = NULL; }
    | TK_ELSE '{' stmts '}'                      { $$ = $3; }
    | TK_ELSE if_stmt                            { $$ = $2; }
    ;

names:
      TK_IDENT                                   { $$ = arena_alloc(ps->arena, sizeof(NameList)); $$->name = $1; $$->loc = LOC(@1); }
    | names ',' TK_IDENT                         {
                                                     NameList *n = arena_alloc(ps->arena, sizeof *n), *p = $1;
                                                     n->name = $3; n->loc = LOC(@3);
                                                     while (p->next) p = p->next;
                                                     p->next = n; $$ = $1;
                                                 }
    ;

expr:
      or_expr                                    { $$ = $1; }
    | expr TK_PIPE postfix                       { $$ = mk_pipe(ps, $1, $3, LOC(@2)); DEPTH_OK($$); }
    ;

or_expr:
      and_expr                                   { $$ = $1; }
    | or_expr TK_OR and_expr                     { $$ = mk_bin(ps, BIN_OR, $1, $3, LOC(@2)); DEPTH_OK($$); }
    ;

and_expr:
      not_expr                                   { $$ = $1; }
    | and_expr TK_AND not_expr                   { $$ = mk_bin(ps, BIN_AND, $1, $3, LOC(@2)); DEPTH_OK($$); }
    ;

not_expr:
      cmp                                        { $$ = $1; }
    | TK_NOT not_expr                            { $$ = mk_un(ps, UN_NOT, $2, LOC(@1)); DEPTH_OK($$); }
    ;

cmp:
      sum                                        { $$ = $1; }
    | sum TK_EQ sum                              { $$ = mk_bin(ps, BIN_EQ, $1, $3, LOC(@2)); DEPTH_OK($$); }
    | sum TK_NE sum                              { $$ = mk_bin(ps, BIN_NE, $1, $3, LOC(@2)); DEPTH_OK($$); }
    | sum '<' sum                                { $$ = mk_bin(ps, BIN_LT, $1, $3, LOC(@2)); DEPTH_OK($$); }
    | sum TK_LE sum                              { $$ = mk_bin(ps, BIN_LE, $1, $3, LOC(@2)); DEPTH_OK($$); }
    | sum '>' sum                                { $$ = mk_bin(ps, BIN_GT, $1, $3, LOC(@2)); DEPTH_OK($$); }
    | sum TK_GE sum                              { $$ = mk_bin(ps, BIN_GE, $1, $3, LOC(@2)); DEPTH_OK($$); }
    ;

sum:
      term                                       { $$ = $1; }
    | sum '+' term                               { $$ = mk_bin(ps, BIN_ADD, $1, $3, LOC(@2)); DEPTH_OK($$); }
    | sum '-' term                               { $$ = mk_bin(ps, BIN_SUB, $1, $3, LOC(@2)); DEPTH_OK($$); }
    ;

term:
      unary                                      { $$ = $1; }
    | term '*' unary                             { $$ = mk_bin(ps, BIN_MUL, $1, $3, LOC(@2)); DEPTH_OK($$); }
    | term '/' unary                             { $$ = mk_bin(ps, BIN_DIV, $1, $3, LOC(@2)); DEPTH_OK($$); }
    | term '%' unary                             { $$ = mk_bin(ps, BIN_MOD, $1, $3, LOC(@2)); DEPTH_OK($$); }
    ;

unary:
      postfix                                    { $$ = $1; }
    | '-' unary                                  { $$ = mk_un(ps, UN_NEG, $2, LOC(@1)); DEPTH_OK($$); }
    ;

postfix:
      primary                                    { $$ = $1; }
    | postfix '(' args ')'                       { $$ = mk_call(ps, $1, $3, $1->loc); DEPTH_OK($$); }
    | postfix '.' TK_IDENT                       {
                                                     $$ = mk(ps, EX_FIELD, LOC(@3));
                                                     $$->u.field.e = $1; $$->u.field.field = $3;
                                                     $$->depth = 1 + $1->depth; DEPTH_OK($$);
                                                 }
    | postfix TK_AS TK_IDENT                     {
                                                     if ($1->kind == EX_CALL && !$1->u.call.as) $$ = $1;
                                                     else if ($1->kind == EX_NAME) $$ = mk_call(ps, $1, NULL, $1->loc);
                                                     else {
                                                         diag_error(ps->diag, LOC(@2), "'as NAME' names a layer: it must follow a call such as conv(64, 3)");
                                                         YYABORT;
                                                     }
                                                     $$->u.call.as = $3; $$->u.call.as_loc = LOC(@3);
                                                 }
    ;

primary:
      TK_INT                                     { $$ = mk(ps, EX_INT, LOC(@1)); $$->u.i = $1; }
    | TK_FLOAT                                   { $$ = mk(ps, EX_FLOAT, LOC(@1)); $$->u.f = $1; }
    | TK_STRING                                  { $$ = mk(ps, EX_STRING, LOC(@1)); $$->u.s = $1; }
    | TK_BOOL                                    { $$ = mk(ps, EX_BOOL, LOC(@1)); $$->u.b = $1; }
    | TK_IDENT                                   { $$ = mk(ps, EX_NAME, LOC(@1)); $$->u.s = $1; }
    | '(' expr ')'                               { $$ = $2; }
    | '(' ')'                                    { $$ = mk_seq(ps, EX_TUPLE, NULL, LOC(@1)); }
    | '(' expr ',' exprs ')'                     { $$ = mk_seq(ps, EX_TUPLE, cons(ps, $2, $4), LOC(@1)); DEPTH_OK($$); }
    | '[' exprs ']'                              { $$ = mk_seq(ps, EX_LIST, $2, LOC(@1)); DEPTH_OK($$); }
    ;

exprs:
      %empty                                     { $$ = NULL; }
    | exprs1                                     { $$ = $1; }
    | exprs1 ','                                 { $$ = $1; }
    ;

exprs1:
      expr                                       { $$ = cons(ps, $1, NULL); }
    | exprs1 ',' expr                            { $$ = snoc(ps, $1, $3); }
    ;

args:
      %empty                                     { $$ = NULL; }
    | args1                                      { $$ = $1; }
    | args1 ','                                  { $$ = $1; }
    ;

args1:
      arg                                        { $$ = $1; }
    | args1 ',' arg                              { Arg *p = $1; while (p->next) p = p->next; p->next = $3; $$ = $1; }
    ;

arg:
      expr                                       { $$ = arena_alloc(ps->arena, sizeof(Arg)); $$->value = $1; $$->loc = $1->loc; }
    | TK_IDENT ':' expr                          { $$ = arena_alloc(ps->arena, sizeof(Arg)); $$->name = $1; $$->value = $3; $$->loc = LOC(@1); }
    ;

%%

/* The text of the token at loc, for "unexpected 'foo'" (one line, at most 40 bytes). */
static void token_text(struct ParseState *ps, const FE_YYLTYPE *loc, char *buf, size_t len)
{
    const char *p = ps->file->text, *end = p + ps->file->len;
    for (int l = 1; l < loc->first_line && p < end; p++)
        if (*p == '\n') l++;
    p += loc->first_column - 1;
    size_t n = 0;
    while (p < end && n + 1 < len && n < 40 && (int)n <= loc->last_column - loc->first_column && *p != '\n')
        buf[n++] = *p++;
    buf[n] = 0;
}

static int yyreport_syntax_error(const yypcontext_t *ctx, void *scanner, struct ParseState *ps)
{
    (void)scanner;
    yysymbol_kind_t got = yypcontext_token(ctx);
    if (got == YYSYMBOL_TK_LEXERROR) return 0;  /* the lexer has reported it */
    const FE_YYLTYPE *loc = yypcontext_location(ctx);
    StrBuf msg = {0};
    if (got == YYSYMBOL_YYEOF) {
        sb_append(&msg, "unexpected end of file");
    } else {
        char tok[48];
        token_text(ps, loc, tok, sizeof tok);
        sb_printf(&msg, "unexpected '%s'", tok);
    }
    yysymbol_kind_t expected[6];
    int n = yypcontext_expected_tokens(ctx, expected, 6);
    if (n > 0 && n <= 5) {
        sb_append(&msg, ", expected ");
        for (int i = 0; i < n; i++) {
            if (i) sb_append(&msg, i == n - 1 ? " or " : ", ");
            sb_append(&msg, yysymbol_name(expected[i]));
        }
    }
    Loc l = {ps->file, loc->first_line, loc->first_column};
    if (got == YYSYMBOL_YYEOF) {  /* point just past the last byte, not at a line that does not exist */
        l.line = ps->line;
        l.col = ps->col;
    }
    diag_error(ps->diag, l, "%s", msg.data);
    sb_free(&msg);
    return 0;
}

static void fe_yyerror(FE_YYLTYPE *loc, void *scanner, struct ParseState *ps, const char *msg)
{
    (void)scanner;
    if (strcmp(msg, "memory exhausted") == 0) msg = "the text nests too deeply to parse";
    diag_error(ps->diag, (Loc){ps->file, loc->first_line, loc->first_column}, "%s", msg);
}
