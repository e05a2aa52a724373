/* nnc.h: the public C API of libnnc.
 *
 * Compile a network written in the nnc language, in process: parse and check
 * it, optimize it, inspect its inputs, outputs and parameters, get the
 * generated C source and header, or compile and load it right away and run
 * it. Everything else under the source tree (frontend/, ir/, passes/,
 * codegen/, runtime/) is internal and may change; this header is the stable
 * surface. docs/api.md walks through it with a complete program.
 *
 *     nnc_source src = {.path = "models/lenet5.net"};
 *     nnc_model *m;
 *     nnc_diagnostics *diags;
 *     if (nnc_compile(&src, NULL, &m, &diags) != 0) {
 *         fputs(nnc_diagnostics_text(diags), stderr);  // FILE:LINE:COL: error: ... with caret
 *         nnc_diagnostics_free(diags);
 *         return 1;
 *     }
 *     nnc_diagnostics_free(diags);
 *     nnc_instance *inst;
 *     char *err;
 *     if (nnc_load(m, "lenet5.safetensors", 8, &inst, &err) != 0) { ... }
 *     const float *in[1] = {images};
 *     float *out[1] = {logits};
 *     nnc_forward(inst, 8, in, out);
 *     nnc_instance_free(inst);
 *     nnc_model_free(m);
 *
 * Conventions. Functions that can fail return 0 on success and -1 on
 * failure, with a message. Strings returned through char ** are malloc'd and
 * belong to the caller (free them); const char * results belong to the
 * object they came from and live as long as it. Every object has its _free,
 * which takes NULL. There is no global mutable state: separate models and
 * instances may be used from separate threads at once, each object from one
 * thread at a time (emitting or loading a model for another batch replans
 * its memory). */
#ifndef NNC_NNC_H
#define NNC_NNC_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nnc_model nnc_model;              /* a checked, optimized network */
typedef struct nnc_instance nnc_instance;        /* its generated code, compiled and loaded, with weights */
typedef struct nnc_diagnostics nnc_diagnostics;  /* the messages of one compilation */

/* ---- what to compile ---- */

/* A network's source: a file, or text in memory.
 *   {.path = "m.net"}                       reads m.net from disk;
 *   {.path = "m.net", .text = "network ..."} compiles the text; messages call it
 *                                           m.net and its imports resolve
 *                                           relative to m.net's directory;
 *   {.text = "network ..."}                 the same, named "<string>". */
typedef struct {
    const char *path;  /* the file, or the text's name (NULL with text: "<string>") */
    const char *text;  /* NULL: read path from disk */
    size_t length;     /* bytes of text; 0: strlen(text) */
} nnc_source;

/* What an import resolver answers for one import (nnc_import_resolver). The
 * strings need only stay valid until the resolver is called again or the
 * compilation returns: nnc copies them at once. */
typedef struct {
    const char *name;   /* how messages name the file; it is also the importer its own imports
                         * are asked for with, and files are imported once per name.
                         * NULL: the path the disk would use (the import relative to the importer's directory) */
    const char *text;   /* the file's text */
    size_t length;      /* bytes of text; 0: strlen(text) */
    const char *error;  /* on NNC_IMPORT_FAILED, why (NULL: "the import resolver did not find it") */
} nnc_import;

enum {
    NNC_IMPORT_FOUND = 0,      /* *out holds the file */
    NNC_IMPORT_FROM_DISK = 1,  /* not the resolver's: read the file from disk, as without a resolver */
    NNC_IMPORT_FAILED = -1     /* an error at the import statement, with out->error */
};

/* Asked for the text of each file an `import "NAME"` statement names, instead
 * of the disk: importer is the name of the file holding the statement (the
 * main source's path, or what the resolver named that file), import the
 * NAME as written. Returns one of NNC_IMPORT_*. It is called from the thread
 * that compiles, during nnc_compile only. */
typedef int (*nnc_import_resolver)(void *user, const char *importer, const char *import, nnc_import *out);

typedef enum {
    NNC_INFERENCE = 0,  /* forward only, batchnorm on running statistics: nnc_load, nnc_forward */
    NNC_TRAINING = 1    /* the training forms (batch statistics, dropout masks): the nnc_train_* functions,
                         * and nnc_emit_c gives the training module */
} nnc_mode;

/* Options of a compilation. NULL options mean the defaults: the file's only
 * network, -O2, no parameter overridden, a batch of 1, inference, the C
 * target, imports read from disk. A zero field means the same default,
 * except opt_level, whose 0 has meant -O0 since the first release (a stable
 * interface): set opt_level = 2 unless you want the graph unoptimized. Fields
 * may be added at the end; initialise with designated initialisers or zero
 * the struct. */
typedef struct {
    const char *network;        /* which network of the main file; NULL: its only one */
    int opt_level;              /* 0 (-O0: no pass, every parameter as the source declares it),
                                 * 1 (clean-up passes), 2 (everything); NULL options: 2 */
    const char *const *defines; /* "NAME=VALUE" overrides of network parameters (nnc --set) */
    int n_defines;
    int max_batch;              /* the most samples one call runs: the passes choose kernels for it,
                                 * and it is nnc_load's and nnc_emit_c's when they are given 0;
                                 * 0: 1 */
    nnc_mode mode;              /* NNC_INFERENCE (default) or NNC_TRAINING */
    const char *target;         /* what code is generated: "c" (NULL: "c"); any other is refused,
                                 * with the supported ones named */
    nnc_import_resolver resolve;  /* NULL: imports are read from disk */
    void *resolve_user;           /* its first argument */
} nnc_options;

/* ---- compiling ---- */

/* Compiles src (and what it imports) into *out. Returns 0, or -1 with *out
 * NULL. When diags is not NULL, *diags receives the messages of the
 * compilation in either case (on success, warnings if any; none today):
 * free it with nnc_diagnostics_free. */
int nnc_compile(const nnc_source *src, const nnc_options *opt, nnc_model **out, nnc_diagnostics **diags);

/* Compiles the .net file at path (and what it imports). On failure returns -1
 * and sets *diagnostics to the messages, as the nnc command prints them
 * (nnc_diagnostics_text); NULL on success. */
int nnc_compile_file(const char *path, const nnc_options *opt, nnc_model **out, char **diagnostics);

/* The same from text in memory; path names it in messages and anchors imports. */
int nnc_compile_string(const char *path, const char *text, const nnc_options *opt, nnc_model **out,
                       char **diagnostics);

void nnc_model_free(nnc_model *m);

/* ---- diagnostics ---- */

typedef enum { NNC_ERROR = 0, NNC_WARNING = 1, NNC_NOTE = 2 } nnc_severity;

/* One message. An error or warning carries its notes (the chain of block
 * calls that led to a shape error, the place a name was first defined); a
 * note has none. Strings are as nnc prints them: control bytes and invalid
 * UTF-8 appear as \xNN. They live as long as the list. */
typedef struct nnc_diagnostic {
    nnc_severity severity;
    const char *file;        /* the file as named in messages (a path, a source's or resolver's name);
                              * NULL: no position (an option, an internal error) */
    int line, column;        /* 1-based (the column counts bytes); 0 without a file */
    const char *message;     /* the message alone, no "FILE:LINE:COL: error: " */
    const struct nnc_diagnostic *notes;  /* n_notes of them, in order */
    int n_notes;
    const char *text;        /* this message and its notes as printed, source lines and carets included */
} nnc_diagnostic;

/* How many errors and warnings (each with its notes) the list holds; NULL: 0. */
int nnc_diagnostics_count(const nnc_diagnostics *d);
/* The i-th of them (0 <= i < count), in the order they were reported; else NULL. */
const nnc_diagnostic *nnc_diagnostics_get(const nnc_diagnostics *d, int i);
/* How many of them are errors. */
int nnc_diagnostics_errors(const nnc_diagnostics *d);
/* All of them as the nnc command prints them ("" when none). */
const char *nnc_diagnostics_text(const nnc_diagnostics *d);
void nnc_diagnostics_free(nnc_diagnostics *d);

/* ---- inspecting a model ---- */

/* The network's name, and its inputs and outputs in declaration order, with
 * their per-sample element counts (the batch is the leading dimension). */
const char *nnc_model_name(const nnc_model *m);
int nnc_model_inputs(const nnc_model *m);
int nnc_model_outputs(const nnc_model *m);
const char *nnc_model_input_name(const nnc_model *m, int i);
const char *nnc_model_output_name(const nnc_model *m, int i);
long long nnc_model_input_size(const nnc_model *m, int i);
long long nnc_model_output_size(const nnc_model *m, int i);

/* The shape of input or output i: returns its rank counting the batch, and
 * writes the first max_dims dimensions to dims (NULL with max_dims 0: the
 * rank alone). dims[0] is the batch: the options' max_batch, the most
 * samples a call runs (a call may run fewer); the rest is one sample's
 * shape, channels first ([batch, 1, 28, 28] for LeNet-5's image). -1: no
 * such input or output. */
int nnc_model_input_shape(const nnc_model *m, int i, int64_t *dims, int max_dims);
int nnc_model_output_shape(const nnc_model *m, int i, int64_t *dims, int max_dims);

/* The parameters the weights file must hold, in the order the network
 * creates them, by the names and shapes the file gives them
 * ("conv1.weight", [6, 1, 5, 5]); batchnorm running statistics included.
 * Passes may drop a parameter no output reads (-O1 and up), never rename or
 * reshape one (batchnorm folding happens when the weights are loaded): a
 * file with the -O0 list, which is what `nnc init` writes, fits every level.
 * nnc_model_param_shape returns the rank (no batch) and fills dims as
 * above, or -1 when there is no parameter i. */
int nnc_model_params(const nnc_model *m);
const char *nnc_model_param_name(const nnc_model *m, int i);
int nnc_model_param_shape(const nnc_model *m, int i, int64_t *dims, int max_dims);
/* The options the model was compiled with: its max_batch (>= 1), its mode. */
int nnc_model_max_batch(const nnc_model *m);
nnc_mode nnc_model_mode(const nnc_model *m);

/* ---- generating code ---- */

/* The IR as text (what --emit=ir prints). */
int nnc_emit_ir(const nnc_model *m, char **text);

/* The generated C source and header for at most max_batch samples per call
 * (0: the model's); header_name is how the source #includes the header
 * ("lenet5.h"). A model compiled for NNC_TRAINING gives its training module
 * (PREFIX_train_create, _step, ...). */
int nnc_emit_c(const nnc_model *m, int max_batch, const char *header_name, char **c_source, char **header,
               char **error);

/* ---- loading and running ---- */

/* Generates, compiles (in process with Clang and LLVM when nnc was built
 * with them, else with the system C compiler) and loads the network for at
 * most max_batch samples per call (0: the model's), then creates an instance
 * with the weights of a safetensors file (NULL: a network without
 * parameters). The file must hold every parameter nnc_model_param_name
 * lists, with its shape. A model compiled for NNC_TRAINING is refused. */
int nnc_load(const nnc_model *m, const char *weights_safetensors, int max_batch, nnc_instance **out, char **error);

/* The same with the weights in memory: the bytes of a safetensors file
 * (size of them), checked as nnc_load checks a file, messages naming
 * "<memory>". The buffer is not kept: it may be freed once this returns. */
int nnc_load_memory(const nnc_model *m, const void *weights, size_t size, int max_batch, nnc_instance **out,
                    char **error);

/* Runs n samples (1 <= n <= max_batch): one pointer per input, then per
 * output, in declaration order. On failure, nnc_instance_error explains. */
int nnc_forward(nnc_instance *inst, int n, const float *const *inputs, float *const *outputs);
const char *nnc_instance_error(const nnc_instance *inst);
void nnc_instance_free(nnc_instance *inst);

/* ---- training ---- */
/* Training in process: a trainer holds the network's training module
 * (forward in training mode, loss, backward, optimizer update), compiled and
 * loaded like nnc_load's code, its weights and the optimizer's state, so a
 * program trains a network it compiled from a string, for training:
 *
 *     nnc_options co = {.max_batch = 32, .mode = NNC_TRAINING};
 *     if (nnc_compile_string("net.net", text, &co, &m, &err) != 0) { ... }
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

/* Generates and loads the training module of m, a model compiled with
 * nnc_options.mode NNC_TRAINING (the training passes: batchnorm with batch
 * statistics, dropout active; its train section read), for at most max_batch
 * samples per step (0: the train section's batch, else the model's
 * max_batch), and starts from the weights of a safetensors file (every
 * parameter and buffer by name, as nnc_load reads them) or, weights NULL,
 * from fresh ones as `nnc init --seed SEED` writes them. The optimizer's
 * state starts at zero. m may be freed once the trainer exists. 0, or -1
 * with a message in *error (malloc'd; the caller frees it). */
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
