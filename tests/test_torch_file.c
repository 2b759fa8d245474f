/* test_torch_file.c — the PyTorch checkpoint reader (gpunas/torchfile.h).
 *
 * What is checked, and against what:
 *   - tests/pytorch/make_torch_files.py (run with /usr/bin/python3 and torch) writes real
 *     torch.save files and expect.json, an exact description of each one's value tree.
 *     Every valid file is opened and walked in parallel with its description: kinds,
 *     dict key order and classes (OrderedDict / dict, OrderedDict attributes such as
 *     _metadata), ints, float bits, str/bytes bytes, Namespace attributes, tuples, and
 *     for each tensor dtype, shape, stride, offset, storage size, requires_grad, which
 *     tensors share a storage, and every element bit for bit (float16/bfloat16 against
 *     torch's .float(), including all 65536 bit patterns of each).
 *   - The same checkpoint in zip, legacy and deflated-zip form ("archive/" folder), a
 *     plain state dict, a dtype zoo in pickle protocols 2 and 4, bytes after STOP.
 *   - Concrete values a caller relies on (timm checkpoint keys, args.lr, BN counters).
 *   - Every malformed file fails with one line naming the file and the expected reason;
 *     pickles that would run os.system are refused by name and their marker file never
 *     appears; a CRC mismatch is caught when the storage is read.
 *   - Hand-assembled pickles for the opcodes torch does not emit (LIST, DICT, DUP, POP,
 *     POP_MARK, FRAME, STACK_GLOBAL, ...) and their error paths, run in memory.
 *   - Robustness: every truncation of a small zip and a small legacy file, random byte
 *     mutations of whole files and of a real data.pkl (run under ASan/UBSan too).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "gpunas/torchfile.h"
#include "import/torch_internal.h"
#include "testutil.h"

#define PY "/usr/bin/python3"

static char *g_dir;       /* the script's output folder */
static json_t *g_expect;  /* expect.json */
static bool g_ready;      /* files written */

/* ------------------------------------------------------------------ helpers */

static char *fpath(const char *name)
{
    size_t n = strlen(g_dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", g_dir, name);
    return p;
}

#define NEED_FILES()                                                                         \
    do {                                                                                     \
        if (!g_ready) {                                                                      \
            fprintf(stderr, "skipping: %s with torch is not available (install python3-torch)\n", PY); \
            skip();                                                                          \
        }                                                                                    \
    } while (0)

static void assert_msg(const gn_error *e, const char *a, const char *b)
{
    if (!e->msg[0] || (a && !strstr(e->msg, a)) || (b && !strstr(e->msg, b)) || strchr(e->msg, '\n')) {
        fprintf(stderr, "error text: '%s'\nexpected one line containing: '%s' and '%s'\n", e->msg,
                a ? a : "", b ? b : "");
        fail();
    }
}

static gn_pt_file *open_ok(const char *name)
{
    char *p = fpath(name);
    gn_pt_file *f = NULL;
    gn_error e = {{0}};
    if (gn_pt_open(p, &f, &e) != 0) {
        fprintf(stderr, "gn_pt_open(%s): %s\n", p, e.msg);
        fail();
    }
    assert_non_null(f);
    assert_string_equal(gn_pt_path(f), p);
    free(p);
    return f;
}

static void write_bytes(const char *path, const void *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n)
        assert_int_equal(fwrite(buf, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int group_setup(void **state)
{
    (void)state;
    if (system(PY " -c 'import torch, numpy' >/dev/null 2>&1") != 0) {
        fprintf(stderr, "skipping the torch file tests: %s cannot import torch and numpy\n", PY);
        return 0;
    }
    g_dir = tu_tmp_path("torchfiles");
    char *script = tu_source_path("tests/pytorch/make_torch_files.py");
    size_t n = 2 * strlen(g_dir) + strlen(script) + 64;
    char *cmd = malloc(n);
    snprintf(cmd, n, "rm -rf '%s' && " PY " '%s' '%s'", g_dir, script, g_dir);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int st = system(cmd);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    free(cmd);
    free(script);
    if (st != 0) {
        fprintf(stderr, "make_torch_files.py failed (status %d)\n", st);
        return -1;
    }
    fprintf(stderr, "make_torch_files.py: %.1f s\n",
            (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    char *ej = fpath("expect.json");
    json_error_t je;
    g_expect = json_load_file(ej, 0, &je);
    free(ej);
    if (!g_expect) {
        fprintf(stderr, "expect.json: %s\n", je.text);
        return -1;
    }
    g_ready = true;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    if (g_dir) {
        char *m = fpath("pwned_marker");
        int exists = access(m, F_OK) == 0;
        free(m);
        if (!exists) {
            size_t n = strlen(g_dir) + 16;
            char *cmd = malloc(n);
            snprintf(cmd, n, "rm -rf '%s'", g_dir);
            if (system(cmd) != 0)
                fprintf(stderr, "could not remove %s\n", g_dir);
            free(cmd);
        }
    }
    json_decref(g_expect);
    free(g_dir);
    return 0;
}

/* ------------------------------------------------------------------ tree comparison */

typedef struct {
    gn_pt_file *f;
    json_t *group_key;  /* group number (as text) -> storage key */
    json_t *key_group;  /* storage key -> group number */
    int tensors;
    int64_t elements;
} cmp_ctx;

#define MISMATCH(...)                                                                        \
    do {                                                                                     \
        fprintf(stderr, "%s: ", path);                                                       \
        fprintf(stderr, __VA_ARGS__);                                                        \
        fprintf(stderr, "\n");                                                               \
        fail();                                                                              \
    } while (0)

static unsigned char *unhex(const char *h, size_t *n)
{
    size_t l = strlen(h);
    unsigned char *b = malloc(l / 2 + 1);
    for (size_t i = 0; i < l / 2; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        b[i] = (unsigned char)v;
    }
    *n = l / 2;
    return b;
}

static const char *jstr(json_t *j, const char *k)
{
    const char *s = json_string_value(json_object_get(j, k));
    assert_non_null(s);
    return s;
}

static int64_t jint(json_t *j, const char *k)
{
    json_t *v = json_object_get(j, k);
    assert_true(json_is_integer(v));
    return (int64_t)json_integer_value(v);
}

static void cmp(cmp_ctx *c, const gn_pv *v, json_t *j, const char *path);

static void cmp_tensor(cmp_ctx *c, const gn_pv *v, json_t *j, const char *path)
{
    const gn_pt_tensor_info *t = gn_pv_tensor(v);
    if (!t)
        MISMATCH("not a tensor");
    if (strcmp(gn_pt_dtype_name(t->dtype), jstr(j, "dtype")) != 0)
        MISMATCH("dtype %s, expected %s", gn_pt_dtype_name(t->dtype), jstr(j, "dtype"));
    json_t *shape = json_object_get(j, "shape"), *stride = json_object_get(j, "stride");
    if ((size_t)t->ndim != json_array_size(shape))
        MISMATCH("ndim %d, expected %zu", t->ndim, json_array_size(shape));
    int64_t numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] != (int64_t)json_integer_value(json_array_get(shape, (size_t)i)))
            MISMATCH("shape[%d] differs", i);
        if (t->stride[i] != (int64_t)json_integer_value(json_array_get(stride, (size_t)i)))
            MISMATCH("stride[%d] %lld, expected %lld", i, (long long)t->stride[i],
                     (long long)json_integer_value(json_array_get(stride, (size_t)i)));
        numel *= t->shape[i];
    }
    for (int i = t->ndim; i < GN_PT_MAX_DIMS; i++)
        if (t->shape[i] != 0 || t->stride[i] != 0)
            MISMATCH("unused dims not zero");
    if (t->numel != numel)
        MISMATCH("numel");
    if (t->offset != jint(j, "offset"))
        MISMATCH("offset %lld, expected %lld", (long long)t->offset, (long long)jint(j, "offset"));
    if (t->storage_numel != jint(j, "storage_numel"))
        MISMATCH("storage numel");
    if (t->requires_grad != json_is_true(json_object_get(j, "requires_grad")))
        MISMATCH("requires_grad");
    assert_non_null(t->storage_key);

    /* storage sharing: one key per group and one group per key */
    char g[32];
    snprintf(g, sizeof g, "%lld", (long long)jint(j, "group"));
    json_t *known = json_object_get(c->group_key, g), *kg = json_object_get(c->key_group, t->storage_key);
    if (known && strcmp(json_string_value(known), t->storage_key) != 0)
        MISMATCH("storage '%s', but tensors of this storage use '%s'", t->storage_key,
                 json_string_value(known));
    if (kg && strcmp(json_string_value(kg), g) != 0)
        MISMATCH("storage '%s' is shared with tensors that torch keeps apart", t->storage_key);
    json_object_set_new(c->group_key, g, json_string(t->storage_key));
    json_object_set_new(c->key_group, t->storage_key, json_string(g));

    gn_error e = {{0}};
    json_t *bits = json_object_get(j, "f32bits"), *ints = json_object_get(j, "i64");
    size_t n = (size_t)numel;
    if (bits) {
        assert_int_equal(json_array_size(bits), n);
        float *d = malloc((n ? n : 1) * sizeof *d);
        if (gn_pt_read_f32(c->f, v, d, &e) != 0)
            MISMATCH("gn_pt_read_f32: %s", e.msg);
        for (size_t i = 0; i < n; i++) {
            uint32_t got, want = (uint32_t)json_integer_value(json_array_get(bits, i));
            memcpy(&got, &d[i], 4);
            if (got != want)
                MISMATCH("element %zu: bits 0x%08x, torch has 0x%08x", i, got, want);
        }
        free(d);
        int64_t dummy[1];
        if (n > 0) {
            assert_int_not_equal(gn_pt_read_i64(c->f, v, dummy, &e), 0);
            assert_msg(&e, gn_pt_dtype_name(t->dtype), "gn_pt_read_f32");
        }
    } else {
        assert_non_null(ints);
        assert_int_equal(json_array_size(ints), n);
        int64_t *d = malloc((n ? n : 1) * sizeof *d);
        if (gn_pt_read_i64(c->f, v, d, &e) != 0)
            MISMATCH("gn_pt_read_i64: %s", e.msg);
        for (size_t i = 0; i < n; i++)
            if (d[i] != (int64_t)json_integer_value(json_array_get(ints, i)))
                MISMATCH("element %zu: %lld, torch has %lld", i, (long long)d[i],
                         (long long)json_integer_value(json_array_get(ints, i)));
        free(d);
        float dummy[1];
        if (n > 0) {
            assert_int_not_equal(gn_pt_read_f32(c->f, v, dummy, &e), 0);
            assert_msg(&e, gn_pt_dtype_name(t->dtype), "gn_pt_read_i64");
            assert_msg(&e, "storage '", t->storage_key);
        }
    }
    c->tensors++;
    c->elements += numel;
}

static void cmp_bytes(const gn_pv *v, json_t *j, const char *path)
{
    size_t n, got_n;
    unsigned char *want = unhex(jstr(j, "hex"), &n);
    const char *got = gn_pv_str(v, &got_n);
    if (!got || got_n != n || memcmp(got, want, n) != 0 || got[n] != 0)
        MISMATCH("string bytes differ (%zu vs %zu bytes)", got_n, n);
    free(want);
}

static void cmp(cmp_ctx *c, const gn_pv *v, json_t *j, const char *path)
{
    const char *t = jstr(j, "t");
    gn_pv_kind k = gn_pv_kind_of(v);
    char sub[1024];
    if (!v)
        MISMATCH("NULL node");
#define WANT(kind)                                                                           \
    if (k != (kind))                                                                         \
        MISMATCH("%s, expected %s", gn_pv_kind_name(k), t);
    if (!strcmp(t, "none")) {
        WANT(GN_PV_NONE);
    } else if (!strcmp(t, "bool")) {
        WANT(GN_PV_BOOL);
        if (gn_pv_bool(v) != json_is_true(json_object_get(j, "v")))
            MISMATCH("bool value");
        if (gn_pv_int(v) != (gn_pv_bool(v) ? 1 : 0))
            MISMATCH("bool as int");
    } else if (!strcmp(t, "int")) {
        WANT(GN_PV_INT);
        if (gn_pv_int(v) != jint(j, "v"))
            MISMATCH("%lld, expected %lld", (long long)gn_pv_int(v), (long long)jint(j, "v"));
        if (gn_pv_float(v) != (double)jint(j, "v"))
            MISMATCH("int as float");
    } else if (!strcmp(t, "float")) {
        WANT(GN_PV_FLOAT);
        double d = gn_pv_float(v);
        int64_t bits;
        memcpy(&bits, &d, 8);
        if (bits != jint(j, "bits"))
            MISMATCH("float bits differ (%.17g)", d);
    } else if (!strcmp(t, "str")) {
        WANT(GN_PV_STR);
        cmp_bytes(v, j, path);
    } else if (!strcmp(t, "bytes")) {
        WANT(GN_PV_BYTES);
        cmp_bytes(v, j, path);
    } else if (!strcmp(t, "tuple") || !strcmp(t, "list")) {
        WANT(!strcmp(t, "tuple") ? GN_PV_TUPLE : GN_PV_LIST);
        json_t *items = json_object_get(j, "items");
        if ((size_t)gn_pv_len(v) != json_array_size(items))
            MISMATCH("%d items, expected %zu", gn_pv_len(v), json_array_size(items));
        assert_null(gn_pv_key(v, 0));
        assert_null(gn_pv_item(v, -1));
        assert_null(gn_pv_item(v, gn_pv_len(v)));
        for (int i = 0; i < gn_pv_len(v); i++) {
            snprintf(sub, sizeof sub, "%s[%d]", path, i);
            cmp(c, gn_pv_item(v, i), json_array_get(items, (size_t)i), sub);
        }
    } else if (!strcmp(t, "dict")) {
        WANT(GN_PV_DICT);
        if (strcmp(gn_pv_class(v), jstr(j, "class")) != 0)
            MISMATCH("class %s, expected %s", gn_pv_class(v), jstr(j, "class"));
        json_t *keys = json_object_get(j, "keys"), *vals = json_object_get(j, "values");
        if ((size_t)gn_pv_len(v) != json_array_size(keys))
            MISMATCH("%d entries, expected %zu", gn_pv_len(v), json_array_size(keys));
        for (int i = 0; i < gn_pv_len(v); i++) {
            const gn_pv *key = gn_pv_key(v, i);
            size_t kl = 0;
            const char *ks = gn_pv_kind_of(key) == GN_PV_STR ? gn_pv_str(key, &kl) : NULL;
            if (ks && strlen(ks) == kl) {
                snprintf(sub, sizeof sub, "%s['%s']", path, ks);
                if (gn_pv_dict_get(v, ks) != gn_pv_item(v, i))
                    MISMATCH("gn_pv_dict_get('%s') is not entry %d", ks, i);
            } else {
                snprintf(sub, sizeof sub, "%s[key %d]", path, i);
            }
            cmp(c, key, json_array_get(keys, (size_t)i), sub);
            cmp(c, gn_pv_item(v, i), json_array_get(vals, (size_t)i), sub);
        }
        json_t *st = json_object_get(j, "state");
        if (st) {
            snprintf(sub, sizeof sub, "%s.__dict__", path);
            cmp(c, gn_pv_state(v), st, sub);
        } else if (gn_pv_state(v)) {
            MISMATCH("unexpected attributes");
        }
        assert_null(gn_pv_dict_get(v, "no such key \x01"));
    } else if (!strcmp(t, "object")) {
        WANT(GN_PV_OBJECT);
        if (strcmp(gn_pv_class(v), jstr(j, "class")) != 0)
            MISMATCH("class %s", gn_pv_class(v));
        snprintf(sub, sizeof sub, "%s.__dict__", path);
        cmp(c, gn_pv_state(v), json_object_get(j, "state"), sub);
    } else if (!strcmp(t, "tensor")) {
        WANT(GN_PV_TENSOR);
        cmp_tensor(c, v, j, path);
    } else {
        MISMATCH("unknown tag %s", t);
    }
    if (k != GN_PV_TENSOR)
        assert_null(gn_pv_tensor(v));
#undef WANT
}

/* Open `name`, check its format and compare its whole tree with expect.json. */
static gn_pt_file *check_file(const char *name, const char *format)
{
    gn_pt_file *f = open_ok(name);
    assert_string_equal(gn_pt_format(f), format);
    const char *tree = json_string_value(json_object_get(json_object_get(g_expect, "files"), name));
    assert_non_null(tree);
    json_t *want = json_object_get(json_object_get(g_expect, "trees"), tree);
    assert_non_null(want);
    cmp_ctx c = {.f = f, .group_key = json_object(), .key_group = json_object()};
    cmp(&c, gn_pt_root(f), want, name);
    fprintf(stderr, "%-18s %-6s %3d tensors, %7lld elements: equal to torch\n", name, format,
            c.tensors, (long long)c.elements);
    json_decref(c.group_key);
    json_decref(c.key_group);
    return f;
}

static const gn_pv *get(const gn_pv *d, const char *key)
{
    const gn_pv *v = gn_pv_dict_get(d, key);
    if (!v) {
        fprintf(stderr, "missing key '%s'\n", key);
        fail();
    }
    return v;
}

/* ------------------------------------------------------------------ valid files */

static void check_checkpoint(const char *name, const char *format)
{
    gn_pt_file *f = check_file(name, format);
    const gn_pv *r = gn_pt_root(f);
    /* the keys in timm CheckpointSaver's order */
    static const char *const keys[] = {"epoch", "arch", "state_dict", "optimizer", "version", "args",
                                       "amp_scaler", "state_dict_ema", "metric"};
    assert_int_equal(gn_pv_kind_of(r), GN_PV_DICT);
    assert_string_equal(gn_pv_class(r), "dict");
    assert_null(gn_pv_state(r));
    assert_int_equal(gn_pv_len(r), 9);
    for (int i = 0; i < 9; i++)
        assert_string_equal(gn_pv_str(gn_pv_key(r, i), NULL), keys[i]);
    assert_int_equal(gn_pv_int(get(r, "epoch")), 7);
    assert_string_equal(gn_pv_str(get(r, "arch"), NULL), "gpunet_0");
    assert_int_equal(gn_pv_int(get(r, "version")), 2);
    assert_true(gn_pv_float(get(r, "metric")) == 78.9);

    const gn_pv *a = get(r, "args");
    assert_int_equal(gn_pv_kind_of(a), GN_PV_OBJECT);
    assert_string_equal(gn_pv_class(a), "argparse.Namespace");
    assert_string_equal(gn_pv_str(get(a, "model"), NULL), "gpunet_0");
    assert_true(gn_pv_float(get(a, "lr")) == 0.08);
    assert_int_equal(gn_pv_int(get(a, "epochs")), 450);
    assert_true(gn_pv_float(get(a, "smoothing")) == 0.1);
    assert_true(gn_pv_bool(get(a, "amp")));
    assert_int_equal(gn_pv_kind_of(get(a, "mean")), GN_PV_NONE);
    const gn_pv *is = get(a, "input_size");
    assert_int_equal(gn_pv_kind_of(is), GN_PV_TUPLE);
    assert_int_equal(gn_pv_len(is), 3);
    assert_int_equal(gn_pv_int(gn_pv_item(is, 0)), 3);
    assert_int_equal(gn_pv_int(gn_pv_item(is, 2)), 320);
    assert_int_equal(gn_pv_len(gn_pv_state(a)), 7);

    const gn_pv *amp = get(r, "amp_scaler");
    assert_int_equal(gn_pv_kind_of(get(amp, "scale")), GN_PV_FLOAT);
    assert_true(gn_pv_float(get(amp, "scale")) == 65536.0);
    assert_int_equal(gn_pv_int(get(amp, "growth_interval")), 2000);
    assert_int_equal(gn_pv_int(get(amp, "_growth_tracker")), 17);

    const gn_pv *sd = get(r, "state_dict");
    assert_string_equal(gn_pv_class(sd), "collections.OrderedDict");
    assert_int_equal(gn_pv_len(sd), 14);
    const gn_pt_tensor_info *w = gn_pv_tensor(get(sd, "network.stage: 1 layer3.0.weight"));
    assert_non_null(w);
    assert_int_equal(w->dtype, GN_PT_F32);
    assert_int_equal(w->ndim, 4);
    assert_int_equal(w->shape[0], 8);
    assert_int_equal(w->shape[1], 1);
    assert_int_equal(w->shape[3], 3);
    const gn_pv *nbt = get(sd, "network.stem.1.num_batches_tracked");
    assert_int_equal(gn_pv_tensor(nbt)->dtype, GN_PT_I64);
    assert_int_equal(gn_pv_tensor(nbt)->ndim, 0);
    assert_int_equal(gn_pv_tensor(nbt)->numel, 1);
    int64_t count = -1;
    gn_error e = {{0}};
    assert_int_equal(gn_pt_read_i64(f, nbt, &count, &e), 0);
    assert_int_equal(count, 2);
    const gn_pv *meta = get(gn_pv_state(sd), "_metadata");
    assert_int_equal(gn_pv_int(get(get(meta, "network.stage: 1 layer3"), "version")), 1);

    const gn_pv *opt = get(r, "optimizer");
    const gn_pv *pg = gn_pv_item(get(opt, "param_groups"), 0);
    assert_true(gn_pv_float(get(pg, "lr")) == 0.08);
    assert_true(gn_pv_float(get(pg, "momentum")) == 0.9);
    assert_int_equal(gn_pv_len(get(pg, "params")), 8);
    const gn_pv *ost = get(opt, "state");
    assert_int_equal(gn_pv_len(ost), 8);
    assert_int_equal(gn_pv_kind_of(gn_pv_key(ost, 0)), GN_PV_INT);
    assert_non_null(gn_pv_tensor(get(gn_pv_item(ost, 0), "momentum_buffer")));
    gn_pt_close(f);
}

static void test_checkpoint_zip(void **state)
{
    (void)state;
    NEED_FILES();
    check_checkpoint("ckpt_zip.pth", "zip");
}

static void test_checkpoint_legacy(void **state)
{
    (void)state;
    NEED_FILES();
    check_checkpoint("ckpt_legacy.pth", "legacy");
}

static void test_checkpoint_deflate(void **state)
{
    (void)state;
    NEED_FILES();
    check_checkpoint("ckpt_deflate.pth", "zip");
}

static void test_state_dict(void **state)
{
    (void)state;
    NEED_FILES();
    gn_pt_file *f = check_file("state_dict.pth", "zip");
    const gn_pv *r = gn_pt_root(f);
    assert_string_equal(gn_pv_class(r), "collections.OrderedDict");
    assert_string_equal(gn_pv_str(gn_pv_key(r, 0), NULL), "network.stem.0.weight");
    assert_non_null(gn_pv_dict_get(gn_pv_state(r), "_metadata"));
    gn_pt_close(f);
}

static uint32_t f32_bits(float x)
{
    uint32_t b;
    memcpy(&b, &x, 4);
    return b;
}

static void check_dtypes(const char *name, const char *format)
{
    gn_pt_file *f = check_file(name, format);
    const gn_pv *r = gn_pt_root(f);
    gn_error e = {{0}};

    /* float16 specials, spelled out */
    static const uint32_t want[12] = {0x00000000u, 0x80000000u, 0x3f800000u, 0xc0200000u,
                                      0x477fe000u, 0x33800000u, 0xb3800000u, 0x37280000u,
                                      0x38800000u, 0x7f800000u, 0xff800000u, 0x7fc00000u};
    const gn_pv *sp = get(r, "f16_special");
    assert_int_equal(gn_pv_tensor(sp)->dtype, GN_PT_F16);
    float got[12];
    assert_int_equal(gn_pt_read_f32(f, sp, got, &e), 0);
    for (int i = 0; i < 12; i++)
        assert_int_equal(f32_bits(got[i]), want[i]);
    assert_string_equal(gn_pt_dtype_name(gn_pv_tensor(get(r, "bf16_all"))->dtype), "bfloat16");
    assert_int_equal(gn_pv_tensor(get(r, "bool"))->dtype, GN_PT_BOOL);

    /* views of one storage */
    const gn_pt_tensor_info *base = gn_pv_tensor(get(r, "base")), *t = gn_pv_tensor(get(r, "t")),
                            *view = gn_pv_tensor(get(r, "view")), *row = gn_pv_tensor(get(r, "row")),
                            *ex = gn_pv_tensor(get(r, "expand")), *col = gn_pv_tensor(get(r, "col_f16"));
    assert_string_equal(base->storage_key, t->storage_key);
    assert_string_equal(base->storage_key, view->storage_key);
    assert_string_equal(base->storage_key, row->storage_key);
    assert_int_equal(t->stride[0], 1);
    assert_int_equal(t->stride[1], 6);
    assert_int_equal(view->offset, 8);
    assert_int_equal(view->stride[0], 6);
    assert_int_equal(row->offset, 12);
    assert_int_equal(ex->stride[0], 0);
    assert_int_equal(col->offset, 1);
    assert_int_equal(col->stride[0], 4);
    float v[6];
    assert_int_equal(gn_pt_read_f32(f, get(r, "view"), v, &e), 0);
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 3; k++)
            assert_true(v[i * 3 + k] == (float)((1 + i) * 6 + 2 + k) * 0.5f - 3.0f);
    assert_int_equal(gn_pv_tensor(get(r, "dims8"))->ndim, 8);
    assert_int_equal(gn_pv_tensor(get(r, "scalar"))->ndim, 0);
    assert_int_equal(gn_pv_tensor(get(r, "empty"))->numel, 0);
    assert_int_equal(gn_pt_read_f32(f, get(r, "empty"), NULL, &e), 0);
    assert_true(gn_pv_tensor(get(r, "param"))->requires_grad);
    assert_false(gn_pv_tensor(get(r, "base"))->requires_grad);

    /* unusual dict keys: tuple, int, float, None, bytes, '' */
    const gn_pv *ok = get(r, "odd_keys");
    assert_int_equal(gn_pv_kind_of(gn_pv_key(ok, 0)), GN_PV_TUPLE);
    assert_int_equal(gn_pv_kind_of(gn_pv_key(ok, 3)), GN_PV_NONE);
    assert_string_equal(gn_pv_str(get(ok, ""), NULL), "empty str");
    size_t n;
    const char *u = gn_pv_str(get(r, "unicode"), &n);
    assert_int_equal(n, strlen("Gr\xc3\xbc\xc3\x9f" "e \xe2\x9c\x93 ") + 1 + strlen(" nul \xf0\x9f\x98\x80"));
    assert_memory_equal(u, "Gr\xc3\xbc\xc3\x9f" "e", 7);

    /* reading errors name the file, the storage and the dtype */
    int64_t i64[4];
    assert_int_not_equal(gn_pt_read_i64(f, get(r, "base"), i64, &e), 0);
    assert_msg(&e, gn_pt_path(f), "tensor is float32; gn_pt_read_i64 reads integer and bool tensors");
    float fl[4];
    assert_int_not_equal(gn_pt_read_f32(f, get(r, "u8"), fl, &e), 0);
    assert_msg(&e, "tensor is uint8", "use gn_pt_read_i64");
    assert_int_not_equal(gn_pt_read_f32(f, r, fl, &e), 0);
    assert_msg(&e, gn_pt_path(f), "the value is a dict, not a tensor");
    assert_int_not_equal(gn_pt_read_f32(f, NULL, fl, &e), 0);
    assert_msg(&e, "not a tensor", NULL);
    assert_int_not_equal(gn_pt_read_f32(f, get(r, "base"), NULL, &e), 0);
    assert_msg(&e, "NULL destination", NULL);
    gn_pt_close(f);
}

static void test_dtypes_zip(void **state)
{
    (void)state;
    NEED_FILES();
    check_dtypes("dtypes.pt", "zip");
}

static void test_dtypes_legacy(void **state)
{
    (void)state;
    NEED_FILES();
    check_dtypes("dtypes_legacy.pt", "legacy");
}

static void test_dtypes_protocol4(void **state)
{
    (void)state;
    NEED_FILES();
    check_dtypes("dtypes_p4.pt", "zip");
    check_dtypes("dtypes_legacy_p4.pt", "legacy");
}

static void test_small_and_trailing_bytes(void **state)
{
    (void)state;
    NEED_FILES();
    gn_pt_close(check_file("small.pth", "zip"));
    gn_pt_close(check_file("small_legacy.pt", "legacy"));
    gn_pt_close(check_file("trailing.pth", "zip")); /* bytes after STOP are ignored */
}

/* ------------------------------------------------------------------ malformed files */

static void expect_open_error(const char *name, const char *a, const char *b)
{
    char *p = fpath(name);
    gn_pt_file *f = (gn_pt_file *)0x1;
    gn_error e = {{0}};
    assert_int_not_equal(gn_pt_open(p, &f, &e), 0);
    assert_null(f);
    if (!strstr(e.msg, p)) {
        fprintf(stderr, "'%s' does not name the file\n", e.msg);
        fail();
    }
    assert_msg(&e, a, b);
    fprintf(stderr, "  %s\n", e.msg + strlen(g_dir) + 1);
    free(p);
}

static void test_malformed(void **state)
{
    (void)state;
    NEED_FILES();
    static const char *const cases[][3] = {
        {"garbage.bin", "not a PyTorch checkpoint (neither a zip archive nor a legacy torch.save stream)", NULL},
        {"empty.pth", "empty file, not a PyTorch checkpoint", NULL},
        {"trunc_half.pth", "zip archive is damaged or truncated", NULL},
        {"trunc_cd.pth", "zip archive is damaged or truncated", NULL},
        {"trunc_eocd.pth", "zip archive is damaged or truncated", NULL},
        {"no_pkl.pth", "no 'FOLDER/data.pkl' entry", NULL},
        {"torchscript.pth", "TorchScript archive", "not a torch.save checkpoint"},
        {"missing_entry.pth", "storage '0': entry 'ckpt_zip/data/0' is missing from the zip archive", NULL},
        {"short_storage.pth", "storage '0': entry 'ckpt_zip/data/0' has 860 bytes",
         "declares 216 float32 elements (864 bytes)"},
        {"shape_overflow.pth", "tensor shape [10] stride [1] offset 0 needs 10 elements of storage '0', which has 4",
         "data.pkl: byte "},
        {"offset_overflow.pth", "offset 2 needs 6 elements of storage '0', which has 4", NULL},
        {"byteorder_big.pth", "big-endian", NULL},
        {"truncated_pickle.pth", "data.pkl: truncated at byte 2748", NULL},
        {"no_stop.pth", "data.pkl: truncated at byte 3", NULL},
        {"two_values.pth", "byte 4: STOP leaves 2 values on the stack (expected exactly 1)", NULL},
        {"inst.pth", "data.pkl: byte 3: opcode 0x69 ('i', INST) is not allowed in a tensor checkpoint", NULL},
        {"ext1.pth", "data.pkl: byte 2: opcode 0x82 (EXT1) is not allowed in a tensor checkpoint", NULL},
        {"counter.pth", "class 'collections.Counter' is not allowed", "nothing is executed"},
        {"numpy_scalar.pth", "class 'numpy.core.multiarray.scalar' is not allowed", NULL},
        {"untyped.pth", "class 'torch.UntypedStorage' is not allowed", "typed storages"},
        {"hooks.pth", "backward hooks must be an empty dict", "storage '0'"},
        {"meta7.pth", "metadata must be None or an empty dict", NULL},
        {"twice.pth", "storage '0' is declared twice differently (float32 x 4, then int32 x 4)", NULL},
        {"bad_key.pth", "storage key '../version' is not a plain name", NULL},
        {"long9.pth", "integer of 9 bytes is too large", NULL},
        {"memo_far.pth", "memo index 2147483647 is out of range", NULL},
        {"marks.pth", "more than 512 open MARKs", NULL},
        {"proto0.pth", "does not start with PROTO", NULL},
        {"cyclic.pth", "a list contains itself", NULL},
        {"deep.pth", "nested more than 256 deep", NULL},
        {"plain_pickle.pkl", "not a legacy torch.save stream", "magic number"},
        {"legacy_trunc_pickle.pth", "sys_info pickle: truncated at byte 100", NULL},
        {"legacy_trunc_data.pth", "truncated", "storage '"},
        {"legacy_view.pth", "storage '7': storage views (view_metadata) are not supported", NULL},
        {"legacy_count.pth", "storage '7': the storage table says 3 elements, the pickle declares 4", NULL},
        {"legacy_unused.pth", "storage '8' is in the storage table but no tensor uses it", NULL},
        {"legacy_unlisted.pth", "storage '7' is used by a tensor but missing from the storage table", NULL},
        {"legacy_big_endian.pth", "big-endian", NULL},
        {"no_such_file.pth", "cannot open: No such file or directory", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_open_error(cases[i][0], cases[i][1], cases[i][2]);
    gn_pt_file *f = (gn_pt_file *)0x1;
    gn_error e = {{0}};
    assert_int_not_equal(gn_pt_open(g_dir, &f, &e), 0); /* a folder */
    assert_null(f);
    assert_msg(&e, "not a regular file", NULL);
    assert_int_not_equal(gn_pt_open(NULL, &f, &e), 0);
}

static void test_os_system_never_runs(void **state)
{
    (void)state;
    NEED_FILES();
    char *m = fpath("pwned_marker");
    expect_open_error("os_system.pth", "data.pkl: byte 13: class 'posix.system' is not allowed",
                      "nothing is executed");
    expect_open_error("os_system_legacy.pth", "object pickle: byte", "class 'posix.system' is not allowed");
    assert_int_not_equal(access(m, F_OK), 0);
    free(m);
}

static void test_crc_checked_on_read(void **state)
{
    (void)state;
    NEED_FILES();
    gn_pt_file *f = open_ok("crc.pth"); /* sizes agree; the bytes are only read later */
    gn_error e = {{0}};
    float w[6];
    assert_int_not_equal(gn_pt_read_f32(f, gn_pv_dict_get(gn_pt_root(f), "w"), w, &e), 0);
    assert_msg(&e, "storage '0'", "CRC");
    fprintf(stderr, "  %s\n", e.msg + strlen(g_dir) + 1);
    int64_t n = 0;
    assert_int_equal(gn_pt_read_i64(f, gn_pv_dict_get(gn_pt_root(f), "n"), &n, &e), 0);
    assert_int_equal(n, 4);
    gn_pt_close(f);
}

/* ------------------------------------------------------------------ opcodes in memory */

static void repr(const gn_pv *v, char *b, size_t cap)
{
    size_t o = strlen(b);
    char *p = b + o;
    size_t left = cap - o;
    switch (gn_pv_kind_of(v)) {
    case GN_PV_NONE: snprintf(p, left, "None"); break;
    case GN_PV_BOOL: snprintf(p, left, gn_pv_bool(v) ? "True" : "False"); break;
    case GN_PV_INT: snprintf(p, left, "%lld", (long long)gn_pv_int(v)); break;
    case GN_PV_FLOAT: snprintf(p, left, "%g", gn_pv_float(v)); break;
    case GN_PV_STR: snprintf(p, left, "'%s'", gn_pv_str(v, NULL)); break;
    case GN_PV_BYTES: {
        size_t n;
        const char *s = gn_pv_str(v, &n);
        snprintf(p, left, "b'%s'", s);
        break;
    }
    case GN_PV_TENSOR: snprintf(p, left, "T"); break;
    case GN_PV_OBJECT:
        snprintf(p, left, "NS");
        repr(gn_pv_state(v), b, cap);
        break;
    default: {
        gn_pv_kind k = gn_pv_kind_of(v);
        bool od = k == GN_PV_DICT && !strcmp(gn_pv_class(v), "collections.OrderedDict");
        snprintf(p, left, "%s%s", od ? "OD" : "", k == GN_PV_DICT ? "{" : k == GN_PV_LIST ? "[" : "(");
        for (int i = 0; i < gn_pv_len(v); i++) {
            if (i)
                strncat(b, ",", cap - strlen(b) - 1);
            if (k == GN_PV_DICT) {
                repr(gn_pv_key(v, i), b, cap);
                strncat(b, ":", cap - strlen(b) - 1);
            }
            repr(gn_pv_item(v, i), b, cap);
        }
        strncat(b, k == GN_PV_DICT ? "}" : k == GN_PV_LIST ? "]" : ")", cap - strlen(b) - 1);
    }
    }
}

/* Unpickle bytes in memory: returns 0 and the repr of the value, or -1 and the error. */
static int unpickle(const void *bytes, size_t n, int pid_len, char *out, size_t cap)
{
    gn__pt_heap h;
    gn__pt_heap_init(&h);
    gn__pt_input in = {.buf = bytes, .len = n};
    gn__pt_pickle_opts o = {.path = "mem", .what = "data.pkl", .pid_len = pid_len};
    gn_pv *v = NULL;
    size_t end = 0;
    gn_error e = {{0}};
    out[0] = 0;
    int rc = gn__pt_unpickle(&h, &in, 0, &o, &v, &end, &e);
    if (rc == 0) {
        assert_non_null(v);
        assert_true(end <= n);
        repr(v, out, cap);
    } else {
        assert_null(v);
        assert_true(e.msg[0] != 0);
        assert_null(strchr(e.msg, '\n'));
        snprintf(out, cap, "%s", e.msg);
    }
    gn__pt_heap_free(&h);
    return rc;
}

#define PK(s) s, sizeof(s) - 1

static void test_opcodes(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        size_t n;
        const char *want; /* repr, or a piece of the error */
        int ok;
    } cases[] = {
        {PK("\200\002(K\001K\002l."), "[1,2]", 1},                                       /* LIST */
        {PK("\200\002(X\001\000\000\000aK\001d."), "{'a':1}", 1},                          /* DICT */
        {PK("\200\002K\001" "2\206."), "(1,1)", 1},                                       /* DUP */
        {PK("\200\002K\001K\002" "0."), "1", 1},                                          /* POP */
        {PK("\200\002K\001(K\002K\003" "1."), "1", 1},                                   /* POP_MARK */
        {PK("\200\002K\001(0."), "1", 1},                           /* POP of an empty mark */
        {PK("\200\004\225\007\000\000\000\000\000\000\000]\224K\005" "ah\000\206."), "([5],[5])", 1},
        {PK("\200\004]\224K\005" "aj\000\000\000\000\206."), "([5],[5])", 1}, /* MEMOIZE, LONG_BINGET */
        {PK("\200\002]q\000K\001" "ar\007\000\000\000h\000j\007\000\000\000\207."), "([1],[1],[1])", 1},
        {PK("\200\004\214\013" "collections\214\013OrderedDict\223)R."), "OD{}", 1},   /* STACK_GLOBAL */
        {PK("\200\002" "ccollections\nOrderedDict\n]((K\001K\002t(K\003K\004te\205R."), "OD{1:2,3:4}", 1},
        {PK("\200\002}(X\001\000\000\000aK\001X\001\000\000\000aK\002u."), "{'a':2}", 1}, /* same key */
        {PK("\200\002}(K\001X\001\000\000\000xG\077\360\000\000\000\000\000\000X\001\000\000\000y\210X\001"
            "\000\000\000zu."), "{1:'z'}", 1},                                   /* 1 == 1.0 == True */
        {PK("\200\002}(K\001K\001\206K\002K\001K\001\206K\003u."), "{(1,1):3}", 1},      /* tuple keys */
        {PK("\200\002\212\001\377."), "-1", 1},
        {PK("\200\002\212\000."), "0", 1},
        {PK("\200\002\212\010\000\000\000\000\000\000\000\200."), "-9223372036854775808", 1},
        {PK("\200\002J\377\377\377\377."), "-1", 1},
        {PK("\200\002M\377\377."), "65535", 1},
        {PK("\200\004\215\002\000\000\000\000\000\000\000hi."), "'hi'", 1},               /* BINUNICODE8 */
        {PK("\200\004\216\002\000\000\000\000\000\000\000hi."), "b'hi'", 1},               /* BINBYTES8 */
        {PK("\200\003" "B\002\000\000\000hiC\001!\206."), "(b'hi',b'!')", 1},
        {PK("\200\004\217(K\001K\002\220."), "[1,2]", 1},                                 /* set */
        {PK("\200\002" "c__builtin__\nset\n]K\007" "a\205R."), "[7]", 1},
        {PK("\200\002" "c__builtin__\nbytes\n)R."), "b''", 1},
        {PK("\200\002" "c_codecs\nencode\nX\004\000\000\000\303\277xyX\006\000\000\000latin1\206R."),
         "b'\377xy'", 1},
        {PK("\200\002" "cargparse\nNamespace\n)R}X\001\000\000\000aK\001sb."), "NS{'a':1}", 1},
        {PK("\200\005N."), "None", 1},
        /* errors */
        {PK("\200\006N."), "pickle protocol 6 is not read", -1},
        {PK("\200\002}K\001" "a."), "APPEND to a dict (only lists)", -1},
        {PK("\200\002]K\001K\002s."), "SETITEM on a list (only dicts)", -1},
        {PK("\200\002}}b."), "BUILD on a plain dict is not allowed", -1},
        {PK("\200\002K\001)R."), "REDUCE calls a int", -1},
        {PK("\200\002" "ccollections\nOrderedDict\n)\201."), "NEWOBJ of collections.OrderedDict is not allowed", -1},
        {PK("\200\002" "cargparse\nNamespace\nK\001\205\201."), "NEWOBJ and no arguments", -1},
        {PK("\200\002" "a."), "stack underflow", -1},
        {PK("\200\002(\206."), "stack underflow", -1},
        {PK("\200\002" "e."), "APPENDS without a MARK", -1},
        {PK("\200\002(e."), "no container below its MARK", -1},
        {PK("\200\002X\002\000\000\000\303(."), "str is not valid UTF-8", -1},
        {PK("\200\002X\002\000\000\000\300\200."), "str is not valid UTF-8", -1},          /* overlong */
        {PK("\200\002}]K\001s."), "dict key is not hashable", -1},
        {PK("\200\002h\003."), "memo index 3 was never stored", -1},
        {PK("\200\002(N."), "STOP with 1 open MARK", -1},
        {PK("\200\002."), "STOP leaves 0 values", -1},
        {PK("\200\002\377."), "byte 0xff is not a pickle opcode", -1},
        {PK("\200\002S'a'\n."), "opcode 0x53 ('S', STRING) is not allowed", -1},
        {PK("\200\002I1\n."), "INT) is not allowed", -1},
        {PK("\200\002P1\n."), "PERSID) is not allowed", -1},
        {PK("\200\002\213\001\000\000\000\001."), "LONG4) is not allowed", -1},
        {PK("\200\005\227."), "NEXT_BUFFER) is not allowed", -1},
        {PK("\200\004\222."), "NEWOBJ_EX) is not allowed", -1},
        {PK("\200\002K\001Q."), "persistent id must be a tuple of 5 items", -1},
        {PK("\200\002(X\006\000\000\000moduleNNNNtQ."), "persistent id of type 'module' is not allowed", -1},
        {PK("\200\002(X\007\000\000\000storageccollections\nOrderedDict\nX\001\000\000\000" "0X\003\000\000\000"
            "cpuK\001tQ."), "storage type is a collections.OrderedDict", -1},
        {PK("\200\002(X\007\000\000\000storagectorch\nFloatStorage\nX\001\000\000\000" "0X\003\000\000\000"
            "cpuK\001tQ."), "storage '0' appears outside a tensor", -1},
        {PK("\200\002" "ctorch\nFloatStorage\n)R."), "FloatStorage is read only as the type inside a persistent id", -1},
        {PK("\200\002" "ccollections\nOrderedDict\n."), "the class collections.OrderedDict itself is a value", -1},
        {PK("\200\002" "cbuiltins\neval\n."), "class 'builtins.eval' is not allowed", -1},
        {PK("\200\002" "c_codecs\nencode\nX\001\000\000\000xX\005\000\000\000utf-8\206R."),
         "only as encode(str, 'latin1')", -1},
        {PK("\200\002" "ctorch._utils\n_rebuild_tensor_v2\n)R."), "takes 6 to 7 arguments, got 0", -1},
        {PK("\200\002" "ctorch._utils\n_rebuild_tensor_v2\n(NNNNNNt"), "truncated at byte", -1},
        {PK("\200\002" "ctorch._utils\n_rebuild_tensor_v2\n(NNNNNNtR."), "tensor storage is a None", -1},
        {PK("N."), "does not start with PROTO", -1},
        {PK(""), "truncated at byte 0", -1},
    };
    char out[600];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = unpickle(cases[i].bytes, cases[i].n, 5, out, sizeof out);
        bool pass = cases[i].ok >= 0 ? rc == 0 && (cases[i].ok == 0 || strcmp(out, cases[i].want) == 0)
                                     : rc != 0 && strstr(out, cases[i].want) != NULL;
        if (!pass) {
            fprintf(stderr, "case %zu: got %s '%s', expected '%s'\n", i, rc ? "error" : "value", out,
                    cases[i].want);
            fail();
        }
    }
    /* GLOBAL lines are read up to 256 bytes */
    char g[300] = "\200\002c";
    memset(g + 3, 'a', 266);
    g[269] = '\n';
    assert_int_not_equal(unpickle(g, 270, 5, out, sizeof out), 0);
    assert_non_null(strstr(out, "GLOBAL name longer than 256 bytes"));

    /* the memory budget: 1 MiB + 128 bytes per pickle byte */
    gn__pt_heap h;
    gn__pt_heap_init(&h);
    assert_int_equal(gn__pt_charge(&h, (size_t)1 << 19), 0);
    assert_int_equal(gn__pt_charge(&h, (size_t)1 << 20), -1);
    char why[256];
    assert_non_null(strstr(gn__pt_fail_text(&h, why, sizeof why), "more than"));
    h.consumed = 8192;
    assert_int_equal(gn__pt_charge(&h, (size_t)1 << 20), 0);
    gn__pt_heap_free(&h);
}

static void test_accessors_neutral(void **state)
{
    (void)state;
    assert_int_equal(gn_pv_kind_of(NULL), GN_PV_NONE);
    assert_false(gn_pv_bool(NULL));
    assert_int_equal(gn_pv_int(NULL), 0);
    assert_true(gn_pv_float(NULL) == 0.0);
    size_t n = 7;
    assert_null(gn_pv_str(NULL, &n));
    assert_int_equal(n, 0);
    assert_int_equal(gn_pv_len(NULL), 0);
    assert_null(gn_pv_item(NULL, 0));
    assert_null(gn_pv_key(NULL, 0));
    assert_null(gn_pv_dict_get(NULL, "a"));
    assert_null(gn_pv_class(NULL));
    assert_null(gn_pv_state(NULL));
    assert_null(gn_pv_tensor(NULL));
    assert_null(gn_pt_root(NULL));
    assert_null(gn_pt_format(NULL));
    assert_null(gn_pt_path(NULL));
    gn_pt_close(NULL);
    static const char *const kinds[] = {"None", "bool", "int", "float", "str", "bytes", "tuple",
                                        "list", "dict", "tensor", "object"};
    for (int k = GN_PV_NONE; k <= GN_PV_OBJECT; k++)
        assert_string_equal(gn_pv_kind_name((gn_pv_kind)k), kinds[k]);
    static const char *const dn[] = {"float32", "float64", "float16", "bfloat16", "int64",
                                     "int32", "int16", "int8", "uint8", "bool"};
    static const int ds[] = {4, 8, 2, 2, 8, 4, 2, 1, 1, 1};
    for (int t = GN_PT_F32; t <= GN_PT_BOOL; t++) {
        assert_string_equal(gn_pt_dtype_name((gn_pt_dtype)t), dn[t]);
        assert_int_equal(gn_pt_dtype_size((gn_pt_dtype)t), ds[t]);
    }
    gn_error e = {{0}};
    float x;
    assert_int_not_equal(gn_pt_read_f32(NULL, NULL, &x, &e), 0);
}

/* ------------------------------------------------------------------ robustness */

/* open a file expected to fail or succeed; on success read every tensor */
static void read_all(gn_pt_file *f, const gn_pv *v, int depth)
{
    if (depth > 300)
        return;
    const gn_pt_tensor_info *t = gn_pv_tensor(v);
    if (t) {
        size_t n = (size_t)t->numel;
        gn_error e = {{0}};
        if (n > (1u << 24))
            return;
        void *d = malloc(n ? n * 8 : 8);
        int rc = (t->dtype <= GN_PT_BF16) ? gn_pt_read_f32(f, v, d, &e) : gn_pt_read_i64(f, v, d, &e);
        if (rc != 0)
            assert_msg(&e, gn_pt_path(f), NULL);
        free(d);
        return;
    }
    for (int i = 0; i < gn_pv_len(v); i++) {
        read_all(f, gn_pv_key(v, i), depth + 1);
        read_all(f, gn_pv_item(v, i), depth + 1);
    }
    read_all(f, gn_pv_state(v), depth + 1);
}

static int try_open(const char *path)
{
    gn_pt_file *f = NULL;
    gn_error e = {{0}};
    int rc = gn_pt_open(path, &f, &e);
    if (rc == 0) {
        read_all(f, gn_pt_root(f), 0);
        gn_pt_close(f);
    } else {
        assert_null(f);
        assert_msg(&e, path, NULL);
    }
    return rc;
}

static void truncations(const char *name)
{
    char *src = fpath(name), *dst = tu_tmp_path("torch_cut.pt");
    size_t len;
    char *buf = tu_read_file(src, &len);
    assert_non_null(buf);
    for (size_t n = 0; n < len; n++) {
        write_bytes(dst, buf, n);
        if (try_open(dst) == 0) {
            fprintf(stderr, "%s cut to %zu of %zu bytes opened\n", name, n, len);
            fail();
        }
    }
    write_bytes(dst, buf, len);
    assert_int_equal(try_open(dst), 0);
    fprintf(stderr, "%s: all %zu truncations refused\n", name, len);
    unlink(dst);
    free(buf);
    free(src);
    free(dst);
}

static void test_truncations(void **state)
{
    (void)state;
    NEED_FILES();
    truncations("small_legacy.pt");
    truncations("small.pth");
}

static void mutate(unsigned char *b, size_t n, size_t lo)
{
    int k = 1 + (int)(rnd() % 4);
    for (int i = 0; i < k; i++) {
        size_t at = lo + (size_t)(rnd() % (n - lo));
        switch (rnd() % 3) {
        case 0: b[at] ^= (unsigned char)(1u << (rnd() % 8)); break;
        case 1: b[at] = (unsigned char)rnd(); break;
        default: b[at] = "()tuesq\x85\x86\x87Rb\x81QhNK]}"[rnd() % 20]; break;
        }
    }
}

static void test_fuzz(void **state)
{
    (void)state;
    NEED_FILES();
    /* a real data.pkl, mutated in memory */
    char *p = fpath("small_data.pkl");
    size_t len;
    unsigned char *pkl = (unsigned char *)tu_read_file(p, &len);
    assert_non_null(pkl);
    unsigned char *m = malloc(len);
    char out[600];
    assert_int_equal(unpickle(pkl, len, 5, out, sizeof out), 0);
    int ok = 0;
    for (size_t n = 0; n < len; n++) /* every prefix */
        assert_int_not_equal(unpickle(pkl, n, 5, out, sizeof out), 0);
    enum { ROUNDS = 20000 };
    for (int r = 0; r < ROUNDS; r++) {
        memcpy(m, pkl, len);
        mutate(m, len, 2);
        ok += unpickle(m, len, r % 2 ? 5 : 6, out, sizeof out) == 0;
    }
    fprintf(stderr, "data.pkl fuzz: %d of %d mutated pickles still parsed, none crashed\n", ok, ROUNDS);

    /* whole files: the zip's and the legacy stream's bytes */
    static const char *const files[] = {"small.pth", "small_legacy.pt"};
    char *dst = tu_tmp_path("torch_fuzz.pt");
    for (int fi = 0; fi < 2; fi++) {
        char *src = fpath(files[fi]);
        size_t fl;
        unsigned char *buf = (unsigned char *)tu_read_file(src, &fl), *mb = malloc(fl);
        int opened = 0;
        for (int r = 0; r < 1500; r++) {
            memcpy(mb, buf, fl);
            mutate(mb, fl, 4);
            write_bytes(dst, mb, fl);
            opened += try_open(dst) == 0;
        }
        fprintf(stderr, "%s fuzz: %d of 1500 mutated files opened, none crashed\n", files[fi], opened);
        free(buf);
        free(mb);
        free(src);
    }
    unlink(dst);
    free(dst);
    free(m);
    free(pkl);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checkpoint_zip),
        cmocka_unit_test(test_checkpoint_legacy),
        cmocka_unit_test(test_checkpoint_deflate),
        cmocka_unit_test(test_state_dict),
        cmocka_unit_test(test_dtypes_zip),
        cmocka_unit_test(test_dtypes_legacy),
        cmocka_unit_test(test_dtypes_protocol4),
        cmocka_unit_test(test_small_and_trailing_bytes),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_os_system_never_runs),
        cmocka_unit_test(test_crc_checked_on_read),
        cmocka_unit_test(test_opcodes),
        cmocka_unit_test(test_accessors_neutral),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_fuzz),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
