/*
 * network_train.c — training forward (batch statistics, dropout/drop-path masks,
 * running-stat update), backward over the node list, and the plain eval forward.
 *
 * Backward: nodes in reverse; the gradient of a value read by several nodes (a
 * residual skip, the SE input) is the sum of what each reader sends.  The first
 * reader (in reverse order) writes dv[value] directly; later ones write to a scratch
 * tensor and accumulate, since backend backward ops overwrite their outputs.
 *
 * BN + ReLU fusion (issue 21; gn__net_plan_bn_relu below): a BN node whose output only
 * the ReLU node right after it reads runs, with that ReLU, as one backend op each way.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/network_internal.h"
#include "util/clock.h"

static gn_tensor pv(gn_net *net, int id) { return net->params[id].value; }

/* Allocate value i's activation and gradient for the current batch unless done.
 * Values are allocated when a forward first runs the node that makes them, so the
 * values of nodes never run (a supernet's branches off every path used so far) take
 * no memory; in a network without mix nodes the first forward allocates them all. */
static int ensure_value(gn_net *net, int i, gn_error *err)
{
    if (net->dv[i].data)
        return 0;
    gn_value_shape s = net->vals[i];
    int n = net->batch;
    if ((i > 0 && gn_tensor_alloc(&net->v[i], net->be, n, s.c, s.h, s.w, err)) ||
        gn_tensor_alloc(&net->dv[i], net->be, n, s.c, s.h, s.w, err))
        return -1;
    /* channels-last activations and gradients where the backend runs every op on
     * them (dnnl): no reorders around convs, and oneDNN's nspc batch norm, which
     * beats its NCHW one on the small spatial sizes here.  The input (value 0) and
     * its gradient stay NCHW; [N,C,1,1] values are the same in both layouts. */
    if (i > 0 && (net->be->caps & GN_CAP_NHWC) && s.h * s.w > 1)
        net->v[i].layout = net->dv[i].layout = GN_LAYOUT_NHWC;
    return 0;
}

int gn__net_ensure_batch(gn_net *net, int n, gn_error *err)
{
    if (net->batch == n && net->v)
        return 0;
    if (net->v) {
        for (int i = 0; i < net->n_vals; i++) {
            gn_tensor_free(&net->v[i]);
            gn_tensor_free(&net->dv[i]);
        }
        gn_tensor_free(&net->scratch[0]);
        gn_tensor_free(&net->scratch[1]);
        gn_tensor_free(&net->dlogits);
    } else {
        net->v = calloc(net->n_vals, sizeof *net->v);
        net->dv = calloc(net->n_vals, sizeof *net->dv);
        net->written = calloc(net->n_vals, 1);
    }
    net->batch = 0; /* until everything below is there */
    size_t maxe = 0;
    for (int i = 0; i < net->n_vals; i++) {
        gn_value_shape s = net->vals[i];
        size_t e = (size_t)s.c * s.h * s.w;
        if (e > maxe)
            maxe = e;
    }
    for (int j = 0; j < 2; j++)
        if (gn_tensor_alloc(&net->scratch[j], net->be, 1, 1, 1, (int)(maxe * n), err))
            return -1;
    gn_value_shape ls = net->vals[net->n_vals - 1];
    if (gn_tensor_alloc(&net->dlogits, net->be, n, ls.c, ls.h, ls.w, err))
        return -1;
    for (int i = 0; i < net->n_nodes; i++) {
        gn_node *nd = &net->nodes[i];
        if (nd->k == ND_BN && !nd->bmean.data) {
            int c = net->vals[nd->in].c;
            if (gn_tensor_alloc(&nd->bmean, net->be, c, 1, 1, 1, err) ||
                gn_tensor_alloc(&nd->bvar, net->be, c, 1, 1, 1, err))
                return -1;
        }
        gn_tensor_free(&nd->mask);
        gn_tensor_free(&nd->ws);
    }
    net->batch = n;
    net->have_forward = false;
    return ensure_value(net, 0, err);
}

/* ------------------------------------------------------------------ BN + ReLU fusion
 * What: a BN node immediately followed by a ReLU node that reads the BN's output, when
 * nothing else reads that value (no other node, no mix column, not the logits), runs
 * as one op: gn_bn_relu_fwd_train in the training forward (on "dnnl" one oneDNN
 * batch-normalization primitive with dnnl_fuse_norm_relu) and gn_bn_relu_bwd in the
 * backward (one primitive: the ReLU's mask applied inside BN's backward).  The pair's
 * result is written straight into the ReLU's value and its gradient read from the
 * ReLU's gradient, so the BN's own value and gradient (the pre-activation) are never
 * allocated; what the backward needs of the ReLU is in the op's workspace (a bit or a
 * byte per element, nd->ws, sized by gn_bn_relu_workspace and kept with the node like
 * the batch statistics).  The plain eval forward runs the pair as BN inference into
 * the ReLU's value and the ReLU in place (the same numbers as unfused, and no
 * pre-activation buffer either).  The fused ACT node is skipped in both passes; it is
 * still counted as run (runs_fwd / runs_bwd), and the op profile books the pair's time
 * under BN.  gn_net_naswot reads a ReLU's output instead of its input (y > 0 exactly
 * when x > 0).
 * When: decided once, when the graph is built (gn__net_finish), for every pair that
 * qualifies, if the backend has the op (gn_bn_relu_supported; both "ref" and "dnnl"
 * do) and GPUNAS_NO_BN_RELU_FUSION is unset, empty or "0" in the environment (set it to
 * 1 to compare; the tests and bench/nn_bench do).  The numbers equal the unfused path
 * within float rounding: on "ref" bit for bit, on "dnnl" oneDNN's fused kernel rounds
 * BN's sums in its own order (tests/test_nn_bn_relu.c).
 * Why not swish: oneDNN 2.6 fuses only ReLU into batch normalization (the flag is
 * dnnl_fuse_norm_relu, slope 0, and there are no post-ops on BN), so BN + swish (and
 * the SE's sigmoid) stay two ops.
 */
int gn__net_plan_bn_relu(gn_net *net)
{
    const char *off = getenv("GPUNAS_NO_BN_RELU_FUSION");
    bool on = gn_bn_relu_supported(net->be) && !(off && *off && strcmp(off, "0") != 0);
    int *readers = calloc((size_t)net->n_vals, sizeof *readers);
    net->n_bn_relu = 0;
    for (int i = 0; i < net->n_nodes; i++)
        net->nodes[i].relu_fused = net->nodes[i].fused_into_bn = false;
    if (!readers || !on) { /* out of memory here: simply no fusion */
        free(readers);
        return 0;
    }
    for (int i = 0; i < net->n_nodes; i++) {
        const gn_node *nd = &net->nodes[i];
        if (nd->k == ND_MIX) {
            for (int k = 0; k < nd->mix_k; k++)
                readers[nd->mix_in[k]]++;
            continue;
        }
        readers[nd->in]++;
        if (nd->in2 >= 0)
            readers[nd->in2]++;
    }
    for (int i = 0; i + 1 < net->n_nodes; i++) {
        gn_node *nd = &net->nodes[i], *nx = &net->nodes[i + 1];
        if (nd->k == ND_BN && nx->k == ND_ACT && nx->act == GN_ELT_RELU && nx->in == nd->out &&
            readers[nd->out] == 1 && nd->out != net->n_vals - 1) {
            nd->relu_fused = nx->fused_into_bn = true;
            net->n_bn_relu++;
        }
    }
    free(readers);
    return net->n_bn_relu;
}

int gn_net_bn_relu_pairs(const gn_net *net) { return net->n_bn_relu; }

/* The fused pair's forward (BN node nd, its ReLU node nd + 1; see above). */
static int bn_relu_fwd(gn_net *net, gn_node *nd, bool train, gn_error *err)
{
    gn_backend *be = net->be;
    gn_tensor *in = &net->v[nd->in], *out = &net->v[nd[1].out];
    gn_tensor g = pv(net, nd->gamma), bb = pv(net, nd->beta), rm = pv(net, nd->rmean), rv = pv(net, nd->rvar);
    if (!train)
        return gn_bn_fwd_infer(be, in, &g, &bb, &rm, &rv, nd->eps, out, err) ||
                       gn_eltwise_fwd(be, GN_ELT_RELU, out, out, err)
                   ? -1
                   : 0;
    size_t need = 0;
    if (gn_bn_relu_workspace(be, in, nd->eps, &need, err))
        return -1;
    if (gn_tensor_numel(&nd->ws) < need) {
        gn_tensor_free(&nd->ws);
        if (gn_tensor_alloc(&nd->ws, be, (int)need, 1, 1, 1, err))
            return -1;
    }
    if (gn_bn_relu_fwd_train(be, in, &g, &bb, nd->eps, out, &nd->bmean, &nd->bvar, &nd->ws, err))
        return -1;
    return gn_bn_update_running(be, &rm, &rv, &nd->bmean, &nd->bvar, net->opts.bn_momentum,
                                (int64_t)in->n * in->h * in->w, err);
}

static int check_input(gn_net *net, const gn_tensor *x, gn_error *err)
{
    gn_value_shape s = net->vals[0];
    if (x->c != s.c || x->h != s.h || x->w != s.w || x->n < 1)
        return gn_error_set(err, "%s: input [%d,%d,%d,%d] does not match the network input [N,%d,%d,%d]",
                            net->arch->source, x->n, x->c, x->h, x->w, s.c, s.h, s.w);
    if (x->be != net->be)
        return gn_error_set(err, "%s: input tensor belongs to another backend", net->arch->source);
    return 0;
}

/* Fill a dropout / drop-path mask (host loop, then copy in). */
static int make_mask(gn_net *net, gn_node *nd, int n, gn_error *err)
{
    const gn_value_shape s = net->vals[nd->in];
    bool per_sample = nd->k == ND_DROPPATH;
    size_t count = per_sample ? (size_t)n : (size_t)n * s.c * s.h * s.w;
    if (!nd->mask.data && gn_tensor_alloc(&nd->mask, net->be, (int)count, 1, 1, 1, err))
        return -1;
    float *m = malloc(count * sizeof *m);
    float keep = 1.0f - nd->rate;
    for (size_t i = 0; i < count; i++)
        m[i] = gn_rng_uniform(&net->rng) < keep ? 1.0f / keep : 0.0f;
    int rc = gn_tensor_from_host(&nd->mask, m, err);
    free(m);
    return rc;
}

/* Which nodes the forward runs: a reverse pass from the logits; a mix node needs only
 * its live columns' inputs (network_internal.h).  Every node of a net without mixes
 * is live. */
static int liveness(gn_net *net, int n, gn_error *err)
{
    if (!net->live && (!(net->live = malloc((size_t)net->n_nodes ? (size_t)net->n_nodes : 1)) ||
                       !(net->need = malloc((size_t)net->n_vals))))
        return gn_error_set(err, "%s: out of memory", net->arch->source);
    memset(net->need, 0, (size_t)net->n_vals);
    net->need[net->n_vals - 1] = 1;
    for (int i = net->n_nodes - 1; i >= 0; i--) {
        gn_node *nd = &net->nodes[i];
        net->live[i] = net->need[nd->out];
        if (!net->live[i])
            continue;
        if (nd->k == ND_MIX) {
            if (nd->mix_rows != n)
                return gn_error_set(err, "%s: mix node %d: weights set for a batch of %d, the input has %d",
                                    net->arch->source, i, nd->mix_rows, n);
            gn__mix_mark_live(nd);
            for (int k = 0; k < nd->mix_k; k++)
                if (nd->mix_live[k])
                    net->need[nd->mix_in[k]] = 1;
            continue;
        }
        net->need[nd->in] = 1;
        if (nd->in2 >= 0)
            net->need[nd->in2] = 1;
    }
    return 0;
}

/* gn_op_profile's kinds are nd_kind's, in order */
_Static_assert((int)ND_CONV == (int)GN_OPK_CONV && (int)ND_DROPPATH == (int)GN_OPK_DROPPATH &&
                   (int)ND_MIX == (int)GN_OPK_MIX && (int)ND_MIX + 1 == (int)GN_OPK_N,
               "gn_op_profile kinds follow nd_kind");

const char *gn_op_kind_name(int kind)
{
    static const char *names[GN_OPK_N] = {"conv", "bn", "act", "gap", "chscale", "add", "linear", "dropout",
                                          "droppath", "mix"};
    return kind >= 0 && kind < GN_OPK_N ? names[kind] : "?";
}

void gn_net_set_op_profile(gn_net *net, gn_op_profile *p) { net->prof = p; }

static void prof_add(gn_net *net, const gn_node *nd, bool bwd, double t0)
{
    double dt = gn__now_s() - t0;
    if (bwd) {
        net->prof->bwd_s[nd->k] += dt;
        net->prof->bwd_n[nd->k]++;
    } else {
        net->prof->fwd_s[nd->k] += dt;
        net->prof->fwd_n[nd->k]++;
    }
}

static int forward(gn_net *net, const gn_tensor *x, bool train, const gn_tensor **logits, gn_error *err)
{
    if (check_input(net, x, err) || gn__net_ensure_batch(net, x->n, err) || liveness(net, x->n, err))
        return -1;
    gn_backend *be = net->be;
    net->v[0] = *x;
    net->v[0].owned = false;
    for (int i = 0; i < net->n_nodes; i++) {
        gn_node *nd = &net->nodes[i];
        if (!net->live[i] || nd->fused_into_bn) /* a fused ReLU runs with its BN */
            continue;
        if (ensure_value(net, nd->relu_fused ? nd[1].out : nd->out, err))
            return -1;
        nd->runs_fwd++;
        double t0 = net->prof ? gn__now_s() : 0;
        gn_tensor *in = &net->v[nd->in], *out = &net->v[nd->out];
        int rc = 0;
        if (nd->relu_fused) {
            nd[1].runs_fwd++;
            if (bn_relu_fwd(net, nd, train, err))
                return -1;
            if (net->prof)
                prof_add(net, nd, false, t0);
            continue;
        }
        switch (nd->k) {
        case ND_MIX:
            rc = gn__mix_fwd(net, nd, err);
            break;
        case ND_CONV: {
            gn_tensor w = pv(net, nd->w), b;
            if (nd->b >= 0)
                b = pv(net, nd->b);
            rc = gn_conv2d_fwd(be, in, &w, nd->b >= 0 ? &b : NULL, out, &nd->cp, err);
            break;
        }
        case ND_BN: {
            gn_tensor g = pv(net, nd->gamma), bb = pv(net, nd->beta), rm = pv(net, nd->rmean), rv = pv(net, nd->rvar);
            if (train) {
                rc = gn_bn_fwd_train(be, in, &g, &bb, nd->eps, out, &nd->bmean, &nd->bvar, err);
                if (!rc)
                    rc = gn_bn_update_running(be, &rm, &rv, &nd->bmean, &nd->bvar, net->opts.bn_momentum,
                                              (int64_t)in->n * in->h * in->w, err);
            } else {
                rc = gn_bn_fwd_infer(be, in, &g, &bb, &rm, &rv, nd->eps, out, err);
            }
            break;
        }
        case ND_ACT:
            rc = gn_eltwise_fwd(be, nd->act, in, out, err);
            break;
        case ND_GAP:
            rc = gn_gap_fwd(be, in, out, err);
            break;
        case ND_CHSCALE:
            rc = gn_channel_scale_fwd(be, in, &net->v[nd->in2], out, err);
            break;
        case ND_ADD:
            rc = gn_add(be, in, &net->v[nd->in2], out, err);
            break;
        case ND_LINEAR: {
            gn_tensor w = pv(net, nd->w), b = pv(net, nd->b);
            rc = gn_linear_fwd(be, in, &w, &b, out, err);
            break;
        }
        case ND_DROPOUT:
        case ND_DROPPATH: {
            bool on = train && nd->rate > 0 && (nd->k == ND_DROPOUT ? net->opts.dropout : net->opts.drop_path);
            if (on) {
                rc = make_mask(net, nd, in->n, err);
                if (!rc)
                    rc = gn_mul_mask_fwd(be, in, &nd->mask, out, err);
            } else {
                gn_tensor_free(&nd->mask);
                rc = gn_tensor_copy(out, in, err);
            }
            break;
        }
        }
        if (rc)
            return -1;
        if (net->prof)
            prof_add(net, nd, false, t0);
    }
    net->have_forward = train;
    *logits = &net->v[net->n_vals - 1];
    return 0;
}

int gn_net_forward_train(gn_net *net, const gn_tensor *x, const gn_tensor **logits, gn_error *err)
{
    net->ip.ready = false; /* running stats change */
    if (forward(net, x, true, logits, err))
        return -1;
    net->bn_batches++; /* PyTorch's num_batches_tracked */
    return 0;
}

int gn_net_forward_eval(gn_net *net, const gn_tensor *x, const gn_tensor **logits, gn_error *err)
{
    return forward(net, x, false, logits, err);
}

/* Where to write the gradient for value id: dv[id] on first write, else scratch j. */
static gn_tensor *grad_dst(gn_net *net, int id, int j, gn_tensor *view)
{
    if (!net->written[id])
        return &net->dv[id];
    const gn_tensor *d = &net->dv[id];
    gn_tensor_wrap(view, net->be, net->scratch[j].data, d->n, d->c, d->h, d->w);
    view->layout = d->layout;
    return view;
}

static int grad_done(gn_net *net, int id, gn_tensor *dst, gn_error *err)
{
    if (!net->written[id]) {
        net->written[id] = 1;
        return 0;
    }
    return gn_accumulate(net->be, &net->dv[id], dst, err);
}

static int zero_grad(gn_net *net, int id)
{
    if (id < 0 || !net->params[id].trainable)
        return 0;
    gn_tensor *g = &net->params[id].grad;
    return net->be->ops->fill(net->be, g->data, gn_tensor_numel(g), 0.0f);
}

/* A node that backward does not reach: its parameter gradients are 0. */
static int zero_param_grads(gn_net *net, const gn_node *nd, gn_error *err)
{
    int rc = 0;
    if (nd->k == ND_CONV || nd->k == ND_LINEAR)
        rc = zero_grad(net, nd->w) || zero_grad(net, nd->b);
    else if (nd->k == ND_BN)
        rc = zero_grad(net, nd->gamma) || zero_grad(net, nd->beta);
    return rc ? gn_error_set(err, "%s: cannot clear gradients", net->arch->source) : 0;
}

int gn_net_backward(gn_net *net, const gn_tensor *dlogits, gn_error *err)
{
    if (!net->have_forward)
        return gn_error_set(err, "%s: backward without a training forward", net->arch->source);
    gn_backend *be = net->be;
    memset(net->written, 0, net->n_vals);
    int last = net->n_vals - 1;
    if (!gn_tensor_same_shape(dlogits, &net->dv[last]))
        return gn_error_set(err, "%s: dlogits shape does not match the logits", net->arch->source);
    if (gn_tensor_copy(&net->dv[last], dlogits, err))
        return -1;
    net->written[last] = 1;
    for (int i = net->n_nodes - 1; i >= 0; i--) {
        gn_node *nd = &net->nodes[i];
        if (nd->fused_into_bn) /* a fused ReLU: its BN node (next in this loop) runs both */
            continue;
        int out = nd->relu_fused ? nd[1].out : nd->out;
        if (!net->written[out]) { /* does not reach the loss, or was not run */
            if (zero_param_grads(net, nd, err))
                return -1;
            continue;
        }
        nd->runs_bwd++;
        if (nd->relu_fused)
            nd[1].runs_bwd++;
        double t0 = net->prof ? gn__now_s() : 0;
        gn_tensor *dy = &net->dv[out], *x = &net->v[nd->in];
        bool need_dx = nd->in != 0 && nd->k != ND_MIX; /* no gradient for the image */
        gn_tensor view0, view1, *dx = need_dx ? grad_dst(net, nd->in, 0, &view0) : NULL;
        int rc = 0;
        switch (nd->k) {
        case ND_MIX:
            rc = gn__mix_bwd_weights(net, nd, dy, err);
            for (int k = 0; k < nd->mix_k && !rc; k++) {
                int id = nd->mix_in[k];
                if (!nd->mix_live[k] || id == 0)
                    continue;
                gn_tensor *d = grad_dst(net, id, 0, &view0);
                rc = gn__mix_bwd_input(net, nd, k, dy, d, err);
                if (!rc)
                    rc = grad_done(net, id, d, err);
            }
            break;
        case ND_CONV: {
            gn_tensor w = pv(net, nd->w), gw = net->params[nd->w].grad, gb;
            if (nd->b >= 0)
                gb = net->params[nd->b].grad;
            rc = gn_conv2d_bwd_weights(be, x, dy, &gw, nd->b >= 0 ? &gb : NULL, &nd->cp, err);
            if (!rc && dx)
                rc = gn_conv2d_bwd_data(be, dy, &w, dx, &nd->cp, err);
            break;
        }
        case ND_BN: {
            gn_tensor g = pv(net, nd->gamma), gg = net->params[nd->gamma].grad, gbeta = net->params[nd->beta].grad;
            if (nd->relu_fused)
                rc = gn_bn_relu_bwd(be, x, dy, &g, &nd->bmean, &nd->bvar, nd->eps, &nd->ws, dx, &gg, &gbeta,
                                    err);
            else
                rc = gn_bn_bwd(be, x, dy, &g, &nd->bmean, &nd->bvar, nd->eps, dx, &gg, &gbeta, err);
            break;
        }
        case ND_ACT:
            rc = gn_eltwise_bwd(be, nd->act, x, dy, dx, err);
            break;
        case ND_GAP:
            rc = gn_gap_bwd(be, dy, dx, err);
            break;
        case ND_CHSCALE: {
            gn_tensor *ds = grad_dst(net, nd->in2, 1, &view1);
            rc = gn_channel_scale_bwd(be, x, &net->v[nd->in2], dy, dx, ds, err);
            if (!rc)
                rc = grad_done(net, nd->in2, ds, err);
            break;
        }
        case ND_ADD: {
            rc = gn_tensor_copy(dx, dy, err);
            if (!rc) {
                gn_tensor *db = grad_dst(net, nd->in2, 1, &view1);
                rc = gn_tensor_copy(db, dy, err);
                if (!rc)
                    rc = grad_done(net, nd->in2, db, err);
            }
            break;
        }
        case ND_LINEAR: {
            gn_tensor w = pv(net, nd->w), gw = net->params[nd->w].grad, gb = net->params[nd->b].grad;
            rc = gn_linear_bwd(be, x, &w, dy, dx, &gw, &gb, err);
            break;
        }
        case ND_DROPOUT:
        case ND_DROPPATH:
            rc = nd->mask.data ? gn_mul_mask_bwd(be, dy, &nd->mask, dx, err) : gn_tensor_copy(dx, dy, err);
            break;
        }
        if (rc)
            return -1;
        if (dx && grad_done(net, nd->in, dx, err))
            return -1;
        if (net->prof)
            prof_add(net, nd, true, t0);
    }
    return 0;
}

int gn_net_train_step(gn_net *net, const gn_tensor *x, const int32_t *labels, float smoothing, float *loss,
                      gn_error *err)
{
    const gn_tensor *logits;
    if (gn_net_forward_train(net, x, &logits, err))
        return -1;
    if (gn_softmax_xent(net->be, logits, labels, smoothing, loss, &net->dlogits, err))
        return -1;
    if (!isfinite(*loss))
        return gn_error_set(err, "%s: loss is %f (not finite)", net->arch->source, *loss);
    return gn_net_backward(net, &net->dlogits, err);
}
