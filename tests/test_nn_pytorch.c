/*
 * test_nn_pytorch.c — one training step of gpunas against PyTorch.
 *
 * Networks: the bundled Fashion-MNIST config (32x32, batch 8) and two small test
 * networks (standard blocks; distill family) on the dnnl backend, and GPUNet-0 (native
 * 320x320, batch 2) on the ref backend.  Random weights (gpunas init) and a random batch
 * are written as safetensors; tests/pytorch/gpunet_ref.py (Debian's /usr/bin/python3 with
 * torch) runs the same training step (BN batch statistics, dropout and drop-path off) in
 * FP32 and in float64.  Logits, loss, every parameter gradient and every updated BN
 * running statistic must agree with float64 (the truth) to a normwise relative error
 * max|c - t| / max(max|t|, floor) <= 1e-4 (floor: see the loop).
 *
 * Why GPUNet-0 runs on ref: at random init it is ill-conditioned in FP32 (layer 12's
 * bn1/conv_pw gradients, and everything upstream): PyTorch's own FP32 run is 3.7e-2 off
 * float64 there and >1e-4 on 63 of 156 tensors, and dnnl was up to ~8x PyTorch FP32's
 * error.  The ref backend accumulates in double and meets 1e-4 (worst 2.7e-6).  Where
 * PyTorch FP32 itself exceeds 1e-4 the budget widens to 10x its error (no run here
 * needs that); the test prints how many tensors are in that state.
 * ReLU kinks: a ReLU input within FP32 noise of 0 flips its mask between gpunas and
 * PyTorch and changes that element's gradient by O(1) relative — not an error of either.
 * On dnnl the test therefore draws the random batch again (seeded, at most 40 draws)
 * until every ReLU input of the training forward is at least 2e-6 away from 0 (the
 * engines differ by ~1e-7 there); the seed used is printed.  (ref accumulates in double
 * and is not re-drawn.)
 * Skips (cleanly, with a message) when /usr/bin/python3 has no torch.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpunas/network.h"
#include "gpunas/rng.h"
#include "nn/network_internal.h"
#include "gpunas/safetensors.h"
#include "testutil.h"

#define PY "/usr/bin/python3"

static int have_torch(void) { return system(PY " -c 'import torch' >/dev/null 2>&1") == 0; }

#define KINK_MARGIN 2e-6

static void random_batch(uint64_t seed, float *hx, size_t nx, int32_t *labels, int batch, int K)
{
    gn_rng rng;
    gn_rng_seed(&rng, seed);
    for (size_t i = 0; i < nx; i++)
        hx[i] = (float)gn_rng_normal(&rng);
    for (int i = 0; i < batch; i++)
        labels[i] = (int32_t)gn_rng_below(&rng, K);
}

/* smallest |input| of any ReLU in a training forward of a fresh copy of the network */
static double relu_margin(const gn_arch *a, gn_backend *be, const float *hx, int batch)
{
    gn_error err;
    gn_net *net;
    assert_int_equal(gn_net_create(a, be, &net, &err), 0);
    assert_int_equal(gn_net_init(net, 1234, &err), 0);
    gn_train_opts o = {.dropout = false, .drop_path = false, .bn_momentum = 0.1f, .seed = 1};
    gn_net_set_train_opts(net, &o);
    gn_tensor x;
    const gn_tensor *logits;
    int C = a->layers[1].in_ch, R = a->resolution;
    assert_int_equal(gn_tensor_alloc(&x, be, batch, C, R, R, &err), 0);
    assert_int_equal(gn_tensor_from_host(&x, hx, &err), 0);
    assert_int_equal(gn_net_forward_train(net, &x, &logits, &err), 0);
    double m = INFINITY;
    for (int i = 0; i < net->n_nodes; i++) {
        const gn_node *nd = &net->nodes[i];
        if (nd->k != ND_ACT || nd->act != GN_ELT_RELU)
            continue;
        for (size_t j = 0; j < gn_tensor_numel(&net->v[nd->out]); j++)
            m = fmin(m, fabs(tu_relu_input(net, i, j)));
    }
    gn_tensor_free(&x);
    gn_net_free(net);
    return m;
}


static void cross_check(const char *config, int batch, const char *backend)
{
    if (getenv("GPUNAS_TEST_BACKEND"))
        backend = getenv("GPUNAS_TEST_BACKEND");
    if (!have_torch()) {
        fprintf(stderr, "skipping: %s has no torch (install python3-torch)\n", PY);
        skip();
    }
    gn_error err;
    gn_arch *a;
    char *cfg = tu_source_path(config);
    assert_int_equal(gn_arch_load(cfg, &a, &err), 0);
    gn_backend *be;
    assert_int_equal(gn_backend_create(backend, &be, &err), 0);
    gn_net *net;
    if (gn_net_create(a, be, &net, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(gn_net_init(net, 1234, &err), 0);
    /* BN running stats away from the identity so the running-stat update is checked */
    gn_train_opts o = {.dropout = false, .drop_path = false, .bn_momentum = 0.1f, .seed = 1};
    gn_net_set_train_opts(net, &o);

    char *wpath = tu_tmp_path("pt-w.safetensors"), *ipath = tu_tmp_path("pt-in.safetensors"),
         *opath = tu_tmp_path("pt-out.safetensors");
    assert_int_equal(gn_net_save(net, wpath, &err), 0);

    int C = a->layers[1].in_ch, R = a->resolution, K = a->layers[a->n_layers - 1].num_classes;
    size_t nx = (size_t)batch * C * R * R;
    float *hx = malloc(nx * sizeof *hx), *hl = malloc(batch * sizeof *hl);
    int32_t *labels = malloc(batch * sizeof *labels);
    uint64_t seed = 99;
    random_batch(seed, hx, nx, labels, batch, K);
    if (strcmp(backend, "dnnl") == 0) {
        double m = relu_margin(a, be, hx, batch);
        while (m < KINK_MARGIN && seed < 99 + 40) {
            random_batch(++seed, hx, nx, labels, batch, K);
            m = relu_margin(a, be, hx, batch);
        }
        fprintf(stderr, "%s: batch seed %llu, smallest |ReLU input| %.3g\n", config, (unsigned long long)seed, m);
        assert_true(m >= KINK_MARGIN);
    }
    for (int i = 0; i < batch; i++)
        hl[i] = (float)labels[i];
    gn_st_writer *w = gn_st_writer_new();
    int64_t xs[4] = {batch, C, R, R}, ls[1] = {batch};
    assert_int_equal(gn_st_writer_add(w, "input", 4, xs, hx, &err), 0);
    assert_int_equal(gn_st_writer_add(w, "labels", 1, ls, hl, &err), 0);
    assert_int_equal(gn_st_writer_write(w, ipath, &err), 0);
    gn_st_writer_free(w);

    char *script = tu_source_path("tests/pytorch/gpunet_ref.py"), *dpath = tu_tmp_path("pt-out64.safetensors");
    char cmd[4096];
    for (int dbl = 0; dbl < 2; dbl++) {
        snprintf(cmd, sizeof cmd,
                 "OMP_NUM_THREADS=2 " PY " %s %s --res %d --classes %d --weights %s --input %s --out %s --train "
                 "--no-dropout --no-droppath %s >/dev/null",
                 script, cfg, R, K, wpath, ipath, dbl ? dpath : opath, dbl ? "--double" : "");
        assert_int_equal(system(cmd), 0);
    }

    /* gpunas: the same step */
    gn_tensor x;
    assert_int_equal(gn_tensor_alloc(&x, be, batch, C, R, R, &err), 0);
    assert_int_equal(gn_tensor_from_host(&x, hx, &err), 0);
    const gn_tensor *logits;
    assert_int_equal(gn_net_forward_train(net, &x, &logits, &err), 0);
    float *lg = malloc((size_t)batch * K * sizeof *lg);
    assert_int_equal(gn_tensor_to_host(logits, lg, &err), 0);
    float loss;
    gn_tensor dl;
    assert_int_equal(gn_tensor_alloc(&dl, be, batch, K, 1, 1, &err), 0);
    assert_int_equal(gn_softmax_xent(be, logits, labels, 0.0f, &loss, &dl, &err), 0);
    assert_int_equal(gn_net_backward(net, &dl, &err), 0);

    gn_st_file *f32, *f64;
    if (gn_st_open(opath, &f32, &err) || gn_st_open(dpath, &f64, &err))
        fail_msg("%s", err.msg);
    float tl;
    assert_int_equal(gn_st_load_numel(f64, "loss", 1, &tl, &err), 0);
    fprintf(stderr, "%s: loss gpunas %.7f torch(float64) %.7f\n", config, loss, tl);
    assert_true(fabs(loss - tl) <= 1e-4 * fabs(tl));

    /* every compared tensor: logits, then grads / running stats in parameter order */
    int np = gn_net_num_params(net), compared = 0, fp32_limited = 0;
    double worst = 0, gscale = 0;
    for (int q = 0; q < np; q++) { /* the largest true gradient, for the floor below */
        gn_param *p = gn_net_param(net, q);
        if (!p->trainable)
            continue;
        size_t n = gn_tensor_numel(&p->value);
        float *t64 = malloc(n * sizeof *t64);
        char name[GN_NAME_MAX + 8];
        snprintf(name, sizeof name, "grad.%s", p->name);
        if (gn_st_load_numel(f64, name, (int64_t)n, t64, &err))
            fail_msg("%s", err.msg);
        for (size_t i = 0; i < n; i++)
            gscale = fmax(gscale, fabs((double)t64[i]));
        free(t64);
    }
    const char *worst_name = "";
    for (int q = -1; q < np; q++) {
        gn_param *p = q >= 0 ? gn_net_param(net, q) : NULL;
        size_t n = p ? gn_tensor_numel(&p->value) : (size_t)batch * K;
        char name[GN_NAME_MAX + 8];
        snprintf(name, sizeof name, !p ? "logits" : p->trainable ? "grad.%s" : "%s", p ? p->name : "");
        float *t64 = malloc(n * sizeof *t64), *t32 = malloc(n * sizeof *t32), *mine = malloc(n * sizeof *mine);
        if (gn_st_load_numel(f64, name, (int64_t)n, t64, &err) || gn_st_load_numel(f32, name, (int64_t)n, t32, &err))
            fail_msg("%s", err.msg);
        if (p)
            assert_int_equal(gn_tensor_to_host(p->trainable ? &p->grad : &p->value, mine, &err), 0);
        else
            memcpy(mine, lg, n * sizeof *mine);
        double mt = 0, dm = 0, dt = 0;
        for (size_t i = 0; i < n; i++) {
            mt = fmax(mt, fabs((double)t64[i]));
            dm = fmax(dm, fabs((double)mine[i] - t64[i]));
            dt = fmax(dt, fabs((double)t32[i] - t64[i]));
        }
        /* scale: the tensor's own magnitude, floored so that a tensor that is zero by
         * symmetry (the gradient of a BN bias followed by a padding-free conv and a
         * training-mode BN: ~1e-16 in float64, ~1e-8 FP32 noise) is not divided by ~0:
         * gradients at 1e-3 of the largest gradient, running statistics at 1e-3 (the
         * activations are O(1)) */
        double scale = fmax(mt, !p ? 1e-30 : p->trainable ? 1e-3 * gscale : 1e-3);
        double rm = dm / scale, rt = dt / scale;
        /* the budget: 1e-4, unless PyTorch's own FP32 run is further than that from
         * float64 (an ill-conditioned tensor); then no worse than 10x PyTorch FP32 */
        double budget = fmax(1e-4, 10.0 * rt);
        if (rt > 1e-4)
            fp32_limited++;
        if (rm > budget || rt > 1e-4)
            fprintf(stderr, "%s: %s: gpunas %.3g, torch-fp32 %.3g (vs float64, max|t| %.3g)\n", config, name, rm, rt,
                    mt);
        assert_true(rm <= budget);
        if (rm > worst) {
            worst = rm;
            worst_name = p ? p->name : "logits";
        }
        compared++;
        free(t64);
        free(t32);
        free(mine);
    }
    fprintf(stderr,
            "%s: %d tensors (logits, gradients, running stats) vs PyTorch float64: worst normwise rel err %.3g (%s); "
            "%d tensors where PyTorch FP32 itself exceeds 1e-4\n",
            config, compared, worst, worst_name, fp32_limited);
    gn_st_close(f32);
    gn_st_close(f64);
    free(dpath);
    gn_tensor_free(&x);
    gn_tensor_free(&dl);
    free(lg);
    free(hx);
    free(hl);
    free(labels);
    free(script);
    free(cfg);
    free(wpath);
    free(ipath);
    free(opath);
    gn_net_free(net);
    gn_backend_destroy(be);
    gn_arch_free(a);
}

static void test_fmnist_small(void **s) { cross_check("configs/fmnist-small.json", 8, "dnnl"); }
static void test_gradcheck_net(void **s) { cross_check("tests/data/gradcheck.json", 4, "dnnl"); }
static void test_distill_net(void **s) { cross_check("tests/data/gradcheck-distill.json", 4, "dnnl"); }
/* GPUNet-0 on the ref backend (double accumulation): its FP32 conditioning is poor at
 * random init (PyTorch FP32 is >1e-4 off float64 on 63 of 156 tensors; dnnl was up to
 * ~8x PyTorch FP32's error there), so the ref backend is where the 1e-4 goal is
 * checkable; dnnl == ref is covered by test_nn_network on the smaller networks */
static void test_gpunet0_ref(void **s) { cross_check("configs/gpunet/gpunet-0.json", 2, "ref"); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fmnist_small),
        cmocka_unit_test(test_gradcheck_net),
        cmocka_unit_test(test_distill_net),
        cmocka_unit_test(test_gpunet0_ref),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
