/*
 * lat_perturb.c — random per-layer variants of a config (see gn_lat_perturb_arch in
 * gpunas/latprofile.h): a small architecture distribution around one network for
 * profiles and tests that do not use a search-space file.  The copy goes through
 * the canonical JSON writer and parser, so the variant is a config like any other,
 * and is re-resolved (and so re-validated) after the changes.
 */
#include <stdlib.h>

#include "gpunas/latprofile.h"

int gn_lat_perturb_arch(const gn_arch *base, gn_rng *rng, gn_arch **out, gn_error *err)
{
    *out = NULL;
    if (base->distill)
        return gn_error_set(err, "%s: perturbation needs a standard-family config (distill: false)", base->source);
    char *text = gn_arch_to_json(base, err);
    if (!text)
        return -1;
    gn_arch *a;
    int rc = gn_arch_parse(text, base->source, &a, err);
    free(text);
    if (rc)
        return -1;
    a->same_pad_fix = base->same_pad_fix;
    static const int kernels[] = {3, 5};
    static const double exps[] = {1, 2, 3, 4, 6};
    for (int i = 2; i < a->n_layers - 1; i++) {
        gn_layer *L = &a->layers[i];
        if (L->type != GN_LAYER_CONV && L->type != GN_LAYER_IRB && L->type != GN_LAYER_FUSED_IRB)
            continue;
        L->kernel = kernels[gn_rng_below(rng, 2)];
        L->act = gn_rng_below(rng, 2) ? GN_ACT_SWISH : GN_ACT_RELU;
        L->act_set = true;
        if (L->type != GN_LAYER_CONV) {
            L->expansion = exps[gn_rng_below(rng, 5)];
            L->expansion_is_int = true;
            L->use_se = gn_rng_below(rng, 2) != 0;
            L->use_se_set = true;
        }
    }
    if (gn_arch_resolve(a, err)) {
        gn_arch_free(a);
        return -1;
    }
    *out = a;
    return 0;
}
