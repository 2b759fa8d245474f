/*
 * gpunas/arch.h — the architecture spec: GPUNet JSON layer lists.
 *
 * Design
 *   A GPUNet config is a JSON array of layer objects executed in sequence (see
 *   shared/docs/gpunet.md §2). gn_arch_load() parses it with jansson into a typed
 *   gn_arch, checks every field, then runs gn_arch_resolve(): it derives each layer's
 *   hidden widths (make_divisible, SE width), padding, BN eps, residual flag, shapes
 *   for the chosen input resolution/channels, and exact parameter and MAC counts,
 *   following the released builder rule by rule.
 *
 *   Layer index i in gn_arch.layers is the index of the object in the JSON array
 *   (index 0 is always the "data" entry), so error messages and tensor names use the
 *   same numbering a user sees in the file.
 *
 *   Errors: every function that can fail fills a gn_error with one line of the form
 *   "FILE: layer I: field 'F': reason" (or "FILE:LINE:COL: reason" for JSON syntax)
 *   and returns non-zero. Nothing is printed by the library.
 *
 *   MAC convention (matches the published counts): multiply-accumulates of every
 *   convolution (incl. the SE 1x1 convs at 1x1 spatial size) and of the classifier;
 *   BN, activations, pooling, SE gating and residual adds count 0.
 */
#ifndef GPUNAS_ARCH_H
#define GPUNAS_ARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gpunas/error.h"

typedef enum {
    GN_LAYER_DATA = 0,
    GN_LAYER_HEAD,       /* Prologue / PrologueD */
    GN_LAYER_HEAD_LARGE, /* PrologueLargeD (distill family only) */
    GN_LAYER_CONV,       /* ConvBnAct */
    GN_LAYER_IRB,        /* InvertedResidual / Inverted_Residual_Block */
    GN_LAYER_FUSED_IRB,  /* EdgeResidual / Fused_IRB */
    GN_LAYER_TAIL        /* Epilogue / EpilogueD */
} gn_layer_type;

typedef enum { GN_ACT_NONE = 0, GN_ACT_RELU, GN_ACT_SWISH } gn_act;

const char *gn_layer_type_name(gn_layer_type t); /* JSON spelling, e.g. "fused_irb" */
const char *gn_act_name(gn_act a);               /* "relu", "swish", "none" */

/* One JSON layer object, as written, plus what the builder derives from it. */
typedef struct {
    gn_layer_type type;

    /* ---- fields as in the JSON (the *_set flags remember optional keys) ---- */
    int in_ch, out_ch;     /* num_in_channels, num_out_channels */
    int stride;            /* conv/irb/fused_irb */
    int kernel;            /* kernel_size */
    double expansion;      /* irb/fused_irb; may be fractional */
    bool expansion_is_int; /* written as a JSON integer */
    gn_act act;            /* effective activation (defaults applied) */
    bool act_set;          /* "act" key present */
    bool use_se;
    bool use_se_set;
    int stage;
    bool stage_set;
    int groups; /* distill irb/fused_irb 1x1 groups (default 1) */
    bool groups_set;
    int num_classes; /* tail */

    /* ---- derived (gn_arch_resolve) ---- */
    int mid_ch;     /* hidden width of irb/fused_irb; 0 otherwise */
    int se_ch;      /* SE reduced width; 0 when no SE */
    int tail_mid;   /* EpilogueD: 1152; standard tail: 0 */
    int pad;        /* padding of the spatial (k x k) conv */
    bool residual;  /* input added to output */
    float bn_eps;   /* eps of every BN of this layer */
    double drop_path; /* training-only stochastic depth rate (0 if no residual) */
    int in_c, in_h, in_w;    /* input shape (N excluded) */
    int out_c, out_h, out_w; /* output shape; tail: num_classes x 1 x 1 */
    int64_t params;
    int64_t macs;
} gn_layer;

typedef struct {
    char *source;     /* file name used in messages (owned) */
    int resolution;   /* img_resolution from the data layer */
    bool distill;     /* selects the module family */
    int n_layers;     /* including the data layer at index 0 */
    gn_layer *layers; /* owned */

    /* option used by gn_arch_resolve: stride-2 fused_irb convs use (k-1)/2 padding
     * ("same", as intended) instead of the released code's padding 0 */
    bool same_pad_fix;

    /* totals (gn_arch_resolve) */
    int64_t params;
    int64_t macs;
} gn_arch;

/* Parse and validate; on success returns 0 and *out owns a resolved arch. */
int gn_arch_load(const char *path, gn_arch **out, gn_error *err);
int gn_arch_parse(const char *text, const char *source, gn_arch **out, gn_error *err);
void gn_arch_free(gn_arch *a);

/* Re-derive widths, shapes, params and MACs after changing a field or same_pad_fix.
 * Also revalidates (channel chain, groups, resolution too small, ...). */
int gn_arch_resolve(gn_arch *a, gn_error *err);

/* Overrides used by `gpunas info --res/--classes/--in-ch`: they change the spec itself
 * (data.img_resolution, tail.num_classes, head.num_in_channels) and revalidate; on
 * failure the arch is left as it was. */
int gn_arch_set_resolution(gn_arch *a, int res, gn_error *err);
int gn_arch_set_classes(gn_arch *a, int classes, gn_error *err);
int gn_arch_set_in_channels(gn_arch *a, int ch, gn_error *err);

/* Serialise in the released layout (array of objects, 6-space indent, canonical key
 * order).  Returns a malloc'd NUL-terminated string, or NULL with err set. */
char *gn_arch_to_json(const gn_arch *a, gn_error *err);
int gn_arch_save(const gn_arch *a, const char *path, gn_error *err);

/* The module name NVIDIA's builder gives JSON layer i (1 <= i < n_layers), with the
 * "network." prefix of GPUNet.network, e.g. "network.head: 2", "network.stage: 1
 * layer3", "network. layer15" (standard) or "network.stage: 0 irb3", "network.tail:"
 * (distill): tensor names are this + "." + the released sub-module key (see
 * arch_names.c).  Returns 0, or -1 for the data layer, a bad index or a short buf. */
int gn_arch_module_name(const gn_arch *a, int i, char *buf, size_t cap);

/* Helpers of the released builder, exposed for tests and for search spaces. */
int gn_make_divisible(double v, int divisor); /* timm make_divisible(v, 8, 8, 0.9) */
int gn_round_half_even(double v);               /* Python round() */
int gn_conv_out(int in, int k, int s, int p);   /* floor((in + 2p - k)/s) + 1 */

#endif
