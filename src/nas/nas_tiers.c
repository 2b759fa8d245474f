/*
 * nas_tiers.c — latency tiers of the search: parsing "--tiers", the tier of a
 * latency, and automatic edges from the phase-1 latency sample.
 *
 * A tier is a latency band (edge[i-1], edge[i]] ms with edge[-1] = 0: the hub's
 * "best model under edge[i] but slower than the previous tier".  Auto edges are the
 * quantiles (i+1)*0.9/k of the measured phase-1 latencies, so each tier starts with
 * about the same share of the space, and the slowest tenth (often the outliers that
 * would dominate training time) is left out.  Rounding to two significant digits
 * keeps the edges readable ("0.31 ms"); equal edges after rounding are nudged apart.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpunas/nas.h"

int gn_nas_tier_of(const double *edges, int n, double ms)
{
    if (!(ms > 0.0) || !isfinite(ms))
        return -1;
    for (int i = 0; i < n; i++)
        if (ms <= edges[i])
            return i;
    return -1;
}

int gn_nas_tier_inside(const double *edges, int n, double ms, double margin)
{
    int t = gn_nas_tier_of(edges, n, ms);
    if (t < 0)
        return t;
    if (ms > edges[t] * (1 - margin) || (t > 0 && ms <= edges[t - 1] * (1 + margin)))
        return GN_NAS_TIER_BAND;
    return t;
}

int gn_nas_parse_tiers(const char *text, double *edges, int *n_out, int *auto_n, gn_error *err)
{
    *n_out = 0;
    *auto_n = 3;
    if (!text || !*text)
        return gn_error_set(err, "tiers: empty (give edges in ms like 0.5,1,2 or auto[:N])");
    if (strncmp(text, "auto", 4) == 0) {
        if (text[4] == 0)
            return 0;
        char *end;
        long k = text[4] == ':' ? strtol(text + 5, &end, 10) : -1;
        if (text[4] != ':' || *end || k < 1 || k > GN_NAS_MAX_TIERS)
            return gn_error_set(err, "tiers: '%s': expected auto or auto:N with N in 1..%d", text, GN_NAS_MAX_TIERS);
        *auto_n = (int)k;
        return 0;
    }
    const char *p = text;
    int n = 0;
    while (*p) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || !(v > 0.0) || !isfinite(v))
            return gn_error_set(err, "tiers: '%s': item %d is not a positive number of ms", text, n + 1);
        if (n == GN_NAS_MAX_TIERS)
            return gn_error_set(err, "tiers: '%s': more than %d tiers", text, GN_NAS_MAX_TIERS);
        if (n > 0 && v <= edges[n - 1])
            return gn_error_set(err, "tiers: '%s': edges must increase (%g after %g)", text, v, edges[n - 1]);
        edges[n++] = v;
        if (*end == ',')
            end++;
        else if (*end)
            return gn_error_set(err, "tiers: '%s': unexpected '%c'", text, *end);
        p = end;
    }
    if (n == 0)
        return gn_error_set(err, "tiers: '%s': no edges", text);
    *n_out = n;
    return 0;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double round2(double v)
{
    if (!(v > 0))
        return v;
    double mag = pow(10.0, floor(log10(v)) - 1.0);
    return round(v / mag) * mag;
}

int gn_nas_auto_tiers(const double *lat, int n, int k, double *edges, gn_error *err)
{
    if (k < 1 || k > GN_NAS_MAX_TIERS)
        return gn_error_set(err, "auto tiers: %d tiers (1..%d)", k, GN_NAS_MAX_TIERS);
    int m = 0;
    double *s = malloc(sizeof(double) * (n > 0 ? n : 1));
    if (!s)
        return gn_error_set(err, "auto tiers: out of memory");
    for (int i = 0; i < n; i++)
        if (lat[i] > 0 && isfinite(lat[i]))
            s[m++] = lat[i];
    if (m < 3) {
        free(s);
        return gn_error_set(err, "auto tiers: %d usable latency samples; need at least 3", m);
    }
    qsort(s, m, sizeof *s, cmp_d);
    for (int i = 0; i < k; i++) {
        double q = (i + 1) * 0.9 / k * (m - 1);
        int lo = (int)floor(q);
        double f = q - lo, v = lo + 1 < m ? s[lo] * (1 - f) + s[lo + 1] * f : s[lo];
        edges[i] = round2(v);
        if (i > 0 && edges[i] <= edges[i - 1])
            edges[i] = round2(edges[i - 1] * 1.1) > edges[i - 1] ? round2(edges[i - 1] * 1.1) : edges[i - 1] * 1.1;
    }
    free(s);
    return 0;
}
