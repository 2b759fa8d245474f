/*
 * space_internal.h — the parsed form of a search space, shared by the src/space files
 * (see gpunas/space.h for the file format and the encoding).
 *
 * Every choice is a list of distinct values stored as doubles (integers are exact);
 * a choice with at least two values owns one encoding dimension (dim >= 0), a choice
 * with one value is a constant (dim = -1).
 */
#ifndef GPUNAS_SPACE_INTERNAL_H
#define GPUNAS_SPACE_INTERNAL_H

#include <stdbool.h>

#include "gpunas/arch.h"
#include "gpunas/space.h"

#define SPACE_MAX_STAGES 32
#define SPACE_MAX_CHOICES 1024

/* Stage parameters, in encoding order. */
enum { P_LAYERS, P_KERNEL, P_ACT, P_EXP, P_FILTERS, P_SE, P_COUNT };

typedef struct {
    int n;         /* values, >= 1 when present */
    double *v;     /* owned */
    int dim;       /* encoding dimension, or -1 for a constant / absent choice */
} sp_choice;

typedef struct {
    int number;               /* "stage": the layers' stage field */
    gn_layer_type type;       /* GN_LAYER_HEAD (stage 0 only), CONV, FUSED_IRB, IRB */
    int stride;
    bool stride_first_only;
    bool act_set;             /* head: "act" given (else the builder default, swish) */
    sp_choice p[P_COUNT];     /* act values: gn_act; se values: 0/1; absent: n = 0 */
} sp_stage;

struct gn_space {
    char *name;
    char *source;
    int in_ch, classes;
    sp_choice res;
    int n_stages;
    sp_stage stages[SPACE_MAX_STAGES];
    sp_choice tail;
    gn_enc_desc desc;
    char dim_name[GN_ENC_MAX_DIMS][32];
    int dim_stage[GN_ENC_MAX_DIMS]; /* stage index, or -1 for res/tail */
    int dim_param[GN_ENC_MAX_DIMS]; /* P_* (stage dims) */
};

/* The value of a choice under encoding x (the only value of a constant). */
static inline double gn__sp_value(const sp_choice *c, const int *x) { return c->v[c->dim >= 0 ? x[c->dim] : 0]; }
static inline int gn__sp_ivalue(const sp_choice *c, const int *x) { return (int)gn__sp_value(c, x); }

/* Layers of stage i under x. */
static inline int gn__sp_layers(const gn_space *s, int i, const int *x) { return gn__sp_ivalue(&s->stages[i].p[P_LAYERS], x); }

/* The decoded layer list as compact JSON text with the given source name (malloc'd). */
char *gn__sp_build_json(const gn_space *s, const int *x);

#endif
