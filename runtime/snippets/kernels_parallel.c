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
#if !defined(NNC_NO_THREADS) && (defined(__unix__) || defined(__APPLE__))
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
    nnc_task_fn fn;           /* the current job */
    void *arg;
    int ntasks;
    pthread_t tid[NNC_MAX_THREADS];
    nnc_worker wk[NNC_MAX_THREADS];
#endif
} nnc_ctx;

/* Tasks [t*ntasks/T, (t+1)*ntasks/T) go to thread t: contiguous ranges, so a
 * thread's consecutive tasks share their operands in cache, and which thread
 * computes a result never changes the result (each task's arithmetic is
 * fixed): 1 and 2 threads give bit-identical outputs. */
static NNC_MAYBE_UNUSED void nnc_run_share(nnc_task_fn fn, void *arg, int ntasks, int t, int threads)
{
    int b = (int)((long long)ntasks * t / threads), e = (int)((long long)ntasks * (t + 1) / threads), i;
    for (i = b; i < e; i++) fn(arg, i);
}

#if NNC_HAVE_THREADS
/* A worker: sleeps on the condition variable until a job or quit (it never
 * spins), runs its share, and tells the caller when it was the last. */
static void *nnc_worker_main(void *p)
{
    nnc_worker *w = (nnc_worker *)p;
    nnc_ctx *c = w->ctx;
    unsigned long seen = 0;
    for (;;) {
        nnc_task_fn fn;
        void *arg;
        int ntasks;
        pthread_mutex_lock(&c->mu);
        while (c->gen == seen && !c->quit) pthread_cond_wait(&c->wake, &c->mu);
        if (c->quit) {
            pthread_mutex_unlock(&c->mu);
            return NULL;
        }
        seen = c->gen;
        fn = c->fn, arg = c->arg, ntasks = c->ntasks;
        pthread_mutex_unlock(&c->mu);
        nnc_run_share(fn, arg, ntasks, w->id, c->threads);
        pthread_mutex_lock(&c->mu);
        if (--c->pending == 0) pthread_cond_signal(&c->done);
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
        int workers = c->threads - 1;
        pthread_mutex_lock(&c->mu);
        c->fn = fn, c->arg = arg, c->ntasks = ntasks, c->pending = workers;
        c->gen++;
        pthread_cond_broadcast(&c->wake);
        pthread_mutex_unlock(&c->mu);
        nnc_run_share(fn, arg, ntasks, 0, c->threads);
        pthread_mutex_lock(&c->mu);
        while (c->pending > 0) pthread_cond_wait(&c->done, &c->mu);
        pthread_mutex_unlock(&c->mu);
        return;
    }
#else
    (void)cc;
#endif
    nnc_run_share(fn, arg, ntasks, 0, 1);
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
        c->quit = 1;
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
 * Blocking: the sum runs in blocks of NNC_KC steps; per block and per panel
 * of NR columns of B (packed into a buffer of KC x NR floats that stays in
 * L1), the micro-kernel sweeps the 8-row panels of one chunk of NNC_MC rows
 * of A (which stays in L2), each producing an 8 x NR tile of C. A task is one
 * chunk of rows by one panel of columns; the tasks are split over the
 * instance's threads. Each tile's sum is the same sequence of operations
 * whichever thread runs it. */
enum { NNC_MR = 8, NNC_KC = 256, NNC_MC = 64, NNC_NR_MAX = 32 };

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
__attribute__((target("avx2,fma"))) static NNC_MAYBE_UNUSED void
nnc_ukernel_avx2(int kc, const float *a, const float *b, float *c, size_t ldc, const float *bias, int load)
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
        _mm256_storeu_ps(cp, c00), _mm256_storeu_ps(cp + 8, c01);
        _mm256_storeu_ps(cp + ldc, c10), _mm256_storeu_ps(cp + ldc + 8, c11);
        _mm256_storeu_ps(cp + 2 * ldc, c20), _mm256_storeu_ps(cp + 2 * ldc + 8, c21);
        _mm256_storeu_ps(cp + 3 * ldc, c30), _mm256_storeu_ps(cp + 3 * ldc + 8, c31);
    }
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
    _mm512_storeu_ps(c + (size_t)(r) * ldc, c##r##0), _mm512_storeu_ps(c + (size_t)(r) * ldc + 16, c##r##1);
__attribute__((target("avx512f"))) static NNC_MAYBE_UNUSED void
nnc_ukernel_avx512(int kc, const float *a, const float *b, float *c, size_t ldc, const float *bias, int load)
{
    __m512 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, c60, c61, c70, c71, b0, b1, av;
    const float *ap = a, *bp = b;
    int p;
    NNC_U512_INIT(0) NNC_U512_INIT(1) NNC_U512_INIT(2) NNC_U512_INIT(3)
    NNC_U512_INIT(4) NNC_U512_INIT(5) NNC_U512_INIT(6) NNC_U512_INIT(7)
    for (p = 0; p < kc; p++, ap += NNC_MR, bp += NNC_NR_AVX512) {
        b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16);
        NNC_U512_ROW(0) NNC_U512_ROW(1) NNC_U512_ROW(2) NNC_U512_ROW(3)
        NNC_U512_ROW(4) NNC_U512_ROW(5) NNC_U512_ROW(6) NNC_U512_ROW(7)
    }
    NNC_U512_STORE(0) NNC_U512_STORE(1) NNC_U512_STORE(2) NNC_U512_STORE(3)
    NNC_U512_STORE(4) NNC_U512_STORE(5) NNC_U512_STORE(6) NNC_U512_STORE(7)
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

/* One packed GEMM with its epilogue, as nnc_gemm_packed's tasks see it. */
typedef struct {
    int M, N;
    long K;
    const float *a;          /* packed A */
    const float *b;          /* B, K x N, row stride ldb */
    size_t ldb;
    float *c;                /* C, M x N, row stride ldc */
    size_t ldc;
    const float *bias;       /* per row of C, or NULL */
    const float *residual;   /* M x N, row stride ldc, or NULL */
    int act, act_rows;       /* the activation, on rows [0, act_rows) */
    float slope;
    nnc_ukernel kern;
    int nr, row_chunks, col_panels;
} nnc_gemm_job;

/* B[p0 .. p0+kc)[j0 .. j0+cols) into buf as kc rows of nr floats, zero past cols. */
static NNC_MAYBE_UNUSED void nnc_pack_b(const float *b, size_t ldb, long p0, int kc, int j0, int cols, int nr,
                                        float *buf)
{
    int p, j;
    for (p = 0; p < kc; p++) {
        const float *src = b + (size_t)(p0 + p) * ldb + (size_t)j0;
        float *dst = buf + (size_t)p * (size_t)nr;
        for (j = 0; j < cols; j++) dst[j] = src[j];
        for (; j < nr; j++) dst[j] = 0.0f;
    }
}

/* Task t of a job: rows chunk t / col_panels, columns panel t % col_panels. */
static NNC_MAYBE_UNUSED void nnc_gemm_task(void *arg, int t)
{
    const nnc_gemm_job *g = (const nnc_gemm_job *)arg;
    float bbuf[NNC_KC * NNC_NR_MAX], abuf[NNC_KC * NNC_MR], tile[NNC_MR * NNC_NR_MAX], bias8[NNC_MR];
    int nr = g->nr, j0 = t % g->col_panels * nr, i_lo = t / g->col_panels * NNC_MC;
    int cols = g->N - j0 < nr ? g->N - j0 : nr, i_hi = g->M - i_lo < NNC_MC ? g->M : i_lo + NNC_MC, i0, r, j;
    long p0;
    for (p0 = 0; p0 < g->K; p0 += NNC_KC) {
        int kc = g->K - p0 < NNC_KC ? (int)(g->K - p0) : NNC_KC;
        nnc_pack_b(g->b, g->ldb, p0, kc, j0, cols, nr, bbuf);
        for (i0 = i_lo; i0 < i_hi; i0 += NNC_MR) {
            int rows = g->M - i0 < NNC_MR ? g->M - i0 : NNC_MR;
            const float *ap = g->a + (size_t)i0 * (size_t)g->K + (size_t)p0 * (size_t)rows;
            const float *bias = g->bias ? g->bias + i0 : NULL;
            float *cp = g->c + (size_t)i0 * g->ldc + (size_t)j0;
            if (rows < NNC_MR) {  /* the last panel: widen to 8 rows with zeros */
                int p;
                for (p = 0; p < kc; p++)
                    for (r = 0; r < NNC_MR; r++) abuf[p * NNC_MR + r] = r < rows ? ap[(size_t)p * (size_t)rows + (size_t)r] : 0.0f;
                ap = abuf;
                if (bias) {
                    for (r = 0; r < NNC_MR; r++) bias8[r] = r < rows ? bias[r] : 0.0f;
                    bias = bias8;
                }
            }
            if (rows == NNC_MR && cols == nr) {
                g->kern(kc, ap, bbuf, cp, g->ldc, bias, p0 > 0);
            } else {  /* an edge tile: through a full-size tile of our own */
                if (p0 > 0)
                    for (r = 0; r < rows; r++)
                        for (j = 0; j < cols; j++) tile[r * nr + j] = cp[(size_t)r * g->ldc + (size_t)j];
                g->kern(kc, ap, bbuf, tile, (size_t)nr, bias, p0 > 0);
                for (r = 0; r < rows; r++)
                    for (j = 0; j < cols; j++) cp[(size_t)r * g->ldc + (size_t)j] = tile[r * nr + j];
            }
            if (p0 + kc >= g->K && (g->residual || g->act != NNC_ACT_NONE))  /* the tile is done: its epilogue */
                for (r = 0; r < rows; r++)
                    nnc_epilogue(cp + (size_t)r * g->ldc, (size_t)cols,
                                 g->residual ? g->residual + (size_t)(i0 + r) * g->ldc + (size_t)j0 : NULL,
                                 i0 + r < g->act_rows ? g->act : NNC_ACT_NONE, g->slope);
        }
    }
}

/* C (M x N, row stride ldc) = act(bias + A*B + residual), A packed by
 * nnc_pack_weights, B K x N with row stride ldb, bias per row or NULL,
 * residual like C or NULL, the activation on rows [0, act_rows) only (a fused
 * group of sibling convolutions, some without one). Over ctx's threads. */
static NNC_MAYBE_UNUSED void nnc_gemm_packed(const nnc_ctx *ctx, int M, int N, long K, const float *a,
                                             const float *b, size_t ldb, float *c, size_t ldc, const float *bias,
                                             const float *residual, int act, float slope, int act_rows)
{
    nnc_gemm_job g;
    if (M <= 0 || N <= 0) return;
    g.M = M, g.N = N, g.K = K, g.a = a, g.b = b, g.ldb = ldb, g.c = c, g.ldc = ldc, g.bias = bias;
    g.residual = residual, g.act = act, g.slope = slope, g.act_rows = act_rows;
    g.kern = nnc_ukernel_for(ctx ? ctx->isa : nnc_cpu_isa(), &g.nr);
    g.row_chunks = (M + NNC_MC - 1) / NNC_MC;
    g.col_panels = (N + g.nr - 1) / g.nr;
    if (K <= 0) {  /* no sum: C is the bias, then the epilogue */
        int r;
        for (r = 0; r < M; r++) {
            float *row = c + (size_t)r * ldc;
            int j;
            for (j = 0; j < N; j++) row[j] = bias ? bias[r] : 0.0f;
            if (residual || act != NNC_ACT_NONE)
                nnc_epilogue(row, (size_t)N, residual ? residual + (size_t)r * ldc : NULL,
                             r < act_rows ? act : NNC_ACT_NONE, slope);
        }
        return;
    }
    nnc_parallel(ctx, g.row_chunks * g.col_panels, nnc_gemm_task, &g);
}
