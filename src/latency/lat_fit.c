/*
 * lat_fit.c — least-squares fits of the latency predictor (see gpunas/latprofile.h):
 * the calibration models "linear" and "per_type" on whole-network measurements,
 * their leave-one-out errors and model choice, and the per-type log-linear fallback
 * for keys missing from a table.
 *
 * All solves go through one helper: columns scaled to unit norm, LAPACKE_dgelsd
 * (SVD, so rank deficiency is detected rather than producing garbage: rank < k is
 * an error), then unscaled.  Calibration rows are divided by the measured latency,
 * so the fit minimises the relative error; the fallback fits log(ms) (relative error
 * again, for a multiplicative model).
 */
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpunas/latprofile.h"

#define RIDGE 1e-4

const char *gn_lat_model_name(gn_lat_model m)
{
    return m == GN_LAT_MODEL_PER_TYPE ? "per_type" : "linear";
}

/* min ||A x - b||, A m x k row-major (m >= k); A and b are overwritten. */
static int lstsq(double *A, double *b, int m, int k, double *x, const char *what, gn_error *err)
{
    if (m < k)
        return gn_error_set(err, "%s: %d equations for %d unknowns", what, m, k);
    double *norm = calloc((size_t)k, sizeof *norm), *sv = calloc((size_t)k, sizeof *sv);
    int rc = -1;
    if (!norm || !sv) {
        gn_error_set(err, "%s: out of memory", what);
        goto out;
    }
    for (int j = 0; j < k; j++) {
        for (int i = 0; i < m; i++)
            norm[j] += A[(size_t)i * k + j] * A[(size_t)i * k + j];
        norm[j] = sqrt(norm[j]);
        if (!(norm[j] > 0) || !isfinite(norm[j])) {
            gn_error_set(err, "%s: column %d of the system is %s", what, j, norm[j] > 0 ? "not finite" : "zero");
            goto out;
        }
        for (int i = 0; i < m; i++)
            A[(size_t)i * k + j] /= norm[j];
    }
    lapack_int rank = 0;
    lapack_int info = LAPACKE_dgelsd(LAPACK_ROW_MAJOR, m, k, 1, A, k, b, 1, sv, 1e-10, &rank);
    if (info != 0) {
        gn_error_set(err, "%s: LAPACKE_dgelsd failed (info %d)", what, (int)info);
        goto out;
    }
    if (rank < k) {
        gn_error_set(err, "%s: the data determine only %d of %d coefficients", what, (int)rank, k);
        goto out;
    }
    for (int j = 0; j < k; j++)
        x[j] = b[j] / norm[j];
    rc = 0;
out:
    free(norm);
    free(sv);
    return rc;
}

double gn_lat_calib_apply(const gn_lat_calib *c, const double *sums)
{
    double y = c->intercept_ms;
    for (int t = 0; t < GN_LAT_NTYPES; t++)
        y += c->scale[t] * sums[t];
    return y;
}

void gn_lat_eval_errors(const double *pred, const double *meas, int n, double *mean_abs_pct, double *max_pct)
{
    double s = 0, mx = 0;
    for (int i = 0; i < n; i++) {
        double e = fabs(pred[i] - meas[i]) / meas[i] * 100.0;
        s += e;
        if (e > mx)
            mx = e;
    }
    *mean_abs_pct = n ? s / n : NAN;
    *max_pct = n ? mx : NAN;
}

static double row_total(const double *row)
{
    double s = 0;
    for (int t = 0; t < GN_LAT_NTYPES; t++)
        s += row[t];
    return s;
}

/* Fit on the rows other than `skip` (-1: all). */
static int fit_rows(const double *sums, const double *y, int n, int skip, gn_lat_model model, gn_lat_calib *c,
                    gn_error *err)
{
    memset(c, 0, sizeof *c);
    c->model = model;
    int m = n - (skip >= 0);
    for (int i = 0; i < n; i++)
        if (!(y[i] > 0) || !isfinite(y[i]))
            return gn_error_set(err, "latency calibration: network %d: measured latency %g is not positive", i, y[i]);
    /* linear: [sum S, 1] */
    double *A = malloc((size_t)(m + GN_LAT_NTYPES) * (GN_LAT_NTYPES + 1) * sizeof *A),
           *b = malloc((size_t)(m + GN_LAT_NTYPES) * sizeof *b), x[GN_LAT_NTYPES + 1];
    int rc = -1;
    if (!A || !b) {
        gn_error_set(err, "latency calibration: out of memory");
        goto out;
    }
    int r = 0;
    for (int i = 0; i < n; i++) {
        if (i == skip)
            continue;
        A[r * 2] = row_total(&sums[(size_t)i * GN_LAT_NTYPES]) / y[i];
        A[r * 2 + 1] = 1.0 / y[i];
        b[r++] = 1.0;
    }
    if (lstsq(A, b, m, 2, x, "latency calibration (linear)", err))
        goto out;
    double a0 = x[0];
    for (int t = 0; t < GN_LAT_NTYPES; t++)
        c->scale[t] = a0;
    c->intercept_ms = x[1];
    if (model == GN_LAT_MODEL_PER_TYPE) {
        int types[GN_LAT_NTYPES], nt = 0;
        for (int t = 0; t < GN_LAT_NTYPES; t++) {
            bool any = false;
            for (int i = 0; i < n; i++)
                any |= i != skip && sums[(size_t)i * GN_LAT_NTYPES + t] != 0;
            if (any)
                types[nt++] = t;
        }
        int k = nt + 1;
        double lam[GN_LAT_NTYPES] = {0};
        r = 0;
        for (int i = 0; i < n; i++) {
            if (i == skip)
                continue;
            for (int j = 0; j < nt; j++) {
                double v = sums[(size_t)i * GN_LAT_NTYPES + types[j]] / y[i];
                A[(size_t)r * k + j] = v;
                lam[j] += v * v;
            }
            A[(size_t)r * k + nt] = 1.0 / y[i];
            b[r++] = 1.0;
        }
        /* ridge row per type, weighted by the column's own size: the same relative
         * pull on every coefficient */
        for (int j = 0; j < nt; j++) {
            double w = sqrt(RIDGE * lam[j]);
            for (int q = 0; q < k; q++)
                A[(size_t)r * k + q] = q == j ? w : 0.0;
            b[r++] = w * a0;
        }
        if (lstsq(A, b, r, k, x, "latency calibration (per_type)", err))
            goto out;
        for (int j = 0; j < nt; j++)
            c->scale[types[j]] = x[j];
        c->intercept_ms = x[nt];
    }
    double *pred = malloc((size_t)n * sizeof *pred), *meas = malloc((size_t)n * sizeof *meas);
    if (!pred || !meas) {
        free(pred);
        free(meas);
        gn_error_set(err, "latency calibration: out of memory");
        goto out;
    }
    r = 0;
    for (int i = 0; i < n; i++) {
        if (i == skip)
            continue;
        pred[r] = gn_lat_calib_apply(c, &sums[(size_t)i * GN_LAT_NTYPES]);
        meas[r++] = y[i];
    }
    gn_lat_eval_errors(pred, meas, r, &c->fit_mean_abs_pct, &c->fit_max_pct);
    free(pred);
    free(meas);
    c->networks = m;
    c->loo_mean_abs_pct = NAN;
    rc = 0;
out:
    free(A);
    free(b);
    return rc;
}

int gn_lat_fit(const double *sums, const double *y, int n, gn_lat_model model, gn_lat_calib *c, gn_error *err)
{
    if (n < 2)
        return gn_error_set(err, "latency calibration: %d networks (at least 2 needed)", n);
    return fit_rows(sums, y, n, -1, model, c, err);
}

static int loo(const double *sums, const double *y, int n, gn_lat_model model, double *mean_abs_pct, gn_error *err)
{
    double s = 0;
    for (int i = 0; i < n; i++) {
        gn_lat_calib c;
        if (fit_rows(sums, y, n, i, model, &c, err))
            return -1;
        s += fabs(gn_lat_calib_apply(&c, &sums[(size_t)i * GN_LAT_NTYPES]) - y[i]) / y[i] * 100.0;
    }
    *mean_abs_pct = s / n;
    return 0;
}

int gn_lat_calibrate(const double *sums, const double *y, int n, gn_lat_calib *c, gn_error *err)
{
    if (n < 3)
        return gn_error_set(err, "latency calibration: %d networks (at least 3 needed)", n);
    gn_lat_calib lin, per;
    double loo_lin, loo_per;
    if (fit_rows(sums, y, n, -1, GN_LAT_MODEL_LINEAR, &lin, err) || loo(sums, y, n, GN_LAT_MODEL_LINEAR, &loo_lin, err))
        return -1;
    lin.loo_mean_abs_pct = loo_lin;
    *c = lin;
    int nt = 0;
    for (int t = 0; t < GN_LAT_NTYPES; t++) {
        bool any = false;
        for (int i = 0; i < n; i++)
            any |= sums[(size_t)i * GN_LAT_NTYPES + t] != 0;
        nt += any;
    }
    if (n < nt + 1 + 2)
        return 0;
    gn_error tmp;
    if (fit_rows(sums, y, n, -1, GN_LAT_MODEL_PER_TYPE, &per, &tmp) ||
        loo(sums, y, n, GN_LAT_MODEL_PER_TYPE, &loo_per, &tmp))
        return 0; /* per_type not determined by these data: keep linear */
    per.loo_mean_abs_pct = loo_per;
    if (loo_per < loo_lin)
        *c = per;
    return 0;
}

/* Integer field NAME=V of a key ("|k=3|"), or -1 with err set. */
static int key_int(const char *key, const char *name, int *v, gn_error *err)
{
    char pat[32];
    snprintf(pat, sizeof pat, "|%s=", name);
    const char *p = strstr(key, pat);
    if (!p || sscanf(p + strlen(pat), "%d", v) != 1)
        return gn_error_set(err, "latency key '%s': no field '%s'", key, name);
    return 0;
}

int gn_lat_fallback_features(const char *key, double gflop, double mb, double *f, gn_error *err)
{
    int k, s, se, res;
    if (key_int(key, "k", &k, err) || key_int(key, "s", &s, err) || key_int(key, "se", &se, err) ||
        key_int(key, "res", &res, err))
        return -1;
    const char *act = strstr(key, "|act=");
    if (!act)
        return gn_error_set(err, "latency key '%s': no field 'act'", key);
    if (!(gflop > 0) || !(mb > 0))
        return gn_error_set(err, "latency key '%s': GFLOP %g and MB %g must be positive", key, gflop, mb);
    f[0] = 1.0;
    f[1] = log(gflop);
    f[2] = log(mb);
    f[3] = strncmp(act + 5, "swish|", 6) == 0;
    f[4] = se > 0;
    f[5] = (k - 3) / 2.0;
    f[6] = s == 2;
    f[7] = res != 0;
    return 0;
}

int gn_lat_fallback_ms(const gn_lat_profile *p, gn_layer_type t, const char *key, double gflop, double mb, double *ms,
                       gn_error *err)
{
    if ((int)t < 0 || t >= GN_LAT_NTYPES || !p->have_fallback[t])
        return gn_error_set(err, "latency key '%s': no fallback for its layer type", key);
    double f[GN_LAT_FB_NCOEF], z = 0;
    if (gn_lat_fallback_features(key, gflop, mb, f, err))
        return -1;
    for (int j = 0; j < GN_LAT_FB_NCOEF; j++)
        z += p->fallback[t][j] * f[j];
    *ms = exp(z);
    return 0;
}

int gn_lat_profile_fit_fallback(gn_lat_profile *p, gn_error *err)
{
    int n = p->n_entries;
    double *F = malloc((size_t)(n ? n : 1) * GN_LAT_FB_NCOEF * sizeof *F);
    double *A = malloc((size_t)(n ? n : 1) * GN_LAT_FB_NCOEF * sizeof *A), *b = malloc((size_t)(n ? n : 1) * sizeof *b);
    int rc = -1;
    if (!F || !A || !b) {
        gn_error_set(err, "latency fallback: out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++)
        if (gn_lat_fallback_features(p->entries[i].key, p->entries[i].gflop, p->entries[i].mb,
                                     &F[(size_t)i * GN_LAT_FB_NCOEF], err))
            goto out;
    for (int t = 0; t < GN_LAT_NTYPES; t++) {
        p->have_fallback[t] = false;
        memset(p->fallback[t], 0, sizeof p->fallback[t]);
        int m = 0;
        double sms = 0, sg = 0;
        for (int i = 0; i < n; i++)
            if (p->entries[i].type == (gn_layer_type)t) {
                m++;
                sms += p->entries[i].ms;
                sg += p->entries[i].gflop;
            }
        if (!m)
            continue;
        if (!(sms > 0)) {
            gn_error_set(err, "latency fallback: layer type %s: entries have no time", gn_layer_type_name((gn_layer_type)t));
            goto out;
        }
        /* exponent-1 law in GFLOP through the means (also the answer when the full
         * model is not determined) */
        p->fallback[t][0] = log(sms / sg);
        p->fallback[t][1] = 1.0;
        p->have_fallback[t] = true;
        /* features that vary among this type's entries (the intercept always) */
        int cols[GN_LAT_FB_NCOEF], k = 0, first = -1;
        for (int i = 0; i < n && first < 0; i++)
            if (p->entries[i].type == (gn_layer_type)t)
                first = i;
        for (int j = 0; j < GN_LAT_FB_NCOEF; j++) {
            bool varies = j == 0;
            for (int i = 0; i < n && !varies; i++)
                varies = p->entries[i].type == (gn_layer_type)t &&
                         F[(size_t)i * GN_LAT_FB_NCOEF + j] != F[(size_t)first * GN_LAT_FB_NCOEF + j];
            if (varies)
                cols[k++] = j;
        }
        if (m < k + 2)
            continue;
        int r = 0;
        for (int i = 0; i < n; i++) {
            if (p->entries[i].type != (gn_layer_type)t)
                continue;
            for (int q = 0; q < k; q++)
                A[(size_t)r * k + q] = F[(size_t)i * GN_LAT_FB_NCOEF + cols[q]];
            b[r++] = log(p->entries[i].ms);
        }
        double x[GN_LAT_FB_NCOEF];
        gn_error tmp;
        if (lstsq(A, b, m, k, x, "latency fallback", &tmp) == 0) {
            memset(p->fallback[t], 0, sizeof p->fallback[t]);
            for (int q = 0; q < k; q++)
                p->fallback[t][cols[q]] = x[q];
        }
    }
    rc = 0;
out:
    free(F);
    free(A);
    free(b);
    return rc;
}
