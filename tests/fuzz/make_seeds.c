/*
 * make_seeds.c — writes the generated seed inputs of the fuzz corpora.
 *
 *   build/fuzz_make_seeds SOURCE_DIR OUT_DIR
 *
 * writes OUT_DIR/<harness>/seed-*: the repository's configs and built-in spaces,
 * tiny valid files of every binary format made with the project's own writers (or
 * libpng / libjpeg / zlib), valid inputs framed the way each harness expects, and a
 * few hand-written malformed ones in the spirit of the unit tests.  The committed
 * corpora tests/fuzz/corpus/<harness>/ started from these plus the inputs the unit
 * tests feed the parsers (scripts/fuzz.sh --harvest), merged with libFuzzer's
 * -merge=1, and grow by the fuzzer's finds (README.md in this folder).
 * Deterministic: the same build writes the same bytes.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

#include "fuzz_ckpt_run.h"
#include "gpunas/arch.h"
#include "gpunas/latprofile.h"
#include "gpunas/npy.h"
#include "gpunas/safetensors.h"
#include "gpunas/space.h"

static const char *out_root;

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "make_seeds: %s: %s\n", what, msg);
    exit(1);
}

static void seed_path(char *buf, size_t cap, const char *harness, const char *name)
{
    snprintf(buf, cap, "%s/%s", out_root, harness);
    mkdir(buf, 0777);
    snprintf(buf, cap, "%s/%s/seed-%s", out_root, harness, name);
}

static void put(const char *harness, const char *name, const void *data, size_t n)
{
    char p[4096];
    seed_path(p, sizeof p, harness, name);
    FILE *f = fopen(p, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f))
        die(p, strerror(errno));
}

static void put_text(const char *harness, const char *name, const char *text) { put(harness, name, text, strlen(text)); }

static char *slurp(const char *path, size_t *n)
{
    char *t = fz_read_file(path, n);
    if (!t)
        die(path, "cannot read");
    return t;
}

/* Copy a file into the corpus; its seed name is the file's base name. */
static void copy_in(const char *harness, const char *src_root, const char *rel)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", src_root, rel);
    size_t n;
    char *t = slurp(p, &n);
    const char *base = strrchr(rel, '/') ? strrchr(rel, '/') + 1 : rel;
    put(harness, base, t, n);
    free(t);
}

/* A file written by a library writer at a temporary path, moved into the corpus. */
static void take(const char *harness, const char *name, const char *tmp)
{
    size_t n;
    char *t = slurp(tmp, &n);
    put(harness, name, t, n);
    free(t);
    unlink(tmp);
}

/* Bytes with FZ_SEP between two parts, after an optional prefix byte. */
static void put_parts(const char *harness, const char *name, int prefix, const void *a, size_t an, const void *b,
                      size_t bn)
{
    size_t sl = sizeof FZ_SEP - 1, n = (prefix >= 0) + an + (b ? sl + bn : 0);
    uint8_t *buf = malloc(n ? n : 1), *o = buf;
    if (prefix >= 0)
        *o++ = (uint8_t)prefix;
    memcpy(o, a, an);
    o += an;
    if (b) {
        memcpy(o, FZ_SEP, sl);
        o += sl;
        memcpy(o, b, bn);
    }
    put(harness, name, buf, n);
    free(buf);
}

/* ------------------------------------------------------------------ JSON harnesses */

static void seeds_arch(const char *src)
{
    static const char *const files[] = {"configs/fmnist-small.json",     "configs/fmnist-wide.json",
                                        "configs/gpunet/gpunet-0.json",  "configs/gpunet/gpunet-1.json",
                                        "configs/gpunet/gpunet-2.json",  "configs/gpunet/gpunet-d1.json",
                                        "configs/gpunet/gpunet-d2.json", "configs/gpunet/gpunet-p0.json",
                                        "configs/gpunet/gpunet-p1.json"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        copy_in("arch", src, files[i]);
    put_text("arch", "small.json", fz_small_arch_json());
    /* malformed, as in tests/test_arch.c */
    put_text("arch", "bad-truncated.json", "[{\"layer_type\":\"data\",\"img_resolution\":32},{\"layer_type\":\"head\",\"num_in");
    put_text("arch", "bad-empty.json", "");
    put_text("arch", "bad-object.json", "{\"layer_type\":\"data\"}");
    put_text("arch", "bad-chain.json",
             "[{\"layer_type\":\"data\",\"img_resolution\":8},"
             "{\"layer_type\":\"head\",\"num_in_channels\":3,\"num_out_channels\":16},"
             "{\"layer_type\":\"conv\",\"num_in_channels\":32,\"num_out_channels\":16,\"stride\":1,\"kernel_size\":3},"
             "{\"layer_type\":\"tail\",\"num_in_channels\":16,\"num_out_channels\":32,\"num_classes\":10}]");
    put_text("arch", "bad-small-res.json",
             "[{\"layer_type\":\"data\",\"img_resolution\":8},"
             "{\"layer_type\":\"head\",\"num_in_channels\":3,\"num_out_channels\":16},"
             "{\"layer_type\":\"fused_irb\",\"num_in_channels\":16,\"num_out_channels\":16,\"stride\":2,"
             "\"expansion\":1.5,\"kernel_size\":5},"
             "{\"layer_type\":\"tail\",\"num_in_channels\":16,\"num_out_channels\":32,\"num_classes\":10}]");
}

static void seeds_space(void)
{
    put_text("space", "gpunet.json", gn_space_builtin_text("gpunet"));
    put_text("space", "fmnist.json", gn_space_builtin_text("fmnist"));
    put_text("space", "tiny.json",
             "{\"name\": \"tiny\", \"in_channels\": 1, \"classes\": 3, \"resolutions\": [8, 12],"
             " \"stages\": [{\"stage\": 0, \"type\": \"head\", \"act\": [\"relu\", \"swish\"], \"filters\": [8]},"
             " {\"stage\": 1, \"type\": \"irb\", \"stride\": 2, \"kernel\": [3, 5], \"layers\": {\"min\": 0, \"max\": 2},"
             " \"act\": [\"relu\"], \"expansion\": [1, 2.5], \"filters\": {\"min\": 8, \"max\": 16, \"step\": 8},"
             " \"se\": [false, true]}], \"tail\": {\"filters\": [16, 32]}}");
    put_text("space", "bad-no-stages.json", "{\"name\": \"x\", \"in_channels\": 1, \"classes\": 2, \"resolutions\": [8]}");
    put_text("space", "bad-syntax.json", "{\"name\": \"x\", \"stages\": [");
}

static void fake_profile(gn_lat_profile *p, const gn_arch *a, int full)
{
    gn_error err;
    gn_lat_profile_init(p);
    snprintf(p->device.id, sizeof p->device.id, "cpu-fuzz");
    snprintf(p->device.kind, sizeof p->device.kind, "cpu");
    snprintf(p->device.cpu_model, sizeof p->device.cpu_model, "Fuzz CPU");
    p->device.cores = p->device.logical_cpus = p->device.threads = 1;
    snprintf(p->device.backend, sizeof p->device.backend, "dnnl");
    snprintf(p->device.onednn, sizeof p->device.onednn, "3.0");
    snprintf(p->device.gpunas, sizeof p->device.gpunas, "0.2.0");
    p->batch = 1;
    snprintf(p->space, sizeof p->space, "fuzz");
    p->net_opts.runs = p->layer_opts.runs = 5;
    /* full: every layer; else the last body layer (the irb) is missing, with no
     * fallback for its type */
    for (int i = 1; i < a->n_layers; i++) {
        if (i == a->n_layers - 2 && !full)
            continue;
        gn_lat_entry e = {0};
        if (gn_lat_key(a, i, 1, e.key, sizeof e.key, &err))
            die("gn_lat_key", err.msg);
        e.type = a->layers[i].type;
        e.ms = 0.01 * i;
        e.cv = 0.02;
        e.gflop = gn_lat_layer_flops(&a->layers[i], 1) / 1e9;
        e.mb = gn_lat_layer_bytes(&a->layers[i], 1) / 1e6;
        if (gn_lat_profile_add(p, &e, &err))
            die("gn_lat_profile_add", err.msg);
    }
    if (gn_lat_profile_fit_fallback(p, &err))
        die("fit_fallback", err.msg);
    if (!full)
        return;
    p->calibrated = true;
    p->calib.model = GN_LAT_MODEL_PER_TYPE;
    for (int t = 0; t < GN_LAT_NTYPES; t++)
        p->calib.scale[t] = 1.0 + 0.1 * t;
    p->calib.intercept_ms = 0.125;
    p->calib.networks = 30;
    p->calib.fit_mean_abs_pct = 1.5;
    p->calib.fit_max_pct = 4.25;
    p->calib.loo_mean_abs_pct = 2.0;
    p->evaluated = true;
    p->eval = (gn_lat_eval){.networks = 30, .mean_abs_pct = 3.5, .max_pct = 9.0, .raw_mean_abs_pct = 12.5,
                            .raw_max_pct = 40.0, .layers = 240, .missing = 3};
    p->probe_ms = 0.4375;
}

static void seeds_latprofile(void)
{
    gn_arch *a;
    gn_error err;
    if (gn_arch_parse(fz_small_arch_json(), "small.json", &a, &err))
        die("small arch", err.msg);
    gn_lat_profile p;
    char tmp[512];
    fz_path(tmp, sizeof tmp, "profile.json");
    fake_profile(&p, a, 1);
    if (gn_lat_profile_save(&p, tmp, &err))
        die("profile save", err.msg);
    take("latprofile", "full.json", tmp);
    gn_lat_profile_free(&p);
    fake_profile(&p, a, 0);
    if (gn_lat_profile_save(&p, tmp, &err))
        die("profile save", err.msg);
    take("latprofile", "table-only.json", tmp);
    gn_lat_profile_free(&p);
    gn_arch_free(a);
    put_text("latprofile", "bad-format.json", "{\"format\": \"something-else\", \"version\": 1}");
    put_text("latprofile", "bad-array.json", "[");
}

static void seeds_hub(void)
{
    static const struct {
        const char *name;
        int tier;
        double acc, ms;
        const char *dropped;
    } m[] = {{"m-fast", 0, 0.90, 0.10, NULL}, {"m-mid", 1, 0.92, 0.20, NULL},
             {"m-slow", 2, 0.91, 0.40, "slower than m-mid (0.200 ms) and not more accurate"}};
    char buf[8192];
    size_t o = 0;
    o += (size_t)snprintf(buf + o, sizeof buf - o, "{\"format\": \"gpunas-hub\", \"version\": 1, \"models\": [");
    for (int k = 0; k < 2; k++) {
        int first = 1;
        if (k == 1)
            o += (size_t)snprintf(buf + o, sizeof buf - o, "], \"dropped\": [");
        for (int i = 0; i < 3; i++) {
            if ((m[i].dropped != NULL) != k)
                continue;
            o += (size_t)snprintf(
                buf + o, sizeof buf - o,
                "%s{\"name\": \"%s\", \"search\": {\"tier\": %d, \"rank\": 1, \"tier_max_ms\": 1.0, \"trial_id\": %d,"
                " \"store\": \"/x/search.db\"}, \"accuracy\": {\"test_top1\": %g, \"test_top5\": 0.99},"
                " \"latency\": {\"median_ms\": %g, \"p10_ms\": %g, \"p90_ms\": %g, \"threads\": 1,"
                " \"device\": \"cpu test\"}, \"arch\": {\"params\": 1000, \"macs\": 2000}%s%s%s}",
                first ? "" : ", ", m[i].name, m[i].tier, m[i].tier + 1, m[i].acc, m[i].ms, m[i].ms * 0.9,
                m[i].ms * 1.1, m[i].dropped ? ", \"dropped\": \"" : "", m[i].dropped ? m[i].dropped : "",
                m[i].dropped ? "\"" : "");
            first = 0;
        }
    }
    o += (size_t)snprintf(buf + o, sizeof buf - o, "]}\n");
    put("hub", "three.json", buf, o);
    put_text("hub", "empty.json", "{\"format\": \"gpunas-hub\", \"version\": 1, \"models\": [], \"dropped\": []}");
    /* malformed, as in tests/test_hub.c */
    put_text("hub", "bad-cut.json", "{\"format\": \"gpunas-hub\", \"models\": [ {\"name\": ");
    put_text("hub", "bad-fields.json", "{\"format\": \"gpunas-hub\", \"models\": [{\"name\": \"x\"}]}");
}

/* ------------------------------------------------------------------ binary harnesses */

static void seeds_safetensors_and_checkpoint(void)
{
    gn_error err;
    char tmp[512];
    fz_path(tmp, sizeof tmp, "w.safetensors");
    gn_st_writer *w = gn_st_writer_new();
    const float f6[6] = {1, -2, 0.5f, 3e-39f, 1e30f, -0.0f}, one = 42;
    const int64_t s23[2] = {2, 3}, s04[2] = {0, 4}, s1[1] = {1}, s2111[4] = {2, 1, 1, 1};
    const int64_t i1 = 12345;
    if (gn_st_writer_add(w, "a.weight", 2, s23, f6, &err) || gn_st_writer_add(w, "scalar", 0, NULL, &one, &err) ||
        gn_st_writer_add(w, "empty", 2, s04, NULL, &err) || gn_st_writer_add(w, "four_d", 4, s2111, f6, &err) ||
        gn_st_writer_add_i64(w, "bn.num_batches_tracked", 1, s1, &i1, &err) ||
        gn_st_writer_meta(w, "format", "pt", &err) || gn_st_writer_meta(w, "note", "seed \xc3\xa9", &err) ||
        gn_st_writer_write(w, tmp, &err))
        die("safetensors", err.msg);
    gn_st_writer_free(w);
    take("safetensors", "mixed.safetensors", tmp);
    w = gn_st_writer_new();
    if (gn_st_writer_write(w, tmp, &err))
        die("safetensors", err.msg);
    gn_st_writer_free(w);
    take("safetensors", "no-tensors.safetensors", tmp);

    /* the checkpoint harness's run: a checkpoint after one epoch and its weights */
    fz_run *r = fz_the_run();
    gn_optim_set_steps(r->optim, 3);
    gn_net_set_bn_batches(r->net, 3);
    if (gn__ckpt_save(tmp, &r->ctx, 1, &err))
        die("checkpoint", err.msg);
    take("checkpoint", "epoch1.safetensors", tmp);
    if (gn_net_save(r->net, tmp, &err))
        die("weights", err.msg);
    size_t n;
    char *t = slurp(tmp, &n);
    put("safetensors", "weights.safetensors", t, n);
    free(t);
    take("checkpoint", "weights.safetensors", tmp);
    /* malformed, as in tests/test_safetensors.c */
    put("safetensors", "bad-short", "\x08\x00\x00", 3);
    put("safetensors", "bad-hlen", "\xff\xff\xff\xff\x00\x00\x00\x00{}", 10);
    put("safetensors", "bad-json", "\x08\x00\x00\x00\x00\x00\x00\x00{\"a\":{  ", 16);
}

static void seeds_npy(void)
{
    gn_error err;
    char tmp[512];
    fz_path(tmp, sizeof tmp, "a.npy");
    const float v[6] = {1, 2, 3, -4, 0.25f, 1e-40f};
    const int64_t s3[1] = {3}, s23[2] = {2, 3}, s1122[4] = {1, 1, 2, 2}, s05[2] = {0, 5};
    if (gn_npy_write(tmp, 1, s3, v, &err))
        die("npy", err.msg);
    take("npy", "v3.npy", tmp);
    if (gn_npy_write(tmp, 2, s23, v, &err))
        die("npy", err.msg);
    take("npy", "m23.npy", tmp);
    if (gn_npy_write(tmp, 4, s1122, v, &err))
        die("npy", err.msg);
    take("npy", "nchw.npy", tmp);
    if (gn_npy_write(tmp, 2, s05, NULL, &err))
        die("npy", err.msg);
    take("npy", "empty.npy", tmp);
    /* versions 2.0 and 3.0 (u32 header length), other spellings numpy accepts */
    static const char h2[] = "{\"shape\": (2,), \"fortran_order\": False, \"descr\": \"<f4\"}        \n";
    uint8_t buf[256];
    size_t hl = sizeof h2 - 1, o = 0;
    memcpy(buf, "\x93NUMPY\x02\x00", 8);
    o = 8;
    buf[o++] = (uint8_t)hl, buf[o++] = 0, buf[o++] = 0, buf[o++] = 0;
    memcpy(buf + o, h2, hl);
    o += hl;
    memcpy(buf + o, v, 8);
    o += 8;
    put("npy", "v2-dquote.npy", buf, o);
    buf[6] = 3;
    put("npy", "v3-dquote.npy", buf, o);
    /* malformed, as in tests/test_npy_predict.c */
    put("npy", "bad-cut-header.npy", "\x93NUMPY\x01\x00\x76\x00{'descr': '<f4', 'f", 30);
    put("npy", "bad-no-version.npy", "\x93NUMPY\x01", 7);
    static const char f8[] = "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }\n";
    uint8_t b8[128];
    memcpy(b8, "\x93NUMPY\x01\x00", 8);
    b8[8] = (uint8_t)(sizeof f8 - 1), b8[9] = 0;
    memcpy(b8 + 10, f8, sizeof f8 - 1);
    memset(b8 + 10 + sizeof f8 - 1, 0, 8);
    put("npy", "bad-f8.npy", b8, 10 + sizeof f8 - 1 + 8);
}

static uint8_t *gzip_bytes(const uint8_t *data, size_t n, size_t *zn)
{
    uLongf cap = compressBound((uLong)n) + 64;
    uint8_t *z = malloc(cap);
    z_stream s;
    memset(&s, 0, sizeof s);
    if (deflateInit2(&s, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        die("zlib", "deflateInit2");
    s.next_in = (Bytef *)data, s.avail_in = (uInt)n, s.next_out = z, s.avail_out = (uInt)cap;
    if (deflate(&s, Z_FINISH) != Z_STREAM_END)
        die("zlib", "deflate");
    *zn = cap - s.avail_out;
    deflateEnd(&s);
    return z;
}

static void seeds_idx(void)
{
    /* 3 images of 4 x 5 (magic 0x00000803), 3 labels (0x00000801) */
    uint8_t img[16 + 60], lab[8 + 3];
    memcpy(img, "\x00\x00\x08\x03\x00\x00\x00\x03\x00\x00\x00\x04\x00\x00\x00\x05", 16);
    for (int i = 0; i < 60; i++)
        img[16 + i] = (uint8_t)(i * 37);
    memcpy(lab, "\x00\x00\x08\x01\x00\x00\x00\x03\x02\x00\x09", 11);
    put_parts("idx", "raw", 0, img, sizeof img, lab, sizeof lab);
    put_parts("idx", "harness-gzip", 3, img, sizeof img, lab, sizeof lab);
    size_t zi, zl;
    uint8_t *gi = gzip_bytes(img, sizeof img, &zi), *gl = gzip_bytes(lab, sizeof lab, &zl);
    put_parts("idx", "gz-files", 0, gi, zi, gl, zl);
    put_parts("idx", "gz-cut", 0, gi, zi - 6, lab, sizeof lab);
    free(gi);
    free(gl);
    /* malformed: counts disagree, extra byte, bad magic, wide labels (11 classes) */
    uint8_t lab2[8 + 2];
    memcpy(lab2, "\x00\x00\x08\x01\x00\x00\x00\x02\x01\x01", 10);
    put_parts("idx", "bad-count", 0, img, sizeof img, lab2, sizeof lab2);
    uint8_t lab3[8 + 3];
    memcpy(lab3, "\x00\x00\x08\x01\x00\x00\x00\x03\x0a\x00\x01", 11);
    put_parts("idx", "label-10", 0, img, sizeof img, lab3, sizeof lab3);
    put_parts("idx", "bad-magic", 0, lab, sizeof lab, img, sizeof img);
    put_parts("idx", "bad-type", 0, "\x00\x00\x0d\x03\x00\x00\x00\x01", 8, lab, sizeof lab);
}

static void seeds_cifar(void)
{
    uint8_t rec[2 * 3073];
    for (int r = 0; r < 2; r++) {
        rec[r * 3073] = (uint8_t)(r ? 9 : 3);
        for (int i = 1; i < 3073; i++)
            rec[r * 3073 + i] = (uint8_t)(i * 7 + r);
    }
    put("cifar", "one", rec, 3073);
    put("cifar", "two", rec, sizeof rec);
    static const char meta[] = "airplane\nautomobile\nbird\ncat\ndeer\n\ndog\nfrog\nhorse\nship\r\n  truck  \n";
    put_parts("cifar", "one-meta", -1, rec, 3073, meta, sizeof meta - 1);
    put_parts("cifar", "bad-meta-9", -1, rec, 3073, "a\nb\nc\nd\ne\nf\ng\nh\ni\n", 18);
    put("cifar", "bad-cut", rec, 3000);
    uint8_t bad[3073];
    memcpy(bad, rec, 3073);
    bad[0] = 10;
    put("cifar", "bad-label", bad, sizeof bad);
}

/* PNG into memory */
typedef struct {
    uint8_t *p;
    size_t n, cap;
} membuf;

static void png_mem_write(png_structp png, png_bytep data, png_size_t len)
{
    membuf *m = png_get_io_ptr(png);
    if (m->n + len > m->cap) {
        m->cap = (m->n + len) * 2;
        m->p = realloc(m->p, m->cap);
    }
    memcpy(m->p + m->n, data, len);
    m->n += len;
}
static void png_mem_flush(png_structp png) { (void)png; }

static void put_png(const char *name, int w, int h, int color, int depth, int interlace, int trns)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    membuf m = {0};
    if (setjmp(png_jmpbuf(png)))
        die("png", name);
    png_set_write_fn(png, &m, png_mem_write, png_mem_flush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (color == PNG_COLOR_TYPE_PALETTE) {
        png_color pal[4] = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {10, 20, 30}};
        png_set_PLTE(png, info, pal, 4);
        png_byte alpha[1] = {0};
        png_set_tRNS(png, info, alpha, 1, NULL);
    } else if (trns && !(color & PNG_COLOR_MASK_ALPHA)) {
        png_color_16 key = {0, 1, 2, 3, 1};
        png_set_tRNS(png, info, NULL, 0, &key);
    }
    png_write_info(png, info);
    int ch = color == PNG_COLOR_TYPE_RGB ? 3 : color == PNG_COLOR_TYPE_RGBA ? 4 : color == PNG_COLOR_TYPE_GA ? 2 : 1;
    size_t rb = ((size_t)w * (size_t)ch * (size_t)depth + 7) / 8;
    uint8_t *row = malloc(rb);
    int passes = png_set_interlace_handling(png);
    for (int p = 0; p < passes; p++)
        for (int y = 0; y < h; y++) {
            for (size_t i = 0; i < rb; i++)
                row[i] = (uint8_t)(i * 29 + (size_t)y * 7);
            png_write_row(png, row);
        }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(row);
    put("image", name, m.p, m.n);
    free(m.p);
}

static void put_jpeg(const char *name, int w, int h, int comps, int progressive)
{
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    unsigned char *mem = NULL;
    unsigned long n = 0;
    jpeg_mem_dest(&c, &mem, &n);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = comps;
    c.in_color_space = comps == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 50, TRUE);
    if (progressive)
        jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    uint8_t *row = malloc((size_t)w * (size_t)comps);
    while (c.next_scanline < c.image_height) {
        for (int i = 0; i < w * comps; i++)
            row[i] = (uint8_t)(i * 13 + (int)c.next_scanline * 5);
        JSAMPROW rp = row;
        jpeg_write_scanlines(&c, &rp, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    put("image", name, mem, n);
    free(mem);
}

static void seeds_image(void)
{
    put_png("grey8.png", 3, 2, PNG_COLOR_TYPE_GRAY, 8, 0, 0);
    put_png("grey1.png", 9, 3, PNG_COLOR_TYPE_GRAY, 1, 0, 0);
    put_png("grey2-trns.png", 5, 3, PNG_COLOR_TYPE_GRAY, 2, 0, 1);
    put_png("rgb8.png", 4, 3, PNG_COLOR_TYPE_RGB, 8, 0, 0);
    put_png("rgb16-trns.png", 3, 2, PNG_COLOR_TYPE_RGB, 16, 0, 1);
    put_png("rgba16.png", 2, 2, PNG_COLOR_TYPE_RGBA, 16, 0, 0);
    put_png("ga8.png", 2, 3, PNG_COLOR_TYPE_GA, 8, 0, 0);
    put_png("palette-trns.png", 5, 2, PNG_COLOR_TYPE_PALETTE, 2, 0, 1);
    put_png("interlaced.png", 9, 9, PNG_COLOR_TYPE_RGB, 8, 1, 0);
    put_jpeg("grey.jpg", 8, 8, 1, 0);
    put_jpeg("rgb.jpg", 16, 8, 3, 0);
    put_jpeg("progressive.jpg", 9, 7, 3, 1);
    put("image", "bad-not-image", "GIF89a\x01\x00", 8);
    put("image", "bad-empty", "", 0);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s SOURCE_DIR OUT_DIR\n", argv[0]);
        return 2;
    }
    out_root = argv[2];
    mkdir(out_root, 0777);
    seeds_arch(argv[1]);
    seeds_space();
    seeds_latprofile();
    seeds_hub();
    seeds_safetensors_and_checkpoint();
    seeds_npy();
    seeds_idx();
    seeds_cifar();
    seeds_image();
    printf("make_seeds: seeds written under %s\n", out_root);
    return 0;
}
