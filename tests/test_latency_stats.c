/*
 * test_latency_stats.c — the numerical parts of the latency module, on synthetic
 * data with hand-computed answers: summary statistics (median, percentiles, CV,
 * median confidence interval, half medians), the stability rule, the calibration
 * fits (known coefficients recovered; model choice) and the log-linear fallback.
 * No timing here: nothing in this file depends on the machine's speed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpunas/latency.h"
#include "gpunas/latprofile.h"
#include "gpunas/rng.h"

#define NEAR(a, b, tol) assert_true(fabs((a) - (b)) <= (tol))

static void test_stats_small(void **state)
{
    double x[] = {5, 1, 4, 2, 3};
    gn_lat_stats s;
    gn_error err;
    assert_int_equal(gn_lat_stats_compute(x, 5, &s, &err), 0);
    assert_int_equal(s.n, 5);
    NEAR(s.median, 3, 1e-12);
    NEAR(s.mean, 3, 1e-12);
    NEAR(s.p90, 4.6, 1e-12);  /* position 0.9*4 = 3.6 between 4 and 5 */
    NEAR(s.p99, 4.96, 1e-12); /* position 3.96 */
    NEAR(s.min, 1, 0);
    NEAR(s.max, 5, 0);
    NEAR(s.stddev, sqrt(2.5), 1e-12); /* sum of squares 10 / (n-1) */
    NEAR(s.cv, sqrt(2.5) / 3, 1e-12);
    NEAR(s.median_first, 3, 1e-12);  /* {5, 1} */
    NEAR(s.median_second, 3, 1e-12); /* {4, 2, 3} */
    NEAR(s.drift, 0, 1e-12);
    NEAR(s.p10, 1.4, 1e-12); /* position 0.4 */
    NEAR(s.p25, 2, 1e-12);
    NEAR(s.p75, 4, 1e-12);
    NEAR(s.rcv, 2 / (1.349 * 3), 1e-12);
    assert_int_equal(s.blocks, 5); /* fewer runs than blocks: one run per block */
    NEAR(s.block_lo, 1, 0);
    NEAR(s.block_hi, 5, 0);
    NEAR(s.med_lo, 1, 0); /* n = 5: ranks clamp to 1 and 5 */
    NEAR(s.med_hi, 5, 0);
    /* the input is not reordered */
    assert_true(x[0] == 5 && x[1] == 1 && x[4] == 3);
}

static void test_stats_hundred(void **state)
{
    double x[100];
    for (int i = 0; i < 100; i++)
        x[i] = i + 1;
    gn_lat_stats s;
    gn_error err;
    assert_int_equal(gn_lat_stats_compute(x, 100, &s, &err), 0);
    NEAR(s.median, 50.5, 1e-12);
    NEAR(s.p90, 90.1, 1e-9);  /* position 89.1 */
    NEAR(s.p99, 99.01, 1e-9); /* position 98.01 */
    NEAR(s.mean, 50.5, 1e-12);
    NEAR(s.stddev, sqrt(100.0 * 101 / 12), 1e-9); /* var of 1..n, n-1 denominator: n(n+1)/12 */
    NEAR(s.median_first, 25.5, 1e-12);
    NEAR(s.median_second, 75.5, 1e-12);
    NEAR(s.drift, 50 / 50.5, 1e-12);
    NEAR(s.p10, 10.9, 1e-9);  /* position 9.9 */
    NEAR(s.p25, 25.75, 1e-9); /* position 24.75 */
    NEAR(s.p75, 75.25, 1e-9);
    NEAR(s.rcv, 49.5 / (1.349 * 50.5), 1e-12);
    /* ten blocks of ten runs in run order: medians 5.5, 15.5, ..., 95.5 */
    assert_int_equal(s.blocks, 10);
    NEAR(s.block_lo, 5.5, 1e-12);
    NEAR(s.block_hi, 95.5, 1e-12);
    /* 0.98 sqrt(100) = 9.8: ranks floor(50 - 9.8) = 40 and ceil(51 + 9.8) = 61 */
    NEAR(s.med_lo, 40, 0);
    NEAR(s.med_hi, 61, 0);

    double one = 7;
    assert_int_equal(gn_lat_stats_compute(&one, 1, &s, &err), 0);
    NEAR(s.median, 7, 0);
    NEAR(s.stddev, 0, 0);
    NEAR(s.p99, 7, 0);

    assert_int_not_equal(gn_lat_stats_compute(x, 0, &s, &err), 0);
    assert_non_null(strstr(err.msg, "no samples"));
    x[3] = NAN;
    assert_int_not_equal(gn_lat_stats_compute(x, 100, &s, &err), 0);
    assert_non_null(strstr(err.msg, "sample 3"));
}

static void test_quantile_even(void **state)
{
    double v[] = {1, 2, 3, 4};
    NEAR(gn_lat_quantile(v, 4, 0.5), 2.5, 1e-12);
    NEAR(gn_lat_quantile(v, 4, 0.25), 1.75, 1e-12); /* numpy.percentile([1,2,3,4], 25) */
    NEAR(gn_lat_quantile(v, 4, 0), 1, 0);
    NEAR(gn_lat_quantile(v, 4, 1), 4, 0);
}

static void test_stability(void **state)
{
    gn_lat_limits lim;
    gn_lat_limits_default(&lim);
    gn_lat_stats s;
    gn_error err;
    char why[300];
    double x[40];
    gn_rng r;
    gn_rng_seed(&r, 3);
    for (int i = 0; i < 40; i++)
        x[i] = 1.0 + 0.01 * gn_rng_uniform(&r); /* 1% noise */
    assert_int_equal(gn_lat_stats_compute(x, 40, &s, &err), 0);
    assert_int_equal(gn_lat_check_stable(&s, &lim, why, sizeof why), 0);

    /* two outliers of 10x: the classic CV is about 0.9, but they are rare stalls
     * (a preempted thread), not noise: the robust CV stays at about 0.3% */
    x[5] = x[30] = 10.0;
    assert_int_equal(gn_lat_stats_compute(x, 40, &s, &err), 0);
    assert_true(s.cv > 0.15);
    assert_true(s.rcv < 0.01);
    assert_int_equal(gn_lat_check_stable(&s, &lim, why, sizeof why), 0);

    /* broad noise, uniform on [0.5, 1.5]: robust CV about 0.5 / 1.349 = 37% */
    for (int i = 0; i < 40; i++)
        x[i] = 0.5 + gn_rng_uniform(&r);
    assert_int_equal(gn_lat_stats_compute(x, 40, &s, &err), 0);
    assert_true(s.rcv > 0.2);
    assert_int_equal(gn_lat_check_stable(&s, &lim, why, sizeof why), 1);
    assert_non_null(strstr(why, "robust coefficient of variation"));
    assert_null(strchr(why, '\n'));

    /* a 20% step in the middle: robust CV 0.2 / (1.349 x 1.1) = 13.5% (passes) but
     * drift 0.2 / 1.1 = 18% */
    for (int i = 0; i < 40; i++)
        x[i] = i < 20 ? 1.0 : 1.2;
    assert_int_equal(gn_lat_stats_compute(x, 40, &s, &err), 0);
    assert_true(s.rcv < 0.15);
    NEAR(s.drift, 0.2 / 1.1, 1e-12);
    NEAR(s.block_lo, 1.0, 0);
    NEAR(s.block_hi, 1.2, 0);
    assert_int_equal(gn_lat_check_stable(&s, &lim, why, sizeof why), 1);
    assert_non_null(strstr(why, "drifted"));
    lim.max_drift = 0.2;
    assert_int_equal(gn_lat_check_stable(&s, &lim, NULL, 0), 0);

    /* too few runs */
    assert_int_equal(gn_lat_stats_compute(x, 5, &s, &err), 0);
    assert_int_equal(gn_lat_check_stable(&s, &lim, why, sizeof why), 1);
    assert_non_null(strstr(why, "only 5 timed runs"));
}

/* y = b + sum_t a_t S_t exactly; the fits must recover a and b. */
static void make_data(gn_rng *r, int n, const double *a, double b, double *sums, double *y, bool const_head)
{
    for (int i = 0; i < n; i++) {
        double *s = &sums[(size_t)i * GN_LAT_NTYPES];
        y[i] = b;
        for (int t = 0; t < GN_LAT_NTYPES; t++) {
            s[t] = 0;
            if (t == GN_LAYER_HEAD)
                s[t] = const_head ? 0.05 : 0.02 + 0.05 * gn_rng_uniform(r);
            else if (t == GN_LAYER_IRB || t == GN_LAYER_FUSED_IRB)
                s[t] = 0.1 + 2.0 * gn_rng_uniform(r);
            else if (t == GN_LAYER_TAIL)
                s[t] = 0.05 + 0.2 * gn_rng_uniform(r);
            y[i] += a[t] * s[t];
        }
    }
}

static void test_fit_recovers(void **state)
{
    gn_rng r;
    gn_rng_seed(&r, 11);
    enum { N = 25 };
    double sums[N * GN_LAT_NTYPES], y[N];
    gn_lat_calib c;
    gn_error err;

    double lin[GN_LAT_NTYPES] = {0};
    for (int t = 0; t < GN_LAT_NTYPES; t++)
        lin[t] = 1.25;
    make_data(&r, N, lin, 0.2, sums, y, false);
    assert_int_equal(gn_lat_fit(sums, y, N, GN_LAT_MODEL_LINEAR, &c, &err), 0);
    NEAR(c.scale[GN_LAYER_IRB], 1.25, 1e-9);
    NEAR(c.intercept_ms, 0.2, 1e-9);
    NEAR(c.fit_max_pct, 0, 1e-6);
    assert_int_equal(c.networks, N);

    double per[GN_LAT_NTYPES] = {0};
    per[GN_LAYER_HEAD] = 0.8;
    per[GN_LAYER_IRB] = 1.3;
    per[GN_LAYER_FUSED_IRB] = 0.9;
    per[GN_LAYER_TAIL] = 1.6;
    make_data(&r, N, per, 0.05, sums, y, false);
    assert_int_equal(gn_lat_fit(sums, y, N, GN_LAT_MODEL_PER_TYPE, &c, &err), 0);
    for (int t = 1; t < GN_LAT_NTYPES; t++)
        if (per[t] != 0)
            NEAR(c.scale[t], per[t], 2e-3 * per[t]); /* the ridge pull is tiny */
    NEAR(c.intercept_ms, 0.05, 2e-3);
    assert_true(c.fit_max_pct < 0.5);
    /* the linear model cannot fit these data as well; calibrate picks per_type */
    gn_lat_calib lc;
    assert_int_equal(gn_lat_fit(sums, y, N, GN_LAT_MODEL_LINEAR, &lc, &err), 0);
    assert_true(lc.fit_mean_abs_pct > 1.0);
    assert_int_equal(gn_lat_calibrate(sums, y, N, &c, &err), 0);
    assert_int_equal(c.model, GN_LAT_MODEL_PER_TYPE);
    assert_true(c.loo_mean_abs_pct < 0.5);
    NEAR(gn_lat_calib_apply(&c, &sums[3 * GN_LAT_NTYPES]), y[3], 1e-3 * y[3]);

    /* a head that is the same in every network is collinear with the intercept:
     * still a determined fit (ridge), with exact predictions */
    make_data(&r, N, per, 0.05, sums, y, true);
    assert_int_equal(gn_lat_fit(sums, y, N, GN_LAT_MODEL_PER_TYPE, &c, &err), 0);
    assert_true(c.fit_max_pct < 0.5);
    NEAR(c.scale[GN_LAYER_IRB], 1.3, 1e-2);

    /* bad input */
    assert_int_not_equal(gn_lat_calibrate(sums, y, 2, &c, &err), 0);
    assert_non_null(strstr(err.msg, "at least 3"));
    y[4] = -1;
    assert_int_not_equal(gn_lat_fit(sums, y, N, GN_LAT_MODEL_LINEAR, &c, &err), 0);
    assert_non_null(strstr(err.msg, "network 4"));
    /* identical networks: the scale is not determined */
    for (int i = 0; i < N; i++) {
        memcpy(&sums[(size_t)i * GN_LAT_NTYPES], sums, GN_LAT_NTYPES * sizeof *sums);
        y[i] = 1.0;
    }
    assert_int_not_equal(gn_lat_fit(sums, y, N, GN_LAT_MODEL_LINEAR, &c, &err), 0);
    assert_non_null(strstr(err.msg, "determine only"));
}

static void test_fallback_fit(void **state)
{
    gn_lat_profile p;
    gn_lat_profile_init(&p);
    gn_error err;
    gn_rng r;
    gn_rng_seed(&r, 5);
    /* log ms = c . (1, log GFLOP, log MB, swish, SE, (k-3)/2, stride 2, residual) */
    const double c[GN_LAT_FB_NCOEF] = {log(0.01), 0.8, 0.3, 0.2, 0.35, 0.1, -0.15, 0.05};
    for (int i = 0; i < 40; i++) {
        gn_lat_entry e = {0};
        int k = gn_rng_below(&r, 2) ? 5 : 3, s2 = (int)gn_rng_below(&r, 2), sw = (int)gn_rng_below(&r, 2),
            se = (int)gn_rng_below(&r, 2) * 8, res = (int)gn_rng_below(&r, 2);
        snprintf(e.key, sizeof e.key, "irb|std|in=%dx8x8|out=16|k=%d|s=%d|pad=1|mid=48|g=1|act=%s|se=%d|res=%d|cls=0|b=1",
                 i + 1, k, s2 + 1, sw ? "swish" : "relu", se, res);
        e.type = GN_LAYER_IRB;
        e.gflop = 0.001 + 0.1 * gn_rng_uniform(&r);
        e.mb = 0.01 + 2 * gn_rng_uniform(&r);
        double f[GN_LAT_FB_NCOEF], z = 0;
        assert_int_equal(gn_lat_fallback_features(e.key, e.gflop, e.mb, f, &err), 0);
        NEAR(f[3], sw, 0);
        NEAR(f[5], (k - 3) / 2.0, 0);
        NEAR(f[6], s2, 0);
        for (int j = 0; j < GN_LAT_FB_NCOEF; j++)
            z += c[j] * f[j];
        e.ms = exp(z);
        assert_int_equal(gn_lat_profile_add(&p, &e, &err), 0);
    }
    gn_lat_entry e = {.type = GN_LAYER_TAIL, .gflop = 0.002, .mb = 1, .ms = 0.04};
    snprintf(e.key, sizeof e.key, "tail|std|in=64x4x4|out=256|k=1|s=1|pad=0|mid=0|g=1|act=relu|se=0|res=0|cls=10|b=1");
    assert_int_equal(gn_lat_profile_add(&p, &e, &err), 0);
    assert_int_not_equal(gn_lat_profile_add(&p, &e, &err), 0); /* duplicate */
    assert_non_null(strstr(err.msg, "already present"));

    assert_int_equal(gn_lat_profile_fit_fallback(&p, &err), 0);
    assert_true(p.have_fallback[GN_LAYER_IRB]);
    for (int j = 0; j < GN_LAT_FB_NCOEF; j++)
        NEAR(p.fallback[GN_LAYER_IRB][j], c[j], 1e-8);
    /* one tail entry: exponent-1 law through it */
    assert_true(p.have_fallback[GN_LAYER_TAIL]);
    NEAR(p.fallback[GN_LAYER_TAIL][1], 1.0, 0);
    double ms;
    assert_int_equal(gn_lat_fallback_ms(&p, GN_LAYER_TAIL, e.key, 0.002, 1, &ms, &err), 0);
    NEAR(ms, 0.04, 1e-12);
    assert_false(p.have_fallback[GN_LAYER_CONV]);
    assert_int_not_equal(gn_lat_fallback_ms(&p, GN_LAYER_CONV, e.key, 0.002, 1, &ms, &err), 0);
    /* a malformed key */
    assert_int_not_equal(gn_lat_fallback_features("irb|std|b=1", 1, 1, (double[GN_LAT_FB_NCOEF]){0}, &err), 0);
    assert_non_null(strstr(err.msg, "no field 'k'"));
    /* table order is by key */
    for (int i = 1; i < p.n_entries; i++)
        assert_true(strcmp(p.entries[i - 1].key, p.entries[i].key) < 0);
    assert_non_null(gn_lat_profile_find(&p, e.key));
    assert_null(gn_lat_profile_find(&p, "irb|std|in=1x8x8"));
    gn_lat_profile_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stats_small),   cmocka_unit_test(test_stats_hundred),
        cmocka_unit_test(test_quantile_even), cmocka_unit_test(test_stability),
        cmocka_unit_test(test_fit_recovers),  cmocka_unit_test(test_fallback_fit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
