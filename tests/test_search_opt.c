/* test_search_opt.c — the optimizer interface (gpunas/search.h) for every kind:
 *   - determinism: same seed -> the identical proposal sequence for 200 steps (with
 *     batches in flight, observations out of order, infeasible points); another seed
 *     differs; a fresh optimizer replaying the stored trials reproduces each proposal
 *     and then continues exactly as the uninterrupted run (the search loop's resume);
 *   - no duplicates: on a 72-point space every kind proposes all 72 points once, then
 *     fails with "space exhausted" (also with all proposals in flight);
 *   - a point observed without being proposed is never proposed;
 *   - options.canon: proposals are canonical, no two map to the same representative,
 *     and the space is exhausted after its representatives;
 *   - options.accept: every proposal is admitted when admissible points exist;
 *   - feasibility: the learning kinds propose fewer infeasible points than random;
 *   - quality: lamcts and evolution beat random on a small shifted sphere, nsga2 beats
 *     random in hypervolume on a 2-objective problem (fixed seeds: deterministic);
 *   - every bad argument fails with one line naming the field. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gpunas/search.h"

static const char *const KINDS[] = {"random", "evolution", "lamcts", "nsga2"};
#define NKINDS 4

static gn_enc_desc enc10(void)
{
    gn_enc_desc e = {.ndims = 10, .card = {2, 3, 4, 5, 6, 8, 2, 3, 10, 4}};
    return e;
}

static const int XSTAR[10] = {1, 0, 3, 2, 5, 1, 0, 2, 7, 1};

static double sphere10(const int *x)
{
    double s = 0;
    for (int i = 0; i < 10; i++) {
        int c = enc10().card[i];
        double dl = (double)(x[i] - XSTAR[i]) / (c - 1);
        s += dl * dl;
    }
    return -s;
}

static void objectives(const int *x, double *obj)
{
    obj[0] = sphere10(x);
    double t = 0;
    for (int i = 0; i < 10; i++)
        t += x[i];
    obj[1] = -t;
}

static bool feasible10(const int *x) { return (x[0] + x[1] + x[8]) % 4 != 0; }

static gn_opt_options test_options(uint64_t seed)
{
    gn_opt_options o;
    gn_opt_options_default(&o);
    o.seed = seed;
    o.n_objectives = 2;
    o.mcts_candidates = 512; /* keep the test fast */
    o.mcts_gp_max = 80;      /* (and exercise the cap on GP points) */
    o.mcts_ninits = 10;
    o.mcts_leaf_size = 10;
    o.evo_population = 10;
    o.evo_sample = 3;
    o.nsga_population = 10;
    return o;
}

/* Run `steps` proposals in batches of `batch`, observing each batch in reverse order.
 * Writes the proposals to seq (steps x 10). */
static void run_seq(const char *kind, uint64_t seed, int steps, int batch, int *seq)
{
    gn_enc_desc e = enc10();
    gn_opt_options o = test_options(seed);
    gn_optimizer *opt;
    gn_error err = {{0}};
    assert_int_equal(gn_opt_create(kind, &e, &o, &opt, &err), 0);
    for (int t = 0; t < steps; t += batch) {
        int k = steps - t < batch ? steps - t : batch;
        if (gn_opt_propose_batch(opt, k, seq + t * 10, &err)) {
            fprintf(stderr, "%s: %s\n", kind, err.msg);
            fail();
        }
        for (int j = k - 1; j >= 0; j--) {
            const int *x = seq + (t + j) * 10;
            double obj[2];
            objectives(x, obj);
            bool f = feasible10(x);
            assert_int_equal(gn_opt_observe(opt, x, f ? obj : NULL, f, &err), 0);
        }
    }
    assert_int_equal(gn_opt_count(opt), steps);
    gn_opt_free(opt);
}

static void test_determinism(void **state)
{
    (void)state;
    enum { STEPS = 200 };
    int *a = malloc(sizeof(int) * STEPS * 10), *b = malloc(sizeof(int) * STEPS * 10);
    for (int k = 0; k < NKINDS; k++) {
        for (int batch = 1; batch <= 3; batch += 2) {
            run_seq(KINDS[k], 42, STEPS, batch, a);
            run_seq(KINDS[k], 42, STEPS, batch, b);
            if (memcmp(a, b, sizeof(int) * STEPS * 10) != 0) {
                fprintf(stderr, "%s (batch %d): same seed, different proposals\n", KINDS[k], batch);
                fail();
            }
        }
        run_seq(KINDS[k], 43, STEPS, 1, b);
        run_seq(KINDS[k], 42, STEPS, 1, a);
        assert_true(memcmp(a, b, sizeof(int) * STEPS * 10) != 0);
    }
    free(a);
    free(b);
}

/* Resume: a fresh optimizer replays the first R stored trials (propose must return the
 * stored point, then the stored result is observed) and continues like the original. */
static void test_resume_by_replay(void **state)
{
    (void)state;
    enum { STEPS = 120, R = 70 };
    int *full = malloc(sizeof(int) * STEPS * 10);
    gn_enc_desc e = enc10();
    gn_error err = {{0}};
    for (int k = 0; k < NKINDS; k++) {
        run_seq(KINDS[k], 7, STEPS, 1, full);
        gn_opt_options o = test_options(7);
        gn_optimizer *opt;
        assert_int_equal(gn_opt_create(KINDS[k], &e, &o, &opt, &err), 0);
        for (int t = 0; t < STEPS; t++) {
            int x[10];
            assert_int_equal(gn_opt_propose(opt, x, &err), 0);
            if (memcmp(x, full + t * 10, sizeof x) != 0) {
                fprintf(stderr, "%s: step %d differs after %s\n", KINDS[k], t, t < R ? "replay" : "resume");
                fail();
            }
            double obj[2];
            objectives(x, obj);
            bool f = feasible10(x);
            assert_int_equal(gn_opt_observe(opt, x, f ? obj : NULL, f, &err), 0);
        }
        gn_opt_free(opt);
    }
    free(full);
}

static int encode72(const int *x) { return ((x[0] * 3 + x[1]) * 4 + x[2]) * 2 + x[3]; }

static void test_no_duplicates(void **state)
{
    (void)state;
    gn_enc_desc e = {.ndims = 4, .card = {3, 3, 4, 2}};
    gn_error err = {{0}};
    for (int k = 0; k < NKINDS; k++) {
        for (int inflight = 0; inflight <= 1; inflight++) {
            gn_opt_options o = test_options(3);
            o.mcts_ninits = 6;
            o.mcts_leaf_size = 6;
            o.evo_population = 6;
            o.nsga_population = 6;
            gn_optimizer *opt;
            assert_int_equal(gn_opt_create(KINDS[k], &e, &o, &opt, &err), 0);
            bool seen[72] = {false};
            /* one point observed up front without being proposed */
            int foreign[4] = {2, 1, 3, 0};
            double fo[2] = {-1.0, -2.0};
            assert_int_equal(gn_opt_observe(opt, foreign, fo, true, &err), 0);
            seen[encode72(foreign)] = true;
            int xs[72][4];
            for (int t = 0; t < 71; t++) {
                int *x = xs[t];
                if (gn_opt_propose(opt, x, &err)) {
                    fprintf(stderr, "%s step %d: %s\n", KINDS[k], t, err.msg);
                    fail();
                }
                int id = encode72(x);
                if (seen[id]) {
                    fprintf(stderr, "%s (inflight %d): duplicate at step %d\n", KINDS[k], inflight, t);
                    fail();
                }
                seen[id] = true;
                if (!inflight) {
                    double obj[2] = {-(double)((x[0] - 1) * (x[0] - 1) + (x[2] - 2) * (x[2] - 2)), -(double)x[1]};
                    bool f = x[3] == 0 || x[1] != 2;
                    assert_int_equal(gn_opt_observe(opt, x, f ? obj : NULL, f, &err), 0);
                }
            }
            int x[4];
            assert_int_not_equal(gn_opt_propose(opt, x, &err), 0);
            assert_non_null(strstr(err.msg, "space exhausted"));
            assert_null(strchr(err.msg, '\n'));
            if (inflight) { /* observing the in-flight points later is fine */
                for (int t = 0; t < 71; t++) {
                    double obj[2] = {0, 0};
                    assert_int_equal(gn_opt_observe(opt, xs[t], obj, true, &err), 0);
                }
                assert_int_not_equal(gn_opt_propose(opt, x, &err), 0);
            }
            gn_opt_free(opt);
        }
    }
}

/* canonical representatives on the 72-point space: when x[0] == 0, dimensions 1 and 3
 * are inert (like a stage with 0 layers) and zeroed: 72 - 3*4*2 + 4 = 52 points */
static void canon72(void *ctx, const int *x, int *y)
{
    (*(int *)ctx)++;
    for (int i = 0; i < 4; i++)
        y[i] = x[i];
    if (x[0] == 0)
        y[1] = y[3] = 0;
}

static void test_canonical(void **state)
{
    (void)state;
    gn_enc_desc e = {.ndims = 4, .card = {3, 3, 4, 2}};
    gn_error err = {{0}};
    for (int k = 0; k < NKINDS; k++) {
        gn_opt_options o = test_options(5);
        o.mcts_ninits = 6;
        o.mcts_leaf_size = 6;
        o.evo_population = 6;
        o.nsga_population = 6;
        int calls = 0;
        o.canon = canon72;
        o.canon_ctx = &calls;
        gn_optimizer *opt;
        assert_int_equal(gn_opt_create(KINDS[k], &e, &o, &opt, &err), 0);
        /* a non-canonical point observed up front counts as its representative */
        int foreign[4] = {0, 2, 1, 1};
        double fo[2] = {-1.0, -2.0};
        assert_int_equal(gn_opt_observe(opt, foreign, fo, true, &err), 0);
        bool seen[72] = {false};
        seen[encode72((int[4]){0, 0, 1, 0})] = true;
        for (int t = 0; t < 51; t++) {
            int x[4];
            if (gn_opt_propose(opt, x, &err)) {
                fprintf(stderr, "%s step %d: %s\n", KINDS[k], t, err.msg);
                fail();
            }
            if (x[0] == 0 && (x[1] || x[3])) {
                fprintf(stderr, "%s: non-canonical proposal at step %d\n", KINDS[k], t);
                fail();
            }
            int id = encode72(x);
            if (seen[id]) {
                fprintf(stderr, "%s: the same network twice at step %d\n", KINDS[k], t);
                fail();
            }
            seen[id] = true;
            double obj[2] = {-(double)((x[0] - 1) * (x[0] - 1) + (x[2] - 2) * (x[2] - 2)), -(double)x[1]};
            assert_int_equal(gn_opt_observe(opt, x, obj, true, &err), 0);
        }
        int x[4];
        assert_int_not_equal(gn_opt_propose(opt, x, &err), 0); /* all 52 representatives seen */
        assert_non_null(strstr(err.msg, "space exhausted: all 52 points"));
        assert_true(calls > 0);
        gn_opt_free(opt);
    }
}

static int accept_even(void *ctx, const int *x)
{
    int *calls = ctx;
    (*calls)++;
    int s = 0;
    for (int i = 0; i < 10; i++)
        s += x[i];
    return s % 2 == 0;
}

static void test_accept_filter(void **state)
{
    (void)state;
    gn_enc_desc e = enc10();
    gn_error err = {{0}};
    for (int k = 0; k < NKINDS; k++) {
        int calls = 0;
        gn_opt_options o = test_options(11);
        o.accept = accept_even;
        o.accept_ctx = &calls;
        gn_optimizer *opt;
        assert_int_equal(gn_opt_create(KINDS[k], &e, &o, &opt, &err), 0);
        for (int t = 0; t < 80; t++) {
            int x[10];
            assert_int_equal(gn_opt_propose(opt, x, &err), 0);
            int s = 0;
            for (int i = 0; i < 10; i++)
                s += x[i];
            if (s % 2 != 0) {
                fprintf(stderr, "%s: step %d proposed a refused point\n", KINDS[k], t);
                fail();
            }
            double obj[2];
            objectives(x, obj);
            assert_int_equal(gn_opt_observe(opt, x, obj, true, &err), 0);
        }
        assert_true(calls >= 80);
        gn_opt_free(opt);
    }
}

typedef struct {
    double best, hv;
    int infeasible_late;
} quality;

static quality run_quality(const char *kind, uint64_t seed, int steps, bool constrained)
{
    gn_enc_desc e = enc10();
    gn_opt_options o = test_options(seed);
    gn_optimizer *opt;
    gn_error err = {{0}};
    assert_int_equal(gn_opt_create(kind, &e, &o, &opt, &err), 0);
    double *objs = malloc(sizeof(double) * 2 * steps);
    quality q = {-INFINITY, 0, 0};
    for (int t = 0; t < steps; t++) {
        int x[10];
        assert_int_equal(gn_opt_propose(opt, x, &err), 0);
        double obj[2];
        objectives(x, obj);
        objs[2 * t] = obj[0];
        objs[2 * t + 1] = obj[1];
        bool f = !constrained || feasible10(x);
        if (!f && t >= steps / 2)
            q.infeasible_late++;
        if (f && obj[0] > q.best)
            q.best = obj[0];
        assert_int_equal(gn_opt_observe(opt, x, f ? obj : NULL, f, &err), 0);
    }
    double best;
    assert_int_equal(gn_opt_best(opt, &best, NULL), 0);
    assert_true(best == q.best);
    const double ref[2] = {-4.0, -60.0};
    assert_int_equal(gn_hypervolume2(objs, steps, NULL, ref, &q.hv, &err), 0);
    free(objs);
    gn_opt_free(opt);
    return q;
}

static void test_quality(void **state)
{
    (void)state;
    double best[NKINDS] = {0}, hv[NKINDS] = {0};
    int inf[NKINDS] = {0};
    for (int k = 0; k < NKINDS; k++)
        for (uint64_t s = 0; s < 3; s++) {
            quality q = run_quality(KINDS[k], 100 + s, 120, false);
            best[k] += q.best / 3;
            hv[k] += q.hv / 3;
            quality c = run_quality(KINDS[k], 200 + s, 120, true);
            inf[k] += c.infeasible_late;
        }
    for (int k = 0; k < NKINDS; k++)
        fprintf(stderr, "  %-9s best %.4f  hv %.2f  infeasible in 2nd half %d/180\n", KINDS[k], best[k], hv[k],
                inf[k]);
    assert_true(best[2] > best[0]); /* lamcts > random */
    assert_true(best[1] > best[0]); /* evolution > random */
    assert_true(hv[3] > hv[0]);     /* nsga2 > random in hypervolume */
    assert_true(inf[1] < inf[0] && inf[2] < inf[0] && inf[3] < inf[0]);
}

static void expect_create_error(const char *kind, const gn_enc_desc *e, const gn_opt_options *o, const char *want)
{
    gn_optimizer *opt = (gn_optimizer *)0x1;
    gn_error err = {{0}};
    assert_int_not_equal(gn_opt_create(kind, e, o, &opt, &err), 0);
    assert_null(opt);
    if (!strstr(err.msg, want) || strchr(err.msg, '\n')) {
        fprintf(stderr, "error '%s' lacks '%s'\n", err.msg, want);
        fail();
    }
}

static void test_errors(void **state)
{
    (void)state;
    gn_enc_desc e = enc10();
    gn_opt_options o = test_options(1);
    expect_create_error("bayes", &e, &o, "unknown kind 'bayes'");
    expect_create_error(NULL, &e, &o, "no kind");
    gn_enc_desc bad = e;
    bad.ndims = 0;
    expect_create_error("random", &bad, &o, "ndims 0");
    bad = e;
    bad.card[4] = 0;
    expect_create_error("lamcts", &bad, &o, "card[4] = 0");
    gn_opt_options b = o;
    b.evo_sample = 11;
    expect_create_error("evolution", &e, &b, "evo_sample");
    b = o;
    b.gp_alpha = -1;
    expect_create_error("lamcts", &e, &b, "gp_alpha");
    b = o;
    b.n_objectives = 0;
    expect_create_error("nsga2", &e, &b, "n_objectives");
    b = o;
    b.nsga_crossover = 1.5;
    expect_create_error("nsga2", &e, &b, "nsga_crossover");
    b = o;
    b.mcts_ninits = 1;
    expect_create_error("lamcts", &e, &b, "mcts_ninits");

    gn_optimizer *opt;
    gn_error err = {{0}};
    assert_int_equal(gn_opt_create("lamcts", &e, NULL, &opt, &err), 0); /* NULL: defaults */
    assert_string_equal(gn_opt_name(opt), "lamcts");
    double best;
    assert_int_equal(gn_opt_best(opt, &best, NULL), -1);
    gn_opt_free(opt);
    assert_int_equal(gn_opt_create("random", &e, &o, &opt, &err), 0);
    int x[10] = {0};
    double obj[2] = {1, 2};
    x[5] = 8;
    assert_int_not_equal(gn_opt_observe(opt, x, obj, true, &err), 0);
    assert_non_null(strstr(err.msg, "x[5] = 8 is outside [0, 8)"));
    x[5] = 0;
    obj[1] = NAN;
    assert_int_not_equal(gn_opt_observe(opt, x, obj, true, &err), 0);
    assert_non_null(strstr(err.msg, "objective 1 is not finite"));
    assert_int_not_equal(gn_opt_observe(opt, x, NULL, true, &err), 0);
    assert_non_null(strstr(err.msg, "without objectives"));
    assert_int_equal(gn_opt_observe(opt, x, NULL, false, &err), 0); /* infeasible: no objectives needed */
    assert_int_not_equal(gn_opt_propose_batch(opt, -1, x, &err), 0);
    assert_non_null(strstr(err.msg, "batch size -1"));
    assert_int_equal(gn_opt_count(opt), 1);
    gn_opt_free(opt);
    gn_opt_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_no_duplicates),
        cmocka_unit_test(test_canonical),
        cmocka_unit_test(test_accept_filter),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_resume_by_replay),
        cmocka_unit_test(test_quality),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
