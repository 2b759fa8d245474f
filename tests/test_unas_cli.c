/* test_unas_cli.c — `gpunas unas` as a user meets it (src/cli/cmd_unas.c) and
 * gn_nas_submit (src/nas/nas_submit.c), on a tiny space over Fashion-MNIST images
 * resized to 16x16:
 *   - a search store made by `gpunas search` (2 auto tiers) and a device profile made
 *     by `gpunas profile` for the same space;
 *   - `gpunas unas --store` stopped by --max-steps in the middle of its search (exit 3,
 *     a checkpoint, no result), refused without --resume, then resumed to the end:
 *     arch.json is a member of the space that `gpunas info` reads; result.json names
 *     the encoding, a measured and a predicted latency, and the stored trial; the store
 *     holds exactly one row of source "unas:unified@<T>ms" with seq -1, level 0, the
 *     same encoding, status done (trained, val_acc in [0, 1]) or pruned (latency above
 *     every tier), and a latency;
 *   - run again: "done already", no new row; gn_nas_submit of the same network twice:
 *     the same trial id, no new row; a row left 'running' (a kill) is evaluated under
 *     its own id;
 *   - the search resumes with one more trial in its budget (its replay skips the
 *     outside row) and `gpunas trials` lists the row;
 *   - errors: no --profile (exit 2), --store of a store without a search (exit 1,
 *     one line naming the store), an unknown estimator (exit 2). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpunas/nas.h"
#include "gpunas/store.h"
#include "testutil.h"

static const char *tiny_space =
    "{\"name\": \"tiny-fmnist\", \"in_channels\": 1, \"classes\": 10, \"resolutions\": [16],\n"
    " \"stages\": [\n"
    "  {\"stage\": 0, \"type\": \"head\", \"filters\": [8]},\n"
    "  {\"stage\": 1, \"type\": \"conv\", \"stride\": 1, \"kernel\": [3, 5], \"layers\": {\"min\": 0, \"max\": 1},\n"
    "   \"act\": [\"swish\"], \"filters\": [8]},\n"
    "  {\"stage\": 2, \"type\": \"fused_irb\", \"stride\": 2, \"kernel\": [3, 5],\n"
    "   \"layers\": {\"min\": 1, \"max\": 2},\n"
    "   \"act\": [\"swish\"], \"expansion\": [2, 4], \"filters\": [16], \"se\": [false, true]},\n"
    "  {\"stage\": 3, \"type\": \"irb\", \"stride\": 2, \"kernel\": [3, 5], \"layers\": {\"min\": 1, \"max\": 2},\n"
    "   \"act\": [\"swish\"], \"expansion\": [2, 4], \"filters\": [24], \"se\": [false, true]}],\n"
    " \"tail\": {\"filters\": [64]}}\n";

#define SEARCH_ARGS                                                                                                 \
    "--prune-samples 8 --trials 3 --proxy-subset 96 --proxy-batch 32 --lat-runs 5 --val-fraction 0.005 --threads 1 " \
    "--lat-threads 1 --lat-duration 0 --tiers auto:2 --seed 3 --quiet"
#define UNAS_ARGS                                                                                                   \
    "--subset 192 --val-subset 64 --batch 16 --init-epochs 1 --epochs 2 --threads 1 --lat-duration 0.2 "          \
    "--log-every 4 --checkpoint-every 5 --quiet"

typedef struct {
    char *dir, *space, *store, *profile;
    double target;
} fixture;

static fixture F;

/* rows of this source (NULL: every row), all levels; the last one's id and copy */
static int count_rows(const char *source, int64_t *id, gn_trial *copy)
{
    gn_store *st;
    gn_error err;
    if (gn_store_open(F.store, 0, &st, &err))
        fail_msg("%s", err.msg);
    gn_trial_filter f;
    gn_trial_filter_init(&f);
    f.level = GN_LEVEL_ANY;
    gn_trial_list l;
    if (gn_store_list_trials(st, &f, &l, &err))
        fail_msg("%s", err.msg);
    int n = 0;
    for (int64_t i = 0; i < l.n; i++)
        if (!source || (l.items[i].optimizer && strcmp(l.items[i].optimizer, source) == 0)) {
            n++;
            if (id)
                *id = l.items[i].id;
            if (copy)
                assert_int_equal(gn_trial_copy(copy, &l.items[i]), 0);
        }
    gn_trial_list_free(&l);
    gn_store_close(st);
    return n;
}

/* every row, all levels */
static int64_t count_all(void) { return count_rows(NULL, NULL, NULL); }

/* Run the CLI and require exit status `want`, printing its stderr when it differs. */
static void cli_expect(const char *args, int want, char **out, char **errs)
{
    char *e = NULL;
    int rc = tu_run_cli(args, out, &e);
    if (rc != want)
        fail_msg("gpunas %s: exit %d, expected %d: %s", args, rc, want, e ? e : "");
    if (errs)
        *errs = e;
    else
        free(e);
}

static int setup(void **state)
{
    (void)state;
    F.dir = tu_tmp_path("unas-cli");
    char cmd[4096], *errs = NULL;
    snprintf(cmd, sizeof cmd, "rm -rf %s && mkdir -p %s", F.dir, F.dir);
    assert_int_equal(system(cmd), 0);
    size_t n = strlen(F.dir) + 64;
    F.space = malloc(n);
    F.store = malloc(n);
    F.profile = malloc(n);
    snprintf(F.space, n, "%s/space.json", F.dir);
    snprintf(F.store, n, "%s/search/search.db", F.dir);
    snprintf(F.profile, n, "%s/profile.json", F.dir);
    assert_int_equal(tu_write_file(F.space, tiny_space), 0);
    snprintf(cmd, sizeof cmd, "search --space %s --out %s/search " SEARCH_ARGS, F.space, F.dir);
    int rc = tu_run_cli(cmd, NULL, &errs);
    if (rc)
        fail_msg("search: %d %s", rc, errs ? errs : "");
    free(errs);
    snprintf(cmd, sizeof cmd,
             "profile --device cpu --space %s -o %s --samples 6 --calib 4 --holdout 2 --runs 5 --warmup-ms 0 "
             "--duration 0 --layer-runs 5 --layer-warmup-ms 0 --threads 1 --quiet --no-speed-probe",
             F.space, F.profile);
    rc = tu_run_cli(cmd, NULL, &errs);
    if (rc)
        fail_msg("profile: %d %s", rc, errs ? errs : "");
    free(errs);
    /* a target inside the search's first tier: its upper edge */
    gn_store *st;
    gn_error err;
    assert_int_equal(gn_store_open(F.store, 0, &st, &err), 0);
    char *tiers = NULL;
    assert_int_equal(gn_store_get_meta(st, "nas.tiers", &tiers, &err), 0);
    double edges[GN_NAS_MAX_TIERS];
    int nt = 0, autos = 0;
    assert_int_equal(gn_nas_parse_tiers(tiers, edges, &nt, &autos, &err), 0);
    assert_true(nt >= 1);
    F.target = edges[0];
    free(tiers);
    gn_store_close(st);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(F.dir);
    free(F.space);
    free(F.store);
    free(F.profile);
    return 0;
}

static void unas_cmd(char *buf, size_t n, const char *extra)
{
    snprintf(buf, n, "unas --space %s --profile %s --target-ms %.6g --store %s --out %s/unas " UNAS_ARGS " %s",
             F.space, F.profile, F.target, F.store, F.dir, extra);
}

static void test_unas_store_resume(void **state)
{
    (void)state;
    char cmd[4096], source[64], path[4200], *out = NULL, *errs = NULL;
    snprintf(source, sizeof source, "unas:unified@%gms", F.target);
    int64_t before = count_all();
    /* stopped in the middle of the search (init epoch: 12 steps; then 12 per epoch) */
    unas_cmd(cmd, sizeof cmd, "--max-steps 17");
    int rc = tu_run_cli(cmd, &out, &errs);
    if (rc != 3)
        fail_msg("unas --max-steps: %d %s %s", rc, out ? out : "", errs ? errs : "");
    free(out);
    free(errs);
    snprintf(path, sizeof path, "%s/unas/t%gms/checkpoint.safetensors", F.dir, F.target);
    char *ck = tu_read_file(path, NULL);
    assert_non_null(ck);
    free(ck);
    snprintf(path, sizeof path, "%s/unas/t%gms/result.json", F.dir, F.target);
    assert_null(tu_read_file(path, NULL));
    assert_int_equal(count_rows(source, NULL, NULL), 0);
    /* without --resume: refused, one line naming the checkpoint */
    unas_cmd(cmd, sizeof cmd, "");
    cli_expect(cmd, 1, NULL, &errs);
    assert_non_null(strstr(errs, "checkpoint.safetensors exists"));
    assert_int_equal(strchr(errs, '\n') - errs + 1, (long)strlen(errs));
    free(errs);
    /* resumed to the end */
    unas_cmd(cmd, sizeof cmd, "--resume");
    rc = tu_run_cli(cmd, &out, &errs);
    if (rc != 0)
        fail_msg("unas --resume: %d %s", rc, errs ? errs : "");
    assert_non_null(strstr(out, "resuming"));
    assert_non_null(strstr(out, "stored as trial"));
    free(out);
    free(errs);
    char *text = tu_read_file(path, NULL);
    assert_non_null(text);
    json_error_t je;
    json_t *res = json_loads(text, 0, &je);
    free(text);
    assert_non_null(res);
    const char *enc = json_string_value(json_object_get(res, "encoding"));
    assert_non_null(enc);
    double meas = json_real_value(json_object_get(res, "measured_ms"));
    double pred = json_real_value(json_object_get(res, "predicted_ms"));
    assert_true(meas > 0 && pred > 0);
    assert_int_equal(json_integer_value(json_object_get(res, "steps")), 24);
    json_t *tr = json_object_get(res, "trial");
    assert_non_null(tr);
    /* the store: one row of this source, as result.json says */
    gn_trial t;
    gn_trial_init(&t);
    int64_t id = 0;
    assert_int_equal(count_rows(source, &id, &t), 1);
    assert_int_equal(json_integer_value(json_object_get(tr, "id")), id);
    assert_int_equal(t.seq, -1);
    assert_int_equal(t.level, 0);
    assert_string_equal(t.encoding, enc);
    assert_true(t.latency_ms > 0);
    assert_non_null(t.device);
    assert_true(t.status == GN_TRIAL_DONE || t.status == GN_TRIAL_PRUNED);
    if (t.status == GN_TRIAL_DONE) {
        assert_true(t.tier >= 0);
        assert_true(t.val_acc >= 0 && t.val_acc <= 1);
    }
    assert_int_equal(count_all(), before + 1);
    /* arch.json: a member the CLI reads */
    snprintf(path, sizeof path, "info %s/unas/t%gms/arch.json", F.dir, F.target);
    cli_expect(path, 0, NULL, NULL);
    /* again: done already, nothing new */
    unas_cmd(cmd, sizeof cmd, "--resume");
    cli_expect(cmd, 0, &out, NULL);
    assert_non_null(strstr(out, "done already"));
    free(out);
    assert_int_equal(count_all(), before + 1);
    /* gn_nas_submit of the same network: the same row */
    gn_store *st;
    gn_error err;
    assert_int_equal(gn_store_open(F.store, 0, &st, &err), 0);
    gn_nas_worker_config w;
    gn_nas_worker_defaults(&w);
    w.store = st;
    w.space_path = F.space;
    w.threads = 1;
    gn_trial again;
    if (gn_nas_submit(&w, enc, source, NULL, &again, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(again.id, id);
    gn_trial_clear(&again);
    /* a row left running by a kill is evaluated again under its own id */
    gn_trial k;
    gn_trial_init(&k);
    k.seq = -1;
    k.encoding = strdup(enc);
    k.optimizer = strdup("unas:killed");
    assert_int_equal(gn_store_insert_trial(st, &k, &err), 0);
    if (gn_nas_submit(&w, enc, "unas:killed", NULL, &again, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(again.id, k.id);
    assert_true(again.status == GN_TRIAL_DONE || again.status == GN_TRIAL_PRUNED);
    assert_true(again.latency_ms > 0);
    gn_trial_clear(&again);
    gn_trial_clear(&k);
    /* a source that reads as the search's own optimizer is refused */
    assert_int_equal(gn_nas_submit(&w, enc, "lamcts/t0", NULL, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "would read as a search's own optimizer"));
    gn_store_close(st);
    /* the search resumes past the outside rows */
    snprintf(cmd, sizeof cmd, "search --space %s --out %s/search --resume " SEARCH_ARGS, F.space, F.dir);
    char *p = strstr(cmd, "--trials 3");
    assert_non_null(p);
    p[9] = '4';
    rc = tu_run_cli(cmd, NULL, &errs);
    if (rc)
        fail_msg("search --resume: %d %s", rc, errs ? errs : "");
    free(errs);
    snprintf(cmd, sizeof cmd, "trials %s", F.store);
    cli_expect(cmd, 0, &out, NULL);
    assert_non_null(strstr(out, source));
    free(out);
    gn_trial_clear(&t);
    json_decref(res);
}

static void test_unas_errors(void **state)
{
    (void)state;
    char cmd[9000], *errs = NULL;
    assert_int_equal(tu_run_cli("unas --target-ms 0.1", NULL, &errs), 2);
    assert_non_null(strstr(errs, "--profile"));
    free(errs);
    /* a store without a search */
    char empty[4200];
    snprintf(empty, sizeof empty, "%s/empty.db", F.dir);
    gn_store *st;
    gn_error err;
    assert_int_equal(gn_store_open(empty, GN_STORE_CREATE, &st, &err), 0);
    gn_store_close(st);
    snprintf(cmd, sizeof cmd,
             "unas --space %s --profile %s --target-ms 1 --store %s --out %s/unas-empty " UNAS_ARGS, F.space,
             F.profile, empty, F.dir);
    cli_expect(cmd, 1, NULL, &errs);
    assert_non_null(strstr(errs, "no search in this store"));
    assert_non_null(strstr(errs, "empty.db"));
    free(errs);
    snprintf(cmd, sizeof cmd, "unas --space %s --profile %s --target-ms 1 --estimator bogus --out %s/unas-bad",
             F.space, F.profile, F.dir);
    assert_int_equal(tu_run_cli(cmd, NULL, &errs), 2);
    assert_non_null(strstr(errs, "--estimator"));
    free(errs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unas_errors),
        cmocka_unit_test(test_unas_store_resume),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
