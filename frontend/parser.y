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
 * LAC makes the expected set exact; yyreport_syntax_error() sums it up ("an
 * expression", "a statement"), adds a hint for common slips and points at the
 * unclosed bracket. Expression nesting is bounded (AST_MAX_DEPTH) so later
 * recursive walks are safe. Lists are built backwards and reversed once, so a
 * long list costs linear time. */
%define api.pure full
%define api.prefix {fe_yy}
%define parse.error custom
%define parse.lac full
%locations
%lex-param {void *scanner} {struct ParseState *ps}
%parse-param {void *scanner} {struct ParseState *ps}

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
    AsSeg *seg;
}

%code {
#include <string.h>
#include <stdio.h>

int fe_yylex_raw(FE_YYSTYPE *lval, FE_YYLTYPE *lloc, void *scanner);
static int fe_yylex(FE_YYSTYPE *lval, FE_YYLTYPE *lloc, void *scanner, struct ParseState *ps);
static void fe_yyerror(FE_YYLTYPE *loc, void *scanner, struct ParseState *ps, const char *msg);

#define LOC(l) ((Loc){ps->file, (l).first_line, (l).first_column})
/* Rejects an expression nested deeper than AST_MAX_DEPTH: reports and aborts the parse. */
#define DEPTH_OK(e) do { if ((e)->depth > AST_MAX_DEPTH) {                                   \
        diag_error(ps->diag, (e)->loc, "expression is nested more than %d levels deep; "        \
                   "split it with intermediate variables", AST_MAX_DEPTH);                             \
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

/* The list rules below prepend (constant time) and reverse the finished list
 * once; appending by walking to the end would make a long list quadratic. */
#define REVERSE(T, list) do {                                  \
        T *r_ = NULL, *p_ = (list);                             \
        while (p_) { T *n_ = p_->next; p_->next = r_; r_ = p_; p_ = n_; } \
        (list) = r_; } while (0)

static Stmt *mk_stmt(struct ParseState *ps, StmtKind k, Loc loc)
{
    Stmt *s = arena_alloc(ps->arena, sizeof *s);
    s->kind = k;
    s->loc = loc;
    return s;
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
%token <s> TK_IDENT "name" TK_STRING "string" TK_SEG "layer name"
%token TK_LEXERROR "invalid token"

%type <expr> expr or_expr and_expr not_expr cmp sum term unary postfix postfix_as primary
%type <seg> as_path as_seg
%type <list> exprs exprs1
%type <arg> args args1 arg
%type <stmt> stmts body stmt if_stmt else_opt
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
    | TK_BLOCK TK_IDENT '(' params ')' body      { Decl *d = mk_decl(ps, DECL_BLOCK, LOC(@2), $2); d->params = $4; d->body = $6; }
    | TK_NETWORK TK_IDENT net_params body        { Decl *d = mk_decl(ps, DECL_NETWORK, LOC(@2), $2); d->params = $3; d->body = $4; }
    | TK_TRAIN TK_IDENT '{' settings '}'         { Decl *d = mk_decl(ps, DECL_TRAIN, LOC(@2), $2); REVERSE(Setting, $4); d->settings = $4; }
    ;

net_params:
      %empty                                     { $$ = NULL; }
    | '(' params ')'                             { $$ = $2; }
    ;

params:
      %empty                                     { $$ = NULL; }
    | params1                                    { $$ = $1; REVERSE(Param, $$); }
    | params1 ','                                { $$ = $1; REVERSE(Param, $$); }
    ;

params1:                                         /* backwards */
      param                                      { $$ = $1; }
    | params1 ',' param                          { $3->next = $1; $$ = $3; }
    ;

param:
      TK_IDENT                                   { $$ = arena_alloc(ps->arena, sizeof(Param)); $$->name = $1; $$->loc = LOC(@1); }
    | TK_IDENT '=' expr                          { $$ = arena_alloc(ps->arena, sizeof(Param)); $$->name = $1; $$->loc = LOC(@1); $$->def = $3; }
    ;

settings:                                        /* backwards */
      %empty                                     { $$ = NULL; }
    | settings TK_IDENT '=' expr                 {
                                                     Setting *s = arena_alloc(ps->arena, sizeof *s);
                                                     s->key = $2; s->value = $4; s->loc = LOC(@2);
                                                     s->next = $1; $$ = s;
                                                 }
    ;

body:
      '{' stmts '}'                              { $$ = $2; REVERSE(Stmt, $$); }
    ;

stmts:                                           /* backwards */
      %empty                                     { $$ = NULL; }
    | stmts stmt                                 { $2->next = $1; $$ = $2; }
    ;

stmt:
      TK_INPUT TK_IDENT ':' '[' exprs ']'        { $$ = mk_stmt(ps, ST_INPUT, LOC(@2)); $$->name = $2; $$->e = mk_seq(ps, EX_LIST, $5, LOC(@4)); }
    | TK_OUTPUT TK_IDENT '=' expr                { $$ = mk_stmt(ps, ST_OUTPUT, LOC(@2)); $$->name = $2; $$->e = $4; }
    | TK_IDENT '=' expr                          { $$ = mk_stmt(ps, ST_ASSIGN, LOC(@1)); $$->name = $1; $$->e = $3; }
    | if_stmt                                    { $$ = $1; }
    | TK_FOR names TK_IN expr body               { $$ = mk_stmt(ps, ST_FOR, LOC(@1)); REVERSE(NameList, $2); $$->vars = $2; $$->e = $4; $$->body = $5; }
    | TK_REPEAT expr body                        { $$ = mk_stmt(ps, ST_REPEAT, LOC(@1)); $$->e = $2; $$->body = $3; }
    | TK_RETURN expr                             { $$ = mk_stmt(ps, ST_RETURN, LOC(@1)); $$->e = $2; }
    ;

if_stmt:
      TK_IF expr body else_opt                   { $$ = mk_stmt(ps, ST_IF, LOC(@1)); $$->e = $2; $$->body = $3; $$->orelse = $4; }
    ;

else_opt:
      %empty                                     { $$ = NULL; }
    | TK_ELSE body                               { $$ = $2; }
    | TK_ELSE if_stmt                            { $$ = $2; }
    ;

names:                                           /* backwards */
      TK_IDENT                                   { $$ = arena_alloc(ps->arena, sizeof(NameList)); $$->name = $1; $$->loc = LOC(@1); }
    | names ',' TK_IDENT                         {
                                                     NameList *n = arena_alloc(ps->arena, sizeof *n);
                                                     n->name = $3; n->loc = LOC(@3);
                                                     n->next = $1; $$ = n;
                                                 }
    ;

expr:
      or_expr                                    { $$ = $1; }
    | expr TK_PIPE postfix_as                    { $$ = mk_pipe(ps, $1, $3, LOC(@2)); DEPTH_OK($$); }
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
      postfix_as                                 { $$ = $1; }
    | '-' unary                                  { $$ = mk_un(ps, UN_NEG, $2, LOC(@1)); DEPTH_OK($$); }
    ;

postfix:
      primary                                    { $$ = $1; }
    | postfix '(' args ')'                       { $$ = mk_call(ps, $1, $3, $1->loc); DEPTH_OK($$); }
    | postfix '[' expr ']'                       {
                                                     $$ = mk(ps, EX_INDEX, LOC(@2));
                                                     $$->u.index.seq = $1; $$->u.index.index = $3;
                                                     $$->depth = 1 + ($1->depth > $3->depth ? $1->depth : $3->depth); DEPTH_OK($$);
                                                 }
    | postfix '.' TK_IDENT                       {
                                                     $$ = mk(ps, EX_FIELD, LOC(@3));
                                                     $$->u.field.e = $1; $$->u.field.field = $3;
                                                     $$->depth = 1 + $1->depth; DEPTH_OK($$);
                                                 }
    ;

/* `call as path`: names the layer or block call (see AsSeg). A level of its
 * own, so that a '.' after a path always continues the path. */
postfix_as:
      postfix                                    { $$ = $1; }
    | postfix TK_AS as_path                      {
                                                     if ($1->kind == EX_CALL && !$1->u.call.as) $$ = $1;
                                                     else if ($1->kind == EX_NAME) $$ = mk_call(ps, $1, NULL, $1->loc);
                                                     else {
                                                         diag_error(ps->diag, LOC(@2), "'as NAME' names a layer: it must follow a call such as conv(64, 3)");
                                                         YYABORT;
                                                     }
                                                     REVERSE(AsSeg, $3);
                                                     $$->u.call.as = $3; $$->u.call.as_loc = LOC(@3);
                                                     for (AsSeg *a = $3; a; a = a->next)
                                                         if (a->expr && 1 + a->expr->depth > $$->depth) $$->depth = 1 + a->expr->depth;
                                                 }
    ;

as_path:                                         /* backwards */
      as_seg                                     { $$ = $1; }
    | as_path '.' as_seg                         { $3->next = $1; $$ = $3; }
    ;

as_seg:
      TK_SEG                                     { $$ = arena_alloc(ps->arena, sizeof(AsSeg)); $$->text = $1; $$->loc = LOC(@1); }
    | TK_IDENT                                   { $$ = arena_alloc(ps->arena, sizeof(AsSeg)); $$->text = $1; $$->loc = LOC(@1); }
    | TK_INT                                     {
                                                     $$ = arena_alloc(ps->arena, sizeof(AsSeg));
                                                     $$->text = arena_printf(ps->arena, "%lld", (long long)$1); $$->loc = LOC(@1);
                                                 }
    | '(' expr ')'                               { $$ = arena_alloc(ps->arena, sizeof(AsSeg)); $$->expr = $2; $$->loc = LOC(@2); }
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
    | exprs1                                     { $$ = $1; REVERSE(ExprList, $$); }
    | exprs1 ','                                 { $$ = $1; REVERSE(ExprList, $$); }
    ;

exprs1:                                          /* backwards */
      expr                                       { $$ = cons(ps, $1, NULL); }
    | exprs1 ',' expr                            { $$ = cons(ps, $3, $1); }
    ;

args:
      %empty                                     { $$ = NULL; }
    | args1                                      { $$ = $1; REVERSE(Arg, $$); }
    | args1 ','                                  { $$ = $1; REVERSE(Arg, $$); }
    ;

args1:                                           /* backwards */
      arg                                        { $$ = $1; }
    | args1 ',' arg                              { $3->next = $1; $$ = $3; }
    ;

arg:
      expr                                       { $$ = arena_alloc(ps->arena, sizeof(Arg)); $$->value = $1; $$->loc = $1->loc; }
    | TK_IDENT ':' expr                          { $$ = arena_alloc(ps->arena, sizeof(Arg)); $$->name = $1; $$->value = $3; $$->loc = LOC(@1); }
    ;

%%

/* ---- tokens as the parser reads them ---- */

static int closer(int open) { return open == '(' ? ')' : open == '[' ? ']' : '}'; }

/* Keeps the stack of unclosed brackets, for "to match this '('". */
static void track_bracket(struct ParseState *ps, int t, Loc loc)
{
    if (t == '(' || t == '[' || t == '{') {
        if (ps->n_open < PS_MAX_OPEN) {
            ps->open[ps->n_open].c = (char)t;
            ps->open[ps->n_open].loc = loc;
        }
        ps->n_open++;
    } else if ((t == ')' || t == ']' || t == '}') && ps->n_open > 0 &&
               (ps->n_open > PS_MAX_OPEN || closer(ps->open[ps->n_open - 1].c) == t)) {
        ps->n_open--;
    }
}

/* The parser's yylex: the scanner's token, after noting what a syntax message
 * may need. The brackets of a token are counted when the next one is read, so
 * at an error the stack describes the text before the unexpected token. */
static int fe_yylex(FE_YYSTYPE *lval, FE_YYLTYPE *lloc, void *scanner, struct ParseState *ps)
{
    int t = fe_yylex_raw(lval, lloc, scanner);
    if (ps->tok) track_bracket(ps, ps->tok, ps->tok_loc);
    ps->prev_tok = ps->tok;
    ps->tok = t;
    ps->tok_loc = t ? LOC(*lloc) : (Loc){0};
    if (t) {
        ps->end_line = lloc->last_line;
        ps->end_col = lloc->last_column + 1;
    }
    return t;
}

/* ---- syntax errors ---- */

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

static const int expr_start[] = {TK_INT, TK_FLOAT, TK_STRING, TK_BOOL, TK_IDENT, '(', '[', '-', TK_NOT};
static const int stmt_start[] = {TK_INPUT, TK_OUTPUT, TK_IF, TK_FOR, TK_REPEAT, TK_RETURN, TK_IDENT};
static const int decl_start[] = {TK_IMPORT, TK_BLOCK, TK_NETWORK, TK_TRAIN};
/* tokens that continue an expression: listing them after every operand is noise */
static const int continuers[] = {TK_PIPE, TK_OR, TK_AND, TK_EQ, TK_NE, '<', TK_LE, '>', TK_GE,
                                 '+', '-', '*', '/', '%', '(', '[', '.', TK_AS};
static const int keywords[] = {TK_NETWORK, TK_BLOCK, TK_INPUT, TK_OUTPUT, TK_RETURN, TK_IF, TK_ELSE, TK_FOR,
                               TK_IN, TK_REPEAT, TK_AND, TK_OR, TK_NOT, TK_IMPORT, TK_TRAIN, TK_AS};

#define HAS(set, tok) ((set)[YYTRANSLATE(tok)])

static bool has_all(const bool *set, const int *toks, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!HAS(set, toks[i])) return false;
    return true;
}

static void clear(bool *set, const int *toks, size_t n)
{
    for (size_t i = 0; i < n; i++) HAS(set, toks[i]) = false;
}

static bool is_keyword(int tok)
{
    for (size_t i = 0; i < NNC_COUNT(keywords); i++)
        if (keywords[i] == tok) return true;
    return false;
}

static const char *symbol_text(yysymbol_kind_t k)
{
    switch (k) {
    case YYSYMBOL_YYEOF: return "end of file";
    case YYSYMBOL_TK_IDENT: return "a name";
    case YYSYMBOL_TK_STRING: return "a string";
    case YYSYMBOL_TK_INT: return "an integer";
    case YYSYMBOL_TK_FLOAT: return "a number";
    case YYSYMBOL_TK_BOOL: return "true or false";
    default: return yysymbol_name(k);
    }
}

/* Sums up what the parser expected: whole classes ("an expression", "a
 * statement") first, then single tokens; operators that could continue the
 * expression before the error are left out. Writes nothing for a long list. */
static void describe_expected(bool *set, StrBuf *msg)
{
    const char *items[YYNTOKENS + 3];
    int n = 0;
    if (has_all(set, decl_start, NNC_COUNT(decl_start))) {
        items[n++] = "a declaration ('network', 'block', 'import' or 'train')";
        clear(set, decl_start, NNC_COUNT(decl_start));
        set[YYSYMBOL_YYEOF] = false;
    }
    if (has_all(set, stmt_start, NNC_COUNT(stmt_start))) {
        items[n++] = "a statement";
        clear(set, stmt_start, NNC_COUNT(stmt_start));
    }
    if (HAS(set, TK_INT) && HAS(set, TK_IDENT) && HAS(set, '(')) {
        items[n++] = "an expression";
        clear(set, expr_start, NNC_COUNT(expr_start));
    }
    bool others = n > 0;  /* anything besides operators? then leave the operators out */
    for (int k = 0; k < YYNTOKENS && !others; k++) {
        bool op = false;
        for (size_t i = 0; i < NNC_COUNT(continuers); i++) op |= k == YYTRANSLATE(continuers[i]);
        others = set[k] && !op;
    }
    if (others) clear(set, continuers, NNC_COUNT(continuers));
    int closers[3] = {YYTRANSLATE(')'), YYTRANSLATE(']'), YYTRANSLATE('}')};
    for (int k = 0; k < YYNTOKENS; k++)  /* closing brackets last: "',' or ')'" */
        if (set[k] && k != YYSYMBOL_YYerror && k != YYSYMBOL_YYUNDEF && k != closers[0] && k != closers[1] &&
            k != closers[2])
            items[n++] = symbol_text((yysymbol_kind_t)k);
    for (int i = 0; i < 3; i++)
        if (set[closers[i]]) items[n++] = symbol_text((yysymbol_kind_t)closers[i]);
    if (n == 0 || n > 5) return;
    sb_append(msg, ", expected ");
    for (int i = 0; i < n; i++) {
        if (i) sb_append(msg, i == n - 1 ? " or " : ", ");
        sb_append(msg, items[i]);
    }
}

/* A hint for slips people often make, or NULL; buf holds a composed one. */
static const char *hint(const struct ParseState *ps, int got, const bool *expected, char *buf, size_t len)
{
    int open = ps->n_open > 0 && ps->n_open <= PS_MAX_OPEN ? ps->open[ps->n_open - 1].c : 0;
    if (got == TK_ELSE) return "'else' must come right after the '}' of an 'if'";
    if (is_keyword(got) && HAS(expected, TK_IDENT) && !has_all(expected, stmt_start, NNC_COUNT(stmt_start))) {
        snprintf(buf, len, "%s is a keyword and cannot be used as a name", yysymbol_name(YYTRANSLATE(got)));
        return buf;
    }
    if (got == '=' && is_keyword(ps->prev_tok)) {
        snprintf(buf, len, "%s is a keyword and cannot be used as a name", yysymbol_name(YYTRANSLATE(ps->prev_tok)));
        return buf;
    }
    if (got == '=' && HAS(expected, TK_EQ) && open != '(') return "compare with '=='";
    if (got == '=' && open == '(') return "keyword arguments are written 'name: value'";
    if ((got == TK_EQ || got == TK_NE || got == '<' || got == TK_LE || got == '>' || got == TK_GE) &&
        !HAS(expected, TK_INT))  /* after a whole comparison, not where an operand should be */
        return "comparisons do not chain; write 'a < b and b < c'";
    return NULL;
}

static int yyreport_syntax_error(const yypcontext_t *ctx, void *scanner, struct ParseState *ps)
{
    (void)scanner;
    yysymbol_kind_t got = yypcontext_token(ctx);
    if (got == YYSYMBOL_TK_LEXERROR) return 0;  /* the lexer has reported it */
    const FE_YYLTYPE *loc = yypcontext_location(ctx);
    Loc l = {ps->file, loc->first_line, loc->first_column};
    StrBuf msg = {0};
    if (got == YYSYMBOL_YYEOF) {
        /* point just past the last token, where the missing text belongs */
        sb_append(&msg, "unexpected end of file");
        if (ps->end_line) l.line = ps->end_line, l.col = ps->end_col;
    } else {
        char tok[48];
        token_text(ps, loc, tok, sizeof tok);
        sb_printf(&msg, "unexpected '%s'", tok);
    }
    yysymbol_kind_t list[YYNTOKENS];
    bool expected[YYNTOKENS] = {0}, all[YYNTOKENS];
    int n = yypcontext_expected_tokens(ctx, list, YYNTOKENS);
    for (int i = 0; i < n; i++) expected[list[i]] = true;
    memcpy(all, expected, sizeof all);
    describe_expected(expected, &msg);
    char hbuf[96];
    const char *h = hint(ps, ps->tok, all, hbuf, sizeof hbuf);
    if (h) sb_printf(&msg, "; %s", h);
    diag_error(ps->diag, l, "%s", msg.data);
    sb_free(&msg);
    /* a bracket that was likely never closed: its closer would fit here, and
     * the text ends, a new declaration begins, or a '(' or '[' spans lines */
    if (ps->n_open > 0 && ps->n_open <= PS_MAX_OPEN) {
        const Loc *at = &ps->open[ps->n_open - 1].loc;
        int c = ps->open[ps->n_open - 1].c;
        bool decl = false;
        for (size_t i = 0; i < NNC_COUNT(decl_start); i++) decl |= ps->tok == decl_start[i];
        if (all[YYTRANSLATE(closer(c))] && (got == YYSYMBOL_YYEOF || decl || (c != '{' && at->line != l.line)))
            diag_note(ps->diag, *at, "to match this '%c'", c);
    }
    return 0;
}

static void fe_yyerror(FE_YYLTYPE *loc, void *scanner, struct ParseState *ps, const char *msg)
{
    (void)scanner;
    if (strcmp(msg, "memory exhausted") == 0)
        msg = "the text nests too deeply to parse; split the deepest expression or block into smaller ones";
    diag_error(ps->diag, (Loc){ps->file, loc->first_line, loc->first_column}, "%s", msg);
}
