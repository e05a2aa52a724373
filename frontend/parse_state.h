/* parse_state.h: what the lexer and the parser share while reading one file. */
#ifndef NNC_PARSE_STATE_H
#define NNC_PARSE_STATE_H

#include "ast.h"

struct ParseState {
    Diag *diag;
    Arena *arena;
    const SrcFile *file;
    int line, col;      /* position of the next byte the lexer reads */
    Decl *decls;        /* result, in source order */
    Decl **tail;
    bool lex_failed;    /* the lexer already reported the error */
};

#endif
