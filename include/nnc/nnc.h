/* nnc.h: the public C API of libnnc.
 *
 * Compile a network written in the nnc language, in process: parse and check
 * it, optimize it, and get the generated C source and header, or compile and
 * load it right away and run inference. Everything else under the source tree
 * (frontend/, ir/, passes/, codegen/, runtime/) is internal and may change;
 * this header is the stable surface.
 *
 *     nnc_model *m;
 *     char *diag;
 *     if (nnc_compile_file("models/lenet5.net", NULL, &m, &diag) != 0) {
 *         fputs(diag, stderr);            // FILE:LINE:COL: error: ... with caret
 *         free(diag);
 *         return 1;
 *     }
 *     nnc_instance *inst;
 *     if (nnc_load(m, "lenet5.safetensors", 8, &inst, &diag) != 0) { ... }
 *     const float *in[1] = {images};
 *     float *out[1] = {logits};
 *     nnc_forward(inst, 8, in, out);
 *     nnc_instance_free(inst);
 *     nnc_model_free(m);
 *
 * Strings returned through char ** are malloc'd and belong to the caller.
 * Functions return 0 on success and -1 on failure, with a message. There is
 * no global mutable state: separate models and instances may be used from
 * separate threads. */
#ifndef NNC_NNC_H
#define NNC_NNC_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nnc_model nnc_model;        /* a checked, optimized network */
typedef struct nnc_instance nnc_instance;  /* its generated code, compiled and loaded, with weights */

typedef struct {
    const char *network;        /* which network of the file; NULL: its only one */
    int opt_level;              /* 0, 1 or 2 (the default when the options are NULL) */
    const char *const *defines; /* "NAME=VALUE" overrides of network parameters */
    int n_defines;
} nnc_options;

/* Compiles the .net file at path (and what it imports). On failure returns -1
 * and sets *diagnostics to the messages, as the nnc command prints them. */
int nnc_compile_file(const char *path, const nnc_options *opt, nnc_model **out, char **diagnostics);

/* The same from text in memory; path names it in messages and anchors imports. */
int nnc_compile_string(const char *path, const char *text, const nnc_options *opt, nnc_model **out,
                       char **diagnostics);

void nnc_model_free(nnc_model *m);

/* The network's name, and its inputs and outputs in declaration order, with
 * their per-sample element counts (the batch is the leading dimension). */
const char *nnc_model_name(const nnc_model *m);
int nnc_model_inputs(const nnc_model *m);
int nnc_model_outputs(const nnc_model *m);
const char *nnc_model_input_name(const nnc_model *m, int i);
const char *nnc_model_output_name(const nnc_model *m, int i);
long long nnc_model_input_size(const nnc_model *m, int i);
long long nnc_model_output_size(const nnc_model *m, int i);

/* The IR as text (what --emit=ir prints). */
int nnc_emit_ir(const nnc_model *m, char **text);

/* The generated C source and header for at most max_batch samples per call;
 * header_name is how the source #includes the header ("lenet5.h"). */
int nnc_emit_c(const nnc_model *m, int max_batch, const char *header_name, char **c_source, char **header,
               char **error);

/* Generates, compiles (with the system C compiler, and OpenBLAS when nnc was
 * built with it) and loads the network for at most max_batch samples per
 * call, then creates an instance with the weights of a safetensors file. */
int nnc_load(const nnc_model *m, const char *weights_safetensors, int max_batch, nnc_instance **out, char **error);

/* Runs n samples (1 <= n <= max_batch): one pointer per input, then per
 * output, in declaration order. On failure, nnc_instance_error explains. */
int nnc_forward(nnc_instance *inst, int n, const float *const *inputs, float *const *outputs);
const char *nnc_instance_error(const nnc_instance *inst);
void nnc_instance_free(nnc_instance *inst);

/* ---- training ---- */
/* Training in process: a trainer holds the network's training module
 * (forward in training mode, loss, backward, optimizer update), compiled and
 * loaded like nnc_load's code, its weights and the optimizer's state, so a
 * program trains a network it compiled from a string:
 *
 *     nnc_trainer *tr;
 *     nnc_train_options o = {0};            // zeros: the network's train section, else the defaults
 *     o.optimizer = NNC_OPTIMIZER_SGD;
 *     o.momentum = 0.9;
 *     if (nnc_trainer_create(m, 32, &o, NULL, &tr, &err) != 0) { ... }   // NULL: fresh weights from o.seed
 *     for (int step = 0; step < steps; step++) {
 *         const float *in[1] = {images + step * 32 * 784};
 *         float loss;
 *         long correct;
 *         if (nnc_train_step(tr, 32, in, labels + step * 32, 0.05, &loss, &correct) != 0)
 *             fprintf(stderr, "%s\n", nnc_trainer_error(tr));
 *     }
 *     nnc_trainer_save_weights(tr, "trained.safetensors");   // nnc_load reads it
 *     nnc_trainer_free(tr);
 *
 * A trainable network has one input and, as its first output, one score per
 * class ([classes]; a single score is a binary classifier, trained with the
 * BCE or MSE loss); further outputs are auxiliary classifiers (GoogLeNet's),
 * whose losses count aux_weight each. Labels are int32 class indices in
 * [0, classes) ({0, 1} for one score). Semantics are PyTorch's (torch.optim.SGD,
 * Adam, AdamW; CrossEntropyLoss, BCEWithLogitsLoss, MSELoss against one-hot
 * labels); one step equals one step of `nnc train` with the same settings,
 * weights and batch, bit for bit. docs/api_training.md has a whole program. */
#include <stddef.h>
#include <stdint.h>

typedef struct nnc_trainer nnc_trainer;

typedef enum {
    NNC_OPTIMIZER_DEFAULT = 0,  /* the train section's, else SGD */
    NNC_OPTIMIZER_SGD,
    NNC_OPTIMIZER_ADAM,
    NNC_OPTIMIZER_ADAMW
} nnc_optimizer;

typedef enum {
    NNC_LOSS_DEFAULT = 0,       /* the train section's, else cross-entropy */
    NNC_LOSS_CROSS_ENTROPY,     /* softmax cross-entropy against class labels */
    NNC_LOSS_BCE,               /* binary cross-entropy with logits, one-hot targets */
    NNC_LOSS_MSE                /* mean squared error, one-hot targets */
} nnc_loss;

/* A zero field takes the value the network's train section gives (docs/training.md),
 * else the default after it; a negative number field means an explicit 0
 * (over a section that says otherwise). NULL options: all zero. */
typedef struct {
    nnc_optimizer optimizer;
    double momentum;            /* SGD; default 0; below 1 */
    int nesterov;               /* SGD with momentum > 0: 1 on, -1 off; default off */
    double beta1, beta2, eps;   /* Adam, AdamW; defaults 0.9, 0.999, 1e-8 */
    double weight_decay;        /* default 0 (AdamW: 0.01); SGD, Adam: L2 in the gradient; AdamW: decoupled */
    nnc_loss loss;
    double label_smoothing;     /* cross-entropy; default 0; at most 1 */
    double aux_weight;          /* the weight of auxiliary outputs' losses; default 0.3 */
    long long seed;             /* fresh weights and dropout masks; default 0 */
} nnc_train_options;

/* Compiles m for training (the network elaborated again, with the training
 * passes: batchnorm with batch statistics, dropout active) for at most
 * max_batch samples per step (0: the train section's batch, else 64), loads
 * it, and starts from the weights of a safetensors file (every parameter and
 * buffer by name, as nnc_load reads them) or, weights NULL, from fresh ones
 * as `nnc init --seed SEED` writes them. The optimizer's state starts at
 * zero. 0, or -1 with a message in *error (malloc'd; the caller frees it). */
int nnc_trainer_create(const nnc_model *m, int max_batch, const nnc_train_options *opt,
                       const char *weights_safetensors, nnc_trainer **out, char **error);

/* The same, starting from weights given as the bytes of a safetensors file
 * in memory (what nnc_trainer_weights returns); the buffer is not kept. */
int nnc_trainer_create_memory(const nnc_model *m, int max_batch, const nnc_train_options *opt, const void *weights,
                              size_t size, nnc_trainer **out, char **error);

/* One step on n samples (1 <= n <= max batch): one pointer per input (one
 * input: [n][...] floats), labels[n]; forward in training mode, mean loss,
 * backward, one optimizer update with learning rate lr. *loss receives the
 * batch's mean loss before the update, *correct how many samples the first
 * output classifies right (either may be NULL). A loss that is not finite
 * leaves the weights as they were and fails. 0, or -1 (nnc_trainer_error). */
int nnc_train_step(nnc_trainer *tr, int n, const float *const *inputs, const int32_t *labels, double lr,
                   float *loss, long *correct);

/* Forward in inference mode (running statistics, no dropout): loss and
 * correct count of n samples; nothing changes. */
int nnc_train_eval(nnc_trainer *tr, int n, const float *const *inputs, const int32_t *labels, float *loss,
                   long *correct);

long nnc_trainer_steps(const nnc_trainer *tr);      /* optimizer steps taken */
int nnc_trainer_max_batch(const nnc_trainer *tr);
double nnc_trainer_lr(const nnc_trainer *tr);       /* the train section's learning rate, else 0.01 */

/* The parameters and buffers now, as a safetensors file nnc_load reads,
 * written atomically (a crash leaves the previous file). */
int nnc_trainer_save_weights(nnc_trainer *tr, const char *path);

/* The same bytes in memory (*data malloc'd, the caller frees it), for
 * nnc_load_memory. */
int nnc_trainer_weights(nnc_trainer *tr, void **data, size_t *size);

/* The message of the last failure ("" before any). */
const char *nnc_trainer_error(const nnc_trainer *tr);
void nnc_trainer_free(nnc_trainer *tr);
/* ---- end of training ---- */

const char *nnc_version(void);

#ifdef __cplusplus
}
#endif
#endif
