/*
 * space_sample.c — drawing, mutating, checking and printing encodings of a search
 * space (see gpunas/space.h).
 *
 * Random members draw every dimension uniformly (gn_rng_below).  The Sobol sampler
 * maps a scrambled Sobol point u in [0,1)^d to x[i] = floor(u[i] * card[i]), the map of
 * gpunas/encoding.h, so the space's low-discrepancy properties carry over to the
 * grid.  Mutation re-draws each dimension with probability `rate` to a different value
 * and, when none of the changed dimensions is active (a stage with 0 layers makes its
 * other dimensions inert), changes one active dimension, so the mutated network always
 * differs.  Text form: decimal indices joined by commas, parsed strictly.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpunas/sobol.h"
#include "space/space_internal.h"

void gn_space_sample_random(const gn_space *s, gn_rng *r, int *x)
{
    for (int i = 0; i < s->desc.ndims; i++)
        x[i] = (int)gn_rng_below(r, (uint64_t)s->desc.card[i]);
}

struct gn_space_sobol {
    gn_sobol *sob;
    gn_enc_desc desc;
    double u[GN_ENC_MAX_DIMS];
};

int gn_space_sobol_create(const gn_space *s, uint64_t seed, gn_space_sobol **out, gn_error *err)
{
    *out = NULL;
    gn_space_sobol *q = calloc(1, sizeof *q);
    if (!q)
        return gn_error_set(err, "%s: Sobol sampler: out of memory", s->source);
    q->desc = s->desc;
    if (gn_sobol_create(s->desc.ndims, seed, &q->sob, err)) {
        free(q);
        return -1;
    }
    *out = q;
    return 0;
}

void gn_space_sobol_next(gn_space_sobol *q, int *x)
{
    gn_sobol_next(q->sob, q->u);
    for (int i = 0; i < q->desc.ndims; i++) {
        int v = (int)(q->u[i] * q->desc.card[i]);
        x[i] = v < q->desc.card[i] ? v : q->desc.card[i] - 1; /* u < 1, so only by rounding */
    }
}

void gn_space_sobol_skip(gn_space_sobol *q, uint64_t n) { gn_sobol_skip(q->sob, n); }
uint64_t gn_space_sobol_index(const gn_space_sobol *q) { return gn_sobol_index(q->sob); }

void gn_space_sobol_free(gn_space_sobol *q)
{
    if (!q)
        return;
    gn_sobol_free(q->sob);
    free(q);
}

int gn_space_dim_active(const gn_space *s, const int *x, int i)
{
    if (i < 0 || i >= s->desc.ndims)
        return 0;
    int st = s->dim_stage[i];
    if (st < 0 || s->dim_param[i] == P_LAYERS)
        return 1;
    return gn__sp_layers(s, st, x) > 0;
}

void gn_space_canonical(const gn_space *s, const int *x, int *y)
{
    int tmp[GN_ENC_MAX_DIMS];
    memcpy(tmp, x, sizeof(int) * (size_t)s->desc.ndims);
    for (int i = 0; i < s->desc.ndims; i++)
        y[i] = gn_space_dim_active(s, tmp, i) ? tmp[i] : 0;
}

/* A value of dimension i other than v, uniformly. */
static int other_value(const gn_space *s, gn_rng *r, int i, int v)
{
    int w = (int)gn_rng_below(r, (uint64_t)s->desc.card[i] - 1);
    return w >= v ? w + 1 : w;
}

void gn_space_mutate(const gn_space *s, gn_rng *r, const int *x, int *y, double rate)
{
    int n = s->desc.ndims;
    int orig[GN_ENC_MAX_DIMS];
    memcpy(orig, x, sizeof(int) * (size_t)n);
    memcpy(y, orig, sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++)
        if (rate > 0 && gn_rng_uniform(r) < rate)
            y[i] = other_value(s, r, i, orig[i]);
    /* Did the network change?  It did iff an active dimension (judged on y, whose
     * layer counts decide) differs, or a layers dimension moved between 0 and > 0. */
    int xc[GN_ENC_MAX_DIMS], yc[GN_ENC_MAX_DIMS];
    gn_space_canonical(s, orig, xc);
    gn_space_canonical(s, y, yc);
    if (memcmp(xc, yc, sizeof(int) * (size_t)n) != 0)
        return;
    /* No visible change: change one dimension that is active in y (and hence in x, as
     * y and x have the same canonical form). */
    int active[GN_ENC_MAX_DIMS], na = 0;
    for (int i = 0; i < n; i++)
        if (gn_space_dim_active(s, y, i))
            active[na++] = i;
    /* na >= 1: the resolution, head, tail and layers dimensions are always active and a
     * loaded space has at least one dimension of which one is active (space_load.c). */
    int i = active[gn_rng_below(r, (uint64_t)na)];
    y[i] = other_value(s, r, i, y[i]);
}

int gn_space_check(const gn_space *s, const int *x, gn_error *err)
{
    for (int i = 0; i < s->desc.ndims; i++)
        if (x[i] < 0 || x[i] >= s->desc.card[i])
            return gn_error_set(err, "%s: encoding: dimension %d (%s): value %d out of range [0, %d)", s->source, i,
                                s->dim_name[i], x[i], s->desc.card[i]);
    return 0;
}

char *gn_space_encode_to_string(const gn_space *s, const int *x)
{
    size_t cap = (size_t)s->desc.ndims * 12 + 1, o = 0;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    buf[0] = 0;
    for (int i = 0; i < s->desc.ndims; i++)
        o += (size_t)snprintf(buf + o, cap - o, i ? ",%d" : "%d", x[i]);
    return buf;
}

int gn_space_parse_string(const gn_space *s, const char *text, int *x, gn_error *err)
{
    int n = s->desc.ndims, k = 0;
    const char *p = text;
    if (!text)
        return gn_error_set(err, "%s: encoding: missing", s->source);
    for (;;) {
        if (k == n)
            return gn_error_set(err, "%s: encoding '%.64s': more than the space's %d values", s->source, text, n);
        if (*p < '0' || *p > '9')
            return gn_error_set(err, "%s: encoding '%.64s': value %d is not a non-negative integer", s->source,
                                text, k);
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || v > 1000000)
            return gn_error_set(err, "%s: encoding '%.64s': value %d too large", s->source, text, k);
        if (v >= s->desc.card[k])
            return gn_error_set(err, "%s: encoding '%.64s': dimension %d (%s): value %ld out of range [0, %d)",
                                s->source, text, k, s->dim_name[k], v, s->desc.card[k]);
        x[k++] = (int)v;
        p = end;
        if (*p == 0)
            break;
        if (*p != ',')
            return gn_error_set(err, "%s: encoding '%.64s': expected ',' after value %d", s->source, text, k - 1);
        p++;
    }
    if (k != n)
        return gn_error_set(err, "%s: encoding '%.64s': %d values, the space has %d", s->source, text, k, n);
    return 0;
}

static const char *short_type(gn_layer_type t)
{
    switch (t) {
    case GN_LAYER_CONV: return "conv";
    case GN_LAYER_FUSED_IRB: return "fused";
    case GN_LAYER_IRB: return "irb";
    default: return "?";
    }
}

char *gn_space_describe(const gn_space *s, const int *x)
{
    size_t cap = 64 + (size_t)s->n_stages * 64, o = 0;
    char *buf = malloc(cap);
    const sp_stage *h = &s->stages[0];
    o += (size_t)snprintf(buf + o, cap - o, "r%d h%d%c", gn__sp_ivalue(&s->res, x), gn__sp_ivalue(&h->p[P_FILTERS], x),
                          gn__sp_ivalue(&h->p[P_ACT], x) == GN_ACT_RELU ? 'R' : 'S');
    for (int i = 1; i < s->n_stages; i++) {
        const sp_stage *st = &s->stages[i];
        int n = gn__sp_layers(s, i, x);
        if (n == 0)
            continue;
        o += (size_t)snprintf(buf + o, cap - o, " | %d:%dx%s k%d", st->number, n, short_type(st->type),
                              gn__sp_ivalue(&st->p[P_KERNEL], x));
        if (st->p[P_EXP].n)
            o += (size_t)snprintf(buf + o, cap - o, " e%g", gn__sp_value(&st->p[P_EXP], x));
        o += (size_t)snprintf(buf + o, cap - o, " %d%c%s", gn__sp_ivalue(&st->p[P_FILTERS], x),
                              gn__sp_ivalue(&st->p[P_ACT], x) == GN_ACT_RELU ? 'R' : 'S',
                              st->p[P_SE].n && gn__sp_ivalue(&st->p[P_SE], x) ? "+se" : "");
    }
    snprintf(buf + o, cap - o, " | t%d", gn__sp_ivalue(&s->tail, x));
    return buf;
}
