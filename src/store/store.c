/*
 * store.c — the backend-independent part of the trial store (gpunas/store.h): trial
 * records, status names, choosing a backend from the location, and the calls that
 * dispatch through the backend's vtable after checking their arguments once (so every
 * backend sees only valid requests and reports the same errors for bad ones).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

static const char *const status_names[] = {"running", "done", "failed", "pruned"};

const char *gn_trial_status_name(gn_trial_status st)
{
    return (unsigned)st < 4 ? status_names[st] : "?";
}

int gn_trial_status_parse(const char *name, gn_trial_status *out)
{
    for (int i = 0; name && i < 4; i++)
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
    t->val_acc = t->latency_ms = t->latency_spread_ms = t->train_s = NAN;
    t->created_at = t->started_at = t->finished_at = NAN;
    t->params = t->macs = -1;
}

void gn_trial_clear(gn_trial *t)
{
    free(t->encoding);
    free(t->config);
    free(t->worker);
    free(t->error);
    free(t->optimizer);
    free(t->latency_info);
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
    if ((src->encoding && !dst->encoding) || (src->config && !dst->config) || (src->worker && !dst->worker) ||
        (src->error && !dst->error) || (src->optimizer && !dst->optimizer) ||
        (src->latency_info && !dst->latency_info)) {
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
    const char *sep = strstr(where, "://");
    if (sep) {
        bool scheme = sep > where;
        for (const char *p = where; p < sep; p++)
            scheme &= (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '+' || *p == '-';
        if (scheme)
            return gn_error_set(err, "%s: unsupported trial store '%.*s' (this build stores trials in SQLite files: "
                                     "give a path or sqlite:PATH)", where, (int)(sep - where), where);
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

int gn_store_insert_trial(gn_store *s, gn_trial *t, gn_error *err)
{
    if (!t->encoding || !*t->encoding)
        return gn_error_set(err, "%s: insert trial (seq %lld): no encoding", s->where, (long long)t->seq);
    if (t->tier < -1)
        return gn_error_set(err, "%s: insert trial (seq %lld): tier %d out of range", s->where, (long long)t->seq,
                            t->tier);
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
    return s->ops->list_trials(s, f, out, err);
}

int gn_store_count_trials(gn_store *s, const gn_trial_filter *f, int64_t *n, gn_error *err)
{
    gn_trial_filter all;
    if (!f) {
        gn_trial_filter_init(&all);
        f = &all;
    }
    return s->ops->count_trials(s, f, n, err);
}

int gn_store_get_trial(gn_store *s, int64_t id, gn_trial *out, gn_error *err)
{
    gn_trial_init(out);
    return s->ops->get_trial(s, id, out, err);
}
