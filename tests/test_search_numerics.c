/* test_search_numerics.c — the numerical parts of the optimizers (src/search) against
 * independent references:
 *   - GP posterior mean / standard deviation and log marginal likelihood vs a naive dense
 *     implementation (Gauss-Jordan inverse and LU determinant in long double), and the
 *     grid fit vs the naive likelihood at every coarse grid point;
 *   - expected improvement vs numerical integration of max(f - best - xi, 0) N(mu, sd^2);
 *   - 2-means vs a brute-force search over all 2-partitions of tiny data sets;
 *   - the dense SVM decision vs libsvm's own svm_predict_values; separation of a
 *     linearly separable toy set;
 *   - non-dominated sorting and the Pareto front vs O(n^2) brute force by definition;
 *   - 2-D hypervolume vs inclusion-exclusion over rectangles and vs unit-cell counting;
 *   - crowding distance on a hand-computed case. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <libsvm/svm.h>

#include "gpunas/rng.h"
#include "gpunas/search.h"
#include "search/search_internal.h"

/* ------------------------------------------------------------------ GP reference */

typedef long double ld;

/* inverse (Gauss-Jordan, partial pivoting) and log|det| of an n x n matrix */
static void naive_inverse(const double *A, int n, ld *inv, ld *logdet)
{
    ld *a = malloc(sizeof(ld) * (size_t)n * n);
    for (int i = 0; i < n * n; i++)
        a[i] = A[i];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            inv[i * n + j] = i == j;
    ld ld_ = 0;
    for (int col = 0; col < n; col++) {
        int piv = col;
        for (int r = col + 1; r < n; r++)
            if (fabsl(a[r * n + col]) > fabsl(a[piv * n + col]))
                piv = r;
        if (piv != col)
            for (int j = 0; j < n; j++) {
                ld t = a[col * n + j];
                a[col * n + j] = a[piv * n + j];
                a[piv * n + j] = t;
                t = inv[col * n + j];
                inv[col * n + j] = inv[piv * n + j];
                inv[piv * n + j] = t;
            }
        ld p = a[col * n + col];
        ld_ += logl(fabsl(p));
        for (int j = 0; j < n; j++) {
            a[col * n + j] /= p;
            inv[col * n + j] /= p;
        }
        for (int r = 0; r < n; r++) {
            if (r == col)
                continue;
            ld fct = a[r * n + col];
            for (int j = 0; j < n; j++) {
                a[r * n + j] -= fct * a[col * n + j];
                inv[r * n + j] -= fct * inv[col * n + j];
            }
        }
    }
    *logdet = ld_;
    free(a);
}

static double matern_ref(double r, double ell)
{
    /* sklearn's Matern(nu=2.5): (1 + K + K^2/3) exp(-K), K = sqrt(5) r / ell, written
     * out independently of gp.c */
    double K = sqrt(5.0) * r / ell;
    return (1.0 + K + K * K / 3.0) * exp(-K);
}

typedef struct {
    int n, d;
    double ym, ys;
    ld *Kinv;
    ld *yn;
    ld lml;
    double ell, c;
    const double *U;
} naive_gp;

static void naive_fit(naive_gp *g, const double *U, const double *y, int n, int d, double alpha, double ell,
                      double c)
{
    g->n = n;
    g->d = d;
    g->U = U;
    g->ell = ell;
    g->c = c;
    double m = 0, v = 0;
    for (int i = 0; i < n; i++)
        m += y[i];
    m /= n;
    for (int i = 0; i < n; i++)
        v += (y[i] - m) * (y[i] - m);
    double s = sqrt(v / n);
    if (!(s > 1e-12 * (1 + fabs(m))))
        s = 1;
    g->ym = m;
    g->ys = s;
    g->yn = malloc(sizeof(ld) * n);
    for (int i = 0; i < n; i++)
        g->yn[i] = (y[i] - m) / s;
    double *K = malloc(sizeof(double) * n * n);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double r2 = 0;
            for (int k = 0; k < d; k++)
                r2 += (U[i * d + k] - U[j * d + k]) * (U[i * d + k] - U[j * d + k]);
            K[i * n + j] = c * matern_ref(sqrt(r2), ell) + (i == j ? alpha : 0);
        }
    g->Kinv = malloc(sizeof(ld) * n * n);
    ld logdet;
    naive_inverse(K, n, g->Kinv, &logdet);
    ld q = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            q += g->yn[i] * g->Kinv[i * n + j] * g->yn[j];
    g->lml = -0.5L * q - 0.5L * logdet - 0.5L * n * logl(2.0L * (ld)M_PI);
    free(K);
}

static void naive_predict(const naive_gp *g, const double *x, double *mu, double *sd)
{
    int n = g->n, d = g->d;
    ld *k = malloc(sizeof(ld) * n);
    for (int i = 0; i < n; i++) {
        double r2 = 0;
        for (int t = 0; t < d; t++)
            r2 += (g->U[i * d + t] - x[t]) * (g->U[i * d + t] - x[t]);
        k[i] = g->c * matern_ref(sqrt(r2), g->ell);
    }
    ld m = 0, v = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            m += k[i] * g->Kinv[i * n + j] * g->yn[j];
            v += k[i] * g->Kinv[i * n + j] * k[j];
        }
    ld var = g->c - v;
    *mu = (double)(m * g->ys + g->ym);
    *sd = (double)(var > 0 ? sqrtl(var) * g->ys : 0);
    free(k);
}

static void naive_free(naive_gp *g)
{
    free(g->Kinv);
    free(g->yn);
}

static void random_data(gn_rng *r, int n, int d, double *U, double *y)
{
    for (int i = 0; i < n * d; i++)
        U[i] = gn_rng_uniform(r);
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int k = 0; k < d; k++)
            s += sin(3.0 * U[i * d + k] + k);
        y[i] = 0.8 + 0.05 * s + 0.01 * gn_rng_normal(r);
    }
}

static void test_gp_vs_naive(void **state)
{
    (void)state;
    gn_rng r;
    gn_rng_seed(&r, 11);
    const int n = 14, d = 3, m = 25;
    double U[14 * 3], y[14], Q[25 * 3], mu[25], sd[25];
    random_data(&r, n, d, U, y);
    for (int i = 0; i < m * d; i++)
        Q[i] = gn_rng_uniform(&r);
    memcpy(Q, U, sizeof(double) * d); /* one query exactly at a training point */
    const double ells[] = {0.15, 0.7, 3.0}, cs[] = {0.3, 1.3, 6.0};
    gn_error e = {{0}};
    for (int a = 0; a < 3; a++) {
        gn_gp gp = {0};
        assert_int_equal(gn__gp_fit_fixed(&gp, U, y, n, d, 0.01, ells[a], cs[a], &e), 0);
        naive_gp ng;
        naive_fit(&ng, U, y, n, d, 0.01, ells[a], cs[a]);
        assert_true(fabs(gp.lml - (double)ng.lml) < 1e-9 * (1 + fabs((double)ng.lml)));
        assert_int_equal(gn__gp_predict(&gp, Q, m, mu, sd, &e), 0);
        double bestref = -INFINITY;
        for (int i = 0; i < m; i++) {
            double rm, rs;
            naive_predict(&ng, Q + i * d, &rm, &rs);
            assert_true(fabs(mu[i] - rm) < 1e-10);
            assert_true(fabs(sd[i] - rs) < 1e-7); /* sqrt near 0 amplifies rounding */
        }
        for (int i = 0; i < n; i++) {
            double rm, rs;
            naive_predict(&ng, U + i * d, &rm, &rs);
            bestref = rm > bestref ? rm : bestref;
        }
        assert_true(fabs(gn__gp_best_mean(&gp) - bestref) < 1e-10);
        naive_free(&ng);
        gn__gp_free(&gp);
    }
}

static void test_gp_grid_fit(void **state)
{
    (void)state;
    gn_rng r;
    gn_rng_seed(&r, 5);
    const int n = 30, d = 4;
    double U[30 * 4], y[30];
    random_data(&r, n, d, U, y);
    gn_error e = {{0}};
    gn_gp gp = {0};
    assert_int_equal(gn__gp_fit(&gp, U, y, n, d, 0.01, &e), 0);
    naive_gp ng;
    naive_fit(&ng, U, y, n, d, 0.01, gp.ell, gp.c);
    assert_true(fabs(gp.lml - (double)ng.lml) < 1e-9 * (1 + fabs((double)ng.lml)));
    naive_free(&ng);
    /* no coarse grid point has a higher (naive) likelihood than the chosen one */
    for (int k = -8; k <= 4; k++)
        for (int j = -4; j <= 3; j++) {
            naive_gp g2;
            naive_fit(&g2, U, y, n, d, 0.01, sqrt((double)d) * exp2(0.5 * k), exp2((double)j));
            assert_true((double)g2.lml <= gp.lml + 1e-9);
            naive_free(&g2);
        }
    /* the fitted model explains the data: the mean at training points is close to y */
    double mu[30], sd[30], err2 = 0, var = 0, ym = 0;
    assert_int_equal(gn__gp_predict(&gp, U, n, mu, sd, &e), 0);
    for (int i = 0; i < n; i++)
        ym += y[i] / n;
    for (int i = 0; i < n; i++) {
        err2 += (mu[i] - y[i]) * (mu[i] - y[i]);
        var += (y[i] - ym) * (y[i] - ym);
    }
    assert_true(err2 < 0.5 * var);
    gn__gp_free(&gp);

    /* bad input: one line, names the problem */
    y[3] = NAN;
    assert_int_not_equal(gn__gp_fit(&gp, U, y, n, d, 0.01, &e), 0);
    assert_non_null(strstr(e.msg, "target 3"));
    y[3] = 0.5;
    assert_int_not_equal(gn__gp_fit(&gp, U, y, n, d, 0.0, &e), 0);
    assert_non_null(strstr(e.msg, "alpha"));
    /* constant targets: std falls back to 1 and the fit still works */
    for (int i = 0; i < n; i++)
        y[i] = 0.7;
    assert_int_equal(gn__gp_fit(&gp, U, y, n, d, 0.01, &e), 0);
    assert_true(fabs(gn__gp_best_mean(&gp) - 0.7) < 1e-12);
    gn__gp_free(&gp);
}

static void test_expected_improvement(void **state)
{
    (void)state;
    const double cases[][4] = {{0.5, 0.2, 0.4, 0.001}, {0.1, 0.05, 0.3, 0.0}, {1.0, 1.0, 1.0, 0.01},
                               {-2.0, 0.5, -1.0, 0.1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        double mu = cases[c][0], sd = cases[c][1], best = cases[c][2], xi = cases[c][3];
        /* trapezoid over mu +- 12 sd */
        int N = 200000;
        double lo = mu - 12 * sd, h = 24 * sd / N, s = 0;
        for (int i = 0; i <= N; i++) {
            double f = lo + i * h, g = f - best - xi;
            double v = (g > 0 ? g : 0) * exp(-0.5 * (f - mu) * (f - mu) / (sd * sd)) / (sd * sqrt(2 * M_PI));
            s += (i == 0 || i == N) ? 0.5 * v : v;
        }
        s *= h;
        assert_true(fabs(gn__expected_improvement(mu, sd, best, xi) - s) < 1e-8);
    }
    assert_true(gn__expected_improvement(1.0, 0.0, 0.5, 0.0) == 0.5);
    assert_true(gn__expected_improvement(0.2, 0.0, 0.5, 0.0) == 0.0);
}

/* ------------------------------------------------------------------ k-means */

static double brute_2means(const double *Z, int n, int p, int *best_lab)
{
    double best = INFINITY;
    int lab[16];
    for (unsigned mask = 1; mask < (1u << (n - 1)); mask++) { /* row n-1 always in cluster 0 */
        for (int i = 0; i < n; i++)
            lab[i] = (mask >> i) & 1;
        double c[2][8] = {{0}};
        int cnt[2] = {0, 0};
        for (int i = 0; i < n; i++) {
            cnt[lab[i]]++;
            for (int k = 0; k < p; k++)
                c[lab[i]][k] += Z[i * p + k];
        }
        for (int g = 0; g < 2; g++)
            for (int k = 0; k < p; k++)
                c[g][k] /= cnt[g];
        double in = 0;
        for (int i = 0; i < n; i++)
            for (int k = 0; k < p; k++)
                in += (Z[i * p + k] - c[lab[i]][k]) * (Z[i * p + k] - c[lab[i]][k]);
        if (in < best - 1e-12) {
            best = in;
            memcpy(best_lab, lab, sizeof(int) * n);
        }
    }
    return best;
}

static bool same_partition(const int *a, const int *b, int n)
{
    bool same = true, flip = true;
    for (int i = 0; i < n; i++) {
        same = same && a[i] == b[i];
        flip = flip && a[i] != b[i];
    }
    return same || flip;
}

static void test_kmeans_vs_brute_force(void **state)
{
    (void)state;
    gn_rng r, kr;
    gn_rng_seed(&r, 21);
    gn_rng_seed(&kr, 22);
    int found = 0, trials = 60;
    for (int t = 0; t < trials; t++) {
        int n = 6 + (int)gn_rng_below(&r, 7), p = 1 + (int)gn_rng_below(&r, 3);
        bool separated = t < 20;
        double Z[12 * 3];
        for (int i = 0; i < n; i++)
            for (int k = 0; k < p; k++)
                Z[i * p + k] = gn_rng_uniform(&r) + (separated && i < n / 2 ? 5.0 : 0.0);
        int lab[12], blab[12];
        double in;
        assert_int_equal(gn__kmeans2(Z, n, p, 10, &kr, lab, &in), 0);
        double bin = brute_2means(Z, n, p, blab);
        assert_true(in >= bin - 1e-9);
        /* a Lloyd fixed point: every row is at least as close to its own centroid */
        double c[2][3] = {{0}};
        int cnt[2] = {0, 0};
        for (int i = 0; i < n; i++) {
            cnt[lab[i]]++;
            for (int k = 0; k < p; k++)
                c[lab[i]][k] += Z[i * p + k];
        }
        assert_true(cnt[0] > 0 && cnt[1] > 0);
        for (int g = 0; g < 2; g++)
            for (int k = 0; k < p; k++)
                c[g][k] /= cnt[g];
        for (int i = 0; i < n; i++) {
            double d0 = 0, d1 = 0;
            for (int k = 0; k < p; k++) {
                d0 += (Z[i * p + k] - c[0][k]) * (Z[i * p + k] - c[0][k]);
                d1 += (Z[i * p + k] - c[1][k]) * (Z[i * p + k] - c[1][k]);
            }
            assert_true(lab[i] == 0 ? d0 <= d1 + 1e-12 : d1 <= d0 + 1e-12);
        }
        if (separated) {
            assert_true(fabs(in - bin) < 1e-9);
            assert_true(same_partition(lab, blab, n));
        }
        if (fabs(in - bin) < 1e-9)
            found++;
    }
    assert_true(found >= trials * 9 / 10);
    /* identical rows cannot be split */
    double Z[4] = {1, 1, 1, 1};
    int lab[4];
    assert_int_equal(gn__kmeans2(Z, 4, 1, 3, &kr, lab, NULL), 1);
}

/* ------------------------------------------------------------------ SVM */

static void test_svm_separable_and_libsvm(void **state)
{
    (void)state;
    gn_rng r;
    gn_rng_seed(&r, 3);
    const int n = 60, d = 3;
    double X[60 * 3];
    int y[60];
    for (int i = 0; i < n; i++) {
        y[i] = i % 2;
        for (int k = 0; k < d; k++)
            X[i * d + k] = gn_rng_uniform(&r) * 0.4 + (y[i] ? 0.55 : 0.05);
    }
    gn_svm s;
    gn_error e = {{0}};
    assert_int_equal(gn__svm_fit(&s, X, y, n, d, 1.0 / d, 1.0, &e), 0);
    for (int i = 0; i < n; i++)
        assert_int_equal(gn__svm_predict(&s, X + i * d), y[i]);
    /* far points on either side */
    double a[3] = {0.0, 0.0, 0.0}, b[3] = {1.0, 1.0, 1.0};
    assert_int_equal(gn__svm_predict(&s, a), 0);
    assert_int_equal(gn__svm_predict(&s, b), 1);

    /* the dense decision function equals libsvm's own on a noisy, non-separable set */
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < d; k++)
            X[i * d + k] = gn_rng_uniform(&r);
        y[i] = (X[i * d] + 0.3 * gn_rng_normal(&r) > 0.5) ? 1 : 0;
    }
    gn__svm_free(&s);
    assert_int_equal(gn__svm_fit(&s, X, y, n, d, 1.0 / d, 1.0, &e), 0);
    struct svm_node nodes[60 * 4], *rows[60];
    double yy[60];
    for (int i = 0; i < n; i++) {
        rows[i] = nodes + i * (d + 1);
        for (int k = 0; k < d; k++) {
            rows[i][k].index = k + 1;
            rows[i][k].value = X[i * d + k];
        }
        rows[i][d].index = -1;
        yy[i] = y[i];
    }
    struct svm_problem prob = {.l = n, .y = yy, .x = rows};
    struct svm_parameter par = {.svm_type = C_SVC, .kernel_type = RBF, .degree = 3, .gamma = 1.0 / d,
                                .cache_size = 16, .eps = 1e-3, .C = 1.0, .nu = 0.5, .p = 0.1, .shrinking = 1};
    struct svm_model *model = svm_train(&prob, &par);
    assert_non_null(model);
    for (int t = 0; t < 200; t++) {
        double q[3];
        struct svm_node qn[4];
        for (int k = 0; k < d; k++) {
            q[k] = gn_rng_uniform(&r) * 1.4 - 0.2;
            qn[k].index = k + 1;
            qn[k].value = q[k];
        }
        qn[d].index = -1;
        double dec;
        double lab = svm_predict_values(model, qn, &dec);
        assert_true(fabs(gn__svm_decision(&s, q) - dec) < 1e-12);
        assert_int_equal(gn__svm_predict(&s, q), (int)lab);
    }
    svm_free_and_destroy_model(&model);
    gn__svm_free(&s);

    /* one label only: refused with a one-line reason */
    for (int i = 0; i < n; i++)
        y[i] = 1;
    assert_int_not_equal(gn__svm_fit(&s, X, y, n, d, 1.0 / d, 1.0, &e), 0);
    assert_non_null(strstr(e.msg, "both labels"));
}

/* ------------------------------------------------------------------ Pareto */

static bool dom_ref(const double *a, const double *b, int m)
{
    bool ge = true, gt = false;
    for (int j = 0; j < m; j++) {
        if (a[j] < b[j])
            ge = false;
        if (a[j] > b[j])
            gt = true;
    }
    return ge && gt;
}

static void test_nondominated_sort_vs_brute(void **state)
{
    (void)state;
    gn_rng r;
    gn_rng_seed(&r, 8);
    gn_error e = {{0}};
    for (int t = 0; t < 40; t++) {
        int n = 1 + (int)gn_rng_below(&r, 40), m = 2 + (int)gn_rng_below(&r, 2);
        double obj[40 * 3];
        unsigned char feas[40];
        bool use_feas = t % 2;
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < m; j++)
                obj[i * m + j] = (double)gn_rng_below(&r, 6); /* many ties */
            feas[i] = gn_rng_uniform(&r) < 0.8;
        }
        int rank[40], ref[40];
        assert_int_equal(gn_pareto_ranks(obj, n, m, use_feas ? feas : NULL, rank, &e), 0);
        /* brute force: peel fronts by the definition */
        int assigned = 0, level = 0;
        for (int i = 0; i < n; i++)
            ref[i] = -1;
        int nfeas = 0;
        for (int i = 0; i < n; i++)
            if (!use_feas || feas[i])
                nfeas++;
        while (assigned < nfeas) {
            int cur[40], nc = 0;
            for (int i = 0; i < n; i++) {
                if (ref[i] >= 0 || (use_feas && !feas[i]))
                    continue;
                bool dominated = false;
                for (int k = 0; k < n && !dominated; k++)
                    if (k != i && ref[k] < 0 && (!use_feas || feas[k]) && dom_ref(obj + k * m, obj + i * m, m))
                        dominated = true;
                if (!dominated)
                    cur[nc++] = i;
            }
            for (int a = 0; a < nc; a++)
                ref[cur[a]] = level;
            assigned += nc;
            level++;
        }
        for (int i = 0; i < n; i++)
            if (ref[i] < 0)
                ref[i] = level; /* infeasible: after the last feasible front */
        for (int i = 0; i < n; i++)
            assert_int_equal(rank[i], ref[i]);
        int idx[40], nf;
        assert_int_equal(gn_pareto_front(obj, n, m, use_feas ? feas : NULL, idx, &nf, &e), 0);
        int k = 0;
        for (int i = 0; i < n; i++)
            if (ref[i] == 0 && (!use_feas || feas[i])) {
                assert_true(k < nf);
                assert_int_equal(idx[k++], i);
            }
        assert_int_equal(k, nf);
    }
    double bad[4] = {1, NAN, 2, 3};
    int rk[2];
    assert_int_not_equal(gn_pareto_ranks(bad, 2, 2, NULL, rk, &e), 0);
    assert_non_null(strstr(e.msg, "row 0 objective 1"));
    unsigned char f2[2] = {0, 1}; /* the NaN row is infeasible: ignored */
    assert_int_equal(gn_pareto_ranks(bad, 2, 2, f2, rk, &e), 0);
    assert_int_equal(rk[1], 0);
    assert_int_equal(rk[0], 1);
}

static double hv_inclusion_exclusion(const double *p, int n, const double ref[2])
{
    double total = 0;
    for (unsigned s = 1; s < (1u << n); s++) {
        double a = INFINITY, b = INFINITY;
        int bits = 0;
        for (int i = 0; i < n; i++)
            if (s >> i & 1) {
                bits++;
                a = fmin(a, p[2 * i]);
                b = fmin(b, p[2 * i + 1]);
            }
        double area = (a > ref[0] && b > ref[1]) ? (a - ref[0]) * (b - ref[1]) : 0;
        total += (bits % 2 ? 1 : -1) * area;
    }
    return total;
}

static void test_hypervolume(void **state)
{
    (void)state;
    gn_rng r;
    gn_rng_seed(&r, 17);
    gn_error e = {{0}};
    for (int t = 0; t < 50; t++) {
        int n = (int)gn_rng_below(&r, 11);
        double p[20], hv;
        double ref[2] = {-0.2 + 0.1 * gn_rng_normal(&r), -0.5};
        for (int i = 0; i < 2 * n; i++)
            p[i] = gn_rng_uniform(&r) * 2 - 0.5;
        assert_int_equal(gn_hypervolume2(p, n, NULL, ref, &hv, &e), 0);
        assert_true(fabs(hv - hv_inclusion_exclusion(p, n, ref)) < 1e-12);
    }
    /* integer points: count the unit cells dominated */
    for (int t = 0; t < 20; t++) {
        int n = 1 + (int)gn_rng_below(&r, 15);
        double p[30], hv, ref[2] = {0, 0};
        unsigned char feas[15];
        for (int i = 0; i < n; i++) {
            p[2 * i] = (double)gn_rng_below(&r, 12);
            p[2 * i + 1] = (double)gn_rng_below(&r, 12);
            feas[i] = gn_rng_below(&r, 4) != 0;
        }
        assert_int_equal(gn_hypervolume2(p, n, feas, ref, &hv, &e), 0);
        int cells = 0;
        for (int a = 0; a < 12; a++)
            for (int b = 0; b < 12; b++) {
                bool in = false;
                for (int i = 0; i < n && !in; i++)
                    if (feas[i] && p[2 * i] >= a + 1 && p[2 * i + 1] >= b + 1)
                        in = true;
                cells += in;
            }
        assert_true(hv == (double)cells);
    }
    double p[2] = {1, 1}, hv, ref[2] = {0, NAN};
    assert_int_not_equal(gn_hypervolume2(p, 1, NULL, ref, &hv, &e), 0);
    assert_non_null(strstr(e.msg, "reference point"));
}

static void test_crowding(void **state)
{
    (void)state;
    /* points on a line in 2 objectives: (0,4) (1,3) (3,1) (4,0) */
    double obj[8] = {0, 4, 1, 3, 3, 1, 4, 0};
    int mem[4] = {0, 1, 2, 3};
    double dist[4];
    assert_int_equal(gn__crowding(obj, 2, mem, 4, dist), 0);
    assert_true(isinf(dist[0]) && isinf(dist[3]));
    /* member 1: (3-0)/4 in obj0 + (4-1)/4 in obj1 = 1.5; member 2 likewise */
    assert_true(fabs(dist[1] - 1.5) < 1e-15);
    assert_true(fabs(dist[2] - 1.5) < 1e-15);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gp_vs_naive),
        cmocka_unit_test(test_gp_grid_fit),
        cmocka_unit_test(test_expected_improvement),
        cmocka_unit_test(test_kmeans_vs_brute_force),
        cmocka_unit_test(test_svm_separable_and_libsvm),
        cmocka_unit_test(test_nondominated_sort_vs_brute),
        cmocka_unit_test(test_hypervolume),
        cmocka_unit_test(test_crowding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
