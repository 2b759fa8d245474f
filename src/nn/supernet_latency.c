/*
 * supernet_latency.c — the expected predicted latency of a relaxed supernet zeta and
 * its gradient (design: gpunas/supernet_latency.h): per (position, candidate) table
 * times scaled by the calibration, decoded and key-checked once in create; eval is
 * the multilinear sum and its product-rule gradient.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpunas/supernet_latency.h"
#include "nn/supernet_internal.h"
#include "space/space_internal.h"

/* One searched stage: the supernet's bookkeeping (copied) and its scaled times. */
typedef struct {
    sn_stage st;
    int off_l, off_k, off_e, off_s; /* zeta offsets of its categoricals, -1 if none */
    double *t;                      /* [n_pos * n_cand]: a_t * T of candidate c at position j */
} sl_stage;

struct gn_supernet_lat {
    int n;          /* zeta length */
    double base;    /* b + the fixed layers' scaled times */
    sl_stage *stages;
    int n_stages;
    int layers, fallbacks;
};

void gn_supernet_lat_free(gn_supernet_lat *sl)
{
    if (!sl)
        return;
    for (int t = 0; t < sl->n_stages; t++)
        free(sl->stages[t].t);
    free(sl->stages);
    free(sl);
}

int gn_supernet_lat_layers(const gn_supernet_lat *sl)
{
    return sl->layers;
}

int gn_supernet_lat_fallbacks(const gn_supernet_lat *sl)
{
    return sl->fallbacks;
}

/* ------------------------------------------------------------------ create */
static int cat_offset(const gn_supernet *sn, int m)
{
    return m < 0 ? -1 : gn_supernet_get_cat(sn, m)->offset;
}

static int index_of_count(const sn_stage *st, bool largest)
{
    int b = 0;
    for (int l = 1; l < st->n_lay; l++)
        if (largest ? st->lay_val[l] > st->lay_val[b] : st->lay_val[l] < st->lay_val[b])
            b = l;
    return b;
}

/* The path: stage `self` at its largest count with candidate c; every other
 * categorical at its first choice (and largest count) or at its last (smallest count). */
static void context_path(const gn_supernet *sn, int self, int c, bool last, int *d)
{
    for (int m = 0; m < sn->n_cats; m++)
        d[m] = last ? sn->cats[m].k - 1 : 0;
    for (int t = 0; t < sn->n_stages; t++) {
        const sn_stage *st = &sn->stages[t];
        if (st->cat_layers >= 0)
            d[st->cat_layers] = index_of_count(st, t == self || !last);
    }
    if (self < 0)
        return;
    const sn_stage *st = &sn->stages[self];
    int ik, ie, is;
    gn__sn_factors(st, c, &ik, &ie, &is);
    if (st->cat_k >= 0)
        d[st->cat_k] = ik;
    if (st->cat_e >= 0)
        d[st->cat_e] = ie;
    if (st->cat_s >= 0)
        d[st->cat_s] = is;
}

/* Layer indices of a (1..n_layers-1) of stage `number`, or (number < 0) of no
 * searched stage; returns their count (at most cap). */
static int layers_of(const gn_supernet *sn, const gn_arch *a, int number, int *idx, int cap)
{
    int n = 0;
    for (int i = 1; i < a->n_layers; i++) {
        const gn_layer *L = &a->layers[i];
        bool searched = false;
        for (int t = 0; t < sn->n_stages && !searched; t++)
            searched = L->stage_set && L->stage == sn->stages[t].number;
        bool want = number < 0 ? !searched : L->stage_set && L->stage == number;
        if (want && n < cap)
            idx[n] = i;
        n += want;
    }
    return n;
}

static int decode_pair(const gn_supernet *sn, int self, int c, gn_arch **a, gn_arch **b, gn_error *err)
{
    int d[GN_ENC_MAX_DIMS]; /* categoricals are encoding dimensions */
    *a = *b = NULL;
    context_path(sn, self, c, false, d);
    if (gn_supernet_decode(sn, d, a, err))
        return -1;
    context_path(sn, self, c, true, d);
    return gn_supernet_decode(sn, d, b, err);
}

/* Scaled time of layer i of a, its key checked equal to that of layer ib of b. */
static int timed(gn_supernet_lat *sl, const gn_supernet *sn, const gn_lat_profile *p, const gn_arch *a, int i,
                 const gn_arch *b, int ib, const char *where, double *out, gn_error *err)
{
    char ka[GN_LAT_KEY_MAX], kb[GN_LAT_KEY_MAX];
    if (gn_lat_key(a, i, p->batch, ka, sizeof ka, err) || gn_lat_key(b, ib, p->batch, kb, sizeof kb, err))
        return -1;
    if (strcmp(ka, kb) != 0)
        return gn_error_set(err, "%s: supernet latency: %s: the layer's key depends on other choices ('%s' vs '%s')",
                            sn->space->source, where, ka, kb);
    double ms;
    bool fb;
    if (gn_lat_table_layer_ms(p, a, i, &ms, &fb, err))
        return -1;
    *out = p->calib.scale[a->layers[i].type] * ms;
    sl->layers++;
    sl->fallbacks += fb;
    return 0;
}

/* The fixed layers: same keys in both contexts; base = b + their scaled times. */
static int fixed_part(gn_supernet_lat *sl, const gn_supernet *sn, const gn_lat_profile *p, gn_error *err)
{
    gn_arch *a, *b;
    int rc = decode_pair(sn, -1, 0, &a, &b, err);
    int ia[64], ib[64];
    int na = rc ? 0 : layers_of(sn, a, -1, ia, 64), nb = rc ? 0 : layers_of(sn, b, -1, ib, 64);
    if (!rc && (na != nb || na > 64))
        rc = gn_error_set(err, "%s: supernet latency: the fixed layers differ between paths (%d vs %d)",
                          sn->space->source, na, nb);
    sl->base = p->calib.intercept_ms;
    for (int k = 0; k < na && !rc; k++) {
        double ms = 0;
        char where[64];
        snprintf(where, sizeof where, "fixed layer %d", ia[k]);
        rc = timed(sl, sn, p, a, ia[k], b, ib[k], where, &ms, err);
        if (!rc)
            sl->base += ms;
    }
    gn_arch_free(a);
    gn_arch_free(b);
    return rc ? -1 : 0;
}

/* Candidate c of stage t at every position. */
static int candidate(gn_supernet_lat *sl, const gn_supernet *sn, const gn_lat_profile *p, int t, int c, gn_error *err)
{
    sl_stage *ls = &sl->stages[t];
    const sn_stage *st = &ls->st;
    gn_arch *a, *b;
    int rc = decode_pair(sn, t, c, &a, &b, err);
    int ia[GN_SUPERNET_MAX_K * 4], ib[GN_SUPERNET_MAX_K * 4], cap = GN_SUPERNET_MAX_K * 4;
    int na = rc ? 0 : layers_of(sn, a, st->number, ia, cap), nb = rc ? 0 : layers_of(sn, b, st->number, ib, cap);
    if (!rc && (na != st->n_pos || nb != st->n_pos || na > cap))
        rc = gn_error_set(err, "%s: supernet latency: stage %d: the path has %d / %d layers, not the %d positions",
                          sn->space->source, st->number, na, nb, st->n_pos);
    for (int j = 0; j < st->n_pos && !rc; j++) {
        char where[64];
        snprintf(where, sizeof where, "stage %d position %d candidate %d", st->number, j, c);
        rc = timed(sl, sn, p, a, ia[j], b, ib[j], where, &ls->t[j * st->n_cand + c], err);
    }
    gn_arch_free(a);
    gn_arch_free(b);
    return rc ? -1 : 0;
}

static int stage_part(gn_supernet_lat *sl, const gn_supernet *sn, const gn_lat_profile *p, int t, gn_error *err)
{
    sl_stage *ls = &sl->stages[t];
    ls->st = sn->stages[t];
    ls->off_l = cat_offset(sn, ls->st.cat_layers);
    ls->off_k = cat_offset(sn, ls->st.cat_k);
    ls->off_e = cat_offset(sn, ls->st.cat_e);
    ls->off_s = cat_offset(sn, ls->st.cat_s);
    ls->t = calloc((size_t)(ls->st.n_pos * ls->st.n_cand) + 1, sizeof *ls->t);
    if (!ls->t)
        return gn_error_set(err, "%s: supernet latency: out of memory", sn->space->source);
    for (int c = 0; c < ls->st.n_cand; c++)
        if (candidate(sl, sn, p, t, c, err))
            return -1;
    return 0;
}

int gn_supernet_lat_create(const gn_supernet *sn, const gn_lat_profile *p, gn_supernet_lat **out, gn_error *err)
{
    *out = NULL;
    if (!p->calibrated)
        return gn_error_set(err, "%s: supernet latency: the latency profile is not calibrated", sn->space->source);
    gn_supernet_lat *sl = calloc(1, sizeof *sl);
    if (!sl || !(sl->stages = calloc((size_t)sn->n_stages + 1, sizeof *sl->stages))) {
        free(sl);
        return gn_error_set(err, "%s: supernet latency: out of memory", sn->space->source);
    }
    sl->n = sn->n;
    sl->n_stages = sn->n_stages;
    int rc = fixed_part(sl, sn, p, err);
    for (int t = 0; t < sn->n_stages && !rc; t++)
        rc = stage_part(sl, sn, p, t, err);
    if (rc) {
        gn_supernet_lat_free(sl);
        return -1;
    }
    *out = sl;
    return 0;
}

/* ------------------------------------------------------------------ eval */
static double z_or_1(const double *zeta, int off, int i)
{
    return off < 0 ? 1.0 : zeta[off + i];
}

/* P(layers > j) */
static double p_active(const sl_stage *ls, const double *zeta, int j)
{
    if (ls->off_l < 0)
        return 1.0;
    double s = 0;
    for (int l = 0; l < ls->st.n_lay; l++)
        if (ls->st.lay_val[l] > j)
            s += zeta[ls->off_l + l];
    return s;
}

/* The stage's term; adds its gradient to g (nullable). */
static double stage_eval(const sl_stage *ls, const double *zeta, double *g)
{
    const sn_stage *st = &ls->st;
    double total = 0;
    for (int c = 0; c < st->n_cand; c++) {
        int ik, ie, is;
        gn__sn_factors(st, c, &ik, &ie, &is);
        double zk = z_or_1(zeta, ls->off_k, ik), ze = z_or_1(zeta, ls->off_e, ie), zs = z_or_1(zeta, ls->off_s, is);
        double w = zk * ze * zs, r = 0; /* r = sum_j P_j T_{j,c} */
        for (int j = 0; j < st->n_pos; j++) {
            double tj = ls->t[j * st->n_cand + c];
            r += p_active(ls, zeta, j) * tj;
            if (g && ls->off_l >= 0)
                for (int l = 0; l < st->n_lay; l++)
                    if (st->lay_val[l] > j)
                        g[ls->off_l + l] += w * tj;
        }
        total += w * r;
        if (!g)
            continue;
        if (ls->off_k >= 0)
            g[ls->off_k + ik] += r * ze * zs;
        if (ls->off_e >= 0)
            g[ls->off_e + ie] += r * zk * zs;
        if (ls->off_s >= 0)
            g[ls->off_s + is] += r * zk * ze;
    }
    return total;
}

int gn_supernet_lat_eval(const gn_supernet_lat *sl, const double *zeta, int n, double *ms, double *g_zeta,
                         gn_error *err)
{
    if (n != sl->n)
        return gn_error_set(err, "supernet latency: zeta has %d entries, the supernet has %d", n, sl->n);
    for (int i = 0; i < n; i++)
        if (!isfinite(zeta[i]))
            return gn_error_set(err, "supernet latency: zeta[%d] = %g is not finite", i, zeta[i]);
    if (g_zeta)
        memset(g_zeta, 0, sizeof *g_zeta * (size_t)n);
    double L = sl->base;
    for (int t = 0; t < sl->n_stages; t++)
        L += stage_eval(&sl->stages[t], zeta, g_zeta);
    *ms = L;
    return 0;
}

int gn_supernet_latency(const gn_supernet *sn, const gn_lat_profile *p, const double *zeta, int n, double *ms,
                        double *g_zeta, gn_error *err)
{
    gn_supernet_lat *sl;
    if (gn_supernet_lat_create(sn, p, &sl, err))
        return -1;
    int rc = gn_supernet_lat_eval(sl, zeta, n, ms, g_zeta, err);
    gn_supernet_lat_free(sl);
    return rc;
}
