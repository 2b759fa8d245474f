/*
 * nas_job.c — one job of the search's work queue, run by whoever holds it: a
 * `gpunas worker` (nas_worker.c) or the search loop itself while it waits
 * (nas_run.c).  The stages are described in gpunas/nas.h ("Many machines").
 *
 *   measure  batch-`lat_batch` latency under the search's conditions (nas_lat.c),
 *            fixed lazily by the first measurement of this process and shared through
 *            the store's meta.  A tiering sample (tier -1) is committed 'pruned'; a
 *            proposal for tier i is committed 'pruned' (with the tier it does fall in)
 *            unless it lies inside tier i, margin included — then the job goes on to
 *            its next stage, a queued "train" job, with the latency committed.
 *   train    proxy training (nas_eval.c) at the job's fidelity level (0, or a
 *            promotion of successive halving), 'done' with the validation accuracy
 *            (and, when the search scores "acc+naswot", the network's NASWOT,
 *            computed first: nas_score.c), or
 *            'failed' with the reason (a network that cannot be built or trained is
 *            the job's failure, not the worker's).
 *   (none)   an in-process 'running' row (stores of earlier versions, or a proposal
 *            that waited for another job of the same network and still needs work):
 *            both stages here.
 *
 *   Heartbeats ride on the training's per-step callback: every lease/3 seconds the
 *   lease is extended on the server's clock; a lost lease (this worker was presumed
 *   dead and the job re-queued) stops the training at once, and a stop request
 *   (SIGTERM) interrupts it so the caller can give the job back.  Measurements are
 *   short (seconds) and are not interrupted.
 *
 *   The device: a measure result carries `fingerprint` (this machine's gn_lat_device
 *   id, the measuring threads and pinning, the host); the search's class is in meta
 *   "nas.device_class", and a process whose own class differs never measures.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpunas/latency.h"
#include "gpunas/train.h"
#include "nas/nas_internal.h"
#include "util/clock.h"

int gn__nas_device_init(nas_state *s, gn_error *err)
{
    gn_lat_device d;
    if (gn_lat_device_detect(s->c->backend ? s->c->backend : "dnnl", 0, &d, err))
        return -1;
    gn_lat_device_class(&d, s->my_class, sizeof s->my_class);
    if (!s->host[0])
        gethostname(s->host, sizeof s->host - 1);
    return 0;
}

int gn__nas_lat_ready(nas_state *s, gn_error *err)
{
    if (s->lat_ready)
        return 0;
    if (!s->have_profile && gn__nas_lat_setup(s, s->c->store, err))
        return -1;
    gn_lat_device d;
    if (gn_lat_device_detect(s->c->backend ? s->c->backend : "dnnl", s->lat_threads, &d, err))
        return -1;
    d.pinned = s->c->lat_pin ? s->lat_threads : 0;
    gn_lat_device_make_id(&d);
    snprintf(s->fingerprint, sizeof s->fingerprint, "%s, %s, host %s", d.id,
             s->c->lat_pin ? "pinned" : "unpinned", s->host);
    s->lat_ready = 1;
    return 0;
}

int gn__nas_load_tiers(nas_state *s, gn_error *err)
{
    if (s->tiers_loaded || s->n_tiers > 0)
        return 0;
    char *text = NULL;
    int g = gn_store_get_meta(s->c->store, "nas.tiers", &text, err);
    if (g < 0)
        return -1;
    if (g == 1)
        return gn_error_set(err, "%s: a tier's job but no tiers in the store (meta nas.tiers)",
                            gn_store_where(s->c->store));
    int auto_n;
    int rc = gn_nas_parse_tiers(text, s->edges, &s->n_tiers, &auto_n, err);
    free(text);
    if (rc)
        return -1;
    if (s->n_tiers < 1)
        return gn_error_set(err, "%s: meta nas.tiers holds no edges", gn_store_where(s->c->store));
    s->tiers_loaded = 1;
    return 0;
}

int gn__nas_inside(const nas_state *s, double ms, int tier)
{
    return gn_nas_tier_inside(s->edges, s->n_tiers, ms, s->c->tier_margin) == tier;
}

static int on_progress(void *user, const gn_train_progress *p)
{
    (void)p;
    nas_job_ctx *jc = user;
    if (jc->should_stop && jc->should_stop(jc->user)) {
        jc->stopped = 1;
        return 1;
    }
    double now = gn__now_s();
    if (jc->lease && now - jc->last_beat > jc->lease_s / 3) {
        gn_error e;
        jc->last_beat = now; /* a failed beat (the server restarting) is tried again a third later */
        if (gn_store_heartbeat(jc->store, jc->lease, jc->lease_s, &e) == GN_STORE_LEASE_LOST) {
            jc->lost = 1;
            return 1;
        }
    }
    return 0;
}

/* measure the job's network: latency fields and the device into res */
static int measure_job(nas_state *s, const int *x, gn_trial *res, gn_error *err)
{
    if (gn__nas_lat_ready(s, err))
        return -1;
    double ms, spread;
    char *info = NULL;
    if (gn__nas_latency(s, x, &ms, &spread, &info, err))
        return -1;
    res->latency_ms = ms;
    res->latency_spread_ms = spread;
    res->latency_info = info;
    if (!(res->device = strdup(s->have_profile ? "profile" : s->fingerprint)))
        return gn_error_set(err, "search: out of memory");
    return 0;
}

static int train_job(nas_state *s, const gn_arch *a, int level, nas_job_ctx *jc, gn_trial *res)
{
    gn_train_callbacks cb = {.user = jc, .progress = on_progress};
    double acc = NAN, train_s = NAN;
    gn_error terr = {{0}};
    jc->last_beat = gn__now_s();
    if (s->c->score == GN_NAS_SCORE_NASWOT) { /* the score's zero-cost term (nas_score.c) */
        double nw;
        if (gn__nas_naswot(s->c, a, &nw, &terr)) {
            res->status = GN_TRIAL_FAILED;
            res->error = strdup(terr.msg);
            return 0;
        }
        res->naswot = nw;
    }
    if (gn__nas_proxy_train(s, a, level, &cb, &acc, &train_s, &terr)) {
        if (jc->lost || jc->stopped)
            return 1;
        res->status = GN_TRIAL_FAILED;
        res->error = strdup(terr.msg);
        return 0;
    }
    res->status = GN_TRIAL_DONE;
    res->val_acc = acc;
    res->train_s = train_s;
    return 0;
}

int gn__nas_run_job(nas_state *s, const gn_trial *job, nas_job_ctx *jc, gn_trial *res, gn_error *err)
{
    const gn_nas_config *c = s->c;
    gn_trial_init(res);
    jc->lost = jc->stopped = 0;
    int x[GN_ENC_MAX_DIMS];
    gn_arch *a = NULL;
    gn_error jerr = {{0}};
    if (gn_space_parse_string(c->space, job->encoding, x, &jerr) || gn_space_decode(c->space, x, &a, &jerr)) {
        res->status = GN_TRIAL_FAILED;
        res->error = strdup(jerr.msg);
        return 0;
    }
    res->params = a->params;
    res->macs = a->macs;
    int is_measure = !job->kind || strcmp(job->kind, "measure") == 0;
    int is_train = !job->kind || strcmp(job->kind, "train") == 0;
    int rc = 0;
    if (is_measure) {
        if (!job->kind && job->latency_ms > 0) {
            res->latency_ms = job->latency_ms; /* known already: train only */
        } else if (measure_job(s, x, res, err)) {
            rc = -1;
            goto out;
        }
        if (job->tier < 0) { /* a tiering sample */
            res->status = GN_TRIAL_PRUNED;
            goto out;
        }
        if (gn__nas_load_tiers(s, err)) {
            rc = -1;
            goto out;
        }
        res->tier = gn_nas_tier_of(s->edges, s->n_tiers, res->latency_ms);
        if (!gn__nas_inside(s, res->latency_ms, job->tier)) {
            res->status = GN_TRIAL_PRUNED;
            goto out;
        }
        if (job->kind) { /* the next stage: any worker may train it */
            res->tier = job->tier;
            res->status = GN_TRIAL_QUEUED;
            res->kind = strdup("train");
            goto out;
        }
    }
    if (is_train) {
        jc->lease_s = jc->lease_s > 0 ? jc->lease_s : 60;
        rc = train_job(s, a, job->level, jc, res);
    }
out:
    gn_arch_free(a);
    if (rc)
        gn_trial_clear(res);
    return rc;
}
