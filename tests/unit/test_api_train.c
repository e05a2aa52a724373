/* test_api_train.c: the training API (include/nnc/nnc.h "training" block,
 * api/nnc_train.c), as an embedding program uses it.
 *
 * What is checked:
 *   - two SGD steps with momentum through the API end bit for bit where two
 *     steps of `nnc train` end (the nnc executable run on the same network
 *     file, the same fresh weights by seed and the same two batches, read in
 *     file order from an npy data set): every parameter and batchnorm buffer
 *     of nnc_trainer_save_weights equals --out's;
 *   - the loss goes down over a few steps of a tiny problem, and evaluation
 *     after them is no worse than before; steps are counted;
 *   - the weights saved (a file, or bytes in memory) are what nnc_load
 *     takes, and the inference code then classifies as the trainer does;
 *   - the network's train section gives the settings the options leave at
 *     zero (learning rate, batch), else the model's batch;
 *   - bad arguments (n over the maximum batch, a label out of range, NULL
 *     pointers, impossible settings, an untrainable network, a missing
 *     weights file, a model compiled for inference) fail with a message
 *     naming what is wrong.
 * The sanitizer build (NNC_SANITIZE) runs it with leak detection: everything
 * is freed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "nnc/nnc.h"
#include "runtime/tensor_io.h"
#include "tests/unit/npy_labels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_dir[256];

/* conv -> batchnorm -> relu -> linear: parameters and buffers. */
static const char small_net[] =
    "network small(classes = 3) {\n"
    "    input image: [1, 6, 6]\n"
    "    x = image |> conv(4, 3, pad: 1) |> batchnorm |> relu |> maxpool(2)\n"
    "    output logits = x |> flatten |> linear(classes)\n"
    "}\n";

enum { B = 4, C = 3, D = 36 };

static void path_in(char *out, size_t size, const char *name) { snprintf(out, size, "%s/%s", g_dir, name); }

/* n images of three classes (a bright third of the rows each) plus a little noise. */
static void make_data(int n, float *x, int32_t *y, uint64_t seed)
{
    RtRng rng;
    rt_rng_seed(&rng, seed);
    for (int s = 0; s < n; s++) {
        y[s] = s % C;
        for (int i = 0; i < 6; i++)
            for (int j = 0; j < 6; j++)
                x[s * D + i * 6 + j] = (i / 2 == y[s] ? 0.9f : 0.1f) + rt_rng_uniform(&rng, -0.1f, 0.1f);
    }
}

/* The model of a file (text NULL) or a string, for training (mode) or inference. */
static nnc_model *compile_or_fail(const char *path, const char *text, nnc_mode mode, int max_batch)
{
    nnc_model *m;
    char *diag = NULL;
    nnc_options o = {.opt_level = 2};
    o.mode = mode;
    o.max_batch = max_batch;
    int rc = text ? nnc_compile_string(path, text, &o, &m, &diag) : nnc_compile_file(path, &o, &m, &diag);
    if (rc != 0) fail_msg("%s", diag);
    return m;
}

static nnc_trainer *trainer_or_fail(const nnc_model *m, int max_batch, const nnc_train_options *o, const char *w)
{
    nnc_trainer *tr;
    char *err = NULL;
    if (nnc_trainer_create(m, max_batch, o, w, &tr, &err) != 0) fail_msg("%s", err);
    assert_null(err);
    return tr;
}

static void train_or_fail(nnc_trainer *tr, int n, const float *x, const int32_t *y, double lr, float *loss)
{
    const float *in[1] = {x};
    long correct = -1;
    if (nnc_train_step(tr, n, in, y, lr, loss, &correct) != 0) fail_msg("%s", nnc_trainer_error(tr));
    assert_true(correct >= 0 && correct <= n);
}

/* Every tensor of a and b: same names, shapes and bits. */
static void assert_same_weights(const char *a, const char *b)
{
    RtTensor *ta, *tb;
    int na, nb;
    char err[1024];
    if (rt_st_read(a, &ta, &na, err, sizeof err) != 0) fail_msg("%s", err);
    if (rt_st_read(b, &tb, &nb, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(na, nb);
    for (int i = 0; i < na; i++) {
        int j = 0;
        while (j < nb && strcmp(ta[i].name, tb[j].name) != 0) j++;
        if (j == nb) fail_msg("%s has no tensor '%s'", b, ta[i].name);
        assert_int_equal(ta[i].rank, tb[j].rank);
        int64_t n = rt_tensor_numel(&ta[i]);
        assert_int_equal(n, rt_tensor_numel(&tb[j]));
        if (memcmp(ta[i].data, tb[j].data, (size_t)n * sizeof(float)) != 0) {
            int64_t k = 0;
            while (ta[i].data[k] == tb[j].data[k]) k++;
            fail_msg("'%s' differs at %lld: %.9g vs %.9g", ta[i].name, (long long)k, ta[i].data[k], tb[j].data[k]);
        }
    }
    rt_tensors_free(ta, na);
    rt_tensors_free(tb, nb);
}

/* Two steps of SGD with momentum and weight decay: the API's equal nnc train's, bit for bit. */
static void test_step_equals_nnc_train(void **state)
{
    (void)state;
    char net[512], data[512], images[600], labels[600], cli_out[600], api_out[600], cmd[4096], err[256];
    path_in(net, sizeof net, "small.net");
    path_in(data, sizeof data, "data");
    path_in(images, sizeof images, "data/train_images.npy");
    path_in(labels, sizeof labels, "data/train_labels.npy");
    path_in(cli_out, sizeof cli_out, "cli.safetensors");
    path_in(api_out, sizeof api_out, "api.safetensors");
    FILE *f = fopen(net, "w");
    assert_non_null(f);
    fputs(small_net, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", data);
    assert_int_equal(system(cmd), 0);
    float x[2 * B * D];
    int32_t y[2 * B];
    make_data(2 * B, x, y, 11);
    RtTensor t = {NULL, 4, {2 * B, 1, 6, 6}, x};
    if (rt_npy_write(images, &t, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(write_labels_npy(labels, y, 2 * B), 0);

    snprintf(cmd, sizeof cmd, "'%s' train '%s' --data 'npy:%s' --batch %d --epochs 1 --no-shuffle --lr 0.1 "
                              "--momentum 0.9 --weight-decay 0.01 --seed 7 --out '%s' > '%s/cli.log' 2>&1",
             NNC_EXE, net, data, B, cli_out, g_dir);
    if (system(cmd) != 0) {
        snprintf(cmd, sizeof cmd, "cat '%s/cli.log'", g_dir);
        (void)system(cmd);
        fail_msg("nnc train failed");
    }

    nnc_model *m = compile_or_fail(net, NULL, NNC_TRAINING, B);
    nnc_train_options o = {0};
    o.optimizer = NNC_OPTIMIZER_SGD;
    o.momentum = 0.9;
    o.weight_decay = 0.01;
    o.seed = 7;
    nnc_trainer *tr = trainer_or_fail(m, B, &o, NULL);
    float l0, l1;
    train_or_fail(tr, B, x, y, 0.1, &l0);
    train_or_fail(tr, B, x + B * D, y + B, 0.1, &l1);
    assert_true(isfinite(l0) && isfinite(l1));
    assert_int_equal(nnc_trainer_steps(tr), 2);
    assert_int_equal(nnc_trainer_save_weights(tr, api_out), 0);
    assert_same_weights(api_out, cli_out);
    assert_same_weights(cli_out, api_out);
    nnc_trainer_free(tr);
    nnc_model_free(m);
}

/* A few steps on one tiny problem, the model from a string: the loss goes down. */
static void test_loss_decreases(void **state)
{
    (void)state;
    nnc_model *m = compile_or_fail("small.net", small_net, NNC_TRAINING, 2 * B);
    nnc_train_options o = {0};
    o.optimizer = NNC_OPTIMIZER_ADAM;
    o.seed = 3;
    nnc_trainer *tr = trainer_or_fail(m, 2 * B, &o, NULL);
    assert_int_equal(nnc_trainer_max_batch(tr), 2 * B);
    float x[2 * B * D], first = 0, loss = 0, before, after;
    int32_t y[2 * B];
    make_data(2 * B, x, y, 5);
    const float *in[1] = {x};
    assert_int_equal(nnc_train_eval(tr, 2 * B, in, y, &before, NULL), 0);
    for (int s = 0; s < 20; s++) {
        train_or_fail(tr, 2 * B, x, y, 0.01, &loss);
        if (s == 0) first = loss;
        assert_true(isfinite(loss));
    }
    assert_int_equal(nnc_trainer_steps(tr), 20);
    assert_true(loss < 0.5f * first);
    assert_int_equal(nnc_train_eval(tr, 2 * B, in, y, &after, NULL), 0);
    assert_true(after < before);
    assert_int_equal(nnc_trainer_steps(tr), 20);  /* evaluation is not a step */
    nnc_trainer_free(tr);
    nnc_model_free(m);
}

/* Saved weights load for inference, from the file and as the same bytes in memory. */
static void test_saved_weights_load(void **state)
{
    (void)state;
    char path[600];
    path_in(path, sizeof path, "trained.safetensors");
    nnc_model *m = compile_or_fail("small.net", small_net, NNC_TRAINING, B);
    nnc_model *inference = compile_or_fail("small.net", small_net, NNC_INFERENCE, B);
    nnc_trainer *tr = trainer_or_fail(m, B, NULL, NULL);
    float x[B * D], loss;
    int32_t y[B];
    make_data(B, x, y, 9);
    for (int s = 0; s < 3; s++) train_or_fail(tr, B, x, y, 0.05, &loss);
    assert_int_equal(nnc_trainer_save_weights(tr, path), 0);
    void *bytes;
    size_t size;
    assert_int_equal(nnc_trainer_weights(tr, &bytes, &size), 0);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *file = malloc(size + 1);
    assert_int_equal(fread(file, 1, size + 1, f), size);  /* the same length ... */
    fclose(f);
    assert_memory_equal(file, bytes, size);               /* ... and the same bytes */
    free(file);

    nnc_instance *inst;
    char *err;
    if (nnc_load(inference, path, B, &inst, &err) != 0) fail_msg("%s", err);
    float out[B * C];
    const float *in[1] = {x};
    float *outs[1] = {out};
    assert_int_equal(nnc_forward(inst, B, in, outs), 0);
    long correct_eval;
    float eval_loss;
    assert_int_equal(nnc_train_eval(tr, B, in, y, &eval_loss, &correct_eval), 0);
    long correct = 0;
    for (int s = 0; s < B; s++) {
        int best = 0;
        for (int k = 0; k < C; k++) {
            assert_true(isfinite(out[s * C + k]));
            if (out[s * C + k] > out[s * C + best]) best = k;
        }
        correct += best == y[s];
    }
    assert_int_equal(correct, correct_eval);  /* inference code and trainer's evaluation agree */
    nnc_instance_free(inst);

    /* a trainer starts from saved weights: its evaluation is the same */
    nnc_trainer *again = trainer_or_fail(m, B, NULL, path);
    float again_loss;
    assert_int_equal(nnc_train_eval(again, B, in, y, &again_loss, NULL), 0);
    assert_true(fabsf(again_loss - eval_loss) <= 1e-6f * fabsf(eval_loss));
    assert_int_equal(nnc_trainer_steps(again), 0);
    nnc_trainer_free(again);
    /* ... and from the same bytes in memory */
    nnc_trainer *from_memory;
    if (nnc_trainer_create_memory(m, B, NULL, bytes, size, &from_memory, &err) != 0) fail_msg("%s", err);
    assert_int_equal(nnc_train_eval(from_memory, B, in, y, &again_loss, NULL), 0);
    assert_true(fabsf(again_loss - eval_loss) <= 1e-6f * fabsf(eval_loss));
    nnc_trainer_free(from_memory);
    /* cut short, the bytes are refused, named as memory (not as a temporary file) */
    assert_int_equal(nnc_trainer_create_memory(m, B, NULL, bytes, size / 2, &from_memory, &err), -1);
    assert_null(from_memory);
    assert_non_null(strstr(err, "<memory>"));
    assert_null(strstr(err, "nnc-weights-"));
    free(err);
    assert_int_equal(nnc_trainer_create_memory(m, B, NULL, NULL, 0, &from_memory, &err), -1);
    assert_non_null(strstr(err, "NULL"));
    free(err);
    free(bytes);
    nnc_trainer_free(tr);
    nnc_model_free(m);
    nnc_model_free(inference);
}

/* The train section's settings where the options are zero. */
static void test_train_section_defaults(void **state)
{
    (void)state;
    char text[1024];
    snprintf(text, sizeof text, "%s\ntrain small {\n    optimizer = sgd(lr: 0.25, momentum: 0.5)\n    batch = 6\n}\n",
             small_net);
    nnc_model *m = compile_or_fail("section.net", text, NNC_TRAINING, 0);
    nnc_trainer *tr = trainer_or_fail(m, 0, NULL, NULL);
    assert_int_equal(nnc_trainer_max_batch(tr), 6);
    assert_true(nnc_trainer_lr(tr) == 0.25);
    nnc_trainer_free(tr);
    /* the options replace the section's optimizer: its momentum goes with it */
    nnc_train_options o = {0};
    o.optimizer = NNC_OPTIMIZER_ADAMW;
    tr = trainer_or_fail(m, 2, &o, NULL);
    assert_int_equal(nnc_trainer_max_batch(tr), 2);
    nnc_trainer_free(tr);
    nnc_model_free(m);
    /* a mistake in the section is a compile error, at its place, when compiling for training */
    snprintf(text, sizeof text, "%s\ntrain small {\n    optimizer = rmsprop(lr: 0.1)\n}\n", small_net);
    nnc_options co = {.opt_level = 2};
    co.mode = NNC_TRAINING;
    char *diag = NULL;
    assert_int_equal(nnc_compile_string("bad.net", text, &co, &m, &diag), -1);
    assert_non_null(strstr(diag, "bad.net:8:17: error: unknown optimizer 'rmsprop'"));
    free(diag);
    m = compile_or_fail("bad.net", text, NNC_INFERENCE, 0);  /* inference does not read it */
    nnc_model_free(m);
    m = compile_or_fail("small.net", small_net, NNC_TRAINING, 5);  /* no section: the model's batch */
    tr = trainer_or_fail(m, 0, NULL, NULL);
    assert_int_equal(nnc_trainer_max_batch(tr), 5);
    assert_true(nnc_trainer_lr(tr) == 0.01);
    nnc_trainer_free(tr);
    nnc_model_free(m);
}

static void assert_contains(const char *s, const char *part)
{
    if (!s || !strstr(s, part)) fail_msg("'%s' is not in '%s'", part, s ? s : "(null)");
}

/* create fails with a message containing part. */
static void create_fails(const nnc_model *m, int max_batch, const nnc_train_options *o, const char *w,
                         const char *part)
{
    nnc_trainer *tr = (nnc_trainer *)1;
    char *err = NULL;
    assert_int_equal(nnc_trainer_create(m, max_batch, o, w, &tr, &err), -1);
    assert_null(tr);
    assert_contains(err, part);
    free(err);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    nnc_model *m = compile_or_fail("small.net", small_net, NNC_TRAINING, B);
    nnc_trainer *tr = trainer_or_fail(m, B, NULL, NULL);
    float x[(B + 1) * D], loss = -1;
    int32_t y[B + 1];
    make_data(B + 1, x, y, 1);
    const float *in[1] = {x}, *none[1] = {NULL};
    assert_string_equal(nnc_trainer_error(tr), "");
    assert_int_equal(nnc_train_step(tr, B + 1, in, y, 0.1, &loss, NULL), -1);
    assert_contains(nnc_trainer_error(tr), "n = 5 is outside 1..4");
    assert_int_equal(nnc_train_step(tr, 0, in, y, 0.1, &loss, NULL), -1);
    assert_contains(nnc_trainer_error(tr), "n = 0");
    y[1] = 3;
    assert_int_equal(nnc_train_step(tr, B, in, y, 0.1, &loss, NULL), -1);
    assert_contains(nnc_trainer_error(tr), "label 3 of sample 1 is outside 0..2");
    assert_int_equal(nnc_train_eval(tr, B, in, y, &loss, NULL), -1);
    assert_contains(nnc_trainer_error(tr), "label 3");
    y[1] = 1;
    assert_int_equal(nnc_train_step(tr, B, NULL, y, 0.1, &loss, NULL), -1);
    assert_contains(nnc_trainer_error(tr), "inputs is NULL");
    assert_int_equal(nnc_train_step(tr, B, none, y, 0.1, &loss, NULL), -1);
    assert_contains(nnc_trainer_error(tr), "input 0 is NULL");
    assert_int_equal(nnc_train_step(tr, B, in, NULL, 0.1, &loss, NULL), -1);
    assert_contains(nnc_trainer_error(tr), "labels is NULL");
    assert_int_equal(nnc_train_step(tr, B, in, y, NAN, &loss, NULL), -1);
    assert_contains(nnc_trainer_error(tr), "learning rate");
    assert_int_equal(nnc_trainer_steps(tr), 0);  /* none of them stepped */
    assert_true(loss == -1);
    assert_int_equal(nnc_trainer_save_weights(tr, "/no/such/dir/w.safetensors"), -1);
    assert_contains(nnc_trainer_error(tr), "/no/such/dir/w.safetensors");
    assert_int_equal(nnc_trainer_weights(tr, NULL, NULL), -1);
    assert_contains(nnc_trainer_error(tr), "NULL");
    /* NULL trainers: -1, and no crash */
    assert_int_equal(nnc_train_step(NULL, B, in, y, 0.1, &loss, NULL), -1);
    assert_int_equal(nnc_trainer_save_weights(NULL, "x"), -1);
    assert_contains(nnc_trainer_error(NULL), "NULL");
    nnc_trainer_free(NULL);
    nnc_trainer_free(tr);

    create_fails(NULL, B, NULL, NULL, "the model is NULL");
    create_fails(m, -1, NULL, NULL, "max_batch -1");
    nnc_train_options o = {0};
    o.momentum = 1.0;
    create_fails(m, B, &o, NULL, "momentum 1");
    o.momentum = 0;
    o.optimizer = NNC_OPTIMIZER_ADAM;
    o.nesterov = 1;
    create_fails(m, B, &o, NULL, "nesterov needs SGD");
    o.nesterov = 0;
    o.optimizer = (nnc_optimizer)9;
    create_fails(m, B, &o, NULL, "unknown optimizer 9");
    o.optimizer = NNC_OPTIMIZER_DEFAULT;
    o.beta2 = 1.5;
    create_fails(m, B, &o, NULL, "betas must be below 1");
    create_fails(m, B, NULL, "/no/such/weights.safetensors", "/no/such/weights.safetensors");
    nnc_model_free(m);

    char text[1024];
    snprintf(text, sizeof text, "%s\ntrain small {\n    optimizer = sgd(weight_decay: -0.5)\n}\n", small_net);
    m = compile_or_fail("section.net", text, NNC_TRAINING, B);
    create_fails(m, B, NULL, NULL, "weight_decay");
    nnc_train_options wd = {0};
    wd.weight_decay = -1;  /* an explicit 0 over the section's */
    nnc_trainer *ok = trainer_or_fail(m, B, &wd, NULL);
    nnc_trainer_free(ok);
    nnc_model_free(m);

    m = compile_or_fail("small.net", small_net, NNC_INFERENCE, B);
    create_fails(m, B, NULL, NULL, "compile it with nnc_options.mode = NNC_TRAINING");
    nnc_model_free(m);
    m = compile_or_fail("two.net", "network two { input a: [4]\n input b: [4]\n output y = a + b }\n", NNC_TRAINING, B);
    create_fails(m, B, NULL, NULL, "network 'two' has 2 inputs");
    nnc_model_free(m);
    m = compile_or_fail("one.net", "network one { input a: [4]\n output y = a |> linear(1) }\n", NNC_TRAINING, B);
    create_fails(m, B, NULL, NULL, "use the loss NNC_LOSS_BCE");
    nnc_model_free(m);
}

static int setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/nnc-test-api-train-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step_equals_nnc_train),
        cmocka_unit_test(test_loss_decreases),
        cmocka_unit_test(test_saved_weights_load),
        cmocka_unit_test(test_train_section_defaults),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
