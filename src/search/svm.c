/*
 * svm.c — the two-class RBF SVM that draws LA-MCTS region boundaries (sklearn
 * SVC(kernel='rbf', gamma='auto') in the reference; sklearn wraps libsvm, so here
 * libsvm is called directly with the same defaults: C = 1, eps = 1e-3, shrinking).
 *
 * Training goes through libsvm (svm_train; its progress printing is silenced — library
 * code never prints).  The trained model is then copied into a dense form (support
 * vectors as rows of d doubles, their coefficients, rho, the two labels) and libsvm's
 * model is freed, because LA-MCTS classifies thousands of candidate points per proposal
 * along the tree path and libsvm's sparse node lists are several times slower for dense
 * inputs.  The dense decision value is libsvm's own formula for two classes:
 *     dec(x) = sum_i coef_i exp(-gamma |sv_i - x|^2) - rho,  label = dec > 0 ? label[0] : label[1]
 * (tests/test_search_numerics.c checks it against svm_predict).  libsvm's C-SVC draws no
 * random numbers (probability estimates are off), so training is deterministic.
 */
#include "search/search_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <svm.h>

static void quiet(const char *s) { (void)s; }

void gn__svm_free(gn_svm *s)
{
    free(s->sv);
    free(s->coef);
    memset(s, 0, sizeof *s);
}

int gn__svm_fit(gn_svm *s, const double *X, const int *y, int n, int d, double gamma, double C, gn_error *err)
{
    memset(s, 0, sizeof *s);
    if (n < 2 || d < 1)
        return gn_error_set(err, "svm: bad sizes n = %d, d = %d", n, d);
    int n0 = 0, n1 = 0;
    for (int i = 0; i < n; i++) {
        if (y[i] == 0)
            n0++;
        else if (y[i] == 1)
            n1++;
        else
            return gn_error_set(err, "svm: label %d of row %d is not 0 or 1", y[i], i);
    }
    if (n0 == 0 || n1 == 0)
        return gn_error_set(err, "svm: both labels must be present (%d zeros, %d ones)", n0, n1);
    struct svm_node *nodes = malloc(sizeof(struct svm_node) * (size_t)n * (size_t)(d + 1));
    struct svm_node **rows = malloc(sizeof(struct svm_node *) * (size_t)n);
    double *yy = malloc(sizeof(double) * (size_t)n);
    if (!nodes || !rows || !yy) {
        free(nodes);
        free(rows);
        free(yy);
        return gn_error_set(err, "svm: out of memory (n = %d)", n);
    }
    for (int i = 0; i < n; i++) {
        rows[i] = nodes + (size_t)i * (d + 1);
        for (int k = 0; k < d; k++)
            rows[i][k] = (struct svm_node){.index = k + 1, .value = X[(size_t)i * d + k]};
        rows[i][d].index = -1;
        rows[i][d].value = 0;
        yy[i] = y[i];
    }
    struct svm_problem prob = {.l = n, .y = yy, .x = rows};
    struct svm_parameter par;
    memset(&par, 0, sizeof par);
    par.svm_type = C_SVC;
    par.kernel_type = RBF;
    par.degree = 3;
    par.gamma = gamma;
    par.coef0 = 0;
    par.cache_size = 16;
    par.eps = 1e-3;
    par.C = C;
    par.nr_weight = 0;
    par.nu = 0.5;
    par.p = 0.1;
    par.shrinking = 1;
    par.probability = 0;
    int rc = -1;
    struct svm_model *model = NULL;
    const char *msg = svm_check_parameter(&prob, &par);
    if (msg) {
        gn_error_set(err, "svm: libsvm rejects the parameters: %s", msg);
        goto out;
    }
    svm_set_print_string_function(quiet);
    model = svm_train(&prob, &par);
    if (!model || svm_get_nr_class(model) != 2) {
        gn_error_set(err, "svm: libsvm training failed (n = %d)", n);
        goto out;
    }
    s->d = d;
    s->nsv = model->l;
    s->gamma = gamma;
    s->rho = model->rho[0];
    s->label_pos = model->label[0];
    s->label_neg = model->label[1];
    s->sv = calloc((size_t)s->nsv * (size_t)d, sizeof(double));
    s->coef = malloc(sizeof(double) * (size_t)(s->nsv > 0 ? s->nsv : 1));
    if (!s->sv || !s->coef) {
        gn__svm_free(s);
        gn_error_set(err, "svm: out of memory (%d support vectors)", model->l);
        goto out;
    }
    for (int i = 0; i < s->nsv; i++) {
        s->coef[i] = model->sv_coef[0][i];
        for (const struct svm_node *p = model->SV[i]; p->index != -1; p++)
            if (p->index >= 1 && p->index <= d)
                s->sv[(size_t)i * d + (p->index - 1)] = p->value;
    }
    rc = 0;
out:
    if (model)
        svm_free_and_destroy_model(&model);
    free(nodes);
    free(rows);
    free(yy);
    return rc;
}

double gn__svm_decision(const gn_svm *s, const double *x)
{
    double dec = 0;
    for (int i = 0; i < s->nsv; i++) {
        const double *v = s->sv + (size_t)i * s->d;
        double q = 0;
        for (int k = 0; k < s->d; k++) {
            double t = v[k] - x[k];
            q += t * t;
        }
        dec += s->coef[i] * exp(-s->gamma * q);
    }
    return dec - s->rho;
}

int gn__svm_predict(const gn_svm *s, const double *x) { return gn__svm_decision(s, x) > 0 ? s->label_pos : s->label_neg; }
