/*
 * cmd_unas.c — `gpunas unas --target-ms T[,T...] --profile DEVICE.json`: UNAS (Vahdat
 * et al., CVPR 2020) over a search space's supernet, one run per latency target
 * (gpunas/unas.h gn_unas_run), each deriving the most likely architecture, measuring
 * it, and — with --store — storing it as a trial of a search (gn_nas_submit), where
 * `gpunas trials`, the summary and `gpunas hub build` see it beside the search's own.
 *
 * Per target T a directory OUT/t<T>ms holds the run: history.jsonl (one line per
 * --log-every steps: losses, H(q), expected latency, the argmax architecture),
 * checkpoint.safetensors, then arch.json (the derived network, GPUNet JSON) and
 * result.json (encoding, predicted and measured latency, the trial when stored, the
 * run's seconds and threads).  A target whose result.json exists is done and skipped;
 * a target with a checkpoint continues with --resume (refused without it, and refused
 * with other settings); SIGINT / SIGTERM checkpoint and exit 130/143 — nothing is
 * lost but the steps since the last checkpoint.
 *
 * Latency: the architecture loss is c relu(L - T) with UNAS's warm-up ramp, L the
 * device profile's expected latency (differentiable; gpunas/supernet_latency.h).  The
 * default coefficient is c = 1/T per ms (UNAS: 0.1 at its 10 ms target): being 100%
 * over the target costs one nat.  With --measure, the reward of a sampled path
 * (REINFORCE and the unified estimator's discrete term) is its measured batch-1
 * latency under the profile's conditions (threads, pinning), each network measured
 * once (cache); the control variate stays the profile's.  The derived network is
 * measured under the same conditions at the end (--lat-duration seconds), so its
 * figure is comparable with the target; with --store, gn_nas_submit measures it
 * again under the search's own conditions and that figure decides its tier.
 *
 * The supernet computes stride-2 fused IRBs with "same" padding where the released
 * builder's padding 0 would make kernels 3 and 5 differ in size (gpunas/supernet.h);
 * the derived network is the space's member (released padding), as a search would
 * train it.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "gpunas/backend.h"
#include "gpunas/data.h"
#include "gpunas/latency.h"
#include "gpunas/latprofile.h"
#include "gpunas/nas.h"
#include "gpunas/network.h"
#include "gpunas/space.h"
#include "gpunas/store.h"
#include "gpunas/supernet.h"
#include "gpunas/supernet_latency.h"
#include "gpunas/unas.h"
#include "util/clock.h"

static const char *CMD = "unas";
#define MAX_TARGETS 16

static void usage(FILE *f)
{
    fprintf(f,
            "usage: gpunas unas --target-ms T[,T...] --profile DEVICE.json [options]\n"
            "UNAS over the space's supernet, one run per latency target: derive the most likely\n"
            "architecture, measure it, and (--store) store it as a trial of a search.\n"
            "  --target-ms T,...     latency targets in ms (batch 1, the profile's device)\n"
            "  --profile F           device profile (gpunas profile --space ...) for the expected latency\n"
            "  --space NAME|FILE     search space: fmnist (default), gpunet, or a space JSON file\n"
            "  --dataset KIND        fashion-mnist (default), mnist, cifar10, folder\n"
            "  --data DIR            data location (default: the kind's Debian location)\n"
            "  --estimator E         unified (default), gumbel, reinforce\n"
            "  --epochs N            search epochs (default 2)\n"
            "  --init-epochs N       weights-only epochs first, uniform q (default 1)\n"
            "  --batch B             training and validation batch (default 32)\n"
            "  --subset N            training images used per epoch (default: the whole 90%% split)\n"
            "  --val-subset N        validation images (default: the whole 10%% split)\n"
            "  --lat-coeff C         latency loss per ms over the target (default 1/T)\n"
            "  --lat-warmup F        ramp the coefficient over this fraction of the search steps (0.25)\n"
            "  --gen-gap L           UNAS's generalization-gap term, lambda (default 0: off; UNAS 0.5)\n"
            "  --tau X               Gumbel-softmax temperature (0.4)\n"
            "  --eps X               softening of q (0)\n"
            "  --arch-lr X           Adam on the logits, cosine to 0.3x (1e-3)\n"
            "  --weight-lr X         AdamW on the weights, cosine to 1/3 (3e-4)\n"
            "  --measure             reward a sampled path with its measured latency (else the profile's)\n"
            "  --separate-weights    every candidate has its own weights (default: the candidates of a\n"
            "                        layer position share one master's conv weights, which trained\n"
            "                        far better in bench/RESULTS.md)\n"
            "  --lat-duration S      seconds of the final measurement of the derived network (3)\n"
            "  --store URL           store each derived network as a trial of the search in URL\n"
            "  --out DIR             output directory (default gpunas-unas)\n"
            "  --resume              continue targets that have a checkpoint\n"
            "  --seed S              seed (default 1)\n"
            "  --threads N           training threads (default: all)\n"
            "  --log-every N         steps between history lines (50)\n"
            "  --checkpoint-every N  steps between checkpoints (default: 200)\n"
            "  --max-steps N         stop (checkpointed, exit 3) after N steps of this call: a partial run\n"
            "  --quiet               no progress lines\n");
}

typedef struct {
    double targets[MAX_TARGETS];
    int n_targets;
    const char *profile, *space, *dataset, *data_dir, *store, *out, *estimator;
    int epochs, init_epochs, batch, subset, val_subset, threads, log_every, ckpt_every, quiet, resume, measure, shared;
    int64_t max_steps;
    double lat_coeff, lat_warmup, gen_gap, tau, eps, arch_lr, weight_lr, lat_duration;
    uint64_t seed;
} unas_opts;

static int parse_targets(const char *v, unas_opts *o)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", v);
    o->n_targets = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (o->n_targets == MAX_TARGETS) {
            cli_error(CMD, "--target-ms: more than %d targets", MAX_TARGETS);
            return -1;
        }
        if (cli_parse_double(CMD, "--target-ms", t, 1e-6, 1e6, &o->targets[o->n_targets++]))
            return -1;
    }
    if (!o->n_targets) {
        cli_error(CMD, "--target-ms: no target in '%s'", v);
        return -1;
    }
    return 0;
}

static int parse(int argc, char **argv, unas_opts *o)
{
    memset(o, 0, sizeof *o);
    o->space = "fmnist";
    o->dataset = "fashion-mnist";
    o->out = "gpunas-unas";
    o->estimator = "unified";
    o->epochs = 2;
    o->init_epochs = 1;
    o->batch = 32;
    o->log_every = 50;
    o->ckpt_every = 200;
    o->lat_coeff = NAN;
    o->lat_warmup = 0.25;
    o->tau = 0.4;
    o->arch_lr = 1e-3;
    o->weight_lr = 3e-4;
    o->lat_duration = 3;
    o->seed = 1;
    o->shared = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int r = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 1;
        }
        if (!strcmp(a, "--separate-weights") || !strcmp(a, "--shared-weights")) {
            o->shared = a[3] == 'h';
            continue;
        }
        if (!strcmp(a, "--quiet") || !strcmp(a, "--resume") || !strcmp(a, "--measure")) {
            *(a[2] == 'q' ? &o->quiet : a[2] == 'r' ? &o->resume : &o->measure) = 1;
            continue;
        }
        if (!v) {
            cli_error(CMD, "option %s: missing value (see gpunas unas --help)", a);
            return -1;
        }
        double d;
        if (!strcmp(a, "--target-ms")) r = parse_targets(v, o);
        else if (!strcmp(a, "--profile")) o->profile = v;
        else if (!strcmp(a, "--space")) o->space = v;
        else if (!strcmp(a, "--dataset")) o->dataset = v;
        else if (!strcmp(a, "--data")) o->data_dir = v;
        else if (!strcmp(a, "--store")) o->store = v;
        else if (!strcmp(a, "--out")) o->out = v;
        else if (!strcmp(a, "--estimator")) o->estimator = v;
        else if (!strcmp(a, "--epochs")) r = cli_parse_int(CMD, a, v, 1, 100000, &o->epochs);
        else if (!strcmp(a, "--init-epochs")) r = cli_parse_int(CMD, a, v, 0, 100000, &o->init_epochs);
        else if (!strcmp(a, "--batch")) r = cli_parse_int(CMD, a, v, 1, 65536, &o->batch);
        else if (!strcmp(a, "--subset")) r = cli_parse_int(CMD, a, v, 1, 1 << 30, &o->subset);
        else if (!strcmp(a, "--val-subset")) r = cli_parse_int(CMD, a, v, 1, 1 << 30, &o->val_subset);
        else if (!strcmp(a, "--threads")) r = cli_parse_int(CMD, a, v, 0, 4096, &o->threads);
        else if (!strcmp(a, "--log-every")) r = cli_parse_int(CMD, a, v, 0, 1 << 30, &o->log_every);
        else if (!strcmp(a, "--checkpoint-every")) r = cli_parse_int(CMD, a, v, 0, 1 << 30, &o->ckpt_every);
        else if (!strcmp(a, "--max-steps")) {
            r = cli_parse_double(CMD, a, v, 1, 1e15, &d);
            o->max_steps = (int64_t)d;
        } else if (!strcmp(a, "--lat-coeff")) r = cli_parse_double(CMD, a, v, 0, 1e9, &o->lat_coeff);
        else if (!strcmp(a, "--lat-warmup")) r = cli_parse_double(CMD, a, v, 0, 1, &o->lat_warmup);
        else if (!strcmp(a, "--gen-gap")) r = cli_parse_double(CMD, a, v, 0, 1e3, &o->gen_gap);
        else if (!strcmp(a, "--tau")) r = cli_parse_double(CMD, a, v, 1e-6, 1e6, &o->tau);
        else if (!strcmp(a, "--eps")) r = cli_parse_double(CMD, a, v, 0, 1e3, &o->eps);
        else if (!strcmp(a, "--arch-lr")) r = cli_parse_double(CMD, a, v, 0, 1e3, &o->arch_lr);
        else if (!strcmp(a, "--weight-lr")) r = cli_parse_double(CMD, a, v, 0, 1e3, &o->weight_lr);
        else if (!strcmp(a, "--lat-duration")) r = cli_parse_double(CMD, a, v, 0.1, 3600, &o->lat_duration);
        else if (!strcmp(a, "--seed")) r = cli_parse_u64(CMD, a, v, &o->seed);
        else {
            cli_error(CMD, "unknown option '%s' (see gpunas unas --help)", a);
            return -1;
        }
        if (r)
            return -1;
        i++;
    }
    gn_unas_estimator e;
    if (gn_unas_estimator_parse(o->estimator, &e)) {
        cli_error(CMD, "--estimator: '%s' is not reinforce, gumbel or unified", o->estimator);
        return -1;
    }
    if (!o->n_targets || !o->profile) {
        cli_error(CMD, "--target-ms and --profile are required (see gpunas unas --help)");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ measuring */

/* The profile's measuring conditions: threads, pinning, the whole-network protocol. */
typedef struct {
    const gn_lat_profile *prof;
    const gn_space *space;
    gn_backend *be;         /* its own backend: training threads stay as they are */
    const gn_supernet *sn;
    double duration_s;      /* final measurements */
    /* the --measure cache: canonical encoding text -> ms */
    char **keys;
    double *ms;
    int n, cap;
    int measured;
} measurer;

static int measure_arch(measurer *m, const gn_arch *a, double min_s, double *ms, gn_error *err)
{
    gn_net *net = NULL;
    gn_lat_opts o = m->prof->net_opts;
    o.min_ms = 1000 * min_s;
    gn_lat_result r;
    memset(&r, 0, sizeof r);
    int rc = gn_net_create(a, m->be, &net, err) || gn_net_init(net, 1, err) ||
             gn_lat_measure_on(net, NULL, m->prof->batch, &o, m->prof->device.threads, m->prof->device.pinned, &r,
                               NULL, err);
    if (!rc)
        *ms = r.compute.median;
    gn_lat_result_free(&r);
    gn_net_free(net);
    return rc ? -1 : 0;
}

/* gn_unas_config.measure: the sampled path's member, measured once. */
static int measure_path(void *ctx, const int *d, double *ms, gn_error *err)
{
    measurer *m = ctx;
    int x[GN_ENC_MAX_DIMS], y[GN_ENC_MAX_DIMS];
    if (gn_supernet_derive(m->sn, d, x, err))
        return -1;
    gn_space_canonical(m->space, x, y);
    char *key = gn_space_encode_to_string(m->space, y);
    if (!key)
        return gn_error_set(err, "unas: out of memory");
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->keys[i], key)) {
            *ms = m->ms[i];
            free(key);
            return 0;
        }
    gn_arch *a = NULL;
    int rc = gn_supernet_decode(m->sn, d, &a, err) || measure_arch(m, a, 0, ms, err);
    gn_arch_free(a);
    if (rc) {
        free(key);
        return -1;
    }
    if (m->n == m->cap) {
        int cap = m->cap ? 2 * m->cap : 256;
        char **k = realloc(m->keys, cap * sizeof *k);
        if (k)
            m->keys = k;
        double *v = k ? realloc(m->ms, cap * sizeof *v) : NULL;
        if (v)
            m->ms = v;
        if (!k || !v) {
            free(key);
            return 0; /* not cached: measured again next time */
        }
        m->cap = cap;
    }
    m->keys[m->n] = key;
    m->ms[m->n++] = *ms;
    m->measured++;
    return 0;
}

static void measurer_free(measurer *m)
{
    for (int i = 0; i < m->n; i++)
        free(m->keys[i]);
    free(m->keys);
    free(m->ms);
    gn_backend_destroy(m->be);
}

/* ------------------------------------------------------------------ one target */

static void on_progress(void *user, const gn_unas_progress *p)
{
    const unas_opts *o = user;
    if (o->quiet)
        return;
    printf("  epoch %d/%d%s step %lld/%lld  train %.4f  val %.4f  H(q) %.3f  E[lat] %.4f ms  argmax %.4f ms  "
           "c %.3g  %.0f s\n",
           p->epoch, p->epochs, p->init ? " (weights only)" : "", (long long)p->step, (long long)p->steps,
           p->train_loss, p->val_loss, p->entropy, p->lat_expected, p->lat_argmax, p->lat_coeff, p->seconds);
    fflush(stdout);
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

typedef struct {
    const unas_opts *o;
    const gn_space *space;
    const gn_lat_profile *prof;
    const gn_dataset_view *train, *val;
    gn_augment aug;
    gn_backend *be;
    gn_store *store; /* NULL: none */
    gn_nas_worker_config w;
} unas_ctx;

static int write_result(const char *path, json_t *res, gn_error *err)
{
    char tmp[4400];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (json_dump_file(res, tmp, JSON_INDENT(2) | JSON_SORT_KEYS) || rename(tmp, path))
        return gn_error_set(err, "%s: cannot write (%s)", path, strerror(errno));
    return 0;
}

static void on_nas_event(void *user, const gn_nas_event *e)
{
    if (!*(const int *)user)
        printf("  %s\n", e->message);
    fflush(stdout);
}

/* Derive, measure, store: result.json.  *sec: the run's seconds. */
static int finish_target(unas_ctx *X, gn_supernet *sn, const gn_supernet_lat *sl, gn_unas *u, double T,
                         const char *dir, double sec, measurer *m, gn_error *err)
{
    const unas_opts *o = X->o;
    int x[GN_ENC_MAX_DIMS], y[GN_ENC_MAX_DIMS], d[GN_ONESHOT_MAX_M];
    gn_unas_argmax(u, d);
    if (gn_supernet_derive(sn, d, x, err))
        return -1;
    gn_space_canonical(X->space, x, y);
    char path[4200];
    gn_arch *a = NULL;
    char *enc = gn_space_encode_to_string(X->space, y), *cfg = gn_space_decode_json(X->space, y, err);
    int rc = -1;
    json_t *res = NULL;
    if (!enc || !cfg)
        goto out;
    snprintf(path, sizeof path, "%s/arch.json", dir);
    FILE *f = fopen(path, "w");
    if (!f || fputs(cfg, f) < 0 || fclose(f)) {
        gn_error_set(err, "%s: cannot write (%s)", path, strerror(errno));
        goto out;
    }
    double pred = NAN, meas = NAN;
    int missing = 0;
    if (gn_space_decode(X->space, y, &a, err) || gn_lat_predict(X->prof, a, &pred, &missing, err))
        goto out;
    if (measure_arch(m, a, o->lat_duration, &meas, err))
        goto out;
    /* what the search optimised: the profile's latency of the supernet's path (same
     * padding where the supernet needs it; the member above has the released padding) */
    double path_ms = NAN, *onehot = calloc((size_t)gn_supernet_n(sn), sizeof *onehot);
    if (!onehot) {
        gn_error_set(err, "unas: out of memory");
        goto out;
    }
    for (int k = 0; k < gn_supernet_num_cats(sn); k++)
        onehot[gn_supernet_get_cat(sn, k)->offset + d[k]] = 1;
    int lr = gn_supernet_lat_eval(sl, onehot, gn_supernet_n(sn), &path_ms, NULL, err);
    free(onehot);
    if (lr)
        goto out;
    const gn_oneshot_dist *q = gn_unas_dist(u);
    res = json_pack("{s:f, s:s, s:s, s:s, s:f, s:f, s:f, s:b, s:f, s:I, s:I, s:I, s:f, s:i, s:s}", "target_ms", T,
                    "estimator", o->estimator, "encoding", enc, "space", gn_space_name(X->space), "predicted_ms", pred,
                    "supernet_path_ms", path_ms,
                    "measured_ms", meas, "within_target", meas <= T, "entropy", gn_oneshot_entropy(q, NULL),
                    "steps", (json_int_t)gn_unas_steps(u), "params", (json_int_t)a->params, "macs",
                    (json_int_t)a->macs, "seconds", sec, "threads", o->threads,
                    "lat_conditions", X->prof->device.id);
    if (!res || json_object_set_new(res, "shared_weights", json_boolean(o->shared))) {
        gn_error_set(err, "unas: out of memory");
        goto out;
    }
    printf("target %.4g ms: %s\n  predicted %.4f ms (the supernet's path %.4f), measured %.4f ms (%s the target), "
           "%.2f M MACs, %.0f s\n",
           T, enc, pred, path_ms, meas, meas <= T ? "within" : "ABOVE", a->macs / 1e6, sec);
    if (X->store) {
        char source[64];
        snprintf(source, sizeof source, "unas:%s@%gms", o->estimator, T);
        gn_nas_callbacks cb = {.user = (void *)&o->quiet, .event = on_nas_event, .should_stop = cli_should_stop};
        gn_trial t;
        if (gn_nas_submit(&X->w, enc, source, &cb, &t, err))
            goto out;
        json_object_set_new(res, "trial",
                            json_pack("{s:I, s:s, s:i, s:f, s:f, s:s}", "id", (json_int_t)t.id, "status",
                                      gn_trial_status_name(t.status), "tier", t.tier, "latency_ms", t.latency_ms,
                                      "val_acc", t.val_acc, "store", gn_store_where(X->store)));
        printf("  stored as trial %lld of %s: %s, tier %d, %.4f ms, val %.2f%%\n", (long long)t.id,
               gn_store_where(X->store), gn_trial_status_name(t.status), t.tier, t.latency_ms, 100 * t.val_acc);
        gn_trial_clear(&t);
    }
    snprintf(path, sizeof path, "%s/result.json", dir);
    rc = write_result(path, res, err);
out:
    json_decref(res);
    gn_arch_free(a);
    free(enc);
    free(cfg);
    return rc;
}

/* 0 done, 1 stopped, -1 error */
static int run_target(unas_ctx *X, double T, gn_error *err)
{
    const unas_opts *o = X->o;
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/t%gms", o->out, T);
    snprintf(path, sizeof path, "%s/result.json", dir);
    if (file_exists(path)) {
        printf("target %g ms: done already (%s)\n", T, path);
        return 0;
    }
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
    bool resume = file_exists(path);
    if (resume && !o->resume)
        return gn_error_set(err, "%s exists: --resume to continue it, or another --out", path);
    if (mkdir(o->out, 0777) && errno != EEXIST)
        return gn_error_set(err, "%s: cannot create (%s)", o->out, strerror(errno));
    if (mkdir(dir, 0777) && errno != EEXIST)
        return gn_error_set(err, "%s: cannot create (%s)", dir, strerror(errno));
    gn_supernet *sn = NULL;
    gn_supernet_lat *sl = NULL;
    gn_unas *u = NULL;
    measurer m = {.prof = X->prof, .space = X->space, .duration_s = o->lat_duration};
    int rc = -1;
    gn_supernet_opts so = {.shared = o->shared != 0};
    if (gn_supernet_create(X->space, X->be, &so, &sn, err) || gn_supernet_lat_create(sn, X->prof, &sl, err) ||
        gn_backend_create("dnnl", &m.be, err))
        goto out;
    m.sn = sn;
    {   /* the supernet's input resolution (fixed): that of any path */
        int d0[GN_ONESHOT_MAX_M] = {0};
        gn_arch *a0 = NULL;
        if (gn_supernet_decode(sn, d0, &a0, err))
            goto out;
        X->aug.resolution = a0->resolution;
        gn_arch_free(a0);
    }
    gn_unas_run_config c;
    gn_unas_run_defaults(&c);
    if (gn_unas_estimator_parse(o->estimator, &c.step.estimator)) {
        gn_error_set(err, "--estimator: '%s' is not reinforce, gumbel or unified", o->estimator);
        goto out;
    }
    c.step.tau = o->tau;
    c.step.eps = o->eps;
    c.step.arch_lr = o->arch_lr;
    c.arch_lr_min = 0.3 * o->arch_lr;
    c.step.weight_lr = o->weight_lr;
    c.weight_lr_min = o->weight_lr / 3;
    c.step.lat = sl;
    c.step.target_ms = T;
    c.step.lat_coeff = isnan(o->lat_coeff) ? 1.0 / T : o->lat_coeff;
    c.step.gen_gap = o->gen_gap;
    if (o->measure) {
        c.step.measure = measure_path;
        c.step.measure_ctx = &m;
    }
    c.init_epochs = o->init_epochs;
    c.epochs = o->epochs;
    c.batch = o->batch;
    c.train = X->train;
    c.val = X->val;
    c.aug = X->aug;
    c.seed = o->seed;
    c.dir = dir;
    c.log_every = o->log_every;
    c.checkpoint_every = o->ckpt_every;
    c.max_steps = o->max_steps;
    int per_epoch = X->train->n / o->batch;
    c.step.warmup_steps = (int64_t)llround(o->lat_warmup * per_epoch * o->epochs);
    printf("target %g ms: %s, %s, %d+%d epochs of %d steps (batch %d), latency coefficient %g/ms%s%s, %s weights "
           "(%zu free)\n",
           T, o->estimator, resume ? "resuming" : "new", o->init_epochs, o->epochs, per_epoch, o->batch,
           c.step.lat_coeff, o->measure ? ", measured rewards" : "", o->gen_gap > 0 ? ", generalization gap" : "",
           o->shared ? "shared" : "separate", gn_supernet_free_weights(sn));
    fflush(stdout);
    gn_unas_run_callbacks cb = {.progress = on_progress, .should_stop = cli_should_stop, .user = (void *)o};
    double t0 = gn__now_s();
    int r = gn_unas_run(sn, &c, &cb, resume, &u, err);
    if (r < 0)
        goto out;
    if (r == 1) {
        printf("target %g ms: stopped after step %lld, checkpointed in %s (--resume continues)\n", T,
               (long long)gn_unas_steps(u), dir);
        rc = 1;
        goto out;
    }
    if (o->measure)
        printf("  %d sampled networks measured\n", m.measured);
    rc = finish_target(X, sn, sl, u, T, dir, gn__now_s() - t0, &m, err);
out:
    gn_unas_free(u);
    gn_supernet_lat_free(sl);
    gn_supernet_free(sn);
    measurer_free(&m);
    return rc;
}

/* ------------------------------------------------------------------ main */

int cmd_unas(int argc, char **argv)
{
    unas_opts o;
    int p = parse(argc, argv, &o);
    if (p)
        return p > 0 ? 0 : 2;
    gn_error err = {{0}};
    gn_space *space = NULL;
    gn_dataset *ds = NULL;
    gn_dataset_view tr = {0}, va = {0}, trs = {0}, vas = {0};
    gn_lat_profile prof;
    gn_lat_profile_init(&prof);
    unas_ctx X = {.o = &o};
    int rc = 1;
    bool builtin = !strcmp(o.space, "fmnist") || !strcmp(o.space, "gpunet");
    if (builtin ? gn_space_builtin(o.space, &space, &err) : gn_space_load(o.space, &space, &err))
        goto out;
    if (gn_lat_profile_load(o.profile, &prof, &err))
        goto out;
    if (!prof.calibrated) {
        gn_error_set(&err, "%s: profile has no calibrated predictor", o.profile);
        goto out;
    }
    if (gn_dataset_load(o.dataset, o.data_dir, "train", 0, &ds, &err) ||
        gn_view_split(ds, 0.1, 42, &tr, &va, &err))
        goto out;
    X.train = &tr;
    X.val = &va;
    if (o.subset && o.subset < tr.n) {
        if (gn_view_subset(&tr, o.subset, o.seed, &trs, &err))
            goto out;
        X.train = &trs;
    }
    if (o.val_subset && o.val_subset < va.n) {
        if (gn_view_subset(&va, o.val_subset, o.seed, &vas, &err))
            goto out;
        X.val = &vas;
    }
    if (X.train->n < o.batch || X.val->n < o.batch) {
        gn_error_set(&err, "--batch %d: larger than the training (%d) or validation (%d) images", o.batch,
                     X.train->n, X.val->n);
        goto out;
    }
    gn_augment_defaults(ds, &X.aug);
    X.aug.crop_pad = 2;
    X.aug.erase_prob = 0;
    X.space = space;
    X.prof = &prof;
    if (gn_backend_create("dnnl", &X.be, &err) || gn_backend_set_threads(X.be, o.threads, &err))
        goto out;
    if (o.store) {
        char *settings = NULL;
        int g;
        if (gn_store_open(o.store, 0, &X.store, &err) || (g = gn_store_get_meta(X.store, "nas.settings", &settings, &err)) < 0)
            goto out;
        json_t *sj = g == 0 ? json_loads(settings, 0, NULL) : NULL;
        const char *lat = json_string_value(json_object_get(sj, "latency"));
        bool measures = !lat || strcmp(lat, "measure") == 0; /* else predicted from a profile */
        json_decref(sj);
        free(settings);
        if (g == 1) {
            gn_error_set(&err, "%s: no search in this store (meta nas.settings missing): run `gpunas search` first",
                         gn_store_where(X.store));
            goto out;
        }
        /* said now, not after the run: a search that measures does so on its device class only */
        char *cls = NULL, mine[256];
        gn_lat_device dev;
        if ((g = gn_store_get_meta(X.store, "nas.device_class", &cls, &err)) < 0 ||
            gn_lat_device_detect("dnnl", 0, &dev, &err))
            goto out;
        gn_lat_device_class(&dev, mine, sizeof mine);
        bool other = measures && g == 0 && strcmp(cls, mine) != 0;
        if (other)
            gn_error_set(&err, "%s: the search measures latency on device class '%s', this machine is '%s': run "
                         "`gpunas unas --store` on a machine of that class", gn_store_where(X.store), cls, mine);
        free(cls);
        if (other)
            goto out;
        gn_nas_worker_defaults(&X.w);
        X.w.store = X.store;
        X.w.data_dir = o.data_dir;
        X.w.space_path = builtin ? NULL : o.space;
        X.w.threads = o.threads;
    }
    cli_stop_on_signals(130);
    int stopped = 0;
    for (int i = 0; i < o.n_targets && !stopped; i++) {
        int r = run_target(&X, o.targets[i], &err);
        if (r < 0)
            goto out;
        stopped = r == 1;
    }
    rc = stopped ? (cli_stop_requested() ? 130 : 3) : 0;
out:
    if (rc == 1)
        cli_error(CMD, "%s", err.msg);
    gn_store_close(X.store);
    gn_backend_destroy(X.be);
    gn_view_free(&trs);
    gn_view_free(&vas);
    gn_view_free(&tr);
    gn_view_free(&va);
    gn_dataset_free(ds);
    gn_lat_profile_free(&prof);
    gn_space_free(space);
    return rc;
}
