/*
 * test_import.c — NVIDIA's GPUNet checkpoints into gpunas (`gpunas import`,
 * gpunas/import.h), end to end.
 *
 * tests/pytorch/make_nvidia_ckpt.py (Debian's python3-torch) writes checkpoints in the
 * exact layout of NVIDIA's releases — timm's CheckpointSaver dict with state_dict and
 * state_dict_ema for GPUNet-0 and GPUNet-D1 (zip format), a plain state dict with
 * "module." keys in the legacy format — built with NVIDIA's module names by
 * tests/pytorch/gpunet_ref.py, plus PyTorch's logits for a fixed input, and malformed
 * files.  Checked here:
 *   - `gpunas import` of each, then gpunas's logits (BN folded, fused inference) against
 *     PyTorch's: normwise relative difference <= 1e-4, for state_dict and --ema, for both
 *     families, for float16 weights, and for the legacy format;
 *   - the imported GPUNet-0 exported to ONNX and run by ONNX Runtime
 *     (tests/onnx/check_onnx.py) against PyTorch's logits;
 *   - the imported network as a distillation teacher (`gpunas train --teacher`), and the
 *     student gpunas trained loaded back into PyTorch with NVIDIA's names by
 *     load_state_dict(strict=True) (tests/pytorch/load_gpunas_weights.py), same logits;
 *   - bad input: truncated zip, a pickle that would run os.system, wrong dtype, wrong
 *     shape, an extra tensor, a checkpoint of another config, --ema without EMA weights:
 *     exit 1, one line naming the file and the reason, no output file, the payload
 *     never ran;
 *   - weights of gpunas < 0.2 rewritten with NVIDIA's keys (notice on stderr).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpunas/arch.h"
#include "gpunas/backend.h"
#include "gpunas/network.h"
#include "gpunas/npy.h"
#include "gpunas/safetensors.h"
#include "testutil.h"

#define PY "/usr/bin/python3"
#define TOL 1e-4

static char dir[4096];

static bool exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* DIR/NAME in one of 64 rotating buffers: a test function keeps fewer paths alive */
static const char *in_dir(const char *name)
{
    static char buf[64][4200];
    static int k;
    k = (k + 1) % 64;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

/* The checkpoints are made once for the whole test (about 5 s). */
static int setup(void **state)
{
    char *d = tu_tmp_path("import");
    snprintf(dir, sizeof dir, "%s", d);
    free(d);
    char *script = tu_source_path("tests/pytorch/make_nvidia_ckpt.py"), cmd[8800];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && %s '%s' '%s'", dir, PY, script, dir);
    free(script);
    if (system(cmd) != 0) {
        fprintf(stderr, "test_import: %s failed (Debian's python3-torch is required: scripts/deps.sh)\n", cmd);
        return -1;
    }
    return 0;
}

/* the checkpoints are ~250 MB: removed after the test */
static int teardown(void **state)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* `gpunas import ...`: exit status; stdout/stderr kept in *out / *err (caller frees) */
static int import(const char *args, char **out, char **err)
{
    char cmd[8300];
    snprintf(cmd, sizeof cmd, "import %s", args);
    int st = tu_run_cli(cmd, out, err);
    fprintf(stderr, "gpunas %s -> %d\n  %s%s", cmd, st, out && *out ? *out : "", err && *err ? *err : "");
    return st;
}

/* max|a-b| / max|b| */
static double rel_diff(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num = fmax(num, fabs((double)a[i] - b[i]));
        den = fmax(den, fabs((double)b[i]));
    }
    return den > 0 ? num / den : num;
}

/* gpunas's inference logits of CONFIG with WEIGHTS on INPUT.npy against LOGITS.npy */
static double check_logits(const char *config, const char *weights, const char *input, const char *logits,
                           float **keep)
{
    gn_error err;
    gn_arch *a;
    gn_backend *be;
    gn_net *net;
    gn_npy x, y;
    char *cfg = tu_source_path(config);
    if (gn_arch_load(cfg, &a, &err) || gn_backend_create("dnnl", &be, &err) || gn_net_create(a, be, &net, &err) ||
        gn_net_load(net, weights, &err) || gn_npy_read(in_dir(input), &x, &err) ||
        gn_npy_read(in_dir(logits), &y, &err))
        fail_msg("%s", err.msg);
    free(cfg);
    assert_int_equal(x.ndim, 4);
    gn_tensor t;
    const gn_tensor *lg;
    int n = (int)x.shape[0];
    size_t k = (size_t)(y.shape[0] * y.shape[1]);
    float *got = malloc(k * sizeof *got);
    if (gn_tensor_alloc(&t, be, n, (int)x.shape[1], (int)x.shape[2], (int)x.shape[3], &err) ||
        gn_tensor_from_host(&t, x.data, &err) || gn_net_infer(net, &t, &lg, &err) || gn_tensor_to_host(lg, got, &err))
        fail_msg("%s", err.msg);
    double r = rel_diff(got, y.data, k);
    fprintf(stderr, "%s with %s: max rel diff to PyTorch %.2e (%zu logits)\n", config, weights, r, k);
    if (keep)
        *keep = got;
    else
        free(got);
    gn_tensor_free(&t);
    gn_npy_free(&x);
    gn_npy_free(&y);
    gn_net_free(net);
    gn_backend_destroy(be);
    gn_arch_free(a);
    return r;
}

/* `gpunas export` of CONFIG with WEIGHTS at batch 2, then tests/onnx/check_onnx.py:
 * ONNX Runtime's logits against PyTorch's ("eval") and gpunas's ("infer") */
static void onnx_vs_pytorch(const char *config, const char *weights, const char *tag, const char *input,
                            const char *logits)
{
    char *py = tu_source_path(".venv/bin/python"), *check = tu_source_path("tests/onnx/check_onnx.py");
    char *cfg = tu_source_path(config), args[8192], name[64], cmd[9000];
    if (access(py, X_OK) != 0)
        fail_msg("%s missing: run scripts/venv.sh (scripts/test.sh runs it)", py);
    snprintf(name, sizeof name, "%s.onnx", tag);
    const char *m = in_dir(name);
    snprintf(name, sizeof name, "%s.io.safetensors", tag);
    const char *io = in_dir(name);
    snprintf(args, sizeof args, "export '%s' --weights '%s' -o '%s' --batch 2", cfg, weights, m);
    assert_int_equal(tu_run_cli(args, NULL, NULL), 0);
    float *got;
    check_logits(config, weights, input, logits, &got);
    gn_error err;
    gn_npy x, y;
    assert_int_equal(gn_npy_read(in_dir(input), &x, &err), 0);
    assert_int_equal(gn_npy_read(in_dir(logits), &y, &err), 0);
    gn_st_writer *sw = gn_st_writer_new();
    int64_t ls[2] = {y.shape[0], y.shape[1]};
    /* "eval" is the reference check_onnx.py compares with: PyTorch's logits */
    if (gn_st_writer_add(sw, "input", 4, x.shape, x.data, &err) || gn_st_writer_add(sw, "infer", 2, ls, got, &err) ||
        gn_st_writer_add(sw, "eval", 2, ls, y.data, &err) || gn_st_writer_write(sw, io, &err))
        fail_msg("%s", err.msg);
    gn_st_writer_free(sw);
    snprintf(cmd, sizeof cmd, "%s %s '%s' --io '%s' --batch 2 --tol %g", py, check, m, io, TOL);
    fprintf(stderr, "%s\n", cmd);
    assert_int_equal(system(cmd), 0);
    gn_npy_free(&x);
    gn_npy_free(&y);
    free(got);
    free(py), free(check), free(cfg);
}

static void test_gpunet0(void **state)
{
    char args[8192], *out, *errs;
    char *cfg = tu_source_path("configs/gpunet/gpunet-0.json");
    const char *w = in_dir("g0.safetensors"), *we = in_dir("g0-ema.safetensors");
    snprintf(args, sizeof args, "'%s' --config '%s' -o '%s'", in_dir("gpunet-0.pth.tar"), cfg, w);
    assert_int_equal(import(args, &out, &errs), 0);
    assert_non_null(strstr(out, "imported state_dict of"));
    assert_non_null(strstr(out, "zip format"));
    assert_non_null(strstr(out, "11885432 parameters"));
    assert_non_null(strstr(out, "epoch 449"));
    assert_non_null(strstr(out, "num_batches_tracked 560430"));
    assert_non_null(strstr(out, "add --ema")); /* NVIDIA evaluates with the EMA weights */
    free(out), free(errs);
    assert_true(check_logits("configs/gpunet/gpunet-0.json", w, "gpunet-0.input.npy", "gpunet-0.logits.npy", NULL) <=
                TOL);

    snprintf(args, sizeof args, "'%s' --config '%s' -o '%s' --ema", in_dir("gpunet-0.pth.tar"), cfg, we);
    assert_int_equal(import(args, &out, &errs), 0);
    assert_non_null(strstr(out, "imported state_dict_ema of"));
    free(out), free(errs);
    assert_true(check_logits("configs/gpunet/gpunet-0.json", we, "gpunet-0.input.npy", "gpunet-0.logits-ema.npy",
                             NULL) <= TOL);
    /* and the two differ: --ema really chose the other state dict */
    assert_true(check_logits("configs/gpunet/gpunet-0.json", we, "gpunet-0.input.npy", "gpunet-0.logits.npy", NULL) >
                1e-2);

    /* the file is NVIDIA's state dict: keys as NVIDIA's builder names them */
    gn_st_file *f;
    gn_error err;
    assert_int_equal(gn_st_open(w, &f, &err), 0);
    assert_non_null(gn_st_find(f, "network.head: 2.net.0.weight"));
    assert_non_null(gn_st_find(f, "network.stage: 1 layer3.conv.weight"));
    assert_non_null(gn_st_find(f, "network.stage: 2 layer5.conv_exp.weight"));
    assert_non_null(gn_st_find(f, "network.stage: 6 layer14.se.conv_expand.bias"));
    assert_non_null(gn_st_find(f, "network. layer15.net.6.bias"));
    assert_non_null(gn_st_find(f, "network. layer15.net.1.num_batches_tracked"));
    gn_st_close(f);

    /* the imported GPUNet-0 as ONNX, run by ONNX Runtime, against PyTorch's logits */
    onnx_vs_pytorch("configs/gpunet/gpunet-0.json", w, "g0", "gpunet-0.input.npy", "gpunet-0.logits.npy");

    /* float16 weights are converted exactly (logits of the rounded weights) */
    const char *w16 = in_dir("g0-fp16.safetensors");
    snprintf(args, sizeof args, "'%s' --config '%s' -o '%s'", in_dir("fp16.pth"), cfg, w16);
    assert_int_equal(import(args, &out, &errs), 0);
    assert_non_null(strstr(out, "the file itself"));
    assert_non_null(strstr(out, "converted to float32"));
    free(out), free(errs);
    assert_true(check_logits("configs/gpunet/gpunet-0.json", w16, "gpunet-0.input.npy", "fp16.logits.npy", NULL) <=
                TOL);
    free(cfg);
}

static void test_distill_family(void **state)
{
    char args[8192], *out, *errs;
    char *cfg = tu_source_path("configs/gpunet/gpunet-d1.json");
    const char *w = in_dir("d1.safetensors");
    snprintf(args, sizeof args, "'%s' --config '%s' -o '%s' --ema", in_dir("gpunet-d1.pth.tar"), cfg, w);
    assert_int_equal(import(args, &out, &errs), 0);
    free(out), free(errs);
    assert_true(check_logits("configs/gpunet/gpunet-d1.json", w, "gpunet-d1.input.npy", "gpunet-d1.logits-ema.npy",
                             NULL) <= TOL);
    gn_st_file *f;
    gn_error err;
    assert_int_equal(gn_st_open(w, &f, &err), 0);
    assert_non_null(gn_st_find(f, "network.head:.net.1.running_var"));
    assert_non_null(gn_st_find(f, "network.stage: 0 irb3.body.0.weight"));
    assert_non_null(gn_st_find(f, "network.tail:.net.8.weight"));
    gn_st_close(f);
    free(cfg);
}

/* legacy torch.save format, "module." keys; then ONNX and distillation */
static void test_legacy_onnx_teacher(void **state)
{
    char args[8192], *out, *errs;
    char *cfg = tu_source_path("configs/fmnist-small.json");
    const char *w = in_dir("fs.safetensors");
    snprintf(args, sizeof args, "'%s' --config '%s' -o '%s'", in_dir("fmnist-small.pth"), cfg, w);
    assert_int_equal(import(args, &out, &errs), 0);
    assert_non_null(strstr(out, "legacy format"));
    assert_non_null(strstr(out, "\"module.\" removed"));
    free(out), free(errs);
    float *got;
    assert_true(check_logits("configs/fmnist-small.json", w, "fmnist-small.input.npy", "fmnist-small.logits.npy",
                             &got) <= TOL);

    /* ONNX export of the imported weights, run by ONNX Runtime, against PyTorch */
    onnx_vs_pytorch("configs/fmnist-small.json", w, "fs", "fmnist-small.input.npy", "fmnist-small.logits.npy");
    free(got);
    gn_error err;
    char cmd[9000];

    /* the imported network as a teacher */
    const char *run = in_dir("kd-run");
    snprintf(args, sizeof args,
             "train '%s' --teacher '%s' --teacher-weights '%s' --kd-alpha 0.7 --epochs 1 --warmup 0 --subset 256 --batch 64 "
             "--out '%s' --threads 1",
             cfg, cfg, w, run);
    int st = tu_run_cli(args, &out, &errs);
    if (st != 0)
        fail_msg("gpunas %s: exit %d: %s", args, st, errs ? errs : "");
    free(out), free(errs);
    char p[4300];
    snprintf(p, sizeof p, "%s/weights.safetensors", run);
    assert_true(exists(p));

    /* the other direction: gpunas-trained weights into PyTorch with NVIDIA's names,
     * load_state_dict(strict=True), the same logits */
    float *mine;
    check_logits("configs/fmnist-small.json", p, "fmnist-small.input.npy", "fmnist-small.logits.npy", &mine);
    const char *ml = in_dir("kd.logits.npy");
    int64_t ls2[2] = {2, 10};
    assert_int_equal(gn_npy_write(ml, 2, ls2, mine, &err), 0);
    free(mine);
    char *load = tu_source_path("tests/pytorch/load_gpunas_weights.py");
    snprintf(cmd, sizeof cmd, "%s %s '%s' '%s' '%s' '%s'", PY, load, cfg, p, in_dir("fmnist-small.input.npy"), ml);
    fprintf(stderr, "%s\n", cmd);
    assert_int_equal(system(cmd), 0);
    free(load);
    free(cfg);
}

/* every bad input: exit 1, one line naming the file and the reason, nothing written */
static void expect_refused(const char *ckpt, const char *config, const char *extra, const char *want)
{
    char args[8192], *out, *errs;
    char *cfg = tu_source_path(config);
    const char *o = in_dir("refused.safetensors");
    snprintf(args, sizeof args, "'%s' --config '%s' -o '%s' %s", in_dir(ckpt), cfg, o, extra);
    assert_int_equal(import(args, &out, &errs), 1);
    assert_non_null(strstr(errs, in_dir(ckpt)));
    assert_non_null(strstr(errs, want));
    assert_true(strchr(errs, '\n') == errs + strlen(errs) - 1); /* one line */
    assert_false(exists(o));
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp", o);
    assert_false(exists(tmp));
    free(out), free(errs), free(cfg);
}

static void test_bad_input(void **state)
{
    expect_refused("truncated.pth.tar", "configs/gpunet/gpunet-d1.json", "", "");
    expect_refused("evil.pth", "configs/fmnist-small.json", "", "not allowed");
    assert_false(exists(in_dir("PWNED"))); /* the payload never ran */
    expect_refused("opcode.pth", "configs/fmnist-small.json", "", "is not allowed in a tensor checkpoint");
    expect_refused("bad-dtype.pth", "configs/fmnist-small.json", "", "dtype int32, expected a floating-point");
    expect_refused("bad-shape.pth", "configs/fmnist-small.json", "", "shape [");
    expect_refused("bad-extra.pth", "configs/fmnist-small.json", "", "tensor 'network.extra.weight' is not in");
    expect_refused("gpunet-0.pth.tar", "configs/gpunet/gpunet-1.json", "", "a checkpoint of another config?");
    expect_refused("fmnist-small.pth", "configs/fmnist-small.json", "--ema", "no entry 'state_dict_ema': the file is a plain state dict");
    expect_refused("gpunet-0.input.npy", "configs/gpunet/gpunet-0.json", "", "not a PyTorch checkpoint");
}

/* weights of gpunas < 0.2 ("layers.{I}." names) are rewritten with NVIDIA's keys */
static void test_old_gpunas_weights(void **state)
{
    gn_error err;
    gn_st_file *f;
    const char *w = in_dir("fs.safetensors"), *old = in_dir("fs-old.safetensors"), *neu = in_dir("fs-new.safetensors");
    assert_int_equal(gn_st_open(w, &f, &err), 0);
    gn_st_writer *sw = gn_st_writer_new();
    float *bufs[256];
    int nb = 0;
    char *cfg = tu_source_path("configs/fmnist-small.json");
    gn_arch *a;
    gn_backend *be;
    gn_net *net;
    if (gn_arch_load(cfg, &a, &err) || gn_backend_create("ref", &be, &err) || gn_net_create(a, be, &net, &err))
        fail_msg("%s", err.msg);
    for (int i = 0; i < gn_net_num_params(net); i++) {
        gn_param *q = gn_net_param(net, i);
        char nm[GN_NAME_MAX];
        const gn_st_info *t = gn_st_find(f, q->name);
        assert_non_null(t);
        assert_true(nb < 256);
        float *b = bufs[nb++] = malloc((size_t)t->numel * sizeof(float));
        assert_int_equal(gn_st_load(f, q->name, q->ndim, q->shape, b, &err), 0);
        assert_int_equal(gn_st_writer_add(sw, gn_param_legacy_name(q, nm, sizeof nm), q->ndim, q->shape, b, &err), 0);
    }
    assert_int_equal(gn_st_writer_write(sw, old, &err), 0);
    gn_st_writer_free(sw);
    gn_st_close(f);
    char args[8192], *out, *errs;
    snprintf(args, sizeof args, "'%s' --config '%s' -o '%s'", old, cfg, neu);
    assert_int_equal(import(args, &out, &errs), 0);
    assert_non_null(strstr(errs, "notice:"));
    assert_non_null(strstr(errs, "gpunas < 0.2"));
    assert_non_null(strstr(out, "rewrote"));
    free(out), free(errs);
    assert_int_equal(gn_st_open(neu, &f, &err), 0);
    for (int i = 0; i < gn_net_num_params(net); i++) {
        gn_param *q = gn_net_param(net, i);
        float *b = malloc(sizeof(float) * (size_t)gn_st_find(f, q->name)->numel);
        assert_int_equal(gn_st_load(f, q->name, q->ndim, q->shape, b, &err), 0);
        assert_memory_equal(b, bufs[i], (size_t)gn_st_find(f, q->name)->numel * sizeof(float));
        free(b);
    }
    gn_st_close(f);
    for (int i = 0; i < nb; i++)
        free(bufs[i]);
    gn_net_free(net);
    gn_backend_destroy(be);
    gn_arch_free(a);
    free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpunet0),          cmocka_unit_test(test_distill_family),
        cmocka_unit_test(test_legacy_onnx_teacher), cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_old_gpunas_weights),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
