/*
 * cmd_init.c — `gpunas init CONFIG -o W.safetensors [--seed S] [--res R] [--classes N]
 *               [--in-ch C] [--same-pad]`.
 *
 * Random weights for a config, without training: gn_net_init with the seed (Kaiming
 * convs, see gpunas/network.h), then gn_net_randomize_bn with a seed derived from it
 * (gamma, beta and running statistics away from the identity, so that BN folding in
 * inference and export is exercised), then gn_net_save, which records the arch
 * (with the --res/--classes/--in-ch overrides applied) in the file's metadata, so
 * `gpunas export` and `gpunas eval` pick the shape up from the file.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "gpunas/arch.h"
#include "gpunas/network.h"

/* the BN statistics' seed: decorrelated from the init seed */
#define BN_SEED_MIX 0x9E3779B97F4A7C15ull

static void usage(FILE *f)
{
    fprintf(f, "usage: gpunas init CONFIG.json -o W.safetensors [--seed S (1)] [--res R] [--classes N]\n"
               "         [--in-ch C] [--same-pad]\n"
               "  Random weights: gpunas's initialisation with seed S, and BN layers given random\n"
               "  gamma/beta/running statistics (so folding BN is not the identity); the arch (with the\n"
               "  overrides) is recorded in the file.\n");
}

#define NEXT() (i + 1 < argc ? argv[++i] : NULL)

int cmd_init(int argc, char **argv)
{
    const char *cmd = "init";
    const char *config = NULL, *out = NULL;
    int res = 0, classes = 0, in_ch = 0;
    uint64_t seed = 1;
    bool same_pad = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--out") == 0) {
            if (!(out = NEXT()))
                goto missing;
        } else if (strcmp(a, "--seed") == 0) {
            if (cli_parse_u64(cmd, a, NEXT(), &seed))
                return 2;
        } else if (strcmp(a, "--res") == 0) {
            if (cli_parse_int(cmd, a, NEXT(), 1, 4096, &res))
                return 2;
        } else if (strcmp(a, "--classes") == 0) {
            if (cli_parse_int(cmd, a, NEXT(), 1, 1 << 20, &classes))
                return 2;
        } else if (strcmp(a, "--in-ch") == 0) {
            if (cli_parse_int(cmd, a, NEXT(), 1, 4096, &in_ch))
                return 2;
        } else if (strcmp(a, "--same-pad") == 0) {
            same_pad = true;
        } else if (a[0] == '-' && a[1]) {
            cli_error(cmd, "unknown option '%s' (see gpunas init --help)", a);
            return 2;
        } else if (!config) {
            config = a;
        } else {
            cli_error(cmd, "unexpected argument '%s' (one CONFIG.json expected)", a);
            return 2;
        }
        continue;
    missing:
        cli_error(cmd, "option %s: missing value", a);
        return 2;
    }
    if (!config || !out) {
        cli_error(cmd, "%s (see gpunas init --help)", !config ? "missing CONFIG.json" : "missing -o W.safetensors");
        return 2;
    }
    int rc = 1;
    gn_error err;
    gn_arch *arch = NULL;
    gn_backend *be = NULL;
    gn_net *net = NULL;
    if (gn_arch_load(config, &arch, &err)) {
        cli_error(cmd, "%s", err.msg);
        goto done;
    }
    arch->same_pad_fix = same_pad;
    if (gn_arch_resolve(arch, &err) || (in_ch && gn_arch_set_in_channels(arch, in_ch, &err)) ||
        (classes && gn_arch_set_classes(arch, classes, &err)) || (res && gn_arch_set_resolution(arch, res, &err)) ||
        gn_backend_create("ref", &be, &err) || gn_net_create(arch, be, &net, &err) || gn_net_init(net, seed, &err) ||
        gn_net_randomize_bn(net, seed ^ BN_SEED_MIX, &err) || gn_net_save(net, out, &err)) {
        cli_error(cmd, "%s", err.msg);
        goto done;
    }
    printf("wrote %s: %s at %dx%d, %d input channels, %d classes, %lld params, seed %llu (random init, random BN "
           "statistics)\n",
           out, config, arch->resolution, arch->resolution, arch->layers[1].in_ch,
           arch->layers[arch->n_layers - 1].num_classes, (long long)arch->params, (unsigned long long)seed);
    rc = 0;
done:
    gn_net_free(net);
    gn_backend_destroy(be);
    gn_arch_free(arch);
    return rc;
}
