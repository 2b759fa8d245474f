/*
 * network_internal.h — the lowered graph shared by network_build.c (arch -> nodes,
 * params, init), network_train.c (training forward/backward, eval forward),
 * network_infer.c (folded + fused inference with buffer reuse) and network_io.c.
 */
#ifndef GPUNAS_NETWORK_INTERNAL_H
#define GPUNAS_NETWORK_INTERNAL_H

#include "gpunas/network.h"
#include "gpunas/rng.h"
#include "nn/backend_impl.h"

typedef enum { ND_CONV, ND_BN, ND_ACT, ND_GAP, ND_CHSCALE, ND_ADD, ND_LINEAR, ND_DROPOUT, ND_DROPPATH } nd_kind;

typedef struct {
    nd_kind k;
    int layer;          /* JSON layer index */
    int in, in2, out;   /* value ids; in2: CHSCALE scale / ADD second operand */
    gn_conv2d_params cp; /* CONV */
    int w, b;           /* CONV / LINEAR param ids (b = -1: none) */
    int gamma, beta, rmean, rvar; /* BN param ids */
    float eps;
    gn_tensor bmean, bvar; /* BN batch statistics of the last training forward */
    gn_eltwise act;     /* ACT */
    float rate;         /* DROPOUT / DROPPATH */
    gn_tensor mask;     /* active mask of the last training forward (empty: identity) */
} gn_node;

typedef struct {
    int c, h, w; /* per-sample shape */
} gn_value_shape;

typedef struct {
    nd_kind k;          /* ND_CONV (fused), ND_GAP, ND_CHSCALE, ND_LINEAR, ND_ACT, ND_ADD, ND_BN */
    int src;            /* training node it came from */
    int in, in2, out;   /* inference value ids */
    gn_conv2d_params cp;
    gn_tensor w, b;     /* folded weights (owned) */
    gn_eltwise act;
    int res;            /* residual value id or -1 */
} gn_inode;

typedef struct {
    gn_inode *nodes;
    int n_nodes;
    int n_vals;
    gn_value_shape *vshape; /* per inference value */
    int *vbuf;              /* buffer index per value (-1: the input) */
    size_t *buf_elems;      /* per-sample capacity per buffer */
    int n_bufs;
    gn_tensor *bufs;        /* allocated for `batch` */
    gn_tensor *views;       /* per value */
    int batch;
    bool ready;
} gn_infer_plan;

struct gn_net {
    gn_arch *arch; /* private copy */
    gn_backend *be;

    gn_param *params;
    int n_params, cap_params;
    size_t n_train, n_total; /* scalars in the arena: trainable first */
    float *arena, *garena;

    gn_node *nodes;
    int n_nodes, cap_nodes;
    gn_value_shape *vals;
    int n_vals, cap_vals;

    /* run-time tensors for batch `batch` */
    int batch;
    gn_tensor *v, *dv;
    gn_tensor scratch[2];
    unsigned char *written;
    bool have_forward;

    gn_train_opts opts;
    int64_t bn_batches; /* num_batches_tracked */
    gn_rng rng;
    gn_tensor dlogits;
    gn_infer_plan ip;
};

/* network_train.c */
int gn__net_ensure_batch(gn_net *net, int n, gn_error *err);
/* network_infer.c */
void gn__infer_plan_free(gn_infer_plan *p);

#endif
