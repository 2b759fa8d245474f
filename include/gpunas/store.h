/*
 * gpunas/store.h — the trial store: every candidate a search evaluates, persisted.
 *
 * Design
 *   A search writes one row per trial: inserted as 'running' when its evaluation
 *   starts, finished once as 'done' (metrics), 'failed' (error message) or 'pruned'
 *   (e.g. outside every latency tier).  Search-level settings (space, seed, tiers,
 *   optimizer, budget) are kept as key/value meta so `gpunas search --resume` can
 *   refuse a store made with other settings.  Every write is one transaction: after a
 *   crash (kill -9) the store holds exactly the writes whose call returned, so finished
 *   trials are never lost and a trial that was running stays 'running' for the resumed
 *   search to redo.
 *
 *   Storage sits behind a vtable (gn_store_ops, private to src/store in
 *   store_internal.h; callers hold an opaque gn_store) so another backend
 *   (PostgreSQL, for many machines) can be added beside the SQLite one without
 *   touching callers.
 *   gn_store_open() picks the backend from the location: "sqlite:PATH" or a plain
 *   PATH is SQLite (src/store/store_sqlite.c); other "scheme://" locations are refused
 *   with a one-line error until their backend exists.
 *
 *   SQLite details (store_sqlite.c): WAL journal, synchronous=FULL by default (see
 *   there for why), busy timeout 5 s, a schema_version table plus PRAGMA
 *   application_id to recognise a gpunas store; a file that is not one, or has a newer
 *   schema, is refused with one line.  Errors (disk full, I/O, locked) are one line
 *   naming the file and the operation; nothing crashes.
 *
 *   Numbers: unknown metrics are NaN (doubles) or -1 (params, macs) and are stored as
 *   SQL NULL; unknown strings are NULL.  Timestamps are Unix seconds (UTC, fractional).
 *
 * PostgreSQL and the work queue (issue 14, first part)
 *   "postgresql://..." and "postgres://..." locations (libpq connection URIs, including
 *   the socket form postgresql:///DB?host=/run/dir) open the PostgreSQL backend
 *   (src/store/store_pg.c): the same tables and meanings as the SQLite store, so that
 *   many machines can share one store and one queue of jobs.  SQLite stays the embedded
 *   default; both backends pass one conformance suite (tests/test_store_conformance.c).
 *
 *   States.  A trial is in exactly one of
 *     queued  --claim-->  leased  --complete(token)-->  done | failed | pruned
 *       ^                   |  \--release(token)--> queued (attempt given back)
 *       |                   '--lease expired (reaped)--> queued, or failed after
 *       '-------------------------------------------     max_attempts expiries
 *   plus 'running' for rows a process finishes itself (gn_store_insert_trial /
 *   gn_store_finish_trial), without token or expiry: the search loop's answers that wait
 *   for another job of the same network, and every evaluation of stores made before the
 *   queue existed; the process's death is noticed by `gpunas search --resume`, which
 *   redoes it, not by a clock.  Queued jobs never become 'running' and running trials
 *   never enter the queue.  A job may have stages: complete() with status 'queued'
 *   puts it back as its next kind (measured, then trained), under a new lease.
 *
 *   Leases.  A claim atomically takes the oldest claimable queued job (lowest id) and
 *   gives it a fresh 128-bit random token, attempts + 1, worker = the claimer, and
 *   lease_expires_at = the DATABASE SERVER's now + lease seconds.  Every comparison
 *   with a lease expiry happens inside a statement on the server's clock (PostgreSQL
 *   now(), SQLite julianday('now')); worker clocks are never trusted.  A lease is lost
 *   the moment it expires, whether or not it has been reaped yet: heartbeat, complete
 *   and release with an expired or replaced token return GN_STORE_LEASE_LOST and change
 *   nothing.  complete() commits the result and ends the lease in one transaction
 *   guarded by the token, so a worker presumed dead that comes back cannot overwrite
 *   the retry's result: each job has exactly one result.
 *
 *   Reaping.  Every claim first reaps expired leases in the same transaction (and
 *   gn_store_reap does only that, for a coordinator): an expired job goes back to
 *   'queued', or to 'failed' with error "lease expired N times (last worker W)" once its
 *   attempts reach max_attempts.  Reaping is a guarded UPDATE (status = 'leased' AND
 *   expiry < now), so any number of workers may run it at once: each expired lease is
 *   reaped by exactly one of them (PostgreSQL: rows taken with SKIP LOCKED; SQLite: the
 *   write lock).  No job stays leased forever as long as anyone claims or reaps.
 *
 *   Release (the graceful SIGTERM path) gives the job back to 'queued' and does NOT
 *   count the attempt (attempts - 1): a worker that is told to stop is not a failure of
 *   the job.  Hence attempts counts leases that were not given back, and at the reap
 *   that fails a job all its attempts ended in expiry (N = attempts).
 *
 *   Routing.  Jobs have a kind: "measure" jobs (latency) name a device class and only
 *   workers of that class take them; "train" jobs go to any worker that accepts
 *   trains.  A result with a latency must carry the fingerprint of the device that
 *   measured it (gn_trial.device).
 *
 *   Workers register a row (id, host, pid, device class, started, last seen by the
 *   server's clock) and beat it; gn_store_list_workers lists those seen within a window.
 *
 * Fidelity levels (schema 4)
 *   Successive halving trains a promising candidate again at a larger budget.  Every
 *   trial row has a level: 0 is a proposal of the search, evaluated at its first budget
 *   (every row written before schema 4 is one); a level L >= 1 row is the same network
 *   promoted to budget L, a job of its own (enqueued, claimed, leased and completed like
 *   any other, so workers need nothing new), whose parent is the id of the level-0 trial
 *   it promotes.  Levels never change after the insert or enqueue: complete, finish,
 *   release and reap leave level and parent as they are.  The store checks only the
 *   shape (level >= 0; level >= 1 has a parent > 0; level 0 has none), not that the
 *   parent exists or is level 0: the search that promotes decides that.
 *   Listing and counting filter on the level, and gn_trial_filter_init selects level 0,
 *   so every caller that knows nothing of levels keeps seeing exactly the proposals, one
 *   row per candidate, as before; GN_LEVEL_ANY lists every row.  Both backends store
 *   the level NOT NULL DEFAULT 0 and the parent as NULL when 0, with an index on
 *   (parent, level) for the rows that have a parent.  Opening a schema-3 store adds the
 *   two columns in place (SQLite from 1, 2 or 3 in one transaction; PostgreSQL from 3).
 *
 * Zero-cost score (schema 5)
 *   Every trial row has a naswot column: the NASWOT score (log|det K|, gpunas/train.h
 *   gn_naswot_on_data) of the untrained network, which a worker computes and writes
 *   together with the proxy result (val_acc) of a level-0 trial when the search's score
 *   uses it.  Finish and complete write t->naswot exactly as they write val_acc (NaN
 *   stored as NULL, i.e. unknown, replacing what was there; a staged complete with
 *   status queued writes it too); unlike val_acc, insert also stores a score already
 *   known (NaN: unknown); enqueue, claim, release and reap leave it alone.  Any double
 *   but NaN is kept as given, -inf included (an exactly singular kernel): the store
 *   checks no range.
 *   Both backends store it as a nullable REAL / double precision, NULL when unknown,
 *   read back as NaN.  Opening a schema-4 store adds the column in place (every
 *   existing row NULL) and records version 5 (SQLite from 1..4 in one transaction;
 *   PostgreSQL from 3 or 4); a store of a schema newer than 5 is refused.
 */
#ifndef GPUNAS_STORE_H
#define GPUNAS_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "gpunas/error.h"

typedef enum {
    GN_TRIAL_RUNNING = 0,
    GN_TRIAL_DONE,
    GN_TRIAL_FAILED,
    GN_TRIAL_PRUNED,
    GN_TRIAL_QUEUED, /* waiting in the work queue (gn_store_enqueue) */
    GN_TRIAL_LEASED, /* claimed by a worker under a lease (gn_store_claim) */
} gn_trial_status;
#define GN_TRIAL_NSTATUS 6

/* "running", "done", "failed", "pruned", "queued", "leased" */
const char *gn_trial_status_name(gn_trial_status st);
int gn_trial_status_parse(const char *name, gn_trial_status *out); /* 0, or -1 if unknown */

typedef struct {
    int64_t id;              /* assigned by insert (1, 2, ...; never reused) */
    int64_t seq;             /* proposal number within the search */
    int tier;                /* latency tier index; -1: none */
    char *encoding;          /* gn_space_encode_to_string() text (required) */
    char *config;            /* GPUNet JSON layer list, or NULL */
    gn_trial_status status;
    double val_acc;          /* validation accuracy in [0, 1], NaN unknown */
    double latency_ms;       /* measured batch-1 latency (median), NaN unknown */
    double latency_spread_ms; /* its spread (e.g. IQR), NaN unknown */
    int64_t params, macs;    /* -1 unknown */
    double train_s;          /* proxy-training seconds, NaN unknown */
    double created_at, started_at, finished_at; /* Unix seconds, NaN unknown */
    char *worker;            /* host/worker that evaluated it, or NULL */
    char *error;             /* failure reason (one line), or NULL */
    char *optimizer;         /* optimizer that proposed it, or NULL */
    char *latency_info;      /* JSON: how latency_ms was measured (threads, placement,
                                the reference network's state), or NULL */
    /* the work queue (schema 3); in-process trials: kind NULL, attempts 1 */
    char *kind;              /* job kind: "measure" or "train"; NULL: not a queued job */
    char *device_class;      /* measure jobs: the device class that must measure it */
    char *device;            /* fingerprint of the device that measured latency_ms, or NULL */
    int attempts;            /* leases taken and not given back */
    int max_attempts;        /* queued jobs: expiries before 'failed' (>= 1); 0 otherwise */
    double lease_expires_at; /* leased: expiry on the server's clock; NaN otherwise */
    /* fidelity levels (schema 4) */
    int level;               /* fidelity level: 0 a proposal (the search's first budget); L >= 1 the
                                same network promoted by successive halving to budget L (a job of its own) */
    int64_t parent;          /* level >= 1: id of the level-0 trial it promotes; 0 otherwise */
    /* zero-cost score (schema 5) */
    double naswot;           /* NASWOT score of the untrained network (gpunas/train.h,
                                gn_naswot_on_data), written with the proxy result of a
                                level-0 trial when the search's score uses it; NaN unknown */
} gn_trial;

/* A trial with every field unknown (NaN / -1 / NULL), status running, tier -1, level 0
 * (a proposal), parent 0. */
void gn_trial_init(gn_trial *t);
/* Frees the strings (not t itself) and re-initialises. */
void gn_trial_clear(gn_trial *t);
/* A deep copy (its own strings; free with gn_trial_clear).  -1: out of memory (dst
 * cleared). */
int gn_trial_copy(gn_trial *dst, const gn_trial *src);

/* Which trials list/count return: status < 0 any; tier == GN_TIER_ANY any; level ==
 * GN_LEVEL_ANY any (see "Fidelity levels" above: the default is proposals only). */
#define GN_TIER_ANY (-2)
#define GN_LEVEL_ANY (-1)
typedef struct {
    int status;        /* gn_trial_status, or -1 for any */
    int tier;          /* a tier index, -1 (none), or GN_TIER_ANY */
    int64_t after_id;  /* only ids > after_id (0: all) */
    int64_t limit;     /* at most this many (0: no limit) */
    int level;         /* only rows of this fidelity level (>= 0), or GN_LEVEL_ANY */
} gn_trial_filter;
/* any status, any tier, all ids, level 0 (proposals only: promotions are listed only
 * when level is set to theirs or to GN_LEVEL_ANY) */
void gn_trial_filter_init(gn_trial_filter *f);

typedef struct {
    gn_trial *items; /* ordered by id */
    int64_t n;
} gn_trial_list;
void gn_trial_list_free(gn_trial_list *l);

typedef struct gn_store gn_store;

/* Open flags. */
#define GN_STORE_CREATE 1u /* create the store if it does not exist */
#define GN_STORE_FAST 2u   /* SQLite: synchronous=NORMAL (durable against process crashes, not power loss) */

/* Open (flags: GN_STORE_*).  Without GN_STORE_CREATE a missing store is an error. */
int gn_store_open(const char *where, unsigned flags, gn_store **out, gn_error *err);
void gn_store_close(gn_store *s);
const char *gn_store_where(const gn_store *s);

int gn_store_put_meta(gn_store *s, const char *key, const char *value, gn_error *err);
int gn_store_get_meta(gn_store *s, const char *key, char **value, gn_error *err);
/* Write key = value only if the key is absent (atomically: of many processes racing,
 * exactly one writes), then read it back: *stored (malloc'd) is the value every process
 * will see.  0: this call wrote it; 1: it was there already; -1: error. */
int gn_store_put_meta_once(gn_store *s, const char *key, const char *value, char **stored, gn_error *err);

/* Insert t as a new 'running' trial (t->status is ignored); created_at and started_at
 * default to now.  Sets t->id, t->status and the timestamps.  Requires t->encoding;
 * stores t->level and t->parent (see "Fidelity levels") and t->naswot (NaN: unknown;
 * see "Zero-cost score"). */
int gn_store_insert_trial(gn_store *s, gn_trial *t, gn_error *err);
/* Finish a running trial: status = t->status (done, failed or pruned) with t's val_acc,
 * naswot, train_s, error (NaN/NULL stored as unknown) and finished_at (default now);
 * t's tier, config, latency_ms, latency_spread_ms, params, macs and worker replace the
 * stored ones only when given (tier >= 0, non-NULL, not NaN, >= 0).  A trial that is
 * not running (already finished, or no such id) is an error: a trial is finished
 * exactly once.  The whole update is one transaction. */
int gn_store_finish_trial(gn_store *s, int64_t id, const gn_trial *t, gn_error *err);
int gn_store_list_trials(gn_store *s, const gn_trial_filter *f, gn_trial_list *out, gn_error *err);
int gn_store_count_trials(gn_store *s, const gn_trial_filter *f, int64_t *n, gn_error *err);
int gn_store_get_trial(gn_store *s, int64_t id, gn_trial *out, gn_error *err);

/* ---- the work queue (see "PostgreSQL and the work queue" above) ---- */

#define GN_JOB_MEASURE 1u /* kind "measure" */
#define GN_JOB_TRAIN 2u   /* kind "train" */
/* Returned (with err set) by heartbeat, complete and release when the token is no longer
 * the trial's current lease (expired, reaped, re-claimed, or the job finished). */
#define GN_STORE_LEASE_LOST 1
#define GN_LEASE_TOKEN_LEN 32 /* hex digits of a 128-bit token */

typedef struct {
    int64_t trial_id;
    char token[GN_LEASE_TOKEN_LEN + 1];
    int attempt;       /* this lease's attempt number (1, 2, ...) */
    double expires_at; /* server clock, Unix seconds */
} gn_lease;

typedef struct {
    const char *worker;       /* the claiming worker's id (required) */
    const char *device_class; /* its device class; NULL: it takes no measure jobs */
    unsigned kinds;           /* GN_JOB_MEASURE | GN_JOB_TRAIN */
    double lease_s;           /* lease length in seconds (> 0) */
} gn_claim_req;

/* Enqueue t as a new 'queued' job: t->kind "measure" (needs t->device_class) or
 * "train", t->max_attempts >= 1, t->encoding, t->level and t->parent as for insert.
 * Sets t->id, status, created_at (default now), attempts 0; started/finished unknown. */
int gn_store_enqueue(gn_store *s, gn_trial *t, gn_error *err);
/* Reap expired leases, then take the oldest claimable job for rq.  0: claimed (job
 * filled as stored after the claim, lease set); 1: nothing claimable (job cleared);
 * -1: error. */
int gn_store_claim(gn_store *s, const gn_claim_req *rq, gn_trial *job, gn_lease *lease, gn_error *err);
/* Extend a lease to server now + lease_s.  0 (lease->expires_at updated),
 * GN_STORE_LEASE_LOST, or -1. */
int gn_store_heartbeat(gn_store *s, gn_lease *lease, double lease_s, gn_error *err);
/* Commit a leased job's result and end its lease, in one transaction, only while the
 * lease is current.  result: as for gn_store_finish_trial; a latency_ms needs a device
 * fingerprint (result->device).  0, GN_STORE_LEASE_LOST (nothing changed), or -1.
 * Stages: result->status GN_TRIAL_QUEUED with result->kind "train" (or "measure")
 * commits the result's fields and puts the job back in the queue as that kind, with
 * attempts 0 and no start/finish time: a search's proposal is measured on the target
 * device class and then, if inside its tier, trained by any worker, as one trial row.
 * Otherwise result->kind must be NULL. */
int gn_store_complete(gn_store *s, const gn_lease *lease, const gn_trial *result, gn_error *err);
/* Give the job back to the queue without counting the attempt.  0, LEASE_LOST or -1. */
int gn_store_release(gn_store *s, const gn_lease *lease, gn_error *err);
/* End now every lease held by `worker` (a process that is known dead: a restarted
 * worker or search with a fixed id); the next claim or reap re-queues them as expired
 * (the attempt counts).  *n (may be NULL): leases ended. */
int gn_store_expire_leases(gn_store *s, const char *worker, int64_t *n, gn_error *err);
/* Reap expired leases only (what every claim does first).  Counts may be NULL. */
int gn_store_reap(gn_store *s, int64_t *requeued, int64_t *failed, gn_error *err);

typedef struct {
    char *id, *host;
    int64_t pid;
    char *device_class;          /* or NULL */
    double started_at, last_seen; /* server clock */
} gn_worker;
typedef struct {
    gn_worker *items; /* ordered by id */
    int64_t n;
} gn_worker_list;
void gn_worker_list_free(gn_worker_list *l);

/* Register (or re-register: started_at reset) a worker row; w->id and w->host required.
 * started_at and last_seen are set to the server's now. */
int gn_store_register_worker(gn_store *s, const gn_worker *w, gn_error *err);
/* last_seen = server now.  0, 1 (no such worker: register again), -1. */
int gn_store_worker_beat(gn_store *s, const char *worker_id, gn_error *err);
/* Workers seen within the last window_s seconds (server clock). */
int gn_store_list_workers(gn_store *s, double window_s, gn_worker_list *out, gn_error *err);

#endif
