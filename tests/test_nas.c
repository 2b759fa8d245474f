/* test_nas.c — the search loop (gpunas/nas.h): tier parsing and auto tiers, a whole
 * tiny search through the CLI (summary table, winner files, the store), refusal of a
 * resume with other settings, and kill -9 in the middle of a trial followed by
 * --resume: no finished trial lost or changed, the interrupted one finished under its
 * own id, none repeated, the budget met exactly.
 * The searches run with --threads 1 so that parallel CTest jobs do not oversubscribe
 * the cores (latencies would only be noisier; the test asserts no latency values). */
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

#include "gpunas/nas.h"
#include "gpunas/store.h"
#include "testutil.h"

static void test_tiers(void **state)
{
    (void)state;
    double e[GN_NAS_MAX_TIERS];
    int n, k;
    gn_error err = {{0}};
    assert_int_equal(gn_nas_parse_tiers("0.5,1,2", e, &n, &k, &err), 0);
    assert_int_equal(n, 3);
    assert_true(e[0] == 0.5 && e[1] == 1.0 && e[2] == 2.0);
    assert_int_equal(gn_nas_tier_of(e, n, 0.5), 0); /* upper edge belongs to the tier */
    assert_int_equal(gn_nas_tier_of(e, n, 0.51), 1);
    assert_int_equal(gn_nas_tier_of(e, n, 2.0), 2);
    assert_int_equal(gn_nas_tier_of(e, n, 2.01), -1);
    /* with a 5% margin: tier 1 is (0.525, 0.95]; the bands around the edges are no tier */
    assert_int_equal(gn_nas_tier_inside(e, n, 0.40, 0.05), 0);
    assert_int_equal(gn_nas_tier_inside(e, n, 0.48, 0.05), GN_NAS_TIER_BAND);
    assert_int_equal(gn_nas_tier_inside(e, n, 0.52, 0.05), GN_NAS_TIER_BAND);
    assert_int_equal(gn_nas_tier_inside(e, n, 0.53, 0.05), 1);
    assert_int_equal(gn_nas_tier_inside(e, n, 0.95, 0.05), 1);
    assert_int_equal(gn_nas_tier_inside(e, n, 0.96, 0.05), GN_NAS_TIER_BAND);
    assert_int_equal(gn_nas_tier_inside(e, n, 1.99, 0.05), GN_NAS_TIER_BAND);
    assert_int_equal(gn_nas_tier_inside(e, n, 2.5, 0.05), -1);
    assert_int_equal(gn_nas_tier_inside(e, n, 0.01, 0.05), 0); /* tier 0 has no lower band */
    assert_int_equal(gn_nas_tier_inside(e, n, 0.5, 0.0), 0);   /* no margin: gn_nas_tier_of */
    assert_int_equal(gn_nas_tier_of(e, n, NAN), -1);
    assert_int_equal(gn_nas_parse_tiers("auto", e, &n, &k, &err), 0);
    assert_true(n == 0 && k == 3);
    assert_int_equal(gn_nas_parse_tiers("auto:5", e, &n, &k, &err), 0);
    assert_true(n == 0 && k == 5);
    const char *bad[] = {"", "1,0.5", "0.5,,1", "-1", "1,x", "auto:0", "auto:99", "autox", "0.5;1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.msg[0] = 0;
        assert_int_not_equal(gn_nas_parse_tiers(bad[i], e, &n, &k, &err), 0);
        assert_non_null(strstr(err.msg, "tiers"));
        assert_null(strchr(err.msg, '\n'));
    }
    /* auto: 100 latencies 0.01..1.00 ms; 3 tiers at the 30/60/90 % quantiles */
    double lat[100];
    for (int i = 0; i < 100; i++)
        lat[99 - i] = 0.01 * (i + 1);
    assert_int_equal(gn_nas_auto_tiers(lat, 100, 3, e, &err), 0);
    assert_true(fabs(e[0] - 0.31) < 1e-12 && fabs(e[1] - 0.60) < 1e-12 && fabs(e[2] - 0.90) < 1e-12);
    assert_int_not_equal(gn_nas_auto_tiers(lat, 2, 3, e, &err), 0);
    /* identical latencies still give increasing edges */
    double same[10];
    for (int i = 0; i < 10; i++)
        same[i] = 0.2;
    assert_int_equal(gn_nas_auto_tiers(same, 10, 3, e, &err), 0);
    assert_true(e[0] < e[1] && e[1] < e[2]);
}

#define ARGS                                                                                                        \
    "--prune-samples 8 --trials 6 --proxy-subset 96 --proxy-batch 32 --lat-runs 5 --val-fraction 0.005 --threads 1 " \
    "--lat-threads 1 --lat-duration 0 --tiers auto:2 --seed 3 --quiet"

typedef struct {
    int64_t id;
    int status;
    char enc[512];
    double acc;
    char opt[64];
    int reused; /* done as a repeat of an earlier trained network (not trained again) */
} row;

static int read_rows(const char *db, row *rows, int max)
{
    gn_store *st;
    gn_error err;
    if (gn_store_open(db, 0, &st, &err))
        return -1;
    gn_trial_filter f;
    gn_trial_filter_init(&f);
    gn_trial_list l;
    if (gn_store_list_trials(st, &f, &l, &err)) {
        gn_store_close(st);
        return -1;
    }
    int n = 0;
    for (int64_t i = 0; i < l.n && n < max; i++, n++) {
        rows[n].id = l.items[i].id;
        rows[n].status = l.items[i].status;
        snprintf(rows[n].enc, sizeof rows[n].enc, "%s", l.items[i].encoding);
        rows[n].acc = l.items[i].val_acc;
        snprintf(rows[n].opt, sizeof rows[n].opt, "%s", l.items[i].optimizer ? l.items[i].optimizer : "");
        rows[n].reused = l.items[i].error && strncmp(l.items[i].error, "same network", 12) == 0;
    }
    gn_trial_list_free(&l);
    gn_store_close(st);
    return n;
}

static int is_phase2(const row *r) { return strcmp(r->opt, "tiering") != 0; }

/* the unguided start of a new search: 2/5 of the per-tier budget, within 4..20 */
static void test_auto_opt_init(void **state)
{
    (void)state;
    assert_int_equal(gn_nas_auto_opt_init(30, 3), 4);   /* the main job: 10 per tier */
    assert_int_equal(gn_nas_auto_opt_init(31, 3), 4);   /* 11 per tier (ceil): 4.4 */
    assert_int_equal(gn_nas_auto_opt_init(36, 3), 5);   /* 12: 4.8 */
    assert_int_equal(gn_nas_auto_opt_init(90, 3), 12);
    assert_int_equal(gn_nas_auto_opt_init(150, 3), 20);
    assert_int_equal(gn_nas_auto_opt_init(3000, 3), 20); /* the optimizers' own default */
    assert_int_equal(gn_nas_auto_opt_init(6, 2), 4);
    assert_int_equal(gn_nas_auto_opt_init(0, 3), 4);
}

/* Set settings field `key` of the search in DIR to `value` (stolen), check that a
 * --resume then fails with both `want` and `want2` (NULL: none) in its error, and put
 * the settings back as they were. */
static void resume_edited(const char *dir, const char *key, json_t *value, const char *want, const char *want2)
{
    gn_store *st;
    gn_error err;
    char *v = NULL, *errs = NULL, dbp[2200], cmd[4096];
    snprintf(dbp, sizeof dbp, "%s/search.db", dir);
    assert_int_equal(gn_store_open(dbp, 0, &st, &err), 0);
    assert_int_equal(gn_store_get_meta(st, "nas.settings", &v, &err), 0);
    json_t *o = json_loads(v, 0, NULL);
    assert_non_null(o);
    json_object_set_new(o, key, value);
    char *edited = json_dumps(o, JSON_SORT_KEYS | JSON_COMPACT);
    assert_int_equal(gn_store_put_meta(st, "nas.settings", edited, &err), 0);
    snprintf(cmd, sizeof cmd, "search --out %s " ARGS " --resume", dir);
    assert_int_equal(tu_run_cli(cmd, NULL, &errs), 1);
    if (!strstr(errs, want) || (want2 && !strstr(errs, want2)))
        fail_msg("resume with settings field %s edited: %s", key, errs);
    free(errs);
    assert_int_equal(gn_store_put_meta(st, "nas.settings", v, &err), 0); /* as it was */
    gn_store_close(st);
    free(edited);
    free(v);
    json_decref(o);
}

static void test_search_cli(void **state)
{
    (void)state;
    char *dir = tu_tmp_path("nas-e2e");
    char cmd[2048], *out = NULL, *errs = NULL;
    snprintf(cmd, sizeof cmd, "search --out %s " ARGS, dir);
    char rm[2100];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    assert_int_equal(system(rm), 0);
    int rc = tu_run_cli(cmd, &out, &errs);
    if (rc != 0)
        fail_msg("search failed (%d): %s", rc, errs ? errs : "");
    assert_non_null(strstr(out, "best model per latency tier"));
    assert_non_null(strstr(out, "Pareto front"));
    assert_non_null(strstr(out, "tiers: t0 <="));
    /* summary.json names a file for each tier that has a trained model */
    char path[2200];
    snprintf(path, sizeof path, "%s/summary.json", dir);
    json_error_t je;
    json_t *sj = json_load_file(path, 0, &je);
    assert_non_null(sj);
    json_t *tiers = json_object_get(sj, "tiers");
    assert_int_equal(json_array_size(tiers), 2);
    int files = 0, trained = 0;
    for (size_t i = 0; i < json_array_size(tiers); i++) {
        json_t *t = json_array_get(tiers, i);
        trained += (int)json_integer_value(json_object_get(t, "trained"));
        const char *file = json_string_value(json_object_get(t, "file"));
        if (file) {
            snprintf(path, sizeof path, "info %s/%s", dir, file);
            char *o2 = NULL;
            assert_int_equal(tu_run_cli(path, &o2, NULL), 0); /* a valid GPUNet config */
            free(o2);
            files++;
            double acc = json_real_value(json_object_get(t, "val_acc"));
            assert_true(acc >= 0.0 && acc <= 1.0);
        }
    }
    assert_true(files >= 1);
    assert_int_equal((int)json_integer_value(json_object_get(sj, "trials_done")) +
                         (int)json_integer_value(json_object_get(sj, "trials_failed")),
                     6);
    assert_true(trained <= 6);
    json_decref(sj);
    free(out), free(errs);

    /* the store lists through `gpunas trials` */
    snprintf(cmd, sizeof cmd, "trials %s/search.db --status done", dir);
    assert_int_equal(tu_run_cli(cmd, &out, NULL), 0);
    assert_non_null(strstr(out, "done"));
    free(out);

    /* the latency conditions: the resolved threads and the reference baseline in the
     * meta, and every measured trial's conditions in latency_info */
    {
        gn_store *st;
        gn_error err;
        char *v = NULL;
        snprintf(path, sizeof path, "%s/search.db", dir);
        assert_int_equal(gn_store_open(path, 0, &st, &err), 0);
        assert_int_equal(gn_store_get_meta(st, "nas.lat_threads", &v, &err), 0);
        assert_string_equal(v, "1");
        free(v);
        assert_int_equal(gn_store_get_meta(st, "nas.lat_reference_ms", &v, &err), 0);
        assert_true(atof(v) > 0);
        free(v);
        assert_int_equal(gn_store_get_meta(st, "nas.settings", &v, &err), 0);
        assert_non_null(strstr(v, "\"lat_threads\":\"1\""));
        assert_non_null(strstr(v, "\"lat_pin\":true"));
        assert_non_null(strstr(v, "\"lat_reference\":true"));
        assert_null(strstr(v, "\"backend\"")); /* the default is not recorded: older stores resume */
        /* the unguided start, derived from the budget: 6 trials over 2 tiers is 3 per
         * tier, 2/5 of it is below the floor of 4 */
        assert_non_null(strstr(v, "\"opt_init\":4"));
        free(v);
        gn_trial_filter f;
        gn_trial_filter_init(&f);
        f.status = GN_TRIAL_PRUNED;
        gn_trial_list l;
        assert_int_equal(gn_store_list_trials(st, &f, &l, &err), 0);
        int with_info = 0;
        for (int64_t i = 0; i < l.n; i++) {
            if (!l.items[i].latency_info)
                continue;
            json_t *li = json_loads(l.items[i].latency_info, 0, &je);
            assert_non_null(li);
            assert_int_equal(json_integer_value(json_object_get(li, "threads")), 1);
            assert_int_equal(json_integer_value(json_object_get(li, "pinned")), 1);
            assert_true(json_real_value(json_object_get(li, "reference_ms")) > 0);
            assert_true(json_real_value(json_object_get(li, "reference_baseline_ms")) > 0);
            assert_true(json_integer_value(json_object_get(li, "attempts")) >= 1);
            json_decref(li);
            with_info++;
        }
        assert_true(with_info >= 1); /* cached repeats of a network carry none */
        gn_trial_list_free(&l);
        gn_store_close(st);
    }

    /* same store without --resume: refused; --resume with another seed: refused */
    snprintf(cmd, sizeof cmd, "search --out %s " ARGS, dir);
    assert_int_equal(tu_run_cli(cmd, NULL, &errs), 1);
    assert_non_null(strstr(errs, "holds a search already"));
    free(errs);
    snprintf(cmd, sizeof cmd, "search --out %s " ARGS " --resume --seed 4", dir);
    assert_int_equal(tu_run_cli(cmd, NULL, &errs), 1);
    assert_non_null(strstr(errs, "different settings: seed"));
    free(errs);
    snprintf(cmd, sizeof cmd, "search --out %s " ARGS " --resume --backend ref", dir);
    assert_int_equal(tu_run_cli(cmd, NULL, &errs), 1);
    assert_non_null(strstr(errs, "different settings: backend"));
    free(errs);
    /* and the other way: a store searched with --backend ref (recorded only when not the
     * default) refuses a resume that names none */
    resume_edited(dir, "backend", json_string("ref"),
                  "different settings: backend is the default here but \"ref\" in the store", NULL);
    assert_int_equal(tu_run_cli("search --backend cuda", NULL, &errs), 2);
    assert_non_null(strstr(errs, "'cuda' is not a backend"));
    free(errs);
    /* the unguided start is a setting: another one is refused ... */
    snprintf(cmd, sizeof cmd, "search --out %s " ARGS " --resume --opt-init 5", dir);
    assert_int_equal(tu_run_cli(cmd, NULL, &errs), 1);
    if (!strstr(errs, "different settings: opt_init is 5 here but 4 in the store"))
        fail_msg("resume with another --opt-init: %s", errs);
    free(errs);
    /* a stored opt_init that is not one: a one-line error naming the store and field */
    resume_edited(dir, "opt_init", json_string("four"), "field 'opt_init': not an integer", "search.db");
    /* --resume of a finished search: nothing more to train, same result */
    row before[256], after[256];
    snprintf(path, sizeof path, "%s/search.db", dir);
    int nb = read_rows(path, before, 256);
    snprintf(cmd, sizeof cmd, "search --out %s " ARGS " --resume", dir);
    assert_int_equal(tu_run_cli(cmd, &out, NULL), 0);
    free(out);
    int na = read_rows(path, after, 256);
    assert_int_equal(na, nb);
    /* ... and a resume given a larger budget keeps the stored one (derived from 60
     * trials it would be 12, and the replay would not reproduce the store); the time
     * budget stops it before it proposes anything new */
    snprintf(cmd, sizeof cmd, "search --out %s " ARGS " --resume --trials 60 --time-budget 0.000001", dir);
    assert_int_equal(tu_run_cli(cmd, &out, &errs), 0);
    if (!strstr(errs, "first 4 proposals per tier unguided") && !strstr(out, "first 4 proposals per tier unguided"))
        fail_msg("resume with a larger budget: %s", errs);
    free(out), free(errs);
    na = read_rows(path, after, 256);
    assert_int_equal(na, nb);
    /* bad options */
    assert_int_equal(tu_run_cli("search --tiers 2,1", NULL, &errs), 2);
    assert_non_null(strstr(errs, "edges must increase"));
    free(errs);
    assert_int_equal(tu_run_cli("search --optimizer bogus", NULL, &errs), 2);
    free(errs);
    assert_int_equal(tu_run_cli("search --space /nonexistent.json", NULL, &errs), 1);
    assert_non_null(strstr(errs, "/nonexistent.json"));
    free(errs);
    free(dir);
}

static int proc_alive(pid_t pid) { return kill(pid, 0) == 0; }

static int unfinished(int st)
{
    return st == GN_TRIAL_RUNNING || st == GN_TRIAL_QUEUED || st == GN_TRIAL_LEASED;
}

static void test_kill_and_resume(void **state)
{
    (void)state;
    char *dir = tu_tmp_path("nas-kill");
    char cmd[4096], db[2200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    snprintf(db, sizeof db, "%s/search.db", dir);
    snprintf(cmd, sizeof cmd, "search --out %s " ARGS, dir);
    long pid = tu_spawn_cli(cmd);
    assert_true(pid > 0);
    /* wait until phase 2 has >= 2 finished trials and one being evaluated (a job leased
     * by the search's own worker), then kill -9 */
    row rows[256];
    int killed = 0;
    for (int tick = 0; tick < 6000 && !killed; tick++) {
        usleep(20000);
        struct stat sb;
        if (stat(db, &sb) != 0)
            continue;
        int n = read_rows(db, rows, 256), fin = 0, run = 0;
        for (int i = 0; i < n; i++)
            if (is_phase2(&rows[i])) {
                fin += !unfinished(rows[i].status);
                run += rows[i].status == GN_TRIAL_LEASED;
            }
        if (fin >= 2 && run == 1) {
            kill((pid_t)pid, SIGKILL);
            killed = 1;
        }
        if (!proc_alive((pid_t)pid) && !killed)
            fail_msg("the search ended before it could be killed mid-trial");
    }
    assert_true(killed);
    for (int i = 0; i < 500 && proc_alive((pid_t)pid); i++)
        usleep(10000);
    row snap[256];
    int ns = read_rows(db, snap, 256);
    assert_true(ns > 0);
    int64_t running_id = 0;
    for (int i = 0; i < ns; i++)
        if (snap[i].status == GN_TRIAL_LEASED && is_phase2(&snap[i]))
            running_id = snap[i].id;
    assert_true(running_id > 0);

    char *out = NULL, *errs = NULL;
    snprintf(cmd, sizeof cmd, "search --out %s " ARGS " --resume", dir);
    int rc = tu_run_cli(cmd, &out, &errs);
    if (rc != 0)
        fail_msg("resume failed (%d): %s", rc, errs ? errs : "");
    assert_non_null(strstr(out, "unfinished trial(s) to wait for"));
    free(out), free(errs);

    row fin[256];
    int nf = read_rows(db, fin, 256);
    assert_true(nf >= ns);
    /* every row finished before the kill is unchanged */
    for (int i = 0; i < ns; i++) {
        assert_int_equal(fin[i].id, snap[i].id);
        assert_string_equal(fin[i].enc, snap[i].enc);
        if (!unfinished(snap[i].status)) {
            assert_int_equal(fin[i].status, snap[i].status);
            if (snap[i].status == GN_TRIAL_DONE)
                assert_true(fin[i].acc == snap[i].acc);
        }
    }
    /* the interrupted trial was finished under its own id; nothing is left running;
     * the budget is met exactly; no network trained twice */
    int trained = 0;
    for (int i = 0; i < nf; i++) {
        assert_false(unfinished(fin[i].status));
        if (!is_phase2(&fin[i]))
            continue;
        if ((fin[i].status == GN_TRIAL_DONE && !fin[i].reused) || fin[i].status == GN_TRIAL_FAILED)
            trained++;
        if (fin[i].status == GN_TRIAL_DONE)
            for (int j = 0; j < i; j++)
                if (fin[j].status == GN_TRIAL_DONE && is_phase2(&fin[j]))
                    assert_string_not_equal(fin[i].enc, fin[j].enc);
    }
    assert_int_equal(trained, 6);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiers),
        cmocka_unit_test(test_auto_opt_init),
        cmocka_unit_test(test_search_cli),
        cmocka_unit_test(test_kill_and_resume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
