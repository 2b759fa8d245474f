/* test_data.c — data sets, views and the batch loader (gpunas/data.h).
 *
 * What is checked, and against what:
 *   - Fashion-MNIST as installed (/usr/share/datasets/fashion-mnist): counts, shape, class
 *     names, 6000 (train) / 1000 (test) images per class, the first image and label, the
 *     last label and the sum of all pixels, cross-checked with an independent Python
 *     reader (gzip + struct, /usr/bin/python3); an unpacked (non-.gz) copy loads the same.
 *   - IDX errors on files written here: missing, bad magic, truncated, trailing data,
 *     images/labels count mismatch, corrupt and cut-off gzip, label out of range — each
 *     one line naming the file.
 *   - CIFAR-10 binary batches written here (both folder layouts, names from
 *     batches.meta.txt) and their errors.
 *   - Folder reader on PNGs (grey, RGB, RGBA, palette, 16-bit) and JPEGs written here with
 *     libpng/libjpeg: exact pixels for PNG, close for JPEG, grey -> 1 channel only when
 *     all are grey, alpha dropped, resize on load (2x shrink = rounded 2x2 mean),
 *     train/test class mapping, and errors (undecodable image named, empty folders).
 *   - Views: split disjoint + complete + seed-stable, subset.
 *   - Loader: shapes and last-batch handling, normalisation, bilinear resize against
 *     torch.nn.functional.interpolate (max abs diff <= 1e-5), crop/flip outputs equal a
 *     naive shifted/flipped copy, random erasing changes exactly one rectangle of the
 *     right size with N(0,1) noise, bytes identical for prefetch 0 and 4 (two epochs),
 *     epoch e != e+1, restart and free mid-epoch (run under ASan).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jpeglib.h>
#include <math.h>
#include <png.h>
#include <zlib.h>

#include "gpunas/data.h"
#include "gpunas/rng.h"
#include "testutil.h"

#define PY "/usr/bin/python3"
#define FMNIST "/usr/share/datasets/fashion-mnist"

/* ------------------------------------------------------------------ helpers */

static void write_bytes(const char *path, const void *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n)
        assert_int_equal(fwrite(buf, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void write_gz(const char *path, const void *buf, size_t n)
{
    gzFile g = gzopen(path, "wb");
    assert_non_null(g);
    assert_int_equal(gzwrite(g, buf, (unsigned)n), (int)n);
    assert_int_equal(gzclose(g), Z_OK);
}

static char *pjoin(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

static char *fresh_dir(const char *name)
{
    char *p = tu_tmp_path(name);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(mkdir(p, 0777), 0);
    return p;
}

static void rm_rf(char *p)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
    assert_int_equal(system(cmd), 0);
    free(p);
}

static void assert_msg(const gn_error *e, const char *a, const char *b)
{
    if ((a && !strstr(e->msg, a)) || (b && !strstr(e->msg, b)) || strchr(e->msg, '\n') || !e->msg[0]) {
        fprintf(stderr, "error text: '%s'\nexpected to contain: '%s' and '%s'\n", e->msg, a ? a : "", b ? b : "");
        fail();
    }
}

/* Runs a Python script (text) with args; returns malloc'd stdout, NULL on failure. */
static char *run_py(const char *script, const char *args)
{
    char *sp = tu_tmp_path("script.py");
    assert_int_equal(tu_write_file(sp, script), 0);
    char *op = tu_tmp_path("script.out");
    size_t n = strlen(sp) + strlen(op) + strlen(args) + 64;
    char *cmd = malloc(n);
    snprintf(cmd, n, PY " %s %s > %s", sp, args, op);
    int st = system(cmd);
    char *out = st == 0 ? tu_read_file(op, NULL) : NULL;
    unlink(sp);
    unlink(op);
    free(sp);
    free(op);
    free(cmd);
    return out;
}

static int have_torch(void) { return system(PY " -c 'import torch' >/dev/null 2>&1") == 0; }

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* IDX images file contents: n x r x c, pixel (i, k) = (i*31 + k*7) & 255 */
static uint8_t *idx_images(uint32_t magic, int n, int r, int c, size_t *len)
{
    *len = 16 + (size_t)n * r * c;
    uint8_t *b = malloc(*len);
    be32(b, magic), be32(b + 4, (uint32_t)n), be32(b + 8, (uint32_t)r), be32(b + 12, (uint32_t)c);
    for (size_t k = 0; k < (size_t)n * r * c; k++)
        b[16 + k] = (uint8_t)((k / ((size_t)r * c)) * 31 + (k % ((size_t)r * c)) * 7);
    return b;
}

static uint8_t *idx_labels(int n, int classes, size_t *len)
{
    *len = 8 + (size_t)n;
    uint8_t *b = malloc(*len);
    be32(b, 0x801), be32(b + 4, (uint32_t)n);
    for (int i = 0; i < n; i++)
        b[8 + i] = (uint8_t)(i % classes);
    return b;
}

/* A dataset of random pixels (seeded). */
static gn_dataset *random_dataset(int n, int c, int h, int w, int classes, uint64_t seed)
{
    gn_rng r;
    gn_rng_seed(&r, seed);
    size_t np = (size_t)n * c * h * w;
    uint8_t *px = malloc(np);
    int32_t *lab = malloc((size_t)n * sizeof *lab);
    for (size_t k = 0; k < np; k++)
        px[k] = (uint8_t)gn_rng_below(&r, 256);
    for (int i = 0; i < n; i++)
        lab[i] = (int32_t)(i % classes);
    gn_dataset *d = NULL;
    gn_error e = {{0}};
    assert_int_equal(gn_dataset_from_memory(n, c, h, w, classes, px, lab, &d, &e), 0);
    return d;
}

static gn_augment plain_aug(int res, int c, const float *mean, const float *std)
{
    gn_augment a;
    memset(&a, 0, sizeof a);
    a.resolution = res;
    a.augment = false;
    for (int ch = 0; ch < 3; ch++) {
        a.mean[ch] = mean ? mean[ch < c ? ch : 0] : 0.0f;
        a.std[ch] = std ? std[ch < c ? ch : 0] : 1.0f;
    }
    return a;
}

/* Independent bilinear (half-pixel centres), double: one plane h x w -> R x R. */
static void naive_resize(const uint8_t *src, int h, int w, int R, double *dst)
{
    for (int y = 0; y < R; y++) {
        double sy = (y + 0.5) * h / R - 0.5;
        if (sy < 0)
            sy = 0;
        int y0 = (int)floor(sy), y1 = y0 + 1 < h ? y0 + 1 : h - 1;
        double fy = sy - y0;
        for (int x = 0; x < R; x++) {
            double sx = (x + 0.5) * w / R - 0.5;
            if (sx < 0)
                sx = 0;
            int x0 = (int)floor(sx), x1 = x0 + 1 < w ? x0 + 1 : w - 1;
            double fx = sx - x0;
            dst[y * R + x] = (1 - fy) * ((1 - fx) * src[y0 * w + x0] + fx * src[y0 * w + x1]) +
                             fy * ((1 - fx) * src[y1 * w + x0] + fx * src[y1 * w + x1]);
        }
    }
}

/* All batches of one epoch concatenated (x and labels); returns the image count. */
static int run_epoch(gn_loader *l, int epoch, float **xs, int32_t **ls, size_t img_floats)
{
    gn_error e = {{0}};
    assert_int_equal(gn_loader_start_epoch(l, epoch, &e), 0);
    size_t cap = 0, n = 0;
    *xs = NULL, *ls = NULL;
    gn_batch b;
    int rc;
    while ((rc = gn_loader_next(l, &b, &e)) == 1) {
        if (n + (size_t)b.n > cap) {
            cap = (n + (size_t)b.n) * 2;
            *xs = realloc(*xs, cap * img_floats * sizeof(float));
            *ls = realloc(*ls, cap * sizeof(int32_t));
        }
        assert_int_equal(b.first, (int64_t)n);
        memcpy(*xs + n * img_floats, b.x, (size_t)b.n * img_floats * sizeof(float));
        memcpy(*ls + n, b.labels, (size_t)b.n * sizeof(int32_t));
        n += (size_t)b.n;
    }
    assert_int_equal(rc, 0);
    return (int)n;
}

/* ------------------------------------------------------------------ Fashion-MNIST */

static const char *PY_FMNIST =
    "import gzip, struct, sys\n"
    "d = sys.argv[1]\n"
    "with gzip.open(d + '/train-images-idx3-ubyte.gz') as f: b = f.read()\n"
    "with gzip.open(d + '/train-labels-idx1-ubyte.gz') as f: l = f.read()\n"
    "m, n, r, c = struct.unpack('>IIII', b[:16])\n"
    "ml, nl = struct.unpack('>II', l[:8])\n"
    "assert m == 0x803 and ml == 0x801 and n == nl\n"
    "print(n, r, c, l[8], l[8 + n - 1], sum(b[16:]))\n"
    "print(' '.join(str(v) for v in b[16:16 + r * c]))\n";

static void test_fashion_mnist(void **state)
{
    (void)state;
    gn_dataset *tr = NULL, *te = NULL;
    gn_error e = {{0}};
    if (gn_dataset_load("fashion-mnist", NULL, "train", 0, &tr, &e) != 0) {
        fprintf(stderr, "fashion-mnist: %s\n", e.msg);
        fail();
    }
    assert_int_equal(tr->n, 60000);
    assert_int_equal(tr->c, 1);
    assert_int_equal(tr->h, 28);
    assert_int_equal(tr->w, 28);
    assert_int_equal(tr->classes, 10);
    const char *names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                             "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
    assert_non_null(tr->class_names);
    for (int k = 0; k < 10; k++)
        assert_string_equal(tr->class_names[k], names[k]);
    assert_float_equal(tr->mean[0], 0.2860f, 1e-6);
    assert_float_equal(tr->std[0], 0.3530f, 1e-6);
    int cnt[10] = {0};
    for (int i = 0; i < tr->n; i++) {
        assert_in_range(tr->labels[i], 0, 9);
        cnt[tr->labels[i]]++;
    }
    for (int k = 0; k < 10; k++)
        assert_int_equal(cnt[k], 6000);

    /* independent reader */
    char *out = run_py(PY_FMNIST, FMNIST);
    assert_non_null(out);
    long n, r, c, l0, llast;
    unsigned long long sum;
    int used = 0;
    assert_int_equal(sscanf(out, "%ld %ld %ld %ld %ld %llu%n", &n, &r, &c, &l0, &llast, &sum, &used), 6);
    assert_int_equal(n, 60000);
    assert_int_equal(r, 28);
    assert_int_equal(c, 28);
    assert_int_equal(tr->labels[0], l0);
    assert_int_equal(tr->labels[59999], llast);
    unsigned long long mysum = 0;
    for (size_t k = 0; k < (size_t)60000 * 784; k++)
        mysum += tr->pixels[k];
    assert_true(mysum == sum);
    const char *p = out + used;
    for (int k = 0; k < 784; k++) {
        char *end;
        long v = strtol(p, &end, 10);
        assert_true(end != p);
        assert_int_equal(tr->pixels[k], v);
        p = end;
    }
    free(out);
    /* the data's own statistics agree with the published defaults */
    double s = 0, s2 = 0;
    for (size_t k = 0; k < (size_t)60000 * 784; k++) {
        double v = tr->pixels[k] / 255.0;
        s += v, s2 += v * v;
    }
    double mean = s / (60000.0 * 784), sd = sqrt(s2 / (60000.0 * 784) - mean * mean);
    assert_float_equal(mean, 0.2860, 5e-4);
    assert_float_equal(sd, 0.3530, 5e-4);

    assert_int_equal(gn_dataset_load("fmnist", NULL, "test", 0, &te, &e), 0);
    assert_int_equal(te->n, 10000);
    assert_int_equal(te->classes, 10);
    int tc[10] = {0};
    for (int i = 0; i < te->n; i++)
        tc[te->labels[i]]++;
    for (int k = 0; k < 10; k++)
        assert_int_equal(tc[k], 1000);

    /* an unpacked copy (no .gz) in another folder loads the same */
    char *dir = fresh_dir("fmnist-raw");
    const char *files[2] = {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    for (int f = 0; f < 2; f++) {
        char src[512];
        snprintf(src, sizeof src, FMNIST "/%s.gz", files[f]);
        gzFile g = gzopen(src, "rb");
        assert_non_null(g);
        size_t cap = 1 << 20, len = 0;
        uint8_t *buf = malloc(cap);
        int rr;
        while ((rr = gzread(g, buf + len, (unsigned)(cap - len))) > 0) {
            len += (size_t)rr;
            if (len == cap)
                buf = realloc(buf, cap *= 2);
        }
        gzclose(g);
        char *dst = pjoin(dir, files[f]);
        write_bytes(dst, buf, len);
        free(dst);
        free(buf);
    }
    gn_dataset *raw = NULL;
    assert_int_equal(gn_dataset_load("fashion-mnist", dir, "test", 0, &raw, &e), 0);
    assert_int_equal(raw->n, te->n);
    assert_memory_equal(raw->pixels, te->pixels, (size_t)te->n * 784);
    assert_memory_equal(raw->labels, te->labels, (size_t)te->n * sizeof(int32_t));
    gn_dataset_free(raw);
    /* and the train part is missing there: one line naming the folder */
    raw = (gn_dataset *)0x1;
    assert_int_not_equal(gn_dataset_load("fashion-mnist", dir, "train", 0, &raw, &e), 0);
    assert_null(raw);
    assert_msg(&e, dir, "train-images-idx3-ubyte");
    rm_rf(dir);

    /* a whole test epoch through the loader with default augmentation at 32 */
    gn_dataset_view v;
    assert_int_equal(gn_view_all(te, &v, &e), 0);
    gn_augment a;
    gn_augment_defaults(te, &a);
    assert_int_equal(a.resolution, 28);
    assert_int_equal(a.crop_pad, 3);
    a.resolution = 32;
    gn_loader *l = NULL;
    assert_int_equal(gn_loader_create(&v, 256, &a, true, false, 1, 2, &l, &e), 0);
    assert_int_equal(gn_loader_batches_per_epoch(l), 40);
    assert_int_equal(gn_loader_start_epoch(l, 0, &e), 0);
    gn_batch b;
    int total = 0, nb = 0;
    while (gn_loader_next(l, &b, &e) == 1) {
        assert_int_equal(b.c, 1);
        assert_int_equal(b.h, 32);
        total += b.n, nb++;
    }
    assert_int_equal(total, 10000);
    assert_int_equal(nb, 40);
    gn_loader_free(l);
    gn_view_free(&v);

    gn_dataset_free(tr);
    gn_dataset_free(te);
}

/* ------------------------------------------------------------------ IDX errors */

static void expect_idx_error(const char *img, const char *lbl, const char *want_path, const char *want)
{
    gn_dataset *d = (gn_dataset *)0x1;
    gn_error e = {{0}};
    assert_int_not_equal(gn_dataset_load_idx(img, lbl, &d, &e), 0);
    assert_null(d);
    assert_msg(&e, want_path, want);
}

static void test_idx_errors(void **state)
{
    (void)state;
    char *dir = fresh_dir("idx");
    char *img = pjoin(dir, "img"), *lbl = pjoin(dir, "lbl"), *imgz = pjoin(dir, "img.gz");
    size_t il, ll;
    uint8_t *ib = idx_images(0x803, 5, 4, 3, &il), *lb = idx_labels(5, 3, &ll);
    write_bytes(img, ib, il);
    write_bytes(lbl, lb, ll);
    write_gz(imgz, ib, il);

    /* good raw and gz files */
    gn_dataset *d = NULL;
    gn_error e = {{0}};
    assert_int_equal(gn_dataset_load_idx(img, lbl, &d, &e), 0);
    assert_int_equal(d->n, 5);
    assert_int_equal(d->h, 4);
    assert_int_equal(d->w, 3);
    assert_int_equal(d->classes, 3);
    assert_memory_equal(d->pixels, ib + 16, 60);
    for (int i = 0; i < 5; i++)
        assert_int_equal(d->labels[i], i % 3);
    gn_dataset_free(d);
    assert_int_equal(gn_dataset_load_idx(imgz, lbl, &d, &e), 0);
    assert_memory_equal(d->pixels, ib + 16, 60);
    gn_dataset_free(d);

    char *missing = pjoin(dir, "nope");
    expect_idx_error(missing, lbl, missing, "cannot open");

    char *bad = pjoin(dir, "bad");
    size_t bl;
    uint8_t *bb = idx_images(0x801, 5, 4, 3, &bl); /* labels magic on an images file */
    write_bytes(bad, bb, bl);
    expect_idx_error(bad, lbl, bad, "bad magic 0x00000801");
    free(bb);
    bb = idx_images(0x0d03, 5, 4, 3, &bl); /* float IDX */
    write_bytes(bad, bb, bl);
    expect_idx_error(bad, lbl, bad, "data type 0x0d");
    free(bb);
    expect_idx_error(img, img, img, "bad magic"); /* images file given as labels */

    write_bytes(bad, ib, 40); /* truncated */
    expect_idx_error(bad, lbl, bad, "truncated: expected 76 bytes, got 40");
    write_gz(bad, ib, 40);
    expect_idx_error(bad, lbl, bad, "truncated: expected 76 bytes, got 40 (uncompressed)");
    write_bytes(bad, ib, 10);
    expect_idx_error(bad, lbl, bad, "truncated: expected at least 16 bytes, got 10");

    uint8_t *longer = calloc(1, il + 3); /* trailing data */
    memcpy(longer, ib, il);
    write_bytes(bad, longer, il + 3);
    expect_idx_error(bad, lbl, bad, "expected 76 bytes for the header's dimensions, got 79");
    free(longer);

    size_t l4;
    uint8_t *lb4 = idx_labels(4, 3, &l4); /* count mismatch */
    char *lbl4 = pjoin(dir, "lbl4");
    write_bytes(lbl4, lb4, l4);
    gn_error e2 = {{0}};
    assert_int_not_equal(gn_dataset_load_idx(img, lbl4, &d, &e2), 0);
    assert_msg(&e2, img, "dimension mismatch: 5 images but");
    assert_msg(&e2, lbl4, "has 4 labels");
    free(lb4);

    /* gzip: corrupt body, cut-off stream, bad CRC */
    size_t cap = il * 2 + 64;
    uint8_t *big = idx_images(0x803, 50, 20, 20, &il);
    write_gz(bad, big, il);
    size_t gl;
    uint8_t *gz = (uint8_t *)tu_read_file(bad, &gl);
    (void)cap;
    uint8_t *cor = malloc(gl);
    memcpy(cor, gz, gl);
    for (size_t k = 12; k < gl - 12; k += 7)
        cor[k] ^= 0x5a;
    write_bytes(bad, cor, gl);
    expect_idx_error(bad, lbl, bad, "gzip data corrupt");
    write_bytes(bad, gz, gl / 2);
    expect_idx_error(bad, lbl, bad, "gzip data corrupt");
    memcpy(cor, gz, gl);
    cor[gl - 6] ^= 0xff; /* CRC32 trailer */
    write_bytes(bad, cor, gl);
    expect_idx_error(bad, lbl, bad, "gzip data corrupt");
    free(cor);
    free(gz);
    free(big);

    /* label out of range for a 10-class kind */
    char *mdir = pjoin(dir, "mnist");
    assert_int_equal(mkdir(mdir, 0777), 0);
    uint8_t *mi = idx_images(0x803, 5, 28, 28, &il), *ml = idx_labels(5, 3, &ll);
    ml[8 + 3] = 10;
    char *p1 = pjoin(mdir, "train-images-idx3-ubyte"), *p2 = pjoin(mdir, "train-labels-idx1-ubyte.gz");
    write_bytes(p1, mi, il);
    write_gz(p2, ml, ll);
    gn_error e3 = {{0}};
    assert_int_not_equal(gn_dataset_load("mnist", mdir, "train", 0, &d, &e3), 0);
    assert_msg(&e3, p2, "record 3: label 10 out of range [0, 10)");
    ml[8 + 3] = 9;
    write_gz(p2, ml, ll);
    assert_int_equal(gn_dataset_load("mnist", mdir, "train", 0, &d, &e3), 0);
    assert_int_equal(d->classes, 10);
    assert_string_equal(d->class_names[9], "9");
    assert_float_equal(d->mean[0], 0.1307f, 1e-6);
    assert_float_equal(d->std[0], 0.3081f, 1e-6);
    gn_dataset_free(d);
    free(mi);
    free(ml);
    free(p1);
    free(p2);
    free(mdir);

    /* unknown kind / split */
    assert_int_not_equal(gn_dataset_load("imagenet", dir, "train", 0, &d, &e3), 0);
    assert_msg(&e3, "unknown kind 'imagenet'", NULL);
    assert_int_not_equal(gn_dataset_load("mnist", dir, "val", 0, &d, &e3), 0);
    assert_msg(&e3, "unknown split 'val'", NULL);

    free(lbl4);
    free(bad);
    free(missing);
    free(ib);
    free(lb);
    free(img);
    free(lbl);
    free(imgz);
    rm_rf(dir);
}

/* ------------------------------------------------------------------ CIFAR-10 */

static void cifar_file(const char *path, int nrec, int first, int bad_label_at)
{
    uint8_t *b = malloc((size_t)nrec * 3073);
    for (int r = 0; r < nrec; r++) {
        uint8_t *rec = b + (size_t)r * 3073;
        rec[0] = (uint8_t)((first + r) % 10);
        if (r == bad_label_at)
            rec[0] = 10;
        for (int k = 0; k < 3072; k++)
            rec[1 + k] = (uint8_t)((first + r) * 13 + k * 5);
    }
    write_bytes(path, b, (size_t)nrec * 3073);
    free(b);
}

static void test_cifar(void **state)
{
    (void)state;
    char *dir = fresh_dir("cifar");
    char *base = pjoin(dir, "cifar-10-batches-bin");
    assert_int_equal(mkdir(base, 0777), 0);
    int counts[5] = {3, 2, 1, 1, 2}, first = 0;
    char path[1024];
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s/data_batch_%d.bin", base, i + 1);
        cifar_file(path, counts[i], first, -1);
        first += counts[i];
    }
    snprintf(path, sizeof path, "%s/test_batch.bin", base);
    cifar_file(path, 4, 100, -1);
    snprintf(path, sizeof path, "%s/batches.meta.txt", base);
    assert_int_equal(tu_write_file(path, "plane\ncar\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n"), 0);

    gn_dataset *d = NULL;
    gn_error e = {{0}};
    for (int layout = 0; layout < 2; layout++) {
        assert_int_equal(gn_dataset_load("cifar10", layout ? base : dir, "train", 0, &d, &e), 0);
        assert_int_equal(d->n, 9);
        assert_int_equal(d->c, 3);
        assert_int_equal(d->h, 32);
        assert_int_equal(d->w, 32);
        assert_int_equal(d->classes, 10);
        assert_string_equal(d->class_names[0], "plane");
        assert_string_equal(d->class_names[9], "truck");
        assert_float_equal(d->mean[1], 0.4822f, 1e-6);
        assert_float_equal(d->std[2], 0.2616f, 1e-6);
        for (int i = 0; i < 9; i++) {
            assert_int_equal(d->labels[i], i % 10);
            for (int k = 0; k < 3072; k += 97)
                assert_int_equal(d->pixels[(size_t)i * 3072 + k], (uint8_t)(i * 13 + k * 5));
        }
        gn_dataset_free(d);
    }
    assert_int_equal(gn_dataset_load("cifar-10", dir, "test", 0, &d, &e), 0);
    assert_int_equal(d->n, 4);
    assert_int_equal(d->labels[0], 0);
    assert_int_equal(d->pixels[5], (uint8_t)(100 * 13 + 5 * 5));
    gn_dataset_free(d);

    /* without batches.meta.txt: the official names */
    unlink(path);
    assert_int_equal(gn_dataset_load("cifar10", dir, "test", 0, &d, &e), 0);
    assert_string_equal(d->class_names[1], "automobile");
    gn_dataset_free(d);
    assert_int_equal(tu_write_file(path, "a\nb\nc\n"), 0);
    d = (gn_dataset *)0x1;
    assert_int_not_equal(gn_dataset_load("cifar10", dir, "test", 0, &d, &e), 0);
    assert_null(d);
    assert_msg(&e, path, "expected 10 class names, found 3");
    unlink(path);

    /* errors: truncated, bad label, missing, empty */
    char bad[1024];
    snprintf(bad, sizeof bad, "%s/data_batch_3.bin", base);
    uint8_t *buf = calloc(1, 3073 * 2 + 5);
    write_bytes(bad, buf, 3073 * 2 + 5);
    assert_int_not_equal(gn_dataset_load("cifar10", dir, "train", 0, &d, &e), 0);
    assert_msg(&e, bad, "truncated: expected 9219 bytes (3 records of 3073), got 6151");
    cifar_file(bad, 2, 0, 1);
    assert_int_not_equal(gn_dataset_load("cifar10", dir, "train", 0, &d, &e), 0);
    assert_msg(&e, bad, "record 1: label 10 out of range [0, 10)");
    write_bytes(bad, buf, 0);
    assert_int_not_equal(gn_dataset_load("cifar10", dir, "train", 0, &d, &e), 0);
    assert_msg(&e, bad, "empty file");
    unlink(bad);
    assert_int_not_equal(gn_dataset_load("cifar10", dir, "train", 0, &d, &e), 0);
    assert_msg(&e, bad, "cannot open");
    free(buf);

    free(base);
    rm_rf(dir);
}

/* ------------------------------------------------------------------ image writers */

/* PNG from interleaved 8-bit (or 16-bit big-endian) rows. */
static void write_png_trns(const char *path, int w, int h, int color_type, int depth, const uint8_t *data,
                           const png_color *palette, int npal, const png_byte *trans, int ntrans)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_non_null(info);
    if (setjmp(png_jmpbuf(png)))
        fail_msg("libpng write failed");
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color_type, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (palette)
        png_set_PLTE(png, info, palette, npal);
    if (trans)
        png_set_tRNS(png, info, trans, ntrans, NULL);
    png_write_info(png, info);
    int ch = color_type == PNG_COLOR_TYPE_GRAY ? 1 : color_type == PNG_COLOR_TYPE_RGB ? 3
             : color_type == PNG_COLOR_TYPE_RGB_ALPHA ? 4 : color_type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2 : 1;
    size_t rb = (size_t)w * ch * (depth / 8);
    for (int y = 0; y < h; y++)
        png_write_row(png, (png_const_bytep)(data + y * rb));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    assert_int_equal(fclose(f), 0);
}

static void write_png(const char *path, int w, int h, int color_type, int depth, const uint8_t *data,
                      const png_color *palette, int npal)
{
    write_png_trns(path, w, h, color_type, depth, data, palette, npal, NULL, 0);
}

static void write_jpeg(const char *path, int w, int h, int comps, const uint8_t *data)
{
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr je;
    ci.err = jpeg_std_error(&je);
    jpeg_create_compress(&ci);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = comps;
    ci.in_color_space = comps == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, 100, TRUE);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)(data + (size_t)ci.next_scanline * w * comps);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    assert_int_equal(fclose(f), 0);
}

/* smooth test pattern value for (x, y, channel, seed) */
static uint8_t pat(int x, int y, int ch, int s) { return (uint8_t)(40 + 10 * x + 7 * y + 30 * ch + s); }

/* ------------------------------------------------------------------ folder reader */

static void test_folder(void **state)
{
    (void)state;
    gn_error e = {{0}};
    gn_dataset *d = NULL;
    char *root = fresh_dir("folder");
    char *p;

    /* 1: all grey (PNG grey, JPEG grey, 16-bit grey PNG) -> 1 channel */
    char *g = pjoin(root, "grey");
    mkdir(g, 0777);
    char *ga = pjoin(g, "b_class"), *gb = pjoin(g, "a_class");
    mkdir(ga, 0777);
    mkdir(gb, 0777);
    uint8_t img[16 * 16 * 4], img16[8 * 8 * 2];
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++) {
            img[y * 8 + x] = pat(x, y, 0, 0);
            img16[2 * (y * 8 + x)] = pat(x, y, 0, 3); /* high byte */
            img16[2 * (y * 8 + x) + 1] = pat(x, y, 0, 3); /* v = hi * 257: scales to hi exactly */
        }
    p = pjoin(gb, "x1.png");
    write_png(p, 8, 8, PNG_COLOR_TYPE_GRAY, 8, img, NULL, 0);
    free(p);
    p = pjoin(gb, "x2.JPG");
    write_jpeg(p, 8, 8, 1, img);
    free(p);
    p = pjoin(ga, "y1.png");
    write_png(p, 8, 8, PNG_COLOR_TYPE_GRAY, 16, img16, NULL, 0);
    free(p);
    p = pjoin(ga, "notes.txt"); /* ignored */
    tu_write_file(p, "not an image");
    free(p);
    assert_int_equal(gn_dataset_load_folder(g, 0, &d, &e), 0);
    assert_int_equal(d->n, 3);
    assert_int_equal(d->c, 1);
    assert_int_equal(d->h, 8);
    assert_int_equal(d->classes, 2);
    assert_string_equal(d->class_names[0], "a_class");
    assert_string_equal(d->class_names[1], "b_class");
    assert_int_equal(d->labels[0], 0);
    assert_int_equal(d->labels[1], 0);
    assert_int_equal(d->labels[2], 1);
    assert_memory_equal(d->pixels, img, 64); /* PNG exact */
    for (int k = 0; k < 64; k++) {
        assert_true(abs((int)d->pixels[64 + k] - img[k]) <= 3); /* JPEG q100 close */
        assert_int_equal(d->pixels[128 + k], pat(k % 8, k / 8, 0, 3)); /* 16-bit scaled */
    }
    /* statistics from the data */
    double s = 0, s2 = 0;
    for (int k = 0; k < 192; k++)
        s += d->pixels[k] / 255.0, s2 += (d->pixels[k] / 255.0) * (d->pixels[k] / 255.0);
    assert_float_equal(d->mean[0], s / 192, 1e-5);
    assert_float_equal(d->std[0], sqrt(s2 / 192 - (s / 192) * (s / 192)), 1e-5);
    gn_dataset_free(d);

    /* 2: mixed -> 3 channels: RGB, RGBA (alpha dropped), grey (expanded), palette with
     * transparency (dropped), JPEG RGB;
     * plus a 16x16 image shrunk to 8x8 on load */
    char *m = pjoin(root, "mixed"), *mc = pjoin(m, "c0");
    mkdir(m, 0777);
    mkdir(mc, 0777);
    uint8_t rgb[8 * 8 * 3], rgba[8 * 8 * 4], grey[64], pal[64], big[16 * 16 * 3];
    png_color palette[4] = {{10, 20, 30}, {200, 100, 50}, {0, 255, 0}, {7, 8, 9}};
    for (int y = 0; y < 8; y++)
        for (int x = 0; x < 8; x++) {
            for (int ch = 0; ch < 3; ch++) {
                rgb[(y * 8 + x) * 3 + ch] = pat(x, y, ch, 1);
                rgba[(y * 8 + x) * 4 + ch] = pat(x, y, ch, 2);
            }
            rgba[(y * 8 + x) * 4 + 3] = (uint8_t)(x * 30); /* alpha, some 0 */
            grey[y * 8 + x] = pat(x, y, 0, 5);
            pal[y * 8 + x] = (uint8_t)((x + y) % 4);
        }
    for (int k = 0; k < 16 * 16 * 3; k++)
        big[k] = (uint8_t)((k * 37) % 251);
    p = pjoin(mc, "1.png");
    write_png(p, 8, 8, PNG_COLOR_TYPE_RGB, 8, rgb, NULL, 0);
    free(p);
    p = pjoin(mc, "2.png");
    write_png(p, 8, 8, PNG_COLOR_TYPE_RGB_ALPHA, 8, rgba, NULL, 0);
    free(p);
    p = pjoin(mc, "3.png");
    write_png(p, 8, 8, PNG_COLOR_TYPE_GRAY, 8, grey, NULL, 0);
    free(p);
    p = pjoin(mc, "4.png");
    /* with tRNS transparency, which palette expansion turns into an alpha channel
     * (refused as "4 channels" before; found by the fuzz seeds) */
    png_byte trans[4] = {255, 0, 128, 255};
    write_png_trns(p, 8, 8, PNG_COLOR_TYPE_PALETTE, 8, pal, palette, 4, trans, 4);
    free(p);
    p = pjoin(mc, "5.jpeg");
    write_jpeg(p, 8, 8, 3, rgb);
    free(p);
    p = pjoin(mc, "6.png");
    write_png(p, 16, 16, PNG_COLOR_TYPE_RGB, 8, big, NULL, 0);
    free(p);
    assert_int_equal(gn_dataset_load_folder(m, 0, &d, &e), 0);
    assert_int_equal(d->n, 6);
    assert_int_equal(d->c, 3);
    assert_int_equal(d->classes, 1);
    const uint8_t *px = d->pixels;
    for (int ch = 0; ch < 3; ch++)
        for (int k = 0; k < 64; k++) {
            int x = k % 8, y = k / 8;
            assert_int_equal(px[0 * 192 + ch * 64 + k], pat(x, y, ch, 1));
            assert_int_equal(px[1 * 192 + ch * 64 + k], pat(x, y, ch, 2));
            assert_int_equal(px[2 * 192 + ch * 64 + k], pat(x, y, 0, 5));
            const png_color *pc = &palette[(x + y) % 4];
            assert_int_equal(px[3 * 192 + ch * 64 + k], ch == 0 ? pc->red : ch == 1 ? pc->green : pc->blue);
            assert_true(abs((int)px[4 * 192 + ch * 64 + k] - pat(x, y, ch, 1)) <= 8);
            /* 16 -> 8 bilinear with half-pixel centres is the 2x2 mean, rounded half up */
            int sum = 0;
            for (int dy = 0; dy < 2; dy++)
                for (int dx = 0; dx < 2; dx++)
                    sum += big[((2 * y + dy) * 16 + 2 * x + dx) * 3 + ch];
            assert_int_equal(px[5 * 192 + ch * 64 + k], (sum * 2 + 4) / 8);
        }
    gn_dataset_free(d);
    /* an explicit size: everything resized to 4x4 */
    assert_int_equal(gn_dataset_load_folder(m, 4, &d, &e), 0);
    assert_int_equal(d->h, 4);
    assert_int_equal(d->w, 4);
    gn_dataset_free(d);

    /* 3: train/test folders: test classes map to the training list */
    char *tt = pjoin(root, "tt");
    mkdir(tt, 0777);
    const char *dirs[] = {"train", "train/cat", "train/dog", "test", "test/dog"};
    for (int i = 0; i < 5; i++) {
        p = pjoin(tt, dirs[i]);
        mkdir(p, 0777);
        free(p);
    }
    const char *imgs[] = {"train/cat/a.png", "train/dog/b.png", "train/dog/c.png", "test/dog/d.png"};
    for (int i = 0; i < 4; i++) {
        p = pjoin(tt, imgs[i]);
        write_png(p, 8, 8, PNG_COLOR_TYPE_GRAY, 8, img, NULL, 0);
        free(p);
    }
    assert_int_equal(gn_dataset_load("folder", tt, "train", 0, &d, &e), 0);
    assert_int_equal(d->n, 3);
    assert_int_equal(d->classes, 2);
    gn_dataset_free(d);
    assert_int_equal(gn_dataset_load("folder", tt, "test", 0, &d, &e), 0);
    assert_int_equal(d->n, 1);
    assert_int_equal(d->classes, 2);
    assert_int_equal(d->labels[0], 1);
    assert_string_equal(d->class_names[1], "dog");
    gn_dataset_free(d);
    p = pjoin(tt, "test/bird");
    mkdir(p, 0777);
    assert_int_not_equal(gn_dataset_load("folder", tt, "test", 0, &d, &e), 0);
    assert_msg(&e, "sub-folder 'bird' is not one of the 2 training classes", NULL);
    free(p);
    /* a folder without train/test is its own training split and has no test split */
    assert_int_not_equal(gn_dataset_load("folder", m, "test", 0, &d, &e), 0);
    assert_msg(&e, m, "no test split");

    /* 4: errors */
    p = pjoin(mc, "7.png"); /* garbage named .png */
    tu_write_file(p, "this is not a png file at all");
    assert_int_not_equal(gn_dataset_load_folder(m, 0, &d, &e), 0);
    assert_msg(&e, p, "not a PNG or JPEG");
    uint8_t sig[40] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 'I', 'H', 'D', 'R'};
    write_bytes(p, sig, sizeof sig); /* PNG signature, broken IHDR */
    assert_int_not_equal(gn_dataset_load_folder(m, 0, &d, &e), 0);
    assert_msg(&e, p, "undecodable PNG");
    unlink(p);
    free(p);
    p = pjoin(mc, "5.jpeg"); /* truncated JPEG */
    size_t jl;
    char *jb = tu_read_file(p, &jl);
    write_bytes(p, jb, jl / 2);
    free(jb);
    assert_int_not_equal(gn_dataset_load_folder(m, 0, &d, &e), 0);
    assert_msg(&e, p, "undecodable JPEG");
    free(p);
    /* non-square first image without a size */
    char *ns = pjoin(root, "nonsq"), *nsc = pjoin(ns, "k");
    mkdir(ns, 0777);
    mkdir(nsc, 0777);
    p = pjoin(nsc, "a.png");
    write_png(p, 8, 4, PNG_COLOR_TYPE_GRAY, 8, img, NULL, 0);
    assert_int_not_equal(gn_dataset_load_folder(ns, 0, &d, &e), 0);
    assert_msg(&e, p, "not square");
    assert_int_equal(gn_dataset_load_folder(ns, 6, &d, &e), 0); /* squashed to 6x6 */
    assert_int_equal(d->h, 6);
    gn_dataset_free(d);
    free(p);
    /* empty folders */
    char *em = pjoin(root, "empty"), *emc = pjoin(em, "cls");
    mkdir(em, 0777);
    assert_int_not_equal(gn_dataset_load_folder(em, 0, &d, &e), 0);
    assert_msg(&e, em, "empty folder: no class sub-folders");
    mkdir(emc, 0777);
    assert_int_not_equal(gn_dataset_load_folder(em, 0, &d, &e), 0);
    assert_msg(&e, emc, "no PNG or JPEG images");
    char *missing = pjoin(root, "missing");
    assert_int_not_equal(gn_dataset_load("folder", missing, "train", 0, &d, &e), 0);
    assert_msg(&e, missing, "no such directory");

    free(missing);
    free(em);
    free(emc);
    free(ns);
    free(nsc);
    free(tt);
    free(m);
    free(mc);
    free(g);
    free(ga);
    free(gb);
    rm_rf(root);
}

/* ------------------------------------------------------------------ views */

static void test_views(void **state)
{
    (void)state;
    gn_dataset *d = random_dataset(1000, 1, 2, 2, 10, 1);
    gn_dataset_view tr, va, tr2, va2, all, sub, sub2;
    gn_error e = {{0}};
    assert_int_equal(gn_view_all(d, &all, &e), 0);
    assert_int_equal(all.n, 1000);
    assert_int_equal(gn_view_split(d, 0.2, 7, &tr, &va, &e), 0);
    assert_int_equal(va.n, 200);
    assert_int_equal(tr.n, 800);
    char *seen = calloc(1000, 1);
    for (int i = 0; i < tr.n; i++)
        seen[tr.index[i]]++;
    for (int i = 0; i < va.n; i++)
        seen[va.index[i]]++;
    for (int i = 0; i < 1000; i++)
        assert_int_equal(seen[i], 1); /* disjoint and complete */
    for (int i = 1; i < va.n; i++)
        assert_true(va.index[i - 1] < va.index[i]);
    assert_int_equal(gn_view_split(d, 0.2, 7, &tr2, &va2, &e), 0);
    assert_memory_equal(va.index, va2.index, 200 * sizeof(int32_t));
    gn_view_free(&tr2);
    gn_view_free(&va2);
    assert_int_equal(gn_view_split(d, 0.2, 8, &tr2, &va2, &e), 0);
    assert_memory_not_equal(va.index, va2.index, 200 * sizeof(int32_t));
    gn_view_free(&tr2);
    gn_view_free(&va2);
    assert_int_equal(gn_view_split(d, 0.0, 8, &tr2, &va2, &e), 0);
    assert_int_equal(va2.n, 0);
    assert_int_equal(tr2.n, 1000);
    gn_view_free(&tr2);
    gn_view_free(&va2);
    assert_int_not_equal(gn_view_split(d, 1.0, 8, &tr2, &va2, &e), 0);
    assert_msg(&e, "fraction 1 not in [0, 1)", NULL);
    assert_int_equal(gn_view_split(d, 0.0004, 8, &tr2, &va2, &e), 0); /* rounds to 0 */
    assert_int_equal(va2.n, 0);
    gn_view_free(&tr2);
    gn_view_free(&va2);

    assert_int_equal(gn_view_subset(&tr, 100, 3, &sub, &e), 0);
    assert_int_equal(sub.n, 100);
    memset(seen, 0, 1000);
    for (int i = 0; i < tr.n; i++)
        seen[tr.index[i]] = 1;
    for (int i = 0; i < sub.n; i++) {
        assert_int_equal(seen[sub.index[i]], 1); /* drawn from tr */
        seen[sub.index[i]] = 2;                  /* distinct */
        if (i)
            assert_true(sub.index[i - 1] < sub.index[i]);
    }
    assert_int_equal(gn_view_subset(&tr, 100, 3, &sub2, &e), 0);
    assert_memory_equal(sub.index, sub2.index, 100 * sizeof(int32_t));
    gn_view_free(&sub2);
    assert_int_equal(gn_view_subset(&tr, 800, 3, &sub2, &e), 0);
    assert_memory_equal(sub2.index, tr.index, 800 * sizeof(int32_t));
    gn_view_free(&sub2);
    assert_int_not_equal(gn_view_subset(&tr, 801, 3, &sub2, &e), 0);
    assert_msg(&e, "size 801 not in [1, 800]", NULL);

    free(seen);
    gn_view_free(&sub);
    gn_view_free(&tr);
    gn_view_free(&va);
    gn_view_free(&all);
    gn_dataset_free(d);
}

/* ------------------------------------------------------------------ loader */

static void test_loader_shapes(void **state)
{
    (void)state;
    gn_dataset *d = random_dataset(10, 3, 6, 6, 4, 2);
    gn_dataset_view v;
    gn_error e = {{0}};
    assert_int_equal(gn_view_all(d, &v, &e), 0);
    const float mean[3] = {0.5f, 0.4f, 0.3f}, std[3] = {0.2f, 0.25f, 0.3f};
    gn_augment a = plain_aug(6, 3, mean, std);
    for (int prefetch = 0; prefetch <= 2; prefetch += 2)
        for (int drop = 0; drop < 2; drop++) {
            gn_loader *l = NULL;
            assert_int_equal(gn_loader_create(&v, 4, &a, false, drop, 5, prefetch, &l, &e), 0);
            assert_int_equal(gn_loader_batches_per_epoch(l), drop ? 2 : 3);
            gn_batch b;
            assert_int_equal(gn_loader_next(l, &b, &e), -1);
            assert_msg(&e, "no epoch started", NULL);
            assert_int_equal(gn_loader_start_epoch(l, 0, &e), 0);
            int sizes[3] = {4, 4, 2};
            for (int k = 0; k < (drop ? 2 : 3); k++) {
                assert_int_equal(gn_loader_next(l, &b, &e), 1);
                assert_int_equal(b.n, sizes[k]);
                assert_int_equal(b.c, 3);
                assert_int_equal(b.h, 6);
                assert_int_equal(b.w, 6);
                assert_int_equal(b.first, 4 * k);
                for (int i = 0; i < b.n; i++) {
                    int idx = 4 * k + i;
                    assert_int_equal(b.labels[i], d->labels[idx]);
                    for (int ch = 0; ch < 3; ch++)
                        for (int q = 0; q < 36; q++) {
                            double want = (d->pixels[(idx * 3 + ch) * 36 + q] / 255.0 - mean[ch]) / std[ch];
                            assert_float_equal(b.x[(i * 3 + ch) * 36 + q], want, 1e-5);
                        }
                }
            }
            assert_int_equal(gn_loader_next(l, &b, &e), 0);
            assert_int_equal(gn_loader_next(l, &b, &e), 0);
            gn_loader_free(l);
        }
    gn_loader *l = NULL;
    assert_int_not_equal(gn_loader_create(&v, 11, &a, false, true, 5, 0, &l, &e), 0);
    assert_msg(&e, "no full batch of 11", NULL);
    assert_int_not_equal(gn_loader_create(&v, 0, &a, false, false, 5, 0, &l, &e), 0);
    a.std[1] = 0;
    assert_int_not_equal(gn_loader_create(&v, 2, &a, false, false, 5, 0, &l, &e), 0);
    assert_msg(&e, "channel 1", "std must be positive");
    assert_null(l);
    gn_view_free(&v);
    gn_dataset_free(d);
}

static const char *PY_RESIZE =
    "import sys, numpy as np, torch, torch.nn.functional as F\n"
    "n, c, h, w, r = (int(v) for v in sys.argv[2:7])\n"
    "x = np.fromfile(sys.argv[1], dtype=np.uint8).reshape(n, c, h, w)\n"
    "t = torch.from_numpy(x.astype(np.float64) / 255.0)\n"
    "y = F.interpolate(t, size=(r, r), mode='bilinear', align_corners=False, antialias=False)\n"
    "y.numpy().astype(np.float64).tofile(sys.argv[1] + '.out')\n"
    "print('ok')\n";

/* resize to R through the loader (no augmentation, mean 0 std 1) vs torch */
static void check_resize_vs_torch(int n, int c, int h, int w, int R)
{
    gn_dataset *d = random_dataset(n, c, h, w, 2, (uint64_t)(h * 100 + w + R));
    gn_dataset_view v;
    gn_error e = {{0}};
    assert_int_equal(gn_view_all(d, &v, &e), 0);
    gn_augment a = plain_aug(R, c, NULL, NULL);
    gn_loader *l = NULL;
    assert_int_equal(gn_loader_create(&v, n, &a, false, false, 0, 1, &l, &e), 0);
    float *xs;
    int32_t *ls;
    size_t fl = (size_t)c * R * R;
    assert_int_equal(run_epoch(l, 0, &xs, &ls, fl), n);
    char *in = tu_tmp_path("resize.u8");
    write_bytes(in, d->pixels, (size_t)n * c * h * w);
    char args[1024];
    snprintf(args, sizeof args, "%s %d %d %d %d %d", in, n, c, h, w, R);
    char *out = run_py(PY_RESIZE, args);
    assert_non_null(out);
    free(out);
    char outp[1024];
    snprintf(outp, sizeof outp, "%s.out", in);
    size_t len;
    double *ref = (double *)tu_read_file(outp, &len);
    assert_non_null(ref);
    assert_int_equal(len, (size_t)n * fl * sizeof(double));
    double worst = 0;
    double *mine = malloc((size_t)R * R * sizeof(double));
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++) {
            naive_resize(d->pixels + ((size_t)i * c + ch) * h * w, h, w, R, mine);
            for (int q = 0; q < R * R; q++) {
                size_t k = ((size_t)i * c + ch) * R * R + q;
                double diff = fabs(xs[k] - ref[k]);
                if (diff > worst)
                    worst = diff;
                assert_true(fabs(mine[q] / 255.0 - ref[k]) < 1e-9); /* the test's own reference agrees */
            }
        }
    fprintf(stderr, "resize %dx%d -> %d (c=%d): max |loader - torch| = %.3g\n", h, w, R, c, worst);
    assert_true(worst <= 1e-5);
    free(mine);
    unlink(in);
    unlink(outp);
    free(in);
    free(ref);
    free(xs);
    free(ls);
    gn_loader_free(l);
    gn_view_free(&v);
    gn_dataset_free(d);
}

static void test_loader_resize_torch(void **state)
{
    (void)state;
    if (!have_torch()) {
        fprintf(stderr, "skipping: %s has no torch (install python3-torch)\n", PY);
        skip();
    }
    check_resize_vs_torch(5, 1, 28, 28, 32); /* Fashion-MNIST at 32 */
    check_resize_vs_torch(3, 3, 32, 32, 13); /* shrink, no antialias */
    check_resize_vs_torch(3, 3, 20, 28, 24); /* non-square source */
    check_resize_vs_torch(2, 1, 7, 7, 50);
}

/* out(y, x) for crop offset (oy, ox), pad p, flip, from resized plane rs (0..255 scale) */
static double naive_aug(const double *rs, int R, int p, int oy, int ox, int flip, int y, int x)
{
    /* padded (R+2p)^2 image, crop at (oy, ox), then mirror the crop */
    int cx = flip ? R - 1 - x : x;
    int py = y + oy, px = cx + ox;
    int sy = py - p, sx = px - p;
    if (sy < 0 || sy >= R || sx < 0 || sx >= R)
        return 0.0;
    return rs[sy * R + sx];
}

static void test_loader_crop_flip(void **state)
{
    (void)state;
    enum { n = 200, c = 2, H = 28, R = 32, P = 4 };
    gn_dataset *d = random_dataset(n, c, H, H, 3, 11);
    gn_dataset_view v;
    gn_error e = {{0}};
    assert_int_equal(gn_view_all(d, &v, &e), 0);
    const float mean[3] = {0.3f, 0.6f, 0}, std[3] = {0.5f, 0.2f, 1};
    gn_augment a = plain_aug(R, c, mean, std);
    a.augment = true;
    a.crop_pad = P;
    a.hflip = true;
    a.erase_prob = 0;
    gn_loader *l = NULL;
    assert_int_equal(gn_loader_create(&v, 64, &a, false, false, 123, 2, &l, &e), 0);
    float *xs;
    int32_t *ls;
    size_t fl = (size_t)c * R * R;
    assert_int_equal(run_epoch(l, 3, &xs, &ls, fl), n);
    double *rs = malloc((size_t)c * R * R * sizeof(double));
    int flips = 0, hist_oy[2 * P + 1] = {0}, hist_ox[2 * P + 1] = {0};
    for (int i = 0; i < n; i++) {
        for (int ch = 0; ch < c; ch++)
            naive_resize(d->pixels + ((size_t)i * c + ch) * H * H, H, H, R, rs + (size_t)ch * R * R);
        int found = 0, fy = -1, fx = -1, ff = -1;
        for (int oy = 0; oy <= 2 * P; oy++)
            for (int ox = 0; ox <= 2 * P; ox++)
                for (int flip = 0; flip < 2; flip++) {
                    int ok = 1;
                    for (int ch = 0; ch < c && ok; ch++)
                        for (int y = 0; y < R && ok; y++)
                            for (int x = 0; x < R && ok; x++) {
                                double want =
                                    (naive_aug(rs + (size_t)ch * R * R, R, P, oy, ox, flip, y, x) / 255.0 - mean[ch]) /
                                    std[ch];
                                ok = fabs(xs[(size_t)i * fl + ((size_t)ch * R + y) * R + x] - want) < 1e-4;
                            }
                    if (ok)
                        found++, fy = oy, fx = ox, ff = flip;
                }
        if (found != 1)
            fail_msg("image %d: %d matching (crop, flip) choices", i, found);
        flips += ff;
        hist_oy[fy]++;
        hist_ox[fx]++;
    }
    fprintf(stderr, "crop/flip: %d of %d flipped\n", flips, n);
    assert_in_range(flips, 60, 140);
    for (int k = 0; k <= 2 * P; k++) {
        assert_true(hist_oy[k] > 0);
        assert_true(hist_ox[k] > 0);
    }
    free(rs);
    free(xs);
    free(ls);
    gn_loader_free(l);
    gn_view_free(&v);
    gn_dataset_free(d);
}

static void test_loader_erasing(void **state)
{
    (void)state;
    const int n = 300, c = 3, R = 16;
    gn_dataset *d = random_dataset(n, c, R, R, 3, 12);
    gn_dataset_view v;
    gn_error e = {{0}};
    assert_int_equal(gn_view_all(d, &v, &e), 0);
    gn_augment a = plain_aug(R, c, NULL, NULL);
    a.augment = true;
    a.crop_pad = 2;
    a.hflip = true;
    size_t fl = (size_t)c * R * R;
    float *x0, *x1, *xq;
    int32_t *ls;
    for (int pass = 0; pass < 3; pass++) {
        a.erase_prob = pass == 0 ? 0.0f : pass == 1 ? 1.0f : 0.25f;
        gn_loader *l = NULL;
        assert_int_equal(gn_loader_create(&v, 50, &a, true, false, 99, pass, &l, &e), 0);
        assert_int_equal(run_epoch(l, 0, pass == 0 ? &x0 : pass == 1 ? &x1 : &xq, &ls, fl), n);
        free(ls);
        gn_loader_free(l);
    }
    /* erase_prob 1: each image differs from the unerased one in one rectangle (all channels) */
    double s = 0, s2 = 0;
    long cnt = 0;
    int erased = 0;
    for (int i = 0; i < n; i++) {
        int y0 = R, y1 = -1, x0b = R, x1b = -1;
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < R; y++)
                for (int x = 0; x < R; x++) {
                    size_t k = (size_t)i * fl + ((size_t)ch * R + y) * R + x;
                    if (x0[k] != x1[k]) {
                        y0 = y < y0 ? y : y0, y1 = y > y1 ? y : y1;
                        x0b = x < x0b ? x : x0b, x1b = x > x1b ? x : x1b;
                    }
                }
        if (y1 < 0)
            continue; /* all 10 attempts failed (possible, rare) */
        erased++;
        int h = y1 - y0 + 1, w = x1b - x0b + 1;
        assert_true(h < R && w < R);
        double area = (double)h * w / (R * R);
        assert_true(area >= 0.02 * 0.5 && area <= 1.0 / 3 * 1.6); /* rounding of h, w */
        for (int ch = 0; ch < c; ch++)
            for (int y = y0; y <= y1; y++)
                for (int x = x0b; x <= x1b; x++) {
                    double val = x1[(size_t)i * fl + ((size_t)ch * R + y) * R + x];
                    s += val, s2 += val * val, cnt++;
                }
    }
    assert_true(erased >= n * 8 / 10);
    double mean = s / cnt, sd = sqrt(s2 / cnt - mean * mean);
    fprintf(stderr, "erasing: %d/%d erased, noise mean %.3f std %.3f over %ld values\n", erased, n, mean, sd, cnt);
    assert_true(fabs(mean) < 0.05);
    assert_true(fabs(sd - 1.0) < 0.05);
    /* erase_prob 0.25: about a quarter of the images change */
    int changed = 0;
    for (int i = 0; i < n; i++)
        changed += memcmp(x0 + (size_t)i * fl, xq + (size_t)i * fl, fl * sizeof(float)) != 0;
    fprintf(stderr, "erasing p=0.25: %d/%d images changed\n", changed, n);
    assert_in_range(changed, 45, 110);
    free(x0);
    free(x1);
    free(xq);
    gn_view_free(&v);
    gn_dataset_free(d);
}

static void test_loader_determinism(void **state)
{
    (void)state;
    const int n = 300, c = 1, H = 28, R = 32, B = 32;
    gn_dataset *d = random_dataset(n, c, H, H, 10, 13);
    gn_dataset_view v;
    gn_error e = {{0}};
    assert_int_equal(gn_view_all(d, &v, &e), 0);
    gn_augment a;
    gn_augment_defaults(d, &a);
    a.resolution = R;
    a.erase_prob = 0.5f;
    size_t fl = (size_t)c * R * R;
    float *ref[2];
    int32_t *rl[2];
    gn_loader *l0 = NULL, *l4 = NULL;
    assert_int_equal(gn_loader_create(&v, B, &a, true, false, 77, 0, &l0, &e), 0);
    assert_int_equal(gn_loader_create(&v, B, &a, true, false, 77, 4, &l4, &e), 0);
    for (int ep = 0; ep < 2; ep++) {
        float *xs;
        int32_t *ls;
        assert_int_equal(run_epoch(l0, ep, &ref[ep], &rl[ep], fl), n);
        assert_int_equal(run_epoch(l4, ep, &xs, &ls, fl), n);
        assert_memory_equal(xs, ref[ep], n * fl * sizeof(float));
        assert_memory_equal(ls, rl[ep], n * sizeof(int32_t));
        free(xs);
        free(ls);
        /* a shuffled epoch still has every image once: the label histogram is the dataset's */
        int hist[10] = {0};
        for (int i = 0; i < n; i++)
            hist[rl[ep][i]]++;
        for (int k = 0; k < 10; k++)
            assert_int_equal(hist[k], 30);
    }
    /* epoch 0 and 1 differ (order and augmentation) */
    assert_memory_not_equal(rl[0], rl[1], n * sizeof(int32_t));
    assert_memory_not_equal(ref[0], ref[1], n * fl * sizeof(float));

    /* restart mid-epoch: take 3 batches of epoch 0, then epoch 1 from scratch; the batch
     * held across the restart stays intact */
    assert_int_equal(gn_loader_start_epoch(l4, 0, &e), 0);
    gn_batch b;
    for (int k = 0; k < 3; k++)
        assert_int_equal(gn_loader_next(l4, &b, &e), 1);
    float *held = malloc((size_t)B * fl * sizeof(float));
    memcpy(held, b.x, (size_t)B * fl * sizeof(float));
    const float *heldp = b.x;
    assert_int_equal(gn_loader_start_epoch(l4, 1, &e), 0);
    usleep(20000); /* let the producer fill the other slots */
    assert_memory_equal(heldp, held, (size_t)B * fl * sizeof(float));
    size_t got = 0;
    while (gn_loader_next(l4, &b, &e) == 1) {
        assert_memory_equal(b.x, ref[1] + got * fl, (size_t)b.n * fl * sizeof(float));
        got += (size_t)b.n;
    }
    assert_int_equal(got, n);
    /* many quick restarts while the thread is producing, then a full epoch: still the same */
    for (int rep = 0; rep < 20; rep++) {
        assert_int_equal(gn_loader_start_epoch(l4, rep % 3, &e), 0);
        for (int k = 0; k < rep % 4; k++)
            assert_int_equal(gn_loader_next(l4, &b, &e), 1);
    }
    float *xr;
    int32_t *lr;
    assert_int_equal(run_epoch(l4, 0, &xr, &lr, fl), n);
    assert_memory_equal(xr, ref[0], n * fl * sizeof(float));
    free(xr);
    free(lr);
    /* unshuffled order differs from shuffled one, and a different seed differs */
    gn_loader *ls1 = NULL;
    assert_int_equal(gn_loader_create(&v, B, &a, true, false, 78, 4, &ls1, &e), 0);
    float *xs;
    int32_t *lsx;
    assert_int_equal(run_epoch(ls1, 0, &xs, &lsx, fl), n);
    assert_memory_not_equal(xs, ref[0], n * fl * sizeof(float));
    free(xs);
    free(lsx);
    gn_loader_free(ls1);

    /* free while the thread is producing (mid-epoch, queue not drained) */
    for (int rep = 0; rep < 5; rep++) {
        gn_loader *lf = NULL;
        assert_int_equal(gn_loader_create(&v, 8, &a, true, false, (uint64_t)rep, 3, &lf, &e), 0);
        assert_int_equal(gn_loader_start_epoch(lf, rep, &e), 0);
        if (rep % 2)
            assert_int_equal(gn_loader_next(lf, &b, &e), 1);
        gn_loader_free(lf);
    }
    /* a loader that never started an epoch */
    gn_loader *lz = NULL;
    assert_int_equal(gn_loader_create(&v, 8, &a, true, false, 1, 3, &lz, &e), 0);
    gn_loader_free(lz);

    free(held);
    for (int ep = 0; ep < 2; ep++) {
        free(ref[ep]);
        free(rl[ep]);
    }
    gn_loader_free(l0);
    gn_loader_free(l4);
    gn_view_free(&v);
    gn_dataset_free(d);
}

static void test_from_memory_errors(void **state)
{
    (void)state;
    gn_dataset *d = (gn_dataset *)0x1;
    gn_error e = {{0}};
    uint8_t *px = calloc(8, 1);
    int32_t *lab = calloc(2, sizeof *lab);
    lab[1] = 5;
    assert_int_not_equal(gn_dataset_from_memory(2, 1, 2, 2, 5, px, lab, &d, &e), 0); /* frees both */
    assert_null(d);
    assert_msg(&e, "image 1: label 5 out of range [0, 5)", NULL);
    px = calloc(8, 1);
    lab = calloc(2, sizeof *lab);
    assert_int_not_equal(gn_dataset_from_memory(2, 4, 1, 1, 5, px, lab, &d, &e), 0);
    assert_msg(&e, "c=4", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fashion_mnist),     cmocka_unit_test(test_idx_errors),
        cmocka_unit_test(test_cifar),             cmocka_unit_test(test_folder),
        cmocka_unit_test(test_views),             cmocka_unit_test(test_from_memory_errors),
        cmocka_unit_test(test_loader_shapes),     cmocka_unit_test(test_loader_resize_torch),
        cmocka_unit_test(test_loader_crop_flip),  cmocka_unit_test(test_loader_erasing),
        cmocka_unit_test(test_loader_determinism),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
