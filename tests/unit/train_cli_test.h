/* train_cli_test.h: the helpers and fixtures of test_train_cli.c and test_train_cli_hardening.c, which
 * test, together, the driver of `nnc train` and `nnc eval` (tools/train.c).
 *
 * The driver is tested apart from the training-code generator: the tests hand
 * it (TrainSource) a training module written here by hand, softmax regression
 * on a 4x4 image (one linear layer "fc", a real gradient, SGD with momentum
 * and weight decay as torch.optim.SGD does them) behind every entry point of
 * runtime/train_abi.h, with the prefix of the tiny network written to the
 * scratch directory. It is compiled and loaded through rt_cc_load_train, as a
 * generated module would be. The data is a synthetic npy set (three classes,
 * each a bright quadrant plus noise) that softmax regression separates.
 *
 * What is checked: training lowers the loss and reaches high accuracy; the
 * --log rows; the tensors --out writes; a checkpoint plus --resume ends bit for
 * bit where an uninterrupted run ends; a resume with other settings is refused
 * naming the setting; a loss that is not finite stops the run with epoch and
 * step and leaves the last checkpoint; --freeze; the classifier-head
 * replacement note; eval's output; and the messages of bad command lines.
 * Hardening (issue 9): a checkpoint's checksum (CRC32C's check value, every
 * flipped bit of a checkpoint caught, --resume and --weights refusing a
 * corrupted file, an old checkpoint without the key accepted with a
 * warning); every inconsistent field of its metadata named with its value;
 * output paths refused before any training; optimizer settings outside
 * PyTorch's ranges refused with status 2, at their FILE:LINE:COL when the
 * train section gave them; stale temporaries of dead processes swept.
 *
 * tools/train.c, train_args.c and train_ckpt.c are #included (the test build
 * compiles one source per test), which also gives the tests their metadata
 * reader. */
#ifndef NNC_TESTS_TRAIN_CLI_TEST_H
#define NNC_TESTS_TRAIN_CLI_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tools/train.c"
#include "tools/train_args.c"
#include "tools/train_ckpt.c"

/* Each test file of the family uses some of these helpers, not all. */
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-variable"

static char g_dir[256];         /* this run's scratch directory */
static char g_net[512];         /* tiny.net in it */
static char g_data[700];        /* "npy:DIR" of the synthetic set */
static char *g_c_src;           /* the hand-written module */
static TrainSource g_src;
static char g_out[1 << 16];     /* standard output of the last command */
static char g_errout[1 << 16];  /* standard error of the last command */

static const char tiny_net[] =
    "network tiny(classes = 3) {\n"
    "    input image: [1, 4, 4]\n"
    "    output logits = image |> flatten |> linear(classes) as fc\n"
    "}\n";

static const char tiny_h[] =
    "#include <stdint.h>\n"
    "typedef struct tiny_train_config {\n"
    "    int optimizer; double momentum, dampening; int nesterov; double beta1, beta2, eps; int amsgrad;\n"
    "    double weight_decay, label_smoothing; uint64_t seed;\n"
    "} tiny_train_config;\n";

/* The module, after #include lines for the header and the safetensors snippet
 * (two literals: C99 compilers need take only 4095 bytes in one). */
static const char tiny_c1[] =
    "#include <math.h>\n"
    "enum { K = 3, D = 16, MAXB = 256 };\n"
    "typedef struct {\n"
    "    float w[K * D], b[K], mw[K * D], mb[K];\n"
    "    int trainable[2]; long step; tiny_train_config cfg; char err[256];\n"
    "} tiny_t;\n"
    "int tiny_train_create(void **out, const char *path, const tiny_train_config *cfg);\n"
    "int tiny_train_create(void **out, const char *path, const tiny_train_config *cfg) {\n"
    "    tiny_t *t = calloc(1, sizeof *t);\n"
    "    *out = t;\n"
    "    if (!t) return -1;\n"
    "    t->cfg = *cfg; t->trainable[0] = t->trainable[1] = 1;\n"
    "    nnc_st_want want[2] = {{\"fc.weight\", 2, {K, D}, t->w}, {\"fc.bias\", 1, {K}, t->b}};\n"
    "    return nnc_st_load(path, want, 2, t->err, sizeof t->err) ? -1 : 0;\n"
    "}\n"
    "int tiny_train_create_from_memory(void **out, const void *w, size_t size, const tiny_train_config *cfg);\n"
    "int tiny_train_create_from_memory(void **out, const void *w, size_t size, const tiny_train_config *cfg) {\n"
    "    tiny_t *t = calloc(1, sizeof *t);\n"
    "    *out = t;\n"
    "    if (!t) return -1;\n"
    "    t->cfg = *cfg; t->trainable[0] = t->trainable[1] = 1;\n"
    "    nnc_st_want want[2] = {{\"fc.weight\", 2, {K, D}, t->w}, {\"fc.bias\", 1, {K}, t->b}};\n"
    "    return nnc_st_load_memory(w, size, NULL, want, 2, t->err, sizeof t->err) ? -1 : 0;\n"
    "}\n"
    /* logits, mean loss and correct count of n samples; p gets the softmax */
    "static float forward(const tiny_t *t, int n, const float *x, const int32_t *y, float *p, long *correct) {\n"
    "    double loss = 0; long c = 0;\n"
    "    for (int s = 0; s < n; s++) {\n"
    "        float z[K], m; int best = 0;\n"
    "        for (int k = 0; k < K; k++) {\n"
    "            z[k] = t->b[k];\n"
    "            for (int d = 0; d < D; d++) z[k] += t->w[k * D + d] * x[s * D + d];\n"
    "            if (z[k] > z[best]) best = k;\n"
    "        }\n"
    "        m = z[best]; float sum = 0;\n"
    "        for (int k = 0; k < K; k++) sum += expf(z[k] - m);\n"
    "        for (int k = 0; k < K; k++) p[s * K + k] = expf(z[k] - m) / sum;\n"
    "        loss += (double)(logf(sum) + m - z[y[s]]);\n"
    "        c += best == y[s];\n"
    "    }\n"
    "    *correct = c;\n"
    "    return (float)(loss / n);\n"
    "}\n"
    "static void sgd(tiny_t *t, float *w, const float *g, float *buf, int count, double lr) {\n"
    "    float mom = (float)t->cfg.momentum, wd = (float)t->cfg.weight_decay;\n"
    "    for (int i = 0; i < count; i++) {\n"
    "        float d = g[i] + wd * w[i];\n"
    "        if (mom != 0) { buf[i] = t->step == 1 ? d : buf[i] * mom + d; d = buf[i]; }\n"
    "        w[i] = w[i] + (float)-lr * d;\n"
    "    }\n"
    "}\n"
    "int tiny_train_step(void *v, int n, const float *x, const int32_t *y, double lr, float *loss, long *correct);\n"
    "int tiny_train_step(void *v, int n, const float *x, const int32_t *y, double lr, float *loss, long *correct) {\n"
    "    tiny_t *t = v; float p[MAXB * K], gw[K * D] = {0}, gb[K] = {0};\n"
    "    if (n < 1 || n > MAXB) { snprintf(t->err, sizeof t->err, \"bad n %d\", n); return -1; }\n"
    "    *loss = forward(t, n, x, y, p, correct);\n"
    "    if (!isfinite(*loss)) { snprintf(t->err, sizeof t->err, \"the loss is not finite (%g)\", *loss); return -2; }\n"
    "    for (int s = 0; s < n; s++)\n"
    "        for (int k = 0; k < K; k++) {\n"
    "            float dz = (p[s * K + k] - (k == y[s])) / (float)n;\n"
    "            gb[k] += dz;\n"
    "            for (int d = 0; d < D; d++) gw[k * D + d] += dz * x[s * D + d];\n"
    "        }\n"
    "    t->step++;\n"
    "    if (t->trainable[0]) sgd(t, t->w, gw, t->mw, K * D, lr);\n"
    "    if (t->trainable[1]) sgd(t, t->b, gb, t->mb, K, lr);\n"
    "    return 0;\n"
    "}\n";
static const char tiny_c2[] =
    "int tiny_train_eval(void *v, int n, const float *x, const int32_t *y, float *loss, long *correct);\n"
    "int tiny_train_eval(void *v, int n, const float *x, const int32_t *y, float *loss, long *correct) {\n"
    "    float p[MAXB * K];\n"
    "    *loss = forward(v, n, x, y, p, correct);\n"
    "    return 0;\n"
    "}\n"
    "int tiny_train_set_trainable(void *v, int i, int trainable);\n"
    "int tiny_train_set_trainable(void *v, int i, int trainable) {\n"
    "    tiny_t *t = v;\n"
    "    if (i < 0 || i > 1) { snprintf(t->err, sizeof t->err, \"tensor %d is not a parameter\", i); return -1; }\n"
    "    t->trainable[i] = trainable;\n"
    "    return 0;\n"
    "}\n"
    "int tiny_train_tensor_count(const void *v);\n"
    "int tiny_train_tensor_count(const void *v) { return ((const tiny_t *)v)->cfg.momentum != 0 ? 4 : 2; }\n"
    "int tiny_train_tensor(void *v, int i, const char **name, int *kind, float **data, int *rank, int64_t shape[8]);\n"
    "int tiny_train_tensor(void *v, int i, const char **name, int *kind, float **data, int *rank, int64_t shape[8]) {\n"
    "    tiny_t *t = v;\n"
    "    static const char *names[] = {\"fc.weight\", \"fc.bias\", \"optim.fc.weight.momentum_buffer\",\n"
    "                                  \"optim.fc.bias.momentum_buffer\"};\n"
    "    float *ptr[] = {t->w, t->b, t->mw, t->mb};\n"
    "    if (i < 0 || i >= tiny_train_tensor_count(v)) return -1;\n"
    "    *name = names[i]; *kind = i < 2 ? 0 : 2; *data = ptr[i];\n"
    "    *rank = i % 2 ? 1 : 2; shape[0] = K; shape[1] = D;\n"
    "    return 0;\n"
    "}\n"
    "long tiny_train_get_step(const void *v);\n"
    "long tiny_train_get_step(const void *v) { return ((const tiny_t *)v)->step; }\n"
    "void tiny_train_set_step(void *v, long step);\n"
    "void tiny_train_set_step(void *v, long step) { ((tiny_t *)v)->step = step; }\n"
    "int tiny_train_max_batch(void);\n"
    "int tiny_train_max_batch(void) { return MAXB; }\n"
    "const char *tiny_train_last_error(const void *v);\n"
    "const char *tiny_train_last_error(const void *v) { return v ? ((const tiny_t *)v)->err : \"out of memory\"; }\n"
    "void tiny_train_destroy(void *v);\n"
    "void tiny_train_destroy(void *v) { free(v); }\n";

/* ---- helpers ---- */

static void path_in(char *out, size_t size, const char *name) { snprintf(out, size, "%s/%s", g_dir, name); }

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len) assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* A .npy file, format 1.0: dtype descr, shape text ("(2, 3)"). */
static void write_npy(const char *dir, const char *name, const char *descr, const char *shape, const void *data,
                      size_t bytes)
{
    char dict[256], path[1024];
    snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape);
    size_t dl = strlen(dict), hlen = dl + 1;
    hlen += (64 - (10 + hlen) % 64) % 64;
    unsigned char *b = malloc(10 + hlen + bytes);
    assert_non_null(b);
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (unsigned char)(hlen & 0xff);
    b[9] = (unsigned char)(hlen >> 8);
    memset(b + 10, ' ', hlen);
    memcpy(b + 10, dict, dl);
    b[10 + hlen - 1] = '\n';
    memcpy(b + 10 + hlen, data, bytes);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    write_file(path, b, 10 + hlen + bytes);
    free(b);
}

/* n images h x w of three classes (a bright quadrant each) plus noise, into DIR/PREFIX_*.npy. */
static void write_split(const char *dir, const char *prefix, int n, int h, int w, unsigned seed, int label_bias)
{
    float *x = malloc((size_t)n * (size_t)(h * w) * sizeof *x);
    int32_t *y = malloc((size_t)n * sizeof *y);
    assert_true(x && y);
    RtRng rng;
    rt_rng_seed(&rng, seed);
    for (int s = 0; s < n; s++) {
        int c = s % 3;
        y[s] = c + label_bias;
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++) {
                int quadrant = (i >= h / 2) * 2 + (j >= w / 2);
                x[(s * h + i) * w + j] = (quadrant == c ? 0.8f : 0.1f) + rt_rng_uniform(&rng, -0.1f, 0.1f);
            }
    }
    char name[64], shape[64];
    snprintf(name, sizeof name, "%s_images.npy", prefix);
    snprintf(shape, sizeof shape, "(%d, 1, %d, %d)", n, h, w);
    write_npy(dir, name, "<f4", shape, x, (size_t)n * (size_t)(h * w) * sizeof *x);
    snprintf(name, sizeof name, "%s_labels.npy", prefix);
    snprintf(shape, sizeof shape, "(%d,)", n);
    write_npy(dir, name, "<i4", shape, y, (size_t)n * sizeof *y);
    free(x);
    free(y);
}

static size_t read_into(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = 0;
    fclose(f);
    return n;
}

/* Runs `nnc train|eval ARGS...` (NULL-terminated) in process with the tiny
 * module; stdout and stderr land in g_out and g_errout. Returns the status. */
static int nnc(const char *cmd, ...)
{
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)cmd;
    va_list ap;
    va_start(ap, cmd);
    for (const char *a; (a = va_arg(ap, const char *));) argv[argc++] = (char *)a;
    va_end(ap);
    argv[argc] = NULL;
    char out[600], err[600];
    path_in(out, sizeof out, "stdout.txt");
    path_in(err, sizeof err, "stderr.txt");
    fflush(stdout);
    fflush(stderr);
    int save1 = dup(1), save2 = dup(2);
    int f1 = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600), f2 = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(save1 >= 0 && save2 >= 0 && f1 >= 0 && f2 >= 0);
    dup2(f1, 1);
    dup2(f2, 2);
    int rc = strcmp(cmd, "train") == 0 ? train_main(argc, argv, &g_src) : eval_main(argc, argv, &g_src);
    fflush(stdout);
    fflush(stderr);
    dup2(save1, 1);
    dup2(save2, 2);
    close(save1), close(save2), close(f1), close(f2);
    read_into(out, g_out, sizeof g_out);
    read_into(err, g_errout, sizeof g_errout);
    return rc;
}

#define assert_contains(hay, needle)                                                   \
    do {                                                                               \
        if (!strstr(hay, needle)) fail_msg("'%s' not found in:\n%s", needle, hay);     \
    } while (0)

static const RtTensor *find_tensor(const RtTensor *ts, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(ts[i].name, name) == 0) return &ts[i];
    fail_msg("no tensor '%s'", name);
    return NULL;
}

/* Whether two safetensors files hold the same tensors, bit for bit. */
static void assert_same_tensors(const char *a, const char *b)
{
    RtTensor *ta, *tb;
    int na, nb;
    char err[512];
    assert_int_equal(rt_st_read(a, &ta, &na, err, sizeof err), 0);
    assert_int_equal(rt_st_read(b, &tb, &nb, err, sizeof err), 0);
    assert_int_equal(na, nb);
    for (int i = 0; i < na; i++) {
        const RtTensor *u = find_tensor(tb, nb, ta[i].name);
        assert_true(same_shape(&ta[i], u));
        if (memcmp(ta[i].data, u->data, (size_t)rt_tensor_numel(u) * sizeof(float)) != 0)
            fail_msg("tensor '%s' differs between %s and %s", u->name, a, b);
    }
    rt_tensors_free(ta, na);
    rt_tensors_free(tb, nb);
}

/* ---- fixtures ---- */

static int setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/nnc-train-cli-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) return -1;
    path_in(g_net, sizeof g_net, "tiny.net");
    write_file(g_net, tiny_net, strlen(tiny_net));
    char dir[600];
    path_in(dir, sizeof dir, "data");
    mkdir(dir, 0700);
    write_split(dir, "train", 96, 4, 4, 1, 0);
    write_split(dir, "test", 30, 4, 4, 2, 0);
    snprintf(g_data, sizeof g_data, "npy:%s", dir);
    StrBuf c = {0};
    sb_printf(&c, "#include \"tiny_train.h\"\n#include \"%s/runtime/snippets/safetensors_load.c\"\n%s%s",
              NNC_SOURCE_DIR, tiny_c1, tiny_c2);
    g_c_src = c.data;
    g_src = (TrainSource){g_c_src, tiny_h, "tiny_train.h", "tiny"};
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    free(g_c_src);
    return system(cmd) == 0 ? 0 : -1;
}

#endif
