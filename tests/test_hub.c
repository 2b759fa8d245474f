/*
 * test_hub.c — the model hub (gpunas/hub.h) as a user meets it.
 *
 *   index:  model folders -> scan -> front (a slower, less accurate model is dropped
 *           with its reason) -> hub.json -> load gives the same models; `hub pick`
 *           for three budgets and an impossible one (exit 1, one line naming the
 *           fastest model); a corrupt hub.json -> `hub list`, `hub pick` and
 *           `hub build` exit 1 with one line naming the file, and the file is unchanged.
 *   build:  a search store made here (two tiers, two trained trials, the search's
 *           latency meta), `hub build` at a tiny budget (1 epoch on 640 images, 0.1 s
 *           timing) killed with SIGKILL the moment its first model folder appears,
 *           then run again: every model folder is complete at every moment (config,
 *           weights, ONNX, card, record), the second run skips the published model,
 *           and the hub ends with one model per tier, hub.json, pareto.png, and
 *           weights that `gpunas eval` reads, and ONNX files that onnx.checker accepts
 *           and ONNX Runtime runs to gpunas's logits within 1e-4 (tests/onnx/check_hub_onnx.py).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gpunas/hub.h"
#include "gpunas/store.h"
#include "testutil.h"

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

static void write_model(const char *hub, const char *name, int tier, double acc, double ms)
{
    char dir[1024], path[1100];
    snprintf(dir, sizeof dir, "%s/%s", hub, name);
    mkdir(dir, 0777);
    json_t *o = json_pack("{s:s, s:{s:i, s:i, s:f, s:i, s:s}, s:{s:f, s:f}, s:{s:f, s:f, s:f, s:i, s:s},"
                          " s:{s:i, s:i}}",
                          "name", name, "search", "tier", tier, "rank", 1, "tier_max_ms", 1.0, "trial_id", tier + 1,
                          "store", "/x/search.db", "accuracy", "test_top1", acc, "test_top5", 0.99, "latency",
                          "median_ms", ms, "p10_ms", ms * 0.9, "p90_ms", ms * 1.1, "threads", 1, "device", "cpu test",
                          "arch", "params", 1000, "macs", 2000);
    assert_non_null(o);
    snprintf(path, sizeof path, "%s/model.json", dir);
    assert_int_equal(json_dump_file(o, path, JSON_INDENT(2)), 0);
    json_decref(o);
    char *cfg_src = tu_source_path("configs/fmnist-small.json");
    char *cfg = tu_read_file(cfg_src, NULL);
    snprintf(path, sizeof path, "%s/config.json", dir);
    assert_int_equal(tu_write_file(path, cfg), 0);
    free(cfg);
    free(cfg_src);
    snprintf(path, sizeof path, "%s/README.md", dir);
    char card[256];
    snprintf(card, sizeof card, "# %s\n\ncard of %s\n", name, name);
    assert_int_equal(tu_write_file(path, card), 0);
}

static void test_hub_index_front_pick(void **state)
{
    (void)state;
    char *hub = tu_tmp_path("hub-index");
    mkdir(hub, 0777);
    write_model(hub, "m-fast", 0, 0.90, 0.10);
    write_model(hub, "m-mid", 1, 0.92, 0.20);
    write_model(hub, "m-slow", 2, 0.91, 0.40); /* slower and less accurate than m-mid */
    gn_error err = {{0}};
    gn_hub h;
    assert_int_equal(gn_hub_scan(hub, &h, &err), 0);
    assert_int_equal(h.n, 3);
    assert_string_equal(h.models[0].name, "m-fast");
    assert_string_equal(h.models[2].name, "m-slow");
    assert_string_equal(h.models[0].dropped, "");
    assert_string_equal(h.models[1].dropped, "");
    assert_non_null(strstr(h.models[2].dropped, "slower than m-mid"));
    assert_int_equal(gn_hub_write_index(&h, &err), 0);
    gn_hub_free(&h);

    gn_hub l;
    assert_int_equal(gn_hub_load(hub, false, &l, &err), 0);
    assert_int_equal(l.n, 3);
    int dropped = 0;
    for (int i = 0; i < l.n; i++)
        dropped += l.models[i].dropped[0] != 0;
    assert_int_equal(dropped, 1);
    char why[256];
    assert_string_equal(l.models[gn_hub_pick(&l, 0.15, NULL, why, sizeof why)].name, "m-fast");
    assert_string_equal(l.models[gn_hub_pick(&l, 0.25, NULL, why, sizeof why)].name, "m-mid");
    assert_string_equal(l.models[gn_hub_pick(&l, 10, NULL, why, sizeof why)].name, "m-mid"); /* never m-slow */
    assert_int_equal(gn_hub_pick(&l, 0.05, NULL, why, sizeof why), -1);
    assert_non_null(strstr(why, "the fastest is m-fast"));
    /* another device's latencies: the order may change */
    double other[3];
    for (int i = 0; i < 3; i++)
        other[i] = !strcmp(l.models[i].name, "m-slow") ? 0.05 : !strcmp(l.models[i].name, "m-mid") ? 0.5 : 0.08;
    assert_string_equal(l.models[gn_hub_pick(&l, 0.06, other, why, sizeof why)].name, "m-slow");
    gn_hub_free(&l);

    /* the CLI: three budgets and an impossible one */
    char args[1200], *out, *errs;
    snprintf(args, sizeof args, "hub pick %s --budget-ms 0.3", hub);
    assert_int_equal(tu_run_cli(args, &out, &errs), 0);
    assert_non_null(strstr(out, "picked m-mid"));
    assert_non_null(strstr(out, "card of m-mid"));
    free(out), free(errs);
    snprintf(args, sizeof args, "hub pick %s --budget-ms 0.1", hub);
    assert_int_equal(tu_run_cli(args, &out, &errs), 0);
    assert_non_null(strstr(out, "picked m-fast"));
    free(out), free(errs);
    snprintf(args, sizeof args, "hub list %s", hub);
    assert_int_equal(tu_run_cli(args, &out, &errs), 0);
    assert_non_null(strstr(out, "3 model(s)"));
    assert_non_null(strstr(out, "dropped: slower than m-mid"));
    free(out), free(errs);
    snprintf(args, sizeof args, "hub list %s --json", hub);
    assert_int_equal(tu_run_cli(args, &out, &errs), 0);
    json_t *arr = json_loads(out, 0, NULL);
    assert_true(json_is_array(arr) && json_array_size(arr) == 3);
    json_decref(arr);
    free(out), free(errs);
    snprintf(args, sizeof args, "hub pick %s --budget-ms 0.01", hub);
    expect_error(args, 1, "no model runs within 0.01 ms: the fastest is m-fast at 0.1 ms");
    snprintf(args, sizeof args, "hub pick %s", hub);
    expect_error(args, 2, "--budget-ms");

    /* another device: latencies predicted from a (tiny) device profile */
    char *prof = tu_tmp_path("hub-profile.json");
    char *base = tu_source_path("configs/fmnist-small.json");
    snprintf(args, sizeof args,
             "profile --device cpu --base %s -o %s --samples 2 --calib 4 --holdout 2 --runs 5 --warmup-ms 0 "
             "--layer-runs 3 --layer-warmup-ms 0 --threads 1 --quiet",
             base, prof);
    assert_int_equal(tu_run_cli(args, &out, &errs), 0);
    free(out), free(errs);
    snprintf(args, sizeof args, "hub pick %s --budget-ms 1000 --device %s", hub, prof);
    assert_int_equal(tu_run_cli(args, &out, &errs), 0);
    assert_non_null(strstr(out, "predicted for the device profile"));
    assert_non_null(strstr(out, "picked m-mid")); /* same config everywhere: equal predictions, best accuracy */
    free(out), free(errs);
    snprintf(args, sizeof args, "hub pick %s --budget-ms 0.000001 --device %s", hub, prof);
    expect_error(args, 1, "(predicted)");
    free(prof);
    free(base);

    /* a corrupt index: one line naming it, nothing changed */
    char idx[1100];
    snprintf(idx, sizeof idx, "%s/hub.json", hub);
    assert_int_equal(tu_write_file(idx, "{\"format\": \"gpunas-hub\", \"models\": [ {\"name\": "), 0);
    snprintf(args, sizeof args, "hub list %s", hub);
    expect_error(args, 1, "hub.json: line 1: corrupt hub index");
    snprintf(args, sizeof args, "hub pick %s --budget-ms 1", hub);
    expect_error(args, 1, "hub.json");
    snprintf(args, sizeof args, "hub build %s --hub %s", hub, hub);
    expect_error(args, 1, "search.db: no search store here");
    assert_int_equal(tu_write_file(idx, "{\"format\": \"gpunas-hub\", \"models\": [{\"name\": \"x\"}]}"), 0);
    expect_error(args, 1, "search.db");
    snprintf(args, sizeof args, "hub list %s", hub);
    expect_error(args, 1, "hub.json: field 'search.tier' is missing");
    char *after = tu_read_file(idx, NULL);
    assert_string_equal(after, "{\"format\": \"gpunas-hub\", \"models\": [{\"name\": \"x\"}]}");
    free(after);
    /* a count out of its type's range is refused before it is converted (it was UB;
     * found by fuzzing, tests/fuzz/corpus/hub/repro-params-1e308.json) */
    assert_int_equal(tu_write_file(idx, "{\"format\": \"gpunas-hub\", \"models\": [{\"name\": \"x\","
                                        " \"search\": {\"tier\": 1e300}}]}"),
                     0);
    gn_hub bad;
    assert_int_not_equal(gn_hub_load(hub, false, &bad, &err), 0);
    assert_non_null(strstr(err.msg, "hub.json: field 'search.tier': "));
    assert_non_null(strstr(err.msg, " is not a whole number in [0, 2147483647]"));
    free(hub);
}

/* ------------------------------------------------------------------ plot */
/* `hub plot`: the hub's models with compared ones (gpunas/plot.h GN_PLOT_OTHER) */
static void assert_png_1000x640(const char *path)
{
    size_t n = 0;
    unsigned char *b = (unsigned char *)tu_read_file(path, &n);
    assert_non_null(b);
    assert_true(n > 24);
    assert_memory_equal(b, "\x89PNG\r\n\x1a\n", 8);
    assert_memory_equal(b + 12, "IHDR", 4);
    assert_int_equal((b[16] << 24) | (b[17] << 16) | (b[18] << 8) | b[19], 1000);
    assert_int_equal((b[20] << 24) | (b[21] << 16) | (b[22] << 8) | b[23], 640);
    free(b);
}

static void test_hub_plot_compare(void **state)
{
    (void)state;
    char *hub = tu_tmp_path("hub-plot");
    mkdir(hub, 0777);
    write_model(hub, "m-fast", 0, 0.90, 0.10);
    write_model(hub, "m-mid", 1, 0.92, 0.20);
    write_model(hub, "m-slow", 2, 0.91, 0.40);
    gn_error err = {{0}};
    gn_hub h;
    assert_int_equal(gn_hub_scan(hub, &h, &err), 0);
    assert_int_equal(gn_hub_write_index(&h, &err), 0);
    gn_hub_free(&h);

    char *cmp = tu_tmp_path("hub-plot-compare.json"), *png = tu_tmp_path("hub-plot-compare.png");
    assert_int_equal(tu_write_file(cmp, "[{\"name\": \"hand-a\", \"latency_ms\": 0.30, \"test_top1\": 0.905},"
                                        " {\"name\": \"hand-b\", \"latency_ms\": 0.05, \"test_top1\": 0.95}]"),
                     0);
    char args[3000], want[1200], *out, *errs;
    snprintf(args, sizeof args, "hub plot %s --compare %s --out %s", hub, cmp, png);
    assert_int_equal(tu_run_cli(args, &out, &errs), 0);
    assert_string_equal(errs, "");
    snprintf(want, sizeof want, "plot: %s (3 hub models, 2 compared)\n", png);
    assert_non_null(strstr(out, want));
    /* more accurate at no more latency: m-mid beats hand-a; m-slow is more accurate but slower */
    assert_non_null(strstr(out, "hand-a (0.3000 ms, 90.50%): beaten by m-mid\n"));
    assert_non_null(strstr(out, "hand-b (0.0500 ms, 95.00%): beaten by none\n"));
    free(out), free(errs);
    assert_png_1000x640(png);
    size_t with_n = 0;
    char *with = tu_read_file(png, &with_n);

    /* no --compare: the hub alone, to HUB/compare.png; a different picture */
    snprintf(args, sizeof args, "hub plot %s", hub);
    assert_int_equal(tu_run_cli(args, &out, &errs), 0);
    assert_non_null(strstr(out, "(3 hub models, 0 compared)"));
    free(out), free(errs);
    char def[1100];
    snprintf(def, sizeof def, "%s/compare.png", hub);
    assert_png_1000x640(def);
    size_t alone_n = 0;
    char *alone = tu_read_file(def, &alone_n);
    assert_true(alone_n != with_n || memcmp(alone, with, with_n) != 0);
    free(alone);
    free(with);

    /* the object form bench/baselines.py --points writes */
    assert_int_equal(tu_write_file(cmp, "{\"hub\": [], \"baselines\": [{\"name\": \"b\", \"latency_ms\": 0.15,"
                                        " \"test_top1\": 0.91, \"seeds\": 2}]}"),
                     0);
    snprintf(args, sizeof args, "hub plot %s --compare %s --out %s", hub, cmp, png);
    assert_int_equal(tu_run_cli(args, &out, &errs), 0);
    assert_non_null(strstr(out, "b (0.1500 ms, 91.00%): beaten by none\n"));
    free(out), free(errs);

    /* bad input: one line naming the file, the entry and the field; nothing written */
    char *png2 = tu_tmp_path("hub-plot-never.png");
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"[{\"name\": \"a\", ", "line 1"},
        {"\"just a string\"", "expected an array of models, or an object with a \"baselines\" array"},
        {"{\"models\": []}", "expected an array of models"},
        {"[{\"name\": \"a\", \"latency_ms\": 0.1, \"test_top1\": 0.9}, {\"name\": \"b\", \"latency_ms\": -1,"
         " \"test_top1\": 0.9}]",
         "[1].latency_ms: expected a number > 0, got -1"},
        {"{\"baselines\": [{\"name\": \"a\", \"latency_ms\": 0.1}]}",
         "baselines[0].test_top1: expected a number in [0, 1], missing"},
        {"[{\"name\": \"a\", \"latency_ms\": 0.1, \"test_top1\": 91.5}]",
         "[0].test_top1: expected a number in [0, 1], got 91.5"},
        {"[{\"name\": \"\", \"latency_ms\": 0.1, \"test_top1\": 0.9}]", "[0].name: expected a non-empty string"},
        {"[7]", "[0]: expected an object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(tu_write_file(cmp, bad[i].text), 0);
        snprintf(args, sizeof args, "hub plot %s --compare %s --out %s", hub, cmp, png2);
        snprintf(want, sizeof want, "gpunas hub: %s: ", cmp);
        expect_error(args, 1, want);
        expect_error(args, 1, bad[i].want);
        FILE *f = fopen(png2, "rb");
        assert_null(f);
    }
    snprintf(args, sizeof args, "hub plot %s --compare %s/no-such.json", hub, hub);
    expect_error(args, 1, "no-such.json");
    snprintf(args, sizeof args, "hub plot %s --out %s/no-such-dir/x.png", hub, hub);
    expect_error(args, 1, "no-such-dir/x.png");
    snprintf(args, sizeof args, "hub plot %s --frobnicate", hub);
    expect_error(args, 2, "unknown option '--frobnicate'");
    snprintf(args, sizeof args, "hub plot %s --compare", hub);
    expect_error(args, 2, "option --compare: missing value");
    snprintf(args, sizeof args, "hub plot %s/no-hub-here", hub);
    expect_error(args, 1, "no-hub-here");
    free(png2);
    free(cmp);
    free(png);
    free(hub);
}

/* ------------------------------------------------------------------ build */
static void add_trial(gn_store *st, const char *cfg_rel, double acc, double ms)
{
    char *path = tu_source_path(cfg_rel);
    char *cfg = tu_read_file(path, NULL);
    assert_non_null(cfg);
    gn_error err = {{0}};
    gn_trial t;
    gn_trial_init(&t);
    t.encoding = (char *)cfg_rel;
    t.config = cfg;
    t.optimizer = (char *)"test";
    assert_int_equal(gn_store_insert_trial(st, &t, &err), 0);
    t.status = GN_TRIAL_DONE;
    t.val_acc = acc;
    t.latency_ms = ms;
    t.train_s = 1;
    assert_int_equal(gn_store_finish_trial(st, t.id, &t, &err), 0);
    free(cfg);
    free(path);
}

static int hub_models_complete(const char *hub, int *n_models)
{
    static const char *files[] = {"model.json", "config.json", "model.safetensors", "model.onnx", "README.md"};
    DIR *d = opendir(hub);
    if (!d)
        return -1;
    struct dirent *e;
    int bad = 0;
    *n_models = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char p[1400];
        snprintf(p, sizeof p, "%s/%s", hub, e->d_name);
        struct stat st;
        if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        (*n_models)++;
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
            snprintf(p, sizeof p, "%s/%s/%s", hub, e->d_name, files[i]);
            if (stat(p, &st) != 0 || st.st_size == 0) {
                fprintf(stderr, "incomplete model folder: %s missing\n", p);
                bad = 1;
            }
        }
    }
    closedir(d);
    return bad;
}

static void test_hub_build_kill_resume(void **state)
{
    (void)state;
    char *search = tu_tmp_path("hub-search");
    char *hub = tu_tmp_path("hub-built");
    mkdir(search, 0777);
    char db[1200];
    snprintf(db, sizeof db, "%s/search.db", search);
    gn_store *st;
    gn_error err = {{0}};
    assert_int_equal(gn_store_open(db, GN_STORE_CREATE, &st, &err), 0);
    assert_int_equal(gn_store_put_meta(st, "nas.tiers", "0.5,2", &err), 0);
    assert_int_equal(gn_store_put_meta(st, "nas.settings", "{\"dataset\": \"fashion-mnist\"}", &err), 0);
    assert_int_equal(gn_store_put_meta(st, "nas.lat_threads", "1", &err), 0);
    assert_int_equal(gn_store_put_meta(st, "nas.lat_reference_ms", "0.09", &err), 0);
    add_trial(st, "bench/nets/fmnist-tiny.json", 0.71, 0.3);
    add_trial(st, "configs/fmnist-small.json", 0.73, 1.0);
    add_trial(st, "configs/fmnist-wide.json", 0.72, 1.5); /* tier 1's runner-up: not built at top-k 1 */
    gn_store_close(st);

    const char *cli = getenv("GPUNAS_CLI");
    assert_non_null(cli);
    char log[1300];
    snprintf(log, sizeof log, "%s.log", hub);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (!freopen(log, "w", stdout) || !freopen(log, "a", stderr))
            _exit(99);
        execl(cli, cli, "hub", "build", search, "--hub", hub, "--epochs", "1", "--subset", "640", "--lat-duration",
              "0.1", "--jobs", "2", (char *)NULL);
        _exit(98);
    }
    /* kill -9 the moment the first model folder appears */
    int n = 0, killed = 0, status = 0;
    for (int i = 0; i < 20 * 600; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            break;
        int complete = hub_models_complete(hub, &n);
        assert_true(complete <= 0);
        if (n >= 1) {
            kill(pid, SIGKILL);
            killed = 1;
            waitpid(pid, &status, 0);
            break;
        }
        usleep(50 * 1000);
    }
    char *first_log = tu_read_file(log, NULL);
    assert_true(killed);
    assert_int_equal(hub_models_complete(hub, &n), 0);
    assert_true(n >= 1 && n <= 2);
    fprintf(stderr, "killed with %d model(s) published; log:\n%s", n, first_log);
    free(first_log);

    char args[3000], *out, *errs;
    snprintf(args, sizeof args,
             "hub build %s --hub %s --epochs 1 --subset 640 --lat-duration 0.1 --jobs 2", search, hub);
    int rc = tu_run_cli(args, &out, &errs);
    if (rc != 0)
        fail_msg("resumed hub build: exit %d: %s %s", rc, out, errs);
    assert_non_null(strstr(out, "already in the hub as fmnist-t"));
    free(out), free(errs);
    assert_int_equal(hub_models_complete(hub, &n), 0);
    assert_int_equal(n, 2);

    gn_hub h;
    assert_int_equal(gn_hub_load(hub, false, &h, &err), 0);
    assert_int_equal(h.n, 2);
    for (int i = 0; i < h.n; i++) {
        assert_non_null(strstr(h.models[i].name, "fmnist-t"));
        assert_int_equal(h.models[i].threads, 1);
        assert_true(h.models[i].latency_ms > 0 && h.models[i].test_top1 > 0 && h.models[i].test_top1 <= 1);
        assert_true(h.models[i].latency_p10_ms <= h.models[i].latency_ms &&
                    h.models[i].latency_ms <= h.models[i].latency_p90_ms * 1.0001);
        json_t *r = json_loads(h.models[i].record, 0, NULL);
        assert_non_null(r);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "task"), "in_channels")), 1);
        assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "accuracy"), "test_images")), 10000);
        json_decref(r);
        /* the published weights evaluate to the recorded test accuracy */
        snprintf(args, sizeof args, "eval %s/config.json --weights %s/model.safetensors", h.models[i].folder,
                 h.models[i].folder);
        assert_int_equal(tu_run_cli(args, &out, &errs), 0);
        char want[64];
        snprintf(want, sizeof want, "top-1 %.2f%%", 100 * h.models[i].test_top1);
        if (!strstr(out, want))
            fail_msg("eval of %s: wanted '%s' in: %s", h.models[i].name, want, out);
        free(out), free(errs);
    }
    gn_hub_free(&h);
    char png[1300];
    snprintf(png, sizeof png, "%s/pareto.png", hub);
    struct stat sst;
    assert_int_equal(stat(png, &sst), 0);
    assert_true(sst.st_size > 1000);

    /* every hub model's ONNX file: onnx.checker, and ONNX Runtime = gpunas within 1e-4 */
    char *py = tu_source_path(".venv/bin/python");
    char *chk = tu_source_path("tests/onnx/check_hub_onnx.py");
    if (access(py, X_OK) != 0)
        fail_msg("%s is missing: run scripts/venv.sh (scripts/test.sh does) for the ONNX Runtime check", py);
    snprintf(args, sizeof args, "%s %s %s --gpunas %s", py, chk, hub, cli);
    FILE *pp = popen(args, "r");
    assert_non_null(pp);
    char line[512];
    int lines = 0;
    while (fgets(line, sizeof line, pp)) {
        fprintf(stderr, "check_hub_onnx: %s", line);
        lines += strstr(line, "max rel diff") != NULL;
    }
    int prc = pclose(pp);
    assert_int_equal(prc, 0);
    assert_int_equal(lines, 2);
    free(py);
    free(chk);

    /* a third run has nothing to do */
    rc = tu_run_cli(args[0] ? (snprintf(args, sizeof args,
                                        "hub build %s --hub %s --epochs 1 --subset 640 --lat-duration 0.1", search,
                                        hub),
                               args)
                            : args,
                    &out, &errs);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "0 model(s) to build, 2 already in the hub"));
    free(out), free(errs);
    free(search);
    free(hub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hub_index_front_pick),
        cmocka_unit_test(test_hub_plot_compare),
        cmocka_unit_test(test_hub_build_kill_resume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
