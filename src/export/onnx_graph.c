/*
 * onnx_graph.c — the ONNX graph builder and the atomic model writer (see
 * onnx_internal.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "export/onnx_internal.h"
#include "util/fs_atomic.h"

void gn__ox_free(ox_graph *g)
{
    for (size_t i = 0; i < g->n_keep; i++)
        free(g->keep[i]);
    free(g->keep);
    free(g->nodes);
    free(g->inits);
    memset(g, 0, sizeof *g);
}

static bool grow(ox_graph *g, void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return true;
    size_t nc = *cap ? 2 * *cap : 64;
    void *p = realloc(*arr, nc * elem);
    if (!p) {
        g->oom = true;
        return false;
    }
    *arr = p;
    *cap = nc;
    return true;
}

void *gn__ox_alloc(ox_graph *g, size_t bytes)
{
    if (g->oom || !grow(g, (void **)&g->keep, &g->cap_keep, g->n_keep, sizeof *g->keep))
        return NULL;
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p) {
        g->oom = true;
        return NULL;
    }
    g->keep[g->n_keep++] = p;
    return p;
}

char *gn__ox_strdup(ox_graph *g, const char *s)
{
    if (!s) { /* a failed gn__ox_fmt upstream */
        g->oom = true;
        return NULL;
    }
    size_t n = strlen(s) + 1;
    char *p = gn__ox_alloc(g, n);
    if (p)
        memcpy(p, s, n);
    return p;
}

char *gn__ox_fmt(ox_graph *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = n >= 0 ? gn__ox_alloc(g, (size_t)n + 1) : NULL;
    if (p) {
        va_start(ap, fmt);
        vsnprintf(p, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    return p;
}

Onnx__NodeProto *gn__ox_node(ox_graph *g, const char *op, const char *name, int n_in, const char *const *in,
                         const char *out)
{
    Onnx__NodeProto *n = gn__ox_alloc(g, sizeof *n);
    char **ins = gn__ox_alloc(g, (size_t)n_in * sizeof *ins), **outs = gn__ox_alloc(g, sizeof *outs);
    if (!n || !ins || !outs || !grow(g, (void **)&g->nodes, &g->cap_nodes, g->n_nodes, sizeof *g->nodes))
        return NULL;
    onnx__node_proto__init(n);
    for (int i = 0; i < n_in; i++)
        ins[i] = gn__ox_strdup(g, in[i]);
    outs[0] = gn__ox_strdup(g, out);
    n->n_input = (size_t)n_in;
    n->input = ins;
    n->n_output = 1;
    n->output = outs;
    n->op_type = gn__ox_strdup(g, op);
    n->name = gn__ox_strdup(g, name);
    if (g->oom)
        return NULL;
    g->nodes[g->n_nodes++] = n;
    return n;
}

static Onnx__AttributeProto *add_attr(ox_graph *g, Onnx__NodeProto *n, const char *name)
{
    if (!n)
        return NULL;
    Onnx__AttributeProto *a = gn__ox_alloc(g, sizeof *a);
    Onnx__AttributeProto **arr = gn__ox_alloc(g, (n->n_attribute + 1) * sizeof *arr);
    if (!a || !arr)
        return NULL;
    onnx__attribute_proto__init(a);
    a->name = gn__ox_strdup(g, name);
    if (n->n_attribute) /* the old array stays owned by g; only n stops using it */
        memcpy(arr, n->attribute, n->n_attribute * sizeof *arr);
    arr[n->n_attribute++] = a;
    n->attribute = arr;
    return g->oom ? NULL : a;
}

void gn__ox_attr_int(ox_graph *g, Onnx__NodeProto *n, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = add_attr(g, n, name);
    if (!a)
        return;
    a->has_type = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    a->has_i = 1;
    a->i = v;
}

void gn__ox_attr_ints(ox_graph *g, Onnx__NodeProto *n, const char *name, int count, const int64_t *v)
{
    Onnx__AttributeProto *a = add_attr(g, n, name);
    int64_t *vals = gn__ox_alloc(g, (size_t)count * sizeof *vals);
    if (!a || !vals)
        return;
    memcpy(vals, v, (size_t)count * sizeof *vals);
    a->has_type = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    a->n_ints = (size_t)count;
    a->ints = vals;
}

static bool host_is_big_endian(void)
{
    const uint16_t one = 1;
    return *(const unsigned char *)&one == 0;
}

int gn__ox_initializer(ox_graph *g, const char *name, int ndim, const int64_t *dims, const float *data)
{
    size_t count = 1;
    for (int i = 0; i < ndim; i++)
        count *= (size_t)dims[i];
    Onnx__TensorProto *t = gn__ox_alloc(g, sizeof *t);
    int64_t *d = gn__ox_alloc(g, (size_t)ndim * sizeof *d);
    unsigned char *raw = gn__ox_alloc(g, count * sizeof(float));
    if (!t || !d || !raw || !grow(g, (void **)&g->inits, &g->cap_inits, g->n_inits, sizeof *g->inits))
        return -1;
    onnx__tensor_proto__init(t);
    memcpy(d, dims, (size_t)ndim * sizeof *d);
    memcpy(raw, data, count * sizeof(float));
    if (host_is_big_endian()) /* raw_data is little-endian by definition */
        for (size_t i = 0; i < count; i++) {
            unsigned char *b = raw + 4 * i, t0 = b[0], t1 = b[1];
            b[0] = b[3], b[1] = b[2], b[2] = t1, b[3] = t0;
        }
    t->n_dims = (size_t)ndim;
    t->dims = d;
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    t->name = gn__ox_strdup(g, name);
    t->has_raw_data = 1;
    t->raw_data.len = count * sizeof(float);
    t->raw_data.data = raw;
    if (g->oom)
        return -1;
    g->inits[g->n_inits++] = t;
    g->n_weights += (int64_t)count;
    return 0;
}

Onnx__ValueInfoProto *gn__ox_value_info(ox_graph *g, const char *name, int ndim, const int64_t *dims,
                                    const char *dim_param)
{
    Onnx__ValueInfoProto *v = gn__ox_alloc(g, sizeof *v);
    Onnx__TypeProto *tp = gn__ox_alloc(g, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = gn__ox_alloc(g, sizeof *tt);
    Onnx__TensorShapeProto *sh = gn__ox_alloc(g, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dv = gn__ox_alloc(g, (size_t)ndim * sizeof *dv);
    if (!v || !tp || !tt || !sh || !dv)
        return NULL;
    onnx__value_info_proto__init(v);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    for (int i = 0; i < ndim; i++) {
        Onnx__TensorShapeProto__Dimension *d = gn__ox_alloc(g, sizeof *d);
        if (!d)
            return NULL;
        onnx__tensor_shape_proto__dimension__init(d);
        if (dims[i] < 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = gn__ox_strdup(g, dim_param);
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = dims[i];
        }
        dv[i] = d;
    }
    sh->n_dim = (size_t)ndim;
    sh->dim = dv;
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sh;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    v->name = gn__ox_strdup(g, name);
    v->type = tp;
    return g->oom ? NULL : v;
}

/* ------------------------------------------------------------------ writer */

int gn__ox_write_model(const Onnx__ModelProto *m, const char *path, int64_t *bytes, gn_error *err)
{
    size_t size = onnx__model_proto__get_packed_size(m);
    if (size > (size_t)INT32_MAX)
        return gn_error_set(err, "%s: the model is %zu bytes, over protobuf's 2 GiB message limit", path, size);
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf)
        return gn_error_set(err, "%s: out of memory packing %zu bytes", path, size);
    size_t packed = onnx__model_proto__pack(m, buf);
    if (packed != size) {
        free(buf);
        return gn_error_set(err, "%s: internal error: packed %zu bytes, expected %zu", path, packed, size);
    }
    /* PATH.tmp, fsync, rename, fsync of the folder (util/fs_atomic.h) */
    int rc = gn__fs_write_atomic(path, buf, size, err);
    if (rc == 0 && bytes)
        *bytes = (int64_t)size;
    free(buf);
    return rc;
}
