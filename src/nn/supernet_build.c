/*
 * supernet_build.c — a search space to a supernet (design: gpunas/supernet.h): the
 * fixed encoding, the searched stages and their categoricals, every candidate layer
 * (decoded from the space, so it is exactly the layer a member would have), and the
 * graph of candidates and mix nodes on a gn_net.
 *
 * Candidates come from decoding members: the fixed encoding with every stage at its
 * largest layer count and one stage's kernel / expansion / se set to the candidate;
 * the stage's first decoded layer is the candidate at position 0, its second the one
 * at positions >= 1 (all later layers of a member are alike).  Other stages do not
 * change a stage's layers (their filters are fixed), so one decode per candidate
 * suffices.  If the candidates of a position disagree in output shape (the released
 * builder pads a stride-2 fused_irb with 0, so its output size depends on the kernel)
 * every decode is redone with the arch's same_pad_fix, and the supernet says so
 * (gn_supernet_same_pad); its paths are then members decoded with that fix.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/supernet_internal.h"
#include "space/space_internal.h"

typedef struct {
    gn_layer *l0, *l1;  /* [n_cand] the candidate at position 0 / positions >= 1 */
} sn_cands;

static int fail(gn_supernet *sn, gn_error *err, const char *what)
{
    return gn_error_set(err, "%s: supernet: %s", sn->space->source, what);
}

static int index_of_max(const sp_choice *c)
{
    int b = 0;
    for (int i = 1; i < c->n; i++)
        if (c->v[i] > c->v[b])
            b = i;
    return b;
}

/* The fixed encoding: opts->fixed, or largest resolution / first act / largest filters. */
static int set_fixed(gn_supernet *sn, const gn_supernet_opts *o, gn_error *err)
{
    const gn_space *s = sn->space;
    if (o && o->fixed) {
        if (gn_space_check(s, o->fixed, err))
            return -1;
        memcpy(sn->fixed, o->fixed, sizeof(int) * (size_t)sn->ndims);
    } else {
        memset(sn->fixed, 0, sizeof sn->fixed);
        if (s->res.dim >= 0)
            sn->fixed[s->res.dim] = index_of_max(&s->res);
        if (s->tail.dim >= 0)
            sn->fixed[s->tail.dim] = index_of_max(&s->tail);
        for (int i = 0; i < s->n_stages; i++) {
            const sp_choice *f = &s->stages[i].p[P_FILTERS];
            if (f->dim >= 0)
                sn->fixed[f->dim] = index_of_max(f);
        }
    }
    for (int i = 0; i < s->n_stages; i++) /* searched dims: 0 in the fixed encoding */
        for (int p = 0; p < P_COUNT; p++)
            if (i > 0 && p != P_ACT && p != P_FILTERS && s->stages[i].p[p].dim >= 0)
                sn->fixed[s->stages[i].p[p].dim] = 0;
    return 0;
}

static void stage_init(gn_supernet *sn, int si, sn_stage *st)
{
    const sp_stage *sp = &sn->space->stages[si];
    memset(st, 0, sizeof *st);
    st->si = si;
    st->number = sp->number;
    st->type = sp->type;
    st->nk = sp->p[P_KERNEL].n;
    st->ne = sp->p[P_EXP].n ? sp->p[P_EXP].n : 1;
    st->ns = sp->p[P_SE].n ? sp->p[P_SE].n : 1;
    st->n_cand = st->nk * st->ne * st->ns;
    st->cat_layers = st->cat_k = st->cat_e = st->cat_s = -1;
}

/* Decode the member x (with the fix if same_pad) and copy stage `number`'s first two
 * layers (the second only if present). */
static int decode_layers(gn_supernet *sn, const int *x, bool same_pad, int number, gn_layer *l0, gn_layer *l1,
                         gn_arch **keep, gn_error *err)
{
    gn_arch *a;
    if (gn_space_decode(sn->space, x, &a, err))
        return -1;
    if (same_pad) {
        a->same_pad_fix = true;
        if (gn_arch_resolve(a, err)) {
            gn_arch_free(a);
            return -1;
        }
    }
    int found = 0;
    for (int i = 2; i < a->n_layers - 1 && found < 2; i++)
        if (a->layers[i].stage_set && a->layers[i].stage == number)
            *(found++ == 0 ? l0 : l1) = a->layers[i];
    if (keep)
        *keep = a;
    else
        gn_arch_free(a);
    if (!found)
        return gn_error_set(err, "%s: supernet: stage %d: internal error: not in the decoded member", sn->space->source,
                            number);
    return 0;
}

static bool same_out(const gn_layer *a, const gn_layer *b)
{
    return a->out_c == b->out_c && a->out_h == b->out_h && a->out_w == b->out_w;
}

/* Every candidate layer of every stage; *mismatch: some position's candidates differ in
 * output shape.  *base: the member with the first candidates (head, tail). */
static int decode_cands(gn_supernet *sn, const int *x1, bool same_pad, sn_cands *cands, bool *mismatch,
                        gn_arch **base, gn_error *err)
{
    const gn_space *s = sn->space;
    int x[GN_ENC_MAX_DIMS];
    *mismatch = false;
    *base = NULL;
    for (int t = 0; t < sn->n_stages; t++) {
        const sn_stage *st = &sn->stages[t];
        const sp_stage *sp = &s->stages[st->si];
        for (int c = 0; c < st->n_cand; c++) {
            int ik, ie, is;
            gn__sn_factors(st, c, &ik, &ie, &is);
            memcpy(x, x1, sizeof x);
            if (sp->p[P_KERNEL].dim >= 0)
                x[sp->p[P_KERNEL].dim] = ik;
            if (sp->p[P_EXP].dim >= 0)
                x[sp->p[P_EXP].dim] = ie;
            if (sp->p[P_SE].dim >= 0)
                x[sp->p[P_SE].dim] = is;
            gn_arch **keep = t == 0 && c == 0 ? base : NULL;
            if (decode_layers(sn, x, same_pad, st->number, &cands[t].l0[c], &cands[t].l1[c], keep, err))
                return -1;
            if (!same_out(&cands[t].l0[c], &cands[t].l0[0]) || !same_out(&cands[t].l1[c], &cands[t].l1[0]))
                *mismatch = true;
        }
    }
    return 0;
}

static bool keeps_shape(const gn_layer *L)
{
    return L->in_c == L->out_c && L->in_h == L->out_h && L->in_w == L->out_w;
}

static int add_cat(gn_supernet *sn, const sn_stage *st, const char *what, int dim, int k, const int *enc, int *idx,
                   gn_error *err)
{
    if (k > GN_SUPERNET_MAX_K)
        return gn_error_set(err, "%s: supernet: stage %d: %s has %d choices, more than %d", sn->space->source,
                            st->number, what, k, GN_SUPERNET_MAX_K);
    gn_supernet_cat *c = &sn->cats[sn->n_cats];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", gn_space_dim_name(sn->space, dim));
    c->stage = st->number;
    c->k = k;
    c->offset = sn->n;
    c->dim = dim;
    for (int i = 0; i < k; i++)
        c->enc[i] = enc ? enc[i] : i;
    *idx = sn->n_cats++;
    sn->n += k;
    return 0;
}

/* Layer counts kept (see the header) and the stage's categoricals. */
static int stage_cats(gn_supernet *sn, sn_stage *st, const sn_cands *cd, gn_error *err)
{
    const sp_stage *sp = &sn->space->stages[st->si];
    const sp_choice *lc = &sp->p[P_LAYERS];
    int maxv = (int)lc->v[index_of_max(lc)], forced = -1; /* the last position that cannot be skipped */
    for (int j = 0; j < maxv; j++)
        if (!keeps_shape(j == 0 ? &cd->l0[0] : &cd->l1[0]))
            forced = j;
    int enc[GN_SUPERNET_MAX_K];
    st->n_lay = 0;
    st->lay_enc = -1;
    for (int i = 0; i < lc->n; i++) {
        if ((int)lc->v[i] <= forced)
            continue;
        if (st->n_lay == GN_SUPERNET_MAX_K)
            return gn_error_set(err, "%s: supernet: stage %d: layers has more than %d choices", sn->space->source,
                                st->number, GN_SUPERNET_MAX_K);
        enc[st->n_lay] = i;
        st->lay_val[st->n_lay++] = (int)lc->v[i];
    }
    st->n_pos = maxv;
    if (lc->dim >= 0 && st->n_lay >= 2) {
        if (add_cat(sn, st, "layers", lc->dim, st->n_lay, enc, &st->cat_layers, err))
            return -1;
    } else if (lc->dim >= 0) {
        st->lay_enc = enc[0];
    }
    if ((sp->p[P_KERNEL].dim >= 0 && add_cat(sn, st, "kernel", sp->p[P_KERNEL].dim, st->nk, NULL, &st->cat_k, err)) ||
        (sp->p[P_EXP].dim >= 0 && add_cat(sn, st, "expansion", sp->p[P_EXP].dim, st->ne, NULL, &st->cat_e, err)) ||
        (sp->p[P_SE].dim >= 0 && add_cat(sn, st, "se", sp->p[P_SE].dim, st->ns, NULL, &st->cat_s, err)))
        return -1;
    return 0;
}

void gn__sn_cand_prefix(const sn_stage *st, int j, const gn_layer *L, char *buf, size_t n)
{
    if (st->type == GN_LAYER_CONV)
        snprintf(buf, n, "supernet.s%d.p%d.k%d", st->number, j, L->kernel);
    else
        snprintf(buf, n, "supernet.s%d.p%d.k%d_e%g_se%d", st->number, j, L->kernel, L->expansion, L->use_se ? 1 : 0);
}

/* The arch the graph lowers: data, head, every (stage, position, candidate), tail. */
static gn_arch *synth_arch(gn_supernet *sn, const gn_arch *base, const sn_cands *cd, char (**prefix)[48])
{
    int n = 3;
    for (int t = 0; t < sn->n_stages; t++)
        n += sn->stages[t].n_pos * sn->stages[t].n_cand;
    gn_arch *a = calloc(1, sizeof *a);
    char src[160];
    snprintf(src, sizeof src, "supernet(%s)", sn->space->name);
    a->source = strdup(src);
    a->layers = calloc((size_t)n, sizeof *a->layers);
    *prefix = calloc((size_t)n, sizeof **prefix);
    if (!a->source || !a->layers || !*prefix) {
        gn_arch_free(a);
        free(*prefix);
        *prefix = NULL;
        return NULL;
    }
    a->resolution = base->resolution;
    a->same_pad_fix = base->same_pad_fix;
    a->n_layers = n;
    a->layers[0] = base->layers[0];
    a->layers[1] = base->layers[1];
    snprintf((*prefix)[1], 48, "supernet.head");
    int li = 2;
    for (int t = 0; t < sn->n_stages; t++) {
        const sn_stage *st = &sn->stages[t];
        for (int j = 0; j < st->n_pos; j++)
            for (int c = 0; c < st->n_cand; c++, li++) {
                a->layers[li] = j == 0 ? cd[t].l0[c] : cd[t].l1[c];
                a->layers[li].drop_path = 0;
                gn__sn_cand_prefix(st, j, &a->layers[li], (*prefix)[li], 48);
            }
    }
    a->layers[li] = base->layers[base->n_layers - 1];
    snprintf((*prefix)[li], 48, "supernet.tail");
    return a;
}

/* Lower the synthetic arch with a mix node per position. */
static int make_graph(gn_supernet *sn, gn_backend *be, gn_arch *a, char (*prefix)[48], gn_error *err)
{
    gn_net *net = gn__net_new(a, be);
    net->layer_prefix = prefix;
    sn->net = net;
    int x = gn__net_lower_layer(net, 1, 0), li = 2, p = 0;
    int *in = NULL;
    for (int t = 0; t < sn->n_stages; t++) {
        sn_stage *st = &sn->stages[t];
        st->first_pos = p;
        st->first_layer = li;
        int *grown = realloc(in, sizeof *in * (size_t)(st->n_cand + 1));
        if (!grown) {
            free(in);
            return fail(sn, err, "out of memory");
        }
        in = grown;
        int min_lay = st->lay_val[0];
        for (int i = 1; i < st->n_lay; i++)
            if (st->lay_val[i] < min_lay)
                min_lay = st->lay_val[i];
        for (int j = 0; j < st->n_pos; j++, p++) {
            sn_pos *ps = &sn->pos[p];
            ps->stage = t;
            ps->j = j;
            ps->skip = st->cat_layers >= 0 && min_lay <= j;
            int first = li;
            for (int c = 0; c < st->n_cand; c++)
                in[c] = gn__net_lower_layer(net, li++, x);
            if (ps->skip)
                in[st->n_cand] = x;
            x = gn__net_add_mix(net, first, in, st->n_cand + (ps->skip ? 1 : 0), &ps->node);
        }
    }
    free(in);
    gn__net_lower_layer(net, li, x);
    if (gn__net_finish(net, err))
        return -1;
    a->params = (int64_t)net->n_train;
    gn_train_opts o = {.dropout = false, .drop_path = false, .bn_momentum = 0.1f, .seed = 1};
    gn_net_set_train_opts(net, &o);
    return 0;
}

static int alloc_stages(gn_supernet *sn, sn_cands **cd, gn_error *err)
{
    const gn_space *s = sn->space;
    sn->n_stages = s->n_stages - 1;
    sn->stages = calloc((size_t)sn->n_stages, sizeof *sn->stages);
    sn->cats = calloc((size_t)sn->n_stages * 4, sizeof *sn->cats);
    *cd = calloc((size_t)sn->n_stages, sizeof **cd);
    if (!sn->stages || !sn->cats || !*cd)
        return fail(sn, err, "out of memory");
    for (int t = 0; t < sn->n_stages; t++) {
        stage_init(sn, t + 1, &sn->stages[t]);
        (*cd)[t].l0 = calloc((size_t)sn->stages[t].n_cand, sizeof(gn_layer));
        (*cd)[t].l1 = calloc((size_t)sn->stages[t].n_cand, sizeof(gn_layer));
        if (!(*cd)[t].l0 || !(*cd)[t].l1)
            return fail(sn, err, "out of memory");
    }
    return 0;
}

static void free_cands(sn_cands *cd, int n)
{
    for (int t = 0; cd && t < n; t++) {
        free(cd[t].l0);
        free(cd[t].l1);
    }
    free(cd);
}

static int build(gn_supernet *sn, gn_backend *be, const gn_supernet_opts *opts, gn_error *err)
{
    const gn_space *s = sn->space;
    sn_cands *cd = NULL;
    gn_arch *base = NULL;
    if (set_fixed(sn, opts, err) || alloc_stages(sn, &cd, err)) {
        free_cands(cd, sn->n_stages);
        return -1;
    }
    int x1[GN_ENC_MAX_DIMS];
    memcpy(x1, sn->fixed, sizeof x1);
    for (int i = 1; i < s->n_stages; i++)
        if (s->stages[i].p[P_LAYERS].dim >= 0)
            x1[s->stages[i].p[P_LAYERS].dim] = index_of_max(&s->stages[i].p[P_LAYERS]);
    bool mismatch;
    int rc = decode_cands(sn, x1, false, cd, &mismatch, &base, err);
    if (!rc && mismatch) {
        gn_arch_free(base);
        sn->same_pad = true;
        rc = decode_cands(sn, x1, true, cd, &mismatch, &base, err);
        if (!rc && mismatch)
            rc = fail(sn, err, "the candidates of a layer position differ in output shape even with same padding");
    }
    for (int t = 0; t < sn->n_stages && !rc; t++)
        rc = stage_cats(sn, &sn->stages[t], &cd[t], err);
    if (!rc && sn->n_cats == 0)
        rc = fail(sn, err, "no stage has a searched choice (kernel, expansion, se or layers): nothing to search");
    for (int t = 0; t < sn->n_stages && !rc; t++)
        sn->n_pos += sn->stages[t].n_pos;
    if (!rc && !(sn->pos = calloc((size_t)sn->n_pos, sizeof *sn->pos)))
        rc = fail(sn, err, "out of memory");
    if (!rc) {
        char(*prefix)[48] = NULL;
        gn_arch *a = synth_arch(sn, base, cd, &prefix);
        rc = a ? make_graph(sn, be, a, prefix, err) : fail(sn, err, "out of memory");
    }
    if (!rc && opts && opts->shared)
        rc = gn__sn_share_build(sn, err);
    if (!rc && opts && opts->dropout) {
        gn_train_opts o = {.dropout = true, .drop_path = false, .bn_momentum = 0.1f, .seed = 1};
        gn_net_set_train_opts(sn->net, &o);
    }
    gn_arch_free(base);
    free_cands(cd, sn->n_stages);
    return rc;
}

int gn_supernet_create(const gn_space *s, gn_backend *be, const gn_supernet_opts *opts, gn_supernet **out,
                       gn_error *err)
{
    *out = NULL;
    if (!s || !be)
        return gn_error_set(err, "supernet: no %s given", s ? "backend" : "space");
    gn_supernet *sn = calloc(1, sizeof *sn);
    if (!sn)
        return gn_error_set(err, "%s: supernet: out of memory", s->source);
    sn->space = s;
    sn->ndims = gn_space_desc(s)->ndims;
    if (build(sn, be, opts, err)) {
        gn_supernet_free(sn);
        return -1;
    }
    *out = sn;
    return 0;
}

void gn_supernet_free(gn_supernet *sn)
{
    if (!sn)
        return;
    gn__sn_share_free(sn);
    gn_net_free(sn->net);
    free(sn->cats);
    free(sn->stages);
    free(sn->pos);
    free(sn->zeta);
    free(sn->w);
    free(sn);
}

int gn_supernet_num_cats(const gn_supernet *sn) { return sn->n_cats; }
const gn_supernet_cat *gn_supernet_get_cat(const gn_supernet *sn, int m)
{
    return m >= 0 && m < sn->n_cats ? &sn->cats[m] : NULL;
}
int gn_supernet_n(const gn_supernet *sn) { return sn->n; }
gn_net *gn_supernet_net(gn_supernet *sn) { return sn->net; }
const int *gn_supernet_fixed(const gn_supernet *sn) { return sn->fixed; }
const gn_space *gn_supernet_space(const gn_supernet *sn) { return sn->space; }
bool gn_supernet_same_pad(const gn_supernet *sn) { return sn->same_pad; }
int gn_supernet_init(gn_supernet *sn, uint64_t seed, gn_error *err)
{
    if (gn_net_init(sn->net, seed, err))
        return -1;
    gn__sn_share_gather(sn);
    return 0;
}
