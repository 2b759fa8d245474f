/*
 * lat_stats.c — summary statistics of latency samples and the stability rule
 * (see gpunas/latency.h).
 *
 * Quantiles interpolate linearly at position q*(n-1) of the sorted samples (numpy's
 * default), so tests can compare against hand computations.  The 95% confidence
 * interval of the median is the distribution-free one from order statistics: with
 * 1-based ranks j = floor(n/2 - 0.98 sqrt(n)) and k = ceil(1 + n/2 + 0.98 sqrt(n)),
 * clamped to [1, n] (the binomial(n, 1/2) normal approximation); it needs no
 * assumption about the shape of the latency distribution, which is skewed.
 * Block medians: GN_LAT_BLOCKS consecutive slices of the runs in run order.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpunas/latency.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double gn_lat_quantile(const double *sorted, int n, double q)
{
    if (n <= 0)
        return NAN;
    if (q <= 0)
        return sorted[0];
    if (q >= 1)
        return sorted[n - 1];
    double pos = q * (n - 1);
    int i = (int)floor(pos);
    double f = pos - i;
    if (i + 1 >= n)
        return sorted[n - 1];
    return sorted[i] + f * (sorted[i + 1] - sorted[i]);
}

static double median_of(const double *x, int n, double *tmp)
{
    memcpy(tmp, x, (size_t)n * sizeof *tmp);
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_double);
    return gn_lat_quantile(tmp, n, 0.5);
}

int gn_lat_stats_compute(const double *x, int n, gn_lat_stats *s, gn_error *err)
{
    memset(s, 0, sizeof *s);
    if (n < 1)
        return gn_error_set(err, "latency statistics: no samples");
    for (int i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return gn_error_set(err, "latency statistics: sample %d is not finite", i);
    double *v = malloc((size_t)n * sizeof *v);
    if (!v)
        return gn_error_set(err, "latency statistics: out of memory for %d samples", n);
    memcpy(v, x, (size_t)n * sizeof *v);
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    s->n = n;
    s->min = v[0];
    s->max = v[n - 1];
    s->median = gn_lat_quantile(v, n, 0.5);
    s->p10 = gn_lat_quantile(v, n, 0.10);
    s->p25 = gn_lat_quantile(v, n, 0.25);
    s->p75 = gn_lat_quantile(v, n, 0.75);
    s->p90 = gn_lat_quantile(v, n, 0.90);
    s->p99 = gn_lat_quantile(v, n, 0.99);
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += x[i];
    s->mean = sum / n;
    double ss = 0;
    for (int i = 0; i < n; i++)
        ss += (x[i] - s->mean) * (x[i] - s->mean);
    s->stddev = n > 1 ? sqrt(ss / (n - 1)) : 0.0;
    s->cv = s->mean > 0 ? s->stddev / s->mean : 0.0;
    s->rcv = s->median > 0 ? (s->p75 - s->p25) / (1.349 * s->median) : 0.0;

    double h = 0.98 * sqrt((double)n);
    int j = (int)floor(n / 2.0 - h), k = (int)ceil(1 + n / 2.0 + h);
    if (j < 1)
        j = 1;
    if (k > n)
        k = n;
    s->med_lo = v[j - 1];
    s->med_hi = v[k - 1];

    if (n >= 2) {
        int h1 = n / 2;
        s->median_first = median_of(x, h1, v);
        s->median_second = median_of(x + h1, n - h1, v);
    } else {
        s->median_first = s->median_second = x[0];
    }
    s->drift = s->median > 0 ? fabs(s->median_second - s->median_first) / s->median : 0.0;
    /* block b holds runs [b n / B, (b + 1) n / B) */
    s->blocks = n < GN_LAT_BLOCKS ? n : GN_LAT_BLOCKS;
    s->block_lo = INFINITY;
    s->block_hi = -INFINITY;
    for (int b = 0; b < s->blocks; b++) {
        int lo = (int)((long long)b * n / s->blocks), hi = (int)((long long)(b + 1) * n / s->blocks);
        double m = median_of(x + lo, hi - lo, v);
        if (m < s->block_lo)
            s->block_lo = m;
        if (m > s->block_hi)
            s->block_hi = m;
    }
    free(v);
    return 0;
}

void gn_lat_limits_default(gn_lat_limits *l)
{
    l->max_cv = 0.15;
    l->max_drift = 0.10;
    l->min_runs = 10;
}

int gn_lat_check_stable(const gn_lat_stats *s, const gn_lat_limits *l, char *why, size_t why_size)
{
    char buf[256];
    buf[0] = 0;
    if (s->n < l->min_runs)
        snprintf(buf, sizeof buf, "only %d timed runs (at least %d needed)", s->n, l->min_runs);
    else if (s->rcv > l->max_cv)
        snprintf(buf, sizeof buf,
                 "robust coefficient of variation (IQR / 1.349 median) %.1f%% exceeds %.1f%% (p25 %.4g ms, median %.4g "
                 "ms, p75 %.4g ms)",
                 100 * s->rcv, 100 * l->max_cv, s->p25, s->median, s->p75);
    else if (s->drift > l->max_drift)
        snprintf(buf, sizeof buf,
                 "median drifted %.1f%% between the first and second half of the runs (%.4g ms -> %.4g ms; limit %.1f%%)",
                 100 * s->drift, s->median_first, s->median_second, 100 * l->max_drift);
    if (!buf[0])
        return 0;
    if (why && why_size)
        snprintf(why, why_size, "%s", buf);
    return 1;
}
