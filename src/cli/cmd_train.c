/*
 * cmd_train.c — `gpunas train` and `gpunas eval`.
 *
 * train: parse options into a gn_train_config, load the data set (train and test
 * splits), apply the data's channels/classes and --res to the config, print what
 * will run, then call gn_train_run with two callbacks: a progress bar redrawn in
 * place with \r (at most 10 times a second) when stdout is a terminal, or a plain
 * line every 30 s when it is not (a log file), and one summary line per epoch.
 * The library writes OUT/config.json, OUT/metrics.jsonl, OUT/checkpoint.safetensors
 * (every epoch) and OUT/weights.safetensors (final; the EMA weights with --ema).
 *
 * eval: the weights file records the arch it was trained with (metadata "arch"),
 * so the resolution comes from there unless --res is given; prints loss, top-1,
 * top-5 and the confusion matrix with class names.
 *
 * Errors: one line "gpunas train: ..." on stderr, exit 1 (2 for bad usage).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "gpunas/arch.h"
#include "gpunas/data.h"
#include "gpunas/safetensors.h"
#include "gpunas/train.h"
#include "util/clock.h"

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Train and test splits of a data set; test may come back NULL (a folder without
 * a test/ sub-folder). */
static int load_data(const char *cmd, const char *kind, const char *dir, bool want_train, gn_dataset **train,
                     gn_dataset **test)
{
    gn_error err;
    *train = *test = NULL;
    if (want_train && gn_dataset_load(kind, dir, "train", 0, train, &err)) {
        cli_error(cmd, "%s", err.msg);
        return -1;
    }
    if (strcmp(kind, "folder") == 0) {
        char p[4096];
        snprintf(p, sizeof p, "%s/test", dir ? dir : ".");
        if (!is_dir(p)) {
            if (!want_train) {
                cli_error(cmd, "%s: no test/ sub-folder to evaluate on", dir ? dir : ".");
                return -1;
            }
            return 0;
        }
    }
    if (gn_dataset_load(kind, dir, "test", 0, test, &err)) {
        cli_error(cmd, "%s", err.msg);
        gn_dataset_free(*train);
        *train = NULL;
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------ progress */
typedef struct {
    bool tty;
    double last_draw;
    int width; /* of the last drawn bar, to clear it */
    const char *cmd;
} ui;


static void fmt_time(double s, char *buf, size_t n)
{
    if (!(s >= 0) || s > 1e7)
        s = 0;
    int t = (int)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%d:%02d", t / 60, t % 60);
}

static int on_progress(void *user, const gn_train_progress *p)
{
    ui *u = user;
    double t = gn__now_s();
    bool last = p->step == p->steps;
    if (u->tty) {
        if (!last && t - u->last_draw < 0.1)
            return 0;
        u->last_draw = t;
        char eta[32];
        fmt_time(p->eta_s, eta, sizeof eta);
        const int W = 24;
        int fill = (int)((double)p->step / p->steps * W);
        char bar[32];
        for (int i = 0; i < W; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[W] = 0;
        u->width = printf("\repoch %d/%d [%s] %d/%d  loss %.4f  acc %.2f%%  %.0f img/s  ETA %s ", p->epoch + 1,
                          p->epochs, bar, p->step, p->steps, p->loss, 100 * p->acc, p->images_per_s, eta);
        fflush(stdout);
    } else {
        if (u->last_draw == 0)
            u->last_draw = t;
        if (t - u->last_draw < 30 || last)
            return 0;
        u->last_draw = t;
        char eta[32];
        fmt_time(p->eta_s, eta, sizeof eta);
        printf("epoch %d/%d step %d/%d  loss %.4f  acc %.2f%%  %.0f img/s  ETA %s\n", p->epoch + 1, p->epochs, p->step,
               p->steps, p->loss, 100 * p->acc, p->images_per_s, eta);
        fflush(stdout);
    }
    return 0;
}

static int on_epoch(void *user, const gn_epoch_metrics *m)
{
    ui *u = user;
    if (u->tty && u->width > 0) {
        printf("\r%*s\r", u->width, "");
        u->width = 0;
    }
    u->last_draw = 0;
    printf("epoch %3d  lr %.5f  train loss %.4f acc %.2f%%", m->epoch, m->lr, m->train_loss, 100 * m->train_acc);
    if (m->has_val)
        printf("  val loss %.4f top1 %.2f%%", m->val_loss, 100 * m->val_top1);
    if (m->has_ema)
        printf("  ema top1 %.2f%%", 100 * m->ema_val_top1);
    printf("  %.1f s  %.0f img/s", m->time_s, m->images_per_s);
    if (m->threads_min == m->threads_max)
        printf("  %d thread%s\n", m->threads_min, m->threads_min == 1 ? "" : "s");
    else
        printf("  %d-%d threads (following the free cores)\n", m->threads_min, m->threads_max);
    if (m->has_test)
        printf("test: loss %.4f  top-1 %.2f%%  top-5 %.2f%%\n", m->test_loss, 100 * m->test_top1, 100 * m->test_top5);
    fflush(stdout);
    return 0;
}

/* ------------------------------------------------------------------ train */
/* --profile-ops: the steps' phases, then the ops by kind (ms per step, share of the steps). */
static void print_profile(const gn_train_profile *p)
{
    if (p->steps < 1 || !(p->total_s > 0))
        return;
    double n = (double)p->steps, T = p->total_s;
    printf("profile: %lld steps, %.3f ms per step\n", (long long)p->steps, 1e3 * T / n);
    const struct {
        const char *name;
        double s;
    } ph[] = {{"data (loader wait)", p->data_s}, {"forward (+copies)", p->fwd_s}, {"loss (host)", p->loss_s},
              {"backward (+copy)", p->bwd_s},    {"optimizer (+EMA)", p->optim_s},
              {"other", T - p->data_s - p->fwd_s - p->loss_s - p->bwd_s - p->optim_s}};
    for (size_t i = 0; i < sizeof ph / sizeof ph[0]; i++)
        printf("  %-20s %9.3f ms %5.1f%%\n", ph[i].name, 1e3 * ph[i].s / n, 100 * ph[i].s / T);
    printf("  %-10s %10s %6s %9s %10s %6s %9s\n", "op", "fwd ms", "%", "calls", "bwd ms", "%", "calls");
    for (int k = 0; k < GN_OPK_N; k++) {
        if (!p->ops.fwd_n[k] && !p->ops.bwd_n[k])
            continue;
        printf("  %-10s %10.3f %5.1f%% %9.1f %10.3f %5.1f%% %9.1f\n", gn_op_kind_name(k), 1e3 * p->ops.fwd_s[k] / n,
               100 * p->ops.fwd_s[k] / T, p->ops.fwd_n[k] / n, 1e3 * p->ops.bwd_s[k] / n, 100 * p->ops.bwd_s[k] / T,
               p->ops.bwd_n[k] / n);
    }
}

static void train_usage(FILE *f)
{
    fprintf(f,
            "usage: gpunas train CONFIG.json [options]\n"
            "  data:   --dataset fashion-mnist|mnist|cifar10|folder (fashion-mnist)  --data DIR\n"
            "          --val-fraction F (0.1)  --subset N  --split-seed S (42)  --res R (config's)\n"
            "          --crop-pad N  --no-flip  --erase P (0.25)  --prefetch N (2)\n"
            "  recipe: --epochs N (10)  --batch B (128)  --optimizer sgd|rmsprop-tf|adamw (sgd)\n"
            "          --lr X (0.1)  --momentum X  --no-nesterov  --eps X  --wd X\n"
            "          --schedule cosine|step|constant (cosine)  --warmup E (1)  --warmup-lr X (0)\n"
            "          --warmup-per-epoch  --min-lr X (0)  --decay-epochs E (2.4)  --gamma X (0.97)\n"
            "          --smoothing X (0.1)  --ema DECAY (off)  --no-dropout  --no-drop-path\n"
            "          --teacher CFG --teacher-weights W [--kd-alpha A (0.5)] [--kd-temp T (1)]\n"
            "          --seed S (1)  --same-pad\n"
            "  run:    --out DIR (runs/<config name>)  --resume  --threads N (the free cores)\n"
            "          --backend dnnl|ref  --stop-after-epoch N  --profile-ops (where the steps' time goes)\n"
            "writes OUT/config.json, OUT/metrics.jsonl, OUT/checkpoint.safetensors (every epoch),\n"
            "OUT/weights.safetensors (final weights; the EMA weights with --ema)\n");
}

#define NEXT() (i + 1 < argc ? argv[++i] : NULL)

/* The options train and eval share: the config, the data, the backend, threads,
 * resolution and the padding fix. */
typedef struct {
    const char *config, *data, *dataset, *backend;
    int res, threads;
    bool same_pad;
} common_cli;

/* Parse argv[*pi] if it is a shared option or the CONFIG argument: 1 consumed (with
 * its value; *pi advanced), 0 not one of them, -1 bad (message printed; exit 2). */
static int parse_common(const char *cmd, int argc, char **argv, int *pi, common_cli *o)
{
    int i = *pi;
    const char *a = argv[i], *v = NULL;
    int rc = 1;
    if (strcmp(a, "--data") == 0 || strcmp(a, "--dataset") == 0 || strcmp(a, "--backend") == 0) {
        if (!(v = NEXT())) {
            cli_error(cmd, "option %s: missing value", a);
            return -1;
        }
        if (a[6] == 0)
            o->data = v;
        else if (a[6] == 's')
            o->dataset = v;
        else if (strcmp(v, "dnnl") && strcmp(v, "ref")) {
            cli_error(cmd, "option --backend: '%s' is not one of dnnl, ref", v);
            return -1;
        } else
            o->backend = v;
    } else if (strcmp(a, "--res") == 0) {
        rc = cli_parse_int(cmd, a, NEXT(), 1, 4096, &o->res) ? -1 : 1;
    } else if (strcmp(a, "--threads") == 0) {
        rc = cli_parse_int(cmd, a, NEXT(), 1, 4096, &o->threads) ? -1 : 1;
    } else if (strcmp(a, "--same-pad") == 0) {
        o->same_pad = true;
    } else if (a[0] == '-' && a[1]) {
        return 0;
    } else if (!o->config) {
        o->config = a;
    } else {
        cli_error(cmd, "unexpected argument '%s' (one CONFIG.json expected)", a);
        return -1;
    }
    *pi = i;
    return rc;
}

typedef struct {
    common_cli in;
    const char *teacher, *out;
    bool no_nesterov;
    double momentum, eps, wd; /* NAN: optimizer default */
} train_cli;

int cmd_train(int argc, char **argv)
{
    const char *cmd = "train";
    gn_train_config c;
    gn_train_defaults(&c);
    train_cli o = {.in = {.dataset = "fashion-mnist"}, .momentum = NAN, .eps = NAN, .wd = NAN};
    int rc = 1;
    bool profile_ops = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        double d;
        int n, k = parse_common(cmd, argc, argv, &i, &o.in);
        if (k < 0)
            return 2;
        if (k > 0)
            continue;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            train_usage(stdout);
            return 0;
        } else if (strcmp(a, "--epochs") == 0) {
            if (cli_parse_int(cmd, a, NEXT(), 1, 100000, &c.epochs))
                return 2;
        } else if (strcmp(a, "--batch") == 0) {
            if (cli_parse_int(cmd, a, NEXT(), 2, 1 << 20, &c.batch))
                return 2;
        } else if (strcmp(a, "--lr") == 0) {
            if (cli_parse_double(cmd, a, NEXT(), 0, 1e300, &c.lr))
                return 2;
        } else if (strcmp(a, "--optimizer") == 0) {
            const char *v = NEXT();
            gn_optim_kind k;
            if (!v)
                goto missing;
            if (gn_optim_parse(v, &k)) {
                cli_error(cmd, "option --optimizer: '%s' is not one of sgd, rmsprop-tf, adamw", v);
                return 2;
            }
            gn_optim_defaults(k, &c.optim);
        } else if (strcmp(a, "--momentum") == 0) {
            if (cli_parse_double(cmd, a, NEXT(), 0, 0.999999, &o.momentum))
                return 2;
        } else if (strcmp(a, "--no-nesterov") == 0) {
            o.no_nesterov = true;
        } else if (strcmp(a, "--eps") == 0) {
            if (cli_parse_double(cmd, a, NEXT(), 1e-30, 1, &o.eps))
                return 2;
        } else if (strcmp(a, "--wd") == 0) {
            if (cli_parse_double(cmd, a, NEXT(), 0, 10, &o.wd))
                return 2;
        } else if (strcmp(a, "--schedule") == 0) {
            const char *v = NEXT();
            if (!v)
                goto missing;
            if (gn_sched_parse(v, &c.schedule)) {
                cli_error(cmd, "option --schedule: '%s' is not one of cosine, step, constant", v);
                return 2;
            }
        } else if (strcmp(a, "--warmup") == 0) {
            if (cli_parse_double(cmd, a, NEXT(), 0, 1e6, &c.warmup_epochs))
                return 2;
        } else if (strcmp(a, "--warmup-lr") == 0) {
            if (cli_parse_double(cmd, a, NEXT(), 0, 1e300, &c.warmup_lr))
                return 2;
        } else if (strcmp(a, "--warmup-per-epoch") == 0) {
            c.warmup_per_step = false;
        } else if (strcmp(a, "--min-lr") == 0) {
            if (cli_parse_double(cmd, a, NEXT(), 0, 1e300, &c.min_lr))
                return 2;
        } else if (strcmp(a, "--decay-epochs") == 0) {
            if (cli_parse_double(cmd, a, NEXT(), 1e-9, 1e6, &c.decay_epochs))
                return 2;
        } else if (strcmp(a, "--gamma") == 0) {
            if (cli_parse_double(cmd, a, NEXT(), 0, 1e300, &c.decay_gamma))
                return 2;
        } else if (strcmp(a, "--smoothing") == 0) {
            if (cli_parse_double(cmd, a, NEXT(), 0, 0.999, &d))
                return 2;
            c.smoothing = (float)d;
        } else if (strcmp(a, "--ema") == 0) {
            if (cli_parse_double(cmd, a, NEXT(), 0, 0.9999999, &c.ema_decay))
                return 2;
        } else if (strcmp(a, "--no-dropout") == 0) {
            c.dropout = false;
        } else if (strcmp(a, "--no-drop-path") == 0) {
            c.drop_path = false;
        } else if (strcmp(a, "--teacher") == 0) {
            if (!(o.teacher = NEXT()))
                goto missing;
        } else if (strcmp(a, "--teacher-weights") == 0) {
            if (!(c.teacher_weights = NEXT()))
                goto missing;
        } else if (strcmp(a, "--kd-alpha") == 0) {
            if (cli_parse_double(cmd, a, NEXT(), 0, 1, &d))
                return 2;
            c.kd_alpha = (float)d;
        } else if (strcmp(a, "--kd-temp") == 0) {
            if (cli_parse_double(cmd, a, NEXT(), 1e-3, 1e3, &d))
                return 2;
            c.kd_temp = (float)d;
        } else if (strcmp(a, "--seed") == 0) {
            if (cli_parse_u64(cmd, a, NEXT(), &c.seed))
                return 2;
        } else if (strcmp(a, "--split-seed") == 0) {
            if (cli_parse_u64(cmd, a, NEXT(), &c.split_seed))
                return 2;
        } else if (strcmp(a, "--out") == 0) {
            if (!(o.out = NEXT()))
                goto missing;
        } else if (strcmp(a, "--resume") == 0) {
            c.resume = true;
        } else if (strcmp(a, "--val-fraction") == 0) {
            if (cli_parse_double(cmd, a, NEXT(), 0, 0.99, &c.val_fraction))
                return 2;
        } else if (strcmp(a, "--subset") == 0) {
            if (cli_parse_int(cmd, a, NEXT(), 1, 1 << 30, &c.subset))
                return 2;
        } else if (strcmp(a, "--crop-pad") == 0) {
            if (cli_parse_int(cmd, a, NEXT(), 0, 4096, &c.crop_pad))
                return 2;
        } else if (strcmp(a, "--no-flip") == 0) {
            c.hflip = 0;
        } else if (strcmp(a, "--erase") == 0) {
            if (cli_parse_double(cmd, a, NEXT(), 0, 1, &d))
                return 2;
            c.erase_prob = (float)d;
        } else if (strcmp(a, "--prefetch") == 0) {
            if (cli_parse_int(cmd, a, NEXT(), 0, 64, &c.prefetch))
                return 2;
        } else if (strcmp(a, "--profile-ops") == 0) {
            profile_ops = true;
        } else if (strcmp(a, "--stop-after-epoch") == 0) {
            if (cli_parse_int(cmd, a, NEXT(), 1, 100000, &n))
                return 2;
            c.stop_after_epoch = n;
        } else {
            cli_error(cmd, "unknown option '%s' (see gpunas train --help)", a);
            return 2;
        }
        continue;
    missing:
        cli_error(cmd, "option %s: missing value", a);
        return 2;
    }
    if (!o.in.config) {
        cli_error(cmd, "missing CONFIG.json (see gpunas train --help)");
        return 2;
    }
    c.backend = o.in.backend;
    c.threads = o.in.threads;
    if (!isnan(o.momentum))
        c.optim.momentum = (float)o.momentum;
    if (o.no_nesterov)
        c.optim.nesterov = false;
    if (!isnan(o.eps))
        c.optim.eps = (float)o.eps;
    if (!isnan(o.wd))
        c.optim.weight_decay = (float)o.wd;
    if ((o.teacher != NULL) != (c.teacher_weights != NULL)) {
        cli_error(cmd, "--teacher and --teacher-weights go together");
        return 2;
    }

    char outbuf[4096];
    if (!o.out) {
        const char *base = strrchr(o.in.config, '/');
        base = base ? base + 1 : o.in.config;
        size_t bl = strlen(base);
        if (bl > 5 && strcmp(base + bl - 5, ".json") == 0)
            bl -= 5;
        snprintf(outbuf, sizeof outbuf, "runs/%.*s", (int)bl, base);
        o.out = outbuf;
    }
    c.out_dir = o.out;

    gn_error err;
    gn_arch *arch = NULL, *tarch = NULL;
    gn_dataset *train = NULL, *test = NULL;
    if (gn_arch_load(o.in.config, &arch, &err)) {
        cli_error(cmd, "%s", err.msg);
        goto done;
    }
    if (o.in.same_pad) {
        arch->same_pad_fix = true;
        if (gn_arch_resolve(arch, &err)) {
            cli_error(cmd, "%s", err.msg);
            goto done;
        }
    }
    if (o.teacher) {
        if (gn_arch_load(o.teacher, &tarch, &err)) {
            cli_error(cmd, "%s", err.msg);
            goto done;
        }
        c.teacher_arch = tarch;
    }
    if (load_data(cmd, o.in.dataset, o.in.data, true, &train, &test))
        goto done;
    /* what will run, for the header: the arch as the trainer will set it up */
    int res = o.in.res ? o.in.res : arch->resolution;
    if (gn_arch_set_in_channels(arch, train->c, &err) || gn_arch_set_classes(arch, train->classes, &err) ||
        gn_arch_set_resolution(arch, res, &err)) {
        cli_error(cmd, "%s", err.msg);
        goto done;
    }
    c.arch = arch;
    c.resolution = res;
    c.train_set = train;
    c.test_set = test;
    int nval = (int)floor(train->n * c.val_fraction + 0.5);
    printf("training %s: %lld params, %.1f MMACs at %dx%d; %s: %d train (%d used), %d validation, %d test images\n",
           o.in.config, (long long)arch->params, arch->macs / 1e6, res, res, train->source, train->n - nval,
           c.subset ? c.subset : train->n - nval, nval, test ? test->n : 0);
    printf("recipe: %d epochs, batch %d, %s lr %g (%s, warm-up %g), wd %g, smoothing %g%s%s; out %s\n", c.epochs,
           c.batch, gn_optim_name(c.optim.kind), c.lr, gn_sched_name(c.schedule), c.warmup_epochs,
           c.optim.weight_decay, c.smoothing, c.ema_decay > 0 ? ", EMA" : "", tarch ? ", distillation" : "", o.out);
    fflush(stdout);

    ui u = {.tty = isatty(STDOUT_FILENO) != 0, .cmd = cmd};
    gn_train_callbacks cb = {.user = &u, .progress = on_progress, .epoch_end = on_epoch};
    gn_train_profile prof;
    memset(&prof, 0, sizeof prof);
    if (profile_ops)
        c.profile = &prof;
    gn_train_result r;
    if (gn_train_run(&c, &cb, &r, &err)) {
        if (u.tty && u.width > 0)
            printf("\r%*s\r", u.width, "");
        fflush(stdout);
        cli_error(cmd, "%s", err.msg);
        goto done;
    }
    if (r.stopped_early)
        printf("stopped after epoch %d of %d (resume with --resume); checkpoint in %s\n", r.epochs_done, c.epochs,
               o.out);
    else
        printf("done: %d epochs in %.1f s; final weights%s: %s/weights.safetensors\n", r.epochs_done, r.total_time_s,
               c.ema_decay > 0 ? " (EMA)" : "", o.out);
    if (profile_ops)
        print_profile(&prof);
    rc = 0;
done:
    gn_arch_free(arch);
    gn_arch_free(tarch);
    gn_dataset_free(train);
    gn_dataset_free(test);
    return rc;
}

/* ------------------------------------------------------------------ eval */
static void eval_usage(FILE *f)
{
    fprintf(f, "usage: gpunas eval CONFIG.json --weights W [--dataset fashion-mnist|mnist|cifar10|folder]\n"
               "                  [--data DIR] [--res R] [--batch B (256)] [--threads N] [--backend dnnl|ref]\n"
               "                  [--same-pad]\n"
               "prints test loss, top-1, top-5 and the confusion matrix (rows: true class)\n");
}

/* Resolution recorded in a weights file's "arch" metadata (0 if none). */
static int weights_resolution(const char *path, gn_error *err)
{
    gn_st_file *f;
    if (gn_st_open(path, &f, err))
        return -1;
    const char *text = gn_st_meta(f, "arch");
    int res = 0;
    gn_arch *a;
    if (text && gn_arch_parse(text, path, &a, err) == 0) {
        res = a->resolution;
        gn_arch_free(a);
    }
    gn_st_close(f);
    return res;
}

int cmd_eval(int argc, char **argv)
{
    const char *cmd = "eval";
    common_cli in = {.dataset = "fashion-mnist", .backend = "dnnl"};
    const char *weights = NULL;
    int batch = 256;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int k = parse_common(cmd, argc, argv, &i, &in);
        if (k < 0)
            return 2;
        if (k > 0)
            continue;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            eval_usage(stdout);
            return 0;
        } else if (strcmp(a, "--weights") == 0) {
            if (!(weights = NEXT())) {
                cli_error(cmd, "option %s: missing value", a);
                return 2;
            }
        } else if (strcmp(a, "--batch") == 0) {
            if (cli_parse_int(cmd, a, NEXT(), 1, 1 << 20, &batch))
                return 2;
        } else {
            cli_error(cmd, "unknown option '%s' (see gpunas eval --help)", a);
            return 2;
        }
    }
    const char *config = in.config, *data = in.data, *dataset = in.dataset, *backend = in.backend;
    int res = in.res, threads = in.threads;
    bool same_pad = in.same_pad;
    if (!config || !weights) {
        cli_error(cmd, "%s (see gpunas eval --help)", !config ? "missing CONFIG.json" : "missing --weights W");
        return 2;
    }
    int rc = 1;
    gn_error err;
    gn_arch *arch = NULL;
    gn_dataset *train = NULL, *test = NULL;
    gn_backend *be = NULL;
    gn_net *net = NULL;
    gn_dataset_view v = {0};
    gn_loader *l = NULL;
    gn_eval_result er = {0};
    if (gn_arch_load(config, &arch, &err)) {
        cli_error(cmd, "%s", err.msg);
        goto done;
    }
    arch->same_pad_fix = same_pad;
    if (!res) {
        res = weights_resolution(weights, &err);
        if (res < 0) {
            cli_error(cmd, "%s", err.msg);
            goto done;
        }
        if (!res)
            res = arch->resolution;
    }
    if (load_data(cmd, dataset, data, false, &train, &test))
        goto done;
    if (gn_arch_resolve(arch, &err) || gn_arch_set_in_channels(arch, test->c, &err) ||
        gn_arch_set_classes(arch, test->classes, &err) || gn_arch_set_resolution(arch, res, &err) ||
        gn_backend_create(backend, &be, &err) || gn_backend_set_threads(be, threads, &err) ||
        gn_net_create(arch, be, &net, &err) || gn_net_load(net, weights, &err)) {
        cli_error(cmd, "%s", err.msg);
        goto done;
    }
    gn_augment aug;
    gn_augment_defaults(test, &aug);
    aug.resolution = res;
    aug.augment = false;
    if (gn_view_all(test, &v, &err) || gn_loader_create(&v, batch, &aug, false, false, 0, 2, &l, &err) ||
        gn_evaluate(net, l, true, &er, &err)) {
        cli_error(cmd, "%s", err.msg);
        goto done;
    }
    printf("%s with %s on %s (%lld images at %dx%d)\n", config, weights, test->source, (long long)er.n, res, res);
    printf("test: loss %.4f  top-1 %.2f%%  top-5 %.2f%%\n", er.loss, 100 * er.top1, 100 * er.top5);
    printf("confusion (rows: true class, columns: predicted class):\n");
    const int K = er.classes;
    int namew = 5;
    for (int k = 0; k < K; k++)
        if (test->class_names && test->class_names[k] && (int)strlen(test->class_names[k]) > namew)
            namew = (int)strlen(test->class_names[k]);
    if (namew > 24)
        namew = 24;
    printf("%*s", namew + 5, "");
    for (int j = 0; j < K; j++)
        printf(" %6d", j);
    printf("   recall\n");
    for (int k = 0; k < K; k++) {
        const char *name = test->class_names && test->class_names[k] ? test->class_names[k] : "";
        printf("%3d %-*.*s ", k, namew, namew, name);
        int64_t row = 0;
        for (int j = 0; j < K; j++) {
            printf(" %6lld", (long long)er.confusion[(size_t)k * K + j]);
            row += er.confusion[(size_t)k * K + j];
        }
        printf("   %5.1f%%\n", row ? 100.0 * er.confusion[(size_t)k * K + k] / row : 0.0);
    }
    rc = 0;
done:
    gn_eval_result_free(&er);
    gn_loader_free(l);
    gn_view_free(&v);
    gn_net_free(net);
    gn_backend_destroy(be);
    gn_arch_free(arch);
    gn_dataset_free(train);
    gn_dataset_free(test);
    return rc;
}
