/*
 * test_latency_table.c — lookup-table keys, isolated layer timing, per-layer
 * profiling, prediction, and the device-profile file (round trip and malformed
 * files).
 *
 * Timing is only checked through invariants that hold on any machine: per run,
 * the per-layer times are disjoint intervals inside the profiled run, so their sum
 * can never exceed it (and its order statistics neither); times are positive; the
 * layer sum is within a generous factor of the plain run's median.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpunas/latency.h"
#include "gpunas/latprofile.h"
#include "testutil.h"

#define NEAR(a, b, tol) assert_true(fabs((a) - (b)) <= (tol))

static const char *two_irb =
    "[{\"layer_type\": \"data\", \"img_resolution\": 32, \"distill\": false},"
    " {\"layer_type\": \"head\", \"num_in_channels\": 3, \"num_out_channels\": 16, \"act\": \"relu\"},"
    " {\"layer_type\": \"irb\", \"num_in_channels\": 16, \"num_out_channels\": 16, \"stride\": 1,"
    "  \"expansion\": 3, \"kernel_size\": 3, \"act\": \"relu\", \"use_se\": false},"
    " {\"layer_type\": \"irb\", \"num_in_channels\": 16, \"num_out_channels\": 16, \"stride\": 1,"
    "  \"expansion\": 3, \"kernel_size\": 3, \"act\": \"relu\", \"use_se\": false},"
    " {\"layer_type\": \"irb\", \"num_in_channels\": 16, \"num_out_channels\": 16, \"stride\": 1,"
    "  \"expansion\": 3, \"kernel_size\": 5, \"act\": \"relu\", \"use_se\": false},"
    " {\"layer_type\": \"irb\", \"num_in_channels\": 16, \"num_out_channels\": 16, \"stride\": 1,"
    "  \"expansion\": 3, \"kernel_size\": 3, \"act\": \"swish\", \"use_se\": false},"
    " {\"layer_type\": \"irb\", \"num_in_channels\": 16, \"num_out_channels\": 16, \"stride\": 1,"
    "  \"expansion\": 3, \"kernel_size\": 3, \"act\": \"relu\", \"use_se\": true},"
    " {\"layer_type\": \"irb\", \"num_in_channels\": 16, \"num_out_channels\": 24, \"stride\": 2,"
    "  \"expansion\": 3, \"kernel_size\": 3, \"act\": \"relu\", \"use_se\": false},"
    " {\"layer_type\": \"tail\", \"num_in_channels\": 24, \"num_out_channels\": 64, \"num_classes\": 10}]";

static void test_keys(void **state)
{
    gn_arch *a;
    gn_error err;
    assert_int_equal(gn_arch_parse(two_irb, "two_irb.json", &a, &err), 0);
    char k[9][GN_LAT_KEY_MAX];
    for (int i = 1; i < a->n_layers; i++)
        assert_int_equal(gn_lat_key(a, i, 1, k[i], sizeof k[i], &err), 0);
    /* layers 2 and 3 have the same shape: one key */
    assert_string_equal(k[2], k[3]);
    assert_string_equal(k[2], "irb|std|in=16x16x16|out=16|k=3|s=1|pad=1|mid=48|g=1|act=relu|se=0|res=1|cls=0|b=1");
    /* kernel, act, SE, stride/out differ: all distinct */
    for (int i = 3; i < 8; i++)
        for (int j = i + 1; j < 8; j++)
            assert_string_not_equal(k[i], k[j]);
    assert_non_null(strstr(k[6], "se=4|")); /* round(48 * 0.25 / 3) */
    assert_non_null(strstr(k[7], "res=0"));
    assert_string_equal(k[1], "head|std|in=3x32x32|out=16|k=3|s=2|pad=1|mid=0|g=1|act=relu|se=0|res=0|cls=0|b=1");
    assert_non_null(strstr(k[8], "tail|std|in=24x8x8|out=64|"));
    assert_non_null(strstr(k[8], "cls=10|b=1"));
    /* batch is part of the key */
    char kb[GN_LAT_KEY_MAX];
    assert_int_equal(gn_lat_key(a, 2, 8, kb, sizeof kb, &err), 0);
    assert_string_not_equal(kb, k[2]);
    /* a different resolution changes the spatial part */
    assert_int_equal(gn_arch_set_resolution(a, 64, &err), 0);
    assert_int_equal(gn_lat_key(a, 2, 1, kb, sizeof kb, &err), 0);
    assert_non_null(strstr(kb, "in=16x32x32"));
    /* errors */
    assert_int_not_equal(gn_lat_key(a, 0, 1, kb, sizeof kb, &err), 0);
    assert_int_not_equal(gn_lat_key(a, 9, 1, kb, sizeof kb, &err), 0);
    assert_non_null(strstr(err.msg, "two_irb.json: layer 9"));
    assert_int_not_equal(gn_lat_key(a, 2, 1, kb, 20, &err), 0);
    gn_arch_free(a);
}

static gn_lat_opts quick(void)
{
    gn_lat_opts o;
    gn_lat_opts_default(&o);
    o.runs = 5;
    o.warmup_ms = 0;
    o.warmup_runs = 1;
    return o;
}

/* Every layer of the bundled config (all standard types, the stride-2 fused_irb
 * padding quirk) and of a distill config can be timed alone. */
static void test_isolated_layers(void **state)
{
    gn_backend *be;
    gn_error err;
    assert_int_equal(gn_backend_create("dnnl", &be, &err), 0);
    gn_lat_opts o = quick();
    char *path = tu_source_path("configs/fmnist-small.json");
    gn_arch *a;
    assert_int_equal(gn_arch_load(path, &a, &err), 0);
    for (int i = 1; i < a->n_layers; i++) {
        double ms = -1, cv = -1;
        int rc = gn_lat_measure_layer(a, i, be, 1, &o, &ms, &cv, &err);
        if (rc)
            fail_msg("layer %d: %s", i, err.msg);
        assert_true(ms > 0);
        assert_true(cv >= 0);
    }
    assert_int_not_equal(gn_lat_measure_layer(a, 0, be, 1, &o, NULL, NULL, &err), 0);
    gn_arch_free(a);
    free(path);

    path = tu_source_path("configs/gpunet/gpunet-d2.json");
    assert_int_equal(gn_arch_load(path, &a, &err), 0);
    assert_int_equal(gn_arch_set_resolution(a, 64, &err), 0);
    int picks[] = {1, 2, 3, a->n_layers - 1};
    for (int j = 0; j < 4; j++) {
        double ms = -1;
        int rc = gn_lat_measure_layer(a, picks[j], be, 1, &o, &ms, NULL, &err);
        if (rc)
            fail_msg("distill layer %d: %s", picks[j], err.msg);
        assert_true(ms > 0);
    }
    gn_arch_free(a);
    free(path);
    gn_backend_destroy(be);
}

static void test_per_layer_sums(void **state)
{
    gn_backend *be;
    gn_error err;
    assert_int_equal(gn_backend_create("dnnl", &be, &err), 0);
    /* one thread: a busy machine slows spinning OpenMP teams erratically */
    assert_int_equal(gn_backend_set_threads(be, 1, &err), 0);
    char *path = tu_source_path("configs/fmnist-small.json");
    gn_arch *a;
    gn_net *net;
    assert_int_equal(gn_arch_load(path, &a, &err), 0);
    assert_int_equal(gn_net_create(a, be, &net, &err), 0);
    assert_int_equal(gn_net_init(net, 1, &err), 0);
    gn_lat_opts o = quick();
    o.runs = 21;
    gn_lat_layers lr;
    gn_lat_result r;
    assert_int_equal(gn_lat_measure_layers(net, 2, &o, &lr, &err), 0);
    assert_int_equal(gn_lat_measure(net, 2, &o, &r, &err), 0);
    assert_int_equal(lr.n_layers, a->n_layers);
    assert_int_equal(lr.runs, 21);
    NEAR(lr.median_ms[0], 0, 0); /* the data layer runs nothing */
    double s = 0;
    for (int i = 1; i < a->n_layers; i++) {
        assert_true(lr.median_ms[i] > 0);
        s += lr.median_ms[i];
    }
    NEAR(s, lr.sum_median_ms, 1e-12);
    /* disjoint intervals inside each run: order statistics can only be smaller */
    assert_true(lr.layer_sum.median <= lr.run.median);
    assert_true(lr.layer_sum.max <= lr.run.max);
    assert_true(lr.layer_sum.min <= lr.run.min);
    assert_true(lr.layer_sum.median >= 0.5 * lr.run.median);
    /* generous: the plain run is the same work without the clock reads */
    assert_true(lr.sum_median_ms > 0.2 * r.compute.median && lr.sum_median_ms < 5 * r.compute.median);
    /* memory figures */
    assert_int_equal(r.input_bytes, 2 * 1 * 32 * 32 * sizeof(float));
    assert_true(r.act_bytes >= 2 * 24 * 16 * 16 * sizeof(float)); /* the largest activation at batch 2 */
    /* folded: one bias per conv output channel instead of BN's two parameters */
    assert_true(r.weight_bytes >= (size_t)a->params * sizeof(float) / 2);
    assert_true(r.weight_bytes <= (size_t)a->params * sizeof(float));
    assert_int_equal(r.compute.n, 21);
    assert_non_null(r.compute_ms);
    assert_true(r.h2d.median >= 0 && r.d2h.median >= 0);
    assert_true(r.e2e.median >= r.compute.median); /* per run e2e = copies + compute */
    gn_lat_result_free(&r);
    gn_lat_layers_free(&lr);

    /* bad options */
    o.runs = 0;
    assert_int_not_equal(gn_lat_measure(net, 1, &o, &r, &err), 0);
    assert_non_null(strstr(err.msg, "runs 0"));
    o.runs = 3;
    assert_int_not_equal(gn_lat_measure(net, 0, &o, &r, &err), 0);
    assert_non_null(strstr(err.msg, "batch 0"));
    gn_net_free(net);
    gn_arch_free(a);
    free(path);
    gn_backend_destroy(be);
}

/* A profile over the layers of fmnist-small with made-up times. */
static void fake_profile(gn_lat_profile *p, const gn_arch *a)
{
    gn_error err;
    gn_lat_profile_init(p);
    gn_lat_device_detect("dnnl", 2, &p->device, &err);
    p->batch = 1;
    snprintf(p->space, sizeof p->space, "test");
    for (int i = 1; i < a->n_layers; i++) {
        gn_lat_entry e = {0};
        assert_int_equal(gn_lat_key(a, i, 1, e.key, sizeof e.key, &err), 0);
        e.type = a->layers[i].type;
        e.ms = 0.01 * i;
        e.cv = 0.02;
        e.gflop = gn_lat_layer_flops(&a->layers[i], 1) / 1e9;
        e.mb = gn_lat_layer_bytes(&a->layers[i], 1) / 1e6;
        assert_int_equal(gn_lat_profile_add(p, &e, &err), 0);
    }
    assert_int_equal(gn_lat_profile_fit_fallback(p, &err), 0);
    p->calibrated = true;
    p->calib.model = GN_LAT_MODEL_PER_TYPE;
    for (int t = 0; t < GN_LAT_NTYPES; t++)
        p->calib.scale[t] = 1.0 + 0.1 * t;
    p->calib.intercept_ms = 0.125;
    p->calib.networks = 30;
    p->calib.fit_mean_abs_pct = 1.5;
    p->calib.fit_max_pct = 4.25;
    p->calib.loo_mean_abs_pct = 2.0;
    p->evaluated = true;
    p->eval = (gn_lat_eval){.networks = 30,
                            .mean_abs_pct = 3.5,
                            .max_pct = 9.0,
                            .raw_mean_abs_pct = 12.5,
                            .raw_max_pct = 40.0,
                            .layers = 240,
                            .missing = 3};
    p->probe_ms = 0.4375;
}

static void test_predict(void **state)
{
    char *path = tu_source_path("configs/fmnist-small.json");
    gn_arch *a;
    gn_error err;
    assert_int_equal(gn_arch_load(path, &a, &err), 0);
    gn_lat_profile p;
    fake_profile(&p, a);
    double sums[GN_LAT_NTYPES], ms;
    int missing = -1;
    assert_int_equal(gn_lat_table_sums(&p, a, sums, &missing, &err), 0);
    assert_int_equal(missing, 0);
    /* irb layers are 5, 6, 7 */
    NEAR(sums[GN_LAYER_IRB], 0.05 + 0.06 + 0.07, 1e-12);
    NEAR(sums[GN_LAYER_FUSED_IRB], 0.03 + 0.04, 1e-12);
    assert_int_equal(gn_lat_predict(&p, a, &ms, &missing, &err), 0);
    double want = 0.125;
    for (int i = 1; i < a->n_layers; i++)
        want += (1.0 + 0.1 * a->layers[i].type) * 0.01 * i;
    NEAR(ms, want, 1e-12);

    /* a layer not in the table comes from the fallback and is counted */
    a->layers[6].kernel = 5;
    assert_int_equal(gn_arch_resolve(a, &err), 0);
    assert_int_equal(gn_lat_predict(&p, a, &ms, &missing, &err), 0);
    assert_int_equal(missing, 1);
    assert_true(ms > 0);
    /* ... unless the type has no fallback */
    p.have_fallback[GN_LAYER_IRB] = false;
    assert_int_not_equal(gn_lat_predict(&p, a, &ms, &missing, &err), 0);
    assert_non_null(strstr(err.msg, "layer 6"));
    assert_non_null(strstr(err.msg, "not in the latency table"));
    p.calibrated = false;
    assert_int_not_equal(gn_lat_predict(&p, a, &ms, &missing, &err), 0);
    assert_non_null(strstr(err.msg, "not calibrated"));
    gn_lat_profile_free(&p);
    gn_arch_free(a);
    free(path);
}

static void test_profile_round_trip(void **state)
{
    char *path = tu_source_path("configs/fmnist-small.json");
    gn_arch *a;
    gn_error err;
    assert_int_equal(gn_arch_load(path, &a, &err), 0);
    gn_lat_profile p, q;
    fake_profile(&p, a);
    p.layer_opts.runs = 33;
    p.net_opts.warmup_ms = 123.5;
    p.net_opts.min_ms = 750;
    char *file = tu_tmp_path("lat_profile.json");
    assert_int_equal(gn_lat_profile_save(&p, file, &err), 0);
    if (gn_lat_profile_load(file, &q, &err))
        fail_msg("%s", err.msg);
    assert_string_equal(q.device.id, p.device.id);
    assert_string_equal(q.device.cpu_model, p.device.cpu_model);
    assert_string_equal(q.device.onednn, p.device.onednn);
    assert_int_equal(q.device.threads, 2);
    assert_int_equal(q.device.cores, p.device.cores);
    assert_int_equal(q.batch, 1);
    assert_string_equal(q.space, "test");
    assert_int_equal(q.layer_opts.runs, 33);
    NEAR(q.net_opts.warmup_ms, 123.5, 0);
    NEAR(q.net_opts.min_ms, 750, 0);
    assert_int_equal(q.n_entries, p.n_entries);
    for (int i = 0; i < p.n_entries; i++) {
        assert_string_equal(q.entries[i].key, p.entries[i].key);
        assert_int_equal(q.entries[i].type, p.entries[i].type);
        NEAR(q.entries[i].ms, p.entries[i].ms, 1e-11 * p.entries[i].ms);
        NEAR(q.entries[i].gflop, p.entries[i].gflop, 1e-11 * p.entries[i].gflop);
        NEAR(q.entries[i].mb, p.entries[i].mb, 1e-11 * p.entries[i].mb);
    }
    for (int t = 0; t < GN_LAT_NTYPES; t++) {
        assert_int_equal(q.have_fallback[t], p.have_fallback[t]);
        for (int j = 0; j < GN_LAT_FB_NCOEF && p.have_fallback[t]; j++)
            NEAR(q.fallback[t][j], p.fallback[t][j], 1e-10 * (1 + fabs(p.fallback[t][j])));
    }
    assert_true(q.calibrated && q.evaluated);
    assert_int_equal(q.calib.model, GN_LAT_MODEL_PER_TYPE);
    for (int t = 1; t < GN_LAT_NTYPES; t++)
        NEAR(q.calib.scale[t], p.calib.scale[t], 1e-12);
    NEAR(q.calib.intercept_ms, 0.125, 1e-12);
    NEAR(q.calib.loo_mean_abs_pct, 2.0, 1e-12);
    assert_int_equal(q.eval.missing, 3);
    NEAR(q.eval.max_pct, 9.0, 1e-12);
    NEAR(q.eval.raw_mean_abs_pct, 12.5, 1e-12);
    NEAR(q.eval.raw_max_pct, 40.0, 1e-12);
    NEAR(q.probe_ms, 0.4375, 1e-12);
    double m1, m2;
    assert_int_equal(gn_lat_predict(&p, a, &m1, NULL, &err), 0);
    assert_int_equal(gn_lat_predict(&q, a, &m2, NULL, &err), 0);
    NEAR(m1, m2, 1e-10 * m1);
    gn_lat_profile_free(&q);
    gn_lat_profile_free(&p);
    gn_arch_free(a);
    free(path);
    free(file);
}

/* Replace the first occurrence of `from` in text with `to` (malloc'd). */
static char *replace(const char *text, const char *from, const char *to)
{
    const char *p = strstr(text, from);
    assert_non_null(p);
    size_t n = strlen(text) - strlen(from) + strlen(to) + 1;
    char *s = malloc(n);
    snprintf(s, n, "%.*s%s%s", (int)(p - text), text, to, p + strlen(from));
    return s;
}

static void test_profile_malformed(void **state)
{
    char *path = tu_source_path("configs/fmnist-small.json");
    gn_arch *a;
    gn_error err;
    assert_int_equal(gn_arch_load(path, &a, &err), 0);
    gn_lat_profile p;
    fake_profile(&p, a);
    p.device.threads = 2;
    char *file = tu_tmp_path("lat_profile_good.json");
    assert_int_equal(gn_lat_profile_save(&p, file, &err), 0);
    char *good = tu_read_file(file, NULL);
    assert_non_null(good);
    gn_lat_profile q;
    assert_int_equal(gn_lat_profile_parse(good, "dev.json", &q, &err), 0);
    gn_lat_profile_free(&q);

    /* sorted keys: entries[0] is the conv layer, entries[1] and [2] the two fused_irb */
    assert_int_equal(p.entries[0].type, GN_LAYER_CONV);
    assert_int_equal(p.entries[2].type, GN_LAYER_FUSED_IRB);
    char key1[GN_LAT_KEY_MAX + 16], key2[GN_LAT_KEY_MAX + 16];
    snprintf(key1, sizeof key1, "\"key\": \"%s\"", p.entries[1].key);
    snprintf(key2, sizeof key2, "\"key\": \"%s\"", p.entries[2].key);
    struct {
        const char *from, *to, *want;
    } cases[] = {
        {"\"gpunas-latency-profile\"", "\"something-else\"", "dev.json: field 'format': 'something-else'"},
        {"\"version\": 1", "\"version\": 7", "dev.json: field 'version': 7 is not supported"},
        {"\"threads\": 2", "\"threads\": 0", "dev.json: field 'device.threads': 0 out of range"},
        {"\"threads\": 2", "\"threads\": \"two\"", "dev.json: field 'device.threads': must be an integer"},
        {"\"batch\": 1", "\"batch\": 1, \"colour\": 3", "dev.json: field 'colour': unknown field"},
        {"\"ms\": ", "\"ms\": -", "dev.json: field 'entries[0].ms': "},
        {"\"type\": \"conv\"", "\"type\": \"blob\"", "field 'entries[0].type': 'blob' is not a layer type"},
        {"\"type\": \"conv\"", "\"type\": \"head\"", "field 'entries[0].key': "},
        {key2, key1, "field 'entries[2].key': "},
        {"\"model\": \"per_type\"", "\"model\": \"cubic\"", "field 'calibration.model': 'cubic'"},
        {"\"intercept_ms\"", "\"intercept\"", "field 'calibration.intercept_ms': missing"},
        {"\"entries\"", "\"entrees\"", "field 'entrees': unknown field"},
        {"\"mean_abs_pct\": 3.5", "\"mean_abs_pct\": null", "field 'evaluation.mean_abs_pct': must be a number"},
        {"\"raw_max_pct\": 40", "\"raw_max_pct\": -1", "field 'evaluation.raw_max_pct': -1 must be >= 0"},
        {"\"ms\": 0.4375", "\"ms\": 0", "field 'speed_probe.ms': 0 must be > 0"},
        {"{", "[", "dev.json:"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *bad = replace(good, cases[i].from, cases[i].to);
        int rc = gn_lat_profile_parse(bad, "dev.json", &q, &err);
        if (rc == 0 || !strstr(err.msg, cases[i].want))
            fail_msg("case %zu: rc %d, message '%s', wanted '%s'", i, rc, err.msg, cases[i].want);
        assert_null(strchr(err.msg, '\n'));
        assert_int_equal(q.n_entries, 0); /* left empty */
        free(bad);
    }
    /* the key of the profile's batch only */
    char *bad = replace(good, "|b=1\"", "|b=4\"");
    assert_int_not_equal(gn_lat_profile_parse(bad, "dev.json", &q, &err), 0);
    assert_non_null(strstr(err.msg, "not for the profile's batch 1"));
    free(bad);
    /* a fallback of the wrong length */
    bad = replace(good, "\"fallback\": {", "\"fallback\": {\"head_large\": [1, 2],");
    assert_int_not_equal(gn_lat_profile_parse(bad, "dev.json", &q, &err), 0);
    assert_non_null(strstr(err.msg, "field 'fallback.head_large': must be an array of 8 numbers"));
    free(bad);
    assert_int_not_equal(gn_lat_profile_load("/nonexistent/dev.json", &q, &err), 0);
    assert_non_null(strstr(err.msg, "/nonexistent/dev.json: cannot open"));

    free(good);
    free(file);
    gn_lat_profile_free(&p);
    gn_arch_free(a);
    free(path);
}

static void test_device(void **state)
{
    gn_lat_device d;
    gn_error err;
    assert_int_equal(gn_lat_device_detect("dnnl", 0, &d, &err), 0);
    assert_string_equal(d.kind, "cpu");
    assert_true(d.logical_cpus >= 1 && d.cores >= 1 && d.threads == d.logical_cpus);
    assert_true(strlen(d.cpu_model) > 0);
    assert_non_null(strstr(d.id, d.cpu_model));
    assert_true(d.onednn[0] >= '1' && d.onednn[0] <= '9' && strchr(d.onednn, '.'));
    assert_int_equal(gn_lat_device_detect("ref", 4, &d, &err), 0);
    assert_int_equal(d.threads, 1);
    assert_int_not_equal(gn_lat_device_detect("cuda", 1, &d, &err), 0);
}

static void test_perturb(void **state)
{
    char *path = tu_source_path("configs/fmnist-small.json");
    gn_arch *a, *b, *c;
    gn_error err;
    gn_rng r1, r2;
    assert_int_equal(gn_arch_load(path, &a, &err), 0);
    gn_rng_seed(&r1, 9);
    gn_rng_seed(&r2, 9);
    int differ = 0;
    for (int k = 0; k < 5; k++) {
        assert_int_equal(gn_lat_perturb_arch(a, &r1, &b, &err), 0);
        assert_int_equal(gn_lat_perturb_arch(a, &r2, &c, &err), 0);
        char *jb = gn_arch_to_json(b, &err), *jc = gn_arch_to_json(c, &err), *ja = gn_arch_to_json(a, &err);
        assert_string_equal(jb, jc); /* same seed, same variant */
        differ += strcmp(ja, jb) != 0;
        assert_int_equal(b->n_layers, a->n_layers);
        assert_int_equal(b->layers[5].out_ch, a->layers[5].out_ch);
        free(ja), free(jb), free(jc);
        gn_arch_free(b);
        gn_arch_free(c);
    }
    assert_true(differ >= 4);
    gn_arch_free(a);
    free(path);
}

/* gn_lat_profile_build, the library call `gpunas profile` runs: a tiny profile of
 * perturbations of two_irb (quick measurement settings), then an evaluation-only
 * run of the calibrated result */
typedef struct {
    int lines, rows;
    double worst_err;
} build_log;

static int sample_perturb(void *ctx, gn_rng *r, gn_arch **out, gn_error *err)
{
    return gn_lat_perturb_arch(ctx, r, out, err);
}
static void on_line(void *ctx, const char *line)
{
    assert_non_null(line);
    assert_null(strchr(line, '\n'));
    ((build_log *)ctx)->lines++;
}
static void on_row(void *ctx, const gn_lat_heldout *h)
{
    build_log *l = ctx;
    assert_int_equal(h->index, l->rows);
    assert_true(h->measured_ms > 0 && h->predicted_ms > 0 && h->raw_ms > 0);
    assert_non_null(h->arch);
    assert_true(h->missing >= 0 && h->missing < h->arch->n_layers); /* layers from the fallback */
    l->rows++;
}

static void test_profile_build(void **state)
{
    gn_arch *base;
    gn_error err;
    assert_int_equal(gn_arch_parse(two_irb, "two_irb", &base, &err), 0);
    gn_lat_profile p;
    gn_lat_profile_init(&p);
    p.batch = 1;
    gn_lat_opts_default(&p.net_opts);
    p.net_opts.runs = 5;
    p.net_opts.warmup_ms = 5;
    p.net_opts.warmup_runs = 1;
    p.layer_opts = p.net_opts;
    build_log log = {0};
    gn_lat_build_opts o = {.sample = sample_perturb, .sample_ctx = base, .backend = "dnnl", .threads = 1,
                           .samples = 40, .calib = 6, .holdout = 3, .retries = 0, .seed = 5, .probe = true,
                           .progress = on_line, .heldout = on_row, .cb_ctx = &log};
    gn_lat_limits_default(&o.lim);
    gn_lat_build_report rep;
    assert_int_equal(gn_lat_profile_build(&p, &o, &rep, &err), 0);
    assert_true(p.calibrated && p.evaluated);
    assert_true(p.n_entries > 8); /* kernels x activations x SE x expansions of the irbs */
    assert_int_equal(p.calib.networks, 6);
    assert_int_equal(p.eval.networks, 3);
    assert_int_equal(log.rows, 3);
    assert_true(log.lines >= 4 + 6 + 1); /* table progress, calibration, the probe */
    assert_true(rep.probed && rep.n_probes >= 2 * (6 + 3) && rep.probe_ms > 0);
    assert_true(rep.probe_lo_ms <= rep.probe_ms && rep.probe_ms <= rep.probe_hi_ms);
    assert_true(p.probe_ms == rep.probe_ms);
    assert_true(p.eval.mean_abs_pct >= 0 && p.eval.max_pct >= p.eval.mean_abs_pct);
    fprintf(stderr, "profile build: %d keys, held-out mean |error| %.1f%% (tiny, quick settings)\n", p.n_entries,
            p.eval.mean_abs_pct);

    /* evaluation only: the table is kept, the held-out stream is measured again */
    int keys = p.n_entries;
    build_log log2 = {0};
    o.cb_ctx = &log2;
    o.holdout = 2;
    assert_int_equal(gn_lat_profile_build(&p, &o, &rep, &err), 0);
    assert_int_equal(p.n_entries, keys);
    assert_int_equal(p.eval.networks, 2);
    assert_int_equal(log2.rows, 2);

    /* bad options: one line, nothing done */
    gn_lat_profile q;
    gn_lat_profile_init(&q);
    q.batch = 1;
    o.calib = 1;
    assert_int_not_equal(gn_lat_profile_build(&q, &o, NULL, &err), 0);
    assert_non_null(strstr(err.msg, "at least 2 networks"));
    assert_int_equal(q.n_entries, 0);
    gn_lat_profile_free(&q);
    gn_lat_profile_free(&p);
    gn_arch_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_profile_build),
        cmocka_unit_test(test_keys),           cmocka_unit_test(test_isolated_layers),
        cmocka_unit_test(test_per_layer_sums), cmocka_unit_test(test_predict),
        cmocka_unit_test(test_profile_round_trip), cmocka_unit_test(test_profile_malformed),
        cmocka_unit_test(test_device),         cmocka_unit_test(test_perturb),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
