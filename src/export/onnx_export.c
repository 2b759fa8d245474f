/*
 * onnx_export.c — gn_onnx_export: gpunas's folded inference plan (net->ip, see
 * network_infer.c) as an ONNX graph, one plan node at a time; and gn_onnx_read_info.
 * The op mapping and naming are described in gpunas/onnx.h.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "export/onnx_internal.h"
#include "gpunas/onnx.h"
#include "nn/network_internal.h"

#define GN_ONNX_PRODUCER "gpunas"
#define GN_ONNX_PRODUCER_VERSION GPUNAS_VERSION /* CMake project version */
#define GN_ONNX_OPSET_MIN 13
#define GN_ONNX_OPSET_MAX 17 /* what the onnx 1.12 checker the tests use knows */

static int64_t ir_version_for(int opset) { return opset <= 14 ? 7 : 8; }

typedef struct {
    ox_graph g;
    gn_net *net;
    const char *path;
    gn_error *err;
    int logits_val; /* the plan's last value */
} exporter;

static const char *vname(exporter *x, int v)
{
    if (v == 0)
        return "input";
    return gn__ox_fmt(&x->g, "v%d", v);
}

/* "network.stage: 4 layer5.conv_pw" from the conv's weight "...conv_pw.weight" */
static char *module_name(exporter *x, int pid)
{
    const char *n = x->net->params[pid].name;
    size_t len = strlen(n);
    const char *suffix = ".weight";
    if (len > strlen(suffix) && strcmp(n + len - strlen(suffix), suffix) == 0)
        len -= strlen(suffix);
    return gn__ox_fmt(&x->g, "%.*s", (int)len, n);
}

/* Host copy of a tensor as an initializer named NAME with the given ONNX dims. */
static int tensor_init(exporter *x, const char *name, const gn_tensor *t, int ndim, const int64_t *dims)
{
    size_t n = gn_tensor_numel(t);
    float *h = malloc((n ? n : 1) * sizeof *h);
    if (!h) {
        x->g.oom = true;
        return -1;
    }
    if (gn_tensor_to_host(t, h, x->err)) {
        free(h);
        return gn_error_set(x->err, "%s: cannot read tensor '%s' from the %s backend", x->path, name,
                            gn_backend_name(gn_net_backend(x->net)));
    }
    int rc = gn__ox_initializer(&x->g, name, ndim, dims, h);
    free(h);
    return rc;
}

/* out = act(in) (identity: an Identity node); node names NAME, NAME.sigmoid/.mul for silu */
static void emit_act(exporter *x, gn_eltwise a, const char *in, const char *out, const char *name)
{
    const char *ins[2] = {in, NULL};
    switch (a) {
    case GN_ELT_RELU:
        gn__ox_node(&x->g, "Relu", name, 1, ins, out);
        break;
    case GN_ELT_SIGMOID:
        gn__ox_node(&x->g, "Sigmoid", name, 1, ins, out);
        break;
    case GN_ELT_SILU: { /* x * sigmoid(x): opset 13 has no SiLU/Swish */
        const char *s = gn__ox_fmt(&x->g, "%s_sig", out);
        gn__ox_node(&x->g, "Sigmoid", gn__ox_fmt(&x->g, "%s.sigmoid", name), 1, ins, s);
        ins[1] = s;
        gn__ox_node(&x->g, "Mul", gn__ox_fmt(&x->g, "%s.mul", name), 2, ins, out);
        break;
    }
    default:
        gn__ox_node(&x->g, "Identity", name, 1, ins, out);
    }
}

static const char *act_suffix(gn_eltwise a)
{
    return a == GN_ELT_RELU ? "relu" : a == GN_ELT_SILU ? "silu" : a == GN_ELT_SIGMOID ? "sigmoid" : "id";
}

static int emit_conv(exporter *x, const gn_inode *o, const char *in, const char *out)
{
    const gn_node *nd = &x->net->nodes[o->src];
    char *mod = module_name(x, nd->w);
    if (!mod)
        return -1;
    const char *wn = gn__ox_fmt(&x->g, "%s.weight", mod), *bn = gn__ox_fmt(&x->g, "%s.bias", mod);
    int64_t wd[4] = {o->w.n, o->w.c, o->w.h, o->w.w}, bd[1] = {o->w.n};
    if (!wn || !bn || tensor_init(x, wn, &o->w, 4, wd) || tensor_init(x, bn, &o->b, 1, bd))
        return -1;
    bool act = o->act != GN_ELT_IDENTITY, res = o->res >= 0;
    const char *y = act || res ? gn__ox_fmt(&x->g, "%s_conv", out) : out;
    const char *ins[3] = {in, wn, bn};
    Onnx__NodeProto *c = gn__ox_node(&x->g, "Conv", mod, 3, ins, y);
    int64_t k[2] = {o->w.h, o->w.w}, s[2] = {o->cp.stride, o->cp.stride},
            p[4] = {o->cp.pad, o->cp.pad, o->cp.pad, o->cp.pad}, d[2] = {1, 1};
    gn__ox_attr_ints(&x->g, c, "kernel_shape", 2, k);
    gn__ox_attr_ints(&x->g, c, "strides", 2, s);
    gn__ox_attr_ints(&x->g, c, "pads", 4, p);
    gn__ox_attr_ints(&x->g, c, "dilations", 2, d);
    gn__ox_attr_int(&x->g, c, "group", o->cp.groups);
    if (act) {
        const char *a = res ? gn__ox_fmt(&x->g, "%s_%s", out, act_suffix(o->act)) : out;
        emit_act(x, o->act, y, a, gn__ox_fmt(&x->g, "%s.%s", mod, act_suffix(o->act)));
        y = a;
    }
    if (res) {
        const char *ai[2] = {y, vname(x, o->res)};
        gn__ox_node(&x->g, "Add", gn__ox_fmt(&x->g, "%s.residual_add", mod), 2, ai, out);
    }
    return 0;
}

/* A BN the plan left unfolded (none in the GPUNet families): y = x*s + t per channel. */
static int emit_bn(exporter *x, const gn_inode *o, const char *in, const char *out, const char *name)
{
    const gn_node *nd = &x->net->nodes[o->src];
    gn_param *P = x->net->params;
    int C = (int)gn_tensor_numel(&P[nd->gamma].value);
    float *h = malloc(4 * (size_t)C * sizeof *h), *s = malloc(2 * (size_t)C * sizeof *s);
    if (!h || !s) {
        free(h), free(s);
        x->g.oom = true;
        return -1;
    }
    const int ids[4] = {nd->gamma, nd->beta, nd->rmean, nd->rvar};
    for (int i = 0; i < 4; i++)
        if (gn_tensor_to_host(&P[ids[i]].value, h + (size_t)i * C, x->err)) {
            free(h), free(s);
            return gn_error_set(x->err, "%s: cannot read '%s' from the %s backend", x->path, P[ids[i]].name,
                                gn_backend_name(gn_net_backend(x->net)));
        }
    for (int c = 0; c < C; c++) {
        double sc = h[c] / sqrt((double)h[3 * C + c] + nd->eps);
        s[c] = (float)sc;
        s[C + c] = (float)(h[C + c] - h[2 * C + c] * sc);
    }
    const char *sn = gn__ox_fmt(&x->g, "%s.scale", name), *tn = gn__ox_fmt(&x->g, "%s.shift", name),
               *m = gn__ox_fmt(&x->g, "%s_scaled", out);
    int64_t dims[4] = {1, C, 1, 1};
    int rc = gn__ox_initializer(&x->g, sn, 4, dims, s) || gn__ox_initializer(&x->g, tn, 4, dims, s + C) ? -1 : 0;
    free(h);
    free(s);
    const char *mi[2] = {in, sn}, *ai[2] = {m, tn};
    gn__ox_node(&x->g, "Mul", gn__ox_fmt(&x->g, "%s.mul", name), 2, mi, m);
    gn__ox_node(&x->g, "Add", gn__ox_fmt(&x->g, "%s.add", name), 2, ai, out);
    return rc;
}

static int emit_linear(exporter *x, const gn_inode *o, const char *in, const char *out)
{
    const gn_node *nd = &x->net->nodes[o->src];
    char *mod = module_name(x, nd->w);
    if (!mod)
        return -1;
    const char *wn = gn__ox_fmt(&x->g, "%s.weight", mod), *bn = gn__ox_fmt(&x->g, "%s.bias", mod),
               *flat = gn__ox_fmt(&x->g, "%s_flat", out);
    int64_t wd[2] = {o->w.n, (int64_t)o->w.c * o->w.h * o->w.w}, bd[1] = {o->w.n};
    if (!wn || !bn || !flat || tensor_init(x, wn, &o->w, 2, wd) || tensor_init(x, bn, &o->b, 1, bd))
        return -1;
    const char *fi[1] = {in}, *gi[3] = {flat, wn, bn};
    Onnx__NodeProto *f = gn__ox_node(&x->g, "Flatten", gn__ox_fmt(&x->g, "%s.flatten", mod), 1, fi, flat);
    gn__ox_attr_int(&x->g, f, "axis", 1);
    Onnx__NodeProto *gm = gn__ox_node(&x->g, "Gemm", mod, 3, gi, out);
    gn__ox_attr_int(&x->g, gm, "transB", 1);
    return 0;
}

static int emit_plan(exporter *x)
{
    const gn_infer_plan *p = &x->net->ip;
    x->logits_val = p->n_vals - 1;
    for (int i = 0; i < p->n_nodes && !x->g.oom; i++) {
        const gn_inode *o = &p->nodes[i];
        const gn_node *nd = &x->net->nodes[o->src];
        bool last = o->out == x->logits_val;
        const char *in = vname(x, o->in);
        /* the logits are "logits" when a Gemm makes them ([N,K]); otherwise a
         * Flatten after the last node makes them 2-D */
        const char *out = last && o->k == ND_LINEAR ? "logits" : vname(x, o->out);
        char mod[GN_NAME_MAX];
        if (gn_arch_module_name(x->net->arch, nd->layer, mod, sizeof mod))
            snprintf(mod, sizeof mod, "layer%d", nd->layer);
        const char *name = gn__ox_fmt(&x->g, "%s.%s%d", mod,
                                  o->k == ND_GAP       ? "gap"
                                  : o->k == ND_CHSCALE ? "se_scale"
                                  : o->k == ND_ADD     ? "add"
                                  : o->k == ND_ACT     ? act_suffix(o->act)
                                  : o->k == ND_BN      ? "bn"
                                                       : "node",
                                  i);
        int rc = 0;
        switch (o->k) {
        case ND_CONV:
            rc = emit_conv(x, o, in, out);
            break;
        case ND_ACT:
            emit_act(x, o->act, in, out, name);
            break;
        case ND_GAP: {
            const char *ins[1] = {in};
            gn__ox_node(&x->g, "GlobalAveragePool", name, 1, ins, out);
            break;
        }
        case ND_CHSCALE:
        case ND_ADD: {
            const char *ins[2] = {in, vname(x, o->in2)};
            gn__ox_node(&x->g, o->k == ND_ADD ? "Add" : "Mul", name, 2, ins, out);
            break;
        }
        case ND_LINEAR:
            rc = emit_linear(x, o, in, out);
            break;
        case ND_BN:
            rc = emit_bn(x, o, in, out, name);
            break;
        default:
            return gn_error_set(x->err, "%s: internal error: inference node %d of kind %d has no ONNX form", x->path,
                                i, (int)o->k);
        }
        if (rc)
            return -1;
        if (last && o->k != ND_LINEAR) {
            const char *ins[1] = {out};
            Onnx__NodeProto *f = gn__ox_node(&x->g, "Flatten", "logits.flatten", 1, ins, "logits");
            gn__ox_attr_int(&x->g, f, "axis", 1);
        }
    }
    return 0;
}

static const char *graph_name(exporter *x)
{
    const char *s = x->net->arch->source ? x->net->arch->source : "gpunas";
    const char *b = strrchr(s, '/');
    b = b ? b + 1 : s;
    size_t n = strlen(b);
    if (n > 5 && strcmp(b + n - 5, ".json") == 0)
        n -= 5;
    return n ? gn__ox_fmt(&x->g, "%.*s", (int)n, b) : "gpunas";
}

int gn_onnx_export(gn_net *net, const char *path, const gn_onnx_opts *o, gn_error *err)
{
    gn_onnx_opts def = {.batch = 1, .opset = 0, .doc = NULL};
    if (!o)
        o = &def;
    if (!net || !path || !*path)
        return gn_error_set(err, "onnx export: no network or empty path");
    int opset = o->opset ? o->opset : GN_ONNX_OPSET_MIN;
    if (opset < GN_ONNX_OPSET_MIN || opset > GN_ONNX_OPSET_MAX)
        return gn_error_set(err, "%s: opset %d not supported (%d to %d)", path, opset, GN_ONNX_OPSET_MIN,
                            GN_ONNX_OPSET_MAX);
    if (o->batch < 0)
        return gn_error_set(err, "%s: batch %d: must be > 0, or 0 for a dynamic batch", path, o->batch);
    /* fold from the current weights (they may have changed since the last plan) */
    if (gn_net_prepare_inference(net, err))
        return -1;

    exporter x = {.net = net, .path = path, .err = err};
    int rc = emit_plan(&x);
    const gn_infer_plan *p = &net->ip;
    gn_value_shape in = p->vshape[0], lg = p->vshape[p->n_vals - 1];
    int64_t b = o->batch > 0 ? o->batch : -1;
    int64_t idims[4] = {b, in.c, in.h, in.w}, odims[2] = {b, (int64_t)lg.c * lg.h * lg.w};

    Onnx__ValueInfoProto *vin = rc ? NULL : gn__ox_value_info(&x.g, "input", 4, idims, "N");
    Onnx__ValueInfoProto *vout = rc ? NULL : gn__ox_value_info(&x.g, "logits", 2, odims, "N");
    Onnx__ValueInfoProto **ins = gn__ox_alloc(&x.g, sizeof *ins), **outs = gn__ox_alloc(&x.g, sizeof *outs);
    Onnx__GraphProto *g = gn__ox_alloc(&x.g, sizeof *g);
    Onnx__OperatorSetIdProto *os = gn__ox_alloc(&x.g, sizeof *os);
    Onnx__OperatorSetIdProto **osv = gn__ox_alloc(&x.g, sizeof *osv);
    Onnx__StringStringEntryProto *meta = gn__ox_alloc(&x.g, sizeof *meta);
    Onnx__StringStringEntryProto **metav = gn__ox_alloc(&x.g, sizeof *metav);
    char *arch = rc ? NULL : gn_arch_to_json(net->arch, err);
    if (!rc && !arch)
        rc = -1;
    if (!rc && (x.g.oom || !vin || !vout || !ins || !outs || !g || !os || !osv || !meta || !metav))
        rc = gn_error_set(err, "%s: out of memory building the ONNX graph", path);
    if (!rc) {
        ins[0] = vin;
        outs[0] = vout;
        onnx__graph_proto__init(g);
        g->name = (char *)graph_name(&x);
        g->doc_string = gn__ox_fmt(&x.g, "gpunas inference graph of %s at %dx%d: BatchNormalization folded into the "
                                     "convolution weights",
                               g->name, in.h, in.w);
        g->n_node = x.g.n_nodes;
        g->node = x.g.nodes;
        g->n_initializer = x.g.n_inits;
        g->initializer = x.g.inits;
        g->n_input = 1;
        g->input = ins;
        g->n_output = 1;
        g->output = outs;

        onnx__operator_set_id_proto__init(os);
        os->domain = (char *)"";
        os->has_version = 1;
        os->version = opset;
        osv[0] = os;

        onnx__string_string_entry_proto__init(meta);
        meta->key = (char *)"gpunas.arch"; /* the canonical GPUNet JSON, as in gn_net_save's files */
        meta->value = arch;
        metav[0] = meta;

        Onnx__ModelProto m = ONNX__MODEL_PROTO__INIT;
        m.has_ir_version = 1;
        m.ir_version = ir_version_for(opset);
        m.n_opset_import = 1;
        m.opset_import = osv;
        m.producer_name = (char *)GN_ONNX_PRODUCER;
        m.producer_version = (char *)GN_ONNX_PRODUCER_VERSION;
        m.doc_string = o->doc ? (char *)o->doc : NULL;
        m.graph = g;
        m.n_metadata_props = 1;
        m.metadata_props = metav;
        if (x.g.oom)
            rc = gn_error_set(err, "%s: out of memory building the ONNX graph", path);
        else
            rc = gn__ox_write_model(&m, path, NULL, err);
    } else if (x.g.oom) {
        rc = gn_error_set(err, "%s: out of memory building the ONNX graph", path);
    }
    free(arch);
    gn__ox_free(&x.g);
    return rc;
}

/* ------------------------------------------------------------------ reading */

static bool is_initializer(const Onnx__GraphProto *g, const char *name)
{
    for (size_t i = 0; i < g->n_initializer; i++)
        if (g->initializer[i]->name && strcmp(g->initializer[i]->name, name) == 0)
            return true;
    return false;
}

static const Onnx__TensorShapeProto *shape_of(const Onnx__ValueInfoProto *v)
{
    if (!v || !v->type || v->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !v->type->tensor_type)
        return NULL;
    return v->type->tensor_type->shape;
}

static int64_t dim_value(const Onnx__TensorShapeProto *s, size_t i)
{
    if (!s || i >= s->n_dim || s->dim[i]->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE)
        return 0;
    return s->dim[i]->dim_value;
}

int gn_onnx_read_info(const char *path, gn_onnx_info *info, gn_error *err)
{
    memset(info, 0, sizeof *info);
    FILE *f = fopen(path, "rb");
    if (!f)
        return gn_error_set(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || st.st_size < 0 || (uint64_t)st.st_size > (uint64_t)INT32_MAX) {
        fclose(f);
        return gn_error_set(err, "%s: not a readable ONNX file (size)", path);
    }
    size_t n = (size_t)st.st_size;
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf) {
        fclose(f);
        return gn_error_set(err, "%s: out of memory reading %zu bytes", path, n);
    }
    size_t r = fread(buf, 1, n, f);
    fclose(f);
    if (r != n) {
        free(buf);
        return gn_error_set(err, "%s: short read (%zu of %zu bytes)", path, r, n);
    }
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, n, buf);
    free(buf);
    if (!m)
        return gn_error_set(err, "%s: not an ONNX model (protobuf ModelProto did not parse)", path);
    int rc = 0;
    info->bytes = (int64_t)n;
    info->ir_version = m->has_ir_version ? m->ir_version : 0;
    for (size_t i = 0; i < m->n_opset_import; i++)
        if (!m->opset_import[i]->domain || !*m->opset_import[i]->domain)
            info->opset = (int)m->opset_import[i]->version;
    snprintf(info->producer, sizeof info->producer, "%s %s", m->producer_name ? m->producer_name : "?",
             m->producer_version ? m->producer_version : "?");
    const Onnx__GraphProto *g = m->graph;
    if (!g) {
        rc = gn_error_set(err, "%s: the model has no graph", path);
        goto done;
    }
    info->n_nodes = (int)g->n_node;
    info->n_initializers = (int)g->n_initializer;
    for (size_t i = 0; i < g->n_initializer; i++) {
        const Onnx__TensorProto *t = g->initializer[i];
        if (t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
            continue;
        int64_t c = 1;
        for (size_t d = 0; d < t->n_dims; d++)
            c *= t->dims[d];
        info->n_weights += c;
    }
    const Onnx__ValueInfoProto *vin = NULL;
    for (size_t i = 0; i < g->n_input && !vin; i++)
        if (g->input[i]->name && !is_initializer(g, g->input[i]->name))
            vin = g->input[i];
    const Onnx__TensorShapeProto *si = shape_of(vin);
    if (si && si->n_dim >= 1) {
        if (si->dim[0]->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM && si->dim[0]->dim_param)
            snprintf(info->batch_param, sizeof info->batch_param, "%s", si->dim[0]->dim_param);
        info->batch = (int)dim_value(si, 0);
    }
    if (si && si->n_dim == 4) {
        info->in_c = (int)dim_value(si, 1);
        info->in_h = (int)dim_value(si, 2);
        info->in_w = (int)dim_value(si, 3);
    }
    const Onnx__TensorShapeProto *so = g->n_output ? shape_of(g->output[0]) : NULL;
    if (so && so->n_dim >= 1)
        info->classes = (int)dim_value(so, so->n_dim - 1);
done:
    onnx__model_proto__free_unpacked(m, NULL);
    return rc;
}
