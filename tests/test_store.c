/*
 * test_store.c — the trial store (gpunas/store.h) and `gpunas trials`.
 *
 * Checks: meta and trial round trips (every field, unknowns as NaN / -1 / NULL),
 * filters and ordering, a trial finishes exactly once; trials survive close/reopen
 * and the file is in WAL mode; a child process killed with SIGKILL while it writes
 * trials as fast as it can leaves every trial it reported finished intact (same
 * metrics), its marked running trial still running, and a database that passes
 * PRAGMA integrity_check; a file size limit (the disk-full path: SQLite gets a short
 * write) gives a one-line error naming the file, rolls back, and keeps the store
 * readable and consistent; files that are not stores (text, another application's
 * database, an empty database, a newer schema, a directory, a missing file, an
 * unsupported URL, a schema of 6) are refused with one line; stores of schema 1, 2, 3
 * and 4 are upgraded to 5 when opened (rows kept as proposals, level 0, naswot unknown,
 * one schema_version row per step, and the tables and indexes end identical to a new
 * store's); the zero-cost score (naswot) round-trips through insert and finish and
 * reads back NaN when finished without one; `gpunas trials` prints the table, the
 * filters, --levels and --json (naswot included, null when unknown or -inf), and
 * reports bad usage and bad stores as one line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gpunas/store.h"
#include "testutil.h"

static char *fresh_path(const char *name)
{
    char *p = tu_tmp_path(name);
    char side[1024];
    unlink(p);
    snprintf(side, sizeof side, "%s-wal", p);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", p);
    unlink(side);
    return p;
}

static gn_store *open_store(const char *path, unsigned flags)
{
    gn_store *s;
    gn_error err;
    if (gn_store_open(path, flags, &s, &err))
        fail_msg("%s", err.msg);
    return s;
}

static int64_t insert(gn_store *s, int64_t seq, int tier, const char *enc)
{
    gn_trial t;
    gn_trial_init(&t);
    t.seq = seq;
    t.tier = tier;
    t.encoding = (char *)enc;
    t.optimizer = (char *)"lamcts";
    gn_error err;
    if (gn_store_insert_trial(s, &t, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(t.status, GN_TRIAL_RUNNING);
    assert_false(isnan(t.created_at));
    return t.id;
}

/* finish with a zero-cost score (NaN: none) */
static void finish_scored(gn_store *s, int64_t id, gn_trial_status st, double acc, const char *error, double naswot)
{
    gn_trial t;
    gn_trial_init(&t);
    t.status = st;
    t.val_acc = acc;
    t.naswot = naswot;
    t.error = (char *)error;
    t.latency_ms = 0.5 + id * 0.001;
    t.latency_spread_ms = 0.01;
    t.params = 1000 * id;
    t.macs = 100000 * id;
    t.train_s = 12.5;
    gn_error err;
    if (gn_store_finish_trial(s, id, &t, &err))
        fail_msg("%s", err.msg);
}

static void finish(gn_store *s, int64_t id, gn_trial_status st, double acc, const char *error)
{
    finish_scored(s, id, st, acc, error, NAN);
}

static void test_round_trip(void **state)
{
    char *path = fresh_path("rt.db");
    gn_store *s = open_store(path, GN_STORE_CREATE);
    gn_error err;
    char *v;
    assert_int_equal(gn_store_get_meta(s, "space", &v, &err), 1);
    assert_null(v);
    assert_int_equal(gn_store_put_meta(s, "space", "fmnist", &err), 0);
    assert_int_equal(gn_store_put_meta(s, "tiers", "0.5,1,2", &err), 0);
    assert_int_equal(gn_store_put_meta(s, "space", "gpunet", &err), 0); /* replaces */
    assert_int_equal(gn_store_get_meta(s, "space", &v, &err), 0);
    assert_string_equal(v, "gpunet");
    free(v);

    /* a trial with every field set */
    gn_trial t, g;
    gn_trial_init(&t);
    t.seq = 7;
    t.tier = 2;
    t.encoding = (char *)"1,0,3";
    t.config = (char *)"[{\"layer_type\": \"data\"}]";
    t.latency_ms = 0.731;
    t.latency_spread_ms = 0.012;
    t.params = 208000;
    t.macs = 5000000;
    t.created_at = 1700000000.25;
    t.worker = (char *)"host-a/0";
    t.optimizer = (char *)"evolution";
    t.naswot = 1234.0625; /* a zero-cost score known at the insert */
    assert_int_equal(gn_store_insert_trial(s, &t, &err), 0);
    assert_int_equal(t.id, 1);
    assert_true(t.created_at == 1700000000.25);
    assert_false(isnan(t.started_at));
    assert_int_equal(gn_store_get_trial(s, 1, &g, &err), 0);
    assert_int_equal(g.status, GN_TRIAL_RUNNING);
    assert_true(isnan(g.val_acc) && isnan(g.train_s) && isnan(g.finished_at));
    assert_true(g.naswot == 1234.0625);
    assert_null(g.error);
    gn_trial_clear(&g);

    gn_trial f;
    gn_trial_init(&f);
    f.status = GN_TRIAL_DONE;
    f.val_acc = 0.8765;
    f.naswot = 1510.123456789012; /* written with the proxy result, like val_acc */
    f.train_s = 21.5;
    f.latency_ms = 0.702; /* re-measured: replaces */
    assert_int_equal(gn_store_finish_trial(s, 1, &f, &err), 0);
    assert_int_equal(gn_store_get_trial(s, 1, &g, &err), 0);
    assert_int_equal(g.id, 1);
    assert_int_equal(g.seq, 7);
    assert_int_equal(g.tier, 2);
    assert_string_equal(g.encoding, "1,0,3");
    assert_string_equal(g.config, t.config);
    assert_int_equal(g.status, GN_TRIAL_DONE);
    assert_true(g.val_acc == 0.8765);
    assert_true(g.naswot == 1510.123456789012);
    assert_true(g.latency_ms == 0.702);
    assert_true(g.latency_spread_ms == 0.012); /* kept */
    assert_int_equal(g.params, 208000);
    assert_int_equal(g.macs, 5000000);
    assert_true(g.train_s == 21.5);
    assert_true(g.created_at == 1700000000.25);
    assert_true(g.started_at == t.started_at);
    assert_true(g.finished_at >= g.started_at);
    assert_string_equal(g.worker, "host-a/0");
    assert_string_equal(g.optimizer, "evolution");
    assert_null(g.error);
    gn_trial_clear(&g);

    /* a trial is finished once; unknown ids and bad statuses are refused */
    assert_int_not_equal(gn_store_finish_trial(s, 1, &f, &err), 0);
    assert_non_null(strstr(err.msg, "finish trial 1: the trial is already done"));
    assert_int_not_equal(gn_store_finish_trial(s, 99, &f, &err), 0);
    assert_non_null(strstr(err.msg, "finish trial 99: no such trial"));
    f.status = GN_TRIAL_RUNNING;
    assert_int_not_equal(gn_store_finish_trial(s, 1, &f, &err), 0);
    assert_non_null(strstr(err.msg, "status must be done, failed or pruned"));
    assert_int_equal(gn_store_get_trial(s, 99, &g, &err), 1);
    gn_trial_init(&t);
    assert_int_not_equal(gn_store_insert_trial(s, &t, &err), 0);
    assert_non_null(strstr(err.msg, "no encoding"));

    /* more trials: tiers, statuses, order, filters */
    int64_t a = insert(s, 8, 0, "0,0,0"), b = insert(s, 9, -1, "0,0,1"), c = insert(s, 10, 2, "0,1,1"),
            d = insert(s, 11, 0, "1,1,1");
    assert_true(a == 2 && b == 3 && c == 4 && d == 5);
    finish(s, a, GN_TRIAL_DONE, 0.5, NULL);
    finish(s, b, GN_TRIAL_PRUNED, NAN, NULL);
    finish(s, c, GN_TRIAL_FAILED, NAN, "out of memory");
    gn_trial_list l;
    assert_int_equal(gn_store_list_trials(s, NULL, &l, &err), 0);
    assert_int_equal(l.n, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(l.items[i].id, i + 1);
    assert_string_equal(l.items[3].error, "out of memory");
    assert_int_equal(l.items[2].tier, -1);
    for (int i = 1; i < 5; i++) /* inserted and finished without a score */
        assert_true(isnan(l.items[i].naswot));
    gn_trial_list_free(&l);

    gn_trial_filter flt;
    gn_trial_filter_init(&flt);
    int64_t n;
    flt.status = GN_TRIAL_DONE;
    assert_int_equal(gn_store_count_trials(s, &flt, &n, &err), 0);
    assert_int_equal(n, 2);
    flt.tier = 0;
    assert_int_equal(gn_store_list_trials(s, &flt, &l, &err), 0);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.items[0].id, a);
    gn_trial_list_free(&l);
    gn_trial_filter_init(&flt);
    flt.tier = -1;
    assert_int_equal(gn_store_count_trials(s, &flt, &n, &err), 0);
    assert_int_equal(n, 1);
    gn_trial_filter_init(&flt);
    flt.status = GN_TRIAL_RUNNING;
    assert_int_equal(gn_store_list_trials(s, &flt, &l, &err), 0);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.items[0].id, d);
    gn_trial_list_free(&l);
    gn_trial_filter_init(&flt);
    flt.after_id = 2;
    flt.limit = 2;
    assert_int_equal(gn_store_list_trials(s, &flt, &l, &err), 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.items[0].id, 3);
    assert_int_equal(l.items[1].id, 4);
    gn_trial_list_free(&l);
    assert_int_equal(gn_store_count_trials(s, &flt, &n, &err), 0);
    assert_int_equal(n, 2);

    /* a second handle (another process would do the same) sees the writes */
    gn_store *s2 = open_store(path, GN_STORE_FAST); /* synchronous=NORMAL on this handle */
    assert_int_equal(gn_store_count_trials(s2, NULL, &n, &err), 0);
    assert_int_equal(n, 5);
    int64_t e = insert(s2, 12, 1, "2,2,2");
    assert_int_equal(e, 6);
    assert_int_equal(gn_store_count_trials(s, NULL, &n, &err), 0);
    assert_int_equal(n, 6);
    gn_store_close(s2);
    char url[1100];
    snprintf(url, sizeof url, "sqlite:%s", path); /* the explicit form of the location */
    s2 = open_store(url, 0);
    assert_int_equal(gn_store_count_trials(s2, NULL, &n, &err), 0);
    assert_int_equal(n, 6);
    gn_store_close(s2);
    assert_string_equal(gn_store_where(s), path);
    gn_store_close(s);

    /* close / reopen: all of it is there */
    s = open_store(path, 0);
    assert_int_equal(gn_store_get_meta(s, "tiers", &v, &err), 0);
    assert_string_equal(v, "0.5,1,2");
    free(v);
    assert_int_equal(gn_store_list_trials(s, NULL, &l, &err), 0);
    assert_int_equal(l.n, 6);
    assert_true(l.items[0].val_acc == 0.8765);
    assert_true(l.items[0].naswot == 1510.123456789012);
    assert_true(isnan(l.items[1].naswot));
    assert_int_equal(l.items[3].status, GN_TRIAL_FAILED);
    assert_int_equal(l.items[4].status, GN_TRIAL_RUNNING);
    assert_int_equal(l.items[5].tier, 1);
    gn_trial_list_free(&l);
    gn_store_close(s);

    /* the file is a WAL database of ours */
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
    free(path);
}

static int integrity_ok(const char *path)
{
    sqlite3 *db;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
        return 0;
    sqlite3_stmt *st;
    int ok = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK &&
             sqlite3_step(st) == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return ok;
}

/* Child: write trials as fast as possible (seq continues from the rows already
 * there), report each finished id on the pipe after its commit returned; the 10th
 * trial of the round is left running and reported negated.  Never returns: the
 * parent kills it. */
static void writer_child(const char *path, int fd)
{
    gn_store *s;
    gn_error err;
    int64_t have;
    if (gn_store_open(path, GN_STORE_CREATE, &s, &err) || gn_store_count_trials(s, NULL, &have, &err))
        _exit(3);
    for (int64_t i = 1;; i++) {
        gn_trial t;
        gn_trial_init(&t);
        t.seq = have + i;
        t.encoding = (char *)"1,2,3";
        if (gn_store_insert_trial(s, &t, &err))
            _exit(4);
        if (i == 10) {
            int64_t mark = -t.id;
            if (write(fd, &mark, sizeof mark) != sizeof mark)
                _exit(5);
            continue; /* left running */
        }
        gn_trial f;
        gn_trial_init(&f);
        f.status = GN_TRIAL_DONE;
        f.val_acc = 1.0 / (double)t.id;
        f.train_s = (double)t.id;
        if (gn_store_finish_trial(s, t.id, &f, &err))
            _exit(6);
        if (write(fd, &t.id, sizeof t.id) != sizeof t.id)
            _exit(7);
    }
}

/* One writer process, killed with SIGKILL `delay_us` after its 30th report.
 * Returns the reported finished ids (appended to ids) and the running one. */
static int64_t kill_round(const char *path, int delay_us, int64_t *ids, int *nids)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        writer_child(path, fds[1]);
        _exit(0);
    }
    close(fds[1]);
    int64_t running = 0;
    int got = 0;
    while (got < 30) {
        int64_t id;
        if (read(fds[0], &id, sizeof id) != sizeof id)
            fail_msg("writer child stopped early");
        if (id < 0) {
            running = -id;
        } else {
            ids[(*nids)++] = id;
            got++;
        }
    }
    if (delay_us)
        usleep((useconds_t)delay_us);
    kill(pid, SIGKILL); /* the child is somewhere in an insert or a finish */
    int status;
    waitpid(pid, &status, 0);
    close(fds[0]);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    assert_true(running > 0);
    return running;
}

static void test_kill9(void **state)
{
    char *path = fresh_path("kill.db");
    int64_t ids[256], running[3];
    int nids = 0;
    static const int delays[3] = {0, 1500, 6000};
    gn_error err;
    for (int round = 0; round < 3; round++) {
        running[round] = kill_round(path, delays[round], ids, &nids);
        assert_true(integrity_ok(path));
        gn_store *s = open_store(path, 0);
        for (int i = 0; i < nids; i++) {
            gn_trial g;
            assert_int_equal(gn_store_get_trial(s, ids[i], &g, &err), 0);
            assert_int_equal(g.status, GN_TRIAL_DONE);
            assert_true(g.val_acc == 1.0 / (double)ids[i]);
            assert_true(g.train_s == (double)ids[i]);
            gn_trial_clear(&g);
        }
        for (int r = 0; r <= round; r++) {
            gn_trial g;
            assert_int_equal(gn_store_get_trial(s, running[r], &g, &err), 0);
            assert_int_equal(g.status, GN_TRIAL_RUNNING);
            gn_trial_clear(&g);
        }
        /* every stored row is consistent: ids 1..n without gaps, one per proposal, done
         * rows complete; running rows are the marked ones and at most one cut off per round */
        gn_trial_list l;
        assert_int_equal(gn_store_list_trials(s, NULL, &l, &err), 0);
        assert_true(l.n >= nids + round + 1);
        int n_running = 0;
        for (int64_t i = 0; i < l.n; i++) {
            assert_int_equal(l.items[i].id, i + 1);
            assert_int_equal(l.items[i].seq, i + 1);
            if (l.items[i].status == GN_TRIAL_DONE)
                assert_true(l.items[i].val_acc == 1.0 / (double)l.items[i].id);
            else
                n_running++;
        }
        assert_true(n_running >= round + 1 && n_running <= 2 * (round + 1));
        print_message("kill -9 round %d (%d us after the 30th report): %lld rows, %d reported finished, %d running\n",
                      round, delays[round], (long long)l.n, nids, n_running);
        gn_trial_list_free(&l);
        gn_store_close(s);
    }
    /* the resumed search can go on writing */
    gn_store *s = open_store(path, 0);
    int64_t id = insert(s, 1000, -1, "0");
    assert_true(id > running[2]);
    finish(s, id, GN_TRIAL_FAILED, NAN, "interrupted");
    gn_store_close(s);
    free(path);
}

/* Child: under a file-size limit, insert big trials until SQLite reports the short
 * write; check the error is one line naming the file and the store stays usable. */
static void full_child(const char *path, int64_t *committed_out, int fd)
{
    signal(SIGXFSZ, SIG_IGN); /* write(2) then fails with EFBIG instead of killing us */
    struct rlimit rl = {.rlim_cur = 256 * 1024, .rlim_max = 256 * 1024};
    if (setrlimit(RLIMIT_FSIZE, &rl))
        _exit(10);
    gn_store *s;
    gn_error err;
    if (gn_store_open(path, 0, &s, &err))
        _exit(11);
    char *big = malloc(40001);
    memset(big, 'x', 40000);
    big[40000] = 0;
    int64_t committed = 0;
    int rc = 0;
    for (int i = 0; i < 100; i++) {
        gn_trial t;
        gn_trial_init(&t);
        t.seq = 100 + i;
        t.encoding = (char *)"9";
        t.config = big;
        if ((rc = gn_store_insert_trial(s, &t, &err)) != 0)
            break;
        committed++;
    }
    free(big);
    if (rc == 0)
        _exit(12);
    /* the message: one line, names the file */
    char msg[GN_ERROR_MAX + 16];
    snprintf(msg, sizeof msg, "%s", err.msg);
    ssize_t wn = write(fd, msg, strlen(msg) + 1);
    (void)wn;
    /* still consistent and readable after the failed write */
    int64_t n;
    if (gn_store_count_trials(s, NULL, &n, &err) || n != 2 + committed)
        _exit(13);
    gn_store_close(s);
    *committed_out = committed;
    _exit((int)committed);
}

static void test_io_error(void **state)
{
    char *path = fresh_path("full.db");
    gn_store *s = open_store(path, GN_STORE_CREATE);
    insert(s, 1, 0, "1");
    finish(s, 1, GN_TRIAL_DONE, 0.9, NULL);
    insert(s, 2, 0, "2");
    gn_store_close(s);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int64_t c;
        close(fds[0]);
        full_child(path, &c, fds[1]);
    }
    close(fds[1]);
    char msg[1024] = {0};
    ssize_t got = read(fds[0], msg, sizeof msg - 1);
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    int committed = WEXITSTATUS(status);
    assert_true(got > 0);
    print_message("size-limited store: %d big trials committed, then: %s\n", committed, msg);
    assert_true(committed >= 1 && committed < 10);
    assert_non_null(strstr(msg, path));
    assert_non_null(strstr(msg, "insert trial (seq"));
    assert_true(strstr(msg, "disk is full") || strstr(msg, "I/O error"));
    assert_null(strchr(msg, '\n'));

    assert_true(integrity_ok(path));
    s = open_store(path, 0);
    gn_error err;
    int64_t n;
    assert_int_equal(gn_store_count_trials(s, NULL, &n, &err), 0);
    assert_int_equal(n, 2 + committed);
    gn_trial g;
    assert_int_equal(gn_store_get_trial(s, 1, &g, &err), 0);
    assert_true(g.val_acc == 0.9);
    gn_trial_clear(&g);
    gn_store_close(s);
    free(path);
}

static void expect_open_error(const char *where, unsigned flags, const char *msg)
{
    gn_store *s = (gn_store *)1;
    gn_error err;
    if (gn_store_open(where, flags, &s, &err) == 0)
        fail_msg("%s: opened", where);
    assert_null(s);
    if (!strstr(err.msg, msg) || strchr(err.msg, '\n'))
        fail_msg("%s: expected '%s', got '%s'", where, msg, err.msg);
}

static void sql(const char *path, const char *text)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *e = NULL;
    if (sqlite3_exec(db, text, NULL, NULL, &e) != SQLITE_OK)
        fail_msg("%s", e);
    sqlite3_close(db);
}

static void test_not_a_store(void **state)
{
    char *p = fresh_path("text.db");
    tu_write_file(p, "this is not a database, just some text that is long enough to fill a header....\n"
                     "more text, more text, more text, more text, more text, more text, more text\n");
    expect_open_error(p, GN_STORE_CREATE, "not a gpunas trial store (not an SQLite database)");
    /* the file was not touched */
    char *back = tu_read_file(p, NULL);
    assert_non_null(strstr(back, "this is not a database"));
    free(back);
    free(p);

    p = fresh_path("other.db");
    sql(p, "CREATE TABLE photos(id INTEGER, path TEXT); INSERT INTO photos VALUES(1, 'a.jpg');");
    expect_open_error(p, GN_STORE_CREATE, "not a gpunas trial store (an SQLite database of another application)");
    free(p);

    p = fresh_path("empty.db");
    tu_write_file(p, "");
    expect_open_error(p, 0, "not a gpunas trial store (empty database)");
    gn_store *s = open_store(p, GN_STORE_CREATE); /* an empty file may become a store */
    gn_store_close(s);
    free(p);

    p = fresh_path("newer.db");
    s = open_store(p, GN_STORE_CREATE);
    gn_store_close(s);
    sql(p, "INSERT INTO schema_version VALUES(6, 0);");
    expect_open_error(p, 0, "trial store schema version 6 is newer than this gpunas supports (5)");
    free(p);

    p = fresh_path("appid.db");
    sql(p, "PRAGMA application_id = 1234; CREATE TABLE x(y);");
    expect_open_error(p, 0, "not a gpunas trial store (SQLite application_id 0x000004d2)");
    free(p);

    p = fresh_path("missing.db");
    expect_open_error(p, 0, "cannot open trial store: No such file or directory");
    struct stat st;
    assert_int_not_equal(stat(p, &st), 0); /* not created */
    free(p);
    p = tu_tmp_path("adir");
    mkdir(p, 0777);
    expect_open_error(p, GN_STORE_CREATE, "is a directory");
    rmdir(p);
    free(p);
    expect_open_error("mysql://db.example/nas", GN_STORE_CREATE,
                      "unsupported trial store 'mysql' (trials are stored in SQLite files");
    expect_open_error("", GN_STORE_CREATE, "no location given");
}

/* The store files of old schemas, as gpunas wrote them: schema 1 (before latency_info),
 * 2 (before the work queue), 3 (before fidelity levels), 4 (before the zero-cost
 * score). */
#define V1_SQL                                                                                                 \
    "PRAGMA journal_mode=WAL;"                                                                                 \
    "CREATE TABLE schema_version(version INTEGER NOT NULL, applied_at REAL NOT NULL);"                         \
    "CREATE TABLE meta(key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);"                                   \
    "CREATE TABLE trials(id INTEGER PRIMARY KEY AUTOINCREMENT, seq INTEGER NOT NULL, tier INTEGER,"            \
    " encoding TEXT NOT NULL, config TEXT,"                                                                    \
    " status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'pruned')),"                         \
    " val_acc REAL, latency_ms REAL, latency_spread_ms REAL, params INTEGER, macs INTEGER, train_s REAL,"      \
    " created_at REAL NOT NULL, started_at REAL, finished_at REAL, worker TEXT, error TEXT, optimizer TEXT);" \
    "CREATE INDEX trials_status ON trials(status, id);"                                                        \
    "CREATE INDEX trials_tier ON trials(tier, id);"                                                            \
    "INSERT INTO schema_version VALUES(1, 0);"                                                                 \
    "INSERT INTO meta VALUES('nas.tiers', '0.1,0.2');"                                                         \
    "INSERT INTO trials(seq, tier, encoding, status, latency_ms, created_at) VALUES(0, 1, '1,2', 'done', 0.15, 1);" \
    "PRAGMA application_id = 1735287155;"
#define V2_SQL V1_SQL "ALTER TABLE trials ADD COLUMN latency_info TEXT;INSERT INTO schema_version VALUES(2, 0);"
#define V3_SQL                                                                                                 \
    "PRAGMA journal_mode=WAL;"                                                                                 \
    "CREATE TABLE schema_version(version INTEGER NOT NULL, applied_at REAL NOT NULL);"                         \
    "CREATE TABLE meta(key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);"                                   \
    "CREATE TABLE trials( id INTEGER PRIMARY KEY AUTOINCREMENT, seq INTEGER NOT NULL, tier INTEGER,"           \
    " encoding TEXT NOT NULL, config TEXT,"                                                                    \
    " status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'pruned', 'queued', 'leased')),"     \
    " val_acc REAL, latency_ms REAL, latency_spread_ms REAL, params INTEGER, macs INTEGER, train_s REAL,"      \
    " created_at REAL NOT NULL, started_at REAL, finished_at REAL,"                                            \
    " worker TEXT, error TEXT, optimizer TEXT, latency_info TEXT,"                                             \
    " kind TEXT CHECK (kind IN ('measure', 'train')), device_class TEXT, device TEXT,"                         \
    " attempts INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER NOT NULL DEFAULT 0,"                           \
    " lease_token TEXT, lease_expires_at REAL);"                                                               \
    "CREATE INDEX trials_status ON trials(status, id);"                                                        \
    "CREATE INDEX trials_tier ON trials(tier, id);"                                                            \
    "CREATE INDEX trials_queue ON trials(kind, device_class, id) WHERE status = 'queued';"                     \
    "CREATE INDEX trials_lease ON trials(lease_expires_at) WHERE status = 'leased';"                           \
    "CREATE TABLE workers(id TEXT PRIMARY KEY NOT NULL, host TEXT NOT NULL, pid INTEGER,"                      \
    " device_class TEXT, started_at REAL NOT NULL, last_seen REAL NOT NULL);"                                  \
    "INSERT INTO schema_version VALUES(3, 0);"                                                                 \
    "INSERT INTO meta VALUES('nas.tiers', '0.1,0.2');"                                                         \
    "INSERT INTO trials(seq, tier, encoding, status, latency_ms, created_at, attempts)"                        \
    " VALUES(0, 1, '1,2', 'done', 0.15, 1, 1);"                                                                \
    "INSERT INTO trials(seq, encoding, status, created_at, kind, attempts, max_attempts)"                      \
    " VALUES(1, '3,3', 'queued', 2, 'train', 0, 3);"                                                           \
    "PRAGMA application_id = 1735287155;"
/* schema 4: schema 3 upgraded in place as gpunas 4 did it (the same columns as its new
 * stores), with a promotion of trial 1 that was trained */
#define V4_SQL V3_SQL                                                                                          \
    "ALTER TABLE trials ADD COLUMN level INTEGER NOT NULL DEFAULT 0;"                                          \
    "ALTER TABLE trials ADD COLUMN parent INTEGER;"                                                            \
    "CREATE INDEX trials_parent ON trials(parent, level) WHERE parent IS NOT NULL;"                            \
    "INSERT INTO schema_version VALUES(4, 0);"                                                                 \
    "INSERT INTO trials(seq, tier, encoding, status, val_acc, latency_ms, created_at, attempts, level, parent)" \
    " VALUES(0, 1, '1,2', 'done', 0.875, 0.15, 3, 1, 1, 1);"

/* The shape of a store file: every column of trials, meta, workers and schema_version
 * (PRAGMA table_info: name, type, not null, default, key) and every index's SQL, one
 * line each (malloc'd). */
static char *schema_shape(const char *path)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    size_t cap = 1 << 16, n = 0;
    char *out = calloc(1, cap);
    const char *tables[] = {"schema_version", "meta", "trials", "workers"};
    for (size_t i = 0; i < 4; i++) {
        char q[128];
        snprintf(q, sizeof q, "SELECT name, type, \"notnull\", coalesce(dflt_value, '-'), pk FROM pragma_table_info('%s')",
                 tables[i]);
        sqlite3_stmt *st;
        assert_int_equal(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
        while (sqlite3_step(st) == SQLITE_ROW)
            n += (size_t)snprintf(out + n, cap - n, "%s.%s %s %d %s %d\n", tables[i], sqlite3_column_text(st, 0),
                                  sqlite3_column_text(st, 1), sqlite3_column_int(st, 2), sqlite3_column_text(st, 3),
                                  sqlite3_column_int(st, 4));
        sqlite3_finalize(st);
    }
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT name, tbl_name, coalesce(sql, '-') FROM sqlite_master"
                                        " WHERE type = 'index' ORDER BY name",
                                        -1, &st, NULL),
                     SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW)
        n += (size_t)snprintf(out + n, cap - n, "index %s on %s: %s\n", sqlite3_column_text(st, 0),
                              sqlite3_column_text(st, 1), sqlite3_column_text(st, 2));
    sqlite3_finalize(st);
    sqlite3_close(db);
    assert_true(n < cap - 1);
    return out;
}

/* schema_version rows after an upgrade: count and max */
static void expect_versions(const char *path, int count, int max)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*), max(version) FROM schema_version", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), count);
    assert_int_equal(sqlite3_column_int(st, 1), max);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* An upgraded store has exactly the tables and indexes of a new one. */
static void expect_fresh_shape(const char *path)
{
    char *fresh = fresh_path("shape-fresh.db");
    gn_store_close(open_store(fresh, GN_STORE_CREATE));
    char *want = schema_shape(fresh), *got = schema_shape(path);
    if (strcmp(want, got))
        fail_msg("upgraded store %s differs from a new one:\n--- new\n%s--- upgraded\n%s", path, want, got);
    assert_non_null(strstr(got, "trials.level INTEGER 1 0 0"));
    assert_non_null(strstr(got, "trials.parent INTEGER 0 - 0"));
    assert_non_null(strstr(got, "trials.naswot REAL 0 - 0"));
    assert_non_null(strstr(got, "index trials_parent on trials: CREATE INDEX trials_parent ON trials(parent, level) WHERE parent IS NOT NULL"));
    free(want);
    free(got);
    free(fresh);
}

/* A schema-1 store (as gpunas wrote it before latency_info) is upgraded when opened
 * (to schema 5: latency_info, then the work queue's columns, then fidelity levels,
 * then the zero-cost score):
 * its trials are kept with their ids, the new columns read NULL (level 0) for them and
 * take values after. */
static void test_migrate_v1(void **state)
{
    char *p = fresh_path("v1.db");
    sql(p, V1_SQL);
    gn_store *s = open_store(p, 0);
    gn_error err;
    gn_trial g, t;
    assert_int_equal(gn_store_get_trial(s, 1, &g, &err), 0);
    assert_string_equal(g.encoding, "1,2");
    assert_true(g.latency_ms == 0.15);
    assert_null(g.latency_info);
    assert_int_equal(g.level, 0);
    assert_int_equal(g.parent, 0);
    assert_true(isnan(g.naswot));
    gn_trial_clear(&g);
    gn_trial_init(&t);
    t.seq = 1;
    t.encoding = (char *)"3,4";
    t.latency_info = (char *)"{\"threads\":1}";
    assert_int_equal(gn_store_insert_trial(s, &t, &err), 0);
    assert_int_equal(t.id, 2); /* the AUTOINCREMENT counter survived the table rebuild */
    assert_int_equal(gn_store_get_trial(s, t.id, &g, &err), 0);
    assert_string_equal(g.latency_info, "{\"threads\":1}");
    gn_trial_clear(&g);
    /* finishing with new conditions replaces them; without, keeps them */
    gn_trial f;
    gn_trial_init(&f);
    f.status = GN_TRIAL_PRUNED;
    f.latency_info = (char *)"{\"threads\":2}";
    assert_int_equal(gn_store_finish_trial(s, t.id, &f, &err), 0);
    assert_int_equal(gn_store_get_trial(s, t.id, &g, &err), 0);
    assert_string_equal(g.latency_info, "{\"threads\":2}");
    gn_trial_clear(&g);
    gn_store_close(s);
    /* reopening does not upgrade twice */
    s = open_store(p, 0);
    assert_int_equal(gn_store_get_trial(s, 1, &g, &err), 0);
    assert_string_equal(g.encoding, "1,2");
    gn_trial_clear(&g);
    gn_store_close(s);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*), max(version) FROM schema_version", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 5); /* 1 -> 2 -> 3 -> 4 -> 5 in one upgrade */
    assert_int_equal(sqlite3_column_int(st, 1), 5);
    sqlite3_finalize(st);
    sqlite3_close(db);
    expect_fresh_shape(p);
    free(p);
}

/* Schema 2 (latency_info, no queue) and schema 3 (the queue, no levels) upgrade to 5:
 * rows kept with their ids and fields, level 0, no parent, naswot unknown; a promotion can then be
 * enqueued and listed; the upgraded file has a new store's tables and indexes. */
static void test_migrate_v2_v3(void **state)
{
    for (int from = 2; from <= 3; from++) {
        char name[32];
        snprintf(name, sizeof name, "v%d.db", from);
        char *p = fresh_path(name);
        sql(p, from == 2 ? V2_SQL : V3_SQL);
        gn_store *s = open_store(p, 0);
        gn_error err;
        gn_trial g;
        assert_int_equal(gn_store_get_trial(s, 1, &g, &err), 0);
        assert_string_equal(g.encoding, "1,2");
        assert_int_equal(g.status, GN_TRIAL_DONE);
        assert_true(g.latency_ms == 0.15);
        assert_int_equal(g.tier, 1);
        assert_int_equal(g.attempts, 1);
        assert_int_equal(g.level, 0);
        assert_int_equal(g.parent, 0);
        assert_true(isnan(g.naswot));
        gn_trial_clear(&g);
        int64_t old_n = from == 3 ? 2 : 1;
        if (from == 3) {
            assert_int_equal(gn_store_get_trial(s, 2, &g, &err), 0);
            assert_int_equal(g.status, GN_TRIAL_QUEUED);
            assert_string_equal(g.kind, "train");
            assert_int_equal(g.max_attempts, 3);
            assert_int_equal(g.level, 0);
            assert_int_equal(g.parent, 0);
            gn_trial_clear(&g);
        }
        gn_trial t;
        gn_trial_init(&t);
        t.seq = 5;
        t.encoding = (char *)"1,2";
        t.kind = (char *)"train";
        t.max_attempts = 1;
        t.level = 1;
        t.parent = 1;
        assert_int_equal(gn_store_enqueue(s, &t, &err), 0);
        assert_int_equal(t.id, old_n + 1); /* ids go on */
        gn_trial_filter f;
        gn_trial_filter_init(&f);
        int64_t n;
        assert_int_equal(gn_store_count_trials(s, &f, &n, &err), 0);
        assert_int_equal(n, old_n); /* the proposals: every old row */
        f.level = GN_LEVEL_ANY;
        gn_trial_list l;
        assert_int_equal(gn_store_list_trials(s, &f, &l, &err), 0);
        assert_int_equal(l.n, old_n + 1);
        assert_int_equal(l.items[old_n].level, 1);
        assert_int_equal(l.items[old_n].parent, 1);
        gn_trial_list_free(&l);
        gn_store_close(s);
        s = open_store(p, 0); /* reopening does not upgrade twice */
        gn_store_close(s);
        expect_versions(p, from == 2 ? 5 : 3, 5);
        expect_fresh_shape(p);
        free(p);
    }
}

/* A schema-4 store (fidelity levels, no zero-cost score) upgrades to 5 in place: the
 * naswot column appears (as in a new store), every old row reads it NaN and keeps its
 * other fields, version 5 is recorded once (after 3 and 4), reopening does not upgrade
 * again, and new results store their score. */
static void test_migrate_v4(void **state)
{
    char *p = fresh_path("v4.db");
    sql(p, V4_SQL);
    gn_store *s = open_store(p, 0);
    gn_error err;
    gn_trial_filter f;
    gn_trial_filter_init(&f);
    f.level = GN_LEVEL_ANY;
    gn_trial_list l;
    assert_int_equal(gn_store_list_trials(s, &f, &l, &err), 0);
    assert_int_equal(l.n, 3);
    for (int64_t i = 0; i < l.n; i++)
        assert_true(isnan(l.items[i].naswot));
    assert_int_equal(l.items[1].status, GN_TRIAL_QUEUED);
    assert_int_equal(l.items[2].level, 1);
    assert_int_equal(l.items[2].parent, 1);
    assert_true(l.items[2].val_acc == 0.875);
    gn_trial_list_free(&l);
    gn_trial t, r, g;
    gn_trial_init(&t);
    t.seq = 2;
    t.encoding = (char *)"4,4";
    assert_int_equal(gn_store_insert_trial(s, &t, &err), 0);
    assert_int_equal(t.id, 4); /* ids go on */
    gn_trial_init(&r);
    r.status = GN_TRIAL_DONE;
    r.val_acc = 0.5;
    r.naswot = -37.75;
    assert_int_equal(gn_store_finish_trial(s, t.id, &r, &err), 0);
    gn_store_close(s);
    s = open_store(p, 0); /* reopening does not upgrade twice */
    assert_int_equal(gn_store_get_trial(s, t.id, &g, &err), 0);
    assert_true(g.naswot == -37.75 && g.val_acc == 0.5);
    gn_trial_clear(&g);
    assert_int_equal(gn_store_get_trial(s, 1, &g, &err), 0);
    assert_true(isnan(g.naswot));
    assert_true(g.latency_ms == 0.15);
    gn_trial_clear(&g);
    gn_store_close(s);
    expect_versions(p, 3, 5); /* 3, 4, then 5 */
    expect_fresh_shape(p);
    free(p);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

static void test_cli_trials(void **state)
{
    char *path = fresh_path("cli.db");
    gn_store *s = open_store(path, GN_STORE_CREATE);
    int64_t a = insert(s, 1, 0, "0,1,2"), b = insert(s, 2, 1, "1,1,1"), c = insert(s, 3, -1, "2,2,2");
    insert(s, 4, 1, "3,3,3");
    finish_scored(s, a, GN_TRIAL_DONE, 0.9012, NULL, 812.5);
    finish(s, b, GN_TRIAL_FAILED, NAN, "training diverged (loss nan)");
    finish(s, c, GN_TRIAL_PRUNED, NAN, NULL);
    gn_trial t;
    gn_trial_init(&t);
    t.seq = 5;
    t.tier = 2;
    t.encoding = (char *)"4,4,4";
    t.config = (char *)"[{\"layer_type\": \"data\", \"img_resolution\": 32, \"distill\": false}]";
    t.naswot = -INFINITY; /* a singular kernel's score, known at the insert */
    gn_error err;
    assert_int_equal(gn_store_insert_trial(s, &t, &err), 0);
    int64_t singular = t.id;
    /* a promotion of trial a (successive halving): listed only with --levels */
    gn_trial_init(&t);
    t.seq = 1;
    t.tier = 0;
    t.encoding = (char *)"0,1,2";
    t.level = 2;
    t.parent = a;
    assert_int_equal(gn_store_insert_trial(s, &t, &err), 0);
    int64_t promo = t.id;
    finish(s, promo, GN_TRIAL_DONE, 0.9345, NULL);
    gn_trial g;
    assert_int_equal(gn_store_get_trial(s, singular, &g, &err), 0);
    assert_true(isinf(g.naswot) && g.naswot < 0); /* kept as given */
    gn_trial_clear(&g);
    gn_store_close(s);

    char args[1024], *out, *errs;
    snprintf(args, sizeof args, "trials %s", path);
    assert_int_equal(tu_run_cli(args, &out, &errs), 0);
    assert_string_equal(errs, "");
    assert_int_equal(count_lines(out), 1 + 5 + 1);
    assert_non_null(strstr(out, "val_acc"));
    assert_non_null(strstr(out, "0.9012"));
    assert_non_null(strstr(out, "0.501±0.010"));
    assert_non_null(strstr(out, "error: training diverged (loss nan)"));
    assert_non_null(strstr(out, "5 trials (1 done, 2 running, 1 failed, 1 pruned)"));
    assert_null(strstr(out, "lvl"));
    assert_null(strstr(out, "0.9345"));
    free(out);
    free(errs);

    /* --levels: every row, with the level column ("L^P": level L promoting trial P) */
    snprintf(args, sizeof args, "trials %s --levels", path);
    assert_int_equal(tu_run_cli(args, &out, &errs), 0);
    assert_string_equal(errs, "");
    assert_int_equal(count_lines(out), 1 + 6 + 1);
    assert_non_null(strstr(out, " lvl "));
    assert_non_null(strstr(out, " 2^1 "));
    assert_non_null(strstr(out, "0.9345"));
    assert_non_null(strstr(out, "6 trials (2 done, 2 running, 1 failed, 1 pruned)"));
    free(out);
    free(errs);
    snprintf(args, sizeof args, "trials %s --levels --status done --json", path);
    assert_int_equal(tu_run_cli(args, &out, &errs), 0);
    json_error_t je0;
    json_t *jl = json_loads(out, 0, &je0);
    assert_non_null(jl);
    assert_int_equal(json_array_size(jl), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(jl, 0), "level")), 0);
    assert_true(json_is_null(json_object_get(json_array_get(jl, 0), "parent")));
    assert_int_equal(json_integer_value(json_object_get(json_array_get(jl, 1), "id")), promo);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(jl, 1), "level")), 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(jl, 1), "parent")), a);
    json_decref(jl);
    free(out);
    free(errs);

    snprintf(args, sizeof args, "trials %s --status running --tier 1", path);
    assert_int_equal(tu_run_cli(args, &out, &errs), 0);
    assert_int_equal(count_lines(out), 3);
    assert_non_null(strstr(out, "3,3,3"));
    assert_non_null(strstr(out, "1 trials (0 done, 1 running"));
    free(out);
    free(errs);
    snprintf(args, sizeof args, "trials %s --tier none", path);
    assert_int_equal(tu_run_cli(args, &out, &errs), 0);
    assert_non_null(strstr(out, "2,2,2"));
    assert_non_null(strstr(out, "1 trials (0 done, 0 running, 0 failed, 1 pruned)"));
    free(out);
    free(errs);

    snprintf(args, sizeof args, "trials %s --json", path);
    assert_int_equal(tu_run_cli(args, &out, &errs), 0);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    assert_non_null(j);
    assert_int_equal(json_array_size(j), 5);
    json_t *o = json_array_get(j, 0);
    assert_string_equal(json_string_value(json_object_get(o, "status")), "done");
    assert_true(json_real_value(json_object_get(o, "val_acc")) == 0.9012);
    assert_true(json_real_value(json_object_get(o, "naswot")) == 812.5);
    assert_int_equal(json_integer_value(json_object_get(o, "params")), 1000);
    assert_string_equal(json_string_value(json_object_get(o, "optimizer")), "lamcts");
    assert_true(json_is_null(json_object_get(json_array_get(j, 2), "tier")));
    assert_string_equal(json_string_value(json_object_get(json_array_get(j, 1), "error")),
                        "training diverged (loss nan)");
    json_t *cfg = json_object_get(json_array_get(j, 4), "config");
    assert_true(json_is_array(cfg));
    assert_int_equal(json_integer_value(json_object_get(json_array_get(cfg, 0), "img_resolution")), 32);
    assert_true(json_is_null(json_object_get(json_array_get(j, 4), "val_acc")));
    /* every object has the score: null when unknown, and for -inf (not JSON) */
    assert_true(json_is_null(json_object_get(json_array_get(j, 1), "naswot")));
    assert_true(json_is_null(json_object_get(json_array_get(j, 4), "naswot")));
    for (size_t i = 0; i < json_array_size(j); i++) { /* the proposals only, by default */
        assert_int_equal(json_integer_value(json_object_get(json_array_get(j, i), "level")), 0);
        assert_true(json_is_null(json_object_get(json_array_get(j, i), "parent")));
    }
    json_decref(j);
    free(out);
    free(errs);

    /* errors */
    static const struct {
        const char *args;
        int rc;
        const char *msg;
    } bad[] = {
        {"trials", 2, "usage: gpunas trials"},
        {"trials %s --status finished", 2, "gpunas trials: option --status: unknown status 'finished'"},
        {"trials %s --tier x", 2, "gpunas trials: option --tier: 'x' is not an integer"},
        {"trials %s --bogus", 2, "gpunas trials: unknown option '--bogus'"},
        {"trials %s.missing", 1, "gpunas trials: "},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(args, sizeof args, bad[i].args, path);
        assert_int_equal(tu_run_cli(args, &out, &errs), bad[i].rc);
        if (!strstr(errs, bad[i].msg))
            fail_msg("'%s': got '%s'", args, errs);
        if (bad[i].rc == 1)
            assert_int_equal(count_lines(errs), 1);
        free(out);
        free(errs);
    }
    char *txt = tu_tmp_path("notastore.txt");
    tu_write_file(txt, "hello, this is a text file and not an SQLite database at all, no header here......\n"
                       "padding padding padding padding padding padding padding padding padding padding\n");
    snprintf(args, sizeof args, "trials %s", txt);
    assert_int_equal(tu_run_cli(args, &out, &errs), 1);
    assert_non_null(strstr(errs, "not a gpunas trial store"));
    assert_int_equal(count_lines(errs), 1);
    free(out);
    free(errs);
    free(txt);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_kill9),
        cmocka_unit_test(test_io_error),
        cmocka_unit_test(test_not_a_store),
        cmocka_unit_test(test_migrate_v1),
        cmocka_unit_test(test_migrate_v2_v3),
        cmocka_unit_test(test_migrate_v4),
        cmocka_unit_test(test_cli_trials),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
