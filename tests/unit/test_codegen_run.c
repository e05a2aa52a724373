/* test_codegen_run.c: the generated C run. Each network of codegen_fixture.c
 * is emitted, its random weights written with rt_st_write, and the code
 * loaded with rt_cc_load; forward's outputs are compared with the fixture's
 * reference interpreter (double accumulators) at several batch sizes, with
 * and without BLAS. The error paths of the generated API (missing or
 * misshapen tensors, bad n, NULL pointers) are checked for their codes and
 * their messages; a caller's workspace, two instances in two threads, and
 * rt_cc_load on plain C and on code that does not compile. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "tests/unit/codegen_fixture.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_matches_reference(void **state)
{
    (void)state;
    for (size_t i = 0; i < NNC_COUNT(all_nets); i++) {
        Net *net = all_nets[i]();
        Loaded l;
        if (load(net, &l, NULL, NULL, true) != 0) fail_msg("create: %s", l.rt.last_error(l.m));
        assert_forward_matches(net, &l, 3);
        assert_forward_matches(net, &l, MAX_BATCH);
        assert_forward_matches(net, &l, 1);
        unload(&l);
        net_free(net);
    }
}

/* The NNC_JIT_BLAS=1 switch gives the same numbers through cblas_sgemm
 * (where OpenBLAS is installed; else the same code as the default). */
static void test_matches_reference_with_blas(void **state)
{
    (void)state;
    setenv("NNC_JIT_BLAS", "1", 1);
    Net *net = cnn_net();
    Loaded l;
    if (load(net, &l, NULL, NULL, true) != 0) fail_msg("create: %s", l.rt.last_error(l.m));
    assert_forward_matches(net, &l, 2);
    unload(&l);
    net_free(net);
    unsetenv("NNC_JIT_BLAS");
}

/* (d) weights that do not fit the graph: the code says which tensor. */
static void test_bad_weights(void **state)
{
    (void)state;
    Net *net = cnn_net();
    Loaded l;
    assert_int_equal(load(net, &l, "features.bn0.running_var", NULL, true), 2);
    assert_non_null(strstr(l.rt.last_error(l.m), "features.bn0.running_var"));
    unload(&l);
    assert_int_equal(load(net, &l, NULL, "fc.weight", true), 2);
    assert_non_null(strstr(l.rt.last_error(l.m), "fc.weight"));
    assert_int_equal(l.rt.forward_v(l.m, 1, NULL, NULL), 1);  /* a failed instance refuses to run */
    assert_non_null(strstr(l.rt.last_error(l.m), "fc.weight"));
    unload(&l);
    assert_int_equal(load(net, &l, NULL, NULL, false), 1);    /* no path, but parameters */
    assert_non_null(strstr(l.rt.last_error(l.m), "NULL"));
    unload(&l);
    net_free(net);
}

/* (d) n outside 1..MAX_BATCH and NULL buffers are refused with a message. */
static void test_bad_forward_args(void **state)
{
    (void)state;
    Net *net = cnn_net();
    Loaded l;
    assert_int_equal(load(net, &l, NULL, NULL, true), 0);
    float x[MAX_BATCH * 300], y[MAX_BATCH * 10];
    const float *in[1] = {x};
    float *out[1] = {y}, *null_out[1] = {NULL};
    memset(x, 0, sizeof x);
    assert_int_equal(l.rt.forward_v(l.m, 0, in, out), 1);
    assert_non_null(strstr(l.rt.last_error(l.m), "n = 0"));
    assert_int_equal(l.rt.forward_v(l.m, MAX_BATCH + 1, in, out), 1);
    assert_non_null(strstr(l.rt.last_error(l.m), "n = 5"));
    assert_int_equal(l.rt.forward_v(l.m, 1, in, null_out), 1);
    assert_non_null(strstr(l.rt.last_error(l.m), "logits"));
    assert_int_equal(l.rt.forward_v(l.m, MAX_BATCH, in, out), 0);
    assert_string_equal(l.rt.last_error(l.m), "");
    assert_string_equal(l.rt.last_error(NULL), "out of memory");
    l.rt.destroy(NULL);
    unload(&l);
    net_free(net);
}

/* A caller's workspace of exactly WORKSPACE_BYTES is enough (a guard after it stays intact). */
static void test_caller_workspace(void **state)
{
    (void)state;
    Net *net = conv_t_net();
    Loaded l;
    assert_int_equal(load(net, &l, NULL, NULL, true), 0);
    const char *def = strstr(l.e.h.data, "_WORKSPACE_BYTES");
    long bytes = strtol(def + strlen("_WORKSPACE_BYTES"), NULL, 10);
    assert_true(bytes > 0);
    unsigned char *ws = malloc((size_t)bytes + 64);
    memset(ws + bytes, 0xA5, 64);
    void *m2 = NULL;
    char path[256];
    path_in(&l.e, "w.safetensors", path, sizeof path);
    assert_int_equal(l.rt.create(&m2, path, ws), 0);
    enum { Y = MAX_BATCH * 2 * 11 * 11 };  /* img: [2, 11, 11] */
    float *x = random_batch(&net->rng, MAX_BATCH * 100), *y1 = calloc(Y, sizeof(float)), *y2 = calloc(Y, sizeof(float));
    const float *in[1] = {x};
    assert_int_equal(l.rt.forward_v(m2, MAX_BATCH, in, &y1), 0);
    assert_int_equal(l.rt.forward_v(l.m, MAX_BATCH, in, &y2), 0);
    assert_memory_equal(y1, y2, Y * sizeof(float));
    for (int i = 0; i < 64; i++) assert_int_equal(ws[bytes + i], 0xA5);
    l.rt.destroy(m2);
    free(ws);
    free(x);
    free(y1);
    free(y2);
    unload(&l);
    net_free(net);
}

typedef struct { const RtModel *rt; void *m; const float *x; float *y; int rc; } ThreadJob;

static void *thread_forward(void *arg)
{
    ThreadJob *j = arg;
    for (int k = 0; k < 20 && j->rc == 0; k++) j->rc = j->rt->forward_v(j->m, MAX_BATCH, &j->x, &j->y);
    return NULL;
}

/* Two instances in two threads at once give the same answers as one alone. */
static void test_two_threads(void **state)
{
    (void)state;
    Net *net = cnn_net();
    Loaded l;
    assert_int_equal(load(net, &l, NULL, NULL, true), 0);
    void *m2 = NULL;
    char path[256];
    path_in(&l.e, "w.safetensors", path, sizeof path);
    assert_int_equal(l.rt.create(&m2, path, NULL), 0);
    float *x = random_batch(&net->rng, MAX_BATCH * 300), y[2][MAX_BATCH * 10], want[MAX_BATCH * 10];
    const float *in[1] = {x};
    float *out[1] = {want};
    assert_int_equal(l.rt.forward_v(l.m, MAX_BATCH, in, out), 0);
    ThreadJob jobs[2] = {{&l.rt, l.m, x, y[0], 0}, {&l.rt, m2, x, y[1], 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&t[i], NULL, thread_forward, &jobs[i]), 0);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(jobs[i].rc, 0);
        assert_memory_equal(y[i], want, sizeof want);
    }
    l.rt.destroy(m2);
    free(x);
    unload(&l);
    net_free(net);
}

/* rt_cc_load finds the five entry points of any C source, under any header name. */
static void test_jit_loads_plain_c(void **state)
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
    if (rt_cc_load(c, h, "model.h", "m", &rt, err, sizeof err) != 0) fail_msg("rt_cc_load: %s", err);
    void *inst = NULL;
    int token;
    float x = 1.5f, y = 0;
    const float *in[1] = {&x};
    float *out[1] = {&y};
    assert_int_equal(rt.create(&inst, NULL, &token), 7);
    assert_ptr_equal(inst, &token);
    assert_int_equal(rt.create_from_memory(&inst, NULL, 0, &token), 8);
    assert_int_equal(rt.forward_v(inst, 2, in, out), 0);
    assert_true(y == 3.0f);
    assert_string_equal(rt.last_error(inst), "fine");
    rt.destroy(inst);
    rt_cc_unload(&rt);
    assert_null(rt.so);
}

/* rt_cc_load passes on what the compiler said. */
static void test_jit_reports_compile_errors(void **state)
{
    (void)state;
    RtModel rt;
    char err[4096] = "";
    assert_int_equal(rt_cc_load("#include \"m.h\"\nint m_create(void) { return undefined_thing; }\n", "", "m.h", "m",
                                &rt, err, sizeof err), -1);
    assert_non_null(strstr(err, "undefined_thing"));
    assert_int_equal(rt_cc_load("int x;\n", "", "m.h", "m", &rt, err, sizeof err), -1);
    assert_non_null(strstr(err, "m_create"));
    assert_int_equal(rt_cc_load("", "", "../m.h", "m", &rt, err, sizeof err), -1);
    setenv("CC", "/nonexistent/cc", 1);
    assert_int_equal(rt_cc_load("", "", "m.h", "m", &rt, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/cc"));
    unsetenv("CC");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_reference),
        cmocka_unit_test(test_matches_reference_with_blas),
        cmocka_unit_test(test_bad_weights),
        cmocka_unit_test(test_bad_forward_args),
        cmocka_unit_test(test_caller_workspace),
        cmocka_unit_test(test_two_threads),
        cmocka_unit_test(test_jit_loads_plain_c),
        cmocka_unit_test(test_jit_reports_compile_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
