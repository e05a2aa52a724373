/* plan_memory.c: the memory plan of an inference graph (plan_memory.h). */
#include "plan_memory.h"
#include "memplan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PM_FAIL(...) do { snprintf(err, errlen, __VA_ARGS__); return false; } while (0)

/* ------------------------------------------------------ scratch needs ---- */

/* A 1x1, stride-1, unpadded convolution is a plain GEMM on its input: the
 * conv2d kernel takes that path and needs no im2col; nor does a depthwise one
 * (one input channel per group), which the kernel computes directly. */
static bool conv_direct(const ConvAttr *c)
{
    return c->kh == 1 && c->kw == 1 && c->sh == 1 && c->sw == 1 && c->ph == 0 && c->pw == 0;
}

/* The depthwise output of one tile (channels x rows x width) stays within
 * 128 KiB, so it is still in L2 when the pointwise GEMM reads it back. */
int plan_dwpw_tile(const IrGraph *g, const IrNode *n)
{
    const IrShape *x = ir_in_shape(g, n, 0), *y = &g->values[n->out].shape;
    int64_t rows = 32768 / (x->dim[0] * y->dim[2]);
    return (int)(rows < 1 ? 1 : rows > y->dim[1] ? y->dim[1] : rows);
}

int64_t plan_conv_samples(int64_t ohw) { return ohw >= 512 ? 1 : (512 + ohw - 1) / ohw; }

/* Samples per GEMM block of nnc_conv2d (kernels.c nnc_conv2d_block): several,
 * up to NNC_CONV_COLS = 512 columns, for a plain convolution of a small map;
 * nnc_conv2d_packed's (nnc_conv2d_packed_scratch) with a prologue too. */
static int64_t conv_block(const IrNode *n, const IrShape *x, const IrShape *y, int max_batch)
{
    const ConvAttr *c = &n->attr.conv;
    int64_t nb = plan_conv_samples(y->dim[1] * y->dim[2]);
    if ((c->pro.on && !c->packed) || (x->dim[0] / c->groups == 1 && !conv_direct(c))) return 1;
    return nb < max_batch ? nb : max_batch;
}

int64_t plan_scratch_floats(const IrGraph *g, const IrNode *n, int max_batch)
{
    const ConvAttr *c = &n->attr.conv;
    const IrShape *x = ir_in_shape(g, n, 0), *y = &g->values[n->out].shape;
    if (n->op == OP_CONV2D && c->blocked) return 0;  /* kernels_blocked*.c compute in registers */
    if (n->op == OP_CONV2D && c->winograd)  /* runtime/snippets/kernels_winograd.c nnc_conv2d_winograd_scratch */
        return 4 * 36 * 32 * (x->dim[0] + 64);
    if (n->op == OP_CONV2D) {  /* the prologue's copy of a sample, then im2col unless the kernel needs none */
        int64_t nb = conv_block(n, x, y, max_batch), s = c->pro.on ? ir_shape_elems(x) : 0;
        if (nb > 1)  /* a block's im2col matrices and its output, then its samples through a prologue */
            return (x->dim[0] / c->groups * c->kh * c->kw + c->out_channels / c->groups) * nb * y->dim[1] * y->dim[2] +
                   (c->pro.on && !conv_direct(c) ? nb * ir_shape_elems(x) : 0);
        if (!conv_direct(c) && x->dim[0] / c->groups > 1)
            s += x->dim[0] / c->groups * c->kh * c->kw * y->dim[1] * y->dim[2];
        return s;
    }
    if (n->op == OP_CONV_T2D)
        return (int64_t)c->out_channels / c->groups * c->kh * c->kw * x->dim[1] * x->dim[2];
    if (n->op == OP_DWPW) {  /* one tile's depthwise rows; packed, blocks of samples of a small map */
        int64_t nb = plan_conv_samples(y->dim[1] * y->dim[2]);
        if (nb > max_batch) nb = max_batch;
        if (n->attr.dwpw.pw.packed && nb > 1) return (x->dim[0] + y->dim[0]) * nb * y->dim[1] * y->dim[2];
        /* packed at batch > 1: a tile for each of up to NNC_DWPW_SLOTS = 4 threads */
        return (n->attr.dwpw.pw.packed && max_batch > 1 ? 4 : 1) * x->dim[0] * plan_dwpw_tile(g, n) * y->dim[2];
    }
    return 0;
}

/* ---------------------------------------------------------------- plan ---- */

static int64_t elems_from(const IrShape *s, int from)
{
    int64_t e = 1;
    for (int i = from; i < s->rank; i++) e *= s->dim[i];
    return e;
}

/* Binds each output to the node that produces it (the first output of a
 * value wins; the others get a copy). */
static void bind_outputs(const IrGraph *g, IrMemPlan *p)
{
    for (int32_t v = 0; v < g->n_values; v++) p->bound_out[v] = -1;
    for (int32_t o = 0; o < g->n_outputs; o++) {
        int32_t v = g->outputs[o].value;
        if (g->values[v].kind == VK_ACT && !p->is_const[v] && p->bound_out[v] < 0) p->bound_out[v] = o;
    }
}

static bool bind_views(const IrGraph *g, IrMemPlan *p, char *err, size_t errlen)
{
    for (int32_t v = 0; v < g->n_values; v++) p->root[v] = v, p->view_off[v] = 0;
    for (int32_t i = g->n_nodes - 1; i >= 0; i--) {  /* outer concats come later: walk backwards */
        const IrNode *n = &g->nodes[i];
        if (n->op != OP_CONCAT || !n->attr.concat.in_place) continue;
        const IrShape *y = &g->values[n->out].shape;
        if (n->attr.concat.axis != 0) PM_FAIL("internal error: an in-place concat along axis %d", n->attr.concat.axis);
        int64_t off = p->view_off[n->out], inner = elems_from(y, 1);
        for (int j = 0; j < n->n_in; j++) {
            int32_t x = ir_in(g, n, j);
            if (g->values[x].kind != VK_ACT || p->is_const[x] || p->bound_out[x] >= 0 || p->root[x] != x)
                PM_FAIL("internal error: input %d of an in-place concat (node %d) cannot be a view", j + 1, i);
            p->root[x] = p->root[n->out];
            p->view_off[x] = off;
            off += g->values[x].shape.dim[0] * inner;
        }
    }
    for (int32_t i = 0; i < g->n_nodes; i++) {  /* slices: views of their input, wherever that lives */
        const IrNode *n = &g->nodes[i];
        if (n->op != OP_SLICE) continue;
        int32_t x = ir_in(g, n, 0);
        if (p->root[n->out] != n->out || p->bound_out[n->out] >= 0 || p->is_const[x])
            PM_FAIL("internal error: the slice of node %d cannot be a view", i);
        p->root[n->out] = p->root[x];
        p->view_off[n->out] = p->view_off[x] + n->attr.slice.start * elems_from(&g->values[x].shape, 1);
    }
    for (int32_t i = 0; i < g->n_nodes; i++) {  /* only a kernel that takes a batch stride reads or writes a view */
        const IrNode *n = &g->nodes[i];
        for (int j = 0; !ir_is_view(n) && j < n->n_in; j++) {
            int32_t x = ir_in(g, n, j);
            if (p->root[x] != x && !ir_reads_strided(n, j))
                PM_FAIL("internal error: %s (node %d) cannot read input %d as a slice of a concat", ir_ops[n->op].name,
                        i, j + 1);
        }
        if (!ir_is_view(n) && p->root[n->out] != n->out && !ir_writes_strided(n))
            PM_FAIL("internal error: %s (node %d) cannot write a slice of a concat", ir_ops[n->op].name, i);
    }
    return true;
}

/* Ops whose kernel may write its output over an input that dies there (the
 * kernels' contract: elementwise, y may equal x; copies are memmove). */

/* The workspace plan (passes/memplan.h): every activation not written into a
 * caller's output is a buffer live from its node to its last reader, every
 * convolution's scratch a buffer live during its node; an elementwise node
 * whose input dies there shares that input's buffer (in place). A fused
 * epilogue's residual is an input of its conv2d / linear node like any other,
 * so it lives until that node, and the node's output never shares its buffer
 * (the GEMM writes y before the epilogue reads the residual). The planner
 * packs the buffers; this is the one place that assigns workspace offsets. */
static bool plan_workspace(const IrGraph *g, IrMemPlan *p, char *err, size_t errlen)
{
    size_t nv = (size_t)(g->n_values ? g->n_values : 1), nn = (size_t)g->n_nodes + 1;
    int32_t *last = nnc_xmalloc(nv * sizeof *last), *buf_of = nnc_xmalloc(nv * sizeof *buf_of);
    int32_t *first = nnc_xmalloc(nv * sizeof *first), *scratch_buf = nnc_xmalloc(nn * sizeof *scratch_buf);
    bool *aliased = nnc_xcalloc(nv, sizeof *aliased);
    MpBuffer *bufs = nnc_xmalloc((2 * nn) * sizeof *bufs);
    int32_t nb = 0;
    bool ok = true;
    for (int32_t v = 0; v < g->n_values; v++) last[v] = -1, buf_of[v] = -1, first[v] = g->values[v].node;
    for (int32_t i = 0; i < g->n_nodes; i++)
        for (int j = 0; j < g->nodes[i].n_in; j++) last[ir_in(g, &g->nodes[i], j)] = i;
    for (int32_t v = 0; v < g->n_values; v++) {  /* a concat's storage lives from its first slice to its last reader */
        int32_t r = p->root[v];
        if (r == v) continue;
        aliased[r] = aliased[v] = true;
        if (last[v] > last[r]) last[r] = last[v];
        if (first[v] < first[r]) first[r] = first[v];
    }
    for (int32_t i = 0; ok && i < g->n_nodes; i++) {
        const IrNode *n = &g->nodes[i];
        int64_t bytes = ir_value_elems(&g->values[n->out]) * p->max_batch * (int64_t)sizeof(float);
        int64_t s = plan_scratch_floats(g, n, p->max_batch);
        scratch_buf[i] = -1;
        if (s > 0) {
            scratch_buf[i] = nb;
            bufs[nb++] = (MpBuffer){s * (int64_t)sizeof(float), i, i, 0};
            if (s > p->scratch_floats) p->scratch_floats = s;
        }
        if (bytes > PLAN_MAX_WS_BYTES) {
            snprintf(err, errlen, "an activation needs more than %lld bytes at a batch of %d",
                     (long long)PLAN_MAX_WS_BYTES, p->max_batch);
            ok = false;
        }
        if (!ok || p->bound_out[n->out] >= 0 || p->is_const[n->out]) continue;  /* constants live in m->consts */
        if (p->root[n->out] != n->out) continue;  /* a slice of a concat's buffer */
        int32_t end = last[n->out] > i ? last[n->out] : i;
        if (p->reuse && n->op == OP_FLATTEN && buf_of[ir_in(g, n, 0)] >= 0 && !aliased[n->out] &&
            !aliased[ir_in(g, n, 0)]) {
            /* flatten changes no byte: its output is a view of its input (same buffer, lifetime joined) */
            int32_t b = buf_of[ir_in(g, n, 0)];
            buf_of[n->out] = b;
            if (bufs[b].last < end) bufs[b].last = end;
            continue;
        }
        for (int j = 0; p->reuse && ir_ops[n->op].in_place && !aliased[n->out] && j < n->n_in; j++) {
            int32_t x = ir_in(g, n, j);
            if (buf_of[x] >= 0 && !aliased[x] && last[x] == i && bufs[buf_of[x]].size == bytes) {
                buf_of[n->out] = buf_of[x];
                bufs[buf_of[x]].last = end;
                break;
            }
        }
        if (buf_of[n->out] < 0) {
            buf_of[n->out] = nb;
            bufs[nb++] = (MpBuffer){bytes, first[n->out] < i ? first[n->out] : i, end, 0};
        }
    }
    if (ok && !p->reuse) {  /* one region after the other, in node order */
        for (int32_t b = 0; b < nb; b++) {
            bufs[b].offset = p->ws_bytes;
            p->ws_bytes += (bufs[b].size + PLAN_ALIGN - 1) / PLAN_ALIGN * PLAN_ALIGN;
        }
    } else if (ok) {
        p->ws_bytes = mp_plan(bufs, nb, PLAN_ALIGN);
    }
    if (ok) p->lower_bound = mp_lower_bound(bufs, nb, PLAN_ALIGN);
    if (ok && p->ws_bytes > PLAN_MAX_WS_BYTES) {
        snprintf(err, errlen, "the workspace needs more than %lld bytes at a batch of %d", (long long)PLAN_MAX_WS_BYTES,
                 p->max_batch);
        ok = false;
    }
    for (int32_t v = 0; ok && v < g->n_values; v++) p->ws_offset[v] = buf_of[v] >= 0 ? bufs[buf_of[v]].offset : -1;
    for (int32_t i = 0; ok && i < g->n_nodes; i++) p->scratch_off[i] = scratch_buf[i] >= 0 ? bufs[scratch_buf[i]].offset : -1;
    free(last), free(buf_of), free(first), free(scratch_buf), free(aliased), free(bufs);
    return ok;
}

bool pass_plan_memory(IrGraph *g, int max_batch, bool reuse, char *err, size_t errlen)
{
    Arena *a = &g->arena;
    size_t nv = (size_t)g->n_values + 1, nn = (size_t)g->n_nodes + 1;
    IrMemPlan *p = arena_alloc(a, sizeof *p);
    memset(p, 0, sizeof *p);
    p->max_batch = max_batch;
    p->reuse = reuse;
    p->is_const = arena_alloc(a, nv * sizeof *p->is_const);
    p->bound_out = arena_alloc(a, nv * sizeof *p->bound_out);
    p->root = arena_alloc(a, nv * sizeof *p->root);
    p->view_off = arena_alloc(a, nv * sizeof *p->view_off);
    p->ws_offset = arena_alloc(a, nv * sizeof *p->ws_offset);
    p->scratch_off = arena_alloc(a, nn * sizeof *p->scratch_off);
    g->plan = NULL;
    if (max_batch < 1) PM_FAIL("the maximum batch must be at least 1, not %d", max_batch);
    ir_mark_constants(g, p->is_const);
    bind_outputs(g, p);
    if (!bind_views(g, p, err, errlen) || !plan_workspace(g, p, err, errlen)) return false;
    g->plan = p;
    return true;
}
