/* cgen.c: the text helpers and the call builder of the one walk (cgen.h),
 * and the kernels' scratch needs. */
#include "cgen.h"
#include "../passes/plan_memory.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ----------------------------------------------------------------- text ---- */

const char *cg_commentable(Arena *a, const char *s)
{
    StrBuf b = {0};
    cg_append_comment(&b, s);
    const char *r = arena_strdup(a, b.data ? b.data : "");
    sb_free(&b);
    return r;
}

const char *cg_float_literal(Arena *a, float f)
{
    char buf[48];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if (strtof(buf, NULL) == f) break;
    }
    if (!strpbrk(buf, ".e")) strcat(buf, ".0");
    return arena_printf(a, "%sf", buf);
}

const char *cg_dims(Arena *a, const IrShape *s)
{
    char buf[128];
    return arena_strdup(a, ir_shape_str(s, buf, sizeof buf));
}

const char *cg_batched_dims(Arena *a, const IrShape *s)
{
    StrBuf b = {0};
    sb_append(&b, "[n]");
    for (int i = 0; i < s->rank; i++) sb_printf(&b, "[%lld]", (long long)s->dim[i]);
    const char *r = arena_strdup(a, b.data);
    sb_free(&b);
    return r;
}

void cg_pad(StrBuf *b, size_t have, size_t want)
{
    for (; have < want; have++) sb_append(b, " ");
}

long long cg_elems_from(const IrShape *s, int from)
{
    long long e = 1;
    for (int i = from; i < s->rank; i++) e *= s->dim[i];
    return e;
}

bool cg_finite(CgEmit *cx, const IrNode *n, const char *what, float f)
{
    if (isfinite(f)) return true;
    CG_FAIL(cx, "%s: %s is %g, which is not a finite number", ir_ops[n->op].name, what, (double)f);
}

void cg_put_template(StrBuf *out, const char *text, const char *prefix, const char *upper)
{
    for (const char *p = text; *p; p++) {
        if (p[0] == '$' && (p[1] == 'p' || p[1] == 'P')) {
            sb_append(out, p[1] == 'p' ? prefix : upper);
            p++;
        } else {
            sb_appendn(out, p, 1);
        }
    }
}

const char *cg_node_origin(Arena *a, const IrNode *n)
{
    StrBuf b = {0}, safe = {0};
    sb_append(&b, ir_ops[n->op].name);
    if (n->scope) sb_printf(&b, " %s", n->scope);
    if (n->loc.file) sb_printf(&b, " @ %s:%d:%d", n->loc.file, n->loc.line, n->loc.col);
    cg_append_comment(&safe, b.data);
    const char *r = arena_strdup(a, safe.data ? safe.data : "");
    sb_free(&b);
    sb_free(&safe);
    return r;
}

const char *cg_act_macro(ActKind act)
{
    static const char *const macro[ACT_COUNT] = {
        [ACT_NONE] = "NNC_ACT_NONE",
#define CG_ACT_MACRO(id, nm, from, slope, fwd, gif, grad) [ACT_##id] = "NNC_ACT_" #id,
        NNC_ACTIVATIONS(CG_ACT_MACRO)
#undef CG_ACT_MACRO
    };
    return macro[act];
}

/* ------------------------------------------------------- kernel calls ---- */

void cg_need(CgEmit *cx, const char *section)
{
    const char *s = arena_printf(cx->arena, "%s", section);
    for (int i = 0; i < cx->n_sections; i++)
        if (strcmp(cx->sections[i], s) == 0) return;
    NNC_ASSERT(cx->n_sections < CG_MAX_SECTIONS);
    cx->sections[cx->n_sections++] = s;
}

void cg_line(CgEmit *cx, const char *fmt, ...)
{
    va_list ap;
    cg_pad(cx->body, 0, (size_t)cx->indent);
    va_start(ap, fmt);
    sb_vprintf(cx->body, fmt, ap);
    va_end(ap);
    sb_append(cx->body, "\n");
}

void cg_call_begin(CgEmit *cx, const char *kernel)
{
    cx->call_fn = arena_printf(cx->arena, "%s%s", cx->d->kernel_prefix, kernel);
    cx->n_call = 0;
}

void cg_arg(CgEmit *cx, const char *comment, const char *fmt, ...)
{
    StrBuf b = {0};
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(&b, fmt, ap);
    va_end(ap);
    NNC_ASSERT(cx->n_call < CG_MAX_CALL_LINES);
    cx->call[cx->n_call].code = arena_strdup(cx->arena, b.data);
    cx->call[cx->n_call].comment = comment ? cg_commentable(cx->arena, comment) : NULL;
    cx->n_call++;
    sb_free(&b);
}

/* Writes the call: one argument line under the other, comments in one column. */
void cg_call_end(CgEmit *cx)
{
    const char *open = cx->d->launch_open(cx->arena, cx->call_fn), *close = cx->d->launch_close;
    size_t indent = (size_t)cx->indent + strlen(open), width = 0;
    for (int i = 0; i < cx->n_call; i++) {
        size_t w = indent + strlen(cx->call[i].code) + (i + 1 < cx->n_call ? 1 : strlen(close));
        if (cx->call[i].comment && w > width) width = w;
    }
    for (int i = 0; i < cx->n_call; i++) {
        const CgArgLine *l = &cx->call[i];
        size_t start = cx->body->len;
        cg_pad(cx->body, 0, (size_t)cx->indent);
        if (i == 0) sb_append(cx->body, open);
        else cg_pad(cx->body, (size_t)cx->indent, indent);
        sb_printf(cx->body, "%s%s", l->code, i + 1 < cx->n_call ? "," : close);
        if (l->comment) {
            cg_pad(cx->body, cx->body->len - start, width + 2);
            sb_printf(cx->body, "/* %s */", l->comment);
        }
        sb_append(cx->body, "\n");
    }
}

void cg_scratch_check(CgEmit *cx, const char *call, int64_t floats)
{
    for (int i = 0; i < cx->n_checks; i++)
        if (strcmp(cx->checks[i].call, call) == 0) return;
    if (cx->n_checks == cx->cap_checks) {
        int cap = cx->cap_checks ? 2 * cx->cap_checks : 16;
        CgScratchCheck *c = arena_alloc(cx->arena, (size_t)cap * sizeof *c);
        if (cx->n_checks) memcpy(c, cx->checks, (size_t)cx->n_checks * sizeof *c);
        cx->checks = c, cx->cap_checks = cap;
    }
    cx->checks[cx->n_checks++] = (CgScratchCheck){call, floats};
}

const char *cg_in(CgEmit *cx, const IrNode *n, int i) { return cx->cname[ir_in(cx->g, n, i)]; }
const char *cg_out(CgEmit *cx, const IrNode *n) { return cx->cname[n->out]; }

const char *cg_label(CgEmit *cx, int32_t v)
{
    const IrValue *val = &cx->g->values[v];
    if (val->kind == VK_PARAM) return val->name;
    if (cx->is_const && cx->is_const[v]) {  /* "bn_fold_weight(conv1.weight)" */
        const IrNode *n = &cx->g->nodes[val->node];
        return arena_printf(cx->arena, "%s(%s)", ir_ops[n->op].name, cg_label(cx, ir_in(cx->g, n, 0)));
    }
    if (val->kind == VK_INPUT) return arena_printf(cx->arena, "input %s %s", val->name, cg_dims(cx->arena, &val->shape));
    return cg_dims(cx->arena, &val->shape);
}

const char *cg_count(CgEmit *cx, int32_t v)
{
    return arena_printf(cx->arena, "(size_t)n * %lld", (long long)ir_value_elems(&cx->g->values[v]));
}

long long cg_stride(CgEmit *cx, int32_t v) { return cx->stride[v]; }

/* ------------------------------------------------------ scratch needs ---- */

const char *cg_scratch_call(Arena *a, const IrGraph *g, const IrNode *n, int max_batch)
{
    const ConvAttr *c = &n->attr.conv;
    const IrShape *x = ir_in_shape(g, n, 0), *y = &g->values[n->out].shape;
    if (n->op == OP_CONV_T2D)
        return arena_printf(a, "nnc_conv_transpose2d_scratch(%lld, %lld, %d, %d, %d, %d)", cg_dim(x, 1), cg_dim(x, 2),
                            c->out_channels, c->kh, c->kw, c->groups);
    if (n->op == OP_DWPW && n->attr.dwpw.pw.packed)
        return arena_printf(a, "nnc_dwpw_packed_scratch(%d, %lld, %lld, %lld, %lld, %d)", max_batch, cg_dim(x, 0),
                            cg_dim(y, 0), cg_dim(y, 1), cg_dim(y, 2), plan_dwpw_tile(g, n));
    if (n->op == OP_DWPW)
        return arena_printf(a, "nnc_dwpw_scratch(%lld, %lld, %d)", cg_dim(x, 0), cg_dim(y, 2), plan_dwpw_tile(g, n));
    if (c->winograd) return arena_printf(a, "nnc_conv2d_winograd_scratch(%lld)", cg_dim(x, 0));
    if (c->packed)
        return arena_printf(a, "nnc_conv2d_packed_scratch(%d, %lld, %lld, %lld, %d, %d, %d, %d, %d, %d, %d, %lld, %lld, %d)",
                            max_batch, cg_dim(x, 0), cg_dim(x, 1), cg_dim(x, 2), c->out_channels, c->kh, c->kw, c->sh,
                            c->sw, c->ph, c->pw, cg_dim(y, 1), cg_dim(y, 2), c->pro.on ? 1 : 0);
    return arena_printf(a, "nnc_conv2d_scratch(%d, %lld, %lld, %lld, %d, %d, %d, %d, %d, %d, %d, %lld, %lld, %d, %d)",
                        max_batch, cg_dim(x, 0), cg_dim(x, 1), cg_dim(x, 2), c->out_channels, c->kh, c->kw, c->sh,
                        c->sw, c->ph, c->pw, cg_dim(y, 1), cg_dim(y, 2), c->groups, c->pro.on ? 1 : 0);
}
