/* nnc_internal.h: what the nnc command line shares with the public API
 * (include/nnc/nnc.h) below its surface, so that `nnc run` loads a model the
 * way nnc_load does instead of repeating it.
 *
 * nnc_load_graph is nnc_load for a graph the caller compiled itself (with its
 * own diagnostics, passes and --print-after) and code generator options of
 * its own (the source path named in the generated comments, no memory plan
 * below -O2). It returns 0, or the stage that failed, with a one-line message
 * in *error (malloc'd; the caller frees it): NNC_LOAD_EMIT (the code
 * generator refused the graph), NNC_LOAD_CC (compiling or loading the
 * generated code) or NNC_LOAD_CREATE (the generated create: the weights). The
 * graph is only read, and may be freed once the instance exists. */
#ifndef NNC_API_INTERNAL_H
#define NNC_API_INTERNAL_H

#include "nnc/nnc.h"

#include "codegen/emit_c.h"
#include "frontend/frontend.h"
#include "ir/ir.h"

enum { NNC_LOAD_EMIT = -1, NNC_LOAD_CC = -2, NNC_LOAD_CREATE = -3 };

int nnc_load_graph(IrGraph *g, const CgOptions *o, const char *weights, nnc_instance **out, char **error);

/* Makes g's memory plan (passes/plan_memory.h) the one for o's batch and
 * reuse, planning again when the pipeline planned for other ones. */
bool nnc_plan_for(IrGraph *g, const CgOptions *o, char *err, size_t errlen);

/* Installs hook on an instance whose code was generated with CgOptions.profile
 * (PREFIX_set_profile_hook, prefix the network's C prefix). False when the
 * code has no such function. */
bool nnc_instance_set_profile_hook(nnc_instance *inst, const char *prefix, void (*hook)(void *ctx, int node), void *ctx);

/* How a model was compiled, kept by the model (nnc.c) so that a trainer
 * (api/nnc_train.c) can elaborate the network again for training: the
 * training passes need batchnorm and dropout as the source wrote them, which
 * the inference pipeline has folded or removed, and the train section is
 * read from the text. Everything is owned (copies). */
typedef struct NncSource {
    char *path;        /* the file, or the name nnc_compile_string was given */
    char *text;        /* nnc_compile_string's text, or NULL: read path again */
    size_t len;
    char *network;     /* nnc_options.network, or NULL */
    FeDefine *defines; /* nnc_options.defines split at '=' (name and value owned) */
    int n_defines;
} NncSource;

/* Fills s from compile's arguments (api/nnc_source.c); nnc_source_free releases it. */
void nnc_source_keep(NncSource *s, const char *path, const char *text, const nnc_options *opt);
void nnc_source_free(NncSource *s);
const NncSource *nnc_model_source(const nnc_model *m);

#endif
