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
#include <time.h>
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
    c->canonical = 1;
    c->parallel = 1;
    c->local_worker = 1;
    c->lease_s = 60;
    c->max_attempts = 3;
    c->poll_s = 0.2;
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
    c->score = GN_NAS_SCORE_NASWOT;
    c->naswot_weight = 1.0;
    c->val_fraction = 0.05;
    c->split_seed = 42;
    c->fid_eta = 3;
}

#define emit(s, k, t, done, total, ...) gn__nas_event((s)->cb, k, t, done, total, __VA_ARGS__)

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

static void canon_cb(void *ctx, const int *x, int *y)
{
    gn_space_canonical((const gn_space *)ctx, x, y);
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

/* ------------------------------------------------------------------ caches */
/* Networks already trained: canonical key -> {accuracy, trial id}; networks whose
 * evaluation failed: key -> trial id (gn__strmap each). */
typedef struct {
    double acc, naswot;
    int64_t id;
} acc_entry;

static int acc_get(const nas_state *s, const char *key, double *acc, double *naswot, int64_t *id)
{
    const acc_entry *e = gn__strmap_get(s->acc_cache, key);
    if (!e)
        return 0;
    *acc = e->acc;
    *naswot = e->naswot;
    *id = e->id;
    return 1;
}

static void acc_put(nas_state *s, const char *key, double acc, double naswot, int64_t id)
{
    if (!key || gn__strmap_get(s->acc_cache, key))
        return;
    if (!s->acc_cache && !(s->acc_cache = gn__strmap_new(sizeof(acc_entry))))
        return; /* the network would only be trained again */
    gn__strmap_put(s->acc_cache, key, &(acc_entry){acc, naswot, id});
}

static int fail_get(const nas_state *s, const char *key, int64_t *id)
{
    const int64_t *e = gn__strmap_get(s->fail_cache, key);
    if (!e)
        return 0;
    *id = *e;
    return 1;
}

static void fail_put(nas_state *s, const char *key, int64_t id)
{
    if (!key || gn__strmap_get(s->fail_cache, key))
        return;
    if (!s->fail_cache && !(s->fail_cache = gn__strmap_new(sizeof(int64_t))))
        return;
    gn__strmap_put(s->fail_cache, key, &id);
}

static int is_repeat(const gn_trial *t)
{
    return t->error && strncmp(t->error, "same network", 12) == 0;
}

/* What a finished row teaches the caches. */
static void learn(nas_state *s, const int *x, const gn_trial *t)
{
    char *key = gn__nas_key(s, x);
    if (!key)
        return;
    if (t->latency_ms > 0)
        gn__nas_cache_put(s, key, t->latency_ms, t->latency_spread_ms);
    if (t->status == GN_TRIAL_DONE && !is_repeat(t) && !(t->optimizer && !strcmp(t->optimizer, NAS_TIERING)))
        acc_put(s, key, t->val_acc, t->naswot, t->id);
    /* a network that failed fails again; workers that died holding it say nothing of it */
    if (t->status == GN_TRIAL_FAILED && !(t->error && strncmp(t->error, "lease expired", 13) == 0))
        fail_put(s, key, t->id);
    free(key);
}

/* A failed look at the store while waiting (the database server restarting, a
 * dropped connection): said, and tried again for up to STORE_RETRY_S since the first
 * failure of a run of them.  0 go on, -1 give up (err kept). */
#define STORE_RETRY_S 120.0
static int wait_failed(nas_state *s, double *first_fail, const gn_error *err)
{
    double now = gn__now_s();
    if (*first_fail == 0)
        *first_fail = now;
    if (now - *first_fail > STORE_RETRY_S)
        return -1;
    emit(s, GN_NAS_EV_INFO, NULL, 0, 0, "store: %s (retrying)", err->msg);
    struct timespec ts = {1, 0};
    nanosleep(&ts, NULL);
    return 0;
}

/* ------------------------------------------------------------------ phase 1 */
/* A tiering sample predicted from the device profile: written at once. */
static int phase1_predicted(nas_state *s, gn_trial *t, const int *x, gn_error *err)
{
    if (gn_store_insert_trial(s->c->store, t, err))
        return -1;
    double ms, spread;
    if (gn__nas_latency(s, x, &ms, &spread, &t->latency_info, err))
        return -1;
    t->status = GN_TRIAL_PRUNED;
    t->latency_ms = ms;
    t->latency_spread_ms = spread;
    return gn_store_finish_trial(s->c->store, t->id, t, err);
}

/* The missing tiering samples (Sobol points have..N-1) as measure jobs (or predicted
 * at once), then wait until every sample is finished.  pending: ids of samples in the
 * queue already (resume).  1: stopped. */
static int phase1(nas_state *s, int have, int64_t *pending, int n_pending, gn_error *err)
{
    const gn_nas_config *c = s->c;
    gn_store *st = c->store;
    gn_space_sobol *q = NULL;
    if (gn_space_sobol_create(c->space, c->seed, &q, err))
        return -1;
    gn_space_sobol_skip(q, (uint64_t)have);
    int x[GN_ENC_MAX_DIMS], rc = 0;
    for (int i = have; i < c->prune_samples && !rc; i++) {
        gn_space_sobol_next(q, x);
        gn_space_canonical(c->space, x, x);
        gn_trial t;
        gn_trial_init(&t);
        t.seq = i;
        t.encoding = gn_space_encode_to_string(c->space, x);
        t.config = gn_space_decode_json(c->space, x, err);
        t.optimizer = strdup(NAS_TIERING);
        t.worker = strdup(s->host);
        gn_arch *a = NULL;
        if (t.config && !gn_space_decode(c->space, x, &a, err)) {
            t.params = a->params;
            t.macs = a->macs;
        }
        gn_arch_free(a);
        if (!t.encoding || !t.config || !t.optimizer) {
            rc = gn_error_set(err, "search: out of memory");
        } else if (s->have_profile) {
            rc = phase1_predicted(s, &t, x, err);
            if (!rc) {
                gn__nas_p1_add(s, x, t.latency_ms);
                emit(s, GN_NAS_EV_SAMPLE, &t, i + 1, c->prune_samples, "tiering %d/%d: %.3f ms", i + 1,
                     c->prune_samples, t.latency_ms);
            }
        } else {
            t.kind = strdup("measure");
            t.device_class = strdup(s->search_class);
            t.max_attempts = c->max_attempts;
            rc = !t.kind || !t.device_class ? gn_error_set(err, "search: out of memory") : gn_store_enqueue(st, &t, err);
            if (!rc)
                pending[n_pending++] = t.id;
        }
        gn_trial_clear(&t);
    }
    gn_space_sobol_free(q);
    if (rc)
        return -1;
    int done = c->prune_samples - n_pending;
    double first_fail = 0;
    while (n_pending > 0) {
        if (stop_requested(s))
            return 1;
        for (int i = 0; i < n_pending; i++) {
            gn_trial t;
            if (gn_store_get_trial(st, pending[i], &t, err) != 0) {
                if (wait_failed(s, &first_fail, err))
                    return -1;
                i--;
                continue;
            }
            first_fail = 0;
            if (gn__nas_is_final(&t)) {
                if (gn_space_parse_string(c->space, t.encoding, x, err)) {
                    gn_trial_clear(&t);
                    return -1;
                }
                learn(s, x, &t);
                done++;
                if (t.status == GN_TRIAL_PRUNED && t.latency_ms > 0) {
                    gn__nas_p1_add(s, x, t.latency_ms);
                    emit(s, GN_NAS_EV_SAMPLE, &t, done, c->prune_samples, "tiering %d/%d: %.3f ms", done,
                         c->prune_samples, t.latency_ms);
                } else {
                    emit(s, GN_NAS_EV_INFO, &t, done, c->prune_samples, "tiering %d/%d: trial %lld failed: %s", done,
                         c->prune_samples, (long long)t.id, t.error ? t.error : "?");
                }
                pending[i--] = pending[--n_pending];
            }
            gn_trial_clear(&t);
        }
        if (n_pending > 0 && gn__nas_pump(s, err) && wait_failed(s, &first_fail, err))
            return -1;
    }
    if (s->p1_n < 3)
        return gn_error_set(err, "%s: only %d tiering samples have a latency (3 needed)", gn_store_where(st), s->p1_n);
    return 0;
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
static int observe_row(nas_state *s, int tier, const int *x, const gn_trial *t, gn_error *err)
{
    if (t->status == GN_TRIAL_DONE) {
        double acc = gn_nas_score(&s->scorer, t);
        if (is_repeat(t)) {
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

static void trial_message(nas_state *s, int tier, const gn_trial *t, const int *x, char *buf, size_t n)
{
    char *desc = gn_space_describe(s->c->space, x);
    if (t->status == GN_TRIAL_DONE && t->error)
        snprintf(buf, n, "[%d/%d] t%d #%lld %.3f ms  val %.2f%%  (%s: not trained again)", total_trained(s),
                 s->c->trials, tier, (long long)t->id, t->latency_ms, 100 * t->val_acc, t->error);
    else if (t->status == GN_TRIAL_DONE) {
        char zc[48] = ""; /* the NASWOT term of the score, in standard deviations */
        if (s->scorer.kind == GN_NAS_SCORE_NASWOT && s->scorer.sd > 0 && isfinite(t->naswot))
            snprintf(zc, sizeof zc, "  naswot %+.2f sd", (t->naswot - s->scorer.mean) / s->scorer.sd);
        snprintf(buf, n, "[%d/%d] t%d #%lld %.3f ms  val %.2f%%%s  %.1f s  %s", total_trained(s), s->c->trials, tier,
                 (long long)t->id, t->latency_ms, 100 * t->val_acc, zc, t->train_s, desc ? desc : "");
    }
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

/* Phase-2 rows not yet observed by the optimizers, in proposal order (design in
 * gpunas/nas.h: proposal k follows the observation of rows 0 .. k-parallel). */
typedef struct {
    gn_trial row;   /* the row as last read (final: as stored for good) */
    int tier;       /* the tier whose optimizer proposed it */
    int x[GN_ENC_MAX_DIMS];
    char *key;      /* canonical network */
    int final;
    int deferred;   /* a 'running' row of the coordinator: answered here */
    int replayed;   /* observed during the resume's replay: no event */
} flight;

typedef struct {
    flight *v;
    int n, cap;
    int64_t proposed, observed; /* phase-2 rows in all / observed */
    int known_trained;          /* finished rows that use the budget, observed or not */
    int unobserved[GN_NAS_MAX_TIERS];
} flights;

static void flights_free(flights *F)
{
    for (int i = 0; i < F->n; i++) {
        gn_trial_clear(&F->v[i].row);
        free(F->v[i].key);
    }
    free(F->v);
    memset(F, 0, sizeof *F);
}

static int uses_budget(const gn_trial *t)
{
    return (t->status == GN_TRIAL_DONE && !is_repeat(t)) || t->status == GN_TRIAL_FAILED;
}

static int nonfinal(const flights *F)
{
    int n = 0;
    for (int i = 0; i < F->n; i++)
        n += !F->v[i].final;
    return n;
}

/* f's row is final: keep it (re-read from the store), teach the caches, count it. */
static int mark_final(nas_state *s, flights *F, flight *f, gn_error *err)
{
    gn_trial t;
    if (gn_store_get_trial(s->c->store, f->row.id, &t, err) != 0)
        return -1;
    if (!gn__nas_is_final(&t)) {
        gn_trial_clear(&t);
        return gn_error_set(err, "%s: trial %lld: finished, yet stored as %s", gn_store_where(s->c->store),
                            (long long)f->row.id, gn_trial_status_name(t.status));
    }
    gn_trial_clear(&f->row);
    f->row = t;
    f->final = 1;
    learn(s, f->x, &t);
    F->known_trained += uses_budget(&t);
    return 0;
}

/* Another job in flight evaluates the same network: wait for it. */
static int key_busy(const flights *F, const flight *self, const char *key)
{
    for (int i = 0; i < F->n; i++) {
        const flight *g = &F->v[i];
        if (g != self && !g->final && !g->deferred && g->key && strcmp(g->key, key) == 0)
            return 1;
    }
    return 0;
}

/* The answer to a proposal from what is known: 0 answered (*t filled), 1 not known. */
static int answer_known(nas_state *s, int tier, const char *key, gn_trial *t)
{
    int64_t prev;
    double ms, spread, acc, naswot;
    if (fail_get(s, key, &prev)) {
        char note[96];
        snprintf(note, sizeof note, "same network as trial %lld, which failed", (long long)prev);
        t->status = GN_TRIAL_FAILED;
        t->error = strdup(note);
        return 0;
    }
    if (!gn__nas_cache_get(s, key, &ms, &spread))
        return 1;
    t->latency_ms = ms;
    t->latency_spread_ms = spread;
    t->tier = gn_nas_tier_of(s->edges, s->n_tiers, ms);
    if (!gn__nas_inside(s, ms, tier)) {
        t->status = GN_TRIAL_PRUNED;
        return 0;
    }
    t->tier = tier;
    if (acc_get(s, key, &acc, &naswot, &prev)) {
        /* the same network (other values only in inert dimensions) was trained as
         * trial prev: reuse its accuracy, do not train it twice */
        char note[64];
        snprintf(note, sizeof note, "same network as trial %lld", (long long)prev);
        t->status = GN_TRIAL_DONE;
        t->val_acc = acc;
        t->naswot = naswot;
        t->train_s = 0.0;
        t->error = strdup(note);
        return 0;
    }
    return 1;
}

/* A deferred row: answered from what is known once no job of its network is in
 * flight, else evaluated here.  0 answered, 1 still waiting, -1 error. */
static int resolve(nas_state *s, flights *F, flight *f, gn_error *err)
{
    if (key_busy(F, f, f->key))
        return 1;
    gn_trial t;
    gn_trial_init(&t);
    int rc;
    if (answer_known(s, f->tier, f->key, &t) == 0) {
        rc = gn_store_finish_trial(s->c->store, f->row.id, &t, err);
    } else {
        gn_trial res;
        if (t.latency_ms > 0) { /* measured already: train only */
            f->row.latency_ms = t.latency_ms;
            f->row.latency_spread_ms = t.latency_spread_ms;
        }
        rc = gn__nas_eval_inprocess(s, &f->row, &res, err);
        gn_trial_clear(&res);
        if (rc == 1) { /* interrupted by a stop: the row stays running for --resume */
            gn_trial_clear(&t);
            return 1;
        }
    }
    gn_trial_clear(&t);
    return rc ? -1 : mark_final(s, F, f, err);
}

/* Look at every row in flight: finished jobs (one query for all of them: with
 * hundreds of workers the coordinator must not ask row by row), then answerable
 * deferred rows. */
static int refresh(nas_state *s, flights *F, gn_error *err)
{
    int64_t lo = 0;
    for (int i = 0; i < F->n; i++)
        if (!F->v[i].final && !F->v[i].deferred && (lo == 0 || F->v[i].row.id < lo))
            lo = F->v[i].row.id;
    if (lo > 0) {
        gn_trial_filter f;
        gn_trial_filter_init(&f);
        f.after_id = lo - 1;
        gn_trial_list l = {0};
        if (gn_store_list_trials(s->c->store, &f, &l, err))
            return -1;
        int64_t j = 0; /* both in id order */
        for (int i = 0; i < F->n; i++) {
            flight *g = &F->v[i];
            if (g->final || g->deferred)
                continue;
            while (j < l.n && l.items[j].id < g->row.id)
                j++;
            if (j < l.n && l.items[j].id == g->row.id && gn__nas_is_final(&l.items[j]) && mark_final(s, F, g, err)) {
                gn_trial_list_free(&l);
                return -1;
            }
        }
        gn_trial_list_free(&l);
    }
    for (int i = 0; i < F->n; i++) {
        flight *g = &F->v[i];
        if (!g->final && g->deferred && resolve(s, F, g, err) < 0)
            return -1;
    }
    return 0;
}

static flight *push(flights *F, gn_error *err)
{
    if (F->n == F->cap) {
        int cap = F->cap ? 2 * F->cap : 16;
        flight *v = realloc(F->v, sizeof *v * cap);
        if (!v) {
            gn_error_set(err, "search: out of memory");
            return NULL;
        }
        F->v = v;
        F->cap = cap;
    }
    flight *f = &F->v[F->n++];
    memset(f, 0, sizeof *f);
    gn_trial_init(&f->row);
    return f;
}

/* Observe the oldest unobserved row (it is final). */
static int observe_next(nas_state *s, flights *F, gn_error *err)
{
    flight *f = &F->v[0];
    assert(F->n > 0 && f->final);
    int was = s->exhausted[f->tier];
    if (observe_row(s, f->tier, f->x, &f->row, err))
        return -1;
    if (f->row.status == GN_TRIAL_DONE && !is_repeat(&f->row) &&
        gn__ladder_result(s, f->tier, 0, f->row.id, gn_nas_score(&s->scorer, &f->row), err))
        return -1;
    F->unobserved[f->tier]--;
    F->observed++;
    if (!f->replayed) {
        char msg[1024];
        trial_message(s, f->tier, &f->row, f->x, msg, sizeof msg);
        emit(s, GN_NAS_EV_TRIAL, &f->row, total_trained(s), s->c->trials, "%s", msg);
        if (!was && s->exhausted[f->tier])
            emit(s, GN_NAS_EV_INFO, NULL, 0, 0, "tier %d exhausted: %d proposals in a row fell outside it", f->tier,
                 s->c->max_misses);
    }
    gn_trial_clear(&f->row);
    free(f->key);
    memmove(F->v, F->v + 1, sizeof *F->v * (size_t)(F->n - 1));
    F->n--;
    return 0;
}

/* The tier that proposes next: fewest observed trained plus unobserved proposals
 * among the tiers not exhausted (ties: lowest index); -1 none. */
static int choose_tier(const nas_state *s, const flights *F)
{
    int tier = -1;
    for (int i = 0; i < s->n_tiers; i++)
        if (!s->exhausted[i] && (tier < 0 || s->trained[i] + F->unobserved[i] < s->trained[tier] + F->unobserved[tier]))
            tier = i;
    return tier;
}

/* A new phase-2 row for proposal x of `tier`: answered at once, a job, or deferred. */
static int submit(nas_state *s, flights *F, int tier, const int *x, gn_error *err)
{
    const gn_nas_config *c = s->c;
    gn_store *st = c->store;
    flight *f = push(F, err);
    if (!f)
        return -1;
    f->tier = tier;
    memcpy(f->x, x, sizeof(int) * s->d);
    F->proposed++;
    F->unobserved[tier]++;
    gn_trial *t = &f->row;
    char opt[64];
    snprintf(opt, sizeof opt, "%s/t%d", gn_opt_name(s->opt[tier]), tier);
    t->seq = s->next_seq++;
    t->tier = tier;
    t->encoding = gn_space_encode_to_string(c->space, x);
    t->config = gn_space_decode_json(c->space, x, err);
    t->optimizer = strdup(opt);
    t->worker = strdup(s->host);
    f->key = gn__nas_key(s, x);
    if (!t->encoding || !t->config || !t->optimizer || !t->worker || !f->key)
        return gn_error_set(err, "search: out of memory");
    gn_arch *a = NULL;
    if (gn_space_decode(c->space, x, &a, err))
        return -1;
    t->params = a->params;
    t->macs = a->macs;
    gn_arch_free(a);
    if (s->have_profile) { /* predicted: known at once */
        double ms, spread;
        if (gn__nas_latency(s, x, &ms, &spread, NULL, err))
            return -1;
    }
    int busy = key_busy(F, f, f->key);
    gn_trial ans;
    gn_trial_init(&ans);
    int known = busy ? 1 : answer_known(s, tier, f->key, &ans);
    if (known == 0) { /* answered now */
        int rc = gn_store_insert_trial(st, t, err) || gn_store_finish_trial(st, t->id, &ans, err);
        gn_trial_clear(&ans);
        return rc ? -1 : mark_final(s, F, f, err);
    }
    if (busy) { /* its network is being evaluated by another job: wait for that */
        gn_trial_clear(&ans);
        f->deferred = 1;
        return gn_store_insert_trial(st, t, err);
    }
    /* a job: training when the latency is known (it is inside the tier), else measuring */
    t->max_attempts = c->max_attempts;
    if (ans.latency_ms > 0) {
        t->latency_ms = ans.latency_ms;
        t->latency_spread_ms = ans.latency_spread_ms;
        t->kind = strdup("train");
    } else {
        t->kind = strdup("measure");
        t->device_class = strdup(s->search_class);
    }
    gn_trial_clear(&ans);
    if (!t->kind || (!strcmp(t->kind, "measure") && !t->device_class))
        return gn_error_set(err, "search: out of memory");
    return gn_store_enqueue(st, t, err);
}

/* Observe rows until proposal number F->proposed may be made (rows 0 .. k-parallel
 * observed).  0 ready, 1 must wait (the next row to observe is not finished). */
static int schedule(nas_state *s, flights *F, gn_error *err)
{
    int64_t need = F->proposed - s->c->parallel + 1;
    while (F->observed < need) {
        if (F->n == 0 || !F->v[0].final)
            return 1;
        if (observe_next(s, F, err))
            return -1;
    }
    return 0;
}

/* Replay the stored phase-2 rows in proposal order: the schedule, the tier choice and
 * each tier's optimizer must produce exactly the stored rows again. */
static int replay_search(nas_state *s, flights *F, const gn_trial_list *rows, gn_error *err)
{
    const gn_nas_config *c = s->c;
    gn_store *st = c->store;
    int replayed = 0, redo = 0, x[GN_ENC_MAX_DIMS], y[GN_ENC_MAX_DIMS];
    for (int64_t i = 0; i < rows->n; i++) {
        const gn_trial *t = &rows->items[i];
        int tt;
        if (!t->optimizer || strcmp(t->optimizer, NAS_TIERING) == 0 || t->seq < 0) /* seq < 0: gn_nas_submit's */
            continue;
        if (parse_tier_tag(t->optimizer, &tt) || tt >= s->n_tiers)
            return gn_error_set(err, "%s: trial %lld belongs to no tier of the search (%s)", gn_store_where(st),
                                (long long)t->id, t->optimizer);
        int sc = schedule(s, F, err);
        if (sc < 0)
            return -1;
        for (int k = 0; k < F->n; k++)
            F->v[k].replayed = 1;
        int tier = choose_tier(s, F);
        if (sc == 1 || tier != tt)
            return gn_error_set(err,
                                "%s: resume: the search does not reproduce trial %lld (%s) (store made by another "
                                "gpunas version or settings)",
                                gn_store_where(st), (long long)t->id,
                                sc == 1 ? "proposed before an earlier trial was finished" : "another tier proposes");
        s->accept_tier = tier;
        if (gn_opt_propose(s->opt[tier], y, err) || gn_space_parse_string(c->space, t->encoding, x, err))
            return -1;
        if (memcmp(x, y, sizeof(int) * s->d) != 0)
            return gn_error_set(err,
                                "%s: resume: tier %d's optimizer does not reproduce trial %lld (store made by "
                                "another gpunas version or settings)",
                                gn_store_where(st), tier, (long long)t->id);
        flight *f = push(F, err);
        if (!f)
            return -1;
        f->tier = tier;
        memcpy(f->x, x, sizeof(int) * s->d);
        f->replayed = 1;
        F->proposed++;
        F->unobserved[tier]++;
        if (gn_trial_copy(&f->row, t) || !(f->key = gn__nas_key(s, x)))
            return gn_error_set(err, "search: out of memory");
        if (t->seq + 1 > s->next_seq)
            s->next_seq = t->seq + 1;
        if (gn__nas_is_final(t)) {
            f->final = 1;
            F->known_trained += uses_budget(t);
        } else {
            f->deferred = t->status == GN_TRIAL_RUNNING;
            f->replayed = 0;
            redo++;
        }
        replayed++;
    }
    for (int k = 0; k < F->n; k++)
        F->v[k].replayed = !(!F->v[k].final); /* unfinished rows are reported when they finish */
    if (replayed)
        emit(s, GN_NAS_EV_INFO, NULL, 0, 0, "replayed %d stored trials (%d trained); %d unfinished trial(s) to wait for",
             replayed, F->known_trained, redo);
    return 0;
}

/* Phase 2: propose while the schedule, the budget, the time and the tiers allow; wait
 * for the workers (or run jobs here) otherwise; observe in order. */
static int run_search(nas_state *s, flights *F, int *finished, gn_error *err)
{
    const gn_nas_config *c = s->c;
    int x[GN_ENC_MAX_DIMS], proposing = 1;
    double first_fail = 0;
    *finished = 0;
    if (F->known_trained < c->trials) {
        char start[96] = "";
        if (strcmp(c->optimizer, "random") != 0)
            snprintf(start, sizeof start, " (the first %d proposals per tier unguided)",
                     c->opt_init > 0 ? c->opt_init : 20);
        emit(s, GN_NAS_EV_INFO, NULL, 0, 0,
             "searching: %d more trained candidates, optimizer %s%s, %d tiers, %d proposal%s in flight",
             c->trials - F->known_trained, c->optimizer, start, s->n_tiers, c->parallel, c->parallel == 1 ? "" : "s");
    }
    for (;;) {
        if (refresh(s, F, err) || gn__ladder_refresh(s, err)) {
            if (wait_failed(s, &first_fail, err))
                return -1;
            continue;
        }
        first_fail = 0;
        if (stop_requested(s)) {
            emit(s, GN_NAS_EV_INFO, NULL, 0, 0, "stopped; --resume continues");
            return 0;
        }
        if (proposing && c->time_budget_s > 0 && gn__now_s() - s->t0 > c->time_budget_s) {
            emit(s, GN_NAS_EV_INFO, NULL, 0, 0, "time budget of %.0f s reached", c->time_budget_s);
            proposing = 0;
        }
        if (proposing && F->known_trained + nonfinal(F) < c->trials) {
            int sc = schedule(s, F, err);
            if (sc < 0)
                return -1;
            if (sc == 1) {
                if (gn__nas_pump(s, err) && wait_failed(s, &first_fail, err))
                    return -1;
                continue;
            }
            int tier = choose_tier(s, F);
            if (tier < 0) {
                emit(s, GN_NAS_EV_INFO, NULL, 0, 0, "every tier exhausted (%d proposals in a row outside the tier)",
                     c->max_misses);
                proposing = 0;
                continue;
            }
            s->accept_tier = tier;
            gn_error perr = {{0}};
            if (gn_opt_propose(s->opt[tier], x, &perr)) {
                s->exhausted[tier] = 1;
                emit(s, GN_NAS_EV_INFO, NULL, 0, 0, "tier %d: no more proposals (%s)", tier, perr.msg);
                continue;
            }
            if (submit(s, F, tier, x, err))
                return -1;
            continue;
        }
        if (nonfinal(F) == 0) { /* proposals spent (or, cannot happen, nothing runs though the budget allows) */
            while (F->n > 0) /* every row is finished: observe the rest, in order */
                if (observe_next(s, F, err))
                    return -1;
            int settled = gn__ladder_settle(s, err); /* the ladder's promotions in flight, its completion */
            if (settled < 0) {
                if (wait_failed(s, &first_fail, err))
                    return -1;
                continue;
            }
            if (settled == 0)
                break;
        }
        if (gn__nas_pump(s, err) && wait_failed(s, &first_fail, err))
            return -1;
    }
    *finished = 1;
    if (s->unstable)
        emit(s, GN_NAS_EV_INFO, NULL, 0, 0, "latency: %d measurements in all were unstable and repeated", s->unstable);
    if (s->ref_n)
        emit(s, GN_NAS_EV_INFO, NULL, 0, 0,
             "latency: %d measurements paired with the reference network, which took x%.2f .. x%.2f its baseline "
             "time meanwhile (the machine's speed moved; latencies are corrected to the baseline)",
             s->ref_n, 1 + s->ref_moved_lo, 1 + s->ref_moved_hi);
    return 0;
}

/* ------------------------------------------------------------------ the run */
/* Check the settings against the store, load the profile, fix the device class, set
 * up the backend, the local worker and (when it measures) the latency conditions
 * (nas_lat.c), and say how latency is measured. */
static int run_setup(nas_state *s, bool resume, gn_error *err)
{
    const gn_nas_config *c = s->c;
    gethostname(s->host, sizeof s->host - 1);
    if (c->parallel < 1 || c->parallel > 100000 || !(c->lease_s >= 1) || c->max_attempts < 1)
        return gn_error_set(err, "search: parallel %d (>= 1), lease %g s (>= 1) or max attempts %d (>= 1) out of range",
                            c->parallel, c->lease_s, c->max_attempts);
    if (c->fid_levels != 0 &&
        (c->fid_levels < 2 || c->fid_levels > GN_NAS_MAX_LEVELS || c->fid_eta < 2 ||
         c->fid_epochs[0] != c->proxy_epochs || c->fid_subset[0] != c->proxy_subset))
        return gn_error_set(err, "search: fidelity of %d levels (2..%d), eta %d (>= 2), level 0 %dx%d (must be the proxy "
                                 "budget %dx%d)", c->fid_levels, GN_NAS_MAX_LEVELS, c->fid_eta, c->fid_epochs[0],
                            c->fid_subset[0], c->proxy_epochs, c->proxy_subset);
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
        gn_backend_set_threads(s->be, c->threads, err) || gn__nas_device_init(s, err))
        return -1;
    char *stored = NULL;
    const char *want = c->device_class ? c->device_class : s->my_class;
    if (gn_store_put_meta_once(c->store, "nas.device_class", want, &stored, err) < 0)
        return -1;
    snprintf(s->search_class, sizeof s->search_class, "%s", stored);
    free(stored);
    if (c->device_class && strcmp(c->device_class, s->search_class) != 0)
        return gn_error_set(err, "%s: the search measures on device class '%s', not '%s'", gn_store_where(c->store),
                            s->search_class, c->device_class);
    if (gn__nas_local_worker_init(s, err))
        return -1;
    char *done = NULL;
    int g = gn_store_get_meta(c->store, "nas.done", &done, err);
    free(done);
    if (g < 0 || (g == 0 && gn_store_put_meta(c->store, "nas.done", "0", err)))
        return -1;
    if (s->local_kinds & GN_JOB_MEASURE) {
        if (gn__nas_lat_ready(s, err))
            return -1;
        if (s->lat_note[0])
            emit(s, GN_NAS_EV_INFO, NULL, 0, 0, "%s", s->lat_note);
        emit(s, GN_NAS_EV_INFO, NULL, 0, 0,
             "latency: measured at %d thread%s, %s; reference network baseline %.4f ms%s", s->lat_threads,
             s->lat_threads == 1 ? "" : "s", c->lat_pin ? "pinned one CPU per thread" : "unpinned", s->ref_base_ms,
             c->lat_reference ? ", paired with every measurement (latency = ratio to it x baseline)"
                              : " (not paired)");
    } else if (!s->have_profile) {
        emit(s, GN_NAS_EV_INFO, NULL, 0, 0, "latency: measured by workers of device class '%s'%s", s->search_class,
             c->local_worker ? " (not this machine's: it only trains)" : "");
    }
    if (c->local_worker == 0 || c->parallel > 1)
        emit(s, GN_NAS_EV_INFO, NULL, 0, 0, "jobs: %s; %d proposal%s in flight, lease %.0f s, %d attempts",
             c->local_worker ? "run here and by any `gpunas worker` of this store" : "run by `gpunas worker`s only",
             c->parallel, c->parallel == 1 ? "" : "s", c->lease_s, c->max_attempts);
    return 0;
}

/* Everything stored so far: latencies, accuracies and failures into the caches,
 * finished tiering rows into the phase-1 data, unfinished ones into `pending` (a
 * tiering row killed while measured in-process, by an earlier version, is finished
 * now).  *have_p1: the tiering rows. */
static int replay_stored(nas_state *s, const gn_trial_list *rows, int *have_p1, int64_t *pending, int *n_pending,
                         gn_error *err)
{
    const gn_nas_config *c = s->c;
    int x[GN_ENC_MAX_DIMS];
    *have_p1 = *n_pending = 0;
    for (int64_t i = 0; i < rows->n; i++) {
        gn_trial *t = &rows->items[i];
        bool tiering = t->optimizer && strcmp(t->optimizer, NAS_TIERING) == 0;
        if (gn_space_parse_string(c->space, t->encoding, x, err))
            return -1;
        if (gn__nas_is_final(t))
            learn(s, x, t);
        if (!tiering)
            continue;
        (*have_p1)++;
        if (t->status == GN_TRIAL_RUNNING) {
            gn_trial res;
            if (gn__nas_eval_inprocess(s, t, &res, err)) {
                gn_trial_clear(&res);
                return -1;
            }
            learn(s, x, &res);
            gn__nas_p1_add(s, x, res.latency_ms);
            gn_trial_clear(&res);
        } else if (!gn__nas_is_final(t)) {
            pending[(*n_pending)++] = t->id;
        } else if (t->status == GN_TRIAL_PRUNED) {
            gn__nas_p1_add(s, x, t->latency_ms);
        }
    }
    return 0;
}

/* Phase 1 (what is missing of it), the tier edges and the latency estimate, and one
 * optimizer per tier.  1: stopped during tiering. */
static int run_tiering(nas_state *s, int have_p1, int64_t *pending, int n_pending, gn_error *err)
{
    const gn_nas_config *c = s->c;
    gn_store *st = c->store;
    if (have_p1 < c->prune_samples || n_pending) {
        emit(s, GN_NAS_EV_INFO, NULL, 0, 0, "tiering: measuring %d sampled networks of space '%s' (%s)",
             c->prune_samples - have_p1 + n_pending, gn_space_name(c->space),
             s->have_profile ? "predicted from the device profile" : "batch-1 latency on the target device");
        int p = phase1(s, have_p1, pending, n_pending, err);
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
        if (c->opt_init > 0) { /* else (a store made before it): the optimizers' defaults */
            o.mcts_ninits = o.evo_population = o.nsga_population = c->opt_init;
            o.evo_sample = c->opt_init / 2 < 2 ? 2 : c->opt_init / 2 > 5 ? 5 : c->opt_init / 2;
        }
        o.accept = accept_cb;
        o.accept_ctx = s;
        if (c->canonical) {
            o.canon = canon_cb;
            o.canon_ctx = (void *)c->space;
        }
        if (gn_opt_create(c->optimizer, gn_space_desc(c->space), &o, &s->opt[i], err))
            return -1;
    }
    return 0;
}

int gn_nas_auto_opt_init(int trials, int n_tiers)
{
    int per_tier = n_tiers > 0 ? (trials + n_tiers - 1) / n_tiers : trials;
    int k = (2 * per_tier + 2) / 5; /* round(2/5 * per_tier) */
    return k < 4 ? 4 : k > 20 ? 20 : k;
}

static void state_free(nas_state *s)
{
    for (int i = 0; i < GN_NAS_MAX_TIERS; i++)
        gn_opt_free(s->opt[i]);
    gn__strmap_free(s->lat_cache);
    gn__strmap_free(s->acc_cache);
    gn__strmap_free(s->fail_cache);
    gn__ladder_close(s);
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
    /* a resumed search keeps its proposals in flight: the replay depends on them */
    gn_nas_config cc = *c;
    int stored_parallel = c->parallel, stored_canonical = c->canonical, stored_score = c->score;
    int stored_opt_init = 0; /* 0: no search in the store yet */
    double stored_weight = c->naswot_weight;
    char *stored_fid = NULL;
    if (c->opt_init < 0 || c->opt_init == 1 || c->opt_init > 100000)
        return gn_error_set(err, "search: opt_init %d: 0 (from the budget) or 2..100000", c->opt_init);
    if (resume && gn__nas_stored_schedule(c->store, &stored_parallel, &stored_canonical, &stored_score,
                                          &stored_weight, &stored_opt_init, &stored_fid, err))
        return -1;
    /* the unguided start ("Unguided start" in gpunas/nas.h): named, or the store's
     * (-1: made before it was a setting), or derived from this budget for a new search;
     * a named one that differs from the store's is refused by the settings check */
    if (c->opt_init == 0)
        cc.opt_init = stored_opt_init != 0 ? stored_opt_init
                                           : gn_nas_auto_opt_init(c->trials, c->n_tiers > 0 ? c->n_tiers : c->auto_tiers);
    cc.canonical = stored_canonical; /* a store made before canonical encodings resumes without */
    /* a resume that names no score keeps the store's (a store made before the proxy
     * score: accuracy); one that names another is refused */
    if (resume && c->score_named && stored_score != c->score) {
        free(stored_fid);
        return gn_error_set(err, "%s: --resume with different settings: score is \"%s\" here but \"%s\" in the store",
                            gn_store_where(c->store), gn_nas_score_name(c->score), gn_nas_score_name(stored_score));
    }
    cc.score = stored_score;
    if (!c->score_named)
        cc.naswot_weight = stored_weight; /* a named weight that differs: the settings check */
    /* a resume that does not name the fidelity continues the stored one (one that names
     * another is refused by the settings check) */
    if (stored_fid && c->fid_levels == 0 && gn_nas_parse_fidelity(stored_fid, &cc, err)) {
        free(stored_fid);
        return -1;
    }
    free(stored_fid);
    if (resume && stored_parallel != c->parallel) {
        cc.parallel = stored_parallel;
        if (cb && cb->event) {
            char msg[160];
            snprintf(msg, sizeof msg, "resuming with %d proposal%s in flight, as the search was made (not %d)",
                     stored_parallel, stored_parallel == 1 ? "" : "s", c->parallel);
            gn_nas_event e = {.kind = GN_NAS_EV_INFO, .message = msg};
            cb->event(cb->user, &e);
        }
    }
    c = &cc;
    s->c = c;
    s->cb = cb;
    s->t0 = gn__now_s();
    s->d = gn_space_desc(c->space)->ndims;
    gn_lat_profile_init(&s->profile);
    gn_trial_list rows = {0};
    flights F = {0};
    int64_t *pending = NULL;
    gn_trial_filter f;
    gn_trial_filter_init(&f);
    int rc = -1, have_p1, n_pending = 0, stopped = 0, finished = 0;
    if (run_setup(s, resume, err) || gn_store_list_trials(c->store, &f, &rows, err))
        goto out;
    pending = calloc((size_t)rows.n + (size_t)c->prune_samples + 1, sizeof *pending);
    if (!pending) {
        gn_error_set(err, "search: out of memory");
        goto out;
    }
    if (replay_stored(s, &rows, &have_p1, pending, &n_pending, err))
        goto out;
    if (resume && rows.n)
        emit(s, GN_NAS_EV_INFO, NULL, 0, 0, "resuming: %lld trials in %s", (long long)rows.n,
             gn_store_where(c->store));
    if ((stopped = run_tiering(s, have_p1, pending, n_pending, err)) < 0)
        goto out;
    if (stopped) {
        emit(s, GN_NAS_EV_INFO, NULL, 0, 0, "stopped during tiering; --resume continues");
        rc = 0;
        goto out;
    }
    if (gn__nas_score_setup(s, err) || gn__ladder_open(s, err) || replay_search(s, &F, &rows, err))
        goto out;
    gn_trial_list_free(&rows);
    if (run_search(s, &F, &finished, err))
        goto out;
    if (finished && gn_store_put_meta(c->store, "nas.done", "1", err))
        goto out;
    rc = 0;
out:
    gn_trial_list_free(&rows);
    flights_free(&F);
    free(pending);
    state_free(s);
    return rc;
}
