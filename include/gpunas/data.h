/*
 * gpunas/data.h — image classification data sets and the batch loader.
 *
 * Design
 *   A gn_dataset is an in-memory array of uint8 images, all the same size, stored
 *   [n][c][h][w], with int32 labels in [0, classes).  Three readers fill it:
 *     - Fashion-MNIST / MNIST IDX files (gzip or raw; Debian's dataset-fashion-mnist
 *       puts them in /usr/share/datasets/fashion-mnist),
 *     - CIFAR-10 binary batches (data_batch_1..5.bin, test_batch.bin; 1 label byte +
 *       3072 pixel bytes per record),
 *     - a folder of class sub-folders of PNG/JPEG images (users' own data; classes
 *       are the sub-folder names in sorted order; images are resized to one size).
 *   Every reader checks sizes, magic numbers and counts and fails with one line that
 *   names the file and the problem ("FILE: truncated: expected 47040016 bytes, got
 *   1000").
 *
 *   Splits and subsets are index views (gn_dataset_view) of a parent dataset, so a
 *   seeded validation split of the training set and a proxy-training subset cost no
 *   copy.  The split is a seeded permutation: same seed, same split.
 *
 *   gn_loader turns a dataset (or view) into float batches [N, C, R, R] (R = the
 *   network's resolution): resize (bilinear) to R, then for training: random crop with
 *   zero padding, horizontal flip, random erasing; then per-channel normalisation.  A
 *   background thread prepares batches ahead (prefetch queue).  Determinism: the epoch
 *   permutation and every image's augmentation draw from RNGs derived only from (seed,
 *   epoch, image position), never from thread timing, so the batches of epoch e are
 *   identical for a given seed however the threads run — and a resumed run sees the
 *   same batches as an uninterrupted one.
 */
#ifndef GPUNAS_DATA_H
#define GPUNAS_DATA_H

#include <stdbool.h>
#include <stdint.h>

#include "gpunas/error.h"

#define GN_DATA_MAX_CHANNELS 3

typedef struct {
    int n;               /* images */
    int c, h, w;         /* per image */
    int classes;
    uint8_t *pixels;     /* n*c*h*w, owned */
    int32_t *labels;     /* n, owned */
    char **class_names;  /* classes strings, owned (may be NULL) */
    char source[256];    /* what it was read from, for messages */
    /* default normalisation of this data (per channel) */
    float mean[GN_DATA_MAX_CHANNELS], std[GN_DATA_MAX_CHANNELS];
} gn_dataset;

/* Which data set and which part of it. kind: "fashion-mnist" (also "fmnist"), "mnist"
 * (IDX, same reader), "cifar10", "folder".  split: "train" or "test" (for "folder",
 * dir/train and dir/test sub-folders if present, else dir itself for "train").
 * dir NULL: the default location for the kind (fashion-mnist: /usr/share/datasets/
 * fashion-mnist).  folder_size: for "folder", the size images are resized to on load
 * (0: size of the first image). */
int gn_dataset_load(const char *kind, const char *dir, const char *split, int folder_size, gn_dataset **out,
                    gn_error *err);
/* Readers, also usable directly (paths of the two IDX files / one CIFAR file list). */
int gn_dataset_load_idx(const char *images_path, const char *labels_path, gn_dataset **out, gn_error *err);
int gn_dataset_load_cifar10(const char *const *paths, int npaths, gn_dataset **out, gn_error *err);
int gn_dataset_load_folder(const char *dir, int size, gn_dataset **out, gn_error *err);
/* Takes ownership of pixels and labels (malloc'ed). */
int gn_dataset_from_memory(int n, int c, int h, int w, int classes, uint8_t *pixels, int32_t *labels,
                           gn_dataset **out, gn_error *err);
void gn_dataset_free(gn_dataset *d);

/* An index view of a dataset (does not own the dataset). */
typedef struct {
    const gn_dataset *data;
    int n;
    int32_t *index; /* n indices into data, owned */
} gn_dataset_view;

/* The whole dataset as a view. */
int gn_view_all(const gn_dataset *d, gn_dataset_view *out, gn_error *err);
/* Seeded split: val gets round(n*val_fraction) images, train the rest; disjoint,
 * together all of d.  val_fraction in [0, 1). */
int gn_view_split(const gn_dataset *d, double val_fraction, uint64_t seed, gn_dataset_view *train,
                  gn_dataset_view *val, gn_error *err);
/* Seeded random subset of a view of size m <= v->n (class-balanced not required). */
int gn_view_subset(const gn_dataset_view *v, int m, uint64_t seed, gn_dataset_view *out, gn_error *err);
void gn_view_free(gn_dataset_view *v);

typedef struct {
    int resolution;     /* output R (images resized to RxR first if different) */
    bool augment;       /* false: resize + normalise only (evaluation) */
    int crop_pad;       /* random crop with this zero padding (0: off) */
    bool hflip;         /* random horizontal flip p=0.5 */
    float erase_prob;   /* random erasing probability (0: off) */
    float mean[GN_DATA_MAX_CHANNELS], std[GN_DATA_MAX_CHANNELS];
} gn_augment;

/* Defaults for a dataset: resolution = its size, augment on, crop_pad = size/8,
 * hflip on, erase_prob 0.25, its mean/std. */
void gn_augment_defaults(const gn_dataset *d, gn_augment *a);

typedef struct {
    int n;              /* images in this batch (last batch may be smaller unless drop_last) */
    int c, h, w;        /* h = w = resolution */
    float *x;           /* n*c*h*w, valid until the next gn_loader_next */
    int32_t *labels;    /* n */
    int64_t first;      /* position of the batch's first image within the epoch */
} gn_batch;

typedef struct gn_loader gn_loader;

/* shuffle: a new seeded permutation every epoch.  prefetch: batches prepared ahead by
 * the background thread (0: prepare in the caller's thread). */
int gn_loader_create(const gn_dataset_view *v, int batch, const gn_augment *aug, bool shuffle, bool drop_last,
                     uint64_t seed, int prefetch, gn_loader **out, gn_error *err);
/* Start epoch e (0-based); batches then come from gn_loader_next. */
int gn_loader_start_epoch(gn_loader *l, int epoch, gn_error *err);
/* 1: *b filled; 0: end of epoch; -1: error. */
int gn_loader_next(gn_loader *l, gn_batch *b, gn_error *err);
int gn_loader_batches_per_epoch(const gn_loader *l);
void gn_loader_free(gn_loader *l);

#endif
