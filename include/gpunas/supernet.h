/*
 * gpunas/supernet.h — UNAS's weight-sharing supernet (Vahdat et al., CVPR 2020) over a
 * search space (gpunas/space.h): the network side of the estimators in
 * gpunas/oneshot.h.  It gives, for relaxed architecture weights zeta, the relaxed loss
 * f~(zeta) and g_zeta = d f~ / d zeta, and for a discrete architecture d the loss f(d)
 * of the single path d, with the weight gradients of both for training the weights.
 *
 * What is searched
 *   Per stage of the space (stage 0, the head, has nothing searched) the choices
 *   kernel, expansion, se (a "conv" stage: kernel only) and layers become categoricals,
 *   each one with at least two choices.  They are listed in stage order and, within a
 *   stage, in the space's encoding order (layers, kernel, expansion, se); their logits
 *   lie in ONE flat vector in that order, categorical m at [offset_m, offset_m + K_m):
 *   the layout of gn_oneshot_dist, so
 *       gn_oneshot_dist_create(gn_supernet_num_cats(sn), K, eps, ...)   with
 *       K[m] = gn_supernet_get_cat(sn, m)->k
 *   makes a distribution whose zeta, d and gradients are used here as they are
 *   (gn_oneshot_offset(q, m) == gn_supernet_get_cat(sn, m)->offset).  Each categorical
 *   names the space's encoding dimension it sets ("s2.kernel" = gn_space_dim_name) and
 *   which index of that dimension each of its choices stands for.
 *
 *   Fixed, not searched, in this version: the resolution, every stage's activation
 *   and filters, and the tail's filters.  They come from a fixed encoding
 *   (gn_supernet_opts.fixed): by default the space's largest resolution, each stage's
 *   FIRST activation choice, its LARGEST filters and the largest tail filters.  A
 *   search over them needs either one supernet per setting or weight sharing across
 *   widths (slimmable convs); neither is done here.
 *
 * The graph
 *   head -> stage 1 -> ... -> tail, as gn_net builds a member of the space, except
 *   that every layer position j of a stage (j < the stage's largest layer count) is
 *       y_j = P(L > j) * sum_c w_c * block_c(x_j)  +  P(L <= j) * x_j,
 *   one ND_MIX node (network_internal.h) over the candidates and the identity, with
 *       w_c = prod_f zeta_f[c_f]
 *   over the stage's factor categoricals f (kernel, expansion, se; a factor with one
 *   value contributes 1), and P(L > j) = sum of zeta_L[l] over the layer choices l
 *   whose count exceeds j (P(L <= j) the rest; both 1/0 when layers is not searched).
 *   The candidates of a position are the product kernel x expansion x se, each a
 *   complete layer exactly as the space decodes it (the first position with the
 *   stage's stride and channel change, the others stride 1 with the residual add),
 *   each with its OWN weights and BN.  Per-sample zeta (UNAS's per-example
 *   architectures) makes every weight a [N, K] matrix; a batch-shared zeta is one row.
 *
 *   Separate weights, not shared ones: the alternative (one k_max x k_max kernel whose
 *   centre serves the smaller kernels, one widest expansion whose first channels serve
 *   the narrower ones, as in OFA / FBNetV2) has far fewer parameters, but the
 *   candidates then interfere in training and BN statistics would have to be kept per
 *   candidate anyway; separate weights make a path exactly a standalone network
 *   (checked bit for bit in the tests) and keep the gradient algebra plain.  They cost
 *   memory: every candidate's weights and, in a relaxed step, activations.
 *
 *   Shared weights (gn_supernet_opts.shared; supernet_share.c): the other choice.  In
 *   the measurement of bench/RESULTS.md (124 steps on the fmnist space) shared weights
 *   trained far better (a sampled path's validation CE 1.57 against 2.41, chance 2.30),
 *   so `gpunas unas` shares by default; the library's default stays separate.  A position's candidates then take their
 *   convolution weights from one master (largest kernel, largest expansion, SE when
 *   offered): the first output / input channels and the centre of the kernel; BN stays
 *   per candidate.  Each candidate keeps its arena slot, refilled from the master before
 *   every training forward, and its gradient is added into the master's after every
 *   backward (then zeroed), so optimizers, checkpoints and paths work unchanged; a
 *   path is then the standalone network with the master's slices as its weights.
 *
 *   Positions that cannot be skipped: a position whose output shape differs from its
 *   input (the stage's first layer when it has a stride or changes the channels, and
 *   every layer of a stride-2 stage without stride_first_only) has no identity term.
 *   Such a position always exists in the supernet: layer counts that would leave it
 *   out are removed from the layers categorical.  DEVIATION from the space: a stage
 *   whose layers may be 0 but whose first layer changes the shape gets at least 1
 *   layer here (the count-0 members of that stage are not searched), and derive() maps
 *   each remaining choice to its own index of the space's list, so the derived
 *   encoding never claims a member the supernet did not contain.  If only one count is
 *   left, the layers choice is not a categorical and derive() writes that count.
 *
 *   Padding: the released builder pads a stride-2 fused_irb with 0, so its output
 *   size depends on the kernel (16 -> 7 for k3, 6 for k5) and the candidates of that
 *   position could not be mixed.  When that happens the supernet is built with the
 *   arch's same_pad_fix ("same" padding, (k-1)/2, for every layer: 16 -> 8) and says
 *   so (gn_supernet_same_pad); gn_supernet_decode then returns the member with the
 *   same fix, which is what a path computes.  The fmnist space is such a space.
 *
 *   Per-sample zeta and BN: a candidate that any sample of the batch weights runs on
 *   the whole batch, and its BN normalises with the statistics of the whole batch
 *   (samples that weight it 0 included; their outputs are then multiplied by 0).  A
 *   path of a per-sample batch is therefore the standalone network only for the
 *   samples' common layers; a batch-shared d is exactly it.
 *
 *   Training options: no dropout (by default) and no drop-path, so that f~ and f are
 *   deterministic functions of the weights and zeta; BN uses batch statistics.
 *
 * Discrete paths
 *   gn_supernet_set_discrete(d) sets zeta one-hot.  Every mix column whose weight is 0
 *   for every sample of the batch is dead: the candidates (and the layers of skipped
 *   positions) it would read are neither run forward nor backward, so a discrete step
 *   costs about what the standalone network costs, and computes exactly it: mixing
 *   with one weight 1.0 is exact in float, and the path's layers are the standalone
 *   network's layers in the same order.  Parameters not run get gradient 0 and keep
 *   their BN running statistics.  Activations are allocated when their node first
 *   runs (network_internal.h), so a supernet used only with discrete paths holds the
 *   activations of the paths it has run, and after one relaxed step those of the whole
 *   graph (kept until the batch size changes).
 *   g_zeta of a discrete step covers only the live
 *   columns (dead columns count as dL/dw = 0): it is not the relaxed gradient — use a
 *   relaxed zeta (every entry > 0) for g_zeta.
 *
 * Gradients
 *   The loss is the batch mean of the softmax cross-entropy.  g_zeta has the shape of
 *   zeta: one row (batch-shared zeta; the sum over the samples) or one row per sample
 *   (dL/dzeta_n of the batch mean, i.e. 1/N times the sample's own d f~_n/d zeta_n,
 *   apart from the coupling of the samples through BN batch statistics, which UNAS
 *   ignores too).  zeta entries are treated as independent variables (no simplex
 *   projection; the oneshot Jacobians carry the softmax).  With dL/dw[n,k] from each
 *   mix node: a factor f of candidate c gets P * g_w[c] * prod_{f' != f} zeta_f'[c_f']
 *   (the product rule, no division by zeta), and the layers choice l gets
 *   sum_c g_w[c] prod_f zeta_f[c_f] at the positions j < l and g_w[identity] at j >= l.
 *
 * Names and weights
 *   Parameters are gn_params of the wrapped gn_net (gn_supernet_net): one flat arena
 *   and one gradient arena, so gn_optim_create_for_net, gn_optim_step, gn_net_values /
 *   gn_net_grads and gn_net_init work on it unchanged.  Names: "supernet.head.<key>",
 *   "supernet.tail.<key>" and "supernet.s<stage>.p<j>.k<k>[_e<exp>_se<0|1>].<key>",
 *   where <key> is the layer-local key of the standalone network ("conv_exp.weight",
 *   network_build.c).  gn_supernet_export copies a path's weights into a standalone
 *   gn_net of gn_space_decode(derive(d)) by these names.  The inference path
 *   (gn_net_prepare_inference), NASWOT and gn_net_save are not for the supernet.
 *
 * Latency: UNAS's expected-latency term and its d/dzeta from a device profile are in
 * gpunas/supernet_latency.h.
 *
 * Errors: 0 / -1 with a one-line gn_error naming the space or the argument.  A
 * supernet borrows its space and backend (both must outlive it); one thread at a time.
 */
#ifndef GPUNAS_SUPERNET_H
#define GPUNAS_SUPERNET_H

#include <stdbool.h>
#include <stdint.h>

#include "gpunas/backend.h"
#include "gpunas/error.h"
#include "gpunas/network.h"
#include "gpunas/space.h"
#include "gpunas/tensor.h"

#define GN_SUPERNET_MAX_K 16 /* = GN_ONESHOT_MAX_K */

typedef struct gn_supernet gn_supernet;

typedef struct {
    char name[32];                /* the space's dimension name, e.g. "s2.kernel" */
    int stage;                    /* the space's stage number ("stage" field) */
    int k;                        /* choices, 2..GN_SUPERNET_MAX_K */
    int offset;                   /* first index in the flat zeta / theta layout */
    int dim;                      /* encoding dimension of the space it sets */
    int enc[GN_SUPERNET_MAX_K];   /* choice c sets x[dim] = enc[c] */
} gn_supernet_cat;

typedef struct {
    /* NULL, or an encoding of the space (gn_space_check) whose resolution, activation,
     * filters and tail-filters dimensions fix the supernet; its other dimensions are
     * ignored.  NULL: largest resolution, first activations, largest filters. */
    const int *fixed;
    bool dropout; /* tail dropout 0.2 in training forwards (default false) */
    bool shared;  /* shared candidate weights (see "Shared weights"; default false: separate) */
} gn_supernet_opts;

/* opts may be NULL (the defaults). */
int gn_supernet_create(const gn_space *s, gn_backend *be, const gn_supernet_opts *opts, gn_supernet **out,
                       gn_error *err);
void gn_supernet_free(gn_supernet *sn); /* NULL is fine */

int gn_supernet_num_cats(const gn_supernet *sn);
const gn_supernet_cat *gn_supernet_get_cat(const gn_supernet *sn, int m); /* NULL out of range */
int gn_supernet_n(const gn_supernet *sn); /* total logits = sum_m K_m */
/* The wrapped network: params, arenas, init, optimizers, train options. */
gn_net *gn_supernet_net(gn_supernet *sn);
/* The space it was built over (borrowed). */
const gn_space *gn_supernet_space(const gn_supernet *sn);
/* The fixed encoding (every dimension; searched ones are 0). */
const int *gn_supernet_fixed(const gn_supernet *sn);

/* gn_net_init of the wrapped network. */
int gn_supernet_init(gn_supernet *sn, uint64_t seed, gn_error *err);

/* Relaxed weights: rows x n doubles, row-major; rows = 1 (shared by the batch) or the
 * batch size of the next forward (per sample).  Every entry finite and >= 0. */
int gn_supernet_set_zeta(gn_supernet *sn, const double *zeta, int rows, gn_error *err);
/* One-hot zeta of d (rows x M ints, d[m] in [0, K_m)): the single path(s) d. */
int gn_supernet_set_discrete(gn_supernet *sn, const int *d, int rows, gn_error *err);

/* Training forward of x [N,C,H,W] (batch statistics) under the zeta set last;
 * *logits [N,classes,1,1] points into the network. */
int gn_supernet_forward_train(gn_supernet *sn, const gn_tensor *x, const gn_tensor **logits, gn_error *err);
/* Backward of the last forward from dlogits: weight gradients (overwritten; 0 for
 * parameters not run) and, if g_zeta != NULL, g_zeta (rows x n like zeta). */
int gn_supernet_backward(gn_supernet *sn, const gn_tensor *dlogits, double *g_zeta, gn_error *err);
/* forward_train + softmax cross-entropy (smoothing) + backward. */
int gn_supernet_train_step(gn_supernet *sn, const gn_tensor *x, const int32_t *labels, float smoothing, float *loss,
                           double *g_zeta, gn_error *err);

/* Each sample's own cross-entropy under the last forward (smoothing as in
 * gn_softmax_xent; loss[0..N)): the per-sample f(d) / f~(zeta) of UNAS's per-example
 * estimators.  Their mean is the batch loss. */
int gn_supernet_sample_losses(gn_supernet *sn, const int32_t *labels, float smoothing, double *loss, gn_error *err);

/* The space encoding x (gn_space_desc(s)->ndims ints) of path d: the fixed encoding
 * with each categorical's dimension set; canonical (gn_space_canonical) and checked. */
int gn_supernet_derive(const gn_supernet *sn, const int *d, int *x, gn_error *err);
/* The standalone network of path d: gn_space_decode(derive(d)), and, when the
 * supernet was built with same padding (gn_supernet_same_pad), that arch with
 * same_pad_fix set and re-resolved — the network the path computes exactly.  Without
 * the fix the member differs from the path only in the padding of stride-2 fused_irb
 * layers (their weights have the same shapes). */
int gn_supernet_decode(const gn_supernet *sn, const int *d, gn_arch **out, gn_error *err);
/* Whether the candidates share weights (gn_supernet_opts.shared), and the number of
 * trainable scalars that are free (not copies of a master): the arena's trainable
 * count without sharing. */
bool gn_supernet_shared(const gn_supernet *sn);
size_t gn_supernet_free_weights(const gn_supernet *sn);
/* Whether the supernet pads stride-2 fused_irb layers "same" (set when the released
 * padding 0 would make candidates of different kernels differ in output size). */
bool gn_supernet_same_pad(const gn_supernet *sn);
/* Copy the weights and BN running statistics of a path into net, a gn_net of
 * gn_space_decode(derive(d)): every parameter of net is looked up by name (see the
 * design note) and must exist with the same shape. */
int gn_supernet_export(gn_supernet *sn, gn_net *net, gn_error *err);

#endif
