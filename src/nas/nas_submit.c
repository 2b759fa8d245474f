/*
 * nas_submit.c — gn_nas_submit: an architecture found outside the search (UNAS's
 * derived network, `gpunas unas --store`) evaluated as the search evaluates its own
 * proposals and stored beside them (design in gpunas/nas.h, "outside results").
 *
 *   Open.  The search is opened from its store as a worker opens it (its settings
 *   record: space, data, proxy recipe, latency conditions), but without waiting: a
 *   store without a search is an error.  Latency is predicted when the search predicts
 *   (its device profile), else measured here under the stored conditions, and only on
 *   the search's device class — a latency of another machine would put the network
 *   into the wrong tier.
 *
 *   Row.  Inserted 'running' before anything is measured (seq -1, level 0, optimizer =
 *   source, worker = this host), then finished once: 'pruned' with its latency outside
 *   every tier, else 'done' / 'failed' after the level-0 proxy training.  The tier is
 *   gn_nas_tier_of (no guard band: the search's margin only keeps its optimizers away
 *   from the edges).
 *
 *   Idempotent.  Before inserting, the level-0 rows are scanned for one with the same
 *   source and canonical network: a finished one is returned as it is; a 'running'
 *   one (a kill during its evaluation) is evaluated again and finished under its id,
 *   as the search does with its own.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nas/nas_internal.h"

#define say(cb, ...) gn__nas_event(cb, GN_NAS_EV_INFO, NULL, 0, 0, __VA_ARGS__)

/* The stored level-0 row of this source and canonical network: 1 found (*row filled),
 * 0 none, -1 error. */
static int find_row(nas_state *s, const char *source, const char *key, gn_trial *row, gn_error *err)
{
    gn_trial_filter f;
    gn_trial_filter_init(&f);
    gn_trial_list l = {0};
    if (gn_store_list_trials(s->c->store, &f, &l, err))
        return -1;
    int found = 0, x[GN_ENC_MAX_DIMS];
    gn_error e;
    for (int64_t i = 0; i < l.n && !found; i++) {
        const gn_trial *t = &l.items[i];
        if (t->seq >= 0 || !t->optimizer || strcmp(t->optimizer, source) != 0 ||
            gn_space_parse_string(s->c->space, t->encoding, x, &e))
            continue;
        char *k = gn__nas_key(s, x);
        if (!k) {
            gn_trial_list_free(&l);
            return gn_error_set(err, "submit: out of memory");
        }
        if (strcmp(k, key) == 0) {
            found = 1;
            if (gn_trial_copy(row, t)) {
                free(k);
                gn_trial_list_free(&l);
                return gn_error_set(err, "submit: out of memory");
            }
        }
        free(k);
    }
    gn_trial_list_free(&l);
    return found;
}

/* Measure, place in a tier, train: the finished fields into *res. */
static int evaluate(nas_state *s, const gn_trial *row, gn_trial *res, gn_error *err)
{
    nas_job_ctx jc = {.store = s->c->store, .should_stop = s->cb ? s->cb->should_stop : NULL,
                      .user = s->cb ? s->cb->user : NULL};
    gn_trial job = *row;
    job.kind = "measure";
    job.tier = -1; /* measure only (the tiering path of the job) */
    job.latency_ms = NAN;
    if (gn__nas_run_job(s, &job, &jc, res, err))
        return -1;
    if (res->status == GN_TRIAL_FAILED) /* not decodable */
        return 0;
    res->tier = gn_nas_tier_of(s->edges, s->n_tiers, res->latency_ms);
    if (res->tier < 0) {
        res->status = GN_TRIAL_PRUNED;
        return 0;
    }
    say(s->cb, "submit: %.4f ms: tier %d; proxy training at level 0", res->latency_ms, res->tier);
    job.kind = "train";
    job.level = 0;
    gn_trial tr;
    int r = gn__nas_run_job(s, &job, &jc, &tr, err);
    if (r < 0)
        return -1;
    if (r == 1) {
        gn_trial_clear(&tr);
        return gn_error_set(err, "submit: stopped during the proxy training (the row stays 'running'; "
                                 "submitting again evaluates it)");
    }
    res->status = tr.status;
    res->val_acc = tr.val_acc;
    res->train_s = tr.train_s;
    res->error = tr.error;
    tr.error = NULL;
    gn_trial_clear(&tr);
    return 0;
}

/* The search's latency side: profile, or the stored conditions on its device class. */
static int latency_side(nas_state *s, gn_error *err)
{
    const gn_nas_config *c = s->c;
    if (c->profile_path) {
        if (gn_lat_profile_load(c->profile_path, &s->profile, err))
            return -1;
        s->have_profile = 1;
        return 0;
    }
    char *cls = NULL;
    int g = gn_store_get_meta(c->store, "nas.device_class", &cls, err);
    if (g < 0)
        return -1;
    if (g == 0 && strcmp(cls, s->my_class) != 0) {
        gn_error_set(err,
                     "%s: the search measures latency on device class '%s', this machine is '%s': its latency "
                     "would not place the network in the search's tiers (run this on a machine of that class)",
                     gn_store_where(c->store), cls, s->my_class);
        free(cls);
        return -1;
    }
    free(cls);
    return gn__nas_lat_ready(s, err);
}

int gn_nas_submit(const gn_nas_worker_config *w, const char *encoding, const char *source, const gn_nas_callbacks *cb,
                  gn_trial *out, gn_error *err)
{
    if (out)
        gn_trial_init(out);
    if (!w || !w->store || !encoding || !source || !*source)
        return gn_error_set(err, "submit: needs a store, an encoding and a source");
    if (strcmp(source, NAS_TIERING) == 0 || strchr(source, '/'))
        return gn_error_set(err, "submit: source '%s' would read as a search's own optimizer (no '/', not '%s')",
                            source, NAS_TIERING);
    char *settings = NULL;
    int g = gn_store_get_meta(w->store, "nas.settings", &settings, err);
    free(settings);
    if (g < 0)
        return -1;
    if (g == 1)
        return gn_error_set(err, "%s: no search in this store (meta nas.settings missing): run `gpunas search` first",
                            gn_store_where(w->store));
    worker_search ws;
    memset(&ws, 0, sizeof ws);
    nas_state S, *s = &S;
    memset(s, 0, sizeof S);
    gn_lat_profile_init(&s->profile);
    int rc = -1, x[GN_ENC_MAX_DIMS];
    char *key = NULL;
    gn_trial row;
    gn_trial_init(&row);
    if (gn__nas_load_search(w, cb, &ws, err))
        goto out;
    s->c = &ws.c;
    s->cb = cb;
    s->d = gn_space_desc(ws.space)->ndims;
    gethostname(s->host, sizeof s->host - 1);
    if (gn_backend_create(ws.c.backend ? ws.c.backend : "dnnl", &s->be, err) ||
        gn_backend_set_threads(s->be, ws.c.threads, err) || gn__nas_device_init(s, err))
        goto out;
    if (w->device_class)
        snprintf(s->my_class, sizeof s->my_class, "%s", w->device_class);
    if (gn__nas_load_tiers(s, err) || latency_side(s, err))
        goto out;
    if (gn_space_parse_string(ws.space, encoding, x, err))
        goto out;
    if (!(key = gn__nas_key(s, x))) {
        gn_error_set(err, "submit: out of memory");
        goto out;
    }
    int f = find_row(s, source, key, &row, err);
    if (f < 0)
        goto out;
    if (f == 1 && gn__nas_is_final(&row)) {
        say(cb, "submit: trial %lld (%s) holds this network already (%s)", (long long)row.id, source,
            gn_trial_status_name(row.status));
    } else {
        if (f == 0) {
            int y[GN_ENC_MAX_DIMS];
            gn_space_canonical(ws.space, x, y);
            row.seq = -1;
            row.level = 0;
            row.encoding = gn_space_encode_to_string(ws.space, y);
            row.config = gn_space_decode_json(ws.space, y, err);
            row.optimizer = strdup(source);
            row.worker = strdup(s->host);
            if (!row.encoding || !row.config || !row.optimizer || !row.worker) {
                gn_error_set(err, "submit: out of memory");
                goto out;
            }
            if (gn_store_insert_trial(w->store, &row, err))
                goto out;
            say(cb, "submit: trial %lld (%s): measuring", (long long)row.id, source);
        } else {
            say(cb, "submit: trial %lld (%s) was left running: evaluating it again", (long long)row.id, source);
        }
        gn_trial res;
        gn_trial_init(&res);
        if (evaluate(s, &row, &res, err)) {
            gn_trial_clear(&res);
            goto out;
        }
        int fr = gn_store_finish_trial(w->store, row.id, &res, err);
        gn_trial_clear(&res);
        if (fr)
            goto out;
        int64_t id = row.id;
        gn_trial_clear(&row);
        if (gn_store_get_trial(w->store, id, &row, err))
            goto out;
    }
    if (out) {
        *out = row;
        gn_trial_init(&row);
    }
    rc = 0;
out:
    free(key);
    gn_trial_clear(&row);
    gn__nas_state_free(s);
    gn__nas_search_free(&ws);
    return rc;
}
