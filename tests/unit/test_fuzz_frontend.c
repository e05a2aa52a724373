/* test_fuzz_frontend.c: the frontend on thousands of broken programs.
 *
 * Seeds are the programs embedded below (ResNet- and Inception-style, with
 * blocks, loops, conditions, shape queries and a train section), every
 * models/NAME.net that exists when the test runs (all of these must compile
 * unchanged), and the error goldens tests/errors/NAME.net but the slow
 * budget_*.net. Each case applies
 * one (half the time) to four random mutations to a seed: byte flips,
 * deletions and duplications of ranges, swaps of tokens and of lines, insertion
 * of keywords, operators, numbers and huge numbers, replacement of numbers,
 * truncation. Then it runs fe_compile_text and, on success, pass_run_pipeline
 * at -O2, and requires that
 *
 *   - nothing crashes (the sanitizer build of the suite runs this too),
 *   - the call returns within CASE_BUDGET seconds (a SIGALRM backstop ends a
 *     hang and prints the input),
 *   - the result is a graph that passes ir_verify before and after the passes,
 *     or NULL with diagnostics whose first line is "fuzz.net:LINE:COL: error: "
 *     or "nnc: error: ".
 *
 * The seed is fixed, so a failure is reproducible; it prints the case number
 * and the mutated text. NNC_FUZZ_CASES=N and NNC_FUZZ_SEED=S change the run
 * (e.g. a long soak with another seed); NNC_FUZZ_SHOW=I prints case I's input
 * and diagnostics. A case takes well under a millisecond in the plain build,
 * so it runs 20000; the sanitizer build runs 3000. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "frontend/frontend.h"
#include "passes/passes.h"

#include "asan.h"

#ifdef NNC_ASAN
enum { DEFAULT_CASES = 3000 };
#else
enum { DEFAULT_CASES = 20000 };
#endif
#define CASE_BUDGET 5.0  /* seconds per compilation: a hang detector, not a benchmark */
enum { ALARM_SECONDS = 60, MAX_SEEDS = 256 };

static const char *const resnet_seed =
    "# ResNet-style: blocks with defaults, functions as values, loops, conditions, shape queries.\n"
    "block conv_bn(x, c, k, stride = 1, act = relu) {\n"
    "    return x |> conv(c, k, stride: stride, pad: k / 2, bias: false) |> batchnorm |> act\n"
    "}\n"
    "\n"
    "block basic(x, c, stride = 1) {\n"
    "    y = x |> conv_bn(c, 3, stride) |> conv_bn(c, 3, act: identity)\n"
    "    if stride != 1 or x.channels != c {\n"
    "        x = conv_bn(x, c, 1, stride, act: identity) as downsample\n"
    "    }\n"
    "    return relu(x + y)\n"
    "}\n"
    "\n"
    "block stage(x, c, n, stride) {\n"
    "    x = x |> basic(c, stride)\n"
    "    repeat n - 1 { x = x |> basic(c) }\n"
    "    return x\n"
    "}\n"
    "\n"
    "network resnet(classes = 10, width = 16, deep = false) {\n"
    "    input image: [3, 32, 32]\n"
    "    x = image |> conv_bn(width, 3) |> maxpool(3, stride: 2, pad: 1, ceil: true)\n"
    "    for i, c, stride in [(0, width, 1), (1, width * 2, 2), (2, width * 4, 2)] {\n"
    "        if deep and i > 0 { x = x |> stage(c, 2, stride) } else { x = x |> stage(c, 1, stride) }\n"
    "    }\n"
    "    if x.height > 1 { x = x |> avgpool(2, stride: 1, count_pad: false) }\n"
    "    x = x |> global_avgpool |> flatten |> dropout(0.2)\n"
    "    output logits = x |> linear(classes) as fc\n"
    "    output probs = softmax(logits)\n"
    "}\n"
    "\n"
    "train resnet {\n"
    "    loss = cross_entropy(logits, label)\n"
    "    optimizer = sgd(lr: 0.1, momentum: 0.9, weight_decay: 5e-4)\n"
    "    batch = 128\n"
    "}\n";

static const char *const inception_seed =
    "# Inception- and DenseNet-style: concat, ranges, min/max, len, transposed convolutions.\n"
    "block conv_relu(x, c, k, stride = 1) { return x |> conv(c, k, stride: stride, pad: k / 2) |> relu }\n"
    "\n"
    "block inception(x, c1, c3r, c3, c5r, c5, pool) {\n"
    "    return concat(x |> conv_relu(c1, 1),\n"
    "                  x |> conv_relu(c3r, 1) |> conv_relu(c3, 3),\n"
    "                  x |> conv_relu(c5r, 1) |> conv_relu(c5, 5),\n"
    "                  x |> maxpool(3, stride: 1, pad: 1) |> conv_relu(pool, 1))\n"
    "}\n"
    "\n"
    "block dense(x, growth, layers) {\n"
    "    for i in range(layers) {\n"
    "        y = x |> batchnorm |> relu |> conv(growth, (3, 3), pad: (1, 1), groups: 1)\n"
    "        x = concat(x, y)\n"
    "    }\n"
    "    return x\n"
    "}\n"
    "\n"
    "network net(classes = 100) {\n"
    "    input image: [3, 64, 64]\n"
    "    input extra: [16]\n"
    "    x = image |> conv_relu(32, 7, stride: 2) |> lrn(5, alpha: 1e-4, beta: 0.75)\n"
    "    x = x |> inception(16, 24, 32, 4, 8, 8) |> dense(8, min(3, len([1, 2, 3, 4])))\n"
    "    up = x |> conv_transpose(8, 4, stride: 2, pad: 1, output_pad: 0) |> leaky_relu(slope: 0.1)\n"
    "    down = up |> avgpool((2, 2), stride: 2) |> sigmoid\n"
    "    x = concat(x, down |> tanh |> relu6)\n"
    "    k = max(x.width / 4, 1)\n"
    "    v = x |> maxpool(k, dilation: 1) |> flatten\n"
    "    e = extra |> linear(v.features / 2 % 97 + 1) |> batchnorm(eps: 1e-5, momentum: 0.1)\n"
    "    output logits = v |> linear(classes, bias: true)\n"
    "    output aux = e\n"
    "}\n";

static const char *const tokens[] = {
    "network", "block", "input", "output", "return", "if", "else", "for", "in", "repeat", "and", "or", "not",
    "import", "train", "true", "false", "as", "|>", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "<", ">",
    "=", "(", ")", "{", "}", "[", "]", ",", ":", ".", "x", "y", "conv", "relu", "concat", "linear", "flatten",
    "maxpool", "range", "len", "\"s\"", "\"missing.net\"", "#", "\n", "!", "$", ";", "\t", "\r", "\"",
    "x.channels", "x.shape", ".features", "conv(8, 3)", "(1, 2)", "[3, 8, 8]", "repeat 3 {", "block b(x) {",
};

static const char *const numbers[] = {
    "0", "1", "2", "3", "-1", "7", "64", "4096", "4097", "65536", "100000", "16777216", "16777217",
    "2147483648", "9007199254740992", "9007199254740993", "99999999999999999999", "0.5", "1e-5", "1e308",
    "1e999", ".5", "3x3", "00", "-9007199254740992", "1.5e", "999999",
};

/* ---- a small deterministic generator (xorshift64*) ---- */

static uint64_t rng_state;

static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

static size_t below(size_t n) { return n ? (size_t)(rng() % n) : 0; }

/* ---- the text being mutated ---- */

typedef struct {
    char *p;
    size_t len, cap;
} Buf;

static void buf_reserve(Buf *b, size_t n)
{
    if (n + 1 <= b->cap) return;
    b->cap = (n + 1) * 2;
    b->p = realloc(b->p, b->cap);
    assert_non_null(b->p);
}

static void buf_insert(Buf *b, size_t at, const char *s, size_t n)
{
    buf_reserve(b, b->len + n);
    memmove(b->p + at + n, b->p + at, b->len - at);
    memcpy(b->p + at, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void buf_delete(Buf *b, size_t at, size_t n)
{
    if (at + n > b->len) n = b->len - at;
    memmove(b->p + at, b->p + at + n, b->len - at - n);
    b->len -= n;
    b->p[b->len] = 0;
}

static bool is_word(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'; }

/* The token around position at: a run of word bytes, or one other non-space byte. */
static void token_at(const Buf *b, size_t at, size_t *start, size_t *len)
{
    while (at < b->len && (b->p[at] == ' ' || b->p[at] == '\n')) at++;
    if (at >= b->len) { *start = b->len; *len = 0; return; }
    size_t s = at, e = at + 1;
    if (is_word(b->p[at])) {
        while (s > 0 && is_word(b->p[s - 1])) s--;
        while (e < b->len && is_word(b->p[e])) e++;
    }
    *start = s;
    *len = e - s;
}

/* Swaps the ranges [a, a+na) and [c, c+nc), a + na <= c. */
static void swap_ranges(Buf *b, size_t a, size_t na, size_t c, size_t nc)
{
    char *tmp = malloc(c + nc - a + 1);
    assert_non_null(tmp);
    size_t o = 0;
    memcpy(tmp + o, b->p + c, nc), o += nc;
    memcpy(tmp + o, b->p + a + na, c - a - na), o += c - a - na;
    memcpy(tmp + o, b->p + a, na), o += na;
    memcpy(b->p + a, tmp, o);
    free(tmp);
}

static void line_at(const Buf *b, size_t at, size_t *start, size_t *len)
{
    size_t s = at, e = at;
    while (s > 0 && b->p[s - 1] != '\n') s--;
    while (e < b->len && b->p[e] != '\n') e++;
    *start = s;
    *len = e < b->len ? e - s + 1 : e - s;
}

static void insert_word(Buf *b, const char *w)
{
    char tmp[64];
    const char *pad = below(3) ? " " : "";
    snprintf(tmp, sizeof tmp, "%s%s%s", pad, w, pad);
    buf_insert(b, below(b->len + 1), tmp, strlen(tmp));
}

/* Replaces a number of the text (the first digit run at or after a random place). */
static void replace_number(Buf *b)
{
    size_t at = below(b->len);
    while (at < b->len && !(b->p[at] >= '0' && b->p[at] <= '9')) at++;
    if (at >= b->len) return;
    size_t e = at;
    while (e < b->len && b->p[e] >= '0' && b->p[e] <= '9') e++;
    buf_delete(b, at, e - at);
    const char *n = numbers[below(NNC_COUNT(numbers))];
    buf_insert(b, at, n, strlen(n));
}

static void mutate(Buf *b)
{
    size_t at = below(b->len), n;
    switch (below(11)) {
    case 0: /* byte flip: a random byte, or one bit */
        if (b->len) b->p[at] = below(2) ? (char)below(256) : (char)(b->p[at] ^ (1 << below(8)));
        break;
    case 1: /* delete a range */
        buf_delete(b, at, 1 + below(below(4) ? 8 : 200));
        break;
    case 2: { /* duplicate a range, at its place or elsewhere */
        n = 1 + below(below(4) ? 16 : 400);
        if (at + n > b->len) n = b->len - at;
        char *copy = malloc(n + 1);
        assert_non_null(copy);
        memcpy(copy, b->p + at, n);
        buf_insert(b, below(2) ? at : below(b->len + 1), copy, n);
        free(copy);
        break;
    }
    case 3: { /* swap two tokens */
        size_t s1, n1, s2, n2;
        token_at(b, below(b->len), &s1, &n1);
        token_at(b, below(b->len), &s2, &n2);
        if (s1 > s2) { size_t t = s1; s1 = s2; s2 = t; t = n1; n1 = n2; n2 = t; }
        if (n1 && n2 && s1 + n1 <= s2) swap_ranges(b, s1, n1, s2, n2);
        break;
    }
    case 4: { /* swap two lines */
        size_t s1, n1, s2, n2;
        line_at(b, below(b->len), &s1, &n1);
        line_at(b, below(b->len), &s2, &n2);
        if (s1 > s2) { size_t t = s1; s1 = s2; s2 = t; t = n1; n1 = n2; n2 = t; }
        if (n1 && n2 && s1 + n1 <= s2) swap_ranges(b, s1, n1, s2, n2);
        break;
    }
    case 5: { /* duplicate a line (a statement run twice, a block defined twice) */
        size_t s, len;
        line_at(b, at, &s, &len);
        char *copy = malloc(len + 2);
        assert_non_null(copy);
        memcpy(copy, b->p + s, len);
        buf_insert(b, s, copy, len);
        free(copy);
        break;
    }
    case 6: case 7: /* insert a keyword, operator or fragment */
        insert_word(b, tokens[below(NNC_COUNT(tokens))]);
        break;
    case 8: /* insert a number, often a huge one */
        insert_word(b, numbers[below(NNC_COUNT(numbers))]);
        break;
    case 9: /* replace a number */
        replace_number(b);
        break;
    case 10: /* truncate */
        if (below(3) == 0) buf_delete(b, at, b->len - at);
        else replace_number(b);
        break;
    }
}

/* ---- checking one case ---- */

static const char *volatile current_text;
static volatile int current_case;

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "\ntest_fuzz_frontend: a case ran past the alarm; its input:\n";
    if (write(2, msg, sizeof msg - 1) < 0) {}
    const char *t = current_text;
    if (t && write(2, t, strlen(t)) < 0) {}
    _exit(1);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* "FILE:LINE:COL: error: " with FILE the fuzzed text or a file it imports
 * (the zoo's lib/), or "nnc: error: " for a whole-file error. */
static bool first_line_ok(const char *out)
{
    if (strncmp(out, "nnc: error: ", 12) == 0) return true;
    size_t len = strncmp(out, "fuzz.net:", 9) == 0 ? 9 : strncmp(out, "lib/", 4) == 0 ? strcspn(out, ":\n") + 1 : 0;
    if (len == 0 || out[len - 1] != ':') return false;
    const char *p = out + len;
    for (int field = 0; field < 2; field++) {
        if (*p < '1' || *p > '9') return false;
        while (*p >= '0' && *p <= '9') p++;
        if (*p++ != ':') return false;
    }
    return strncmp(p, " error: ", 8) == 0;
}

typedef struct {
    int compiled, rejected, failed;
    double slowest;
    int slowest_case;
} Stats;

static void report(int i, const char *why, const Buf *b, const char *diag)
{
    fprintf(stderr, "case %d: %s\n---- input ----\n%s\n---- diagnostics ----\n%s\n", i, why, b->p, diag ? diag : "");
}

static void run_case(int i, const Buf *b, Stats *st)
{
    Arena a = {0};
    Diag d;
    diag_init(&d, &a);
    current_text = b->p;
    current_case = i;
    double t0 = now();
    IrGraph *g = fe_compile_text("fuzz.net", b->p, b->len, NULL, &d);
    char err[512];
    bool ok = true;
    if (g) {
        st->compiled++;
        if (!ir_verify(g, err, sizeof err)) {
            report(i, err, b, NULL);
            ok = false;
        } else if (!pass_run_pipeline(g, 2, err, sizeof err) || !ir_verify(g, err, sizeof err)) {
            report(i, err, b, NULL);
            ok = false;
        }
        if (d.errors) {
            report(i, "a graph and diagnostics both", b, d.out.data);
            ok = false;
        }
        ir_free(g);
    } else {
        st->rejected++;
        if (d.errors == 0 || !d.out.data || !first_line_ok(d.out.data)) {
            report(i, "rejected without a positioned error first", b, d.out.data);
            ok = false;
        }
    }
    double dt = now() - t0;
    if (dt > st->slowest) {
        st->slowest = dt;
        st->slowest_case = i;
    }
    if (dt > CASE_BUDGET) {
        report(i, "took longer than the budget", b, d.out.data);
        ok = false;
    }
    current_text = NULL;
    st->failed += !ok;
    diag_free(&d);
    arena_free(&a);
}

/* ---- seeds ---- */

/* Appends the *.net files of dir, in name order (readdir's order varies), to
 * seeds, except those whose names begin with skip (or none when NULL). */
static int load_dir(const char *dir, const char *skip, char **seeds, int n)
{
    DIR *d = opendir(dir);
    if (!d) return n;
    char *names[MAX_SEEDS];
    int nn = 0;
    for (struct dirent *e; (e = readdir(d)) && nn < MAX_SEEDS;) {
        size_t len = strlen(e->d_name);
        if (len > 4 && strcmp(e->d_name + len - 4, ".net") == 0 && !(skip && strncmp(e->d_name, skip, strlen(skip)) == 0))
            names[nn++] = strdup(e->d_name);
    }
    closedir(d);
    for (int i = 0; i < nn; i++)
        for (int j = i + 1; j < nn; j++)
            if (strcmp(names[j], names[i]) < 0) { char *t = names[i]; names[i] = names[j]; names[j] = t; }
    for (int i = 0; i < nn; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        const char *err;
        char *text = nnc_read_file(path, NULL, &err);
        if (!text) fail_msg("%s: %s", path, err);
        if (n < MAX_SEEDS) seeds[n++] = text;
        else free(text);
        free(names[i]);
    }
    return n;
}

/* The seeds that compile, then the error goldens; *n_good receives the count of the first. */
static int load_seeds(char **seeds, int *n_good)
{
    int n = 0;
    seeds[n++] = strdup(resnet_seed);
    seeds[n++] = strdup(inception_seed);
    n = load_dir(NNC_SOURCE_DIR "/models", NULL, seeds, n);
    *n_good = n;
    /* budget_*.net run to an evaluation budget on purpose: slow seeds, and the goldens cover them */
    return load_dir(NNC_SOURCE_DIR "/tests/errors", "budget_", seeds, n);
}

/* Every seed compiles as it is (otherwise the fuzzer would only test errors). */
static void test_seeds_compile(void **state)
{
    (void)state;
    char *seeds[MAX_SEEDS];
    int good, n = load_seeds(seeds, &good);
    assert_true(good >= 3);  /* the embedded ones and at least lenet5 */
    char cwd[4096];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(NNC_SOURCE_DIR "/models"), 0);  /* where the seeds' imports resolve */
    for (int i = 0; i < n; i++) {
        Buf b = {seeds[i], strlen(seeds[i]), strlen(seeds[i]) + 1};
        Stats st = {0};
        run_case(-1 - i, &b, &st);
        if (i < good && st.compiled != 1) fail_msg("seed %d does not compile", i);
        assert_int_equal(st.failed, 0);
        free(seeds[i]);
    }
    assert_int_equal(chdir(cwd), 0);
}

static void test_fuzz(void **state)
{
    (void)state;
    const char *env = getenv("NNC_FUZZ_CASES");
    int cases = env ? atoi(env) : DEFAULT_CASES;
    env = getenv("NNC_FUZZ_SEED");
    uint64_t seed = env ? strtoull(env, NULL, 10) : 20240611;
    rng_state = seed * 0x9E3779B97F4A7C15ull + 1;
    char *seeds[MAX_SEEDS];
    int good, n = load_seeds(seeds, &good);
    /* run in a folder of our own that holds only lib/ (the zoo's shared blocks,
     * which the model seeds import): mutated imports find nothing else */
    char cwd[4096], tmp[] = "/tmp/nnc_fuzz_XXXXXX";
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_non_null(mkdtemp(tmp));
    assert_int_equal(chdir(tmp), 0);
    assert_int_equal(symlink(NNC_SOURCE_DIR "/models/lib", "lib"), 0);
    signal(SIGALRM, on_alarm);
    env = getenv("NNC_FUZZ_SHOW");
    int show = env ? atoi(env) : -1;
    Stats st = {0};
    double t0 = now();
    Buf b = {0};
    for (int i = 0; i < cases && st.failed < 5; i++) {
        const char *s = seeds[below(3) ? below((size_t)good) : below((size_t)n)];  /* mostly good seeds */
        b.len = 0;
        buf_insert(&b, 0, s, strlen(s));
        int m = below(2) ? 1 : 2 + (int)below(3);  /* often one mutation, so many cases still compile */
        for (int k = 0; k < m; k++) mutate(&b);
        if (i == show) report(i, "shown (NNC_FUZZ_SHOW)", &b, NULL);
        alarm(ALARM_SECONDS);
        run_case(i, &b, &st);
        alarm(0);
    }
    signal(SIGALRM, SIG_DFL);
    free(b.p);
    for (int i = 0; i < n; i++) free(seeds[i]);
    unlink("lib");
    assert_int_equal(chdir(cwd), 0);
    rmdir(tmp);
    printf("%d cases (seed %llu) in %.2f s: %d compiled, %d rejected, %d failed; slowest %.3f s (case %d)\n", cases,
           (unsigned long long)seed, now() - t0, st.compiled, st.rejected, st.failed, st.slowest, st.slowest_case);
    assert_int_equal(st.failed, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seeds_compile),
        cmocka_unit_test(test_fuzz),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
