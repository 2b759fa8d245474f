/*
 * fuzz_cifar.c — CIFAR-10 binary batches and their batches.meta.txt class names
 * (gn_dataset_load "cifar10", src/data/dataset_cifar.c and dataset.c).
 *
 * Feeds: input = BATCH [FZ_SEP META] (FZ_SEP in fuzz_util.h): BATCH is written as
 * test_batch.bin in a scratch folder, META (when the separator is there) as
 * batches.meta.txt beside it, and the folder is loaded as the "test" split; BATCH
 * alone is also read by gn_dataset_load_cifar10 as two files (the same memfd twice).
 * Asserts:
 *   - failure: *out is NULL and the error is one non-empty line;
 *   - success: records = file size / 3073, 3 x 32 x 32 images, 10 classes with
 *     non-empty names, labels in [0, 10), pixels equal to the records' bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "gpunas/data.h"

static fz_memfile batch_file;

static void check(const gn_dataset *d, const uint8_t *b, size_t n, int copies)
{
    size_t recs = n / 3073;
    FZ_CHECK(n % 3073 == 0 && recs >= 1, "loaded a file of %zu bytes", n);
    FZ_CHECK(d->n == (int)recs * copies && d->c == 3 && d->h == 32 && d->w == 32 && d->classes == 10,
             "shape %dx%dx%dx%d, %d classes", d->n, d->c, d->h, d->w, d->classes);
    FZ_CHECK(d->class_names != NULL, "no class names");
    for (int k = 0; k < 10; k++)
        FZ_CHECK(d->class_names[k] && d->class_names[k][0], "class %d has no name", k);
    for (int i = 0; i < d->n; i++) {
        const uint8_t *rec = b + (size_t)(i % (int)recs) * 3073;
        FZ_CHECK(d->labels[i] == rec[0] && rec[0] < 10, "record %d label", i);
        FZ_CHECK(memcmp(d->pixels + (size_t)i * 3072, rec + 1, 3072) == 0, "record %d pixels", i);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *b, *m;
    size_t bn, mn;
    int has_meta;
    fz_split2(data, size, &b, &bn, &m, &mn, &has_meta);
    char bpath[512], mpath[512];
    fz_path(bpath, sizeof bpath, "test_batch.bin");
    fz_path(mpath, sizeof mpath, "batches.meta.txt");
    fz_write_file(bpath, b, bn);
    if (has_meta)
        fz_write_file(mpath, m, mn);
    else
        unlink(mpath);

    gn_dataset *d = (gn_dataset *)1;
    gn_error err = {{0}};
    if (gn_dataset_load("cifar10", fz_dir(), "test", 0, &d, &err) != 0) {
        FZ_CHECK(d == NULL, "failed load left a dataset");
        fz_check_error(&err);
    } else {
        check(d, b, bn, 1);
        gn_dataset_free(d);
    }

    if (!has_meta) {
        const char *p = fz_memfile_put(&batch_file, "cifar", b, bn);
        const char *paths[2] = {p, p};
        d = (gn_dataset *)1;
        memset(&err, 0, sizeof err);
        if (gn_dataset_load_cifar10(paths, 2, &d, &err) != 0) {
            FZ_CHECK(d == NULL, "failed load left a dataset");
            fz_check_error(&err);
        } else {
            check(d, b, bn, 2);
            gn_dataset_free(d);
        }
    }
    return 0;
}
