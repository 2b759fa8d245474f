/*
 * test_sobol.c — Sobol sequences (gpunas/sobol.h).
 *
 * Checks: the unscrambled sequence equals scipy.stats.qmc.Sobol(scramble=False)
 * (first points of dims 0..7 verbatim; a position-weighted checksum of the first 4096
 * points of all 256 dimensions, computed with scipy 1.17.1 and pasted below); skip()
 * lands where stepping does; scrambled points lie in [0,1), every 1-D projection of
 * the first 2^k points (and of the next 2^k) has exactly one point per 1/2^k
 * interval, dims 0 and 1 form a (0,m,2)-net; the same seed gives the same points,
 * different seeds different points; the scramble's first point is uniform over seeds;
 * bad dimensions are one-line errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpunas/sobol.h"

/* scipy.stats.qmc.Sobol(256, scramble=False).random(4096), scipy 1.17.1, bits=30:
 * points 0..7 of dims 0..7 as x * 2^30 */
static const uint32_t ref_first[8][8] = {
    {0, 0, 0, 0, 0, 0, 0, 0},
    {536870912, 536870912, 536870912, 536870912, 536870912, 536870912, 536870912, 536870912},
    {805306368, 268435456, 268435456, 268435456, 805306368, 805306368, 268435456, 805306368},
    {268435456, 805306368, 805306368, 805306368, 268435456, 268435456, 805306368, 268435456},
    {402653184, 402653184, 671088640, 939524096, 402653184, 134217728, 402653184, 939524096},
    {939524096, 939524096, 134217728, 402653184, 939524096, 671088640, 939524096, 402653184},
    {671088640, 134217728, 939524096, 671088640, 671088640, 939524096, 134217728, 134217728},
    {134217728, 671088640, 402653184, 134217728, 134217728, 402653184, 671088640, 671088640},
};
/* per dim j: sum over i < 4096 of (i + 1) * (x_ij * 2^30), mod 2^64 */
static const uint64_t ref_checksum[256] = {
    0x0010007ff0000000ULL, 0x001001fff0000000ULL, 0x0010007ff0000000ULL, 0x001000fff0000000ULL,
    0x001000fff0000000ULL, 0x001000fff0000000ULL, 0x001000fff0000000ULL, 0x0010007ff0000000ULL,
    0x0010007ff0000000ULL, 0x0010007ff0000000ULL, 0x0010017ff0000000ULL, 0x0010007ff0000000ULL,
    0x001000fff0000000ULL, 0x0010007ff0000000ULL, 0x0010007ff0000000ULL, 0x0010017ff0000000ULL,
    0x001000fff0000000ULL, 0x0010017ff0000000ULL, 0x001000fff0000000ULL, 0x001001fff0000000ULL,
    0x0010017ff0000000ULL, 0x001000fff0000000ULL, 0x0010007ff0000000ULL, 0x0010007ff0000000ULL,
    0x001000fff0000000ULL, 0x0010017ff0000000ULL, 0x0010017ff0000000ULL, 0x0010007ff0000000ULL,
    0x001001fff0000000ULL, 0x0010017ff0000000ULL, 0x0010007ff0000000ULL, 0x001000fff0000000ULL,
    0x001000fff0000000ULL, 0x001000fff0000000ULL, 0x0010017ff0000000ULL, 0x0010017ff0000000ULL,
    0x0010007ff0000000ULL, 0x001000fff0000000ULL, 0x001000fff0000000ULL, 0x001000fff0000000ULL,
    0x001000fff0000000ULL, 0x001000fff0000000ULL, 0x0010017ff0000000ULL, 0x0010007ff0000000ULL,
    0x0010007ff0000000ULL, 0x0010017ff0000000ULL, 0x0010017ff0000000ULL, 0x001000fff0000000ULL,
    0x001000fff0000000ULL, 0x0010007ff0000000ULL, 0x0010007ff0000000ULL, 0x0010017ff0000000ULL,
    0x001000fff0000000ULL, 0x001000fff0000000ULL, 0x001000fff0000000ULL, 0x0010007ff0000000ULL,
    0x0010007ff0000000ULL, 0x0010007ff0000000ULL, 0x0010007ff0000000ULL, 0x0010007ff0000000ULL,
    0x0010017ff0000000ULL, 0x0010007ff0000000ULL, 0x0010007ff0000000ULL, 0x001000fff0000000ULL,
    0x0010007ff0000000ULL, 0x0010017ff0000000ULL, 0x0010007ff0000000ULL, 0x001000fff0000000ULL,
    0x0010007ff0000000ULL, 0x001000fff0000000ULL, 0x0010017ff0000000ULL, 0x001000fff0000000ULL,
    0x0010007ff0000000ULL, 0x0010007ff0000000ULL, 0x0010007ff0000000ULL, 0x001000fff0000000ULL,
    0x001001fff0000000ULL, 0x0010017ff0000000ULL, 0x0010017ff0000000ULL, 0x0010017ff0000000ULL,
    0x0010017ff0000000ULL, 0x001001fff0000000ULL, 0x0010007ff0000000ULL, 0x001000fff0000000ULL,
    0x0010007ff0000000ULL, 0x001000fff0000000ULL, 0x0010007ff0000000ULL, 0x0010007ff0000000ULL,
    0x001000fff0000000ULL, 0x001000fff0000000ULL, 0x001000fff0000000ULL, 0x001000fff0000000ULL,
    0x0010007ff0000000ULL, 0x0010007ff0000000ULL, 0x0010007ff0000000ULL, 0x0010007ff0000000ULL,
    0x001000fff0000000ULL, 0x0010007ff0000000ULL, 0x001000fff0000000ULL, 0x0010017ff0000000ULL,
    0x0010007ff0000000ULL, 0x001000fff0000000ULL, 0x0010007ff0000000ULL, 0x001000fff0000000ULL,
    0x0010007ff0000000ULL, 0x001000fff0000000ULL, 0x001000fff0000000ULL, 0x001000fff0000000ULL,
    0x0010007ff0000000ULL, 0x001000fff0000000ULL, 0x001000fff0000000ULL, 0x0010007ff0000000ULL,
    0x001000fff0000000ULL, 0x0010007ff0000000ULL, 0x001000fff0000000ULL, 0x0010017ff0000000ULL,
    0x001000fff0000000ULL, 0x0010017ff0000000ULL, 0x0010007ff0000000ULL, 0x0010007ff0000000ULL,
    0x001000fff0000000ULL, 0x0010017ff0000000ULL, 0x0010007ff0000000ULL, 0x001000fff0000000ULL,
    0x0010007ff0000000ULL, 0x001000fff0000000ULL, 0x001000fff0000000ULL, 0x001000fff0000000ULL,
    0x001000fff0000000ULL, 0x0010007ff0000000ULL, 0x001001fff0000000ULL, 0x0010017ff0000000ULL,
    0x0010017ff0000000ULL, 0x0010017ff0000000ULL, 0x001000fff0000000ULL, 0x0010017ff0000000ULL,
    0x001001fff0000000ULL, 0x001001fff0000000ULL, 0x001001fff0000000ULL, 0x001000fff0000000ULL,
    0x001000fff0000000ULL, 0x0010017ff0000000ULL, 0x0010017ff0000000ULL, 0x001000fff0000000ULL,
    0x001000fff0000000ULL, 0x001000fff0000000ULL, 0x0010007ff0000000ULL, 0x001000fff0000000ULL,
    0x0010007ff0000000ULL, 0x001000fff0000000ULL, 0x0010007ff0000000ULL, 0x001000fff0000000ULL,
    0x001000fff0000000ULL, 0x001000fff0000000ULL, 0x0010007ff0000000ULL, 0x0010007ff0000000ULL,
    0x0010007ff0000000ULL, 0x0010007ff0000000ULL, 0x001000fff0000000ULL, 0x001000fff0000000ULL,
    0x001000fff0000000ULL, 0x0010007ff0000000ULL, 0x001000fff0000000ULL, 0x0010007ff0000000ULL,
    0x0010007ff0000000ULL, 0x0010007ff0000000ULL, 0x0010007ff0000000ULL, 0x0010007ff0000000ULL,
    0x0010007ff0000000ULL, 0x0010007ff0000000ULL, 0x0010007ff0000000ULL, 0x001000fff0000000ULL,
    0x0010007ff0000000ULL, 0x0010007ff0000000ULL, 0x0010007ff0000000ULL, 0x0010007ff0000000ULL,
    0x0010007ff0000000ULL, 0x0010007ff0000000ULL, 0x0010007ff0000000ULL, 0x0010007ff0000000ULL,
    0x001000fff0000000ULL, 0x001000fff0000000ULL, 0x0010017ff0000000ULL, 0x0010007ff0000000ULL,
    0x001000fff0000000ULL, 0x001000fff0000000ULL, 0x0010007ff0000000ULL, 0x001000fff0000000ULL,
    0x0010007ff0000000ULL, 0x0010007ff0000000ULL, 0x001000fff0000000ULL, 0x001000fff0000000ULL,
    0x0010007ff0000000ULL, 0x001000fff0000000ULL, 0x0010007ff0000000ULL, 0x0010007ff0000000ULL,
    0x0010007ff0000000ULL, 0x001000fff0000000ULL, 0x0010007ff0000000ULL, 0x001000fff0000000ULL,
    0x001000fff0000000ULL, 0x001000fff0000000ULL, 0x001000fff0000000ULL, 0x001000fff0000000ULL,
    0x0010017ff0000000ULL, 0x0010007ff0000000ULL, 0x001000fff0000000ULL, 0x0010017ff0000000ULL,
    0x0010007ff0000000ULL, 0x001000fff0000000ULL, 0x001000fff0000000ULL, 0x0010007ff0000000ULL,
    0x0010007ff0000000ULL, 0x0010017ff0000000ULL, 0x001000fff0000000ULL, 0x001000fff0000000ULL,
    0x0010007ff0000000ULL, 0x001000fff0000000ULL, 0x0010007ff0000000ULL, 0x001000fff0000000ULL,
    0x001000fff0000000ULL, 0x0010007ff0000000ULL, 0x0010017ff0000000ULL, 0x0010007ff0000000ULL,
    0x0010017ff0000000ULL, 0x0010017ff0000000ULL, 0x001000fff0000000ULL, 0x001000fff0000000ULL,
    0x0010017ff0000000ULL, 0x0010007ff0000000ULL, 0x0010007ff0000000ULL, 0x001000fff0000000ULL,
    0x0010017ff0000000ULL, 0x0010007ff0000000ULL, 0x0010007ff0000000ULL, 0x0010007ff0000000ULL,
    0x001000fff0000000ULL, 0x001000fff0000000ULL, 0x001000fff0000000ULL, 0x001000fff0000000ULL,
    0x001000fff0000000ULL, 0x0010017ff0000000ULL, 0x0010007ff0000000ULL, 0x001000fff0000000ULL,
    0x0010007ff0000000ULL, 0x0010007ff0000000ULL, 0x001000fff0000000ULL, 0x001000fff0000000ULL,
    0x0010007ff0000000ULL, 0x0010007ff0000000ULL, 0x001000fff0000000ULL, 0x001000fff0000000ULL,
    0x001001fff0000000ULL, 0x0010027ff0000000ULL, 0x001001fff0000000ULL, 0x001001fff0000000ULL,
};

static double *points(int dim, uint64_t seed, uint64_t skip, int n)
{
    gn_sobol *s;
    gn_error err;
    assert_int_equal(gn_sobol_create(dim, seed, &s, &err), 0);
    gn_sobol_skip(s, skip);
    double *u = malloc(sizeof(double) * (size_t)dim * n);
    for (int i = 0; i < n; i++)
        gn_sobol_next(s, u + (size_t)i * dim);
    assert_int_equal(gn_sobol_index(s), skip + (uint64_t)n);
    gn_sobol_free(s);
    return u;
}

static void test_unscrambled_equals_scipy(void **state)
{
    const int n = 4096, d = GN_SOBOL_MAX_DIM;
    double *u = points(d, 0, 0, n);
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 8; j++)
            assert_true(u[(size_t)i * d + j] * 0x1p30 == (double)ref_first[i][j]);
    for (int j = 0; j < d; j++) {
        uint64_t cs = 0;
        for (int i = 0; i < n; i++) {
            double x = u[(size_t)i * d + j] * 0x1p30;
            assert_true(x == floor(x)); /* exactly a multiple of 2^-30 this early */
            cs += (uint64_t)(i + 1) * (uint64_t)x;
        }
        if (cs != ref_checksum[j])
            fail_msg("dimension %d differs from scipy", j);
    }
    free(u);
}

static void test_skip_equals_stepping(void **state)
{
    for (uint64_t seed = 0; seed < 3; seed++) {
        double *a = points(7, seed, 0, 1500);
        double *b = points(7, seed, 1000, 500);
        assert_memory_equal(a + 1000 * 7, b, sizeof(double) * 7 * 500);
        free(a);
        free(b);
    }
    /* index reports the position; skipping a fresh one to it reproduces the state */
    gn_sobol *s, *t;
    gn_error err;
    assert_int_equal(gn_sobol_create(5, 9, &s, &err), 0);
    assert_int_equal(gn_sobol_create(5, 9, &t, &err), 0);
    double u[5], v[5];
    for (int i = 0; i < 37; i++)
        gn_sobol_next(s, u);
    assert_int_equal(gn_sobol_dim(s), 5);
    gn_sobol_skip(t, gn_sobol_index(s));
    gn_sobol_next(s, u);
    gn_sobol_next(t, v);
    assert_memory_equal(u, v, sizeof u);
    gn_sobol_free(s);
    gn_sobol_free(t);
}

/* Every 1-D projection of the n = 2^k points has one point per interval of width 1/n. */
static void assert_stratified(const double *u, int dim, int n)
{
    char *hit = malloc((size_t)n);
    for (int j = 0; j < dim; j++) {
        memset(hit, 0, (size_t)n);
        for (int i = 0; i < n; i++) {
            double x = u[(size_t)i * dim + j];
            assert_true(x >= 0.0 && x < 1.0);
            int b = (int)(x * n);
            if (hit[b])
                fail_msg("dim %d: two of the first %d points in interval %d", j, n, b);
            hit[b] = 1;
        }
    }
    free(hit);
}

/* dims (0, 1) of the 2^m points: every elementary box [a/2^p,(a+1)/2^p) x
 * [b/2^q,(b+1)/2^q) with p + q = m holds exactly one point. */
static void assert_net_2d(const double *u, int dim, int m)
{
    int n = 1 << m;
    int *cnt = malloc(sizeof(int) * (size_t)n);
    for (int p = 0; p <= m; p++) {
        int q = m - p;
        memset(cnt, 0, sizeof(int) * (size_t)n);
        for (int i = 0; i < n; i++) {
            int a = (int)(u[(size_t)i * dim] * (1 << p)), b = (int)(u[(size_t)i * dim + 1] * (1 << q));
            cnt[(a << q) | b]++;
        }
        for (int k = 0; k < n; k++)
            if (cnt[k] != 1)
                fail_msg("2-D net broken for p=%d q=%d: box %d holds %d points", p, q, k, cnt[k]);
    }
    free(cnt);
}

static void test_stratification(void **state)
{
    const uint64_t seeds[] = {0, 1, 42, 0xdeadbeefULL};
    for (size_t si = 0; si < sizeof seeds / sizeof seeds[0]; si++) {
        const int d = GN_SOBOL_MAX_DIM;
        double *u = points(d, seeds[si], 0, 4096);
        for (int k = 0; k <= 12; k++)
            assert_stratified(u, d, 1 << k);
        assert_net_2d(u, d, 12);
        free(u);
        u = points(d, seeds[si], 4096, 4096); /* the next block of 2^12 */
        assert_stratified(u, d, 4096);
        assert_net_2d(u, d, 12);
        free(u);
    }
}

static void test_seeds(void **state)
{
    const int d = 40, n = 256;
    double *a = points(d, 7, 0, n), *b = points(d, 7, 0, n), *c = points(d, 8, 0, n), *z = points(d, 0, 0, n);
    assert_memory_equal(a, b, sizeof(double) * d * n);
    int same_c = 0, same_z = 0;
    for (int i = 0; i < d * n; i++) {
        same_c += a[i] == c[i];
        same_z += a[i] == z[i];
    }
    assert_true(same_c < d * n / 100);
    assert_true(same_z < d * n / 100);
    for (int j = 0; j < d; j++)
        assert_true(a[j] != 0.0); /* a scrambled first point is not the origin */
    free(a);
    free(b);
    free(c);
    free(z);

    /* over seeds, the first point's coordinates are uniform: mean 1/2, var 1/12 */
    const int seeds = 2000;
    double sum = 0, sum2 = 0;
    for (int s = 1; s <= seeds; s++) {
        double *u = points(3, (uint64_t)s, 0, 1);
        for (int j = 0; j < 3; j++) {
            sum += u[j];
            sum2 += u[j] * u[j];
        }
        free(u);
    }
    double mean = sum / (3 * seeds), var = sum2 / (3 * seeds) - mean * mean;
    assert_true(fabs(mean - 0.5) < 0.02);
    assert_true(fabs(var - 1.0 / 12) < 0.01);
}

static void test_errors(void **state)
{
    gn_sobol *s = (gn_sobol *)1;
    gn_error err;
    assert_int_not_equal(gn_sobol_create(0, 1, &s, &err), 0);
    assert_null(s);
    assert_non_null(strstr(err.msg, "dimension 0 out of range [1, 256]"));
    assert_int_not_equal(gn_sobol_create(GN_SOBOL_MAX_DIM + 1, 0, &s, &err), 0);
    assert_null(strchr(err.msg, '\n'));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unscrambled_equals_scipy),
        cmocka_unit_test(test_skip_equals_stepping),
        cmocka_unit_test(test_stratification),
        cmocka_unit_test(test_seeds),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
