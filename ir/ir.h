/* ir.h: the graph IR.
 *
 * A graph owns two arrays: values (tensors) and nodes (ops). Everything refers
 * to everything else by 32-bit index, so the graph is cheap to copy, print and
 * verify (STYLE.md 4). Each node produces exactly one value; nodes are kept in
 * topological order (a node's inputs are produced by earlier nodes), because the
 * elaborator only ever appends a node after its inputs exist.
 *
 * Shapes are per sample: the batch dimension is implicit in every activation
 * (the batch size is a compile-time maximum, the actual n is given at run time).
 * Parameters (weights) have no batch dimension. Tensors are fp32; an
 * activation is NCHW, or NCHW16c where passes/layout_blocked.c chose the
 * blocked layout (IrValue.layout, ir_node_layout): its shape stays the logical
 * [C, H, W], its storage rounds C up to whole blocks (ir_value_elems).
 *
 * All memory of a graph comes from its arena and is released by ir_free(). */
#ifndef NNC_IR_H
#define NNC_IR_H

#include "../common/common.h"
#include "../runtime/snippets/activations.h"

#include <stdbool.h>

enum {
    IR_MAX_RANK = 4,                   /* per-sample rank: C,H,W (+1 spare) */
    IR_MAX_NODES = 1 << 16,            /* refuse graphs larger than this: the one node limit (the elaborator reports it) */
};
#define IR_MAX_ELEMS ((int64_t)1 << 31) /* per-sample element count bound */

/* The activation of an epilogue (Epilogue.act), one per row of
 * runtime/snippets/activations.h, in the order of the kernels' NNC_ACT_*
 * constants: the generated code passes act to the kernels as NNC_ACT_<ID>. */
typedef enum {
    ACT_NONE,
#define IR_ACT_ENUM(id, nm, from, slope, fwd, gif, grad) ACT_##id,
    NNC_ACTIVATIONS(IR_ACT_ENUM)
#undef IR_ACT_ENUM
    ACT_COUNT
} ActKind;

typedef enum {
#define OP(id, name, dsl, mn, mx, attr, act, inpl, bstr, tfwd, shape, macs, emit, grad) OP_##id,
#include "ops.def"
#undef OP
    OP_COUNT
} OpKind;

/* Batch strides (ops.def BSTR): which operands an op's kernel takes as a view
 * with a batch stride of its own. */
enum { BS_X = 1, BS_Y = 2 };

/* The forward of an op in a training module (ops.def TFWD). */
typedef enum {
    TF_SAME,  /* as in inference */
    TF_MODE,  /* different when training (batch statistics, a dropout mask): both forms, chosen at run time */
} TrainFwd;

typedef enum {
    AT_NONE, AT_CONV, AT_BN, AT_LINEAR, AT_ACT, AT_DROPOUT, AT_POOL, AT_ADAPTIVE, AT_LRN, AT_CONCAT, AT_DWPW, AT_SLICE,
    AT_REORDER
} AttrKind;

typedef enum { DT_F32 } DType;
/* How an activation's elements lie in memory. NCHW16c (runtime/snippets/
 * kernels_blocked.c): ceil(C/16) blocks of [H][W][16 channels], the lanes
 * past C zero. A value's layout follows from the node that makes it
 * (ir_node_layout), so every rebuild of the graph keeps it. */
typedef enum { LAYOUT_NCHW, LAYOUT_NCHW16C } Layout;
enum { IR_BLOCK = 16 };  /* channels per block of NCHW16c */

typedef enum {
    VK_ACT,    /* an activation computed by a node, batched */
    VK_INPUT,  /* a network input, batched */
    VK_PARAM,  /* a learned parameter or buffer (running mean/var), not batched */
} ValueKind;

typedef enum {
    INIT_NONE,            /* inputs and activations */
    INIT_KAIMING_UNIFORM, /* U(-b, b), b = 1/sqrt(fan_in): PyTorch's default for conv/linear weights */
    INIT_BIAS_UNIFORM,    /* U(-b, b), b = 1/sqrt(fan_in): PyTorch's default for conv/linear biases */
    INIT_ONES,            /* batchnorm weight, running_var */
    INIT_ZEROS,           /* batchnorm bias, running_mean */
} InitKind;

typedef struct {
    int rank;                  /* 1 (features) .. IR_MAX_RANK */
    int64_t dim[IR_MAX_RANK];  /* dim[0] is channels (or features) */
} IrShape;

/* Where in the DSL a node came from. Strings live in the frontend's source table. */
typedef struct {
    const char *file;  /* path as given by the user, or NULL for synthesized nodes */
    int line, col;     /* 1-based */
} IrLoc;

/* What a conv2d or linear does to its output before it stores it
 * (passes/fuse_epilogue.c): y = act(layer(x) + bias + residual). */
typedef struct {
    ActKind act;           /* applied last; ACT_NONE: none */
    float slope;           /* leaky_relu negative slope */
    bool residual;         /* one more input after the bias, of the output's shape, added before act */
    int act_channels;      /* conv2d: act only on output channels [0, act_channels); 0: on all
                            * (horizontally fused siblings, passes/fuse_siblings.c) */
} Epilogue;

/* What a conv2d or adaptive_avgpool2d does to its input before it reads it
 * (passes/fuse_prologue.c): x' = act(x * scale[c] + shift[c]) per input
 * channel c, scale and shift two more inputs after all others (ir_prologue_in).
 * It is a batchnorm and activation in front of the layer that cannot be folded
 * into its weights because the activation sits between (DenseNet's
 * BN-ReLU-Conv); the kernel applies it to each sample as it reads it. */
typedef struct {
    bool on;
    ActKind act;           /* ACT_NONE: the affine map alone */
    float slope;           /* leaky_relu negative slope */
} Prologue;

typedef struct {
    int kh, kw;            /* kernel size */
    int sh, sw;            /* stride */
    int ph, pw;            /* zero padding on each side */
    int dh, dw;            /* dilation */
    int oph, opw;          /* output padding (transposed convolution only) */
    int groups;
    int out_channels;
    bool bias;
    Epilogue epi;          /* conv2d and conv_transpose2d */
    Prologue pro;          /* conv2d only */
    bool bn_stats;         /* training (passes/fuse_bn_train.c): conv2d also sums, per output channel, what the
                            * batchnorm reading it needs for its batch statistics */
    bool packed;           /* inference (passes/pack_weights.c): the weight is a pack_weights node's output,
                            * in the micro-kernel's layout (conv2d with groups = 1 only) */
    bool winograd;         /* inference (passes/pack_weights.c): a 3x3 stride-1 conv2d whose weight is a
                            * winograd_weights node's output, run by Winograd's F(4x4, 3x3) */
    bool blocked;          /* inference (passes/layout_blocked.c): input, residual and output in NCHW16c;
                            * groups = 1 or depthwise; the weight a pack_blocked node's output once packed */
} ConvAttr;

typedef struct {
    int kh, kw, sh, sw, ph, pw, dh, dw;
    bool ceil_mode;          /* output size rounds up, as PyTorch's ceil_mode */
    bool count_include_pad;  /* avgpool divisor counts padding (PyTorch default: true) */
    bool blocked;            /* input and output in NCHW16c (passes/layout_blocked.c) */
} PoolAttr;

/* batchnorm (and eps of the folding ops). fused (training, passes/fuse_bn_train.c):
 * its batch statistics come from the conv2d before it (ConvAttr.bn_stats), and it
 * applies act (slope: leaky_relu's) to its output in the same pass. */
typedef struct { float eps, momentum; bool fused; ActKind act; float slope; } BnAttr;
typedef struct { int out_features; bool bias; Epilogue epi; } LinearAttr;
typedef struct { float slope; } ActAttr;        /* leaky_relu negative slope */
typedef struct { float p; } DropoutAttr;
typedef struct { int size; float alpha, beta, k; } LrnAttr;  /* PyTorch LocalResponseNorm */
typedef struct { int oh, ow; Prologue pro; } AdaptiveAttr;  /* adaptive pooling output size */
/* in_place (passes/concat_elim.c): the producers of the inputs write straight
 * into their slices of the output, so the node itself copies nothing; each
 * input is a view of the output with the output's batch stride. */
typedef struct { int axis; bool in_place; } ConcatAttr;  /* per-sample axis, 0 = channels */
/* A depthwise convolution followed by a 1x1 convolution, computed tile by tile
 * (passes/fuse_dwpw.c): inputs x, dw weight, [dw bias], pw weight, [pw bias],
 * [residual]. dw.epi.act is the activation between the two (no residual);
 * pw.epi is the epilogue of the whole. */
typedef struct { ConvAttr dw, pw; } DwPwAttr;
/* Channels [start, start + count) of a tensor (passes/fuse_siblings.c splits a
 * fused convolution's output with it); the generated code makes it a view. */
typedef struct { int start, count; } SliceAttr;
/* A reorder's target layout (its input is in the other one). */
typedef struct { Layout to; } ReorderAttr;

typedef union {
    ConvAttr conv;
    PoolAttr pool;
    BnAttr bn;
    LinearAttr linear;
    ActAttr act;
    DropoutAttr dropout;
    LrnAttr lrn;
    ConcatAttr concat;
    AdaptiveAttr adaptive;
    DwPwAttr dwpw;
    SliceAttr slice;
    ReorderAttr reorder;
} IrAttr;

typedef struct {
    IrShape shape;     /* per sample (activations, inputs) or whole (params) */
    DType dtype;
    Layout layout;
    ValueKind kind;
    int32_t node;      /* producing node, or -1 for inputs and params */
    const char *name;  /* params: hierarchical name ("conv1.weight"); inputs: DSL name; acts: NULL */
    InitKind init;     /* params only */
    bool buffer;       /* params only: state, not learned (running_mean/var); not in the param count */
    int64_t fan_in;    /* params with a uniform init */
} IrValue;

typedef struct {
    OpKind op;
    int32_t out;       /* the value this node produces */
    int32_t in_first;  /* first index into IrGraph.ins */
    int32_t n_in;      /* number of inputs */
    IrLoc loc;
    const char *scope; /* hierarchical name of the layer ("features.conv0"), or NULL */
    IrAttr attr;
} IrNode;

typedef struct {
    const char *name;  /* DSL output name */
    int32_t value;
} IrOutput;

typedef struct IrGraph {
    Arena arena;          /* everything below lives here */
    const char *name;     /* network name */
    const char *source;   /* path of the .net file it came from */
    IrLoc loc;            /* the network's declaration (file NULL for a graph built in code) */
    IrValue *values;  int32_t n_values, cap_values;
    IrNode  *nodes;   int32_t n_nodes,  cap_nodes;
    int32_t *ins;     int32_t n_ins,    cap_ins;      /* node input lists */
    int32_t *inputs;  int32_t n_inputs, cap_inputs;   /* input value ids, in declaration order */
    int32_t *params;  int32_t n_params, cap_params;   /* param value ids, in creation order */
    IrOutput *outputs; int32_t n_outputs, cap_outputs;
    struct IrMemPlan *plan;  /* the memory plan (passes/plan_memory.h), or NULL: not planned, or rewritten since */
    struct IrTrainPlan *train_plan;  /* a training graph's (the same header), or NULL */
    int max_batch;        /* the batch the pipeline compiles for (0: unknown, 1 assumed); passes may
                           * choose kernels by it (pack_weights: Winograd where the tiles suffice) */
} IrGraph;

/* One row of the op table, as data. */
typedef struct {
    const char *name;
    const char *dsl;   /* the DSL built-in that makes it, or NULL */
    int min_in, max_in;
    AttrKind attr;
    ActKind act;       /* as an epilogue activation (ACT_NONE: the op is not one) */
    bool in_place;     /* its kernel may write over an input that dies there */
    int strided;       /* BS_X | BS_Y: operands taken with a batch stride of their own */
    TrainFwd train_fwd;
    /* Computes node->out's shape from its inputs. On a mismatch writes a
     * sentence (no position; the caller adds it) to err and returns false. */
    bool (*shape)(const IrGraph *g, const IrNode *n, IrShape *out, char *err, size_t errlen);
    /* Multiply-accumulates per sample. */
    int64_t (*macs)(const IrGraph *g, const IrNode *n);
} OpInfo;

extern const OpInfo ir_ops[OP_COUNT];

IrGraph *ir_new(const char *name);
void     ir_free(IrGraph *g);

int32_t ir_add_input(IrGraph *g, const char *name, const IrShape *shape);
int32_t ir_add_param(IrGraph *g, const char *name, const IrShape *shape, InitKind init, int64_t fan_in);
/* Appends a node and infers its shape. Returns the new value's id, or -1 with
 * the reason in err when the shape rule refuses the inputs. */
int32_t ir_add_node(IrGraph *g, OpKind op, const int32_t *ins, int n_in, const IrAttr *attr,
                    IrLoc loc, const char *scope, char *err, size_t errlen);
void    ir_add_output(IrGraph *g, const char *name, int32_t value);

static inline const int32_t *ir_node_ins(const IrGraph *g, const IrNode *n) { return g->ins + n->in_first; }
static inline int32_t ir_in(const IrGraph *g, const IrNode *n, int i) { return g->ins[n->in_first + i]; }
static inline const IrShape *ir_in_shape(const IrGraph *g, const IrNode *n, int i)
{
    return &g->values[ir_in(g, n, i)].shape;
}

/* conv2d, conv_transpose2d, linear and dwpw take an epilogue (Epilogue); the other ops do not. */
static inline bool ir_takes_epilogue(OpKind op)
{
    return op == OP_CONV2D || op == OP_CONV_T2D || op == OP_LINEAR || op == OP_DWPW;
}
/* The epilogue of a conv2d, conv_transpose2d, linear or dwpw node, or NULL for any other op. */
static inline const Epilogue *ir_epilogue(const IrNode *n)
{
    return n->op == OP_CONV2D || n->op == OP_CONV_T2D ? &n->attr.conv.epi
           : n->op == OP_LINEAR ? &n->attr.linear.epi
           : n->op == OP_DWPW  ? &n->attr.dwpw.pw.epi
                                : NULL;
}
/* Whether a blocked conv2d reads its image in NCHW: a "stem", ungrouped,
 * of fewer than IR_BLOCK / 2 input channels made in NCHW (an RGB image),
 * which writes NCHW16c from NCHW (kernels_blocked.c nnc_conv2d_nchw_blocked,
 * its weight a pack_nchw_blocked node's) rather than pad its input to a
 * block. passes/layout_blocked.c decides; the image's layout says. */
static inline bool ir_conv_stem_blocked(const IrGraph *g, const IrNode *n)
{
    return n->op == OP_CONV2D && n->attr.conv.blocked && n->attr.conv.groups == 1 &&
           g->values[g->ins[n->in_first]].layout == LAYOUT_NCHW;
}
/* Whether a conv2d, conv_transpose2d or linear node has a bias input (input
 * 2); for dwpw, whether the pointwise part has one. */
static inline bool ir_has_bias(const IrNode *n)
{
    return n->op == OP_LINEAR ? n->attr.linear.bias : n->op == OP_DWPW ? n->attr.dwpw.pw.bias : n->attr.conv.bias;
}
/* The input index of a dwpw node's pointwise weight (its bias follows it when it has one). */
static inline int ir_dwpw_pw_in(const IrNode *n) { return 2 + n->attr.dwpw.dw.bias; }
/* The input index of a node's residual (after the weights and biases), or -1. */
static inline int ir_residual_in(const IrNode *n)
{
    const Epilogue *e = ir_epilogue(n);
    if (!e || !e->residual) return -1;
    return n->op == OP_DWPW ? ir_dwpw_pw_in(n) + 1 + n->attr.dwpw.pw.bias : 2 + ir_has_bias(n);
}
/* Whether node n is a view that runs no code: a slice, or a concat whose
 * inputs' producers wrote their slices of it (concat_elim.c). The code
 * generator and pass_count_kernels share this rule. */
static inline bool ir_is_view(const IrNode *n)
{
    return n->op == OP_SLICE || (n->op == OP_CONCAT && n->attr.concat.in_place);
}
/* The prologue of a conv2d or adaptive_avgpool2d node, or NULL for any other op. */
static inline const Prologue *ir_prologue(const IrNode *n)
{
    return n->op == OP_CONV2D ? &n->attr.conv.pro : n->op == OP_ADAPTIVE_AVGPOOL ? &n->attr.adaptive.pro : NULL;
}
/* The input index of a node's prologue scale (its shift follows), or -1: the
 * last two inputs. */
static inline int ir_prologue_in(const IrNode *n)
{
    const Prologue *p = ir_prologue(n);
    return p && p->on ? n->n_in - 2 : -1;
}
/* Batch strides (ops.def BSTR): whether node n reads its input j, or writes
 * its output, as a view with a batch stride of its own (a channel slice of a
 * larger tensor, concat_elim.c): the image of conv2d, the pools, batchnorm
 * and dwpw, and their outputs; a concat's output (its inputs are read whole);
 * the residual of a conv2d; a slice's input (a slice is a view itself).
 * Everything else (weights, elementwise ops, linear) reads and writes whole,
 * contiguous tensors. */
static inline bool ir_reads_strided(const IrNode *n, int j)
{
    if (n->op == OP_CONV2D && j == ir_residual_in(n)) return true;  /* nnc_conv2d's residual has a stride too */
    return j == 0 && (ir_ops[n->op].strided & BS_X);
}
static inline bool ir_writes_strided(const IrNode *n) { return (ir_ops[n->op].strided & BS_Y) != 0; }
/* "relu" for ACT_RELU: the name of the op whose ACT column is act; "none" for ACT_NONE. */
const char *ir_act_name(ActKind act);
/* What the backward of act reads (activations.h NNC_FROM_Y, _X, _XS); whether it takes a slope. */
int  ir_act_from(ActKind act);
bool ir_act_has_slope(ActKind act);
/* The op that applies act on its own (OP_RELU for ACT_RELU). */
OpKind ir_act_op(ActKind act);

int64_t ir_shape_elems(const IrShape *s);
/* Floats a value takes per sample (activations) or whole (parameters): its
 * shape's elements, C rounded up to whole blocks in NCHW16c. */
int64_t ir_value_elems(const IrValue *v);
/* The layout of the value node n makes: a reorder's target; NCHW16c for a
 * blocked conv2d or pool; an elementwise op's (activation, add, identity,
 * dropout) that of its first input; NCHW for everything else. */
Layout ir_node_layout(const IrGraph *g, const IrNode *n);
/* "nchw16c" / "nchw". */
const char *ir_layout_name(Layout l);
/* "[6, 28, 28]" into buf; returns buf. */
char   *ir_shape_str(const IrShape *s, char *buf, size_t len);

/* Marks, in is_const[0 .. n_values), the values that are constant: parameters,
 * and the values of nodes whose inputs are all constant (computed once, at
 * create, by the generated code; never batched). */
void ir_mark_constants(const IrGraph *g, bool *is_const);

/* Checks arity, topological order, shapes and dtypes against the op table.
 * Returns true when the graph is well formed; otherwise describes the first
 * problem in err. Run between passes in debug builds. */
bool ir_verify(const IrGraph *g, char *err, size_t errlen);

/* Text dump (--emit=ir) and Graphviz (--emit=dot). */
void ir_print(const IrGraph *g, StrBuf *out);
void ir_print_dot(const IrGraph *g, StrBuf *out);

/* Totals for --stats. */
int64_t ir_count_params(const IrGraph *g);  /* learnable parameter elements (buffers excluded), as PyTorch counts */
int64_t ir_count_macs(const IrGraph *g);    /* per sample */

#endif
