/*
 * nas_settings.c — the settings a search is defined by, kept in the store's meta
 * ("nas.settings", a JSON object) so that `--resume` continues the same search: a
 * resume whose settings differ is refused naming the first differing setting.  The
 * budget (trials, time) is not a setting: a resumed search may be given more.
 * The space is recorded by name and its encoding (cardinality of every dimension),
 * the latency source by profile path or "measure" with the thread count, since
 * latencies from different conditions must not be mixed in one set of tiers; so are
 * the measuring threads ("best" or a count), pinning and the reference pairing
 * (a store made before they existed is refused on --resume: it was measured
 * otherwise).  The proxy score ("score", "naswot_weight") is recorded when it is not
 * "acc", so a store made before it resumes scoring by accuracy.  Settings recorded
 * only when not their default are compared both ways: a store made with --backend ref
 * is refused a resume that names none, as one made without is refused --backend ref.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nas/nas_internal.h"

#define META_KEY "nas.settings"

char *gn__nas_settings_json(const gn_nas_config *c, gn_error *err)
{
    const gn_enc_desc *d = gn_space_desc(c->space);
    char card[4 * GN_ENC_MAX_DIMS + 8] = "";
    for (int i = 0; i < d->ndims; i++) {
        char t[16];
        snprintf(t, sizeof t, "%s%d", i ? "," : "", d->card[i]);
        strcat(card, t);
    }
    char tiers[32 * GN_NAS_MAX_TIERS + 16] = "";
    if (c->n_tiers == 0)
        snprintf(tiers, sizeof tiers, "auto:%d", c->auto_tiers);
    for (int i = 0; i < c->n_tiers; i++) {
        char t[32];
        snprintf(t, sizeof t, "%s%.17g", i ? "," : "", c->tier_ms[i]);
        strcat(tiers, t);
    }
    char lat_threads[16];
    if (c->lat_threads == GN_THREADS_BEST)
        snprintf(lat_threads, sizeof lat_threads, "best");
    else
        snprintf(lat_threads, sizeof lat_threads, "%d", c->lat_threads);
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:i, s:i, s:i, s:f, s:s, s:i, s:i, s:i, s:i, s:i, s:f, "
                          "s:f, s:I}",
                          "space", gn_space_name(c->space), "space_source", c->space_source ? c->space_source : "",
                          "space_card", card, "dataset", c->dataset_name ? c->dataset_name : "", "optimizer",
                          c->optimizer, "seed", (json_int_t)c->seed, "tiers", tiers, "prune_samples",
                          c->prune_samples, "lat_batch", c->lat_batch, "lat_runs", c->lat_runs, "lat_warmup_ms",
                          c->lat_warmup_ms, "latency", c->profile_path ? c->profile_path : "measure", "threads",
                          c->threads, "max_misses", c->max_misses, "proxy_epochs", c->proxy_epochs, "proxy_subset",
                          c->proxy_subset, "proxy_batch", c->proxy_batch, "proxy_lr", c->proxy_lr, "val_fraction",
                          c->val_fraction, "split_seed", (json_int_t)c->split_seed);
    if (o)
        json_object_update_new(o, json_pack("{s:s, s:b, s:b, s:f, s:f}", "lat_threads", lat_threads, "lat_pin",
                                             c->lat_pin, "lat_reference", c->lat_reference, "lat_min_ms",
                                             c->lat_min_ms, "tier_margin", c->tier_margin));
    /* recorded only when not the default, so stores made before it was a setting
     * (always dnnl) resume unchanged */
    if (o && c->backend && strcmp(c->backend, "dnnl") != 0)
        json_object_set_new(o, "backend", json_string(c->backend));
    /* likewise: proposals in flight decide what is proposed (gpunas/nas.h) */
    if (o && c->parallel > 1)
        json_object_set_new(o, "parallel", json_integer(c->parallel));
    if (o && c->canonical) /* absent in stores made before canonical encodings */
        json_object_set_new(o, "canonical", json_true());
    if (o && c->score != GN_NAS_SCORE_ACC) { /* absent in stores made before the score */
        json_object_set_new(o, "score", json_string(gn_nas_score_name(c->score)));
        json_object_set_new(o, "naswot_weight", json_real(c->naswot_weight));
    }
    if (o && c->opt_init > 0) /* absent in stores made before it (the optimizers' defaults) */
        json_object_set_new(o, "opt_init", json_integer(c->opt_init));
    if (o && c->fid_levels >= 2) { /* likewise: absent without successive halving */
        char fid[256];
        gn_nas_fidelity_text(c, fid, sizeof fid);
        json_object_set_new(o, "fidelity", json_string(fid));
    }
    if (!o) {
        gn_error_set(err, "search: cannot record the settings");
        return NULL;
    }
    char *s = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(o);
    if (!s)
        gn_error_set(err, "search: out of memory");
    return s;
}

int gn__nas_settings_check(gn_store *st, const gn_nas_config *c, bool resume, gn_error *err)
{
    char *mine = gn__nas_settings_json(c, err), *stored = NULL;
    if (!mine)
        return -1;
    int rc = gn_store_get_meta(st, META_KEY, &stored, err);
    if (rc < 0) {
        free(mine);
        return -1;
    }
    int64_t n = 0;
    gn_trial_filter f;
    gn_trial_filter_init(&f);
    if (gn_store_count_trials(st, &f, &n, err)) {
        free(mine);
        free(stored);
        return -1;
    }
    if (rc == 1) { /* no search recorded yet */
        if (n > 0) {
            free(mine);
            return gn_error_set(err, "%s: holds %lld trials but no search settings (not made by gpunas search)",
                                gn_store_where(st), (long long)n);
        }
        rc = gn_store_put_meta(st, META_KEY, mine, err);
        free(mine);
        return rc;
    }
    if (!resume) {
        free(mine);
        free(stored);
        return gn_error_set(err, "%s: holds a search already (%lld trials); use --resume to continue it, or another --store",
                            gn_store_where(st), (long long)n);
    }
    json_error_t je;
    json_t *a = json_loads(mine, 0, &je), *b = json_loads(stored, 0, &je);
    free(mine);
    free(stored);
    if (!a || !b) {
        json_decref(a);
        json_decref(b);
        return gn_error_set(err, "%s: meta '%s' is not valid JSON", gn_store_where(st), META_KEY);
    }
    const char *key;
    json_t *va;
    rc = 0;
    json_object_foreach(a, key, va)
    {
        json_t *vb = json_object_get(b, key);
        if (!vb || !json_equal(va, vb)) {
            char *sa = json_dumps(va, JSON_ENCODE_ANY), *sb = vb ? json_dumps(vb, JSON_ENCODE_ANY) : NULL;
            rc = gn_error_set(err, "%s: --resume with different settings: %s is %s here but %s in the store",
                              gn_store_where(st), key, sa ? sa : "?", sb ? sb : "absent");
            free(sa);
            free(sb);
            break;
        }
    }
    /* and the other way: a setting recorded only when not its default (backend, ...)
     * that the store has and this run has not */
    json_t *vb;
    if (rc == 0)
        json_object_foreach(b, key, vb)
        {
            if (json_object_get(a, key))
                continue;
            char *sb = json_dumps(vb, JSON_ENCODE_ANY);
            rc = gn_error_set(err, "%s: --resume with different settings: %s is the default here but %s in the store",
                              gn_store_where(st), key, sb ? sb : "?");
            free(sb);
            break;
        }
    json_decref(a);
    json_decref(b);
    return rc;
}

/* ---- the fidelity spec (gpunas/nas.h) */
int gn_nas_parse_fidelity(const char *text, gn_nas_config *c, gn_error *err)
{
    if (!text)
        return gn_error_set(err, "fidelity: missing");
    if (strcmp(text, "none") == 0) {
        c->fid_levels = 0;
        return 0;
    }
    if (strncmp(text, "sh:", 3) != 0)
        return gn_error_set(err, "fidelity '%s': expected 'none' or 'sh:EPOCHSxIMAGES,...[/ETA]'", text);
    const char *p = text + 3;
    int n = 0, eta = 3;
    int ep[GN_NAS_MAX_LEVELS], sub[GN_NAS_MAX_LEVELS];
    for (;;) {
        char *end;
        long e = strtol(p, &end, 10);
        if (end == p || *end != 'x' || e < 1 || e > 1000)
            return gn_error_set(err, "fidelity '%s': level %d: epochs (1..1000) then 'x' expected", text, n);
        p = end + 1;
        long m = strtol(p, &end, 10);
        if (end == p || m < 0 || m > 100000000)
            return gn_error_set(err, "fidelity '%s': level %d: images (0: all, .. 100000000) expected", text, n);
        if (n == GN_NAS_MAX_LEVELS)
            return gn_error_set(err, "fidelity '%s': more than %d levels", text, GN_NAS_MAX_LEVELS);
        ep[n] = (int)e;
        sub[n] = (int)m;
        if (n > 0) {
            /* images 0 (all) is the most a level can see */
            long long prev_m = sub[n - 1] == 0 ? 1LL << 40 : sub[n - 1], cur_m = m == 0 ? 1LL << 40 : m;
            if (cur_m < prev_m || e < ep[n - 1] || (cur_m == prev_m && e == ep[n - 1]))
                return gn_error_set(err, "fidelity '%s': level %d (%ldx%ld) does not cost more than level %d", text, n,
                                    e, m, n - 1);
        }
        n++;
        p = end;
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == '/') {
            long v = strtol(p + 1, &end, 10);
            if (end == p + 1 || *end || v < 2 || v > 100)
                return gn_error_set(err, "fidelity '%s': eta after '/' must be 2..100", text);
            eta = (int)v;
            p = end;
        }
        if (*p)
            return gn_error_set(err, "fidelity '%s': unexpected '%s'", text, p);
        break;
    }
    if (n < 2)
        return gn_error_set(err, "fidelity '%s': successive halving needs at least 2 levels", text);
    c->fid_levels = n;
    c->fid_eta = eta;
    for (int i = 0; i < n; i++) {
        c->fid_epochs[i] = ep[i];
        c->fid_subset[i] = sub[i];
    }
    c->proxy_epochs = ep[0];
    c->proxy_subset = sub[0];
    return 0;
}

void gn_nas_fidelity_text(const gn_nas_config *c, char *buf, size_t n)
{
    if (c->fid_levels < 2) {
        snprintf(buf, n, "none");
        return;
    }
    size_t k = 0;
    k += (size_t)snprintf(buf + k, n - k, "sh:");
    for (int i = 0; i < c->fid_levels && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%dx%d", i ? "," : "", c->fid_epochs[i], c->fid_subset[i]);
    if (k < n)
        snprintf(buf + k, n - k, "/%d", c->fid_eta);
}

/* ---- a worker's view */
static int need(json_t *o, const char *key, json_type type, json_t **v, gn_error *err)
{
    *v = json_object_get(o, key);
    if (!*v || (type == JSON_REAL ? !json_is_number(*v) : json_typeof(*v) != type))
        return gn_error_set(err, "meta '%s': field '%s' missing or of the wrong type", META_KEY, key);
    return 0;
}

int gn__nas_settings_parse(const char *text, gn_nas_config *c, const char **space_src, const char **dataset,
                           void **keep, gn_error *err)
{
    gn_nas_defaults(c);
    *keep = NULL;
    json_error_t je;
    json_t *o = json_loads(text, 0, &je);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        return gn_error_set(err, "meta '%s' is not a JSON object (%s)", META_KEY, je.text);
    }
    json_t *v;
    int rc = 0;
#define STR(key, dst) rc = rc ? rc : need(o, key, JSON_STRING, &v, err); if (!rc) dst = json_string_value(v)
#define INT(key, dst) rc = rc ? rc : need(o, key, JSON_INTEGER, &v, err); if (!rc) dst = json_integer_value(v)
#define NUM(key, dst) rc = rc ? rc : need(o, key, JSON_REAL, &v, err); if (!rc) dst = json_number_value(v)
    const char *latency = NULL, *lat_threads = NULL, *tiers = NULL;
    STR("space_source", *space_src);
    STR("dataset", *dataset);
    STR("optimizer", c->optimizer);
    STR("latency", latency);
    STR("lat_threads", lat_threads);
    STR("tiers", tiers);
    INT("seed", c->seed);
    INT("prune_samples", c->prune_samples);
    INT("lat_batch", c->lat_batch);
    INT("lat_runs", c->lat_runs);
    NUM("lat_warmup_ms", c->lat_warmup_ms);
    NUM("lat_min_ms", c->lat_min_ms);
    NUM("tier_margin", c->tier_margin);
    INT("threads", c->threads);
    INT("max_misses", c->max_misses);
    INT("proxy_epochs", c->proxy_epochs);
    INT("proxy_subset", c->proxy_subset);
    INT("proxy_batch", c->proxy_batch);
    NUM("proxy_lr", c->proxy_lr);
    NUM("val_fraction", c->val_fraction);
    INT("split_seed", c->split_seed);
#undef STR
#undef INT
#undef NUM
    if (!rc) {
        c->lat_pin = json_is_true(json_object_get(o, "lat_pin"));
        c->lat_reference = json_is_true(json_object_get(o, "lat_reference"));
        json_t *b = json_object_get(o, "backend");
        c->backend = json_is_string(b) ? json_string_value(b) : NULL;
        json_t *p = json_object_get(o, "parallel");
        c->parallel = json_is_integer(p) ? (int)json_integer_value(p) : 1;
        c->canonical = json_is_true(json_object_get(o, "canonical"));
        json_t *sc = json_object_get(o, "score"), *w = json_object_get(o, "naswot_weight");
        c->score = GN_NAS_SCORE_ACC;
        if (sc && (!json_is_string(sc) || gn_nas_score_parse(json_string_value(sc), &c->score)))
            rc = gn_error_set(err, "meta '%s': field 'score': not \"acc\" or \"acc+naswot\"", META_KEY);
        if (json_is_number(w))
            c->naswot_weight = json_number_value(w);
        json_t *oi = json_object_get(o, "opt_init");
        c->opt_init = json_is_integer(oi) ? (int)json_integer_value(oi) : 0; /* the coordinator's concern */
        json_t *fid = json_object_get(o, "fidelity");
        gn_error ferr = {{0}};
        if (fid && (!json_is_string(fid) || gn_nas_parse_fidelity(json_string_value(fid), c, &ferr)))
            rc = gn_error_set(err, "meta '%s': field 'fidelity': %s", META_KEY,
                              json_is_string(fid) ? ferr.msg : "not a string");
        c->profile_path = strcmp(latency, "measure") == 0 ? NULL : latency;
        c->lat_threads = strcmp(lat_threads, "best") == 0 ? GN_THREADS_BEST : atoi(lat_threads);
        if (gn_nas_parse_tiers(tiers, c->tier_ms, &c->n_tiers, &c->auto_tiers, err))
            rc = -1;
    }
    if (rc) {
        json_decref(o);
        return -1;
    }
    *keep = o;
    return 0;
}

int gn__nas_settings_load(gn_store *st, void **obj, gn_error *err)
{
    *obj = NULL;
    char *text = NULL;
    int g = gn_store_get_meta(st, META_KEY, &text, err);
    if (g != 0)
        return g < 0 ? -1 : 0;
    json_t *o = json_loads(text, 0, NULL);
    free(text);
    if (o && !json_is_object(o)) {
        json_decref(o);
        o = NULL;
    }
    *obj = o;
    return 0;
}

int gn__nas_stored_schedule(gn_store *st, int *parallel, int *canonical, int *score, double *naswot_weight,
                            int *opt_init, char **fidelity, gn_error *err)
{
    *fidelity = NULL;
    json_t *o;
    if (gn__nas_settings_load(st, (void **)&o, err))
        return -1;
    if (!o) /* no search yet: nothing to keep (a record that is not JSON: the settings check says so) */
        return 0;
    json_t *p = json_object_get(o, "parallel");
    *parallel = json_is_integer(p) && json_integer_value(p) >= 1 && json_integer_value(p) <= 100000
                    ? (int)json_integer_value(p)
                    : 1;
    *canonical = json_is_true(json_object_get(o, "canonical"));
    json_t *sc = json_object_get(o, "score");
    *score = GN_NAS_SCORE_ACC; /* absent: made before the score was a setting (or with "acc") */
    if (sc && (!json_is_string(sc) || gn_nas_score_parse(json_string_value(sc), score))) {
        json_decref(o);
        return gn_error_set(err, "%s: meta '%s': field 'score': not \"acc\" or \"acc+naswot\"", gn_store_where(st),
                            META_KEY);
    }
    json_t *w = json_object_get(o, "naswot_weight");
    if (json_is_number(w))
        *naswot_weight = json_number_value(w);
    json_t *oi = json_object_get(o, "opt_init");
    *opt_init = -1; /* absent: made before it was a setting (the optimizers' defaults) */
    if (oi && (!json_is_integer(oi) || json_integer_value(oi) < 2 || json_integer_value(oi) > 100000)) {
        json_decref(o);
        return gn_error_set(err, "%s: meta '%s': field 'opt_init': not an integer in 2..100000", gn_store_where(st),
                            META_KEY);
    }
    if (oi)
        *opt_init = (int)json_integer_value(oi);
    json_t *fid = json_object_get(o, "fidelity");
    if (json_is_string(fid) && !(*fidelity = strdup(json_string_value(fid)))) {
        json_decref(o);
        return gn_error_set(err, "search: out of memory");
    }
    json_decref(o);
    return 0;
}
