/*
 * fuzz_npy.c — NumPy .npy files (gn_npy_read, gpunas/npy.h), as `gpunas predict
 * --input X.npy` reads them.
 *
 * Feeds: the input as a file (memfd, opened by path).
 * Asserts:
 *   - failure: the result is zeroed and the error is one non-empty line;
 *   - success: rank 1..GN_NPY_MAX_DIMS, dims >= 0 (unused ones 0), numel = product,
 *     data allocated, and the file holds exactly the header plus numel x 4 bytes;
 *   - round trip: gn_npy_write of the array reads back to the same shape and the same
 *     bits.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "gpunas/npy.h"

static fz_memfile in_file;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fz_memfile_put(&in_file, "npy", data, size);
    gn_npy a;
    memset(&a, 0x5a, sizeof a);
    gn_error err = {{0}};
    if (gn_npy_read(path, &a, &err) != 0) {
        fz_check_error(&err);
        FZ_CHECK(a.ndim == 0 && a.numel == 0 && a.data == NULL, "failed read left a result");
        return 0;
    }
    FZ_CHECK(a.ndim >= 1 && a.ndim <= GN_NPY_MAX_DIMS, "rank %d", a.ndim);
    int64_t numel = 1;
    for (int k = 0; k < GN_NPY_MAX_DIMS; k++) {
        FZ_CHECK(a.shape[k] >= 0, "dim %d is %lld", k, (long long)a.shape[k]);
        FZ_CHECK(k < a.ndim || a.shape[k] == 0, "unused dim %d is %lld", k, (long long)a.shape[k]);
        if (k < a.ndim)
            numel *= a.shape[k];
    }
    FZ_CHECK(numel == a.numel, "numel %lld, shape gives %lld", (long long)a.numel, (long long)numel);
    FZ_CHECK(a.data != NULL, "no data");
    FZ_CHECK((uint64_t)a.numel * 4 < size, "%lld floats in a %zu-byte file", (long long)a.numel, size);
    volatile float sink = 0;
    for (int64_t i = 0; i < a.numel; i++)
        sink += a.data[i];
    (void)sink;

    char out[512];
    fz_path(out, sizeof out, "rt.npy");
    FZ_CHECK(gn_npy_write(out, a.ndim, a.shape, a.data, &err) == 0, "write: %s", err.msg);
    gn_npy b;
    FZ_CHECK(gn_npy_read(out, &b, &err) == 0, "re-read of the writer's output: %s", err.msg);
    FZ_CHECK(b.ndim == a.ndim && memcmp(b.shape, a.shape, sizeof a.shape) == 0 && b.numel == a.numel,
             "round trip: shape differs");
    FZ_CHECK(a.numel == 0 || memcmp(a.data, b.data, (size_t)a.numel * 4) == 0, "round trip: data differs");
    gn_npy_free(&b);
    gn_npy_free(&a);
    return 0;
}
