/*
 * checkpoint.c — the training checkpoint: weights + BN statistics, EMA shadow and
 * optimizer state in one safetensors file, with the epoch, step count, options and
 * arch in its metadata (layout in gpunas/train.h).
 *
 * Saving goes through gn_st_writer_write (temp file, fsync, rename), so the previous
 * checkpoint stays intact until the new one is complete.  Loading is strict: format
 * and version, the options and the arch must match this run, every expected tensor
 * must be present with its exact shape, and no other tensor may be there; errors
 * name the file.  Data is read straight into the net's host arena, the EMA shadow
 * and the optimizer state vectors (the trainer runs on host backends).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpunas/safetensors.h"
#include "train/train_internal.h"

#define CKPT_FORMAT "gpunas-checkpoint"
#define CKPT_VERSION "1"

static int add_params(gn_st_writer *w, gn_net *net, const char *prefix, const float *base, gn_error *err)
{
    const float *arena = gn_net_values(net);
    for (int i = 0; i < gn_net_num_params(net); i++) {
        gn_param *q = gn_net_param(net, i);
        char name[GN_NAME_MAX + 16];
        snprintf(name, sizeof name, "%s.%s", prefix, q->name);
        if (gn_st_writer_add(w, name, q->ndim, q->shape, base + (q->value.data - arena), err))
            return -1;
    }
    return 0;
}

static void rng_meta(char *buf, size_t cap, uint64_t seed, int epochs_done)
{
    snprintf(buf, cap, "{\"seed\":%" PRIu64 ",\"next_epoch\":%d,\"mask_seed\":%" PRIu64 "}", seed, epochs_done,
             gn__train_mask_seed(seed, epochs_done));
}

int gn__ckpt_save(const char *path, const gn__ckpt_ctx *c, int epochs_done, gn_error *err)
{
    gn_st_writer *w = gn_st_writer_new();
    if (!w)
        return gn_error_set(err, "%s: out of memory", path);
    int rc = add_params(w, c->net, "model", gn_net_values(c->net), err);
    if (!rc && c->ema)
        rc = add_params(w, c->net, "ema", gn_ema_values(c->ema), err);
    int64_t n = (int64_t)gn_optim_size(c->optim);
    for (int i = 0; !rc && i < gn_optim_state_count(c->optim); i++) {
        char name[64];
        snprintf(name, sizeof name, "optim.%s", gn_optim_state_name(c->optim, i));
        rc = gn_st_writer_add(w, name, 1, &n, gn_optim_state(c->optim, i), err);
    }
    char num[32], steps[32], rng[160], bnb[32];
    snprintf(num, sizeof num, "%d", epochs_done);
    snprintf(bnb, sizeof bnb, "%" PRId64, gn_net_bn_batches(c->net));
    snprintf(steps, sizeof steps, "%" PRId64, gn_optim_steps(c->optim));
    rng_meta(rng, sizeof rng, c->seed, epochs_done);
    if (!rc)
        rc = gn_st_writer_meta(w, "format", CKPT_FORMAT, err) || gn_st_writer_meta(w, "version", CKPT_VERSION, err) ||
             gn_st_writer_meta(w, "epochs_done", num, err) || gn_st_writer_meta(w, "optim_steps", steps, err) ||
             gn_st_writer_meta(w, "rng", rng, err) || gn_st_writer_meta(w, "options", c->options, err) ||
             gn_st_writer_meta(w, "arch", c->arch_json, err) || gn_st_writer_meta(w, "bn_batches", bnb, err);
    if (!rc)
        rc = gn_st_writer_write(w, path, err);
    gn_st_writer_free(w);
    return rc ? -1 : 0;
}

static int load_params(gn_st_file *f, gn_net *net, const char *prefix, float *base, gn_error *err)
{
    const float *arena = gn_net_values(net);
    for (int i = 0; i < gn_net_num_params(net); i++) {
        gn_param *q = gn_net_param(net, i);
        char name[GN_NAME_MAX + 16], old[GN_NAME_MAX];
        snprintf(name, sizeof name, "%s.%s", prefix, q->name);
        if (!gn_st_find(f, name)) { /* a checkpoint of gpunas < 0.2: "model.layers.{I}.conv.weight" */
            char legacy[GN_NAME_MAX + 16];
            snprintf(legacy, sizeof legacy, "%s.%s", prefix, gn_param_legacy_name(q, old, sizeof old));
            if (gn_st_find(f, legacy))
                snprintf(name, sizeof name, "%s", legacy);
        }
        if (gn_st_load(f, name, q->ndim, q->shape, base + (q->value.data - arena), err))
            return -1;
    }
    return 0;
}

static int meta_int(gn_st_file *f, const char *path, const char *key, long long lo, long long hi, long long *out,
                    gn_error *err)
{
    const char *v = gn_st_meta(f, key);
    if (!v)
        return gn_error_set(err, "%s: not a gpunas checkpoint: metadata '%s' missing", path, key);
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        return gn_error_set(err, "%s: metadata '%s': '%s' is not an integer in [%lld, %lld]", path, key, v, lo, hi);
    *out = x;
    return 0;
}

int gn__ckpt_load(const char *path, const gn__ckpt_ctx *c, int *epochs_done, gn_error *err)
{
    gn_st_file *f;
    if (gn_st_open(path, &f, err))
        return -1;
    int rc = 0;
    const char *fmt = gn_st_meta(f, "format"), *ver = gn_st_meta(f, "version");
    long long done = 0, steps = 0, bnb = 0;
    if (!fmt || strcmp(fmt, CKPT_FORMAT) != 0)
        rc = gn_error_set(err, "%s: not a gpunas checkpoint (metadata 'format' is %s%s%s)", path, fmt ? "'" : "",
                          fmt ? fmt : "missing", fmt ? "'" : "");
    else if (!ver || strcmp(ver, CKPT_VERSION) != 0)
        rc = gn_error_set(err, "%s: checkpoint version '%s' is not supported (expected %s)", path, ver ? ver : "?",
                          CKPT_VERSION);
    if (!rc)
        rc = meta_int(f, path, "epochs_done", 0, 1000000000, &done, err) ||
             meta_int(f, path, "optim_steps", 0, INT64_MAX / 2, &steps, err);
    if (!rc) {
        bnb = steps;
        if (gn_st_meta(f, "bn_batches"))
            rc = meta_int(f, path, "bn_batches", 0, INT64_MAX / 2, &bnb, err);
    }
    if (!rc) {
        const char *opts = gn_st_meta(f, "options");
        if (!opts)
            rc = gn_error_set(err, "%s: not a gpunas checkpoint: metadata 'options' missing", path);
        else
            rc = gn__train_options_match(path, opts, c->options, err);
    }
    if (!rc) {
        const char *arch = gn_st_meta(f, "arch");
        if (!arch || strcmp(arch, c->arch_json) != 0)
            rc = gn_error_set(err, "%s: cannot resume: the checkpoint's architecture differs from %s", path,
                              gn_net_arch(c->net)->source);
    }
    if (!rc) {
        char want[160];
        rng_meta(want, sizeof want, c->seed, (int)done);
        const char *rng = gn_st_meta(f, "rng");
        if (!rng || strcmp(rng, want) != 0)
            rc = gn_error_set(err, "%s: metadata 'rng' is '%s', expected '%s'", path, rng ? rng : "missing", want);
    }
    int expected = gn_net_num_params(c->net) * (c->ema ? 2 : 1) + gn_optim_state_count(c->optim);
    if (!rc && gn_st_count(f) != expected)
        rc = gn_error_set(err, "%s: %d tensors, expected %d (model%s, %d optimizer state vectors)", path,
                          gn_st_count(f), expected, c->ema ? ", ema" : "", gn_optim_state_count(c->optim));
    if (!rc)
        rc = load_params(f, c->net, "model", gn_net_values(c->net), err);
    if (!rc && c->ema)
        rc = load_params(f, c->net, "ema", gn_ema_values(c->ema), err);
    int64_t n = (int64_t)gn_optim_size(c->optim);
    for (int i = 0; !rc && i < gn_optim_state_count(c->optim); i++) {
        char name[64];
        snprintf(name, sizeof name, "optim.%s", gn_optim_state_name(c->optim, i));
        rc = gn_st_load(f, name, 1, &n, gn_optim_state(c->optim, i), err);
    }
    gn_st_close(f);
    if (rc)
        return -1;
    gn_optim_set_steps(c->optim, steps);
    /* BN batches (num_batches_tracked); checkpoints before it was kept count one
     * training forward per optimizer step */
    gn_net_set_bn_batches(c->net, bnb);
    *epochs_done = (int)done;
    return 0;
}
