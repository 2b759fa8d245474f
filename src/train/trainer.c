/*
 * trainer.c — gn_train_run: the epoch loop (design in gpunas/train.h).
 *
 * One step: loader batch -> host-to-tensor copy -> training forward -> logits to the
 * host -> (teacher inference on the same batch) -> gn_kd_loss (loss + dL/dz) ->
 * finiteness check -> gn_net_backward -> optimizer step at gn_lr_at(epoch, step) ->
 * EMA update.  The loss is computed on the host (K logits per image, negligible)
 * so hard-label and distillation terms share one code path.
 *
 * Evaluation with EMA weights swaps the shadow into the net's arena (parameters
 * and BN statistics) and back, bit-exact, so training continues from the raw
 * weights.  At the end the EMA weights (when on) are the final weights (test
 * evaluation, weights.safetensors).
 *
 * Order after each epoch: validation, (last epoch: test + weights file), the
 * metrics line, then the checkpoint — so an interruption anywhere leaves either the
 * old checkpoint (and the resume drops the newer metrics line) or the new one.
 *
 * Everything the run allocates hangs off one `run` struct freed by run_free, so
 * every error path is a plain `goto done`.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "train/train_internal.h"
#include "util/clock.h"

typedef struct {
    const gn_train_config *c;
    gn_arch *arch, *tarch;
    gn_backend *be;
    gn_net *net, *teacher;
    gn_dataset_view tr_all, val, sub;
    const gn_dataset_view *tr; /* tr_all or sub */
    gn_dataset_view test;
    gn_loader *ltrain, *lval, *ltest;
    gn_optim *optim;
    gn_ema *ema;
    float *swap;               /* n_total floats for the EMA swap */
    gn_tensor x, dz;
    float *logits, *tlogits, *hdz;
    char *options, *arch_json;
    char *ckpt_path, *metrics_path, *weights_path, *config_path;
    int K;
    size_t n_total;
    /* threads: the count set, and when `threads` <= 0 the last CPU sample */
    int threads;
    gn_cpu_sample cpu;
    double cpu_t;
} run;


static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static void run_free(run *r)
{
    gn_loader_free(r->ltrain);
    gn_loader_free(r->lval);
    gn_loader_free(r->ltest);
    gn_view_free(&r->tr_all);
    gn_view_free(&r->val);
    gn_view_free(&r->sub);
    gn_view_free(&r->test);
    gn_tensor_free(&r->x);
    gn_tensor_free(&r->dz);
    gn_net_free(r->net);
    gn_net_free(r->teacher);
    gn_backend_destroy(r->be);
    gn_arch_free(r->arch);
    gn_arch_free(r->tarch);
    gn_optim_free(r->optim);
    gn_ema_free(r->ema);
    free(r->swap);
    free(r->logits);
    free(r->tlogits);
    free(r->hdz);
    free(r->options);
    free(r->arch_json);
    free(r->ckpt_path);
    free(r->metrics_path);
    free(r->weights_path);
    free(r->config_path);
}

/* A private copy of an arch with in-channels / classes / resolution set for the data. */
static int arch_for_data(const gn_arch *src, const gn_dataset *d, int res, gn_arch **out, gn_error *err)
{
    char *text = gn_arch_to_json(src, err);
    if (!text)
        return -1;
    int rc = gn_arch_parse(text, src->source, out, err);
    free(text);
    if (rc)
        return -1;
    gn_arch *a = *out;
    a->same_pad_fix = src->same_pad_fix;
    if (gn_arch_resolve(a, err) || gn_arch_set_in_channels(a, d->c, err) || gn_arch_set_classes(a, d->classes, err) ||
        gn_arch_set_resolution(a, res, err)) {
        gn_arch_free(a);
        *out = NULL;
        return -1;
    }
    return 0;
}

static int check_compatible(const gn_dataset *tr, const gn_dataset *te, gn_error *err)
{
    if (te->c != tr->c || te->classes != tr->classes)
        return gn_error_set(err, "%s: test data has %d channels and %d classes, the training data %s has %d and %d",
                            te->source, te->c, te->classes, tr->source, tr->c, tr->classes);
    return 0;
}

/* mkdir -p: every missing parent too. */
static int mkdir_p(const char *dir, gn_error *err)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf)
        return gn_error_set(err, "%s: output folder name too long", dir);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != 0)
            continue;
        char saved = *p;
        *p = 0;
        struct stat st;
        if (stat(buf, &st) == 0) {
            if (!S_ISDIR(st.st_mode))
                return gn_error_set(err, "%s: cannot create the output folder: %s is not a folder", dir, buf);
        } else if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
            return gn_error_set(err, "%s: cannot create the output folder: %s", dir, strerror(errno));
        }
        *p = saved;
        if (!saved)
            break;
    }
    return 0;
}

/* EMA shadow <-> net arena. */
static void swap_ema(run *r)
{
    float *v = gn_net_values(r->net), *e = gn_ema_values(r->ema);
    memcpy(r->swap, v, r->n_total * sizeof(float));
    memcpy(v, e, r->n_total * sizeof(float));
    memcpy(e, r->swap, r->n_total * sizeof(float));
}

static int eval_on(run *r, gn_loader *l, double *loss, double *top1, double *top5, gn_error *err)
{
    gn_eval_result er;
    if (gn_evaluate(r->net, l, false, &er, err))
        return -1;
    *loss = er.loss;
    *top1 = er.top1;
    *top5 = er.top5;
    gn_eval_result_free(&er);
    return 0;
}

static int setup(run *r, gn_error *err)
{
    const gn_train_config *c = r->c;
    int res = c->resolution ? c->resolution : c->arch->resolution;
    if (arch_for_data(c->arch, c->train_set, res, &r->arch, err))
        return -1;
    if (c->test_set && check_compatible(c->train_set, c->test_set, err))
        return -1;
    r->K = c->train_set->classes;
    r->threads = c->threads > 0 ? c->threads : gn_threads_available(100, NULL);
    if (gn_backend_create(c->backend ? c->backend : "dnnl", &r->be, err) ||
        gn_backend_set_threads(r->be, r->threads, err))
        return -1;
    gn_cpu_sample_take(&r->cpu);
    r->cpu_t = gn__now_s();
    if (gn_net_create(r->arch, r->be, &r->net, err) || gn_net_init(r->net, c->seed, err))
        return -1;
    r->n_total = 0;
    for (int i = 0; i < gn_net_num_params(r->net); i++) {
        gn_param *q = gn_net_param(r->net, i);
        size_t end = (size_t)(q->value.data - gn_net_values(r->net)) + gn_tensor_numel(&q->value);
        if (end > r->n_total)
            r->n_total = end;
    }
    if (c->teacher_arch) {
        if (arch_for_data(c->teacher_arch, c->train_set, res, &r->tarch, err) ||
            gn_net_create(r->tarch, r->be, &r->teacher, err) || gn_net_load(r->teacher, c->teacher_weights, err) ||
            gn_net_prepare_inference(r->teacher, err))
            return -1;
    }

    /* data */
    if (gn_view_split(c->train_set, c->val_fraction, c->split_seed, &r->tr_all, &r->val, err))
        return -1;
    r->tr = &r->tr_all;
    if (c->subset > 0) {
        if (c->subset > r->tr_all.n)
            return gn_error_set(err, "%s: subset of %d images requested, the training split has %d",
                                c->train_set->source, c->subset, r->tr_all.n);
        if (gn_view_subset(&r->tr_all, c->subset, c->split_seed, &r->sub, err))
            return -1;
        r->tr = &r->sub;
    }
    if (c->batch > r->tr->n)
        return gn_error_set(err, "%s: batch %d is larger than the %d training images", c->train_set->source, c->batch,
                            r->tr->n);
    gn_augment aug, plain;
    gn_augment_defaults(c->train_set, &aug);
    aug.resolution = res;
    if (c->crop_pad >= 0)
        aug.crop_pad = c->crop_pad;
    if (c->hflip >= 0)
        aug.hflip = c->hflip != 0;
    if (c->erase_prob >= 0)
        aug.erase_prob = c->erase_prob;
    plain = aug;
    plain.augment = false;
    if (gn_loader_create(r->tr, c->batch, &aug, true, true, c->seed, c->prefetch, &r->ltrain, err))
        return -1;
    if (r->val.n > 0 && gn_loader_create(&r->val, c->batch, &plain, false, false, c->seed, c->prefetch, &r->lval, err))
        return -1;
    if (c->test_set && (gn_view_all(c->test_set, &r->test, err) ||
                        gn_loader_create(&r->test, c->batch, &plain, false, false, c->seed, c->prefetch, &r->ltest, err)))
        return -1;

    /* optimizer, EMA, buffers */
    if (gn_optim_create_for_net(&c->optim, r->net, &r->optim, err))
        return -1;
    if (c->ema_decay > 0) {
        if (gn_ema_create(c->ema_decay, gn_net_values(r->net), r->n_total, &r->ema, err))
            return -1;
        if (!(r->swap = malloc(r->n_total * sizeof(float))))
            return gn_error_set(err, "train: out of memory");
    }
    size_t nk = (size_t)c->batch * r->K;
    r->logits = malloc(nk * sizeof(float));
    r->tlogits = malloc(nk * sizeof(float));
    r->hdz = malloc(nk * sizeof(float));
    if (!r->logits || !r->tlogits || !r->hdz)
        return gn_error_set(err, "train: out of memory");
    if (gn_tensor_alloc(&r->x, r->be, c->batch, c->train_set->c, res, res, err) ||
        gn_tensor_alloc(&r->dz, r->be, c->batch, r->K, 1, 1, err))
        return -1;

    /* identity of the run */
    if (!(r->options = gn_train_options_json(c, err)) || !(r->arch_json = gn_arch_to_json(r->arch, err)))
        return -1;
    if (c->out_dir) {
        if (mkdir_p(c->out_dir, err))
            return -1;
        r->ckpt_path = join(c->out_dir, "checkpoint.safetensors");
        r->metrics_path = join(c->out_dir, "metrics.jsonl");
        r->weights_path = join(c->out_dir, "weights.safetensors");
        r->config_path = join(c->out_dir, "config.json");
        if (!r->ckpt_path || !r->metrics_path || !r->weights_path || !r->config_path)
            return gn_error_set(err, "train: out of memory");
    }
    return 0;
}

/* One training epoch; fills the train fields of m. */
/* threads <= 0: every 2 s, follow the cores the other processes left free since the
 * last check (gn_cpu_available over that interval; no sleeping). */
static int follow_free_cores(run *r, gn_error *err)
{
    double t = gn__now_s();
    if (r->c->threads > 0 || t - r->cpu_t < 2.0)
        return 0;
    gn_cpu_sample now;
    if (gn_cpu_sample_take(&now))
        return 0; /* no /proc: keep the count */
    int n = gn_cpu_available(&r->cpu, &now, NULL);
    r->cpu = now;
    r->cpu_t = t;
    if (n == r->threads)
        return 0;
    r->threads = n;
    return gn_backend_set_threads(r->be, n, err);
}

static int train_epoch(run *r, int e, const gn_lr_schedule *s, const gn_train_callbacks *cb, gn_epoch_metrics *m,
                       gn_error *err)
{
    const gn_train_config *c = r->c;
    gn_train_opts to = {.dropout = c->dropout, .drop_path = c->drop_path, .bn_momentum = 0.1f,
                        .seed = gn__train_mask_seed(c->seed, e)};
    gn_net_set_train_opts(r->net, &to);
    if (gn_loader_start_epoch(r->ltrain, e, err))
        return -1;
    const int steps = gn_loader_batches_per_epoch(r->ltrain);
    double t0 = gn__now_s(), loss_sum = 0, lr = 0;
    int64_t images = 0, correct = 0;
    gn_batch b;
    int rc, step = 0;
    float *params = gn_net_values(r->net), *grads = gn_net_grads(r->net);
    m->threads_min = m->threads_max = r->threads;
    gn_train_profile *P = c->profile;
    gn_net_set_op_profile(r->net, P ? &P->ops : NULL);
    double tp = gn__now_s(), tq; /* phase clock (profile) */
#define PHASE(field)                                                                                                   \
    do {                                                                                                               \
        if (P) {                                                                                                       \
            tq = gn__now_s();                                                                                          \
            P->field += tq - tp;                                                                                       \
            tp = tq;                                                                                                   \
        }                                                                                                              \
    } while (0)
    while ((rc = gn_loader_next(r->ltrain, &b, err)) == 1) {
        double t_step = tp;
        PHASE(data_s);
        if (follow_free_cores(r, err))
            return -1;
        if (r->threads < m->threads_min)
            m->threads_min = r->threads;
        if (r->threads > m->threads_max)
            m->threads_max = r->threads;
        if (b.n != c->batch)
            return gn_error_set(err, "train: loader returned a batch of %d images, expected %d", b.n, c->batch);
        const gn_tensor *z;
        if (gn_tensor_from_host(&r->x, b.x, err) || gn_net_forward_train(r->net, &r->x, &z, err) ||
            gn_tensor_to_host(z, r->logits, err))
            return -1;
        PHASE(fwd_s);
        const float *tl = NULL;
        if (r->teacher && c->kd_alpha > 0) {
            const gn_tensor *tz;
            if (gn_net_infer(r->teacher, &r->x, &tz, err) || gn_tensor_to_host(tz, r->tlogits, err))
                return -1;
            tl = r->tlogits;
        }
        double loss;
        if (gn_kd_loss(r->logits, tl, b.labels, b.n, r->K, c->smoothing, tl ? c->kd_alpha : 0.0f, c->kd_temp, &loss,
                       r->hdz, err))
            return -1;
        if (!isfinite(loss)) {
            if (r->ckpt_path && e > 0)
                return gn_error_set(err,
                                    "epoch %d, step %d: loss is %s; training stopped (the checkpoint %s of epoch %d "
                                    "is intact)",
                                    e + 1, step + 1, isnan(loss) ? "nan" : "inf", r->ckpt_path, e);
            return gn_error_set(err, "epoch %d, step %d: loss is %s; training stopped%s", e + 1, step + 1,
                                isnan(loss) ? "nan" : "inf", r->ckpt_path ? " (no checkpoint was written yet)" : "");
        }
        PHASE(loss_s);
        if (gn_tensor_from_host(&r->dz, r->hdz, err) || gn_net_backward(r->net, &r->dz, err))
            return -1;
        PHASE(bwd_s);
        lr = gn_lr_at(s, e, step);
        if (gn_optim_step(r->optim, params, grads, lr, err))
            return -1;
        if (r->ema)
            gn_ema_update(r->ema, params);
        PHASE(optim_s);
        loss_sum += loss * b.n;
        for (int i = 0; i < b.n; i++)
            correct += gn_label_rank(r->logits + (size_t)i * r->K, r->K, b.labels[i]) == 0;
        images += b.n;
        step++;
        if (cb && cb->progress) {
            double el = gn__now_s() - t0;
            gn_train_progress p = {.epoch = e,
                                   .epochs = c->epochs,
                                   .step = step,
                                   .steps = steps,
                                   .images = images,
                                   .loss = loss_sum / images,
                                   .acc = (double)correct / images,
                                   .lr = lr,
                                   .elapsed_s = el,
                                   .images_per_s = el > 0 ? images / el : 0,
                                   .threads = r->threads,
                                   .eta_s = el / step * (steps - step)};
            if (cb->progress(cb->user, &p))
                return gn_error_set(err, "train: cancelled by the caller at epoch %d, step %d", e + 1, step);
        }
        if (P) {
            P->steps++;
            tp = gn__now_s();
            P->total_s += tp - t_step;
        }
    }
#undef PHASE
    gn_net_set_op_profile(r->net, NULL);
    if (rc < 0)
        return -1;
    if (images == 0)
        return gn_error_set(err, "train: epoch %d had no batches", e + 1);
    m->epoch = e + 1;
    m->lr = lr;
    m->train_loss = loss_sum / images;
    m->train_acc = (double)correct / images;
    m->train_time_s = gn__now_s() - t0;
    m->images_per_s = m->train_time_s > 0 ? images / m->train_time_s : 0;
    return 0;
}

static int validate(run *r, gn_epoch_metrics *m, gn_error *err)
{
    if (!r->lval)
        return 0;
    m->has_val = true;
    if (eval_on(r, r->lval, &m->val_loss, &m->val_top1, &m->val_top5, err))
        return -1;
    if (r->ema) {
        m->has_ema = true;
        swap_ema(r);
        int rc = eval_on(r, r->lval, &m->ema_val_loss, &m->ema_val_top1, &m->ema_val_top5, err);
        swap_ema(r);
        if (rc)
            return -1;
    }
    return 0;
}

/* Final weights (the EMA shadow when on, swapped in and back out so the
 * checkpoint written afterwards still holds the raw weights), test evaluation,
 * weights file. */
static int finish(run *r, gn_epoch_metrics *m, gn_train_result *res, gn_error *err)
{
    if (r->ema)
        swap_ema(r);
    int rc = 0;
    if (r->ltest) {
        m->has_test = true;
        rc = eval_on(r, r->ltest, &m->test_loss, &m->test_top1, &m->test_top5, err);
        res->test_top1 = m->test_top1;
        res->test_top5 = m->test_top5;
    }
    if (!rc && r->weights_path)
        rc = gn_net_save(r->net, r->weights_path, err);
    if (r->ema)
        swap_ema(r);
    return rc;
}

int gn_train_run(const gn_train_config *c, const gn_train_callbacks *cb, gn_train_result *res, gn_error *err)
{
    memset(res, 0, sizeof *res);
    res->val_top1 = res->test_top1 = res->test_top5 = -1;
    if (gn__train_check(c, err))
        return -1;
    double t_start = gn__now_s();
    run r = {.c = c};
    int rc = -1;
    if (setup(&r, err))
        goto done;
    res->params = gn_net_trainable_count(r.net);
    gn__ckpt_ctx ck = {.net = r.net, .optim = r.optim, .ema = r.ema, .options = r.options, .arch_json = r.arch_json,
                       .seed = c->seed};
    int start = 0;
    if (r.ckpt_path) {
        if (c->resume) {
            if (access(r.ckpt_path, F_OK) != 0) {
                gn_error_set(err, "%s: no checkpoint to resume from", r.ckpt_path);
                goto done;
            }
            if (gn__ckpt_load(r.ckpt_path, &ck, &start, err))
                goto done;
            if (start > c->epochs) {
                gn_error_set(err, "%s: the checkpoint has %d epochs done, more than the %d of this run", r.ckpt_path,
                             start, c->epochs);
                goto done;
            }
            if (gn__metrics_truncate(r.metrics_path, start, err))
                goto done;
        } else {
            if (access(r.ckpt_path, F_OK) == 0) {
                gn_error_set(err, "%s: a checkpoint exists; resume it or choose another output folder", r.ckpt_path);
                goto done;
            }
            remove(r.metrics_path);
        }
        if (gn_arch_save(r.arch, r.config_path, err))
            goto done;
    }
    res->start_epoch = start;
    gn_lr_schedule s = {.kind = c->schedule,
                        .lr = c->lr,
                        .min_lr = c->min_lr,
                        .warmup_epochs = c->warmup_epochs,
                        .warmup_lr = c->warmup_lr,
                        .decay_epochs = c->decay_epochs,
                        .gamma = c->decay_gamma,
                        .epochs = c->epochs,
                        .steps_per_epoch = gn_loader_batches_per_epoch(r.ltrain),
                        .per_step = c->warmup_per_step};
    for (int e = start; e < c->epochs; e++) {
        double te = gn__now_s();
        gn_epoch_metrics m = {0};
        if (train_epoch(&r, e, &s, cb, &m, err) || validate(&r, &m, err))
            goto done;
        if (e + 1 == c->epochs && finish(&r, &m, res, err))
            goto done;
        m.time_s = gn__now_s() - te;
        /* the metrics line first: a crash before the checkpoint leaves a line that
         * the resume (from the previous checkpoint) cuts off */
        if (r.metrics_path && gn__metrics_append(r.metrics_path, &m, err))
            goto done;
        if (r.ckpt_path && gn__ckpt_save(r.ckpt_path, &ck, e + 1, err))
            goto done;
        res->last = m;
        res->epochs_done = e + 1;
        if (m.has_val) /* the final weights' validation accuracy (EMA weights when on) */
            res->val_top1 = m.has_ema ? m.ema_val_top1 : m.val_top1;
        if (cb && cb->epoch_end && cb->epoch_end(cb->user, &m)) {
            gn_error_set(err, "train: cancelled by the caller after epoch %d", e + 1);
            goto done;
        }
        if (c->stop_after_epoch > 0 && e + 1 >= c->stop_after_epoch && e + 1 < c->epochs) {
            res->stopped_early = true;
            break;
        }
    }
    if (start == c->epochs) { /* resumed a finished run: redo the final step only */
        gn_epoch_metrics m = {.epoch = start};
        if (validate(&r, &m, err) || finish(&r, &m, res, err))
            goto done;
        if (m.has_val)
            res->val_top1 = m.has_ema ? m.ema_val_top1 : m.val_top1;
        res->epochs_done = start;
        res->last = m;
    }
    rc = 0;
done:
    res->total_time_s = gn__now_s() - t_start;
    run_free(&r);
    return rc;
}
