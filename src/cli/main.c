/* main.c — `gpunas <subcommand> ...` dispatch. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "gpunas/error.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"info", cmd_info, "describe a GPUNet JSON config: per-layer shapes, params, MACs"},
    {"format", cmd_format, "rewrite a GPUNet JSON config in the canonical layout"},
    {"train", cmd_train, "train a config on a data set (checkpoints, --resume, metrics.jsonl)"},
    {"eval", cmd_eval, "test top-1/top-5 and confusion matrix of trained weights"},
    {"predict", cmd_predict, "classify images (top-5) or a .npy batch (logits) with trained weights"},
    {"init", cmd_init, "write random weights for a config (random BN statistics; arch recorded)"},
    {"import", cmd_import, "NVIDIA's GPUNet checkpoints (PyTorch .pth.tar, read without executing code) -> safetensors"},
    {"export", cmd_export, "export weights as an ONNX model (BN folded, as gpunas runs inference)"},
    {"zerocost", cmd_zerocost, "zero-cost proxy of an untrained config (NASWOT score on a batch)"},
    {"latency", cmd_latency, "measure a config's inference latency (median, spread, memory, per layer)"},
    {"profile", cmd_profile, "build a device latency profile: lookup table + calibrated predictor"},
    {"search", cmd_search, "latency-tiered architecture search (resumable; writes tier winners)"},
    {"unas", cmd_unas, "UNAS: supernet search per latency target (Gumbel + REINFORCE); derived nets stored as trials"},
    {"hub", cmd_hub, "model hub: build (train, time, export tier winners), list, pick by latency budget"},
    {"worker", cmd_worker, "claim and run a search's jobs from its store (many machines; --store postgresql://...)"},
    {"trials", cmd_trials, "list the trials stored by a search (table or --json)"},
    {"workers", cmd_workers, "list the workers of a shared store (seen recently) and their leased jobs"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: gpunas <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "\n`gpunas <command> --help` for a command's options.\n");
}

static void print_notice(const char *msg, void *ctx)
{
    (void)ctx;
    fprintf(stderr, "gpunas: notice: %s\n", msg);
}

int main(int argc, char **argv)
{
    gn_notice_set_handler(print_notice, NULL);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("gpunas %s\n", GPUNAS_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "gpunas: unknown command '%s' (see gpunas --help)\n", argv[1]);
    return 2;
}
