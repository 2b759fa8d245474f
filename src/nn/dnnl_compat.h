/* dnnl_compat.h — the oneDNN C API calls that differ between 2.x (Debian 12's 2.6.3,
 * the default) and 3.x, each behind one wrapper with one signature, so that
 * backend_dnnl.c builds against either (included by backend_dnnl.c only).
 *
 * Memory descriptors: a dnnl_memory_desc_t is a value (a struct) in 2.x and a handle
 * (a pointer) in 3.x.  The backend holds dnnl_memory_desc_t variables of either kind
 * and passes their addresses (const dnnl_memory_desc_t *) to these wrappers, which
 * dereference them for 3.x.  A 3.x handle must be destroyed: every descriptor that
 * dc_md_tag creates or dc_query_md / dc_memory_md copies while a cache entry is built
 * is recorded in a per-thread list that dc_build_end (called by build_done, at the
 * end of every build, success or not) destroys; the primitives and memory objects
 * keep their own copies.  In 2.x dc_build_end does nothing.
 *
 * Operation descriptors (*_desc_init + dnnl_primitive_desc_create in 2.x) are gone in
 * 3.x, where one *_primitive_desc_create call takes the same arguments; the dc_*_pd
 * wrappers make a primitive descriptor either way.
 */
#ifndef GPUNAS_NN_DNNL_COMPAT_H
#define GPUNAS_NN_DNNL_COMPAT_H

#include <dlfcn.h>
#include <stdint.h>

#include <oneapi/dnnl/dnnl.h>

#if DNNL_VERSION_MAJOR >= 3
/* descriptors made during one build: 64 is far more than one op's (a fused
 * convolution, built twice when it falls back to a separate add, makes about 20) */
#define DC_MAX_MDS 64
static _Thread_local struct {
    dnnl_memory_desc_t md[DC_MAX_MDS];
    int n;
} dc_mds;

static inline dnnl_memory_desc_t *dc_keep(dnnl_memory_desc_t md)
{
    if (dc_mds.n == DC_MAX_MDS) {
        dnnl_memory_desc_destroy(md);
        return NULL;
    }
    dc_mds.md[dc_mds.n] = md;
    return &dc_mds.md[dc_mds.n++];
}
#endif

static inline void dc_build_end(void)
{
#if DNNL_VERSION_MAJOR >= 3
    while (dc_mds.n > 0)
        dnnl_memory_desc_destroy(dc_mds.md[--dc_mds.n]);
#endif
}

/* a dense f32 descriptor */
static inline dnnl_status_t dc_md_tag(dnnl_memory_desc_t *md, int ndims, const dnnl_dims_t dims,
                                      dnnl_format_tag_t tag)
{
#if DNNL_VERSION_MAJOR >= 3
    dnnl_status_t st = dnnl_memory_desc_create_with_tag(md, ndims, dims, dnnl_f32, tag);
    if (st == dnnl_success && !dc_keep(*md))
        st = dnnl_out_of_memory;
    return st;
#else
    return dnnl_memory_desc_init_by_tag(md, ndims, dims, dnnl_f32, tag);
#endif
}

#if DNNL_VERSION_MAJOR >= 3
#define DC_MD(p) ((p) ? *(p) : NULL) /* the handle behind a descriptor address, or NULL */
#else
#define DC_MD(p) (p)
#endif

/* The descriptor pd chose for (what, idx), NULL if none: 2.x points into pd, 3.x to a
 * copy that lives until dc_build_end. */
static inline const dnnl_memory_desc_t *dc_query_md(const_dnnl_primitive_desc_t pd, dnnl_query_t what, int idx)
{
#if DNNL_VERSION_MAJOR >= 3
    const_dnnl_memory_desc_t q = dnnl_primitive_desc_query_md(pd, what, idx);
    dnnl_memory_desc_t c;
    if (!q || dnnl_memory_desc_clone(&c, q) != dnnl_success)
        return NULL;
    return dc_keep(c);
#else
    return dnnl_primitive_desc_query_md(pd, what, idx);
#endif
}

/* the descriptor of a memory object (same lifetime rules as dc_query_md) */
static inline const dnnl_memory_desc_t *dc_memory_md(const_dnnl_memory_t m)
{
#if DNNL_VERSION_MAJOR >= 3
    const_dnnl_memory_desc_t q = NULL;
    dnnl_memory_desc_t c;
    if (dnnl_memory_get_memory_desc(m, &q) != dnnl_success || !q || dnnl_memory_desc_clone(&c, q) != dnnl_success)
        return NULL;
    return dc_keep(c);
#else
    const dnnl_memory_desc_t *q = NULL;
    return dnnl_memory_get_memory_desc(m, &q) == dnnl_success ? q : NULL;
#endif
}

/* dimensions of a descriptor (0: the zero descriptor, e.g. no workspace) */
static inline int dc_md_ndims(const dnnl_memory_desc_t *md)
{
#if DNNL_VERSION_MAJOR >= 3
    int n = 0;
    return dnnl_memory_desc_query(*md, dnnl_query_ndims_s32, &n) == dnnl_success ? n : 0;
#else
    return md->ndims;
#endif
}

/* bytes of a memory object's buffer */
static inline size_t dc_memory_size(const_dnnl_memory_t m)
{
#if DNNL_VERSION_MAJOR >= 3
    const_dnnl_memory_desc_t md = NULL;
#else
    const dnnl_memory_desc_t *md = NULL;
#endif
    return dnnl_memory_get_memory_desc(m, &md) == dnnl_success && md ? dnnl_memory_desc_get_size(md) : 0;
}

static inline int dc_md_equal(const dnnl_memory_desc_t *a, const dnnl_memory_desc_t *b)
{
    return dnnl_memory_desc_equal(DC_MD(a), DC_MD(b));
}

static inline size_t dc_md_size(const dnnl_memory_desc_t *md) { return dnnl_memory_desc_get_size(DC_MD(md)); }

static inline dnnl_status_t dc_memory_create(dnnl_memory_t *m, const dnnl_memory_desc_t *md, dnnl_engine_t eng,
                                             void *handle)
{
    return dnnl_memory_create(m, DC_MD(md), eng, handle);
}

static inline dnnl_status_t dc_reorder_pd(dnnl_primitive_desc_t *pd, const dnnl_memory_desc_t *src,
                                          const dnnl_memory_desc_t *dst, dnnl_engine_t eng)
{
    return dnnl_reorder_primitive_desc_create(pd, DC_MD(src), eng, DC_MD(dst), eng, NULL);
}

/* post-ops: 2.x's eltwise post-op has a scale (always 1 here), 3.x's has none */
static inline dnnl_status_t dc_post_eltwise(dnnl_post_ops_t po, dnnl_alg_kind_t alg, float alpha, float beta)
{
#if DNNL_VERSION_MAJOR >= 3
    return dnnl_post_ops_append_eltwise(po, alg, alpha, beta);
#else
    return dnnl_post_ops_append_eltwise(po, 1.0f, alg, alpha, beta);
#endif
}

static inline dnnl_status_t dc_post_binary(dnnl_post_ops_t po, dnnl_alg_kind_t alg, const dnnl_memory_desc_t *src1)
{
    return dnnl_post_ops_append_binary(po, alg, DC_MD(src1));
}

/* ------------------------------------------------------------------ threads */
/* The function that sets the thread count of later ops: OpenMP's omp_set_num_threads
 * (Debian's build and PyPI's onednn-cpu-gomp), looked up with dlsym so gpunas needs no
 * -fopenmp; for a TBB build (PyPI's onednn 2026.x: SYCL CPU runtime, TBB threading) a
 * tbb::global_control(max_allowed_parallelism, n) made through oneTBB's exported
 * r1::create / r1::destroy (its C++ object is three words: value, reserved, parameter).
 * NULL when neither runtime is loaded. */
#if defined(DNNL_CPU_THREADING_RUNTIME) && DNNL_CPU_THREADING_RUNTIME == DNNL_RUNTIME_TBB
static struct {
    size_t value;
    intptr_t reserved;
    int param; /* 0: max_allowed_parallelism */
} dc_tbb_gc;
static void (*dc_tbb_create)(void *), (*dc_tbb_destroy)(void *);

static inline void dc_tbb_set_threads(int n)
{
    if (dc_tbb_gc.value)
        dc_tbb_destroy(&dc_tbb_gc);
    dc_tbb_gc.value = n > 0 ? (size_t)n : 1;
    dc_tbb_gc.param = 0;
    dc_tbb_create(&dc_tbb_gc);
}
#endif

static inline void (*dc_threads_setter(void))(int)
{
    void (*set)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "omp_set_num_threads");
#if defined(DNNL_CPU_THREADING_RUNTIME) && DNNL_CPU_THREADING_RUNTIME == DNNL_RUNTIME_TBB
    if (!set) {
        dc_tbb_create = (void (*)(void *))dlsym(RTLD_DEFAULT, "_ZN3tbb6detail2r16createERNS0_2d114global_controlE");
        dc_tbb_destroy = (void (*)(void *))dlsym(RTLD_DEFAULT, "_ZN3tbb6detail2r17destroyERNS0_2d114global_controlE");
        if (dc_tbb_create && dc_tbb_destroy)
            set = dc_tbb_set_threads;
    }
#endif
    return set;
}

/* ------------------------------------------------------------------ primitive descriptors */
/* 2.x: an operation descriptor d, then the primitive descriptor from it */
#if DNNL_VERSION_MAJOR >= 3
static const dnnl_dims_t dc_no_dilation = {0, 0};
#endif

static inline dnnl_status_t dc_conv_fwd_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t eng, dnnl_prop_kind_t prop,
                                           const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *wei,
                                           const dnnl_memory_desc_t *bias, const dnnl_memory_desc_t *dst,
                                           const dnnl_dims_t strides, const dnnl_dims_t pad,
                                           const_dnnl_primitive_attr_t attr)
{
#if DNNL_VERSION_MAJOR >= 3
    return dnnl_convolution_forward_primitive_desc_create(pd, eng, prop, dnnl_convolution_direct, *src, *wei,
                                                          DC_MD(bias), *dst, strides, dc_no_dilation, pad, pad, attr);
#else
    dnnl_convolution_desc_t d;
    dnnl_status_t st =
        dnnl_convolution_forward_desc_init(&d, prop, dnnl_convolution_direct, src, wei, bias, dst, strides, pad, pad);
    return st == dnnl_success ? dnnl_primitive_desc_create(pd, &d, attr, eng, NULL) : st;
#endif
}

static inline dnnl_status_t dc_conv_bwd_data_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t eng,
                                                const dnnl_memory_desc_t *diff_src, const dnnl_memory_desc_t *wei,
                                                const dnnl_memory_desc_t *diff_dst, const dnnl_dims_t strides,
                                                const dnnl_dims_t pad, const_dnnl_primitive_desc_t hint)
{
#if DNNL_VERSION_MAJOR >= 3
    return dnnl_convolution_backward_data_primitive_desc_create(pd, eng, dnnl_convolution_direct, *diff_src, *wei,
                                                                *diff_dst, strides, dc_no_dilation, pad, pad, hint,
                                                                NULL);
#else
    dnnl_convolution_desc_t d;
    dnnl_status_t st = dnnl_convolution_backward_data_desc_init(&d, dnnl_convolution_direct, diff_src, wei,
                                                                diff_dst, strides, pad, pad);
    return st == dnnl_success ? dnnl_primitive_desc_create(pd, &d, NULL, eng, hint) : st;
#endif
}

static inline dnnl_status_t dc_conv_bwd_weights_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t eng,
                                                   const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *diff_wei,
                                                   const dnnl_memory_desc_t *diff_bias,
                                                   const dnnl_memory_desc_t *diff_dst, const dnnl_dims_t strides,
                                                   const dnnl_dims_t pad, const_dnnl_primitive_desc_t hint)
{
#if DNNL_VERSION_MAJOR >= 3
    return dnnl_convolution_backward_weights_primitive_desc_create(pd, eng, dnnl_convolution_direct, *src,
                                                                   *diff_wei, DC_MD(diff_bias), *diff_dst, strides,
                                                                   dc_no_dilation, pad, pad, hint, NULL);
#else
    dnnl_convolution_desc_t d;
    dnnl_status_t st = dnnl_convolution_backward_weights_desc_init(&d, dnnl_convolution_direct, src, diff_wei,
                                                                   diff_bias, diff_dst, strides, pad, pad);
    return st == dnnl_success ? dnnl_primitive_desc_create(pd, &d, NULL, eng, hint) : st;
#endif
}

/* batch normalization over src (dst, diff_src and diff_dst have its descriptor) */
static inline dnnl_status_t dc_bn_fwd_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t eng, dnnl_prop_kind_t prop,
                                         const dnnl_memory_desc_t *src, float eps, unsigned flags)
{
#if DNNL_VERSION_MAJOR >= 3
    return dnnl_batch_normalization_forward_primitive_desc_create(pd, eng, prop, *src, *src, eps, flags, NULL);
#else
    dnnl_batch_normalization_desc_t d;
    dnnl_status_t st = dnnl_batch_normalization_forward_desc_init(&d, prop, src, eps, flags);
    return st == dnnl_success ? dnnl_primitive_desc_create(pd, &d, NULL, eng, NULL) : st;
#endif
}

/* Backward with use_shift: 2.x counts SHIFT among the required inputs (its math does
 * not read it), 3.x refuses it (one input too many: invalid_arguments at execution). */
#define DC_BN_BWD_TAKES_SHIFT (DNNL_VERSION_MAJOR < 3)

static inline dnnl_status_t dc_bn_bwd_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t eng, const dnnl_memory_desc_t *src,
                                         float eps, unsigned flags, const_dnnl_primitive_desc_t hint)
{
#if DNNL_VERSION_MAJOR >= 3
    return dnnl_batch_normalization_backward_primitive_desc_create(pd, eng, dnnl_backward, *src, *src, *src, eps,
                                                                   flags, hint, NULL);
#else
    dnnl_batch_normalization_desc_t d;
    dnnl_status_t st = dnnl_batch_normalization_backward_desc_init(&d, dnnl_backward, src, src, eps, flags);
    return st == dnnl_success ? dnnl_primitive_desc_create(pd, &d, NULL, eng, hint) : st;
#endif
}

/* elementwise over src (dst, diff_src and diff_dst have its descriptor) */
static inline dnnl_status_t dc_elt_fwd_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t eng, dnnl_prop_kind_t prop,
                                          dnnl_alg_kind_t alg, const dnnl_memory_desc_t *src, float alpha, float beta)
{
#if DNNL_VERSION_MAJOR >= 3
    return dnnl_eltwise_forward_primitive_desc_create(pd, eng, prop, alg, *src, *src, alpha, beta, NULL);
#else
    dnnl_eltwise_desc_t d;
    dnnl_status_t st = dnnl_eltwise_forward_desc_init(&d, prop, alg, src, alpha, beta);
    return st == dnnl_success ? dnnl_primitive_desc_create(pd, &d, NULL, eng, NULL) : st;
#endif
}

static inline dnnl_status_t dc_elt_bwd_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t eng, dnnl_alg_kind_t alg,
                                          const dnnl_memory_desc_t *src, float alpha, float beta,
                                          const_dnnl_primitive_desc_t hint)
{
#if DNNL_VERSION_MAJOR >= 3
    return dnnl_eltwise_backward_primitive_desc_create(pd, eng, alg, *src, *src, *src, alpha, beta, hint, NULL);
#else
    dnnl_eltwise_desc_t d;
    dnnl_status_t st = dnnl_eltwise_backward_desc_init(&d, alg, src, src, alpha, beta);
    return st == dnnl_success ? dnnl_primitive_desc_create(pd, &d, NULL, eng, hint) : st;
#endif
}

/* pooling from src to dst (backward: diff_src has src's descriptor, diff_dst dst's) */
static inline dnnl_status_t dc_pool_fwd_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t eng, dnnl_prop_kind_t prop,
                                           dnnl_alg_kind_t alg, const dnnl_memory_desc_t *src,
                                           const dnnl_memory_desc_t *dst, const dnnl_dims_t strides,
                                           const dnnl_dims_t kernel, const dnnl_dims_t pad)
{
#if DNNL_VERSION_MAJOR >= 3
    return dnnl_pooling_forward_primitive_desc_create(pd, eng, prop, alg, *src, *dst, strides, kernel,
                                                      dc_no_dilation, pad, pad, NULL);
#else
    dnnl_pooling_desc_t d;
    dnnl_status_t st = dnnl_pooling_forward_desc_init(&d, prop, alg, src, dst, strides, kernel, pad, pad);
    return st == dnnl_success ? dnnl_primitive_desc_create(pd, &d, NULL, eng, NULL) : st;
#endif
}

static inline dnnl_status_t dc_pool_bwd_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t eng, dnnl_alg_kind_t alg,
                                           const dnnl_memory_desc_t *src, const dnnl_memory_desc_t *dst,
                                           const dnnl_dims_t strides, const dnnl_dims_t kernel, const dnnl_dims_t pad,
                                           const_dnnl_primitive_desc_t hint)
{
#if DNNL_VERSION_MAJOR >= 3
    return dnnl_pooling_backward_primitive_desc_create(pd, eng, alg, *src, *dst, strides, kernel, dc_no_dilation,
                                                       pad, pad, hint, NULL);
#else
    dnnl_pooling_desc_t d;
    dnnl_status_t st = dnnl_pooling_backward_desc_init(&d, alg, src, dst, strides, kernel, pad, pad);
    return st == dnnl_success ? dnnl_primitive_desc_create(pd, &d, NULL, eng, hint) : st;
#endif
}

static inline dnnl_status_t dc_binary_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t eng, dnnl_alg_kind_t alg,
                                         const dnnl_memory_desc_t *src0, const dnnl_memory_desc_t *src1,
                                         const dnnl_memory_desc_t *dst)
{
#if DNNL_VERSION_MAJOR >= 3
    return dnnl_binary_primitive_desc_create(pd, eng, alg, *src0, *src1, *dst, NULL);
#else
    dnnl_binary_desc_t d;
    dnnl_status_t st = dnnl_binary_desc_init(&d, alg, src0, src1, dst);
    return st == dnnl_success ? dnnl_primitive_desc_create(pd, &d, NULL, eng, NULL) : st;
#endif
}

#endif
