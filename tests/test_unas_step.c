/* test_unas_step.c — one UNAS search step as a library call (gpunas/unas.h) on the tiny
 * space of test_supernet.c (resolution 16, 1 channel, 4 classes, 768 members) with a
 * hand-made device profile (as test_supernet_latency.c: made-up table times, a hand
 * calibration; times grow with FLOPs and bytes, plus 0.1 ms for an SE block, so that
 * every choice has a clear cost) and
 * random images and labels (4 per batch, train and validation).
 * Checks:
 *   - for each estimator (reinforce, gumbel, unified), with a large latency coefficient
 *     and the target halfway between the fastest and the second-fastest member (so
 *     only one latency value is within it), after 80 steps (reinforce: 250) the argmax architecture's
 *     predicted latency is within the target (= it is the fastest member); theta
 *     stays finite; the entropy of q decreased from its uniform start; the expected
 *     latency under q decreased;
 *   - one-line errors: tau <= 0, an unknown estimator, train/validation batches of
 *     different sizes, tau set to 0 between steps. */
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
#include "gpunas/oneshot.h"
#include "gpunas/rng.h"
#include "gpunas/space.h"
#include "gpunas/supernet.h"
#include "gpunas/supernet_latency.h"
#include "gpunas/unas.h"
#include "testutil.h"

#define N 4
#define RES 16
#define CLASSES 4
#define MAXCAT 16
#define STEPS_PATHWISE 80   /* gumbel, unified */
#define STEPS_REINFORCE 250 /* the score function alone is noisier: 150 steps failed 2 of 4 seeds */

typedef struct {
    gn_space *space;
    gn_backend *be;
    gn_supernet *sn;
    gn_lat_profile prof;
    gn_supernet_lat *sl;
    int M, n, K[MAXCAT], off[MAXCAT];
    long members;
    double lat_min, lat_second, target;
    gn_tensor tx, vx;
    int32_t ty[N], vy[N];
} fixture;

/* member number i -> d (mixed radix) */
static void member(const fixture *f, long i, int *d)
{
    for (int m = f->M - 1; m >= 0; m--) {
        d[m] = (int)(i % f->K[m]);
        i /= f->K[m];
    }
}

static double lat_of(const fixture *f, const int *d)
{
    gn_error err;
    double z[256], ms;
    memset(z, 0, sizeof z);
    for (int m = 0; m < f->M; m++)
        z[f->off[m] + d[m]] = 1.0;
    if (gn_supernet_lat_eval(f->sl, z, f->n, &ms, NULL, &err))
        fail_msg("%s", err.msg);
    return ms;
}

/* The fastest latency and the next larger one; the target halfway between.  Several
 * members share the fastest latency (a kernel choice of a stage at 0 layers costs
 * nothing), so "one" architecture below the target is one latency value. */
static void pick_target(fixture *f)
{
    int d[MAXCAT];
    f->lat_min = f->lat_second = INFINITY;
    for (long i = 0; i < f->members; i++) {
        member(f, i, d);
        double ms = lat_of(f, d);
        if (ms < f->lat_min - 1e-9) {
            f->lat_second = f->lat_min;
            f->lat_min = ms;
        } else if (ms > f->lat_min + 1e-9 && ms < f->lat_second)
            f->lat_second = ms;
    }
    f->target = 0.5 * (f->lat_min + f->lat_second);
    /* the cost of each single change away from a fastest member (printed) */
    int best[MAXCAT];
    for (long i = 0; i < f->members; i++) {
        member(f, i, best);
        if (lat_of(f, best) <= f->lat_min + 1e-9)
            break;
    }
    printf("# fastest member:");
    for (int m = 0; m < f->M; m++)
        printf(" %d", best[m]);
    for (int m = 0; m < f->M; m++) {
        member(f, 0, d);
        memcpy(d, best, sizeof d);
        d[m] = (best[m] + 1) % f->K[m];
        printf(" %+.3f", lat_of(f, d) - f->lat_min);
    }
    printf(" ms per categorical\n");
    assert_true(f->lat_second - f->lat_min > 1e-3);
}

static void random_batch(gn_tensor *x, int32_t *y, gn_backend *be, int n, gn_rng *r)
{
    gn_error err;
    float img[N * RES * RES];
    assert_int_equal(gn_tensor_alloc(x, be, n, 1, RES, RES, &err), 0);
    for (int i = 0; i < n * RES * RES; i++)
        img[i] = (float)(2.0 * gn_rng_uniform(r) - 1.0);
    assert_int_equal(gn_tensor_from_host(x, img, &err), 0);
    for (int i = 0; y && i < n; i++)
        y[i] = (int32_t)gn_rng_below(r, CLASSES);
}

static void setup(fixture *f)
{
    gn_error err;
    memset(f, 0, sizeof *f);
    assert_int_equal(gn_space_parse(tu_tiny_space, "tiny.json", &f->space, &err), 0);
    assert_int_equal(gn_backend_create("ref", &f->be, &err), 0);
    if (gn_supernet_create(f->space, f->be, NULL, &f->sn, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(gn_supernet_init(f->sn, 7, &err), 0);
    f->M = gn_supernet_num_cats(f->sn);
    f->n = gn_supernet_n(f->sn);
    assert_true(f->M <= MAXCAT);
    f->members = 1;
    for (int m = 0; m < f->M; m++) {
        f->K[m] = gn_supernet_get_cat(f->sn, m)->k;
        f->off[m] = gn_supernet_get_cat(f->sn, m)->offset;
        f->members *= f->K[m];
    }
    assert_int_equal(f->members, 768);
    if (tu_unas_profile(f->sn, &f->prof, &err)) /* testutil.c */
        fail_msg("%s", err.msg);
    if (gn_supernet_lat_create(f->sn, &f->prof, &f->sl, &err))
        fail_msg("%s", err.msg);
    pick_target(f);
    gn_rng r;
    gn_rng_seed(&r, 2024);
    random_batch(&f->tx, f->ty, f->be, N, &r);
    random_batch(&f->vx, f->vy, f->be, N, &r);
}

static void teardown(fixture *f)
{
    gn_tensor_free(&f->tx);
    gn_tensor_free(&f->vx);
    gn_supernet_lat_free(f->sl);
    gn_lat_profile_free(&f->prof);
    gn_supernet_free(f->sn);
    gn_backend_destroy(f->be);
    gn_space_free(f->space);
}

static void search_config(const fixture *f, gn_unas_estimator e, gn_unas_config *c)
{
    gn_unas_defaults(c);
    c->estimator = e;
    c->arch_lr = e == GN_UNAS_REINFORCE ? 0.1 : 0.15;
    c->weight_lr = 1e-4;
    c->lat = f->sl;
    c->target_ms = f->target;
    c->lat_coeff = 20.0 / (f->lat_second - f->lat_min); /* large: the second-fastest costs 10 */
    c->warmup_steps = 5;
}

/* ------------------------------------------------------------------ (1), (2) */
static void run_search(gn_unas_estimator e)
{
    fixture f;
    gn_error err;
    setup(&f);
    gn_unas_config c;
    search_config(&f, e, &c);
    const int STEPS = e == GN_UNAS_REINFORCE ? STEPS_REINFORCE : STEPS_PATHWISE;
    gn_unas *u;
    if (gn_unas_create(f.sn, &c, &u, &err))
        fail_msg("%s", err.msg);
    double h0 = gn_oneshot_entropy(gn_unas_dist(u), NULL), el0;
    assert_int_equal(gn_supernet_lat_eval(f.sl, gn_oneshot_probs(gn_unas_dist(u)), f.n, &el0, NULL, &err), 0);
    gn_rng rng;
    gn_rng_seed(&rng, 11);
    gn_unas_report r;
    memset(&r, 0, sizeof r);
    for (int s = 0; s < STEPS; s++) {
        if (gn_unas_step(u, &f.tx, f.ty, &f.vx, f.vy, &rng, &r, &err))
            fail_msg("%s step %d: %s", gn_unas_estimator_name(e), s, err.msg);
        const double *th = gn_oneshot_theta(gn_unas_dist(u));
        for (int i = 0; i < f.n; i++)
            if (!isfinite(th[i]))
                fail_msg("%s step %d: theta[%d] = %g", gn_unas_estimator_name(e), s, i, th[i]);
    }
    assert_int_equal(gn_unas_steps(u), STEPS);
    assert_int_equal(r.step, STEPS);
    int d[MAXCAT], x[64];
    gn_unas_argmax(u, d);
    double lat = lat_of(&f, d);
    printf("# argmax d:");
    for (int m = 0; m < f.M; m++)
        printf(" %d(%.2f,%.2f)", d[m], gn_oneshot_theta(gn_unas_dist(u))[f.off[m]], gn_oneshot_theta(gn_unas_dist(u))[f.off[m] + 1]);
    printf("\n");
    assert_int_equal(gn_unas_derive(u, x, &err), 0);
    printf("# %-9s: %d steps, argmax latency %.4f ms (fastest %.4f, target %.4f, second %.4f); "
           "E_q latency %.4f -> %.4f ms; entropy %.3f -> %.3f nats; last train loss %.3f, val %.3f; c_t %.1f\n",
           gn_unas_estimator_name(e), STEPS, lat, f.lat_min, f.target, f.lat_second, el0, r.lat_expected, h0,
           r.entropy, r.train_loss, isnan(r.val_loss_d) ? r.val_loss_relaxed : r.val_loss_d, r.lat_coeff);
    assert_true(isfinite(r.train_loss));
    if (!(lat <= f.target))
        fail_msg("%s: argmax latency %.4f ms above the target %.4f ms", gn_unas_estimator_name(e), lat, f.target);
    if (!(r.entropy < h0))
        fail_msg("%s: entropy %.4f did not decrease from %.4f", gn_unas_estimator_name(e), r.entropy, h0);
    if (!(r.lat_expected < el0))
        fail_msg("%s: expected latency %.4f did not decrease from %.4f", gn_unas_estimator_name(e), r.lat_expected,
                 el0);
    gn_unas_free(u);
    teardown(&f);
}

static void test_reinforce(void **state)
{
    (void)state;
    run_search(GN_UNAS_REINFORCE);
}

static void test_gumbel(void **state)
{
    (void)state;
    run_search(GN_UNAS_GUMBEL);
}

static void test_unified(void **state)
{
    (void)state;
    run_search(GN_UNAS_UNIFIED);
}

/* ------------------------------------------------------------------ (3) */
static void one_line(const gn_error *e, const char *want)
{
    if (!strstr(e->msg, want) || strchr(e->msg, '\n'))
        fail_msg("error \"%s\" lacks \"%s\" or is not one line", e->msg, want);
}

static void test_bad_input(void **state)
{
    (void)state;
    fixture f;
    gn_error err;
    setup(&f);
    gn_unas_config c;
    gn_unas *u = NULL;
    search_config(&f, GN_UNAS_UNIFIED, &c);
    c.tau = 0;
    assert_int_equal(gn_unas_create(f.sn, &c, &u, &err), -1);
    assert_null(u);
    one_line(&err, "tau");
    search_config(&f, GN_UNAS_UNIFIED, &c);
    c.estimator = (gn_unas_estimator)7;
    assert_int_equal(gn_unas_create(f.sn, &c, &u, &err), -1);
    one_line(&err, "unknown estimator");
    gn_unas_estimator e;
    assert_int_equal(gn_unas_estimator_parse("rebar", &e), -1);
    assert_int_equal(gn_unas_estimator_parse("gumbel", &e), 0);
    assert_int_equal(e, GN_UNAS_GUMBEL);

    search_config(&f, GN_UNAS_UNIFIED, &c);
    assert_int_equal(gn_unas_create(f.sn, &c, &u, &err), 0);
    gn_rng rng;
    gn_rng_seed(&rng, 3);
    gn_tensor small;
    random_batch(&small, NULL, f.be, 2, &rng);
    assert_int_equal(gn_unas_step(u, &f.tx, f.ty, &small, f.vy, &rng, NULL, &err), -1);
    one_line(&err, "differ in size");
    assert_int_equal(gn_unas_steps(u), 0);
    gn_unas_config_mut(u)->tau = -1;
    assert_int_equal(gn_unas_step(u, &f.tx, f.ty, &f.vx, f.vy, &rng, NULL, &err), -1);
    one_line(&err, "tau");
    gn_unas_config_mut(u)->tau = 0.4;
    assert_int_equal(gn_unas_step(u, &f.tx, f.ty, &f.vx, f.vy, &rng, NULL, &err), 0);
    assert_int_equal(gn_unas_steps(u), 1);
    gn_tensor_free(&small);
    gn_unas_free(u);
    teardown(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reinforce),
        cmocka_unit_test(test_gumbel),
        cmocka_unit_test(test_unified),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
