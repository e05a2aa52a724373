/* test_jit.c: the in-process JIT (runtime/jit.h, jit_llvm.h) and its disk
 * cache (runtime/jit_cache.h).
 *
 * Plain C compiled in memory and called (a header of its own, libm, libc's
 * stdio, __builtin_cpu_supports against the process's answer, an AVX-512
 * function behind target("avx512f")); Clang's diagnostics in err; every
 * network of codegen_fixture.c loaded by rt_load and by rt_cc_load (gcc)
 * giving the same outputs; the cache: a second load is a hit (both times
 * printed), a corrupted or truncated entry or one of another key is refused,
 * rebuilt and replaced, two processes loading the same new source at once
 * both succeed and leave one valid entry, NNC_CACHE=off writes nothing, a
 * directory others can write to is not used; two
 * modules with the same symbol names side by side, and two threads loading
 * and running modules at once. The system compiler's path (NNC_JIT=cc) has
 * the same cache, tested in every build: a hit (counted, and faster than the
 * compile), another flag another entry, damaged entries and a whole entry
 * that is no shared object refused and rebuilt, two processes racing, off. Built without LLVM (NNC_JIT_LLVM=OFF), the
 * tests check that rt_load is the cc path and skip the rest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "runtime/jit.h"
#include "tests/unit/codegen_fixture.h"

#include "runtime/jit_cache.h"
#ifdef NNC_HAVE_LLVM_JIT
#include "runtime/jit_llvm.h"
#endif

#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    char path[512];
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

/* A model-shaped source whose forward multiplies by K; `salt` makes it new to the cache. */
static void small_model(char *c, size_t len, int k, const char *salt)
{
    snprintf(c, len,
             "/* %s */\n#include \"model.h\"\n#include <stddef.h>\n#include <math.h>\n"
             "int m_create(void **m, const char *w, void *ws) { (void)w; *m = ws; return 7; }\n"
             "int m_create_from_memory(void **m, const void *w, size_t s, void *ws) { (void)w; (void)s; *m = ws; return 8; }\n"
             "int m_forward_v(void *m, int n, const float *const *i, float *const *o)\n"
             "{ (void)m; o[0][0] = sqrtf(i[0][0] * i[0][0]) * (float)n * K%d; return 0; }\n"
             "const char *m_last_error(const void *m) { (void)m; return \"fine\"; }\n"
             "void m_destroy(void *m) { (void)m; }\n",
             salt, k);
}

static const char small_h[] = "#define K1 1.0f\n#define K2 2.0f\n#define K3 3.0f\n"
                              "int m_create(void **m, const char *w, void *ws);\n";

static float run_small(const RtModel *rt)
{
    void *inst = NULL;
    int token;
    float x = -1.5f, y = 0;
    const float *in[1] = {&x};
    float *out[1] = {&y};
    assert_int_equal(rt->create(&inst, NULL, &token), 7);
    assert_int_equal(rt->forward_v(inst, 2, in, out), 0);
    assert_string_equal(rt->last_error(inst), "fine");
    rt->destroy(inst);
    return y;
}

static void damage_entry(const char *path, int how)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    if (how == 0) {  /* flip a byte of the payload */
        fseek(f, (long)st.st_size - 100, SEEK_SET);
        int ch = fgetc(f);
        fseek(f, (long)st.st_size - 100, SEEK_SET);
        fputc(ch ^ 0x40, f);
    } else if (how == 1) {  /* truncate */
        assert_int_equal(ftruncate(fileno(f), st.st_size / 2), 0);
    } else if (how == 2) {  /* bad magic */
        fputc('X', f);
    } else {  /* only a header's worth */
        assert_int_equal(ftruncate(fileno(f), 10), 0);
    }
    fclose(f);
}


/* ---- the system compiler's cache (runtime/jit_cc.c through jit_cache.h), in every build ---- */

/* A fresh cache directory for the cc path (NNC_JIT=cc); the previous NNC_CACHE_DIR in old. */
static void cc_cache_begin(char *dir, size_t len, char *old, size_t oldlen)
{
    const char *o = getenv("NNC_CACHE_DIR");
    snprintf(old, oldlen, "%s", o ? o : "");
    snprintf(dir, len, "/tmp/nnc-test-cc-cache-XXXXXX");
    assert_non_null(mkdtemp(dir));
    setenv("NNC_CACHE_DIR", dir, 1);
    unsetenv("NNC_CACHE");
    setenv("NNC_JIT", "cc", 1);
    unsetenv("NNC_JIT_BLAS");
}

static void cc_cache_end(const char *dir, const char *old)
{
    remove_dir(dir);
    if (*old) setenv("NNC_CACHE_DIR", old, 1);
    else unsetenv("NNC_CACHE_DIR");
#ifdef NNC_HAVE_LLVM_JIT
    setenv("NNC_JIT", "llvm", 1);  /* what setup chose for the other tests */
#else
    unsetenv("NNC_JIT");
#endif
}

/* The one entry in dir (a fresh cache directory after one store). */
static void cc_entry(const char *dir, char *path, size_t len)
{
    DIR *d = opendir(dir);
    int n = 0;
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));)
        if (strlen(e->d_name) > 2 && strcmp(e->d_name + strlen(e->d_name) - 2, ".o") == 0) {
            snprintf(path, len, "%s/%s", dir, e->d_name);
            n++;
        }
    closedir(d);
    assert_int_equal(n, 1);
}

static void cc_load(const char *c, RtModel *rt)
{
    char err[4096] = "";
    if (rt_load(c, small_h, "model.h", "m", rt, err, sizeof err) != 0) fail_msg("rt_load (cc): %s", err);
    assert_int_equal(rt->kind, 0);
}

/* a new source is compiled and stored; the same source again is a hit, and faster */
static void test_cc_cache_hit(void **state)
{
    (void)state;
    char dir[128], old[512], c[2048], salt[64], path[512];
    cc_cache_begin(dir, sizeof dir, old, sizeof old);
    snprintf(salt, sizeof salt, "cc hit %ld %ld", (long)getpid(), (long)time(NULL));
    small_model(c, sizeof c, 2, salt);
    RtCacheStats s;
    RtModel rt;
    rt_cache_reset_stats();
    double t0 = now_ms();
    cc_load(c, &rt);
    double t1 = now_ms();
    assert_true(run_small(&rt) == 6.0f);
    rt_unload(&rt);
    rt_cache_stats(&s);
    assert_int_equal(s.hits, 0);
    assert_int_equal(s.misses, 1);
    assert_int_equal(s.stores, 1);
    cc_entry(dir, path, sizeof path);
    double t2 = now_ms();
    cc_load(c, &rt);
    double t3 = now_ms();
    assert_true(run_small(&rt) == 6.0f);
    rt_unload(&rt);
    rt_cache_stats(&s);
    assert_int_equal(s.hits, 1);
    assert_int_equal(s.misses, 1);
    assert_int_equal(s.stores, 1);
    printf("small module with cc: compiled %.1f ms, from the cache %.1f ms\n", t1 - t0, t3 - t2);
    assert_true(t3 - t2 < t1 - t0);  /* no compiler ran: a read, a write, a dlopen */
    /* another flag is another entry (the key has the command's words) */
    setenv("NNC_JIT_NATIVE", "0", 1);
    cc_load(c, &rt);
    rt_unload(&rt);
    unsetenv("NNC_JIT_NATIVE");
    rt_cache_stats(&s);
    assert_int_equal(s.stores, 2);
    assert_int_equal(count_files(dir), 2);
    cc_cache_end(dir, old);
}

/* a damaged entry is refused (never dlopened), rebuilt and replaced */
static void test_cc_cache_corrupt_rebuilt(void **state)
{
    (void)state;
    char dir[128], old[512], c[2048], salt[64], path[512];
    cc_cache_begin(dir, sizeof dir, old, sizeof old);
    snprintf(salt, sizeof salt, "cc corrupt %ld %ld", (long)getpid(), (long)time(NULL));
    small_model(c, sizeof c, 3, salt);
    RtModel rt;
    RtCacheStats s;
    cc_load(c, &rt);
    rt_unload(&rt);
    cc_entry(dir, path, sizeof path);
    for (int how = 0; how < 4; how++) {
        damage_entry(path, how);
        rt_cache_reset_stats();
        cc_load(c, &rt);
        assert_true(run_small(&rt) == 9.0f);
        rt_unload(&rt);
        rt_cache_stats(&s);
        assert_int_equal(s.corrupt, 1);
        assert_int_equal(s.hits, 0);
        assert_int_equal(s.stores, 1);
        cc_load(c, &rt);  /* the replacement is whole */
        rt_unload(&rt);
        rt_cache_stats(&s);
        assert_int_equal(s.hits, 1);
    }
    /* a whole entry (right key, right checksum) whose payload is no shared object: refused at dlopen, rebuilt */
    unsigned char key[RT_CACHE_KEY];
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 16, SEEK_SET), 0);
    assert_int_equal(fread(key, 1, sizeof key, f), sizeof key);
    fclose(f);
    assert_true(rt_cache_put(dir, key, "not an ELF file", 15));
    rt_cache_reset_stats();
    cc_load(c, &rt);
    assert_true(run_small(&rt) == 9.0f);
    rt_unload(&rt);
    rt_cache_stats(&s);
    assert_int_equal(s.corrupt, 1);
    assert_int_equal(s.hits, 0);
    assert_int_equal(s.stores, 1);  /* the rebuild replaced it */
    rt_cache_reset_stats();
    cc_load(c, &rt);
    rt_unload(&rt);
    rt_cache_stats(&s);
    assert_int_equal(s.hits, 1);
    cc_cache_end(dir, old);
}

/* two processes load the same new source at the same moment with cc: both succeed, one whole entry remains */
static void test_cc_cache_two_processes(void **state)
{
    (void)state;
    char dir[128], old[512], c[2048], salt[64];
    cc_cache_begin(dir, sizeof dir, old, sizeof old);
    snprintf(salt, sizeof salt, "cc race %ld %ld", (long)getpid(), (long)time(NULL));
    small_model(c, sizeof c, 2, salt);
    int go[2];
    assert_int_equal(pipe(go), 0);
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        kids[k] = fork();
        assert_true(kids[k] >= 0);
        if (kids[k] == 0) {
            char b;
            close(go[1]);
            if (read(go[0], &b, 1) != 0) _exit(3);  /* released together, when the parent closes the pipe */
            RtModel rt;
            char err[4096];
            if (rt_load(c, small_h, "model.h", "m", &rt, err, sizeof err) != 0 || rt.kind != 0) _exit(1);
            void *inst = NULL;
            float x = 1, y = 0;
            const float *in[1] = {&x};
            float *out[1] = {&y};
            if (rt.create(&inst, NULL, NULL) != 7 || rt.forward_v(inst, 1, in, out) != 0 || y != 2.0f) _exit(2);
            _exit(0);
        }
    }
    close(go[0]);
    close(go[1]);
    for (int k = 0; k < 2; k++) {
        int status = 0;
        assert_int_equal(waitpid(kids[k], &status, 0), kids[k]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    RtModel rt;
    RtCacheStats s;
    rt_cache_reset_stats();
    cc_load(c, &rt);
    rt_unload(&rt);
    rt_cache_stats(&s);
    assert_int_equal(s.hits, 1);
    assert_int_equal(count_files(dir), 1);  /* one whole entry, no temporaries left */
    cc_cache_end(dir, old);
}

/* NNC_CACHE=off: the cc path reads and writes nothing */
static void test_cc_cache_off(void **state)
{
    (void)state;
    char dir[128], old[512], c[2048], sub[256];
    cc_cache_begin(dir, sizeof dir, old, sizeof old);
    snprintf(sub, sizeof sub, "%s/never", dir);
    setenv("NNC_CACHE_DIR", sub, 1);
    setenv("NNC_CACHE", "off", 1);
    small_model(c, sizeof c, 1, "cc off");
    RtModel rt;
    RtCacheStats s;
    rt_cache_reset_stats();
    for (int i = 0; i < 2; i++) {
        cc_load(c, &rt);
        assert_true(run_small(&rt) == 3.0f);
        rt_unload(&rt);
    }
    rt_cache_stats(&s);
    assert_int_equal(s.hits + s.misses + s.stores, 0);
    assert_int_not_equal(access(sub, F_OK), 0);
    unsetenv("NNC_CACHE");
    cc_cache_end(dir, old);
}

#ifdef NNC_HAVE_LLVM_JIT

static char g_cache[128];  /* this run's cache directory (NNC_CACHE_DIR) */

static int setup(void **state)
{
    (void)state;
    snprintf(g_cache, sizeof g_cache, "/tmp/nnc-test-jit-cache-XXXXXX");
    if (!mkdtemp(g_cache)) return -1;
    setenv("NNC_CACHE_DIR", g_cache, 1);
    unsetenv("NNC_CACHE");
    setenv("NNC_JIT", "llvm", 1);  /* the default, said explicitly (jit.h) */
    unsetenv("NNC_JIT_BLAS");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    remove_dir(g_cache);
    return 0;
}

/* plain C: a header in memory, libm, stdio, __builtin_cpu_supports, target("avx512f") */
static void test_llvm_compiles_and_calls(void **state)
{
    (void)state;
    const char *c = "#include \"t.h\"\n#include <math.h>\n#include <stdio.h>\n#include <string.h>\n"
                    "int f(int x) { return x * K + (int)sqrtf((float)x); }\n"
                    "int avx512(void) { return __builtin_cpu_supports(\"avx512f\") != 0; }\n"
                    "int avx2(void) { return __builtin_cpu_supports(\"avx2\") != 0; }\n"
                    "__attribute__((target(\"avx512f\"))) float wide(const float *a)\n"
                    "{ float s = 0; for (int i = 0; i < 64; i++) s += a[i]; return s; }\n"
                    "int fmt(char *b, size_t n, double v) { return snprintf(b, n, \"%.3f\", v); }\n";
    RtJit *j = NULL;
    char err[4096] = "";
    if (rt_llvm_compile(c, "#define K 3\n", "t.h", NULL, &j, err, sizeof err) != 0) fail_msg("%s", err);
    int (*f)(int);
    int (*avx512)(void), (*avx2)(void);
    float (*wide)(const float *);
    int (*fmt)(char *, size_t, double);
    void *p;
    assert_non_null(p = rt_llvm_lookup(j, "f", err, sizeof err)), memcpy(&f, &p, sizeof p);
    assert_non_null(p = rt_llvm_lookup(j, "avx512", err, sizeof err)), memcpy(&avx512, &p, sizeof p);
    assert_non_null(p = rt_llvm_lookup(j, "avx2", err, sizeof err)), memcpy(&avx2, &p, sizeof p);
    assert_non_null(p = rt_llvm_lookup(j, "wide", err, sizeof err)), memcpy(&wide, &p, sizeof p);
    assert_non_null(p = rt_llvm_lookup(j, "fmt", err, sizeof err)), memcpy(&fmt, &p, sizeof p);
    assert_int_equal(f(16), 16 * 3 + 4);
    assert_int_equal(avx512(), __builtin_cpu_supports("avx512f") != 0);
    assert_int_equal(avx2(), __builtin_cpu_supports("avx2") != 0);
    if (__builtin_cpu_supports("avx512f")) {
        float a[64];
        for (int i = 0; i < 64; i++) a[i] = (float)i;
        assert_true(wide(a) == 2016.0f);
    }
    char buf[32];
    assert_int_equal(fmt(buf, sizeof buf, 2.5), 5);
    assert_string_equal(buf, "2.500");
    assert_null(rt_llvm_lookup(j, "no_such_function", err, sizeof err));
    assert_non_null(strstr(err, "no_such_function"));
    rt_llvm_free(j);
    printf("identity: %s\n", rt_llvm_identity());
}

/* Clang's diagnostics come back in err, with the in-memory file's name */
static void test_llvm_reports_errors(void **state)
{
    (void)state;
    RtJit *j = NULL;
    char err[4096] = "";
    assert_int_equal(rt_llvm_compile("#include \"m.h\"\nint f(void) { return undefined_thing; }\n", "", "m.h", NULL, &j,
                                     err, sizeof err), -1);
    assert_null(j);
    assert_non_null(strstr(err, "undefined_thing"));
    assert_non_null(strstr(err, "model.c:2"));
    assert_int_equal(rt_llvm_compile("#include \"missing.h\"\n", "", "m.h", NULL, &j, err, sizeof err), -1);
    assert_non_null(strstr(err, "missing.h"));
    /* a symbol nothing defines: refused at lookup, named */
    assert_int_equal(rt_llvm_compile("int nowhere(void); int f(void) { return nowhere(); }\n", "", "m.h", NULL, &j, err,
                                     sizeof err), 0);
    assert_null(rt_llvm_lookup(j, "f", err, sizeof err));
    assert_non_null(strstr(err, "nowhere"));
    rt_llvm_free(j);
    RtModel rt;
    assert_int_equal(rt_load("int x;\n", "", "m.h", "m", &rt, err, sizeof err), -1);
    assert_non_null(strstr(err, "m_create"));
    assert_int_equal(rt_load("", "", "../m.h", "m", &rt, err, sizeof err), -1);
}

/* every fixture network: rt_load (clang, in process) and rt_cc_load (cc)
 * agree; bit for bit where the compilers' code does the same operations in
 * the same order (checked and counted), else within 1e-6 relative */
static void test_model_matches_cc(void **state)
{
    (void)state;
    setenv("NNC_CACHE", "off", 1);
    long total = 0, differ = 0;
    double worst = 0;
    for (size_t k = 0; k < NNC_COUNT(all_nets); k++) {
        Net *net = all_nets[k]();
        Emitted e;
        char err[4096] = "", w[256];
        emit(net, MAX_BATCH, &e);
        write_weights(net, &e, NULL, NULL);
        path_in(&e, "w.safetensors", w, sizeof w);
        RtModel a, b;
        if (rt_load(e.c.data, e.h.data, e.header, e.prefix, &a, err, sizeof err) != 0) fail_msg("rt_load: %s", err);
        assert_int_equal(a.kind, 1);
        if (rt_cc_load(e.c.data, e.h.data, e.header, e.prefix, &b, err, sizeof err) != 0) fail_msg("rt_cc_load: %s", err);
        void *ma = NULL, *mb = NULL;
        assert_int_equal(a.create(&ma, w, NULL), 0);
        assert_int_equal(b.create(&mb, w, NULL), 0);
        const IrGraph *g = net->g;
        int n = 3;
        float *in[8], *oa[8], *ob[8];
        for (int i = 0; i < g->n_inputs; i++)
            in[i] = random_batch(&net->rng, n * ir_shape_elems(&g->values[g->inputs[i]].shape));
        for (int o = 0; o < g->n_outputs; o++) {
            size_t cnt = (size_t)(n * ir_shape_elems(&g->values[g->outputs[o].value].shape));
            oa[o] = calloc(cnt, sizeof(float));
            ob[o] = calloc(cnt, sizeof(float));
        }
        assert_int_equal(a.forward_v(ma, n, (const float *const *)in, oa), 0);
        assert_int_equal(b.forward_v(mb, n, (const float *const *)in, ob), 0);
        for (int o = 0; o < g->n_outputs; o++) {
            int64_t cnt = n * ir_shape_elems(&g->values[g->outputs[o].value].shape);
            for (int64_t i = 0; i < cnt; i++) {
                total++;
                if (memcmp(&oa[o][i], &ob[o][i], sizeof(float)) == 0) continue;
                differ++;
                double d = fabs((double)oa[o][i] - ob[o][i]) / (fabs((double)ob[o][i]) + 1e-6);
                if (d > worst) worst = d;
                if (d > 1e-6)
                    fail_msg("%s: output %s[%lld]: in process %.9g, cc %.9g", g->name, g->outputs[o].name,
                             (long long)i, (double)oa[o][i], (double)ob[o][i]);
            }
            free(oa[o]);
            free(ob[o]);
        }
        for (int i = 0; i < g->n_inputs; i++) free(in[i]);
        a.destroy(ma);
        b.destroy(mb);
        rt_unload(&a);
        rt_cc_unload(&b);
        assert_null(a.so);
        emitted_free(&e);
        net_free(net);
    }
    printf("in process vs cc: %ld of %ld outputs differ in their bits, worst relative difference %.3g\n", differ,
           total, worst);
    unsetenv("NNC_CACHE");
}

static void cache_entry(const char *c, char *path, size_t len)
{
    unsigned char key[RT_CACHE_KEY];
    const char *parts[] = {c, small_h, "model.h", rt_llvm_identity(), rt_llvm_flags()};
    rt_cache_key(parts, 5, key);
    rt_cache_path(g_cache, key, path, len);
}

static void load_small(const char *c, RtModel *rt)
{
    char err[4096] = "";
    if (rt_load(c, small_h, "model.h", "m", rt, err, sizeof err) != 0) fail_msg("rt_load: %s", err);
}

/* a new source is compiled and stored; the same source again is a hit */
static void test_cache_hit(void **state)
{
    (void)state;
    char c[2048], salt[64], path[512];
    snprintf(salt, sizeof salt, "hit %ld %ld", (long)getpid(), (long)time(NULL));
    small_model(c, sizeof c, 2, salt);
    RtCacheStats s;
    RtModel rt;
    rt_cache_reset_stats();
    double t0 = now_ms();
    load_small(c, &rt);
    double t1 = now_ms();
    assert_true(run_small(&rt) == 6.0f);
    rt_unload(&rt);
    rt_cache_stats(&s);
    assert_int_equal(s.hits, 0);
    assert_int_equal(s.misses, 1);
    assert_int_equal(s.stores, 1);
    cache_entry(c, path, sizeof path);
    assert_int_equal(access(path, R_OK), 0);
    double t2 = now_ms();
    load_small(c, &rt);
    double t3 = now_ms();
    assert_true(run_small(&rt) == 6.0f);
    rt_unload(&rt);
    rt_cache_stats(&s);
    assert_int_equal(s.hits, 1);
    assert_int_equal(s.misses, 1);
    assert_int_equal(s.stores, 1);
    printf("small module: compiled %.1f ms, from the cache %.1f ms\n", t1 - t0, t3 - t2);
}

/* a damaged entry is refused (never loaded), rebuilt and replaced */
static void test_cache_corrupt_rebuilt(void **state)
{
    (void)state;
    char c[2048], salt[64], path[512];
    snprintf(salt, sizeof salt, "corrupt %ld %ld", (long)getpid(), (long)time(NULL));
    small_model(c, sizeof c, 3, salt);
    cache_entry(c, path, sizeof path);
    RtModel rt;
    RtCacheStats s;
    load_small(c, &rt);
    rt_unload(&rt);
    for (int how = 0; how < 4; how++) {
        damage_entry(path, how);
        rt_cache_reset_stats();
        load_small(c, &rt);
        assert_true(run_small(&rt) == 9.0f);
        rt_unload(&rt);
        rt_cache_stats(&s);
        assert_int_equal(s.corrupt, 1);
        assert_int_equal(s.hits, 0);
        assert_int_equal(s.stores, 1);
        load_small(c, &rt);  /* the replacement is whole */
        rt_unload(&rt);
        rt_cache_stats(&s);
        assert_int_equal(s.hits, 1);
    }
    /* an entry written under another key (a collision of names, or a copied file) is refused too */
    char other[2048], opath[512];
    small_model(other, sizeof other, 1, salt);
    load_small(other, &rt);
    rt_unload(&rt);
    cache_entry(other, opath, sizeof opath);
    assert_int_equal(rename(opath, path), 0);
    rt_cache_reset_stats();
    load_small(c, &rt);
    assert_true(run_small(&rt) == 9.0f);
    rt_unload(&rt);
    rt_cache_stats(&s);
    assert_int_equal(s.corrupt, 1);
}

/* two processes load the same new source at the same moment: both succeed */
static void test_cache_two_processes(void **state)
{
    (void)state;
    char c[2048], salt[64], path[512];
    snprintf(salt, sizeof salt, "race %ld %ld", (long)getpid(), (long)time(NULL));
    small_model(c, sizeof c, 2, salt);
    cache_entry(c, path, sizeof path);
    int go[2];
    assert_int_equal(pipe(go), 0);
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        kids[k] = fork();
        assert_true(kids[k] >= 0);
        if (kids[k] == 0) {
            char b;
            close(go[1]);
            if (read(go[0], &b, 1) != 0) _exit(3);  /* released together, when the parent closes the pipe */
            RtModel rt;
            char err[4096];
            if (rt_load(c, small_h, "model.h", "m", &rt, err, sizeof err) != 0) _exit(1);
            void *inst = NULL;
            float x = 1, y = 0;
            const float *in[1] = {&x};
            float *out[1] = {&y};
            if (rt.create(&inst, NULL, NULL) != 7 || rt.forward_v(inst, 1, in, out) != 0 || y != 2.0f) _exit(2);
            _exit(0);
        }
    }
    close(go[0]);
    close(go[1]);
    for (int k = 0; k < 2; k++) {
        int status = 0;
        assert_int_equal(waitpid(kids[k], &status, 0), kids[k]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    RtModel rt;
    RtCacheStats s;
    rt_cache_reset_stats();
    load_small(c, &rt);
    rt_unload(&rt);
    rt_cache_stats(&s);
    assert_int_equal(s.hits, 1);  /* one whole entry, no temporaries left */
    DIR *d = opendir(g_cache);
    for (struct dirent *e; (e = readdir(d));) assert_null(strstr(e->d_name, "nnc-tmp"));
    closedir(d);
}

/* NNC_CACHE=off: nothing read or written, not even the directory */
static void test_cache_off(void **state)
{
    (void)state;
    char dir[160], c[2048];
    snprintf(dir, sizeof dir, "%s/off", g_cache);
    setenv("NNC_CACHE_DIR", dir, 1);
    setenv("NNC_CACHE", "off", 1);
    small_model(c, sizeof c, 1, "off");
    RtModel rt;
    RtCacheStats s;
    rt_cache_reset_stats();
    for (int i = 0; i < 2; i++) {
        load_small(c, &rt);
        assert_true(run_small(&rt) == 3.0f);
        rt_unload(&rt);
    }
    rt_cache_stats(&s);
    assert_int_equal(s.hits + s.misses + s.stores + s.corrupt, 0);
    assert_int_not_equal(access(dir, F_OK), 0);
    unsetenv("NNC_CACHE");
    /* and the directory the cache takes by default */
    setenv("NNC_CACHE_DIR", "", 1);
    setenv("XDG_CACHE_HOME", "/xdg", 1);
    assert_true(rt_cache_dir(dir, sizeof dir));
    assert_string_equal(dir, "/xdg/nnc");
    unsetenv("XDG_CACHE_HOME");
    setenv("HOME", "/home/someone", 1);
    assert_true(rt_cache_dir(dir, sizeof dir));
    assert_string_equal(dir, "/home/someone/.cache/nnc");
    setenv("NNC_CACHE", "0", 1);
    assert_false(rt_cache_dir(dir, sizeof dir));
    unsetenv("NNC_CACHE");
    setenv("NNC_CACHE_DIR", g_cache, 1);
    assert_int_equal(count_files(g_cache) >= 0, 1);
}

/* a cache directory others can write to is not used: nothing read from it, nothing stored */
static void test_cache_untrusted_dir(void **state)
{
    (void)state;
    char dir[160], c[2048], salt[64];
    snprintf(dir, sizeof dir, "%s/shared", g_cache);
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(chmod(dir, 0777), 0);
    setenv("NNC_CACHE_DIR", dir, 1);
    snprintf(salt, sizeof salt, "untrusted %ld", (long)getpid());
    small_model(c, sizeof c, 2, salt);
    RtModel rt;
    RtCacheStats s;
    rt_cache_reset_stats();
    for (int i = 0; i < 2; i++) {
        load_small(c, &rt);
        assert_true(run_small(&rt) == 6.0f);
        rt_unload(&rt);
    }
    rt_cache_stats(&s);
    assert_int_equal(s.hits, 0);
    assert_int_equal(s.stores, 0);
    assert_int_equal(s.store_failures, 2);
    assert_int_equal(count_files(dir), 0);
    rmdir(dir);
    setenv("NNC_CACHE_DIR", g_cache, 1);
}

/* two modules with the same symbol names live side by side */
static void test_two_modules_side_by_side(void **state)
{
    (void)state;
    char c1[2048], c2[2048];
    small_model(c1, sizeof c1, 1, "side 1");
    small_model(c2, sizeof c2, 3, "side 2");
    RtModel a, b;
    load_small(c1, &a);
    load_small(c2, &b);
    assert_true(run_small(&a) == 3.0f);
    assert_true(run_small(&b) == 9.0f);
    rt_unload(&a);
    assert_true(run_small(&b) == 9.0f);
    rt_unload(&b);
}

typedef struct {
    int k;
    float got;
    int rc;
} ThreadArg;

static void *load_and_run(void *p)
{
    ThreadArg *t = p;
    char c[2048], salt[64], err[4096];
    snprintf(salt, sizeof salt, "thread %d %ld", t->k, (long)time(NULL));
    small_model(c, sizeof c, t->k, salt);
    RtModel rt;
    t->rc = rt_load(c, small_h, "model.h", "m", &rt, err, sizeof err);
    if (t->rc != 0) return NULL;
    void *inst = NULL;
    float x = 1, y = 0;
    const float *in[1] = {&x};
    float *out[1] = {&y};
    for (int i = 0; i < 100; i++) {
        rt.create(&inst, NULL, NULL);
        rt.forward_v(inst, 1, in, out);
        rt.destroy(inst);
    }
    t->got = y;
    rt_unload(&rt);
    return NULL;
}

/* two threads compile, load and run modules at the same time */
static void test_two_threads(void **state)
{
    (void)state;
    ThreadArg t[2] = {{.k = 2}, {.k = 3}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&th[i], NULL, load_and_run, &t[i]), 0);
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_join(th[i], NULL), 0);
    assert_int_equal(t[0].rc, 0);
    assert_int_equal(t[1].rc, 0);
    assert_true(t[0].got == 2.0f);
    assert_true(t[1].got == 3.0f);
}

/* NNC_JIT=cc at run time: the cc path, with the same interface */
static void test_nnc_jit_cc(void **state)
{
    (void)state;
    char c[2048];
    small_model(c, sizeof c, 2, "cc");
    setenv("NNC_JIT", "cc", 1);
    assert_false(rt_jit_in_process());
    RtModel rt;
    load_small(c, &rt);
    assert_int_equal(rt.kind, 0);
    assert_true(run_small(&rt) == 6.0f);
    rt_unload(&rt);
    assert_non_null(strstr(rt_jit_description(), "system C compiler (cc) and dlopen; clang/llvm 14 in process built in"));
    unsetenv("NNC_JIT");  /* unset: the in-process JIT, with or without a C compiler on PATH */
    assert_true(rt_jit_in_process());
    assert_string_equal(rt_jit_description(), "clang/llvm 14 in process");
    char *path = strdup(getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
    setenv("PATH", "/nonexistent", 1);
    assert_true(rt_jit_in_process());
    setenv("NNC_JIT_BLAS", "1", 1);  /* OpenBLAS is linked by the cc path only */
    assert_false(rt_jit_in_process());
    unsetenv("NNC_JIT_BLAS");
    setenv("PATH", path, 1);
    free(path);
    setenv("NNC_JIT", "llvm", 1);
}

/* SHA-256 against FIPS 180-2's examples */
static void test_sha256(void **state)
{
    (void)state;
    unsigned char d[32];
    char hex[65];
    rt_sha256("abc", 3, d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    RtSha256 s;
    rt_sha256_init(&s);
    for (size_t i = 0; i < strlen(m); i++) rt_sha256_update(&s, m + i, 1);
    rt_sha256_final(&s, d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_llvm_compiles_and_calls),
        cmocka_unit_test(test_llvm_reports_errors),
        cmocka_unit_test(test_model_matches_cc),
        cmocka_unit_test(test_cache_hit),
        cmocka_unit_test(test_cache_corrupt_rebuilt),
        cmocka_unit_test(test_cache_two_processes),
        cmocka_unit_test(test_cache_off),
        cmocka_unit_test(test_cache_untrusted_dir),
        cmocka_unit_test(test_two_modules_side_by_side),
        cmocka_unit_test(test_two_threads),
        cmocka_unit_test(test_nnc_jit_cc),
        cmocka_unit_test(test_cc_cache_hit),
        cmocka_unit_test(test_cc_cache_corrupt_rebuilt),
        cmocka_unit_test(test_cc_cache_two_processes),
        cmocka_unit_test(test_cc_cache_off),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

#else

/* without LLVM: rt_load is the system C compiler's path */
static void test_fallback_is_cc(void **state)
{
    (void)state;
    const char *h = "int m_create(void **m, const char *w, void *ws);\n";
    const char *c = "#include \"model.h\"\n#include <stddef.h>\n"
                    "int m_create(void **m, const char *w, void *ws) { (void)w; *m = ws; return 7; }\n"
                    "int m_create_from_memory(void **m, const void *w, size_t s, void *ws) { (void)w; (void)s; *m = ws; return 8; }\n"
                    "int m_forward_v(void *m, int n, const float *const *i, float *const *o)\n"
                    "{ (void)m; o[0][0] = i[0][0] * (float)n; return 0; }\n"
                    "const char *m_last_error(const void *m) { (void)m; return \"fine\"; }\n"
                    "void m_destroy(void *m) { (void)m; }\n";
    RtModel rt;
    char err[4096] = "";
    assert_false(rt_jit_in_process());
    assert_string_equal(rt_jit_description(), "system C compiler (cc) and dlopen");
    if (rt_load(c, h, "model.h", "m", &rt, err, sizeof err) != 0) fail_msg("rt_load: %s", err);
    assert_int_equal(rt.kind, 0);
    void *inst = NULL;
    assert_int_equal(rt.create(&inst, NULL, NULL), 7);
    rt.destroy(inst);
    rt_unload(&rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fallback_is_cc),        cmocka_unit_test(test_cc_cache_hit),
        cmocka_unit_test(test_cc_cache_corrupt_rebuilt), cmocka_unit_test(test_cc_cache_two_processes),
        cmocka_unit_test(test_cc_cache_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
#endif
