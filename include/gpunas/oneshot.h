/*
 * gpunas/oneshot.h — an architecture distribution of independent categoricals and the
 * gradient estimators of UNAS (Vahdat et al., CVPR 2020; code NVlabs/unas) for
 * E_q[f(d)], where f may be non-differentiable (a measured latency).
 *
 * Notation
 *   M categoricals (M <= GN_ONESHOT_MAX_M); categorical m has K_m choices
 *   (1 <= K_m <= GN_ONESHOT_MAX_K).  All per-choice vectors — logits theta, q, log q,
 *   u, z, zeta, every gradient — are one flat array of n = sum_m K_m doubles,
 *   categorical m at [off_m, off_m + K_m) (gn_oneshot_offset).  An architecture is
 *   d = (d_1..d_M), d_m in [0, K_m).  Below, formulas are per categorical and the
 *   index m is dropped: K choices, logits theta_1..theta_K.
 *
 * The distribution
 *   p = softmax(theta); with softening eps >= 0 (UNAS --gsm_soften_eps; 0.08 in its
 *   ProxylessNAS runs) the distribution sampled from and scored is
 *       q = (p + eps) / (1 + K eps)           (a mix of p with the uniform),
 *       l = log q                             (for eps = 0: theta - logsumexp(theta)).
 *   log q(d) = sum_m l_{m,d_m}.  Every sample, log-prob and gradient uses q, and every
 *   gradient is with respect to theta, chained through the softening.  With s = 1 + K eps,
 *       dq_j/dtheta_i = p_j (delta_ij - p_i) / s,
 *   so a gradient g_l with respect to l becomes (src/oneshot: gn__oneshot_vjp_logq)
 *       g_theta_i = (p_i / s) (w_i - sum_j p_j w_j),   w_j = g_l_j / q_j;
 *   for eps = 0 (p = q) that is g_theta_i = g_l_i - p_i sum_j g_l_j.  Hence
 *       d log q(d)/d theta_i = p_i (delta_{i,d} - p_d) / (s q_d)   (= onehot(d) - q, eps = 0).
 *   Entropy H = -sum_m sum_i q_i l_i (nats); its gradient has g_l_i = -q_i (l_i + 1).
 *
 * Sampling (gn_oneshot_draw; UNAS gsm_utils.py:gumbel_softmax_sample_rebar)
 *   u_i ~ U(0, 1), clamped to [1e-3, 1 - 1e-3] as in UNAS;
 *       z_i = l_i - log(-log u_i)             (Gumbel perturbation of the log-probs),
 *       d = argmax_i z_i                      (exact; ties to the lower index),
 *       zeta = softmax(z / tau)               (Gumbel-softmax relaxation, tau > 0).
 *   By the Gumbel-max trick P(d = k) = q_k, and d and zeta come from the same u.
 *   UNAS keeps tau = 0.4 fixed.  The clamp bounds the Gumbel noise to [-1.93, 6.91], so
 *   the law of d is q only up to the clamp: off by about 1e-5 for q = (0.6, 0.3, 0.1),
 *   7e-5 for (0.9, 0.08, 0.02) (numerical integration), and a choice with
 *   q_j < e^{-8.84} max_i q_i = 1.45e-4 max_i q_i is never drawn at all.  The
 *   estimators inherit this (UNAS's) bias; it matters only for very peaked q.
 *
 *   The REBAR conditional sample zeta~ ~ r(zeta | d) (Tucker et al. 2017, REBAR) is
 *   computed from the SAME u, through v (k = d):
 *       log v_k = log(u_k) / q_k,     log v_i = log u_i - q_i log v_k  (i != k),
 *       z~_k = -log(-log v_k),        z~_i = -log(-log v_i / q_i - log v_k),
 *       zeta~ = softmax(z~ / tau).
 *   (u, k) -> (v, k) is a bijection under which v is uniform and independent of k, so
 *   z~(theta; v, k) with (v, k) held fixed is a valid reparameterisation of z given
 *   d = k.  Its value equals z (algebra: -log v_i/q_i - log v_k = -log u_i/q_i), so
 *   zeta~ = zeta numerically; only the Jacobians differ.  With c = -log v_k > 0 and
 *   a_i = -log v_i > 0 held fixed, z~_i = -log(a_i e^{-l_i} + c) depends on l_i alone:
 *       dz~_k/dl = 0,     dz~_i/dl_i = a_i e^{-l_i} / (a_i e^{-l_i} + c) = 1 - c e^{z~_i},
 *   which lies in [0, 1) and stays finite when q_i underflows.  Compare dz_i/dl_j = delta_ij.
 *
 * Estimators — each returns a gradient with respect to theta for ONE sample; the
 * caller averages.  UNAS's per-example mode (each example of a batch has its own d) is
 * exactly that average over the batch: each unbiased per-sample estimate below has
 * expectation grad E_q[f], so the batch mean does too.  All of them are checked against
 * the exact gradient (enumeration of a 9-architecture space) in
 * tests/test_oneshot_estimators.c.
 *   REINFORCE (score function):   g = (f(d) - b) * d log q(d)/d theta,
 *       unbiased for any b that does not depend on this sample (gn_oneshot_baseline:
 *       an EMA of earlier f values, read before it is updated).
 *   Relaxed ("default" in UNAS; SNAS/GDAS-like pathwise Gumbel-softmax):
 *       g = J^T g_zeta,  g_zeta = d f~/d zeta at zeta (the caller's backprop through the
 *       mixed ops), J = d zeta/d theta through zeta = softmax(z/tau), z = l(theta) + G
 *       with u fixed.  This is the gradient of E[f~(zeta)], NOT of E_q[f(d)]: biased for
 *       the discrete objective, by design.
 *   Unified (UNAS "rebar": REBAR with eta = 1, the relaxed network as control variate):
 *       g = [f(d) - f~(zeta~)] d log q(d)/d theta + d f~(zeta)/d theta - d f~(zeta~)/d theta.
 *       Unbiased: zeta~ given d follows r(. | d) with v ~ U independent of theta, so
 *       (d, zeta~) has the joint law of (d, zeta) and E[f~(zeta~)] = E[f~(zeta)] for all
 *       theta; differentiating the left side as a score-function term plus a pathwise
 *       term gives E[d f~(zeta~)/d theta] = E[d f~(zeta)/d theta] - E[f~(zeta~) d log q(d)],
 *       and the control-variate terms cancel in expectation, leaving E[f(d) d log q(d)].
 *       Since zeta~ = zeta numerically, one relaxed forward/backward gives f~ and one
 *       g_zeta, used at both points: d f~(zeta)/dtheta = J^T g_zeta and
 *       d f~(zeta~)/dtheta = J~^T g_zeta, J~ = d zeta~/d theta through z~(theta; v, d).
 *   RELAX / latency form (UNAS's latency term): the same formula with f~ replaced by a
 *   fixed control variate c(zeta), e.g. a linear latency surrogate c = w.zeta + b
 *   (gn_oneshot_grad_relax_linear).  Unbiased for every c; a c close to f lowers the
 *   variance, a poor one only costs variance.
 *
 * Baseline (gn_oneshot_baseline): b <- m b + (1 - m) x, where x is the newest value (a
 * batch mean of f) and m in [0, 1) is the weight kept on the OLD average; b starts at 0.
 * NOTE: UNAS's ExpMovingAvgrageMeter puts 0.9 on the newest value (avg = 0.1 avg +
 * 0.9 new); that is m = 0.1 here.
 *
 * Errors: functions that can fail return 0 / -1 and fill gn_error with one line
 * (K or M out of range, eps < 0, tau <= 0, non-finite logits or f values, a choice
 * out of range, a sample drawn from another distribution or an earlier theta).
 * Nothing prints; no global state; the RNG is the caller's (gpunas/rng.h).
 */
#ifndef GPUNAS_ONESHOT_H
#define GPUNAS_ONESHOT_H

#include <stdint.h>

#include "gpunas/error.h"
#include "gpunas/rng.h"

#define GN_ONESHOT_MAX_K 16
#define GN_ONESHOT_MAX_M 256
#define GN_ONESHOT_U_CLAMP 1e-3 /* u is clamped to [clamp, 1 - clamp] as in UNAS */

/* ------------------------------------------------------------------ distribution */
typedef struct gn_oneshot_dist gn_oneshot_dist;

/* M categoricals with K[m] choices each, softening eps >= 0; theta starts at 0
 * (uniform q, as UNAS initialises it). */
int gn_oneshot_dist_create(int M, const int *K, double eps, gn_oneshot_dist **out, gn_error *err);
void gn_oneshot_dist_free(gn_oneshot_dist *q); /* NULL is fine */

int gn_oneshot_m(const gn_oneshot_dist *q);
int gn_oneshot_n(const gn_oneshot_dist *q);            /* sum K_m: the length of every vector */
int gn_oneshot_k(const gn_oneshot_dist *q, int m);
int gn_oneshot_offset(const gn_oneshot_dist *q, int m); /* first index of categorical m */
double gn_oneshot_eps(const gn_oneshot_dist *q);

/* Copy n logits in (all finite) and recompute p, q, log q.  Samples drawn before are
 * stale afterwards (the estimators refuse them). */
int gn_oneshot_set_theta(gn_oneshot_dist *q, const double *theta, gn_error *err);
const double *gn_oneshot_theta(const gn_oneshot_dist *q);    /* n */
const double *gn_oneshot_probs(const gn_oneshot_dist *q);    /* q (softened), n */
const double *gn_oneshot_logprobs(const gn_oneshot_dist *q); /* l = log q, n */

/* log q(d) for d[0..M). */
int gn_oneshot_log_prob(const gn_oneshot_dist *q, const int *d, double *out, gn_error *err);
/* grad[0..n) = d log q(d) / d theta. */
int gn_oneshot_grad_log_prob(const gn_oneshot_dist *q, const int *d, double *grad, gn_error *err);
/* Entropy of q (sum over the categoricals, nats) and, if grad != NULL, its gradient. */
double gn_oneshot_entropy(const gn_oneshot_dist *q, double *grad);

/* ------------------------------------------------------------------ samples */
/* One joint draw; arrays owned by the sample, filled by gn_oneshot_draw*, read-only
 * for the caller. */
typedef struct {
    int M, n;
    double tau;
    int *d;         /* [M] the discrete architecture, d[m] = argmax of z in categorical m */
    double *u;      /* [n] the clamped uniforms */
    double *z;      /* [n] l + Gumbel(u) */
    double *zeta;   /* [n] softmax(z / tau) per categorical */
    double *log_v;  /* [n] REBAR's v (log): log v_k at k = d[m], log v_i elsewhere */
    double *zt;     /* [n] the conditional sample z~ given d (value = z up to rounding) */
    const gn_oneshot_dist *dist; /* drawn from, at generation `gen` of its theta */
    uint64_t gen;
} gn_oneshot_sample;

int gn_oneshot_sample_create(const gn_oneshot_dist *q, gn_oneshot_sample **out, gn_error *err);
void gn_oneshot_sample_free(gn_oneshot_sample *s); /* NULL is fine */

/* Draw u from rng (gn_rng_uniform), then as gn_oneshot_draw_u. */
int gn_oneshot_draw(const gn_oneshot_dist *q, double tau, gn_rng *rng, gn_oneshot_sample *s, gn_error *err);
/* The sample for given uniforms u[0..n) (each in [0, 1]; clamped as above). */
int gn_oneshot_draw_u(const gn_oneshot_dist *q, double tau, const double *u, gn_oneshot_sample *s,
                      gn_error *err);
/* The REBAR reparameterisation z~(theta; v, d) at q's current theta: zt[0..n) from a
 * fixed d and log v (each log v < 0).  gn_oneshot_draw_u computes s->zt the same way;
 * exposed so that z~ can be re-evaluated at another theta with (v, d) held fixed
 * (finite differences of the Jacobian), or drawn with a fresh v ~ U(0,1)^n. */
int gn_oneshot_cond_eval(const gn_oneshot_dist *q, const int *d, const double *log_v, double *zt,
                         gn_error *err);

/* ------------------------------------------------------------------ pathwise Jacobians */
/* g_theta = (d zeta / d theta)^T g_zeta through z = l(theta) + G(u), u fixed. */
int gn_oneshot_vjp_relaxed(const gn_oneshot_dist *q, const gn_oneshot_sample *s, const double *g_zeta,
                           double *g_theta, gn_error *err);
/* g_theta = (d zeta~ / d theta)^T g_zeta through z~(theta; v, d), (v, d) fixed. */
int gn_oneshot_vjp_cond(const gn_oneshot_dist *q, const gn_oneshot_sample *s, const double *g_zeta,
                        double *g_theta, gn_error *err);

/* ------------------------------------------------------------------ estimators */
/* Each writes grad[0..n) (overwritten) for one sample; see the design note. */
/* (f_d - baseline) * d log q(d)/d theta */
int gn_oneshot_grad_reinforce(const gn_oneshot_dist *q, const gn_oneshot_sample *s, double f_d,
                              double baseline, double *grad, gn_error *err);
/* J^T g_zeta, g_zeta = d f~/d zeta at s->zeta (biased for E_q f). */
int gn_oneshot_grad_relaxed(const gn_oneshot_dist *q, const gn_oneshot_sample *s, const double *g_zeta,
                            double *grad, gn_error *err);
/* UNAS's unified estimator: f_d = f(d), ft = f~(zeta) (= f~(zeta~)), g_zeta = d f~/d zeta
 * at zeta.  With a control variate c in place of f~, the RELAX/latency form. */
int gn_oneshot_grad_unified(const gn_oneshot_dist *q, const gn_oneshot_sample *s, double f_d, double ft,
                            const double *g_zeta, double *grad, gn_error *err);
/* The RELAX form with the linear control variate c(zeta) = sum_i w_i zeta_i + b0. */
int gn_oneshot_grad_relax_linear(const gn_oneshot_dist *q, const gn_oneshot_sample *s, double f_d,
                                 const double *w, double b0, double *grad, gn_error *err);

/* ------------------------------------------------------------------ EMA baseline */
typedef struct {
    double value;    /* b: 0 until the first update */
    double momentum; /* m: weight on the old average, in [0, 1) */
    int64_t updates;
} gn_oneshot_baseline;

int gn_oneshot_baseline_init(gn_oneshot_baseline *b, double momentum, gn_error *err);
/* b <- m b + (1 - m) x  (x finite; a non-finite x is refused and b is unchanged). */
int gn_oneshot_baseline_update(gn_oneshot_baseline *b, double x, gn_error *err);

#endif
