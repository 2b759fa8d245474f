/*
 * supernet_share.c — shared candidate weights (gn_supernet_opts.shared; the design
 * choice is discussed in gpunas/supernet.h, "Separate weights, not shared ones").
 *
 * With sharing, the candidates of one layer position draw their convolution weights
 * from one master, as in OFA / FBNetV2: the position's candidate with the largest
 * kernel, the largest expansion and SE if SE is a choice.  A candidate's weight of
 * shape [O, I, k, k] (PyTorch order) is the master's [O', I', k', k'] restricted to
 * its first O output and first I input channels and to the centre k x k of the
 * kernel (k' - k even); 1-D conv biases (SE) are prefixes.  What is tied: every
 * parameter whose layer-local key names a convolution ("conv", "conv_pw", "conv_dw",
 * "conv_pwl", "conv_exp", "se.conv_reduce", "se.conv_expand") and whose shape fits
 * inside the master's.  BN parameters and running statistics stay per candidate
 * (each candidate normalises its own activations; OFA recalibrates them per subnet
 * for the same reason).
 *
 * How it runs without touching the engine: every candidate keeps its own slot in the
 * arena.  Before each training forward (and before a path's weights are exported)
 * gather() copies each tied slot from its master; after each backward scatter() adds
 * each tied slot's gradient into the master's gradient, region by region, and zeroes
 * the slot's gradient.  The optimizer then updates masters with the summed gradient
 * and leaves the tied slots (gradient 0) to be overwritten by the next gather — weight
 * decay moves a tied slot a little, which the gather undoes.  The gradient is exact:
 * a master weight's derivative is the sum of the derivatives of the slots that copy
 * it (the chain rule through the copies), checked against finite differences in
 * test_supernet.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/supernet_internal.h"
#include "space/space_internal.h"

typedef struct {
    int cand, master;      /* indices in net->params */
    int o, i, k;           /* the slot's output and input channels (1-D: o only), kernel */
    int mi, mk;            /* the master's input channels and kernel */
    int off;               /* (mk - k) / 2 */
    int ndim;
} sn_tie;

struct gn__sn_share {
    sn_tie *ties;
    int n;
    size_t tied_scalars;
};

static bool is_conv_key(const char *key)
{
    static const char *keys[] = {"conv.", "conv_pw.", "conv_dw.", "conv_pwl.", "conv_exp.", "se.conv_reduce.",
                                 "se.conv_expand."};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strncmp(key, keys[i], strlen(keys[i])) == 0)
            return true;
    return false;
}

static int find_param(const gn_net *net, const char *name)
{
    for (int i = 0; i < net->n_params; i++)
        if (strcmp(net->params[i].name, name) == 0)
            return i;
    return -1;
}

/* The tie of slot q to master m, if q fits inside m.  0: tied (*t filled), 1: no. */
static int make_tie(const gn_param *q, const gn_param *m, int qi, int mi, sn_tie *t)
{
    if (q->ndim != m->ndim || (q->ndim != 4 && q->ndim != 1))
        return 1;
    memset(t, 0, sizeof *t);
    t->cand = qi;
    t->master = mi;
    t->ndim = q->ndim;
    t->o = (int)q->shape[0];
    if (q->shape[0] > m->shape[0])
        return 1;
    if (q->ndim == 1)
        return 0;
    if (q->shape[1] > m->shape[1] || q->shape[2] != q->shape[3] || m->shape[2] != m->shape[3] ||
        q->shape[2] > m->shape[2] || (m->shape[2] - q->shape[2]) % 2)
        return 1;
    t->i = (int)q->shape[1];
    t->k = (int)q->shape[2];
    t->mi = (int)m->shape[1];
    t->mk = (int)m->shape[2];
    t->off = (t->mk - t->k) / 2;
    return 0;
}

/* The master candidate of a stage: largest kernel, largest expansion, SE when offered. */
static int master_of(const gn_supernet *sn, const sn_stage *st, int j, const gn_net *net, char *prefix, size_t n)
{
    (void)sn;
    int best = -1, bk = 0, bs = -1;
    double be = 0;
    for (int c = 0; c < st->n_cand; c++) {
        const gn_layer *L = &net->arch->layers[st->first_layer + j * st->n_cand + c];
        int s = L->use_se ? 1 : 0;
        if (best < 0 || L->kernel > bk || (L->kernel == bk && (L->expansion > be || (L->expansion == be && s > bs)))) {
            best = c;
            bk = L->kernel;
            be = L->expansion;
            bs = s;
        }
    }
    gn__sn_cand_prefix(st, j, &net->arch->layers[st->first_layer + j * st->n_cand + best], prefix, n);
    return best;
}

int gn__sn_share_build(gn_supernet *sn, gn_error *err)
{
    gn_net *net = sn->net;
    struct gn__sn_share *sh = calloc(1, sizeof *sh);
    if (!sh || !(sh->ties = calloc((size_t)net->n_params, sizeof *sh->ties))) {
        free(sh);
        return gn_error_set(err, "%s: supernet: out of memory", sn->space->source);
    }
    for (int t = 0; t < sn->n_stages; t++) {
        const sn_stage *st = &sn->stages[t];
        for (int j = 0; j < st->n_pos; j++) {
            char mpre[64], cpre[64], name[GN_NAME_MAX + 64];
            int mc = master_of(sn, st, j, net, mpre, sizeof mpre);
            for (int c = 0; c < st->n_cand; c++) {
                if (c == mc)
                    continue;
                gn__sn_cand_prefix(st, j, &net->arch->layers[st->first_layer + j * st->n_cand + c], cpre,
                                   sizeof cpre);
                size_t cl = strlen(cpre);
                for (int qi = 0; qi < net->n_params; qi++) {
                    const gn_param *q = &net->params[qi];
                    if (!q->trainable || strncmp(q->name, cpre, cl) != 0 || q->name[cl] != '.' ||
                        !is_conv_key(q->name + cl + 1))
                        continue;
                    snprintf(name, sizeof name, "%s.%s", mpre, q->name + cl + 1);
                    int mi = find_param(net, name);
                    if (mi >= 0 && make_tie(q, &net->params[mi], qi, mi, &sh->ties[sh->n]) == 0) {
                        sh->tied_scalars += gn_tensor_numel(&q->value);
                        sh->n++;
                    }
                }
            }
        }
    }
    sn->share = sh;
    return 0;
}

void gn__sn_share_free(gn_supernet *sn)
{
    if (sn->share)
        free(sn->share->ties);
    free(sn->share);
    sn->share = NULL;
}

/* Slot element (o, i, y, x) <-> master element (o, i, y + off, x + off). */
#define SLOT(t, o, i, y, x) ((((size_t)(o) * (t)->i + (i)) * (t)->k + (y)) * (t)->k + (x))
#define MAST(t, o, i, y, x) ((((size_t)(o) * (t)->mi + (i)) * (t)->mk + (y) + (t)->off) * (t)->mk + (x) + (t)->off)

void gn__sn_share_gather(gn_supernet *sn)
{
    if (!sn->share)
        return;
    for (int n = 0; n < sn->share->n; n++) {
        const sn_tie *t = &sn->share->ties[n];
        float *d = sn->net->params[t->cand].value.data;
        const float *s = sn->net->params[t->master].value.data;
        if (t->ndim == 1) {
            memcpy(d, s, sizeof *d * (size_t)t->o);
            continue;
        }
        for (int o = 0; o < t->o; o++)
            for (int i = 0; i < t->i; i++)
                for (int y = 0; y < t->k; y++)
                    memcpy(d + SLOT(t, o, i, y, 0), s + MAST(t, o, i, y, 0), sizeof *d * (size_t)t->k);
    }
}

void gn__sn_share_scatter(gn_supernet *sn)
{
    if (!sn->share)
        return;
    for (int n = 0; n < sn->share->n; n++) {
        const sn_tie *t = &sn->share->ties[n];
        float *g = sn->net->params[t->cand].grad.data;
        float *mg = sn->net->params[t->master].grad.data;
        if (t->ndim == 1) {
            for (int o = 0; o < t->o; o++)
                mg[o] += g[o];
        } else {
            for (int o = 0; o < t->o; o++)
                for (int i = 0; i < t->i; i++)
                    for (int y = 0; y < t->k; y++)
                        for (int x = 0; x < t->k; x++)
                            mg[MAST(t, o, i, y, x)] += g[SLOT(t, o, i, y, x)];
        }
        memset(g, 0, sizeof *g * gn_tensor_numel(&sn->net->params[t->cand].grad));
    }
}

bool gn_supernet_shared(const gn_supernet *sn) { return sn->share != NULL; }

size_t gn_supernet_free_weights(const gn_supernet *sn)
{
    return sn->net->n_train - (sn->share ? sn->share->tied_scalars : 0);
}
