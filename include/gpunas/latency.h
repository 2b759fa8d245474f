/*
 * gpunas/latency.h — on-device inference latency, measured the way trtexec does it.
 *
 * Design
 *   A measurement runs a network in inference mode (gn_net_prepare_inference: BN
 *   folded, fused post-ops, reused buffers) on a fixed random input:
 *     1. warm-up: runs until BOTH a minimum time (warmup_ms) and a minimum count
 *        (warmup_runs) are reached, so caches, oneDNN primitive creation and the
 *        OpenMP pool are settled before anything is timed;
 *     2. `runs` timed runs; each run reads CLOCK_MONOTONIC four times and records
 *        three separate samples: the host -> input-tensor copy ("h2d"), the
 *        inference itself ("compute", what GPUNet reports as TensorRT's "GPU Compute
 *        Time") and the read of the logits back to the host ("d2h").  On the CPU
 *        backends the copies are memcpy's, but they are still timed apart so a
 *        device backend reports the same split.
 *   Statistics per sample set (gn_lat_stats): median, mean, p10, p25, p75, p90, p99
 *   (linear interpolation between order statistics, numpy's default), min, max,
 *   sample standard deviation, CV = stddev/mean, the robust CV = IQR / (1.349 x
 *   median) (equal to the CV for normal noise, but blind to the rare 10-20x stalls
 *   a preempted thread causes, which inflate the classic CV), a distribution-free
 *   95% confidence interval of the median (order statistics n/2 -+ 0.98 sqrt(n); it
 *   assumes independent runs and so says nothing about slow changes of the machine),
 *   the medians of the first and second half of the runs in run order (their
 *   relative difference is the drift), and the medians of GN_LAT_BLOCKS consecutive
 *   blocks of runs: block_lo .. block_hi is the range a median taken over a tenth of
 *   the measurement would have moved in, the reported spread of the median.
 *
 *   Why blocks and a duration.  On a virtual machine whose host is shared, the
 *   speed of the same inference drifts with the neighbours' load: measured on the
 *   2-vCPU development VM, 0.6 s windows of one 12 s measurement of a 0.19 ms
 *   network had medians from 0.175 to 0.212 ms, and the same 30 networks measured
 *   45-95% slower half an hour later.  Runs within a fraction of a second agree
 *   closely, so the order-statistics CI of a short measurement is narrow and wrong
 *   as a statement of reproducibility.  The timed phase therefore lasts at least
 *   `min_ms` (trtexec's --duration; the CLI default is 10 s), and the block range
 *   shows how far the median moved while it ran.
 *
 *   Stability: gn_lat_check_stable refuses a measurement whose robust CV or drift
 *   exceeds the limits (defaults 15% and 10%) or that has too few runs, with a one-line
 *   reason; the CLI then reports nothing unless --force.  The robust CV catches
 *   noise; drift catches a trend (another process starting, frequency scaling)
 *   that a stable CV can hide.  What no statistic can catch: with as many OpenMP
 *   threads as cores,
 *   a process running beside the measurement deschedules a team thread and every
 *   parallel region waits for it, so times grow many-fold yet may look steady
 *   (small CV) for as long as the other process runs.  Measure on a quiet machine,
 *   or with fewer threads than cores on a shared one.
 *
 *   Reference (gn_lat_measure_paired).  On a shared host the whole machine speeds
 *   up and slows down over seconds to minutes (measured on a 2-vCPU EPYC VM: the
 *   same 1-thread measurement 1.1-1.6x apart between back-to-back processes, with
 *   no steal time in /proc/stat), so two networks measured a minute apart are
 *   compared across machine states.  Timing a fixed reference network in rounds
 *   interleaved with the candidate exposes the state: the reference's median says
 *   how fast the machine was while the candidate ran (callers compare it with a
 *   baseline of the reference and repeat when it moved), and the per-round ratio
 *   candidate/reference, taken within the same second, says how the two compare
 *   under one state.
 *
 *   Per-layer timing (gn_lat_measure_layers) uses gn_net_infer_profile: the same
 *   inference with a clock read around every node, summed per JSON layer; per layer
 *   the median over runs is reported, plus the per-run wall time of the profiled
 *   runs so callers can check that the layers account for the whole run.
 *
 *   Device description (gn_lat_device): CPU model (/proc/cpuinfo "model name"),
 *   physical cores and logical CPUs, the threads used, the backend, the oneDNN
 *   version (dnnl_version()) and the gpunas version; `id` joins them into one string
 *   that names the device in latency profiles (gpunas/latprofile.h).
 *
 *   All times are milliseconds (double).  Nothing prints; errors fill a gn_error.
 */
#ifndef GPUNAS_LATENCY_H
#define GPUNAS_LATENCY_H

#include <stddef.h>
#include <stdint.h>

#include "gpunas/error.h"
#include "gpunas/network.h"

/* ------------------------------------------------------------------ statistics */
#define GN_LAT_BLOCKS 10

typedef struct {
    int n;
    double median, mean, p10, p25, p75, p90, p99, min, max;
    double stddev; /* sample standard deviation (n - 1); 0 when n == 1 */
    double cv;     /* stddev / mean */
    double rcv;    /* robust CV: (p75 - p25) / (1.349 median); 0 when median is 0 */
    int blocks;                   /* consecutive blocks: min(GN_LAT_BLOCKS, n) */
    double block_lo, block_hi;    /* smallest and largest block median */
    double med_lo, med_hi;              /* 95% confidence interval of the median */
    double median_first, median_second; /* medians of the first / second half (run order) */
    double drift;                       /* |median_second - median_first| / median */
} gn_lat_stats;

/* Quantile q in [0,1] of sorted[0..n-1] (ascending), linear interpolation at
 * position q*(n-1) (numpy.percentile's default). */
double gn_lat_quantile(const double *sorted, int n, double q);
/* Statistics of x[0..n-1] in run order (x is not modified); n >= 1, finite values. */
int gn_lat_stats_compute(const double *x, int n, gn_lat_stats *s, gn_error *err);

typedef struct {
    double max_cv;    /* refuse when the robust CV rcv > max_cv (default 0.15) */
    double max_drift; /* refuse when drift > max_drift (default 0.10) */
    int min_runs;     /* refuse when n < min_runs (default 10) */
} gn_lat_limits;

void gn_lat_limits_default(gn_lat_limits *l);
/* 0: stable.  1: not stable, `why` (may be NULL) gets one line naming the failed
 * criterion with its value and limit. */
int gn_lat_check_stable(const gn_lat_stats *s, const gn_lat_limits *l, char *why, size_t why_size);

/* ------------------------------------------------------------------ measurement */
typedef struct {
    int runs;          /* timed runs, at least (default 100) ... */
    double min_ms;     /* ... and the timed phase lasts at least this long (default 0) */
    double warmup_ms;  /* warm-up lasts at least this long (default 500) */
    int warmup_runs;   /* ... and at least this many runs (default 5) */
    uint64_t seed;     /* input data (default 1) */
} gn_lat_opts;

void gn_lat_opts_default(gn_lat_opts *o);

typedef struct {
    int batch;
    gn_lat_stats compute; /* gn_net_infer alone */
    gn_lat_stats h2d;     /* host -> input tensor copy */
    gn_lat_stats d2h;     /* logits -> host copy */
    gn_lat_stats e2e;     /* the three, per run */
    int warmup_done;      /* warm-up runs made */
    double warmup_ms_done;
    size_t input_bytes;   /* the input tensor */
    size_t act_bytes;     /* activation buffers of the inference plan at this batch */
    size_t weight_bytes;  /* folded inference weights */
    double *compute_ms;   /* the compute samples in run order (owned, compute.n values) */
    /* gn_lat_measure_paired only (rounds 0 otherwise): the reference network */
    struct {
        int rounds;            /* rounds of the interleaved timed phase */
        gn_lat_stats compute;  /* the reference's compute samples */
        double ratio;          /* median over rounds of (net median / reference median) */
        double ratio_lo, ratio_hi; /* smallest and largest per-round ratio */
    } ref;
} gn_lat_result;

/* Measure net (any backend) at the given batch; prepares the inference plan from the
 * current weights.  Fills r (free with gn_lat_result_free). */
int gn_lat_measure(gn_net *net, int batch, const gn_lat_opts *o, gn_lat_result *r, gn_error *err);
/* The same, interleaved with a reference network `ref` (same backend and threads) in
 * `rounds` rounds: each round times the reference, then net, for a share of the
 * timed phase (at least 3 runs each, the first run of each block, which finds the
 * other network's weights in the caches, dropped).  r->compute holds net's samples,
 * r->ref the reference's and the per-round ratios (see "Reference" above). */
int gn_lat_measure_paired(gn_net *net, gn_net *ref, int batch, const gn_lat_opts *o, int rounds,
                          gn_lat_result *r, gn_error *err);
void gn_lat_result_free(gn_lat_result *r);
/* The compiled-in reference network (2.87 MMACs at 28x28x1; free with gn_arch_free). */
int gn_lat_reference_arch(gn_arch **out, gn_error *err);

typedef struct {
    int n_layers;        /* = arch->n_layers (index 0, the data layer, is always 0) */
    int runs;
    double *median_ms;   /* per JSON layer: median over runs (owned) */
    double *mean_ms;     /* per JSON layer: mean over runs (owned) */
    double *cv;          /* per JSON layer: coefficient of variation over runs (owned) */
    double sum_median_ms;   /* sum of the per-layer medians */
    gn_lat_stats layer_sum; /* per run: sum over layers */
    gn_lat_stats run;       /* per run: wall time of the whole profiled inference */
} gn_lat_layers;

/* Per-layer times (same warm-up and run count as gn_lat_measure; min_ms is not used). */
int gn_lat_measure_layers(gn_net *net, int batch, const gn_lat_opts *o, gn_lat_layers *r, gn_error *err);
void gn_lat_layers_free(gn_lat_layers *r);

/* ------------------------------------------------------------------ threads */
#define GN_LAT_REF_ROUNDS 10   /* rounds of a paired measurement */
#define GN_THREADS_BEST (-1)   /* a thread-count option's value for "best" */
#define GN_LAT_MAX_CHOICES 16  /* thread counts gn_lat_threads_best tries at most */
#define GN_LAT_MAX_PASSES 9
#define GN_LAT_MORE_THREADS_GAIN 0.10 /* more threads must be this much faster */

typedef struct {
    int threads; /* intra-op threads of the measurement */
    int pinned;  /* threads pinned one per CPU (0: unpinned) */
} gn_lat_placement;

/* One measurement at `threads` threads (gn_backend_set_threads on net's backend),
 * pinned when pin != 0 (gn_backend_pin_threads, undone afterwards), paired with ref
 * when ref != NULL (GN_LAT_REF_ROUNDS rounds).  pl may be NULL. */
int gn_lat_measure_on(gn_net *net, gn_net *ref, int batch, const gn_lat_opts *o, int threads, int pin,
                      gn_lat_result *r, gn_lat_placement *pl, gn_error *err);

typedef struct {
    int n, passes;                      /* thread counts tried; passes over them */
    int threads[GN_LAT_MAX_CHOICES];    /* 1, 2, 4, ..., max */
    double pass_median[GN_LAT_MAX_CHOICES][GN_LAT_MAX_PASSES];
    double median[GN_LAT_MAX_CHOICES];  /* median of the pass medians */
    double spread[GN_LAT_MAX_CHOICES];  /* max / min of the pass medians */
    int stable[GN_LAT_MAX_CHOICES];
    int best, best_index, best_stable;  /* the chosen count, its index, whether stable */
} gn_lat_thread_choice;

/* `--threads best`: measure net at 1, 2, 4, ..., max_threads threads in `passes`
 * interleaved passes (each with options o) and choose the fastest stable count,
 * more threads only when > 10% faster (design in lat_threads.c). */
int gn_lat_threads_best(gn_net *net, gn_net *ref, int batch, const gn_lat_opts *o, int max_threads, int passes,
                        int pin, const gn_lat_limits *lim, gn_lat_thread_choice *c, gn_error *err);

/* ------------------------------------------------------------------ device */
typedef struct {
    char kind[16];       /* "cpu" */
    char cpu_model[128]; /* /proc/cpuinfo "model name" ("unknown" if absent) */
    int cores;           /* physical cores (distinct physical id/core id; else logical) */
    int logical_cpus;    /* online logical CPUs */
    int threads;         /* intra-op threads used for the measurement */
    int pinned;          /* of them pinned one per CPU (0: unpinned) */
    char backend[16];    /* "dnnl", "ref" */
    char onednn[32];     /* "2.6.3" */
    char gpunas[16];     /* gpunas version */
    char id[320];        /* all of the above in one line */
} gn_lat_device;

/* Describe this machine for `backend` run with `threads` threads (<= 0: all logical
 * CPUs).  Only "cpu" devices exist today. */
int gn_lat_device_detect(const char *backend, int threads, gn_lat_device *d, gn_error *err);
/* Rebuild d->id from the other fields. */
void gn_lat_device_make_id(gn_lat_device *d);
/* The device class of d: what makes two machines' latencies the same quantity — kind,
 * CPU model, cores / cpus, backend and its runtime version, precision (fp32); not the
 * host, the threads or the gpunas version.  A search measures on one class. */
void gn_lat_device_class(const gn_lat_device *d, char *buf, size_t n);

#endif
