/*
 * test_latency_threads.c — the measuring conditions of issue 18 at the library level:
 * thread pinning (the calling thread ends on one CPU, and gets its whole mask back),
 * the reference-paired measurement (its bookkeeping: rounds, sample counts, the ratio
 * inside its per-round range), `--threads best` (candidate counts, the choice among
 * them), the compiled-in reference network (its size), and the count of cores other
 * processes leave free (gn_cpu_available on constructed samples).  Nothing compares times
 * against fixed numbers: only facts that hold on any machine, loaded or not.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpunas/backend.h"
#include "gpunas/latency.h"
#include "testutil.h"

static void test_reference_arch(void **state)
{
    gn_error err;
    gn_arch *a = NULL;
    assert_int_equal(gn_lat_reference_arch(&a, &err), 0);
    assert_int_equal(a->macs, 2867616);
    assert_int_equal(a->params, 60954);
    /* the same network as the bench file that documents it */
    char *path = tu_source_path("bench/nets/fmnist-tiny.json");
    gn_arch *b = NULL;
    assert_int_equal(gn_arch_load(path, &b, &err), 0);
    assert_int_equal(b->macs, a->macs);
    assert_int_equal(b->params, a->params);
    gn_arch_free(a);
    gn_arch_free(b);
    free(path);
}

static void test_pin_threads(void **state)
{
    gn_error err;
    gn_backend *be = NULL;
    assert_int_equal(gn_backend_create("dnnl", &be, &err), 0);
    cpu_set_t before, during, after;
    assert_int_equal(sched_getaffinity(0, sizeof before, &before), 0);
    int ncpu = CPU_COUNT(&before);
    int want = ncpu < 2 ? ncpu : 2;
    assert_int_equal(gn_backend_set_threads(be, want, &err), 0);
    int pinned = -1;
    if (gn_backend_pin_threads(be, 1, &pinned, &err))
        fail_msg("pin: %s", err.msg);
    assert_int_equal(pinned, want);
    assert_int_equal(sched_getaffinity(0, sizeof during, &during), 0);
    assert_int_equal(CPU_COUNT(&during), 1); /* the calling thread is team thread 0 */
    /* the first allowed CPU */
    int first = -1;
    for (int c = 0; c < CPU_SETSIZE && first < 0; c++)
        if (CPU_ISSET(c, &before))
            first = c;
    assert_true(CPU_ISSET(first, &during));
    assert_int_equal(gn_backend_pin_threads(be, 0, &pinned, &err), 0);
    assert_int_equal(pinned, want);
    assert_int_equal(sched_getaffinity(0, sizeof after, &after), 0);
    assert_true(CPU_EQUAL(&before, &after));
    gn_backend_destroy(be);

    /* ref has no threads: pins nothing, succeeds */
    assert_int_equal(gn_backend_create("ref", &be, &err), 0);
    assert_int_equal(gn_backend_pin_threads(be, 1, &pinned, &err), 0);
    assert_int_equal(pinned, 0);
    gn_backend_destroy(be);
}

static void make_nets(gn_backend **be, gn_arch **a, gn_net **net, gn_arch **ra, gn_net **ref)
{
    gn_error err;
    char *path = tu_source_path("configs/fmnist-small.json");
    assert_int_equal(gn_backend_create("dnnl", be, &err), 0);
    assert_int_equal(gn_arch_load(path, a, &err), 0);
    assert_int_equal(gn_net_create(*a, *be, net, &err), 0);
    assert_int_equal(gn_net_init(*net, 1, &err), 0);
    assert_int_equal(gn_lat_reference_arch(ra, &err), 0);
    assert_int_equal(gn_net_create(*ra, *be, ref, &err), 0);
    assert_int_equal(gn_net_init(*ref, 1, &err), 0);
    free(path);
}

static void test_paired(void **state)
{
    gn_error err;
    gn_backend *be;
    gn_arch *a, *ra;
    gn_net *net, *ref;
    make_nets(&be, &a, &net, &ra, &ref);
    gn_lat_opts o;
    gn_lat_opts_default(&o);
    o.runs = 25;
    o.warmup_ms = 0;
    o.warmup_runs = 2;
    gn_lat_result r;
    assert_int_equal(gn_lat_measure_paired(net, ref, 1, &o, 5, &r, &err), 0);
    assert_int_equal(r.ref.rounds, 5);
    assert_int_equal(r.compute.n, 25); /* 5 runs per round */
    assert_int_equal(r.ref.compute.n, 25);
    assert_true(r.ref.ratio > 0);
    assert_true(r.ref.ratio_lo <= r.ref.ratio && r.ref.ratio <= r.ref.ratio_hi);
    assert_true(r.compute.median > 0 && r.ref.compute.median > 0);
    assert_non_null(r.compute_ms);
    gn_lat_result_free(&r);
    /* at least 3 runs per block, whatever --runs says */
    o.runs = 1;
    assert_int_equal(gn_lat_measure_paired(net, ref, 1, &o, 4, &r, &err), 0);
    assert_int_equal(r.compute.n, 12);
    gn_lat_result_free(&r);
    /* bad round counts are refused with a message */
    assert_int_not_equal(gn_lat_measure_paired(net, ref, 1, &o, 0, &r, &err), 0);
    assert_non_null(strstr(err.msg, "rounds"));

    /* gn_lat_measure_on: threads and placement recorded; unpinned afterwards */
    cpu_set_t before, after;
    assert_int_equal(sched_getaffinity(0, sizeof before, &before), 0);
    gn_lat_placement pl;
    o.runs = 10;
    assert_int_equal(gn_lat_measure_on(net, ref, 1, &o, 1, 1, &r, &pl, &err), 0);
    assert_int_equal(pl.threads, 1);
    assert_int_equal(pl.pinned, 1);
    assert_int_equal(r.ref.rounds, GN_LAT_REF_ROUNDS);
    gn_lat_result_free(&r);
    assert_int_equal(sched_getaffinity(0, sizeof after, &after), 0);
    assert_true(CPU_EQUAL(&before, &after));
    assert_int_equal(gn_lat_measure_on(net, NULL, 1, &o, 1, 0, &r, &pl, &err), 0);
    assert_int_equal(pl.pinned, 0);
    assert_int_equal(r.ref.rounds, 0);
    assert_int_equal(r.compute.n, 10);
    gn_lat_result_free(&r);

    gn_net_free(net);
    gn_net_free(ref);
    gn_arch_free(a);
    gn_arch_free(ra);
    gn_backend_destroy(be);
}

static void test_threads_best(void **state)
{
    gn_error err;
    gn_backend *be;
    gn_arch *a, *ra;
    gn_net *net, *ref;
    make_nets(&be, &a, &net, &ra, &ref);
    gn_lat_opts o;
    gn_lat_opts_default(&o);
    o.runs = 10;
    o.warmup_ms = 0;
    o.warmup_runs = 1;
    gn_lat_limits lim;
    gn_lat_limits_default(&lim);
    gn_lat_thread_choice c;
    /* candidates 1, 2, 4, 5 for five CPUs (whatever this machine has: the team is
     * simply oversubscribed) */
    assert_int_equal(gn_lat_threads_best(net, ref, 1, &o, 5, 2, 0, &lim, &c, &err), 0);
    assert_int_equal(c.n, 4);
    assert_int_equal(c.threads[0], 1);
    assert_int_equal(c.threads[1], 2);
    assert_int_equal(c.threads[2], 4);
    assert_int_equal(c.threads[3], 5);
    assert_int_equal(c.passes, 2);
    int found = 0;
    for (int i = 0; i < c.n; i++) {
        assert_true(c.median[i] > 0);
        assert_true(c.spread[i] >= 1.0);
        found |= c.threads[i] == c.best && i == c.best_index;
        /* the choice is the fastest stable one, up to the 10% preference for fewer
         * threads: no stable count is more than 10% faster than it */
        if (c.best_stable && c.stable[i])
            assert_true(c.median[c.best_index] * (1 - GN_LAT_MORE_THREADS_GAIN) <= c.median[i]);
    }
    assert_true(found);
    /* one CPU: one candidate */
    assert_int_equal(gn_lat_threads_best(net, NULL, 1, &o, 1, 1, 1, &lim, &c, &err), 0);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.best, 1);
    assert_int_not_equal(gn_lat_threads_best(net, NULL, 1, &o, 0, 1, 1, &lim, &c, &err), 0);
    assert_int_not_equal(gn_lat_threads_best(net, NULL, 1, &o, 2, GN_LAT_MAX_PASSES + 1, 1, &lim, &c, &err), 0);
    gn_net_free(net);
    gn_net_free(ref);
    gn_arch_free(a);
    gn_arch_free(ra);
    gn_backend_destroy(be);
}

/* gn_cpu_available: the cores others leave free, from two samples (constructed, so
 * the arithmetic is checked exactly), and a real sample of this machine. */
static void test_cpu_available(void **state)
{
    gn_cpu_sample a = {.busy = 1000, .total = 4000, .self = 500, .ncpu = 2, .allowed = 2, .valid = 1};
    gn_cpu_sample b = a;
    /* 2 CPUs x 100 ticks elapsed; machine busy 200 ticks, this process 100: one other
     * core busy -> 1 free */
    b.total += 200, b.busy += 200, b.self += 100;
    double others = -1;
    assert_int_equal(gn_cpu_available(&a, &b, &others), 1);
    assert_true(others > 0.99 && others < 1.01);
    /* only this process busy: both free */
    b = a;
    b.total += 200, b.busy += 180, b.self += 180;
    assert_int_equal(gn_cpu_available(&a, &b, &others), 2);
    assert_true(others < 1e-9);
    /* a light neighbour (0.3 CPU) rounds to nothing */
    b = a;
    b.total += 200, b.busy += 130, b.self += 100;
    assert_int_equal(gn_cpu_available(&a, &b, &others), 2);
    /* the process mask limits it; never below 1 */
    b = a;
    b.allowed = 1;
    b.total += 200;
    assert_int_equal(gn_cpu_available(&a, &b, &others), 1);
    b = a;
    b.total += 200, b.busy += 200; /* two other processes, none of ours */
    assert_int_equal(gn_cpu_available(&a, &b, &others), 1);
    /* invalid samples: no correction */
    b.valid = 0;
    assert_int_equal(gn_cpu_available(&a, &b, &others), 2);
    /* the real thing: a valid sample where /proc exists, and a count in 1..allowed */
    gn_cpu_sample r;
    if (gn_cpu_sample_take(&r) == 0) {
        assert_true(r.valid && r.ncpu >= 1 && r.total >= r.busy);
        int n = gn_threads_available(20, &others);
        assert_true(n >= 1 && n <= r.allowed);
        assert_true(others >= 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_arch),
        cmocka_unit_test(test_pin_threads),
        cmocka_unit_test(test_paired),
        cmocka_unit_test(test_threads_best),
        cmocka_unit_test(test_cpu_available),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
