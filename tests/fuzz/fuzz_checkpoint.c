/*
 * fuzz_checkpoint.c — the training checkpoint (src/train/checkpoint.c, read by
 * `gpunas train --resume` and by a resumed `hub build`) and the weights file of the
 * same network (gn_net_load, read by --weights, predict, export, hub models).
 *
 * Feeds: the input as a file (memfd, opened by path) to gn__ckpt_load, the smallest
 * entry that reads a checkpoint (gpunas/train.h gives the layout), for a fixed run:
 * fz_the_run() of fuzz_ckpt_run.h (small network, SGD with momentum, EMA on).  Then the
 * same file to gn_net_load.  make_seeds.c writes a valid checkpoint and a valid
 * weights file of this run as seeds.
 * Asserts:
 *   - failure: the error is one non-empty line (both readers);
 *   - success: epochs_done in [0, 1e9] (the range the loader promises), the optimizer
 *     step count and BN batch count >= 0;
 *   - nothing else crashes, leaks or reads out of bounds (tensors are read straight
 *     into the network's arena, the EMA shadow and the optimizer state).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_ckpt_run.h"

static fz_memfile in_file;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_run *r = fz_the_run();
    const char *path = fz_memfile_put(&in_file, "ckpt", data, size);
    gn_error err = {{0}};
    int done = -1;
    if (gn__ckpt_load(path, &r->ctx, &done, &err) != 0) {
        fz_check_error(&err);
    } else {
        FZ_CHECK(done >= 0 && done <= 1000000000, "epochs_done %d", done);
        FZ_CHECK(gn_optim_steps(r->optim) >= 0, "optimizer steps %lld", (long long)gn_optim_steps(r->optim));
        FZ_CHECK(gn_net_bn_batches(r->net) >= 0, "BN batches %lld", (long long)gn_net_bn_batches(r->net));
    }
    memset(&err, 0, sizeof err);
    if (gn_net_load(r->net, path, &err) != 0)
        fz_check_error(&err);
    else
        FZ_CHECK(gn_net_bn_batches(r->net) >= 0, "BN batches %lld", (long long)gn_net_bn_batches(r->net));
    return 0;
}
