/* nnc.c: the command-line driver.
 *
 *   nnc MODEL.net [-o OUT.c] [--emit=c|ir|dot] [-O0|-O1|-O2] [--batch N] ...
 *   nnc init MODEL.net --seed S -o WEIGHTS.safetensors
 *   nnc run MODEL.net --weights W.safetensors --input NAME=IN.npy ... [--output NAME=OUT.npy ...]
 *   nnc train MODEL.net --data KIND:PATH [options]        (tools/train.c)
 *   nnc eval MODEL.net --weights W --data KIND:PATH [--batch N]
 *
 * These forms are an interface: scripts outside this repository call them as
 * written. Exit status: 0 on success, 1 on a user error (with a message naming
 * the file, tensor or argument at fault), 2 on a misuse of the command line.
 *
 * This file is main: it dispatches the command, and holds the model loading
 * (front end and passes) that compile, init and run start with. The rest:
 * nnc_usage.c (--help), nnc_args.c (the command line), nnc_compile.c (compile
 * and init), nnc_run.c (run), train.c, train_args.c, train_ckpt.c (train and
 * eval), bench.c (bench). */
#include "tools/nnc_internal.h"

#include "passes/passes.h"
#include "tools/train.h"
#include "runtime/jit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses and elaborates the model, runs the passes; prints diagnostics. */
IrGraph *cli_load_model(const Cli *c, Arena *arena) { return cli_load_model_files(c, arena, NULL, NULL); }

IrGraph *cli_load_model_files(const Cli *c, Arena *arena, const char ***files, int *n_files)
{
    Diag d;
    diag_init(&d, arena);
    IrGraph *g = fe_compile(c->model, &c->fe, &d);
    fputs(d.out.data ? d.out.data : "", stderr);
    if (files) {  /* the SrcFiles live in the arena; the array of them does not */
        *files = arena_alloc(arena, (size_t)(d.n_files ? d.n_files : 1) * sizeof **files);
        for (int i = 0; i < d.n_files; i++) (*files)[i] = d.files[i]->path;
        *n_files = d.n_files;
    }
    diag_free(&d);
    if (!g) return NULL;
    char err[512];
    StrBuf dump = {0};
    bool ok = strcmp(c->emit, "train") == 0  /* batch statistics and dropout masks: the training forms */
                  ? pass_run_training_pipeline(g, c->opt_level, c->batch, c->print_after, &dump, err, sizeof err)
                  : pass_run_pipeline_batch(g, c->opt_level, c->batch, c->print_after, &dump, err, sizeof err);
    fputs(dump.data ? dump.data : "", stderr);
    sb_free(&dump);
    if (!ok) {
        fprintf(stderr, "nnc: internal error after a pass: %s\n", err);
        ir_free(g);
        return NULL;
    }
    return g;
}

int main(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        cli_print_usage();
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        printf("nnc %s\njit: %s\n", NNC_VERSION, rt_jit_description());
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "train") == 0) return train_main(argc - 1, argv + 1, NULL);
    if (argc >= 2 && strcmp(argv[1], "eval") == 0) return eval_main(argc - 1, argv + 1, NULL);
    if (argc >= 2 && strcmp(argv[1], "bench") == 0) return bench_main(argc - 1, argv + 1);
    Cli c;
    int rc = cli_parse_args(argc, argv, &c);
    if (rc == 0) {
        if (!c.cmd) rc = cmd_compile(&c);
        else if (strcmp(c.cmd, "init") == 0) rc = cmd_init(&c);
        else rc = cmd_run(&c);
    }
    for (int i = 0; i < c.fe.n_defines; i++) free((char *)c.defines[i].name);
    return rc;
}
