/*
 * train_internal.h — pieces of the trainer shared between trainer.c, checkpoint.c and
 * options.c: checkpoint save/load, option validation and comparison, the metrics
 * file, and the per-epoch seed derivation.
 */
#ifndef GPUNAS_TRAIN_INTERNAL_H
#define GPUNAS_TRAIN_INTERNAL_H

#include <stdint.h>

#include "gpunas/optim.h"
#include "gpunas/train.h"

/* Seed of the dropout/drop-path mask RNG for epoch e (splitmix64 of seed and e). */
uint64_t gn__train_mask_seed(uint64_t seed, int epoch);

/* options.c */
int gn__train_check(const gn_train_config *c, gn_error *err);
/* Compare the options JSON stored in a checkpoint with this run's; one-line error
 * naming the first differing key. */
int gn__train_options_match(const char *path, const char *stored, const char *current, gn_error *err);

/* checkpoint.c — see gpunas/train.h for the file layout.  The trainer runs on host
 * backends, so arena pointers are read and written directly. */
typedef struct {
    gn_net *net;
    gn_optim *optim;
    gn_ema *ema;            /* may be NULL */
    const char *options;    /* JSON text */
    const char *arch_json;  /* canonical arch of the run */
    uint64_t seed;
} gn__ckpt_ctx;

int gn__ckpt_save(const char *path, const gn__ckpt_ctx *c, int epochs_done, gn_error *err);
/* Loads into c->net/optim/ema after checking format, options and arch. */
int gn__ckpt_load(const char *path, const gn__ckpt_ctx *c, int *epochs_done, gn_error *err);

/* metrics.c */
char *gn__metrics_line(const gn_epoch_metrics *m); /* malloc'd JSON, no newline */
int gn__metrics_append(const char *path, const gn_epoch_metrics *m, gn_error *err);
/* Keep the lines with epoch <= epochs_done (rewritten atomically); a missing file is
 * fine. */
int gn__metrics_truncate(const char *path, int epochs_done, gn_error *err);

#endif
