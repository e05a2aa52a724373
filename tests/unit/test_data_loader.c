/* test_data_loader.c: the loader of runtime/data_loader.c and the reader thread of
 * runtime/data_prefetch.c (data.h): options and
 * their errors, batch order, normalization, crop, flip, jitter, the state a
 * checkpoint restores, the prefetcher, and Fashion-MNIST when it is there. The data sets
 * themselves are tested in test_data.c; helpers in data_test.h. */
#include "data_test.h"

/* ---- options ---- */

static void test_parse_normalize(void **state)
{
    (void)state;
    DtOptions o = {0};
    assert_int_equal(dt_parse_normalize("0.5,0.25", &o, g_err, sizeof g_err), 0);
    assert_int_equal(o.norm_count, 1);
    assert_true(o.mean[0] == 0.5f && o.std[0] == 0.25f);
    assert_int_equal(dt_parse_normalize("0.49,0.48,0.45,0.25,0.24,0.26", &o, g_err, sizeof g_err), 0);
    assert_int_equal(o.norm_count, 3);
    assert_true(o.mean[2] == 0.45f && o.std[0] == 0.25f && o.std[2] == 0.26f);
    expect_fail(dt_parse_normalize("0.5", &o, g_err, sizeof g_err), "--normalize '0.5'", "1 numbers", "as many means as stds");
    expect_fail(dt_parse_normalize("0.5,0", &o, g_err, sizeof g_err), "--normalize '0.5,0'", "std 0 (number 2) must be > 0", NULL);
    expect_fail(dt_parse_normalize("0.5,-1", &o, g_err, sizeof g_err), "--normalize '0.5,-1'", "must be > 0", NULL);
    expect_fail(dt_parse_normalize("0.5,x", &o, g_err, sizeof g_err), "--normalize '0.5,x'", "expected a number at 'x'", NULL);
    expect_fail(dt_parse_normalize("", &o, g_err, sizeof g_err), "--normalize ''", "expected a number", NULL);
    expect_fail(dt_parse_normalize("0.5;0.2", &o, g_err, sizeof g_err), "--normalize '0.5;0.2'", "expected ','", NULL);
    expect_fail(dt_parse_normalize("0.5,", &o, g_err, sizeof g_err), "--normalize '0.5,'", "expected a number", NULL);
    expect_fail(dt_parse_normalize("nan,1", &o, g_err, sizeof g_err), "--normalize 'nan,1'", "expected a number", NULL);
    char many[2000] = "0";
    for (int i = 1; i <= 2 * DT_MAX_CHANNELS; i++) strcat(many, ",1");
    char pre[100];
    snprintf(pre, sizeof pre, "--normalize '%.60s...'", many);   /* long values are cut in the message */
    expect_fail(dt_parse_normalize(many, &o, g_err, sizeof g_err), pre, "more than 128 numbers", NULL);
    assert_int_equal(o.norm_count, 3);   /* failures leave the options alone */
}

static void test_loader_option_errors(void **state)
{
    (void)state;
    char dir[512], spec[600];
    make_dir(dir, sizeof dir, "opt_bad");
    snprintf(spec, sizeof spec, "npy:%s", dir);
    make_counting_set(dir, 4, 2, 3, 3);
    DtSet s;
    DtLoader l;
    open_ok(&s, spec, DT_TRAIN);
    DtOptions o = {0};
    assert_int_equal(dt_parse_normalize("1,2,3,1,1,1", &o, g_err, sizeof g_err), 0);
    expect_fail(dt_loader_init(&l, &s, &o, g_err, sizeof g_err), spec, "--normalize gives 3 mean,std pairs",
                "images have 2 channels");
    o = (DtOptions){.norm_count = 1, .mean = {0}, .std = {0}};
    expect_fail(dt_loader_init(&l, &s, &o, g_err, sizeof g_err), spec, "std 0", "must be > 0");
    o = (DtOptions){.crop_pad = 4};
    expect_fail(dt_loader_init(&l, &s, &o, g_err, sizeof g_err), spec, "crop padding 4 is out of range for 3 x 3 images",
                "0 (off) to 3");
    o = (DtOptions){.crop_pad = -1};
    expect_fail(dt_loader_init(&l, &s, &o, g_err, sizeof g_err), spec, "crop padding -1", NULL);
    o = (DtOptions){.jitter = 1.5f};
    expect_fail(dt_loader_init(&l, &s, &o, g_err, sizeof g_err), spec, "jitter 1.5 is out of range", NULL);
    o = (DtOptions){.jitter = NAN};
    expect_fail(dt_loader_init(&l, &s, &o, g_err, sizeof g_err), spec, "jitter nan", NULL);
    o = (DtOptions){.hflip = 2};
    expect_fail(dt_loader_init(&l, &s, &o, g_err, sizeof g_err), spec, "hflip is 2", NULL);

    /* misuse of a good loader is a -1, not a crash */
    o = (DtOptions){0};
    loader_ok(&l, &s, &o);
    float img[4 * 18];
    int32_t lab[4];
    assert_int_equal(dt_next_batch(&l, img, lab, 4), -1);   /* no epoch begun */
    dt_epoch_begin(&l, 0);
    assert_int_equal(dt_next_batch(&l, img, lab, 0), -1);
    assert_int_equal(dt_batches_per_epoch(&l, 0), 0);
    dt_loader_free(&l);
    dt_loader_free(&l);
    dt_close(&s);
}

static void test_check_classes(void **state)
{
    (void)state;
    char dir[512], spec[600];
    make_dir(dir, sizeof dir, "classes");
    snprintf(spec, sizeof spec, "mnist:%s", dir);
    write_small_mnist(dir);
    DtSet s;
    open_ok(&s, spec, DT_TRAIN);
    assert_int_equal(dt_check_classes(&s, 10, g_err, sizeof g_err), 0);
    expect_fail(dt_check_classes(&s, 5, g_err, sizeof g_err), spec,
                "label 9 of sample 0 (train split) is out of range for a model with 5 classes", "at least 10 outputs");
    dt_close(&s);
}

/* ---- batches ---- */

static void test_order_and_batches(void **state)
{
    (void)state;
    char dir[512], spec[600];
    make_dir(dir, sizeof dir, "order");
    snprintf(spec, sizeof spec, "npy:%s", dir);
    enum { N = 10 };
    make_counting_set(dir, N, 1, 1, 2);
    DtSet s;
    DtLoader l, l2;
    open_ok(&s, spec, DT_TRAIN);
    float img[N * 2];
    int32_t lab[N];

    /* no shuffle: file order, batches of 4, 4, then the last partial batch of 2, then 0 */
    DtOptions o = {0};
    loader_ok(&l, &s, &o);
    assert_int_equal(dt_batches_per_epoch(&l, 4), 3);
    assert_int_equal(dt_batches_per_epoch(&l, 5), 2);
    for (int64_t e = 0; e < 2; e++) {
        dt_epoch_begin(&l, e);
        int sizes[3] = {4, 4, 2}, at = 0;
        for (int b = 0; b < 3; b++) {
            assert_int_equal(dt_next_batch(&l, img, lab, 4), sizes[b]);
            for (int k = 0; k < sizes[b]; k++) {
                assert_true(img[2 * k] == (float)((at + k) * 100 + 1));
                assert_int_equal(lab[k], (at + k) % 3);
            }
            at += sizes[b];
        }
        assert_int_equal(dt_next_batch(&l, img, lab, 4), 0);
        assert_int_equal(dt_next_batch(&l, img, lab, 4), 0);
    }
    dt_loader_free(&l);

    /* shuffle: a permutation, the same for the same (seed, epoch), different across
     * epochs and seeds; labels travel with their images */
    int64_t order[3][N];
    o.shuffle = 1;
    o.seed = 42;
    loader_ok(&l, &s, &o);
    loader_ok(&l2, &s, &o);
    for (int e = 0; e < 3; e++) {
        whole_epoch(&l, e, 3, img, lab);
        int seen[N] = {0};
        for (int k = 0; k < N; k++) {
            int i = (int)(img[2 * k] - 1) / 100;
            assert_true(i >= 0 && i < N);
            assert_true(img[2 * k + 1] == img[2 * k] + 1);
            assert_int_equal(lab[k], i % 3);
            seen[i]++;
            order[e][k] = i;
        }
        for (int i = 0; i < N; i++) assert_int_equal(seen[i], 1);
    }
    assert_memory_not_equal(order[0], order[1], sizeof order[0]);
    assert_memory_not_equal(order[1], order[2], sizeof order[0]);
    for (int e = 2; e >= 0; e--) {   /* another loader, epochs in another sequence: same orders */
        whole_epoch(&l2, e, 4, img, lab);
        for (int k = 0; k < N; k++) assert_int_equal((int)(img[2 * k] - 1) / 100, order[e][k]);
    }
    dt_loader_free(&l2);
    o.seed = 43;
    loader_ok(&l2, &s, &o);
    whole_epoch(&l2, 0, 4, img, lab);
    int same = 1;
    for (int k = 0; k < N; k++) same &= (int)(img[2 * k] - 1) / 100 == order[0][k];
    assert_false(same);
    dt_loader_free(&l2);
    dt_loader_free(&l);
    dt_close(&s);
}

static void test_normalize_values(void **state)
{
    (void)state;
    char dir[512], spec[600];
    make_dir(dir, sizeof dir, "norm");
    snprintf(spec, sizeof spec, "npy:%s", dir);
    make_counting_set(dir, 3, 2, 2, 2);
    DtSet s;
    DtLoader l;
    open_ok(&s, spec, DT_TRAIN);
    float img[3 * 8];
    int32_t lab[3];
    DtOptions o = {0};

    assert_int_equal(dt_parse_normalize("100,4", &o, g_err, sizeof g_err), 0);   /* one pair for both channels */
    loader_ok(&l, &s, &o);
    whole_epoch(&l, 0, 3, img, lab);
    for (int i = 0; i < 24; i++) assert_true(img[i] == (s.images[i] - 100.0f) / 4.0f);
    dt_loader_free(&l);

    assert_int_equal(dt_parse_normalize("1,2,0.5,0.25", &o, g_err, sizeof g_err), 0);   /* one pair each */
    loader_ok(&l, &s, &o);
    whole_epoch(&l, 0, 2, img, lab);
    for (int i = 0; i < 3; i++)
        for (int c = 0; c < 2; c++)
            for (int k = 0; k < 4; k++) {
                int at = i * 8 + c * 4 + k;
                assert_true(img[at] == (s.images[at] - (c ? 2.0f : 1.0f)) / (c ? 0.25f : 0.5f));
            }
    dt_loader_free(&l);

    /* the set itself is never changed by a loader */
    for (int i = 0; i < 3; i++) assert_true(s.images[i * 8] == (float)(i * 100 + 1));
    dt_close(&s);
}

/* The shift (dy, dx) with out(y, x) = in(y + dy, x + dx), zero outside; -99 if none fits. */
static int find_shift(const float *in, const float *out, int c, int h, int w, int pad, int *dy, int *dx, float zero)
{
    for (*dy = -pad; *dy <= pad; (*dy)++)
        for (*dx = -pad; *dx <= pad; (*dx)++) {
            int ok = 1;
            for (int ch = 0; ch < c && ok; ch++)
                for (int y = 0; y < h && ok; y++)
                    for (int x = 0; x < w && ok; x++) {
                        int sy = y + *dy, sx = x + *dx;
                        float want = sy >= 0 && sy < h && sx >= 0 && sx < w ? in[(ch * h + sy) * w + sx] : zero;
                        ok = out[(ch * h + y) * w + x] == want;
                    }
            if (ok) return 0;
        }
    return -99;
}

static void test_crop(void **state)
{
    (void)state;
    char dir[512], spec[600];
    make_dir(dir, sizeof dir, "crop");
    snprintf(spec, sizeof spec, "npy:%s", dir);
    enum { N = 4, C = 2, H = 4, W = 5, P = 2 };
    make_counting_set(dir, N, C, H, W);
    DtSet s;
    DtLoader l;
    open_ok(&s, spec, DT_TRAIN);
    float img[N * C * H * W];
    int32_t lab[N];
    DtOptions o = {.seed = 5, .crop_pad = P};
    loader_ok(&l, &s, &o);
    int hits[2 * P + 1][2 * P + 1] = {{0}};
    for (int e = 0; e < 100; e++) {
        whole_epoch(&l, e, 3, img, lab);
        for (int i = 0; i < N; i++) {
            int dy, dx;
            /* every channel moves by the same shift, and what comes in is exactly 0 */
            assert_int_equal(find_shift(s.images + i * C * H * W, img + i * C * H * W, C, H, W, P, &dy, &dx, 0.0f), 0);
            hits[dy + P][dx + P]++;
        }
    }
    for (int a = 0; a <= 2 * P; a++)
        for (int b = 0; b <= 2 * P; b++) assert_true(hits[a][b] > 0);   /* 400 draws over 25 shifts: all appear */
    dt_loader_free(&l);

    /* padding is black before normalization: padded pixels come out as (0 - mean) / std */
    assert_int_equal(dt_parse_normalize("0.5,0.25", &o, g_err, sizeof g_err), 0);
    loader_ok(&l, &s, &o);
    float raw[N * C * H * W];
    DtOptions plain = o;
    plain.norm_count = 0;
    DtLoader lp;
    loader_ok(&lp, &s, &plain);
    whole_epoch(&l, 3, N, img, lab);
    whole_epoch(&lp, 3, N, raw, lab);
    int padded = 0;
    for (int i = 0; i < N * C * H * W; i++) {
        assert_true(img[i] == (raw[i] - 0.5f) / 0.25f);
        padded += raw[i] == 0.0f;
        if (raw[i] == 0.0f) assert_true(img[i] == -2.0f);
    }
    assert_true(padded > 0);
    dt_loader_free(&lp);
    dt_loader_free(&l);
    dt_close(&s);
}

static void test_flip(void **state)
{
    (void)state;
    char dir[512], spec[600];
    make_dir(dir, sizeof dir, "flip");
    snprintf(spec, sizeof spec, "npy:%s", dir);
    enum { N = 5, C = 2, H = 2, W = 3 };
    make_counting_set(dir, N, C, H, W);
    DtSet s;
    DtLoader l;
    open_ok(&s, spec, DT_TRAIN);
    float img[N * C * H * W];
    int32_t lab[N];
    DtOptions o = {.seed = 9, .hflip = 1, .shuffle = 1};
    loader_ok(&l, &s, &o);
    int flipped = 0, kept = 0;
    for (int e = 0; e < 40; e++) {
        whole_epoch(&l, e, 2, img, lab);
        for (int k = 0; k < N; k++) {
            const float *out = img + k * C * H * W;
            int i = (int)(out[0] - 1) / 100;   /* every pixel of image i is i * 100 + 1 + k, mirrored or not */
            const float *in = s.images + i * C * H * W;
            int same = 1, mirror = 1;
            for (int r = 0; r < C * H; r++)
                for (int x = 0; x < W; x++) {
                    same &= out[r * W + x] == in[r * W + x];
                    mirror &= out[r * W + x] == in[r * W + (W - 1 - x)];
                }
            assert_true(same != mirror);   /* exactly one of the two, with all channels alike */
            flipped += mirror;
            kept += same;
        }
    }
    assert_true(flipped > 60 && kept > 60);   /* 200 coin tosses */
    dt_loader_free(&l);
    dt_close(&s);
}

static void test_jitter(void **state)
{
    (void)state;
    char dir[512], spec[600];
    make_dir(dir, sizeof dir, "jitter");
    snprintf(spec, sizeof spec, "npy:%s", dir);
    enum { N = 4, C = 1, H = 3, W = 3, S = C * H * W };
    make_counting_set(dir, N, C, H, W);
    DtSet s;
    DtLoader l;
    open_ok(&s, spec, DT_TRAIN);
    float img[N * S];
    int32_t lab[N];
    const float a = 0.3f;
    DtOptions o = {.seed = 11, .jitter = a};
    loader_ok(&l, &s, &o);
    float min_uc = 1, max_uc = -1, min_ub = 1, max_ub = -1;
    for (int e = 0; e < 50; e++) {
        whole_epoch(&l, e, N, img, lab);
        for (int i = 0; i < N; i++) {
            const float *in = s.images + i * S, *out = img + i * S;
            double m = 0;
            for (int k = 0; k < S; k++) m += in[k];
            m /= S;
            /* out = m + (in - m)(1 + uc) + ub: read uc from two pixels, ub from one, check all */
            double uc = (out[S - 1] - out[0]) / (in[S - 1] - in[0]) - 1;
            double ub = out[0] - m - (in[0] - m) * (1 + uc);
            assert_true(fabs(uc) <= a + 1e-4 && fabs(ub) <= a + 1e-2);
            for (int k = 0; k < S; k++) assert_true(fabs(out[k] - (m + (in[k] - m) * (1 + uc) + ub)) < 1e-2);
            min_uc = fminf(min_uc, (float)uc), max_uc = fmaxf(max_uc, (float)uc);
            min_ub = fminf(min_ub, (float)ub), max_ub = fmaxf(max_ub, (float)ub);
        }
    }
    /* 200 draws cover most of [-a, a] for both */
    assert_true(min_uc < -0.2f && max_uc > 0.2f && min_ub < -0.2f && max_ub > 0.2f);
    dt_loader_free(&l);
    dt_close(&s);
}

/* A loader with every random option on, for the checkpoint tests. */
static void random_loader(DtLoader *l, const DtSet *s, uint64_t seed)
{
    DtOptions o = {.shuffle = 1, .seed = seed, .crop_pad = 1, .hflip = 1, .jitter = 0.2f};
    assert_int_equal(dt_parse_normalize("0.5,0.25", &o, g_err, sizeof g_err), 0);
    loader_ok(l, s, &o);
}

static void test_state_restore(void **state)
{
    (void)state;
    char dir[512], spec[600];
    make_dir(dir, sizeof dir, "restore");
    snprintf(spec, sizeof spec, "npy:%s", dir);
    enum { N = 11, S = 1 * 3 * 3, B = 3 };
    make_counting_set(dir, N, 1, 3, 3);
    DtSet s;
    DtLoader a, b;
    DtLoaderState st;
    open_ok(&s, spec, DT_TRAIN);
    float ia[N * S], ib[N * S];
    int32_t la[N], lb[N];

    /* mid-epoch: save after two batches, restore into a fresh loader, compare what follows */
    random_loader(&a, &s, 77);
    dt_epoch_begin(&a, 4);
    assert_int_equal(dt_next_batch(&a, ia, la, B), B);
    assert_int_equal(dt_next_batch(&a, ia, la, B), B);
    dt_loader_save(&a, &st);
    assert_int_equal(st.epoch, 4);
    assert_int_equal(st.pos, 2 * B);
    random_loader(&b, &s, 77);
    assert_int_equal(dt_loader_restore(&b, &st, g_err, sizeof g_err), 0);
    for (int k = 0; k < 3; k++) {
        int na = dt_next_batch(&a, ia, la, B), nb = dt_next_batch(&b, ib, lb, B);
        assert_int_equal(na, nb);
        assert_memory_equal(ia, ib, (size_t)na * S * sizeof(float));
        assert_memory_equal(la, lb, (size_t)na * sizeof(int32_t));
    }

    /* at an epoch boundary (what the checkpoint of `nnc train` stores): epoch 5 of a
     * loader that ran epochs 0..4 equals epoch 5 of one that starts there */
    dt_loader_free(&b);
    random_loader(&b, &s, 77);
    for (int e = 0; e < 5; e++) whole_epoch(&a, e, B, ia, la);
    whole_epoch(&a, 5, B, ia, la);
    whole_epoch(&b, 5, B, ib, lb);
    assert_memory_equal(ia, ib, sizeof ia);
    assert_memory_equal(la, lb, sizeof la);

    /* the batch size changes nothing but the cut between batches */
    whole_epoch(&b, 5, 4, ib, lb);
    assert_memory_equal(ia, ib, sizeof ia);
    whole_epoch(&b, 6, 4, ib, lb);
    assert_memory_not_equal(ia, ib, sizeof ia);   /* and the next epoch differs */

    /* refusals: another seed, a position past the set */
    DtLoaderState bad = st;
    bad.seed = 78;
    expect_fail(dt_loader_restore(&b, &bad, g_err, sizeof g_err), spec, "data seed is 78 but this run's is 77",
                "resume with the same seed");
    bad = st;
    bad.pos = N + 1;
    expect_fail(dt_loader_restore(&b, &bad, g_err, sizeof g_err), spec, "(epoch 4, sample 12) does not fit a set of 11",
                NULL);
    bad.pos = -1;
    expect_fail(dt_loader_restore(&b, &bad, g_err, sizeof g_err), spec, "does not fit", NULL);

    /* a state saved before any epoch restores to "no epoch begun" */
    DtLoader c;
    random_loader(&c, &s, 77);
    dt_loader_save(&c, &st);
    assert_int_equal(st.epoch, -1);
    assert_int_equal(dt_loader_restore(&b, &st, g_err, sizeof g_err), 0);
    assert_int_equal(dt_next_batch(&b, ib, lb, B), -1);
    dt_loader_free(&c);
    dt_loader_free(&b);
    dt_loader_free(&a);
    dt_close(&s);
}

/* DtPrefetch, with its reader thread and without: the loader's batches, bit for
 * bit and in order, over whole epochs, an epoch left half read, the end read
 * twice, and no epoch begun. */
static void test_prefetch(void **state)
{
    (void)state;
    char dir[512], spec[600];
    make_dir(dir, sizeof dir, "prefetch");
    snprintf(spec, sizeof spec, "npy:%s", dir);
    enum { N = 23, S = 2 * 4 * 4, B = 5 };
    make_counting_set(dir, N, 2, 4, 4);
    DtSet s;
    open_ok(&s, spec, DT_TRAIN);
    float ref[B * S];
    int32_t rlab[B];
    for (int threaded = 0; threaded < 2; threaded++) {
        DtLoader l, r;
        DtPrefetch *p;
        const float *img;
        const int32_t *lab;
        random_loader(&l, &s, 5);
        random_loader(&r, &s, 5);
        assert_int_equal(dt_prefetch_init(&p, &l, B, threaded, g_err, sizeof g_err), 0);
        assert_int_equal(dt_prefetch_threaded(p), threaded);
        assert_int_equal(dt_prefetch_next(p, &img, &lab), -1);   /* no epoch begun */
        assert_non_null(strstr(dt_prefetch_error(p), "no epoch begun"));
        int64_t epochs[] = {0, 3, 1, 1};
        for (int k = 0; k < 4; k++) {
            dt_prefetch_epoch(p, epochs[k]);
            dt_epoch_begin(&r, epochs[k]);
            int batches = k == 2 ? 2 : 5, got;   /* epoch 1 is left after two batches, then run whole */
            for (int b = 0; b < batches; b++) {
                int want = dt_next_batch(&r, ref, rlab, B);
                got = dt_prefetch_next(p, &img, &lab);
                assert_int_equal(got, want);
                assert_int_equal(got, b < 4 ? B : N - 4 * B);
                assert_memory_equal(img, ref, (size_t)got * S * sizeof(float));
                assert_memory_equal(lab, rlab, (size_t)got * sizeof(int32_t));
            }
            if (k == 2) continue;
            assert_int_equal(dt_prefetch_next(p, &img, &lab), 0);
            assert_int_equal(dt_prefetch_next(p, &img, &lab), 0);
        }
        dt_prefetch_free(p);
        dt_loader_free(&r);
        dt_loader_free(&l);
    }
    /* freed in the middle of an epoch, the reader waiting on a full slot */
    DtLoader l;
    DtPrefetch *p;
    const float *img;
    const int32_t *lab;
    random_loader(&l, &s, 5);
    assert_int_equal(dt_prefetch_init(&p, &l, B, 1, g_err, sizeof g_err), 0);
    dt_prefetch_epoch(p, 0);
    assert_int_equal(dt_prefetch_next(p, &img, &lab), B);
    dt_prefetch_free(p);
    dt_prefetch_free(NULL);
    dt_loader_free(&l);
    dt_close(&s);
}

/* ---- the real thing ---- */

static void test_fashion_mnist(void **state)
{
    (void)state;
    struct stat st;
    if (stat(FASHION_DIR, &st) != 0) skip();   /* Debian's dataset-fashion-mnist is not installed */
    const char *spec = "fashion-mnist:" FASHION_DIR;
    assert_true(dt_has_test(spec));
    DtSplit splits[2] = {DT_TRAIN, DT_TEST};
    int64_t sizes[2] = {60000, 10000};
    for (int k = 0; k < 2; k++) {
        DtSet s;
        open_ok(&s, spec, splits[k]);
        assert_int_equal(s.n, sizes[k]);
        assert_int_equal(s.c, 1);
        assert_int_equal(s.h, 28);
        assert_int_equal(s.w, 28);
        int64_t count[10] = {0};
        for (int64_t i = 0; i < s.n; i++) {
            assert_true(s.labels[i] >= 0 && s.labels[i] < 10);
            count[s.labels[i]]++;
        }
        for (int c = 0; c < 10; c++) assert_int_equal(count[c], s.n / 10);   /* Fashion-MNIST is balanced */
        float lo = 1, hi = 0;
        for (int64_t i = 0; i < s.n * 784; i++) lo = fminf(lo, s.images[i]), hi = fmaxf(hi, s.images[i]);
        assert_true(lo == 0.0f && hi == 1.0f);
        if (k == 1) {   /* one augmented, shuffled epoch over the test split, as a smoke test */
            DtLoader l;
            DtOptions o = {.shuffle = 1, .seed = 1, .crop_pad = 4, .hflip = 1, .jitter = 0.1f};
            assert_int_equal(dt_parse_normalize("0.286,0.353", &o, g_err, sizeof g_err), 0);
            loader_ok(&l, &s, &o);
            static float img[256 * 784];
            static int32_t lab[256];
            dt_epoch_begin(&l, 0);
            int64_t total = 0, batches = 0;
            int got;
            while ((got = dt_next_batch(&l, img, lab, 256)) > 0) total += got, batches++;
            assert_int_equal(total, 10000);
            assert_int_equal(batches, dt_batches_per_epoch(&l, 256));
            assert_int_equal(got, 0);
            dt_loader_free(&l);
        }
        dt_close(&s);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_normalize),
        cmocka_unit_test(test_loader_option_errors),
        cmocka_unit_test(test_check_classes),
        cmocka_unit_test(test_order_and_batches),
        cmocka_unit_test(test_normalize_values),
        cmocka_unit_test(test_crop),
        cmocka_unit_test(test_flip),
        cmocka_unit_test(test_jitter),
        cmocka_unit_test(test_state_restore),
        cmocka_unit_test(test_prefetch),
        cmocka_unit_test(test_fashion_mnist),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
