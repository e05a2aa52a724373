/* kernels_parallel.c: the part of the kernel library (kernels.c, whose top
 * comment gives the format and the rules) that knows the machine: the
 * instruction set chosen when an instance is created, the instance's own
 * thread pool, and the GEMM on weights packed at create that the heavy layers
 * run on.
 *
 * Why the instruction set is chosen at run time: users build the generated
 * file with `cc -O2` and no -march, which targets the baseline x86-64 (SSE2).
 * The micro-kernels are compiled for AVX-512 and AVX2 through function
 * attributes instead, and create picks the best one the CPU has
 * (nnc_ctx_init), so a default build runs the same inner loops as a
 * -march=native one. The rest of the code stays portable C.
 *
 * Why a pool of our own: the work of one layer at batch 1 must be split over
 * both cores (across output channels and pixel columns, not samples), the
 * threads must belong to one instance (two instances in two threads each
 * have theirs), and nothing may keep spinning once forward returns (a BLAS's
 * workers spinning after each call doubled PyTorch's latency here). */

/* @kernel ctx */
/* The pool needs POSIX threads and gcc's or clang's atomic builtins (the
 * code is C99, which has no atomics); elsewhere every loop runs on the
 * caller's thread. */
#if !defined(NNC_NO_THREADS) && (defined(__unix__) || defined(__APPLE__)) && (defined(__GNUC__) || defined(__clang__))
#define NNC_HAVE_THREADS 1
#include <pthread.h>
#else
#define NNC_HAVE_THREADS 0
#endif
#include <stdlib.h>
/* The online CPUs, for the default thread count. Not sysconf: <unistd.h>
 * defines F_OK, R_OK, W_OK and X_OK, which would collide with the enum of a
 * network named F, R, W or X (its F_OK). <sys/sysinfo.h> declares functions only. */
#if NNC_HAVE_THREADS && defined(__linux__)
#include <sys/sysinfo.h>
#define NNC_ONLINE_CPUS() get_nprocs()
#else
#define NNC_ONLINE_CPUS() 1
#endif

/* The instruction sets the micro-kernels come in; the x86 ones need gcc or clang. */
enum { NNC_ISA_C = 0, NNC_ISA_AVX2 = 1, NNC_ISA_AVX512 = 2 };
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(NNC_NO_SIMD)
#define NNC_X86 1
#include <immintrin.h>
#else
#define NNC_X86 0
#endif

enum { NNC_MAX_THREADS = 64 };

/* One parallel loop: fn(arg, t) for every task t in [0, ntasks). */
typedef void (*nnc_task_fn)(void *arg, int task);

struct nnc_ctx;
typedef struct nnc_worker {
    struct nnc_ctx *ctx;
    int id;  /* 1 .. threads-1; the caller is 0 */
} nnc_worker;

/* What the kernels of one instance share: the instruction set and the
 * threads. Created by nnc_ctx_init at create, freed by nnc_ctx_stop. */
typedef struct nnc_ctx {
    int isa;      /* NNC_ISA_*: the best this CPU runs (NNC_ISA in the environment may lower it) */
    int threads;  /* threads a parallel loop uses, the caller's included; 1: none were started */
#if NNC_HAVE_THREADS
    int started;              /* workers running */
    pthread_mutex_t mu;
    pthread_cond_t wake;      /* a new job (gen changed) or quit */
    pthread_cond_t done;      /* the last worker finished the job */
    unsigned long gen;        /* counts jobs */
    int pending;              /* workers still on the current job */
    int quit;
    int active;               /* between nnc_ctx_begin and nnc_ctx_end: workers poll, never sleep */
    nnc_task_fn fn;           /* the current job */
    void *arg;
    int ntasks;
    struct {                  /* thread t's share of the job's tasks: [next, end), claimed one at a time */
        int next, end;
        char pad[56];         /* a cache line each: the claims of two threads do not contend */
    } share[NNC_MAX_THREADS];
    pthread_t tid[NNC_MAX_THREADS];
    nnc_worker wk[NNC_MAX_THREADS];
#endif
} nnc_ctx;

/* All tasks on the calling thread. */
static NNC_MAYBE_UNUSED void nnc_run_all(nnc_task_fn fn, void *arg, int ntasks)
{
    int i;
    for (i = 0; i < ntasks; i++) fn(arg, i);
}

#if NNC_HAVE_THREADS
/* A forward pass runs a parallel loop every few tens of microseconds; waking a
 * sleeping thread takes about as long. So forward brackets its layers with
 * nnc_ctx_begin, which wakes the workers while the first layer runs, and
 * nnc_ctx_end: in between, a worker that finished a job polls for the next
 * one; after it, and the caller waiting for the workers always, poll for
 * NNC_SPIN rounds of a pause instruction (some tens of microseconds), then
 * sleep on the condition variable. Nothing spins longer than that once
 * forward has returned. */
enum { NNC_SPIN = 4000 };
#define NNC_LOAD(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define NNC_STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define NNC_CLAIM(p) __atomic_fetch_add((p), 1, __ATOMIC_RELAXED)
#if defined(__x86_64__) || defined(__i386__)
#define NNC_PAUSE() __builtin_ia32_pause()
#else
#define NNC_PAUSE() ((void)0)
#endif

/* Tasks [t*ntasks/T, (t+1)*ntasks/T) are thread t's share: contiguous
 * ranges, so a thread's consecutive tasks share their operands in cache.
 * Thread t runs its share, then claims the tasks of the others' shares that
 * nobody has started: on this VM a core is often taken away for a while, and
 * the thread left waiting for its partner's half finishes it instead. Which
 * thread computes a task never changes its result (each task's arithmetic is
 * fixed, and a task with scratch uses the slot of its index, never of its
 * thread): 1 and 2 threads give bit-identical outputs. */
static void nnc_run_share(nnc_ctx *c, int t)
{
    int u, i, T = c->threads;
    for (u = 0; u < T; u++) {
        int v = (t + u) % T;
        while ((i = NNC_CLAIM(&c->share[v].next)) < c->share[v].end) c->fn(c->arg, i);
    }
}

/* A worker: waits (briefly polling, then on the condition variable) for a job
 * or quit, runs its share, and tells the caller when it was the last. */
static void *nnc_worker_main(void *p)
{
    nnc_worker *w = (nnc_worker *)p;
    nnc_ctx *c = w->ctx;
    unsigned long seen = 0;
    for (;;) {
        int k;
        for (k = 0; (k < NNC_SPIN || NNC_LOAD(&c->active)) && NNC_LOAD(&c->gen) == seen && !NNC_LOAD(&c->quit); k++)
            NNC_PAUSE();
        pthread_mutex_lock(&c->mu);
        while (c->gen == seen && !c->quit && !c->active) pthread_cond_wait(&c->wake, &c->mu);
        if (c->quit) {
            pthread_mutex_unlock(&c->mu);
            return NULL;
        }
        if (c->gen == seen) {  /* woken by nnc_ctx_begin: poll for the first job */
            pthread_mutex_unlock(&c->mu);
            continue;
        }
        seen = c->gen;
        pthread_mutex_unlock(&c->mu);
        nnc_run_share(c, w->id);
        pthread_mutex_lock(&c->mu);
        NNC_STORE(&c->pending, c->pending - 1);  /* under mu; the caller may be polling it */
        if (c->pending == 0) pthread_cond_signal(&c->done);
        pthread_mutex_unlock(&c->mu);
    }
}
#endif

/* fn(arg, t) for t in [0, ntasks), over the instance's threads (the caller
 * runs share 0); returns when all are done. ctx NULL or one thread: a loop. */
static NNC_MAYBE_UNUSED void nnc_parallel(const nnc_ctx *cc, int ntasks, nnc_task_fn fn, void *arg)
{
#if NNC_HAVE_THREADS
    nnc_ctx *c = (nnc_ctx *)cc;  /* the pool's bookkeeping changes; the kernels' view of ctx does not */
    if (c && c->started && ntasks > 1) {
        int workers = c->threads - 1, k, t;
        pthread_mutex_lock(&c->mu);
        c->fn = fn, c->arg = arg, c->ntasks = ntasks;
        for (t = 0; t < c->threads; t++) {
            c->share[t].next = (int)((long long)ntasks * t / c->threads);
            c->share[t].end = (int)((long long)ntasks * (t + 1) / c->threads);
        }
        NNC_STORE(&c->pending, workers);
        NNC_STORE(&c->gen, c->gen + 1);
        pthread_cond_broadcast(&c->wake);
        pthread_mutex_unlock(&c->mu);
        nnc_run_share(c, 0);
        for (k = 0; k < NNC_SPIN && NNC_LOAD(&c->pending) > 0; k++) NNC_PAUSE();
        pthread_mutex_lock(&c->mu);
        while (c->pending > 0) pthread_cond_wait(&c->done, &c->mu);
        pthread_mutex_unlock(&c->mu);
        return;
    }
#else
    (void)cc;
#endif
    nnc_run_all(fn, arg, ntasks);
}

/* forward starts: wake the workers, which poll for jobs until nnc_ctx_end. */
static NNC_MAYBE_UNUSED void nnc_ctx_begin(nnc_ctx *c)
{
#if NNC_HAVE_THREADS
    if (c->started) {
        pthread_mutex_lock(&c->mu);
        NNC_STORE(&c->active, 1);
        pthread_cond_broadcast(&c->wake);
        pthread_mutex_unlock(&c->mu);
    }
#else
    (void)c;
#endif
}

/* forward is done: the workers go back to sleep after their short poll. */
static NNC_MAYBE_UNUSED void nnc_ctx_end(nnc_ctx *c)
{
#if NNC_HAVE_THREADS
    if (c->started) NNC_STORE(&c->active, 0);
#else
    (void)c;
#endif
}

/* Below about this many multiply-adds a parallel loop costs more than it
 * saves (waking a thread and waiting for it take some microseconds; LeNet's
 * layers are a few thousand): such a loop runs on the caller's thread. */
/* What one element a loop copies, gathers or compares (im2col, col2im,
 * pooling, the prologue) weighs against NNC_PAR_MIN_WORK's multiply-adds: the
 * GEMM does some 100 of those a nanosecond on a core, a copy loop a few
 * elements. Counted as one, LeNet-5's training im2col (some 150,000 elements
 * a block of samples, tens of microseconds) stayed on the caller's thread
 * while the worker waited. */
#define NNC_PAR_COPY 16.0
#ifndef NNC_PAR_MIN_WORK
#define NNC_PAR_MIN_WORK 262144.0 /* the tests define it 0, to split even their small cases */
#endif

/* nnc_parallel when the loop's work (multiply-adds, or elements touched) is
 * worth the threads, else a plain loop. */
static NNC_MAYBE_UNUSED void nnc_parallel_work(const nnc_ctx *ctx, double work, int ntasks, nnc_task_fn fn, void *arg)
{
    nnc_parallel(work >= NNC_PAR_MIN_WORK ? ctx : NULL, ntasks, fn, arg);
}

/* The best instruction set of this CPU, lowered by NNC_ISA=c|avx2|avx512 in
 * the environment (tests run every level on one machine). */
static NNC_MAYBE_UNUSED int nnc_cpu_isa(void)
{
    int isa = NNC_ISA_C;
    const char *want = getenv("NNC_ISA");
#if NNC_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) isa = NNC_ISA_AVX2;
    if (__builtin_cpu_supports("avx512f")) isa = NNC_ISA_AVX512;
#endif
    if (want && strcmp(want, "c") == 0) isa = NNC_ISA_C;
    if (want && strcmp(want, "avx2") == 0 && isa > NNC_ISA_AVX2) isa = NNC_ISA_AVX2;
    return isa;
}

/* Stops and joins the workers; the ctx is then one-threaded. */
static NNC_MAYBE_UNUSED void nnc_ctx_stop(nnc_ctx *c)
{
#if NNC_HAVE_THREADS
    int i;
    if (c->started) {
        pthread_mutex_lock(&c->mu);
        NNC_STORE(&c->quit, 1);
        pthread_cond_broadcast(&c->wake);
        pthread_mutex_unlock(&c->mu);
        for (i = 1; i < c->threads; i++) pthread_join(c->tid[i], NULL);
        pthread_cond_destroy(&c->done);
        pthread_cond_destroy(&c->wake);
        pthread_mutex_destroy(&c->mu);
        c->started = 0;
    }
#endif
    c->threads = 1;
}

/* Sets up c for `threads` threads (0: one per online CPU, or NNC_THREADS from
 * the environment when set; clamped to 1..NNC_MAX_THREADS; 1 starts none).
 * Returns 0, or -1 when the threads could not be started (c then runs on the
 * caller's thread alone, and is still usable). */
static NNC_MAYBE_UNUSED int nnc_ctx_init(nnc_ctx *c, int threads)
{
    memset(c, 0, sizeof *c);
    c->isa = nnc_cpu_isa();
    c->threads = 1;
#if NNC_HAVE_THREADS
    if (threads <= 0) {
        const char *env = getenv("NNC_THREADS");
        long v = env ? strtol(env, NULL, 10) : 0;
        threads = v > 0 ? (int)(v < NNC_MAX_THREADS ? v : NNC_MAX_THREADS) : 0;
        if (threads <= 0) threads = NNC_ONLINE_CPUS();
    }
    if (threads > NNC_MAX_THREADS) threads = NNC_MAX_THREADS;
    if (threads > 1) {
        int i;
        if (pthread_mutex_init(&c->mu, NULL) != 0) return -1;
        if (pthread_cond_init(&c->wake, NULL) != 0) {
            pthread_mutex_destroy(&c->mu);
            return -1;
        }
        if (pthread_cond_init(&c->done, NULL) != 0) {
            pthread_cond_destroy(&c->wake);
            pthread_mutex_destroy(&c->mu);
            return -1;
        }
        c->started = 1;
        for (i = 1; i < threads; i++) {
            c->wk[i].ctx = c;
            c->wk[i].id = i;
            if (pthread_create(&c->tid[i], NULL, nnc_worker_main, &c->wk[i]) != 0) break;
            c->threads = i + 1;
        }
        if (c->threads < threads) {  /* keep none rather than a pool of an unexpected size */
            nnc_ctx_stop(c);
            return -1;
        }
    }
#else
    (void)threads;
#endif
    return 0;
}

/* @kernel gemm_packed needs: ctx epilogue */
/* C = bias + A * B where A (M x K, row-major: a weight, [out][in*kh*kw]) was
 * packed once at create by nnc_pack_weights, and B (K x N, a row stride ldb)
 * is packed as the product runs, a panel of columns at a time.
 *
 * Packed A: panels of NNC_MR = 8 rows; panel i holds rows [8i, 8i+8) column
 * by column (for each k, the 8 values of that column), so the micro-kernel
 * reads A sequentially. The last panel, when M is not a multiple of 8, holds
 * its r rows the same way with r values per column; the packed matrix has
 * exactly M*K floats, the weight's own size.
 *
 * Blocking: the sum runs in blocks of NNC_KC steps. A task is one chunk of
 * NNC_MC rows of C by a group of NNC_GROUP panels of NR columns. Per block of
 * the sum it packs its panels of B (KC x NR floats each, held in L1 and L2)
 * and sweeps the 8-row panels of A's chunk (a block of it, KC x MC floats,
 * stays in L2) over them, each producing an 8 x NR tile of C; with MC = 256
 * most layers have one chunk, so B is packed once per block. The tasks are
 * split over the instance's threads; each tile's sum is the same sequence of
 * operations whichever thread runs it. The task's buffers are on its stack
 * (about 74 KB). */
enum { NNC_MR = 8, NNC_KC = 256, NNC_MC = 256, NNC_NR_MAX = 32 };

/* dst = w (M x K) in the packed layout above; with gamma (else NULL), each row
 * r first scaled by gamma[r] / sqrt(var[r] + eps), exactly as nnc_bn_fold_weight
 * scales it, so folding a batchnorm and packing are one pass at create. */
static NNC_MAYBE_UNUSED void nnc_pack_weights(const float *w, int M, long K, const float *gamma, const float *var,
                                              float eps, float *dst)
{
    int i0, r;
    long p;
    for (i0 = 0; i0 < M; i0 += NNC_MR) {
        int rows = M - i0 < NNC_MR ? M - i0 : NNC_MR;
        float *panel = dst + (size_t)i0 * (size_t)K;
        for (r = 0; r < rows; r++) {
            const float *src = w + (size_t)(i0 + r) * (size_t)K;
            float scale = gamma ? gamma[i0 + r] / sqrtf(var[i0 + r] + eps) : 1.0f;
            if (gamma)
                for (p = 0; p < K; p++) panel[(size_t)p * (size_t)rows + (size_t)r] = src[p] * scale;
            else
                for (p = 0; p < K; p++) panel[(size_t)p * (size_t)rows + (size_t)r] = src[p];
        }
    }
}

/* A micro-kernel: c[r][j] (row stride ldc) for r < 8, j < NR = (load ? c : bias
 * ? bias[r] : 0) + sum over p < kc of a[p*8 + r] * b[p*NR + j]. */
typedef void (*nnc_ukernel)(int kc, const float *a, const float *b, float *c, size_t ldc, const float *bias,
                            int load);
/* The same, asking for kc * 32 bytes from pf to be cached as it runs (pf
 * NULL: nothing), and, when the tile is final, finishing it as nnc_epilogue
 * would: + res (its tile, row stride ldc, or NULL), then act, which is one of
 * NNC_ACT_NONE, RELU and RELU6 (nnc_gemm_fuses_act), with the same
 * arithmetic, so the tile is stored once instead of stored, read back and
 * stored again. */
typedef void (*nnc_ukernel_ex)(int kc, const float *a, const float *b, float *c, size_t ldc, const float *bias,
                               int load, const char *pf, const float *res, int act);
#define nnc_gemm_fuses_act(act) ((act) == NNC_ACT_NONE || (act) == NNC_ACT_RELU || (act) == NNC_ACT_RELU6)

/* Plain C, NR = 16: the portable path (and the reference the others are tested against). */
enum { NNC_NR_C = 16 };
static NNC_MAYBE_UNUSED void nnc_ukernel_c(int kc, const float *a, const float *b, float *c, size_t ldc,
                                           const float *bias, int load)
{
    float acc[NNC_MR][NNC_NR_C];
    int r, j, p;
    for (r = 0; r < NNC_MR; r++)
        for (j = 0; j < NNC_NR_C; j++) acc[r][j] = load ? c[(size_t)r * ldc + (size_t)j] : bias ? bias[r] : 0.0f;
    for (p = 0; p < kc; p++, a += NNC_MR, b += NNC_NR_C)
        for (r = 0; r < NNC_MR; r++)
            for (j = 0; j < NNC_NR_C; j++) acc[r][j] += a[r] * b[j];
    for (r = 0; r < NNC_MR; r++)
        for (j = 0; j < NNC_NR_C; j++) c[(size_t)r * ldc + (size_t)j] = acc[r][j];
}

#if NNC_X86
/* AVX2 + FMA, NR = 16: the 8 rows in two passes of 4 (8 accumulators of the
 * 16 ymm registers, 2 for B, 1 for A's broadcast). */
enum { NNC_NR_AVX2 = 16 };
__attribute__((target("avx2,fma"), always_inline)) static inline void
nnc_ukernel_avx2_body(int kc, const float *a, const float *b, float *c, size_t ldc, const float *bias, int load,
                      const char *pf, const float *res, int act)
{
    int half, p;
    for (half = 0; half < 2; half++) {
        const float *ap = a + 4 * half, *bp = b;
        float *cp = c + (size_t)(4 * half) * ldc;
        __m256 c00, c01, c10, c11, c20, c21, c30, c31, b0, b1, av;
        if (load) {
            c00 = _mm256_loadu_ps(cp), c01 = _mm256_loadu_ps(cp + 8);
            c10 = _mm256_loadu_ps(cp + ldc), c11 = _mm256_loadu_ps(cp + ldc + 8);
            c20 = _mm256_loadu_ps(cp + 2 * ldc), c21 = _mm256_loadu_ps(cp + 2 * ldc + 8);
            c30 = _mm256_loadu_ps(cp + 3 * ldc), c31 = _mm256_loadu_ps(cp + 3 * ldc + 8);
        } else {
            c00 = c01 = _mm256_set1_ps(bias ? bias[4 * half] : 0.0f);
            c10 = c11 = _mm256_set1_ps(bias ? bias[4 * half + 1] : 0.0f);
            c20 = c21 = _mm256_set1_ps(bias ? bias[4 * half + 2] : 0.0f);
            c30 = c31 = _mm256_set1_ps(bias ? bias[4 * half + 3] : 0.0f);
        }
        for (p = 0; p < kc; p++, ap += NNC_MR, bp += NNC_NR_AVX2) {
            if (pf && !half && !(p & 1)) _mm_prefetch(pf + (size_t)p * 32, _MM_HINT_T0);
            b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8);
            av = _mm256_broadcast_ss(ap);
            c00 = _mm256_fmadd_ps(av, b0, c00), c01 = _mm256_fmadd_ps(av, b1, c01);
            av = _mm256_broadcast_ss(ap + 1);
            c10 = _mm256_fmadd_ps(av, b0, c10), c11 = _mm256_fmadd_ps(av, b1, c11);
            av = _mm256_broadcast_ss(ap + 2);
            c20 = _mm256_fmadd_ps(av, b0, c20), c21 = _mm256_fmadd_ps(av, b1, c21);
            av = _mm256_broadcast_ss(ap + 3);
            c30 = _mm256_fmadd_ps(av, b0, c30), c31 = _mm256_fmadd_ps(av, b1, c31);
        }
        if (res) {
            const float *rp = res + (size_t)(4 * half) * ldc;
            c00 = _mm256_add_ps(c00, _mm256_loadu_ps(rp)), c01 = _mm256_add_ps(c01, _mm256_loadu_ps(rp + 8));
            c10 = _mm256_add_ps(c10, _mm256_loadu_ps(rp + ldc)), c11 = _mm256_add_ps(c11, _mm256_loadu_ps(rp + ldc + 8));
            c20 = _mm256_add_ps(c20, _mm256_loadu_ps(rp + 2 * ldc));
            c21 = _mm256_add_ps(c21, _mm256_loadu_ps(rp + 2 * ldc + 8));
            c30 = _mm256_add_ps(c30, _mm256_loadu_ps(rp + 3 * ldc));
            c31 = _mm256_add_ps(c31, _mm256_loadu_ps(rp + 3 * ldc + 8));
        }
        if (act != NNC_ACT_NONE) {  /* max(0, v) is v < 0 ? 0 : v, -0 and NaN included: the second operand wins */
            __m256 z = _mm256_setzero_ps();
            c00 = _mm256_max_ps(z, c00), c01 = _mm256_max_ps(z, c01), c10 = _mm256_max_ps(z, c10);
            c11 = _mm256_max_ps(z, c11), c20 = _mm256_max_ps(z, c20), c21 = _mm256_max_ps(z, c21);
            c30 = _mm256_max_ps(z, c30), c31 = _mm256_max_ps(z, c31);
            if (act == NNC_ACT_RELU6) {  /* min(6, v) is v > 6 ? 6 : v, NaN included */
                __m256 six = _mm256_set1_ps(6.0f);
                c00 = _mm256_min_ps(six, c00), c01 = _mm256_min_ps(six, c01), c10 = _mm256_min_ps(six, c10);
                c11 = _mm256_min_ps(six, c11), c20 = _mm256_min_ps(six, c20), c21 = _mm256_min_ps(six, c21);
                c30 = _mm256_min_ps(six, c30), c31 = _mm256_min_ps(six, c31);
            }
        }
        _mm256_storeu_ps(cp, c00), _mm256_storeu_ps(cp + 8, c01);
        _mm256_storeu_ps(cp + ldc, c10), _mm256_storeu_ps(cp + ldc + 8, c11);
        _mm256_storeu_ps(cp + 2 * ldc, c20), _mm256_storeu_ps(cp + 2 * ldc + 8, c21);
        _mm256_storeu_ps(cp + 3 * ldc, c30), _mm256_storeu_ps(cp + 3 * ldc + 8, c31);
    }
}
__attribute__((target("avx2,fma"))) static NNC_MAYBE_UNUSED void
nnc_ukernel_avx2(int kc, const float *a, const float *b, float *c, size_t ldc, const float *bias, int load)
{
    nnc_ukernel_avx2_body(kc, a, b, c, ldc, bias, load, NULL, NULL, NNC_ACT_NONE);
}
__attribute__((target("avx2,fma"))) static NNC_MAYBE_UNUSED void
nnc_ukernel_avx2_ex(int kc, const float *a, const float *b, float *c, size_t ldc, const float *bias, int load,
                    const char *pf, const float *res, int act)
{
    nnc_ukernel_avx2_body(kc, a, b, c, ldc, bias, load, pf, res, act);
}

/* AVX-512, NR = 32: 8 rows x 2 zmm = 16 accumulators; per step two loads of
 * B and 8 broadcasts of A feed 16 FMAs. */
enum { NNC_NR_AVX512 = 32 };
#define NNC_U512_ROW(r)                                                                                               \
    av = _mm512_set1_ps(ap[r]);                                                                                       \
    c##r##0 = _mm512_fmadd_ps(av, b0, c##r##0);                                                                       \
    c##r##1 = _mm512_fmadd_ps(av, b1, c##r##1);
#define NNC_U512_INIT(r)                                                                                              \
    if (load)                                                                                                         \
        c##r##0 = _mm512_loadu_ps(c + (size_t)(r) * ldc), c##r##1 = _mm512_loadu_ps(c + (size_t)(r) * ldc + 16);      \
    else                                                                                                              \
        c##r##0 = c##r##1 = _mm512_set1_ps(bias ? bias[r] : 0.0f);
#define NNC_U512_STORE(r)                                                                                             \
    if (res)                                                                                                          \
        c##r##0 = _mm512_add_ps(c##r##0, _mm512_loadu_ps(res + (size_t)(r) * ldc)),                                   \
        c##r##1 = _mm512_add_ps(c##r##1, _mm512_loadu_ps(res + (size_t)(r) * ldc + 16));                              \
    if (act != NNC_ACT_NONE) c##r##0 = _mm512_max_ps(z, c##r##0), c##r##1 = _mm512_max_ps(z, c##r##1);               \
    if (act == NNC_ACT_RELU6) c##r##0 = _mm512_min_ps(six, c##r##0), c##r##1 = _mm512_min_ps(six, c##r##1);          \
    _mm512_storeu_ps(c + (size_t)(r) * ldc, c##r##0), _mm512_storeu_ps(c + (size_t)(r) * ldc + 16, c##r##1);
/* The kernel's body (the epilogue as the AVX2 kernel's: max(0, v) is
 * v < 0 ? 0 : v, -0 and NaN included, the second operand winning; min(6, v)
 * is v > 6 ? 6 : v); pf, when not NULL, is the next panel of A's block,
 * kc * 32 bytes the loop asks the cache for a line every other step (the AVX2
 * kernel the same, in its first half), so a weight streamed from memory
 * arrives while this tile computes instead of in one burst before it, which
 * stalled on the full miss queue (4% of ResNet-50; 512 x 49 x 4608: 2.0 ->
 * 1.6 ms). */
__attribute__((target("avx512f"), always_inline)) static inline void
nnc_ukernel_avx512_body(int kc, const float *a, const float *b, float *c, size_t ldc, const float *bias, int load,
                        const char *pf, const float *res, int act)
{
    __m512 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, c60, c61, c70, c71, b0, b1, av;
    __m512 z = _mm512_setzero_ps(), six = _mm512_set1_ps(6.0f);
    const float *ap = a, *bp = b;
    int p;
    NNC_U512_INIT(0) NNC_U512_INIT(1) NNC_U512_INIT(2) NNC_U512_INIT(3)
    NNC_U512_INIT(4) NNC_U512_INIT(5) NNC_U512_INIT(6) NNC_U512_INIT(7)
    for (p = 0; p < kc; p++, ap += NNC_MR, bp += NNC_NR_AVX512) {
        if (pf && !(p & 1)) _mm_prefetch(pf + (size_t)p * 32, _MM_HINT_T0);
        b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16);
        NNC_U512_ROW(0) NNC_U512_ROW(1) NNC_U512_ROW(2) NNC_U512_ROW(3)
        NNC_U512_ROW(4) NNC_U512_ROW(5) NNC_U512_ROW(6) NNC_U512_ROW(7)
    }
    NNC_U512_STORE(0) NNC_U512_STORE(1) NNC_U512_STORE(2) NNC_U512_STORE(3)
    NNC_U512_STORE(4) NNC_U512_STORE(5) NNC_U512_STORE(6) NNC_U512_STORE(7)
}
__attribute__((target("avx512f"))) static NNC_MAYBE_UNUSED void
nnc_ukernel_avx512(int kc, const float *a, const float *b, float *c, size_t ldc, const float *bias, int load)
{
    nnc_ukernel_avx512_body(kc, a, b, c, ldc, bias, load, NULL, NULL, NNC_ACT_NONE);
}
__attribute__((target("avx512f"))) static NNC_MAYBE_UNUSED void
nnc_ukernel_avx512_ex(int kc, const float *a, const float *b, float *c, size_t ldc, const float *bias, int load,
                      const char *pf, const float *res, int act)
{
    nnc_ukernel_avx512_body(kc, a, b, c, ldc, bias, load, pf, res, act);
}
#undef NNC_U512_ROW
#undef NNC_U512_INIT
#undef NNC_U512_STORE
#endif

/* The micro-kernel of an instruction set, and its NR. */
static NNC_MAYBE_UNUSED nnc_ukernel nnc_ukernel_for(int isa, int *nr)
{
#if NNC_X86
    if (isa == NNC_ISA_AVX512) return *nr = NNC_NR_AVX512, nnc_ukernel_avx512;
    if (isa == NNC_ISA_AVX2) return *nr = NNC_NR_AVX2, nnc_ukernel_avx2;
#else
    (void)isa;
#endif
    *nr = NNC_NR_C;
    return nnc_ukernel_c;
}

/* B[p0 .. p0+kc)[j0 .. j0+cols) of a matrix with row stride ldb into buf as kc
 * rows of nr floats, zero past cols. */
static NNC_MAYBE_UNUSED void nnc_pack_b(const float *b, size_t ldb, long p0, int kc, long j0, int cols, int nr,
                                        float *buf)
{
    int p, j;
    for (p = 0; p < kc; p++) {
        const float *src = b + (size_t)(p0 + p) * ldb + (size_t)j0;
        float *dst = buf + (size_t)p * (size_t)nr;
        if (cols == 32) {  /* a constant size: the compiler inlines it as vector moves */
            memcpy(dst, src, 32 * sizeof(float));
        } else if (cols == 16) {
            memcpy(dst, src, 16 * sizeof(float));
        } else {
            for (j = 0; j < cols; j++) dst[j] = src[j];
            for (; j < nr; j++) dst[j] = 0.0f;
        }
    }
}

/* B is packed NNC_GROUP panels at a time (2 x KC x NR floats: 64 KB), which
 * the 8-row panels of A's block then run over while they are in L1. */
enum { NNC_GROUP = 2 };

/* One packed GEMM with its epilogue, as nnc_gemm_packed's tasks see it. */
typedef struct {
    int M;
    long N, K;
    const float *a;             /* packed A */
    const float *b;             /* B, K x N, row stride ldb */
    size_t ldb;
    float *c;                   /* C, M x N, row stride ldc */
    size_t ldc;
    const float *bias;          /* per row of C, or NULL */
    const float *residual;      /* M x N, row stride ldc, or NULL */
    int act, act_rows;          /* the activation, on rows [0, act_rows) */
    float slope;
    nnc_ukernel kern;
    nnc_ukernel_ex kern_ex;     /* kern with a prefetch and the epilogue, or NULL */
    int bact;                   /* an activation applied to B as it is packed (dwpw's depthwise one) */
    float bslope;
    int nr, mc, row_chunks, col_splits;
    long panels;                /* of NR columns */
} nnc_gemm_job;

/* The epilogue of a finished tile: rows [i0, i0+rows), columns [j0, j0+cols). */
static NNC_MAYBE_UNUSED void nnc_gemm_tile_epilogue(const nnc_gemm_job *g, int i0, int rows, long j0, int cols)
{
    int r;
    for (r = 0; r < rows; r++)
        nnc_epilogue(g->c + (size_t)(i0 + r) * g->ldc + (size_t)j0, (size_t)cols,
                     g->residual ? g->residual + (size_t)(i0 + r) * g->ldc + (size_t)j0 : NULL,
                     i0 + r < g->act_rows ? g->act : NNC_ACT_NONE, g->slope);
}

/* Where the block of A's panel at row i0 (the sum's steps from p0) starts.
 * The next one is asked into the cache while the current panel computes: a
 * weight is read once per forward, so it comes from DRAM, and the panels of a
 * block are K*8 floats apart, runs the hardware prefetcher meets too late.
 * (Measured on ResNet-50's 7x7 3x3 layer, 512 x 49 x 4608, one thread: 2.15
 * -> 1.80 ms.) */
static NNC_MAYBE_UNUSED const char *nnc_gemm_a_block(const nnc_gemm_job *g, int i0, long p0)
{
    int rows = g->M - i0 < NNC_MR ? g->M - i0 : NNC_MR;
    return (const char *)(g->a + (size_t)i0 * (size_t)g->K + (size_t)p0 * (size_t)rows);
}

/* The prefetch without a kernel that makes it: all at once. */
static NNC_MAYBE_UNUSED void nnc_prefetch(const char *p, size_t bytes)
{
#if defined(__GNUC__) || defined(__clang__)
    size_t l;
    for (l = 0; l < bytes; l += 64) __builtin_prefetch(p + l, 0, 3);
#else
    (void)p, (void)bytes;
#endif
}

/* Task t of a job: rows chunk t / col_splits, panels range t % col_splits.
 * Per block of the sum, the block of A's rows (KC x mc floats, at most 256
 * KB) is read from memory once, by the first group of B's panels, and stays
 * in L2 for the others: A, the weight, is read once per task. */
static NNC_MAYBE_UNUSED void nnc_gemm_task(void *arg, int t)
{
    const nnc_gemm_job *g = (const nnc_gemm_job *)arg;
    float bbuf[NNC_GROUP][NNC_KC * NNC_NR_MAX], abuf[NNC_KC * NNC_MR], tile[NNC_MR * NNC_NR_MAX], bias8[NNC_MR];
    int nr = g->nr, i_lo = t / g->col_splits * g->mc, q, nq, cols[NNC_GROUP], i0, r, j, cs = t % g->col_splits;
    int i_hi = g->M - i_lo < g->mc ? g->M : i_lo + g->mc;
    long q_lo = g->panels * cs / g->col_splits, q_hi = g->panels * (cs + 1) / g->col_splits, qg, j0[NNC_GROUP], p0;
    for (p0 = 0; p0 < g->K; p0 += NNC_KC) {
        int kc = g->K - p0 < NNC_KC ? (int)(g->K - p0) : NNC_KC, last = p0 + kc >= g->K;
        for (qg = q_lo; qg < q_hi; qg += NNC_GROUP) {
            nq = q_hi - qg < NNC_GROUP ? (int)(q_hi - qg) : NNC_GROUP;
            for (q = 0; q < nq; q++) {
                j0[q] = (qg + q) * nr;
                cols[q] = g->N - j0[q] < nr ? (int)(g->N - j0[q]) : nr;
                nnc_pack_b(g->b, g->ldb, p0, kc, j0[q], cols[q], nr, bbuf[q]);
                if (g->bact != NNC_ACT_NONE)  /* the padding columns too: they are never stored */
                    nnc_activation_inplace(bbuf[q], (size_t)kc * (size_t)nr, g->bact, g->bslope);
            }
            for (i0 = i_lo; i0 < i_hi; i0 += NNC_MR) {
                int rows = g->M - i0 < NNC_MR ? g->M - i0 : NNC_MR;
                const float *ap = g->a + (size_t)i0 * (size_t)g->K + (size_t)p0 * (size_t)rows;
                const float *bias = g->bias ? g->bias + i0 : NULL;
                const char *pf = NULL;  /* the next block of A to ask for */
                int tile_act = i0 + NNC_MR <= g->act_rows ? g->act : i0 >= g->act_rows ? NNC_ACT_NONE : -1;
                int fuse = last && g->kern_ex && tile_act >= 0 && nnc_gemm_fuses_act(tile_act);
                if (qg == q_lo && i0 + NNC_MR < i_hi)
                    pf = nnc_gemm_a_block(g, i0 + NNC_MR, p0);
                else if (qg + NNC_GROUP >= q_hi && i0 + NNC_MR >= i_hi && !last)
                    pf = nnc_gemm_a_block(g, i_lo, p0 + kc);
                if (pf && (!g->kern_ex || rows < NNC_MR || cols[0] < nr)) {
                    nnc_prefetch(pf, (size_t)kc * NNC_MR * sizeof(float));
                    pf = NULL;
                }
                if (rows < NNC_MR) {  /* the last panel: widen to 8 rows with zeros */
                    int p;
                    for (p = 0; p < kc; p++)
                        for (r = 0; r < NNC_MR; r++)
                            abuf[p * NNC_MR + r] = r < rows ? ap[(size_t)p * (size_t)rows + (size_t)r] : 0.0f;
                    ap = abuf;
                    if (bias) {
                        for (r = 0; r < NNC_MR; r++) bias8[r] = r < rows ? bias[r] : 0.0f;
                        bias = bias8;
                    }
                }
                for (q = 0; q < nq; q++) {
                    float *cp = g->c + (size_t)i0 * g->ldc + (size_t)j0[q];
                    if (last && g->residual)  /* the epilogue's operand, written layers ago: ask for it now */
                        for (r = 0; r < rows; r++)
                            nnc_prefetch((const char *)(g->residual + (size_t)(i0 + r) * g->ldc + (size_t)j0[q]),
                                         (size_t)cols[q] * sizeof(float));
                    if (rows == NNC_MR && cols[q] == nr && g->kern_ex && (fuse || pf)) {
                        g->kern_ex(kc, ap, bbuf[q], cp, g->ldc, bias, p0 > 0, pf,
                                   fuse && g->residual ? g->residual + (size_t)i0 * g->ldc + (size_t)j0[q] : NULL,
                                   fuse ? tile_act : NNC_ACT_NONE);
                        pf = NULL;
                        if (fuse) continue;  /* finished */
                    } else if (rows == NNC_MR && cols[q] == nr) {
                        g->kern(kc, ap, bbuf[q], cp, g->ldc, bias, p0 > 0);
                    } else {  /* an edge tile: through a full-size tile of our own */
                        if (p0 > 0)
                            for (r = 0; r < rows; r++)
                                for (j = 0; j < cols[q]; j++) tile[r * nr + j] = cp[(size_t)r * g->ldc + (size_t)j];
                        g->kern(kc, ap, bbuf[q], tile, (size_t)nr, bias, p0 > 0);
                        for (r = 0; r < rows; r++)
                            for (j = 0; j < cols[q]; j++) cp[(size_t)r * g->ldc + (size_t)j] = tile[r * nr + j];
                    }
                    if (last && (g->residual || g->act != NNC_ACT_NONE))
                        nnc_gemm_tile_epilogue(g, i0, rows, j0[q], cols[q]);
                }
            }
        }
    }
}

/* How nnc_gemm_packed splits C over T threads: in chunks of rows (at most
 * NNC_MC, a multiple of 8) by ranges of panels. Each task reads its rows of A
 * once and packs its columns of B once per chunk, so rows are split when A
 * is the larger operand (N <= 2M: A comes cold from memory, B was just
 * written), columns otherwise; chunks are evened out so that no thread gets
 * one more than another. Which task computes a tile never changes its
 * arithmetic, so the split depends on T freely. */
static NNC_MAYBE_UNUSED void nnc_gemm_split(nnc_gemm_job *g, int T)
{
    int rc = (g->M + NNC_MC - 1) / NNC_MC;
    g->col_splits = 1;
    if (T > 1 && rc % T != 0) {
        if (rc > T || (g->N <= 2L * g->M && g->M >= 32 * T))
            rc = (rc + T - 1) / T * T;  /* more, smaller chunks: a multiple of T */
        else
            g->col_splits = (int)(g->panels < (long)T ? g->panels : (long)T);
    }
    g->mc = (g->M + rc - 1) / rc;
    g->mc = (g->mc + NNC_MR - 1) / NNC_MR * NNC_MR;
    g->row_chunks = (g->M + g->mc - 1) / g->mc;
}

/* C (M x N, row stride ldc) = act(bias + A*B + residual), A packed by
 * nnc_pack_weights, B K x N with row stride ldb, bias per row or NULL,
 * residual like C or NULL, the activation on rows [0, act_rows) only (a fused
 * group of sibling convolutions, some without one). Over ctx's threads. */
static NNC_MAYBE_UNUSED void nnc_gemm_packed_bact(const nnc_ctx *ctx, int M, long N, long K, const float *a,
                                                  const float *b, size_t ldb, float *c, size_t ldc, const float *bias,
                                                  const float *residual, int act, float slope, int act_rows, int bact,
                                                  float bslope)
{
    nnc_gemm_job g;
    double work = (double)M * (double)N * (double)K;
    if (M <= 0 || N <= 0) return;
    g.M = M, g.N = N, g.K = K, g.a = a, g.b = b, g.ldb = ldb, g.c = c, g.ldc = ldc, g.bias = bias;
    g.residual = residual, g.act = act, g.slope = slope, g.act_rows = act_rows, g.bact = bact, g.bslope = bslope;
    g.kern = nnc_ukernel_for(ctx ? ctx->isa : nnc_cpu_isa(), &g.nr);
#if NNC_X86
    g.kern_ex = g.kern == nnc_ukernel_avx512 ? nnc_ukernel_avx512_ex
              : g.kern == nnc_ukernel_avx2   ? nnc_ukernel_avx2_ex
                                             : NULL;
#else
    g.kern_ex = NULL;
#endif
    g.panels = (N + g.nr - 1) / g.nr;
    nnc_gemm_split(&g, ctx && work >= NNC_PAR_MIN_WORK ? ctx->threads : 1);
    if (K <= 0) {  /* no sum: C is the bias, then the epilogue */
        int r;
        for (r = 0; r < M; r++) {
            float *row = c + (size_t)r * ldc;
            long j;
            for (j = 0; j < N; j++) row[j] = bias ? bias[r] : 0.0f;
            if (residual || act != NNC_ACT_NONE)
                nnc_epilogue(row, (size_t)N, residual ? residual + (size_t)r * ldc : NULL,
                             r < act_rows ? act : NNC_ACT_NONE, slope);
        }
        return;
    }
    nnc_parallel_work(ctx, work, g.row_chunks * g.col_splits, nnc_gemm_task, &g);
}

static NNC_MAYBE_UNUSED void nnc_gemm_packed(const nnc_ctx *ctx, int M, long N, long K, const float *a,
                                             const float *b, size_t ldb, float *c, size_t ldc, const float *bias,
                                             const float *residual, int act, float slope, int act_rows)
{
    nnc_gemm_packed_bact(ctx, M, N, K, a, b, ldb, c, ldc, bias, residual, act, slope, act_rows, NNC_ACT_NONE, 0.0f);
}
