/*
 * network_mix.c — the ND_MIX node (design in network_internal.h): per-sample weighted
 * sums of K values of one shape, the backward to each input and to the weights.
 *
 * A sample's block of c*h*w floats is contiguous in NCHW and in NHWC alike (n is the
 * outermost index in both), and the inputs and output of a mix have one shape and so
 * one layout (gn__net_ensure_batch picks the layout from the shape): the loops below
 * work per sample on raw blocks and are layout-free.  Host memory only (see the
 * header).  Sums of products are accumulated in double.
 */
#include <stdlib.h>
#include <string.h>

#include "nn/network_internal.h"

int gn__mix_set_weights(gn_net *net, int node, const float *w, int rows, gn_error *err)
{
    gn_node *nd = &net->nodes[node];
    if (nd->k != ND_MIX || rows < 1)
        return gn_error_set(err, "%s: node %d: internal error: not a mix node or no rows", net->arch->source, node);
    if (rows != nd->mix_rows) {
        size_t n = (size_t)rows * nd->mix_k;
        float *nw = realloc(nd->mixw, n * sizeof *nw);
        if (!nw)
            return gn_error_set(err, "%s: out of memory for mix weights", net->arch->source);
        nd->mixw = nw;
        double *ng = realloc(nd->mixg, n * sizeof *ng);
        if (!ng)
            return gn_error_set(err, "%s: out of memory for mix weights", net->arch->source);
        nd->mixg = ng;
        if (!nd->mix_live && !(nd->mix_live = malloc((size_t)nd->mix_k)))
            return gn_error_set(err, "%s: out of memory for mix weights", net->arch->source);
        nd->mix_rows = rows;
    }
    memcpy(nd->mixw, w, (size_t)rows * nd->mix_k * sizeof *w);
    return 0;
}

void gn__mix_mark_live(gn_node *nd)
{
    for (int k = 0; k < nd->mix_k; k++) {
        nd->mix_live[k] = 0;
        for (int n = 0; n < nd->mix_rows && !nd->mix_live[k]; n++)
            nd->mix_live[k] = nd->mixw[(size_t)n * nd->mix_k + k] != 0.0f;
    }
}

int gn__mix_fwd(gn_net *net, gn_node *nd, gn_error *err)
{
    gn_tensor *out = &net->v[nd->out];
    size_t per = gn_tensor_numel(out) / (size_t)out->n;
    bool first = true;
    for (int k = 0; k < nd->mix_k; k++) {
        if (!nd->mix_live[k])
            continue;
        const float *x = net->v[nd->mix_in[k]].data;
        for (int n = 0; n < out->n; n++) {
            float w = nd->mixw[(size_t)n * nd->mix_k + k];
            const float *xs = x + (size_t)n * per;
            float *ys = out->data + (size_t)n * per;
            if (first)
                for (size_t i = 0; i < per; i++)
                    ys[i] = w * xs[i];
            else
                for (size_t i = 0; i < per; i++)
                    ys[i] += w * xs[i];
        }
        first = false;
    }
    if (first) /* every column dead: the sum of nothing */
        return gn_tensor_fill(out, 0.0f, err);
    return 0;
}

int gn__mix_bwd_input(gn_net *net, const gn_node *nd, int k, const gn_tensor *dy, gn_tensor *dst, gn_error *err)
{
    (void)net;
    (void)err;
    size_t per = gn_tensor_numel(dy) / (size_t)dy->n;
    for (int n = 0; n < dy->n; n++) {
        float w = nd->mixw[(size_t)n * nd->mix_k + k];
        const float *g = dy->data + (size_t)n * per;
        float *d = dst->data + (size_t)n * per;
        for (size_t i = 0; i < per; i++)
            d[i] = w * g[i];
    }
    return 0;
}

int gn__mix_bwd_weights(gn_net *net, gn_node *nd, const gn_tensor *dy, gn_error *err)
{
    (void)err;
    size_t per = gn_tensor_numel(dy) / (size_t)dy->n;
    for (int k = 0; k < nd->mix_k; k++) {
        const float *x = net->v[nd->mix_in[k]].data;
        for (int n = 0; n < dy->n; n++) {
            double s = 0;
            if (nd->mix_live[k]) {
                const float *g = dy->data + (size_t)n * per, *xs = x + (size_t)n * per;
                for (size_t i = 0; i < per; i++)
                    s += (double)g[i] * xs[i];
            }
            nd->mixg[(size_t)n * nd->mix_k + k] = s;
        }
    }
    return 0;
}
