/*
 * dataset_cifar.c — CIFAR-10 binary batches reader.
 *
 * Design
 *   A CIFAR-10 binary batch is a plain sequence of 3073-byte records: one label byte
 *   (0..9) and 3072 pixel bytes already in [c][h][w] order (1024 red, 1024 green, 1024
 *   blue, rows top to bottom) — exactly gn_dataset's layout, so records are copied as
 *   they are.  The files are sized first (fstat) so the dataset is allocated once; a
 *   size that is not a whole number of records is "truncated", a file that then reads
 *   short is a read error.  Class names default to the official ten; gn_dataset_load
 *   replaces them with batches.meta.txt when the folder has one.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/data_internal.h"

#define REC 3073
#define PIX 3072

static const char *const NAMES[10] = {"airplane", "automobile", "bird",  "cat",  "deer",
                                      "dog",      "frog",       "horse", "ship", "truck"};

/* Records in one file, from its size. */
static int count_records(const char *path, long long *recs, gn_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return gn_error_set(err, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return gn_error_set(err, "%s: not a regular file", path);
    long long size = (long long)st.st_size;
    if (size == 0)
        return gn_error_set(err, "%s: empty file (no %d-byte records)", path, REC);
    if (size % REC != 0) {
        long long want = (size / REC + 1) * REC;
        return gn_error_set(err, "%s: truncated: expected %lld bytes (%lld records of %d), got %lld", path, want,
                            size / REC + 1, REC, size);
    }
    *recs = size / REC;
    return 0;
}

int gn_dataset_load_cifar10(const char *const *paths, int npaths, gn_dataset **out, gn_error *err)
{
    if (!out)
        return gn_error_set(err, "CIFAR-10 load: NULL output");
    *out = NULL;
    if (!paths || npaths < 1)
        return gn_error_set(err, "CIFAR-10 load: no files given");
    long long total = 0;
    long long *recs = calloc((size_t)npaths, sizeof *recs);
    if (!recs)
        return gn_error_set(err, "CIFAR-10 load: out of memory");
    for (int i = 0; i < npaths; i++) {
        if (!paths[i]) {
            free(recs);
            return gn_error_set(err, "CIFAR-10 load: file %d: NULL path", i);
        }
        if (count_records(paths[i], &recs[i], err)) {
            free(recs);
            return -1;
        }
        total += recs[i];
    }
    if (total > 0x7fffffffLL) {
        free(recs);
        return gn_error_set(err, "%s: too many records (%lld)", paths[0], total);
    }
    gn_dataset *d = gn__dataset_new((int)total, 3, 32, 32, 10, NULL, paths[0], err);
    if (!d) {
        free(recs);
        return -1;
    }
    uint8_t rec[REC];
    long long k = 0;
    for (int i = 0; i < npaths; i++) {
        FILE *f = fopen(paths[i], "rb");
        if (!f) {
            gn_error_set(err, "%s: cannot open: %s", paths[i], strerror(errno));
            goto fail;
        }
        for (long long r = 0; r < recs[i]; r++, k++) {
            if (fread(rec, 1, REC, f) != REC) {
                gn_error_set(err, "%s: record %lld: read error or file shrank: %s", paths[i], r,
                             ferror(f) ? strerror(errno) : "unexpected end of file");
                fclose(f);
                goto fail;
            }
            if (rec[0] >= 10) {
                gn_error_set(err, "%s: record %lld: label %d out of range [0, 10)", paths[i], r, rec[0]);
                fclose(f);
                goto fail;
            }
            d->labels[k] = rec[0];
            memcpy(d->pixels + (size_t)k * PIX, rec + 1, PIX);
        }
        fclose(f);
    }
    free(recs);
    if (gn__dataset_set_names(d, NAMES, 10, err)) {
        gn_dataset_free(d);
        return -1;
    }
    gn__dataset_stats(d);
    *out = d;
    return 0;
fail:
    free(recs);
    gn_dataset_free(d);
    return -1;
}
