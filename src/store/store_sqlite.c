/*
 * store_sqlite.c — the SQLite trial store (gpunas/store.h).
 *
 * File format.  PRAGMA application_id = 0x676e6173 ("gnas") marks a gpunas store; the
 * table schema_version holds the schema's version (5).  An older store is upgraded
 * when it is opened, in one transaction: version 1 gains the latency_info column (v2);
 * version 2 gets the work-queue columns, the 'queued'/'leased' statuses and the
 * workers table (v3) -- SQLite cannot change a CHECK constraint in place, so the
 * trials table is rebuilt (rows copied with their ids, AUTOINCREMENT counter kept,
 * attempts = 1 for every existing trial, which was evaluated in-process once);
 * version 3 gains the fidelity level and parent columns and their index in place (v4:
 * every existing row is a proposal, level 0, parent NULL); version 4 gains the naswot
 * column in place (v5: NULL, unknown, for every existing row).  The steps run in order,
 * each writing its schema_version row, so a store of version 1, 2, 3 or 4 ends with the
 * very tables a new store is created with.
 * Opening checks both: a file that is not an SQLite database, an SQLite database of
 * another application, an empty database without GN_STORE_CREATE, or a schema newer
 * than this code knows is refused with one line.  Tables:
 *   schema_version(version, applied_at)
 *   meta(key PRIMARY KEY, value)                 search-level settings
 *   trials(id INTEGER PRIMARY KEY AUTOINCREMENT, seq, tier, encoding, config, status
 *          CHECK in running/done/failed/pruned, val_acc, latency_ms,
 *          latency_spread_ms, params, macs, train_s, created_at, started_at,
 *          finished_at, worker, error, optimizer, latency_info)  + indexes on (status, id),
 *          (tier, id); latency_info (v2): JSON, the conditions of the latency
 *          measurement (threads, placement, the reference network's state)
 *          v3: kind (measure/train), device_class, device (fingerprint), attempts,
 *          max_attempts, lease_token, lease_expires_at; partial indexes for the
 *          queue (status 'queued') and for reaping (status 'leased')
 *          v4: level (NOT NULL DEFAULT 0), parent (NULL when 0; gpunas/store.h,
 *          "Fidelity levels") + a partial index on (parent, level) WHERE parent IS NOT NULL
 *          v5: naswot REAL (NULL when unknown; gpunas/store.h, "Zero-cost score")
 *   workers(id PRIMARY KEY, host, pid, device_class, started_at, last_seen)   (v3)
 *   AUTOINCREMENT: ids are never reused, even after the last row is deleted by hand.
 *
 * The work queue (gpunas/store.h).  Every queue call is one BEGIN IMMEDIATE
 * transaction: SQLite has one writer at a time, so a claim (reap expired leases, pick
 * the oldest claimable job, lease it: two statements) cannot interleave with another
 * process's claim; "database is locked" is absorbed by the 5 s busy timeout since the
 * transactions last well under a millisecond plus the commit.  Lease expiry is compared
 * with SQLite's own clock inside the statement (julianday('now') is fixed for one
 * statement), never with a value computed by the caller.
 *   Unknown values are SQL NULL (tier -1 is NULL too).
 *
 * Durability.  journal_mode=WAL: a commit appends to the -wal file and readers (e.g.
 * `gpunas trials` while a search runs) never block the writer.  synchronous:
 *   - NORMAL in WAL mode writes each commit into the WAL with write(2) before COMMIT
 *     returns but fsyncs only at checkpoints.  Data handed to the kernel survives the
 *     death of the process (kill -9, a crash, OOM kill), so NORMAL already keeps every
 *     committed trial across a killed search; an OS crash or power loss can lose the
 *     last commits (the database stays consistent).
 *   - FULL also fsyncs the WAL at every commit, so commits survive power loss too.
 *   We default to FULL: a trial write happens once per evaluated candidate (seconds to
 *   minutes of training), so one fsync (~1-10 ms) per write costs nothing measurable,
 *   and a search resumed after a power cut then repeats no finished trial either.
 *   GN_STORE_FAST selects NORMAL for callers that write many rows quickly (e.g.
 *   thousands of latency-only 'pruned' candidates) and accept the power-loss window.
 * Every write is one explicit transaction (BEGIN IMMEDIATE ... COMMIT, rolled back on
 * any error); busy_timeout 5 s lets several processes share a store.
 *
 * Errors name the file and the operation and carry SQLite's reason, e.g.
 * "runs.db: finish trial 7: database or disk is full"; after a failed write the
 * transaction is rolled back and the store stays usable and consistent.
 */
#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "store/store_internal.h"

#define APP_ID 0x676e6173 /* "gnas" */
#define SCHEMA_VERSION 5
/* Unix seconds from SQLite's clock, fixed within one statement */
#define NOW "((julianday('now') - 2440587.5) * 86400.0)"
#define BUSY_TIMEOUT_MS 5000

typedef struct {
    gn_store base;
    sqlite3 *db;
    int last_rc; /* SQLite's (primary) result code of the last error reported */
    int ro_errno; /* SQLite fell back to read-only: why the read-write open failed (-1: unknown; 0: not read-only) */
} sq_store;

static const gn_store_ops sqlite_ops;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* SQLite's reason, and why a read-only store is one.  (Not the system's errno:
 * sqlite3_system_errno() is the errno at the time SQLite records the error, after its
 * retries and rollback, e.g. ENOENT from the read-only retry of a failed open.) */
static void reason(sq_store *s, const char *msg, char *buf, size_t cap)
{
    int rc = sqlite3_errcode(s->db) & 0xff;
    if (rc == SQLITE_READONLY && s->ro_errno)
        snprintf(buf, cap, "%s (the store could only be opened read-only%s%s)", msg, s->ro_errno > 0 ? ": " : "",
                 s->ro_errno > 0 ? strerror(s->ro_errno) : "");
    else
        snprintf(buf, cap, "%s", msg);
}

/* "FILE: OP: sqlite reason" */
static int sqerr(sq_store *s, const char *op, gn_error *err)
{
    s->last_rc = sqlite3_errcode(s->db) & 0xff;
    char why[GN_ERROR_MAX];
    reason(s, sqlite3_errmsg(s->db), why, sizeof why);
    return gn_error_set(err, "%s: %s: %s", s->base.where, op, why);
}

static int exec(sq_store *s, const char *sql, const char *op, gn_error *err)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        s->last_rc = sqlite3_errcode(s->db) & 0xff;
        char why[GN_ERROR_MAX];
        reason(s, msg ? msg : sqlite3_errmsg(s->db), why, sizeof why);
        gn_error_set(err, "%s: %s: %s", s->base.where, op, why);
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int begin(sq_store *s, const char *op, gn_error *err) { return exec(s, "BEGIN IMMEDIATE", op, err); }

static void rollback(sq_store *s)
{
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

/* Commit, or roll back and report. */
static int commit(sq_store *s, const char *op, gn_error *err)
{
    if (exec(s, "COMMIT", op, err)) {
        rollback(s);
        return -1;
    }
    return 0;
}

static int prepare(sq_store *s, const char *sql, sqlite3_stmt **st, const char *op, gn_error *err)
{
    if (sqlite3_prepare_v2(s->db, sql, -1, st, NULL) != SQLITE_OK) {
        *st = NULL;
        return sqerr(s, op, err);
    }
    return 0;
}

/* BEGIN IMMEDIATE, then prepare sql: 0, or -1 (rolled back, err set). */
static int begin_prepare(sq_store *s, const char *sql, sqlite3_stmt **st, const char *op, gn_error *err)
{
    if (begin(s, op, err))
        return -1;
    if (prepare(s, sql, st, op, err)) {
        rollback(s);
        return -1;
    }
    return 0;
}

/* Run a bound statement of a transaction to its end and finalize it; rc is what the
 * binding returned (SQLITE_OK: step it).  0, or -1 (rolled back, err set). */
static int step_done(sq_store *s, sqlite3_stmt *st, int rc, const char *op, gn_error *err)
{
    rc = rc != SQLITE_OK ? rc : sqlite3_step(st);
    if (rc != SQLITE_DONE)
        sqerr(s, op, err);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        rollback(s);
        return -1;
    }
    return 0;
}

/* One integer from a query (e.g. a PRAGMA); -1 with err on failure. */
static int query_int(sq_store *s, const char *sql, int64_t *v, const char *op, gn_error *err)
{
    sqlite3_stmt *st;
    if (prepare(s, sql, &st, op, err))
        return -1;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *v = sqlite3_column_int64(st, 0);
    else if (rc == SQLITE_DONE)
        *v = 0;
    else {
        sqerr(s, op, err);
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    return 0;
}

/* the columns of the trials table of schema 3 */
#define TRIALS_V3_COLUMNS_SQL                                                                   \
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"                                                    \
    " seq INTEGER NOT NULL,"                                                                    \
    " tier INTEGER,"                                                                            \
    " encoding TEXT NOT NULL,"                                                                  \
    " config TEXT,"                                                                             \
    " status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed', 'pruned', 'queued', 'leased')),"   \
    " val_acc REAL, latency_ms REAL, latency_spread_ms REAL,"                                   \
    " params INTEGER, macs INTEGER, train_s REAL,"                                              \
    " created_at REAL NOT NULL, started_at REAL, finished_at REAL,"                             \
    " worker TEXT, error TEXT, optimizer TEXT, latency_info TEXT,"                              \
    " kind TEXT CHECK (kind IN ('measure', 'train')), device_class TEXT, device TEXT,"          \
    " attempts INTEGER NOT NULL DEFAULT 0, max_attempts INTEGER NOT NULL DEFAULT 0,"            \
    " lease_token TEXT, lease_expires_at REAL"
/* the trials table of schema 3, under a given name: what the 2 -> 3 upgrade builds
 * beside the old one (schema 4's columns are added after it, by upgrade4_sql) */
#define TRIALS_TABLE_V3(name) "CREATE TABLE " name "(" TRIALS_V3_COLUMNS_SQL ");"
/* schema 4's columns (gpunas/store.h, "Fidelity levels"): in a new store's table, and
 * added to an upgraded one by upgrade4_sql, in the same order */
#define LEVEL_COLUMN_SQL "level INTEGER NOT NULL DEFAULT 0"
#define PARENT_COLUMN_SQL "parent INTEGER"
/* schema 5's column (gpunas/store.h, "Zero-cost score"): last in a new store's table,
 * added to an upgraded one by upgrade5_sql */
#define NASWOT_COLUMN_SQL "naswot REAL"
#define TRIALS_TABLE(name)                                                                          \
    "CREATE TABLE " name "(" TRIALS_V3_COLUMNS_SQL ", " LEVEL_COLUMN_SQL ", " PARENT_COLUMN_SQL ", "  \
    NASWOT_COLUMN_SQL ");"
#define TRIALS_INDEX_V4 "CREATE INDEX trials_parent ON trials(parent, level) WHERE parent IS NOT NULL;"
/* the indexes of schema 3 and the workers table */
#define TRIALS_INDEXES_AND_WORKERS                                                              \
    "CREATE INDEX trials_status ON trials(status, id);"                                         \
    "CREATE INDEX trials_tier ON trials(tier, id);"                                             \
    "CREATE INDEX trials_queue ON trials(kind, device_class, id) WHERE status = 'queued';"      \
    "CREATE INDEX trials_lease ON trials(lease_expires_at) WHERE status = 'leased';"            \
    "CREATE TABLE workers(id TEXT PRIMARY KEY NOT NULL, host TEXT NOT NULL, pid INTEGER,"       \
    " device_class TEXT, started_at REAL NOT NULL, last_seen REAL NOT NULL);"

static const char schema_sql[] =
    "CREATE TABLE schema_version(version INTEGER NOT NULL, applied_at REAL NOT NULL);"
    "CREATE TABLE meta(key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);"
    TRIALS_TABLE("trials") TRIALS_INDEXES_AND_WORKERS TRIALS_INDEX_V4;

#define V2_COLUMNS                                                                                           \
    "id, seq, tier, encoding, config, status, val_acc, latency_ms, latency_spread_ms, params, macs, train_s, " \
    "created_at, started_at, finished_at, worker, error, optimizer, latency_info"
/* schema 2 -> 3: rebuild trials (the status CHECK changes) keeping ids and the counter */
static const char upgrade3_sql[] =
    TRIALS_TABLE_V3("trials_v3")
    "INSERT INTO trials_v3(" V2_COLUMNS ", attempts) SELECT " V2_COLUMNS ", 1 FROM trials;"
    "CREATE TEMP TABLE gn_seq AS SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'trials'), 0) AS seq;"
    "DROP TABLE trials;"
    "ALTER TABLE trials_v3 RENAME TO trials;"
    "DELETE FROM sqlite_sequence WHERE name = 'trials_v3';"
    "INSERT INTO sqlite_sequence(name, seq) SELECT 'trials', 0"
    " WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'trials');"
    "UPDATE sqlite_sequence SET seq = max(seq, (SELECT seq FROM temp.gn_seq)) WHERE name = 'trials';"
    "DROP TABLE temp.gn_seq;"
    TRIALS_INDEXES_AND_WORKERS;
/* schema 3 -> 4: the fidelity level and its parent, in place (existing rows: level 0,
 * parent NULL) */
static const char upgrade4_sql[] =
    "ALTER TABLE trials ADD COLUMN " LEVEL_COLUMN_SQL ";"
    "ALTER TABLE trials ADD COLUMN " PARENT_COLUMN_SQL ";"
    TRIALS_INDEX_V4;
/* schema 4 -> 5: the NASWOT zero-cost score, in place (existing rows: NULL, unknown) */
static const char upgrade5_sql[] = "ALTER TABLE trials ADD COLUMN " NASWOT_COLUMN_SQL ";";

static int create_schema(sq_store *s, gn_error *err)
{
    if (begin(s, "create store", err))
        return -1;
    int64_t n;
    /* re-check inside the write lock: another process may have created it meanwhile */
    if (query_int(s, "SELECT count(*) FROM sqlite_master", &n, "create store", err)) {
        rollback(s);
        return -1;
    }
    if (n > 0) {
        rollback(s);
        return 1; /* someone else did: identify it again */
    }
    char sql[sizeof schema_sql + 256];
    snprintf(sql, sizeof sql, "%sINSERT INTO schema_version VALUES(%d, %.6f);PRAGMA application_id = %d;", schema_sql,
             SCHEMA_VERSION, now_s(), APP_ID);
    if (exec(s, sql, "create store", err)) {
        rollback(s);
        return -1;
    }
    return commit(s, "create store", err);
}

/* Version 1 -> 2: the latency_info column; 2 -> 3: the work queue (upgrade3_sql);
 * 3 -> 4: fidelity levels (upgrade4_sql); 4 -> 5: the zero-cost score (upgrade5_sql),
 * each step with its schema_version row.  Inside the write lock the version is read
 * again, so two processes opening an old store migrate it once; all steps are one
 * transaction (a failure in any leaves the store at its old version). */
static int migrate(sq_store *s, gn_error *err)
{
    const char *op = "upgrade store to schema 5";
    int64_t v;
    if (begin(s, op, err))
        return -1;
    if (query_int(s, "SELECT max(version) FROM schema_version", &v, op, err)) {
        rollback(s);
        return -1;
    }
    if (v >= SCHEMA_VERSION) {
        rollback(s);
        return 0;
    }
    char sql[160];
    if (v < 2) {
        snprintf(sql, sizeof sql,
                 "ALTER TABLE trials ADD COLUMN latency_info TEXT;INSERT INTO schema_version VALUES(2, %.6f);", now_s());
        if (exec(s, sql, op, err)) {
            rollback(s);
            return -1;
        }
    }
    if (v < 3) {
        snprintf(sql, sizeof sql, "INSERT INTO schema_version VALUES(3, %.6f);", now_s());
        if (exec(s, upgrade3_sql, op, err) || exec(s, sql, op, err)) {
            rollback(s);
            return -1;
        }
    }
    if (v < 4) {
        snprintf(sql, sizeof sql, "INSERT INTO schema_version VALUES(4, %.6f);", now_s());
        if (exec(s, upgrade4_sql, op, err) || exec(s, sql, op, err)) {
            rollback(s);
            return -1;
        }
    }
    snprintf(sql, sizeof sql, "INSERT INTO schema_version VALUES(5, %.6f);", now_s());
    if (exec(s, upgrade5_sql, op, err) || exec(s, sql, op, err)) {
        rollback(s);
        return -1;
    }
    return commit(s, op, err);
}

/* Recognise (or, if empty and allowed, create) a gpunas store. */
static int identify(sq_store *s, unsigned flags, gn_error *err)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        int64_t app;
        gn_error e;
        if (query_int(s, "PRAGMA application_id", &app, "open", &e)) {
            if (s->last_rc == SQLITE_NOTADB)
                return gn_error_set(err, "%s: not a gpunas trial store (not an SQLite database)", s->base.where);
            *err = e;
            return -1;
        }
        if (app == APP_ID) {
            int64_t v;
            if (query_int(s, "SELECT max(version) FROM schema_version", &v, "open", err))
                return gn_error_set(err, "%s: damaged gpunas trial store: no schema_version table", s->base.where);
            if (v > SCHEMA_VERSION)
                return gn_error_set(err, "%s: trial store schema version %lld is newer than this gpunas supports (%d); "
                                         "use a newer gpunas", s->base.where, (long long)v, SCHEMA_VERSION);
            if (v < 1)
                return gn_error_set(err, "%s: damaged gpunas trial store: schema version %lld", s->base.where,
                                    (long long)v);
            return v < SCHEMA_VERSION ? migrate(s, err) : 0;
        }
        if (app != 0)
            return gn_error_set(err, "%s: not a gpunas trial store (SQLite application_id 0x%08llx)", s->base.where,
                                (unsigned long long)(uint32_t)app);
        int64_t n;
        if (query_int(s, "SELECT count(*) FROM sqlite_master", &n, "open", err))
            return -1;
        if (n > 0)
            return gn_error_set(err, "%s: not a gpunas trial store (an SQLite database of another application)",
                                s->base.where);
        if (!(flags & GN_STORE_CREATE))
            return gn_error_set(err, "%s: not a gpunas trial store (empty database)", s->base.where);
        /* WAL must be chosen outside a transaction; on an empty file it is the first write */
        if (exec(s, "PRAGMA journal_mode=WAL", "open", err))
            return -1;
        int rc = create_schema(s, err);
        if (rc <= 0)
            return rc;
    }
    return gn_error_set(err, "%s: open: the store changed while it was being created; try again", s->base.where);
}

int gn__store_open_sqlite(const char *path, unsigned flags, gn_store **out, gn_error *err)
{
    *out = NULL;
    if (!path || !*path)
        return gn_error_set(err, "trial store: empty file name");
    if (strcmp(path, ":memory:") == 0 || path[0] == ':')
        return gn_error_set(err, "%s: a trial store must be a file", path);
    struct stat stt;
    if (stat(path, &stt) == 0) {
        if (S_ISDIR(stt.st_mode))
            return gn_error_set(err, "%s: is a directory, not a trial store", path);
    } else if (!(flags & GN_STORE_CREATE)) {
        return gn_error_set(err, "%s: cannot open trial store: %s", path, strerror(errno));
    }
    sq_store *s = calloc(1, sizeof *s);
    if (!s || !(s->base.where = strdup(path))) {
        free(s);
        return gn_error_set(err, "%s: cannot open trial store: out of memory", path);
    }
    s->base.ops = &sqlite_ops;
    int oflags = SQLITE_OPEN_READWRITE | (flags & GN_STORE_CREATE ? SQLITE_OPEN_CREATE : 0);
    errno = 0;
    int rc = sqlite3_open_v2(path, &s->db, oflags, NULL);
    /* SQLite opens a file it cannot open read-write read-only instead (and says so
     * only at the first write); errno still holds the failed open's reason */
    int open_errno = errno;
    if (rc != SQLITE_OK) {
        if (s->db) {
            char why[GN_ERROR_MAX];
            reason(s, sqlite3_errmsg(s->db), why, sizeof why);
            gn_error_set(err, "%s: cannot open trial store: %s", path, why);
        } else {
            gn_error_set(err, "%s: cannot open trial store: out of memory", path);
        }
        sqlite3_close(s->db);
        free(s->base.where);
        free(s);
        return -1;
    }
    if (sqlite3_db_readonly(s->db, "main") == 1)
        s->ro_errno = open_errno > 0 ? open_errno : -1;
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
    char sync[64];
    snprintf(sync, sizeof sync, "PRAGMA synchronous=%s", flags & GN_STORE_FAST ? "NORMAL" : "FULL");
    if (identify(s, flags, err) || exec(s, "PRAGMA journal_mode=WAL", "open", err) ||
        exec(s, sync, "open", err)) {
        sqlite3_close(s->db);
        free(s->base.where);
        free(s);
        return -1;
    }
    *out = &s->base;
    return 0;
}

static void sq_close(gn_store *b)
{
    sq_store *s = (sq_store *)b;
    sqlite3_close(s->db); /* statements are always finalized, so this closes */
    free(s->base.where);
    free(s);
}

/* A text copy (SQLITE_TRANSIENT) needs memory: SQLITE_NOMEM leaves the parameter
 * NULL, so the callers check every one. */
static int bind_str(sqlite3_stmt *st, int i, const char *v)
{
    return v ? sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

/* INSERT a meta row: replacing (put) or only when absent (put_new).  0 written, 1 (only
 * without replace) present already, -1 error. */
static int sq_meta_insert(gn_store *b, const char *key, const char *value, bool replace, gn_error *err)
{
    sq_store *s = (sq_store *)b;
    char op[160];
    snprintf(op, sizeof op, "put meta '%.100s'", key);
    sqlite3_stmt *st;
    const char *sql =
        replace ? "INSERT INTO meta(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2"
                : "INSERT INTO meta(key, value) VALUES(?1, ?2) ON CONFLICT(key) DO NOTHING";
    if (begin_prepare(s, sql, &st, op, err))
        return -1;
    if (step_done(s, st, bind_str(st, 1, key) | bind_str(st, 2, value), op, err))
        return -1;
    int inserted = sqlite3_changes(s->db) > 0;
    if (commit(s, op, err))
        return -1;
    return inserted || replace ? 0 : 1;
}

static int sq_put_meta(gn_store *b, const char *key, const char *value, gn_error *err)
{
    return sq_meta_insert(b, key, value, true, err);
}

static int sq_put_meta_new(gn_store *b, const char *key, const char *value, gn_error *err)
{
    return sq_meta_insert(b, key, value, false, err);
}

static int sq_get_meta(gn_store *b, const char *key, char **value, gn_error *err)
{
    sq_store *s = (sq_store *)b;
    char op[160];
    snprintf(op, sizeof op, "get meta '%.100s'", key);
    sqlite3_stmt *st;
    if (prepare(s, "SELECT value FROM meta WHERE key = ?1", &st, op, err))
        return -1;
    int rc = bind_str(st, 1, key), ret;
    rc = rc != SQLITE_OK ? rc : sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        *value = v ? strdup(v) : NULL;
        ret = *value ? 0 : gn_error_set(err, "%s: %s: out of memory", s->base.where, op);
    } else if (rc == SQLITE_DONE) {
        ret = 1;
    } else {
        ret = sqerr(s, op, err);
    }
    sqlite3_finalize(st);
    return ret;
}

static void bind_real(sqlite3_stmt *st, int i, double v)
{
    if (isnan(v))
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_double(st, i, v);
}

static void bind_i64(sqlite3_stmt *st, int i, int64_t v, int64_t null_value)
{
    if (v == null_value)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_int64(st, i, v);
}

static int sq_insert_trial(gn_store *b, gn_trial *t, gn_error *err)
{
    sq_store *s = (sq_store *)b;
    char op[96];
    snprintf(op, sizeof op, "insert trial (seq %lld)", (long long)t->seq);
    double now = now_s();
    double created = isnan(t->created_at) ? now : t->created_at, started = isnan(t->started_at) ? now : t->started_at;
    sqlite3_stmt *st;
    const char *sql =
        "INSERT INTO trials(seq, tier, encoding, config, status, val_acc, latency_ms, latency_spread_ms, "
        "params, macs, train_s, created_at, started_at, finished_at, worker, error, optimizer, latency_info, "
        "device, attempts, level, parent, naswot) "
        "VALUES(?1, ?2, ?3, ?4, 'running', NULL, ?5, ?6, ?7, ?8, NULL, ?9, ?10, NULL, ?11, NULL, ?12, ?13, ?14, 1,"
        " ?15, ?16, ?17)";
    if (begin_prepare(s, sql, &st, op, err))
        return -1;
    sqlite3_bind_int64(st, 1, t->seq);
    bind_i64(st, 2, t->tier, -1);
    int brc = bind_str(st, 3, t->encoding) | bind_str(st, 4, t->config) | bind_str(st, 11, t->worker) |
              bind_str(st, 12, t->optimizer) | bind_str(st, 13, t->latency_info);
    bind_real(st, 5, t->latency_ms);
    bind_real(st, 6, t->latency_spread_ms);
    bind_i64(st, 7, t->params, -1);
    bind_i64(st, 8, t->macs, -1);
    sqlite3_bind_double(st, 9, created);
    sqlite3_bind_double(st, 10, started);
    sqlite3_bind_int(st, 15, t->level);
    bind_i64(st, 16, t->parent, 0);
    bind_real(st, 17, t->naswot);
    if (step_done(s, st, brc | bind_str(st, 14, t->device), op, err))
        return -1;
    int64_t id = sqlite3_last_insert_rowid(s->db);
    if (commit(s, op, err))
        return -1;
    t->id = id;
    t->status = GN_TRIAL_RUNNING;
    t->created_at = created;
    t->started_at = started;
    t->finished_at = NAN;
    t->attempts = 1;
    return 0;
}

static int sq_finish_trial(gn_store *b, int64_t id, const gn_trial *t, gn_error *err)
{
    sq_store *s = (sq_store *)b;
    char op[96];
    snprintf(op, sizeof op, "finish trial %lld", (long long)id);
    double fin = isnan(t->finished_at) ? now_s() : t->finished_at;
    sqlite3_stmt *st;
    const char *sql =
        "UPDATE trials SET status = ?2, val_acc = ?3, train_s = ?4, finished_at = ?5, error = ?6,"
        " naswot = ?16, tier = coalesce(?7, tier), config = coalesce(?8, config),"
        " latency_ms = coalesce(?9, latency_ms), latency_spread_ms = coalesce(?10, latency_spread_ms),"
        " params = coalesce(?11, params), macs = coalesce(?12, macs), worker = coalesce(?13, worker),"
        " latency_info = coalesce(?14, latency_info), device = coalesce(?15, device)"
        " WHERE id = ?1 AND status = 'running'";
    if (begin_prepare(s, sql, &st, op, err))
        return -1;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, gn_trial_status_name(t->status), -1, SQLITE_STATIC);
    bind_real(st, 3, t->val_acc);
    bind_real(st, 4, t->train_s);
    sqlite3_bind_double(st, 5, fin);
    bind_i64(st, 7, t->tier, -1);
    bind_real(st, 9, t->latency_ms);
    bind_real(st, 10, t->latency_spread_ms);
    bind_i64(st, 11, t->params, -1);
    bind_i64(st, 12, t->macs, -1);
    bind_real(st, 16, t->naswot);
    int brc = bind_str(st, 6, t->error) | bind_str(st, 8, t->config) | bind_str(st, 13, t->worker) |
              bind_str(st, 14, t->latency_info) | bind_str(st, 15, t->device);
    if (step_done(s, st, brc, op, err))
        return -1;
    if (sqlite3_changes(s->db) == 0) {
        /* not running: say why */
        sqlite3_stmt *q;
        int ret = -1;
        if (prepare(s, "SELECT status FROM trials WHERE id = ?1", &q, op, err) == 0) {
            sqlite3_bind_int64(q, 1, id);
            int r2 = sqlite3_step(q);
            if (r2 == SQLITE_ROW)
                gn_error_set(err, "%s: %s: the trial is already %s (a trial is finished once)", s->base.where, op,
                             (const char *)sqlite3_column_text(q, 0));
            else if (r2 == SQLITE_DONE)
                gn_error_set(err, "%s: %s: no such trial", s->base.where, op);
            else
                sqerr(s, op, err);
            sqlite3_finalize(q);
        }
        rollback(s);
        return ret;
    }
    return commit(s, op, err);
}

#define TRIAL_COLUMNS                                                                                        \
    "id, seq, tier, encoding, config, status, val_acc, latency_ms, latency_spread_ms, params, macs, train_s, " \
    "created_at, started_at, finished_at, worker, error, optimizer, latency_info, kind, device_class, device, " \
    "attempts, max_attempts, lease_expires_at, level, parent, naswot"

static double col_real(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

static int64_t col_i64(sqlite3_stmt *st, int i, int64_t null_value)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? null_value : sqlite3_column_int64(st, i);
}

/* A copy of a text column (NULL for SQL NULL); *oom set when memory ran out. */
static char *col_str(sqlite3_stmt *st, int i, int *oom)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return NULL;
    const unsigned char *v = sqlite3_column_text(st, i);
    char *c = v ? strdup((const char *)v) : NULL;
    if (!c)
        *oom = 1;
    return c;
}

/* 0, or -1 when memory ran out (t is then cleared) */
static int read_row(sqlite3_stmt *st, gn_trial *t)
{
    int oom = 0;
    gn_trial_init(t);
    t->id = sqlite3_column_int64(st, 0);
    t->seq = sqlite3_column_int64(st, 1);
    t->tier = (int)col_i64(st, 2, -1);
    t->encoding = col_str(st, 3, &oom);
    t->config = col_str(st, 4, &oom);
    const char *status = (const char *)sqlite3_column_text(st, 5);
    if (!status) /* NOT NULL: only when memory ran out */
        oom = 1;
    gn_trial_status_parse(status, &t->status); /* the CHECK constraint keeps it valid */
    t->val_acc = col_real(st, 6);
    t->latency_ms = col_real(st, 7);
    t->latency_spread_ms = col_real(st, 8);
    t->params = col_i64(st, 9, -1);
    t->macs = col_i64(st, 10, -1);
    t->train_s = col_real(st, 11);
    t->created_at = col_real(st, 12);
    t->started_at = col_real(st, 13);
    t->finished_at = col_real(st, 14);
    t->worker = col_str(st, 15, &oom);
    t->error = col_str(st, 16, &oom);
    t->optimizer = col_str(st, 17, &oom);
    t->latency_info = col_str(st, 18, &oom);
    t->kind = col_str(st, 19, &oom);
    t->device_class = col_str(st, 20, &oom);
    t->device = col_str(st, 21, &oom);
    t->attempts = (int)sqlite3_column_int64(st, 22);
    t->max_attempts = (int)sqlite3_column_int64(st, 23);
    t->lease_expires_at = col_real(st, 24);
    t->level = (int)sqlite3_column_int64(st, 25);
    t->parent = col_i64(st, 26, 0);
    t->naswot = col_real(st, 27);
    if (oom)
        gn_trial_clear(t);
    return oom ? -1 : 0;
}

/* WHERE clause for a filter; parameters ?1 status, ?2 tier, ?3 after_id, ?5 level (?4:
 * the limit, bound by the callers). */
static void filter_sql(const gn_trial_filter *f, char *buf, size_t n)
{
    snprintf(buf, n, " WHERE id > ?3%s%s%s", f->status >= 0 ? " AND status = ?1" : "",
             f->tier == GN_TIER_ANY ? "" : f->tier < 0 ? " AND tier IS NULL" : " AND tier = ?2",
             f->level == GN_LEVEL_ANY ? "" : " AND level = ?5");
}

static void bind_filter(sqlite3_stmt *st, const gn_trial_filter *f)
{
    if (f->status >= 0)
        sqlite3_bind_text(st, 1, gn_trial_status_name((gn_trial_status)f->status), -1, SQLITE_STATIC);
    if (f->tier >= 0)
        sqlite3_bind_int(st, 2, f->tier);
    sqlite3_bind_int64(st, 3, f->after_id);
    if (f->level != GN_LEVEL_ANY)
        sqlite3_bind_int(st, 5, f->level);
}

static int sq_list_trials(gn_store *b, const gn_trial_filter *f, gn_trial_list *out, gn_error *err)
{
    sq_store *s = (sq_store *)b;
    char where[128], sql[512];
    filter_sql(f, where, sizeof where);
    snprintf(sql, sizeof sql, "SELECT " TRIAL_COLUMNS " FROM trials%s ORDER BY id%s", where,
             f->limit > 0 ? " LIMIT ?4" : "");
    sqlite3_stmt *st;
    if (prepare(s, sql, &st, "list trials", err))
        return -1;
    bind_filter(st, f);
    if (f->limit > 0)
        sqlite3_bind_int64(st, 4, f->limit);
    int64_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (out->n == cap) {
            cap = cap ? 2 * cap : 64;
            gn_trial *p = realloc(out->items, sizeof(gn_trial) * (size_t)cap);
            if (!p) {
                sqlite3_finalize(st);
                gn_trial_list_free(out);
                return gn_error_set(err, "%s: list trials: out of memory", s->base.where);
            }
            out->items = p;
        }
        if (read_row(st, &out->items[out->n++])) {
            sqlite3_finalize(st);
            gn_trial_list_free(out);
            return gn_error_set(err, "%s: list trials: out of memory", s->base.where);
        }
    }
    if (rc != SQLITE_DONE) {
        sqerr(s, "list trials", err);
        sqlite3_finalize(st);
        gn_trial_list_free(out);
        return -1;
    }
    sqlite3_finalize(st);
    return 0;
}

static int sq_count_trials(gn_store *b, const gn_trial_filter *f, int64_t *n, gn_error *err)
{
    sq_store *s = (sq_store *)b;
    char where[128], sql[256];
    filter_sql(f, where, sizeof where);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM (SELECT 1 FROM trials%s%s)", where,
             f->limit > 0 ? " LIMIT ?4" : "");
    sqlite3_stmt *st;
    if (prepare(s, sql, &st, "count trials", err))
        return -1;
    bind_filter(st, f);
    if (f->limit > 0)
        sqlite3_bind_int64(st, 4, f->limit);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqerr(s, "count trials", err);
        sqlite3_finalize(st);
        return -1;
    }
    *n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return 0;
}

static int sq_get_trial(gn_store *b, int64_t id, gn_trial *out, gn_error *err)
{
    sq_store *s = (sq_store *)b;
    char op[64];
    snprintf(op, sizeof op, "get trial %lld", (long long)id);
    sqlite3_stmt *st;
    if (prepare(s, "SELECT " TRIAL_COLUMNS " FROM trials WHERE id = ?1", &st, op, err))
        return -1;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st), ret;
    if (rc == SQLITE_ROW) {
        ret = read_row(st, out) ? gn_error_set(err, "%s: %s: out of memory", s->base.where, op) : 0;
    } else if (rc == SQLITE_DONE) {
        gn_error_set(err, "%s: %s: no such trial", s->base.where, op);
        ret = 1;
    } else {
        ret = sqerr(s, op, err);
    }
    sqlite3_finalize(st);
    return ret;
}

/* ---- the work queue ---- */

/* Step a statement that returns at most one row (RETURNING); 1 row, 0 none, -1 error. */
static int step_one(sq_store *s, sqlite3_stmt *st, const char *op, gn_error *err)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    return sqerr(s, op, err);
}

/* Inside a transaction: why a guarded update touched no row.  Rolls back. */
static int sq_lost(sq_store *s, const char *op, int64_t id, gn_error *err)
{
    sqlite3_stmt *q;
    int ret = -1;
    if (prepare(s, "SELECT status, worker FROM trials WHERE id = ?1", &q, op, err) == 0) {
        sqlite3_bind_int64(q, 1, id);
        int r = step_one(s, q, op, err);
        if (r == 1)
            ret = gn__lease_lost(err, s->base.where, op, id, (const char *)sqlite3_column_text(q, 0),
                                 (const char *)sqlite3_column_text(q, 1));
        else if (r == 0)
            ret = gn__lease_lost(err, s->base.where, op, id, "", NULL);
        sqlite3_finalize(q);
    }
    rollback(s);
    return ret;
}

static int sq_enqueue(gn_store *b, gn_trial *t, gn_error *err)
{
    sq_store *s = (sq_store *)b;
    char op[96];
    snprintf(op, sizeof op, "enqueue (seq %lld)", (long long)t->seq);
    sqlite3_stmt *st;
    const char *sql =
        "INSERT INTO trials(seq, tier, encoding, config, status, latency_ms, latency_spread_ms, params, macs,"
        " created_at, optimizer, latency_info, kind, device_class, attempts, max_attempts, level, parent)"
        " VALUES(?1, ?2, ?3, ?4, 'queued', ?5, ?6, ?7, ?8, coalesce(?9, " NOW "), ?10, ?11, ?12, ?13, 0, ?14,"
        " ?15, ?16) RETURNING id, created_at";
    if (begin_prepare(s, sql, &st, op, err))
        return -1;
    sqlite3_bind_int64(st, 1, t->seq);
    bind_i64(st, 2, t->tier, -1);
    int brc = bind_str(st, 3, t->encoding) | bind_str(st, 4, t->config) | bind_str(st, 10, t->optimizer) |
              bind_str(st, 11, t->latency_info) | bind_str(st, 12, t->kind) |
              bind_str(st, 13, strcmp(t->kind, "measure") == 0 ? t->device_class : NULL);
    bind_real(st, 5, t->latency_ms);
    bind_real(st, 6, t->latency_spread_ms);
    bind_i64(st, 7, t->params, -1);
    bind_i64(st, 8, t->macs, -1);
    bind_real(st, 9, t->created_at);
    sqlite3_bind_int(st, 14, t->max_attempts);
    sqlite3_bind_int(st, 15, t->level);
    bind_i64(st, 16, t->parent, 0);
    int r = brc != SQLITE_OK ? (sqerr(s, op, err), -1) : step_one(s, st, op, err);
    if (r != 1) {
        if (r == 0)
            gn_error_set(err, "%s: %s: no row inserted", s->base.where, op);
        sqlite3_finalize(st);
        rollback(s);
        return -1;
    }
    int64_t id = sqlite3_column_int64(st, 0);
    double created = sqlite3_column_double(st, 1);
    sqlite3_finalize(st);
    if (commit(s, op, err))
        return -1;
    t->id = id;
    t->status = GN_TRIAL_QUEUED;
    t->created_at = created;
    t->started_at = t->finished_at = t->lease_expires_at = NAN;
    t->attempts = 0;
    return 0;
}

/* Expired leases back to 'queued', or 'failed' at max_attempts; inside a transaction. */
static int sq_reap_tx(sq_store *s, int64_t *requeued, int64_t *failed, const char *op, gn_error *err)
{
    sqlite3_stmt *st;
    if (prepare(s,
                "UPDATE trials SET"
                " status = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END,"
                " error = CASE WHEN attempts >= max_attempts"
                "   THEN printf('lease expired %d times (last worker %s)', attempts, worker) ELSE error END,"
                " finished_at = CASE WHEN attempts >= max_attempts THEN " NOW " ELSE NULL END,"
                " lease_token = NULL, lease_expires_at = NULL"
                " WHERE status = 'leased' AND lease_expires_at < " NOW " RETURNING status",
                &st, op, err))
        return -1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (strcmp((const char *)sqlite3_column_text(st, 0), "failed") == 0)
            (*failed)++;
        else
            (*requeued)++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return sqerr(s, op, err);
    return 0;
}

static int sq_reap(gn_store *b, int64_t *requeued, int64_t *failed, gn_error *err)
{
    sq_store *s = (sq_store *)b;
    if (begin(s, "reap expired leases", err))
        return -1;
    if (sq_reap_tx(s, requeued, failed, "reap expired leases", err)) {
        rollback(s);
        return -1;
    }
    return commit(s, "reap expired leases", err);
}

static int sq_claim(gn_store *b, const gn_claim_req *rq, const char *token, gn_trial *job, gn_lease *lease,
                    gn_error *err)
{
    sq_store *s = (sq_store *)b;
    char op[160];
    snprintf(op, sizeof op, "claim (worker %.100s)", rq->worker);
    int64_t rq_n = 0, f_n = 0;
    sqlite3_stmt *st;
    if (begin(s, op, err))
        return -1;
    if (sq_reap_tx(s, &rq_n, &f_n, op, err) ||
        prepare(s,
                "UPDATE trials SET status = 'leased', worker = ?1, lease_token = ?2,"
                " lease_expires_at = " NOW " + ?3, attempts = attempts + 1, started_at = " NOW
                " WHERE id = (SELECT id FROM trials WHERE status = 'queued'"
                "  AND ((?4 AND kind = 'train') OR (?5 AND kind = 'measure' AND device_class = ?6))"
                "  ORDER BY id LIMIT 1)"
                " RETURNING " TRIAL_COLUMNS,
                &st, op, err)) {
        rollback(s);
        return -1;
    }
    sqlite3_bind_text(st, 1, rq->worker, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, token, -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(st, 3, rq->lease_s);
    sqlite3_bind_int(st, 4, (rq->kinds & GN_JOB_TRAIN) != 0);
    sqlite3_bind_int(st, 5, (rq->kinds & GN_JOB_MEASURE) != 0 && rq->device_class);
    int r = bind_str(st, 6, rq->device_class) != SQLITE_OK ? (sqerr(s, op, err), -1) : step_one(s, st, op, err);
    if (r == 1 && read_row(st, job)) {
        gn_error_set(err, "%s: %s: out of memory", s->base.where, op);
        r = -1;
    } else if (r == 1) {
        /* RETURNING rows are produced before the statement completes: finish it */
        if (sqlite3_step(st) != SQLITE_DONE) {
            sqerr(s, op, err);
            r = -1;
        }
    }
    sqlite3_finalize(st);
    if (r < 0 || commit(s, op, err)) {
        gn_trial_clear(job);
        rollback(s);
        return -1;
    }
    if (r == 0)
        return 1;
    lease->trial_id = job->id;
    memcpy(lease->token, token, GN_LEASE_TOKEN_LEN + 1);
    lease->attempt = job->attempts;
    lease->expires_at = job->lease_expires_at;
    return 0;
}

static int sq_heartbeat(gn_store *b, gn_lease *lease, double lease_s, gn_error *err)
{
    sq_store *s = (sq_store *)b;
    char op[64];
    snprintf(op, sizeof op, "heartbeat trial %lld", (long long)lease->trial_id);
    sqlite3_stmt *st;
    const char *sql =
        "UPDATE trials SET lease_expires_at = " NOW " + ?3 WHERE id = ?1 AND status = 'leased'"
        " AND lease_token = ?2 AND lease_expires_at >= " NOW " RETURNING lease_expires_at";
    if (begin_prepare(s, sql, &st, op, err))
        return -1;
    sqlite3_bind_int64(st, 1, lease->trial_id);
    sqlite3_bind_text(st, 2, lease->token, -1, SQLITE_TRANSIENT);
    sqlite3_bind_double(st, 3, lease_s);
    int r = step_one(s, st, op, err);
    double exp = r == 1 ? sqlite3_column_double(st, 0) : NAN;
    if (r == 1 && sqlite3_step(st) != SQLITE_DONE)
        r = sqerr(s, op, err);
    sqlite3_finalize(st);
    if (r < 0) {
        rollback(s);
        return -1;
    }
    if (r == 0)
        return sq_lost(s, op, lease->trial_id, err);
    if (commit(s, op, err))
        return -1;
    lease->expires_at = exp;
    return 0;
}

static int sq_complete(gn_store *b, const gn_lease *lease, const gn_trial *t, gn_error *err)
{
    sq_store *s = (sq_store *)b;
    char op[64];
    snprintf(op, sizeof op, "complete trial %lld", (long long)lease->trial_id);
    sqlite3_stmt *st;
    const char *sql =
        "UPDATE trials SET status = ?2, val_acc = ?3, naswot = ?17, train_s = ?4,"
        " finished_at = CASE WHEN ?2 = 'queued' THEN NULL ELSE coalesce(?5, " NOW ") END,"
        " error = ?6, tier = coalesce(?7, tier), config = coalesce(?8, config),"
        " latency_ms = coalesce(?9, latency_ms), latency_spread_ms = coalesce(?10, latency_spread_ms),"
        " params = coalesce(?11, params), macs = coalesce(?12, macs),"
        " latency_info = coalesce(?13, latency_info), device = coalesce(?14, device),"
        " lease_token = NULL, lease_expires_at = NULL, kind = coalesce(?16, kind),"
        " attempts = CASE WHEN ?2 = 'queued' THEN 0 ELSE attempts END,"
        " started_at = CASE WHEN ?2 = 'queued' THEN NULL ELSE started_at END"
        " WHERE id = ?1 AND status = 'leased' AND lease_token = ?15 AND lease_expires_at >= " NOW;
    if (begin_prepare(s, sql, &st, op, err))
        return -1;
    sqlite3_bind_int64(st, 1, lease->trial_id);
    sqlite3_bind_text(st, 2, gn_trial_status_name(t->status), -1, SQLITE_STATIC);
    bind_real(st, 3, t->val_acc);
    bind_real(st, 4, t->train_s);
    bind_real(st, 5, t->finished_at);
    bind_i64(st, 7, t->tier, -1);
    bind_real(st, 9, t->latency_ms);
    bind_real(st, 10, t->latency_spread_ms);
    bind_i64(st, 11, t->params, -1);
    bind_i64(st, 12, t->macs, -1);
    bind_real(st, 17, t->naswot);
    int brc = bind_str(st, 6, t->error) | bind_str(st, 8, t->config) | bind_str(st, 13, t->latency_info) |
              bind_str(st, 14, t->device) | sqlite3_bind_text(st, 15, lease->token, -1, SQLITE_TRANSIENT) |
              bind_str(st, 16, t->kind);
    if (step_done(s, st, brc, op, err))
        return -1;
    if (sqlite3_changes(s->db) == 0)
        return sq_lost(s, op, lease->trial_id, err);
    return commit(s, op, err);
}

static int sq_expire_leases(gn_store *b, const char *worker, int64_t *n, gn_error *err)
{
    sq_store *s = (sq_store *)b;
    char op[160];
    snprintf(op, sizeof op, "expire the leases of worker %.100s", worker);
    sqlite3_stmt *st;
    const char *sql = "UPDATE trials SET lease_expires_at = " NOW " - 1 WHERE status = 'leased' AND worker = ?1";
    if (begin_prepare(s, sql, &st, op, err))
        return -1;
    if (step_done(s, st, bind_str(st, 1, worker), op, err))
        return -1;
    *n = sqlite3_changes(s->db);
    return commit(s, op, err);
}

static int sq_release(gn_store *b, const gn_lease *lease, gn_error *err)
{
    sq_store *s = (sq_store *)b;
    char op[64];
    snprintf(op, sizeof op, "release trial %lld", (long long)lease->trial_id);
    sqlite3_stmt *st;
    const char *sql =
        "UPDATE trials SET status = 'queued', attempts = attempts - 1, lease_token = NULL,"
        " lease_expires_at = NULL, started_at = NULL"
        " WHERE id = ?1 AND status = 'leased' AND lease_token = ?2 AND lease_expires_at >= " NOW;
    if (begin_prepare(s, sql, &st, op, err))
        return -1;
    sqlite3_bind_int64(st, 1, lease->trial_id);
    sqlite3_bind_text(st, 2, lease->token, -1, SQLITE_TRANSIENT);
    if (step_done(s, st, SQLITE_OK, op, err))
        return -1;
    if (sqlite3_changes(s->db) == 0)
        return sq_lost(s, op, lease->trial_id, err);
    return commit(s, op, err);
}

static int sq_register_worker(gn_store *b, const gn_worker *w, gn_error *err)
{
    sq_store *s = (sq_store *)b;
    char op[160];
    snprintf(op, sizeof op, "register worker %.100s", w->id);
    sqlite3_stmt *st;
    const char *sql =
        "INSERT INTO workers(id, host, pid, device_class, started_at, last_seen)"
        " VALUES(?1, ?2, ?3, ?4, " NOW ", " NOW ") ON CONFLICT(id) DO UPDATE SET host = excluded.host,"
        " pid = excluded.pid, device_class = excluded.device_class, started_at = excluded.started_at,"
        " last_seen = excluded.last_seen";
    if (begin_prepare(s, sql, &st, op, err))
        return -1;
    sqlite3_bind_int64(st, 3, w->pid);
    int brc = bind_str(st, 1, w->id) | bind_str(st, 2, w->host) | bind_str(st, 4, w->device_class);
    if (step_done(s, st, brc, op, err))
        return -1;
    return commit(s, op, err);
}

static int sq_worker_beat(gn_store *b, const char *id, gn_error *err)
{
    sq_store *s = (sq_store *)b;
    char op[160];
    snprintf(op, sizeof op, "worker heartbeat %.100s", id);
    sqlite3_stmt *st;
    if (begin_prepare(s, "UPDATE workers SET last_seen = " NOW " WHERE id = ?1", &st, op, err))
        return -1;
    if (step_done(s, st, bind_str(st, 1, id), op, err))
        return -1;
    if (sqlite3_changes(s->db) == 0) {
        rollback(s);
        gn_error_set(err, "%s: %s: no such worker (register it again)", s->base.where, op);
        return 1;
    }
    return commit(s, op, err);
}

static int sq_list_workers(gn_store *b, double window_s, gn_worker_list *out, gn_error *err)
{
    sq_store *s = (sq_store *)b;
    sqlite3_stmt *st;
    if (prepare(s,
                "SELECT id, host, pid, device_class, started_at, last_seen FROM workers"
                " WHERE last_seen >= " NOW " - ?1 ORDER BY id",
                &st, "list workers", err))
        return -1;
    sqlite3_bind_double(st, 1, window_s);
    int rc;
    int64_t cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (out->n == cap) {
            cap = cap ? 2 * cap : 16;
            gn_worker *p = realloc(out->items, sizeof(gn_worker) * (size_t)cap);
            if (!p) {
                sqlite3_finalize(st);
                gn_worker_list_free(out);
                return gn_error_set(err, "%s: list workers: out of memory", s->base.where);
            }
            out->items = p;
        }
        gn_worker *w = &out->items[out->n++];
        int oom = 0;
        w->id = col_str(st, 0, &oom);
        w->host = col_str(st, 1, &oom);
        w->pid = col_i64(st, 2, -1);
        w->device_class = col_str(st, 3, &oom);
        if (oom) {
            sqlite3_finalize(st);
            gn_worker_list_free(out);
            return gn_error_set(err, "%s: list workers: out of memory", s->base.where);
        }
        w->started_at = col_real(st, 4);
        w->last_seen = col_real(st, 5);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        gn_worker_list_free(out);
        return sqerr(s, "list workers", err);
    }
    return 0;
}

static const gn_store_ops sqlite_ops = {
    .name = "sqlite",
    .close = sq_close,
    .put_meta = sq_put_meta,
    .put_meta_new = sq_put_meta_new,
    .get_meta = sq_get_meta,
    .insert_trial = sq_insert_trial,
    .finish_trial = sq_finish_trial,
    .list_trials = sq_list_trials,
    .count_trials = sq_count_trials,
    .get_trial = sq_get_trial,
    .enqueue = sq_enqueue,
    .claim = sq_claim,
    .heartbeat = sq_heartbeat,
    .complete = sq_complete,
    .expire_leases = sq_expire_leases,
    .release = sq_release,
    .reap = sq_reap,
    .register_worker = sq_register_worker,
    .worker_beat = sq_worker_beat,
    .list_workers = sq_list_workers,
};
