/* train_internal.h: what the three files of `nnc train` and `nnc eval` share
 * (tools/train.c: the model, data and module, the loop and the commands;
 * train_args.c: the command line and the train section; train_ckpt.c:
 * checkpoints, their metadata and fingerprint, --out). See train.c for the
 * steps of a run. Nothing here is used outside tools/. */
#ifndef NNC_TOOLS_TRAIN_INTERNAL_H
#define NNC_TOOLS_TRAIN_INTERNAL_H

#include "tools/train.h"

#include "common/common.h"
#include "frontend/frontend.h"
#include "ir/ir.h"
#include "runtime/data.h"
#include "runtime/jit.h"
#include "runtime/snippets/optim.c"
#include "runtime/tensor_io.h"
#include "runtime/train_abi.h"

#include <stdbool.h>

enum {
    TR_MAX_LIST = 32,        /* --set, --freeze, multistep milestones */
    TR_MAX_SETTINGS = 24,    /* entries of the fingerprint */
    TR_ERR = 8192,           /* error buffers (compiler messages can be long) */
};

/* ---- the command line (train_args.c) ---- */

typedef struct TrainArgs {
    const char *cmd;                 /* "train" or "eval", for messages */
    bool eval;                       /* nnc eval */
    const char *model, *data, *weights, *out, *checkpoint, *log;
    FeOptions fe;                    /* --network, --set */
    FeDefine defines[TR_MAX_LIST];
    long epochs, batch, warmup;
    const char *optimizer;           /* sgd, adam, adamw */
    const char *loss;                /* cross-entropy, bce, mse */
    RtTrainConfig cfg;               /* optimizer settings, label smoothing, seed */
    double lr;
    bool weight_decay_set, momentum_set;
    const char *schedule;            /* as given */
    nnc_lr_schedule sched;
    long milestones[TR_MAX_LIST];
    bool resume, no_shuffle;
    bool no_prefetch;                /* --no-prefetch: batches made between the steps, not beside them */
    const char *normalize, *augment; /* as given (NULL: none) */
    DtOptions dopt;                  /* shuffle, seed, normalize, augment */
    const char *freeze[TR_MAX_LIST];
    int n_freeze;
    char *kept[TR_MAX_LIST];         /* copies of the train section's values, freed by free_args */
    int n_kept;
    const char *at;                  /* while the train section is applied: where the setting stands */
    char *model_text;                /* the model's source, read once (a pipe cannot be read twice); freed by free_args */
    size_t model_len;
    struct {
        const char *flag;            /* an option the train section set ("--momentum") */
        char *at;                    /* "FILE:LINE:COL" of it (malloc'd) */
    } origin[TR_MAX_LIST];           /* cleared by the command line's own value */
    int n_origin;
} TrainArgs;

/* The command line into t: the model's train section first (its values
 * remembered with their FILE:LINE:COL), then the flags, then checked
 * together. Returns 0, or the exit status (2: a wrong command line, with a
 * message). free_args releases what t keeps. */
int parse_args(int argc, char **argv, TrainArgs *t);
void free_args(TrainArgs *t);

/* A wrong command line: "nnc CMD: message" and the usage hint; returns 2. */
int usage_error(const TrainArgs *t, const char *fmt, ...) NNC_PRINTF(2, 3);

/* ---- the module's tensor table (train.c) ---- */

/* One entry of the tensor table. */
typedef struct TableEntry {
    const char *name;
    int kind;
    RtTensor t;   /* name, rank, shape, data (the instance's) */
} TableEntry;

TableEntry table_entry(const RtTrainModule *m, void *inst, int i);
bool same_shape(const RtTensor *a, const RtTensor *b);
const char *shape_text(const RtTensor *t, char *buf, size_t len);  /* "[2, 3]" */

/* ---- checkpoints and --out (train_ckpt.c) ---- */

/* A file given to CMD's option what (--weights, --resume) that carries a
 * checksum is verified; false with a message when it is corrupted. */
bool train_verify_weights(const char *cmd, const char *what, const char *path);
/* --checkpoint after epochs_done epochs: every tensor, the step, the fingerprint. */
bool write_checkpoint(const TrainArgs *t, const IrGraph *g, const RtTrainModule *m, void *inst, long epochs_done);
/* --resume: the checkpoint verified and checked against this run, its tensors
 * and step restored; *start receives the first epoch to run. */
bool restore_checkpoint(const TrainArgs *t, const IrGraph *g, const RtTrainModule *m, void *inst, long batches,
                        long *start);
/* --out: the parameters and buffers, after epochs epochs. */
bool write_weights(const TrainArgs *t, const IrGraph *g, const RtTrainModule *m, void *inst, long epochs);

#endif
