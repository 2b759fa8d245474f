/*
 * opt_nsga2.c — NSGA-II (Deb, Pratap, Agarwal, Meyarivan 2002) on integer encodings,
 * for all n_objectives objectives (maximised), with constraint-domination for points
 * observed infeasible.
 *
 * Generations.  The first P observations (uniform random unseen proposals) become the
 * first parent population.  From the parents an offspring generation of P children is
 * bred at once and streamed out by propose(), one per call.  Every observation (of a
 * child, or of any point the caller observes) enters the pool; when the pool reaches P,
 * parents + pool are ranked (gn_pareto_ranks: fast non-dominated sort, constraint-
 * domination) and the best P by (rank, then crowding distance descending within the
 * last front that fits) become the new parents, and a new generation is bred.  If the
 * caller asks for more proposals than a generation holds before its observations arrive
 * (many workers), further children are bred from the same parents.
 *
 * Breeding one child: two binary tournaments (two random parents each, the lower rank
 * wins, then the larger crowding distance, then the first drawn); with probability
 * nsga_crossover uniform crossover (each dimension from either parent with 1/2), else a
 * copy of the first; then every dimension with card > 1 mutates with probability
 * nsga_mutation (default 1 / number of such dimensions) to a uniformly chosen different
 * value.  A child already seen (or refused by options.accept) is skipped; after
 * max_retries skipped children the common random-unseen fallback is used.
 *
 * Infeasible members: rank after every feasible front, crowding 0, so any feasible point
 * wins a tournament against them and they are the first to be dropped.
 */
#include "search/search_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int P;
    int *par, npar;     /* history indices of the parents */
    int *prank;         /* per parent */
    double *pcrowd;     /* per parent */
    int *pool, npool, cappool;
    int *queue, qlen, qpos; /* P children */
    int *free_dims, nfree;
    double pm;
    int *spare;
    /* selection scratch (2P+) */
    int capsel;
    int *cidx, *crank, *cpos;
    double *cobj, *ccrowd;
    unsigned char *cfeas;
} nsga_state;

static int nsga_init(gn_optimizer *o, gn_error *err)
{
    nsga_state *s = calloc(1, sizeof *s);
    if (!s)
        return gn_error_set(err, "optimizer nsga2: out of memory");
    o->impl = s;
    s->P = o->opt.nsga_population;
    s->par = malloc(sizeof(int) * (size_t)s->P);
    s->prank = malloc(sizeof(int) * (size_t)s->P);
    s->pcrowd = malloc(sizeof(double) * (size_t)s->P);
    s->queue = malloc(sizeof(int) * (size_t)s->P * (size_t)o->d);
    s->free_dims = malloc(sizeof(int) * (size_t)o->d);
    s->spare = malloc(sizeof(int) * (size_t)o->d);
    if (!s->par || !s->prank || !s->pcrowd || !s->queue || !s->free_dims || !s->spare)
        return gn_error_set(err, "optimizer nsga2: out of memory");
    s->nfree = gn__opt_free_dims(o, s->free_dims);
    s->pm = o->opt.nsga_mutation > 0 ? o->opt.nsga_mutation : (s->nfree > 0 ? 1.0 / s->nfree : 0.0);
    return 0;
}

static void nsga_free(gn_optimizer *o)
{
    nsga_state *s = o->impl;
    if (!s)
        return;
    free(s->par);
    free(s->prank);
    free(s->pcrowd);
    free(s->pool);
    free(s->queue);
    free(s->free_dims);
    free(s->spare);
    free(s->cidx);
    free(s->crank);
    free(s->cpos);
    free(s->cobj);
    free(s->ccrowd);
    free(s->cfeas);
    free(s);
    o->impl = NULL;
}

static int tournament(gn_optimizer *o, nsga_state *s)
{
    int a = (int)gn_rng_below(&o->rng, (uint64_t)s->npar);
    int b = (int)gn_rng_below(&o->rng, (uint64_t)s->npar);
    if (s->prank[b] < s->prank[a] || (s->prank[b] == s->prank[a] && s->pcrowd[b] > s->pcrowd[a]))
        return b;
    return a;
}

static void breed(gn_optimizer *o, nsga_state *s)
{
    for (int c = 0; c < s->P; c++) {
        int *x = s->queue + (size_t)c * o->d;
        const int *p1 = o->X + (size_t)s->par[tournament(o, s)] * o->d;
        const int *p2 = o->X + (size_t)s->par[tournament(o, s)] * o->d;
        if (gn_rng_uniform(&o->rng) < o->opt.nsga_crossover) {
            for (int i = 0; i < o->d; i++)
                x[i] = (gn_rng_u64(&o->rng) >> 63) ? p2[i] : p1[i];
        } else {
            memcpy(x, p1, sizeof(int) * (size_t)o->d);
        }
        for (int k = 0; k < s->nfree; k++) {
            if (gn_rng_uniform(&o->rng) >= s->pm)
                continue;
            int dim = s->free_dims[k];
            int v = (int)gn_rng_below(&o->rng, (uint64_t)(o->enc.card[dim] - 1));
            x[dim] = v >= x[dim] ? v + 1 : v;
        }
    }
    s->qlen = s->P;
    s->qpos = 0;
}

static int sel_reserve(nsga_state *s, int n, int m)
{
    if (n <= s->capsel)
        return 0;
    int c = n * 2;
    free(s->cidx);
    free(s->crank);
    free(s->cpos);
    free(s->cobj);
    free(s->ccrowd);
    free(s->cfeas);
    s->cidx = malloc(sizeof(int) * (size_t)c);
    s->crank = malloc(sizeof(int) * (size_t)c);
    s->cpos = malloc(sizeof(int) * (size_t)c);
    s->cobj = malloc(sizeof(double) * (size_t)c * (size_t)m);
    s->ccrowd = malloc(sizeof(double) * (size_t)c);
    s->cfeas = malloc((size_t)c);
    if (!s->cidx || !s->crank || !s->cpos || !s->cobj || !s->ccrowd || !s->cfeas) {
        s->capsel = 0;
        return -1;
    }
    s->capsel = c;
    return 0;
}

/* Selection order inside one front: crowding descending, then history index descending
 * (newer first; matters only for infeasible members and exact ties). */
typedef struct {
    double crowd;
    int hidx, pos;
} sel_key;

static int cmp_sel(const void *pa, const void *pb)
{
    const sel_key *a = pa, *b = pb;
    if (a->crowd != b->crowd)
        return a->crowd > b->crowd ? -1 : 1;
    return b->hidx - a->hidx;
}

/* Rank + crowd the n candidates in s->cidx[0..n); keep the best `keep` as parents. */
static int select_parents(gn_optimizer *o, nsga_state *s, int n, int keep, gn_error *err)
{
    int m = o->m;
    for (int a = 0; a < n; a++) {
        int h = s->cidx[a];
        memcpy(s->cobj + (size_t)a * m, o->F + (size_t)h * m, sizeof(double) * (size_t)m);
        s->cfeas[a] = o->feas[h];
    }
    if (gn_pareto_ranks(s->cobj, n, m, s->cfeas, s->crank, err))
        return -1;
    int maxr = 0;
    for (int a = 0; a < n; a++)
        if (s->crank[a] > maxr)
            maxr = s->crank[a];
    sel_key *keys = malloc(sizeof(sel_key) * (size_t)n);
    int *members = malloc(sizeof(int) * (size_t)n);
    if (!keys || !members) {
        free(keys);
        free(members);
        return gn_error_set(err, "optimizer nsga2: out of memory");
    }
    int npar = 0;
    for (int r = 0; r <= maxr && npar < keep; r++) {
        int k = 0;
        bool infeasible_front = false;
        for (int a = 0; a < n; a++)
            if (s->crank[a] == r) {
                members[k++] = a;
                if (!s->cfeas[a])
                    infeasible_front = true;
            }
        if (k == 0)
            continue;
        if (infeasible_front) {
            for (int t = 0; t < k; t++)
                s->ccrowd[members[t]] = 0;
        } else {
            double *dist = malloc(sizeof(double) * (size_t)k);
            if (!dist || gn__crowding(s->cobj, m, members, k, dist)) {
                free(dist);
                free(keys);
                free(members);
                return gn_error_set(err, "optimizer nsga2: out of memory");
            }
            for (int t = 0; t < k; t++)
                s->ccrowd[members[t]] = dist[t];
            free(dist);
        }
        for (int t = 0; t < k; t++)
            keys[t] = (sel_key){s->ccrowd[members[t]], s->cidx[members[t]], members[t]};
        if (npar + k > keep)
            qsort(keys, (size_t)k, sizeof(sel_key), cmp_sel);
        for (int t = 0; t < k && npar < keep; t++) {
            int a = keys[t].pos;
            s->par[npar] = s->cidx[a];
            s->prank[npar] = s->crank[a];
            s->pcrowd[npar] = s->ccrowd[a];
            npar++;
        }
    }
    s->npar = npar;
    free(keys);
    free(members);
    return 0;
}

static int nsga_observe(gn_optimizer *o, int idx, gn_error *err)
{
    nsga_state *s = o->impl;
    if (s->npool == s->cappool) {
        int c = s->cappool ? s->cappool * 2 : 2 * s->P;
        int *np = realloc(s->pool, sizeof(int) * (size_t)c);
        if (!np)
            return gn_error_set(err, "optimizer nsga2: out of memory");
        s->pool = np;
        s->cappool = c;
    }
    s->pool[s->npool++] = idx;
    if (s->npool < s->P)
        return 0;
    int n = s->npar + s->npool;
    if (sel_reserve(s, n, o->m))
        return gn_error_set(err, "optimizer nsga2: out of memory");
    memcpy(s->cidx, s->par, sizeof(int) * (size_t)s->npar);
    memcpy(s->cidx + s->npar, s->pool, sizeof(int) * (size_t)s->npool);
    if (select_parents(o, s, n, s->P, err))
        return -1;
    s->npool = 0;
    breed(o, s);
    return 0;
}

static int draw_queued(gn_optimizer *o, void *ctx, int *x)
{
    nsga_state *s = ctx;
    if (s->qpos >= s->qlen)
        breed(o, s);
    memcpy(x, s->queue + (size_t)(s->qpos++) * o->d, sizeof(int) * (size_t)o->d);
    return 0;
}

static int nsga_propose(gn_optimizer *o, int *x, gn_error *err)
{
    nsga_state *s = o->impl;
    if (s->npar == 0)
        return gn__opt_fallback(o, x, NULL, false, err); /* random initial population */
    return gn__opt_propose_loop(o, x, s->spare, o->opt.max_retries, draw_queued, s, err);
}

const gn_opt_vtable gn__opt_nsga2_vt = {
    .name = "nsga2",
    .init = nsga_init,
    .propose = nsga_propose,
    .observe = nsga_observe,
    .free = nsga_free,
};
