/*
 * nas_queue.c — the search loop's side of the work queue (design in gpunas/nas.h,
 * "Many machines"): the in-process worker that runs jobs while the coordinator waits
 * (the one-machine default: the same code path as a `gpunas worker`), the wait itself,
 * and the in-process evaluation of 'running' rows.
 *
 * The in-process worker's id is "HOST:search": one search per store, so a lease held
 * under that id by anyone but this process belongs to a killed predecessor; it is
 * expired at start (gn_store_expire_leases) so a resumed search takes the job back
 * at once instead of waiting out the lease.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nas/nas_internal.h"
#include "util/clock.h"

void gn__nas_event(const gn_nas_callbacks *cb, gn_nas_event_kind k, const gn_trial *t, int done, int total,
                   const char *fmt, ...)
{
    if (!cb || !cb->event)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    gn_nas_event e = {.kind = k, .message = msg, .trial = t, .done = done, .total = total};
    cb->event(cb->user, &e);
}

int gn__nas_local_worker_init(nas_state *s, gn_error *err)
{
    const gn_nas_config *c = s->c;
    snprintf(s->worker_id, sizeof s->worker_id, "%s:search", s->host);
    s->local_kinds = 0;
    if (!c->local_worker)
        return 0;
    s->local_kinds = GN_JOB_TRAIN;
    if (!s->have_profile && strcmp(s->my_class, s->search_class) == 0)
        s->local_kinds |= GN_JOB_MEASURE;
    int64_t n = 0;
    gn_worker w = {.id = s->worker_id, .host = s->host, .pid = getpid(), .device_class = s->my_class};
    if (gn_store_expire_leases(c->store, s->worker_id, &n, err) || gn_store_register_worker(c->store, &w, err))
        return -1;
    return 0;
}

int gn__nas_claim(gn_store *st, const gn_claim_req *rq, gn_trial *job, gn_lease *lease, gn_error *err)
{
    if (rq->kinds == (GN_JOB_MEASURE | GN_JOB_TRAIN)) {
        gn_claim_req m = *rq;
        m.kinds = GN_JOB_MEASURE;
        int g = gn_store_claim(st, &m, job, lease, err);
        if (g != 1)
            return g;
    }
    return gn_store_claim(st, rq, job, lease, err);
}

static void nap(double sec)
{
    struct timespec ts = {(time_t)sec, (long)((sec - (time_t)sec) * 1e9)};
    nanosleep(&ts, NULL);
}

static int stop_cb(void *user)
{
    nas_state *s = user;
    return s->cb && s->cb->should_stop && s->cb->should_stop(s->cb->user);
}

/* 0 ran a job, 1 nothing claimable, -1 error */
static int local_step(nas_state *s, gn_error *err)
{
    const gn_nas_config *c = s->c;
    gn_claim_req rq = {.worker = s->worker_id,
                       .device_class = (s->local_kinds & GN_JOB_MEASURE) ? s->my_class : NULL,
                       .kinds = s->local_kinds,
                       .lease_s = c->lease_s};
    gn_trial job, res;
    gn_lease lease;
    int g = gn__nas_claim(c->store, &rq, &job, &lease, err);
    if (g)
        return g;
    nas_job_ctx jc = {.store = c->store, .lease = &lease, .lease_s = c->lease_s, .should_stop = stop_cb, .user = s};
    int r = gn__nas_run_job(s, &job, &jc, &res, err);
    int rc = 0;
    if (r < 0) {
        gn_error keep = *err, e2;
        gn_store_release(c->store, &lease, &e2);
        *err = keep;
        rc = -1;
    } else if (!(r == 1 && jc.lost)) {
        int cr = r == 1 ? gn_store_release(c->store, &lease, err) : gn_store_complete(c->store, &lease, &res, err);
        if (cr < 0)
            rc = -1; /* the lease expires and the job is re-queued; the caller stops */
    }
    gn_trial_clear(&res);
    gn_trial_clear(&job);
    return rc;
}

int gn__nas_pump(nas_state *s, gn_error *err)
{
    const gn_nas_config *c = s->c;
    int r = 1;
    if (s->local_kinds && !stop_cb(s)) {
        if ((r = local_step(s, err)) < 0)
            return -1;
    }
    double now = gn__now_s();
    if (now - s->last_reap > 5) { /* claims reap too; this is for a search without local jobs */
        s->last_reap = now;
        if (gn_store_reap(c->store, NULL, NULL, err))
            return -1;
    }
    if (r == 1)
        nap(c->poll_s > 0 ? c->poll_s : 0.2);
    return 0;
}

int gn__nas_eval_inprocess(nas_state *s, const gn_trial *row, gn_trial *res, gn_error *err)
{
    const gn_nas_config *c = s->c;
    gn_trial job;
    if (gn_trial_copy(&job, row))
        return gn_error_set(err, "search: out of memory");
    free(job.kind);
    job.kind = NULL; /* both stages here */
    nas_job_ctx jc = {.store = c->store, .should_stop = stop_cb, .user = s};
    int r = gn__nas_run_job(s, &job, &jc, res, err);
    gn_trial_clear(&job);
    if (r)
        return r;
    if (res->status == GN_TRIAL_QUEUED) /* cannot happen without a kind */
        return gn_error_set(err, "search: trial %lld: in-process evaluation left it queued", (long long)row->id);
    if (!res->worker)
        res->worker = strdup(s->host);
    return gn_store_finish_trial(c->store, row->id, res, err);
}
