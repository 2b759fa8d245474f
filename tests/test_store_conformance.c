/*
 * test_store_conformance.c — one suite for every trial-store backend (gpunas/store.h):
 * the same tests run against SQLite (a temporary file) and against PostgreSQL started
 * by this test.
 *
 * PostgreSQL: initdb + pg_ctl from /usr/lib/postgresql/15/bin (scripts/deps.sh
 * installs postgresql-15) in a fresh /tmp/gnpg-XXXXXX, as an unprivileged user
 * (`runuser -u nobody` when the test runs as root: PostgreSQL refuses root), trust
 * authentication, a Unix socket in that folder only (listen_addresses = ''), stopped
 * with `pg_ctl stop -m fast` by the group teardown, which cmocka runs even when tests
 * fail.  Missing binaries FAIL the test with a message naming scripts/deps.sh; it
 * never skips.  Each test gets its own database (CREATE DATABASE) or file.
 *
 * Covered: meta and the in-process trial API as today (insert running, finish once,
 * get, list, count, every field incl. the queue's), enqueue validation and claim
 * order, device-class routing of measure jobs, concurrent claims from 4 processes
 * (every job claimed and completed exactly once; claim+complete cycles per second
 * printed), lease expiry and re-queue, max_attempts -> failed with its reason, a
 * heartbeat extends a lease, a stale (zombie) token can neither heartbeat nor
 * complete, release gives the attempt back, the worker registry, fidelity levels
 * (promotions enqueued with a parent, claimed with their level, kept by complete,
 * release, reap and finish, listed and counted only when the filter asks for their
 * level; the shape errors), the zero-cost score (naswot) written by insert, finish,
 * complete and a staged complete and read back equal by get, list and claim (-inf
 * kept, NaN as unknown), the in-place 3 -> 5 and 4 -> 5 upgrades of a PostgreSQL
 * store (concurrent openers upgrade once; one schema_version row per step; old rows
 * naswot NULL), reconnecting after
 * `pg_ctl restart -m immediate` (PostgreSQL), and bad locations (wrong scheme,
 * unreachable server, password never echoed, not a gpunas database, newer schema (6),
 * empty database) as one line each.
 *
 * GPUNAS_CLAIM_BENCH=1 also measures claim throughput at 1, 4 and 16 processes
 * (bench/RESULTS.md).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <libpq-fe.h>
#include <math.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gpunas/store.h"
#include "testutil.h"

#define PG_BIN "/usr/lib/postgresql/15/bin"

typedef struct {
    const char *name;
    int pg;
} backend;
static backend B_SQLITE = {"sqlite", 0}, B_PG = {"postgresql", 1};

static char pg_dir[64];  /* /tmp/gnpg-XXXXXX: data/, the socket, logs */
static char as_user[64]; /* "runuser -u nobody -- " when root, else "" */
static int pg_running;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) && errno == EINTR) {
    }
}

static int sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* ---- the PostgreSQL server of this test ---- */

static int pg_start(void **state)
{
    if (access(PG_BIN "/initdb", X_OK) || access(PG_BIN "/pg_ctl", X_OK)) {
        fprintf(stderr, "test_store_conformance: PostgreSQL 15 server binaries not found in " PG_BIN
                        " (initdb, pg_ctl): install them with `bash scripts/deps.sh` (package postgresql-15); "
                        "this test does not skip\n");
        return -1;
    }
    snprintf(pg_dir, sizeof pg_dir, "/tmp/gnpg-XXXXXX");
    if (!mkdtemp(pg_dir)) {
        fprintf(stderr, "test_store_conformance: mkdtemp: %s\n", strerror(errno));
        return -1;
    }
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("nobody");
        if (!pw || chown(pg_dir, pw->pw_uid, pw->pw_gid)) {
            fprintf(stderr, "test_store_conformance: running as root and cannot hand %s to user nobody\n", pg_dir);
            return -1;
        }
        snprintf(as_user, sizeof as_user, "runuser -u nobody -- ");
    }
    chmod(pg_dir, 0755);
    if (sh("cd %s && %s" PG_BIN "/initdb -D %s/data -U gpunas --auth=trust -E UTF8 --no-sync >%s/initdb.log 2>&1",
           pg_dir, as_user, pg_dir, pg_dir)) {
        fprintf(stderr, "test_store_conformance: initdb failed, see %s/initdb.log\n", pg_dir);
        return -1;
    }
    char conf[128];
    snprintf(conf, sizeof conf, "%s/data/postgresql.conf", pg_dir);
    FILE *f = fopen(conf, "a");
    if (!f)
        return -1;
    fprintf(f, "\n# test_store_conformance\nlisten_addresses = ''\nunix_socket_directories = '%s'\n"
               "max_connections = 60\n", pg_dir);
    fclose(f);
    if (sh("cd %s && %s" PG_BIN "/pg_ctl -D %s/data -l %s/server.log -w -t 60 start >/dev/null 2>&1", pg_dir,
           as_user, pg_dir, pg_dir)) {
        fprintf(stderr, "test_store_conformance: pg_ctl start failed, see %s/server.log\n", pg_dir);
        return -1;
    }
    pg_running = 1;
    fprintf(stderr, "test_store_conformance: PostgreSQL 15 in %s (Unix socket only)\n", pg_dir);
    return 0;
}

static int pg_stop(void **state)
{
    if (pg_running)
        sh("cd %s && %s" PG_BIN "/pg_ctl -D %s/data -m fast -w stop >/dev/null 2>&1", pg_dir, as_user, pg_dir);
    pg_running = 0;
    if (pg_dir[0])
        sh("rm -rf %s", pg_dir);
    return 0;
}

static void quiet(void *arg, const char *msg) {}

/* Run SQL as the superuser in database db; fails the test on error. */
static void pg_sql(const char *db, const char *sql)
{
    char ci[256];
    snprintf(ci, sizeof ci, "host=%s user=gpunas dbname=%s", pg_dir, db);
    PGconn *c = PQconnectdb(ci);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("connect %s: %s", ci, PQerrorMessage(c));
    PQsetNoticeProcessor(c, quiet, NULL);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
}

/* A location for a fresh, empty store of this backend (malloc'd). */
static char *fresh_location(const backend *b, const char *name)
{
    char *loc = malloc(512);
    if (b->pg) {
        char sql[256];
        snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s", name);
        pg_sql("postgres", sql);
        snprintf(sql, sizeof sql, "CREATE DATABASE %s", name);
        pg_sql("postgres", sql);
        snprintf(loc, 512, "postgresql:///%s?host=%s&user=gpunas", name, pg_dir);
    } else {
        char file[128];
        snprintf(file, sizeof file, "conf-%s.db", name);
        char *p = tu_tmp_path(file), side[1024];
        unlink(p);
        snprintf(side, sizeof side, "%s-wal", p);
        unlink(side);
        snprintf(side, sizeof side, "%s-shm", p);
        unlink(side);
        snprintf(loc, 512, "sqlite:%s", p);
        free(p);
    }
    return loc;
}

static gn_store *open_store(const char *loc, unsigned flags)
{
    gn_store *s;
    gn_error err;
    if (gn_store_open(loc, flags, &s, &err))
        fail_msg("%s", err.msg);
    return s;
}

static void one_line(const gn_error *err, const char *must_contain)
{
    if (!strstr(err->msg, must_contain))
        fail_msg("error '%s' lacks '%s'", err->msg, must_contain);
    assert_null(strchr(err->msg, '\n'));
}

static int64_t enqueue(gn_store *s, int64_t seq, const char *kind, const char *dc, int max_attempts)
{
    gn_trial t;
    gn_trial_init(&t);
    t.seq = seq;
    t.encoding = (char *)"1,2,3";
    t.kind = (char *)kind;
    t.device_class = (char *)dc;
    t.max_attempts = max_attempts;
    gn_error err;
    if (gn_store_enqueue(s, &t, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(t.status, GN_TRIAL_QUEUED);
    return t.id;
}

/* claim: 0 claimed, 1 nothing */
static int claim(gn_store *s, const char *worker, const char *dc, unsigned kinds, double lease_s, gn_lease *l,
                 gn_trial *job)
{
    gn_claim_req rq = {.worker = worker, .device_class = dc, .kinds = kinds, .lease_s = lease_s};
    gn_error err;
    gn_trial tmp;
    int rc = gn_store_claim(s, &rq, job ? job : &tmp, l, &err);
    if (rc < 0)
        fail_msg("%s", err.msg);
    if (!job)
        gn_trial_clear(&tmp);
    return rc;
}

static int complete_done(gn_store *s, const gn_lease *l, double acc, gn_error *err)
{
    gn_trial r;
    gn_trial_init(&r);
    r.status = GN_TRIAL_DONE;
    r.val_acc = acc;
    return gn_store_complete(s, l, &r, err);
}

/* Enqueue a train job of a fidelity level (parent: the trial it promotes, 0 none). */
static int64_t enqueue_level(gn_store *s, int64_t seq, int level, int64_t parent)
{
    gn_trial t;
    gn_trial_init(&t);
    t.seq = seq;
    t.encoding = (char *)"1,2,3";
    t.kind = (char *)"train";
    t.max_attempts = 2;
    t.level = level;
    t.parent = parent;
    gn_error err;
    if (gn_store_enqueue(s, &t, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(t.level, level);
    assert_int_equal(t.parent, parent);
    return t.id;
}

/* ---- tests ---- */

static void test_meta_and_trials(void **state)
{
    const backend *b = *state;
    char *loc = fresh_location(b, "meta");
    gn_store *s = open_store(loc, GN_STORE_CREATE);
    gn_error err;
    char *v;
    assert_int_equal(gn_store_get_meta(s, "nas.seed", &v, &err), 1);
    assert_int_equal(gn_store_put_meta(s, "nas.seed", "7", &err), 0);
    assert_int_equal(gn_store_put_meta(s, "nas.seed", "8", &err), 0);
    assert_int_equal(gn_store_get_meta(s, "nas.seed", &v, &err), 0);
    assert_string_equal(v, "8");
    free(v);

    gn_trial t, g;
    gn_trial_init(&t);
    t.seq = 3;
    t.tier = 1;
    t.encoding = (char *)"4,5,6";
    t.config = (char *)"[{\"layer\":\"conv\"}]";
    t.optimizer = (char *)"lamcts";
    t.worker = (char *)"host-a";
    t.created_at = 1700000000.25;
    t.latency_ms = 0.125;
    t.naswot = 1234.0625;
    assert_int_equal(gn_store_insert_trial(s, &t, &err), 0);
    assert_int_equal(t.id, 1);
    assert_int_equal(t.status, GN_TRIAL_RUNNING);
    assert_int_equal(gn_store_get_trial(s, t.id, &g, &err), 0);
    assert_int_equal(g.status, GN_TRIAL_RUNNING);
    assert_true(g.created_at == 1700000000.25);
    assert_true(g.started_at == t.started_at);
    assert_int_equal(g.attempts, 1);
    assert_null(g.kind);
    assert_true(isnan(g.lease_expires_at));
    assert_true(isnan(g.val_acc));
    assert_true(g.naswot == 1234.0625);
    assert_int_equal(g.params, -1);
    gn_trial_clear(&g);

    gn_trial f;
    gn_trial_init(&f);
    f.status = GN_TRIAL_DONE;
    f.val_acc = 0.8125;
    f.naswot = 1510.123456789012; /* every bit of the double comes back */
    f.params = 12345;
    f.macs = 678901234567LL;
    f.train_s = 12.5;
    f.latency_spread_ms = 0.01;
    f.device = (char *)"cpu:AMD EPYC/2";
    f.latency_info = (char *)"{\"threads\":2}";
    assert_int_equal(gn_store_finish_trial(s, t.id, &f, &err), 0);
    assert_int_equal(gn_store_finish_trial(s, t.id, &f, &err), -1);
    one_line(&err, "already done");
    assert_int_equal(gn_store_finish_trial(s, 99, &f, &err), -1);
    one_line(&err, "no such trial");
    assert_int_equal(gn_store_get_trial(s, t.id, &g, &err), 0);
    assert_int_equal(g.status, GN_TRIAL_DONE);
    assert_true(g.val_acc == 0.8125);
    assert_true(g.naswot == 1510.123456789012);
    assert_true(g.latency_ms == 0.125);
    assert_true(g.latency_spread_ms == 0.01);
    assert_int_equal(g.params, 12345);
    assert_int_equal(g.macs, 678901234567LL);
    assert_int_equal(g.tier, 1);
    assert_string_equal(g.config, "[{\"layer\":\"conv\"}]");
    assert_string_equal(g.worker, "host-a");
    assert_string_equal(g.device, "cpu:AMD EPYC/2");
    assert_string_equal(g.latency_info, "{\"threads\":2}");
    assert_true(g.finished_at >= g.started_at);
    gn_trial_clear(&g);
    assert_int_equal(gn_store_get_trial(s, 99, &g, &err), 1);

    /* more trials, filters, order */
    for (int i = 0; i < 5; i++) {
        gn_trial_init(&t);
        t.seq = 10 + i;
        t.tier = i % 2 ? 0 : -1;
        t.encoding = (char *)"7";
        t.naswot = i == 0 ? -INFINITY : NAN; /* a singular kernel's score is kept */
        assert_int_equal(gn_store_insert_trial(s, &t, &err), 0);
    }
    enqueue(s, 20, "train", NULL, 1);
    gn_trial_filter flt;
    gn_trial_filter_init(&flt);
    int64_t n;
    assert_int_equal(gn_store_count_trials(s, &flt, &n, &err), 0);
    assert_int_equal(n, 7);
    flt.status = GN_TRIAL_RUNNING;
    assert_int_equal(gn_store_count_trials(s, &flt, &n, &err), 0);
    assert_int_equal(n, 5);
    flt.status = GN_TRIAL_QUEUED;
    assert_int_equal(gn_store_count_trials(s, &flt, &n, &err), 0);
    assert_int_equal(n, 1);
    gn_trial_filter_init(&flt);
    flt.tier = -1;
    assert_int_equal(gn_store_count_trials(s, &flt, &n, &err), 0);
    assert_int_equal(n, 4);
    flt.tier = 0;
    gn_trial_list l;
    assert_int_equal(gn_store_list_trials(s, &flt, &l, &err), 0);
    assert_int_equal(l.n, 2);
    assert_true(l.items[0].id < l.items[1].id);
    gn_trial_list_free(&l);
    gn_trial_filter_init(&flt);
    flt.after_id = 2;
    flt.limit = 3;
    assert_int_equal(gn_store_list_trials(s, &flt, &l, &err), 0);
    assert_int_equal(l.n, 3);
    assert_int_equal(l.items[0].id, 3);
    assert_int_equal(l.items[2].id, 5);
    gn_trial_list_free(&l);
    assert_int_equal(gn_store_list_trials(s, NULL, &l, &err), 0);
    assert_int_equal(l.n, 7);
    assert_true(l.items[0].naswot == 1510.123456789012);
    assert_true(isinf(l.items[1].naswot) && l.items[1].naswot < 0);
    for (int i = 2; i < 7; i++)
        assert_true(isnan(l.items[i].naswot));
    assert_string_equal(l.items[6].kind, "train");
    assert_int_equal(l.items[6].max_attempts, 1);
    gn_trial_list_free(&l);
    gn_store_close(s);
    /* reopen: still there */
    s = open_store(loc, 0);
    assert_int_equal(gn_store_get_meta(s, "nas.seed", &v, &err), 0);
    assert_string_equal(v, "8");
    free(v);
    gn_store_close(s);
    free(loc);
}

static void test_enqueue_claim_complete(void **state)
{
    const backend *b = *state;
    char *loc = fresh_location(b, "claim");
    gn_store *s = open_store(loc, GN_STORE_CREATE);
    gn_error err;
    gn_trial t;
    gn_trial_init(&t);
    t.encoding = (char *)"1";
    t.kind = (char *)"measure";
    t.max_attempts = 1;
    assert_int_equal(gn_store_enqueue(s, &t, &err), -1);
    one_line(&err, "a measure job needs a device class");
    t.kind = (char *)"bake";
    assert_int_equal(gn_store_enqueue(s, &t, &err), -1);
    one_line(&err, "job kind must be");
    t.kind = (char *)"train";
    t.max_attempts = 0;
    assert_int_equal(gn_store_enqueue(s, &t, &err), -1);
    one_line(&err, "max_attempts");

    int64_t ids[3];
    for (int i = 0; i < 3; i++)
        ids[i] = enqueue(s, i, "train", NULL, 3);
    gn_lease l[3];
    gn_trial job;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(claim(s, "w1", NULL, GN_JOB_TRAIN, 30, &l[i], &job), 0);
        assert_int_equal(job.id, ids[i]); /* oldest first */
        assert_int_equal(l[i].trial_id, ids[i]);
        assert_int_equal(job.status, GN_TRIAL_LEASED);
        assert_int_equal(job.attempts, 1);
        assert_int_equal(l[i].attempt, 1);
        assert_string_equal(job.worker, "w1");
        assert_true(isnan(job.naswot));
        assert_int_equal(strlen(l[i].token), GN_LEASE_TOKEN_LEN);
        assert_true(l[i].expires_at > job.started_at + 29 && l[i].expires_at < job.started_at + 31);
        assert_true(fabs(job.started_at - now_s()) < 5); /* the server's clock is this machine's */
        gn_trial_clear(&job);
    }
    assert_string_not_equal(l[0].token, l[1].token);
    gn_lease none;
    assert_int_equal(claim(s, "w1", NULL, GN_JOB_TRAIN, 30, &none, NULL), 1); /* all leased */
    gn_trial r;
    gn_trial_init(&r);
    r.status = GN_TRIAL_DONE;
    r.val_acc = 0.5;
    r.naswot = 1401.2500000000002;
    r.latency_ms = 0.3;
    assert_int_equal(gn_store_complete(s, &l[0], &r, &err), -1);
    one_line(&err, "needs the measuring device's fingerprint");
    r.device = (char *)"fp-1234";
    assert_int_equal(gn_store_complete(s, &l[0], &r, &err), 0);
    assert_int_equal(gn_store_complete(s, &l[0], &r, &err), GN_STORE_LEASE_LOST);
    one_line(&err, "lease lost: trial 1 is done");
    gn_trial g;
    assert_int_equal(gn_store_get_trial(s, ids[0], &g, &err), 0);
    assert_int_equal(g.status, GN_TRIAL_DONE);
    assert_true(g.val_acc == 0.5);
    assert_true(g.naswot == 1401.2500000000002);
    assert_string_equal(g.device, "fp-1234");
    assert_true(isnan(g.lease_expires_at));
    assert_false(isnan(g.finished_at));
    gn_trial_clear(&g);
    /* a forged token is lost, a malformed one is refused */
    gn_lease forged = l[1];
    memcpy(forged.token, "00000000000000000000000000000000", 33);
    assert_int_equal(complete_done(s, &forged, 0.1, &err), GN_STORE_LEASE_LOST);
    one_line(&err, "lease lost");
    memcpy(forged.token, "xyz", 4);
    assert_int_equal(complete_done(s, &forged, 0.1, &err), -1);
    one_line(&err, "not a lease");
    /* failed results are final too */
    gn_trial_init(&r);
    r.status = GN_TRIAL_FAILED;
    r.error = (char *)"training diverged";
    assert_int_equal(gn_store_complete(s, &l[1], &r, &err), 0);
    assert_int_equal(gn_store_get_trial(s, ids[1], &g, &err), 0);
    assert_int_equal(g.status, GN_TRIAL_FAILED);
    assert_string_equal(g.error, "training diverged");
    gn_trial_clear(&g);
    gn_store_close(s);
    free(loc);
}

/* A measure job completed into its next stage: the latency is committed, the row is a
 * queued train job again (attempts 0, no start), any worker may claim it; the old
 * lease is gone.  And meta written once under a race. */
static void test_stages_and_meta_once(void **state)
{
    const backend *b = *state;
    char *loc = fresh_location(b, "stages");
    gn_store *s = open_store(loc, GN_STORE_CREATE);
    gn_error err;
    int64_t id = enqueue(s, 0, "measure", "cpu-A", 2);
    gn_lease l, l2;
    gn_trial job, r, g;
    assert_int_equal(claim(s, "wm", "cpu-A", GN_JOB_MEASURE | GN_JOB_TRAIN, 30, &l, &job), 0);
    assert_int_equal(job.id, id);
    gn_trial_clear(&job);
    gn_trial_init(&r);
    r.status = GN_TRIAL_QUEUED;
    r.kind = (char *)"bake";
    assert_int_equal(gn_store_complete(s, &l, &r, &err), -1);
    one_line(&err, "kind must be train or measure");
    r.status = GN_TRIAL_DONE;
    r.kind = (char *)"train";
    assert_int_equal(gn_store_complete(s, &l, &r, &err), -1);
    one_line(&err, "a kind only goes with status queued");
    r.status = GN_TRIAL_QUEUED;
    r.latency_ms = 0.25;
    r.device = (char *)"cpu-A host=h1";
    r.tier = 1;
    r.naswot = 7.5; /* a staged complete writes the score too */
    assert_int_equal(gn_store_complete(s, &l, &r, &err), 0);
    assert_int_equal(gn_store_get_trial(s, id, &g, &err), 0);
    assert_int_equal(g.status, GN_TRIAL_QUEUED);
    assert_string_equal(g.kind, "train");
    assert_int_equal(g.attempts, 0);
    assert_true(g.latency_ms == 0.25);
    assert_int_equal(g.tier, 1);
    assert_string_equal(g.device, "cpu-A host=h1");
    assert_true(g.naswot == 7.5);
    assert_true(isnan(g.started_at) && isnan(g.finished_at) && isnan(g.lease_expires_at));
    gn_trial_clear(&g);
    /* the measuring lease is over */
    assert_int_equal(complete_done(s, &l, 0.9, &err), GN_STORE_LEASE_LOST);
    /* a worker of another class (or none) takes the train stage */
    assert_int_equal(claim(s, "wt", NULL, GN_JOB_MEASURE, 30, &l2, NULL), 1);
    assert_int_equal(claim(s, "wt", NULL, GN_JOB_TRAIN, 30, &l2, &job), 0);
    assert_int_equal(job.id, id);
    assert_int_equal(job.attempts, 1);
    assert_true(job.naswot == 7.5); /* the claim reads it */
    gn_trial_clear(&job);
    assert_int_equal(complete_done(s, &l2, 0.75, &err), 0);
    assert_int_equal(gn_store_get_trial(s, id, &g, &err), 0);
    assert_int_equal(g.status, GN_TRIAL_DONE);
    assert_true(g.val_acc == 0.75 && g.latency_ms == 0.25);
    assert_true(isnan(g.naswot)); /* like val_acc, the final result's (none) replaces it */
    assert_string_equal(g.worker, "wt");
    assert_string_equal(g.device, "cpu-A host=h1");
    assert_false(isnan(g.finished_at));
    gn_trial_clear(&g);

    /* meta once: the first writer wins, later ones read the winner */
    char *v = NULL;
    assert_int_equal(gn_store_put_meta_once(s, "k.once", "first", &v, &err), 0);
    assert_string_equal(v, "first");
    free(v);
    assert_int_equal(gn_store_put_meta_once(s, "k.once", "second", &v, &err), 1);
    assert_string_equal(v, "first");
    free(v);
    /* four processes race for one key: all read the same value, exactly one wrote it */
    int pipes[4][2];
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pipe(pipes[i]), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            gn_store *c;
            gn_error e;
            char mine[16], *got = NULL, line[64];
            snprintf(mine, sizeof mine, "v%d", i);
            int rc = gn_store_open(loc, 0, &c, &e) ? -1 : gn_store_put_meta_once(c, "k.race", mine, &got, &e);
            int n = snprintf(line, sizeof line, "%d %s\n", rc, got ? got : "?");
            if (write(pipes[i][1], line, (size_t)n) != n)
                _exit(2);
            _exit(0);
        }
        close(pipes[i][1]);
    }
    int wrote = 0;
    char first[16] = "";
    for (int i = 0; i < 4; i++) {
        char line[64] = "";
        FILE *f = fdopen(pipes[i][0], "r");
        assert_non_null(f);
        assert_non_null(fgets(line, sizeof line, f));
        fclose(f);
        int rc;
        char val[16];
        assert_int_equal(sscanf(line, "%d %15s", &rc, val), 2);
        assert_true(rc == 0 || rc == 1);
        wrote += rc == 0;
        if (!first[0])
            snprintf(first, sizeof first, "%s", val);
        assert_string_equal(val, first);
    }
    while (wait(NULL) > 0) {
    }
    assert_int_equal(wrote, 1);
    gn_store_close(s);
    free(loc);
}

static void test_device_class(void **state)
{
    const backend *b = *state;
    char *loc = fresh_location(b, "devclass");
    gn_store *s = open_store(loc, GN_STORE_CREATE);
    int64_t m_h200 = enqueue(s, 0, "measure", "h200", 1);
    int64_t m_cpu = enqueue(s, 1, "measure", "epyc-2c", 1);
    int64_t tr = enqueue(s, 2, "train", NULL, 1);
    gn_lease l;
    gn_trial job;
    /* a CPU worker that only measures: its class's job only */
    assert_int_equal(claim(s, "cpu1", "epyc-2c", GN_JOB_MEASURE, 30, &l, &job), 0);
    assert_int_equal(job.id, m_cpu);
    assert_string_equal(job.kind, "measure");
    assert_string_equal(job.device_class, "epyc-2c");
    gn_trial_clear(&job);
    assert_int_equal(claim(s, "cpu1", "epyc-2c", GN_JOB_MEASURE, 30, &l, NULL), 1);
    /* a worker without a device class takes no measure job, but trains */
    assert_int_equal(claim(s, "any", NULL, GN_JOB_MEASURE | GN_JOB_TRAIN, 30, &l, &job), 0);
    assert_int_equal(job.id, tr);
    gn_trial_clear(&job);
    assert_int_equal(claim(s, "any", NULL, GN_JOB_MEASURE | GN_JOB_TRAIN, 30, &l, NULL), 1);
    assert_int_equal(claim(s, "gpu1", "h200", GN_JOB_TRAIN, 30, &l, NULL), 1); /* h200 job is a measure job */
    assert_int_equal(claim(s, "gpu1", "h200", GN_JOB_MEASURE | GN_JOB_TRAIN, 30, &l, &job), 0);
    assert_int_equal(job.id, m_h200);
    gn_trial_clear(&job);
    gn_store_close(s);
    free(loc);
}

static void test_lease_expiry(void **state)
{
    const backend *b = *state;
    char *loc = fresh_location(b, "expiry");
    gn_store *s = open_store(loc, GN_STORE_CREATE);
    gn_error err;
    int64_t id = enqueue(s, 0, "train", NULL, 2);
    gn_lease la, lb;
    gn_trial job;
    assert_int_equal(claim(s, "wA", NULL, GN_JOB_TRAIN, 1.0, &la, NULL), 0);
    assert_int_equal(claim(s, "wB", NULL, GN_JOB_TRAIN, 1.0, &lb, NULL), 1); /* leased: nothing else */
    sleep_s(1.3);
    /* expired: A lost its lease even before anyone reaped it */
    assert_int_equal(gn_store_heartbeat(s, &la, 1.0, &err), GN_STORE_LEASE_LOST);
    one_line(&err, "lease lost");
    /* B's claim reaps it and takes it again: attempt 2 */
    assert_int_equal(claim(s, "wB", NULL, GN_JOB_TRAIN, 1.0, &lb, &job), 0);
    assert_int_equal(job.id, id);
    assert_int_equal(lb.attempt, 2);
    assert_string_equal(job.worker, "wB");
    gn_trial_clear(&job);
    /* the zombie A comes back: cannot complete, cannot heartbeat; nothing changes */
    assert_int_equal(complete_done(s, &la, 0.99, &err), GN_STORE_LEASE_LOST);
    one_line(&err, "leased under another token");
    assert_int_equal(gn_store_heartbeat(s, &la, 1.0, &err), GN_STORE_LEASE_LOST);
    gn_trial g;
    assert_int_equal(gn_store_get_trial(s, id, &g, &err), 0);
    assert_int_equal(g.status, GN_TRIAL_LEASED);
    assert_true(isnan(g.val_acc));
    assert_string_equal(g.worker, "wB");
    gn_trial_clear(&g);
    /* B dies too: the second expiry fails the job with its reason */
    sleep_s(1.3);
    int64_t rq = -1, fl = -1;
    assert_int_equal(gn_store_reap(s, &rq, &fl, &err), 0);
    assert_int_equal(rq, 0);
    assert_int_equal(fl, 1);
    assert_int_equal(gn_store_reap(s, &rq, &fl, &err), 0); /* reaping again: nothing */
    assert_int_equal(rq + fl, 0);
    assert_int_equal(gn_store_get_trial(s, id, &g, &err), 0);
    assert_int_equal(g.status, GN_TRIAL_FAILED);
    assert_string_equal(g.error, "lease expired 2 times (last worker wB)");
    assert_int_equal(g.attempts, 2);
    gn_trial_clear(&g);
    gn_lease zombie = lb;
    assert_int_equal(claim(s, "wC", NULL, GN_JOB_TRAIN, 1.0, &lb, NULL), 1);
    assert_int_equal(complete_done(s, &zombie, 0.5, &err), GN_STORE_LEASE_LOST);
    one_line(&err, "is failed");
    gn_store_close(s);
    free(loc);
}

static void test_heartbeat_release(void **state)
{
    const backend *b = *state;
    char *loc = fresh_location(b, "heartbeat");
    gn_store *s = open_store(loc, GN_STORE_CREATE);
    gn_error err;
    int64_t id = enqueue(s, 0, "train", NULL, 1);
    gn_lease l, other;
    assert_int_equal(claim(s, "w1", NULL, GN_JOB_TRAIN, 1.0, &l, NULL), 0);
    double first = l.expires_at;
    sleep_s(0.6);
    assert_int_equal(gn_store_heartbeat(s, &l, 1.0, &err), 0);
    assert_true(l.expires_at > first + 0.4);
    sleep_s(0.6); /* past the first expiry, within the extended one */
    assert_int_equal(claim(s, "w2", NULL, GN_JOB_TRAIN, 1.0, &other, NULL), 1);
    assert_int_equal(complete_done(s, &l, 0.7, &err), 0);

    /* release: back to queued without counting the attempt */
    int64_t id2 = enqueue(s, 1, "train", NULL, 1);
    assert_int_equal(claim(s, "w1", NULL, GN_JOB_TRAIN, 30, &l, NULL), 0);
    assert_int_equal(l.trial_id, id2);
    assert_int_equal(gn_store_release(s, &l, &err), 0);
    gn_trial g;
    assert_int_equal(gn_store_get_trial(s, id2, &g, &err), 0);
    assert_int_equal(g.status, GN_TRIAL_QUEUED);
    assert_int_equal(g.attempts, 0);
    assert_true(isnan(g.lease_expires_at));
    gn_trial_clear(&g);
    assert_int_equal(gn_store_release(s, &l, &err), GN_STORE_LEASE_LOST);
    one_line(&err, "is queued");
    assert_int_equal(gn_store_heartbeat(s, &l, 5, &err), GN_STORE_LEASE_LOST);
    assert_int_equal(claim(s, "w2", NULL, GN_JOB_TRAIN, 30, &other, NULL), 0);
    assert_int_equal(other.trial_id, id2);
    assert_int_equal(other.attempt, 1);
    assert_int_equal(complete_done(s, &l, 0.1, &err), GN_STORE_LEASE_LOST); /* the releaser's token is dead */
    assert_int_equal(complete_done(s, &other, 0.2, &err), 0);
    assert_int_equal(gn_store_get_trial(s, id, &g, &err), 0);
    assert_true(g.val_acc == 0.7);
    gn_trial_clear(&g);
    gn_store_close(s);
    free(loc);
}

/* Fidelity levels (gpunas/store.h, "Fidelity levels"): a proposal and its promotions
 * to levels 1 and 2, each a job of its own. */
static void test_levels(void **state)
{
    const backend *b = *state;
    char *loc = fresh_location(b, "levels");
    gn_store *s = open_store(loc, GN_STORE_CREATE);
    gn_error err;
    gn_lease l;
    gn_trial job, g;
    int64_t p = enqueue_level(s, 0, 0, 0);
    assert_int_equal(claim(s, "w1", NULL, GN_JOB_TRAIN, 30, &l, &job), 0);
    assert_int_equal(job.id, p);
    assert_int_equal(job.level, 0);
    assert_int_equal(job.parent, 0);
    gn_trial_clear(&job);
    assert_int_equal(complete_done(s, &l, 0.6, &err), 0);
    int64_t l1 = enqueue_level(s, 0, 1, p), l2 = enqueue_level(s, 0, 2, p);
    assert_true(p < l1 && l1 < l2);

    /* the claim returns the level and the parent; complete keeps them */
    assert_int_equal(claim(s, "w2", NULL, GN_JOB_TRAIN, 30, &l, &job), 0);
    assert_int_equal(job.id, l1);
    assert_int_equal(job.level, 1);
    assert_int_equal(job.parent, p);
    assert_int_equal(job.status, GN_TRIAL_LEASED);
    gn_trial_clear(&job);
    assert_int_equal(complete_done(s, &l, 0.7, &err), 0);
    assert_int_equal(gn_store_get_trial(s, l1, &g, &err), 0);
    assert_int_equal(g.status, GN_TRIAL_DONE);
    assert_true(g.val_acc == 0.7);
    assert_int_equal(g.level, 1);
    assert_int_equal(g.parent, p);
    gn_trial_clear(&g);
    assert_int_equal(gn_store_get_trial(s, p, &g, &err), 0); /* the proposal is untouched */
    assert_int_equal(g.level, 0);
    assert_int_equal(g.parent, 0);
    assert_true(g.val_acc == 0.6);
    gn_trial_clear(&g);

    /* release and reap keep them too */
    assert_int_equal(claim(s, "w3", NULL, GN_JOB_TRAIN, 30, &l, &job), 0);
    assert_int_equal(job.id, l2);
    assert_int_equal(job.level, 2);
    assert_int_equal(job.parent, p);
    gn_trial_clear(&job);
    assert_int_equal(gn_store_release(s, &l, &err), 0);
    assert_int_equal(claim(s, "w3", NULL, GN_JOB_TRAIN, 30, &l, NULL), 0);
    int64_t n = 0, rq = 0, fl = 0;
    assert_int_equal(gn_store_expire_leases(s, "w3", &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(gn_store_reap(s, &rq, &fl, &err), 0);
    assert_int_equal(rq, 1);
    assert_int_equal(gn_store_get_trial(s, l2, &g, &err), 0);
    assert_int_equal(g.status, GN_TRIAL_QUEUED);
    assert_int_equal(g.level, 2);
    assert_int_equal(g.parent, p);
    gn_trial_clear(&g);

    /* listing: the default filter is the proposals only; GN_LEVEL_ANY every row */
    gn_trial_filter f;
    gn_trial_filter_init(&f);
    assert_int_equal(f.level, 0);
    gn_trial_list lst;
    assert_int_equal(gn_store_list_trials(s, &f, &lst, &err), 0);
    assert_int_equal(lst.n, 1);
    assert_int_equal(lst.items[0].id, p);
    assert_int_equal(lst.items[0].level, 0);
    gn_trial_list_free(&lst);
    assert_int_equal(gn_store_list_trials(s, NULL, &lst, &err), 0); /* NULL: the default too */
    assert_int_equal(lst.n, 1);
    gn_trial_list_free(&lst);
    assert_int_equal(gn_store_count_trials(s, &f, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(gn_store_count_trials(s, NULL, &n, &err), 0);
    assert_int_equal(n, 1);
    f.level = GN_LEVEL_ANY;
    assert_int_equal(gn_store_list_trials(s, &f, &lst, &err), 0);
    assert_int_equal(lst.n, 3);
    assert_int_equal(lst.items[0].id, p);
    assert_int_equal(lst.items[1].id, l1);
    assert_int_equal(lst.items[2].id, l2);
    assert_int_equal(lst.items[1].level, 1);
    assert_int_equal(lst.items[1].parent, p);
    assert_int_equal(lst.items[2].level, 2);
    assert_int_equal(lst.items[2].parent, p);
    gn_trial_list_free(&lst);
    assert_int_equal(gn_store_count_trials(s, &f, &n, &err), 0);
    assert_int_equal(n, 3);
    f.level = 2;
    assert_int_equal(gn_store_list_trials(s, &f, &lst, &err), 0);
    assert_int_equal(lst.n, 1);
    assert_int_equal(lst.items[0].id, l2);
    gn_trial_list_free(&lst);
    assert_int_equal(gn_store_count_trials(s, &f, &n, &err), 0);
    assert_int_equal(n, 1);
    f.level = 3;
    assert_int_equal(gn_store_count_trials(s, &f, &n, &err), 0);
    assert_int_equal(n, 0);
    /* the level combines with the other filters */
    f.level = GN_LEVEL_ANY;
    f.status = GN_TRIAL_DONE;
    assert_int_equal(gn_store_count_trials(s, &f, &n, &err), 0);
    assert_int_equal(n, 2);
    f.level = 1;
    assert_int_equal(gn_store_count_trials(s, &f, &n, &err), 0);
    assert_int_equal(n, 1);
    gn_trial_filter_init(&f);
    f.level = GN_LEVEL_ANY;
    f.after_id = p;
    f.limit = 1;
    assert_int_equal(gn_store_list_trials(s, &f, &lst, &err), 0);
    assert_int_equal(lst.n, 1);
    assert_int_equal(lst.items[0].id, l1);
    gn_trial_list_free(&lst);
    f.level = -2;
    assert_int_equal(gn_store_list_trials(s, &f, &lst, &err), -1);
    one_line(&err, "list trials: level -2 out of range");
    assert_int_equal(gn_store_count_trials(s, &f, &n, &err), -1);
    one_line(&err, "count trials: level -2 out of range");

    /* an in-process promotion (insert + finish) keeps its level as well */
    gn_trial t;
    gn_trial_init(&t);
    t.seq = 0;
    t.encoding = (char *)"1,2,3";
    t.level = 1;
    t.parent = p;
    assert_int_equal(gn_store_insert_trial(s, &t, &err), 0);
    gn_trial r;
    gn_trial_init(&r);
    r.status = GN_TRIAL_DONE;
    r.val_acc = 0.71;
    assert_int_equal(gn_store_finish_trial(s, t.id, &r, &err), 0);
    assert_int_equal(gn_store_get_trial(s, t.id, &g, &err), 0);
    assert_int_equal(g.level, 1);
    assert_int_equal(g.parent, p);
    gn_trial_clear(&g);
    gn_trial_filter_init(&f);
    f.level = 1;
    assert_int_equal(gn_store_count_trials(s, &f, &n, &err), 0);
    assert_int_equal(n, 2);

    /* the shape errors: one line naming the store and the field, nothing stored */
    static const struct {
        int level;
        int64_t parent;
        const char *msg;
    } bad[] = {
        {-1, 0, "level -1 out of range"},
        {1, 0, "level 1 needs the parent trial it promotes (parent 0)"},
        {2, -5, "level 2 needs the parent trial it promotes (parent -5)"},
        {0, 7, "parent 7 given for level 0"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (int enq = 0; enq < 2; enq++) {
            gn_trial_init(&t);
            t.seq = 9;
            t.encoding = (char *)"1,2,3";
            t.kind = enq ? (char *)"train" : NULL;
            t.max_attempts = enq ? 1 : 0;
            t.level = bad[i].level;
            t.parent = bad[i].parent;
            int rc = enq ? gn_store_enqueue(s, &t, &err) : gn_store_insert_trial(s, &t, &err);
            assert_int_equal(rc, -1);
            one_line(&err, bad[i].msg);
            one_line(&err, enq ? "enqueue (seq 9)" : "insert trial (seq 9)");
            one_line(&err, gn_store_where(s));
        }
    }
    gn_trial_filter_init(&f);
    f.level = GN_LEVEL_ANY;
    assert_int_equal(gn_store_count_trials(s, &f, &n, &err), 0);
    assert_int_equal(n, 4);
    gn_store_close(s);
    free(loc);
}

/* One integer from a query as the superuser (PostgreSQL). */
static long long pg_int(const char *db, const char *sql)
{
    char ci[256];
    snprintf(ci, sizeof ci, "host=%s user=gpunas dbname=%s", pg_dir, db);
    PGconn *c = PQconnectdb(ci);
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("connect %s: %s", ci, PQerrorMessage(c));
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    long long v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    PQfinish(c);
    return v;
}

/* A schema-3 or schema-4 PostgreSQL store (a store made now, with the later schemas'
 * columns dropped and its version set back) is upgraded in place when opened, step by
 * step (a schema_version row for each): its rows become proposals with no zero-cost
 * score, and three processes opening it at once upgrade it once. */
static void pg_upgrade(const backend *b, int from)
{
    char db[16];
    snprintf(db, sizeof db, "upgrade%d", from);
    char *loc = fresh_location(b, db);
    gn_store *s = open_store(loc, GN_STORE_CREATE);
    gn_error err;
    gn_trial t, g, r;
    gn_trial_init(&t);
    t.seq = 1;
    t.encoding = (char *)"5,6";
    assert_int_equal(gn_store_insert_trial(s, &t, &err), 0);
    gn_trial_init(&r);
    r.status = GN_TRIAL_DONE;
    r.val_acc = 0.625;
    r.naswot = 99.5; /* dropped with the column below: the old store never had it */
    assert_int_equal(gn_store_finish_trial(s, t.id, &r, &err), 0);
    int64_t queued = enqueue(s, 2, "train", NULL, 1);
    gn_store_close(s);
    assert_int_equal(pg_int(db, "SELECT count(*) FROM pg_indexes WHERE indexname = 'trials_parent'"), 1);
    if (from == 3)
        pg_sql(db, "ALTER TABLE trials DROP COLUMN level, DROP COLUMN parent, DROP COLUMN naswot;"
                   "DELETE FROM schema_version; INSERT INTO schema_version(version, applied_at) VALUES(3, 0)");
    else
        pg_sql(db, "ALTER TABLE trials DROP COLUMN naswot; DELETE FROM schema_version;"
                   "INSERT INTO schema_version(version, applied_at) VALUES(3, 0), (4, 0)");
    assert_int_equal(pg_int(db, "SELECT count(*) FROM pg_indexes WHERE indexname = 'trials_parent'"), from == 4);
    assert_int_equal(pg_int(db, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'trials'"
                                " AND column_name = 'naswot'"), 0);

    pid_t pids[3];
    for (int i = 0; i < 3; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            gn_store *c;
            gn_error e;
            if (gn_store_open(loc, 0, &c, &e)) {
                fprintf(stderr, "opener %d: %s\n", i, e.msg);
                _exit(2);
            }
            gn_store_close(c);
            _exit(0);
        }
    }
    for (int i = 0; i < 3; i++) {
        int st;
        waitpid(pids[i], &st, 0);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    assert_int_equal(pg_int(db, "SELECT count(*) FROM schema_version WHERE version = 4"), 1);
    assert_int_equal(pg_int(db, "SELECT count(*) FROM schema_version WHERE version = 5"), 1);
    assert_int_equal(pg_int(db, "SELECT max(version) FROM schema_version"), 5);
    assert_int_equal(pg_int(db, "SELECT count(*) FROM pg_indexes WHERE indexname = 'trials_parent'"), 1);
    assert_int_equal(pg_int(db, "SELECT count(*) FROM trials WHERE level = 0 AND parent IS NULL"), 2);
    assert_int_equal(pg_int(db, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'trials'"
                                " AND column_name = 'naswot' AND data_type = 'double precision'"), 1);
    assert_int_equal(pg_int(db, "SELECT count(*) FROM trials WHERE naswot IS NULL"), 2);

    s = open_store(loc, 0);
    assert_int_equal(gn_store_get_trial(s, t.id, &g, &err), 0);
    assert_string_equal(g.encoding, "5,6");
    assert_true(g.val_acc == 0.625);
    assert_true(isnan(g.naswot));
    assert_int_equal(g.level, 0);
    assert_int_equal(g.parent, 0);
    gn_trial_clear(&g);
    int64_t promo = enqueue_level(s, 3, 1, queued);
    assert_true(promo > queued); /* the identity sequence went on */
    gn_trial_filter f;
    gn_trial_filter_init(&f);
    int64_t n;
    assert_int_equal(gn_store_count_trials(s, &f, &n, &err), 0);
    assert_int_equal(n, 2);
    f.level = GN_LEVEL_ANY;
    assert_int_equal(gn_store_count_trials(s, &f, &n, &err), 0);
    assert_int_equal(n, 3);
    gn_lease l;
    gn_trial job;
    assert_int_equal(claim(s, "w", NULL, GN_JOB_TRAIN, 30, &l, &job), 0);
    assert_int_equal(job.id, queued);
    assert_int_equal(job.level, 0);
    assert_true(isnan(job.naswot));
    gn_trial_clear(&job);
    r.naswot = 3.25; /* the new column takes results */
    assert_int_equal(gn_store_complete(s, &l, &r, &err), 0);
    assert_int_equal(gn_store_get_trial(s, queued, &g, &err), 0);
    assert_true(g.naswot == 3.25);
    gn_trial_clear(&g);
    gn_store_close(s);
    free(loc);
}

static void test_pg_upgrade_v3(void **state)
{
    const backend *b = *state;
    if (b->pg) /* SQLite's upgrades: tests/test_store.c */
        pg_upgrade(b, 3);
}

static void test_pg_upgrade_v4(void **state)
{
    const backend *b = *state;
    if (b->pg)
        pg_upgrade(b, 4);
}

static void test_workers(void **state)
{
    const backend *b = *state;
    char *loc = fresh_location(b, "workers");
    gn_store *s = open_store(loc, GN_STORE_CREATE);
    gn_error err;
    gn_worker w = {.id = (char *)"gpu-1", .host = (char *)"node7", .pid = 4242, .device_class = (char *)"h200"};
    assert_int_equal(gn_store_register_worker(s, &w, &err), 0);
    gn_worker w2 = {.id = (char *)"cpu-1", .host = (char *)"node8", .pid = 99};
    assert_int_equal(gn_store_register_worker(s, &w2, &err), 0);
    gn_worker_list l;
    assert_int_equal(gn_store_list_workers(s, 60, &l, &err), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.items[0].id, "cpu-1");
    assert_null(l.items[0].device_class);
    assert_string_equal(l.items[1].host, "node7");
    assert_int_equal(l.items[1].pid, 4242);
    assert_string_equal(l.items[1].device_class, "h200");
    assert_true(l.items[1].last_seen >= l.items[1].started_at);
    assert_true(fabs(l.items[1].last_seen - now_s()) < 5);
    gn_worker_list_free(&l);
    sleep_s(0.3);
    assert_int_equal(gn_store_worker_beat(s, "gpu-1", &err), 0);
    assert_int_equal(gn_store_list_workers(s, 0.2, &l, &err), 0); /* only the one that beat */
    assert_int_equal(l.n, 1);
    assert_string_equal(l.items[0].id, "gpu-1");
    gn_worker_list_free(&l);
    assert_int_equal(gn_store_worker_beat(s, "ghost", &err), 1);
    one_line(&err, "no such worker");
    gn_store_close(s);
    free(loc);
}

/* W processes claim and complete until the queue is empty; each writes the ids it
 * completed into a pipe.  Every job exactly once.  Returns cycles per second. */
static double run_claimers(const backend *b, const char *name, int jobs, int W)
{
    char *loc = fresh_location(b, name);
    gn_store *s = open_store(loc, GN_STORE_CREATE);
    for (int i = 0; i < jobs; i++)
        enqueue(s, i, "train", NULL, 1);
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    double t0 = now_s();
    pid_t pids[64];
    for (int w = 0; w < W; w++) {
        pids[w] = fork();
        assert_true(pids[w] >= 0);
        if (pids[w] == 0) {
            close(fd[0]);
            gn_store *cs;
            gn_error err;
            if (gn_store_open(loc, 0, &cs, &err)) {
                fprintf(stderr, "worker %d: %s\n", w, err.msg);
                _exit(2);
            }
            char wid[32];
            snprintf(wid, sizeof wid, "w%d", w);
            gn_claim_req rq = {.worker = wid, .kinds = GN_JOB_TRAIN, .lease_s = 60};
            for (;;) {
                gn_trial job;
                gn_lease l;
                int rc = gn_store_claim(cs, &rq, &job, &l, &err);
                gn_trial_clear(&job);
                if (rc == 1)
                    break;
                if (rc < 0 || complete_done(cs, &l, 0.5, &err)) {
                    fprintf(stderr, "worker %d: %s\n", w, err.msg);
                    _exit(3);
                }
                int64_t id = l.trial_id;
                if (write(fd[1], &id, sizeof id) != sizeof id)
                    _exit(4);
            }
            gn_store_close(cs);
            _exit(0);
        }
    }
    close(fd[1]);
    int *seen = calloc((size_t)jobs + 1, sizeof(int));
    int64_t id;
    int got = 0;
    while (read(fd[0], &id, sizeof id) == sizeof id) {
        assert_true(id >= 1 && id <= jobs);
        seen[id]++;
        got++;
    }
    close(fd[0]);
    for (int w = 0; w < W; w++) {
        int st;
        waitpid(pids[w], &st, 0);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    double dt = now_s() - t0;
    assert_int_equal(got, jobs);
    for (int i = 1; i <= jobs; i++)
        assert_int_equal(seen[i], 1);
    free(seen);
    gn_trial_filter f;
    gn_trial_filter_init(&f);
    f.status = GN_TRIAL_DONE;
    int64_t n;
    gn_error err;
    assert_int_equal(gn_store_count_trials(s, &f, &n, &err), 0);
    assert_int_equal(n, jobs);
    gn_store_close(s);
    free(loc);
    double rate = jobs / dt;
    printf("claim throughput %s: %d processes, %d jobs, %.2f s: %.0f claim+complete cycles/s\n", b->name, W, jobs, dt,
           rate);
    fflush(stdout);
    return rate;
}

static void test_concurrent_claims(void **state)
{
    const backend *b = *state;
    run_claimers(b, "concurrent", 300, 4);
    const char *bench = getenv("GPUNAS_CLAIM_BENCH");
    if (bench && *bench == '1') {
        int ws[] = {1, 4, 16};
        for (int i = 0; i < 3; i++)
            run_claimers(b, "bench", 1000, ws[i]);
    }
}

static void test_reconnect(void **state)
{
    const backend *b = *state;
    if (!b->pg)
        return; /* a file has no server to lose */
    char *loc = fresh_location(b, "reconnect");
    gn_store *s = open_store(loc, GN_STORE_CREATE);
    gn_error err;
    assert_int_equal(gn_store_put_meta(s, "k", "v1", &err), 0);
    enqueue(s, 0, "train", NULL, 1);
    assert_int_equal(sh("cd %s && %s" PG_BIN "/pg_ctl -D %s/data -l %s/server.log -m immediate -w -t 60 restart "
                        ">/dev/null 2>&1", pg_dir, as_user, pg_dir, pg_dir), 0);
    char *v;
    if (gn_store_get_meta(s, "k", &v, &err)) /* reconnects once */
        fail_msg("%s", err.msg);
    assert_string_equal(v, "v1");
    free(v);
    gn_lease l;
    assert_int_equal(claim(s, "w", NULL, GN_JOB_TRAIN, 30, &l, NULL), 0);
    assert_int_equal(sh("cd %s && %s" PG_BIN "/pg_ctl -D %s/data -l %s/server.log -m immediate -w -t 60 restart "
                        ">/dev/null 2>&1", pg_dir, as_user, pg_dir, pg_dir), 0);
    assert_int_equal(complete_done(s, &l, 0.9, &err), 0); /* the claim survived the crash (committed) */
    gn_store_close(s);
    free(loc);
}

static void expect_open_error(const char *loc, unsigned flags, const char *msg, const char *never)
{
    gn_store *s;
    gn_error err;
    if (gn_store_open(loc, flags, &s, &err) == 0)
        fail_msg("%s opened", loc);
    assert_null(s);
    one_line(&err, msg);
    if (never && strstr(err.msg, never))
        fail_msg("error '%s' shows '%s'", err.msg, never);
}

static void test_bad_locations(void **state)
{
    const backend *b = *state;
    expect_open_error("mysql://db.example/nas", GN_STORE_CREATE, "unsupported trial store 'mysql'", NULL);
    char *loc = fresh_location(b, "other");
    if (b->pg) {
        expect_open_error("postgresql:///nas?host=/nonexistent-gpunas-dir&connect_timeout=2", GN_STORE_CREATE,
                          "postgresql:///nas?host=/nonexistent-gpunas-dir&connect_timeout=2: cannot connect to the "
                          "trial store:", NULL);
        char bad[256];
        snprintf(bad, sizeof bad, "postgresql://gpunas:s3cret@/nosuchdb?host=%s", pg_dir);
        expect_open_error(bad, GN_STORE_CREATE, "postgresql://gpunas:***@/nosuchdb", "s3cret");
        snprintf(bad, sizeof bad, "postgres:///nosuchdb?host=%s&password=s3cret&user=gpunas", pg_dir);
        expect_open_error(bad, GN_STORE_CREATE, "password=***&user=gpunas: cannot connect", "s3cret");
        expect_open_error(loc, 0, "not a gpunas trial store (empty database)", NULL);
        pg_sql("other", "CREATE TABLE photos(id int, path text)");
        expect_open_error(loc, GN_STORE_CREATE, "not a gpunas trial store (a PostgreSQL database with 1 tables", NULL);
        free(loc);
        loc = fresh_location(b, "other2");
        pg_sql("other2", "CREATE TABLE schema_version(version int)");
        expect_open_error(loc, GN_STORE_CREATE, "not a gpunas trial store (its schema_version table is another", NULL);
        free(loc);
        loc = fresh_location(b, "newer");
        gn_store_close(open_store(loc, GN_STORE_CREATE));
        pg_sql("newer", "INSERT INTO schema_version(version, applied_at) VALUES(6, 0)");
        expect_open_error(loc, 0, "trial store schema version 6 is newer than this gpunas supports (5)", NULL);
        free(loc);
        loc = fresh_location(b, "older");
        gn_store_close(open_store(loc, GN_STORE_CREATE));
        pg_sql("older", "DELETE FROM schema_version; INSERT INTO schema_version(version, applied_at) VALUES(2, 0)");
        expect_open_error(loc, 0, "damaged gpunas trial store: schema version 2", NULL);
    } else {
        const char *path = loc + 7;
        tu_write_file(path, "");
        expect_open_error(loc, 0, "not a gpunas trial store (empty database)", NULL);
        tu_write_file(path, "this is not a database, just some text that is long enough to fill a header....\n"
                            "more text, more text, more text, more text, more text, more text, more text\n");
        expect_open_error(loc, GN_STORE_CREATE, "not a gpunas trial store (not an SQLite database)", NULL);
    }
    free(loc);
}

#define SUITE(b)                                                                                             \
    cmocka_unit_test_prestate(test_meta_and_trials, &b), cmocka_unit_test_prestate(test_enqueue_claim_complete, &b), \
        cmocka_unit_test_prestate(test_device_class, &b), cmocka_unit_test_prestate(test_lease_expiry, &b),       \
        cmocka_unit_test_prestate(test_stages_and_meta_once, &b),                                                 \
        cmocka_unit_test_prestate(test_heartbeat_release, &b), cmocka_unit_test_prestate(test_workers, &b),       \
        cmocka_unit_test_prestate(test_levels, &b), cmocka_unit_test_prestate(test_pg_upgrade_v3, &b),            \
        cmocka_unit_test_prestate(test_pg_upgrade_v4, &b),                                                        \
        cmocka_unit_test_prestate(test_concurrent_claims, &b), cmocka_unit_test_prestate(test_reconnect, &b),     \
        cmocka_unit_test_prestate(test_bad_locations, &b)

int main(void)
{
    const struct CMUnitTest sqlite_tests[] = {SUITE(B_SQLITE)};
    const struct CMUnitTest pg_tests[] = {SUITE(B_PG)};
    int failed = cmocka_run_group_tests_name("store conformance: sqlite", sqlite_tests, NULL, NULL);
    failed += cmocka_run_group_tests_name("store conformance: postgresql", pg_tests, pg_start, pg_stop);
    return failed ? 1 : 0;
}
