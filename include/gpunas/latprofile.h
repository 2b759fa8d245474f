/*
 * gpunas/latprofile.h — latency lookup tables, a calibrated latency predictor and
 * device profiles (the files `gpunas profile` writes and a search reads).
 *
 * Design
 *   Key.  Every JSON layer maps to a canonical text key holding everything that
 *   changes what the inference path executes for it:
 *     TYPE|FAMILY|in=CxHxW|out=O|k=K|s=S|pad=P|mid=M|g=G|act=A|se=E|res=R|cls=N|b=B
 *   (type as in the JSON, family std/distill, input shape, output channels, kernel,
 *   stride, padding, hidden width (= expansion; the tail's 1152 in the distill
 *   family), groups, activation, SE width, residual flag, classes (tail only) and
 *   batch).  Fields a type does not have are written as fixed values (e.g. the head
 *   is always k=3 s=2 pad=1), so two layers share a key exactly when the network
 *   runs the same primitives on the same shapes for them.  The device is not in the
 *   key: a table belongs to one device profile, which names the device.
 *
 *   Isolated measurement (gn_lat_measure_layer).  A layer cannot run alone (a
 *   config needs data, head, ..., tail), so the layer is placed in the smallest
 *   host network that feeds it its exact input shape: a 1->C head at resolution 2H
 *   (the head's stride-2 3x3 conv with padding 1 gives H), the layer, and a small
 *   tail (16 channels, 2 classes); a head or tail under test keeps its own
 *   neighbours' shapes.  The host is resolved by the same gn_arch_resolve, its key
 *   checked equal to the original's, and only the layer's own nodes are timed
 *   (gn_net_infer_profile), median over runs after a warm-up.
 *
 *   Predictor.  S_t = sum of the table times of a network's layers of type t; the
 *   predicted latency is  b + sum_t a_t S_t.  Two models are fitted on whole-network
 *   measurements by weighted least squares (rows divided by the measured latency,
 *   so the fit minimises RELATIVE error, the figure that is reported) with LAPACKE
 *   dgels:  "linear" (one scale a for all types, and b) and "per_type" (one a_t per
 *   type present, and b; with a small ridge pull of each a_t towards the linear a,
 *   so types whose sums are collinear with the intercept, e.g. a head that is the
 *   same in every network, stay determined).  The model with the lower
 *   leave-one-out error on the calibration networks is kept.  The calibration
 *   absorbs what isolated timing cannot see: cache state between layers, the
 *   per-call overhead of the framework, timer overhead.
 *
 *   Speed probe.  On a shared host the machine's speed drifts (measured on the
 *   development VM: the same networks 45-95% slower half an hour apart, +-10% within
 *   seconds), which would make the table (filled over minutes) and the calibration
 *   and held-out measurements disagree for reasons that have nothing to do with the
 *   predictor.  A profile therefore keeps one reference network (the space member
 *   drawn with a fixed seed, or that perturbation of --base) and times it for ~20 ms
 *   at the start (probe_ms) and again at most every second while it fills the table
 *   and around every whole-network measurement; each time is divided by the speed
 *   factor probe now / probe_ms.  The table, the calibration and the prediction are
 *   thus at the speed the machine had at the start; the held-out error is reported
 *   against both normalised and raw measurements.  `--no-speed-probe` turns it off.
 *
 *   Keys missing from the table (a network outside what the profile enumerated)
 *   get a fallback per type: a log-linear model fitted on the table's entries,
 *     log ms = c . (1, log GFLOP, log MB, swish, SE, (k-3)/2, stride 2, residual)
 *   (GFLOP = 2 x MACs, MB = fp32 activations in and out plus parameters; the
 *   other features read from the key), i.e. a power law in work and traffic with
 *   factors for the activation, SE, kernel, stride and residual; features that do
 *   not vary among a type's entries get coefficient 0.  Predictions count how many
 *   layers used it.

 *   Profile file (JSON, gn_lat_profile_save/load):
 *     { "format": "gpunas-latency-profile", "version": 1,
 *       "device": { "id", "kind", "cpu_model", "cores", "logical_cpus", "threads",
 *                   "backend", "onednn", "gpunas" },
 *       "batch": 1, "space": "fmnist",
 *       "measurement": { "networks": { "runs", "min_ms", "warmup_ms", "warmup_runs" },
 *                        "layers": { the same } },
 *       "speed_probe": { "ms" }                  (optional)
 *       "entries": [ { "key", "type", "ms", "cv", "gflop", "mb" }, ... ],
 *       "fallback": { "irb": [c0, ..., c7], ... },
 *       "calibration": { "model": "linear"|"per_type", "intercept_ms",
 *                        "scale": { "head": a, ... }, "networks",
 *                        "fit_mean_abs_pct", "fit_max_pct", "loo_mean_abs_pct" },
 *       "evaluation": { "networks", "mean_abs_pct", "max_pct", "raw_mean_abs_pct",
 *                       "raw_max_pct", "layers", "missing" } }
 *                                               (calibration/evaluation optional)
 *   Loading validates every field; errors are one line "FILE: field 'F': reason".
 */
#ifndef GPUNAS_LATPROFILE_H
#define GPUNAS_LATPROFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "gpunas/arch.h"
#include "gpunas/backend.h"
#include "gpunas/error.h"
#include "gpunas/latency.h"
#include "gpunas/rng.h"

#define GN_LAT_KEY_MAX 192
#define GN_LAT_NTYPES 7 /* indexed by gn_layer_type */
#define GN_LAT_FB_NCOEF 8 /* fallback features, see the design note */

/* ------------------------------------------------------------------ keys, costs */
/* Key of JSON layer `layer` (1 .. n_layers-1) of a resolved arch at `batch`. */
int gn_lat_key(const gn_arch *a, int layer, int batch, char *key, size_t key_size, gn_error *err);
/* 2 x MACs x batch (floating-point operations of the layer's convs and linear). */
double gn_lat_layer_flops(const gn_layer *L, int batch);
/* fp32 bytes of the layer's input and output activations (x batch) and parameters. */
double gn_lat_layer_bytes(const gn_layer *L, int batch);

/* Isolated time of layer `layer` of a (see the design note): median ms and the CV of
 * its samples.  be: the backend to run on (threads as set on it). */
int gn_lat_measure_layer(const gn_arch *a, int layer, gn_backend *be, int batch, const gn_lat_opts *o,
                         double *median_ms, double *cv, gn_error *err);

/* A random variant of base (standard family): every conv / irb / fused_irb layer
 * independently gets a kernel from {3, 5} and an activation from {relu, swish}, and
 * irb / fused_irb layers an expansion from {1, 2, 3, 4, 6} and SE on or off;
 * channels, strides, head, tail and resolution are kept.  A small "space" around
 * one config, for profiles and tests that do not use a search space file. */
int gn_lat_perturb_arch(const gn_arch *base, gn_rng *rng, gn_arch **out, gn_error *err);

/* ------------------------------------------------------------------ calibration */
typedef enum { GN_LAT_MODEL_LINEAR = 0, GN_LAT_MODEL_PER_TYPE } gn_lat_model;

const char *gn_lat_model_name(gn_lat_model m); /* "linear", "per_type" */

typedef struct {
    gn_lat_model model;
    double scale[GN_LAT_NTYPES]; /* a_t (linear: all equal) */
    double intercept_ms;         /* b */
    int networks;
    double fit_mean_abs_pct, fit_max_pct; /* on the calibration networks */
    double loo_mean_abs_pct;              /* leave-one-out on them */
} gn_lat_calib;

/* sums: n rows of GN_LAT_NTYPES per-type table sums (ms); y: n measured latencies
 * (ms, > 0).  Fits the given model (no leave-one-out; loo_mean_abs_pct = NAN). */
int gn_lat_fit(const double *sums, const double *y, int n, gn_lat_model model, gn_lat_calib *c, gn_error *err);
/* Fits both models, computes their leave-one-out errors and keeps the better
 * (per_type only when n >= its coefficient count + 2). */
int gn_lat_calibrate(const double *sums, const double *y, int n, gn_lat_calib *c, gn_error *err);
/* b + sum_t a_t sums[t]. */
double gn_lat_calib_apply(const gn_lat_calib *c, const double *sums);

/* ------------------------------------------------------------------ profile */
typedef struct {
    char key[GN_LAT_KEY_MAX];
    gn_layer_type type;
    double ms;    /* isolated median */
    double cv;    /* of the isolated samples */
    double gflop; /* gn_lat_layer_flops / 1e9 */
    double mb;    /* gn_lat_layer_bytes / 1e6 */
} gn_lat_entry;

typedef struct {
    int networks;
    double mean_abs_pct, max_pct; /* |predicted - measured| / measured (speed-normalised
                                     measurements when the profile has a probe) */
    double raw_mean_abs_pct, raw_max_pct; /* the same against the raw measurements */
    int layers, missing;          /* layers predicted; of them, from the fallback */
} gn_lat_eval;

typedef struct {
    gn_lat_device device;
    int batch;
    char space[192];
    gn_lat_opts net_opts;   /* whole-network measurements (calibration, evaluation) */
    gn_lat_opts layer_opts; /* table entries */
    double probe_ms;        /* speed probe's median at the start (0: no probe; see the note) */
    gn_lat_entry *entries;  /* sorted by key */
    int n_entries, cap_entries;
    double fallback[GN_LAT_NTYPES][GN_LAT_FB_NCOEF];
    bool have_fallback[GN_LAT_NTYPES];
    bool calibrated;
    gn_lat_calib calib;
    bool evaluated;
    gn_lat_eval eval;
} gn_lat_profile;

void gn_lat_profile_init(gn_lat_profile *p);
void gn_lat_profile_free(gn_lat_profile *p);
const gn_lat_entry *gn_lat_profile_find(const gn_lat_profile *p, const char *key);
/* Insert (keeps the table sorted); a key already present is an error. */
int gn_lat_profile_add(gn_lat_profile *p, const gn_lat_entry *e, gn_error *err);
/* Fit the per-type fallback models on the entries (a type whose entries do not
 * determine the full model, e.g. fewer entries than features, gets an exponent-1
 * law in GFLOP through their means).  Entries' keys must be in the key format. */
int gn_lat_profile_fit_fallback(gn_lat_profile *p, gn_error *err);
/* The fallback's features of a key (see the design note); error if the key lacks a
 * field. */
int gn_lat_fallback_features(const char *key, double gflop, double mb, double *f, gn_error *err);
/* Fallback time (ms) of a key of type t; needs p->have_fallback[t]. */
int gn_lat_fallback_ms(const gn_lat_profile *p, gn_layer_type t, const char *key, double gflop, double mb, double *ms,
                       gn_error *err);

/* Table time (ms) of JSON layer `layer` of a at the profile's batch; a key not in the
 * table gets the fallback's time and *from_fallback = true (an error if the type
 * has no fallback). */
int gn_lat_table_layer_ms(const gn_lat_profile *p, const gn_arch *a, int layer, double *ms, bool *from_fallback,
                          gn_error *err);
/* Per-type sums of the table times of a's layers at the profile's batch; *missing
 * (nullable) counts layers not in the table (their time comes from the fallback;
 * an error if the type has none). */
int gn_lat_table_sums(const gn_lat_profile *p, const gn_arch *a, double *sums, int *missing, gn_error *err);
/* Calibrated prediction (ms); needs p->calibrated. */
int gn_lat_predict(const gn_lat_profile *p, const gn_arch *a, double *ms, int *missing, gn_error *err);

/* Mean absolute and maximum relative error (percent) of pred against meas. */
void gn_lat_eval_errors(const double *pred, const double *meas, int n, double *mean_abs_pct, double *max_pct);

int gn_lat_profile_save(const gn_lat_profile *p, const char *path, gn_error *err);

/* ------------------------------------------------------------------ building one */
/* Where a profile's architectures come from: one call draws one from rng into *out
 * (NULL on failure).  The CLI samples a search space or perturbs a config. */
typedef int (*gn_lat_sample_fn)(void *ctx, gn_rng *rng, gn_arch **out, gn_error *err);

/* One held-out network, as gn_lat_profile_build reports it. */
typedef struct {
    int index;
    const gn_arch *arch;
    double measured_ms, predicted_ms, raw_ms; /* measured: speed-normalised when probing */
    int missing;                              /* layers from the fallback */
    bool unstable;                            /* still outside the limits after retries */
} gn_lat_heldout;

typedef struct {
    gn_lat_sample_fn sample;
    void *sample_ctx;
    const char *backend; /* measurements run on fresh backends of this kind ... */
    int threads;         /* ... with this many threads (placement is the caller's) */
    int samples;         /* architectures whose layers fill the table */
    int calib;           /* calibration networks (>= 2) */
    int holdout;         /* held-out evaluation networks */
    int retries;         /* repeats of a measurement outside lim */
    uint64_t seed;       /* streams seed*3 + 0 (table), 1 (calibration), 2 (held-out) */
    gn_lat_limits lim;
    bool probe;          /* the speed probe (design note above) */
    /* progress lines and held-out rows, as they happen; both may be NULL */
    void (*progress)(void *ctx, const char *line);
    void (*heldout)(void *ctx, const gn_lat_heldout *row);
    void *cb_ctx;
} gn_lat_build_opts;

typedef struct {
    int layer_retried, net_retried; /* measurements repeated for instability */
    int outliers;                   /* table entries measured again (far above the fallback) */
    int unstable;                   /* whole-network medians still outside the limits */
    bool probed;
    int n_probes;
    double probe_ms, probe_lo_ms, probe_hi_ms; /* the reference's time and its range */
} gn_lat_build_report;

/* Build a profile (the procedure of `gpunas profile`, src/latency/lat_build.c):
 * p->batch, p->net_opts and p->layer_opts say how to measure; the table, fallback,
 * calibration and evaluation are filled.  A p that is already calibrated (a loaded
 * profile) is only evaluated on o->holdout networks, probing against its
 * speed_probe.ms when o->probe.  p->device and p->space are the caller's. */
int gn_lat_profile_build(gn_lat_profile *p, const gn_lat_build_opts *o, gn_lat_build_report *rep, gn_error *err);
/* Load and validate; on failure p is left empty (initialised). */
int gn_lat_profile_load(const char *path, gn_lat_profile *p, gn_error *err);
int gn_lat_profile_parse(const char *text, const char *source, gn_lat_profile *p, gn_error *err);

#endif
