/*
 * test_train_cli.c — `gpunas train` / `gpunas eval` as a user runs them, on a tiny
 * config and a tiny Fashion-MNIST-format data set written by the test (raw IDX files,
 * 8x8 images, a bright quadrant per class): usage and option errors (exit 2, one
 * line), missing/broken data and config (exit 1, one line naming the file), a run
 * stopped after epoch 1, a truncated checkpoint refused on --resume (naming the
 * file), the resume to the end, the output files, plain (no \r) output when stdout
 * is not a terminal, and eval's report with class names and the confusion matrix.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gpunas/rng.h"
#include "testutil.h"

static const char *TINY =
    "[{\"layer_type\":\"data\",\"img_resolution\":8,\"distill\":false},"
    "{\"layer_type\":\"head\",\"num_in_channels\":1,\"num_out_channels\":8,\"act\":\"relu\"},"
    "{\"layer_type\":\"irb\",\"num_in_channels\":8,\"num_out_channels\":8,\"stride\":1,\"expansion\":2,"
    "\"kernel_size\":3,\"act\":\"swish\",\"use_se\":false,\"stage\":1},"
    "{\"layer_type\":\"tail\",\"num_in_channels\":8,\"num_out_channels\":16,\"num_classes\":10}]";

static char *dir, *cfg;

static int setup(void **state)
{
    dir = tu_tmp_path("fmnist-tiny");
    mkdir(dir, 0777);
    tu_write_idx(dir, "train", 200, 8, 4, 1);
    tu_write_idx(dir, "t10k", 64, 8, 4, 2);
    cfg = tu_tmp_path("tiny.json");
    tu_write_file(cfg, TINY);
    return 0;
}

static int teardown(void **state)
{
    free(dir);
    free(cfg);
    return 0;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

/* Runs the CLI expecting exit code `code` and, for errors, one stderr line containing
 * every given fragment. */
static void expect_error(const char *args, int code, const char *frag1, const char *frag2)
{
    char *out, *err;
    int rc = tu_run_cli(args, &out, &err);
    if (rc != code || count_lines(err) != 1 || (frag1 && !strstr(err, frag1)) || (frag2 && !strstr(err, frag2)))
        fail_msg("gpunas %s: exit %d (expected %d), stderr: %s", args, rc, code, err);
    free(out);
    free(err);
}

static void test_usage_errors(void **state)
{
    char a[2048];
    expect_error("train", 2, "gpunas train: missing CONFIG.json", NULL);
    snprintf(a, sizeof a, "train %s --bogus", cfg);
    expect_error(a, 2, "gpunas train: unknown option '--bogus'", NULL);
    snprintf(a, sizeof a, "train %s --epochs abc", cfg);
    expect_error(a, 2, "option --epochs: 'abc' is not an integer", NULL);
    snprintf(a, sizeof a, "train %s --lr", cfg);
    expect_error(a, 2, "option --lr: missing value", NULL);
    snprintf(a, sizeof a, "train %s --optimizer adam", cfg);
    expect_error(a, 2, "'adam' is not one of sgd, rmsprop-tf, adamw", NULL);
    snprintf(a, sizeof a, "train %s --teacher %s", cfg, cfg);
    expect_error(a, 2, "--teacher and --teacher-weights go together", NULL);
    expect_error("eval x.json", 2, "gpunas eval: missing --weights W", NULL);
    expect_error("eval x.json --weights w --frobnicate", 2, "unknown option '--frobnicate'", NULL);
}

static void test_data_and_config_errors(void **state)
{
    char a[2048];
    snprintf(a, sizeof a, "train %s --data /nonexistent/fmnist --out /tmp/never", cfg);
    expect_error(a, 1, "gpunas train: /nonexistent/fmnist", NULL);
    snprintf(a, sizeof a, "train /nonexistent/net.json --data %s", dir);
    expect_error(a, 1, "/nonexistent/net.json", NULL);
    /* a truncated image file */
    char *bad = tu_tmp_path("fmnist-bad");
    mkdir(bad, 0777);
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "cp %s/*-ubyte %s/ && head -c 1000 %s/train-images-idx3-ubyte > %s/t && mv %s/t "
             "%s/train-images-idx3-ubyte",
             dir, bad, dir, bad, bad, bad);
    assert_int_equal(system(cmd), 0);
    snprintf(a, sizeof a, "train %s --data %s", cfg, bad);
    expect_error(a, 1, "train-images-idx3-ubyte", NULL);
    /* a batch larger than the data */
    char *out = tu_tmp_path("cli-batch");
    snprintf(a, sizeof a, "train %s --data %s --batch 4096 --out %s", cfg, dir, out);
    expect_error(a, 1, "batch 4096 is larger than the 180 training images", NULL);
    free(out);
    free(bad);
}

static void test_train_resume_eval(void **state)
{
    char *out = tu_tmp_path("cli-run");
    char a[4096], *o, *e;
    const char *common = "--epochs 3 --batch 16 --no-flip --erase 0 --lr 0.1 --threads 2 --ema 0.9";
    snprintf(a, sizeof a, "train %s --data %s %s --out %s --stop-after-epoch 1", cfg, dir, common, out);
    assert_int_equal(tu_run_cli(a, &o, &e), 0);
    assert_string_equal(e, "");
    assert_non_null(strstr(o, "stopped after epoch 1 of 3"));
    assert_non_null(strstr(o, "epoch   1  lr"));
    assert_null(strchr(o, '\r')); /* stdout is a file: plain lines */
    free(o);
    free(e);

    char ck[1024];
    snprintf(ck, sizeof ck, "%s/checkpoint.safetensors", out);
    size_t len;
    char *good = tu_read_file(ck, &len);
    assert_non_null(good);
    FILE *f = fopen(ck, "wb");
    fwrite(good, 1, len - 100, f);
    fclose(f);
    snprintf(a, sizeof a, "train %s --data %s %s --out %s --resume", cfg, dir, common, out);
    expect_error(a, 1, ck, "truncated");
    /* without --resume an existing checkpoint is not overwritten */
    snprintf(a, sizeof a, "train %s --data %s %s --out %s", cfg, dir, common, out);
    expect_error(a, 1, "a checkpoint exists", NULL);
    f = fopen(ck, "wb");
    fwrite(good, 1, len, f);
    fclose(f);
    free(good);
    snprintf(a, sizeof a, "train %s --data %s %s --out %s --resume --lr 0.2", cfg, dir, common, out);
    expect_error(a, 1, "option 'schedule.lr' was 0.1 in the checkpoint, now 0.2", NULL);
    snprintf(a, sizeof a, "train %s --data %s %s --out %s --resume", cfg, dir, common, out);
    assert_int_equal(tu_run_cli(a, &o, &e), 0);
    assert_non_null(strstr(o, "done: 3 epochs"));
    assert_non_null(strstr(o, "test: loss"));
    assert_non_null(strstr(o, "(EMA)"));
    free(o);
    free(e);
    char p[1024];
    snprintf(p, sizeof p, "%s/metrics.jsonl", out);
    char *m = tu_read_file(p, NULL);
    assert_int_equal(count_lines(m), 3);
    assert_non_null(strstr(m, "\"epoch\":3"));
    assert_non_null(strstr(m, "\"test_top1\""));
    free(m);

    /* eval of the final weights with the written config */
    snprintf(a, sizeof a, "eval %s/config.json --weights %s/weights.safetensors --data %s --threads 2", out, out, dir);
    assert_int_equal(tu_run_cli(a, &o, &e), 0);
    assert_string_equal(e, "");
    assert_non_null(strstr(o, "top-1"));
    assert_non_null(strstr(o, "top-5"));
    assert_non_null(strstr(o, "T-shirt/top"));
    assert_non_null(strstr(o, "Ankle boot"));
    assert_non_null(strstr(o, "recall"));
    assert_non_null(strstr(o, "64 images at 8x8"));
    free(o);
    free(e);
    /* --res overrides the resolution recorded in the weights (all-conv: weights fit) */
    snprintf(a, sizeof a, "eval %s --weights %s/weights.safetensors --data %s --threads 2 --res 12", cfg, out, dir);
    assert_int_equal(tu_run_cli(a, &o, &e), 0);
    assert_non_null(strstr(o, "64 images at 12x12"));
    free(o);
    free(e);
    snprintf(a, sizeof a, "eval %s --weights %s/nothing.safetensors --data %s", cfg, out, dir);
    expect_error(a, 1, "nothing.safetensors", NULL);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_data_and_config_errors),
        cmocka_unit_test(test_train_resume_eval),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
