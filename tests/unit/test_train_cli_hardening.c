/* test_train_cli_hardening.c: the hardening of `nnc train` (issue 9) on the
 * hand-written module of train_cli_test.h: CRC32C, every flipped bit of a
 * checkpoint caught, each forged metadata field named, outputs refused before
 * any work, optimizer ranges, stale temporaries swept. */
#include "train_cli_test.h"

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
        cmocka_unit_test(test_crc32c),
        cmocka_unit_test(test_checkpoint_checksum),
        cmocka_unit_test(test_checkpoint_fields),
        cmocka_unit_test(test_outputs_checked_first),
        cmocka_unit_test(test_optimizer_ranges),
        cmocka_unit_test(test_stale_temporaries_swept),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
