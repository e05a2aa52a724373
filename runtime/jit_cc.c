/* jit_cc.c: build generated C into a shared object with $CC and dlopen it.
 *
 * Steps, each undone on failure: mkdtemp a private directory (mode 0700, so no
 * other user can swap the files between writing and compiling); write the
 * header and model.c; posix_spawnp the compiler with an argument vector (no
 * shell, so no quoting of paths), its stdout and stderr going to cc.log in the
 * directory; on a non-zero exit put the log into err; dlopen the object with
 * RTLD_LOCAL (two models with the same prefix do not clash) and look up the
 * entry points (an inference model's, or a training module's: rt_cc_load and
 * rt_cc_load_train share everything up to dlopen); remove the directory. A loaded object stays mapped after its
 * file is unlinked.
 *
 * No leftovers (common.h, temporaries of nnc's own): the directory is
 * $TMPDIR/nnc-jit-PID-XXXXXX, PID the owner's; it and each file are tracked
 * before they exist, so SIGINT, SIGTERM and SIGHUP remove them, and every
 * return path removes them. A kill -9 leaves them: each build first sweeps
 * the nnc-jit-PID-* directories of this user whose PID no longer runs. */
#define _XOPEN_SOURCE 700 /* realpath */
#include "jit_cc.h"

#include "../common/common.h"
#include "jit_cache.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

enum {
    RT_MAX_ARGS = 32,    /* words of the compile command */
    RT_DIR_MAX = 1024,   /* the temporary directory's path */
    RT_PATH_MAX = 1200,  /* a file in it (names are short: checked by rt_cc_check_names) */
};

#ifndef NNC_CBLAS_INCLUDE
#define NNC_CBLAS_INCLUDE ""
#endif

/* The directory of cblas.h when the generated code should use OpenBLAS, else
 * NULL. NNC_JIT_BLAS=1 or 0 decides; by default neither an inference model
 * nor a training module uses it: their GEMMs run nnc's micro-kernels on the
 * instance's threads (nnc_gemm_packed, nnc_sgemm_ctx in kernels_sgemm.c).
 * Training modules used OpenBLAS by default until its threads (one per CPU,
 * spinning after each call) were measured fighting the module's pool and
 * its one-threaded im2col, pooling and optimizer: LeNet-5 batch 64, one
 * module thread, 5.8-6.0 ms a step with OpenBLAS against 4.2-4.5 ms with
 * nnc_sgemm_ctx; CIFAR ResNet-18 3.7-7.6 s against 3.1-4.2 s (a loaded
 * 2-core VM, docs/performance.md). */
static const char *rt_cc_blas_dir(bool train)
{
    static const char dir[] = NNC_CBLAS_INCLUDE;
    const char *env = getenv("NNC_JIT_BLAS");
    char path[4096];
    bool want = env && *env && strcmp(env, "1") == 0;
    (void)train;  /* both kinds now decide alike; the flag stays for a default per kind */
    if (!dir[0] || !want) return NULL;
    snprintf(path, sizeof path, "%s/cblas.h", dir);
    return access(path, R_OK) == 0 ? dir : NULL;
}

static bool rt_cc_write(const char *dir, const char *name, const char *text, char *err, size_t errlen)
{
    char path[RT_PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wx");  /* a fresh directory: the name cannot exist (C11 "x": O_EXCL) */
    bool ok = f && fputs(text, f) >= 0;
    if (f && fclose(f) != 0) ok = false;
    if (!ok) snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
    return ok;
}

/* Splits $CC on blanks into argv (the words point into buf). Returns the count. */
static int rt_cc_split(char *buf, char **argv, int max)
{
    int n = 0;
    char *save = NULL;
    for (char *p = strtok_r(buf, " \t", &save); p && n < max; p = strtok_r(NULL, " \t", &save)) argv[n++] = p;
    return n;
}

/* The compiler's messages, at most errlen bytes of them, after a one-line summary. */
static void rt_cc_report(const char *dir, const char *what, char *err, size_t errlen)
{
    char path[RT_PATH_MAX];
    size_t len = 0;
    const char *why = NULL;
    snprintf(path, sizeof path, "%s/cc.log", dir);
    char *log = nnc_read_file(path, &len, &why);
    snprintf(err, errlen, "%s%s%s", what, log && len ? ":\n" : "", log ? log : "");
    free(log);
}

/* The words of the compile command for DIR/model.c, in cmd (which owns their text). */
typedef struct {
    char *argv[RT_MAX_ARGS];
    char cc[1024], so[RT_PATH_MAX], src[RT_PATH_MAX], inc[4096];
} RtCcCommand;

/* Whether the compiler takes gcc's flags: cc, gcc or clang. */
static bool rt_cc_gnu(const char *compiler)
{
    const char *base = strrchr(compiler, '/');
    base = base ? base + 1 : compiler;
    return strcmp(base, "cc") == 0 || strstr(base, "gcc") || strstr(base, "clang");
}

/* Whether the JIT compiles for the host's instruction set (-march=native): it
 * always runs the code on the machine that compiles it, so it takes what
 * that machine has (AVX-512 here: ResNet-18 at batch 1 1.07x faster with
 * OpenBLAS, 2x with nnc's own GEMM, `nnc bench`). NNC_JIT_NATIVE=0 turns it
 * off; gcc and clang on x86-64 and AArch64 only (another compiler may not
 * know the flag). -std=c99 keeps floating-point contraction off, so the
 * arithmetic is the same, only wider. */
static bool rt_cc_native(const char *compiler)
{
#if defined(__x86_64__) || defined(__aarch64__)
    const char *env = getenv("NNC_JIT_NATIVE");
    return rt_cc_gnu(compiler) && !(env && strcmp(env, "0") == 0);
#else
    (void)compiler;
    return false;
#endif
}

static void rt_cc_command(const char *dir, bool train, RtCcCommand *cmd)
{
    const char *cc = getenv("CC");
    const char *blas = rt_cc_blas_dir(train);
    snprintf(cmd->cc, sizeof cmd->cc, "%s", cc && *cc ? cc : "cc");
    snprintf(cmd->so, sizeof cmd->so, "%s/model.so", dir);
    snprintf(cmd->src, sizeof cmd->src, "%s/model.c", dir);
    int n = rt_cc_split(cmd->cc, cmd->argv, RT_MAX_ARGS - 16);
    if (n == 0) n = rt_cc_split(strcpy(cmd->cc, "cc"), cmd->argv, 1);
    /* -O3, not -O2: gcc 12's -O2 vectorizes no loop whose trip count it does
     * not know (the epilogues, the activations, pooling), -O3 does; the float
     * operations and their order are the same (no -ffast-math) */
    const char *fixed[] = {"-std=c99", "-O3", "-fPIC", "-shared", "-o", cmd->so, cmd->src};
    for (size_t i = 0; i < NNC_COUNT(fixed); i++) cmd->argv[n++] = (char *)fixed[i];
    if (rt_cc_native(cmd->argv[0])) cmd->argv[n++] = "-march=native";
    /* sqrtf without errno: one instruction, so loops that take square roots
     * (Adam's update) vectorize; the same correctly rounded values, and the
     * generated code never reads errno after a math function */
    if (rt_cc_gnu(cmd->argv[0])) cmd->argv[n++] = "-fno-math-errno";
    if (blas) {
        snprintf(cmd->inc, sizeof cmd->inc, "-I%s", blas);
        cmd->argv[n++] = "-DNNC_USE_CBLAS";
        cmd->argv[n++] = cmd->inc;
        cmd->argv[n++] = "-lopenblas";
    }
    cmd->argv[n++] = "-lm";
    cmd->argv[n] = NULL;
}

/* Runs the compiler with stdin from /dev/null and stdout+stderr into DIR/cc.log. */
static bool rt_cc_compile(const char *dir, bool train, char *err, size_t errlen)
{
    RtCcCommand cmd;
    char log[RT_PATH_MAX];
    rt_cc_command(dir, train, &cmd);
    snprintf(log, sizeof log, "%s/cc.log", dir);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawnattr_t attr;  /* its own process group, which a fatal signal stops whole (common.h) */
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    pid_t pid;
    int rc = posix_spawnp(&pid, cmd.argv[0], &fa, &attr, cmd.argv, environ), status = 0;
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
        snprintf(err, errlen, "cannot run the C compiler '%s': %s (set CC to choose one)", cmd.argv[0], strerror(rc));
        return false;
    }
    int slot = nnc_tmp_track_child((long)pid);  /* a fatal signal stops it before the directory goes */
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            nnc_tmp_untrack(slot);
            snprintf(err, errlen, "waiting for the C compiler: %s", strerror(errno));
            return false;
        }
    nnc_tmp_untrack(slot);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return true;
    char what[1200];
    if (WIFEXITED(status)) snprintf(what, sizeof what, "%s failed (exit status %d)", cmd.argv[0], WEXITSTATUS(status));
    else snprintf(what, sizeof what, "%s was killed by signal %d", cmd.argv[0], WTERMSIG(status));
    rt_cc_report(dir, what, err, errlen);
    return false;
}

/* Looks up PREFIX_SUFFIX; stores it through fn (a function pointer's address). */
static bool rt_cc_sym(void *so, const char *prefix, const char *suffix, void *fn, char *err, size_t errlen)
{
    char name[256];
    snprintf(name, sizeof name, "%s_%s", prefix, suffix);
    void *sym = dlsym(so, name);
    if (!sym) {
        snprintf(err, errlen, "the compiled model has no function %s", name);
        return false;
    }
    memcpy(fn, &sym, sizeof sym);  /* POSIX: a dlsym result converts to a function pointer */
    return true;
}

/* dlopens DIR/model.so into *so. */
static bool rt_cc_open(const char *dir, void **so, char *err, size_t errlen)
{
    char path[RT_PATH_MAX];
    snprintf(path, sizeof path, "%s/model.so", dir);
    *so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!*so) snprintf(err, errlen, "cannot load the compiled model: %s", dlerror());
    return *so != NULL;
}

/* The files a build puts in its directory: tracked, then removed, in this order. */
enum { RT_CC_FILES = 4 };

static void rt_cc_files(const char *header_name, const char *files[RT_CC_FILES])
{
    files[0] = header_name, files[1] = "model.c", files[2] = "cc.log", files[3] = "model.so";
}

/* Tracks the directory and every file it will hold (slots[0] the directory). */
static void rt_cc_track(const char *dir, const char *header_name, int slots[1 + RT_CC_FILES])
{
    const char *files[RT_CC_FILES];
    char path[RT_PATH_MAX];
    rt_cc_files(header_name, files);
    slots[0] = nnc_tmp_track(dir, 1);
    for (int i = 0; i < RT_CC_FILES; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        slots[1 + i] = nnc_tmp_track(path, 0);
    }
}

static void rt_cc_remove_dir(const char *dir, const char *header_name, const int slots[1 + RT_CC_FILES])
{
    const char *files[RT_CC_FILES];
    char path[RT_PATH_MAX];
    rt_cc_files(header_name, files);
    for (int i = 0; i < RT_CC_FILES; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
    for (int i = 0; i < 1 + RT_CC_FILES; i++) nnc_tmp_untrack(slots[i]);
}

static bool rt_cc_check_names(const char *header_name, const char *prefix, char *err, size_t errlen)
{
    size_t hl = strlen(header_name);
    if (hl < 3 || hl > 64 || strcmp(header_name + hl - 2, ".h") != 0 || strchr(header_name, '/') || header_name[0] == '.') {
        snprintf(err, errlen, "'%s' is not a plain header file name", header_name);
        return false;
    }
    if (!*prefix || strlen(prefix) > 200 || strspn(prefix, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(prefix)) {
        snprintf(err, errlen, "'%s' is not a generated model's prefix", prefix);
        return false;
    }
    return true;
}

/* ---- the disk cache (runtime/jit_cache.h) ----
 *
 * A build's shared object is cached like the in-process JIT's objects, keyed
 * by the sources, the header's name, the compile command's words (but its
 * temporary paths), the compiler's identity and, with -march=native, the
 * CPU. The compiler's identity is its resolved path, size and modification
 * time (as ccache's default): a reinstalled or upgraded compiler misses
 * without running `cc --version` at every load; a wrapper (CC="ccache gcc")
 * is keyed by its own file and the compiler's name among the words. The CPU
 * is /proc/cpuinfo's first model name and flags lines.
 *
 * Loading a cached entry: rt_cache_get reads it whole into memory and checks
 * its checksum; those bytes are written into this build's private temporary
 * directory (mkdtemp, mode 0700) and dlopened from there. So what runs is
 * what was checked: no one can swap the file between the check and dlopen
 * (the cache file itself is never dlopened), at the cost of writing the
 * object once more (well under a millisecond against a compile of seconds). */

/* "path size mtime" of the file argv0 names (a path, or found on PATH), or argv0 alone. */
static void rt_cc_identity(const char *argv0, char *buf, size_t len)
{
    char file[4352], real[4096];
    const char *path = getenv("PATH"), *p, *found = NULL;
    struct stat st;
    if (!argv0) argv0 = "cc";  /* never NULL from rt_cc_command; said so for gcc's -Wformat-truncation under -fsanitize */
    snprintf(buf, len, "%s", argv0);
    if (strchr(argv0, '/')) {
        found = argv0;
    } else {
        for (p = path ? path : "/usr/bin:/bin"; *p && !found;) {
            const char *end = strchr(p, ':');
            size_t l = end ? (size_t)(end - p) : strlen(p);
            snprintf(file, sizeof file, "%.*s/%s", (int)l, p, argv0);
            if (l && access(file, X_OK) == 0) found = file;
            p += l + (end != NULL);
        }
    }
    if (found && realpath(found, real) && stat(real, &st) == 0)
        snprintf(buf, len, "%s %lld %lld.%09ld", real, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
                 (long)st.st_mtim.tv_nsec);
}

/* The host's CPU as the compiler's -march=native sees it: /proc/cpuinfo's first "model name" and "flags". */
static void rt_cc_cpu(char *buf, size_t len)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[8192];
    size_t used = 0;
    buf[0] = '\0';
    if (!f) return;
    while (fgets(line, sizeof line, f) && line[0] != '\n')
        if (strncmp(line, "model name", 10) == 0 || strncmp(line, "flags", 5) == 0) {
            size_t l = strlen(line);
            if (used + l < len) memcpy(buf + used, line, l + 1), used += l;
        }
    fclose(f);
}

/* One build of the loader the cache's flow drives: a private temporary directory, its files tracked. */
typedef struct {
    const char *c_src, *h_src, *header_name;
    bool train;
    char dir[RT_DIR_MAX];
    bool compiled;  /* dir/model.so is the object just compiled */
    void *so;
} RtCcBuild;

static int rt_cc_compile_cb(void *ctx, void **payload, size_t *len, char *err, size_t errlen)
{
    RtCcBuild *b = ctx;
    char path[RT_PATH_MAX];
    const char *why = NULL;
    snprintf(path, sizeof path, "%s/model.c", b->dir);
    unlink(path);  /* a cached object that did not load left model.so, not the sources; cc replaces model.so */
    if (!(rt_cc_write(b->dir, b->header_name, b->h_src, err, errlen) &&
          rt_cc_write(b->dir, "model.c", b->c_src, err, errlen) && rt_cc_compile(b->dir, b->train, err, errlen)))
        return -1;
    snprintf(path, sizeof path, "%s/model.so", b->dir);
    *payload = nnc_read_file(path, len, &why);
    if (!*payload) {
        snprintf(err, errlen, "cannot read the compiled model %s: %s", path, why ? why : "?");
        return -1;
    }
    b->compiled = true;
    return 0;
}

static int rt_cc_open_cb(void *ctx, const void *payload, size_t len, char *err, size_t errlen)
{
    RtCcBuild *b = ctx;
    if (!b->compiled) {  /* a cached object: its checked bytes into the private directory */
        char path[RT_PATH_MAX];
        snprintf(path, sizeof path, "%s/model.so", b->dir);
        unlink(path);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0700);
        bool ok = fd >= 0 && write(fd, payload, len) == (ssize_t)len;
        if (fd >= 0 && close(fd) != 0) ok = false;
        if (!ok) {
            snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
            return -1;
        }
    }
    return rt_cc_open(b->dir, &b->so, err, errlen) ? 0 : -1;
}

/* The part rt_cc_load and rt_cc_load_train share: the shared object of the
 * sources from the cache, else compiled (and stored), in a private temporary
 * directory, dlopened; *so is the handle. */
static int rt_cc_build(const char *c_src, const char *h_src, const char *header_name, const char *prefix, bool train,
                       void **so, char *err, size_t errlen)
{
    *so = NULL;
    if (!rt_cc_check_names(header_name, prefix, err, errlen)) return -1;
    const char *tmp = getenv("TMPDIR");
    RtCcBuild b = {c_src, h_src, header_name, train, "", false, NULL};
    int slots[1 + RT_CC_FILES];
    tmp = tmp && *tmp ? tmp : "/tmp";
    if ((size_t)snprintf(b.dir, sizeof b.dir, "%s/nnc-jit-%ld-XXXXXX", tmp, (long)getpid()) >= sizeof b.dir) {
        snprintf(err, errlen, "TMPDIR is too long a path");
        return -1;
    }
    nnc_tmp_sweep(tmp, "nnc-jit-");  /* the leftovers of killed runs */
    if (!mkdtemp(b.dir)) {
        snprintf(err, errlen, "cannot create a temporary directory %s: %s", b.dir, strerror(errno));
        return -1;
    }
    rt_cc_track(b.dir, header_name, slots);
    /* the key: the command's words with its two paths as placeholders, the compiler, the CPU */
    RtCcCommand cmd;
    char words[8192] = "", ident[4600], cpu[8192] = "";
    size_t used = 0;
    bool native = false;
    rt_cc_command(b.dir, train, &cmd);
    for (int i = 0; cmd.argv[i]; i++) {
        const char *w = cmd.argv[i] == cmd.so ? "OUT.so" : cmd.argv[i] == cmd.src ? "IN.c" : cmd.argv[i];
        int l = snprintf(words + used, sizeof words - used, "%s ", w);
        if (l > 0 && (size_t)l < sizeof words - used) used += (size_t)l;
        native = native || strcmp(w, "-march=native") == 0;
    }
    rt_cc_identity(cmd.argv[0], ident, sizeof ident);
    if (native) rt_cc_cpu(cpu, sizeof cpu);
    const char *parts[] = {c_src, h_src, header_name, "cc", ident, words, cpu};
    const RtCacheLoader l = {&b, rt_cc_compile_cb, rt_cc_open_cb};
    int rc = rt_cache_build(parts, (int)NNC_COUNT(parts), &l, err, errlen);
    rt_cc_remove_dir(b.dir, header_name, slots);
    *so = b.so;
    return rc;
}

int rt_cc_load(const char *c_src, const char *h_src, const char *header_name, const char *prefix, RtModel *out,
               char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (rt_cc_build(c_src, h_src, header_name, prefix, false, &out->so, err, errlen) != 0) return -1;
    if (rt_cc_sym(out->so, prefix, "create", &out->create, err, errlen) &&
        rt_cc_sym(out->so, prefix, "create_from_memory", &out->create_from_memory, err, errlen) &&
        rt_cc_sym(out->so, prefix, "forward_v", &out->forward_v, err, errlen) &&
        rt_cc_sym(out->so, prefix, "last_error", &out->last_error, err, errlen) &&
        rt_cc_sym(out->so, prefix, "destroy", &out->destroy, err, errlen))
        return 0;
    rt_cc_unload(out);
    return -1;
}

int rt_cc_load_train(const char *c_src, const char *h_src, const char *header_name, const char *prefix,
                     RtTrainModule *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (rt_cc_build(c_src, h_src, header_name, prefix, true, &out->so, err, errlen) != 0) return -1;
    if (rt_cc_sym(out->so, prefix, "train_create", &out->create, err, errlen) &&
        rt_cc_sym(out->so, prefix, "train_create_from_memory", &out->create_from_memory, err, errlen) &&
        rt_cc_sym(out->so, prefix, "train_step", &out->step, err, errlen) &&
        rt_cc_sym(out->so, prefix, "train_eval", &out->eval, err, errlen) &&
        rt_cc_sym(out->so, prefix, "train_set_trainable", &out->set_trainable, err, errlen) &&
        rt_cc_sym(out->so, prefix, "train_tensor_count", &out->tensor_count, err, errlen) &&
        rt_cc_sym(out->so, prefix, "train_tensor", &out->tensor, err, errlen) &&
        rt_cc_sym(out->so, prefix, "train_get_step", &out->get_step, err, errlen) &&
        rt_cc_sym(out->so, prefix, "train_set_step", &out->set_step, err, errlen) &&
        rt_cc_sym(out->so, prefix, "train_max_batch", &out->max_batch, err, errlen) &&
        rt_cc_sym(out->so, prefix, "train_last_error", &out->last_error, err, errlen) &&
        rt_cc_sym(out->so, prefix, "train_destroy", &out->destroy, err, errlen))
        return 0;
    rt_cc_unload_train(out);
    return -1;
}

void rt_cc_unload(RtModel *m)
{
    if (m->so) dlclose(m->so);
    memset(m, 0, sizeof *m);
}

void rt_cc_unload_train(RtTrainModule *m)
{
    if (m->so) dlclose(m->so);
    memset(m, 0, sizeof *m);
}
