/* test_cnames.c: hostile names, through every emitter (codegen/cnames.h).
 *
 * The corpus is made by the test, not typed in: every identifier the C
 * compiler's own headers declare or define when a program includes all of
 * C99's and POSIX.1-2008's headers (functions, types, macros, struct tags,
 * the lot: harvested with `cc -E` and `cc -E -dM`), every keyword of C99 to
 * C23 and GNU C, and every identifier of the code nnc itself generates
 * (locals such as m, rc, workspace, weights_safetensors; nnc_ kernels;
 * t12-style temporaries). Each name is used at once as a network, input,
 * output and layer name:
 *
 *     network NAME {
 *         input NAME: [4]
 *         output NEXT = NAME |> linear(3) as NAME
 *     }
 *
 * (NEXT: the next name of the corpus). nnc must either refuse the program
 * with a positioned error (NAME is a keyword of the DSL) or emit inference
 * and training C that compiles with gcc and clang under -std=c99 -Wall
 * -Wextra -Werror -pedantic (each name by one of the two, in turn: Batch).
 * To keep this short, networks are compiled a
 * hundred at a time: one translation unit holds the kernels once, then each
 * network's header and its own part of the generated source (everything
 * after the "======== PREFIX ========" line that opens it), exactly as
 * emitted. Every name gets its inference module compiled; one in sixteen its
 * training module too (which takes only the prefix from the names, and is
 * ten times slower to compile). A sample (C keywords, nnc's own names, the names the audit found
 * breaking the code, names differing only in case) is built as whole files
 * into one shared object under -std=gnu11 (where linux, unix and time_t are
 * in the way) and run: the output must equal W x + b computed here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "codegen/emit_c.h"
#include "codegen/emit_train.h"
#include "frontend/frontend.h"
#include "passes/passes.h"
#include "passes/plan_memory.h"
#include "runtime/tensor_io.h"
#include "npy_labels.h"

#include "asan.h"

/* The sanitizer build emits every name (that is what it checks) but compiles
 * one in eight: the compilers it would run are not instrumented, and the
 * plain build compiles them all. */
#ifdef NNC_ASAN
enum { COMPILE_EVERY = 8 };
#else
enum { COMPILE_EVERY = 1 };
#endif

enum {
    BATCH = 100,        /* networks per translation unit (gcc's time grows with the square of a unit's functions) */
    TRAIN_SAMPLE = 16,  /* one name in this many gets its training module compiled too */
};

/* ------------------------------------------------------------ the corpus ---- */

typedef struct {
    char **v;
    int n, cap;
} Names;

static void names_add(Names *s, const char *p, size_t len)
{
    if (len == 0 || len > 200) return;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 4096;
        s->v = realloc(s->v, (size_t)s->cap * sizeof *s->v);
        assert_non_null(s->v);
    }
    s->v[s->n] = strndup(p, len);
    assert_non_null(s->v[s->n]);
    s->n++;
}

static bool is_start(char c) { return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool is_ident(char c) { return is_start(c) || (c >= '0' && c <= '9'); }

/* Every identifier token of text (strings, chars and numbers skipped), but
 * the implementation's own (__x, _X: reserved to the C library, thousands
 * of internals; a few stand in the keyword list). */
static void names_scan(Names *s, const char *text)
{
    for (const char *p = text; *p;) {
        if (*p == '"' || *p == '\'') {
            char q = *p++;
            while (*p && *p != q && *p != '\n') p += (*p == '\\' && p[1]) ? 2 : 1;
            if (*p) p++;
        } else if (*p >= '0' && *p <= '9') {
            while (is_ident(*p) || *p == '.') p++;
        } else if (is_start(*p)) {
            const char *b = p;
            while (is_ident(*p)) p++;
            bool reserved = b[0] == '_' && (b[1] == '_' || (b[1] >= 'A' && b[1] <= 'Z'));
            if (!reserved) names_add(s, b, (size_t)(p - b));
        } else {
            p++;
        }
    }
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void names_unique(Names *s)
{
    qsort(s->v, (size_t)s->n, sizeof *s->v, cmp_str);
    int o = 0;
    for (int i = 0; i < s->n; i++) {
        if (o && strcmp(s->v[o - 1], s->v[i]) == 0) free(s->v[i]);
        else s->v[o++] = s->v[i];
    }
    s->n = o;
}

static void names_free(Names *s)
{
    for (int i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
}

/* Runs a shell command; returns its exit status, its output in *out. */
static int sh(const char *cmd, char **out)
{
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    StrBuf b = {0};
    char buf[65536];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, p)) > 0) sb_appendn(&b, buf, k);
    int st = pclose(p);
    *out = b.data ? b.data : strdup("");
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static const char *const c_headers[] = {  /* C99 and POSIX.1-2008 (XSI) */
    "assert.h", "complex.h", "ctype.h", "errno.h", "fenv.h", "float.h", "inttypes.h", "iso646.h", "limits.h",
    "locale.h", "math.h", "setjmp.h", "signal.h", "stdarg.h", "stdbool.h", "stddef.h", "stdint.h", "stdio.h",
    "stdlib.h", "string.h", "tgmath.h", "time.h", "wchar.h", "wctype.h", "aio.h", "arpa/inet.h", "cpio.h",
    "dirent.h", "dlfcn.h", "fcntl.h", "fmtmsg.h", "fnmatch.h", "ftw.h", "glob.h", "grp.h", "iconv.h",
    "langinfo.h", "libgen.h", "monetary.h", "mqueue.h", "net/if.h", "netdb.h", "netinet/in.h",
    "netinet/tcp.h", "nl_types.h", "poll.h", "pthread.h", "pwd.h", "regex.h", "sched.h", "search.h",
    "semaphore.h", "spawn.h", "strings.h", "sys/ipc.h", "sys/mman.h", "sys/msg.h", "sys/resource.h",
    "sys/select.h", "sys/sem.h", "sys/shm.h", "sys/socket.h", "sys/stat.h", "sys/statvfs.h", "sys/time.h",
    "sys/times.h", "sys/types.h", "sys/uio.h", "sys/un.h", "sys/utsname.h", "sys/wait.h", "syslog.h", "tar.h",
    "termios.h", "ulimit.h", "unistd.h", "utime.h", "utmpx.h", "wordexp.h",
};

static const char *const c_keywords[] = {  /* C89 to C23, and GNU C's */
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum", "extern",
    "float", "for", "goto", "if", "inline", "int", "long", "register", "restrict", "return", "short", "signed",
    "sizeof", "static", "struct", "switch", "typedef", "union", "unsigned", "void", "volatile", "while", "_Bool",
    "_Complex", "_Imaginary", "_Alignas", "_Alignof", "_Atomic", "_Generic", "_Noreturn", "_Static_assert",
    "_Thread_local", "alignas", "alignof", "bool", "constexpr", "false", "nullptr", "static_assert",
    "thread_local", "true", "typeof", "typeof_unqual", "_BitInt", "_Decimal32", "_Decimal64", "_Decimal128",
    "asm", "__asm__", "__attribute__", "__extension__", "__typeof__", "__inline", "__restrict", "__label__",
    "__builtin_va_list", "__int128", "_Float16", "_Float32", "_Float64", "_Float128", "linux", "unix", "i386",
};

/* Identifiers the audit found breaking the generated code, and nnc's locals. */
static const char *const audit_names[] = {
    "m", "model", "rc", "workspace", "weights_safetensors", "memcpy", "memset", "strlen", "fopen", "expf",
    "sqrtf", "fmaxf", "nan", "errno", "stdin", "stdout", "stderr", "math_errhandling", "uint8_t", "int8_t",
    "wchar_t", "linux", "unix", "time_t", "max_align_t", "main", "n", "i", "t", "ws", "params", "consts",
    "scratch", "inputs", "outputs", "input", "labels", "train", "dinput", "err", "want", "ap", "path", "weights",
    "code", "fmt", "t12", "t0", "in_x", "out_y", "nnc", "nnc_st_load", "NNC_ACT_RELU", "NULL", "size_t", "EOF",
};

/* The whole corpus: keywords, the names of every standard header, and the
 * identifiers of a generated inference and training module. */
static void corpus(Names *s, const char *generated)
{
    StrBuf src = {0};
    for (size_t i = 0; i < NNC_COUNT(c_headers); i++) sb_printf(&src, "#include <%s>\n", c_headers[i]);
    char dir[] = "/tmp/nnc-test-cnames-XXXXXX", path[128], cmd[512];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/all.c", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(src.data, f);
    fclose(f);
    for (int pass = 0; pass < 2; pass++) {  /* the declarations, then the macros */
        char *out;
        snprintf(cmd, sizeof cmd, "cc -std=gnu11 -D_XOPEN_SOURCE=700 -E %s %s 2>/dev/null", pass ? "-dM" : "-P", path);
        assert_int_equal(sh(cmd, &out), 0);
        int before = s->n;
        names_scan(s, out);
        assert_true(s->n - before > 1000);  /* the headers were found: this is no empty corpus */
        free(out);
    }
    unlink(path);
    rmdir(dir);
    sb_free(&src);
    for (size_t i = 0; i < NNC_COUNT(c_keywords); i++) names_add(s, c_keywords[i], strlen(c_keywords[i]));
    for (size_t i = 0; i < NNC_COUNT(audit_names); i++) names_add(s, audit_names[i], strlen(audit_names[i]));
    names_scan(s, generated);
    names_unique(s);
}

/* ------------------------------------------------------------ emission ---- */

static char *program(const char *name, const char *next)
{
    StrBuf b = {0};
    sb_printf(&b, "network %s {\n    input %s: [4]\n    output %s = %s |> linear(3) as %s\n}\n", name, name, next,
              name, name);
    return b.data;
}

typedef struct {
    bool refused;       /* a positioned error instead of code */
    const char *prefix; /* in the Emission's arena */
    StrBuf c, h, tc, th;
} Emission;

/* Compiles the program of name at -O2 and emits both modules; a refusal must
 * be "hostile.net:LINE:COL: error: ...". */
static void emit(Arena *a, const char *name, const char *next, Emission *e)
{
    memset(e, 0, sizeof *e);
    char *text = program(name, next), err[1024];
    Diag d;
    diag_init(&d, a);
    IrGraph *g = fe_compile_text("hostile.net", text, strlen(text), NULL, &d);
    if (!g) {
        if (strncmp(d.out.data ? d.out.data : "", "hostile.net:", 12) != 0 || !strstr(d.out.data, ": error: "))
            fail_msg("name '%s': refused without a position:\n%s", name, d.out.data ? d.out.data : "(nothing)");
        e->refused = true;
    } else {
        if (!pass_run_pipeline_batch(g, 2, 2, NULL, NULL, err, sizeof err)) fail_msg("name '%s': passes: %s", name, err);
        e->prefix = cg_c_prefix(a, g->name);
        const char *hname = arena_printf(a, "%s.h", e->prefix), *tname = arena_printf(a, "%s_train.h", e->prefix);
        CgOptions o = {.max_batch = 2, .header_name = hname, .source_path = "hostile.net"};
        if (!cg_emit_c(g, &o, &e->c, &e->h, err, sizeof err)) fail_msg("name '%s': emit: %s", name, err);
        CgTrainOptions to = {.max_batch = 2, .header_name = tname, .source_path = "hostile.net"};
        if (!pass_plan_training_memory(g, 2, err, sizeof err)) fail_msg("name '%s': plan: %s", name, err);
        if (!cg_emit_train_c(g, &to, &e->tc, &e->th, err, sizeof err)) fail_msg("name '%s': emit train: %s", name, err);
        ir_free(g);
    }
    diag_free(&d);
    free(text);
}

static void emission_free(Emission *e)
{
    sb_free(&e->c);
    sb_free(&e->h);
    sb_free(&e->tc);
    sb_free(&e->th);
}

/* Where the module's own part of a generated source starts: the line
 * "/ * ======== PREFIX ======== * /" (inference) or "... PREFIX: training ..." */
static const char *own_part(const char *src, const char *prefix, bool train)
{
    char marker[512];
    snprintf(marker, sizeof marker, "/* ======== %s%s ======== */", prefix, train ? ": training" : "");
    const char *p = strstr(src, marker);
    if (!p) fail_msg("no '%s' line in the generated source", marker);
    return p;
}

/* ------------------------------------------------------------ compiling ---- */

/* A batch is two pairs of translation units: the networks alternate between
 * gcc's pair and clang's, and the two compilers run at once (two cores), so
 * every name is compiled, by one of them, in half the time both would take. */
typedef struct {
    char dir[64];
    StrBuf tu[2][2];     /* [gcc, clang][inference, training] */
    int networks;
    char *prefix[BATCH]; /* of the networks in the batch */
} Batch;

/* Networks whose names differ only in case (NaN, nan) share a prefix: they
 * go in different batches, as they would go in different programs. */
static bool batch_has(const Batch *b, const char *prefix)
{
    for (int i = 0; i < b->networks; i++)
        if (strcmp(b->prefix[i], prefix) == 0) return true;
    return false;
}

/* The first network of a batch gives the translation unit its kernels: its
 * source up to its own part, less the #include of its header. */
static void batch_start(StrBuf *tu, const Emission *e, int k)
{
    const char *src = k ? e->tc.data : e->c.data;
    const char *end = own_part(src, e->prefix, k == 1);
    const char *inc = strstr(src, "#include \"");
    assert_true(inc && inc < end);
    const char *eol = strchr(inc, '\n');
    sb_appendn(tu, src, (size_t)(inc - src));
    sb_appendn(tu, eol + 1, (size_t)(end - eol - 1));
}

/* Adds e's inference module, and its training module when train (the
 * training module takes no input or output name, only the prefix, and
 * compiles ten times slower: a sample of the corpus gets it). */
static void batch_add(Batch *b, const Emission *e, bool train)
{
    StrBuf *tu = b->tu[b->networks % 2];  /* gcc's, clang's, in turn */
    for (int k = 0; k < 1 + train; k++) {
        if (!tu[k].len) batch_start(&tu[k], e, k);
        const char *h = k ? e->th.data : e->h.data, *src = k ? e->tc.data : e->c.data;
        sb_append(&tu[k], h);
        sb_append(&tu[k], own_part(src, e->prefix, k == 1));
    }
    b->prefix[b->networks++] = strdup(e->prefix);
}

static double compile_seconds;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Compiles gcc's units with gcc and clang's with clang (-std=c99 -pedantic),
 * both at once; a failure prints the compiler's first lines. */
static void batch_compile(Batch *b, const char *first, const char *last)
{
    double t0 = now();
    static const char *const lines[] = {
        "gcc -std=c99 -Wall -Wextra -Werror -pedantic -fsyntax-only",
        "clang -std=c99 -Wall -Wextra -Werror -pedantic -fsyntax-only",
    };
    for (int k = 0; k < 2; k++) {
        char path[2][128], cmd[1024];
        for (int c = 0; c < 2; c++) {
            snprintf(path[c], sizeof path[c], "%s/%s%d.c", b->dir, k ? "train" : "infer", c);
            FILE *f = fopen(path[c], "w");
            assert_non_null(f);
            if (b->tu[c][k].len) fwrite(b->tu[c][k].data, 1, b->tu[c][k].len, f);
            fclose(f);
        }
        /* each compiler on its unit, if it has one (-pedantic refuses an empty one), into a log of its own */
        snprintf(cmd, sizeof cmd, "%s%s %s >%s.log 2>&1 & %s%s %s >%s.log 2>&1; wait", b->tu[0][k].len ? "" : ": ",
                 lines[0], path[0], path[0], b->tu[1][k].len ? "" : ": ", lines[1], path[1], path[1]);
        char *out;
        sh(cmd, &out);
        free(out);
        for (int c = 0; c < 2; c++) {
            snprintf(cmd, sizeof cmd, "head -30 %s.log; rm -f %s.log", path[c], path[c]);
            assert_int_equal(sh(cmd, &out), 0);
            if (*out)
                fail_msg("%s module of the networks '%s' .. '%s' (%d networks) does not compile with %s:\n%s",
                         k ? "training" : "inference", first, last, b->networks, lines[c], out);
            free(out);
            unlink(path[c]);
            sb_free(&b->tu[c][k]);
        }
    }
    for (int i = 0; i < b->networks; i++) free(b->prefix[i]);
    b->networks = 0;
    compile_seconds += now() - t0;
}

/* A generated module with every name of nnc's own: for the corpus. */
static char *generated_identifiers(void)
{
    Arena a = {0};
    Emission e;
    emit(&a, "lenet", "logits", &e);
    StrBuf all = {0};
    sb_append(&all, e.c.data);
    sb_append(&all, e.h.data);
    sb_append(&all, e.tc.data);
    sb_append(&all, e.th.data);
    emission_free(&e);
    arena_free(&a);
    return all.data;
}

/* Every name of the corpus as network, input, output and layer name: refused
 * with a position, or compiled cleanly. */
static void test_corpus_compiles(void **state)
{
    (void)state;
    double t0 = now();
    char *gen = generated_identifiers();
    Names s = {0};
    corpus(&s, gen);
    free(gen);
    print_message("corpus: %d names\n", s.n);
    assert_true(s.n > 3000);
    Batch b = {0};
    snprintf(b.dir, sizeof b.dir, "/tmp/nnc-test-cnames-XXXXXX");
    assert_non_null(mkdtemp(b.dir));
    int refused = 0, first = 0;
    for (int i = 0; i < s.n; i++) {
        Arena a = {0};
        Emission e;
        emit(&a, s.v[i], s.v[(i + 1) % s.n], &e);
        if (!e.refused && batch_has(&b, e.prefix)) {
            batch_compile(&b, s.v[first], s.v[i - 1]);
            first = i;
        }
        if (e.refused) refused++;
        else if (i % COMPILE_EVERY == 0) batch_add(&b, &e, i % (TRAIN_SAMPLE * COMPILE_EVERY) == 0);
        emission_free(&e);
        arena_free(&a);
        if (b.networks == BATCH || (i == s.n - 1 && b.networks)) {
            batch_compile(&b, s.v[first], s.v[i]);
            first = i + 1;
        }
    }
    print_message("refused with a position: %d (keywords of the language); %.1f s compiling, %.1f s in all\n", refused,
                  compile_seconds, now() - t0);
    assert_true(refused < 40);
    rmdir(b.dir);
    names_free(&s);
}

/* ---------------------------------------------------------------- running ---- */

/* The sample: whole files of each module, written under dir and compiled
 * into one shared object (one compiler run: each file keeps its kernels
 * static), loaded, and run on one sample each: the output must be W x + b. */
typedef struct {
    const char *name, *prefix;  /* in the arena */
} Sample;

static int add_sample(Arena *a, const char *dir, const char *name, const char *next, Sample *out, int n_out)
{
    Emission e;
    emit(a, name, next, &e);
    bool fresh = !e.refused;
    for (int i = 0; fresh && i < n_out; i++) fresh = strcmp(out[i].prefix, e.prefix) != 0;
    if (fresh) {
        for (int k = 0; k < 2; k++) {
            char path[512];
            snprintf(path, sizeof path, "%s/%s.%c", dir, e.prefix, k ? 'h' : 'c');
            FILE *f = fopen(path, "w");
            assert_non_null(f);
            fputs(k ? e.h.data : e.c.data, f);
            fclose(f);
        }
        out[n_out++] = (Sample){arena_strdup(a, name), e.prefix};
    }
    emission_free(&e);
    return n_out;
}

static void *sym(void *so, const char *prefix, const char *what)
{
    char name[512];
    snprintf(name, sizeof name, "%s_%s", prefix, what);
    void *p = dlsym(so, name);
    if (!p) fail_msg("no %s in the generated code", name);
    return p;
}

static void run_sample(void *so, const char *dir, const Sample *s)
{
    char wpath[512], err[512];
    snprintf(wpath, sizeof wpath, "%s/%s.safetensors", dir, s->prefix);
    float W[12], bias[3], x[4], y[3];
    for (int i = 0; i < 12; i++) W[i] = (float)(i % 5) * 0.25f - 0.5f;
    for (int i = 0; i < 3; i++) bias[i] = 0.125f * (float)(i + 1);
    for (int i = 0; i < 4; i++) x[i] = (float)i - 1.5f;
    char wname[300], bname[300];
    snprintf(wname, sizeof wname, "%s.weight", s->name);
    snprintf(bname, sizeof bname, "%s.bias", s->name);
    RtTensor t[2] = {{.name = wname, .rank = 2, .shape = {3, 4}, .data = W},
                     {.name = bname, .rank = 1, .shape = {3}, .data = bias}};
    if (rt_st_write(wpath, t, 2, NULL, err, sizeof err) != 0) fail_msg("rt_st_write: %s", err);
    int (*create)(void **, const char *, void *);
    int (*forward_v)(void *, int, const float *const *, float *const *);
    const char *(*last_error)(const void *);
    void (*destroy)(void *);
    *(void **)&create = sym(so, s->prefix, "create");
    *(void **)&forward_v = sym(so, s->prefix, "forward_v");
    *(void **)&last_error = sym(so, s->prefix, "last_error");
    *(void **)&destroy = sym(so, s->prefix, "destroy");
    void *inst = NULL;
    if (create(&inst, wpath, NULL) != 0) fail_msg("name '%s': create: %s", s->name, last_error(inst));
    const float *ins[1] = {x};
    float *outs[1] = {y};
    assert_int_equal(forward_v(inst, 1, ins, outs), 0);
    for (int o = 0; o < 3; o++) {
        float want = bias[o];
        for (int i = 0; i < 4; i++) want += W[o * 4 + i] * x[i];
        if (fabsf(y[o] - want) > 1e-5f) fail_msg("name '%s': y[%d] = %g, want %g", s->name, o, (double)y[o], (double)want);
    }
    destroy(inst);
}

static void test_sample_runs(void **state)
{
    (void)state;
    Arena a = {0};
    char dir[] = "/tmp/nnc-test-cnames-run-XXXXXX", cmd[4096];
    assert_non_null(mkdtemp(dir));
    Sample s[NNC_COUNT(audit_names) + NNC_COUNT(c_keywords)];
    int n = 0;
    for (size_t i = 0; i < NNC_COUNT(audit_names); i++)
        n = add_sample(&a, dir, audit_names[i], audit_names[(i + 1) % NNC_COUNT(audit_names)], s, n);
    for (size_t i = 0; i < NNC_COUNT(c_keywords); i++) n = add_sample(&a, dir, c_keywords[i], "y", s, n);
    print_message("%d networks built and run\n", n);
    assert_true(n > 60);
    char *out;
    /* a unit per network, two at a time (two cores), then one library */
    snprintf(cmd, sizeof cmd,
             "cd %s && ls *.c | xargs -P 2 -I{} gcc -std=gnu11 -Wall -Wextra -Werror -pedantic -O0 -fPIC -c {} -o {}.o "
             "2>&1 && gcc -shared -o samples.so *.c.o -lm 2>&1", dir);
    if (sh(cmd, &out) != 0) fail_msg("the generated code does not build:\n%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s/samples.so", dir);
    void *so = dlopen(cmd, RTLD_NOW | RTLD_LOCAL);
    if (!so) fail_msg("dlopen: %s", dlerror());
    for (int i = 0; i < n; i++) run_sample(so, dir, &s[i]);
    dlclose(so);
    /* a network called main: a program that defines main() includes main.h */
    snprintf(cmd, sizeof cmd, "%s/prog.c", dir);
    FILE *f = fopen(cmd, "w");
    assert_non_null(f);
    fputs("#include \"main.h\"\n#include <stdio.h>\nint main(void)\n{\n    main_model *m = NULL;\n"
          "    int rc = main_create(&m, NULL, NULL);\n    printf(\"%d %s\\n\", rc, main_last_error(m));\n"
          "    main_destroy(m);\n    return MAIN_OK;\n}\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "cd %s && gcc -std=c99 -Wall -Wextra -Werror -pedantic -O1 -o prog prog.c main.c -lm 2>&1 "
             "&& ./prog", dir);
    assert_int_equal(sh(cmd, &out), 0);
    assert_non_null(strstr(out, "main_create: the weights path is NULL"));
    free(out);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(sh(cmd, &out), 0);
    free(out);
    arena_free(&a);
}

/* Inputs that differ only in case get distinct C names (their macros would
 * clash); a layer path with '.' and one with '_' name distinct tensors. */
static void test_case_and_dots(void **state)
{
    (void)state;
    const char *text = "network Net {\n    input x: [4]\n    input X: [4]\n    output Y = linear(x + X, 3) as a.b\n"
                       "    output y = Y |> linear(2) as a_b\n}\n";
    Arena a = {0};
    Diag d;
    diag_init(&d, &a);
    IrGraph *g = fe_compile_text("case.net", text, strlen(text), NULL, &d);
    if (!g) fail_msg("%s", d.out.data);
    char err[512];
    assert_true(pass_run_pipeline(g, 2, err, sizeof err));
    StrBuf c = {0}, h = {0};
    CgOptions o = {.max_batch = 1, .header_name = "net.h", .source_path = "case.net"};
    assert_true(cg_emit_c(g, &o, &c, &h, err, sizeof err));
    assert_non_null(strstr(h.data, "int net_forward(net_model *m, int n, const float *in_x, const float *in_X_2, "
                                   "float *out_Y, float *out_y_2);"));
    assert_non_null(strstr(h.data, "#define NET_IN_X_FLOATS"));
    assert_non_null(strstr(h.data, "#define NET_IN_X_2_FLOATS"));
    assert_non_null(strstr(c.data, "\"a.b.weight\""));
    assert_non_null(strstr(c.data, "\"a_b.weight\""));
    sb_free(&c);
    sb_free(&h);
    ir_free(g);
    diag_free(&d);
    arena_free(&a);
}

/* Text that reaches a comment or a string literal cannot end it, nest it,
 * splice it or form a trigraph; a header name that #include cannot hold
 * safely is refused, by both emitters. */
static void test_escaping(void **state)
{
    (void)state;
    StrBuf b = {0};
    cg_append_comment(&b, "a*/b/*c?\?/\\\nd\033[31m\xc3\xa9");
    assert_string_equal(b.data, "a* /b/ *c? ?/\\x5c\\x0ad\\x1b[31m\\xc3\\xa9");
    sb_free(&b);
    cg_append_string_literal(&b, "q\"\\?\?=\n\1\377");
    assert_string_equal(b.data, "\"q\\\"\\\\\\?\\?=\\012\\001\\377\"");
    sb_free(&b);
    char err[256];
    assert_true(cg_header_name_ok("lenet5-v2.1+x_y.h", err, sizeof err));
    assert_true(cg_header_name_ok("my model.h", err, sizeof err));
    const char *bad[] = {"a\"b.h", "a\\b.h", "a/b.h", ".h", "", " b.h", "a'b.h", "a\nb.h", "x?\?/.h", "caf\xc3\xa9.h"};
    for (size_t i = 0; i < NNC_COUNT(bad); i++) {
        assert_false(cg_header_name_ok(bad[i], err, sizeof err));
        assert_non_null(strstr(err, "cannot be #included"));
    }
}

/* ------------------------------------------------------- path injection ---- */

/* Runs argv (no shell), its output appended to log; returns the exit status. */
static int spawn(char *const *argv, const char *log)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* mkdir -p for a path whose components hold any byte but '/'. */
static void make_dirs(const char *path)
{
    char *p = strdup(path);
    for (char *q = p + 1; *q; q++) {
        if (*q != '/') continue;
        *q = '\0';
        mkdir(p, 0755);
        *q = '/';
    }
    mkdir(p, 0755);
    free(p);
}

/* The audit's exploit: a directory whose name closes the banner comment and
 * adds a constructor that runs a command. The model inside it is trained by
 * `nnc train` (which compiles and loads the training module) and emitted by
 * both emitters; the command must never run, and the emitted code must
 * compile cleanly with the path in its comments. */
static void test_path_injection(void **state)
{
    (void)state;
    char base[] = "/tmp/nnc-test-inject-XXXXXX";
    assert_non_null(mkdtemp(base));
    char mark[256], dir[1024], model[1200], data[128], log[128], out[512], err[256];
    snprintf(mark, sizeof mark, "%s/PWNED", base);
    snprintf(dir, sizeof dir,
             "%s/x*/\n#include <stdlib.h>\n__attribute__((constructor)) static void nnc_pwn(void) "
             "{ system(\"touch %s\"); }\n/* \"\\ ?\?/", base, mark);
    make_dirs(dir);
    snprintf(model, sizeof model, "%s/tiny.net", dir);
    FILE *f = fopen(model, "w");
    assert_non_null(f);
    fputs("network tiny {\n    input image: [1, 2, 2]\n    output logits = image |> flatten |> linear(2)\n}\n", f);
    fclose(f);
    snprintf(data, sizeof data, "%s/data", base);
    mkdir(data, 0755);
    float img[16] = {1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 1, 0, 0, 1, 0, 1};
    RtTensor t = {.name = "x", .rank = 4, .shape = {4, 1, 2, 2}, .data = img};
    snprintf(out, sizeof out, "%s/train_images.npy", data);
    if (rt_npy_write(out, &t, err, sizeof err) != 0) fail_msg("%s", err);
    snprintf(out, sizeof out, "%s/train_labels.npy", data);
    assert_int_equal(write_labels_npy(out, (const int32_t[]){0, 1, 0, 1}, 4), 0);
    snprintf(log, sizeof log, "%s/log", base);
    char spec[320];
    snprintf(spec, sizeof spec, "npy:%s", data);
    char *train[] = {NNC_EXE, "train", model, "--data", spec, "--epochs", "1", "--batch", "2", NULL};
    int rc = spawn(train, log);
    char *text;
    snprintf(out, sizeof out, "cat %s", log);
    sh(out, &text);
    if (rc != 0) fail_msg("nnc train failed (%d):\n%s", rc, text);
    free(text);
    assert_int_equal(access(mark, F_OK), -1);  /* the injected constructor never ran */
    for (int k = 0; k < 2; k++) {
        snprintf(out, sizeof out, "%s/%s.c", base, k ? "t" : "i");
        char *emit_argv[] = {NNC_EXE, model, k ? "--emit=train" : "--emit=c", "-o", out, NULL};
        assert_int_equal(spawn(emit_argv, log), 0);
        char cmd[700];
        snprintf(cmd, sizeof cmd, "gcc -std=c99 -Wall -Wextra -Werror -pedantic -fsyntax-only %s 2>&1", out);
        assert_int_equal(sh(cmd, &text), 0);
        if (*text) fail_msg("%s does not compile cleanly:\n%s", out, text);
        free(text);
    }
    assert_int_equal(access(mark, F_OK), -1);
    snprintf(out, sizeof out, "rm -rf %s", base);
    assert_int_equal(sh(out, &text), 0);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_path_injection),
        cmocka_unit_test(test_case_and_dots),
        cmocka_unit_test(test_sample_runs),
        cmocka_unit_test(test_corpus_compiles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
