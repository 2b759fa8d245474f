/* nas_internal.h — shared by the search-loop files (src/nas only). */
#ifndef GPUNAS_NAS_INTERNAL_H
#define GPUNAS_NAS_INTERNAL_H

#include "gpunas/latprofile.h"
#include "gpunas/nas.h"
#include "gpunas/search.h"

#define NAS_TIERING "tiering" /* optimizer name of phase-1 rows */
#define NAS_EST_F 4           /* latency-estimate features: 1, log MACs, log params, depth */

typedef struct {
    const gn_nas_config *c;
    const gn_nas_callbacks *cb;
    int d;                      /* encoding length */
    gn_backend *be;             /* latency measurements */
    char host[64];
    /* latency of every network seen, by canonical encoding text (nas_eval.c) */
    struct gn__strmap *lat_cache;
    /* phase-1 data for the latency estimate */
    double *p1_x, *p1_y;        /* p1_n rows of NAS_EST_F features; log latency */
    int p1_n, p1_cap;
    double coef[NAS_EST_F];
    int have_model;
    gn_lat_profile profile;
    int have_profile;
    /* tiers and their optimizers */
    int n_tiers;
    double edges[GN_NAS_MAX_TIERS];
    gn_optimizer *opt[GN_NAS_MAX_TIERS];
    int trained[GN_NAS_MAX_TIERS], misses[GN_NAS_MAX_TIERS], repeats[GN_NAS_MAX_TIERS];
    int exhausted[GN_NAS_MAX_TIERS];
    int accept_tier;            /* tier the accept() filter is asked about */
    int64_t next_seq;
    double t0;
    int unstable;               /* latency measurements that had to be repeated */
    /* latency conditions (nas_lat.c) */
    int lat_threads;            /* resolved thread count of the measurements */
    gn_arch *ref_arch;          /* the reference network (NULL: not paired) */
    gn_net *ref_net;
    double ref_base_ms;         /* the reference's median when the search began */
    double ref_moved_lo, ref_moved_hi; /* range of reference / baseline - 1 this run */
    int ref_n;                  /* paired measurements this run */
    char lat_note[512];         /* how the threads were chosen (empty: not now) */
    /* networks already trained (canonical key -> accuracy, trial id): a proposal that
     * decodes to one of them reuses its result instead of training it again */
    struct gn__strmap *acc_cache;
    /* networks whose evaluation failed (canonical key -> trial id) */
    struct gn__strmap *fail_cache;
    /* jobs (nas_job.c) */
    char search_class[256];     /* the device class the search measures on */
    char my_class[256];         /* this machine's */
    char fingerprint[512];      /* this machine's measuring device, for results */
    int lat_ready;              /* gn__nas_lat_setup done */
    int tiers_loaded;           /* edges read from the store (workers) */
    /* the coordinator's own worker (nas_queue.c) */
    char worker_id[160];        /* HOST:search */
    unsigned local_kinds;       /* job kinds it takes (0: none) */
    double last_reap;
    /* successive halving (nas_ladder.c; NULL: one fidelity) */
    struct gn__ladder *ladder;
    /* the proxy score (nas_score.c); fixed before phase 2 */
    gn_nas_scorer scorer;
} nas_state;

/* A row that will not change any more: done, failed or pruned. */
static inline int gn__nas_is_final(const gn_trial *t)
{
    return t->status == GN_TRIAL_DONE || t->status == GN_TRIAL_FAILED || t->status == GN_TRIAL_PRUNED;
}

/* One progress line to cb->event (nothing without one); the search loop's and the
 * worker's messages. */
void gn__nas_event(const gn_nas_callbacks *cb, gn_nas_event_kind k, const gn_trial *t, int done, int total,
                   const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* nas_queue.c — the coordinator's side of the queue */
/* Set up the in-process worker: its id, the kinds it may take, its registry row, and
 * the expiry of leases a killed predecessor held. */
int gn__nas_local_worker_init(nas_state *s, gn_error *err);
/* While waiting for results: run one job here (local worker) or sleep poll_s; reap
 * expired leases now and then.  0, or -1 (err). */
int gn__nas_pump(nas_state *s, gn_error *err);
/* Claim for a worker: a worker that can measure takes measure jobs first (only the
 * search's device class can run them, and they gate the trainings; trains flow to
 * the others).  As gn_store_claim. */
int gn__nas_claim(gn_store *st, const gn_claim_req *rq, gn_trial *job, gn_lease *lease, gn_error *err);
/* Evaluate a 'running' row here (both stages) and finish it; *res: the stored row. */
int gn__nas_eval_inprocess(nas_state *s, const gn_trial *row, gn_trial *res, gn_error *err);

/* nas_job.c */
/* A job being run: its lease (NULL: an in-process 'running' row), heartbeats, and
 * whether it was interrupted. */
typedef struct {
    gn_store *store;
    gn_lease *lease;
    double lease_s, last_beat;
    int (*should_stop)(void *user);
    void *user;
    int lost, stopped;          /* set when the job was interrupted */
} nas_job_ctx;
/* This machine's device class and fingerprint into s (backend from s->c). */
int gn__nas_device_init(nas_state *s, gn_error *err);
/* The latency conditions (lazy: first measurement). */
int gn__nas_lat_ready(nas_state *s, gn_error *err);
/* Tier edges from the store's meta (workers; the coordinator fixes them itself). */
int gn__nas_load_tiers(nas_state *s, gn_error *err);
/* Run one job: kind "measure", "train", or NULL (an in-process row: measure, and train
 * if inside job->tier).  0: *res holds the result to commit (done, failed, pruned, or
 * queued as "train": the next stage); 1: interrupted (jc->lost or jc->stopped; nothing
 * to commit); -1: error of this process or the store (err). */
int gn__nas_run_job(nas_state *s, const gn_trial *job, nas_job_ctx *jc, gn_trial *res, gn_error *err);
/* Is x's canonical network in tier `tier` with the margin (latency ms)? */
int gn__nas_inside(const nas_state *s, double ms, int tier);

/* nas_eval.c */
/* Latency of x (canonical text key): cached, predicted from the profile, or measured.
 * info (may be NULL): a measurement's conditions as JSON text (malloc'd), NULL when
 * the value came from the cache or the profile. */
int gn__nas_latency(nas_state *s, const int *x, double *ms, double *spread, char **info, gn_error *err);
void gn__nas_cache_put(nas_state *s, const char *key, double ms, double spread);
int gn__nas_cache_get(const nas_state *s, const char *key, double *ms, double *spread);
/* Canonical encoding text of x (malloc'd). */
char *gn__nas_key(const nas_state *s, const int *x);
/* Proxy-train the decoded x at fidelity level `level` (0: the proxy); *acc = validation top-1 in [0,1].  cb (may be NULL):
 * training callbacks (heartbeats, stop). */
int gn__nas_proxy_train(nas_state *s, const gn_arch *a, int level, const void *train_cb, double *acc,
                        double *train_s, gn_error *err);
/* Latency estimate for accept(): features of a decoded arch, fit, apply. */
void gn__nas_features(const gn_arch *a, double *f);
int gn__nas_fit_estimate(nas_state *s, gn_error *err);
int gn__nas_estimate(nas_state *s, const int *x, double *ms);
int gn__nas_p1_add(nas_state *s, const int *x, double ms);

/* nas_lat.c */
/* Resolve the measuring threads (stored choice on resume, else GN_THREADS_BEST
 * measured now) and the reference baseline; records both in the store's meta. */
int gn__nas_lat_setup(nas_state *s, gn_store *st, gn_error *err);
void gn__nas_lat_free(nas_state *s);
/* One candidate measurement under those conditions (repeated when unstable or when
 * the reference moved); *info: the conditions as JSON (malloc'd). */
int gn__nas_lat_measure(nas_state *s, gn_net *net, double *ms, double *spread, char **info, gn_error *err);

/* nas_score.c — the proxy score (gpunas/nas.h, "Proxy score") */
/* The NASWOT score of a (the mean of 3 initialisations and batches) on c's training split. */
int gn__nas_naswot(const gn_nas_config *c, const gn_arch *a, double *score, gn_error *err);
/* The coordinator's scorer: with "acc+naswot", the normalisation from the store's meta,
 * or computed now from the tiering samples and stored. */
int gn__nas_score_setup(nas_state *s, gn_error *err);

/* nas_ladder.c — successive halving (gpunas/nas.h, "Multi-fidelity") */
/* Set up the ladder when the search has fidelity levels (reads the promotion rows
 * already stored); nothing otherwise. */
int gn__ladder_open(nas_state *s, gn_error *err);
void gn__ladder_close(nas_state *s);
/* A result at `level` of tier `tier` (the level-0 trial `parent`): recorded, and the
 * promotions it earns made (enqueued, or adopted from the store). */
int gn__ladder_result(nas_state *s, int tier, int level, int64_t parent, double acc, gn_error *err);
/* Look at the promotions in flight; take finished ones, in the order made. */
int gn__ladder_refresh(nas_state *s, gn_error *err);
/* Promotions made and not yet taken. */
int gn__ladder_pending(const nas_state *s);
/* When the proposals are spent: refresh, and complete the ladder.  0 settled (nothing
 * in flight, every tier at its top), 1 still waiting, -1 error. */
int gn__ladder_settle(nas_state *s, gn_error *err);
/* The epochs and images of a level (0: the proxy). */
void gn__nas_level_budget(const gn_nas_config *c, int level, int *epochs, int *subset);

/* nas_worker.c — a search opened from its store (workers, gn_nas_submit) */
typedef struct {
    gn_nas_config c;            /* the search's configuration (settings record) */
    void *settings_json;        /* keeps the strings c points into */
    gn_space *space;
    gn_dataset *train;
} worker_search;
/* Wait for the search's settings (w->poll_s, until w->idle_exit_s or a stop: 1), then
 * load its space and data.  0, 1 (gave up waiting), -1 (err). */
int gn__nas_load_search(const gn_nas_worker_config *w, const gn_nas_callbacks *cb, worker_search *ws,
                        gn_error *err);
void gn__nas_search_free(worker_search *ws);
/* The caches, optimizers, profile, latency conditions and backend of a state. */
void gn__nas_state_free(nas_state *s);

/* nas_settings.c */
/* The settings record (JSON object text, malloc'd). */
char *gn__nas_settings_json(const gn_nas_config *c, gn_error *err);
/* Store it (new search) or compare with the stored one (resume). */
int gn__nas_settings_check(gn_store *st, const gn_nas_config *c, bool resume, gn_error *err);
/* The stored settings record, parsed: *obj a json_t object, NULL when there is none or
 * it is not a JSON object (json_decref it).  0, or -1 (the store failed). */
int gn__nas_settings_load(gn_store *st, void **obj, gn_error *err);
/* What the stored search's proposals depend on: the proposals in flight it was made
 * with (1 when not recorded), whether its optimizers saw canonical encodings (0 when
 * not recorded), its score (GN_NAS_SCORE_ACC when none is recorded) and NASWOT weight
 * (untouched when none is recorded), its optimizers' unguided start (opt_init; -1 when
 * not recorded: the optimizers' defaults), and its fidelity spec (*fidelity malloc'd;
 * NULL: none recorded); all untouched (fidelity NULL) when there is no search yet.  -1
 * when the store fails or its score or opt_init is not one gpunas knows. */
int gn__nas_stored_schedule(gn_store *st, int *parallel, int *canonical, int *score, double *naswot_weight,
                            int *opt_init, char **fidelity, gn_error *err);
/* A worker's view of a search: the settings record parsed into c (defaults first;
 * space and data are not loaded: *space_src and *dataset are pointers into the
 * returned JSON object, freed with json_decref(*keep)). */
int gn__nas_settings_parse(const char *text, gn_nas_config *c, const char **space_src, const char **dataset,
                           void **keep, gn_error *err);

#endif
