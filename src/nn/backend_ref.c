/* backend_ref.c — the reference backend: plain C loops with double accumulators.
 * It is the oracle for the tests; clarity first, but loops run in memory order
 * (inner loop over contiguous w) so whole small networks stay usable. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpunas/backend.h"
#include "nn/backend_impl.h"

#define IDX4(t, n_, c_, h_, w_) ((((size_t)(n_) * (t)->c + (c_)) * (t)->h + (h_)) * (t)->w + (w_))

/* ------------------------------------------------------------------ memory */
void *gn__ref_alloc(gn_backend *be, size_t bytes)
{
    size_t sz = (bytes + 63) & ~(size_t)63;
    if (sz == 0)
        sz = 64;
    return aligned_alloc(64, sz);
}

void gn__ref_free(gn_backend *be, void *p) { free(p); }

int gn__ref_copy(gn_backend *be, void *dst, const void *src, size_t bytes)
{
    if (bytes)
        memmove(dst, src, bytes);
    return 0;
}

int gn__ref_fill(gn_backend *be, float *p, size_t count, float v)
{
    if (v == 0.0f) {
        memset(p, 0, count * sizeof(float));
        return 0;
    }
    for (size_t i = 0; i < count; i++)
        p[i] = v;
    return 0;
}

static int ref_set_threads(gn_backend *be, int n, gn_error *err) { return 0; }

static void ref_destroy(gn_backend *be) { free(be); }

static int oom(gn_error *err, const char *op) { return gn_error_set(err, "%s: out of memory", op); }

/* ------------------------------------------------------------------ activations */
static inline double sigm(double x) { return 1.0 / (1.0 + exp(-x)); }

static inline float act_f(gn_eltwise k, float x)
{
    switch (k) {
    case GN_ELT_RELU: return x > 0.0f ? x : 0.0f;
    case GN_ELT_SILU: return (float)((double)x * sigm(x));
    case GN_ELT_SIGMOID: return (float)sigm(x);
    default: return x;
    }
}

static inline float act_df(gn_eltwise k, float x)
{
    switch (k) {
    case GN_ELT_RELU: return x > 0.0f ? 1.0f : 0.0f;
    case GN_ELT_SILU: {
        double s = sigm(x);
        return (float)(s * (1.0 + x * (1.0 - s)));
    }
    case GN_ELT_SIGMOID: {
        double s = sigm(x);
        return (float)(s * (1.0 - s));
    }
    default: return 1.0f;
    }
}

static int ref_eltwise_fwd(gn_backend *be, gn_eltwise k, const gn_tensor *x, gn_tensor *y,
                           gn_error *err)
{
    size_t n = gn_tensor_numel(x);
    for (size_t i = 0; i < n; i++)
        y->data[i] = act_f(k, x->data[i]);
    return 0;
}

static int ref_eltwise_bwd(gn_backend *be, gn_eltwise k, const gn_tensor *x, const gn_tensor *dy,
                           gn_tensor *dx, gn_error *err)
{
    size_t n = gn_tensor_numel(x);
    for (size_t i = 0; i < n; i++)
        dx->data[i] = dy->data[i] * act_df(k, x->data[i]);
    return 0;
}

/* ------------------------------------------------------------------ convolution */
/* y = act(conv(x,w) + b) + r.  One double accumulator plane per (n, oc). */
static int ref_conv2d_fwd(gn_backend *be, const gn_tensor *x, const gn_tensor *w,
                          const gn_tensor *b, const gn_tensor *r, gn_eltwise act, gn_tensor *y,
                          const gn_conv2d_params *p, gn_error *err)
{
    const int G = p->groups, S = p->stride, P = p->pad;
    const int icg = x->c / G, ocg = y->c / G, KH = w->h, KW = w->w;
    const int OH = y->h, OW = y->w, IH = x->h, IW = x->w;
    double *acc = malloc(sizeof(double) * (size_t)OH * OW);
    if (!acc)
        return oom(err, "conv2d_fwd");
    for (int n = 0; n < x->n; n++)
        for (int oc = 0; oc < y->c; oc++) {
            const int g = oc / ocg;
            double bv = b ? b->data[oc] : 0.0;
            for (int i = 0; i < OH * OW; i++)
                acc[i] = bv;
            for (int ic = 0; ic < icg; ic++) {
                const float *xp = x->data + IDX4(x, n, g * icg + ic, 0, 0);
                for (int kh = 0; kh < KH; kh++)
                    for (int kw = 0; kw < KW; kw++) {
                        const double wv = w->data[IDX4(w, oc, ic, kh, kw)];
                        for (int oh = 0; oh < OH; oh++) {
                            int ih = oh * S - P + kh;
                            if (ih < 0 || ih >= IH)
                                continue;
                            double *ap = acc + (size_t)oh * OW;
                            const float *xr = xp + (size_t)ih * IW;
                            for (int ow = 0; ow < OW; ow++) {
                                int iw = ow * S - P + kw;
                                if (iw >= 0 && iw < IW)
                                    ap[ow] += wv * xr[iw];
                            }
                        }
                    }
            }
            float *yp = y->data + IDX4(y, n, oc, 0, 0);
            const float *rp = r ? r->data + IDX4(r, n, oc, 0, 0) : NULL;
            for (int i = 0; i < OH * OW; i++) {
                float v = act_f(act, (float)acc[i]);
                yp[i] = rp ? v + rp[i] : v;
            }
        }
    free(acc);
    return 0;
}

static int ref_conv2d_bwd_data(gn_backend *be, const gn_tensor *dy, const gn_tensor *w,
                               gn_tensor *dx, const gn_conv2d_params *p, gn_error *err)
{
    const int G = p->groups, S = p->stride, P = p->pad;
    const int icg = dx->c / G, ocg = dy->c / G, KH = w->h, KW = w->w;
    const int OH = dy->h, OW = dy->w, IH = dx->h, IW = dx->w;
    double *acc = malloc(sizeof(double) * (size_t)IH * IW);
    if (!acc)
        return oom(err, "conv2d_bwd_data");
    for (int n = 0; n < dx->n; n++)
        for (int c = 0; c < dx->c; c++) {
            const int g = c / icg, ic = c % icg;
            memset(acc, 0, sizeof(double) * (size_t)IH * IW);
            for (int o = 0; o < ocg; o++) {
                const int oc = g * ocg + o;
                const float *dyp = dy->data + IDX4(dy, n, oc, 0, 0);
                for (int kh = 0; kh < KH; kh++)
                    for (int kw = 0; kw < KW; kw++) {
                        const double wv = w->data[IDX4(w, oc, ic, kh, kw)];
                        for (int oh = 0; oh < OH; oh++) {
                            int ih = oh * S - P + kh;
                            if (ih < 0 || ih >= IH)
                                continue;
                            double *ap = acc + (size_t)ih * IW;
                            const float *dr = dyp + (size_t)oh * OW;
                            for (int ow = 0; ow < OW; ow++) {
                                int iw = ow * S - P + kw;
                                if (iw >= 0 && iw < IW)
                                    ap[iw] += wv * dr[ow];
                            }
                        }
                    }
            }
            float *dxp = dx->data + IDX4(dx, n, c, 0, 0);
            for (int i = 0; i < IH * IW; i++)
                dxp[i] = (float)acc[i];
        }
    free(acc);
    return 0;
}

static int ref_conv2d_bwd_weights(gn_backend *be, const gn_tensor *x, const gn_tensor *dy,
                                  gn_tensor *dw, gn_tensor *db, const gn_conv2d_params *p,
                                  gn_error *err)
{
    const int G = p->groups, S = p->stride, P = p->pad;
    const int icg = x->c / G, ocg = dy->c / G, KH = dw->h, KW = dw->w;
    const int OH = dy->h, OW = dy->w, IH = x->h, IW = x->w;
    for (int oc = 0; oc < dy->c; oc++) {
        const int g = oc / ocg;
        for (int ic = 0; ic < icg; ic++)
            for (int kh = 0; kh < KH; kh++)
                for (int kw = 0; kw < KW; kw++) {
                    double s = 0.0;
                    for (int n = 0; n < x->n; n++) {
                        const float *xp = x->data + IDX4(x, n, g * icg + ic, 0, 0);
                        const float *dyp = dy->data + IDX4(dy, n, oc, 0, 0);
                        for (int oh = 0; oh < OH; oh++) {
                            int ih = oh * S - P + kh;
                            if (ih < 0 || ih >= IH)
                                continue;
                            for (int ow = 0; ow < OW; ow++) {
                                int iw = ow * S - P + kw;
                                if (iw >= 0 && iw < IW)
                                    s += (double)dyp[(size_t)oh * OW + ow] *
                                         xp[(size_t)ih * IW + iw];
                            }
                        }
                    }
                    dw->data[IDX4(dw, oc, ic, kh, kw)] = (float)s;
                }
        if (db) {
            double s = 0.0;
            for (int n = 0; n < dy->n; n++) {
                const float *dyp = dy->data + IDX4(dy, n, oc, 0, 0);
                for (int i = 0; i < OH * OW; i++)
                    s += dyp[i];
            }
            db->data[oc] = (float)s;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ batch norm */
static int ref_bn_fwd_train(gn_backend *be, const gn_tensor *x, const gn_tensor *gamma,
                            const gn_tensor *beta, float eps, gn_tensor *y, gn_tensor *mean,
                            gn_tensor *var, gn_error *err)
{
    const size_t HW = (size_t)x->h * x->w;
    const double M = (double)x->n * (double)HW;
    for (int c = 0; c < x->c; c++) {
        double s = 0.0;
        for (int n = 0; n < x->n; n++) {
            const float *xp = x->data + IDX4(x, n, c, 0, 0);
            for (size_t i = 0; i < HW; i++)
                s += xp[i];
        }
        const double mu = s / M;
        double v = 0.0;
        for (int n = 0; n < x->n; n++) {
            const float *xp = x->data + IDX4(x, n, c, 0, 0);
            for (size_t i = 0; i < HW; i++) {
                double d = xp[i] - mu;
                v += d * d;
            }
        }
        v /= M;
        const double inv = 1.0 / sqrt(v + (double)eps);
        const double gm = gamma->data[c], bt = beta->data[c];
        for (int n = 0; n < x->n; n++) {
            const float *xp = x->data + IDX4(x, n, c, 0, 0);
            float *yp = y->data + IDX4(y, n, c, 0, 0);
            for (size_t i = 0; i < HW; i++)
                yp[i] = (float)((xp[i] - mu) * inv * gm + bt);
        }
        mean->data[c] = (float)mu;
        var->data[c] = (float)v;
    }
    return 0;
}

static int ref_bn_fwd_infer(gn_backend *be, const gn_tensor *x, const gn_tensor *gamma,
                            const gn_tensor *beta, const gn_tensor *mean, const gn_tensor *var,
                            float eps, gn_tensor *y, gn_error *err)
{
    const size_t HW = (size_t)x->h * x->w;
    for (int c = 0; c < x->c; c++) {
        const double inv = 1.0 / sqrt((double)var->data[c] + (double)eps);
        const double mu = mean->data[c], gm = gamma->data[c], bt = beta->data[c];
        for (int n = 0; n < x->n; n++) {
            const float *xp = x->data + IDX4(x, n, c, 0, 0);
            float *yp = y->data + IDX4(y, n, c, 0, 0);
            for (size_t i = 0; i < HW; i++)
                yp[i] = (float)((xp[i] - mu) * inv * gm + bt);
        }
    }
    return 0;
}

static int ref_bn_bwd(gn_backend *be, const gn_tensor *x, const gn_tensor *dy,
                      const gn_tensor *gamma, const gn_tensor *mean, const gn_tensor *var,
                      float eps, gn_tensor *dx, gn_tensor *dgamma, gn_tensor *dbeta,
                      gn_error *err)
{
    const size_t HW = (size_t)x->h * x->w;
    const double M = (double)x->n * (double)HW;
    for (int c = 0; c < x->c; c++) {
        const double mu = mean->data[c];
        const double inv = 1.0 / sqrt((double)var->data[c] + (double)eps);
        double sdy = 0.0, sdyx = 0.0;
        for (int n = 0; n < x->n; n++) {
            const float *xp = x->data + IDX4(x, n, c, 0, 0);
            const float *dp = dy->data + IDX4(dy, n, c, 0, 0);
            for (size_t i = 0; i < HW; i++) {
                sdy += dp[i];
                sdyx += dp[i] * (xp[i] - mu) * inv;
            }
        }
        /* dx = gamma*inv/M * (M*dy - sum(dy) - xhat*sum(dy*xhat)) */
        const double k = gamma->data[c] * inv / M;
        for (int n = 0; n < x->n; n++) {
            const float *xp = x->data + IDX4(x, n, c, 0, 0);
            const float *dp = dy->data + IDX4(dy, n, c, 0, 0);
            float *dxp = dx->data + IDX4(dx, n, c, 0, 0);
            for (size_t i = 0; i < HW; i++) {
                double xh = (xp[i] - mu) * inv;
                dxp[i] = (float)(k * (M * dp[i] - sdy - xh * sdyx));
            }
        }
        dgamma->data[c] = (float)sdyx;
        dbeta->data[c] = (float)sdy;
    }
    return 0;
}

/* BN + ReLU in training (gn_bn_relu_*), the oracle for the dnnl form: this backend's
 * BN, then ReLU in place, so the numbers are the unfused path's bit for bit.  The
 * workspace holds one byte per element, 1 where BN's output was > 0 (the ReLU's
 * derivative); the backward masks dy with it and runs BN's backward. */
static int ref_bn_relu_ws(gn_backend *be, const gn_tensor *x, float eps, size_t *numel, gn_error *err)
{
    *numel = (gn_tensor_numel(x) + sizeof(float) - 1) / sizeof(float);
    return 0;
}

static int ref_bn_relu_fwd_train(gn_backend *be, const gn_tensor *x, const gn_tensor *gamma,
                                 const gn_tensor *beta, float eps, gn_tensor *y, gn_tensor *mean,
                                 gn_tensor *var, gn_tensor *ws, gn_error *err)
{
    if (ref_bn_fwd_train(be, x, gamma, beta, eps, y, mean, var, err))
        return -1;
    unsigned char *m = (unsigned char *)ws->data;
    const size_t n = gn_tensor_numel(y);
    for (size_t i = 0; i < n; i++) {
        m[i] = y->data[i] > 0.0f;
        y->data[i] = act_f(GN_ELT_RELU, y->data[i]);
    }
    return 0;
}

static int ref_bn_relu_bwd(gn_backend *be, const gn_tensor *x, const gn_tensor *dy,
                           const gn_tensor *gamma, const gn_tensor *mean, const gn_tensor *var,
                           float eps, const gn_tensor *ws, gn_tensor *dx, gn_tensor *dgamma,
                           gn_tensor *dbeta, gn_error *err)
{
    const size_t n = gn_tensor_numel(dy);
    gn_tensor dz = *dy;
    dz.owned = false;
    if (!(dz.data = malloc(n * sizeof(float))))
        return oom(err, "bn_relu_bwd");
    const unsigned char *m = (const unsigned char *)ws->data;
    for (size_t i = 0; i < n; i++)
        dz.data[i] = m[i] ? dy->data[i] : 0.0f;
    int rc = ref_bn_bwd(be, x, &dz, gamma, mean, var, eps, dx, dgamma, dbeta, err);
    free(dz.data);
    return rc;
}

int gn__ref_bn_update_running(gn_backend *be, gn_tensor *run_mean, gn_tensor *run_var,
                             const gn_tensor *mean, const gn_tensor *var, float momentum,
                             int64_t count, gn_error *err)
{
    const size_t C = gn_tensor_numel(run_mean);
    const double m = momentum, unb = (double)count / (double)(count - 1);
    for (size_t c = 0; c < C; c++) {
        run_mean->data[c] = (float)((1.0 - m) * run_mean->data[c] + m * mean->data[c]);
        run_var->data[c] = (float)((1.0 - m) * run_var->data[c] + m * var->data[c] * unb);
    }
    return 0;
}

/* ------------------------------------------------------------------ pooling, scaling */
static int ref_gap_fwd(gn_backend *be, const gn_tensor *x, gn_tensor *y, gn_error *err)
{
    const size_t HW = (size_t)x->h * x->w;
    for (size_t nc = 0; nc < (size_t)x->n * x->c; nc++) {
        const float *xp = x->data + nc * HW;
        double s = 0.0;
        for (size_t i = 0; i < HW; i++)
            s += xp[i];
        y->data[nc] = (float)(s / (double)HW);
    }
    return 0;
}

static int ref_gap_bwd(gn_backend *be, const gn_tensor *dy, gn_tensor *dx, gn_error *err)
{
    const size_t HW = (size_t)dx->h * dx->w;
    for (size_t nc = 0; nc < (size_t)dx->n * dx->c; nc++) {
        const float v = (float)((double)dy->data[nc] / (double)HW);
        float *dp = dx->data + nc * HW;
        for (size_t i = 0; i < HW; i++)
            dp[i] = v;
    }
    return 0;
}

static int ref_chscale_fwd(gn_backend *be, const gn_tensor *x, const gn_tensor *s, gn_tensor *y,
                           gn_error *err)
{
    const size_t HW = (size_t)x->h * x->w;
    for (size_t nc = 0; nc < (size_t)x->n * x->c; nc++) {
        const float sv = s->data[nc];
        for (size_t i = 0; i < HW; i++)
            y->data[nc * HW + i] = x->data[nc * HW + i] * sv;
    }
    return 0;
}

int gn__ref_chscale_bwd(gn_backend *be, const gn_tensor *x, const gn_tensor *s,
                       const gn_tensor *dy, gn_tensor *dx, gn_tensor *ds, gn_error *err)
{
    const size_t HW = (size_t)x->h * x->w;
    for (size_t nc = 0; nc < (size_t)x->n * x->c; nc++) {
        const float *xp = x->data + nc * HW, *dp = dy->data + nc * HW;
        if (ds) {
            double acc = 0.0;
            for (size_t i = 0; i < HW; i++)
                acc += (double)dp[i] * xp[i];
            ds->data[nc] = (float)acc;
        }
        if (dx) {
            const float sv = s->data[nc];
            float *dxp = dx->data + nc * HW;
            for (size_t i = 0; i < HW; i++)
                dxp[i] = dp[i] * sv;
        }
    }
    return 0;
}

static int ref_add(gn_backend *be, const gn_tensor *a, const gn_tensor *b, gn_tensor *y,
                   gn_error *err)
{
    const size_t n = gn_tensor_numel(a);
    for (size_t i = 0; i < n; i++)
        y->data[i] = a->data[i] + b->data[i];
    return 0;
}

static int ref_accumulate(gn_backend *be, gn_tensor *y, const gn_tensor *x, gn_error *err)
{
    const size_t n = gn_tensor_numel(x);
    for (size_t i = 0; i < n; i++)
        y->data[i] += x->data[i];
    return 0;
}

static int ref_mul_mask(gn_backend *be, const gn_tensor *x, const gn_tensor *mask, gn_tensor *y,
                        gn_error *err)
{
    const size_t total = gn_tensor_numel(x);
    if (gn_tensor_numel(mask) == total) {
        for (size_t i = 0; i < total; i++)
            y->data[i] = x->data[i] * mask->data[i];
    } else {
        const size_t per = total / (size_t)x->n;
        for (int n = 0; n < x->n; n++)
            for (size_t i = 0; i < per; i++)
                y->data[(size_t)n * per + i] = x->data[(size_t)n * per + i] * mask->data[n];
    }
    return 0;
}

/* ------------------------------------------------------------------ linear */
static int ref_linear_fwd(gn_backend *be, const gn_tensor *x, const gn_tensor *w,
                          const gn_tensor *b, gn_tensor *y, gn_error *err)
{
    const int N = x->n, IN = w->c, OUT = w->n;
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OUT; o++) {
            const float *xr = x->data + (size_t)n * IN, *wr = w->data + (size_t)o * IN;
            double s = b ? b->data[o] : 0.0;
            for (int i = 0; i < IN; i++)
                s += (double)xr[i] * wr[i];
            y->data[(size_t)n * OUT + o] = (float)s;
        }
    return 0;
}

static int ref_linear_bwd(gn_backend *be, const gn_tensor *x, const gn_tensor *w,
                          const gn_tensor *dy, gn_tensor *dx, gn_tensor *dw, gn_tensor *db,
                          gn_error *err)
{
    const int N = x->n, IN = w->c, OUT = w->n;
    if (dx)
        for (int n = 0; n < N; n++)
            for (int i = 0; i < IN; i++) {
                double s = 0.0;
                for (int o = 0; o < OUT; o++)
                    s += (double)dy->data[(size_t)n * OUT + o] * w->data[(size_t)o * IN + i];
                dx->data[(size_t)n * IN + i] = (float)s;
            }
    for (int o = 0; o < OUT; o++) {
        for (int i = 0; i < IN; i++) {
            double s = 0.0;
            for (int n = 0; n < N; n++)
                s += (double)dy->data[(size_t)n * OUT + o] * x->data[(size_t)n * IN + i];
            dw->data[(size_t)o * IN + i] = (float)s;
        }
        if (db) {
            double s = 0.0;
            for (int n = 0; n < N; n++)
                s += dy->data[(size_t)n * OUT + o];
            db->data[o] = (float)s;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ loss */
int gn__ref_softmax_xent(gn_backend *be, const gn_tensor *logits, const int32_t *labels,
                        float smoothing, float *loss, gn_tensor *dlogits, gn_error *err)
{
    const int N = logits->n, K = logits->c * logits->h * logits->w;
    const double eps = smoothing, off = eps / K, on = 1.0 - eps + off;
    double total = 0.0;
    for (int n = 0; n < N; n++) {
        const float *z = logits->data + (size_t)n * K;
        double mx = z[0];
        for (int k = 1; k < K; k++)
            if (z[k] > mx)
                mx = z[k];
        double se = 0.0, tz = 0.0;
        for (int k = 0; k < K; k++) {
            se += exp(z[k] - mx);
            tz += (k == labels[n] ? on : off) * z[k];
        }
        const double lse = mx + log(se);
        total += lse - tz; /* sum_k t_k = 1 */
        if (dlogits) {
            float *d = dlogits->data + (size_t)n * K;
            for (int k = 0; k < K; k++) {
                double pk = exp(z[k] - lse);
                d[k] = (float)((pk - (k == labels[n] ? on : off)) / N);
            }
        }
    }
    *loss = (float)(total / N);
    return 0;
}

/* ------------------------------------------------------------------ vtable */
static const gn_backend_ops ref_ops = {
    .alloc = gn__ref_alloc,
    .free = gn__ref_free,
    .copy_in = gn__ref_copy,
    .copy_out = gn__ref_copy,
    .copy = gn__ref_copy,
    .fill = gn__ref_fill,
    .set_threads = ref_set_threads,
    .destroy = ref_destroy,
    .conv2d_fwd = ref_conv2d_fwd,
    .conv2d_bwd_data = ref_conv2d_bwd_data,
    .conv2d_bwd_weights = ref_conv2d_bwd_weights,
    .bn_fwd_train = ref_bn_fwd_train,
    .bn_fwd_infer = ref_bn_fwd_infer,
    .bn_bwd = ref_bn_bwd,
    .bn_update_running = gn__ref_bn_update_running,
    .bn_relu_ws = ref_bn_relu_ws,
    .bn_relu_fwd_train = ref_bn_relu_fwd_train,
    .bn_relu_bwd = ref_bn_relu_bwd,
    .eltwise_fwd = ref_eltwise_fwd,
    .eltwise_bwd = ref_eltwise_bwd,
    .gap_fwd = ref_gap_fwd,
    .gap_bwd = ref_gap_bwd,
    .chscale_fwd = ref_chscale_fwd,
    .chscale_bwd = gn__ref_chscale_bwd,
    .add = ref_add,
    .accumulate = ref_accumulate,
    .mul_mask = ref_mul_mask,
    .linear_fwd = ref_linear_fwd,
    .linear_bwd = ref_linear_bwd,
    .softmax_xent = gn__ref_softmax_xent,
};

int gn__backend_ref_new(gn_backend **out, gn_error *err)
{
    gn_backend *be = calloc(1, sizeof *be);
    if (!be)
        return gn_error_set(err, "backend ref: out of memory");
    be->name = "ref";
    be->ops = &ref_ops;
    *out = be;
    return 0;
}
