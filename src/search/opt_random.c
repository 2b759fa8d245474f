/*
 * opt_random.c — the "random" optimizer: points spread over the whole box, ignoring the
 * scores (the baseline every other kind must beat).
 *
 * With options.random_sobol (default) the points are a scrambled Sobol sequence in
 * [0,1)^d mapped to the grid by x[i] = floor(u[i] * card[i]); the scramble seed is drawn
 * from the optimizer's rng, so it is a function of options.seed.  Low discrepancy gives
 * more even coverage of the cells than independent draws for the same budget.  A Sobol
 * point that lands on a seen point (or is refused by options.accept) is skipped and the
 * sequence advances; after max_retries such points the common random-unseen fallback is
 * used.  With random_sobol = 0 the candidates are uniform draws from the rng.
 */
#include "search/search_internal.h"

#include <stdlib.h>
#include <string.h>

#include "gpunas/sobol.h"

typedef struct {
    gn_sobol *sobol; /* NULL when uniform */
    double *u;
    int *spare;
} random_state;

static int random_init(gn_optimizer *o, gn_error *err)
{
    random_state *s = calloc(1, sizeof *s);
    if (!s)
        return gn_error_set(err, "optimizer random: out of memory");
    o->impl = s;
    s->u = malloc(sizeof(double) * (size_t)o->d);
    s->spare = malloc(sizeof(int) * (size_t)o->d);
    if (!s->u || !s->spare)
        return gn_error_set(err, "optimizer random: out of memory");
    if (o->opt.random_sobol) {
        uint64_t sseed = gn_rng_u64(&o->rng) | 1u; /* non-zero: scrambled */
        if (gn_sobol_create(o->d, sseed, &s->sobol, err))
            return -1;
    }
    return 0;
}

static void random_free(gn_optimizer *o)
{
    random_state *s = o->impl;
    if (!s)
        return;
    if (s->sobol)
        gn_sobol_free(s->sobol);
    free(s->u);
    free(s->spare);
    free(s);
    o->impl = NULL;
}

static int draw_point(gn_optimizer *o, void *ctx, int *x)
{
    random_state *s = ctx;
    if (s->sobol) {
        gn_sobol_next(s->sobol, s->u);
        for (int i = 0; i < o->d; i++) {
            int v = (int)(s->u[i] * o->enc.card[i]);
            x[i] = v < o->enc.card[i] ? v : o->enc.card[i] - 1;
        }
    } else {
        gn__opt_uniform(o, x);
    }
    return 0;
}

static int random_propose(gn_optimizer *o, int *x, gn_error *err)
{
    random_state *s = o->impl;
    return gn__opt_propose_loop(o, x, s->spare, o->opt.max_retries, draw_point, s, err);
}

const gn_opt_vtable gn__opt_random_vt = {
    .name = "random",
    .init = random_init,
    .propose = random_propose,
    .observe = NULL,
    .free = random_free,
};
