/*
 * supernet_internal.h — the supernet's bookkeeping (gpunas/supernet.h), shared by
 * supernet_build.c (space -> candidates, categoricals, graph), supernet_train.c
 * (zeta -> mix weights, steps, g_zeta) and supernet_derive.c (d -> encoding, export).
 */
#ifndef GPUNAS_SUPERNET_INTERNAL_H
#define GPUNAS_SUPERNET_INTERNAL_H

#include <stdbool.h>

#include "gpunas/supernet.h"
#include "nn/network_internal.h"

/* One searched stage of the space (stage index >= 1). */
typedef struct {
    int si;                /* the space's stage index */
    int number;            /* its "stage" field */
    gn_layer_type type;
    int nk, ne, ns;        /* values of kernel, expansion, se (1 when constant or absent) */
    int cat_layers, cat_k, cat_e, cat_s; /* categorical index, or -1 (not searched) */
    int n_cand;            /* nk * ne * ns; candidate c = (ik * ne + ie) * ns + is */
    int n_pos;             /* layer positions = the largest layer count kept */
    int first_pos;         /* index of position 0 in gn_supernet.pos */
    int n_lay;             /* layer counts kept (the layers categorical's choices) */
    int lay_val[GN_SUPERNET_MAX_K]; /* their counts */
    int lay_enc;           /* not searched: the encoding index of the one count kept (-1: constant) */
    int first_layer;       /* the synthetic arch's layer of position 0's candidate 0; candidate c
                              of position j is first_layer + j * n_cand + c */
} sn_stage;

/* One layer position: a mix node over the stage's candidates [+ the identity, last]. */
typedef struct {
    int stage; /* index in gn_supernet.stages */
    int j;     /* position in the stage */
    int node;  /* the ND_MIX node */
    bool skip; /* has the identity column */
} sn_pos;

struct gn_supernet {
    const gn_space *space;
    gn_net *net;
    bool same_pad; /* built with arch same_pad_fix (see gn_supernet_decode) */
    int ndims;
    int fixed[GN_ENC_MAX_DIMS];
    gn_supernet_cat *cats;
    int n_cats, n;
    sn_stage *stages;
    int n_stages;
    sn_pos *pos;
    int n_pos;
    double *zeta; /* rows x n */
    int rows;
    unsigned gen, fwd_gen; /* zeta generation: set / used by the last forward */
    float *w;     /* mix weights scratch */
    size_t w_cap;
    struct gn__sn_share *share; /* shared candidate weights (supernet_share.c), or NULL */
};

/* supernet_build.c: the name prefix of a candidate layer L at position j */
void gn__sn_cand_prefix(const sn_stage *st, int j, const gn_layer *L, char *buf, size_t n);

/* supernet_derive.c: the supernet parameter that parameter q of a standalone net of
 * arch a (a path's member) corresponds to, or NULL; name receives its name ("" when
 * the layer is of no searched stage). */
gn_param *gn__sn_path_param(gn_supernet *sn, const gn_arch *a, const gn_param *q, char *name, size_t n);

/* supernet_share.c: ties of the candidates' conv weights to their position's master;
 * gather copies masters into the tied slots (before a forward or an export), scatter
 * adds the slots' gradients into the masters' (after a backward).  Both do nothing
 * without sharing. */
int gn__sn_share_build(gn_supernet *sn, gn_error *err);
void gn__sn_share_free(gn_supernet *sn);
void gn__sn_share_gather(gn_supernet *sn);
void gn__sn_share_scatter(gn_supernet *sn);

/* candidate c's factor indices */
static inline void gn__sn_factors(const sn_stage *st, int c, int *ik, int *ie, int *is)
{
    *is = c % st->ns;
    *ie = (c / st->ns) % st->ne;
    *ik = c / (st->ns * st->ne);
}

#endif
