/* oneshot_sample.c — joint draws of the discrete architecture d, its Gumbel-softmax
 * relaxation zeta and REBAR's conditional sample z~ given d, all from one set of
 * uniforms (gpunas/oneshot.h, "Sampling"). */
#include <math.h>
#include <stdlib.h>

#include "oneshot/oneshot_internal.h"

int gn_oneshot_sample_create(const gn_oneshot_dist *q, gn_oneshot_sample **out, gn_error *err)
{
    *out = NULL;
    gn_oneshot_sample *s = calloc(1, sizeof *s);
    double *mem = calloc((size_t)q->n * 5, sizeof(double));
    int *d = calloc((size_t)q->M, sizeof(int));
    if (!s || !mem || !d) {
        free(s);
        free(mem);
        free(d);
        return gn_error_set(err, "oneshot: out of memory");
    }
    s->M = q->M;
    s->n = q->n;
    s->d = d;
    s->u = mem;
    s->z = mem + q->n;
    s->zeta = mem + 2 * (size_t)q->n;
    s->log_v = mem + 3 * (size_t)q->n;
    s->zt = mem + 4 * (size_t)q->n;
    s->dist = NULL; /* not drawn yet */
    *out = s;
    return 0;
}

void gn_oneshot_sample_free(gn_oneshot_sample *s)
{
    if (!s)
        return;
    free(s->u);
    free(s->d);
    free(s);
}

int gn__oneshot_check_sample(const gn_oneshot_dist *q, const gn_oneshot_sample *s, gn_error *err)
{
    if (s->dist != q)
        return gn_error_set(err, "oneshot: the sample was not drawn from this distribution");
    if (s->gen != q->gen)
        return gn_error_set(err, "oneshot: the sample was drawn at an earlier theta (set_theta since)");
    return 0;
}

/* The REBAR reparameterisation for one categorical: z~ from fixed k and log v. */
static void cond_categorical(const double *pq, int K, int k, const double *log_v, double *zt)
{
    double log_vk = log_v[k];
    for (int i = 0; i < K; i++)
        zt[i] = i == k ? -log(-log_vk) : -log(-log_v[i] / pq[i] - log_vk);
}

int gn_oneshot_cond_eval(const gn_oneshot_dist *q, const int *d, const double *log_v, double *zt, gn_error *err)
{
    if (gn__oneshot_check_choices(q, d, err))
        return -1;
    for (int i = 0; i < q->n; i++)
        if (!(log_v[i] < 0))
            return gn_error_set(err, "oneshot: log v[%d] = %g (must be < 0)", i, log_v[i]);
    for (int m = 0; m < q->M; m++)
        cond_categorical(q->q + q->off[m], q->K[m], d[m], log_v + q->off[m], zt + q->off[m]);
    return 0;
}

static int argmax(const double *x, int K)
{
    int k = 0;
    for (int i = 1; i < K; i++)
        if (x[i] > x[k])
            k = i;
    return k;
}

/* z, d, zeta and v of categorical m from the (clamped) uniforms already in s->u. */
static void draw_categorical(const gn_oneshot_dist *q, int m, double tau, gn_oneshot_sample *s)
{
    int o = q->off[m], K = q->K[m];
    const double *u = s->u + o, *pq = q->q + o, *l = q->l + o;
    double *z = s->z + o, *log_v = s->log_v + o;
    for (int i = 0; i < K; i++)
        z[i] = l[i] - log(-log(u[i]));
    int k = s->d[m] = argmax(z, K);
    gn__oneshot_softmax(z, K, 1.0 / tau, s->zeta + o);
    /* v from the same u (REBAR; log v_k = log(u_k)/q_k rather than u_k^(1/q_k), which
     * underflows) */
    double log_vk = log(u[k]) / pq[k];
    for (int i = 0; i < K; i++)
        log_v[i] = i == k ? log_vk : log(u[i]) - pq[i] * log_vk;
}

static int check_draw(const gn_oneshot_dist *q, double tau, const gn_oneshot_sample *s, gn_error *err)
{
    if (!(tau > 0) || !isfinite(tau))
        return gn_error_set(err, "oneshot: temperature tau %g (must be finite and > 0)", tau);
    if (s->n != q->n || s->M != q->M)
        return gn_error_set(err, "oneshot: the sample was made for another shape (%d categoricals, %d values;"
                            " not %d, %d)", s->M, s->n, q->M, q->n);
    return 0;
}

int gn_oneshot_draw_u(const gn_oneshot_dist *q, double tau, const double *u, gn_oneshot_sample *s, gn_error *err)
{
    if (check_draw(q, tau, s, err))
        return -1;
    s->dist = NULL; /* invalid until complete */
    const double lo = GN_ONESHOT_U_CLAMP, hi = 1 - GN_ONESHOT_U_CLAMP;
    for (int i = 0; i < q->n; i++) {
        if (!(u[i] >= 0 && u[i] <= 1))
            return gn_error_set(err, "oneshot: uniform %d is %g (must be in [0, 1])", i, u[i]);
        s->u[i] = u[i] < lo ? lo : u[i] > hi ? hi : u[i];
    }
    s->tau = tau;
    for (int m = 0; m < q->M; m++)
        draw_categorical(q, m, tau, s);
    for (int m = 0; m < q->M; m++)
        cond_categorical(q->q + q->off[m], q->K[m], s->d[m], s->log_v + q->off[m], s->zt + q->off[m]);
    s->dist = q;
    s->gen = q->gen;
    return 0;
}

int gn_oneshot_draw(const gn_oneshot_dist *q, double tau, gn_rng *rng, gn_oneshot_sample *s, gn_error *err)
{
    if (check_draw(q, tau, s, err))
        return -1; /* before the rng is used */
    s->dist = NULL;
    for (int i = 0; i < q->n; i++)
        s->u[i] = gn_rng_uniform(rng);
    return gn_oneshot_draw_u(q, tau, s->u, s, err);
}
