/* unas_step.c — one UNAS search step: sample, architecture step on the validation
 * batch (reinforce / gumbel / unified, with the latency hinge and the optional
 * generalization-gap objective), Adam on theta, weight step on the training batch
 * (gpunas/unas.h); plus the internal pieces the search run needs
 * (oneshot_internal.h: the weights-only step, the gradient clip, the state). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpunas/unas.h"
#include "oneshot/oneshot_internal.h"

struct gn_unas {
    gn_unas_config c;
    gn_supernet *sn;
    gn_oneshot_dist *q;
    gn_oneshot_sample *s;
    gn_optim *wopt;
    gn_oneshot_baseline base;
    int M, n;
    int64_t steps;
    double grad_clip;                /* weights: global-norm clip, 0 none (gn__unas_set_grad_clip) */
    double *theta, *adam_m, *adam_v; /* [n] */
    double *g, *g2, *gz, *gz_lat;     /* [n] scratch: gradients in theta / zeta */
    double *gz2;                      /* [n] scratch: the second batch's g_zeta (gen-gap) */
    double *lt, *lv, *w;              /* [cap] scratch: per-sample CE (train, val), weights */
    int cap;
    float *dz;                        /* [dz_cap] scratch: custom dlogits (gen-gap) */
    size_t dz_cap;
    float *bn_save;                   /* the BN running statistics (gen-gap re-forward) */
    size_t bn_off, bn_len;
    int64_t bn_batches;
};

static const char *est_names[] = {"reinforce", "gumbel", "unified"};

const char *gn_unas_estimator_name(gn_unas_estimator e) { return (unsigned)e < 3 ? est_names[e] : "?"; }

int gn_unas_estimator_parse(const char *name, gn_unas_estimator *out)
{
    for (int i = 0; name && i < 3; i++)
        if (!strcmp(name, est_names[i])) {
            *out = (gn_unas_estimator)i;
            return 0;
        }
    return -1;
}

void gn_unas_defaults(gn_unas_config *c)
{
    memset(c, 0, sizeof *c);
    c->estimator = GN_UNAS_UNIFIED;
    c->tau = 0.4;
    c->baseline_momentum = 0.1;
    c->arch_lr = 1e-3;
    c->arch_beta1 = 0.9;
    c->arch_beta2 = 0.999;
    c->arch_eps = 1e-8;
    c->arch_wd = 1e-6;
    gn_optim_defaults(GN_OPT_ADAMW, &c->weight_optim);
    c->weight_optim.weight_decay = 3e-4f;
    c->weight_lr = 3e-4;
}

/* ------------------------------------------------------------------ checks */

static int check_rates(const gn_unas_config *c, gn_error *err)
{
    if (!(c->tau > 0) || !isfinite(c->tau))
        return gn_error_set(err, "unas: tau %g must be > 0", c->tau);
    if ((unsigned)c->estimator > GN_UNAS_UNIFIED)
        return gn_error_set(err, "unas: unknown estimator %d (reinforce, gumbel, unified)", (int)c->estimator);
    if (!(c->arch_lr >= 0) || !isfinite(c->arch_lr) || !(c->weight_lr >= 0) || !isfinite(c->weight_lr))
        return gn_error_set(err, "unas: learning rates %g (arch), %g (weights) must be finite and >= 0",
                            c->arch_lr, c->weight_lr);
    if (!(c->arch_beta1 >= 0 && c->arch_beta1 < 1) || !(c->arch_beta2 >= 0 && c->arch_beta2 < 1) ||
        !(c->arch_eps > 0) || !(c->arch_wd >= 0))
        return gn_error_set(err, "unas: Adam on theta needs betas in [0, 1), eps > 0, wd >= 0");
    if (!(c->gen_gap >= 0) || !isfinite(c->gen_gap))
        return gn_error_set(err, "unas: gen_gap %g must be finite and >= 0", c->gen_gap);
    if (c->measure && !c->lat)
        return gn_error_set(err, "unas: a latency callback (measure) needs a latency term (lat)");
    if (c->lat && (!isfinite(c->target_ms) || !(c->lat_coeff >= 0) || !isfinite(c->lat_coeff) ||
                   c->warmup_steps < 0))
        return gn_error_set(err, "unas: latency target %g ms, coefficient %g, warm-up %lld steps out of range",
                            c->target_ms, c->lat_coeff, (long long)c->warmup_steps);
    return 0;
}

static int check_batches(const gn_tensor *tx, const int32_t *ty, const gn_tensor *vx, const int32_t *vy,
                         gn_rng *rng, gn_error *err)
{
    if (!tx || !ty || !vx || !vy || !rng)
        return gn_error_set(err, "unas: step needs train and validation images, labels and an rng");
    if (tx->n != vx->n)
        return gn_error_set(err, "unas: train batch of %d and validation batch of %d differ in size", tx->n, vx->n);
    if (tx->c != vx->c || tx->h != vx->h || tx->w != vx->w)
        return gn_error_set(err, "unas: train images %dx%dx%d and validation images %dx%dx%d differ", tx->c, tx->h,
                            tx->w, vx->c, vx->h, vx->w);
    if (tx->n < 1)
        return gn_error_set(err, "unas: empty batch");
    return 0;
}

/* ------------------------------------------------------------------ create / free */

static int make_dist(gn_unas *u, gn_error *err)
{
    int K[GN_ONESHOT_MAX_M];
    u->M = gn_supernet_num_cats(u->sn);
    if (u->M < 1 || u->M > GN_ONESHOT_MAX_M)
        return gn_error_set(err, "unas: the supernet has %d categoricals (1..%d)", u->M, GN_ONESHOT_MAX_M);
    for (int m = 0; m < u->M; m++)
        K[m] = gn_supernet_get_cat(u->sn, m)->k;
    if (gn_oneshot_dist_create(u->M, K, u->c.eps, &u->q, err) || gn_oneshot_sample_create(u->q, &u->s, err))
        return -1;
    u->n = gn_oneshot_n(u->q);
    return 0;
}

static int alloc_vectors(gn_unas *u, gn_error *err)
{
    double **v[] = {&u->theta, &u->adam_m, &u->adam_v, &u->g, &u->g2, &u->gz, &u->gz_lat, &u->gz2};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        if (!(*v[i] = calloc((size_t)u->n, sizeof(double))))
            return gn_error_set(err, "unas: out of memory");
    gn_net *net = gn_supernet_net(u->sn);
    u->bn_off = (size_t)gn_net_trainable_count(net);
    u->bn_len = gn_net_num_values(net) - u->bn_off;
    if (!(u->bn_save = malloc((u->bn_len ? u->bn_len : 1) * sizeof(float))))
        return gn_error_set(err, "unas: out of memory");
    return 0;
}

int gn_unas_create(gn_supernet *sn, const gn_unas_config *c, gn_unas **out, gn_error *err)
{
    *out = NULL;
    if (!sn || !c)
        return gn_error_set(err, "unas: no supernet or config");
    if (check_rates(c, err))
        return -1;
    gn_unas *u = calloc(1, sizeof *u);
    if (!u)
        return gn_error_set(err, "unas: out of memory");
    u->c = *c;
    u->sn = sn;
    if (make_dist(u, err) || alloc_vectors(u, err) ||
        gn_optim_create_for_net(&c->weight_optim, gn_supernet_net(sn), &u->wopt, err) ||
        gn_oneshot_baseline_init(&u->base, c->baseline_momentum, err)) {
        gn_unas_free(u);
        return -1;
    }
    *out = u;
    return 0;
}

void gn_unas_free(gn_unas *u)
{
    if (!u)
        return;
    gn_oneshot_sample_free(u->s);
    gn_oneshot_dist_free(u->q);
    if (u->wopt)
        gn_optim_free(u->wopt);
    free(u->theta);
    free(u->adam_m);
    free(u->adam_v);
    free(u->g);
    free(u->g2);
    free(u->gz);
    free(u->gz_lat);
    free(u->gz2);
    free(u->lt);
    free(u->lv);
    free(u->w);
    free(u->dz);
    free(u->bn_save);
    free(u);
}

/* ------------------------------------------------------------------ pieces */

double gn_unas_lat_coeff(const gn_unas *u)
{
    if (!u->c.lat)
        return 0;
    if (u->c.warmup_steps <= 0)
        return u->c.lat_coeff;
    double r = (double)u->steps / (double)u->c.warmup_steps;
    return u->c.lat_coeff * (r < 0 ? 0 : r > 1 ? 1 : r);
}

/* Room for N per-sample losses and weights. */
static int ensure_cap(gn_unas *u, int N, gn_error *err)
{
    if (N <= u->cap)
        return 0;
    double **v[] = {&u->lt, &u->lv, &u->w};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        double *p = realloc(*v[i], (size_t)N * sizeof(double));
        if (!p)
            return gn_error_set(err, "unas: out of memory");
        *v[i] = p;
    }
    u->cap = N;
    return 0;
}

static double mean_of(const double *l, int N)
{
    double s = 0;
    for (int i = 0; i < N; i++)
        s += l[i];
    return s / N;
}

static double sign_of(double x) { return (double)((x > 0) - (x < 0)); }

/* UNAS training_obj: mean_i CE_train_i + lambda |CE_val_i - CE_train_i|. */
static double gap_objective(const double *lt, const double *lv, int N, double lambda)
{
    double s = 0;
    for (int i = 0; i < N; i++)
        s += lt[i] + lambda * fabs(lv[i] - lt[i]);
    return s / N;
}

/* Training forward of x under the zeta / d set last; per-sample CE into l. */
static int forward_losses(gn_unas *u, const gn_tensor *x, const int32_t *y, double *l, const gn_tensor **logits,
                          gn_error *err)
{
    const gn_tensor *z;
    if (gn_supernet_forward_train(u->sn, x, &z, err) || gn_supernet_sample_losses(u->sn, y, 0.0f, l, err))
        return -1;
    if (logits)
        *logits = z;
    return 0;
}

/* f(d): discrete forwards of the path d.  *fval: the mean validation CE; *f: the
 * objective (gen-gap: both batches, pair by pair; else *fval). */
static int discrete_obj(gn_unas *u, const gn_tensor *tx, const int32_t *ty, const gn_tensor *vx, const int32_t *vy,
                        double *f, double *fval, gn_error *err)
{
    int N = vx->n;
    if (ensure_cap(u, N, err) || gn_supernet_set_discrete(u->sn, u->s->d, 1, err))
        return -1;
    if (u->c.gen_gap > 0 && forward_losses(u, tx, ty, u->lt, NULL, err))
        return -1;
    if (forward_losses(u, vx, vy, u->lv, NULL, err))
        return -1;
    *fval = mean_of(u->lv, N);
    *f = u->c.gen_gap > 0 ? gap_objective(u->lt, u->lv, N, u->c.gen_gap) : *fval;
    return 0;
}

/* f~(zeta) and, if gz != NULL, g_zeta (relaxed forward/backward at the sample's zeta). */
static int relaxed_loss(gn_unas *u, const gn_tensor *x, const int32_t *y, double *f, double *gz, gn_error *err)
{
    float loss;
    if (gn_supernet_set_zeta(u->sn, u->s->zeta, 1, err) ||
        gn_supernet_train_step(u->sn, x, y, 0.0f, &loss, gz, err))
        return -1;
    *f = loss;
    return 0;
}

/* Backward of the last forward (logits z) for the loss sum_i w_i CE_i (smoothing 0):
 * dlogits_i = w_i (softmax(z_i) - onehot(y_i)); g_zeta into gz. */
static int weighted_backward(gn_unas *u, const gn_tensor *z, const int32_t *y, const double *w, double *gz,
                             gn_error *err)
{
    int N = z->n, K = z->c;
    if ((size_t)N * K > u->dz_cap) {
        float *p = realloc(u->dz, (size_t)N * K * sizeof *p);
        if (!p)
            return gn_error_set(err, "unas: out of memory");
        u->dz = p;
        u->dz_cap = (size_t)N * K;
    }
    if (gn_tensor_to_host(z, u->dz, err))
        return -1;
    for (int i = 0; i < N; i++) {
        float *r = u->dz + (size_t)i * K;
        double mx = r[0], s = 0;
        for (int c = 1; c < K; c++)
            mx = fmax(mx, r[c]);
        for (int c = 0; c < K; c++)
            s += exp(r[c] - mx);
        for (int c = 0; c < K; c++)
            r[c] = (float)(w[i] * (exp(r[c] - mx) / s - (c == y[i] ? 1.0 : 0.0)));
    }
    gn_tensor dz = {0};
    int rc = gn_tensor_alloc(&dz, gn_net_backend(gn_supernet_net(u->sn)), N, K, 1, 1, err) ||
             gn_tensor_from_host(&dz, u->dz, err) || gn_supernet_backward(u->sn, &dz, gz, err);
    gn_tensor_free(&dz);
    return rc ? -1 : 0;
}

/* The BN running statistics (and batch count), kept around a repeated forward. */
static void bn_keep(gn_unas *u)
{
    gn_net *net = gn_supernet_net(u->sn);
    memcpy(u->bn_save, gn_net_values(net) + u->bn_off, u->bn_len * sizeof(float));
    u->bn_batches = gn_net_bn_batches(net);
}

static void bn_back(gn_unas *u)
{
    gn_net *net = gn_supernet_net(u->sn);
    memcpy(gn_net_values(net) + u->bn_off, u->bn_save, u->bn_len * sizeof(float));
    gn_net_set_bn_batches(net, u->bn_batches);
}

/* The gen-gap objective relaxed at the sample's zeta: f~ (*f), the mean validation CE
 * (*fval) and, if gz != NULL, g_zeta.  Each batch is forwarded on its own (its own BN
 * batch statistics, as UNAS); g_zeta is the sum of the two batches' backwards with the
 * per-sample weights w_val,i = lambda s_i / N and w_train,i = (1 - lambda s_i) / N,
 * s_i = sign(CE_val_i - CE_train_i).  The training batch is forwarded a second time for
 * its backward, with the BN running statistics put back afterwards, so that they end
 * as after one forward of each batch. */
static int relaxed_gap(gn_unas *u, const gn_tensor *tx, const int32_t *ty, const gn_tensor *vx, const int32_t *vy,
                       double *f, double *fval, double *gz, gn_error *err)
{
    int N = vx->n;
    double lam = u->c.gen_gap;
    const gn_tensor *z;
    if (ensure_cap(u, N, err) || gn_supernet_set_zeta(u->sn, u->s->zeta, 1, err) ||
        forward_losses(u, tx, ty, u->lt, NULL, err) || forward_losses(u, vx, vy, u->lv, &z, err))
        return -1;
    *f = gap_objective(u->lt, u->lv, N, lam);
    *fval = mean_of(u->lv, N);
    if (!gz)
        return 0;
    for (int i = 0; i < N; i++)
        u->w[i] = lam * sign_of(u->lv[i] - u->lt[i]) / N;
    if (weighted_backward(u, z, vy, u->w, u->gz2, err))
        return -1;
    bn_keep(u);
    int rc = gn_supernet_forward_train(u->sn, tx, &z, err);
    bn_back(u);
    if (rc)
        return -1;
    for (int i = 0; i < N; i++)
        u->w[i] = (1.0 - lam * sign_of(u->lv[i] - u->lt[i])) / N;
    if (weighted_backward(u, z, ty, u->w, gz, err))
        return -1;
    for (int i = 0; i < u->n; i++)
        gz[i] += u->gz2[i];
    return 0;
}

/* f~(zeta) of the architecture objective (*f), the relaxed validation CE (*fval) and,
 * if gz != NULL, its g_zeta. */
static int relaxed_obj(gn_unas *u, const gn_tensor *tx, const int32_t *ty, const gn_tensor *vx, const int32_t *vy,
                       double *f, double *fval, double *gz, gn_error *err)
{
    if (u->c.gen_gap > 0)
        return relaxed_gap(u, tx, ty, vx, vy, f, fval, gz, err);
    if (relaxed_loss(u, vx, vy, f, gz, err))
        return -1;
    *fval = *f;
    return 0;
}

/* L(onehot d): the callback's latency when one is set (and f_lat is used: not for
 * gumbel), else the profile's. */
static int latency_of_d(gn_unas *u, double *ms, gn_error *err)
{
    if (u->c.measure && u->c.estimator != GN_UNAS_GUMBEL) {
        if (u->c.measure(u->c.measure_ctx, u->s->d, ms, err))
            return -1;
        if (!isfinite(*ms))
            return gn_error_set(err, "unas: step %lld: the latency callback gave %g ms", (long long)u->steps + 1,
                                *ms);
        return 0;
    }
    double *onehot = u->g2; /* scratch */
    memset(onehot, 0, (size_t)u->n * sizeof(double));
    for (int m = 0; m < u->M; m++)
        onehot[gn_oneshot_offset(u->q, m) + u->s->d[m]] = 1.0;
    return gn_supernet_lat_eval(u->c.lat, onehot, u->n, ms, NULL, err);
}

/* Latency at d and zeta: f_lat = c_t relu(L(onehot d) - T), c = c_t relu(L(zeta) - T),
 * gz_lat = dc/dzeta.  Zeros without a latency term. */
static int latency_terms(gn_unas *u, double ct, double *f_lat, double *c_lat, gn_unas_report *r, gn_error *err)
{
    *f_lat = *c_lat = 0;
    memset(u->gz_lat, 0, (size_t)u->n * sizeof(double));
    if (!u->c.lat)
        return 0;
    if (latency_of_d(u, &r->lat_d, err) ||
        gn_supernet_lat_eval(u->c.lat, u->s->zeta, u->n, &r->lat_zeta, u->gz_lat, err))
        return -1;
    double T = u->c.target_ms;
    *f_lat = ct * fmax(r->lat_d - T, 0);
    *c_lat = ct * fmax(r->lat_zeta - T, 0);
    double w = r->lat_zeta > T ? ct : 0;
    for (int i = 0; i < u->n; i++)
        u->gz_lat[i] *= w;
    return 0;
}

static void add_into(double *a, const double *b, int n)
{
    for (int i = 0; i < n; i++)
        a[i] += b[i];
}

/* The architecture gradient u->g (step (b) before Adam): on the validation batch, or
 * with gen_gap > 0 on both batches. */
static int arch_grad(gn_unas *u, const gn_tensor *tx, const int32_t *ty, const gn_tensor *vx, const int32_t *vy,
                     gn_unas_report *r, gn_error *err)
{
    double f_lat, c_lat, fd = NAN, ft = NAN, fo, fto;
    if (latency_terms(u, r->lat_coeff, &f_lat, &c_lat, r, err))
        return -1;
    switch (u->c.estimator) {
    case GN_UNAS_REINFORCE: {
        if (discrete_obj(u, tx, ty, vx, vy, &fo, &fd, err))
            return -1;
        double f = fo + f_lat, b = u->base.value; /* read before the update */
        if (gn_oneshot_grad_reinforce(u->q, u->s, f, b, u->g, err) || gn_oneshot_baseline_update(&u->base, f, err))
            return -1;
        break;
    }
    case GN_UNAS_GUMBEL:
        if (relaxed_obj(u, tx, ty, vx, vy, &fto, &ft, u->gz, err))
            return -1;
        add_into(u->gz, u->gz_lat, u->n);
        if (gn_oneshot_grad_relaxed(u->q, u->s, u->gz, u->g, err))
            return -1;
        break;
    case GN_UNAS_UNIFIED:
        if (discrete_obj(u, tx, ty, vx, vy, &fo, &fd, err) || relaxed_obj(u, tx, ty, vx, vy, &fto, &ft, u->gz, err) ||
            gn_oneshot_grad_unified(u->q, u->s, fo, fto, u->gz, u->g, err) ||
            gn_oneshot_grad_unified(u->q, u->s, f_lat, c_lat, u->gz_lat, u->g2, err))
            return -1;
        add_into(u->g, u->g2, u->n);
        break;
    }
    r->val_loss_d = fd;
    r->val_loss_relaxed = ft;
    return 0;
}

/* torch.optim.Adam on theta with u->g (L2 weight decay added to the gradient). */
static int adam_theta(gn_unas *u, double *gnorm, gn_error *err)
{
    const gn_unas_config *c = &u->c;
    const double *th = gn_oneshot_theta(u->q);
    double t = (double)(u->steps + 1), bc1 = 1 - pow(c->arch_beta1, t), bc2 = 1 - pow(c->arch_beta2, t);
    double nn = 0;
    for (int i = 0; i < u->n; i++) {
        double g = u->g[i] + c->arch_wd * th[i];
        nn += u->g[i] * u->g[i];
        u->adam_m[i] = c->arch_beta1 * u->adam_m[i] + (1 - c->arch_beta1) * g;
        u->adam_v[i] = c->arch_beta2 * u->adam_v[i] + (1 - c->arch_beta2) * g * g;
        u->theta[i] = th[i] - c->arch_lr * (u->adam_m[i] / bc1) / (sqrt(u->adam_v[i] / bc2) + c->arch_eps);
    }
    *gnorm = sqrt(nn);
    if (!isfinite(nn))
        return gn_error_set(err, "unas: step %lld: non-finite architecture gradient", (long long)u->steps + 1);
    return gn_oneshot_set_theta(u->q, u->theta, err);
}

/* torch.nn.utils.clip_grad_norm_ over the trainable weights' gradients:
 * g *= clip / (|g| + 1e-6) when that factor is below 1. */
static void clip_grads(gn_unas *u)
{
    if (!(u->grad_clip > 0))
        return;
    float *g = gn_net_grads(gn_supernet_net(u->sn));
    size_t n = gn_optim_size(u->wopt);
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        ss += (double)g[i] * g[i];
    double coef = u->grad_clip / (sqrt(ss) + 1e-6);
    if (coef < 1)
        for (size_t i = 0; i < n; i++)
            g[i] = (float)(g[i] * coef);
}

/* Step (c): relaxed forward/backward on the training batch at the sample's zeta, the
 * gradient clip (if set), then the weight optimizer. */
static int weight_step(gn_unas *u, const gn_tensor *tx, const int32_t *ty, double *loss, gn_error *err)
{
    if (relaxed_loss(u, tx, ty, loss, NULL, err))
        return -1;
    if (!isfinite(*loss))
        return gn_error_set(err, "unas: step %lld: non-finite training loss", (long long)u->steps + 1);
    clip_grads(u);
    gn_net *net = gn_supernet_net(u->sn);
    return gn_optim_step(u->wopt, gn_net_values(net), gn_net_grads(net), u->c.weight_lr, err);
}

static int fill_after(gn_unas *u, gn_unas_report *r, gn_error *err)
{
    r->entropy = gn_oneshot_entropy(u->q, NULL);
    r->baseline = u->base.value;
    r->lat_expected = NAN;
    if (u->c.lat)
        return gn_supernet_lat_eval(u->c.lat, gn_oneshot_probs(u->q), u->n, &r->lat_expected, NULL, err);
    return 0;
}

/* ------------------------------------------------------------------ the step */

int gn_unas_step(gn_unas *u, const gn_tensor *train_x, const int32_t *train_y, const gn_tensor *val_x,
                 const int32_t *val_y, gn_rng *rng, gn_unas_report *report, gn_error *err)
{
    gn_unas_report r;
    memset(&r, 0, sizeof r);
    r.lat_d = r.lat_zeta = NAN;
    if (!u)
        return gn_error_set(err, "unas: no search state");
    if (check_rates(&u->c, err) || check_batches(train_x, train_y, val_x, val_y, rng, err))
        return -1;
    r.lat_coeff = gn_unas_lat_coeff(u);
    if (gn_oneshot_draw(u->q, u->c.tau, rng, u->s, err) || arch_grad(u, train_x, train_y, val_x, val_y, &r, err) ||
        adam_theta(u, &r.grad_norm, err) || weight_step(u, train_x, train_y, &r.train_loss, err))
        return -1;
    u->steps++;
    r.step = u->steps;
    if (fill_after(u, &r, err))
        return -1;
    if (report)
        *report = r;
    return 0;
}

/* ------------------------------------------------------------------ accessors */

void gn_unas_argmax(const gn_unas *u, int *d)
{
    const double *th = gn_oneshot_theta(u->q);
    for (int m = 0; m < u->M; m++) {
        int o = gn_oneshot_offset(u->q, m), best = 0;
        for (int i = 1; i < gn_oneshot_k(u->q, m); i++)
            if (th[o + i] > th[o + best])
                best = i;
        d[m] = best;
    }
}

int gn_unas_derive(const gn_unas *u, int *x, gn_error *err)
{
    int d[GN_ONESHOT_MAX_M];
    gn_unas_argmax(u, d);
    return gn_supernet_derive(u->sn, d, x, err);
}

const gn_oneshot_dist *gn_unas_dist(const gn_unas *u) { return u->q; }
gn_oneshot_dist *gn_unas_dist_mut(gn_unas *u) { return u->q; }
int64_t gn_unas_steps(const gn_unas *u) { return u->steps; }
gn_unas_config *gn_unas_config_mut(gn_unas *u) { return &u->c; }

/* ------------------------------------------------------------------ internal (oneshot_internal.h) */

void gn__unas_set_grad_clip(gn_unas *u, double clip) { u->grad_clip = clip; }

int gn__unas_weights_step(gn_unas *u, const gn_tensor *x, const int32_t *y, gn_rng *rng, double *loss,
                          gn_error *err)
{
    if (!u)
        return gn_error_set(err, "unas: no search state");
    if (check_rates(&u->c, err) || check_batches(x, y, x, y, rng, err))
        return -1;
    double l;
    if (gn_oneshot_draw(u->q, u->c.tau, rng, u->s, err) || weight_step(u, x, y, &l, err))
        return -1;
    if (loss)
        *loss = l;
    return 0;
}

gn_optim *gn__unas_weight_optim(gn_unas *u) { return u->wopt; }
double *gn__unas_adam_m(gn_unas *u) { return u->adam_m; }
double *gn__unas_adam_v(gn_unas *u) { return u->adam_v; }
gn_oneshot_baseline *gn__unas_baseline(gn_unas *u) { return &u->base; }
void gn__unas_set_steps(gn_unas *u, int64_t steps) { u->steps = steps; }
