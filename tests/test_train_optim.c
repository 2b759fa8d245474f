/*
 * test_train_optim.c — optimizers, LR schedules, EMA and the distillation loss
 * against PyTorch (tests/pytorch/optim_ref.py, Debian's /usr/bin/python3 + torch 1.13),
 * plus checks that need no PyTorch (no-decay ranges, argument errors, the plain
 * cross-entropy equals the backend's softmax_xent).
 *
 * Every PyTorch case is written as one safetensors file (random parameters, gradients,
 * learning rates from gn_rng) and all cases run in ONE python process (importing torch
 * costs seconds).  Tolerances: optimizer results and EMA elementwise
 * |c - t| <= 1e-5 * max(|t|, 1e-2 * max|t|); schedules 1e-6 relative (the reference
 * is stored as float32); loss 1e-6 relative and dL/dz 1e-6 absolute (float64 truth,
 * our float32 output).  Skips the PyTorch part cleanly when torch is missing.
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

#include "gpunas/backend.h"
#include "gpunas/network.h"
#include "gpunas/optim.h"
#include "gpunas/rng.h"
#include "gpunas/safetensors.h"
#include "testutil.h"

#define PY "/usr/bin/python3"

static int have_torch(void) { return system(PY " -c 'import torch' >/dev/null 2>&1") == 0; }

/* ------------------------------------------------------------------ cases */
#define MAX_CASES 32

typedef struct {
    char in[512], out[512];
    int mode; /* 0 optim, 1 sched, 2 ema, 3 kd */
    /* optim */
    gn_optim_config oc;
    size_t n, nd_begin, nd_end;
    int k;
    float *p0, *grads, *lrs;
    /* sched */
    gn_lr_schedule sc;
    /* ema */
    double decay;
    /* kd */
    int rows, cls;
    float *z, *t, smoothing, alpha, temp;
    int32_t *labels;
} tcase;

static tcase cases[MAX_CASES];
static int n_cases;

static void meta_f(gn_st_writer *w, const char *k, double v)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%.17g", v);
    gn_error err;
    assert_int_equal(gn_st_writer_meta(w, k, buf, &err), 0);
}

static tcase *new_case(int mode, const char *tag)
{
    assert_true(n_cases < MAX_CASES);
    tcase *c = &cases[n_cases];
    memset(c, 0, sizeof *c);
    c->mode = mode;
    char name[64];
    snprintf(name, sizeof name, "optref-%d-%s-in.safetensors", n_cases, tag);
    char *p = tu_tmp_path(name);
    snprintf(c->in, sizeof c->in, "%s", p);
    free(p);
    snprintf(name, sizeof name, "optref-%d-%s-out.safetensors", n_cases, tag);
    p = tu_tmp_path(name);
    snprintf(c->out, sizeof c->out, "%s", p);
    free(p);
    n_cases++;
    return c;
}

static void add_optim_case(gn_optim_kind kind, float momentum, bool nesterov, float wd, uint64_t seed)
{
    tcase *c = new_case(0, gn_optim_name(kind));
    gn_optim_defaults(kind, &c->oc);
    c->oc.momentum = momentum;
    c->oc.nesterov = nesterov;
    c->oc.weight_decay = wd;
    c->n = 100;
    c->nd_begin = 37;
    c->nd_end = 48;
    c->k = 6;
    gn_rng r;
    gn_rng_seed(&r, seed);
    c->p0 = malloc(c->n * sizeof(float));
    c->grads = malloc(c->n * c->k * sizeof(float));
    c->lrs = malloc(c->k * sizeof(float));
    for (size_t i = 0; i < c->n; i++)
        c->p0[i] = (float)gn_rng_normal(&r);
    for (size_t i = 0; i < c->n * c->k; i++)
        c->grads[i] = (float)(gn_rng_normal(&r) * (0.1 + gn_rng_uniform(&r)));
    for (int i = 0; i < c->k; i++)
        c->lrs[i] = (float)(0.01 + 0.09 * gn_rng_uniform(&r)); /* a schedule changes lr every step */
    gn_st_writer *w = gn_st_writer_new();
    gn_error err;
    int64_t sn[1] = {(int64_t)c->n}, sg[2] = {c->k, (int64_t)c->n}, sl[1] = {c->k};
    assert_int_equal(gn_st_writer_add(w, "params", 1, sn, c->p0, &err), 0);
    assert_int_equal(gn_st_writer_add(w, "grads", 2, sg, c->grads, &err), 0);
    assert_int_equal(gn_st_writer_add(w, "lrs", 1, sl, c->lrs, &err), 0);
    gn_st_writer_meta(w, "mode", "optim", &err);
    gn_st_writer_meta(w, "kind", gn_optim_name(kind), &err);
    gn_st_writer_meta(w, "nesterov", nesterov ? "1" : "0", &err);
    meta_f(w, "momentum", c->oc.momentum);
    meta_f(w, "alpha", c->oc.alpha);
    meta_f(w, "eps", c->oc.eps);
    meta_f(w, "beta1", c->oc.beta1);
    meta_f(w, "beta2", c->oc.beta2);
    meta_f(w, "weight_decay", c->oc.weight_decay);
    meta_f(w, "nd_begin", (double)c->nd_begin);
    meta_f(w, "nd_end", (double)c->nd_end);
    assert_int_equal(gn_st_writer_write(w, c->in, &err), 0);
    gn_st_writer_free(w);
}

static void add_sched_case(gn_sched_kind kind, double W, bool per_step, double decay_epochs)
{
    tcase *c = new_case(1, gn_sched_name(kind));
    c->sc = (gn_lr_schedule){.kind = kind,
                             .lr = 0.4,
                             .min_lr = kind == GN_SCHED_COSINE ? 1e-3 : 0,
                             .warmup_epochs = W,
                             .warmup_lr = 0.01,
                             .decay_epochs = decay_epochs,
                             .gamma = 0.5,
                             .epochs = 9,
                             .steps_per_epoch = 8,
                             .per_step = per_step};
    gn_error err;
    assert_int_equal(gn_lr_schedule_check(&c->sc, &err), 0);
    gn_st_writer *w = gn_st_writer_new();
    gn_st_writer_meta(w, "mode", "sched", &err);
    gn_st_writer_meta(w, "kind", gn_sched_name(kind), &err);
    gn_st_writer_meta(w, "per_step", per_step ? "1" : "0", &err);
    meta_f(w, "lr", c->sc.lr);
    meta_f(w, "min_lr", c->sc.min_lr);
    meta_f(w, "warmup_epochs", c->sc.warmup_epochs);
    meta_f(w, "warmup_lr", c->sc.warmup_lr);
    meta_f(w, "decay_epochs", c->sc.decay_epochs);
    meta_f(w, "gamma", c->sc.gamma);
    meta_f(w, "epochs", c->sc.epochs);
    meta_f(w, "steps_per_epoch", c->sc.steps_per_epoch);
    assert_int_equal(gn_st_writer_write(w, c->in, &err), 0);
    gn_st_writer_free(w);
}

static void add_ema_case(double decay)
{
    tcase *c = new_case(2, "ema");
    c->decay = decay;
    c->n = 64;
    c->k = 7;
    gn_rng r;
    gn_rng_seed(&r, 77);
    c->p0 = malloc(c->n * sizeof(float));
    c->grads = malloc(c->n * c->k * sizeof(float)); /* successive model values */
    for (size_t i = 0; i < c->n; i++)
        c->p0[i] = (float)gn_rng_normal(&r);
    for (size_t i = 0; i < c->n * c->k; i++)
        c->grads[i] = (float)gn_rng_normal(&r);
    gn_st_writer *w = gn_st_writer_new();
    gn_error err;
    int64_t sn[1] = {(int64_t)c->n}, sv[2] = {c->k, (int64_t)c->n};
    gn_st_writer_add(w, "init", 1, sn, c->p0, &err);
    gn_st_writer_add(w, "values", 2, sv, c->grads, &err);
    gn_st_writer_meta(w, "mode", "ema", &err);
    meta_f(w, "decay", decay);
    assert_int_equal(gn_st_writer_write(w, c->in, &err), 0);
    gn_st_writer_free(w);
}

static void add_kd_case(float smoothing, float alpha, float temp, uint64_t seed)
{
    tcase *c = new_case(3, "kd");
    c->rows = 6;
    c->cls = 10;
    c->smoothing = smoothing;
    c->alpha = alpha;
    c->temp = temp;
    size_t m = (size_t)c->rows * c->cls;
    c->z = malloc(m * sizeof(float));
    c->t = malloc(m * sizeof(float));
    c->labels = malloc(c->rows * sizeof(int32_t));
    float *fl = malloc(c->rows * sizeof(float));
    gn_rng r;
    gn_rng_seed(&r, seed);
    for (size_t i = 0; i < m; i++) {
        c->z[i] = (float)(3 * gn_rng_normal(&r));
        c->t[i] = (float)(3 * gn_rng_normal(&r));
    }
    for (int i = 0; i < c->rows; i++)
        fl[i] = (float)(c->labels[i] = (int32_t)gn_rng_below(&r, c->cls));
    gn_st_writer *w = gn_st_writer_new();
    gn_error err;
    int64_t sz[2] = {c->rows, c->cls}, sl[1] = {c->rows};
    gn_st_writer_add(w, "z", 2, sz, c->z, &err);
    gn_st_writer_add(w, "t", 2, sz, c->t, &err);
    gn_st_writer_add(w, "labels", 1, sl, fl, &err);
    gn_st_writer_meta(w, "mode", "kd", &err);
    meta_f(w, "smoothing", smoothing);
    meta_f(w, "alpha", alpha);
    meta_f(w, "temp", temp);
    assert_int_equal(gn_st_writer_write(w, c->in, &err), 0);
    gn_st_writer_free(w);
    free(fl);
}

static float *load_ref(gn_st_file *f, const char *name, int64_t n)
{
    float *v = malloc((size_t)n * sizeof(float));
    gn_error err;
    if (gn_st_load_numel(f, name, n, v, &err))
        fail_msg("%s", err.msg);
    return v;
}

static double close_elementwise(const float *mine, const float *ref, size_t n, double rel)
{
    double mx = 0, worst = 0;
    for (size_t i = 0; i < n; i++)
        mx = fmax(mx, fabs(ref[i]));
    for (size_t i = 0; i < n; i++) {
        double tol = rel * fmax(fabs(ref[i]), 1e-2 * mx);
        double d = fabs((double)mine[i] - ref[i]);
        if (d > tol)
            fail_msg("element %zu: gpunas %.9g, PyTorch %.9g", i, mine[i], ref[i]);
        if (tol > 0 && d / tol * rel > worst)
            worst = d / tol * rel;
    }
    return worst;
}

static void check_case(tcase *c)
{
    gn_st_file *f;
    gn_error err;
    if (gn_st_open(c->out, &f, &err))
        fail_msg("%s", err.msg);
    switch (c->mode) {
    case 0: {
        gn_optim *o;
        assert_int_equal(gn_optim_create(&c->oc, c->n, &o, &err), 0);
        assert_int_equal(gn_optim_no_decay(o, c->nd_begin, c->nd_end - c->nd_begin, &err), 0);
        float *p = malloc(c->n * sizeof(float));
        memcpy(p, c->p0, c->n * sizeof(float));
        for (int i = 0; i < c->k; i++)
            assert_int_equal(gn_optim_step(o, p, c->grads + (size_t)i * c->n, c->lrs[i], &err), 0);
        float *ref = load_ref(f, "params", (int64_t)c->n);
        double worst = close_elementwise(p, ref, c->n, 1e-5);
        free(ref);
        for (int s = 0; s < gn_optim_state_count(o); s++) {
            ref = load_ref(f, gn_optim_state_name(o, s), (int64_t)c->n);
            worst = fmax(worst, close_elementwise(gn_optim_state(o, s), ref, c->n, 1e-5));
            free(ref);
        }
        assert_int_equal(gn_st_count(f), 1 + gn_optim_state_count(o));
        fprintf(stderr, "%-10s momentum %.2f nesterov %d wd %.3g: %d steps, %d state vectors, worst rel %.2g\n",
                gn_optim_name(c->oc.kind), c->oc.momentum, c->oc.nesterov, c->oc.weight_decay, c->k,
                gn_optim_state_count(o), worst);
        free(p);
        gn_optim_free(o);
        break;
    }
    case 1: {
        int total = c->sc.epochs * c->sc.steps_per_epoch;
        float *ref = load_ref(f, "lrs", total);
        double worst = 0;
        for (int e = 0; e < c->sc.epochs; e++)
            for (int s = 0; s < c->sc.steps_per_epoch; s++) {
                double mine = gn_lr_at(&c->sc, e, s), t = ref[e * c->sc.steps_per_epoch + s];
                double d = fabs(mine - t);
                if (d > 1e-6 * fabs(t) + 1e-9)
                    fail_msg("%s schedule epoch %d step %d: gpunas %.9g, PyTorch %.9g", gn_sched_name(c->sc.kind), e,
                             s, mine, t);
                worst = fmax(worst, d / fmax(fabs(t), 1e-9));
            }
        fprintf(stderr, "schedule %-8s warm-up %.3g %s decay %.3g: %d lrs, worst rel %.2g\n",
                gn_sched_name(c->sc.kind), c->sc.warmup_epochs, c->sc.per_step ? "per step" : "per epoch",
                c->sc.decay_epochs, total, worst);
        free(ref);
        break;
    }
    case 2: {
        gn_ema *e;
        assert_int_equal(gn_ema_create(c->decay, c->p0, c->n, &e, &err), 0);
        for (int i = 0; i < c->k; i++)
            gn_ema_update(e, c->grads + (size_t)i * c->n);
        float *ref = load_ref(f, "shadow", (int64_t)c->n);
        double worst = close_elementwise(gn_ema_values(e), ref, c->n, 1e-5);
        fprintf(stderr, "EMA decay %g: %d updates, worst rel %.2g\n", c->decay, c->k, worst);
        free(ref);
        gn_ema_free(e);
        break;
    }
    case 3: {
        size_t m = (size_t)c->rows * c->cls;
        float *dz = malloc(m * sizeof(float));
        double loss;
        assert_int_equal(gn_kd_loss(c->z, c->t, c->labels, c->rows, c->cls, c->smoothing, c->alpha, c->temp, &loss,
                                    dz, &err),
                         0);
        float *rl = load_ref(f, "loss", 1), *rdz = load_ref(f, "dz", (int64_t)m);
        assert_true(fabs(loss - rl[0]) <= 1e-6 * fabs(rl[0]));
        double worst = 0;
        for (size_t i = 0; i < m; i++) {
            worst = fmax(worst, fabs(dz[i] - rdz[i]));
            if (fabs(dz[i] - rdz[i]) > 1e-6)
                fail_msg("kd dz[%zu]: gpunas %.9g, PyTorch %.9g", i, dz[i], rdz[i]);
        }
        fprintf(stderr, "KD loss smoothing %.2f alpha %.2f T %.1f: loss %.6f (torch %.6f), worst |ddz| %.2g\n",
                c->smoothing, c->alpha, c->temp, loss, rl[0], worst);
        free(rl);
        free(rdz);
        free(dz);
        break;
    }
    }
    gn_st_close(f);
}

static void free_cases(void)
{
    for (int i = 0; i < n_cases; i++) {
        free(cases[i].p0);
        free(cases[i].grads);
        free(cases[i].lrs);
        free(cases[i].z);
        free(cases[i].t);
        free(cases[i].labels);
        remove(cases[i].in);
        remove(cases[i].out);
    }
    n_cases = 0;
}

static void test_against_pytorch(void **state)
{
    if (!have_torch()) {
        fprintf(stderr, "skipping: %s has no torch (install python3-torch)\n", PY);
        skip();
    }
    add_optim_case(GN_OPT_SGD, 0.0f, false, 0.0f, 1);
    add_optim_case(GN_OPT_SGD, 0.9f, false, 1e-2f, 2);
    add_optim_case(GN_OPT_SGD, 0.9f, true, 5e-2f, 3);
    add_optim_case(GN_OPT_RMSPROP_TF, 0.9f, false, 1e-2f, 4);
    add_optim_case(GN_OPT_RMSPROP_TF, 0.0f, false, 0.0f, 5);
    add_optim_case(GN_OPT_ADAMW, 0.0f, false, 0.05f, 6);
    add_optim_case(GN_OPT_ADAMW, 0.0f, false, 0.0f, 7);
    add_sched_case(GN_SCHED_COSINE, 2, true, 0);
    add_sched_case(GN_SCHED_COSINE, 0.5, true, 0);
    add_sched_case(GN_SCHED_COSINE, 2, false, 0);
    add_sched_case(GN_SCHED_COSINE, 0, true, 0);
    add_sched_case(GN_SCHED_STEP, 0, false, 2);
    add_sched_case(GN_SCHED_STEP, 1.5, true, 2.4);
    add_ema_case(0.9);
    add_ema_case(0.9999);
    add_kd_case(0.0f, 0.0f, 1.0f, 11);
    add_kd_case(0.1f, 0.0f, 1.0f, 12);
    add_kd_case(0.1f, 0.5f, 1.0f, 13);
    add_kd_case(0.0f, 1.0f, 4.0f, 14);
    add_kd_case(0.2f, 0.3f, 2.5f, 15);
    size_t cap = 256 + (size_t)n_cases * 1100;
    char *cmd = malloc(cap);
    char *script = tu_source_path("tests/pytorch/optim_ref.py");
    size_t len = (size_t)snprintf(cmd, cap, "OMP_NUM_THREADS=1 " PY " %s", script);
    for (int i = 0; i < n_cases; i++)
        len += (size_t)snprintf(cmd + len, cap - len, " %s %s", cases[i].in, cases[i].out);
    assert_int_equal(system(cmd), 0);
    for (int i = 0; i < n_cases; i++)
        check_case(&cases[i]);
    free(cmd);
    free(script);
    free_cases();
}

/* Zero gradients: decayed ranges shrink (coupled decay: p -= lr*wd*p for SGD),
 * no-decay ranges and everything past n stay put. */
static void test_no_decay_ranges(void **state)
{
    gn_optim_config c;
    gn_optim_defaults(GN_OPT_SGD, &c);
    c.momentum = 0;
    c.nesterov = false;
    c.weight_decay = 0.5f;
    gn_optim *o;
    gn_error err;
    assert_int_equal(gn_optim_create(&c, 10, &o, &err), 0);
    assert_int_equal(gn_optim_no_decay(o, 6, 2, &err), 0);
    assert_int_equal(gn_optim_no_decay(o, 2, 2, &err), 0);
    assert_int_equal(gn_optim_no_decay(o, 3, 2, &err), 0); /* overlaps [2,4) -> [2,5) */
    assert_int_not_equal(gn_optim_no_decay(o, 9, 2, &err), 0);
    assert_non_null(strstr(err.msg, "outside"));
    float p[11], g[10] = {0};
    for (int i = 0; i < 11; i++)
        p[i] = 1.0f;
    assert_int_equal(gn_optim_step(o, p, g, 0.1, &err), 0);
    const int decayed[10] = {1, 1, 0, 0, 0, 1, 0, 0, 1, 1};
    for (int i = 0; i < 10; i++)
        assert_float_equal(p[i], decayed[i] ? 0.95f : 1.0f, 1e-7);
    assert_float_equal(p[10], 1.0f, 0);
    assert_int_equal(gn_optim_steps(o), 1);
    assert_int_not_equal(gn_optim_step(o, p, g, NAN, &err), 0);
    assert_non_null(strstr(err.msg, "learning rate"));
    gn_optim_free(o);

    /* bad configurations: one line naming the field */
    gn_optim_defaults(GN_OPT_RMSPROP_TF, &c);
    c.alpha = 1.5f;
    assert_int_not_equal(gn_optim_create(&c, 4, &o, &err), 0);
    assert_non_null(strstr(err.msg, "alpha"));
    gn_optim_defaults(GN_OPT_SGD, &c);
    c.momentum = 0;
    assert_int_not_equal(gn_optim_create(&c, 4, &o, &err), 0);
    assert_non_null(strstr(err.msg, "Nesterov"));
    gn_optim_defaults(GN_OPT_ADAMW, &c);
    c.weight_decay = -1;
    assert_int_not_equal(gn_optim_create(&c, 4, &o, &err), 0);
    assert_non_null(strstr(err.msg, "weight decay"));
    gn_optim_kind k;
    assert_int_equal(gn_optim_parse("rmsprop-tf", &k), 0);
    assert_int_equal(k, GN_OPT_RMSPROP_TF);
    assert_int_not_equal(gn_optim_parse("adam", &k), 0);

    gn_lr_schedule s = {.kind = GN_SCHED_COSINE, .lr = 0.1, .epochs = 5, .steps_per_epoch = 3, .warmup_epochs = 5};
    assert_int_not_equal(gn_lr_schedule_check(&s, &err), 0);
    assert_non_null(strstr(err.msg, "warm-up"));
    s.warmup_epochs = 0;
    assert_int_equal(gn_lr_schedule_check(&s, &err), 0);
    assert_float_equal(gn_lr_at(&s, 0, 0), 0.1, 1e-12);
    assert_float_equal(gn_lr_at(&s, 5, 0), 0.0, 1e-12); /* end of the cosine */
}

/* gn_optim_create_for_net: with zero gradients and SGD weight decay, exactly the
 * params without no_decay shrink; BN affine params, biases and the running
 * statistics (buffers, past the trainable arena) stay bit-identical. */
static void test_net_decay_groups(void **state)
{
    static const char *net_json =
        "[{\"layer_type\":\"data\",\"img_resolution\":8,\"distill\":false},"
        "{\"layer_type\":\"head\",\"num_in_channels\":1,\"num_out_channels\":8,\"act\":\"relu\"},"
        "{\"layer_type\":\"irb\",\"num_in_channels\":8,\"num_out_channels\":8,\"stride\":1,\"expansion\":2,"
        "\"kernel_size\":3,\"act\":\"swish\",\"use_se\":true,\"stage\":1},"
        "{\"layer_type\":\"tail\",\"num_in_channels\":8,\"num_out_channels\":16,\"num_classes\":4}]";
    gn_error err;
    gn_arch *a;
    gn_backend *be;
    gn_net *net;
    assert_int_equal(gn_arch_parse(net_json, "t.json", &a, &err), 0);
    assert_int_equal(gn_backend_create("ref", &be, &err), 0);
    assert_int_equal(gn_net_create(a, be, &net, &err), 0);
    assert_int_equal(gn_net_init(net, 3, &err), 0);
    float *v = gn_net_values(net), *g = gn_net_grads(net);
    size_t nt = (size_t)gn_net_trainable_count(net), total = nt;
    for (int i = 0; i < gn_net_num_params(net); i++) {
        gn_param *q = gn_net_param(net, i);
        size_t end = (size_t)(q->value.data - v) + gn_tensor_numel(&q->value);
        if (end > total)
            total = end;
        for (size_t j = 0; j < gn_tensor_numel(&q->value); j++) /* BN params away from 0/1 */
            q->value.data[j] += 0.25f;
    }
    memset(g, 0, nt * sizeof *g);
    float *before = malloc(total * sizeof *before);
    memcpy(before, v, total * sizeof *before);
    gn_optim_config c;
    gn_optim_defaults(GN_OPT_SGD, &c);
    c.momentum = 0; /* p -= lr * wd * p exactly once */
    c.nesterov = false;
    c.weight_decay = 0.1f;
    gn_optim *o;
    assert_int_equal(gn_optim_create_for_net(&c, net, &o, &err), 0);
    assert_int_equal(gn_optim_size(o), nt);
    assert_int_equal(gn_optim_step(o, v, g, 1.0, &err), 0);
    int decayed = 0, kept = 0, buffers = 0;
    for (int i = 0; i < gn_net_num_params(net); i++) {
        gn_param *q = gn_net_param(net, i);
        size_t off = (size_t)(q->value.data - v);
        bool is_bias_or_bn = q->ndim == 1;
        assert_true(!q->trainable || q->no_decay == is_bias_or_bn);
        for (size_t j = 0; j < gn_tensor_numel(&q->value); j++) {
            float b = before[off + j], now = v[off + j];
            if (q->trainable && !q->no_decay)
                assert_float_equal(now, b * 0.9f, 1e-6 * fabs(b) + 1e-9);
            else
                assert_true(now == b);
        }
        if (!q->trainable)
            buffers++;
        else if (q->no_decay)
            kept++;
        else
            decayed++;
    }
    fprintf(stderr, "weight decay: %d tensors decayed, %d no_decay kept, %d buffers untouched\n", decayed, kept,
            buffers);
    assert_true(decayed > 0 && kept > 0 && buffers > 0);
    free(before);
    gn_optim_free(o);
    gn_net_free(net);
    gn_backend_destroy(be);
    gn_arch_free(a);
}

/* alpha = 0: gn_kd_loss equals the backend's softmax cross-entropy (ref backend). */
static void test_ce_matches_backend(void **state)
{
    gn_error err;
    gn_backend *be;
    assert_int_equal(gn_backend_create("ref", &be, &err), 0);
    const int n = 5, k = 7;
    gn_tensor z, dz;
    assert_int_equal(gn_tensor_alloc(&z, be, n, k, 1, 1, &err), 0);
    assert_int_equal(gn_tensor_alloc(&dz, be, n, k, 1, 1, &err), 0);
    float hz[35], mine[35], theirs[35];
    int32_t y[5];
    gn_rng r;
    gn_rng_seed(&r, 5);
    for (int i = 0; i < n * k; i++)
        hz[i] = (float)(2 * gn_rng_normal(&r));
    for (int i = 0; i < n; i++)
        y[i] = (int32_t)gn_rng_below(&r, k);
    assert_int_equal(gn_tensor_from_host(&z, hz, &err), 0);
    float bl;
    assert_int_equal(gn_softmax_xent(be, &z, y, 0.1f, &bl, &dz, &err), 0);
    assert_int_equal(gn_tensor_to_host(&dz, theirs, &err), 0);
    double ml;
    assert_int_equal(gn_kd_loss(hz, NULL, y, n, k, 0.1f, 0.0f, 1.0f, &ml, mine, &err), 0);
    assert_float_equal(ml, bl, 1e-5 * fabs(bl));
    for (int i = 0; i < n * k; i++)
        assert_float_equal(mine[i], theirs[i], 1e-6);
    /* argument errors */
    y[2] = 7;
    assert_int_not_equal(gn_kd_loss(hz, NULL, y, n, k, 0.1f, 0.0f, 1.0f, &ml, mine, &err), 0);
    assert_non_null(strstr(err.msg, "label 7 of row 2"));
    y[2] = 0;
    assert_int_not_equal(gn_kd_loss(hz, NULL, y, n, k, 0.1f, 0.5f, 1.0f, &ml, mine, &err), 0);
    assert_non_null(strstr(err.msg, "teacher"));
    /* ranks for top-k: ties rank the smaller index first */
    float row[4] = {1, 3, 3, 0};
    assert_int_equal(gn_label_rank(row, 4, 1), 0);
    assert_int_equal(gn_label_rank(row, 4, 2), 1);
    assert_int_equal(gn_label_rank(row, 4, 3), 3);
    gn_tensor_free(&z);
    gn_tensor_free(&dz);
    gn_backend_destroy(be);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_decay_ranges),
        cmocka_unit_test(test_ce_matches_backend),
        cmocka_unit_test(test_net_decay_groups),
        cmocka_unit_test(test_against_pytorch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
