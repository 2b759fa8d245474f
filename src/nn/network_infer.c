/*
 * network_infer.c — the inference path: BN folded into convolutions, activation and
 * residual add fused into them, and activation buffers reused by liveness.
 *
 * Lowering (from the training node list): CONV [BN] [ACT | (DROPPATH) ADD] becomes
 * one fused conv y = act(conv(x, w') + b') + r with w' = w*s, b' = beta - mean*s
 * (+ bias*s), s = gamma/sqrt(var+eps); dropout and drop-path vanish (identity at
 * inference); GAP, channel scale, linear stay; anything else that is left runs
 * unfused.
 *
 * Layout: on a backend with GN_CAP_NHWC (dnnl) every activation after the input is
 * channels-last, so oneDNN's convolutions read and write them directly (no reorder to
 * and from a blocked layout around each conv, and the residual add stays a post-op of
 * a direct kernel); the NCHW input is reordered once by the first conv.  Folded
 * weights get a fresh weights_version, so the backend reorders them once, not per run.
 *
 * Memory plan: values are visited in execution order; a node's output takes the
 * smallest free buffer that is large enough (else a new one), and only then are the
 * buffers of values whose last reader was this node released, so an output never
 * aliases its inputs.  Buffers are sized per sample and allocated for the batch of
 * the call (re-allocated when the batch changes).
 *
 * Profiling (gn_net_infer_profile): the same node loop, with a CLOCK_MONOTONIC read
 * around each node, its elapsed nanoseconds added to the node's JSON layer; the
 * plain gn_net_infer runs the loop with no clock reads at all.
 */
#include <math.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "nn/network_internal.h"
#include "util/clock.h"

void gn__infer_plan_free(gn_infer_plan *p)
{
    for (int i = 0; i < p->n_nodes; i++) {
        gn_tensor_free(&p->nodes[i].w);
        gn_tensor_free(&p->nodes[i].b);
    }
    for (int i = 0; i < p->n_bufs; i++)
        gn_tensor_free(&p->bufs[i]);
    free(p->nodes);
    free(p->vshape);
    free(p->vbuf);
    free(p->buf_elems);
    free(p->bufs);
    free(p->views);
    memset(p, 0, sizeof *p);
}

static float *host_copy(gn_net *net, int pid, gn_error *err)
{
    const gn_tensor *t = &net->params[pid].value;
    float *h = malloc(gn_tensor_numel(t) * sizeof *h);
    if (gn_tensor_to_host(t, h, err)) {
        free(h);
        return NULL;
    }
    return h;
}

/* Fold BN (node bn, may be NULL) into conv node c: new owned tensors w, b. */
static int fold(gn_net *net, const gn_node *c, const gn_node *bn, gn_inode *o, gn_error *err)
{
    const gn_tensor *wt = &net->params[c->w].value;
    int O = wt->n;
    size_t per = gn_tensor_numel(wt) / O;
    float *w = host_copy(net, c->w, err), *b = calloc(O, sizeof *b);
    if (!w)
        goto fail;
    if (c->b >= 0) {
        float *cb = host_copy(net, c->b, err);
        if (!cb)
            goto fail;
        memcpy(b, cb, O * sizeof *b);
        free(cb);
    }
    if (bn) {
        float *g = host_copy(net, bn->gamma, err), *be = host_copy(net, bn->beta, err),
              *m = host_copy(net, bn->rmean, err), *v = host_copy(net, bn->rvar, err);
        if (!g || !be || !m || !v) {
            free(g), free(be), free(m), free(v);
            goto fail;
        }
        for (int oc = 0; oc < O; oc++) {
            double s = g[oc] / sqrt((double)v[oc] + bn->eps);
            for (size_t j = 0; j < per; j++)
                w[oc * per + j] = (float)(w[oc * per + j] * s);
            b[oc] = (float)(be[oc] + (b[oc] - m[oc]) * s);
        }
        free(g), free(be), free(m), free(v);
    }
    if (gn_tensor_alloc(&o->w, net->be, wt->n, wt->c, wt->h, wt->w, err) || gn_tensor_from_host(&o->w, w, err) ||
        gn_tensor_alloc(&o->b, net->be, O, 1, 1, 1, err) || gn_tensor_from_host(&o->b, b, err))
        goto fail;
    free(w);
    free(b);
    return 0;
fail:
    free(w);
    free(b);
    return -1;
}

static int lower(gn_net *net, gn_infer_plan *p, gn_error *err)
{
    int *map = malloc(net->n_vals * sizeof *map), *uses = calloc(net->n_vals, sizeof *uses);
    for (int i = 0; i < net->n_vals; i++)
        map[i] = -1;
    for (int i = 0; i < net->n_nodes; i++) {
        uses[net->nodes[i].in]++;
        if (net->nodes[i].in2 >= 0)
            uses[net->nodes[i].in2]++;
    }
    p->nodes = calloc(net->n_nodes, sizeof *p->nodes);
    p->vshape = calloc(net->n_vals, sizeof *p->vshape);
    map[0] = 0;
    p->vshape[0] = net->vals[0];
    p->n_vals = 1;
    int rc = 0;
#define NEWVAL(tv) (p->vshape[p->n_vals] = net->vals[tv], map[tv] = p->n_vals++)
    for (int i = 0; i < net->n_nodes && !rc; i++) {
        const gn_node *nd = &net->nodes[i];
        if (nd->k == ND_MIX) {
            rc = gn_error_set(err, "%s: a supernet has no inference path (derive an architecture)", net->arch->source);
            break;
        }
        if (nd->k == ND_DROPOUT || nd->k == ND_DROPPATH) {
            map[nd->out] = map[nd->in];
            continue;
        }
        gn_inode *o = &p->nodes[p->n_nodes++];
        o->k = nd->k;
        o->src = i;
        o->in = map[nd->in];
        o->in2 = nd->in2 >= 0 ? map[nd->in2] : -1;
        o->res = -1;
        o->act = GN_ELT_IDENTITY;
        if (nd->k == ND_CONV) {
            o->cp = nd->cp;
            o->cp.weights_version = gn_backend_new_weights_version(); /* fresh folded weights */
            int last = nd->out, j = i + 1;
            const gn_node *bn = NULL;
            if (j < net->n_nodes && net->nodes[j].k == ND_BN && net->nodes[j].in == last && uses[last] == 1) {
                bn = &net->nodes[j];
                last = bn->out;
                j++;
            }
            if (j < net->n_nodes && net->nodes[j].k == ND_ACT && net->nodes[j].in == last && uses[last] == 1) {
                o->act = net->nodes[j].act;
                last = net->nodes[j].out;
                j++;
            } else {
                int k2 = j, t = last;
                if (k2 < net->n_nodes && net->nodes[k2].k == ND_DROPPATH && net->nodes[k2].in == t && uses[t] == 1) {
                    t = net->nodes[k2].out;
                    k2++;
                }
                if (k2 < net->n_nodes && net->nodes[k2].k == ND_ADD && net->nodes[k2].in == t && uses[t] == 1 &&
                    map[net->nodes[k2].in2] >= 0) {
                    o->res = map[net->nodes[k2].in2];
                    last = net->nodes[k2].out;
                    j = k2 + 1;
                }
            }
            rc = fold(net, nd, bn, o, err);
            NEWVAL(last);
            o->out = map[last];
            i = j - 1;
            continue;
        }
        if (nd->k == ND_LINEAR) {
            gn_tensor w = net->params[nd->w].value, b = net->params[nd->b].value;
            gn_tensor_wrap(&o->w, net->be, w.data, w.n, w.c, w.h, w.w);
            gn_tensor_wrap(&o->b, net->be, b.data, b.n, b.c, b.h, b.w);
        }
        if (nd->k == ND_ACT)
            o->act = nd->act;
        NEWVAL(nd->out);
        o->out = map[nd->out];
    }
#undef NEWVAL
    free(map);
    free(uses);
    return rc;
}

static void plan_buffers(gn_infer_plan *p)
{
    int *last = malloc(p->n_vals * sizeof *last);
    for (int v = 0; v < p->n_vals; v++)
        last[v] = -1;
    for (int i = 0; i < p->n_nodes; i++) {
        const gn_inode *o = &p->nodes[i];
        last[o->in] = i;
        if (o->in2 >= 0)
            last[o->in2] = i;
        if (o->res >= 0)
            last[o->res] = i;
    }
    last[p->n_vals - 1] = p->n_nodes; /* the logits outlive the run */
    p->vbuf = malloc(p->n_vals * sizeof *p->vbuf);
    p->buf_elems = calloc(p->n_vals, sizeof *p->buf_elems);
    bool *busy = calloc(p->n_vals, sizeof *busy);
    p->vbuf[0] = -1;
    for (int i = 0; i < p->n_nodes; i++) {
        const gn_inode *o = &p->nodes[i];
        gn_value_shape s = p->vshape[o->out];
        size_t need = (size_t)s.c * s.h * s.w;
        int best = -1;
        for (int b = 0; b < p->n_bufs; b++)
            if (!busy[b] && p->buf_elems[b] >= need && (best < 0 || p->buf_elems[b] < p->buf_elems[best]))
                best = b;
        if (best < 0) /* grow the largest free buffer, or make a new one */
            for (int b = 0; b < p->n_bufs; b++)
                if (!busy[b] && (best < 0 || p->buf_elems[b] > p->buf_elems[best]))
                    best = b;
        if (best < 0)
            best = p->n_bufs++;
        if (p->buf_elems[best] < need)
            p->buf_elems[best] = need;
        busy[best] = true;
        p->vbuf[o->out] = best;
        int ins[3] = {o->in, o->in2, o->res};
        for (int k = 0; k < 3; k++)
            if (ins[k] > 0 && last[ins[k]] == i)
                busy[p->vbuf[ins[k]]] = false;
    }
    free(busy);
    free(last);
}

int gn_net_prepare_inference(gn_net *net, gn_error *err)
{
    gn__infer_plan_free(&net->ip);
    if (lower(net, &net->ip, err) != 0) {
        gn__infer_plan_free(&net->ip);
        return -1;
    }
    plan_buffers(&net->ip);
    net->ip.bufs = calloc(net->ip.n_bufs ? net->ip.n_bufs : 1, sizeof *net->ip.bufs);
    net->ip.views = calloc(net->ip.n_vals, sizeof *net->ip.views);
    net->ip.ready = true;
    return 0;
}

size_t gn_net_infer_activation_bytes(const gn_net *net)
{
    size_t s = 0;
    for (int b = 0; b < net->ip.n_bufs; b++)
        s += net->ip.buf_elems[b] * sizeof(float) * (size_t)(net->ip.batch ? net->ip.batch : 1);
    return s;
}

size_t gn_net_infer_weight_bytes(const gn_net *net)
{
    size_t s = 0;
    for (int i = 0; i < net->ip.n_nodes; i++)
        s += (gn_tensor_numel(&net->ip.nodes[i].w) + gn_tensor_numel(&net->ip.nodes[i].b)) * sizeof(float);
    return s;
}


static int infer_run(gn_net *net, const gn_tensor *x, const gn_tensor **logits, int64_t *layer_ns, gn_error *err);

int gn_net_infer(gn_net *net, const gn_tensor *x, const gn_tensor **logits, gn_error *err)
{
    return infer_run(net, x, logits, NULL, err);
}

int gn_net_infer_profile(gn_net *net, const gn_tensor *x, const gn_tensor **logits, int64_t *layer_ns, gn_error *err)
{
    if (!layer_ns)
        return gn_error_set(err, "%s: infer_profile: layer_ns is NULL", net->arch->source);
    return infer_run(net, x, logits, layer_ns, err);
}

static int infer_run(gn_net *net, const gn_tensor *x, const gn_tensor **logits, int64_t *layer_ns, gn_error *err)
{
    gn_infer_plan *p = &net->ip;
    if (!p->ready && gn_net_prepare_inference(net, err))
        return -1;
    gn_value_shape s0 = p->vshape[0];
    if (x->c != s0.c || x->h != s0.h || x->w != s0.w || x->n < 1)
        return gn_error_set(err, "%s: input [%d,%d,%d,%d] does not match the network input [N,%d,%d,%d]",
                            net->arch->source, x->n, x->c, x->h, x->w, s0.c, s0.h, s0.w);
    int n = x->n;
    if (p->batch != n) {
        for (int b = 0; b < p->n_bufs; b++) {
            gn_tensor_free(&p->bufs[b]);
            if (gn_tensor_alloc(&p->bufs[b], net->be, 1, 1, 1, (int)(p->buf_elems[b] * n), err))
                return -1;
        }
        for (int v = 1; v < p->n_vals; v++) {
            gn_value_shape s = p->vshape[v];
            gn_tensor_wrap(&p->views[v], net->be, p->bufs[p->vbuf[v]].data, n, s.c, s.h, s.w);
            /* channels-last activations where the backend runs them (no reorders
             * around each conv); [N,C,1,1] values are the same in both layouts */
            if ((net->be->caps & GN_CAP_NHWC) && s.h * s.w > 1)
                p->views[v].layout = GN_LAYOUT_NHWC;
        }
        p->batch = n;
    }
    p->views[0] = *x;
    p->views[0].owned = false;
    for (int i = 0; i < p->n_nodes; i++) {
        gn_inode *o = &p->nodes[i];
        gn_tensor *in = &p->views[o->in], *out = &p->views[o->out];
        int rc = 0;
        int64_t t0 = layer_ns ? gn__now_ns() : 0;
        switch (o->k) {
        case ND_CONV:
            rc = gn_conv2d_fwd_fused(net->be, in, &o->w, &o->b, o->act, o->res >= 0 ? &p->views[o->res] : NULL, out,
                                     &o->cp, err);
            break;
        case ND_ACT:
            rc = gn_eltwise_fwd(net->be, o->act, in, out, err);
            break;
        case ND_GAP:
            rc = gn_gap_fwd(net->be, in, out, err);
            break;
        case ND_CHSCALE:
            rc = gn_channel_scale_fwd(net->be, in, &p->views[o->in2], out, err);
            break;
        case ND_ADD:
            rc = gn_add(net->be, in, &p->views[o->in2], out, err);
            break;
        case ND_LINEAR:
            rc = gn_linear_fwd(net->be, in, &o->w, &o->b, out, err);
            break;
        case ND_BN: {
            const gn_node *nd = &net->nodes[o->src];
            rc = gn_bn_fwd_infer(net->be, in, &net->params[nd->gamma].value, &net->params[nd->beta].value,
                                 &net->params[nd->rmean].value, &net->params[nd->rvar].value, nd->eps, out, err);
            break;
        }
        default:
            rc = gn_error_set(err, "%s: internal error: unexpected inference node", net->arch->source);
        }
        if (rc)
            return -1;
        if (layer_ns)
            layer_ns[net->nodes[o->src].layer] += gn__now_ns() - t0;
    }
    *logits = &p->views[p->n_vals - 1];
    return 0;
}
