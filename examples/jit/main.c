/* jit_demo: nnc as a library, in process. The program writes a small
 * network as a string, compiles it for training (nnc_compile_string with
 * mode NNC_TRAINING), trains it a few steps through the training API
 * (nnc_trainer_*: forward, loss, backward and an SGD update per step, the
 * optimizer's state in the trainer), saves the weights, compiles the same
 * string for inference, JITs it with those weights (nnc_load) and runs it;
 * then it changes the string (a wider convolution), and does it all again.
 *
 *   jit_demo [SCRATCH_DIR]      (default: a new folder in $TMPDIR, removed at the end)
 *
 * Build it against an installed nnc with
 *   cc main.c $(pkg-config --cflags --libs nnc) -o jit_demo
 * or in nnc's tree (examples/jit/CMakeLists.txt; the test suite runs it as
 * the test example_jit). It exits with 1 when a call fails, when the loss
 * does not go down, or when an output is not a finite number.
 *
 * The data is synthetic: 8x8 images of three classes, each a bright band of
 * rows (top, middle, bottom) plus noise; the labels are the band. */
#include "nnc/nnc.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { BATCH = 16, CLASSES = 3, SIDE = 8, PIXELS = SIDE * SIDE, STEPS = 12 };

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* BATCH images and labels; seed picks the noise. */
static void make_batch(float *x, int32_t *y, unsigned seed)
{
    for (int s = 0; s < BATCH; s++) {
        y[s] = s % CLASSES;
        for (int i = 0; i < SIDE; i++)
            for (int j = 0; j < SIDE; j++) {
                seed = seed * 1103515245u + 12345u;
                float noise = (float)((seed >> 16) & 0x7fff) / 32768.0f * 0.2f - 0.1f;
                int band = i * CLASSES / SIDE;
                x[s * PIXELS + i * SIDE + j] = (band == y[s] ? 0.9f : 0.1f) + noise;
            }
    }
}

/* The network, with `width` filters in its convolution. */
static void network_text(char *buf, size_t size, int width)
{
    snprintf(buf, size,
             "network demo(classes = %d) {\n"
             "    input image: [1, %d, %d]\n"
             "    x = image |> conv(%d, 3, pad: 1) |> relu |> maxpool(2)\n"
             "    output logits = x |> flatten |> linear(classes)\n"
             "}\n",
             CLASSES, SIDE, SIDE, width);
}

/* Trains a fresh network STEPS steps on one batch; saves the weights to path. */
static int train(const nnc_model *m, const float *x, const int32_t *y, const char *path)
{
    nnc_trainer *tr;
    char *err;
    nnc_train_options o = {0};
    o.optimizer = NNC_OPTIMIZER_SGD;
    o.momentum = 0.9;
    o.seed = 1;
    double t0 = seconds();
    if (nnc_trainer_create(m, BATCH, &o, NULL, &tr, &err) != 0) {
        fprintf(stderr, "jit_demo: %s\n", err);
        free(err);
        return 1;
    }
    printf("  training module compiled and loaded in %.2f s\n", seconds() - t0);
    const float *in[1] = {x};
    float first = 0, loss = 0;
    for (int step = 0; step < STEPS; step++) {
        long correct;
        if (nnc_train_step(tr, BATCH, in, y, 0.05, &loss, &correct) != 0) {
            fprintf(stderr, "jit_demo: %s\n", nnc_trainer_error(tr));
            nnc_trainer_free(tr);
            return 1;
        }
        if (step == 0) first = loss;
        printf("  step %2ld: loss %.4f, %ld of %d right\n", nnc_trainer_steps(tr), loss, correct, BATCH);
    }
    int rc = 0;
    if (!(loss < first) || !isfinite(loss)) {
        fprintf(stderr, "jit_demo: the loss did not go down (%g, then %g)\n", first, loss);
        rc = 1;
    } else if (nnc_trainer_save_weights(tr, path) != 0) {
        fprintf(stderr, "jit_demo: %s\n", nnc_trainer_error(tr));
        rc = 1;
    } else {
        printf("  loss %.4f -> %.4f; weights saved to %s\n", first, loss, path);
    }
    nnc_trainer_free(tr);
    return rc;
}

/* JITs the inference code of m with the weights at path and classifies the batch. */
static int run(const nnc_model *m, const float *x, const int32_t *y, const char *path)
{
    nnc_instance *inst;
    char *err;
    double t0 = seconds();
    if (nnc_load(m, path, BATCH, &inst, &err) != 0) {
        fprintf(stderr, "jit_demo: %s\n", err);
        free(err);
        return 1;
    }
    printf("  inference code compiled and loaded in %.2f s\n", seconds() - t0);
    float logits[BATCH * CLASSES];
    const float *in[1] = {x};
    float *out[1] = {logits};
    if (nnc_forward(inst, BATCH, in, out) != 0) {
        fprintf(stderr, "jit_demo: %s\n", nnc_instance_error(inst));
        nnc_instance_free(inst);
        return 1;
    }
    nnc_instance_free(inst);
    int right = 0;
    for (int s = 0; s < BATCH; s++) {
        int best = 0;
        for (int k = 0; k < CLASSES; k++) {
            if (!isfinite(logits[s * CLASSES + k])) {
                fprintf(stderr, "jit_demo: output %d of sample %d is %g\n", k, s, logits[s * CLASSES + k]);
                return 1;
            }
            if (logits[s * CLASSES + k] > logits[s * CLASSES + best]) best = k;
        }
        right += best == y[s];
    }
    printf("  sample 0: logits %.3f %.3f %.3f (label %d); %d of %d classified right\n", logits[0], logits[1],
           logits[2], y[0], right, BATCH);
    return 0;
}

/* The network in text, compiled for training or for inference; NULL after printing why. */
static nnc_model *compile(const char *text, nnc_mode mode)
{
    nnc_options o = {.opt_level = 2};
    o.max_batch = BATCH;
    o.mode = mode;
    nnc_model *m;
    char *diag;
    if (nnc_compile_string("demo.net", text, &o, &m, &diag) != 0) {
        fprintf(stderr, "%s", diag);  /* demo.net:LINE:COL: error: ... */
        free(diag);
        return NULL;
    }
    return m;
}

/* One round: the network of the given width from its text, trained, then run. */
static int round_of(int width, const char *dir, const float *x, const int32_t *y)
{
    char text[1024], path[1100];
    network_text(text, sizeof text, width);
    printf("network with conv(%d, 3):\n%s", width, text);
    snprintf(path, sizeof path, "%s/demo_w%d.safetensors", dir, width);
    nnc_model *m = compile(text, NNC_TRAINING);  /* batchnorm on batch statistics, dropout active */
    int rc = m ? train(m, x, y, path) : 1;
    nnc_model_free(m);
    if (rc == 0) {
        m = compile(text, NNC_INFERENCE);  /* the optimized forward */
        rc = m ? run(m, x, y, path) : 1;
        nnc_model_free(m);
    }
    remove(path);
    return rc;
}

int main(int argc, char **argv)
{
    char dir[512];
    const char *tmp = getenv("TMPDIR");
    int own = argc < 2;
    if (own) {
        snprintf(dir, sizeof dir, "%s/jit_demo-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir)) {
            perror("jit_demo: mkdtemp");
            return 1;
        }
    } else {
        snprintf(dir, sizeof dir, "%s", argv[1]);
    }
    printf("nnc %s\n", nnc_version());
    static float x[BATCH * PIXELS];
    static int32_t y[BATCH];
    make_batch(x, y, 42);
    int rc = round_of(4, dir, x, y);
    if (rc == 0) rc = round_of(8, dir, x, y);  /* the string changed: compiled and JITted again */
    if (own) rmdir(dir);
    printf("%s\n", rc == 0 ? "ok" : "failed");
    return rc;
}
