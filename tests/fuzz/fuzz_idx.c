/*
 * fuzz_idx.c — IDX image and label files, raw or gzip (gn_dataset_load_idx and the
 * Fashion-MNIST entry with its 10 classes, src/data/dataset_idx.c).
 *
 * Feeds: input = FLAGS IMAGES [FZ_SEP LABELS] (FZ_SEP in fuzz_util.h).  IMAGES and
 * LABELS become two files (memfds opened by path); FLAGS bit 0 / bit 1: the harness
 * gzips IMAGES / LABELS first (so the fuzzer mutates the IDX structure and still goes
 * through zlib), otherwise they are written as they are (a part that is itself gzip
 * data exercises damaged streams).
 * Asserts:
 *   - failure: *out is NULL and the error is one non-empty line;
 *   - success: n >= 1 grey images of h x w >= 1, classes = max label + 1 (generic
 *     entry) or 10, every label in [0, classes), and for a raw (not gzip) image file
 *     the pixels are exactly its bytes after the 16-byte header.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "data/data_internal.h"
#include "fuzz_util.h"
#include "gpunas/data.h"

static fz_memfile img_file, lab_file;

/* gzip of data (malloc'd) */
static uint8_t *gzip(const uint8_t *data, size_t size, size_t *out_size)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    FZ_CHECK(deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK, "deflateInit2");
    size_t cap = deflateBound(&z, (uLong)size) + 32;
    uint8_t *out = malloc(cap);
    FZ_CHECK(out != NULL, "out of memory");
    z.next_in = (Bytef *)data;
    z.avail_in = (uInt)size;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    FZ_CHECK(deflate(&z, Z_FINISH) == Z_STREAM_END, "deflate");
    *out_size = cap - z.avail_out;
    deflateEnd(&z);
    return out;
}

static const char *put(fz_memfile *m, const char *name, const uint8_t *p, size_t n, int zip)
{
    if (!zip)
        return fz_memfile_put(m, name, p, n);
    size_t zn;
    uint8_t *z = gzip(p, n, &zn);
    const char *path = fz_memfile_put(m, name, z, zn);
    free(z);
    return path;
}

static void check(const gn_dataset *d, int classes, const uint8_t *img, size_t img_n, int raw)
{
    FZ_CHECK(d->n >= 1 && d->c == 1 && d->h >= 1 && d->w >= 1, "shape %dx%dx%dx%d", d->n, d->c, d->h, d->w);
    FZ_CHECK(d->pixels && d->labels, "no data");
    int maxl = 0;
    for (int i = 0; i < d->n; i++) {
        FZ_CHECK(d->labels[i] >= 0 && d->labels[i] < d->classes, "label %d of %d classes", d->labels[i], d->classes);
        if (d->labels[i] > maxl)
            maxl = d->labels[i];
    }
    FZ_CHECK(d->classes == (classes ? classes : maxl + 1), "classes %d", d->classes);
    size_t npix = (size_t)d->n * (size_t)d->h * (size_t)d->w;
    if (raw) {
        FZ_CHECK(img_n == 16 + npix, "raw file of %zu bytes for %zu pixels", img_n, npix);
        FZ_CHECK(memcmp(d->pixels, img + 16, npix) == 0, "pixels differ from the file");
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int flags = data[0];
    const uint8_t *img, *lab;
    size_t img_n, lab_n;
    int two;
    fz_split2(data + 1, size - 1, &img, &img_n, &lab, &lab_n, &two);
    const char *ip = put(&img_file, "images", img, img_n, flags & 1);
    const char *lp = put(&lab_file, "labels", lab, lab_n, flags & 2);
    int raw = !(flags & 1) && !(img_n >= 2 && img[0] == 0x1f && img[1] == 0x8b);

    gn_dataset *d = (gn_dataset *)1;
    gn_error err = {{0}};
    if (gn_dataset_load_idx(ip, lp, &d, &err) != 0) {
        FZ_CHECK(d == NULL, "failed load left a dataset");
        fz_check_error(&err);
    } else {
        check(d, 0, img, img_n, raw);
        gn_dataset_free(d);
    }
    d = (gn_dataset *)1;
    memset(&err, 0, sizeof err);
    if (gn__idx_load(ip, lp, 10, &d, &err) != 0) {
        FZ_CHECK(d == NULL, "failed load left a dataset");
        fz_check_error(&err);
    } else {
        check(d, 10, img, img_n, raw);
        gn_dataset_free(d);
    }
    return 0;
}
