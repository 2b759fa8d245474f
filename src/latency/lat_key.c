/*
 * lat_key.c — lookup-table keys of JSON layers, their FLOP/byte costs, and the
 * isolated timing of one layer inside a minimal host network
 * (see gpunas/latprofile.h for the key format and the host-network rule).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpunas/latprofile.h"

int gn_lat_key(const gn_arch *a, int layer, int batch, char *key, size_t key_size, gn_error *err)
{
    if (layer < 1 || layer >= a->n_layers)
        return gn_error_set(err, "%s: layer %d: no such layer (1..%d)", a->source, layer, a->n_layers - 1);
    if (batch < 1)
        return gn_error_set(err, "%s: batch %d must be >= 1", a->source, batch);
    const gn_layer *L = &a->layers[layer];
    int k = L->kernel, s = L->stride, pad = L->pad, mid = L->mid_ch, g = 1, cls = 0;
    const char *act = gn_act_name(L->act);
    switch (L->type) {
    case GN_LAYER_HEAD:
    case GN_LAYER_HEAD_LARGE:
        k = 3, s = 2, pad = 1, mid = 0;
        break;
    case GN_LAYER_CONV:
        mid = 0;
        break;
    case GN_LAYER_IRB:
        g = a->distill ? L->groups : 1;
        break;
    case GN_LAYER_FUSED_IRB:
        break;
    case GN_LAYER_TAIL:
        k = 1, s = 1, pad = 0, mid = L->tail_mid, cls = L->num_classes, act = "relu";
        break;
    case GN_LAYER_DATA:
        return gn_error_set(err, "%s: layer %d: the data layer has no key", a->source, layer);
    }
    int w = snprintf(key, key_size, "%s|%s|in=%dx%dx%d|out=%d|k=%d|s=%d|pad=%d|mid=%d|g=%d|act=%s|se=%d|res=%d|cls=%d|b=%d",
                     gn_layer_type_name(L->type), a->distill ? "distill" : "std", L->in_c, L->in_h, L->in_w,
                     L->out_ch, k, s, pad, mid, g, act, L->se_ch, L->residual ? 1 : 0, cls, batch);
    if (w < 0 || (size_t)w >= key_size)
        return gn_error_set(err, "%s: layer %d: key longer than %zu characters", a->source, layer, key_size - 1);
    return 0;
}

double gn_lat_layer_flops(const gn_layer *L, int batch)
{
    return 2.0 * (double)L->macs * batch;
}

double gn_lat_layer_bytes(const gn_layer *L, int batch)
{
    double act = ((double)L->in_c * L->in_h * L->in_w + (double)L->out_c * L->out_h * L->out_w) * batch;
    return 4.0 * (act + (double)L->params);
}

/* The host network of layer li (see the header): *out owns it, *idx is the layer's
 * index in it. */
static int host_arch(const gn_arch *a, int li, gn_arch **out, int *idx, gn_error *err)
{
    const gn_layer *L = &a->layers[li];
    *out = NULL;
    if (L->in_h != L->in_w)
        return gn_error_set(err, "%s: layer %d: non-square input %dx%d cannot be timed alone", a->source, li, L->in_h,
                            L->in_w);
    gn_arch *h = calloc(1, sizeof *h);
    size_t sl = strlen(a->source) + 64;
    h->source = malloc(sl);
    h->layers = calloc(4, sizeof *h->layers);
    if (!h->source || !h->layers) {
        gn_arch_free(h);
        return gn_error_set(err, "%s: out of memory", a->source);
    }
    snprintf(h->source, sl, "%s (layer %d alone)", a->source, li);
    h->distill = a->distill;
    h->same_pad_fix = a->same_pad_fix;
    int n = 0;
    h->layers[n++] = a->layers[0];
    if (L->type == GN_LAYER_HEAD || L->type == GN_LAYER_HEAD_LARGE) {
        h->resolution = a->resolution;
    } else {
        gn_layer hd = a->layers[1];
        hd.type = GN_LAYER_HEAD;
        hd.in_ch = 1;
        hd.out_ch = L->in_ch;
        hd.act = GN_ACT_RELU;
        hd.act_set = true;
        h->layers[n++] = hd;
        h->resolution = 2 * L->in_h;
    }
    *idx = n;
    h->layers[n++] = *L;
    if (L->type != GN_LAYER_TAIL) {
        gn_layer t = a->layers[a->n_layers - 1];
        t.in_ch = L->out_ch;
        t.out_ch = 16;
        t.num_classes = 2;
        h->layers[n++] = t;
    }
    h->n_layers = n;
    char k0[GN_LAT_KEY_MAX], k1[GN_LAT_KEY_MAX];
    if (gn_arch_resolve(h, err) || gn_lat_key(a, li, 1, k0, sizeof k0, err) || gn_lat_key(h, *idx, 1, k1, sizeof k1, err)) {
        gn_arch_free(h);
        return -1;
    }
    if (strcmp(k0, k1) != 0) {
        gn_arch_free(h);
        return gn_error_set(err, "%s: layer %d: internal error: host network changes the layer (%s -> %s)", a->source,
                            li, k0, k1);
    }
    *out = h;
    return 0;
}

int gn_lat_measure_layer(const gn_arch *a, int layer, gn_backend *be, int batch, const gn_lat_opts *o,
                         double *median_ms, double *cv, gn_error *err)
{
    if (layer < 1 || layer >= a->n_layers)
        return gn_error_set(err, "%s: layer %d: no such layer (1..%d)", a->source, layer, a->n_layers - 1);
    gn_arch *h = NULL;
    int idx = 0;
    if (host_arch(a, layer, &h, &idx, err))
        return -1;
    gn_net *net = NULL;
    gn_lat_layers lr = {0};
    int rc = -1;
    if (gn_net_create(h, be, &net, err) || gn_net_init(net, o->seed, err) ||
        gn_lat_measure_layers(net, batch, o, &lr, err))
        goto out;
    *median_ms = lr.median_ms[idx];
    if (cv)
        *cv = lr.cv[idx];
    rc = 0;
out:
    gn_lat_layers_free(&lr);
    gn_net_free(net);
    gn_arch_free(h);
    return rc;
}
