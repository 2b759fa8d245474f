/*
 * gpunas/encoding.h — what a search optimizer knows about a search space.
 *
 * An architecture is a fixed-length vector of integers x[i] in [0, card[i]).  The
 * search space (gpunas/space.h) maps such vectors to GPUNet configs; optimizers
 * (gpunas/search.h) only ever see these vectors and the scores observed for them.
 * Optimizers that work in a continuous box use u[i] = (x[i] + 0.5) / card[i] and map
 * back with x[i] = floor(u[i] * card[i]).
 */
#ifndef GPUNAS_ENCODING_H
#define GPUNAS_ENCODING_H

#define GN_ENC_MAX_DIMS 128

typedef struct {
    int ndims;
    int card[GN_ENC_MAX_DIMS]; /* choices per dimension, >= 1 */
} gn_enc_desc;

#endif
