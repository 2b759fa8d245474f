/*
 * gpunas/supernet_latency.h — UNAS's latency term on the supernet (gpunas/supernet.h)
 * from a calibrated device profile (gpunas/latprofile.h): the expected predicted
 * latency L(zeta) of relaxed architecture weights zeta and its gradient dL/dzeta, for
 * the c * relu(E[latency] - target) part of the architecture loss.
 *
 * What it computes
 *   The profile predicts a network's latency as  b + sum_t a_t S_t,  S_t the sum of
 *   the table times of its layers of type t.  On the supernet every layer position j
 *   of a searched stage is active with P_j = P(layers > j) and then is candidate c
 *   with weight w_c = prod_f zeta_f[c_f], exactly as the supernet mixes them, so
 *       L(zeta) = b + sum_{fixed layers i} a_{t(i)} T_i
 *               + sum_{stages} sum_{positions j} P_j(zeta) sum_c w_c(zeta) a_{t(j,c)} T_{j,c}
 *   with T the table time (or the profile's fallback time) of the layer.  The fixed
 *   layers are the head, the tail and any layer of no searched stage.  Every stage's
 *   term is a product of one linear function per categorical of that stage (layers,
 *   kernel, expansion, se), and different stages are sums: L is MULTILINEAR in the
 *   categoricals.  Hence
 *     - for a one-hot zeta of d, L = gn_lat_predict(gn_supernet_decode(d)) exactly
 *       (up to rounding in the order of the sums);
 *     - for zeta = q, independent distributions (every row summing to 1),
 *       L(q) = E_{d ~ q}[predict(decode(d))] exactly: the expectation of a product of
 *       functions of independent variables is the product of their expectations.
 *   Under Gumbel-softmax samples L is the latency of the relaxed network in the same
 *   sense as the supernet's relaxed loss.  zeta entries are independent variables (no
 *   simplex projection; gpunas/oneshot.h carries the softmax): a factor f of
 *   candidate c gets a_t T_{j,c} P_j prod_{f' != f} zeta_f'[c_f'] summed over j, and
 *   layers choice l gets sum_{j < count(l)} sum_c w_c a_t T_{j,c} (the product rule,
 *   no division by zeta).  L is a polynomial, so any finite zeta is evaluated (a
 *   finite-difference stencil may leave the simplex).
 *
 * Keys: one table time per (position, candidate)
 *   A layer's key (gn_lat_key) reads only the layer itself (type, input shape, output
 *   channels, kernel, stride, padding, hidden width, groups, activation, SE width,
 *   residual flag, classes) and the family.  Its input shape is the previous layer's
 *   output, and in the supernet that does not depend on any other choice: the filters
 *   are fixed, every candidate of a position has the same output shape (the supernet
 *   needs it to mix them; same padding where the released padding would break it,
 *   which gn_supernet_decode applies too), and only shape-keeping positions can be
 *   skipped.  So the time of candidate c at position j is that of the layer at that
 *   position in the member gn_supernet_decode gives for "this stage at its largest
 *   count with candidate c".  gn_supernet_lat_create CHECKS the claim instead of
 *   trusting it: each candidate's keys are built in two contexts — every other
 *   choice at its first value (largest layer counts), and every other choice at its
 *   last value (smallest layer counts) — and so are the fixed layers'; any difference
 *   is refused with an error naming the stage, position and both keys.  The
 *   exhaustive check (every member of a small space) is in the test.
 *
 * Use with gpunas/oneshot.h (not exercised by this file's test)
 *   L of a sampled zeta and g_zeta = dL/dzeta have the form of the supernet's f~ and
 *   g_zeta: gn_oneshot_grad_relaxed(g_zeta) is the pathwise (biased) term, and
 *   gn_oneshot_grad_unified(f_d, ft = L(zeta), g_zeta) is the RELAX/latency form with L
 *   as the control variate and f_d a latency of the sampled d (measured, or
 *   predict(decode(d)) = L(onehot(d))).  Since L(q) is the exact expected predicted
 *   latency, the distribution's own probabilities give E_q[predict] and, through the
 *   softmax Jacobian, its exact gradient without sampling.
 *
 * Cost: create decodes 2 members per candidate and looks up every key once; eval is
 *   O(sum over stages of positions x candidates) multiply-adds, no allocation.
 *
 * Fallback: keys missing from the table get the profile's fallback time, as in
 *   gn_lat_predict; gn_supernet_lat_fallbacks counts the candidate layers (a
 *   candidate at a position is one layer) and fixed layers that used it.
 *
 * Errors: 0 / -1 with a one-line gn_error.  The object copies what it needs: neither
 * the supernet nor the profile has to outlive it.
 */
#ifndef GPUNAS_SUPERNET_LATENCY_H
#define GPUNAS_SUPERNET_LATENCY_H

#include "gpunas/error.h"
#include "gpunas/latprofile.h"
#include "gpunas/supernet.h"

typedef struct gn_supernet_lat gn_supernet_lat;

/* Precompute every candidate's scaled table time; p must be calibrated. */
int gn_supernet_lat_create(const gn_supernet *sn, const gn_lat_profile *p, gn_supernet_lat **out, gn_error *err);
void gn_supernet_lat_free(gn_supernet_lat *sl); /* NULL is fine */

/* L(zeta) in ms; zeta: one row of n = gn_supernet_n(sn) finite doubles (the flat
 * layout of gpunas/supernet.h).  g_zeta (nullable, n doubles) is overwritten with
 * dL/dzeta. */
int gn_supernet_lat_eval(const gn_supernet_lat *sl, const double *zeta, int n, double *ms, double *g_zeta,
                         gn_error *err);

/* Candidate layers (positions x candidates) plus fixed layers that were timed, and
 * how many of them came from the profile's fallback model. */
int gn_supernet_lat_layers(const gn_supernet_lat *sl);
int gn_supernet_lat_fallbacks(const gn_supernet_lat *sl);

/* create + eval + free in one call (for a single evaluation). */
int gn_supernet_latency(const gn_supernet *sn, const gn_lat_profile *p, const double *zeta, int n, double *ms,
                        double *g_zeta, gn_error *err);

#endif
