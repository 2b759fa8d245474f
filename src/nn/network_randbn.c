/*
 * network_randbn.c — gn_net_randomize_bn: non-trivial BN affine parameters and
 * running statistics, so that a freshly initialised network exercises BN folding
 * (gamma 1 / beta 0 / mean 0 / var 1 would fold to the identity).
 *
 * One gn_rng seeded with `seed`; the BN layers in node order (the order of the
 * lowered graph, i.e. JSON layer order), and for each all C gammas, then the betas,
 * the means and the variances, so the values depend only on the seed and the arch.
 */
#include <stdlib.h>

#include "nn/network_internal.h"

int gn_net_randomize_bn(gn_net *net, uint64_t seed, gn_error *err)
{
    gn_rng r;
    gn_rng_seed(&r, seed);
    for (int i = 0; i < net->n_nodes; i++) {
        const gn_node *nd = &net->nodes[i];
        if (nd->k != ND_BN)
            continue;
        const int ids[4] = {nd->gamma, nd->beta, nd->rmean, nd->rvar};
        for (int k = 0; k < 4; k++) {
            gn_tensor *t = &net->params[ids[k]].value;
            size_t n = gn_tensor_numel(t);
            float *h = malloc((n ? n : 1) * sizeof *h);
            if (!h)
                return gn_error_set(err, "%s: out of memory", net->arch->source);
            for (size_t j = 0; j < n; j++) {
                double v;
                switch (k) {
                case 0: v = 0.5 + gn_rng_uniform(&r); break;        /* gamma ~ U(0.5, 1.5) */
                case 1: v = 0.1 * gn_rng_normal(&r); break;         /* beta ~ N(0, 0.1^2) */
                case 2: v = 0.1 * gn_rng_normal(&r); break;         /* running mean ~ N(0, 0.1^2) */
                default: v = 0.5 + 1.5 * gn_rng_uniform(&r); break; /* running var ~ U(0.5, 2) */
                }
                h[j] = (float)v;
            }
            int rc = gn_tensor_from_host(t, h, err);
            free(h);
            if (rc)
                return -1;
        }
    }
    net->ip.ready = false; /* the folded weights are stale */
    return 0;
}
