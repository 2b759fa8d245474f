/*
 * test_npy_predict.c — .npy I/O, `gpunas predict` and the Pareto picture.
 *
 *  - npy: round trip of 1-, 2-, 4-d and empty arrays (bits equal, header aligned to 64,
 *    no PATH.tmp left); files written by Debian's numpy (np.save, format versions 2.0
 *    and 3.0 via np.lib.format.write_array) read equal; a gpunas-written file read by
 *    numpy equal (dtype, shape, C order, values); bad files — garbage, empty, truncated
 *    header, truncated data, extra data, '<f8', fortran order, missing — each refused
 *    with one line naming the file and the reason.  The numpy parts are skipped when
 *    /usr/bin/python3 has no numpy.
 *  - predict: random weights for configs/fmnist-wide.json (gn_net_init + gn_net_save,
 *    dnnl, 1 thread), the first Fashion-MNIST test images written as PNG (grey, one as
 *    RGB); the top-1 class and probability printed per image equal those of the logits
 *    computed in-process through the loader's evaluation path and gn_net_infer;
 *    --input X.npy --output Y.npy gives those logits to 1e-5; a wrong-shape npy, an
 *    '<f8' npy, a truncated PNG and a non-image are refused (exit 1, one stderr line
 *    naming the file) and leave no Y.npy.  Skipped without the data set.
 *  - plot: n = 1 and n = 50 (tiers, front, hub labels) give a PNG that libpng decodes,
 *    1000 x 640 by its IHDR; n = 0 and a NaN point are refused naming the file.
 *  - search: a tiny `gpunas search` writes OUT/pareto.png (and says so); when the
 *    picture cannot be written the (resumed, finished) search still exits 0, with one
 *    warning line.  Skipped without the data set.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gpunas/data.h"
#include "gpunas/network.h"
#include "gpunas/npy.h"
#include "gpunas/plot.h"
#include "gpunas/rng.h"
#include "testutil.h"

#define PY "/usr/bin/python3"

static int have_numpy(void)
{
    static int cached = -1;
    if (cached < 0)
        cached = access(PY, X_OK) == 0 && system(PY " -c 'import numpy' >/dev/null 2>&1") == 0;
    return cached;
}

static int exists(const char *p) { return access(p, F_OK) == 0; }

static long file_size(const char *p)
{
    FILE *f = fopen(p, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

static void write_bytes(const char *path, const void *b, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

/* A hand-made v1.0 .npy: header dict text as given, then nbytes of data. */
static void write_raw_npy(const char *path, const char *dict, size_t nbytes)
{
    char head[256];
    size_t dl = strlen(dict), total = 10 + dl + 1, pad = (total + 63) / 64 * 64;
    memcpy(head, "\x93NUMPY\x01\x00", 8);
    head[8] = (char)((pad - 10) & 0xff), head[9] = (char)((pad - 10) >> 8);
    memcpy(head + 10, dict, dl);
    memset(head + 10 + dl, ' ', pad - total);
    head[pad - 1] = '\n';
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(head, 1, pad, f);
    for (size_t i = 0; i < nbytes; i++)
        fputc((int)(i * 37 & 0xff), f);
    fclose(f);
}

static void expect_read_error(const char *path, const char *frag)
{
    gn_npy a;
    gn_error err = {{0}};
    memset(&a, 0x5a, sizeof a);
    if (gn_npy_read(path, &a, &err) == 0)
        fail_msg("%s: read succeeded, expected '%s'", path, frag);
    if (!strstr(err.msg, path) || !strstr(err.msg, frag) || strchr(err.msg, '\n'))
        fail_msg("%s: message '%s' lacks the path or '%s'", path, err.msg, frag);
    assert_null(a.data);
    assert_int_equal(a.ndim, 0);
    gn_npy_free(&a);
}

/* ------------------------------------------------------------------ npy */

static void test_npy_roundtrip(void **state)
{
    (void)state;
    const int64_t shapes[][4] = {{7}, {3, 5}, {2, 1, 3, 4}, {0, 4}, {1, 1, 1, 1}};
    const int ndims[] = {1, 2, 4, 2, 4};
    char *p = tu_tmp_path("rt.npy"), tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    gn_rng r;
    gn_rng_seed(&r, 11);
    for (int s = 0; s < 5; s++) {
        int64_t numel = 1;
        for (int i = 0; i < ndims[s]; i++)
            numel *= shapes[s][i];
        float *v = malloc(((size_t)numel + 1) * sizeof *v);
        for (int64_t i = 0; i < numel; i++)
            v[i] = (float)gn_rng_normal(&r) * 1000.0f;
        if (numel > 2)
            v[1] = -0.0f, v[2] = INFINITY;
        gn_error err;
        if (gn_npy_write(p, ndims[s], shapes[s], v, &err))
            fail_msg("%s", err.msg);
        assert_false(exists(tmp));
        long size = file_size(p);
        assert_int_equal((size - numel * 4) % 64, 0);
        gn_npy a;
        if (gn_npy_read(p, &a, &err))
            fail_msg("%s", err.msg);
        assert_int_equal(a.ndim, ndims[s]);
        assert_int_equal(a.numel, numel);
        for (int i = 0; i < ndims[s]; i++)
            assert_int_equal(a.shape[i], shapes[s][i]);
        assert_non_null(a.data);
        if (numel > 0)
            assert_memory_equal(a.data, v, (size_t)numel * 4);
        gn_npy_free(&a);
        assert_null(a.data);
        free(v);
    }
    /* writer argument checks */
    gn_error err;
    int64_t bad[1] = {-1};
    assert_int_not_equal(gn_npy_write(p, 1, bad, NULL, &err), 0);
    int64_t five[5] = {1, 1, 1, 1, 1};
    float one = 1;
    assert_int_not_equal(gn_npy_write(p, 5, five, &one, &err), 0);
    assert_non_null(strstr(err.msg, p));
    unlink(p);
    free(p);
}

static void test_npy_numpy_interop(void **state)
{
    (void)state;
    if (!have_numpy())
        skip();
    char *p1 = tu_tmp_path("np1.npy"), *p2 = tu_tmp_path("np2.npy"), *p3 = tu_tmp_path("np3.npy");
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             PY " -c \"import numpy as np\n"
                "a = (np.arange(24, dtype='<f4') / np.float32(7)).reshape(2, 3, 4)\n"
                "np.save('%s', a)\n"
                "for v, p in (((2, 0), '%s'), ((3, 0), '%s')):\n"
                "    with open(p, 'wb') as f: np.lib.format.write_array(f, a, version=v)\n\"",
             p1, p2, p3);
    assert_int_equal(system(cmd), 0);
    const char *paths[3] = {p1, p2, p3};
    for (int k = 0; k < 3; k++) {
        gn_npy a;
        gn_error err;
        if (gn_npy_read(paths[k], &a, &err))
            fail_msg("%s", err.msg);
        assert_int_equal(a.ndim, 3);
        assert_int_equal(a.shape[0], 2);
        assert_int_equal(a.shape[1], 3);
        assert_int_equal(a.shape[2], 4);
        for (int i = 0; i < 24; i++)
            if (a.data[i] != (float)i / 7.0f)
                fail_msg("%s: element %d: %.9g != %.9g", paths[k], i, a.data[i], (float)i / 7.0f);
        gn_npy_free(&a);
    }
    /* gpunas -> numpy */
    float v[15];
    for (int i = 0; i < 15; i++)
        v[i] = i * 0.25f - 1.0f;
    int64_t shape[2] = {3, 5};
    gn_error err;
    assert_int_equal(gn_npy_write(p1, 2, shape, v, &err), 0);
    snprintf(cmd, sizeof cmd,
             PY " -c \"import numpy as np\n"
                "a = np.load('%s')\n"
                "b = (np.arange(15, dtype=np.float32) * np.float32(0.25) - np.float32(1)).reshape(3, 5)\n"
                "assert a.dtype == np.dtype('<f4') and a.shape == (3, 5) and a.flags.c_contiguous, (a.dtype, a.shape)\n"
                "assert (a == b).all()\n\"",
             p1);
    assert_int_equal(system(cmd), 0);
    int64_t one[1] = {4};
    assert_int_equal(gn_npy_write(p1, 1, one, v, &err), 0);
    snprintf(cmd, sizeof cmd,
             PY " -c \"import numpy as np\nassert (np.load('%s') == np.array([-1, -0.75, -0.5, -0.25], 'f4')).all()\"",
             p1);
    assert_int_equal(system(cmd), 0);
    unlink(p1), unlink(p2), unlink(p3);
    free(p1), free(p2), free(p3);
}

static void test_npy_bad_files(void **state)
{
    (void)state;
    char *p = tu_tmp_path("bad.npy");
    write_bytes(p, "hello, this is not an npy file at all", 37);
    expect_read_error(p, "bad magic");
    write_bytes(p, "", 0);
    expect_read_error(p, "bad magic");
    /* header length 118 but only 20 bytes of it */
    write_bytes(p, "\x93NUMPY\x01\x00\x76\x00{'descr': '<f4', 'f", 30);
    expect_read_error(p, "truncated header");
    write_bytes(p, "\x93NUMPY\x01", 7);
    expect_read_error(p, "truncated header");
    write_raw_npy(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 20);
    expect_read_error(p, "truncated data");
    write_raw_npy(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 32);
    expect_read_error(p, "8 bytes after the data");
    write_raw_npy(p, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", 48);
    expect_read_error(p, "dtype '<f8' not supported");
    write_raw_npy(p, "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", 24);
    expect_read_error(p, "dtype '>f4' not supported");
    write_raw_npy(p, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24);
    expect_read_error(p, "fortran_order True not supported");
    write_raw_npy(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1), }", 4);
    expect_read_error(p, "more than 4 dimensions");
    write_raw_npy(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", 4);
    expect_read_error(p, "scalar");
    write_raw_npy(p, "{'descr': '<f4', 'shape': (2,), }", 8);
    expect_read_error(p, "'fortran_order' missing");
    write_raw_npy(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", 8);
    expect_read_error(p, "unknown key 'x'");
    /* key order and quoting as other writers use them */
    write_raw_npy(p, "{\"shape\": (2,), \"fortran_order\": False, \"descr\": \"<f4\"}", 8);
    gn_npy a;
    gn_error err;
    if (gn_npy_read(p, &a, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(a.ndim, 1);
    assert_int_equal(a.shape[0], 2);
    gn_npy_free(&a);
    char *missing = tu_tmp_path("no-such.npy");
    expect_read_error(missing, "cannot open");
    free(missing);
    if (have_numpy()) { /* the real thing: numpy's own float64 and Fortran-order files */
        char cmd[2048];
        snprintf(cmd, sizeof cmd, PY " -c \"import numpy as np; np.save('%s', np.zeros((2, 3)))\"", p);
        assert_int_equal(system(cmd), 0);
        expect_read_error(p, "dtype '<f8' not supported");
        snprintf(cmd, sizeof cmd,
                 PY " -c \"import numpy as np; np.save('%s', np.asfortranarray(np.ones((2, 3), 'f4')))\"", p);
        assert_int_equal(system(cmd), 0);
        expect_read_error(p, "fortran_order True");
        /* a truncated numpy file */
        snprintf(cmd, sizeof cmd,
                 PY " -c \"import numpy as np; np.save('%s', np.ones((4, 4), 'f4'))\" && truncate -s -10 %s", p, p);
        assert_int_equal(system(cmd), 0);
        expect_read_error(p, "truncated data");
    }
    unlink(p);
    free(p);
}

/* ------------------------------------------------------------------ predict */

static void write_png(const char *path, const uint8_t *grey, int w, int h, int rgb)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png)))
        fail_msg("%s: libpng write failed", path);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, rgb ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    uint8_t *row = malloc((size_t)w * 3);
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            uint8_t v = grey[y * w + x];
            if (rgb)
                row[3 * x] = row[3 * x + 1] = row[3 * x + 2] = v;
            else
                row[x] = v;
        }
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(row);
    fclose(f);
}

#define NIMG 6

static void test_predict(void **state)
{
    (void)state;
    gn_error err;
    gn_dataset *test = NULL;
    if (gn_dataset_load("fashion-mnist", NULL, "test", 0, &test, &err)) {
        print_message("skipped: %s\n", err.msg);
        skip();
    }
    char *cfg = tu_source_path("configs/fmnist-wide.json");
    char *w = tu_tmp_path("pred.safetensors");
    gn_arch *arch;
    gn_backend *be;
    gn_net *net;
    if (gn_arch_load(cfg, &arch, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(arch->resolution, 28);
    assert_int_equal(gn_backend_create("dnnl", &be, &err), 0);
    assert_int_equal(gn_backend_set_threads(be, 1, &err), 0);
    if (gn_net_create(arch, be, &net, &err) || gn_net_init(net, 5, &err))
        fail_msg("%s", err.msg);
    /* BN statistics away from (0, 1), so folding them matters */
    gn_rng r;
    gn_rng_seed(&r, 9);
    for (int i = 0; i < gn_net_num_params(net); i++) {
        gn_param *q = gn_net_param(net, i);
        int is_mean = strstr(q->name, "running_mean") != NULL, is_var = strstr(q->name, "running_var") != NULL;
        for (size_t k = 0; (is_mean || is_var) && k < gn_tensor_numel(&q->value); k++)
            q->value.data[k] = is_mean ? 0.1f * (float)gn_rng_normal(&r) : 0.5f + (float)gn_rng_uniform(&r);
    }
    if (gn_net_save(net, w, &err))
        fail_msg("%s", err.msg);

    /* in-process: the evaluation loader on the first NIMG test images, then gn_net_infer */
    gn_dataset_view all, v;
    assert_int_equal(gn_view_all(test, &all, &err), 0);
    v.data = test;
    v.n = NIMG;
    v.index = malloc(NIMG * sizeof *v.index);
    for (int i = 0; i < NIMG; i++)
        v.index[i] = i;
    gn_augment aug;
    gn_augment_defaults(test, &aug);
    aug.augment = false;
    aug.resolution = 28;
    gn_loader *l;
    gn_batch b;
    if (gn_loader_create(&v, NIMG, &aug, false, false, 0, 0, &l, &err) || gn_loader_start_epoch(l, 0, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(gn_loader_next(l, &b, &err), 1);
    assert_int_equal(b.n, NIMG);
    gn_tensor x = {0};
    const gn_tensor *out;
    float logits[NIMG * 10];
    if (gn_tensor_alloc(&x, be, NIMG, 1, 28, 28, &err) || gn_tensor_from_host(&x, b.x, &err) ||
        gn_net_infer(net, &x, &out, &err) || gn_tensor_to_host(out, logits, &err))
        fail_msg("%s", err.msg);

    /* the same images as PNG files (image 3 as RGB) */
    char *imgs[NIMG], args[8192];
    int k = snprintf(args, sizeof args, "predict %s --weights %s --threads 1", cfg, w);
    for (int i = 0; i < NIMG; i++) {
        char name[32];
        snprintf(name, sizeof name, "img%d.png", i);
        imgs[i] = tu_tmp_path(name);
        write_png(imgs[i], test->pixels + (size_t)i * 28 * 28, 28, 28, i == 3);
        k += snprintf(args + k, sizeof args - k, " %s", imgs[i]);
    }
    char *so = NULL, *se = NULL;
    int rc = tu_run_cli(args, &so, &se);
    if (rc != 0)
        fail_msg("predict failed (%d): %s", rc, se);
    assert_non_null(strstr(so, "Fashion-MNIST normalisation"));
    for (int i = 0; i < NIMG; i++) {
        const float *z = logits + i * 10;
        int best = 0;
        double zmax = z[0], sum = 0;
        for (int c = 1; c < 10; c++)
            if (z[c] > z[best])
                best = c, zmax = z[c];
        for (int c = 0; c < 10; c++)
            sum += exp((double)z[c] - zmax);
        char *at = strstr(so, imgs[i]);
        assert_non_null(at);
        char *line = strstr(at, "\n  1. ");
        assert_non_null(line);
        char *cls = strstr(line, "(class ");
        assert_non_null(cls);
        int got = atoi(cls + 7);
        char *pct = cls;
        while (pct > line && pct[0] != '%')
            pct--;
        while (pct > line && pct[-1] != ' ')
            pct--;
        double p = atof(pct);
        if (got != best || fabs(p - 100.0 / sum) > 0.006)
            fail_msg("%s: top-1 class %d %.2f%%, in-process %d %.4f%%\n%s", imgs[i], got, p, best, 100.0 / sum, so);
        static const char *const names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                              "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
        char *name = strstr(line, names[best]);
        assert_true(name && name < cls);
        /* five ranked lines */
        assert_non_null(strstr(line, "\n  5. "));
    }
    free(so), free(se);

    /* --input / --output: the same logits */
    char *xp = tu_tmp_path("x.npy"), *yp = tu_tmp_path("y.npy");
    int64_t shape[4] = {NIMG, 1, 28, 28};
    assert_int_equal(gn_npy_write(xp, 4, shape, b.x, &err), 0);
    snprintf(args, sizeof args, "predict %s --weights %s --threads 1 --input %s --output %s", cfg, w, xp, yp);
    rc = tu_run_cli(args, &so, &se);
    if (rc != 0)
        fail_msg("predict --input failed (%d): %s", rc, se);
    gn_npy y;
    if (gn_npy_read(yp, &y, &err))
        fail_msg("%s", err.msg);
    assert_int_equal(y.ndim, 2);
    assert_int_equal(y.shape[0], NIMG);
    assert_int_equal(y.shape[1], 10);
    for (int i = 0; i < NIMG * 10; i++)
        if (fabsf(y.data[i] - logits[i]) > 1e-5f)
            fail_msg("logit %d: %.9g from predict, %.9g in-process", i, y.data[i], logits[i]);
    gn_npy_free(&y);
    free(so), free(se);
    unlink(yp);

    /* refusals: exit 1, one line naming the file, no output */
    char *bad = tu_tmp_path("bad-shape.npy");
    int64_t wrong[4] = {2, 1, 32, 32};
    float *zeros = calloc(2 * 32 * 32, sizeof *zeros);
    assert_int_equal(gn_npy_write(bad, 4, wrong, zeros, &err), 0);
    struct {
        const char *file, *frag1, *frag2;
    } cases[4];
    char *f8 = tu_tmp_path("f8.npy"), *cut = tu_tmp_path("cut.png"), *txt = tu_tmp_path("notes.png");
    {
        char dict[128];
        snprintf(dict, sizeof dict, "{'descr': '<f8', 'fortran_order': False, 'shape': (%d, 1, 28, 28), }", NIMG);
        write_raw_npy(f8, dict, (size_t)NIMG * 28 * 28 * 8);
        char *png = tu_read_file(imgs[0], NULL);
        size_t plen = (size_t)file_size(imgs[0]);
        write_bytes(cut, png, plen / 2);
        free(png);
        write_bytes(txt, "just some text\n", 15);
    }
    cases[0].file = bad, cases[0].frag1 = "[2,1,32,32]", cases[0].frag2 = "expected float32 [N,1,28,28]";
    cases[1].file = f8, cases[1].frag1 = "dtype '<f8' not supported", cases[1].frag2 = "'<f4'";
    cases[2].file = cut, cases[2].frag1 = "undecodable PNG", cases[2].frag2 = NULL;
    cases[3].file = txt, cases[3].frag1 = "not a PNG or JPEG", cases[3].frag2 = NULL;
    for (int c = 0; c < 4; c++) {
        if (c < 2)
            snprintf(args, sizeof args, "predict %s --weights %s --threads 1 --input %s --output %s", cfg, w,
                     cases[c].file, yp);
        else
            snprintf(args, sizeof args, "predict %s --weights %s --threads 1 %s %s", cfg, w, imgs[1], cases[c].file);
        rc = tu_run_cli(args, &so, &se);
        if (rc != 1 || count_lines(se) != 1 || !strstr(se, cases[c].file) || !strstr(se, cases[c].frag1) ||
            (cases[c].frag2 && !strstr(se, cases[c].frag2)) || !strstr(se, "gpunas predict: "))
            fail_msg("case %d: exit %d, stderr: %s", c, rc, se ? se : "");
        assert_false(exists(yp));
        char tmp[4200];
        snprintf(tmp, sizeof tmp, "%s.tmp", yp);
        assert_false(exists(tmp));
        if (c >= 2) /* nothing printed for the good image before the bad one */
            assert_null(strstr(so, "  1. "));
        free(so), free(se);
    }
    /* usage errors: exit 2 */
    snprintf(args, sizeof args, "predict %s --weights %s --input %s", cfg, w, xp);
    assert_int_equal(tu_run_cli(args, NULL, NULL), 2);
    snprintf(args, sizeof args, "predict %s --weights %s", cfg, w);
    assert_int_equal(tu_run_cli(args, NULL, NULL), 2);

    for (int i = 0; i < NIMG; i++) {
        unlink(imgs[i]);
        free(imgs[i]);
    }
    unlink(bad), unlink(f8), unlink(cut), unlink(txt), unlink(xp), unlink(w);
    free(bad), free(f8), free(cut), free(txt), free(xp), free(yp), free(zeros);
    gn_tensor_free(&x);
    gn_loader_free(l);
    gn_view_free(&v);
    gn_view_free(&all);
    gn_net_free(net);
    gn_backend_destroy(be);
    gn_arch_free(arch);
    gn_dataset_free(test);
    free(cfg), free(w);
}

/* ------------------------------------------------------------------ plot */

static void check_png(const char *path)
{
    unsigned char head[24];
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(head, 1, 24, f), 24);
    fclose(f);
    assert_memory_equal(head, "\x89PNG\r\n\x1a\n", 8);
    assert_memory_equal(head + 12, "IHDR", 4);
    uint32_t w = (uint32_t)head[16] << 24 | head[17] << 16 | head[18] << 8 | head[19];
    uint32_t h = (uint32_t)head[20] << 24 | head[21] << 16 | head[22] << 8 | head[23];
    assert_int_equal(w, 1000);
    assert_int_equal(h, 640);
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    assert_true(png_image_begin_read_from_file(&img, path));
    img.format = PNG_FORMAT_RGB;
    unsigned char *buf = malloc(PNG_IMAGE_SIZE(img));
    assert_true(png_image_finish_read(&img, NULL, buf, 0, NULL));
    /* not blank: some dark pixels (axes, text) and some coloured ones (points) */
    size_t dark = 0, colour = 0, n = (size_t)img.width * img.height;
    for (size_t i = 0; i < n; i++) {
        int r = buf[3 * i], g = buf[3 * i + 1], b = buf[3 * i + 2];
        dark += r + g + b < 300;
        colour += abs(r - g) > 60 || abs(g - b) > 60;
    }
    assert_true(dark > 1000);
    assert_true(colour > 20);
    free(buf);
    png_image_free(&img);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_false(exists(tmp));
}

static void test_plot(void **state)
{
    (void)state;
    char *p = tu_tmp_path("pareto.png");
    gn_error err;
    gn_plot_point one = {0.42, 0.871, 0, GN_PLOT_FRONT};
    if (gn_plot_pareto_png(p, &one, 1, NULL, &err))
        fail_msg("%s", err.msg);
    check_png(p);

    enum { N = 50 };
    gn_plot_point pts[N];
    const char *labels[N] = {0};
    double edges[3] = {0.3, 0.6, 1.2};
    gn_rng r;
    gn_rng_seed(&r, 3);
    for (int i = 0; i < N; i++) {
        double lat = 0.1 + 1.4 * gn_rng_uniform(&r);
        double acc = 0.7 + 0.2 * (1 - exp(-lat * 2)) + 0.03 * gn_rng_normal(&r);
        int t = lat <= 0.3 ? 0 : lat <= 0.6 ? 1 : lat <= 1.2 ? 2 : -1;
        pts[i] = (gn_plot_point){lat, acc, t, 0};
    }
    /* mark the front (max accuracy, min latency) */
    for (int i = 0; i < N; i++) {
        int dominated = 0;
        for (int j = 0; j < N && !dominated; j++)
            dominated = j != i && pts[j].latency_ms <= pts[i].latency_ms && pts[j].accuracy >= pts[i].accuracy &&
                        (pts[j].latency_ms < pts[i].latency_ms || pts[j].accuracy > pts[i].accuracy);
        if (!dominated)
            pts[i].flags |= GN_PLOT_FRONT;
    }
    pts[4].flags |= GN_PLOT_HUB, labels[4] = "fmnist-tier0";
    pts[9].flags |= GN_PLOT_HUB, labels[9] = "fmnist-tier1";
    pts[13].flags |= GN_PLOT_HUB, labels[13] = NULL;
    gn_plot_opts o = {.title = "test picture", .tier_edges = edges, .n_tiers = 3, .labels = labels};
    if (gn_plot_pareto_png(p, pts, N, &o, &err))
        fail_msg("%s", err.msg);
    check_png(p);
    unlink(p);

    /* refusals name the file and write nothing */
    assert_int_not_equal(gn_plot_pareto_png(p, pts, 0, &o, &err), 0);
    assert_non_null(strstr(err.msg, p));
    assert_non_null(strstr(err.msg, "nothing to plot"));
    assert_false(exists(p));
    pts[7].accuracy = NAN;
    assert_int_not_equal(gn_plot_pareto_png(p, pts, N, &o, &err), 0);
    assert_non_null(strstr(err.msg, p));
    assert_false(exists(p));
    /* an unwritable place */
    assert_int_not_equal(gn_plot_pareto_png("/nonexistent-dir/x.png", &one, 1, NULL, &err), 0);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/x.png"));
    free(p);
}

/* `gpunas search` writes OUT/pareto.png; a picture that cannot be written is a warning. */
static void test_search_picture(void **state)
{
    (void)state;
    gn_dataset *probe = NULL;
    gn_error err;
    if (gn_dataset_load("fashion-mnist", NULL, "test", 0, &probe, &err)) {
        print_message("skipped: %s\n", err.msg);
        skip();
    }
    gn_dataset_free(probe);
    char *dir = tu_tmp_path("search-png"), cmd[4096], png[4200];
    const char *args = "--prune-samples 8 --trials 4 --proxy-subset 64 --proxy-batch 32 --lat-runs 5 "
                       "--val-fraction 0.005 --threads 1 --lat-threads 1 --lat-duration 0 --tiers auto:2 --seed 3 --quiet";
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    snprintf(png, sizeof png, "%s/pareto.png", dir);
    snprintf(cmd, sizeof cmd, "search --out %s %s", dir, args);
    char *so = NULL, *se = NULL;
    int rc = tu_run_cli(cmd, &so, &se);
    if (rc != 0)
        fail_msg("search failed (%d): %s", rc, se ? se : "");
    char line[4300];
    snprintf(line, sizeof line, "wrote %s\n", png);
    assert_non_null(strstr(so, line));
    check_png(png);
    free(so), free(se);
    /* pareto.png a folder: the resumed (finished) search still succeeds, with a warning */
    unlink(png);
    assert_int_equal(mkdir(png, 0777), 0);
    snprintf(cmd, sizeof cmd, "search --out %s %s --resume", dir, args);
    rc = tu_run_cli(cmd, &so, &se);
    if (rc != 0 || !strstr(se, "warning") || !strstr(se, "pareto.png") || count_lines(se) != 1)
        fail_msg("resume: exit %d, stderr: %s", rc, se ? se : "");
    assert_null(strstr(so, line));
    free(so), free(se);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_npy_roundtrip), cmocka_unit_test(test_npy_numpy_interop),
        cmocka_unit_test(test_npy_bad_files), cmocka_unit_test(test_predict),
        cmocka_unit_test(test_plot),          cmocka_unit_test(test_search_picture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
