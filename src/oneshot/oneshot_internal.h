/* oneshot_internal.h — the distribution's layout and the shared numerical pieces of
 * src/oneshot (see gpunas/oneshot.h for the math).  Internal (src/ only). */
#ifndef GPUNAS_ONESHOT_INTERNAL_H
#define GPUNAS_ONESHOT_INTERNAL_H

#include <stdint.h>

#include "gpunas/error.h"
#include "gpunas/oneshot.h"
#include "gpunas/unas.h"

struct gn_oneshot_dist {
    int M, n;
    double eps;
    uint64_t gen;    /* bumped by every gn_oneshot_set_theta: samples remember theirs */
    int *K;          /* [M] */
    int *off;        /* [M + 1], off[M] = n */
    double *theta;   /* [n] logits */
    double *p;       /* [n] softmax(theta) per categorical (before softening) */
    double *q;       /* [n] (p + eps) / (1 + K eps) */
    double *l;       /* [n] log q */
};

/* y[0..K) = softmax(x * scale), computed stably (max subtracted). */
void gn__oneshot_softmax(const double *x, int K, double scale, double *y);
/* Backward of y = softmax(x * scale): g_x_i = scale * y_i (g_y_i - sum_j y_j g_y_j). */
void gn__oneshot_vjp_softmax(const double *y, int K, double scale, const double *g_y, double *g_x);
/* Chain a gradient g_l[0..K_m) with respect to l = log q of categorical m into
 * g_theta[0..K_m) (through the softening and the softmax; the formula is in
 * gpunas/oneshot.h).  Both point at the categorical's own entries; they may alias. */
void gn__oneshot_vjp_logq(const gn_oneshot_dist *q, int m, const double *g_l, double *g_theta);
/* 0 if d[0..M) is a valid choice vector for q, else -1 with err. */
int gn__oneshot_check_choices(const gn_oneshot_dist *q, const int *d, gn_error *err);
/* 0 if s was drawn from q at q's current theta, else -1 with err. */
int gn__oneshot_check_sample(const gn_oneshot_dist *q, const gn_oneshot_sample *s, gn_error *err);

/* ------------------------------------------------------------------ gn_unas (unas_step.c), for unas_run.c */
/* Global-norm clip of the weight gradients before every weight step (torch's
 * clip_grad_norm_: g *= clip / (|g| + 1e-6) when that is below 1); 0: none (default). */
void gn__unas_set_grad_clip(gn_unas *u, double clip);
/* A weights-only step (UNAS train_init): draw (d, zeta) from q at tau (theta untouched),
 * relaxed forward/backward on (x, y) at zeta, the clip, one weight optimizer step with
 * weight_lr.  The search step count (warm-up, Adam's t) does not change.  *loss: the
 * relaxed training loss (may be NULL). */
int gn__unas_weights_step(gn_unas *u, const gn_tensor *x, const int32_t *y, gn_rng *rng, double *loss,
                          gn_error *err);
/* The state a checkpoint saves and restores (theta: gn_unas_dist_mut). */
gn_optim *gn__unas_weight_optim(gn_unas *u);
double *gn__unas_adam_m(gn_unas *u); /* [n] */
double *gn__unas_adam_v(gn_unas *u); /* [n] */
gn_oneshot_baseline *gn__unas_baseline(gn_unas *u);
void gn__unas_set_steps(gn_unas *u, int64_t steps);

#endif
