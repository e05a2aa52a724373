/* nnc_internal.h: what the files of the public API (include/nnc/nnc.h:
 * compile.c, diagnostics.c, inspect.c, nnc.c) share, and what the nnc
 * command line shares with them below the surface, so that `nnc run` loads a
 * model the way nnc_load does instead of repeating it.
 *
 * A model owns its graph; the frontend's arena (AST, source text) is freed as
 * soon as the graph exists, since the graph keeps copies of what it needs.
 * An instance owns the loaded generated code (runtime/jit.h) and the
 * generated model's own instance.
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
#include "frontend/diag.h"
#include "frontend/frontend.h"
#include "ir/ir.h"
#include "runtime/jit.h"

/* One setting of a network's train section (frontend.h FeTrainSetting),
 * copied: flag as `nnc train` spells it ("--lr"), value or NULL. */
typedef struct NncSetting {
    char *flag, *value;
} NncSetting;

struct nnc_model {
    IrGraph *g;      /* checked, through the pipeline of its mode */
    int max_batch;   /* the options' (>= 1): the pipeline's batch, and load's and emit's default */
    nnc_mode mode;
    NncSetting *train;  /* NNC_TRAINING: the train section's settings (nnc_train.c reads them), or NULL */
    int n_train;
};

struct nnc_instance {
    RtModel so;      /* the loaded generated code */
    void *m;         /* its instance */
};

/* The train section of the network fe picks in the main source (path, and
 * text or NULL: the file), copied into *out (api/train_settings.c); false
 * after reporting a positioned error to d. nnc_settings_free releases them. */
bool nnc_train_settings_read(const char *path, const char *text, size_t len, const FeOptions *fe, Diag *d,
                             NncSetting **out, int *n);
void nnc_settings_free(NncSetting *s, int n);

/* The diagnostics list of d's messages (api/diagnostics.c); d is only read. */
nnc_diagnostics *nnc_diagnostics_from(const Diag *d);

enum { NNC_LOAD_EMIT = -1, NNC_LOAD_CC = -2, NNC_LOAD_CREATE = -3 };

int nnc_load_graph(IrGraph *g, const CgOptions *o, const char *weights, nnc_instance **out, char **error);
/* The same with the bytes of a safetensors file in memory (not kept after it returns). */
int nnc_load_graph_memory(IrGraph *g, const CgOptions *o, const void *weights, size_t size, nnc_instance **out,
                          char **error);

/* Makes g's memory plan (passes/plan_memory.h) the one for o's batch and
 * reuse, planning again when the pipeline planned for other ones. */
bool nnc_plan_for(IrGraph *g, const CgOptions *o, char *err, size_t errlen);

/* Installs hook on an instance whose code was generated with CgOptions.profile
 * (PREFIX_set_profile_hook, prefix the network's C prefix). False when the
 * code has no such function. */
bool nnc_instance_set_profile_hook(nnc_instance *inst, const char *prefix, void (*hook)(void *ctx, int node), void *ctx);

#endif
