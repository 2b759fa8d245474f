/* test_zerocost.c — `gpunas zerocost` (the NASWOT score, gn_net_naswot) against an
 * independent PyTorch implementation (tests/pytorch/naswot_ref.py, Debian's
 * python3-torch): the same initial weights and batch (--dump), the same units counted,
 * the score within 1e-4 relative, for a ReLU+Swish network with SE (fmnist-small), a
 * wider one, and GPUNet-0 at 64x64 (batch 8).  Then: repeats average, another seed
 * gives another score, and bad input is one line with exit 1 or 2. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"

#define PY "/usr/bin/python3"

static double field(const char *json, const char *key)
{
    const char *p = strstr(json, key);
    if (!p)
        fail_msg("no '%s' in %s", key, json);
    return strtod(p + strlen(key), NULL);
}

static void check_against_torch(const char *config_rel, const char *extra, const char *tag)
{
    char *cfg = config_rel[0] == '/' ? strdup(config_rel) : tu_source_path(config_rel), *dir = tu_tmp_path(tag),
         cmd[8192], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "zerocost %s --repeats 1 --dump %s --json --threads 1 %s", cfg, dir, extra);
    if (tu_run_cli(cmd, &out, &err) != 0)
        fail_msg("gpunas %s: %s", cmd, err ? err : "");
    double score = field(out, "\"naswot\": ");
    long units = (long)field(out, "\"units\": ");
    assert_true(score > 0 && units > 0);
    char *ref = tu_source_path("tests/pytorch/naswot_ref.py");
    snprintf(cmd, sizeof cmd, PY " %s %s %s/init.safetensors %s/batch.npy --expect %.10g --tol 1e-4 >%s/ref.txt 2>&1",
             ref, cfg, dir, dir, score, dir);
    int rc = system(cmd);
    snprintf(cmd, sizeof cmd, "%s/ref.txt", dir);
    char *txt = tu_read_file(cmd, NULL);
    fprintf(stderr, "test_zerocost: %s: gpunas %.6f (%ld units); torch %s", config_rel, score, units,
            txt ? txt : "(no output)\n");
    assert_int_equal(rc, 0);
    char want[64];
    snprintf(want, sizeof want, "units=%ld", units);
    assert_non_null(strstr(txt, want)); /* the same units counted */
    free(txt), free(ref), free(out), free(err), free(cfg), free(dir);
}

static void test_small(void **state)
{
    (void)state;
    check_against_torch("configs/fmnist-small.json", "", "zc-small");
}

static void test_wide(void **state)
{
    (void)state;
    check_against_torch("configs/fmnist-wide.json", "--batch 32", "zc-wide");
}

static void test_gpunet0(void **state)
{
    (void)state;
    /* GPUNet-0's layer list with 1 input channel, 10 classes, 64x64 (Fashion-MNIST
     * images resized): every kind of block of the released models, made by the test */
    char *src = tu_source_path("configs/gpunet/gpunet-0.json"), *dst = tu_tmp_path("zc-gpunet0.json"), cmd[4096];
    snprintf(cmd, sizeof cmd,
             PY " -c \"import json,sys; c=json.load(open('%s')); c[0]['img_resolution']=64;"
                " c[1]['num_in_channels']=1; [l.update(num_classes=10) for l in c if 'num_classes' in l];"
                " json.dump(c, open('%s','w'))\"",
             src, dst);
    assert_int_equal(system(cmd), 0);
    char rel[4200];
    snprintf(rel, sizeof rel, "%s", dst);
    check_against_torch(rel, "--batch 8", "zc-gpunet0");
    free(src), free(dst);
}

static void test_repeats_and_errors(void **state)
{
    (void)state;
    char *cfg = tu_source_path("configs/fmnist-small.json"), cmd[4096], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "zerocost %s --repeats 2 --json --threads 1", cfg);
    assert_int_equal(tu_run_cli(cmd, &out, &err), 0);
    double mean = field(out, "\"naswot\": ");
    const char *s = strstr(out, "\"scores\": [");
    assert_non_null(s);
    double a = strtod(s + 11, NULL), b = strtod(strchr(s, ',') + 1, NULL);
    assert_true(a != b); /* another initialisation and batch */
    assert_true(mean > 0 && fabs(mean - (a + b) / 2) < 1e-6 * mean);
    free(out), free(err);
    assert_int_equal(tu_run_cli("zerocost /nonexistent.json", &out, &err), 1);
    assert_non_null(strstr(err, "/nonexistent.json"));
    free(out), free(err);
    snprintf(cmd, sizeof cmd, "zerocost %s --batch 1", cfg);
    assert_int_equal(tu_run_cli(cmd, &out, &err), 2);
    free(out), free(err);
    snprintf(cmd, sizeof cmd, "zerocost %s --dump /tmp/x --repeats 2", cfg);
    assert_int_equal(tu_run_cli(cmd, &out, &err), 2);
    assert_non_null(strstr(err, "--repeats 1"));
    free(out), free(err);
    char *g = tu_source_path("configs/gpunet/gpunet-0.json");
    snprintf(cmd, sizeof cmd, "zerocost %s --repeats 1", g);
    assert_int_equal(tu_run_cli(cmd, &out, &err), 1);
    assert_non_null(strstr(err, "input channels"));
    free(out), free(err), free(g), free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small),
        cmocka_unit_test(test_wide),
        cmocka_unit_test(test_gpunet0),
        cmocka_unit_test(test_repeats_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
