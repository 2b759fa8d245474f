/*
 * cmd_latency.c — `gpunas latency` (measure one config's inference latency, like
 * trtexec) and `gpunas profile` (build a device profile: lookup table, calibrated
 * predictor, held-out evaluation; see gpunas/latency.h and gpunas/latprofile.h).
 *
 * latency: load the config (with --res), build the network on the dnnl backend
 * with --threads, initialise it from a seed, measure (warm-up, timed runs, compute
 * apart from the copies), check stability and refuse to report an unstable result
 * unless --force; optionally per-layer times (--per-layer) and the prediction of a
 * device profile (--profile).  Memory: folded weights and the activation buffers of
 * the inference plan at that batch, plus the input tensor.
 *
 * profile: see cmd_profile below; architectures come from a search space
 * (--space NAME|FILE) or from random per-layer perturbations of a config (--base).
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "gpunas/arch.h"
#include "gpunas/latency.h"
#include "gpunas/latprofile.h"
#include "gpunas/network.h"
#include "gpunas/rng.h"
#include "gpunas/space.h"
#include "util/clock.h"

/* ------------------------------------------------------------------ shared */
static const char *mib(size_t bytes, char *buf, size_t n)
{
    snprintf(buf, n, "%.2f MiB", bytes / 1048576.0);
    return buf;
}

static json_t *stats_json(const gn_lat_stats *s)
{
    json_t *j = json_pack("{s:i, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f}", "n", s->n, "median_ms",
                          s->median, "mean_ms", s->mean, "p90_ms", s->p90, "p99_ms", s->p99, "min_ms", s->min,
                          "max_ms", s->max, "stddev_ms", s->stddev, "cv", s->cv, "median_ci95_lo_ms", s->med_lo,
                          "median_ci95_hi_ms", s->med_hi, "median_first_half_ms", s->median_first,
                          "median_second_half_ms", s->median_second);
    json_object_update_new(j, json_pack("{s:f, s:f, s:f, s:f, s:i, s:f, s:f}", "p10_ms", s->p10, "p25_ms", s->p25,
                                        "p75_ms", s->p75, "robust_cv", s->rcv, "blocks", s->blocks,
                                        "block_median_lo_ms", s->block_lo, "block_median_hi_ms", s->block_hi));
    return j;
}

static void print_stats(const char *what, const gn_lat_stats *s)
{
    printf("%-14s median %.4f  mean %.4f  p10 %.4f  p90 %.4f  p99 %.4f  min %.4f  max %.4f  CV %.1f%% (robust "
           "%.1f%%)\n",
           what, s->median, s->mean, s->p10, s->p90, s->p99, s->min, s->max, 100 * s->cv, 100 * s->rcv);
}

static int setup_backend(const char *cmd, const char *backend, int threads, gn_backend **be, gn_lat_device *dev)
{
    gn_error err;
    if (gn_backend_create(backend, be, &err)) {
        cli_error(cmd, "%s", err.msg);
        return -1;
    }
    if (gn_backend_set_threads(*be, threads, &err) || gn_lat_device_detect(backend, threads, dev, &err)) {
        cli_error(cmd, "%s", err.msg);
        gn_backend_destroy(*be);
        *be = NULL;
        return -1;
    }
    return 0;
}

/* The options `latency` and `profile` share: --batch, --res, --threads, and for the
 * (whole-network) measurement --runs, --duration S, --warmup-ms, --max-cv PCT and
 * --max-drift PCT.  Returns true when `a` is one of them (*rc: its parse result,
 * *i advanced past the value). */
static bool parse_measure_opt(const char *cmd, const char *a, const char *v, int *i, int *batch, int *res,
                              int *threads, gn_lat_opts *mo, gn_lat_limits *lim, int *rc)
{
    double d = 0;
    if (strcmp(a, "--batch") == 0)
        *rc = cli_parse_int(cmd, a, v, 1, 65536, batch);
    else if (strcmp(a, "--res") == 0)
        *rc = cli_parse_int(cmd, a, v, 1, 16384, res);
    else if (strcmp(a, "--threads") == 0 && v && strcmp(v, "best") == 0)
        *threads = GN_THREADS_BEST;
    else if (strcmp(a, "--threads") == 0)
        *rc = cli_parse_int(cmd, a, v, 1, 4096, threads);
    else if (strcmp(a, "--runs") == 0)
        *rc = cli_parse_int(cmd, a, v, 1, 10000000, &mo->runs);
    else if (strcmp(a, "--duration") == 0)
        *rc = cli_parse_double(cmd, a, v, 0, 86400, &d), mo->min_ms = 1000 * d;
    else if (strcmp(a, "--warmup-ms") == 0)
        *rc = cli_parse_double(cmd, a, v, 0, 3.6e6, &mo->warmup_ms);
    else if (strcmp(a, "--max-cv") == 0)
        *rc = cli_parse_double(cmd, a, v, 0, 1e6, &d), lim->max_cv = d / 100;
    else if (strcmp(a, "--max-drift") == 0)
        *rc = cli_parse_double(cmd, a, v, 0, 1e6, &d), lim->max_drift = d / 100;
    else
        return false;
    (*i)++;
    return true;
}

/* ------------------------------------------------------------------ latency */
typedef struct {
    const char *config, *profile, *backend;
    int batch, res, threads;
    gn_lat_opts mo;
    gn_lat_limits lim;
    bool per_layer, json, force, no_pin, no_reference;
} lat_opts;

static const char *latency_usage =
    "usage: gpunas latency CONFIG.json [--batch B] [--res R] [--threads N|best] [--runs N]\n"
    "         [--duration S] [--warmup-ms M] [--warmup-runs N] [--device cpu] [--backend dnnl|ref]\n"
    "         [--per-layer] [--json] [--force] [--max-cv PCT] [--max-drift PCT]\n"
    "         [--seed S] [--profile DEVICE.json] [--no-pin] [--no-reference]\n"
    "  Inference latency (BN folded, fused ops) after a warm-up: median, mean, p90, p99,\n"
    "  min, max and CV of the compute time, with the input copy and output read timed\n"
    "  apart; peak activation and weight memory at that batch; params and MACs.\n"
    "  --batch B        batch size (default 1)\n"
    "  --res R          input resolution (default: the config's)\n"
    "  --threads N      intra-op threads (default: all logical CPUs); 'best': measure\n"
    "                   1, 2, 4, ..., all in 3 interleaved passes (each a tenth of\n"
    "                   --duration, at least 0.5 s), keep the fastest stable count (more threads only\n"
    "                   when > 10% faster), then measure at it\n"
    "  --no-pin         leave the threads unpinned (default: one CPU per thread while\n"
    "                   measuring)\n"
    "  --no-reference   do not interleave the built-in reference network (default: the\n"
    "                   timed phase alternates, in 10 rounds, between the reference and\n"
    "                   CONFIG; the reference's median and the per-round ratio are\n"
    "                   reported so a slow phase of the machine shows)\n"
    "  --runs N         timed runs, at least (default 100) ...\n"
    "  --duration S     ... over at least S seconds (default 10; the machine's speed can\n"
    "                   drift over seconds, and the spread of the median over the\n"
    "                   measurement's 10 consecutive blocks is reported)\n"
    "  --warmup-ms M    warm-up for at least M ms (default 500) ...\n"
    "  --warmup-runs N  ... and at least N runs (default 5)\n"
    "  --device cpu     the only device today\n"
    "  --per-layer      each JSON layer's time, share, GFLOP/s and GB/s\n"
    "  --json           machine-readable output\n"
    "  --force          report even when the measurement is not stable\n"
    "  --max-cv PCT     stability limit on the robust coefficient of variation,\n"
    "                   IQR / (1.349 median) (default 15)\n"
    "  --max-drift PCT  limit on the median change between the two halves (default 10)\n"
    "  --seed S         weight and input seed (default 1)\n"
    "  --profile F      also print the latency predicted by device profile F\n";

static int parse_lat(int argc, char **argv, lat_opts *o)
{
    const char *cmd = "latency";
    memset(o, 0, sizeof *o);
    o->batch = 1;
    o->backend = "dnnl";
    gn_lat_opts_default(&o->mo);
    o->mo.min_ms = 10000;
    gn_lat_limits_default(&o->lim);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (parse_measure_opt(cmd, a, v, &i, &o->batch, &o->res, &o->threads, &o->mo, &o->lim, &rc))
            ;
        else if (strcmp(a, "--warmup-runs") == 0)
            rc = cli_parse_int(cmd, a, v, 0, 10000000, &o->mo.warmup_runs), i++;
        else if (strcmp(a, "--seed") == 0)
            rc = cli_parse_u64(cmd, a, v, &o->mo.seed), i++;
        else if (strcmp(a, "--device") == 0) {
            if (!v) {
                cli_error(cmd, "option %s: missing value", a);
                return -1;
            }
            if (strcmp(v, "cpu") != 0) {
                cli_error(cmd, "option --device: '%s' is not available (devices: cpu)", v);
                return -1;
            }
            i++;
        } else if (strcmp(a, "--backend") == 0) {
            if (!v || (strcmp(v, "dnnl") != 0 && strcmp(v, "ref") != 0)) {
                cli_error(cmd, "option --backend: '%s' is not a CPU backend (dnnl, ref)", v ? v : "");
                return -1;
            }
            o->backend = v;
            i++;
        } else if (strcmp(a, "--profile") == 0) {
            if (!v) {
                cli_error(cmd, "option %s: missing value", a);
                return -1;
            }
            o->profile = v;
            i++;
        } else if (strcmp(a, "--per-layer") == 0)
            o->per_layer = true;
        else if (strcmp(a, "--json") == 0)
            o->json = true;
        else if (strcmp(a, "--force") == 0)
            o->force = true;
        else if (strcmp(a, "--no-pin") == 0)
            o->no_pin = true;
        else if (strcmp(a, "--no-reference") == 0)
            o->no_reference = true;
        else if (a[0] == '-' && a[1]) {
            cli_error(cmd, "unknown option '%s' (see gpunas latency --help)", a);
            return -1;
        } else if (!o->config)
            o->config = a;
        else {
            cli_error(cmd, "unexpected argument '%s'", a);
            return -1;
        }
        if (rc)
            return -1;
    }
    if (!o->config) {
        cli_error(cmd, "missing CONFIG.json argument");
        return -1;
    }
    return 0;
}

/* The profile's table time of layer i (nullable profile: NAN); fb: from the fallback. */
static double table_ms(const gn_lat_profile *prof, const gn_arch *a, int i, bool *fb)
{
    double ms = NAN;
    gn_error err;
    *fb = false;
    if (prof && gn_lat_table_layer_ms(prof, a, i, &ms, fb, &err))
        ms = NAN;
    return ms;
}

static void print_layers_text(const gn_arch *a, const gn_lat_layers *lr, int batch, double whole_median,
                              const gn_lat_profile *prof)
{
    printf("\nper layer (median of %d profiled runs; share of the layer sum%s):\n", lr->runs,
           prof ? "; 'table ms': the profile's isolated time, * = from its fallback model" : "");
    printf("%3s %-10s %-14s %10s %7s %10s %9s %12s", "#", "type", "output", "ms", "share", "GFLOP/s", "GB/s", "MACs");
    printf(prof ? " %10s\n" : "\n", "table ms");
    for (int i = 1; i < a->n_layers; i++) {
        const gn_layer *L = &a->layers[i];
        double ms = lr->median_ms[i];
        char out[32];
        snprintf(out, sizeof out, "%dx%dx%d", L->out_c, L->out_h, L->out_w);
        printf("%3d %-10s %-14s %10.4f %6.1f%% %10.2f %9.2f %12lld", i, gn_layer_type_name(L->type), out, ms,
               lr->sum_median_ms > 0 ? 100 * ms / lr->sum_median_ms : 0.0,
               ms > 0 ? gn_lat_layer_flops(L, batch) / (ms * 1e6) : 0.0,
               ms > 0 ? gn_lat_layer_bytes(L, batch) / (ms * 1e6) : 0.0, (long long)L->macs);
        if (prof) {
            bool fb;
            double t = table_ms(prof, a, i, &fb);
            printf(" %10.4f%s", t, fb ? "*" : "");
        }
        putchar('\n');
    }
    printf("sum of layer medians %.4f ms; per-run layer sum median %.4f ms; profiled run median %.4f ms; "
           "unprofiled compute median %.4f ms\n",
           lr->sum_median_ms, lr->layer_sum.median, lr->run.median, whole_median);
}

static json_t *layers_json(const gn_arch *a, const gn_lat_layers *lr, int batch, const gn_lat_profile *prof)
{
    json_t *arr = json_array();
    for (int i = 1; i < a->n_layers; i++) {
        const gn_layer *L = &a->layers[i];
        double ms = lr->median_ms[i];
        json_array_append_new(
            arr, json_pack("{s:i, s:s, s:[iii], s:f, s:f, s:f, s:f, s:f, s:f, s:I}", "index", i, "layer_type",
                           gn_layer_type_name(L->type), "output", L->out_c, L->out_h, L->out_w, "median_ms", ms,
                           "mean_ms", lr->mean_ms[i], "cv", lr->cv[i], "share",
                           lr->sum_median_ms > 0 ? ms / lr->sum_median_ms : 0.0, "gflops",
                           ms > 0 ? gn_lat_layer_flops(L, batch) / (ms * 1e6) : 0.0, "gbytes_per_s",
                           ms > 0 ? gn_lat_layer_bytes(L, batch) / (ms * 1e6) : 0.0, "macs", (json_int_t)L->macs));
        if (prof) {
            bool fb;
            double t = table_ms(prof, a, i, &fb);
            json_t *row = json_array_get(arr, json_array_size(arr) - 1);
            json_object_set_new(row, "table_ms", isfinite(t) ? json_real(t) : json_null());
            json_object_set_new(row, "table_fallback", json_boolean(fb));
        }
    }
    return arr;
}

static const char *chosen_by(const lat_opts *o)
{
    return o->threads == GN_THREADS_BEST ? "best" : o->threads > 0 ? "option" : "default (all CPUs)";
}

static json_t *threads_json(const lat_opts *o, int threads, const gn_lat_placement *pl,
                            const gn_lat_thread_choice *tc)
{
    json_t *j = json_pack("{s:i, s:i, s:s, s:s}", "count", threads, "pinned", pl->pinned, "placement",
                          pl->pinned ? "one CPU per thread" : "unpinned", "chosen_by", chosen_by(o));
    if (tc->n) {
        json_t *arr = json_array();
        for (int i = 0; i < tc->n; i++) {
            json_t *pm = json_array();
            for (int p = 0; p < tc->passes; p++)
                json_array_append_new(pm, json_real(tc->pass_median[i][p]));
            json_array_append_new(arr, json_pack("{s:i, s:f, s:f, s:b, s:o}", "threads", tc->threads[i],
                                                 "median_ms", tc->median[i], "max_over_min", tc->spread[i],
                                                 "stable", tc->stable[i], "pass_medians_ms", pm));
        }
        json_object_set_new(j, "choice", arr);
        json_object_set_new(j, "choice_stable", json_boolean(tc->best_stable));
    }
    return j;
}

static json_t *reference_json(const gn_lat_result *r)
{
    if (!r->ref.rounds)
        return json_null();
    return json_pack("{s:s, s:f, s:f, s:f, s:i, s:f, s:f, s:f, s:i}", "network", "built-in (2.87 MMACs)", "median_ms",
                     r->ref.compute.median, "block_median_lo_ms", r->ref.compute.block_lo, "block_median_hi_ms",
                     r->ref.compute.block_hi, "runs", r->ref.compute.n, "ratio", r->ref.ratio, "ratio_lo",
                     r->ref.ratio_lo, "ratio_hi", r->ref.ratio_hi, "rounds", r->ref.rounds);
}

static void print_threads(const lat_opts *o, int threads, const gn_lat_placement *pl, const gn_lat_thread_choice *tc)
{
    printf("threads: %d (%s), %s\n", threads, chosen_by(o), pl->pinned ? "pinned, one CPU per thread" : "unpinned");
    for (int i = 0; i < tc->n; i++) {
        printf("  %2d threads: median %.4f ms over %d passes (max/min %.2f)%s%s\n", tc->threads[i], tc->median[i],
               tc->passes, tc->spread[i], tc->stable[i] ? "" : ", not stable",
               i == tc->best_index ? "  <- chosen" : "");
    }
    if (tc->n && !tc->best_stable)
        printf("  no thread count measured stably: the fastest was taken\n");
}

int cmd_latency(int argc, char **argv)
{
    const char *cmd = "latency";
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(latency_usage, stdout);
        return 0;
    }
    lat_opts o;
    if (parse_lat(argc, argv, &o))
        return 2;
    gn_error err;
    gn_arch *a = NULL;
    gn_backend *be = NULL;
    gn_net *net = NULL;
    gn_lat_result r = {0};
    gn_lat_layers lr = {0};
    gn_lat_profile prof;
    gn_lat_profile_init(&prof);
    gn_lat_device dev;
    gn_arch *ra = NULL;
    gn_net *rnet = NULL;
    gn_lat_thread_choice tc = {0};
    int rc = 1;
    if (gn_arch_load(o.config, &a, &err) || (o.res && gn_arch_set_resolution(a, o.res, &err))) {
        cli_error(cmd, "%s", err.msg);
        goto out;
    }
    if (o.profile && gn_lat_profile_load(o.profile, &prof, &err)) {
        cli_error(cmd, "%s", err.msg);
        goto out;
    }
    if (o.profile && !prof.calibrated) {
        cli_error(cmd, "%s: the profile has no calibration", o.profile);
        goto out;
    }
    if (o.profile && prof.batch != o.batch) {
        cli_error(cmd, "%s: the profile was measured at batch %d, not %d", o.profile, prof.batch, o.batch);
        goto out;
    }
    if (setup_backend(cmd, o.backend, o.threads, &be, &dev))
        goto out;
    if (gn_net_create(a, be, &net, &err) || gn_net_init(net, o.mo.seed, &err)) {
        cli_error(cmd, "%s", err.msg);
        goto out;
    }
    if (!o.no_reference && (gn_lat_reference_arch(&ra, &err) || gn_net_create(ra, be, &rnet, &err) ||
                            gn_net_init(rnet, 1, &err))) {
        cli_error(cmd, "reference network: %s", err.msg);
        goto out;
    }
    int threads = o.threads > 0 ? o.threads : dev.logical_cpus;
    if (strcmp(o.backend, "ref") == 0)
        threads = 1;
    else if (o.threads == GN_THREADS_BEST) {
        gn_lat_opts bo = o.mo;
        bo.min_ms = fmax(500, o.mo.min_ms / 10);
        bo.runs = o.mo.runs < 30 ? o.mo.runs : 30;
        bo.warmup_ms = fmin(o.mo.warmup_ms, 200);
        if (gn_lat_threads_best(net, rnet, o.batch, &bo, dev.logical_cpus, 3, !o.no_pin, &o.lim, &tc, &err)) {
            cli_error(cmd, "%s", err.msg);
            goto out;
        }
        threads = tc.best;
    }
    gn_lat_placement pl;
    if (gn_lat_measure_on(net, rnet, o.batch, &o.mo, threads, !o.no_pin, &r, &pl, &err)) {
        cli_error(cmd, "%s", err.msg);
        goto out;
    }
    dev.threads = threads;
    dev.pinned = pl.pinned;
    gn_lat_device_make_id(&dev);
    char why[300];
    bool unstable = gn_lat_check_stable(&r.compute, &o.lim, why, sizeof why) != 0;
    if (unstable && !o.force) {
        cli_error(cmd, "%s: measurement not stable: %s; quiet the machine, raise --duration or --warmup-ms, or pass --force",
                  o.config, why);
        goto out;
    }
    if (o.per_layer && gn_lat_measure_layers(net, o.batch, &o.mo, &lr, &err)) {
        cli_error(cmd, "%s", err.msg);
        goto out;
    }
    double pred = 0;
    int missing = 0;
    if (o.profile && gn_lat_predict(&prof, a, &pred, &missing, &err)) {
        cli_error(cmd, "%s", err.msg);
        goto out;
    }
    double thr = r.compute.median > 0 ? 1e3 * o.batch / r.compute.median : 0;
    if (o.json) {
        json_t *root = json_object();
        json_object_set_new(root, "config", json_string(o.config));
        json_object_set_new(root, "batch", json_integer(o.batch));
        json_object_set_new(root, "resolution", json_integer(a->resolution));
        json_object_set_new(root, "device",
                            json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:s, s:s, s:s}", "id", dev.id, "kind", dev.kind,
                                      "cpu_model", dev.cpu_model, "cores", dev.cores, "logical_cpus", dev.logical_cpus,
                                      "threads", dev.threads, "backend", dev.backend, "onednn", dev.onednn, "gpunas",
                                      dev.gpunas));
        json_object_set_new(root, "threads", threads_json(&o, threads, &pl, &tc));
        json_object_set_new(root, "reference", reference_json(&r));
        json_object_set_new(root, "params", json_integer(a->params));
        json_object_set_new(root, "macs", json_integer(a->macs));
        json_object_set_new(root, "memory",
                            json_pack("{s:I, s:I, s:I}", "weight_bytes", (json_int_t)r.weight_bytes,
                                      "activation_bytes", (json_int_t)r.act_bytes, "input_bytes",
                                      (json_int_t)r.input_bytes));
        json_object_set_new(root, "warmup",
                            json_pack("{s:i, s:f}", "runs", r.warmup_done, "ms", r.warmup_ms_done));
        json_object_set_new(root, "compute", stats_json(&r.compute));
        json_object_set_new(root, "input_copy", stats_json(&r.h2d));
        json_object_set_new(root, "output_read", stats_json(&r.d2h));
        json_object_set_new(root, "end_to_end", stats_json(&r.e2e));
        json_object_set_new(root, "throughput_per_s", json_real(thr));
        json_object_set_new(root, "stable", json_boolean(!unstable));
        json_object_set_new(root, "unstable_reason", unstable ? json_string(why) : json_null());
        json_object_set_new(root, "limits",
                            json_pack("{s:f, s:f, s:i}", "max_cv", o.lim.max_cv, "max_drift", o.lim.max_drift,
                                      "min_runs", o.lim.min_runs));
        json_t *samples = json_array();
        for (int i = 0; i < r.compute.n; i++)
            json_array_append_new(samples, json_real(r.compute_ms[i]));
        json_object_set_new(root, "compute_samples_ms", samples);
        if (o.per_layer) {
            json_object_set_new(root, "layers", layers_json(a, &lr, o.batch, o.profile ? &prof : NULL));
            json_object_set_new(root, "layer_sum_median_ms", json_real(lr.sum_median_ms));
            json_object_set_new(root, "profiled_run", stats_json(&lr.run));
        }
        if (o.profile)
            json_object_set_new(root, "predicted",
                                json_pack("{s:s, s:f, s:i}", "profile", o.profile, "ms", pred, "fallback_layers",
                                          missing));
        if (cli_puts_json(root, 8)) {
            cli_error(cmd, "cannot format the JSON output");
            goto out;
        }
    } else {
        char b1[32], b2[32], b3[32];
        printf("%s: batch %d, %dx%dx%d input, %d layers\n", o.config, o.batch, a->layers[1].in_ch, a->resolution,
               a->resolution, a->n_layers);
        printf("device: %s\n", dev.id);
        print_threads(&o, threads, &pl, &tc);
        printf("network: %lld params, %lld MACs (%.3f GMACs per image)\n", (long long)a->params, (long long)a->macs,
               a->macs / 1e9);
        printf("memory at batch %d: weights %s (folded), activations %s (peak of the buffer plan), input %s\n",
               o.batch, mib(r.weight_bytes, b1, sizeof b1), mib(r.act_bytes, b2, sizeof b2),
               mib(r.input_bytes, b3, sizeof b3));
        printf("warm-up: %d runs in %.1f ms; timed runs: %d\n", r.warmup_done, r.warmup_ms_done, r.compute.n);
        if (unstable)
            printf("WARNING: not stable (%s); reported because of --force\n", why);
        printf("times in ms:\n");
        print_stats("compute", &r.compute);
        print_stats("input copy", &r.h2d);
        print_stats("output read", &r.d2h);
        print_stats("end-to-end", &r.e2e);
        printf("median compute latency: %.4f ms (spread of the median over time: %.4f .. %.4f, the medians of %d "
               "consecutive blocks; halves %.4f / %.4f; 95%% CI of the median if runs were independent %.4f .. "
               "%.4f); %.1f images/s\n",
               r.compute.median, r.compute.block_lo, r.compute.block_hi, r.compute.blocks, r.compute.median_first,
               r.compute.median_second, r.compute.med_lo, r.compute.med_hi, thr);
        if (r.ref.rounds)
            printf("reference network (built in, 2.87 MMACs): median %.4f ms while this ran (blocks %.4f .. %.4f); "
                   "this / reference %.3f (rounds %.3f .. %.3f, %d rounds)\n",
                   r.ref.compute.median, r.ref.compute.block_lo, r.ref.compute.block_hi, r.ref.ratio, r.ref.ratio_lo,
                   r.ref.ratio_hi, r.ref.rounds);
        if (o.profile)
            printf("predicted by %s: %.4f ms (%+.1f%% vs measured; %d layers from the fallback)\n", o.profile, pred,
                   100 * (pred - r.compute.median) / r.compute.median, missing);
        if (o.per_layer)
            print_layers_text(a, &lr, o.batch, r.compute.median, o.profile ? &prof : NULL);
    }
    rc = 0;
out:
    gn_lat_layers_free(&lr);
    gn_lat_result_free(&r);
    gn_lat_profile_free(&prof);
    gn_net_free(net);
    gn_net_free(rnet);
    gn_backend_destroy(be);
    gn_arch_free(a);
    gn_arch_free(ra);
    return rc;
}

/* ------------------------------------------------------------------ profile
 *
 * The procedure (table, calibration, held-out evaluation, speed probe) is the
 * library's gn_lat_profile_build (src/latency/lat_build.c); this command parses the
 * options, picks the architectures' source (--space or --base), the device and its
 * threads, pins them, prints progress to stderr and the held-out table and a summary
 * to stdout, and writes the profile to -o.  --evaluate FILE evaluates an existing
 * profile on this machine.
 */
typedef struct {
    const char *space_name, *base_path, *out, *backend, *evaluate;
    int batch, res, threads, samples, calib, holdout, retries;
    uint64_t seed;
    gn_lat_opts net_opts, layer_opts;
    gn_lat_limits lim;
    bool quiet, no_probe, no_pin;
} prof_opts;

typedef struct {
    gn_space *space;
    int *x;
    gn_arch *base;
    int res;
} arch_src;

static void src_free(arch_src *s)
{
    gn_space_free(s->space);
    free(s->x);
    gn_arch_free(s->base);
}

static int src_open(const prof_opts *o, arch_src *s, char *name, size_t name_size, gn_error *err)
{
    memset(s, 0, sizeof *s);
    s->res = o->res;
    if (o->base_path) {
        if (gn_arch_load(o->base_path, &s->base, err))
            return -1;
        snprintf(name, name_size, "perturbations of %s", o->base_path);
        return 0;
    }
    int rc = (strcmp(o->space_name, "fmnist") == 0 || strcmp(o->space_name, "gpunet") == 0)
                 ? gn_space_builtin(o->space_name, &s->space, err)
                 : gn_space_load(o->space_name, &s->space, err);
    if (rc)
        return -1;
    s->x = calloc(GN_ENC_MAX_DIMS, sizeof *s->x);
    snprintf(name, name_size, "%s", gn_space_name(s->space));
    return 0;
}

static int src_sample(arch_src *s, gn_rng *r, gn_arch **out, gn_error *err)
{
    *out = NULL;
    int rc;
    if (s->base) {
        rc = gn_lat_perturb_arch(s->base, r, out, err);
    } else {
        gn_space_sample_random(s->space, r, s->x);
        rc = gn_space_decode(s->space, s->x, out, err);
    }
    if (rc == 0 && s->res && gn_arch_set_resolution(*out, s->res, err)) {
        gn_arch_free(*out);
        *out = NULL;
        return -1;
    }
    return rc;
}

static const char *profile_usage =
    "usage: gpunas profile --device cpu [--space NAME|FILE | --base CONFIG.json] -o DEVICE.json\n"
    "         [--batch B] [--res R] [--threads N|best] [--samples N] [--calib N] [--holdout N]\n"
    "         [--seed S] [--runs N] [--duration S] [--warmup-ms M] [--layer-runs N] [--layer-warmup-ms M]\n"
    "         [--max-cv PCT] [--max-drift PCT] [--retries N] [--no-speed-probe] [--no-pin] [--quiet]\n"
    "       gpunas profile --evaluate DEVICE.json [--space ... | --base ...] [--holdout N] ...\n"
    "  Measures a latency lookup table for the layers that occur in random members of a\n"
    "  search space (--space fmnist|gpunet|FILE; default fmnist) or of random per-layer\n"
    "  variants of a config (--base), calibrates the predictor on whole networks and\n"
    "  reports its error on held-out networks; writes the device profile to -o.\n"
    "  --samples N        architectures whose layers fill the table (default 2000)\n"
    "  --calib N          calibration networks (default 30)\n"
    "  --holdout N        held-out evaluation networks (default 30)\n"
    "  --seed S           sampling seed (default 1)\n"
    "  --res R            override the architectures' resolution\n"
    "  --runs N, --duration S, --warmup-ms M  whole-network measurements: at least N\n"
    "                     runs over at least S seconds, after M ms (default 100, 0.5, 200)\n"
    "  --layer-runs N, --layer-warmup-ms M  table entries (default 100, 10)\n"
    "  --retries N        measure again (up to N times, keeping the lowest median) a\n"
    "                     layer whose CV or a network whose CV/drift is over the limits\n"
    "                     (default 2); table entries over 3x the fallback model are\n"
    "                     measured twice more as well\n"
    "  --evaluate F       evaluate profile F on this machine instead of building one\n"
    "  --no-speed-probe   do not time the reference network that tracks the machine's\n"
    "                     speed (by default every time is divided by its slow-down\n"
    "                     since the profile's start; see the printed factor range)\n"
    "  --threads best     the thread count that `gpunas latency --threads best` would\n"
    "                     choose for the built-in reference network\n"
    "  --no-pin           leave the threads unpinned (default: one CPU per thread for\n"
    "                     the whole run)\n";

static int parse_prof(int argc, char **argv, prof_opts *o)
{
    const char *cmd = "profile";
    memset(o, 0, sizeof *o);
    o->batch = 1;
    o->samples = 2000;
    o->calib = 30;
    o->holdout = 30;
    o->retries = 2;
    o->seed = 1;
    o->backend = "dnnl";
    gn_lat_opts_default(&o->net_opts);
    o->net_opts.warmup_ms = 200;
    o->net_opts.min_ms = 500;
    gn_lat_opts_default(&o->layer_opts);
    o->layer_opts.runs = 100;
    o->layer_opts.warmup_ms = 10;
    o->layer_opts.warmup_runs = 3;
    gn_lat_limits_default(&o->lim);
    bool device = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (parse_measure_opt(cmd, a, v, &i, &o->batch, &o->res, &o->threads, &o->net_opts, &o->lim, &rc))
            ;
        else if (strcmp(a, "--samples") == 0)
            rc = cli_parse_int(cmd, a, v, 0, 10000000, &o->samples), i++;
        else if (strcmp(a, "--calib") == 0)
            rc = cli_parse_int(cmd, a, v, 3, 10000000, &o->calib), i++;
        else if (strcmp(a, "--holdout") == 0)
            rc = cli_parse_int(cmd, a, v, 0, 10000000, &o->holdout), i++;
        else if (strcmp(a, "--retries") == 0)
            rc = cli_parse_int(cmd, a, v, 0, 100, &o->retries), i++;
        else if (strcmp(a, "--layer-runs") == 0)
            rc = cli_parse_int(cmd, a, v, 1, 10000000, &o->layer_opts.runs), i++;
        else if (strcmp(a, "--layer-warmup-ms") == 0)
            rc = cli_parse_double(cmd, a, v, 0, 3.6e6, &o->layer_opts.warmup_ms), i++;
        else if (strcmp(a, "--seed") == 0)
            rc = cli_parse_u64(cmd, a, v, &o->seed), i++;
        else if (strcmp(a, "--quiet") == 0)
            o->quiet = true;
        else if (strcmp(a, "--no-speed-probe") == 0)
            o->no_probe = true;
        else if (strcmp(a, "--no-pin") == 0)
            o->no_pin = true;
        else if (strcmp(a, "--device") == 0 || strcmp(a, "--space") == 0 || strcmp(a, "--base") == 0 ||
                 strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0 || strcmp(a, "--evaluate") == 0 ||
                 strcmp(a, "--backend") == 0) {
            if (!v) {
                cli_error(cmd, "option %s: missing value", a);
                return -1;
            }
            i++;
            if (strcmp(a, "--device") == 0) {
                if (strcmp(v, "cpu") != 0) {
                    cli_error(cmd, "option --device: '%s' is not available (devices: cpu)", v);
                    return -1;
                }
                device = true;
            } else if (strcmp(a, "--space") == 0)
                o->space_name = v;
            else if (strcmp(a, "--base") == 0)
                o->base_path = v;
            else if (strcmp(a, "--evaluate") == 0)
                o->evaluate = v;
            else if (strcmp(a, "--backend") == 0) {
                if (strcmp(v, "dnnl") != 0 && strcmp(v, "ref") != 0) {
                    cli_error(cmd, "option --backend: '%s' is not a CPU backend (dnnl, ref)", v);
                    return -1;
                }
                o->backend = v;
            } else
                o->out = v;
        } else if (a[0] == '-') {
            cli_error(cmd, "unknown option '%s' (see gpunas profile --help)", a);
            return -1;
        } else {
            cli_error(cmd, "unexpected argument '%s'", a);
            return -1;
        }
        if (rc)
            return -1;
    }
    (void)device; /* cpu is the default and only device */
    if (o->space_name && o->base_path) {
        cli_error(cmd, "give only one of --space NAME|FILE and --base CONFIG.json");
        return -1;
    }
    if (!o->space_name && !o->base_path)
        o->space_name = "fmnist";
    if (!o->out && !o->evaluate) {
        cli_error(cmd, "missing -o DEVICE.json (or --evaluate DEVICE.json)");
        return -1;
    }
    return 0;
}

/* profile --threads best: the device's thread count, chosen on the built-in reference
 * network (gn_lat_threads_best: 3 interleaved passes of 1 s per count) as the search
 * does; o->threads and dev take the choice. */
static int choose_profile_threads(const char *cmd, gn_backend *be, prof_opts *o, gn_lat_device *dev)
{
    gn_error err;
    gn_arch *ra = NULL;
    gn_net *rnet = NULL;
    gn_lat_thread_choice tc;
    gn_lat_opts bo;
    gn_lat_opts_default(&bo);
    bo.runs = 30;
    bo.min_ms = 1000;
    bo.warmup_ms = 200;
    int rc = gn_lat_reference_arch(&ra, &err) || gn_net_create(ra, be, &rnet, &err) || gn_net_init(rnet, 1, &err) ||
             gn_lat_threads_best(rnet, NULL, o->batch, &bo, dev->logical_cpus, 3, 1, &o->lim, &tc, &err) ||
             gn_backend_set_threads(be, tc.best, &err);
    gn_net_free(rnet);
    gn_arch_free(ra);
    if (rc) {
        cli_error(cmd, "--threads best: %s", err.msg);
        return -1;
    }
    o->threads = tc.best;
    dev->threads = tc.best;
    gn_lat_device_make_id(dev);
    fprintf(stderr, "profile: --threads best:");
    for (int i = 0; i < tc.n; i++)
        fprintf(stderr, " %d: %.4f ms (x%.2f%s)", tc.threads[i], tc.median[i], tc.spread[i],
                tc.stable[i] ? "" : ", unstable");
    fprintf(stderr, " on the reference network -> %d threads\n", tc.best);
    return 0;
}

static int sample_cb(void *ctx, gn_rng *r, gn_arch **out, gn_error *err) { return src_sample(ctx, r, out, err); }

static void progress_cb(void *ctx, const char *line)
{
    if (!*(const bool *)ctx)
        fprintf(stderr, "%s\n", line);
}

static void heldout_cb(void *ctx, const gn_lat_heldout *h)
{
    (void)ctx;
    printf("%4d %12.4f %12.4f %+8.2f %8d %14lld %10.4f %+8.2f%s\n", h->index, h->measured_ms, h->predicted_ms,
           100 * (h->predicted_ms - h->measured_ms) / h->measured_ms, h->missing, (long long)h->arch->macs, h->raw_ms,
           100 * (h->predicted_ms - h->raw_ms) / h->raw_ms, h->unstable ? "  (unstable)" : "");
    fflush(stdout);
}

static void print_summary(const prof_opts *o, const gn_lat_profile *p, const gn_lat_build_report *rep)
{
    const gn_lat_eval *ev = &p->eval;
    if (!o->evaluate) {
        printf("table: %d keys (%d architectures sampled); calibration: %s model on %d networks, fit error mean %.2f%% "
               "max %.2f%%, leave-one-out mean %.2f%%\n",
               p->n_entries, o->samples, gn_lat_model_name(p->calib.model), p->calib.networks,
               p->calib.fit_mean_abs_pct, p->calib.fit_max_pct, p->calib.loo_mean_abs_pct);
        printf("calibration: latency = %.4f ms", p->calib.intercept_ms);
        for (int t = 1; t < GN_LAT_NTYPES; t++)
            if (p->calib.model == GN_LAT_MODEL_PER_TYPE || t == 1)
                printf(" + %.4f x %s", p->calib.scale[t],
                       p->calib.model == GN_LAT_MODEL_PER_TYPE ? gn_layer_type_name((gn_layer_type)t) : "table sum");
        printf("\n");
    }
    if (o->holdout)
        printf("held-out: %d networks, mean |error| %.2f%%, max |error| %.2f%%%s; %d of %d layers from the fallback\n",
               ev->networks, ev->mean_abs_pct, ev->max_pct, rep->probed ? " (speed-normalised measurements)" : "",
               ev->missing, ev->layers);
    if (o->holdout && rep->probed)
        printf("held-out against the raw measurements: mean |error| %.2f%%, max |error| %.2f%%\n", ev->raw_mean_abs_pct,
               ev->raw_max_pct);
    if (rep->probed)
        printf("speed probe: reference network %.4f ms (%s); %d probes from %.4f to %.4f ms, speed factor %.3f .. "
               "%.3f (time then / reference)\n",
               rep->probe_ms, o->evaluate ? "the profile's" : "median of the table and calibration probes",
               rep->n_probes, rep->probe_lo_ms, rep->probe_hi_ms, rep->probe_lo_ms / rep->probe_ms,
               rep->probe_hi_ms / rep->probe_ms);
    printf("measurement: %d layer and %d network measurements repeated for instability, %d table outliers "
           "re-measured",
           rep->layer_retried, rep->net_retried, rep->outliers);
    if (rep->unstable)
        printf("; %d whole-network medians still outside the stability limits (robust CV %.0f%%, drift %.0f%%)",
               rep->unstable, 100 * o->lim.max_cv, 100 * o->lim.max_drift);
    printf("\n");
}

int cmd_profile(int argc, char **argv)
{
    const char *cmd = "profile";
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(profile_usage, stdout);
        return 0;
    }
    prof_opts o;
    if (parse_prof(argc, argv, &o))
        return 2;
    gn_error err;
    arch_src src;
    gn_backend *be = NULL;
    gn_lat_profile p;
    gn_lat_profile_init(&p);
    gn_lat_device dev;
    int rc = 1, pinned = 0;
    char sname[128];
    if (src_open(&o, &src, sname, sizeof sname, &err)) {
        cli_error(cmd, "%s", err.msg);
        memset(&src, 0, sizeof src);
        goto out;
    }
    if (setup_backend(cmd, o.backend, o.threads, &be, &dev))
        goto out;
    if (o.threads == GN_THREADS_BEST && choose_profile_threads(cmd, be, &o, &dev))
        goto out;
    if (strcmp(o.backend, "ref") != 0 && !o.no_pin && gn_backend_pin_threads(be, 1, &pinned, &err)) {
        cli_error(cmd, "%s", err.msg);
        goto out;
    }
    dev.pinned = pinned;
    bool probe = !o.no_probe;
    if (o.evaluate) {
        if (gn_lat_profile_load(o.evaluate, &p, &err)) {
            cli_error(cmd, "%s", err.msg);
            goto out;
        }
        if (!p.calibrated) {
            cli_error(cmd, "%s: the profile has no calibration", o.evaluate);
            goto out;
        }
        if (p.batch != o.batch) {
            cli_error(cmd, "%s: the profile was measured at batch %d, not %d", o.evaluate, p.batch, o.batch);
            goto out;
        }
        if (!o.quiet)
            fprintf(stderr, "evaluating %s (device: %s) on %s\n", o.evaluate, p.device.id, dev.id);
        if (probe && !(p.probe_ms > 0)) {
            probe = false;
            if (!o.quiet)
                fprintf(stderr, "%s has no speed probe: measurements are not normalised\n", o.evaluate);
        }
    } else {
        p.device = dev;
        p.batch = o.batch;
        snprintf(p.space, sizeof p.space, "%s", sname);
        if (o.res)
            snprintf(p.space + strlen(p.space), sizeof p.space - strlen(p.space), " @%d", o.res);
        p.net_opts = o.net_opts;
        p.layer_opts = o.layer_opts;
        if (!o.quiet)
            fprintf(stderr, "profile of %s on %s, batch %d\n", p.space, dev.id, o.batch);
    }
    if (o.holdout)
        printf("%4s %12s %12s %8s %8s %14s %10s %8s\n", "net", "measured_ms", "predicted_ms", "error%", "missing",
               "MACs", "raw_ms", "raw_err%");
    gn_lat_build_opts bo = {.sample = sample_cb, .sample_ctx = &src, .backend = o.backend, .threads = o.threads,
                            .samples = o.samples, .calib = o.calib, .holdout = o.holdout, .retries = o.retries,
                            .seed = o.seed, .lim = o.lim, .probe = probe, .progress = progress_cb,
                            .heldout = heldout_cb, .cb_ctx = &o.quiet};
    gn_lat_build_report rep;
    if (gn_lat_profile_build(&p, &bo, &rep, &err)) {
        cli_error(cmd, "%s", err.msg);
        goto out;
    }
    print_summary(&o, &p, &rep);
    if (o.out) {
        if (gn_lat_profile_save(&p, o.out, &err)) {
            cli_error(cmd, "%s", err.msg);
            goto out;
        }
        printf("wrote %s\n", o.out);
    }
    rc = 0;
out:
    if (pinned)
        gn_backend_pin_threads(be, 0, NULL, &err);
    gn_lat_profile_free(&p);
    gn_backend_destroy(be);
    src_free(&src);
    return rc;
}
