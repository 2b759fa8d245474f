/*
 * onnx_internal.h — a small builder over protoc-c's ONNX message types, shared by
 * onnx_graph.c (the builder and the packer/writer) and onnx_export.c (inference plan
 * -> graph, gn_onnx_read_info).
 *
 * Every object the builder makes (messages, strings, arrays, weight copies) is
 * recorded in the builder and freed by gn__ox_free, so the generated messages never own
 * memory themselves.  An allocation failure sets g->oom; every builder call is then
 * a no-op returning NULL/-1, and the caller reports "out of memory" once at the end.
 */
#ifndef GPUNAS_ONNX_INTERNAL_H
#define GPUNAS_ONNX_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gpunas/error.h"
#include "onnx/onnx.pb-c.h"

typedef struct {
    void **keep;
    size_t n_keep, cap_keep;
    Onnx__NodeProto **nodes;
    size_t n_nodes, cap_nodes;
    Onnx__TensorProto **inits;
    size_t n_inits, cap_inits;
    int64_t n_weights; /* scalars in the initializers */
    bool oom;
} ox_graph;

void gn__ox_free(ox_graph *g);
void *gn__ox_alloc(ox_graph *g, size_t bytes); /* zero-filled, owned by g */
char *gn__ox_strdup(ox_graph *g, const char *s);
char *gn__ox_fmt(ox_graph *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A node op_type(inputs...) -> out, appended in order (the graph must be topological). */
Onnx__NodeProto *gn__ox_node(ox_graph *g, const char *op, const char *name, int n_in, const char *const *in,
                         const char *out);
void gn__ox_attr_int(ox_graph *g, Onnx__NodeProto *n, const char *name, int64_t v);
void gn__ox_attr_ints(ox_graph *g, Onnx__NodeProto *n, const char *name, int count, const int64_t *v);
/* A FLOAT initializer with raw_data: count = prod(dims) floats copied from host data
 * and stored little-endian. */
int gn__ox_initializer(ox_graph *g, const char *name, int ndim, const int64_t *dims, const float *data);
/* A float32 tensor value_info; dims[i] < 0 means the symbolic dimension dim_param. */
Onnx__ValueInfoProto *gn__ox_value_info(ox_graph *g, const char *name, int ndim, const int64_t *dims,
                                    const char *dim_param);

/* Pack the model (onnx__model_proto__get_packed_size / pack) and write it atomically:
 * PATH.tmp, fsync, rename, fsync of the folder.  *bytes (may be NULL): file size. */
int gn__ox_write_model(const Onnx__ModelProto *m, const char *path, int64_t *bytes, gn_error *err);

#endif
