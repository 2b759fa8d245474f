/*
 * network_naswot.c — gn_net_naswot: the "NAS without training" score of Mellor et al.
 * (ICML 2021) of an untrained network, a zero-cost proxy for issue 13.
 *
 * For a batch of B images, every unit of every ReLU or Swish (SiLU) layer gives each
 * image a bit: is the unit's input > 0 (ReLU: the unit is active; Swish is treated the
 * same way, by the sign of its input).  With c_i the bit string of image i over all
 * such units (N_A bits), K[i][j] = N_A - Hamming(c_i, c_j) (the units on which images
 * i and j agree), and the score is log|det K|: networks that map different images to
 * different activation patterns score higher.  The forward is the training forward
 * (BN with batch statistics, as the paper's PyTorch code runs it), without dropout or
 * drop-path; BN running statistics are updated as in any training forward.
 *
 * The bits are packed 64 to a word and compared with popcounts: B^2/2 pairs per layer.
 * log|det K| comes from LAPACK's Cholesky (K is a sum of Gram matrices, so symmetric
 * positive semi-definite); when that fails (a singular K: two images with the same
 * pattern) an LU factorisation gives log|det| (or -inf for an exactly singular K).
 */
#include <lapacke.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nn/network_internal.h"

static void pack_bits(const float *v, size_t n, uint64_t *w)
{
    size_t words = (n + 63) / 64;
    memset(w, 0, words * sizeof *w);
    for (size_t k = 0; k < n; k++)
        if (v[k] > 0.0f)
            w[k >> 6] |= 1ull << (k & 63);
}

static double logdet(double *K, int B)
{
    double *A = malloc(sizeof(double) * (size_t)B * B);
    if (!A)
        return NAN;
    memcpy(A, K, sizeof(double) * (size_t)B * B);
    double ld = 0;
    if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', B, A, B) == 0) {
        for (int i = 0; i < B; i++)
            ld += 2.0 * log(A[(size_t)i * B + i]);
        free(A);
        return ld;
    }
    memcpy(A, K, sizeof(double) * (size_t)B * B);
    lapack_int *piv = malloc(sizeof(lapack_int) * (size_t)B);
    lapack_int info = piv ? LAPACKE_dgetrf(LAPACK_ROW_MAJOR, B, B, A, B, piv) : -1;
    if (info < 0)
        ld = NAN;
    else if (info > 0)
        ld = -INFINITY;
    else
        for (int i = 0; i < B; i++)
            ld += log(fabs(A[(size_t)i * B + i]));
    free(piv);
    free(A);
    return ld;
}

int gn_net_naswot(gn_net *net, const gn_tensor *x, double *score, int64_t *units, gn_error *err)
{
    int B = x->n;
    if (B < 2)
        return gn_error_set(err, "naswot: a batch of at least 2 images is needed (got %d)", B);
    gn_train_opts keep = net->opts, o = net->opts;
    o.dropout = false;
    o.drop_path = false;
    gn_net_set_train_opts(net, &o);
    const gn_tensor *logits;
    int rc = gn_net_forward_train(net, x, &logits, err);
    gn_net_set_train_opts(net, &keep);
    if (rc)
        return -1;
    double *K = calloc((size_t)B * B, sizeof(double));
    uint64_t *bits = NULL;
    size_t cap = 0;
    int64_t na = 0;
    rc = 0;
    if (!K) {
        rc = gn_error_set(err, "naswot: out of memory");
        goto out;
    }
    for (int k = 0; k < net->n_nodes && !rc; k++) {
        const gn_node *nd = &net->nodes[k];
        if (nd->k != ND_ACT || (nd->act != GN_ELT_RELU && nd->act != GN_ELT_SILU))
            continue;
        /* a ReLU's bits from its output (y > 0 exactly when x > 0): a ReLU fused with its
         * BN (network_train.c) has no stored input */
        const gn_tensor *in = &net->v[nd->act == GN_ELT_RELU ? nd->out : nd->in];
        size_t per = gn_tensor_numel(in) / (size_t)B, words = (per + 63) / 64;
        if (words * (size_t)B > cap) {
            uint64_t *nb = realloc(bits, sizeof(uint64_t) * words * (size_t)B);
            if (!nb) {
                rc = gn_error_set(err, "naswot: out of memory");
                break;
            }
            bits = nb;
            cap = words * (size_t)B;
        }
        for (int i = 0; i < B; i++)
            pack_bits(in->data + (size_t)i * per, per, bits + (size_t)i * words);
        for (int i = 0; i < B; i++)
            for (int j = i; j < B; j++) {
                const uint64_t *a = bits + (size_t)i * words, *b = bits + (size_t)j * words;
                int64_t ham = 0;
                for (size_t w = 0; w < words; w++)
                    ham += __builtin_popcountll(a[w] ^ b[w]);
                double agree = (double)((int64_t)per - ham);
                K[(size_t)i * B + j] += agree;
                if (j != i)
                    K[(size_t)j * B + i] += agree;
            }
        na += (int64_t)per;
    }
    if (!rc && na == 0)
        rc = gn_error_set(err, "naswot: the network has no ReLU or Swish layer");
    if (!rc) {
        *score = logdet(K, B);
        if (isnan(*score))
            rc = gn_error_set(err, "naswot: out of memory");
        if (units)
            *units = na;
    }
out:
    free(bits);
    free(K);
    return rc ? -1 : 0;
}
