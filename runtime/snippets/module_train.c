/* module_train.c: the scaffolding of a generated training module, a template
 * the code generator fills in (codegen/template.c, emit_train.c).
 *
 * Part "source" is NAME_train.c after its kernels: the tensor table, the
 * instance, the forward and backward functions (their bodies are the walk's,
 * codegen/ops_c.c and grad_c.c), the loss, create, step, eval, input_grad and
 * the tensor accessors of runtime/train_abi.h. Part "header" is NAME_train.h.
 * $p and $P are the network's prefixes; "@if FLAG" / "@endif" lines keep or
 * drop what follows by a property of the network (scratch: a kernel checks
 * its scratch need at create); a "@fill NAME" line is replaced by generated
 * text (the sizes, the parameter table's rows, the forward and backward
 * bodies, the outputs' offsets, the scratch checks; in the header, the
 * banner, the limits and the configuration's fields, written from
 * runtime/train_abi.h's RT_TRAIN_CONFIG_FIELDS so the two cannot differ).
 * tests/unit/test_templates.c instantiates both parts with stub fills and
 * compiles them with -Wall -Wextra -Werror. Text before the first part
 * marker (this comment) is not copied. */
/* @part source */
/* @fill defines */

/* Parameters and buffers: name and shape as in the weights file, kind (0
 * learned, 1 buffer), offset in t->params, and whether the network reads
 * it (one that no output depends on gets no gradient, and the optimizer
 * leaves it alone, as torch.optim does a parameter whose grad is None). */
static const struct { const char *name; int kind, rank; int64_t shape[4]; long offset; int read; } $p_params[$P_N_PARAMS] = {
/* @fill param_rows */
};

struct $p_train {
    float *params;            /* parameters and buffers, as $p_params */
    float *grads;             /* the gradient of every parameter, same layout */
    float *backup;            /* buffers (running statistics) before a forward, to undo it */
    float *state;             /* optimizer state, per learned tensor (optim.c layout) */
    float *bn_save;           /* batch mean and 1/std of every batchnorm, for its backward */
    double *stats;            /* a fused batchnorm's sums, from its conv to it */
    float *target, *dummy;    /* one-hot targets (bce, mse); a gradient nobody reads */
    float *scratch;
    unsigned char *ws;        /* activations and their gradients (planned) */
    nnc_ctx ctx;              /* the instruction set and the threads the kernels run on */
    unsigned char trainable[$P_N_PARAMS];
    char **state_names;       /* "optim.NAME.KEY" */
    int n_state;              /* state tensors per learned tensor */
    nnc_optim optim;
    $p_train_config cfg;
    long step;
    char err[512];
};

static int $p_train_fail($p_train *t, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->err, sizeof t->err, fmt, ap);
    va_end(ap);
    return code;
}

/* The forward pass; train: batch statistics (running averages updated) and dropout. */
static void $p_train_fwd($p_train *t, int n, const float *input, int train)
{
    unsigned char *ws = t->ws;
    (void)ws; (void)train; (void)input;
/* @fill forward */
}

/* The backward pass, from the gradients of the outputs (already in place);
 * train: of the training-mode forward, else of the inference-mode one;
 * dinput (or NULL) receives the gradient with respect to the input. */
static void $p_train_bwd($p_train *t, int n, const float *input, int train, float *dinput)
{
    unsigned char *ws = t->ws;
    (void)ws; (void)input; (void)train;
/* @fill backward */
}

/* @fill outputs */

/* Correct predictions: the arg-max equals the label; one logit: its sign (> 0: 1). */
static long $p_train_correct(int n, const float *logits, const int32_t *labels)
{
    long k = 0;
    int i;
    if ($P_TRAIN_CLASSES > 1) return nnc_count_correct(n, logits, $P_TRAIN_CLASSES, (const int *)labels);
    for (i = 0; i < n; i++) k += (logits[i] > 0.0f) == (labels[i] == 1);
    return k;
}

/* The loss of the first `outputs` outputs against the labels (cfg.loss: 0 softmax
 * cross-entropy with label smoothing, 1 binary cross-entropy with logits and 2 mean
 * squared error, both against one-hot targets), auxiliary outputs weighted by
 * cfg.aux_weight; with grad, each output's gradient is set (not added) for an
 * upstream gradient of 1. */
static float $p_train_loss($p_train *t, int n, const int32_t *labels, int outputs, int grad)
{
    size_t count = (size_t)n * $P_TRAIN_CLASSES, i;
    double total = 0.0;
    int k;
    if (t->cfg.loss != 0) {  /* one-hot targets; one logit (a binary classifier): the label itself */
        memset(t->target, 0, count * sizeof(float));
        for (i = 0; i < (size_t)n; i++)
            if ($P_TRAIN_CLASSES == 1) t->target[i] = (float)labels[i];
            else t->target[i * $P_TRAIN_CLASSES + (size_t)labels[i]] = 1.0f;
    }
    for (k = 0; k < (grad ? $P_N_OUTPUTS : outputs); k++) {
        const float *x = (const float *)(t->ws + $p_out_off[k]);
        float *dx = grad ? (float *)(t->ws + $p_dout_off[k]) : NULL, l;
        float w = k == 0 ? 1.0f : (float)t->cfg.aux_weight;
        if (dx) memset(dx, 0, count * sizeof(float));
        if (k >= outputs) continue;  /* an auxiliary output outside this loss: gradient 0 */
        if (t->cfg.loss == 1) l = dx ? nnc_bce_with_logits(count, x, t->target, dx) : nnc_bce_with_logits(count, x, t->target, t->dummy);
        else if (t->cfg.loss == 2) l = dx ? nnc_mse_loss(count, x, t->target, dx) : nnc_mse_loss(count, x, t->target, t->dummy);
        else l = nnc_cross_entropy(n, x, $P_TRAIN_CLASSES, (const int *)labels, (float)t->cfg.label_smoothing, dx);
        if (dx && k > 0)
            for (i = 0; i < count; i++) dx[i] *= w;
        total += (double)w * (double)l;
    }
    return (float)total;
}

static const char *const $p_state_keys[2][3] = {{"momentum_buffer", "", ""},
                                                 {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}};

static void $p_train_release($p_train *t)
{
    int i;
    nnc_ctx_stop(&t->ctx);
    if (t->state_names)
        for (i = 0; i < $P_N_PARAMS * 3; i++) free(t->state_names[i]);
    free(t->state_names);
    free(t->params); free(t->grads); free(t->backup); free(t->state); free(t->bn_save); free(t->stats);
    free(t->target); free(t->dummy);
    free(t->scratch); free(t->ws);
}

/* create (the file path) and create_from_memory (in_memory: the safetensors
 * bytes [data, data + size), read by the same loader with the same checks). */
static int $p_train_new($p_train **out, const char *path, const void *data, size_t size, int in_memory,
                        const $p_train_config *cfg)
{
    $p_train *t;
    nnc_st_want want[$P_N_PARAMS];
    char err[384];
    int i, k, rc;
    if (!out) return -1;
    *out = NULL;
    t = ($p_train *)calloc(1, sizeof *t);
    if (!t) return -2;
    *out = t;
    if (!cfg || (in_memory ? !data : !path))
        return $p_train_fail(t, -1, in_memory ? "$p_train_create_from_memory: NULL weights or config"
                                              : "$p_train_create: NULL weights path or config");
    if (cfg->optimizer < 0 || cfg->optimizer >= $P_N_OPTIMIZERS)
        return $p_train_fail(t, -1, "$p_train_create: unknown optimizer %d", cfg->optimizer);
    if (cfg->loss < 0 || cfg->loss >= $P_N_LOSSES)
        return $p_train_fail(t, -1, "$p_train_create: unknown loss %d", cfg->loss);
    if ($P_TRAIN_CLASSES == 1 && cfg->loss == 0)
        return $p_train_fail(t, -1, "$p_train_create: one output logit (a binary classifier) takes binary "
                                    "cross-entropy with logits (loss 1), not softmax cross-entropy");
    t->cfg = *cfg;
#ifdef NNC_USE_CBLAS
    /* the BLAS runs the GEMMs on threads of its own: a second pool polling beside
     * them would fight them for the cores ($p_train_set_threads can still start one) */
    (void)nnc_ctx_init(&t->ctx, 1);
#else
    (void)nnc_ctx_init(&t->ctx, 0);  /* threads: NNC_THREADS, else one per CPU; without them it still runs */
#endif
    t->optim.kind = cfg->optimizer;
    t->optim.momentum = cfg->momentum;
    t->optim.dampening = cfg->dampening;
    t->optim.nesterov = cfg->nesterov;
    t->optim.beta1 = cfg->beta1;
    t->optim.beta2 = cfg->beta2;
    t->optim.eps = cfg->eps;
    t->optim.amsgrad = cfg->amsgrad;
    t->optim.weight_decay = cfg->weight_decay;
    t->n_state = (int)nnc_optim_state_floats(&t->optim);
    t->params = (float *)malloc((size_t)$P_PARAM_FLOATS * sizeof(float));
    t->grads = (float *)calloc((size_t)$P_PARAM_FLOATS, sizeof(float));
    t->backup = (float *)malloc((size_t)$P_PARAM_FLOATS * sizeof(float));
    t->state = (float *)calloc((size_t)$P_LEARN_FLOATS * (size_t)(t->n_state ? t->n_state : 1), sizeof(float));
    t->bn_save = (float *)calloc((size_t)$P_BN_FLOATS, sizeof(float));
    t->stats = (double *)calloc((size_t)$P_STATS_DOUBLES, sizeof(double));
    t->target = (float *)calloc((size_t)$P_TRAIN_MAX_BATCH * $P_TRAIN_CLASSES, sizeof(float));
    t->dummy = (float *)calloc((size_t)$P_TRAIN_MAX_BATCH * $P_TRAIN_CLASSES, sizeof(float));
    t->scratch = (float *)malloc((size_t)$P_SCRATCH_FLOATS * sizeof(float));
    t->ws = (unsigned char *)malloc((size_t)$P_WS_BYTES + 64);
    t->state_names = (char **)calloc((size_t)$P_N_PARAMS * 3, sizeof(char *));
    if (!t->params || !t->grads || !t->backup || !t->state || !t->bn_save || !t->stats || !t->scratch || !t->ws ||
        !t->target || !t->dummy ||
        !t->state_names)
        return $p_train_fail(t, -2, "$p_train_create: out of memory");
/* @if scratch */
/* @fill scratch_checks */
/* @endif */
    for (i = 0; i < $P_N_PARAMS; i++) {
        want[i].name = $p_params[i].name;
        want[i].rank = $p_params[i].rank;
        for (k = 0; k < 4; k++) want[i].shape[k] = (long long)$p_params[i].shape[k];
        want[i].dst = t->params + $p_params[i].offset;
        t->trainable[i] = (unsigned char)($p_params[i].kind == 0 && $p_params[i].read);
        for (k = 0; k < t->n_state && $p_params[i].kind == 0; k++) {
            const char *key = $p_state_keys[cfg->optimizer != 0][k];
            size_t len = strlen($p_params[i].name) + strlen(key) + 8;
            t->state_names[i * 3 + k] = (char *)malloc(len);
            if (!t->state_names[i * 3 + k]) return $p_train_fail(t, -2, "$p_train_create: out of memory");
            snprintf(t->state_names[i * 3 + k], len, "optim.%s.%s", $p_params[i].name, key);
        }
    }
    rc = in_memory ? nnc_st_load_memory(data, size, NULL, want, $P_N_PARAMS, err, sizeof err)
                   : nnc_st_load(path, want, $P_N_PARAMS, err, sizeof err);
    if (rc != 0) return $p_train_fail(t, -3, "$p_train_create: %s", err);
    return 0;
}

int $p_train_create($p_train **out, const char *weights, const $p_train_config *cfg)
{
    return $p_train_new(out, weights, NULL, 0, 0, cfg);
}

int $p_train_create_from_memory($p_train **out, const void *weights, size_t size, const $p_train_config *cfg)
{
    return $p_train_new(out, NULL, weights, size, 1, cfg);
}

void $p_train_destroy($p_train *t)
{
    if (!t) return;
    $p_train_release(t);
    free(t);
}

const char *$p_train_last_error(const $p_train *t) { return t ? t->err : "no instance"; }
int $p_train_max_batch(void) { return $P_TRAIN_MAX_BATCH; }

int $p_train_set_threads($p_train *t, int threads)
{
    if (!t) return -1;
    nnc_ctx_stop(&t->ctx);
    if (nnc_ctx_init(&t->ctx, threads < 0 ? 1 : threads) != 0)
        return $p_train_fail(t, -2, "$p_train_set_threads: could not start %d threads", threads);
    return 0;
}
long $p_train_get_step(const $p_train *t) { return t->step; }
void $p_train_set_step($p_train *t, long step) { t->step = step; }

static int $p_train_check($p_train *t, int n, const float *input, const int32_t *labels)
{
    int i;
    if (n < 1 || n > $P_TRAIN_MAX_BATCH)
        return $p_train_fail(t, -1, "batch of %d samples; this module takes 1 to %d", n, $P_TRAIN_MAX_BATCH);
    if (!input || !labels) return $p_train_fail(t, -1, "NULL input or labels");
    for (i = 0; i < n; i++)  /* one logit: a binary classifier, labels 0 and 1 */
        if (labels[i] < 0 || labels[i] >= ($P_TRAIN_CLASSES == 1 ? 2 : $P_TRAIN_CLASSES))
            return $p_train_fail(t, -1, "label %ld of sample %d is outside 0..%d", (long)labels[i], i,
                                 $P_TRAIN_CLASSES == 1 ? 1 : $P_TRAIN_CLASSES - 1);
    return 0;
}

/* Copies the buffers (batchnorm's running statistics, which a training-mode
 * forward updates) to t->backup (save) or back (!save); parameters proper
 * change only in the optimizer step, after the loss is known to be finite. */
static void $p_train_buffers($p_train *t, int save)
{
    int i, k;
    for (i = 0; i < $P_N_PARAMS; i++) {
        size_t count = 1, off = (size_t)$p_params[i].offset;
        if ($p_params[i].kind != 1) continue;
        for (k = 0; k < $p_params[i].rank; k++) count *= (size_t)$p_params[i].shape[k];
        if (save) memcpy(t->backup + off, t->params + off, count * sizeof(float));
        else memcpy(t->params + off, t->backup + off, count * sizeof(float));
    }
}

int $p_train_step($p_train *t, int n, const float *input, const int32_t *labels, double lr, float *loss,
                  long *correct)
{
    float l;
    long off = 0;
    int i, rc = $p_train_check(t, n, input, labels);
    if (rc) return rc;
    $p_train_buffers(t, 1);
    /* No nnc_ctx_begin: the workers would poll through the step's serial
     * stretches (loss, memsets) too, taking a core the caller needs when the
     * machine is busy (docs/performance.md). */
    $p_train_fwd(t, n, input, 1);
    l = $p_train_loss(t, n, labels, $P_N_OUTPUTS, 1);
    if (correct) *correct = $p_train_correct(n, $P_LOGITS(t), labels);
    if (loss) *loss = l;
    if (!(l - l == 0.0f)) {  /* NaN or infinite: undo the running statistics, keep the weights */
        $p_train_buffers(t, 0);
        return $p_train_fail(t, -4, "the loss is %g at step %ld", (double)l, t->step + 1);
    }
    memset(t->grads, 0, (size_t)$P_PARAM_FLOATS * sizeof(float));
    $p_train_bwd(t, n, input, 1, NULL);
    for (i = 0; i < $P_N_PARAMS; i++) {
        size_t count = 1;
        int k;
        if ($p_params[i].kind != 0) continue;
        for (k = 0; k < $p_params[i].rank; k++) count *= (size_t)$p_params[i].shape[k];
        if (t->trainable[i])
            nnc_optim_step(t->params + $p_params[i].offset, t->grads + $p_params[i].offset,
                           t->state + (size_t)off * (size_t)t->n_state, count, t->step + 1, lr, &t->optim);
        off += (long)count;
    }
    t->step++;
    return 0;
}

int $p_train_eval($p_train *t, int n, const float *input, const int32_t *labels, float *loss, long *correct)
{
    float l;
    int rc = $p_train_check(t, n, input, labels);
    if (rc) return rc;
    nnc_ctx_begin(&t->ctx);
    $p_train_fwd(t, n, input, 0);
    nnc_ctx_end(&t->ctx);
    l = $p_train_loss(t, n, labels, 1, 0);
    if (loss) *loss = l;
    if (correct) *correct = $p_train_correct(n, $P_LOGITS(t), labels);
    return 0;
}

int $p_train_input_grad($p_train *t, int n, const float *input, const int32_t *labels, int train,
                        float *dinput, float *loss)
{
    float l;
    int rc = $p_train_check(t, n, input, labels);
    if (rc) return rc;
    if (!dinput) return $p_train_fail(t, -1, "$p_train_input_grad: NULL dinput");
    $p_train_buffers(t, 1);
    nnc_ctx_begin(&t->ctx);
    $p_train_fwd(t, n, input, train);
    l = $p_train_loss(t, n, labels, train ? $P_N_OUTPUTS : 1, 1);
    memset(t->grads, 0, (size_t)$P_PARAM_FLOATS * sizeof(float));
    $p_train_bwd(t, n, input, train, dinput);
    nnc_ctx_end(&t->ctx);
    $p_train_buffers(t, 0);  /* running statistics */
    if (loss) *loss = l;
    return 0;
}

int $p_train_set_trainable($p_train *t, int i, int trainable)
{
    if (i < 0 || i >= $P_N_PARAMS || $p_params[i].kind != 0)
        return $p_train_fail(t, -1, "tensor %d is not a learned parameter", i);
    t->trainable[i] = (unsigned char)(trainable != 0 && $p_params[i].read);  /* unread: no gradient */
    return 0;
}

int $p_train_tensor_count(const $p_train *t)
{
    int i, learned = 0;
    for (i = 0; i < $P_N_PARAMS; i++) learned += $p_params[i].kind == 0;
    return $P_N_PARAMS + learned * t->n_state;
}

int $p_train_tensor($p_train *t, int i, const char **name, int *kind, float **data, int *rank, int64_t shape[8])
{
    int p, k;
    long off = 0;
    if (i < 0 || i >= $p_train_tensor_count(t)) return $p_train_fail(t, -1, "no tensor %d", i);
    if (i < $P_N_PARAMS) {
        *name = $p_params[i].name;
        *kind = $p_params[i].kind;
        *data = t->params + $p_params[i].offset;
        *rank = $p_params[i].rank;
        for (k = 0; k < 8; k++) shape[k] = k < *rank ? $p_params[i].shape[k] : 0;
        return 0;
    }
    i -= $P_N_PARAMS;
    for (p = 0; p < $P_N_PARAMS; p++) {  /* the i-th state tensor: learned tensor i / n_state, key i % n_state */
        long count = 1;
        if ($p_params[p].kind != 0) continue;
        for (k = 0; k < $p_params[p].rank; k++) count *= (long)$p_params[p].shape[k];
        if (i < t->n_state) {
            *name = t->state_names[p * 3 + i];
            *kind = 2;
            *data = t->state + (size_t)off * (size_t)t->n_state + (size_t)i * (size_t)count;
            *rank = $p_params[p].rank;
            for (k = 0; k < 8; k++) shape[k] = k < *rank ? $p_params[p].shape[k] : 0;
            return 0;
        }
        i -= t->n_state;
        off += count;
    }
    return $p_train_fail(t, -1, "no tensor");
}
/* @part header */
/* @fill banner */
 *
 * The training module of network $p: create it from a safetensors file
 * holding every parameter and buffer (or from the bytes of one in memory:
 * $p_train_create_from_memory, same checks, messages name "<memory>", the
 * bytes are not kept), then call $p_train_step once per
 * batch (forward in training mode, softmax cross-entropy against integer
 * labels, backward, one optimizer update with PyTorch's semantics) and
 * $p_train_eval to measure. Tensors (parameters, buffers, optimizer state)
 * are reachable by index through $p_train_tensor, for checkpoints.
 * Every function returning int returns 0 or a negative code; the message
 * is $p_train_last_error's. No global state: instances are independent.
 * Every name declared here is $p_train or $P_TRAIN followed by a word of
 * nnc's; $p is the network's name lowercased, with characters other than
 * letters, digits and '_' as '_' (net_ in front of one that starts with a
 * digit, '_' or nnc). Code nnc adds for itself uses nnc_ and NNC_. */
#ifndef $P_TRAIN_H
#define $P_TRAIN_H

#include <stddef.h>
#include <stdint.h>

/* @fill limits */

typedef struct $p_train $p_train;

/* The optimizer and loss, laid out as nnc's RtTrainConfig (runtime/train_abi.h,
 * RT_TRAIN_CONFIG_FIELDS, which writes both). */
typedef struct $p_train_config {
/* @fill config_fields */
} $p_train_config;

int $p_train_create($p_train **t, const char *weights_safetensors, const $p_train_config *cfg);
int $p_train_create_from_memory($p_train **t, const void *weights, size_t size, const $p_train_config *cfg);
/* One step on n <= $P_TRAIN_MAX_BATCH samples: mean loss and correct count out. */
int $p_train_step($p_train *t, int n, const float *input, const int32_t *labels, double lr, float *loss,
                  long *correct);
/* Inference-mode forward on a batch: mean loss and correct count, nothing updated. */
int $p_train_eval($p_train *t, int n, const float *input, const int32_t *labels, float *loss, long *correct);
/* The gradient of the loss with respect to the input (adversarial examples, style
 * transfer) into dinput [n][input], with the network in training mode (train = 1:
 * batch statistics, dropout, auxiliary losses) or inference mode (0); nothing is
 * updated (running statistics are restored). */
int $p_train_input_grad($p_train *t, int n, const float *input, const int32_t *labels, int train,
                        float *dinput, float *loss);
int $p_train_set_trainable($p_train *t, int i, int trainable);
int $p_train_tensor_count(const $p_train *t);
/* kind: 0 parameter, 1 buffer, 2 optimizer state; data points into the instance. */
int $p_train_tensor($p_train *t, int i, const char **name, int *kind, float **data, int *rank, int64_t shape[8]);
long $p_train_get_step(const $p_train *t);
void $p_train_set_step($p_train *t, long step);
int $p_train_max_batch(void);
/* The threads the kernels run on (0: one per online CPU, or NNC_THREADS from the
 * environment, as at create; 1: the caller's alone). */
int $p_train_set_threads($p_train *t, int threads);
const char *$p_train_last_error(const $p_train *t);
void $p_train_destroy($p_train *t);

#endif
