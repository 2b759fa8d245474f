/*
 * opt_lamcts.c — LA-MCTS (Wang, Fonseca, Tian, NeurIPS 2020) with Bayesian optimisation
 * as the leaf solver, following the reference implementation (facebookresearch/LaMCTS,
 * LA-MCTS/lamcts: MCTS.py, Node.py, Classifier.py; docs/gpunet.md §4.3), adapted to
 * integer encodings.
 *
 * Space.  A point x is mapped to the unit cube by u[i] = (x[i] + 0.5) / card[i] (the
 * centre of its cell) and candidates u are mapped back by x[i] = floor(u[i] * card[i]).
 * The tree, the SVMs and the GP all work on cell centres, so what is scored is exactly
 * what is proposed.  f = obj[0] (maximised); other objectives are ignored.
 *
 * Initialisation.  The first mcts_ninits proposals are a Latin hypercube drawn at
 * creation (per dimension a random permutation of the ninits strata, a uniform point in
 * each).  BO starts once ninits observations exist and at least 2 of them are feasible;
 * until then (e.g. many proposals in flight, or an all-infeasible start) proposals are
 * uniform random unseen points.
 *
 * Infeasible samples (observed with feasible = false: outside the latency tier) take
 * f = the lowest feasible f observed so far, recomputed at every rebuild.  They stay in
 * the tree, so k-means/SVM learn to split the infeasible region into bad nodes, and in
 * the GP, so EI is low there.  (Excluding them would let BO walk straight back into the
 * infeasible region it cannot see.)
 *
 * Every proposal:
 *  1. Tree, rebuilt from scratch from all samples (reference: dynamic_treeify).  A leaf
 *     whose bag holds more than mcts_leaf_size samples is split when possible:
 *       a. 2-means (gn__kmeans2, 5 restarts) on rows [u, f'], where f' is f standardised
 *          over the bag and scaled so that its spread equals mcts_kmeans_f_weight times
 *          the total spread of u over the bag.  (The reference clusters raw [x, f]; with
 *          u in [0,1]^40 and accuracies in [0,1] the raw f would be 1 of 41 nearly flat
 *          coordinates and the split would ignore the objective.  Weight 1 gives f as
 *          much say as all of x together.)
 *       b. relabel: the cluster with the higher mean f is "good" (label 0);
 *       c. fit the RBF SVC on u -> label (gn__svm_fit, gamma = 1/d as sklearn 'auto');
 *       d. splittable only if the SVM predicts both labels on the bag; then the good kid
 *          takes the good cluster's samples, the bad kid the others (as the reference:
 *          the k-means labels, not the SVM predictions, assign the bags).
 *     Splitting repeats until no leaf is splittable.
 *  2. Selection from the root: in each node take the kid with the larger
 *        UCT = mean f + 2 Cp sqrt(2 sqrt(n_parent) / n_kid)
 *     (ties at random), Cp = mcts_cp * (max f - min f) over all samples, so the
 *     reference's advice "Cp = 0.1 * max f" becomes scale-free.  Because the tree is
 *     rebuilt each time, the reference's back-propagation of visit counts between
 *     rebuilds has no effect and is not kept: n is the bag size, as after a rebuild.
 *  3. GP (gp.c) on all samples (at most mcts_gp_max: the best by f, ties the newest —
 *     the GP cost grows as n^3 and near the end only the good region matters).
 *  4. Candidates, all from one scrambled Sobol sequence per proposal (seed drawn from
 *     the rng): around each of the mcts_centers best samples of the chosen leaf, five
 *     groups of points that copy the centre except in a random subset of dimensions
 *     (each dimension with card > 1 is taken with probability e / (number of such
 *     dimensions), e = 1, 2, 4, 8, 16; at least one), where they take the Sobol
 *     point's coordinate — "boxes" that span the full range of the chosen coordinates
 *     and have zero width in the others; plus 1/6 of the budget spread over the whole
 *     cube.  Deviation from the reference, which draws in full-dimensional boxes
 *     centre +- L/2 grown until they leave the region: on a 40-dimensional grid of 2..10
 *     choices such a box either stays inside the centre's cell in the many binary
 *     dimensions or changes almost all dimensions at once, so no box size makes the
 *     few-dimension moves local search needs (TuRBO and CoCaBO-style optimizers perturb
 *     subsets for the same reason).  Measured on bench/search_bench.c (sphere, 3 seeds,
 *     N = 200): boxes with half-widths 0.05..0.5 reached best f -0.226, subsets -0.145.
 *     Points are rounded to cells, deduplicated, points already observed or in flight
 *     are dropped, and a point is kept only if every SVM on the path classifies its cell
 *     centre into the side the path took.  If none survive, the whole-cube points are
 *     filtered again with a fresh full budget; if still none, the path filter is dropped.
 *  5. Expected improvement (xi = ei_xi in standardised units) over the best GP mean at
 *     the samples (as the reference); the candidates are tried in decreasing EI order
 *     (ties: generation order) and the first that options.accept admits is proposed.
 *
 * Cost per proposal at n = 200, d = 40: the GP grid (~120 Cholesky factorisations of
 * 200 x 200), ~4000 candidates through <= ~5 SVMs and the GP — see bench/RESULTS.md.
 */
#include "search/search_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpunas/sobol.h"

#define NLEVELS 5 /* perturb about 1, 2, 4, 8, 16 dimensions */

typedef struct {
    int *bag, nbag;
    double mean;
    int parent;
    int kid[2];   /* -1 for a leaf; kid[0] good, kid[1] bad */
    gn_svm svm;   /* valid when kid[0] >= 0 */
} node;

typedef struct {
    int *lhs; /* ninits * d */
    int lhs_next;
    int *free_dims, nfree; /* dimensions with card > 1 */
    int *spare;
    /* per-proposal scratch */
    node *nodes;
    int nnodes, capnodes;
} lamcts_state;

/* ------------------------------------------------------------------ life cycle */

static int lamcts_init(gn_optimizer *o, gn_error *err)
{
    lamcts_state *s = calloc(1, sizeof *s);
    if (!s)
        return gn_error_set(err, "optimizer lamcts: out of memory");
    o->impl = s;
    int N = o->opt.mcts_ninits, d = o->d;
    s->lhs = malloc(sizeof(int) * (size_t)N * (size_t)d);
    s->spare = malloc(sizeof(int) * (size_t)d);
    s->free_dims = malloc(sizeof(int) * (size_t)d);
    int *perm = malloc(sizeof(int) * (size_t)N);
    if (!s->lhs || !s->spare || !s->free_dims || !perm) {
        free(perm);
        return gn_error_set(err, "optimizer lamcts: out of memory");
    }
    for (int i = 0; i < d; i++) {
        for (int k = 0; k < N; k++)
            perm[k] = k;
        for (int k = N - 1; k > 0; k--) {
            int r = (int)gn_rng_below(&o->rng, (uint64_t)k + 1);
            int t = perm[k];
            perm[k] = perm[r];
            perm[r] = t;
        }
        for (int k = 0; k < N; k++) {
            double u = (perm[k] + gn_rng_uniform(&o->rng)) / N;
            int v = (int)(u * o->enc.card[i]);
            s->lhs[(size_t)k * d + i] = v < o->enc.card[i] ? v : o->enc.card[i] - 1;
        }
    }
    free(perm);
    s->nfree = gn__opt_free_dims(o, s->free_dims);
    return 0;
}

static void clear_tree(lamcts_state *s)
{
    for (int i = 0; i < s->nnodes; i++) {
        free(s->nodes[i].bag);
        gn__svm_free(&s->nodes[i].svm);
    }
    s->nnodes = 0;
}

static void lamcts_free(gn_optimizer *o)
{
    lamcts_state *s = o->impl;
    if (!s)
        return;
    clear_tree(s);
    free(s->nodes);
    free(s->lhs);
    free(s->spare);
    free(s->free_dims);
    free(s);
    o->impl = NULL;
}

/* ------------------------------------------------------------------ tree */

static int new_node(lamcts_state *s, int parent, int *bag, int nbag, const double *f)
{
    if (s->nnodes == s->capnodes) {
        int c = s->capnodes ? s->capnodes * 2 : 16;
        node *nn = realloc(s->nodes, sizeof(node) * (size_t)c);
        if (!nn)
            return -1;
        s->nodes = nn;
        s->capnodes = c;
    }
    node *nd = &s->nodes[s->nnodes];
    memset(nd, 0, sizeof *nd);
    nd->bag = bag;
    nd->nbag = nbag;
    nd->parent = parent;
    nd->kid[0] = nd->kid[1] = -1;
    double m = 0;
    for (int i = 0; i < nbag; i++)
        m += f[bag[i]];
    nd->mean = nbag > 0 ? m / nbag : 0;
    return s->nnodes++;
}

/* Try to split node k.  0: split or left a leaf; -1: error. */
static int try_split(gn_optimizer *o, lamcts_state *s, int k, const double *U, const double *f, gn_error *err)
{
    int d = o->d, nb = s->nodes[k].nbag;
    const int *bag = s->nodes[k].bag;
    int p = d + 1;
    double *Z = malloc(sizeof(double) * (size_t)nb * (size_t)p);
    double *Xb = malloc(sizeof(double) * (size_t)nb * (size_t)d);
    int *lab = malloc(sizeof(int) * (size_t)nb);
    int *bag0 = malloc(sizeof(int) * (size_t)nb), *bag1 = malloc(sizeof(int) * (size_t)nb);
    gn_svm svm = {0};
    int rc = -1;
    if (!Z || !Xb || !lab || !bag0 || !bag1) {
        gn_error_set(err, "optimizer lamcts: out of memory");
        goto out;
    }
    /* spread of u over the bag, and of f */
    double tv = 0, fm = 0, fv = 0;
    for (int i = 0; i < d; i++) {
        double m = 0, v = 0;
        for (int a = 0; a < nb; a++)
            m += U[(size_t)bag[a] * d + i];
        m /= nb;
        for (int a = 0; a < nb; a++) {
            double t = U[(size_t)bag[a] * d + i] - m;
            v += t * t;
        }
        tv += v / nb;
    }
    for (int a = 0; a < nb; a++)
        fm += f[bag[a]];
    fm /= nb;
    for (int a = 0; a < nb; a++)
        fv += (f[bag[a]] - fm) * (f[bag[a]] - fm);
    fv /= nb;
    double scale = fv > 0 ? o->opt.mcts_kmeans_f_weight * sqrt(tv / fv) : 0.0;
    for (int a = 0; a < nb; a++) {
        memcpy(Xb + (size_t)a * d, U + (size_t)bag[a] * d, sizeof(double) * (size_t)d);
        memcpy(Z + (size_t)a * p, U + (size_t)bag[a] * d, sizeof(double) * (size_t)d);
        Z[(size_t)a * p + d] = (f[bag[a]] - fm) * scale;
    }
    int kr = gn__kmeans2(Z, nb, p, 5, &o->rng, lab, NULL);
    if (kr < 0) {
        gn_error_set(err, "optimizer lamcts: out of memory");
        goto out;
    }
    if (kr > 0) { /* identical rows: cannot split */
        rc = 0;
        goto out;
    }
    double m0 = 0, m1 = 0;
    int c0 = 0, c1 = 0;
    for (int a = 0; a < nb; a++) {
        if (lab[a] == 0) {
            m0 += f[bag[a]];
            c0++;
        } else {
            m1 += f[bag[a]];
            c1++;
        }
    }
    if (c0 == 0 || c1 == 0) {
        rc = 0;
        goto out;
    }
    if (m1 / c1 > m0 / c0)
        for (int a = 0; a < nb; a++)
            lab[a] = 1 - lab[a];
    if (gn__svm_fit(&svm, Xb, lab, nb, d, 1.0 / d, 1.0, err))
        goto out;
    bool pred[2] = {false, false};
    for (int a = 0; a < nb; a++)
        pred[gn__svm_predict(&svm, Xb + (size_t)a * d) == 0 ? 0 : 1] = true;
    if (!pred[0] || !pred[1]) {
        rc = 0;
        goto out;
    }
    int n0 = 0, n1 = 0;
    for (int a = 0; a < nb; a++) {
        if (lab[a] == 0)
            bag0[n0++] = bag[a];
        else
            bag1[n1++] = bag[a];
    }
    int g = new_node(s, k, bag0, n0, f);
    if (g < 0) {
        gn_error_set(err, "optimizer lamcts: out of memory");
        goto out;
    }
    bag0 = NULL;
    int b = new_node(s, k, bag1, n1, f);
    if (b < 0) {
        gn_error_set(err, "optimizer lamcts: out of memory");
        goto out;
    }
    bag1 = NULL;
    s->nodes[k].kid[0] = g;
    s->nodes[k].kid[1] = b;
    s->nodes[k].svm = svm;
    svm = (gn_svm){0};
    rc = 0;
out:
    gn__svm_free(&svm);
    free(Z);
    free(Xb);
    free(lab);
    free(bag0);
    free(bag1);
    return rc;
}

static int build_tree(gn_optimizer *o, lamcts_state *s, const double *U, const double *f, gn_error *err)
{
    clear_tree(s);
    int n = o->n;
    int *bag = malloc(sizeof(int) * (size_t)n);
    if (!bag)
        return gn_error_set(err, "optimizer lamcts: out of memory");
    for (int i = 0; i < n; i++)
        bag[i] = i;
    if (new_node(s, -1, bag, n, f) < 0) {
        free(bag);
        return gn_error_set(err, "optimizer lamcts: out of memory");
    }
    for (int k = 0; k < s->nnodes; k++) /* breadth first: kids are appended */
        if (s->nodes[k].nbag > o->opt.mcts_leaf_size && try_split(o, s, k, U, f, err))
            return -1;
    return 0;
}

/* ------------------------------------------------------------------ candidates */

typedef struct {
    double ei;
    int pos;
} ranked;

static int cmp_ranked(const void *pa, const void *pb)
{
    const ranked *a = pa, *b = pb;
    if (a->ei != b->ei)
        return a->ei > b->ei ? -1 : 1;
    return a->pos - b->pos;
}

typedef struct {
    int d;
    const int *card;
    int *X;     /* cap * d */
    double *U;  /* cap * d (cell centres) */
    int n, cap;
    gn_xset local;
} candset;

static void to_cell(const double *u, const int *card, int d, int *x)
{
    for (int i = 0; i < d; i++) {
        double v = u[i] < 0 ? 0 : u[i];
        int c = (int)(v * card[i]);
        x[i] = c < card[i] ? c : card[i] - 1;
    }
}

/* add the cell of u unless seen here or by the optimizer; -1 on out of memory */
static int cand_add(gn_optimizer *o, candset *c, const double *u)
{
    int *x = c->X + (size_t)c->n * c->d;
    to_cell(u, c->card, c->d, x);
    gn__opt_canon(o, x);
    if (gn__opt_seen(o, x) || gn__xset_find(&c->local, x) >= 0)
        return 0;
    if (gn__xset_add(&c->local, x) < 0)
        return -1;
    for (int i = 0; i < c->d; i++)
        c->U[(size_t)c->n * c->d + i] = (x[i] + 0.5) / c->card[i];
    c->n++;
    return 0;
}

/* keep candidates inside the path's region; returns the new count */
static int filter_path(lamcts_state *s, const int *path_node, const int *path_dir, int depth, candset *c)
{
    int kept = 0;
    for (int a = 0; a < c->n; a++) {
        const double *u = c->U + (size_t)a * c->d;
        bool in = true;
        for (int t = 0; t < depth && in; t++)
            if (gn__svm_predict(&s->nodes[path_node[t]].svm, u) != path_dir[t])
                in = false;
        if (!in)
            continue;
        if (kept != a) {
            memcpy(c->X + (size_t)kept * c->d, c->X + (size_t)a * c->d, sizeof(int) * (size_t)c->d);
            memcpy(c->U + (size_t)kept * c->d, u, sizeof(double) * (size_t)c->d);
        }
        kept++;
    }
    return kept;
}

/* ------------------------------------------------------------------ propose */

/* the next point of the initial Latin hypercube; 1 when they are all used */
static int draw_lhs(gn_optimizer *o, void *ctx, int *x)
{
    lamcts_state *s = ctx;
    if (s->lhs_next >= o->opt.mcts_ninits)
        return 1;
    memcpy(x, s->lhs + (size_t)(s->lhs_next++) * o->d, sizeof(int) * (size_t)o->d);
    return 0;
}

static int init_propose(gn_optimizer *o, lamcts_state *s, int *x, gn_error *err)
{
    return gn__opt_propose_loop(o, x, s->spare, o->opt.mcts_ninits, draw_lhs, s, err);
}

typedef struct {
    double f;
    int idx;
} fidx;

static int cmp_fidx_desc(const void *pa, const void *pb)
{
    const fidx *a = pa, *b = pb;
    if (a->f != b->f)
        return a->f > b->f ? -1 : 1;
    return b->idx - a->idx; /* newer first */
}

/* ---- bo_propose, step by step */

/* Samples scaled to the unit cube (cell centres) with their objective; infeasible
 * ones get the worst feasible value.  Returns the objective's range in *fmin and *fmax. */
static void unit_samples(const gn_optimizer *o, double *U, double *f, double *fmin, double *fmax)
{
    int n = o->n, d = o->d, m = o->m;
    *fmin = INFINITY, *fmax = -INFINITY;
    for (int i = 0; i < n; i++)
        if (o->feas[i]) {
            double v = o->F[(size_t)i * m];
            *fmin = v < *fmin ? v : *fmin;
            *fmax = v > *fmax ? v : *fmax;
        }
    for (int i = 0; i < n; i++) {
        f[i] = o->feas[i] ? o->F[(size_t)i * m] : *fmin;
        for (int k = 0; k < d; k++)
            U[(size_t)i * d + k] = (o->X[(size_t)i * d + k] + 0.5) / o->enc.card[k];
    }
}

/* Step 2: descend the tree by UCB (ties broken by the RNG); the path is recorded. */
static int select_leaf(gn_optimizer *o, lamcts_state *s, double frange, int *path_node, int *path_dir, int *depth)
{
    double Cp = o->opt.mcts_cp * (frange > 0 ? frange : 1.0);
    int cur = 0;
    *depth = 0;
    while (s->nodes[cur].kid[0] >= 0) {
        double uct[2];
        for (int t = 0; t < 2; t++) {
            const node *kd = &s->nodes[s->nodes[cur].kid[t]];
            uct[t] = kd->mean + 2.0 * Cp * sqrt(2.0 * sqrt((double)s->nodes[cur].nbag) / kd->nbag);
        }
        int dir = uct[0] > uct[1] ? 0 : uct[1] > uct[0] ? 1 : (int)gn_rng_below(&o->rng, 2);
        path_node[*depth] = cur;
        path_dir[*depth] = dir;
        (*depth)++;
        cur = s->nodes[cur].kid[dir];
    }
    return cur;
}

/* Step 3: the GP on the best mcts_gp_max samples, kept in history order (the fit does
 * not depend on order up to rounding; a fixed order keeps it bit-reproducible). */
static int fit_gp_best(const gn_optimizer *o, const double *U, const double *f, gn_gp *gp, gn_error *err)
{
    int n = o->n, d = o->d;
    int ng = n < o->opt.mcts_gp_max ? n : o->opt.mcts_gp_max;
    fidx *order = malloc(sizeof(fidx) * (size_t)n);
    double *Ug = malloc(sizeof(double) * (size_t)ng * (size_t)d), *fg = malloc(sizeof(double) * (size_t)ng);
    unsigned char *take = calloc((size_t)n, 1);
    int rc = -1;
    if (!order || !Ug || !fg || !take) {
        gn_error_set(err, "optimizer lamcts: out of memory (n = %d)", n);
        goto out;
    }
    for (int i = 0; i < n; i++)
        order[i] = (fidx){f[i], i};
    qsort(order, (size_t)n, sizeof(fidx), cmp_fidx_desc);
    for (int a = 0; a < ng; a++)
        take[order[a].idx] = 1;
    for (int i = 0, a = 0; i < n; i++)
        if (take[i]) {
            memcpy(Ug + (size_t)a * d, U + (size_t)i * d, sizeof(double) * (size_t)d);
            fg[a++] = f[i];
        }
    rc = gn__gp_fit(gp, Ug, fg, ng, d, o->opt.gp_alpha, err);
out:
    free(order);
    free(Ug);
    free(fg);
    free(take);
    return rc;
}

/* Step 4: candidates around the leaf's best samples (boxes of growing size: each free
 * dimension perturbed with probability e / nfree, e = 1, 2, 4, ...) plus a sixth of
 * global Sobol points, filtered to the selected path's region; an empty region is
 * retried with the whole budget over the cube, and dropped if still empty.  Returns
 * the candidates kept (c->n), or -1 when out of memory. */
static int make_candidates(gn_optimizer *o, lamcts_state *s, const node *leaf, const double *U, const double *f,
                           const int *path_node, const int *path_dir, int depth, gn_sobol *sob, double *u,
                           candset *c)
{
    const gn_opt_options *op = &o->opt;
    int d = o->d, budget = op->mcts_candidates;
    fidx *lo = malloc(sizeof(fidx) * (size_t)(leaf->nbag ? leaf->nbag : 1));
    if (!lo)
        return -1;
    for (int a = 0; a < leaf->nbag; a++)
        lo[a] = (fidx){f[leaf->bag[a]], leaf->bag[a]};
    qsort(lo, (size_t)leaf->nbag, sizeof(fidx), cmp_fidx_desc);
    int ncent = leaf->nbag < op->mcts_centers ? leaf->nbag : op->mcts_centers;
    int global = budget / 6;
    int per_box = (budget - global) / (ncent * NLEVELS);
    if (per_box < 1)
        per_box = 1;
    for (int a = 0; a < ncent; a++) {
        const double *ctr = U + (size_t)lo[a].idx * d;
        for (int lv = 0; lv < NLEVELS; lv++) {
            double pr = (double)(1 << lv) / s->nfree;
            for (int t = 0; t < per_box; t++) {
                gn_sobol_next(sob, u);
                int np = 0;
                for (int k = 0; k < d; k++) {
                    if (o->enc.card[k] > 1 && gn_rng_uniform(&o->rng) < pr)
                        np++;
                    else
                        u[k] = ctr[k];
                }
                if (np == 0 && s->nfree > 0) {
                    /* at least one: a uniformly chosen free dimension, value from a fresh point */
                    int k = s->free_dims[gn_rng_below(&o->rng, (uint64_t)s->nfree)];
                    gn_sobol_next(sob, u);
                    double v = u[k];
                    memcpy(u, ctr, sizeof(double) * (size_t)d);
                    u[k] = v;
                }
                if (c->n < c->cap && cand_add(o, c, u)) {
                    free(lo);
                    return -1;
                }
            }
        }
    }
    free(lo);
    for (int t = 0; t < global; t++) {
        gn_sobol_next(sob, u);
        if (c->n < c->cap && cand_add(o, c, u))
            return -1;
    }
    int nall = c->n;
    int kept = filter_path(s, path_node, path_dir, depth, c);
    if (kept == 0 && depth > 0) {
        c->n = 0;
        for (int t = 0; t < budget; t++) {
            gn_sobol_next(sob, u);
            if (c->n < c->cap && cand_add(o, c, u))
                return -1;
        }
        nall = c->n;
        kept = filter_path(s, path_node, path_dir, depth, c);
        if (kept == 0) /* region holds no unseen cell we found: drop the filter */
            kept = nall;
    }
    c->n = kept;
    return kept;
}

/* Step 5: rank the candidates by expected improvement; the first that options.accept
 * admits (within max_retries), else the fallback with the best as the spare. */
static int pick_by_ei(gn_optimizer *o, const gn_gp *gp, const candset *c, int *x, gn_error *err)
{
    int d = o->d;
    double best = gn__gp_best_mean(gp);
    double *mu = malloc(sizeof(double) * (size_t)c->n), *sd = malloc(sizeof(double) * (size_t)c->n);
    ranked *rk = malloc(sizeof(ranked) * (size_t)c->n);
    int rc = -1;
    if (!mu || !sd || !rk) {
        gn_error_set(err, "optimizer lamcts: out of memory (%d candidates)", c->n);
        goto out;
    }
    if (gn__gp_predict(gp, c->U, c->n, mu, sd, err))
        goto out;
    for (int a = 0; a < c->n; a++)
        rk[a] = (ranked){gn__expected_improvement(mu[a], sd[a], best, o->opt.ei_xi * gp->ystd), a};
    qsort(rk, (size_t)c->n, sizeof(ranked), cmp_ranked);
    int tries = c->n < o->opt.max_retries ? c->n : o->opt.max_retries;
    for (int a = 0; a < tries; a++) {
        const int *cx = c->X + (size_t)rk[a].pos * d;
        if (gn__opt_accepts(o, cx)) {
            memcpy(x, cx, sizeof(int) * (size_t)d);
            rc = 0;
            goto out;
        }
    }
    rc = gn__opt_fallback(o, x, c->X + (size_t)rk[0].pos * d, true, err);
out:
    free(mu);
    free(sd);
    free(rk);
    return rc;
}

static int bo_propose(gn_optimizer *o, lamcts_state *s, int *x, gn_error *err)
{
    int n = o->n, d = o->d;
    double *U = malloc(sizeof(double) * (size_t)n * (size_t)d), *f = malloc(sizeof(double) * (size_t)n);
    int *path_node = malloc(sizeof(int) * (size_t)n), *path_dir = malloc(sizeof(int) * (size_t)n);
    double *u = malloc(sizeof(double) * (size_t)d);
    gn_sobol *sob = NULL;
    gn_gp gp = {0};
    candset c = {.d = d, .card = o->enc.card, .cap = 2 * o->opt.mcts_candidates};
    int rc = -1, depth;
    double fmin, fmax;
    if (!U || !f || !path_node || !path_dir || !u)
        goto oom;
    unit_samples(o, U, f, &fmin, &fmax);
    if (build_tree(o, s, U, f, err)) /* 1. tree */
        goto out;
    const node *leaf = &s->nodes[select_leaf(o, s, fmax - fmin, path_node, path_dir, &depth)]; /* 2. */
    if (fit_gp_best(o, U, f, &gp, err)) /* 3. */
        goto out;
    c.X = malloc(sizeof(int) * (size_t)c.cap * (size_t)d);
    c.U = malloc(sizeof(double) * (size_t)c.cap * (size_t)d);
    if (!c.X || !c.U || gn__xset_init(&c.local, d))
        goto oom;
    if (gn_sobol_create(d, gn_rng_u64(&o->rng) | 1u, &sob, err))
        goto out;
    if (make_candidates(o, s, leaf, U, f, path_node, path_dir, depth, sob, u, &c) < 0) /* 4. */
        goto oom;
    rc = c.n == 0 ? gn__opt_fallback(o, x, NULL, false, err) : pick_by_ei(o, &gp, &c, x, err); /* 5. */
    goto out;
oom:
    rc = gn_error_set(err, "optimizer lamcts: out of memory (n = %d)", n);
out:
    if (sob)
        gn_sobol_free(sob);
    gn__gp_free(&gp);
    gn__xset_free(&c.local);
    free(c.X);
    free(c.U);
    free(U);
    free(f);
    free(path_node);
    free(path_dir);
    free(u);
    clear_tree(s);
    return rc;
}

static int lamcts_propose(gn_optimizer *o, int *x, gn_error *err)
{
    lamcts_state *s = o->impl;
    if (o->n < o->opt.mcts_ninits || o->n_feasible < 2) {
        if (s->lhs_next < o->opt.mcts_ninits)
            return init_propose(o, s, x, err);
        return gn__opt_fallback(o, x, NULL, false, err);
    }
    return bo_propose(o, s, x, err);
}

const gn_opt_vtable gn__opt_lamcts_vt = {
    .name = "lamcts",
    .init = lamcts_init,
    .propose = lamcts_propose,
    .observe = NULL,
    .free = lamcts_free,
};
