/*
 * test_latency_cli.c — `gpunas latency` and `gpunas profile` as a user runs them:
 * exit codes, one-line errors (exit 2 for bad usage, 1 for bad input or an
 * unstable measurement), the printed median, the --json fields, --per-layer, and a
 * tiny profile written, read back and used for a prediction.  Only facts that hold
 * on any machine are checked (nothing compares times against fixed numbers).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpunas/latprofile.h"
#include "testutil.h"

#define NEAR0(x) assert_true((x) == 0)

static int count_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

static void expect_error(const char *args, int code, const char *want)
{
    char *out, *err;
    int rc = tu_run_cli(args, &out, &err);
    if (rc != code || !strstr(err, want) || count_lines(err) != 1)
        fail_msg("gpunas %s: exit %d (wanted %d), stderr '%s' (wanted one line with '%s')", args, rc, code, err,
                 want);
    free(out);
    free(err);
}

static void test_latency_smoke(void **state)
{
    char *cfg = tu_source_path("configs/fmnist-small.json");
    char args[1024], *out, *err;
    snprintf(args, sizeof args, "latency %s --runs 20 --duration 0 --warmup-ms 0 --force --threads 1", cfg);
    assert_int_equal(tu_run_cli(args, &out, &err), 0);
    assert_non_null(strstr(out, "median compute latency: "));
    assert_non_null(strstr(out, "compute        median "));
    assert_non_null(strstr(out, "input copy"));
    assert_non_null(strstr(out, "output read"));
    assert_non_null(strstr(out, "network: 208026 params, 6631168 MACs"));
    assert_non_null(strstr(out, "memory at batch 1: weights "));
    assert_non_null(strstr(out, "device: cpu: "));
    free(out);
    free(err);

    snprintf(args, sizeof args,
             "latency %s --runs 12 --duration 0 --warmup-ms 0 --force --json --per-layer --batch 2 --res 28 --seed 3 "
             "--no-reference",
             cfg);
    assert_int_equal(tu_run_cli(args, &out, &err), 0);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    if (!j)
        fail_msg("not JSON: %s", je.text);
    assert_int_equal(json_integer_value(json_object_get(j, "batch")), 2);
    assert_int_equal(json_integer_value(json_object_get(j, "resolution")), 28);
    json_t *c = json_object_get(j, "compute");
    assert_int_equal(json_integer_value(json_object_get(c, "n")), 12);
    double med = json_real_value(json_object_get(c, "median_ms"));
    assert_true(med > 0);
    assert_true(json_real_value(json_object_get(c, "min_ms")) <= med);
    assert_true(json_real_value(json_object_get(c, "p99_ms")) >= json_real_value(json_object_get(c, "p90_ms")));
    assert_int_equal(json_array_size(json_object_get(j, "compute_samples_ms")), 12);
    assert_non_null(json_object_get(j, "input_copy"));
    assert_non_null(json_object_get(j, "output_read"));
    json_t *mem = json_object_get(j, "memory");
    assert_int_equal(json_integer_value(json_object_get(mem, "input_bytes")), 2 * 28 * 28 * 4);
    assert_true(json_integer_value(json_object_get(mem, "weight_bytes")) > 0);
    assert_true(json_integer_value(json_object_get(mem, "activation_bytes")) > 0);
    json_t *layers = json_object_get(j, "layers");
    assert_int_equal(json_array_size(layers), 8);
    double share = 0;
    for (size_t i = 0; i < 8; i++) {
        json_t *L = json_array_get(layers, i);
        assert_true(json_real_value(json_object_get(L, "median_ms")) > 0);
        assert_true(json_real_value(json_object_get(L, "gflops")) > 0);
        share += json_real_value(json_object_get(L, "share"));
    }
    assert_true(share > 0.999 && share < 1.001);
    assert_true(json_is_boolean(json_object_get(j, "stable")));
    json_t *dev = json_object_get(j, "device");
    assert_string_equal(json_string_value(json_object_get(dev, "kind")), "cpu");
    json_decref(j);
    free(out);
    free(err);

    snprintf(args, sizeof args, "latency %s --runs 5 --duration 0 --warmup-ms 0 --per-layer --threads 1 --force", cfg);
    assert_int_equal(tu_run_cli(args, &out, &err), 0);
    assert_non_null(strstr(out, "per layer (median of 5 profiled runs"));
    assert_non_null(strstr(out, "GFLOP/s"));
    free(out);
    free(err);

    /* --duration: at least --runs runs AND at least that long; the spread of the
     * median over 10 consecutive blocks is printed and in the JSON */
    snprintf(args, sizeof args, "latency %s --runs 10 --duration 0.25 --warmup-ms 0 --threads 1 --force --json", cfg);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(tu_run_cli(args, &out, &err), 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* only lower bounds on time: a loaded machine makes a run longer, never shorter */
    assert_true((t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec) >= 0.25);
    j = json_loads(out, 0, &je);
    if (!j)
        fail_msg("not JSON: %s", je.text);
    c = json_object_get(j, "compute");
    json_int_t n = json_integer_value(json_object_get(c, "n"));
    double total = 0;
    json_t *smp = json_object_get(j, "compute_samples_ms");
    assert_int_equal((json_int_t)json_array_size(smp), n);
    for (size_t i = 0; i < json_array_size(smp); i++)
        total += json_real_value(json_array_get(smp, i));
    assert_true(n >= 10); /* at least --runs runs */
    assert_true(total > 0);
    assert_int_equal(json_integer_value(json_object_get(c, "blocks")), 10);
    double lo = json_real_value(json_object_get(c, "block_median_lo_ms")),
           hi = json_real_value(json_object_get(c, "block_median_hi_ms"));
    assert_true(lo > 0 && lo <= hi);
    assert_true(lo >= json_real_value(json_object_get(c, "min_ms")));
    assert_true(hi <= json_real_value(json_object_get(c, "max_ms")));
    assert_true(json_real_value(json_object_get(c, "robust_cv")) >= 0);
    json_decref(j);
    free(out);
    free(err);
    snprintf(args, sizeof args, "latency %s --runs 10 --duration 0.05 --warmup-ms 0 --threads 1 --force", cfg);
    assert_int_equal(tu_run_cli(args, &out, &err), 0);
    assert_non_null(strstr(out, "spread of the median over time: "));
    assert_non_null(strstr(out, "consecutive blocks"));
    free(out);
    free(err);
    expect_error("latency x.json --duration -1", 2, "gpunas latency: option --duration");
    free(cfg);
}

/* Threads, placement and the reference network in the result (issue 18). */
static void test_latency_conditions(void **state)
{
    char *cfg = tu_source_path("configs/fmnist-small.json");
    char args[1024], *out, *err;
    snprintf(args, sizeof args, "latency %s --threads best --runs 6 --duration 0.1 --warmup-ms 0 --force --json", cfg);
    assert_int_equal(tu_run_cli(args, &out, &err), 0);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    if (!j)
        fail_msg("not JSON: %s", je.text);
    json_t *th = json_object_get(j, "threads");
    assert_string_equal(json_string_value(json_object_get(th, "chosen_by")), "best");
    json_int_t count = json_integer_value(json_object_get(th, "count"));
    assert_true(count >= 1);
    assert_int_equal(json_integer_value(json_object_get(th, "pinned")), count);
    json_t *choice = json_object_get(th, "choice");
    assert_true(json_array_size(choice) >= 1);
    int found = 0;
    for (size_t i = 0; i < json_array_size(choice); i++) {
        json_t *c = json_array_get(choice, i);
        found |= json_integer_value(json_object_get(c, "threads")) == count;
        assert_int_equal(json_array_size(json_object_get(c, "pass_medians_ms")), 3);
        assert_true(json_real_value(json_object_get(c, "max_over_min")) >= 1.0);
    }
    assert_true(found);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "device"), "threads")), count);
    json_t *ref = json_object_get(j, "reference");
    assert_true(json_is_object(ref));
    assert_int_equal(json_integer_value(json_object_get(ref, "rounds")), 10);
    double ratio = json_real_value(json_object_get(ref, "ratio"));
    assert_true(json_real_value(json_object_get(ref, "ratio_lo")) <= ratio);
    assert_true(ratio <= json_real_value(json_object_get(ref, "ratio_hi")));
    assert_true(json_real_value(json_object_get(ref, "median_ms")) > 0);
    json_decref(j);
    free(out);
    free(err);

    snprintf(args, sizeof args, "latency %s --threads 1 --runs 6 --duration 0 --warmup-ms 0 --force --json --no-pin "
             "--no-reference", cfg);
    assert_int_equal(tu_run_cli(args, &out, &err), 0);
    j = json_loads(out, 0, &je);
    if (!j)
        fail_msg("not JSON: %s", je.text);
    th = json_object_get(j, "threads");
    assert_int_equal(json_integer_value(json_object_get(th, "pinned")), 0);
    assert_string_equal(json_string_value(json_object_get(th, "chosen_by")), "option");
    assert_null(json_object_get(th, "choice"));
    assert_true(json_is_null(json_object_get(j, "reference")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "compute"), "n")), 6);
    json_decref(j);
    free(out);
    free(err);

    snprintf(args, sizeof args, "latency %s --threads best --runs 6 --duration 0 --warmup-ms 0 --force", cfg);
    assert_int_equal(tu_run_cli(args, &out, &err), 0);
    assert_non_null(strstr(out, "(best), pinned, one CPU per thread"));
    assert_non_null(strstr(out, "<- chosen"));
    assert_non_null(strstr(out, "reference network (built in, 2.87 MMACs): median "));
    free(out);
    free(err);
    expect_error("latency x.json --threads bestest", 2, "gpunas latency: option --threads");
    expect_error("latency x.json --threads 0", 2, "gpunas latency: option --threads");
    free(cfg);
}

static void test_latency_errors(void **state)
{
    char *cfg = tu_source_path("configs/fmnist-small.json");
    char args[1024];
    snprintf(args, sizeof args, "latency %s --runs 0", cfg);
    expect_error(args, 2, "gpunas latency: option --runs: 0 out of range");
    snprintf(args, sizeof args, "latency %s --device gpu", cfg);
    expect_error(args, 2, "gpunas latency: option --device: 'gpu' is not available");
    snprintf(args, sizeof args, "latency %s --frobnicate", cfg);
    expect_error(args, 2, "gpunas latency: unknown option '--frobnicate'");
    snprintf(args, sizeof args, "latency %s --batch", cfg);
    expect_error(args, 2, "option --batch: missing value");
    snprintf(args, sizeof args, "latency %s --max-cv abc", cfg);
    expect_error(args, 2, "option --max-cv: 'abc' is not a number");
    expect_error("latency", 2, "gpunas latency: missing CONFIG.json");
    expect_error("latency /nonexistent/net.json", 1, "gpunas latency: /nonexistent/net.json");
    snprintf(args, sizeof args, "latency %s --res 2", cfg);
    expect_error(args, 1, "gpunas latency: ");
    /* too few runs to judge stability: refused without --force */
    snprintf(args, sizeof args, "latency %s --runs 5 --duration 0 --warmup-ms 0 --threads 1 --no-reference", cfg);
    expect_error(args, 1, "measurement not stable: only 5 timed runs");
    /* a bad profile */
    char *bad = tu_tmp_path("bad_profile.json");
    assert_int_equal(tu_write_file(bad, "{\"format\": \"gpunas-latency-profile\", \"version\": 1}"), 0);
    snprintf(args, sizeof args, "latency %s --profile %s", cfg, bad);
    char want[600];
    snprintf(want, sizeof want, "gpunas latency: %s: field 'device': missing", bad);
    expect_error(args, 1, want);
    free(bad);
    /* profile usage */
    expect_error("profile --device cpu --space fmnist", 2, "gpunas profile: missing -o");
    expect_error("profile --space fmnist --base x.json -o x.json", 2, "give only one of --space");
    expect_error("profile --space fmnist -o x.json --calib 1", 2, "option --calib: 1 out of range");
    expect_error("profile --space nosuchspace.json -o x.json", 1, "gpunas profile: ");
    free(cfg);
}

/* A tiny profile of perturbations of the bundled config: written, valid, usable. */
static void test_profile_tiny(void **state)
{
    char *cfg = tu_source_path("configs/fmnist-small.json");
    char *file = tu_tmp_path("tiny_profile.json");
    char args[2048], *out, *err;
    snprintf(args, sizeof args,
             "profile --device cpu --base %s -o %s --samples 2 --calib 4 --holdout 2 --runs 5 --warmup-ms 0 "
             "--layer-runs 3 --layer-warmup-ms 0 --threads 1 --quiet",
             cfg, file);
    int rc = tu_run_cli(args, &out, &err);
    if (rc != 0)
        fail_msg("exit %d: %s", rc, err);
    assert_non_null(strstr(out, "held-out: 2 networks, mean |error| "));
    assert_non_null(strstr(out, "(speed-normalised measurements)"));
    assert_non_null(strstr(out, "held-out against the raw measurements: mean |error| "));
    assert_non_null(strstr(out, "speed probe: reference network "));
    assert_non_null(strstr(out, "calibration: "));
    free(out);
    free(err);
    gn_lat_profile p;
    gn_error e;
    if (gn_lat_profile_load(file, &p, &e))
        fail_msg("%s", e.msg);
    assert_true(p.calibrated && p.evaluated);
    assert_true(p.n_entries >= 8);
    assert_int_equal(p.eval.networks, 2);
    assert_int_equal(p.calib.networks, 4);
    assert_int_equal(p.device.threads, 1);
    assert_int_equal(p.device.pinned, 1); /* pinned by default: 1 thread, 1 CPU */
    assert_non_null(strstr(p.space, "perturbations of "));
    assert_true(p.probe_ms > 0);
    assert_true(p.eval.raw_mean_abs_pct >= 0);
    gn_lat_profile_free(&p);

    /* --per-layer with a profile: the table's time of every layer beside its own */
    snprintf(args, sizeof args, "latency %s --profile %s --per-layer --runs 5 --duration 0 --warmup-ms 0 --force "
             "--threads 1 --json", cfg, file);
    assert_int_equal(tu_run_cli(args, &out, &err), 0);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    if (!j)
        fail_msg("not JSON: %s", je.text);
    json_t *layers = json_object_get(j, "layers");
    assert_int_equal(json_array_size(layers), 8);
    for (size_t i = 0; i < 8; i++) {
        json_t *L = json_array_get(layers, i);
        assert_true(json_real_value(json_object_get(L, "table_ms")) > 0);
        assert_true(json_is_boolean(json_object_get(L, "table_fallback")));
    }
    json_decref(j);
    free(out);
    free(err);

    /* without the probe: no factor, no raw figures */
    char *file2 = tu_tmp_path("tiny_profile_noprobe.json");
    snprintf(args, sizeof args,
             "profile --device cpu --base %s -o %s --samples 1 --calib 3 --holdout 1 --runs 3 --warmup-ms 0 "
             "--layer-runs 3 --layer-warmup-ms 0 --threads 1 --quiet --no-speed-probe",
             cfg, file2);
    rc = tu_run_cli(args, &out, &err);
    if (rc != 0)
        fail_msg("exit %d: %s", rc, err);
    assert_null(strstr(out, "speed probe"));
    assert_null(strstr(out, "speed-normalised"));
    free(out);
    free(err);
    if (gn_lat_profile_load(file2, &p, &e))
        fail_msg("%s", e.msg);
    NEAR0(p.probe_ms);
    gn_lat_profile_free(&p);
    free(file2);

    snprintf(args, sizeof args, "latency %s --profile %s --runs 10 --duration 0 --warmup-ms 0 --force --threads 1", cfg, file);
    assert_int_equal(tu_run_cli(args, &out, &err), 0);
    assert_non_null(strstr(out, "predicted by "));
    free(out);
    free(err);
    snprintf(args, sizeof args, "latency %s --profile %s --batch 2 --runs 10", cfg, file);
    expect_error(args, 1, "was measured at batch 1, not 2");

    snprintf(args, sizeof args,
             "profile --evaluate %s --base %s --holdout 2 --runs 5 --warmup-ms 0 --threads 1 --quiet --seed 7", file,
             cfg);
    assert_int_equal(tu_run_cli(args, &out, &err), 0);
    assert_non_null(strstr(out, "held-out: 2 networks"));
    assert_non_null(strstr(out, "speed probe: reference network "));
    free(out);
    free(err);
    free(file);
    free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_latency_smoke),
        cmocka_unit_test(test_latency_conditions),
        cmocka_unit_test(test_latency_errors),
        cmocka_unit_test(test_profile_tiny),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
