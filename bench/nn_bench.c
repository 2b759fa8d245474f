/*
 * nn_bench.c — speed of the compute engine on one GPUNet config (issue 3 benchmark).
 *
 *   nn_bench CONFIG [--res R] [--in-ch C] [--classes K] [--batch B] [--threads T]
 *            [--iters N] [--backend dnnl|ref] [--seed S] [--ab-fusion] [--profile-ops]
 *            [--infer-only]
 *
 * Measures, after warm-up:
 *   train   forward + softmax cross-entropy + backward (gn_net_train_step: training-mode
 *           BN, no dropout / drop-path, no optimizer update) at batch B: images/s from
 *           the median step time over N steps;
 *   infer   batch-1 inference (gn_net_infer: BN folded, fused post-ops): median, p10 and
 *           p90 latency over max(5N, 50) runs.
 * bench/nn_bench_pytorch.py measures the same two things for the same network in
 * PyTorch eager; bench/nn_bench.sh runs both, interleaved, for the configs.
 * Output: one line "key=value ..." per measurement, easy to paste into RESULTS.md; the
 * training line ends with the last step's loss and the number of BN + ReLU pairs run
 * fused (GPUNAS_NO_BN_RELU_FUSION=1 in the environment: none, to compare).
 *
 * --ab-fusion (issue 21, on a shared machine): a second copy of the network built with
 * GPUNAS_NO_BN_RELU_FUSION=1 (same weights), and the training steps alternate between
 * the two, fused first in odd pairs and unfused first in even ones, so that load from
 * other processes hits both alike; prints both medians, their ratio, the median of
 * the per-pair ratios and each net's mean time per step in BN + activations and in
 * convolutions (gn_op_profile; a fused pair is booked under BN), then exits (no
 * inference).
 *
 * --profile-ops (issue 21's "profile that explains the rest"): after the timed steps,
 * N more training steps with the op profile on (gn_op_profile: two clock reads per
 * node), then one line per op kind with its forward and backward ms per step and its
 * share of the step, the rest of the step (loss, copies, the pass's own bookkeeping)
 * as "other", and the convolutions' throughput counting 3 x 2 x MACs per image (all of
 * the network's MACs, so an upper bound) for a comparison with fma_peak.
 * --infer-only skips training (for ONEDNN_VERBOSE=1 traces of the inference alone).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpunas/arch.h"
#include "gpunas/backend.h"
#include "gpunas/network.h"
#include "gpunas/rng.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
    qsort(v, n, sizeof *v, cmp_d);
    int i = (int)(p * (n - 1) + 0.5);
    return v[i];
}

static int die(const char *what, const gn_error *e)
{
    fprintf(stderr, "nn_bench: %s: %s\n", what, e->msg);
    return 1;
}

/* --profile-ops: N profiled training steps, one line per op kind */
static int profile_ops(const gn_arch *a, gn_net *net, const gn_tensor *x, const int32_t *labels, int iters,
                       const char *backend, const char *cfg, int threads)
{
    gn_error err = {{0}};
    gn_op_profile p;
    memset(&p, 0, sizeof p);
    float loss;
    gn_net_set_op_profile(net, &p);
    double t0 = now_s();
    for (int i = 0; i < iters; i++)
        if (gn_net_train_step(net, x, labels, 0.0f, &loss, &err))
            return die("train step", &err);
    double step = (now_s() - t0) / iters, ops = 0;
    gn_net_set_op_profile(net, NULL);
    for (int k = 0; k < GN_OPK_N; k++) {
        if (!p.fwd_n[k] && !p.bwd_n[k])
            continue;
        double f = p.fwd_s[k] / iters, b = p.bwd_s[k] / iters;
        ops += f + b;
        printf("engine=gpunas-%s config=%s res=%d batch=%d threads=%d profile=%s fwd_ms=%.2f bwd_ms=%.2f "
               "calls_per_step=%.0f share=%.1f%%\n",
               backend, cfg, a->resolution, x->n, threads, gn_op_kind_name(k), f * 1e3, b * 1e3,
               (double)(p.fwd_n[k] + p.bwd_n[k]) / iters, 100 * (f + b) / step);
    }
    double conv = (p.fwd_s[GN_OPK_CONV] + p.bwd_s[GN_OPK_CONV]) / iters;
    printf("engine=gpunas-%s config=%s res=%d batch=%d threads=%d profile=other ms=%.2f share=%.1f%% "
           "step_ms=%.2f conv_gflops_upper=%.1f step_gflops=%.1f\n",
           backend, cfg, a->resolution, x->n, threads, (step - ops) * 1e3, 100 * (step - ops) / step, step * 1e3,
           6.0 * (double)a->macs * x->n / conv * 1e-9, 6.0 * (double)a->macs * x->n / step * 1e-9);
    return 0;
}

/* --ab-fusion: net (built as the environment says) against a copy without BN + ReLU
 * fusion, steps alternated */
static int ab_fusion(const gn_arch *a, gn_backend *be, gn_net *net, const gn_tensor *x, const int32_t *labels,
                     int iters, uint64_t seed, const char *cfg, int threads)
{
    gn_error err = {{0}};
    gn_net *nets[2] = {net, NULL};
    setenv("GPUNAS_NO_BN_RELU_FUSION", "1", 1);
    int rc = gn_net_create(a, be, &nets[1], &err);
    unsetenv("GPUNAS_NO_BN_RELU_FUSION");
    if (rc || gn_net_init(nets[1], seed, &err))
        return die("network (unfused)", &err);
    gn_train_opts o = {.dropout = false, .drop_path = false, .bn_momentum = 0.1f, .seed = seed};
    gn_net_set_train_opts(nets[1], &o);
    double *t[2] = {malloc(sizeof(double) * iters), malloc(sizeof(double) * iters)};
    double *r = malloc(sizeof(double) * iters);
    float loss[2];
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 3; i++)
            if (gn_net_train_step(nets[k], x, labels, 0.0f, &loss[k], &err))
                return die("train step", &err);
    /* the op profile of the timed steps: BN + activations (a fused pair is booked under
     * BN), and the convolutions as a control */
    gn_op_profile prof[2];
    memset(prof, 0, sizeof prof);
    for (int k = 0; k < 2; k++)
        gn_net_set_op_profile(nets[k], &prof[k]);
    int faster = 0;
    for (int i = 0; i < iters; i++) {
        for (int j = 0; j < 2; j++) {
            int k = i % 2 ? 1 - j : j;
            double t0 = now_s();
            if (gn_net_train_step(nets[k], x, labels, 0.0f, &loss[k], &err))
                return die("train step", &err);
            t[k][i] = now_s() - t0;
        }
        r[i] = t[1][i] / t[0][i];
        faster += r[i] > 1.0;
    }
    double rmed = pct(r, iters, 0.5), m0 = pct(t[0], iters, 0.5), m1 = pct(t[1], iters, 0.5);
    double ba[2], cv[2];
    for (int k = 0; k < 2; k++) {
        gn_op_profile *p = &prof[k];
        ba[k] = (p->fwd_s[GN_OPK_BN] + p->bwd_s[GN_OPK_BN] + p->fwd_s[GN_OPK_ACT] + p->bwd_s[GN_OPK_ACT]) / iters;
        cv[k] = (p->fwd_s[GN_OPK_CONV] + p->bwd_s[GN_OPK_CONV]) / iters;
        gn_net_set_op_profile(nets[k], NULL);
    }
    printf("engine=gpunas-%s config=%s res=%d batch=%d threads=%d ab=bn_relu_fusion pairs=%d fused_pairs=%d "
           "fused_ms=%.2f unfused_ms=%.2f unfused/fused=%.3f median_pair_ratio=%.3f fused_faster_in=%d/%d "
           "bn_act_ms_fused=%.2f bn_act_ms_unfused=%.2f conv_ms_fused=%.2f conv_ms_unfused=%.2f "
           "loss_fused=%.6f loss_unfused=%.6f\n",
           gn_backend_name(be), cfg, a->resolution, x->n, threads, iters, gn_net_bn_relu_pairs(nets[0]), m0 * 1e3,
           m1 * 1e3, m1 / m0, rmed, faster, iters, ba[0] * 1e3, ba[1] * 1e3, cv[0] * 1e3, cv[1] * 1e3, loss[0],
           loss[1]);
    free(t[0]), free(t[1]), free(r);
    gn_net_free(nets[1]);
    return 0;
}

int main(int argc, char **argv)
{
    const char *cfg = NULL, *backend = "dnnl";
    int res = 0, in_ch = 0, classes = 0, batch = 32, threads = 0, iters = 20;
    uint64_t seed = 1;
    int ab = 0, prof = 0, infer_only = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (a[0] != '-') {
            cfg = a;
            continue;
        }
        if (!strcmp(a, "--ab-fusion")) {
            ab = 1;
            continue;
        }
        if (!strcmp(a, "--profile-ops")) {
            prof = 1;
            continue;
        }
        if (!strcmp(a, "--infer-only")) {
            infer_only = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "nn_bench: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--res")) res = atoi(v);
        else if (!strcmp(a, "--in-ch")) in_ch = atoi(v);
        else if (!strcmp(a, "--classes")) classes = atoi(v);
        else if (!strcmp(a, "--batch")) batch = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--iters")) iters = atoi(v);
        else if (!strcmp(a, "--backend")) backend = v;
        else if (!strcmp(a, "--seed")) seed = strtoull(v, NULL, 10);
        else {
            fprintf(stderr, "nn_bench: unknown option %s\n", a);
            return 2;
        }
    }
    if (!cfg || batch < 1 || iters < 1) {
        fprintf(stderr, "usage: nn_bench CONFIG [--res R] [--batch B] [--threads T] [--iters N]\n");
        return 2;
    }
    gn_error err = {{0}};
    gn_arch *a = NULL;
    gn_backend *be = NULL;
    gn_net *net = NULL;
    if (gn_arch_load(cfg, &a, &err) || (res && gn_arch_set_resolution(a, res, &err)) ||
        (in_ch && gn_arch_set_in_channels(a, in_ch, &err)) || (classes && gn_arch_set_classes(a, classes, &err)))
        return die(cfg, &err);
    if (gn_backend_create(backend, &be, &err) || (threads && gn_backend_set_threads(be, threads, &err)))
        return die("backend", &err);
    if (gn_net_create(a, be, &net, &err) || gn_net_init(net, seed, &err))
        return die("network", &err);
    gn_train_opts o = {.dropout = false, .drop_path = false, .bn_momentum = 0.1f, .seed = seed};
    gn_net_set_train_opts(net, &o);

    int R = a->resolution, C = a->layers[1].in_c, K = a->layers[a->n_layers - 1].out_c;
    size_t per = (size_t)C * R * R;
    float *host = malloc(per * batch * sizeof *host);
    int32_t *labels = malloc(batch * sizeof *labels);
    gn_rng rng;
    gn_rng_seed(&rng, seed);
    for (size_t i = 0; i < per * batch; i++)
        host[i] = (float)gn_rng_normal(&rng);
    for (int i = 0; i < batch; i++)
        labels[i] = (int32_t)gn_rng_below(&rng, K);
    gn_tensor x = {0}, x1 = {0};
    if (gn_tensor_alloc(&x, be, batch, C, R, R, &err) || gn_tensor_from_host(&x, host, &err) ||
        gn_tensor_alloc(&x1, be, 1, C, R, R, &err) || gn_tensor_from_host(&x1, host, &err))
        return die("input", &err);

    /* training: forward + loss + backward */
    double *t = malloc(sizeof(double) * (iters > 50 ? iters * 5 : 250));
    float loss;
    if (ab) {
        int rc = ab_fusion(a, be, net, &x, labels, iters, seed, cfg, threads);
        free(t), free(host), free(labels);
        gn_tensor_free(&x), gn_tensor_free(&x1);
        gn_net_free(net), gn_backend_destroy(be), gn_arch_free(a);
        return rc;
    }
    for (int i = 0; i < 3 && !infer_only; i++)
        if (gn_net_train_step(net, &x, labels, 0.0f, &loss, &err))
            return die("train step", &err);
    for (int i = 0; i < iters && !infer_only; i++) {
        double t0 = now_s();
        if (gn_net_train_step(net, &x, labels, 0.0f, &loss, &err))
            return die("train step", &err);
        t[i] = now_s() - t0;
    }
    if (!infer_only) {
        double tmed = pct(t, iters, 0.5);
        printf("engine=gpunas-%s config=%s res=%d batch=%d threads=%d train_step_ms=%.2f train_img_s=%.1f "
               "(p10 %.2f ms, p90 %.2f ms) loss=%.6f bn_relu_fused=%d\n",
               backend, cfg, R, batch, threads, tmed * 1e3, batch / tmed, pct(t, iters, 0.1) * 1e3,
               pct(t, iters, 0.9) * 1e3, loss, gn_net_bn_relu_pairs(net));
    }
    if (prof && !infer_only && profile_ops(a, net, &x, labels, iters, backend, cfg, threads))
        return 1;

    /* batch-1 inference */
    const gn_tensor *logits;
    if (gn_net_prepare_inference(net, &err))
        return die("prepare inference", &err);
    int runs = iters * 5 > 50 ? iters * 5 : 50;
    for (int i = 0; i < 10; i++)
        if (gn_net_infer(net, &x1, &logits, &err))
            return die("infer", &err);
    for (int i = 0; i < runs; i++) {
        double t0 = now_s();
        if (gn_net_infer(net, &x1, &logits, &err))
            return die("infer", &err);
        t[i] = now_s() - t0;
    }
    printf("engine=gpunas-%s config=%s res=%d batch=1 threads=%d infer_ms_median=%.3f p10=%.3f p90=%.3f runs=%d\n",
           backend, cfg, R, threads, pct(t, runs, 0.5) * 1e3, pct(t, runs, 0.1) * 1e3, pct(t, runs, 0.9) * 1e3,
           runs);
    free(t);
    free(host);
    free(labels);
    gn_tensor_free(&x);
    gn_tensor_free(&x1);
    gn_net_free(net);
    gn_backend_destroy(be);
    gn_arch_free(a);
    return 0;
}
