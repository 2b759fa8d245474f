/* testutil.c — see testutil.h. */
#include "testutil.h"
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gpunas/arch.h"
#include "gpunas/oneshot.h"
#include "gpunas/rng.h"
#include "nn/network_internal.h"

static char *join(const char *env, const char *fallback, const char *rel)
{
    const char *base = getenv(env);
    if (!base)
        base = fallback;
    size_t n = strlen(base) + strlen(rel) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", base, rel);
    return p;
}

char *tu_source_path(const char *rel) { return join("GPUNAS_SOURCE", ".", rel); }

char *tu_tmp_path(const char *name)
{
    const char *base = getenv("GPUNAS_TMP");
    if (!base)
        base = "/tmp/gpunas-test";
    mkdir(base, 0777);
    size_t n = strlen(base) + strlen(name) + 32;
    char *p = malloc(n);
    snprintf(p, n, "%s/%d-%s", base, (int)getpid(), name);
    return p;
}

int tu_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t n = strlen(text);
    int rc = fwrite(text, 1, n, f) == n ? 0 : -1;
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (cap - n - 1 == 0) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    fclose(f);
    buf[n] = 0;
    if (len)
        *len = n;
    return buf;
}

int tu_run_cli(const char *args, char **out, char **err)
{
    const char *cli = getenv("GPUNAS_CLI");
    if (!cli)
        cli = "./gpunas";
    char *o = tu_tmp_path("cli.out"), *e = tu_tmp_path("cli.err");
    size_t n = strlen(cli) + strlen(args) + strlen(o) + strlen(e) + 32;
    char *cmd = malloc(n);
    snprintf(cmd, n, "%s %s >%s 2>%s", cli, args, o, e);
    int st = system(cmd);
    free(cmd);
    if (out)
        *out = tu_read_file(o, NULL);
    if (err)
        *err = tu_read_file(e, NULL);
    unlink(o);
    unlink(e);
    free(o);
    free(e);
    if (st == -1 || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

int tu_run_cli_env(const char *const *env, const char *args, char **out, char **err, int *signo)
{
    const char *cli = getenv("GPUNAS_CLI");
    if (!cli)
        cli = "./gpunas";
    char *o = tu_tmp_path("cli.out"), *e = tu_tmp_path("cli.err");
    char *copy = strdup(args);
    char *argv[256];
    int argc = 0;
    argv[argc++] = (char *)cli;
    for (char *t = strtok(copy, " "); t && argc < 255; t = strtok(NULL, " "))
        argv[argc++] = t;
    argv[argc] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        for (int i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        int fo = open(o, O_WRONLY | O_CREAT | O_TRUNC, 0644), fe = open(e, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0)
            _exit(127);
        close(fo);
        close(fe);
        execv(cli, argv);
        _exit(127);
    }
    int st = 0;
    if (pid > 0)
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
    free(copy);
    if (out)
        *out = tu_read_file(o, NULL);
    if (err)
        *err = tu_read_file(e, NULL);
    unlink(o);
    unlink(e);
    free(o);
    free(e);
    if (signo)
        *signo = pid > 0 && WIFSIGNALED(st) ? WTERMSIG(st) : 0;
    if (pid < 0 || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

long tu_spawn_cli(const char *args)
{
    size_t n = strlen(args) + 4096;
    char *cmd = malloc(n);
    if (!cmd)
        return -1;
    const char *cli = getenv("GPUNAS_CLI");
    snprintf(cmd, n, "%s %s >/dev/null 2>&1 & echo $!", cli ? cli : "./gpunas", args);
    FILE *p = popen(cmd, "r");
    free(cmd);
    if (!p)
        return -1;
    long pid = -1;
    if (fscanf(p, "%ld", &pid) != 1)
        pid = -1;
    pclose(p);
    return pid;
}

/* ------------------------------------------------------------------ UNAS tests */

const char tu_tiny_space[] =
    "{\"name\": \"tiny\", \"in_channels\": 1, \"classes\": 4, \"resolutions\": [16],\n"
    " \"stages\": [\n"
    "  {\"stage\": 0, \"type\": \"head\", \"filters\": [8]},\n"
    "  {\"stage\": 1, \"type\": \"conv\", \"stride\": 1, \"kernel\": [3, 5], \"layers\": {\"min\": 0, \"max\": 2},\n"
    "   \"act\": [\"swish\"], \"filters\": [8]},\n"
    "  {\"stage\": 2, \"type\": \"fused_irb\", \"stride\": 2, \"kernel\": [3, 5],\n"
    "   \"layers\": {\"min\": 1, \"max\": 2},\n"
    "   \"act\": [\"swish\"], \"expansion\": [2, 4], \"filters\": [16], \"se\": [false, true]},\n"
    "  {\"stage\": 3, \"type\": \"irb\", \"stride\": 1, \"kernel\": [3], \"layers\": {\"min\": 0, \"max\": 2},\n"
    "   \"act\": [\"swish\", \"relu\"], \"expansion\": [2, 3], \"filters\": [24], \"se\": [true, false]}],\n"
    " \"tail\": {\"filters\": [32]}}\n";

/* The layer keys of path d into p (keys already there are kept). */
static int profile_path(gn_supernet *sn, const int *d, gn_lat_profile *p, gn_error *err)
{
    gn_arch *a;
    if (gn_supernet_decode(sn, d, &a, err))
        return -1;
    int rc = 0;
    for (int li = 1; !rc && li < a->n_layers; li++) {
        gn_lat_entry e;
        memset(&e, 0, sizeof e);
        if ((rc = gn_lat_key(a, li, 1, e.key, sizeof e.key, err)) != 0 || gn_lat_profile_find(p, e.key))
            continue;
        e.type = a->layers[li].type;
        e.gflop = gn_lat_layer_flops(&a->layers[li], 1) / 1e9;
        e.mb = gn_lat_layer_bytes(&a->layers[li], 1) / 1e6;
        e.ms = 0.05 + 3000.0 * e.gflop + 5.0 * e.mb + (a->layers[li].use_se ? 0.5 : 0.0) +
               0.01 * a->layers[li].mid_ch;
        e.cv = 0.01;
        rc = gn_lat_profile_add(p, &e, err);
    }
    gn_arch_free(a);
    return rc ? -1 : 0;
}

int tu_unas_profile(gn_supernet *sn, gn_lat_profile *p, gn_error *err)
{
    int M = gn_supernet_num_cats(sn), d[GN_ONESHOT_MAX_M];
    long members = 1;
    for (int m = 0; m < M; m++)
        members *= gn_supernet_get_cat(sn, m)->k;
    gn_lat_profile_init(p);
    p->batch = 1;
    for (long i = 0; i < members; i++) {
        long r = i; /* member i -> d, mixed radix, the last categorical fastest */
        for (int m = M - 1; m >= 0; m--) {
            d[m] = (int)(r % gn_supernet_get_cat(sn, m)->k);
            r /= gn_supernet_get_cat(sn, m)->k;
        }
        if (profile_path(sn, d, p, err))
            return -1;
    }
    p->calibrated = true;
    p->calib.model = GN_LAT_MODEL_PER_TYPE;
    for (int t = 0; t < GN_LAT_NTYPES; t++)
        p->calib.scale[t] = 0.8 + 0.15 * t;
    p->calib.intercept_ms = 0.37;
    return 0;
}

double tu_relu_input(const gn_net *net, int node, size_t j)
{
    const gn_node *nd = &net->nodes[node];
    if (!nd->fused_into_bn)
        return net->v[nd->in].data[j];
    const gn_node *bn = nd - 1;
    const gn_tensor *x = &net->v[bn->in];
    int c = x->layout == GN_LAYOUT_NHWC ? (int)(j % (size_t)x->c) : (int)(j / ((size_t)x->h * x->w) % (size_t)x->c);
    double inv = 1.0 / sqrt((double)bn->bvar.data[c] + (double)bn->eps);
    return ((double)x->data[j] - bn->bmean.data[c]) * inv * net->params[bn->gamma].value.data[c] +
           net->params[bn->beta].value.data[c];
}

double tu_maxabs(const float *a, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(a[i]));
    return m;
}

void tu_assert_close(const char *what, const float *got, const float *ref, size_t n, double tol)
{
    double scale = fmax(1.0, tu_maxabs(ref, n)), worst = 0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i]))
            fail_msg("%s: element %zu is %g", what, i, (double)got[i]);
        double d = fabs((double)got[i] - ref[i]);
        if (d > worst)
            worst = d, wi = i;
    }
    if (worst > tol * scale)
        fail_msg("%s: max |diff| %.3g at %zu (got %.9g, ref %.9g) > %.3g", what, worst, wi, (double)got[wi],
                 (double)ref[wi], tol * scale);
}

/* ------------------------------------------------------------------ data */
static void put_be32(FILE *f, uint32_t v)
{
    unsigned char b[4] = {v >> 24, v >> 16, v >> 8, v};
    fwrite(b, 1, 4, f);
}

void tu_write_idx(const char *dir, const char *prefix, int n, int side, int classes, uint64_t seed)
{
    int grid = 1;
    while (grid * grid < classes)
        grid++;
    const int block = side / grid;
    char p[4096];
    snprintf(p, sizeof p, "%s/%s-images-idx3-ubyte", dir, prefix);
    FILE *fi = fopen(p, "wb");
    snprintf(p, sizeof p, "%s/%s-labels-idx1-ubyte", dir, prefix);
    FILE *fl = fopen(p, "wb");
    assert_non_null(fi);
    assert_non_null(fl);
    put_be32(fi, 0x803), put_be32(fi, n), put_be32(fi, side), put_be32(fi, side);
    put_be32(fl, 0x801), put_be32(fl, n);
    unsigned char *px = malloc((size_t)side * side);
    assert_non_null(px);
    gn_rng r;
    gn_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        int c = (int)gn_rng_below(&r, classes);
        unsigned char lab = (unsigned char)c;
        for (int y = 0; y < side; y++)
            for (int x = 0; x < side; x++) {
                int in = y / block == c / grid && x / block == c % grid;
                double v = (in ? 170 : 50) + 30 * gn_rng_normal(&r);
                px[y * side + x] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        fwrite(px, 1, (size_t)side * side, fi);
        fwrite(&lab, 1, 1, fl);
    }
    free(px);
    assert_int_equal(fclose(fi), 0);
    assert_int_equal(fclose(fl), 0);
}
