/*
 * gp.c — Gaussian-process regression for the LA-MCTS proposal step (BO).
 *
 * Model (as sklearn's GaussianProcessRegressor(ConstantKernel * Matern(nu=2.5), alpha),
 * which the reference LaMCTS uses): y_std = (y - mean(y)) / std(y) (std 1 if y is
 * constant), prior f ~ GP(0, c * M_ell), M_ell(r) = (1 + s + s^2/3) exp(-s), s = sqrt(5)
 * r / ell, observations y_std = f + N(0, alpha).  Inputs are points of [0,1]^d (the
 * optimizer's u-space).  Standardising y makes alpha and the c grid mean the same thing
 * for any objective scale (accuracy in [0,1], or a benchmark's raw values).
 *
 * Fitting: K = c M + alpha I, Cholesky K = L L^T (LAPACKE_dpotrf), w = K^-1 y
 * (LAPACKE_dpotrs), log marginal likelihood
 *     lml = -1/2 y^T w - sum log L_ii - n/2 log(2 pi).
 * Hyper-parameters (ell, c) maximise lml over a grid rather than by L-BFGS: a coarse
 * grid ell / sqrt(d) in 2^(k/2), k = -8..4 (1/16 .. 4; sqrt(d) is the scale of distances
 * in the unit cube) times c in 2^j, j = -4..3, then two 3x3 refinements around the best
 * (half, then quarter of the coarse steps in log space).  About 120 Cholesky
 * factorisations of an n x n matrix, with the distance matrix computed once and the
 * Matern matrix once per ell — deterministic, derivative-free and robust to the flat
 * or multi-modal likelihoods small data sets give; L-BFGS would need gradients and
 * restarts for little gain on this budget.  A grid point whose K is not positive
 * definite (cannot happen with alpha > 0 but is checked) is skipped.
 *
 * Prediction at m points, in blocks of 256: k_* (n x B), mean = k_*^T w, variance =
 * c - |L^-1 k_*|^2 (LAPACKE_dtrtrs), clipped at 0; returned in the original units of y.
 * This is the latent f's variance (no alpha), as sklearn's predict(return_std=True).
 *
 * Threads: the matrices are small (n <= a few hundred), where OpenBLAS's threads only
 * cost (on a loaded 2-core machine a proposal took 3x longer with them), and a fixed
 * thread count makes the factorisations bit-identical on machines with different core
 * counts (a resumed search replays proposals exactly).  So every public entry point here
 * runs OpenBLAS single-threaded and restores the caller's thread count on return.
 */
#include "search/search_internal.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

double gn__matern52(double r, double ell)
{
    double s = sqrt(5.0) * r / ell;
    return (1.0 + s + s * s / 3.0) * exp(-s);
}

void gn__gp_free(gn_gp *gp)
{
    free(gp->U);
    free(gp->L);
    free(gp->w);
    free(gp->yn);
    memset(gp, 0, sizeof *gp);
}

static int blas_single(void)
{
    int prev = openblas_get_num_threads();
    if (prev != 1)
        openblas_set_num_threads(1);
    return prev;
}

static void blas_restore(int prev)
{
    if (prev != 1)
        openblas_set_num_threads(prev);
}

static double sqdist(const double *a, const double *b, int d)
{
    double s = 0;
    for (int k = 0; k < d; k++) {
        double t = a[k] - b[k];
        s += t * t;
    }
    return s;
}

/* standardise y into yn; sets mean/std */
static void standardise(const double *y, int n, double *yn, double *mean, double *std)
{
    double mu = 0;
    for (int i = 0; i < n; i++)
        mu += y[i];
    mu /= n;
    double v = 0;
    for (int i = 0; i < n; i++)
        v += (y[i] - mu) * (y[i] - mu);
    double sd = sqrt(v / n);
    if (!(sd > 1e-12 * (1.0 + fabs(mu))))
        sd = 1.0;
    for (int i = 0; i < n; i++)
        yn[i] = (y[i] - mu) / sd;
    *mean = mu;
    *std = sd;
}

/* K = c M + alpha I into Kbuf (column-major, full), factor, solve; lml.  0 or -1 (not PD) */
static int lml_at(const double *M, int n, const double *yn, double c, double alpha, double *K, double *w,
                  double *lml)
{
    for (size_t t = 0; t < (size_t)n * n; t++)
        K[t] = c * M[t];
    for (int i = 0; i < n; i++)
        K[(size_t)i * n + i] += alpha;
    if (LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', n, K, n) != 0)
        return -1;
    memcpy(w, yn, sizeof(double) * (size_t)n);
    if (LAPACKE_dpotrs(LAPACK_COL_MAJOR, 'L', n, 1, K, n, w, n) != 0)
        return -1;
    double q = 0, logdet = 0;
    for (int i = 0; i < n; i++) {
        q += yn[i] * w[i];
        logdet += log(K[(size_t)i * n + i]);
    }
    *lml = -0.5 * q - logdet - 0.5 * n * log(2.0 * M_PI);
    return 0;
}

static void matern_matrix(const double *D2, int n, double ell, double *M)
{
    for (size_t t = 0; t < (size_t)n * n; t++)
        M[t] = gn__matern52(sqrt(D2[t]), ell);
}

static int alloc_fit(gn_gp *gp, const double *U, int n, int d, gn_error *err)
{
    gn__gp_free(gp);
    gp->n = n;
    gp->d = d;
    gp->U = malloc(sizeof(double) * (size_t)n * (size_t)d);
    gp->L = malloc(sizeof(double) * (size_t)n * (size_t)n);
    gp->w = malloc(sizeof(double) * (size_t)n);
    gp->yn = malloc(sizeof(double) * (size_t)n);
    if (!gp->U || !gp->L || !gp->w || !gp->yn) {
        gn__gp_free(gp);
        return gn_error_set(err, "gp: out of memory (n = %d)", n);
    }
    memcpy(gp->U, U, sizeof(double) * (size_t)n * (size_t)d);
    return 0;
}

static int check_data(const double *U, const double *y, int n, int d, double alpha, gn_error *err)
{
    if (n < 1 || d < 1)
        return gn_error_set(err, "gp: bad sizes n = %d, d = %d", n, d);
    if (!(alpha > 0) || !isfinite(alpha))
        return gn_error_set(err, "gp: alpha %g must be finite and > 0", alpha);
    for (size_t t = 0; t < (size_t)n * d; t++)
        if (!isfinite(U[t]))
            return gn_error_set(err, "gp: input %zu is not finite", t);
    for (int i = 0; i < n; i++)
        if (!isfinite(y[i]))
            return gn_error_set(err, "gp: target %d is not finite", i);
    return 0;
}

static void dist_matrix(const double *U, int n, int d, double *D2)
{
    for (int j = 0; j < n; j++)
        for (int i = j; i < n; i++) {
            double v = i == j ? 0.0 : sqdist(U + (size_t)i * d, U + (size_t)j * d, d);
            D2[(size_t)j * n + i] = v;
            D2[(size_t)i * n + j] = v;
        }
}

static int fit_fixed(gn_gp *gp, const double *U, const double *y, int n, int d, double alpha, double ell, double c,
                     gn_error *err)
{
    if (check_data(U, y, n, d, alpha, err))
        return -1;
    if (!(ell > 0) || !(c > 0) || !isfinite(ell) || !isfinite(c))
        return gn_error_set(err, "gp: hyper-parameters ell = %g, c = %g must be finite and > 0", ell, c);
    if (alloc_fit(gp, U, n, d, err))
        return -1;
    double *D2 = malloc(sizeof(double) * (size_t)n * (size_t)n);
    double *yn = gp->yn;
    int rc = -1;
    if (!D2) {
        gn_error_set(err, "gp: out of memory (n = %d)", n);
        goto out;
    }
    standardise(y, n, yn, &gp->ymean, &gp->ystd);
    dist_matrix(U, n, d, D2);
    matern_matrix(D2, n, ell, D2);
    gp->ell = ell;
    gp->c = c;
    gp->alpha = alpha;
    if (lml_at(D2, n, yn, c, alpha, gp->L, gp->w, &gp->lml)) {
        gn_error_set(err, "gp: covariance matrix is not positive definite (n = %d, ell = %g, c = %g)", n, ell, c);
        goto out;
    }
    rc = 0;
out:
    free(D2);
    if (rc)
        gn__gp_free(gp);
    return rc;
}

static int fit_grid(gn_gp *gp, const double *U, const double *y, int n, int d, double alpha, gn_error *err)
{
    if (check_data(U, y, n, d, alpha, err))
        return -1;
    size_t nn = (size_t)n * (size_t)n;
    double *D2 = malloc(sizeof(double) * nn), *M = malloc(sizeof(double) * nn);
    double *K = malloc(sizeof(double) * nn), *w = malloc(sizeof(double) * (size_t)n);
    double *yn = malloc(sizeof(double) * (size_t)n);
    int rc = -1;
    if (!D2 || !M || !K || !w || !yn) {
        gn_error_set(err, "gp: out of memory (n = %d)", n);
        goto out;
    }
    double mean, std;
    standardise(y, n, yn, &mean, &std);
    dist_matrix(U, n, d, D2);
    double sd = sqrt((double)d);
    double best = -INFINITY, bl = 0, bc = 0; /* log2(ell / sqrt d), log2 c */
    for (int k = -8; k <= 4; k++) {
        double le = 0.5 * k;
        matern_matrix(D2, n, sd * exp2(le), M);
        for (int j = -4; j <= 3; j++) {
            double lml;
            if (lml_at(M, n, yn, exp2((double)j), alpha, K, w, &lml) == 0 && lml > best) {
                best = lml;
                bl = le;
                bc = j;
            }
        }
    }
    if (!(best > -INFINITY)) {
        gn_error_set(err, "gp: no grid point gives a positive definite covariance (n = %d)", n);
        goto out;
    }
    for (int round = 0; round < 2; round++) {
        double stl = round == 0 ? 0.25 : 0.125, stc = round == 0 ? 0.5 : 0.25;
        double cl = bl, cc = bc;
        for (int a = -1; a <= 1; a++) {
            matern_matrix(D2, n, sd * exp2(cl + a * stl), M);
            for (int b = -1; b <= 1; b++) {
                if (a == 0 && b == 0)
                    continue;
                double lml;
                if (lml_at(M, n, yn, exp2(cc + b * stc), alpha, K, w, &lml) == 0 && lml > best) {
                    best = lml;
                    bl = cl + a * stl;
                    bc = cc + b * stc;
                }
            }
        }
    }
    rc = fit_fixed(gp, U, y, n, d, alpha, sd * exp2(bl), exp2(bc), err);
out:
    free(D2);
    free(M);
    free(K);
    free(w);
    free(yn);
    return rc;
}

static int predict(const gn_gp *gp, const double *Us, int m, double *mu, double *sd, gn_error *err)
{
    enum { B = 256 };
    int n = gp->n, d = gp->d;
    double *Ks = malloc(sizeof(double) * (size_t)n * B);
    if (!Ks)
        return gn_error_set(err, "gp: out of memory (n = %d)", n);
    for (int b0 = 0; b0 < m; b0 += B) {
        int nb = m - b0 < B ? m - b0 : B;
        for (int b = 0; b < nb; b++) {
            const double *x = Us + (size_t)(b0 + b) * d;
            double s = 0;
            for (int i = 0; i < n; i++) {
                double k = gp->c * gn__matern52(sqrt(sqdist(gp->U + (size_t)i * d, x, d)), gp->ell);
                Ks[(size_t)b * n + i] = k;
                s += k * gp->w[i];
            }
            mu[b0 + b] = s * gp->ystd + gp->ymean;
        }
        if (LAPACKE_dtrtrs(LAPACK_COL_MAJOR, 'L', 'N', 'N', n, nb, gp->L, n, Ks, n) != 0) {
            free(Ks);
            return gn_error_set(err, "gp: triangular solve failed (n = %d)", n);
        }
        for (int b = 0; b < nb; b++) {
            double q = 0;
            for (int i = 0; i < n; i++)
                q += Ks[(size_t)b * n + i] * Ks[(size_t)b * n + i];
            double v = gp->c - q;
            sd[b0 + b] = (v > 0 ? sqrt(v) : 0.0) * gp->ystd;
        }
    }
    free(Ks);
    return 0;
}

int gn__gp_fit_fixed(gn_gp *gp, const double *U, const double *y, int n, int d, double alpha, double ell, double c,
                    gn_error *err)
{
    int prev = blas_single();
    int rc = fit_fixed(gp, U, y, n, d, alpha, ell, c, err);
    blas_restore(prev);
    return rc;
}

int gn__gp_fit(gn_gp *gp, const double *U, const double *y, int n, int d, double alpha, gn_error *err)
{
    int prev = blas_single();
    int rc = fit_grid(gp, U, y, n, d, alpha, err);
    blas_restore(prev);
    return rc;
}

int gn__gp_predict(const gn_gp *gp, const double *Us, int m, double *mu, double *sd, gn_error *err)
{
    int prev = blas_single();
    int rc = predict(gp, Us, m, mu, sd, err);
    blas_restore(prev);
    return rc;
}

double gn__gp_best_mean(const gn_gp *gp)
{
    /* (c M + alpha I) w = y  =>  c M w = y - alpha w: the noise-free mean at the data */
    double best = -INFINITY;
    for (int i = 0; i < gp->n; i++) {
        double f = gp->yn[i] - gp->alpha * gp->w[i];
        if (f > best)
            best = f;
    }
    return best * gp->ystd + gp->ymean;
}

double gn__expected_improvement(double mu, double sd, double best, double xi)
{
    double imp = mu - best - xi;
    if (!(sd > 0))
        return imp > 0 ? imp : 0.0;
    double z = imp / sd;
    double cdf = 0.5 * erfc(-z / sqrt(2.0));
    double pdf = exp(-0.5 * z * z) / sqrt(2.0 * M_PI);
    return imp * cdf + sd * pdf;
}
