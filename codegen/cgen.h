/* cgen.h: the one code generator's walk, shared by the inference module
 * (emit_c.c) and the training module (emit_train.c). Codegen-internal.
 *
 * A module (inference or training) decides where every value lives and hands
 * the walk a CgEmit: the C expression of each value's data (and, training, of
 * its gradient), each value's batch stride, each node's scratch, and a
 * dialect. The walk emits one kernel call per op through the op's emitter
 * (ops.def EMIT column, ops_c.c) and, for training, the backward through its
 * gradient rule (GRAD column, grad_c.c). Whatever differs between a training
 * forward and an inference one is a property of that one emission: an op whose
 * TFWD column is TF_MODE (batchnorm, dropout) and a conv2d that sums batchnorm
 * statistics (ConvAttr.bn_stats) write both forms under `if (train)`.
 *
 * Everything target-specific is in the dialect (CgDialect, dialect_c.c): the
 * kernel prefix, the kernel library and includes pasted in, how a workspace
 * region is addressed, how memory is zeroed, and how a kernel is launched and
 * synchronized. C is the first dialect; docs/architecture.md says how a second
 * one (CUDA) plugs in. */
#ifndef NNC_CODEGEN_CGEN_H
#define NNC_CODEGEN_CGEN_H

#include "../ir/ir.h"
#include "cnames.h"

#include <stdbool.h>
#include <stddef.h>

enum {
    CG_MAX_BATCH = 1 << 16,    /* the largest compile-time batch, inference and training */
    CG_ALIGN = 64,             /* byte alignment of every workspace region */
    CG_MAX_SECTIONS = 96,      /* distinct kernel sections one module may paste */
    CG_MAX_CALL_LINES = 10,    /* argument lines of one kernel call */
};

typedef struct CgEmit CgEmit;

/* A target language of the C family (the shape of tinygrad's CStyleLanguage,
 * QBE's struct Target). The walk never writes a target-specific token itself. */
typedef struct CgDialect {
    const char *name;           /* "c" */
    const char *kernel_prefix;  /* "nnc_": kernel functions and their sections' names */
    const char *includes;       /* the #include lines of a generated source */
    /* The kernel library: appends the sections named (with their needs, in
     * library order) to out; false with a sentence in err. */
    bool (*library)(const char *const *sections, int n, StrBuf *out, char *err, size_t errlen);
    /* A float pointer to byte offset off of the workspace named ws: "(float *)(ws + 4096)". */
    const char *(*region)(Arena *a, const char *ws, long long off);
    /* A statement zeroing count elements of type at p: "memset(p, 0, count * sizeof(float));". */
    const char *(*zero)(Arena *a, const char *p, const char *count, const char *type);
    /* Where a call's text starts and ends: a host call "nnc_relu(" ... ");" in C; a
     * device dialect writes a launch with its configuration here. */
    const char *(*launch_open)(Arena *a, const char *fn);
    const char *launch_close;
    /* A statement that waits for every launched kernel ("" in C: calls are synchronous). */
    const char *sync;
    /* The scaffolding templates (runtime/snippets/module_*.c): where memory is
     * allocated, freed and copied in and out is the target's, so the dialect
     * names them. */
    const char *module_infer;  const size_t *module_infer_len;
    const char *module_train;  const size_t *module_train_len;
} CgDialect;

extern const CgDialect cg_dialect_c;

typedef struct {
    const char *code;     /* the arguments on this line, without the separator */
    const char *comment;  /* what they are, or NULL */
} CgArgLine;

/* A check create makes of a kernel's own scratch need against the plan. */
typedef struct {
    const char *call;     /* "nnc_conv2d_scratch(...)" */
    int64_t floats;       /* what the plan gave it */
} CgScratchCheck;

/* The training module's state the walk addresses (NULL in inference). */
typedef struct {
    const char **bn_mean, **bn_invstd;  /* per batchnorm node: where its batch mean and 1/std are saved */
    const char *stats;                  /* the sums a conv2d with bn_stats leaves for its batchnorm */
    const char *seed;                   /* dropout's seed */
    const char **drop_stream;           /* per dropout node: its stream position this step */
    const char *train;                  /* the run-time flag: training (1) or inference (0) mode */
    const char *dinput;                 /* the caller's gradient of the input, which may be NULL */
} CgTrainState;

struct CgEmit {
    const IrGraph *g;
    const CgDialect *d;
    Arena *arena;                 /* every string of the emission (the module's) */
    int max_batch;
    const char **cname;           /* per value: C expression of its data */
    const char **dname;           /* training, per value: of its gradient; NULL: not computed */
    const int64_t *stride;        /* per value: batch stride in floats */
    const bool *is_const;         /* per value: computed once at create, one "sample" */
    const int64_t *ws_offset;     /* per value: byte offset in the workspace, or -1 (NULL: none known) */
    const char **scratch;         /* per node: its scratch region, or NULL */
    const CgTrainState *tr;       /* training state, or NULL: an inference module */
    const char *ctx;              /* the kernels' context (instruction set, threads): "&m->ctx" */
    StrBuf *body;                 /* where statements go */
    int indent;                   /* spaces before a statement */
    const char *sections[CG_MAX_SECTIONS];  int n_sections;
    CgScratchCheck *checks;  int n_checks, cap_checks;
    const char *call_fn;          /* the call being built */
    CgArgLine call[CG_MAX_CALL_LINES];  int n_call;
    char *err; size_t errlen;
    unsigned bconv[4];            /* conv2d_blocked's tile instances: widths (bit nx) of AVX-512 tiles of 1 and 2
                                     blocks, of AVX2 tiles; strides (bit s); cg_bconv_defines */
};

#define CG_FAIL(cx, ...) do { snprintf((cx)->err, (cx)->errlen, __VA_ARGS__); return false; } while (0)

/* ---- cgen.c: text and calls ---- */
const char *cg_commentable(Arena *a, const char *s);
const char *cg_float_literal(Arena *a, float f);  /* the shortest literal that reads back as f: "1e-05f" */
const char *cg_dims(Arena *a, const IrShape *s);          /* "[6, 28, 28]" */
const char *cg_batched_dims(Arena *a, const IrShape *s);  /* "[n][6][28][28]" */
void cg_pad(StrBuf *b, size_t have, size_t want);
long long cg_elems_from(const IrShape *s, int from);      /* elements per sample from dimension from on */
static inline long long cg_dim(const IrShape *s, int i) { return (long long)s->dim[i]; }
bool cg_finite(CgEmit *cx, const IrNode *n, const char *what, float f);
void cg_need(CgEmit *cx, const char *section);            /* marks a kernel section for pasting */
void cg_bconv_defines(const CgEmit *cx, StrBuf *out);     /* conv2d_blocked's instances, before the kernels */
void cg_line(CgEmit *cx, const char *fmt, ...) NNC_PRINTF(2, 3);  /* one statement at the indent */
void cg_call_begin(CgEmit *cx, const char *kernel);       /* "conv2d": the dialect's prefix is added */
void cg_arg(CgEmit *cx, const char *comment, const char *fmt, ...) NNC_PRINTF(3, 4);
void cg_call_end(CgEmit *cx);
void cg_scratch_check(CgEmit *cx, const char *call, int64_t floats);
const char *cg_in(CgEmit *cx, const IrNode *n, int i);
const char *cg_out(CgEmit *cx, const IrNode *n);
const char *cg_label(CgEmit *cx, int32_t v);              /* a value for a comment */
const char *cg_count(CgEmit *cx, int32_t v);              /* "(size_t)n * 4704" */
long long cg_stride(CgEmit *cx, int32_t v);
/* "conv2d features.conv0 @ models/x.net:4:22": what a node is and where it came from. */
const char *cg_node_origin(Arena *a, const IrNode *n);
/* "NNC_ACT_RELU": the kernels' constant for an activation. */
const char *cg_act_macro(ActKind act);
/* Appends text with "$p" replaced by prefix and "$P" by upper. */
void cg_put_template(StrBuf *out, const char *text, const char *prefix, const char *upper);

/* The call "nnc_conv2d_scratch(...)" (or conv_transpose2d's, dwpw's) for node n at
 * batches up to max_batch: what create checks the planned scratch against
 * (passes/plan_memory.h plan_scratch_floats is the plan's side). */
const char *cg_scratch_call(Arena *a, const IrGraph *g, const IrNode *n, int max_batch);

/* ---- template.c: generated-module scaffolding (runtime/snippets/module_*.c) ---- */
typedef struct { const char *name; bool on; } CgFlag;
typedef struct { const char *name; const char *text; } CgFill;
typedef struct {
    const char *prefix, *upper;   /* what $p and $P stand for */
    const CgFlag *flags;  int n_flags;
    const CgFill *fills;  int n_fills;
} CgTemplate;
/* Appends part `part` of the template text to out: lines between
 * "/ * @if FLAG * /" (or "@if !FLAG") and "@else" / "@endif" kept as the flag
 * says, a "/ * @fill NAME * /" line replaced by that fill's text, $p and $P
 * replaced. An unknown flag or fill, or an unclosed @if, is an error. */
bool cg_template(Arena *a, const char *text, size_t len, const char *part, const CgTemplate *t, StrBuf *out,
                 char *err, size_t errlen);

/* ---- ops_c.c: the forward walk ---- */
/* Emits node n's forward: its comment, then its calls (both forms under the
 * training flag where they differ). */
bool cg_emit_forward(CgEmit *cx, const IrNode *n);

/* ---- grad_c.c: the backward walk ---- */
/* Whether op has a gradient rule (a graph with an op that has none cannot be trained). */
bool cg_has_gradient(OpKind op);
/* Emits node n's backward: the gradients of its inputs from its output's. */
void cg_emit_backward(CgEmit *cx, const IrNode *n);

#endif
