/*
 * store_pg.c — the PostgreSQL trial store and work queue (gpunas/store.h), over libpq.
 *
 * Why.  Issue 14: many machines evaluate trials of one search.  A shared SQLite file
 * does not work across machines (network file systems break its locking) and
 * serialises every writer ("database is locked").  PostgreSQL is the shared store and
 * the work queue, the way Optuna's RDB storage coordinates workers, with three
 * differences where Optuna's users complain: claims never block each other (SELECT ...
 * FOR UPDATE SKIP LOCKED), a worker that dies leaves a lease that expires (Optuna has no
 * STALE state: a dead worker's trial stays RUNNING until a heartbeat-less fail-over
 * reaps it, if configured), and a result commits only under the current lease token.
 *
 * Locations.  "postgresql://" or "postgres://" connection URIs exactly as libpq reads
 * them (user, password, host, port, dbname, ?params); a Unix socket directory is the
 * host parameter: postgresql:///nas?host=/run/postgresql.  The location in messages
 * is the URI with any password replaced by "***".  Connections set
 * application_name=gpunas and a 10 s connect_timeout unless the URI says otherwise;
 * server notices are dropped (the library never prints).
 *
 * Schema (version 5, the same meaning as the SQLite store's version 5): tables in the
 * connection's current schema (normally public):
 *   schema_version(version, applied_at, application = 'gpunas')   -- marks a store
 *   meta(key PRIMARY KEY, value)
 *   trials(id bigint identity (a sequence: never reused), seq, tier, encoding, config,
 *          status CHECK in running/done/failed/pruned/queued/leased, val_acc,
 *          latency_ms, latency_spread_ms, params, macs, train_s, created_at,
 *          started_at, finished_at, worker, error, optimizer, latency_info, kind
 *          CHECK in measure/train, device_class, device, attempts, max_attempts,
 *          lease_token, lease_expires_at, level, parent, naswot)  + indexes (status, id),
 *          (tier, id), a partial index of the queue (kind, device_class, id) WHERE
 *          queued, of the leases (lease_expires_at) WHERE leased, and of promotions
 *          (parent, level) WHERE parent IS NOT NULL
 *          v4: level integer NOT NULL DEFAULT 0, parent bigint (NULL when 0): fidelity
 *          levels (gpunas/store.h)
 *          v5: naswot double precision (NULL when unknown): the zero-cost score
 *          (gpunas/store.h)
 *   workers(id PRIMARY KEY, host, pid, device_class, started_at, last_seen)
 * Timestamps are double precision Unix seconds, as in SQLite, so both stores return
 * the very doubles that were written; unknowns are NULL.  Opening a database checks
 * schema_version: a database with other tables and no gpunas schema_version, one whose
 * schema_version belongs to another application, or a newer version is refused with
 * one line; an empty database becomes a store with GN_STORE_CREATE (under an advisory
 * lock, so two processes creating it at once create it once).  A version-3 or -4 store
 * (3 was the first PostgreSQL schema) is upgraded to 5 when opened, in one transaction
 * under the same advisory lock with the version read again inside it (so of many
 * workers opening it at once one upgrades and the others see version 5), step by step,
 * each step writing its schema_version row: 3 -> 4 ALTER TABLE ... ADD COLUMN IF NOT
 * EXISTS level/parent and the index (existing rows become proposals, level 0, parent
 * NULL); 4 -> 5 ADD COLUMN IF NOT EXISTS naswot (NULL, unknown, for existing rows).  A
 * version below 3 never existed here: damaged.
 *
 * Transactions and clock.  Every call is one transaction: a single statement
 * (autocommit) or BEGIN ... COMMIT (claim: reap + claim), rolled back on any error.
 * Every time the queue compares or sets is the server's: now() (the transaction's
 * start), as Unix seconds.  Claims take the oldest claimable row with FOR UPDATE SKIP
 * LOCKED, so concurrent claimers take different rows without waiting for each other;
 * reaping takes expired leases the same way, so reapers never block or double-count.
 *
 * Reconnection.  When the first statement of a call fails and the connection is
 * broken (e.g. the server was restarted), the call resets the connection once and
 * runs again; a connection broken in the middle of a transaction fails the call (the
 * server rolled it back).  One edge stays: a commit whose acknowledgement was lost is
 * reported as an error although it happened; for queue calls that is safe (a lost
 * claim's lease expires and is reaped; a lost complete reports "lease lost" when
 * retried).
 *
 * Errors: "LOCATION: OPERATION: reason" on one line (libpq's multi-line messages are
 * folded), e.g. "postgresql://nas:***@db/nas: claim (worker w1): ...".
 */
#include <ctype.h>
#include <libpq-fe.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_internal.h"

#define SCHEMA_VERSION 5
#define ADVISORY_KEY 0x676e6173 /* "gnas" */
#define NOW "extract(epoch from now())::float8"

typedef struct {
    gn_store base;
    PGconn *conn;
    char *uri; /* with password: for reconnecting only, never printed */
} pg_store;

static const gn_store_ops pg_ops;

static void drop_notice(void *arg, const char *msg) {}

/* The URI with its password (userinfo or ?password=) replaced by ***; malloc'd. */
static char *redact(const char *uri)
{
    size_t n = strlen(uri);
    char *out = malloc(n + 8), *o = out;
    const char *p = strstr(uri, "://");
    p = p ? p + 3 : uri;
    memcpy(o, uri, (size_t)(p - uri));
    o += p - uri;
    const char *auth_end = p + strcspn(p, "/?");
    const char *at = NULL;
    for (const char *q = p; q < auth_end; q++)
        if (*q == '@')
            at = q;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon) {
            memcpy(o, p, (size_t)(colon - p + 1));
            o += colon - p + 1;
            memcpy(o, "***", 3);
            o += 3;
            p = at;
        }
    }
    while (*p) {
        if ((p[-1] == '?' || p[-1] == '&') && strncmp(p, "password=", 9) == 0) {
            memcpy(o, "password=***", 12);
            o += 12;
            p += 9 + strcspn(p + 9, "&");
            continue;
        }
        *o++ = *p++;
    }
    *o = 0;
    return out;
}

/* libpq's message folded onto one line, trailing blanks removed (static buffer of the caller). */
static const char *fold(const char *msg, char *buf, size_t n)
{
    size_t j = 0;
    bool space = false;
    for (const char *p = msg ? msg : ""; *p && j + 2 < n; p++) {
        if (isspace((unsigned char)*p)) {
            space = j > 0;
            continue;
        }
        if (space)
            buf[j++] = ' ';
        space = false;
        buf[j++] = *p;
    }
    buf[j] = 0;
    return j ? buf : "unknown error";
}

static int pgerr(pg_store *s, const char *op, const PGresult *r, gn_error *err)
{
    char buf[GN_ERROR_MAX];
    const char *m = r ? PQresultErrorMessage(r) : NULL;
    if (!m || !*m)
        m = PQerrorMessage(s->conn);
    return gn_error_set(err, "%s: %s: %s", s->base.where, op, fold(m, buf, sizeof buf));
}

/* Text parameters of a statement. */
#define MAXP 24
typedef struct {
    const char *v[MAXP];
    char buf[MAXP][32];
    int n;
} params;

static void p_str(params *p, const char *v) { p->v[p->n++] = v; }
static void p_real(params *p, double v)
{
    if (isnan(v))
        p->v[p->n] = NULL;
    else {
        snprintf(p->buf[p->n], sizeof p->buf[0], "%.17g", v);
        p->v[p->n] = p->buf[p->n];
    }
    p->n++;
}
static void p_i64(params *p, int64_t v, int64_t null_value)
{
    if (v == null_value)
        p->v[p->n] = NULL;
    else {
        snprintf(p->buf[p->n], sizeof p->buf[0], "%lld", (long long)v);
        p->v[p->n] = p->buf[p->n];
    }
    p->n++;
}
static void p_bool(params *p, bool v) { p->v[p->n++] = v ? "t" : "f"; }

/* Did the statement fail because the connection is gone?  libpq's own errors (no
 * SQLSTATE: "server closed the connection unexpectedly"), connection exceptions (08)
 * and the server's shutdown/crash/starting-up codes (57P01-57P03). */
static bool broken(pg_store *s, const PGresult *r)
{
    if (PQstatus(s->conn) == CONNECTION_BAD)
        return true;
    const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    return !st || strncmp(st, "08", 2) == 0 || strncmp(st, "57P0", 4) == 0;
}

/* Run one statement.  first: the call's first statement, which is run again once on a
 * fresh connection if the connection turns out broken.  NULL (err set) on failure. */
static PGresult *q(pg_store *s, const char *sql, const params *p, bool first, const char *op, gn_error *err)
{
    for (int attempt = 0;; attempt++) {
        /* without parameters PQexec, which also runs several statements (the schema) */
        PGresult *r = p ? PQexecParams(s->conn, sql, p->n, NULL, p->v, NULL, NULL, 0) : PQexec(s->conn, sql);
        ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
            return r;
        if (first && attempt == 0 && broken(s, r)) {
            PQclear(r);
            PQreset(s->conn);
            if (PQstatus(s->conn) == CONNECTION_OK)
                continue;
            char buf[GN_ERROR_MAX];
            gn_error_set(err, "%s: %s: connection lost and reconnecting failed: %s", s->base.where, op,
                         fold(PQerrorMessage(s->conn), buf, sizeof buf));
            return NULL;
        }
        pgerr(s, op, r, err);
        PQclear(r);
        return NULL;
    }
}

static int exec0(pg_store *s, const char *sql, bool first, const char *op, gn_error *err)
{
    PGresult *r = q(s, sql, NULL, first, op, err);
    PQclear(r);
    return r ? 0 : -1;
}

static void rollback(pg_store *s)
{
    if (PQstatus(s->conn) == CONNECTION_OK && PQtransactionStatus(s->conn) != PQTRANS_IDLE)
        PQclear(PQexec(s->conn, "ROLLBACK"));
}

static int commit(pg_store *s, const char *op, gn_error *err)
{
    if (exec0(s, "COMMIT", false, op, err)) {
        rollback(s);
        return -1;
    }
    return 0;
}

static double g_real(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NAN : strtod(PQgetvalue(r, row, col), NULL);
}
static int64_t g_i64(const PGresult *r, int row, int col, int64_t null_value)
{
    return PQgetisnull(r, row, col) ? null_value : strtoll(PQgetvalue(r, row, col), NULL, 10);
}
static char *g_str(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : strdup(PQgetvalue(r, row, col));
}

/* ---- schema ---- */

static const char schema_sql[] =
    "CREATE TABLE schema_version(version integer NOT NULL, applied_at double precision NOT NULL,"
    " application text NOT NULL DEFAULT 'gpunas');"
    "CREATE TABLE meta(key text PRIMARY KEY, value text NOT NULL);"
    "CREATE TABLE trials("
    " id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " seq bigint NOT NULL, tier integer, encoding text NOT NULL, config text,"
    " status text NOT NULL CHECK (status IN ('running', 'done', 'failed', 'pruned', 'queued', 'leased')),"
    " val_acc double precision, latency_ms double precision, latency_spread_ms double precision,"
    " params bigint, macs bigint, train_s double precision,"
    " created_at double precision NOT NULL, started_at double precision, finished_at double precision,"
    " worker text, error text, optimizer text, latency_info text,"
    " kind text CHECK (kind IN ('measure', 'train')), device_class text, device text,"
    " attempts integer NOT NULL DEFAULT 0, max_attempts integer NOT NULL DEFAULT 0,"
    " lease_token text, lease_expires_at double precision,"
    " level integer NOT NULL DEFAULT 0, parent bigint, naswot double precision);"
    "CREATE INDEX trials_status ON trials(status, id);"
    "CREATE INDEX trials_tier ON trials(tier, id);"
    "CREATE INDEX trials_queue ON trials(kind, device_class, id) WHERE status = 'queued';"
    "CREATE INDEX trials_lease ON trials(lease_expires_at) WHERE status = 'leased';"
    "CREATE INDEX trials_parent ON trials(parent, level) WHERE parent IS NOT NULL;"
    "CREATE TABLE workers(id text PRIMARY KEY, host text NOT NULL, pid bigint, device_class text,"
    " started_at double precision NOT NULL, last_seen double precision NOT NULL);";

/* schema 3 -> 4 (fidelity levels), idempotent: the same columns and index as schema_sql */
static const char upgrade4_sql[] =
    "ALTER TABLE trials ADD COLUMN IF NOT EXISTS level integer NOT NULL DEFAULT 0,"
    " ADD COLUMN IF NOT EXISTS parent bigint;"
    "CREATE INDEX IF NOT EXISTS trials_parent ON trials(parent, level) WHERE parent IS NOT NULL;";
/* schema 4 -> 5 (the NASWOT zero-cost score), idempotent: the column of schema_sql */
static const char upgrade5_sql[] = "ALTER TABLE trials ADD COLUMN IF NOT EXISTS naswot double precision;";

static int migrate(pg_store *s, gn_error *err);

/* 0 a store (checked; upgraded if it was older), 1 empty, -1 refused/error. */
static int identify(pg_store *s, gn_error *err)
{
    PGresult *r = q(s,
                    "SELECT to_regclass('schema_version') IS NOT NULL, (SELECT count(*) FROM pg_catalog.pg_class c"
                    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema()"
                    " AND c.relkind IN ('r', 'p', 'v', 'm', 'f'))",
                    NULL, true, "open", err);
    if (!r)
        return -1;
    bool has_version = PQgetvalue(r, 0, 0)[0] == 't';
    long long ntables = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    if (!has_version) {
        if (ntables > 0)
            return gn_error_set(err, "%s: not a gpunas trial store (a PostgreSQL database with %lld tables and no "
                                     "gpunas schema_version)", s->base.where, ntables);
        return 1;
    }
    gn_error e;
    r = q(s, "SELECT max(version), bool_and(application = 'gpunas') FROM schema_version", NULL, false, "open", &e);
    if (!r)
        return gn_error_set(err, "%s: not a gpunas trial store (its schema_version table is another application's)",
                            s->base.where);
    long long v = g_i64(r, 0, 0, 0);
    bool ours = PQgetvalue(r, 0, 1)[0] == 't';
    PQclear(r);
    if (!ours)
        return gn_error_set(err, "%s: not a gpunas trial store (its schema_version table is another application's)",
                            s->base.where);
    if (v > SCHEMA_VERSION)
        return gn_error_set(err, "%s: trial store schema version %lld is newer than this gpunas supports (%d); "
                                 "use a newer gpunas", s->base.where, v, SCHEMA_VERSION);
    if (v == 3 || v == 4)
        return migrate(s, err);
    if (v < SCHEMA_VERSION)
        return gn_error_set(err, "%s: damaged gpunas trial store: schema version %lld", s->base.where, v);
    return 0;
}

static int create_schema(pg_store *s, gn_error *err)
{
    const char *op = "create store";
    char lock[96];
    snprintf(lock, sizeof lock, "SELECT pg_advisory_xact_lock(%d)", ADVISORY_KEY);
    if (exec0(s, "BEGIN", true, op, err))
        return -1;
    PGresult *r = q(s, lock, NULL, false, op, err);
    if (!r) {
        rollback(s);
        return -1;
    }
    PQclear(r);
    r = q(s, "SELECT to_regclass('schema_version') IS NOT NULL", NULL, false, op, err);
    if (!r) {
        rollback(s);
        return -1;
    }
    bool exists = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (exists) { /* someone else created it meanwhile */
        rollback(s);
        return 0;
    }
    char ver[128];
    snprintf(ver, sizeof ver, "INSERT INTO schema_version(version, applied_at) VALUES(%d, " NOW ")", SCHEMA_VERSION);
    if (exec0(s, schema_sql, false, op, err) || exec0(s, ver, false, op, err)) {
        rollback(s);
        return -1;
    }
    return commit(s, op, err);
}

/* Version 3 -> 4 -> 5, in one transaction under the creation's advisory lock; the
 * version is read again inside it, so concurrent openers upgrade once. */
static int migrate(pg_store *s, gn_error *err)
{
    const char *op = "upgrade store to schema 5";
    char lock[96];
    snprintf(lock, sizeof lock, "SELECT pg_advisory_xact_lock(%d)", ADVISORY_KEY);
    if (exec0(s, "BEGIN", false, op, err))
        return -1;
    if (exec0(s, lock, false, op, err)) {
        rollback(s);
        return -1;
    }
    PGresult *r = q(s, "SELECT max(version) FROM schema_version", NULL, false, op, err);
    if (!r) {
        rollback(s);
        return -1;
    }
    long long v = g_i64(r, 0, 0, 0);
    PQclear(r);
    if (v >= SCHEMA_VERSION) { /* someone else did meanwhile */
        rollback(s);
        return 0;
    }
    char ver[128];
    if (v < 4) {
        snprintf(ver, sizeof ver, "INSERT INTO schema_version(version, applied_at) VALUES(4, " NOW ")");
        if (exec0(s, upgrade4_sql, false, op, err) || exec0(s, ver, false, op, err)) {
            rollback(s);
            return -1;
        }
    }
    snprintf(ver, sizeof ver, "INSERT INTO schema_version(version, applied_at) VALUES(5, " NOW ")");
    if (exec0(s, upgrade5_sql, false, op, err) || exec0(s, ver, false, op, err)) {
        rollback(s);
        return -1;
    }
    return commit(s, op, err);
}

int gn__store_open_pg(const char *uri, unsigned flags, gn_store **out, gn_error *err)
{
    *out = NULL;
    pg_store *s = calloc(1, sizeof *s);
    if (!s)
        return gn_error_set(err, "trial store: out of memory");
    s->base.ops = &pg_ops;
    s->base.where = redact(uri);
    s->uri = strdup(uri);
    const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *vals[] = {"10", "gpunas", uri, NULL};
    s->conn = PQconnectdbParams(keys, vals, 1);
    if (!s->conn || PQstatus(s->conn) != CONNECTION_OK) {
        char buf[GN_ERROR_MAX];
        gn_error_set(err, "%s: cannot connect to the trial store: %s", s->base.where,
                     s->conn ? fold(PQerrorMessage(s->conn), buf, sizeof buf) : "out of memory");
        gn_store_close(&s->base);
        return -1;
    }
    PQsetNoticeProcessor(s->conn, drop_notice, NULL);
    int rc = identify(s, err);
    if (rc == 1) {
        if (!(flags & GN_STORE_CREATE)) {
            gn_error_set(err, "%s: not a gpunas trial store (empty database)", s->base.where);
            rc = -1;
        } else if (create_schema(s, err) == 0) {
            rc = identify(s, err);
            if (rc == 1)
                rc = gn_error_set(err, "%s: open: the store changed while it was being created; try again",
                                  s->base.where);
        } else {
            rc = -1;
        }
    }
    if (rc) {
        gn_store_close(&s->base);
        return -1;
    }
    *out = &s->base;
    return 0;
}

static void pg_close(gn_store *b)
{
    pg_store *s = (pg_store *)b;
    if (s->conn)
        PQfinish(s->conn);
    free(s->uri);
    free(s->base.where);
    free(s);
}

/* ---- meta and trials ---- */

/* INSERT a meta row: replacing (put) or only when absent (put_new).  0 written, 1 (only
 * without replace) present already, -1 error. */
static int pg_meta_insert(gn_store *b, const char *key, const char *value, bool replace, gn_error *err)
{
    pg_store *s = (pg_store *)b;
    char op[160];
    snprintf(op, sizeof op, "put meta '%.100s'", key);
    params p = {.n = 0};
    p_str(&p, key);
    p_str(&p, value);
    PGresult *r = q(s,
                    replace ? "INSERT INTO meta(key, value) VALUES($1, $2) ON CONFLICT(key) DO UPDATE SET value = $2"
                            : "INSERT INTO meta(key, value) VALUES($1, $2) ON CONFLICT(key) DO NOTHING",
                    &p, true, op, err);
    if (!r)
        return -1;
    bool inserted = strcmp(PQcmdTuples(r), "0") != 0;
    PQclear(r);
    return inserted || replace ? 0 : 1;
}

static int pg_put_meta(gn_store *b, const char *key, const char *value, gn_error *err)
{
    return pg_meta_insert(b, key, value, true, err);
}

static int pg_put_meta_new(gn_store *b, const char *key, const char *value, gn_error *err)
{
    return pg_meta_insert(b, key, value, false, err);
}

static int pg_get_meta(gn_store *b, const char *key, char **value, gn_error *err)
{
    pg_store *s = (pg_store *)b;
    char op[160];
    snprintf(op, sizeof op, "get meta '%.100s'", key);
    params p = {.n = 0};
    p_str(&p, key);
    PGresult *r = q(s, "SELECT value FROM meta WHERE key = $1", &p, true, op, err);
    if (!r)
        return -1;
    int ret = 1;
    if (PQntuples(r) > 0) {
        *value = strdup(PQgetvalue(r, 0, 0));
        ret = 0;
    }
    PQclear(r);
    return ret;
}

#define TRIAL_COLUMNS                                                                                        \
    "id, seq, tier, encoding, config, status, val_acc, latency_ms, latency_spread_ms, params, macs, train_s, " \
    "created_at, started_at, finished_at, worker, error, optimizer, latency_info, kind, device_class, device, " \
    "attempts, max_attempts, lease_expires_at, level, parent, naswot"

static void read_row(const PGresult *r, int i, gn_trial *t)
{
    gn_trial_init(t);
    t->id = g_i64(r, i, 0, 0);
    t->seq = g_i64(r, i, 1, 0);
    t->tier = (int)g_i64(r, i, 2, -1);
    t->encoding = g_str(r, i, 3);
    t->config = g_str(r, i, 4);
    gn_trial_status_parse(PQgetvalue(r, i, 5), &t->status); /* the CHECK constraint keeps it valid */
    t->val_acc = g_real(r, i, 6);
    t->latency_ms = g_real(r, i, 7);
    t->latency_spread_ms = g_real(r, i, 8);
    t->params = g_i64(r, i, 9, -1);
    t->macs = g_i64(r, i, 10, -1);
    t->train_s = g_real(r, i, 11);
    t->created_at = g_real(r, i, 12);
    t->started_at = g_real(r, i, 13);
    t->finished_at = g_real(r, i, 14);
    t->worker = g_str(r, i, 15);
    t->error = g_str(r, i, 16);
    t->optimizer = g_str(r, i, 17);
    t->latency_info = g_str(r, i, 18);
    t->kind = g_str(r, i, 19);
    t->device_class = g_str(r, i, 20);
    t->device = g_str(r, i, 21);
    t->attempts = (int)g_i64(r, i, 22, 0);
    t->max_attempts = (int)g_i64(r, i, 23, 0);
    t->lease_expires_at = g_real(r, i, 24);
    t->level = (int)g_i64(r, i, 25, 0);
    t->parent = g_i64(r, i, 26, 0);
    t->naswot = g_real(r, i, 27);
}

/* $1..$9 of both ways a trial enters the store (insert, enqueue): who it is and what
 * was measured before training */
static void p_trial_head(params *p, const gn_trial *t)
{
    p_i64(p, t->seq, INT64_MIN);
    p_i64(p, t->tier, -1);
    p_str(p, t->encoding);
    p_str(p, t->config);
    p_real(p, t->latency_ms);
    p_real(p, t->latency_spread_ms);
    p_i64(p, t->params, -1);
    p_i64(p, t->macs, -1);
    p_real(p, t->created_at);
}

static int pg_insert_trial(gn_store *b, gn_trial *t, gn_error *err)
{
    pg_store *s = (pg_store *)b;
    char op[96];
    snprintf(op, sizeof op, "insert trial (seq %lld)", (long long)t->seq);
    params p = {.n = 0};
    p_trial_head(&p, t);
    p_real(&p, t->started_at);
    p_str(&p, t->worker);
    p_str(&p, t->optimizer);
    p_str(&p, t->latency_info);
    p_str(&p, t->device);
    p_i64(&p, t->level, INT64_MIN);
    p_i64(&p, t->parent, 0);
    p_real(&p, t->naswot);
    PGresult *r = q(s,
                    "INSERT INTO trials(seq, tier, encoding, config, status, latency_ms, latency_spread_ms, params,"
                    " macs, created_at, started_at, worker, optimizer, latency_info, device, attempts, level, parent,"
                    " naswot) VALUES($1, $2, $3, $4, 'running', $5, $6, $7, $8, coalesce($9, " NOW "), coalesce($10, "
                    NOW "), $11, $12, $13, $14, 1, $15, $16, $17) RETURNING id, created_at, started_at",
                    &p, true, op, err);
    if (!r)
        return -1;
    t->id = g_i64(r, 0, 0, 0);
    t->created_at = g_real(r, 0, 1);
    t->started_at = g_real(r, 0, 2);
    PQclear(r);
    t->status = GN_TRIAL_RUNNING;
    t->finished_at = NAN;
    t->attempts = 1;
    return 0;
}

/* Why a guarded update touched no row: the trial's status (and worker), for messages. */
static int why_not(pg_store *s, int64_t id, const char *op, bool lease, gn_error *err)
{
    params p = {.n = 0};
    p_i64(&p, id, INT64_MIN);
    PGresult *r = q(s, "SELECT status, worker FROM trials WHERE id = $1", &p, false, op, err);
    if (!r)
        return -1;
    int ret;
    if (lease)
        ret = gn__lease_lost(err, s->base.where, op, id, PQntuples(r) ? PQgetvalue(r, 0, 0) : "",
                             PQntuples(r) && !PQgetisnull(r, 0, 1) ? PQgetvalue(r, 0, 1) : NULL);
    else if (PQntuples(r))
        ret = gn_error_set(err, "%s: %s: the trial is already %s (a trial is finished once)", s->base.where, op,
                           PQgetvalue(r, 0, 0));
    else
        ret = gn_error_set(err, "%s: %s: no such trial", s->base.where, op);
    PQclear(r);
    return ret;
}

/* The result columns shared by finish (running) and complete (leased): $1 id, $2..$15;
 * the caller's own parameters follow from $16. */
static void result_params(params *p, int64_t id, const gn_trial *t)
{
    p_i64(p, id, INT64_MIN);
    p_str(p, gn_trial_status_name(t->status));
    p_real(p, t->val_acc);
    p_real(p, t->train_s);
    p_real(p, t->finished_at);
    p_str(p, t->error);
    p_i64(p, t->tier, -1);
    p_str(p, t->config);
    p_real(p, t->latency_ms);
    p_real(p, t->latency_spread_ms);
    p_i64(p, t->params, -1);
    p_i64(p, t->macs, -1);
    p_str(p, t->latency_info);
    p_str(p, t->device);
    p_real(p, t->naswot);
}

#define RESULT_SET                                                                                           \
    "status = $2, val_acc = $3, train_s = $4, finished_at = coalesce($5, " NOW "), error = $6,"              \
    " tier = coalesce($7, tier), config = coalesce($8, config), latency_ms = coalesce($9, latency_ms),"      \
    " latency_spread_ms = coalesce($10, latency_spread_ms), params = coalesce($11, params),"                  \
    " macs = coalesce($12, macs), latency_info = coalesce($13, latency_info),"                                 \
    " device = coalesce($14, device), naswot = $15"

static int pg_finish_trial(gn_store *b, int64_t id, const gn_trial *t, gn_error *err)
{
    pg_store *s = (pg_store *)b;
    char op[96];
    snprintf(op, sizeof op, "finish trial %lld", (long long)id);
    params p = {.n = 0};
    result_params(&p, id, t);
    p_str(&p, t->worker);
    PGresult *r = q(s, "UPDATE trials SET " RESULT_SET ", worker = coalesce($16, worker)"
                       " WHERE id = $1 AND status = 'running'",
                    &p, true, op, err);
    if (!r)
        return -1;
    bool changed = strcmp(PQcmdTuples(r), "0") != 0;
    PQclear(r);
    return changed ? 0 : why_not(s, id, op, false, err);
}

/* WHERE clause for a filter; parameters $1 status, $2 tier, $3 after_id, $4 limit, $5
 * level (every one typed in the text, used or not). */
static void filter(const gn_trial_filter *f, params *p, char *buf, size_t n)
{
    p->n = 0;
    p_str(p, f->status >= 0 ? gn_trial_status_name((gn_trial_status)f->status) : NULL);
    p_i64(p, f->tier, -1);
    p_i64(p, f->after_id, INT64_MIN);
    p_i64(p, f->limit, 0);
    p_i64(p, f->level, GN_LEVEL_ANY);
    snprintf(buf, n, " WHERE id > $3::bigint%s%s%s AND ($1::text IS NULL OR TRUE) AND ($2::int IS NULL OR TRUE)"
                     " AND ($5::int IS NULL OR TRUE) ORDER BY id LIMIT $4::bigint",
             f->status >= 0 ? " AND status = $1" : "",
             f->tier == GN_TIER_ANY ? "" : f->tier < 0 ? " AND tier IS NULL" : " AND tier = $2",
             f->level == GN_LEVEL_ANY ? "" : " AND level = $5");
}

static int pg_list_trials(gn_store *b, const gn_trial_filter *f, gn_trial_list *out, gn_error *err)
{
    pg_store *s = (pg_store *)b;
    char where[320], sql[640];
    params p;
    filter(f, &p, where, sizeof where);
    snprintf(sql, sizeof sql, "SELECT " TRIAL_COLUMNS " FROM trials%s", where);
    PGresult *r = q(s, sql, &p, true, "list trials", err);
    if (!r)
        return -1;
    int n = PQntuples(r);
    if (n > 0) {
        out->items = calloc((size_t)n, sizeof(gn_trial));
        if (!out->items) {
            PQclear(r);
            return gn_error_set(err, "%s: list trials: out of memory", s->base.where);
        }
    }
    for (int i = 0; i < n; i++)
        read_row(r, i, &out->items[out->n++]);
    PQclear(r);
    return 0;
}

static int pg_count_trials(gn_store *b, const gn_trial_filter *f, int64_t *n, gn_error *err)
{
    pg_store *s = (pg_store *)b;
    char where[320], sql[640];
    params p;
    filter(f, &p, where, sizeof where);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM (SELECT 1 FROM trials%s) c", where);
    PGresult *r = q(s, sql, &p, true, "count trials", err);
    if (!r)
        return -1;
    *n = g_i64(r, 0, 0, 0);
    PQclear(r);
    return 0;
}

static int pg_get_trial(gn_store *b, int64_t id, gn_trial *out, gn_error *err)
{
    pg_store *s = (pg_store *)b;
    char op[64];
    snprintf(op, sizeof op, "get trial %lld", (long long)id);
    params p = {.n = 0};
    p_i64(&p, id, INT64_MIN);
    PGresult *r = q(s, "SELECT " TRIAL_COLUMNS " FROM trials WHERE id = $1", &p, true, op, err);
    if (!r)
        return -1;
    int ret = 0;
    if (PQntuples(r))
        read_row(r, 0, out);
    else
        ret = 1, gn_error_set(err, "%s: %s: no such trial", s->base.where, op);
    PQclear(r);
    return ret;
}

/* ---- the work queue ---- */

static int pg_enqueue(gn_store *b, gn_trial *t, gn_error *err)
{
    pg_store *s = (pg_store *)b;
    char op[96];
    snprintf(op, sizeof op, "enqueue (seq %lld)", (long long)t->seq);
    params p = {.n = 0};
    p_trial_head(&p, t);
    p_str(&p, t->optimizer);
    p_str(&p, t->latency_info);
    p_str(&p, t->kind);
    p_str(&p, strcmp(t->kind, "measure") == 0 ? t->device_class : NULL);
    p_i64(&p, t->max_attempts, INT64_MIN);
    p_i64(&p, t->level, INT64_MIN);
    p_i64(&p, t->parent, 0);
    PGresult *r = q(s,
                    "INSERT INTO trials(seq, tier, encoding, config, status, latency_ms, latency_spread_ms, params,"
                    " macs, created_at, optimizer, latency_info, kind, device_class, attempts, max_attempts, level,"
                    " parent) VALUES($1, $2, $3, $4, 'queued', $5, $6, $7, $8, coalesce($9, " NOW "), $10, $11, $12,"
                    " $13, 0, $14, $15, $16) RETURNING id, created_at",
                    &p, true, op, err);
    if (!r)
        return -1;
    t->id = g_i64(r, 0, 0, 0);
    t->created_at = g_real(r, 0, 1);
    PQclear(r);
    t->status = GN_TRIAL_QUEUED;
    t->started_at = t->finished_at = t->lease_expires_at = NAN;
    t->attempts = 0;
    return 0;
}

static const char reap_sql[] =
    "UPDATE trials SET"
    " status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END,"
    " error = CASE WHEN attempts >= max_attempts"
    "   THEN format('lease expired %s times (last worker %s)', attempts, worker) ELSE error END,"
    " finished_at = CASE WHEN attempts >= max_attempts THEN " NOW " ELSE NULL END,"
    " lease_token = NULL, lease_expires_at = NULL"
    " WHERE id IN (SELECT id FROM trials WHERE status = 'leased' AND lease_expires_at < " NOW
    "   FOR UPDATE SKIP LOCKED)"
    " RETURNING status";

static int reap_rows(PGresult *r, int64_t *requeued, int64_t *failed)
{
    for (int i = 0; i < PQntuples(r); i++)
        (*(strcmp(PQgetvalue(r, i, 0), "failed") == 0 ? failed : requeued))++;
    PQclear(r);
    return 0;
}

static int pg_reap(gn_store *b, int64_t *requeued, int64_t *failed, gn_error *err)
{
    pg_store *s = (pg_store *)b;
    PGresult *r = q(s, reap_sql, NULL, true, "reap expired leases", err);
    return r ? reap_rows(r, requeued, failed) : -1;
}

static int pg_claim(gn_store *b, const gn_claim_req *rq, const char *token, gn_trial *job, gn_lease *lease,
                    gn_error *err)
{
    pg_store *s = (pg_store *)b;
    char op[160];
    snprintf(op, sizeof op, "claim (worker %.100s)", rq->worker);
    if (exec0(s, "BEGIN", true, op, err))
        return -1;
    int64_t a = 0, f = 0;
    PGresult *r = q(s, reap_sql, NULL, false, op, err);
    if (!r) {
        rollback(s);
        return -1;
    }
    reap_rows(r, &a, &f);
    params p = {.n = 0};
    p_str(&p, rq->worker);
    p_str(&p, token);
    p_real(&p, rq->lease_s);
    p_bool(&p, (rq->kinds & GN_JOB_TRAIN) != 0);
    p_bool(&p, (rq->kinds & GN_JOB_MEASURE) != 0 && rq->device_class);
    p_str(&p, rq->device_class);
    r = q(s,
          "UPDATE trials SET status = 'leased', worker = $1, lease_token = $2,"
          " lease_expires_at = " NOW " + $3, attempts = attempts + 1, started_at = " NOW
          " WHERE id = (SELECT id FROM trials WHERE status = 'queued'"
          "  AND (($4 AND kind = 'train') OR ($5 AND kind = 'measure' AND device_class = $6))"
          "  ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)"
          " RETURNING " TRIAL_COLUMNS,
          &p, false, op, err);
    if (!r) {
        rollback(s);
        return -1;
    }
    int n = PQntuples(r);
    if (n)
        read_row(r, 0, job);
    PQclear(r);
    if (commit(s, op, err)) {
        gn_trial_clear(job);
        return -1;
    }
    if (!n)
        return 1;
    lease->trial_id = job->id;
    memcpy(lease->token, token, GN_LEASE_TOKEN_LEN + 1);
    lease->attempt = job->attempts;
    lease->expires_at = job->lease_expires_at;
    return 0;
}

static int pg_heartbeat(gn_store *b, gn_lease *lease, double lease_s, gn_error *err)
{
    pg_store *s = (pg_store *)b;
    char op[64];
    snprintf(op, sizeof op, "heartbeat trial %lld", (long long)lease->trial_id);
    params p = {.n = 0};
    p_i64(&p, lease->trial_id, INT64_MIN);
    p_str(&p, lease->token);
    p_real(&p, lease_s);
    PGresult *r = q(s,
                    "UPDATE trials SET lease_expires_at = " NOW " + $3 WHERE id = $1 AND status = 'leased'"
                    " AND lease_token = $2 AND lease_expires_at >= " NOW " RETURNING lease_expires_at",
                    &p, true, op, err);
    if (!r)
        return -1;
    int n = PQntuples(r);
    if (n)
        lease->expires_at = g_real(r, 0, 0);
    PQclear(r);
    return n ? 0 : why_not(s, lease->trial_id, op, true, err);
}

static int pg_complete(gn_store *b, const gn_lease *lease, const gn_trial *t, gn_error *err)
{
    pg_store *s = (pg_store *)b;
    char op[64];
    snprintf(op, sizeof op, "complete trial %lld", (long long)lease->trial_id);
    params p = {.n = 0};
    result_params(&p, lease->trial_id, t);
    p_str(&p, lease->token);
    p_str(&p, t->kind);
    /* status 'queued': the job goes on to its next stage (kind $17) under a new lease:
     * attempts, start and finish are those of that stage */
    PGresult *r = q(s, "UPDATE trials SET status = $2, val_acc = $3, naswot = $15, train_s = $4,"
                       " finished_at = CASE WHEN $2 = 'queued' THEN NULL ELSE coalesce($5, " NOW ") END,"
                       " error = $6, tier = coalesce($7, tier), config = coalesce($8, config),"
                       " latency_ms = coalesce($9, latency_ms), latency_spread_ms = coalesce($10, latency_spread_ms),"
                       " params = coalesce($11, params), macs = coalesce($12, macs),"
                       " latency_info = coalesce($13, latency_info), device = coalesce($14, device),"
                       " lease_token = NULL, lease_expires_at = NULL, kind = coalesce($17, kind),"
                       " attempts = CASE WHEN $2 = 'queued' THEN 0 ELSE attempts END,"
                       " started_at = CASE WHEN $2 = 'queued' THEN NULL ELSE started_at END"
                       " WHERE id = $1 AND status = 'leased' AND lease_token = $16 AND lease_expires_at >= " NOW,
                    &p, true, op, err);
    if (!r)
        return -1;
    bool changed = strcmp(PQcmdTuples(r), "0") != 0;
    PQclear(r);
    return changed ? 0 : why_not(s, lease->trial_id, op, true, err);
}

static int pg_release(gn_store *b, const gn_lease *lease, gn_error *err)
{
    pg_store *s = (pg_store *)b;
    char op[64];
    snprintf(op, sizeof op, "release trial %lld", (long long)lease->trial_id);
    params p = {.n = 0};
    p_i64(&p, lease->trial_id, INT64_MIN);
    p_str(&p, lease->token);
    PGresult *r = q(s,
                    "UPDATE trials SET status = 'queued', attempts = attempts - 1, lease_token = NULL,"
                    " lease_expires_at = NULL, started_at = NULL"
                    " WHERE id = $1 AND status = 'leased' AND lease_token = $2 AND lease_expires_at >= " NOW,
                    &p, true, op, err);
    if (!r)
        return -1;
    bool changed = strcmp(PQcmdTuples(r), "0") != 0;
    PQclear(r);
    return changed ? 0 : why_not(s, lease->trial_id, op, true, err);
}

static int pg_expire_leases(gn_store *b, const char *worker, int64_t *n, gn_error *err)
{
    pg_store *s = (pg_store *)b;
    char op[160];
    snprintf(op, sizeof op, "expire the leases of worker %.100s", worker);
    params p = {.n = 0};
    p_str(&p, worker);
    PGresult *r = q(s, "UPDATE trials SET lease_expires_at = " NOW " - 1 WHERE status = 'leased' AND worker = $1", &p,
                    true, op, err);
    if (!r)
        return -1;
    *n = strtoll(PQcmdTuples(r), NULL, 10);
    PQclear(r);
    return 0;
}

static int pg_register_worker(gn_store *b, const gn_worker *w, gn_error *err)
{
    pg_store *s = (pg_store *)b;
    char op[160];
    snprintf(op, sizeof op, "register worker %.100s", w->id);
    params p = {.n = 0};
    p_str(&p, w->id);
    p_str(&p, w->host);
    p_i64(&p, w->pid, INT64_MIN);
    p_str(&p, w->device_class);
    PGresult *r = q(s,
                    "INSERT INTO workers(id, host, pid, device_class, started_at, last_seen)"
                    " VALUES($1, $2, $3, $4, " NOW ", " NOW ") ON CONFLICT(id) DO UPDATE SET host = excluded.host,"
                    " pid = excluded.pid, device_class = excluded.device_class, started_at = excluded.started_at,"
                    " last_seen = excluded.last_seen",
                    &p, true, op, err);
    PQclear(r);
    return r ? 0 : -1;
}

static int pg_worker_beat(gn_store *b, const char *id, gn_error *err)
{
    pg_store *s = (pg_store *)b;
    char op[160];
    snprintf(op, sizeof op, "worker heartbeat %.100s", id);
    params p = {.n = 0};
    p_str(&p, id);
    PGresult *r = q(s, "UPDATE workers SET last_seen = " NOW " WHERE id = $1", &p, true, op, err);
    if (!r)
        return -1;
    bool changed = strcmp(PQcmdTuples(r), "0") != 0;
    PQclear(r);
    if (!changed) {
        gn_error_set(err, "%s: %s: no such worker (register it again)", s->base.where, op);
        return 1;
    }
    return 0;
}

static int pg_list_workers(gn_store *b, double window_s, gn_worker_list *out, gn_error *err)
{
    pg_store *s = (pg_store *)b;
    params p = {.n = 0};
    p_real(&p, window_s);
    PGresult *r = q(s,
                    "SELECT id, host, pid, device_class, started_at, last_seen FROM workers"
                    " WHERE last_seen >= " NOW " - $1 ORDER BY id",
                    &p, true, "list workers", err);
    if (!r)
        return -1;
    int n = PQntuples(r);
    if (n > 0 && !(out->items = calloc((size_t)n, sizeof(gn_worker)))) {
        PQclear(r);
        return gn_error_set(err, "%s: list workers: out of memory", s->base.where);
    }
    for (int i = 0; i < n; i++) {
        gn_worker *w = &out->items[out->n++];
        w->id = g_str(r, i, 0);
        w->host = g_str(r, i, 1);
        w->pid = g_i64(r, i, 2, -1);
        w->device_class = g_str(r, i, 3);
        w->started_at = g_real(r, i, 4);
        w->last_seen = g_real(r, i, 5);
    }
    PQclear(r);
    return 0;
}

static const gn_store_ops pg_ops = {
    .name = "postgresql",
    .close = pg_close,
    .put_meta = pg_put_meta,
    .put_meta_new = pg_put_meta_new,
    .get_meta = pg_get_meta,
    .insert_trial = pg_insert_trial,
    .finish_trial = pg_finish_trial,
    .list_trials = pg_list_trials,
    .count_trials = pg_count_trials,
    .get_trial = pg_get_trial,
    .enqueue = pg_enqueue,
    .claim = pg_claim,
    .heartbeat = pg_heartbeat,
    .complete = pg_complete,
    .expire_leases = pg_expire_leases,
    .release = pg_release,
    .reap = pg_reap,
    .register_worker = pg_register_worker,
    .worker_beat = pg_worker_beat,
    .list_workers = pg_list_workers,
};
