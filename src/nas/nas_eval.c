/*
 * nas_eval.c — evaluating one candidate for the search loop: its latency (a cache
 * of everything measured, a device profile's prediction, or a measurement on this
 * machine), a cheap latency estimate for the optimizers' accept() filter, and proxy
 * training.
 *
 * Measurement: batch-`lat_batch` inference with freshly initialised weights (latency
 * does not depend on the values), under the conditions of nas_lat.c (threads,
 * placement, the reference network): `lat_warmup_ms` of warm-up and `lat_runs` timed
 * runs; the median is the latency, the standard deviation its spread.  An unstable
 * measurement (CV or drift too high, or the reference off its baseline) is repeated
 * up to twice (the search must not stall); the loop reports how many were.
 *
 * Estimate: least squares of log(latency) on [1, log MACs, log params, depth] over
 * the phase-1 sample (LAPACKE_dgels) — a deliberately small model: it only has to
 * say whether a proposal is near a tier, the measurement decides.  With a device
 * profile the profile's calibrated predictor is used instead.
 *
 * Proxy training: gn_train_run without output files on a `proxy_subset`-image seeded
 * subset of the training split for `proxy_epochs` epochs (SGD Nesterov, cosine with a
 * short warm-up, no label smoothing, dropout or drop-path), scored by top-1 on the
 * fixed validation split (split_seed), the same split for every candidate.
 */
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpunas/latency.h"
#include "gpunas/train.h"
#include "nas/nas_internal.h"
#include "util/clock.h"
#include "util/strmap.h"


char *gn__nas_key(const nas_state *s, const int *x)
{
    int y[GN_ENC_MAX_DIMS];
    gn_space_canonical(s->c->space, x, y);
    return gn_space_encode_to_string(s->c->space, y);
}

/* The latency cache: canonical key -> {ms, spread} (one gn__strmap). */
typedef struct {
    double ms, spread;
} lat_entry;

int gn__nas_cache_get(const nas_state *s, const char *key, double *ms, double *spread)
{
    const lat_entry *e = gn__strmap_get(s->lat_cache, key);
    if (!e)
        return 0;
    *ms = e->ms;
    *spread = e->spread;
    return 1;
}

void gn__nas_cache_put(nas_state *s, const char *key, double ms, double spread)
{
    if (!key || !(ms > 0) || gn__strmap_get(s->lat_cache, key))
        return;
    if (!s->lat_cache && !(s->lat_cache = gn__strmap_new(sizeof(lat_entry))))
        return; /* a cache miss later only costs a measurement */
    gn__strmap_put(s->lat_cache, key, &(lat_entry){ms, spread});
}

static int measure(nas_state *s, const gn_arch *a, double *ms, double *spread, char **info, gn_error *err)
{
    if (s->have_profile) {
        int missing = 0;
        if (gn_lat_predict(&s->profile, a, ms, &missing, err))
            return -1;
        *spread = NAN;
        return 0;
    }
    gn_net *net = NULL;
    if (gn_net_create(a, s->be, &net, err) || gn_net_init(net, 1, err)) {
        gn_net_free(net);
        return -1;
    }
    int rc = gn__nas_lat_measure(s, net, ms, spread, info, err);
    gn_net_free(net);
    return rc;
}

int gn__nas_latency(nas_state *s, const int *x, double *ms, double *spread, char **info, gn_error *err)
{
    if (info)
        *info = NULL;
    char *key = gn__nas_key(s, x);
    if (!key)
        return gn_error_set(err, "search: out of memory");
    if (gn__nas_cache_get(s, key, ms, spread)) {
        free(key);
        return 0;
    }
    gn_arch *a = NULL;
    int rc = gn_space_decode(s->c->space, x, &a, err);
    if (!rc)
        rc = measure(s, a, ms, spread, info, err);
    if (!rc)
        gn__nas_cache_put(s, key, *ms, *spread);
    gn_arch_free(a);
    free(key);
    return rc;
}

/* ------------------------------------------------------------------ estimate */
void gn__nas_features(const gn_arch *a, double *f)
{
    f[0] = 1.0;
    f[1] = log((double)(a->macs > 0 ? a->macs : 1));
    f[2] = log((double)(a->params > 0 ? a->params : 1));
    f[3] = a->n_layers;
}

int gn__nas_p1_add(nas_state *s, const int *x, double ms)
{
    if (!(ms > 0) || !isfinite(ms))
        return 0;
    gn_error e;
    gn_arch *a = NULL;
    if (gn_space_decode(s->c->space, x, &a, &e))
        return 0; /* not a network: nothing to learn from */
    if (s->p1_n == s->p1_cap) {
        int cap = s->p1_cap ? 2 * s->p1_cap : 128;
        double *px = realloc(s->p1_x, sizeof(double) * cap * NAS_EST_F);
        if (px)
            s->p1_x = px;
        double *py = realloc(s->p1_y, sizeof(double) * cap);
        if (py)
            s->p1_y = py;
        if (!px || !py) {
            gn_arch_free(a);
            return -1;
        }
        s->p1_cap = cap;
    }
    gn__nas_features(a, s->p1_x + (size_t)s->p1_n * NAS_EST_F);
    s->p1_y[s->p1_n++] = log(ms);
    gn_arch_free(a);
    return 0;
}

int gn__nas_fit_estimate(nas_state *s, gn_error *err)
{
    s->have_model = 0;
    int n = s->p1_n;
    if (n < 2 * NAS_EST_F)
        return 0; /* too few samples: accept() lets everything through */
    double *A = malloc(sizeof(double) * n * NAS_EST_F), *b = malloc(sizeof(double) * n);
    if (!A || !b) {
        free(A);
        free(b);
        return gn_error_set(err, "search: out of memory");
    }
    memcpy(A, s->p1_x, sizeof(double) * n * NAS_EST_F);
    memcpy(b, s->p1_y, sizeof(double) * n);
    lapack_int info = LAPACKE_dgels(LAPACK_ROW_MAJOR, 'N', n, NAS_EST_F, 1, A, NAS_EST_F, b, 1);
    if (info == 0) {
        memcpy(s->coef, b, sizeof s->coef);
        s->have_model = 1;
    }
    free(A);
    free(b);
    return 0; /* a rank-deficient sample only disables the filter */
}

int gn__nas_estimate(nas_state *s, const int *x, double *ms)
{
    gn_error e;
    gn_arch *a = NULL;
    if (gn_space_decode(s->c->space, x, &a, &e))
        return -1;
    int rc = 0;
    if (s->have_profile) {
        int missing;
        rc = gn_lat_predict(&s->profile, a, ms, &missing, &e);
    } else if (s->have_model) {
        double f[NAS_EST_F], y = 0;
        gn__nas_features(a, f);
        for (int i = 0; i < NAS_EST_F; i++)
            y += s->coef[i] * f[i];
        *ms = exp(y);
    } else {
        rc = -1;
    }
    gn_arch_free(a);
    return rc;
}

/* ------------------------------------------------------------------ proxy training */
void gn__nas_level_budget(const gn_nas_config *c, int level, int *epochs, int *subset)
{
    if (c->fid_levels >= 2 && level >= 0 && level < c->fid_levels) {
        *epochs = c->fid_epochs[level];
        *subset = c->fid_subset[level];
    } else {
        *epochs = c->proxy_epochs;
        *subset = c->proxy_subset;
    }
}

int gn__nas_proxy_train(nas_state *s, const gn_arch *a, int level, const void *train_cb, double *acc,
                        double *train_s, gn_error *err)
{
    const gn_nas_config *c = s->c;
    if (level < 0 || (level > 0 && level >= c->fid_levels))
        return gn_error_set(err, "search: fidelity level %d, but the search has %d", level,
                            c->fid_levels > 1 ? c->fid_levels : 1);
    gn_train_config t;
    gn_train_defaults(&t);
    t.arch = a;
    t.resolution = 0;
    t.backend = c->backend ? c->backend : "dnnl";
    t.threads = c->threads;
    t.train_set = c->train_set;
    t.test_set = NULL;
    t.val_fraction = c->val_fraction;
    t.split_seed = c->split_seed;
    gn__nas_level_budget(c, level, &t.epochs, &t.subset);
    t.batch = c->proxy_batch;
    gn_optim_defaults(GN_OPT_SGD, &t.optim);
    t.schedule = GN_SCHED_COSINE;
    t.lr = c->proxy_lr;
    t.min_lr = 0.0;
    t.warmup_epochs = 0.1;
    t.warmup_lr = 0.0;
    t.warmup_per_step = true;
    t.smoothing = 0.0f;
    t.ema_decay = 0.0;
    t.dropout = false;
    t.drop_path = false;
    t.seed = c->seed;
    t.out_dir = NULL;
    gn_train_result r;
    double t0 = gn__now_s();
    if (gn_train_run(&t, (const gn_train_callbacks *)train_cb, &r, err))
        return -1;
    *train_s = gn__now_s() - t0;
    *acc = r.val_top1;
    if (!(*acc >= 0.0))
        return gn_error_set(err, "search: proxy training gave no validation accuracy (val_fraction %g)", c->val_fraction);
    return 0;
}
