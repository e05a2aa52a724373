/* diagnostics.c: the messages of a compilation as data (nnc_diagnostics in
 * include/nnc/nnc.h), copied out of the front end's Diag (frontend/diag.h).
 *
 * The Diag records every message in order, a note right after the error or
 * warning it belongs to (or after that one's earlier notes). The list keeps
 * them in one array in that order: an error's notes are the entries right
 * after it, so its `notes` points into the same array, and the top level is
 * an index of the entries that are not notes of something (an error, a
 * warning, or a note with nothing before it to belong to). Strings are copied
 * into the list's arena: the Diag and its arena may go. */
#include "nnc/nnc.h"
#include "api/nnc_internal.h"

#include <stdlib.h>
#include <string.h>

struct nnc_diagnostics {
    Arena arena;           /* the strings below */
    nnc_diagnostic *all;   /* every message, in the order reported */
    int *top;              /* indexes into all of the top-level ones */
    int n_top, errors;
    const char *text;      /* all of them as printed */
};

static const nnc_severity severity_of[] = {[DIAG_ERROR] = NNC_ERROR, [DIAG_WARNING] = NNC_WARNING,
                                           [DIAG_NOTE] = NNC_NOTE};

nnc_diagnostics *nnc_diagnostics_from(const Diag *d)
{
    nnc_diagnostics *l = nnc_xcalloc(1, sizeof *l);
    int n = d->n_recs;
    l->all = nnc_xcalloc((size_t)(n ? n : 1), sizeof *l->all);
    l->top = nnc_xcalloc((size_t)(n ? n : 1), sizeof *l->top);
    l->text = arena_strdup(&l->arena, d->out.data ? d->out.data : "");
    for (int i = 0; i < n; i++) {
        const DiagRecord *r = &d->recs[i];
        nnc_diagnostic *x = &l->all[i];
        x->severity = severity_of[r->severity];
        x->file = r->path ? arena_strdup(&l->arena, r->path) : NULL;
        x->line = r->line;
        x->column = r->col;
        x->message = arena_strdup(&l->arena, r->message);
        size_t end = r->text_start + r->text_len;
        if (r->parent < 0) {
            l->top[l->n_top++] = i;
            if (r->severity == DIAG_ERROR) l->errors++;
            int k = i + 1;  /* its notes follow it */
            for (; k < n && d->recs[k].parent == i; k++) end = d->recs[k].text_start + d->recs[k].text_len;
            x->notes = k > i + 1 ? &l->all[i + 1] : NULL;
            x->n_notes = k - i - 1;
        }
        x->text = arena_strndup(&l->arena, d->out.data + r->text_start, end - r->text_start);
    }
    return l;
}

int nnc_diagnostics_count(const nnc_diagnostics *d) { return d ? d->n_top : 0; }

const nnc_diagnostic *nnc_diagnostics_get(const nnc_diagnostics *d, int i)
{
    return d && i >= 0 && i < d->n_top ? &d->all[d->top[i]] : NULL;
}

int nnc_diagnostics_errors(const nnc_diagnostics *d) { return d ? d->errors : 0; }

const char *nnc_diagnostics_text(const nnc_diagnostics *d) { return d ? d->text : ""; }

void nnc_diagnostics_free(nnc_diagnostics *d)
{
    if (!d) return;
    free(d->all);
    free(d->top);
    arena_free(&d->arena);
    free(d);
}
