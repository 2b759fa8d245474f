/*
 * fuzz_torchfile.c — PyTorch checkpoint files (gn_pt_open, gpunas/torchfile.h), as
 * `gpunas import` reads NVIDIA's *.pth.tar: the zip format (libzip) and the legacy
 * torch.save stream, through the restricted unpickler.
 *
 * Feeds: the input as a file (memfd, opened by path).
 * Asserts:
 *   - failure: nothing is returned and the error is one non-empty line;
 *   - success: the value tree is walked to a bounded depth (every accessor on every
 *     node, dict keys and lookups), and every tensor is read in full, as float for the
 *     floating dtypes and as int64 for the others (a read may fail on a damaged
 *     storage, with one line); reading with the wrong kind fails with one line;
 *     shapes multiply to numel and lie inside their storage.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "gpunas/torchfile.h"

static fz_memfile in_file;

static bool is_float(gn_pt_dtype d) { return d == GN_PT_F32 || d == GN_PT_F64 || d == GN_PT_F16 || d == GN_PT_BF16; }

static void read_tensor(gn_pt_file *f, const gn_pv *v)
{
    const gn_pt_tensor_info *t = gn_pv_tensor(v);
    FZ_CHECK(t != NULL, "tensor node without info");
    FZ_CHECK(t->ndim >= 0 && t->ndim <= GN_PT_MAX_DIMS, "rank %d", t->ndim);
    int64_t n = 1, last = t->offset;
    for (int k = 0; k < t->ndim; k++) {
        FZ_CHECK(t->shape[k] >= 0 && t->stride[k] >= 0, "dim %d: shape %lld stride %lld", k,
                 (long long)t->shape[k], (long long)t->stride[k]);
        n *= t->shape[k];
        if (t->shape[k] > 0)
            last += (t->shape[k] - 1) * t->stride[k];
    }
    FZ_CHECK(n == t->numel, "numel %lld, shape gives %lld", (long long)t->numel, (long long)n);
    FZ_CHECK(n == 0 || last < t->storage_numel, "last element %lld outside a storage of %lld", (long long)last,
             (long long)t->storage_numel);
    if (n > (1 << 20)) /* the file's own bytes bound this; keep an iteration fast */
        return;
    gn_error err = {{0}};
    void *buf = malloc((size_t)(n ? n : 1) * 8);
    FZ_CHECK(buf != NULL, "out of memory");
    bool fl = is_float(t->dtype);
    int rc = fl ? gn_pt_read_f32(f, v, buf, &err) : gn_pt_read_i64(f, v, buf, &err);
    if (rc)
        fz_check_error(&err);
    memset(&err, 0, sizeof err);
    rc = fl ? gn_pt_read_i64(f, v, buf, &err) : gn_pt_read_f32(f, v, buf, &err);
    FZ_CHECK(rc != 0, "a %s tensor read as the other kind", gn_pt_dtype_name(t->dtype));
    fz_check_error(&err);
    free(buf);
}

static void walk(gn_pt_file *f, const gn_pv *v, int depth)
{
    gn_pv_kind k = gn_pv_kind_of(v);
    FZ_CHECK(gn_pv_kind_name(k) != NULL, "kind %d has no name", (int)k);
    (void)gn_pv_bool(v), (void)gn_pv_int(v), (void)gn_pv_float(v);
    size_t len = 0;
    const char *str = gn_pv_str(v, &len);
    FZ_CHECK(!str || strlen(str) <= len, "string longer than its length");
    if (depth > 64)
        return;
    if (k == GN_PV_TENSOR) {
        read_tensor(f, v);
        return;
    }
    if (k == GN_PV_OBJECT) {
        FZ_CHECK(gn_pv_class(v) != NULL, "object without a class");
        walk(f, gn_pv_state(v), depth + 1);
        return;
    }
    for (int i = 0; i < gn_pv_len(v); i++) {
        const gn_pv *it = gn_pv_item(v, i);
        FZ_CHECK(it != NULL, "item %d of %d missing", i, gn_pv_len(v));
        if (k == GN_PV_DICT) {
            const gn_pv *key = gn_pv_key(v, i);
            FZ_CHECK(key != NULL, "dict key %d missing", i);
            size_t kl = 0;
            const char *ks = gn_pv_kind_of(key) == GN_PV_STR ? gn_pv_str(key, &kl) : NULL;
            if (ks && strlen(ks) == kl) /* a key with a NUL byte cannot be asked for by a C string */
                FZ_CHECK(gn_pv_dict_get(v, ks) != NULL, "key '%s' not found by lookup", ks);
        }
        walk(f, it, depth + 1);
    }
    FZ_CHECK(gn_pv_item(v, gn_pv_len(v)) == NULL, "item past the end");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fz_memfile_put(&in_file, "pth", data, size);
    gn_pt_file *f = (gn_pt_file *)0x1;
    gn_error err = {{0}};
    if (gn_pt_open(path, &f, &err) != 0) {
        fz_check_error(&err);
        FZ_CHECK(f == NULL, "failed open returned a file");
        return 0;
    }
    const char *fmt = gn_pt_format(f);
    FZ_CHECK(fmt && (!strcmp(fmt, "zip") || !strcmp(fmt, "legacy")), "format '%s'", fmt ? fmt : "(null)");
    walk(f, gn_pt_root(f), 0);
    gn_pt_close(f);
    return 0;
}
