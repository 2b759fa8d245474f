/*
 * gpunas/unas.h — one UNAS search step (Vahdat et al., CVPR 2020; code NVlabs/unas) as
 * a library call: the loop of train_search.py with same_alpha_minibatch, built from
 * the distribution and estimators of gpunas/oneshot.h, the supernet of
 * gpunas/supernet.h and the latency term of gpunas/supernet_latency.h.
 *
 * The state (gn_unas)
 *   A supernet (borrowed), a distribution q over its categoricals (owned; theta = 0
 *   at the start, uniform q), the weight optimizer (gn_optim over the supernet's
 *   arena), Adam on the double logits theta (below), an EMA baseline for REINFORCE,
 *   the estimator kind, tau, and an optional latency term: a gn_supernet_lat
 *   (borrowed), a target T in ms and a coefficient c with UNAS's warm-up ramp
 *       c_t = c * clip(t / warmup_steps, 0, 1)       (t = steps done before this one;
 *                                                     warmup_steps = 0: c_t = c).
 *
 * One step (gn_unas_step) — ONE architecture sample per batch (UNAS's
 * same_alpha_minibatch: every example of the batch shares d and zeta):
 *   (a) draw (d, zeta) ~ q with temperature tau (gn_oneshot_draw; u from rng).
 *   (b) architecture step on the VALIDATION batch, minimising
 *           E_q[ CE(d) + c_t relu(L(onehot d) - T) ]:
 *       reinforce: f = CE(d) + c_t relu(L(onehot d) - T) from a discrete forward at d;
 *                  g = (f - b) d log q(d)/d theta with the EMA baseline b read BEFORE
 *                  it is updated with f (unbiased).
 *       gumbel:    relaxed forward/backward at zeta gives g_zeta of CE~(zeta); the
 *                  latency adds c_t 1[L(zeta) > T] dL/dzeta (pathwise through the
 *                  hinge); g = J^T (g_zeta_ce + g_zeta_lat) (gn_oneshot_grad_relaxed;
 *                  biased for the discrete objective, by design).
 *       unified:   CE part: gn_oneshot_grad_unified(f(d), f~(zeta), g_zeta) with the
 *                  relaxed network as control variate (UNAS "rebar").  Latency part:
 *                  the RELAX form with the relaxed latency hinge as control variate,
 *                      f_lat = c_t relu(L(onehot d) - T),
 *                      c(zeta) = c_t relu(L(zeta) - T),  dc/dzeta = c_t 1[L > T] dL/dzeta,
 *                  i.e. gn_oneshot_grad_unified(f_lat, c(zeta), dc/dzeta).  Unbiased for
 *                  any a.e.-differentiable c (gpunas/oneshot.h); UNAS uses a linear
 *                  surrogate of MEASURED latency and a separate sample, here L of the
 *                  profile is exact (multilinear) and the same sample is used.
 *       Then one Adam step on theta with the sum of the two gradients:
 *           g += wd theta;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *           theta -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)   (torch.optim.Adam).
 *   (c) weight step on the TRAINING batch: relaxed forward/backward at the same zeta
 *       (detached: no g_zeta), one gn_optim_step with weight_lr (no gradient clip).
 *   The report gives the losses, L(onehot d), L(zeta), the expected latency under q
 *   (L(q), exact: see gpunas/supernet_latency.h) and H(q) after the update.
 *
 * Not here: UNAS's generalization-gap term, the init (weights-only) epochs, LR
 * schedules (the caller passes the rates in the config and may change them between
 * steps through gn_unas_config_mut), per-example samples, checkpoints.
 *
 * Errors: 0 / -1 with a one-line gn_error (tau <= 0, unknown estimator, train and
 * validation batches of different sizes or shapes, a non-finite loss or gradient).
 * A step that fails may have changed theta or the weights only if it failed after (b).
 * The supernet and the latency object must outlive the state; one thread at a time.
 */
#ifndef GPUNAS_UNAS_H
#define GPUNAS_UNAS_H

#include <stdint.h>

#include "gpunas/error.h"
#include "gpunas/oneshot.h"
#include "gpunas/optim.h"
#include "gpunas/rng.h"
#include "gpunas/supernet.h"
#include "gpunas/supernet_latency.h"
#include "gpunas/tensor.h"

typedef enum { GN_UNAS_REINFORCE = 0, GN_UNAS_GUMBEL = 1, GN_UNAS_UNIFIED = 2 } gn_unas_estimator;

const char *gn_unas_estimator_name(gn_unas_estimator e); /* "reinforce", "gumbel", "unified" */
int gn_unas_estimator_parse(const char *name, gn_unas_estimator *out); /* -1 if unknown */

typedef struct {
    gn_unas_estimator estimator;
    double tau;               /* Gumbel-softmax temperature, > 0 (UNAS 0.4) */
    double eps;               /* softening of q, >= 0 (gpunas/oneshot.h) */
    double baseline_momentum; /* EMA weight on the old value, [0, 1) (UNAS: 0.1) */
    /* Adam on theta (UNAS: lr 1e-3, wd 1e-6, betas (0.9, 0.999), eps 1e-8) */
    double arch_lr, arch_beta1, arch_beta2, arch_eps, arch_wd;
    /* weights: the optimizer and its rate (UNAS: Adam lr 3e-4, wd 3e-4) */
    gn_optim_config weight_optim;
    double weight_lr;
    /* latency term; lat == NULL: none */
    const gn_supernet_lat *lat;
    double target_ms;      /* T */
    double lat_coeff;      /* c >= 0 */
    int64_t warmup_steps;  /* ramp length, >= 0 */
} gn_unas_config;

/* UNAS's defaults (estimator unified, tau 0.4, no softening, no latency term; the
 * weight optimizer is AdamW with wd 3e-4). */
void gn_unas_defaults(gn_unas_config *c);

typedef struct {
    int64_t step;            /* steps done, this one included */
    double val_loss_d;       /* CE of path d on the validation batch (NAN for gumbel) */
    double val_loss_relaxed; /* CE~(zeta) on the validation batch (NAN for reinforce) */
    double train_loss;       /* CE~(zeta) on the training batch (the weight step) */
    double lat_coeff;        /* c_t used */
    double lat_d;            /* L(onehot d), ms (NAN without a latency term) */
    double lat_zeta;         /* L(zeta), ms (NAN without) */
    double lat_expected;     /* L(q) = E_q[predicted latency] after the update (NAN without) */
    double entropy;          /* H(q) after the update, nats */
    double baseline;         /* EMA baseline after the update (reinforce) */
    double grad_norm;        /* |g_theta| of the architecture step */
} gn_unas_report;

typedef struct gn_unas gn_unas;

/* Checks the config, builds q over sn's categoricals and the weight optimizer. */
int gn_unas_create(gn_supernet *sn, const gn_unas_config *c, gn_unas **out, gn_error *err);
void gn_unas_free(gn_unas *u); /* NULL is fine */

/* One search step as in the design note; report may be NULL.  x tensors [N,C,H,W]
 * with N labels each; both batches must have the same shape. */
int gn_unas_step(gn_unas *u, const gn_tensor *train_x, const int32_t *train_y, const gn_tensor *val_x,
                 const int32_t *val_y, gn_rng *rng, gn_unas_report *report, gn_error *err);

/* d[m] = argmax of theta in categorical m (ties to the lower index). */
void gn_unas_argmax(const gn_unas *u, int *d);
/* The space encoding of the argmax architecture (gn_supernet_derive). */
int gn_unas_derive(const gn_unas *u, int *x, gn_error *err);

const gn_oneshot_dist *gn_unas_dist(const gn_unas *u);
gn_oneshot_dist *gn_unas_dist_mut(gn_unas *u); /* e.g. to set theta */
int64_t gn_unas_steps(const gn_unas *u);
double gn_unas_lat_coeff(const gn_unas *u); /* c_t for the next step */
/* The config in use; the caller may change the rates, tau and the latency fields
 * between steps (not the estimator, eps or weight optimizer kind). */
gn_unas_config *gn_unas_config_mut(gn_unas *u);

#endif
