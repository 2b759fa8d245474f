/*
 * ema.c — exponential moving average of a float array (timm ModelEmaV2 semantics,
 * see gpunas/optim.h): shadow = decay*shadow + (1-decay)*value, float32, with the
 * two factors rounded to float once, as PyTorch does with Python scalars.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpunas/optim.h"

struct gn_ema {
    double decay;
    size_t n;
    float *shadow;
};

int gn_ema_create(double decay, const float *init, size_t n, gn_ema **out, gn_error *err)
{
    *out = NULL;
    if (!(decay >= 0 && decay < 1))
        return gn_error_set(err, "EMA: decay %g must be in [0, 1)", decay);
    gn_ema *e = calloc(1, sizeof *e);
    if (e)
        e->shadow = malloc((n ? n : 1) * sizeof(float));
    if (!e || !e->shadow) {
        free(e);
        return gn_error_set(err, "EMA: out of memory for %zu scalars", n);
    }
    e->decay = decay;
    e->n = n;
    if (n)
        memcpy(e->shadow, init, n * sizeof(float));
    *out = e;
    return 0;
}

void gn_ema_free(gn_ema *e)
{
    if (!e)
        return;
    free(e->shadow);
    free(e);
}

void gn_ema_update(gn_ema *e, const float *v)
{
    const float d = (float)e->decay, omd = (float)(1.0 - e->decay);
    float *s = e->shadow;
    for (size_t j = 0; j < e->n; j++)
        s[j] = d * s[j] + omd * v[j];
}

float *gn_ema_values(gn_ema *e) { return e->shadow; }
size_t gn_ema_size(const gn_ema *e) { return e->n; }
double gn_ema_decay(const gn_ema *e) { return e->decay; }
