/* backend.c — backend registry and the validating gn_* op wrappers
 * (see gpunas/backend.h).  Every check lives here, so backends see valid input. */
#include "gpunas/backend.h"

#include <math.h>
#include <string.h>

#include "nn/backend_impl.h"

const char *gn_eltwise_name(gn_eltwise e)
{
    switch (e) {
    case GN_ELT_IDENTITY: return "identity";
    case GN_ELT_RELU: return "relu";
    case GN_ELT_SILU: return "silu";
    case GN_ELT_SIGMOID: return "sigmoid";
    }
    return "?";
}

int gn_conv2d_out_size(int in, int k, int stride, int pad)
{
    if (stride < 1)
        return 0;
    int span = in + 2 * pad - k;
    if (span < 0)
        return 0;
    return span / stride + 1;
}

int gn_backend_create(const char *name, gn_backend **out, gn_error *err)
{
    if (!out)
        return gn_error_set(err, "backend: NULL output");
    *out = NULL;
    if (!name)
        return gn_error_set(err, "backend: no name (available: %s)", gn_backend_names());
    if (strcmp(name, "ref") == 0)
        return gn__backend_ref_new(out, err);
    if (strcmp(name, "dnnl") == 0 || strcmp(name, "onednn") == 0)
        return gn__backend_dnnl_new(out, err);
    return gn_error_set(err, "backend: unknown backend '%s' (available: %s)", name,
                        gn_backend_names());
}

void gn_backend_destroy(gn_backend *be)
{
    if (be)
        be->ops->destroy(be);
}

const char *gn_backend_names(void) { return "ref,dnnl"; }
const char *gn_backend_name(const gn_backend *be) { return be ? be->name : "(none)"; }
unsigned gn_backend_caps(const gn_backend *be) { return be ? be->caps : 0; }

int gn_backend_set_threads(gn_backend *be, int n, gn_error *err)
{
    if (!be)
        return gn_error_set(err, "set_threads: NULL backend");
    return be->ops->set_threads(be, n, err);
}

int gn_backend_pin_threads(gn_backend *be, int on, int *pinned, gn_error *err)
{
    if (pinned)
        *pinned = 0;
    if (!be)
        return gn_error_set(err, "pin_threads: NULL backend");
    return be->ops->pin_threads ? be->ops->pin_threads(be, on, pinned, err) : 0;
}

/* ------------------------------------------------------------------ checks */
#define SHP(t) (t)->n, (t)->c, (t)->h, (t)->w

/* A usable tensor of this backend, in either layout the backend can take here. */
static int check_tl(const char *op, const char *what, gn_backend *be, const gn_tensor *t,
                    gn_error *err)
{
    if (!t || !t->data || gn_tensor_numel(t) == 0)
        return gn_error_set(err, "%s: %s is empty", op, what);
    if (t->be != be)
        return gn_error_set(err, "%s: %s belongs to another backend", op, what);
    if (t->layout != GN_LAYOUT_NCHW && t->layout != GN_LAYOUT_NHWC)
        return gn_error_set(err, "%s: %s has an invalid layout %d", op, what, (int)t->layout);
    if (t->layout == GN_LAYOUT_NHWC && !(be->caps & GN_CAP_NHWC))
        return gn_error_set(err, "%s: %s is channels-last and backend '%s' takes NCHW only", op, what,
                            be->name);
    return 0;
}

/* Operands whose layout is irrelevant or forced ([N,C,1,1] vectors, weights) go
 * through the same check. */
#define check_t check_tl

/* A tensor whose flattening order matters (linear input, weights): NCHW, or a
 * [N,C,1,1] value (identical in both layouts). */
static int check_t_nchw(const char *op, const char *what, gn_backend *be, const gn_tensor *t, gn_error *err)
{
    if (check_tl(op, what, be, t, err))
        return -1;
    if (t->layout != GN_LAYOUT_NCHW && t->h * t->w != 1)
        return gn_error_set(err, "%s: %s is channels-last; this op takes NCHW", op, what);
    return 0;
}

static int check_same_layout(const char *op, const char *what, const gn_tensor *t, const gn_tensor *ref,
                             gn_error *err)
{
    if (t->layout != ref->layout)
        return gn_error_set(err, "%s: %s layout differs from the input's", op, what);
    return 0;
}

uint64_t gn_backend_new_weights_version(void)
{
    static _Atomic uint64_t next = 1;
    return next++;
}

static int check_shape(const char *op, const char *what, const gn_tensor *t, int n, int c, int h,
                       int w, gn_error *err)
{
    if (t->n != n || t->c != c || t->h != h || t->w != w)
        return gn_error_set(err, "%s: %s is [%d,%d,%d,%d], expected [%d,%d,%d,%d]", op, what,
                            SHP(t), n, c, h, w);
    return 0;
}

static int check_vec(const char *op, const char *what, gn_backend *be, const gn_tensor *t,
                     size_t len, gn_error *err)
{
    if (check_t(op, what, be, t, err))
        return -1;
    if (gn_tensor_numel(t) != len)
        return gn_error_set(err, "%s: %s has %zu elements, expected %zu", op, what,
                            gn_tensor_numel(t), len);
    return 0;
}

#define CK(expr)                                                                               \
    do {                                                                                       \
        if (expr)                                                                              \
            return -1;                                                                         \
    } while (0)

static int check_be(const char *op, gn_backend *be, gn_error *err)
{
    if (!be)
        return gn_error_set(err, "%s: NULL backend", op);
    return 0;
}

/* x, w consistent with p; computes the expected output shape. */
static int check_conv(const char *op, gn_backend *be, const gn_tensor *x, const gn_tensor *w,
                      const gn_conv2d_params *p, int *on, int *oc, int *oh, int *ow,
                      gn_error *err)
{
    CK(check_be(op, be, err));
    if (!p)
        return gn_error_set(err, "%s: NULL params", op);
    if (p->stride < 1 || p->pad < 0 || p->groups < 1)
        return gn_error_set(err, "%s: invalid stride %d / pad %d / groups %d", op, p->stride,
                            p->pad, p->groups);
    CK(check_tl(op, "input", be, x, err));
    CK(check_t_nchw(op, "weight", be, w, err));
    if (x->c % p->groups != 0 || w->n % p->groups != 0)
        return gn_error_set(err, "%s: channels in %d / out %d not divisible by groups %d", op,
                            x->c, w->n, p->groups);
    if (w->c != x->c / p->groups)
        return gn_error_set(err,
                            "%s: weight [%d,%d,%d,%d] does not match input channels %d / groups %d",
                            op, SHP(w), x->c, p->groups);
    *on = x->n;
    *oc = w->n;
    *oh = gn_conv2d_out_size(x->h, w->h, p->stride, p->pad);
    *ow = gn_conv2d_out_size(x->w, w->w, p->stride, p->pad);
    if (*oh < 1 || *ow < 1)
        return gn_error_set(err, "%s: kernel %dx%d larger than padded input %dx%d (pad %d)", op,
                            w->h, w->w, x->h, x->w, p->pad);
    return 0;
}

static int check_act(const char *op, gn_eltwise k, bool allow_identity, gn_error *err)
{
    if ((k == GN_ELT_IDENTITY && allow_identity) || k == GN_ELT_RELU || k == GN_ELT_SILU ||
        k == GN_ELT_SIGMOID)
        return 0;
    return gn_error_set(err, "%s: invalid activation %d", op, (int)k);
}

/* ------------------------------------------------------------------ conv */
static int conv_fwd_common(const char *op, gn_backend *be, const gn_tensor *x,
                           const gn_tensor *w, const gn_tensor *b, gn_eltwise act,
                           const gn_tensor *r, gn_tensor *y, const gn_conv2d_params *p,
                           gn_error *err)
{
    int n = 0, c = 0, h = 0, wd = 0;
    CK(check_conv(op, be, x, w, p, &n, &c, &h, &wd, err));
    CK(check_act(op, act, true, err));
    CK(check_tl(op, "output", be, y, err));
    CK(check_shape(op, "output", y, n, c, h, wd, err));
    if (b)
        CK(check_vec(op, "bias", be, b, (size_t)c, err));
    if (r) {
        CK(check_tl(op, "residual", be, r, err));
        CK(check_same_layout(op, "residual", r, y, err));
        CK(check_shape(op, "residual", r, n, c, h, wd, err));
        if (r->data == y->data)
            return gn_error_set(err, "%s: residual must not alias the output", op);
    }
    if (y->data == x->data)
        return gn_error_set(err, "%s: output must not alias the input", op);
    return be->ops->conv2d_fwd(be, x, w, b, r, act, y, p, err);
}

int gn_conv2d_fwd(gn_backend *be, const gn_tensor *x, const gn_tensor *w, const gn_tensor *b,
                  gn_tensor *y, const gn_conv2d_params *p, gn_error *err)
{
    return conv_fwd_common("conv2d_fwd", be, x, w, b, GN_ELT_IDENTITY, NULL, y, p, err);
}

int gn_conv2d_fwd_fused(gn_backend *be, const gn_tensor *x, const gn_tensor *w,
                        const gn_tensor *b, gn_eltwise act, const gn_tensor *r, gn_tensor *y,
                        const gn_conv2d_params *p, gn_error *err)
{
    return conv_fwd_common("conv2d_fwd_fused", be, x, w, b, act, r, y, p, err);
}

int gn_conv2d_bwd_data(gn_backend *be, const gn_tensor *dy, const gn_tensor *w, gn_tensor *dx,
                       const gn_conv2d_params *p, gn_error *err)
{
    const char *op = "conv2d_bwd_data";
    int n = 0, c = 0, h = 0, wd = 0;
    CK(check_be(op, be, err));
    CK(check_t(op, "dx", be, dx, err));
    CK(check_conv(op, be, dx, w, p, &n, &c, &h, &wd, err));
    CK(check_t(op, "dy", be, dy, err));
    CK(check_shape(op, "dy", dy, n, c, h, wd, err));
    if (dy->data == dx->data)
        return gn_error_set(err, "%s: dx must not alias dy", op);
    return be->ops->conv2d_bwd_data(be, dy, w, dx, p, err);
}

int gn_conv2d_bwd_weights(gn_backend *be, const gn_tensor *x, const gn_tensor *dy,
                          gn_tensor *dw, gn_tensor *db, const gn_conv2d_params *p,
                          gn_error *err)
{
    const char *op = "conv2d_bwd_weights";
    int n = 0, c = 0, h = 0, wd = 0;
    CK(check_be(op, be, err));
    CK(check_conv(op, be, x, dw, p, &n, &c, &h, &wd, err));
    CK(check_t(op, "input", be, x, err));
    CK(check_t(op, "dy", be, dy, err));
    CK(check_shape(op, "dy", dy, n, c, h, wd, err));
    if (db)
        CK(check_vec(op, "db", be, db, (size_t)c, err));
    return be->ops->conv2d_bwd_weights(be, x, dy, dw, db, p, err);
}

/* ------------------------------------------------------------------ batch norm */
static int check_bn_common(const char *op, gn_backend *be, const gn_tensor *x, float eps,
                           gn_error *err)
{
    CK(check_be(op, be, err));
    CK(check_tl(op, "input", be, x, err));
    if (!(eps > 0.0f) || !isfinite(eps))
        return gn_error_set(err, "%s: eps must be > 0 (got %g)", op, (double)eps);
    return 0;
}

/* The arguments the BN forwards (training, inference, + ReLU) share, after the input's
 * own checks: per-channel gamma, beta, mean, var and an output shaped like the input */
static int check_bn_fwd_args(const char *op, gn_backend *be, const gn_tensor *x, const gn_tensor *gamma,
                             const gn_tensor *beta, const gn_tensor *mean, const gn_tensor *var,
                             const gn_tensor *y, gn_error *err)
{
    size_t C = (size_t)x->c;
    CK(check_vec(op, "gamma", be, gamma, C, err));
    CK(check_vec(op, "beta", be, beta, C, err));
    CK(check_vec(op, "mean", be, mean, C, err));
    CK(check_vec(op, "var", be, var, C, err));
    CK(check_t(op, "output", be, y, err));
    CK(check_shape(op, "output", y, SHP(x), err));
    CK(check_same_layout(op, "output", y, x, err));
    return 0;
}

int gn_bn_fwd_train(gn_backend *be, const gn_tensor *x, const gn_tensor *gamma,
                    const gn_tensor *beta, float eps, gn_tensor *y, gn_tensor *mean,
                    gn_tensor *var, gn_error *err)
{
    const char *op = "bn_fwd_train";
    CK(check_bn_common(op, be, x, eps, err));
    CK(check_bn_fwd_args(op, be, x, gamma, beta, mean, var, y, err));
    return be->ops->bn_fwd_train(be, x, gamma, beta, eps, y, mean, var, err);
}

int gn_bn_fwd_infer(gn_backend *be, const gn_tensor *x, const gn_tensor *gamma,
                    const gn_tensor *beta, const gn_tensor *mean, const gn_tensor *var,
                    float eps, gn_tensor *y, gn_error *err)
{
    const char *op = "bn_fwd_infer";
    CK(check_bn_common(op, be, x, eps, err));
    CK(check_bn_fwd_args(op, be, x, gamma, beta, mean, var, y, err));
    return be->ops->bn_fwd_infer(be, x, gamma, beta, mean, var, eps, y, err);
}

/* The arguments BN's backward and BN + ReLU's share, after the input's own checks */
static int check_bn_bwd_args(const char *op, gn_backend *be, const gn_tensor *x, const gn_tensor *dy,
                             const gn_tensor *gamma, const gn_tensor *mean, const gn_tensor *var,
                             const gn_tensor *dx, const gn_tensor *dgamma, const gn_tensor *dbeta,
                             gn_error *err)
{
    size_t C = (size_t)x->c;
    CK(check_t(op, "dy", be, dy, err));
    CK(check_shape(op, "dy", dy, SHP(x), err));
    CK(check_t(op, "dx", be, dx, err));
    CK(check_shape(op, "dx", dx, SHP(x), err));
    if (dy->layout != x->layout || dx->layout != x->layout)
        return gn_error_set(err, "%s: dy/dx layout differs from the input's", op);
    CK(check_vec(op, "gamma", be, gamma, C, err));
    CK(check_vec(op, "mean", be, mean, C, err));
    CK(check_vec(op, "var", be, var, C, err));
    CK(check_vec(op, "dgamma", be, dgamma, C, err));
    CK(check_vec(op, "dbeta", be, dbeta, C, err));
    return 0;
}

int gn_bn_bwd(gn_backend *be, const gn_tensor *x, const gn_tensor *dy, const gn_tensor *gamma,
              const gn_tensor *mean, const gn_tensor *var, float eps, gn_tensor *dx,
              gn_tensor *dgamma, gn_tensor *dbeta, gn_error *err)
{
    const char *op = "bn_bwd";
    CK(check_bn_common(op, be, x, eps, err));
    CK(check_bn_bwd_args(op, be, x, dy, gamma, mean, var, dx, dgamma, dbeta, err));
    if (dx->data == x->data || dx->data == dy->data)
        return gn_error_set(err, "%s: dx must not alias x or dy", op);
    return be->ops->bn_bwd(be, x, dy, gamma, mean, var, eps, dx, dgamma, dbeta, err);
}

/* BN + ReLU (training): the BN checks, plus the workspace's size from the backend */
int gn_bn_relu_supported(const gn_backend *be)
{
    return be && be->ops->bn_relu_ws && be->ops->bn_relu_fwd_train && be->ops->bn_relu_bwd;
}

static int check_bn_relu(const char *op, gn_backend *be, const gn_tensor *x, float eps, gn_error *err)
{
    CK(check_bn_common(op, be, x, eps, err));
    if (!gn_bn_relu_supported(be))
        return gn_error_set(err, "%s: backend '%s' has no fused batch norm + ReLU", op, be->name);
    return 0;
}

static int check_ws(const char *op, gn_backend *be, const gn_tensor *x, float eps, const gn_tensor *ws,
                    gn_error *err)
{
    size_t need = 0;
    CK(check_t(op, "workspace", be, ws, err));
    CK(be->ops->bn_relu_ws(be, x, eps, &need, err));
    if (gn_tensor_numel(ws) < need)
        return gn_error_set(err, "%s: workspace has %zu elements, the input [%d,%d,%d,%d] needs %zu", op,
                            gn_tensor_numel(ws), SHP(x), need);
    return 0;
}

int gn_bn_relu_workspace(gn_backend *be, const gn_tensor *x, float eps, size_t *numel, gn_error *err)
{
    const char *op = "bn_relu_workspace";
    CK(check_bn_relu(op, be, x, eps, err));
    if (!numel)
        return gn_error_set(err, "%s: NULL output", op);
    return be->ops->bn_relu_ws(be, x, eps, numel, err);
}

int gn_bn_relu_fwd_train(gn_backend *be, const gn_tensor *x, const gn_tensor *gamma,
                         const gn_tensor *beta, float eps, gn_tensor *y, gn_tensor *mean,
                         gn_tensor *var, gn_tensor *ws, gn_error *err)
{
    const char *op = "bn_relu_fwd_train";
    CK(check_bn_relu(op, be, x, eps, err));
    CK(check_bn_fwd_args(op, be, x, gamma, beta, mean, var, y, err));
    CK(check_ws(op, be, x, eps, ws, err));
    if (y->data == x->data || ws->data == x->data || ws->data == y->data)
        return gn_error_set(err, "%s: output and workspace must not alias the input or each other", op);
    return be->ops->bn_relu_fwd_train(be, x, gamma, beta, eps, y, mean, var, ws, err);
}

int gn_bn_relu_bwd(gn_backend *be, const gn_tensor *x, const gn_tensor *dy, const gn_tensor *gamma,
                   const gn_tensor *mean, const gn_tensor *var, float eps, const gn_tensor *ws,
                   gn_tensor *dx, gn_tensor *dgamma, gn_tensor *dbeta, gn_error *err)
{
    const char *op = "bn_relu_bwd";
    CK(check_bn_relu(op, be, x, eps, err));
    CK(check_bn_bwd_args(op, be, x, dy, gamma, mean, var, dx, dgamma, dbeta, err));
    CK(check_ws(op, be, x, eps, ws, err));
    if (dx->data == x->data || dx->data == dy->data || dx->data == ws->data)
        return gn_error_set(err, "%s: dx must not alias x, dy or the workspace", op);
    return be->ops->bn_relu_bwd(be, x, dy, gamma, mean, var, eps, ws, dx, dgamma, dbeta, err);
}

int gn_bn_update_running(gn_backend *be, gn_tensor *run_mean, gn_tensor *run_var,
                         const gn_tensor *mean, const gn_tensor *var, float momentum,
                         int64_t count, gn_error *err)
{
    const char *op = "bn_update_running";
    CK(check_be(op, be, err));
    CK(check_t(op, "running mean", be, run_mean, err));
    size_t C = gn_tensor_numel(run_mean);
    CK(check_vec(op, "running var", be, run_var, C, err));
    CK(check_vec(op, "mean", be, mean, C, err));
    CK(check_vec(op, "var", be, var, C, err));
    if (count < 2)
        return gn_error_set(err, "%s: count %lld < 2 (unbiased variance undefined)", op,
                            (long long)count);
    if (!(momentum >= 0.0f && momentum <= 1.0f))
        return gn_error_set(err, "%s: momentum %g not in [0,1]", op, (double)momentum);
    return be->ops->bn_update_running(be, run_mean, run_var, mean, var, momentum, count, err);
}

/* ------------------------------------------------------------------ eltwise */
int gn_eltwise_fwd(gn_backend *be, gn_eltwise k, const gn_tensor *x, gn_tensor *y,
                   gn_error *err)
{
    const char *op = "eltwise_fwd";
    CK(check_be(op, be, err));
    CK(check_act(op, k, false, err));
    CK(check_tl(op, "input", be, x, err));
    CK(check_tl(op, "output", be, y, err));
    CK(check_same_layout(op, "output", y, x, err));
    CK(check_shape(op, "output", y, SHP(x), err));
    return be->ops->eltwise_fwd(be, k, x, y, err);
}

int gn_eltwise_bwd(gn_backend *be, gn_eltwise k, const gn_tensor *x, const gn_tensor *dy,
                   gn_tensor *dx, gn_error *err)
{
    const char *op = "eltwise_bwd";
    CK(check_be(op, be, err));
    CK(check_act(op, k, false, err));
    CK(check_t(op, "x", be, x, err));
    CK(check_t(op, "dy", be, dy, err));
    CK(check_same_layout(op, "dy", dy, x, err));
    CK(check_shape(op, "dy", dy, SHP(x), err));
    CK(check_t(op, "dx", be, dx, err));
    CK(check_same_layout(op, "dx", dx, x, err));
    CK(check_shape(op, "dx", dx, SHP(x), err));
    if (dx->data == x->data && dx->data != dy->data)
        return gn_error_set(err, "%s: dx must not alias x", op);
    return be->ops->eltwise_bwd(be, k, x, dy, dx, err);
}

/* ------------------------------------------------------------------ GAP */
int gn_gap_fwd(gn_backend *be, const gn_tensor *x, gn_tensor *y, gn_error *err)
{
    const char *op = "gap_fwd";
    CK(check_be(op, be, err));
    CK(check_tl(op, "input", be, x, err));
    CK(check_tl(op, "output", be, y, err));
    CK(check_shape(op, "output", y, x->n, x->c, 1, 1, err));
    if (x->data == y->data)
        return gn_error_set(err, "%s: output must not alias the input", op);
    return be->ops->gap_fwd(be, x, y, err);
}

int gn_gap_bwd(gn_backend *be, const gn_tensor *dy, gn_tensor *dx, gn_error *err)
{
    const char *op = "gap_bwd";
    CK(check_be(op, be, err));
    CK(check_t(op, "dx", be, dx, err));
    CK(check_t(op, "dy", be, dy, err));
    CK(check_shape(op, "dy", dy, dx->n, dx->c, 1, 1, err));
    if (dx->data == dy->data)
        return gn_error_set(err, "%s: dx must not alias dy", op);
    return be->ops->gap_bwd(be, dy, dx, err);
}

/* ------------------------------------------------------------------ channel scale */
int gn_channel_scale_fwd(gn_backend *be, const gn_tensor *x, const gn_tensor *s, gn_tensor *y,
                         gn_error *err)
{
    const char *op = "channel_scale_fwd";
    CK(check_be(op, be, err));
    CK(check_tl(op, "input", be, x, err));
    CK(check_t(op, "scale", be, s, err));
    CK(check_shape(op, "scale", s, x->n, x->c, 1, 1, err));
    CK(check_tl(op, "output", be, y, err));
    CK(check_same_layout(op, "output", y, x, err));
    CK(check_shape(op, "output", y, SHP(x), err));
    return be->ops->chscale_fwd(be, x, s, y, err);
}

int gn_channel_scale_bwd(gn_backend *be, const gn_tensor *x, const gn_tensor *s,
                         const gn_tensor *dy, gn_tensor *dx, gn_tensor *ds, gn_error *err)
{
    const char *op = "channel_scale_bwd";
    CK(check_be(op, be, err));
    CK(check_t(op, "input", be, x, err));
    CK(check_t(op, "scale", be, s, err));
    CK(check_shape(op, "scale", s, x->n, x->c, 1, 1, err));
    CK(check_t(op, "dy", be, dy, err));
    CK(check_same_layout(op, "dy", dy, x, err));
    CK(check_shape(op, "dy", dy, SHP(x), err));
    if (dx) {
        CK(check_t(op, "dx", be, dx, err));
        CK(check_same_layout(op, "dx", dx, x, err));
        CK(check_shape(op, "dx", dx, SHP(x), err));
        if (dx->data == x->data || (ds && dx->data == dy->data))
            return gn_error_set(err, "%s: dx must not alias x (or dy when ds is wanted)", op);
    }
    if (ds) {
        CK(check_t(op, "ds", be, ds, err));
        CK(check_shape(op, "ds", ds, x->n, x->c, 1, 1, err));
    }
    if (!dx && !ds)
        return 0;
    return be->ops->chscale_bwd(be, x, s, dy, dx, ds, err);
}

/* ------------------------------------------------------------------ add / masks */
int gn_add(gn_backend *be, const gn_tensor *a, const gn_tensor *b, gn_tensor *y, gn_error *err)
{
    const char *op = "add";
    CK(check_be(op, be, err));
    CK(check_tl(op, "a", be, a, err));
    CK(check_tl(op, "b", be, b, err));
    CK(check_same_layout(op, "b", b, a, err));
    CK(check_shape(op, "b", b, SHP(a), err));
    CK(check_tl(op, "output", be, y, err));
    CK(check_same_layout(op, "output", y, a, err));
    CK(check_shape(op, "output", y, SHP(a), err));
    return be->ops->add(be, a, b, y, err);
}

int gn_accumulate(gn_backend *be, gn_tensor *y, const gn_tensor *x, gn_error *err)
{
    const char *op = "accumulate";
    CK(check_be(op, be, err));
    CK(check_t(op, "y", be, y, err));
    CK(check_t(op, "x", be, x, err));
    CK(check_same_layout(op, "x", x, y, err));
    if (gn_tensor_numel(x) != gn_tensor_numel(y))
        return gn_error_set(err, "%s: x [%d,%d,%d,%d] and y [%d,%d,%d,%d] differ in size", op,
                            SHP(x), SHP(y));
    if (x->data == y->data)
        return gn_error_set(err, "%s: x must not alias y", op);
    return be->ops->accumulate(be, y, x, err);
}

static int mask_common(const char *op, gn_backend *be, const gn_tensor *x, const gn_tensor *mask,
                       gn_tensor *y, gn_error *err)
{
    CK(check_be(op, be, err));
    CK(check_t(op, "input", be, x, err));
    CK(check_t(op, "mask", be, mask, err));
    CK(check_t(op, "output", be, y, err));
    CK(check_same_layout(op, "output", y, x, err));
    CK(check_shape(op, "output", y, SHP(x), err));
    size_t m = gn_tensor_numel(mask); /* a full mask applies in memory order */
    if (m != gn_tensor_numel(x) && m != (size_t)x->n)
        return gn_error_set(err, "%s: mask has %zu elements; expected %zu (dropout) or %d "
                                 "(drop-path)",
                            op, m, gn_tensor_numel(x), x->n);
    if (mask->data == y->data)
        return gn_error_set(err, "%s: output must not alias the mask", op);
    return be->ops->mul_mask(be, x, mask, y, err);
}

int gn_mul_mask_fwd(gn_backend *be, const gn_tensor *x, const gn_tensor *mask, gn_tensor *y,
                    gn_error *err)
{
    return mask_common("mul_mask_fwd", be, x, mask, y, err);
}

int gn_mul_mask_bwd(gn_backend *be, const gn_tensor *dy, const gn_tensor *mask, gn_tensor *dx,
                    gn_error *err)
{
    return mask_common("mul_mask_bwd", be, dy, mask, dx, err);
}

/* ------------------------------------------------------------------ linear */
static int check_linear(const char *op, gn_backend *be, const gn_tensor *x, const gn_tensor *w,
                        gn_error *err)
{
    CK(check_be(op, be, err));
    CK(check_t_nchw(op, "input", be, x, err));
    CK(check_t_nchw(op, "weight", be, w, err));
    if (w->h != 1 || w->w != 1)
        return gn_error_set(err, "%s: weight [%d,%d,%d,%d] must be [OUT,IN,1,1]", op, SHP(w));
    if ((size_t)x->c * x->h * x->w != (size_t)w->c)
        return gn_error_set(err, "%s: input [%d,%d,%d,%d] has %zu features, weight expects %d",
                            op, SHP(x), (size_t)x->c * x->h * x->w, w->c);
    return 0;
}

int gn_linear_fwd(gn_backend *be, const gn_tensor *x, const gn_tensor *w, const gn_tensor *b,
                  gn_tensor *y, gn_error *err)
{
    const char *op = "linear_fwd";
    CK(check_linear(op, be, x, w, err));
    if (b)
        CK(check_vec(op, "bias", be, b, (size_t)w->n, err));
    CK(check_t(op, "output", be, y, err));
    CK(check_shape(op, "output", y, x->n, w->n, 1, 1, err));
    if (y->data == x->data)
        return gn_error_set(err, "%s: output must not alias the input", op);
    return be->ops->linear_fwd(be, x, w, b, y, err);
}

int gn_linear_bwd(gn_backend *be, const gn_tensor *x, const gn_tensor *w, const gn_tensor *dy,
                  gn_tensor *dx, gn_tensor *dw, gn_tensor *db, gn_error *err)
{
    const char *op = "linear_bwd";
    CK(check_linear(op, be, x, w, err));
    CK(check_t(op, "dy", be, dy, err));
    CK(check_shape(op, "dy", dy, x->n, w->n, 1, 1, err));
    if (dx) {
        CK(check_t(op, "dx", be, dx, err));
        CK(check_shape(op, "dx", dx, SHP(x), err));
    }
    CK(check_t(op, "dw", be, dw, err));
    CK(check_shape(op, "dw", dw, SHP(w), err));
    if (db)
        CK(check_vec(op, "db", be, db, (size_t)w->n, err));
    return be->ops->linear_bwd(be, x, w, dy, dx, dw, db, err);
}

/* ------------------------------------------------------------------ loss */
int gn_softmax_xent(gn_backend *be, const gn_tensor *logits, const int32_t *labels,
                    float smoothing, float *loss, gn_tensor *dlogits, gn_error *err)
{
    const char *op = "softmax_xent";
    CK(check_be(op, be, err));
    CK(check_t(op, "logits", be, logits, err));
    if (!labels || !loss)
        return gn_error_set(err, "%s: NULL labels or loss", op);
    if (!(smoothing >= 0.0f && smoothing < 1.0f))
        return gn_error_set(err, "%s: label smoothing %g not in [0,1)", op, (double)smoothing);
    int K = logits->c * logits->h * logits->w;
    for (int i = 0; i < logits->n; i++)
        if (labels[i] < 0 || labels[i] >= K)
            return gn_error_set(err, "%s: label %d of sample %d not in [0,%d)", op,
                                (int)labels[i], i, K);
    if (dlogits) {
        CK(check_t(op, "dlogits", be, dlogits, err));
        CK(check_shape(op, "dlogits", dlogits, SHP(logits), err));
    }
    return be->ops->softmax_xent(be, logits, labels, smoothing, loss, dlogits, err);
}
