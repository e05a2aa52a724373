/* test_train_cli.c: the driver of `nnc train` and `nnc eval` (tools/train.c,
 * train_args.c, train_ckpt.c) on the hand-written module of train_cli_test.h:
 * learning, --log, --out, exact resume and its refusals, the reader thread
 * (the same bits as --no-prefetch), a diverging loss,
 * --freeze, the head note, eval, bad command lines, schedules. The hardening
 * of issue 9 is in test_train_cli_hardening.c. */
#include "train_cli_test.h"

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

/* A --log without each row's last field (images per second, a measurement). */
static void log_without_speed(const char *path, char *text, size_t len)
{
    char raw[4096];
    size_t k = 0;
    read_into(path, raw, sizeof raw);
    for (char *line = raw, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        *nl = 0;
        char *last = strrchr(line, ',');
        if (last) *last = 0;
        k += (size_t)snprintf(text + k, len - k, "%s\n", line);
        assert_true(k < len);
    }
}

/* The reader thread changes nothing: the same losses and accuracies (the --log
 * rows but their speed), weights and checkpoint as --no-prefetch, with
 * shuffling, every augmentation and a last partial batch; eval's too. */
static void test_prefetch_is_exact(void **state)
{
    (void)state;
    char ca[600], cb[600], oa[600], ob[600], la[600], lb[600], ta[4096], tb[4096], ea[1024];
    path_in(ca, sizeof ca, "pf_a.ckpt");
    path_in(cb, sizeof cb, "pf_b.ckpt");
    path_in(oa, sizeof oa, "pf_a.safetensors");
    path_in(ob, sizeof ob, "pf_b.safetensors");
    path_in(la, sizeof la, "pf_a.csv");
    path_in(lb, sizeof lb, "pf_b.csv");
    assert_int_equal(nnc("train", g_net, "--data", g_data, "--epochs", "3", "--batch", "7", "--lr", "0.3",
                         "--momentum", "0.9", "--seed", "11", "--augment", "crop:1,flip,jitter:0.2",
                         "--checkpoint", ca, "--out", oa, "--log", la, NULL), 0);
    assert_int_equal(nnc("train", g_net, "--data", g_data, "--epochs", "3", "--batch", "7", "--lr", "0.3",
                         "--momentum", "0.9", "--seed", "11", "--augment", "crop:1,flip,jitter:0.2",
                         "--checkpoint", cb, "--out", ob, "--log", lb, "--no-prefetch", NULL), 0);
    assert_same_tensors(oa, ob);
    assert_same_tensors(ca, cb);
    log_without_speed(la, ta, sizeof ta);
    log_without_speed(lb, tb, sizeof tb);
    assert_non_null(strstr(ta, "\n3,"));
    assert_string_equal(ta, tb);
    assert_int_equal(nnc("eval", g_net, "--weights", oa, "--data", g_data, "--batch", "6", NULL), 0);
    assert_true(strlen(g_out) < sizeof ea);
    memcpy(ea, g_out, strlen(g_out) + 1);
    assert_int_equal(nnc("eval", g_net, "--weights", oa, "--data", g_data, "--batch", "6", "--no-prefetch", NULL), 0);
    assert_string_equal(ea, g_out);
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


int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_train_module),
        cmocka_unit_test(test_learns_logs_and_evals),
        cmocka_unit_test(test_resume_is_exact),
        cmocka_unit_test(test_prefetch_is_exact),
        cmocka_unit_test(test_resume_refuses_other_settings),
        cmocka_unit_test(test_nan_stops_and_keeps_checkpoint),
        cmocka_unit_test(test_freeze_and_head),
        cmocka_unit_test(test_data_must_fit),
        cmocka_unit_test(test_bad_command_lines),
        cmocka_unit_test(test_schedule_parsing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
