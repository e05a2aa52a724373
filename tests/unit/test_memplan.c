/* test_memplan.c: the workspace planner (passes/memplan.c).
 *
 * Hand cases with a known optimum, and random lifetimes checked for the
 * planner's contract: buffers live at the same time never overlap, offsets are
 * aligned, and the workspace is at least the lower bound (and equal to it when
 * the lifetimes are a chain, where greedy-by-size is optimal). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "passes/memplan.h"

#include <stdbool.h>
#include <stdlib.h>

static void check_no_overlap(const MpBuffer *b, int32_t n, int64_t align, int64_t total)
{
    for (int32_t i = 0; i < n; i++) {
        assert_int_equal(b[i].offset % align, 0);
        assert_true(b[i].offset + b[i].size <= total);
        for (int32_t j = i + 1; j < n; j++) {
            bool time = b[i].first <= b[j].last && b[j].first <= b[i].last;
            bool space = b[i].offset < b[j].offset + b[j].size && b[j].offset < b[i].offset + b[i].size;
            if (time && space && b[i].size && b[j].size)
                fail_msg("buffers %d [%d,%d]@%lld+%lld and %d [%d,%d]@%lld+%lld overlap", i, b[i].first, b[i].last,
                         (long long)b[i].offset, (long long)b[i].size, j, b[j].first, b[j].last,
                         (long long)b[j].offset, (long long)b[j].size);
        }
    }
}

/* a -> b -> c -> d: each buffer lives while the next is made; two slots suffice. */
static void test_chain(void **state)
{
    (void)state;
    MpBuffer b[4] = {{1000, 0, 1, 0}, {1000, 1, 2, 0}, {1000, 2, 3, 0}, {1000, 3, 3, 0}};
    int64_t total = mp_plan(b, 4, 64);
    check_no_overlap(b, 4, 64, total);
    assert_int_equal(total, 2 * 1024);
    assert_int_equal(mp_lower_bound(b, 4, 64), 2 * 1024);
    assert_int_equal(b[0].offset, b[2].offset);  /* the slot is reused */
}

/* A residual: x lives across the branch; the branch's buffers reuse each other. */
static void test_residual(void **state)
{
    (void)state;
    /* x [0,3]; y1 = f(x) [1,2]; y2 = g(y1) [2,3]; z = x + y2 [3,3] */
    MpBuffer b[4] = {{4096, 0, 3, 0}, {4096, 1, 2, 0}, {4096, 2, 3, 0}, {4096, 3, 3, 0}};
    int64_t total = mp_plan(b, 4, 64);
    check_no_overlap(b, 4, 64, total);
    assert_int_equal(mp_lower_bound(b, 4, 64), 3 * 4096);  /* steps 2 and 3: three live at once */
    assert_int_equal(total, 3 * 4096);                     /* z takes y1's place */
}

/* Sizes round up to the alignment; empty buffers take no space. */
static void test_alignment_and_empty(void **state)
{
    (void)state;
    MpBuffer b[3] = {{1, 0, 0, 0}, {65, 0, 0, 0}, {0, 0, 0, 0}};
    int64_t total = mp_plan(b, 3, 64);
    check_no_overlap(b, 3, 64, total);
    assert_int_equal(total, 64 + 128);
    assert_int_equal(mp_lower_bound(b, 3, 64), 192);
    assert_int_equal(mp_plan(NULL, 0, 64), 0);
}

/* Big before small: a large long-lived buffer and small short ones fill around it. */
static void test_large_first(void **state)
{
    (void)state;
    MpBuffer b[3] = {{64, 0, 0, 0}, {6400, 0, 2, 0}, {64, 1, 2, 0}};
    int64_t total = mp_plan(b, 3, 64);
    check_no_overlap(b, 3, 64, total);
    assert_int_equal(total, 6400 + 64);
    assert_int_equal(b[1].offset, 0);
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Random lifetimes: the contract holds, and the plan stays near the bound. */
static void test_random(void **state)
{
    (void)state;
    uint64_t s = 0x5eed;
    for (int t = 0; t < 200; t++) {
        int32_t n = 1 + (int32_t)(rng_next(&s) % 120), steps = 1 + (int32_t)(rng_next(&s) % 80);
        MpBuffer *b = calloc((size_t)n, sizeof *b);
        for (int32_t i = 0; i < n; i++) {
            b[i].first = (int32_t)(rng_next(&s) % (uint64_t)steps);
            b[i].last = b[i].first + (int32_t)(rng_next(&s) % 6);
            b[i].size = (int64_t)(rng_next(&s) % 100000);
        }
        int64_t total = mp_plan(b, n, 64), lb = mp_lower_bound(b, n, 64);
        check_no_overlap(b, n, 64, total);
        assert_true(total >= lb);
        assert_true(total <= 2 * lb + 64);  /* greedy's worst case is far looser; this guards regressions */
        free(b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chain),
        cmocka_unit_test(test_residual),
        cmocka_unit_test(test_alignment_and_empty),
        cmocka_unit_test(test_large_first),
        cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
