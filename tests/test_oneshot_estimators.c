/* test_oneshot_estimators.c — the UNAS gradient estimators (src/oneshot) against the
 * exact gradient of E_q[f] on a space small enough to enumerate: M = 2 categoricals
 * with K = 3 choices (9 architectures), fixed random logits, f(d) a random table
 * (the test of docs/unas.md §8):
 *   - the distribution: q (softened too) against an independent formula, d log q/d theta
 *     against finite differences and against onehot - q, the entropy and its gradient;
 *   - the samples: z~ recomputed from v equals z, argmax z = argmax z~ = d, and z~ drawn
 *     with a FRESH v given d has the law of z given d (two-sample test of the means);
 *   - the pathwise Jacobians (relaxed and conditional) against finite differences;
 *   - the exact gradient (enumeration) against finite differences, then Monte Carlo:
 *     REINFORCE without and with an EMA baseline, the unified (REBAR) estimator and the
 *     RELAX form with two linear control variates must be unbiased (|mean - exact| <
 *     4.5 standard errors in every component); the relaxed estimator must show its
 *     bias (> 6 standard errors); the unified one must have a lower variance than
 *     REINFORCE; with eps > 0 the target is the gradient under the softened q.
 *   Each Monte Carlo loop averages per-sample estimates, each sample with its own d:
 *   that is UNAS's per-example mode (a batch of B examples, each its own
 *   architecture, averaged); the batched run with a per-batch EMA baseline checks the
 *   batch means directly.  Everything is seeded: the outcome is deterministic. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gpunas/oneshot.h"
#include "gpunas/rng.h"

#define NV 6           /* 2 categoricals x 3 choices */
#define N_DRAWS 1000000 /* per Monte Carlo run: ~0.5 s each in Release, ~3 s under ASan */
#define TAU 0.4        /* UNAS's fixed temperature */
#define Z_UNBIASED 4.5 /* |mean - exact| / standard error below this: unbiased */
#define Z_BIASED 6.0   /* ... above this in some component: visibly biased */

static const int K33[2] = {3, 3};

/* ------------------------------------------------------------------ fixtures */

typedef double table[3][3];

/* M = 2, K = 3 with seeded standard-normal logits (scaled by 0.8) */
static gn_oneshot_dist *make_dist(double eps, uint64_t seed)
{
    gn_oneshot_dist *q = NULL;
    gn_error err;
    assert_int_equal(gn_oneshot_dist_create(2, K33, eps, &q, &err), 0);
    gn_rng r;
    gn_rng_seed(&r, seed);
    double th[NV];
    for (int i = 0; i < NV; i++)
        th[i] = 0.8 * gn_rng_normal(&r);
    assert_int_equal(gn_oneshot_set_theta(q, th, &err), 0);
    return q;
}

static void random_table(table T, double lo, double hi, uint64_t seed)
{
    gn_rng r;
    gn_rng_seed(&r, seed);
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            T[a][b] = lo + (hi - lo) * gn_rng_uniform(&r);
}

/* f~(zeta) = sum_ab T[a][b] zeta1_a zeta2_b (= T on one-hot inputs) and its gradient */
static double multilinear(const table T, const double *zeta, double *g_zeta)
{
    double v = 0;
    for (int i = 0; i < NV; i++)
        g_zeta[i] = 0;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            v += T[a][b] * zeta[a] * zeta[3 + b];
            g_zeta[a] += T[a][b] * zeta[3 + b];
            g_zeta[3 + b] += T[a][b] * zeta[a];
        }
    return v;
}

/* E_q[T] = sum_d q(d) T(d) at q's current theta */
static double expectation(const gn_oneshot_dist *q, const table T)
{
    const double *p = gn_oneshot_probs(q);
    double E = 0;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            E += p[a] * p[3 + b] * T[a][b];
    return E;
}

/* the exact gradient by enumeration: sum_d q(d) T(d) d log q(d)/d theta */
static void exact_grad(const gn_oneshot_dist *q, const table T, double *g)
{
    const double *p = gn_oneshot_probs(q);
    gn_error err;
    for (int i = 0; i < NV; i++)
        g[i] = 0;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            int d[2] = {a, b};
            double s[NV];
            assert_int_equal(gn_oneshot_grad_log_prob(q, d, s, &err), 0);
            for (int i = 0; i < NV; i++)
                g[i] += p[a] * p[3 + b] * T[a][b] * s[i];
        }
}

/* central differences of E_q[T] in theta (h = 1e-5); theta restored after */
static void fd_grad(gn_oneshot_dist *q, const table T, double *g)
{
    const double h = 1e-5;
    double th[NV];
    gn_error err;
    memcpy(th, gn_oneshot_theta(q), sizeof th);
    for (int i = 0; i < NV; i++) {
        double t2[NV];
        memcpy(t2, th, sizeof th);
        t2[i] = th[i] + h;
        assert_int_equal(gn_oneshot_set_theta(q, t2, &err), 0);
        double ep = expectation(q, T);
        t2[i] = th[i] - h;
        assert_int_equal(gn_oneshot_set_theta(q, t2, &err), 0);
        double em = expectation(q, T);
        g[i] = (ep - em) / (2 * h);
    }
    assert_int_equal(gn_oneshot_set_theta(q, th, &err), 0);
}

static double max_abs_diff(const double *a, const double *b, int n)
{
    double m = 0;
    for (int i = 0; i < n; i++)
        m = fmax(m, fabs(a[i] - b[i]));
    return m;
}

/* ------------------------------------------------------------------ running moments */

typedef struct {
    long n;
    double mean[NV], m2[NV];
} moments;

static void mom_add(moments *w, const double *x)
{
    w->n++;
    for (int i = 0; i < NV; i++) {
        double dx = x[i] - w->mean[i];
        w->mean[i] += dx / w->n;
        w->m2[i] += dx * (x[i] - w->mean[i]);
    }
}

static double mom_var(const moments *w, int i) { return w->m2[i] / (w->n - 1); }

static double mom_total_var(const moments *w)
{
    double v = 0;
    for (int i = 0; i < NV; i++)
        v += mom_var(w, i);
    return v;
}

/* max over the components of |mean - target| / standard error */
static double mom_zmax(const moments *w, const double *target)
{
    double z = 0;
    for (int i = 0; i < NV; i++)
        z = fmax(z, fabs(w->mean[i] - target[i]) / sqrt(mom_var(w, i) / w->n));
    return z;
}

static void print_vec(const char *name, const double *v)
{
    print_message("  %-26s", name);
    for (int i = 0; i < NV; i++)
        print_message(" %+9.5f", v[i]);
    print_message("\n");
}

static void print_row(const char *name, const moments *w, const double *exact)
{
    print_message("  %-26s", name);
    for (int i = 0; i < NV; i++)
        print_message(" %+9.5f", w->mean[i]);
    print_message("  z=%6.2f  var=%.5f\n", mom_zmax(w, exact), mom_total_var(w));
}

/* ------------------------------------------------------------------ bad input */

static void test_bad_input(void **state)
{
    (void)state;
    gn_oneshot_dist *q = NULL;
    gn_error err;
    int k0[2] = {3, 0}, k17[2] = {3, 17}, k16[2] = {16, 1};
    err.msg[0] = 0;
    assert_int_equal(gn_oneshot_dist_create(2, k0, 0, &q, &err), -1);
    assert_null(q);
    assert_non_null(strstr(err.msg, "choices"));
    assert_int_equal(gn_oneshot_dist_create(2, k17, 0, &q, &err), -1);
    assert_int_equal(gn_oneshot_dist_create(0, K33, 0, &q, &err), -1);
    assert_int_equal(gn_oneshot_dist_create(GN_ONESHOT_MAX_M + 1, K33, 0, &q, &err), -1);
    assert_int_equal(gn_oneshot_dist_create(2, K33, -1e-3, &q, &err), -1);
    assert_non_null(strstr(err.msg, "eps"));
    assert_int_equal(gn_oneshot_dist_create(2, K33, NAN, &q, &err), -1);
    /* the limits themselves are fine */
    assert_int_equal(gn_oneshot_dist_create(2, k16, 0, &q, &err), 0);
    assert_int_equal(gn_oneshot_n(q), 17);
    assert_int_equal(gn_oneshot_offset(q, 1), 16);
    gn_oneshot_dist_free(q);
    int kmax[GN_ONESHOT_MAX_M];
    for (int m = 0; m < GN_ONESHOT_MAX_M; m++)
        kmax[m] = GN_ONESHOT_MAX_K;
    assert_int_equal(gn_oneshot_dist_create(GN_ONESHOT_MAX_M, kmax, 0.08, &q, &err), 0);
    gn_oneshot_dist_free(q);

    q = make_dist(0, 1);
    gn_oneshot_sample *s = NULL;
    assert_int_equal(gn_oneshot_sample_create(q, &s, &err), 0);
    gn_rng r;
    gn_rng_seed(&r, 2);
    assert_int_equal(gn_oneshot_draw(q, 0, &r, s, &err), -1);
    assert_non_null(strstr(err.msg, "tau"));
    assert_int_equal(gn_oneshot_draw(q, -0.4, &r, s, &err), -1);
    assert_int_equal(gn_oneshot_draw(q, NAN, &r, s, &err), -1);
    double g[NV], gz[NV] = {0};
    /* a sample that was never completed is refused */
    assert_int_equal(gn_oneshot_grad_reinforce(q, s, 1, 0, g, &err), -1);
    assert_int_equal(gn_oneshot_draw(q, TAU, &r, s, &err), 0);
    assert_int_equal(gn_oneshot_grad_reinforce(q, s, 1, 0, g, &err), 0);
    assert_int_equal(gn_oneshot_grad_reinforce(q, s, NAN, 0, g, &err), -1);
    gz[2] = INFINITY;
    assert_int_equal(gn_oneshot_grad_unified(q, s, 1, 1, gz, g, &err), -1);
    gz[2] = 0;
    int bad_d[2] = {0, 3};
    double lp;
    assert_int_equal(gn_oneshot_log_prob(q, bad_d, &lp, &err), -1);
    assert_int_equal(gn_oneshot_grad_log_prob(q, bad_d, g, &err), -1);
    double th[NV] = {0, 0, INFINITY, 0, 0, 0};
    assert_int_equal(gn_oneshot_set_theta(q, th, &err), -1);
    assert_non_null(strstr(err.msg, "logit 2"));
    /* a new theta makes the sample stale */
    th[2] = 0.5;
    assert_int_equal(gn_oneshot_set_theta(q, th, &err), 0);
    assert_int_equal(gn_oneshot_grad_unified(q, s, 1, 1, gz, g, &err), -1);
    assert_non_null(strstr(err.msg, "earlier theta"));
    /* ... and a sample of another distribution is refused */
    gn_oneshot_dist *q2 = make_dist(0, 1);
    assert_int_equal(gn_oneshot_draw(q2, TAU, &r, s, &err), 0);
    assert_int_equal(gn_oneshot_grad_relaxed(q, s, gz, g, &err), -1);
    assert_int_equal(gn_oneshot_grad_relaxed(q2, s, gz, g, &err), 0);
    /* ... and so is drawing into a sample made for another shape */
    int k333[3] = {3, 3, 3};
    gn_oneshot_dist *q3 = NULL;
    assert_int_equal(gn_oneshot_dist_create(3, k333, 0, &q3, &err), 0);
    assert_int_equal(gn_oneshot_draw(q3, TAU, &r, s, &err), -1);
    assert_non_null(strstr(err.msg, "shape"));
    gn_oneshot_dist_free(q3);

    gn_oneshot_baseline b;
    assert_int_equal(gn_oneshot_baseline_init(&b, 1.0, &err), -1);
    assert_int_equal(gn_oneshot_baseline_init(&b, -0.1, &err), -1);
    assert_int_equal(gn_oneshot_baseline_init(&b, 0.25, &err), 0);
    assert_int_equal(gn_oneshot_baseline_update(&b, 4.0, &err), 0);
    assert_true(fabs(b.value - 3.0) < 1e-15); /* 0.25 * 0 + 0.75 * 4 */
    assert_int_equal(gn_oneshot_baseline_update(&b, 8.0, &err), 0);
    assert_true(fabs(b.value - 6.75) < 1e-15); /* 0.25 * 3 + 0.75 * 8 */
    assert_int_equal(gn_oneshot_baseline_update(&b, NAN, &err), -1);
    assert_true(fabs(b.value - 6.75) < 1e-15);
    gn_oneshot_sample_free(s);
    gn_oneshot_dist_free(q);
    gn_oneshot_dist_free(q2);
}

/* ------------------------------------------------------------------ distribution */

/* q against the definition, log q, d log q/d theta against finite differences of
 * log q(d) for all 9 d, and (eps = 0) against onehot - q */
static void check_distribution(double eps)
{
    gn_oneshot_dist *q = make_dist(eps, 11);
    gn_error err;
    const double *th = gn_oneshot_theta(q), *p = gn_oneshot_probs(q), *l = gn_oneshot_logprobs(q);
    for (int m = 0; m < 2; m++) {
        double Z = 0;
        for (int i = 0; i < 3; i++)
            Z += exp(th[3 * m + i]);
        for (int i = 0; i < 3; i++) {
            double want = (exp(th[3 * m + i]) / Z + eps) / (1 + 3 * eps);
            assert_true(fabs(p[3 * m + i] - want) < 1e-15);
            assert_true(fabs(l[3 * m + i] - log(want)) < 1e-14);
        }
    }
    double worst = 0;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            int d[2] = {a, b};
            double g[NV], t2[NV];
            assert_int_equal(gn_oneshot_grad_log_prob(q, d, g, &err), 0);
            if (eps == 0)
                for (int i = 0; i < NV; i++) {
                    double onehot = (i < 3 ? i == a : i - 3 == b);
                    assert_true(fabs(g[i] - (onehot - p[i])) < 1e-15);
                }
            double th0[NV];
            memcpy(th0, th, sizeof th0);
            for (int i = 0; i < NV; i++) {
                const double h = 1e-5;
                double lp, lm;
                memcpy(t2, th0, sizeof t2);
                t2[i] += h;
                assert_int_equal(gn_oneshot_set_theta(q, t2, &err), 0);
                assert_int_equal(gn_oneshot_log_prob(q, d, &lp, &err), 0);
                t2[i] -= 2 * h;
                assert_int_equal(gn_oneshot_set_theta(q, t2, &err), 0);
                assert_int_equal(gn_oneshot_log_prob(q, d, &lm, &err), 0);
                worst = fmax(worst, fabs((lp - lm) / (2 * h) - g[i]));
            }
            assert_int_equal(gn_oneshot_set_theta(q, th0, &err), 0);
        }
    print_message("  eps=%.2f: max |d log q/d theta - finite difference| = %.2e\n", eps, worst);
    assert_true(worst < 1e-8);

    /* entropy and its gradient */
    double gH[NV], H = gn_oneshot_entropy(q, gH), want = 0;
    for (int i = 0; i < NV; i++)
        want -= p[i] * log(p[i]);
    assert_true(fabs(H - want) < 1e-14);
    double th0[NV], t2[NV];
    memcpy(th0, th, sizeof th0);
    for (int i = 0; i < NV; i++) {
        const double h = 1e-5;
        memcpy(t2, th0, sizeof t2);
        t2[i] += h;
        assert_int_equal(gn_oneshot_set_theta(q, t2, &err), 0);
        double Hp = gn_oneshot_entropy(q, NULL);
        t2[i] -= 2 * h;
        assert_int_equal(gn_oneshot_set_theta(q, t2, &err), 0);
        double Hm = gn_oneshot_entropy(q, NULL);
        assert_true(fabs((Hp - Hm) / (2 * h) - gH[i]) < 1e-8);
    }
    gn_oneshot_dist_free(q);
}

static void test_distribution(void **state)
{
    (void)state;
    check_distribution(0);
    check_distribution(0.08);
    /* far-apart logits (eps = 0): log q stays finite where q underflows */
    gn_oneshot_dist *q = NULL;
    gn_error err;
    assert_int_equal(gn_oneshot_dist_create(2, K33, 0, &q, &err), 0);
    double th[NV] = {800, 0, -800, 0, 0, 0};
    assert_int_equal(gn_oneshot_set_theta(q, th, &err), 0);
    const double *l = gn_oneshot_logprobs(q);
    assert_true(fabs(l[0]) < 1e-300 && fabs(l[1] + 800) < 1e-12 && fabs(l[2] + 1600) < 1e-12);
    assert_true(fabs(gn_oneshot_entropy(q, NULL) - log(3)) < 1e-14);
    gn_oneshot_dist_free(q);
}

/* ------------------------------------------------------------------ samples */

static void check_sample_identities(double eps)
{
    gn_oneshot_dist *q = make_dist(eps, 21);
    gn_oneshot_sample *s = NULL;
    gn_error err;
    assert_int_equal(gn_oneshot_sample_create(q, &s, &err), 0);
    gn_rng r;
    gn_rng_seed(&r, 22);
    double worst = 0;
    for (int t = 0; t < 20000; t++) {
        assert_int_equal(gn_oneshot_draw(q, TAU, &r, s, &err), 0);
        worst = fmax(worst, max_abs_diff(s->z, s->zt, NV));
        for (int m = 0; m < 2; m++) {
            const double *z = s->z + 3 * m, *zt = s->zt + 3 * m, *zeta = s->zeta + 3 * m;
            int k = s->d[m];
            double sum = 0, Z = 0;
            for (int i = 0; i < 3; i++) {
                assert_true(z[i] <= z[k] && zt[i] <= zt[k]);
                assert_true(s->u[3 * m + i] >= GN_ONESHOT_U_CLAMP && s->u[3 * m + i] <= 1 - GN_ONESHOT_U_CLAMP);
                sum += zeta[i];
                Z += exp((z[i] - z[k]) / TAU);
            }
            assert_true(fabs(sum - 1) < 1e-12);
            for (int i = 0; i < 3; i++)
                assert_true(fabs(zeta[i] - exp((z[i] - z[k]) / TAU) / Z) < 1e-12);
        }
    }
    print_message("  eps=%.2f: max |z~ - z| over 20000 draws = %.2e\n", eps, worst);
    assert_true(worst < 1e-9);
    gn_oneshot_sample_free(s);
    gn_oneshot_dist_free(q);
}

static void test_sample_identities(void **state)
{
    (void)state;
    check_sample_identities(0);
    check_sample_identities(0.08);
}

/* z~ drawn with a FRESH v ~ U(0,1)^n given d ~ q must have the law of z given d
 * (REBAR's conditional, the Gumbel-max posterior): compare E[z_i | d_m = k] from joint
 * draws with E[z~_i | d_m = k] from (d, fresh v), for every m, k, i. */
static void test_conditional_law(void **state)
{
    (void)state;
    gn_oneshot_dist *q = make_dist(0, 31);
    gn_oneshot_sample *s = NULL;
    gn_error err;
    assert_int_equal(gn_oneshot_sample_create(q, &s, &err), 0);
    gn_rng r;
    gn_rng_seed(&r, 32);
    /* [source: 0 joint, 1 conditional][m][k][i]: count, sum, sum of squares */
    static double cnt[2][2][3][3], sum[2][2][3][3], sq[2][2][3][3];
    memset(cnt, 0, sizeof cnt);
    memset(sum, 0, sizeof sum);
    memset(sq, 0, sizeof sq);
    for (int t = 0; t < N_DRAWS; t++) {
        assert_int_equal(gn_oneshot_draw(q, TAU, &r, s, &err), 0);
        double log_v[NV], zt[NV];
        for (int i = 0; i < NV; i++) {
            double v = gn_rng_uniform(&r); /* [0, 1): log v < 0 once 0 is moved up */
            log_v[i] = log(v > 0 ? v : 0x1p-53);
        }
        assert_int_equal(gn_oneshot_cond_eval(q, s->d, log_v, zt, &err), 0);
        for (int m = 0; m < 2; m++) {
            int k = s->d[m];
            for (int i = 0; i < 3; i++) {
                assert_true(zt[3 * m + i] <= zt[3 * m + k]);
                double x[2] = {s->z[3 * m + i], zt[3 * m + i]};
                for (int src = 0; src < 2; src++) {
                    cnt[src][m][k][i]++;
                    sum[src][m][k][i] += x[src];
                    sq[src][m][k][i] += x[src] * x[src];
                }
            }
        }
    }
    double zmax = 0;
    for (int m = 0; m < 2; m++)
        for (int k = 0; k < 3; k++)
            for (int i = 0; i < 3; i++) {
                double mu[2], se2 = 0;
                for (int src = 0; src < 2; src++) {
                    double n = cnt[src][m][k][i];
                    mu[src] = sum[src][m][k][i] / n;
                    se2 += (sq[src][m][k][i] / n - mu[src] * mu[src]) / n;
                }
                zmax = fmax(zmax, fabs(mu[0] - mu[1]) / sqrt(se2));
                if (m == 0 && k == 0)
                    print_message("  E[z_%d | d_1 = 0]: joint %+.4f  conditional %+.4f\n", i, mu[0], mu[1]);
            }
    print_message("  conditional law: max two-sample z over 18 cells = %.2f\n", zmax);
    assert_true(zmax < Z_UNBIASED);
    gn_oneshot_sample_free(s);
    gn_oneshot_dist_free(q);
}

/* ------------------------------------------------------------------ Jacobians */

/* zeta of one categorical from z */
static void softmax3(const double *z, double *y)
{
    double mx = fmax(z[0], fmax(z[1], z[2])), s = 0;
    for (int i = 0; i < 3; i++)
        s += y[i] = exp((z[i] - mx) / TAU);
    for (int i = 0; i < 3; i++)
        y[i] /= s;
}

/* zeta (kind 0: u fixed, z = l + G) or zeta~ (kind 1: (v, d) fixed) at theta */
static void zeta_at(gn_oneshot_dist *q, const double *theta, const gn_oneshot_sample *s0, int kind,
                    gn_oneshot_sample *tmp, double *zeta)
{
    gn_error err;
    assert_int_equal(gn_oneshot_set_theta(q, theta, &err), 0);
    double z[NV];
    if (kind == 0) {
        assert_int_equal(gn_oneshot_draw_u(q, TAU, s0->u, tmp, &err), 0);
        memcpy(z, tmp->z, sizeof z);
    } else {
        assert_int_equal(gn_oneshot_cond_eval(q, s0->d, s0->log_v, z, &err), 0);
    }
    softmax3(z, zeta);
    softmax3(z + 3, zeta + 3);
}

/* d zeta_j/d theta_i by central differences, J[j][i] */
static void fd_jacobian(gn_oneshot_dist *q, const gn_oneshot_sample *s0, int kind, gn_oneshot_sample *tmp,
                        double J[NV][NV])
{
    const double h = 1e-5;
    double th0[NV], t2[NV], zp[NV], zm[NV];
    gn_error err;
    memcpy(th0, gn_oneshot_theta(q), sizeof th0);
    for (int i = 0; i < NV; i++) {
        memcpy(t2, th0, sizeof t2);
        t2[i] += h;
        zeta_at(q, t2, s0, kind, tmp, zp);
        t2[i] -= 2 * h;
        zeta_at(q, t2, s0, kind, tmp, zm);
        for (int j = 0; j < NV; j++)
            J[j][i] = (zp[j] - zm[j]) / (2 * h);
    }
    assert_int_equal(gn_oneshot_set_theta(q, th0, &err), 0);
}

/* rows of the analytic Jacobian from the VJPs with unit vectors */
static void vjp_jacobian(gn_oneshot_dist *q, gn_oneshot_sample *s, int kind, double J[NV][NV])
{
    gn_error err;
    for (int j = 0; j < NV; j++) {
        double e[NV] = {0};
        e[j] = 1;
        int rc = kind == 0 ? gn_oneshot_vjp_relaxed(q, s, e, J[j], &err) : gn_oneshot_vjp_cond(q, s, e, J[j], &err);
        assert_int_equal(rc, 0);
    }
}

static double max_abs_diff_mat(double A[NV][NV], double B[NV][NV])
{
    double m = 0;
    for (int j = 0; j < NV; j++)
        m = fmax(m, max_abs_diff(A[j], B[j], NV));
    return m;
}

/* The relaxed Jacobian against differences of zeta(theta) with u fixed; the conditional
 * one against differences of zeta~(theta) with (v, d) fixed — the reparameterisation
 * REBAR differentiates.  Holding u fixed instead gives back the RELAXED Jacobian (z~ =
 * z as functions of theta then), which must differ from the conditional one (it does,
 * by 0.01 or more in the mean).  Draws whose argmax has a margin under 1e-3 are skipped,
 * so that d is the same at theta +- h with u fixed. */
static void check_jacobians(double eps)
{
    gn_oneshot_dist *q = make_dist(eps, 41);
    gn_oneshot_sample *s = NULL, *tmp = NULL;
    gn_error err;
    assert_int_equal(gn_oneshot_sample_create(q, &s, &err), 0);
    assert_int_equal(gn_oneshot_sample_create(q, &tmp, &err), 0);
    gn_rng r;
    gn_rng_seed(&r, 42);
    double worst_rel = 0, worst_cond = 0, mean_gap = 0;
    int checked = 0;
    while (checked < 200) {
        assert_int_equal(gn_oneshot_draw(q, TAU, &r, s, &err), 0);
        int near_tie = 0;
        for (int m = 0; m < 2; m++)
            for (int i = 0; i < 3; i++)
                if (i != s->d[m] && s->z[3 * m + s->d[m]] - s->z[3 * m + i] < 1e-3)
                    near_tie = 1;
        if (near_tie)
            continue;
        double A[NV][NV], C[NV][NV], F[NV][NV];
        vjp_jacobian(q, s, 0, A); /* both before the differences re-set theta */
        vjp_jacobian(q, s, 1, C);
        fd_jacobian(q, s, 0, tmp, F);
        worst_rel = fmax(worst_rel, max_abs_diff_mat(A, F));
        /* u fixed: the argmax did not move */
        assert_int_equal(tmp->d[0], s->d[0]);
        assert_int_equal(tmp->d[1], s->d[1]);
        fd_jacobian(q, s, 1, tmp, F);
        worst_cond = fmax(worst_cond, max_abs_diff_mat(C, F));
        mean_gap += max_abs_diff_mat(A, C) / 200;
        checked++;
    }
    print_message("  eps=%.2f, 200 draws: max |J - finite difference| relaxed %.2e, conditional %.2e;"
                  " mean max|J - J~| %.2e\n",
                  eps, worst_rel, worst_cond, mean_gap);
    assert_true(worst_rel < 1e-7);
    assert_true(worst_cond < 1e-7);
    assert_true(mean_gap > 1e-2); /* ... so u fixed would not have checked J~ */
    gn_oneshot_sample_free(tmp);
    gn_oneshot_sample_free(s);
    gn_oneshot_dist_free(q);
}

static void test_jacobians(void **state)
{
    (void)state;
    check_jacobians(0);
    check_jacobians(0.08);
}

/* The unified estimator minus its score term is d/dtheta [f~(zeta(theta; u)) -
 * f~(zeta~(theta; v, d))]: check the estimator's pathwise wiring by differences. */
static void test_unified_pathwise_term(void **state)
{
    (void)state;
    gn_oneshot_dist *q = make_dist(0.08, 51);
    gn_oneshot_sample *s = NULL, *tmp = NULL;
    gn_error err;
    assert_int_equal(gn_oneshot_sample_create(q, &s, &err), 0);
    assert_int_equal(gn_oneshot_sample_create(q, &tmp, &err), 0);
    table T;
    random_table(T, 0, 1, 52);
    gn_rng r;
    gn_rng_seed(&r, 53);
    double worst = 0;
    for (int t = 0; t < 100; t++) {
        assert_int_equal(gn_oneshot_draw(q, TAU, &r, s, &err), 0);
        double gz[NV], g[NV], sc[NV], th0[NV];
        double ft = multilinear(T, s->zeta, gz);
        double fd_val = 10 * T[s->d[0]][s->d[1]]; /* any f(d): the score term is removed */
        assert_int_equal(gn_oneshot_grad_unified(q, s, fd_val, ft, gz, g, &err), 0);
        assert_int_equal(gn_oneshot_grad_log_prob(q, s->d, sc, &err), 0);
        memcpy(th0, gn_oneshot_theta(q), sizeof th0);
        for (int i = 0; i < NV; i++) {
            const double h = 1e-5;
            double t2[NV], zp[NV], zm[NV], ztp[NV], ztm[NV], dummy[NV];
            memcpy(t2, th0, sizeof t2);
            t2[i] += h;
            zeta_at(q, t2, s, 0, tmp, zp);
            zeta_at(q, t2, s, 1, tmp, ztp);
            t2[i] -= 2 * h;
            zeta_at(q, t2, s, 0, tmp, zm);
            zeta_at(q, t2, s, 1, tmp, ztm);
            double fd = (multilinear(T, zp, dummy) - multilinear(T, ztp, dummy) - multilinear(T, zm, dummy) +
                         multilinear(T, ztm, dummy)) /
                        (2 * h);
            worst = fmax(worst, fabs(g[i] - (fd_val - ft) * sc[i] - fd));
        }
        assert_int_equal(gn_oneshot_set_theta(q, th0, &err), 0);
    }
    print_message("  unified pathwise term vs differences, 100 draws: max abs error %.2e\n", worst);
    assert_true(worst < 1e-7);
    gn_oneshot_sample_free(tmp);
    gn_oneshot_sample_free(s);
    gn_oneshot_dist_free(q);
}

/* ------------------------------------------------------------------ Monte Carlo */

/* exact gradient of E_q[T] by enumeration, checked against central differences */
static void exact_checked(gn_oneshot_dist *q, const table T, double *g)
{
    double fd[NV];
    exact_grad(q, T, g);
    fd_grad(q, T, fd);
    double e = max_abs_diff(g, fd, NV);
    print_message("  exact vs finite differences (h = 1e-5): max abs diff %.2e\n", e);
    assert_true(e < 1e-9);
}

/* Smooth f~: REINFORCE (no baseline; EMA baseline per draw, m = 0.9; per-example
 * batches of 16 with a per-batch EMA, m = 0.1 = UNAS's 0.9 on the newest), unified,
 * relaxed. */
static void test_estimators_smooth(void **state)
{
    (void)state;
    gn_oneshot_dist *q = make_dist(0, 61);
    gn_oneshot_sample *s = NULL;
    gn_error err;
    assert_int_equal(gn_oneshot_sample_create(q, &s, &err), 0);
    table T;
    random_table(T, 0, 1, 62);
    double exact[NV];
    exact_checked(q, T, exact);

    enum { B = 16 };
    moments rf = {0}, rfb = {0}, uni = {0}, rel = {0}, batch = {0};
    gn_oneshot_baseline b1, b16;
    assert_int_equal(gn_oneshot_baseline_init(&b1, 0.9, &err), 0);
    assert_int_equal(gn_oneshot_baseline_init(&b16, 0.1, &err), 0);
    double bsum[NV] = {0}, fsum = 0;
    gn_rng r;
    gn_rng_seed(&r, 63);
    for (int t = 0; t < N_DRAWS; t++) {
        double g[NV], gz[NV];
        assert_int_equal(gn_oneshot_draw(q, TAU, &r, s, &err), 0);
        double f = T[s->d[0]][s->d[1]], ft = multilinear(T, s->zeta, gz);
        assert_int_equal(gn_oneshot_grad_reinforce(q, s, f, 0, g, &err), 0);
        mom_add(&rf, g);
        assert_int_equal(gn_oneshot_grad_reinforce(q, s, f, b1.value, g, &err), 0);
        mom_add(&rfb, g);
        assert_int_equal(gn_oneshot_baseline_update(&b1, f, &err), 0);
        assert_int_equal(gn_oneshot_grad_unified(q, s, f, ft, gz, g, &err), 0);
        mom_add(&uni, g);
        assert_int_equal(gn_oneshot_grad_relaxed(q, s, gz, g, &err), 0);
        mom_add(&rel, g);
        /* per-example mode: 16 examples, each its own d, one baseline read before the batch */
        assert_int_equal(gn_oneshot_grad_reinforce(q, s, f, b16.value, g, &err), 0);
        for (int i = 0; i < NV; i++)
            bsum[i] += g[i] / B;
        fsum += f / B;
        if ((t + 1) % B == 0) {
            mom_add(&batch, bsum);
            assert_int_equal(gn_oneshot_baseline_update(&b16, fsum, &err), 0);
            memset(bsum, 0, sizeof bsum);
            fsum = 0;
        }
    }
    print_message("  smooth f (tau %.1f, N = %d; z = max |mean - exact| / s.e.):\n", TAU, N_DRAWS);
    print_vec("exact", exact);
    print_row("reinforce", &rf, exact);
    print_row("reinforce, EMA b (m=0.9)", &rfb, exact);
    print_row("per-example B=16, EMA b *", &batch, exact);
    print_row("unified (rebar)", &uni, exact);
    print_row("relaxed (biased)", &rel, exact);
    print_message("  * one row per batch mean (its var is that of a mean of 16)\n");
    print_message("  variance: unified / reinforce = %.4f, reinforce+b / reinforce = %.4f\n",
                  mom_total_var(&uni) / mom_total_var(&rf), mom_total_var(&rfb) / mom_total_var(&rf));
    assert_true(mom_zmax(&rf, exact) < Z_UNBIASED);
    assert_true(mom_zmax(&rfb, exact) < Z_UNBIASED);
    assert_true(mom_zmax(&batch, exact) < Z_UNBIASED);
    assert_true(mom_zmax(&uni, exact) < Z_UNBIASED);
    assert_true(mom_zmax(&rel, exact) > Z_BIASED);
    assert_true(mom_total_var(&uni) < mom_total_var(&rf));
    gn_oneshot_sample_free(s);
    gn_oneshot_dist_free(q);
}

/* eps = 0.08: the estimators are unbiased for the gradient under the SOFTENED q, and
 * the test can tell it from the gradient of E_p[f] (the unsoftened distribution). */
static void test_estimators_softened(void **state)
{
    (void)state;
    const double eps = 0.08;
    gn_oneshot_dist *q = make_dist(eps, 71), *p0 = make_dist(0, 71);
    gn_oneshot_sample *s = NULL;
    gn_error err;
    assert_int_equal(gn_oneshot_sample_create(q, &s, &err), 0);
    table T;
    random_table(T, 0, 1, 72);
    double exact[NV], wrong[NV];
    exact_checked(q, T, exact);
    exact_grad(p0, T, wrong);
    moments rf = {0}, uni = {0};
    gn_rng r;
    gn_rng_seed(&r, 73);
    for (int t = 0; t < N_DRAWS; t++) {
        double g[NV], gz[NV];
        assert_int_equal(gn_oneshot_draw(q, TAU, &r, s, &err), 0);
        double f = T[s->d[0]][s->d[1]], ft = multilinear(T, s->zeta, gz);
        assert_int_equal(gn_oneshot_grad_reinforce(q, s, f, 0.5, g, &err), 0);
        mom_add(&rf, g);
        assert_int_equal(gn_oneshot_grad_unified(q, s, f, ft, gz, g, &err), 0);
        mom_add(&uni, g);
    }
    print_message("  softened q (eps %.2f, N = %d):\n", eps, N_DRAWS);
    print_vec("exact (softened q)", exact);
    print_vec("grad E_p f (unsoftened)", wrong);
    print_row("reinforce, b = 0.5", &rf, exact);
    print_row("unified (rebar)", &uni, exact);
    print_message("  unified vs the unsoftened target: z = %.2f\n", mom_zmax(&uni, wrong));
    assert_true(mom_zmax(&rf, exact) < Z_UNBIASED);
    assert_true(mom_zmax(&uni, exact) < Z_UNBIASED);
    assert_true(mom_zmax(&uni, wrong) > Z_BIASED);
    gn_oneshot_sample_free(s);
    gn_oneshot_dist_free(q);
    gn_oneshot_dist_free(p0);
}

/* A discontinuous f (a latency hinge relu(lat(d) - 10 ms), lat a table) with linear
 * control variates c(zeta) = w.zeta + b0 (the RELAX/latency form): unbiased for a
 * fitted w (additive fit of f) and for a poor random one. */
static void test_estimators_latency(void **state)
{
    (void)state;
    gn_oneshot_dist *q = make_dist(0, 81);
    gn_oneshot_sample *s = NULL;
    gn_error err;
    assert_int_equal(gn_oneshot_sample_create(q, &s, &err), 0);
    table lat, F;
    random_table(lat, 5, 15, 82);
    double mean = 0;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            mean += (F[a][b] = fmax(lat[a][b] - 10.0, 0)) / 9;
    double w_fit[NV] = {0}, w_bad[NV];
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            w_fit[a] += F[a][b] / 3;
            w_fit[3 + b] += F[a][b] / 3;
        }
    gn_rng r;
    gn_rng_seed(&r, 83);
    for (int i = 0; i < NV; i++)
        w_bad[i] = 3 * gn_rng_normal(&r);
    double exact[NV];
    exact_checked(q, F, exact);
    moments rf = {0}, fit = {0}, bad = {0};
    for (int t = 0; t < N_DRAWS; t++) {
        double g[NV];
        assert_int_equal(gn_oneshot_draw(q, TAU, &r, s, &err), 0);
        double f = F[s->d[0]][s->d[1]];
        assert_int_equal(gn_oneshot_grad_reinforce(q, s, f, 0, g, &err), 0);
        mom_add(&rf, g);
        assert_int_equal(gn_oneshot_grad_relax_linear(q, s, f, w_fit, -mean, g, &err), 0);
        mom_add(&fit, g);
        assert_int_equal(gn_oneshot_grad_relax_linear(q, s, f, w_bad, 5.0, g, &err), 0);
        mom_add(&bad, g);
    }
    print_message("  latency hinge f (N = %d):\n", N_DRAWS);
    print_vec("exact", exact);
    print_row("reinforce", &rf, exact);
    print_row("relax, fitted linear c", &fit, exact);
    print_row("relax, random linear c", &bad, exact);
    print_message("  variance: fitted c / reinforce = %.4f, random c / reinforce = %.4f\n",
                  mom_total_var(&fit) / mom_total_var(&rf), mom_total_var(&bad) / mom_total_var(&rf));
    assert_true(mom_zmax(&rf, exact) < Z_UNBIASED);
    assert_true(mom_zmax(&fit, exact) < Z_UNBIASED);
    assert_true(mom_zmax(&bad, exact) < Z_UNBIASED);
    assert_true(mom_total_var(&fit) < mom_total_var(&rf)); /* a c close to f pays */
    gn_oneshot_sample_free(s);
    gn_oneshot_dist_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_distribution),
        cmocka_unit_test(test_sample_identities),
        cmocka_unit_test(test_conditional_law),
        cmocka_unit_test(test_jacobians),
        cmocka_unit_test(test_unified_pathwise_term),
        cmocka_unit_test(test_estimators_smooth),
        cmocka_unit_test(test_estimators_softened),
        cmocka_unit_test(test_estimators_latency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
