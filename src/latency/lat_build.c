/*
 * lat_build.c — building a device profile (gn_lat_profile_build, gpunas/latprofile.h):
 * the procedure `gpunas profile` runs, as a library call.
 *
 * 1. table: for o->samples architectures, every layer key not yet in the table is
 *    measured in isolation (gn_lat_measure_layer);
 * 2. calibration: o->calib further architectures are measured whole (their missing
 *    keys are added first), the fallback and the predictor are fitted (before the
 *    fit, table entries far above the fallback model are measured again: see
 *    remeasure_outliers);
 * 3. evaluation: o->holdout further architectures, measured whole and predicted from
 *    the table alone (no keys added, as a search elsewhere would), mean |error| and
 *    max error in percent;
 * the three use disjoint seeded random streams (seed*3 + 0, 1, 2).  A measurement
 * outside the stability limits is repeated (o->retries) and the lowest median kept:
 * on a shared machine a co-running process makes OpenMP teams wait for a
 * descheduled thread, which only ever adds time.  A profile that is already
 * calibrated is only evaluated (phase 3: `gpunas profile --evaluate`).
 *
 * Speed probe (o->probe; the design note in gpunas/latprofile.h): a reference
 * network, the architecture the sampler draws with a fixed seed, timed on its own
 * backend at most every second and around every whole-network measurement; times
 * are divided by the speed factor and finally rebased to the median probe.
 */
#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpunas/latprofile.h"
#include "gpunas/network.h"
#include "util/clock.h"

/* The backend's primitive and weight caches grow with every new shape; the
 * profile starts a fresh backend after this many measured keys to bound memory. */
#define KEYS_PER_BACKEND 256

typedef struct {
    const char *backend;
    int threads;
    gn_backend *be;
    int keys; /* measured on be */
} be_holder;

static int holder_get(be_holder *h, gn_backend **be, gn_error *err)
{
    if (h->be && h->keys >= KEYS_PER_BACKEND) {
        gn_backend_destroy(h->be);
        h->be = NULL;
    }
    if (!h->be) {
        if (gn_backend_create(h->backend, &h->be, err))
            return -1;
        if (gn_backend_set_threads(h->be, h->threads, err)) {
            gn_backend_destroy(h->be);
            h->be = NULL;
            return -1;
        }
        h->keys = 0;
    }
    *be = h->be;
    return 0;
}

/* State of one profile run.  Every architecture whose layers entered the table is
 * kept (archs), with one witness (arch, layer) per key, so suspicious entries can
 * be measured again. */
typedef struct {
    gn_lat_profile *p;
    const gn_lat_build_opts *o;
    be_holder hold;
    gn_lat_limits lim;
    int retries;
    gn_arch **archs;
    int n_archs, cap_archs;
    struct witness {
        char key[GN_LAT_KEY_MAX];
        const gn_arch *a;
        int layer;
    } *wit;
    int n_wit, cap_wit;
    int layer_retried, net_retried, outliers;
    /* speed probe (gpunas/latprofile.h): a reference network on its own backend */
    bool probe_on;
    gn_backend *probe_be;
    gn_arch *probe_arch;
    gn_net *probe_net;
    double probe0, probe_t, factor;
    double *probes; /* every probe's median (ms) */
    int n_probes, cap_probes;
} prof_ctx;

/* The reference network is the architecture drawn with this seed (whatever --seed
 * is), so a profile and a later --evaluate of it time the same network. */
#define PROBE_SEED 0x5eed0b5e11ULL
#define PROBE_EVERY_MS 1000.0


/* Time the reference network (~20 ms, at least 3 runs) and update the factor. */
static int probe_measure(prof_ctx *c, gn_error *err)
{
    gn_lat_opts po;
    gn_lat_opts_default(&po);
    po.runs = 3;
    po.min_ms = 20;
    po.warmup_ms = 0;
    po.warmup_runs = 1;
    gn_lat_result r = {0};
    if (gn_lat_measure(c->probe_net, c->p->batch, &po, &r, err))
        return -1;
    double m = r.compute.median;
    gn_lat_result_free(&r);
    if (!(m > 0))
        return gn_error_set(err, "profile: the speed probe measured %g ms", m);
    if (!(c->probe0 > 0))
        c->probe0 = m;
    c->factor = m / c->probe0;
    if (c->n_probes == c->cap_probes) {
        int cap = c->cap_probes ? 2 * c->cap_probes : 256;
        double *np = realloc(c->probes, (size_t)cap * sizeof *np);
        if (!np)
            return gn_error_set(err, "profile: out of memory");
        c->probes = np;
        c->cap_probes = cap;
    }
    assert(c->n_probes < c->cap_probes);
    c->probes[c->n_probes++] = m;
    c->probe_t = gn__now_ms();
    return 0;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median, smallest and largest probe so far (ms). */
static void probe_summary(const prof_ctx *c, double *med, double *lo, double *hi)
{
    double *v = malloc((size_t)c->n_probes * sizeof *v);
    if (!v || c->n_probes == 0) {
        *med = *lo = *hi = c->probe0;
        free(v);
        return;
    }
    memcpy(v, c->probes, (size_t)c->n_probes * sizeof *v);
    qsort(v, (size_t)c->n_probes, sizeof *v, cmp_dbl);
    *med = gn_lat_quantile(v, c->n_probes, 0.5);
    *lo = v[0];
    *hi = v[c->n_probes - 1];
    free(v);
}

/* probe0 > 0: the speed the factors are relative to (an evaluated profile's);
 * otherwise the first probe sets it until probe_rebase.  The reference network is
 * warmed up for 300 ms first: a cold first probe (primitive creation, caches) would
 * make every factor after it too small. */
static int probe_open(prof_ctx *c, double probe0, gn_error *err)
{
    gn_rng r;
    gn_rng_seed(&r, PROBE_SEED);
    c->probe0 = probe0;
    if (c->o->sample(c->o->sample_ctx, &r, &c->probe_arch, err) ||
        gn_backend_create(c->o->backend, &c->probe_be, err) || gn_backend_set_threads(c->probe_be, c->o->threads, err) ||
        gn_net_create(c->probe_arch, c->probe_be, &c->probe_net, err) || gn_net_init(c->probe_net, 1, err))
        return -1;
    gn_lat_opts wo;
    gn_lat_opts_default(&wo);
    wo.runs = 1;
    wo.warmup_ms = 300;
    gn_lat_result wr = {0};
    if (gn_lat_measure(c->probe_net, c->p->batch, &wo, &wr, err))
        return -1;
    gn_lat_result_free(&wr);
    c->probe_on = true;
    return probe_measure(c, err);
}

/* Re-express the table and the n calibration times y (divided by factors relative
 * to the first probe) at the MEDIAN probe so far, and make that the reference: the
 * profile then holds times at the machine's typical speed while it was measured,
 * not at whatever speed the first 20 ms happened to see. */
static void probe_rebase(prof_ctx *c, double *y, int n)
{
    double med, lo, hi;
    probe_summary(c, &med, &lo, &hi);
    double r = med / c->probe0;
    for (int i = 0; i < c->p->n_entries; i++)
        c->p->entries[i].ms *= r;
    for (int i = 0; i < n; i++)
        y[i] *= r;
    c->probe0 = med;
    c->factor = c->n_probes ? c->probes[c->n_probes - 1] / med : 1.0;
}

/* Probe again when the last probe is older than PROBE_EVERY_MS. */
static int probe_refresh(prof_ctx *c, gn_error *err)
{
    if (!c->probe_on || gn__now_ms() - c->probe_t < PROBE_EVERY_MS)
        return 0;
    return probe_measure(c, err);
}

static int keep_arch(prof_ctx *c, gn_arch *a, gn_error *err)
{
    if (c->n_archs == c->cap_archs) {
        int cap = c->cap_archs ? 2 * c->cap_archs : 64;
        gn_arch **na = realloc(c->archs, (size_t)cap * sizeof *na);
        if (!na)
            return gn_error_set(err, "profile: out of memory");
        c->archs = na;
        c->cap_archs = cap;
    }
    c->archs[c->n_archs++] = a;
    return 0;
}

/* Isolated time of layer i of a (divided by the speed factor when probing):
 * measured again (up to retries times) while its CV exceeds the limit; the lowest
 * median is kept. */
static int measure_key(prof_ctx *c, const gn_arch *a, int i, double *ms, double *cv, gn_error *err)
{
    *ms = INFINITY;
    for (int t = 0; t <= c->retries; t++) {
        gn_backend *be;
        double m, v;
        if (probe_refresh(c, err) || holder_get(&c->hold, &be, err) ||
            gn_lat_measure_layer(a, i, be, c->p->batch, &c->p->layer_opts, &m, &v, err))
            return -1;
        c->hold.keys++;
        if (c->probe_on)
            m /= c->factor;
        if (m < *ms)
            *ms = m, *cv = v;
        if (v <= c->lim.max_cv)
            break;
        if (t < c->retries)
            c->layer_retried++;
    }
    if (!(*ms > 0)) /* below the clock's resolution: one nanosecond */
        *ms = 1e-6;
    return 0;
}

/* Measure every key of a that is not in the table yet (a must stay alive). */
static int fill_keys(prof_ctx *c, const gn_arch *a, gn_error *err)
{
    gn_lat_profile *p = c->p;
    for (int i = 1; i < a->n_layers; i++) {
        gn_lat_entry e = {0};
        if (gn_lat_key(a, i, p->batch, e.key, sizeof e.key, err))
            return -1;
        if (gn_lat_profile_find(p, e.key))
            continue;
        const gn_layer *L = &a->layers[i];
        e.type = L->type;
        e.gflop = gn_lat_layer_flops(L, p->batch) / 1e9;
        e.mb = gn_lat_layer_bytes(L, p->batch) / 1e6;
        if (measure_key(c, a, i, &e.ms, &e.cv, err) || gn_lat_profile_add(p, &e, err))
            return -1;
        if (c->n_wit == c->cap_wit) {
            int cap = c->cap_wit ? 2 * c->cap_wit : 256;
            struct witness *nw = realloc(c->wit, (size_t)cap * sizeof *nw);
            if (!nw)
                return gn_error_set(err, "profile: out of memory");
            c->wit = nw;
            c->cap_wit = cap;
        }
        struct witness *w = &c->wit[c->n_wit++];
        memcpy(w->key, e.key, sizeof w->key);
        w->a = a;
        w->layer = i;
    }
    return 0;
}

/* Entries more than 3x slower than the fallback model (fitted on the whole table)
 * predicts are measured again, up to twice, keeping the lowest median: a burst of
 * interference during one entry's few milliseconds is the likely cause, and the
 * model is refitted afterwards. */
#define OUTLIER_FACTOR 3.0

static int remeasure_outliers(prof_ctx *c, gn_error *err)
{
    gn_lat_profile *p = c->p;
    if (gn_lat_profile_fit_fallback(p, err))
        return -1;
    for (int k = 0; k < c->n_wit; k++) {
        struct witness *w = &c->wit[k];
        gn_lat_entry *e = (gn_lat_entry *)gn_lat_profile_find(p, w->key);
        double pred;
        if (!e || gn_lat_fallback_ms(p, e->type, e->key, e->gflop, e->mb, &pred, err))
            return -1;
        if (e->ms <= OUTLIER_FACTOR * pred)
            continue;
        c->outliers++;
        for (int t = 0; t < 2 && e->ms > OUTLIER_FACTOR * pred; t++) {
            double ms, cv;
            if (measure_key(c, w->a, w->layer, &ms, &cv, err))
                return -1;
            if (ms < e->ms)
                e->ms = ms, e->cv = cv;
        }
    }
    return gn_lat_profile_fit_fallback(p, err);
}

/* Whole-network median compute latency, measured again (up to retries times) while
 * outside the stability limits; the lowest (speed-normalised) median is kept in *ms
 * and the raw median of that attempt in *raw_ms; *unstable tells whether that one
 * is still outside the limits.  With the probe on, the reference network is timed
 * right before and right after, and the median divided by their mean factor. */
static int measure_net(prof_ctx *c, const gn_arch *a, const gn_lat_opts *o, double *ms, double *raw_ms,
                       bool *unstable, gn_error *err)
{
    *ms = *raw_ms = INFINITY;
    for (int t = 0; t <= c->retries; t++) {
        gn_net *net = NULL;
        gn_lat_result r = {0};
        gn_backend *be;
        double f0 = 1;
        if ((c->probe_on && probe_measure(c, err)) || holder_get(&c->hold, &be, err))
            return -1;
        f0 = c->factor;
        c->hold.keys++;
        int rc = gn_net_create(a, be, &net, err) || gn_net_init(net, o->seed, err) ||
                 gn_lat_measure(net, c->p->batch, o, &r, err) || (c->probe_on && probe_measure(c, err));
        double f = c->probe_on ? (f0 + c->factor) / 2 : 1.0;
        bool uns = !rc && gn_lat_check_stable(&r.compute, &c->lim, NULL, 0) != 0;
        if (!rc && r.compute.median / f < *ms)
            *ms = r.compute.median / f, *raw_ms = r.compute.median, *unstable = uns;
        gn_lat_result_free(&r);
        gn_net_free(net);
        if (rc)
            return -1;
        if (!uns)
            break;
        if (t < c->retries)
            c->net_retried++;
    }
    return 0;
}

static void ctx_free(prof_ctx *c)
{
    for (int i = 0; i < c->n_archs; i++)
        gn_arch_free(c->archs[i]);
    free(c->archs);
    free(c->wit);
    gn_backend_destroy(c->hold.be);
    gn_net_free(c->probe_net);
    gn_backend_destroy(c->probe_be);
    gn_arch_free(c->probe_arch);
    free(c->probes);
    memset(c, 0, sizeof *c);
}

static void say(const gn_lat_build_opts *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void say(const gn_lat_build_opts *o, const char *fmt, ...)
{
    if (!o->progress)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    o->progress(o->cb_ctx, line);
}

/* phases 1 and 2: the table and the calibrated predictor */
static int build_table(prof_ctx *c, int *n_unstable, gn_error *err)
{
    const gn_lat_build_opts *o = c->o;
    gn_lat_profile *p = c->p;
    gn_rng r_table, r_cal;
    gn_rng_seed(&r_table, o->seed * 3 + 0);
    gn_rng_seed(&r_cal, o->seed * 3 + 1);
    for (int s = 0; s < o->samples; s++) {
        gn_arch *a = NULL;
        if (o->sample(o->sample_ctx, &r_table, &a, err))
            return -1;
        if (keep_arch(c, a, err)) { /* on success c owns a */
            gn_arch_free(a);
            return -1;
        }
        if (fill_keys(c, a, err))
            return -1;
        if ((s + 1) % 10 == 0 || s + 1 == o->samples)
            say(o, "table: %d/%d architectures, %d keys", s + 1, o->samples, p->n_entries);
    }
    int rc = -1, first_cal = c->n_archs;
    double *sums = calloc((size_t)o->calib * GN_LAT_NTYPES + 1, sizeof *sums), *y = calloc((size_t)o->calib + 1, sizeof *y);
    if (!sums || !y) {
        gn_error_set(err, "profile: out of memory");
        goto out;
    }
    for (int k = 0; k < o->calib; k++) {
        bool uns = false;
        double raw;
        gn_arch *a = NULL;
        if (o->sample(o->sample_ctx, &r_cal, &a, err))
            goto out;
        if (keep_arch(c, a, err)) {
            gn_arch_free(a);
            goto out;
        }
        if (fill_keys(c, a, err) || measure_net(c, a, &p->net_opts, &y[k], &raw, &uns, err))
            goto out;
        *n_unstable += uns;
        say(o, "calibration: %d/%d networks measured, %d keys", k + 1, o->calib, p->n_entries);
    }
    if (c->probe_on) {
        probe_rebase(c, y, o->calib);
        p->probe_ms = c->probe0;
    }
    if (remeasure_outliers(c, err))
        goto out;
    if (c->outliers)
        say(o, "table: %d entries more than %.0fx above the fallback model were measured again", c->outliers,
            OUTLIER_FACTOR);
    for (int k = 0; k < o->calib; k++)
        if (gn_lat_table_sums(p, c->archs[first_cal + k], &sums[(size_t)k * GN_LAT_NTYPES], NULL, err))
            goto out;
    if (gn_lat_calibrate(sums, y, o->calib, &p->calib, err))
        goto out;
    p->calibrated = true;
    rc = 0;
out:
    free(sums);
    free(y);
    return rc;
}

/* phase 3: held-out networks predicted from the table alone */
static int evaluate(prof_ctx *c, int *n_unstable, gn_error *err)
{
    const gn_lat_build_opts *o = c->o;
    gn_lat_profile *p = c->p;
    gn_rng r_hold;
    gn_rng_seed(&r_hold, o->seed * 3 + 2);
    int rc = -1;
    double *pred = calloc((size_t)o->holdout + 1, sizeof *pred), *meas = calloc((size_t)o->holdout + 1, sizeof *meas),
           *raw = calloc((size_t)o->holdout + 1, sizeof *raw);
    gn_arch *a = NULL;
    gn_lat_eval ev = {0};
    if (!pred || !meas || !raw) {
        gn_error_set(err, "profile: out of memory");
        goto out;
    }
    for (int h = 0; h < o->holdout; h++) {
        bool uns = false;
        int miss;
        if (o->sample(o->sample_ctx, &r_hold, &a, err) || gn_lat_predict(p, a, &pred[h], &miss, err) ||
            measure_net(c, a, &p->net_opts, &meas[h], &raw[h], &uns, err))
            goto out;
        *n_unstable += uns;
        ev.layers += a->n_layers - 1;
        ev.missing += miss;
        if (o->heldout)
            o->heldout(o->cb_ctx, &(gn_lat_heldout){h, a, meas[h], pred[h], raw[h], miss, uns});
        gn_arch_free(a);
        a = NULL;
    }
    if (o->holdout) {
        ev.networks = o->holdout;
        gn_lat_eval_errors(pred, meas, o->holdout, &ev.mean_abs_pct, &ev.max_pct);
        gn_lat_eval_errors(pred, raw, o->holdout, &ev.raw_mean_abs_pct, &ev.raw_max_pct);
        p->eval = ev;
        p->evaluated = true;
    }
    rc = 0;
out:
    gn_arch_free(a);
    free(pred);
    free(meas);
    free(raw);
    return rc;
}

int gn_lat_profile_build(gn_lat_profile *p, const gn_lat_build_opts *o, gn_lat_build_report *rep, gn_error *err)
{
    gn_lat_build_report tmp;
    if (!rep)
        rep = &tmp;
    memset(rep, 0, sizeof *rep);
    if (!o->sample || !o->backend || p->batch < 1 || o->samples < 0 || o->holdout < 0 || o->retries < 0 ||
        (!p->calibrated && o->calib < 2))
        return gn_error_set(err, "profile: invalid build options (a sampler, a backend, batch >= 1 and, to "
                            "calibrate, at least 2 networks are needed)");
    prof_ctx c = {.p = p, .o = o, .lim = o->lim, .retries = o->retries};
    c.hold = (be_holder){.backend = o->backend, .threads = o->threads};
    bool evaluate_only = p->calibrated;
    int rc = -1, n_unstable = 0;
    if (o->probe) {
        if (probe_open(&c, evaluate_only ? p->probe_ms : 0, err))
            goto out;
        say(o, "speed probe: reference network %.4f ms now, factor %.3f", c.probe0 * c.factor, c.factor);
    }
    if (!evaluate_only && build_table(&c, &n_unstable, err))
        goto out;
    if (evaluate(&c, &n_unstable, err))
        goto out;
    rep->layer_retried = c.layer_retried;
    rep->net_retried = c.net_retried;
    rep->outliers = c.outliers;
    rep->unstable = n_unstable;
    rep->probed = c.probe_on;
    if (c.probe_on) {
        rep->n_probes = c.n_probes;
        rep->probe_ms = c.probe0;
        double med;
        probe_summary(&c, &med, &rep->probe_lo_ms, &rep->probe_hi_ms);
    }
    rc = 0;
out:
    ctx_free(&c);
    return rc;
}
