/*
 * arch_resolve.c — derive what the released GPUNet builder derives from a layer list:
 * hidden widths, SE widths, paddings, BN eps, residual flags, drop-path rates, shapes,
 * parameter counts and MACs (see gpunas/arch.h for the MAC convention), and check the
 * cross-layer rules (channel chain, groups, resolution large enough for the strides).
 *
 * Rules, from shared/docs/gpunet.md §2 (builder semantics):
 *   standard family (distill=false), BN eps 1e-3 everywhere:
 *     head       conv3x3 s2 p1 -> BN -> act (default swish)
 *     conv       convKxK s p=((s-1)+(k-1))/2 -> BN -> act, no residual
 *     irb        mid = make_divisible(in*exp); 1x1 -> BN -> act -> dw KxK s p -> BN -> act
 *                -> [SE rd=round(mid*0.25/exp)] -> 1x1 -> BN; residual iff in==out && s==1
 *     fused_irb  mid = make_divisible(in*exp); KxK s, padding (k-1)/2 if s==1 else 0
 *                (released quirk; (k-1)/2 with same_pad_fix) -> BN -> act -> [SE] -> 1x1 -> BN
 *     tail       1x1 -> BN -> ReLU -> avgpool -> dropout -> linear(+bias)
 *   distill family (distill=true), BN eps 1e-5 (fused_irb: 1e-3), always ReLU, no SE:
 *     head       as above; head_large adds two conv3x3 s1 p1 -> BN -> ReLU
 *     irb        mid = in*exp exactly (must be an integer); 1x1 (groups) -> dw KxK p=k/2
 *                -> 1x1 (groups)
 *     fused_irb  KxK p=k/2 (in -> in*exp) -> BN -> ReLU -> 1x1 -> BN
 *     tail       1x1 -> 1152 -> BN -> ReLU -> avgpool -> 1x1 (no bias) -> ReLU -> linear
 *   drop path (training only) = 0.2 * i / (n_layers - 1) for a residual layer at index i
 *   of the standard family; none in the distill family.
 */
#include "gpunas/arch.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DISTILL_TAIL_MID 1152

int gn_make_divisible(double v, int divisor)
{
    int min_value = divisor;
    int nv = (int)((long long)(v + divisor / 2.0) / divisor * divisor);
    if (nv < min_value)
        nv = min_value;
    if (nv < 0.9 * v)
        nv += divisor;
    return nv;
}

int gn_round_half_even(double v)
{
    double r = nearbyint(v); /* default rounding mode: to nearest, ties to even */
    return (int)r;
}

int gn_conv_out(int in, int k, int s, int p) { return (in + 2 * p - k) / s + 1; }

typedef struct {
    const gn_arch *a;
    int idx;
    gn_error *err;
    int c, h, w; /* running shape */
    int64_t params, macs;
    bool overflow; /* a count went past INT64_MAX (checked after every layer) */
} walk;

/* *sum += v, saturating at INT64_MAX and remembering the overflow instead of
 * wrapping (signed overflow is UB).  Every term is >= 0 and fits int64 by the field
 * ranges; only sums and the per-convolution MAC product can overflow. */
static void add(walk *W, int64_t *sum, int64_t v)
{
    if (__builtin_add_overflow(*sum, v, sum)) {
        *sum = INT64_MAX;
        W->overflow = true;
    }
}

/* One convolution on the running shape; counts params/MACs. */
static int conv(walk *W, int cout, int k, int s, int p, int groups, bool bias)
{
    if (W->h + 2 * p < k || W->w + 2 * p < k)
        return gn_error_set(W->err,
                            "%s: layer %d: input %dx%d is too small for a %dx%d convolution (stride %d, padding %d); "
                            "the resolution %d is too small for this network",
                            W->a->source, W->idx, W->h, W->w, k, k, s, p, W->a->resolution);
    int oh = gn_conv_out(W->h, k, s, p), ow = gn_conv_out(W->w, k, s, p);
    int64_t wcount = (int64_t)cout * (W->c / groups) * k * k, m;
    add(W, &W->params, wcount + (bias ? cout : 0));
    if (__builtin_mul_overflow(wcount, (int64_t)oh * ow, &m))
        W->overflow = true;
    else
        add(W, &W->macs, m);
    W->c = cout;
    W->h = oh;
    W->w = ow;
    return 0;
}

static void bn(walk *W) { add(W, &W->params, 2 * (int64_t)W->c); }

/* SE on a mid-channel map: two 1x1 convs with bias at 1x1 spatial size. */
static void se(walk *W, int rd)
{
    int64_t c = W->c;
    add(W, &W->params, c * rd + rd + rd * c + c);
    add(W, &W->macs, c * rd + rd * c);
}

static int bad(walk *W, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(walk *W, const char *field, const char *fmt, ...)
{
    char reason[GN_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    return gn_error_set(W->err, "%s: layer %d: field '%s': %s", W->a->source, W->idx, field, reason);
}

/* Squeeze-excitation on the hidden width: rd = round(mid * 0.25 / exp) (Python round). */
static int se_on_mid(walk *W, gn_layer *L)
{
    L->se_ch = gn_round_half_even(L->mid_ch * (0.25 / L->expansion));
    if (L->se_ch < 1)
        return bad(W, "use_se", "the squeeze-excitation width round(%d * 0.25 / %g) is 0", L->mid_ch, L->expansion);
    se(W, L->se_ch);
    return 0;
}

static int exact_mid(walk *W, const gn_layer *L, int *mid)
{
    double m = L->in_ch * L->expansion;
    double r = floor(m + 0.5);
    if (fabs(m - r) > 1e-6 || r < 1)
        return bad(W, "expansion", "num_in_channels %d x expansion %g = %g is not a whole channel count "
                   "(the distill family uses in*exp exactly)", L->in_ch, L->expansion, m);
    *mid = (int)r;
    return 0;
}

static int resolve_layer(walk *W, gn_layer *L, bool distill, bool same_pad_fix)
{
    int k = L->kernel, s = L->stride;
    L->in_c = W->c;
    L->in_h = W->h;
    L->in_w = W->w;
    L->mid_ch = L->se_ch = L->tail_mid = 0;
    L->residual = false;
    L->bn_eps = distill ? 1e-5f : 1e-3f;
    int64_t p0 = W->params, m0 = W->macs;

    switch (L->type) {
    case GN_LAYER_DATA:
        return 0;
    case GN_LAYER_HEAD:
    case GN_LAYER_HEAD_LARGE:
        L->pad = 1;
        if (conv(W, L->out_ch, 3, 2, 1, 1, false))
            return -1;
        bn(W);
        if (L->type == GN_LAYER_HEAD_LARGE)
            for (int j = 0; j < 2; j++) {
                if (conv(W, L->out_ch, 3, 1, 1, 1, false))
                    return -1;
                bn(W);
            }
        break;
    case GN_LAYER_CONV:
        L->pad = ((s - 1) + (k - 1)) / 2;
        if (conv(W, L->out_ch, k, s, L->pad, 1, false))
            return -1;
        bn(W);
        break;
    case GN_LAYER_IRB:
        if (distill) {
            if (exact_mid(W, L, &L->mid_ch))
                return -1;
            int g = L->groups;
            if (L->in_ch % g || L->mid_ch % g || L->out_ch % g)
                return bad(W, "groups", "%d does not divide num_in_channels %d, the hidden width %d and "
                           "num_out_channels %d", g, L->in_ch, L->mid_ch, L->out_ch);
            L->pad = k / 2;
            if (conv(W, L->mid_ch, 1, 1, 0, g, false))
                return -1;
            bn(W);
            if (conv(W, L->mid_ch, k, s, L->pad, L->mid_ch, false))
                return -1;
            bn(W);
            if (conv(W, L->out_ch, 1, 1, 0, g, false))
                return -1;
            bn(W);
        } else {
            L->mid_ch = gn_make_divisible(L->in_ch * L->expansion, 8);
            L->pad = ((s - 1) + (k - 1)) / 2;
            if (conv(W, L->mid_ch, 1, 1, 0, 1, false))
                return -1;
            bn(W);
            if (conv(W, L->mid_ch, k, s, L->pad, L->mid_ch, false))
                return -1;
            bn(W);
            if (L->use_se && se_on_mid(W, L))
                return -1;
            if (conv(W, L->out_ch, 1, 1, 0, 1, false))
                return -1;
            bn(W);
        }
        L->residual = L->in_ch == L->out_ch && s == 1;
        break;
    case GN_LAYER_FUSED_IRB:
        if (distill) {
            if (L->groups != 1)
                return bad(W, "groups", "the distill fused_irb has no grouped convolution (groups must be 1)");
            if (exact_mid(W, L, &L->mid_ch))
                return -1;
            L->pad = k / 2;
            L->bn_eps = 1e-3f;
        } else {
            L->mid_ch = gn_make_divisible(L->in_ch * L->expansion, 8);
            L->pad = (s == 1 || same_pad_fix) ? (k - 1) / 2 : 0;
        }
        if (conv(W, L->mid_ch, k, s, L->pad, 1, false))
            return -1;
        bn(W);
        if (L->use_se && se_on_mid(W, L))
            return -1;
        if (conv(W, L->out_ch, 1, 1, 0, 1, false))
            return -1;
        bn(W);
        L->residual = L->in_ch == L->out_ch && s == 1;
        break;
    case GN_LAYER_TAIL:
        L->pad = 0;
        if (distill) {
            L->tail_mid = DISTILL_TAIL_MID;
            if (conv(W, DISTILL_TAIL_MID, 1, 1, 0, 1, false))
                return -1;
            bn(W);
            W->h = W->w = 1; /* global average pool */
            if (conv(W, L->out_ch, 1, 1, 0, 1, false))
                return -1;
        } else {
            if (conv(W, L->out_ch, 1, 1, 0, 1, false))
                return -1;
            bn(W);
            W->h = W->w = 1;
        }
        add(W, &W->params, (int64_t)L->out_ch * L->num_classes + L->num_classes);
        add(W, &W->macs, (int64_t)L->out_ch * L->num_classes);
        W->c = L->num_classes;
        break;
    }
    L->out_c = W->c;
    L->out_h = W->h;
    L->out_w = W->w;
    L->params = W->params - p0;
    L->macs = W->macs - m0;
    return 0;
}

int gn_arch_resolve(gn_arch *a, gn_error *err)
{
    walk W = {.a = a, .err = err, .c = a->layers[1].in_ch, .h = a->resolution, .w = a->resolution};
    for (int i = 0; i < a->n_layers; i++) {
        gn_layer *L = &a->layers[i];
        W.idx = i;
        if (i >= 2 && L->in_ch != a->layers[i - 1].out_ch)
            return bad(&W, "num_in_channels", "%d does not match num_out_channels %d of layer %d (%s)", L->in_ch,
                       a->layers[i - 1].out_ch, i - 1, gn_layer_type_name(a->layers[i - 1].type));
        if (resolve_layer(&W, L, a->distill, a->same_pad_fix))
            return -1;
        if (W.overflow)
            return gn_error_set(err, "%s: layer %d: the network is too large: its parameter or multiply-accumulate "
                                "count exceeds 2^63", a->source, i);
        /* the released distill builder sets no drop-connect rate */
        L->drop_path = L->residual && !a->distill ? 0.2 * i / (a->n_layers - 1) : 0.0;
    }
    a->params = W.params;
    a->macs = W.macs;
    return 0;
}

/* Apply a change, resolve, and roll back on failure so the arch stays valid. */
static int change_int(gn_arch *a, int *field, int v, gn_error *err)
{
    int old = *field;
    *field = v;
    if (gn_arch_resolve(a, err) == 0)
        return 0;
    *field = old;
    gn_error tmp;
    gn_arch_resolve(a, &tmp);
    return -1;
}

int gn_arch_set_resolution(gn_arch *a, int res, gn_error *err)
{
    if (res < 1 || res > 16384)
        return gn_error_set(err, "%s: resolution %d out of range [1, 16384]", a->source, res);
    return change_int(a, &a->resolution, res, err);
}

int gn_arch_set_classes(gn_arch *a, int classes, gn_error *err)
{
    if (classes < 1 || classes > 1000000)
        return gn_error_set(err, "%s: number of classes %d out of range [1, 1000000]", a->source, classes);
    return change_int(a, &a->layers[a->n_layers - 1].num_classes, classes, err);
}

int gn_arch_set_in_channels(gn_arch *a, int ch, gn_error *err)
{
    if (ch < 1 || ch > 65536)
        return gn_error_set(err, "%s: input channels %d out of range [1, 65536]", a->source, ch);
    return change_int(a, &a->layers[1].in_ch, ch, err);
}
