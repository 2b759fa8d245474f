/*
 * gpunas/hub.h — the model hub: trained, exported models picked by a latency budget.
 *
 * What a hub is (docs: GPUNet's released models are one per latency tier; timm names
 * a model by architecture + tag).  A folder:
 *
 *   HUB/hub.json                 the index (written last, always derived from the folders)
 *   HUB/NAME/model.json          the model's record (what hub.json lists)
 *   HUB/NAME/config.json         GPUNet JSON config (input channels, classes, resolution set)
 *   HUB/NAME/model.safetensors   weights and BN statistics (gn_net_save names = the
 *                                released PyTorch builder's state-dict names)
 *   HUB/NAME/model.onnx          ONNX opset 13, batch 1, BN folded (gpunas/onnx.h)
 *   HUB/NAME/README.md           the model card
 *   HUB/pareto.png               accuracy vs latency: the search's candidates by tier,
 *                                the front, the hub models
 *   HUB/.work/                   training runs in progress and staging folders
 *
 * NAME says what the model is: DATA-tTIER[rRANK]-LATms-DEVICE-THREADSt, e.g.
 * fmnist-t1-0.179ms-cpu-epyc-1t (data set, latency tier, measured batch-1 latency,
 * device kind and CPU family, threads it was measured with; rRANK only for the
 * runners-up of `--top-k`).
 *
 * Building (gn_hub_build, `gpunas hub build SEARCH_DIR`).  For every tier of a
 * finished search (its store), the best trained candidate (and with top_k > 1 the
 * runners-up, by the search's proxy score: gn_nas_score) is
 *   1. trained (all candidates first, `jobs` side by side, before any timing) with the full recipe (bench/RESULTS.md "Training": SGD Nesterov lr 0.1
 *      cosine, batch 64, label smoothing 0.1, random crop pad 2 + flip, no random
 *      erasing, no drop-path, E epochs) on the training split, optionally distilled
 *      from a teacher (its weights file names its arch), in HUB/.work/trial-ID with a
 *      checkpoint every epoch, so a killed build continues the epoch it was in;
 *   2. evaluated on the test split (top-1, top-5) and the validation split;
 *   3. timed at batch 1 (and the asked batch sizes) with the search's protocol: the
 *      search's measuring threads (store meta nas.lat_threads), pinned, interleaved
 *      with the built-in reference network, latency = median ratio to the reference x
 *      the search's reference baseline (nas.lat_reference_ms), so hub latencies and
 *      the search's tier edges are in the same frame; p10/p90 are the model's own
 *      samples in that frame; the raw median of this run is kept beside it.  Batch
 *      sizes > 1 are raw medians (the baseline is a batch-1 figure);
 *   4. exported (config, safetensors, ONNX, card) into a staging folder, every file
 *      fsynced, then renamed to HUB/NAME: a model folder is complete or absent.
 * Then hub.json is rewritten (atomically) from the model folders.  A model is on the
 * hub's accuracy/latency front when every faster model is less accurate (test top-1);
 * otherwise it stays in its folder but hub.json lists it under "dropped" with the
 * reason ("slower than X (0.10 ms) and not more accurate: 91.2% <= 91.5%").
 *
 * Resume: a model already in the hub (same search store, trial id and config) is
 * skipped; a run in HUB/.work continues from its checkpoint; a finished run's
 * result (HUB/.work/trial-ID/result.json) is reused.  A corrupt hub.json is an error
 * (nothing is changed): remove it to have it rebuilt from the folders.
 *
 * Picking (gn_hub_pick): the most accurate model whose latency is <= the budget
 * (on equal accuracy the faster one, so never a dropped one); latencies may be replaced by predictions for another device (a latency
 * profile, gpunas/latprofile.h).  None fits: -1 and a message naming the fastest.
 *
 * Errors: 0 / -1 with one gn_error line naming the file and the reason.
 */
#ifndef GPUNAS_HUB_H
#define GPUNAS_HUB_H

#include <stdbool.h>
#include <stdint.h>

#include "gpunas/error.h"

#define GN_HUB_NAME_MAX 128
#define GN_HUB_MAX_BATCHES 8

typedef struct {
    char name[GN_HUB_NAME_MAX];
    char *record;             /* model.json text (owned) */
    char *folder;             /* HUB/NAME (owned) */
    int tier, rank;           /* latency tier of the search; rank 1 = the tier's winner */
    double tier_max_ms;
    double test_top1, test_top5; /* [0, 1] */
    double latency_ms;        /* batch 1, the search's frame (see above) */
    double latency_p10_ms, latency_p90_ms;
    int threads;
    int64_t params, macs;
    int64_t trial_id;
    char store[512];          /* the search store the trial is in */
    char device[256];         /* e.g. "cpu AMD EPYC 7B13, 1 thread pinned" */
    char dropped[256];        /* "" on the front, else the reason */
} gn_hub_model;

typedef struct {
    char *dir;
    gn_hub_model *models;     /* by latency */
    int n;
} gn_hub;

/* Read DIR/hub.json (the index).  A missing file is an error unless allow_missing
 * (then an empty hub).  Corrupt JSON or a missing field: one line naming the file. */
int gn_hub_load(const char *dir, bool allow_missing, gn_hub *h, gn_error *err);
/* Read every DIR/NAME/model.json (the truth hub.json is derived from). */
int gn_hub_scan(const char *dir, gn_hub *h, gn_error *err);
void gn_hub_free(gn_hub *h);
/* Sort by latency and fill each model's `dropped` reason (the front rule above). */
void gn_hub_mark_front(gn_hub *h);
/* Write DIR/hub.json from h (atomically). */
int gn_hub_write_index(const gn_hub *h, gn_error *err);
/* The most accurate model with latency <= budget_ms (ties: the faster); lat_ms (may be NULL)
 * replaces each model's latency (e.g. predictions for another device; NaN: no
 * prediction, the model is skipped).  Returns the index, or -1 with why (one line,
 * e.g. "no model within 0.05 ms: the fastest is NAME at 0.10 ms"). */
int gn_hub_pick(const gn_hub *h, double budget_ms, const double *lat_ms, char *why, size_t why_size);

/* ------------------------------------------------------------------ building */
typedef struct {
    const char *search_dir;      /* the search's output folder */
    const char *store_path;      /* NULL: SEARCH_DIR/search.db */
    const char *hub_dir;         /* NULL: SEARCH_DIR/hub */
    int top_k;                   /* models per tier (1) */
    int epochs;                  /* full training (10) */
    int train_batch;             /* 64 */
    int train_subset;            /* > 0: train on a seeded subset of this many images
                                    (quick checks and tests; 0: the whole training split) */
    double lr;                   /* 0.1 */
    uint64_t seed;               /* 1 */
    int train_threads;           /* per training; <= 0: the free cores, re-checked */
    int jobs;                    /* trainings run side by side, each a forked process
                                    (<= 0: the CPUs); all training ends before any timing */
    const char *teacher_weights; /* NULL: no distillation */
    const char *dataset;         /* NULL: the search's */
    const char *data_dir;        /* NULL: the data set's default place */
    int n_batches;               /* latency batch sizes (batches[0] must be 1) */
    int batches[GN_HUB_MAX_BATCHES];
    int lat_threads;             /* <= 0: the search's (store meta nas.lat_threads) */
    double lat_min_ms;           /* timed phase of a measurement (3000) */
} gn_hub_build_config;

void gn_hub_build_defaults(gn_hub_build_config *c);

typedef struct {
    void *user;
    void (*message)(void *user, const char *line);       /* progress, one line */
    /* training progress passthrough (may be NULL): epoch e of E done, its metrics */
    void (*epoch)(void *user, const char *model, int epoch, int epochs, double val_top1, double seconds);
    int (*should_stop)(void *user);                      /* non-zero: stop cleanly */
} gn_hub_callbacks;

/* Build (or continue) the hub from a search; returns the number of models published
 * by this call, or -1. */
int gn_hub_build(const gn_hub_build_config *c, const gn_hub_callbacks *cb, gn_error *err);

#endif
