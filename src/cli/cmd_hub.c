/*
 * cmd_hub.c — `gpunas hub build|list|pick` (the model hub, gpunas/hub.h).
 *
 *   hub build SEARCH_DIR [--hub DIR] [--epochs E] [--top-k K] [--teacher W.safetensors]
 *             [--batch-sizes 1,8,...] [--jobs N] [--threads T] [--lat-threads T] [--lat-duration S]
 *             [--dataset NAME] [--data DIR] [--seed S]
 *   hub list [HUB] [--json]
 *   hub pick [HUB] --budget-ms X [--device PROFILE.json] [--json]
 *   hub plot [HUB] [--compare FILE.json] [--out FILE.png]   (cmd_hub_plot.c)
 *
 * HUB defaults to ./hub.  Errors: one line "gpunas hub: ..." on stderr, exit 1 (2 for
 * bad usage); `pick` with no model within the budget exits 1 with the reason.
 */
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "gpunas/arch.h"
#include "gpunas/hub.h"
#include "gpunas/latprofile.h"

static const char *CMD = "hub";
static void on_message(void *user, const char *line)
{
    (void)user;
    if (strncmp(line, "warning: ", 9) == 0) { /* as `gpunas search` warns: one line on stderr */
        fflush(stdout);
        fprintf(stderr, "gpunas hub: %s\n", line);
        return;
    }
    printf("%s\n", line);
    fflush(stdout);
}

static void on_epoch(void *user, const char *model, int epoch, int epochs, double val_top1, double seconds)
{
    (void)user;
    printf("  %s: epoch %d/%d  val top-1 %.2f%%  %.0f s\n", model, epoch, epochs, 100 * val_top1, seconds);
    fflush(stdout);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: gpunas hub build SEARCH_DIR [options]   train, time and export each tier's winner\n"
            "       gpunas hub list [HUB] [--json]          the hub's models\n"
            "       gpunas hub pick [HUB] --budget-ms X [--device PROFILE.json] [--json]\n"
            "                                               the most accurate model within X ms\n"
            "       gpunas hub plot [HUB] [--compare FILE.json] [--out FILE.png]\n"
            "                                               the hub's models (test top-1) with other\n"
            "                                               models beside them (default HUB/compare.png)\n"
            "\nbuild options:\n"
            "  --hub DIR            the hub folder (default SEARCH_DIR/hub)\n"
            "  --epochs E           full training epochs (10)\n"
            "  --top-k K            models per tier: the tier's K best by the search's score (1)\n"
            "  --teacher W          distil from this gpunas weights file (its arch is in its metadata)\n"
            "  --batch-sizes LIST   latency batch sizes, e.g. 1,8 (1; batch 1 is always measured)\n"
            "  --jobs N             trainings side by side (default: the CPUs); all training\n"
            "                       ends before any timing starts\n"
            "  --threads T          threads per training (default: the cores other processes\n"
            "                       leave free, re-checked every 2 s)\n"
            "  --lat-threads T      latency threads (default: the search's, meta nas.lat_threads)\n"
            "  --lat-duration S     seconds of each latency measurement's timed phase (3)\n"
            "  --dataset NAME --data DIR   the data (default: the search's)\n"
            "  --seed S             training seed (1)\n"
            "  --subset N           train on N images only (quick checks; default all)\n"
            "\nA killed build continues where it stopped when run again; a model folder in the hub\n"
            "is always complete.  HUB defaults to ./hub for list, pick and plot.\n"
            "\nplot: FILE.json is an array of {\"name\", \"latency_ms\", \"test_top1\"} (or an object\n"
            "with such an array under \"baselines\"); latencies must be taken as the hub's were\n"
            "(batch 1, its threads: see hub list).  Prints, for each, the hub models that beat it.\n");
}

static int do_build(int argc, char **argv)
{
    gn_hub_build_config c;
    gn_hub_build_defaults(&c);
    const char *search_dir = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int r = 0;
        if (a[0] != '-') {
            if (search_dir) {
                cli_error(CMD, "build: one SEARCH_DIR only ('%s' and '%s')", search_dir, a);
                return 2;
            }
            search_dir = a;
            continue;
        }
        if (!strcmp(a, "--hub")) c.hub_dir = v;
        else if (!strcmp(a, "--teacher")) c.teacher_weights = v;
        else if (!strcmp(a, "--dataset")) c.dataset = v;
        else if (!strcmp(a, "--data")) c.data_dir = v;
        else if (!strcmp(a, "--epochs")) r = cli_parse_int(CMD, a, v, 1, 100000, &c.epochs);
        else if (!strcmp(a, "--top-k")) r = cli_parse_int(CMD, a, v, 1, 1000, &c.top_k);
        else if (!strcmp(a, "--threads")) r = cli_parse_int(CMD, a, v, 0, 4096, &c.train_threads);
        else if (!strcmp(a, "--subset")) r = cli_parse_int(CMD, a, v, 0, 100000000, &c.train_subset);
        else if (!strcmp(a, "--jobs")) r = cli_parse_int(CMD, a, v, 1, 4096, &c.jobs);
        else if (!strcmp(a, "--lat-threads")) r = cli_parse_int(CMD, a, v, 1, 4096, &c.lat_threads);
        else if (!strcmp(a, "--seed")) r = cli_parse_u64(CMD, a, v, &c.seed);
        else if (!strcmp(a, "--lat-duration")) {
            double s;
            r = cli_parse_double(CMD, a, v, 0.05, 600, &s);
            c.lat_min_ms = s * 1000;
        } else if (!strcmp(a, "--batch-sizes")) {
            if (!v) {
                cli_error(CMD, "option %s: missing value", a);
                return 2;
            }
            c.n_batches = 1;
            c.batches[0] = 1;
            char buf[256];
            snprintf(buf, sizeof buf, "%s", v);
            for (char *tok = strtok(buf, ","); tok && !r; tok = strtok(NULL, ",")) {
                int b;
                r = cli_parse_int(CMD, a, tok, 1, 65536, &b);
                if (!r && b != 1) {
                    if (c.n_batches == GN_HUB_MAX_BATCHES) {
                        cli_error(CMD, "option %s: at most %d batch sizes", a, GN_HUB_MAX_BATCHES);
                        return 2;
                    }
                    c.batches[c.n_batches++] = b;
                }
            }
        } else {
            cli_error(CMD, "build: unknown option '%s' (see gpunas hub --help)", a);
            return 2;
        }
        if (r)
            return 2;
        i++;
    }
    if (!search_dir) {
        cli_error(CMD, "build: give the search's output folder (gpunas hub build SEARCH_DIR)");
        return 2;
    }
    c.search_dir = search_dir;
    gn_hub_callbacks cb = {.message = on_message, .epoch = on_epoch, .should_stop = cli_should_stop};
    gn_error err = {{0}};
    cli_stop_on_signals(0);
    int made = gn_hub_build(&c, &cb, &err);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (made < 0) {
        cli_error(CMD, "%s", err.msg);
        return cli_stop_requested() ? 130 : 1;
    }
    char hub[4096];
    snprintf(hub, sizeof hub, "%s", c.hub_dir ? c.hub_dir : "");
    if (!c.hub_dir)
        snprintf(hub, sizeof hub, "%s/hub", search_dir);
    printf("hub build: %d model(s) built now; index %s/hub.json, picture %s/pareto.png\n", made, hub, hub);
    return 0;
}

static void print_table(const gn_hub *h)
{
    printf("%-36s %4s %8s %8s  %-19s %9s %10s  %s\n", "model", "tier", "top-1", "top-5", "latency ms (p10-p90)",
           "params", "MACs", "measured on");
    for (int i = 0; i < h->n; i++) {
        const gn_hub_model *m = &h->models[i];
        char lat[64];
        snprintf(lat, sizeof lat, "%.4f (%.3f-%.3f)", m->latency_ms, m->latency_p10_ms, m->latency_p90_ms);
        printf("%-36s %4d %7.2f%% %7.2f%%  %-19s %9lld %10lld  %s\n", m->name, m->tier, 100 * m->test_top1,
               100 * m->test_top5, lat, (long long)m->params, (long long)m->macs, m->device);
        if (m->dropped[0])
            printf("    dropped: %s\n", m->dropped);
    }
}

static int hub_and_flags(int argc, char **argv, const char **hub, bool *json, double *budget, const char **device)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-') {
            *hub = a;
        } else if (!strcmp(a, "--json")) {
            *json = true;
        } else if (budget && !strcmp(a, "--budget-ms")) {
            if (cli_parse_double(CMD, a, i + 1 < argc ? argv[i + 1] : NULL, 0, 1e9, budget))
                return 2;
            i++;
        } else if (device && !strcmp(a, "--device")) {
            if (i + 1 >= argc) {
                cli_error(CMD, "option %s: missing value", a);
                return 2;
            }
            *device = argv[++i];
        } else {
            cli_error(CMD, "unknown option '%s' (see gpunas hub --help)", a);
            return 2;
        }
    }
    return 0;
}

static int do_list(int argc, char **argv)
{
    const char *dir = "hub";
    bool json = false;
    int r = hub_and_flags(argc, argv, &dir, &json, NULL, NULL);
    if (r)
        return r;
    gn_hub h;
    gn_error err = {{0}};
    if (gn_hub_load(dir, false, &h, &err)) {
        cli_error(CMD, "%s", err.msg);
        return 1;
    }
    if (json) {
        json_t *arr = json_array();
        for (int i = 0; i < h.n; i++) {
            json_t *o = json_loads(h.models[i].record, 0, NULL);
            if (o && h.models[i].dropped[0])
                json_object_set_new(o, "dropped", json_string(h.models[i].dropped));
            if (o)
                json_array_append_new(arr, o);
        }
        char *text = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", text ? text : "[]");
        free(text);
        json_decref(arr);
    } else {
        printf("hub %s: %d model(s)\n", dir, h.n);
        print_table(&h);
    }
    gn_hub_free(&h);
    return 0;
}

static int do_pick(int argc, char **argv)
{
    const char *dir = "hub", *device = NULL;
    bool json = false;
    double budget = NAN;
    int r = hub_and_flags(argc, argv, &dir, &json, &budget, &device);
    if (r)
        return r;
    if (!isfinite(budget)) {
        cli_error(CMD, "pick: give --budget-ms X");
        return 2;
    }
    gn_hub h;
    gn_error err = {{0}};
    if (gn_hub_load(dir, false, &h, &err)) {
        cli_error(CMD, "%s", err.msg);
        return 1;
    }
    double *pred = NULL;
    int rc = 1;
    if (device) {
        gn_lat_profile p;
        gn_lat_profile_init(&p);
        if (gn_lat_profile_load(device, &p, &err)) {
            cli_error(CMD, "%s", err.msg);
            goto out;
        }
        pred = calloc((size_t)h.n + 1, sizeof *pred);
        for (int i = 0; pred && i < h.n; i++) {
            char cfg[4200];
            snprintf(cfg, sizeof cfg, "%s/config.json", h.models[i].folder);
            gn_arch *a = NULL;
            gn_error e2 = {{0}};
            if (gn_arch_load(cfg, &a, &e2) || gn_lat_predict(&p, a, &pred[i], NULL, &e2)) {
                fprintf(stderr, "gpunas hub: %s: no prediction: %s\n", h.models[i].name, e2.msg);
                pred[i] = NAN;
            }
            gn_arch_free(a);
        }
        gn_lat_profile_free(&p);
    }
    char why[512];
    int k = gn_hub_pick(&h, budget, pred, why, sizeof why);
    if (k < 0) {
        cli_error(CMD, "%s", why);
        goto out;
    }
    const gn_hub_model *m = &h.models[k];
    if (json) {
        printf("%s\n", m->record);
    } else {
        printf("picked %s: %.2f%% test top-1, %.4f ms%s (budget %.4g ms)\n\n", m->name, 100 * m->test_top1,
               pred ? pred[k] : m->latency_ms, pred ? " predicted for the device profile" : " measured", budget);
        char card[4200];
        snprintf(card, sizeof card, "%s/README.md", m->folder);
        FILE *f = fopen(card, "r");
        if (!f) {
            cli_error(CMD, "%s: cannot read the model card", card);
            goto out;
        }
        char buf[4096];
        size_t nr;
        while ((nr = fread(buf, 1, sizeof buf, f)) > 0)
            fwrite(buf, 1, nr, stdout);
        fclose(f);
    }
    rc = 0;
out:
    free(pred);
    gn_hub_free(&h);
    return rc;
}

int cmd_hub(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "build"))
        return do_build(argc - 2, argv + 2);
    if (!strcmp(argv[1], "list"))
        return do_list(argc - 2, argv + 2);
    if (!strcmp(argv[1], "pick"))
        return do_pick(argc - 2, argv + 2);
    if (!strcmp(argv[1], "plot"))
        return cmd_hub_plot(argc - 2, argv + 2);
    cli_error(CMD, "unknown sub-command '%s' (build, list, pick, plot)", argv[1]);
    return 2;
}
