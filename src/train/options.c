/*
 * options.c — training options: defaults, validation (one-line errors naming the
 * option), and their JSON form, which a checkpoint stores so that a resume with
 * different options is refused instead of silently producing a different run.
 *
 * The JSON holds every option that changes the result (resolution, data identity —
 * sizes and an FNV-1a hash of labels and pixels, not the path — split, augmentation,
 * recipe, seeds, teacher) and none that do not (threads, prefetch, output folder,
 * resume, stop-after), so those may change on resume.  The architecture itself is
 * compared separately (canonical JSON in the checkpoint).
 * Reals are written with 17 significant digits, so they round-trip exactly.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/train_internal.h"

void gn_train_defaults(gn_train_config *c)
{
    memset(c, 0, sizeof *c);
    c->threads = 0;
    c->val_fraction = 0.1;
    c->split_seed = 42;
    c->crop_pad = -1;
    c->hflip = -1;
    c->erase_prob = -1.0f;
    c->prefetch = 2;
    c->epochs = 10;
    c->batch = 128;
    gn_optim_defaults(GN_OPT_SGD, &c->optim);
    c->schedule = GN_SCHED_COSINE;
    c->lr = 0.1;
    c->min_lr = 0.0;
    c->warmup_epochs = 1.0;
    c->warmup_lr = 0.0;
    c->warmup_per_step = true;
    c->decay_epochs = 2.4;
    c->decay_gamma = 0.97;
    c->smoothing = 0.1f;
    c->ema_decay = 0.0;
    c->dropout = true;
    c->drop_path = true;
    c->seed = 1;
    c->kd_alpha = 0.5f;
    c->kd_temp = 1.0f;
}

uint64_t gn__train_mask_seed(uint64_t seed, int epoch)
{
    uint64_t z = seed + 0x9E3779B97F4A7C15ULL * (uint64_t)(epoch + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

int gn__train_check(const gn_train_config *c, gn_error *err)
{
    if (!c->arch)
        return gn_error_set(err, "train: no architecture given");
    if (!c->train_set)
        return gn_error_set(err, "train: no training data given");
    if (c->resolution < 0)
        return gn_error_set(err, "train: option resolution: %d must be >= 1 (or 0 for the config's)", c->resolution);
    if (c->backend && strcmp(c->backend, "dnnl") && strcmp(c->backend, "ref"))
        return gn_error_set(err, "train: option backend: '%s' is not one of dnnl, ref", c->backend);
    if (!(c->val_fraction >= 0 && c->val_fraction < 1))
        return gn_error_set(err, "train: option val-fraction: %g must be in [0, 1)", c->val_fraction);
    if (c->subset < 0)
        return gn_error_set(err, "train: option subset: %d must be >= 0", c->subset);
    if (c->erase_prob > 1)
        return gn_error_set(err, "train: option erase: probability %g must be <= 1", c->erase_prob);
    if (c->hflip > 1)
        return gn_error_set(err, "train: option hflip: %d must be -1, 0 or 1", c->hflip);
    if (c->prefetch < 0)
        return gn_error_set(err, "train: option prefetch: %d must be >= 0", c->prefetch);
    if (c->epochs < 1)
        return gn_error_set(err, "train: option epochs: %d must be >= 1", c->epochs);
    if (c->batch < 2)
        return gn_error_set(err, "train: option batch: %d must be >= 2 (batch norm needs 2 images)", c->batch);
    if (!(c->smoothing >= 0 && c->smoothing < 1))
        return gn_error_set(err, "train: option smoothing: %g must be in [0, 1)", c->smoothing);
    if (!(c->ema_decay >= 0 && c->ema_decay < 1))
        return gn_error_set(err, "train: option ema: decay %g must be in [0, 1) (0: off)", c->ema_decay);
    if (c->teacher_arch) {
        if (!c->teacher_weights)
            return gn_error_set(err, "train: a teacher needs its weights file");
        if (!(c->kd_alpha >= 0 && c->kd_alpha <= 1))
            return gn_error_set(err, "train: option kd-alpha: %g must be in [0, 1]", c->kd_alpha);
        if (!(c->kd_temp > 0) || !isfinite(c->kd_temp))
            return gn_error_set(err, "train: option kd-temp: %g must be > 0", c->kd_temp);
    }
    if (c->stop_after_epoch < 0)
        return gn_error_set(err, "train: option stop-after-epoch: %d must be >= 0", c->stop_after_epoch);
    if (c->resume && !c->out_dir)
        return gn_error_set(err, "train: resume needs an output folder");
    gn_lr_schedule s = {.kind = c->schedule,
                        .lr = c->lr,
                        .min_lr = c->min_lr,
                        .warmup_epochs = c->warmup_epochs,
                        .warmup_lr = c->warmup_lr,
                        .decay_epochs = c->decay_epochs,
                        .gamma = c->decay_gamma,
                        .epochs = c->epochs,
                        .steps_per_epoch = 1,
                        .per_step = c->warmup_per_step};
    if (gn_lr_schedule_check(&s, err))
        return -1;
    gn_optim *o;
    if (gn_optim_create(&c->optim, 0, &o, err))
        return -1;
    gn_optim_free(o);
    return 0;
}

/* FNV-1a (64-bit) over the labels and pixels: identifies the data by content, so a
 * resume may read the same files from another path but not other data. */
static uint64_t fingerprint(const gn_dataset *d)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    const uint8_t *b = (const uint8_t *)d->labels;
    for (size_t i = 0; i < (size_t)d->n * sizeof *d->labels; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    size_t np = (size_t)d->n * d->c * d->h * d->w;
    for (size_t i = 0; i < np; i++)
        h = (h ^ d->pixels[i]) * 0x100000001b3ULL;
    return h;
}

static json_t *data_json(const gn_dataset *d)
{
    if (!d)
        return json_null();
    char fp[32];
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)fingerprint(d));
    return json_pack("{s:i, s:i, s:i, s:i, s:i, s:s}", "n", d->n, "c", d->c, "h", d->h, "w", d->w, "classes",
                     d->classes, "fnv1a", fp);
}

static json_t *real(double v) { return json_real(v); }

char *gn_train_options_json(const gn_train_config *c, gn_error *err)
{
    json_t *o = json_object();
    json_object_set_new(o, "resolution", json_integer(c->resolution ? c->resolution : (c->arch ? c->arch->resolution : 0)));
    json_object_set_new(o, "same_pad_fix", json_boolean(c->arch && c->arch->same_pad_fix));
    json_object_set_new(o, "backend", json_string(c->backend ? c->backend : "dnnl"));
    json_object_set_new(o, "train_data", data_json(c->train_set));
    json_object_set_new(o, "test_data", data_json(c->test_set));
    json_object_set_new(o, "val_fraction", real(c->val_fraction));
    json_object_set_new(o, "subset", json_integer(c->subset));
    json_object_set_new(o, "split_seed", json_integer((json_int_t)c->split_seed));
    json_object_set_new(o, "crop_pad", json_integer(c->crop_pad));
    json_object_set_new(o, "hflip", json_integer(c->hflip));
    json_object_set_new(o, "erase_prob", real(c->erase_prob));
    json_object_set_new(o, "epochs", json_integer(c->epochs));
    json_object_set_new(o, "batch", json_integer(c->batch));
    json_t *opt = json_object();
    json_object_set_new(opt, "kind", json_string(gn_optim_name(c->optim.kind)));
    json_object_set_new(opt, "momentum", real(c->optim.momentum));
    json_object_set_new(opt, "nesterov", json_boolean(c->optim.nesterov));
    json_object_set_new(opt, "alpha", real(c->optim.alpha));
    json_object_set_new(opt, "eps", real(c->optim.eps));
    json_object_set_new(opt, "beta1", real(c->optim.beta1));
    json_object_set_new(opt, "beta2", real(c->optim.beta2));
    json_object_set_new(opt, "weight_decay", real(c->optim.weight_decay));
    json_object_set_new(o, "optimizer", opt);
    json_t *s = json_object();
    json_object_set_new(s, "kind", json_string(gn_sched_name(c->schedule)));
    json_object_set_new(s, "lr", real(c->lr));
    json_object_set_new(s, "min_lr", real(c->min_lr));
    json_object_set_new(s, "warmup_epochs", real(c->warmup_epochs));
    json_object_set_new(s, "warmup_lr", real(c->warmup_lr));
    json_object_set_new(s, "per_step", json_boolean(c->warmup_per_step));
    json_object_set_new(s, "decay_epochs", real(c->decay_epochs));
    json_object_set_new(s, "decay_gamma", real(c->decay_gamma));
    json_object_set_new(o, "schedule", s);
    json_object_set_new(o, "smoothing", real(c->smoothing));
    json_object_set_new(o, "ema_decay", real(c->ema_decay));
    json_object_set_new(o, "dropout", json_boolean(c->dropout));
    json_object_set_new(o, "drop_path", json_boolean(c->drop_path));
    json_object_set_new(o, "seed", json_integer((json_int_t)c->seed));
    if (c->teacher_arch)
        json_object_set_new(o, "teacher",
                            json_pack("{s:s, s:s, s:f, s:f}", "arch", c->teacher_arch->source, "weights",
                                      c->teacher_weights ? c->teacher_weights : "", "alpha", (double)c->kd_alpha,
                                      "temp", (double)c->kd_temp));
    else
        json_object_set_new(o, "teacher", json_null());
    char *text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(o);
    if (!text)
        gn_error_set(err, "train: cannot encode the options as JSON");
    return text;
}

/* First difference between two JSON values, as "key.sub"; writes into buf. */
static int first_diff(json_t *a, json_t *b, const char *prefix, char *buf, size_t cap)
{
    if (json_is_object(a) && json_is_object(b)) {
        const char *k;
        json_t *v;
        json_object_foreach(a, k, v)
        {
            char p[256];
            snprintf(p, sizeof p, "%s%s%s", prefix, *prefix ? "." : "", k);
            json_t *w = json_object_get(b, k);
            if (!w) {
                snprintf(buf, cap, "%s", p);
                return 1;
            }
            if (first_diff(v, w, p, buf, cap))
                return 1;
        }
        json_object_foreach(b, k, v) if (!json_object_get(a, k))
        {
            snprintf(buf, cap, "%s%s%s", prefix, *prefix ? "." : "", k);
            return 1;
        }
        return 0;
    }
    if (!json_equal(a, b)) {
        snprintf(buf, cap, "%s", prefix);
        return 1;
    }
    return 0;
}

int gn__train_options_match(const char *path, const char *stored, const char *current, gn_error *err)
{
    json_error_t je;
    json_t *a = json_loads(stored, 0, &je), *b = json_loads(current, 0, &je);
    int rc = 0;
    if (!a || !b) {
        rc = gn_error_set(err, "%s: the stored training options are not valid JSON", path);
    } else {
        char key[256];
        if (first_diff(a, b, "", key, sizeof key)) {
            char *sa = NULL, *sb = NULL;
            json_t *va = a, *vb = b;
            char tmp[256], *save = NULL;
            snprintf(tmp, sizeof tmp, "%s", key);
            for (char *tok = strtok_r(tmp, ".", &save); tok; tok = strtok_r(NULL, ".", &save)) {
                va = va ? json_object_get(va, tok) : NULL;
                vb = vb ? json_object_get(vb, tok) : NULL;
            }
            sa = va ? json_dumps(va, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
            sb = vb ? json_dumps(vb, JSON_ENCODE_ANY | JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
            rc = gn_error_set(err, "%s: cannot resume: option '%s' was %s in the checkpoint, now %s", path, key,
                              sa ? sa : "absent", sb ? sb : "absent");
            free(sa);
            free(sb);
        }
    }
    json_decref(a);
    json_decref(b);
    return rc;
}
