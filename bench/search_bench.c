/*
 * search_bench.c — the optimizers (gpunas/search.h) on cheap synthetic objectives with
 * known optima, on an integer box shaped like the GPUNet encoding (issue 6 benchmark).
 *
 * Build (no CMake target; from the repository root):
 *   gcc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -Isrc -I/usr/include/libsvm bench/search_bench.c \
 *       src/search/[a-z]*.c src/util/rng.c src/util/error.c src/util/sobol.c \
 *       -llapacke -lopenblas -lsvm -lm -o build-search/search_bench
 * bench/search_bench.sh builds and runs it.
 *
 *   search_bench [--seeds K] [--n N] [--kinds random,evolution,lamcts,nsga2]
 *                [--problems sphere,tier,zdt]
 *
 * The box: 40 dimensions = stem {filters 2, kernel 2, act 2} + 6 stages x {kernel 2,
 * layers 8, act 2, expansion 5, filters 6, SE 2} + resolution (10) — 7e21 points.
 * z_i = x_i / (card_i - 1) in [0,1]; x* is a fixed hidden optimum (seeded draw);
 * delta_i = z_i - z*_i.
 *
 * Problems (all maximised):
 *   sphere  f = -(1/d) [ sum delta_i^2 + 0.5 sum delta_i delta_{i+1}
 *                        + 0.5 sum (1 - cos(4 pi delta_i)) ]
 *           a shifted sphere with neighbour interactions (positive definite: |0.5| < 1)
 *           plus a Rastrigin-like term that puts local optima at delta = +-1/2 in the
 *           dimensions with >= 3 choices; unique optimum f = 0 at x = x*.
 *   tier    the same f, but a point is feasible only if its "latency"
 *           L(x) = sum w_i z_i / sum w_i (w fixed positive weights) lies in a band of
 *           +-0.03 around L(x*) — a latency tier; infeasible points are observed with
 *           feasible = false.  x* is feasible, so the optimum is still 0.  About 40% of
 *           the box is feasible (printed).
 *   zdt     2 objectives, ZDT1-like: a = mean(z_0, z_3, z_9) (the stem filters and two
 *           stage kernels, all binary), g = 1 + 4 mean(|delta_i|) over the other dimensions,
 *           obj = (-a, -g (1 - sqrt(a / g))).  Pareto front: g = 1 (all other dims at
 *           x*), obj1 = -(1 - sqrt(a)).  Hypervolume w.r.t. ref (-1.1, -3.0), reported
 *           as a fraction of the best achievable (computed exactly by enumerating a).
 *           The single-objective kinds optimise obj[0] only.
 *
 * For each (problem, kind, seed): N proposals, each observed at once; reported: best f
 * (feasible) after 100 and after N (= N's prefix for the first), hypervolume after 100 and
 * N for zdt, infeasible proposals for tier, and per-proposal wall time (mean, max).
 * Output: a markdown table of mean +- std over seeds.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gpunas/rng.h"
#include "gpunas/search.h"

#define D 40
#define MAXN 2000

static gn_enc_desc g_enc;
static int g_xstar[D];
static double g_w[D], g_Lstar;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void setup(void)
{
    static const int stage[6] = {2, 8, 2, 5, 6, 2};
    g_enc.ndims = D;
    g_enc.card[0] = g_enc.card[1] = g_enc.card[2] = 2;
    for (int s = 0; s < 6; s++)
        for (int k = 0; k < 6; k++)
            g_enc.card[3 + 6 * s + k] = stage[k];
    g_enc.card[D - 1] = 10;
    gn_rng r;
    gn_rng_seed(&r, 20240601);
    for (int i = 0; i < D; i++) {
        g_xstar[i] = (int)gn_rng_below(&r, (uint64_t)g_enc.card[i]);
        g_w[i] = 0.2 + gn_rng_uniform(&r);
    }
}

static double zval(const int *x, int i) { return g_enc.card[i] > 1 ? (double)x[i] / (g_enc.card[i] - 1) : 0.0; }

static double sphere(const int *x)
{
    double s = 0, prev = 0;
    for (int i = 0; i < D; i++) {
        double dl = zval(x, i) - zval(g_xstar, i);
        s += dl * dl + 0.5 * (1 - cos(4 * M_PI * dl));
        if (i > 0)
            s += 0.5 * dl * prev;
        prev = dl;
    }
    return -s / D;
}

static double latency(const int *x)
{
    double a = 0, b = 0;
    for (int i = 0; i < D; i++) {
        a += g_w[i] * zval(x, i);
        b += g_w[i];
    }
    return a / b;
}

static int in_tier(const int *x) { return fabs(latency(x) - g_Lstar) <= 0.03; }

static const int ZA[3] = {0, 3, 9};

static void zdt(const int *x, double *obj)
{
    double a = (zval(x, ZA[0]) + zval(x, ZA[1]) + zval(x, ZA[2])) / 3, g = 0;
    int k = 0;
    for (int i = 0; i < D; i++) {
        if (i == ZA[0] || i == ZA[1] || i == ZA[2])
            continue;
        g += fabs(zval(x, i) - zval(g_xstar, i));
        k++;
    }
    g = 1 + 4 * g / k;
    obj[0] = -a;
    obj[1] = -g * (1 - sqrt(a / g));
}

static const double ZREF[2] = {-1.1, -3.0};

static double zdt_best_hv(void)
{
    /* a takes the values (i + j + k) / 3 over the three binary dims: 0, 1/3, 2/3, 1 */
    double pts[8];
    int n = 0;
    for (int s = 0; s <= 3; s++) {
        double a = s / 3.0;
        pts[2 * n] = -a;
        pts[2 * n + 1] = -(1 - sqrt(a));
        n++;
    }
    double hv;
    gn_error e;
    if (gn_hypervolume2(pts, n, NULL, ZREF, &hv, &e))
        return NAN;
    return hv;
}

typedef struct {
    double best100, bestN, hv100, hvN, tmean, tmax;
    int infeasible;
} run_result;

static int run(const char *problem, const char *kind, uint64_t seed, int N, run_result *res)
{
    gn_opt_options o;
    gn_opt_options_default(&o);
    o.seed = seed;
    int zd = strcmp(problem, "zdt") == 0, tier = strcmp(problem, "tier") == 0;
    o.n_objectives = zd ? 2 : 1;
    gn_optimizer *opt;
    gn_error e = {{0}};
    if (gn_opt_create(kind, &g_enc, &o, &opt, &e)) {
        fprintf(stderr, "search_bench: %s\n", e.msg);
        return -1;
    }
    static double objs[MAXN * 2];
    int x[D];
    double best = -INFINITY, tsum = 0, tmax = 0;
    memset(res, 0, sizeof *res);
    for (int t = 0; t < N; t++) {
        double t0 = now_s();
        if (gn_opt_propose(opt, x, &e)) {
            fprintf(stderr, "search_bench: %s %s seed %llu step %d: %s\n", problem, kind, (unsigned long long)seed, t,
                    e.msg);
            gn_opt_free(opt);
            return -1;
        }
        double dt = now_s() - t0;
        tsum += dt;
        tmax = dt > tmax ? dt : tmax;
        double ob[2];
        bool ok = true;
        if (zd) {
            zdt(x, ob);
        } else {
            ob[0] = sphere(x);
            if (tier && !in_tier(x)) {
                ok = false;
                res->infeasible++;
            }
        }
        objs[2 * t] = ob[0];
        objs[2 * t + 1] = ob[1];
        if (ok && ob[0] > best)
            best = ob[0];
        if (gn_opt_observe(opt, x, ok ? ob : NULL, ok, &e)) {
            fprintf(stderr, "search_bench: %s\n", e.msg);
            gn_opt_free(opt);
            return -1;
        }
        if (t + 1 == 100 || t + 1 == N) {
            double hv = 0;
            if (zd) {
                if (gn_hypervolume2(objs, t + 1, NULL, ZREF, &hv, &e)) {
                    fprintf(stderr, "search_bench: %s\n", e.msg);
                    gn_opt_free(opt);
                    return -1;
                }
                hv /= zdt_best_hv();
            }
            if (t + 1 == 100) {
                res->best100 = best;
                res->hv100 = hv;
            }
            if (t + 1 == N) {
                res->bestN = best;
                res->hvN = hv;
            }
        }
    }
    res->tmean = tsum / N;
    res->tmax = tmax;
    gn_opt_free(opt);
    return 0;
}

static void stats(const double *v, int n, double *m, double *s)
{
    double a = 0, b = 0;
    for (int i = 0; i < n; i++)
        a += v[i];
    a /= n;
    for (int i = 0; i < n; i++)
        b += (v[i] - a) * (v[i] - a);
    *m = a;
    *s = n > 1 ? sqrt(b / (n - 1)) : 0;
}

static bool listed(const char *list, const char *name)
{
    size_t l = strlen(name);
    for (const char *p = list; (p = strstr(p, name)) != NULL; p += l)
        if ((p == list || p[-1] == ',') && (p[l] == 0 || p[l] == ','))
            return true;
    return false;
}

int main(int argc, char **argv)
{
    int seeds = 5, N = 200;
    const char *kinds = "random,evolution,lamcts,nsga2", *problems = "sphere,tier,zdt";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seeds") && i + 1 < argc)
            seeds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--n") && i + 1 < argc)
            N = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--kinds") && i + 1 < argc)
            kinds = argv[++i];
        else if (!strcmp(argv[i], "--problems") && i + 1 < argc)
            problems = argv[++i];
        else {
            fprintf(stderr, "usage: search_bench [--seeds K] [--n N] [--kinds LIST] [--problems LIST]\n");
            return 2;
        }
    }
    if (seeds < 1 || seeds > 100 || N < 100 || N > MAXN) {
        fprintf(stderr, "search_bench: need 1 <= seeds <= 100 and 100 <= n <= %d\n", MAXN);
        return 2;
    }
    setup();
    g_Lstar = latency(g_xstar);
    {
        gn_rng r;
        gn_rng_seed(&r, 99);
        int x[D], in = 0;
        for (int t = 0; t < 100000; t++) {
            for (int i = 0; i < D; i++)
                x[i] = (int)gn_rng_below(&r, (uint64_t)g_enc.card[i]);
            in += in_tier(x);
        }
        printf("box: %d dims, cards 2..10; tier band L(x*) = %.3f +- 0.03 holds %.1f%% of uniform points\n", D,
               g_Lstar, in / 1000.0);
    }
    static const char *const KINDS[] = {"random", "evolution", "lamcts", "nsga2"};
    static const char *const PROBS[] = {"sphere", "tier", "zdt"};
    printf("N = %d proposals, %d seeds; mean +- std over seeds\n\n", N, seeds);
    printf("| problem | optimizer | best f @100 | best f @%d | HV/HV* @100 | HV/HV* @%d | infeasible | "
           "s/proposal mean | max |\n",
           N, N);
    printf("|---|---|---|---|---|---|---|---|---|\n");
    for (int p = 0; p < 3; p++) {
        if (!listed(problems, PROBS[p]))
            continue;
        for (int k = 0; k < 4; k++) {
            if (!listed(kinds, KINDS[k]))
                continue;
            double b1[100], bN[100], h1[100], hN[100], inf[100], tm[100], tx[100];
            for (int s = 0; s < seeds; s++) {
                run_result r;
                if (run(PROBS[p], KINDS[k], 1000 + (uint64_t)s, N, &r))
                    return 1;
                b1[s] = r.best100;
                bN[s] = r.bestN;
                h1[s] = r.hv100;
                hN[s] = r.hvN;
                inf[s] = r.infeasible;
                tm[s] = r.tmean;
                tx[s] = r.tmax;
            }
            double m[7], sd[7];
            stats(b1, seeds, &m[0], &sd[0]);
            stats(bN, seeds, &m[1], &sd[1]);
            stats(h1, seeds, &m[2], &sd[2]);
            stats(hN, seeds, &m[3], &sd[3]);
            stats(inf, seeds, &m[4], &sd[4]);
            stats(tm, seeds, &m[5], &sd[5]);
            double mx = 0;
            for (int s = 0; s < seeds; s++)
                mx = tx[s] > mx ? tx[s] : mx;
            int zd = p == 2;
            if (zd) /* obj[0] alone is trivial here (a = 0 is easy); the front is what counts */
                printf("| %s | %s | – | – | ", PROBS[p], KINDS[k]);
            else
                printf("| %s | %s | %.4f ± %.4f | %.4f ± %.4f | ", PROBS[p], KINDS[k], m[0], sd[0], m[1], sd[1]);
            if (zd)
                printf("%.3f ± %.3f | %.3f ± %.3f | ", m[2], sd[2], m[3], sd[3]);
            else
                printf("– | – | ");
            if (p == 1)
                printf("%.0f ± %.0f | ", m[4], sd[4]);
            else
                printf("– | ");
            printf("%.4f | %.3f |\n", m[5], mx);
            fflush(stdout);
        }
    }
    return 0;
}
