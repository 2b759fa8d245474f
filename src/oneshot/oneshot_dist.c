/* oneshot_dist.c — the distribution of M independent categoricals: logits, softened
 * probabilities, log-probabilities, their gradients and the entropy
 * (gpunas/oneshot.h, "The distribution"). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "oneshot/oneshot_internal.h"

/* ------------------------------------------------------------------ creation */

static int check_shape(int M, const int *K, double eps, gn_error *err)
{
    if (M < 1 || M > GN_ONESHOT_MAX_M)
        return gn_error_set(err, "oneshot: %d categoricals (1..%d allowed)", M, GN_ONESHOT_MAX_M);
    if (!K)
        return gn_error_set(err, "oneshot: no choice counts given");
    for (int m = 0; m < M; m++)
        if (K[m] < 1 || K[m] > GN_ONESHOT_MAX_K)
            return gn_error_set(err, "oneshot: categorical %d has %d choices (1..%d allowed)", m, K[m],
                                GN_ONESHOT_MAX_K);
    if (!(eps >= 0) || !isfinite(eps))
        return gn_error_set(err, "oneshot: softening eps %g (must be finite and >= 0)", eps);
    return 0;
}

int gn_oneshot_dist_create(int M, const int *K, double eps, gn_oneshot_dist **out, gn_error *err)
{
    *out = NULL;
    if (check_shape(M, K, eps, err))
        return -1;
    gn_oneshot_dist *q = calloc(1, sizeof *q);
    if (!q)
        return gn_error_set(err, "oneshot: out of memory");
    q->M = M;
    q->eps = eps;
    q->K = malloc(sizeof(int) * (size_t)M);
    q->off = malloc(sizeof(int) * (size_t)(M + 1));
    if (!q->K || !q->off) {
        gn_oneshot_dist_free(q);
        return gn_error_set(err, "oneshot: out of memory");
    }
    q->off[0] = 0;
    for (int m = 0; m < M; m++) {
        q->K[m] = K[m];
        q->off[m + 1] = q->off[m] + K[m];
    }
    q->n = q->off[M];
    double *mem = calloc((size_t)q->n * 4, sizeof(double));
    if (!mem) {
        gn_oneshot_dist_free(q);
        return gn_error_set(err, "oneshot: out of memory");
    }
    q->theta = mem;
    q->p = mem + q->n;
    q->q = mem + 2 * (size_t)q->n;
    q->l = mem + 3 * (size_t)q->n;
    gn_oneshot_set_theta(q, q->theta, err); /* zeros: cannot fail */
    *out = q;
    return 0;
}

void gn_oneshot_dist_free(gn_oneshot_dist *q)
{
    if (!q)
        return;
    free(q->theta);
    free(q->K);
    free(q->off);
    free(q);
}

int gn_oneshot_m(const gn_oneshot_dist *q) { return q->M; }
int gn_oneshot_n(const gn_oneshot_dist *q) { return q->n; }
int gn_oneshot_k(const gn_oneshot_dist *q, int m) { return q->K[m]; }
int gn_oneshot_offset(const gn_oneshot_dist *q, int m) { return q->off[m]; }
double gn_oneshot_eps(const gn_oneshot_dist *q) { return q->eps; }
const double *gn_oneshot_theta(const gn_oneshot_dist *q) { return q->theta; }
const double *gn_oneshot_probs(const gn_oneshot_dist *q) { return q->q; }
const double *gn_oneshot_logprobs(const gn_oneshot_dist *q) { return q->l; }

/* ------------------------------------------------------------------ probabilities */

void gn__oneshot_softmax(const double *x, int K, double scale, double *y)
{
    double mx = -INFINITY, sum = 0;
    for (int i = 0; i < K; i++)
        if (x[i] * scale > mx)
            mx = x[i] * scale;
    for (int i = 0; i < K; i++)
        sum += y[i] = exp(x[i] * scale - mx);
    for (int i = 0; i < K; i++)
        y[i] /= sum;
}

/* p, q and l of categorical m from its logits.  For eps = 0, l = theta - logsumexp
 * directly, so that a tiny probability keeps a finite log. */
static void refresh_categorical(gn_oneshot_dist *q, int m)
{
    int o = q->off[m], K = q->K[m];
    const double *th = q->theta + o;
    double *p = q->p + o, *pq = q->q + o, *l = q->l + o;
    gn__oneshot_softmax(th, K, 1.0, p);
    if (q->eps == 0) {
        double mx = th[0], sum = 0;
        for (int i = 1; i < K; i++)
            mx = th[i] > mx ? th[i] : mx;
        for (int i = 0; i < K; i++)
            sum += exp(th[i] - mx);
        for (int i = 0; i < K; i++) {
            l[i] = th[i] - mx - log(sum);
            pq[i] = p[i];
        }
        return;
    }
    double s = 1 + K * q->eps;
    for (int i = 0; i < K; i++) {
        pq[i] = (p[i] + q->eps) / s;
        l[i] = log(pq[i]);
    }
}

int gn_oneshot_set_theta(gn_oneshot_dist *q, const double *theta, gn_error *err)
{
    for (int i = 0; i < q->n; i++)
        if (!isfinite(theta[i]))
            return gn_error_set(err, "oneshot: logit %d is not finite (%g)", i, theta[i]);
    if (theta != q->theta)
        memcpy(q->theta, theta, sizeof(double) * (size_t)q->n);
    for (int m = 0; m < q->M; m++)
        refresh_categorical(q, m);
    q->gen++;
    return 0;
}

int gn__oneshot_check_choices(const gn_oneshot_dist *q, const int *d, gn_error *err)
{
    for (int m = 0; m < q->M; m++)
        if (d[m] < 0 || d[m] >= q->K[m])
            return gn_error_set(err, "oneshot: choice %d of categorical %d is out of range (%d choices)", d[m],
                                m, q->K[m]);
    return 0;
}

int gn_oneshot_log_prob(const gn_oneshot_dist *q, const int *d, double *out, gn_error *err)
{
    if (gn__oneshot_check_choices(q, d, err))
        return -1;
    double s = 0;
    for (int m = 0; m < q->M; m++)
        s += q->l[q->off[m] + d[m]];
    *out = s;
    return 0;
}

/* ------------------------------------------------------------------ gradients */

void gn__oneshot_vjp_logq(const gn_oneshot_dist *q, int m, const double *g_l, double *g_theta)
{
    int o = q->off[m], K = q->K[m];
    const double *p = q->p + o, *pq = q->q + o;
    double w[GN_ONESHOT_MAX_K], S = 0;
    if (q->eps == 0) { /* p = q: g_theta_i = g_l_i - p_i sum_j g_l_j */
        for (int j = 0; j < K; j++)
            S += w[j] = g_l[j];
        for (int i = 0; i < K; i++)
            g_theta[i] = w[i] - p[i] * S;
        return;
    }
    double s = 1 + K * q->eps;
    for (int j = 0; j < K; j++) {
        w[j] = g_l[j] / pq[j];
        S += p[j] * w[j];
    }
    for (int i = 0; i < K; i++)
        g_theta[i] = p[i] / s * (w[i] - S);
}

int gn_oneshot_grad_log_prob(const gn_oneshot_dist *q, const int *d, double *grad, gn_error *err)
{
    if (gn__oneshot_check_choices(q, d, err))
        return -1;
    for (int m = 0; m < q->M; m++) {
        double g_l[GN_ONESHOT_MAX_K] = {0};
        g_l[d[m]] = 1;
        gn__oneshot_vjp_logq(q, m, g_l, grad + q->off[m]);
    }
    return 0;
}

double gn_oneshot_entropy(const gn_oneshot_dist *q, double *grad)
{
    double H = 0;
    for (int m = 0; m < q->M; m++) {
        int o = q->off[m], K = q->K[m];
        double g_l[GN_ONESHOT_MAX_K];
        for (int i = 0; i < K; i++) {
            H -= q->q[o + i] * q->l[o + i];
            g_l[i] = -q->q[o + i] * (q->l[o + i] + 1); /* dH/dl_i = q_i dH/dq_i */
        }
        if (grad)
            gn__oneshot_vjp_logq(q, m, g_l, grad + o);
    }
    return H;
}
