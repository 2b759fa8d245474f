/*
 * cmd_trials.c — `gpunas trials STORE.db [--status S] [--tier T|none] [--levels] [--json]`:
 * list the trials a search stored (gpunas/store.h), ordered by id.
 *
 * The table has one row per trial (id, proposal number, tier, status, validation
 * accuracy, latency ± spread, params, MACs, training seconds, optimizer, encoding,
 * and the error of a failed trial) and a summary line with counts per status; --json
 * prints a JSON array of trial objects with every stored field (config as a nested
 * JSON value; unknown values null) for scripts.  The store is opened without
 * GN_STORE_CREATE, so a mistyped path is an error rather than a new empty store.
 *
 * The work queue (issue 14): when any listed trial is a queued job (kind non-NULL) the
 * table gets four more columns after the status: kind ("train", or "measure:CLASS"
 * with the device class that must measure it), attempts/max_attempts, the worker, and
 * the lease's expiry as a UTC time on the database server's clock (only for leased
 * jobs; a lease shows until it is reaped, so an expiry in the past means its worker is
 * presumably gone).  A store without queue jobs keeps the original layout, which
 * scripts and tests may parse.  The summary names the store as gn_store_where() does
 * (a PostgreSQL password masked).
 *
 * Fidelity levels (schema 4): by default only the proposals (level 0) are listed, as
 * before levels existed, one row per candidate; --levels lists every row, promotions
 * by successive halving included, and the table then gets a narrow "lvl" column after
 * the status ("0", or "L^P": level L promoting trial P).  --json always carries
 * "level" and "parent" (null for a proposal) in every object.
 *
 * Zero-cost score (schema 5): --json carries "naswot" next to "val_acc" in every
 * object (null when unknown, or not finite: JSON has no -inf, which an exactly singular
 * kernel gives); the table is unchanged.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "gpunas/store.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: gpunas trials STORE [--status running|queued|leased|done|failed|pruned] [--tier T|none]\n"
               "                     [--levels] [--json]\n"
               "List the trials stored by a search, ordered by id.  STORE is a path, sqlite:PATH or a\n"
               "postgresql:// URI.  When the list holds work-queue jobs the table adds kind, attempts,\n"
               "worker and the lease's expiry (UTC, the database server's clock).  Only the search's\n"
               "proposals (fidelity level 0) are listed unless --levels is given: then every level,\n"
               "with a column lvl (\"L^P\": level L, promoting trial P).\n");
}

/* 12345678 -> "12.3M" */
static const char *human(int64_t v, char *buf, size_t n)
{
    if (v < 0)
        snprintf(buf, n, "-");
    else if (v < 10000)
        snprintf(buf, n, "%lld", (long long)v);
    else if (v < 10000000)
        snprintf(buf, n, "%.1fk", v / 1e3);
    else if (v < 10000000000LL)
        snprintf(buf, n, "%.1fM", v / 1e6);
    else
        snprintf(buf, n, "%.1fG", v / 1e9);
    return buf;
}

static const char *real(double v, const char *fmt, char *buf, size_t n)
{
    if (isnan(v))
        snprintf(buf, n, "-");
    else
        snprintf(buf, n, fmt, v);
    return buf;
}

/* Unix seconds -> "2024-05-01T12:00:03Z", or "-" */
static const char *utc(double t, char *buf, size_t n)
{
    if (isnan(t)) {
        snprintf(buf, n, "-");
        return buf;
    }
    time_t s = (time_t)floor(t);
    struct tm tm;
    if (!gmtime_r(&s, &tm) || !strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, n, "%.0f", t);
    return buf;
}

/* the queue columns (kind, attempts, worker, lease expiry) of one trial, or their header */
static void print_queue_cols(const gn_trial *t)
{
    if (!t) {
        printf(" %-16s %8s %-20s %-20s", "kind", "attempts", "worker", "lease_expires");
        return;
    }
    char kind[64] = "-", att[32], exp[32] = "-";
    if (t->kind && t->device_class)
        snprintf(kind, sizeof kind, "%s:%s", t->kind, t->device_class);
    else if (t->kind)
        snprintf(kind, sizeof kind, "%s", t->kind);
    if (t->max_attempts > 0)
        snprintf(att, sizeof att, "%d/%d", t->attempts, t->max_attempts);
    else
        snprintf(att, sizeof att, "%d", t->attempts);
    if (t->status == GN_TRIAL_LEASED)
        utc(t->lease_expires_at, exp, sizeof exp);
    printf(" %-16s %8s %-20s %-20s", kind, att, t->worker ? t->worker : "-", exp);
}

/* the level column: "0", or "L^P" for level L promoting trial P; or its header */
static void print_level_col(const gn_trial *t)
{
    char lv[48];
    if (!t)
        snprintf(lv, sizeof lv, "lvl");
    else if (t->level > 0)
        snprintf(lv, sizeof lv, "%d^%lld", t->level, (long long)t->parent);
    else
        snprintf(lv, sizeof lv, "%d", t->level);
    printf(" %-6s", lv);
}

static void print_table(const char *where, const gn_trial_list *l, bool levels)
{
    int64_t counts[GN_TRIAL_NSTATUS] = {0};
    bool queue = false;
    for (int64_t i = 0; i < l->n && !queue; i++)
        queue = l->items[i].kind != NULL;
    printf("%5s %5s %4s %-7s", "id", "seq", "tier", "status");
    if (levels)
        print_level_col(NULL);
    if (queue)
        print_queue_cols(NULL);
    printf(" %7s %15s %8s %8s %8s %-10s %s\n", "val_acc", "latency_ms", "params", "MACs", "train_s", "optimizer",
           "encoding");
    for (int64_t i = 0; i < l->n; i++) {
        const gn_trial *t = &l->items[i];
        counts[t->status]++;
        char tier[16] = "-", acc[32], lat[48], p[32], m[32], tr[32];
        if (t->tier >= 0)
            snprintf(tier, sizeof tier, "%d", t->tier);
        if (isnan(t->latency_ms))
            snprintf(lat, sizeof lat, "-");
        else if (isnan(t->latency_spread_ms))
            snprintf(lat, sizeof lat, "%.3f", t->latency_ms);
        else
            snprintf(lat, sizeof lat, "%.3f±%.3f", t->latency_ms, t->latency_spread_ms);
        printf("%5lld %5lld %4s %-7s", (long long)t->id, (long long)t->seq, tier, gn_trial_status_name(t->status));
        if (levels)
            print_level_col(t);
        if (queue)
            print_queue_cols(t);
        printf(" %7s %15s %8s %8s %8s %-10s %s", real(t->val_acc, "%.4f", acc, sizeof acc), lat,
               human(t->params, p, sizeof p), human(t->macs, m, sizeof m), real(t->train_s, "%.1f", tr, sizeof tr),
               t->optimizer ? t->optimizer : "-", t->encoding ? t->encoding : "-");
        if (t->error)
            printf("  error: %s", t->error);
        putchar('\n');
    }
    printf("%s: %lld trials (%lld done, %lld running, %lld failed, %lld pruned", where, (long long)l->n,
           (long long)counts[GN_TRIAL_DONE], (long long)counts[GN_TRIAL_RUNNING], (long long)counts[GN_TRIAL_FAILED],
           (long long)counts[GN_TRIAL_PRUNED]);
    if (counts[GN_TRIAL_QUEUED] || counts[GN_TRIAL_LEASED]) /* the work queue (many machines) */
        printf(", %lld queued, %lld leased", (long long)counts[GN_TRIAL_QUEUED], (long long)counts[GN_TRIAL_LEASED]);
    printf(")\n");
}

/* unknown (NaN) and non-finite values are null: json_real refuses them */
static json_t *jreal(double v) { return isfinite(v) ? json_real(v) : json_null(); }
static json_t *jstr(const char *s) { return s ? json_string(s) : json_null(); }
static json_t *jint(int64_t v) { return v < 0 ? json_null() : json_integer(v); }

static int print_json(const gn_trial_list *l)
{
    json_t *arr = json_array();
    for (int64_t i = 0; i < l->n; i++) {
        const gn_trial *t = &l->items[i];
        json_t *o = json_object();
        json_object_set_new(o, "id", json_integer(t->id));
        json_object_set_new(o, "seq", json_integer(t->seq));
        json_object_set_new(o, "tier", t->tier >= 0 ? json_integer(t->tier) : json_null());
        json_object_set_new(o, "status", json_string(gn_trial_status_name(t->status)));
        /* fidelity level: 0 a proposal; parent null for one */
        json_object_set_new(o, "level", json_integer(t->level));
        json_object_set_new(o, "parent", t->parent > 0 ? json_integer(t->parent) : json_null());
        json_object_set_new(o, "encoding", jstr(t->encoding));
        json_object_set_new(o, "val_acc", jreal(t->val_acc));
        json_object_set_new(o, "naswot", jreal(t->naswot));
        json_object_set_new(o, "latency_ms", jreal(t->latency_ms));
        json_object_set_new(o, "latency_spread_ms", jreal(t->latency_spread_ms));
        json_object_set_new(o, "params", jint(t->params));
        json_object_set_new(o, "macs", jint(t->macs));
        json_object_set_new(o, "train_s", jreal(t->train_s));
        json_object_set_new(o, "created_at", jreal(t->created_at));
        json_object_set_new(o, "started_at", jreal(t->started_at));
        json_object_set_new(o, "finished_at", jreal(t->finished_at));
        json_object_set_new(o, "worker", jstr(t->worker));
        json_object_set_new(o, "optimizer", jstr(t->optimizer));
        json_object_set_new(o, "error", jstr(t->error));
        /* the work queue: kind/device_class null for in-process trials */
        json_object_set_new(o, "kind", jstr(t->kind));
        json_object_set_new(o, "device_class", jstr(t->device_class));
        json_object_set_new(o, "device", jstr(t->device));
        json_object_set_new(o, "attempts", json_integer(t->attempts));
        json_object_set_new(o, "max_attempts", json_integer(t->max_attempts));
        json_object_set_new(o, "lease_expires_at", jreal(t->lease_expires_at));
        json_t *li = NULL;
        if (t->latency_info) {
            json_error_t je;
            li = json_loads(t->latency_info, 0, &je);
        }
        json_object_set_new(o, "latency_info", li ? li : json_null());
        json_t *cfg = NULL;
        if (t->config) {
            json_error_t je;
            cfg = json_loads(t->config, JSON_DECODE_ANY, &je);
            if (!cfg) /* stored text that is not JSON: keep it as a string */
                cfg = json_string(t->config);
        }
        json_object_set_new(o, "config", cfg ? cfg : json_null());
        json_array_append_new(arr, o);
    }
    return cli_puts_json(arr, 15);
}

int cmd_trials(int argc, char **argv)
{
    const char *cmd = "trials", *path = NULL;
    gn_trial_filter f;
    gn_trial_filter_init(&f);
    bool json = false, levels = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--levels") == 0) {
            levels = true;
            f.level = GN_LEVEL_ANY;
        } else if (strcmp(a, "--status") == 0) {
            gn_trial_status st;
            if (i + 1 >= argc) {
                cli_error(cmd, "option --status: missing value");
                return 2;
            }
            if (gn_trial_status_parse(argv[++i], &st)) {
                cli_error(cmd, "option --status: unknown status '%s' (running, queued, leased, done, failed, pruned)", argv[i]);
                return 2;
            }
            f.status = (int)st;
        } else if (strcmp(a, "--tier") == 0) {
            if (i + 1 < argc && strcmp(argv[i + 1], "none") == 0) {
                f.tier = -1;
                i++;
            } else if (cli_parse_int(cmd, "--tier", i + 1 < argc ? argv[++i] : NULL, 0, 1000000, &f.tier)) {
                return 2;
            }
        } else if (cli_store_operand(cmd, a, &path)) {
            return 2;
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    gn_store *s;
    gn_error err;
    if (gn_store_open(path, 0, &s, &err)) {
        cli_error(cmd, "%s", err.msg);
        return 1;
    }
    gn_trial_list l;
    int rc = gn_store_list_trials(s, &f, &l, &err);
    if (rc) {
        gn_store_close(s);
        cli_error(cmd, "%s", err.msg);
        return 1;
    }
    if (json) {
        if ((rc = print_json(&l)) != 0)
            cli_error(cmd, "out of memory writing JSON");
    } else {
        print_table(gn_store_where(s), &l, levels);
    }
    gn_store_close(s);
    gn_trial_list_free(&l);
    return rc ? 1 : 0;
}
