/* dce.c: dead-code elimination.
 *
 * Requires: a verified graph. Keeps: every input (they are the generated API's
 * arguments, used or not), every output, and exactly the nodes and parameters
 * that some output depends on, in their original order. Parameters that no
 * live node reads are dropped, so a weights file may carry them or not. */
#include "passes.h"

#include <stdlib.h>
#include <string.h>

bool pass_dce(IrGraph *g, char *err, size_t errlen)
{
    bool *live = nnc_xcalloc((size_t)g->n_values, sizeof *live);
    for (int32_t i = 0; i < g->n_outputs; i++) live[g->outputs[i].value] = true;
    for (int32_t i = g->n_nodes - 1; i >= 0; i--) {
        const IrNode *n = &g->nodes[i];
        if (!live[n->out]) continue;
        for (int j = 0; j < n->n_in; j++) live[ir_in(g, n, j)] = true;
    }
    int32_t *map;
    IrGraph *ng = pass_rebuild_begin(g, live, &map);  /* parameters no live node reads are dropped */
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
