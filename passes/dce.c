/* dce.c: dead-code elimination.
 *
 * Requires: a verified graph. Keeps: every input (they are the generated API's
 * arguments, used or not), every output, and exactly the nodes and parameters
 * that some output depends on, in their original order. Parameters that no
 * live node reads are dropped, so a weights file may carry them or not.
 *
 * The training form (pass_dce_train) keeps every parameter: a training run
 * draws initial weights and writes weights files and checkpoints over the
 * whole parameter list, which must equal `nnc init`'s and -O0's. A parameter
 * no live node reads gets no gradient there, and the optimizer leaves it
 * alone, as PyTorch's does a parameter whose grad is None. */
#include "passes.h"

#include <stdlib.h>
#include <string.h>

static bool dce(IrGraph *g, bool keep_params, char *err, size_t errlen)
{
    bool *live = nnc_xcalloc((size_t)g->n_values, sizeof *live);
    for (int32_t i = 0; i < g->n_outputs; i++) live[g->outputs[i].value] = true;
    for (int32_t i = g->n_nodes - 1; i >= 0; i--) {
        const IrNode *n = &g->nodes[i];
        if (!live[n->out]) continue;
        for (int j = 0; j < n->n_in; j++) live[ir_in(g, n, j)] = true;
    }
    int32_t *map;
    IrGraph *ng = pass_rebuild_begin(g, keep_params ? NULL : live, &map);  /* else unread parameters go */
    bool ok = true;
    for (int32_t i = 0; i < g->n_nodes && ok; i++) {
        const IrNode *n = &g->nodes[i];
        if (!live[n->out]) continue;
        map[n->out] = pass_copy_node(ng, g, n, map, err, errlen);
        ok = map[n->out] >= 0;
    }
    free(live);
    return pass_rebuild_end(g, ng, map, ok);
}

bool pass_dce(IrGraph *g, char *err, size_t errlen) { return dce(g, false, err, errlen); }

bool pass_dce_train(IrGraph *g, char *err, size_t errlen) { return dce(g, true, err, errlen); }
