/*
 * nas_summary.c — what a search found, read back from its store: the best trained
 * candidate of every tier, the accuracy/latency Pareto front of all trained
 * candidates, and the tier winners written out as GPUNet JSON files (the model hub's
 * entries) with a summary.json index.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gpunas/nas.h"
#include "gpunas/search.h"
#include "util/fs_atomic.h"


int gn_nas_summarize(gn_store *store, gn_nas_summary *s, gn_error *err)
{
    memset(s, 0, sizeof *s);
    for (int i = 0; i < GN_NAS_MAX_TIERS; i++)
        gn_trial_init(&s->best[i]);
    char *tiers = NULL;
    int g = gn_store_get_meta(store, "nas.tiers", &tiers, err);
    if (g < 0)
        return -1;
    if (g == 0) {
        int auto_n;
        int rc = gn_nas_parse_tiers(tiers, s->tier_ms, &s->n_tiers, &auto_n, err);
        free(tiers);
        if (rc)
            return -1;
    }
    gn_trial_filter f;
    gn_trial_filter_init(&f);
    gn_trial_list l = {0};
    if (gn_store_list_trials(store, &f, &l, err))
        return -1;
    double *obj = malloc(sizeof(double) * 2 * (l.n + 1));
    int *idx = malloc(sizeof(int) * (l.n + 1)), *map = malloc(sizeof(int) * (l.n + 1));
    if (!obj || !idx || !map) {
        free(obj), free(idx), free(map);
        gn_trial_list_free(&l);
        return gn_error_set(err, "summary: out of memory");
    }
    int m = 0;
    for (int64_t i = 0; i < l.n; i++) {
        const gn_trial *t = &l.items[i];
        switch (t->status) {
        case GN_TRIAL_DONE: s->n_done++; break;
        case GN_TRIAL_FAILED: s->n_failed++; break;
        case GN_TRIAL_PRUNED: s->n_pruned++; break;
        default: s->n_running++; break;
        }
        if (t->status != GN_TRIAL_DONE || !(t->latency_ms > 0) || !isfinite(t->val_acc))
            continue;
        if (t->error && strncmp(t->error, "same network", 12) == 0) {
            s->n_reused++; /* a repeat of an earlier row: counted once, there */
            s->n_done--;
            continue;
        }
        int tier = gn_nas_tier_of(s->tier_ms, s->n_tiers, t->latency_ms);
        if (tier >= 0) {
            s->trained[tier]++;
            gn_trial *b = &s->best[tier];
            if (b->id == 0 || t->val_acc > b->val_acc || (t->val_acc == b->val_acc && t->latency_ms < b->latency_ms)) {
                gn_trial_clear(b);
                gn_trial_copy(b, t);
            }
        }
        obj[2 * m] = t->val_acc;
        obj[2 * m + 1] = -t->latency_ms;
        map[m++] = (int)i;
    }
    int nf = 0;
    if (m > 0 && gn_pareto_front(obj, m, 2, NULL, idx, &nf, err)) {
        free(obj), free(idx), free(map);
        gn_trial_list_free(&l);
        return -1;
    }
    s->front = calloc(nf + 1, sizeof *s->front);
    for (int i = 0; i < nf && s->front; i++)
        gn_trial_copy(&s->front[i], &l.items[map[idx[i]]]);
    s->n_front = s->front ? nf : 0;
    /* by latency */
    for (int i = 1; i < s->n_front; i++)
        for (int j = i; j > 0 && s->front[j].latency_ms < s->front[j - 1].latency_ms; j--) {
            gn_trial tmp = s->front[j];
            s->front[j] = s->front[j - 1];
            s->front[j - 1] = tmp;
        }
    free(obj), free(idx), free(map);
    gn_trial_list_free(&l);
    return 0;
}

void gn_nas_summary_free(gn_nas_summary *s)
{
    for (int i = 0; i < GN_NAS_MAX_TIERS; i++)
        gn_trial_clear(&s->best[i]);
    for (int i = 0; i < s->n_front; i++)
        gn_trial_clear(&s->front[i]);
    free(s->front);
    memset(s, 0, sizeof *s);
}

static json_t *trial_json(const gn_trial *t, const char *file)
{
    return json_pack("{s:I, s:s, s:f, s:f, s:f, s:I, s:I, s:f, s:s?}", "trial", (json_int_t)t->id, "encoding",
                     t->encoding ? t->encoding : "", "val_acc", t->val_acc, "latency_ms", t->latency_ms,
                     "latency_spread_ms", isfinite(t->latency_spread_ms) ? t->latency_spread_ms : 0.0, "params",
                     (json_int_t)t->params, "macs", (json_int_t)t->macs, "train_s",
                     isfinite(t->train_s) ? t->train_s : 0.0, "file", file);
}

int gn_nas_write_winners(const gn_nas_summary *s, const char *dir, gn_error *err)
{
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return gn_error_set(err, "%s: cannot create: %s", dir, strerror(errno));
    int written = 0;
    json_t *root = json_object(), *tiers = json_array(), *front = json_array();
    for (int i = 0; i < s->n_tiers; i++) {
        const gn_trial *b = &s->best[i];
        json_t *tj;
        char name[64] = "";
        if (b->id > 0 && b->config) {
            snprintf(name, sizeof name, "tier%d-%gms.json", i, s->tier_ms[i]);
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dir, name);
            if (gn__fs_write_text_atomic(path, b->config, err)) {
                json_decref(root), json_decref(tiers), json_decref(front);
                return -1;
            }
            written++;
            tj = trial_json(b, name);
        } else {
            tj = json_object();
        }
        json_object_set_new(tj, "tier", json_integer(i));
        json_object_set_new(tj, "max_latency_ms", json_real(s->tier_ms[i]));
        json_object_set_new(tj, "trained", json_integer(s->trained[i]));
        json_array_append_new(tiers, tj);
    }
    for (int i = 0; i < s->n_front; i++)
        json_array_append_new(front, trial_json(&s->front[i], NULL));
    json_object_set_new(root, "tiers", tiers);
    json_object_set_new(root, "pareto_front", front);
    json_object_set_new(root, "trials_done", json_integer(s->n_done));
    json_object_set_new(root, "trials_failed", json_integer(s->n_failed));
    json_object_set_new(root, "trials_pruned", json_integer(s->n_pruned));
    char *text = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    char path[4096];
    snprintf(path, sizeof path, "%s/summary.json", dir);
    int rc = text ? gn__fs_write_text_atomic(path, text, err) : gn_error_set(err, "summary: out of memory");
    free(text);
    return rc ? -1 : written + 1;
}
