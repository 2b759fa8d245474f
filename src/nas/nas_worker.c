/*
 * nas_worker.c — gn_nas_worker_run, `gpunas worker`: claim a search's jobs from its
 * store, run them (nas_job.c), commit each result with the lease token, repeat.
 *
 *   Start.  The worker waits for the search's settings (meta "nas.settings": a worker
 *   may start before the coordinator), and builds the search's configuration from
 *   them: the space (built in, or the recorded file, or --space here), the data set
 *   (its kind; the location is this machine's: --data), the proxy recipe, the latency
 *   conditions.  It takes "measure" jobs only when its device class equals the
 *   search's (meta "nas.device_class") and the search measures (no profile); then the
 *   latency conditions are fixed before its first claim.  It registers itself and
 *   expires the leases of a killed predecessor with the same id.
 *
 *   Loop.  Claim (the store reaps expired leases first); nothing claimable: sleep
 *   poll_s, beat the registry row now and then, end when the search is finished (meta
 *   "nas.done" = 1 and nothing left for us) or after idle_exit_s.  Commit:
 *     0            the result is in, exactly once;
 *     LEASE_LOST   the job was given to another worker meanwhile (this one was presumed
 *                  dead): the result is dropped, the retry's counts;
 *     error        the store is unreachable (server restarting): retried while the lease
 *                  may last (lease + 5 s by this process's clock) — the commit is
 *                  idempotent under the token; then the result is dropped and the worker
 *                  goes on claiming (claims retry the store for store_retry_s).
 *   Stop (SIGTERM through cb->should_stop): a measurement in hand is finished and
 *   committed; a training is interrupted and the job released (not counted as an
 *   attempt).  Store errors elsewhere are retried for store_retry_s, then the worker
 *   fails with the last error.
 */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gpunas/backend.h"
#include "gpunas/data.h"
#include "nas/nas_internal.h"
#include "util/clock.h"
#include "util/strmap.h"

void gn_nas_worker_defaults(gn_nas_worker_config *w)
{
    memset(w, 0, sizeof *w);
    w->lease_s = 60;
    w->poll_s = 1;
    w->store_retry_s = 300;
}

#define say(cb, ...) gn__nas_event(cb, GN_NAS_EV_INFO, NULL, 0, 0, __VA_ARGS__)

static int stopping(const gn_nas_callbacks *cb)
{
    return cb && cb->should_stop && cb->should_stop(cb->user);
}

static void nap(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* Store calls that may fail while the server restarts: retried until retry_s has
 * passed since the first failure of the run of failures. */
typedef struct {
    double first_fail; /* NaN: the last call succeeded */
    double retry_s;
} retry_state;

/* 0: go on (try again); -1: give up (err keeps the last error) */
static int failed_call(retry_state *r, const gn_nas_callbacks *cb, const gn_error *e)
{
    double now = gn__now_s();
    if (isnan(r->first_fail))
        r->first_fail = now;
    if (now - r->first_fail > r->retry_s)
        return -1;
    say(cb, "store: %s (retrying)", e->msg);
    nap(1.0 + fmin(4.0, (now - r->first_fail) / 4));
    return 0;
}

void gn__nas_search_free(worker_search *ws)
{
    json_decref(ws->settings_json);
    gn_space_free(ws->space);
    gn_dataset_free(ws->train);
}

int gn__nas_load_search(const gn_nas_worker_config *w, const gn_nas_callbacks *cb, worker_search *ws,
                       gn_error *err)
{
    char *text = NULL;
    double t0 = gn__now_s();
    int said = 0;
    retry_state rs = {NAN, w->store_retry_s};
    for (;;) {
        int g = gn_store_get_meta(w->store, "nas.settings", &text, err);
        if (g == 0)
            break;
        if (g < 0) {
            if (failed_call(&rs, cb, err))
                return -1;
            continue;
        }
        rs.first_fail = NAN;
        if (!said++)
            say(cb, "waiting for a search to start in %s", gn_store_where(w->store));
        if (stopping(cb) || (w->idle_exit_s > 0 && gn__now_s() - t0 > w->idle_exit_s))
            return 1;
        nap(w->poll_s);
    }
    const char *space_src = NULL, *dataset = NULL;
    int rc = gn__nas_settings_parse(text, &ws->c, &space_src, &dataset, &ws->settings_json, err);
    free(text);
    if (rc) {
        gn_error_set(err, "%s: %s", gn_store_where(w->store), err->msg);
        return -1;
    }
    if (w->space_path)
        rc = gn_space_load(w->space_path, &ws->space, err);
    else if (strncmp(space_src, "builtin:", 8) == 0)
        rc = gn_space_builtin(space_src + 8, &ws->space, err);
    else
        rc = gn_space_load(space_src, &ws->space, err);
    if (rc)
        return -1;
    /* the same space: the encoding's cardinalities must match the recorded ones */
    const gn_enc_desc *d = gn_space_desc(ws->space);
    char card[4 * GN_ENC_MAX_DIMS + 8] = "";
    for (int i = 0; i < d->ndims; i++) {
        char t[16];
        snprintf(t, sizeof t, "%s%d", i ? "," : "", d->card[i]);
        strcat(card, t);
    }
    json_t *rec = json_object_get(ws->settings_json, "space_card");
    if (!json_is_string(rec) || strcmp(json_string_value(rec), card) != 0)
        return gn_error_set(err, "%s: space '%s' here is not the search's (dimensions %s, the search's %s)",
                            gn_store_where(w->store), gn_space_name(ws->space), card,
                            json_is_string(rec) ? json_string_value(rec) : "?");
    if (gn_dataset_load(dataset, w->data_dir, "train", 0, &ws->train, err))
        return -1;
    ws->c.space = ws->space;
    ws->c.train_set = ws->train;
    ws->c.dataset_name = dataset;
    ws->c.space_source = space_src;
    ws->c.store = w->store;
    ws->c.threads = w->threads;
    return 0;
}

/* Commit (complete, or release when stopped), retrying a failing store while the lease
 * may still be current.  0 committed, 1 lease lost, -1 gave up. */
static int commit(gn_store *st, gn_lease *lease, double lease_s, const gn_trial *res, int release,
                  const gn_nas_callbacks *cb, gn_error *err)
{
    /* the lease ends at most lease_s after the last heartbeat; the server's expiry is on
     * its clock, so this process bounds its retries by its own (monotonic) one */
    double give_up = gn__now_s() + lease_s + 5;
    for (;;) {
        int rc = release ? gn_store_release(st, lease, err) : gn_store_complete(st, lease, res, err);
        if (rc == 0 || rc == GN_STORE_LEASE_LOST)
            return rc;
        if (gn__now_s() > give_up)
            return -1;
        say(cb, "store: %s (retrying)", err->msg);
        nap(1.0);
    }
}

int gn_nas_worker_run(const gn_nas_worker_config *w, const gn_nas_callbacks *cb, gn_nas_worker_stats *stats,
                      gn_error *err)
{
    gn_nas_worker_stats dummy;
    if (!stats)
        stats = &dummy;
    memset(stats, 0, sizeof *stats);
    if (!w->store)
        return gn_error_set(err, "worker: no store");
    if (!(w->lease_s >= 1) || !(w->poll_s > 0))
        return gn_error_set(err, "worker: lease %g s (>= 1) or poll %g s (> 0) out of range", w->lease_s, w->poll_s);
    worker_search ws;
    memset(&ws, 0, sizeof ws);
    nas_state S, *s = &S;
    memset(s, 0, sizeof S);
    gn_lat_profile_init(&s->profile);
    int rc = gn__nas_load_search(w, cb, &ws, err);
    if (rc) {
        gn__nas_search_free(&ws);
        return rc < 0 ? -1 : 0;
    }
    rc = -1;
    s->c = &ws.c;
    s->cb = cb;
    s->d = gn_space_desc(ws.space)->ndims;
    gethostname(s->host, sizeof s->host - 1);
    char id[192];
    if (w->id)
        snprintf(id, sizeof id, "%.180s", w->id);
    else
        snprintf(id, sizeof id, "%.64s:%ld", s->host, (long)getpid());
    char *search_class = NULL;
    unsigned kinds = w->kinds ? w->kinds : GN_JOB_MEASURE | GN_JOB_TRAIN;
    if (gn_backend_create(ws.c.backend ? ws.c.backend : "dnnl", &s->be, err) ||
        gn_backend_set_threads(s->be, ws.c.threads, err) || gn__nas_device_init(s, err))
        goto out;
    if (w->device_class)
        snprintf(s->my_class, sizeof s->my_class, "%s", w->device_class);
    if (ws.c.profile_path) {
        kinds &= ~GN_JOB_MEASURE; /* the coordinator predicts: no measure jobs exist */
    } else if (kinds & GN_JOB_MEASURE) {
        int g = gn_store_get_meta(w->store, "nas.device_class", &search_class, err);
        if (g < 0)
            goto out;
        if (g == 1 || strcmp(search_class, s->my_class) != 0) {
            say(cb, "worker %s: device class '%s'; the search measures on '%s': training jobs only", id, s->my_class,
                search_class ? search_class : "(not fixed yet)");
            kinds &= ~GN_JOB_MEASURE;
        } else if (gn__nas_lat_ready(s, err)) {
            goto out;
        } else if (s->lat_note[0]) {
            say(cb, "%s", s->lat_note);
        }
    }
    if (!kinds) {
        gn_error_set(err, "worker %s: no job kind this worker may take", id);
        goto out;
    }
    gn_worker reg = {.id = id, .host = s->host, .pid = getpid(), .device_class = s->my_class};
    if (gn_store_register_worker(w->store, &reg, err))
        goto out;
    if (w->id) { /* a fixed id: what it holds was held by a predecessor, now dead */
        int64_t n = 0;
        if (gn_store_expire_leases(w->store, id, &n, err))
            goto out;
        if (n)
            say(cb, "worker %s: took back %lld job%s of a predecessor with this id", id, (long long)n,
                n == 1 ? "" : "s");
    }
    say(cb, "worker %s: %s jobs of %s, lease %.0f s", id,
        kinds == (GN_JOB_MEASURE | GN_JOB_TRAIN) ? "measure and train" : kinds & GN_JOB_MEASURE ? "measure" : "train",
        gn_store_where(w->store), w->lease_s);
    gn_claim_req rq = {.worker = id, .device_class = (kinds & GN_JOB_MEASURE) ? s->my_class : NULL, .kinds = kinds,
                       .lease_s = w->lease_s};
    retry_state rs = {NAN, w->store_retry_s};
    double idle_since = gn__now_s(), last_beat = 0;
    for (;;) {
        if (stopping(cb)) {
            say(cb, "worker %s: stopping", id);
            break;
        }
        if (w->max_jobs > 0 && stats->jobs >= w->max_jobs)
            break;
        gn_trial job;
        gn_lease lease;
        int g = gn__nas_claim(w->store, &rq, &job, &lease, err);
        if (g < 0) {
            if (failed_call(&rs, cb, err))
                goto out;
            continue;
        }
        rs.first_fail = NAN;
        if (g == 1) {
            double now = gn__now_s();
            if (now - last_beat > 10) {
                gn_error e;
                if (gn_store_worker_beat(w->store, id, &e) == 1)
                    gn_store_register_worker(w->store, &reg, &e);
                last_beat = now;
                char *done = NULL;
                int d = gn_store_get_meta(w->store, "nas.done", &done, &e);
                int finished = d == 0 && strcmp(done, "1") == 0;
                free(done);
                if (finished) {
                    say(cb, "worker %s: the search is finished", id);
                    break;
                }
            }
            if (w->idle_exit_s > 0 && now - idle_since > w->idle_exit_s) {
                say(cb, "worker %s: nothing to do for %.0f s", id, w->idle_exit_s);
                break;
            }
            nap(w->poll_s);
            continue;
        }
        nas_job_ctx jc = {.store = w->store, .lease = &lease, .lease_s = w->lease_s, .should_stop = cb ? cb->should_stop : NULL,
                          .user = cb ? cb->user : NULL};
        gn_trial res;
        const char *kind = job.kind ? job.kind : "?";
        int r = gn__nas_run_job(s, &job, &jc, &res, err);
        if (r < 0) { /* this worker cannot run it: give it back and stop */
            gn_error e2;
            gn_error keep = *err;
            commit(w->store, &lease, w->lease_s, NULL, 1, cb, &e2);
            *err = keep;
            gn_trial_clear(&job);
            goto out;
        }
        int c;
        if (r == 1 && jc.lost) {
            c = GN_STORE_LEASE_LOST;
        } else {
            c = commit(w->store, &lease, w->lease_s, &res, r == 1, cb, err);
        }
        stats->jobs++;
        if (c < 0) { /* the store stayed unreachable past the lease: the job will be re-run */
            stats->lost++;
            say(cb, "worker %s: trial %lld (%s): result dropped, the store stayed unreachable (%s); its lease "
                "expires and the job is run again", id, (long long)job.id, kind, err->msg);
        } else if (c == GN_STORE_LEASE_LOST) {
            stats->lost++;
            say(cb, "worker %s: trial %lld (%s): lease lost, result dropped (the job was given to another worker)", id,
                (long long)job.id, kind);
        } else if (r == 1) {
            stats->released++;
            say(cb, "worker %s: trial %lld (%s): interrupted, given back to the queue", id, (long long)job.id, kind);
        } else if (res.status == GN_TRIAL_FAILED) {
            stats->failed++;
            say(cb, "worker %s: trial %lld (%s) failed: %s", id, (long long)job.id, kind, res.error ? res.error : "?");
        } else if (strcmp(kind, "measure") == 0) {
            stats->measured++;
            say(cb, "worker %s: trial %lld measured %.4f ms%s", id, (long long)job.id, res.latency_ms,
                res.status == GN_TRIAL_QUEUED ? ", inside its tier: queued for training" : "");
        } else {
            stats->trained++;
            say(cb, "worker %s: trial %lld trained: val %.2f%% in %.1f s", id, (long long)job.id, 100 * res.val_acc,
                res.train_s);
        }
        gn_trial_clear(&res);
        gn_trial_clear(&job);
        idle_since = gn__now_s();
    }
    rc = 0;
out:
    free(search_class);
    gn__nas_state_free(s);
    gn__nas_search_free(&ws);
    return rc;
}

void gn__nas_state_free(nas_state *s)
{
    for (int i = 0; i < GN_NAS_MAX_TIERS; i++)
        gn_opt_free(s->opt[i]);
    gn__strmap_free(s->lat_cache);
    gn__strmap_free(s->acc_cache);
    gn__strmap_free(s->fail_cache);
    gn_lat_profile_free(&s->profile);
    gn__nas_lat_free(s);
    gn_backend_destroy(s->be);
}
