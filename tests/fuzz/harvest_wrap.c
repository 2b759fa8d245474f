/*
 * harvest_wrap.c — collects the inputs the unit tests feed the parsers, as seed
 * candidates for the fuzz corpora (scripts/fuzz.sh --harvest).
 *
 * Linked into copies of the test programs with -Wl,--wrap=<parser> for each parser
 * below; every call first saves its input (the text, or the file's bytes) to
 * $GPUNAS_HARVEST/<harness>/h-<FNV-1a of the bytes> (inputs over 64 KiB are skipped;
 * the same input is saved once), then calls the real function.  Inputs of two files
 * (IDX) are framed as fuzz_idx.c expects.  Not part of the library or the test suite.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/data_internal.h"
#include "fuzz_util.h"
#include "gpunas/arch.h"
#include "gpunas/hub.h"
#include "gpunas/latprofile.h"
#include "gpunas/npy.h"
#include "gpunas/safetensors.h"
#include "gpunas/space.h"
#include "train/train_internal.h"

#define MAX_SAVE (64u << 10)

static void save(const char *harness, const void *data, size_t n)
{
    const char *root = getenv("GPUNAS_HARVEST");
    if (!root || n > MAX_SAVE)
        return;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ ((const uint8_t *)data)[i]) * 1099511628211ull;
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", root, harness);
    mkdir(root, 0777);
    mkdir(p, 0777);
    snprintf(p, sizeof p, "%s/%s/h-%016llx", root, harness, (unsigned long long)h);
    struct stat st;
    if (stat(p, &st) == 0)
        return;
    FILE *f = fopen(p, "wb");
    if (f) {
        if (n)
            fwrite(data, 1, n, f);
        fclose(f);
    }
}

static void save_file(const char *harness, const char *path)
{
    struct stat st;
    if (!path || stat(path, &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > MAX_SAVE)
        return;
    size_t n;
    char *t = fz_read_file(path, &n);
    if (t)
        save(harness, t, n);
    free(t);
}

#define WRAP_TEXT(harness, ret, fn, params, args)                                                                 \
    ret __real_##fn params;                                                                                       \
    ret __wrap_##fn params                                                                                        \
    {                                                                                                             \
        if (text)                                                                                                 \
            save(harness, text, strlen(text));                                                                    \
        return __real_##fn args;                                                                                  \
    }
#define WRAP_FILE(harness, ret, fn, params, args)                                                                 \
    ret __real_##fn params;                                                                                       \
    ret __wrap_##fn params                                                                                        \
    {                                                                                                             \
        save_file(harness, path);                                                                                 \
        return __real_##fn args;                                                                                  \
    }

WRAP_TEXT("arch", int, gn_arch_parse, (const char *text, const char *source, gn_arch **out, gn_error *err),
          (text, source, out, err))
WRAP_TEXT("space", int, gn_space_parse, (const char *text, const char *source, gn_space **out, gn_error *err),
          (text, source, out, err))
WRAP_TEXT("latprofile", int, gn_lat_profile_parse,
          (const char *text, const char *source, gn_lat_profile *p, gn_error *err), (text, source, p, err))
WRAP_FILE("arch", int, gn_arch_load, (const char *path, gn_arch **out, gn_error *err), (path, out, err))
WRAP_FILE("space", int, gn_space_load, (const char *path, gn_space **out, gn_error *err), (path, out, err))
WRAP_FILE("latprofile", int, gn_lat_profile_load, (const char *path, gn_lat_profile *p, gn_error *err),
          (path, p, err))
WRAP_FILE("safetensors", int, gn_st_open, (const char *path, gn_st_file **out, gn_error *err), (path, out, err))
WRAP_FILE("npy", int, gn_npy_read, (const char *path, gn_npy *out, gn_error *err), (path, out, err))
WRAP_FILE("image", int, gn__image_decode,
          (const char *path, uint8_t **pixels, int *c, int *h, int *w, gn_error *err), (path, pixels, c, h, w, err))
WRAP_FILE("checkpoint", int, gn__ckpt_load, (const char *path, const gn__ckpt_ctx *c, int *done, gn_error *err),
          (path, c, done, err))
WRAP_FILE("checkpoint", int, gn_net_load, (gn_net * net, const char *path, gn_error *err), (net, path, err))

int __real_gn__idx_load(const char *images_path, const char *labels_path, int classes, gn_dataset **out,
                        gn_error *err);
int __wrap_gn__idx_load(const char *images_path, const char *labels_path, int classes, gn_dataset **out,
                        gn_error *err)
{
    size_t a = 0, b = 0;
    struct stat si, sl;
    bool small = images_path && labels_path && stat(images_path, &si) == 0 && stat(labels_path, &sl) == 0 &&
                 (size_t)si.st_size + (size_t)sl.st_size < MAX_SAVE;
    char *ia = small ? fz_read_file(images_path, &a) : NULL, *lb = small ? fz_read_file(labels_path, &b) : NULL;
    if (ia && lb && a + b < MAX_SAVE) {
        size_t sl = sizeof FZ_SEP - 1;
        char *buf = malloc(1 + a + sl + b);
        if (buf) {
            buf[0] = 0;
            memcpy(buf + 1, ia, a);
            memcpy(buf + 1 + a, FZ_SEP, sl);
            memcpy(buf + 1 + a + sl, lb, b);
            save("idx", buf, 1 + a + sl + b);
            free(buf);
        }
    }
    free(ia);
    free(lb);
    return __real_gn__idx_load(images_path, labels_path, classes, out, err);
}

int __real_gn_dataset_load_cifar10(const char *const *paths, int npaths, gn_dataset **out, gn_error *err);
int __wrap_gn_dataset_load_cifar10(const char *const *paths, int npaths, gn_dataset **out, gn_error *err)
{
    for (int i = 0; paths && i < npaths && i < 2; i++)
        save_file("cifar", paths[i]);
    return __real_gn_dataset_load_cifar10(paths, npaths, out, err);
}

int __real_gn_hub_load(const char *dir, bool allow_missing, gn_hub *h, gn_error *err);
int __wrap_gn_hub_load(const char *dir, bool allow_missing, gn_hub *h, gn_error *err)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/hub.json", dir ? dir : ".");
    save_file("hub", p);
    return __real_gn_hub_load(dir, allow_missing, h, err);
}
