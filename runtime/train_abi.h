/* train_abi.h: the entry points of a generated training module, as the nnc
 * tools (`nnc train`, `nnc eval`) load and call them.
 *
 * `nnc MODEL.net --emit=train -o NAME_train.c` (codegen/emit_train.c) writes a C file
 * that, besides the kernels it needs, defines the functions below with the
 * network's prefix: for lenet5, lenet5_train_create, lenet5_train_step, and so
 * on (PREFIX_train_SUFFIX). The tools compile it (runtime/jit_cc.c), look the
 * functions up by name and call them through the pointer types here; the
 * generated header declares the same functions with its own type names, and a
 * configuration struct laid out exactly as RtTrainConfig.
 *
 * Conventions: every int-returning function returns 0 on success, or a
 * negative code with a one-line message readable through last_error. Tensors
 * are float32, row-major, PyTorch's layouts; inputs [n][C][H][W] (n <= the
 * module's max batch), labels int32 class indices in [0, classes). */
#ifndef NNC_RUNTIME_TRAIN_ABI_H
#define NNC_RUNTIME_TRAIN_ABI_H

#include <stddef.h>
#include <stdint.h>

/* Optimizer kinds, as runtime/snippets/optim.c numbers them (NNC_OPTIM_*):
 * X(NAME, code). The generated module checks at compile time that optim.c
 * agrees (codegen/emit_train.c writes the check from this list). */
#define RT_OPTIMIZERS(X) X(SGD, 0) X(ADAM, 1) X(ADAMW, 2)
/* Losses: softmax cross-entropy against class labels (label smoothing applies);
 * binary cross-entropy with logits and mean squared error against one-hot
 * encodings of the labels (torch's BCEWithLogitsLoss / MSELoss, mean over all
 * elements). */
#define RT_LOSSES(X) X(CROSS_ENTROPY, 0) X(BCE, 1) X(MSE, 2)

#define RT_ENUM_ENTRY(name, code) RT_OPTIM_##name = code,
enum { RT_OPTIMIZERS(RT_ENUM_ENTRY) RT_OPTIM_COUNT };
#undef RT_ENUM_ENTRY
#define RT_ENUM_ENTRY(name, code) RT_LOSS_##name = code,
enum { RT_LOSSES(RT_ENUM_ENTRY) RT_LOSS_COUNT };
#undef RT_ENUM_ENTRY

/* The training configuration a module is created with, field by field:
 * X(type, name, comment). RtTrainConfig below and the generated header's
 * PREFIX_train_config are both written from this one list, so their layouts
 * cannot differ. Semantics are PyTorch's (torch.optim.SGD / Adam / AdamW,
 * CrossEntropyLoss). The learning rate is not here: the caller passes it to
 * every step (schedules are the caller's, runtime/snippets/optim.c nnc_lr_at). */
#define RT_TRAIN_CONFIG_FIELDS(X)                                                                        \
    X(int, optimizer, "RT_OPTIM_*: 0 SGD, 1 Adam, 2 AdamW")                                            \
    X(double, momentum, "SGD")                                                                           \
    X(double, dampening, "SGD")                                                                          \
    X(int, nesterov, "SGD")                                                                              \
    X(double, beta1, "Adam, AdamW")                                                                      \
    X(double, beta2, "Adam, AdamW")                                                                      \
    X(double, eps, "Adam, AdamW")                                                                        \
    X(int, amsgrad, "Adam, AdamW")                                                                       \
    X(double, weight_decay, "SGD and Adam: L2 added to the gradient; AdamW: decoupled")                  \
    X(double, label_smoothing, "cross-entropy, 0 = none")                                                \
    X(uint64_t, seed, "dropout's generator: the mask of step s is a function of (seed, s)")              \
    X(int, loss, "RT_LOSS_*: 0 softmax cross-entropy, 1 BCE with logits, 2 MSE (one-hot targets)")     \
    X(double, aux_weight, "the weight of the losses of the outputs after the first (auxiliary classifiers)")

typedef struct RtTrainConfig {
#define RT_CONFIG_FIELD(type, name, comment) type name;
    RT_TRAIN_CONFIG_FIELDS(RT_CONFIG_FIELD)
#undef RT_CONFIG_FIELD
} RtTrainConfig;

/* PREFIX_train_create: a training instance whose parameters and buffers
 * (batchnorm running statistics) are read from a safetensors file, by name,
 * every tensor the network has; optimizer state starts at zero, step at 0. */
typedef int (*RtTrainCreateFn)(void **t, const char *weights_safetensors, const RtTrainConfig *cfg);
/* PREFIX_train_create_from_memory: the same from the bytes of a safetensors
 * file in memory, [weights, weights + size) (the same checks; messages name
 * "<memory>"; the bytes are not kept after it returns). */
typedef int (*RtTrainCreateMemFn)(void **t, const void *weights, size_t size, const RtTrainConfig *cfg);

/* PREFIX_train_step: one step on a batch: forward in training mode (batch
 * statistics, running averages updated, dropout), mean softmax cross-entropy
 * against labels, backward, and one optimizer update of every trainable
 * parameter with learning rate lr; then step += 1. *loss receives the batch's
 * mean loss (before the update; with auxiliary outputs, their weighted sum),
 * *correct how many argmax predictions of the first output equal their label. A loss that is not finite is reported and the parameters are
 * left as they were before the step (returns a negative code). */
typedef int (*RtTrainStepFn)(void *t, int n, const float *input, const int32_t *labels, double lr, float *loss,
                             long *correct);

/* PREFIX_train_eval: forward in inference mode (running statistics, no
 * dropout) on a batch: mean loss (with the configured label smoothing) and
 * correct count, nothing updated. */
typedef int (*RtTrainEvalFn)(void *t, int n, const float *input, const int32_t *labels, float *loss, long *correct);

/* PREFIX_train_set_trainable: whether parameter tensor i (an index into the
 * tensor table below, a learnable parameter) is updated by steps (frozen
 * layers: 0). Gradients still flow through a frozen layer to those before it. */
typedef int (*RtTrainSetTrainableFn)(void *t, int i, int trainable);

/* The tensor table, for checkpoints and for writing trained weights:
 * PREFIX_train_tensor_count tensors; PREFIX_train_tensor describes tensor i:
 *   - first the network's parameters and buffers, named as in the weights
 *     file ("conv1.weight", "bn1.running_mean"); kind RT_TENSOR_PARAM or
 *     RT_TENSOR_BUFFER;
 *   - then the optimizer's state, named "optim." + parameter name + "." +
 *     PyTorch's state key ("optim.conv1.weight.momentum_buffer", ".exp_avg",
 *     ".exp_avg_sq", ".max_exp_avg_sq"); kind RT_TENSOR_OPTIM.
 * data points into the instance: reading it reads the current values,
 * writing it (between steps) sets them (how --resume restores a checkpoint). */
enum { RT_TENSOR_PARAM = 0, RT_TENSOR_BUFFER = 1, RT_TENSOR_OPTIM = 2 };
typedef int (*RtTrainTensorCountFn)(const void *t);
typedef int (*RtTrainTensorFn)(void *t, int i, const char **name, int *kind, float **data, int *rank,
                               int64_t shape[8]);

/* PREFIX_train_get_step / _set_step: optimizer steps taken (PyTorch's
 * state["step"]; Adam's bias correction and the dropout masks depend on it). */
typedef long (*RtTrainGetStepFn)(const void *t);
typedef void (*RtTrainSetStepFn)(void *t, long step);

/* PREFIX_train_max_batch: the largest n step and eval accept. */
typedef int (*RtTrainMaxBatchFn)(void);

typedef const char *(*RtTrainLastErrorFn)(const void *t);
typedef void (*RtTrainDestroyFn)(void *t);

/* A loaded training module (runtime/jit.h rt_load_train). */
typedef struct RtTrainModule {
    void *so;  /* dlopen handle (kind 0, runtime/jit_cc.h), or an RtJit (kind 1, runtime/jit_llvm.h) */
    int kind;
    RtTrainCreateFn create;
    RtTrainCreateMemFn create_from_memory;
    RtTrainStepFn step;
    RtTrainEvalFn eval;
    RtTrainSetTrainableFn set_trainable;
    RtTrainTensorCountFn tensor_count;
    RtTrainTensorFn tensor;
    RtTrainGetStepFn get_step;
    RtTrainSetStepFn set_step;
    RtTrainMaxBatchFn max_batch;
    RtTrainLastErrorFn last_error;
    RtTrainDestroyFn destroy;
} RtTrainModule;

#endif
