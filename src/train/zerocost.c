/*
 * zerocost.c — a zero-cost proxy on real data: the NASWOT score (Mellor et al. 2021;
 * gn_net_naswot in src/nn/network_naswot.c) of a freshly initialised network on one
 * batch of a training split.
 *
 * One score is one initialisation (seed) and one batch (the first batch of an epoch-0
 * shuffle of the split with the same seed), resized and normalised as for evaluation
 * (no augmentation).  `gpunas zerocost` prints the mean over seeds; the search
 * (gpunas/nas.h, "Proxy score") stores it beside each candidate's proxy accuracy.  The
 * network and batch may be written out (dump_dir) so that an independent implementation
 * can recompute the score (tests/pytorch/naswot_ref.py, with PyTorch).
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "gpunas/npy.h"
#include "gpunas/train.h"

int gn_naswot_on_data(const gn_arch *a, gn_backend *be, const gn_dataset_view *split, int batch, uint64_t seed,
                      const char *dump_dir, double *score, int64_t *units, gn_error *err)
{
    if (!a || !be || !split || !split->data || batch < 2 || !score)
        return gn_error_set(err, "naswot: bad arguments (batch %d)", batch);
    if (split->data->c != a->layers[1].in_ch)
        return gn_error_set(err, "naswot: the network takes %d input channels, data set %s has %d",
                            a->layers[1].in_ch, split->data->source, split->data->c);
    gn_augment aug;
    gn_augment_defaults(split->data, &aug);
    aug.augment = false;
    aug.resolution = a->resolution;
    gn_loader *l = NULL;
    gn_net *net = NULL;
    gn_tensor x = {0};
    gn_batch b;
    int ok = !gn_loader_create(split, batch, &aug, true, true, seed, 0, &l, err) &&
             !gn_loader_start_epoch(l, 0, err);
    if (ok) {
        int got = gn_loader_next(l, &b, err);
        if (got == 0)
            gn_error_set(err, "naswot: data set %s: the split holds no batch of %d images", split->data->source, batch);
        ok = got == 1;
    }
    ok = ok && !gn_net_create(a, be, &net, err) && !gn_net_init(net, seed, err) &&
         !gn_tensor_alloc(&x, be, b.n, b.c, b.h, b.w, err);
    if (ok) {
        memcpy(x.data, b.x, sizeof(float) * gn_tensor_numel(&x));
        if (dump_dir) {
            char p[4200];
            mkdir(dump_dir, 0777);
            snprintf(p, sizeof p, "%s/init.safetensors", dump_dir);
            ok = !gn_net_save(net, p, err);
            snprintf(p, sizeof p, "%s/batch.npy", dump_dir);
            int64_t shape[4] = {b.n, b.c, b.h, b.w};
            ok = ok && !gn_npy_write(p, 4, shape, b.x, err);
        }
        ok = ok && !gn_net_naswot(net, &x, score, units, err);
    }
    gn_tensor_free(&x);
    gn_net_free(net);
    gn_loader_free(l);
    return ok ? 0 : -1;
}
