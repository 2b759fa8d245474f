/* test_supernet_latency.c — UNAS's latency term on the supernet
 * (gpunas/supernet_latency.h) on the tiny space of test_supernet.c, with a device
 * profile made up here (no measurement): every key any member of the space has gets a
 * made-up table time, and a per-type calibration {a_t, b} is set by hand.
 * Checks:
 *   - for EVERY member d of the space (768), L(onehot(d)) = gn_lat_predict of
 *     gn_supernet_decode(d) to 1e-9 relative: the per-candidate keys equal the
 *     standalone network's, whatever the other choices;
 *   - the same with the fused_irb k5 keys left out of the table (fallback fitted):
 *     the fallback count (2 positions x 4 candidates of stage 2) and again every d;
 *   - for random softmax distributions q, L(q) = sum_d q(d) predict(decode(d))
 *     (L is multilinear in independent categoricals);
 *   - dL/dzeta against central finite differences (exact up to rounding: L has degree
 *     1 in every entry);
 *   - one-line errors: an uncalibrated profile, a wrong zeta length, a NaN. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gpunas/backend.h"
#include "gpunas/latprofile.h"
#include "gpunas/rng.h"
#include "gpunas/space.h"
#include "gpunas/supernet.h"
#include "gpunas/supernet_latency.h"
#include "testutil.h"


#define MAXCAT 16

typedef struct {
    gn_space *space;
    gn_backend *be;
    gn_supernet *sn;
    int M, n, K[MAXCAT], off[MAXCAT];
    long members;
} fixture;

static void setup(fixture *f)
{
    gn_error err;
    memset(f, 0, sizeof *f);
    assert_int_equal(gn_space_parse(tu_tiny_space, "tiny.json", &f->space, &err), 0);
    assert_int_equal(gn_backend_create("ref", &f->be, &err), 0);
    if (gn_supernet_create(f->space, f->be, NULL, &f->sn, &err))
        fail_msg("%s", err.msg);
    f->M = gn_supernet_num_cats(f->sn);
    f->n = gn_supernet_n(f->sn);
    assert_true(f->M <= MAXCAT);
    f->members = 1;
    for (int m = 0; m < f->M; m++) {
        f->K[m] = gn_supernet_get_cat(f->sn, m)->k;
        f->off[m] = gn_supernet_get_cat(f->sn, m)->offset;
        f->members *= f->K[m];
    }
    assert_int_equal(f->members, 768); /* 2*3 (s1) x 2*2*2*2 (s2) x 2*2*2 (s3) */
}

static void teardown(fixture *f)
{
    gn_supernet_free(f->sn);
    gn_backend_destroy(f->be);
    gn_space_free(f->space);
}

/* member number i -> d (mixed radix) */
static void member(const fixture *f, long i, int *d)
{
    for (int m = f->M - 1; m >= 0; m--) {
        d[m] = (int)(i % f->K[m]);
        i /= f->K[m];
    }
}

static void onehot(const fixture *f, const int *d, double *z)
{
    memset(z, 0, sizeof *z * (size_t)f->n);
    for (int m = 0; m < f->M; m++)
        z[f->off[m] + d[m]] = 1.0;
}

/* ------------------------------------------------------------------ the profile */
static double made_up_ms(const char *key, double gflop)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const char *c = key; *c; c++)
        h = (h ^ (unsigned char)*c) * 1099511628211ull;
    return 0.01 + 40.0 * gflop + 0.1 * (double)(h % 1000) / 1000.0;
}

static bool omitted(const gn_layer *L, const char *key, bool omit_k5)
{
    return omit_k5 && L->type == GN_LAYER_FUSED_IRB && strstr(key, "|k=5|");
}

/* Every key of every member (except the omitted), made-up times, a hand calibration. */
static void make_profile(const fixture *f, gn_lat_profile *p, bool omit_k5)
{
    gn_error err;
    gn_lat_profile_init(p);
    p->batch = 1;
    int d[MAXCAT];
    for (long i = 0; i < f->members; i++) {
        member(f, i, d);
        gn_arch *a;
        assert_int_equal(gn_supernet_decode(f->sn, d, &a, &err), 0);
        for (int li = 1; li < a->n_layers; li++) {
            gn_lat_entry e;
            memset(&e, 0, sizeof e);
            assert_int_equal(gn_lat_key(a, li, 1, e.key, sizeof e.key, &err), 0);
            if (omitted(&a->layers[li], e.key, omit_k5) || gn_lat_profile_find(p, e.key))
                continue;
            e.type = a->layers[li].type;
            e.gflop = gn_lat_layer_flops(&a->layers[li], 1) / 1e9;
            e.mb = gn_lat_layer_bytes(&a->layers[li], 1) / 1e6;
            e.ms = made_up_ms(e.key, e.gflop);
            e.cv = 0.01;
            assert_int_equal(gn_lat_profile_add(p, &e, &err), 0);
        }
        gn_arch_free(a);
    }
    if (omit_k5 && gn_lat_profile_fit_fallback(p, &err))
        fail_msg("%s", err.msg);
    p->calibrated = true;
    p->calib.model = GN_LAT_MODEL_PER_TYPE;
    for (int t = 0; t < GN_LAT_NTYPES; t++)
        p->calib.scale[t] = 0.8 + 0.15 * t;
    p->calib.intercept_ms = 0.37;
}

static double rel(double a, double b)
{
    return fabs(a - b) / fmax(fabs(b), 1e-300);
}

/* L(onehot(d)) against predict(decode(d)) for every d; returns the largest relative
 * difference; *fb_members: members whose prediction used the fallback. */
static double check_every_member(const fixture *f, const gn_lat_profile *p, const gn_supernet_lat *sl,
                                 long *fb_members)
{
    gn_error err;
    double z[256], worst = 0;
    int d[MAXCAT];
    assert_true(f->n <= 256);
    *fb_members = 0;
    for (long i = 0; i < f->members; i++) {
        member(f, i, d);
        onehot(f, d, z);
        gn_arch *a;
        double want, got;
        int missing;
        assert_int_equal(gn_supernet_decode(f->sn, d, &a, &err), 0);
        assert_int_equal(gn_lat_predict(p, a, &want, &missing, &err), 0);
        gn_arch_free(a);
        assert_int_equal(gn_supernet_lat_eval(sl, z, f->n, &got, NULL, &err), 0);
        worst = fmax(worst, rel(got, want));
        if (rel(got, want) > 1e-9)
            fail_msg("member %ld: L(onehot) = %.15g, predict = %.15g", i, got, want);
        *fb_members += missing > 0;
    }
    return worst;
}

static void test_every_member(void **state)
{
    (void)state;
    fixture f;
    setup(&f);
    gn_lat_profile p;
    make_profile(&f, &p, false);
    gn_supernet_lat *sl;
    gn_error err;
    if (gn_supernet_lat_create(f.sn, &p, &sl, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(gn_supernet_lat_fallbacks(sl), 0);
    /* head + tail + positions x candidates: s1 2x2, s2 2x8, s3 2x4 */
    assert_int_equal(gn_supernet_lat_layers(sl), 2 + 4 + 16 + 8);
    long fbm;
    double worst = check_every_member(&f, &p, sl, &fbm);
    assert_int_equal(fbm, 0);
    print_message("every member, full table (%d keys): max relative |L(onehot) - predict| = %.3g\n", p.n_entries,
                  worst);
    gn_supernet_lat_free(sl);
    gn_lat_profile_free(&p);
    teardown(&f);
}

static void test_fallback(void **state)
{
    (void)state;
    fixture f;
    setup(&f);
    gn_lat_profile p;
    make_profile(&f, &p, true);
    assert_true(p.have_fallback[GN_LAYER_FUSED_IRB]);
    gn_supernet_lat *sl;
    gn_error err;
    if (gn_supernet_lat_create(f.sn, &p, &sl, &err))
        fail_msg("%s", err.msg);
    /* stage 2's k5 candidates (expansion x se = 4) at its 2 positions */
    assert_int_equal(gn_supernet_lat_fallbacks(sl), 8);
    long fbm;
    double worst = check_every_member(&f, &p, sl, &fbm);
    assert_int_equal(fbm, f.members / 2); /* the members with s2.kernel = 5 */
    print_message("every member, k5 fused_irb from the fallback: max relative difference = %.3g\n", worst);
    gn_supernet_lat_free(sl);
    gn_lat_profile_free(&p);
    teardown(&f);
}

/* ------------------------------------------------------------------ relaxed zeta */
static void random_q(const fixture *f, gn_rng *r, double *q)
{
    for (int m = 0; m < f->M; m++) {
        double s = 0;
        for (int i = 0; i < f->K[m]; i++)
            s += q[f->off[m] + i] = exp(2.0 * (gn_rng_uniform(r) - 0.5) / 0.5);
        for (int i = 0; i < f->K[m]; i++)
            q[f->off[m] + i] /= s;
    }
}

static void test_expectation(void **state)
{
    (void)state;
    fixture f;
    setup(&f);
    gn_lat_profile p;
    make_profile(&f, &p, true);
    gn_supernet_lat *sl;
    gn_error err;
    if (gn_supernet_lat_create(f.sn, &p, &sl, &err))
        fail_msg("%s", err.msg);
    double *pred = malloc(sizeof *pred * (size_t)f.members);
    assert_non_null(pred);
    int d[MAXCAT];
    for (long i = 0; i < f.members; i++) {
        member(&f, i, d);
        gn_arch *a;
        assert_int_equal(gn_supernet_decode(f.sn, d, &a, &err), 0);
        assert_int_equal(gn_lat_predict(&p, a, &pred[i], NULL, &err), 0);
        gn_arch_free(a);
    }
    gn_rng r;
    gn_rng_seed(&r, 5);
    double worst = 0;
    for (int trial = 0; trial < 5; trial++) {
        double q[256], L, E = 0;
        random_q(&f, &r, q);
        for (long i = 0; i < f.members; i++) {
            member(&f, i, d);
            double pd = 1;
            for (int m = 0; m < f.M; m++)
                pd *= q[f.off[m] + d[m]];
            E += pd * pred[i];
        }
        assert_int_equal(gn_supernet_lat_eval(sl, q, f.n, &L, NULL, &err), 0);
        worst = fmax(worst, rel(L, E));
        if (rel(L, E) > 1e-9)
            fail_msg("trial %d: L(q) = %.15g, E_q[predict] = %.15g", trial, L, E);
    }
    print_message("5 random q: max relative |L(q) - E_q[predict(decode(d))]| = %.3g\n", worst);
    /* the one-call form agrees */
    double q[256], L1, L2;
    random_q(&f, &r, q);
    assert_int_equal(gn_supernet_lat_eval(sl, q, f.n, &L1, NULL, &err), 0);
    assert_int_equal(gn_supernet_latency(f.sn, &p, q, f.n, &L2, NULL, &err), 0);
    assert_true(L1 == L2);
    free(pred);
    gn_supernet_lat_free(sl);
    gn_lat_profile_free(&p);
    teardown(&f);
}

static void test_gradient(void **state)
{
    (void)state;
    fixture f;
    setup(&f);
    gn_lat_profile p;
    make_profile(&f, &p, true);
    gn_supernet_lat *sl;
    gn_error err;
    if (gn_supernet_lat_create(f.sn, &p, &sl, &err))
        fail_msg("%s", err.msg);
    gn_rng r;
    gn_rng_seed(&r, 11);
    double worst = 0;
    for (int trial = 0; trial < 3; trial++) {
        double q[256], g[256], L;
        random_q(&f, &r, q);
        assert_int_equal(gn_supernet_lat_eval(sl, q, f.n, &L, g, &err), 0);
        for (int i = 0; i < f.n; i++) {
            const double h = 1e-4; /* L has degree 1 in q[i]: the difference is exact but for rounding */
            double keep = q[i], lp, lm;
            q[i] = keep + h;
            assert_int_equal(gn_supernet_lat_eval(sl, q, f.n, &lp, NULL, &err), 0);
            q[i] = keep - h;
            assert_int_equal(gn_supernet_lat_eval(sl, q, f.n, &lm, NULL, &err), 0);
            q[i] = keep;
            double fd = (lp - lm) / (2 * h), e = fabs(g[i] - fd) / fmax(fabs(fd), 1e-3);
            worst = fmax(worst, e);
            if (e > 1e-7)
                fail_msg("trial %d, zeta[%d]: dL/dzeta = %.12g, central difference %.12g", trial, i, g[i], fd);
        }
    }
    print_message("dL/dzeta vs central differences (%d entries x 3): max relative difference = %.3g\n", f.n, worst);
    gn_supernet_lat_free(sl);
    gn_lat_profile_free(&p);
    teardown(&f);
}

/* ------------------------------------------------------------------ errors */
static void one_line(const gn_error *e, const char *want)
{
    assert_null(strchr(e->msg, '\n'));
    if (!strstr(e->msg, want))
        fail_msg("error '%s' does not say '%s'", e->msg, want);
}

static void test_bad_input(void **state)
{
    (void)state;
    fixture f;
    setup(&f);
    gn_lat_profile p;
    make_profile(&f, &p, false);
    gn_error err;
    gn_supernet_lat *sl = (gn_supernet_lat *)&p;
    p.calibrated = false;
    assert_int_equal(gn_supernet_lat_create(f.sn, &p, &sl, &err), -1);
    assert_null(sl);
    one_line(&err, "not calibrated");
    p.calibrated = true;
    double q[256], L = 0;
    gn_rng r;
    gn_rng_seed(&r, 3);
    random_q(&f, &r, q);
    assert_int_equal(gn_supernet_latency(f.sn, &p, q, f.n - 1, &L, NULL, &err), -1);
    one_line(&err, "zeta has");
    assert_int_equal(gn_supernet_lat_create(f.sn, &p, &sl, &err), 0);
    q[3] = NAN;
    assert_int_equal(gn_supernet_lat_eval(sl, q, f.n, &L, NULL, &err), -1);
    one_line(&err, "not finite");
    gn_supernet_lat_free(sl);
    /* a key neither in the table nor with a fallback for its type */
    gn_lat_profile empty;
    gn_lat_profile_init(&empty);
    empty.batch = 1;
    empty.calibrated = true;
    empty.calib = p.calib;
    assert_int_equal(gn_supernet_lat_create(f.sn, &empty, &sl, &err), -1);
    one_line(&err, "no fallback");
    gn_lat_profile_free(&empty);
    gn_lat_profile_free(&p);
    teardown(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_member), cmocka_unit_test(test_fallback), cmocka_unit_test(test_expectation),
        cmocka_unit_test(test_gradient),     cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
