/*
 * opt_evolution.c — regularized (aging) evolution, Real et al. 2019 ("Regularized
 * Evolution for Image Classifier Architecture Search", Algorithm 1), on integer encodings.
 *
 * Population: a FIFO of at most P feasible observations (history indices), in the order
 * they were observed.  Every feasible observation is pushed; when the FIFO exceeds P the
 * oldest member leaves ("aging": age, not fitness, decides who dies, which the paper
 * shows regularises against lucky evaluations).  Infeasible observations (outside the
 * latency tier) never enter; the seen-set keeps them from being proposed again.
 *
 * Proposal: while the population holds fewer than P members, a uniform random unseen
 * point (the paper's random initial population).  Then: draw S distinct members
 * uniformly (partial Fisher-Yates), the one with the highest obj[0] is the parent (ties:
 * the youngest), and the child is the parent with ONE dimension (uniform among those with
 * card > 1) set to a uniformly chosen different value — the paper's single-edit mutation.
 * A child that was already seen (or is refused by options.accept) is discarded and a new
 * tournament + mutation is drawn, up to max_retries times; then the common fallback.
 */
#include "search/search_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    int *pop;  /* ring buffer of history indices, capacity P */
    int head, size;
    int *pick; /* S scratch */
    int *perm; /* P scratch */
    int *free_dims, nfree;
    int *spare;
} evo_state;

static int evo_init(gn_optimizer *o, gn_error *err)
{
    evo_state *s = calloc(1, sizeof *s);
    if (!s)
        return gn_error_set(err, "optimizer evolution: out of memory");
    o->impl = s;
    int P = o->opt.evo_population;
    s->pop = malloc(sizeof(int) * (size_t)P);
    s->perm = malloc(sizeof(int) * (size_t)P);
    s->pick = malloc(sizeof(int) * (size_t)o->opt.evo_sample);
    s->free_dims = malloc(sizeof(int) * (size_t)o->d);
    s->spare = malloc(sizeof(int) * (size_t)o->d);
    if (!s->pop || !s->perm || !s->pick || !s->free_dims || !s->spare)
        return gn_error_set(err, "optimizer evolution: out of memory");
    s->nfree = gn__opt_free_dims(o, s->free_dims);
    return 0;
}

static void evo_free(gn_optimizer *o)
{
    evo_state *s = o->impl;
    if (!s)
        return;
    free(s->pop);
    free(s->perm);
    free(s->pick);
    free(s->free_dims);
    free(s->spare);
    free(s);
    o->impl = NULL;
}

static int evo_observe(gn_optimizer *o, int idx, gn_error *err)
{
    evo_state *s = o->impl;
    if (!o->feas[idx])
        return 0;
    int P = o->opt.evo_population;
    if (s->size < P) {
        s->pop[(s->head + s->size) % P] = idx;
        s->size++;
    } else {
        s->pop[s->head] = idx; /* overwrite the oldest */
        s->head = (s->head + 1) % P;
    }
    return 0;
}

/* member k of the FIFO (0 = oldest) */
static int member(const evo_state *s, int P, int k) { return s->pop[(s->head + k) % P]; }

static void make_child(gn_optimizer *o, evo_state *s, int *x)
{
    int P = o->opt.evo_population, S = o->opt.evo_sample;
    for (int k = 0; k < s->size; k++)
        s->perm[k] = k;
    int best_k = -1;
    for (int j = 0; j < S; j++) {
        int r = j + (int)gn_rng_below(&o->rng, (uint64_t)(s->size - j));
        int t = s->perm[j];
        s->perm[j] = s->perm[r];
        s->perm[r] = t;
        int k = s->perm[j];
        if (best_k < 0) {
            best_k = k;
            continue;
        }
        double fk = o->F[(size_t)member(s, P, k) * o->m], fb = o->F[(size_t)member(s, P, best_k) * o->m];
        if (fk > fb || (fk == fb && k > best_k))
            best_k = k;
    }
    const int *parent = o->X + (size_t)member(s, P, best_k) * o->d;
    memcpy(x, parent, sizeof(int) * (size_t)o->d);
    if (s->nfree == 0)
        return;
    int dim = s->free_dims[gn_rng_below(&o->rng, (uint64_t)s->nfree)];
    int v = (int)gn_rng_below(&o->rng, (uint64_t)(o->enc.card[dim] - 1));
    x[dim] = v >= x[dim] ? v + 1 : v;
}

static int draw_child(gn_optimizer *o, void *ctx, int *x)
{
    make_child(o, ctx, x);
    return 0;
}

static int evo_propose(gn_optimizer *o, int *x, gn_error *err)
{
    evo_state *s = o->impl;
    if (s->size < o->opt.evo_population)
        return gn__opt_fallback(o, x, NULL, false, err); /* random initial population */
    return gn__opt_propose_loop(o, x, s->spare, o->opt.max_retries, draw_child, s, err);
}

const gn_opt_vtable gn__opt_evolution_vt = {
    .name = "evolution",
    .init = evo_init,
    .propose = evo_propose,
    .observe = evo_observe,
    .free = evo_free,
};
