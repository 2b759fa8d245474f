/*
 * cmd_zerocost.c — `gpunas zerocost CONFIG`: zero-cost proxies of an untrained network
 * (issue 13): the NASWOT score (gn_net_naswot, Mellor et al. 2021) on batches of the
 * training split (the 90% the full recipe trains on: --val-fraction 0.1, split seed 42),
 * resized and normalised as for evaluation, the network freshly initialised.  Repeats
 * use other seeds (another initialisation and another batch); the mean is printed.
 *
 *   gpunas zerocost CONFIG [--batch 64] [--seed 1] [--repeats 3] [--dataset KIND]
 *                   [--data DIR] [--threads N] [--json] [--dump DIR]
 *
 * --dump DIR (with --repeats 1) writes the initial weights (DIR/init.safetensors) and
 * the batch (DIR/batch.npy) so that an independent implementation can recompute the
 * score (tests/pytorch/naswot_ref.py does, with PyTorch).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/cli.h"
#include "gpunas/arch.h"
#include "gpunas/backend.h"
#include "gpunas/data.h"
#include "gpunas/network.h"
#include "gpunas/train.h"

static const char *CMD = "zerocost";

static void usage(FILE *f)
{
    fprintf(f, "usage: gpunas zerocost CONFIG.json [--batch B (64)] [--seed S (1)] [--repeats R (3)]\n"
               "         [--dataset KIND (fashion-mnist)] [--data DIR] [--threads N] [--json] [--dump DIR]\n"
               "The NASWOT score (log|det K| of the activation-pattern kernel of a batch) of the untrained\n"
               "network; the mean over R initialisations and batches.\n");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int cmd_zerocost(int argc, char **argv)
{
    const char *config = NULL, *dataset = "fashion-mnist", *data_dir = NULL, *dump = NULL;
    int batch = 64, repeats = 3, threads = 0, json = 0;
    uint64_t seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int r = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--json")) {
            json = 1;
            continue;
        } else if (a[0] != '-') {
            if (config) {
                cli_error(CMD, "unexpected argument '%s' (one CONFIG.json expected)", a);
                return 2;
            }
            config = a;
            continue;
        }
        if (!v) {
            cli_error(CMD, "option %s: missing value", a);
            return 2;
        }
        if (!strcmp(a, "--batch")) r = cli_parse_int(CMD, a, v, 2, 4096, &batch);
        else if (!strcmp(a, "--repeats")) r = cli_parse_int(CMD, a, v, 1, 1000, &repeats);
        else if (!strcmp(a, "--threads")) r = cli_parse_int(CMD, a, v, 0, 4096, &threads);
        else if (!strcmp(a, "--seed")) r = cli_parse_u64(CMD, a, v, &seed);
        else if (!strcmp(a, "--dataset")) dataset = v;
        else if (!strcmp(a, "--data")) data_dir = v;
        else if (!strcmp(a, "--dump")) dump = v;
        else {
            cli_error(CMD, "unknown option '%s' (see gpunas zerocost --help)", a);
            return 2;
        }
        if (r)
            return 2;
        i++;
    }
    if (!config) {
        usage(stderr);
        return 2;
    }
    if (dump && repeats != 1) {
        cli_error(CMD, "--dump needs --repeats 1 (one initialisation and one batch)");
        return 2;
    }
    gn_error err = {{0}};
    gn_arch *arch = NULL;
    gn_backend *be = NULL;
    gn_dataset *d = NULL;
    gn_dataset_view tr = {0}, val = {0};
    int rc = 1;
    double t0 = now_s(), sum = 0;
    double *scores = calloc((size_t)repeats, sizeof(double));
    int64_t units = 0;
    if (!scores || gn_arch_load(config, &arch, &err) || gn_arch_resolve(arch, &err) ||
        gn_dataset_load(dataset, data_dir, "train", 0, &d, &err) || gn_view_split(d, 0.1, 42, &tr, &val, &err) ||
        gn_backend_create("dnnl", &be, &err) || gn_backend_set_threads(be, threads, &err))
        goto fail;
    for (int r = 0; r < repeats; r++) {
        if (gn_naswot_on_data(arch, be, &tr, batch, seed + (uint64_t)r, dump, &scores[r], &units, &err))
            goto fail;
        sum += scores[r];
    }
    double mean = sum / repeats, secs = now_s() - t0;
    if (json) {
        printf("{\"config\": \"%s\", \"naswot\": %.10g, \"scores\": [", config, mean);
        for (int r = 0; r < repeats; r++)
            printf("%s%.10g", r ? ", " : "", scores[r]);
        printf("], \"units\": %lld, \"batch\": %d, \"seconds\": %.3f}\n", (long long)units, batch, secs);
    } else {
        printf("naswot %.4f (mean of %d: ", mean, repeats);
        for (int r = 0; r < repeats; r++)
            printf("%s%.4f", r ? ", " : "", scores[r]);
        printf("), %lld ReLU/Swish units, batch %d, %.2f s\n", (long long)units, batch, secs);
    }
    rc = 0;
    goto done;
fail:
    cli_error(CMD, "%s", err.msg);
done:
    free(scores);
    gn_view_free(&tr);
    gn_view_free(&val);
    gn_dataset_free(d);
    gn_backend_destroy(be);
    gn_arch_free(arch);
    return rc;
}
