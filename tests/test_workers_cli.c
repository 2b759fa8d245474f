/*
 * test_workers_cli.c — `gpunas workers` and the work-queue columns of `gpunas trials`
 * (issue 14, many machines), run as a user runs them against an SQLite store made
 * through the library: two registered workers, queued jobs (train and measure), one
 * claimed by a registered worker and one by a worker that never registered (its lease
 * must still be counted), plus an in-process 'running' trial.  Checks the --json
 * fields (ids, leased counts and ids, attempts, kind, device class, lease expiry),
 * the tables (the queue columns only when there are queue jobs), a leased promotion
 * (fidelity level 1) counted for its worker and listed by `trials --levels` only, and
 * the errors: a bad store is one line naming it with exit 1, bad options exit 2.
 */
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
#include <unistd.h>

#include "gpunas/store.h"
#include "testutil.h"

static int count_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

static char *fresh_store(const char *name)
{
    char *p = tu_tmp_path(name), side[1024];
    unlink(p);
    snprintf(side, sizeof side, "%s-wal", p);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", p);
    unlink(side);
    return p;
}

static gn_store *open_store(const char *where)
{
    gn_store *s;
    gn_error err;
    if (gn_store_open(where, GN_STORE_CREATE, &s, &err))
        fail_msg("%s", err.msg);
    return s;
}

static int64_t enqueue(gn_store *s, int64_t seq, const char *kind, const char *dc)
{
    gn_trial t;
    gn_trial_init(&t);
    t.seq = seq;
    t.encoding = (char *)"1,2,3";
    t.kind = (char *)kind;
    t.device_class = (char *)dc;
    t.max_attempts = 3;
    gn_error err;
    if (gn_store_enqueue(s, &t, &err))
        fail_msg("%s", err.msg);
    return t.id;
}

static int64_t claim(gn_store *s, const char *worker, const char *dc, unsigned kinds)
{
    gn_claim_req rq = {.worker = worker, .device_class = dc, .kinds = kinds, .lease_s = 600};
    gn_trial job;
    gn_lease l;
    gn_error err;
    int rc = gn_store_claim(s, &rq, &job, &l, &err);
    if (rc)
        fail_msg("claim by %s: %d %s", worker, rc, rc < 0 ? err.msg : "(nothing claimable)");
    int64_t id = job.id;
    gn_trial_clear(&job);
    return id;
}

static void reg(gn_store *s, const char *id, const char *host, int64_t pid, const char *dc)
{
    gn_worker w = {.id = (char *)id, .host = (char *)host, .pid = pid, .device_class = (char *)dc};
    gn_error err;
    if (gn_store_register_worker(s, &w, &err))
        fail_msg("%s", err.msg);
}

static json_t *run_json(const char *args)
{
    char *out, *err;
    int rc = tu_run_cli(args, &out, &err);
    if (rc != 0)
        fail_msg("gpunas %s: exit %d, stderr '%s'", args, rc, err);
    assert_string_equal(err, "");
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    if (!j)
        fail_msg("gpunas %s: not JSON (%s): %s", args, je.text, out);
    free(out);
    free(err);
    return j;
}

static void expect_error(const char *args, int code, const char *want)
{
    char *out, *err;
    int rc = tu_run_cli(args, &out, &err);
    if (rc != code || !strstr(err, want) || (code == 1 && count_lines(err) != 1))
        fail_msg("gpunas %s: exit %d (wanted %d), stderr '%s' (wanted one line with '%s')", args, rc, code, err, want);
    free(out);
    free(err);
}

static void test_workers_and_queue_columns(void **state)
{
    char *path = fresh_store("workers-cli.db");
    gn_store *s = open_store(path);
    reg(s, "w1", "node-a", 4242, "h200");
    reg(s, "w2", "node-b", 77, NULL);
    int64_t train = enqueue(s, 1, "train", NULL);
    int64_t measure = enqueue(s, 2, "measure", "h200");
    int64_t spare = enqueue(s, 3, "train", NULL);
    gn_trial t; /* an in-process trial of today's search loop, beside the queue */
    gn_trial_init(&t);
    t.seq = 4;
    t.encoding = (char *)"4,4,4";
    gn_error err;
    assert_int_equal(gn_store_insert_trial(s, &t, &err), 0);
    int64_t running = t.id;
    assert_int_equal(claim(s, "w1", NULL, GN_JOB_TRAIN), train);
    assert_int_equal(claim(s, "ghost", "h200", GN_JOB_MEASURE), measure); /* never registered */
    gn_store_close(s);

    char args[1024], *out, *errs;

    /* workers --json */
    snprintf(args, sizeof args, "workers %s --json", path);
    json_t *j = run_json(args);
    assert_true(json_is_array(j));
    assert_int_equal(json_array_size(j), 2);
    json_t *w1 = json_array_get(j, 0), *w2 = json_array_get(j, 1);
    assert_string_equal(json_string_value(json_object_get(w1, "id")), "w1");
    assert_string_equal(json_string_value(json_object_get(w1, "host")), "node-a");
    assert_int_equal(json_integer_value(json_object_get(w1, "pid")), 4242);
    assert_string_equal(json_string_value(json_object_get(w1, "device_class")), "h200");
    assert_int_equal(json_integer_value(json_object_get(w1, "leased")), 1);
    assert_int_equal(json_array_size(json_object_get(w1, "leased_ids")), 1);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(w1, "leased_ids"), 0)), train);
    assert_true(json_is_number(json_object_get(w1, "last_seen")));
    assert_true(json_is_number(json_object_get(w1, "started_at")));
    assert_true(json_real_value(json_object_get(w1, "last_seen")) >= json_real_value(json_object_get(w1, "started_at")));
    assert_string_equal(json_string_value(json_object_get(w2, "id")), "w2");
    assert_true(json_is_null(json_object_get(w2, "device_class")));
    assert_int_equal(json_integer_value(json_object_get(w2, "leased")), 0);
    assert_int_equal(json_array_size(json_object_get(w2, "leased_ids")), 0);
    json_decref(j);

    /* workers: the table */
    snprintf(args, sizeof args, "workers %s --window 60", path);
    assert_int_equal(tu_run_cli(args, &out, &errs), 0);
    assert_string_equal(errs, "");
    assert_int_equal(count_lines(out), 1 + 2 + 1);
    assert_non_null(strstr(out, "node-a"));
    assert_non_null(strstr(out, "4242"));
    assert_non_null(strstr(out, " s "));
    assert_non_null(strstr(out, "2 workers seen in the last 60 s, 2 jobs leased (1 by workers not seen in the window)"));
    free(out);
    free(errs);

    /* trials --json: the queue fields */
    snprintf(args, sizeof args, "trials %s --json", path);
    j = run_json(args);
    assert_int_equal(json_array_size(j), 4);
    json_t *a = json_array_get(j, 0), *b = json_array_get(j, 1), *c = json_array_get(j, 2), *d = json_array_get(j, 3);
    assert_int_equal(json_integer_value(json_object_get(a, "id")), train);
    assert_string_equal(json_string_value(json_object_get(a, "status")), "leased");
    assert_string_equal(json_string_value(json_object_get(a, "kind")), "train");
    assert_string_equal(json_string_value(json_object_get(a, "worker")), "w1");
    assert_int_equal(json_integer_value(json_object_get(a, "attempts")), 1);
    assert_int_equal(json_integer_value(json_object_get(a, "max_attempts")), 3);
    assert_true(json_is_null(json_object_get(a, "device_class")));
    assert_true(json_is_null(json_object_get(a, "device")));
    assert_true(json_is_number(json_object_get(a, "lease_expires_at")));
    assert_true(json_real_value(json_object_get(a, "lease_expires_at")) >
                json_real_value(json_object_get(a, "created_at")) + 500); /* a 600 s lease */
    assert_string_equal(json_string_value(json_object_get(b, "kind")), "measure");
    assert_string_equal(json_string_value(json_object_get(b, "device_class")), "h200");
    assert_string_equal(json_string_value(json_object_get(b, "worker")), "ghost");
    assert_int_equal(json_integer_value(json_object_get(b, "attempts")), 1);
    assert_int_equal(json_integer_value(json_object_get(c, "id")), spare);
    assert_string_equal(json_string_value(json_object_get(c, "status")), "queued");
    assert_int_equal(json_integer_value(json_object_get(c, "attempts")), 0);
    assert_true(json_is_null(json_object_get(c, "lease_expires_at")));
    assert_int_equal(json_integer_value(json_object_get(d, "id")), running);
    assert_true(json_is_null(json_object_get(d, "kind")));
    assert_int_equal(json_integer_value(json_object_get(d, "attempts")), 1);
    assert_int_equal(json_integer_value(json_object_get(d, "max_attempts")), 0);
    assert_true(json_is_null(json_object_get(d, "lease_expires_at")));
    json_decref(j);

    /* trials: the table gets the queue columns */
    snprintf(args, sizeof args, "trials %s", path);
    assert_int_equal(tu_run_cli(args, &out, &errs), 0);
    assert_string_equal(errs, "");
    assert_int_equal(count_lines(out), 1 + 4 + 1);
    assert_non_null(strstr(out, "attempts"));
    assert_non_null(strstr(out, "lease_expires"));
    assert_non_null(strstr(out, "measure:h200"));
    assert_non_null(strstr(out, "1/3"));
    assert_non_null(strstr(out, "0/3"));
    assert_non_null(strstr(out, "Z ")); /* a UTC expiry, 2024-05-01T12:00:03Z */
    assert_non_null(strstr(out, "4 trials (0 done, 1 running, 0 failed, 0 pruned, 1 queued, 2 leased)"));
    free(out);
    free(errs);
    /* ... only when the listed trials hold a queue job */
    snprintf(args, sizeof args, "trials %s --status running", path);
    assert_int_equal(tu_run_cli(args, &out, &errs), 0);
    assert_int_equal(count_lines(out), 1 + 1 + 1);
    assert_null(strstr(out, "attempts"));
    assert_null(strstr(out, "lease_expires"));
    free(out);
    free(errs);

    /* a promotion (level 1 of the leased train job) leased by w2: `workers` counts it,
     * `trials` lists it only with --levels */
    s = open_store(path);
    gn_trial_init(&t);
    t.seq = 1;
    t.encoding = (char *)"1,2,3";
    t.kind = (char *)"train";
    t.max_attempts = 3;
    t.level = 1;
    t.parent = train;
    assert_int_equal(gn_store_enqueue(s, &t, &err), 0);
    int64_t promo = t.id;
    assert_int_equal(claim(s, "w2", NULL, GN_JOB_TRAIN), spare); /* the older job first */
    assert_int_equal(claim(s, "w2", NULL, GN_JOB_TRAIN), promo);
    gn_store_close(s);
    snprintf(args, sizeof args, "workers %s --json", path);
    j = run_json(args);
    w2 = json_array_get(j, 1);
    assert_int_equal(json_integer_value(json_object_get(w2, "leased")), 2);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(w2, "leased_ids"), 1)), promo);
    json_decref(j);
    snprintf(args, sizeof args, "trials %s", path);
    assert_int_equal(tu_run_cli(args, &out, &errs), 0);
    assert_int_equal(count_lines(out), 1 + 4 + 1);
    assert_null(strstr(out, "lvl"));
    free(out);
    free(errs);
    snprintf(args, sizeof args, "trials %s --levels", path);
    assert_int_equal(tu_run_cli(args, &out, &errs), 0);
    assert_int_equal(count_lines(out), 1 + 5 + 1);
    assert_non_null(strstr(out, " lvl "));
    char lv[32];
    snprintf(lv, sizeof lv, " 1^%lld ", (long long)train);
    assert_non_null(strstr(out, lv));
    assert_non_null(strstr(out, "5 trials (0 done, 1 running, 0 failed, 0 pruned, 0 queued, 4 leased)"));
    free(out);
    free(errs);

    /* a window the workers were not seen in is not an error; nor is a store without any */
    char *empty = fresh_store("workers-empty.db");
    gn_store_close(open_store(empty));
    snprintf(args, sizeof args, "workers %s --json", empty);
    j = run_json(args);
    assert_int_equal(json_array_size(j), 0);
    json_decref(j);
    snprintf(args, sizeof args, "workers %s", empty);
    assert_int_equal(tu_run_cli(args, &out, &errs), 0);
    assert_non_null(strstr(out, ": 0 workers seen in the last 120 s, 0 jobs leased"));
    free(out);
    free(errs);
    free(empty);

    /* errors */
    snprintf(args, sizeof args, "workers %s.missing", path);
    char want[1100];
    snprintf(want, sizeof want, "gpunas workers: %s.missing: ", path);
    expect_error(args, 1, want);
    char *txt = tu_tmp_path("workers-notastore.txt");
    tu_write_file(txt, "hello, this is a text file and not an SQLite database at all, no header here......\n"
                       "padding padding padding padding padding padding padding padding padding padding\n");
    snprintf(args, sizeof args, "workers %s", txt);
    snprintf(want, sizeof want, "gpunas workers: %s: not a gpunas trial store", txt);
    expect_error(args, 1, want);
    free(txt);
    expect_error("workers", 2, "usage: gpunas workers");
    /* `gpunas worker`: an SQLite file that cannot be opened is said at once (PostgreSQL
     * locations are retried: the server or the search may not be up yet) */
    snprintf(args, sizeof args, "worker --store %s.missing", path);
    snprintf(want, sizeof want, "gpunas worker: %s.missing: ", path);
    expect_error(args, 1, want);
    expect_error("worker", 2, "gpunas worker: --store is required");
    expect_error("worker --store x --kinds bake", 2, "gpunas worker: --kinds: 'bake' is not");
    expect_error("worker --store x --lease 0", 2, "gpunas worker: option --lease");
    snprintf(args, sizeof args, "workers %s --window x", path);
    expect_error(args, 2, "gpunas workers: option --window: 'x' is not a number");
    snprintf(args, sizeof args, "workers %s --window 0", path);
    expect_error(args, 2, "gpunas workers: option --window: 0 out of range");
    snprintf(args, sizeof args, "workers %s --window", path);
    expect_error(args, 2, "gpunas workers: option --window: missing value");
    snprintf(args, sizeof args, "workers %s --bogus", path);
    expect_error(args, 2, "gpunas workers: unknown option '--bogus'");
    snprintf(args, sizeof args, "workers %s %s", path, path);
    expect_error(args, 2, "gpunas workers: more than one store given");
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_workers_and_queue_columns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
