/*
 * test_nn_ops.c — correctness of the op-level compute backends (gpunas/backend.h).
 *
 * For every op, on BOTH backends ("ref" and "dnnl"):
 *   1. finite-difference gradient check: L = sum(out .* g) for a fixed random g;
 *      numeric dL/dp_i by central differences (step h, fp32 forward, L summed in
 *      double) against the op's backward, on up to FD_POINTS entries of each input.
 *      Pass: |num - ana| <= FD_ATOL + FD_RTOL * max(|num|, |ana|)
 *      with FD_RTOL = 1e-2, FD_ATOL = 2e-3 (h = 1e-2; inputs in [-1,1]; ReLU inputs
 *      kept >= 0.1 away from the kink).
 *   2. dnnl == ref, forward outputs and every backward output, same inputs and g:
 *      max |dnnl - ref| <= XB_TOL * max(1, max |ref|) per tensor, XB_TOL = 1e-4.
 *   3. fused inference conv y = act(conv(x)+b) + r equals the unfused composition
 *      (conv fwd, eltwise fwd, add) on the same backend within XB_TOL, and dnnl
 *      fused equals ref fused within XB_TOL.
 * Plus: argument/shape errors come back as messages (no abort), in-place forms
 * documented as allowed, BN running-stat update, loss values on known inputs.
 *
 * Conv cases cover kernel 1/3/5/7, stride 1/2, pad 0/1/2/3, groups 1, 2, 4 and
 * depthwise (groups == C), with and without bias; the larger cases (>= 16 channels)
 * make oneDNN choose blocked layouts so its reorder path is exercised.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gpunas/backend.h"
#include "gpunas/tensor.h"
#include "testutil.h"

#define FD_RTOL 1e-2
#define FD_ATOL 2e-3
#define FD_H 1e-2
#define FD_POINTS 12
#define XB_TOL 1e-4

static gn_backend *g_be[2]; /* ref, dnnl */
static const char *g_names[2] = {"ref", "dnnl"};

/* ------------------------------------------------------------------ helpers */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static void rng_seed(uint64_t s) { rng_state = s * 0x9e3779b97f4a7c15ULL + 1; }
static double urand(void) /* [0,1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}
static float *rand_vec(size_t n, float lo, float hi)
{
    float *v = malloc(sizeof(float) * (n ? n : 1));
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(lo + (hi - lo) * urand());
    return v;
}
/* uniform in [-1,-0.1] U [0.1,1]: away from the ReLU kink */
static float *rand_vec_nokink(size_t n)
{
    float *v = rand_vec(n, 0.1f, 1.0f);
    for (size_t i = 0; i < n; i++)
        if (urand() < 0.5)
            v[i] = -v[i];
    return v;
}

static gn_tensor mk(gn_backend *be, int n, int c, int h, int w, const float *src)
{
    gn_tensor t;
    gn_error err;
    if (gn_tensor_alloc(&t, be, n, c, h, w, &err) != 0)
        fail_msg("alloc: %s", err.msg);
    if (src && gn_tensor_from_host(&t, src, &err) != 0)
        fail_msg("from_host: %s", err.msg);
    return t;
}
static void get(const gn_tensor *t, float *dst)
{
    gn_error err;
    if (gn_tensor_to_host(t, dst, &err) != 0)
        fail_msg("to_host: %s", err.msg);
}
#define OK(call)                                                                               \
    do {                                                                                       \
        gn_error err_ = {{0}};                                                                 \
        if ((call) != 0)                                                                       \
            fail_msg("%s failed: %s", #call, err_.msg);                                        \
    } while (0)
/* the call must use `&err_` as its error argument */
#define E (&err_)

/* ------------------------------------------------------------------ op cases */
#define MAXIN 4
typedef struct op_case op_case;
struct op_case {
    const char *name;
    gn_backend *be;
    int nin;
    float *in[MAXIN];
    size_t in_len[MAXIN];
    const char *in_name[MAXIN];
    bool no_grad[MAXIN]; /* input not differentiated (e.g. no FD) */
    size_t out_len;
    void (*fwd)(op_case *c, float *out);
    /* gin[i] host buffers of in_len[i]; fill analytic dL/din[i] for gout */
    void (*bwd)(op_case *c, const float *gout, float **gin);
    const void *p; /* op parameters */
};

static double loss_of(op_case *c, const float *g, float *out)
{
    c->fwd(c, out);
    double L = 0;
    for (size_t j = 0; j < c->out_len; j++)
        L += (double)out[j] * g[j];
    return L;
}

static void case_free_grads(op_case *c, float **gin)
{
    for (int i = 0; i < c->nin; i++)
        free(gin[i]);
}

static void case_alloc_grads(op_case *c, float **gin)
{
    for (int i = 0; i < c->nin; i++) {
        gin[i] = calloc(c->in_len[i] ? c->in_len[i] : 1, sizeof(float));
        assert_non_null(gin[i]);
    }
}

/* FD check on backend be */
static void fd_check(op_case *c, gn_backend *be, uint64_t seed)
{
    c->be = be;
    rng_seed(seed);
    float *g = rand_vec(c->out_len, -1, 1);
    float *out = malloc(sizeof(float) * c->out_len);
    float *gin[MAXIN] = {0};
    case_alloc_grads(c, gin);
    c->bwd(c, g, gin);
    for (int i = 0; i < c->nin; i++) {
        if (c->no_grad[i])
            continue;
        size_t n = c->in_len[i];
        size_t pts = n < FD_POINTS ? n : FD_POINTS;
        for (size_t k = 0; k < pts; k++) {
            size_t idx = pts == n ? k : (size_t)(urand() * n);
            float save = c->in[i][idx];
            c->in[i][idx] = save + (float)FD_H;
            double lp = loss_of(c, g, out);
            c->in[i][idx] = save - (float)FD_H;
            double lm = loss_of(c, g, out);
            c->in[i][idx] = save;
            double num = (lp - lm) / (2 * FD_H), ana = gin[i][idx];
            if (fabs(num - ana) > FD_ATOL + FD_RTOL * fmax(fabs(num), fabs(ana)))
                fail_msg("%s [%s]: d/d%s[%zu]: numeric %.6g vs analytic %.6g", c->name, gn_backend_name(be),
                         c->in_name[i], idx, num, ana);
        }
    }
    case_free_grads(c, gin);
    free(out);
    free(g);
}

/* dnnl vs ref: forward output and all input gradients */
static void xb_check(op_case *c, uint64_t seed)
{
    rng_seed(seed);
    float *g = rand_vec(c->out_len, -1, 1);
    float *out[2];
    float *gin[2][MAXIN] = {{0}};
    for (int b = 0; b < 2; b++) {
        c->be = g_be[b];
        out[b] = malloc(sizeof(float) * c->out_len);
        c->fwd(c, out[b]);
        case_alloc_grads(c, gin[b]);
        c->bwd(c, g, gin[b]);
    }
    char what[160];
    snprintf(what, sizeof what, "%s: dnnl vs ref forward", c->name);
    tu_assert_close(what, out[1], out[0], c->out_len, XB_TOL);
    for (int i = 0; i < c->nin; i++) {
        if (c->no_grad[i])
            continue;
        snprintf(what, sizeof what, "%s: dnnl vs ref d/d%s", c->name, c->in_name[i]);
        tu_assert_close(what, gin[1][i], gin[0][i], c->in_len[i], XB_TOL);
    }
    for (int b = 0; b < 2; b++) {
        free(out[b]);
        case_free_grads(c, gin[b]);
    }
    free(g);
}

static void check_case(op_case *c, uint64_t seed, bool fd)
{
    if (fd)
        for (int b = 0; b < 2; b++)
            fd_check(c, g_be[b], seed + 17 * b);
    xb_check(c, seed + 1000);
}

static void case_free_inputs(op_case *c)
{
    for (int i = 0; i < c->nin; i++)
        free(c->in[i]);
}

/* ------------------------------------------------------------------ convolution */
typedef struct {
    int n, c, h, w, o, k, s, p, g;
    bool bias;
    bool fd; /* run the FD check (small cases) */
} conv_cfg;

static int cv_oh(const conv_cfg *q) { return gn_conv2d_out_size(q->h, q->k, q->s, q->p); }
static int cv_ow(const conv_cfg *q) { return gn_conv2d_out_size(q->w, q->k, q->s, q->p); }

static void conv_fwd(op_case *c, float *out)
{
    const conv_cfg *q = c->p;
    gn_backend *be = c->be;
    gn_conv2d_params p = {.stride = q->s, .pad = q->p, .groups = q->g};
    gn_tensor x = mk(be, q->n, q->c, q->h, q->w, c->in[0]);
    gn_tensor w = mk(be, q->o, q->c / q->g, q->k, q->k, c->in[1]);
    gn_tensor b = {0};
    if (q->bias)
        b = mk(be, q->o, 1, 1, 1, c->in[2]);
    gn_tensor y = mk(be, q->n, q->o, cv_oh(q), cv_ow(q), NULL);
    OK(gn_conv2d_fwd(be, &x, &w, q->bias ? &b : NULL, &y, &p, E));
    get(&y, out);
    gn_tensor_free(&x), gn_tensor_free(&w), gn_tensor_free(&b), gn_tensor_free(&y);
}

static void conv_bwd(op_case *c, const float *gout, float **gin)
{
    const conv_cfg *q = c->p;
    gn_backend *be = c->be;
    gn_conv2d_params p = {.stride = q->s, .pad = q->p, .groups = q->g};
    gn_tensor x = mk(be, q->n, q->c, q->h, q->w, c->in[0]);
    gn_tensor w = mk(be, q->o, q->c / q->g, q->k, q->k, c->in[1]);
    gn_tensor dy = mk(be, q->n, q->o, cv_oh(q), cv_ow(q), gout);
    gn_tensor dx = mk(be, q->n, q->c, q->h, q->w, NULL);
    gn_tensor dw = mk(be, q->o, q->c / q->g, q->k, q->k, NULL);
    gn_tensor db = {0};
    if (q->bias)
        db = mk(be, q->o, 1, 1, 1, NULL);
    /* poison outputs: backward ops must overwrite, not accumulate */
    OK(gn_tensor_fill(&dx, 123.0f, E));
    OK(gn_tensor_fill(&dw, -7.0f, E));
    OK(gn_conv2d_bwd_data(be, &dy, &w, &dx, &p, E));
    OK(gn_conv2d_bwd_weights(be, &x, &dy, &dw, q->bias ? &db : NULL, &p, E));
    get(&dx, gin[0]);
    get(&dw, gin[1]);
    if (q->bias)
        get(&db, gin[2]);
    gn_tensor_free(&x), gn_tensor_free(&w), gn_tensor_free(&dy);
    gn_tensor_free(&dx), gn_tensor_free(&dw), gn_tensor_free(&db);
}

static const conv_cfg conv_cases[] = {
    /* n  c  h  w   o  k  s  p  g  bias  fd */
    {2, 4, 7, 7, 8, 3, 1, 1, 1, true, true},    /* dense 3x3 */
    {2, 4, 7, 7, 6, 3, 2, 1, 2, true, true},    /* grouped (2), stride 2 */
    {2, 6, 6, 6, 6, 3, 1, 1, 6, true, true},    /* depthwise 3x3 */
    {2, 6, 7, 7, 6, 5, 2, 2, 6, false, true},   /* depthwise 5x5 stride 2 */
    {2, 4, 5, 5, 8, 1, 1, 0, 1, false, true},   /* pointwise */
    {2, 4, 6, 6, 4, 1, 2, 0, 1, true, true},    /* 1x1 stride 2 */
    {1, 3, 9, 9, 8, 3, 2, 0, 1, true, true},    /* pad 0 stride 2, odd size */
    {2, 8, 5, 5, 8, 7, 1, 3, 8, true, true},    /* depthwise 7x7 */
    {2, 4, 6, 6, 8, 5, 1, 2, 1, false, true},   /* dense 5x5 */
    {2, 8, 6, 6, 16, 3, 1, 1, 4, true, true},   /* groups 4 */
    {2, 4, 8, 8, 6, 3, 2, 2, 2, true, true},    /* pad 2, stride 2, groups 2 */
    {2, 24, 1, 1, 6, 1, 1, 0, 1, true, true},   /* SE reduce on 1x1 spatial */
    {2, 6, 1, 1, 24, 1, 1, 0, 1, true, true},   /* SE expand on 1x1 spatial */
    /* larger: blocked layouts in oneDNN, cross-backend only */
    {2, 32, 14, 14, 48, 3, 1, 1, 1, true, false},
    {2, 32, 14, 14, 32, 3, 2, 1, 32, true, false},
    {2, 48, 9, 9, 48, 5, 1, 2, 48, false, false},
    {2, 32, 8, 8, 64, 1, 1, 0, 1, true, false},
    {2, 64, 8, 8, 32, 1, 1, 0, 2, false, false},
    {2, 3, 32, 32, 32, 3, 2, 1, 1, true, false}, /* stem-like */
    {2, 16, 12, 12, 64, 3, 2, 1, 1, true, false},
};

static void conv_case_init(op_case *c, const conv_cfg *q)
{
    memset(c, 0, sizeof *c);
    c->name = "conv2d";
    c->nin = q->bias ? 3 : 2;
    c->in_len[0] = (size_t)q->n * q->c * q->h * q->w;
    c->in_len[1] = (size_t)q->o * (q->c / q->g) * q->k * q->k;
    c->in_len[2] = (size_t)q->o;
    c->in_name[0] = "x", c->in_name[1] = "w", c->in_name[2] = "b";
    for (int i = 0; i < c->nin; i++)
        c->in[i] = rand_vec(c->in_len[i], -1, 1);
    c->out_len = (size_t)q->n * q->o * cv_oh(q) * cv_ow(q);
    c->fwd = conv_fwd;
    c->bwd = conv_bwd;
    c->p = q;
}

static void test_conv2d(void **state)
{
    for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++) {
        const conv_cfg *q = &conv_cases[i];
        char name[128];
        snprintf(name, sizeof name, "conv2d[%zu] c%d->%d k%d s%d p%d g%d %dx%d", i, q->c, q->o,
                 q->k, q->s, q->p, q->g, q->h, q->w);
        op_case c;
        rng_seed(100 + i);
        conv_case_init(&c, q);
        c.name = name;
        check_case(&c, 200 + i, q->fd);
        case_free_inputs(&c);
    }
}

/* repeated calls (cache hits) give identical results; different shapes coexist */
static void test_conv2d_cache_reuse(void **state)
{
    const conv_cfg *q = &conv_cases[13];
    op_case c;
    rng_seed(7);
    conv_case_init(&c, q);
    c.be = g_be[1];
    float *a = malloc(sizeof(float) * c.out_len), *b = malloc(sizeof(float) * c.out_len);
    conv_fwd(&c, a);
    for (int k = 0; k < 3; k++) {
        c.be = g_be[1];
        conv_fwd(&c, b);
        assert_memory_equal(a, b, sizeof(float) * c.out_len);
    }
    free(a), free(b);
    case_free_inputs(&c);
}

/* fused act(conv+b)+r vs unfused, both backends, and dnnl fused vs ref fused */
static void test_conv2d_fused(void **state)
{
    const gn_eltwise acts[] = {GN_ELT_IDENTITY, GN_ELT_RELU, GN_ELT_SILU, GN_ELT_SIGMOID};
    const int picks[] = {0, 2, 4, 9, 12, 13, 14, 16};
    for (size_t pi = 0; pi < sizeof picks / sizeof picks[0]; pi++) {
        const conv_cfg *q = &conv_cases[picks[pi]];
        const int OH = cv_oh(q), OW = cv_ow(q);
        const size_t ny = (size_t)q->n * q->o * OH * OW;
        rng_seed(300 + pi);
        float *hx = rand_vec((size_t)q->n * q->c * q->h * q->w, -1, 1);
        float *hw = rand_vec((size_t)q->o * (q->c / q->g) * q->k * q->k, -1, 1);
        float *hb = rand_vec((size_t)q->o, -1, 1);
        float *hr = rand_vec(ny, -1, 1);
        float *fused[2] = {malloc(ny * 4), malloc(ny * 4)}, *unf = malloc(ny * 4);
        gn_conv2d_params p = {.stride = q->s, .pad = q->p, .groups = q->g};
        for (size_t ai = 0; ai < 4; ai++)
            for (int with_r = 0; with_r < 2; with_r++)
                for (int with_b = 0; with_b < 2; with_b++) {
                    for (int bi = 0; bi < 2; bi++) {
                        gn_backend *be = g_be[bi];
                        gn_tensor x = mk(be, q->n, q->c, q->h, q->w, hx);
                        gn_tensor w = mk(be, q->o, q->c / q->g, q->k, q->k, hw);
                        gn_tensor b = mk(be, q->o, 1, 1, 1, hb);
                        gn_tensor r = mk(be, q->n, q->o, OH, OW, hr);
                        gn_tensor y = mk(be, q->n, q->o, OH, OW, NULL);
                        gn_tensor t = mk(be, q->n, q->o, OH, OW, NULL);
                        OK(gn_tensor_fill(&y, 55.0f, E)); /* must be overwritten */
                        OK(gn_conv2d_fwd_fused(be, &x, &w, with_b ? &b : NULL, acts[ai],
                                               with_r ? &r : NULL, &y, &p, E));
                        get(&y, fused[bi]);
                        /* unfused */
                        OK(gn_conv2d_fwd(be, &x, &w, with_b ? &b : NULL, &t, &p, E));
                        if (acts[ai] != GN_ELT_IDENTITY)
                            OK(gn_eltwise_fwd(be, acts[ai], &t, &t, E));
                        if (with_r)
                            OK(gn_add(be, &t, &r, &t, E));
                        get(&t, unf);
                        char what[160];
                        snprintf(what, sizeof what, "fused conv [%s] case %d act %s r%d b%d",
                                 gn_backend_name(be), picks[pi], gn_eltwise_name(acts[ai]), with_r, with_b);
                        tu_assert_close(what, fused[bi], unf, ny, XB_TOL);
                        gn_tensor_free(&x), gn_tensor_free(&w), gn_tensor_free(&b);
                        gn_tensor_free(&r), gn_tensor_free(&y), gn_tensor_free(&t);
                    }
                    char what[160];
                    snprintf(what, sizeof what, "fused conv dnnl vs ref case %d act %s r%d b%d",
                             picks[pi], gn_eltwise_name(acts[ai]), with_r, with_b);
                    tu_assert_close(what, fused[1], fused[0], ny, XB_TOL);
                }
        free(hx), free(hw), free(hb), free(hr), free(fused[0]), free(fused[1]), free(unf);
    }
}

/* ------------------------------------------------------------------ channels-last inference ops */
static float *to_nhwc(const float *a, int n, int c, int h, int w)
{
    float *o = malloc(sizeof(float) * (size_t)n * c * h * w);
    assert_non_null(o);
    for (int in = 0; in < n; in++)
        for (int ic = 0; ic < c; ic++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    o[(((size_t)in * h + y) * w + x) * c + ic] = a[(((size_t)in * c + ic) * h + y) * w + x];
    return o;
}

static gn_tensor mk_nhwc(gn_backend *be, int n, int c, int h, int w, const float *nchw)
{
    float *t = nchw ? to_nhwc(nchw, n, c, h, w) : NULL;
    gn_tensor r = mk(be, n, c, h, w, t);
    r.layout = GN_LAYOUT_NHWC;
    free(t);
    return r;
}

/* get an NHWC tensor back as NCHW host data */
static void get_nchw(const gn_tensor *t, float *dst)
{
    size_t m = gn_tensor_numel(t);
    float *tmp = malloc(sizeof(float) * m);
    assert_non_null(tmp);
    get(t, tmp);
    for (int in = 0; in < t->n; in++)
        for (int ic = 0; ic < t->c; ic++)
            for (int y = 0; y < t->h; y++)
                for (int x = 0; x < t->w; x++)
                    dst[(((size_t)in * t->c + ic) * t->h + y) * t->w + x] =
                        tmp[(((size_t)in * t->h + y) * t->w + x) * t->c + ic];
    free(tmp);
}

/* dnnl runs conv (x NCHW or NHWC, fused act + residual), BN inference, eltwise, GAP,
 * channel scale and add on channels-last tensors; each must equal ref on NCHW.  (The
 * training ops run channels-last inside the network tests: test_nn_network's finite
 * differences and dnnl-vs-ref checks cover them.) */
static void test_nhwc_inference_ops(void **state)
{
    (void)state;
    gn_backend *ref = g_be[0], *dn = g_be[1];
    const int picks[] = {0, 2, 3, 4, 9, 13, 14, 15, 16, 17, 18};
    for (size_t pi = 0; pi < sizeof picks / sizeof picks[0]; pi++) {
        const conv_cfg *q = &conv_cases[picks[pi]];
        const int OH = cv_oh(q), OW = cv_ow(q);
        const size_t ny = (size_t)q->n * q->o * OH * OW;
        rng_seed(700 + pi);
        float *hx = rand_vec((size_t)q->n * q->c * q->h * q->w, -1, 1);
        float *hw = rand_vec((size_t)q->o * (q->c / q->g) * q->k * q->k, -1, 1);
        float *hb = rand_vec((size_t)q->o, -1, 1), *hr = rand_vec(ny, -1, 1);
        float *want = malloc(ny * 4), *got = malloc(ny * 4);
        gn_conv2d_params p = {.stride = q->s, .pad = q->p, .groups = q->g};
        for (int with_r = 0; with_r < 2; with_r++)
            for (int x_nhwc = 0; x_nhwc < 2; x_nhwc++) {
                gn_tensor x = mk(ref, q->n, q->c, q->h, q->w, hx), w = mk(ref, q->o, q->c / q->g, q->k, q->k, hw);
                gn_tensor b = mk(ref, q->o, 1, 1, 1, hb), r = mk(ref, q->n, q->o, OH, OW, hr);
                gn_tensor y = mk(ref, q->n, q->o, OH, OW, NULL);
                OK(gn_conv2d_fwd_fused(ref, &x, &w, &b, GN_ELT_SILU, with_r ? &r : NULL, &y, &p, E));
                get(&y, want);
                gn_tensor_free(&x), gn_tensor_free(&w), gn_tensor_free(&b), gn_tensor_free(&r), gn_tensor_free(&y);

                gn_tensor dx = x_nhwc ? mk_nhwc(dn, q->n, q->c, q->h, q->w, hx) : mk(dn, q->n, q->c, q->h, q->w, hx);
                gn_tensor dw = mk(dn, q->o, q->c / q->g, q->k, q->k, hw), db = mk(dn, q->o, 1, 1, 1, hb);
                gn_tensor dr = mk_nhwc(dn, q->n, q->o, OH, OW, hr), dy = mk_nhwc(dn, q->n, q->o, OH, OW, NULL);
                OK(gn_conv2d_fwd_fused(dn, &dx, &dw, &db, GN_ELT_SILU, with_r ? &dr : NULL, &dy, &p, E));
                get_nchw(&dy, got);
                char what[128];
                snprintf(what, sizeof what, "nhwc conv case %d r%d x_nhwc%d", picks[pi], with_r, x_nhwc);
                tu_assert_close(what, got, want, ny, XB_TOL);
                gn_tensor_free(&dx), gn_tensor_free(&dw), gn_tensor_free(&db), gn_tensor_free(&dr), gn_tensor_free(&dy);
            }
        free(hx), free(hw), free(hb), free(hr), free(want), free(got);
    }

    /* BN inference, eltwise, GAP, channel scale, add on [2,24,5,7] */
    const int N = 2, C = 24, H = 5, W = 7;
    const size_t m = (size_t)N * C * H * W;
    rng_seed(777);
    float *hx = rand_vec(m, -2, 2), *h2 = rand_vec(m, -2, 2), *hs = rand_vec((size_t)N * C, 0, 1);
    float *hg = rand_vec(C, 0.5f, 1.5f), *hbt = rand_vec(C, -1, 1), *hm = rand_vec(C, -1, 1), *hv = rand_vec(C, 0.5f, 2);
    float *want = malloc(m * 4), *got = malloc(m * 4);
    for (int op = 0; op < 5; op++) {
        gn_backend *bes[2] = {ref, dn};
        for (int k = 0; k < 2; k++) {
            gn_backend *be = bes[k];
            gn_tensor x = k ? mk_nhwc(be, N, C, H, W, hx) : mk(be, N, C, H, W, hx);
            gn_tensor x2 = k ? mk_nhwc(be, N, C, H, W, h2) : mk(be, N, C, H, W, h2);
            gn_tensor y = k ? mk_nhwc(be, N, C, H, W, NULL) : mk(be, N, C, H, W, NULL);
            gn_tensor s = mk(be, N, C, 1, 1, hs), g = mk(be, C, 1, 1, 1, hg), bt = mk(be, C, 1, 1, 1, hbt);
            gn_tensor mu = mk(be, C, 1, 1, 1, hm), va = mk(be, C, 1, 1, 1, hv), pooled = mk(be, N, C, 1, 1, NULL);
            size_t cnt = m;
            switch (op) {
            case 0: OK(gn_bn_fwd_infer(be, &x, &g, &bt, &mu, &va, 1e-3f, &y, E)); break;
            case 1: OK(gn_eltwise_fwd(be, GN_ELT_SILU, &x, &y, E)); break;
            case 2: OK(gn_channel_scale_fwd(be, &x, &s, &y, E)); break;
            case 3: OK(gn_add(be, &x, &x2, &y, E)); break;
            case 4: OK(gn_gap_fwd(be, &x, &pooled, E)); cnt = (size_t)N * C; break;
            }
            float *dst = k ? got : want;
            if (op == 4)
                get(&pooled, dst);
            else if (k)
                get_nchw(&y, dst);
            else
                get(&y, dst);
            if (k) {
                char what[64];
                snprintf(what, sizeof what, "nhwc op %d", op);
                tu_assert_close(what, got, want, cnt, XB_TOL);
            }
            gn_tensor_free(&x), gn_tensor_free(&x2), gn_tensor_free(&y), gn_tensor_free(&s), gn_tensor_free(&g);
            gn_tensor_free(&bt), gn_tensor_free(&mu), gn_tensor_free(&va), gn_tensor_free(&pooled);
        }
    }

    /* ref takes NCHW only; training ops take NCHW only; layouts must agree */
    gn_error err = {{0}};
    gn_tensor rx = mk_nhwc(ref, N, C, H, W, hx), ry = mk(ref, N, C, H, W, NULL);
    assert_int_not_equal(gn_eltwise_fwd(ref, GN_ELT_RELU, &rx, &ry, &err), 0);
    assert_non_null(strstr(err.msg, "backend 'ref' takes NCHW only"));
    gn_tensor dx = mk_nhwc(dn, N, C, H, W, hx), dy = mk(dn, N, C, H, W, NULL), dd = mk_nhwc(dn, N, C, H, W, NULL);
    assert_int_not_equal(gn_eltwise_fwd(dn, GN_ELT_RELU, &dx, &dy, &err), 0);
    assert_non_null(strstr(err.msg, "layout differs"));
    assert_int_not_equal(gn_eltwise_bwd(dn, GN_ELT_RELU, &dx, &dy, &dd, &err), 0);
    assert_non_null(strstr(err.msg, "layout differs"));
    gn_tensor lw = mk(dn, 3, C * H * W, 1, 1, NULL), ly = mk(dn, N, 3, 1, 1, NULL);
    assert_int_not_equal(gn_linear_fwd(dn, &dx, &lw, NULL, &ly, &err), 0); /* flattening order */
    assert_non_null(strstr(err.msg, "channels-last; this op takes NCHW"));
    gn_tensor_free(&lw), gn_tensor_free(&ly);
    gn_tensor_free(&rx), gn_tensor_free(&ry), gn_tensor_free(&dx), gn_tensor_free(&dy), gn_tensor_free(&dd);
    free(hx), free(h2), free(hs), free(hg), free(hbt), free(hm), free(hv), free(want), free(got);
}

/* weights_version: the backend may keep its reordered copy while (buffer, version)
 * stay the same, and must take the new values under a new version. */
static void test_conv_weights_version(void **state)
{
    (void)state;
    for (int bi = 0; bi < 2; bi++) {
        gn_backend *be = g_be[bi];
        const conv_cfg *q = &conv_cases[13]; /* blocked weights in oneDNN */
        const int OH = cv_oh(q), OW = cv_ow(q);
        const size_t ny = (size_t)q->n * q->o * OH * OW, nw = (size_t)q->o * (q->c / q->g) * q->k * q->k;
        rng_seed(900);
        float *hx = rand_vec((size_t)q->n * q->c * q->h * q->w, -1, 1), *hw = rand_vec(nw, -1, 1);
        float *a = malloc(ny * 4), *b = malloc(ny * 4), *c = malloc(ny * 4);
        gn_tensor x = mk(be, q->n, q->c, q->h, q->w, hx), w = mk(be, q->o, q->c / q->g, q->k, q->k, hw);
        gn_tensor y = mk(be, q->n, q->o, OH, OW, NULL);
        gn_conv2d_params p = {.stride = q->s, .pad = q->p, .groups = q->g};
        p.weights_version = gn_backend_new_weights_version();
        assert_true(p.weights_version != 0);
        OK(gn_conv2d_fwd_fused(be, &x, &w, NULL, GN_ELT_IDENTITY, NULL, &y, &p, E));
        get(&y, a);
        for (size_t i = 0; i < nw; i++)
            hw[i] *= 2.0f;
        OK(gn_tensor_from_host(&w, hw, E));
        OK(gn_conv2d_fwd_fused(be, &x, &w, NULL, GN_ELT_IDENTITY, NULL, &y, &p, E));
        get(&y, b); /* same version: dnnl keeps the cached (old) weights, ref reads the new */
        uint64_t v2 = gn_backend_new_weights_version();
        assert_true(v2 != p.weights_version);
        p.weights_version = v2;
        OK(gn_conv2d_fwd_fused(be, &x, &w, NULL, GN_ELT_IDENTITY, NULL, &y, &p, E));
        get(&y, c);
        for (size_t i = 0; i < ny; i++)
            a[i] *= 2.0f;
        tu_assert_close("new weights version", c, a, ny, XB_TOL);
        if (bi == 1) { /* the cache really is used: old weights still in effect */
            for (size_t i = 0; i < ny; i++)
                a[i] *= 0.5f;
            tu_assert_close("cached weights under the same version", b, a, ny, XB_TOL);
        }
        gn_tensor_free(&x), gn_tensor_free(&w), gn_tensor_free(&y);
        free(hx), free(hw), free(a), free(b), free(c);
    }
}

/* ------------------------------------------------------------------ batch norm */
typedef struct {
    int n, c, h, w;
    float eps;
    bool fd;
} bn_cfg;

static void bn_fwd(op_case *c, float *out)
{
    const bn_cfg *q = c->p;
    gn_backend *be = c->be;
    gn_tensor x = mk(be, q->n, q->c, q->h, q->w, c->in[0]);
    gn_tensor ga = mk(be, q->c, 1, 1, 1, c->in[1]), bt = mk(be, 1, q->c, 1, 1, c->in[2]);
    gn_tensor m = mk(be, q->c, 1, 1, 1, NULL), v = mk(be, q->c, 1, 1, 1, NULL);
    gn_tensor y = mk(be, q->n, q->c, q->h, q->w, NULL);
    OK(gn_bn_fwd_train(be, &x, &ga, &bt, q->eps, &y, &m, &v, E));
    get(&y, out);
    gn_tensor_free(&x), gn_tensor_free(&ga), gn_tensor_free(&bt);
    gn_tensor_free(&m), gn_tensor_free(&v), gn_tensor_free(&y);
}

static void bn_bwd(op_case *c, const float *gout, float **gin)
{
    const bn_cfg *q = c->p;
    gn_backend *be = c->be;
    gn_tensor x = mk(be, q->n, q->c, q->h, q->w, c->in[0]);
    gn_tensor ga = mk(be, q->c, 1, 1, 1, c->in[1]), bt = mk(be, q->c, 1, 1, 1, c->in[2]);
    gn_tensor m = mk(be, q->c, 1, 1, 1, NULL), v = mk(be, q->c, 1, 1, 1, NULL);
    gn_tensor y = mk(be, q->n, q->c, q->h, q->w, NULL);
    gn_tensor dy = mk(be, q->n, q->c, q->h, q->w, gout);
    gn_tensor dx = mk(be, q->n, q->c, q->h, q->w, NULL);
    gn_tensor dg = mk(be, q->c, 1, 1, 1, NULL), db = mk(be, q->c, 1, 1, 1, NULL);
    OK(gn_bn_fwd_train(be, &x, &ga, &bt, q->eps, &y, &m, &v, E));
    OK(gn_bn_bwd(be, &x, &dy, &ga, &m, &v, q->eps, &dx, &dg, &db, E));
    get(&dx, gin[0]);
    get(&dg, gin[1]);
    get(&db, gin[2]);
    gn_tensor_free(&x), gn_tensor_free(&ga), gn_tensor_free(&bt), gn_tensor_free(&m);
    gn_tensor_free(&v), gn_tensor_free(&y), gn_tensor_free(&dy), gn_tensor_free(&dx);
    gn_tensor_free(&dg), gn_tensor_free(&db);
}

static const bn_cfg bn_cases[] = {
    {2, 4, 5, 5, 1e-3f, true},
    {2, 6, 7, 7, 1e-5f, true},
    {3, 5, 1, 1, 1e-3f, true}, /* 1x1 spatial (SE-like width) */
    {4, 32, 7, 7, 1e-5f, false},
    {2, 40, 14, 14, 1e-3f, false},
};

static void test_batchnorm_train(void **state)
{
    for (size_t i = 0; i < sizeof bn_cases / sizeof bn_cases[0]; i++) {
        const bn_cfg *q = &bn_cases[i];
        op_case c = {0};
        char name[96];
        snprintf(name, sizeof name, "bn_train[%zu] [%d,%d,%d,%d] eps %g", i, q->n, q->c, q->h,
                 q->w, (double)q->eps);
        rng_seed(400 + i);
        c.name = name;
        c.nin = 3;
        c.in_len[0] = (size_t)q->n * q->c * q->h * q->w;
        c.in_len[1] = c.in_len[2] = (size_t)q->c;
        c.in_name[0] = "x", c.in_name[1] = "gamma", c.in_name[2] = "beta";
        c.in[0] = rand_vec(c.in_len[0], -1, 1);
        /* per-channel offsets so the mean matters */
        for (size_t k = 0; k < c.in_len[0]; k++)
            c.in[0][k] += 0.3f * (float)((k / (q->h * q->w)) % q->c);
        c.in[1] = rand_vec(q->c, 0.5f, 1.5f);
        c.in[2] = rand_vec(q->c, -0.5f, 0.5f);
        c.out_len = c.in_len[0];
        c.fwd = bn_fwd;
        c.bwd = bn_bwd;
        c.p = q;
        check_case(&c, 500 + i, q->fd);
        case_free_inputs(&c);
    }
}

/* batch mean/var outputs, inference mode, running-stat update */
static void test_batchnorm_stats_infer(void **state)
{
    const int N = 2, C = 5, H = 4, W = 3, M = N * H * W;
    const float eps = 1e-3f;
    rng_seed(42);
    float *hx = rand_vec((size_t)N * C * H * W, -2, 3);
    float *hg = rand_vec(C, 0.5f, 1.5f), *hb = rand_vec(C, -1, 1);
    float *hrm = rand_vec(C, -1, 1), *hrv = rand_vec(C, 0.5f, 2);
    float mean[C], var[C], exm[C], exv[C];
    for (int c = 0; c < C; c++) {
        double s = 0, s2 = 0;
        for (int n = 0; n < N; n++)
            for (int i = 0; i < H * W; i++)
                s += hx[(n * C + c) * H * W + i];
        exm[c] = (float)(s / M);
        for (int n = 0; n < N; n++)
            for (int i = 0; i < H * W; i++) {
                double d = hx[(n * C + c) * H * W + i] - s / M;
                s2 += d * d;
            }
        exv[c] = (float)(s2 / M); /* biased */
    }
    float *yi[2];
    for (int bi = 0; bi < 2; bi++) {
        gn_backend *be = g_be[bi];
        gn_tensor x = mk(be, N, C, H, W, hx), y = mk(be, N, C, H, W, NULL);
        gn_tensor g = mk(be, C, 1, 1, 1, hg), b = mk(be, C, 1, 1, 1, hb);
        gn_tensor m = mk(be, C, 1, 1, 1, NULL), v = mk(be, C, 1, 1, 1, NULL);
        gn_tensor rm = mk(be, C, 1, 1, 1, hrm), rv = mk(be, C, 1, 1, 1, hrv);
        OK(gn_bn_fwd_train(be, &x, &g, &b, eps, &y, &m, &v, E));
        get(&m, mean);
        get(&v, var);
        tu_assert_close("bn batch mean", mean, exm, C, 1e-5);
        tu_assert_close("bn batch var (biased)", var, exv, C, 1e-5);
        /* running stats, PyTorch momentum 0.1 with unbiased variance */
        OK(gn_bn_update_running(be, &rm, &rv, &m, &v, 0.1f, M, E));
        float grm[C], grv[C], erm[C], erv[C];
        get(&rm, grm);
        get(&rv, grv);
        for (int c = 0; c < C; c++) {
            erm[c] = 0.9f * hrm[c] + 0.1f * exm[c];
            erv[c] = 0.9f * hrv[c] + 0.1f * exv[c] * (float)M / (float)(M - 1);
        }
        tu_assert_close("running mean", grm, erm, C, 1e-6);
        tu_assert_close("running var", grv, erv, C, 1e-6);
        /* inference with the running stats vs the formula */
        OK(gn_bn_fwd_infer(be, &x, &g, &b, &rm, &rv, eps, &y, E));
        yi[bi] = malloc(sizeof(float) * N * C * H * W);
        get(&y, yi[bi]);
        float *ex = malloc(sizeof(float) * N * C * H * W);
        for (int n = 0; n < N; n++)
            for (int c = 0; c < C; c++)
                for (int i = 0; i < H * W; i++) {
                    size_t k = (size_t)(n * C + c) * H * W + i;
                    ex[k] = (float)((hx[k] - grm[c]) / sqrt((double)grv[c] + eps) * hg[c] +
                                    hb[c]);
                }
        tu_assert_close("bn inference", yi[bi], ex, (size_t)N * C * H * W, 1e-5);
        /* in-place training forward (y aliases x) gives the same as out-of-place */
        float *yo = malloc(sizeof(float) * N * C * H * W), *yin = malloc(sizeof(float) * N * C * H * W);
        OK(gn_bn_fwd_train(be, &x, &g, &b, eps, &y, &m, &v, E));
        get(&y, yo);
        OK(gn_bn_fwd_train(be, &x, &g, &b, eps, &x, &m, &v, E));
        get(&x, yin);
        tu_assert_close("bn in-place", yin, yo, (size_t)N * C * H * W, 1e-6);
        free(ex), free(yo), free(yin);
        gn_tensor_free(&x), gn_tensor_free(&y), gn_tensor_free(&g), gn_tensor_free(&b);
        gn_tensor_free(&m), gn_tensor_free(&v), gn_tensor_free(&rm), gn_tensor_free(&rv);
    }
    tu_assert_close("bn inference dnnl vs ref", yi[1], yi[0], (size_t)N * C * H * W, XB_TOL);
    free(yi[0]), free(yi[1]);
    free(hx), free(hg), free(hb), free(hrm), free(hrv);
}

/* ------------------------------------------------------------------ eltwise */
typedef struct {
    int n, c, h, w;
    gn_eltwise k;
} elt_cfg;

static void elt_fwd(op_case *c, float *out)
{
    const elt_cfg *q = c->p;
    gn_tensor x = mk(c->be, q->n, q->c, q->h, q->w, c->in[0]);
    gn_tensor y = mk(c->be, q->n, q->c, q->h, q->w, NULL);
    OK(gn_eltwise_fwd(c->be, q->k, &x, &y, E));
    get(&y, out);
    gn_tensor_free(&x), gn_tensor_free(&y);
}

static void elt_bwd(op_case *c, const float *gout, float **gin)
{
    const elt_cfg *q = c->p;
    gn_tensor x = mk(c->be, q->n, q->c, q->h, q->w, c->in[0]);
    gn_tensor dy = mk(c->be, q->n, q->c, q->h, q->w, gout);
    gn_tensor dx = mk(c->be, q->n, q->c, q->h, q->w, NULL);
    OK(gn_eltwise_bwd(c->be, q->k, &x, &dy, &dx, E));
    get(&dx, gin[0]);
    /* in-place dx == dy gives the same */
    float *tmp = malloc(sizeof(float) * c->in_len[0]);
    OK(gn_eltwise_bwd(c->be, q->k, &x, &dy, &dy, E));
    get(&dy, tmp);
    tu_assert_close("eltwise bwd in-place", tmp, gin[0], c->in_len[0], 0);
    free(tmp);
    gn_tensor_free(&x), gn_tensor_free(&dy), gn_tensor_free(&dx);
}

static void test_eltwise(void **state)
{
    const gn_eltwise ks[] = {GN_ELT_RELU, GN_ELT_SILU, GN_ELT_SIGMOID};
    for (size_t i = 0; i < 3; i++)
        for (int big = 0; big < 2; big++) {
            elt_cfg q = {2, big ? 24 : 4, big ? 9 : 5, big ? 9 : 5, ks[i]};
            op_case c = {0};
            char name[64];
            snprintf(name, sizeof name, "eltwise %s%s", gn_eltwise_name(ks[i]), big ? " big" : "");
            rng_seed(600 + i);
            c.name = name;
            c.nin = 1;
            c.in_len[0] = (size_t)q.n * q.c * q.h * q.w;
            c.in_name[0] = "x";
            c.in[0] = rand_vec_nokink(c.in_len[0]);
            for (size_t k = 0; k < c.in_len[0]; k++)
                c.in[0][k] *= 4.0f; /* exercise the tails too */
            c.out_len = c.in_len[0];
            c.fwd = elt_fwd;
            c.bwd = elt_bwd;
            c.p = &q;
            check_case(&c, 700 + i, !big);
            /* in-place forward */
            for (int bi = 0; bi < 2; bi++) {
                float *a = malloc(4 * c.out_len), *b = malloc(4 * c.out_len);
                c.be = g_be[bi];
                elt_fwd(&c, a);
                gn_tensor x = mk(g_be[bi], q.n, q.c, q.h, q.w, c.in[0]);
                OK(gn_eltwise_fwd(g_be[bi], q.k, &x, &x, E));
                get(&x, b);
                tu_assert_close("eltwise fwd in-place", b, a, c.out_len, 0);
                gn_tensor_free(&x);
                free(a), free(b);
            }
            case_free_inputs(&c);
        }
}

/* ------------------------------------------------------------------ GAP */
typedef struct {
    int n, c, h, w;
} shp4;

static void gap_fwd(op_case *c, float *out)
{
    const shp4 *q = c->p;
    gn_tensor x = mk(c->be, q->n, q->c, q->h, q->w, c->in[0]);
    gn_tensor y = mk(c->be, q->n, q->c, 1, 1, NULL);
    OK(gn_gap_fwd(c->be, &x, &y, E));
    get(&y, out);
    gn_tensor_free(&x), gn_tensor_free(&y);
}

static void gap_bwd(op_case *c, const float *gout, float **gin)
{
    const shp4 *q = c->p;
    gn_tensor dy = mk(c->be, q->n, q->c, 1, 1, gout);
    gn_tensor dx = mk(c->be, q->n, q->c, q->h, q->w, NULL);
    OK(gn_gap_bwd(c->be, &dy, &dx, E));
    get(&dx, gin[0]);
    gn_tensor_free(&dy), gn_tensor_free(&dx);
}

static void test_gap(void **state)
{
    const shp4 cases[] = {{2, 4, 5, 5}, {2, 6, 7, 6}, {3, 40, 7, 7}, {2, 8, 1, 1}};
    for (size_t i = 0; i < 4; i++) {
        op_case c = {0};
        rng_seed(800 + i);
        c.name = "gap";
        c.nin = 1;
        c.in_len[0] = (size_t)cases[i].n * cases[i].c * cases[i].h * cases[i].w;
        c.in_name[0] = "x";
        c.in[0] = rand_vec(c.in_len[0], -1, 1);
        c.out_len = (size_t)cases[i].n * cases[i].c;
        c.fwd = gap_fwd;
        c.bwd = gap_bwd;
        c.p = &cases[i];
        check_case(&c, 900 + i, i != 2);
        case_free_inputs(&c);
    }
}

/* ------------------------------------------------------------------ channel scale */
static void cs_fwd(op_case *c, float *out)
{
    const shp4 *q = c->p;
    gn_tensor x = mk(c->be, q->n, q->c, q->h, q->w, c->in[0]);
    gn_tensor s = mk(c->be, q->n, q->c, 1, 1, c->in[1]);
    gn_tensor y = mk(c->be, q->n, q->c, q->h, q->w, NULL);
    OK(gn_channel_scale_fwd(c->be, &x, &s, &y, E));
    get(&y, out);
    float *t = malloc(sizeof(float) * c->out_len);
    OK(gn_channel_scale_fwd(c->be, &x, &s, &x, E)); /* in-place */
    get(&x, t);
    tu_assert_close("channel_scale in-place", t, out, c->out_len, 0);
    free(t);
    gn_tensor_free(&x), gn_tensor_free(&s), gn_tensor_free(&y);
}

static void cs_bwd(op_case *c, const float *gout, float **gin)
{
    const shp4 *q = c->p;
    gn_tensor x = mk(c->be, q->n, q->c, q->h, q->w, c->in[0]);
    gn_tensor s = mk(c->be, q->n, q->c, 1, 1, c->in[1]);
    gn_tensor dy = mk(c->be, q->n, q->c, q->h, q->w, gout);
    gn_tensor dx = mk(c->be, q->n, q->c, q->h, q->w, NULL);
    gn_tensor ds = mk(c->be, q->n, q->c, 1, 1, NULL);
    OK(gn_channel_scale_bwd(c->be, &x, &s, &dy, &dx, &ds, E));
    get(&dx, gin[0]);
    get(&ds, gin[1]);
    gn_tensor_free(&x), gn_tensor_free(&s), gn_tensor_free(&dy), gn_tensor_free(&dx);
    gn_tensor_free(&ds);
}

static void test_channel_scale(void **state)
{
    const shp4 cases[] = {{2, 4, 5, 5}, {2, 6, 3, 4}, {2, 48, 7, 7}};
    for (size_t i = 0; i < 3; i++) {
        op_case c = {0};
        rng_seed(1000 + i);
        c.name = "channel_scale";
        c.nin = 2;
        c.in_len[0] = (size_t)cases[i].n * cases[i].c * cases[i].h * cases[i].w;
        c.in_len[1] = (size_t)cases[i].n * cases[i].c;
        c.in_name[0] = "x", c.in_name[1] = "s";
        c.in[0] = rand_vec(c.in_len[0], -1, 1);
        c.in[1] = rand_vec(c.in_len[1], 0, 1);
        c.out_len = c.in_len[0];
        c.fwd = cs_fwd;
        c.bwd = cs_bwd;
        c.p = &cases[i];
        check_case(&c, 1100 + i, i != 2);
        case_free_inputs(&c);
    }
}

/* ------------------------------------------------------------------ add / accumulate */
static void add_fwd(op_case *c, float *out)
{
    const shp4 *q = c->p;
    gn_tensor a = mk(c->be, q->n, q->c, q->h, q->w, c->in[0]);
    gn_tensor b = mk(c->be, q->n, q->c, q->h, q->w, c->in[1]);
    gn_tensor y = mk(c->be, q->n, q->c, q->h, q->w, NULL);
    OK(gn_add(c->be, &a, &b, &y, E));
    get(&y, out);
    /* in-place forms */
    float *t = malloc(sizeof(float) * c->out_len);
    OK(gn_add(c->be, &a, &b, &a, E));
    get(&a, t);
    tu_assert_close("add in-place (y=a)", t, out, c->out_len, 0);
    OK(gn_tensor_from_host(&a, c->in[0], E));
    OK(gn_add(c->be, &a, &b, &b, E));
    get(&b, t);
    tu_assert_close("add in-place (y=b)", t, out, c->out_len, 0);
    free(t);
    gn_tensor_free(&a), gn_tensor_free(&b), gn_tensor_free(&y);
}

/* add's backward is identity; route it through gn_accumulate onto zero / onto a value */
static void add_bwd(op_case *c, const float *gout, float **gin)
{
    const shp4 *q = c->p;
    gn_tensor dy = mk(c->be, q->n, q->c, q->h, q->w, gout);
    gn_tensor da = mk(c->be, q->n, q->c, q->h, q->w, NULL);
    gn_tensor db = mk(c->be, q->n, q->c, q->h, q->w, NULL);
    OK(gn_accumulate(c->be, &da, &dy, E)); /* 0 + dy */
    OK(gn_tensor_fill(&db, 0.5f, E));
    OK(gn_accumulate(c->be, &db, &dy, E)); /* 0.5 + dy */
    get(&da, gin[0]);
    get(&db, gin[1]);
    for (size_t i = 0; i < c->in_len[1]; i++) {
        float want = 0.5f + gout[i];
        if (gin[1][i] != want)
            fail_msg("accumulate [%s]: element %zu: %g != %g", gn_backend_name(c->be), i, (double)gin[1][i],
                     (double)want);
        gin[1][i] -= 0.5f;
    }
    gn_tensor_free(&dy), gn_tensor_free(&da), gn_tensor_free(&db);
}

static void test_add_accumulate(void **state)
{
    const shp4 cases[] = {{2, 4, 5, 5}, {2, 32, 7, 7}};
    for (size_t i = 0; i < 2; i++) {
        op_case c = {0};
        rng_seed(1200 + i);
        c.name = "add";
        c.nin = 2;
        c.in_len[0] = c.in_len[1] = (size_t)cases[i].n * cases[i].c * cases[i].h * cases[i].w;
        c.in_name[0] = "a", c.in_name[1] = "b";
        c.in[0] = rand_vec(c.in_len[0], -1, 1);
        c.in[1] = rand_vec(c.in_len[1], -1, 1);
        c.out_len = c.in_len[0];
        c.fwd = add_fwd;
        c.bwd = add_bwd;
        c.p = &cases[i];
        check_case(&c, 1300 + i, i == 0);
        case_free_inputs(&c);
    }
}

/* ------------------------------------------------------------------ masks */
typedef struct {
    shp4 s;
    bool per_sample;
    const float *mask;
} mask_cfg;

static void mask_fwd(op_case *c, float *out)
{
    const mask_cfg *q = c->p;
    gn_tensor x = mk(c->be, q->s.n, q->s.c, q->s.h, q->s.w, c->in[0]);
    gn_tensor m = q->per_sample ? mk(c->be, q->s.n, 1, 1, 1, q->mask)
                                : mk(c->be, q->s.n, q->s.c, q->s.h, q->s.w, q->mask);
    gn_tensor y = mk(c->be, q->s.n, q->s.c, q->s.h, q->s.w, NULL);
    OK(gn_mul_mask_fwd(c->be, &x, &m, &y, E));
    get(&y, out);
    gn_tensor_free(&x), gn_tensor_free(&m), gn_tensor_free(&y);
}

static void mask_bwd(op_case *c, const float *gout, float **gin)
{
    const mask_cfg *q = c->p;
    gn_tensor dy = mk(c->be, q->s.n, q->s.c, q->s.h, q->s.w, gout);
    gn_tensor m = q->per_sample ? mk(c->be, q->s.n, 1, 1, 1, q->mask)
                                : mk(c->be, q->s.n, q->s.c, q->s.h, q->s.w, q->mask);
    OK(gn_mul_mask_bwd(c->be, &dy, &m, &dy, E)); /* in-place */
    get(&dy, gin[0]);
    gn_tensor_free(&dy), gn_tensor_free(&m);
}

static void test_dropout_droppath(void **state)
{
    for (int per_sample = 0; per_sample < 2; per_sample++) {
        mask_cfg q = {{3, 4, 5, 5}, per_sample, NULL};
        size_t n = (size_t)3 * 4 * 5 * 5;
        size_t mn = per_sample ? 3 : n;
        const float keep = 0.8f;
        rng_seed(1400 + per_sample);
        float *mask = malloc(sizeof(float) * mn);
        for (size_t i = 0; i < mn; i++)
            mask[i] = urand() < keep ? 1.0f / keep : 0.0f;
        if (per_sample)
            mask[1] = 0.0f, mask[0] = 1.0f / keep;
        q.mask = mask;
        op_case c = {0};
        c.name = per_sample ? "drop-path" : "dropout";
        c.nin = 1;
        c.in_len[0] = n;
        c.in_name[0] = "x";
        c.in[0] = rand_vec(n, -1, 1);
        c.out_len = n;
        c.fwd = mask_fwd;
        c.bwd = mask_bwd;
        c.p = &q;
        check_case(&c, 1500 + per_sample, true);
        /* exact values */
        float *y = malloc(sizeof(float) * n);
        for (int bi = 0; bi < 2; bi++) {
            c.be = g_be[bi];
            mask_fwd(&c, y);
            for (size_t i = 0; i < n; i++) {
                float m = per_sample ? mask[i / (n / 3)] : mask[i];
                assert_true(y[i] == c.in[0][i] * m);
            }
        }
        free(y);
        free(mask);
        case_free_inputs(&c);
    }
}

/* ------------------------------------------------------------------ linear */
typedef struct {
    int n, c, h, w, out;
    bool bias;
} lin_cfg;

static void lin_fwd(op_case *c, float *out)
{
    const lin_cfg *q = c->p;
    int in = q->c * q->h * q->w;
    gn_tensor x = mk(c->be, q->n, q->c, q->h, q->w, c->in[0]);
    gn_tensor w = mk(c->be, q->out, in, 1, 1, c->in[1]);
    gn_tensor b = {0};
    if (q->bias)
        b = mk(c->be, q->out, 1, 1, 1, c->in[2]);
    gn_tensor y = mk(c->be, q->n, q->out, 1, 1, NULL);
    OK(gn_linear_fwd(c->be, &x, &w, q->bias ? &b : NULL, &y, E));
    get(&y, out);
    gn_tensor_free(&x), gn_tensor_free(&w), gn_tensor_free(&b), gn_tensor_free(&y);
}

static void lin_bwd(op_case *c, const float *gout, float **gin)
{
    const lin_cfg *q = c->p;
    int in = q->c * q->h * q->w;
    gn_tensor x = mk(c->be, q->n, q->c, q->h, q->w, c->in[0]);
    gn_tensor w = mk(c->be, q->out, in, 1, 1, c->in[1]);
    gn_tensor dy = mk(c->be, q->n, q->out, 1, 1, gout);
    gn_tensor dx = mk(c->be, q->n, q->c, q->h, q->w, NULL);
    gn_tensor dw = mk(c->be, q->out, in, 1, 1, NULL);
    gn_tensor db = {0};
    if (q->bias)
        db = mk(c->be, q->out, 1, 1, 1, NULL);
    OK(gn_tensor_fill(&dw, 9.0f, E));
    OK(gn_linear_bwd(c->be, &x, &w, &dy, &dx, &dw, q->bias ? &db : NULL, E));
    get(&dx, gin[0]);
    get(&dw, gin[1]);
    if (q->bias)
        get(&db, gin[2]);
    gn_tensor_free(&x), gn_tensor_free(&w), gn_tensor_free(&dy), gn_tensor_free(&dx);
    gn_tensor_free(&dw), gn_tensor_free(&db);
}

static void test_linear(void **state)
{
    const lin_cfg cases[] = {
        {3, 12, 1, 1, 5, true}, {2, 3, 2, 2, 7, false}, {4, 256, 1, 1, 100, true}};
    for (size_t i = 0; i < 3; i++) {
        const lin_cfg *q = &cases[i];
        op_case c = {0};
        rng_seed(1600 + i);
        c.name = "linear";
        c.nin = q->bias ? 3 : 2;
        c.in_len[0] = (size_t)q->n * q->c * q->h * q->w;
        c.in_len[1] = (size_t)q->out * q->c * q->h * q->w;
        c.in_len[2] = (size_t)q->out;
        c.in_name[0] = "x", c.in_name[1] = "w", c.in_name[2] = "b";
        for (int k = 0; k < c.nin; k++)
            c.in[k] = rand_vec(c.in_len[k], -1, 1);
        c.out_len = (size_t)q->n * q->out;
        c.fwd = lin_fwd;
        c.bwd = lin_bwd;
        c.p = q;
        check_case(&c, 1700 + i, i < 2);
        case_free_inputs(&c);
    }
}

/* ------------------------------------------------------------------ loss */
typedef struct {
    int n, k;
    float smoothing;
    const int32_t *labels;
} xent_cfg;

static void xent_fwd(op_case *c, float *out)
{
    const xent_cfg *q = c->p;
    gn_tensor z = mk(c->be, q->n, q->k, 1, 1, c->in[0]);
    OK(gn_softmax_xent(c->be, &z, q->labels, q->smoothing, out, NULL, E));
    gn_tensor_free(&z);
}

static void xent_bwd(op_case *c, const float *gout, float **gin)
{
    const xent_cfg *q = c->p;
    gn_tensor z = mk(c->be, q->n, q->k, 1, 1, c->in[0]);
    gn_tensor dz = mk(c->be, q->n, q->k, 1, 1, NULL);
    float loss;
    OK(gn_softmax_xent(c->be, &z, q->labels, q->smoothing, &loss, &dz, E));
    get(&dz, gin[0]);
    for (size_t i = 0; i < c->in_len[0]; i++)
        gin[0][i] *= gout[0];
    gn_tensor_free(&z), gn_tensor_free(&dz);
}

static void test_softmax_xent(void **state)
{
    const int32_t labels[5] = {3, 0, 9, 4, 4};
    for (int si = 0; si < 2; si++) {
        xent_cfg q = {5, 10, si ? 0.1f : 0.0f, labels};
        op_case c = {0};
        rng_seed(1800 + si);
        c.name = si ? "softmax_xent smoothing 0.1" : "softmax_xent";
        c.nin = 1;
        c.in_len[0] = 50;
        c.in_name[0] = "logits";
        c.in[0] = rand_vec(50, -3, 3);
        c.out_len = 1;
        c.fwd = xent_fwd;
        c.bwd = xent_bwd;
        c.p = &q;
        check_case(&c, 1900 + si, true);
        case_free_inputs(&c);
    }
    /* known values: zero logits -> log K for any smoothing; confident correct logits */
    for (int bi = 0; bi < 2; bi++) {
        float z0[20] = {0}, loss;
        int32_t lab[2] = {1, 7};
        gn_tensor z = mk(g_be[bi], 2, 10, 1, 1, z0);
        OK(gn_softmax_xent(g_be[bi], &z, lab, 0.1f, &loss, NULL, E));
        assert_true(fabs(loss - log(10.0)) < 1e-6);
        /* logits: 10 on the label, 0 elsewhere; eps = 0.2 */
        z0[1] = 10.0f, z0[17] = 10.0f;
        OK(gn_tensor_from_host(&z, z0, E));
        OK(gn_softmax_xent(g_be[bi], &z, lab, 0.2f, &loss, NULL, E));
        double lse = log(exp(10.0) + 9.0);
        double want = 0.82 * (lse - 10.0) + 0.02 * 9 * lse; /* on = 0.8+0.02 */
        assert_true(fabs(loss - want) < 1e-5);
        gn_tensor_free(&z);
    }
}

/* ------------------------------------------------------------------ errors */
static void test_errors(void **state)
{
    gn_error err = {{0}};
    gn_backend *be = NULL;
    assert_int_not_equal(gn_backend_create("cuda9", &be, &err), 0);
    assert_null(be);
    assert_non_null(strstr(err.msg, "unknown backend 'cuda9'"));
    assert_non_null(strstr(err.msg, "ref,dnnl"));
    for (int bi = 0; bi < 2; bi++) {
        gn_backend *b = g_be[bi];
        gn_tensor x = mk(b, 2, 6, 5, 5, NULL), w = mk(b, 8, 4, 3, 3, NULL);
        gn_tensor y = mk(b, 2, 8, 5, 5, NULL), v = mk(b, 6, 1, 1, 1, NULL);
        gn_conv2d_params p = {.stride = 1, .pad = 1, .groups = 1};
        err.msg[0] = 0;
        assert_int_not_equal(gn_conv2d_fwd(b, &x, &w, NULL, &y, &p, &err), 0);
        assert_non_null(strstr(err.msg, "does not match input channels 6"));
        p.groups = 4; /* 6 % 4 */
        assert_int_not_equal(gn_conv2d_fwd(b, &x, &w, NULL, &y, &p, &err), 0);
        assert_non_null(strstr(err.msg, "divisible"));
        p.groups = 1, p.stride = 0;
        assert_int_not_equal(gn_conv2d_fwd(b, &x, &w, NULL, &y, &p, &err), 0);
        assert_int_not_equal(gn_conv2d_fwd(b, &x, &w, NULL, &y, NULL, &err), 0);
        assert_int_not_equal(gn_conv2d_fwd(NULL, &x, &w, NULL, &y, &p, &err), 0);
        /* wrong output shape */
        assert_int_not_equal(gn_gap_fwd(b, &x, &y, &err), 0);
        assert_non_null(strstr(err.msg, "expected [2,6,1,1]"));
        /* eps and activation */
        assert_int_not_equal(gn_bn_fwd_train(b, &x, &v, &v, 0.0f, &x, &v, &v, &err), 0);
        assert_int_not_equal(gn_eltwise_fwd(b, GN_ELT_IDENTITY, &x, &x, &err), 0);
        assert_int_not_equal(gn_eltwise_fwd(b, (gn_eltwise)99, &x, &x, &err), 0);
        /* label out of range, smoothing out of range */
        gn_tensor z = mk(b, 2, 3, 1, 1, NULL);
        int32_t lab[2] = {0, 3};
        float loss;
        assert_int_not_equal(gn_softmax_xent(b, &z, lab, 0.0f, &loss, NULL, &err), 0);
        assert_non_null(strstr(err.msg, "label 3"));
        lab[1] = 2;
        assert_int_not_equal(gn_softmax_xent(b, &z, lab, 1.0f, &loss, NULL, &err), 0);
        assert_int_equal(gn_softmax_xent(b, &z, lab, 0.0f, &loss, NULL, &err), 0);
        /* mask of a wrong size */
        assert_int_not_equal(gn_mul_mask_fwd(b, &x, &v, &x, &err), 0);
        /* tensors from the other backend */
        gn_tensor o = mk(g_be[1 - bi], 2, 6, 5, 5, NULL);
        assert_int_not_equal(gn_add(b, &x, &o, &x, &err), 0);
        assert_non_null(strstr(err.msg, "another backend"));
        /* empty tensor */
        gn_tensor empty = {0};
        assert_int_not_equal(gn_eltwise_fwd(b, GN_ELT_RELU, &empty, &x, &err), 0);
        assert_int_not_equal(gn_tensor_alloc(&empty, b, 0, 1, 1, 1, &err), 0);
        gn_tensor_free(&empty);
        gn_tensor_free(&x), gn_tensor_free(&w), gn_tensor_free(&y), gn_tensor_free(&v);
        gn_tensor_free(&z), gn_tensor_free(&o);
    }
    assert_int_equal(gn_conv2d_out_size(7, 3, 2, 1), 4);
    assert_int_equal(gn_conv2d_out_size(9, 3, 2, 0), 4);
    assert_int_equal(gn_conv2d_out_size(2, 5, 1, 0), 0);
}

static void test_tensor_and_threads(void **state)
{
    for (int bi = 0; bi < 2; bi++) {
        gn_backend *b = g_be[bi];
        float src[6] = {1, 2, 3, 4, 5, 6}, dst[6];
        gn_tensor t = mk(b, 1, 2, 3, 1, NULL), u = mk(b, 6, 1, 1, 1, NULL);
        get(&t, dst);
        for (int i = 0; i < 6; i++)
            assert_true(dst[i] == 0.0f); /* zero-filled */
        OK(gn_tensor_from_host(&t, src, E));
        OK(gn_tensor_copy(&u, &t, E));
        get(&u, dst);
        assert_memory_equal(src, dst, sizeof src);
        gn_tensor view;
        gn_tensor_wrap(&view, b, t.data + 2, 1, 1, 2, 1);
        get(&view, dst);
        assert_true(dst[0] == 3 && dst[1] == 4);
        gn_tensor_free(&view); /* no-op on data */
        get(&t, dst);
        assert_true(dst[5] == 6);
        gn_tensor_free(&t), gn_tensor_free(&u);
        assert_null(t.data);
        OK(gn_backend_set_threads(b, 2, E));
    }
    OK(gn_backend_set_threads(g_be[1], 0, E));
}

/* ------------------------------------------------------------------ main */
static int setup(void **state)
{
    gn_error err;
    for (int i = 0; i < 2; i++)
        if (gn_backend_create(g_names[i], &g_be[i], &err) != 0) {
            fprintf(stderr, "backend %s: %s\n", g_names[i], err.msg);
            return -1;
        }
    return 0;
}

static int teardown(void **state)
{
    for (int i = 0; i < 2; i++)
        gn_backend_destroy(g_be[i]);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tensor_and_threads),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_conv2d),
        cmocka_unit_test(test_conv2d_cache_reuse),
        cmocka_unit_test(test_conv2d_fused),
        cmocka_unit_test(test_nhwc_inference_ops),
        cmocka_unit_test(test_conv_weights_version),
        cmocka_unit_test(test_batchnorm_train),
        cmocka_unit_test(test_batchnorm_stats_infer),
        cmocka_unit_test(test_eltwise),
        cmocka_unit_test(test_gap),
        cmocka_unit_test(test_channel_scale),
        cmocka_unit_test(test_add_accumulate),
        cmocka_unit_test(test_dropout_droppath),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_softmax_xent),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
