/* test_bounded_reads.c: hardening of nnc's readers and diagnostics (issue 9,
 * defects 3, 6 (--labels), 8 and 9), through the built `nnc` command.
 *
 * Every command runs in a child with a wall-clock limit (SIGALRM after
 * CHILD_SECONDS) and, outside sanitizer builds, an address-space limit
 * (RLIMIT_AS, CHILD_MEMORY): a reader that regresses into reading /dev/zero
 * to its end fails the test instead of eating the machine, and one that
 * blocks on a FIFO fails instead of hanging the suite. What is checked:
 *
 *   - special files (/dev/zero, a FIFO with no writer, a directory) as the
 *     model, as an --input, as --weights, as --labels and inside a data set
 *     end with "not a regular file (...)" or, for a .net source (which may be
 *     a pipe), with the positioned error of an empty file;
 *   - a .net source over FE_MAX_SOURCE_BYTES, as the model and as an import;
 *   - .npy inputs: a header whose shape is not the input's or whose batch is
 *     over the limit is refused before any data is read (the files here have
 *     no data at all), and data shorter or longer than the header says is an
 *     error naming both sizes; IDX inputs likewise;
 *   - --labels: a bad file and a count that does not match the samples exit
 *     1 before the model runs, naming the file and both counts;
 *   - control bytes reach no terminal: a path with ESC is printed escaped;
 *   - an empty .net file gets FILE:1:1: error:. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/common.h"
#include "frontend/frontend.h"
#include "runtime/tensor_io.h"
#include "npy_labels.h"

#include "asan.h"

enum { CHILD_SECONDS = 20 };
#define CHILD_MEMORY ((rlim_t)1 << 30)  /* 1 GiB: nnc itself needs a few MiB for these inputs */

static char g_dir[256];          /* this run's scratch directory */
static char g_out[1 << 16];      /* standard output of the last command */
static char g_err[1 << 16];      /* standard error of the last command */

static const char model_net[] =
    "network m {\n"
    "    input image: [1, 4, 4]\n"
    "    output logits = image |> flatten |> linear(3)\n"
    "}\n";

/* ---- helpers ---- */

static const char *path_in(const char *name)
{
    static char buf[4][600];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

static void write_file(const char *name, const void *data, size_t len)
{
    FILE *f = fopen(path_in(name), "wb");
    assert_non_null(f);
    if (len) assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void slurp(int fd, char *buf, size_t size)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, buf + n, size - 1 - n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        n += (size_t)r;
        if (n == size - 1) break;
    }
    buf[n] = 0;
}

/* Runs nnc with argv (NULL-terminated, argv[0] unused) in g_dir under the
 * time and memory limits; returns its exit status (128 + signal if killed). */
static int run_nnc(const char *const *argv)
{
    char outp[600], errp[600];
    snprintf(outp, sizeof outp, "%s/.stdout", g_dir);
    snprintf(errp, sizeof errp, "%s/.stderr", g_dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int o = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0644), e = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0 || chdir(g_dir) != 0) _exit(99);
        dup2(o, 1);
        dup2(e, 2);
#ifndef NNC_ASAN
        struct rlimit lim = {CHILD_MEMORY, CHILD_MEMORY};
        setrlimit(RLIMIT_AS, &lim);
#endif
        alarm(CHILD_SECONDS);  /* survives exec: a blocked read ends with SIGALRM */
        execv(NNC_EXE, (char *const *)argv);
        _exit(98);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) assert_int_equal(errno, EINTR);
    int fd = open(outp, O_RDONLY);
    slurp(fd, g_out, sizeof g_out);
    close(fd);
    fd = open(errp, O_RDONLY);
    slurp(fd, g_err, sizeof g_err);
    close(fd);
    if (WIFSIGNALED(status)) {
        print_message("nnc died of signal %d (SIGALRM: it took over %d s)\nstderr: %s\n", WTERMSIG(status),
                      CHILD_SECONDS, g_err);
        return 128 + WTERMSIG(status);
    }
    return WEXITSTATUS(status);
}

#define NNC(...) run_nnc((const char *const[]){"nnc", __VA_ARGS__, NULL})

static void expect_err(const char *needle)
{
    if (!strstr(g_err, needle)) {
        print_message("expected in stderr: %s\nstderr was: %s\n", needle, g_err);
        fail();
    }
}

/* A float32 .npy of the given shape with `extra` bytes more (negative: fewer)
 * than the shape needs; data are 0.5. */
static void write_npy(const char *name, int rank, const int64_t *shape, long extra)
{
    RtTensor t = {0};
    t.rank = rank;
    int64_t n = 1;
    for (int i = 0; i < rank; i++) n *= (t.shape[i] = shape[i]);
    t.data = malloc((size_t)(n ? n : 1) * 4);
    assert_non_null(t.data);
    for (int64_t i = 0; i < n; i++) t.data[i] = 0.5f;
    char err[512];
    assert_int_equal(rt_npy_write(path_in(name), &t, err, sizeof err), 0);
    free(t.data);
    if (extra > 0) {
        FILE *f = fopen(path_in(name), "ab");
        assert_non_null(f);
        for (long i = 0; i < extra; i++) fputc(0, f);
        fclose(f);
    } else if (extra < 0) {
        struct stat st;
        assert_int_equal(stat(path_in(name), &st), 0);
        assert_int_equal(truncate(path_in(name), st.st_size + extra), 0);
    }
}

/* A .npy holding only a header that declares shape: no data at all. */
static void write_npy_header_only(const char *name, const char *shape)
{
    char dict[256], buf[512];
    int dl = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }", shape);
    size_t hlen = (size_t)dl + 1;
    hlen += (64 - (10 + hlen) % 64) % 64;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (char)(hlen & 0xff);
    buf[9] = (char)(hlen >> 8);
    memset(buf + 10, ' ', hlen);
    memcpy(buf + 10, dict, (size_t)dl);
    buf[10 + hlen - 1] = '\n';
    write_file(name, buf, 10 + hlen);
}

/* An IDX file of bytes: magic, dims, then count bytes of value v. */
static void write_idx(const char *name, int rank, const uint32_t *dims, size_t count, unsigned char v)
{
    size_t len = 4 + 4 * (size_t)rank + count;
    unsigned char *b = malloc(len);
    assert_non_null(b);
    b[0] = b[1] = 0;
    b[2] = 8;
    b[3] = (unsigned char)rank;
    for (int i = 0; i < rank; i++)
        for (int k = 0; k < 4; k++) b[4 + 4 * i + k] = (unsigned char)(dims[i] >> (24 - 8 * k));
    memset(b + 4 + 4 * rank, v, count);
    write_file(name, b, len);
    free(b);
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/nnc_bounded_XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    write_file("m.net", model_net, sizeof model_net - 1);
    if (NNC("init", "m.net", "--seed", "1", "-o", "w.safetensors") != 0) return -1;
    if (mkfifo(path_in("fifo"), 0600) != 0) return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- special files ---- */

static void test_dev_zero(void **state)
{
    (void)state;
    assert_int_equal(NNC("/dev/zero", "-o", "x.c"), 1);
    expect_err("nnc: error: cannot read '/dev/zero': not a regular file (a character device); give a file");
    assert_int_equal(NNC("run", "m.net", "--weights", "w.safetensors", "--input", "image=/dev/zero"), 1);
    expect_err("nnc: /dev/zero: cannot read: not a regular file (a character device); give a file");
    assert_int_equal(NNC("run", "m.net", "--weights", "/dev/zero", "--input", "image=/dev/zero"), 1);
    expect_err("--weights /dev/zero: cannot read: not a regular file (a character device)");
    /* an IDX name that is really a device */
    assert_int_equal(symlink("/dev/zero", path_in("zero-ubyte")), 0);
    assert_int_equal(NNC("run", "m.net", "--weights", "w.safetensors", "--input", "image=zero-ubyte"), 1);
    expect_err("zero-ubyte: cannot open: not a regular file (a character device)");
}

static void test_fifo_without_writer(void **state)
{
    (void)state;
    /* a .net source may be a pipe (process substitution); with no writer it is empty */
    assert_int_equal(NNC("fifo", "-o", "x.c"), 1);
    assert_string_equal(g_err, "fifo:1:1: error: the file defines no network; write 'network NAME { ... }'\n");
    assert_int_equal(NNC("run", "m.net", "--weights", "w.safetensors", "--input", "image=fifo"), 1);
    expect_err("nnc: fifo: cannot read: not a regular file (a FIFO or pipe); give a file");
    assert_int_equal(NNC("run", "m.net", "--weights", "fifo", "--input", "image=fifo"), 1);
    expect_err("--weights fifo: cannot read: not a regular file (a FIFO or pipe)");
    write_npy("ok.npy", 4, (const int64_t[]){2, 1, 4, 4}, 0);
    assert_int_equal(NNC("run", "m.net", "--weights", "w.safetensors", "--input", "image=ok.npy", "--labels", "fifo"), 1);
    expect_err("nnc: --labels fifo: cannot open: not a regular file (a FIFO or pipe)");
    /* train and eval take weights the generated loader would fopen (and block on) */
    assert_int_equal(mkdir(path_in("ds"), 0755), 0);
    write_npy("ds/train_images.npy", 4, (const int64_t[]){2, 1, 4, 4}, 0);
    assert_int_equal(write_labels_npy(path_in("ds/train_labels.npy"), (const int32_t[]){0, 2}, 2), 0);
    char spec[700];
    snprintf(spec, sizeof spec, "npy:%s", path_in("ds"));
    assert_int_equal(NNC("eval", "m.net", "--weights", "fifo", "--data", spec), 1);
    expect_err("nnc eval: --weights fifo: not a regular file (a FIFO or pipe)");
    assert_int_equal(NNC("train", "m.net", "--weights", "fifo", "--data", spec, "--epochs", "1"), 1);
    expect_err("nnc train: --weights fifo: not a regular file (a FIFO or pipe)");
}

/* nnc train reads its model once: a pipe (process substitution) works. */
static void test_train_model_from_pipe(void **state)
{
    (void)state;
    assert_int_equal(mkdir(path_in("dp"), 0755), 0);
    write_npy("dp/train_images.npy", 4, (const int64_t[]){2, 1, 4, 4}, 0);
    assert_int_equal(write_labels_npy(path_in("dp/train_labels.npy"), (const int32_t[]){0, 2}, 2), 0);
    char spec[700], log[700];
    snprintf(spec, sizeof spec, "npy:%s", path_in("dp"));
    snprintf(log, sizeof log, "%s", path_in("pipe.log"));
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {  /* the model through a pipe, as /dev/fd/3 */
        int out = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        close(fds[1]);
        dup2(fds[0], 3);
        dup2(out, 1);
        dup2(out, 2);
        execl(NNC_EXE, NNC_EXE, "train", "/dev/fd/3", "--data", spec, "--epochs", "1", "--batch", "2", (char *)NULL);
        _exit(127);
    }
    close(fds[0]);
    assert_true(write(fds[1], model_net, strlen(model_net)) == (ssize_t)strlen(model_net));
    close(fds[1]);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char text[4096] = "";
        FILE *f = fopen(log, "r");
        if (f) {
            text[fread(text, 1, sizeof text - 1, f)] = '\0';
            fclose(f);
        }
        fail_msg("nnc train on a pipe failed:\n%s", text);
    }
}

static void test_directory(void **state)
{
    (void)state;
    assert_int_equal(NNC("run", "m.net", "--weights", "w.safetensors", "--input", "image=."), 1);
    expect_err("nnc: .: cannot read: not a regular file (a directory); give a file");
    assert_int_equal(NNC(".", "-o", "x.c"), 1);
    expect_err("cannot read '.': not a regular file (a directory)");
}

/* A data set whose files are devices or FIFOs ends at once too. */
static void test_data_set_special_files(void **state)
{
    (void)state;
    assert_int_equal(mkdir(path_in("mn"), 0755), 0);
    assert_int_equal(symlink("/dev/zero", path_in("mn/train-images-idx3-ubyte")), 0);
    assert_int_equal(symlink("../fifo", path_in("mn/train-labels-idx1-ubyte")), 0);
    char spec[700];
    snprintf(spec, sizeof spec, "mnist:%s", path_in("mn"));
    int rc = NNC("train", "m.net", "--data", spec, "--epochs", "1");
    assert_int_not_equal(rc, 0);
    assert_true(rc < 128);
    expect_err("train-images-idx3-ubyte: cannot open: not a regular file (a character device)");
    assert_int_equal(mkdir(path_in("cf"), 0755), 0);
    assert_int_equal(symlink("/dev/zero", path_in("cf/data_batch_1.bin")), 0);
    snprintf(spec, sizeof spec, "cifar10:%s", path_in("cf"));
    rc = NNC("train", "m.net", "--data", spec, "--epochs", "1");
    assert_int_not_equal(rc, 0);
    assert_true(rc < 128);
    expect_err("data_batch_1.bin: cannot read: not a regular file (a character device)");
    assert_int_equal(mkdir(path_in("np"), 0755), 0);
    assert_int_equal(symlink("../fifo", path_in("np/train_images.npy")), 0);
    assert_int_equal(symlink("/dev/zero", path_in("np/train_labels.npy")), 0);
    snprintf(spec, sizeof spec, "npy:%s", path_in("np"));
    rc = NNC("eval", "m.net", "--weights", "w.safetensors", "--data", spec);
    assert_int_not_equal(rc, 0);
    assert_true(rc < 128);
    expect_err("not a regular file (a");
}

/* ---- sizes ---- */

static void test_source_size_limit(void **state)
{
    (void)state;
    /* a sparse file one byte over the limit: refused by its size, never read */
    int fd = open(path_in("big.net"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)FE_MAX_SOURCE_BYTES + 1), 0);
    close(fd);
    assert_int_equal(NNC("big.net", "-o", "x.c"), 1);
    expect_err("nnc: error: cannot read 'big.net': the file is larger than 16 MiB; .net sources are limited to 16 MiB each");
    static const char imp[] = "import \"big.net\"\nnetwork n {\n    input x: [4]\n    output y = relu(x)\n}\n";
    write_file("imp.net", imp, sizeof imp - 1);
    assert_int_equal(NNC("imp.net", "-o", "x.c"), 1);
    expect_err("imp.net:1:8: error: cannot read 'big.net': the file is larger than 16 MiB");
}

static void test_npy_shape_checked_before_data(void **state)
{
    (void)state;
    /* headers alone: a check that read data first would report truncation instead */
    write_npy_header_only("huge.npy", "(4000000, 1, 4, 4)");
    assert_int_equal(NNC("run", "m.net", "--weights", "w.safetensors", "--input", "image=huge.npy"), 1);
    expect_err("nnc: huge.npy: input 'image' has 4000000 samples, more than nnc run takes at once (1048576); use --limit");
    write_npy_header_only("wrong.npy", "(2, 1, 4, 5)");
    assert_int_equal(NNC("run", "m.net", "--weights", "w.safetensors", "--input", "image=wrong.npy"), 1);
    expect_err("nnc: wrong.npy: input 'image' has shape [2, 1, 4, 5], the network expects [N, 1, 4, 4]");
    write_npy_header_only("overflow.npy", "(9223372036854775807, 1, 4, 4)");
    assert_int_equal(NNC("run", "m.net", "--weights", "w.safetensors", "--input", "image=overflow.npy"), 1);
    assert_int_equal(NNC("run", "m.net", "--weights", "w.safetensors", "--input", "image=huge.npy", "--limit", "2"), 1);
    expect_err("huge.npy: data is truncated: shape (4000000, 1, 4, 4) of float32 needs 256000000 bytes after the header, the file has 0");
}

static void test_npy_data_size(void **state)
{
    (void)state;
    const int64_t shape[] = {3, 1, 4, 4};
    write_npy("short.npy", 4, shape, -4);
    assert_int_equal(NNC("run", "m.net", "--weights", "w.safetensors", "--input", "image=short.npy"), 1);
    expect_err("short.npy: data is truncated: shape (3, 1, 4, 4) of float32 needs 192 bytes after the header, the file has 188");
    write_npy("long.npy", 4, shape, 8);
    assert_int_equal(NNC("run", "m.net", "--weights", "w.safetensors", "--input", "image=long.npy"), 1);
    expect_err("long.npy: file has 8 bytes of trailing data after the array (shape (3, 1, 4, 4) of float32 takes 192 bytes)");
    /* --limit reads fewer samples, but the file must still be whole */
    assert_int_equal(NNC("run", "m.net", "--weights", "w.safetensors", "--input", "image=long.npy", "--limit", "1"), 1);
    expect_err("trailing data");
}

static void test_idx_input_size(void **state)
{
    (void)state;
    write_idx("short-ubyte", 3, (const uint32_t[]){3, 4, 4}, 47, 9);
    assert_int_equal(NNC("run", "m.net", "--weights", "w.safetensors", "--input", "image=short-ubyte"), 1);
    expect_err("short-ubyte: data is truncated: the dimensions need 48 bytes of data, the file has 47");
    write_idx("long-ubyte", 3, (const uint32_t[]){3, 4, 4}, 49, 9);
    assert_int_equal(NNC("run", "m.net", "--weights", "w.safetensors", "--input", "image=long-ubyte"), 1);
    expect_err("long-ubyte: file has trailing bytes: the dimensions describe 48 bytes of data, the file has 49");
    write_idx("huge-ubyte", 3, (const uint32_t[]){4000000, 4, 4}, 0, 0);
    assert_int_equal(NNC("run", "m.net", "--weights", "w.safetensors", "--input", "image=huge-ubyte"), 1);
    expect_err("more than nnc run takes at once");
}

/* ---- --labels ---- */

static void test_labels(void **state)
{
    (void)state;
    write_npy("in3.npy", 4, (const int64_t[]){3, 1, 4, 4}, 0);
    write_idx("l5-ubyte", 1, (const uint32_t[]){5}, 5, 1);
    assert_int_equal(NNC("run", "m.net", "--weights", "w.safetensors", "--input", "image=in3.npy", "--labels", "l5-ubyte"), 1);
    expect_err("nnc: --labels l5-ubyte: holds 5 labels, but the input has 3 samples; give the labels of the same samples");
    assert_string_equal(g_out, "");  /* checked before the model ran */
    assert_int_equal(NNC("run", "m.net", "--weights", "w.safetensors", "--input", "image=in3.npy", "--labels", "nope-ubyte"), 1);
    expect_err("nnc: --labels nope-ubyte: cannot open: No such file or directory");
    write_idx("l2d-ubyte", 2, (const uint32_t[]){3, 1}, 3, 1);
    assert_int_equal(NNC("run", "m.net", "--weights", "w.safetensors", "--input", "image=in3.npy", "--labels", "l2d-ubyte"), 1);
    expect_err("nnc: --labels l2d-ubyte: has 2 dimensions; labels are a 1-d IDX file");
    write_idx("l3-ubyte", 1, (const uint32_t[]){3}, 3, 1);
    assert_int_equal(NNC("run", "m.net", "--weights", "w.safetensors", "--input", "image=in3.npy", "--labels", "l3-ubyte"), 0);
    assert_non_null(strstr(g_out, "logits[2]: class "));
    assert_non_null(strstr(g_out, ", label 1"));
    /* with --limit, the labels of the file's samples or of those used */
    assert_int_equal(NNC("run", "m.net", "--weights", "w.safetensors", "--input", "image=in3.npy", "--limit", "2",
                         "--labels", "l3-ubyte"), 0);
    assert_non_null(strstr(g_out, "of 2 correct"));
    assert_int_equal(NNC("run", "m.net", "--weights", "w.safetensors", "--input", "image=in3.npy", "--limit", "2",
                         "--labels", "l5-ubyte"), 1);
    expect_err("holds 5 labels, but the input has 3 samples (fewer with --limit)");
}

/* ---- diagnostics ---- */

static void test_empty_file(void **state)
{
    (void)state;
    write_file("empty.net", "", 0);
    assert_int_equal(NNC("empty.net", "-o", "x.c"), 1);
    assert_string_equal(g_err, "empty.net:1:1: error: the file defines no network; write 'network NAME { ... }'\n");
}

static void test_control_bytes_escaped(void **state)
{
    (void)state;
    static const char esc[] = "network n {\n    input x: [4]\n    output y = x |> error(\"\033[31mred\")\n}\n";
    write_file("esc.net", esc, sizeof esc - 1);
    assert_int_equal(NNC("esc.net", "-o", "x.c"), 1);
    assert_null(strchr(g_err, '\033'));
    assert_string_equal(g_err,
                        "esc.net:3:28: error: control byte 0x1b in a string; strings hold printable text\n"
                        "        output y = x |> error(\"\\x1b[31mred\")\n"
                        "                               ^\n");
    /* a path with ESC and a newline: printed escaped, on one line */
    assert_int_equal(NNC("a\033]0;x\007\nb.net", "-o", "x.c"), 1);
    assert_string_equal(g_err, "nnc: error: cannot read 'a\\x1b]0;x\\x07\\x0ab.net': No such file or directory\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dev_zero),
        cmocka_unit_test(test_fifo_without_writer),
        cmocka_unit_test(test_train_model_from_pipe),
        cmocka_unit_test(test_directory),
        cmocka_unit_test(test_data_set_special_files),
        cmocka_unit_test(test_source_size_limit),
        cmocka_unit_test(test_npy_shape_checked_before_data),
        cmocka_unit_test(test_npy_data_size),
        cmocka_unit_test(test_idx_input_size),
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_empty_file),
        cmocka_unit_test(test_control_bytes_escaped),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
