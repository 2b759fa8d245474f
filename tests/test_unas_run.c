/* test_unas_run.c — UNAS's generalization-gap objective and the measured-latency
 * callback of gn_unas_step, and the search run gn_unas_run (gpunas/unas.h), on the tiny
 * space of test_unas_step.c (testutil.c: tu_tiny_space, tu_unas_profile) with random
 * images (1 x 16 x 16, 4 classes; batches of 4).
 * Checks:
 *   - gen-gap, gumbel: the architecture gradient of one step (read back from theta
 *     through an Adam step with lr = eps = 1e6, which moves theta by -g to 1e-6) equals
 *     J^T g_zeta with g_zeta from finite differences of the relaxed objective
 *     mean_i CE_tr_i + 0.5 |CE_val_i - CE_tr_i|, computed here from the supernet API
 *     (set_zeta, forward_train on each batch, sample_losses), and differs from the
 *     gradient of the plain validation CE;
 *   - gen-gap, reinforce: with baseline momentum 0 the baseline after one step is the f
 *     used, equal to the per-pair formula at the sampled d (discrete forwards here);
 *   - measure: called once with the sampled d; its value is report->lat_d and enters f
 *     (baseline = CE + c relu(L - T)) and scales |g| against the profile's case; not
 *     called by gumbel; its failure fails the step;
 *   - resume: a run of 1 init + 2 search epochs straight, and the same run stopped in
 *     the middle of a search epoch / at the init-search boundary and then resumed
 *     (once with a later history line and a torn line appended, which must go): theta,
 *     Adam m and v, every supernet value (BN statistics included), the weight
 *     optimizer's state, the baseline and the step counts equal bit for bit, and the
 *     history lines equal apart from "seconds";
 *   - refusals: a changed setting (the error names the key), a truncated checkpoint
 *     (names the file), a resume without a checkpoint, a fresh run over a checkpoint;
 *   - schedules: weight_lr and arch_lr of every history line follow the cosine per
 *     search epoch (peaks in the init epoch), computed here. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "gpunas/backend.h"
#include "gpunas/data.h"
#include "gpunas/oneshot.h"
#include "gpunas/rng.h"
#include "gpunas/space.h"
#include "gpunas/supernet.h"
#include "gpunas/supernet_latency.h"
#include "gpunas/unas.h"
#include "oneshot/oneshot_internal.h"
#include "testutil.h"

#define N 4
#define RES 16
#define CLASSES 4
#define NTRAIN 12
#define NVAL 12
#define MAXN 256
#define BIG 1e6 /* Adam lr = eps: one step moves theta by -g E / (|g| + E) */

typedef struct {
    gn_space *space;
    gn_backend *be;
    gn_supernet *sn;
    gn_lat_profile prof;
    gn_supernet_lat *sl;
    int M, n;
    gn_tensor tx, vx;
    int32_t ty[N], vy[N];
    gn_dataset *dtrain, *dval;
    gn_dataset_view train, val;
} fixture;

static fixture F;

static void random_batch(gn_tensor *x, int32_t *y, gn_rng *r)
{
    gn_error err;
    float img[N * RES * RES];
    assert_int_equal(gn_tensor_alloc(x, F.be, N, 1, RES, RES, &err), 0);
    for (int i = 0; i < N * RES * RES; i++)
        img[i] = (float)(2.0 * gn_rng_uniform(r) - 1.0);
    assert_int_equal(gn_tensor_from_host(x, img, &err), 0);
    for (int i = 0; i < N; i++)
        y[i] = (int32_t)gn_rng_below(r, CLASSES);
}

static gn_dataset *random_dataset(int n, gn_rng *r)
{
    gn_error err;
    gn_dataset *d;
    uint8_t *px = malloc((size_t)n * RES * RES);
    int32_t *lab = malloc((size_t)n * sizeof *lab);
    assert_non_null(px);
    assert_non_null(lab);
    for (int i = 0; i < n * RES * RES; i++)
        px[i] = (uint8_t)gn_rng_below(r, 256);
    for (int i = 0; i < n; i++)
        lab[i] = (int32_t)gn_rng_below(r, CLASSES);
    if (gn_dataset_from_memory(n, 1, RES, RES, CLASSES, px, lab, &d, &err))
        fail_msg("%s", err.msg);
    return d;
}

static int group_setup(void **state)
{
    (void)state;
    gn_error err;
    memset(&F, 0, sizeof F);
    if (gn_space_parse(tu_tiny_space, "tiny.json", &F.space, &err) || gn_backend_create("ref", &F.be, &err) ||
        gn_supernet_create(F.space, F.be, NULL, &F.sn, &err) || gn_supernet_init(F.sn, 7, &err) ||
        tu_unas_profile(F.sn, &F.prof, &err) || gn_supernet_lat_create(F.sn, &F.prof, &F.sl, &err)) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return -1;
    }
    F.M = gn_supernet_num_cats(F.sn);
    F.n = gn_supernet_n(F.sn);
    if (F.n > MAXN)
        return -1;
    gn_rng r;
    gn_rng_seed(&r, 2024);
    random_batch(&F.tx, F.ty, &r);
    random_batch(&F.vx, F.vy, &r);
    F.dtrain = random_dataset(NTRAIN, &r);
    F.dval = random_dataset(NVAL, &r);
    if (gn_view_all(F.dtrain, &F.train, &err) || gn_view_all(F.dval, &F.val, &err))
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    gn_view_free(&F.train);
    gn_view_free(&F.val);
    gn_dataset_free(F.dtrain);
    gn_dataset_free(F.dval);
    gn_tensor_free(&F.tx);
    gn_tensor_free(&F.vx);
    gn_supernet_lat_free(F.sl);
    gn_lat_profile_free(&F.prof);
    gn_supernet_free(F.sn);
    gn_backend_destroy(F.be);
    gn_space_free(F.space);
    return 0;
}

static void one_line(const gn_error *e, const char *want)
{
    if (!strstr(e->msg, want) || strchr(e->msg, '\n'))
        fail_msg("error \"%s\" lacks \"%s\" or is not one line", e->msg, want);
}

/* ------------------------------------------------------------------ objectives, independently */

/* Per-sample CE of a training forward of x under the zeta / d set last. */
static void losses(const gn_tensor *x, const int32_t *y, double *l)
{
    gn_error err;
    const gn_tensor *z;
    if (gn_supernet_forward_train(F.sn, x, &z, &err) || gn_supernet_sample_losses(F.sn, y, 0.0f, l, &err))
        fail_msg("%s", err.msg);
}

/* The gen-gap objective (lambda) and the plain validation CE at the current zeta / d. */
static void objectives(double lambda, double *gap, double *val, double *min_gap)
{
    double lt[N], lv[N];
    losses(&F.tx, F.ty, lt);
    losses(&F.vx, F.vy, lv);
    *gap = *val = 0;
    for (int i = 0; i < N; i++) {
        *gap += (lt[i] + lambda * fabs(lv[i] - lt[i])) / N;
        *val += lv[i] / N;
        if (min_gap)
            *min_gap = fmin(*min_gap, fabs(lv[i] - lt[i]));
    }
}

static void objectives_at(const double *zeta, double lambda, double *gap, double *val)
{
    gn_error err;
    if (gn_supernet_set_zeta(F.sn, zeta, 1, &err))
        fail_msg("%s", err.msg);
    objectives(lambda, gap, val, NULL);
}

/* The objectives at zeta(theta) = softmax((l(theta) + G(u)) / tau) with the sample's
 * uniforms u fixed (q2: a distribution like the search's, set to theta). */
static void objectives_theta(gn_oneshot_dist *q2, gn_oneshot_sample *s2, const double *theta, const double *u,
                             double tau, double lambda, double *gap, double *val)
{
    gn_error err;
    if (gn_oneshot_set_theta(q2, theta, &err) || gn_oneshot_draw_u(q2, tau, u, s2, &err))
        fail_msg("%s", err.msg);
    objectives_at(s2->zeta, lambda, gap, val);
}

/* Directional derivatives along v of both relaxed objectives as functions of theta
 * (from theta = 0, u fixed): central finite differences. */
static void fd_directional(const gn_oneshot_sample *s, const double *v, double tau, double lambda, double *dd_gap,
                           double *dd_val)
{
    const double h = 1e-4;
    gn_error err;
    int K[64];
    for (int m = 0; m < F.M; m++)
        K[m] = gn_supernet_get_cat(F.sn, m)->k;
    gn_oneshot_dist *q2;
    gn_oneshot_sample *s2;
    if (gn_oneshot_dist_create(F.M, K, 0.0, &q2, &err) || gn_oneshot_sample_create(q2, &s2, &err))
        fail_msg("%s", err.msg);
    double th[MAXN], a1, b1, a2, b2;
    for (int i = 0; i < F.n; i++)
        th[i] = h * v[i];
    objectives_theta(q2, s2, th, s->u, tau, lambda, &a1, &b1);
    for (int i = 0; i < F.n; i++)
        th[i] = -h * v[i];
    objectives_theta(q2, s2, th, s->u, tau, lambda, &a2, &b2);
    *dd_gap = (a1 - a2) / (2 * h);
    *dd_val = (b1 - b2) / (2 * h);
    gn_oneshot_sample_free(s2);
    gn_oneshot_dist_free(q2);
}

static void step_config(gn_unas_config *c, gn_unas_estimator e)
{
    gn_unas_defaults(c);
    c->estimator = e;
    c->arch_lr = BIG;
    c->arch_eps = BIG;
    c->arch_wd = 0;
    c->baseline_momentum = 0;
    c->weight_lr = 1e-3;
}

/* The sample the next step will draw (a copy of its rng). */
static gn_oneshot_sample *peek_sample(gn_unas *u, const gn_rng *rng, double tau)
{
    gn_error err;
    gn_oneshot_sample *s;
    gn_rng r = *rng;
    if (gn_oneshot_sample_create(gn_unas_dist(u), &s, &err) || gn_oneshot_draw(gn_unas_dist(u), tau, &r, s, &err))
        fail_msg("%s", err.msg);
    return s;
}

/* g from theta after one Adam step from theta = 0 with lr = eps = BIG, beta-corrected:
 * theta = -BIG g / (|g| + BIG). */
static void recover_grad(gn_unas *u, double *g)
{
    const double *th = gn_oneshot_theta(gn_unas_dist(u));
    for (int i = 0; i < F.n; i++)
        g[i] = -th[i] * BIG / (BIG - fabs(th[i]));
}

static double max_abs(const double *a, int n)
{
    double m = 0;
    for (int i = 0; i < n; i++)
        m = fmax(m, fabs(a[i]));
    return m;
}

/* ------------------------------------------------------------------ (1) gen-gap, gumbel */
static void test_gen_gap_gumbel(void **state)
{
    (void)state;
    gn_error err;
    assert_int_equal(gn_supernet_init(F.sn, 7, &err), 0);
    gn_unas_config c;
    step_config(&c, GN_UNAS_GUMBEL);
    c.gen_gap = 0.5;
    gn_unas *u;
    if (gn_unas_create(F.sn, &c, &u, &err))
        fail_msg("%s", err.msg);
    gn_rng rng, vr;
    gn_rng_seed(&rng, 5);
    gn_oneshot_sample *s = peek_sample(u, &rng, c.tau);
    double g[MAXN], gap, val, min_gap = INFINITY;
    assert_int_equal(gn_supernet_set_zeta(F.sn, s->zeta, 1, &err), 0);
    objectives(0.5, &gap, &val, &min_gap);
    assert_true(min_gap > 1e-3); /* no pair at the kink of |.| */

    /* d/dh f~(zeta(h v)) for random directions v, before the step changes the weights */
    enum { DIRS = 4 };
    double v[DIRS][MAXN], dd_gap[DIRS], dd_val[DIRS];
    gn_rng_seed(&vr, 77);
    for (int k = 0; k < DIRS; k++) {
        for (int i = 0; i < F.n; i++)
            v[k][i] = gn_rng_normal(&vr);
        fd_directional(s, v[k], c.tau, 0.5, &dd_gap[k], &dd_val[k]);
    }
    gn_unas_report r;
    if (gn_unas_step(u, &F.tx, F.ty, &F.vx, F.vy, &rng, &r, &err))
        fail_msg("%s", err.msg);
    recover_grad(u, g);
    assert_true(max_abs(g, F.n) > 1e-3);
    for (int k = 0; k < DIRS; k++) {
        double gv = 0, size = 0;
        for (int i = 0; i < F.n; i++) {
            gv += g[i] * v[k][i];
            size += fabs(g[i] * v[k][i]);
        }
        printf("# gen-gap gumbel, direction %d: g.v %.6f, FD of the gen-gap objective %.6f, of the val CE %.6f "
               "(f~ %.4f, val CE %.4f, min |CE_val - CE_tr| %.3g)\n",
               k, gv, dd_gap[k], dd_val[k], gap, val, min_gap);
        if (!(fabs(gv - dd_gap[k]) <= 2e-3 * size + 1e-5))
            fail_msg("direction %d: g.v %g differs from FD of the gen-gap objective %g", k, gv, dd_gap[k]);
        if (!(fabs(gv - dd_val[k]) > 10 * (2e-3 * size + 1e-5)))
            fail_msg("direction %d: g.v %g is the plain validation CE's %g", k, gv, dd_val[k]);
    }
    assert_true(fabs(r.val_loss_relaxed - val) <= 1e-6 * fabs(val)); /* the report keeps the val CE */
    assert_true(isnan(r.val_loss_d));
    gn_oneshot_sample_free(s);
    gn_unas_free(u);
}

/* ------------------------------------------------------------------ (2) gen-gap, reinforce */
static void test_gen_gap_reinforce(void **state)
{
    (void)state;
    gn_error err;
    assert_int_equal(gn_supernet_init(F.sn, 7, &err), 0);
    gn_unas_config c;
    step_config(&c, GN_UNAS_REINFORCE);
    c.gen_gap = 0.5;
    gn_unas *u;
    if (gn_unas_create(F.sn, &c, &u, &err))
        fail_msg("%s", err.msg);
    gn_rng rng;
    gn_rng_seed(&rng, 6);
    gn_oneshot_sample *s = peek_sample(u, &rng, c.tau);
    double f, val;
    assert_int_equal(gn_supernet_set_discrete(F.sn, s->d, 1, &err), 0);
    objectives(0.5, &f, &val, NULL);
    gn_unas_report r;
    if (gn_unas_step(u, &F.tx, F.ty, &F.vx, F.vy, &rng, &r, &err))
        fail_msg("%s", err.msg);
    printf("# gen-gap reinforce: f %.9f (val CE %.9f), baseline %.9f\n", f, val, r.baseline);
    if (!(fabs(r.baseline - f) <= 1e-12 * fabs(f)))
        fail_msg("baseline %.17g, expected f = %.17g", r.baseline, f);
    assert_true(fabs(f - val) > 1e-4);
    assert_true(fabs(r.val_loss_d - val) <= 1e-12 * fabs(val));
    gn_oneshot_sample_free(s);
    gn_unas_free(u);

    /* gen_gap < 0 or not finite: refused with one line */
    c.gen_gap = -0.5;
    assert_int_equal(gn_unas_create(F.sn, &c, &u, &err), -1);
    one_line(&err, "gen_gap");
    c.gen_gap = NAN;
    assert_int_equal(gn_unas_create(F.sn, &c, &u, &err), -1);
    one_line(&err, "gen_gap");
}

/* ------------------------------------------------------------------ (3) measure */
typedef struct {
    double ms;
    int calls, fail;
    int d[64];
} meas;

static int measure_cb(void *ctx, const int *d, double *ms, gn_error *err)
{
    meas *m = ctx;
    m->calls++;
    memcpy(m->d, d, (size_t)F.M * sizeof *d);
    if (m->fail)
        return gn_error_set(err, "measure: device gone");
    *ms = m->ms;
    return 0;
}

static double profile_lat(const int *d)
{
    gn_error err;
    double z[MAXN] = {0}, ms;
    for (int m = 0; m < F.M; m++)
        z[gn_supernet_get_cat(F.sn, m)->offset + d[m]] = 1.0;
    if (gn_supernet_lat_eval(F.sl, z, F.n, &ms, NULL, &err))
        fail_msg("%s", err.msg);
    return ms;
}

/* One reinforce step from the same weights and rng; meas NULL: the profile. */
static void measured_step(meas *m, gn_unas_estimator e, gn_unas_report *r, int *d, double *lat_zeta_prof)
{
    gn_error err;
    assert_int_equal(gn_supernet_init(F.sn, 7, &err), 0);
    gn_unas_config c;
    step_config(&c, e);
    c.lat = F.sl;
    c.target_ms = 3.0;
    c.lat_coeff = 0.25;
    c.measure = m ? measure_cb : NULL;
    c.measure_ctx = m;
    gn_unas *u;
    if (gn_unas_create(F.sn, &c, &u, &err))
        fail_msg("%s", err.msg);
    gn_rng rng;
    gn_rng_seed(&rng, 8);
    gn_oneshot_sample *s = peek_sample(u, &rng, c.tau);
    memcpy(d, s->d, (size_t)F.M * sizeof *d);
    if (lat_zeta_prof)
        assert_int_equal(gn_supernet_lat_eval(F.sl, s->zeta, F.n, lat_zeta_prof, NULL, &err), 0);
    if (gn_unas_step(u, &F.tx, F.ty, &F.vx, F.vy, &rng, r, &err))
        fail_msg("%s", err.msg);
    gn_oneshot_sample_free(s);
    gn_unas_free(u);
}

static void test_measure(void **state)
{
    (void)state;
    gn_error err;
    int d1[64], d2[64];
    meas m = {.ms = 1000.0};
    gn_unas_report r1, r2;
    double lz;
    measured_step(&m, GN_UNAS_REINFORCE, &r1, d1, &lz);
    measured_step(NULL, GN_UNAS_REINFORCE, &r2, d2, NULL);
    assert_int_equal(m.calls, 1);
    assert_memory_equal(m.d, d1, (size_t)F.M * sizeof *d1);
    assert_memory_equal(d1, d2, (size_t)F.M * sizeof *d1);
    double lp = profile_lat(d1), f1 = r1.val_loss_d + 0.25 * (1000.0 - 3.0), f2 = r2.val_loss_d + 0.25 * fmax(lp - 3.0, 0);
    printf("# measure: lat_d %.3f (callback) vs %.4f (profile); f %.4f vs %.4f; |g| %.4f vs %.4f\n", r1.lat_d, r2.lat_d,
           r1.baseline, r2.baseline, r1.grad_norm, r2.grad_norm);
    assert_true(r1.lat_d == 1000.0);
    assert_true(fabs(r2.lat_d - lp) <= 1e-12 * lp);
    assert_true(fabs(r1.lat_zeta - lz) <= 1e-12 * lz); /* the control variate keeps the profile */
    assert_true(r1.val_loss_d == r2.val_loss_d);
    assert_true(fabs(r1.baseline - f1) <= 1e-12 * f1);
    assert_true(fabs(r2.baseline - f2) <= 1e-12 * f2);
    /* reinforce at theta = 0, baseline 0: g = f dlogq(d), so |g| scales with f */
    double ratio = r1.grad_norm / r2.grad_norm;
    if (!(fabs(ratio - f1 / f2) <= 1e-9 * (f1 / f2)))
        fail_msg("|g| ratio %.12g, expected f ratio %.12g", ratio, f1 / f2);

    /* unified: the callback's value in f_lat too (lat_d); gumbel: never called */
    m.calls = 0;
    measured_step(&m, GN_UNAS_UNIFIED, &r1, d1, NULL);
    assert_int_equal(m.calls, 1);
    assert_true(r1.lat_d == 1000.0);
    measured_step(&m, GN_UNAS_GUMBEL, &r1, d1, NULL);
    assert_int_equal(m.calls, 1);
    assert_true(fabs(r1.lat_d - profile_lat(d1)) <= 1e-12 * r1.lat_d);

    /* a failing callback fails the step with its message; measure without lat is refused */
    gn_unas_config c;
    step_config(&c, GN_UNAS_REINFORCE);
    c.lat = F.sl;
    c.target_ms = 3.0;
    c.lat_coeff = 0.25;
    c.measure = measure_cb;
    c.measure_ctx = &m;
    m.fail = 1;
    gn_unas *u;
    assert_int_equal(gn_unas_create(F.sn, &c, &u, &err), 0);
    gn_rng rng;
    gn_rng_seed(&rng, 1);
    assert_int_equal(gn_unas_step(u, &F.tx, F.ty, &F.vx, F.vy, &rng, NULL, &err), -1);
    one_line(&err, "device gone");
    gn_unas_free(u);
    c.lat = NULL;
    assert_int_equal(gn_unas_create(F.sn, &c, &u, &err), -1);
    one_line(&err, "measure");
}

/* ------------------------------------------------------------------ the run */

static void run_config(gn_unas_run_config *c, const char *dir)
{
    gn_unas_run_defaults(c);
    c->step.estimator = GN_UNAS_UNIFIED;
    c->step.gen_gap = 0.5;
    c->step.arch_lr = 0.05;
    c->step.weight_lr = 2e-3;
    c->step.lat = F.sl;
    c->step.target_ms = 3.0;
    c->step.lat_coeff = 0.5;
    c->step.warmup_steps = 3;
    c->init_epochs = 1;
    c->epochs = 2;
    c->batch = N;
    c->grad_clip = 1.0;
    c->train = &F.train;
    c->val = &F.val;
    gn_augment_defaults(F.dtrain, &c->aug);
    c->seed = 9;
    c->dir = dir;
    c->log_every = 2;
    c->checkpoint_every = 0;
}

static char *fresh_dir(const char *name)
{
    char *d = tu_tmp_path(name), cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    assert_int_equal(system(cmd), 0);
    return d;
}

static char *file_in(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Everything a resumed run must reproduce. */
typedef struct {
    double theta[MAXN], m[MAXN], v[MAXN], baseline;
    float *values, *ostate[4];
    size_t nvalues, osize;
    int nstates;
    int64_t steps, osteps, bn_batches;
} snapshot;

static void take(gn_unas *u, snapshot *s)
{
    gn_net *net = gn_supernet_net(F.sn);
    gn_optim *o = gn__unas_weight_optim(u);
    memcpy(s->theta, gn_oneshot_theta(gn_unas_dist(u)), (size_t)F.n * sizeof(double));
    memcpy(s->m, gn__unas_adam_m(u), (size_t)F.n * sizeof(double));
    memcpy(s->v, gn__unas_adam_v(u), (size_t)F.n * sizeof(double));
    s->baseline = gn__unas_baseline(u)->value;
    s->nvalues = gn_net_num_values(net);
    s->values = malloc(s->nvalues * sizeof(float));
    assert_non_null(s->values);
    memcpy(s->values, gn_net_values(net), s->nvalues * sizeof(float));
    s->nstates = gn_optim_state_count(o);
    assert_true(s->nstates <= 4);
    s->osize = gn_optim_size(o);
    for (int i = 0; i < s->nstates; i++) {
        s->ostate[i] = malloc(s->osize * sizeof(float));
        memcpy(s->ostate[i], gn_optim_state(o, i), s->osize * sizeof(float));
    }
    s->steps = gn_unas_steps(u);
    s->osteps = gn_optim_steps(o);
    s->bn_batches = gn_net_bn_batches(net);
}

static void drop(snapshot *s)
{
    free(s->values);
    for (int i = 0; i < s->nstates; i++)
        free(s->ostate[i]);
}

static void same_state(const snapshot *a, const snapshot *b, const char *what)
{
    if (memcmp(a->theta, b->theta, (size_t)F.n * sizeof(double)))
        fail_msg("%s: theta differs", what);
    if (memcmp(a->m, b->m, (size_t)F.n * sizeof(double)) || memcmp(a->v, b->v, (size_t)F.n * sizeof(double)))
        fail_msg("%s: Adam moments differ", what);
    if (memcmp(&a->baseline, &b->baseline, sizeof(double)))
        fail_msg("%s: baseline %.17g vs %.17g", what, a->baseline, b->baseline);
    assert_int_equal(a->nvalues, b->nvalues);
    for (size_t i = 0; i < a->nvalues; i++)
        if (memcmp(&a->values[i], &b->values[i], sizeof(float)))
            fail_msg("%s: supernet value %zu: %.9g vs %.9g", what, i, a->values[i], b->values[i]);
    for (int i = 0; i < a->nstates; i++)
        if (memcmp(a->ostate[i], b->ostate[i], a->osize * sizeof(float)))
            fail_msg("%s: optimizer state %d differs", what, i);
    assert_int_equal(a->steps, b->steps);
    assert_int_equal(a->osteps, b->osteps);
    assert_int_equal(a->bn_batches, b->bn_batches);
}

/* The history lines without "seconds", as canonical JSON strings; returns the count. */
static int history(const char *dir, char **lines, int cap)
{
    char *path = file_in(dir, "history.jsonl");
    char *text = tu_read_file(path, NULL);
    free(path);
    assert_non_null(text);
    int n = 0;
    for (char *p = text, *nl; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
        json_error_t je;
        json_t *j = json_loadb(p, (size_t)(nl - p), 0, &je);
        if (!j)
            fail_msg("history line %d does not parse: %s", n + 1, je.text);
        assert_int_equal(json_object_del(j, "seconds"), 0);
        assert_true(n < cap);
        lines[n++] = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(j);
    }
    free(text);
    return n;
}

static int do_run(const gn_unas_run_config *c, bool resume, gn_unas **u, gn_error *err)
{
    *u = NULL;
    return gn_unas_run(F.sn, c, NULL, resume, u, err);
}

static void append(const char *dir, const char *text)
{
    char *path = file_in(dir, "history.jsonl");
    FILE *f = fopen(path, "a");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    free(path);
}

/* A run stopped after each of stops[] steps (this call's count), then finished. */
static void stopped_run(const char *name, const int *stops, int nstops, bool tamper, snapshot *s, char **lines,
                        int *nlines)
{
    gn_error err;
    gn_unas *u;
    char *dir = fresh_dir(name);
    gn_unas_run_config c;
    run_config(&c, dir);
    for (int i = 0; i < nstops; i++) {
        c.max_steps = stops[i];
        int rc = do_run(&c, i > 0, &u, &err);
        if (rc != 1)
            fail_msg("%s: stop %d: rc %d (%s)", name, i, rc, rc < 0 ? err.msg : "");
        gn_unas_free(u);
        if (tamper) /* lines after the checkpoint and a torn one: a kill -9 after them */
            append(dir, "{\"epoch\":2,\"step\":99,\"seconds\":1}\n{\"epoch\":2,\"st");
    }
    c.max_steps = 0;
    if (do_run(&c, true, &u, &err) != 0)
        fail_msg("%s: resume: %s", name, err.msg);
    take(u, s);
    gn_unas_free(u);
    *nlines = history(dir, lines, 64);
    free(dir);
}

static void test_resume_exact(void **state)
{
    (void)state;
    gn_error err;
    gn_unas *u;
    char *dir = fresh_dir("unas-straight");
    gn_unas_run_config c;
    run_config(&c, dir);
    if (do_run(&c, false, &u, &err) != 0)
        fail_msg("straight: %s", err.msg);
    snapshot s0, s1;
    take(u, &s0);
    gn_unas_free(u);
    char *l0[64], *l1[64];
    int n0 = history(dir, l0, 64), n1;
    /* 9 steps (3 per epoch), lines every 2 steps and at each epoch end */
    assert_int_equal(n0, 6); /* steps 2, 3, 4, 6, 8, 9 */
    assert_int_equal(s0.steps, 6);
    assert_int_equal(s0.osteps, 9);

    /* stopped at step 3 (the init / search boundary), then at step 5 (mid-epoch), then
     * to the end */
    const int stops[] = {3, 2};
    stopped_run("unas-stopped", stops, 2, true, &s1, l1, &n1);
    same_state(&s0, &s1, "stopped at steps 3 and 5");
    assert_int_equal(n1, n0);
    for (int i = 0; i < n0; i++)
        if (strcmp(l0[i], l1[i]))
            fail_msg("history line %d differs:\n  %s\n  %s", i + 1, l0[i], l1[i]);
    printf("# resume: %d history lines equal; last: %s\n", n0, l0[n0 - 1]);
    for (int i = 0; i < n0; i++) {
        free(l0[i]);
        free(l1[i]);
    }
    drop(&s0);
    drop(&s1);
    free(dir);
}

/* ------------------------------------------------------------------ refusals */
static void test_refusals(void **state)
{
    (void)state;
    gn_error err;
    gn_unas *u;
    char *dir = fresh_dir("unas-refuse"), *ckpt = file_in(dir, "checkpoint.safetensors");
    gn_unas_run_config c;
    run_config(&c, dir);

    /* resume without a checkpoint */
    assert_int_equal(do_run(&c, true, &u, &err), -1);
    assert_null(u);
    one_line(&err, "no checkpoint");
    one_line(&err, ckpt);

    c.max_steps = 1;
    assert_int_equal(do_run(&c, false, &u, &err), 1);
    gn_unas_free(u);
    /* a fresh run over it */
    assert_int_equal(do_run(&c, false, &u, &err), -1);
    one_line(&err, "a checkpoint exists");

    /* changed settings: the first differing key is named */
    c.step.arch_lr = 0.07;
    assert_int_equal(do_run(&c, true, &u, &err), -1);
    one_line(&err, "'arch_lr'");
    one_line(&err, ckpt);
    run_config(&c, dir);
    c.step.gen_gap = 0.25;
    assert_int_equal(do_run(&c, true, &u, &err), -1);
    one_line(&err, "'gen_gap'");
    run_config(&c, dir);
    c.aug.hflip = false;
    assert_int_equal(do_run(&c, true, &u, &err), -1);
    one_line(&err, "'aug.hflip'");
    /* the same space with shared candidate weights: same names and shapes, another
     * supernet (its tied slots would be overwritten by their masters) */
    gn_supernet *shared = NULL;
    gn_supernet_opts so = {.shared = true};
    assert_int_equal(gn_supernet_create(F.space, F.be, &so, &shared, &err), 0);
    run_config(&c, dir);
    assert_int_equal(gn_unas_run(shared, &c, NULL, true, &u, &err), -1);
    one_line(&err, "'supernet.shared'");
    gn_unas_free(u);
    gn_supernet_free(shared);
    run_config(&c, dir);
    c.max_steps = 1;
    c.log_every = 1; /* not a setting */
    assert_int_equal(do_run(&c, true, &u, &err), 1);
    gn_unas_free(u);

    /* a truncated checkpoint */
    size_t len;
    char *bytes = tu_read_file(ckpt, &len);
    assert_non_null(bytes);
    assert_int_equal(truncate(ckpt, (off_t)(len / 2)), 0);
    assert_int_equal(do_run(&c, true, &u, &err), -1);
    assert_null(u);
    one_line(&err, ckpt);
    printf("# truncated: %s\n", err.msg);
    free(bytes);
    free(ckpt);
    free(dir);
}

/* ------------------------------------------------------------------ schedules */
typedef struct {
    int n;
    int epoch[64];
    bool init[64];
    double wlr[64], alr[64];
} lines_seen;

static void on_progress(void *user, const gn_unas_progress *p)
{
    lines_seen *s = user;
    if (s->n < 64) {
        s->epoch[s->n] = p->epoch;
        s->init[s->n] = p->init;
        s->wlr[s->n] = p->weight_lr;
        s->alr[s->n] = p->arch_lr;
        s->n++;
    }
}

static double cosine(double peak, double floor, int j, int E)
{
    return floor + 0.5 * (peak - floor) * (1.0 + cos(M_PI * (double)j / E));
}

static void test_schedules(void **state)
{
    (void)state;
    gn_error err;
    gn_unas *u;
    gn_unas_run_config c;
    run_config(&c, NULL);
    c.step.estimator = GN_UNAS_GUMBEL;
    c.step.gen_gap = 0;
    c.step.arch_lr = 2e-3;
    c.step.weight_lr = 4e-3;
    c.weight_lr_min = 1e-4;
    c.arch_lr_min = 3e-4;
    c.epochs = 3;
    c.log_every = 1;
    gn_dataset_view small;
    assert_int_equal(gn_view_subset(&F.train, 8, 3, &small, &err), 0);
    c.train = &small; /* 2 steps per epoch */
    lines_seen seen = {0};
    gn_unas_run_callbacks cb = {on_progress, NULL, &seen};
    if (gn_unas_run(F.sn, &c, &cb, false, &u, &err) != 0)
        fail_msg("%s", err.msg);
    gn_unas_free(u);
    gn_view_free(&small);
    assert_int_equal(seen.n, 8); /* 8 steps, a line each */
    for (int i = 0; i < seen.n; i++) {
        int e = seen.epoch[i] - 1, j = e - c.init_epochs;
        double w = j < 0 ? c.step.weight_lr : cosine(c.step.weight_lr, c.weight_lr_min, j, c.epochs);
        double a = j < 0 ? c.step.arch_lr : cosine(c.step.arch_lr, c.arch_lr_min, j, c.epochs);
        assert_int_equal(seen.init[i], j < 0);
        printf("# line %d: epoch %d%s weight_lr %.6g (want %.6g), arch_lr %.6g (want %.6g)\n", i + 1, e + 1,
               j < 0 ? " (init)" : "", seen.wlr[i], w, seen.alr[i], a);
        if (!(fabs(seen.wlr[i] - w) <= 1e-15 * w) || (j >= 0 && !(fabs(seen.alr[i] - a) <= 1e-15 * a)))
            fail_msg("line %d (epoch %d): rates %.17g, %.17g, expected %.17g, %.17g", i + 1, e + 1, seen.wlr[i],
                     seen.alr[i], w, a);
    }
    /* the last search epoch is not at the floor: the cosine's T is the epoch count */
    assert_true(seen.wlr[seen.n - 1] > c.weight_lr_min * 1.5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gen_gap_gumbel), cmocka_unit_test(test_gen_gap_reinforce),
        cmocka_unit_test(test_measure),        cmocka_unit_test(test_resume_exact),
        cmocka_unit_test(test_refusals),       cmocka_unit_test(test_schedules),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
