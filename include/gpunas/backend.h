/*
 * gpunas/backend.h — op-level compute backends behind one vtable.
 *
 * Design
 *   A gn_backend is a vtable of memory hooks and neural-network ops on fp32 NCHW
 *   gn_tensors (gpunas/tensor.h).  Callers never call the vtable directly: they use
 *   the gn_* functions below, which check shapes and arguments once (same checks for
 *   every backend, with a one-line gn_error such as
 *   "conv2d_fwd: weight [8,4,3,3] does not match input channels 6 / groups 1") and
 *   then dispatch.  Backends may therefore assume valid shapes.
 *
 *   Backends (gn_backend_create(name)):
 *     "ref"   plain C loops, single-threaded, double accumulators; the oracle.
 *     "dnnl"  oneDNN 2.6 (C API) primitives on the CPU engine: convolution fwd /
 *             bwd_data / bwd_weights, batch_normalization fwd (training, inference)
 *             and bwd (training also fused with a ReLU), eltwise fwd/bwd, pooling (avg, = global average pool) fwd/bwd,
 *             binary (add, accumulate, channel scale, masks), dnnl_sgemm for linear
 *             (no OpenBLAS needed).  Small loops remain for: channel-scale's ds,
 *             linear's bias broadcast and db, softmax cross-entropy and the
 *             running-stat update (the last two shared with "ref").
 *             GPUNAS_DNNL_VERBOSE=1 in the environment prints the implementation
 *             oneDNN picked for each newly created primitive (stderr; debugging);
 *             oneDNN's own DNNL_VERBOSE=1 works too.
 *   All memory is host memory for both.  Every op takes tensors whose data came
 *   from the same backend's alloc (or a view of it), so a device backend (CUDA) can
 *   be added by filling the same vtable; host data only crosses via copy_in/out.
 *   Labels for the loss are a host int32 array and the loss value is returned on
 *   the host (a device backend copies them).
 *
 *   The backend's ops and state are private (src/nn/backend_impl.h, as ggml keeps
 *   its backend vtables in ggml-backend-impl.h): callers hold an opaque gn_backend.
 *   How "dnnl" caches primitives, lays out memory and runs its threads is described
 *   at the top of src/nn/backend_dnnl.c.  gn_backend_set_threads(be, n): intra-op
 *   threads ("ref" ignores it); n <= 0 means the cores other processes leave free
 *   (gn_threads_available).  gn_backend_pin_threads: one CPU per thread, below.
 *
 * Conventions
 *   - Return 0 on success, non-zero (with err filled when err != NULL) on failure;
 *     nothing aborts or prints.
 *   - Backward ops OVERWRITE their gradient outputs (no accumulation); use
 *     gn_accumulate to sum gradients.  Optional outputs/inputs may be NULL where
 *     marked.
 *   - Aliasing: y may alias x for eltwise fwd, mul_mask, channel_scale fwd, add
 *     (y may be a or b) and bn fwd; dx may alias dy for eltwise bwd and mul_mask
 *     bwd.  Conv, linear, GAP, BN bwd and the loss must not alias inputs and outputs.
 *   - Eltwise backward takes the FORWARD INPUT x (not y): relu' = [x > 0],
 *     silu' = s(1 + x(1 - s)) with s = sigmoid(x), sigmoid' = s(1 - s).  This is
 *     what oneDNN's non-"use_dst" algorithms take and avoids needing y for SiLU.
 */
#ifndef GPUNAS_BACKEND_H
#define GPUNAS_BACKEND_H

#include <stdint.h>

#include "gpunas/error.h"
#include "gpunas/tensor.h"

typedef enum {
    GN_ELT_IDENTITY = 0, /* only valid as a fused conv activation */
    GN_ELT_RELU,
    GN_ELT_SILU, /* x * sigmoid(x), a.k.a. swish */
    GN_ELT_SIGMOID
} gn_eltwise;

const char *gn_eltwise_name(gn_eltwise e); /* "identity", "relu", "silu", "sigmoid" */

/* Square kernel from the weight tensor (KH, KW may differ; any odd/even size);
 * stride and symmetric zero padding apply to both spatial dims. */
typedef struct {
    int stride; /* >= 1 */
    int pad;    /* >= 0, same on all four sides */
    int groups; /* >= 1; C_in and C_out divisible by it; groups == C_in: depthwise */
    /* Forward only.  0: the weights may change between calls (training).  Non-zero: a
     * promise that the weight memory holds the same values whenever it is passed with
     * this version (gn_backend_new_weights_version() hands out fresh ones), so a
     * backend may keep its reordered copy of the weights (the inference path). */
    uint64_t weights_version;
} gn_conv2d_params;

/* A process-wide unique, non-zero weights version (thread-safe). */
uint64_t gn_backend_new_weights_version(void);

/* floor((in + 2*pad - k) / stride) + 1, or 0 if that is < 1. */
int gn_conv2d_out_size(int in, int k, int stride, int pad);

/* ------------------------------------------------------------------ registry */
/* Create a backend by name ("ref" or "dnnl"). */
int gn_backend_create(const char *name, gn_backend **out, gn_error *err);
/* Its name ("ref", "dnnl") and capabilities. */
const char *gn_backend_name(const gn_backend *be);
#define GN_CAP_NHWC 1u /* inference ops accept channels-last tensors (tensor.h) */
unsigned gn_backend_caps(const gn_backend *be);
/* Release a backend and everything it cached (tensors it allocated must be freed
 * first by their owners).  NULL is fine. */
void gn_backend_destroy(gn_backend *be);
/* Comma-separated list of available names, e.g. "ref,dnnl". */
const char *gn_backend_names(void);
/* Number of intra-op threads (see design note). */
int gn_backend_set_threads(gn_backend *be, int n, gn_error *err);
/* Cores other processes leave free (design in src/nn/cpu_avail.c).  A sample holds
 * the machine's busy time and this process's CPU time; between two samples the
 * other processes kept gn_cpu_others CPUs busy, and gn_cpu_available = allowed CPUs
 * minus that, rounded, >= 1.  gn_threads_available takes two samples window_ms
 * apart.  gn_backend_set_threads(be, n <= 0) uses it (window 100 ms). */
typedef struct {
    unsigned long long busy, total, self; /* clock ticks: machine busy, machine all, this process */
    int ncpu, allowed, valid;             /* CPUs in /proc/stat; in this process's mask; read ok */
} gn_cpu_sample;
int gn_cpu_sample_take(gn_cpu_sample *s);
double gn_cpu_others(const gn_cpu_sample *a, const gn_cpu_sample *b);
int gn_cpu_available(const gn_cpu_sample *a, const gn_cpu_sample *b, double *others);
int gn_threads_available(int window_ms, double *others);

/* Thread placement.  on != 0: pin the calling thread and each thread of the current
 * OpenMP team (the size set by gn_backend_set_threads) to its own allowed CPU, in
 * order (team thread i -> the i-th CPU of the process's affinity mask when the first
 * dnnl backend was created); on == 0: give them all that mask back.  *pinned (may be NULL): the
 * number of threads placed.  Pinning covers the calling thread, so anything it
 * creates while pinned (data-loader threads) inherits the one CPU: unpin after a
 * measurement.  Backends without threads ("ref") pin nothing and return 0. */
int gn_backend_pin_threads(gn_backend *be, int on, int *pinned, gn_error *err);

/* ------------------------------------------------------------------ ops */
/* Convolution.  x [N,C,H,W], w [O,C/g,KH,KW], b [O] or NULL,
 * y [N,O,OH,OW] with OH = gn_conv2d_out_size(H, KH, stride, pad) etc. */
int gn_conv2d_fwd(gn_backend *be, const gn_tensor *x, const gn_tensor *w, const gn_tensor *b,
                  gn_tensor *y, const gn_conv2d_params *p, gn_error *err);
/* Inference fused form:  y = act(conv(x, w) + b) + r
 *   (bias, then activation, then residual sum; r [N,O,OH,OW] or NULL; act may be
 *   GN_ELT_IDENTITY).  In oneDNN this is one convolution with post-ops
 *   [eltwise(act), binary_add(r)] in that order; binary_add reads r from its own
 *   plain NCHW buffer, so y need not be pre-filled and must not alias r or x.
 *   The usual inference block conv+BN(folded into w,b)+act, or the last conv of a
 *   residual block conv+BN(folded)+r (act = identity), are both single calls. */
int gn_conv2d_fwd_fused(gn_backend *be, const gn_tensor *x, const gn_tensor *w,
                        const gn_tensor *b, gn_eltwise act, const gn_tensor *r, gn_tensor *y,
                        const gn_conv2d_params *p, gn_error *err);
/* dx [N,C,H,W] = conv^T(dy, w) */
int gn_conv2d_bwd_data(gn_backend *be, const gn_tensor *dy, const gn_tensor *w, gn_tensor *dx,
                       const gn_conv2d_params *p, gn_error *err);
/* dw = dL/dw, db = sum_{n,h,w} dy (db may be NULL) */
int gn_conv2d_bwd_weights(gn_backend *be, const gn_tensor *x, const gn_tensor *dy,
                          gn_tensor *dw, gn_tensor *db, const gn_conv2d_params *p,
                          gn_error *err);

/* Batch norm, training forward: per channel over (N,H,W), mean and BIASED variance
 * (divide by M = N*H*W) written to mean/var [C]; y = (x-mean)/sqrt(var+eps)*gamma+beta.
 * Update running stats afterwards with gn_bn_update_running (PyTorch semantics). */
int gn_bn_fwd_train(gn_backend *be, const gn_tensor *x, const gn_tensor *gamma,
                    const gn_tensor *beta, float eps, gn_tensor *y, gn_tensor *mean,
                    gn_tensor *var, gn_error *err);
/* Inference: same formula with the given (running) mean/var. */
int gn_bn_fwd_infer(gn_backend *be, const gn_tensor *x, const gn_tensor *gamma,
                    const gn_tensor *beta, const gn_tensor *mean, const gn_tensor *var,
                    float eps, gn_tensor *y, gn_error *err);
/* Backward of the TRAINING forward (batch statistics), given the batch mean and
 * biased var that gn_bn_fwd_train returned: dx, dgamma [C], dbeta [C]. */
int gn_bn_bwd(gn_backend *be, const gn_tensor *x, const gn_tensor *dy, const gn_tensor *gamma,
              const gn_tensor *mean, const gn_tensor *var, float eps, gn_tensor *dx,
              gn_tensor *dgamma, gn_tensor *dbeta, gn_error *err);
/* Batch norm + ReLU, training, as one op (issue 21):  y = max(0, BN_train(x)) with
 * mean/var as gn_bn_fwd_train, and gn_bn_relu_bwd the backward through both
 * (dz = dy * [BN(x) > 0], then BN's backward on dz).  ws, the workspace, carries what
 * the backward needs from the forward (which elements passed the ReLU; its content is
 * the backend's own: "dnnl" keeps oneDNN's bit mask, "ref" one byte per element): a
 * tensor of this backend with at least gn_bn_relu_workspace(x) elements (any shape),
 * written by the forward and read, unchanged, by the backward of the same x shape,
 * layout and eps.  Neither form may alias its inputs and outputs.  The numbers equal
 * gn_bn_fwd_train + gn_eltwise_fwd(RELU) and gn_eltwise_bwd(RELU) + gn_bn_bwd within
 * float rounding (the network's training path uses it for every BN that only a ReLU
 * reads; src/nn/network_train.c).  A backend may lack it: then these return an error
 * and gn_bn_relu_supported is 0. */
int gn_bn_relu_supported(const gn_backend *be);
int gn_bn_relu_workspace(gn_backend *be, const gn_tensor *x, float eps, size_t *numel, gn_error *err);
int gn_bn_relu_fwd_train(gn_backend *be, const gn_tensor *x, const gn_tensor *gamma,
                         const gn_tensor *beta, float eps, gn_tensor *y, gn_tensor *mean,
                         gn_tensor *var, gn_tensor *ws, gn_error *err);
int gn_bn_relu_bwd(gn_backend *be, const gn_tensor *x, const gn_tensor *dy, const gn_tensor *gamma,
                   const gn_tensor *mean, const gn_tensor *var, float eps, const gn_tensor *ws,
                   gn_tensor *dx, gn_tensor *dgamma, gn_tensor *dbeta, gn_error *err);
/* PyTorch running-stat update, momentum m (0.1 in PyTorch), count = N*H*W > 1:
 *   run_mean = (1-m)*run_mean + m*mean
 *   run_var  = (1-m)*run_var  + m*var*count/(count-1)     (unbiased) */
int gn_bn_update_running(gn_backend *be, gn_tensor *run_mean, gn_tensor *run_var,
                         const gn_tensor *mean, const gn_tensor *var, float momentum,
                         int64_t count, gn_error *err);

/* Elementwise activations (relu, silu, sigmoid); backward takes forward input x. */
int gn_eltwise_fwd(gn_backend *be, gn_eltwise k, const gn_tensor *x, gn_tensor *y,
                   gn_error *err);
int gn_eltwise_bwd(gn_backend *be, gn_eltwise k, const gn_tensor *x, const gn_tensor *dy,
                   gn_tensor *dx, gn_error *err);

/* Global average pool: x [N,C,H,W] -> y [N,C,1,1]; bwd dx = dy / (H*W) broadcast. */
int gn_gap_fwd(gn_backend *be, const gn_tensor *x, gn_tensor *y, gn_error *err);
int gn_gap_bwd(gn_backend *be, const gn_tensor *dy, gn_tensor *dx, gn_error *err);

/* SE gating: y[n,c,h,w] = x[n,c,h,w] * s[n,c]  (s [N,C,1,1]).
 * bwd: dx = dy * s, ds[n,c] = sum_{h,w} dy * x.  dx or ds may be NULL. */
int gn_channel_scale_fwd(gn_backend *be, const gn_tensor *x, const gn_tensor *s, gn_tensor *y,
                         gn_error *err);
int gn_channel_scale_bwd(gn_backend *be, const gn_tensor *x, const gn_tensor *s,
                         const gn_tensor *dy, gn_tensor *dx, gn_tensor *ds, gn_error *err);

/* y = a + b (same shapes).  Its backward is identity: reuse dy for both inputs. */
int gn_add(gn_backend *be, const gn_tensor *a, const gn_tensor *b, gn_tensor *y, gn_error *err);
/* y += x (same numel): gradient accumulation, e.g. residual branch + skip. */
int gn_accumulate(gn_backend *be, gn_tensor *y, const gn_tensor *x, gn_error *err);

/* Dropout / drop-path as a multiplication by a caller-made mask (from a seeded RNG):
 *   mask numel == numel(x): dropout, mask = keep ? 1/(1-p) : 0 per element;
 *   mask numel == N:        drop-path, one value per sample broadcast over C,H,W.
 * fwd y = x * mask; bwd dx = dy * mask. */
int gn_mul_mask_fwd(gn_backend *be, const gn_tensor *x, const gn_tensor *mask, gn_tensor *y,
                    gn_error *err);
int gn_mul_mask_bwd(gn_backend *be, const gn_tensor *dy, const gn_tensor *mask, gn_tensor *dx,
                    gn_error *err);

/* Fully connected, PyTorch layout: x [N,IN,..] (c*h*w == IN, e.g. [N,IN,1,1] from GAP),
 * w [OUT,IN,1,1], b [OUT] or NULL, y [N,OUT,1,1]:  y = x W^T + b.
 * bwd: dx = dy W (may be NULL), dw = dy^T x, db = sum_n dy (may be NULL). */
int gn_linear_fwd(gn_backend *be, const gn_tensor *x, const gn_tensor *w, const gn_tensor *b,
                  gn_tensor *y, gn_error *err);
int gn_linear_bwd(gn_backend *be, const gn_tensor *x, const gn_tensor *w, const gn_tensor *dy,
                  gn_tensor *dx, gn_tensor *dw, gn_tensor *db, gn_error *err);

/* Softmax cross-entropy with label smoothing eps in [0,1) (PyTorch
 * CrossEntropyLoss(label_smoothing=eps)): target_k = (1-eps)*[k==label] + eps/K;
 * *loss = mean over the N rows of -sum_k target_k log softmax(z)_k (host float);
 * dlogits (nullable, shape of logits) = (softmax(z) - target) / N.
 * logits [N,K,1,1]; labels: host array of N ints in [0,K). */
int gn_softmax_xent(gn_backend *be, const gn_tensor *logits, const int32_t *labels,
                    float smoothing, float *loss, gn_tensor *dlogits, gn_error *err);

#endif
