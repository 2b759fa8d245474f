/*
 * evaluate.c — accuracy of a network over a loader: mean cross-entropy, top-1,
 * top-5 and (optionally) the confusion matrix.
 *
 * Uses the inference path (BN folded, fused ops; gn_net_prepare_inference is called
 * first because the weights may have changed since the last evaluation).  The input
 * tensor is reallocated only when the batch size changes (the last batch).
 */
#include <stdlib.h>
#include <string.h>

#include "gpunas/train.h"

void gn_eval_result_free(gn_eval_result *r)
{
    if (!r)
        return;
    free(r->confusion);
    r->confusion = NULL;
}

int gn_evaluate(gn_net *net, gn_loader *l, bool confusion, gn_eval_result *r, gn_error *err)
{
    memset(r, 0, sizeof *r);
    const gn_arch *a = gn_net_arch(net);
    const int K = a->layers[a->n_layers - 1].num_classes;
    gn_backend *be = gn_net_backend(net);
    r->classes = K;
    if (confusion && !(r->confusion = calloc((size_t)K * K, sizeof *r->confusion)))
        return gn_error_set(err, "evaluate: out of memory");
    if (gn_net_prepare_inference(net, err) || gn_loader_start_epoch(l, 0, err))
        goto fail;
    gn_tensor x = {0};
    float *logits = NULL;
    int cap = 0, rc;
    double loss_sum = 0;
    int64_t c1 = 0, c5 = 0;
    gn_batch b;
    while ((rc = gn_loader_next(l, &b, err)) == 1) {
        if (x.n != b.n) {
            gn_tensor_free(&x);
            if (gn_tensor_alloc(&x, be, b.n, b.c, b.h, b.w, err))
                goto fail_x;
        }
        if (b.n > cap) {
            free(logits);
            cap = b.n;
            if (!(logits = malloc((size_t)cap * K * sizeof *logits))) {
                gn_error_set(err, "evaluate: out of memory");
                goto fail_x;
            }
        }
        const gn_tensor *y;
        if (gn_tensor_from_host(&x, b.x, err) || gn_net_infer(net, &x, &y, err) || gn_tensor_to_host(y, logits, err))
            goto fail_x;
        double bl;
        if (gn_kd_loss(logits, NULL, b.labels, b.n, K, 0.0f, 0.0f, 1.0f, &bl, NULL, err))
            goto fail_x;
        loss_sum += bl * b.n;
        for (int i = 0; i < b.n; i++) {
            const float *row = logits + (size_t)i * K;
            int rank = gn_label_rank(row, K, b.labels[i]);
            c1 += rank == 0;
            c5 += rank < 5;
            if (r->confusion) {
                int pred = 0;
                for (int j = 1; j < K; j++)
                    if (row[j] > row[pred])
                        pred = j;
                r->confusion[(size_t)b.labels[i] * K + pred]++;
            }
        }
        r->n += b.n;
    }
    gn_tensor_free(&x);
    free(logits);
    if (rc < 0)
        goto fail;
    if (r->n == 0) {
        gn_error_set(err, "evaluate: the data set is empty");
        goto fail;
    }
    r->loss = loss_sum / r->n;
    r->top1 = (double)c1 / r->n;
    r->top5 = (double)c5 / r->n;
    return 0;
fail_x:
    gn_tensor_free(&x);
    free(logits);
fail:
    gn_eval_result_free(r);
    return -1;
}
