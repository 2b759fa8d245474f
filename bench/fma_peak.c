/*
 * fma_peak.c — the machine's FP32 FMA ceiling, the "100 %" of engine-speed figures
 * (issue 21): every thread runs a loop of fused multiply-adds on 12 independent vector
 * accumulators (enough to hide the FMA latency on current x86 cores: 4-cycle latency x 2-3
 * ports), AVX-512 when the CPU has it, else AVX2+FMA; each thread pinned to its own CPU.
 *
 *   build/bench/fma_peak [--threads 1,2] [--seconds 1] [--reps 3]
 *
 * Prints, per thread count, the best of --reps timed runs in GFLOP/s (an FMA = 2 FLOP)
 * and the per-core figure; `bench/onnx_vs_gpunas.py --peak` divides the engines'
 * achieved FLOP/s by it.
 */
#include <immintrin.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

#define CHAINS 12
#define INNER 1000

__attribute__((target("avx2,fma"))) static float loop_avx2(int64_t iters)
{
    __m256 acc[CHAINS], a = _mm256_set1_ps(0.9999f), b = _mm256_set1_ps(1e-4f);
    for (int i = 0; i < CHAINS; i++)
        acc[i] = _mm256_set1_ps((float)i);
    for (int64_t t = 0; t < iters; t++)
        for (int k = 0; k < INNER; k++)
            for (int i = 0; i < CHAINS; i++)
                acc[i] = _mm256_fmadd_ps(acc[i], a, b);
    float s = 0, out[8];
    for (int i = 0; i < CHAINS; i++) {
        _mm256_storeu_ps(out, acc[i]);
        for (int j = 0; j < 8; j++)
            s += out[j];
    }
    return s;
}

__attribute__((target("avx512f"))) static float loop_avx512(int64_t iters)
{
    __m512 acc[CHAINS], a = _mm512_set1_ps(0.9999f), b = _mm512_set1_ps(1e-4f);
    for (int i = 0; i < CHAINS; i++)
        acc[i] = _mm512_set1_ps((float)i);
    for (int64_t t = 0; t < iters; t++)
        for (int k = 0; k < INNER; k++)
            for (int i = 0; i < CHAINS; i++)
                acc[i] = _mm512_fmadd_ps(acc[i], a, b);
    float s = 0;
    for (int i = 0; i < CHAINS; i++)
        s += _mm512_reduce_add_ps(acc[i]);
    return s;
}

typedef struct {
    int cpu, wide;
    int64_t iters;
    pthread_barrier_t *start;
    double t0, t1;
    volatile float sink;
} job;

static void *run(void *p)
{
    job *j = p;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(j->cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    pthread_barrier_wait(j->start);
    j->t0 = now_s();
    j->sink = j->wide ? loop_avx512(j->iters) : loop_avx2(j->iters);
    j->t1 = now_s();
    return NULL;
}

/* GFLOP/s of n threads running iters outer iterations each */
static double measure(int n, int wide, int64_t iters)
{
    pthread_t th[256];
    job jobs[256];
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        jobs[i] = (job){.cpu = i, .wide = wide, .iters = iters, .start = &start};
        pthread_create(&th[i], NULL, run, &jobs[i]);
    }
    double t0 = 1e300, t1 = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        t0 = jobs[i].t0 < t0 ? jobs[i].t0 : t0;
        t1 = jobs[i].t1 > t1 ? jobs[i].t1 : t1;
    }
    pthread_barrier_destroy(&start);
    double flops = 2.0 * (wide ? 16 : 8) * CHAINS * (double)INNER * (double)iters * n;
    return flops / (t1 - t0) / 1e9;
}

int main(int argc, char **argv)
{
    char threads[64] = "1,2";
    double seconds = 1;
    int reps = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads"))
            snprintf(threads, sizeof threads, "%s", argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds"))
            seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps"))
            reps = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: fma_peak [--threads 1,2] [--seconds 1] [--reps 3]\n");
            return 2;
        }
    }
    __builtin_cpu_init();
    int wide = __builtin_cpu_supports("avx512f");
    if (!wide && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))) {
        fprintf(stderr, "fma_peak: this CPU has neither AVX-512 nor AVX2+FMA\n");
        return 1;
    }
    /* calibrate: iterations for about `seconds` on one thread */
    int64_t iters = 1000;
    double g = measure(1, wide, iters);
    iters = (int64_t)(seconds * g * 1e9 / (2.0 * (wide ? 16 : 8) * CHAINS * INNER));
    if (iters < 1)
        iters = 1;
    printf("{\"isa\": \"%s\", \"chains\": %d, \"peaks\": [", wide ? "avx512f" : "avx2+fma", CHAINS);
    const char *p = threads;
    int first = 1;
    while (*p) {
        int n = atoi(p);
        if (n < 1 || n > 256) {
            fprintf(stderr, "fma_peak: --threads: bad count\n");
            return 2;
        }
        double best = 0;
        for (int r = 0; r < reps; r++) {
            double v = measure(n, wide, iters);
            best = v > best ? v : best;
        }
        printf("%s{\"threads\": %d, \"gflops\": %.2f, \"gflops_per_core\": %.2f}", first ? "" : ", ", n, best,
               best / n);
        first = 0;
        p = strchr(p, ',');
        if (!p)
            break;
        p++;
    }
    printf("]}\n");
    return 0;
}
