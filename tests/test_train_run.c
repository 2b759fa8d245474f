/*
 * test_train_run.c — gn_train_run end to end on a tiny network and synthetic data
 * (gn_dataset_from_memory: 4 classes, a bright quadrant per class plus noise, 8x8):
 *   - it learns (test accuracy >= 0.9) and reports progress once per step;
 *   - resume: a 3-epoch run stopped after epoch 1 and resumed ends with weights,
 *     checkpoint and metrics lines identical to the uninterrupted run (dnnl, 2
 *     threads, RMSprop-TF with momentum, EMA, dropout and drop-path on);
 *   - a non-finite loss (lr x 1e30 from epoch 2) stops with a one-line error and
 *     leaves the epoch-1 checkpoint byte-identical;
 *   - truncated / corrupted checkpoints and changed options are refused with one
 *     line naming the file (and the option);
 *   - distillation from a teacher net runs and changes the result;
 *   - option errors are one line.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpunas/rng.h"
#include "gpunas/train.h"
#include "testutil.h"

static const char *TINY =
    "[{\"layer_type\":\"data\",\"img_resolution\":8,\"distill\":false},"
    "{\"layer_type\":\"head\",\"num_in_channels\":1,\"num_out_channels\":8,\"act\":\"relu\"},"
    "{\"layer_type\":\"irb\",\"num_in_channels\":8,\"num_out_channels\":8,\"stride\":1,\"expansion\":2,"
    "\"kernel_size\":3,\"act\":\"swish\",\"use_se\":true,\"stage\":1},"
    "{\"layer_type\":\"tail\",\"num_in_channels\":8,\"num_out_channels\":16,\"num_classes\":4}]";

static gn_dataset *synth(int n, uint64_t seed)
{
    uint8_t *px = malloc((size_t)n * 64);
    int32_t *lab = malloc((size_t)n * sizeof *lab);
    gn_rng r;
    gn_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        int c = (int)gn_rng_below(&r, 4);
        lab[i] = c;
        for (int y = 0; y < 8; y++)
            for (int x = 0; x < 8; x++) {
                int q = (y >= 4) * 2 + (x >= 4);
                double v = (q == c ? 170 : 50) + 40 * gn_rng_normal(&r);
                px[i * 64 + y * 8 + x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    }
    gn_dataset *d;
    gn_error err;
    if (gn_dataset_from_memory(n, 1, 8, 8, 4, px, lab, &d, &err))
        fail_msg("%s", err.msg);
    return d;
}

typedef struct {
    gn_arch *arch;
    gn_dataset *train, *test;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    gn_error err;
    if (gn_arch_parse(TINY, "tiny.json", &f->arch, &err))
        fail_msg("%s", err.msg);
    f->train = synth(160, 1);
    f->test = synth(64, 2);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    gn_arch_free(f->arch);
    gn_dataset_free(f->train);
    gn_dataset_free(f->test);
    free(f);
    return 0;
}

static void base_config(fixture *f, gn_train_config *c)
{
    gn_train_defaults(c);
    c->arch = f->arch;
    c->train_set = f->train;
    c->test_set = f->test;
    c->threads = 2;
    c->epochs = 3;
    c->batch = 16;
    c->val_fraction = 0.2;
    c->hflip = 0; /* a flip would swap the classes */
    c->lr = 0.05;
    c->warmup_epochs = 0.5;
}

static char *fresh_dir(const char *name)
{
    char *d = tu_tmp_path(name);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    assert_int_equal(system(cmd), 0);
    return d;
}

static char *file_in(const char *dir, const char *name, size_t *len)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return tu_read_file(p, len);
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

static int progress_calls;
static int on_progress(void *user, const gn_train_progress *p)
{
    progress_calls++;
    assert_true(p->step >= 1 && p->step <= p->steps);
    assert_true(isfinite(p->loss) && p->lr >= 0);
    int *cancel_at = user;
    return cancel_at && progress_calls == *cancel_at;
}

static void test_learns_and_reports(void **state)
{
    fixture *f = *state;
    gn_train_config c;
    base_config(f, &c);
    c.epochs = 8;
    c.lr = 0.1;
    c.erase_prob = 0;
    gn_train_callbacks cb = {.progress = on_progress};
    gn_train_result res;
    gn_error err;
    progress_calls = 0;
    if (gn_train_run(&c, &cb, &res, &err)) /* out_dir NULL: proxy training, no files */
        fail_msg("%s", err.msg);
    fprintf(stderr, "tiny net, 8 epochs: val %.3f test %.3f (%lld params, %.2f s)\n", res.val_top1, res.test_top1,
            (long long)res.params, res.total_time_s);
    assert_int_equal(res.epochs_done, 8);
    assert_int_equal(progress_calls, 8 * (128 / 16)); /* 160 - 32 val = 128 images, drop_last */
    assert_true(res.test_top1 >= 0.9);
    assert_true(res.val_top1 >= 0.8);
    assert_true(res.last.has_test && res.last.test_top5 == 1.0);

    /* cancellation from the progress callback */
    int cancel_at = 3;
    cb.user = &cancel_at;
    progress_calls = 0;
    assert_int_not_equal(gn_train_run(&c, &cb, &res, &err), 0);
    assert_non_null(strstr(err.msg, "cancelled"));
}

/* gpunas train --profile-ops: every step counted, each node kind called once per node
 * per step in each pass (the tiny net: 7 convs, 5 BNs, ...), op times inside their
 * phases, and the training's numbers unchanged by the timing. */
static void test_op_profile(void **state)
{
    fixture *f = *state;
    gn_train_config c;
    base_config(f, &c);
    c.epochs = 2;
    c.threads = 1;
    gn_train_result plain, timed;
    gn_error err;
    if (gn_train_run(&c, NULL, &plain, &err))
        fail_msg("%s", err.msg);
    gn_train_profile p;
    memset(&p, 0, sizeof p);
    c.profile = &p;
    if (gn_train_run(&c, NULL, &timed, &err))
        fail_msg("%s", err.msg);
    assert_true(timed.test_top1 == plain.test_top1 && timed.val_top1 == plain.val_top1);
    assert_true(timed.last.train_loss == plain.last.train_loss);
    const int64_t S = 2 * (128 / 16);
    assert_int_equal(p.steps, S);
    /* head conv; irb conv_pw, conv_dw, SE reduce and expand, conv_pwl; tail conv */
    static const int per_step[GN_OPK_N] = {[GN_OPK_CONV] = 7, [GN_OPK_BN] = 5,   [GN_OPK_GAP] = 2,
                                           [GN_OPK_CHSCALE] = 1, [GN_OPK_ADD] = 1, [GN_OPK_LINEAR] = 1,
                                           [GN_OPK_DROPOUT] = 1, [GN_OPK_DROPPATH] = 1};
    double fwd_ops = 0, bwd_ops = 0;
    for (int k = 0; k < GN_OPK_N; k++) {
        if (k != GN_OPK_ACT) {
            assert_int_equal(p.ops.fwd_n[k], S * per_step[k]);
            assert_int_equal(p.ops.bwd_n[k], S * per_step[k]);
        }
        assert_true(p.ops.fwd_s[k] >= 0 && p.ops.bwd_s[k] >= 0);
        fwd_ops += p.ops.fwd_s[k];
        bwd_ops += p.ops.bwd_s[k];
    }
    assert_true(p.ops.fwd_n[GN_OPK_ACT] > 0 && p.ops.fwd_n[GN_OPK_ACT] % S == 0);
    assert_string_equal(gn_op_kind_name(GN_OPK_DROPPATH), "droppath");
    assert_true(fwd_ops > 0 && fwd_ops <= p.fwd_s);
    assert_true(bwd_ops > 0 && bwd_ops <= p.bwd_s);
    assert_true(p.data_s + p.fwd_s + p.loss_s + p.bwd_s + p.optim_s <= p.total_s * (1 + 1e-9));
    fprintf(stderr, "op profile: %lld steps, %.3f ms per step, ops fwd %.3f / bwd %.3f ms\n", (long long)p.steps,
            1e3 * p.total_s / S, 1e3 * fwd_ops / S, 1e3 * bwd_ops / S);
}

static void resume_config(fixture *f, gn_train_config *c, const char *dir)
{
    base_config(f, c);
    gn_optim_defaults(GN_OPT_RMSPROP_TF, &c->optim);
    c->lr = 0.01;
    c->ema_decay = 0.9;
    c->out_dir = dir;
}

static void test_resume_bitwise(void **state)
{
    fixture *f = *state;
    gn_error err;
    gn_train_result ra, rb;
    char *da = fresh_dir("resume-a"), *db = fresh_dir("resume-b");
    gn_train_config c;
    resume_config(f, &c, da);
    if (gn_train_run(&c, NULL, &ra, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(ra.epochs_done, 3);

    resume_config(f, &c, db);
    c.stop_after_epoch = 1;
    if (gn_train_run(&c, NULL, &rb, &err))
        fail_msg("%s", err.msg);
    assert_true(rb.stopped_early);
    assert_int_equal(rb.epochs_done, 1);
    size_t l1;
    char *w1 = file_in(db, "weights.safetensors", &l1);
    assert_null(w1); /* no final weights yet */
    /* not resuming over an existing checkpoint is refused */
    c.stop_after_epoch = 0;
    assert_int_not_equal(gn_train_run(&c, NULL, &rb, &err), 0);
    assert_non_null(strstr(err.msg, "checkpoint exists"));
    c.resume = true;
    c.threads = 2;
    if (gn_train_run(&c, NULL, &rb, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(rb.start_epoch, 1);
    assert_int_equal(rb.epochs_done, 3);

    const char *files[] = {"weights.safetensors", "checkpoint.safetensors", "config.json"};
    for (int i = 0; i < 3; i++) {
        size_t la, lb;
        char *a = file_in(da, files[i], &la), *b = file_in(db, files[i], &lb);
        assert_non_null(a);
        assert_non_null(b);
        assert_int_equal(la, lb);
        if (memcmp(a, b, la) != 0)
            fail_msg("%s differs between the uninterrupted and the resumed run", files[i]);
        free(a);
        free(b);
    }
    assert_float_equal(ra.test_top1, rb.test_top1, 0);
    char *ma = file_in(da, "metrics.jsonl", NULL), *mb = file_in(db, "metrics.jsonl", NULL);
    assert_int_equal(count_lines(ma), 3);
    assert_int_equal(count_lines(mb), 3);
    assert_non_null(strstr(ma, "\"test_top1\""));
    assert_non_null(strstr(mb, "\"ema_val_top1\""));
    free(ma);
    free(mb);

    /* resuming a finished run only redoes the final evaluation */
    if (gn_train_run(&c, NULL, &rb, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(rb.start_epoch, 3);
    assert_float_equal(ra.test_top1, rb.test_top1, 0);

    /* changed options are refused, naming the option */
    c.lr = 0.02;
    assert_int_not_equal(gn_train_run(&c, NULL, &rb, &err), 0);
    assert_non_null(strstr(err.msg, "checkpoint.safetensors: cannot resume: option 'schedule.lr'"));
    free(da);
    free(db);
}

static void test_nan_stops_and_keeps_checkpoint(void **state)
{
    fixture *f = *state;
    gn_error err;
    gn_train_result r;
    char *d1 = fresh_dir("nan-ref"), *d2 = fresh_dir("nan");
    gn_train_config c;
    base_config(f, &c);
    c.schedule = GN_SCHED_STEP;
    c.warmup_epochs = 0;
    c.decay_epochs = 1;
    c.decay_gamma = 1e30; /* epoch 2 trains with lr 5e28 */
    c.out_dir = d1;
    c.stop_after_epoch = 1;
    if (gn_train_run(&c, NULL, &r, &err))
        fail_msg("%s", err.msg);
    c.out_dir = d2;
    c.stop_after_epoch = 0;
    assert_int_not_equal(gn_train_run(&c, NULL, &r, &err), 0);
    fprintf(stderr, "NaN run: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "epoch 2, step"));
    assert_true(strstr(err.msg, "loss is nan") || strstr(err.msg, "loss is inf"));
    assert_non_null(strstr(err.msg, "of epoch 1 is intact"));
    assert_null(strchr(err.msg, '\n'));
    size_t la, lb;
    char *a = file_in(d1, "checkpoint.safetensors", &la), *b = file_in(d2, "checkpoint.safetensors", &lb);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    free(a);
    free(b);
    char *m = file_in(d2, "metrics.jsonl", NULL);
    assert_int_equal(count_lines(m), 1);
    free(m);
    free(d1);
    free(d2);
}

static void test_bad_checkpoints(void **state)
{
    fixture *f = *state;
    gn_error err;
    gn_train_result r;
    char *d = fresh_dir("ckpt-bad");
    gn_train_config c;
    base_config(f, &c);
    c.out_dir = d;
    c.resume = true;
    assert_int_not_equal(gn_train_run(&c, NULL, &r, &err), 0); /* nothing to resume */
    assert_non_null(strstr(err.msg, "checkpoint.safetensors: no checkpoint to resume from"));
    c.resume = false;
    c.stop_after_epoch = 1;
    if (gn_train_run(&c, NULL, &r, &err))
        fail_msg("%s", err.msg);
    c.resume = true;
    char path[1024];
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", d);
    size_t len;
    char *good = tu_read_file(path, &len);
    assert_non_null(good);

    /* truncated */
    FILE *fp = fopen(path, "wb");
    fwrite(good, 1, len / 2, fp);
    fclose(fp);
    assert_int_not_equal(gn_train_run(&c, NULL, &r, &err), 0);
    fprintf(stderr, "truncated checkpoint: %s\n", err.msg);
    assert_non_null(strstr(err.msg, path));
    assert_null(strchr(err.msg, '\n'));

    /* garbage header */
    fp = fopen(path, "wb");
    fwrite("\x10\0\0\0\0\0\0\0{not json at all", 1, 24, fp);
    fclose(fp);
    assert_int_not_equal(gn_train_run(&c, NULL, &r, &err), 0);
    fprintf(stderr, "corrupted checkpoint: %s\n", err.msg);
    assert_non_null(strstr(err.msg, path));

    /* a weights file (not a checkpoint) */
    tu_write_file(path, "");
    assert_int_not_equal(gn_train_run(&c, NULL, &r, &err), 0);
    assert_non_null(strstr(err.msg, path));

    /* a flipped data byte is not detectable, but a flipped metadata epoch is */
    char *bad = malloc(len);
    memcpy(bad, good, len);
    char *e = memmem(bad, len, "\"epochs_done\":\"1\"", 17);
    assert_non_null(e);
    e[15] = 'x';
    fp = fopen(path, "wb");
    fwrite(bad, 1, len, fp);
    fclose(fp);
    assert_int_not_equal(gn_train_run(&c, NULL, &r, &err), 0);
    fprintf(stderr, "bad metadata: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "'epochs_done'"));

    /* the intact checkpoint resumes */
    fp = fopen(path, "wb");
    fwrite(good, 1, len, fp);
    fclose(fp);
    c.stop_after_epoch = 2;
    if (gn_train_run(&c, NULL, &r, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(r.epochs_done, 2);
    free(bad);
    free(good);
    free(d);
}

static void test_distillation(void **state)
{
    fixture *f = *state;
    gn_error err;
    /* a teacher: the tiny net after a short training run */
    char *dt = fresh_dir("teacher");
    gn_train_config c;
    base_config(f, &c);
    c.out_dir = dt;
    c.epochs = 8;
    c.lr = 0.1;
    c.erase_prob = 0;
    gn_train_result r0, r1;
    if (gn_train_run(&c, NULL, &r0, &err))
        fail_msg("%s", err.msg);
    double teacher_top1 = r0.test_top1;
    char tw[1024];
    snprintf(tw, sizeof tw, "%s/weights.safetensors", dt);

    /* the student learns from the teacher's soft targets alone (alpha 1: no labels) */
    base_config(f, &c);
    c.epochs = 8;
    c.lr = 0.1;
    c.erase_prob = 0;
    c.seed = 8; /* another init and data order than the teacher's */
    c.teacher_arch = f->arch;
    c.teacher_weights = tw;
    c.kd_alpha = 1.0f;
    c.kd_temp = 4.0f;
    if (gn_train_run(&c, NULL, &r1, &err))
        fail_msg("%s", err.msg);
    fprintf(stderr, "distillation (alpha 1, T 4): teacher test %.3f, student test %.3f, train loss %.4f\n",
            teacher_top1, r1.test_top1, r1.last.train_loss);
    assert_true(teacher_top1 >= 0.9);
    assert_true(r1.test_top1 >= 0.85);
    /* alpha 0.5 changes the loss against the no-teacher run of the same seed */
    c.kd_alpha = 0.5f;
    c.epochs = 2;
    if (gn_train_run(&c, NULL, &r1, &err))
        fail_msg("%s", err.msg);
    c.teacher_arch = NULL;
    if (gn_train_run(&c, NULL, &r0, &err))
        fail_msg("%s", err.msg);
    assert_true(isfinite(r1.last.train_loss));
    assert_true(r1.last.train_loss != r0.last.train_loss);
    c.teacher_arch = f->arch;

    c.teacher_weights = "/nonexistent/teacher.safetensors";
    assert_int_not_equal(gn_train_run(&c, NULL, &r1, &err), 0);
    assert_non_null(strstr(err.msg, "/nonexistent/teacher.safetensors"));
    free(dt);
}

static void test_option_errors(void **state)
{
    fixture *f = *state;
    gn_error err;
    gn_train_result r;
    gn_train_config c;
    base_config(f, &c);
    c.batch = 1000;
    assert_int_not_equal(gn_train_run(&c, NULL, &r, &err), 0);
    assert_non_null(strstr(err.msg, "batch 1000 is larger than the 128 training images"));
    base_config(f, &c);
    c.val_fraction = 1.0;
    assert_int_not_equal(gn_train_run(&c, NULL, &r, &err), 0);
    assert_non_null(strstr(err.msg, "val-fraction"));
    base_config(f, &c);
    c.warmup_epochs = 5;
    assert_int_not_equal(gn_train_run(&c, NULL, &r, &err), 0);
    assert_non_null(strstr(err.msg, "warm-up"));
    base_config(f, &c);
    c.subset = 500;
    assert_int_not_equal(gn_train_run(&c, NULL, &r, &err), 0);
    assert_non_null(strstr(err.msg, "subset of 500 images"));
    base_config(f, &c);
    gn_dataset *other;
    uint8_t *px = calloc(4 * 64, 1);
    int32_t *lab = calloc(4, sizeof *lab);
    assert_int_equal(gn_dataset_from_memory(4, 1, 8, 8, 5, px, lab, &other, &err), 0);
    c.test_set = other; /* 5 classes vs 4 */
    assert_int_not_equal(gn_train_run(&c, NULL, &r, &err), 0);
    assert_non_null(strstr(err.msg, "test data has 1 channels and 5 classes"));
    gn_dataset_free(other);
    base_config(f, &c);
    c.backend = "cuda";
    assert_int_not_equal(gn_train_run(&c, NULL, &r, &err), 0);
    assert_non_null(strstr(err.msg, "backend"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_learns_and_reports),     cmocka_unit_test(test_resume_bitwise),
        cmocka_unit_test(test_nan_stops_and_keeps_checkpoint), cmocka_unit_test(test_bad_checkpoints),
        cmocka_unit_test(test_distillation),           cmocka_unit_test(test_option_errors),
        cmocka_unit_test(test_op_profile),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
