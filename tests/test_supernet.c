/* test_supernet.c — the UNAS supernet (gpunas/supernet.h) on a tiny space written here
 * (resolution 16, 1 channel, 4 classes, head + 3 stages, 4 images):
 *   stage 1 conv     kernel [3,5], layers 0..2 (its first layer keeps the shape:
 *                    skippable, so 0 layers is searched)
 *   stage 2 fused    stride 2, kernel [3,5], expansion [2,4], se [false,true],
 *                    layers 1..2 (released padding 0 makes k3/k5 differ in output
 *                    size: the supernet uses same padding)
 *   stage 3 irb      kernel [3], expansion [2,3], se [true,false], layers 0..2 (its
 *                    first layer changes the channels: at least 1 layer, the deviation;
 *                    act [swish, relu]: fixed to the first)
 * Every activation is swish (smooth), so that finite differences are not spoiled by
 * ReLU kinks (with ReLU, central differences of a 4-image batch scatter by several
 * per cent even on a plain network).
 * Checks:
 *   - the categoricals (names, K, offsets = gn_oneshot's layout, enc maps);
 *   - g_zeta against central finite differences of the relaxed loss, batch-shared and
 *     per-sample zeta, every component; a few weight gradients likewise;
 *   - for several d, the discrete path against a standalone gn_net of
 *     gn_supernet_decode(d) with the path's weights copied in (gn_supernet_export):
 *     logits, loss and every weight gradient; every parameter off the path has
 *     gradient 0;
 *   - the per-sample losses average to the batch loss;
 *   - a non-default fixed encoding (stage 3 with relu) is kept by derive and its paths
 *     equal their standalone networks too;
 *   - only the path runs: node executions of a discrete step = the standalone's + the
 *     mix nodes, forward and backward;
 *   - a discrete step allocates only its path's activations;
 *   - one-line errors for bad input.
 * The "ref" backend (double accumulators) is used for the finite differences; the
 * discrete comparison runs on every backend. */
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
#include "gpunas/network.h"
#include "gpunas/oneshot.h"
#include "gpunas/rng.h"
#include "gpunas/space.h"
#include "gpunas/supernet.h"
#include "testutil.h"
#include "nn/network_internal.h"
#include "nn/supernet_internal.h"

#define N 4
#define RES 16
#define CLASSES 4


typedef struct {
    gn_space *space;
    gn_backend *be;
    gn_supernet *sn;
    gn_tensor x;
    int32_t labels[N];
} fixture;

static void setup_opts(fixture *f, const char *backend, const gn_supernet_opts *opts)
{
    gn_error err;
    memset(f, 0, sizeof *f);
    assert_int_equal(gn_space_parse(tu_tiny_space, "tiny.json", &f->space, &err), 0);
    assert_int_equal(gn_backend_create(backend, &f->be, &err), 0);
    if (gn_supernet_create(f->space, f->be, opts, &f->sn, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(gn_supernet_init(f->sn, 7, &err), 0);
    /* non-trivial BN affine parameters, so that BN gradients are not degenerate */
    gn_net *net = gn_supernet_net(f->sn);
    gn_rng r;
    gn_rng_seed(&r, 99);
    for (int i = 0; i < gn_net_num_params(net); i++) {
        gn_param *q = gn_net_param(net, i);
        if (q->trainable && q->ndim == 1)
            for (size_t j = 0; j < gn_tensor_numel(&q->value); j++)
                q->value.data[j] += (float)(0.2 * (gn_rng_uniform(&r) - 0.5));
    }
    assert_int_equal(gn_tensor_alloc(&f->x, f->be, N, 1, RES, RES, &err), 0);
    float img[N * RES * RES];
    for (int i = 0; i < N * RES * RES; i++)
        img[i] = (float)(2.0 * gn_rng_uniform(&r) - 1.0);
    assert_int_equal(gn_tensor_from_host(&f->x, img, &err), 0);
    for (int i = 0; i < N; i++)
        f->labels[i] = i % CLASSES;
}

static void setup_on(fixture *f, const char *backend) { setup_opts(f, backend, NULL); }

static void teardown(fixture *f)
{
    gn_tensor_free(&f->x);
    gn_supernet_free(f->sn);
    gn_backend_destroy(f->be);
    gn_space_free(f->space);
}

/* A relaxed zeta: per categorical softmax of random logits / 0.7 (every entry > 0). */
static void random_zeta(const gn_supernet *sn, gn_rng *r, double *z)
{
    for (int m = 0; m < gn_supernet_num_cats(sn); m++) {
        const gn_supernet_cat *c = gn_supernet_get_cat(sn, m);
        double s = 0;
        for (int i = 0; i < c->k; i++)
            s += z[c->offset + i] = exp(2.0 * gn_rng_uniform(r) / 0.7);
        for (int i = 0; i < c->k; i++)
            z[c->offset + i] /= s;
    }
}

/* The sign pattern of every ReLU input (the tail's ReLU is not searched, so even an
 * all-swish space has one): finite differences are only valid if no unit crosses its
 * kink inside the stencil.  Returns the count; writes the signs if buf != NULL. */
static size_t relu_signs(gn_net *net, unsigned char *buf)
{
    size_t n = 0;
    for (int i = 0; i < net->n_nodes; i++) {
        const gn_node *nd = &net->nodes[i];
        if (nd->k != ND_ACT || nd->act != GN_ELT_RELU || !net->live[i])
            continue;
        /* from the output: > 0 exactly where the input is (a ReLU fused with its BN has no stored input) */
        const gn_tensor *t = &net->v[nd->out];
        for (size_t j = 0; j < gn_tensor_numel(t); j++, n++)
            if (buf)
                buf[n] = t->data[j] > 0;
    }
    return n;
}

/* The smallest |input| of a ReLU unit after the last forward. */
static double relu_margin(gn_net *net)
{
    double m = INFINITY;
    for (int i = 0; i < net->n_nodes; i++) {
        const gn_node *nd = &net->nodes[i];
        if (nd->k != ND_ACT || nd->act != GN_ELT_RELU || !net->live[i])
            continue;
        for (size_t j = 0; j < gn_tensor_numel(&net->v[nd->out]); j++)
            m = fmin(m, fabs(tu_relu_input(net, i, j)));
    }
    return m;
}

/* Redraw the images (seeded) until every ReLU unit is at least 1e-3 from its kink at
 * the current zeta, so that the stencils below rarely cross one (a 4-image batch has
 * 2048 tail ReLU units; a unit 2e-5 from its kink spoils most entries otherwise). */
static void pick_images(fixture *f)
{
    gn_error err;
    const gn_tensor *lg;
    float img[N * RES * RES];
    for (int seed = 0; seed < 200; seed++) {
        assert_int_equal(gn_supernet_forward_train(f->sn, &f->x, &lg, &err), 0);
        if (relu_margin(gn_supernet_net(f->sn)) >= 1e-3)
            return;
        gn_rng r;
        gn_rng_seed(&r, 500 + (uint64_t)seed);
        for (int i = 0; i < N * RES * RES; i++)
            img[i] = (float)(2.0 * gn_rng_uniform(&r) - 1.0);
        assert_int_equal(gn_tensor_from_host(&f->x, img, &err), 0);
    }
    fail_msg("no image batch keeps every ReLU 1e-3 from its kink");
}

static unsigned char *base_signs; /* of the point the differences are taken at */
static size_t n_signs;
static int kink_crossed;         /* set by loss_at */

static void mark_base(fixture *f)
{
    gn_net *net = gn_supernet_net(f->sn);
    n_signs = relu_signs(net, NULL);
    free(base_signs);
    base_signs = malloc(n_signs ? n_signs : 1);
    relu_signs(net, base_signs);
}

static double loss_at(fixture *f)
{
    gn_error err;
    const gn_tensor *logits;
    float loss;
    if (gn_supernet_forward_train(f->sn, &f->x, &logits, &err))
        fail_msg("%s", err.msg);
    if (base_signs) {
        gn_net *net = gn_supernet_net(f->sn);
        unsigned char *now = malloc(n_signs ? n_signs : 1);
        if (relu_signs(net, now) != n_signs || memcmp(now, base_signs, n_signs))
            kink_crossed = 1;
        free(now);
    }
    assert_int_equal(gn_softmax_xent(f->be, logits, f->labels, 0, &loss, NULL, &err), 0);
    return loss;
}

/* The five-point central difference from the losses at +2h, +h, -h, -2h: error
 * O(h^4).  Needed: BN after every mix renormalises its output, so the loss is
 * strongly curved in zeta and in the early weights; with the plain central difference
 * (error O(h^2)) a step of 1e-3 still leaves errors of several per cent, and a smaller
 * step drowns in the float32 rounding of the loss. */
static double fd5(const double *l, double h) { return (8.0 * (l[1] - l[2]) - (l[0] - l[3])) / (12.0 * h); }

/* The point finite differences are taken at: a random relaxed zeta (r seeded with
 * seed), images that keep every ReLU off its kink, one training step (gradients). */
static void relaxed_point(fixture *f, uint64_t seed, gn_rng *r)
{
    gn_error err;
    gn_rng_seed(r, seed);
    double z[64];
    random_zeta(f->sn, r, z);
    assert_int_equal(gn_supernet_set_zeta(f->sn, z, 1, &err), 0);
    pick_images(f);
    float loss;
    assert_int_equal(gn_supernet_train_step(f->sn, &f->x, f->labels, 0, &loss, NULL, &err), 0);
}

/* One weight entry: the analytic gradient g (a copy of the arena's) against the
 * five-point difference of the loss in q->value[j] (the step shrinks while a ReLU
 * crosses its kink).  Returns the relative error, or -1 when every step crossed one;
 * fails above 3e-2. */
static double fd_entry(fixture *f, gn_param *q, size_t j, const float *g)
{
    gn_net *net = gn_supernet_net(f->sn);
    float *p = &q->value.data[j];
    float p0 = *p, h = 1e-3f;
    double l[4];
    for (int tries = 0;; tries++, h /= 4) {
        kink_crossed = 0;
        for (int u = 0; u < 4; u++) {
            *p = p0 + (float)(u < 2 ? 2 - u : 1 - u) * h;
            l[u] = loss_at(f);
        }
        if (!kink_crossed || tries == 3)
            break;
    }
    *p = p0;
    if (kink_crossed)
        return -1;
    double fd = fd5(l, h), an = g[q->grad.data - gn_net_grads(net) + j];
    double rel = fabs(an - fd) / (fabs(fd) + 1e-2); /* 1e-2: the float32 loss's noise floor */
    if (rel > 3e-2)
        fail_msg("%s[%zu]: analytic %.6e, finite differences %.6e", q->name, j, an, fd);
    return rel;
}

/* ------------------------------------------------------------------ structure */
static void test_categoricals(void **state)
{
    (void)state;
    fixture f;
    setup_on(&f, "ref");
    static const char *names[] = {"s1.layers", "s1.kernel", "s2.layers", "s2.kernel", "s2.expansion",
                                  "s2.se", "s3.layers", "s3.expansion", "s3.se"};
    static const int ks[] = {3, 2, 2, 2, 2, 2, 2, 2, 2};
    int M = gn_supernet_num_cats(f.sn), K[16];
    assert_int_equal(M, 9);
    for (int m = 0; m < M; m++) {
        const gn_supernet_cat *c = gn_supernet_get_cat(f.sn, m);
        assert_string_equal(c->name, names[m]);
        assert_string_equal(gn_space_dim_name(f.space, c->dim), names[m]);
        assert_int_equal(c->k, ks[m]);
        K[m] = c->k;
    }
    assert_null(gn_supernet_get_cat(f.sn, M));
    /* s3.layers: counts 1 and 2 only, i.e. indices 1, 2 of the space's [0, 1, 2] */
    const gn_supernet_cat *l3 = gn_supernet_get_cat(f.sn, 6);
    assert_int_equal(l3->enc[0], 1);
    assert_int_equal(l3->enc[1], 2);
    assert_true(gn_supernet_same_pad(f.sn));
    gn_oneshot_dist *q;
    gn_error err;
    assert_int_equal(gn_oneshot_dist_create(M, K, 0.0, &q, &err), 0);
    assert_int_equal(gn_oneshot_n(q), gn_supernet_n(f.sn));
    for (int m = 0; m < M; m++)
        assert_int_equal(gn_oneshot_offset(q, m), gn_supernet_get_cat(f.sn, m)->offset);
    gn_oneshot_dist_free(q);
    teardown(&f);
}

/* ------------------------------------------------------------------ g_zeta by FD */
/* Central differences of the relaxed loss in every zeta entry; returns the largest
 * |analytic - FD| relative to the largest |FD|. */
static double check_gzeta(fixture *f, int rows, double h)
{
    gn_error err;
    gn_rng r;
    gn_rng_seed(&r, 1234 + rows);
    int n = gn_supernet_n(f->sn), tot = rows * n;
    double *z = malloc(sizeof *z * tot), *g = malloc(sizeof *g * tot), *fd = malloc(sizeof *fd * tot);
    for (int i = 0; i < rows; i++)
        random_zeta(f->sn, &r, z + (size_t)i * n);
    float loss;
    assert_int_equal(gn_supernet_set_zeta(f->sn, z, rows, &err), 0);
    pick_images(f);
    if (gn_supernet_train_step(f->sn, &f->x, f->labels, 0, &loss, g, &err))
        fail_msg("%s", err.msg);
    mark_base(f);
    int skipped = 0;
    double gmax = 0, dmax = 0, worst_rel = 0;
    for (int i = 0; i < tot; i++) {
        double z0 = z[i], l[4], hi = h;
        for (int tries = 0;; tries++, hi /= 4) { /* a smaller step if a ReLU kink is crossed */
            kink_crossed = 0;
            for (int t = 0; t < 4; t++) { /* z0 + 2h, z0 + h, z0 - h, z0 - 2h */
                z[i] = z0 + (t < 2 ? 2 - t : 1 - t) * hi;
                assert_int_equal(gn_supernet_set_zeta(f->sn, z, rows, &err), 0);
                l[t] = loss_at(f);
            }
            if (!kink_crossed || tries == 3)
                break;
        }
        z[i] = z0;
        fd[i] = kink_crossed ? g[i] : fd5(l, hi); /* still crossing at h/64: not checkable */
        skipped += kink_crossed;
        if (fabs(fd[i]) > gmax)
            gmax = fabs(fd[i]);
    }
    for (int i = 0; i < tot; i++) {
        double d = fabs(g[i] - fd[i]);
        if (getenv("SN_VERBOSE"))
            printf("  zeta[%d] g %.6e fd %.6e\n", i, g[i], fd[i]);
        if (d > dmax)
            dmax = d;
        if (fabs(fd[i]) > 0.1 * gmax && d / fabs(fd[i]) > worst_rel)
            worst_rel = d / fabs(fd[i]);
    }
    printf("g_zeta (rows %d, %d entries, %d not checkable): max |g| %.3e, max |g - fd| %.3e (%.2e of max), worst "
           "relative error among entries > 10%% of max %.2e\n",
           rows, tot, skipped, gmax, dmax, dmax / gmax, worst_rel);
    assert_true(skipped <= tot / 10);
    assert_true(gmax > 1e-3);           /* the check is not vacuous */
    assert_true(dmax <= 1e-2 * gmax);   /* every entry */
    assert_true(worst_rel <= 2e-2);     /* the large entries, each */
    free(base_signs);
    base_signs = NULL;
    free(z);
    free(g);
    free(fd);
    return dmax / gmax;
}

static void test_gzeta_fd(void **state)
{
    (void)state;
    fixture f;
    setup_on(&f, "ref");
    check_gzeta(&f, 1, getenv("SN_H") ? atof(getenv("SN_H")) : 1e-3);
    check_gzeta(&f, N, 1e-3);
    teardown(&f);
}

/* A few weight gradients by central differences (relaxed zeta). */
static void test_weight_fd(void **state)
{
    (void)state;
    fixture f;
    setup_on(&f, "ref");
    gn_rng r;
    relaxed_point(&f, 5, &r);
    mark_base(&f);
    gn_net *net = gn_supernet_net(f.sn);
    static const char *names[] = {"supernet.head.net.0.weight", "supernet.s1.p1.k5.conv.weight",
                                  "supernet.s2.p0.k5_e4_se1.se.conv_reduce.weight",
                                  "supernet.s2.p1.k3_e2_se0.bn2.weight", "supernet.s3.p0.k3_e3_se1.conv_dw.weight",
                                  "supernet.s3.p1.k3_e2_se0.conv_pwl.weight", "supernet.tail.net.6.weight"};
    size_t ng = gn_net_trainable_count(net);
    float *g = malloc(sizeof *g * ng);
    memcpy(g, gn_net_grads(net), sizeof *g * ng);
    double worst = 0;
    for (size_t t = 0; t < sizeof names / sizeof *names; t++) {
        gn_param *q = gn_net_find_param(net, names[t]);
        if (!q)
            fail_msg("no parameter %s", names[t]);
        size_t numel = gn_tensor_numel(&q->value);
        for (int k = 0; k < 3; k++) {
            double rel = fd_entry(&f, q, (size_t)(gn_rng_uniform(&r) * numel) % numel, g);
            if (rel > worst)
                worst = rel;
        }
    }
    printf("weight gradients (21 entries): worst relative error %.2e\n", worst);
    free(g);
    free(base_signs);
    base_signs = NULL;
    teardown(&f);
}

/* ------------------------------------------------------------------ shared weights */
/* gn_supernet_opts.shared: tied slots hold the master's slice after a forward, their
 * gradient is moved into the master's, and the master's gradient (the sum over the
 * candidates that use each weight) agrees with finite differences taken on the master
 * alone (the gather carries every change into the slots). */
static void test_shared_weights(void **state)
{
    (void)state;
    fixture f;
    gn_supernet_opts o = {.shared = true};
    setup_opts(&f, "ref", &o);
    gn_net *net = gn_supernet_net(f.sn);
    assert_true(gn_supernet_shared(f.sn));
    size_t total = gn_net_trainable_count(net), free_w = gn_supernet_free_weights(f.sn);
    assert_true(free_w < total);
    printf("shared: %zu of %zu trainable scalars free\n", free_w, total);
    gn_rng r;
    relaxed_point(&f, 11, &r);
    /* the slot k3_e2_se0 of stage 2 is the centre / channel prefix of the master k5_e4_se1 */
    gn_param *m = gn_net_find_param(net, "supernet.s2.p0.k5_e4_se1.conv_exp.weight");
    gn_param *q = gn_net_find_param(net, "supernet.s2.p0.k3_e2_se0.conv_exp.weight");
    assert_non_null(m);
    assert_non_null(q);
    assert_int_equal(q->shape[2], 3);
    assert_int_equal(m->shape[2], 5);
    assert_true(q->shape[0] < m->shape[0]);
    for (int64_t a = 0; a < q->shape[0]; a++)
        for (int64_t b = 0; b < q->shape[1]; b++)
            for (int y = 0; y < 3; y++)
                for (int x = 0; x < 3; x++) {
                    float sv = q->value.data[((a * q->shape[1] + b) * 3 + y) * 3 + x];
                    float mv = m->value.data[((a * m->shape[1] + b) * 5 + y + 1) * 5 + x + 1];
                    assert_true(sv == mv);
                }
    for (size_t j = 0; j < gn_tensor_numel(&q->grad); j++)
        assert_true(q->grad.data[j] == 0.0f);
    /* BN stays per candidate: a slot's BN weight is its own */
    gn_param *qb = gn_net_find_param(net, "supernet.s2.p0.k3_e2_se0.bn1.weight");
    gn_param *mb = gn_net_find_param(net, "supernet.s2.p0.k5_e4_se1.bn1.weight");
    assert_non_null(qb);
    assert_true(qb->value.data[0] != mb->value.data[0]);
    mark_base(&f);
    static const char *names[] = {"supernet.s1.p0.k5.conv.weight", "supernet.s2.p0.k5_e4_se1.conv_exp.weight",
                                  "supernet.s2.p1.k5_e4_se1.se.conv_reduce.weight",
                                  "supernet.s2.p1.k5_e4_se1.se.conv_expand.bias",
                                  "supernet.s3.p0.k3_e3_se1.conv_pwl.weight"};
    size_t ng = gn_net_trainable_count(net);
    float *g = malloc(sizeof *g * ng);
    memcpy(g, gn_net_grads(net), sizeof *g * ng);
    double worst = 0;
    int checked = 0;
    for (size_t t = 0; t < sizeof names / sizeof *names; t++) {
        gn_param *p = gn_net_find_param(net, names[t]);
        if (!p)
            fail_msg("no parameter %s", names[t]);
        size_t numel = gn_tensor_numel(&p->value);
        for (int k = 0; k < 4; k++) {
            /* k even: index 0 (in every slot's prefix and, for 5x5, ... the corner: k5 only);
             * k odd: a random element */
            size_t j = k == 0 ? 0 : (size_t)(gn_rng_uniform(&r) * numel) % numel;
            if (p->ndim == 4 && p->shape[2] == 5 && k == 2)
                j = 12; /* the centre of the first 5x5 kernel: shared by k3 and k5 */
            double rel = fd_entry(&f, p, j, g);
            if (rel < 0)
                continue;
            if (rel > worst)
                worst = rel;
            checked++;
        }
    }
    assert_true(checked >= 15);
    printf("shared master gradients (%d entries): worst relative error %.2e\n", checked, worst);
    free(g);
    free(base_signs);
    base_signs = NULL;
    teardown(&f);
}

/* ------------------------------------------------------------------ discrete paths */
static int64_t runs(gn_net *net, bool bwd, int *droppath)
{
    int64_t s = 0;
    if (droppath)
        *droppath = 0;
    for (int i = 0; i < net->n_nodes; i++) {
        s += bwd ? net->nodes[i].runs_bwd : net->nodes[i].runs_fwd;
        if (droppath && net->nodes[i].k == ND_DROPPATH)
            (*droppath)++;
    }
    return s;
}

static double max_rel(const float *a, const float *b, size_t n)
{
    double m = 0, s = 0;
    for (size_t i = 0; i < n; i++)
        s = fmax(s, fabs(b[i]));
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(a[i] - b[i]) / fmax(s, 1e-30));
    return m;
}

static void check_path(fixture *f, const int *d)
{
    gn_error err;
    gn_net *sup = gn_supernet_net(f->sn);
    assert_int_equal(gn_supernet_set_discrete(f->sn, d, 1, &err), 0);
    int xenc[GN_ENC_MAX_DIMS];
    assert_int_equal(gn_supernet_derive(f->sn, d, xenc, &err), 0);
    assert_int_equal(gn_space_check(f->space, xenc, &err), 0);
    gn_arch *a;
    if (gn_supernet_decode(f->sn, d, &a, &err))
        fail_msg("%s", err.msg);
    gn_net *net;
    if (gn_net_create(a, f->be, &net, &err))
        fail_msg("%s", err.msg);
    gn_train_opts o = {.dropout = false, .drop_path = false, .bn_momentum = 0.1f, .seed = 1};
    gn_net_set_train_opts(net, &o);
    if (gn_supernet_export(f->sn, net, &err))
        fail_msg("%s", err.msg);

    int64_t sf0 = runs(sup, false, NULL), sb0 = runs(sup, true, NULL);
    float ls, ln;
    const gn_tensor *zs, *zn;
    assert_int_equal(gn_supernet_forward_train(f->sn, &f->x, &zs, &err), 0);
    assert_int_equal(gn_net_forward_train(net, &f->x, &zn, &err), 0);
    float hs[N * CLASSES], hn[N * CLASSES];
    assert_int_equal(gn_tensor_to_host(zs, hs, &err), 0);
    assert_int_equal(gn_tensor_to_host(zn, hn, &err), 0);
    double dl = max_rel(hs, hn, N * CLASSES);
    assert_true(dl < 1e-5);
    assert_int_equal(gn_supernet_train_step(f->sn, &f->x, f->labels, 0, &ls, NULL, &err), 0);
    assert_int_equal(gn_net_train_step(net, &f->x, f->labels, 0, &ln, &err), 0);
    assert_true(fabs(ls - ln) <= 1e-6 * fabs(ln));
    double per[N], mean = 0; /* per-sample losses average to the batch loss */
    assert_int_equal(gn_supernet_sample_losses(f->sn, f->labels, 0, per, &err), 0);
    for (int i = 0; i < N; i++)
        mean += per[i] / N;
    assert_true(fabs(mean - ls) <= 1e-5 * fabs(ls));

    /* every standalone gradient equals its supernet counterpart; off the path: 0 */
    double dg = 0;
    size_t on = 0;
    unsigned char *hit = calloc((size_t)gn_net_num_params(sup), 1);
    for (int i = 0; i < gn_net_num_params(net); i++) {
        gn_param *q = gn_net_param(net, i);
        char name[GN_NAME_MAX + 32];
        gn_param *s = gn__sn_path_param(f->sn, a, q, name, sizeof name);
        assert_non_null(s);
        hit[s - gn_net_param(sup, 0)] = 1;
        if (!q->trainable)
            continue;
        size_t n = gn_tensor_numel(&q->grad);
        double r = max_rel(s->grad.data, q->grad.data, n);
        if (r > dg)
            dg = r;
        on += n;
    }
    size_t off_nonzero = 0;
    for (int i = 0; i < gn_net_num_params(sup); i++) {
        gn_param *s = gn_net_param(sup, i);
        if (hit[i] || !s->trainable)
            continue;
        for (size_t j = 0; j < gn_tensor_numel(&s->grad); j++)
            off_nonzero += s->grad.data[j] != 0.0f;
    }
    free(hit);
    assert_true(dg < 1e-5);
    assert_int_equal(off_nonzero, 0);

    /* only the path ran: one forward + one train step each */
    int dp;
    int64_t nf = runs(net, false, &dp), nb = runs(net, true, NULL);
    int64_t sf = runs(sup, false, NULL) - sf0, sb = runs(sup, true, NULL) - sb0;
    int64_t mixes = f->sn->n_pos;
    assert_int_equal(sf, nf - 2 * dp + 2 * mixes);
    assert_int_equal(sb, nb - dp + mixes);
    char *desc = gn_space_describe(f->space, xenc);
    printf("  %-5s d=[%d %d %d %d %d %d %d %d %d] %-48s logits %.1e loss %.1e grads %.1e (%zu) nodes fwd %lld/%d\n",
           gn_backend_name(f->be), d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], desc, dl,
           fabs(ls - ln) / fabs(ln), dg, on, (long long)sf / 2, sup->n_nodes);
    free(desc);
    gn_net_free(net);
    gn_arch_free(a);
}

static void discrete_on(const char *backend)
{
    fixture f;
    setup_on(&f, backend);
    static const int ds[][9] = {
        {0, 0, 0, 0, 0, 0, 0, 0, 0}, {2, 1, 1, 1, 1, 1, 1, 1, 1}, {1, 1, 0, 1, 0, 1, 1, 0, 0},
        {0, 1, 1, 0, 1, 0, 0, 1, 1}, {2, 0, 1, 1, 0, 0, 1, 1, 0}, {1, 0, 0, 0, 1, 1, 0, 0, 1},
    };
    for (size_t i = 0; i < sizeof ds / sizeof *ds; i++)
        check_path(&f, ds[i]);
    teardown(&f);
}

static void test_discrete_ref(void **state)
{
    (void)state;
    discrete_on("ref");
}

static void test_discrete_dnnl(void **state)
{
    (void)state;
    if (!strstr(gn_backend_names(), "dnnl"))
        skip();
    discrete_on("dnnl");
}

/* Activations are allocated when their node first runs: after a discrete step only the
 * path's values hold memory; after a relaxed step every value does. */
static void test_lazy_values(void **state)
{
    (void)state;
    fixture f;
    setup_on(&f, "ref");
    gn_error err;
    int d[9] = {1, 0, 1, 1, 0, 1, 0, 1, 0};
    float loss;
    assert_int_equal(gn_supernet_set_discrete(f.sn, d, 1, &err), 0);
    assert_int_equal(gn_supernet_train_step(f.sn, &f.x, f.labels, 0, &loss, NULL, &err), 0);
    gn_net *net = gn_supernet_net(f.sn);
    int run = 0;
    for (int i = 0; i < net->n_nodes; i++) {
        const gn_node *nd = &net->nodes[i];
        run += nd->runs_fwd > 0;
        if (nd->relu_fused) { /* BN + ReLU run as one op: the pre-activation takes no memory */
            assert_null(net->v[nd->out].data);
            assert_null(net->dv[nd->out].data);
            assert_int_equal(nd->runs_fwd, nd[1].runs_fwd);
            continue;
        }
        bool has = net->v[nd->out].data && net->dv[nd->out].data;
        assert_true(nd->runs_fwd > 0 ? has : !net->v[nd->out].data && !net->dv[nd->out].data);
    }
    assert_true(run < net->n_nodes / 3);
    double z[64];
    gn_rng r;
    gn_rng_seed(&r, 8);
    random_zeta(f.sn, &r, z);
    assert_int_equal(gn_supernet_set_zeta(f.sn, z, 1, &err), 0);
    assert_int_equal(gn_supernet_train_step(f.sn, &f.x, f.labels, 0, &loss, NULL, &err), 0);
    int fused = 0;
    for (int i = 0; i < net->n_nodes; i++)
        fused += net->nodes[i].relu_fused;
    assert_true(fused > 0); /* the tiny space's relu stages */
    for (int i = 0; i < net->n_nodes; i++) {
        int o = net->nodes[i].out;
        if (net->nodes[i].relu_fused)
            assert_true(!net->v[o].data && !net->dv[o].data);
        else if (o > 0)
            assert_non_null(net->dv[o].data);
    }
    printf("  a discrete step ran %d of %d nodes and allocated only their values\n", run, net->n_nodes);
    teardown(&f);
}

/* A non-default fixed encoding: stage 3's activation is its second choice (relu),
 * so the candidates there are relu blocks; derive() keeps it, and the paths still
 * equal their standalone networks. */
static void test_fixed_encoding(void **state)
{
    (void)state;
    fixture f;
    setup_on(&f, "ref");
    gn_error err;
    int fixed[GN_ENC_MAX_DIMS] = {0}, act = -1;
    for (int i = 0; i < gn_space_desc(f.space)->ndims; i++)
        if (strcmp(gn_space_dim_name(f.space, i), "s3.act") == 0)
            act = i;
    assert_true(act >= 0);
    fixed[act] = 1;
    gn_supernet_opts o = {.fixed = fixed};
    gn_supernet_free(f.sn);
    if (gn_supernet_create(f.space, f.be, &o, &f.sn, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(gn_supernet_init(f.sn, 3, &err), 0);
    assert_int_equal(gn_supernet_fixed(f.sn)[act], 1);
    static const int ds[][9] = {{1, 0, 1, 1, 1, 0, 1, 0, 1}, {0, 1, 0, 0, 0, 1, 0, 1, 0}};
    for (size_t i = 0; i < 2; i++) {
        int x[GN_ENC_MAX_DIMS];
        assert_int_equal(gn_supernet_derive(f.sn, ds[i], x, &err), 0);
        assert_int_equal(x[act], 1);
        check_path(&f, ds[i]);
    }
    teardown(&f);
}

/* Per-sample d: the union of the paths runs, and each sample's logits are those of
 * its own path when BN is not in the way (one sample per row is its own batch here:
 * the check is the union count, not the values). */
static void test_per_sample_union(void **state)
{
    (void)state;
    fixture f;
    setup_on(&f, "ref");
    gn_error err;
    int d[N * 9] = {0};
    d[9 + 3] = 1; /* sample 1: s2 kernel 5 */
    assert_int_equal(gn_supernet_set_discrete(f.sn, d, N, &err), 0);
    gn_net *sup = gn_supernet_net(f.sn);
    int64_t before = runs(sup, false, NULL);
    const gn_tensor *z;
    assert_int_equal(gn_supernet_forward_train(f.sn, &f.x, &z, &err), 0);
    int64_t both = runs(sup, false, NULL) - before;
    assert_int_equal(gn_supernet_set_discrete(f.sn, d, 1, &err), 0);
    before = runs(sup, false, NULL);
    assert_int_equal(gn_supernet_forward_train(f.sn, &f.x, &z, &err), 0);
    int64_t one = runs(sup, false, NULL) - before;
    assert_true(both > one); /* the k5 candidates of stage 2 ran too (two positions) */
    teardown(&f);
}

/* ------------------------------------------------------------------ errors */
static void one_line(const gn_error *e, const char *want)
{
    assert_null(strchr(e->msg, '\n'));
    if (!strstr(e->msg, want))
        fail_msg("error '%s' does not say '%s'", e->msg, want);
}

static void test_bad_input(void **state)
{
    (void)state;
    gn_error err;
    gn_space *s;
    gn_backend *be;
    gn_supernet *sn;
    assert_int_equal(gn_backend_create("ref", &be, &err), 0);
    /* only act and filters vary: the space has dimensions, the supernet nothing to search */
    const char *flat = "{\"name\": \"flat\", \"in_channels\": 1, \"classes\": 4, \"resolutions\": [16],\n"
                       " \"stages\": [{\"stage\": 0, \"type\": \"head\", \"filters\": [8]},\n"
                       "  {\"stage\": 1, \"type\": \"conv\", \"stride\": 1, \"kernel\": [3], \"layers\": [1],\n"
                       "   \"act\": [\"relu\", \"swish\"], \"filters\": [8, 16]}], \"tail\": {\"filters\": [32]}}";
    assert_int_equal(gn_space_parse(flat, "flat.json", &s, &err), 0);
    assert_int_not_equal(gn_supernet_create(s, be, NULL, &sn, &err), 0);
    assert_null(sn);
    one_line(&err, "nothing to search");
    int bad_fixed[GN_ENC_MAX_DIMS] = {5, 0};
    gn_supernet_opts o = {.fixed = bad_fixed};
    assert_int_not_equal(gn_supernet_create(s, be, &o, &sn, &err), 0);
    one_line(&err, "flat.json");

    fixture f;
    setup_on(&f, "ref");
    /* export into a network that is no path of the supernet (16 filters in stage 1) */
    int fx[2] = {0, 1};
    gn_arch *fa;
    gn_net *fnet;
    assert_int_equal(gn_space_decode(s, fx, &fa, &err), 0);
    assert_int_equal(gn_net_create(fa, be, &fnet, &err), 0);
    assert_int_not_equal(gn_supernet_export(f.sn, fnet, &err), 0);
    one_line(&err, "shape differs from supernet.s1.p0.k3.conv.weight");
    gn_net_free(fnet);
    gn_arch_free(fa);
    gn_space_free(s);
    double z[64] = {0};
    gn_rng r;
    gn_rng_seed(&r, 3);
    random_zeta(f.sn, &r, z);
    const gn_tensor *lg;
    gn_supernet *fresh;
    assert_int_equal(gn_supernet_create(f.space, be, NULL, &fresh, &err), 0);
    assert_int_not_equal(gn_supernet_forward_train(fresh, &f.x, &lg, &err), 0);
    one_line(&err, "before zeta was set");
    gn_supernet_free(fresh);
    double zz[3 * 64];
    for (int i = 0; i < 3; i++)
        memcpy(zz + i * gn_supernet_n(f.sn), z, sizeof(double) * gn_supernet_n(f.sn));
    assert_int_equal(gn_supernet_set_zeta(f.sn, zz, 3, &err), 0);
    assert_int_not_equal(gn_supernet_forward_train(f.sn, &f.x, &lg, &err), 0);
    one_line(&err, "zeta has 3 rows, the batch 4");
    z[2] = NAN;
    assert_int_not_equal(gn_supernet_set_zeta(f.sn, z, 1, &err), 0);
    one_line(&err, "zeta[2]");
    z[2] = -0.5;
    assert_int_not_equal(gn_supernet_set_zeta(f.sn, z, 1, &err), 0);
    one_line(&err, ">= 0");
    assert_int_not_equal(gn_supernet_set_zeta(f.sn, z, 0, &err), 0);
    one_line(&err, "rows must be >= 1");
    int d[9] = {3, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_int_not_equal(gn_supernet_set_discrete(f.sn, d, 1, &err), 0);
    one_line(&err, "s1.layers");
    int x[GN_ENC_MAX_DIMS];
    assert_int_not_equal(gn_supernet_derive(f.sn, d, x, &err), 0);
    one_line(&err, "out of range");
    /* g_zeta after zeta changed under the forward */
    d[0] = 0;
    assert_int_equal(gn_supernet_set_discrete(f.sn, d, 1, &err), 0);
    assert_int_equal(gn_supernet_forward_train(f.sn, &f.x, &lg, &err), 0);
    assert_int_equal(gn_supernet_set_discrete(f.sn, d, 1, &err), 0);
    double g[64];
    gn_net *net = gn_supernet_net(f.sn);
    assert_int_not_equal(gn_supernet_backward(f.sn, &net->dlogits, g, &err), 0);
    one_line(&err, "set again after the forward");
    /* no inference path */
    assert_int_not_equal(gn_net_prepare_inference(net, &err), 0);
    one_line(&err, "no inference path");
    teardown(&f);
    gn_backend_destroy(be);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_categoricals),     cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_gzeta_fd),         cmocka_unit_test(test_weight_fd),
        cmocka_unit_test(test_shared_weights),
        cmocka_unit_test(test_discrete_ref),     cmocka_unit_test(test_discrete_dnnl),
        cmocka_unit_test(test_per_sample_union), cmocka_unit_test(test_fixed_encoding),
        cmocka_unit_test(test_lazy_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
