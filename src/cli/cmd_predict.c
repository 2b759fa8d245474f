/*
 * cmd_predict.c — `gpunas predict`: run trained weights on images or on a .npy batch.
 *
 *   gpunas predict CONFIG --weights W (IMAGE ... | --input X.npy --output Y.npy) [options]
 *
 * The network: CONFIG's layers with the input channels, classes and resolution the
 * weights were trained with (the weights file's "arch" metadata, as `gpunas eval`
 * reads it; the config's own values when the file has none), each overridable with
 * --in-ch / --classes / --res.
 *
 * Images (PNG or JPEG, by content): decoded by the data module's decoder, brought to
 * the network's channels (RGB -> grey with the ITU-R 601-2 luma weights, rounded as
 * PIL's convert("L") does, for a 1-channel network; grey copied into three channels
 * for a 3-channel one, as the folder data set does), then put through exactly the
 * loader's evaluation transform (gn_loader with augment off: bilinear resize with
 * half-pixel centres to R x R, then (x/255 - mean) / std per channel).  An image of
 * the data set's own size (28 x 28 for Fashion-MNIST) therefore gives the very
 * tensor `gpunas eval` feeds the network.  mean/std are the training set's published
 * statistics, which the weights file does not record: Fashion-MNIST's for 1-channel
 * networks and CIFAR-10's for 3-channel ones unless --dataset names another kind or
 * --mean/--std give them (a folder data set's own statistics are printed by `gpunas
 * train`).  Output: per image its top-5 classes (fewer when the network has fewer)
 * with softmax probabilities and names: --labels FILE (one per line), else the
 * data set's names (Fashion-MNIST for a 10-class 1-channel network), else "class N".
 *
 * .npy: X must be float32 [N, C, R, R] matching the network, already normalised;
 * Y gets float32 [N, classes] raw logits (gn_net_infer, batches of 64), written
 * atomically.  Any failure leaves Y untouched (no file written).
 *
 * Errors: one line "gpunas predict: ..." naming the file, exit 1 (2: bad usage).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli.h"
#include "data/data_internal.h" /* gn__image_decode: the data module's PNG/JPEG decoder */
#include "gpunas/arch.h"
#include "gpunas/backend.h"
#include "gpunas/data.h"
#include "gpunas/network.h"
#include "gpunas/npy.h"
#include "gpunas/safetensors.h"

static const char *CMD = "predict";
#define BATCH 64
#define TOPK 5

static const char *const FASHION_NAMES[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                              "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
static const char *const DIGIT_NAMES[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
static const char *const CIFAR_NAMES[10] = {"airplane", "automobile", "bird", "cat", "deer",
                                            "dog",      "frog",       "horse", "ship", "truck"};

/* The statistics and names of the data sets gn_dataset_load knows (src/data/dataset.c). */
typedef struct {
    const char *kind, *title;
    int c;
    float mean[3], std[3];
    const char *const *names;
} known_set;

static const known_set KNOWN[] = {
    {"fashion-mnist", "Fashion-MNIST", 1, {0.2860f, 0.2860f, 0.2860f}, {0.3530f, 0.3530f, 0.3530f}, FASHION_NAMES},
    {"mnist", "MNIST", 1, {0.1307f, 0.1307f, 0.1307f}, {0.3081f, 0.3081f, 0.3081f}, DIGIT_NAMES},
    {"cifar10", "CIFAR-10", 3, {0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}, CIFAR_NAMES},
};

static const known_set *find_known(const char *kind)
{
    if (!strcasecmp(kind, "fmnist") || !strcasecmp(kind, "fashion_mnist"))
        kind = "fashion-mnist";
    if (!strcasecmp(kind, "cifar-10"))
        kind = "cifar10";
    for (size_t i = 0; i < sizeof KNOWN / sizeof KNOWN[0]; i++)
        if (!strcasecmp(kind, KNOWN[i].kind))
            return &KNOWN[i];
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: gpunas predict CONFIG.json --weights W.safetensors IMAGE.png|IMAGE.jpg ...\n"
            "       gpunas predict CONFIG.json --weights W.safetensors --input X.npy --output Y.npy\n"
            "  --res R          input resolution (default: the weights' own, else the config's)\n"
            "  --classes N      classes (default: the weights' own)\n"
            "  --in-ch C        input channels (default: the weights' own)\n"
            "  --labels FILE    class names, one per line (default: the data set's, else \"class N\")\n"
            "  --dataset KIND   data set the weights were trained on, for normalisation and names:\n"
            "                   fashion-mnist (1-channel default), mnist, cifar10 (3-channel default)\n"
            "  --mean M[,M,M]   per-channel mean of the training data (0..1), e.g. a folder data set's\n"
            "  --std S[,S,S]    per-channel std of the training data\n"
            "  --threads T      intra-op threads (default: the cores other processes leave free)\n"
            "  --backend dnnl|ref (dnnl)   --same-pad (as given to train)\n"
            "images: prints the top-5 classes with softmax probabilities per image;\n"
            "--input: X is float32 [N,C,R,R], already normalised; Y gets float32 [N,classes] logits\n");
}

/* "a" or "a,b,c" -> 1 or 3 floats. */
static int parse_floats(const char *flag, const char *s, float *v, int *n, double lo, double hi)
{
    if (!s) {
        cli_error(CMD, "option %s: missing value", flag);
        return -1;
    }
    *n = 0;
    const char *p = s;
    while (*n < 3) {
        char *end;
        double d = strtod(p, &end);
        if (end == p || !isfinite(d) || d < lo || d > hi || (*end && *end != ',')) {
            cli_error(CMD, "option %s: '%s' is not 1 or 3 comma-separated numbers in [%g, %g]", flag, s, lo, hi);
            return -1;
        }
        v[(*n)++] = (float)d;
        if (!*end)
            break;
        p = end + 1;
    }
    if ((*n != 1 && *n != 3) || (*n == 3 && *p && strchr(p, ','))) {
        cli_error(CMD, "option %s: '%s' is not 1 or 3 comma-separated numbers in [%g, %g]", flag, s, lo, hi);
        return -1;
    }
    if (*n == 1)
        v[1] = v[2] = v[0];
    return 0;
}

/* Input channels and classes of an arch (its head and tail layers). */
static void arch_io(const gn_arch *a, int *in_ch, int *classes)
{
    *in_ch = *classes = 0;
    for (int i = 0; i < a->n_layers; i++) {
        if (!*in_ch && (a->layers[i].type == GN_LAYER_HEAD || a->layers[i].type == GN_LAYER_HEAD_LARGE))
            *in_ch = a->layers[i].in_ch;
        if (a->layers[i].type == GN_LAYER_TAIL)
            *classes = a->layers[i].num_classes;
    }
}

/* Resolution, input channels and classes recorded in the weights' "arch" metadata;
 * 1 found, 0 none recorded, -1 error (the file cannot be read). */
static int weights_shape(const char *path, int *res, int *in_ch, int *classes, gn_error *err)
{
    gn_st_file *f;
    if (gn_st_open(path, &f, err))
        return -1;
    const char *text = gn_st_meta(f, "arch");
    int found = 0;
    gn_arch *a;
    gn_error ignore;
    if (text && gn_arch_parse(text, path, &a, &ignore) == 0) {
        *res = a->resolution;
        arch_io(a, in_ch, classes);
        gn_arch_free(a);
        found = *in_ch > 0 && *classes > 0;
    }
    gn_st_close(f);
    return found;
}

/* Class names from FILE, one per line (blank lines ignored); exactly `classes`. */
static char **read_labels(const char *path, int classes, gn_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        gn_error_set(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char **names = calloc((size_t)classes, sizeof *names);
    char line[1024];
    int count = 0, lineno = 0, bad = !names;
    if (bad)
        gn_error_set(err, "%s: out of memory", path);
    while (!bad && fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            bad = gn_error_set(err, "%s: line %d: longer than %d characters", path, lineno, (int)sizeof line - 2);
            break;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
            line[--len] = 0;
        if (!len)
            continue;
        if (count == classes) {
            count++;
            continue; /* counted for the message */
        }
        if (!(names[count++] = strdup(line)))
            bad = gn_error_set(err, "%s: out of memory", path);
    }
    fclose(f);
    if (!bad && count != classes)
        bad = gn_error_set(err, "%s: %d class names for a network with %d classes", path, count, classes);
    if (bad) {
        for (int i = 0; names && i < classes; i++)
            free(names[i]);
        free(names);
        return NULL;
    }
    return names;
}

/* One image through the evaluation transform into dst [c][r][r]. */
static int preprocess(const char *path, int c, int r, const float *mean, const float *std, float *dst, int *ih,
                      int *iw, int *ic, gn_error *err)
{
    uint8_t *px = NULL;
    int pc, h, w;
    if (gn__image_decode(path, &px, &pc, &h, &w, err))
        return -1;
    *ih = h, *iw = w, *ic = pc;
    size_t plane = (size_t)h * w;
    if (pc != c) {
        uint8_t *conv = malloc(plane * (size_t)c);
        if (!conv) {
            free(px);
            return gn_error_set(err, "%s: out of memory for %dx%d pixels", path, w, h);
        }
        if (c == 1) { /* RGB -> L, PIL's fixed-point ITU-R 601-2 luma */
            for (size_t k = 0; k < plane; k++)
                conv[k] = (uint8_t)((px[k] * 19595u + px[plane + k] * 38470u + px[2 * plane + k] * 7471u + 0x8000u) >>
                                    16);
        } else if (pc == 1) {
            for (int ch = 0; ch < c; ch++)
                memcpy(conv + ch * plane, px, plane);
        } else {
            free(conv);
            free(px);
            return gn_error_set(err, "%s: %d-channel image for a %d-channel network", path, pc, c);
        }
        free(px);
        px = conv;
    }
    /* the loader's evaluation path on a one-image data set */
    int32_t *label = calloc(1, sizeof *label);
    gn_dataset *d = NULL;
    gn_dataset_view v = {0};
    gn_loader *l = NULL;
    gn_batch b;
    if (!label) {
        free(px);
        return gn_error_set(err, "%s: out of memory", path);
    }
    if (gn_dataset_from_memory(1, c, h, w, 1, px, label, &d, err)) /* takes px and label */
        return -1;
    gn_augment aug;
    gn_augment_defaults(d, &aug);
    aug.resolution = r;
    aug.augment = false;
    for (int ch = 0; ch < GN_DATA_MAX_CHANNELS; ch++)
        aug.mean[ch] = mean[ch], aug.std[ch] = std[ch];
    int rc = -1;
    if (gn_view_all(d, &v, err) || gn_loader_create(&v, 1, &aug, false, false, 0, 0, &l, err) ||
        gn_loader_start_epoch(l, 0, err))
        goto done;
    if (gn_loader_next(l, &b, err) != 1) {
        gn_error_set(err, "%s: preprocessing produced no batch", path);
        goto done;
    }
    memcpy(dst, b.x, (size_t)c * r * r * sizeof *dst);
    rc = 0;
done:
    if (rc && strncmp(err->msg, path, strlen(path)) != 0) {
        char m[GN_ERROR_MAX];
        snprintf(m, sizeof m, "%s", err->msg);
        gn_error_set(err, "%s: %s", path, m);
    }
    gn_loader_free(l);
    gn_view_free(&v);
    gn_dataset_free(d);
    return rc;
}

/* logits [n][k] of x [n][c][r][r], in batches. */
static int infer_all(gn_net *net, const float *x, int64_t n, int c, int r, int k, float *logits, gn_error *err)
{
    gn_backend *be = gn_net_backend(net);
    size_t img = (size_t)c * r * r;
    for (int64_t first = 0; first < n; first += BATCH) {
        int m = (int)(n - first < BATCH ? n - first : BATCH);
        gn_tensor t = {0};
        const gn_tensor *out;
        if (gn_tensor_alloc(&t, be, m, c, r, r, err) || gn_tensor_from_host(&t, x + (size_t)first * img, err) ||
            gn_net_infer(net, &t, &out, err)) {
            gn_tensor_free(&t);
            return -1;
        }
        gn_tensor_free(&t);
        if (out->n != m || (int)(gn_tensor_numel(out) / (size_t)m) != k)
            return gn_error_set(err, "inference returned logits [%d,%d,%d,%d], expected [%d,%d]", out->n, out->c,
                                out->h, out->w, m, k);
        if (gn_tensor_to_host(out, logits + (size_t)first * k, err))
            return -1;
    }
    return 0;
}

typedef struct {
    int k;
    double p;
} ranked;

static int cmp_ranked(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->p != y->p)
        return x->p > y->p ? -1 : 1;
    return x->k - y->k;
}

#define NEXT() (i + 1 < argc ? argv[++i] : NULL)

int cmd_predict(int argc, char **argv)
{
    const char *config = NULL, *weights = NULL, *input = NULL, *output = NULL, *labels = NULL, *dataset = NULL,
               *backend = "dnnl";
    int res = 0, classes = 0, in_ch = 0, threads = 0, nmean = 0, nstd = 0;
    float mean[3], std[3];
    bool same_pad = false;
    const char **images = calloc((size_t)argc + 1, sizeof *images);
    int nimages = 0;
    if (!images) {
        cli_error(CMD, "out of memory");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            free(images);
            return 0;
        } else if (!strcmp(a, "--weights")) {
            if (!(weights = NEXT()))
                goto missing;
        } else if (!strcmp(a, "--input")) {
            if (!(input = NEXT()))
                goto missing;
        } else if (!strcmp(a, "--output")) {
            if (!(output = NEXT()))
                goto missing;
        } else if (!strcmp(a, "--labels")) {
            if (!(labels = NEXT()))
                goto missing;
        } else if (!strcmp(a, "--dataset")) {
            if (!(dataset = NEXT()))
                goto missing;
            if (!find_known(dataset)) {
                cli_error(CMD, "option --dataset: '%s' is not one of fashion-mnist, mnist, cifar10 (for other data "
                               "give --mean and --std)", dataset);
                goto usage_err;
            }
        } else if (!strcmp(a, "--backend")) {
            if (!(backend = NEXT()))
                goto missing;
            if (strcmp(backend, "dnnl") && strcmp(backend, "ref")) {
                cli_error(CMD, "option --backend: '%s' is not one of dnnl, ref", backend);
                goto usage_err;
            }
        } else if (!strcmp(a, "--res")) {
            if (cli_parse_int(CMD, a, NEXT(), 1, 4096, &res))
                goto usage_err;
        } else if (!strcmp(a, "--classes")) {
            if (cli_parse_int(CMD, a, NEXT(), 1, 1 << 20, &classes))
                goto usage_err;
        } else if (!strcmp(a, "--in-ch")) {
            if (cli_parse_int(CMD, a, NEXT(), 1, GN_DATA_MAX_CHANNELS, &in_ch))
                goto usage_err;
        } else if (!strcmp(a, "--threads")) {
            if (cli_parse_int(CMD, a, NEXT(), 1, 4096, &threads))
                goto usage_err;
        } else if (!strcmp(a, "--mean")) {
            if (parse_floats(a, NEXT(), mean, &nmean, -10, 10))
                goto usage_err;
        } else if (!strcmp(a, "--std")) {
            if (parse_floats(a, NEXT(), std, &nstd, 1e-6, 100))
                goto usage_err;
        } else if (!strcmp(a, "--same-pad")) {
            same_pad = true;
        } else if (a[0] == '-' && a[1]) {
            cli_error(CMD, "unknown option '%s' (see gpunas predict --help)", a);
            goto usage_err;
        } else if (!config) {
            config = a;
        } else {
            images[nimages++] = a;
        }
        continue;
    missing:
        cli_error(CMD, "option %s: missing value", a);
        goto usage_err;
    }
    if (!config || !weights) {
        cli_error(CMD, "%s (see gpunas predict --help)", !config ? "missing CONFIG.json" : "missing --weights W");
        goto usage_err;
    }
    if ((input != NULL) != (output != NULL)) {
        cli_error(CMD, "--input and --output go together");
        goto usage_err;
    }
    if (input && nimages) {
        cli_error(CMD, "give images or --input X.npy, not both");
        goto usage_err;
    }
    if (!input && !nimages) {
        cli_error(CMD, "nothing to predict: give IMAGE files or --input X.npy --output Y.npy");
        goto usage_err;
    }
    if ((nmean != 0) != (nstd != 0)) {
        cli_error(CMD, "--mean and --std go together");
        goto usage_err;
    }

    int rc = 1;
    gn_error err = {{0}};
    gn_arch *arch = NULL;
    gn_backend *be = NULL;
    gn_net *net = NULL;
    gn_npy x = {0};
    float *xs = NULL, *logits = NULL;
    char **names = NULL;
    int64_t n = 0;
    if (gn_arch_load(config, &arch, &err))
        goto fail;
    arch->same_pad_fix = same_pad;
    int w_res = 0, w_ch = 0, w_cls = 0;
    int found = weights_shape(weights, &w_res, &w_ch, &w_cls, &err);
    if (found < 0)
        goto fail;
    int c_ch, c_cls;
    arch_io(arch, &c_ch, &c_cls);
    if (!res)
        res = found && w_res > 0 ? w_res : arch->resolution;
    if (!in_ch)
        in_ch = found ? w_ch : c_ch;
    if (!classes)
        classes = found ? w_cls : c_cls;
    if (in_ch != 1 && in_ch != 3) {
        gn_error_set(&err, "%s: %d input channels: predict handles 1 (grey) or 3 (RGB)", weights, in_ch);
        goto fail;
    }
    if (gn_arch_resolve(arch, &err) || gn_arch_set_in_channels(arch, in_ch, &err) ||
        gn_arch_set_classes(arch, classes, &err) || gn_arch_set_resolution(arch, res, &err) ||
        gn_backend_create(backend, &be, &err) || gn_backend_set_threads(be, threads, &err) ||
        gn_net_create(arch, be, &net, &err) || gn_net_load(net, weights, &err))
        goto fail;
    const int C = in_ch, R = res, K = classes;
    const size_t img = (size_t)C * R * R;

    if (input) {
        if (gn_npy_read(input, &x, &err))
            goto fail;
        if (x.ndim != 4 || x.shape[0] < 1 || x.shape[1] != C || x.shape[2] != R || x.shape[3] != R) {
            char got[96] = "[";
            for (int i = 0; i < x.ndim; i++)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? "," : "", (long long)x.shape[i]);
            strcat(got, "]");
            gn_error_set(&err, "%s: shape %s does not match the network input: expected float32 [N,%d,%d,%d] (N >= 1)",
                         input, got, C, R, R);
            goto fail;
        }
        n = x.shape[0];
        if (!(logits = malloc((size_t)n * K * sizeof *logits))) {
            gn_error_set(&err, "%s: out of memory for %lld x %d logits", input, (long long)n, K);
            goto fail;
        }
        if (infer_all(net, x.data, n, C, R, K, logits, &err))
            goto fail;
        int64_t shape[2] = {n, K};
        if (gn_npy_write(output, 2, shape, logits, &err))
            goto fail;
        printf("%s: %lld input%s [%d,%d,%d] -> wrote %s: float32 [%lld,%d] logits\n", input, (long long)n,
               n == 1 ? "" : "s", C, R, R, output, (long long)n, K);
        rc = 0;
        goto done;
    }

    /* images */
    const known_set *ks = dataset ? find_known(dataset) : find_known(C == 1 ? "fashion-mnist" : "cifar10");
    if (dataset && ks->c != C) {
        gn_error_set(&err, "--dataset %s has %d-channel images, the network takes %d", ks->kind, ks->c, C);
        goto fail;
    }
    float m[3], s[3];
    for (int ch = 0; ch < 3; ch++)
        m[ch] = nmean ? mean[ch] : ks->mean[ch], s[ch] = nstd ? std[ch] : ks->std[ch];
    if (labels) {
        if (!(names = read_labels(labels, K, &err)))
            goto fail;
    }
    const char *const *builtin = NULL;
    if (!labels && K == 10 && (dataset || C == 1))
        builtin = ks->names; /* Fashion-MNIST's names for a 10-class grey network by default */
    n = nimages;
    xs = malloc((size_t)n * img * sizeof *xs);
    logits = malloc((size_t)n * K * sizeof *logits);
    int *sizes = calloc((size_t)n * 3, sizeof *sizes);
    if (!xs || !logits || !sizes) {
        free(sizes);
        gn_error_set(&err, "out of memory for %lld images at %dx%d", (long long)n, R, R);
        goto fail;
    }
    for (int i = 0; i < nimages; i++)
        if (preprocess(images[i], C, R, m, s, xs + (size_t)i * img, &sizes[3 * i], &sizes[3 * i + 1],
                       &sizes[3 * i + 2], &err)) {
            free(sizes);
            goto fail;
        }
    if (infer_all(net, xs, n, C, R, K, logits, &err)) {
        free(sizes);
        goto fail;
    }
    if (nmean)
        printf("%s with %s: %d-channel %dx%d input, %d classes; normalisation mean %g,%g,%g std %g,%g,%g\n", config,
               weights, C, R, R, K, m[0], m[1], m[2], s[0], s[1], s[2]);
    else
        printf("%s with %s: %d-channel %dx%d input, %d classes; %s normalisation%s\n", config, weights, C, R, R, K,
               ks->title, dataset ? "" : " (--dataset / --mean --std for other training data)");
    ranked *rk = malloc((size_t)K * sizeof *rk);
    if (!rk) {
        free(sizes);
        gn_error_set(&err, "out of memory");
        goto fail;
    }
    int top = K < TOPK ? K : TOPK, namew = 0;
    for (int k = 0; k < K; k++) {
        const char *nm = names ? names[k] : builtin ? builtin[k] : NULL;
        int l = nm ? (int)strlen(nm) : 6 + (k >= 10) + (k >= 100) + (k >= 1000) + (k >= 10000);
        if (l > namew)
            namew = l;
    }
    if (namew > 32)
        namew = 32;
    for (int i = 0; i < nimages; i++) {
        const float *z = logits + (size_t)i * K;
        double zmax = z[0], sum = 0;
        for (int k = 1; k < K; k++)
            zmax = z[k] > zmax ? z[k] : zmax;
        for (int k = 0; k < K; k++)
            sum += exp((double)z[k] - zmax);
        for (int k = 0; k < K; k++)
            rk[k] = (ranked){k, exp((double)z[k] - zmax) / sum};
        qsort(rk, (size_t)K, sizeof *rk, cmp_ranked);
        printf("%s (%dx%d %s)\n", images[i], sizes[3 * i + 1], sizes[3 * i], sizes[3 * i + 2] == 1 ? "grey" : "RGB");
        for (int j = 0; j < top; j++) {
            int k = rk[j].k;
            char gen[32];
            const char *nm = names ? names[k] : builtin ? builtin[k] : NULL;
            if (!nm) {
                snprintf(gen, sizeof gen, "class %d", k);
                nm = gen;
            }
            printf("  %d. %-*s %6.2f%%  (class %d)\n", j + 1, namew, nm, 100 * rk[j].p, k);
        }
    }
    free(rk);
    free(sizes);
    rc = 0;
    goto done;
fail:
    cli_error(CMD, "%s", err.msg);
done:
    if (names)
        for (int k = 0; k < classes; k++)
            free(names[k]);
    free(names);
    free(xs);
    free(logits);
    gn_npy_free(&x);
    gn_net_free(net);
    gn_backend_destroy(be);
    gn_arch_free(arch);
    free(images);
    fflush(stdout);
    return rc;
usage_err:
    free(images);
    return 2;
}
