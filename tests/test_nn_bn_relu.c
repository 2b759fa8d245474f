/*
 * test_nn_bn_relu.c — batch norm + ReLU fused in training (gpunas/backend.h
 * gn_bn_relu_*, the network's use of it in src/nn/network_train.c; issue 21).
 *
 *  - the op on "dnnl" against "ref": y, batch mean and var, dx, dgamma, dbeta, max |diff|
 *    <= 1e-4 * max(1, max |ref|) per tensor, on shapes with C < 8, C a multiple of 8 and
 *    16, odd C and 1x1 spatial, in both layouts oneDNN's BN takes here (nchw, and nhwc,
 *    the layout the network's activations have on "dnnl"; BN's memory is never
 *    blocked here: the backend gives oneDNN the tensor's own layout).  On the project's
 *    AVX-512 VM these pick all four of oneDNN 2.6's CPU BN kernels (GPUNAS_DNNL_VERBOSE=1):
 *    ncsp_bnorm (the nchw cases), bnorm_jit:avx512_core (nhwc, C 16 and 64),
 *    bnorm_tbb_jit:avx2 (nhwc, C 24 and 40) and nspc_bnorm (nhwc, C 13), i.e. both
 *    workspace kinds (a bit and a byte per element).  Inputs are nudged so that no unit is within 1e-3 of the
 *    ReLU's kink (where two correct backends may take different sides);
 *  - on each backend the fused op equals the unfused composition (bn_fwd_train + relu,
 *    relu' + bn_bwd): bit for bit on "ref", within 1e-5 on "dnnl";
 *  - argument errors: a workspace too small, aliasing, a missing workspace;
 *  - training: a small network with BN + ReLU pairs (and BN + swish, which stays
 *    unfused) built with fusion on and with GPUNAS_NO_BN_RELU_FUSION=1, 3 SGD steps
 *    with dropout and drop-path on the same batches: losses, every parameter and
 *    running statistic, the last step's gradients, the eval-mode logits and the NASWOT
 *    score agree (exactly on "ref"; within float tolerance on "dnnl"), the fused net
 *    has the expected pairs and allocates no pre-activation value.
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

#include "gpunas/arch.h"
#include "gpunas/backend.h"
#include "gpunas/network.h"
#include "gpunas/optim.h"
#include "gpunas/rng.h"
#include "gpunas/tensor.h"
#include "nn/network_internal.h"
#include "testutil.h"

#define XB_TOL 1e-4
#define KINK 1e-3

static gn_backend *g_be[2]; /* ref, dnnl */
static const char *g_names[2] = {"ref", "dnnl"};

#define OK(call)                                                                               \
    do {                                                                                       \
        gn_error err_ = {{0}};                                                                 \
        if ((call) != 0)                                                                       \
            fail_msg("%s failed: %s", #call, err_.msg);                                        \
    } while (0)
#define E (&err_)

/* ------------------------------------------------------------------ helpers */
static gn_rng g_rng;
static float *rand_vec(size_t n, double lo, double hi)
{
    float *v = malloc(sizeof(float) * (n ? n : 1));
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = (float)(lo + (hi - lo) * gn_rng_uniform(&g_rng));
    return v;
}

/* NCHW host array <-> tensor of the given layout */
static gn_tensor mk(gn_backend *be, int n, int c, int h, int w, gn_layout lay, const float *nchw)
{
    gn_tensor t;
    gn_error err;
    if (gn_tensor_alloc(&t, be, n, c, h, w, &err))
        fail_msg("alloc: %s", err.msg);
    t.layout = lay;
    if (nchw) {
        for (int a = 0; a < n; a++)
            for (int b = 0; b < c; b++)
                for (int i = 0; i < h * w; i++) {
                    size_t s = ((size_t)a * c + b) * h * w + i;
                    size_t d = lay == GN_LAYOUT_NHWC ? ((size_t)a * h * w + i) * c + b : s;
                    t.data[d] = nchw[s];
                }
    }
    return t;
}

static void get(const gn_tensor *t, float *nchw)
{
    int n = t->n, c = t->c, hw = t->h * t->w;
    for (int a = 0; a < n; a++)
        for (int b = 0; b < c; b++)
            for (int i = 0; i < hw; i++) {
                size_t d = ((size_t)a * c + b) * hw + i;
                size_t s = t->layout == GN_LAYOUT_NHWC ? ((size_t)a * hw + i) * c + b : d;
                nchw[d] = t->data[s];
            }
}

/* ------------------------------------------------------------------ the op */
typedef struct {
    int n, c, h, w;
    gn_layout lay; /* dnnl's layout (ref: always NCHW) */
    float eps;
} shape_cfg;

static const shape_cfg shapes[] = {
    {2, 4, 5, 5, GN_LAYOUT_NCHW, 1e-3f},   /* C < 8 */
    {4, 16, 8, 8, GN_LAYOUT_NCHW, 1e-5f},  /* C a multiple of 16, plain */
    {4, 16, 8, 8, GN_LAYOUT_NHWC, 1e-5f},  /* ... channels-last */
    {3, 24, 7, 7, GN_LAYOUT_NHWC, 1e-3f},  /* a multiple of 8, not of 16 */
    {2, 40, 14, 14, GN_LAYOUT_NHWC, 1e-3f},
    {5, 13, 3, 3, GN_LAYOUT_NHWC, 1e-5f},  /* odd C: the vector tail */
    {16, 64, 4, 4, GN_LAYOUT_NHWC, 1e-5f}, /* fmnist-small's deep stage */
    {8, 96, 1, 1, GN_LAYOUT_NCHW, 1e-3f},  /* 1x1 spatial */
    {2, 48, 9, 9, GN_LAYOUT_NCHW, 1e-5f},
};

typedef struct {
    float *y, *mean, *var, *dx, *dg, *db;
} op_out;

static void op_out_alloc(op_out *o, size_t n, int c)
{
    o->y = malloc(n * sizeof(float)), o->dx = malloc(n * sizeof(float));
    o->mean = malloc(c * sizeof(float)), o->var = malloc(c * sizeof(float));
    o->dg = malloc(c * sizeof(float)), o->db = malloc(c * sizeof(float));
}

static void op_out_free(op_out *o) { free(o->y), free(o->dx), free(o->mean), free(o->var), free(o->dg), free(o->db); }

/* x with per-channel offsets; then elements whose BN output lies within KINK of 0 are
 * pushed away (double-precision BN on the host) until none is */
static float *kink_free_input(const shape_cfg *q, const float *g, const float *b)
{
    size_t n = (size_t)q->n * q->c * q->h * q->w, hw = (size_t)q->h * q->w;
    float *x = rand_vec(n, -1, 1);
    for (size_t k = 0; k < n; k++)
        x[k] += 0.3f * (float)((k / hw) % q->c);
    for (int it = 0; it < 50; it++) {
        int moved = 0;
        for (int c = 0; c < q->c; c++) {
            double s = 0, s2 = 0, M = (double)q->n * hw;
            for (int a = 0; a < q->n; a++)
                for (size_t i = 0; i < hw; i++)
                    s += x[((size_t)a * q->c + c) * hw + i];
            double mu = s / M;
            for (int a = 0; a < q->n; a++)
                for (size_t i = 0; i < hw; i++) {
                    double d = x[((size_t)a * q->c + c) * hw + i] - mu;
                    s2 += d * d;
                }
            double inv = 1.0 / sqrt(s2 / M + q->eps);
            for (int a = 0; a < q->n; a++)
                for (size_t i = 0; i < hw; i++) {
                    float *p = &x[((size_t)a * q->c + c) * hw + i];
                    double z = (*p - mu) * inv * g[c] + b[c];
                    if (fabs(z) < 4 * KINK) {
                        *p += (float)((z >= 0 ? 0.05 : -0.05) / (inv * g[c]));
                        moved++;
                    }
                }
        }
        if (!moved)
            return x;
    }
    fail_msg("could not keep the input away from the ReLU kink");
    return NULL;
}

/* the fused op (fused = true) or BN + ReLU as two ops, forward and backward */
static void run_op(gn_backend *be, const shape_cfg *q, gn_layout lay, bool fused, const float *hx, const float *hg,
                   const float *hb, const float *hdy, op_out *o)
{
    int N = q->n, C = q->c, H = q->h, W = q->w;
    gn_tensor x = mk(be, N, C, H, W, lay, hx), dy = mk(be, N, C, H, W, lay, hdy);
    gn_tensor y = mk(be, N, C, H, W, lay, NULL), dx = mk(be, N, C, H, W, lay, NULL);
    gn_tensor z = mk(be, N, C, H, W, lay, NULL), dz = mk(be, N, C, H, W, lay, NULL);
    gn_tensor g = mk(be, C, 1, 1, 1, GN_LAYOUT_NCHW, hg), b = mk(be, C, 1, 1, 1, GN_LAYOUT_NCHW, hb);
    gn_tensor m = mk(be, C, 1, 1, 1, GN_LAYOUT_NCHW, NULL), v = mk(be, C, 1, 1, 1, GN_LAYOUT_NCHW, NULL);
    gn_tensor dg = mk(be, C, 1, 1, 1, GN_LAYOUT_NCHW, NULL), db = mk(be, C, 1, 1, 1, GN_LAYOUT_NCHW, NULL);
    gn_tensor ws = {0};
    if (fused) {
        size_t need = 0;
        OK(gn_bn_relu_workspace(be, &x, q->eps, &need, E));
        size_t nel = (size_t)N * C * H * W;
        /* at least a bit per element ("dnnl": oneDNN's JIT mask), a byte on "ref" */
        assert_true(need * sizeof(float) * 8 >= nel);
        if (!strcmp(gn_backend_name(be), "ref"))
            assert_true(need * sizeof(float) >= nel);
        ws = mk(be, (int)need, 1, 1, 1, GN_LAYOUT_NCHW, NULL);
        memset(ws.data, 0xa5, need * sizeof(float)); /* the forward must write what the backward reads */
        OK(gn_bn_relu_fwd_train(be, &x, &g, &b, q->eps, &y, &m, &v, &ws, E));
        OK(gn_bn_relu_bwd(be, &x, &dy, &g, &m, &v, q->eps, &ws, &dx, &dg, &db, E));
    } else {
        OK(gn_bn_fwd_train(be, &x, &g, &b, q->eps, &z, &m, &v, E));
        OK(gn_eltwise_fwd(be, GN_ELT_RELU, &z, &y, E));
        OK(gn_eltwise_bwd(be, GN_ELT_RELU, &z, &dy, &dz, E));
        OK(gn_bn_bwd(be, &x, &dz, &g, &m, &v, q->eps, &dx, &dg, &db, E));
    }
    get(&y, o->y), get(&dx, o->dx);
    memcpy(o->mean, m.data, C * sizeof(float)), memcpy(o->var, v.data, C * sizeof(float));
    memcpy(o->dg, dg.data, C * sizeof(float)), memcpy(o->db, db.data, C * sizeof(float));
    gn_tensor *all[] = {&x, &dy, &y, &dx, &z, &dz, &g, &b, &m, &v, &dg, &db, &ws};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        gn_tensor_free(all[i]);
}

static void compare(const char *what, const op_out *got, const op_out *ref, size_t n, int c, double tol)
{
    char buf[256];
    const char *names[6] = {"y", "batch mean", "batch var", "dx", "dgamma", "dbeta"};
    const float *gv[6] = {got->y, got->mean, got->var, got->dx, got->dg, got->db};
    const float *rv[6] = {ref->y, ref->mean, ref->var, ref->dx, ref->dg, ref->db};
    for (int k = 0; k < 6; k++) {
        snprintf(buf, sizeof buf, "%s: %s", what, names[k]);
        tu_assert_close(buf, gv[k], rv[k], k == 0 || k == 3 ? n : (size_t)c, tol);
    }
}

static void test_op(void **state)
{
    (void)state;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const shape_cfg *q = &shapes[s];
        size_t n = (size_t)q->n * q->c * q->h * q->w;
        gn_rng_seed(&g_rng, 300 + s);
        float *hg = rand_vec(q->c, 0.5, 1.5), *hb = rand_vec(q->c, -0.5, 0.5);
        hg[0] = -hg[0]; /* a negative gamma: the ReLU's mask is on BN's output, not on x */
        float *hx = kink_free_input(q, hg, hb), *hdy = rand_vec(n, -1, 1);
        op_out f[2], u[2];
        for (int b = 0; b < 2; b++) {
            op_out_alloc(&f[b], n, q->c), op_out_alloc(&u[b], n, q->c);
            gn_layout lay = b == 1 ? q->lay : GN_LAYOUT_NCHW;
            run_op(g_be[b], q, lay, true, hx, hg, hb, hdy, &f[b]);
            run_op(g_be[b], q, lay, false, hx, hg, hb, hdy, &u[b]);
        }
        char what[96];
        snprintf(what, sizeof what, "[%d,%d,%d,%d] %s eps %g", q->n, q->c, q->h, q->w,
                 q->lay == GN_LAYOUT_NHWC ? "nhwc" : "nchw", (double)q->eps);
        char w2[200];
        snprintf(w2, sizeof w2, "%s: dnnl fused vs ref fused", what);
        compare(w2, &f[1], &f[0], n, q->c, XB_TOL);
        snprintf(w2, sizeof w2, "%s: ref fused vs ref unfused", what);
        compare(w2, &f[0], &u[0], n, q->c, 0.0);
        snprintf(w2, sizeof w2, "%s: dnnl fused vs dnnl unfused", what);
        compare(w2, &f[1], &u[1], n, q->c, 1e-5);
        /* the ReLU did something: some outputs are 0, some gradients masked */
        size_t zeros = 0;
        for (size_t i = 0; i < n; i++)
            zeros += f[1].y[i] == 0.0f;
        assert_true(zeros > 0 && zeros < n);
        for (int b = 0; b < 2; b++)
            op_out_free(&f[b]), op_out_free(&u[b]);
        free(hx), free(hdy), free(hg), free(hb);
    }
}

/* the same entry again (the primitive cache), and a second forward overwriting the workspace */
static void test_op_repeat(void **state)
{
    (void)state;
    const shape_cfg q = {4, 16, 6, 6, GN_LAYOUT_NHWC, 1e-5f};
    size_t n = (size_t)q.n * q.c * q.h * q.w;
    gn_rng_seed(&g_rng, 77);
    float *hg = rand_vec(q.c, 0.5, 1.5), *hb = rand_vec(q.c, -0.5, 0.5);
    float *hx = kink_free_input(&q, hg, hb), *hdy = rand_vec(n, -1, 1);
    op_out a, b;
    op_out_alloc(&a, n, q.c), op_out_alloc(&b, n, q.c);
    run_op(g_be[1], &q, q.lay, true, hx, hg, hb, hdy, &a);
    run_op(g_be[1], &q, q.lay, true, hx, hg, hb, hdy, &b);
    compare("dnnl fused, twice", &b, &a, n, q.c, 0.0);
    op_out_free(&a), op_out_free(&b);
    free(hx), free(hdy), free(hg), free(hb);
}

static void test_errors(void **state)
{
    (void)state;
    for (int bi = 0; bi < 2; bi++) {
        gn_backend *be = g_be[bi];
        gn_error err = {{0}};
        gn_tensor x = mk(be, 2, 8, 4, 4, GN_LAYOUT_NCHW, NULL), y = mk(be, 2, 8, 4, 4, GN_LAYOUT_NCHW, NULL);
        gn_tensor v = mk(be, 8, 1, 1, 1, GN_LAYOUT_NCHW, NULL), ws = {0};
        memset(x.data, 0, gn_tensor_numel(&x) * sizeof(float));
        for (int i = 0; i < 8; i++)
            v.data[i] = 1.0f;
        assert_int_equal(gn_bn_relu_supported(be), 1);
        size_t need = 0;
        OK(gn_bn_relu_workspace(be, &x, 1e-3f, &need, E));
        assert_true(need > 0);
        if (need > 1) { /* one element short */
            ws = mk(be, (int)need - 1, 1, 1, 1, GN_LAYOUT_NCHW, NULL);
            assert_int_not_equal(gn_bn_relu_fwd_train(be, &x, &v, &v, 1e-3f, &y, &v, &v, &ws, &err), 0);
            assert_non_null(strstr(err.msg, "workspace"));
            gn_tensor_free(&ws);
        }
        ws = mk(be, (int)need, 1, 1, 1, GN_LAYOUT_NCHW, NULL);
        gn_tensor m = mk(be, 8, 1, 1, 1, GN_LAYOUT_NCHW, NULL), va = mk(be, 8, 1, 1, 1, GN_LAYOUT_NCHW, NULL);
        /* y aliasing x */
        assert_int_not_equal(gn_bn_relu_fwd_train(be, &x, &v, &v, 1e-3f, &x, &m, &va, &ws, &err), 0);
        assert_non_null(strstr(err.msg, "alias"));
        /* no workspace */
        assert_int_not_equal(gn_bn_relu_fwd_train(be, &x, &v, &v, 1e-3f, &y, &m, &va, NULL, &err), 0);
        assert_non_null(strstr(err.msg, "workspace"));
        /* eps 0 */
        assert_int_not_equal(gn_bn_relu_fwd_train(be, &x, &v, &v, 0.0f, &y, &m, &va, &ws, &err), 0);
        OK(gn_bn_relu_fwd_train(be, &x, &v, &v, 1e-3f, &y, &m, &va, &ws, E));
        /* backward: dx aliasing dy, wrong dgamma length */
        gn_tensor dx = mk(be, 2, 8, 4, 4, GN_LAYOUT_NCHW, NULL), short_v = mk(be, 7, 1, 1, 1, GN_LAYOUT_NCHW, NULL);
        assert_int_not_equal(gn_bn_relu_bwd(be, &x, &y, &v, &m, &va, 1e-3f, &ws, &y, &v, &v, &err), 0);
        assert_non_null(strstr(err.msg, "alias"));
        assert_int_not_equal(gn_bn_relu_bwd(be, &x, &y, &v, &m, &va, 1e-3f, &ws, &dx, &short_v, &v, &err), 0);
        assert_non_null(strstr(err.msg, "dgamma"));
        gn_tensor dg = mk(be, 8, 1, 1, 1, GN_LAYOUT_NCHW, NULL), db = mk(be, 8, 1, 1, 1, GN_LAYOUT_NCHW, NULL);
        OK(gn_bn_relu_bwd(be, &x, &y, &v, &m, &va, 1e-3f, &ws, &dx, &dg, &db, E));
        gn_tensor *all[] = {&x, &y, &v, &ws, &m, &va, &dx, &short_v, &dg, &db};
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            gn_tensor_free(all[i]);
    }
}

/* ------------------------------------------------------------------ training */
/* A small network with BN + ReLU pairs (head, conv, fused_irb with SE and a residual,
 * irb with a residual, tail) and one swish layer, whose BN + swish stays unfused. */
static const char net_json[] =
    "[{\"layer_type\": \"data\", \"img_resolution\": 16, \"distill\": false},\n"
    " {\"layer_type\": \"head\", \"num_in_channels\": 1, \"num_out_channels\": 8, \"act\": \"relu\"},\n"
    " {\"layer_type\": \"conv\", \"num_in_channels\": 8, \"num_out_channels\": 8, \"stride\": 1,"
    "  \"kernel_size\": 3, \"act\": \"relu\", \"stage\": 1},\n"
    " {\"layer_type\": \"fused_irb\", \"num_in_channels\": 8, \"num_out_channels\": 8, \"stride\": 1,"
    "  \"expansion\": 2, \"kernel_size\": 3, \"act\": \"relu\", \"use_se\": true, \"stage\": 2},\n"
    " {\"layer_type\": \"irb\", \"num_in_channels\": 8, \"num_out_channels\": 16, \"stride\": 2,"
    "  \"expansion\": 3, \"kernel_size\": 3, \"act\": \"swish\", \"use_se\": false, \"stage\": 3},\n"
    " {\"layer_type\": \"irb\", \"num_in_channels\": 16, \"num_out_channels\": 16, \"stride\": 1,"
    "  \"expansion\": 3, \"kernel_size\": 5, \"act\": \"relu\", \"use_se\": false, \"stage\": 3},\n"
    " {\"layer_type\": \"tail\", \"num_in_channels\": 16, \"num_out_channels\": 32, \"num_classes\": 5}]\n";

enum { BATCH = 8, STEPS = 3, RES = 16, K = 5 };

typedef struct {
    gn_net *net;
    gn_optim *opt;
    float loss[STEPS];
} run_t;

static void set_fusion(bool on)
{
    if (on)
        unsetenv("GPUNAS_NO_BN_RELU_FUSION");
    else
        setenv("GPUNAS_NO_BN_RELU_FUSION", "1", 1);
}

static void train_run(const gn_arch *a, gn_backend *be, bool fused, run_t *r)
{
    gn_error err;
    set_fusion(fused);
    if (gn_net_create(a, be, &r->net, &err))
        fail_msg("%s", err.msg);
    set_fusion(true);
    OK(gn_net_init(r->net, 42, E));
    OK(gn_net_randomize_bn(r->net, 43, E)); /* gammas and betas away from 1 and 0 */
    gn_train_opts o = {.dropout = true, .drop_path = true, .bn_momentum = 0.1f, .seed = 9};
    gn_net_set_train_opts(r->net, &o);
    gn_optim_config oc;
    gn_optim_defaults(GN_OPT_SGD, &oc);
    OK(gn_optim_create_for_net(&oc, r->net, &r->opt, E));
    gn_tensor x;
    OK(gn_tensor_alloc(&x, be, BATCH, 1, RES, RES, E));
    int32_t labels[BATCH];
    gn_rng rng;
    gn_rng_seed(&rng, 5);
    for (int s = 0; s < STEPS; s++) {
        for (size_t i = 0; i < gn_tensor_numel(&x); i++)
            x.data[i] = (float)gn_rng_normal(&rng);
        for (int i = 0; i < BATCH; i++)
            labels[i] = (int32_t)gn_rng_below(&rng, K);
        OK(gn_net_train_step(r->net, &x, labels, 0.1f, &r->loss[s], E));
        OK(gn_optim_step(r->opt, gn_net_values(r->net), gn_net_grads(r->net), 0.05, E));
    }
    gn_tensor_free(&x);
}

static void train_free(run_t *r)
{
    gn_optim_free(r->opt);
    gn_net_free(r->net);
}

static void check_training(const char *backend, gn_backend *be)
{
    gn_error err;
    gn_arch *a;
    char *path = tu_tmp_path("bn-relu-net.json");
    assert_int_equal(tu_write_file(path, net_json), 0);
    if (gn_arch_load(path, &a, &err))
        fail_msg("%s", err.msg);
    free(path);
    run_t f, u;
    train_run(a, be, true, &f);
    train_run(a, be, false, &u);
    gn_net *nf = f.net, *nu = u.net;
    bool exact = !strcmp(backend, "ref");

    /* the plan: every BN that only a ReLU right after it reads, and nothing else */
    int expect = 0, swish_pairs = 0;
    for (int i = 0; i + 1 < nf->n_nodes; i++) {
        const gn_node *nd = &nf->nodes[i], *nx = &nf->nodes[i + 1];
        bool pair = nd->k == ND_BN && nx->k == ND_ACT && nx->in == nd->out;
        expect += pair && nx->act == GN_ELT_RELU;
        swish_pairs += pair && nx->act == GN_ELT_SILU;
        assert_int_equal(nd->relu_fused, pair && nx->act == GN_ELT_RELU);
        assert_int_equal(nx->fused_into_bn, nd->relu_fused);
        assert_false(nu->nodes[i].relu_fused || nu->nodes[i + 1].fused_into_bn);
        if (nd->relu_fused) { /* no pre-activation stored; both nodes counted as run */
            assert_null(nf->v[nd->out].data);
            assert_null(nf->dv[nd->out].data);
            assert_non_null(nu->v[nd->out].data);
            assert_non_null(nd->ws.data);
            assert_int_equal(nd->runs_fwd, STEPS);
            assert_int_equal(nx->runs_fwd, STEPS);
            assert_int_equal(nx->runs_bwd, STEPS);
        }
    }
    /* head, conv, fused_irb's expand, the relu irb's pw and dw, the tail: 6; the swish
     * irb's pw and dw stay unfused */
    assert_int_equal(expect, 6);
    assert_int_equal(swish_pairs, 2);
    assert_int_equal(gn_net_bn_relu_pairs(nf), expect);
    assert_int_equal(gn_net_bn_relu_pairs(nu), 0);

    /* losses, step by step */
    for (int s = 0; s < STEPS; s++) {
        fprintf(stderr, "%s step %d: loss fused %.9g unfused %.9g\n", backend, s, (double)f.loss[s],
                (double)u.loss[s]);
        if (exact)
            assert_true(f.loss[s] == u.loss[s]);
        else
            assert_true(fabs(f.loss[s] - u.loss[s]) <= 1e-5 * fabs(u.loss[s]));
    }
    /* every parameter and running statistic after the steps; the last step's gradients */
    for (int p = 0; p < gn_net_num_params(nf); p++) {
        gn_param *pf = gn_net_param(nf, p), *pu = gn_net_param(nu, p);
        char what[GN_NAME_MAX + 32];
        snprintf(what, sizeof what, "%s %s", backend, pf->name);
        tu_assert_close(what, pf->value.data, pu->value.data, gn_tensor_numel(&pf->value), exact ? 0.0 : 1e-5);
        if (pf->trainable) {
            snprintf(what, sizeof what, "%s grad %s", backend, pf->name);
            /* gradients relative to the largest of the tensor's (small tensors of BN biases) */
            double sc = fmax(1e-3, tu_maxabs(pu->grad.data, gn_tensor_numel(&pu->grad)));
            size_t n = gn_tensor_numel(&pf->grad);
            for (size_t i = 0; i < n; i++) {
                double d = fabs((double)pf->grad.data[i] - pu->grad.data[i]);
                if (exact ? d != 0 : d > 1e-3 * sc)
                    fail_msg("%s[%zu]: %.9g vs %.9g", what, i, (double)pf->grad.data[i], (double)pu->grad.data[i]);
            }
        }
    }
    /* the eval forward (BN inference + ReLU in place for a fused pair) */
    gn_tensor x;
    OK(gn_tensor_alloc(&x, be, BATCH, 1, RES, RES, E));
    gn_rng rng;
    gn_rng_seed(&rng, 17);
    for (size_t i = 0; i < gn_tensor_numel(&x); i++)
        x.data[i] = (float)gn_rng_normal(&rng);
    const gn_tensor *lf, *lu;
    OK(gn_net_forward_eval(nf, &x, &lf, E));
    OK(gn_net_forward_eval(nu, &x, &lu, E));
    tu_assert_close("eval logits", lf->data, lu->data, gn_tensor_numel(lu), exact ? 0.0 : 1e-5);
    /* NASWOT reads a fused ReLU's output instead of its input: the same bits */
    double sf, su;
    int64_t uf, uu;
    OK(gn_net_naswot(nf, &x, &sf, &uf, E));
    OK(gn_net_naswot(nu, &x, &su, &uu, E));
    fprintf(stderr, "%s naswot fused %.9g unfused %.9g (%lld units)\n", backend, sf, su, (long long)uf);
    assert_int_equal(uf, uu);
    if (exact)
        assert_true(sf == su);
    else
        assert_true(fabs(sf - su) <= 1e-3 * fmax(1.0, fabs(su)));
    gn_tensor_free(&x);
    train_free(&f);
    train_free(&u);
    gn_arch_free(a);
}

static void test_training_ref(void **state)
{
    (void)state;
    check_training("ref", g_be[0]);
}

static void test_training_dnnl(void **state)
{
    (void)state;
    check_training("dnnl", g_be[1]);
}

/* the switch is read when the graph is built, not per step: a net built with fusion keeps it */
static void test_switch_at_build(void **state)
{
    (void)state;
    gn_error err;
    gn_arch *a;
    char *path = tu_tmp_path("bn-relu-net2.json");
    assert_int_equal(tu_write_file(path, net_json), 0);
    if (gn_arch_load(path, &a, &err))
        fail_msg("%s", err.msg);
    free(path);
    gn_net *net;
    set_fusion(true);
    OK(gn_net_create(a, g_be[1], &net, E));
    OK(gn_net_init(net, 1, E));
    int n = net->n_bn_relu;
    assert_true(n > 0);
    set_fusion(false);
    gn_tensor x;
    OK(gn_tensor_alloc(&x, g_be[1], 4, 1, RES, RES, E));
    memset(x.data, 0, gn_tensor_numel(&x) * sizeof(float));
    x.data[3] = 1.0f;
    int32_t labels[4] = {0, 1, 2, 3};
    float loss;
    OK(gn_net_train_step(net, &x, labels, 0.0f, &loss, E));
    assert_int_equal(net->n_bn_relu, n);
    for (int i = 0; i < net->n_nodes; i++)
        if (net->nodes[i].relu_fused)
            assert_null(net->v[net->nodes[i].out].data);
    set_fusion(true);
    gn_tensor_free(&x);
    gn_net_free(net);
    gn_arch_free(a);
}

/* ------------------------------------------------------------------ main */
static int setup(void **state)
{
    (void)state;
    gn_error err;
    unsetenv("GPUNAS_NO_BN_RELU_FUSION");
    for (int i = 0; i < 2; i++)
        if (gn_backend_create(g_names[i], &g_be[i], &err) != 0) {
            fprintf(stderr, "backend %s: %s\n", g_names[i], err.msg);
            return -1;
        }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < 2; i++)
        gn_backend_destroy(g_be[i]);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_op),          cmocka_unit_test(test_op_repeat),     cmocka_unit_test(test_errors),
        cmocka_unit_test(test_training_ref), cmocka_unit_test(test_training_dnnl), cmocka_unit_test(test_switch_at_build),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
