/*
 * optim.c — SGD (momentum, Nesterov), RMSprop-TF and AdamW over a flat float array
 * (update rules in gpunas/optim.h).
 *
 * Weight decay is kept as a sorted list of [begin, end) ranges that are NOT decayed;
 * a step walks the array range by range so the inner loops have a constant decay.
 * Each update uses float32 arithmetic in the operation order of the PyTorch/timm code
 * it reproduces, so a short run matches PyTorch to float rounding (1e-5 relative).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpunas/network.h"
#include "gpunas/optim.h"

typedef struct {
    size_t begin, end;
} range;

struct gn_optim {
    gn_optim_config c;
    size_t n;
    int64_t steps;
    int n_state;
    const char *state_name[2];
    float *state[2];
    range *nd; /* no-decay ranges, sorted, disjoint */
    int n_nd, cap_nd;
};

void gn_optim_defaults(gn_optim_kind kind, gn_optim_config *c)
{
    memset(c, 0, sizeof *c);
    c->kind = kind;
    switch (kind) {
    case GN_OPT_SGD:
        c->momentum = 0.9f;
        c->nesterov = true;
        c->weight_decay = 5e-5f;
        break;
    case GN_OPT_RMSPROP_TF:
        c->momentum = 0.9f;
        c->alpha = 0.9f;
        c->eps = 1e-3f;
        c->weight_decay = 1e-5f;
        break;
    case GN_OPT_ADAMW:
        c->beta1 = 0.9f;
        c->beta2 = 0.999f;
        c->eps = 1e-8f;
        c->weight_decay = 0.05f;
        break;
    }
}

static const char *const names[] = {"sgd", "rmsprop-tf", "adamw"};

const char *gn_optim_name(gn_optim_kind kind) { return (unsigned)kind < 3 ? names[kind] : "?"; }

int gn_optim_parse(const char *name, gn_optim_kind *out)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(name, names[i]) == 0) {
            *out = (gn_optim_kind)i;
            return 0;
        }
    return -1;
}

static int check_config(const gn_optim_config *c, gn_error *err)
{
    if ((unsigned)c->kind > GN_OPT_ADAMW)
        return gn_error_set(err, "optimizer: unknown kind %d", (int)c->kind);
    if (!(c->weight_decay >= 0) || !isfinite(c->weight_decay))
        return gn_error_set(err, "optimizer %s: weight decay %g must be >= 0", gn_optim_name(c->kind),
                            c->weight_decay);
    if (c->kind != GN_OPT_ADAMW && (!(c->momentum >= 0) || !(c->momentum < 1)))
        return gn_error_set(err, "optimizer %s: momentum %g must be in [0, 1)", gn_optim_name(c->kind), c->momentum);
    if (c->kind == GN_OPT_SGD && c->nesterov && c->momentum <= 0)
        return gn_error_set(err, "optimizer sgd: Nesterov needs momentum > 0");
    if (c->kind == GN_OPT_RMSPROP_TF && (!(c->alpha >= 0) || !(c->alpha < 1)))
        return gn_error_set(err, "optimizer rmsprop-tf: alpha %g must be in [0, 1)", c->alpha);
    if (c->kind != GN_OPT_SGD && (!(c->eps > 0) || !isfinite(c->eps)))
        return gn_error_set(err, "optimizer %s: eps %g must be > 0", gn_optim_name(c->kind), c->eps);
    if (c->kind == GN_OPT_ADAMW && (!(c->beta1 >= 0 && c->beta1 < 1) || !(c->beta2 >= 0 && c->beta2 < 1)))
        return gn_error_set(err, "optimizer adamw: betas (%g, %g) must be in [0, 1)", c->beta1, c->beta2);
    return 0;
}

int gn_optim_create(const gn_optim_config *c, size_t n, gn_optim **out, gn_error *err)
{
    *out = NULL;
    if (check_config(c, err))
        return -1;
    gn_optim *o = calloc(1, sizeof *o);
    if (!o)
        return gn_error_set(err, "optimizer: out of memory");
    o->c = *c;
    o->n = n;
    switch (c->kind) {
    case GN_OPT_SGD:
        if (c->momentum > 0)
            o->state_name[o->n_state++] = "momentum_buffer";
        break;
    case GN_OPT_RMSPROP_TF:
        o->state_name[o->n_state++] = "square_avg";
        if (c->momentum > 0)
            o->state_name[o->n_state++] = "momentum_buffer";
        break;
    case GN_OPT_ADAMW:
        o->state_name[o->n_state++] = "exp_avg";
        o->state_name[o->n_state++] = "exp_avg_sq";
        break;
    }
    for (int i = 0; i < o->n_state; i++) {
        o->state[i] = calloc(n ? n : 1, sizeof(float));
        if (!o->state[i]) {
            gn_optim_free(o);
            return gn_error_set(err, "optimizer: out of memory for %zu scalars", n);
        }
    }
    if (c->kind == GN_OPT_RMSPROP_TF)
        for (size_t j = 0; j < n; j++)
            o->state[0][j] = 1.0f; /* timm: square_avg starts at ones */
    *out = o;
    return 0;
}

void gn_optim_free(gn_optim *o)
{
    if (!o)
        return;
    for (int i = 0; i < 2; i++)
        free(o->state[i]);
    free(o->nd);
    free(o);
}

int gn_optim_no_decay(gn_optim *o, size_t off, size_t count, gn_error *err)
{
    if (off > o->n || count > o->n - off)
        return gn_error_set(err, "optimizer: no-decay range [%zu, %zu) outside [0, %zu)", off, off + count, o->n);
    if (count == 0)
        return 0;
    if (o->n_nd == o->cap_nd) {
        int cap = o->cap_nd ? 2 * o->cap_nd : 16;
        range *r = realloc(o->nd, (size_t)cap * sizeof *r);
        if (!r)
            return gn_error_set(err, "optimizer: out of memory");
        o->nd = r;
        o->cap_nd = cap;
    }
    /* insert sorted by begin, then merge overlaps */
    int i = o->n_nd;
    while (i > 0 && o->nd[i - 1].begin > off) {
        o->nd[i] = o->nd[i - 1];
        i--;
    }
    o->nd[i] = (range){off, off + count};
    o->n_nd++;
    int w = 0;
    for (int r = 1; r < o->n_nd; r++) {
        if (o->nd[r].begin <= o->nd[w].end) {
            if (o->nd[r].end > o->nd[w].end)
                o->nd[w].end = o->nd[r].end;
        } else {
            o->nd[++w] = o->nd[r];
        }
    }
    o->n_nd = w + 1;
    return 0;
}

int gn_optim_create_for_net(const gn_optim_config *c, gn_net *net, gn_optim **out, gn_error *err)
{
    size_t n = (size_t)gn_net_trainable_count(net);
    if (gn_optim_create(c, n, out, err))
        return -1;
    const float *base = gn_net_values(net);
    for (int i = 0; i < gn_net_num_params(net); i++) {
        gn_param *q = gn_net_param(net, i);
        if (!q->trainable || !q->no_decay)
            continue;
        if (gn_optim_no_decay(*out, (size_t)(q->value.data - base), gn_tensor_numel(&q->value), err)) {
            gn_optim_free(*out);
            *out = NULL;
            return -1;
        }
    }
    return 0;
}

/* --------------------------------------------------------------- update kernels */
static void sgd(gn_optim *o, float *p, const float *g, float *buf, size_t a, size_t b, float lr, float wd)
{
    const float m = o->c.momentum;
    const bool first = o->steps == 0;
    for (size_t j = a; j < b; j++) {
        float d = g[j];
        if (wd != 0.0f)
            d = d + wd * p[j];
        if (buf) {
            buf[j] = first ? d : buf[j] * m + d;
            d = o->c.nesterov ? d + m * buf[j] : buf[j];
        }
        p[j] = p[j] + (-lr) * d;
    }
}

static void rmsprop_tf(gn_optim *o, float *p, const float *g, size_t a, size_t b, float lr, float wd)
{
    float *sq = o->state[0], *buf = o->n_state > 1 ? o->state[1] : NULL;
    const float oma = (float)(1.0 - (double)o->c.alpha), m = o->c.momentum, eps = o->c.eps;
    for (size_t j = a; j < b; j++) {
        float d = g[j];
        if (wd != 0.0f)
            d = d + wd * p[j];
        sq[j] = sq[j] + oma * (d * d - sq[j]);
        float avg = sqrtf(sq[j] + eps);
        if (buf) {
            buf[j] = buf[j] * m + lr * (d / avg);
            p[j] = p[j] + (-buf[j]);
        } else {
            p[j] = p[j] + (-lr) * (d / avg);
        }
    }
}

static void adamw(gn_optim *o, float *p, const float *g, size_t a, size_t b, double lr, float wd)
{
    float *m1 = o->state[0], *m2 = o->state[1];
    const double t = (double)(o->steps + 1);
    const float b1 = o->c.beta1, b2 = o->c.beta2, omb1 = (float)(1.0 - (double)b1), omb2 = (float)(1.0 - (double)b2);
    const double bc1 = 1.0 - pow((double)b1, t), bc2 = 1.0 - pow((double)b2, t);
    const float step_size = (float)(lr / bc1), bc2s = (float)sqrt(bc2), eps = o->c.eps;
    const float shrink = (float)(1.0 - lr * (double)wd);
    for (size_t j = a; j < b; j++) {
        if (wd != 0.0f)
            p[j] = p[j] * shrink;
        m1[j] = m1[j] * b1 + g[j] * omb1;
        m2[j] = m2[j] * b2 + omb2 * (g[j] * g[j]);
        float denom = sqrtf(m2[j]) / bc2s + eps;
        p[j] = p[j] + (-step_size) * (m1[j] / denom);
    }
}

static void run_range(gn_optim *o, float *p, const float *g, size_t a, size_t b, double lr, bool decay)
{
    float wd = decay ? o->c.weight_decay : 0.0f;
    switch (o->c.kind) {
    case GN_OPT_SGD:
        sgd(o, p, g, o->n_state ? o->state[0] : NULL, a, b, (float)lr, wd);
        break;
    case GN_OPT_RMSPROP_TF:
        rmsprop_tf(o, p, g, a, b, (float)lr, wd);
        break;
    case GN_OPT_ADAMW:
        adamw(o, p, g, a, b, lr, wd);
        break;
    }
}

int gn_optim_step(gn_optim *o, float *params, const float *grads, double lr, gn_error *err)
{
    if (!(lr >= 0) || !isfinite(lr))
        return gn_error_set(err, "optimizer %s: learning rate %g must be finite and >= 0", gn_optim_name(o->c.kind),
                            lr);
    size_t pos = 0;
    for (int r = 0; r < o->n_nd; r++) {
        run_range(o, params, grads, pos, o->nd[r].begin, lr, true);
        run_range(o, params, grads, o->nd[r].begin, o->nd[r].end, lr, false);
        pos = o->nd[r].end;
    }
    run_range(o, params, grads, pos, o->n, lr, true);
    o->steps++;
    return 0;
}

size_t gn_optim_size(const gn_optim *o) { return o->n; }
int64_t gn_optim_steps(const gn_optim *o) { return o->steps; }
void gn_optim_set_steps(gn_optim *o, int64_t steps) { o->steps = steps; }
int gn_optim_state_count(const gn_optim *o) { return o->n_state; }
const char *gn_optim_state_name(const gn_optim *o, int i) { return i >= 0 && i < o->n_state ? o->state_name[i] : NULL; }
float *gn_optim_state(gn_optim *o, int i) { return i >= 0 && i < o->n_state ? o->state[i] : NULL; }
