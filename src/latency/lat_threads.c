/*
 * lat_threads.c — a latency measurement with its thread count and placement, and the
 * choice of the thread count ("--threads best").  See gpunas/latency.h, "Threads".
 *
 * gn_lat_measure_on: set the backend's threads, pin the team (one CPU per thread),
 * measure (paired with the reference network when one is given), give the threads
 * their whole CPU mask back — also when the measurement fails, so a search that
 * trains next does not start its data-loader threads on one CPU.
 *
 * gn_lat_threads_best: the candidate counts are 1, 2, 4, ... and the maximum; each is
 * measured `passes` times, the counts interleaved within a pass (1, 2, 1, 2, ...)
 * so a slow phase of the machine hits every count.  Per count: the median of its
 * pass medians, their max/min, and stable = every pass passed the stability limits
 * and max/min <= 1 + 2 max_drift.  The choice: the fastest stable count, where a
 * count with more threads must beat the fewer-thread choice by more than
 * GN_LAT_MORE_THREADS_GAIN (10%); with no stable count the same rule over all counts,
 * flagged unstable.  Why 10%: measured on a 2-vCPU VM, 2 threads add run-to-run
 * variation of their own (the candidate/reference ratio of small networks reproduced
 * within 1.03-1.08x at 1 thread, 1.13-1.23x at 2), so a gain smaller than that is not
 * one a deployment can count on, while the extra threads make every measurement (and
 * the search's tiers) noisier and fragile when anything else runs.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpunas/backend.h"
#include "gpunas/latency.h"

int gn_lat_measure_on(gn_net *net, gn_net *ref, int batch, const gn_lat_opts *o, int threads, int pin,
                      gn_lat_result *r, gn_lat_placement *pl, gn_error *err)
{
    gn_backend *be = gn_net_backend(net);
    memset(r, 0, sizeof *r);
    if (ref && gn_net_backend(ref) != be)
        return gn_error_set(err, "latency: the reference network must run on the measured network's backend");
    if (gn_backend_set_threads(be, threads, err))
        return -1;
    int pinned = 0;
    if (pin && gn_backend_pin_threads(be, 1, &pinned, err))
        return -1;
    int rc = ref ? gn_lat_measure_paired(net, ref, batch, o, GN_LAT_REF_ROUNDS, r, err)
                 : gn_lat_measure(net, batch, o, r, err);
    gn_error e2;
    if (pin && gn_backend_pin_threads(be, 0, NULL, rc ? &e2 : err) && !rc) {
        gn_lat_result_free(r);
        return -1;
    }
    if (pl) {
        pl->threads = threads;
        pl->pinned = pinned;
    }
    return rc;
}

static int candidates(int max_threads, int *t)
{
    int n = 0;
    for (int k = 1; k < max_threads && n < GN_LAT_MAX_CHOICES - 1; k *= 2)
        t[n++] = k;
    t[n++] = max_threads;
    return n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int gn_lat_threads_best(gn_net *net, gn_net *ref, int batch, const gn_lat_opts *o, int max_threads, int passes,
                        int pin, const gn_lat_limits *lim, gn_lat_thread_choice *c, gn_error *err)
{
    memset(c, 0, sizeof *c);
    if (max_threads < 1 || passes < 1 || passes > GN_LAT_MAX_PASSES)
        return gn_error_set(err, "latency: threads best: max threads %d >= 1, passes %d in 1..%d", max_threads,
                            passes, GN_LAT_MAX_PASSES);
    c->n = candidates(max_threads, c->threads);
    c->passes = passes;
    int bad[GN_LAT_MAX_CHOICES] = {0};
    for (int p = 0; p < passes; p++)
        for (int i = 0; i < c->n; i++) {
            gn_lat_result r;
            if (gn_lat_measure_on(net, ref, batch, o, c->threads[i], pin, &r, NULL, err))
                return -1;
            c->pass_median[i][p] = r.compute.median;
            bad[i] |= gn_lat_check_stable(&r.compute, lim, NULL, 0) != 0;
            gn_lat_result_free(&r);
        }
    int best = -1;
    for (int i = 0; i < c->n; i++) {
        double m[GN_LAT_MAX_PASSES];
        memcpy(m, c->pass_median[i], passes * sizeof *m);
        qsort(m, passes, sizeof *m, cmp_double);
        c->median[i] = gn_lat_quantile(m, passes, 0.5);
        c->spread[i] = m[0] > 0 ? m[passes - 1] / m[0] : INFINITY;
        c->stable[i] = !bad[i] && c->spread[i] <= 1 + 2 * lim->max_drift;
    }
    for (int pass = 0; pass < 2 && best < 0; pass++) /* stable ones first, then any */
        for (int i = 0; i < c->n; i++) {
            if (pass == 0 && !c->stable[i])
                continue;
            if (best < 0 || c->median[i] < (1 - GN_LAT_MORE_THREADS_GAIN) * c->median[best])
                best = i;
        }
    c->best = c->threads[best];
    c->best_index = best;
    c->best_stable = c->stable[best];
    return 0;
}
