/*
 * cmd_import.c — `gpunas import CHECKPOINT --config CONFIG.json -o W.safetensors`:
 * NVIDIA's GPUNet checkpoints (PyTorch files, read by gpunas/torchfile.h without
 * executing anything) or weights of an older gpunas, into a gpunas weights file whose
 * keys are NVIDIA's state-dict keys (gpunas/import.h).  The output is written only
 * after the whole checkpoint has been checked against the config, atomically.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "gpunas/arch.h"
#include "gpunas/backend.h"
#include "gpunas/import.h"
#include "gpunas/network.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: gpunas import CHECKPOINT --config CONFIG.json -o W.safetensors [--ema] [--key NAME]\n"
               "  CHECKPOINT: a PyTorch file (torch.save: NVIDIA's GPUNet *.pth.tar, a timm training\n"
               "  checkpoint or a plain state dict; zip or legacy format), or a .safetensors file of an\n"
               "  older gpunas (\"layers.{I}.\" names).  Reads it without executing any pickle code,\n"
               "  checks every tensor against CONFIG (names, shapes, dtypes; nothing else allowed) and\n"
               "  writes W.safetensors with NVIDIA's state-dict keys.\n"
               "  --ema       the EMA weights (\"state_dict_ema\"; NVIDIA evaluates GPUNet-0/1/2/D1/D2\n"
               "              with them); default \"state_dict\", or the file itself for a plain state dict\n"
               "  --key NAME  another top-level entry holding the state dict\n");
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

#define NEXT() (i + 1 < argc ? argv[++i] : NULL)

int cmd_import(int argc, char **argv)
{
    const char *cmd = "import";
    const char *ckpt = NULL, *config = NULL, *out = NULL;
    gn_import_opts o = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--config") == 0) {
            if (!(config = NEXT()))
                goto missing;
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--out") == 0) {
            if (!(out = NEXT()))
                goto missing;
        } else if (strcmp(a, "--key") == 0) {
            if (!(o.key = NEXT()))
                goto missing;
        } else if (strcmp(a, "--ema") == 0) {
            o.ema = true;
        } else if (a[0] == '-' && a[1]) {
            cli_error(cmd, "unknown option '%s' (see gpunas import --help)", a);
            return 2;
        } else if (!ckpt) {
            ckpt = a;
        } else {
            cli_error(cmd, "unexpected argument '%s' (one CHECKPOINT expected)", a);
            return 2;
        }
        continue;
    missing:
        cli_error(cmd, "option %s: missing value", a);
        return 2;
    }
    if (!ckpt || !config || !out) {
        cli_error(cmd, "%s (see gpunas import --help)",
                  !ckpt ? "missing CHECKPOINT" : !config ? "missing --config CONFIG.json" : "missing -o W.safetensors");
        return 2;
    }
    if (o.ema && o.key) {
        cli_error(cmd, "--ema and --key both choose the state dict: give one");
        return 2;
    }
    bool st = ends_with(ckpt, ".safetensors");
    if (st && (o.ema || o.key)) {
        cli_error(cmd, "%s: --ema and --key apply to PyTorch checkpoints, not to a safetensors file", ckpt);
        return 2;
    }
    int rc = 1;
    gn_error err;
    gn_arch *arch = NULL;
    gn_backend *be = NULL;
    gn_net *net = NULL;
    gn_import_info info;
    if (gn_arch_load(config, &arch, &err) || gn_backend_create("ref", &be, &err) ||
        gn_net_create(arch, be, &net, &err)) {
        cli_error(cmd, "%s", err.msg);
        goto done;
    }
    if (st ? gn_net_load(net, ckpt, &err) : gn_net_import_torch(net, ckpt, &o, &info, &err)) {
        cli_error(cmd, "%s", err.msg);
        goto done;
    }
    if (gn_net_save(net, out, &err)) {
        cli_error(cmd, "%s", err.msg);
        goto done;
    }
    if (st) {
        printf("rewrote %s as %s with NVIDIA's state-dict keys (%d tensors, %lld parameters, %s)\n", ckpt, out,
               gn_net_num_params(net), (long long)gn_net_trainable_count(net), config);
    } else {
        char extra[160] = "";
        if (info.epoch >= 0 || info.arch[0])
            snprintf(extra, sizeof extra, "; checkpoint of '%s', epoch %lld", info.arch[0] ? info.arch : "?",
                     (long long)info.epoch);
        printf("imported %s of %s (%s format, %d tensors%s%s) into %s: %lld parameters of %s, "
               "num_batches_tracked %lld%s\n",
               info.entry, ckpt, info.format, info.n_tensors, info.stripped_module ? ", \"module.\" removed" : "",
               extra, out, (long long)gn_net_trainable_count(net), config, (long long)info.bn_batches,
               info.n_converted ? " (some tensors converted to float32)" : "");
        if (info.has_ema && !o.ema && !o.key)
            printf("note: the checkpoint also holds EMA weights (state_dict_ema), which NVIDIA evaluates "
                   "GPUNet-0/1/2/D1/D2 with: add --ema to import those\n");
    }
    rc = 0;
done:
    gn_net_free(net);
    gn_backend_destroy(be);
    gn_arch_free(arch);
    return rc;
}
