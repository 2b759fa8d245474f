/*
 * cpu_avail.c — how many cores other processes leave free (gpunas/backend.h,
 * "Threads").  Why: oneDNN's OpenMP splits every op evenly over its threads, so one
 * thread that shares its core with another busy process makes every op wait for it.
 * Measured on the 2-core development VM with one busy process beside it: training
 * fmnist-wide at batch 64 ran 688 img/s at 1 thread but 266 at 2 (443 with
 * OMP_WAIT_POLICY=passive, which also costs 21% on an idle machine: 913 vs 1151);
 * see bench/RESULTS.md.  No OpenMP setting keeps 2 threads as fast as 1 under
 * load, so "all cores" means the cores the other processes leave free.
 *
 * A sample reads the machine's busy time (/proc/stat: user, nice, system, irq,
 * softirq; steal and idle are not busy) and this process's CPU time (/proc/self/stat:
 * utime + stime, all its threads).  Between two samples, the other processes kept
 * (busy - self) / (elapsed per CPU) CPUs busy; the available cores are the allowed
 * CPUs minus that, rounded to the nearest core, at least 1.  Without /proc (another
 * OS, a container hiding it) every allowed CPU counts as available.
 */
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gpunas/backend.h"

int gn_cpu_sample_take(gn_cpu_sample *s)
{
    memset(s, 0, sizeof *s);
    cpu_set_t m;
    if (sched_getaffinity(0, sizeof m, &m) == 0)
        s->allowed = CPU_COUNT(&m);
    if (s->allowed < 1) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        s->allowed = n > 0 ? (int)n : 1;
    }
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return -1;
    char line[512];
    unsigned long long v[10] = {0};
    int ok = 0, ncpu = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "cpu ", 4) == 0)
            ok = sscanf(line + 4, "%llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
                        &v[5], &v[6], &v[7]) >= 4;
        else if (strncmp(line, "cpu", 3) == 0 && line[3] >= '0' && line[3] <= '9')
            ncpu++;
    }
    fclose(f);
    if (!ok || ncpu < 1)
        return -1;
    s->busy = v[0] + v[1] + v[2] + v[5] + v[6];
    s->total = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
    s->ncpu = ncpu;
    f = fopen("/proc/self/stat", "r");
    if (!f)
        return -1;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    unsigned long long ut, st;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    s->self = ut + st;
    s->valid = 1;
    return 0;
}

double gn_cpu_others(const gn_cpu_sample *a, const gn_cpu_sample *b)
{
    if (!a->valid || !b->valid || b->total <= a->total || b->ncpu < 1)
        return 0.0;
    double per_cpu = (double)(b->total - a->total) / b->ncpu;
    double busy = (double)(b->busy - a->busy), self = (double)(b->self - a->self);
    double others = (busy - self) / per_cpu;
    return others > 0 ? others : 0.0;
}

int gn_cpu_available(const gn_cpu_sample *a, const gn_cpu_sample *b, double *others)
{
    double o = gn_cpu_others(a, b);
    if (others)
        *others = o;
    int free_cpus = b->valid ? (int)(b->ncpu - o + 0.5) : b->allowed;
    int n = free_cpus < b->allowed ? free_cpus : b->allowed;
    return n < 1 ? 1 : n;
}

int gn_threads_available(int window_ms, double *others)
{
    gn_cpu_sample a, b;
    int ra = gn_cpu_sample_take(&a);
    struct timespec ts = {window_ms / 1000, (long)(window_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    int rb = gn_cpu_sample_take(&b);
    if (ra || rb) {
        if (others)
            *others = 0;
        return b.allowed > 0 ? b.allowed : 1;
    }
    return gn_cpu_available(&a, &b, others);
}
