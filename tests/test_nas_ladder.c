/* test_nas_ladder.c — successive halving inside each tier (gpunas/nas.h,
 * "Multi-fidelity"; nas_ladder.c): the fidelity spec, a whole tiny search with a
 * 3-level ladder through the CLI, and kill -9 while a promotion is being trained
 * followed by --resume.  After every search the store must hold a ladder that obeys
 * the rule, checked from the rows alone:
 *   - a level-L row (L >= 1) promotes a trained level-0 proposal of the same tier and
 *     network (its parent), which has a level L-1 result, and (parent, level) is unique;
 *   - in every tier and level l, the top floor(n_l / eta) of the n_l results (by the
 *     search's score, ties to the older trial) were promoted to level l+1;
 *   - every tier that trained something reached the top level;
 *   - summary.json's tier winner is the best of the top level.
 * The score (gpunas/nas.h, "Proxy score") is recomputed here from the rows: the first
 * search scores "acc+naswot" (the default), so every trained row carries a NASWOT, the
 * normalisation in the store's meta is recomputed from the tiering samples with
 * gn_naswot_on_data on the search's training split, and one row's NASWOT likewise; the
 * kill/resume search scores "acc" (the accuracy alone).
 * The searches run with --threads 1 so that parallel CTest jobs do not oversubscribe. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpunas/backend.h"
#include "gpunas/data.h"
#include "gpunas/nas.h"
#include "gpunas/space.h"
#include "gpunas/store.h"
#include "gpunas/train.h"
#include "testutil.h"

#define FID "sh:1x96,1x192,2x192/2"
#define ETA 2
#define LEVELS 3
#define ARGS                                                                                                        \
    "--prune-samples 8 --trials 8 --proxy-batch 32 --lat-runs 5 --val-fraction 0.005 --threads 1 "               \
    "--lat-threads 1 --lat-duration 0 --tiers auto:2 --seed 5 --quiet --fidelity " FID

static void test_fidelity_spec(void **state)
{
    (void)state;
    gn_nas_config c;
    gn_error err = {{0}};
    gn_nas_defaults(&c);
    assert_int_equal(gn_nas_parse_fidelity("sh:1x5000,2x15000,4x0", &c, &err), 0);
    assert_int_equal(c.fid_levels, 3);
    assert_int_equal(c.fid_eta, 3);
    assert_true(c.fid_epochs[2] == 4 && c.fid_subset[2] == 0 && c.fid_subset[1] == 15000);
    assert_true(c.proxy_epochs == 1 && c.proxy_subset == 5000); /* level 0 is the proxy */
    char buf[160];
    gn_nas_fidelity_text(&c, buf, sizeof buf);
    assert_string_equal(buf, "sh:1x5000,2x15000,4x0/3");
    assert_int_equal(gn_nas_parse_fidelity("sh:1x100,1x200/4", &c, &err), 0);
    assert_true(c.fid_levels == 2 && c.fid_eta == 4);
    assert_int_equal(gn_nas_parse_fidelity("none", &c, &err), 0);
    assert_int_equal(c.fid_levels, 0);
    gn_nas_fidelity_text(&c, buf, sizeof buf);
    assert_string_equal(buf, "none");
    const char *bad[] = {"",          "sh:",          "sh:1x5000",        "sh:2x5000,1x5000", "sh:1x5000,1x5000",
                         "sh:1x0,1x5000", "sh:1x10,2x10/1", "sh:1x10,2x10/", "sh:1x10;2x10",  "hb:1x10,2x10",
                         "sh:0x10,1x10", "sh:1x-5,1x10", "sh:1x1,1x2,1x3,1x4,1x5,1x6,1x7,1x8,1x9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.msg[0] = 0;
        gn_nas_defaults(&c);
        if (gn_nas_parse_fidelity(bad[i], &c, &err) == 0)
            fail_msg("'%s' was accepted", bad[i]);
        assert_non_null(strstr(err.msg, "fidelity"));
        assert_null(strchr(err.msg, '\n'));
        assert_int_equal(c.fid_levels, 0); /* nothing half-set */
    }
    /* the CLI: a bad spec, and the proxy budget given twice */
    char *errs = NULL;
    assert_int_equal(tu_run_cli("search --fidelity sh:2x10,1x10", NULL, &errs), 2);
    assert_non_null(strstr(errs, "does not cost more"));
    free(errs);
    assert_int_equal(tu_run_cli("search --proxy-epochs 2 --fidelity sh:1x10,2x10", NULL, &errs), 2);
    assert_non_null(strstr(errs, "--proxy-epochs and --fidelity"));
    free(errs);
}

/* ------------------------------------------------------------------ the ladder's rule */
/* the search's score, as the test reads it from the store: kind, weight, normalisation */
static struct {
    int naswot;
    double w, mean, sd;
} S;

static double score_of(const gn_trial *t)
{
    if (!S.naswot)
        return t->val_acc;
    if (!isfinite(t->naswot))
        fail_msg("trial #%lld (level %d) was trained in an acc+naswot search but has no NASWOT", (long long)t->id,
                 t->level);
    return t->val_acc + S.w / 100.0 * (t->naswot - S.mean) / S.sd;
}

static int by_score(const void *a, const void *b)
{
    const gn_trial *x = *(const gn_trial *const *)a, *y = *(const gn_trial *const *)b;
    double sx = score_of(x), sy = score_of(y);
    if (sx != sy)
        return sx > sy ? -1 : 1;
    int64_t px = x->level ? x->parent : x->id, py = y->level ? y->parent : y->id;
    return px < py ? -1 : px > py;
}

static const gn_trial *find(const gn_trial_list *l, int64_t parent, int level)
{
    for (int64_t i = 0; i < l->n; i++) {
        const gn_trial *t = &l->items[i];
        if (level == 0 ? t->id == parent && t->level == 0 : t->parent == parent && t->level == level)
            return t;
    }
    return NULL;
}

static int is_repeat(const gn_trial *t) { return t->error && strncmp(t->error, "same network", 12) == 0; }

/* Check the ladder in the store at db; returns the number of promotion rows. */
static int check_ladder(const char *db, int64_t *winner, double *winner_acc, int n_winner)
{
    gn_store *st;
    gn_error err;
    assert_int_equal(gn_store_open(db, 0, &st, &err), 0);
    gn_trial_filter f;
    gn_trial_filter_init(&f);
    f.level = GN_LEVEL_ANY;
    gn_trial_list l;
    assert_int_equal(gn_store_list_trials(st, &f, &l, &err), 0);
    char *settings = NULL, *norm = NULL;
    assert_int_equal(gn_store_get_meta(st, "nas.settings", &settings, &err), 0);
    json_t *so = json_loads(settings, 0, NULL);
    assert_non_null(so);
    json_t *kind = json_object_get(so, "score");
    S.naswot = kind && !strcmp(json_string_value(kind), "acc+naswot");
    S.w = S.naswot ? json_number_value(json_object_get(so, "naswot_weight")) : 0;
    json_decref(so);
    free(settings);
    int n_norm = 0;
    if (S.naswot) {
        assert_int_equal(gn_store_get_meta(st, "nas.naswot_norm", &norm, &err), 0);
        assert_int_equal(sscanf(norm, "%lf,%lf,%d", &S.mean, &S.sd, &n_norm), 3);
        assert_true(S.sd > 0 && n_norm == 8); /* every tiering sample (8 < 48) */
        free(norm);
    } else {
        assert_int_equal(gn_store_get_meta(st, "nas.naswot_norm", &norm, &err), 1); /* none: not needed */
    }
    gn_store_close(st);
    int promos = 0;
    for (int64_t i = 0; i < l.n; i++) {
        const gn_trial *t = &l.items[i];
        assert_true(t->status == GN_TRIAL_DONE || t->status == GN_TRIAL_FAILED || t->status == GN_TRIAL_PRUNED);
        if (t->level == 0)
            continue;
        promos++;
        assert_true(t->level < LEVELS);
        const gn_trial *p = find(&l, t->parent, 0);
        assert_non_null(p);
        assert_int_equal(p->status, GN_TRIAL_DONE);
        assert_false(is_repeat(p));
        assert_string_equal(p->encoding, t->encoding);
        assert_int_equal(p->tier, t->tier);
        const gn_trial *below = find(&l, t->parent, t->level - 1);
        assert_non_null(below);
        assert_int_equal(below->status, GN_TRIAL_DONE);
        assert_true(below->id < t->id); /* promoted after its result */
        for (int64_t j = 0; j < i; j++)
            assert_false(l.items[j].level == t->level && l.items[j].parent == t->parent);
    }
    const gn_trial **r = calloc((size_t)l.n + 1, sizeof *r);
    assert_non_null(r);
    for (int tier = 0; tier < n_winner; tier++) {
        winner[tier] = 0;
        int top_reached = 0, trained0 = 0;
        for (int lv = 0; lv < LEVELS; lv++) {
            int n = 0;
            for (int64_t i = 0; i < l.n; i++) {
                const gn_trial *t = &l.items[i];
                if (t->level == lv && t->tier == tier && t->status == GN_TRIAL_DONE && !is_repeat(t) &&
                    !(t->optimizer && !strcmp(t->optimizer, "tiering")))
                    r[n++] = t;
            }
            if (lv == 0)
                trained0 = n;
            qsort(r, n, sizeof *r, by_score);
            if (lv + 1 < LEVELS)
                for (int k = 0; k < n / ETA; k++) {
                    int64_t pid = lv ? r[k]->parent : r[k]->id;
                    if (!find(&l, pid, lv + 1))
                        fail_msg("tier %d level %d: #%lld is in the top %d of %d but was not promoted", tier, lv,
                                 (long long)pid, n / ETA, n);
                }
            if (lv == LEVELS - 1 && n > 0) {
                top_reached = 1;
                winner[tier] = r[0]->parent;
                winner_acc[tier] = r[0]->val_acc;
            }
        }
        if (trained0 > 0 && !top_reached)
            fail_msg("tier %d trained %d candidates but its ladder has no top-level result", tier, trained0);
    }
    free(r);
    gn_trial_list_free(&l);
    return promos;
}

/* NASWOT of an encoding as the search computes it (nas_score.c): the mean of 3 seeds from
 * the search's seed (5), batches of 64 of its training split (val fraction 0.005, split
 * seed 42), 1 thread */
static double naswot_of(const gn_space *sp, const gn_dataset_view *tr, gn_backend *be, const char *enc)
{
    int x[GN_ENC_MAX_DIMS];
    gn_arch *a = NULL;
    gn_error err;
    assert_int_equal(gn_space_parse_string(sp, enc, x, &err), 0);
    assert_int_equal(gn_space_decode(sp, x, &a, &err), 0);
    double sum = 0;
    for (int r = 0; r < 3; r++) {
        double v;
        if (gn_naswot_on_data(a, be, tr, 64, 5 + (uint64_t)r, NULL, &v, NULL, &err))
            fail_msg("naswot: %s", err.msg);
        sum += v;
    }
    gn_arch_free(a);
    return sum / 3;
}

/* The stored normalisation and one trained row's NASWOT, recomputed. */
static void check_naswot(const char *db)
{
    gn_store *st;
    gn_error err;
    assert_int_equal(gn_store_open(db, 0, &st, &err), 0);
    gn_trial_filter f;
    gn_trial_filter_init(&f);
    gn_trial_list l;
    assert_int_equal(gn_store_list_trials(st, &f, &l, &err), 0);
    char *norm = NULL;
    assert_int_equal(gn_store_get_meta(st, "nas.naswot_norm", &norm, &err), 0);
    gn_store_close(st);
    double mean, sd;
    int n;
    assert_int_equal(sscanf(norm, "%lf,%lf,%d", &mean, &sd, &n), 3);
    free(norm);
    gn_space *sp;
    gn_dataset *d;
    gn_dataset_view tr = {0}, val = {0};
    gn_backend *be;
    assert_int_equal(gn_space_builtin("fmnist", &sp, &err), 0);
    assert_int_equal(gn_dataset_load("fashion-mnist", NULL, "train", 0, &d, &err), 0);
    assert_int_equal(gn_view_split(d, 0.005, 42, &tr, &val, &err), 0);
    assert_int_equal(gn_backend_create("dnnl", &be, &err), 0);
    assert_int_equal(gn_backend_set_threads(be, 1, &err), 0);
    double v[8], sum = 0, ss = 0;
    int k = 0;
    const gn_trial *trained = NULL;
    for (int64_t i = 0; i < l.n; i++) {
        const gn_trial *t = &l.items[i];
        if (t->optimizer && !strcmp(t->optimizer, "tiering") && k < 8) {
            v[k] = naswot_of(sp, &tr, be, t->encoding);
            sum += v[k++];
        } else if (!trained && t->status == GN_TRIAL_DONE && !is_repeat(t)) {
            trained = t;
        }
    }
    assert_int_equal(k, n);
    for (int i = 0; i < k; i++)
        ss += (v[i] - sum / k) * (v[i] - sum / k);
    if (fabs(mean - sum / k) > 1e-9 * fabs(mean) || fabs(sd - sqrt(ss / (k - 1))) > 1e-6 * sd)
        fail_msg("stored NASWOT normalisation %.10g, %.10g; recomputed %.10g, %.10g", mean, sd, sum / k,
                 sqrt(ss / (k - 1)));
    assert_non_null(trained);
    double nw = naswot_of(sp, &tr, be, trained->encoding);
    if (fabs(nw - trained->naswot) > 1e-9 * fabs(nw))
        fail_msg("trial #%lld: stored NASWOT %.10g, recomputed %.10g", (long long)trained->id, trained->naswot, nw);
    gn_backend_destroy(be);
    gn_view_free(&tr);
    gn_view_free(&val);
    gn_dataset_free(d);
    gn_space_free(sp);
    gn_trial_list_free(&l);
}

static void check_summary(const char *dir, const int64_t *winner, const double *winner_acc)
{
    char path[2200];
    snprintf(path, sizeof path, "%s/summary.json", dir);
    json_error_t je;
    json_t *sj = json_load_file(path, 0, &je);
    assert_non_null(sj);
    assert_string_equal(json_string_value(json_object_get(sj, "fidelity")), FID);
    json_t *tiers = json_object_get(sj, "tiers");
    for (size_t i = 0; i < json_array_size(tiers); i++) {
        json_t *t = json_array_get(tiers, i);
        json_t *ladder = json_object_get(t, "ladder");
        assert_int_equal(json_array_size(ladder), LEVELS);
        if (!winner[i])
            continue;
        assert_int_equal(json_integer_value(json_object_get(t, "trial")), winner[i]);
        assert_int_equal(json_integer_value(json_object_get(t, "level")), LEVELS - 1);
        assert_true(json_real_value(json_object_get(t, "val_acc")) == winner_acc[i]);
        json_t *top = json_array_get(ladder, LEVELS - 1);
        assert_int_equal(json_integer_value(json_object_get(top, "best_trial")), winner[i]);
        assert_int_equal(json_integer_value(json_object_get(top, "epochs")), 2);
    }
    json_decref(sj);
}

static int count_rows(const char *db)
{
    gn_store *st;
    gn_error err;
    assert_int_equal(gn_store_open(db, 0, &st, &err), 0);
    gn_trial_filter f;
    gn_trial_filter_init(&f);
    f.level = GN_LEVEL_ANY;
    int64_t n = 0;
    assert_int_equal(gn_store_count_trials(st, &f, &n, &err), 0);
    gn_store_close(st);
    return (int)n;
}

static void test_ladder_search(void **state)
{
    (void)state;
    char *dir = tu_tmp_path("nas-ladder");
    char cmd[2400], db[2200], *out = NULL, *errs = NULL;
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    snprintf(db, sizeof db, "%s/search.db", dir);
    /* NASWOT weighs 100 points per sd here, so that it, not the accuracy, orders the
     * rungs: a wrong score (sign, scale, normalisation) breaks the rule check below */
    snprintf(cmd, sizeof cmd, "search --out %s " ARGS " --naswot-weight 100", dir);
    int rc = tu_run_cli(cmd, &out, &errs);
    if (rc != 0)
        fail_msg("search failed (%d): %s", rc, errs ? errs : "");
    assert_non_null(strstr(out, "promotion ladder (successive halving " FID));
    assert_non_null(strstr(out, "promoted: t"));
    free(out), free(errs);
    int64_t winner[2];
    double acc[2];
    int promos = check_ladder(db, winner, acc, 2);
    assert_true(S.naswot && S.w == 100); /* the default score, with this weight */
    check_naswot(db);
    assert_true(promos >= 2); /* 8 candidates, eta 2: at least one tier climbs */
    assert_true(winner[0] > 0 || winner[1] > 0);
    check_summary(dir, winner, acc);
    /* `gpunas trials` shows the proposals by default, every level with --levels */
    snprintf(cmd, sizeof cmd, "trials %s --json", db);
    assert_int_equal(tu_run_cli(cmd, &out, NULL), 0);
    json_t *rows = json_loads(out, 0, NULL);
    free(out);
    size_t n_default = json_array_size(rows);
    json_decref(rows);
    snprintf(cmd, sizeof cmd, "trials %s --json --levels", db);
    assert_int_equal(tu_run_cli(cmd, &out, NULL), 0);
    rows = json_loads(out, 0, NULL);
    free(out);
    assert_int_equal(json_array_size(rows), n_default + (size_t)promos);
    json_decref(rows);
    /* --resume of the finished search without --fidelity or a score: the stored ladder
     * and score (weight 100, not the default 1), nothing new */
    int before = count_rows(db);
    snprintf(cmd, sizeof cmd,
             "search --out %s --prune-samples 8 --trials 8 --proxy-batch 32 --lat-runs 5 --val-fraction 0.005 "
             "--threads 1 --lat-threads 1 --lat-duration 0 --tiers auto:2 --seed 5 --quiet --resume",
             dir);
    rc = tu_run_cli(cmd, &out, &errs);
    if (rc != 0)
        fail_msg("resume failed (%d): %s", rc, errs ? errs : "");
    assert_non_null(strstr(out, "promotion ladder"));
    assert_non_null(strstr(out, "val acc + 100 point(s) per standard deviation"));
    free(out), free(errs);
    /* naming another score or weight: refused, naming the setting */
    const char *other[][2] = {{"--score acc", "score is \"acc\" here but \"acc+naswot\" in the store"},
                              {"--naswot-weight 2", "different settings: naswot_weight is 2"}};
    for (int k = 0; k < 2; k++) {
        snprintf(cmd, sizeof cmd,
                 "search --out %s --prune-samples 8 --trials 8 --proxy-batch 32 --lat-runs 5 --val-fraction 0.005 "
                 "--threads 1 --lat-threads 1 --lat-duration 0 --tiers auto:2 --seed 5 --quiet --resume %s",
                 dir, other[k][0]);
        assert_int_equal(tu_run_cli(cmd, NULL, &errs), 1);
        if (!strstr(errs, other[k][1]))
            fail_msg("resume %s: expected '%s', got: %s", other[k][0], other[k][1], errs);
        free(errs);
    }
    assert_int_equal(count_rows(db), before);
    assert_int_equal(count_rows(db), before);
    /* another ladder: refused */
    snprintf(cmd, sizeof cmd,
             "search --out %s --prune-samples 8 --trials 8 --proxy-batch 32 --lat-runs 5 --val-fraction 0.005 "
             "--threads 1 --lat-threads 1 --lat-duration 0 --tiers auto:2 --seed 5 --quiet --resume "
             "--naswot-weight 100 --fidelity sh:1x96,2x192/2",
             dir);
    assert_int_equal(tu_run_cli(cmd, NULL, &errs), 1);
    assert_non_null(strstr(errs, "different settings: fidelity"));
    free(errs);
    free(dir);
}

static int proc_alive(pid_t pid) { return kill(pid, 0) == 0; }

static void test_ladder_kill_resume(void **state)
{
    (void)state;
    char *dir = tu_tmp_path("nas-ladder-kill");
    char cmd[4096], db[2200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    snprintf(db, sizeof db, "%s/search.db", dir);
    snprintf(cmd, sizeof cmd, "search --out %s " ARGS " --score acc", dir);
    long pid = tu_spawn_cli(cmd);
    assert_true(pid > 0);
    /* kill -9 while a promotion is being trained */
    int killed = 0;
    for (int tick = 0; tick < 6000 && !killed && proc_alive((pid_t)pid); tick++) {
        usleep(10000);
        struct stat sb;
        gn_store *st;
        gn_error err;
        if (stat(db, &sb) != 0 || gn_store_open(db, 0, &st, &err))
            continue;
        gn_trial_filter f;
        gn_trial_filter_init(&f);
        f.level = GN_LEVEL_ANY;
        f.status = GN_TRIAL_LEASED;
        gn_trial_list l = {0};
        if (gn_store_list_trials(st, &f, &l, &err) == 0) {
            for (int64_t i = 0; i < l.n && !killed; i++)
                if (l.items[i].level >= 1) {
                    kill((pid_t)pid, SIGKILL);
                    killed = 1;
                }
            gn_trial_list_free(&l);
        }
        gn_store_close(st);
    }
    if (!killed)
        fail_msg("the search ended before a promotion could be killed mid-training");
    for (int i = 0; i < 500 && proc_alive((pid_t)pid); i++)
        usleep(10000);
    int before = count_rows(db);
    char *out = NULL, *errs = NULL;
    /* the resume names no score: a search whose settings record has none (scored "acc",
     * or made before the score existed) continues scoring by accuracy */
    snprintf(cmd, sizeof cmd, "search --out %s " ARGS " --resume", dir);
    int rc = tu_run_cli(cmd, &out, &errs);
    if (rc != 0)
        fail_msg("resume failed (%d): %s", rc, errs ? errs : "");
    free(out), free(errs);
    assert_true(count_rows(db) >= before);
    int64_t winner[2];
    double acc[2];
    assert_true(check_ladder(db, winner, acc, 2) >= 1); /* unique (parent, level), the rule, all final */
    assert_false(S.naswot); /* scored by accuracy alone */
    check_summary(dir, winner, acc);
    /* a resume naming the default score (or a weight) for it: refused, not scored by
     * accuracy silently */
    const char *named[] = {"--score acc+naswot", "--naswot-weight 1"};
    for (int k = 0; k < 2; k++) {
        snprintf(cmd, sizeof cmd, "search --out %s " ARGS " --resume %s", dir, named[k]);
        assert_int_equal(tu_run_cli(cmd, NULL, &errs), 1);
        if (!strstr(errs, "score is \"acc+naswot\" here but \"acc\" in the store"))
            fail_msg("resume %s: %s", named[k], errs);
        free(errs);
    }
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fidelity_spec),
        cmocka_unit_test(test_ladder_search),
        cmocka_unit_test(test_ladder_kill_resume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
