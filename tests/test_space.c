/*
 * test_space.c — search spaces (gpunas/space.h).
 *
 * Checks: the embedded built-in text equals the spaces/ files byte for byte; the gpunet
 * space has exactly the dimensions and cardinalities of paper Table 1 (docs §1.1) and
 * its extremes decode to the table's values; for 1000 random and 1000 Sobol
 * encodings of both spaces, decoding gives a valid network whose layers follow the
 * encoding (layer count, strides, channels), encode_arch(decode(x)) gives back the
 * canonical x and the text form round-trips; Sobol encodings are balanced per
 * dimension and reproducible; mutation stays in range, never mutates its input, and
 * always changes the decoded network; GPUNet-2 (with Table 1's 1792-wide tail) and
 * configs/fmnist-small.json are members and decode back to the same layer lists, while
 * GPUNet-0 and the distill models are refused with one-line reasons; malformed space
 * files and encodings give one-line errors naming the file and field.
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

#include "gpunas/space.h"
#include "testutil.h"

static gn_space *builtin(const char *name)
{
    gn_space *s;
    gn_error err;
    if (gn_space_builtin(name, &s, &err))
        fail_msg("%s", err.msg);
    return s;
}

static int dim_of(const gn_space *s, const char *name)
{
    for (int i = 0; i < gn_space_desc(s)->ndims; i++)
        if (strcmp(gn_space_dim_name(s, i), name) == 0)
            return i;
    fail_msg("no dimension %s", name);
    return -1;
}

static void test_builtin_text_equals_files(void **state)
{
    const char *names[] = {"gpunet", "fmnist"};
    for (int i = 0; i < 2; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "spaces/%s.json", names[i]);
        char *path = tu_source_path(rel);
        size_t n;
        char *file = tu_read_file(path, &n);
        assert_non_null(file);
        const char *text = gn_space_builtin_text(names[i]);
        assert_non_null(text);
        assert_int_equal(strlen(text), n);
        assert_memory_equal(text, file, n);
        /* and the file loads as the same space */
        gn_space *a, *b = builtin(names[i]);
        gn_error err;
        if (gn_space_load(path, &a, &err))
            fail_msg("%s", err.msg);
        assert_string_equal(gn_space_name(a), names[i]);
        assert_memory_equal(gn_space_desc(a), gn_space_desc(b), sizeof(gn_enc_desc));
        gn_space_free(a);
        gn_space_free(b);
        free(file);
        free(path);
    }
    assert_null(gn_space_builtin_text("nope"));
    gn_space *s;
    gn_error err;
    assert_int_not_equal(gn_space_builtin("nope", &s, &err), 0);
    assert_non_null(strstr(err.msg, "unknown built-in search space 'nope'"));
}

/* Table 1 (docs §1.1), stage by stage: the cardinality of each searched choice. */
static void test_gpunet_table1(void **state)
{
    gn_space *s = builtin("gpunet");
    const gn_enc_desc *d = gn_space_desc(s);
    static const struct {
        const char *name;
        int card;
    } want[] = {
        {"res", 10},
        {"s0.act", 2},        {"s0.filters", 2}, /* kernel fixed at 3: the prologue */
        {"s1.layers", 4},     {"s1.kernel", 2},     {"s1.act", 2}, {"s1.filters", 2},
        {"s2.layers", 8},     {"s2.kernel", 2},     {"s2.act", 2}, {"s2.expansion", 5}, {"s2.filters", 4}, {"s2.se", 2},
        {"s3.layers", 8},     {"s3.kernel", 2},     {"s3.act", 2}, {"s3.expansion", 5}, {"s3.filters", 5}, {"s3.se", 2},
        {"s4.layers", 10},    {"s4.kernel", 2},     {"s4.act", 2}, {"s4.expansion", 5}, {"s4.filters", 7}, {"s4.se", 2},
        {"s5.layers", 16},    {"s5.kernel", 2},     {"s5.act", 2}, {"s5.expansion", 5}, {"s5.filters", 8}, {"s5.se", 2},
        {"s6.layers", 15},    {"s6.kernel", 2},     {"s6.act", 2}, {"s6.expansion", 5}, {"s6.filters", 10}, {"s6.se", 2},
        {"s7.layers", 16},    {"s7.kernel", 2},     {"s7.act", 2}, {"s7.expansion", 5}, {"s7.filters", 10}, {"s7.se", 2},
    };
    int n = (int)(sizeof want / sizeof want[0]);
    assert_int_equal(d->ndims, n);
    double size = 1;
    for (int i = 0; i < n; i++) {
        assert_string_equal(gn_space_dim_name(s, i), want[i].name);
        assert_int_equal(d->card[i], want[i].card);
        size *= want[i].card;
    }
    assert_true(gn_space_size(s) == size);
    assert_int_equal(gn_space_in_channels(s), 3);
    assert_int_equal(gn_space_classes(s), 1000);

    /* all-minimum and all-maximum encodings decode to the table's ends */
    int lo[GN_ENC_MAX_DIMS] = {0}, hi[GN_ENC_MAX_DIMS];
    for (int i = 0; i < n; i++)
        hi[i] = d->card[i] - 1;
    gn_arch *a;
    gn_error err;
    if (gn_space_decode(s, lo, &a, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(a->resolution, 224);
    /* data, head, 1 conv, 1+1 fused, 1 irb (stage 4), stage 5 absent, 1 irb (stage 6), stage 7 absent, tail */
    assert_int_equal(a->n_layers, 8);
    static const int lo_out[] = {0, 24, 24, 32, 48, 96, 128, 1792};
    static const int lo_stage[] = {0, 0, 1, 2, 3, 4, 6, 0};
    for (int i = 1; i < a->n_layers; i++) {
        assert_int_equal(a->layers[i].out_ch, lo_out[i]);
        if (i >= 2 && i < 7) {
            assert_int_equal(a->layers[i].stage, lo_stage[i]);
            assert_int_equal(a->layers[i].kernel, 3);
            assert_int_equal(a->layers[i].act, GN_ACT_RELU);
            assert_int_equal(a->layers[i].stride, i == 2 ? 1 : 2);
            if (i >= 3) {
                assert_true(a->layers[i].expansion == 2.0);
                assert_false(a->layers[i].use_se);
            }
        }
    }
    assert_int_equal(a->layers[1].act, GN_ACT_RELU);
    assert_int_equal(a->layers[7].num_classes, 1000);
    gn_arch_free(a);

    if (gn_space_decode(s, hi, &a, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(a->resolution, 512);
    assert_int_equal(a->n_layers, 3 + 4 + 8 + 8 + 10 + 15 + 15 + 15);
    int count[8] = {0};
    for (int i = 2; i < a->n_layers - 1; i++) {
        const gn_layer *L = &a->layers[i];
        count[L->stage]++;
        assert_int_equal(L->kernel, 5);
        assert_int_equal(L->act, GN_ACT_SWISH);
        if (L->type != GN_LAYER_CONV) {
            assert_true(L->expansion == 6.0);
            assert_true(L->use_se);
        }
        int first = i == 2 || a->layers[i - 1].stage != L->stage;
        int stride2 = L->stage == 2 || L->stage == 3 || L->stage == 4 || L->stage == 6;
        assert_int_equal(L->stride, first && stride2 ? 2 : 1);
    }
    static const int hi_count[8] = {0, 4, 8, 8, 10, 15, 15, 15};
    assert_memory_equal(count, hi_count, sizeof count);
    static const int hi_filters[8] = {32, 32, 80, 112, 192, 224, 416, 832};
    assert_int_equal(a->layers[1].out_ch, hi_filters[0]);
    for (int i = 2; i < a->n_layers - 1; i++)
        assert_int_equal(a->layers[i].out_ch, hi_filters[a->layers[i].stage]);
    assert_int_equal(a->layers[a->n_layers - 1].out_ch, 1792);
    gn_arch_free(a);
    gn_space_free(s);
}

/* Decode x, check the network follows x, and the round trips. */
static void check_member(const gn_space *s, const int *x, int64_t *pmin, int64_t *pmax)
{
    const gn_enc_desc *d = gn_space_desc(s);
    gn_arch *a;
    gn_error err;
    if (gn_space_decode(s, x, &a, &err))
        fail_msg("%s", err.msg);
    /* layer count: data + head + the stages' layers + tail */
    int layers = 3;
    char *desc = gn_space_describe(s, x);
    /* count the "k:NxTYPE" groups in the description */
    for (const char *p = desc; (p = strstr(p, " | ")); p += 3) {
        int st, n;
        if (sscanf(p, " | %d:%dx", &st, &n) == 2)
            layers += n;
    }
    assert_int_equal(a->n_layers, layers);
    assert_false(a->distill);
    assert_int_equal(a->layers[1].in_ch, gn_space_in_channels(s));
    assert_int_equal(a->layers[a->n_layers - 1].num_classes, gn_space_classes(s));
    for (int i = 2; i < a->n_layers - 1; i++) {
        const gn_layer *L = &a->layers[i], *P = &a->layers[i - 1];
        if (P->type == L->type && P->stage == L->stage) {
            assert_int_equal(L->stride, 1); /* only a stage's first layer strides */
            assert_int_equal(L->out_ch, P->out_ch);
            assert_true(L->residual || L->type == GN_LAYER_CONV);
        }
    }
    if (a->params < *pmin)
        *pmin = a->params;
    if (a->params > *pmax)
        *pmax = a->params;

    int y[GN_ENC_MAX_DIMS], c[GN_ENC_MAX_DIMS];
    if (gn_space_encode_arch(s, a, y, &err))
        fail_msg("%s", err.msg);
    gn_space_canonical(s, x, c);
    assert_memory_equal(y, c, sizeof(int) * (size_t)d->ndims);

    char *str = gn_space_encode_to_string(s, x);
    if (gn_space_parse_string(s, str, y, &err))
        fail_msg("%s", err.msg);
    assert_memory_equal(y, x, sizeof(int) * (size_t)d->ndims);
    free(str);
    free(desc);
    gn_arch_free(a);
}

static void test_random_and_sobol_members(void **state)
{
    const char *names[] = {"gpunet", "fmnist"};
    for (int k = 0; k < 2; k++) {
        gn_space *s = builtin(names[k]);
        const gn_enc_desc *d = gn_space_desc(s);
        gn_rng r;
        gn_rng_seed(&r, 11 + k);
        int x[GN_ENC_MAX_DIMS];
        int64_t pmin = INT64_MAX, pmax = 0;
        for (int i = 0; i < 1000; i++) {
            gn_space_sample_random(s, &r, x);
            for (int j = 0; j < d->ndims; j++)
                assert_true(x[j] >= 0 && x[j] < d->card[j]);
            check_member(s, x, &pmin, &pmax);
        }
        gn_space_sobol *q;
        gn_error err;
        assert_int_equal(gn_space_sobol_create(s, 5, &q, &err), 0);
        for (int i = 0; i < 1000; i++) {
            gn_space_sobol_next(q, x);
            check_member(s, x, &pmin, &pmax);
        }
        gn_space_sobol_free(q);
        print_message("%s: %d dims, %.3g encodings, params of 2000 samples %lld .. %lld\n", names[k], d->ndims,
                      gn_space_size(s), (long long)pmin, (long long)pmax);
        if (k == 0) { /* GPUNet-sized: a few M to ~100M params */
            assert_true(pmin > 1000000 && pmax < 200000000);
        } else { /* Fashion-MNIST-sized: tens of k to a few M */
            assert_true(pmin > 10000 && pmax < 5000000);
        }
        gn_space_free(s);
    }
}

static void test_sobol_sampler(void **state)
{
    gn_space *s = builtin("gpunet");
    const gn_enc_desc *d = gn_space_desc(s);
    gn_space_sobol *q, *p;
    gn_error err;
    const int n = 1024;
    int(*xs)[GN_ENC_MAX_DIMS] = malloc(sizeof(int[GN_ENC_MAX_DIMS]) * n);
    assert_int_equal(gn_space_sobol_create(s, 77, &q, &err), 0);
    for (int i = 0; i < n; i++)
        gn_space_sobol_next(q, xs[i]);
    assert_int_equal(gn_space_sobol_index(q), n);
    /* every value of every dimension appears within 2 of n / card times */
    for (int j = 0; j < d->ndims; j++) {
        int cnt[64] = {0};
        for (int i = 0; i < n; i++)
            cnt[xs[i][j]]++;
        for (int v = 0; v < d->card[j]; v++)
            if (fabs(cnt[v] - (double)n / d->card[j]) >= 2)
                fail_msg("dim %s value %d: %d of %d points", gn_space_dim_name(s, j), v, cnt[v], n);
    }
    /* same seed, same points; skip lands in the same place; another seed differs */
    assert_int_equal(gn_space_sobol_create(s, 77, &p, &err), 0);
    gn_space_sobol_skip(p, 500);
    int x[GN_ENC_MAX_DIMS];
    gn_space_sobol_next(p, x);
    assert_memory_equal(x, xs[500], sizeof(int) * (size_t)d->ndims);
    gn_space_sobol_free(p);
    assert_int_equal(gn_space_sobol_create(s, 78, &p, &err), 0);
    int same = 0;
    for (int i = 0; i < 64; i++) {
        gn_space_sobol_next(p, x);
        same += memcmp(x, xs[i], sizeof(int) * (size_t)d->ndims) == 0;
    }
    assert_int_equal(same, 0);
    gn_space_sobol_free(p);
    gn_space_sobol_free(q);
    free(xs);
    gn_space_free(s);
}

static void test_mutate(void **state)
{
    const char *names[] = {"gpunet", "fmnist"};
    const double rates[] = {0.0, 0.05, 0.3, 1.0};
    for (int k = 0; k < 2; k++) {
        gn_space *s = builtin(names[k]);
        const gn_enc_desc *d = gn_space_desc(s);
        gn_rng r;
        gn_rng_seed(&r, 3);
        int x[GN_ENC_MAX_DIMS], x0[GN_ENC_MAX_DIMS], y[GN_ENC_MAX_DIMS];
        gn_error err;
        for (int t = 0; t < 2000; t++) {
            double rate = rates[t % 4];
            gn_space_sample_random(s, &r, x);
            if (t % 3 == 0) /* encodings with empty stages exercise the inert dimensions */
                for (int j = 0; j < d->ndims; j++)
                    if (strstr(gn_space_dim_name(s, j), ".layers") && gn_rng_below(&r, 2))
                        x[j] = 0;
            memcpy(x0, x, sizeof x);
            gn_space_mutate(s, &r, x, y, rate);
            assert_memory_equal(x, x0, sizeof x); /* input untouched */
            int changed = 0;
            for (int j = 0; j < d->ndims; j++) {
                assert_true(y[j] >= 0 && y[j] < d->card[j]);
                changed += y[j] != x[j];
            }
            assert_true(changed >= 1);
            if (rate == 0.0)
                assert_int_equal(changed, 1);
            char *jx = gn_space_decode_json(s, x, &err), *jy = gn_space_decode_json(s, y, &err);
            assert_non_null(jx);
            assert_non_null(jy);
            assert_string_not_equal(jx, jy); /* the network itself changed */
            free(jx);
            free(jy);
            gn_space_mutate(s, &r, x, x, rate); /* in place */
            assert_memory_not_equal(x, x0, sizeof(int) * (size_t)d->ndims);
        }
        gn_space_free(s);
    }
}

/* Layer lists equal field by field (what the builder reads). */
static void assert_same_layers(const gn_arch *a, const gn_arch *b)
{
    assert_int_equal(a->n_layers, b->n_layers);
    assert_int_equal(a->resolution, b->resolution);
    for (int i = 0; i < a->n_layers; i++) {
        const gn_layer *p = &a->layers[i], *q = &b->layers[i];
        assert_int_equal(p->type, q->type);
        assert_int_equal(p->in_ch, q->in_ch);
        assert_int_equal(p->out_ch, q->out_ch);
        assert_int_equal(p->stride, q->stride);
        assert_int_equal(p->kernel, q->kernel);
        assert_true(p->expansion == q->expansion);
        assert_int_equal(p->act, q->act);
        assert_int_equal(p->use_se, q->use_se);
        assert_int_equal(p->stage, q->stage);
        assert_int_equal(p->num_classes, q->num_classes);
    }
    assert_int_equal(a->params, b->params);
    assert_int_equal(a->macs, b->macs);
}

static void test_released_models(void **state)
{
    gn_space *s = builtin("gpunet");
    gn_error err;
    gn_arch *g2, *b;
    int x[GN_ENC_MAX_DIMS];
    char *path = tu_source_path("configs/gpunet/gpunet-2.json");
    if (gn_arch_load(path, &g2, &err))
        fail_msg("%s", err.msg);
    free(path);
    /* as released, the tail is 1280 wide; Table 1 says 1792 */
    assert_int_not_equal(gn_space_encode_arch(s, g2, x, &err), 0);
    assert_non_null(strstr(err.msg, "tail filters 1280 is not one of [1792]"));
    assert_null(strchr(err.msg, '\n'));
    g2->layers[g2->n_layers - 1].out_ch = 1792;
    assert_int_equal(gn_arch_resolve(g2, &err), 0);
    if (gn_space_encode_arch(s, g2, x, &err))
        fail_msg("%s", err.msg);
    if (gn_space_decode(s, x, &b, &err))
        fail_msg("%s", err.msg);
    assert_same_layers(g2, b);
    char *desc = gn_space_describe(s, x);
    assert_string_equal(desc, "r384 h32S | 1:3xconv k3 32R | 2:1xfused k5 e6 32S+se | 3:3xfused k3 e3 112S | "
                              "4:6xirb k3 e6 144S | 5:4xirb k5 e3 160R | 6:8xirb k3 e3 224S+se | 7:7xirb k5 e2 832R "
                              "| t1792");
    free(desc);
    gn_arch_free(b);
    gn_arch_free(g2);

    /* GPUNet-0 is outside the table (stage 4 has 256 filters, docs §1.4) */
    gn_arch *g0;
    path = tu_source_path("configs/gpunet/gpunet-0.json");
    assert_int_equal(gn_arch_load(path, &g0, &err), 0);
    free(path);
    assert_int_not_equal(gn_space_encode_arch(s, g0, x, &err), 0);
    assert_non_null(strstr(err.msg, "layer 9: field 'num_out_channels': not in space gpunet: filters 256 is not one "
                                    "of [96, 112, 128, 144, 160, 176, 192]"));
    gn_arch_free(g0);
    path = tu_source_path("configs/gpunet/gpunet-d1.json");
    assert_int_equal(gn_arch_load(path, &g0, &err), 0);
    free(path);
    assert_int_not_equal(gn_space_encode_arch(s, g0, x, &err), 0);
    assert_non_null(strstr(err.msg, "field 'distill'"));
    gn_arch_free(g0);
    gn_space_free(s);

    /* the bundled Fashion-MNIST config is a member of the fmnist space, and decodes
     * back to the same file byte for byte (canonical layout) */
    s = builtin("fmnist");
    path = tu_source_path("configs/fmnist-small.json");
    gn_arch *f;
    assert_int_equal(gn_arch_load(path, &f, &err), 0);
    if (gn_space_encode_arch(s, f, x, &err))
        fail_msg("%s", err.msg);
    char *json = gn_space_decode_json(s, x, &err);
    assert_non_null(json);
    char *file = tu_read_file(path, NULL);
    assert_string_equal(json, file);
    free(file);
    free(json);
    gn_space_free(s);

    /* a space without swish in stage 4 does not hold it; the reason names the layer */
    const char *text = gn_space_builtin_text("fmnist");
    const char *from = "\"act\": [\"relu\", \"swish\"], \"expansion\": [2, 3, 4, 6], \"filters\": {\"min\": 48";
    const char *at = strstr(text, from);
    assert_non_null(at);
    size_t n = strlen(text) + 1;
    char *edited = malloc(n);
    snprintf(edited, n, "%.*s\"act\": [\"relu\"]%s", (int)(at - text), text, at + strlen("\"act\": [\"relu\", \"swish\"]"));
    if (gn_space_parse(edited, "relu-only.json", &s, &err))
        fail_msg("%s", err.msg);
    assert_int_not_equal(gn_space_encode_arch(s, f, x, &err), 0);
    assert_non_null(strstr(err.msg, "layer 5: field 'act': not in space fmnist: activation \"swish\" is not one of "
                                    "[\"relu\"]"));
    free(edited);
    free(path);
    gn_arch_free(f);
    gn_space_free(s);
}

static void test_strings_and_checks(void **state)
{
    gn_space *s = builtin("fmnist");
    const gn_enc_desc *d = gn_space_desc(s);
    int x[GN_ENC_MAX_DIMS] = {0};
    gn_error err;
    char *str = gn_space_encode_to_string(s, x);
    assert_int_equal(strlen(str), 2 * d->ndims - 1);
    assert_int_equal(gn_space_parse_string(s, str, x, &err), 0);
    free(str);
    static const struct {
        const char *text, *msg;
    } bad[] = {
        {"", "value 0 is not a non-negative integer"},
        {"1,0", "2 values, the space has"},
        {"0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0", "more than the space's"},
        {"9,0", "dimension 0 (res): value 9 out of range [0, 2)"},
        {"0,x", "value 1 is not a non-negative integer"},
        {"0;1", "expected ',' after value 0"},
        {"-1,0", "value 0 is not a non-negative integer"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_not_equal(gn_space_parse_string(s, bad[i].text, x, &err), 0);
        if (!strstr(err.msg, bad[i].msg) || !strstr(err.msg, "builtin:fmnist"))
            fail_msg("'%s': got '%s'", bad[i].text, err.msg);
    }
    x[dim_of(s, "s2.filters")] = 7;
    gn_arch *a;
    assert_int_not_equal(gn_space_decode(s, x, &a, &err), 0);
    assert_null(a);
    assert_non_null(strstr(err.msg, "(s2.filters): value 7 out of range [0, 4)"));
    /* inert dimensions: stage 5 with 0 layers */
    memset(x, 0, sizeof x);
    int l5 = dim_of(s, "s5.layers"), k5 = dim_of(s, "s5.kernel");
    assert_true(gn_space_dim_active(s, x, l5));
    assert_false(gn_space_dim_active(s, x, k5));
    x[k5] = 1;
    int y[GN_ENC_MAX_DIMS];
    gn_space_canonical(s, x, y);
    assert_int_equal(y[k5], 0);
    x[l5] = 1;
    assert_true(gn_space_dim_active(s, x, k5));
    gn_space_free(s);
}

static void test_malformed_spaces(void **state)
{
#define HEAD "{\"stage\":0,\"type\":\"head\",\"filters\":[16]}"
#define S1 "{\"type\":\"irb\",\"stride\":2,\"kernel\":[3,5],\"layers\":{\"min\":1,\"max\":2},\"act\":[\"relu\"]," \
           "\"expansion\":[2,4],\"filters\":[32]}"
#define TOP(stages) "{\"name\":\"t\",\"in_channels\":1,\"classes\":10,\"resolutions\":[32],\"stages\":[" stages \
                    "],\"tail\":{\"filters\":[64]}}"
    static const struct {
        const char *text, *msg;
    } cases[] = {
        {TOP(HEAD "," S1), NULL}, /* the valid base */
        {"{\"name\":\"t\"", "invalid JSON"},
        {"[1]", "top level: expected a search-space object"},
        {"{\"name\":\"t\",\"bogus\":1}", "field 'bogus': unknown field for a search space"},
        {"{\"name\":\"\"}", "field 'name': expected a non-empty string"},
        {"{\"name\":\"t\",\"in_channels\":\"3\"}", "field 'in_channels': expected an integer, got a string"},
        {TOP(HEAD "," "{\"type\":\"resnet\"}"), "stage 1: field 'type': unknown block type \"resnet\""},
        {TOP(S1 "," HEAD), "stage 0: field 'type': stage 0 must be the \"head\""},
        {TOP(HEAD "," HEAD), "stage 1: field 'type': \"head\" may only be stage 0"},
        {TOP(HEAD "," "{\"type\":\"irb\",\"stride\":2,\"kernel\":[3],\"layers\":{\"min\":3,\"max\":1},"
                      "\"act\":[\"relu\"],\"expansion\":[2],\"filters\":[32]}"),
         "stage 1: field 'layers': min 3 > max 1"},
        {TOP(HEAD "," "{\"type\":\"irb\",\"stride\":2,\"kernel\":[],\"layers\":[1],\"act\":[\"relu\"],"
                      "\"expansion\":[2],\"filters\":[32]}"),
         "stage 1: field 'kernel': empty choice list"},
        {TOP(HEAD "," "{\"type\":\"irb\",\"stride\":2,\"kernel\":[3],\"layers\":[1],\"act\":[\"relu\"],"
                      "\"expansion\":[2],\"filters\":{\"min\":32,\"max\":80,\"step\":20}}"),
         "stage 1: field 'filters': step 20 does not divide max - min = 48"},
        {TOP(HEAD "," "{\"type\":\"irb\",\"stride\":2,\"kernel\":[3,4],\"layers\":[1],\"act\":[\"relu\"],"
                      "\"expansion\":[2],\"filters\":[32]}"),
         "stage 1: field 'kernel': choice 1: value 4 must be odd"},
        {TOP(HEAD "," "{\"type\":\"irb\",\"stride\":2,\"kernel\":[3,3],\"layers\":[1],\"act\":[\"relu\"],"
                      "\"expansion\":[2],\"filters\":[32]}"),
         "stage 1: field 'kernel': value 3 given twice"},
        {TOP(HEAD "," "{\"type\":\"irb\",\"stride\":3,\"kernel\":[3],\"layers\":[1],\"act\":[\"relu\"],"
                      "\"expansion\":[2],\"filters\":[32]}"),
         "stage 1: field 'stride': value 3 out of range [1, 2]"},
        {TOP(HEAD "," "{\"type\":\"conv\",\"stride\":1,\"kernel\":[3],\"layers\":[1],\"act\":[\"relu\"],"
                      "\"expansion\":[2],\"filters\":[32]}"),
         "stage 1: field 'expansion': a conv stage has no expansion"},
        {TOP(HEAD "," "{\"type\":\"irb\",\"stride\":1,\"kernel\":[3],\"layers\":[1],\"act\":[\"gelu\"],"
                      "\"expansion\":[2],\"filters\":[32]}"),
         "stage 1: field 'act': choice 0: unknown activation \"gelu\""},
        {TOP(HEAD "," "{\"type\":\"irb\",\"stride\":1,\"kernel\":[3],\"layers\":[0],\"act\":[\"relu\"],"
                      "\"expansion\":[2],\"filters\":[32]}"),
         "stage 1: field 'layers': the stage never has a layer"},
        {TOP(HEAD "," "{\"type\":\"irb\",\"stride\":1,\"kernel\":[3],\"layers\":[1],\"act\":[\"relu\"],"
                      "\"expansion\":[2],\"filters\":[32],\"se\":[0]}"),
         "stage 1: field 'se': choice 0: expected true or false"},
        {TOP(HEAD "," "{\"type\":\"irb\",\"stride\":1,\"kernel\":[3],\"layers\":[1],\"act\":[\"relu\"],"
                      "\"filters\":[32]}"),
         "stage 1: field 'expansion': expected a list of choices"},
        {TOP(HEAD "," "{\"type\":\"irb\",\"stride\":1,\"kernel\":[3],\"layers\":[1],\"act\":[\"relu\"],"
                      "\"expansion\":[2],\"filters\":[32],\"colour\":1}"),
         "stage 1: field 'colour': unknown field for an irb/fused_irb stage"},
        {TOP("{\"stage\":0,\"type\":\"head\",\"kernel\":[5],\"filters\":[16]}," S1),
         "stage 0: field 'kernel': the head (prologue) is always a 3x3 convolution"},
        {TOP("{\"stage\":3,\"type\":\"head\",\"filters\":[16]}," "{\"stage\":2,\"type\":\"irb\",\"stride\":1,"
             "\"kernel\":[3],\"layers\":[1,2],\"act\":[\"relu\"],\"expansion\":[2],\"filters\":[32]}"),
         "stage 1: field 'stage': stage numbers must increase (2 after 3)"},
        {TOP(HEAD), "field 'stages': 1 stages; a space needs the head"},
        {"{\"name\":\"t\",\"in_channels\":1,\"classes\":10,\"resolutions\":[32],\"stages\":[" HEAD "," S1
         "],\"tail\":{\"filters\":{\"min\":64}}}",
         "field 'tail.filters': a range needs 'min' and 'max'"},
        {"{\"name\":\"t\",\"in_channels\":1,\"classes\":10,\"resolutions\":[32],\"stages\":[" HEAD ","
         "{\"type\":\"irb\",\"stride\":1,\"kernel\":[3],\"layers\":[1],\"act\":[\"relu\"],\"expansion\":[2],"
         "\"filters\":[32]}],\"tail\":{\"filters\":[64]}}",
         "every choice has a single value"},
        /* 8x8 input: head -> 4, fused stride 2 with kernel 5 and padding 0 does not fit */
        {"{\"name\":\"t\",\"in_channels\":1,\"classes\":10,\"resolutions\":[8,32],\"stages\":[" HEAD ","
         "{\"type\":\"fused_irb\",\"stride\":2,\"kernel\":[3,5],\"layers\":[1],\"act\":[\"relu\"],"
         "\"expansion\":[2],\"filters\":[32]}],\"tail\":{\"filters\":[64]}}",
         "the space contains invalid networks, e.g. 0,1: t[0,1]: layer 2: input 4x4 is too small for a 5x5 "
         "convolution"},
        /* the largest member's MAC count exceeds 2^63 (loaded before, its members then
         * overflowed the counts; reproducer in tests/fuzz/corpus/space) */
        {"{\"name\":\"t\",\"in_channels\":65536,\"classes\":10,\"resolutions\":[32,16384],\"stages\":["
         "{\"stage\":0,\"type\":\"head\",\"filters\":[16,65536]},{\"type\":\"fused_irb\",\"stride\":1,"
         "\"kernel\":[3,11],\"layers\":[1],\"act\":[\"relu\"],\"expansion\":[1,64],\"filters\":[16,65536]}],"
         "\"tail\":{\"filters\":[64]}}",
         "the space contains invalid networks, e.g. 1,1,1,1,1: t[1,1,1,1,1]: layer 2: the network is too large"},
    };
    char *path = tu_tmp_path("space.json");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(tu_write_file(path, cases[i].text), 0);
        gn_space *s = NULL;
        gn_error err;
        int rc = gn_space_load(path, &s, &err);
        if (!cases[i].msg) {
            if (rc)
                fail_msg("case %zu: %s", i, err.msg);
            gn_space_free(s);
            continue;
        }
        if (rc == 0)
            fail_msg("case %zu: loaded", i);
        assert_null(s);
        if (!strstr(err.msg, cases[i].msg) || strncmp(err.msg, path, strlen(path)) != 0 || strchr(err.msg, '\n'))
            fail_msg("case %zu: expected '%s', got '%s'", i, cases[i].msg, err.msg);
    }
    gn_space *s;
    gn_error err;
    assert_int_not_equal(gn_space_load("/nonexistent/space.json", &s, &err), 0);
    assert_non_null(strstr(err.msg, "/nonexistent/space.json: cannot open"));
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_text_equals_files),
        cmocka_unit_test(test_gpunet_table1),
        cmocka_unit_test(test_random_and_sobol_members),
        cmocka_unit_test(test_sobol_sampler),
        cmocka_unit_test(test_mutate),
        cmocka_unit_test(test_released_models),
        cmocka_unit_test(test_strings_and_checks),
        cmocka_unit_test(test_malformed_spaces),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
