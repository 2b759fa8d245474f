/*
 * backend_impl.h — the backend vtable and instance layout, private to src/nn (the
 * public gpunas/backend.h hands out opaque gn_backend handles and the checked gn_*
 * op wrappers; a new backend, e.g. CUDA, fills this vtable).
 */
#ifndef GPUNAS_NN_BACKEND_IMPL_H
#define GPUNAS_NN_BACKEND_IMPL_H

#include "gpunas/backend.h"

/* ------------------------------------------------------------------ vtable */
/* Implementations receive already validated arguments (see the gn_* wrappers). */
typedef struct gn_backend_ops {
    /* memory */
    void *(*alloc)(gn_backend *be, size_t bytes); /* NULL on failure */
    void (*free)(gn_backend *be, void *p);
    int (*copy_in)(gn_backend *be, void *dst, const void *host_src, size_t bytes);
    int (*copy_out)(gn_backend *be, void *host_dst, const void *src, size_t bytes);
    int (*copy)(gn_backend *be, void *dst, const void *src, size_t bytes);
    int (*fill)(gn_backend *be, float *p, size_t count, float v);
    int (*set_threads)(gn_backend *be, int n, gn_error *err);
    int (*pin_threads)(gn_backend *be, int on, int *pinned, gn_error *err); /* NULL: no pinning */
    void (*destroy)(gn_backend *be); /* frees be itself */

    /* y = act(conv(x, w) + b) + r ; b, r nullable; act may be GN_ELT_IDENTITY */
    int (*conv2d_fwd)(gn_backend *be, const gn_tensor *x, const gn_tensor *w,
                      const gn_tensor *b, const gn_tensor *r, gn_eltwise act, gn_tensor *y,
                      const gn_conv2d_params *p, gn_error *err);
    int (*conv2d_bwd_data)(gn_backend *be, const gn_tensor *dy, const gn_tensor *w,
                           gn_tensor *dx, const gn_conv2d_params *p, gn_error *err);
    int (*conv2d_bwd_weights)(gn_backend *be, const gn_tensor *x, const gn_tensor *dy,
                              gn_tensor *dw, gn_tensor *db, const gn_conv2d_params *p,
                              gn_error *err);

    int (*bn_fwd_train)(gn_backend *be, const gn_tensor *x, const gn_tensor *gamma,
                        const gn_tensor *beta, float eps, gn_tensor *y, gn_tensor *mean,
                        gn_tensor *var, gn_error *err);
    int (*bn_fwd_infer)(gn_backend *be, const gn_tensor *x, const gn_tensor *gamma,
                        const gn_tensor *beta, const gn_tensor *mean, const gn_tensor *var,
                        float eps, gn_tensor *y, gn_error *err);
    int (*bn_bwd)(gn_backend *be, const gn_tensor *x, const gn_tensor *dy,
                  const gn_tensor *gamma, const gn_tensor *mean, const gn_tensor *var,
                  float eps, gn_tensor *dx, gn_tensor *dgamma, gn_tensor *dbeta,
                  gn_error *err);
    /* BN + ReLU in training (gn_bn_relu_*); all three NULL where a backend has no such op.
     * ws has at least bn_relu_ws(x) floats (checked by the wrapper). */
    int (*bn_relu_ws)(gn_backend *be, const gn_tensor *x, float eps, size_t *numel, gn_error *err);
    int (*bn_relu_fwd_train)(gn_backend *be, const gn_tensor *x, const gn_tensor *gamma,
                             const gn_tensor *beta, float eps, gn_tensor *y, gn_tensor *mean,
                             gn_tensor *var, gn_tensor *ws, gn_error *err);
    int (*bn_relu_bwd)(gn_backend *be, const gn_tensor *x, const gn_tensor *dy,
                       const gn_tensor *gamma, const gn_tensor *mean, const gn_tensor *var,
                       float eps, const gn_tensor *ws, gn_tensor *dx, gn_tensor *dgamma,
                       gn_tensor *dbeta, gn_error *err);
    int (*bn_update_running)(gn_backend *be, gn_tensor *run_mean, gn_tensor *run_var,
                             const gn_tensor *mean, const gn_tensor *var, float momentum,
                             int64_t count, gn_error *err);

    int (*eltwise_fwd)(gn_backend *be, gn_eltwise k, const gn_tensor *x, gn_tensor *y,
                       gn_error *err);
    int (*eltwise_bwd)(gn_backend *be, gn_eltwise k, const gn_tensor *x, const gn_tensor *dy,
                       gn_tensor *dx, gn_error *err);

    int (*gap_fwd)(gn_backend *be, const gn_tensor *x, gn_tensor *y, gn_error *err);
    int (*gap_bwd)(gn_backend *be, const gn_tensor *dy, gn_tensor *dx, gn_error *err);

    int (*chscale_fwd)(gn_backend *be, const gn_tensor *x, const gn_tensor *s, gn_tensor *y,
                       gn_error *err);
    int (*chscale_bwd)(gn_backend *be, const gn_tensor *x, const gn_tensor *s,
                       const gn_tensor *dy, gn_tensor *dx, gn_tensor *ds, gn_error *err);

    int (*add)(gn_backend *be, const gn_tensor *a, const gn_tensor *b, gn_tensor *y,
               gn_error *err);
    int (*accumulate)(gn_backend *be, gn_tensor *y, const gn_tensor *x, gn_error *err);
    int (*mul_mask)(gn_backend *be, const gn_tensor *x, const gn_tensor *mask, gn_tensor *y,
                    gn_error *err);

    int (*linear_fwd)(gn_backend *be, const gn_tensor *x, const gn_tensor *w,
                      const gn_tensor *b, gn_tensor *y, gn_error *err);
    int (*linear_bwd)(gn_backend *be, const gn_tensor *x, const gn_tensor *w,
                      const gn_tensor *dy, gn_tensor *dx, gn_tensor *dw, gn_tensor *db,
                      gn_error *err);

    int (*softmax_xent)(gn_backend *be, const gn_tensor *logits, const int32_t *labels,
                        float smoothing, float *loss, gn_tensor *dlogits, gn_error *err);
} gn_backend_ops;

struct gn_backend {
    const char *name;          /* "ref", "dnnl" */
    unsigned caps;             /* GN_CAP_* */
    const gn_backend_ops *ops;
    void *impl;                /* backend private state */
};


/* constructors used by gn_backend_create */
int gn__backend_ref_new(gn_backend **out, gn_error *err);
int gn__backend_dnnl_new(gn_backend **out, gn_error *err);

/* host-memory helpers and small ops of the ref backend, reused by dnnl */
void *gn__ref_alloc(gn_backend *be, size_t bytes);
void gn__ref_free(gn_backend *be, void *p);
int gn__ref_copy(gn_backend *be, void *dst, const void *src, size_t bytes);
int gn__ref_fill(gn_backend *be, float *p, size_t count, float v);
int gn__ref_bn_update_running(gn_backend *be, gn_tensor *run_mean, gn_tensor *run_var,
                             const gn_tensor *mean, const gn_tensor *var, float momentum,
                             int64_t count, gn_error *err);
int gn__ref_softmax_xent(gn_backend *be, const gn_tensor *logits, const int32_t *labels,
                        float smoothing, float *loss, gn_tensor *dlogits, gn_error *err);
int gn__ref_chscale_bwd(gn_backend *be, const gn_tensor *x, const gn_tensor *s,
                       const gn_tensor *dy, gn_tensor *dx, gn_tensor *ds, gn_error *err);

#endif
