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
 *       Generalization gap (gen_gap = lambda > 0, UNAS training_obj): CE(d) and CE~(zeta)
       above become, per example pair i of the training and validation batches (same
       index, same d / zeta), the mean of CE_train_i + lambda |CE_val_i - CE_train_i|:
       discrete forwards of d on both batches; relaxed forwards at zeta on both, each
       with its own BN batch statistics, and g_zeta the sum of one backward per batch
       with per-sample weights (1 - lambda s_i)/N (train) and lambda s_i/N (val),
       s_i = sign(CE_val_i - CE_train_i).  The training batch is forwarded once more for
       its backward, with the BN running statistics put back, so that they end as after
       one forward of each batch.  The report's val_loss_* stay the validation CE.
       Then one Adam step on theta with the sum of the two gradients:
 *           g += wd theta;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 *           theta -= lr (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)   (torch.optim.Adam).
 *   (c) weight step on the TRAINING batch: relaxed forward/backward at the same zeta
 *       (detached: no g_zeta), one gn_optim_step with weight_lr (no gradient clip; the
       search run below sets its grad_clip through an internal hook).
 *   The report gives the losses, L(onehot d), L(zeta), the expected latency under q
 *   (L(q), exact: see gpunas/supernet_latency.h) and H(q) after the update.
 *
 * Not in the step (the search run below has them): the init (weights-only) epochs, LR
 * schedules (the caller passes the rates in the config and may change them between
 * steps through gn_unas_config_mut), checkpoints.  Not at all: per-example samples.
 *
 * Errors: 0 / -1 with a one-line gn_error (tau <= 0, unknown estimator, gen_gap < 0 or
 * not finite, a measure callback without a latency term, train and
 * validation batches of different sizes or shapes, a non-finite loss or gradient).
 * A step that fails may have changed theta or the weights only if it failed after (b).
 * The supernet and the latency object must outlive the state; one thread at a time.
 */
#ifndef GPUNAS_UNAS_H
#define GPUNAS_UNAS_H

#include <stdbool.h>
#include <stdint.h>

#include "gpunas/data.h"
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
    /* UNAS's generalization-gap objective (--gen_error_alpha, lambda 0.5): with
     * gen_gap = lambda > 0 the architecture step minimises, per example pair i of the
     * two batches (same index), CE_train_i + lambda |CE_val_i - CE_train_i| under the
     * same d / zeta, instead of the mean validation CE.  0: off. */
    double gen_gap;
    /* The latency of the sampled path d in f_lat (REINFORCE's reward, the unified
     * estimator's f_lat).  NULL: the profile's L(onehot d).  Else this callback, e.g. a
     * batch-1 measurement of gn_supernet_decode(d) (cached by the caller); the control
     * variate and the relaxed path keep the profile's L(zeta).  Needs lat (the latency
     * term); not called by the gumbel estimator (no f_lat).  The report's lat_d is its
     * value.  0 / -1 (err); a non-finite value is an error. */
    int (*measure)(void *ctx, const int *d, double *ms, gn_error *err);
    void *measure_ctx;
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

/* ======================================================================
 * The search run (unas_run.c): UNAS's train_search.py loop around gn_unas_step, with
 * schedules, the weights-only warm-up, a history file and checkpoint / resume.
 *
 *   init_epochs   weights only (UNAS train_init): each training batch gets one relaxed
 *                 step at a Gumbel sample of the fixed uniform q (theta untouched).
 *   epochs        search: one gn_unas_step per training batch; the validation batch
 *                 comes from the validation loader, restarted when exhausted.
 *   Rates: cosine over the search epochs, stepped at the start of each epoch like
 *   UNAS's schedulers: weight_lr from step.weight_lr to weight_lr_min, arch_lr from
 *   step.arch_lr to arch_lr_min (init epochs use step.weight_lr).
 *   The latency warm-up (step.warmup_steps) counts search steps.
 *
 *   aug.resolution 0 (the defaults): the supernet's resolution and the training data's
 *   mean / std, with aug.augment as set.
 *   Seeds: the weights get gn_supernet_init(sn, seed) on a fresh run (a resume loads
 *   them); the two loaders and the sample rng get seeds derived from seed.
 *
 *   dir (NULL: nothing written; a fresh run into a dir that holds a checkpoint is
 *   refused, a resume needs one): history.jsonl gets one line per log_every steps and
 *   per epoch end (epoch, step, phase, mean losses since the last line, H(q), L(q),
 *   c_t, the argmax architecture's encoding and predicted latency, seconds);
 *   checkpoint.safetensors holds everything a resume needs (supernet weights and BN
 *   statistics, the weight optimizer's state, theta and its Adam moments, the step
 *   counts, the baseline, the rng, the position in the epoch) and the run's settings
 *   as metadata: a resume with other settings is refused naming the first difference.
 *   It is written every checkpoint_every steps (0: at epoch ends only) and when a stop
 *   is asked, through a temporary file and rename, and history.jsonl is cut back to the
 *   checkpoint's step on resume, so a kill -9 anywhere loses at most the steps since
 *   the last checkpoint and a resumed run continues exactly (same theta, same weights,
 *   bit for bit, as a run that was never stopped).  The checkpoint's layout is in
 *   src/oneshot/unas_run.c.  The settings compared are those of this struct and of
 *   step that change the result (not dir, log_every, checkpoint_every, max_steps; the
 *   latency profile by L(uniform q), the data by a hash of the views' indices and
 *   labels, the measure callback only by being set or not).
 * ====================================================================== */

typedef struct {
    gn_unas_config step;   /* the step's settings; weight_lr and arch_lr are the schedules' peaks */
    int init_epochs;       /* >= 0 (UNAS: 15 on DARTS, 0-20 on ProxylessNAS) */
    int epochs;            /* >= 1 */
    int batch;             /* training and validation batch (drop_last) */
    double weight_lr_min;  /* cosine floor (UNAS 1e-4) */
    double arch_lr_min;    /* cosine floor (UNAS 3e-4) */
    double grad_clip;      /* weights: global-norm clip, 0 none (UNAS 5) */
    const gn_dataset_view *train, *val; /* borrowed, must outlive the run */
    gn_augment aug;        /* training-batch augmentation (validation: none) */
    uint64_t seed;         /* weight init, loader order, samples */
    const char *dir;       /* history and checkpoint; NULL: none */
    int log_every;         /* steps between history lines (0: epoch ends only) */
    int checkpoint_every;  /* steps between checkpoints (0: epoch ends only) */
    int64_t max_steps;     /* stop (checkpointed) after this many steps of this call, 0: no limit (tests) */
} gn_unas_run_config;

/* UNAS's defaults around gn_unas_defaults: init 0, epochs 1, batch 32, floors 1e-4 and
 * 3e-4, clip 5, no augmentation, seed 1, log every 50 steps, checkpoints at epoch ends. */
void gn_unas_run_defaults(gn_unas_run_config *c);

typedef struct {
    int epoch;             /* 1-based over init + search epochs */
    int epochs;            /* init_epochs + epochs */
    bool init;             /* a weights-only epoch */
    bool epoch_end;        /* the line at an epoch's end */
    int64_t step, steps;   /* steps done (all phases) and the total */
    double train_loss;     /* mean relaxed training loss since the last report */
    double val_loss;       /* mean validation loss since the last report (NaN in init) */
    double entropy;        /* H(q), nats */
    double lat_expected;   /* L(q) (NaN without a latency term) */
    double lat_argmax;     /* predicted latency of the argmax architecture (NaN without) */
    double lat_coeff;      /* c_t */
    double weight_lr, arch_lr;
    double seconds;        /* since the run started (this call and earlier ones) */
    const int *argmax_x;   /* the argmax architecture's space encoding */
} gn_unas_progress;

typedef struct {
    void (*progress)(void *user, const gn_unas_progress *p); /* each history line; may be NULL */
    int (*should_stop)(void *user); /* polled between steps; true: checkpoint and return 1 */
    void *user;
} gn_unas_run_callbacks;

/* Run the whole search on sn (resume: continue from c->dir's checkpoint, which must
 * exist).  *out: the final state (gn_unas_derive gives the result), freed by the
 * caller.  0 finished, 1 stopped (should_stop or max_steps; checkpointed), -1 error. */
int gn_unas_run(gn_supernet *sn, const gn_unas_run_config *c, const gn_unas_run_callbacks *cb, bool resume,
                gn_unas **out, gn_error *err);

#endif
