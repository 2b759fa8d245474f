/*
 * supernet_derive.c — from a path d of the supernet to the space: its encoding
 * (derive), its standalone arch (decode), and its weights copied into a standalone
 * gn_net by name (export).  Design: gpunas/supernet.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/supernet_internal.h"
#include "space/space_internal.h"

int gn_supernet_derive(const gn_supernet *sn, const int *d, int *x, gn_error *err)
{
    const gn_space *s = sn->space;
    memcpy(x, sn->fixed, sizeof(int) * (size_t)sn->ndims);
    for (int t = 0; t < sn->n_stages; t++) {
        const sn_stage *st = &sn->stages[t];
        if (st->cat_layers < 0 && st->lay_enc >= 0)
            x[s->stages[st->si].p[P_LAYERS].dim] = st->lay_enc;
    }
    for (int m = 0; m < sn->n_cats; m++) {
        const gn_supernet_cat *c = &sn->cats[m];
        if (d[m] < 0 || d[m] >= c->k)
            return gn_error_set(err, "%s: supernet: d[%d] (%s) = %d is out of range [0, %d)", s->source, m, c->name,
                                d[m], c->k);
        x[c->dim] = c->enc[d[m]];
    }
    gn_space_canonical(s, x, x);
    return gn_space_check(s, x, err);
}

int gn_supernet_decode(const gn_supernet *sn, const int *d, gn_arch **out, gn_error *err)
{
    *out = NULL;
    int x[GN_ENC_MAX_DIMS];
    gn_arch *a;
    if (gn_supernet_derive(sn, d, x, err) || gn_space_decode(sn->space, x, &a, err))
        return -1;
    if (sn->same_pad) {
        a->same_pad_fix = true;
        if (gn_arch_resolve(a, err)) {
            gn_arch_free(a);
            return -1;
        }
    }
    *out = a;
    return 0;
}

static const sn_stage *stage_by_number(const gn_supernet *sn, int number)
{
    for (int t = 0; t < sn->n_stages; t++)
        if (sn->stages[t].number == number)
            return &sn->stages[t];
    return NULL;
}

/* The supernet name of the standalone parameter q ("" if its layer fits no stage). */
static void path_name(const gn_supernet *sn, const gn_arch *a, const gn_param *q, char *buf, size_t n)
{
    const gn_layer *L = &a->layers[q->layer];
    const char *local = q->name + q->local;
    buf[0] = 0;
    if (L->type == GN_LAYER_HEAD) {
        snprintf(buf, n, "supernet.head.%s", local);
        return;
    }
    if (L->type == GN_LAYER_TAIL) {
        snprintf(buf, n, "supernet.tail.%s", local);
        return;
    }
    const sn_stage *st = L->stage_set ? stage_by_number(sn, L->stage) : NULL;
    if (!st)
        return;
    int j = 0; /* position in the stage: the layers of the same stage before it */
    for (const gn_layer *P = L - 1; P > &a->layers[1] && P->stage_set && P->stage == L->stage; P--)
        j++;
    char prefix[48];
    gn__sn_cand_prefix(st, j, L, prefix, sizeof prefix);
    snprintf(buf, n, "%s.%s", prefix, local);
}

gn_param *gn__sn_path_param(gn_supernet *sn, const gn_arch *a, const gn_param *q, char *name, size_t n)
{
    path_name(sn, a, q, name, n);
    return name[0] ? gn_net_find_param(sn->net, name) : NULL;
}

static bool same_shape(const gn_param *a, const gn_param *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}

int gn_supernet_export(gn_supernet *sn, gn_net *net, gn_error *err)
{
    const gn_arch *a = gn_net_arch(net);
    float *buf = NULL;
    size_t cap = 0;
    int rc = 0;
    gn__sn_share_gather(sn);
    for (int i = 0; i < gn_net_num_params(net) && !rc; i++) {
        gn_param *q = gn_net_param(net, i);
        char name[GN_NAME_MAX + 32];
        gn_param *src = gn__sn_path_param(sn, a, q, name, sizeof name);
        if (!src) {
            rc = gn_error_set(err, "%s: supernet export: %s (%s) has no counterpart in the supernet", a->source,
                              q->name, name[0] ? name : "layer not of a searched stage");
            break;
        }
        if (!same_shape(q, src)) {
            rc = gn_error_set(err, "%s: supernet export: %s: shape differs from %s", a->source, q->name, name);
            break;
        }
        size_t numel = gn_tensor_numel(&q->value);
        if (numel > cap) {
            float *nb = realloc(buf, numel * sizeof *nb);
            if (!nb) {
                rc = gn_error_set(err, "%s: supernet export: out of memory", a->source);
                break;
            }
            buf = nb;
            cap = numel;
        }
        rc = gn_tensor_to_host(&src->value, buf, err) || gn_tensor_from_host(&q->value, buf, err);
    }
    free(buf);
    net->ip.ready = false;
    gn_net_set_bn_batches(net, gn_net_bn_batches(sn->net));
    return rc ? -1 : 0;
}
