/*
 * cmd_workers.c — `gpunas workers STORE [--window SEC] [--json]`: the workers of a
 * shared trial store (issue 14, many machines) seen within the last SEC seconds
 * (default 120), ordered by id, each with the jobs it holds leased right now.
 *
 * Design
 *   Two reads of the store (gpunas/store.h), no writes: gn_store_list_workers for the
 *   registry rows and gn_store_list_trials(status leased, every fidelity level) for the
 *   leases, matched on trial.worker == worker id.  The store is opened without
 *   GN_STORE_CREATE, so a mistyped location is an error and not a new empty store.
 *
 *   Clocks.  started_at and last_seen are the DATABASE SERVER's clock (the store never
 *   trusts worker clocks), and the window is applied by the server too.  This command
 *   runs on yet another machine, so it prints the stored times as UTC timestamps and,
 *   beside them, "ago" = this machine's clock minus last_seen, and says so in the
 *   summary line: with synchronised clocks (NTP) "ago" is what it looks like; with a
 *   skewed clock it is off by the skew (possibly negative, printed as it is).
 *
 *   A lease is shown as leased until someone reaps it (every claim does): a job whose
 *   worker died stays 'leased' past its expiry until then.  Leases held by workers not
 *   listed (not seen within the window: stopped, dead, or beating rarely) are counted
 *   in the summary line so they are not silently missing.
 *
 *   --json prints an array of objects {id, host, pid, device_class, started_at,
 *   last_seen (Unix seconds, server clock), leased (count), leased_ids} for scripts.
 *   Errors: one line "gpunas workers: <store>: <what>", exit 1; bad options exit 2.
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
    fprintf(f, "usage: gpunas workers STORE [--window SEC] [--json]\n"
               "List the workers of a shared trial store seen within the last SEC seconds (default 120,\n"
               "by the store's clock) and the jobs each holds leased.  Times are the store server's\n"
               "clock in UTC; 'ago' is this machine's clock minus last_seen.\n");
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

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* the number of leased trials in l held by worker id */
static int64_t held_by(const gn_trial_list *l, const char *id)
{
    int64_t n = 0;
    for (int64_t i = 0; i < l->n; i++)
        n += l->items[i].worker && strcmp(l->items[i].worker, id) == 0;
    return n;
}

static bool listed(const gn_worker_list *w, const char *id)
{
    for (int64_t i = 0; id && i < w->n; i++)
        if (strcmp(w->items[i].id, id) == 0)
            return true;
    return false;
}

static void print_table(const char *where, double window, const gn_worker_list *w, const gn_trial_list *leased)
{
    double now = now_s();
    printf("%-24s %-20s %8s %-12s %-20s %-20s %8s %6s\n", "id", "host", "pid", "class", "started", "last_seen", "ago",
           "leased");
    for (int64_t i = 0; i < w->n; i++) {
        const gn_worker *x = &w->items[i];
        char pid[32] = "-", st[32], ls[32], ago[32] = "-";
        if (x->pid > 0)
            snprintf(pid, sizeof pid, "%lld", (long long)x->pid);
        if (!isnan(x->last_seen))
            snprintf(ago, sizeof ago, "%.0f s", now - x->last_seen);
        printf("%-24s %-20s %8s %-12s %-20s %-20s %8s %6lld\n", x->id, x->host ? x->host : "-", pid,
               x->device_class ? x->device_class : "-", utc(x->started_at, st, sizeof st),
               utc(x->last_seen, ls, sizeof ls), ago, (long long)held_by(leased, x->id));
    }
    int64_t orphan = 0;
    for (int64_t i = 0; i < leased->n; i++)
        orphan += !listed(w, leased->items[i].worker);
    printf("%s: %lld workers seen in the last %g s, %lld jobs leased", where, (long long)w->n, window,
           (long long)leased->n);
    if (orphan)
        printf(" (%lld by workers not seen in the window)", (long long)orphan);
    printf("; times: the store's clock (UTC), ago: this machine's clock\n");
}

static json_t *jreal(double v) { return isnan(v) ? json_null() : json_real(v); }
static json_t *jstr(const char *s) { return s ? json_string(s) : json_null(); }

static int print_json(const gn_worker_list *w, const gn_trial_list *leased)
{
    json_t *arr = json_array();
    if (!arr)
        return -1;
    for (int64_t i = 0; i < w->n; i++) {
        const gn_worker *x = &w->items[i];
        json_t *o = json_object(), *ids = json_array();
        if (!o || !ids) {
            json_decref(o);
            json_decref(ids);
            json_decref(arr);
            return -1;
        }
        for (int64_t k = 0; k < leased->n; k++)
            if (leased->items[k].worker && strcmp(leased->items[k].worker, x->id) == 0)
                json_array_append_new(ids, json_integer(leased->items[k].id));
        json_object_set_new(o, "id", jstr(x->id));
        json_object_set_new(o, "host", jstr(x->host));
        json_object_set_new(o, "pid", x->pid > 0 ? json_integer(x->pid) : json_null());
        json_object_set_new(o, "device_class", jstr(x->device_class));
        json_object_set_new(o, "started_at", jreal(x->started_at));
        json_object_set_new(o, "last_seen", jreal(x->last_seen));
        json_object_set_new(o, "leased", json_integer((json_int_t)json_array_size(ids)));
        json_object_set_new(o, "leased_ids", ids);
        json_array_append_new(arr, o);
    }
    return cli_puts_json(arr, 15);
}

int cmd_workers(int argc, char **argv)
{
    const char *cmd = "workers", *where = NULL;
    double window = 120;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--window") == 0) {
            if (cli_parse_double(cmd, "--window", i + 1 < argc ? argv[++i] : NULL, 1, 1e9, &window))
                return 2;
        } else if (cli_store_operand(cmd, a, &where)) {
            return 2;
        }
    }
    if (!where) {
        usage(stderr);
        return 2;
    }
    gn_store *s;
    gn_error err;
    if (gn_store_open(where, 0, &s, &err)) {
        cli_error(cmd, "%s", err.msg); /* names the store (password masked) */
        return 1;
    }
    gn_worker_list w;
    gn_trial_list leased = {0};
    gn_trial_filter f;
    gn_trial_filter_init(&f);
    f.status = GN_TRIAL_LEASED;
    f.level = GN_LEVEL_ANY; /* a worker may hold a promotion (fidelity level >= 1) too */
    int rc = gn_store_list_workers(s, window, &w, &err);
    if (rc == 0 && (rc = gn_store_list_trials(s, &f, &leased, &err)) != 0)
        gn_worker_list_free(&w);
    if (rc) {
        gn_store_close(s);
        cli_error(cmd, "%s", err.msg);
        return 1;
    }
    if (json) {
        rc = print_json(&w, &leased);
        if (rc)
            cli_error(cmd, "%s: out of memory writing JSON", gn_store_where(s));
    } else {
        print_table(gn_store_where(s), window, &w, &leased);
    }
    gn_store_close(s);
    gn_worker_list_free(&w);
    gn_trial_list_free(&leased);
    return rc ? 1 : 0;
}
