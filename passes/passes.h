/* passes.h: the optimization pipeline.
 *
 * The pipeline reads as a list (pass.c): each -O level names the passes it
 * runs, in order; the verifier runs after every pass in builds without
 * NDEBUG; the memory plan (plan_memory.h) ends every inference pipeline. Each
 * pass file opens with its contract: what it requires of the graph and what
 * it keeps. */
#ifndef NNC_PASSES_H
#define NNC_PASSES_H

#include "../ir/ir.h"

typedef struct {
    const char *name;                                 /* for --print-after */
    int min_level;                                    /* runs at -O<min_level> and above */
    bool (*run)(IrGraph *g, char *err, size_t errlen);
    bool (*train)(IrGraph *g, char *err, size_t errlen);  /* its form for a training graph, or NULL: not run there */
} Pass;

/* Runs the passes of -O<level> on g in place, then plans its memory
 * (plan_memory.h, g->plan) for batches of up to 1 sample, with reuse at -O2.
 * False only for an internal error (a pass broke the graph), described in err. */
bool pass_run_pipeline(IrGraph *g, int level, char *err, size_t errlen);

/* The same, appending the IR (ir_print) to dump after each pass named
 * print_after ("all": after every pass that runs; NULL: none). */
bool pass_run_pipeline_dump(IrGraph *g, int level, const char *print_after, StrBuf *dump, char *err, size_t errlen);

/* The same, dumping as pass_run_pipeline_dump, with the plan for batches of up
 * to max_batch samples (what the code generator is asked for). */
bool pass_run_pipeline_batch(IrGraph *g, int level, int max_batch, const char *print_after, StrBuf *dump, char *err,
                             size_t errlen);

/* Runs the training form of the -O<level> passes (the Pass.train column) on
 * a graph that will be differentiated and trained: batchnorm keeps its batch
 * statistics and dropout its mask, so the clean-up passes apply (-O1 and up)
 * and fuse_bn_train (every level); then plans its memory for batches of up to
 * max_batch (plan_memory.h IrTrainPlan, g->train_plan). Dumps as
 * pass_run_pipeline_dump. */
bool pass_run_training_pipeline(IrGraph *g, int level, int max_batch, const char *print_after, StrBuf *dump,
                                char *err, size_t errlen);

/* Whether name is a pass of the pipeline (or "all"); for --print-after. */
bool pass_known(const char *name);
/* Appends the pipeline's pass names to out, ", "-separated, in order. */
void pass_list(StrBuf *out);

/* Identity and dropout removal (inference), common-subexpression elimination. */
bool pass_cleanup(IrGraph *g, char *err, size_t errlen);
/* The same for training: identity removal and CSE; dropout stays, neither
 * dropout nor batchnorm is merged, and a node that computes a graph output is
 * neither removed nor merged (each output keeps a node of its own). */
bool pass_cleanup_train(IrGraph *g, char *err, size_t errlen);

/* Training: conv2d -> batchnorm [-> activation] as a convolution that sums the
 * batchnorm's statistics and a batchnorm that applies the activation
 * (fuse_bn_train.c). */
bool pass_fuse_bn_train(IrGraph *g, char *err, size_t errlen);

/* The blocked channel layout NCHW16c for convolutions and the ops between
 * them, with reorders at the edges (layout_blocked.c). */
bool pass_layout_blocked(IrGraph *g, char *err, size_t errlen);

/* Dead-code elimination: keeps the nodes that outputs depend on. */
bool pass_dce(IrGraph *g, char *err, size_t errlen);
/* The same for training: every parameter stays (the weights files and the
 * initial weights cover them all), only dead nodes go. */
bool pass_dce_train(IrGraph *g, char *err, size_t errlen);

/* Number of kernels the C backend will call for g (nodes that are not leaves). */
int pass_count_kernels(const IrGraph *g);

/* Starts rebuilding g (how every pass rewrites: a new graph, filled in
 * order, so ids stay dense and nodes topological): a new graph with g's name,
 * source and inputs, and the parameters for which keep[value] is true (all
 * when keep is NULL), buffer flags kept. *map receives a new array with the
 * new id of every value copied so far and -1 for the rest; free it. */
IrGraph *pass_rebuild_begin(const IrGraph *g, const bool *keep, int32_t **map);

/* Copies node n of g into ng (a rebuild) with its inputs mapped through map;
 * returns the new value, or -1 with the shape rule's reason in err. */
int32_t pass_copy_node(IrGraph *ng, const IrGraph *g, const IrNode *n, const int32_t *map, char *err, size_t errlen);

/* Replaces the contents of dst by src's and frees the src shell. */
void pass_replace_graph(IrGraph *dst, IrGraph *src);

/* Ends a rebuild begun by pass_rebuild_begin: when ok, adds g's outputs to ng
 * (through map) and replaces g by ng; else frees ng. Frees map either way and
 * returns ok. */
bool pass_rebuild_end(IrGraph *g, IrGraph *ng, int32_t *map, bool ok);

/* Who reads what, for the fusion passes' "only this node reads it" rules. */
typedef struct {
    const IrGraph *g;
    int32_t *uses;      /* readers of each value, graph outputs counted (a node reading twice counts twice) */
    bool *is_out;       /* the value is a graph output */
    bool *is_const;     /* ir_mark_constants */
    int32_t *unstrided; /* reads that cannot take the value as a batch-strided view (ir_reads_strided) */
} PassReads;

void pass_reads_init(PassReads *r, const IrGraph *g);
void pass_reads_free(PassReads *r);
/* v has one reader, a node (so no graph output). */
static inline bool pass_sole_reader(const PassReads *r, int32_t v) { return r->uses[v] == 1 && !r->is_out[v]; }

#endif
