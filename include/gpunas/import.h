/*
 * gpunas/import.h — NVIDIA's GPUNet checkpoints (PyTorch files) into a gpunas network.
 *
 * Design
 *   NVIDIA releases GPUNet-0/1/2, P0/P1 and D1/D2 as PyTorch files (`*.pth.tar`,
 *   torch.save of a dict).  The non-P ones come from timm's CheckpointSaver:
 *     {"epoch", "arch", "state_dict", "optimizer", "version", "args" (argparse
 *      Namespace), "amp_scaler", "state_dict_ema", "metric"}
 *   and NVIDIA evaluates them with the EMA weights (timm load_checkpoint(use_ema=True));
 *   the P models are a plain state dict (torch.save(model.state_dict())).  Their keys
 *   are the builder's module names (gpunas/arch.h gn_arch_module_name), which are
 *   gpunas's own tensor names, so an import is a strict one-to-one copy:
 *
 *     1. gpunas/torchfile.h reads the file without executing anything;
 *     2. the state dict is chosen: opts.key if given, else "state_dict_ema" with
 *        opts.ema, else "state_dict", else the root when it is itself a state dict;
 *     3. keys lose a leading "module." (DataParallel / DDP wrappers), as timm's
 *        loader does;
 *     4. every tensor of the network must be there with PyTorch's exact shape and a
 *        floating-point dtype (float32; float16, bfloat16 and float64 are converted),
 *        every BN's num_batches_tracked an integer scalar, and the state dict may hold
 *        nothing else — a checkpoint of another config fails on the first tensor that
 *        differs, naming it, both shapes and the config.
 *   Only after all of that are the values written into the network, so a failed
 *   import leaves the network (and any file the caller would write) untouched.
 *
 * Errors: one line, "FILE: ENTRY: tensor 'NAME': reason", e.g.
 *   "0.65ms.pth.tar: state_dict_ema: tensor 'network.stage: 4 layer10.conv_pw.weight':
 *    shape [1280,256,1,1] in the checkpoint, [1280,64,1,1] in gpunet-1.json"
 */
#ifndef GPUNAS_IMPORT_H
#define GPUNAS_IMPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "gpunas/error.h"
#include "gpunas/network.h"

typedef struct {
    const char *key; /* top-level entry holding the state dict; NULL: see above */
    bool ema;        /* use "state_dict_ema" */
} gn_import_opts;

typedef struct {
    char format[8];       /* "zip" or "legacy" */
    char entry[64];       /* "state_dict_ema", "state_dict", "(the file itself)" */
    int n_tensors;        /* entries of the state dict */
    int n_converted;      /* tensors converted to float32 from another float dtype */
    bool has_ema;         /* the file has "state_dict_ema" */
    bool stripped_module; /* keys had the "module." prefix */
    int64_t epoch;        /* the checkpoint's "epoch", or -1 */
    char arch[64];        /* the checkpoint's "arch" string, or "" */
    int64_t bn_batches;   /* num_batches_tracked read (the largest) */
} gn_import_info;

/* Fill NET's parameters and BN statistics from the PyTorch checkpoint PATH. */
int gn_net_import_torch(gn_net *net, const char *path, const gn_import_opts *opts, gn_import_info *info,
                        gn_error *err);

#endif
