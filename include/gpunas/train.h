/*
 * gpunas/train.h — training a network on a data set (the library behind
 * `gpunas train` / `gpunas eval`, and the proxy trainer the search calls).
 *
 * Design
 *   gn_train_run() owns a whole run: it copies the arch, sets its input channels and
 *   classes from the data and its resolution from the options, builds the network,
 *   splits the training set into train/validation (seeded by split_seed, so every
 *   candidate of a search sees the same split whatever its training seed), builds
 *   gn_loaders (the data module: background prefetch, augmentation deterministic per
 *   (seed, epoch)), then runs epochs of: loader batches -> training forward -> loss
 *   (label smoothing, optional distillation from a teacher run in inference mode) ->
 *   backward -> optimizer step (lr from the schedule) -> EMA update.  After every
 *   epoch it evaluates the validation split (with the raw weights and, if EMA is on,
 *   with the EMA weights), appends a JSON line to OUT/metrics.jsonl and writes
 *   OUT/checkpoint.safetensors atomically.  After the last epoch it evaluates the
 *   test set with the final weights (the EMA weights when EMA is on) and writes
 *   OUT/weights.safetensors (gn_net_save format).  out_dir NULL: nothing is written
 *   (proxy training in a search).
 *
 *   Nothing is printed: progress goes to callbacks (the CLI draws the bar).
 *
 *   Determinism and resume.  Every random draw is a function of the seed and the
 *   epoch: the loader's permutation and augmentation (seed, epoch), and the
 *   dropout/drop-path masks, whose RNG is re-seeded at the start of every epoch
 *   from (seed, epoch).  The schedule is a function of (epoch, step).  So the state
 *   after epoch e is exactly: weights + BN statistics, optimizer state vectors and
 *   step count, EMA shadow, and e — which is what the checkpoint holds, in float32
 *   bit for bit.  `resume` continues from OUT/checkpoint.safetensors and, with the
 *   same thread count and backend, ends with the same bits as an uninterrupted run.
 *   The checkpoint also stores the options (JSON) and the canonical arch JSON; a
 *   resume with different options (other than threads / prefetch / stop_after_epoch)
 *   is refused with a one-line error naming the first differing option.
 *
 *   Checkpoint file (safetensors; metadata "format": "gpunas-checkpoint",
 *   "version": "1", "epochs_done", "optim_steps", "options", "arch", "rng"):
 *     model.<param name>     weights and BN running statistics (gn_net names)
 *     ema.<param name>       EMA shadow (if EMA is on)
 *     optim.<state name>     optimizer state vectors over the trainable arena
 *
 *   Non-finite loss: the run stops with "epoch E, step S: loss is nan; ..." and the
 *   last checkpoint (previous epoch) is left untouched.
 *
 *   metrics.jsonl: one object per epoch with epoch (1-based), lr (at the epoch's
 *   last step), train_loss, train_acc, val_loss, val_top1, val_top5 (absent without
 *   a validation split), ema_val_loss / ema_val_top1 / ema_val_top5 (with EMA),
 *   time_s (epoch wall time, evaluation included), train_time_s, images_per_s
 *   (training images per second of training time); the last epoch's line adds
 *   test_loss, test_top1, test_top5 (final weights).  On resume the lines of epochs
 *   after the checkpoint are dropped.
 */
#ifndef GPUNAS_TRAIN_H
#define GPUNAS_TRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "gpunas/arch.h"
#include "gpunas/data.h"
#include "gpunas/error.h"
#include "gpunas/network.h"
#include "gpunas/optim.h"

/* Where the training steps' time goes (`gpunas train --profile-ops`, issue 21): wall
 * seconds of each phase of every step, and the network's op timing (gn_op_profile;
 * its forward and backward sum to about fwd_s and bwd_s less the copies).  Evaluation
 * and checkpoints are not steps. */
typedef struct {
    int64_t steps;
    double data_s;  /* waiting for the loader's next batch */
    double fwd_s;   /* input copy, training forward, logits copy */
    double loss_s;  /* loss and its gradient on the host (and the teacher, distilling) */
    double bwd_s;   /* dlogits copy and backward */
    double optim_s; /* optimizer step (and the EMA update) */
    double total_s; /* the steps end to end (the rest: progress callbacks, thread following) */
    gn_op_profile ops;
} gn_train_profile;

typedef struct {
    /* ---- model */
    const gn_arch *arch;    /* borrowed, copied; in-channels/classes set from the data */
    int resolution;         /* 0: the arch's img_resolution */
    const char *backend;    /* "dnnl" (NULL) or "ref" */
    int threads;            /* intra-op threads; <= 0: the cores other processes leave
                               free, checked again every 2 s of training (a changed
                               count changes the floating-point summation order: give
                               a count for bit-for-bit repeatable runs) */

    /* ---- data (borrowed) */
    const gn_dataset *train_set; /* the validation split is taken from it */
    const gn_dataset *test_set;  /* NULL: no test evaluation */
    double val_fraction;         /* [0, 1); 0: no validation */
    int subset;                  /* > 0: train on a seeded subset of this many images */
    uint64_t split_seed;         /* validation split and subset */
    int crop_pad;                /* random-crop padding; < 0: data default (size/8) */
    int hflip;                   /* < 0: default (on), 0 off, 1 on */
    float erase_prob;            /* random erasing; < 0: default (0.25) */
    int prefetch;                /* batches prepared ahead by the loader thread */

    /* ---- recipe */
    int epochs;
    int batch;
    gn_optim_config optim;
    gn_sched_kind schedule;
    double lr, min_lr, warmup_epochs, warmup_lr, decay_epochs, decay_gamma;
    bool warmup_per_step;   /* schedule time advances per step (else per epoch) */
    float smoothing;
    double ema_decay;       /* 0: no EMA */
    bool dropout, drop_path;
    uint64_t seed;          /* init, loader, masks */

    /* ---- distillation (teacher_arch NULL: off) */
    const gn_arch *teacher_arch;  /* borrowed; run at the student's resolution */
    const char *teacher_weights;  /* gn_net_save file */
    float kd_alpha, kd_temp;

    /* ---- run */
    const char *out_dir;     /* NULL: no files (proxy training) */
    bool resume;             /* continue from out_dir/checkpoint.safetensors */
    int stop_after_epoch;    /* > 0: return after this many epochs are done (testing) */
    gn_train_profile *profile; /* NULL: no timing; else accumulated over the steps */
} gn_train_config;

/* Defaults: dnnl, all cores, val 0.1, split seed 42, data-default augmentation,
 * prefetch 2, 10 epochs, batch 128, SGD Nesterov 0.9 wd 5e-5, lr 0.1, cosine to 0,
 * warm-up 1 epoch per step from 0, step decay 0.97 every 2.4 epochs (when chosen),
 * smoothing 0.1, no EMA, dropout and drop-path on, seed 1, kd alpha 0.5 T 1. */
void gn_train_defaults(gn_train_config *c);

typedef struct {
    int epoch, epochs;       /* 0-based epoch being trained, total */
    int step, steps;         /* batches done in this epoch, per epoch */
    int64_t images;          /* images done in this epoch */
    double loss, acc;        /* running means over this epoch */
    double lr;               /* of the last step */
    double elapsed_s;        /* in this epoch */
    double images_per_s;
    double eta_s;            /* rest of this epoch's training */
    int threads;             /* intra-op threads now */
} gn_train_progress;

typedef struct {
    int epoch;               /* 1-based: epochs done */
    double lr;
    double train_loss, train_acc;
    bool has_val;
    double val_loss, val_top1, val_top5;
    bool has_ema;
    double ema_val_loss, ema_val_top1, ema_val_top5;
    bool has_test;           /* last epoch only */
    double test_loss, test_top1, test_top5;
    double time_s, train_time_s, images_per_s;
    int threads_min, threads_max; /* intra-op threads used in the epoch (they follow the
                                     free cores when `threads` <= 0) */
} gn_epoch_metrics;

typedef struct {
    void *user;
    /* After every training step; non-zero stops the run (gn_train_run fails with
     * "cancelled"). */
    int (*progress)(void *user, const gn_train_progress *p);
    /* After every epoch's evaluation and checkpoint. */
    int (*epoch_end)(void *user, const gn_epoch_metrics *m);
} gn_train_callbacks;

typedef struct {
    int epochs_done;
    int start_epoch;         /* 0, or the checkpoint's epoch on resume */
    bool stopped_early;      /* stop_after_epoch reached before the end */
    gn_epoch_metrics last;   /* metrics of the last epoch run (test fields at the end) */
    double val_top1;         /* final weights (EMA if on) on the validation split; -1 if none */
    double test_top1, test_top5; /* final weights on the test set; -1 if none */
    int64_t params;          /* trainable parameters of the network */
    double total_time_s;
} gn_train_result;

/* Run (or resume) a training run.  cb may be NULL. */
int gn_train_run(const gn_train_config *c, const gn_train_callbacks *cb, gn_train_result *res, gn_error *err);

/* ------------------------------------------------------------------ zero-cost proxy */
/* The NASWOT score (log|det K| of the activation-pattern kernel, gn_net_naswot) of arch
 * freshly initialised with `seed`, on the first batch of `batch` images of `split`
 * shuffled with `seed` (no augmentation; resized to the network's resolution).
 * dump_dir (may be NULL): also write DIR/init.safetensors and DIR/batch.npy.
 * *units (may be NULL): the ReLU/Swish units counted (src/train/zerocost.c). */
int gn_naswot_on_data(const gn_arch *a, gn_backend *be, const gn_dataset_view *split, int batch, uint64_t seed,
                      const char *dump_dir, double *score, int64_t *units, gn_error *err);

/* Options as a JSON object text (malloc'd) — what the checkpoint records. */
char *gn_train_options_json(const gn_train_config *c, gn_error *err);

/* ------------------------------------------------------------------ evaluation */
typedef struct {
    int64_t n;
    int classes;
    double loss, top1, top5;   /* mean CE (no smoothing), accuracies in [0, 1] */
    int64_t *confusion;        /* classes x classes, [true][predicted]; NULL unless asked */
} gn_eval_result;

/* Evaluate net (inference path, BN running statistics) on every batch of the loader
 * (epoch 0, which must not shuffle/augment for a meaningful result). */
int gn_evaluate(gn_net *net, gn_loader *l, bool confusion, gn_eval_result *r, gn_error *err);
void gn_eval_result_free(gn_eval_result *r);

#endif
