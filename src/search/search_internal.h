/*
 * search_internal.h — shared internals of the optimizers (src/search), also used by the
 * tests to check the numerical parts one by one.
 *
 *   gn_xset      hash set of encodings with per-point counts (observed / in flight)
 *   gn_optimizer the common state every kind shares: encoding, options, rng, history,
 *                seen-set; plus the kind's vtable and private state
 *   gn_gp        Gaussian process (constant * Matern-5/2 + alpha I), Cholesky via LAPACKE
 *   gn__kmeans2   2-means (k-means++ seeding, restarts, Lloyd)
 *   gn_svm       two-class RBF SVC trained with libsvm, predicted densely
 *   crowding     NSGA-II crowding distance
 */
#ifndef GPUNAS_SEARCH_INTERNAL_H
#define GPUNAS_SEARCH_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "gpunas/encoding.h"
#include "gpunas/error.h"
#include "gpunas/rng.h"
#include "gpunas/search.h"

/* ------------------------------------------------------------------ xset */
typedef struct {
    uint64_t hash;
    int off;      /* key offset in keys (in ints) */
    int observed; /* times observed */
    int inflight; /* proposed, not yet observed */
} gn_xset_entry;

typedef struct {
    int d;
    int *keys;  /* arena: nent * d ints */
    gn_xset_entry *ent;
    int nent, cap_ent;
    int *slot;  /* open addressing: entry index or -1 */
    int nslot;  /* power of two */
} gn_xset;

int gn__xset_init(gn_xset *s, int d);
void gn__xset_free(gn_xset *s);
/* Entry index of x, or -1. */
int gn__xset_find(const gn_xset *s, const int *x);
/* Entry index of x, inserting it (counts 0) if absent; -1 on out of memory. */
int gn__xset_add(gn_xset *s, const int *x);

/* ------------------------------------------------------------------ base */
typedef struct {
    const char *name;
    int (*init)(gn_optimizer *o, gn_error *err);
    int (*propose)(gn_optimizer *o, int *x, gn_error *err);
    /* called after history row `idx` was appended */
    int (*observe)(gn_optimizer *o, int idx, gn_error *err);
    void (*free)(gn_optimizer *o);
} gn_opt_vtable;

struct gn_optimizer {
    const gn_opt_vtable *vt;
    gn_enc_desc enc;
    gn_opt_options opt;
    int d, m;
    gn_rng rng;
    /* history of observations */
    int n, cap;
    int *X;              /* n * d */
    double *F;           /* n * m (0 where infeasible) */
    unsigned char *feas; /* n */
    int n_feasible;
    gn_xset seen;
    uint64_t space_size; /* product of cards, saturated at UINT64_MAX */
    uint64_t canon_size; /* canonical points (options.canon), counted when first needed; 0 unknown */
    void *impl;
};

extern const gn_opt_vtable gn__opt_random_vt, gn__opt_evolution_vt, gn__opt_lamcts_vt, gn__opt_nsga2_vt;

/* observed or in flight */
bool gn__opt_seen(const gn_optimizer *o, const int *x);
/* x = its canonical representative (options.canon), in place; nothing without one. */
void gn__opt_canon(const gn_optimizer *o, int *x);
/* options.accept (true when none is set) */
bool gn__opt_accepts(const gn_optimizer *o, const int *x);
/* Uniform random point (may be seen). */
void gn__opt_uniform(gn_optimizer *o, int *x);
/* A uniformly random unseen point (enumerated for spaces <= 2^20 points); -1 with
 * "space exhausted" when there is none. */
int gn__opt_random_unseen(gn_optimizer *o, int *x, gn_error *err);
/* The common end of a proposal whose own candidates all failed: up to max_retries random
 * unseen points checked with accept; else `spare` (an unseen, rejected candidate) if
 * have_spare; else the last random unseen point. */
int gn__opt_fallback(gn_optimizer *o, int *x, const int *spare, bool have_spare, gn_error *err);
/* The proposal loop the optimizers share: draw up to `limit` candidates into x
 * (draw returns 0 for a candidate, 1 when the optimizer has none left); skip seen
 * ones; return the first that options.accept admits; keep the first unseen but
 * refused one in `spare` (o->d ints); then gn__opt_fallback. */
typedef int (*gn__opt_draw_fn)(gn_optimizer *o, void *ctx, int *x);
int gn__opt_propose_loop(gn_optimizer *o, int *x, int *spare, int limit, gn__opt_draw_fn draw, void *ctx,
                        gn_error *err);
/* Index of the mutable dimension list: dims with card > 1. */
int gn__opt_free_dims(const gn_optimizer *o, int *dims);

/* ------------------------------------------------------------------ GP */
typedef struct {
    int n, d;
    double *U;     /* n * d */
    double ymean, ystd;
    double ell, c, alpha;
    double *L;     /* n * n, column-major lower Cholesky factor of c*M + alpha*I */
    double *yn;    /* (y - ymean) / ystd */
    double *w;     /* K^-1 yn */
    double lml;    /* log marginal likelihood of the standardised y at (ell, c) */
} gn_gp;

/* Matern-5/2 correlation at distance r, length scale ell (without the constant). */
double gn__matern52(double r, double ell);
/* Fit with fixed hyper-parameters. */
int gn__gp_fit_fixed(gn_gp *gp, const double *U, const double *y, int n, int d, double alpha, double ell, double c,
                    gn_error *err);
/* Fit with (ell, c) maximising the log marginal likelihood over a grid (see gp.c). */
int gn__gp_fit(gn_gp *gp, const double *U, const double *y, int n, int d, double alpha, gn_error *err);
/* Posterior mean and standard deviation (latent f, original units) at m points. */
int gn__gp_predict(const gn_gp *gp, const double *Us, int m, double *mu, double *sd, gn_error *err);
/* Largest posterior mean at the training points (original units). */
double gn__gp_best_mean(const gn_gp *gp);
/* Expected improvement of N(mu, sd^2) over best + xi. */
double gn__expected_improvement(double mu, double sd, double best, double xi);
void gn__gp_free(gn_gp *gp);

/* ------------------------------------------------------------------ k-means */
/* 2-means of the n rows of Z (n x p).  n_init k-means++ restarts, the lowest inertia
 * wins.  label[i] in {0,1}.  Returns 0 when both clusters are non-empty, 1 when the data
 * cannot be split (all rows equal), -1 on out of memory. */
int gn__kmeans2(const double *Z, int n, int p, int n_init, gn_rng *rng, int *label, double *inertia);

/* ------------------------------------------------------------------ SVM */
typedef struct {
    int d, nsv;
    double gamma, rho;
    int label_pos, label_neg; /* decision > 0 -> label_pos */
    double *sv;   /* nsv * d */
    double *coef; /* nsv */
} gn_svm;

/* C-SVC with RBF kernel exp(-gamma |a-b|^2), labels y[i] in {0,1} (both present). */
int gn__svm_fit(gn_svm *s, const double *X, const int *y, int n, int d, double gamma, double C, gn_error *err);
double gn__svm_decision(const gn_svm *s, const double *x);
int gn__svm_predict(const gn_svm *s, const double *x);
void gn__svm_free(gn_svm *s);

/* ------------------------------------------------------------------ NSGA-II */
/* Crowding distance of the k rows members[] of obj (n x m); infinite at the extremes.
 * -1 on out of memory. */
int gn__crowding(const double *obj, int m, const int *members, int k, double *dist);

#endif
