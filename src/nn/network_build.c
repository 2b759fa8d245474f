/*
 * network_build.c — lower a gn_arch into primitive nodes and named parameters
 * (see gpunas/network.h), and initialise the parameters.
 *
 * Parameter names are NVIDIA's state-dict keys: the module name of the JSON layer
 * (gn_arch_module_name, e.g. "network.stage: 1 layer3") + "." + the sub-module key
 * below + "." + the parameter.  Sub-module keys per JSON layer (identical to
 * tests/pytorch/gpunet_ref.py):
 *   standard family
 *     head       net.0 (conv)  net.1 (bn)
 *     conv       conv  bn1
 *     irb        conv_pw bn1 conv_dw bn2 [se.conv_reduce se.conv_expand] conv_pwl bn3
 *     fused_irb  conv_exp bn1 [se.conv_reduce se.conv_expand] conv_pwl bn2
 *     tail       net.0 (conv) net.1 (bn) net.6 (linear)
 *   distill family
 *     head       net.0 net.1;  head_large: net.0 net.1 net.3 net.4 net.6 net.7
 *     irb        body.0 body.1 body.3 body.4 body.6 body.7
 *     fused_irb  body.0 body.1 body.3 body.4
 *     tail       net.0 net.1 net.4 (1x1 conv, no bias) net.8 (linear)
 *   params: conv .weight [.bias]; bn .weight .bias .running_mean .running_var;
 *   linear .weight .bias.
 */
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/network_internal.h"

static int add_param(gn_net *net, int layer, const char *module, const char *p, int ndim, const int64_t *shape,
                     bool trainable, bool no_decay)
{
    if (net->n_params == net->cap_params) {
        net->cap_params = net->cap_params ? 2 * net->cap_params : 64;
        net->params = realloc(net->params, net->cap_params * sizeof *net->params);
    }
    gn_param *q = &net->params[net->n_params];
    memset(q, 0, sizeof *q);
    char prefix[48]; /* "network.stage: 1000 fused_irb1000" at most */
    if (net->layer_prefix)
        snprintf(prefix, sizeof prefix, "%s", net->layer_prefix[layer]);
    else if (gn_arch_module_name(net->arch, layer, prefix, sizeof prefix))
        snprintf(prefix, sizeof prefix, "layers.%d", layer); /* not reached: every body layer has a name */
    snprintf(q->name, sizeof q->name, "%s.%.24s.%.16s", prefix, module, p);
    q->layer = layer;
    q->local = (int)strlen(prefix) + 1;
    q->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        q->shape[i] = shape[i];
    q->trainable = trainable;
    q->no_decay = no_decay;
    return net->n_params++;
}

static int add_value(gn_net *net, int c, int h, int w)
{
    if (net->n_vals == net->cap_vals) {
        net->cap_vals = net->cap_vals ? 2 * net->cap_vals : 64;
        net->vals = realloc(net->vals, net->cap_vals * sizeof *net->vals);
    }
    net->vals[net->n_vals] = (gn_value_shape){c, h, w};
    return net->n_vals++;
}

static gn_node *add_node(gn_net *net, nd_kind k, int layer, int in)
{
    if (net->n_nodes == net->cap_nodes) {
        net->cap_nodes = net->cap_nodes ? 2 * net->cap_nodes : 64;
        net->nodes = realloc(net->nodes, net->cap_nodes * sizeof *net->nodes);
    }
    gn_node *n = &net->nodes[net->n_nodes++];
    memset(n, 0, sizeof *n);
    n->k = k;
    n->layer = layer;
    n->in = in;
    n->in2 = n->out = n->w = n->b = n->gamma = n->beta = n->rmean = n->rvar = -1;
    return n;
}

/* conv [+bias] on value x; returns the output value */
static int conv(gn_net *net, int layer, const char *module, int x, int cout, int k, int s, int pad, int groups,
                bool bias)
{
    gn_value_shape in = net->vals[x];
    int oh = gn_conv2d_out_size(in.h, k, s, pad), ow = gn_conv2d_out_size(in.w, k, s, pad);
    int64_t ws[4] = {cout, in.c / groups, k, k}, bs[1] = {cout};
    int w = add_param(net, layer, module, "weight", 4, ws, true, false);
    net->params[w].groups = groups;
    int b = bias ? add_param(net, layer, module, "bias", 1, bs, true, true) : -1;
    int out = add_value(net, cout, oh, ow);
    gn_node *n = add_node(net, ND_CONV, layer, x);
    n->cp = (gn_conv2d_params){.stride = s, .pad = pad, .groups = groups};
    n->w = w;
    n->b = b;
    n->out = out;
    return out;
}

static int bn(gn_net *net, int layer, const char *module, int x, float eps)
{
    int64_t cs[1] = {net->vals[x].c};
    int g = add_param(net, layer, module, "weight", 1, cs, true, true);
    int b = add_param(net, layer, module, "bias", 1, cs, true, true);
    int rm = add_param(net, layer, module, "running_mean", 1, cs, false, true);
    int rv = add_param(net, layer, module, "running_var", 1, cs, false, true);
    gn_value_shape s = net->vals[x];
    int out = add_value(net, s.c, s.h, s.w);
    gn_node *n = add_node(net, ND_BN, layer, x);
    n->gamma = g;
    n->beta = b;
    n->rmean = rm;
    n->rvar = rv;
    n->eps = eps;
    n->out = out;
    return out;
}

static int act(gn_net *net, int layer, int x, gn_eltwise a)
{
    gn_value_shape s = net->vals[x];
    int out = add_value(net, s.c, s.h, s.w);
    gn_node *n = add_node(net, ND_ACT, layer, x);
    n->act = a;
    n->out = out;
    return out;
}

static int simple(gn_net *net, nd_kind k, int layer, int x, int x2, int c, int h, int w, float rate)
{
    int out = add_value(net, c, h, w);
    gn_node *n = add_node(net, k, layer, x);
    n->in2 = x2;
    n->rate = rate;
    n->out = out;
    return out;
}

static gn_eltwise elt(gn_act a) { return a == GN_ACT_SWISH ? GN_ELT_SILU : GN_ELT_RELU; }

static int se_block(gn_net *net, int layer, int x, int rd, gn_act a)
{
    gn_value_shape s = net->vals[x];
    int g = simple(net, ND_GAP, layer, x, -1, s.c, 1, 1, 0);
    int r = conv(net, layer, "se.conv_reduce", g, rd, 1, 1, 0, 1, true);
    r = act(net, layer, r, elt(a));
    int e = conv(net, layer, "se.conv_expand", r, s.c, 1, 1, 0, 1, true);
    e = act(net, layer, e, GN_ELT_SIGMOID);
    return simple(net, ND_CHSCALE, layer, x, e, s.c, s.h, s.w, 0);
}

static int residual(gn_net *net, int layer, const gn_layer *L, int skip, int y)
{
    if (!L->residual)
        return y;
    gn_value_shape s = net->vals[y];
    if (L->drop_path > 0)
        y = simple(net, ND_DROPPATH, layer, y, -1, s.c, s.h, s.w, (float)L->drop_path);
    return simple(net, ND_ADD, layer, y, skip, s.c, s.h, s.w, 0);
}

static int lower_layer(gn_net *net, int i, int x)
{
    const gn_layer *L = &net->arch->layers[i];
    bool d = net->arch->distill;
    float eps = L->bn_eps;
    gn_eltwise a = elt(L->act);
    int k = L->kernel, s = L->stride, skip = x;
    switch (L->type) {
    case GN_LAYER_DATA:
        return x;
    case GN_LAYER_HEAD:
    case GN_LAYER_HEAD_LARGE:
        x = act(net, i, bn(net, i, "net.1", conv(net, i, "net.0", x, L->out_ch, 3, 2, 1, 1, false), eps), a);
        if (L->type == GN_LAYER_HEAD_LARGE) {
            x = act(net, i, bn(net, i, "net.4", conv(net, i, "net.3", x, L->out_ch, 3, 1, 1, 1, false), eps), a);
            x = act(net, i, bn(net, i, "net.7", conv(net, i, "net.6", x, L->out_ch, 3, 1, 1, 1, false), eps), a);
        }
        return x;
    case GN_LAYER_CONV:
        return act(net, i, bn(net, i, "bn1", conv(net, i, "conv", x, L->out_ch, k, s, L->pad, 1, false), eps), a);
    case GN_LAYER_IRB:
        if (d) {
            x = act(net, i, bn(net, i, "body.1", conv(net, i, "body.0", x, L->mid_ch, 1, 1, 0, L->groups, false), eps),
                    a);
            x = act(net, i,
                    bn(net, i, "body.4", conv(net, i, "body.3", x, L->mid_ch, k, s, L->pad, L->mid_ch, false), eps), a);
            x = bn(net, i, "body.7", conv(net, i, "body.6", x, L->out_ch, 1, 1, 0, L->groups, false), eps);
        } else {
            x = act(net, i, bn(net, i, "bn1", conv(net, i, "conv_pw", x, L->mid_ch, 1, 1, 0, 1, false), eps), a);
            x = act(net, i, bn(net, i, "bn2", conv(net, i, "conv_dw", x, L->mid_ch, k, s, L->pad, L->mid_ch, false), eps),
                    a);
            if (L->use_se)
                x = se_block(net, i, x, L->se_ch, L->act);
            x = bn(net, i, "bn3", conv(net, i, "conv_pwl", x, L->out_ch, 1, 1, 0, 1, false), eps);
        }
        return residual(net, i, L, skip, x);
    case GN_LAYER_FUSED_IRB:
        if (d) {
            x = act(net, i, bn(net, i, "body.1", conv(net, i, "body.0", x, L->mid_ch, k, s, L->pad, 1, false), eps), a);
            x = bn(net, i, "body.4", conv(net, i, "body.3", x, L->out_ch, 1, 1, 0, 1, false), eps);
        } else {
            x = act(net, i, bn(net, i, "bn1", conv(net, i, "conv_exp", x, L->mid_ch, k, s, L->pad, 1, false), eps), a);
            if (L->use_se)
                x = se_block(net, i, x, L->se_ch, L->act);
            x = bn(net, i, "bn2", conv(net, i, "conv_pwl", x, L->out_ch, 1, 1, 0, 1, false), eps);
        }
        return residual(net, i, L, skip, x);
    case GN_LAYER_TAIL: {
        int mid = d ? L->tail_mid : L->out_ch;
        x = act(net, i, bn(net, i, "net.1", conv(net, i, "net.0", x, mid, 1, 1, 0, 1, false), eps), GN_ELT_RELU);
        x = simple(net, ND_GAP, i, x, -1, mid, 1, 1, 0);
        if (d)
            x = act(net, i, conv(net, i, "net.4", x, L->out_ch, 1, 1, 0, 1, false), GN_ELT_RELU);
        x = simple(net, ND_DROPOUT, i, x, -1, L->out_ch, 1, 1, 0.2f);
        int64_t ws[2] = {L->num_classes, L->out_ch}, bs[1] = {L->num_classes};
        const char *fc = d ? "net.8" : "net.6"; /* the released Sequential index of the Linear */
        int w = add_param(net, i, fc, "weight", 2, ws, true, false);
        int b = add_param(net, i, fc, "bias", 1, bs, true, true);
        int out = add_value(net, L->num_classes, 1, 1);
        gn_node *n = add_node(net, ND_LINEAR, i, x);
        n->w = w;
        n->b = b;
        n->out = out;
        return out;
    }
    }
    return x;
}

static gn_arch *copy_arch(const gn_arch *a)
{
    gn_arch *c = malloc(sizeof *c);
    *c = *a;
    c->source = strdup(a->source);
    c->layers = malloc(a->n_layers * sizeof *a->layers);
    memcpy(c->layers, a->layers, a->n_layers * sizeof *a->layers);
    return c;
}

static void param_view(gn_net *net, gn_param *q, float *base, size_t off, bool grad)
{
    int64_t n = q->shape[0], c = q->ndim > 1 ? q->shape[1] : 1, h = q->ndim > 2 ? q->shape[2] : 1,
            w = q->ndim > 3 ? q->shape[3] : 1;
    gn_tensor_wrap(grad ? &q->grad : &q->value, net->be, base + off, (int)n, (int)c, (int)h, (int)w);
}

gn_net *gn__net_new(gn_arch *arch, gn_backend *be)
{
    gn_net *net = calloc(1, sizeof *net);
    net->arch = arch;
    net->be = be;
    net->opts = (gn_train_opts){.dropout = true, .drop_path = true, .bn_momentum = 0.1f, .seed = 1};
    gn_rng_seed(&net->rng, 1);
    add_value(net, arch->layers[1].in_ch, arch->resolution, arch->resolution); /* value 0: the input */
    return net;
}

int gn__net_add_value(gn_net *net, int c, int h, int w) { return add_value(net, c, h, w); }
int gn__net_lower_layer(gn_net *net, int layer, int x) { return lower_layer(net, layer, x); }

int gn__net_add_mix(gn_net *net, int layer, const int *in, int k, int *node)
{
    gn_value_shape s = net->vals[in[0]];
    int out = add_value(net, s.c, s.h, s.w);
    gn_node *n = add_node(net, ND_MIX, layer, in[0]);
    n->mix_in = malloc((size_t)k * sizeof *n->mix_in);
    memcpy(n->mix_in, in, (size_t)k * sizeof *in);
    n->mix_k = k;
    n->out = out;
    *node = net->n_nodes - 1;
    return out;
}

int gn__net_finish(gn_net *net, gn_error *err)
{
    gn_backend *be = net->be;
    /* arena layout: trainable params first (insertion order), then buffers */
    size_t off = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < net->n_params; i++) {
            gn_param *q = &net->params[i];
            if (q->trainable != (pass == 0))
                continue;
            size_t numel = 1;
            for (int d = 0; d < q->ndim; d++)
                numel *= (size_t)q->shape[d];
            q->value.data = (float *)(uintptr_t)off; /* offset for now */
            off += numel;
            if (pass == 0)
                net->n_train = off;
        }
    net->n_total = off;
    net->arena = be->ops->alloc(be, net->n_total * sizeof(float));
    net->garena = be->ops->alloc(be, (net->n_train ? net->n_train : 1) * sizeof(float));
    if (!net->arena || !net->garena)
        return gn_error_set(err, "%s: out of memory for %zu parameters", net->arch->source, net->n_total);
    be->ops->fill(be, net->arena, net->n_total, 0.0f);
    be->ops->fill(be, net->garena, net->n_train ? net->n_train : 1, 0.0f);
    for (int i = 0; i < net->n_params; i++) {
        gn_param *q = &net->params[i];
        size_t o = (size_t)(uintptr_t)q->value.data;
#ifndef NDEBUG
        size_t numel = 1;
        for (int d = 0; d < q->ndim; d++)
            numel *= (size_t)q->shape[d];
        assert(o + numel <= net->n_total);                   /* the view lies inside the arena */
        assert(!q->trainable || o + numel <= net->n_train); /* trainable values first */
#endif
        param_view(net, q, net->arena, o, false);
        if (q->trainable)
            param_view(net, q, net->garena, o, true);
    }
    gn__net_plan_bn_relu(net);
    return 0;
}

int gn_net_create(const gn_arch *a, gn_backend *be, gn_net **out, gn_error *err)
{
    *out = NULL;
    gn_net *net = gn__net_new(copy_arch(a), be);
    int x = 0;
    for (int i = 0; i < a->n_layers; i++)
        x = lower_layer(net, i, x);
    if (gn__net_finish(net, err)) {
        gn_net_free(net);
        return -1;
    }
    if ((int64_t)net->n_train != a->params) {
        int64_t got = (int64_t)net->n_train;
        gn_net_free(net);
        return gn_error_set(err, "%s: internal error: network has %lld parameters, the spec says %lld", a->source,
                            (long long)got, (long long)a->params);
    }
    *out = net;
    return 0;
}

void gn_net_free(gn_net *net)
{
    if (!net)
        return;
    gn__infer_plan_free(&net->ip);
    for (int i = 0; i < net->n_vals && net->v; i++) {
        gn_tensor_free(&net->v[i]);
        gn_tensor_free(&net->dv[i]);
    }
    for (int i = 0; i < net->n_nodes; i++) {
        gn_tensor_free(&net->nodes[i].bmean);
        gn_tensor_free(&net->nodes[i].bvar);
        gn_tensor_free(&net->nodes[i].ws);
        gn_tensor_free(&net->nodes[i].mask);
        free(net->nodes[i].mix_in);
        free(net->nodes[i].mixw);
        free(net->nodes[i].mixg);
        free(net->nodes[i].mix_live);
    }
    free(net->layer_prefix);
    free(net->live);
    free(net->need);
    gn_tensor_free(&net->scratch[0]);
    gn_tensor_free(&net->scratch[1]);
    gn_tensor_free(&net->dlogits);
    if (net->arena)
        net->be->ops->free(net->be, net->arena);
    if (net->garena)
        net->be->ops->free(net->be, net->garena);
    free(net->v);
    free(net->dv);
    free(net->written);
    free(net->nodes);
    free(net->vals);
    free(net->params);
    gn_arch_free(net->arch);
    free(net);
}

const gn_arch *gn_net_arch(const gn_net *net) { return net->arch; }
gn_backend *gn_net_backend(const gn_net *net) { return net->be; }
int gn_net_num_params(const gn_net *net) { return net->n_params; }
gn_param *gn_net_param(gn_net *net, int i) { return i >= 0 && i < net->n_params ? &net->params[i] : NULL; }
int64_t gn_net_trainable_count(const gn_net *net) { return (int64_t)net->n_train; }
float *gn_net_values(gn_net *net) { return net->arena; }
float *gn_net_grads(gn_net *net) { return net->garena; }

gn_param *gn_net_find_param(gn_net *net, const char *name)
{
    for (int i = 0; i < net->n_params; i++)
        if (strcmp(net->params[i].name, name) == 0)
            return &net->params[i];
    return NULL;
}

void gn_net_set_train_opts(gn_net *net, const gn_train_opts *o)
{
    net->opts = *o;
    gn_rng_seed(&net->rng, o->seed);
}

int gn_net_init(gn_net *net, uint64_t seed, gn_error *err)
{
    gn_rng rng;
    gn_rng_seed(&rng, seed);
    float *host = malloc((net->n_total ? net->n_total : 1) * sizeof(float));
    for (int i = 0; i < net->n_params; i++) {
        gn_param *q = &net->params[i];
        size_t numel = gn_tensor_numel(&q->value);
        float *p = host + (q->value.data - net->arena);
        const char *leaf = strrchr(q->name, '.') + 1;
        if (strcmp(leaf, "weight") == 0 && q->ndim == 4) { /* conv: kaiming normal, fan_out */
            double fan_out = (double)q->shape[0] * q->shape[2] * q->shape[3] / q->groups;
            double sd = sqrt(2.0 / fan_out);
            for (size_t j = 0; j < numel; j++)
                p[j] = (float)(gn_rng_normal(&rng) * sd);
        } else if (q->ndim == 2) { /* classifier */
            double r = 1.0 / sqrt((double)q->shape[0]);
            for (size_t j = 0; j < numel; j++)
                p[j] = (float)((2.0 * gn_rng_uniform(&rng) - 1.0) * r);
        } else if (strcmp(leaf, "running_var") == 0 || (strcmp(leaf, "weight") == 0 && q->ndim == 1)) {
            for (size_t j = 0; j < numel; j++)
                p[j] = 1.0f;
        } else {
            for (size_t j = 0; j < numel; j++)
                p[j] = 0.0f;
        }
    }
    int rc = net->be->ops->copy_in(net->be, net->arena, host, net->n_total * sizeof(float));
    free(host);
    if (rc)
        return gn_error_set(err, "%s: cannot copy initial weights to the %s backend", net->arch->source, net->be->name);
    net->ip.ready = false;
    return 0;
}
