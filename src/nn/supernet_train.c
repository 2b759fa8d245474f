/*
 * supernet_train.c — zeta to mix weights, the supernet's training forward / backward,
 * and g_zeta from the mix nodes' dL/dw (formulas: gpunas/supernet.h).
 *
 * Per position of a stage and per sample row z of zeta:
 *   w[c]   = P * f_k[ik] * f_e[ie] * f_s[is]     (f_x[i] = z[off_x + i], or 1 unsearched)
 *   w[id]  = P(L <= j)                            (the identity column, when present)
 * with P = P(L > j) at positions that have the identity column and P = 1 elsewhere
 * (there the layers choice cannot remove the position; on the simplex the two agree,
 * and the softmax Jacobian of gn_oneshot ignores the difference).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/supernet_internal.h"
#include "space/space_internal.h"

static int fail(const gn_supernet *sn, gn_error *err, const char *what)
{
    return gn_error_set(err, "%s: supernet: %s", sn->space->source, what);
}

int gn_supernet_set_zeta(gn_supernet *sn, const double *zeta, int rows, gn_error *err)
{
    if (!zeta || rows < 1)
        return gn_error_set(err, "%s: supernet: zeta: %s", sn->space->source,
                            zeta ? "rows must be >= 1 (1 = shared, or the batch size)" : "no values given");
    size_t n = (size_t)rows * (size_t)sn->n;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(zeta[i]) || zeta[i] < 0)
            return gn_error_set(err, "%s: supernet: zeta[%zu] = %g (row %zu, logit %zu): must be finite and >= 0",
                                sn->space->source, i, zeta[i], i / (size_t)sn->n, i % (size_t)sn->n);
    if (rows != sn->rows) {
        double *z = realloc(sn->zeta, n * sizeof *z);
        if (!z)
            return fail(sn, err, "out of memory for zeta");
        sn->zeta = z;
        sn->rows = rows;
    }
    memcpy(sn->zeta, zeta, n * sizeof *zeta);
    sn->gen++;
    return 0;
}

int gn_supernet_set_discrete(gn_supernet *sn, const int *d, int rows, gn_error *err)
{
    if (!d || rows < 1)
        return gn_error_set(err, "%s: supernet: d: %s", sn->space->source,
                            d ? "rows must be >= 1 (1 = shared, or the batch size)" : "no values given");
    double *z = calloc((size_t)rows * (size_t)sn->n, sizeof *z);
    if (!z)
        return fail(sn, err, "out of memory for zeta");
    for (int r = 0; r < rows; r++)
        for (int m = 0; m < sn->n_cats; m++) {
            int v = d[(size_t)r * sn->n_cats + m];
            if (v < 0 || v >= sn->cats[m].k) {
                free(z);
                return gn_error_set(err, "%s: supernet: d[%d] (row %d, %s) = %d is out of range [0, %d)",
                                    sn->space->source, r * sn->n_cats + m, r, sn->cats[m].name, v, sn->cats[m].k);
            }
            z[(size_t)r * sn->n + sn->cats[m].offset + v] = 1.0;
        }
    int rc = gn_supernet_set_zeta(sn, z, rows, err);
    free(z);
    return rc;
}

static double factor(const gn_supernet *sn, const double *z, int cat, int i)
{
    return cat >= 0 ? z[sn->cats[cat].offset + i] : 1.0;
}

/* P(L > j) (gt) or P(L <= j) of the stage's layers categorical under row z. */
static double p_layers(const gn_supernet *sn, const sn_stage *st, const double *z, int j, bool gt)
{
    double p = 0;
    const double *zl = z + sn->cats[st->cat_layers].offset;
    for (int l = 0; l < st->n_lay; l++)
        if ((st->lay_val[l] > j) == gt)
            p += zl[l];
    return p;
}

static void pos_weights(const gn_supernet *sn, const sn_pos *ps, const double *z, float *w)
{
    const sn_stage *st = &sn->stages[ps->stage];
    double p = ps->skip ? p_layers(sn, st, z, ps->j, true) : 1.0;
    for (int c = 0; c < st->n_cand; c++) {
        int ik, ie, is;
        gn__sn_factors(st, c, &ik, &ie, &is);
        w[c] = (float)(p * factor(sn, z, st->cat_k, ik) * factor(sn, z, st->cat_e, ie) * factor(sn, z, st->cat_s, is));
    }
    if (ps->skip)
        w[st->n_cand] = (float)p_layers(sn, st, z, ps->j, false);
}

static int set_mix_weights(gn_supernet *sn, int batch, gn_error *err)
{
    for (int p = 0; p < sn->n_pos; p++) {
        const sn_pos *ps = &sn->pos[p];
        int k = sn->net->nodes[ps->node].mix_k;
        size_t need = (size_t)batch * (size_t)k;
        if (need > sn->w_cap) {
            float *w = realloc(sn->w, need * sizeof *w);
            if (!w)
                return fail(sn, err, "out of memory for mix weights");
            sn->w = w;
            sn->w_cap = need;
        }
        for (int n = 0; n < batch; n++)
            pos_weights(sn, ps, sn->zeta + (size_t)(sn->rows == 1 ? 0 : n) * sn->n, sn->w + (size_t)n * k);
        if (gn__mix_set_weights(sn->net, ps->node, sn->w, batch, err))
            return -1;
    }
    return 0;
}

int gn_supernet_forward_train(gn_supernet *sn, const gn_tensor *x, const gn_tensor **logits, gn_error *err)
{
    if (!sn->zeta)
        return fail(sn, err, "forward before zeta was set (gn_supernet_set_zeta / set_discrete)");
    if (sn->rows != 1 && sn->rows != x->n)
        return gn_error_set(err, "%s: supernet: zeta has %d rows, the batch %d samples (rows must be 1 or the batch)",
                            sn->space->source, sn->rows, x->n);
    if (set_mix_weights(sn, x->n, err))
        return -1;
    sn->fwd_gen = sn->gen;
    gn__sn_share_gather(sn); /* the masters' current values into the tied slots */
    return gn_net_forward_train(sn->net, x, logits, err);
}

/* Add sample n's dL/dw of position ps to g (the zeta row of that sample). */
static void pos_grad(const gn_supernet *sn, const sn_pos *ps, const double *z, const double *gw, double *g)
{
    const sn_stage *st = &sn->stages[ps->stage];
    double p = ps->skip ? p_layers(sn, st, z, ps->j, true) : 1.0, blocks = 0;
    for (int c = 0; c < st->n_cand; c++) {
        int ik, ie, is;
        gn__sn_factors(st, c, &ik, &ie, &is);
        double fk = factor(sn, z, st->cat_k, ik), fe = factor(sn, z, st->cat_e, ie), fs = factor(sn, z, st->cat_s, is);
        if (st->cat_k >= 0)
            g[sn->cats[st->cat_k].offset + ik] += gw[c] * p * fe * fs;
        if (st->cat_e >= 0)
            g[sn->cats[st->cat_e].offset + ie] += gw[c] * p * fk * fs;
        if (st->cat_s >= 0)
            g[sn->cats[st->cat_s].offset + is] += gw[c] * p * fk * fe;
        blocks += gw[c] * fk * fe * fs;
    }
    if (!ps->skip)
        return;
    double *gl = g + sn->cats[st->cat_layers].offset;
    for (int l = 0; l < st->n_lay; l++)
        gl[l] += st->lay_val[l] > ps->j ? blocks : gw[st->n_cand];
}

static void zeta_grad(const gn_supernet *sn, int batch, double *g)
{
    memset(g, 0, (size_t)sn->rows * (size_t)sn->n * sizeof *g);
    for (int p = 0; p < sn->n_pos; p++) {
        const sn_pos *ps = &sn->pos[p];
        const gn_node *nd = &sn->net->nodes[ps->node];
        for (int n = 0; n < batch; n++) {
            size_t r = (size_t)(sn->rows == 1 ? 0 : n) * sn->n;
            pos_grad(sn, ps, sn->zeta + r, nd->mixg + (size_t)n * nd->mix_k, g + r);
        }
    }
}

int gn_supernet_backward(gn_supernet *sn, const gn_tensor *dlogits, double *g_zeta, gn_error *err)
{
    if (g_zeta && sn->fwd_gen != sn->gen)
        return fail(sn, err, "zeta was set again after the forward: g_zeta would not match it");
    if (gn_net_backward(sn->net, dlogits, err))
        return -1;
    gn__sn_share_scatter(sn);
    if (g_zeta)
        zeta_grad(sn, sn->net->batch, g_zeta);
    return 0;
}

int gn_supernet_train_step(gn_supernet *sn, const gn_tensor *x, const int32_t *labels, float smoothing, float *loss,
                           double *g_zeta, gn_error *err)
{
    const gn_tensor *logits;
    if (gn_supernet_forward_train(sn, x, &logits, err))
        return -1;
    if (gn_softmax_xent(sn->net->be, logits, labels, smoothing, loss, &sn->net->dlogits, err))
        return -1;
    if (!isfinite(*loss))
        return gn_error_set(err, "%s: supernet: loss is %f (not finite)", sn->space->source, *loss);
    return gn_supernet_backward(sn, &sn->net->dlogits, g_zeta, err);
}

int gn_supernet_sample_losses(gn_supernet *sn, const int32_t *labels, float smoothing, double *loss, gn_error *err)
{
    gn_net *net = sn->net;
    if (!net->have_forward)
        return fail(sn, err, "per-sample losses without a training forward");
    const gn_tensor *z = &net->v[net->n_vals - 1];
    int n = z->n, k = z->c;
    float *h = malloc(sizeof *h * (size_t)n * (size_t)k);
    if (!h)
        return fail(sn, err, "out of memory");
    if (gn_tensor_to_host(z, h, err)) {
        free(h);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (labels[i] < 0 || labels[i] >= k) {
            free(h);
            return gn_error_set(err, "%s: supernet: label %d of sample %d is out of range [0, %d)", sn->space->source,
                                labels[i], i, k);
        }
        const float *r = h + (size_t)i * k;
        double mx = r[0], s = 0, sum_lp = 0;
        for (int c = 1; c < k; c++)
            mx = fmax(mx, r[c]);
        for (int c = 0; c < k; c++)
            s += exp(r[c] - mx);
        double lse = mx + log(s);
        for (int c = 0; c < k; c++)
            sum_lp += r[c] - lse;
        loss[i] = -(1.0 - smoothing) * (r[labels[i]] - lse) - smoothing / k * sum_lp;
    }
    free(h);
    return 0;
}
