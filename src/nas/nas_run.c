/*
 * nas_run.c — gn_nas_run: phase 1 (tiering), replay of stored trials on resume, and
 * phase 2 (one optimizer per latency tier).  The design is in gpunas/nas.h.
 *
 * Trial rows.  Phase 1: optimizer "tiering", status 'pruned', seq = Sobol index.
 * Phase 2: optimizer "<kind>/t<i>" (the tier whose optimizer proposed it), seq = a
 * running proposal number; status 'done' (trained, val_acc), 'failed' (training
 * error, observed as infeasible) or 'pruned' (its latency is outside tier i; its tier
 * field holds the tier it does fall in, or -1).
 */
#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpunas/backend.h"
#include "nas/nas_internal.h"
#include "util/clock.h"
#include "util/strmap.h"

void gn_nas_defaults(gn_nas_config *c)
{
    memset(c, 0, sizeof *c);
    c->auto_tiers = 3;
    c->lat_batch = 1;
    c->threads = 0;
    c->lat_threads = GN_THREADS_BEST;
    c->lat_pin = 1;
    c->lat_reference = 1;
    c->lat_min_ms = 500;
    c->tier_margin = 0.05;
    c->lat_runs = 30;
    c->lat_warmup_ms = 50;
    c->prune_samples = 96;
    c->optimizer = "lamcts";
    c->seed = 1;
    c->trials = 30;
    c->max_misses = 40;
    c->proxy_epochs = 1;
    c->proxy_subset = 5000;
    c->proxy_batch = 64;
    c->proxy_lr = 0.05;
    c->val_fraction = 0.05;
    c->split_seed = 42;
}

static void emit(nas_state *s, gn_nas_event_kind k, const gn_trial *t, int done, int total, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void emit(nas_state *s, gn_nas_event_kind k, const gn_trial *t, int done, int total, const char *fmt, ...)
{
    if (!s->cb || !s->cb->event)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    gn_nas_event e = {.kind = k, .message = msg, .trial = t, .done = done, .total = total};
    s->cb->event(s->cb->user, &e);
}

static int stop_requested(nas_state *s)
{
    return s->cb && s->cb->should_stop && s->cb->should_stop(s->cb->user);
}

static int accept_cb(void *ctx, const int *x)
{
    nas_state *s = ctx;
    int t = s->accept_tier;
    double ms;
    if (gn__nas_estimate(s, x, &ms))
        return 1; /* no estimate: let the measurement decide */
    double lo = t > 0 ? s->edges[t - 1] * 0.85 : 0.0, hi = s->edges[t] * 1.15;
    return ms > lo && ms <= hi;
}

static int total_trained(const nas_state *s)
{
    int n = 0;
    for (int i = 0; i < s->n_tiers; i++)
        n += s->trained[i];
    return n;
}

static char *tier_names(const nas_state *s)
{
    static char buf[40 * GN_NAS_MAX_TIERS];
    buf[0] = 0;
    for (int i = 0; i < s->n_tiers; i++) {
        char t[40];
        snprintf(t, sizeof t, "%st%d <= %.3g ms", i ? ", " : "", i, s->edges[i]);
        strcat(buf, t);
    }
    return buf;
}

/* ------------------------------------------------------------------ phase 1 */
static int phase1(nas_state *s, gn_store *st, int have, gn_error *err)
{
    const gn_nas_config *c = s->c;
    gn_space_sobol *q = NULL;
    if (gn_space_sobol_create(c->space, c->seed, &q, err))
        return -1;
    gn_space_sobol_skip(q, (uint64_t)have);
    int x[GN_ENC_MAX_DIMS], rc = 0;
    for (int i = have; i < c->prune_samples; i++) {
        if (stop_requested(s)) {
            rc = 1;
            break;
        }
        gn_space_sobol_next(q, x);
        gn_space_canonical(c->space, x, x);
        gn_trial t;
        gn_trial_init(&t);
        t.seq = i;
        t.encoding = gn_space_encode_to_string(c->space, x);
        t.config = gn_space_decode_json(c->space, x, err);
        t.optimizer = strdup(NAS_TIERING);
        t.worker = strdup(s->host);
        if (!t.encoding || !t.config || !t.optimizer || gn_store_insert_trial(st, &t, err)) {
            gn_trial_clear(&t);
            rc = -1;
            break;
        }
        double ms, spread;
        if (gn__nas_latency(s, x, &ms, &spread, &t.latency_info, err)) {
            gn_trial_clear(&t);
            rc = -1;
            break;
        }
        gn_arch *a = NULL;
        if (!gn_space_decode(c->space, x, &a, err)) {
            t.params = a->params;
            t.macs = a->macs;
        }
        gn_arch_free(a);
        t.status = GN_TRIAL_PRUNED;
        t.latency_ms = ms;
        t.latency_spread_ms = spread;
        if (gn_store_finish_trial(st, t.id, &t, err)) {
            gn_trial_clear(&t);
            rc = -1;
            break;
        }
        gn__nas_p1_add(s, x, ms);
        emit(s, GN_NAS_EV_SAMPLE, &t, i + 1, c->prune_samples, "tiering %d/%d: %.3f ms", i + 1, c->prune_samples,
             ms);
        gn_trial_clear(&t);
    }
    gn_space_sobol_free(q);
    return rc;
}

static int fix_tiers(nas_state *s, gn_store *st, gn_error *err)
{
    const gn_nas_config *c = s->c;
    char *stored = NULL;
    int g = gn_store_get_meta(st, "nas.tiers", &stored, err);
    if (g < 0)
        return -1;
    int auto_n;
    if (g == 0) {
        int rc = gn_nas_parse_tiers(stored, s->edges, &s->n_tiers, &auto_n, err);
        free(stored);
        return rc;
    }
    if (c->n_tiers > 0) {
        s->n_tiers = c->n_tiers;
        memcpy(s->edges, c->tier_ms, sizeof(double) * c->n_tiers);
    } else {
        double *lat = malloc(sizeof(double) * (s->p1_n + 1));
        if (!lat)
            return gn_error_set(err, "search: out of memory");
        for (int i = 0; i < s->p1_n; i++)
            lat[i] = exp(s->p1_y[i]);
        int rc = gn_nas_auto_tiers(lat, s->p1_n, c->auto_tiers, s->edges, err);
        free(lat);
        if (rc)
            return -1;
        s->n_tiers = c->auto_tiers;
    }
    char buf[32 * GN_NAS_MAX_TIERS] = "";
    for (int i = 0; i < s->n_tiers; i++) {
        char t[32];
        snprintf(t, sizeof t, "%s%.17g", i ? "," : "", s->edges[i]);
        strcat(buf, t);
    }
    return gn_store_put_meta(st, "nas.tiers", buf, err);
}

/* ------------------------------------------------------------------ phase 2 */
/* Networks already trained: canonical key -> {accuracy, trial id} (a gn__strmap). */
typedef struct {
    double acc;
    int64_t id;
} acc_entry;

static int acc_get(const nas_state *s, const char *key, double *acc, int64_t *id)
{
    const acc_entry *e = gn__strmap_get(s->acc_cache, key);
    if (!e)
        return 0;
    *acc = e->acc;
    *id = e->id;
    return 1;
}

static void acc_put(nas_state *s, const char *key, double acc, int64_t id)
{
    if (!key || gn__strmap_get(s->acc_cache, key))
        return;
    if (!s->acc_cache && !(s->acc_cache = gn__strmap_new(sizeof(acc_entry))))
        return; /* the network would only be trained again */
    gn__strmap_put(s->acc_cache, key, &(acc_entry){acc, id});
}

static int observe_row(nas_state *s, int tier, const int *x, const gn_trial *t, gn_error *err)
{
    if (t->status == GN_TRIAL_DONE) {
        double acc = t->val_acc;
        if (t->error && strncmp(t->error, "same network", 12) == 0) {
            /* a network trained before (reached again through inert dimensions): not a
             * new candidate, so it does not use the budget; repeats cost no measurement or
             * training, so only a long run of them (10x max_misses) exhausts the tier */
            if (++s->repeats[tier] >= 10 * s->c->max_misses)
                s->exhausted[tier] = 1;
        } else {
            s->trained[tier]++;
            s->misses[tier] = 0;
            s->repeats[tier] = 0;
        }
        return gn_opt_observe(s->opt[tier], x, &acc, true, err);
    }
    if (t->status == GN_TRIAL_FAILED)
        s->trained[tier]++;
    else if (++s->misses[tier] >= s->c->max_misses)
        s->exhausted[tier] = 1;
    return gn_opt_observe(s->opt[tier], x, NULL, false, err);
}

/* Evaluate x (already inserted as trial id) for tier `tier`, finish the row, observe. */
static int evaluate(nas_state *s, gn_store *st, int tier, const int *x, gn_trial *t, gn_error *err)
{
    const gn_nas_config *c = s->c;
    double ms, spread;
    free(t->latency_info);
    t->latency_info = NULL;
    if (gn__nas_latency(s, x, &ms, &spread, &t->latency_info, err))
        return -1;
    char *key = gn__nas_key(s, x);
    gn__nas_cache_put(s, key, ms, spread);
    free(key);
    int at = gn_nas_tier_of(s->edges, s->n_tiers, ms);
    int inside = gn_nas_tier_inside(s->edges, s->n_tiers, ms, c->tier_margin);
    t->latency_ms = ms;
    t->latency_spread_ms = spread;
    t->tier = at;
    gn_arch *a = NULL;
    if (gn_space_decode(c->space, x, &a, err))
        return -1;
    t->params = a->params;
    t->macs = a->macs;
    char *k2 = gn__nas_key(s, x);
    double prev_acc;
    int64_t prev_id;
    if (inside != tier) {
        t->status = GN_TRIAL_PRUNED;
    } else if (k2 && acc_get(s, k2, &prev_acc, &prev_id)) {
        /* the same network (other values only in inert dimensions) was trained as
         * trial prev_id: reuse its accuracy, do not train it twice */
        t->status = GN_TRIAL_DONE;
        t->val_acc = prev_acc;
        t->train_s = 0.0;
        char note[64];
        snprintf(note, sizeof note, "same network as trial %lld", (long long)prev_id);
        free(t->error);
        t->error = strdup(note);
    } else {
        double acc = NAN, train_s = NAN;
        gn_error terr = {{0}};
        if (gn__nas_proxy_train(s, a, &acc, &train_s, &terr)) {
            t->status = GN_TRIAL_FAILED;
            t->error = strdup(terr.msg);
        } else {
            t->status = GN_TRIAL_DONE;
            t->val_acc = acc;
            t->train_s = train_s;
            acc_put(s, k2, acc, t->id);
        }
    }
    free(k2);
    gn_arch_free(a);
    if (gn_store_finish_trial(st, t->id, t, err))
        return -1;
    return observe_row(s, tier, x, t, err);
}

static void trial_message(nas_state *s, int tier, const gn_trial *t, const int *x, char *buf, size_t n)
{
    char *desc = gn_space_describe(s->c->space, x);
    if (t->status == GN_TRIAL_DONE && t->error)
        snprintf(buf, n, "[%d/%d] t%d #%lld %.3f ms  val %.2f%%  (%s: not trained again)", total_trained(s),
                 s->c->trials, tier, (long long)t->id, t->latency_ms, 100 * t->val_acc, t->error);
    else if (t->status == GN_TRIAL_DONE)
        snprintf(buf, n, "[%d/%d] t%d #%lld %.3f ms  val %.2f%%  %.1f s  %s", total_trained(s), s->c->trials, tier,
                 (long long)t->id, t->latency_ms, 100 * t->val_acc, t->train_s, desc ? desc : "");
    else if (t->status == GN_TRIAL_FAILED)
        snprintf(buf, n, "[%d/%d] t%d #%lld failed: %s", total_trained(s), s->c->trials, tier, (long long)t->id,
                 t->error ? t->error : "?");
    else
        snprintf(buf, n, "[%d/%d] t%d #%lld %.3f ms: %s, not trained", total_trained(s), s->c->trials, tier,
                 (long long)t->id, t->latency_ms,
                 t->tier == tier  ? "within the tier margin of an edge"
                 : t->tier >= 0   ? "outside the tier (another tier)"
                                  : "outside the tier (slower than every tier)");
    free(desc);
}

static int run_trial(nas_state *s, gn_store *st, int tier, const int *x, int64_t existing_id, int64_t seq,
                     gn_error *err)
{
    const gn_nas_config *c = s->c;
    assert(tier >= 0 && tier < s->n_tiers && s->opt[tier]);
    gn_trial t;
    gn_trial_init(&t);
    if (existing_id > 0) {
        t.id = existing_id;
    } else {
        char opt[64];
        snprintf(opt, sizeof opt, "%s/t%d", gn_opt_name(s->opt[tier]), tier);
        t.seq = seq;
        t.tier = tier;
        t.encoding = gn_space_encode_to_string(c->space, x);
        t.config = gn_space_decode_json(c->space, x, err);
        t.optimizer = strdup(opt);
        t.worker = strdup(s->host);
        if (!t.encoding || !t.config || !t.optimizer || gn_store_insert_trial(st, &t, err)) {
            gn_trial_clear(&t);
            return -1;
        }
    }
    int rc = evaluate(s, st, tier, x, &t, err);
    if (!rc) {
        char msg[1024];
        trial_message(s, tier, &t, x, msg, sizeof msg);
        emit(s, GN_NAS_EV_TRIAL, &t, total_trained(s), c->trials, "%s", msg);
    }
    gn_trial_clear(&t);
    return rc;
}

static int parse_tier_tag(const char *opt, int *tier)
{
    const char *p = opt ? strrchr(opt, '/') : NULL;
    if (!p || p[1] != 't')
        return -1;
    char *end;
    long v = strtol(p + 2, &end, 10);
    if (*end || v < 0 || v >= GN_NAS_MAX_TIERS)
        return -1;
    *tier = (int)v;
    return 0;
}

/* ------------------------------------------------------------------ the run */
/* ---- gn_nas_run, phase by phase */

/* Check the settings against the store, load the profile, set up the backend and the
 * latency conditions (nas_lat.c), and say how latency is measured. */
static int run_setup(nas_state *s, bool resume, gn_error *err)
{
    const gn_nas_config *c = s->c;
    gethostname(s->host, sizeof s->host - 1);
    if (gn__nas_settings_check(c->store, c, resume, err))
        return -1;
    if (c->profile_path) {
        if (gn_lat_profile_load(c->profile_path, &s->profile, err))
            return -1;
        if (!s->profile.calibrated)
            return gn_error_set(err, "%s: profile has no calibrated predictor", c->profile_path);
        s->have_profile = 1;
    }
    if (gn_backend_create(c->backend ? c->backend : "dnnl", &s->be, err) ||
        gn_backend_set_threads(s->be, c->threads, err) || gn__nas_lat_setup(s, c->store, err))
        return -1;
    if (s->lat_note[0])
        emit(s, GN_NAS_EV_INFO, NULL, 0, 0, "%s", s->lat_note);
    if (!s->have_profile)
        emit(s, GN_NAS_EV_INFO, NULL, 0, 0,
             "latency: measured at %d thread%s, %s; reference network baseline %.4f ms%s", s->lat_threads,
             s->lat_threads == 1 ? "" : "s", c->lat_pin ? "pinned one CPU per thread" : "unpinned", s->ref_base_ms,
             c->lat_reference ? ", paired with every measurement (latency = ratio to it x baseline)"
                              : " (not paired)");
    return 0;
}

/* Everything stored so far: latencies into the cache, trained networks into the
 * accuracy cache, tiering rows into the phase-1 data (a tiering row killed while
 * measuring is finished now).  *have_p1: the tiering rows. */
static int replay_stored(nas_state *s, const gn_trial_list *rows, int *have_p1, gn_error *err)
{
    const gn_nas_config *c = s->c;
    int x[GN_ENC_MAX_DIMS];
    *have_p1 = 0;
    for (int64_t i = 0; i < rows->n; i++) {
        gn_trial *t = &rows->items[i];
        bool tiering = t->optimizer && strcmp(t->optimizer, NAS_TIERING) == 0;
        if (!tiering && t->seq + 1 > s->next_seq)
            s->next_seq = t->seq + 1;
        if (gn_space_parse_string(c->space, t->encoding, x, err))
            return -1;
        char *key = gn__nas_key(s, x);
        if (t->latency_ms > 0)
            gn__nas_cache_put(s, key, t->latency_ms, t->latency_spread_ms);
        if (!tiering && t->status == GN_TRIAL_DONE && !(t->error && strncmp(t->error, "same network", 12) == 0))
            acc_put(s, key, t->val_acc, t->id);
        free(key);
        if (!tiering)
            continue;
        (*have_p1)++;
        if (t->status == GN_TRIAL_RUNNING) { /* killed mid-measurement: finish it now */
            double ms, spread;
            free(t->latency_info);
            t->latency_info = NULL;
            if (gn__nas_latency(s, x, &ms, &spread, &t->latency_info, err))
                return -1;
            t->status = GN_TRIAL_PRUNED;
            t->latency_ms = ms;
            t->latency_spread_ms = spread;
            if (gn_store_finish_trial(c->store, t->id, t, err))
                return -1;
        }
        gn__nas_p1_add(s, x, t->latency_ms);
    }
    return 0;
}

/* Phase 1 (what is missing of it), the tier edges and the latency estimate, and one
 * optimizer per tier.  1: stopped during tiering. */
static int run_tiering(nas_state *s, int have_p1, gn_error *err)
{
    const gn_nas_config *c = s->c;
    gn_store *st = c->store;
    if (have_p1 < c->prune_samples) {
        emit(s, GN_NAS_EV_INFO, NULL, 0, 0, "tiering: measuring %d sampled networks of space '%s' (%s)",
             c->prune_samples - have_p1, gn_space_name(c->space),
             s->have_profile ? "predicted from the device profile" : "batch-1 latency on this machine");
        int p = phase1(s, st, have_p1, err);
        if (p != 0)
            return p;
    }
    if (fix_tiers(s, st, err) || gn__nas_fit_estimate(s, err))
        return -1;
    int per[GN_NAS_MAX_TIERS] = {0}, above = 0;
    for (int i = 0; i < s->p1_n; i++) {
        int t = gn_nas_tier_of(s->edges, s->n_tiers, exp(s->p1_y[i]));
        if (t < 0)
            above++;
        else
            per[t]++;
    }
    char buf[256] = "";
    for (int i = 0; i < s->n_tiers; i++) {
        char tb[32];
        snprintf(tb, sizeof tb, "%s%d", i ? "/" : "", per[i]);
        strcat(buf, tb);
    }
    emit(s, GN_NAS_EV_TIERS, NULL, 0, 0, "tiers: %s; phase-1 samples per tier %s, %d slower", tier_names(s), buf,
         above);
    for (int i = 0; i < s->n_tiers; i++) {
        gn_opt_options o;
        gn_opt_options_default(&o);
        o.seed = c->seed + 1000ull * (i + 1);
        o.n_objectives = 1;
        o.accept = accept_cb;
        o.accept_ctx = s;
        if (gn_opt_create(c->optimizer, gn_space_desc(c->space), &o, &s->opt[i], err))
            return -1;
    }
    return 0;
}

/* Trials that were running when the search was interrupted: evaluated again under
 * their own ids. */
typedef struct {
    int64_t *id;
    int *x, *tier;
    int n;
} pending_list;

/* Replay the phase-2 rows tier by tier, in id order: each tier's optimizer must
 * propose exactly the stored point again, then observes its result. */
static int replay_search(nas_state *s, const gn_trial_list *rows, pending_list *pend, gn_error *err)
{
    const gn_nas_config *c = s->c;
    gn_store *st = c->store;
    pend->id = calloc(rows->n + 1, sizeof *pend->id);
    pend->x = calloc((rows->n + 1) * (size_t)GN_ENC_MAX_DIMS, sizeof *pend->x);
    pend->tier = calloc(rows->n + 1, sizeof *pend->tier);
    if (!pend->id || !pend->x || !pend->tier)
        return gn_error_set(err, "search: out of memory");
    int replayed = 0, x[GN_ENC_MAX_DIMS];
    for (int tier = 0; tier < s->n_tiers; tier++) {
        for (int64_t i = 0; i < rows->n; i++) {
            gn_trial *t = &rows->items[i];
            int tt;
            if (!t->optimizer || strcmp(t->optimizer, NAS_TIERING) == 0 || parse_tier_tag(t->optimizer, &tt) || tt != tier)
                continue;
            if (tt >= s->n_tiers)
                return gn_error_set(err, "%s: trial %lld belongs to tier %d but the search has %d tiers",
                                    gn_store_where(st), (long long)t->id, tt, s->n_tiers);
            int y[GN_ENC_MAX_DIMS];
            s->accept_tier = tier;
            if (gn_opt_propose(s->opt[tier], y, err) || gn_space_parse_string(c->space, t->encoding, x, err))
                return -1;
            if (memcmp(x, y, sizeof(int) * s->d) != 0)
                return gn_error_set(err,
                                    "%s: resume: tier %d's optimizer does not reproduce trial %lld (store made by "
                                    "another gpunas version or settings)",
                                    gn_store_where(st), tier, (long long)t->id);
            if (t->status == GN_TRIAL_RUNNING) {
                pend->id[pend->n] = t->id;
                pend->tier[pend->n] = tier;
                memcpy(pend->x + (size_t)pend->n * GN_ENC_MAX_DIMS, x, sizeof(int) * s->d);
                pend->n++;
            } else if (observe_row(s, tier, x, t, err)) {
                return -1;
            }
            replayed++;
        }
    }
    if (s->unstable)
        emit(s, GN_NAS_EV_INFO, NULL, 0, 0,
             "note: %d latency measurements were unstable and repeated (is another process using the cores?)",
             s->unstable);
    if (replayed)
        emit(s, GN_NAS_EV_INFO, NULL, 0, 0, "replayed %d stored trials (%d trained); %d interrupted trial(s) to redo",
             replayed, total_trained(s), pend->n);
    return 0;
}

/* Phase 2: the tier with the fewest trained candidates proposes next, until the
 * budget, the time budget, a stop request or every tier is exhausted. */
static int run_search(nas_state *s, gn_error *err)
{
    const gn_nas_config *c = s->c;
    int x[GN_ENC_MAX_DIMS];
    if (total_trained(s) < c->trials)
        emit(s, GN_NAS_EV_INFO, NULL, 0, 0, "searching: %d more trained candidates, optimizer %s, %d tiers",
             c->trials - total_trained(s), c->optimizer, s->n_tiers);
    while (total_trained(s) < c->trials) {
        if (stop_requested(s)) {
            emit(s, GN_NAS_EV_INFO, NULL, 0, 0, "stopped; --resume continues");
            break;
        }
        if (c->time_budget_s > 0 && gn__now_s() - s->t0 > c->time_budget_s) {
            emit(s, GN_NAS_EV_INFO, NULL, 0, 0, "time budget of %.0f s reached", c->time_budget_s);
            break;
        }
        int tier = -1;
        for (int i = 0; i < s->n_tiers; i++)
            if (!s->exhausted[i] && (tier < 0 || s->trained[i] < s->trained[tier]))
                tier = i;
        if (tier < 0) {
            emit(s, GN_NAS_EV_INFO, NULL, 0, 0, "every tier exhausted (%d proposals in a row outside the tier)",
                 c->max_misses);
            break;
        }
        s->accept_tier = tier;
        gn_error perr = {{0}};
        if (gn_opt_propose(s->opt[tier], x, &perr)) {
            s->exhausted[tier] = 1;
            emit(s, GN_NAS_EV_INFO, NULL, 0, 0, "tier %d: no more proposals (%s)", tier, perr.msg);
            continue;
        }
        if (run_trial(s, c->store, tier, x, 0, s->next_seq++, err))
            return -1;
        if (s->exhausted[tier])
            emit(s, GN_NAS_EV_INFO, NULL, 0, 0, "tier %d exhausted: %d proposals in a row fell outside it", tier,
                 c->max_misses);
    }
    if (s->unstable)
        emit(s, GN_NAS_EV_INFO, NULL, 0, 0, "latency: %d measurements in all were unstable and repeated", s->unstable);
    if (s->ref_n)
        emit(s, GN_NAS_EV_INFO, NULL, 0, 0,
             "latency: %d measurements paired with the reference network, which took x%.2f .. x%.2f its baseline "
             "time meanwhile (the machine's speed moved; latencies are corrected to the baseline)",
             s->ref_n, 1 + s->ref_moved_lo, 1 + s->ref_moved_hi);
    return 0;
}

static void state_free(nas_state *s)
{
    for (int i = 0; i < GN_NAS_MAX_TIERS; i++)
        gn_opt_free(s->opt[i]);
    gn__strmap_free(s->lat_cache);
    gn__strmap_free(s->acc_cache);
    free(s->p1_x);
    free(s->p1_y);
    gn_lat_profile_free(&s->profile);
    gn__nas_lat_free(s);
    gn_backend_destroy(s->be);
}

int gn_nas_run(const gn_nas_config *c, bool resume, const gn_nas_callbacks *cb, gn_error *err)
{
    if (!c->space || !c->store || !c->train_set)
        return gn_error_set(err, "search: space, store and training data are required");
    if (c->trials < 0 || c->prune_samples < 3 || c->lat_batch < 1 || c->lat_runs < 3 || c->max_misses < 1)
        return gn_error_set(err, "search: invalid budget (trials %d, prune_samples %d >= 3, lat_runs %d >= 3)",
                            c->trials, c->prune_samples, c->lat_runs);
    nas_state S, *s = &S;
    memset(s, 0, sizeof S);
    s->c = c;
    s->cb = cb;
    s->t0 = gn__now_s();
    s->d = gn_space_desc(c->space)->ndims;
    gn_lat_profile_init(&s->profile);
    gn_trial_list rows = {0};
    pending_list pend = {0};
    gn_trial_filter f;
    gn_trial_filter_init(&f);
    int rc = -1, have_p1, stopped = 0;
    if (run_setup(s, resume, err) || gn_store_list_trials(c->store, &f, &rows, err) ||
        replay_stored(s, &rows, &have_p1, err))
        goto out;
    if (resume && rows.n)
        emit(s, GN_NAS_EV_INFO, NULL, 0, 0, "resuming: %lld trials in %s", (long long)rows.n,
             gn_store_where(c->store));
    if ((stopped = run_tiering(s, have_p1, err)) < 0)
        goto out;
    if (stopped) {
        emit(s, GN_NAS_EV_INFO, NULL, 0, 0, "stopped during tiering; --resume continues");
        rc = 0;
        goto out;
    }
    if (replay_search(s, &rows, &pend, err))
        goto out;
    gn_trial_list_free(&rows);
    for (int i = 0; i < pend.n; i++) /* an interrupted trial is evaluated again under its own id */
        if (run_trial(s, c->store, pend.tier[i], pend.x + (size_t)i * GN_ENC_MAX_DIMS, pend.id[i], 0, err))
            goto out;
    rc = run_search(s, err);
out:
    gn_trial_list_free(&rows);
    free(pend.id);
    free(pend.x);
    free(pend.tier);
    state_free(s);
    return rc;
}
