/*
 * test_fault_kill.c — kill -9 at random points of `gpunas train`, then --resume.
 *
 * configs/fmnist-small.json (208k params) trains 3 epochs on a Fashion-MNIST-shaped
 * data set written here (28x28, 10 classes; --subset 512, batch 64, 1 thread, no
 * warm-up).  First, training must be deterministic: two uninterrupted runs give the
 * same weights.safetensors byte for byte (otherwise the test stops and says so — a
 * resumed run could not be compared).  Then one run folder is killed over and over:
 *   - "timed" kills: SIGKILL after a random delay (0.05 s to about one run's length);
 *   - "I/O" kills: the process kills itself (tests/fault/fault_shim.c) at a random
 *     call of a checkpoint write (its open, one of its writes, the fsync, the close,
 *     just before or just after the rename), or at a random file call of the run
 *     folder (config.json, metrics.jsonl, weights.safetensors, the checkpoint);
 * and after each kill the next attempt runs with --resume (without it when no
 * checkpoint exists yet).  After every kill the checkpoint, when there is one, opens
 * and every tensor of it reads back whole, and the next --resume must accept it (an
 * exit 1 fails the test).  An attempt that ends before its kill completes the run: its
 * weights.safetensors must equal the uninterrupted run's byte for byte, and the next
 * run starts in a clean folder.  At the end a --resume without a kill must finish the
 * last run the same way, with one metrics line per epoch.  It prints how many kills there were and how many landed
 * inside a checkpoint write (the shim traces every file call: the last one before the
 * kill was on checkpoint.safetensors.tmp, or the shim killed at a checkpoint call).
 *
 * GN_KILL_LOOP=N sets the number of kills (default 24; 10 in the ASan build), and
 * GN_KILL_SEED the random seed (default: the time; printed, so a failure can be
 * replayed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gpunas/rng.h"
#include "gpunas/safetensors.h"
#include "testutil.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

static char *data_dir, *cfg;
static const char *shim, *cli;

#define TRAIN_ARGS "--epochs 3 --batch 64 --subset 512 --val-fraction 0.1 --threads 1 --warmup 0 --prefetch 1"
#define EPOCHS 3

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}


/* Start `gpunas train ... --out DIR [--resume]` with the given extra environment
 * (NULL-terminated), output to LOG; returns the pid. */
static pid_t start(const char *dir, int resume, const char *const *env, const char *log)
{
    char out[PATH_MAX + 8];
    snprintf(out, sizeof out, "%s", dir);
    char *argv[64];
    int argc = 0;
    char args[] = "train CFG --data DATA " TRAIN_ARGS " --out OUT";
    argv[argc++] = (char *)cli;
    for (char *t = strtok(args, " "); t; t = strtok(NULL, " "))
        argv[argc++] = !strcmp(t, "CFG") ? cfg : !strcmp(t, "DATA") ? data_dir : !strcmp(t, "OUT") ? out : t;
    if (resume)
        argv[argc++] = (char *)"--resume";
    argv[argc] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        for (int i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        if (!freopen(log, "w", stdout) || !freopen(log, "a", stderr))
            _exit(126);
        execv(cli, argv);
        _exit(127);
    }
    return pid;
}

static int wait_for(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return st;
}

static char *file_in(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int exists(const char *dir, const char *name)
{
    char *p = file_in(dir, name);
    struct stat st;
    int e = stat(p, &st) == 0;
    free(p);
    return e;
}

/* The checkpoint opens, says what it is, and every tensor reads back whole. */
static int checkpoint_loads(const char *dir, int *epochs_done, char *why, size_t cap)
{
    char *p = file_in(dir, "checkpoint.safetensors");
    gn_st_file *f;
    gn_error err = {{0}};
    int rc = -1;
    if (gn_st_open(p, &f, &err)) {
        snprintf(why, cap, "%s", err.msg);
        free(p);
        return -1;
    }
    const char *fmt = gn_st_meta(f, "format"), *done = gn_st_meta(f, "epochs_done");
    if (!fmt || strcmp(fmt, "gpunas-checkpoint") || !done) {
        snprintf(why, cap, "%s: not a gpunas checkpoint", p);
        goto out;
    }
    *epochs_done = atoi(done);
    for (int i = 0; i < gn_st_count(f); i++) {
        const gn_st_info *t = gn_st_at(f, i);
        int64_t n = t->numel;
        if (t->dtype == GN_ST_I64) {
            int64_t *buf = malloc(sizeof *buf * (size_t)(n ? n : 1));
            int r = gn_st_load_i64(f, t->name, n, buf, &err);
            free(buf);
            if (r) {
                snprintf(why, cap, "%s", err.msg);
                goto out;
            }
        } else {
            float *buf = malloc(sizeof *buf * (size_t)(n ? n : 1));
            int r = gn_st_load_numel(f, t->name, n, buf, &err);
            free(buf);
            if (r) {
                snprintf(why, cap, "%s", err.msg);
                goto out;
            }
        }
    }
    rc = 0;
out:
    gn_st_close(f);
    free(p);
    return rc;
}

static int same_file(const char *a, const char *b)
{
    size_t na, nb;
    char *x = tu_read_file(a, &na), *y = tu_read_file(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

static char *log_text(const char *log)
{
    char *t = tu_read_file(log, NULL);
    return t ? t : strdup("");
}

/* A run to the end: exit 0 or the test fails with its log. */
static void run_to_end(const char *dir, int resume, const char *const *env, const char *log)
{
    int st = wait_for(start(dir, resume, env, log));
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        char *t = log_text(log);
        fail_msg("gpunas train --out %s%s: %s %d: %s", dir, resume ? " --resume" : "",
                 WIFEXITED(st) ? "exit" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), t);
    }
}

static int count_ops(const char *trace, const char *needle)
{
    FILE *f = fopen(trace, "r");
    if (!f)
        return 0;
    char line[PATH_MAX + 512];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

static void test_kill_loop(void **state)
{
    (void)state;
    double t0 = now_s();
    const char *e = getenv("GN_KILL_LOOP");
    int kills_wanted = e && atoi(e) > 0 ? atoi(e) : SANITIZED ? 10 : 24;
    e = getenv("GN_KILL_SEED");
    uint64_t seed = e ? strtoull(e, NULL, 10) : (uint64_t)time(NULL);
    gn_rng rng;
    gn_rng_seed(&rng, seed);

    char *ref = tu_tmp_path("kill-ref"), *ref2 = tu_tmp_path("kill-ref2"), *dir = tu_tmp_path("kill-run");
    char *log = tu_tmp_path("kill.log"), *trace = tu_tmp_path("kill.trace");
    char cmd[4 * PATH_MAX];
    snprintf(cmd, sizeof cmd, "rm -rf %s %s %s %s", ref, ref2, dir, trace);
    assert_int_equal(system(cmd), 0);

    /* determinism first: two uninterrupted runs (the second traced) */
    char e_shim[PATH_MAX + 16], e_pre[PATH_MAX + 32], e_trace[PATH_MAX + 32], e_asan[1024];
    snprintf(e_shim, sizeof e_shim, "LD_PRELOAD=%s", shim);
    const char *asan = getenv("ASAN_OPTIONS");
    snprintf(e_asan, sizeof e_asan, "ASAN_OPTIONS=%s%sverify_asan_link_order=0", asan ? asan : "",
             asan && *asan ? ":" : "");
    double tr = now_s();
    run_to_end(ref, 0, NULL, log);
    double run_s = now_s() - tr;
    snprintf(e_pre, sizeof e_pre, "GN_FAULT_PREFIX=%s", ref2);
    snprintf(e_trace, sizeof e_trace, "GN_FAULT_TRACE=%s", trace);
    const char *env_trace[] = {e_shim, e_pre, e_trace, e_asan, NULL};
    run_to_end(ref2, 0, env_trace, log);
    char *w1 = file_in(ref, "weights.safetensors"), *w2 = file_in(ref2, "weights.safetensors");
    if (!same_file(w1, w2))
        fail_msg("training is not deterministic: two runs with --threads 1 and the same seed give different "
                 "weights (%s, %s); a resumed run cannot be compared",
                 w1, w2);
    int ckpt_ops = count_ops(trace, "/checkpoint.safetensors");
    int all_ops = count_ops(trace, " ");
    assert_true(ckpt_ops > 0 && all_ops >= ckpt_ops);
    fprintf(stderr, "kill loop: seed %llu; an uninterrupted run takes %.1f s and makes %d file calls, %d of them on "
                    "its checkpoints (%d epochs); two runs agree byte for byte\n",
            (unsigned long long)seed, run_s, all_ops, ckpt_ops, EPOCHS);

    int kills = 0, in_ckpt = 0, timed = 0, io = 0, finished = 0, attempts = 0, fresh = 0, cycles = 0;
    while (kills < kills_wanted) {
        attempts++;
        if (attempts > 4 * kills_wanted + 10)
            fail_msg("the kill loop makes no progress (%d attempts, %d kills)", attempts, kills);
        int resume = exists(dir, "checkpoint.safetensors");
        fresh += !resume;
        int done_before = 0;
        if (resume) {
            char why[512];
            if (checkpoint_loads(dir, &done_before, why, sizeof why))
                fail_msg("after kill %d: the checkpoint does not load: %s", kills, why);
        }
        int kind = attempts % 3; /* 0 timed, 1 a checkpoint call, 2 any file call of the run */
        pid_t pid;
        char e_fault[64], e_kpre[PATH_MAX + 64];
        const char *hit = "";
        unlink(trace);
        if (kind == 0) {
            /* traced (not faulted), to see where the kill landed */
            snprintf(e_kpre, sizeof e_kpre, "GN_FAULT_PREFIX=%s", dir);
            const char *env[] = {e_shim, e_kpre, e_trace, e_asan, NULL};
            pid = start(dir, resume, env, log);
            double d = 0.05 + gn_rng_uniform(&rng) * run_s * (EPOCHS - done_before + 0.5) / (EPOCHS + 0.5);
            struct timespec ts = {(time_t)d, (long)((d - (long)d) * 1e9)};
            nanosleep(&ts, NULL);
            kill(pid, SIGKILL);
        } else {
            /* the n-th file call of the attempt; the per-epoch share of the calls that
             * this attempt still makes (it starts at epoch done_before + 1) */
            int per = kind == 1 ? ckpt_ops : all_ops, left = per * (EPOCHS - done_before) / EPOCHS;
            long n = 1 + (long)gn_rng_below(&rng, (uint64_t)(left > 1 ? left : 1));
            int after = gn_rng_below(&rng, 2);
            snprintf(e_fault, sizeof e_fault, "GN_FAULT=any:%s:%ld", after ? "KILLAFTER" : "KILL", n);
            snprintf(e_kpre, sizeof e_kpre, "GN_FAULT_PREFIX=%s%s", dir, kind == 1 ? "/checkpoint.safetensors" : "");
            const char *env[] = {e_shim, e_kpre, e_fault, e_trace, e_asan, NULL};
            pid = start(dir, resume, env, log);
            hit = kind == 1 ? "checkpoint" : "run";
        }
        int st = wait_for(pid);
        if (WIFEXITED(st)) {
            if (WEXITSTATUS(st) != 0) {
                char *t = log_text(log);
                fail_msg("attempt %d (%s): gpunas train%s failed instead of being killed: exit %d: %s", attempts,
                         kind == 0 ? "timed" : hit, resume ? " --resume" : "", WEXITSTATUS(st), t);
            }
            /* it ended before its kill: the run is complete, so it must have the
             * uninterrupted run's weights; then a new run starts in a clean folder */
            finished++;
            char *wf = file_in(dir, "weights.safetensors");
            if (!same_file(wf, w1))
                fail_msg("after %d kills a run ended with weights other than the uninterrupted run's", kills);
            free(wf);
            cycles++;
            snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
            assert_int_equal(system(cmd), 0);
            continue;
        }
        if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL) {
            char *t = log_text(log);
            fail_msg("attempt %d: gpunas train died of signal %d, not our SIGKILL: %s", attempts,
                     WIFSIGNALED(st) ? WTERMSIG(st) : -1, t);
        }
        kills++;
        if (kind == 0)
            timed++;
        else
            io++;
        /* inside a checkpoint write: the last call traced before the kill was one
         * of the temporary file's (its rename is traced under the final name) */
        char last[PATH_MAX + 512] = "";
        FILE *tf = fopen(trace, "r");
        while (tf && fgets(last, sizeof last, tf))
            ;
        if (tf)
            fclose(tf);
        in_ckpt += kind == 1 || strstr(last, "/checkpoint.safetensors.tmp ") != NULL;
    }
    /* the last attempt: no kill, to the end */
    if (exists(dir, "checkpoint.safetensors")) {
        char why[512];
        int done;
        if (checkpoint_loads(dir, &done, why, sizeof why))
            fail_msg("after the last kill: the checkpoint does not load: %s", why);
    }
    run_to_end(dir, exists(dir, "checkpoint.safetensors"), NULL, log);
    char *w = file_in(dir, "weights.safetensors");
    if (!same_file(w, w1))
        fail_msg("after %d kills and --resume the final weights differ from the uninterrupted run's (%s vs %s)",
                 kills, w, w1);
    char *m = file_in(dir, "metrics.jsonl");
    char *mt = tu_read_file(m, NULL);
    assert_non_null(mt);
    int lines = 0, epoch = 0;
    for (char *l = strtok(mt, "\n"); l; l = strtok(NULL, "\n"), lines++) {
        json_t *j = json_loads(l, 0, NULL);
        assert_non_null(j);
        assert_int_equal(json_integer_value(json_object_get(j, "epoch")), ++epoch);
        json_decref(j);
    }
    assert_int_equal(lines, EPOCHS);
    /* what a kill can leave, seen after the last run: a *.tmp it overwrites (O_TRUNC)
     * the next time it writes that file, and never reads */
    char leftovers[1024] = "";
    snprintf(cmd, sizeof cmd, "cd %s && ls *.tmp 2>/dev/null | tr '\\n' ' '", dir);
    FILE *lp = popen(cmd, "r");
    if (lp) {
        if (!fgets(leftovers, sizeof leftovers, lp))
            leftovers[0] = 0;
        pclose(lp);
    }
    fprintf(stderr,
            "kill loop: %d kills (%d timed, %d at a file call), %d inside a checkpoint write; %d attempts (%d "
            "without a checkpoint yet); %d run(s) completed through kills and resumes, each with the uninterrupted "
            "run's weights byte for byte; after every kill the checkpoint loaded and --resume took it; "
            "*.tmp left in the folder at the end: %s; %.1f s\n",
            kills, timed, io, in_ckpt, attempts + 1, fresh, cycles + 1, leftovers[0] ? leftovers : "none",
            now_s() - t0);
    snprintf(cmd, sizeof cmd, "rm -rf %s %s %s %s %s", ref, ref2, dir, trace, log);
    (void)!system(cmd);
    free(mt), free(m), free(w), free(w1), free(w2);
    free(ref), free(ref2), free(dir), free(log), free(trace);
}

int main(void)
{
    shim = getenv("GPUNAS_FAULT_SHIM");
    cli = getenv("GPUNAS_CLI");
    if (!shim || !cli) {
        fprintf(stderr, "test_fault_kill: GPUNAS_FAULT_SHIM and GPUNAS_CLI must be set (CTest sets them)\n");
        return 1;
    }
    data_dir = tu_tmp_path("kill-data");
    mkdir(data_dir, 0777);
    tu_write_idx(data_dir, "train", 1000, 28, 10, 1);
    tu_write_idx(data_dir, "t10k", 200, 28, 10, 2);
    cfg = tu_source_path("configs/fmnist-small.json");
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_kill_loop)};
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf %s", data_dir);
    (void)!system(cmd);
    free(data_dir);
    free(cfg);
    return rc;
}
