/*
 * cmd_search.c — `gpunas search`: the main job.  Loads the space and the data,
 * opens (or creates) the trial store, runs gn_nas_run (gpunas/nas.h) printing one
 * line per event, then prints the best model of every latency tier and the
 * accuracy/latency Pareto front and writes the tier winners as GPUNet JSON files.
 * Ctrl-C stops cleanly after the current trial (a second Ctrl-C kills); kill -9 is
 * safe too: `--resume` continues either way.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli.h"
#include "gpunas/backend.h"
#include "gpunas/data.h"
#include "gpunas/latency.h"
#include "gpunas/nas.h"
#include "gpunas/plot.h"

static const char *CMD = "search";
/* the default proxy (issue 13, bench/RESULTS.md "The default proxy"): every candidate
 * 1 epoch on 5,000 images, the top third of each tier again on 15,000 */
#define DEFAULT_FIDELITY "sh:1x5000,1x15000/3"
static void on_event(void *user, const gn_nas_event *e)
{
    int quiet = *(int *)user;
    if (quiet && e->kind == GN_NAS_EV_SAMPLE)
        return;
    if (e->kind == GN_NAS_EV_SAMPLE && e->done % 16 != 0 && e->done != e->total)
        return; /* tiering: one line per 16 samples */
    printf("%s\n", e->message);
    fflush(stdout);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: gpunas search [options]\n"
            "  --space NAME|FILE     search space: fmnist (default), gpunet, or a space JSON file\n"
            "  --dataset KIND        fashion-mnist (default), mnist, cifar10, folder\n"
            "  --data DIR            data location (default: the kind's Debian location)\n"
            "  --out DIR             output folder (default gpunas-search): search.db, tier winners, summary.json\n"
            "  --store FILE          trial store (default OUT/search.db)\n"
            "  --resume              continue the search in the store\n"
            "  --tiers SPEC          latency tier edges in ms, e.g. 0.1,0.2,0.4, or auto[:N] (default auto:3)\n"
            "  --optimizer KIND      lamcts (default), evolution, random, nsga2\n"
            "  --trials N            candidates to train in all (default 30)\n"
            "  --opt-init N          unguided proposals per tier before the optimizer's model\n"
            "                        steers: LA-MCTS's Latin hypercube, evolution's and NSGA-II's\n"
            "                        population (default: 2/5 of trials per tier, 4..20; kept\n"
            "                        by --resume)\n"
            "  --time-budget MIN     stop starting trials after MIN minutes (default: none)\n"
            "  --prune-samples N     tiering samples measured before the search (default 96)\n"
            "  --profile FILE        predict latency from a device profile instead of measuring\n"
            "  --lat-runs N          timed runs per latency measurement (default 30) ...\n"
            "  --lat-duration S      ... over at least S seconds (default 0.5)\n"
            "  --tier-margin PCT     do not train a candidate within PCT%% of a tier edge: a\n"
            "                        member must stay in its tier when measured again (5)\n"
            "  --proxy-epochs E      proxy training epochs per candidate (default 1)\n"
            "  --proxy-subset N      proxy training images per candidate (default 5000)\n"
            "  --proxy-batch B       proxy batch size (default 64)\n"
            "  --proxy-lr X          proxy learning rate (default 0.05)\n"
            "  --fidelity SPEC       successive halving inside each tier (default " DEFAULT_FIDELITY "\n"
            "                        unless --proxy-epochs/--proxy-subset is given):\n"
            "                        sh:E0xN0,E1xN1,...[/ETA] trains every candidate E0 epochs on\n"
            "                        N0 images (the proxy) and promotes the top 1/ETA (3) of each\n"
            "                        level to the next (E epochs on N images, 0: all), e.g.\n"
            "                        sh:1x5000,2x15000,4x45000; the tier winner is the best of\n"
            "                        the highest level; none: one level (the proxy)\n"
            "  --score KIND          what candidates are ranked by: acc+naswot (default: the proxy\n"
            "                        accuracy plus W points per standard deviation of the NASWOT\n"
            "                        zero-cost score) or acc (the proxy accuracy); a setting:\n"
            "                        --resume keeps the store's, and refuses another one named\n"
            "  --naswot-weight W     W of acc+naswot (default 1; likewise a setting)\n"
            "  --val-fraction F      validation split of the training set (default 0.05)\n"
            "  --threads N           threads for proxy training (default: the cores other\n"
            "                        processes leave free, followed while training)\n"
            "  --backend dnnl|ref    compute backend for training and measuring (dnnl; part of\n"
            "                        the search's settings when not the default)\n"
            "  --lat-threads N|best  threads of the latency measurements, part of the target\n"
            "                        device (default best: 1, 2, 4, ..., all timed on the\n"
            "                        reference network when the search starts; the fastest\n"
            "                        stable count, more threads only when > 10%% faster)\n"
            "  --no-pin              do not pin the measuring threads one per CPU\n"
            "  --no-reference        do not pair measurements with the reference network (by\n"
            "                        default the latency is the ratio to it x its baseline)\n"
            "  --seed S              search seed (default 1)\n"
            "many machines (README \"Many machines\"):\n"
            "  --store URL           postgresql://... shares the search with `gpunas worker`s anywhere\n"
            "  --workers N           worker processes started here: 1 (default) runs the jobs in this\n"
            "                        process; N > 1 starts N `gpunas worker`s (the first measures and\n"
            "                        trains, the others train); 0 leaves every job to workers started\n"
            "                        elsewhere\n"
            "  --parallel N          proposals in flight (default: 1 with one worker, 2N with N > 1,\n"
            "                        8 with --workers 0); a setting of the search: --resume\n"
            "                        keeps the value the search was made with\n"
            "  --lease S             lease of a claimed job in seconds (60)\n"
            "  --max-attempts N      lease expiries (dead workers) before a job fails (3)\n"
            "  --device-class C      the device class latency is measured on (default: this\n"
            "                        machine's; `gpunas worker --show-class` prints a machine's)\n"
            "  --quiet               fewer progress lines\n");
}

static void print_summary(const gn_nas_summary *s, const char *out_dir)
{
    printf("\nbest model per latency tier (batch-1 latency on this machine; proxy validation accuracy)\n");
    if (s->scorer.kind == GN_NAS_SCORE_NASWOT)
        printf("ranked by the proxy score: val acc + %g point(s) per standard deviation of NASWOT (mean %.1f, sd "
               "%.2f over %d tiering samples)\n",
               s->scorer.weight, s->scorer.mean, s->scorer.sd, s->scorer.n_norm);
    printf("%-5s %-10s %-8s %-9s %-16s %-10s %-10s %s\n", "tier", "<= ms", "trained", "val acc", "latency ms",
           "params", "MACs", "file");
    for (int i = 0; i < s->n_tiers; i++) {
        const gn_trial *b = &s->best[i];
        if (b->id <= 0) {
            printf("%-5d %-10.3g %-8d %-9s %-16s %-10s %-10s %s\n", i, s->tier_ms[i], s->trained[i], "-", "-", "-",
                   "-", "(no trained model in this tier)");
            continue;
        }
        char lat[32], acc[16];
        snprintf(lat, sizeof lat, "%.3f±%.3f", b->latency_ms, b->latency_spread_ms >= 0 ? b->latency_spread_ms : 0.0);
        snprintf(acc, sizeof acc, "%.2f%%", 100 * b->val_acc);
        printf("%-5d %-10.3g %-8d %-9s %-16s %-10lld %-10lld %s/tier%d-%gms.json\n", i, s->tier_ms[i], s->trained[i],
               acc, lat, (long long)b->params, (long long)b->macs, out_dir, i, s->tier_ms[i]);
    }
    if (s->n_levels >= 2) {
        printf("\npromotion ladder (successive halving %s; candidates per level, the best one, its val acc)\n",
               s->fidelity);
        for (int i = 0; i < s->n_tiers; i++) {
            printf("t%-3d", i);
            for (int l = 0; l < s->n_levels; l++) {
                if (s->level_n[i][l] == 0) {
                    printf("%s L%d %dx%d: -", l ? "  ->" : "", l, s->level_epochs[l], s->level_subset[l]);
                    continue;
                }
                printf("%s L%d %dx%d: %d, #%lld %.2f%%", l ? "  ->" : "", l, s->level_epochs[l], s->level_subset[l],
                       s->level_n[i][l], (long long)s->level_best[i][l], 100 * s->level_best_acc[i][l]);
            }
            printf("\n");
        }
        printf("(a tier's best model above is the best of the highest level it reached)\n");
    }
    printf("\nPareto front (accuracy vs latency) of the %lld trained candidates\n", (long long)s->n_done);
    printf("%-7s %-12s %-9s %-10s %s\n", "trial", "latency ms", "val acc", "params", "encoding");
    for (int i = 0; i < s->n_front; i++) {
        char acc[16];
        snprintf(acc, sizeof acc, "%.2f%%", 100 * s->front[i].val_acc);
        printf("%-7lld %-12.3f %-9s %-10lld %s\n", (long long)s->front[i].id, s->front[i].latency_ms, acc,
               (long long)s->front[i].params, s->front[i].encoding);
    }
    printf("\ntrials: %lld trained, %lld failed, %lld not trained (latency outside the tiers or tiering samples), "
           "%lld repeats of a trained network\n",
           (long long)s->n_done, (long long)s->n_failed, (long long)s->n_pruned, (long long)s->n_reused);
}

/* OUT/pareto.png: every trained candidate by tier, the front marked (as the summary
 * counts them: repeats of a trained network are left out).  0 written, 1 nothing to
 * plot, -1 failed (err set). */
static int write_pareto_png(gn_store *store, const gn_nas_summary *s, const char *out_dir, char *path, size_t cap,
                            gn_error *err)
{
    snprintf(path, cap, "%s/pareto.png", out_dir);
    gn_trial_filter f;
    gn_trial_filter_init(&f);
    f.status = GN_TRIAL_DONE;
    gn_trial_list l = {0};
    if (gn_store_list_trials(store, &f, &l, err))
        return -1;
    gn_plot_point *pts = malloc(sizeof *pts * (size_t)(l.n + 1));
    int n = 0, rc;
    for (int64_t i = 0; pts && i < l.n; i++) {
        const gn_trial *t = &l.items[i];
        if (!(t->latency_ms > 0) || !(t->val_acc >= 0) || (t->error && !strncmp(t->error, "same network", 12)))
            continue;
        int front = 0;
        for (int k = 0; k < s->n_front && !front; k++)
            front = s->front[k].id == t->id;
        pts[n++] = (gn_plot_point){t->latency_ms, t->val_acc, gn_nas_tier_of(s->tier_ms, s->n_tiers, t->latency_ms),
                                   front ? GN_PLOT_FRONT : 0};
    }
    char title[128];
    snprintf(title, sizeof title, "search: %d trained candidates, %d on the Pareto front", n, s->n_front);
    gn_plot_opts o = {.title = title, .x_label = "batch-1 latency (ms)", .y_label = "proxy validation accuracy (%)",
                      .tier_edges = s->tier_ms, .n_tiers = s->n_tiers};
    if (!pts)
        rc = gn_error_set(err, "%s: out of memory", path);
    else
        rc = n ? gn_plot_pareto_png(path, pts, n, &o, err) : 1;
    free(pts);
    gn_trial_list_free(&l);
    return rc;
}

/* --workers N > 1: N `gpunas worker` processes of this binary on the same store,
 * each with its share of the cores; they die with the search (PR_SET_PDEATHSIG) and
 * end by themselves when it is finished.  Only the first measures latency (the others
 * train): measurements of one machine must not run side by side. */
#define MAX_LOCAL_WORKERS 1024
static pid_t g_workers[MAX_LOCAL_WORKERS];
static int g_n_workers;

static int start_workers(int n, const char *store, const char *data_dir, int threads, double lease_s, gn_error *err)
{
    char host[64] = "";
    gethostname(host, sizeof host - 1);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int per = threads > 0 ? threads : (int)(ncpu / n > 0 ? ncpu / n : 1);
    fflush(stdout);
    fflush(stderr);
    for (int k = 0; k < n && k < MAX_LOCAL_WORKERS; k++) {
        char id[128], th[16], lease[32];
        snprintf(id, sizeof id, "%s:w%d", host, k + 1);
        snprintf(th, sizeof th, "%d", per);
        snprintf(lease, sizeof lease, "%g", lease_s);
        pid_t pid = fork();
        if (pid < 0)
            return gn_error_set(err, "--workers: cannot start worker %d: fork failed", k + 1);
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() == 1)
                _exit(1);
            const char *av[20];
            int m = 0;
            av[m++] = "gpunas";
            av[m++] = "worker";
            av[m++] = "--store";
            av[m++] = store;
            av[m++] = "--id";
            av[m++] = id;
            av[m++] = "--threads";
            av[m++] = th;
            av[m++] = "--lease";
            av[m++] = lease;
            av[m++] = "--poll";
            av[m++] = "0.2";
            av[m++] = "--quiet";
            if (data_dir) {
                av[m++] = "--data";
                av[m++] = data_dir;
            }
            /* one measuring process: several would pin their threads to the same CPUs
             * and time each other */
            if (k > 0) {
                av[m++] = "--kinds";
                av[m++] = "train";
            }
            av[m] = NULL;
            execv("/proc/self/exe", (char *const *)av);
            _exit(127);
        }
        g_workers[g_n_workers++] = pid;
    }
    printf("started %d local workers (%d training thread%s each)\n", n, per, per == 1 ? "" : "s");
    return 0;
}

static void stop_workers(void)
{
    for (int k = 0; k < g_n_workers; k++)
        kill(g_workers[k], SIGTERM);
    for (int k = 0; k < g_n_workers; k++)
        waitpid(g_workers[k], NULL, 0);
    g_n_workers = 0;
}

int cmd_search(int argc, char **argv)
{
    gn_nas_config c;
    gn_nas_defaults(&c);
    const char *space_arg = "fmnist", *dataset = "fashion-mnist", *data_dir = NULL, *out_dir = "gpunas-search",
               *store_path = NULL, *tiers = "auto:3", *fidelity = NULL, *proxy_set = NULL;
    bool resume = false;
    int quiet = 0, workers = 1, parallel = 0, weight_set = 0;
    double minutes = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int r = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--resume")) {
            resume = true;
            continue;
        } else if (!strcmp(a, "--quiet")) {
            quiet = 1;
            continue;
        } else if (!strcmp(a, "--no-pin")) {
            c.lat_pin = 0;
            continue;
        } else if (!strcmp(a, "--no-reference")) {
            c.lat_reference = 0;
            continue;
        }
        if (!v && a[0] == '-') {
            cli_error(CMD, "option %s: missing value", a);
            return 2;
        }
        if (!strcmp(a, "--space")) space_arg = v;
        else if (!strcmp(a, "--dataset")) dataset = v;
        else if (!strcmp(a, "--data")) data_dir = v;
        else if (!strcmp(a, "--out")) out_dir = v;
        else if (!strcmp(a, "--store")) store_path = v;
        else if (!strcmp(a, "--tiers")) tiers = v;
        else if (!strcmp(a, "--optimizer")) c.optimizer = v;
        else if (!strcmp(a, "--profile")) c.profile_path = v;
        else if (!strcmp(a, "--trials")) r = cli_parse_int(CMD, a, v, 0, 1000000, &c.trials);
        else if (!strcmp(a, "--opt-init")) r = cli_parse_int(CMD, a, v, 2, 100000, &c.opt_init);
        else if (!strcmp(a, "--time-budget")) r = cli_parse_double(CMD, a, v, 0, 1e7, &minutes);
        else if (!strcmp(a, "--prune-samples")) r = cli_parse_int(CMD, a, v, 3, 1000000, &c.prune_samples);
        else if (!strcmp(a, "--lat-runs")) r = cli_parse_int(CMD, a, v, 3, 100000, &c.lat_runs);
        else if (!strcmp(a, "--proxy-epochs")) r = cli_parse_int(CMD, a, v, 1, 1000, &c.proxy_epochs), proxy_set = a;
        else if (!strcmp(a, "--proxy-subset")) r = cli_parse_int(CMD, a, v, 0, 100000000, &c.proxy_subset), proxy_set = a;
        else if (!strcmp(a, "--proxy-batch")) r = cli_parse_int(CMD, a, v, 1, 65536, &c.proxy_batch);
        else if (!strcmp(a, "--proxy-lr")) r = cli_parse_double(CMD, a, v, 1e-9, 100, &c.proxy_lr);
        else if (!strcmp(a, "--val-fraction")) r = cli_parse_double(CMD, a, v, 0.001, 0.9, &c.val_fraction);
        else if (!strcmp(a, "--threads")) r = cli_parse_int(CMD, a, v, 0, 4096, &c.threads);
        else if (!strcmp(a, "--backend")) {
            if (strcmp(v, "dnnl") && strcmp(v, "ref")) {
                cli_error(CMD, "--backend: '%s' is not a backend (%s)", v, gn_backend_names());
                return 2;
            }
            c.backend = v;
        }
        else if (!strcmp(a, "--lat-threads") && !strcmp(v, "best")) c.lat_threads = GN_THREADS_BEST;
        else if (!strcmp(a, "--lat-duration")) {
            double sec = 0;
            r = cli_parse_double(CMD, a, v, 0, 3600, &sec);
            c.lat_min_ms = 1000 * sec;
        } else if (!strcmp(a, "--tier-margin")) {
            double pct = 0;
            r = cli_parse_double(CMD, a, v, 0, 40, &pct);
            c.tier_margin = pct / 100;
        }
        else if (!strcmp(a, "--lat-threads")) r = cli_parse_int(CMD, a, v, 1, 4096, &c.lat_threads);
        else if (!strcmp(a, "--seed")) r = cli_parse_u64(CMD, a, v, &c.seed);
        else if (!strcmp(a, "--workers")) r = cli_parse_int(CMD, a, v, 0, 1024, &workers);
        else if (!strcmp(a, "--parallel")) r = cli_parse_int(CMD, a, v, 1, 100000, &parallel);
        else if (!strcmp(a, "--lease")) r = cli_parse_double(CMD, a, v, 1, 1e6, &c.lease_s);
        else if (!strcmp(a, "--max-attempts")) r = cli_parse_int(CMD, a, v, 1, 1000, &c.max_attempts);
        else if (!strcmp(a, "--device-class")) c.device_class = v;
        else if (!strcmp(a, "--fidelity")) fidelity = v;
        else if (!strcmp(a, "--score")) {
            if (gn_nas_score_parse(v, &c.score)) {
                cli_error(CMD, "--score: '%s' is not acc or acc+naswot", v);
                return 2;
            }
            c.score_named = 1;
        }
        else if (!strcmp(a, "--naswot-weight")) {
            r = cli_parse_double(CMD, a, v, 0, 1000, &c.naswot_weight);
            weight_set = 1;
        }
        else {
            cli_error(CMD, "unknown option '%s' (see gpunas search --help)", a);
            return 2;
        }
        if (r)
            return 2;
        i++;
    }
    c.time_budget_s = minutes * 60.0;
    if (weight_set && c.score != GN_NAS_SCORE_NASWOT) {
        cli_error(CMD, "--naswot-weight applies to --score acc+naswot, not acc");
        return 2;
    }
    c.score_named |= weight_set;
    /* the default ladder, for a new search that names no proxy budget (a resume that
     * names none continues the stored one) */
    if (!fidelity && !proxy_set && !resume)
        fidelity = DEFAULT_FIDELITY;
    if (fidelity) {
        gn_error ferr = {{0}};
        if (proxy_set) {
            cli_error(CMD, "%s and --fidelity: the fidelity's first level is the proxy budget", proxy_set);
            return 2;
        }
        if (gn_nas_parse_fidelity(fidelity, &c, &ferr)) {
            cli_error(CMD, "--fidelity: %s", ferr.msg);
            return 2;
        }
    }
    /* more proposals than workers: about half the proposals fall outside their tier
     * and cost only a measurement, so the trainers would wait otherwise */
    c.parallel = parallel > 0 ? parallel : workers == 1 ? 1 : workers > 1 ? 2 * workers : 8;
    c.local_worker = workers == 1;
    gn_error err = {{0}};
    if (gn_nas_parse_tiers(tiers, c.tier_ms, &c.n_tiers, &c.auto_tiers, &err)) {
        cli_error(CMD, "%s", err.msg);
        return 2;
    }
    const char *kinds[] = {"lamcts", "evolution", "random", "nsga2"};
    int ok = 0;
    for (int i = 0; i < 4; i++)
        ok |= !strcmp(c.optimizer, kinds[i]);
    if (!ok) {
        cli_error(CMD, "option --optimizer: unknown '%s' (lamcts, evolution, random, nsga2)", c.optimizer);
        return 2;
    }

    gn_space *space = NULL;
    gn_dataset *train = NULL;
    gn_store *store = NULL;
    int rc = 1;
    char space_src[300];
    if (!strcmp(space_arg, "fmnist") || !strcmp(space_arg, "gpunet")) {
        if (gn_space_builtin(space_arg, &space, &err))
            goto fail;
        snprintf(space_src, sizeof space_src, "builtin:%s", space_arg);
    } else {
        if (gn_space_load(space_arg, &space, &err))
            goto fail;
        snprintf(space_src, sizeof space_src, "%s", space_arg);
    }
    if (gn_dataset_load(dataset, data_dir, "train", 0, &train, &err))
        goto fail;
    if (train->c != gn_space_in_channels(space) || train->classes != gn_space_classes(space)) {
        gn_error_set(&err, "space '%s' is for %d-channel images and %d classes, data set %s has %d and %d",
                     gn_space_name(space), gn_space_in_channels(space), gn_space_classes(space), train->source,
                     train->c, train->classes);
        goto fail;
    }
    if (mkdir(out_dir, 0777) != 0 && access(out_dir, W_OK) != 0) {
        gn_error_set(&err, "%s: cannot create the output folder", out_dir);
        goto fail;
    }
    char dbpath[4096];
    snprintf(dbpath, sizeof dbpath, "%s/search.db", out_dir);
    if (!store_path)
        store_path = dbpath;
    if (gn_store_open(store_path, resume ? 0 : GN_STORE_CREATE, &store, &err))
        goto fail;

    c.space = space;
    c.space_source = space_src;
    c.train_set = train;
    c.dataset_name = dataset;
    c.store = store;
    printf("gpunas search: space %s (%d dims), data %s (%d images), store %s, optimizer %s, %d trials%s\n",
           gn_space_name(space), gn_space_desc(space)->ndims, train->source, train->n, store_path, c.optimizer,
           c.trials, resume ? " (resume)" : "");
    fflush(stdout);
    cli_stop_on_signals(130);
    if (workers > 1 && start_workers(workers, store_path, data_dir, c.threads, c.lease_s, &err))
        goto fail;
    gn_nas_callbacks cb = {.user = &quiet, .event = on_event, .should_stop = cli_should_stop};
    int run_rc = gn_nas_run(&c, resume, &cb, &err);
    stop_workers();
    if (run_rc)
        goto fail;
    signal(SIGINT, SIG_DFL);

    gn_nas_summary sum;
    if (gn_nas_summarize(store, &sum, &err))
        goto fail;
    if (gn_nas_write_winners(&sum, out_dir, &err) < 0) {
        gn_nas_summary_free(&sum);
        goto fail;
    }
    print_summary(&sum, out_dir);
    printf("wrote %s/summary.json%s\n", out_dir, sum.n_done ? " and the tier winners above" : "");
    char png[4200];
    gn_error perr = {{0}};
    int prc = write_pareto_png(store, &sum, out_dir, png, sizeof png, &perr);
    if (prc == 0)
        printf("wrote %s\n", png);
    else if (prc < 0)
        fprintf(stderr, "gpunas search: warning: no picture: %s\n", perr.msg);
    gn_nas_summary_free(&sum);
    rc = cli_stop_requested() ? 130 : 0;
    goto done;
fail:
    cli_error(CMD, "%s", err.msg);
done:
    gn_store_close(store);
    gn_dataset_free(train);
    gn_space_free(space);
    return rc;
}
