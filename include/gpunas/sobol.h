/*
 * gpunas/sobol.h — scrambled Sobol low-discrepancy sequences in [0,1)^d.
 *
 * Used for sampling search spaces (src/space) and for the candidate sets that
 * Bayesian optimisation scores (src/search).  Direction numbers: Joe & Kuo
 * (new-joe-kuo-6.21201), embedded for the first GN_SOBOL_MAX_DIM dimensions.
 * seed 0: the plain (unscrambled) sequence, whose first point is 0; seed != 0: a
 * scrambled sequence (see sobol.c for the scramble), a different one per seed and the
 * same on every machine.
 *
 * Points come in Gray-code order (Antonov-Saleev), as Joe & Kuo's reference code and
 * scipy.stats.qmc.Sobol produce them; the unscrambled points equal scipy's
 * Sobol(d, scramble=False) exactly.  Values carry 52 bits, so the sequence has 2^52
 * points before it starts again from its first point.  For balance properties use
 * the first 2^k points (or skip to a multiple of 2^k).
 */
#ifndef GPUNAS_SOBOL_H
#define GPUNAS_SOBOL_H

#include <stdint.h>

#include "gpunas/error.h"

#define GN_SOBOL_MAX_DIM 256

typedef struct gn_sobol gn_sobol;

int gn_sobol_create(int dim, uint64_t seed, gn_sobol **out, gn_error *err);
/* Next point: dim values in [0, 1). */
void gn_sobol_next(gn_sobol *s, double *u);
/* Skip n points. */
void gn_sobol_skip(gn_sobol *s, uint64_t n);
void gn_sobol_free(gn_sobol *s);

/* Dimension, and the index of the point the next gn_sobol_next returns (0 at start;
 * gn_sobol_skip(fresh, gn_sobol_index(s)) reproduces s's position). */
int gn_sobol_dim(const gn_sobol *s);
uint64_t gn_sobol_index(const gn_sobol *s);

#endif
