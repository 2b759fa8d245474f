/*
 * fuzz_ckpt_run.h — the fixed training run whose checkpoints fuzz_checkpoint.c reads
 * and make_seeds.c writes: the small network of fuzz_util.h on the reference
 * backend, SGD (momentum: one state vector), EMA on, fz_ckpt_options_json(), seed 7.
 */
#ifndef GPUNAS_FUZZ_CKPT_RUN_H
#define GPUNAS_FUZZ_CKPT_RUN_H

#include "fuzz_util.h"
#include "gpunas/arch.h"
#include "gpunas/backend.h"
#include "gpunas/network.h"
#include "gpunas/optim.h"
#include "train/train_internal.h"

typedef struct {
    gn_arch *arch;
    gn_backend *be;
    gn_net *net;
    gn_optim *optim;
    gn_ema *ema;
    char *arch_json;
    gn__ckpt_ctx ctx;
} fz_run;

/* Floats in the network's value arena (trainable values and buffers). */
static inline size_t fz_arena_floats(gn_net *net)
{
    size_t end = 0;
    const float *base = gn_net_values(net);
    for (int i = 0; i < gn_net_num_params(net); i++) {
        gn_param *q = gn_net_param(net, i);
        size_t e = (size_t)(q->value.data - base) + gn_tensor_numel(&q->value);
        if (e > end)
            end = e;
    }
    return end;
}

/* The run (built on first use, kept for the process). */
static inline fz_run *fz_the_run(void)
{
    static fz_run r;
    static int ready;
    if (ready)
        return &r;
    gn_error err;
    FZ_CHECK(gn_arch_parse(fz_small_arch_json(), "small.json", &r.arch, &err) == 0, "%s", err.msg);
    FZ_CHECK(gn_backend_create("ref", &r.be, &err) == 0, "%s", err.msg);
    FZ_CHECK(gn_net_create(r.arch, r.be, &r.net, &err) == 0, "%s", err.msg);
    FZ_CHECK(gn_net_init(r.net, 7, &err) == 0, "%s", err.msg);
    gn_optim_config oc;
    gn_optim_defaults(GN_OPT_SGD, &oc);
    FZ_CHECK(gn_optim_create_for_net(&oc, r.net, &r.optim, &err) == 0, "%s", err.msg);
    FZ_CHECK(gn_ema_create(0.9, gn_net_values(r.net), fz_arena_floats(r.net), &r.ema, &err) == 0, "%s", err.msg);
    r.arch_json = gn_arch_to_json(r.arch, &err);
    FZ_CHECK(r.arch_json != NULL, "%s", err.msg);
    r.ctx = (gn__ckpt_ctx){.net = r.net,
                           .optim = r.optim,
                           .ema = r.ema,
                           .options = fz_ckpt_options_json(),
                           .arch_json = r.arch_json,
                           .seed = 7};
    ready = 1;
    return &r;
}

#endif
