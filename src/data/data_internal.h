/*
 * data_internal.h — what the files of src/data share but the public API does not show.
 *
 * Design
 *   - dataset.c owns allocation of a gn_dataset (gn__dataset_new) and the per-channel
 *     statistics (gn__dataset_stats), so every reader builds datasets the same way.
 *   - The readers have an internal entry point with the extra knowledge that
 *     gn_dataset_load has (IDX: the number of classes the kind defines; folder: the class
 *     list of the training split, so a test split labels its images consistently).
 *   - resize.c holds the one bilinear kernel (half-pixel centres, like
 *     torch.nn.functional.interpolate(mode='bilinear', align_corners=False)), precomputed
 *     per axis as a gn__resize_axis table, used by the folder reader (uint8 out) and by the
 *     loader (float out).
 *   - image_decode.c decodes one PNG or JPEG file to 8-bit grey or RGB planes.
 */
#ifndef GPUNAS_DATA_INTERNAL_H
#define GPUNAS_DATA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "gpunas/data.h"

/* ---- dataset.c ---- */

/* A dataset with pixels (n*c*h*w) and labels (n) allocated, mean 0 / std 1; NULL with err
 * set on failure.  pixels non-NULL: used as the pixel array (ownership taken, freed on
 * failure).  `source` names it in messages. */
gn_dataset *gn__dataset_new(int n, int c, int h, int w, int classes, uint8_t *pixels, const char *source,
                            gn_error *err);
/* mean/std per channel of pixels/255 (population std); channels >= c repeat channel 0. */
void gn__dataset_stats(gn_dataset *d);
/* Copies `names` (classes strings) into d->class_names; -1 with err on out of memory. */
int gn__dataset_set_names(gn_dataset *d, const char *const *names, int count, gn_error *err);

/* ---- dataset_idx.c ---- */

/* classes > 0: labels must lie in [0, classes) and d->classes = classes;
 * classes == 0: d->classes = max label + 1. */
int gn__idx_load(const char *images_path, const char *labels_path, int classes, gn_dataset **out,
                 gn_error *err);

/* ---- dataset_folder.c ---- */

/* class_dirs NULL: the classes are dir's sub-folders.  Otherwise the classes are exactly
 * class_dirs (nclass names, e.g. the training split's), and every sub-folder of dir must
 * be one of them (a class may have no sub-folder here). */
int gn__folder_load(const char *dir, int size, const char *const *class_dirs, int nclass, gn_dataset **out,
                    gn_error *err);
/* Sorted names of dir's sub-folders that hold classes (hidden ones skipped); malloc'd
 * array of malloc'd strings in *names, count in *count. */
int gn__folder_classes(const char *dir, char ***names, int *count, gn_error *err);
void gn__free_names(char **names, int count);

/* ---- image_decode.c ---- */

/* Decodes PNG or JPEG (by content, not by name) into malloc'd planes [c][h][w], c = 1
 * (grey) or 3 (RGB); alpha is dropped, palettes expanded, 16-bit scaled to 8. */
int gn__image_decode(const char *path, uint8_t **pixels, int *c, int *h, int *w, gn_error *err);

/* ---- resize.c ---- */

typedef struct {
    int out;      /* output length */
    int32_t *i0;  /* first source index per output position */
    int32_t *i1;  /* second source index (== i0 at the border) */
    float *l1;    /* weight of i1; weight of i0 is 1 - l1 */
} gn__resize_axis;

int gn__resize_axis_init(gn__resize_axis *a, int in, int out, gn_error *err);
void gn__resize_axis_free(gn__resize_axis *a);
/* One plane, src [h][w] uint8 -> dst [ay.out][ax.out] float (same 0..255 scale). */
void gn__resize_plane_f32(const uint8_t *src, int w, const gn__resize_axis *ay, const gn__resize_axis *ax,
                          float *dst);
/* Same, rounded to nearest (halves up) into uint8. */
void gn__resize_plane_u8(const uint8_t *src, int w, const gn__resize_axis *ay, const gn__resize_axis *ax,
                         uint8_t *dst);

/* ---- augment.c ---- */

/* Everything the per-image transform needs, fixed for a loader. */
typedef struct {
    gn_augment aug;
    int c, h, w;            /* source image */
    int r;                  /* output resolution */
    int resize;             /* 1 when (h, w) != (r, r) */
    gn__resize_axis ay, ax; /* tables when resize */
    float scale[GN_DATA_MAX_CHANNELS]; /* 1 / (255 * std) */
    float shift[GN_DATA_MAX_CHANNELS]; /* mean / std */
} gn__transform;

int gn__transform_init(gn__transform *t, const gn_augment *a, int c, int h, int w, gn_error *err);
void gn__transform_free(gn__transform *t);
/* Transforms one image into dst [c][r][r].  scratch: r*r floats.  The random draws
 * come from an RNG seeded by gn__image_key(seed, epoch, position). */
void gn__transform_image(const gn__transform *t, const uint8_t *src, uint64_t key, float *scratch, float *dst);
/* RNG keys: one per image of an epoch; one for the epoch's permutation. */
uint64_t gn__image_key(uint64_t seed, int epoch, int64_t position);
uint64_t gn__perm_key(uint64_t seed, int epoch);

#endif
