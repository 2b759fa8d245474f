/*
 * gpunas/nas.h — the search loop: latency-first tiering, then one optimizer per tier,
 * every trial in the store, resumable after a kill.
 *
 * Design (docs/gpunet.md §4.4, reconstructed GPUNet loop)
 *   Phase 1, tiering.  `prune_samples` scrambled-Sobol members of the space are built
 *   and their batch-`lat_batch` inference latency is measured on this machine (or
 *   predicted from a device profile).  Each is stored as a trial with status 'pruned'
 *   (never trained) and optimizer "tiering".  Tiers are latency bands with the given
 *   upper edges: tier i holds (edge[i-1], edge[i]] ms (edge[-1] = 0); anything above
 *   the last edge is in no tier.  With auto tiers the edges are quantiles of the
 *   phase-1 latencies (see nas_tiers.c), fixed once and stored with the search.
 *
 *   Phase 2, optimisation.  Tier i has its own optimizer (gpunas/search.h, seeded by
 *   seed + 1000*(i+1)) whose only objective is proxy accuracy; a proposal is first
 *   measured (or its latency taken from an earlier measurement of the same network),
 *   and only if it falls in tier i is it trained (proxy budget: epochs, subset,
 *   batch) and scored by its validation accuracy on a fixed, seeded split of the
 *   training set; otherwise it is stored as 'pruned' and observed as infeasible.  A
 *   cheap latency estimate (the profile's predictor, or a least-squares model of
 *   log latency on log MACs, log params and depth fitted to phase 1) is the
 *   optimizers' accept() filter, so few proposals miss their tier.  Tiers take turns:
 *   the next trial goes to the tier with the fewest trained candidates (ties: lowest
 *   index) until `trials` candidates are trained or the time budget is spent.
 *
 *   Store.  Trials are inserted as 'running' when their evaluation starts and
 *   finished once, each write its own transaction (gpunas/store.h).  Search settings
 *   are stored as meta; a resume with different settings is refused naming the first
 *   difference (the budget — trials, time — may change).
 *
 *   Resume (after kill -9 or a normal stop).  Phase 1 continues from its stored
 *   count (the Sobol stream is skipped ahead).  Each tier's optimizer is rebuilt by
 *   replaying its stored trials in id order: propose() must return the stored
 *   encoding (else the store was made by another version: refused), then the stored
 *   result is observed.  A trial left 'running' by the kill is evaluated again and
 *   finished under its own id, so no finished trial is lost and none is repeated.
 *
 *   Nothing prints; progress goes to an event callback as one-line messages.
 *
 * Many machines: a coordinator and workers that meet only in the store (issue 14)
 *   Every evaluation is a job of the store's work queue (gpunas/store.h): the loop
 *   above is the coordinator — it proposes, enqueues, and observes finished trials —
 *   and workers (gn_nas_worker_run, `gpunas worker`; or the loop itself while it
 *   waits, `local_worker`) claim jobs under leases, run them and commit the result
 *   with the lease token.  One trial row per proposal, in stages:
 *     - a tiering sample is a "measure" job; the worker commits it 'pruned' with its
 *       latency;
 *     - a phase-2 proposal whose latency is unknown is a "measure" job for tier i; the
 *       worker measures it, and if it lies inside tier i (margin included) completes
 *       the job into its next stage, a queued "train" job (gn_store_complete with
 *       status queued), else commits it 'pruned';
 *     - a "train" job (a staged one, or a proposal whose latency is known already) is
 *       proxy-trained by any worker and committed 'done' or 'failed'.
 *   Measure jobs carry the search's device class (meta "nas.device_class": the
 *   coordinator's machine, or `device_class`); only workers of that class take them,
 *   and each latency result carries the measuring worker's fingerprint
 *   (gn_lat_device id + host + pinning).  The latency conditions (threads, the
 *   reference baseline) are fixed once for the search in the store's meta, by the
 *   first process that measures (gn_store_put_meta_once; every other adopts them).
 *   A proposal the coordinator can answer without work — its network's latency is
 *   known and it is outside the tier, or it was trained (or failed) before — is written
 *   finished at once; one whose network is being evaluated by another job waits for
 *   that job ('running' row of the coordinator's) and is then answered the same way.
 *
 *   Determinism with `parallel` proposals in flight.  Proposal k (the k-th phase-2
 *   row) is made after the optimizers have observed exactly the rows 0 .. k-parallel,
 *   in order, and no others; the tier that proposes is the one with the fewest
 *   observed trained plus unobserved proposals.  Whether a proposal may be made at
 *   all (the budget, the time, a stop) only delays it, never changes it.  So the
 *   proposals are a function of the stored results alone, whatever order the workers
 *   finished in, and --resume replays them exactly (`parallel` is a setting, recorded
 *   when not 1).  With parallel = 1 and the local worker, the loop does what it did
 *   before queues existed: propose, measure, train, observe.
 *
 *   The coordinator may be killed and resumed at any time (jobs in flight are left to
 *   the workers and picked up again); a worker may be killed at any time (its lease
 *   expires on the database server's clock and the job is re-queued, `max_attempts`
 *   expiries fail it with the reason).  The in-process worker's id is fixed per host,
 *   so a resumed search first expires the leases of its killed predecessor instead of
 *   waiting for them.  When the budget is spent the coordinator records meta
 *   "nas.done" = 1: idle workers then exit.
 *
 * Multi-fidelity: successive halving inside each tier (issue 13; nas_ladder.c)
 *   With `fidelity` "sh:E0xN0,E1xN1,.../ETA" every proposal is trained at level 0 (E0
 *   epochs on N0 images: the proxy) and the optimizers observe that score, as without
 *   a ladder — so every optimizer works unchanged and the proposals, hence the replay,
 *   do not depend on promotions.  Promotion is asynchronous successive halving (ASHA,
 *   Li et al. 2020) per tier and level: once a level holds n results, its top
 *   floor(n / ETA) (accuracy, ties to the older trial) are promoted to the next level, each
 *   exactly once.  A promotion is a job row of its own (gn_trial.level L, parent = the
 *   level-0 trial; gpunas/store.h "Fidelity levels"): any worker trains the network
 *   again from scratch at level L's budget (not continued from level L-1's weights:
 *   nothing but the score is kept between levels) and commits its validation accuracy.
 *   Results of a level are taken in the order their promotions were made, each waiting
 *   for the earlier ones, so the ladder too is a function of the stored results and
 *   resumes exactly: a promotion already in the store (same parent and level) is
 *   adopted, not made again.  When the proposals are spent, the ladder is completed:
 *   a tier whose next level is empty promotes its best, level by level, so every tier
 *   that trained anything has one candidate at the top level.  A tier's winner is the
 *   candidate at the highest level it reached with the best accuracy there
 *   (gn_nas_summarize, `gpunas hub build`).  The budget (`trials`) counts level-0
 *   candidates; with budgets growing by ETA per level each level costs about as much as
 *   level 0, so a ladder of L levels costs about L times the search without it.
 *
 * Unguided start, sized to the budget (issue 13; nas_run.c)
 *   Each tier's optimizer begins without a model: LA-MCTS+BO with a Latin hypercube of
 *   `mcts_ninits` points, aging evolution and NSGA-II with a random population of
 *   that size (gpunas/search.h).  The optimizers' own default, 20, is more than the
 *   whole per-tier budget of the main job (30 trials over 3 tiers = 10 each): the
 *   search-vs-random study (bench/RESULTS.md) found that under it evolution never left
 *   its random population and LA-MCTS made 0-3 model-guided proposals per tier, so the
 *   "search" was random sampling.  `opt_init` is that size for every tier's optimizer.
 *   0 (the default) derives it when the search is made: two fifths of the per-tier
 *   budget, ceil(trials / tiers), within 4..20 (gn_nas_auto_opt_init), so that the
 *   larger part of a tier's proposals is steered by what was observed.  It is a
 *   setting (recorded; a resume keeps the stored size even when given more trials,
 *   since the replay depends on it); a store made before it resumes with the
 *   optimizers' defaults.  Tournament size of evolution: max(2, min(5, size / 2)).
 *
 * Proxy score (issue 13; nas_score.c)
 *   What the optimizers observe and the tier winner is chosen by.  `score` "acc": the
 *   proxy's validation accuracy.  "acc+naswot" (the default): that accuracy plus
 *   `naswot_weight` points per standard deviation of the candidate's NASWOT zero-cost
 *   score, mean and deviation frozen once per search from its tiering samples (store
 *   meta "nas.naswot_norm"), so a score never changes after it is observed; the worker
 *   that proxy-trains a candidate computes its NASWOT and commits it with the accuracy.
 *   With the default proxy (1 epoch on 15,000 images) this ranks 27 fully trained
 *   networks at Kendall tau 0.60, against 0.35 for the 1-epoch 5,000-image proxy alone
 *   (bench/RESULTS.md).  Every level of a ladder ranks by the same score.
 */
#ifndef GPUNAS_NAS_H
#define GPUNAS_NAS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gpunas/data.h"
#include "gpunas/error.h"
#include "gpunas/space.h"
#include "gpunas/store.h"

#define GN_NAS_MAX_TIERS 16
#define GN_NAS_MAX_LEVELS 8


typedef struct {
    /* ---- what to search (borrowed) */
    const gn_space *space;
    const char *space_source;      /* for the settings record, e.g. "builtin:fmnist" */
    const gn_dataset *train_set;   /* proxy training data; the validation split comes from it */
    const char *dataset_name;      /* for the settings record */
    gn_store *store;
    /* ---- tiers */
    int n_tiers;                   /* > 0: tier_ms holds the upper edges (ascending) */
    double tier_ms[GN_NAS_MAX_TIERS];
    int auto_tiers;                /* n_tiers == 0: this many tiers from phase-1 quantiles */
    /* ---- latency */
    int lat_batch;                 /* 1 */
    int threads;                   /* intra-op threads for proxy training; <= 0 all */
    const char *backend;           /* compute backend of training and measuring:
                                      "dnnl" (default, NULL) or "ref" */
    int lat_threads;               /* threads of the latency measurements: > 0, or
                                      GN_THREADS_BEST (default): chosen once, on the
                                      reference network, when the search starts, and
                                      kept in the store for --resume */
    int lat_pin;                   /* pin the measuring threads, one CPU each (1) */
    int lat_reference;             /* pair every measurement with the reference network;
                                      the latency is the ratio x its baseline (1) */
    double lat_min_ms;             /* each measurement's timed phase lasts at least this
                                      long (500; reference and candidate together) */
    double tier_margin;            /* a candidate within this fraction of a tier edge
                                      is not trained as a member (0.05): a member must
                                      stay in its tier when measured again */
    int lat_runs;                  /* timed runs per measurement (30) */
    double lat_warmup_ms;          /* warm-up per measurement (50) */
    const char *profile_path;      /* device profile: predict instead of measuring (NULL) */
    int prune_samples;             /* phase-1 samples (96) */
    /* ---- optimisation */
    const char *optimizer;         /* "lamcts" (default), "evolution", "random", "nsga2" */
    uint64_t seed;
    int trials;                    /* trained candidates in all (phase 2 budget) */
    double time_budget_s;          /* stop starting trials after this (0: none) */
    int opt_init;                  /* unguided proposals per tier before the optimizer's
                                      model steers ("Unguided start"); 0: derived from the
                                      budget when the search is made; a setting */
    int max_misses;                /* consecutive out-of-tier proposals before a tier is
                                      declared exhausted (40) */
    /* ---- proxy training */
    int proxy_epochs;              /* 1 */
    int proxy_subset;              /* training images per candidate (5000) */
    int proxy_batch;               /* 64 */
    double proxy_lr;               /* 0.05 */
    int score;                     /* GN_NAS_SCORE_NASWOT (default) or GN_NAS_SCORE_ACC ("Proxy
                                      score"); a setting, recorded when not "acc" (a store made
                                      before it resumes with "acc") */
    double naswot_weight;          /* accuracy points per NASWOT standard deviation (1) */
    int score_named;               /* the caller chose score and weight (0): a resume keeps
                                      the store's score unless this is set, and then refuses
                                      a store that scores otherwise */
    double val_fraction;           /* validation split of the training set (0.05) */
    uint64_t split_seed;           /* 42 */
    int canonical;                 /* optimizers see canonical encodings only (1): dimensions
                                      that do not change the network (those of a stage with
                                      0 layers) are zeroed before a point is proposed or
                                      observed, so no proposal repeats a network; a setting
                                      (a store made before it resumes without) */
    /* ---- successive halving (see "Multi-fidelity" above; nas_ladder.c) */
    int fid_levels;                /* 0: one fidelity (proxy_epochs x proxy_subset); >= 2: the
                                      levels of the ladder, level 0 being the proxy */
    int fid_epochs[GN_NAS_MAX_LEVELS], fid_subset[GN_NAS_MAX_LEVELS]; /* budget of each level
                                      (subset 0: the whole training split) */
    int fid_eta;                   /* the top 1/eta of a level is promoted (3) */
    /* ---- many machines (see above) */
    int parallel;                  /* proposals in flight (1); a setting when not 1 */
    int local_worker;              /* run jobs in this process while waiting (1) */
    double lease_s;                /* lease of a claimed job, seconds (60) */
    int max_attempts;              /* lease expiries before a job fails (3) */
    const char *device_class;      /* the class latency is measured on (NULL: this
                                      machine's; fixed in the store when the search starts) */
    double poll_s;                 /* how often to look at the store while waiting (0.2) */
} gn_nas_config;

void gn_nas_defaults(gn_nas_config *c);

/* ---- the proxy score ("Proxy score" above) */
enum { GN_NAS_SCORE_ACC = 0, GN_NAS_SCORE_NASWOT = 1 };
/* "acc" / "acc+naswot" */
const char *gn_nas_score_name(int kind);
int gn_nas_score_parse(const char *text, int *kind); /* 0, or -1 if unknown */
typedef struct {
    int kind;                      /* GN_NAS_SCORE_* */
    double weight;                 /* points per NASWOT sd */
    double mean, sd;               /* NASWOT normalisation (sd 0: not fixed yet) */
    int n_norm;                    /* samples it was fixed from */
} gn_nas_scorer;
/* The stored search's scorer (settings record and meta "nas.naswot_norm").  A search
 * without a fixed normalisation (stopped during tiering) scores by accuracy. */
int gn_nas_scorer_load(gn_store *store, gn_nas_scorer *sc, gn_error *err);
/* A trained trial's score (val_acc's scale: a fraction); searches scoring "acc" and rows
 * without a NASWOT: val_acc. */
double gn_nas_score(const gn_nas_scorer *sc, const gn_trial *t);

typedef enum {
    GN_NAS_EV_INFO = 0,   /* a message (settings, phase changes, replay) */
    GN_NAS_EV_SAMPLE,     /* a phase-1 sample measured */
    GN_NAS_EV_TIERS,      /* tiers fixed */
    GN_NAS_EV_TRIAL,      /* a phase-2 trial finished (done, failed or pruned) */
} gn_nas_event_kind;

typedef struct {
    gn_nas_event_kind kind;
    const char *message;     /* one line, no newline */
    const gn_trial *trial;   /* SAMPLE / TRIAL: the stored row */
    int done, total;         /* SAMPLE: samples; TRIAL: trained candidates / budget */
} gn_nas_event;

typedef struct {
    void *user;
    void (*event)(void *user, const gn_nas_event *e);
    /* polled between trials: non-zero stops the search cleanly (e.g. SIGINT) */
    int (*should_stop)(void *user);
} gn_nas_callbacks;

/* Parse a fidelity spec into c: "none" (one fidelity), or
 * "sh:E0xN0,E1xN1,...[/ETA]" — successive halving with level l trained for El epochs on
 * Nl images (0: all), each level costing more than the one before, 2..GN_NAS_MAX_LEVELS
 * levels, ETA >= 2 (default 3).  Level 0 becomes proxy_epochs / proxy_subset. */
int gn_nas_parse_fidelity(const char *text, gn_nas_config *c, gn_error *err);
/* The spec of c in that syntax (buf; "none" when off). */
void gn_nas_fidelity_text(const gn_nas_config *c, char *buf, size_t n);

/* The unguided start of every tier's optimizer for a new search of `trials` trained
 * candidates over `n_tiers` tiers ("Unguided start"): round(2/5 * ceil(trials /
 * n_tiers)) within 4..20. */
int gn_nas_auto_opt_init(int trials, int n_tiers);

/* Run (or, with resume, continue) the search in c->store. */
int gn_nas_run(const gn_nas_config *c, bool resume, const gn_nas_callbacks *cb, gn_error *err);

/* ------------------------------------------------------------------ workers */
typedef struct {
    gn_store *store;               /* the search's store (borrowed; the worker's own connection) */
    const char *id;                /* worker id (NULL: HOST:PID); a fixed id lets a restarted
                                      worker expire its predecessor's leases at once (so
                                      two live workers must never share one) */
    const char *device_class;      /* NULL: this machine's class */
    unsigned kinds;                /* GN_JOB_MEASURE | GN_JOB_TRAIN (0: both) */
    double lease_s;                /* 60 */
    int threads;                   /* proxy-training threads (0: the free cores) */
    const char *data_dir;          /* the search's data set here (NULL: its default location) */
    const char *space_path;        /* the search's space file here (NULL: as recorded) */
    int max_jobs;                  /* stop after this many jobs (0: no limit) */
    double idle_exit_s;            /* stop after this long with nothing to claim (0: never;
                                      a finished search — meta nas.done — always ends it) */
    double poll_s;                 /* 1 */
    double store_retry_s;          /* keep retrying a failing store this long (300) */
} gn_nas_worker_config;

void gn_nas_worker_defaults(gn_nas_worker_config *w);

typedef struct {
    int64_t jobs, measured, trained, failed, lost, released;
} gn_nas_worker_stats;

/* Claim and run jobs of the search in w->store until a stop (cb->should_stop: the job in
 * hand is finished if it is a measurement, a training is interrupted and the job given
 * back), max_jobs, idle_exit_s, or the search's end.  Progress goes to cb->event (INFO
 * lines).  0, or -1 (a store that stayed unreachable, the search's data missing...). */
int gn_nas_worker_run(const gn_nas_worker_config *w, const gn_nas_callbacks *cb, gn_nas_worker_stats *stats,
                      gn_error *err);

/* ------------------------------------------------------------------ outside results */
/* An architecture found outside the search (e.g. by UNAS, `gpunas unas --store`),
 * evaluated as the search in w->store evaluates its proposals and stored with them
 * (nas_submit.c): the search's space, data and proxy recipe (its settings record), its
 * latency conditions (the stored threads and reference, measured only on the search's
 * device class; predicted when the search uses a device profile), its tier edges.  The
 * row is a level-0 trial with optimizer `source` and seq -1: rows with seq < 0 are not
 * proposals of the search, so its optimizers never observe them and --resume skips them
 * in the replay; gn_nas_summarize, `gpunas hub build` and `gpunas trials` rank and list
 * them with the others.  It is measured; inside a tier (no guard band: the tier is what
 * its latency says) it is proxy-trained at level 0 ('done' or 'failed'), outside every
 * tier stored 'pruned' with its latency.  Idempotent: a level-0 row of the same source
 * and canonical network is returned as it is when finished, and evaluated again under
 * its own id when a kill left it 'running'.  *out (may be NULL): the stored row.
 * 0, or -1 (no search in the store, another device class, a malformed encoding...). */
int gn_nas_submit(const gn_nas_worker_config *w, const char *encoding, const char *source, const gn_nas_callbacks *cb,
                  gn_trial *out, gn_error *err);

/* ------------------------------------------------------------------ results */
typedef struct {
    int n_tiers;
    double tier_ms[GN_NAS_MAX_TIERS];
    gn_trial best[GN_NAS_MAX_TIERS]; /* best trained trial per tier (id 0: none), by the
                                        search's score; its val_acc is the accuracy */
    double best_score[GN_NAS_MAX_TIERS]; /* its score there (gn_nas_score) */
    gn_nas_scorer scorer;            /* the search's score */
    int trained[GN_NAS_MAX_TIERS];   /* trained candidates per tier */
    gn_trial *front;                 /* accuracy/latency Pareto front of trained trials, by latency */
    int n_front;
    int64_t n_done, n_failed, n_pruned, n_running;
    int64_t n_reused;                /* proposals that decoded to an already trained network */
    /* successive halving (n_levels 0: none).  best[i] is then the candidate at the highest
     * level tier i reached, best of that level; its val_acc is its accuracy there */
    int n_levels;
    char fidelity[160];              /* the spec ("none") */
    int best_level[GN_NAS_MAX_TIERS];
    int level_n[GN_NAS_MAX_TIERS][GN_NAS_MAX_LEVELS];        /* candidates with a result per level */
    int64_t level_best[GN_NAS_MAX_TIERS][GN_NAS_MAX_LEVELS]; /* the best one's level-0 trial id */
    double level_best_acc[GN_NAS_MAX_TIERS][GN_NAS_MAX_LEVELS];
    int level_epochs[GN_NAS_MAX_LEVELS], level_subset[GN_NAS_MAX_LEVELS];
} gn_nas_summary;

/* Successive halving's verdict on the trained proposals of a store: for every level-0
 * trial promoted with a result, the highest level with a result, its accuracy and its
 * score there (gn_nas_score; sorted by id; *n 0 without a ladder).  Rank candidates by
 * (level, score). */
typedef struct {
    int64_t id;
    int level;
    double acc, score;
} gn_nas_rung;
int gn_nas_read_rungs(gn_store *store, gn_nas_rung **out, int64_t *n, gn_error *err);
/* The rung of trial id in r (NULL: none, i.e. level 0). */
const gn_nas_rung *gn_nas_rung_of(const gn_nas_rung *r, int64_t n, int64_t id);

/* Read the store's settings and trials into a summary. */
int gn_nas_summarize(gn_store *store, gn_nas_summary *s, gn_error *err);
void gn_nas_summary_free(gn_nas_summary *s);
/* Write each tier's best as DIR/tier<i>-<edge>ms.json (GPUNet JSON) and DIR/summary.json.
 * Creates DIR.  Returns the number of files written, or -1. */
int gn_nas_write_winners(const gn_nas_summary *s, const char *dir, gn_error *err);

/* Tier of a latency: index, or -1 above the last edge. */
int gn_nas_tier_of(const double *edges, int n, double ms);
/* Tier of a latency with a guard band: index i when edges[i-1] (1 + margin) < ms <=
 * edges[i] (1 - margin) (tier 0: no lower band); GN_NAS_TIER_BAND inside a band
 * around an edge; -1 above the last edge. */
#define GN_NAS_TIER_BAND (-2)
int gn_nas_tier_inside(const double *edges, int n, double ms, double margin);
/* Parse "0.5,1,2" (ascending, > 0) or "auto" / "auto:N".  *n_out 0 means auto with
 * *auto_n tiers. */
int gn_nas_parse_tiers(const char *text, double *edges, int *n_out, int *auto_n, gn_error *err);
/* Auto edges from latencies (n >= 3): k tiers at quantiles (i+1) * q / k of the
 * sorted latencies, q = 0.9 (the slowest tenth is left out), rounded to 2
 * significant digits and made strictly increasing. */
int gn_nas_auto_tiers(const double *lat, int n, int k, double *edges, gn_error *err);

#endif
