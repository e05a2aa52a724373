/* test_train_cli.c: the driver of `nnc train` and `nnc eval` (tools/train.c).
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

/* ---- tests ---- */

static void test_load_train_module(void **state)
{
    (void)state;
    RtTrainModule m;
    char err[4096];
    assert_int_equal(rt_cc_load_train(g_c_src, tiny_h, "tiny_train.h", "tiny", &m, err, sizeof err), 0);
    assert_int_equal(m.max_batch(), 256);
    rt_cc_unload_train(&m);
    assert_null(m.so);
    /* a module without one entry point is refused, naming it */
    assert_int_equal(rt_cc_load_train(g_c_src, tiny_h, "tiny_train.h", "other", &m, err, sizeof err), -1);
    assert_contains(err, "other_train_create");
}

static void test_learns_logs_and_evals(void **state)
{
    (void)state;
    char log[600], out[600], text[4096];
    path_in(log, sizeof log, "learn.csv");
    path_in(out, sizeof out, "learn.safetensors");
    assert_int_equal(nnc("train", g_net, "--data", g_data, "--epochs", "6", "--batch", "16", "--lr", "0.5",
                         "--momentum", "0.9", "--log", log, "--out", out, NULL), 0);
    assert_contains(g_out, "epoch 6/6: train loss");
    read_into(log, text, sizeof text);
    assert_true(strncmp(text, "epoch,train_loss,train_accuracy,test_loss,test_accuracy,images_per_second\n", 74) == 0);
    double first = 0, last = 0, acc = 0, test_acc = 0;
    int rows = 0;
    for (char *line = strchr(text, '\n') + 1; *line; line = strchr(line, '\n') + 1) {
        long e;
        double tl, ta, vl, va, ips;
        assert_int_equal(sscanf(line, "%ld,%lf,%lf,%lf,%lf,%lf", &e, &tl, &ta, &vl, &va, &ips), 6);
        assert_int_equal(e, ++rows);
        if (rows == 1) first = tl;
        last = tl, acc = ta, test_acc = va;
        assert_true(ips > 0);
    }
    assert_int_equal(rows, 6);
    assert_true(last < first / 4);
    assert_true(acc >= 0.95 && test_acc >= 0.95);

    /* --out: the parameters, not the optimizer state */
    char **names;
    int n;
    assert_int_equal(rt_st_names(out, &names, &n, text, sizeof text), 0);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "fc.weight");
    assert_string_equal(names[1], "fc.bias");
    free(names);

    /* eval prints loss and accuracy of the test split */
    assert_int_equal(nnc("eval", g_net, "--weights", out, "--data", g_data, "--batch", "7", NULL), 0);
    double loss, eacc;
    assert_int_equal(sscanf(g_out, "loss: %lf\naccuracy: %lf\n", &loss, &eacc), 2);
    assert_true(eacc >= 0.95 && loss < 0.5);
    assert_contains(g_errout, "test split");
}

/* 2 epochs, or 1 epoch then --resume for the second: the same bits. */
static void test_resume_is_exact(void **state)
{
    (void)state;
    char ca[600], cb[600], oa[600], ob[600], log[600], text[4096];
    path_in(ca, sizeof ca, "a.ckpt");
    path_in(cb, sizeof cb, "b.ckpt");
    path_in(oa, sizeof oa, "a.safetensors");
    path_in(ob, sizeof ob, "b.safetensors");
    path_in(log, sizeof log, "b.csv");
    assert_int_equal(nnc("train", g_net, "--data", g_data, "--epochs", "2", "--batch", "10", "--lr", "0.3",
                         "--momentum", "0.9", "--weight-decay", "0.001", "--seed", "7", "--augment", "flip",
                         "--checkpoint", ca, "--out", oa, NULL), 0);
    assert_int_equal(nnc("train", g_net, "--data", g_data, "--epochs", "1", "--batch", "10", "--lr", "0.3",
                         "--momentum", "0.9", "--weight-decay", "0.001", "--seed", "7", "--augment", "flip",
                         "--checkpoint", cb, "--log", log, NULL), 0);
    /* the checkpoint: every tensor of the table, epoch, step, seed */
    char **kv;
    int nkv;
    assert_true(st_metadata(cb, &kv, &nkv));
    assert_string_equal(meta_get(kv, nkv, "nnc_epoch"), "1");
    assert_string_equal(meta_get(kv, nkv, "nnc_step"), "10");
    assert_string_equal(meta_get(kv, nkv, "nnc_seed"), "7");
    assert_non_null(meta_get(kv, nkv, "nnc_fingerprint"));
    meta_free(kv, nkv);
    char **names;
    int n;
    assert_int_equal(rt_st_names(cb, &names, &n, text, sizeof text), 0);
    assert_int_equal(n, 4);
    assert_string_equal(names[2], "optim.fc.weight.momentum_buffer");
    free(names);

    assert_int_equal(nnc("train", g_net, "--data", g_data, "--epochs", "2", "--batch", "10", "--lr", "0.3",
                         "--momentum", "0.9", "--weight-decay", "0.001", "--seed", "7", "--augment", "flip",
                         "--checkpoint", cb, "--resume", "--out", ob, "--log", log, NULL), 0);
    assert_contains(g_errout, "resuming");
    assert_contains(g_out, "epoch 2/2");
    assert_true(strstr(g_out, "epoch 1/2") == NULL);
    assert_same_tensors(oa, ob);
    assert_same_tensors(ca, cb);
    /* the log keeps the first run's row and adds the second */
    read_into(log, text, sizeof text);
    assert_non_null(strstr(text, "\n1,"));
    assert_non_null(strstr(text, "\n2,"));
}

static void test_resume_refuses_other_settings(void **state)
{
    (void)state;
    char ck[600];
    path_in(ck, sizeof ck, "fp.ckpt");
    assert_int_equal(nnc("train", g_net, "--data", g_data, "--batch", "10", "--checkpoint", ck, NULL), 0);
    assert_int_equal(nnc("train", g_net, "--data", g_data, "--batch", "10", "--lr", "0.02", "--epochs", "2",
                         "--checkpoint", ck, "--resume", NULL), 1);
    assert_contains(g_errout, "--lr '0.01");
    assert_contains(g_errout, "this run has --lr '0.02");
    assert_int_equal(nnc("train", g_net, "--data", g_data, "--batch", "12", "--epochs", "2", "--checkpoint", ck,
                         "--resume", NULL), 1);
    assert_contains(g_errout, "--batch '10'");
    /* the same settings resume */
    assert_int_equal(nnc("train", g_net, "--data", g_data, "--batch", "10", "--epochs", "2", "--checkpoint", ck,
                         "--resume", NULL), 0);
    /* a file that is not a checkpoint */
    char w[600], err[512];
    float b[3] = {0};
    RtTensor t = {.name = "fc.bias", .rank = 1, .shape = {3}, .data = b};
    path_in(w, sizeof w, "plain.safetensors");
    assert_int_equal(rt_st_write(w, &t, 1, NULL, err, sizeof err), 0);
    assert_int_equal(nnc("train", g_net, "--data", g_data, "--checkpoint", w, "--resume", NULL), 1);
    assert_contains(g_errout, "not a checkpoint");
}

/* lr 1 in epoch 1, then 1e300 (inf as a float): the loss is NaN in epoch 2. */
static void test_nan_stops_and_keeps_checkpoint(void **state)
{
    (void)state;
    char ck[600], out[600];
    path_in(ck, sizeof ck, "nan.ckpt");
    path_in(out, sizeof out, "nan.safetensors");
    assert_int_equal(nnc("train", g_net, "--data", g_data, "--epochs", "3", "--batch", "8", "--lr", "1",
                         "--schedule", "step:1:1e300", "--checkpoint", ck, "--out", out, NULL), 1);
    assert_contains(g_errout, "epoch 2, step ");
    assert_contains(g_errout, "not finite");
    assert_contains(g_errout, "still holds epoch 1");
    char **kv;
    int nkv;
    assert_true(st_metadata(ck, &kv, &nkv));
    assert_string_equal(meta_get(kv, nkv, "nnc_epoch"), "1");
    meta_free(kv, nkv);
    RtTensor *ts;
    int n;
    char err[512];
    assert_int_equal(rt_st_read(ck, &ts, &n, err, sizeof err), 0);
    for (int i = 0; i < n; i++)
        for (int64_t k = 0; k < rt_tensor_numel(&ts[i]); k++) assert_true(isfinite(ts[i].data[k]));
    rt_tensors_free(ts, n);
    assert_int_equal(access(out, F_OK), -1);
}

static void test_freeze_and_head(void **state)
{
    (void)state;
    char w0[600], out[600], err[512];
    path_in(w0, sizeof w0, "w0.safetensors");
    path_in(out, sizeof out, "frozen.safetensors");
    float w[3 * 16], b[3] = {0.25f, -0.5f, 0.125f};
    for (int i = 0; i < 48; i++) w[i] = 0.01f * (float)(i % 7);
    RtTensor ts[2] = {{.name = "fc.weight", .rank = 2, .shape = {3, 16}, .data = w},
                      {.name = "fc.bias", .rank = 1, .shape = {3}, .data = b}};
    assert_int_equal(rt_st_write(w0, ts, 2, NULL, err, sizeof err), 0);
    assert_int_equal(nnc("train", g_net, "--data", g_data, "--weights", w0, "--freeze", "fc.b*", "--lr", "0.5",
                         "--out", out, NULL), 0);
    assert_contains(g_errout, "1 parameter tensor frozen");
    RtTensor *got;
    int n;
    assert_int_equal(rt_st_read(out, &got, &n, err, sizeof err), 0);
    assert_memory_equal(find_tensor(got, n, "fc.bias")->data, b, sizeof b);
    assert_memory_not_equal(find_tensor(got, n, "fc.weight")->data, w, sizeof w);
    rt_tensors_free(got, n);

    /* a pattern that matches nothing is an error that lists the parameters */
    assert_int_equal(nnc("train", g_net, "--data", g_data, "--freeze", "features.*", NULL), 1);
    assert_contains(g_errout, "--freeze 'features.*' matches no parameter");
    assert_contains(g_errout, "fc.weight, fc.bias");

    /* a head of another shape (5 classes) is initialized afresh, with a note */
    float w5[5 * 16] = {0};
    RtTensor t5[2] = {{.name = "fc.weight", .rank = 2, .shape = {5, 16}, .data = w5},
                      {.name = "fc.bias", .rank = 1, .shape = {3}, .data = b}};
    assert_int_equal(rt_st_write(w0, t5, 2, NULL, err, sizeof err), 0);
    assert_int_equal(nnc("train", g_net, "--data", g_data, "--weights", w0, "--freeze", "fc.bias", "--out", out, NULL), 0);
    assert_contains(g_errout, "'fc.weight' has shape [5, 16], network 'tiny' has [3, 16]; initialized afresh");
    assert_int_equal(rt_st_read(out, &got, &n, err, sizeof err), 0);
    assert_memory_equal(find_tensor(got, n, "fc.bias")->data, b, sizeof b);
    rt_tensors_free(got, n);
}

static void test_data_must_fit(void **state)
{
    (void)state;
    char dir[600], spec[700];
    path_in(dir, sizeof dir, "wide");
    mkdir(dir, 0700);
    write_split(dir, "train", 9, 4, 5, 3, 0);
    snprintf(spec, sizeof spec, "npy:%s", dir);
    assert_int_equal(nnc("train", g_net, "--data", spec, NULL), 1);
    assert_contains(g_errout, "has images of shape [1, 4, 5], but input 'image' of network 'tiny' is [1, 4, 4]");
    path_in(dir, sizeof dir, "many");
    mkdir(dir, 0700);
    write_split(dir, "train", 9, 4, 4, 3, 2);  /* labels 2..4 */
    snprintf(spec, sizeof spec, "npy:%s", dir);
    assert_int_equal(nnc("train", g_net, "--data", spec, NULL), 1);
    assert_contains(g_errout, "out of range");
}

static void test_bad_command_lines(void **state)
{
    (void)state;
    static const struct {
        const char *args[6];
        const char *says;
    } cases[] = {
        {{"--bogus"}, "unknown option '--bogus'"},
        {{"--optimizer", "rmsprop"}, "--optimizer takes sgd, adam or adamw, not 'rmsprop'"},
        {{"--lr", "-1"}, "--lr needs a number >= 0, got '-1'"},
        {{"--epochs", "0"}, "--epochs needs a whole number from 1"},
        {{"--batch", "x"}, "--batch needs a whole number"},
        {{"--schedule", "linear"}, "--schedule takes constant, step:STEP_SIZE[:GAMMA]"},
        {{"--schedule", "step:0"}, "not 'step:0'"},
        {{"--schedule", "multistep:3,x"}, "not 'multistep:3,x'"},
        {{"--augment", "crop:0"}, "--augment takes crop:P"},
        {{"--augment", "rotate"}, "not 'rotate'"},
        {{"--normalize", "0.5"}, "--normalize '0.5'"},
        {{"--resume"}, "--resume needs --checkpoint"},
        {{"--optimizer", "adam", "--momentum", "0.9"}, "--momentum applies to --optimizer sgd only"},
        {{"--nesterov"}, "--nesterov needs --momentum"},
        {{"--label-smoothing", "2"}, "--label-smoothing needs a number from 0 to 1"},
        {{"--seed", "-3"}, "--seed needs a whole number"},
        {{"--nesterov=1"}, "--nesterov takes no value"},
        {{"--out"}, "--out needs a value"},
    };
    for (size_t i = 0; i < NNC_COUNT(cases); i++) {
        const char *const *a = cases[i].args;
        int rc = nnc("train", g_net, "--data", g_data, a[0], a[1], a[2], a[3], a[4], NULL);
        if (rc != 2) fail_msg("case %zu (%s): status %d, stderr: %s", i, a[0], rc, g_errout);
        assert_contains(g_errout, cases[i].says);
    }
    assert_int_equal(nnc("train", g_net, NULL), 2);
    assert_contains(g_errout, "--data KIND:PATH is required");
    assert_int_equal(nnc("train", "--data", g_data, NULL), 2);
    assert_contains(g_errout, "no model file given");
    assert_int_equal(nnc("eval", g_net, "--data", g_data, NULL), 2);
    assert_contains(g_errout, "--weights W.safetensors is required");
    assert_int_equal(nnc("eval", g_net, "--data", g_data, "--weights", "w", "--lr", "1", NULL), 2);
    assert_contains(g_errout, "--lr is an option of nnc train, not of nnc eval");
    /* user errors: status 1 */
    assert_int_equal(nnc("train", g_net, "--data", "npy:/nonexistent", NULL), 1);
    assert_contains(g_errout, "npy:/nonexistent");
    assert_int_equal(nnc("eval", g_net, "--data", g_data, "--weights", "/nonexistent.safetensors", NULL), 1);
    assert_contains(g_errout, "/nonexistent.safetensors");
}

/* The schedules as train.c builds them from the command line (the model must
 * exist: parse_args reads its train section). */
static void test_schedule_parsing(void **state)
{
    (void)state;
    TrainArgs t;
    char *argv[] = {"train", g_net, "--data", "npy:x", "--lr", "0.1", "--epochs", "10", "--warmup", "2",
                    "--schedule", "cosine:0.001", NULL};
    assert_int_equal(parse_args(12, argv, &t), 0);
    assert_int_equal(t.sched.kind, NNC_LR_COSINE);
    assert_int_equal(t.sched.t_max, 8);
    assert_true(fabs(nnc_lr_at(&t.sched, 0) - 0.1 / 3) < 1e-15);
    assert_true(fabs(nnc_lr_at(&t.sched, 2) - 0.1) < 1e-15);
    assert_true(fabs(nnc_lr_at(&t.sched, 10) - 0.001) < 1e-15);
    free_args(&t);
    char *argv2[] = {"train", g_net, "--data", "npy:x", "--schedule=multistep:3,6:0.5", "--optimizer", "adamw", NULL};
    assert_int_equal(parse_args(7, argv2, &t), 0);
    assert_int_equal(t.sched.n_milestones, 2);
    assert_true(nnc_lr_at(&t.sched, 6) == 0.01 * 0.25);
    assert_true(t.cfg.weight_decay == 0.01 && t.cfg.optimizer == RT_OPTIM_ADAMW);
    free_args(&t);
}


/* ---- hardening (issue 9) ---- */

static void test_crc32c(void **state)
{
    (void)state;
    assert_int_equal(rt_crc32c(0, "123456789", 9), 0xe3069283u);  /* the CRC-32C check value (RFC 3720) */
    assert_int_equal(rt_crc32c(rt_crc32c(0, "1234", 4), "56789", 5), 0xe3069283u);
    assert_int_equal(rt_crc32c(0, "", 0), 0);
    unsigned char zeros[32] = {0};
    assert_int_equal(rt_crc32c(0, zeros, 32), 0x8a9136aau);  /* RFC 3720 B.4: 32 bytes of zeros */
}

static unsigned char *slurp(const char *path, size_t *len)
{
    const char *why;
    unsigned char *b = (unsigned char *)nnc_read_file(path, len, &why);
    assert_non_null(b);
    return b;
}

static void spew(const char *path, const void *b, size_t len) { write_file(path, b, len); }

/* A checkpoint of one epoch (batch 10: 10 steps) at DIR/name. */
static void make_checkpoint(char *path, size_t size, const char *name)
{
    path_in(path, size, name);
    assert_int_equal(nnc("train", g_net, "--data", g_data, "--batch", "10", "--momentum", "0.5", "--checkpoint", path,
                         NULL), 0);
}

/* Every single flipped bit of a checkpoint is caught, in memory and through --resume. */
static void test_checkpoint_checksum(void **state)
{
    (void)state;
    char ck[600], bad[600], err[1024];
    make_checkpoint(ck, sizeof ck, "sum.ckpt");
    size_t len;
    unsigned char *b = slurp(ck, &len);
    assert_int_equal(rt_checkpoint_check_bytes(b, len, "sum.ckpt", err, sizeof err), RT_CKPT_VERIFIED);
    assert_int_equal(rt_checkpoint_verify_file(ck, err, sizeof err), RT_CKPT_VERIFIED);
    for (size_t i = 0; i < len; i++)  /* a flip in the key's own name too: its value still looks like a sum */
        for (int bit = 0; bit < 8; bit++) {
            b[i] ^= (unsigned char)(1 << bit);
            if (rt_checkpoint_verify_bytes(b, len, "x", err, sizeof err))
                fail_msg("bit %d of byte %zu flipped: not caught", bit, i);
            b[i] ^= (unsigned char)(1 << bit);
        }
    assert_int_equal(rt_checkpoint_check_bytes(b, len, "x", err, sizeof err), RT_CKPT_VERIFIED);
    assert_false(rt_checkpoint_verify_bytes(b, len - 1, "x", err, sizeof err));  /* truncated */
    assert_false(rt_checkpoint_verify_bytes(b, 5, "x", err, sizeof err));

    /* a bit of the data flipped: --resume, train --weights and eval --weights refuse the file */
    path_in(bad, sizeof bad, "bad.ckpt");
    b[len - 3] ^= 0x20;
    spew(bad, b, len);
    assert_int_equal(nnc("train", g_net, "--data", g_data, "--batch", "10", "--momentum", "0.5", "--epochs", "2",
                         "--checkpoint", bad, "--resume", NULL), 1);
    assert_contains(g_errout, bad);
    assert_contains(g_errout, "checksum mismatch: nnc_checksum says crc32c:");
    assert_contains(g_errout, "the contents give crc32c:");
    assert_contains(g_errout, "corrupted");
    assert_true(strstr(g_out, "epoch 2/2") == NULL);
    assert_int_equal(nnc("train", g_net, "--data", g_data, "--weights", bad, NULL), 1);
    assert_contains(g_errout, "--weights");
    assert_contains(g_errout, "checksum mismatch");
    assert_int_equal(nnc("eval", g_net, "--data", g_data, "--weights", bad, NULL), 1);
    assert_contains(g_errout, "checksum mismatch");
    /* the intact one loads everywhere */
    assert_int_equal(nnc("eval", g_net, "--data", g_data, "--weights", ck, NULL), 0);
    assert_int_equal(nnc("train", g_net, "--data", g_data, "--batch", "10", "--momentum", "0.5", "--epochs", "2",
                         "--checkpoint", ck, "--resume", NULL), 0);
    assert_contains(g_out, "epoch 2/2");
    free(b);
}

/* Rewrites checkpoint src to dst with metadata key set to value (value NULL:
 * the key left out; key NULL: unchanged), with a valid checksum unless plain
 * (then none: a checkpoint of an nnc before checksums). */
static void forge(const char *src, const char *dst, const char *key, const char *value, bool plain)
{
    RtTensor *ts;
    int n, nkv;
    char **kv, err[512];
    assert_int_equal(rt_st_read(src, &ts, &n, err, sizeof err), 0);
    assert_true(rt_checkpoint_metadata(src, &kv, &nkv));
    StrBuf meta = {0};
    sb_append(&meta, "{");
    for (int i = 0; i < nkv; i++) {
        if (strcmp(kv[2 * i], RT_CKPT_KEY) == 0 || (key && !value && strcmp(kv[2 * i], key) == 0)) continue;
        json_pair(&meta, kv[2 * i], key && strcmp(kv[2 * i], key) == 0 ? value : kv[2 * i + 1]);
    }
    sb_append(&meta, "}");
    if (plain) assert_int_equal(rt_st_write(dst, ts, n, meta.data, err, sizeof err), 0);
    else assert_int_equal(rt_checkpoint_write(dst, ts, n, meta.data, err, sizeof err), 0);
    sb_free(&meta);
    rt_checkpoint_meta_free(kv, nkv);
    rt_tensors_free(ts, n);
}

static int resume(const char *ck)
{
    return nnc("train", g_net, "--data", g_data, "--batch", "10", "--momentum", "0.5", "--epochs", "3", "--checkpoint",
               ck, "--resume", NULL);
}

/* Each inconsistent field is named with its value. */
static void test_checkpoint_fields(void **state)
{
    (void)state;
    char ck[600], f[600];
    make_checkpoint(ck, sizeof ck, "fields.ckpt");
    path_in(f, sizeof f, "forged.ckpt");
    forge(ck, f, "nnc_epoch", "-1", false);
    assert_int_equal(resume(f), 1);
    assert_contains(g_errout, "nnc_epoch = -1 is not a whole number >= 0");
    forge(ck, f, "nnc_step", "abc", false);
    assert_int_equal(resume(f), 1);
    assert_contains(g_errout, "nnc_step = abc is not a whole number >= 0");
    forge(ck, f, "nnc_step", "9", false);  /* epoch 1 of 10 steps */
    assert_int_equal(resume(f), 1);
    assert_contains(g_errout, "nnc_step = 9 does not match epoch 1 of 10 steps");
    forge(ck, f, "nnc_epoch", "2", false);  /* step 10 */
    assert_int_equal(resume(f), 1);
    assert_contains(g_errout, "nnc_step = 10 does not match epoch 2 of 10 steps");
    forge(ck, f, "nnc_step", NULL, false);
    forge(f, f, "nnc_epoch", "x", false);
    assert_int_equal(resume(f), 1);  /* both reported */
    assert_contains(g_errout, "nnc_epoch = x is not a whole number >= 0");
    assert_contains(g_errout, "nnc_step is missing from its metadata");
    forge(ck, f, "nnc_seed", "5", false);
    assert_int_equal(resume(f), 1);
    assert_contains(g_errout, "nnc_seed = 5, this run has --seed 0");
    forge(ck, f, "nnc_network", "other", false);
    assert_int_equal(resume(f), 1);
    assert_contains(g_errout, "nnc_network = 'other', this run trains network 'tiny'");
    /* every differing setting is named, not only the first */
    assert_int_equal(nnc("train", g_net, "--data", g_data, "--batch", "10", "--momentum", "0.25", "--lr", "0.5",
                         "--epochs", "3", "--checkpoint", ck, "--resume", NULL), 1);
    assert_contains(g_errout, "--lr '0.01");
    assert_contains(g_errout, "--momentum '0.5'");
    /* an old checkpoint (no checksum) resumes, with a warning */
    forge(ck, f, NULL, NULL, true);
    assert_int_equal(rt_checkpoint_verify_file(f, NULL, 0), RT_CKPT_UNSIGNED);
    assert_int_equal(resume(f), 0);
    assert_contains(g_errout, "warning: ");
    assert_contains(g_errout, "has no nnc_checksum");
    assert_contains(g_out, "epoch 3/3");
    assert_int_equal(rt_checkpoint_verify_file(f, NULL, 0), RT_CKPT_VERIFIED);  /* what it wrote has one */
}

/* --out, --checkpoint and --log are checked before anything is trained, and nothing is left behind. */
static void test_outputs_checked_first(void **state)
{
    (void)state;
    char good[600], dir[600], missing[700];
    path_in(good, sizeof good, "early.safetensors");
    path_in(dir, sizeof dir, "a-directory");
    mkdir(dir, 0700);
    snprintf(missing, sizeof missing, "%s/no-such-dir/w.safetensors", g_dir);
    static const char *flags[] = {"--out", "--checkpoint", "--log"};
    for (size_t i = 0; i < NNC_COUNT(flags); i++) {
        assert_int_equal(nnc("train", g_net, "--data", g_data, "--epochs", "3", flags[i], missing, NULL), 1);
        assert_contains(g_errout, flags[i]);
        assert_contains(g_errout, "no-such-dir' does not exist");
        assert_contains(g_errout, "nothing was trained");
        assert_true(strstr(g_out, "epoch") == NULL);
        assert_int_equal(nnc("train", g_net, "--data", g_data, "--epochs", "3", flags[i], dir, NULL), 1);
        assert_contains(g_errout, "is a directory");
        assert_true(strstr(g_out, "epoch") == NULL);
    }
    if (geteuid() != 0) {  /* root writes anywhere */
        char ro[600], in_ro[700];
        path_in(ro, sizeof ro, "read-only");
        mkdir(ro, 0500);
        snprintf(in_ro, sizeof in_ro, "%s/w.safetensors", ro);
        assert_int_equal(nnc("train", g_net, "--data", g_data, "--out", in_ro, NULL), 1);
        assert_contains(g_errout, "Permission denied");
        assert_true(strstr(g_out, "epoch") == NULL);
    }
    assert_int_equal(nnc("train", g_net, "--data", g_data, "--out", good, "--checkpoint", good, NULL), 2);
    assert_contains(g_errout, "--out and --checkpoint name the same file");
    /* the probe leaves nothing: the directory holds no temporary */
    char cmd[800];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | grep -q nnc-tmp", g_dir);
    assert_int_not_equal(system(cmd), 0);
    assert_int_equal(access(good, F_OK), -1);
}

/* Optimizer settings outside PyTorch's ranges: status 2, flag and value named. */
static void test_optimizer_ranges(void **state)
{
    (void)state;
    static const struct {
        const char *args[4];
        const char *says;
    } cases[] = {
        {{"--momentum", "2"}, "--momentum needs a number from 0 up to but not including 1"},
        {{"--momentum", "1"}, "got '1'"},
        {{"--momentum", "-0.1"}, "got '-0.1'"},
        {{"--weight-decay", "-1"}, "--weight-decay needs a number >= 0, got '-1'"},
        {{"--lr", "nan"}, "--lr needs a number >= 0, got 'nan'"},
        {{"--label-smoothing", "1.5"}, "--label-smoothing needs a number from 0 to 1"},
        {{"--schedule", "multistep:5,2"}, "--schedule 'multistep:5,2': the milestones of multistep must increase"},
        {{"--schedule", "multistep:2,2"}, "must increase strictly"},
        {{"--schedule", "step:2:-0.5"}, "not 'step:2:-0.5'"},
        {{"--optimizer", "adam", "--nesterov"}, "--nesterov applies to --optimizer sgd only"},
        {{"--nesterov", "--momentum", "0"}, "--nesterov needs --momentum greater than 0"},
    };
    for (size_t i = 0; i < NNC_COUNT(cases); i++) {
        const char *const *a = cases[i].args;
        int rc = nnc("train", g_net, "--data", g_data, a[0], a[1], a[2], a[3], NULL);
        if (rc != 2) fail_msg("case %zu (%s %s): status %d, stderr: %s", i, a[0], a[1], rc, g_errout);
        assert_contains(g_errout, cases[i].says);
        assert_true(strstr(g_out, "epoch") == NULL);
    }
    /* the same values from the train section: refused at their place in the file */
    char net[600];
    path_in(net, sizeof net, "sect.net");
    static const char sect[] = "network tiny(classes = 3) {\n"
                               "    input image: [1, 4, 4]\n"
                               "    output logits = image |> flatten |> linear(classes) as fc\n"
                               "}\n"
                               "train tiny {\n"
                               "    optimizer = sgd(lr: 0.1, momentum: 2)\n"
                               "    schedule = multistep(milestones: [5, 2])\n"
                               "}\n";
    write_file(net, sect, strlen(sect));
    assert_int_equal(nnc("train", net, "--data", g_data, NULL), 2);
    assert_contains(g_errout, "sect.net:6:30: in the train section: --momentum needs a number from 0 up to but not "
                              "including 1");
    assert_contains(g_errout, "got '2'");
    assert_int_equal(nnc("train", net, "--data", g_data, "--momentum", "0.9", NULL), 2);  /* the command line wins */
    assert_contains(g_errout, "sect.net:7:5: in the train section: --schedule 'multistep:5,2'");
    assert_int_equal(nnc("train", net, "--data", g_data, "--momentum", "0.9", "--schedule", "multistep:2,5", NULL), 0);
}

/* Temporaries of dead processes are swept by the next run that writes the
 * same file; those of a live process stay. */
static void test_stale_temporaries_swept(void **state)
{
    (void)state;
    pid_t dead = fork();  /* a pid that certainly ran and ended */
    assert_true(dead >= 0);
    if (dead == 0) _exit(0);
    assert_int_equal(waitpid(dead, NULL, 0), dead);
    char ck[600], stale[700], stale_old[700], legacy[700], live[700], other[700], jit[700], jit_file[800], live_jit[700];
    path_in(ck, sizeof ck, "sweep.ckpt");
    snprintf(stale, sizeof stale, "%s/.sweep.ckpt.nnc-tmp.%ld", g_dir, (long)dead);
    snprintf(stale_old, sizeof stale_old, "%s/.sweep.ckpt.nnc-tmp.%ld-old", g_dir, (long)dead);
    snprintf(legacy, sizeof legacy, "%s/sweep.ckpt.tmp.%ld", g_dir, (long)dead);  /* earlier nnc's name */
    snprintf(live, sizeof live, "%s/.sweep.ckpt.nnc-tmp.1", g_dir);          /* pid 1 runs */
    snprintf(other, sizeof other, "%s/.other.ckpt.nnc-tmp.%ld", g_dir, (long)dead);  /* another file's */
    snprintf(jit, sizeof jit, "%s/nnc-jit-%ld-AbC123", g_dir, (long)dead);
    snprintf(jit_file, sizeof jit_file, "%s/model.c", jit);
    snprintf(live_jit, sizeof live_jit, "%s/nnc-jit-1-AbC123", g_dir);
    const char *files[] = {stale, stale_old, legacy, live, other};
    for (size_t i = 0; i < NNC_COUNT(files); i++) write_file(files[i], "x", 1);
    assert_int_equal(mkdir(jit, 0700), 0);
    assert_int_equal(mkdir(live_jit, 0700), 0);
    write_file(jit_file, "int x;", 6);
    char *old_tmp = getenv("TMPDIR") ? strdup(getenv("TMPDIR")) : NULL;
    setenv("TMPDIR", g_dir, 1);  /* the JIT builds here, and sweeps here */
    RtTrainModule m;
    char err[4096];
    assert_int_equal(rt_cc_load_train(g_c_src, tiny_h, "tiny_train.h", "tiny", &m, err, sizeof err), 0);
    rt_cc_unload_train(&m);
    assert_int_equal(access(jit, F_OK), -1);
    assert_int_equal(access(live_jit, F_OK), 0);
    assert_int_equal(nnc("train", g_net, "--data", g_data, "--checkpoint", ck, NULL), 0);
    if (old_tmp) setenv("TMPDIR", old_tmp, 1);
    else unsetenv("TMPDIR");
    free(old_tmp);
    assert_int_equal(access(stale, F_OK), -1);
    assert_int_equal(access(stale_old, F_OK), -1);
    assert_int_equal(access(legacy, F_OK), -1);
    assert_int_equal(access(live, F_OK), 0);
    assert_int_equal(access(other, F_OK), 0);
    /* nothing of this run's own is left in TMPDIR */
    char cmd[800];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | grep -v nnc-jit-1-AbC123 | grep -q 'nnc-jit-\\|nnc-weights-'", g_dir);
    assert_int_not_equal(system(cmd), 0);
    unlink(live);
    unlink(other);
    rmdir(live_jit);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_train_module),
        cmocka_unit_test(test_learns_logs_and_evals),
        cmocka_unit_test(test_resume_is_exact),
        cmocka_unit_test(test_resume_refuses_other_settings),
        cmocka_unit_test(test_nan_stops_and_keeps_checkpoint),
        cmocka_unit_test(test_freeze_and_head),
        cmocka_unit_test(test_data_must_fit),
        cmocka_unit_test(test_bad_command_lines),
        cmocka_unit_test(test_schedule_parsing),
        cmocka_unit_test(test_crc32c),
        cmocka_unit_test(test_checkpoint_checksum),
        cmocka_unit_test(test_checkpoint_fields),
        cmocka_unit_test(test_outputs_checked_first),
        cmocka_unit_test(test_optimizer_ranges),
        cmocka_unit_test(test_stale_temporaries_swept),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
