/*
 * test_nn_network.c — whole networks built from GPUNet specs.
 *
 *  - parameter count of the built network equals the spec's (all released configs);
 *  - finite-difference gradient check of a small network with every standard block
 *    (head, conv, fused_irb with/without SE, stride 2, irb with SE and residual, tail)
 *    and of a distill-family network (head_large, grouped irb, fused_irb, EpilogueD),
 *    on both backends.  Loss L = sum(logits * R) for a fixed random R; BN in training
 *    mode; dropout/drop-path off.  5-point central differences with h = 2e-3 in fp32; for a
 *    random sample of 60 parameter scalars (plus the largest-gradient ones) the
 *    relative error |a-n| / max(|a|, |n|, 1e-2) must be < 2e-2 for 90% of them and
 *    < 0.2 for all; points where the one-sided slopes disagree by > 5% (a ReLU kink
 *    within the stencil) are skipped; at least 30 points must remain (fp32 rounding in a 30-node graph; a wrong backward gives O(1));
 *  - dnnl equals ref: logits and every gradient, max |diff| <= 1e-4 * (1 + max|ref|);
 *  - the fused, BN-folded inference path equals the plain eval forward (1e-4 rel);
 *  - save/load round trip and strict load errors.
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

#include <unistd.h>

#include "gpunas/network.h"
#include "gpunas/rng.h"
#include "gpunas/safetensors.h"
#include "testutil.h"

static void keep_notice(const char *msg, void *ctx) { snprintf(ctx, GN_ERROR_MAX, "%s", msg); }

typedef struct {
    gn_arch *arch;
    gn_backend *be;
    gn_net *net;
    gn_tensor x, dl;
} fixture;

static void setup_net(fixture *f, const char *config, const char *backend, int n, uint64_t seed)
{
    gn_error err;
    char *p = tu_source_path(config);
    if (gn_arch_load(p, &f->arch, &err))
        fail_msg("%s", err.msg);
    free(p);
    assert_int_equal(gn_backend_create(backend, &f->be, &err), 0);
    if (gn_net_create(f->arch, f->be, &f->net, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(gn_net_init(f->net, seed, &err), 0);
    gn_train_opts o = {.dropout = false, .drop_path = false, .bn_momentum = 0.1f, .seed = 7};
    gn_net_set_train_opts(f->net, &o);
    const gn_layer *h = &f->arch->layers[1];
    int r = f->arch->resolution;
    assert_int_equal(gn_tensor_alloc(&f->x, f->be, n, h->in_ch, r, r, &err), 0);
    gn_rng rng;
    gn_rng_seed(&rng, seed + 100);
    size_t nx = gn_tensor_numel(&f->x);
    float *hx = malloc(nx * sizeof *hx);
    for (size_t i = 0; i < nx; i++)
        hx[i] = (float)gn_rng_normal(&rng);
    gn_tensor_from_host(&f->x, hx, &err);
    free(hx);
    const gn_layer *t = &f->arch->layers[f->arch->n_layers - 1];
    assert_int_equal(gn_tensor_alloc(&f->dl, f->be, n, t->num_classes, 1, 1, &err), 0);
    size_t nl = gn_tensor_numel(&f->dl);
    float *hl = malloc(nl * sizeof *hl);
    for (size_t i = 0; i < nl; i++)
        hl[i] = (float)gn_rng_normal(&rng);
    gn_tensor_from_host(&f->dl, hl, &err);
    free(hl);
}

static void teardown_net(fixture *f)
{
    gn_tensor_free(&f->x);
    gn_tensor_free(&f->dl);
    gn_net_free(f->net);
    gn_backend_destroy(f->be);
    gn_arch_free(f->arch);
}

/* L = sum(logits * R) in double; BN running stats are restored so every evaluation
 * sees the same state (they do not affect the training forward anyway). */
static double loss_of(fixture *f)
{
    gn_error err;
    const gn_tensor *lg;
    if (gn_net_forward_train(f->net, &f->x, &lg, &err))
        fail_msg("%s", err.msg);
    double s = 0;
    for (size_t i = 0; i < gn_tensor_numel(lg); i++)
        s += (double)lg->data[i] * f->dl.data[i];
    return s;
}

static void gradcheck(const char *config, const char *backend)
{
    fixture f;
    setup_net(&f, config, backend, 3, 11);
    gn_error err;
    loss_of(&f);
    if (gn_net_backward(f.net, &f.dl, &err))
        fail_msg("%s", err.msg);
    size_t n = (size_t)gn_net_trainable_count(f.net);
    float *vals = gn_net_values(f.net), *grads = malloc(n * sizeof *grads);
    memcpy(grads, gn_net_grads(f.net), n * sizeof *grads);
    /* which scalars: 60 random + the 10 largest |grad| */
    enum { NR = 60, NT = 10 };
    size_t idx[NR + NT];
    gn_rng rng;
    gn_rng_seed(&rng, 5);
    for (int i = 0; i < NR; i++)
        idx[i] = gn_rng_below(&rng, n);
    for (int t = 0; t < NT; t++) {
        size_t best = 0;
        for (size_t j = 0; j < n; j++) {
            bool taken = false;
            for (int u = NR; u < NR + t; u++)
                taken |= idx[u] == j;
            if (!taken && fabsf(grads[j]) > fabsf(grads[best]))
                best = j;
        }
        idx[NR + t] = best;
    }
    int ok = 0, skipped = 0;
    double worst = 0;
    for (int i = 0; i < NR + NT; i++) {
        float *p = &vals[idx[i]], old = *p;
        /* 5-point stencil, O(h^4) truncation error */
        const float h = 2e-3f;
        double l[4];
        const float off[4] = {-2 * h, -h, h, 2 * h};
        for (int k = 0; k < 4; k++) {
            *p = old + off[k];
            l[k] = loss_of(&f);
        }
        *p = old;
        double l0 = loss_of(&f);
        /* a ReLU kink inside [x-2h, x+2h] makes the one-sided slopes disagree: such a
         * point has no usable finite difference and is skipped (counted) */
        double sl = (l0 - l[1]) / h, sr = (l[2] - l0) / h, sl2 = (l[1] - l[0]) / h, sr2 = (l[3] - l[2]) / h;
        double sc = fmax(fmax(fabs(sl), fabs(sr)), 1e-2);
        if (fabs(sl - sr) > 0.05 * sc || fabs(sl2 - sl) > 0.05 * sc || fabs(sr2 - sr) > 0.05 * sc) {
            skipped++;
            continue;
        }
        double num = (8.0 * (l[2] - l[1]) - (l[3] - l[0])) / (12.0 * h), ana = grads[idx[i]];
        double rel = fabs(num - ana) / fmax(fmax(fabs(num), fabs(ana)), 1e-2);
        ok += rel < 2e-2;
        if (rel > worst)
            worst = rel;
        if (rel >= 2e-2) {
            const char *name = "?";
            for (int q = 0; q < gn_net_num_params(f.net); q++) {
                gn_param *pp = gn_net_param(f.net, q);
                if (pp->trainable && p >= pp->value.data && p < pp->value.data + gn_tensor_numel(&pp->value))
                    name = pp->name;
            }
            fprintf(stderr, "  %s %s [%s] analytic %.6g numeric %.6g rel %.3g\n", config, backend, name, ana, num, rel);
        }
    }
    int checked = NR + NT - skipped;
    fprintf(stderr, "gradcheck %s on %s: %d/%d within 2e-2 (%d skipped at kinks), worst %.3g\n", config, backend, ok,
            checked, skipped, worst);
    assert_true(checked >= 30);
    assert_true(ok >= checked * 9 / 10);
    assert_true(worst < 0.2);
    free(grads);
    teardown_net(&f);
}

static void test_gradcheck_ref(void **s) { gradcheck("tests/data/gradcheck.json", "ref"); }
static void test_gradcheck_dnnl(void **s) { gradcheck("tests/data/gradcheck.json", "dnnl"); }
static void test_gradcheck_distill_ref(void **s) { gradcheck("tests/data/gradcheck-distill.json", "ref"); }
static void test_gradcheck_distill_dnnl(void **s) { gradcheck("tests/data/gradcheck-distill.json", "dnnl"); }

static double max_abs(const float *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(a[i]));
    return m;
}
static double max_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

static void dnnl_vs_ref(const char *config, int batch)
{
    fixture r, d;
    setup_net(&r, config, "ref", batch, 3);
    setup_net(&d, config, "dnnl", batch, 3);
    gn_error err;
    const gn_tensor *lr, *ld;
    assert_int_equal(gn_net_forward_train(r.net, &r.x, &lr, &err), 0);
    assert_int_equal(gn_net_forward_train(d.net, &d.x, &ld, &err), 0);
    size_t nl = gn_tensor_numel(lr);
    assert_true(max_diff(lr->data, ld->data, nl) <= 1e-4 * (1 + max_abs(lr->data, nl)));
    assert_int_equal(gn_net_backward(r.net, &r.dl, &err), 0);
    assert_int_equal(gn_net_backward(d.net, &d.dl, &err), 0);
    for (int q = 0; q < gn_net_num_params(r.net); q++) {
        gn_param *a = gn_net_param(r.net, q), *b = gn_net_param(d.net, q);
        size_t n = gn_tensor_numel(&a->value);
        const float *ga = a->trainable ? a->grad.data : a->value.data, *gb = b->trainable ? b->grad.data : b->value.data;
        double tol = 1e-4 * (1 + max_abs(ga, n)), diff = max_diff(ga, gb, n);
        if (diff > tol)
            fprintf(stderr, "%s: %s differs: %g > %g\n", config, a->name, diff, tol);
        assert_true(diff <= tol);
    }
    teardown_net(&r);
    teardown_net(&d);
}

static void test_dnnl_equals_ref(void **s)
{
    dnnl_vs_ref("tests/data/gradcheck.json", 4);
    dnnl_vs_ref("tests/data/gradcheck-distill.json", 2);
    dnnl_vs_ref("configs/fmnist-small.json", 8);
}

static void infer_matches_eval(const char *config, const char *backend, int batch)
{
    fixture f;
    setup_net(&f, config, backend, batch, 9);
    gn_error err;
    const gn_tensor *lt, *le, *li;
    /* a few training forwards so running stats are not the identity */
    for (int i = 0; i < 3; i++)
        assert_int_equal(gn_net_forward_train(f.net, &f.x, &lt, &err), 0);
    assert_int_equal(gn_net_forward_eval(f.net, &f.x, &le, &err), 0);
    size_t nl = gn_tensor_numel(le);
    float *ev = malloc(nl * sizeof *ev);
    memcpy(ev, le->data, nl * sizeof *ev);
    if (gn_net_infer(f.net, &f.x, &li, &err))
        fail_msg("%s", err.msg);
    double diff = max_diff(ev, li->data, nl), tol = 1e-4 * (1 + max_abs(ev, nl));
    fprintf(stderr, "infer vs eval %s/%s: max diff %.3g (tol %.3g), activations %zu bytes\n", config, backend, diff,
            tol, gn_net_infer_activation_bytes(f.net));
    assert_true(diff <= tol);
    /* again (buffers reused, same answer) */
    assert_int_equal(gn_net_infer(f.net, &f.x, &li, &err), 0);
    assert_true(max_diff(ev, li->data, nl) <= tol);
    free(ev);
    teardown_net(&f);
}

static void test_inference_path(void **s)
{
    infer_matches_eval("tests/data/gradcheck.json", "ref", 2);
    infer_matches_eval("tests/data/gradcheck.json", "dnnl", 2);
    infer_matches_eval("tests/data/gradcheck-distill.json", "dnnl", 2);
    infer_matches_eval("configs/fmnist-small.json", "dnnl", 4);
}

static void test_param_counts(void **s)
{
    const char *cfgs[] = {"configs/gpunet/gpunet-0.json", "configs/gpunet/gpunet-1.json",
                          "configs/gpunet/gpunet-2.json", "configs/gpunet/gpunet-p0.json",
                          "configs/gpunet/gpunet-p1.json", "configs/gpunet/gpunet-d1.json",
                          "configs/gpunet/gpunet-d2.json", "configs/fmnist-small.json"};
    gn_backend *be;
    gn_error err;
    assert_int_equal(gn_backend_create("ref", &be, &err), 0);
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
        gn_arch *a;
        char *p = tu_source_path(cfgs[i]);
        assert_int_equal(gn_arch_load(p, &a, &err), 0);
        gn_net *net;
        if (gn_net_create(a, be, &net, &err))
            fail_msg("%s", err.msg);
        assert_int_equal(gn_net_trainable_count(net), a->params);
        gn_net_free(net);
        gn_arch_free(a);
        free(p);
    }
    gn_backend_destroy(be);
}

static void test_save_load(void **s)
{
    fixture a, b;
    setup_net(&a, "configs/fmnist-small.json", "dnnl", 2, 21);
    setup_net(&b, "configs/fmnist-small.json", "dnnl", 2, 22);
    gn_error err;
    const gn_tensor *l;
    assert_int_equal(gn_net_forward_train(a.net, &a.x, &l, &err), 0); /* running stats move */
    char *path = tu_tmp_path("w.safetensors");
    assert_int_equal(gn_net_save(a.net, path, &err), 0);
    assert_int_equal(gn_net_load(b.net, path, &err), 0);
    size_t n = 0;
    for (int q = 0; q < gn_net_num_params(a.net); q++)
        n += gn_tensor_numel(&gn_net_param(a.net, q)->value);
    assert_memory_equal(gn_net_values(a.net), gn_net_values(b.net), n * sizeof(float));
    /* NVIDIA's state-dict keys, with num_batches_tracked (I64) after each running_var */
    assert_string_equal(gn_net_param(a.net, 0)->name, "network.head: 2.net.0.weight");
    assert_int_equal(gn_net_bn_batches(a.net), 1);
    assert_int_equal(gn_net_bn_batches(b.net), 1);
    gn_st_file *sf;
    assert_int_equal(gn_st_open(path, &sf, &err), 0);
    const gn_st_info *nbt = gn_st_find(sf, "network.head: 2.net.1.num_batches_tracked");
    assert_non_null(nbt);
    assert_int_equal(nbt->dtype, GN_ST_I64);
    assert_int_equal(nbt->ndim, 0);
    assert_non_null(gn_st_find(sf, "network. layer9.net.6.weight")); /* fmnist-small: the tail is entry 8 */
    gn_st_close(sf);

    /* strict: weights of another network are rejected with the tensor named */
    fixture c;
    setup_net(&c, "tests/data/gradcheck.json", "ref", 1, 1);
    assert_int_not_equal(gn_net_load(c.net, path, &err), 0);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "tensor 'network.head: 2.net.0.weight'"));
    teardown_net(&c);

    /* a file of gpunas < 0.2 ("layers.{I}." names, no num_batches_tracked) still loads,
     * with one notice */
    char *old = tu_tmp_path("w-old.safetensors");
    gn_st_writer *w = gn_st_writer_new();
    for (int q = 0; q < gn_net_num_params(a.net); q++) {
        gn_param *p = gn_net_param(a.net, q);
        char nm[GN_NAME_MAX];
        assert_int_equal(gn_st_writer_add(w, gn_param_legacy_name(p, nm, sizeof nm), p->ndim, p->shape,
                                          gn_net_values(a.net) + (p->value.data - gn_net_values(a.net)), &err),
                         0);
    }
    assert_int_equal(gn_st_writer_write(w, old, &err), 0);
    gn_st_writer_free(w);
    char notice[GN_ERROR_MAX] = "";
    gn_notice_set_handler(keep_notice, notice);
    fixture d;
    setup_net(&d, "configs/fmnist-small.json", "dnnl", 2, 23);
    assert_int_equal(gn_net_load(d.net, old, &err), 0);
    gn_notice_set_handler(NULL, NULL);
    assert_non_null(strstr(notice, old));
    assert_non_null(strstr(notice, "gpunas < 0.2"));
    assert_memory_equal(gn_net_values(a.net), gn_net_values(d.net), n * sizeof(float));
    assert_int_equal(gn_net_bn_batches(d.net), 0);
    teardown_net(&d);
    unlink(old);
    free(old);
    /* missing file */
    assert_int_not_equal(gn_net_load(b.net, "/nonexistent/w.safetensors", &err), 0);
    assert_non_null(strstr(err.msg, "/nonexistent/w.safetensors"));
    free(path);
    teardown_net(&a);
    teardown_net(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_param_counts),          cmocka_unit_test(test_gradcheck_ref),
        cmocka_unit_test(test_gradcheck_dnnl),        cmocka_unit_test(test_gradcheck_distill_ref),
        cmocka_unit_test(test_gradcheck_distill_dnnl), cmocka_unit_test(test_dnnl_equals_ref),
        cmocka_unit_test(test_inference_path),        cmocka_unit_test(test_save_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
