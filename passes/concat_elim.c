/* concat_elim.c: concat elimination. A channel concat whose inputs can be
 * written where they belong is marked in_place (ir.h ConcatAttr): each input
 * becomes a view of the output, a channel slice with the output's batch
 * stride, that its producer writes directly; the concat itself copies nothing.
 * Inception's four branches write into the module's output; in a DenseNet
 * block the concats nest, concat(concat(concat(x, y1), y2), y3), so every
 * layer's new features land in one buffer of the block's final width and
 * each layer reads a prefix of it.
 *
 * Requires: a verified graph; runs last among the rewrites (the fusions before
 * it change which node produces and reads each value).
 * Keeps: the graph's nodes and values; it only sets attributes. The generated
 * code computes the same floats (codegen/emit_c.c cg_bind_views gives each
 * view its offset and checks every rule below again).
 *
 * A concat (along the channels) is marked when every input x
 *   - is an activation made by a node whose kernel writes a batch-strided
 *     output (ir.h ir_writes_strided: conv2d, dwpw, the pools, batchnorm,
 *     another concat), not a constant and not a graph output;
 *   - appears once in this concat, and every other reader of x reads it as a
 *     strided view (ir_reads_strided: the image input of conv2d, dwpw, the
 *     pools, batchnorm), which rules out a second concat, a residual, an
 *     elementwise op, a flatten. */
#include "concat_elim.h"
#include "passes.h"

#include <stdlib.h>

static bool input_ok(const PassReads *r, const IrNode *c, int j)
{
    const IrGraph *g = r->g;
    int32_t x = ir_in(g, c, j), p = g->values[x].node;
    if (p < 0 || r->is_const[x] || r->is_out[x] || !ir_writes_strided(&g->nodes[p])) return false;
    for (int k = 0; k < c->n_in; k++)
        if (k != j && ir_in(g, c, k) == x) return false;
    return r->unstrided[x] == 1;  /* this concat's own read (a concat reads its inputs whole) */
}

bool pass_concat_elim(IrGraph *g, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    PassReads r;
    pass_reads_init(&r, g);
    for (int32_t i = 0; i < g->n_nodes; i++) {
        IrNode *c = &g->nodes[i];
        if (c->op != OP_CONCAT || c->attr.concat.axis != 0 || c->attr.concat.in_place) continue;
        bool ok = true;
        for (int j = 0; ok && j < c->n_in; j++) ok = input_ok(&r, c, j);
        c->attr.concat.in_place = ok;
    }
    pass_reads_free(&r);
    return true;
}
