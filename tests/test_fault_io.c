/*
 * test_fault_io.c — every file gpunas writes, under a full disk (ENOSPC) and a failing
 * disk (EIO).
 *
 * The real commands run with tests/fault/fault_shim.c preloaded (LD_PRELOAD), which
 * fails the N-th open-for-writing, write, fsync, rename or close on files in the
 * command's folder.  Each case starts from a state with complete files of an earlier
 * run (so a rewrite has a previous version to keep) and first runs once without a
 * fault, tracing every counted call with its call site; then, for each errno and
 * each kind of call, it fails the N-th call for every N at which a new (call site,
 * file) pair appears (GN_FAULT_SWEEP=full: every N, until the command runs without
 * meeting its fault).  After every faulted run:
 *   - no signal, exit 0 (the fault was absorbed) or 1 with exactly one stderr line
 *     that names the file (or its folder) and the reason (strerror's text, or
 *     SQLite's "database or disk is full" / "disk I/O error") — so no sanitizer
 *     report either in the ASan build;
 *   - every file in the folder is its previous version or the complete new one (byte
 *     for byte; files with times or measured latencies in them are checked by
 *     parsing them whole instead), no file of the earlier run is lost, no *.tmp is
 *     left behind;
 *   - cases that say so run the command again without a fault and must reach the
 *     fault-free result (train: the same final weights, byte for byte);
 *   - the trial store passes PRAGMA integrity_check and still holds every trial
 *     committed before, unchanged.
 * The outcome of every faulted run goes into a matrix (case x call x errno), printed
 * at the end (bench/RESULTS.md "Fault injection and kill -9").
 *
 * Cases: init (safetensors), export (ONNX), format (config JSON), predict --output
 * (.npy), train --resume (config, metrics.jsonl, checkpoint, weights), train --resume
 * of a finished run (weights rewritten), the trial store through the library (create;
 * insert + finish + meta on a store with committed trials), trials (read-only listing;
 * SQLite writes at close), search --resume (store, summary, winners, pareto.png), and
 * hub build (publishing a trained model: its staging folder, the rename into the hub,
 * hub.json, pareto.png).
 *
 * Cost: gpunas's own writers pass errno only to strerror, so their cases use one
 * errno per site, alternating ENOSPC and EIO; the store cases (SQLite tells the two
 * apart) get both at every site.  In the ASan build every case alternates, and the
 * search and hub cases (a whole command per fault) try two N per kind of call, the
 * first and the last.  By hand: GN_FAULT_SWEEP=full tries both errnos at every N of
 * every case, GN_FAULT_CASES=init,train-resume,... runs only the cases named, and
 * GN_FAULT_VERBOSE=1 prints every faulted run's error line too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gpunas/npy.h"
#include "gpunas/onnx.h"
#include "gpunas/safetensors.h"
#include "gpunas/store.h"
#include "testutil.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

static const char *OPS[] = {"open", "write", "fsync", "rename", "close"};
#define N_OPS 5
static const struct {
    const char *name;
    int value;
} ERRS[] = {{"ENOSPC", ENOSPC}, {"EIO", EIO}};

static char *root, *data_dir, *tiny_cfg, *self_exe;
static const char *shim;
static int full_sweep, verbose;
static double t_start;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (system(cmd) != 0)
        fail_msg("command failed: %s", cmd);
}

/* ------------------------------------------------------------------ snapshots */
typedef struct {
    char rel[512];
    unsigned char *data;
    size_t n;
    int dir;
} entry;

typedef struct {
    entry *e;
    int n;
} snap;

static void snap_walk(const char *base, const char *rel, snap *s)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s%s%s", base, rel[0] ? "/" : "", rel);
    DIR *d = opendir(p);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char r[512], full[PATH_MAX];
        snprintf(r, sizeof r, "%s%s%s", rel, rel[0] ? "/" : "", de->d_name);
        snprintf(full, sizeof full, "%s/%s", base, r);
        struct stat st;
        if (lstat(full, &st) != 0)
            continue;
        s->e = realloc(s->e, sizeof *s->e * (size_t)(s->n + 1));
        entry *e = &s->e[s->n++];
        memset(e, 0, sizeof *e);
        snprintf(e->rel, sizeof e->rel, "%s", r);
        if (S_ISDIR(st.st_mode)) {
            e->dir = 1;
            snap_walk(base, r, s);
        } else {
            e->data = (unsigned char *)tu_read_file(full, &e->n);
        }
    }
    closedir(d);
}

static void snap_take(const char *dir, snap *s)
{
    s->e = NULL;
    s->n = 0;
    snap_walk(dir, "", s);
}

static void snap_free(snap *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->e[i].data);
    free(s->e);
    s->e = NULL;
    s->n = 0;
}

static const entry *snap_find(const snap *s, const char *rel)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->e[i].rel, rel))
            return &s->e[i];
    return NULL;
}

static int same(const entry *a, const entry *b)
{
    if (!a || !b)
        return !a && !b;
    if (a->dir || b->dir)
        return a->dir && b->dir;
    return a->n == b->n && memcmp(a->data, b->data, a->n) == 0;
}

/* ------------------------------------------------------------------ traces */
typedef struct {
    char op[16];
    long n;
    char site[128];
    char path[PATH_MAX];
    char result[32];
} tline;

static int read_trace(const char *path, tline **out)
{
    *out = NULL;
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int n = 0, cap = 0;
    char line[PATH_MAX + 512];
    while (fgets(line, sizeof line, f)) {
        tline t;
        int pid;
        long seq;
        char r1[16], r2[16] = "";
        int k = sscanf(line, "%d %ld %15s %ld %127s %4095s %15s %15s", &pid, &seq, t.op, &t.n, t.site, t.path, r1, r2);
        if (k < 7)
            continue;
        snprintf(t.result, sizeof t.result, "%s%s%s", r1, k == 8 ? " " : "", k == 8 ? r2 : "");
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            *out = realloc(*out, sizeof **out * (size_t)cap);
        }
        (*out)[n++] = t;
    }
    fclose(f);
    return n;
}

/* ------------------------------------------------------------------ file checks */
/* A file with times or measurements in it is complete when it parses whole. */
static int valid_file(const char *path, const char *rel, const entry *e, char *why, size_t cap)
{
    const char *ext = strrchr(rel, '.');
    ext = ext ? ext : "";
    if (!strcmp(ext, ".json")) {
        json_error_t je;
        json_t *j = json_loadb((const char *)e->data, e->n, 0, &je);
        json_decref(j);
        if (!j)
            snprintf(why, cap, "%s: not whole JSON: %s", rel, je.text);
        return j != NULL;
    }
    if (!strcmp(ext, ".jsonl")) {
        if (e->n && e->data[e->n - 1] != '\n') {
            snprintf(why, cap, "%s: ends in half a line", rel);
            return 0;
        }
        char *copy = strndup((const char *)e->data, e->n);
        int ok = 1, epoch = 0;
        for (char *l = strtok(copy, "\n"); l && ok; l = strtok(NULL, "\n")) {
            json_t *j = json_loads(l, 0, NULL);
            ok = j && json_integer_value(json_object_get(j, "epoch")) == ++epoch;
            json_decref(j);
        }
        free(copy);
        if (!ok)
            snprintf(why, cap, "%s: a line is not the next epoch's whole JSON", rel);
        return ok;
    }
    if (!strcmp(ext, ".png")) {
        int ok = e->n > 20 && !memcmp(e->data, "\x89PNG\r\n\x1a\n", 8) && !memcmp(e->data + e->n - 8, "IEND", 4);
        if (!ok)
            snprintf(why, cap, "%s: not a whole PNG", rel);
        return ok;
    }
    if (!strcmp(ext, ".safetensors")) {
        gn_st_file *f;
        gn_error err;
        if (gn_st_open(path, &f, &err)) {
            snprintf(why, cap, "%s", err.msg);
            return 0;
        }
        gn_st_close(f);
        return 1;
    }
    if (!strcmp(ext, ".onnx")) {
        gn_onnx_info info;
        gn_error err;
        if (gn_onnx_read_info(path, &info, &err)) {
            snprintf(why, cap, "%s", err.msg);
            return 0;
        }
        return 1;
    }
    if (!strcmp(ext, ".md")) {
        if (e->n < 100 || e->data[e->n - 1] != '\n')
            snprintf(why, cap, "%s: not a whole model card", rel);
        return e->n >= 100 && e->data[e->n - 1] == '\n';
    }
    return 1; /* the store (search.db*) is checked by the case */
}

/* ------------------------------------------------------------------ cases */
typedef struct fcase fcase;
struct fcase {
    const char *name;
    char pristine[1024];     /* the state before the command */
    char work[1024];         /* where it runs (the shim's prefix) */
    char args[8192];         /* gpunas arguments, or "@store OP" for the library child */
    const char *volatile_glob[6]; /* files compared by parsing, not bytes */
    int recover;             /* rerun without a fault: the fault-free files again */
    int one_errno;           /* one errno per site (alternating) */
    int max_runs;            /* cap on the N tried per op (0: none; >= 2, the first and last kept) */
    const char *collapse_glob; /* files matching it count as one file for the plan */
    void (*check)(const fcase *c, int failed, char *why, size_t cap); /* extra invariants */
    /* results */
    int runs[N_OPS][2], err_old[N_OPS][2], err_new[N_OPS][2], ok[N_OPS][2], warn[N_OPS][2], missed[N_OPS][2];
    char files[N_OPS][512];
    double seconds;
};

static int is_volatile(const fcase *c, const char *rel)
{
    for (int i = 0; i < 6 && c->volatile_glob[i]; i++)
        if (fnmatch(c->volatile_glob[i], rel, 0) == 0)
            return 1;
    return 0;
}

static void restore(const fcase *c) { sh("rm -rf %s && cp -a %s %s", c->work, c->pristine, c->work); }

typedef struct {
    int rc, sig;
    char *out, *err;
} result;

static void run(const fcase *c, const char *fault, const char *trace, result *r)
{
    char e_pre[PATH_MAX + 32], e_shim[PATH_MAX + 32], e_fault[128], e_trace[PATH_MAX + 32], e_asan[1024];
    snprintf(e_pre, sizeof e_pre, "GN_FAULT_PREFIX=%s", c->work);
    snprintf(e_shim, sizeof e_shim, "LD_PRELOAD=%s", shim);
    snprintf(e_fault, sizeof e_fault, "GN_FAULT=%s", fault ? fault : "");
    snprintf(e_trace, sizeof e_trace, "GN_FAULT_TRACE=%s", trace ? trace : "");
    /* the shim comes before the sanitizer runtime in the preload order */
    const char *asan = getenv("ASAN_OPTIONS");
    snprintf(e_asan, sizeof e_asan, "ASAN_OPTIONS=%s%sverify_asan_link_order=0", asan ? asan : "",
             asan && *asan ? ":" : "");
    const char *env[] = {e_pre, e_shim, e_fault, e_trace, e_asan, NULL};
    if (trace)
        unlink(trace);
    if (!strncmp(c->args, "@store ", 7)) {
        /* the library, in a child of this test binary */
        char args[4200];
        snprintf(args, sizeof args, "--store-child %s %s", c->work, c->args + 7);
        char *saved = getenv("GPUNAS_CLI") ? strdup(getenv("GPUNAS_CLI")) : NULL;
        setenv("GPUNAS_CLI", self_exe, 1);
        r->rc = tu_run_cli_env(env, args, &r->out, &r->err, &r->sig);
        if (saved)
            setenv("GPUNAS_CLI", saved, 1);
        free(saved);
        return;
    }
    r->rc = tu_run_cli_env(env, c->args, &r->out, &r->err, &r->sig);
}

static void result_free(result *r)
{
    free(r->out);
    free(r->err);
}

/* Does the one-line message name the file the fault hit, and the reason? */
static int names_file_and_reason(const char *msg, const char *work, const char *path, int e)
{
    char name[PATH_MAX];
    const char *slash = strrchr(path, '/');
    snprintf(name, sizeof name, "%s", slash ? slash + 1 : path);
    if (!strcmp(path, work)) /* the folder itself */
        snprintf(name, sizeof name, "%s", path);
    size_t n = strlen(name);
    static const char *suffixes[] = {".tmp", "-wal", "-journal", "-shm"};
    for (int i = 0; i < 4; i++) {
        size_t k = strlen(suffixes[i]);
        if (n > k && !strcmp(name + n - k, suffixes[i]))
            name[n - k] = 0;
    }
    if (!strstr(msg, name))
        return 0;
    if (strstr(msg, strerror(e)))
        return 1;
    /* SQLite's reasons: its texts for ENOSPC and EIO; and after a failed open (where
     * it retries read-only and the errno is lost) "unable to open", or, when the
     * read-only retry worked, the refused write */
    return (e == ENOSPC && strstr(msg, "database or disk is full")) || strstr(msg, "disk I/O error") ||
           strstr(msg, "unable to open database file") || strstr(msg, "attempt to write a readonly database");
}

/* Every file is its previous version or its fault-free one; none of the previous
 * ones is lost; no *.tmp.  0 ok, else why. */
static int check_files(const fcase *c, const snap *before, const snap *clean, char *why, size_t cap)
{
    snap now;
    snap_take(c->work, &now);
    int bad = 0;
    for (int i = 0; i < now.n && !bad; i++) {
        const entry *e = &now.e[i];
        size_t len = strlen(e->rel);
        if (len > 4 && !strcmp(e->rel + len - 4, ".tmp")) {
            snprintf(why, cap, "%s left behind", e->rel);
            bad = 1;
            break;
        }
        if (e->dir)
            continue;
        const entry *b = snap_find(before, e->rel), *cl = snap_find(clean, e->rel);
        char full[PATH_MAX];
        snprintf(full, sizeof full, "%s/%s", c->work, e->rel);
        if (is_volatile(c, e->rel)) {
            if (!same(e, b) && !valid_file(full, e->rel, e, why, cap))
                bad = 1;
        } else if (!same(e, b) && !same(e, cl)) {
            snprintf(why, cap, "%s: neither its previous version (%zu bytes) nor the fault-free one (%zu bytes): %zu bytes",
                     e->rel, b ? b->n : 0, cl ? cl->n : 0, e->n);
            bad = 1;
        }
    }
    for (int i = 0; i < before->n && !bad; i++) {
        const entry *b = &before->e[i];
        if (!snap_find(&now, b->rel) && snap_find(clean, b->rel)) {
            snprintf(why, cap, "%s of the earlier run is gone", b->rel);
            bad = 1;
        }
    }
    snap_free(&now);
    return bad;
}

/* The outcome for the file the fault hit: 0 previous version (or absent as before),
 * 1 the new one, -1 neither (a volatile file: judged by check_files). */
static int target_state(const fcase *c, const char *path, const snap *before, const snap *clean)
{
    size_t wl = strlen(c->work);
    if (strncmp(path, c->work, wl) != 0 || path[wl] != '/')
        return -1;
    char rel[512];
    snprintf(rel, sizeof rel, "%s", path + wl + 1);
    size_t n = strlen(rel);
    if (n > 4 && !strcmp(rel + n - 4, ".tmp"))
        rel[n - 4] = 0;
    char full[PATH_MAX];
    snprintf(full, sizeof full, "%s/%s", c->work, rel);
    entry now;
    memset(&now, 0, sizeof now);
    struct stat st;
    int exists = lstat(full, &st) == 0;
    if (exists && S_ISDIR(st.st_mode))
        now.dir = 1;
    else if (exists)
        now.data = (unsigned char *)tu_read_file(full, &now.n);
    const entry *b = snap_find(before, rel), *cl = snap_find(clean, rel);
    int st_ = -1;
    if (exists ? same(&now, b) : !b)
        st_ = 0;
    else if (exists ? same(&now, cl) : !cl)
        st_ = 1;
    free(now.data);
    return st_;
}

static void sweep(fcase *c)
{
    const char *only = getenv("GN_FAULT_CASES"); /* by hand: a comma-separated list of cases */
    if (only && *only) {
        char list[1024];
        snprintf(list, sizeof list, ",%s,", only);
        char me[128];
        snprintf(me, sizeof me, ",%s,", c->name);
        if (!strstr(list, me))
            return;
    }
    double t0 = now_s();
    char trace[PATH_MAX + 16];
    snprintf(trace, sizeof trace, "%s.trace", c->work);
    restore(c);
    snap before;
    snap_take(c->pristine, &before);
    result r;
    run(c, NULL, trace, &r);
    if (r.rc != 0)
        fail_msg("%s: the fault-free run failed (%d, signal %d): %s", c->name, r.rc, r.sig, r.err);
    result_free(&r);
    snap clean;
    snap_take(c->work, &clean);
    tline *ops;
    int n_ops = read_trace(trace, &ops);
    assert_true(n_ops > 0);

    for (int op = 0; op < N_OPS; op++) {
        /* the N to fail: where a new (site, file) pair appears (or every N) */
        long plan[4096];
        int n_plan = 0;
        char *seen[512];
        int n_seen = 0;
        for (int i = 0; i < n_ops && n_plan < 4096; i++) {
            if (strcmp(ops[i].op, OPS[op]))
                continue;
            char key[PATH_MAX + 256];
            const char *kp = ops[i].path;
            size_t wl = strlen(c->work);
            if (c->collapse_glob && !strncmp(kp, c->work, wl) && kp[wl] == '/' &&
                fnmatch(c->collapse_glob, kp + wl + 1, 0) == 0)
                kp = c->collapse_glob; /* files alike: one of them stands for all */
            snprintf(key, sizeof key, "%s %s", ops[i].site, kp);
            int dup = 0;
            for (int k = 0; k < n_seen && !dup; k++)
                dup = !strcmp(seen[k], key);
            if (!dup && n_seen < 512)
                seen[n_seen++] = strdup(key);
            if (!dup || full_sweep)
                plan[n_plan++] = ops[i].n;
        }
        for (int k = 0; k < n_seen; k++)
            free(seen[k]);
        if (c->max_runs > 1 && n_plan > c->max_runs && !full_sweep) { /* spread over the plan, ends included */
            for (int i = 0; i < c->max_runs; i++)
                plan[i] = plan[(int)((long)i * (n_plan - 1) / (c->max_runs - 1))];
            n_plan = c->max_runs;
        }
        for (int pi = 0; pi < n_plan; pi++) {
            for (int ei = 0; ei < 2; ei++) {
                if ((c->one_errno || SANITIZED) && !full_sweep && (pi + op) % 2 != ei)
                    continue;
                char fault[64], why[16384] = "";
                snprintf(fault, sizeof fault, "%s:%s:%ld", OPS[op], ERRS[ei].name, plan[pi]);
                restore(c);
                run(c, fault, trace, &r);
                tline *hit;
                int n_hit = read_trace(trace, &hit), at = -1;
                for (int i = 0; i < n_hit; i++)
                    if (!strncmp(hit[i].result, "INJECT", 6))
                        at = i;
                c->runs[op][ei]++;
                int bad = 0;
                if (r.rc < 0) {
                    snprintf(why, sizeof why, "killed by signal %d", r.sig);
                    bad = 1;
                } else if (at < 0) {
                    c->missed[op][ei]++; /* the calls came in another order this time */
                    fprintf(stderr, "%s, %s: not reached\n", c->name, fault);
                    if (r.rc != 0) {
                        snprintf(why, sizeof why, "fault not reached, yet exit %d: %s", r.rc, r.err);
                        bad = 1;
                    }
                } else if (r.rc == 0) {
                    /* absorbed: a warning that names the file (an optional output), or
                     * silently by SQLite (a folder's fsync, a close, the checkpoint at
                     * close, a read-only retry) */
                    int sqlite_file = strstr(hit[at].site, "libsqlite3") != NULL;
                    if (count_lines(r.err) == 1 && strstr(r.err, "warning") &&
                        names_file_and_reason(r.err, c->work, hit[at].path, ERRS[ei].value)) {
                        c->warn[op][ei]++;
                    } else if (r.err[0] == 0 && sqlite_file) {
                        c->ok[op][ei]++;
                    } else {
                        snprintf(why, sizeof why, "exit 0 after a fault on %s %s, stderr: '%s'", hit[at].op,
                                 hit[at].path, r.err);
                        bad = 1;
                    }
                    fprintf(stderr, "%s, %s: exit 0 (%s %s): %s", c->name, fault, hit[at].op, hit[at].path,
                            r.err[0] ? r.err : "no message\n");
                } else if (r.rc != 1 || count_lines(r.err) != 1 || strncmp(r.err, "gpunas", 6) != 0) {
                    snprintf(why, sizeof why, "exit %d, stderr not one 'gpunas...' line: %s", r.rc, r.err);
                    bad = 1;
                } else if (!names_file_and_reason(r.err, c->work, hit[at].path, ERRS[ei].value)) {
                    snprintf(why, sizeof why, "the message does not name %s and '%s': %s", hit[at].path,
                             strerror(ERRS[ei].value), r.err);
                    bad = 1;
                } else {
                    /* a folder's fsync follows the rename into it: judge that file */
                    const char *target = hit[at].path;
                    struct stat tst;
                    if (stat(target, &tst) == 0 && S_ISDIR(tst.st_mode))
                        for (int i = at - 1; i >= 0; i--)
                            if (!strcmp(hit[i].op, "rename")) {
                                target = hit[i].path;
                                break;
                            }
                    int ts = target_state(c, target, &before, &clean);
                    if (ts == 1)
                        c->err_new[op][ei]++;
                    else
                        c->err_old[op][ei]++;
                }
                if (at >= 0) {
                    const char *p = hit[at].path + (strncmp(hit[at].path, c->work, strlen(c->work)) ? 0 : strlen(c->work) + 1);
                    char base[PATH_MAX];
                    snprintf(base, sizeof base, "%s", p[0] ? p : ".");
                    size_t bl = strlen(base);
                    if (bl > 4 && !strcmp(base + bl - 4, ".tmp"))
                        base[bl - 4] = 0;
                    if (!strstr(c->files[op], base) && strlen(c->files[op]) + bl + 3 < sizeof c->files[op])
                        snprintf(c->files[op] + strlen(c->files[op]), sizeof c->files[op] - strlen(c->files[op]),
                                 "%s%s", c->files[op][0] ? ", " : "", base);
                }
                if (!bad)
                    bad = check_files(c, &before, &clean, why, sizeof why);
                if (!bad && c->check)
                    c->check(c, r.rc != 0, why, sizeof why), bad = why[0] != 0;
                if (!bad && c->recover) {
                    result r2;
                    run(c, NULL, NULL, &r2);
                    if (r2.rc != 0) {
                        snprintf(why, sizeof why, "the run after the fault failed (%d): %s", r2.rc, r2.err);
                        bad = 1;
                    } else {
                        snap after;
                        snap_take(c->work, &after);
                        for (int i = 0; i < clean.n && !bad; i++)
                            if (!clean.e[i].dir && !is_volatile(c, clean.e[i].rel) &&
                                !same(&clean.e[i], snap_find(&after, clean.e[i].rel))) {
                                snprintf(why, sizeof why, "after recovery %s differs from the fault-free run",
                                         clean.e[i].rel);
                                bad = 1;
                            }
                        snap_free(&after);
                    }
                    result_free(&r2);
                }
                if (bad)
                    fail_msg("%s, %s (hit: %s %s): %s", c->name, fault, at >= 0 ? hit[at].op : "-",
                             at >= 0 ? hit[at].path : "-", why);
                if (verbose && r.rc == 1)
                    fprintf(stderr, "%s, %s: exit 1 (%s %s): %s", c->name, fault, hit[at].op, hit[at].path, r.err);
                free(hit);
                result_free(&r);
            }
        }
    }
    free(ops);
    snap_free(&before);
    snap_free(&clean);
    unlink(trace);
    c->seconds = now_s() - t0;
}

/* ------------------------------------------------------------------ the store */
#define STORE_TRIALS 5

static void add_trial(gn_store *st, int k, int finish)
{
    gn_error err = {{0}};
    gn_trial t;
    gn_trial_init(&t);
    char enc[32];
    snprintf(enc, sizeof enc, "%d,%d,%d", k, k + 1, k + 2);
    t.encoding = enc;
    t.config = (char *)"[]";
    t.optimizer = (char *)"test";
    t.seq = k;
    if (gn_store_insert_trial(st, &t, &err))
        fail_msg("%s", err.msg);
    if (finish) {
        t.status = GN_TRIAL_DONE;
        t.val_acc = 0.5 + 0.01 * k;
        t.latency_ms = 0.1 * k;
        if (gn_store_finish_trial(st, t.id, &t, &err))
            fail_msg("%s", err.msg);
    }
}

/* The child: one store operation as a search does it; exit 1 with one line. */
static int store_child(const char *dir, const char *op)
{
    char db[PATH_MAX];
    snprintf(db, sizeof db, "%s/store.db", dir);
    gn_store *st;
    gn_error err = {{0}};
    if (gn_store_open(db, GN_STORE_CREATE, &st, &err)) {
        fprintf(stderr, "gpunas: %s\n", err.msg);
        return 1;
    }
    int rc = 0;
    if (!strcmp(op, "create")) {
        rc = gn_store_put_meta(st, "nas.seed", "3", &err);
    } else {
        gn_trial t;
        gn_trial_init(&t);
        t.encoding = (char *)"9,9,9";
        t.optimizer = (char *)"test";
        t.seq = 99;
        rc = gn_store_insert_trial(st, &t, &err);
        if (!rc) {
            t.status = GN_TRIAL_DONE;
            t.val_acc = 0.75;
            rc = gn_store_finish_trial(st, t.id, &t, &err);
        }
        if (!rc)
            rc = gn_store_put_meta(st, "nas.note", "after", &err);
    }
    if (rc)
        fprintf(stderr, "gpunas: %s\n", err.msg);
    gn_store_close(st);
    return rc ? 1 : 0;
}

/* integrity_check, and the committed trials of the pristine store unchanged */
static void check_store_file(const char *db, const char *pristine_db, char *why, size_t cap)
{
    struct stat st;
    if (stat(db, &st) != 0)
        return; /* not created (the create case) */
    sqlite3 *h;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        snprintf(why, cap, "%s: cannot open: %s", db, sqlite3_errmsg(h));
        sqlite3_close(h);
        return;
    }
    sqlite3_stmt *q;
    sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &q, NULL);
    if (sqlite3_step(q) != SQLITE_ROW || strcmp((const char *)sqlite3_column_text(q, 0), "ok") != 0)
        snprintf(why, cap, "%s: integrity_check: %s", db,
                 sqlite3_column_text(q, 0) ? (const char *)sqlite3_column_text(q, 0) : sqlite3_errmsg(h));
    sqlite3_finalize(q);
    sqlite3_close(h);
    if (why[0] || !pristine_db || stat(pristine_db, &st) != 0)
        return;
    /* through gpunas's own reader: every trial of before, field for field */
    gn_store *a, *b;
    gn_error err = {{0}};
    char pcopy[PATH_MAX + 16];
    snprintf(pcopy, sizeof pcopy, "%s.copy", db);
    sh("cp %s %s && { [ ! -e %s-wal ] || cp %s-wal %s-wal; }", pristine_db, pcopy, pristine_db, pristine_db, pcopy);
    if (gn_store_open(db, 0, &a, &err) || gn_store_open(pcopy, 0, &b, &err)) {
        snprintf(why, cap, "reopening: %s", err.msg);
        return;
    }
    gn_trial_list la, lb;
    if (gn_store_list_trials(a, NULL, &la, &err) || gn_store_list_trials(b, NULL, &lb, &err)) {
        snprintf(why, cap, "listing: %s", err.msg);
    } else {
        for (int64_t i = 0; i < lb.n && !why[0]; i++) {
            const gn_trial *x = &lb.items[i], *y = i < la.n ? &la.items[i] : NULL;
            if (!y || y->id != x->id || strcmp(y->encoding, x->encoding) ||
                (x->status != GN_TRIAL_RUNNING && (y->status != x->status ||
                                                   !(y->val_acc == x->val_acc || (isnan(y->val_acc) && isnan(x->val_acc))))))
                snprintf(why, cap, "%s: committed trial %lld lost or changed", db, (long long)x->id);
        }
        gn_trial_list_free(&la);
        gn_trial_list_free(&lb);
    }
    gn_store_close(a);
    gn_store_close(b);
    char rm[4 * PATH_MAX];
    snprintf(rm, sizeof rm, "rm -f %s %s-wal %s-shm", pcopy, pcopy, pcopy);
    (void)!system(rm);
}

static void check_store(const fcase *c, int failed, char *why, size_t cap)
{
    char db[PATH_MAX], pdb[PATH_MAX];
    snprintf(db, sizeof db, "%s/store.db", c->work);
    snprintf(pdb, sizeof pdb, "%s/store.db", c->pristine);
    check_store_file(db, pdb, why, cap);
    if (why[0])
        return;
    /* and it takes the next write */
    gn_store *st;
    gn_error err = {{0}};
    if (gn_store_open(db, GN_STORE_CREATE, &st, &err)) {
        snprintf(why, cap, "the store does not open after the fault: %s", err.msg);
        return;
    }
    if (gn_store_put_meta(st, "after", "1", &err))
        snprintf(why, cap, "the store takes no write after the fault: %s", err.msg);
    gn_store_close(st);
}

static void check_search(const fcase *c, int failed, char *why, size_t cap)
{
    char db[PATH_MAX], pdb[PATH_MAX];
    snprintf(db, sizeof db, "%s/search.db", c->work);
    snprintf(pdb, sizeof pdb, "%s/search.db", c->pristine);
    check_store_file(db, pdb, why, cap);
}

/* hub: every model folder whole; hub.json (when there) lists only whole folders */
static void check_hub(const fcase *c, int failed, char *why, size_t cap)
{
    char hub[PATH_MAX];
    snprintf(hub, sizeof hub, "%s/hub", c->work);
    DIR *d = opendir(hub);
    if (!d)
        return;
    static const char *files[] = {"model.json", "config.json", "model.safetensors", "model.onnx", "README.md"};
    struct dirent *e;
    while ((e = readdir(d)) != NULL && !why[0]) {
        if (e->d_name[0] == '.')
            continue;
        char p[2 * PATH_MAX];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", hub, e->d_name);
        if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        for (size_t i = 0; i < 5; i++) {
            snprintf(p, sizeof p, "%s/%s/%s", hub, e->d_name, files[i]);
            if (stat(p, &st) != 0 || st.st_size == 0)
                snprintf(why, cap, "hub model folder %s without %s", e->d_name, files[i]);
        }
    }
    closedir(d);
}

/* ------------------------------------------------------------------ matrix */
static fcase *all_cases[16];
static int n_cases;

static void print_matrix(void)
{
    fprintf(stderr, "\nfault matrix (%s build; %s): runs: E/old = exit 1, one line naming the file and the "
                    "reason, the file as before; E/new = exit 1 ..., the new file complete; W = exit 0 with a "
                    "one-line warning naming the file and the reason (an optional output); OK = exit 0, "
                    "absorbed by SQLite; - = not reached\n",
            SANITIZED ? "ASan+UBSan" : "Release", full_sweep ? "every N" : "every (call site, file)");
    fprintf(stderr, "| case | call | ENOSPC | EIO | files hit |\n|---|---|---|---|---|\n");
    for (int k = 0; k < n_cases; k++) {
        fcase *c = all_cases[k];
        for (int op = 0; op < N_OPS; op++) {
            if (!c->runs[op][0] && !c->runs[op][1])
                continue;
            char cell[2][128];
            for (int ei = 0; ei < 2; ei++) {
                int o = 0;
                cell[ei][0] = 0;
                if (!c->runs[op][ei]) {
                    snprintf(cell[ei], sizeof cell[ei], "(as the other)");
                    continue;
                }
                o += snprintf(cell[ei] + o, sizeof cell[ei] - o, "%d:", c->runs[op][ei]);
                if (c->err_old[op][ei])
                    o += snprintf(cell[ei] + o, sizeof cell[ei] - o, " %d E/old", c->err_old[op][ei]);
                if (c->err_new[op][ei])
                    o += snprintf(cell[ei] + o, sizeof cell[ei] - o, " %d E/new", c->err_new[op][ei]);
                if (c->warn[op][ei])
                    o += snprintf(cell[ei] + o, sizeof cell[ei] - o, " %d W", c->warn[op][ei]);
                if (c->ok[op][ei])
                    o += snprintf(cell[ei] + o, sizeof cell[ei] - o, " %d OK", c->ok[op][ei]);
                if (c->missed[op][ei])
                    o += snprintf(cell[ei] + o, sizeof cell[ei] - o, " %d -", c->missed[op][ei]);
            }
            fprintf(stderr, "| %s | %s | %s | %s | %s |\n", c->name, OPS[op], cell[0], cell[1], c->files[op]);
        }
    }
    for (int k = 0; k < n_cases; k++)
        fprintf(stderr, "%s: %.1f s\n", all_cases[k]->name, all_cases[k]->seconds);
    fprintf(stderr, "total %.1f s\n", now_s() - t_start);
}

static fcase *new_case(const char *name)
{
    fcase *c = calloc(1, sizeof *c);
    c->name = name;
    char buf[128];
    snprintf(buf, sizeof buf, "%s-pristine", name);
    char *p = tu_tmp_path(buf);
    snprintf(c->pristine, sizeof c->pristine, "%s", p);
    free(p);
    snprintf(buf, sizeof buf, "%s-work", name);
    p = tu_tmp_path(buf);
    snprintf(c->work, sizeof c->work, "%s", p);
    free(p);
    sh("rm -rf %s %s && mkdir -p %s", c->pristine, c->work, c->pristine);
    c->one_errno = 1; /* gpunas's writers hand errno only to strerror */
    all_cases[n_cases++] = c;
    return c;
}

static void cli_ok(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void cli_ok(const char *fmt, ...)
{
    char args[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    char *out, *err;
    int rc = tu_run_cli(args, &out, &err);
    if (rc != 0)
        fail_msg("gpunas %s: exit %d: %s %s", args, rc, out, err);
    free(out);
    free(err);
}

/* ------------------------------------------------------------------ tests */
static const char *TINY =
    "[{\"layer_type\":\"data\",\"img_resolution\":8,\"distill\":false},"
    "{\"layer_type\":\"head\",\"num_in_channels\":1,\"num_out_channels\":8,\"act\":\"relu\"},"
    "{\"layer_type\":\"irb\",\"num_in_channels\":8,\"num_out_channels\":8,\"stride\":1,\"expansion\":2,"
    "\"kernel_size\":3,\"act\":\"swish\",\"use_se\":true,\"stage\":1},"
    "{\"layer_type\":\"tail\",\"num_in_channels\":8,\"num_out_channels\":16,\"num_classes\":10}]";

static void test_export_writers(void **state)
{
    (void)state;
    char *cfg = tu_source_path("bench/nets/fmnist-tiny.json"), *other = tu_source_path("configs/fmnist-small.json");

    fcase *c = new_case("init");
    cli_ok("init %s -o %s/w.safetensors --seed 1", cfg, c->pristine);
    snprintf(c->args, sizeof c->args, "init %s -o %s/w.safetensors --seed 2", cfg, c->work);
    sweep(c);

    c = new_case("export");
    cli_ok("init %s -o %s/w1.safetensors --seed 1", cfg, c->pristine);
    cli_ok("init %s -o %s/w.safetensors --seed 2", cfg, c->pristine);
    cli_ok("export %s --weights %s/w1.safetensors -o %s/m.onnx", cfg, c->pristine, c->pristine);
    snprintf(c->args, sizeof c->args, "export %s --weights %s/w.safetensors -o %s/m.onnx", cfg, c->work, c->work);
    sweep(c);

    c = new_case("format");
    cli_ok("format %s -o %s/net.json", other, c->pristine);
    snprintf(c->args, sizeof c->args, "format %s -o %s/net.json", cfg, c->work);
    sweep(c);

    c = new_case("predict");
    cli_ok("init %s -o %s/w.safetensors --seed 1", cfg, c->pristine);
    {
        int64_t shape[4] = {2, 1, 28, 28};
        float x[2 * 28 * 28];
        for (int i = 0; i < 2 * 28 * 28; i++)
            x[i] = (float)((i * 37) % 101) / 101.0f;
        char p[PATH_MAX];
        gn_error err;
        snprintf(p, sizeof p, "%s/x.npy", c->pristine);
        assert_int_equal(gn_npy_write(p, 4, shape, x, &err), 0);
        for (int i = 0; i < 28 * 28; i++)
            x[i] = 0.5f;
        shape[0] = 1;
        snprintf(p, sizeof p, "%s/x1.npy", c->pristine);
        assert_int_equal(gn_npy_write(p, 4, shape, x, &err), 0);
    }
    cli_ok("predict %s --weights %s/w.safetensors --input %s/x1.npy --output %s/y.npy", cfg, c->pristine, c->pristine,
           c->pristine);
    snprintf(c->args, sizeof c->args, "predict %s --weights %s/w.safetensors --input %s/x.npy --output %s/y.npy", cfg,
             c->work, c->work, c->work);
    sweep(c);
    free(cfg);
    free(other);
}

#define TRAIN_ARGS "--epochs 2 --batch 32 --subset 128 --val-fraction 0.1 --threads 1 --warmup 0 --prefetch 1"

static void test_train(void **state)
{
    (void)state;
    fcase *c = new_case("train-resume");
    cli_ok("train %s --data %s " TRAIN_ARGS " --stop-after-epoch 1 --out %s/run", tiny_cfg, data_dir, c->pristine);
    snprintf(c->args, sizeof c->args, "train %s --data %s " TRAIN_ARGS " --out %s/run --resume", tiny_cfg, data_dir,
             c->work);
    c->volatile_glob[0] = "run/metrics.jsonl";
    c->recover = 1;
    sweep(c);

    c = new_case("train-final");
    cli_ok("train %s --data %s " TRAIN_ARGS " --out %s/run", tiny_cfg, data_dir, c->pristine);
    snprintf(c->args, sizeof c->args, "train %s --data %s " TRAIN_ARGS " --out %s/run --resume", tiny_cfg, data_dir,
             c->work);
    c->volatile_glob[0] = "run/metrics.jsonl";
    c->recover = 1;
    sweep(c);
}

static void test_store(void **state)
{
    (void)state;
    fcase *c = new_case("store-create");
    snprintf(c->args, sizeof c->args, "@store create");
    c->one_errno = 0; /* SQLite tells ENOSPC from EIO */
    c->volatile_glob[0] = "store.db*";
    c->check = check_store;
    sweep(c);

    c = new_case("store-write");
    {
        char db[PATH_MAX];
        snprintf(db, sizeof db, "%s/store.db", c->pristine);
        gn_store *st;
        gn_error err = {{0}};
        assert_int_equal(gn_store_open(db, GN_STORE_CREATE, &st, &err), 0);
        for (int k = 1; k <= STORE_TRIALS; k++)
            add_trial(st, k, k != 3);
        gn_store_close(st);
    }
    snprintf(c->args, sizeof c->args, "@store write");
    c->one_errno = 0;
    c->volatile_glob[0] = "store.db*";
    c->check = check_store;
    sweep(c);
}

#define SEARCH_ARGS                                                                                               \
    "--prune-samples 3 --proxy-subset 32 --proxy-batch 32 --lat-runs 3 --val-fraction 0.1 --threads 1 "          \
    "--lat-threads 1 --lat-duration 0 --tiers 50,100 --seed 3 --quiet --no-reference"

static void test_search_and_hub(void **state)
{
    (void)state;
    fcase *s = new_case("search-resume");
    cli_ok("search --data %s --out %s --trials 2 " SEARCH_ARGS, data_dir, s->pristine);
    snprintf(s->args, sizeof s->args, "search --data %s --out %s --trials 3 --resume " SEARCH_ARGS, data_dir,
             s->work);
    s->volatile_glob[0] = "*";
    s->check = check_search;
    s->max_runs = SANITIZED ? 2 : 0; /* a whole search per fault: trimmed under the sanitizers */
    sweep(s);

    fcase *t = new_case("trials");
    sh("cp -a %s/. %s/", s->pristine, t->pristine);
    snprintf(t->args, sizeof t->args, "trials %s/search.db", t->work);
    t->volatile_glob[0] = "*";
    t->check = check_search;
    sweep(t);

    /* hub: the state after training, before publishing (the build stopped by a failed
     * rename of the staging folder) */
    fcase *h = new_case("hub-build");
    sh("cp -a %s/. %s/", s->pristine, h->pristine);
    char args[4096];
    snprintf(args, sizeof args, "hub build %s --hub %s/hub --epochs 1 --subset 64 --lat-duration 0.05 --jobs 1 "
                                "--threads 1 --data %s",
             h->pristine, h->pristine, data_dir);
    {
        char e_pre[PATH_MAX + 32], e_shim[PATH_MAX + 32], e_asan[1024];
        snprintf(e_pre, sizeof e_pre, "GN_FAULT_PREFIX=%s/hub/fmnist", h->pristine);
        snprintf(e_shim, sizeof e_shim, "LD_PRELOAD=%s", shim);
        const char *asan = getenv("ASAN_OPTIONS");
        snprintf(e_asan, sizeof e_asan, "ASAN_OPTIONS=%s%sverify_asan_link_order=0", asan ? asan : "",
                 asan && *asan ? ":" : "");
        const char *env[] = {e_pre, e_shim, "GN_FAULT=rename:EIO:1", e_asan, NULL};
        char *out, *err;
        int sig;
        int rc = tu_run_cli_env(env, args, &out, &err, &sig);
        if (rc != 1 || !strstr(err, "cannot publish"))
            fail_msg("hub build stopped before publishing: exit %d: %s", rc, err);
        free(out);
        free(err);
    }
    snprintf(h->args, sizeof h->args, "hub build %s --hub %s/hub --epochs 1 --subset 64 --lat-duration 0.05 --jobs 1 "
                                      "--threads 1 --data %s",
             h->work, h->work, data_dir);
    h->volatile_glob[0] = "*";
    h->collapse_glob = "hub/.work/trial-*.staging/*"; /* the model's files: all alike */
    h->max_runs = SANITIZED ? 2 : 0;
    h->check = check_hub;
    sweep(h);
}

static void test_print(void **state)
{
    (void)state;
    print_matrix();
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "--store-child"))
        return store_child(argv[2], argv[3]);
    t_start = now_s();
    shim = getenv("GPUNAS_FAULT_SHIM");
    if (!shim || access(shim, R_OK) != 0) {
        fprintf(stderr, "test_fault_io: GPUNAS_FAULT_SHIM (the built libgn_fault_shim.so) is missing\n");
        return 1;
    }
    full_sweep = getenv("GN_FAULT_SWEEP") && !strcmp(getenv("GN_FAULT_SWEEP"), "full");
    verbose = getenv("GN_FAULT_VERBOSE") != NULL;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return 1;
    exe[n] = 0;
    self_exe = strdup(exe);
    root = tu_tmp_path("fault");
    data_dir = tu_tmp_path("fault-data");
    mkdir(data_dir, 0777);
    tu_write_idx(data_dir, "train", 600, 28, 10, 1);
    tu_write_idx(data_dir, "t10k", 100, 28, 10, 2);
    tiny_cfg = tu_tmp_path("fault-tiny.json");
    tu_write_file(tiny_cfg, TINY);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_export_writers),
        cmocka_unit_test(test_train),
        cmocka_unit_test(test_store),
        cmocka_unit_test(test_search_and_hub),
        cmocka_unit_test(test_print),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    for (int k = 0; k < n_cases; k++) {
        if (rc == 0)
            sh("rm -rf %s %s", all_cases[k]->pristine, all_cases[k]->work);
        free(all_cases[k]);
    }
    free(root);
    free(data_dir);
    free(tiny_cfg);
    free(self_exe);
    return rc;
}
