/*
 * store_internal.h — the trial store's backend vtable and instance layout, private to
 * src/store (gpunas/store.h hands out opaque gn_store handles and checks every
 * argument once before dispatching; a backend sees only valid requests).
 */
#ifndef GPUNAS_STORE_INTERNAL_H
#define GPUNAS_STORE_INTERNAL_H

#include "gpunas/store.h"

/* The backend interface.  Implementations embed `gn_store` as their first member. */
typedef struct gn_store_ops {
    const char *name; /* "sqlite", "postgresql" */
    void (*close)(gn_store *s);
    int (*put_meta)(gn_store *s, const char *key, const char *value, gn_error *err);
    /* insert only if the key is absent: 0 inserted, 1 present already (unchanged), -1 */
    int (*put_meta_new)(gn_store *s, const char *key, const char *value, gn_error *err);
    /* 0 found (*value malloc'd), 1 absent (*value NULL), -1 error */
    int (*get_meta)(gn_store *s, const char *key, char **value, gn_error *err);
    int (*insert_trial)(gn_store *s, gn_trial *t, gn_error *err);
    int (*finish_trial)(gn_store *s, int64_t id, const gn_trial *t, gn_error *err);
    int (*list_trials)(gn_store *s, const gn_trial_filter *f, gn_trial_list *out, gn_error *err);
    int (*count_trials)(gn_store *s, const gn_trial_filter *f, int64_t *n, gn_error *err);
    /* 0 found, 1 no such id, -1 error */
    int (*get_trial)(gn_store *s, int64_t id, gn_trial *out, gn_error *err);
    /* the work queue; arguments checked by store.c */
    int (*enqueue)(gn_store *s, gn_trial *t, gn_error *err);
    int (*claim)(gn_store *s, const gn_claim_req *rq, const char *token, gn_trial *job, gn_lease *lease,
                 gn_error *err);
    int (*heartbeat)(gn_store *s, gn_lease *lease, double lease_s, gn_error *err);
    int (*complete)(gn_store *s, const gn_lease *lease, const gn_trial *result, gn_error *err);
    int (*release)(gn_store *s, const gn_lease *lease, gn_error *err);
    int (*reap)(gn_store *s, int64_t *requeued, int64_t *failed, gn_error *err);
    int (*expire_leases)(gn_store *s, const char *worker, int64_t *n, gn_error *err);
    int (*register_worker)(gn_store *s, const gn_worker *w, gn_error *err);
    int (*worker_beat)(gn_store *s, const char *id, gn_error *err);
    int (*list_workers)(gn_store *s, double window_s, gn_worker_list *out, gn_error *err);
} gn_store_ops;

struct gn_store {
    const gn_store_ops *ops;
    char *where; /* the location as given, for messages (owned) */
};

/* SQLite backend (store_sqlite.c), used by gn_store_open. */
int gn__store_open_sqlite(const char *path, unsigned flags, gn_store **out, gn_error *err);
/* PostgreSQL backend (store_pg.c): a libpq connection URI. */
int gn__store_open_pg(const char *uri, unsigned flags, gn_store **out, gn_error *err);

/* Shared by the backends: the error text of a lease that is no longer current, given
 * the trial's stored status ("" when there is no such trial); returns
 * GN_STORE_LEASE_LOST. */
int gn__lease_lost(gn_error *err, const char *where, const char *op, int64_t id, const char *status,
                   const char *worker);

#endif
