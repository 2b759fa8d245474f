/* tensor.c — gn_tensor allocation and host transfers (see gpunas/tensor.h). */
#include "gpunas/tensor.h"

#include <string.h>

#include "gpunas/backend.h"
#include "nn/backend_impl.h"

size_t gn_tensor_numel(const gn_tensor *t)
{
    if (!t || t->n <= 0 || t->c <= 0 || t->h <= 0 || t->w <= 0)
        return 0;
    return (size_t)t->n * (size_t)t->c * (size_t)t->h * (size_t)t->w;
}

bool gn_tensor_same_shape(const gn_tensor *a, const gn_tensor *b)
{
    return a && b && a->n == b->n && a->c == b->c && a->h == b->h && a->w == b->w;
}

int gn_tensor_alloc(gn_tensor *t, gn_backend *be, int n, int c, int h, int w, gn_error *err)
{
    if (!t || !be)
        return gn_error_set(err, "tensor alloc: NULL tensor or backend");
    memset(t, 0, sizeof *t);
    if (n < 1 || c < 1 || h < 1 || w < 1)
        return gn_error_set(err, "tensor alloc: invalid shape [%d,%d,%d,%d]", n, c, h, w);
    size_t count = (size_t)n * (size_t)c * (size_t)h * (size_t)w;
    if (count > ((size_t)1 << 40) / sizeof(float))
        return gn_error_set(err, "tensor alloc: shape [%d,%d,%d,%d] too large", n, c, h, w);
    float *p = be->ops->alloc(be, count * sizeof(float));
    if (!p)
        return gn_error_set(err, "tensor alloc: out of memory for [%d,%d,%d,%d] on %s", n, c, h,
                            w, be->name);
    if (be->ops->fill(be, p, count, 0.0f) != 0) {
        be->ops->free(be, p);
        return gn_error_set(err, "tensor alloc: zero-fill failed on %s", be->name);
    }
    t->n = n, t->c = c, t->h = h, t->w = w;
    t->data = p;
    t->be = be;
    t->owned = true;
    return 0;
}

void gn_tensor_wrap(gn_tensor *t, gn_backend *be, float *data, int n, int c, int h, int w)
{
    t->n = n, t->c = c, t->h = h, t->w = w;
    t->data = data;
    t->be = be;
    t->owned = false;
    t->layout = GN_LAYOUT_NCHW;
}

void gn_tensor_free(gn_tensor *t)
{
    if (!t)
        return;
    if (t->owned && t->data && t->be)
        t->be->ops->free(t->be, t->data);
    memset(t, 0, sizeof *t);
}

int gn_tensor_from_host(gn_tensor *t, const float *src, gn_error *err)
{
    if (!t || !t->data || !t->be || !src)
        return gn_error_set(err, "tensor from_host: empty tensor or NULL source");
    if (t->be->ops->copy_in(t->be, t->data, src, gn_tensor_numel(t) * sizeof(float)) != 0)
        return gn_error_set(err, "tensor from_host: copy failed on %s", t->be->name);
    return 0;
}

int gn_tensor_to_host(const gn_tensor *t, float *dst, gn_error *err)
{
    if (!t || !t->data || !t->be || !dst)
        return gn_error_set(err, "tensor to_host: empty tensor or NULL destination");
    if (t->be->ops->copy_out(t->be, dst, t->data, gn_tensor_numel(t) * sizeof(float)) != 0)
        return gn_error_set(err, "tensor to_host: copy failed on %s", t->be->name);
    return 0;
}

int gn_tensor_fill(gn_tensor *t, float v, gn_error *err)
{
    if (!t || !t->data || !t->be)
        return gn_error_set(err, "tensor fill: empty tensor");
    if (t->be->ops->fill(t->be, t->data, gn_tensor_numel(t), v) != 0)
        return gn_error_set(err, "tensor fill: failed on %s", t->be->name);
    return 0;
}

int gn_tensor_copy(gn_tensor *dst, const gn_tensor *src, gn_error *err)
{
    if (!dst || !src || !dst->data || !src->data || !dst->be)
        return gn_error_set(err, "tensor copy: empty tensor");
    if (dst->be != src->be)
        return gn_error_set(err, "tensor copy: tensors on different backends");
    if (gn_tensor_numel(dst) != gn_tensor_numel(src))
        return gn_error_set(err, "tensor copy: size mismatch [%d,%d,%d,%d] vs [%d,%d,%d,%d]",
                            dst->n, dst->c, dst->h, dst->w, src->n, src->c, src->h, src->w);
    if (dst->data == src->data)
        return 0;
    if (dst->be->ops->copy(dst->be, dst->data, src->data, gn_tensor_numel(src) * sizeof(float)))
        return gn_error_set(err, "tensor copy: failed on %s", dst->be->name);
    return 0;
}
