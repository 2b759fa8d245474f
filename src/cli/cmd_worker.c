/*
 * cmd_worker.c — `gpunas worker --store URL`: one worker of a search spread over many
 * machines (gn_nas_worker_run, gpunas/nas.h "Many machines").  It claims the search's
 * jobs from the store, measures latency (only on the search's device class) and/or
 * proxy-trains, commits each result under its lease, and repeats.  Start any number,
 * anywhere, before or after the coordinator (`gpunas search ... --workers 0`): the
 * database is the only thing they share.
 *
 * SIGTERM or Ctrl-C: a measurement in hand is finished and committed, a training is
 * interrupted and its job given back to the queue (the attempt is not counted); a
 * second signal exits at once (the lease then expires and the job is re-queued).
 * Exit status: 0 after a stop, --once, --max-trials, --idle-exit or the search's end;
 * 1 on an error (a store unreachable for --store-retry seconds, the search's data or
 * space missing here).
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "gpunas/latency.h"
#include "gpunas/nas.h"

static const char *CMD = "worker";
static void on_event(void *user, const gn_nas_event *e)
{
    if (*(int *)user && strstr(e->message, " measured ") == NULL && strstr(e->message, " trained: ") == NULL &&
        strstr(e->message, "lease lost") == NULL && strstr(e->message, "interrupted") == NULL)
        return;
    printf("%s\n", e->message);
    fflush(stdout);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: gpunas worker --store URL [options]\n"
            "Claim and run jobs of the search in URL (postgresql://... or an SQLite file) until stopped.\n"
            "  --store URL           the search's store (required)\n"
            "  --id ID               worker id (default HOST:PID); a fixed id (e.g. a Slurm array index)\n"
            "                        lets a restarted worker take back its predecessor's jobs at once\n"
            "  --device-class C      this machine's device class (default: detected; see --show-class);\n"
            "                        only a worker of the search's class measures latency\n"
            "  --kinds K             measure,train (default), measure, or train\n"
            "  --lease S             lease of a claimed job in seconds, renewed while training (60)\n"
            "  --threads N           training threads (default: the cores other processes leave free)\n"
            "  --data DIR            the search's data set on this machine (default: its usual location)\n"
            "  --space FILE          the search's space file on this machine (default: as recorded)\n"
            "  --once                run one job, then exit\n"
            "  --max-trials N        run N jobs, then exit\n"
            "  --idle-exit S         exit after S seconds with nothing to claim (default: wait)\n"
            "  --poll S              how often to look for a job when idle (1)\n"
            "  --store-retry S       keep retrying an unreachable store this long (300)\n"
            "  --show-class          print this machine's device class and exit\n"
            "  --quiet               only one line per job\n"
            "A finished search (its budget spent) ends its idle workers.\n");
}

int cmd_worker(int argc, char **argv)
{
    gn_nas_worker_config w;
    gn_nas_worker_defaults(&w);
    const char *store_loc = NULL, *kinds = NULL;
    int quiet = 0, show = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int r = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--once")) {
            w.max_jobs = 1;
            continue;
        } else if (!strcmp(a, "--quiet")) {
            quiet = 1;
            continue;
        } else if (!strcmp(a, "--show-class")) {
            show = 1;
            continue;
        }
        if (!v) {
            cli_error(CMD, "option %s: missing value (see gpunas worker --help)", a);
            return 2;
        }
        if (!strcmp(a, "--store")) store_loc = v;
        else if (!strcmp(a, "--id")) w.id = v;
        else if (!strcmp(a, "--device-class")) w.device_class = v;
        else if (!strcmp(a, "--kinds")) kinds = v;
        else if (!strcmp(a, "--data")) w.data_dir = v;
        else if (!strcmp(a, "--space")) w.space_path = v;
        else if (!strcmp(a, "--lease")) r = cli_parse_double(CMD, a, v, 1, 1e6, &w.lease_s);
        else if (!strcmp(a, "--threads")) r = cli_parse_int(CMD, a, v, 0, 4096, &w.threads);
        else if (!strcmp(a, "--max-trials")) r = cli_parse_int(CMD, a, v, 1, 1000000000, &w.max_jobs);
        else if (!strcmp(a, "--idle-exit")) r = cli_parse_double(CMD, a, v, 0, 1e9, &w.idle_exit_s);
        else if (!strcmp(a, "--poll")) r = cli_parse_double(CMD, a, v, 0.01, 3600, &w.poll_s);
        else if (!strcmp(a, "--store-retry")) r = cli_parse_double(CMD, a, v, 0, 1e7, &w.store_retry_s);
        else {
            cli_error(CMD, "unknown option '%s' (see gpunas worker --help)", a);
            return 2;
        }
        if (r)
            return 2;
        i++;
    }
    gn_error err = {{0}};
    if (show) {
        gn_lat_device d;
        char cls[256];
        if (gn_lat_device_detect("dnnl", 0, &d, &err)) {
            cli_error(CMD, "%s", err.msg);
            return 1;
        }
        gn_lat_device_class(&d, cls, sizeof cls);
        printf("%s\n", cls);
        return 0;
    }
    if (!store_loc) {
        cli_error(CMD, "--store is required (see gpunas worker --help)");
        return 2;
    }
    if (kinds) {
        if (!strcmp(kinds, "measure,train") || !strcmp(kinds, "train,measure"))
            w.kinds = GN_JOB_MEASURE | GN_JOB_TRAIN;
        else if (!strcmp(kinds, "measure"))
            w.kinds = GN_JOB_MEASURE;
        else if (!strcmp(kinds, "train"))
            w.kinds = GN_JOB_TRAIN;
        else {
            cli_error(CMD, "--kinds: '%s' is not measure,train, measure or train", kinds);
            return 2;
        }
    }
    /* a database server may not be up yet, or the search not started (no tables yet):
     * workers are often launched before the coordinator, so PostgreSQL locations are
     * retried; an SQLite file that cannot be opened is a mistake, said at once */
    bool pg = strncmp(store_loc, "postgresql://", 13) == 0 || strncmp(store_loc, "postgres://", 11) == 0;
    for (double waited = 0;; waited += 1) {
        if (gn_store_open(store_loc, 0, &w.store, &err) == 0)
            break;
        if (!pg || waited >= w.store_retry_s) {
            cli_error(CMD, "%s", err.msg);
            return 1;
        }
        if (waited == 0)
            printf("worker: %s (retrying for up to %.0f s)\n", err.msg, w.store_retry_s);
        fflush(stdout);
        sleep(1);
    }
    cli_stop_on_signals(143);
    gn_nas_callbacks cb = {.user = &quiet, .event = on_event, .should_stop = cli_should_stop};
    gn_nas_worker_stats st;
    int rc = gn_nas_worker_run(&w, &cb, &st, &err);
    gn_store_close(w.store);
    if (rc) {
        cli_error(CMD, "%s", err.msg);
        return 1;
    }
    printf("worker: %lld jobs (%lld measured, %lld trained, %lld failed, %lld lost to another worker, %lld given back)\n",
           (long long)st.jobs, (long long)st.measured, (long long)st.trained, (long long)st.failed, (long long)st.lost,
           (long long)st.released);
    return 0;
}
