/*
 * test_onnx_export.c — gn_onnx_export and `gpunas init` / `gpunas export` against
 * ONNX's checker and ONNX Runtime.
 *
 * Every released config (configs/gpunet/gpunet-*.json) at 224x224 (3 channels, 1000
 * classes): gn_net_init + gn_net_randomize_bn (so BN folding is not the identity),
 * export with a fixed batch of 2, and a seeded random input [2,3,224,224];
 * tests/onnx/check_onnx.py ($GPUNAS_SOURCE/.venv/bin/python, made by scripts/venv.sh)
 * runs onnx.checker.check_model(full_check=True), checks the interface (input
 * "input" [2,3,224,224], output "logits" [2,1000], no BatchNormalization node) and
 * runs ONNX Runtime (CPUExecutionProvider) on the input.  Its logits are compared
 * with gpunas's gn_net_infer (folded, fused) and gn_net_forward_eval (unfolded) on
 * the dnnl backend (GPUNAS_TEST_BACKEND overrides), and those two with each other, by
 * the normwise relative difference
 *     rel(a, b) = max_i |a_i - b_i| / max_i |b_i|   over all N x K logits,
 * which must be <= 1e-4 for all three pairs.  The test prints each config's numbers.
 * configs/fmnist-wide.json (1 channel, 28x28, 10 classes) is exported with a dynamic
 * batch ("N") and fed a batch of 3.  The CLI: `gpunas init` + `gpunas export` (shape
 * taken from the weights file's arch metadata), and a config/weights mismatch: exit
 * 1, one stderr line naming the weights file and the tensor, no model file.
 *
 * A missing .venv is a FAILURE with a message naming scripts/venv.sh, never a skip:
 * the check is only worth something when it runs.
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

#include "gpunas/network.h"
#include "gpunas/onnx.h"
#include "gpunas/rng.h"
#include "gpunas/safetensors.h"
#include "testutil.h"

#define TOL 1e-4

static bool exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* $GPUNAS_SOURCE/.venv/bin/python, which must import onnx and onnxruntime */
static char *venv_python(void)
{
    char *py = tu_source_path(".venv/bin/python");
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "%s -c 'import onnx, onnxruntime' >/dev/null 2>&1", py);
    if (access(py, X_OK) != 0 || system(cmd) != 0)
        fail_msg("%s cannot import onnx and onnxruntime: run scripts/venv.sh (scripts/test.sh runs it) to create "
                 "the Python environment this test checks the ONNX export with",
                 py);
    return py;
}

static const char *backend_name(void)
{
    const char *b = getenv("GPUNAS_TEST_BACKEND");
    return b ? b : "dnnl";
}

typedef struct {
    double ort_infer, ort_eval, infer_eval, max_abs;
    int nodes;
} check_result;

/* Run check_onnx.py; returns its exit status, fills r from its RESULT line. */
static int run_checker(const char *model, const char *io, const char *batch, check_result *r)
{
    char *py = venv_python(), *script = tu_source_path("tests/onnx/check_onnx.py");
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=2 %s %s %s --io %s --batch %s --tol %g --threads 2", py, script, model,
             io, batch, TOL);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[1024];
    bool got = false;
    memset(r, 0, sizeof *r);
    while (fgets(line, sizeof line, p))
        if (strncmp(line, "RESULT ", 7) == 0 &&
            sscanf(line, "RESULT ort_vs_infer=%lf ort_vs_eval=%lf infer_vs_eval=%lf max_abs=%lf nodes=%d",
                   &r->ort_infer, &r->ort_eval, &r->infer_eval, &r->max_abs, &r->nodes) == 5)
            got = true;
    int st = pclose(p);
    free(py);
    free(script);
    if (!got)
        fail_msg("check_onnx.py printed no RESULT line for %s (see its message above)", model);
    return st;
}

/* gpunas's logits for x on net: gn_net_infer and gn_net_forward_eval, [n*K] each */
static void gpunas_logits(gn_net *net, const float *hx, int n, float *infer, float *eval)
{
    gn_error err;
    const gn_arch *a = gn_net_arch(net);
    int C = a->layers[1].in_ch, R = a->resolution;
    gn_tensor x;
    const gn_tensor *lg;
    assert_int_equal(gn_tensor_alloc(&x, gn_net_backend(net), n, C, R, R, &err), 0);
    assert_int_equal(gn_tensor_from_host(&x, hx, &err), 0);
    if (gn_net_infer(net, &x, &lg, &err) || gn_tensor_to_host(lg, infer, &err) ||
        gn_net_forward_eval(net, &x, &lg, &err) || gn_tensor_to_host(lg, eval, &err))
        fail_msg("%s", err.msg);
    gn_tensor_free(&x);
}

/* io file for check_onnx.py: input, infer, eval */
static void write_io(const char *path, const float *hx, int n, int C, int R, const float *inf, const float *ev, int K)
{
    gn_error err;
    gn_st_writer *w = gn_st_writer_new();
    int64_t xs[4] = {n, C, R, R}, ls[2] = {n, K};
    if (gn_st_writer_add(w, "input", 4, xs, hx, &err) || gn_st_writer_add(w, "infer", 2, ls, inf, &err) ||
        gn_st_writer_add(w, "eval", 2, ls, ev, &err) || gn_st_writer_write(w, path, &err))
        fail_msg("%s", err.msg);
    gn_st_writer_free(w);
}

/* Export net at export_batch (0: dynamic), feed a seeded batch of n, check. */
static void check_net(gn_net *net, const char *label, int export_batch, int n)
{
    gn_error err;
    const gn_arch *a = gn_net_arch(net);
    int C = a->layers[1].in_ch, R = a->resolution, K = a->layers[a->n_layers - 1].num_classes;
    char *model = tu_tmp_path("model.onnx"), *io = tu_tmp_path("io.safetensors"), tmp[4200];
    gn_onnx_opts o = {.batch = export_batch, .opset = 0, .doc = "test_onnx_export"};
    if (gn_onnx_export(net, model, &o, &err))
        fail_msg("%s", err.msg);
    snprintf(tmp, sizeof tmp, "%s.tmp", model);
    assert_false(exists(tmp));

    gn_onnx_info info;
    if (gn_onnx_read_info(model, &info, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(info.opset, 13);
    assert_int_equal((int)info.ir_version, 7);
    assert_int_equal(info.batch, export_batch);
    assert_string_equal(info.batch_param, export_batch ? "" : "N");
    assert_int_equal(info.in_c, C);
    assert_int_equal(info.in_h, R);
    assert_int_equal(info.in_w, R);
    assert_int_equal(info.classes, K);
    assert_string_equal(info.producer, "gpunas " GPUNAS_VERSION);
    assert_true(info.n_nodes > 0 && info.n_weights > 0);

    size_t nx = (size_t)n * C * R * R;
    float *hx = malloc(nx * sizeof *hx), *inf = malloc((size_t)n * K * sizeof *inf),
          *ev = malloc((size_t)n * K * sizeof *ev);
    gn_rng rng;
    gn_rng_seed(&rng, 2024);
    for (size_t i = 0; i < nx; i++)
        hx[i] = (float)gn_rng_normal(&rng);
    gpunas_logits(net, hx, n, inf, ev);
    write_io(io, hx, n, C, R, inf, ev, K);

    char batch[32];
    snprintf(batch, sizeof batch, export_batch ? "%d" : "dynamic", export_batch);
    check_result r;
    int st = run_checker(model, io, batch, &r);
    fprintf(stderr,
            "%s @%d batch %s (fed %d): max rel diff ORT vs gpunas infer %.2e, ORT vs forward_eval %.2e, infer vs "
            "forward_eval %.2e (max|logit| %.3g); %d nodes, %lld weights, %lld bytes\n",
            label, R, batch, n, r.ort_infer, r.ort_eval, r.infer_eval, r.max_abs, info.n_nodes,
            (long long)info.n_weights, (long long)info.bytes);
    assert_int_equal(st, 0);
    assert_true(r.ort_infer <= TOL && r.ort_eval <= TOL && r.infer_eval <= TOL);
    unlink(model);
    unlink(io);
    free(hx);
    free(inf);
    free(ev);
    free(model);
    free(io);
}

static gn_net *make_net(const char *config, int res, gn_backend **be, gn_arch **a)
{
    gn_error err;
    char *cfg = tu_source_path(config);
    if (gn_arch_load(cfg, a, &err) || (res && gn_arch_set_resolution(*a, res, &err)) ||
        gn_backend_create(backend_name(), be, &err))
        fail_msg("%s", err.msg);
    free(cfg);
    gn_net *net;
    if (gn_net_create(*a, *be, &net, &err) || gn_net_init(net, 7, &err) || gn_net_randomize_bn(net, 8, &err))
        fail_msg("%s", err.msg);
    return net;
}

static void released(const char *config)
{
    free(venv_python()); /* fail early, before the network work */
    gn_backend *be;
    gn_arch *a;
    gn_net *net = make_net(config, 224, &be, &a);
    check_net(net, config, 2, 2);
    gn_net_free(net);
    gn_backend_destroy(be);
    gn_arch_free(a);
}

static void test_gpunet_0(void **s) { released("configs/gpunet/gpunet-0.json"); }
static void test_gpunet_1(void **s) { released("configs/gpunet/gpunet-1.json"); }
static void test_gpunet_2(void **s) { released("configs/gpunet/gpunet-2.json"); }
static void test_gpunet_p0(void **s) { released("configs/gpunet/gpunet-p0.json"); }
static void test_gpunet_p1(void **s) { released("configs/gpunet/gpunet-p1.json"); }
static void test_gpunet_d1(void **s) { released("configs/gpunet/gpunet-d1.json"); }
static void test_gpunet_d2(void **s) { released("configs/gpunet/gpunet-d2.json"); }

/* fmnist-wide: 1 channel, 28x28, 10 classes; dynamic batch, fed 3 */
static void test_fmnist_dynamic(void **s)
{
    free(venv_python());
    gn_backend *be;
    gn_arch *a;
    gn_net *net = make_net("configs/fmnist-wide.json", 0, &be, &a);
    check_net(net, "configs/fmnist-wide.json", 0, 3);
    gn_net_free(net);
    gn_backend_destroy(be);
    gn_arch_free(a);
}

/* randomize_bn is deterministic per seed and changes the BN tensors */
static void test_randomize_bn(void **s)
{
    gn_backend *be;
    gn_arch *a;
    gn_net *n1 = make_net("configs/fmnist-wide.json", 0, &be, &a), *n2;
    gn_error err;
    assert_int_equal(gn_net_create(a, be, &n2, &err), 0);
    assert_int_equal(gn_net_init(n2, 7, &err), 0);
    assert_int_equal(gn_net_randomize_bn(n2, 8, &err), 0);
    int changed = 0;
    for (int i = 0; i < gn_net_num_params(n1); i++) {
        gn_param *p = gn_net_param(n1, i), *q = gn_net_param(n2, i);
        size_t n = gn_tensor_numel(&p->value);
        assert_memory_equal(p->value.data, q->value.data, n * sizeof(float));
        const char *dot = strrchr(p->name, '.');
        if (strcmp(dot, ".running_var") == 0) {
            for (size_t j = 0; j < n; j++)
                assert_true(p->value.data[j] >= 0.5f && p->value.data[j] <= 2.0f);
            changed++;
        }
    }
    assert_true(changed > 0);
    assert_int_equal(gn_net_randomize_bn(n2, 9, &err), 0);
    gn_param *v1 = gn_net_find_param(n1, "network.head: 2.net.1.running_var"),
             *v2 = gn_net_find_param(n2, "network.head: 2.net.1.running_var");
    assert_non_null(v1);
    assert_true(memcmp(v1->value.data, v2->value.data, gn_tensor_numel(&v1->value) * sizeof(float)) != 0);
    gn_net_free(n1);
    gn_net_free(n2);
    gn_backend_destroy(be);
    gn_arch_free(a);
}

/* errors: unsupported opset, negative batch, uncreatable file; PATH untouched */
static void test_export_errors(void **s)
{
    gn_backend *be;
    gn_arch *a;
    gn_net *net = make_net("configs/fmnist-wide.json", 0, &be, &a);
    gn_error err;
    char *model = tu_tmp_path("err.onnx");
    gn_onnx_opts o = {.batch = 1, .opset = 12};
    assert_int_equal(gn_onnx_export(net, model, &o, &err), -1);
    assert_non_null(strstr(err.msg, model));
    assert_non_null(strstr(err.msg, "opset 12"));
    o = (gn_onnx_opts){.batch = -1};
    assert_int_equal(gn_onnx_export(net, model, &o, &err), -1);
    assert_false(exists(model));
    const char *bad = "/nonexistent-gpunas-dir/m.onnx";
    assert_int_equal(gn_onnx_export(net, bad, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent-gpunas-dir/m.onnx.tmp: cannot write"));
    assert_null(strchr(err.msg, '\n'));
    /* NULL opts: batch 1, opset 13; an existing file is replaced */
    assert_int_equal(tu_write_file(model, "old"), 0);
    if (gn_onnx_export(net, model, NULL, &err))
        fail_msg("%s", err.msg);
    gn_onnx_info info;
    assert_int_equal(gn_onnx_read_info(model, &info, &err), 0);
    assert_int_equal(info.batch, 1);
    assert_int_equal(info.opset, 13);
    assert_int_equal(gn_onnx_read_info(bad, &info, &err), -1);
    assert_non_null(strstr(err.msg, bad));
    unlink(model);
    free(model);
    gn_net_free(net);
    gn_backend_destroy(be);
    gn_arch_free(a);
}

/* `gpunas init` + `gpunas export`: the shape comes from the weights file; the model
 * matches gpunas on the same weights */
static void test_cli_init_export(void **s)
{
    free(venv_python());
    char *cfg = tu_source_path("configs/fmnist-wide.json"), *w = tu_tmp_path("cli-w.safetensors"),
         *m = tu_tmp_path("cli-m.onnx"), args[8192], *out = NULL, *errs = NULL;
    /* weights for 32x32, 7 classes: export must pick that up without flags */
    snprintf(args, sizeof args, "init %s -o %s --seed 3 --res 32 --classes 7", cfg, w);
    int st = tu_run_cli(args, &out, &errs);
    if (st != 0)
        fail_msg("gpunas %s: exit %d: %s", args, st, errs ? errs : "");
    assert_non_null(strstr(out, "wrote"));
    free(out), free(errs);
    snprintf(args, sizeof args, "export %s --weights %s -o %s", cfg, w, m);
    st = tu_run_cli(args, &out, &errs);
    if (st != 0)
        fail_msg("gpunas %s: exit %d: %s", args, st, errs ? errs : "");
    fprintf(stderr, "gpunas export: %s", out);
    assert_non_null(strstr(out, "opset 13"));
    assert_non_null(strstr(out, "input [1,1,32,32]"));
    assert_true(strchr(out, '\n') == out + strlen(out) - 1); /* one line */
    free(out), free(errs);

    /* the CLI's model against gpunas with the same weights */
    gn_error err;
    gn_arch *a;
    gn_backend *be;
    gn_net *net;
    if (gn_arch_load(cfg, &a, &err) || gn_arch_set_resolution(a, 32, &err) || gn_arch_set_classes(a, 7, &err) ||
        gn_backend_create(backend_name(), &be, &err) || gn_net_create(a, be, &net, &err) ||
        gn_net_load(net, w, &err))
        fail_msg("%s", err.msg);
    int n = 1, C = 1, R = 32, K = 7;
    float hx[32 * 32], inf[7], ev[7];
    gn_rng rng;
    gn_rng_seed(&rng, 5);
    for (int i = 0; i < C * R * R; i++)
        hx[i] = (float)gn_rng_normal(&rng);
    gpunas_logits(net, hx, n, inf, ev);
    char *io = tu_tmp_path("cli-io.safetensors");
    write_io(io, hx, n, C, R, inf, ev, K);
    check_result r;
    st = run_checker(m, io, "1", &r);
    fprintf(stderr, "gpunas export CLI model (fmnist-wide @32, 7 classes): ORT vs infer %.2e, ORT vs eval %.2e\n",
            r.ort_infer, r.ort_eval);
    assert_int_equal(st, 0);
    /* the checker is not vacuous: a reference 1e-3 (relative) off fails it */
    double mx = 0;
    for (int k = 0; k < K; k++)
        mx = fmax(mx, fabs(inf[k]));
    inf[0] += (float)(1e-3 * mx);
    fprintf(stderr, "negative check: check_onnx.py must reject a reference 1e-3 off (its message follows):\n");
    write_io(io, hx, n, C, R, inf, ev, K);
    assert_int_not_equal(run_checker(m, io, "1", &r), 0);
    assert_true(r.ort_infer > TOL);

    /* --batch dynamic through the CLI */
    snprintf(args, sizeof args, "export %s --weights %s -o %s --batch dynamic", cfg, w, m);
    st = tu_run_cli(args, &out, &errs);
    assert_int_equal(st, 0);
    assert_non_null(strstr(out, "batch dynamic"));
    assert_non_null(strstr(out, "input [N,1,32,32]"));
    free(out), free(errs);
    gn_onnx_info info;
    assert_int_equal(gn_onnx_read_info(m, &info, &err), 0);
    assert_string_equal(info.batch_param, "N");
    unlink(m);
    unlink(w);
    unlink(io);
    free(io);
    free(cfg);
    free(w);
    free(m);
    gn_net_free(net);
    gn_backend_destroy(be);
    gn_arch_free(a);
}

/* weights of one config exported with another: exit 1, one line naming the weights
 * file and the tensor, no model file (nor its temporary) */
static void test_cli_mismatch(void **s)
{
    char *small = tu_source_path("configs/fmnist-small.json"), *wide = tu_source_path("configs/fmnist-wide.json"),
         *w = tu_tmp_path("mm-w.safetensors"), *m = tu_tmp_path("mm-m.onnx"), args[8192], *out = NULL, *errs = NULL,
         tmp[4200];
    snprintf(args, sizeof args, "init %s -o %s", small, w);
    assert_int_equal(tu_run_cli(args, NULL, NULL), 0);
    snprintf(args, sizeof args, "export %s --weights %s -o %s", wide, w, m);
    int st = tu_run_cli(args, &out, &errs);
    fprintf(stderr, "mismatch: exit %d, stderr: %s", st, errs);
    assert_int_equal(st, 1);
    assert_non_null(strstr(errs, w));
    assert_non_null(strstr(errs, "tensor '"));
    assert_true(strchr(errs, '\n') == errs + strlen(errs) - 1); /* exactly one line */
    assert_string_equal(out, "");
    assert_false(exists(m));
    snprintf(tmp, sizeof tmp, "%s.tmp", m);
    assert_false(exists(tmp));
    free(out), free(errs);
    unlink(w);
    free(small);
    free(wide);
    free(w);
    free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_randomize_bn),    cmocka_unit_test(test_export_errors),
        cmocka_unit_test(test_fmnist_dynamic),  cmocka_unit_test(test_cli_init_export),
        cmocka_unit_test(test_cli_mismatch),    cmocka_unit_test(test_gpunet_0),
        cmocka_unit_test(test_gpunet_1),        cmocka_unit_test(test_gpunet_2),
        cmocka_unit_test(test_gpunet_p0),       cmocka_unit_test(test_gpunet_p1),
        cmocka_unit_test(test_gpunet_d1),       cmocka_unit_test(test_gpunet_d2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
