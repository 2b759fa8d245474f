/* oneshot_grad.c — the pathwise Jacobian-vector products and the per-sample gradient
 * estimators of UNAS (REINFORCE, relaxed, unified/REBAR, RELAX with a linear control
 * variate), and the EMA baseline (gpunas/oneshot.h, "Estimators").  Everything works
 * one categorical at a time on its K <= 16 entries. */
#include <math.h>
#include <stddef.h>

#include "oneshot/oneshot_internal.h"

/* ------------------------------------------------------------------ per categorical */

void gn__oneshot_vjp_softmax(const double *y, int K, double scale, const double *g_y, double *g_x)
{
    double dot = 0;
    for (int j = 0; j < K; j++)
        dot += y[j] * g_y[j];
    for (int i = 0; i < K; i++)
        g_x[i] = scale * y[i] * (g_y[i] - dot);
}

/* d log q_{d_m} / d theta of categorical m */
static void score_cat(const gn_oneshot_dist *q, int m, int k, double *out)
{
    double g_l[GN_ONESHOT_MAX_K] = {0};
    g_l[k] = 1;
    gn__oneshot_vjp_logq(q, m, g_l, out);
}

/* (d zeta / d theta)^T g_zeta of categorical m: z = l + G, dz/dl = I */
static void relaxed_cat(const gn_oneshot_dist *q, const gn_oneshot_sample *s, int m, const double *g_zeta,
                        double *out)
{
    int o = q->off[m], K = q->K[m];
    double g_l[GN_ONESHOT_MAX_K];
    gn__oneshot_vjp_softmax(s->zeta + o, K, 1.0 / s->tau, g_zeta, g_l);
    gn__oneshot_vjp_logq(q, m, g_l, out);
}

/* (d zeta~ / d theta)^T g_zeta of categorical m: dz~_k/dl = 0 at k = d_m and
 * dz~_i/dl_i = 1 - c e^{z~_i}, c = -log v_k, elsewhere */
static void cond_cat(const gn_oneshot_dist *q, const gn_oneshot_sample *s, int m, const double *g_zeta,
                     double *out)
{
    int o = q->off[m], K = q->K[m], k = s->d[m];
    const double *zt = s->zt + o;
    double zeta_t[GN_ONESHOT_MAX_K], g_l[GN_ONESHOT_MAX_K];
    gn__oneshot_softmax(zt, K, 1.0 / s->tau, zeta_t);
    gn__oneshot_vjp_softmax(zeta_t, K, 1.0 / s->tau, g_zeta, g_l);
    double c = -s->log_v[o + k];
    for (int i = 0; i < K; i++)
        g_l[i] *= i == k ? 0.0 : 1.0 - c * exp(zt[i]);
    gn__oneshot_vjp_logq(q, m, g_l, out);
}

/* ------------------------------------------------------------------ checks */

static int check_finite(const double *x, int n, const char *what, gn_error *err)
{
    for (int i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return gn_error_set(err, "oneshot: %s[%d] is not finite (%g)", what, i, x[i]);
    return 0;
}

static int check_value(double x, const char *what, gn_error *err)
{
    return isfinite(x) ? 0 : gn_error_set(err, "oneshot: %s is not finite (%g)", what, x);
}

/* ------------------------------------------------------------------ Jacobians */

int gn_oneshot_vjp_relaxed(const gn_oneshot_dist *q, const gn_oneshot_sample *s, const double *g_zeta,
                           double *g_theta, gn_error *err)
{
    if (gn__oneshot_check_sample(q, s, err) || check_finite(g_zeta, q->n, "g_zeta", err))
        return -1;
    for (int m = 0; m < q->M; m++)
        relaxed_cat(q, s, m, g_zeta + q->off[m], g_theta + q->off[m]);
    return 0;
}

int gn_oneshot_vjp_cond(const gn_oneshot_dist *q, const gn_oneshot_sample *s, const double *g_zeta,
                        double *g_theta, gn_error *err)
{
    if (gn__oneshot_check_sample(q, s, err) || check_finite(g_zeta, q->n, "g_zeta", err))
        return -1;
    for (int m = 0; m < q->M; m++)
        cond_cat(q, s, m, g_zeta + q->off[m], g_theta + q->off[m]);
    return 0;
}

/* ------------------------------------------------------------------ estimators */

int gn_oneshot_grad_reinforce(const gn_oneshot_dist *q, const gn_oneshot_sample *s, double f_d,
                              double baseline, double *grad, gn_error *err)
{
    if (gn__oneshot_check_sample(q, s, err) || check_value(f_d, "f(d)", err) ||
        check_value(baseline, "the baseline", err))
        return -1;
    for (int m = 0; m < q->M; m++) {
        double *g = grad + q->off[m];
        score_cat(q, m, s->d[m], g);
        for (int i = 0; i < q->K[m]; i++)
            g[i] *= f_d - baseline;
    }
    return 0;
}

int gn_oneshot_grad_relaxed(const gn_oneshot_dist *q, const gn_oneshot_sample *s, const double *g_zeta,
                            double *grad, gn_error *err)
{
    return gn_oneshot_vjp_relaxed(q, s, g_zeta, grad, err);
}

int gn_oneshot_grad_unified(const gn_oneshot_dist *q, const gn_oneshot_sample *s, double f_d, double ft,
                            const double *g_zeta, double *grad, gn_error *err)
{
    if (gn__oneshot_check_sample(q, s, err) || check_value(f_d, "f(d)", err) ||
        check_value(ft, "the relaxed value", err) || check_finite(g_zeta, q->n, "g_zeta", err))
        return -1;
    for (int m = 0; m < q->M; m++) {
        int o = q->off[m];
        double score[GN_ONESHOT_MAX_K], path[GN_ONESHOT_MAX_K], path_t[GN_ONESHOT_MAX_K];
        score_cat(q, m, s->d[m], score);
        relaxed_cat(q, s, m, g_zeta + o, path);
        cond_cat(q, s, m, g_zeta + o, path_t);
        for (int i = 0; i < q->K[m]; i++)
            grad[o + i] = (f_d - ft) * score[i] + path[i] - path_t[i];
    }
    return 0;
}

int gn_oneshot_grad_relax_linear(const gn_oneshot_dist *q, const gn_oneshot_sample *s, double f_d,
                                 const double *w, double b0, double *grad, gn_error *err)
{
    if (gn__oneshot_check_sample(q, s, err) || check_finite(w, q->n, "w", err) ||
        check_value(b0, "the control variate's offset", err))
        return -1;
    double c = b0; /* c(zeta~) = c(zeta): the two are equal up to rounding */
    for (int i = 0; i < q->n; i++)
        c += w[i] * s->zeta[i];
    return gn_oneshot_grad_unified(q, s, f_d, c, w, grad, err);
}

/* ------------------------------------------------------------------ baseline */

int gn_oneshot_baseline_init(gn_oneshot_baseline *b, double momentum, gn_error *err)
{
    if (!(momentum >= 0 && momentum < 1))
        return gn_error_set(err, "oneshot: baseline momentum %g (must be in [0, 1))", momentum);
    b->value = 0;
    b->momentum = momentum;
    b->updates = 0;
    return 0;
}

int gn_oneshot_baseline_update(gn_oneshot_baseline *b, double x, gn_error *err)
{
    if (check_value(x, "the baseline's new value", err))
        return -1;
    b->value = b->momentum * b->value + (1 - b->momentum) * x;
    b->updates++;
    return 0;
}
