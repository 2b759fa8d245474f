/* backend_impl.h — private glue between the backends (src/nn only). */
#ifndef GPUNAS_NN_BACKEND_IMPL_H
#define GPUNAS_NN_BACKEND_IMPL_H

#include "gpunas/backend.h"

/* constructors used by gn_backend_create */
int gn_backend_ref_new(gn_backend **out, gn_error *err);
int gn_backend_dnnl_new(gn_backend **out, gn_error *err);

/* host-memory helpers and small ops of the ref backend, reused by dnnl */
void *gn_ref_alloc(gn_backend *be, size_t bytes);
void gn_ref_free(gn_backend *be, void *p);
int gn_ref_copy(gn_backend *be, void *dst, const void *src, size_t bytes);
int gn_ref_fill(gn_backend *be, float *p, size_t count, float v);
int gn_ref_bn_update_running(gn_backend *be, gn_tensor *run_mean, gn_tensor *run_var,
                             const gn_tensor *mean, const gn_tensor *var, float momentum,
                             int64_t count, gn_error *err);
int gn_ref_softmax_xent(gn_backend *be, const gn_tensor *logits, const int32_t *labels,
                        float smoothing, float *loss, gn_tensor *dlogits, gn_error *err);
int gn_ref_chscale_bwd(gn_backend *be, const gn_tensor *x, const gn_tensor *s,
                       const gn_tensor *dy, gn_tensor *dx, gn_tensor *ds, gn_error *err);

#endif
