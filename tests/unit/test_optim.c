/* test_optim.c: the optimizers and schedules of runtime/snippets/optim.c on
 * small cases worked out by hand from torch.optim's update rules, and every
 * section of that file compiled on its own.
 *
 * The expected values are written as the arithmetic a reader can redo on
 * paper (1 - 0.1 * 0.5 ...), evaluated in double; the float results must be
 * within 1e-6 relative of them (a few float roundings). Bit-exact agreement
 * with PyTorch itself is tests/oracle/test_optim.py's job. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/snippets/optim.c"
#include "tests/unit/sections.h"

/* ---- helpers ---- */

static void check_near(double got, double want, const char *what, int index)
{
    double tol = 1e-6 * (fabs(want) > 1.0 ? fabs(want) : 1.0);
    if (!(fabs(got - want) <= tol)) fail_msg("%s[%d]: got %.9g, want %.9g", what, index, got, want);
}

static void check_floats(const float *got, const double *want, int n, const char *what)
{
    for (int i = 0; i < n; i++) check_near(got[i], want[i], what, i);
}

static nnc_optim sgd(double momentum, double dampening, int nesterov, double weight_decay)
{
    nnc_optim o;
    memset(&o, 0, sizeof o);
    o.kind = NNC_OPTIM_SGD, o.momentum = momentum, o.dampening = dampening, o.nesterov = nesterov;
    o.weight_decay = weight_decay;
    return o;
}

static nnc_optim adam(int kind, double weight_decay, int amsgrad)  /* torch's default betas and eps */
{
    nnc_optim o;
    memset(&o, 0, sizeof o);
    o.kind = kind, o.beta1 = 0.9, o.beta2 = 0.999, o.eps = 1e-8, o.weight_decay = weight_decay;
    o.amsgrad = amsgrad;
    return o;
}

/* ---- SGD ---- */

static void test_sgd_plain(void **state)
{
    nnc_optim o = sgd(0.0, 0.0, 0, 0.0);
    float p[2] = {1.0f, -2.0f};
    const float g[2] = {0.5f, 0.25f};
    (void)state;
    assert_int_equal(nnc_optim_state_floats(&o), 0);
    nnc_sgd_step(p, g, NULL, 2, 1, 0.1, &o);  /* no state without momentum */
    check_floats(p, (const double[]){1 - 0.1 * 0.5, -2 - 0.1 * 0.25}, 2, "sgd p");
}

static void test_sgd_weight_decay(void **state)
{
    nnc_optim o = sgd(0.0, 0.0, 0, 0.1);
    float p[1] = {1.0f};
    const float g[1] = {0.5f};
    (void)state;
    nnc_sgd_step(p, g, NULL, 1, 1, 0.1, &o);  /* d = 0.5 + 0.1 * 1 */
    check_floats(p, (const double[]){1 - 0.1 * 0.6}, 1, "sgd wd p");
}

/* torch's first step puts the gradient itself in the buffer (not (1 - dampening)
 * times it); later steps decay the buffer and add the dampened gradient. */
static void test_sgd_momentum_dampening(void **state)
{
    nnc_optim o = sgd(0.9, 0.5, 0, 0.0);
    float p[1] = {1.0f}, buf[1] = {NAN};  /* step 1 must not read the buffer */
    const float one[1] = {1.0f}, zero[1] = {0.0f};
    (void)state;
    assert_int_equal(nnc_optim_state_floats(&o), 1);
    nnc_sgd_step(p, one, buf, 1, 1, 0.1, &o);
    check_floats(buf, (const double[]){1.0}, 1, "buf 1");
    check_floats(p, (const double[]){0.9}, 1, "p 1");
    nnc_sgd_step(p, one, buf, 1, 2, 0.1, &o);
    check_floats(buf, (const double[]){0.9 * 1 + 0.5 * 1}, 1, "buf 2");
    check_floats(p, (const double[]){0.9 - 0.1 * 1.4}, 1, "p 2");
    nnc_sgd_step(p, zero, buf, 1, 3, 0.1, &o);
    check_floats(buf, (const double[]){0.9 * 1.4}, 1, "buf 3");
    check_floats(p, (const double[]){0.76 - 0.1 * 1.26}, 1, "p 3");
}

static void test_sgd_nesterov(void **state)
{
    nnc_optim o = sgd(0.9, 0.0, 1, 0.0);
    float p[1] = {1.0f}, buf[1] = {0.0f};
    const float g[1] = {1.0f};
    (void)state;
    nnc_sgd_step(p, g, buf, 1, 1, 0.1, &o);  /* buf 1, d = 1 + 0.9 * 1 */
    check_floats(p, (const double[]){1 - 0.1 * 1.9}, 1, "nesterov p 1");
    nnc_sgd_step(p, g, buf, 1, 2, 0.1, &o);  /* buf 0.9 + 1, d = 1 + 0.9 * 1.9 */
    check_floats(buf, (const double[]){1.9}, 1, "nesterov buf 2");
    check_floats(p, (const double[]){0.81 - 0.1 * 2.71}, 1, "nesterov p 2");
}

/* ---- Adam, AdamW ---- */

/* With a constant gradient the bias corrections undo the moments' decay
 * exactly: m/bc1 = g and v/bc2 = g^2, so each step moves lr * g / (|g| + eps). */
static void test_adam_bias_correction(void **state)
{
    nnc_optim o = adam(NNC_OPTIM_ADAM, 0.0, 0);
    float p[2] = {1.0f, 1.0f}, st[4] = {0};
    const float g[2] = {2.0f, -0.5f};
    (void)state;
    assert_int_equal(nnc_optim_state_floats(&o), 2);
    nnc_adam_step(p, g, st, 2, 1, 0.1, &o);
    check_floats(st, (const double[]){0.1 * 2, 0.1 * -0.5, 0.001 * 4, 0.001 * 0.25}, 4, "adam m, v 1");
    check_floats(p, (const double[]){1 - 0.1 * 2 / (2 + 1e-8), 1 + 0.1 * 0.5 / (0.5 + 1e-8)}, 2, "adam p 1");
    nnc_adam_step(p, g, st, 2, 2, 0.1, &o);
    check_floats(st, (const double[]){0.19 * 2, 0.19 * -0.5, 0.001999 * 4, 0.001999 * 0.25}, 4, "adam m, v 2");
    check_floats(p, (const double[]){0.8, 1.2}, 2, "adam p 2");
}

/* Adam's weight decay is L2 in the gradient (it shows in exp_avg); AdamW's
 * shrinks the parameter first and leaves the gradient alone. */
static void test_adam_vs_adamw_decay(void **state)
{
    nnc_optim a = adam(NNC_OPTIM_ADAM, 0.5, 0), w = adam(NNC_OPTIM_ADAMW, 0.5, 0);
    float pa[1] = {1.0f}, pw[1] = {1.0f}, sa[2] = {0}, sw[2] = {0};
    const float g[1] = {0.5f};
    (void)state;
    nnc_adam_step(pa, g, sa, 1, 1, 0.1, &a);  /* g' = 0.5 + 0.5 * 1 */
    check_floats(sa, (const double[]){0.1 * 1.0, 0.001 * 1.0}, 2, "adam L2 m, v");
    check_floats(pa, (const double[]){1 - 0.1}, 1, "adam L2 p");
    nnc_adamw_step(pw, g, sw, 1, 1, 0.1, &w);  /* p *= 1 - 0.1 * 0.5, then Adam on g */
    check_floats(sw, (const double[]){0.1 * 0.5, 0.001 * 0.25}, 2, "adamw m, v");
    check_floats(pw, (const double[]){0.95 - 0.1}, 1, "adamw p");
}

/* amsgrad divides by the largest exp_avg_sq so far: after a gradient of 0,
 * v falls to 0.999 * 0.004 but the denominator keeps 0.004. */
static void test_adam_amsgrad(void **state)
{
    nnc_optim am = adam(NNC_OPTIM_ADAM, 0.0, 1), plain = adam(NNC_OPTIM_ADAM, 0.0, 0);
    float p[1] = {1.0f}, q[1] = {1.0f}, s[3] = {0}, t[2] = {0};
    const float g1[1] = {2.0f}, g2[1] = {0.0f};
    const double bc1 = 1 - 0.9 * 0.9, bc2 = 1 - 0.999 * 0.999, m2 = 0.9 * 0.2;
    (void)state;
    assert_int_equal(nnc_optim_state_floats(&am), 3);
    nnc_adam_step(p, g1, s, 1, 1, 0.1, &am);
    nnc_adam_step(q, g1, t, 1, 1, 0.1, &plain);
    check_floats(p, (const double[]){q[0]}, 1, "amsgrad p 1");  /* same as Adam while v grows */
    nnc_adam_step(p, g2, s, 1, 2, 0.1, &am);
    nnc_adam_step(q, g2, t, 1, 2, 0.1, &plain);
    check_floats(s, (const double[]){m2, 0.999 * 0.004, 0.004}, 3, "amsgrad m, v, vmax");
    check_floats(p, (const double[]){0.9 - 0.1 / bc1 * m2 / (sqrt(0.004) / sqrt(bc2) + 1e-8)}, 1, "amsgrad p 2");
    check_floats(q, (const double[]){0.9 - 0.1 / bc1 * m2 / (sqrt(0.999 * 0.004) / sqrt(bc2) + 1e-8)}, 1,
                 "adam p 2");
}

static void test_optim_dispatch(void **state)
{
    nnc_optim o = adam(NNC_OPTIM_ADAMW, 0.5, 0);
    float p[1] = {1.0f}, q[1] = {1.0f}, s[2] = {0}, t[2] = {0};
    const float g[1] = {0.5f};
    (void)state;
    nnc_optim_step(p, g, s, 1, 1, 0.1, &o);
    nnc_adamw_step(q, g, t, 1, 1, 0.1, &o);
    assert_memory_equal(p, q, sizeof p);
    assert_memory_equal(s, t, sizeof s);
}

/* ---- schedules ---- */

static nnc_lr_schedule schedule(int kind, double base_lr)
{
    nnc_lr_schedule s;
    memset(&s, 0, sizeof s);
    s.kind = kind, s.base_lr = base_lr;
    return s;
}

static void check_lrs(const nnc_lr_schedule *s, const double *want, int n, const char *what)
{
    for (int t = 0; t < n; t++) check_near(nnc_lr_at(s, t), want[t], what, t);
}

static void test_schedule_constant_step_multistep(void **state)
{
    static const long milestones[] = {5, 2, 5};  /* any order; 5 twice decays twice, as torch's Counter */
    nnc_lr_schedule c = schedule(NNC_LR_CONSTANT, 0.1), st = schedule(NNC_LR_STEP, 1.0);
    nnc_lr_schedule ms = schedule(NNC_LR_MULTISTEP, 1.0);
    (void)state;
    check_lrs(&c, (const double[]){0.1, 0.1, 0.1}, 3, "constant");
    st.step_size = 3, st.gamma = 0.5;
    check_lrs(&st, (const double[]){1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25}, 8, "step");
    ms.milestones = milestones, ms.n_milestones = 3, ms.gamma = 0.1;
    check_lrs(&ms, (const double[]){1, 1, 0.1, 0.1, 0.1, 0.001, 0.001}, 7, "multistep");
    check_near(nnc_lr_at(&st, -3), 1.0, "negative epoch", -3);
}

static void test_schedule_cosine(void **state)
{
    nnc_lr_schedule s = schedule(NNC_LR_COSINE, 1.1);
    (void)state;
    s.t_max = 4, s.eta_min = 0.1;
    /* eta_min + (base - eta_min) (1 + cos(pi t / 4)) / 2; past t_max it rises again, as torch's */
    check_lrs(&s, (const double[]){1.1, 0.1 + (1 + sqrt(0.5)) / 2, 0.6, 0.1 + (1 - sqrt(0.5)) / 2, 0.1, 0.1 + (1 - sqrt(0.5)) / 2,
                                   0.6, 0.1 + (1 + sqrt(0.5)) / 2, 1.1},
              9, "cosine");
}

/* Warm-up, then the main schedule from its own epoch 0 (SequentialLR). */
static void test_schedule_warmup(void **state)
{
    static const long milestones[] = {1};
    nnc_lr_schedule s = schedule(NNC_LR_STEP, 1.0), m = schedule(NNC_LR_MULTISTEP, 0.5);
    (void)state;
    s.step_size = 2, s.gamma = 0.5, s.warmup = 4, s.warmup_start = 0.25;
    check_lrs(&s, (const double[]){0.25, 0.4375, 0.625, 0.8125, 1, 1, 0.5, 0.5, 0.25}, 9, "warm-up + step");
    m.milestones = milestones, m.n_milestones = 1, m.gamma = 0.1, m.warmup = 2, m.warmup_start = 1.0;
    check_lrs(&m, (const double[]){0.5, 0.5, 0.5, 0.05, 0.05}, 5, "flat warm-up + multistep");
}

/* ---- every section compiles on its own ---- */

static void snippet_path(char *buf, size_t len, const char *name)
{
#ifdef NNC_SOURCE_DIR
    snprintf(buf, len, "%s/runtime/snippets/%s", NNC_SOURCE_DIR, name);
#else
    const char *tail = strstr(__FILE__, "tests/unit/test_optim.c");
    snprintf(buf, len, "%.*sruntime/snippets/%s", tail ? (int)(tail - __FILE__) : 0, __FILE__, name);
#endif
}

static void test_sections_compile_alone(void **state)
{
    static const char *const ccs[] = {"gcc", "clang"};
    static Section s[MAX_SECTIONS];
    char path[1024], kpath[1024], dir[] = "/tmp/nnc_optim_XXXXXX", file[64], both[64], log[64];
    char *text;
    int n, compilers = 0;
    FILE *f;
    (void)state;
    snippet_path(path, sizeof path, "optim.c");
    snippet_path(kpath, sizeof kpath, "kernels.c");
    text = read_file(path);
    if (!text) fail_msg("cannot read %s: the optimizer snippet is missing", path);  /* never a skip */
    n = split_sections(text, s, 0, 0);
    assert_true(n > 1);
    assert_string_equal(s[0].name, "prologue");
    assert_non_null(mkdtemp(dir));
    snprintf(file, sizeof file, "%s/section.c", dir);
    snprintf(both, sizeof both, "%s/both.c", dir);
    snprintf(log, sizeof log, "%s/cc.log", dir);
    /* Generated training code pastes kernels.c and optim.c into one file. */
    f = fopen(both, "w");
    assert_non_null(f);
    fprintf(f, "#include \"%s\"\n#include \"%s\"\n", kpath, path);
    fclose(f);
    for (size_t c = 0; c < 2; c++) {
        if (!have_program(ccs[c])) continue;
        compilers++;
        for (int i = 0; i < n; i++) {
            int keep[MAX_SECTIONS] = {0};
            keep[0] = 1;
            mark_needs(s, i, keep);
            check_forbidden(&s[i]);
            f = fopen(file, "w");
            assert_non_null(f);
            for (int k = 0; k < n; k++)
                if (keep[k]) fwrite(s[k].text, 1, s[k].len, f);
            fclose(f);
            compile_or_fail(ccs[c], file, "-fsyntax-only", log, s[i].name);
        }
        compile_or_fail(ccs[c], path, "-O2 -c -o /dev/null", log, "the whole file");
        compile_or_fail(ccs[c], both, "-fsyntax-only", log, "kernels.c and optim.c together");
    }
    remove(file), remove(both), remove(log), rmdir(dir);
    free(text);
    assert_true(compilers > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd_plain),
        cmocka_unit_test(test_sgd_weight_decay),
        cmocka_unit_test(test_sgd_momentum_dampening),
        cmocka_unit_test(test_sgd_nesterov),
        cmocka_unit_test(test_adam_bias_correction),
        cmocka_unit_test(test_adam_vs_adamw_decay),
        cmocka_unit_test(test_adam_amsgrad),
        cmocka_unit_test(test_optim_dispatch),
        cmocka_unit_test(test_schedule_constant_step_multistep),
        cmocka_unit_test(test_schedule_cosine),
        cmocka_unit_test(test_schedule_warmup),
        cmocka_unit_test(test_sections_compile_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
