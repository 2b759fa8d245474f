/*
 * lat_measure.c — warm-up and timed runs of a network's inference path
 * (see gpunas/latency.h).
 *
 * One run = copy a fixed host input into the input tensor, gn_net_infer, copy the
 * logits back; CLOCK_MONOTONIC is read between the three steps so the copies are
 * reported apart from the compute time.  The warm-up makes full runs until both
 * its time and its count minimum are met.  The input is N(0,1) noise from a seeded
 * gn_rng, so every measurement of a network sees the same data.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpunas/latency.h"
#include "gpunas/rng.h"
#include "util/clock.h"

void gn_lat_opts_default(gn_lat_opts *o)
{
    o->runs = 100;
    o->min_ms = 0;
    o->warmup_ms = 500;
    o->warmup_runs = 5;
    o->seed = 1;
}


/* Input tensor and host buffers shared by both measurements. */
typedef struct {
    gn_tensor x;
    float *hx, *hy;
    size_t nx, ny;
} bench_io;

static void io_free(bench_io *io)
{
    gn_tensor_free(&io->x);
    free(io->hx);
    free(io->hy);
    memset(io, 0, sizeof *io);
}

static int io_setup(gn_net *net, int batch, const gn_lat_opts *o, bench_io *io, gn_error *err)
{
    memset(io, 0, sizeof *io);
    const gn_arch *a = gn_net_arch(net);
    if (batch < 1)
        return gn_error_set(err, "%s: batch %d must be >= 1", a->source, batch);
    if (o->runs < 1 || o->warmup_runs < 0 || !(o->warmup_ms >= 0) || !(o->min_ms >= 0))
        return gn_error_set(err,
                            "%s: latency options: runs %d must be >= 1, warm-up runs %d, warm-up time %g ms and "
                            "duration %g ms >= 0",
                            a->source, o->runs, o->warmup_runs, o->warmup_ms, o->min_ms);
    int c = a->layers[1].in_ch, r = a->resolution;
    if (gn_tensor_alloc(&io->x, gn_net_backend(net), batch, c, r, r, err))
        return -1;
    io->nx = gn_tensor_numel(&io->x);
    io->ny = (size_t)batch * a->layers[a->n_layers - 1].num_classes;
    io->hx = malloc(io->nx * sizeof *io->hx);
    io->hy = malloc(io->ny * sizeof *io->hy);
    if (!io->hx || !io->hy) {
        io_free(io);
        return gn_error_set(err, "%s: out of memory for the batch-%d input", a->source, batch);
    }
    gn_rng rng;
    gn_rng_seed(&rng, o->seed);
    for (size_t i = 0; i < io->nx; i++)
        io->hx[i] = (float)gn_rng_normal(&rng);
    if (gn_net_prepare_inference(net, err)) {
        io_free(io);
        return -1;
    }
    return 0;
}

/* One full run; per-step times in ms (any may be NULL). layer_ns: profile mode. */
static int one_run(gn_net *net, bench_io *io, int64_t *layer_ns, double *t_h2d, double *t_cmp, double *t_d2h,
                   gn_error *err)
{
    const gn_tensor *logits;
    double t0 = gn__now_ms();
    if (gn_tensor_from_host(&io->x, io->hx, err))
        return -1;
    double t1 = gn__now_ms();
    int rc = layer_ns ? gn_net_infer_profile(net, &io->x, &logits, layer_ns, err)
                      : gn_net_infer(net, &io->x, &logits, err);
    if (rc)
        return -1;
    double t2 = gn__now_ms();
    if (gn_tensor_numel(logits) != io->ny)
        return gn_error_set(err, "%s: logits have %zu values, expected %zu", gn_net_arch(net)->source,
                            gn_tensor_numel(logits), io->ny);
    if (gn_tensor_to_host(logits, io->hy, err))
        return -1;
    double t3 = gn__now_ms();
    if (t_h2d)
        *t_h2d = t1 - t0;
    if (t_cmp)
        *t_cmp = t2 - t1;
    if (t_d2h)
        *t_d2h = t3 - t2;
    return 0;
}

static int warm_up(gn_net *net, bench_io *io, const gn_lat_opts *o, int64_t *layer_ns, int *done, double *ms,
                   gn_error *err)
{
    double start = gn__now_ms();
    int k = 0;
    while (k < o->warmup_runs || gn__now_ms() - start < o->warmup_ms) {
        if (one_run(net, io, layer_ns, NULL, NULL, NULL, err))
            return -1;
        k++;
    }
    *done = k;
    *ms = gn__now_ms() - start;
    return 0;
}

void gn_lat_result_free(gn_lat_result *r)
{
    free(r->compute_ms);
    memset(r, 0, sizeof *r);
}

/* Grow the four sample arrays to hold cap values. */
static int grow(double **arr[4], int cap)
{
    for (int k = 0; k < 4; k++) {
        double *p = realloc(*arr[k], (size_t)cap * sizeof *p);
        if (!p)
            return -1;
        *arr[k] = p;
    }
    return 0;
}

int gn_lat_measure(gn_net *net, int batch, const gn_lat_opts *o, gn_lat_result *r, gn_error *err)
{
    memset(r, 0, sizeof *r);
    bench_io io;
    if (io_setup(net, batch, o, &io, err))
        return -1;
    int cap = o->runs, n = 0, rc = -1;
    double *h2d = NULL, *cmp = NULL, *d2h = NULL, *e2e = NULL;
    double **arr[4] = {&h2d, &cmp, &d2h, &e2e};
    if (grow(arr, cap)) {
        gn_error_set(err, "%s: out of memory for %d samples", gn_net_arch(net)->source, cap);
        goto out;
    }
    if (warm_up(net, &io, o, NULL, &r->warmup_done, &r->warmup_ms_done, err))
        goto out;
    /* at least o->runs runs and at least o->min_ms of timed phase */
    double start = gn__now_ms();
    while (n < o->runs || gn__now_ms() - start < o->min_ms) {
        if (n == cap) {
            if (cap > (1 << 28) || grow(arr, 2 * cap)) {
                gn_error_set(err, "%s: out of memory for %d samples", gn_net_arch(net)->source, 2 * cap);
                goto out;
            }
            cap *= 2;
        }
        if (one_run(net, &io, NULL, &h2d[n], &cmp[n], &d2h[n], err))
            goto out;
        e2e[n] = h2d[n] + cmp[n] + d2h[n];
        n++;
    }
    if (gn_lat_stats_compute(cmp, n, &r->compute, err) || gn_lat_stats_compute(h2d, n, &r->h2d, err) ||
        gn_lat_stats_compute(d2h, n, &r->d2h, err) || gn_lat_stats_compute(e2e, n, &r->e2e, err))
        goto out;
    r->batch = batch;
    r->input_bytes = io.nx * sizeof(float);
    r->act_bytes = gn_net_infer_activation_bytes(net);
    r->weight_bytes = gn_net_infer_weight_bytes(net);
    r->compute_ms = cmp;
    cmp = NULL;
    rc = 0;
out:
    free(h2d);
    free(cmp);
    free(d2h);
    free(e2e);
    io_free(&io);
    return rc;
}

void gn_lat_layers_free(gn_lat_layers *r)
{
    free(r->median_ms);
    free(r->mean_ms);
    free(r->cv);
    memset(r, 0, sizeof *r);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int gn_lat_measure_layers(gn_net *net, int batch, const gn_lat_opts *o, gn_lat_layers *r, gn_error *err)
{
    memset(r, 0, sizeof *r);
    bench_io io;
    if (io_setup(net, batch, o, &io, err))
        return -1;
    int L = gn_net_arch(net)->n_layers, n = o->runs, rc = -1;
    int64_t *ns = calloc((size_t)L, sizeof *ns);
    double *t = malloc((size_t)n * L * sizeof *t), *sum = malloc(n * sizeof *sum), *run = malloc(n * sizeof *run),
           *col = malloc(n * sizeof *col);
    r->median_ms = calloc((size_t)L, sizeof *r->median_ms);
    r->mean_ms = calloc((size_t)L, sizeof *r->mean_ms);
    r->cv = calloc((size_t)L, sizeof *r->cv);
    if (!ns || !t || !sum || !run || !col || !r->median_ms || !r->mean_ms || !r->cv) {
        gn_error_set(err, "%s: out of memory for %d x %d layer samples", gn_net_arch(net)->source, n, L);
        goto out;
    }
    int wd;
    double wms;
    if (warm_up(net, &io, o, ns, &wd, &wms, err))
        goto out;
    for (int i = 0; i < n; i++) {
        memset(ns, 0, (size_t)L * sizeof *ns);
        if (one_run(net, &io, ns, NULL, &run[i], NULL, err))
            goto out;
        sum[i] = 0;
        for (int l = 0; l < L; l++) {
            t[(size_t)i * L + l] = ns[l] * 1e-6;
            sum[i] += ns[l] * 1e-6;
        }
    }
    for (int l = 0; l < L; l++) {
        double m = 0;
        for (int i = 0; i < n; i++) {
            col[i] = t[(size_t)i * L + l];
            m += col[i];
        }
        qsort(col, n, sizeof *col, cmp_double);
        r->median_ms[l] = gn_lat_quantile(col, n, 0.5);
        r->mean_ms[l] = m / n;
        double ss = 0;
        for (int i = 0; i < n; i++)
            ss += (col[i] - r->mean_ms[l]) * (col[i] - r->mean_ms[l]);
        r->cv[l] = n > 1 && r->mean_ms[l] > 0 ? sqrt(ss / (n - 1)) / r->mean_ms[l] : 0.0;
        r->sum_median_ms += r->median_ms[l];
    }
    if (gn_lat_stats_compute(sum, n, &r->layer_sum, err) || gn_lat_stats_compute(run, n, &r->run, err))
        goto out;
    r->n_layers = L;
    r->runs = n;
    rc = 0;
out:
    if (rc)
        gn_lat_layers_free(r);
    free(ns);
    free(t);
    free(sum);
    free(run);
    free(col);
    io_free(&io);
    return rc;
}

/* ------------------------------------------------------------------ paired */
/* Sample arrays that grow: cmp always, h2d/d2h/e2e when h2d is non-NULL. */
typedef struct {
    double *h2d, *cmp, *d2h, *e2e;
    int n, cap;
    int full; /* all four */
} samples;

static int samples_push(samples *sm, double a, double b, double c)
{
    if (sm->n == sm->cap) {
        int cap = sm->cap ? 2 * sm->cap : 256;
        if (cap > (1 << 28))
            return -1;
        double **arr[4] = {&sm->cmp, &sm->h2d, &sm->d2h, &sm->e2e};
        for (int k = 0; k < (sm->full ? 4 : 1); k++) {
            double *p = realloc(*arr[k], (size_t)cap * sizeof *p);
            if (!p)
                return -1;
            *arr[k] = p;
        }
        sm->cap = cap;
    }
    sm->cmp[sm->n] = b;
    if (sm->full)
        sm->h2d[sm->n] = a, sm->d2h[sm->n] = c, sm->e2e[sm->n] = a + b + c;
    sm->n++;
    return 0;
}

static void samples_free(samples *sm)
{
    free(sm->h2d);
    free(sm->cmp);
    free(sm->d2h);
    free(sm->e2e);
    memset(sm, 0, sizeof *sm);
}

/* One block: an untimed run that reloads net's weights into the caches, then timed
 * runs until both `k` runs and `ms` milliseconds are reached. */
static int block(gn_net *net, bench_io *io, int k, double ms, samples *sm, gn_error *err)
{
    if (one_run(net, io, NULL, NULL, NULL, NULL, err))
        return -1;
    double start = gn__now_ms();
    for (int i = 0; i < k || gn__now_ms() - start < ms; i++) {
        double a = 0, b = 0, c = 0;
        if (one_run(net, io, NULL, &a, &b, &c, err))
            return -1;
        if (samples_push(sm, a, b, c))
            return gn_error_set(err, "%s: out of memory for %d samples", gn_net_arch(net)->source, 2 * sm->n);
    }
    return 0;
}

static double block_median(const double *x, int n, double *tmp)
{
    memcpy(tmp, x, (size_t)n * sizeof *tmp);
    qsort(tmp, n, sizeof *tmp, cmp_double);
    return gn_lat_quantile(tmp, n, 0.5);
}

int gn_lat_measure_paired(gn_net *net, gn_net *ref, int batch, const gn_lat_opts *o, int rounds,
                          gn_lat_result *r, gn_error *err)
{
    memset(r, 0, sizeof *r);
    if (rounds < 1 || rounds > 10000)
        return gn_error_set(err, "%s: latency: %d reference rounds (1..10000)", gn_net_arch(net)->source, rounds);
    bench_io io, rio;
    if (io_setup(net, batch, o, &io, err))
        return -1;
    if (io_setup(ref, batch, o, &rio, err)) {
        io_free(&io);
        return -1;
    }
    int rc = -1, wd;
    double wms;
    samples sn = {.full = 1}, sr = {0};
    double *tmp = NULL, *ratio = NULL;
    if (warm_up(ref, &rio, o, NULL, &wd, &wms, err) ||
        warm_up(net, &io, o, NULL, &r->warmup_done, &r->warmup_ms_done, err))
        goto out;
    /* each block: at least max(3, runs / rounds) runs and min_ms / (2 rounds) ms, so
     * the timed phase as a whole lasts at least min_ms and net gets >= runs runs */
    int k = (o->runs + rounds - 1) / rounds;
    k = k < 3 ? 3 : k;
    double share = o->min_ms / (2.0 * rounds);
    if (!(ratio = malloc((size_t)rounds * sizeof *ratio))) {
        gn_error_set(err, "%s: out of memory", gn_net_arch(net)->source);
        goto out;
    }
    for (int i = 0; i < rounds; i++) {
        int r0 = sr.n, n0 = sn.n;
        if (block(ref, &rio, k, share, &sr, err) || block(net, &io, k, share, &sn, err))
            goto out;
        int need = sr.n - r0 > sn.n - n0 ? sr.n - r0 : sn.n - n0;
        double *t2 = realloc(tmp, (size_t)need * sizeof *t2);
        if (!t2) {
            gn_error_set(err, "%s: out of memory", gn_net_arch(net)->source);
            goto out;
        }
        tmp = t2;
        double mr = block_median(sr.cmp + r0, sr.n - r0, tmp), mn = block_median(sn.cmp + n0, sn.n - n0, tmp);
        ratio[i] = mr > 0 ? mn / mr : 0.0;
    }
    if (gn_lat_stats_compute(sn.cmp, sn.n, &r->compute, err) || gn_lat_stats_compute(sn.h2d, sn.n, &r->h2d, err) ||
        gn_lat_stats_compute(sn.d2h, sn.n, &r->d2h, err) || gn_lat_stats_compute(sn.e2e, sn.n, &r->e2e, err) ||
        gn_lat_stats_compute(sr.cmp, sr.n, &r->ref.compute, err))
        goto out;
    qsort(ratio, rounds, sizeof *ratio, cmp_double);
    r->ref.rounds = rounds;
    r->ref.ratio = gn_lat_quantile(ratio, rounds, 0.5);
    r->ref.ratio_lo = ratio[0];
    r->ref.ratio_hi = ratio[rounds - 1];
    r->batch = batch;
    r->input_bytes = io.nx * sizeof(float);
    r->act_bytes = gn_net_infer_activation_bytes(net);
    r->weight_bytes = gn_net_infer_weight_bytes(net);
    r->compute_ms = sn.cmp;
    sn.cmp = NULL;
    rc = 0;
out:
    samples_free(&sn);
    samples_free(&sr);
    free(tmp);
    free(ratio);
    io_free(&io);
    io_free(&rio);
    return rc;
}
