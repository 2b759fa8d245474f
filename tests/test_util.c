/*
 * test_util.c — the shared helpers of src/util: the string map every cache uses
 * (against a brute-force list), the monotonic clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/clock.h"
#include "util/strmap.h"

typedef struct {
    double a;
    int64_t b;
} val;

static void test_strmap(void **state)
{
    (void)state;
    assert_null(gn__strmap_new(0));
    gn__strmap *m = gn__strmap_new(sizeof(val));
    assert_non_null(m);
    assert_null(gn__strmap_get(m, "absent")); /* empty map */
    enum { N = 5000 };
    char key[32];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "k%d", i * 7919 % 100003);
        val v = {i * 0.5, -i};
        val *p = gn__strmap_put(m, key, &v);
        assert_non_null(p);
        assert_true(p->a == i * 0.5);
    }
    assert_int_equal(gn__strmap_count(m), N);
    for (int i = 0; i < N; i++) { /* every key found with its value, after all growth */
        snprintf(key, sizeof key, "k%d", i * 7919 % 100003);
        val *p = gn__strmap_get(m, key);
        assert_non_null(p);
        assert_true(p->a == i * 0.5 && p->b == -i);
    }
    assert_null(gn__strmap_get(m, "k1")); /* 1 is not i*7919 mod 100003 for i < N */
    assert_null(gn__strmap_get(m, ""));
    /* overwrite keeps the count */
    val w = {42, 42};
    assert_non_null(gn__strmap_put(m, "k0", &w));
    assert_int_equal(gn__strmap_count(m), N);
    assert_true(((val *)gn__strmap_get(m, "k0"))->b == 42);
    /* iteration visits every key once */
    size_t seen = 0;
    for (size_t i = 0; i < gn__strmap_capacity(m); i++) {
        void *v;
        const char *k = gn__strmap_slot(m, i, &v);
        if (k) {
            assert_ptr_equal(v, gn__strmap_get(m, k));
            seen++;
        }
    }
    assert_int_equal(seen, N);
    /* keys are copied */
    char buf[8] = "tmp";
    assert_non_null(gn__strmap_put(m, buf, &w));
    strcpy(buf, "xyz");
    assert_non_null(gn__strmap_get(m, "tmp"));
    assert_null(gn__strmap_get(m, "xyz"));
    gn__strmap_free(m);
    gn__strmap_free(NULL);
}

static void test_clock(void **state)
{
    (void)state;
    int64_t a = gn__now_ns();
    struct timespec d = {0, 2000000};
    nanosleep(&d, NULL);
    int64_t b = gn__now_ns();
    assert_true(b - a >= 2000000); /* slept 2 ms */
    double s = gn__now_s(), ms = gn__now_ms();
    assert_true(ms >= s * 1e3 - 1 && ms - s * 1e3 < 1000); /* same clock, three units */
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_strmap), cmocka_unit_test(test_clock)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
