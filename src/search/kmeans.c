/*
 * kmeans.c — 2-means clustering for LA-MCTS node splits (sklearn KMeans(n_clusters=2)
 * in the reference).
 *
 * Each restart seeds with k-means++ (first centre a uniform row, second a row drawn with
 * probability proportional to its squared distance to the first), then runs Lloyd
 * iterations (assign to the nearer centre, ties to cluster 0; recompute means) until no
 * label changes (at most 300 iterations).  A cluster that empties takes the row farthest
 * from the other centre.  Of n_init restarts the lowest inertia (sum of squared
 * distances to the own centre) wins; ties keep the earlier restart.  All randomness comes
 * from the caller's rng, so results are reproducible.
 */
#include "search/search_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double d2(const double *a, const double *b, int p)
{
    double s = 0;
    for (int k = 0; k < p; k++) {
        double t = a[k] - b[k];
        s += t * t;
    }
    return s;
}

/* One Lloyd run from centres C (2 x p); labels into lab; returns inertia. */
static double lloyd(const double *Z, int n, int p, double *C, int *lab, int *cnt)
{
    for (int i = 0; i < n; i++)
        lab[i] = -1;
    double inertia = 0;
    for (int it = 0; it < 300; it++) {
        bool changed = false;
        for (int i = 0; i < n; i++) {
            const double *z = Z + (size_t)i * p;
            int l = d2(z, C + p, p) < d2(z, C, p) ? 1 : 0;
            if (l != lab[i]) {
                lab[i] = l;
                changed = true;
            }
        }
        cnt[0] = cnt[1] = 0;
        for (int i = 0; i < n; i++)
            cnt[lab[i]]++;
        for (int c = 0; c < 2; c++) {
            if (cnt[c] > 0)
                continue;
            /* empty: move the row farthest from the other centre */
            int o = 1 - c, far = 0;
            double fd = -1;
            for (int i = 0; i < n; i++) {
                double v = d2(Z + (size_t)i * p, C + (size_t)o * p, p);
                if (v > fd) {
                    fd = v;
                    far = i;
                }
            }
            lab[far] = c;
            cnt[c]++;
            cnt[o]--;
            changed = true;
        }
        memset(C, 0, sizeof(double) * 2 * (size_t)p);
        for (int i = 0; i < n; i++)
            for (int k = 0; k < p; k++)
                C[(size_t)lab[i] * p + k] += Z[(size_t)i * p + k];
        for (int c = 0; c < 2; c++)
            for (int k = 0; k < p; k++)
                C[(size_t)c * p + k] /= cnt[c];
        if (!changed)
            break;
    }
    inertia = 0;
    for (int i = 0; i < n; i++)
        inertia += d2(Z + (size_t)i * p, C + (size_t)lab[i] * p, p);
    return inertia;
}

int gn__kmeans2(const double *Z, int n, int p, int n_init, gn_rng *rng, int *label, double *inertia)
{
    if (n < 2)
        return 1;
    bool all_equal = true;
    for (int i = 1; i < n && all_equal; i++)
        if (memcmp(Z, Z + (size_t)i * p, sizeof(double) * (size_t)p) != 0)
            all_equal = false;
    if (all_equal)
        return 1;
    double *C = malloc(sizeof(double) * 2 * (size_t)p), *w = malloc(sizeof(double) * (size_t)n);
    int *lab = malloc(sizeof(int) * (size_t)n);
    if (!C || !w || !lab) {
        free(C);
        free(w);
        free(lab);
        return -1;
    }
    double best = INFINITY;
    for (int r = 0; r < (n_init > 0 ? n_init : 1); r++) {
        int first = (int)gn_rng_below(rng, (uint64_t)n);
        double tot = 0;
        for (int i = 0; i < n; i++) {
            w[i] = d2(Z + (size_t)i * p, Z + (size_t)first * p, p);
            tot += w[i];
        }
        /* tot > 0 because not all rows are equal */
        double u = gn_rng_uniform(rng) * tot, acc = 0;
        int second = -1;
        for (int i = 0; i < n; i++) {
            acc += w[i];
            if (w[i] > 0) {
                second = i;
                if (acc > u)
                    break;
            }
        }
        memcpy(C, Z + (size_t)first * p, sizeof(double) * (size_t)p);
        memcpy(C + p, Z + (size_t)second * p, sizeof(double) * (size_t)p);
        int cnt[2];
        double in = lloyd(Z, n, p, C, lab, cnt);
        if (in < best) {
            best = in;
            memcpy(label, lab, sizeof(int) * (size_t)n);
        }
    }
    free(C);
    free(w);
    free(lab);
    if (inertia)
        *inertia = best;
    return 0;
}
