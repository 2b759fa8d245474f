/*
 * nas_lat.c — the conditions under which the search measures latency, and one
 * candidate's measurement under them.  Why each of these exists is measured in
 * bench/RESULTS.md (issue 18); the short of it, on a 2-vCPU VM of a shared host:
 *
 *   - Threads are part of the target device.  A small network can be slower at 2
 *     threads than at 1 (OpenMP barriers cost more than the halved work saves), and
 *     the cost varies from run to run.  `lat_threads` is a count or GN_THREADS_BEST
 *     (the default): 1, 2, 4, ..., all measured on the reference network in three
 *     interleaved passes when the search starts (gn_lat_threads_best: the fastest
 *     stable count, more threads only when > 10% faster).  The resolved count is kept
 *     in the store's meta ("nas.lat_threads") so a resumed search measures as the
 *     first part did; proxy training uses `threads` (all cores) independently.
 *   - Placement: the measuring threads are pinned one per CPU for the measurement and
 *     unpinned afterwards (gn_lat_measure_on), so training threads are not confined.
 *   - Reference: every candidate is timed interleaved with the built-in reference
 *     network (gn_lat_measure_paired, 10 rounds).  The whole machine speeds up and
 *     slows down between processes seconds apart (the reference's own median moved
 *     1.4-2.3x across 10 back-to-back runs on the development VM), and for small
 *     networks the candidate moves with it (correlation 0.96-1.00), while the
 *     per-round ratio candidate/reference moved only 1.03-1.15x at 1 thread.  So the
 *     search's latency of a candidate is that ratio times the reference's baseline:
 *     its latency in the machine state the search began in (the baseline, the
 *     reference's median over 5 s at the start, is kept in the store's meta as
 *     "nas.lat_reference_ms" and reused by --resume).  A measurement is repeated
 *     (up to 3 attempts, else the least noisy kept) when its robust CV exceeds 15%;
 *     drift is not a reason, since the reference corrects it.  Each measured trial
 *     stores its conditions in latency_info (JSON): how the value was formed, threads,
 *     pinned threads, the raw median and robust CV, the reference's median, the
 *     baseline, the reference's move from it, the ratio with its per-round range,
 *     attempts, stable.  The end of the search reports the range of the moves.
 *     Large networks move less with the reference (GPUNet-0: correlation 0.3-0.9),
 *     so for them the ratio helps less; see bench/RESULTS.md.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpunas/backend.h"
#include "gpunas/latency.h"
#include "nas/nas_internal.h"

#define META_THREADS "nas.lat_threads"
#define META_REF "nas.lat_reference_ms"

static int get_meta_double(gn_store *st, const char *key, double *v, gn_error *err)
{
    char *text = NULL;
    int rc = gn_store_get_meta(st, key, &text, err);
    if (rc != 0)
        return rc; /* -1 error, 1 absent */
    char *end = NULL;
    *v = strtod(text, &end);
    int bad = end == text || *end || !(*v > 0);
    free(text);
    if (bad)
        return gn_error_set(err, "%s: meta '%s' is not a positive number", gn_store_where(st), key);
    return 0;
}

/* Store v under key unless another process (a worker of the same search) stored its
 * own value first: then *v becomes that one, so every process measures alike. */
static int put_meta_double(gn_store *st, const char *key, double *v, gn_error *err)
{
    char text[64], *stored = NULL;
    snprintf(text, sizeof text, "%.17g", *v);
    int rc = gn_store_put_meta_once(st, key, text, &stored, err);
    if (rc == 1) {
        char *end = NULL;
        double w = strtod(stored, &end);
        if (end == stored || *end || !(w > 0))
            rc = gn_error_set(err, "%s: meta '%s' is not a positive number", gn_store_where(st), key);
        else
            *v = w;
    }
    free(stored);
    return rc < 0 ? -1 : 0;
}

int gn__nas_lat_setup(nas_state *s, gn_store *st, gn_error *err)
{
    const gn_nas_config *c = s->c;
    if (s->have_profile)
        return 0;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1)
        ncpu = 1;
    if (gn_lat_reference_arch(&s->ref_arch, err) || gn_net_create(s->ref_arch, s->be, &s->ref_net, err) ||
        gn_net_init(s->ref_net, 1, err))
        return -1;
    double v;
    int rc = get_meta_double(st, META_THREADS, &v, err);
    if (rc < 0)
        return -1;
    if (rc == 0) {
        s->lat_threads = (int)v;
    } else if (c->lat_threads == GN_THREADS_BEST) {
        gn_lat_opts o;
        gn_lat_opts_default(&o);
        o.runs = 30;
        o.min_ms = 1000;
        o.warmup_ms = 200;
        gn_lat_limits lim;
        gn_lat_limits_default(&lim);
        gn_lat_thread_choice tc;
        if (gn_lat_threads_best(s->ref_net, NULL, c->lat_batch, &o, (int)ncpu, 3, c->lat_pin, &lim, &tc, err))
            return -1;
        s->lat_threads = tc.best;
        int n = snprintf(s->lat_note, sizeof s->lat_note, "latency threads: best of");
        for (int i = 0; i < tc.n && n < (int)sizeof s->lat_note; i++)
            n += snprintf(s->lat_note + n, sizeof s->lat_note - n, " %d: %.4f ms (x%.2f%s)%s", tc.threads[i],
                          tc.median[i], tc.spread[i], tc.stable[i] ? "" : ", unstable", i + 1 < tc.n ? "," : "");
        if (n < (int)sizeof s->lat_note)
            snprintf(s->lat_note + n, sizeof s->lat_note - n, " on the reference network -> %d", tc.best);
    } else {
        s->lat_threads = c->lat_threads > 0 ? c->lat_threads : (int)ncpu;
    }
    if (s->lat_threads < 1 || s->lat_threads > 4096)
        return gn_error_set(err, "%s: meta '%s': %d threads", gn_store_where(st), META_THREADS, s->lat_threads);
    if (rc == 1) {
        double t = s->lat_threads;
        if (put_meta_double(st, META_THREADS, &t, err))
            return -1;
        s->lat_threads = (int)t;
    }
    rc = get_meta_double(st, META_REF, &s->ref_base_ms, err);
    if (rc < 0)
        return -1;
    if (rc == 1) {
        gn_lat_opts o;
        gn_lat_opts_default(&o);
        o.min_ms = 5000; /* the median over 5 s: the machine's state moves over seconds */
        o.warmup_ms = 300;
        gn_lat_result r;
        if (gn_lat_measure_on(s->ref_net, NULL, c->lat_batch, &o, s->lat_threads, c->lat_pin, &r, NULL, err))
            return -1;
        s->ref_base_ms = r.compute.median;
        gn_lat_result_free(&r);
        if (put_meta_double(st, META_REF, &s->ref_base_ms, err))
            return -1;
    }
    return 0;
}

void gn__nas_lat_free(nas_state *s)
{
    gn_net_free(s->ref_net);
    gn_arch_free(s->ref_arch);
    s->ref_net = NULL;
    s->ref_arch = NULL;
}

static char *info_json(const nas_state *s, const gn_lat_result *r, const gn_lat_placement *pl, int attempts,
                       int stable)
{
    json_t *o = json_pack("{s:s, s:i, s:i, s:i, s:b, s:f, s:f}", "latency", r->ref.rounds ? "ratio x baseline" : "median",
                          "threads", pl->threads, "pinned", pl->pinned, "attempts", attempts, "stable", stable,
                          "raw_median_ms", r->compute.median, "raw_robust_cv", r->compute.rcv);
    if (o && r->ref.rounds)
        json_object_update_new(o, json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:i}", "reference_ms",
                                            r->ref.compute.median, "reference_baseline_ms", s->ref_base_ms,
                                            "reference_moved", r->ref.compute.median / s->ref_base_ms - 1, "ratio",
                                            r->ref.ratio, "ratio_lo", r->ref.ratio_lo, "ratio_hi", r->ref.ratio_hi,
                                            "rounds", r->ref.rounds));
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(o);
    return text;
}

int gn__nas_lat_measure(nas_state *s, gn_net *net, double *ms, double *spread, char **info, gn_error *err)
{
    const gn_nas_config *c = s->c;
    gn_lat_opts o;
    gn_lat_opts_default(&o);
    o.runs = c->lat_runs;
    o.min_ms = c->lat_min_ms;
    o.warmup_ms = c->lat_warmup_ms;
    o.warmup_runs = 3;
    o.seed = 1;
    gn_net *ref = c->lat_reference ? s->ref_net : NULL;
    gn_lat_limits lim;
    gn_lat_limits_default(&lim);
    lim.min_runs = 3;
    if (ref)
        lim.max_drift = INFINITY; /* a drift of the machine is what the reference corrects */
    gn_lat_result keep;
    gn_lat_placement keep_pl = {0};
    memset(&keep, 0, sizeof keep);
    double keep_score = INFINITY;
    int keep_ok = 0, attempts = 0;
    /* up to 3 attempts: keep the first stable one; else the least noisy (with no
     * reference: the lowest median) */
    for (int attempt = 0; attempt < 3; attempt++) {
        gn_lat_result r;
        gn_lat_placement pl;
        if (gn_lat_measure_on(net, ref, c->lat_batch, &o, s->lat_threads, c->lat_pin, &r, &pl, err)) {
            gn_lat_result_free(&keep);
            return -1;
        }
        attempts++;
        int ok = gn_lat_check_stable(&r.compute, &lim, NULL, 0) == 0;
        double score = ok ? -1 : ref ? r.compute.rcv : r.compute.median;
        if (!ok)
            s->unstable++;
        if (score < keep_score) {
            gn_lat_result_free(&keep);
            keep = r;
            keep_pl = pl;
            keep_score = score;
            keep_ok = ok;
        } else {
            gn_lat_result_free(&r);
        }
        if (ok)
            break;
    }
    if (ref) {
        /* the latency at the machine state of the baseline: the candidate / reference
         * ratio of this measurement times the reference's baseline */
        double scale = s->ref_base_ms / keep.ref.compute.median;
        *ms = keep.ref.ratio * s->ref_base_ms;
        *spread = keep.compute.stddev * scale;
        double moved = keep.ref.compute.median / s->ref_base_ms - 1;
        if (s->ref_n == 0 || moved < s->ref_moved_lo)
            s->ref_moved_lo = moved;
        if (s->ref_n == 0 || moved > s->ref_moved_hi)
            s->ref_moved_hi = moved;
        s->ref_n++;
    } else {
        *ms = keep.compute.median;
        *spread = keep.compute.stddev;
    }
    if (info)
        *info = info_json(s, &keep, &keep_pl, attempts, keep_ok);
    gn_lat_result_free(&keep);
    return 0;
}
