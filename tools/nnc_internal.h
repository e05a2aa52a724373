/* nnc_internal.h: what the files of the nnc command line share (tools/nnc.c:
 * main and the model loading every command starts with; nnc_usage.c: the
 * --help text; nnc_args.c: the command line into a Cli; nnc_compile.c:
 * `nnc MODEL.net` and `nnc init`; nnc_run.c: `nnc run`). `nnc train`, `nnc
 * eval` and `nnc bench` have their own files and arguments (tools/train.h).
 * Nothing here is used outside tools/. */
#ifndef NNC_TOOLS_NNC_INTERNAL_H
#define NNC_TOOLS_NNC_INTERNAL_H

#include "common/common.h"
#include "frontend/frontend.h"
#include "ir/ir.h"

#include <stdbool.h>
#include <stdint.h>

/* The command line of compile, init and run (nnc_args.c). */
typedef struct {
    const char *cmd;        /* NULL (compile), "init", "run" */
    const char *model;
    const char *out;
    const char *emit;
    int opt_level;
    int batch;
    bool stats;
    const char *print_after;  /* --print-after=PASS */
    FeOptions fe;
    FeDefine defines[32];
    uint64_t seed;
    const char *weights;
    const char *inputs[16], *outputs[16];
    int n_inputs, n_outputs;
    long limit;
    const char *labels;
    const char *depfile;        /* --depfile FILE: OUT: MAIN.net IMPORTS... [WEIGHTS] (make syntax) */
    const char *embed_weights;  /* --embed-weights W.safetensors: OUT_weights.S and PREFIX_create_embedded */
    const char *check_weights;  /* --check-weights W.safetensors: checked, and listed by --depfile, only */
} Cli;

/* ---- the --help text (nnc_usage.c) ---- */

void cli_print_usage(void);   /* to standard output */

/* ---- the command line (nnc_args.c) ---- */

/* Prints "nnc: " fmt (with arg) and the pointer to --help on standard error; returns 2. */
int cli_fail_usage(const char *fmt, const char *arg);

/* argv into *c (argv[1] may be "init" or "run"). Returns 0, or 2 after
 * saying what is wrong. Free c->defines[i].name when done. */
int cli_parse_args(int argc, char **argv, Cli *c);

/* ---- the commands ---- */

/* Parses and elaborates the model, runs the passes; prints diagnostics (nnc.c). */
IrGraph *cli_load_model(const Cli *c, Arena *arena);
/* The same, and *files (in the arena) gets the path of every file the front
 * end read, the main file first, imports as resolved (for --depfile). */
IrGraph *cli_load_model_files(const Cli *c, Arena *arena, const char ***files, int *n_files);

int cmd_compile(const Cli *c);   /* nnc MODEL.net (nnc_compile.c) */

/* ---- --depfile and --embed-weights (nnc_outputs.c) ---- */

/* Writes "OUT: FILES... [WEIGHTS]" (make syntax, absolute paths) to depfile,
 * atomically; 0, or 1 after a message. */
int cli_write_depfile(const char *depfile, const char *out, const char *const *files, int n_files,
                      const char *weights);
/* Checks the safetensors file at path against g's parameters (names, shapes);
 * 0, or 1 after messages naming the path. */
int cli_check_weights(const char *path, const IrGraph *g);
/* Appends PREFIX_create_embedded to the generated source and header (the
 * header's PREFIX_create tells PREFIX and the arguments) and writes into
 * asm_src the .S that links the weights in; 0, or 1 after a message. */
int cli_add_embedded(StrBuf *c_src, StrBuf *h_src, const char *weights, StrBuf *asm_src);
int cmd_init(const Cli *c);      /* nnc init (nnc_compile.c) */
int cmd_run(const Cli *c);       /* nnc run (nnc_run.c) */

#endif
