/*
 * gpunas/network.h — a GPUNet network built from a gn_arch, on a compute backend.
 *
 * Design
 *   gn_net_create() lowers every JSON layer into a flat list of primitive nodes
 *   (conv, batch norm, activation, global pool, channel scale, add, linear, dropout,
 *   drop-path) over numbered values; a residual block's skip is just a value read by
 *   two nodes.  Training runs the list forward, keeping every value, then backward in
 *   reverse, accumulating gradients of values read by several nodes.  Search and
 *   training code only see parameters, gradients and logits.
 *
 *   The supernet (gpunas/supernet.h) lowers into the same graph plus mix nodes
 *   (per-sample weighted sums of several values); before each forward a liveness pass
 *   from the logits drops the nodes that only feed mix inputs of weight 0, and those
 *   run neither forward nor backward (their parameter gradients are set to 0).  In a
 *   network without mix nodes every node is live.
 *
 *   Parameters live in one flat arena and their gradients in another (so an optimizer
 *   can treat them as one vector); each gn_param is a view with its PyTorch name and
 *   shape.  BN running statistics are non-trainable buffers.
 *
 *   Names are exactly the state-dict keys of NVIDIA's GPUNet builder, so weights
 *   move between gpunas and NVIDIA's PyTorch code without a mapping:
 *     network.{module}.{sub}.{param}, e.g. "network.head: 2.net.0.weight",
 *     "network.stage: 1 layer3.conv_exp.weight", "network. layer15.net.6.bias"
 *     (standard family), "network.stage: 0 irb3.body.1.running_var",
 *     "network.tail:.net.8.weight" (distill family); the module name is
 *     gn_arch_module_name() (arch_names.c), the sub-module keys are listed in
 *     network_build.c and tests/pytorch/gpunet_ref.py.  Weights files also carry
 *     every BN's "num_batches_tracked" (int64), as PyTorch's state dicts do.
 *   Files of gpunas before 0.2 named tensors "layers.{I}.{sub}.{param}" (I = JSON
 *   index); gn_net_load still reads them and says so (gn_notice).
 *
 *   Inference (gn_net_prepare_inference + gn_net_infer): BN folded into the conv
 *   weights and biases, activation and residual add fused into the conv as oneDNN
 *   post-ops (gn_conv2d_fwd_fused), and activations assigned to a few reusable
 *   buffers by liveness.  Training mode: batch statistics, running-stat update with
 *   momentum 0.1, tail dropout 0.2 and drop-path 0.2*i/(n-1) (standard family only),
 *   masks from a seeded RNG.
 *
 *   Initialisation (gn_net_init, deterministic per seed): convs Kaiming-normal with
 *   fan_out = k*k*out/groups (timm's EfficientNet init, which GPUNet's modules use),
 *   conv biases 0, BN gamma 1 / beta 0 / running mean 0 / var 1, classifier
 *   U(-1/sqrt(out), 1/sqrt(out)) and bias 0.
 */
#ifndef GPUNAS_NETWORK_H
#define GPUNAS_NETWORK_H

#include <stdbool.h>
#include <stdint.h>

#include "gpunas/arch.h"
#include "gpunas/backend.h"
#include "gpunas/error.h"
#include "gpunas/tensor.h"

#define GN_NAME_MAX 96

typedef struct {
    char name[GN_NAME_MAX];
    int ndim;          /* PyTorch shape, for files */
    int64_t shape[4];
    gn_tensor value;   /* view into the parameter arena */
    gn_tensor grad;    /* view into the gradient arena (empty for buffers) */
    bool trainable;    /* false: BN running mean/var */
    bool no_decay;     /* BN affine params and biases: no weight decay */
    int groups;        /* conv weights: the convolution's groups (for init fan-out) */
    int layer;         /* JSON layer index */
    int local;         /* offset in name of the layer-local part ("conv_exp.weight") */
} gn_param;

typedef struct gn_net gn_net;

int gn_net_create(const gn_arch *a, gn_backend *be, gn_net **out, gn_error *err);
void gn_net_free(gn_net *net);

const gn_arch *gn_net_arch(const gn_net *net);
gn_backend *gn_net_backend(const gn_net *net);
int gn_net_num_params(const gn_net *net);       /* tensors, trainable and buffers */
gn_param *gn_net_param(gn_net *net, int i);
gn_param *gn_net_find_param(gn_net *net, const char *name);
int64_t gn_net_trainable_count(const gn_net *net); /* scalars; equals arch->params */
/* The flat arenas (host memory on host backends): trainable values come first. */
float *gn_net_values(gn_net *net);
float *gn_net_grads(gn_net *net);

int gn_net_init(gn_net *net, uint64_t seed, gn_error *err);
/* Give every BN layer non-trivial values, deterministic per seed (network_randbn.c):
 * gamma ~ U(0.5, 1.5), beta ~ N(0, 0.1^2), running_mean ~ N(0, 0.1^2), running_var ~
 * U(0.5, 2), so that BN folding is exercised by a freshly initialised network
 * (`gpunas init`, export tests).  Invalidates the inference plan. */
int gn_net_randomize_bn(gn_net *net, uint64_t seed, gn_error *err);

typedef struct {
    bool dropout;      /* tail dropout (0.2) in training forward */
    bool drop_path;    /* stochastic depth in training forward */
    float bn_momentum; /* 0.1 */
    uint64_t seed;     /* mask RNG seed (advanced every training forward) */
} gn_train_opts;
void gn_net_set_train_opts(gn_net *net, const gn_train_opts *o);
/* How many BN + ReLU pairs the training passes run as one fused op (decided when the
 * net is built; design in src/nn/network_train.c).  GPUNAS_NO_BN_RELU_FUSION=1 in the
 * environment at gn_net_create turns the fusion off (0 here), for comparisons. */
int gn_net_bn_relu_pairs(const gn_net *net);

/* Op timing of the training passes (issue 21's profile): while a gn_op_profile is set,
 * every node that runs in gn_net_forward_train / forward_eval / backward adds its wall
 * seconds and one call to its kind's entry (backward: the node's gradient ops and the
 * accumulation of its input gradient).  The backends run synchronously on the CPU, so
 * these are the ops' own times; the overhead is two clock reads per node.  NULL stops. */
enum { GN_OPK_CONV, GN_OPK_BN, GN_OPK_ACT, GN_OPK_GAP, GN_OPK_CHSCALE, GN_OPK_ADD, GN_OPK_LINEAR, GN_OPK_DROPOUT,
       GN_OPK_DROPPATH, GN_OPK_MIX, GN_OPK_N };
typedef struct {
    double fwd_s[GN_OPK_N], bwd_s[GN_OPK_N];
    int64_t fwd_n[GN_OPK_N], bwd_n[GN_OPK_N];
} gn_op_profile;
const char *gn_op_kind_name(int kind); /* "conv", "bn", "act", ... */
void gn_net_set_op_profile(gn_net *net, gn_op_profile *p);

/* Training forward on x [N,C,H,W]; *logits points into the net (valid until the next
 * forward).  Updates BN running stats. */
int gn_net_forward_train(gn_net *net, const gn_tensor *x, const gn_tensor **logits, gn_error *err);
/* Backward of the last training forward: gradients of every trainable param are
 * OVERWRITTEN.  dlogits [N,K,1,1]. */
int gn_net_backward(gn_net *net, const gn_tensor *dlogits, gn_error *err);
/* forward_train + softmax cross-entropy (+ smoothing) + backward. */
int gn_net_train_step(gn_net *net, const gn_tensor *x, const int32_t *labels, float smoothing, float *loss,
                      gn_error *err);

/* The NASWOT zero-cost score (Mellor et al. 2021) of the network as it is (untrained):
 * log|det K| of the batch's activation-pattern kernel over every ReLU/Swish unit, after
 * a training forward of x (batch >= 2) without dropout or drop-path (design in
 * network_naswot.c).  *units (may be NULL): the units counted.  Updates BN running stats. */
int gn_net_naswot(gn_net *net, const gn_tensor *x, double *score, int64_t *units, gn_error *err);

/* Plain evaluation forward (running statistics, no folding, no fusion): the reference
 * for the inference path. */
int gn_net_forward_eval(gn_net *net, const gn_tensor *x, const gn_tensor **logits, gn_error *err);

/* Inference path: fold BN into convs (from the current weights), plan buffers. Call
 * again after the weights change.  gn_net_infer runs it. */
int gn_net_prepare_inference(gn_net *net, gn_error *err);
int gn_net_infer(gn_net *net, const gn_tensor *x, const gn_tensor **logits, gn_error *err);
/* Bytes of activation memory the inference plan uses for batch n (after a run). */
size_t gn_net_infer_activation_bytes(const gn_net *net);
/* Bytes of the inference weights (folded conv weights and biases, classifier) once
 * prepared; 0 before gn_net_prepare_inference. */
size_t gn_net_infer_weight_bytes(const gn_net *net);
/* gn_net_infer that also times every inference node (CLOCK_MONOTONIC) and ADDS its
 * nanoseconds to layer_ns[JSON layer index of the node]; layer_ns has
 * gn_net_arch(net)->n_layers entries and is not cleared (callers sum over runs).
 * Used by the latency profiler (gpunas/latency.h). */
int gn_net_infer_profile(gn_net *net, const gn_tensor *x, const gn_tensor **logits, int64_t *layer_ns,
                         gn_error *err);

/* Replace every value (params and running stats, the arena's layout: param q at
 * q->value.data - gn_net_values(net)) from a host copy of gn_net_num_values floats;
 * invalidates the inference plan.  For loaders of other formats (gpunas/import.h). */
size_t gn_net_num_values(const gn_net *net);
int gn_net_set_values(gn_net *net, const float *host, gn_error *err);

/* BN batches seen in training (PyTorch's num_batches_tracked, the same for every BN
 * of the network): counted by every training forward, saved and loaded with the
 * weights and kept by training checkpoints. */
int64_t gn_net_bn_batches(const gn_net *net);
void gn_net_set_bn_batches(gn_net *net, int64_t n);

/* Weights (all params, running stats and num_batches_tracked) in safetensors, names
 * as above. */
int gn_net_save(gn_net *net, const char *path, gn_error *err);
int gn_net_load(gn_net *net, const char *path, gn_error *err);

/* gn_net_load also reads files of gpunas < 0.2 (names "layers.{I}.", no
 * num_batches_tracked) and then says so with gn_notice(). */

/* The pre-0.2 name of parameter q ("layers.4.conv_exp.weight"), for readers of old
 * files; returns buf. */
const char *gn_param_legacy_name(const gn_param *q, char *buf, size_t cap);

#endif
