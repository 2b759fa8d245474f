/*
 * store.c — the backend-independent part of the trial store (gpunas/store.h): trial
 * records, status names, choosing a backend from the location, and the calls that
 * dispatch through the backend's vtable after checking their arguments once (so every
 * backend sees only valid requests and reports the same errors for bad ones).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "store/store_internal.h"

static const char *const status_names[GN_TRIAL_NSTATUS] = {"running", "done",   "failed",
                                                           "pruned",  "queued", "leased"};

const char *gn_trial_status_name(gn_trial_status st)
{
    return (unsigned)st < GN_TRIAL_NSTATUS ? status_names[st] : "?";
}

int gn_trial_status_parse(const char *name, gn_trial_status *out)
{
    for (int i = 0; name && i < GN_TRIAL_NSTATUS; i++)
        if (strcmp(name, status_names[i]) == 0) {
            *out = (gn_trial_status)i;
            return 0;
        }
    return -1;
}

void gn_trial_init(gn_trial *t)
{
    memset(t, 0, sizeof *t);
    t->tier = -1;
    t->status = GN_TRIAL_RUNNING;
    t->val_acc = t->latency_ms = t->latency_spread_ms = t->train_s = t->naswot = NAN;
    t->created_at = t->started_at = t->finished_at = NAN;
    t->params = t->macs = -1;
    t->lease_expires_at = NAN;
    t->level = 0; /* a proposal (memset did it; said for the reader) */
    t->parent = 0;
}

void gn_trial_clear(gn_trial *t)
{
    free(t->encoding);
    free(t->config);
    free(t->worker);
    free(t->error);
    free(t->optimizer);
    free(t->latency_info);
    free(t->kind);
    free(t->device_class);
    free(t->device);
    gn_trial_init(t);
}

static char *dupstr(const char *s) { return s ? strdup(s) : NULL; }

int gn_trial_copy(gn_trial *dst, const gn_trial *src)
{
    *dst = *src;
    dst->encoding = dupstr(src->encoding);
    dst->config = dupstr(src->config);
    dst->worker = dupstr(src->worker);
    dst->error = dupstr(src->error);
    dst->optimizer = dupstr(src->optimizer);
    dst->latency_info = dupstr(src->latency_info);
    dst->kind = dupstr(src->kind);
    dst->device_class = dupstr(src->device_class);
    dst->device = dupstr(src->device);
    if ((src->encoding && !dst->encoding) || (src->config && !dst->config) || (src->worker && !dst->worker) ||
        (src->error && !dst->error) || (src->optimizer && !dst->optimizer) ||
        (src->latency_info && !dst->latency_info) || (src->kind && !dst->kind) ||
        (src->device_class && !dst->device_class) || (src->device && !dst->device)) {
        gn_trial_clear(dst);
        return -1;
    }
    return 0;
}

void gn_trial_filter_init(gn_trial_filter *f)
{
    f->status = -1;
    f->tier = GN_TIER_ANY;
    f->after_id = 0;
    f->limit = 0;
    f->level = 0; /* proposals only: callers that know no levels see what they saw before schema 4 */
}

void gn_trial_list_free(gn_trial_list *l)
{
    for (int64_t i = 0; i < l->n; i++)
        gn_trial_clear(&l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

int gn_store_open(const char *where, unsigned flags, gn_store **out, gn_error *err)
{
    *out = NULL;
    if (!where || !*where)
        return gn_error_set(err, "trial store: no location given");
    if (strncmp(where, "sqlite:", 7) == 0)
        return gn__store_open_sqlite(where + 7, flags, out, err);
    if (strncmp(where, "postgresql://", 13) == 0 || strncmp(where, "postgres://", 11) == 0)
        return gn__store_open_pg(where, flags, out, err);
    const char *sep = strstr(where, "://");
    if (sep) {
        bool scheme = sep > where;
        for (const char *p = where; p < sep; p++)
            scheme &= (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '+' || *p == '-';
        if (scheme)
            return gn_error_set(err, "%s: unsupported trial store '%.*s' (trials are stored in SQLite files "
                                     "(a path or sqlite:PATH) or PostgreSQL (postgresql://...))", where, (int)(sep - where), where);
    }
    return gn__store_open_sqlite(where, flags, out, err);
}

void gn_store_close(gn_store *s)
{
    if (s)
        s->ops->close(s);
}

const char *gn_store_where(const gn_store *s) { return s->where; }

static int check_key(gn_store *s, const char *key, gn_error *err)
{
    if (!key || !*key)
        return gn_error_set(err, "%s: meta: empty key", s->where);
    return 0;
}

int gn_store_put_meta(gn_store *s, const char *key, const char *value, gn_error *err)
{
    if (check_key(s, key, err))
        return -1;
    if (!value)
        return gn_error_set(err, "%s: meta '%s': no value", s->where, key);
    return s->ops->put_meta(s, key, value, err);
}

int gn_store_get_meta(gn_store *s, const char *key, char **value, gn_error *err)
{
    *value = NULL;
    if (check_key(s, key, err))
        return -1;
    return s->ops->get_meta(s, key, value, err);
}

int gn_store_put_meta_once(gn_store *s, const char *key, const char *value, char **stored, gn_error *err)
{
    *stored = NULL;
    if (check_key(s, key, err))
        return -1;
    if (!value)
        return gn_error_set(err, "%s: put meta '%s': no value", s->where, key);
    int rc = s->ops->put_meta_new(s, key, value, err);
    if (rc < 0)
        return -1;
    int g = s->ops->get_meta(s, key, stored, err);
    if (g < 0)
        return -1;
    if (g == 1) /* deleted in between: nothing deletes meta, so the store is not ours alone */
        return gn_error_set(err, "%s: meta '%s' vanished after it was written", s->where, key);
    return rc;
}

/* The shape of a trial's fidelity level (gpunas/store.h, "Fidelity levels"); op names
 * the call ("insert trial", "enqueue"). */
static int check_level(gn_store *s, const gn_trial *t, const char *op, gn_error *err)
{
    if (t->level < 0)
        return gn_error_set(err, "%s: %s (seq %lld): level %d out of range (0: a proposal, >= 1: a promotion)",
                            s->where, op, (long long)t->seq, t->level);
    if (t->level > 0 && t->parent <= 0)
        return gn_error_set(err, "%s: %s (seq %lld): level %d needs the parent trial it promotes (parent %lld)",
                            s->where, op, (long long)t->seq, t->level, (long long)t->parent);
    if (t->level == 0 && t->parent != 0)
        return gn_error_set(err, "%s: %s (seq %lld): parent %lld given for level 0 (a proposal has no parent)",
                            s->where, op, (long long)t->seq, (long long)t->parent);
    return 0;
}

static int check_filter(gn_store *s, const gn_trial_filter *f, const char *op, gn_error *err)
{
    if (f->level < GN_LEVEL_ANY)
        return gn_error_set(err, "%s: %s: level %d out of range (>= 0, or GN_LEVEL_ANY)", s->where, op, f->level);
    return 0;
}

int gn_store_insert_trial(gn_store *s, gn_trial *t, gn_error *err)
{
    if (!t->encoding || !*t->encoding)
        return gn_error_set(err, "%s: insert trial (seq %lld): no encoding", s->where, (long long)t->seq);
    if (t->tier < -1)
        return gn_error_set(err, "%s: insert trial (seq %lld): tier %d out of range", s->where, (long long)t->seq,
                            t->tier);
    if (check_level(s, t, "insert trial", err))
        return -1;
    return s->ops->insert_trial(s, t, err);
}

int gn_store_finish_trial(gn_store *s, int64_t id, const gn_trial *t, gn_error *err)
{
    if (t->status != GN_TRIAL_DONE && t->status != GN_TRIAL_FAILED && t->status != GN_TRIAL_PRUNED)
        return gn_error_set(err, "%s: finish trial %lld: status must be done, failed or pruned, not %s", s->where,
                            (long long)id, gn_trial_status_name(t->status));
    if (t->tier < -1)
        return gn_error_set(err, "%s: finish trial %lld: tier %d out of range", s->where, (long long)id, t->tier);
    return s->ops->finish_trial(s, id, t, err);
}

int gn_store_list_trials(gn_store *s, const gn_trial_filter *f, gn_trial_list *out, gn_error *err)
{
    out->items = NULL;
    out->n = 0;
    gn_trial_filter all;
    if (!f) {
        gn_trial_filter_init(&all);
        f = &all;
    }
    if (check_filter(s, f, "list trials", err))
        return -1;
    return s->ops->list_trials(s, f, out, err);
}

int gn_store_count_trials(gn_store *s, const gn_trial_filter *f, int64_t *n, gn_error *err)
{
    gn_trial_filter all;
    if (!f) {
        gn_trial_filter_init(&all);
        f = &all;
    }
    if (check_filter(s, f, "count trials", err))
        return -1;
    return s->ops->count_trials(s, f, n, err);
}

int gn_store_get_trial(gn_store *s, int64_t id, gn_trial *out, gn_error *err)
{
    gn_trial_init(out);
    return s->ops->get_trial(s, id, out, err);
}

/* ---- the work queue ---- */

int gn__lease_lost(gn_error *err, const char *where, const char *op, int64_t id, const char *status,
                   const char *worker)
{
    if (!status || !*status)
        gn_error_set(err, "%s: %s: lease lost: no such trial %lld", where, op, (long long)id);
    else if (strcmp(status, "leased") == 0)
        gn_error_set(err, "%s: %s: lease lost: trial %lld is leased under another token or its lease expired "
                          "(worker %s)", where, op, (long long)id, worker ? worker : "?");
    else
        gn_error_set(err, "%s: %s: lease lost: trial %lld is %s", where, op, (long long)id, status);
    return GN_STORE_LEASE_LOST;
}

static int check_kind(gn_store *s, const gn_trial *t, gn_error *err)
{
    if (!t->kind || (strcmp(t->kind, "measure") && strcmp(t->kind, "train")))
        return gn_error_set(err, "%s: enqueue (seq %lld): job kind must be \"measure\" or \"train\", not %s%s%s",
                            s->where, (long long)t->seq, t->kind ? "\"" : "", t->kind ? t->kind : "none",
                            t->kind ? "\"" : "");
    if (strcmp(t->kind, "measure") == 0 && (!t->device_class || !*t->device_class))
        return gn_error_set(err, "%s: enqueue (seq %lld): a measure job needs a device class", s->where,
                            (long long)t->seq);
    if (t->max_attempts < 1)
        return gn_error_set(err, "%s: enqueue (seq %lld): max_attempts must be at least 1, not %d", s->where,
                            (long long)t->seq, t->max_attempts);
    return 0;
}

int gn_store_enqueue(gn_store *s, gn_trial *t, gn_error *err)
{
    if (!t->encoding || !*t->encoding)
        return gn_error_set(err, "%s: enqueue (seq %lld): no encoding", s->where, (long long)t->seq);
    if (t->tier < -1)
        return gn_error_set(err, "%s: enqueue (seq %lld): tier %d out of range", s->where, (long long)t->seq,
                            t->tier);
    if (check_kind(s, t, err) || check_level(s, t, "enqueue", err))
        return -1;
    return s->ops->enqueue(s, t, err);
}

static int check_lease(gn_store *s, const gn_lease *l, const char *op, gn_error *err)
{
    size_t n = strnlen(l->token, sizeof l->token);
    bool hex = n == GN_LEASE_TOKEN_LEN;
    for (size_t i = 0; hex && i < n; i++)
        hex = (l->token[i] >= '0' && l->token[i] <= '9') || (l->token[i] >= 'a' && l->token[i] <= 'f');
    if (l->trial_id < 1 || !hex)
        return gn_error_set(err, "%s: %s: not a lease (trial %lld)", s->where, op, (long long)l->trial_id);
    return 0;
}

int gn_store_claim(gn_store *s, const gn_claim_req *rq, gn_trial *job, gn_lease *lease, gn_error *err)
{
    gn_trial_init(job);
    memset(lease, 0, sizeof *lease);
    lease->expires_at = NAN;
    if (!rq->worker || !*rq->worker)
        return gn_error_set(err, "%s: claim: no worker id", s->where);
    if (!(rq->kinds & (GN_JOB_MEASURE | GN_JOB_TRAIN)) || (rq->kinds & ~(GN_JOB_MEASURE | GN_JOB_TRAIN)))
        return gn_error_set(err, "%s: claim (worker %s): kinds must be measure and/or train", s->where, rq->worker);
    if (!(rq->lease_s > 0) || rq->lease_s > 1e7)
        return gn_error_set(err, "%s: claim (worker %s): lease of %g s out of range", s->where, rq->worker,
                            rq->lease_s);
    unsigned char rnd[GN_LEASE_TOKEN_LEN / 2];
    size_t got = 0;
    while (got < sizeof rnd) {
        ssize_t r = getrandom(rnd + got, sizeof rnd - got, 0);
        if (r < 0)
            return gn_error_set(err, "%s: claim (worker %s): no random lease token: getrandom failed", s->where,
                                rq->worker);
        got += (size_t)r;
    }
    char token[GN_LEASE_TOKEN_LEN + 1];
    for (size_t i = 0; i < sizeof rnd; i++)
        snprintf(token + 2 * i, 3, "%02x", rnd[i]);
    return s->ops->claim(s, rq, token, job, lease, err);
}

int gn_store_heartbeat(gn_store *s, gn_lease *lease, double lease_s, gn_error *err)
{
    if (check_lease(s, lease, "heartbeat", err))
        return -1;
    if (!(lease_s > 0) || lease_s > 1e7)
        return gn_error_set(err, "%s: heartbeat trial %lld: lease of %g s out of range", s->where,
                            (long long)lease->trial_id, lease_s);
    return s->ops->heartbeat(s, lease, lease_s, err);
}

int gn_store_complete(gn_store *s, const gn_lease *lease, const gn_trial *t, gn_error *err)
{
    if (check_lease(s, lease, "complete", err))
        return -1;
    int64_t id = lease->trial_id;
    if (t->status == GN_TRIAL_QUEUED) {
        if (!t->kind || (strcmp(t->kind, "train") && strcmp(t->kind, "measure")))
            return gn_error_set(err, "%s: complete trial %lld into its next stage: kind must be train or measure",
                                s->where, (long long)id);
    } else if (t->status != GN_TRIAL_DONE && t->status != GN_TRIAL_FAILED && t->status != GN_TRIAL_PRUNED) {
        return gn_error_set(err, "%s: complete trial %lld: status must be done, failed, pruned or queued, not %s",
                            s->where, (long long)id, gn_trial_status_name(t->status));
    } else if (t->kind) {
        return gn_error_set(err, "%s: complete trial %lld: a kind only goes with status queued (the next stage)",
                            s->where, (long long)id);
    }
    if (t->tier < -1)
        return gn_error_set(err, "%s: complete trial %lld: tier %d out of range", s->where, (long long)id, t->tier);
    if (!isnan(t->latency_ms) && (!t->device || !*t->device))
        return gn_error_set(err, "%s: complete trial %lld: a latency result needs the measuring device's fingerprint",
                            s->where, (long long)id);
    return s->ops->complete(s, lease, t, err);
}

int gn_store_release(gn_store *s, const gn_lease *lease, gn_error *err)
{
    if (check_lease(s, lease, "release", err))
        return -1;
    return s->ops->release(s, lease, err);
}

int gn_store_expire_leases(gn_store *s, const char *worker, int64_t *n, gn_error *err)
{
    int64_t k = 0;
    if (!worker || !*worker)
        return gn_error_set(err, "%s: expire leases: no worker id", s->where);
    int rc = s->ops->expire_leases(s, worker, &k, err);
    if (n)
        *n = k;
    return rc;
}

int gn_store_reap(gn_store *s, int64_t *requeued, int64_t *failed, gn_error *err)
{
    int64_t a = 0, b = 0;
    int rc = s->ops->reap(s, &a, &b, err);
    if (requeued)
        *requeued = a;
    if (failed)
        *failed = b;
    return rc;
}

void gn_worker_list_free(gn_worker_list *l)
{
    for (int64_t i = 0; i < l->n; i++) {
        free(l->items[i].id);
        free(l->items[i].host);
        free(l->items[i].device_class);
    }
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

int gn_store_register_worker(gn_store *s, const gn_worker *w, gn_error *err)
{
    if (!w->id || !*w->id || !w->host || !*w->host)
        return gn_error_set(err, "%s: register worker: id and host required", s->where);
    return s->ops->register_worker(s, w, err);
}

int gn_store_worker_beat(gn_store *s, const char *id, gn_error *err)
{
    if (!id || !*id)
        return gn_error_set(err, "%s: worker heartbeat: no worker id", s->where);
    return s->ops->worker_beat(s, id, err);
}

int gn_store_list_workers(gn_store *s, double window_s, gn_worker_list *out, gn_error *err)
{
    out->items = NULL;
    out->n = 0;
    if (!(window_s > 0))
        return gn_error_set(err, "%s: list workers: window of %g s out of range", s->where, window_s);
    return s->ops->list_workers(s, window_s, out, err);
}
