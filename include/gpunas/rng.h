/*
 * gpunas/rng.h — deterministic random numbers (xoshiro256** seeded by splitmix64).
 * The same seed gives the same stream on every machine; no global state.
 */
#ifndef GPUNAS_RNG_H
#define GPUNAS_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} gn_rng;

void gn_rng_seed(gn_rng *r, uint64_t seed);
uint64_t gn_rng_u64(gn_rng *r);
double gn_rng_uniform(gn_rng *r);           /* [0, 1) with 53 random bits */
double gn_rng_normal(gn_rng *r);            /* standard normal (Box-Muller) */
uint64_t gn_rng_below(gn_rng *r, uint64_t n); /* uniform in [0, n), n >= 1, unbiased */

#endif
