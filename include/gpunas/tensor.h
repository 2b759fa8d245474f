/*
 * gpunas/tensor.h — fp32 NCHW tensors owned by a compute backend.
 *
 * Design
 *   A gn_tensor is a plain struct: a 4-D shape (n, c, h, w), dense NCHW row-major
 *   (w fastest), fp32, and a data pointer to memory that the tensor's backend
 *   allocated with be->alloc.  For the "ref" and "dnnl" backends that memory is
 *   ordinary host memory, so code that knows it runs on a host backend may read
 *   t->data directly; portable code moves data with gn_tensor_from_host() /
 *   gn_tensor_to_host(), which go through the backend's copy hooks (a future CUDA
 *   backend implements them with cudaMemcpy).  See gpunas/backend.h.
 *
 *   Shapes of the non-image operands follow one convention so that every operand is
 *   a gn_tensor:
 *     image / activation      [N, C, H, W]
 *     conv weight             [O, I/groups, KH, KW]   (PyTorch OIHW; n=O, c=I/g, h=KH, w=KW)
 *     linear weight           [OUT, IN, 1, 1]        (PyTorch [out, in])
 *     per-channel vector      any shape with numel == C (e.g. [C,1,1,1] or [1,C,1,1]):
 *                             bias, BN gamma/beta/mean/var
 *     SE channel scale s      [N, C, 1, 1]
 *     logits                  [N, K, 1, 1]
 *   Only numel is checked for vectors.
 *
 *   Ownership: gn_tensor_alloc() allocates (zero-filled) and gn_tensor_free() releases;
 *   gn_tensor_wrap() makes a non-owning view of existing backend memory (e.g. one
 *   parameter inside a flat parameter arena); gn_tensor_free() on a view only clears
 *   the struct.  A zero-initialised gn_tensor ({0}) is "empty" and safe to free.
 */
#ifndef GPUNAS_TENSOR_H
#define GPUNAS_TENSOR_H

#include <stdbool.h>
#include <stddef.h>

#include "gpunas/error.h"

typedef struct gn_backend gn_backend;

/* Memory order of an activation tensor.  NCHW everywhere, except that a backend with
 * GN_CAP_NHWC (see backend.h) also runs its inference ops (conv forward, BN inference,
 * eltwise forward, GAP forward, channel scale forward, add) on channels-last
 * activations: the shape fields stay logical (n, c, h, w), element (n,c,h,w) lives at
 * ((n*h + y)*w + x)*c + c.  Every other op rejects NHWC tensors. */
typedef enum { GN_LAYOUT_NCHW = 0, GN_LAYOUT_NHWC = 1 } gn_layout;

typedef struct gn_tensor {
    int n, c, h, w;
    float *data;    /* backend memory; NULL when empty */
    gn_backend *be; /* backend the memory belongs to */
    bool owned;     /* true: gn_tensor_free releases data via be->free */
    gn_layout layout; /* GN_LAYOUT_NCHW unless set by the caller */
} gn_tensor;

/* n*c*h*w (0 for an empty tensor). */
size_t gn_tensor_numel(const gn_tensor *t);
/* Same n, c, h, w. */
bool gn_tensor_same_shape(const gn_tensor *a, const gn_tensor *b);

/* Allocate an (n,c,h,w) tensor on be, zero-filled.  All dims must be >= 1. */
int gn_tensor_alloc(gn_tensor *t, gn_backend *be, int n, int c, int h, int w, gn_error *err);
/* Non-owning view of backend memory `data` (count n*c*h*w floats). */
void gn_tensor_wrap(gn_tensor *t, gn_backend *be, float *data, int n, int c, int h, int w);
/* Release an owned tensor (no-op for views/empty) and reset the struct to {0}. */
void gn_tensor_free(gn_tensor *t);

/* Copy numel(t) floats host -> tensor / tensor -> host. */
int gn_tensor_from_host(gn_tensor *t, const float *src, gn_error *err);
int gn_tensor_to_host(const gn_tensor *t, float *dst, gn_error *err);
/* Set every element to v. */
int gn_tensor_fill(gn_tensor *t, float v, gn_error *err);
/* dst <- src (same numel, same backend). */
int gn_tensor_copy(gn_tensor *dst, const gn_tensor *src, gn_error *err);

#endif
