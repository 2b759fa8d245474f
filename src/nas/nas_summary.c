/*
 * nas_summary.c — what a search found, read back from its store: the best trained
 * candidate of every tier (with successive halving: the best of the highest level the
 * tier's ladder reached; ranked by the search's proxy score, nas_score.c), the promotion
 * ladder, the accuracy/latency Pareto front of all
 * trained candidates (their level-0 accuracy: one fidelity for all), and the tier
 * winners written out as GPUNet JSON files (the model hub's entries) with a
 * summary.json index.
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
#include "nas/nas_internal.h"
#include "util/fs_atomic.h"


static int by_id_level(const void *a, const void *b)
{
    const gn_trial *x = a, *y = b;
    if (x->parent != y->parent)
        return x->parent < y->parent ? -1 : 1;
    return x->level - y->level;
}

/* done rows of levels >= 1, sorted by (parent, level) */
static int list_promoted(gn_store *store, gn_trial_list *l, gn_error *err)
{
    gn_trial_filter f;
    gn_trial_filter_init(&f);
    f.level = GN_LEVEL_ANY;
    f.status = GN_TRIAL_DONE;
    if (gn_store_list_trials(store, &f, l, err))
        return -1;
    int64_t k = 0;
    for (int64_t i = 0; i < l->n; i++) {
        if (l->items[i].level >= 1 && l->items[i].parent > 0 && isfinite(l->items[i].val_acc))
            l->items[k++] = l->items[i];
        else
            gn_trial_clear(&l->items[i]);
    }
    l->n = k;
    if (k > 1)
        qsort(l->items, k, sizeof *l->items, by_id_level);
    return 0;
}

int gn_nas_read_rungs(gn_store *store, gn_nas_rung **out, int64_t *n, gn_error *err)
{
    *out = NULL;
    *n = 0;
    gn_trial_list l = {0};
    gn_nas_scorer sc;
    if (gn_nas_scorer_load(store, &sc, err) || list_promoted(store, &l, err))
        return -1;
    gn_nas_rung *r = calloc((size_t)l.n + 1, sizeof *r);
    if (!r) {
        gn_trial_list_free(&l);
        return gn_error_set(err, "summary: out of memory");
    }
    int64_t m = 0;
    for (int64_t i = 0; i < l.n; i++) {
        const gn_trial *t = &l.items[i];
        if (m > 0 && r[m - 1].id == t->parent) { /* sorted by level: the later is higher */
            r[m - 1].level = t->level;
            r[m - 1].acc = t->val_acc;
            r[m - 1].score = gn_nas_score(&sc, t);
        } else {
            r[m++] = (gn_nas_rung){t->parent, t->level, t->val_acc, gn_nas_score(&sc, t)};
        }
    }
    gn_trial_list_free(&l);
    *out = r;
    *n = m;
    return 0;
}

const gn_nas_rung *gn_nas_rung_of(const gn_nas_rung *r, int64_t n, int64_t id)
{
    int64_t a = 0, b = n;
    while (a < b) {
        int64_t m = (a + b) / 2;
        if (r[m].id < id)
            a = m + 1;
        else
            b = m;
    }
    return a < n && r[a].id == id ? &r[a] : NULL;
}

/* the ladder's spec (settings) and, per tier and level, the candidates and the best */
static int summarize_ladder(gn_store *store, gn_nas_summary *s, gn_error *err)
{
    snprintf(s->fidelity, sizeof s->fidelity, "none");
    json_t *o;
    if (gn__nas_settings_load(store, (void **)&o, err))
        return -1;
    json_t *fid = json_object_get(o, "fidelity");
    if (json_is_string(fid)) {
        gn_nas_config c;
        gn_nas_defaults(&c);
        if (gn_nas_parse_fidelity(json_string_value(fid), &c, err) == 0) {
            s->n_levels = c.fid_levels;
            gn_nas_fidelity_text(&c, s->fidelity, sizeof s->fidelity);
            memcpy(s->level_epochs, c.fid_epochs, sizeof s->level_epochs);
            memcpy(s->level_subset, c.fid_subset, sizeof s->level_subset);
        }
    }
    json_decref(o);
    if (s->n_levels < 2)
        return 0;
    gn_trial_list l = {0};
    if (list_promoted(store, &l, err))
        return -1;
    static const double none = -1e300;
    double best[GN_NAS_MAX_TIERS][GN_NAS_MAX_LEVELS]; /* the score of level_best */
    for (int i = 0; i < GN_NAS_MAX_TIERS; i++)
        for (int j = 0; j < GN_NAS_MAX_LEVELS; j++)
            best[i][j] = none;
    for (int64_t i = 0; i < l.n; i++) {
        const gn_trial *t = &l.items[i];
        if (t->tier < 0 || t->tier >= s->n_tiers || t->level >= s->n_levels)
            continue;
        int k = s->level_n[t->tier][t->level]++;
        double sc = gn_nas_score(&s->scorer, t);
        if (k == 0 || sc > best[t->tier][t->level]) {
            s->level_best[t->tier][t->level] = t->parent;
            s->level_best_acc[t->tier][t->level] = t->val_acc;
            best[t->tier][t->level] = sc;
        }
    }
    gn_trial_list_free(&l);
    return 0;
}

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
    gn_nas_rung *rungs = NULL;
    int64_t n_rungs = 0;
    if (gn_nas_scorer_load(store, &s->scorer, err) || summarize_ladder(store, s, err) ||
        gn_nas_read_rungs(store, &rungs, &n_rungs, err))
        return -1;
    if (gn_store_list_trials(store, &f, &l, err)) {
        free(rungs);
        return -1;
    }
    double *obj = malloc(sizeof(double) * 2 * (l.n + 1));
    int *idx = malloc(sizeof(int) * (l.n + 1)), *map = malloc(sizeof(int) * (l.n + 1));
    if (!obj || !idx || !map) {
        free(obj), free(idx), free(map), free(rungs);
        gn_trial_list_free(&l);
        return gn_error_set(err, "summary: out of memory");
    }
    int m = 0;
    double best0[GN_NAS_MAX_TIERS] = {0}; /* the score of level_best[tier][0] */
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
            double score0 = gn_nas_score(&s->scorer, t); /* level 0: the search's score */
            if (s->n_levels >= 2) {
                int k = s->level_n[tier][0]++;
                if (k == 0 || score0 > best0[tier]) {
                    s->level_best[tier][0] = t->id;
                    s->level_best_acc[tier][0] = t->val_acc;
                    best0[tier] = score0;
                }
            }
            /* the highest level first, then the score there (levels >= 1: the accuracy),
             * then the latency */
            const gn_nas_rung *r = gn_nas_rung_of(rungs, n_rungs, t->id);
            int lvl = r ? r->level : 0;
            double sc = r ? r->score : score0;
            gn_trial *b = &s->best[tier];
            int bl = s->best_level[tier];
            if (b->id == 0 || lvl > bl ||
                (lvl == bl && (sc > s->best_score[tier] || (sc == s->best_score[tier] && t->latency_ms < b->latency_ms)))) {
                gn_trial_clear(b);
                gn_trial_copy(b, t);
                b->val_acc = r ? r->acc : t->val_acc;
                s->best_level[tier] = lvl;
                s->best_score[tier] = sc;
            }
        }
        obj[2 * m] = t->val_acc;
        obj[2 * m + 1] = -t->latency_ms;
        map[m++] = (int)i;
    }
    int nf = 0;
    if (m > 0 && gn_pareto_front(obj, m, 2, NULL, idx, &nf, err)) {
        free(obj), free(idx), free(map), free(rungs);
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
    free(rungs);
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
            json_object_set_new(tj, "score", json_real(s->best_score[i]));
            if (isfinite(b->naswot))
                json_object_set_new(tj, "naswot", json_real(b->naswot));
        } else {
            tj = json_object();
        }
        json_object_set_new(tj, "tier", json_integer(i));
        json_object_set_new(tj, "max_latency_ms", json_real(s->tier_ms[i]));
        json_object_set_new(tj, "trained", json_integer(s->trained[i]));
        if (s->n_levels >= 2) { /* the promotion ladder */
            json_t *ladder = json_array();
            for (int l = 0; l < s->n_levels; l++)
                json_array_append_new(
                    ladder, json_pack("{s:i, s:i, s:i, s:i, s:o, s:o}", "level", l, "epochs", s->level_epochs[l],
                                      "images", s->level_subset[l], "candidates", s->level_n[i][l], "best_trial",
                                      s->level_n[i][l] ? json_integer(s->level_best[i][l]) : json_null(),
                                      "best_val_acc",
                                      s->level_n[i][l] ? json_real(s->level_best_acc[i][l]) : json_null()));
            if (b->id > 0)
                json_object_set_new(tj, "level", json_integer(s->best_level[i]));
            json_object_set_new(tj, "ladder", ladder);
        }
        json_array_append_new(tiers, tj);
    }
    for (int i = 0; i < s->n_front; i++)
        json_array_append_new(front, trial_json(&s->front[i], NULL));
    if (s->n_levels >= 2)
        json_object_set_new(root, "fidelity", json_string(s->fidelity));
    json_object_set_new(root, "score", json_string(gn_nas_score_name(s->scorer.kind)));
    if (s->scorer.kind == GN_NAS_SCORE_NASWOT)
        json_object_set_new(root, "naswot", json_pack("{s:f, s:f, s:f, s:i}", "weight_points_per_sd", s->scorer.weight,
                                                      "mean", s->scorer.mean, "sd", s->scorer.sd, "from_samples",
                                                      s->scorer.n_norm));
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
