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

typedef enum { ND_CONV, ND_BN, ND_ACT, ND_GAP, ND_CHSCALE, ND_ADD, ND_LINEAR, ND_DROPOUT, ND_DROPPATH, ND_MIX } nd_kind;

/*
 * ND_MIX (the supernet's mixing node, network_mix.c): K input values of one shape,
 *   out[n] = sum_k w[n,k] * in_k[n]        (n = sample, w [N,K] set by the caller),
 *   d in_k[n] = w[n,k] * d out[n],   dL/dw[n,k] = <d out[n], in_k[n]>  (double sums).
 * A column k whose weight is 0 for every sample of the batch is DEAD: the forward's
 * liveness pass (network_train.c) does not mark in_k as needed, so the nodes that only
 * feed it are neither run forward nor backward.  A value (activation and gradient) is
 * allocated for the batch when a forward first runs the node that makes it, and kept
 * until the batch size changes: values of nodes never run take no memory, and those
 * of nodes not run in this step hold stale contents that no node that runs reads and
 * backward writes no gradient to; the parameter
 * gradients of nodes not run are set to 0 (the "overwritten" contract), and their BN
 * running statistics are left as they were.  dL/dw of a dead column is reported as 0
 * (it is not computed).  The mix loops read tensor memory on the host (every backend
 * here is a host backend; a device backend needs these as vtable ops).
 */

typedef struct {
    nd_kind k;
    int layer;          /* JSON layer index */
    int in, in2, out;   /* value ids; in2: CHSCALE scale / ADD second operand */
    gn_conv2d_params cp; /* CONV */
    int w, b;           /* CONV / LINEAR param ids (b = -1: none) */
    int gamma, beta, rmean, rvar; /* BN param ids */
    float eps;
    gn_tensor bmean, bvar; /* BN batch statistics of the last training forward */
    /* BN + ReLU fusion (network_train.c, gn__net_plan_bn_relu): on a BN node, relu_fused
     * means node+1 is a ReLU that reads only it and the pair runs as one op writing the
     * ReLU's value (the BN's own value is never allocated); ws is the op's workspace.
     * On that ACT node, fused_into_bn: the BN node runs it. */
    bool relu_fused, fused_into_bn;
    gn_tensor ws;
    gn_eltwise act;     /* ACT */
    float rate;         /* DROPOUT / DROPPATH */
    gn_tensor mask;     /* active mask of the last training forward (empty: identity) */
    /* MIX (see above); in = mix_in[0] */
    int *mix_in;        /* [mix_k] value ids (owned) */
    int mix_k;
    float *mixw;        /* [mix_rows, mix_k] weights for the next forward (owned) */
    double *mixg;       /* [mix_rows, mix_k] dL/dw of the last backward (owned) */
    unsigned char *mix_live; /* [mix_k] column has a non-zero weight (set by the liveness pass) */
    int mix_rows;       /* batch the weights were set for (0: none yet) */
    /* executions (every node kind), for tests: forward and backward runs */
    int64_t runs_fwd, runs_bwd;
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
    gn_op_profile *prof; /* op timing (gn_net_set_op_profile), or NULL */
    int64_t bn_batches; /* num_batches_tracked */
    int n_bn_relu;      /* BN + ReLU pairs fused (gn__net_plan_bn_relu) */
    gn_rng rng;
    gn_tensor dlogits;
    gn_infer_plan ip;

    /* built by gn__net_* (the supernet): parameter name prefix per arch layer (owned;
     * NULL: gn_arch_module_name) */
    char (*layer_prefix)[48];
    /* liveness of the last forward (network_train.c): per node, per value */
    unsigned char *live, *need;
};

/* network_build.c: building a graph by hand (the supernet, src/nn/supernet_build.c).
 * gn__net_new takes ownership of arch (its layers are what lower_layer reads; node
 * `layer` fields index them); then lower layers / add mixes; gn__net_finish lays out
 * the arenas (trainable first) and makes the parameter views. */
gn_net *gn__net_new(gn_arch *arch, gn_backend *be);
int gn__net_add_value(gn_net *net, int c, int h, int w);
int gn__net_lower_layer(gn_net *net, int layer, int x);
/* A MIX node over in[0..k) (same shapes); returns its output value, *node its index. */
int gn__net_add_mix(gn_net *net, int layer, const int *in, int k, int *node);
int gn__net_finish(gn_net *net, gn_error *err);

/* network_train.c */
int gn__net_ensure_batch(gn_net *net, int n, gn_error *err);
/* Mark the BN + ReLU pairs that training runs fused (once, from gn__net_finish);
 * returns how many (also in net->n_bn_relu). */
int gn__net_plan_bn_relu(gn_net *net);

/* network_mix.c */
/* Weights w[rows*k] of MIX node `node` for the next forward of a batch of `rows`. */
int gn__mix_set_weights(gn_net *net, int node, const float *w, int rows, gn_error *err);
void gn__mix_mark_live(gn_node *nd);
int gn__mix_fwd(gn_net *net, gn_node *nd, gn_error *err);
/* dst = w[:,k] * dy per sample (dst: the gradient destination of in_k). */
int gn__mix_bwd_input(gn_net *net, const gn_node *nd, int k, const gn_tensor *dy, gn_tensor *dst, gn_error *err);
/* mixg from dy and the inputs (dead columns: 0). */
int gn__mix_bwd_weights(gn_net *net, gn_node *nd, const gn_tensor *dy, gn_error *err);
/* network_infer.c */
void gn__infer_plan_free(gn_infer_plan *p);

#endif
