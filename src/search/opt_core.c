/*
 * opt_core.c — what every optimizer kind shares (see gpunas/search.h for the contract).
 *
 * The core owns the history (every observation in call order), the set of points
 * observed or in flight, the options and the single rng.  The kinds (opt_random.c,
 * opt_evolution.c, opt_lamcts.c, opt_nsga2.c) only generate candidates and keep their own
 * state; duplicate avoidance and the last-resort "random unseen point" live here so they
 * behave the same in all kinds.
 *
 * The seen-set is an open-addressing hash table over the encoding (FNV-1a over the ints,
 * then a splitmix finaliser); it answers membership only, so its layout never influences
 * a proposal.  The random-unseen fallback draws uniform points until an unseen one
 * appears (64 tries); then, for spaces of at most 2^20 points, it enumerates the unseen
 * points and picks the r-th for a random r, so it can never miss one (both steps are
 * uniform over the unseen points); larger spaces keep drawing (seen points are a
 * vanishing fraction there).
 */
#include "search/search_internal.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ xset */

static uint64_t hash_x(const int *x, int d)
{
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < d; i++) {
        uint32_t v = (uint32_t)x[i];
        for (int b = 0; b < 4; b++) {
            h ^= (v >> (8 * b)) & 0xffu;
            h *= 1099511628211ULL;
        }
    }
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 29;
    return h;
}

int gn__xset_init(gn_xset *s, int d)
{
    memset(s, 0, sizeof *s);
    s->d = d;
    s->nslot = 64;
    s->slot = malloc(sizeof(int) * (size_t)s->nslot);
    if (!s->slot)
        return -1;
    for (int i = 0; i < s->nslot; i++)
        s->slot[i] = -1;
    return 0;
}

void gn__xset_free(gn_xset *s)
{
    free(s->keys);
    free(s->ent);
    free(s->slot);
    memset(s, 0, sizeof *s);
}

static int xset_lookup(const gn_xset *s, const int *x, uint64_t h, int *slot_out)
{
    size_t mask = (size_t)s->nslot - 1, i = (size_t)h & mask;
    for (;;) {
        int e = s->slot[i];
        if (e < 0) {
            *slot_out = (int)i;
            return -1;
        }
        if (s->ent[e].hash == h && memcmp(s->keys + s->ent[e].off, x, sizeof(int) * (size_t)s->d) == 0)
            return e;
        i = (i + 1) & mask;
    }
}

int gn__xset_find(const gn_xset *s, const int *x)
{
    int slot;
    return xset_lookup(s, x, hash_x(x, s->d), &slot);
}

static int xset_grow(gn_xset *s)
{
    int ns = s->nslot * 2;
    int *sl = malloc(sizeof(int) * (size_t)ns);
    if (!sl)
        return -1;
    for (int i = 0; i < ns; i++)
        sl[i] = -1;
    for (int e = 0; e < s->nent; e++) {
        size_t i = (size_t)s->ent[e].hash & ((size_t)ns - 1);
        while (sl[i] >= 0)
            i = (i + 1) & ((size_t)ns - 1);
        sl[i] = e;
    }
    free(s->slot);
    s->slot = sl;
    s->nslot = ns;
    return 0;
}

int gn__xset_add(gn_xset *s, const int *x)
{
    uint64_t h = hash_x(x, s->d);
    int slot;
    int e = xset_lookup(s, x, h, &slot);
    if (e >= 0)
        return e;
    if (s->nent == s->cap_ent) {
        int nc = s->cap_ent ? s->cap_ent * 2 : 64;
        gn_xset_entry *ne = realloc(s->ent, sizeof *ne * (size_t)nc);
        if (!ne)
            return -1;
        s->ent = ne;
        int *nk = realloc(s->keys, sizeof(int) * (size_t)nc * (size_t)(s->d > 0 ? s->d : 1));
        if (!nk)
            return -1;
        s->keys = nk;
        s->cap_ent = nc;
    }
    e = s->nent++;
    s->ent[e] = (gn_xset_entry){.hash = h, .off = e * s->d, .observed = 0, .inflight = 0};
    memcpy(s->keys + s->ent[e].off, x, sizeof(int) * (size_t)s->d);
    s->slot[slot] = e;
    if ((size_t)s->nent * 2 > (size_t)s->nslot && xset_grow(s) != 0)
        return -1;
    return e;
}

/* ------------------------------------------------------------------ options */

void gn_opt_options_default(gn_opt_options *o)
{
    memset(o, 0, sizeof *o);
    o->seed = 0;
    o->n_objectives = 1;
    o->max_retries = 200;
    o->random_sobol = 1;
    o->evo_population = 20;
    o->evo_sample = 5;
    o->mcts_ninits = 20;
    o->mcts_leaf_size = 20;
    o->mcts_cp = 0.1;
    o->mcts_candidates = 4096;
    o->mcts_centers = 8;
    o->mcts_gp_max = 250;
    o->mcts_kmeans_f_weight = 1.0;
    o->gp_alpha = 0.01;
    o->ei_xi = 0.001;
    o->nsga_population = 20;
    o->nsga_crossover = 0.9;
    o->nsga_mutation = 0.0;
}

static int check_options(const char *kind, const gn_opt_options *o, gn_error *err)
{
#define BAD(field, fmt, ...) return gn_error_set(err, "optimizer %s: option %s: " fmt, kind, field, __VA_ARGS__)
    if (o->n_objectives < 1 || o->n_objectives > GN_OPT_MAX_OBJECTIVES)
        BAD("n_objectives", "%d is outside [1, %d]", o->n_objectives, GN_OPT_MAX_OBJECTIVES);
    if (o->max_retries < 1)
        BAD("max_retries", "%d must be >= 1", o->max_retries);
    if (o->evo_population < 1)
        BAD("evo_population", "%d must be >= 1", o->evo_population);
    if (o->evo_sample < 1 || o->evo_sample > o->evo_population)
        BAD("evo_sample", "%d is outside [1, evo_population = %d]", o->evo_sample, o->evo_population);
    if (o->mcts_ninits < 2)
        BAD("mcts_ninits", "%d must be >= 2", o->mcts_ninits);
    if (o->mcts_leaf_size < 2)
        BAD("mcts_leaf_size", "%d must be >= 2", o->mcts_leaf_size);
    if (!(o->mcts_cp >= 0) || !isfinite(o->mcts_cp))
        BAD("mcts_cp", "%g must be finite and >= 0", o->mcts_cp);
    if (o->mcts_candidates < 16 || o->mcts_candidates > 1000000)
        BAD("mcts_candidates", "%d is outside [16, 1000000]", o->mcts_candidates);
    if (o->mcts_centers < 1)
        BAD("mcts_centers", "%d must be >= 1", o->mcts_centers);
    if (o->mcts_gp_max < 2)
        BAD("mcts_gp_max", "%d must be >= 2", o->mcts_gp_max);
    if (!(o->mcts_kmeans_f_weight >= 0) || !isfinite(o->mcts_kmeans_f_weight))
        BAD("mcts_kmeans_f_weight", "%g must be finite and >= 0", o->mcts_kmeans_f_weight);
    if (!(o->gp_alpha > 0) || !isfinite(o->gp_alpha))
        BAD("gp_alpha", "%g must be finite and > 0", o->gp_alpha);
    if (!(o->ei_xi >= 0) || !isfinite(o->ei_xi))
        BAD("ei_xi", "%g must be finite and >= 0", o->ei_xi);
    if (o->nsga_population < 2)
        BAD("nsga_population", "%d must be >= 2", o->nsga_population);
    if (!(o->nsga_crossover >= 0 && o->nsga_crossover <= 1))
        BAD("nsga_crossover", "%g is outside [0, 1]", o->nsga_crossover);
    if (!(o->nsga_mutation <= 1) || isnan(o->nsga_mutation))
        BAD("nsga_mutation", "%g must be <= 1", o->nsga_mutation);
#undef BAD
    return 0;
}

/* ------------------------------------------------------------------ life cycle */

static const gn_opt_vtable *find_kind(const char *kind)
{
    static const gn_opt_vtable *const kinds[] = {&gn__opt_random_vt, &gn__opt_evolution_vt, &gn__opt_lamcts_vt,
                                                 &gn__opt_nsga2_vt};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (strcmp(kinds[i]->name, kind) == 0)
            return kinds[i];
    return NULL;
}

int gn_opt_create(const char *kind, const gn_enc_desc *enc, const gn_opt_options *opt, gn_optimizer **out,
                  gn_error *err)
{
    *out = NULL;
    if (!kind)
        return gn_error_set(err, "optimizer: no kind given (random, evolution, lamcts, nsga2)");
    const gn_opt_vtable *vt = find_kind(kind);
    if (!vt)
        return gn_error_set(err, "optimizer: unknown kind '%s' (random, evolution, lamcts, nsga2)", kind);
    if (!enc || enc->ndims < 1 || enc->ndims > GN_ENC_MAX_DIMS)
        return gn_error_set(err, "optimizer %s: encoding: ndims %d is outside [1, %d]", kind, enc ? enc->ndims : 0,
                            GN_ENC_MAX_DIMS);
    for (int i = 0; i < enc->ndims; i++)
        if (enc->card[i] < 1)
            return gn_error_set(err, "optimizer %s: encoding: card[%d] = %d must be >= 1", kind, i, enc->card[i]);
    gn_opt_options defaults;
    if (!opt) {
        gn_opt_options_default(&defaults);
        opt = &defaults;
    }
    if (check_options(kind, opt, err))
        return -1;

    gn_optimizer *o = calloc(1, sizeof *o);
    if (!o)
        return gn_error_set(err, "optimizer %s: out of memory", kind);
    o->vt = vt;
    o->enc = *enc;
    o->opt = *opt;
    o->d = enc->ndims;
    o->m = opt->n_objectives;
    gn_rng_seed(&o->rng, opt->seed);
    o->space_size = 1;
    for (int i = 0; i < o->d; i++) {
        uint64_t c = (uint64_t)enc->card[i];
        o->space_size = o->space_size > UINT64_MAX / c ? UINT64_MAX : o->space_size * c;
    }
    if (gn__xset_init(&o->seen, o->d)) {
        free(o);
        return gn_error_set(err, "optimizer %s: out of memory", kind);
    }
    if (vt->init(o, err)) {
        gn_opt_free(o);
        return -1;
    }
    *out = o;
    return 0;
}

void gn_opt_free(gn_optimizer *o)
{
    if (!o)
        return;
    if (o->vt && o->vt->free)
        o->vt->free(o);
    gn__xset_free(&o->seen);
    free(o->X);
    free(o->F);
    free(o->feas);
    free(o);
}

const char *gn_opt_name(const gn_optimizer *o) { return o ? o->vt->name : "(null)"; }
int gn_opt_count(const gn_optimizer *o) { return o->n; }

int gn_opt_best(const gn_optimizer *o, double *best, int *x_best)
{
    int bi = -1;
    for (int i = 0; i < o->n; i++)
        if (o->feas[i] && (bi < 0 || o->F[(size_t)i * o->m] > o->F[(size_t)bi * o->m]))
            bi = i;
    if (bi < 0)
        return -1;
    if (best)
        *best = o->F[(size_t)bi * o->m];
    if (x_best)
        memcpy(x_best, o->X + (size_t)bi * o->d, sizeof(int) * (size_t)o->d);
    return 0;
}

/* ------------------------------------------------------------------ propose / observe */

static int check_x(const gn_optimizer *o, const int *x, const char *what, gn_error *err)
{
    for (int i = 0; i < o->d; i++)
        if (x[i] < 0 || x[i] >= o->enc.card[i])
            return gn_error_set(err, "optimizer %s: %s: x[%d] = %d is outside [0, %d)", o->vt->name, what, i, x[i],
                                o->enc.card[i]);
    return 0;
}

void gn__opt_canon(const gn_optimizer *o, int *x)
{
    if (o->opt.canon)
        o->opt.canon(o->opt.canon_ctx, x, x);
}

int gn_opt_propose(gn_optimizer *o, int *x, gn_error *err)
{
    if (o->vt->propose(o, x, err))
        return -1;
    gn__opt_canon(o, x); /* the kinds propose canonical points already; this is a guard */
    /* a kind must only produce points in the box; checked so a bug cannot leak out */
    if (check_x(o, x, "internal error in proposal", err))
        return -1;
    int e = gn__xset_add(&o->seen, x);
    if (e < 0)
        return gn_error_set(err, "optimizer %s: out of memory", o->vt->name);
    o->seen.ent[e].inflight++;
    return 0;
}

int gn_opt_propose_batch(gn_optimizer *o, int k, int *X, gn_error *err)
{
    if (k < 0)
        return gn_error_set(err, "optimizer %s: batch size %d must be >= 0", o->vt->name, k);
    for (int i = 0; i < k; i++)
        if (gn_opt_propose(o, X + (size_t)i * o->d, err))
            return -1;
    return 0;
}

static int observe_point(gn_optimizer *o, const int *x, const double *obj, bool feasible, gn_error *err);

int gn_opt_observe(gn_optimizer *o, const int *x, const double *obj, bool feasible, gn_error *err)
{
    if (!x)
        return gn_error_set(err, "optimizer %s: observe: no point given", o->vt->name);
    if (check_x(o, x, "observe", err))
        return -1;
    int *cx = NULL;
    if (o->opt.canon) { /* observe the representative */
        if (!(cx = malloc(sizeof(int) * (size_t)o->d)))
            return gn_error_set(err, "optimizer %s: out of memory", o->vt->name);
        o->opt.canon(o->opt.canon_ctx, x, cx);
        int rc = observe_point(o, cx, obj, feasible, err);
        free(cx);
        return rc;
    }
    return observe_point(o, x, obj, feasible, err);
}

static int observe_point(gn_optimizer *o, const int *x, const double *obj, bool feasible, gn_error *err)
{
    if (feasible) {
        if (!obj)
            return gn_error_set(err, "optimizer %s: observe: feasible point without objectives", o->vt->name);
        for (int j = 0; j < o->m; j++)
            if (!isfinite(obj[j]))
                return gn_error_set(err, "optimizer %s: observe: objective %d is not finite (%g)", o->vt->name, j,
                                    obj[j]);
    }
    if (o->n == o->cap) {
        int nc = o->cap ? o->cap * 2 : 64;
        int *nx = realloc(o->X, sizeof(int) * (size_t)nc * (size_t)o->d);
        if (nx)
            o->X = nx;
        double *nf = realloc(o->F, sizeof(double) * (size_t)nc * (size_t)o->m);
        if (nf)
            o->F = nf;
        unsigned char *nfe = realloc(o->feas, (size_t)nc);
        if (nfe)
            o->feas = nfe;
        if (!nx || !nf || !nfe)
            return gn_error_set(err, "optimizer %s: out of memory", o->vt->name);
        o->cap = nc;
    }
    int e = gn__xset_add(&o->seen, x);
    if (e < 0)
        return gn_error_set(err, "optimizer %s: out of memory", o->vt->name);
    if (o->seen.ent[e].inflight > 0)
        o->seen.ent[e].inflight--;
    o->seen.ent[e].observed++;
    int idx = o->n++;
    memcpy(o->X + (size_t)idx * o->d, x, sizeof(int) * (size_t)o->d);
    for (int j = 0; j < o->m; j++)
        o->F[(size_t)idx * o->m + j] = feasible ? obj[j] : 0.0;
    o->feas[idx] = feasible ? 1 : 0;
    if (feasible)
        o->n_feasible++;
    return o->vt->observe ? o->vt->observe(o, idx, err) : 0;
}

/* ------------------------------------------------------------------ helpers for kinds */

bool gn__opt_seen(const gn_optimizer *o, const int *x)
{
    int e = gn__xset_find(&o->seen, x);
    return e >= 0 && (o->seen.ent[e].observed > 0 || o->seen.ent[e].inflight > 0);
}

bool gn__opt_accepts(const gn_optimizer *o, const int *x)
{
    return !o->opt.accept || o->opt.accept(o->opt.accept_ctx, x) != 0;
}

void gn__opt_uniform(gn_optimizer *o, int *x)
{
    for (int i = 0; i < o->d; i++)
        x[i] = (int)gn_rng_below(&o->rng, (uint64_t)o->enc.card[i]);
}

int gn__opt_free_dims(const gn_optimizer *o, int *dims)
{
    int k = 0;
    for (int i = 0; i < o->d; i++)
        if (o->enc.card[i] > 1)
            dims[k++] = i;
    return k;
}

#define ENUM_LIMIT (1ULL << 20)

static int distinct_seen(const gn_optimizer *o)
{
    int k = 0;
    for (int e = 0; e < o->seen.nent; e++)
        if (o->seen.ent[e].observed > 0 || o->seen.ent[e].inflight > 0)
            k++;
    return k;
}

/* x (length d) is its own representative */
static bool is_canonical(const gn_optimizer *o, const int *x)
{
    if (!o->opt.canon)
        return true;
    int y[GN_ENC_MAX_DIMS];
    o->opt.canon(o->opt.canon_ctx, x, y);
    return memcmp(x, y, sizeof(int) * (size_t)o->d) == 0;
}

/* The points an optimizer can propose: all of the box, or its canonical points
 * (counted once by enumeration; spaces of at most ENUM_LIMIT points).  scratch: d ints. */
static uint64_t canonical_count(gn_optimizer *o, int *scratch)
{
    if (!o->opt.canon)
        return o->space_size;
    if (o->canon_size)
        return o->canon_size;
    uint64_t n = 0;
    for (int i = 0; i < o->d; i++)
        scratch[i] = 0;
    for (;;) {
        n += is_canonical(o, scratch);
        int i = 0;
        while (i < o->d && ++scratch[i] == o->enc.card[i])
            scratch[i++] = 0;
        if (i == o->d)
            break;
    }
    o->canon_size = n;
    return n;
}

int gn__opt_random_unseen(gn_optimizer *o, int *x, gn_error *err)
{
    /* rejection sampling first (uniform over the unseen points when it succeeds) */
    for (int t = 0; t < 64; t++) {
        gn__opt_uniform(o, x);
        gn__opt_canon(o, x);
        if (!gn__opt_seen(o, x))
            return 0;
    }
    if (o->space_size <= ENUM_LIMIT) {
        uint64_t nseen = (uint64_t)distinct_seen(o), npoints = canonical_count(o, x);
        if (nseen >= npoints)
            return gn_error_set(err, "optimizer %s: space exhausted: all %llu points were already proposed or observed",
                                o->vt->name, (unsigned long long)npoints);
        uint64_t r = gn_rng_below(&o->rng, npoints - nseen);
        /* enumerate in mixed radix (dimension 0 fastest) and take the r-th unseen
         * (canonical) point */
        for (int i = 0; i < o->d; i++)
            x[i] = 0;
        for (;;) {
            if (is_canonical(o, x) && !gn__opt_seen(o, x)) {
                if (r == 0)
                    return 0;
                r--;
            }
            int i = 0;
            while (i < o->d && ++x[i] == o->enc.card[i])
                x[i++] = 0;
            if (i == o->d)
                break;
        }
        return gn_error_set(err, "optimizer %s: internal error: unseen point count is inconsistent", o->vt->name);
    }
    for (int t = 0; t < 100000; t++) {
        gn__opt_uniform(o, x);
        gn__opt_canon(o, x);
        if (!gn__opt_seen(o, x))
            return 0;
    }
    return gn_error_set(err, "optimizer %s: no unseen point found in 100064 uniform draws", o->vt->name);
}

int gn__opt_propose_loop(gn_optimizer *o, int *x, int *spare, int limit, gn__opt_draw_fn draw, void *ctx,
                        gn_error *err)
{
    bool have_spare = false;
    assert(limit >= 0 && spare && draw);
    for (int t = 0; t < limit; t++) {
        if (draw(o, ctx, x))
            break;
        gn__opt_canon(o, x);
        if (gn__opt_seen(o, x))
            continue;
        if (gn__opt_accepts(o, x))
            return 0;
        if (!have_spare) {
            memcpy(spare, x, sizeof(int) * (size_t)o->d);
            have_spare = true;
        }
    }
    return gn__opt_fallback(o, x, spare, have_spare, err);
}

int gn__opt_fallback(gn_optimizer *o, int *x, const int *spare, bool have_spare, gn_error *err)
{
    int *last = malloc(sizeof(int) * (size_t)o->d);
    if (!last)
        return gn_error_set(err, "optimizer %s: out of memory", o->vt->name);
    int rc = -1;
    for (int t = 0; t < o->opt.max_retries; t++) {
        if (gn__opt_random_unseen(o, x, err))
            goto out;
        if (gn__opt_accepts(o, x)) {
            rc = 0;
            goto out;
        }
        memcpy(last, x, sizeof(int) * (size_t)o->d);
    }
    memcpy(x, have_spare ? spare : last, sizeof(int) * (size_t)o->d);
    rc = 0;
out:
    free(last);
    return rc;
}
