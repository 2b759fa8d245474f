/*
 * gpunas/search.h — black-box optimizers over integer encodings, and Pareto helpers.
 *
 * Design
 *   An optimizer sees only the encoding (gpunas/encoding.h: ndims, card[i]; a point is
 *   x[i] in [0, card[i])) and the objective values the caller reports for points.  It
 *   never sees architectures, tensors or latencies other than as numbers.  One interface
 *   (a vtable behind gn_optimizer) serves four kinds:
 *
 *     "random"    scrambled Sobol points over the box (x = floor(u * card)), or uniform
 *                 draws (options.random_sobol = 0).
 *     "evolution" regularized (aging) evolution, Real et al. 2019: until the population
 *                 holds P feasible members, uniform random points; then sample S distinct
 *                 members, take the one with the highest obj[0] (ties: the youngest) and
 *                 mutate ONE dimension (among those with card > 1) to a different value.
 *                 Every feasible observation joins the population; past P the oldest
 *                 member dies.  Infeasible observations are discarded (only remembered so
 *                 they are not proposed again).
 *     "lamcts"    LA-MCTS + Bayesian optimisation (docs/gpunet.md §4.3; facebookresearch
 *                 LaMCTS).  See src/search/opt_lamcts.c for the full description.  Works in
 *                 u = (x + 0.5) / card in [0,1]^d.  Per proposal: tree rebuilt from all
 *                 samples (split a leaf with > leaf_size samples by 2-means on [u, f],
 *                 good/bad relabelled by mean f, RBF SVC (libsvm, gamma = 1/d, C = 1) on u;
 *                 split only if the SVM predicts both labels on the bag); UCT descent
 *                 mean f + 2 Cp sqrt(2 sqrt(n_parent) / n); GP (constant * Matern-5/2, noise
 *                 alpha) fitted by a log-marginal-likelihood grid search; candidates =
 *                 scrambled Sobol points around the best samples of the chosen leaf
 *                 (random subsets of 1..16 dimensions changed) and over the whole box,
 *                 rounded to the grid, kept if every SVM on the path classifies them
 *                 into the chosen side; the max Expected Improvement one is
 *                 proposed.  The first ninits proposals are a Latin hypercube.
 *     "nsga2"     NSGA-II (Deb et al. 2002) on all n_objectives: fast non-dominated sort
 *                 with constraint-domination, crowding distance, binary tournament,
 *                 uniform crossover and per-dimension mutation on the integers.  The first
 *                 P observations form the first parents; then offspring generations of P
 *                 stream out one proposal at a time; when P new observations have arrived
 *                 the (mu + lambda) environmental selection forms the next parents.
 *
 *   Objectives are MAXIMISED: obj[0] = accuracy; for multi-objective use, obj[1] =
 *   -latency (etc.).  "random", "evolution" and "lamcts" optimise obj[0] only (they accept
 *   and store the others); "nsga2" uses all of them.
 *
 *   Calls.  propose() returns the next point to evaluate; observe() reports a result for a
 *   point — normally one that was proposed, but any point of the box may be observed
 *   (e.g. to seed a search with known architectures).  Several proposals may be in flight
 *   before their observations arrive (asynchronous workers), and observations may arrive
 *   in any order: a batch is simply k propose() calls (gn_opt_propose_batch).
 *
 *   Determinism.  The proposal sequence is a pure function of (options, the sequence of
 *   propose/observe calls and their arguments): all randomness comes from one gn_rng
 *   seeded by options.seed; hash sets are only used for membership; sorts break ties by
 *   index; nothing depends on time, addresses or threads.  (The GP uses LAPACK's Cholesky
 *   from OpenBLAS, run single-threaded so the core count does not matter; bit-identical
 *   proposals across machines still need the same BLAS build and CPU kernels.)  The
 *   search loop resumes a killed search by replaying its stored trials: it calls
 *   propose(), checks the proposal equals the stored encoding, then observe()s the
 *   stored result.
 *
 *   Duplicates.  Every optimizer keeps a hash set of the points observed or in flight
 *   (proposed, not yet observed) and never proposes one of them while it can avoid it:
 *   a kind's own candidate generator is retried up to options.max_retries times, then a
 *   uniform random unseen point is drawn (for spaces of at most 2^20 points by enumerating
 *   the unseen ones, so nothing unseen is ever missed).  Only when every point of the
 *   space has been seen does propose() fail ("space exhausted").
 *
 *   Feasibility.  The search loop trains only candidates inside a latency tier; a point
 *   outside is observed with feasible = false (objectives may then be NULL and are
 *   ignored).  evolution: discarded.  lamcts: kept as a bad sample — its f is the lowest
 *   feasible f observed so far (recomputed at every tree rebuild), so the tree learns to
 *   split the infeasible region off and the GP scores it low.  nsga2: constraint-
 *   domination (every feasible point dominates every infeasible one; infeasible points
 *   are mutually non-dominated and all get the worst rank).
 *   Optionally options.accept (a cheap predicate, e.g. a latency predictor) is asked about
 *   candidates before they are proposed; a kind proposes the first candidate (in its own
 *   order of preference) that is unseen and accepted.  If none is found within the retry
 *   budget, the best unseen candidate is proposed anyway (the loop will then observe it as
 *   infeasible).  accept must itself be deterministic.
 */
#ifndef GPUNAS_SEARCH_H
#define GPUNAS_SEARCH_H

#include <stdbool.h>
#include <stdint.h>

#include "gpunas/encoding.h"
#include "gpunas/error.h"

#define GN_OPT_MAX_OBJECTIVES 8

typedef struct gn_optimizer gn_optimizer;

typedef struct {
    uint64_t seed;
    int n_objectives;  /* 1..GN_OPT_MAX_OBJECTIVES (default 1) */
    int max_retries;   /* candidate retries before the random-unseen fallback (default 200) */
    /* Optional deterministic pre-filter: returns non-zero if x may be proposed. */
    int (*accept)(void *ctx, const int *x);
    void *accept_ctx;
    /* Optional: y = the canonical representative of x (y may be x; idempotent; must map
     * into the box).  Points that map to the same representative are one point to the
     * optimizer: every proposal and every observation is canonical, so no proposal is
     * ever another's repeat (e.g. the search space's inert dimensions, choices of a stage
     * with 0 layers). */
    void (*canon)(void *ctx, const int *x, int *y);
    void *canon_ctx;

    /* random */
    int random_sobol;  /* 1: scrambled Sobol (default); 0: uniform draws */

    /* evolution */
    int evo_population; /* P (default 20) */
    int evo_sample;     /* S (default 5), 1 <= S <= P */

    /* lamcts */
    int mcts_ninits;        /* initial Latin-hypercube points (default 20), >= 2 */
    int mcts_leaf_size;     /* split a leaf holding more than this (default 20), >= 2 */
    double mcts_cp;         /* Cp as a fraction of (max f - min f) of the samples (default 0.1) */
    int mcts_candidates;    /* raw Sobol candidates per proposal (default 4096) */
    int mcts_centers;       /* best leaf samples used as box centres (default 8) */
    int mcts_gp_max;        /* most GP training points; the best are kept (default 250) */
    double mcts_kmeans_f_weight; /* spread of f relative to all of u in 2-means (default 1) */
    double gp_alpha;        /* GP noise variance on standardised f (default 0.01) */
    double ei_xi;           /* EI exploration offset in standardised units (default 0.001) */

    /* nsga2 */
    int nsga_population;    /* P (default 20), >= 2 */
    double nsga_crossover;  /* probability of uniform crossover (default 0.9) */
    double nsga_mutation;   /* per-dimension mutation probability; <= 0: 1/(free dims) */
} gn_opt_options;

/* Fill the defaults above (seed 0, n_objectives 1). */
void gn_opt_options_default(gn_opt_options *o);

/* kind: "random", "evolution", "lamcts", "nsga2".  Options are checked (one-line error
 * naming the field).  The encoding is copied. */
int gn_opt_create(const char *kind, const gn_enc_desc *enc, const gn_opt_options *opt, gn_optimizer **out,
                  gn_error *err);
/* Next point (ndims ints).  Fails only on a full space or an internal numeric failure. */
int gn_opt_propose(gn_optimizer *opt, int *x, gn_error *err);
/* k proposals into X (k * ndims ints), the same as k calls of gn_opt_propose. */
int gn_opt_propose_batch(gn_optimizer *opt, int k, int *X, gn_error *err);
/* Report a result.  objectives: n_objectives finite values (maximised); may be NULL when
 * !feasible.  x must lie in the box. */
int gn_opt_observe(gn_optimizer *opt, const int *x, const double *objectives, bool feasible, gn_error *err);
void gn_opt_free(gn_optimizer *opt);
const char *gn_opt_name(const gn_optimizer *opt);
/* Observations so far (feasible or not), and the best feasible obj[0] (returns 0 and
 * sets *best, or -1 when nothing feasible has been observed). */
int gn_opt_count(const gn_optimizer *opt);
int gn_opt_best(const gn_optimizer *opt, double *best, int *x_best);

/* ------------------------------------------------------------- Pareto helpers
 * obj: n rows of m objectives (maximised), row-major.  feasible: NULL (all feasible) or n
 * flags; infeasible rows are never on the front.  Non-finite values of feasible rows are
 * an error. */

/* Non-domination rank of every row (0 = the Pareto front), by fast non-dominated sort
 * with constraint-domination (infeasible rows all get the rank after the last feasible). */
int gn_pareto_ranks(const double *obj, int n, int m, const unsigned char *feasible, int *rank, gn_error *err);
/* Indices (ascending) of the non-dominated feasible rows; *nfront of them.  Equal rows do
 * not dominate each other, so all copies are kept. */
int gn_pareto_front(const double *obj, int n, int m, const unsigned char *feasible, int *idx, int *nfront,
                    gn_error *err);
/* Hypervolume (area) dominated by the feasible rows of a 2-objective set and dominating
 * the reference point ref (maximisation: only the part above ref counts). */
int gn_hypervolume2(const double *obj, int n, const unsigned char *feasible, const double ref[2], double *hv,
                    gn_error *err);

#endif
