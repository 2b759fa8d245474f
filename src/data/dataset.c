/*
 * dataset.c — gn_dataset life cycle and gn_dataset_load, the dispatch by kind.
 *
 * Design
 *   gn_dataset_load knows where each kind lives and what it defines; the readers only
 *   read files:
 *     fashion-mnist / fmnist  IDX pair {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
 *                             (also "train-images.idx3-ubyte" spellings), 10 named
 *                             classes, mean/std 0.2860/0.3530 (of the training set);
 *                             default dir /usr/share/datasets/fashion-mnist.
 *     mnist                   same files, classes "0".."9", 0.1307/0.3081; default dir
 *                             /usr/share/datasets/mnist.
 *     cifar10 / cifar-10      DIR or DIR/cifar-10-batches-bin: data_batch_1..5.bin (train)
 *                             or test_batch.bin; names from batches.meta.txt when present;
 *                             mean (0.4914,0.4822,0.4465), std (0.2470,0.2435,0.2616).
 *     folder                  DIR/train and DIR/test when DIR/train exists, else DIR is
 *                             the training split; class sub-folders; mean/std computed
 *                             from the loaded images.  The test split takes its class list
 *                             from the training split so labels agree.
 *   Fixed statistics are the published training-set values, used for both splits, so
 *   train and test are normalised alike.
 *
 *   gn_dataset_from_memory takes ownership of its arrays even when it fails (they are
 *   freed), so callers never have to guess who frees.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <math.h>
#include <sys/stat.h>

#include "data/data_internal.h"

gn_dataset *gn__dataset_new(int n, int c, int h, int w, int classes, uint8_t *pixels, const char *source,
                            gn_error *err)
{
    if (n < 1 || c < 1 || c > GN_DATA_MAX_CHANNELS || h < 1 || w < 1 || classes < 1) {
        free(pixels);
        gn_error_set(err, "%s: invalid dataset shape n=%d c=%d h=%d w=%d classes=%d", source, n, c, h, w,
                     classes);
        return NULL;
    }
    size_t bytes = (size_t)n * (size_t)c * (size_t)h * (size_t)w;
    gn_dataset *d = calloc(1, sizeof *d);
    if (d) {
        d->pixels = pixels ? pixels : malloc(bytes);
        d->labels = malloc((size_t)n * sizeof *d->labels);
    } else {
        free(pixels);
    }
    if (!d || !d->pixels || !d->labels) {
        gn_dataset_free(d);
        gn_error_set(err, "%s: out of memory for %zu bytes of pixels", source, bytes);
        return NULL;
    }
    d->n = n, d->c = c, d->h = h, d->w = w, d->classes = classes;
    snprintf(d->source, sizeof d->source, "%s", source);
    for (int i = 0; i < GN_DATA_MAX_CHANNELS; i++)
        d->mean[i] = 0.0f, d->std[i] = 1.0f;
    return d;
}

void gn__dataset_stats(gn_dataset *d)
{
    size_t plane = (size_t)d->h * (size_t)d->w;
    for (int ch = 0; ch < d->c; ch++) {
        uint64_t hist[256] = {0};
        for (int i = 0; i < d->n; i++) {
            const uint8_t *p = d->pixels + ((size_t)i * d->c + ch) * plane;
            for (size_t k = 0; k < plane; k++)
                hist[p[k]]++;
        }
        double cnt = (double)d->n * (double)plane, s = 0, s2 = 0;
        for (int v = 0; v < 256; v++)
            s += (double)hist[v] * (v / 255.0);
        double mean = s / cnt;
        for (int v = 0; v < 256; v++) {
            double dv = v / 255.0 - mean;
            s2 += (double)hist[v] * dv * dv;
        }
        /* a constant channel has std 0; 1 keeps normalisation defined (x - mean) */
        d->mean[ch] = (float)mean;
        d->std[ch] = s2 > 0 ? (float)sqrt(s2 / cnt) : 1.0f;
    }
    for (int ch = d->c; ch < GN_DATA_MAX_CHANNELS; ch++)
        d->mean[ch] = d->mean[0], d->std[ch] = d->std[0];
}

int gn__dataset_set_names(gn_dataset *d, const char *const *names, int count, gn_error *err)
{
    d->class_names = calloc((size_t)count, sizeof *d->class_names);
    if (!d->class_names)
        return gn_error_set(err, "%s: out of memory for class names", d->source);
    for (int i = 0; i < count; i++)
        if (!(d->class_names[i] = strdup(names[i])))
            return gn_error_set(err, "%s: out of memory for class names", d->source);
    return 0;
}

void gn_dataset_free(gn_dataset *d)
{
    if (!d)
        return;
    if (d->class_names)
        for (int i = 0; i < d->classes; i++)
            free(d->class_names[i]);
    free(d->class_names);
    free(d->pixels);
    free(d->labels);
    free(d);
}

int gn_dataset_from_memory(int n, int c, int h, int w, int classes, uint8_t *pixels, int32_t *labels,
                           gn_dataset **out, gn_error *err)
{
    if (out)
        *out = NULL;
    if (!out || !pixels || !labels || n < 1 || c < 1 || c > GN_DATA_MAX_CHANNELS || h < 1 || w < 1 ||
        classes < 1) {
        free(pixels);
        free(labels);
        return gn_error_set(err, "memory dataset: invalid arguments n=%d c=%d h=%d w=%d classes=%d%s", n, c, h,
                            w, classes, !pixels || !labels ? " (NULL array)" : "");
    }
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= classes) {
            int32_t bad = labels[i];
            free(pixels);
            free(labels);
            return gn_error_set(err, "memory dataset: image %d: label %d out of range [0, %d)", i, (int)bad,
                                classes);
        }
    gn_dataset *d = calloc(1, sizeof *d);
    if (!d) {
        free(pixels);
        free(labels);
        return gn_error_set(err, "memory dataset: out of memory");
    }
    d->n = n, d->c = c, d->h = h, d->w = w, d->classes = classes;
    d->pixels = pixels;
    d->labels = labels;
    snprintf(d->source, sizeof d->source, "memory");
    gn__dataset_stats(d);
    *out = d;
    return 0;
}

/* ------------------------------------------------------------------ load dispatch */

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int join(char *buf, size_t n, const char *dir, const char *name, gn_error *err)
{
    int k = snprintf(buf, n, "%s/%s", dir, name);
    if (k < 0 || (size_t)k >= n)
        return gn_error_set(err, "%s: path too long", dir);
    return 0;
}

/* The IDX file of one part: prefix "train"/"t10k", what "images"/"labels", dims "idx3"/"idx1". */
static int find_idx(const char *dir, const char *prefix, const char *what, const char *dims, char *out, size_t n,
                    gn_error *err)
{
    char name[64];
    const char *forms[] = {"%s-%s-%s-ubyte.gz", "%s-%s-%s-ubyte", "%s-%s.%s-ubyte.gz", "%s-%s.%s-ubyte"};
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, forms[i], prefix, what, dims);
        if (join(out, n, dir, name, err))
            return -1;
        if (is_file(out))
            return 0;
    }
    return gn_error_set(err, "%s: no %s %s file (looked for %s-%s-%s-ubyte[.gz] and %s-%s.%s-ubyte[.gz])", dir,
                        prefix, what, prefix, what, dims, prefix, what, dims);
}

static const char *const FASHION_NAMES[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                              "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
static const char *const DIGIT_NAMES[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};

static void set_stats(gn_dataset *d, const float *mean, const float *std)
{
    for (int ch = 0; ch < GN_DATA_MAX_CHANNELS; ch++) {
        int k = ch < d->c ? ch : 0;
        d->mean[ch] = mean[k];
        d->std[ch] = std[k];
    }
}

static int load_idx_kind(const char *dir, int train, int fashion, gn_dataset **out, gn_error *err)
{
    if (!is_dir(dir))
        return gn_error_set(err, "%s: no such directory", dir);
    char img[4096], lbl[4096];
    const char *prefix = train ? "train" : "t10k";
    if (find_idx(dir, prefix, "images", "idx3", img, sizeof img, err) ||
        find_idx(dir, prefix, "labels", "idx1", lbl, sizeof lbl, err))
        return -1;
    gn_dataset *d = NULL;
    if (gn__idx_load(img, lbl, 10, &d, err))
        return -1;
    if (gn__dataset_set_names(d, fashion ? FASHION_NAMES : DIGIT_NAMES, 10, err)) {
        gn_dataset_free(d);
        return -1;
    }
    static const float fm_mean[1] = {0.2860f}, fm_std[1] = {0.3530f};
    static const float mn_mean[1] = {0.1307f}, mn_std[1] = {0.3081f};
    set_stats(d, fashion ? fm_mean : mn_mean, fashion ? fm_std : mn_std);
    *out = d;
    return 0;
}

/* batches.meta.txt: the class names one per line (blank lines ignored). */
static int read_cifar_names(const char *path, gn_dataset *d, gn_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return gn_error_set(err, "%s: cannot open: %s", path, strerror(errno));
    char line[256], *names[10] = {0};
    int count = 0, rc = 0, lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            rc = gn_error_set(err, "%s: line %d: longer than %d characters", path, lineno, (int)sizeof line - 2);
            break;
        }
        char *s = line, *e = line + len;
        while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
            *--e = 0;
        if (!*s)
            continue;
        if (count == 10) {
            rc = gn_error_set(err, "%s: line %d: more than 10 class names", path, lineno);
            break;
        }
        if (!(names[count++] = strdup(s))) {
            rc = gn_error_set(err, "%s: out of memory", path);
            break;
        }
    }
    if (!rc && ferror(f))
        rc = gn_error_set(err, "%s: read error: %s", path, strerror(errno));
    fclose(f);
    if (!rc && count != 10)
        rc = gn_error_set(err, "%s: expected 10 class names, found %d", path, count);
    if (!rc)
        rc = gn__dataset_set_names(d, (const char *const *)names, 10, err);
    for (int i = 0; i < count; i++)
        free(names[i]);
    return rc;
}

static int load_cifar_kind(const char *dir, int train, gn_dataset **out, gn_error *err)
{
    if (!is_dir(dir))
        return gn_error_set(err, "%s: no such directory", dir);
    char base[4096], paths[5][4096], meta[4096];
    if (join(base, sizeof base, dir, "cifar-10-batches-bin", err))
        return -1;
    if (!is_dir(base))
        snprintf(base, sizeof base, "%s", dir);
    const char *p[5];
    int np = train ? 5 : 1;
    for (int i = 0; i < np; i++) {
        char name[32];
        if (train)
            snprintf(name, sizeof name, "data_batch_%d.bin", i + 1);
        else
            snprintf(name, sizeof name, "test_batch.bin");
        if (join(paths[i], sizeof paths[i], base, name, err))
            return -1;
        p[i] = paths[i];
    }
    gn_dataset *d = NULL;
    if (gn_dataset_load_cifar10(p, np, &d, err))
        return -1;
    size_t bl = strlen(base) < sizeof d->source - 1 ? strlen(base) : sizeof d->source - 1;
    memcpy(d->source, base, bl);
    d->source[bl] = 0;
    if (join(meta, sizeof meta, base, "batches.meta.txt", err)) {
        gn_dataset_free(d);
        return -1;
    }
    if (is_file(meta)) {
        /* replace the built-in names */
        gn__free_names(d->class_names, d->classes);
        d->class_names = NULL;
        if (read_cifar_names(meta, d, err)) {
            gn_dataset_free(d);
            return -1;
        }
    }
    static const float mean[3] = {0.4914f, 0.4822f, 0.4465f}, std[3] = {0.2470f, 0.2435f, 0.2616f};
    set_stats(d, mean, std);
    *out = d;
    return 0;
}

static int load_folder_kind(const char *dir, int train, int size, gn_dataset **out, gn_error *err)
{
    if (!is_dir(dir))
        return gn_error_set(err, "%s: no such directory", dir);
    char tr[4096], te[4096];
    if (join(tr, sizeof tr, dir, "train", err) || join(te, sizeof te, dir, "test", err))
        return -1;
    int split_dirs = is_dir(tr);
    if (train)
        return gn__folder_load(split_dirs ? tr : dir, size, NULL, 0, out, err);
    if (!split_dirs || !is_dir(te))
        return gn_error_set(err, "%s: no test split (a folder data set keeps it in %s/test, beside %s/train)",
                            dir, dir, dir);
    char **names = NULL;
    int count = 0;
    if (gn__folder_classes(tr, &names, &count, err))
        return -1;
    int rc = gn__folder_load(te, size, (const char *const *)names, count, out, err);
    gn__free_names(names, count);
    return rc;
}

int gn_dataset_load(const char *kind, const char *dir, const char *split, int folder_size, gn_dataset **out,
                    gn_error *err)
{
    if (!out)
        return gn_error_set(err, "dataset load: NULL output");
    *out = NULL;
    if (!kind || !split)
        return gn_error_set(err, "dataset load: NULL kind or split");
    int train;
    if (!strcmp(split, "train"))
        train = 1;
    else if (!strcmp(split, "test"))
        train = 0;
    else
        return gn_error_set(err, "dataset load: unknown split '%s' (train or test)", split);
    if (!strcasecmp(kind, "fashion-mnist") || !strcasecmp(kind, "fmnist") || !strcasecmp(kind, "fashion_mnist"))
        return load_idx_kind(dir ? dir : "/usr/share/datasets/fashion-mnist", train, 1, out, err);
    if (!strcasecmp(kind, "mnist"))
        return load_idx_kind(dir ? dir : "/usr/share/datasets/mnist", train, 0, out, err);
    if (!strcasecmp(kind, "cifar10") || !strcasecmp(kind, "cifar-10"))
        return load_cifar_kind(dir ? dir : "/usr/share/datasets/cifar-10", train, out, err);
    if (!strcasecmp(kind, "folder")) {
        if (!dir)
            return gn_error_set(err, "dataset load: kind 'folder' needs a directory");
        if (folder_size < 0 || folder_size > 4096)
            return gn_error_set(err, "%s: image size %d out of range [0, 4096]", dir, folder_size);
        return load_folder_kind(dir, train, folder_size, out, err);
    }
    return gn_error_set(err, "dataset load: unknown kind '%s' (fashion-mnist, mnist, cifar10, folder)", kind);
}
