/* parse_state.h: what the lexer and the parser share while reading one file. */
#ifndef NNC_PARSE_STATE_H
#define NNC_PARSE_STATE_H

#include "ast.h"

enum { PS_MAX_OPEN = 64 };

struct ParseState {
    Diag *diag;
    Arena *arena;
    const SrcFile *file;
    int line, col;      /* position of the next byte the lexer reads */
    Decl *decls;        /* result, in source order */
    Decl **tail;
    /* kept by the parser's token hook, for syntax messages */
    int tok, prev_tok;              /* kinds of the last token read and of the one before it (0: none) */
    Loc tok_loc;                    /* where the last token starts */
    int end_line, end_col;          /* just past the last token read */
    struct { char c; Loc loc; } open[PS_MAX_OPEN];  /* innermost unclosed brackets */
    int n_open;                     /* may exceed PS_MAX_OPEN; the excess is not remembered */
    /* kept by the lexer */
    int parens;                     /* '(' read minus ')' read */
    int as_paren;                   /* parens inside a computed `as (...)` segment, 0 when none */
};

#endif
