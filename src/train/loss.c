/*
 * loss.c — the training loss with label smoothing and knowledge distillation, and
 * the label rank used for top-k accuracy (formulas in gpunas/optim.h).
 *
 * Computed on the host in double with max-subtracted log-sum-exp per row, so the
 * trainer can mix the hard-label and soft-target terms and hand dL/dz to
 * gn_net_backward.
 */
#include <math.h>
#include <stdlib.h>

#include "gpunas/optim.h"

/* log-softmax of row z/T into out (double), returns nothing */
static void log_softmax(const float *z, int k, double inv_t, double *out)
{
    double mx = -INFINITY;
    for (int j = 0; j < k; j++)
        if (z[j] * inv_t > mx)
            mx = z[j] * inv_t;
    double s = 0;
    for (int j = 0; j < k; j++)
        s += exp(z[j] * inv_t - mx);
    double lse = mx + log(s);
    for (int j = 0; j < k; j++)
        out[j] = z[j] * inv_t - lse;
}

int gn_kd_loss(const float *z, const float *t, const int32_t *labels, int n, int k, float smoothing, float alpha,
               float temperature, double *loss, float *dz, gn_error *err)
{
    if (n < 1 || k < 1)
        return gn_error_set(err, "loss: batch %d x classes %d must both be >= 1", n, k);
    if (!(smoothing >= 0 && smoothing < 1))
        return gn_error_set(err, "loss: label smoothing %g must be in [0, 1)", smoothing);
    if (!(alpha >= 0 && alpha <= 1))
        return gn_error_set(err, "loss: distillation weight %g must be in [0, 1]", alpha);
    if (alpha > 0 && !t)
        return gn_error_set(err, "loss: distillation weight %g without teacher logits", alpha);
    if (alpha > 0 && !(temperature > 0 && isfinite(temperature)))
        return gn_error_set(err, "loss: temperature %g must be > 0", temperature);
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= k)
            return gn_error_set(err, "loss: label %d of row %d outside [0, %d)", (int)labels[i], i, k);
    double *ls = malloc(sizeof(double) * 3 * (size_t)k);
    if (!ls)
        return gn_error_set(err, "loss: out of memory");
    double *lsT = ls + k, *lt = ls + 2 * k;
    const double a = alpha, T = temperature, eps = smoothing, invn = 1.0 / n;
    double total = 0;
    for (int i = 0; i < n; i++) {
        const float *zi = z + (size_t)i * k;
        log_softmax(zi, k, 1.0, ls);
        double ce = 0;
        for (int j = 0; j < k; j++) {
            double q = (1 - eps) * (j == labels[i]) + eps / k;
            ce -= q * ls[j];
        }
        double row = (1 - a) * ce;
        if (a > 0) {
            const float *ti = t + (size_t)i * k;
            log_softmax(zi, k, 1.0 / T, lsT);
            log_softmax(ti, k, 1.0 / T, lt);
            double sce = 0;
            for (int j = 0; j < k; j++)
                sce -= exp(lt[j]) * lsT[j];
            row += a * T * T * sce;
        }
        total += row;
        if (dz)
            for (int j = 0; j < k; j++) {
                double q = (1 - eps) * (j == labels[i]) + eps / k;
                double g = (1 - a) * (exp(ls[j]) - q);
                if (a > 0)
                    g += a * T * (exp(lsT[j]) - exp(lt[j]));
                dz[(size_t)i * k + j] = (float)(g * invn);
            }
    }
    free(ls);
    *loss = total * invn;
    return 0;
}

int gn_label_rank(const float *row, int k, int32_t label)
{
    float v = row[label];
    int rank = 0;
    for (int j = 0; j < k; j++)
        if (row[j] > v || (row[j] == v && j < label))
            rank++;
    return rank;
}
