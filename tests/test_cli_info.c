/*
 * test_cli_info.c — `gpunas info` / `gpunas format` as a user runs them: exit codes,
 * one-line errors on stderr, the table and --json totals, and agreement with the
 * independent Python reference count (tests/reference/gpunet_count.py) for every
 * released config at several resolutions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpunas/arch.h"
#include "testutil.h"

static const char *configs[] = {"gpunet-0.json",  "gpunet-1.json",   "gpunet-2.json",  "gpunet-p0.json",
                                "gpunet-p1.json", "gpunet-d1.json", "gpunet-d2.json"};

static int count_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

static void test_info_table_and_json(void **state)
{
    char *cfg = tu_source_path("configs/gpunet/gpunet-0.json");
    char args[1024], *out, *err;
    snprintf(args, sizeof args, "info %s", cfg);
    assert_int_equal(tu_run_cli(args, &out, &err), 0);
    assert_non_null(strstr(out, "total: 11,885,432 params, 3,254,209,280 MACs"));
    assert_non_null(strstr(out, "32x79x79")); /* padding quirk visible in the table */
    assert_string_equal(err, "");
    free(out);
    free(err);

    snprintf(args, sizeof args, "info %s --res 224 --classes 10 --json", cfg);
    assert_int_equal(tu_run_cli(args, &out, &err), 0);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "params")), 10617242);
    assert_int_equal(json_integer_value(json_object_get(j, "macs")), 1583351744LL);
    assert_int_equal(json_array_size(json_object_get(j, "layers")), 14);
    json_decref(j);
    free(out);
    free(err);

    snprintf(args, sizeof args, "info %s --same-pad --json", cfg);
    assert_int_equal(tu_run_cli(args, &out, &err), 0);
    j = json_loads(out, 0, &je);
    json_t *l4 = json_array_get(json_object_get(j, "layers"), 3);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(l4, "output"), 1)), 80);
    json_decref(j);
    free(out);
    free(err);
    free(cfg);
}

static void test_info_errors(void **state)
{
    char *bad = tu_tmp_path("broken.json");
    tu_write_file(bad, "[{\"layer_type\":\"data\",\"img_resolution\":32,\"distill\":false},\n"
                       "{\"layer_type\":\"head\",\"num_in_channels\":3,\"num_out_channels\":16},\n"
                       "{\"layer_type\":\"tail\",\"num_in_channels\":8,\"num_out_channels\":64,\"num_classes\":10}]\n");
    char args[1024], *out, *err;
    snprintf(args, sizeof args, "info %s", bad);
    assert_int_equal(tu_run_cli(args, &out, &err), 1);
    assert_int_equal(count_lines(err), 1);
    assert_non_null(strstr(err, bad));
    assert_non_null(strstr(err, "layer 2: field 'num_in_channels': 8 does not match num_out_channels 16"));
    assert_string_equal(out, "");
    free(out);
    free(err);

    tu_write_file(bad, "[{\"layer_type\":\"data\",\"img_resolution\":32,");
    assert_int_equal(tu_run_cli(args, &out, &err), 1);
    assert_int_equal(count_lines(err), 1);
    assert_non_null(strstr(err, "invalid JSON"));
    free(out);
    free(err);

    char *cfg = tu_source_path("configs/gpunet/gpunet-0.json");
    snprintf(args, sizeof args, "info %s --res 4", cfg);
    assert_int_equal(tu_run_cli(args, &out, &err), 1);
    assert_int_equal(count_lines(err), 1);
    assert_non_null(strstr(err, "too small"));
    free(out);
    free(err);

    snprintf(args, sizeof args, "info %s --res abc", cfg);
    assert_int_equal(tu_run_cli(args, &out, &err), 2);
    assert_non_null(strstr(err, "option --res: 'abc' is not an integer"));
    free(out);
    free(err);

    assert_int_equal(tu_run_cli("info", &out, &err), 2);
    assert_non_null(strstr(err, "missing CONFIG.json"));
    free(out);
    free(err);
    assert_int_equal(tu_run_cli("frobnicate", &out, &err), 2);
    free(out);
    free(err);
    free(cfg);
    free(bad);
}

static void test_info_space(void **state)
{
    char *small = tu_source_path("configs/fmnist-small.json"), *wide = tu_source_path("configs/fmnist-wide.json");
    char *space = tu_source_path("spaces/fmnist.json");
    char args[2048], *out, *err;
    /* fmnist-small is a member of the fmnist space (the space's note says so) */
    snprintf(args, sizeof args, "info %s --space fmnist", small);
    assert_int_equal(tu_run_cli(args, &out, &err), 0);
    assert_non_null(strstr(out, "space fmnist: member, encoding "));
    assert_string_equal(err, "");
    free(out);
    free(err);
    /* fmnist-wide is not: its tail has 512 filters, the space only 256 (exit 0 all the same) */
    snprintf(args, sizeof args, "info %s --space %s --json", wide, space);
    assert_int_equal(tu_run_cli(args, &out, &err), 0);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    assert_non_null(j);
    json_t *sp = json_object_get(j, "space");
    assert_string_equal(json_string_value(json_object_get(sp, "name")), "fmnist");
    assert_true(json_is_false(json_object_get(sp, "member")));
    assert_true(json_is_null(json_object_get(sp, "encoding")));
    assert_non_null(strstr(json_string_value(json_object_get(sp, "reason")), "tail filters 512 is not one of [256]"));
    json_decref(j);
    free(out);
    free(err);
    /* --json gives a member its encoding and no reason */
    snprintf(args, sizeof args, "info %s --space fmnist --json", small);
    assert_int_equal(tu_run_cli(args, &out, &err), 0);
    j = json_loads(out, 0, &je);
    sp = json_object_get(j, "space");
    assert_true(json_is_true(json_object_get(sp, "member")));
    assert_non_null(json_string_value(json_object_get(sp, "encoding")));
    assert_true(json_is_null(json_object_get(sp, "reason")));
    json_decref(j);
    free(out);
    free(err);
    /* a space that cannot be read: one line, exit 1 */
    snprintf(args, sizeof args, "info %s --space /nonexistent/space.json", small);
    assert_int_equal(tu_run_cli(args, &out, &err), 1);
    assert_int_equal(count_lines(err), 1);
    assert_non_null(strstr(err, "/nonexistent/space.json"));
    free(out);
    free(err);
    free(small);
    free(wide);
    free(space);
}

static void test_format_round_trip(void **state)
{
    char *cfg = tu_source_path("configs/gpunet/gpunet-d2.json");
    char *f1 = tu_tmp_path("f1.json"), *f2 = tu_tmp_path("f2.json");
    char args[1024], *out, *err;
    snprintf(args, sizeof args, "format %s -o %s", cfg, f1);
    assert_int_equal(tu_run_cli(args, &out, &err), 0);
    free(out);
    free(err);
    snprintf(args, sizeof args, "format %s -o %s", f1, f2);
    assert_int_equal(tu_run_cli(args, &out, &err), 0);
    free(out);
    free(err);
    char *a = tu_read_file(f1, NULL), *b = tu_read_file(f2, NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(a, b);
    free(a);
    free(b);
    snprintf(args, sizeof args, "format %s -o /nonexistent-dir/x.json", cfg);
    assert_int_equal(tu_run_cli(args, &out, &err), 1);
    assert_non_null(strstr(err, "/nonexistent-dir/x.json.tmp: cannot write"));
    free(out);
    free(err);
    free(cfg);
    free(f1);
    free(f2);
}

/* C library vs the independent Python reference, for every released config. */
static void test_against_python_reference(void **state)
{
    if (system("python3 -c 1 >/dev/null 2>&1") != 0) {
        skip();
    }
    char *script = tu_source_path("tests/reference/gpunet_count.py");
    const int resolutions[] = {0, 224, 97, 512};
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "configs/gpunet/%s", configs[i]);
        char *path = tu_source_path(rel);
        for (size_t r = 0; r < sizeof resolutions / sizeof resolutions[0]; r++) {
            gn_arch *a;
            gn_error e;
            assert_int_equal(gn_arch_load(path, &a, &e), 0);
            int res = resolutions[r] ? resolutions[r] : a->resolution;
            assert_int_equal(gn_arch_set_resolution(a, res, &e), 0);
            assert_int_equal(gn_arch_set_classes(a, 37, &e), 0);
            char cmd[1024];
            snprintf(cmd, sizeof cmd, "python3 %s %s %d 37", script, path, res);
            FILE *p = popen(cmd, "r");
            assert_non_null(p);
            long long pp = -1, mm = -1;
            int rr = -1;
            assert_int_equal(fscanf(p, "%lld %lld %d", &pp, &mm, &rr), 3);
            assert_int_equal(pclose(p), 0);
            if (pp != a->params || mm != a->macs)
                fprintf(stderr, "%s @%d: C %lld/%lld python %lld/%lld\n", configs[i], res, (long long)a->params,
                        (long long)a->macs, pp, mm);
            assert_int_equal(a->params, pp);
            assert_int_equal(a->macs, mm);
            gn_arch_free(a);
        }
        free(path);
    }
    free(script);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_info_table_and_json),
        cmocka_unit_test(test_info_errors),
        cmocka_unit_test(test_info_space),
        cmocka_unit_test(test_format_round_trip),
        cmocka_unit_test(test_against_python_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
