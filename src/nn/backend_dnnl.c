/* backend_dnnl.c — oneDNN (C API; 2.6 or 3.x, see nn/dnnl_compat.h) backend on the CPU engine.
 *
 * Every op looks up a cache entry keyed by (op, shapes, params); an entry holds the
 * primitive, one "user" memory object per argument (plain layout, data handle set
 * per call to the caller's tensor) and, where the primitive picked another layout
 * (format_tag_any for convolutions), an internal buffer plus a cached reorder that
 * runs before (inputs) or after (outputs) the primitive.  See gpunas/backend.h.
 *
 * Design notes (moved here from the public header)
 *
 *   Primitive cache: every op builds a key from its kind and all shapes and
 *   parameters; the created primitive, its memory objects (plain NCHW "user"
 *   memories whose data handle is set per call) and any reorders are kept in a hash
 *   table and reused for the same key.  Convolutions are created with
 *   format_tag_any so oneDNN may pick blocked layouts (nChw8c/16c, blocked
 *   weights); when it does, the entry holds reorder primitives and internal
 *   buffers and every call reorders in and out (x, w, dy in; y, dx, dw out).
 *   Trade-off: the API stays plain NCHW (simple, interoperable) at the cost of
 *   those reorders around each conv; blocked kernels are still usually faster
 *   than plain-layout ones for the 3x3/5x5 and 1x1 convs here.  Weights are
 *   reordered on every call (no weight cache: in training they change each step).
 *   The cache is flushed when it exceeds 4096 entries.  A dnnl backend instance
 *   is not thread-safe (one stream, one cache); use one instance per thread.
 *
 *   Threads: the Debian oneDNN build uses OpenMP (libgomp; DNNL_CPU_RUNTIME=OMP).
 *   gn_backend_set_threads(be, n) on "dnnl" calls omp_set_num_threads(n), looked up
 *   with dlsym so gpunas needs no -fopenmp (it affects the calling thread's
 *   OpenMP ICV, i.e. later ops issued from that thread; dnnl_sgemm uses the same
 *   OpenMP pool).  n <= 0: the cores other processes leave free (gn_threads_available;
 *   measured: no OpenMP wait policy keeps 2 threads as fast as 1 beside one busy
 *   process on 2 cores).  A changed count empties the primitive cache: oneDNN's
 *   kernels split their work for the thread count they were created with.  "ref" is single-threaded
 *   and ignores it.  (A oneDNN 3.x built with TBB, PyPI's onednn 2026.x: set_threads
 *   uses tbb::global_control, see nn/dnnl_compat.h; pinning needs libgomp and fails.)
 *   gn_backend_pin_threads places the team: libgomp reads its
 *   placement settings (OMP_PROC_BIND, OMP_PLACES) only from the environment at
 *   load, so the dnnl backend runs one parallel region through libgomp's
 *   GOMP_parallel entry (dlsym again) in which every team thread calls
 *   sched_setaffinity on itself; libgomp keeps a team's threads in their positions
 *   from one region to the next, so the placement holds for the ops that follow.
 *
 */
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

#include "gpunas/backend.h"
#include "nn/backend_impl.h"
#include "nn/dnnl_compat.h"

enum {
    OP_CONV_FWD = 1,
    OP_CONV_BWD_D,
    OP_CONV_BWD_W,
    OP_BN_TRAIN,
    OP_BN_INFER,
    OP_BN_BWD,
    OP_ELT_FWD,
    OP_ELT_BWD,
    OP_GAP_FWD,
    OP_GAP_BWD,
    OP_BINARY,
    OP_BN_RELU_TRAIN, /* batch norm + ReLU (dnnl_fuse_norm_relu), training forward */
    OP_BN_RELU_BWD,   /* ... and its backward */
};

#define KEYLEN 20
#define MAXARGS 10
#define NBUCKETS 512
#define MAX_ENTRIES 4096

typedef struct {
    int arg;                  /* DNNL_ARG_* */
    int out;                  /* written by the primitive */
    dnnl_memory_t user;       /* plain layout, handle = caller's pointer */
    dnnl_memory_t inner;      /* primitive layout (owned buffer) or NULL */
    dnnl_primitive_t reorder; /* user->inner (in) or inner->user (out) */
    /* weights argument with a weights_version: inner already holds the reorder of
     * (done_ptr, done_ver), skip the reorder while both match */
    const void *done_ptr;
    uint64_t done_ver;
} carg;

typedef struct centry {
    struct centry *next;
    int64_t key[KEYLEN];
    dnnl_primitive_t prim;
    int nargs;
    carg a[MAXARGS];
    size_t bytes; /* internal buffers held by this entry */
    int add_after; /* conv: the residual is added by a separate binary primitive */
} centry;

typedef struct {
    dnnl_engine_t eng;
    dnnl_stream_t strm;
    centry *buckets[NBUCKETS];
    int count;
    size_t bytes; /* sum of the entries' internal buffers */
    cpu_set_t allowed; /* the process's CPUs (capture_allowed; gn_backend_pin_threads) */
    int threads;       /* the count last set (0: never) */
} dimpl;

/* The cache is flushed when it would hold more than this in internal buffers (mostly
 * reordered inference weights, one copy per live network's conv). */
#define MAX_CACHE_BYTES ((size_t)1 << 30)

static dimpl *D(gn_backend *be) { return (dimpl *)be->impl; }

static int derr(gn_error *err, const char *what, dnnl_status_t st)
{
    return gn_error_set(err, "dnnl: %s: %s", what, dnnl_status2str(st));
}

#define DN(call, what)                                                                         \
    do {                                                                                       \
        dnnl_status_t st_ = (call);                                                            \
        if (st_ != dnnl_success) {                                                             \
            derr(err, what, st_);                                                              \
            goto fail;                                                                         \
        }                                                                                      \
    } while (0)

/* ------------------------------------------------------------------ cache */
static uint64_t key_hash(const int64_t *k)
{
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < KEYLEN; i++) {
        h ^= (uint64_t)k[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static void ent_free(centry *e)
{
    if (!e)
        return;
    for (int i = 0; i < e->nargs; i++) {
        if (e->a[i].reorder)
            dnnl_primitive_destroy(e->a[i].reorder);
        if (e->a[i].inner)
            dnnl_memory_destroy(e->a[i].inner);
        if (e->a[i].user)
            dnnl_memory_destroy(e->a[i].user);
    }
    if (e->prim)
        dnnl_primitive_destroy(e->prim);
    free(e);
}

static void cache_clear(dimpl *d)
{
    for (int b = 0; b < NBUCKETS; b++) {
        centry *e = d->buckets[b];
        while (e) {
            centry *nx = e->next;
            ent_free(e);
            e = nx;
        }
        d->buckets[b] = NULL;
    }
    d->count = 0;
    d->bytes = 0;
}

static centry *cache_find(dimpl *d, const int64_t *key)
{
    for (centry *e = d->buckets[key_hash(key) % NBUCKETS]; e; e = e->next)
        if (memcmp(e->key, key, sizeof e->key) == 0)
            return e;
    return NULL;
}

static void cache_insert(dimpl *d, centry *e)
{
    if (d->count >= MAX_ENTRIES || d->bytes + e->bytes > MAX_CACHE_BYTES)
        cache_clear(d);
    d->bytes += e->bytes;
    uint64_t b = key_hash(e->key) % NBUCKETS;
    e->next = d->buckets[b];
    d->buckets[b] = e;
    d->count++;
}

static centry *ent_new(const int64_t *key)
{
    centry *e = calloc(1, sizeof *e);
    if (e)
        memcpy(e->key, key, sizeof e->key);
    return e;
}

/* Add an argument.  prim_md NULL (or equal to user_md): no reorder. */
/* The end of building a cache entry: the primitive descriptors are not needed any
 * more (ent_commit created the primitive); on failure the half-built entry goes too. */
static void build_done(dnnl_primitive_desc_t pd, dnnl_primitive_desc_t hint, centry *failed)
{
    if (pd)
        dnnl_primitive_desc_destroy(pd);
    if (hint)
        dnnl_primitive_desc_destroy(hint);
    if (failed)
        ent_free(failed);
    dc_build_end();
}

static int ent_arg(dimpl *d, centry *e, int arg, const dnnl_memory_desc_t *user_md,
                   const dnnl_memory_desc_t *prim_md, int out, gn_error *err)
{
    dnnl_primitive_desc_t rpd = NULL;
    carg *a = &e->a[e->nargs++];
    a->arg = arg;
    a->out = out;
    DN(dc_memory_create(&a->user, user_md, d->eng, DNNL_MEMORY_NONE), "memory create");
    if (prim_md && !dc_md_equal(user_md, prim_md)) {
        DN(dc_memory_create(&a->inner, prim_md, d->eng, DNNL_MEMORY_ALLOCATE),
           "memory create");
        e->bytes += dc_md_size(prim_md);
        if (out)
            DN(dc_reorder_pd(&rpd, prim_md, user_md, d->eng), "reorder");
        else
            DN(dc_reorder_pd(&rpd, user_md, prim_md, d->eng), "reorder");
        DN(dnnl_primitive_create(&a->reorder, rpd), "reorder create");
        dnnl_primitive_desc_destroy(rpd);
    }
    return 0;
fail:
    if (rpd)
        dnnl_primitive_desc_destroy(rpd);
    return -1;
}

/* Run an entry; ptrs[i] is the caller's buffer for argument i.  wver != 0: the
 * weights argument's values are fixed for (pointer, wver) (gn_conv2d_params). */
static int ent_exec_v(dimpl *d, centry *e, void *const *ptrs, uint64_t wver, const char *what, gn_error *err)
{
    dnnl_exec_arg_t args[MAXARGS];
    for (int i = 0; i < e->nargs; i++) {
        carg *a = &e->a[i];
        DN(dnnl_memory_set_data_handle(a->user, ptrs[i]), what);
        if (a->inner && !a->out) {
            if (wver && a->arg == DNNL_ARG_WEIGHTS && a->done_ptr == ptrs[i] && a->done_ver == wver)
                goto skip;
            dnnl_exec_arg_t ra[2] = {{DNNL_ARG_SRC, a->user}, {DNNL_ARG_DST, a->inner}};
            DN(dnnl_primitive_execute(a->reorder, d->strm, 2, ra), what);
            if (a->arg == DNNL_ARG_WEIGHTS)
                a->done_ptr = wver ? ptrs[i] : NULL, a->done_ver = wver;
        }
    skip:
        args[i].arg = a->arg;
        args[i].memory = a->inner ? a->inner : a->user;
    }
    DN(dnnl_primitive_execute(e->prim, d->strm, e->nargs, args), what);
    for (int i = 0; i < e->nargs; i++) {
        carg *a = &e->a[i];
        if (a->inner && a->out) {
            dnnl_exec_arg_t ra[2] = {{DNNL_ARG_SRC, a->inner}, {DNNL_ARG_DST, a->user}};
            DN(dnnl_primitive_execute(a->reorder, d->strm, 2, ra), what);
        }
    }
    DN(dnnl_stream_wait(d->strm), what);
    return 0;
fail:
    return -1;
}

static int ent_exec(dimpl *d, centry *e, void *const *ptrs, const char *what, gn_error *err)
{
    return ent_exec_v(d, e, ptrs, 0, what, err);
}

/* Finish an entry from pd: create the primitive, insert, return it. */
static int ent_commit(dimpl *d, centry *e, dnnl_primitive_desc_t pd, const char *what,
                      gn_error *err)
{
    DN(dnnl_primitive_create(&e->prim, pd), what);
    if (getenv("GPUNAS_DNNL_VERBOSE")) {
        const char *impl = NULL;
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
        fprintf(stderr, "gpunas dnnl: %s -> %s\n", what, impl ? impl : "?");
        for (int i = 0; i < e->nargs; i++) {
            const dnnl_memory_desc_t *want = dc_query_md(pd, dnnl_query_exec_arg_md, e->a[i].arg);
            const dnnl_memory_desc_t *have = dc_memory_md(e->a[i].inner ? e->a[i].inner : e->a[i].user);
            fprintf(stderr, "  arg %d: %s\n", e->a[i].arg,
                    want && have && dc_md_equal(want, have) ? "ok" : "MISMATCH");
        }
    }
    cache_insert(d, e);
    return 0;
fail:
    return -1;
}

/* ------------------------------------------------------------------ descriptors */
static int md_nchw(dnnl_memory_desc_t *md, int n, int c, int h, int w, dnnl_format_tag_t tag)
{
    dnnl_dims_t dims = {n, c, h, w};
    return dc_md_tag(md, 4, dims, tag) == dnnl_success ? 0 : -1;
}

static int md_t(dnnl_memory_desc_t *md, const gn_tensor *t, dnnl_format_tag_t tag)
{
    return md_nchw(md, t->n, t->c, t->h, t->w, tag);
}

/* the plain tag of an activation tensor's layout */
static dnnl_format_tag_t TAG(const gn_tensor *t)
{
    return t->layout == GN_LAYOUT_NHWC ? dnnl_nhwc : dnnl_nchw;
}

/* the tag a convolution primitive is created with for its activations x (input side)
 * and y (output side): when both are channels-last they are used as they are;
 * otherwise (the stem conv, whose input is NCHW, or an all-NCHW caller) oneDNN
 * chooses (then we reorder) — mixed plain layouts can land on its reference kernel */
static dnnl_format_tag_t ATAG2(const gn_tensor *x, const gn_tensor *y)
{
    return x->layout == GN_LAYOUT_NHWC && y->layout == GN_LAYOUT_NHWC ? dnnl_nhwc : dnnl_format_tag_any;
}

static int md_vec(dnnl_memory_desc_t *md, int c)
{
    dnnl_dims_t dims = {c};
    return dc_md_tag(md, 1, dims, dnnl_a) == dnnl_success ? 0 : -1;
}

/* conv weights: [O, I/g, KH, KW] as oihw, or goihw {G, O/G, I/g, KH, KW} */
static int md_convw(dnnl_memory_desc_t *md, const gn_tensor *w, int groups, dnnl_format_tag_t tag)
{
    if (groups == 1)
        return md_t(md, w, tag);
    dnnl_dims_t dims = {groups, w->n / groups, w->c, w->h, w->w};
    if (tag == dnnl_nchw)
        tag = dnnl_goihw;
    return dc_md_tag(md, 5, dims, tag) == dnnl_success ? 0 : -1;
}

static void *P(const gn_tensor *t) { return (void *)t->data; }

static int desc_fail(gn_error *err, const char *what)
{
    return gn_error_set(err, "dnnl: %s: cannot describe memory", what);
}

/* ------------------------------------------------------------------ convolution */
static void conv_key(int64_t *k, int op, const gn_tensor *x, const gn_tensor *w,
                     const gn_tensor *y, const gn_conv2d_params *p)
{
    memset(k, 0, sizeof(int64_t) * KEYLEN);
    k[0] = op;
    k[1] = x->n, k[2] = x->c, k[3] = x->h, k[4] = x->w;
    k[5] = w->n, k[6] = w->h, k[7] = w->w;
    k[8] = y->h, k[9] = y->w;
    k[10] = p->stride, k[11] = p->pad, k[12] = p->groups;
    k[16] = x->layout, k[17] = y->layout;
}

/* forward conv primitive desc: "any" formats for weights, and for src/dst in NCHW
 * (oneDNN then picks a blocked layout and we reorder); channels-last src/dst are used
 * as they are */
static dnnl_status_t conv_fwd_pd(dnnl_primitive_desc_t *pd, dnnl_engine_t eng, dnnl_prop_kind_t prop,
                                 const gn_tensor *x, const gn_tensor *w, const gn_tensor *y, int has_bias,
                                 const gn_conv2d_params *p, const_dnnl_primitive_attr_t attr)
{
    dnnl_memory_desc_t xs, ws, bs, ys;
    if (md_t(&xs, x, ATAG2(x, y)) || md_convw(&ws, w, p->groups, dnnl_format_tag_any) || md_vec(&bs, w->n) ||
        md_t(&ys, y, ATAG2(x, y)))
        return dnnl_invalid_arguments;
    dnnl_dims_t st = {p->stride, p->stride}, pad = {p->pad, p->pad};
    return dc_conv_fwd_pd(pd, eng, prop, &xs, &ws, has_bias ? &bs : NULL, &ys, st, pad, attr);
}

static dnnl_alg_kind_t elt_alg(gn_eltwise k, float *alpha)
{
    *alpha = 0.0f;
    switch (k) {
    case GN_ELT_RELU: return dnnl_eltwise_relu;
    case GN_ELT_SILU: *alpha = 1.0f; return dnnl_eltwise_swish;
    case GN_ELT_SIGMOID: return dnnl_eltwise_logistic;
    default: return dnnl_alg_kind_undef;
    }
}

static int dn_accumulate(gn_backend *be, gn_tensor *y, const gn_tensor *x, gn_error *err);

/* True when pd is oneDNN's gemm-based convolution, whose binary post-op (2.6.x) reads
 * a channels-last source at wrong offsets for grouped convolutions. */
static int conv_binary_unsafe(const_dnnl_primitive_desc_t pd)
{
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success || !impl)
        return 1;
    return strstr(impl, "gemm") != NULL;
}

static int dn_conv2d_fwd(gn_backend *be, const gn_tensor *x, const gn_tensor *w,
                         const gn_tensor *b, const gn_tensor *r, gn_eltwise act, gn_tensor *y,
                         const gn_conv2d_params *p, gn_error *err)
{
    const char *what = "convolution forward";
    dimpl *d = D(be);
    int64_t key[KEYLEN];
    conv_key(key, OP_CONV_FWD, x, w, y, p);
    key[13] = b != NULL, key[14] = r != NULL, key[15] = act;
    /* fixed (inference) weights: one entry per weight buffer, so each keeps its own
     * reordered copy (layers of equal shape would otherwise evict each other's) */
    key[18] = p->weights_version ? (int64_t)(intptr_t)w->data : 0;
    centry *e = cache_find(d, key);
    if (!e) {
        dnnl_primitive_attr_t attr = NULL;
        dnnl_post_ops_t po = NULL;
        dnnl_primitive_desc_t pd = NULL;
        dnnl_memory_desc_t ux, uw, ub, uy;
        int fused = act != GN_ELT_IDENTITY || r;
        /* The residual: a binary-add post-op reading it (the default), or, where
         * oneDNN 2.6's gemm-based grouped convolution reads a binary post-op's
         * channels-last source at wrong offsets (seen on an AVX2 EPYC without
         * AVX-512: case 9 of test_nn_ops, x64:gemm:jit g4 nhwc, |diff| 1.9), a
         * separate add after the convolution.  (A sum post-op is no way out: with
         * eltwise before it oneDNN falls back to its reference convolution.) */
        int add_after = 0;
        if (!(e = ent_new(key)))
            return gn_error_set(err, "dnnl: %s: out of memory", what);
        if (md_t(&ux, x, TAG(x)) || md_convw(&uw, w, p->groups, dnnl_nchw) ||
            md_vec(&ub, w->n) || md_t(&uy, y, TAG(y))) {
            desc_fail(err, what);
            goto fail;
        }
    again:
        DN(dnnl_primitive_attr_create(&attr), what);
        if (fused) {
            DN(dnnl_post_ops_create(&po), what);
            if (act != GN_ELT_IDENTITY) {
                float alpha;
                dnnl_alg_kind_t alg = elt_alg(act, &alpha);
                DN(dc_post_eltwise(po, alg, alpha, 0.0f), what);
            }
            if (r && !add_after)
                DN(dc_post_binary(po, dnnl_binary_add, &uy), what);
            DN(dnnl_primitive_attr_set_post_ops(attr, po), what);
        }
        DN(conv_fwd_pd(&pd, d->eng, fused ? dnnl_forward_inference : dnnl_forward_training, x, w, y, b != NULL, p,
                       attr),
           what);
        if (r && !add_after && p->groups > 1 && y->layout == GN_LAYOUT_NHWC && conv_binary_unsafe(pd)) {
            dnnl_primitive_desc_destroy(pd), pd = NULL;
            dnnl_post_ops_destroy(po), po = NULL;
            dnnl_primitive_attr_destroy(attr), attr = NULL;
            add_after = 1;
            goto again;
        }
        e->add_after = add_after;
        if (ent_arg(d, e, DNNL_ARG_SRC, &ux, dc_query_md(pd, dnnl_query_src_md, 0),
                    0, err) ||
            ent_arg(d, e, DNNL_ARG_WEIGHTS, &uw,
                    dc_query_md(pd, dnnl_query_weights_md, 0), 0, err) ||
            (b && ent_arg(d, e, DNNL_ARG_BIAS, &ub,
                          dc_query_md(pd, dnnl_query_weights_md, 1), 0, err)) ||
            (r && !add_after &&
             ent_arg(d, e, DNNL_ARG_ATTR_MULTIPLE_POST_OP(act != GN_ELT_IDENTITY ? 1 : 0) | DNNL_ARG_SRC_1,
                     &uy, NULL, 0, err)) ||
            ent_arg(d, e, DNNL_ARG_DST, &uy, dc_query_md(pd, dnnl_query_dst_md, 0),
                    1, err) ||
            ent_commit(d, e, pd, what, err))
            goto fail;
        build_done(pd, NULL, NULL);
        if (po)
            dnnl_post_ops_destroy(po);
        dnnl_primitive_attr_destroy(attr);
        goto run;
    fail:
        build_done(pd, NULL, e);
        if (po)
            dnnl_post_ops_destroy(po);
        if (attr)
            dnnl_primitive_attr_destroy(attr);
        return -1;
    }
run:;
    void *ptrs[MAXARGS];
    int i = 0;
    ptrs[i++] = P(x);
    ptrs[i++] = P(w);
    if (b)
        ptrs[i++] = P(b);
    if (r && !e->add_after)
        ptrs[i++] = P(r);
    ptrs[i++] = P(y);
    if (r && e->add_after && P(r) == P(y))
        return gn_error_set(err, "dnnl: %s: the residual must not share the output's buffer", what);
    if (ent_exec_v(d, e, ptrs, p->weights_version, what, err))
        return -1;
    return r && e->add_after ? dn_accumulate(be, y, r, err) : 0;
}

static int dn_conv2d_bwd_data(gn_backend *be, const gn_tensor *dy, const gn_tensor *w,
                              gn_tensor *dx, const gn_conv2d_params *p, gn_error *err)
{
    const char *what = "convolution backward data";
    dimpl *d = D(be);
    int64_t key[KEYLEN];
    conv_key(key, OP_CONV_BWD_D, dx, w, dy, p);
    centry *e = cache_find(d, key);
    if (!e) {
        dnnl_primitive_desc_t hint = NULL, pd = NULL;
        dnnl_memory_desc_t ax, aw, ay, ux, uw, uy;
        dnnl_dims_t st = {p->stride, p->stride}, pad = {p->pad, p->pad};
        if (!(e = ent_new(key)))
            return gn_error_set(err, "dnnl: %s: out of memory", what);
        if (md_t(&ax, dx, ATAG2(dx, dy)) || md_convw(&aw, w, p->groups, dnnl_format_tag_any) ||
            md_t(&ay, dy, ATAG2(dx, dy)) || md_t(&ux, dx, TAG(dx)) ||
            md_convw(&uw, w, p->groups, dnnl_nchw) || md_t(&uy, dy, TAG(dy))) {
            desc_fail(err, what);
            goto fail;
        }
        DN(conv_fwd_pd(&hint, d->eng, dnnl_forward_training, dx, w, dy, 0, p, NULL), what);
        DN(dc_conv_bwd_data_pd(&pd, d->eng, &ax, &aw, &ay, st, pad, hint), what);
        if (ent_arg(d, e, DNNL_ARG_DIFF_DST, &uy,
                    dc_query_md(pd, dnnl_query_diff_dst_md, 0), 0, err) ||
            ent_arg(d, e, DNNL_ARG_WEIGHTS, &uw,
                    dc_query_md(pd, dnnl_query_weights_md, 0), 0, err) ||
            ent_arg(d, e, DNNL_ARG_DIFF_SRC, &ux,
                    dc_query_md(pd, dnnl_query_diff_src_md, 0), 1, err) ||
            ent_commit(d, e, pd, what, err))
            goto fail;
        build_done(pd, hint, NULL);
        goto run;
    fail:
        build_done(pd, hint, e);
        return -1;
    }
run:;
    void *ptrs[3] = {P(dy), P(w), P(dx)};
    return ent_exec(d, e, ptrs, what, err);
}

static int dn_conv2d_bwd_weights(gn_backend *be, const gn_tensor *x, const gn_tensor *dy,
                                 gn_tensor *dw, gn_tensor *db, const gn_conv2d_params *p,
                                 gn_error *err)
{
    const char *what = "convolution backward weights";
    dimpl *d = D(be);
    int64_t key[KEYLEN];
    conv_key(key, OP_CONV_BWD_W, x, dw, dy, p);
    key[13] = db != NULL;
    centry *e = cache_find(d, key);
    if (!e) {
        dnnl_primitive_desc_t hint = NULL, pd = NULL;
        dnnl_memory_desc_t ax, aw, ay, ux, uw, ub, uy;
        dnnl_dims_t st = {p->stride, p->stride}, pad = {p->pad, p->pad};
        if (!(e = ent_new(key)))
            return gn_error_set(err, "dnnl: %s: out of memory", what);
        if (md_t(&ax, x, ATAG2(x, dy)) || md_convw(&aw, dw, p->groups, dnnl_format_tag_any) ||
            md_t(&ay, dy, ATAG2(x, dy)) || md_t(&ux, x, TAG(x)) ||
            md_convw(&uw, dw, p->groups, dnnl_nchw) || md_vec(&ub, dw->n) ||
            md_t(&uy, dy, TAG(dy))) {
            desc_fail(err, what);
            goto fail;
        }
        DN(conv_fwd_pd(&hint, d->eng, dnnl_forward_training, x, dw, dy, db != NULL, p, NULL), what);
        DN(dc_conv_bwd_weights_pd(&pd, d->eng, &ax, &aw, db ? &ub : NULL, &ay, st, pad, hint), what);
        if (ent_arg(d, e, DNNL_ARG_SRC, &ux, dc_query_md(pd, dnnl_query_src_md, 0),
                    0, err) ||
            ent_arg(d, e, DNNL_ARG_DIFF_DST, &uy,
                    dc_query_md(pd, dnnl_query_diff_dst_md, 0), 0, err) ||
            ent_arg(d, e, DNNL_ARG_DIFF_WEIGHTS, &uw,
                    dc_query_md(pd, dnnl_query_diff_weights_md, 0), 1, err) ||
            (db && ent_arg(d, e, DNNL_ARG_DIFF_BIAS, &ub,
                           dc_query_md(pd, dnnl_query_diff_weights_md, 1), 1,
                           err)) ||
            ent_commit(d, e, pd, what, err))
            goto fail;
        build_done(pd, hint, NULL);
        goto run;
    fail:
        build_done(pd, hint, e);
        return -1;
    }
run:;
    void *ptrs[4] = {P(x), P(dy), P(dw), db ? P(db) : NULL};
    return ent_exec(d, e, ptrs, what, err);
}

/* ------------------------------------------------------------------ batch norm */
static void bn_key(int64_t *k, int op, const gn_tensor *x, float eps)
{
    memset(k, 0, sizeof(int64_t) * KEYLEN);
    k[0] = op;
    k[1] = x->n, k[2] = x->c, k[3] = x->h, k[4] = x->w;
    uint32_t bits;
    memcpy(&bits, &eps, sizeof bits);
    k[5] = bits;
    k[6] = x->layout;
}

/* kind: OP_BN_TRAIN, OP_BN_INFER, OP_BN_BWD, and the fused OP_BN_RELU_TRAIN and
 * OP_BN_RELU_BWD (see "batch norm + ReLU" below: the same primitives with
 * dnnl_fuse_norm_relu and a workspace argument) */
static centry *bn_entry(dimpl *d, int kind, const gn_tensor *x, float eps, const char *what,
                        gn_error *err)
{
    int64_t key[KEYLEN];
    bn_key(key, kind, x, eps);
    centry *e = cache_find(d, key);
    if (e)
        return e;
    dnnl_primitive_desc_t hint = NULL, pd = NULL;
    dnnl_memory_desc_t ux, uv;
    const bool relu = kind == OP_BN_RELU_TRAIN || kind == OP_BN_RELU_BWD;
    const unsigned ss = dnnl_use_scale | dnnl_use_shift | (relu ? dnnl_fuse_norm_relu : 0);
    if (!(e = ent_new(key))) {
        gn_error_set(err, "dnnl: %s: out of memory", what);
        return NULL;
    }
    if (md_t(&ux, x, TAG(x)) || md_vec(&uv, x->c)) {
        desc_fail(err, what);
        goto fail;
    }
    if (kind == OP_BN_TRAIN || kind == OP_BN_RELU_TRAIN) {
        DN(dc_bn_fwd_pd(&pd, d->eng, dnnl_forward_training, &ux, eps, ss), what);
        const dnnl_memory_desc_t *ws = relu ? dc_query_md(pd, dnnl_query_workspace_md, 0) : NULL;
        if (relu && (!ws || dc_md_ndims(ws) == 0)) {
            gn_error_set(err, "dnnl: %s: no workspace in the primitive", what);
            goto fail;
        }
        if (ent_arg(d, e, DNNL_ARG_SRC, &ux, NULL, 0, err) ||
            ent_arg(d, e, DNNL_ARG_SCALE, &uv, NULL, 0, err) ||
            ent_arg(d, e, DNNL_ARG_SHIFT, &uv, NULL, 0, err) ||
            ent_arg(d, e, DNNL_ARG_DST, &ux, NULL, 1, err) ||
            ent_arg(d, e, DNNL_ARG_MEAN, &uv, NULL, 1, err) ||
            ent_arg(d, e, DNNL_ARG_VARIANCE, &uv, NULL, 1, err) ||
            (relu && ent_arg(d, e, DNNL_ARG_WORKSPACE, ws, NULL, 1, err)))
            goto fail;
    } else if (kind == OP_BN_INFER) {
        DN(dc_bn_fwd_pd(&pd, d->eng, dnnl_forward_inference, &ux, eps, ss | dnnl_use_global_stats), what);
        if (ent_arg(d, e, DNNL_ARG_SRC, &ux, NULL, 0, err) ||
            ent_arg(d, e, DNNL_ARG_SCALE, &uv, NULL, 0, err) ||
            ent_arg(d, e, DNNL_ARG_SHIFT, &uv, NULL, 0, err) ||
            ent_arg(d, e, DNNL_ARG_MEAN, &uv, NULL, 0, err) ||
            ent_arg(d, e, DNNL_ARG_VARIANCE, &uv, NULL, 0, err) ||
            ent_arg(d, e, DNNL_ARG_DST, &ux, NULL, 1, err))
            goto fail;
    } else {
        DN(dc_bn_fwd_pd(&hint, d->eng, dnnl_forward_training, &ux, eps, ss), what);
        DN(dc_bn_bwd_pd(&pd, d->eng, &ux, eps, ss, hint), what);
        /* fused: the backward reads the workspace the forward (its hint) writes: same md */
        const dnnl_memory_desc_t *ws = relu ? dc_query_md(pd, dnnl_query_workspace_md, 0) : NULL,
                                 *fws = relu ? dc_query_md(hint, dnnl_query_workspace_md, 0) : NULL;
        if (relu && (!ws || dc_md_ndims(ws) == 0 || !fws || !dc_md_equal(ws, fws))) {
            gn_error_set(err, "dnnl: %s: the backward's workspace is not the forward's", what);
            goto fail;
        }
        if (ent_arg(d, e, DNNL_ARG_SRC, &ux, NULL, 0, err) ||
            ent_arg(d, e, DNNL_ARG_DIFF_DST, &ux, NULL, 0, err) ||
            ent_arg(d, e, DNNL_ARG_SCALE, &uv, NULL, 0, err) ||
            ent_arg(d, e, DNNL_ARG_MEAN, &uv, NULL, 0, err) ||
            ent_arg(d, e, DNNL_ARG_VARIANCE, &uv, NULL, 0, err) ||
            (relu && ent_arg(d, e, DNNL_ARG_WORKSPACE, ws, NULL, 0, err)) ||
            ent_arg(d, e, DNNL_ARG_DIFF_SRC, &ux, NULL, 1, err) ||
            ent_arg(d, e, DNNL_ARG_DIFF_SCALE, &uv, NULL, 1, err) ||
            ent_arg(d, e, DNNL_ARG_DIFF_SHIFT, &uv, NULL, 1, err) ||
            (DC_BN_BWD_TAKES_SHIFT && ent_arg(d, e, DNNL_ARG_SHIFT, &uv, NULL, 0, err)))
            goto fail;
    }
    if (ent_commit(d, e, pd, what, err))
        goto fail;
    build_done(pd, hint, NULL);
    return e;
fail:
    build_done(pd, hint, e);
    return NULL;
}

/* the BN entry points: find or build the cached primitive of this kind, run it on ptrs
 * (in the order bn_entry registered the arguments) */
static int bn_exec(gn_backend *be, int kind, const gn_tensor *x, float eps, const char *what,
                   void **ptrs, gn_error *err)
{
    centry *e = bn_entry(D(be), kind, x, eps, what, err);
    return e ? ent_exec(D(be), e, ptrs, what, err) : -1;
}

static int dn_bn_fwd_train(gn_backend *be, const gn_tensor *x, const gn_tensor *gamma,
                           const gn_tensor *beta, float eps, gn_tensor *y, gn_tensor *mean,
                           gn_tensor *var, gn_error *err)
{
    void *ptrs[6] = {P(x), P(gamma), P(beta), P(y), P(mean), P(var)};
    return bn_exec(be, OP_BN_TRAIN, x, eps, "batch normalization forward training", ptrs, err);
}

static int dn_bn_fwd_infer(gn_backend *be, const gn_tensor *x, const gn_tensor *gamma,
                           const gn_tensor *beta, const gn_tensor *mean, const gn_tensor *var,
                           float eps, gn_tensor *y, gn_error *err)
{
    void *ptrs[6] = {P(x), P(gamma), P(beta), P(mean), P(var), P(y)};
    return bn_exec(be, OP_BN_INFER, x, eps, "batch normalization forward inference", ptrs, err);
}

static int dn_bn_bwd(gn_backend *be, const gn_tensor *x, const gn_tensor *dy,
                     const gn_tensor *gamma, const gn_tensor *mean, const gn_tensor *var,
                     float eps, gn_tensor *dx, gn_tensor *dgamma, gn_tensor *dbeta, gn_error *err)
{
    /* oneDNN 2.6 lists SHIFT as a required input of the backward pass when use_shift
     * is set although the math does not read it: pass gamma as a placeholder (the last
     * argument, which 3.x's entry does not have). */
    void *ptrs[9] = {P(x),  P(dy),     P(gamma),   P(mean), P(var),
                     P(dx), P(dgamma), P(dbeta), P(gamma)};
    return bn_exec(be, OP_BN_BWD, x, eps, "batch normalization backward", ptrs, err);
}

/* ------------------------------------------------------------------ batch norm + ReLU
 * Training BN fused with the ReLU that follows it (issue 21; gn_bn_relu_* in
 * gpunas/backend.h; the network decides which BN nodes use it, network_train.c).
 *
 * What: one batch_normalization primitive with dnnl_fuse_norm_relu in forward_training
 * computes y = max(0, BN(x)) and the batch mean/var, and writes a WORKSPACE (which
 * elements were > 0: oneDNN's JIT kernels keep 1 bit per element, its plain C++ ones
 * (ncsp_bnorm, nspc_bnorm: small or odd channel counts, nchw) 1 byte; the size comes
 * from the primitive descriptor, dnnl_query_workspace_md, and gn_bn_relu_workspace
 * reports it in floats).  The backward, dnnl_backward with the
 * same flags and the forward as hint, reads x, dy (w.r.t. the ReLU's output) and that
 * workspace and gives dx, dgamma, dbeta: the ReLU's backward is folded into BN's.
 * So a BN + ReLU pair costs one pass over the activations each way instead of two,
 * and the pre-activation BN(x) is never stored.  Layouts are the caller's (nchw or
 * nhwc, like the plain BN above; no reorders).  oneDNN 2.6 fuses only ReLU (slope 0)
 * into BN: swish (and sigmoid) stay separate eltwise ops.  New cache kinds
 * OP_BN_RELU_TRAIN / OP_BN_RELU_BWD, keyed like BN (shape, eps, layout), built by
 * bn_entry above.
 */
/* bytes of an entry's workspace argument (the memory created from the primitive's md) */
static size_t ent_ws_bytes(const centry *e)
{
    for (int i = 0; i < e->nargs; i++)
        if (e->a[i].arg == DNNL_ARG_WORKSPACE)
            return dc_memory_size(e->a[i].user);
    return 0;
}

static int dn_bn_relu_ws(gn_backend *be, const gn_tensor *x, float eps, size_t *numel, gn_error *err)
{
    centry *e = bn_entry(D(be), OP_BN_RELU_TRAIN, x, eps, "batch normalization + relu forward training", err);
    if (!e)
        return -1;
    *numel = (ent_ws_bytes(e) + sizeof(float) - 1) / sizeof(float);
    return 0;
}

static int dn_bn_relu_fwd_train(gn_backend *be, const gn_tensor *x, const gn_tensor *gamma,
                                const gn_tensor *beta, float eps, gn_tensor *y, gn_tensor *mean,
                                gn_tensor *var, gn_tensor *ws, gn_error *err)
{
    void *ptrs[7] = {P(x), P(gamma), P(beta), P(y), P(mean), P(var), P(ws)};
    return bn_exec(be, OP_BN_RELU_TRAIN, x, eps, "batch normalization + relu forward training", ptrs, err);
}

static int dn_bn_relu_bwd(gn_backend *be, const gn_tensor *x, const gn_tensor *dy,
                          const gn_tensor *gamma, const gn_tensor *mean, const gn_tensor *var,
                          float eps, const gn_tensor *ws, gn_tensor *dx, gn_tensor *dgamma,
                          gn_tensor *dbeta, gn_error *err)
{
    /* SHIFT: a placeholder, as in dn_bn_bwd (the last argument, 2.x only) */
    void *ptrs[10] = {P(x),  P(dy), P(gamma),  P(mean),   P(var),
                      P(ws), P(dx), P(dgamma), P(dbeta), P(gamma)};
    return bn_exec(be, OP_BN_RELU_BWD, x, eps, "batch normalization + relu backward", ptrs, err);
}

/* ------------------------------------------------------------------ eltwise */
static int dn_eltwise(gn_backend *be, int bwd, gn_eltwise k, const gn_tensor *x,
                      const gn_tensor *dy, gn_tensor *out, gn_error *err)
{
    const char *what = bwd ? "eltwise backward" : "eltwise forward";
    dimpl *d = D(be);
    int64_t key[KEYLEN] = {0};
    key[0] = bwd ? OP_ELT_BWD : OP_ELT_FWD;
    key[1] = (int64_t)gn_tensor_numel(x);
    key[2] = k;
    centry *e = cache_find(d, key);
    if (!e) {
        dnnl_primitive_desc_t hint = NULL, pd = NULL;
        dnnl_memory_desc_t ux;
        float alpha;
        dnnl_alg_kind_t alg = elt_alg(k, &alpha);
        if (!(e = ent_new(key)))
            return gn_error_set(err, "dnnl: %s: out of memory", what);
        /* shape-agnostic: elementwise over numel as [numel,1,1,1] */
        if (md_nchw(&ux, (int)gn_tensor_numel(x), 1, 1, 1, dnnl_nchw)) {
            desc_fail(err, what);
            goto fail;
        }
        if (!bwd) {
            DN(dc_elt_fwd_pd(&pd, d->eng, dnnl_forward_training, alg, &ux, alpha, 0.0f), what);
            if (ent_arg(d, e, DNNL_ARG_SRC, &ux, NULL, 0, err) ||
                ent_arg(d, e, DNNL_ARG_DST, &ux, NULL, 1, err))
                goto fail;
        } else {
            DN(dc_elt_fwd_pd(&hint, d->eng, dnnl_forward_training, alg, &ux, alpha, 0.0f), what);
            DN(dc_elt_bwd_pd(&pd, d->eng, alg, &ux, alpha, 0.0f, hint), what);
            if (ent_arg(d, e, DNNL_ARG_SRC, &ux, NULL, 0, err) ||
                ent_arg(d, e, DNNL_ARG_DIFF_DST, &ux, NULL, 0, err) ||
                ent_arg(d, e, DNNL_ARG_DIFF_SRC, &ux, NULL, 1, err))
                goto fail;
        }
        if (ent_commit(d, e, pd, what, err))
            goto fail;
        build_done(pd, hint, NULL);
        goto run;
    fail:
        build_done(pd, hint, e);
        return -1;
    }
run:
    if (!bwd) {
        void *ptrs[2] = {P(x), P(out)};
        return ent_exec(d, e, ptrs, what, err);
    }
    void *ptrs[3] = {P(x), P(dy), P(out)};
    return ent_exec(d, e, ptrs, what, err);
}

static int dn_eltwise_fwd(gn_backend *be, gn_eltwise k, const gn_tensor *x, gn_tensor *y,
                          gn_error *err)
{
    return dn_eltwise(be, 0, k, x, NULL, y, err);
}

static int dn_eltwise_bwd(gn_backend *be, gn_eltwise k, const gn_tensor *x, const gn_tensor *dy,
                          gn_tensor *dx, gn_error *err)
{
    return dn_eltwise(be, 1, k, x, dy, dx, err);
}

/* ------------------------------------------------------------------ global average pool */
static int dn_gap(gn_backend *be, int bwd, const gn_tensor *big, gn_tensor *bigout,
                  const gn_tensor *small, gn_tensor *smallout, gn_error *err)
{
    /* fwd: big = x, smallout = y.  bwd: small = dy, bigout = dx. */
    const char *what = bwd ? "pooling backward" : "pooling forward";
    dimpl *d = D(be);
    const gn_tensor *shape = bwd ? bigout : big;
    int64_t key[KEYLEN] = {0};
    key[0] = bwd ? OP_GAP_BWD : OP_GAP_FWD;
    key[1] = shape->n, key[2] = shape->c, key[3] = shape->h, key[4] = shape->w;
    key[5] = shape->layout;
    centry *e = cache_find(d, key);
    if (!e) {
        dnnl_primitive_desc_t hint = NULL, pd = NULL;
        dnnl_memory_desc_t ux, uy;
        dnnl_dims_t st = {1, 1}, ker = {shape->h, shape->w}, pad = {0, 0};
        if (!(e = ent_new(key)))
            return gn_error_set(err, "dnnl: %s: out of memory", what);
        if (md_t(&ux, shape, TAG(shape)) || md_nchw(&uy, shape->n, shape->c, 1, 1, TAG(shape))) {
            desc_fail(err, what);
            goto fail;
        }
        const dnnl_alg_kind_t alg = dnnl_pooling_avg_exclude_padding;
        if (!bwd) {
            DN(dc_pool_fwd_pd(&pd, d->eng, dnnl_forward_training, alg, &ux, &uy, st, ker, pad), what);
            if (ent_arg(d, e, DNNL_ARG_SRC, &ux, NULL, 0, err) ||
                ent_arg(d, e, DNNL_ARG_DST, &uy, NULL, 1, err))
                goto fail;
        } else {
            DN(dc_pool_fwd_pd(&hint, d->eng, dnnl_forward_training, alg, &ux, &uy, st, ker, pad), what);
            DN(dc_pool_bwd_pd(&pd, d->eng, alg, &ux, &uy, st, ker, pad, hint), what);
            if (ent_arg(d, e, DNNL_ARG_DIFF_DST, &uy, NULL, 0, err) ||
                ent_arg(d, e, DNNL_ARG_DIFF_SRC, &ux, NULL, 1, err))
                goto fail;
        }
        if (ent_commit(d, e, pd, what, err))
            goto fail;
        build_done(pd, hint, NULL);
        goto run;
    fail:
        build_done(pd, hint, e);
        return -1;
    }
run:;
    void *ptrs[2];
    if (!bwd)
        ptrs[0] = P(big), ptrs[1] = P(smallout);
    else
        ptrs[0] = P(small), ptrs[1] = P(bigout);
    return ent_exec(d, e, ptrs, what, err);
}

static int dn_gap_fwd(gn_backend *be, const gn_tensor *x, gn_tensor *y, gn_error *err)
{
    return dn_gap(be, 0, x, NULL, NULL, y, err);
}

static int dn_gap_bwd(gn_backend *be, const gn_tensor *dy, gn_tensor *dx, gn_error *err)
{
    return dn_gap(be, 1, NULL, dx, dy, NULL, err);
}

/* ------------------------------------------------------------------ binary */
/* dst = src0 (op) src1, src0/dst dims (n,c,h,w); src1 dims s1 (broadcast where 1). */
static int dn_binary(gn_backend *be, dnnl_alg_kind_t alg, const float *src0, const float *src1,
                     float *dst, const int *dims, const int *s1, gn_layout layout, gn_error *err)
{
    const char *what = "binary";
    dimpl *d = D(be);
    int64_t key[KEYLEN] = {0};
    key[0] = OP_BINARY;
    key[1] = alg;
    for (int i = 0; i < 4; i++)
        key[2 + i] = dims[i], key[6 + i] = s1[i];
    key[10] = layout;
    centry *e = cache_find(d, key);
    if (!e) {
        dnnl_primitive_desc_t pd = NULL;
        dnnl_memory_desc_t u0, u1;
        if (!(e = ent_new(key)))
            return gn_error_set(err, "dnnl: %s: out of memory", what);
        dnnl_format_tag_t tag = layout == GN_LAYOUT_NHWC ? dnnl_nhwc : dnnl_nchw;
        if (md_nchw(&u0, dims[0], dims[1], dims[2], dims[3], tag) ||
            md_nchw(&u1, s1[0], s1[1], s1[2], s1[3], s1[2] * s1[3] == 1 ? dnnl_nchw : tag)) {
            desc_fail(err, what);
            goto fail;
        }
        DN(dc_binary_pd(&pd, d->eng, alg, &u0, &u1, &u0), what);
        if (ent_arg(d, e, DNNL_ARG_SRC_0, &u0, NULL, 0, err) ||
            ent_arg(d, e, DNNL_ARG_SRC_1, &u1, NULL, 0, err) ||
            ent_arg(d, e, DNNL_ARG_DST, &u0, NULL, 1, err) || ent_commit(d, e, pd, what, err))
            goto fail;
        build_done(pd, NULL, NULL);
        goto run;
    fail:
        build_done(pd, NULL, e);
        return -1;
    }
run:;
    void *ptrs[3] = {(void *)src0, (void *)src1, dst};
    return ent_exec(d, e, ptrs, what, err);
}

static int dn_chscale_fwd(gn_backend *be, const gn_tensor *x, const gn_tensor *s, gn_tensor *y,
                          gn_error *err)
{
    int dims[4] = {x->n, x->c, x->h, x->w}, s1[4] = {x->n, x->c, 1, 1};
    return dn_binary(be, dnnl_binary_mul, x->data, s->data, y->data, dims, s1, x->layout, err);
}

static int dn_chscale_bwd(gn_backend *be, const gn_tensor *x, const gn_tensor *s,
                          const gn_tensor *dy, gn_tensor *dx, gn_tensor *ds, gn_error *err)
{
    /* ds first (a plain loop; no oneDNN primitive fuses mul + spatial sum) */
    if (ds && x->layout == GN_LAYOUT_NHWC) {
        const int C = x->c;
        const size_t HW = (size_t)x->h * x->w;
        for (int n = 0; n < x->n; n++) {
            double *acc = calloc(C, sizeof *acc);
            if (!acc)
                return gn_error_set(err, "dnnl: channel scale backward: out of memory");
            const float *xp = x->data + (size_t)n * HW * C, *gp = dy->data + (size_t)n * HW * C;
            for (size_t i = 0; i < HW; i++)
                for (int c = 0; c < C; c++)
                    acc[c] += (double)xp[i * C + c] * gp[i * C + c];
            for (int c = 0; c < C; c++)
                ds->data[(size_t)n * C + c] = (float)acc[c];
            free(acc);
        }
    } else if (ds && gn__ref_chscale_bwd(be, x, s, dy, NULL, ds, err))
        return -1;
    if (dx)
        return dn_chscale_fwd(be, dy, s, dx, err);
    return 0;
}

static int dn_add(gn_backend *be, const gn_tensor *a, const gn_tensor *b, gn_tensor *y,
                  gn_error *err)
{
    int dims[4] = {a->n, a->c, a->h, a->w};
    return dn_binary(be, dnnl_binary_add, a->data, b->data, y->data, dims, dims, a->layout, err);
}

static int dn_accumulate(gn_backend *be, gn_tensor *y, const gn_tensor *x, gn_error *err)
{
    int dims[4] = {y->n, y->c, y->h, y->w};
    return dn_binary(be, dnnl_binary_add, y->data, x->data, y->data, dims, dims, y->layout, err);
}

/* A per-sample mask (drop-path) is a scale per sample: oneDNN 2.6 has no JIT kernel for a
 * binary op broadcast over c, h and w (it takes "ref:any", about 20 ms for a 64x64x4x4
 * tensor, measured with `gpunas train --profile-ops`: 39% of an fmnist-small training
 * step), so that case is a plain loop; a sample is one contiguous block in both layouts. */
static int dn_mul_mask(gn_backend *be, const gn_tensor *x, const gn_tensor *mask, gn_tensor *y,
                       gn_error *err)
{
    int dims[4] = {x->n, x->c, x->h, x->w};
    if (gn_tensor_numel(mask) == gn_tensor_numel(x))
        return dn_binary(be, dnnl_binary_mul, x->data, mask->data, y->data, dims, dims, x->layout, err);
    const size_t per = (size_t)x->c * x->h * x->w;
    for (int n = 0; n < x->n; n++) {
        const float m = mask->data[n], *xs = x->data + (size_t)n * per;
        float *ys = y->data + (size_t)n * per;
        for (size_t i = 0; i < per; i++)
            ys[i] = xs[i] * m;
    }
    return 0;
}

/* ------------------------------------------------------------------ linear (dnnl_sgemm) */
static int dn_linear_fwd(gn_backend *be, const gn_tensor *x, const gn_tensor *w,
                         const gn_tensor *b, gn_tensor *y, gn_error *err)
{
    const int N = x->n, IN = w->c, OUT = w->n;
    float beta = 0.0f;
    if (b) {
        for (int n = 0; n < N; n++)
            memcpy(y->data + (size_t)n * OUT, b->data, sizeof(float) * OUT);
        beta = 1.0f;
    }
    dnnl_status_t st =
        dnnl_sgemm('N', 'T', N, OUT, IN, 1.0f, x->data, IN, w->data, IN, beta, y->data, OUT);
    return st == dnnl_success ? 0 : derr(err, "sgemm (linear forward)", st);
}

static int dn_linear_bwd(gn_backend *be, const gn_tensor *x, const gn_tensor *w,
                         const gn_tensor *dy, gn_tensor *dx, gn_tensor *dw, gn_tensor *db,
                         gn_error *err)
{
    const int N = x->n, IN = w->c, OUT = w->n;
    dnnl_status_t st;
    if (dx) {
        st = dnnl_sgemm('N', 'N', N, IN, OUT, 1.0f, dy->data, OUT, w->data, IN, 0.0f, dx->data,
                        IN);
        if (st != dnnl_success)
            return derr(err, "sgemm (linear backward data)", st);
    }
    st = dnnl_sgemm('T', 'N', OUT, IN, N, 1.0f, dy->data, OUT, x->data, IN, 0.0f, dw->data, IN);
    if (st != dnnl_success)
        return derr(err, "sgemm (linear backward weights)", st);
    if (db)
        for (int o = 0; o < OUT; o++) {
            double s = 0.0;
            for (int n = 0; n < N; n++)
                s += dy->data[(size_t)n * OUT + o];
            db->data[o] = (float)s;
        }
    return 0;
}

/* ------------------------------------------------------------------ misc */
static int dn_set_threads(gn_backend *be, int n, gn_error *err)
{
    dimpl *d = D(be);
    void (*set)(int) = dc_threads_setter();
    if (!set)
        return gn_error_set(err, "dnnl: set_threads: OpenMP (or TBB) runtime not found");
    if (n <= 0)
        n = gn_threads_available(100, NULL);
    if (d->threads && n != d->threads)
        cache_clear(d);
    d->threads = n;
    set(n);
    return 0;
}

/* The CPUs the process may use, captured when the first dnnl backend is created,
 * before anything could pin the calling thread (a backend created later, while a
 * measurement has the thread pinned, must not take the one CPU for the whole). */
static pthread_once_t allowed_once = PTHREAD_ONCE_INIT;
static cpu_set_t allowed_mask;

static void capture_allowed(void)
{
    if (sched_getaffinity(0, sizeof allowed_mask, &allowed_mask) != 0 || CPU_COUNT(&allowed_mask) == 0) {
        CPU_ZERO(&allowed_mask);
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        for (long c = 0; c < n && c < CPU_SETSIZE; c++)
            CPU_SET(c, &allowed_mask);
    }
}

/* Pinning (gpunas/backend.h).  GOMP_parallel(fn, data, num_threads, flags) is
 * libgomp's entry for `#pragma omp parallel` (stable ABI since GCC 4.9). */
typedef struct {
    cpu_set_t allowed; /* the process's mask when the backend was created */
    int on, ncpu, cpus[CPU_SETSIZE];
    int (*thread_num)(void);
    volatile int placed, failed;
} pin_job;

static void pin_one(void *arg)
{
    pin_job *j = arg;
    int t = j->thread_num();
    cpu_set_t m;
    if (j->on) {
        CPU_ZERO(&m);
        CPU_SET(j->cpus[t % j->ncpu], &m);
    } else
        m = j->allowed;
    if (sched_setaffinity(0, sizeof m, &m) == 0)
        __atomic_add_fetch(&j->placed, 1, __ATOMIC_RELAXED);
    else
        __atomic_add_fetch(&j->failed, 1, __ATOMIC_RELAXED);
}

static int dn_pin_threads(gn_backend *be, int on, int *pinned, gn_error *err)
{
    dimpl *d = D(be);
    void (*par)(void (*)(void *), void *, unsigned, unsigned) =
        (void (*)(void (*)(void *), void *, unsigned, unsigned))dlsym(RTLD_DEFAULT, "GOMP_parallel");
    int (*maxthr)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "omp_get_max_threads");
    pin_job *j = calloc(1, sizeof *j);
    if (!j)
        return gn_error_set(err, "dnnl: pin threads: out of memory");
    j->thread_num = (int (*)(void))dlsym(RTLD_DEFAULT, "omp_get_thread_num");
    if (!par || !maxthr || !j->thread_num) {
        free(j);
        return gn_error_set(err, "dnnl: pin threads: OpenMP runtime (libgomp) not found");
    }
    j->on = on;
    j->allowed = d->allowed;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &d->allowed))
            j->cpus[j->ncpu++] = c;
    if (j->ncpu == 0) {
        free(j);
        return gn_error_set(err, "dnnl: pin threads: empty CPU mask");
    }
    int n = maxthr();
    par(pin_one, j, (unsigned)n, 0);
    int placed = j->placed, failed = j->failed;
    free(j);
    if (pinned)
        *pinned = placed;
    if (failed)
        return gn_error_set(err, "dnnl: pin threads: sched_setaffinity failed for %d of %d threads", failed, n);
    return 0;
}

static void dn_destroy(gn_backend *be)
{
    dimpl *d = D(be);
    if (d) {
        cache_clear(d);
        if (d->strm)
            dnnl_stream_destroy(d->strm);
        if (d->eng)
            dnnl_engine_destroy(d->eng);
        free(d);
    }
    free(be);
}

static const gn_backend_ops dnnl_ops = {
    .alloc = gn__ref_alloc,
    .free = gn__ref_free,
    .copy_in = gn__ref_copy,
    .copy_out = gn__ref_copy,
    .copy = gn__ref_copy,
    .fill = gn__ref_fill,
    .set_threads = dn_set_threads,
    .pin_threads = dn_pin_threads,
    .destroy = dn_destroy,
    .conv2d_fwd = dn_conv2d_fwd,
    .conv2d_bwd_data = dn_conv2d_bwd_data,
    .conv2d_bwd_weights = dn_conv2d_bwd_weights,
    .bn_fwd_train = dn_bn_fwd_train,
    .bn_fwd_infer = dn_bn_fwd_infer,
    .bn_bwd = dn_bn_bwd,
    .bn_update_running = gn__ref_bn_update_running,
    .bn_relu_ws = dn_bn_relu_ws,
    .bn_relu_fwd_train = dn_bn_relu_fwd_train,
    .bn_relu_bwd = dn_bn_relu_bwd,
    .eltwise_fwd = dn_eltwise_fwd,
    .eltwise_bwd = dn_eltwise_bwd,
    .gap_fwd = dn_gap_fwd,
    .gap_bwd = dn_gap_bwd,
    .chscale_fwd = dn_chscale_fwd,
    .chscale_bwd = dn_chscale_bwd,
    .add = dn_add,
    .accumulate = dn_accumulate,
    .mul_mask = dn_mul_mask,
    .linear_fwd = dn_linear_fwd,
    .linear_bwd = dn_linear_bwd,
    .softmax_xent = gn__ref_softmax_xent,
};

int gn__backend_dnnl_new(gn_backend **out, gn_error *err)
{
    gn_backend *be = calloc(1, sizeof *be);
    dimpl *d = calloc(1, sizeof *d);
    if (!be || !d) {
        free(be);
        free(d);
        return gn_error_set(err, "backend dnnl: out of memory");
    }
    be->name = "dnnl";
    be->caps = GN_CAP_NHWC;
    be->ops = &dnnl_ops;
    be->impl = d;
    pthread_once(&allowed_once, capture_allowed);
    d->allowed = allowed_mask;
    dnnl_status_t st = dnnl_engine_create(&d->eng, dnnl_cpu, 0);
    if (st == dnnl_success)
        st = dnnl_stream_create(&d->strm, d->eng, dnnl_stream_default_flags);
    if (st != dnnl_success) {
        dn_destroy(be);
        return derr(err, "engine/stream create", st);
    }
    *out = be;
    return 0;
}
