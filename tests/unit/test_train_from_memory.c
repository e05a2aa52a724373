/* test_train_from_memory.c: a generated training module created from the
 * bytes of a safetensors file in memory (PREFIX_train_create_from_memory).
 *
 * A module created from memory must be the module created from the file:
 * the same tensors at the start, and after one training step the same loss
 * and the same parameters, buffers and optimizer state, to the bit. LeNet-5
 * (models/lenet5.net, with Adam) is loaded by rt_load_train (the in-process
 * JIT when nnc has it), and a small network with batchnorm (running
 * statistics: buffers) by rt_cc_load_train (the system compiler), so both
 * loaders' symbol lists are exercised. A damaged image and a NULL one fail
 * with messages that say so. The graph comes through the frontend and the
 * training pipeline as `nnc --emit=train` builds it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "codegen/emit_train.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "runtime/jit.h"
#include "runtime/jit_cc.h"
#include "runtime/tensor_io.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { BATCH = 8, MAX_TENSORS = 64 };

static char g_dir[256];

static const char bn_net[] = "network bnnet(classes = 3) {\n"
                             "    input image: [2, 6, 6]\n"
                             "    x = image |> conv(4, 3, pad: 1) as conv |> batchnorm as bn |> relu |> maxpool(2)\n"
                             "    output logits = x |> flatten |> linear(classes) as fc\n"
                             "}\n";

/* The training graph of a .net file (text NULL) or of text. */
static IrGraph *training_graph(const char *path, const char *text)
{
    Arena a = {0};
    Diag d;
    char err[512] = "";
    diag_init(&d, &a);
    IrGraph *g = text ? fe_compile_text(path, text, strlen(text), NULL, &d) : fe_compile(path, NULL, &d);
    if (!g) fail_msg("%s: %s", path, d.out.data ? d.out.data : "(no diagnostics)");
    diag_free(&d);
    arena_free(&a);
    if (!pass_run_training_pipeline(g, 2, BATCH, NULL, NULL, err, sizeof err)) fail_msg("pass_run_training_pipeline: %s", err);
    return g;
}

/* Writes every parameter and buffer of g, random (running variances
 * positive), to path; returns the file's bytes in a buffer of exactly *size. */
static unsigned char *write_weights(const IrGraph *g, const char *path, size_t *size)
{
    RtTensor t[MAX_TENSORS];
    RtRng rng;
    char err[512];
    assert_true(g->n_params <= MAX_TENSORS);
    rt_rng_seed(&rng, 21);
    for (int32_t p = 0; p < g->n_params; p++) {
        const IrValue *v = &g->values[g->params[p]];
        memset(&t[p], 0, sizeof t[p]);
        t[p].name = v->name;
        t[p].rank = v->shape.rank;
        for (int k = 0; k < v->shape.rank; k++) t[p].shape[k] = v->shape.dim[k];
        int64_t count = rt_tensor_numel(&t[p]);
        bool var = strstr(v->name, "running_var") != NULL;
        t[p].data = malloc((size_t)count * sizeof(float));
        assert_non_null(t[p].data);
        for (int64_t k = 0; k < count; k++) t[p].data[k] = rt_rng_uniform(&rng, var ? 0.5f : -0.3f, var ? 1.5f : 0.3f);
    }
    if (rt_st_write(path, t, g->n_params, NULL, err, sizeof err) != 0) fail_msg("rt_st_write: %s", err);
    for (int32_t p = 0; p < g->n_params; p++) free(t[p].data);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    rewind(f);
    unsigned char *b = malloc(*size);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, *size, f), *size);
    fclose(f);
    return b;
}

/* Every tensor of a and b (names, shapes, data) is the same, to the bit;
 * returns how many floats they hold. */
static long assert_same_tensors(const RtTrainModule *mod, void *a, void *b)
{
    long floats = 0;
    int n = mod->tensor_count(a);
    assert_int_equal(mod->tensor_count(b), n);
    for (int i = 0; i < n; i++) {
        const char *na, *nb;
        int ka, kb, ra, rb;
        float *da, *db;
        int64_t sa[8], sb[8], count = 1;
        assert_int_equal(mod->tensor(a, i, &na, &ka, &da, &ra, sa), 0);
        assert_int_equal(mod->tensor(b, i, &nb, &kb, &db, &rb, sb), 0);
        assert_string_equal(na, nb);
        assert_int_equal(ka, kb);
        assert_int_equal(ra, rb);
        for (int k = 0; k < ra; k++) {
            assert_int_equal(sa[k], sb[k]);
            count *= sa[k];
        }
        if (memcmp(da, db, (size_t)count * sizeof(float)) != 0) fail_msg("tensor %s differs", na);
        floats += (long)count;
    }
    return floats;
}

/* The first float of the first tensor, to see a step change something. */
static float first_float(const RtTrainModule *mod, void *t)
{
    const char *name;
    int kind, rank;
    float *data;
    int64_t shape[8];
    assert_int_equal(mod->tensor(t, 0, &name, &kind, &data, &rank, shape), 0);
    return data[0];
}

/* Creates from file and from memory, checks they agree before and after one
 * step of n samples of `in` floats each, and that damage is reported. */
static void file_vs_memory(const RtTrainModule *mod, const IrGraph *g, const char *prefix, int in, int classes)
{
    char path[320], want[256];
    size_t size;
    snprintf(path, sizeof path, "%s/%s.safetensors", g_dir, prefix);
    unsigned char *img = write_weights(g, path, &size);
    RtTrainConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.optimizer = RT_OPTIM_ADAM;
    cfg.beta1 = 0.9, cfg.beta2 = 0.999, cfg.eps = 1e-8, cfg.weight_decay = 1e-4, cfg.seed = 3;
    void *a = NULL, *b = NULL;
    if (mod->create(&a, path, &cfg) != 0) fail_msg("create: %s", mod->last_error(a));
    unsigned char *copy = malloc(size);
    assert_non_null(copy);
    memcpy(copy, img, size);
    if (mod->create_from_memory(&b, copy, size, &cfg) != 0) fail_msg("create_from_memory: %s", mod->last_error(b));
    memset(copy, 0x5a, size);  /* the module keeps nothing of the bytes */
    free(copy);
    assert_true(assert_same_tensors(mod, a, b) > 0);

    float *x = malloc((size_t)BATCH * (size_t)in * sizeof(float));
    int32_t labels[BATCH];
    RtRng rng;
    assert_non_null(x);
    rt_rng_seed(&rng, 4);
    for (int i = 0; i < BATCH * in; i++) x[i] = rt_rng_uniform(&rng, 0.0f, 1.0f);
    for (int i = 0; i < BATCH; i++) labels[i] = i % classes;
    float before = first_float(mod, a), la = 0, lb = 0;
    long ca = 0, cb = 0;
    if (mod->step(a, BATCH, x, labels, 0.01, &la, &ca) != 0) fail_msg("step: %s", mod->last_error(a));
    if (mod->step(b, BATCH, x, labels, 0.01, &lb, &cb) != 0) fail_msg("step: %s", mod->last_error(b));
    assert_memory_equal(&la, &lb, sizeof la);
    assert_int_equal(ca, cb);
    assert_true(first_float(mod, a) != before);  /* the step did something */
    assert_same_tensors(mod, a, b);              /* parameters, buffers, optimizer state */
    mod->destroy(a);
    mod->destroy(b);
    free(x);

    snprintf(want, sizeof want, "%s_train_create: <memory>: buffer is truncated: tensor '", prefix);
    assert_int_equal(mod->create_from_memory(&a, img, size - 4, &cfg), -3);
    if (!strstr(mod->last_error(a), want)) fail_msg("message \"%s\"", mod->last_error(a));
    mod->destroy(a);
    snprintf(want, sizeof want, "%s_train_create_from_memory: NULL weights or config", prefix);
    assert_int_equal(mod->create_from_memory(&a, NULL, 0, &cfg), -1);
    assert_string_equal(mod->last_error(a), want);
    mod->destroy(a);
    assert_int_equal(mod->create_from_memory(&a, img, size, NULL), -1);
    assert_string_equal(mod->last_error(a), want);
    mod->destroy(a);
    free(img);
    unlink(path);
}

/* Emits g's training module and loads it with rt_load_train (jit) or rt_cc_load_train. */
static void load_module(const IrGraph *g, const char *prefix, bool jit, RtTrainModule *mod)
{
    StrBuf c = {0}, h = {0};
    char header[64], err[8192] = "";
    snprintf(header, sizeof header, "%s_train.h", prefix);
    CgTrainOptions opt = {.max_batch = BATCH, .header_name = header};
    if (!cg_emit_train_c(g, &opt, &c, &h, err, sizeof err)) fail_msg("cg_emit_train_c: %s", err);
    assert_non_null(strstr(h.data, "_train_create_from_memory("));
    int rc = jit ? rt_load_train(c.data, h.data, header, prefix, mod, err, sizeof err)
                 : rt_cc_load_train(c.data, h.data, header, prefix, mod, err, sizeof err);
    if (rc != 0) fail_msg("loading the training module: %s", err);
    assert_non_null(mod->create_from_memory);
    sb_free(&c);
    sb_free(&h);
}

static void test_lenet5_jit(void **state)
{
    (void)state;
    IrGraph *g = training_graph(NNC_SOURCE_DIR "/models/lenet5.net", NULL);
    RtTrainModule mod;
    load_module(g, "lenet5", true, &mod);
    file_vs_memory(&mod, g, "lenet5", 784, 10);
    rt_unload_train(&mod);
    ir_free(g);
}

static void test_batchnorm_cc(void **state)
{
    (void)state;
    IrGraph *g = training_graph("bnnet.net", bn_net);
    RtTrainModule mod;
    load_module(g, "bnnet", false, &mod);
    file_vs_memory(&mod, g, "bnnet", 72, 3);
    rt_cc_unload_train(&mod);
    ir_free(g);
}

static int setup(void **state)
{
    (void)state;
    const char *t = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/nnc_tfm_XXXXXX", t && *t ? t : "/tmp");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return rmdir(g_dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lenet5_jit),
        cmocka_unit_test(test_batchnorm_cc),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
