/*
 * schedule.c — learning-rate schedules: linear warm-up, then cosine, step decay or
 * constant (formulas in gpunas/optim.h).  A pure function of (epoch, step), so a
 * resumed run needs no schedule state.
 */
#include <math.h>
#include <string.h>

#include "gpunas/optim.h"

static const char *const names[] = {"cosine", "step", "constant"};

const char *gn_sched_name(gn_sched_kind k) { return (unsigned)k < 3 ? names[k] : "?"; }

int gn_sched_parse(const char *name, gn_sched_kind *out)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(name, names[i]) == 0) {
            *out = (gn_sched_kind)i;
            return 0;
        }
    return -1;
}

static bool fin(double v) { return isfinite(v); }

int gn_lr_schedule_check(const gn_lr_schedule *s, gn_error *err)
{
    if ((unsigned)s->kind > GN_SCHED_CONSTANT)
        return gn_error_set(err, "lr schedule: unknown kind %d", (int)s->kind);
    if (!fin(s->lr) || s->lr < 0)
        return gn_error_set(err, "lr schedule: lr %g must be finite and >= 0", s->lr);
    if (s->epochs < 1)
        return gn_error_set(err, "lr schedule: epochs %d must be >= 1", s->epochs);
    if (s->steps_per_epoch < 1)
        return gn_error_set(err, "lr schedule: steps per epoch %d must be >= 1", s->steps_per_epoch);
    if (!fin(s->warmup_epochs) || s->warmup_epochs < 0 || s->warmup_epochs >= s->epochs)
        return gn_error_set(err, "lr schedule: warm-up %g epochs must be in [0, epochs = %d)", s->warmup_epochs,
                            s->epochs);
    if (!fin(s->warmup_lr) || s->warmup_lr < 0)
        return gn_error_set(err, "lr schedule: warm-up lr %g must be finite and >= 0", s->warmup_lr);
    if (s->kind == GN_SCHED_COSINE && (!fin(s->min_lr) || s->min_lr < 0))
        return gn_error_set(err, "lr schedule: min lr %g must be finite and >= 0", s->min_lr);
    if (s->kind == GN_SCHED_STEP && (!fin(s->decay_epochs) || s->decay_epochs <= 0))
        return gn_error_set(err, "lr schedule: decay every %g epochs must be > 0", s->decay_epochs);
    if (s->kind == GN_SCHED_STEP && (!fin(s->gamma) || s->gamma < 0))
        return gn_error_set(err, "lr schedule: gamma %g must be finite and >= 0", s->gamma);
    return 0;
}

double gn_lr_at(const gn_lr_schedule *s, int epoch, int step)
{
    double t = epoch;
    if (s->per_step && s->steps_per_epoch > 0)
        t += (double)step / s->steps_per_epoch;
    const double W = s->warmup_epochs;
    if (W > 0 && t < W)
        return s->warmup_lr + (s->lr - s->warmup_lr) * t / W;
    switch (s->kind) {
    case GN_SCHED_COSINE: {
        double span = s->epochs - W;
        double x = span > 0 ? (t - W) / span : 1.0;
        if (x > 1)
            x = 1;
        return s->min_lr + 0.5 * (s->lr - s->min_lr) * (1.0 + cos(M_PI * x));
    }
    case GN_SCHED_STEP:
        return s->lr * pow(s->gamma, floor(t / s->decay_epochs));
    case GN_SCHED_CONSTANT:
    default:
        return s->lr;
    }
}
