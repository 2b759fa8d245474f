/*
 * test_fault_alloc.c — allocation failure at every allocation site of the config
 * parser, the search-space loader and the trial store.
 *
 * This binary is linked with --wrap=malloc,calloc,realloc,free,strdup,strndup
 * (CMakeLists.txt), so every allocation of libgpunas's code goes through the
 * counting allocator below; jansson gets it through json_set_alloc_funcs() and SQLite
 * through SQLITE_CONFIG_MALLOC (both are shared libraries, which --wrap does not
 * reach; the one exception is explained at j_malloc).  For each operation it fails
 * the k-th allocation for k = 1, 2, ... until
 * the operation runs without meeting its failure, and checks each time:
 *   - no crash (a NULL dereference would end the test; the ASan build sees the rest);
 *   - the call returns -1 with a one-line message (no newline), or succeeds (SQLite
 *     recovers from some failures by itself) with a correct result;
 *   - nothing leaks: every block allocated during the call is freed once the caller
 *     has freed what it was given (tracked here in a pointer set, so the Release
 *     build checks it too; LeakSanitizer checks again in the ASan build);
 *   - the store: after each failure the file reopens, PRAGMA integrity_check is ok,
 *     and a trial whose insert (finish) returned 0 is there (finished).
 * A second pass fails every allocation from the k-th on ("sticky"), so error paths
 * that themselves allocate are exercised too.  GN_ALLOC_STRIDE=S tries only every
 * S-th k (for a quick look by hand); the default tries every k.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gpunas/arch.h"
#include "gpunas/space.h"
#include "gpunas/store.h"
#include "testutil.h"

/* ------------------------------------------------------------------ the allocator */
void *__real_malloc(size_t n);
void *__real_calloc(size_t a, size_t b);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);

static int armed, sticky, fired;
static long count, fail_at;

/* live blocks allocated while armed: open addressing, pointer keys */
#define SET_CAP (1u << 18)
static void **set;
static long set_n;
#define TOMB ((void *)1)

static size_t slot_of(void *p) { return (size_t)(((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ull) & (SET_CAP - 1); }

static void track(void *p)
{
    if (!p || !armed)
        return;
    size_t i = slot_of(p);
    while (set[i] && set[i] != TOMB)
        i = (i + 1) & (SET_CAP - 1);
    set[i] = p;
    set_n++;
}

static void untrack(void *p)
{
    if (!p || set_n == 0)
        return;
    for (size_t i = slot_of(p), k = 0; set[i] && k < SET_CAP; i = (i + 1) & (SET_CAP - 1), k++)
        if (set[i] == p) {
            set[i] = TOMB;
            set_n--;
            return;
        }
}

static void set_clear(void)
{
    memset(set, 0, sizeof(void *) * SET_CAP);
    set_n = 0;
}

static int fail_now(void)
{
    if (!armed)
        return 0;
    count++;
    if (fail_at > 0 && (count == fail_at || (sticky && count > fail_at))) {
        fired = 1;
        return 1;
    }
    return 0;
}

void *__wrap_malloc(size_t n)
{
    if (fail_now())
        return NULL;
    void *p = __real_malloc(n);
    track(p);
    return p;
}

void *__wrap_calloc(size_t a, size_t b)
{
    if (fail_now())
        return NULL;
    void *p = __real_calloc(a, b);
    track(p);
    return p;
}

void *__wrap_realloc(void *p, size_t n)
{
    if (fail_now())
        return NULL;
    void *q = __real_realloc(p, n);
    if (q) {
        untrack(p);
        track(q);
    }
    return q;
}

void __wrap_free(void *p)
{
    untrack(p);
    __real_free(p);
}

char *__wrap_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = __wrap_malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

char *__wrap_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = __wrap_malloc(len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = 0;
    }
    return p;
}

/* jansson.  One exception: jansson's JSON reader (json_loads, 2.14 and upstream as of
 * this writing) ignores a failed growth of its token buffer (lex_save() drops
 * strbuffer_append_byte()'s error) and then scans that buffer for the closing quote
 * past its end: a crash inside jansson that no caller can prevent.  So inside
 * json_loads the allocations of that one call site (found by calibration below) are
 * made but never failed; every other jansson allocation is. */
static void *jansson_growth_site;
static int in_json_loads, calibrating;
static void *calib_sites[16];
static int calib_n;
static long skipped;

static void *j_malloc(size_t n)
{
    void *site = __builtin_return_address(0);
    if (calibrating && calib_n < 16)
        calib_sites[calib_n++] = site;
    if (in_json_loads && site == jansson_growth_site) {
        void *p = __real_malloc(n);
        track(p);
        skipped += armed;
        return p;
    }
    return __wrap_malloc(n);
}
static void j_free(void *p) { __wrap_free(p); }

json_t *__real_json_loads(const char *input, size_t flags, json_error_t *error);
json_t *__wrap_json_loads(const char *input, size_t flags, json_error_t *error)
{
    in_json_loads++;
    json_t *j = __real_json_loads(input, flags, error);
    in_json_loads--;
    return j;
}

/* The token buffer starts at 16 bytes and doubles: a 40-byte string makes it grow
 * twice, right after the buffer, the array and its table were allocated. */
static int calibrate_jansson(void)
{
    calibrating = 1;
    json_t *j = json_loads("[\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"]", 0, NULL);
    calibrating = 0;
    json_decref(j);
    if (calib_n < 5 || calib_sites[3] != calib_sites[4] || calib_sites[3] == calib_sites[0])
        return -1;
    jansson_growth_site = calib_sites[3];
    return 0;
}

/* SQLite: its default allocator, counted */
static sqlite3_mem_methods sq_orig;
static void *sq_malloc(int n)
{
    if (fail_now())
        return NULL;
    void *p = sq_orig.xMalloc(n);
    track(p);
    return p;
}
static void sq_free(void *p)
{
    untrack(p);
    sq_orig.xFree(p);
}
static void *sq_realloc(void *p, int n)
{
    if (fail_now())
        return NULL;
    void *q = sq_orig.xRealloc(p, n);
    if (q) {
        untrack(p);
        track(q);
    }
    return q;
}
static int sq_size(void *p) { return sq_orig.xSize(p); }
static int sq_roundup(int n) { return sq_orig.xRoundup(n); }
static int sq_init(void *a) { return sq_orig.xInit(a); }
static void sq_shutdown(void *a) { sq_orig.xShutdown(a); }

static void arm(long k, int stick)
{
    set_clear();
    count = 0;
    fail_at = k;
    sticky = stick;
    fired = 0;
    armed = 1;
}

static void disarm(void) { armed = 0; }

/* ------------------------------------------------------------------ checks */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static long stride = 1;
static long total_runs, total_failed_calls;

static void check_message(const char *what, long k, const gn_error *err)
{
    if (!err->msg[0] || strchr(err->msg, '\n'))
        fail_msg("%s, allocation %ld: returned -1 with message '%s'", what, k, err->msg);
}

static void check_no_leak(const char *what, long k)
{
    if (set_n != 0)
        fail_msg("%s, allocation %ld failed: %ld block(s) allocated during the call are still live", what, k, set_n);
}

static char *read_source(const char *rel)
{
    char *p = tu_source_path(rel);
    char *t = tu_read_file(p, NULL);
    free(p);
    assert_non_null(t);
    return t;
}

/* k = 1.. until the call meets no failure; returns the number of allocations */
#define SWEEP(what, stick, ...)                                                                         \
    do {                                                                                                 \
        long k_;                                                                                         \
        double t0_ = now_s();                                                                            \
        for (k_ = 1;; k_ += stride) {                                                                    \
            long k = k_;                                                                                 \
            (void)k;                                                                                     \
            arm(k_, stick);                                                                              \
            __VA_ARGS__;                                                                                 \
            total_runs++;                                                                                \
            if (!fired)                                                                                  \
                break;                                                                                   \
        }                                                                                                \
        fprintf(stderr, "%s%s: %ld allocations, each failed in turn%s: ok (%.1f s)\n", what,             \
                stick ? " (sticky: and all after it)" : "", count, stride > 1 ? " (a stride of them)" : "",    \
                now_s() - t0_);                                                                          \
    } while (0)

static void parse_sweep(const char *rel, int stick)
{
    char *text = read_source(rel);
    char what[256];
    snprintf(what, sizeof what, "gn_arch_parse(%s)", rel);
    gn_arch *ref;
    gn_error err = {{0}};
    assert_int_equal(gn_arch_parse(text, rel, &ref, &err), 0);
    char *want = gn_arch_to_json(ref, &err);
    assert_non_null(want);
    SWEEP(what, stick, {
        gn_arch *a = NULL;
        err.msg[0] = 0;
        int rc = gn_arch_parse(text, rel, &a, &err);
        char *got = rc == 0 ? gn_arch_to_json(a, &err) : NULL;
        disarm();
        if (rc) {
            check_message(what, k, &err);
            assert_null(a);
            total_failed_calls++;
        } else if (got && strcmp(got, want) != 0) {
            fail_msg("%s, allocation %ld: parsed to another network", what, k);
        }
        free(got);
        gn_arch_free(a);
        check_no_leak(what, k);
    });
    free(want);
    gn_arch_free(ref);
    free(text);
}

static void test_arch_parse(void **state)
{
    (void)state;
    for (int stick = 0; stick <= 1; stick++) {
        parse_sweep("configs/fmnist-small.json", stick);
        parse_sweep("configs/gpunet/gpunet-d2.json", stick);
    }
    /* the file reader and the writer */
    char *path = tu_source_path("configs/gpunet/gpunet-0.json");
    char *out = tu_tmp_path("alloc-arch.json");
    for (int stick = 0; stick <= 1; stick++) {
        gn_error err = {{0}};
        SWEEP("gn_arch_load + gn_arch_save", stick, {
            gn_arch *a = NULL;
            err.msg[0] = 0;
            int rc = gn_arch_load(path, &a, &err);
            if (rc == 0)
                rc = gn_arch_save(a, out, &err);
            disarm();
            if (rc) {
                check_message("gn_arch_load + gn_arch_save", k, &err);
                total_failed_calls++;
            }
            gn_arch_free(a);
            check_no_leak("gn_arch_load + gn_arch_save", k);
        });
    }
    unlink(out);
    free(out);
    free(path);
}

static void test_space_load(void **state)
{
    (void)state;
    char *path = tu_source_path("spaces/fmnist.json");
    gn_space *ref;
    gn_error err = {{0}};
    assert_int_equal(gn_space_load(path, &ref, &err), 0);
    for (int stick = 0; stick <= 1; stick++) {
        SWEEP("gn_space_load(spaces/fmnist.json)", stick, {
            gn_space *s = NULL;
            err.msg[0] = 0;
            int rc = gn_space_load(path, &s, &err);
            disarm();
            if (rc) {
                check_message("gn_space_load", k, &err);
                assert_null(s);
                total_failed_calls++;
            } else if (gn_space_desc(s)->ndims != gn_space_desc(ref)->ndims) {
                fail_msg("gn_space_load, allocation %ld: another space", k);
            }
            gn_space_free(s);
            check_no_leak("gn_space_load", k);
        });
    }
    gn_space_free(ref);
    free(path);
}

/* ------------------------------------------------------------------ store */
static char *store_dir;

static void store_path(char *buf, size_t cap, const char *name) { snprintf(buf, cap, "%s/%s", store_dir, name); }

static void remove_db(const char *db)
{
    char p[1100];
    unlink(db);
    snprintf(p, sizeof p, "%s-wal", db);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", db);
    unlink(p);
    snprintf(p, sizeof p, "%s-journal", db);
    unlink(p);
}

static int integrity_ok(const char *db)
{
    sqlite3 *h;
    int ok = 0;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK) {
        sqlite3_stmt *q;
        if (sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &q, NULL) == SQLITE_OK) {
            ok = sqlite3_step(q) == SQLITE_ROW && !strcmp((const char *)sqlite3_column_text(q, 0), "ok");
            sqlite3_finalize(q);
        }
    }
    sqlite3_close(h);
    return ok;
}

static void test_store_open(void **state)
{
    (void)state;
    char db[1024];
    store_path(db, sizeof db, "open.db");
    for (int stick = 0; stick <= 1; stick++) {
        gn_error err = {{0}};
        SWEEP("gn_store_open (create) + put_meta + close", stick, {
            remove_db(db);
            gn_store *st = NULL;
            err.msg[0] = 0;
            int rc = gn_store_open(db, GN_STORE_CREATE, &st, &err);
            int rc2 = rc == 0 ? gn_store_put_meta(st, "nas.seed", "3", &err) : -1;
            if (st)
                gn_store_close(st);
            disarm();
            if (rc || rc2) {
                check_message("gn_store_open", k, &err);
                total_failed_calls++;
            }
            if (rc == 0)
                assert_non_null(st);
            check_no_leak("gn_store_open", k);
            /* whatever is on disk opens as a store (or an empty file: created then) */
            gn_store *again;
            gn_error e2;
            if (gn_store_open(db, GN_STORE_CREATE, &again, &e2))
                fail_msg("gn_store_open, allocation %ld: the file left behind does not open: %s", k, e2.msg);
            char *v = NULL;
            int got = gn_store_get_meta(again, "nas.seed", &v, &e2);
            if (rc2 == 0 && (got != 0 || strcmp(v, "3")))
                fail_msg("gn_store_open, allocation %ld: meta written (0 returned) but not there", k);
            free(v);
            gn_store_close(again);
            if (!integrity_ok(db))
                fail_msg("gn_store_open, allocation %ld: integrity_check fails", k);
        });
    }
    remove_db(db);
}

#define BASE_TRIALS 4

static void insert_base(const char *db)
{
    gn_store *st;
    gn_error err = {{0}};
    assert_int_equal(gn_store_open(db, GN_STORE_CREATE, &st, &err), 0);
    for (int i = 1; i <= BASE_TRIALS; i++) {
        gn_trial t;
        gn_trial_init(&t);
        char enc[32];
        snprintf(enc, sizeof enc, "%d,0,1", i);
        t.encoding = enc;
        t.config = (char *)"[{\"layer_type\": \"data\"}]";
        t.optimizer = (char *)"test";
        t.seq = i;
        assert_int_equal(gn_store_insert_trial(st, &t, &err), 0);
        t.status = GN_TRIAL_DONE;
        t.val_acc = 0.5 + 0.01 * i;
        assert_int_equal(gn_store_finish_trial(st, t.id, &t, &err), 0);
    }
    gn_store_close(st);
}

static void copy_file(const char *from, const char *to)
{
    size_t n;
    char *data = tu_read_file(from, &n);
    assert_non_null(data);
    FILE *f = fopen(to, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
    free(data);
}

static void test_store_ops(void **state)
{
    (void)state;
    char base[1024], db[1024];
    store_path(base, sizeof base, "base.db");
    store_path(db, sizeof db, "ops.db");
    remove_db(base);
    insert_base(base);
    for (int stick = 0; stick <= 1; stick++) {
        gn_error err = {{0}};
        SWEEP("gn_store_open + insert + finish + get + list + count + get_meta", stick, {
            disarm(); /* the copy is not part of the sweep */
            remove_db(db);
            copy_file(base, db);
            armed = 1;
            gn_store *st = NULL;
            err.msg[0] = 0;
            int step = 0, rc = gn_store_open(db, 0, &st, &err);
            gn_trial t, g;
            gn_trial_init(&t);
            gn_trial_init(&g);
            gn_trial_list l = {0};
            int64_t n = 0;
            char *meta = NULL;
            int inserted = 0, finished = 0;
            if (!rc) {
                step++;
                t.encoding = (char *)"9,9,9";
                t.optimizer = (char *)"test";
                t.latency_info = (char *)"{\"threads\": 1}";
                t.seq = 9;
                rc = gn_store_insert_trial(st, &t, &err);
                inserted = rc == 0;
            }
            if (!rc) {
                step++;
                t.status = GN_TRIAL_DONE;
                t.val_acc = 0.75;
                t.error = (char *)"none";
                rc = gn_store_finish_trial(st, t.id, &t, &err);
                finished = rc == 0;
            }
            if (!rc) {
                step++;
                rc = gn_store_get_trial(st, t.id, &g, &err);
                if (!rc && (g.status != GN_TRIAL_DONE || !g.encoding || strcmp(g.encoding, "9,9,9") || !g.error ||
                            strcmp(g.error, "none")))
                    fail_msg("get_trial, allocation %ld: wrong trial: status %d, encoding %s, error %s", k, g.status,
                             g.encoding ? g.encoding : "NULL", g.error ? g.error : "NULL");
            }
            if (!rc) {
                step++;
                rc = gn_store_list_trials(st, NULL, &l, &err);
                if (!rc && l.n != BASE_TRIALS + 1)
                    fail_msg("list_trials, allocation %ld: %lld trials", k, (long long)l.n);
                for (int64_t i = 0; !rc && i < l.n; i++)
                    if (!l.items[i].encoding)
                        fail_msg("list_trials, allocation %ld: trial without its encoding", k);
            }
            if (!rc) {
                step++;
                rc = gn_store_count_trials(st, NULL, &n, &err);
            }
            if (!rc) {
                step++;
                rc = gn_store_get_meta(st, "nothing", &meta, &err) < 0 ? -1 : 0;
            }
            gn_trial_list_free(&l);
            gn_trial_clear(&g);
            free(meta);
            if (st)
                gn_store_close(st);
            disarm();
            if (rc) {
                check_message("store ops", k, &err);
                total_failed_calls++;
            }
            check_no_leak("store ops", k);
            if (!integrity_ok(db))
                fail_msg("store ops, allocation %ld: integrity_check fails", k);
            /* the committed trials: the base ones, and ours when insert returned 0 */
            gn_store *again;
            gn_error e2;
            gn_trial_list all;
            if (gn_store_open(db, 0, &again, &e2) || gn_store_list_trials(again, NULL, &all, &e2))
                fail_msg("store ops, allocation %ld: the store does not reopen: %s", k, e2.msg);
            if (all.n < BASE_TRIALS || all.n > BASE_TRIALS + 1 || (inserted && all.n != BASE_TRIALS + 1))
                fail_msg("store ops, allocation %ld: %lld trials after the failure (insert %s)", k,
                         (long long)all.n, inserted ? "returned 0" : "failed");
            for (int i = 0; i < BASE_TRIALS; i++)
                if (all.items[i].status != GN_TRIAL_DONE || fabs(all.items[i].val_acc - (0.51 + 0.01 * i)) > 1e-12)
                    fail_msg("store ops, allocation %ld: committed trial %d changed", k, i + 1);
            if (finished && all.items[BASE_TRIALS].status != GN_TRIAL_DONE)
                fail_msg("store ops, allocation %ld: finish returned 0 but the trial is not done", k);
            gn_trial_list_free(&all);
            gn_store_close(again);
            (void)step;
        });
    }
    remove_db(db);
    remove_db(base);
}

static void test_summary(void **state)
{
    (void)state;
    fprintf(stderr,
            "allocation sweeps: %ld runs, %ld of them returned -1 with one line; no crash, no leak (%ld allocations of "
            "jansson's token buffer inside json_loads made but not failed)\n",
            total_runs, total_failed_calls, skipped);
}

int main(void)
{
    set = __real_calloc(SET_CAP, sizeof(void *));
    if (!set)
        return 1;
    /* before any jansson or SQLite use */
    json_set_alloc_funcs(j_malloc, j_free);
    if (calibrate_jansson()) {
        fprintf(stderr, "test_fault_alloc: cannot find jansson's token-buffer allocation site\n");
        return 1;
    }
    if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &sq_orig) != SQLITE_OK)
        return 1;
    sqlite3_mem_methods m = sq_orig;
    m.xMalloc = sq_malloc;
    m.xFree = sq_free;
    m.xRealloc = sq_realloc;
    m.xSize = sq_size;
    m.xRoundup = sq_roundup;
    m.xInit = sq_init;
    m.xShutdown = sq_shutdown;
    if (sqlite3_config(SQLITE_CONFIG_MALLOC, &m) != SQLITE_OK)
        return 1;
    const char *s = getenv("GN_ALLOC_STRIDE");
    if (s && atol(s) > 0)
        stride = atol(s);
    /* SQLite's store on tmpfs when there is one: the sweeps commit thousands of times */
    char *tmp = tu_tmp_path("alloc");
    char shm[256];
    snprintf(shm, sizeof shm, "/dev/shm/gpunas-alloc-%d", (int)getpid());
    store_dir = mkdir(shm, 0700) == 0 ? strdup(shm) : (mkdir(tmp, 0777), strdup(tmp));
    free(tmp);
    /* SQLite's one-time set-up (mutexes, page cache), outside the counted calls */
    sqlite3_initialize();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arch_parse), cmocka_unit_test(test_space_load), cmocka_unit_test(test_store_open),
        cmocka_unit_test(test_store_ops),  cmocka_unit_test(test_summary),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char rm[1200];
    snprintf(rm, sizeof rm, "rm -rf %s", store_dir); /* also after a failed test */
    (void)!system(rm);
    free(store_dir);
    return rc;
}
