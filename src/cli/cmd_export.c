/*
 * cmd_export.c — `gpunas export CONFIG --weights W.safetensors -o M.onnx [--res R]
 *                 [--batch N|dynamic] [--classes N] [--in-ch C] [--opset N]
 *                 [--same-pad] [--doc TEXT]`.
 *
 * Like eval, the input shape comes from the weights file: gn_net_save records the
 * arch it saved (metadata "arch"), so its resolution, input channels and classes are
 * used unless --res / --in-ch / --classes are given (then the config's for anything
 * the file does not record).  A weights file trained on Fashion-MNIST (1 channel, 10
 * classes, 28x28) therefore exports without extra flags.  The net is built on the ref
 * backend (export only folds and copies weights), the weights are loaded strictly
 * (gn_net_load: a config/weights mismatch is one line naming the weights file and the
 * tensor, exit 1, and no output file), and gn_onnx_export writes the model
 * atomically.  Prints one line: path, opset, batch, input shape, nodes, bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "gpunas/arch.h"
#include "gpunas/network.h"
#include "gpunas/onnx.h"
#include "gpunas/safetensors.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: gpunas export CONFIG.json --weights W.safetensors -o M.onnx [--res R]\n"
               "         [--batch N|dynamic (1)] [--classes N] [--in-ch C] [--opset N (13)] [--same-pad]\n"
               "         [--doc TEXT]\n"
               "  Writes the inference graph (BatchNormalization folded into the conv weights, as gpunas\n"
               "  runs it) as ONNX: input \"input\" float32 [N,C,R,R], output \"logits\" float32 [N,classes].\n"
               "  R, C and classes default to the arch recorded in the weights file (else the config's).\n"
               "  --batch dynamic makes the batch dimension symbolic (\"N\").\n");
}

/* The arch a gpunas weights file records (metadata "arch"), or NULL when it has none
 * or it does not parse (then the config's values are used). */
static gn_arch *weights_arch(const char *path, gn_error *err, int *rc)
{
    gn_st_file *f;
    *rc = 0;
    if (gn_st_open(path, &f, err)) {
        *rc = -1;
        return NULL;
    }
    const char *text = gn_st_meta(f, "arch");
    gn_arch *a = NULL;
    gn_error ignore;
    if (text && gn_arch_parse(text, path, &a, &ignore) != 0)
        a = NULL;
    gn_st_close(f);
    return a;
}

#define NEXT() (i + 1 < argc ? argv[++i] : NULL)

int cmd_export(int argc, char **argv)
{
    const char *cmd = "export";
    const char *config = NULL, *weights = NULL, *out = NULL, *doc = NULL;
    int res = 0, classes = 0, in_ch = 0, batch = 1, opset = 13;
    bool same_pad = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--weights") == 0) {
            if (!(weights = NEXT()))
                goto missing;
        } else if (strcmp(a, "-o") == 0 || strcmp(a, "--out") == 0) {
            if (!(out = NEXT()))
                goto missing;
        } else if (strcmp(a, "--res") == 0) {
            if (cli_parse_int(cmd, a, NEXT(), 1, 4096, &res))
                return 2;
        } else if (strcmp(a, "--classes") == 0) {
            if (cli_parse_int(cmd, a, NEXT(), 1, 1 << 20, &classes))
                return 2;
        } else if (strcmp(a, "--in-ch") == 0) {
            if (cli_parse_int(cmd, a, NEXT(), 1, 4096, &in_ch))
                return 2;
        } else if (strcmp(a, "--batch") == 0) {
            const char *v = NEXT();
            if (v && strcmp(v, "dynamic") == 0)
                batch = 0;
            else if (cli_parse_int(cmd, a, v, 1, 1 << 20, &batch))
                return 2;
        } else if (strcmp(a, "--opset") == 0) {
            if (cli_parse_int(cmd, a, NEXT(), 13, 17, &opset))
                return 2;
        } else if (strcmp(a, "--doc") == 0) {
            if (!(doc = NEXT()))
                goto missing;
        } else if (strcmp(a, "--same-pad") == 0) {
            same_pad = true;
        } else if (a[0] == '-' && a[1]) {
            cli_error(cmd, "unknown option '%s' (see gpunas export --help)", a);
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
    if (!config || !weights || !out) {
        cli_error(cmd, "%s (see gpunas export --help)",
                  !config ? "missing CONFIG.json" : !weights ? "missing --weights W" : "missing -o M.onnx");
        return 2;
    }
    int rc = 1, wrc;
    gn_error err;
    gn_arch *arch = NULL, *warch = NULL;
    gn_backend *be = NULL;
    gn_net *net = NULL;
    if (gn_arch_load(config, &arch, &err)) {
        cli_error(cmd, "%s", err.msg);
        goto done;
    }
    warch = weights_arch(weights, &err, &wrc);
    if (wrc) {
        cli_error(cmd, "%s", err.msg);
        goto done;
    }
    if (warch) {
        if (!res)
            res = warch->resolution;
        if (!in_ch)
            in_ch = warch->layers[1].in_ch;
        if (!classes)
            classes = warch->layers[warch->n_layers - 1].num_classes;
    }
    arch->same_pad_fix = same_pad;
    if (gn_arch_resolve(arch, &err) || (in_ch && gn_arch_set_in_channels(arch, in_ch, &err)) ||
        (classes && gn_arch_set_classes(arch, classes, &err)) || (res && gn_arch_set_resolution(arch, res, &err)) ||
        gn_backend_create("ref", &be, &err) || gn_net_create(arch, be, &net, &err) ||
        gn_net_load(net, weights, &err)) {
        cli_error(cmd, "%s", err.msg);
        goto done;
    }
    gn_onnx_opts o = {.batch = batch, .opset = opset, .doc = doc};
    gn_onnx_info info;
    if (gn_onnx_export(net, out, &o, &err) || gn_onnx_read_info(out, &info, &err)) {
        cli_error(cmd, "%s", err.msg);
        goto done;
    }
    char bs[32];
    if (batch)
        snprintf(bs, sizeof bs, "%d", batch);
    else
        snprintf(bs, sizeof bs, "%s", info.batch_param);
    printf("wrote %s: opset %d, batch %s, input [%s,%d,%d,%d] -> logits [%s,%d], %d nodes, %lld weights, %lld bytes "
           "(%s with %s, BN folded)\n",
           out, info.opset, batch ? bs : "dynamic", bs, info.in_c, info.in_h, info.in_w, bs, info.classes,
           info.n_nodes, (long long)info.n_weights, (long long)info.bytes, config, weights);
    rc = 0;
done:
    gn_net_free(net);
    gn_backend_destroy(be);
    gn_arch_free(warch);
    gn_arch_free(arch);
    return rc;
}
