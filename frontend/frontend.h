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

typedef struct {
    const char *network;       /* which network of the main file, or NULL for its only one */
    const FeDefine *defines;   /* overrides of network parameters (--set NAME=VALUE) */
    int n_defines;
} FeOptions;

/* Compiles path into a graph, or returns NULL after reporting to d. */
IrGraph *fe_compile(const char *path, const FeOptions *opt, Diag *d);

/* Same, from text in memory (tests, the library API); imports resolve relative
 * to the directory of path. */
IrGraph *fe_compile_text(const char *path, const char *text, size_t len, const FeOptions *opt, Diag *d);

#endif
