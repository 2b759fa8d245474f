/*
 * lat_device.c — describe the machine a latency was measured on (see
 * gpunas/latency.h): CPU model and core counts from /proc/cpuinfo and sysconf, the
 * oneDNN version from dnnl_version(), the gpunas version.
 *
 * Physical cores are the distinct ("physical id", "core id") pairs of /proc/cpuinfo;
 * when the file lacks them (some VMs, non-x86) the logical CPU count stands in.
 */
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gpunas/latency.h"

/* GPUNAS_VERSION: the CMake project version (CMakeLists.txt) */

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = 0;
    size_t i = 0;
    while (s[i] == ' ' || s[i] == '\t')
        i++;
    memmove(s, s + i, n - i + 1);
}

/* Value after "key<spaces>:" on a cpuinfo line, or NULL. */
static char *field(char *line, const char *key)
{
    size_t k = strlen(key);
    if (strncmp(line, key, k) != 0)
        return NULL;
    char *p = line + k;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p != ':')
        return NULL;
    p++;
    trim(p);
    return p;
}

static void read_cpuinfo(gn_lat_device *d)
{
    snprintf(d->cpu_model, sizeof d->cpu_model, "unknown");
    d->cores = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    int phys = -1, pairs[1024][2], np = 0;
    bool got_model = false;
    while (fgets(line, sizeof line, f)) {
        char *v;
        if (!got_model && (v = field(line, "model name"))) {
            snprintf(d->cpu_model, sizeof d->cpu_model, "%s", v);
            got_model = true;
        } else if ((v = field(line, "physical id"))) {
            phys = atoi(v);
        } else if ((v = field(line, "core id"))) {
            int core = atoi(v), seen = 0;
            for (int i = 0; i < np; i++)
                seen |= pairs[i][0] == phys && pairs[i][1] == core;
            if (!seen && np < 1024) {
                pairs[np][0] = phys;
                pairs[np][1] = core;
                np++;
            }
        }
    }
    fclose(f);
    d->cores = np;
}

void gn_lat_device_make_id(gn_lat_device *d)
{
    snprintf(d->id, sizeof d->id, "%s: %s, %d cores / %d cpus, %d threads, %s (oneDNN %s), gpunas %s", d->kind,
             d->cpu_model, d->cores, d->logical_cpus, d->threads, d->backend, d->onednn, d->gpunas);
}

void gn_lat_device_class(const gn_lat_device *d, char *buf, size_t n)
{
    snprintf(buf, n, "%s: %s, %d cores / %d cpus, %s (oneDNN %s), fp32", d->kind, d->cpu_model, d->cores,
             d->logical_cpus, d->backend, d->onednn);
}

int gn_lat_device_detect(const char *backend, int threads, gn_lat_device *d, gn_error *err)
{
    memset(d, 0, sizeof *d);
    if (!backend || (strcmp(backend, "dnnl") != 0 && strcmp(backend, "ref") != 0))
        return gn_error_set(err, "device: backend '%s' is not a CPU backend (dnnl, ref)", backend ? backend : "(null)");
    snprintf(d->kind, sizeof d->kind, "cpu");
    snprintf(d->backend, sizeof d->backend, "%s", backend);
    read_cpuinfo(d);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    d->logical_cpus = n > 0 ? (int)n : 1;
    if (d->cores <= 0)
        d->cores = d->logical_cpus;
    d->threads = strcmp(backend, "ref") == 0 ? 1 : threads > 0 ? threads : d->logical_cpus;
    const dnnl_version_t *v = dnnl_version();
    snprintf(d->onednn, sizeof d->onednn, "%d.%d.%d", v->major, v->minor, v->patch);
    snprintf(d->gpunas, sizeof d->gpunas, "%s", GPUNAS_VERSION);
    gn_lat_device_make_id(d);
    return 0;
}
