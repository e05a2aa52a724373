/* parse.c: runs the flex scanner and the bison parser over one file. */
#include "frontend/parse_state.h"
#include "parser.h"
#define YYSTYPE FE_YYSTYPE
#define YYLTYPE FE_YYLTYPE
#include "lexer.h"

bool fe_parse(Diag *d, const SrcFile *file, Decl **out)
{
    struct ParseState ps = {0};
    ps.diag = d;
    ps.arena = d->arena;
    ps.file = file;
    ps.line = 1;
    ps.col = 1;
    ps.tail = &ps.decls;
    yyscan_t scanner;
    if (fe_yylex_init_extra(&ps, &scanner) != 0) nnc_die(__FILE__, __LINE__, "cannot start the lexer");
    YY_BUFFER_STATE buf = fe_yy_scan_bytes(file->text, (int)file->len, scanner);
    int errors = d->errors;
    int rc = fe_yyparse(scanner, &ps);
    fe_yy_delete_buffer(buf, scanner);
    fe_yylex_destroy(scanner);
    *out = ps.decls;
    return rc == 0 && d->errors == errors;
}
