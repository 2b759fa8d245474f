/* unas_run.c — the UNAS search run (gpunas/unas.h, "The search run"): the loop of
 * UNAS's train_search.py around gn_unas_step, with the weights-only init epochs,
 * cosine rates per epoch, history.jsonl and checkpoint / resume.
 *
 * Position: the run counts steps over all phases (init epochs first); with B training
 * batches per epoch, step s is batch s % B of epoch s / B (0-based, the training
 * loader's epoch number), and search step t = s - init_epochs * B takes validation
 * batch t % V of validation epoch t / V.  Loader batches are pure functions of (seed,
 * epoch, batch index) (gpunas/data.h), so a resume restarts each loader's epoch and
 * skips the batches already used.
 *
 * Checkpoint (checkpoint.safetensors): "model.<param>" for every parameter of the
 * supernet's gn_net (BN running statistics included), "optim.<state>" for each weight
 * optimizer state vector, and theta, Adam's m and v as I64 tensors holding the exact
 * bits of the doubles ("arch.theta", "arch.adam_m", "arch.adam_v"; safetensors here
 * has no F64).  Metadata: format, version, step, search_steps, optim_steps,
 * bn_batches, baseline (bits, hex) and baseline_updates, rng (4 x u64 hex), position,
 * the history accumulators (bits), seconds, and settings (canonical JSON, flat keys).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "gpunas/safetensors.h"
#include "gpunas/unas.h"
#include "oneshot/oneshot_internal.h"
#include "util/fs_atomic.h"

#define CKPT_FORMAT "gpunas-unas-checkpoint"
#define CKPT_VERSION "1"
#define CKPT_FILE "checkpoint.safetensors"
#define HIST_FILE "history.jsonl"

void gn_unas_run_defaults(gn_unas_run_config *c)
{
    memset(c, 0, sizeof *c);
    gn_unas_defaults(&c->step);
    c->init_epochs = 0;
    c->epochs = 1;
    c->batch = 32;
    c->weight_lr_min = 1e-4;
    c->arch_lr_min = 3e-4;
    c->grad_clip = 5;
    c->aug.augment = false; /* resolution 0: the supernet's, the data's mean / std */
    c->seed = 1;
    c->log_every = 50;
    c->checkpoint_every = 0;
}

/* ------------------------------------------------------------------ state */

typedef struct {
    const gn_unas_run_config *c;
    const gn_unas_run_callbacks *cb;
    gn_supernet *sn;
    gn_unas *u;
    gn_augment taug, vaug;
    gn_loader *tl, *vl;
    int tb, vb;                 /* batches per epoch: training, validation */
    int t_epoch, t_next;        /* where the training loader stands (-1: nowhere) */
    int v_epoch, v_next;
    gn_tensor tx, vx;
    int32_t *ty, *vy;
    gn_rng rng;
    int E;                      /* init + search epochs */
    int64_t step, total, ckpt_step;
    double tsum, vsum;          /* history accumulators since the last line */
    int64_t tn, vn;
    double last_ct;             /* c_t of the last search step */
    double seconds0;            /* seconds of earlier calls */
    struct timespec t0;
    char *ckpt_path, *hist_path;
    FILE *hist;
    json_t *settings;
    int ndims;
    int *x;                     /* [ndims] the argmax encoding */
} run;

static double now_s(const run *r)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return r->seconds0 + (double)(t.tv_sec - r->t0.tv_sec) + 1e-9 * (double)(t.tv_nsec - r->t0.tv_nsec);
}

static uint64_t sub_seed(uint64_t seed, uint64_t i)
{
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * (i + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static char *join_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* ------------------------------------------------------------------ checks and setup */

static int check_run_config(const gn_unas_run_config *c, gn_error *err)
{
    if (c->init_epochs < 0 || c->epochs < 1)
        return gn_error_set(err, "unas run: init_epochs %d must be >= 0 and epochs %d >= 1", c->init_epochs,
                            c->epochs);
    if (c->batch < 1)
        return gn_error_set(err, "unas run: batch %d must be >= 1", c->batch);
    if (!c->train || !c->val)
        return gn_error_set(err, "unas run: needs a training and a validation view");
    if (!(c->weight_lr_min >= 0) || !isfinite(c->weight_lr_min) || !(c->arch_lr_min >= 0) ||
        !isfinite(c->arch_lr_min))
        return gn_error_set(err, "unas run: cosine floors %g (weights), %g (arch) must be finite and >= 0",
                            c->weight_lr_min, c->arch_lr_min);
    if (!(c->grad_clip >= 0) || !isfinite(c->grad_clip))
        return gn_error_set(err, "unas run: grad_clip %g must be finite and >= 0", c->grad_clip);
    if (c->log_every < 0 || c->checkpoint_every < 0 || c->max_steps < 0)
        return gn_error_set(err, "unas run: log_every %d, checkpoint_every %d, max_steps %lld must be >= 0",
                            c->log_every, c->checkpoint_every, (long long)c->max_steps);
    return 0;
}

/* The augmentations: resolution 0 means the supernet's resolution and the training
 * data's mean / std; validation batches are never augmented. */
static void make_augments(run *r)
{
    r->taug = r->c->aug;
    if (r->taug.resolution == 0) {
        const gn_dataset *d = r->c->train->data;
        r->taug.resolution = gn_net_arch(gn_supernet_net(r->sn))->resolution;
        memcpy(r->taug.mean, d->mean, sizeof r->taug.mean);
        memcpy(r->taug.std, d->std, sizeof r->taug.std);
    }
    r->vaug = r->taug;
    r->vaug.augment = false;
}

static int make_loaders(run *r, gn_error *err)
{
    const gn_unas_run_config *c = r->c;
    make_augments(r);
    if (gn_loader_create(c->train, c->batch, &r->taug, true, true, sub_seed(c->seed, 1), 2, &r->tl, err) ||
        gn_loader_create(c->val, c->batch, &r->vaug, true, true, sub_seed(c->seed, 2), 2, &r->vl, err))
        return -1;
    r->tb = gn_loader_batches_per_epoch(r->tl);
    r->vb = gn_loader_batches_per_epoch(r->vl);
    r->t_epoch = r->v_epoch = -1;
    r->E = c->init_epochs + c->epochs;
    r->total = (int64_t)r->E * r->tb;
    if (!(r->ty = malloc((size_t)c->batch * sizeof *r->ty)) || !(r->vy = malloc((size_t)c->batch * sizeof *r->vy)))
        return gn_error_set(err, "unas run: out of memory");
    return 0;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* A fingerprint of a view: its dataset's shape, its indices and their labels. */
static json_t *view_id(const gn_dataset_view *v)
{
    const gn_dataset *d = v->data;
    int shape[5] = {d->n, d->c, d->h, d->w, d->classes};
    uint64_t h = fnv(0xcbf29ce484222325ull, shape, sizeof shape);
    h = fnv(h, v->index, (size_t)v->n * sizeof *v->index);
    for (int i = 0; i < v->n; i++)
        h = fnv(h, &d->labels[v->index[i]], sizeof(int32_t));
    char buf[64];
    snprintf(buf, sizeof buf, "%d:%016" PRIx64, v->n, h);
    return json_string(buf);
}

static json_t *real_list(const float *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++)
        json_array_append_new(a, json_real(v[i]));
    return a;
}

/* Everything that changes the result, as one flat JSON object (key order fixed). */
static int make_settings(run *r, gn_error *err)
{
    const gn_unas_run_config *c = r->c;
    const gn_unas_config *s = &c->step;
    const gn_optim_config *o = &s->weight_optim;
    double lat_uniform = NAN;
    json_t *j = json_object();
    if (!j)
        return gn_error_set(err, "unas run: out of memory");
    r->settings = j;
    char cats[3 * GN_ONESHOT_MAX_M + 16] = "";
    for (int m = 0; m < gn_supernet_num_cats(r->sn); m++) {
        size_t l = strlen(cats);
        snprintf(cats + l, sizeof cats - l, "%s%d", m ? "," : "", gn_supernet_get_cat(r->sn, m)->k);
    }
    if (s->lat && gn_supernet_lat_eval(s->lat, gn_oneshot_probs(gn_unas_dist(r->u)), gn_supernet_n(r->sn),
                                       &lat_uniform, NULL, err))
        return -1;
    int bad = 0;
#define SET(k, v) bad |= json_object_set_new(j, k, v)
    SET("supernet.cats", json_string(cats));
    SET("supernet.values", json_integer((json_int_t)gn_net_num_values(gn_supernet_net(r->sn))));
    SET("supernet.shared", json_boolean(gn_supernet_shared(r->sn)));
    SET("estimator", json_string(gn_unas_estimator_name(s->estimator)));
    SET("tau", json_real(s->tau));
    SET("eps", json_real(s->eps));
    SET("baseline_momentum", json_real(s->baseline_momentum));
    SET("arch_lr", json_real(s->arch_lr));
    SET("arch_beta1", json_real(s->arch_beta1));
    SET("arch_beta2", json_real(s->arch_beta2));
    SET("arch_eps", json_real(s->arch_eps));
    SET("arch_wd", json_real(s->arch_wd));
    SET("weight_optim.kind", json_string(gn_optim_name(o->kind)));
    SET("weight_optim.momentum", json_real(o->momentum));
    SET("weight_optim.nesterov", json_boolean(o->nesterov));
    SET("weight_optim.alpha", json_real(o->alpha));
    SET("weight_optim.eps", json_real(o->eps));
    SET("weight_optim.beta1", json_real(o->beta1));
    SET("weight_optim.beta2", json_real(o->beta2));
    SET("weight_optim.weight_decay", json_real(o->weight_decay));
    SET("weight_lr", json_real(s->weight_lr));
    SET("latency", json_boolean(s->lat != NULL));
    SET("latency.uniform_ms", s->lat ? json_real(lat_uniform) : json_null()); /* a fingerprint of the profile */
    SET("target_ms", s->lat ? json_real(s->target_ms) : json_null());
    SET("lat_coeff", s->lat ? json_real(s->lat_coeff) : json_null());
    SET("warmup_steps", s->lat ? json_integer(s->warmup_steps) : json_null());
    SET("gen_gap", json_real(s->gen_gap));
    SET("measure", json_boolean(s->measure != NULL));
    SET("init_epochs", json_integer(c->init_epochs));
    SET("epochs", json_integer(c->epochs));
    SET("batch", json_integer(c->batch));
    SET("weight_lr_min", json_real(c->weight_lr_min));
    SET("arch_lr_min", json_real(c->arch_lr_min));
    SET("grad_clip", json_real(c->grad_clip));
    SET("train", view_id(c->train));
    SET("val", view_id(c->val));
    SET("aug.resolution", json_integer(r->taug.resolution));
    SET("aug.augment", json_boolean(r->taug.augment));
    SET("aug.crop_pad", json_integer(r->taug.augment ? r->taug.crop_pad : 0));
    SET("aug.hflip", json_boolean(r->taug.augment && r->taug.hflip));
    SET("aug.erase_prob", json_real(r->taug.augment ? r->taug.erase_prob : 0));
    SET("aug.mean", real_list(r->taug.mean, r->c->train->data->c));
    SET("aug.std", real_list(r->taug.std, r->c->train->data->c));
    SET("seed", json_integer((json_int_t)c->seed));
#undef SET
    if (bad)
        return gn_error_set(err, "unas run: out of memory building the settings");
    return 0;
}

/* ------------------------------------------------------------------ rates */

static double cosine_at(double peak, double floor, int epoch, int epochs)
{
    gn_lr_schedule s;
    memset(&s, 0, sizeof s);
    s.kind = GN_SCHED_COSINE;
    s.lr = peak;
    s.min_lr = floor;
    s.epochs = epochs;
    s.steps_per_epoch = 1;
    return gn_lr_at(&s, epoch, 0);
}

/* The rates of (0-based) epoch e: the peaks in the init epochs, then the cosines. */
static void set_rates(run *r, int e)
{
    const gn_unas_run_config *c = r->c;
    gn_unas_config *uc = gn_unas_config_mut(r->u);
    int j = e - c->init_epochs;
    uc->weight_lr = j < 0 ? c->step.weight_lr : cosine_at(c->step.weight_lr, c->weight_lr_min, j, c->epochs);
    uc->arch_lr = j < 0 ? c->step.arch_lr : cosine_at(c->step.arch_lr, c->arch_lr_min, j, c->epochs);
}

/* ------------------------------------------------------------------ batches */

/* Batch k of epoch e from loader l (which stands at *cur_e, *cur_next) into x, y. */
static int batch_at(gn_loader *l, int *cur_e, int *cur_next, int e, int k, gn_tensor *x, int32_t *y, run *r,
                    gn_error *err)
{
    gn_batch b;
    if (*cur_e != e || *cur_next != k) {
        if (gn_loader_start_epoch(l, e, err))
            return -1;
        *cur_e = e;
        *cur_next = 0;
        for (; *cur_next < k; (*cur_next)++)
            if (gn_loader_next(l, &b, err) != 1)
                return gn_error_set(err, "unas run: loader ended before batch %d of epoch %d", k, e);
    }
    int rc = gn_loader_next(l, &b, err);
    if (rc != 1)
        return rc < 0 ? -1 : gn_error_set(err, "unas run: loader ended before batch %d of epoch %d", k, e);
    (*cur_next)++;
    if (!x->data && gn_tensor_alloc(x, gn_net_backend(gn_supernet_net(r->sn)), b.n, b.c, b.h, b.w, err))
        return -1;
    memcpy(y, b.labels, (size_t)b.n * sizeof *y);
    return gn_tensor_from_host(x, b.x, err);
}

/* ------------------------------------------------------------------ history */

static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static int argmax_state(run *r, double *lat_argmax, double *lat_expected, gn_error *err)
{
    const gn_unas_config *s = &r->c->step;
    int n = gn_supernet_n(r->sn), d[GN_ONESHOT_MAX_M];
    *lat_argmax = *lat_expected = NAN;
    if (gn_unas_derive(r->u, r->x, err))
        return -1;
    if (!s->lat)
        return 0;
    double *z = calloc((size_t)n, sizeof *z);
    if (!z)
        return gn_error_set(err, "unas run: out of memory");
    const gn_oneshot_dist *q = gn_unas_dist(r->u);
    gn_unas_argmax(r->u, d);
    for (int m = 0; m < gn_oneshot_m(q); m++)
        z[gn_oneshot_offset(q, m) + d[m]] = 1.0;
    int rc = gn_supernet_lat_eval(s->lat, z, n, lat_argmax, NULL, err) ||
             gn_supernet_lat_eval(s->lat, gn_oneshot_probs(q), n, lat_expected, NULL, err);
    free(z);
    return rc ? -1 : 0;
}

static json_t *progress_json(const gn_unas_progress *p, int ndims)
{
    json_t *j = json_object(), *x = json_array();
    for (int i = 0; x && i < ndims; i++)
        json_array_append_new(x, json_integer(p->argmax_x[i]));
    json_object_set_new(j, "epoch", json_integer(p->epoch));
    json_object_set_new(j, "epochs", json_integer(p->epochs));
    json_object_set_new(j, "phase", json_string(p->init ? "init" : "search"));
    json_object_set_new(j, "epoch_end", json_boolean(p->epoch_end));
    json_object_set_new(j, "step", json_integer(p->step));
    json_object_set_new(j, "steps", json_integer(p->steps));
    json_object_set_new(j, "train_loss", num(p->train_loss));
    json_object_set_new(j, "val_loss", num(p->val_loss));
    json_object_set_new(j, "entropy", num(p->entropy));
    json_object_set_new(j, "lat_expected", num(p->lat_expected));
    json_object_set_new(j, "lat_argmax", num(p->lat_argmax));
    json_object_set_new(j, "lat_coeff", num(p->lat_coeff));
    json_object_set_new(j, "weight_lr", num(p->weight_lr));
    json_object_set_new(j, "arch_lr", num(p->arch_lr));
    json_object_set_new(j, "argmax_x", x);
    json_object_set_new(j, "seconds", num(p->seconds));
    return j;
}

/* One history line (and the progress callback) for the steps since the last one. */
static int history_line(run *r, bool epoch_end, gn_error *err)
{
    int e = (int)((r->step - 1) / r->tb);
    gn_unas_progress p;
    memset(&p, 0, sizeof p);
    p.epoch = e + 1;
    p.epochs = r->E;
    p.init = e < r->c->init_epochs;
    p.epoch_end = epoch_end;
    p.step = r->step;
    p.steps = r->total;
    p.train_loss = r->tn ? r->tsum / (double)r->tn : NAN;
    p.val_loss = r->vn ? r->vsum / (double)r->vn : NAN;
    p.entropy = gn_oneshot_entropy(gn_unas_dist(r->u), NULL);
    p.lat_coeff = p.init ? gn_unas_lat_coeff(r->u) : r->last_ct;
    p.weight_lr = gn_unas_config_mut(r->u)->weight_lr;
    p.arch_lr = gn_unas_config_mut(r->u)->arch_lr;
    p.argmax_x = r->x;
    if (argmax_state(r, &p.lat_argmax, &p.lat_expected, err))
        return -1;
    p.seconds = now_s(r);
    r->tsum = r->vsum = 0;
    r->tn = r->vn = 0;
    if (r->hist) {
        json_t *j = progress_json(&p, r->ndims);
        char *line = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (!line)
            return gn_error_set(err, "%s: out of memory", r->hist_path);
        int bad = fprintf(r->hist, "%s\n", line) < 0 || fflush(r->hist) != 0;
        free(line);
        if (bad)
            return gn_error_set(err, "%s: write failed: %s", r->hist_path, strerror(errno));
    }
    if (r->cb && r->cb->progress)
        r->cb->progress(r->cb->user, &p);
    return 0;
}

/* Keep the lines of history.jsonl up to the checkpoint's step (a torn or later line
 * and everything after it go), rewritten atomically. */
static int cut_history(run *r, gn_error *err)
{
    if (!gn__fs_exists(r->hist_path))
        return 0;
    char *text;
    size_t n, keep = 0;
    if (gn__fs_read_all(r->hist_path, &text, &n, err))
        return -1;
    while (keep < n) {
        char *nl = memchr(text + keep, '\n', n - keep);
        if (!nl)
            break;
        json_error_t je;
        json_t *j = json_loadb(text + keep, (size_t)(nl - (text + keep)), 0, &je);
        json_t *st = j ? json_object_get(j, "step") : NULL;
        bool ok = st && json_is_integer(st) && json_integer_value(st) <= r->step;
        json_decref(j);
        if (!ok)
            break;
        keep = (size_t)(nl - text) + 1;
    }
    int rc = keep == n ? 0 : gn__fs_write_atomic(r->hist_path, text, keep, err);
    free(text);
    return rc;
}

static int open_history(run *r, bool fresh, gn_error *err)
{
    if (!r->hist_path)
        return 0;
    if (!fresh && cut_history(r, err))
        return -1;
    if (!(r->hist = fopen(r->hist_path, fresh ? "w" : "a")))
        return gn_error_set(err, "%s: cannot open: %s", r->hist_path, strerror(errno));
    return 0;
}

/* ------------------------------------------------------------------ checkpoint: save */

static void hex64(char *buf, size_t cap, uint64_t v) { snprintf(buf, cap, "%016" PRIx64, v); }

static uint64_t dbits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof b);
    return b;
}

static double bits_d(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof d);
    return d;
}

static int add_doubles(gn_st_writer *w, const char *name, const double *v, int n, gn_error *err)
{
    int64_t *bits = malloc((size_t)n * sizeof *bits), shape = n;
    if (!bits)
        return gn_error_set(err, "unas run: out of memory");
    memcpy(bits, v, (size_t)n * sizeof *bits);
    int rc = gn_st_writer_add_i64(w, name, 1, &shape, bits, err);
    free(bits);
    return rc;
}

static void position_str(const run *r, int64_t step, char *buf, size_t cap)
{
    int64_t t = step - (int64_t)r->c->init_epochs * r->tb;
    if (t < 0)
        t = 0;
    snprintf(buf, cap, "{\"epoch\":%" PRId64 ",\"batch\":%" PRId64 ",\"val_epoch\":%" PRId64 ",\"val_batch\":%" PRId64 "}",
             step / r->tb, step % r->tb, t / r->vb, t % r->vb);
}

static int add_meta(gn_st_writer *w, const run *r, gn_error *err)
{
    gn_oneshot_baseline *b = gn__unas_baseline(r->u);
    char step[32], ss[32], os[32], bnb[32], base[32], bup[32], rng[80], pos[160], acc[96], sec[40];
    snprintf(step, sizeof step, "%" PRId64, r->step);
    snprintf(ss, sizeof ss, "%" PRId64, gn_unas_steps(r->u));
    snprintf(os, sizeof os, "%" PRId64, gn_optim_steps(gn__unas_weight_optim(r->u)));
    snprintf(bnb, sizeof bnb, "%" PRId64, gn_net_bn_batches(gn_supernet_net(r->sn)));
    hex64(base, sizeof base, dbits(b->value));
    snprintf(bup, sizeof bup, "%" PRId64, b->updates);
    snprintf(rng, sizeof rng, "%016" PRIx64 ",%016" PRIx64 ",%016" PRIx64 ",%016" PRIx64, r->rng.s[0], r->rng.s[1],
             r->rng.s[2], r->rng.s[3]);
    position_str(r, r->step, pos, sizeof pos);
    snprintf(acc, sizeof acc, "%016" PRIx64 ",%" PRId64 ",%016" PRIx64 ",%" PRId64, dbits(r->tsum), r->tn,
             dbits(r->vsum), r->vn);
    snprintf(sec, sizeof sec, "%.17g", now_s(r));
    char *settings = json_dumps(r->settings, JSON_COMPACT);
    if (!settings)
        return gn_error_set(err, "unas run: out of memory");
    const char *kv[][2] = {{"format", CKPT_FORMAT}, {"version", CKPT_VERSION}, {"step", step},
                           {"search_steps", ss},    {"optim_steps", os},       {"bn_batches", bnb},
                           {"baseline", base},      {"baseline_updates", bup}, {"rng", rng},
                           {"position", pos},       {"accumulators", acc},     {"seconds", sec},
                           {"settings", settings}};
    int rc = 0;
    for (size_t i = 0; !rc && i < sizeof kv / sizeof kv[0]; i++)
        rc = gn_st_writer_meta(w, kv[i][0], kv[i][1], err);
    free(settings);
    return rc;
}

static int add_tensors(gn_st_writer *w, run *r, gn_error *err)
{
    gn_net *net = gn_supernet_net(r->sn);
    for (int i = 0; i < gn_net_num_params(net); i++) {
        gn_param *q = gn_net_param(net, i);
        char name[GN_NAME_MAX + 16];
        snprintf(name, sizeof name, "model.%s", q->name);
        if (gn_st_writer_add(w, name, q->ndim, q->shape, q->value.data, err))
            return -1;
    }
    gn_optim *o = gn__unas_weight_optim(r->u);
    int64_t n = (int64_t)gn_optim_size(o);
    for (int i = 0; i < gn_optim_state_count(o); i++) {
        char name[64];
        snprintf(name, sizeof name, "optim.%s", gn_optim_state_name(o, i));
        if (gn_st_writer_add(w, name, 1, &n, gn_optim_state(o, i), err))
            return -1;
    }
    int na = gn_supernet_n(r->sn);
    return add_doubles(w, "arch.theta", gn_oneshot_theta(gn_unas_dist(r->u)), na, err) ||
                   add_doubles(w, "arch.adam_m", gn__unas_adam_m(r->u), na, err) ||
                   add_doubles(w, "arch.adam_v", gn__unas_adam_v(r->u), na, err)
               ? -1
               : 0;
}

static int save_checkpoint(run *r, gn_error *err)
{
    if (!r->ckpt_path || r->ckpt_step == r->step)
        return 0;
    /* the history up to here reaches the disk before the checkpoint that vouches for it */
    if (r->hist && (fflush(r->hist) != 0 || fsync(fileno(r->hist)) != 0))
        return gn_error_set(err, "%s: cannot sync: %s", r->hist_path, strerror(errno));
    gn_st_writer *w = gn_st_writer_new();
    if (!w)
        return gn_error_set(err, "%s: out of memory", r->ckpt_path);
    int rc = add_tensors(w, r, err) || add_meta(w, r, err) || gn_st_writer_write(w, r->ckpt_path, err);
    gn_st_writer_free(w);
    if (rc)
        return -1;
    r->ckpt_step = r->step;
    return 0;
}

/* ------------------------------------------------------------------ checkpoint: load */

static int meta_i64(gn_st_file *f, const char *key, int64_t lo, int64_t hi, int64_t *out, gn_error *err)
{
    const char *v = gn_st_meta(f, key);
    if (!v)
        return gn_error_set(err, "%s: metadata '%s' missing", gn_st_path(f), key);
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        return gn_error_set(err, "%s: metadata '%s': '%s' is not an integer in [%lld, %lld]", gn_st_path(f), key, v,
                            (long long)lo, (long long)hi);
    *out = x;
    return 0;
}

/* A comma-separated list of fields, each 16 hex digits ('h') or a decimal integer ('d'). */
static int meta_fields(gn_st_file *f, const char *key, const char *kinds, uint64_t *out, gn_error *err)
{
    const char *v = gn_st_meta(f, key), *p = v;
    if (!v)
        return gn_error_set(err, "%s: metadata '%s' missing", gn_st_path(f), key);
    for (size_t i = 0; kinds[i]; i++) {
        char *end;
        errno = 0;
        bool hex = kinds[i] == 'h';
        out[i] = hex ? strtoull(p, &end, 16) : (uint64_t)strtoll(p, &end, 10);
        bool sep_ok = kinds[i + 1] ? *end == ',' : *end == '\0';
        if (errno || end == p || (hex && end - p != 16) || (!hex && *p == '-') || !sep_ok)
            return gn_error_set(err, "%s: metadata '%s': '%s' is malformed (field %zu)", gn_st_path(f), key, v, i + 1);
        p = end + 1;
    }
    return 0;
}

static char *dump(const json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    return s ? s : strdup("(missing)");
}

static int settings_differ(const char *path, const char *key, const json_t *was, const json_t *now, gn_error *err)
{
    char *a = dump(was), *b = dump(now);
    gn_error_set(err, "%s: cannot resume with other settings: '%s' is %s in the checkpoint, %s now", path, key,
                 a ? a : "?", b ? b : "?");
    free(a);
    free(b);
    return -1;
}

static int check_settings(gn_st_file *f, const json_t *now, gn_error *err)
{
    const char *s = gn_st_meta(f, "settings"), *key;
    if (!s)
        return gn_error_set(err, "%s: metadata 'settings' missing", gn_st_path(f));
    json_error_t je;
    json_t *was = json_loads(s, 0, &je), *v;
    if (!json_is_object(was)) {
        json_decref(was);
        return gn_error_set(err, "%s: metadata 'settings' is not a JSON object", gn_st_path(f));
    }
    int rc = 0;
    json_object_foreach((json_t *)now, key, v) {
        json_t *w = json_object_get(was, key);
        if (!json_equal(w, v)) {
            rc = settings_differ(gn_st_path(f), key, w, v, err);
            break;
        }
    }
    if (!rc)
        json_object_foreach(was, key, v) {
            if (!json_object_get(now, key)) {
                rc = settings_differ(gn_st_path(f), key, v, NULL, err);
                break;
            }
        }
    json_decref(was);
    return rc;
}

static int load_doubles(gn_st_file *f, const char *name, int n, double *dst, gn_error *err)
{
    const gn_st_info *t;
    if (gn_st_get(f, name, &t, err))
        return -1;
    if (t->dtype != GN_ST_I64 || t->ndim != 1 || t->shape[0] != n)
        return gn_error_set(err, "%s: tensor '%s': %s of %lld values, expected I64 [%d] (double bits)", gn_st_path(f),
                            name, gn_st_dtype_name(t->dtype), (long long)t->numel, n);
    int64_t *bits = malloc((size_t)n * sizeof *bits);
    if (!bits)
        return gn_error_set(err, "unas run: out of memory");
    int rc = gn_st_load_i64(f, name, n, bits, err);
    if (!rc)
        memcpy(dst, bits, (size_t)n * sizeof *dst); /* the bits of n doubles */
    free(bits);
    return rc;
}

static int load_tensors(gn_st_file *f, run *r, double *theta, gn_error *err)
{
    gn_net *net = gn_supernet_net(r->sn);
    gn_optim *o = gn__unas_weight_optim(r->u);
    int na = gn_supernet_n(r->sn), expected = gn_net_num_params(net) + gn_optim_state_count(o) + 3;
    if (gn_st_count(f) != expected)
        return gn_error_set(err, "%s: %d tensors, expected %d (%d parameters, %d optimizer states, 3 arch)",
                            gn_st_path(f), gn_st_count(f), expected, gn_net_num_params(net), gn_optim_state_count(o));
    for (int i = 0; i < gn_net_num_params(net); i++) {
        gn_param *q = gn_net_param(net, i);
        char name[GN_NAME_MAX + 16];
        snprintf(name, sizeof name, "model.%s", q->name);
        if (gn_st_load(f, name, q->ndim, q->shape, q->value.data, err))
            return -1;
    }
    int64_t n = (int64_t)gn_optim_size(o);
    for (int i = 0; i < gn_optim_state_count(o); i++) {
        char name[64];
        snprintf(name, sizeof name, "optim.%s", gn_optim_state_name(o, i));
        if (gn_st_load(f, name, 1, &n, gn_optim_state(o, i), err))
            return -1;
    }
    return load_doubles(f, "arch.theta", na, theta, err) || load_doubles(f, "arch.adam_m", na, gn__unas_adam_m(r->u), err) ||
                   load_doubles(f, "arch.adam_v", na, gn__unas_adam_v(r->u), err)
               ? -1
               : 0;
}

/* The scalar state: steps, position, baseline, rng, accumulators, seconds. */
static int load_scalars(gn_st_file *f, run *r, gn_error *err)
{
    const char *path = gn_st_path(f);
    int64_t step, ss, os, bnb, bup;
    uint64_t base, rng[4], acc[4];
    if (meta_i64(f, "step", 0, r->total, &step, err) || meta_i64(f, "search_steps", 0, r->total, &ss, err) ||
        meta_i64(f, "optim_steps", 0, INT64_MAX / 2, &os, err) ||
        meta_i64(f, "bn_batches", 0, INT64_MAX / 2, &bnb, err) ||
        meta_i64(f, "baseline_updates", 0, INT64_MAX / 2, &bup, err) || meta_fields(f, "baseline", "h", &base, err) ||
        meta_fields(f, "rng", "hhhh", rng, err) || meta_fields(f, "accumulators", "hdhd", acc, err))
        return -1;
    int64_t search = step - (int64_t)r->c->init_epochs * r->tb;
    if (ss != (search > 0 ? search : 0))
        return gn_error_set(err, "%s: metadata 'search_steps' is %" PRId64 ", expected %" PRId64 " at step %" PRId64,
                            path, ss, search > 0 ? search : 0, step);
    if (os != step) /* one weight step per step, in both phases */
        return gn_error_set(err, "%s: metadata 'optim_steps' is %" PRId64 ", expected %" PRId64, path, os, step);
    char want[160];
    const char *pos = gn_st_meta(f, "position");
    position_str(r, step, want, sizeof want);
    if (!pos || strcmp(pos, want) != 0)
        return gn_error_set(err, "%s: metadata 'position' is %s, expected %s", path, pos ? pos : "missing", want);
    const char *sec = gn_st_meta(f, "seconds");
    char *end = NULL;
    double seconds = sec ? strtod(sec, &end) : NAN;
    if (!sec || end == sec || *end || !isfinite(seconds) || seconds < 0)
        return gn_error_set(err, "%s: metadata 'seconds' is %s", path, sec ? sec : "missing");
    r->step = r->ckpt_step = step;
    gn__unas_set_steps(r->u, ss);
    gn_optim_set_steps(gn__unas_weight_optim(r->u), os);
    gn_net_set_bn_batches(gn_supernet_net(r->sn), bnb);
    gn__unas_baseline(r->u)->value = bits_d(base);
    gn__unas_baseline(r->u)->updates = bup;
    memcpy(r->rng.s, rng, sizeof r->rng.s);
    r->tsum = bits_d(acc[0]);
    r->tn = (int64_t)acc[1];
    r->vsum = bits_d(acc[2]);
    r->vn = (int64_t)acc[3];
    r->seconds0 = seconds;
    return 0;
}

static int load_checkpoint(run *r, gn_error *err)
{
    if (!gn__fs_exists(r->ckpt_path))
        return gn_error_set(err, "%s: no checkpoint to resume from", r->ckpt_path);
    gn_st_file *f;
    if (gn_st_open(r->ckpt_path, &f, err))
        return -1;
    const char *fmt = gn_st_meta(f, "format"), *ver = gn_st_meta(f, "version");
    int na = gn_supernet_n(r->sn), rc = 0;
    double *theta = malloc((size_t)na * sizeof *theta);
    if (!theta)
        rc = gn_error_set(err, "unas run: out of memory");
    else if (!fmt || strcmp(fmt, CKPT_FORMAT) != 0)
        rc = gn_error_set(err, "%s: not a UNAS checkpoint (metadata 'format' is %s)", r->ckpt_path,
                          fmt ? fmt : "missing");
    else if (!ver || strcmp(ver, CKPT_VERSION) != 0)
        rc = gn_error_set(err, "%s: metadata 'version' is %s, expected %s", r->ckpt_path, ver ? ver : "missing",
                          CKPT_VERSION);
    if (!rc)
        rc = check_settings(f, r->settings, err) || load_tensors(f, r, theta, err) || load_scalars(f, r, err) ||
             gn_oneshot_set_theta(gn_unas_dist_mut(r->u), theta, err);
    if (rc && rc != -1)
        rc = -1;
    if (rc && err && !strstr(err->msg, r->ckpt_path)) { /* e.g. a non-finite theta */
        char m[sizeof err->msg];
        snprintf(m, sizeof m, "%s", err->msg);
        gn_error_set(err, "%s: %s", r->ckpt_path, m);
    }
    free(theta);
    gn_st_close(f);
    return rc;
}

/* ------------------------------------------------------------------ the loop */

/* One step at the current position: weights-only in the init epochs, else a search step. */
static int one_step(run *r, gn_error *err)
{
    int e = (int)(r->step / r->tb), k = (int)(r->step % r->tb);
    set_rates(r, e);
    if (batch_at(r->tl, &r->t_epoch, &r->t_next, e, k, &r->tx, r->ty, r, err))
        return -1;
    if (e < r->c->init_epochs) {
        double loss;
        if (gn__unas_weights_step(r->u, &r->tx, r->ty, &r->rng, &loss, err))
            return -1;
        r->tsum += loss;
        r->tn++;
        return 0;
    }
    int64_t t = r->step - (int64_t)r->c->init_epochs * r->tb;
    gn_unas_report rep;
    if (batch_at(r->vl, &r->v_epoch, &r->v_next, (int)(t / r->vb), (int)(t % r->vb), &r->vx, r->vy, r, err) ||
        gn_unas_step(r->u, &r->tx, r->ty, &r->vx, r->vy, &r->rng, &rep, err))
        return -1;
    r->tsum += rep.train_loss;
    r->tn++;
    r->vsum += isnan(rep.val_loss_d) ? rep.val_loss_relaxed : rep.val_loss_d;
    r->vn++;
    r->last_ct = rep.lat_coeff;
    return 0;
}

/* Steps until the end (0), a stop (1) or an error (-1). */
static int loop(run *r, gn_error *err)
{
    int64_t done = 0;
    while (r->step < r->total) {
        if (one_step(r, err))
            return -1;
        r->step++;
        done++;
        bool epoch_end = r->step % r->tb == 0;
        if ((epoch_end || (r->c->log_every > 0 && r->step % r->c->log_every == 0)) &&
            history_line(r, epoch_end, err))
            return -1;
        if ((epoch_end || (r->c->checkpoint_every > 0 && r->step % r->c->checkpoint_every == 0)) &&
            save_checkpoint(r, err))
            return -1;
        if (r->step == r->total)
            break;
        bool stop = (r->c->max_steps > 0 && done >= r->c->max_steps) ||
                    (r->cb && r->cb->should_stop && r->cb->should_stop(r->cb->user));
        if (stop)
            return save_checkpoint(r, err) ? -1 : 1;
    }
    return 0;
}

static int prepare_dir(run *r, bool resume, gn_error *err)
{
    const char *dir = r->c->dir;
    if (!dir)
        return resume ? gn_error_set(err, "unas run: resume needs a folder (dir)") : 0;
    if (gn__fs_mkdirs(dir, err))
        return -1;
    if (!(r->ckpt_path = join_path(dir, CKPT_FILE)) || !(r->hist_path = join_path(dir, HIST_FILE)))
        return gn_error_set(err, "unas run: out of memory");
    if (!resume && gn__fs_exists(r->ckpt_path))
        return gn_error_set(err, "%s: a checkpoint exists: resume the run, or start it in another folder",
                            r->ckpt_path);
    return 0;
}

static int start(run *r, gn_supernet *sn, bool resume, gn_error *err)
{
    const gn_unas_run_config *c = r->c;
    r->sn = sn;
    r->ckpt_step = -1;
    r->ndims = gn_space_desc(gn_supernet_space(sn))->ndims;
    if (!(r->x = calloc((size_t)r->ndims, sizeof *r->x)))
        return gn_error_set(err, "unas run: out of memory");
    if (gn_unas_create(sn, &c->step, &r->u, err))
        return -1;
    gn__unas_set_grad_clip(r->u, c->grad_clip);
    if (make_loaders(r, err) || make_settings(r, err) || prepare_dir(r, resume, err))
        return -1;
    clock_gettime(CLOCK_MONOTONIC, &r->t0);
    if (resume)
        return load_checkpoint(r, err) || open_history(r, false, err) ? -1 : 0;
    gn_rng_seed(&r->rng, sub_seed(c->seed, 3));
    if (gn_supernet_init(sn, c->seed, err))
        return -1;
    gn_net_set_bn_batches(gn_supernet_net(sn), 0); /* a fresh start: no BN batches seen */
    return open_history(r, true, err);
}

static void finish(run *r)
{
    if (r->hist)
        fclose(r->hist);
    gn_loader_free(r->tl);
    gn_loader_free(r->vl);
    gn_tensor_free(&r->tx);
    gn_tensor_free(&r->vx);
    free(r->ty);
    free(r->vy);
    free(r->ckpt_path);
    free(r->hist_path);
    free(r->x);
    json_decref(r->settings);
}

int gn_unas_run(gn_supernet *sn, const gn_unas_run_config *c, const gn_unas_run_callbacks *cb, bool resume,
                gn_unas **out, gn_error *err)
{
    if (out)
        *out = NULL;
    if (!sn || !c || !out)
        return gn_error_set(err, "unas run: no supernet, config or output");
    if (check_run_config(c, err))
        return -1;
    run r;
    memset(&r, 0, sizeof r);
    r.c = c;
    r.cb = cb;
    int rc = start(&r, sn, resume, err) ? -1 : loop(&r, err);
    if (rc >= 0 && r.hist && fclose(r.hist) != 0)
        rc = gn_error_set(err, "%s: write failed: %s", r.hist_path, strerror(errno));
    r.hist = NULL;
    finish(&r);
    if (rc < 0) {
        gn_unas_free(r.u);
        return -1;
    }
    *out = r.u;
    return rc;
}
