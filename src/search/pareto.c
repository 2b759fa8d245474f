/*
 * pareto.c — non-dominated sorting, Pareto fronts, 2-D hypervolume, crowding distance.
 *
 * All objectives are maximised.  a dominates b when a >= b in every objective and >
 * in at least one.  Constraint-domination (Deb et al. 2002, NSGA-II §IV): a feasible row
 * dominates every infeasible one; infeasible rows (no objective values: outside the
 * latency tier) do not dominate each other, so they all share the rank after the last
 * feasible front.
 *
 * Ranks use Deb's fast non-dominated sort: one O(m n^2) pass counts, for every row, how
 * many rows dominate it and lists the rows it dominates (stored compactly: a counting
 * pass sizes the lists first), then fronts are peeled by decrementing counts.
 *
 * Hypervolume in 2-D: the rows strictly above the reference point in both objectives,
 * sorted by obj0 descending; sweeping them, each row whose obj1 exceeds the best obj1 so
 * far adds the rectangle [ref0, obj0] x [best1, obj1].  O(n log n).
 *
 * Crowding distance (NSGA-II): per objective, members sorted by value (ties by index);
 * the two extremes get +inf, the others add (next - previous) / (max - min).
 */
#include "search/search_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool dominates(const double *a, const double *b, int m)
{
    bool strict = false;
    for (int j = 0; j < m; j++) {
        if (a[j] < b[j])
            return false;
        if (a[j] > b[j])
            strict = true;
    }
    return strict;
}

static int check_set(const double *obj, int n, int m, const unsigned char *feasible, const char *what,
                     gn_error *err)
{
    if (n < 0 || m < 1)
        return gn_error_set(err, "%s: bad sizes n = %d, m = %d", what, n, m);
    if (n > 0 && !obj)
        return gn_error_set(err, "%s: no objective values given", what);
    for (int i = 0; i < n; i++) {
        if (feasible && !feasible[i])
            continue;
        for (int j = 0; j < m; j++)
            if (!isfinite(obj[(size_t)i * m + j]))
                return gn_error_set(err, "%s: row %d objective %d is not finite (%g)", what, i, j,
                                    obj[(size_t)i * m + j]);
    }
    return 0;
}

int gn_pareto_ranks(const double *obj, int n, int m, const unsigned char *feasible, int *rank, gn_error *err)
{
    if (check_set(obj, n, m, feasible, "pareto ranks", err))
        return -1;
    if (n == 0)
        return 0;
    int *cnt = calloc((size_t)n, sizeof(int));   /* how many rows dominate i */
    int *nlist = calloc((size_t)n, sizeof(int)); /* how many rows i dominates */
    int *start = malloc(sizeof(int) * ((size_t)n + 1));
    int *front = malloc(sizeof(int) * (size_t)n), *next = malloc(sizeof(int) * (size_t)n);
    int *list = NULL;
    int rc = -1;
    if (!cnt || !nlist || !start || !front || !next)
        goto oom;
#define FEAS(i) (!feasible || feasible[i])
    for (int i = 0; i < n; i++) {
        if (!FEAS(i))
            continue;
        for (int k = i + 1; k < n; k++) {
            if (!FEAS(k))
                continue;
            const double *a = obj + (size_t)i * m, *b = obj + (size_t)k * m;
            if (dominates(a, b, m)) {
                nlist[i]++;
                cnt[k]++;
            } else if (dominates(b, a, m)) {
                nlist[k]++;
                cnt[i]++;
            }
        }
    }
    start[0] = 0;
    for (int i = 0; i < n; i++)
        start[i + 1] = start[i] + nlist[i];
    list = malloc(sizeof(int) * (size_t)(start[n] > 0 ? start[n] : 1));
    if (!list)
        goto oom;
    memset(nlist, 0, sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) {
        if (!FEAS(i))
            continue;
        for (int k = i + 1; k < n; k++) {
            if (!FEAS(k))
                continue;
            const double *a = obj + (size_t)i * m, *b = obj + (size_t)k * m;
            if (dominates(a, b, m))
                list[start[i] + nlist[i]++] = k;
            else if (dominates(b, a, m))
                list[start[k] + nlist[k]++] = i;
        }
    }
    int nf = 0, r = 0, done = 0;
    for (int i = 0; i < n; i++)
        if (FEAS(i) && cnt[i] == 0)
            front[nf++] = i;
    while (nf > 0) {
        int nn = 0;
        for (int a = 0; a < nf; a++) {
            int i = front[a];
            rank[i] = r;
            done++;
            for (int t = start[i]; t < start[i + 1]; t++)
                if (--cnt[list[t]] == 0)
                    next[nn++] = list[t];
        }
        memcpy(front, next, sizeof(int) * (size_t)nn);
        nf = nn;
        r++;
    }
    for (int i = 0; i < n; i++)
        if (!FEAS(i))
            rank[i] = r;
#undef FEAS
    rc = 0;
    goto out;
oom:
    rc = gn_error_set(err, "pareto ranks: out of memory (n = %d)", n);
out:
    free(cnt);
    free(nlist);
    free(start);
    free(front);
    free(next);
    free(list);
    return rc;
}

int gn_pareto_front(const double *obj, int n, int m, const unsigned char *feasible, int *idx, int *nfront,
                    gn_error *err)
{
    *nfront = 0;
    if (check_set(obj, n, m, feasible, "pareto front", err))
        return -1;
    for (int i = 0; i < n; i++) {
        if (feasible && !feasible[i])
            continue;
        bool dom = false;
        for (int k = 0; k < n && !dom; k++)
            if (k != i && (!feasible || feasible[k]) && dominates(obj + (size_t)k * m, obj + (size_t)i * m, m))
                dom = true;
        if (!dom)
            idx[(*nfront)++] = i;
    }
    return 0;
}

typedef struct {
    double a, b;
} pt2;

static int cmp_pt2_desc(const void *pa, const void *pb)
{
    const pt2 *p = pa, *q = pb;
    if (p->a != q->a)
        return p->a > q->a ? -1 : 1;
    if (p->b != q->b)
        return p->b > q->b ? -1 : 1;
    return 0;
}

int gn_hypervolume2(const double *obj, int n, const unsigned char *feasible, const double ref[2], double *hv,
                    gn_error *err)
{
    *hv = 0;
    if (check_set(obj, n, 2, feasible, "hypervolume", err))
        return -1;
    if (!ref || !isfinite(ref[0]) || !isfinite(ref[1]))
        return gn_error_set(err, "hypervolume: the reference point is missing or not finite");
    pt2 *p = malloc(sizeof(pt2) * (size_t)(n > 0 ? n : 1));
    if (!p)
        return gn_error_set(err, "hypervolume: out of memory (n = %d)", n);
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (feasible && !feasible[i])
            continue;
        double a = obj[2 * (size_t)i], b = obj[2 * (size_t)i + 1];
        if (a > ref[0] && b > ref[1])
            p[k++] = (pt2){a, b};
    }
    qsort(p, (size_t)k, sizeof(pt2), cmp_pt2_desc);
    double area = 0, cur = ref[1];
    for (int i = 0; i < k; i++)
        if (p[i].b > cur) {
            area += (p[i].a - ref[0]) * (p[i].b - cur);
            cur = p[i].b;
        }
    free(p);
    *hv = area;
    return 0;
}

/* ------------------------------------------------------------------ crowding */

typedef struct {
    double v;
    int pos;
} keyed;

static int cmp_keyed(const void *pa, const void *pb)
{
    const keyed *p = pa, *q = pb;
    if (p->v != q->v)
        return p->v < q->v ? -1 : 1;
    return p->pos - q->pos;
}

int gn__crowding(const double *obj, int m, const int *members, int k, double *dist)
{
    for (int a = 0; a < k; a++)
        dist[a] = 0;
    if (k <= 2) {
        for (int a = 0; a < k; a++)
            dist[a] = INFINITY;
        return 0;
    }
    keyed *s = malloc(sizeof(keyed) * (size_t)k);
    if (!s)
        return -1;
    for (int j = 0; j < m; j++) {
        for (int a = 0; a < k; a++)
            s[a] = (keyed){obj[(size_t)members[a] * m + j], a};
        qsort(s, (size_t)k, sizeof(keyed), cmp_keyed);
        double lo = s[0].v, hi = s[k - 1].v;
        dist[s[0].pos] = INFINITY;
        dist[s[k - 1].pos] = INFINITY;
        if (hi > lo)
            for (int a = 1; a < k - 1; a++)
                dist[s[a].pos] += (s[a + 1].v - s[a - 1].v) / (hi - lo);
    }
    free(s);
    return 0;
}
