/*
 * nas_ladder.c — successive halving inside each tier: the coordinator's promotion
 * ladder (design in gpunas/nas.h, "Multi-fidelity").
 *
 *   rungs    per tier and level, the results taken so far, in the order they were
 *            taken: (level-0 trial id, score, promoted yet?); the score is
 *            gn_nas_score's (the validation accuracy, plus the NASWOT term when the
 *            search scores "acc+naswot").
 *   promos   every promotion made (or adopted from the store), in the order made; a
 *            promotion's result is taken only after every earlier promotion's, so the
 *            rungs grow in an order that depends on the results alone.
 *   stored   promotion rows already in the store (parent, level) -> id, read once when
 *            the search starts: a resumed search adopts them instead of making new ones.
 *
 *   The rule (ASHA): a rung of n results promotes its top floor(n / eta) — best score
 *   first, ties to the older trial — each once.  The completion when proposals are
 *   spent (gn__ladder_settle): for each tier, the lowest level l with results whose
 *   next level has none (every promotion done) promotes its best unpromoted candidate;
 *   repeated until nothing changes, so every tier that trained anything reaches the top.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nas/nas_internal.h"
#include "util/strmap.h"

#define emit(s, k, t, ...) gn__nas_event((s)->cb, k, t, 0, 0, __VA_ARGS__)

typedef struct {
    int64_t parent;
    double acc;
    int promoted;
} rung_entry;

typedef struct {
    rung_entry *v;
    int n, cap;
} rung;

typedef struct {
    int64_t id;
    int final; /* when the search started */
} stored_row;

typedef struct {
    int64_t id, parent;
    int tier, level;
    int final, replayed;
    gn_trial row; /* the row once final */
} promo;

struct gn__ladder {
    rung r[GN_NAS_MAX_TIERS][GN_NAS_MAX_LEVELS];
    promo *p;
    int np, cap, head; /* promotions [0, head) are taken */
    struct gn__strmap *stored;
};

static void key_of(int64_t parent, int level, char *buf, size_t n)
{
    snprintf(buf, n, "%lld:%d", (long long)parent, level);
}

int gn__ladder_open(nas_state *s, gn_error *err)
{
    if (s->c->fid_levels < 2)
        return 0;
    if (!(s->ladder = calloc(1, sizeof *s->ladder)) || !(s->ladder->stored = gn__strmap_new(sizeof(stored_row))))
        return gn_error_set(err, "search: out of memory");
    gn_trial_filter f;
    gn_trial_filter_init(&f);
    f.level = GN_LEVEL_ANY;
    gn_trial_list l = {0};
    if (gn_store_list_trials(s->c->store, &f, &l, err))
        return -1;
    int rc = 0;
    for (int64_t i = 0; i < l.n && !rc; i++) {
        const gn_trial *t = &l.items[i];
        if (t->level < 1)
            continue;
        if (t->level >= s->c->fid_levels) {
            rc = gn_error_set(err, "%s: trial %lld is at fidelity level %d; the search has %d levels",
                              gn_store_where(s->c->store), (long long)t->id, t->level, s->c->fid_levels);
            break;
        }
        char k[48];
        key_of(t->parent, t->level, k, sizeof k);
        stored_row sr = {t->id, gn__nas_is_final(t)};
        if (!gn__strmap_put(s->ladder->stored, k, &sr))
            rc = gn_error_set(err, "search: out of memory");
    }
    gn_trial_list_free(&l);
    return rc;
}

void gn__ladder_close(nas_state *s)
{
    struct gn__ladder *L = s->ladder;
    if (!L)
        return;
    for (int t = 0; t < GN_NAS_MAX_TIERS; t++)
        for (int l = 0; l < GN_NAS_MAX_LEVELS; l++)
            free(L->r[t][l].v);
    for (int i = 0; i < L->np; i++)
        gn_trial_clear(&L->p[i].row);
    free(L->p);
    gn__strmap_free(L->stored);
    free(L);
    s->ladder = NULL;
}

int gn__ladder_pending(const nas_state *s)
{
    return s->ladder ? s->ladder->np - s->ladder->head : 0;
}

/* Promote `parent` (tier, from level-1) to `level`: adopt its stored row, or enqueue a
 * training job at that level's budget with the parent's network and latency. */
static int promote(nas_state *s, int tier, int level, int64_t parent, double acc, gn_error *err)
{
    struct gn__ladder *L = s->ladder;
    const gn_nas_config *c = s->c;
    if (L->np == L->cap) {
        int cap = L->cap ? 2 * L->cap : 16;
        promo *v = realloc(L->p, sizeof *v * cap);
        if (!v)
            return gn_error_set(err, "search: out of memory");
        L->p = v;
        L->cap = cap;
    }
    promo *p = &L->p[L->np];
    memset(p, 0, sizeof *p);
    gn_trial_init(&p->row);
    p->parent = parent;
    p->tier = tier;
    p->level = level;
    char k[48];
    key_of(parent, level, k, sizeof k);
    const stored_row *have = gn__strmap_get(L->stored, k);
    if (have) { /* made before a restart: its result, if any, was reported then */
        p->id = have->id;
        p->replayed = have->final;
        L->np++;
        return 0;
    }
    gn_trial t;
    if (gn_store_get_trial(c->store, parent, &t, err))
        return -1;
    gn_trial job;
    gn_trial_init(&job);
    job.seq = t.seq;
    job.tier = tier;
    job.level = level;
    job.parent = parent;
    job.encoding = t.encoding;
    job.config = t.config;
    job.optimizer = t.optimizer;
    job.latency_ms = t.latency_ms;
    job.latency_spread_ms = t.latency_spread_ms;
    job.params = t.params;
    job.macs = t.macs;
    t.encoding = t.config = t.optimizer = NULL; /* moved into job */
    gn_trial_clear(&t);
    job.worker = strdup(s->host);
    job.kind = strdup("train");
    job.max_attempts = c->max_attempts;
    int rc = !job.worker || !job.kind ? gn_error_set(err, "search: out of memory") : gn_store_enqueue(c->store, &job, err);
    if (!rc) {
        p->id = job.id;
        L->np++;
        emit(s, GN_NAS_EV_INFO, NULL, "promoted: t%d #%lld (score %.2f%% at level %d) to level %d (%dx%d) as #%lld", tier,
             (long long)parent, 100 * acc, level - 1, level, c->fid_epochs[level], c->fid_subset[level],
             (long long)job.id);
    }
    gn_trial_clear(&job);
    return rc;
}

/* index of the best unpromoted entry of a rung among its top `k` (by score, ties to
 * the older trial); -1 none */
static int best_unpromoted(const rung *r, int k)
{
    /* rank = number of entries better than it; an entry is in the top k when rank < k */
    int pick = -1;
    for (int i = 0; i < r->n; i++) {
        if (r->v[i].promoted)
            continue;
        int rank = 0;
        for (int j = 0; j < r->n; j++)
            if (r->v[j].acc > r->v[i].acc || (r->v[j].acc == r->v[i].acc && r->v[j].parent < r->v[i].parent))
                rank++;
        if (rank < k && (pick < 0 || r->v[i].acc > r->v[pick].acc ||
                         (r->v[i].acc == r->v[pick].acc && r->v[i].parent < r->v[pick].parent)))
            pick = i;
    }
    return pick;
}

int gn__ladder_result(nas_state *s, int tier, int level, int64_t parent, double acc, gn_error *err)
{
    struct gn__ladder *L = s->ladder;
    if (!L)
        return 0;
    rung *r = &L->r[tier][level];
    if (r->n == r->cap) {
        int cap = r->cap ? 2 * r->cap : 16;
        rung_entry *v = realloc(r->v, sizeof *v * cap);
        if (!v)
            return gn_error_set(err, "search: out of memory");
        r->v = v;
        r->cap = cap;
    }
    r->v[r->n++] = (rung_entry){parent, acc, 0};
    if (level + 1 >= s->c->fid_levels)
        return 0;
    int k = r->n / s->c->fid_eta, i;
    while ((i = best_unpromoted(r, k)) >= 0) {
        r->v[i].promoted = 1;
        if (promote(s, tier, level + 1, r->v[i].parent, r->v[i].acc, err))
            return -1;
    }
    return 0;
}

/* Take the results of finished promotions, in the order they were made. */
static int take_results(nas_state *s, gn_error *err)
{
    struct gn__ladder *L = s->ladder;
    const gn_nas_config *c = s->c;
    while (L->head < L->np && L->p[L->head].final) {
        promo *p = &L->p[L->head++];
        const gn_trial *t = &p->row;
        if (!p->replayed) {
            if (t->status == GN_TRIAL_DONE)
                emit(s, GN_NAS_EV_INFO, t, "level %d (%dx%d): t%d #%lld  val %.2f%%  %.1f s  (#%lld)", p->level,
                     c->fid_epochs[p->level], c->fid_subset[p->level], p->tier, (long long)p->parent,
                     100 * t->val_acc, t->train_s, (long long)p->id);
            else
                emit(s, GN_NAS_EV_INFO, t, "level %d: t%d #%lld failed (#%lld): %s", p->level, p->tier,
                     (long long)p->parent, (long long)p->id, t->error ? t->error : "?");
        }
        if (t->status == GN_TRIAL_DONE && isfinite(t->val_acc) &&
            gn__ladder_result(s, p->tier, p->level, p->parent, gn_nas_score(&s->scorer, t), err))
            return -1;
    }
    return 0;
}

int gn__ladder_refresh(nas_state *s, gn_error *err)
{
    struct gn__ladder *L = s->ladder;
    if (!L)
        return 0;
    int64_t lo = 0;
    for (int i = L->head; i < L->np; i++)
        if (!L->p[i].final && (lo == 0 || L->p[i].id < lo))
            lo = L->p[i].id;
    if (lo > 0) {
        gn_trial_filter f;
        gn_trial_filter_init(&f);
        f.level = GN_LEVEL_ANY;
        f.after_id = lo - 1;
        gn_trial_list l = {0};
        if (gn_store_list_trials(s->c->store, &f, &l, err))
            return -1;
        for (int i = L->head; i < L->np; i++) {
            promo *p = &L->p[i];
            if (p->final)
                continue;
            int64_t a = 0, b = l.n; /* ids ascend: binary search */
            while (a < b) {
                int64_t m = (a + b) / 2;
                if (l.items[m].id < p->id)
                    a = m + 1;
                else
                    b = m;
            }
            if (a < l.n && l.items[a].id == p->id && gn__nas_is_final(&l.items[a])) {
                if (gn_trial_copy(&p->row, &l.items[a])) {
                    gn_trial_list_free(&l);
                    return gn_error_set(err, "search: out of memory");
                }
                p->final = 1;
            }
        }
        gn_trial_list_free(&l);
    }
    return take_results(s, err);
}

int gn__ladder_settle(nas_state *s, gn_error *err)
{
    struct gn__ladder *L = s->ladder;
    if (!L)
        return 0;
    if (gn__ladder_refresh(s, err))
        return -1;
    if (gn__ladder_pending(s))
        return 1;
    int made = 0;
    for (int t = 0; t < s->n_tiers; t++)
        for (int l = 0; l + 1 < s->c->fid_levels; l++) {
            rung *r = &L->r[t][l];
            if (r->n == 0 || L->r[t][l + 1].n > 0)
                continue;
            int i = best_unpromoted(r, r->n);
            if (i < 0)
                break; /* all promoted and failed above: nothing more this tier */
            r->v[i].promoted = 1;
            emit(s, GN_NAS_EV_INFO, NULL, "ladder: t%d's level %d is empty; its level-%d best goes up", t, l + 1, l);
            if (promote(s, t, l + 1, r->v[i].parent, r->v[i].acc, err))
                return -1;
            made++;
            break;
        }
    return made ? 1 : 0;
}
