/* oneshot_internal.h — the distribution's layout and the shared numerical pieces of
 * src/oneshot (see gpunas/oneshot.h for the math).  Internal (src/ only). */
#ifndef GPUNAS_ONESHOT_INTERNAL_H
#define GPUNAS_ONESHOT_INTERNAL_H

#include <stdint.h>

#include "gpunas/error.h"
#include "gpunas/oneshot.h"

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

#endif
