/*
 * nas_score.c — how a search scores a trained candidate (gpunas/nas.h, "Proxy score").
 *
 *   acc          the proxy's validation accuracy, as before issue 13.
 *   acc+naswot   the proxy's validation accuracy plus `naswot_weight` accuracy points per
 *                standard deviation of the NASWOT zero-cost score (Mellor et al. 2021):
 *                    score = val_acc + (w / 100) * (naswot - mean) / sd
 *                bench/RESULTS.md (issue 13) measured on 27 fully trained networks: the
 *                1-epoch 15,000-image proxy alone ranks at Kendall tau 0.54, NASWOT alone
 *                0.44, this sum with w = 1 at 0.60 (w 0.5-2: 0.58-0.60).
 *
 * Why a sum with frozen constants, not the mean of two ranks: an optimizer observes a
 * candidate's score once, and a score must not change when later candidates arrive (a
 * rank does).  mean and sd are fixed once per search, before phase 2, from the NASWOT
 * scores of its first phase-1 (tiering) samples — a scrambled-Sobol sample of the whole
 * space, NAS_NORM_SAMPLES at most — computed by the coordinator and kept in the store's
 * meta ("nas.naswot_norm": "mean,sd,n"; put once, so a resumed search and every
 * process read the same).  Each candidate's NASWOT is computed by the worker that
 * trains it (at every fidelity level), before training, on the search's training split,
 * and committed with its accuracy (gn_trial.naswot).  The score is then a function of
 * stored values alone, so the replay of a resumed search observes what the first run
 * did.
 *
 * NASWOT of one network is the mean over NAS_NASWOT_REPEATS initialisations and batches
 * of 64 (seeds seed, seed+1, ...; gn_naswot_on_data), as bench/proxy_fidelity.py
 * measured it (`gpunas zerocost`, 3 repeats), on one thread whatever the training
 * threads: a batch-64 forward is small (about 0.3 s per network here), and the value
 * then does not depend on the load or the worker's threads, so a promotion (which
 * computes it again) gets its parent's value exactly.  Every level of a ladder (successive
 * halving) ranks by the same score: NASWOT lifted every proxy budget measured (1x5000
 * 0.35 -> 0.53, 1x15000 0.54 -> 0.60, 3x5000 0.47 -> 0.60).  A row without a NASWOT
 * (trained by an older gpunas) scores as the mean (z = 0).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "gpunas/backend.h"
#include "gpunas/train.h"
#include "nas/nas_internal.h"
#include "util/clock.h"

#define NAS_NORM_SAMPLES 48
#define NAS_NASWOT_REPEATS 3
#define NAS_NASWOT_BATCH 64
#define NORM_KEY "nas.naswot_norm"

const char *gn_nas_score_name(int kind)
{
    return kind == GN_NAS_SCORE_NASWOT ? "acc+naswot" : "acc";
}

int gn_nas_score_parse(const char *text, int *kind)
{
    if (text && strcmp(text, "acc") == 0)
        *kind = GN_NAS_SCORE_ACC;
    else if (text && strcmp(text, "acc+naswot") == 0)
        *kind = GN_NAS_SCORE_NASWOT;
    else
        return -1;
    return 0;
}

double gn_nas_score(const gn_nas_scorer *sc, const gn_trial *t)
{
    if (!sc || sc->kind != GN_NAS_SCORE_NASWOT || !(sc->sd > 0) || !isfinite(t->naswot))
        return t->val_acc;
    return t->val_acc + sc->weight / 100.0 * (t->naswot - sc->mean) / sc->sd;
}

static int parse_norm(const char *text, gn_nas_scorer *sc)
{
    double m, sd;
    int n;
    if (!text || sscanf(text, "%lf,%lf,%d", &m, &sd, &n) != 3 || !isfinite(m) || !(sd > 0) || !isfinite(sd) ||
        n < 2)
        return -1;
    sc->mean = m;
    sc->sd = sd;
    sc->n_norm = n;
    return 0;
}

int gn_nas_scorer_load(gn_store *store, gn_nas_scorer *sc, gn_error *err)
{
    memset(sc, 0, sizeof *sc);
    sc->kind = GN_NAS_SCORE_ACC;
    json_t *o;
    if (gn__nas_settings_load(store, (void **)&o, err))
        return -1;
    json_t *k = json_object_get(o, "score"), *w = json_object_get(o, "naswot_weight");
    if (json_is_string(k) && gn_nas_score_parse(json_string_value(k), &sc->kind)) {
        json_decref(o);
        return gn_error_set(err, "%s: meta 'nas.settings': field 'score': unknown kind '%s'", gn_store_where(store),
                            json_string_value(k));
    }
    sc->weight = json_is_number(w) ? json_number_value(w) : 1.0;
    json_decref(o);
    if (sc->kind != GN_NAS_SCORE_NASWOT)
        return 0;
    char *text = NULL;
    int g = gn_store_get_meta(store, NORM_KEY, &text, err);
    if (g < 0)
        return -1;
    if (g == 0 && parse_norm(text, sc)) {
        gn_error_set(err, "%s: meta '%s' is not 'mean,sd,n' with sd > 0: '%s'", gn_store_where(store), NORM_KEY, text);
        free(text);
        return -1;
    }
    free(text);
    return 0; /* no normalisation yet (stopped during tiering): scores are accuracies */
}

int gn__nas_naswot(const gn_nas_config *c, const gn_arch *a, double *score, gn_error *err)
{
    gn_dataset_view tr = {0}, val = {0};
    gn_backend *be = NULL;
    int rc = -1;
    double sum = 0;
    if (gn_view_split(c->train_set, c->val_fraction, c->split_seed, &tr, &val, err) ||
        gn_backend_create(c->backend ? c->backend : "dnnl", &be, err) ||
        gn_backend_set_threads(be, 1, err))
        goto out;
    for (int r = 0; r < NAS_NASWOT_REPEATS; r++) {
        double v;
        if (gn_naswot_on_data(a, be, &tr, NAS_NASWOT_BATCH, c->seed + (uint64_t)r, NULL, &v, NULL, err))
            goto out;
        if (!isfinite(v)) {
            gn_error_set(err, "naswot: the score is not finite (%g): the activation patterns are degenerate", v);
            goto out;
        }
        sum += v;
    }
    *score = sum / NAS_NASWOT_REPEATS;
    rc = 0;
out:
    gn_backend_destroy(be);
    gn_view_free(&tr);
    gn_view_free(&val);
    return rc;
}

/* mean and sd of the NASWOT scores of the first phase-1 samples (by seq) */
static int compute_norm(nas_state *s, char *text, size_t n, gn_error *err)
{
    const gn_nas_config *c = s->c;
    gn_trial_filter f;
    gn_trial_filter_init(&f);
    gn_trial_list l = {0};
    if (gn_store_list_trials(c->store, &f, &l, err))
        return -1;
    double sum = 0, sum2 = 0;
    int k = 0, rc = 0;
    for (int64_t i = 0; i < l.n && k < NAS_NORM_SAMPLES && !rc; i++) {
        const gn_trial *t = &l.items[i];
        if (!t->optimizer || strcmp(t->optimizer, NAS_TIERING) != 0)
            continue;
        int x[GN_ENC_MAX_DIMS];
        gn_arch *a = NULL;
        gn_error e;
        double v;
        if (gn_space_parse_string(c->space, t->encoding, x, &e) || gn_space_decode(c->space, x, &a, &e) ||
            gn__nas_naswot(c, a, &v, &e)) {
            /* a sample that is no network or has no score says nothing of the scale */
            gn_arch_free(a);
            continue;
        }
        gn_arch_free(a);
        sum += v;
        sum2 += v * v;
        k++;
    }
    gn_trial_list_free(&l);
    if (k < 2)
        return gn_error_set(err, "search: score acc+naswot: only %d of the tiering samples have a NASWOT score "
                                 "(at least 2 are needed to normalise it)", k);
    double mean = sum / k, var = (sum2 - k * mean * mean) / (k - 1);
    double sd = var > 0 ? sqrt(var) : 0;
    if (!(sd > 0))
        return gn_error_set(err, "search: score acc+naswot: the %d tiering samples have one NASWOT score (%g): "
                                 "nothing to normalise by",
                            k, mean);
    snprintf(text, n, "%.17g,%.17g,%d", mean, sd, k);
    return 0;
}

int gn__nas_score_setup(nas_state *s, gn_error *err)
{
    const gn_nas_config *c = s->c;
    memset(&s->scorer, 0, sizeof s->scorer);
    s->scorer.kind = c->score;
    s->scorer.weight = c->naswot_weight;
    if (c->score != GN_NAS_SCORE_NASWOT)
        return 0;
    char *stored = NULL;
    int g = gn_store_get_meta(c->store, NORM_KEY, &stored, err);
    if (g < 0)
        return -1;
    if (g == 1) {
        char text[128];
        double t0 = gn__now_s();
        if (compute_norm(s, text, sizeof text, err))
            return -1;
        if (gn_store_put_meta_once(c->store, NORM_KEY, text, &stored, err) < 0)
            return -1;
        if (!stored && !(stored = strdup(text)))
            return gn_error_set(err, "search: out of memory");
        gn__nas_event(s->cb, GN_NAS_EV_INFO, NULL, 0, 0,
                      "score acc+naswot: NASWOT normalised on tiering samples (mean, sd, n: %s; %.1f s); "
                      "score = val acc + %g point(s) per sd",
                      stored, gn__now_s() - t0, c->naswot_weight);
    }
    int rc = parse_norm(stored, &s->scorer);
    if (rc)
        gn_error_set(err, "%s: meta '%s' is not 'mean,sd,n' with sd > 0: '%s'", gn_store_where(c->store), NORM_KEY,
                     stored);
    free(stored);
    return rc;
}
