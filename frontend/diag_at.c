/* diag_at.c: an error at a place the IR remembers (IrLoc: a node's path, line
 * and column in the DSL), rendered like the frontend's own (diag.h): the
 * source line and a caret under the column. The compilation's source table is
 * gone by the time a later stage (the training generator) finds a problem,
 * so the file is read again; when it cannot be (deleted, changed into a
 * directory), the message keeps its position without the source line. */
#include "frontend.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void diag_error_at(Diag *d, const char *path, int line, int col, const char *fmt, ...)
{
    const SrcFile *file = NULL;
    for (int i = 0; path && i < d->n_files && !file; i++)
        if (strcmp(d->files[i]->path, path) == 0) file = d->files[i];
    if (path && !file) {
        size_t len = 0;
        const char *why = NULL;
        char *text = nnc_read_file_max(path, FE_MAX_SOURCE_BYTES, 0, &len, &why);
        file = diag_add_file(d, path, text ? text : "", text ? len : 0);
        free(text);
    }
    va_list ap;
    va_start(ap, fmt);
    diag_verror(d, (Loc){file, path ? line : 0, path ? col : 0}, fmt, ap);
    va_end(ap);
}

void fe_report_at(IrLoc loc, const char *msg)
{
    Arena a = {0};
    Diag d;
    diag_init(&d, &a);
    diag_error_at(&d, loc.file, loc.line, loc.col, "%s", msg);
    fputs(d.out.data ? d.out.data : "", stderr);
    diag_free(&d);
    arena_free(&a);
}
