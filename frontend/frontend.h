/* frontend.h: from .net files to an IR graph.
 *
 * fe_compile() reads the main file and everything it imports, parses each with
 * the bison parser, and elaborates one network: blocks are called, loops and
 * conditions run at compile time, shapes are inferred as nodes are created, and
 * every parameter receives a stable hierarchical name. User errors go to the
 * Diag as positioned messages; the result is NULL when there was any. */
#ifndef NNC_FRONTEND_H
#define NNC_FRONTEND_H

#include "../ir/ir.h"
#include "diag.h"

typedef struct {
    const char *name;   /* network parameter */
    const char *value;  /* its value as DSL text: "5", "0.5", "true" */
} FeDefine;

/* What an import resolver hands back for one import (FeResolver). Its
 * strings need only live until the resolver is called again or the
 * compilation returns: the front end copies them. */
typedef struct {
    const char *name;  /* how messages name the file, and the importer of its own imports;
                        * NULL: the path the disk would be read at */
    const char *text;  /* the file's text */
    size_t len;        /* its length; 0: strlen(text) */
    const char *why;   /* on failure, the reason (NULL: "not found") */
} FeImport;

/* Asked for each file an import statement names: importer is the name of
 * the file holding the statement (the main file's path, or what the resolver
 * called it), import the name as written. Returns 0 with out filled, > 0 to
 * read it from disk as without a resolver, < 0 on failure (out->why), which
 * is reported at the import statement. */
typedef int (*FeResolver)(void *ctx, const char *importer, const char *import, FeImport *out);

typedef struct {
    const char *network;       /* which network of the main file, or NULL for its only one */
    const FeDefine *defines;   /* overrides of network parameters (--set NAME=VALUE) */
    int n_defines;
    FeResolver resolve;        /* NULL: imports are read from disk */
    void *resolve_ctx;         /* its first argument */
} FeOptions;

/* The largest .net file read (the main file and each import): generous for
 * a hand-written model (the zoo's largest is a few KiB), small enough that a
 * wrong path (/dev/zero, a data set) ends in an error and not in an
 * exhausted memory. */
#define FE_MAX_SOURCE_BYTES ((size_t)16 << 20)

/* The text of a .net file as fe_compile reads it (a regular file or a pipe,
 * at most FE_MAX_SOURCE_BYTES; NUL-terminated, free it), or NULL after
 * reporting to d. */
char *fe_read_source(const char *path, size_t *len, Diag *d);

/* Reports an error at path:line:col (an IrLoc: a node's place, after the
 * compilation's source table is gone) with its source line and caret, the
 * file read again (diag_at.c); path NULL: no position. */
void diag_error_at(Diag *d, const char *path, int line, int col, const char *fmt, ...) NNC_PRINTF(5, 6);
/* The same on standard error, on its own: msg at loc (a later stage's error). */
void fe_report_at(IrLoc loc, const char *msg);

/* Compiles path into a graph, or returns NULL after reporting to d. */
IrGraph *fe_compile(const char *path, const FeOptions *opt, Diag *d);

/* Same, from text in memory (tests, the library API); imports resolve relative
 * to the directory of path. */
IrGraph *fe_compile_text(const char *path, const char *text, size_t len, const FeOptions *opt, Diag *d);

/* One setting of a network's `train` section, as the `nnc train` option it
 * stands for: flag "--lr", value "0.002" (NULL for a flag without one,
 * "--nesterov"); loc is where the section says it. */
typedef struct {
    const char *flag;
    const char *value;
    Loc loc;
} FeTrainSetting;

/* The `train NAME { ... }` section of the network opt picks in path (the
 * main file's), its settings in order, into *out (allocated in d's arena);
 * none: *n = 0. Returns false after reporting a positioned error to d. The
 * section's vocabulary (docs/training.md):
 *     batch = 64   epochs = 10   seed = 1   warmup = 2
 *     optimizer = sgd(lr: 0.05, momentum: 0.9, weight_decay: 5e-4, nesterov: true)
 *               | adam(lr: 1e-3, weight_decay: 0) | adamw(...)
 *     loss = cross_entropy(logits, labels, label_smoothing: 0.1, aux_weight: 0.3)
 *          | bce_with_logits(logits, labels) | mse(logits, labels)
 *     schedule = constant | step(step_size: 30, gamma: 0.1)
 *              | multistep(milestones: [30, 60], gamma: 0.1) | cosine(eta_min: 0, warmup: 1)
 *     augment = [crop(4), flip, jitter(0.1)]   normalize = (0.5, 0.25) | ([m1, m2, m3], [s1, s2, s3]) */
bool fe_train_settings(const char *path, const FeOptions *opt, FeTrainSetting **out, int *n, Diag *d);

/* Same, from text in memory: a caller that also compiles the file reads it
 * once (a pipe, `nnc train <(...)`, cannot be read twice). */
bool fe_train_settings_text(const char *path, const char *text, size_t len, const FeOptions *opt,
                            FeTrainSetting **out, int *n, Diag *d);

#endif
