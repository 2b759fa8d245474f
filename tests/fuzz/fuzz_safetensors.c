/*
 * fuzz_safetensors.c — safetensors files (gn_st_open and every reader of
 * gpunas/safetensors.h).
 *
 * Feeds: the input as a file (memfd, opened by path).
 * Asserts:
 *   - failure: *out is NULL and the error is one non-empty line;
 *   - success, per tensor: a name, rank 0..GN_ST_MAX_DIMS, dims >= 0 (unused ones 0),
 *     numel = product of the dims, end - begin = numel x element size, tensors ordered
 *     by offset and not overlapping, gn_st_find(name) gives the same record; its data
 *     reads with the matching call (gn_st_load with its own shape and gn_st_load_numel
 *     for F32, gn_st_load_i64 for I64) and reading it as the other dtype or with
 *     another element count fails with one line; a missing name fails with one line;
 *   - metadata: gn_st_meta_at enumerates the pairs, gn_st_meta(key) finds each value;
 *   - round trip: the tensors and metadata written again with gn_st_writer re-open to
 *     the same names, dtypes, shapes, bytes and pairs (when the writer accepts every
 *     name: it refuses a few that the reader allows, e.g. an empty name; that refusal
 *     must be one line too).
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "gpunas/safetensors.h"

static fz_memfile in_file;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fz_memfile_put(&in_file, "st", data, size);
    gn_st_file *f = (gn_st_file *)1;
    gn_error err = {{0}};
    if (gn_st_open(path, &f, &err) != 0) {
        FZ_CHECK(f == NULL, "failed open left a file");
        fz_check_error(&err);
        return 0;
    }
    int n = gn_st_count(f);
    FZ_CHECK(n >= 0, "count %d", n);
    void **bufs = calloc((size_t)n + 1, sizeof *bufs);
    FZ_CHECK(bufs != NULL, "out of memory");
    uint64_t prev_end = 0;
    for (int i = 0; i < n; i++) {
        const gn_st_info *t = gn_st_at(f, i);
        FZ_CHECK(t && t->name, "tensor %d has no record", i);
        FZ_CHECK(t->ndim >= 0 && t->ndim <= GN_ST_MAX_DIMS, "tensor %d rank %d", i, t->ndim);
        int64_t numel = 1;
        for (int k = 0; k < GN_ST_MAX_DIMS; k++) {
            FZ_CHECK(t->shape[k] >= 0, "tensor %d dim %d is %" PRId64, i, k, t->shape[k]);
            FZ_CHECK(k < t->ndim || t->shape[k] == 0, "tensor %d unused dim %d is %" PRId64, i, k, t->shape[k]);
            if (k < t->ndim)
                numel *= t->shape[k];
        }
        FZ_CHECK(numel == t->numel, "tensor %d numel %" PRId64 ", shape gives %" PRId64, i, t->numel, numel);
        size_t es = t->dtype == GN_ST_I64 ? 8 : 4;
        FZ_CHECK(t->dtype == GN_ST_F32 || t->dtype == GN_ST_I64, "tensor %d dtype %d", i, t->dtype);
        FZ_CHECK(t->end >= t->begin && t->end - t->begin == (uint64_t)t->numel * es, "tensor %d offsets", i);
        FZ_CHECK(t->end <= size, "tensor %d ends past the file", i);
        if (t->begin != t->end) {
            FZ_CHECK(t->begin >= prev_end, "tensor %d overlaps an earlier one", i);
            prev_end = t->end;
        }
        FZ_CHECK(gn_st_find(f, t->name) == t, "tensor %d not found by name", i);

        size_t bytes = (size_t)t->numel * es;
        bufs[i] = malloc(bytes ? bytes : 1);
        FZ_CHECK(bufs[i] != NULL, "out of memory");
        if (t->dtype == GN_ST_F32) {
            FZ_CHECK(gn_st_load(f, t->name, t->ndim, t->shape, bufs[i], &err) == 0, "load: %s", err.msg);
            FZ_CHECK(gn_st_load_numel(f, t->name, t->numel, bufs[i], &err) == 0, "load_numel: %s", err.msg);
            int64_t dummy[1];
            FZ_CHECK(gn_st_load_i64(f, t->name, t->numel, t->numel ? NULL : dummy, &err) != 0, "F32 read as I64");
            fz_check_error(&err);
        } else {
            FZ_CHECK(gn_st_load_i64(f, t->name, t->numel, bufs[i], &err) == 0, "load_i64: %s", err.msg);
            FZ_CHECK(gn_st_load_numel(f, t->name, t->numel, NULL, &err) != 0, "I64 read as F32");
            fz_check_error(&err);
        }
        FZ_CHECK(gn_st_load_numel(f, t->name, t->numel + 1, NULL, &err) != 0, "wrong element count accepted");
        fz_check_error(&err);
    }
    FZ_CHECK(gn_st_get(f, "\x01 no such tensor", NULL, &err) != 0, "missing tensor found");
    fz_check_error(&err);

    int nm = gn_st_meta_count(f);
    for (int i = 0; i < nm; i++) {
        const char *k, *v;
        FZ_CHECK(gn_st_meta_at(f, i, &k, &v) == 0 && k && v, "metadata %d", i);
        FZ_CHECK(gn_st_meta(f, k) == v, "metadata key %d not found", i);
    }
    FZ_CHECK(gn_st_meta_at(f, nm, NULL, NULL) != 0, "metadata past the end");

    /* round trip through the writer */
    gn_st_writer *w = gn_st_writer_new();
    FZ_CHECK(w != NULL, "out of memory");
    int ok = 1;
    for (int i = 0; i < n && ok; i++) {
        const gn_st_info *t = gn_st_at(f, i);
        int rc = t->dtype == GN_ST_F32 ? gn_st_writer_add(w, t->name, t->ndim, t->shape, bufs[i], &err)
                                       : gn_st_writer_add_i64(w, t->name, t->ndim, t->shape, bufs[i], &err);
        if (rc) {
            fz_check_error(&err);
            ok = 0;
        }
    }
    for (int i = 0; i < nm && ok; i++) {
        const char *k, *v;
        gn_st_meta_at(f, i, &k, &v);
        if (gn_st_writer_meta(w, k, v, &err)) {
            fz_check_error(&err);
            ok = 0;
        }
    }
    if (ok) {
        char out[512];
        fz_path(out, sizeof out, "rt.safetensors");
        FZ_CHECK(gn_st_writer_write(w, out, &err) == 0, "write: %s", err.msg);
        gn_st_file *g;
        FZ_CHECK(gn_st_open(out, &g, &err) == 0, "re-open of the writer's output: %s", err.msg);
        FZ_CHECK(gn_st_count(g) == n && gn_st_meta_count(g) == nm, "round trip: %d/%d tensors, %d/%d pairs",
                 gn_st_count(g), n, gn_st_meta_count(g), nm);
        for (int i = 0; i < n; i++) {
            const gn_st_info *t = gn_st_at(f, i), *u = gn_st_find(g, t->name);
            FZ_CHECK(u && u->dtype == t->dtype && u->ndim == t->ndim &&
                         memcmp(u->shape, t->shape, sizeof t->shape) == 0,
                     "round trip: tensor %d differs", i);
            size_t bytes = (size_t)t->numel * (t->dtype == GN_ST_I64 ? 8 : 4);
            void *b = malloc(bytes ? bytes : 1);
            FZ_CHECK(b != NULL, "out of memory");
            int rc = t->dtype == GN_ST_F32 ? gn_st_load_numel(g, t->name, t->numel, b, &err)
                                           : gn_st_load_i64(g, t->name, t->numel, b, &err);
            FZ_CHECK(rc == 0 && memcmp(b, bufs[i], bytes) == 0, "round trip: data of tensor %d differs", i);
            free(b);
        }
        for (int i = 0; i < nm; i++) {
            const char *k, *v, *v2;
            gn_st_meta_at(f, i, &k, &v);
            v2 = gn_st_meta(g, k);
            FZ_CHECK(v2 && strcmp(v, v2) == 0, "round trip: metadata %d differs", i);
        }
        gn_st_close(g);
    }
    gn_st_writer_free(w);
    for (int i = 0; i < n; i++)
        free(bufs[i]);
    free(bufs);
    gn_st_close(f);
    return 0;
}
