/* train.h: `nnc train` and `nnc eval` (tools/train.c). The initial weights
 * they share with `nnc init` and the training API: api/init_weights.h.
 *
 * tools/nnc.c dispatches `nnc train ...` and `nnc eval ...` here with argv
 * starting at the command word. The training module is generated from the
 * model (codegen/emit_train.h) and driven through runtime/train_abi.h; a test
 * can hand in a module's source instead (TrainSource), so the driver is
 * tested independently of the generator. */
#ifndef NNC_TOOLS_TRAIN_H
#define NNC_TOOLS_TRAIN_H

#include "ir/ir.h"
#include "runtime/tensor_io.h"

#include <stdint.h>

/* A training module given as source text (runtime/train_abi.h entry points
 * named PREFIX_train_*), used instead of generating one from the model. */
typedef struct TrainSource {
    const char *c_src;        /* the module's C source */
    const char *h_src;        /* the header it #includes */
    const char *header_name;  /* that header's file name ("tiny_train.h") */
    const char *prefix;       /* PREFIX of its entry points */
} TrainSource;

/* `nnc train ARGS` and `nnc eval ARGS`: argv[0] is the command word, the
 * options follow. Returns the exit status: 0 success, 1 an error in the
 * input (model, data, weights, checkpoint, a diverging loss), 2 a wrong
 * command line. src NULL: generate the module from the model. */
int train_main(int argc, char **argv, const TrainSource *src);

/* `nnc bench ARGS` (tools/bench.c): argv[0] is "bench". Exit status as train_main. */
int bench_main(int argc, char **argv);

/* A fresh, empty temporary file $TMPDIR/nnc-WHAT-PID-XXXXXX (common.h's
 * temporaries), tracked for removal on a fatal signal (*slot, for
 * nnc_tmp_untrack); leftovers of killed runs are swept first. False after
 * saying why on standard error. */
bool tool_temp_path(char *path, size_t len, const char *what, int *slot);
int eval_main(int argc, char **argv, const TrainSource *src);

/* A whole number in [lo, hi] written alone in s (the CLI's numeric options); false otherwise. */
bool cli_parse_long(const char *s, long lo, long hi, long *out);

#endif
