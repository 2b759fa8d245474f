/*
 * gpunas/optim.h — optimizers over a flat parameter arena, learning-rate schedules,
 * an exponential moving average of the weights, and the (distillation) loss.
 *
 * Design
 *   A network's trainable parameters are one flat float array (gn_net_values; the
 *   trainable scalars come first) and their gradients another (gn_net_grads), so an
 *   optimizer is a loop over n scalars plus per-scalar state vectors of the same
 *   length.  Weight decay applies per range: gn_optim_create_for_net marks the
 *   ranges of params with no_decay (BN affine, biases) as undecayed, exactly like
 *   timm's param_groups_weight_decay; non-trainable buffers (BN running stats) lie
 *   after the trainable part and are never touched.
 *
 *   Update rules (each checked against PyTorch 1.13 / timm in tests/test_train_optim.c
 *   via tests/pytorch/optim_ref.py; g = gradient, p = parameter, wd = weight decay,
 *   0 on no_decay ranges):
 *     SGD (torch.optim.SGD, dampening 0):  g += wd*p;  b = m*b + g  (b = g at step 1,
 *         which equals m*0 + g);  g = nesterov ? g + m*b : b;  p -= lr*g.
 *     RMSprop-TF (timm RMSpropTF, decoupled_decay=False, lr_in_momentum=True,
 *         not centered): g += wd*p;  s += (1-alpha)*(g*g - s)  with s initialised to
 *         ONES;  a = sqrt(s + eps)  (eps inside the root);  with momentum m > 0:
 *         b = m*b + lr*g/a, p -= b  (lr accumulated in the buffer); m = 0: p -= lr*g/a.
 *         GPUNet recipe: alpha 0.9, eps 1e-3, momentum 0.9, wd 1e-5.
 *     AdamW (torch.optim.AdamW): p *= 1 - lr*wd;  m1 = b1*m1 + (1-b1)*g;
 *         m2 = b2*m2 + (1-b2)*g*g;  p -= lr/(1-b1^t) * m1 / (sqrt(m2)/sqrt(1-b2^t) + eps).
 *   Arithmetic is float32 in PyTorch's order of operations; bias corrections in double.
 *
 *   The optimizer state (step count and state vectors) is exposed by name so a
 *   checkpoint can save it and a resumed run continues bit for bit.
 *
 *   LR schedule (gn_lr_at): the training time t in epochs is e (per-epoch schedule)
 *   or e + s/steps_per_epoch (per-step).  Linear warm-up for t < W from warmup_lr to
 *   lr, then
 *     cosine:   min_lr + (lr - min_lr)/2 * (1 + cos(pi*(t - W)/(E - W)))   (the
 *               cosine starts after the warm-up, like PyTorch's
 *               SequentialLR(LinearLR, CosineAnnealingLR));
 *     step:     lr * gamma^floor(t / decay_epochs)   (counted from t = 0, like timm's
 *               StepLRScheduler, e.g. GPUNet's 0.97 every 2.4 epochs);
 *     constant: lr.
 *
 *   EMA (gn_ema): timm ModelEmaV2 — after every optimizer step
 *   shadow = decay*shadow + (1-decay)*value over the WHOLE arena, parameters and BN
 *   running statistics alike (ModelEmaV2 averages every state_dict entry), starting
 *   from a copy of the initial weights.  Evaluating "with EMA" means loading the
 *   shadow into the net (BN statistics included).
 *
 *   Loss (gn_kd_loss), per batch of n rows with K classes, z = student logits,
 *   t = teacher logits (NULL: no distillation), y = labels, eps = smoothing,
 *   a = alpha, T = temperature:
 *     CE_eps(z, y)  = -sum_k q_k log softmax(z)_k,  q = (1-eps)*onehot(y) + eps/K
 *     SCE_T(z, t)   = -sum_k softmax(t/T)_k log softmax(z/T)_k   (soft-target CE)
 *     L = mean_rows[ (1-a) * CE_eps(z, y) + a * T^2 * SCE_T(z, t) ]
 *     dL/dz = [ (1-a)*(softmax(z) - q) + a*T*(softmax(z/T) - softmax(t/T)) ] / n
 *   GPUNet's recipe (CE + soft CE, weights 1:1, T = 1) is a = 0.5, T = 1 with the
 *   loss (and so the gradient) halved; soft CE differs from Hinton's KL form only by
 *   the teacher's entropy, a constant, so the gradient is the same.  Computed in
 *   double.
 */
#ifndef GPUNAS_OPTIM_H
#define GPUNAS_OPTIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gpunas/error.h"

typedef struct gn_net gn_net;

/* ------------------------------------------------------------------ optimizers */
typedef enum { GN_OPT_SGD = 0, GN_OPT_RMSPROP_TF, GN_OPT_ADAMW } gn_optim_kind;

typedef struct {
    gn_optim_kind kind;
    float momentum;     /* SGD, RMSprop-TF; >= 0 */
    bool nesterov;      /* SGD only (needs momentum > 0) */
    float alpha;        /* RMSprop-TF smoothing constant (0.9) */
    float eps;          /* RMSprop-TF (1e-3, inside the sqrt), AdamW (1e-8) */
    float beta1, beta2; /* AdamW (0.9, 0.999) */
    float weight_decay; /* >= 0 */
} gn_optim_config;

/* Defaults per kind: SGD momentum 0.9 Nesterov, wd 5e-5; RMSprop-TF alpha 0.9,
 * eps 1e-3, momentum 0.9, wd 1e-5 (GPUNet); AdamW betas (0.9, 0.999), eps 1e-8,
 * wd 0.05. */
void gn_optim_defaults(gn_optim_kind kind, gn_optim_config *c);
const char *gn_optim_name(gn_optim_kind kind); /* "sgd", "rmsprop-tf", "adamw" */
/* Parse a name (as above); -1 if unknown. */
int gn_optim_parse(const char *name, gn_optim_kind *out);

typedef struct gn_optim gn_optim;

/* An optimizer for n scalars (all decayed until gn_optim_no_decay says otherwise). */
int gn_optim_create(const gn_optim_config *c, size_t n, gn_optim **out, gn_error *err);
/* One optimizer over the trainable part of a network's arena, with no_decay ranges
 * taken from its gn_params. */
int gn_optim_create_for_net(const gn_optim_config *c, gn_net *net, gn_optim **out, gn_error *err);
void gn_optim_free(gn_optim *o);
/* Exclude scalars [off, off+count) from weight decay. */
int gn_optim_no_decay(gn_optim *o, size_t off, size_t count, gn_error *err);

/* One update of params[0..n) from grads[0..n) with learning rate lr (>= 0, finite). */
int gn_optim_step(gn_optim *o, float *params, const float *grads, double lr, gn_error *err);

size_t gn_optim_size(const gn_optim *o);
int64_t gn_optim_steps(const gn_optim *o); /* updates done */
void gn_optim_set_steps(gn_optim *o, int64_t steps);
/* State vectors (each of gn_optim_size floats), for checkpoints:
 *   SGD: "momentum_buffer" (if momentum > 0); RMSprop-TF: "square_avg",
 *   "momentum_buffer" (if momentum > 0); AdamW: "exp_avg", "exp_avg_sq". */
int gn_optim_state_count(const gn_optim *o);
const char *gn_optim_state_name(const gn_optim *o, int i);
float *gn_optim_state(gn_optim *o, int i);

/* ------------------------------------------------------------------ LR schedule */
typedef enum { GN_SCHED_COSINE = 0, GN_SCHED_STEP, GN_SCHED_CONSTANT } gn_sched_kind;

typedef struct {
    gn_sched_kind kind;
    double lr;            /* peak / base learning rate */
    double min_lr;        /* cosine end value */
    double warmup_epochs; /* W >= 0 (may be fractional with per_step) */
    double warmup_lr;     /* lr at t = 0 of the warm-up */
    double decay_epochs;  /* step: decay every this many epochs (> 0) */
    double gamma;         /* step: factor */
    int epochs;           /* E, total */
    int steps_per_epoch;  /* >= 1 */
    bool per_step;        /* t advances per step (else per epoch) */
} gn_lr_schedule;

const char *gn_sched_name(gn_sched_kind k); /* "cosine", "step", "constant" */
int gn_sched_parse(const char *name, gn_sched_kind *out);
/* Check the fields (one-line error naming the field). */
int gn_lr_schedule_check(const gn_lr_schedule *s, gn_error *err);
/* Learning rate for step `step` (0-based) of epoch `epoch` (0-based). */
double gn_lr_at(const gn_lr_schedule *s, int epoch, int step);

/* ------------------------------------------------------------------ EMA */
typedef struct gn_ema gn_ema;

/* Shadow of n floats starting as a copy of init; decay in [0, 1). */
int gn_ema_create(double decay, const float *init, size_t n, gn_ema **out, gn_error *err);
void gn_ema_free(gn_ema *e);
void gn_ema_update(gn_ema *e, const float *values);
float *gn_ema_values(gn_ema *e);
size_t gn_ema_size(const gn_ema *e);
double gn_ema_decay(const gn_ema *e);

/* ------------------------------------------------------------------ loss */
/* Loss and gradient as in the design note.  z, t: n x k row-major (t may be NULL
 * when alpha == 0); labels in [0, k); dz (n x k, may be NULL) receives dL/dz.
 * Fails on bad arguments or a label out of range. */
int gn_kd_loss(const float *z, const float *t, const int32_t *labels, int n, int k, float smoothing, float alpha,
               float temperature, double *loss, float *dz, gn_error *err);

/* Whether each row's label is among the top-1 / top-k logits (ties: a class with the
 * same logit and a smaller index ranks first).  Returns the rank of the label
 * (0 = arg max) for row i. */
int gn_label_rank(const float *logits_row, int k, int32_t label);

#endif
