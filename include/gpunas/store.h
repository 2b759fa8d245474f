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
} gn_trial_status;

const char *gn_trial_status_name(gn_trial_status st); /* "running", "done", "failed", "pruned" */
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
} gn_trial;

/* A trial with every field unknown (NaN / -1 / NULL), status running, tier -1. */
void gn_trial_init(gn_trial *t);
/* Frees the strings (not t itself) and re-initialises. */
void gn_trial_clear(gn_trial *t);
/* A deep copy (its own strings; free with gn_trial_clear).  -1: out of memory (dst
 * cleared). */
int gn_trial_copy(gn_trial *dst, const gn_trial *src);

/* Which trials list/count return: status < 0 any; tier == GN_TIER_ANY any. */
#define GN_TIER_ANY (-2)
typedef struct {
    int status;        /* gn_trial_status, or -1 for any */
    int tier;          /* a tier index, -1 (none), or GN_TIER_ANY */
    int64_t after_id;  /* only ids > after_id (0: all) */
    int64_t limit;     /* at most this many (0: no limit) */
} gn_trial_filter;
void gn_trial_filter_init(gn_trial_filter *f); /* any status, any tier, all */

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

/* Insert t as a new 'running' trial (t->status is ignored); created_at and started_at
 * default to now.  Sets t->id, t->status and the timestamps.  Requires t->encoding. */
int gn_store_insert_trial(gn_store *s, gn_trial *t, gn_error *err);
/* Finish a running trial: status = t->status (done, failed or pruned) with t's val_acc,
 * train_s, error (NaN/NULL stored as unknown) and finished_at (default now); t's tier,
 * config, latency_ms, latency_spread_ms, params, macs and worker replace the stored
 * ones only when given (tier >= 0, non-NULL, not NaN, >= 0).  A trial that is not
 * running (already finished, or no such id) is an error: a trial is finished exactly
 * once.  The whole update is one transaction. */
int gn_store_finish_trial(gn_store *s, int64_t id, const gn_trial *t, gn_error *err);
int gn_store_list_trials(gn_store *s, const gn_trial_filter *f, gn_trial_list *out, gn_error *err);
int gn_store_count_trials(gn_store *s, const gn_trial_filter *f, int64_t *n, gn_error *err);
int gn_store_get_trial(gn_store *s, int64_t id, gn_trial *out, gn_error *err);

#endif
