/* fuse_epilogue.c: activations and residual adds fused into the conv2d or
 * linear layer before them, as the layer's epilogue (ir.h Epilogue).
 *
 * Requires: a verified inference graph; runs after fold_bn (a batchnorm folds
 * only into a layer without an epilogue, so folding comes first).
 * Keeps: inputs, parameters (all, in order), outputs (by name and order), the
 * shapes and values of everything the outputs depend on (bit for bit: the
 * kernels' epilogue does the add and the activation with the arithmetic of the
 * unfused kernels), the node order otherwise.
 *
 * In TVM's terms (STYLE.md 8, ir.h PatternKind), an out-fusable layer absorbs
 * the elementwise ops after it; here only the two chains the kernels take:
 *
 *            x                                 x     r
 *            |                                 |     |
 *     conv2d / linear (w, [b])          conv2d / linear (w, [b])
 *            | t                               | t   |
 *       activation                            add(t, r)      (or add(r, t))
 *            | y                               | s
 *                                        [activation]
 *                                              | y
 *
 * each becomes one node where the chain ends,
 *
 *     y = conv2d(x, w, [b], [r])  epi = {act, slope, residual}
 *
 * i.e. y = act(conv(x) + b + r), ResNet's conv -> (bias) -> add -> relu. The
 * activation is any op with an ACT in ops.def (relu, relu6, leaky_relu,
 * sigmoid, tanh). A link fuses only when the value it consumes has exactly one
 * reader and is no graph output (t above, and s before an activation), and
 * the layer's output is not a constant; the residual r is any non-constant
 * value (it has the output's shape, as add requires). When both operands of
 * an add are fusable layer outputs, the first one takes the add and the
 * second is the residual. conv_transpose2d, pools and everything else are left
 * alone, as is a layer that already has an epilogue.
 *
 * The fused node goes at the position of the chain's last node and carries the
 * layer's scope and location: every input of the layer and the residual is
 * made before that position, and nothing between read t or s, so the order
 * stays topological. The graph is rebuilt, as fold_bn.c does. */
#include "fuse_epilogue.h"
#include "passes.h"

#include <stdlib.h>
#include <string.h>

/* The fusion plan, per node of the old graph. */
typedef struct {
    int32_t *head;      /* the layer node of the group this node belongs to, or -1 */
    int32_t *end;       /* for a layer: the last node of its group (or -1: no group) */
    int32_t *residual;  /* for a layer: the residual value, or -1 */
    int32_t *act;       /* for a layer: the activation node, or -1 */
} Plan;

typedef PassReads Reads;
#define sole_reader pass_sole_reader

/* The layer producing v when it can start a group, else -1. */
static int32_t fusable_layer(const Reads *r, const Plan *p, int32_t v)
{
    int32_t q = r->g->values[v].node;
    if (q < 0 || p->head[q] >= 0 || !ir_takes_epilogue(r->g->nodes[q].op)) return -1;
    const Epilogue *e = ir_epilogue(&r->g->nodes[q]);
    if (e->act != ACT_NONE || e->residual || r->is_const[v] || !sole_reader(r, v)) return -1;
    return q;
}

/* add(t, r) or add(r, t): the layer of t takes the add, r becomes its residual. */
static void plan_add(const Reads *r, Plan *p, int32_t i)
{
    const IrNode *n = &r->g->nodes[i];
    for (int j = 0; j < 2; j++) {
        int32_t t = ir_in(r->g, n, j), res = ir_in(r->g, n, 1 - j), q = fusable_layer(r, p, t);
        if (q < 0 || r->is_const[res]) continue;
        p->head[q] = p->head[i] = q;
        p->end[q] = i;
        p->residual[q] = res;
        return;
    }
}

/* act(t) after a layer, or act(s) after an add a layer took. */
static void plan_act(const Reads *r, Plan *p, int32_t i)
{
    int32_t v = ir_in(r->g, &r->g->nodes[i], 0), q = fusable_layer(r, p, v);
    if (q < 0) {
        int32_t a = r->g->values[v].node;
        q = a >= 0 && p->head[a] >= 0 && p->end[p->head[a]] == a && p->act[p->head[a]] < 0 ? p->head[a] : -1;
        if (q < 0 || !sole_reader(r, v)) return;
    }
    p->head[q] = p->head[i] = q;
    p->end[q] = i;
    p->act[q] = i;
}

/* Plans every group; returns how many. */
static int plan_fusions(const IrGraph *g, Plan *p)
{
    size_t nn = (size_t)(g->n_nodes ? g->n_nodes : 1);
    Reads r;
    pass_reads_init(&r, g);
    p->head = nnc_xmalloc(nn * sizeof *p->head);
    p->end = nnc_xmalloc(nn * sizeof *p->end);
    p->residual = nnc_xmalloc(nn * sizeof *p->residual);
    p->act = nnc_xmalloc(nn * sizeof *p->act);
    for (int32_t i = 0; i < g->n_nodes; i++) p->head[i] = p->end[i] = p->residual[i] = p->act[i] = -1;
    int groups = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->op == OP_ADD) plan_add(&r, p, i);
        else if (ir_ops[n->op].act != ACT_NONE) plan_act(&r, p, i);
    }
    for (int32_t i = 0; i < g->n_nodes; i++) groups += p->end[i] >= 0;
    pass_reads_free(&r);
    return groups;
}

static void plan_free(Plan *p)
{
    free(p->head);
    free(p->end);
    free(p->residual);
    free(p->act);
}

/* Appends the layer with its epilogue to ng; returns its value or -1. */
static int32_t emit_fused(IrGraph *ng, const IrGraph *g, const Plan *p, int32_t l, const int32_t *map, char *err,
                          size_t errlen)
{
    const IrNode *layer = &g->nodes[l];
    IrAttr a = layer->attr;
    Epilogue *e = layer->op == OP_LINEAR ? &a.linear.epi : &a.conv.epi;
    int32_t ins[8];
    int n_in = 0, pro = ir_prologue_in(layer), before = pro >= 0 ? pro : layer->n_in;
    for (int j = 0; j < before; j++) ins[n_in++] = map[ir_in(g, layer, j)];
    if (p->residual[l] >= 0) {  /* after the weight and bias, before a prologue's scale and shift */
        e->residual = true;
        ins[n_in++] = map[p->residual[l]];
    }
    for (int j = before; j < layer->n_in; j++) ins[n_in++] = map[ir_in(g, layer, j)];
    if (p->act[l] >= 0) {
        const IrNode *act = &g->nodes[p->act[l]];
        e->act = ir_ops[act->op].act;
        e->slope = act->op == OP_LEAKY_RELU ? act->attr.act.slope : 0.0f;
    }
    return ir_add_node(ng, layer->op, ins, n_in, &a, layer->loc, layer->scope, err, errlen);
}

bool pass_fuse_epilogue(IrGraph *g, char *err, size_t errlen)
{
    Plan p;
    if (!plan_fusions(g, &p)) {
        plan_free(&p);
        return true;
    }
    int32_t *map;
    IrGraph *ng = pass_rebuild_begin(g, NULL, &map);
    bool ok = true;
    for (int32_t i = 0; i < g->n_nodes && ok; i++) {
        const IrNode *n = &g->nodes[i];
        int32_t l = p.head[i];
        if (l >= 0 && p.end[l] != i) continue;  /* the layer or its add: emitted where the group ends */
        map[n->out] = l >= 0 ? emit_fused(ng, g, &p, l, map, err, errlen) : pass_copy_node(ng, g, n, map, err, errlen);
        ok = map[n->out] >= 0;
    }
    plan_free(&p);
    return pass_rebuild_end(g, ng, map, ok);
}
