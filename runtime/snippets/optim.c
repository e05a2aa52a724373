/* optim.c: the optimizers and learning-rate schedules that nnc pastes into
 * generated training code.
 *
 * Sectioned like kernels.c (see its top comment: a marker line
 *     slash-star @kernel NAME [needs: DEP1 DEP2] star-slash
 * opens a section, "prologue" is always taken, a section compiles with only
 * the sections before it that it needs) and under the same rules: C99,
 * warning-free under gcc and clang with -Wall -Wextra -Werror -pedantic
 * -Wshadow -Wstrict-prototypes -Wmissing-prototypes, static NNC_MAYBE_UNUSED
 * functions, no global mutable state, no printing, no exit. The prologue
 * defines NNC_MAYBE_UNUSED only if kernels.c's prologue has not, so the two
 * snippets paste into one file in either order. Types are lower-case nnc_*
 * like safetensors_load.c's, a prefix generated names never take.
 *
 * The contract is PyTorch's: a recipe moved from torch.optim gives the same
 * floats. Each step function is torch's single-tensor ("for-loop", foreach=False)
 * implementation (torch/optim/sgd.py, adam.py, adamw.py: _single_tensor_*) for
 * one fp32 tensor, operation for operation:
 *   - hyperparameters and the learning rate are doubles (Python floats); the
 *     scalars torch derives from them (1 - dampening, 1 - beta1, lr / (1 -
 *     beta1^step), sqrt(1 - beta2^step), 1 - lr * weight_decay) are computed
 *     in double, then rounded to float once, as torch does when a Python
 *     scalar meets a float tensor;
 *   - each tensor op is one C statement in torch's order: add(x, alpha=a) is
 *     x + a * y, addcmul is s + (v * t1) * t2, addcdiv is s + (v * t1) / t2.
 * Compiled without FMA contraction (gcc -std=c99 does not contract; clang
 * contracts within a statement only where the target has FMA), this is bit for
 * bit torch under ATEN_CPU_CAPABILITY=default. Torch's AVX2/AVX-512 kernels
 * fuse x + a * y into one FMA (one rounding fewer), so against a stock torch
 * on such a CPU results differ by about an ulp per step (relative 1e-7 after
 * tens of steps); tests/oracle/test_optim.py checks both.
 *
 * Calling convention: generated code calls one step function per parameter
 * tensor, with count its elements and state the optimizer's state for that
 * tensor: nnc_optim_state_floats(o) * count floats, laid out as whole
 * tensors one after another, in the order of torch's state_dict keys:
 *     SGD:   momentum_buffer                       (none when momentum == 0)
 *     Adam:  exp_avg, exp_avg_sq [, max_exp_avg_sq when amsgrad]
 * so a checkpoint stores state + k * count as torch's k-th state tensor.
 * Zero-fill the state before the first step (torch starts Adam's moments at
 * zero; SGD overwrites its buffer at step 1). step is the 1-based number of
 * this update (torch's state["step"] after its increment); SGD uses it only
 * to recognise its first step, where torch initialises the momentum buffer to
 * the gradient, undampened. The hyperparameters are not checked here (no way
 * to report): the caller refuses what torch refuses at construction (nesterov
 * without momentum or with dampening, negative lr, betas outside [0, 1)).
 *
 * Schedules (section lr_schedule) are pure functions of the epoch, torch's
 * closed forms; see that section for how they compare with torch's recursive
 * schedulers and how warm-up composes with the main schedule. */

/* @kernel prologue */
#include <math.h>
#include <stddef.h>
#ifndef NNC_MAYBE_UNUSED
#if defined(__GNUC__) || defined(__clang__)
#define NNC_MAYBE_UNUSED __attribute__((unused))
#else
#define NNC_MAYBE_UNUSED
#endif
#endif

/* Which torch.optim class an nnc_optim stands for. */
enum { NNC_OPTIM_SGD, NNC_OPTIM_ADAM, NNC_OPTIM_ADAMW };

/* An optimizer's hyperparameters, named as torch's keyword arguments; the
 * learning rate is not here, it comes from the schedule at every step.
 * torch's defaults: SGD momentum 0, dampening 0, nesterov 0, weight_decay 0;
 * Adam betas (0.9, 0.999), eps 1e-8, weight_decay 0 (AdamW 1e-2), amsgrad 0. */
typedef struct {
    int kind;             /* NNC_OPTIM_* */
    double momentum;      /* SGD: 0 = plain SGD (no state) */
    double dampening;     /* SGD: the gradient enters the buffer times 1 - dampening */
    int nesterov;         /* SGD: Nesterov momentum (needs momentum > 0, dampening 0) */
    double beta1, beta2;  /* Adam, AdamW: decay of the first and second moments */
    double eps;           /* Adam, AdamW: added to the denominator */
    int amsgrad;          /* Adam, AdamW: divide by the running maximum of exp_avg_sq */
    double weight_decay;  /* SGD, Adam: L2, added to the gradient; AdamW: decoupled */
} nnc_optim;

/* Floats of optimizer state per parameter element (state is this times count). */
static NNC_MAYBE_UNUSED size_t nnc_optim_state_floats(const nnc_optim *o)
{
    if (o->kind == NNC_OPTIM_SGD) return o->momentum != 0.0 ? 1 : 0;
    return o->amsgrad ? 3 : 2;
}

/* @kernel sgd */
/* torch.optim.SGD on one tensor (_single_tensor_sgd, maximize=False):
 *     d = grad + weight_decay * param                 (if weight_decay != 0)
 *     buf = step == 1 ? d : momentum * buf + (1 - dampening) * d   (if momentum != 0)
 *     d = nesterov ? d + momentum * buf : buf          (if momentum != 0)
 *     param = param - lr * d
 * state: the momentum buffer (count floats), unused when momentum == 0. */
static NNC_MAYBE_UNUSED void nnc_sgd_step(float *param, const float *grad, float *state, size_t count, long step,
                                          double lr, const nnc_optim *o)
{
    const float wd = (float)o->weight_decay, mom = (float)o->momentum;
    const float keep = (float)(1.0 - o->dampening), neg_lr = (float)-lr;
    const int decay = o->weight_decay != 0.0, use_buf = o->momentum != 0.0;
    size_t i;
    for (i = 0; i < count; i++) {
        float d = grad[i];
        if (decay) d = d + wd * param[i];
        if (use_buf) {
            float b = d;
            if (step > 1) {
                b = state[i] * mom;
                b = b + keep * d;
            }
            state[i] = b;
            d = o->nesterov ? d + mom * b : b;
        }
        param[i] = param[i] + neg_lr * d;
    }
}

/* @kernel adam */
/* The part Adam and AdamW share (_single_tensor_adam after its weight decay):
 *     m = beta1 * m + (1 - beta1) * g
 *     v = beta2 * v + (1 - beta2) * g * g
 *     vmax = max(vmax, v)                                         (amsgrad)
 *     param = param - lr / bc1 * m / (sqrt(v or vmax) / sqrt(bc2) + eps)
 * with bc1 = 1 - beta1^step and bc2 = 1 - beta2^step in double, as torch's
 * Python computes them. l2 != 0 adds l2 * param to the gradient first (Adam's
 * weight decay). vmax keeps a NaN of v, as torch.maximum does. */
static NNC_MAYBE_UNUSED void nnc_adam_update(float *param, const float *grad, float *state, size_t count, long step,
                                             double lr, const nnc_optim *o, double l2)
{
    float *m = state, *v = state + count, *vmax = state + 2 * count;
    const double bc1 = 1.0 - pow(o->beta1, (double)step), bc2 = 1.0 - pow(o->beta2, (double)step);
    const float b1 = (float)o->beta1, rest1 = (float)(1.0 - o->beta1);
    const float b2 = (float)o->beta2, rest2 = (float)(1.0 - o->beta2);
    const float neg_step_size = (float)-(lr / bc1), bc2_sqrt = (float)sqrt(bc2), eps = (float)o->eps;
    const float wd = (float)l2;
    size_t i;
    for (i = 0; i < count; i++) {
        float g = grad[i], s, t, denom;
        if (l2 != 0.0) g = g + wd * param[i];
        m[i] = m[i] * b1;
        m[i] = m[i] + rest1 * g;
        v[i] = v[i] * b2;
        t = rest2 * g;
        v[i] = v[i] + t * g;
        s = v[i];
        if (o->amsgrad) {
            if (v[i] > vmax[i] || v[i] != v[i]) vmax[i] = v[i];
            s = vmax[i];
        }
        denom = sqrtf(s) / bc2_sqrt;
        denom = denom + eps;
        t = neg_step_size * m[i];
        param[i] = param[i] + t / denom;
    }
}

/* torch.optim.Adam on one tensor: weight_decay is L2, added to the gradient.
 * state: exp_avg, exp_avg_sq [, max_exp_avg_sq], count floats each. */
static NNC_MAYBE_UNUSED void nnc_adam_step(float *param, const float *grad, float *state, size_t count, long step,
                                           double lr, const nnc_optim *o)
{
    nnc_adam_update(param, grad, state, count, step, lr, o, o->weight_decay);
}

/* torch.optim.AdamW on one tensor: decoupled weight decay, param *= 1 - lr *
 * weight_decay before the Adam update (which then has no L2 term). */
static NNC_MAYBE_UNUSED void nnc_adamw_step(float *param, const float *grad, float *state, size_t count, long step,
                                            double lr, const nnc_optim *o)
{
    const float shrink = (float)(1.0 - lr * o->weight_decay);
    size_t i;
    for (i = 0; i < count; i++) param[i] = param[i] * shrink;
    nnc_adam_update(param, grad, state, count, step, lr, o, 0.0);
}

/* @kernel optim needs: sgd adam */
/* One step of whichever optimizer o is, on one tensor (see the step functions). */
static NNC_MAYBE_UNUSED void nnc_optim_step(float *param, const float *grad, float *state, size_t count, long step,
                                            double lr, const nnc_optim *o)
{
    switch (o->kind) {
    case NNC_OPTIM_SGD: nnc_sgd_step(param, grad, state, count, step, lr, o); break;
    case NNC_OPTIM_ADAM: nnc_adam_step(param, grad, state, count, step, lr, o); break;
    case NNC_OPTIM_ADAMW: nnc_adamw_step(param, grad, state, count, step, lr, o); break;
    default: break;
    }
}

/* @kernel lr_schedule */
/* Learning-rate schedules as pure functions lr(t) of a counter t = 0, 1, 2, ...
 * that the caller advances once per epoch (or per batch: torch's schedulers do
 * not care either; t is the number of scheduler.step() calls so far).
 *
 * Closed forms, torch's own _get_closed_form_lr, in double:
 *   CONSTANT   base_lr
 *   STEP       base_lr * gamma^floor(t / step_size)                  (StepLR)
 *   MULTISTEP  base_lr * gamma^(number of milestones <= t)           (MultiStepLR;
 *              any order, a repeated milestone decays twice, as torch's Counter does)
 *   COSINE     eta_min + (base_lr - eta_min) * (1 + cos(pi * t / t_max)) / 2
 *              (CosineAnnealingLR; past t_max it rises again, as torch's does)
 * torch.optim's scheduler.step() instead updates the lr recursively (lr *=
 * gamma, cosine by ratios); the two agree to double rounding (tested over 30
 * epochs to 1e-12 relative), which vanishes when the optimizer rounds its
 * scalars to float, and the closed form cannot drift, needs no state in a
 * checkpoint beyond t, and resumes at any t.
 *
 * Warm-up composes as SequentialLR([LinearLR(start_factor=f, total_iters=W),
 * main], milestones=[W]): for t < W the lr rises linearly,
 *     base_lr * (f + (1 - f) * t / W),
 * and from t = W the main schedule runs from its own start, at t - W (so
 * MULTISTEP milestones and the cosine period count from the end of the
 * warm-up). That is the common recipe ("warm up, then decay"); the other
 * composition, ChainedScheduler, multiplies the factors and is not offered.
 * torch needs 0 < f <= 1 (f = 0 divides by zero in its LinearLR). */
enum { NNC_LR_CONSTANT, NNC_LR_STEP, NNC_LR_MULTISTEP, NNC_LR_COSINE };

typedef struct {
    int kind;                 /* NNC_LR_*: the main schedule */
    double base_lr;           /* the optimizer's lr (torch's initial_lr) */
    long step_size;           /* STEP: decay every step_size epochs (> 0) */
    double gamma;             /* STEP, MULTISTEP: decay factor */
    const long *milestones;   /* MULTISTEP: epochs of the main schedule that decay */
    size_t n_milestones;      /* MULTISTEP: entries of milestones */
    long t_max;               /* COSINE: epochs from base_lr down to eta_min (> 0) */
    double eta_min;           /* COSINE: the floor */
    long warmup;              /* epochs of linear warm-up before the main schedule; 0 = none */
    double warmup_start;      /* warm-up: lr factor at t = 0 (torch's start_factor), 0 < f <= 1 */
} nnc_lr_schedule;

/* The main schedule at its own epoch t >= 0. */
static NNC_MAYBE_UNUSED double nnc_lr_main(const nnc_lr_schedule *s, long t)
{
    const double pi = 3.14159265358979323846;  /* Python's math.pi */
    size_t i, k = 0;
    switch (s->kind) {
    case NNC_LR_STEP:
        if (s->step_size <= 0) return s->base_lr;  /* torch refuses it; no division by 0 here */
        return s->base_lr * pow(s->gamma, (double)(t / s->step_size));
    case NNC_LR_MULTISTEP:
        for (i = 0; i < s->n_milestones; i++) k += s->milestones[i] <= t;
        return s->base_lr * pow(s->gamma, (double)k);
    case NNC_LR_COSINE:
        return s->eta_min + (s->base_lr - s->eta_min) * (1.0 + cos(pi * (double)t / (double)s->t_max)) / 2.0;
    default:
        return s->base_lr;
    }
}

/* The learning rate of epoch t >= 0 (negative t counts as 0): warm-up, then the main schedule. */
static NNC_MAYBE_UNUSED double nnc_lr_at(const nnc_lr_schedule *s, long t)
{
    if (t < 0) t = 0;
    if (t < s->warmup)
        return s->base_lr * (s->warmup_start + (1.0 - s->warmup_start) * (double)t / (double)s->warmup);
    return nnc_lr_main(s, t - (s->warmup > 0 ? s->warmup : 0));
}
