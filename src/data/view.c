/*
 * view.c — index views of a dataset: all, seeded train/val split, seeded subset.
 *
 * Design
 *   A view is a list of indices into its dataset, so splits and subsets copy no pixels.
 *   Split and subset draw one Fisher-Yates permutation from gn_rng seeded with the given
 *   seed and take its first part; each part's indices are then sorted, so a view lists
 *   images in dataset order (the loader shuffles on its own; an unshuffled evaluation
 *   pass reads memory in order) and the chosen set depends only on (n, seed).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"
#include "gpunas/rng.h"

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* malloc'd permutation of 0..n-1 */
static int32_t *permutation(int n, uint64_t seed)
{
    int32_t *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    if (!p)
        return NULL;
    for (int i = 0; i < n; i++)
        p[i] = i;
    gn_rng r;
    gn_rng_seed(&r, seed);
    for (int i = n - 1; i > 0; i--) {
        int j = (int)gn_rng_below(&r, (uint64_t)i + 1);
        int32_t t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
    return p;
}

static int view_alloc(gn_dataset_view *v, const gn_dataset *d, int n)
{
    v->data = d;
    v->n = n;
    v->index = malloc((size_t)(n > 0 ? n : 1) * sizeof *v->index);
    return v->index ? 0 : -1;
}

int gn_view_all(const gn_dataset *d, gn_dataset_view *out, gn_error *err)
{
    if (!out)
        return gn_error_set(err, "view: NULL output");
    memset(out, 0, sizeof *out);
    if (!d || d->n < 1)
        return gn_error_set(err, "view: empty dataset");
    if (view_alloc(out, d, d->n))
        return gn_error_set(err, "%s: view: out of memory", d->source);
    for (int i = 0; i < d->n; i++)
        out->index[i] = i;
    return 0;
}

int gn_view_split(const gn_dataset *d, double val_fraction, uint64_t seed, gn_dataset_view *train,
                  gn_dataset_view *val, gn_error *err)
{
    if (!train || !val)
        return gn_error_set(err, "split: NULL output");
    memset(train, 0, sizeof *train);
    memset(val, 0, sizeof *val);
    if (!d || d->n < 1)
        return gn_error_set(err, "split: empty dataset");
    if (!(val_fraction >= 0.0 && val_fraction < 1.0))
        return gn_error_set(err, "%s: split: validation fraction %g not in [0, 1)", d->source, val_fraction);
    int nval = (int)llround((double)d->n * val_fraction);
    if (nval >= d->n)
        return gn_error_set(err, "%s: split: validation fraction %g of %d images leaves no training images",
                            d->source, val_fraction, d->n);
    int32_t *p = permutation(d->n, seed);
    if (!p || view_alloc(val, d, nval) || view_alloc(train, d, d->n - nval)) {
        free(p);
        gn_view_free(train);
        gn_view_free(val);
        return gn_error_set(err, "%s: split: out of memory", d->source);
    }
    memcpy(val->index, p, (size_t)nval * sizeof *p);
    memcpy(train->index, p + nval, (size_t)(d->n - nval) * sizeof *p);
    free(p);
    qsort(val->index, (size_t)val->n, sizeof *val->index, cmp_i32);
    qsort(train->index, (size_t)train->n, sizeof *train->index, cmp_i32);
    return 0;
}

int gn_view_subset(const gn_dataset_view *v, int m, uint64_t seed, gn_dataset_view *out, gn_error *err)
{
    if (!out)
        return gn_error_set(err, "subset: NULL output");
    memset(out, 0, sizeof *out);
    if (!v || !v->data || !v->index || v->n < 1)
        return gn_error_set(err, "subset: empty view");
    if (m < 1 || m > v->n)
        return gn_error_set(err, "%s: subset: size %d not in [1, %d]", v->data->source, m, v->n);
    int32_t *p = permutation(v->n, seed);
    if (!p || view_alloc(out, v->data, m)) {
        free(p);
        gn_view_free(out);
        return gn_error_set(err, "%s: subset: out of memory", v->data->source);
    }
    qsort(p, (size_t)m, sizeof *p, cmp_i32); /* positions in v, in order */
    for (int i = 0; i < m; i++)
        out->index[i] = v->index[p[i]];
    free(p);
    return 0;
}

void gn_view_free(gn_dataset_view *v)
{
    if (!v)
        return;
    free(v->index);
    memset(v, 0, sizeof *v);
}
