/*
 * cmd_hub_plot.c — `gpunas hub plot [HUB] [--compare FILE.json] [--out FILE.png]`: the
 * hub's models on the accuracy/latency plane, with other models beside them.
 *
 * Why: the hub's promise is measured (GPUNet's claim, issue 20): at equal latency on
 * this device its models are more accurate than hand-designed ones.  The user times and
 * trains their own networks (`gpunas latency`, `gpunas train`) and wants to see them on
 * the hub's picture.  `hub build` draws HUB/pareto.png from the search (candidates by
 * proxy accuracy); this draws only test accuracies: the hub's models as diamonds (its
 * front joined by the step line, tier edges from the models' tiers) and each compared
 * model as a labelled grey square (gpunas/plot.h, GN_PLOT_OTHER).
 *
 * FILE.json: a JSON array of {"name": "...", "latency_ms": > 0, "test_top1": 0..1}
 * objects, or an object holding such an array under "baselines" (what
 * `bench/baselines.py --points` writes).  Other keys are ignored.  The latencies must
 * be in the hub's frame: batch 1 at the hub's threads (`gpunas hub list` shows them),
 * the ratio to the built-in reference network (`gpunas latency --json`, "reference")
 * times the hub's reference baseline (model.json latency.reference_baseline_ms), as
 * bench/baselines.py takes them.  gpunas cannot check how a given number was taken, so
 * the title says "latencies as given".
 *
 * Output: PATH (default HUB/compare.png), written atomically; one line on stdout
 * naming it, then one line per compared model: the hub models that beat it (more
 * accurate at no more latency), or "none".  Errors: one line naming the file, the entry
 * and the field ("gpunas hub: b.json: [2].latency_ms: expected a number > 0, got -1"),
 * exit 1; bad usage exit 2.  Nothing is written on error.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "gpunas/hub.h"
#include "gpunas/plot.h"

#define CMD "hub"
#define NAME_MAX_LEN 128

typedef struct {
    char name[NAME_MAX_LEN];
    double latency_ms, top1;
} compared;

/* FILE.json -> *out (malloc'd, *n entries); 0, or -1 after a one-line error */
static int load_compared(const char *path, compared **out, int *n)
{
    *out = NULL;
    *n = 0;
    json_error_t je;
    json_t *root = json_load_file(path, JSON_DECODE_ANY, &je);
    if (!root) {
        cli_error(CMD, "%s: line %d: %s", path, je.line, je.text);
        return -1;
    }
    const char *prefix = "";
    json_t *arr = root;
    if (json_is_object(root)) {
        arr = json_object_get(root, "baselines");
        prefix = "baselines";
    }
    if (!json_is_array(arr)) {
        cli_error(CMD, "%s: expected an array of models, or an object with a \"baselines\" array", path);
        json_decref(root);
        return -1;
    }
    size_t m = json_array_size(arr);
    compared *c = calloc(m ? m : 1, sizeof *c);
    if (!c) {
        cli_error(CMD, "%s: out of memory", path);
        json_decref(root);
        return -1;
    }
    for (size_t i = 0; i < m; i++) {
        json_t *o = json_array_get(arr, i), *name = json_object_get(o, "name"),
               *lat = json_object_get(o, "latency_ms"), *acc = json_object_get(o, "test_top1");
        const char *bad = NULL, *field = NULL;
        char got[64] = "";
        if (!json_is_object(o))
            bad = "expected an object";
        else if (!json_is_string(name) || !*json_string_value(name) ||
                 strlen(json_string_value(name)) >= NAME_MAX_LEN)
            field = "name", bad = "expected a non-empty string of under 128 bytes";
        else if (!json_is_number(lat) || !(json_number_value(lat) > 0) || !isfinite(json_number_value(lat)))
            field = "latency_ms", bad = "expected a number > 0";
        else if (!json_is_number(acc) || !(json_number_value(acc) >= 0 && json_number_value(acc) <= 1))
            field = "test_top1", bad = "expected a number in [0, 1]";
        if (bad) {
            json_t *v = field ? json_object_get(o, field) : o;
            if (!v)
                snprintf(got, sizeof got, ", missing");
            else if (json_is_number(v))
                snprintf(got, sizeof got, ", got %g", json_number_value(v));
            cli_error(CMD, "%s: %s[%zu]%s%s: %s%s", path, prefix, i, field ? "." : "", field ? field : "", bad,
                      got);
            free(c);
            json_decref(root);
            return -1;
        }
        snprintf(c[i].name, sizeof c[i].name, "%s", json_string_value(name));
        c[i].latency_ms = json_number_value(lat);
        c[i].top1 = json_number_value(acc);
    }
    json_decref(root);
    *out = c;
    *n = (int)m;
    return 0;
}

/* the tiers' upper edges, ascending and distinct, from the hub's models */
static int tier_edges(const gn_hub *h, double *edges, int cap)
{
    int n = 0;
    for (int i = 0; i < h->n; i++) {
        double e = h->models[i].tier_max_ms;
        if (!(e > 0) || !isfinite(e))
            continue;
        int k = 0;
        while (k < n && edges[k] < e)
            k++;
        if ((k < n && edges[k] == e) || n == cap)
            continue;
        memmove(edges + k + 1, edges + k, (size_t)(n - k) * sizeof *edges);
        edges[k] = e;
        n++;
    }
    return n;
}

int cmd_hub_plot(int argc, char **argv)
{
    const char *dir = "hub", *compare = NULL, *out = NULL;
    bool have_dir = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--compare") || !strcmp(a, "--out")) {
            if (i + 1 >= argc) {
                cli_error(CMD, "option %s: missing value", a);
                return 2;
            }
            *(!strcmp(a, "--compare") ? &compare : &out) = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            cli_error(CMD, "plot: unknown option '%s' (see gpunas hub --help)", a);
            return 2;
        } else if (have_dir) {
            cli_error(CMD, "plot: one HUB only ('%s' and '%s')", dir, a);
            return 2;
        } else {
            dir = a, have_dir = true;
        }
    }
    compared *c = NULL;
    int nc = 0;
    if (compare && load_compared(compare, &c, &nc))
        return 1;
    gn_hub h;
    gn_error err = {{0}};
    if (gn_hub_load(dir, false, &h, &err)) {
        cli_error(CMD, "%s", err.msg);
        free(c);
        return 1;
    }
    int rc = 1;
    char path[4200];
    if (out)
        snprintf(path, sizeof path, "%s", out);
    else
        snprintf(path, sizeof path, "%s/compare.png", dir);
    int n = h.n + nc;
    gn_plot_point *pts = calloc((size_t)n + 1, sizeof *pts);
    const char **labels = calloc((size_t)n + 1, sizeof *labels);
    double edges[64];
    if (!pts || !labels) {
        cli_error(CMD, "plot: out of memory");
        goto done;
    }
    for (int i = 0; i < h.n; i++) {
        const gn_hub_model *m = &h.models[i];
        labels[i] = m->name;
        pts[i] = (gn_plot_point){m->latency_ms, m->test_top1, m->tier,
                                 GN_PLOT_HUB | (m->dropped[0] ? 0 : GN_PLOT_FRONT)};
    }
    for (int i = 0; i < nc; i++) {
        labels[h.n + i] = c[i].name;
        pts[h.n + i] = (gn_plot_point){c[i].latency_ms, c[i].top1, -1, GN_PLOT_OTHER};
    }
    gn_plot_opts o = {.title = nc ? "gpunas hub models and compared models (test accuracy; latencies as given)"
                                  : "gpunas hub models (test accuracy)",
                      .x_label = "batch-1 latency (ms)",
                      .y_label = "test top-1 (%)",
                      .tier_edges = edges,
                      .n_tiers = tier_edges(&h, edges, 64),
                      .labels = labels};
    if (gn_plot_pareto_png(path, pts, n, &o, &err)) {
        cli_error(CMD, "%s", err.msg);
        goto done;
    }
    printf("plot: %s (%d hub model%s, %d compared)\n", path, h.n, h.n == 1 ? "" : "s", nc);
    for (int i = 0; i < nc; i++) {
        printf("%s (%.4f ms, %.2f%%): beaten by", c[i].name, c[i].latency_ms, 100 * c[i].top1);
        int k = 0;
        for (int j = 0; j < h.n; j++)
            if (h.models[j].test_top1 > c[i].top1 && h.models[j].latency_ms <= c[i].latency_ms)
                printf("%s %s", k++ ? "," : "", h.models[j].name);
        printf("%s\n", k ? "" : " none");
    }
    rc = 0;
done:
    free(pts);
    free(labels);
    free(c);
    gn_hub_free(&h);
    return rc;
}
