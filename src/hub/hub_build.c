/*
 * hub_build.c — from a finished search to published hub models: full training,
 * test evaluation, latency with the search's protocol, export, atomic publishing
 * (design in gpunas/hub.h).
 *
 * The model record (model.json) written here:
 *   name, format "gpunas-hub-model", version 1, gpunas_version, created_at (UTC)
 *   files    {config, weights, onnx, card}
 *   task     {dataset, classes, in_channels, resolution, normalisation (text), mean[],
 *             std[] (per channel, on pixels scaled to [0, 1])}
 *   arch     {params, macs, layers}
 *   accuracy {test_top1, test_top5, test_images, val_top1, val_images, val_split_seed,
 *             proxy_val_top1}
 *   latency  {batch 1, median_ms, p10_ms, p90_ms, runs, robust_cv, method, ratio,
 *             ratio_lo, ratio_hi, reference_ms, reference_baseline_ms, raw_median_ms,
 *             threads, pinned, device, cpu_model, runtime, precision "fp32",
 *             attempts, stable, measured_at}
 *   latency_batches [{batch, median_ms, p10_ms, p90_ms}]   (batch sizes > 1, raw)
 *   training {epochs, train_images, seconds, summary, options (the trainer's JSON),
 *             teacher}
 *   export   {onnx_opset, bn "folded"}
 *   search   {store, trial_id, tier, tier_min_ms, tier_max_ms, rank, optimizer,
 *             encoding}
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gpunas/backend.h"
#include "gpunas/data.h"
#include "gpunas/latency.h"
#include "gpunas/nas.h"
#include "gpunas/network.h"
#include "gpunas/onnx.h"
#include "gpunas/plot.h"
#include "gpunas/safetensors.h"
#include "gpunas/store.h"
#include "gpunas/train.h"
#include "hub/hub_internal.h"
#include "util/fs_atomic.h"

/* paths are built in PATH_MAX-sized buffers; one too long for them is cut and then
 * fails to open with a message naming it */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#define ONNX_OPSET 13

void gn_hub_build_defaults(gn_hub_build_config *c)
{
    memset(c, 0, sizeof *c);
    c->top_k = 1;
    c->epochs = 10;
    c->train_batch = 64;
    c->lr = 0.1;
    c->seed = 1;
    c->n_batches = 1;
    c->batches[0] = 1;
    c->lat_min_ms = 3000;
}

/* ------------------------------------------------------------------ state */
typedef struct {
    const gn_hub_build_config *c;
    const gn_hub_callbacks *cb;
    char store_path[PATH_MAX], store_real[PATH_MAX], hub[PATH_MAX], work[PATH_MAX + 16];
    gn_store *store;
    gn_nas_summary sum;
    json_t *settings;
    char dataset[64];
    gn_dataset *train, *test;
    gn_backend *be;
    gn_arch *ref_arch;
    gn_net *ref_net;
    int lat_threads;
    double ref_base_ms;
    gn_lat_device dev;
    char dev_tag[64]; /* "cpu-epyc" */
} build_state;

static void say(build_state *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(build_state *s, const char *fmt, ...)
{
    if (!s->cb || !s->cb->message)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    s->cb->message(s->cb->user, line);
}

static void utc_now(char *buf, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* "fashion-mnist" -> "fmnist"; others: lower-case letters, digits and '-'. */
static void data_tag(const char *dataset, char *out, size_t n)
{
    if (!strcmp(dataset, "fashion-mnist") || !strcmp(dataset, "fmnist")) {
        snprintf(out, n, "fmnist");
        return;
    }
    size_t j = 0;
    for (const char *p = dataset; *p && j + 1 < n; p++) {
        char ch = *p;
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        out[j++] = ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')) ? ch : '-';
    }
    out[j] = 0;
}

/* "AMD EPYC 7B13" -> "cpu-epyc"; "Intel(R) Xeon(R) ..." -> "cpu-xeon". */
static void device_tag(const gn_lat_device *d, char *out, size_t n)
{
    static const char *families[] = {"epyc", "xeon", "ryzen", "threadripper", "core", "neoverse", "graviton", "apple"};
    char low[128];
    size_t i = 0;
    for (; d->cpu_model[i] && i + 1 < sizeof low; i++) {
        char ch = d->cpu_model[i];
        low[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
    }
    low[i] = 0;
    for (size_t k = 0; k < sizeof families / sizeof families[0]; k++)
        if (strstr(low, families[k])) {
            snprintf(out, n, "%s-%s", d->kind, families[k]);
            return;
        }
    snprintf(out, n, "%s", d->kind);
}

static int meta_double(gn_store *st, const char *key, double *v, gn_error *err)
{
    char *text = NULL;
    int rc = gn_store_get_meta(st, key, &text, err);
    if (rc != 0)
        return rc;
    char *end;
    *v = strtod(text, &end);
    int bad = end == text || *end || !(*v > 0);
    free(text);
    if (bad)
        return gn_error_set(err, "%s: meta '%s' is not a positive number", gn_store_where(st), key);
    return 0;
}

/* ------------------------------------------------------------------ set-up */
static int setup(build_state *s, gn_error *err)
{
    const gn_hub_build_config *c = s->c;
    if (c->store_path)
        snprintf(s->store_path, sizeof s->store_path, "%s", c->store_path);
    else
        snprintf(s->store_path, sizeof s->store_path, "%s/search.db", c->search_dir);
    if (!gn__fs_exists(s->store_path))
        return gn_error_set(err, "%s: no search store here (run `gpunas search --out %s` first)", s->store_path,
                            c->search_dir);
    if (!realpath(s->store_path, s->store_real))
        snprintf(s->store_real, sizeof s->store_real, "%s", s->store_path);
    if (c->hub_dir)
        snprintf(s->hub, sizeof s->hub, "%s", c->hub_dir);
    else
        snprintf(s->hub, sizeof s->hub, "%s/hub", c->search_dir);
    snprintf(s->work, sizeof s->work, "%s/.work", s->hub);
    if (c->top_k < 1 || c->epochs < 1 || c->n_batches < 1 || c->batches[0] != 1)
        return gn_error_set(err, "hub build: top-k, epochs and batch sizes must be >= 1, the first batch size 1");

    if (gn_store_open(s->store_path, 0, &s->store, err) || gn_nas_summarize(s->store, &s->sum, err))
        return -1;
    if (s->sum.n_tiers == 0)
        return gn_error_set(err, "%s: the search has no tiers yet (it stopped before tiering)", s->store_path);
    char *settings = NULL;
    int g = gn_store_get_meta(s->store, "nas.settings", &settings, err);
    if (g < 0)
        return -1;
    if (g == 0) {
        json_error_t je;
        s->settings = json_loads(settings, 0, &je);
        free(settings);
        if (!s->settings)
            return gn_error_set(err, "%s: meta 'nas.settings' is not JSON: %s", s->store_path, je.text);
    } else {
        s->settings = json_object();
    }
    const char *ds = c->dataset;
    if (!ds) {
        json_t *d = json_object_get(s->settings, "dataset");
        ds = d && json_is_string(d) ? json_string_value(d) : NULL;
    }
    if (!ds)
        return gn_error_set(err, "%s: the search does not record its data set: give --dataset", s->store_path);
    snprintf(s->dataset, sizeof s->dataset, "%s", ds);

    /* the hub folder: a corrupt index is refused before anything is written */
    if (gn__fs_mkdirs(s->hub, err))
        return -1;
    gn_hub old;
    if (gn_hub_load(s->hub, true, &old, err))
        return -1;
    gn_hub_free(&old);
    if (gn__fs_mkdirs(s->work, err))
        return -1;

    say(s, "hub %s from %s: %d tier(s), top %d per tier, %d epochs", s->hub, s->store_path, s->sum.n_tiers, c->top_k,
        c->epochs);
    return 0;
}

/* The search's latency conditions (after training: oneDNN's OpenMP pool must not
 * exist before the training workers are forked). */
static int setup_latency(build_state *s, gn_error *err)
{
    const gn_hub_build_config *c = s->c;
    /* latency conditions: the search's threads and reference baseline */
    int rc = 0;
    double v;
    if (c->lat_threads > 0) {
        s->lat_threads = c->lat_threads;
    } else if ((rc = meta_double(s->store, "nas.lat_threads", &v, err)) == 0) {
        s->lat_threads = (int)v;
    } else if (rc < 0) {
        return -1;
    } else {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        s->lat_threads = n > 0 ? (int)n : 1;
    }
    if (gn_backend_create("dnnl", &s->be, err) || gn_lat_reference_arch(&s->ref_arch, err) ||
        gn_net_create(s->ref_arch, s->be, &s->ref_net, err) || gn_net_init(s->ref_net, 1, err))
        return -1;
    rc = meta_double(s->store, "nas.lat_reference_ms", &s->ref_base_ms, err);
    if (rc < 0)
        return -1;
    if (rc == 1) { /* a search without a reference (--no-reference or a profile): our own baseline */
        gn_lat_opts o;
        gn_lat_opts_default(&o);
        o.min_ms = 5000;
        o.warmup_ms = 300;
        gn_lat_result r;
        if (gn_lat_measure_on(s->ref_net, NULL, 1, &o, s->lat_threads, 1, &r, NULL, err))
            return -1;
        s->ref_base_ms = r.compute.median;
        gn_lat_result_free(&r);
        say(s, "the search has no reference baseline: measured one now, %.4f ms", s->ref_base_ms);
    }
    if (gn_lat_device_detect("dnnl", s->lat_threads, &s->dev, err))
        return -1;
    device_tag(&s->dev, s->dev_tag, sizeof s->dev_tag);

    say(s, "timing: batch 1 at %d thread(s) pinned, with the reference network (search baseline %.4f ms)",
        s->lat_threads, s->ref_base_ms);
    return 0;
}

static int load_data(build_state *s, gn_error *err)
{
    if (s->train)
        return 0;
    if (gn_dataset_load(s->dataset, s->c->data_dir, "train", 0, &s->train, err) ||
        gn_dataset_load(s->dataset, s->c->data_dir, "test", 0, &s->test, err))
        return -1;
    return 0;
}

static void teardown(build_state *s)
{
    gn_net_free(s->ref_net);
    gn_arch_free(s->ref_arch);
    gn_backend_destroy(s->be);
    gn_dataset_free(s->train);
    gn_dataset_free(s->test);
    json_decref(s->settings);
    if (s->store)
        gn_nas_summary_free(&s->sum);
    gn_store_close(s->store);
}

/* ------------------------------------------------------------------ candidates */
typedef struct {
    gn_trial t;
    int tier, rank;
} candidate;

/* a trained trial and its rank key: the level reached, the score there */
typedef struct {
    const gn_trial *t;
    int level;
    double score;
} ranked;

static int by_score_desc(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->level != y->level) /* successive halving: the highest level first */
        return x->level > y->level ? -1 : 1;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    if (x->t->latency_ms != y->t->latency_ms)
        return x->t->latency_ms < y->t->latency_ms ? -1 : 1;
    return x->t->id < y->t->id ? -1 : 1;
}

/* The top_k trained trials of every tier, by the search's proxy score (gn_nas_score:
 * the proxy accuracy, plus the NASWOT term when the search scores "acc+naswot";
 * repeats excluded); with successive halving by the highest level reached, then the
 * score there (the copies carry that level and its accuracy). */
static int pick_candidates(build_state *s, candidate **out, int *n_out, gn_error *err)
{
    gn_trial_filter f;
    gn_trial_filter_init(&f);
    f.status = GN_TRIAL_DONE;
    gn_trial_list l = {0};
    gn_nas_rung *rungs = NULL;
    int64_t n_rungs = 0;
    gn_nas_scorer sc;
    if (gn_nas_scorer_load(s->store, &sc, err) || gn_nas_read_rungs(s->store, &rungs, &n_rungs, err))
        return -1;
    if (gn_store_list_trials(s->store, &f, &l, err)) {
        free(rungs);
        return -1;
    }
    ranked *rk = calloc((size_t)l.n + 1, sizeof *rk);
    for (int64_t i = 0; rk && i < l.n; i++) {
        const gn_nas_rung *r = gn_nas_rung_of(rungs, n_rungs, l.items[i].id);
        rk[i] = (ranked){&l.items[i], 0, gn_nas_score(&sc, &l.items[i])};
        if (r) {
            l.items[i].level = rk[i].level = r->level;
            l.items[i].val_acc = r->acc;
            rk[i].score = r->score;
        }
    }
    free(rungs);
    if (rk && l.n > 1)
        qsort(rk, l.n, sizeof *rk, by_score_desc);
    candidate *cs = rk ? calloc((size_t)s->sum.n_tiers * s->c->top_k + 1, sizeof *cs) : NULL;
    int n = 0;
    for (int tier = 0; cs && tier < s->sum.n_tiers; tier++) {
        int rank = 0;
        for (int64_t i = 0; i < l.n && rank < s->c->top_k; i++) {
            const gn_trial *t = rk[i].t;
            if (!t->config || !(t->latency_ms > 0) || !isfinite(t->val_acc) ||
                (t->error && !strncmp(t->error, "same network", 12)))
                continue;
            if (gn_nas_tier_of(s->sum.tier_ms, s->sum.n_tiers, t->latency_ms) != tier)
                continue;
            if (gn_trial_copy(&cs[n].t, t))
                break;
            cs[n].tier = tier;
            cs[n].rank = ++rank;
            n++;
        }
    }
    free(rk);
    gn_trial_list_free(&l);
    if (!cs)
        return gn_error_set(err, "hub build: out of memory");
    *out = cs;
    *n_out = n;
    return 0;
}

/* Is (this store, trial id) already a hub model?  1 yes (name copied), 0 no, -1 error. */
static int published(build_state *s, int64_t trial_id, char *name, size_t n, gn_error *err)
{
    gn_hub h;
    if (gn_hub_scan(s->hub, &h, err))
        return -1;
    int found = 0;
    for (int i = 0; i < h.n && !found; i++)
        if (h.models[i].trial_id == trial_id && !strcmp(h.models[i].store, s->store_real)) {
            snprintf(name, n, "%s", h.models[i].name);
            found = 1;
        }
    gn_hub_free(&h);
    return found;
}

/* ------------------------------------------------------------------ training */
typedef struct {
    build_state *s;
    const char *label;
} train_ui;

static int on_epoch(void *user, const gn_epoch_metrics *m)
{
    train_ui *u = user;
    build_state *s = u->s;
    if (s->cb && s->cb->epoch)
        s->cb->epoch(s->cb->user, u->label, m->epoch, s->c->epochs, m->has_val ? m->val_top1 : NAN, m->time_s);
    return 0;
}

static int on_progress(void *user, const gn_train_progress *p)
{
    train_ui *u = user;
    return u->s->cb && u->s->cb->should_stop && u->s->cb->should_stop(u->s->cb->user);
}

static const char *RECIPE = "SGD Nesterov momentum 0.9, weight decay 5e-5 (not on BN/bias), cosine to 0 after a "
                            "1-epoch linear warm-up, label smoothing 0.1, tail dropout 0.2, no drop-path, random "
                            "crop pad 2 + horizontal flip, no random erasing";

/* Train (or continue, or reuse) the candidate's full run in WORK/trial-ID; fills
 * result (a JSON object: test_top1, test_top5, val_top1, seconds, train_images,
 * options). */
static int train_candidate(build_state *s, const candidate *cd, const gn_arch *arch, const char *dir, int threads,
                           json_t **result, gn_error *err)
{
    char rpath[PATH_MAX + 32];
    snprintf(rpath, sizeof rpath, "%s/result.json", dir);
    if (gn__fs_exists(rpath)) {
        json_error_t je;
        *result = json_load_file(rpath, 0, &je);
        if (*result)
            return 0;
        say(s, "%s: unreadable (%s): training again", rpath, je.text);
    }
    if (load_data(s, err))
        return -1;
    const gn_hub_build_config *c = s->c;
    gn_train_config tc;
    gn_train_defaults(&tc);
    tc.arch = arch;
    tc.threads = threads;
    tc.train_set = s->train;
    tc.test_set = s->test;
    tc.val_fraction = 0.1;
    tc.split_seed = 42;
    tc.crop_pad = 2;
    tc.hflip = 1;
    tc.erase_prob = 0;
    tc.epochs = c->epochs;
    tc.batch = c->train_batch;
    tc.subset = c->train_subset;
    tc.lr = c->lr;
    if (c->epochs < 2)
        tc.warmup_epochs = 0; /* the schedule's warm-up must end before the last epoch */
    tc.drop_path = false;
    tc.seed = c->seed;
    tc.out_dir = dir;
    char ck[PATH_MAX + 32];
    snprintf(ck, sizeof ck, "%s/checkpoint.safetensors", dir);
    tc.resume = gn__fs_exists(ck);
    gn_arch *teacher = NULL;
    if (c->teacher_weights) {
        gn_st_file *f;
        if (gn_st_open(c->teacher_weights, &f, err))
            return -1;
        const char *meta = gn_st_meta(f, "arch");
        int rc = meta ? gn_arch_parse(meta, c->teacher_weights, &teacher, err)
                      : gn_error_set(err, "%s: no 'arch' metadata: not a gpunas weights file", c->teacher_weights);
        gn_st_close(f);
        if (rc)
            return -1;
        tc.teacher_arch = teacher;
        tc.teacher_weights = c->teacher_weights;
    }
    char label[64];
    snprintf(label, sizeof label, "trial %lld (tier %d)", (long long)cd->t.id, cd->tier);
    train_ui u = {s, label};
    gn_train_callbacks cb = {.user = &u, .progress = on_progress, .epoch_end = on_epoch};
    gn_train_result res;
    say(s, "%s: training %d epochs%s in %s", label, c->epochs, tc.resume ? " (continuing its checkpoint)" : "", dir);
    int rc = gn_train_run(&tc, &cb, &res, err);
    char *opts = rc ? NULL : gn_train_options_json(&tc, err);
    gn_arch_free(teacher);
    if (rc || !opts)
        return -1;
    json_error_t je;
    json_t *oj = json_loads(opts, 0, &je);
    free(opts);
    /* wall time of every epoch, also those before a resume (metrics.jsonl) */
    double seconds = 0;
    char mpath[PATH_MAX + 32];
    snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", dir);
    FILE *mf = fopen(mpath, "r");
    char line[8192];
    while (mf && fgets(line, sizeof line, mf)) {
        json_t *lj = json_loads(line, 0, &je);
        json_t *ts = lj ? json_object_get(lj, "time_s") : NULL;
        if (ts && json_is_number(ts))
            seconds += json_number_value(ts);
        json_decref(lj);
    }
    if (mf)
        fclose(mf);
    if (!(seconds > 0))
        seconds = res.total_time_s;
    int n_val = (int)lround(s->train->n * tc.val_fraction);
    int n_train = c->train_subset > 0 && c->train_subset < s->train->n - n_val ? c->train_subset : s->train->n - n_val;
    *result = json_pack("{s:f, s:f, s:f, s:i, s:i, s:i, s:f, s:o}", "test_top1", res.test_top1, "test_top5",
                        res.test_top5, "val_top1", res.val_top1, "val_images", n_val, "train_images",
                        n_train, "test_images", s->test->n, "seconds", seconds, "options",
                        oj ? oj : json_null());
    char *text = *result ? json_dumps(*result, JSON_INDENT(2)) : NULL;
    rc = text ? gn__fs_write_text_atomic(rpath, text, err) : gn_error_set(err, "%s: out of memory", rpath);
    free(text);
    return rc;
}

static int train_all_ordered(build_state *s, candidate **todo, int n, int jobs, gn_error *err);

/* Train every candidate that has no result yet, before anything is timed (a timing
 * beside a training would measure the training).  With jobs > 1 each run is a
 * forked worker process; with the default threads (0: the cores other processes
 * leave free, re-checked every 2 s) two side by side on 2 cores run at 1 thread each,
 * and the last one left takes both cores.  Measured on the 2-vCPU VM (bench/RESULTS.md,
 * "Model hub"): side by side each ran at about half the speed of a run alone on both
 * cores (tier-0 model: 39-41 s per epoch beside another training, 21-24 s alone), so
 * there is no throughput gain here; it pays where one training cannot fill the
 * cores.  A worker dies with its parent (PR_SET_PDEATHSIG), so a killed build never
 * leaves a trainer writing into HUB/.work. */
static int train_one_here(build_state *s, const candidate *cd, int threads, gn_error *err)
{
    char dir[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s/trial-%lld", s->work, (long long)cd->t.id);
    gn_arch *arch = NULL;
    json_t *result = NULL;
    int rc = gn__fs_mkdirs(dir, err) || gn_arch_parse(cd->t.config, s->store_path, &arch, err) ||
             train_candidate(s, cd, arch, dir, threads, &result, err);
    gn_arch_free(arch);
    json_decref(result);
    return rc ? -1 : 0;
}

static int by_macs_desc(const void *a, const void *b)
{
    const candidate *x = *(candidate *const *)a, *y = *(candidate *const *)b;
    if (x->t.macs != y->t.macs)
        return x->t.macs > y->t.macs ? -1 : 1;
    return x->t.id < y->t.id ? -1 : 1;
}

static int train_all(build_state *s, candidate **order, int n, int jobs, gn_error *err)
{
    if (n == 0)
        return 0;
    /* longest first (MACs stand for the training time): with two side by side the
     * slowest run does not start last and run alone */
    candidate **todo = malloc(sizeof *todo * (size_t)n);
    if (!todo)
        return gn_error_set(err, "hub build: out of memory");
    memcpy(todo, order, sizeof *todo * (size_t)n);
    qsort(todo, (size_t)n, sizeof *todo, by_macs_desc);
    int rc = train_all_ordered(s, todo, n, jobs, err);
    free(todo);
    return rc;
}

static int train_all_ordered(build_state *s, candidate **todo, int n, int jobs, gn_error *err)
{
    if (load_data(s, err))
        return -1;
    if (jobs <= 1 || n == 1) {
        for (int i = 0; i < n; i++)
            if (train_one_here(s, todo[i], s->c->train_threads, err))
                return -1;
        return 0;
    }
    say(s, "training %d model(s), %d at a time (threads: %s)", n, jobs,
        s->c->train_threads > 0 ? "as given" : "the free cores, re-checked every 2 s");
    pid_t *pids = calloc((size_t)n, sizeof *pids);
    if (!pids)
        return gn_error_set(err, "hub build: out of memory");
    pid_t parent = getpid();
    int next = 0, running = 0, failed = -1;
    while (next < n || running > 0) {
        while (failed < 0 && next < n && running < jobs &&
               !(s->cb && s->cb->should_stop && s->cb->should_stop(s->cb->user))) {
            fflush(NULL);
            pid_t pid = fork();
            if (pid < 0) {
                gn_error_set(err, "hub build: fork failed: %s", strerror(errno));
                failed = next;
                break;
            }
            if (pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                    _exit(1);
                gn_error e = {{0}};
                int rc = train_one_here(s, todo[next], s->c->train_threads, &e);
                if (rc) {
                    char p[PATH_MAX + 96];
                    snprintf(p, sizeof p, "%s/trial-%lld/error.txt", s->work, (long long)todo[next]->t.id);
                    gn_error e2;
                    (void)gn__fs_write_text_atomic(p, e.msg, &e2);
                }
                fflush(NULL);
                _exit(rc ? 1 : 0);
            }
            pids[next++] = pid;
            running++;
        }
        if (running == 0)
            break;
        int st;
        pid_t done = wait(&st);
        if (done < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        running--;
        for (int i = 0; i < next; i++)
            if (pids[i] == done && !(WIFEXITED(st) && WEXITSTATUS(st) == 0) && failed < 0) {
                failed = i;
                char p[PATH_MAX + 96], *msg = NULL;
                snprintf(p, sizeof p, "%s/trial-%lld/error.txt", s->work, (long long)todo[i]->t.id);
                gn_error e2;
                if (gn__fs_read_all(p, &msg, NULL, &e2) == 0) {
                    msg[strcspn(msg, "\n")] = 0;
                    gn_error_set(err, "%s", msg);
                    remove(p);
                } else {
                    gn_error_set(err, "trial %lld: the training worker %s %d", (long long)todo[i]->t.id,
                                 WIFSIGNALED(st) ? "was killed by signal" : "exited with",
                                 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
                }
                free(msg);
            }
    }
    free(pids);
    if (failed < 0 && next < n)
        return gn_error_set(err, "stopped: %d of %d trainings started; run the same command again to continue", next,
                            n);
    return failed >= 0 ? -1 : 0;
}

/* ------------------------------------------------------------------ latency */
static int measure(build_state *s, gn_net *net, json_t **lat, json_t **batches, gn_error *err)
{
    gn_lat_opts o;
    gn_lat_opts_default(&o);
    o.runs = 30;
    o.min_ms = s->c->lat_min_ms;
    o.warmup_ms = 200;
    o.warmup_runs = 3;
    gn_lat_limits lim;
    gn_lat_limits_default(&lim);
    lim.min_runs = 3;
    lim.max_drift = INFINITY; /* the reference corrects drifts */
    gn_lat_result keep;
    memset(&keep, 0, sizeof keep);
    gn_lat_placement keep_pl = {0};
    int attempts = 0, stable = 0;
    for (int a = 0; a < 3 && !stable; a++) {
        gn_lat_result r;
        gn_lat_placement pl;
        if (gn_lat_measure_on(net, s->ref_net, 1, &o, s->lat_threads, 1, &r, &pl, err)) {
            gn_lat_result_free(&keep);
            return -1;
        }
        attempts++;
        stable = gn_lat_check_stable(&r.compute, &lim, NULL, 0) == 0;
        if (a == 0 || stable || r.compute.rcv < keep.compute.rcv) {
            gn_lat_result_free(&keep);
            keep = r;
            keep_pl = pl;
        } else {
            gn_lat_result_free(&r);
        }
    }
    double scale = s->ref_base_ms / keep.ref.compute.median;
    double ms = keep.ref.ratio * s->ref_base_ms;
    char when[32], runtime[96];
    utc_now(when, sizeof when);
    snprintf(runtime, sizeof runtime, "gpunas %s, oneDNN %s (dnnl backend)", s->dev.gpunas, s->dev.onednn);
    char device[256];
    snprintf(device, sizeof device, "%s %s, %d thread%s%s", s->dev.kind, s->dev.cpu_model, keep_pl.threads,
             keep_pl.threads == 1 ? "" : "s", keep_pl.pinned ? " pinned" : "");
    *lat = json_pack("{s:i, s:f, s:f, s:f, s:i, s:f, s:s, s:f, s:f, s:f, s:f, s:f, s:f}", "batch", 1, "median_ms", ms,
                     "p10_ms", keep.compute.p10 * scale, "p90_ms", keep.compute.p90 * scale, "runs", keep.compute.n,
                     "robust_cv", keep.compute.rcv, "method", "ratio to the reference x the search's baseline",
                     "ratio", keep.ref.ratio, "ratio_lo", keep.ref.ratio_lo, "ratio_hi", keep.ref.ratio_hi,
                     "reference_ms", keep.ref.compute.median, "reference_baseline_ms", s->ref_base_ms,
                     "raw_median_ms", keep.compute.median);
    json_object_update_new(*lat, json_pack("{s:i, s:i, s:s, s:s, s:s, s:s, s:i, s:i, s:b, s:s}", "threads",
                                           keep_pl.threads, "pinned", keep_pl.pinned, "device", device, "cpu_model",
                                           s->dev.cpu_model, "runtime", runtime, "precision", "fp32", "cores",
                                           s->dev.cores, "attempts", attempts, "stable", stable, "measured_at", when));
    gn_lat_result_free(&keep);

    *batches = json_array();
    for (int i = 1; i < s->c->n_batches; i++) {
        gn_lat_result r;
        gn_lat_opts ob = o;
        ob.min_ms = s->c->lat_min_ms / 2;
        if (gn_lat_measure_on(net, NULL, s->c->batches[i], &ob, s->lat_threads, 1, &r, NULL, err))
            return -1;
        json_array_append_new(*batches, json_pack("{s:i, s:f, s:f, s:f}", "batch", s->c->batches[i], "median_ms",
                                                  r.compute.median, "p10_ms", r.compute.p10, "p90_ms", r.compute.p90));
        gn_lat_result_free(&r);
    }
    return 0;
}

/* ------------------------------------------------------------------ publishing */
static int load_trained(build_state *s, const char *weights, gn_arch **arch, gn_net **net, gn_error *err)
{
    gn_st_file *f;
    if (gn_st_open(weights, &f, err))
        return -1;
    const char *meta = gn_st_meta(f, "arch");
    int rc = meta ? gn_arch_parse(meta, weights, arch, err)
                  : gn_error_set(err, "%s: no 'arch' metadata: not a gpunas weights file", weights);
    gn_st_close(f);
    if (rc || gn_net_create(*arch, s->be, net, err) || gn_net_load(*net, weights, err) ||
        gn_net_prepare_inference(*net, err))
        return -1;
    return 0;
}

static int write_model_files(build_state *s, const char *stage, json_t *record, const gn_arch *arch, gn_net *net,
                             const char *weights, gn_error *err)
{
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/config.json", stage);
    if (gn_arch_save(arch, p, err))
        return -1;
    snprintf(p, sizeof p, "%s/model.safetensors", stage);
    if (gn__fs_copy(weights, p, err))
        return -1;
    snprintf(p, sizeof p, "%s/model.onnx", stage);
    gn_onnx_opts oo = {.batch = 1, .opset = ONNX_OPSET, .doc = json_string_value(json_object_get(record, "name"))};
    if (gn_onnx_export(net, p, &oo, err))
        return -1;
    char *text = json_dumps(record, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    snprintf(p, sizeof p, "%s/model.json", stage);
    int rc = text ? gn__fs_write_text_atomic(p, text, err) : gn_error_set(err, "%s: out of memory", p);
    free(text);
    if (rc)
        return -1;
    char *card = gn__hub_card_markdown(record, arch, err);
    snprintf(p, sizeof p, "%s/README.md", stage);
    rc = card ? gn__fs_write_text_atomic(p, card, err) : -1;
    free(card);
    return rc ? -1 : gn__fs_fsync_tree(stage, err);
}

static int publish(build_state *s, const candidate *cd, char *name_out, size_t name_cap, gn_error *err)
{
    char dir[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s/trial-%lld", s->work, (long long)cd->t.id);
    if (gn__fs_mkdirs(dir, err))
        return -1;
    gn_arch *arch = NULL, *trained_arch = NULL;
    gn_net *net = NULL;
    json_t *result = NULL, *lat = NULL, *batches = NULL, *record = NULL;
    int rc = -1;
    char weights[PATH_MAX + 32];
    snprintf(weights, sizeof weights, "%s/weights.safetensors", dir);
    if (load_data(s, err) || gn_arch_parse(cd->t.config, s->store_path, &arch, err) ||
        train_candidate(s, cd, arch, dir, s->c->train_threads, &result, err) || load_trained(s, weights, &trained_arch, &net, err))
        goto out;
    double test1 = json_number_value(json_object_get(result, "test_top1"));
    say(s, "trial %lld (tier %d): test top-1 %.2f%%; timing at batch 1 on %d thread(s)", (long long)cd->t.id,
        cd->tier, 100 * test1, s->lat_threads);
    if (measure(s, net, &lat, &batches, err))
        goto out;
    double ms = json_number_value(json_object_get(lat, "median_ms"));
    char dtag[32], name[GN_HUB_NAME_MAX + 32], rank[16] = "";
    data_tag(s->dataset, dtag, sizeof dtag);
    if (cd->rank > 1)
        snprintf(rank, sizeof rank, "r%d", cd->rank);
    snprintf(name, GN_HUB_NAME_MAX - 24, "%s-t%d%s-%.3gms-%s-%dt", dtag, cd->tier, rank, ms, s->dev_tag, s->lat_threads);
    char final[PATH_MAX + GN_HUB_NAME_MAX + 40];
    snprintf(final, sizeof final, "%s/%s", s->hub, name);
    if (gn__fs_exists(final)) { /* another trial measured the same: keep names unique */
        size_t len = strlen(name);
        snprintf(name + len, GN_HUB_NAME_MAX - len, "-%lld", (long long)cd->t.id);
        snprintf(final, sizeof final, "%s/%s", s->hub, name);
    }
    char when[32], norm[128];
    utc_now(when, sizeof when);
    const gn_dataset *d = s->train;
    if (d)
        snprintf(norm, sizeof norm, "mean %.4f, std %.4f (channel 0)", d->mean[0], d->std[0]);
    else
        snprintf(norm, sizeof norm, "as `gpunas eval`");
    const gn_layer *L1 = &trained_arch->layers[1];
    const gn_layer *LT = &trained_arch->layers[trained_arch->n_layers - 1];
    double tmin = cd->tier > 0 ? s->sum.tier_ms[cd->tier - 1] : 0;
    json_t *opts = json_object_get(result, "options");
    const char *teacher = s->c->teacher_weights;
    record = json_pack("{s:s, s:s, s:i, s:s, s:s}", "name", name, "format", "gpunas-hub-model", "version", 1,
                       "gpunas_version", s->dev.gpunas, "created_at", when);
    json_object_set_new(record, "files", json_pack("{s:s, s:s, s:s, s:s}", "config", "config.json", "weights",
                                                   "model.safetensors", "onnx", "model.onnx", "card", "README.md"));
    json_t *mean = json_array(), *std = json_array();
    for (int ch = 0; d && ch < L1->in_c && ch < GN_DATA_MAX_CHANNELS; ch++) {
        json_array_append_new(mean, json_real(d->mean[ch]));
        json_array_append_new(std, json_real(d->std[ch]));
    }
    json_object_set_new(record, "task", json_pack("{s:s, s:i, s:i, s:i, s:s, s:o, s:o}", "dataset", s->dataset,
                                                  "classes", LT->num_classes, "in_channels", L1->in_c, "resolution",
                                                  trained_arch->resolution, "normalisation", norm, "mean", mean,
                                                  "std", std));
    json_object_set_new(record, "arch", json_pack("{s:I, s:I, s:i}", "params", (json_int_t)trained_arch->params,
                                                  "macs", (json_int_t)trained_arch->macs, "layers",
                                                  trained_arch->n_layers - 1));
    json_object_set_new(record, "accuracy",
                        json_pack("{s:O, s:O, s:O, s:O, s:O, s:i, s:f}", "test_top1", json_object_get(result, "test_top1"),
                                  "test_top5", json_object_get(result, "test_top5"), "test_images",
                                  json_object_get(result, "test_images"), "val_top1",
                                  json_object_get(result, "val_top1"), "val_images",
                                  json_object_get(result, "val_images"), "val_split_seed", 42, "proxy_val_top1",
                                  cd->t.val_acc));
    if (cd->t.level > 0) /* the proxy accuracy is that of this successive-halving level */
        json_object_set_new(json_object_get(record, "accuracy"), "proxy_level", json_integer(cd->t.level));
    json_object_set(record, "latency", lat);
    json_object_set(record, "latency_batches", batches);
    char summary[512];
    snprintf(summary, sizeof summary, "%d epochs, batch %d, lr %g, seed %llu; %s", s->c->epochs, s->c->train_batch,
             s->c->lr, (unsigned long long)s->c->seed, RECIPE);
    json_object_set_new(record, "training",
                        json_pack("{s:i, s:O, s:O, s:s, s:O, s:s?}", "epochs", s->c->epochs, "train_images",
                                  json_object_get(result, "train_images"), "seconds", json_object_get(result, "seconds"),
                                  "summary", summary, "options", opts ? opts : json_null(), "teacher", teacher));
    json_object_set_new(record, "export", json_pack("{s:i, s:s}", "onnx_opset", ONNX_OPSET, "bn", "folded"));
    json_object_set_new(record, "search",
                        json_pack("{s:s, s:I, s:i, s:f, s:f, s:i, s:s, s:s}", "store", s->store_real, "trial_id",
                                  (json_int_t)cd->t.id, "tier", cd->tier, "tier_min_ms", tmin, "tier_max_ms",
                                  s->sum.tier_ms[cd->tier], "rank", cd->rank, "optimizer",
                                  cd->t.optimizer ? cd->t.optimizer : "?", "encoding",
                                  cd->t.encoding ? cd->t.encoding : "?"));
    if (!record || !json_object_get(record, "search") || !json_object_get(record, "accuracy")) {
        gn_error_set(err, "hub build: out of memory");
        goto out;
    }
    /* named after the trial, not the model: the name holds the measured latency, so
     * a publish that failed and is retried would leave its first staging folder */
    char stage[PATH_MAX + 48];
    snprintf(stage, sizeof stage, "%s/trial-%lld.staging", s->work, (long long)cd->t.id);
    if (gn__fs_remove_tree(stage, err) || gn__fs_mkdirs(stage, err) ||
        write_model_files(s, stage, record, trained_arch, net, weights, err))
        goto out;
    if (rename(stage, final) != 0) {
        gn_error_set(err, "%s: cannot publish %s: %s", final, stage, strerror(errno));
        goto out;
    }
    if (gn__fs_fsync(s->hub, err))
        goto out;
    snprintf(name_out, name_cap, "%s", name);
    say(s, "published %s: test top-1 %.2f%%, %.4f ms (p10 %.4f, p90 %.4f)", name, 100 * test1, ms,
        json_number_value(json_object_get(lat, "p10_ms")), json_number_value(json_object_get(lat, "p90_ms")));
    rc = gn__fs_remove_tree(dir, err);
out:
    json_decref(record);
    json_decref(result);
    json_decref(lat);
    json_decref(batches);
    gn_net_free(net);
    gn_arch_free(arch);
    gn_arch_free(trained_arch);
    return rc;
}

/* ------------------------------------------------------------------ index + picture */
static int write_picture(build_state *s, const gn_hub *h, gn_error *err)
{
    gn_trial_filter f;
    gn_trial_filter_init(&f);
    f.status = GN_TRIAL_DONE;
    gn_trial_list l = {0};
    if (gn_store_list_trials(s->store, &f, &l, err))
        return -1;
    gn_plot_point *pts = calloc((size_t)l.n + h->n + 1, sizeof *pts);
    const char **labels = calloc((size_t)l.n + h->n + 1, sizeof *labels);
    int n = 0;
    for (int64_t i = 0; pts && labels && i < l.n; i++) {
        const gn_trial *t = &l.items[i];
        if (!(t->latency_ms > 0) || !isfinite(t->val_acc) || (t->error && !strncmp(t->error, "same network", 12)))
            continue;
        int on_front = 0;
        for (int k = 0; k < s->sum.n_front; k++)
            on_front |= s->sum.front[k].id == t->id;
        pts[n++] = (gn_plot_point){t->latency_ms, t->val_acc, gn_nas_tier_of(s->sum.tier_ms, s->sum.n_tiers, t->latency_ms),
                                   on_front ? GN_PLOT_FRONT : 0};
    }
    for (int i = 0; pts && labels && i < h->n; i++) {
        const gn_hub_model *m = &h->models[i];
        labels[n] = m->name;
        pts[n++] = (gn_plot_point){m->latency_ms, m->test_top1, m->tier, GN_PLOT_HUB};
    }
    int rc = 0;
    if (!pts || !labels) {
        rc = gn_error_set(err, "hub picture: out of memory");
    } else if (n > 0) {
        char path[PATH_MAX + 16];
        snprintf(path, sizeof path, "%s/pareto.png", s->hub);
        gn_plot_opts o = {.title = "gpunas hub: search candidates (proxy val. accuracy) and hub models (test accuracy)",
                          .x_label = "batch-1 latency (ms)",
                          .y_label = "accuracy (%)",
                          .tier_edges = s->sum.tier_ms,
                          .n_tiers = s->sum.n_tiers,
                          .labels = labels};
        rc = gn_plot_pareto_png(path, pts, n, &o, err);
    }
    free(pts);
    free(labels);
    gn_trial_list_free(&l);
    return rc;
}

static int rebuild_index(build_state *s, gn_error *err)
{
    gn_hub h;
    if (gn_hub_scan(s->hub, &h, err))
        return -1;
    int rc = gn_hub_write_index(&h, err);
    if (rc == 0) {
        gn_error perr = {{0}};
        if (write_picture(s, &h, &perr))
            say(s, "warning: no pareto.png: %s", perr.msg);
    }
    gn_hub_free(&h);
    return rc;
}

int gn_hub_build(const gn_hub_build_config *c, const gn_hub_callbacks *cb, gn_error *err)
{
    build_state s;
    memset(&s, 0, sizeof s);
    s.c = c;
    s.cb = cb;
    candidate *cs = NULL, **todo = NULL;
    int n = 0, n_todo = 0, made = 0, rc = -1;
    if (setup(&s, err) || pick_candidates(&s, &cs, &n, err))
        goto out;
    if (n == 0) {
        gn_error_set(err, "%s: the search has no trained candidate in any tier", s.store_path);
        goto out;
    }
    todo = calloc((size_t)n, sizeof *todo);
    if (!todo) {
        gn_error_set(err, "hub build: out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) {
        char name[GN_HUB_NAME_MAX];
        int p = published(&s, cs[i].t.id, name, sizeof name, err);
        if (p < 0)
            goto out;
        if (p)
            say(&s, "trial %lld (tier %d): already in the hub as %s", (long long)cs[i].t.id, cs[i].tier, name);
        else
            todo[n_todo++] = &cs[i];
    }
    say(&s, "%d model(s) to build, %d already in the hub", n_todo, n - n_todo);
    int jobs = c->jobs > 0 ? c->jobs : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (jobs > n_todo)
        jobs = n_todo;
    if (train_all(&s, todo, n_todo, jobs, err))
        goto out;
    if (n_todo > 0 && setup_latency(&s, err))
        goto out;
    for (int i = 0; i < n_todo; i++) {
        if (cb && cb->should_stop && cb->should_stop(cb->user)) {
            gn_error_set(err, "stopped: %d of %d models published; run the same command again to continue", made,
                         n_todo);
            goto out;
        }
        char name[GN_HUB_NAME_MAX];
        if (publish(&s, todo[i], name, sizeof name, err) || rebuild_index(&s, err))
            goto out;
        made++;
    }
    if (rebuild_index(&s, err))
        goto out;
    rc = made;
out:
    for (int i = 0; i < n; i++)
        gn_trial_clear(&cs[i].t);
    free(cs);
    free(todo);
    teardown(&s);
    return rc;
}
