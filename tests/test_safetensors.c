/* test_safetensors.c — safetensors reader/writer: round trip, atomic write, every
 * malformed-input error, a fuzz pass, and a cross-check against an independent
 * Python reader/writer (json + struct only, run with /usr/bin/python3). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "gpunas/safetensors.h"
#include "testutil.h"

/* ------------------------------------------------------------------ helpers */

static void write_bytes(const char *path, const void *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n)
        assert_int_equal(fwrite(buf, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* A raw safetensors file: header text (padded with spaces to 8) + data bytes. */
static void write_raw(const char *path, const char *header, const void *data, size_t dlen)
{
    size_t hl = strlen(header), pl = (hl + 7) & ~(size_t)7;
    unsigned char *buf = calloc(1, 8 + pl + dlen + 1);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)pl >> (8 * i));
    memcpy(buf + 8, header, hl);
    memset(buf + 8 + hl, ' ', pl - hl);
    if (dlen)
        memcpy(buf + 8 + pl, data, dlen);
    write_bytes(path, buf, 8 + pl + dlen);
    free(buf);
}

static void assert_one_line_has(const gn_error *e, const char *path, const char *want)
{
    if (!strstr(e->msg, want) || (path && !strstr(e->msg, path)) || strchr(e->msg, '\n')) {
        fprintf(stderr, "error text: '%s'\nexpected to contain: '%s' and '%s'\n", e->msg, want,
                path ? path : "");
        fail();
    }
}

/* Open must fail with an error containing `want`. */
static void expect_open_error(const char *path, const char *want)
{
    gn_st_file *f = (gn_st_file *)0x1;
    gn_error e = {{0}};
    int rc = gn_st_open(path, &f, &e);
    assert_int_not_equal(rc, 0);
    assert_null(f);
    assert_one_line_has(&e, path, want);
}

static void expect_raw_error(const char *tag, const char *header, const void *data,
                             size_t dlen, const char *want)
{
    char *p = tu_tmp_path(tag);
    write_raw(p, header, data, dlen);
    expect_open_error(p, want);
    unlink(p);
    free(p);
}

static float val(int k, int64_t j) { return (float)k * 1000.0f + (float)j * 0.25f - 7.0f; }

/* ------------------------------------------------------------------ tests */

/* I64 tensors (num_batches_tracked) next to F32 ones; reading one as the other fails */
static void test_i64(void **state)
{
    (void)state;
    char *p = tu_tmp_path("i64.safetensors");
    gn_error e;
    gn_st_writer *w = gn_st_writer_new();
    const int64_t big[3] = {-5, 1234567890123LL, INT64_MAX}, s3[1] = {3};
    const float f[2] = {1.5f, -2.0f};
    const int64_t s2[1] = {2};
    int64_t scalar = 42;
    assert_int_equal(gn_st_writer_add_copy(w, "a.weight", 1, s2, f, &e), 0);
    assert_int_equal(gn_st_writer_add_i64(w, "a.num_batches_tracked", 0, NULL, &scalar, &e), 0);
    assert_int_equal(gn_st_writer_add_i64(w, "v", 1, s3, big, &e), 0);
    scalar = 7; /* copied: the file still says 42 */
    assert_int_equal(gn_st_writer_write(w, p, &e), 0);
    gn_st_writer_free(w);

    gn_st_file *r;
    assert_int_equal(gn_st_open(p, &r, &e), 0);
    const gn_st_info *t = gn_st_find(r, "a.num_batches_tracked");
    assert_non_null(t);
    assert_int_equal(t->dtype, GN_ST_I64);
    assert_int_equal(t->ndim, 0);
    assert_int_equal(t->numel, 1);
    int64_t got = 0, gv[3];
    assert_int_equal(gn_st_load_i64(r, "a.num_batches_tracked", 1, &got, &e), 0);
    assert_int_equal(got, 42);
    assert_int_equal(gn_st_load_i64(r, "v", 3, gv, &e), 0);
    assert_memory_equal(gv, big, sizeof big);
    float fv[2];
    assert_int_equal(gn_st_load(r, "a.weight", 1, s2, fv, &e), 0);
    assert_int_equal(gn_st_find(r, "a.weight")->dtype, GN_ST_F32);
    /* dtype mismatch both ways, one line naming both */
    assert_int_not_equal(gn_st_load_numel(r, "v", 3, fv, &e), 0);
    assert_non_null(strstr(e.msg, "tensor 'v': dtype I64 in file, expected F32"));
    assert_int_not_equal(gn_st_load_i64(r, "a.weight", 2, gv, &e), 0);
    assert_non_null(strstr(e.msg, "tensor 'a.weight': dtype F32 in file, expected I64"));
    assert_int_not_equal(gn_st_load_i64(r, "v", 2, gv, &e), 0);
    assert_non_null(strstr(e.msg, "expected 2 elements"));
    gn_st_close(r);
    unlink(p);
    free(p);
}

static void test_round_trip(void **state)
{
    (void)state;
    char *p = tu_tmp_path("rt.safetensors");
    static const int64_t s0[4] = {2, 3, 4, 5}, s1[2] = {7, 3}, s2[1] = {11}, s4[3] = {2, 0, 3};
    float *d0 = malloc(120 * sizeof(float)), d1[21], d2[11], d3 = 2.5f;
    for (int j = 0; j < 120; j++)
        d0[j] = val(0, j);
    for (int j = 0; j < 21; j++)
        d1[j] = val(1, j);
    for (int j = 0; j < 11; j++)
        d2[j] = val(2, j);

    gn_error e = {{0}};
    gn_st_writer *w = gn_st_writer_new();
    assert_non_null(w);
    assert_int_equal(gn_st_writer_add(w, "layers.2.conv.weight", 4, s0, d0, &e), 0);
    assert_int_equal(gn_st_writer_add(w, "b.linear", 2, s1, d1, &e), 0);
    assert_int_equal(gn_st_writer_add_copy(w, "a.vec", 1, s2, d2, &e), 0);
    assert_int_equal(gn_st_writer_add_copy(w, "loss", 0, NULL, &d3, &e), 0);
    assert_int_equal(gn_st_writer_add(w, "empty", 3, s4, NULL, &e), 0);
    assert_int_equal(gn_st_writer_meta(w, "format", "pt", &e), 0);
    assert_int_equal(gn_st_writer_meta(w, "arch", "0.65ms.json", &e), 0);
    assert_int_equal(gn_st_writer_meta(w, "format", "gpunas", &e), 0); /* replaces */
    assert_int_equal(gn_st_writer_count(w), 5);
    d2[0] = 12345.0f; /* add_copy took a copy */
    assert_int_equal(gn_st_writer_write(w, p, &e), 0);
    gn_st_writer_free(w);

    /* no temp file left, standard layout on disk */
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    assert_int_not_equal(access(tmp, F_OK), 0);
    size_t len = 0;
    char *raw = tu_read_file(p, &len);
    assert_non_null(raw);
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++)
        hl |= (uint64_t)(unsigned char)raw[i] << (8 * i);
    assert_int_equal(hl % 8, 0);
    assert_int_equal(len, 8 + hl + (120 + 21 + 11 + 1) * 4);
    assert_int_equal(raw[8], '{');
    free(raw);

    gn_st_file *f = NULL;
    assert_int_equal(gn_st_open(p, &f, &e), 0);
    assert_string_equal(gn_st_path(f), p);
    assert_int_equal(gn_st_count(f), 5);
    /* data order = insertion order (the empty tensor sits at the end offset) */
    assert_string_equal(gn_st_at(f, 0)->name, "layers.2.conv.weight");
    assert_string_equal(gn_st_at(f, 1)->name, "b.linear");
    assert_string_equal(gn_st_at(f, 2)->name, "a.vec");
    assert_null(gn_st_at(f, 5));
    assert_null(gn_st_find(f, "nope"));
    const gn_st_info *t = gn_st_find(f, "layers.2.conv.weight");
    assert_non_null(t);
    assert_int_equal(t->ndim, 4);
    assert_int_equal(t->shape[3], 5);
    assert_int_equal(t->numel, 120);
    assert_int_equal(t->begin, 0);
    assert_int_equal(t->end, 480);
    t = gn_st_find(f, "loss");
    assert_non_null(t);
    assert_int_equal(t->ndim, 0);
    assert_int_equal(t->numel, 1);
    t = gn_st_find(f, "empty");
    assert_non_null(t);
    assert_int_equal(t->numel, 0);

    float *o0 = calloc(120, sizeof(float)), o1[21], o2[11], o3 = 0;
    assert_int_equal(gn_st_load(f, "layers.2.conv.weight", 4, s0, o0, &e), 0);
    assert_memory_equal(o0, d0, 120 * sizeof(float));
    assert_int_equal(gn_st_load(f, "b.linear", 2, s1, o1, &e), 0);
    assert_memory_equal(o1, d1, sizeof d1);
    assert_int_equal(gn_st_load_numel(f, "a.vec", 11, o2, &e), 0);
    assert_true(o2[0] == val(2, 0));
    assert_true(o2[10] == val(2, 10));
    assert_int_equal(gn_st_load(f, "loss", 0, NULL, &o3, &e), 0);
    assert_true(o3 == 2.5f);
    assert_int_equal(gn_st_load(f, "empty", 3, s4, NULL, &e), 0);

    assert_int_equal(gn_st_meta_count(f), 2);
    assert_string_equal(gn_st_meta(f, "format"), "gpunas");
    assert_string_equal(gn_st_meta(f, "arch"), "0.65ms.json");
    assert_null(gn_st_meta(f, "nope"));
    const char *k, *v;
    assert_int_equal(gn_st_meta_at(f, 0, &k, &v), 0);
    assert_int_not_equal(gn_st_meta_at(f, 2, &k, &v), 0);

    /* missing tensor and shape mismatch on load */
    assert_int_not_equal(gn_st_load(f, "zzz", 1, s2, o2, &e), 0);
    assert_one_line_has(&e, p, "tensor 'zzz': missing");
    const gn_st_info *ti = NULL;
    assert_int_not_equal(gn_st_get(f, "zzz", &ti, &e), 0);
    assert_one_line_has(&e, p, "missing");
    static const int64_t wrong[2] = {3, 7};
    assert_int_not_equal(gn_st_load(f, "b.linear", 2, wrong, o1, &e), 0);
    assert_one_line_has(&e, p, "tensor 'b.linear': shape mismatch: [7,3] in file, expected [3,7]");
    assert_int_not_equal(gn_st_load(f, "b.linear", 1, s1, o1, &e), 0);
    assert_one_line_has(&e, p, "shape mismatch");
    assert_int_not_equal(gn_st_load_numel(f, "b.linear", 20, o1, &e), 0);
    assert_one_line_has(&e, p, "expected 20 elements");
    gn_st_close(f);

    free(o0);
    free(d0);
    unlink(p);
    free(p);
}

static void test_overwrite_atomic(void **state)
{
    (void)state;
    char *p = tu_tmp_path("ow.safetensors");
    gn_error e = {{0}};
    float a[3] = {1, 2, 3}, b[2] = {9, 8};
    int64_t sa[1] = {3}, sb[1] = {2};

    gn_st_writer *w = gn_st_writer_new();
    assert_int_equal(gn_st_writer_add(w, "x", 1, sa, a, &e), 0);
    assert_int_equal(gn_st_writer_write(w, p, &e), 0);
    gn_st_writer_free(w);

    /* A stale .tmp from a crashed writer is simply replaced. */
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    assert_int_equal(tu_write_file(tmp, "garbage from a crashed write"), 0);

    /* Keep a reader open on the old file while it is replaced. */
    gn_st_file *old = NULL;
    assert_int_equal(gn_st_open(p, &old, &e), 0);

    w = gn_st_writer_new();
    assert_int_equal(gn_st_writer_add(w, "x", 1, sb, b, &e), 0);
    assert_int_equal(gn_st_writer_write(w, p, &e), 0);
    gn_st_writer_free(w);
    assert_int_not_equal(access(tmp, F_OK), 0);

    float o[3] = {0};
    assert_int_equal(gn_st_load(old, "x", 1, sa, o, &e), 0); /* old inode still readable */
    assert_true(o[2] == 3.0f);
    gn_st_close(old);

    gn_st_file *f = NULL;
    assert_int_equal(gn_st_open(p, &f, &e), 0);
    assert_int_equal(gn_st_load(f, "x", 1, sb, o, &e), 0);
    assert_true(o[0] == 9.0f && o[1] == 8.0f);
    gn_st_close(f);

    /* Writing into a missing folder fails cleanly and names the temp file. */
    char bad[4096];
    snprintf(bad, sizeof bad, "%s.nodir/out.safetensors", p);
    w = gn_st_writer_new();
    assert_int_equal(gn_st_writer_add(w, "x", 1, sb, b, &e), 0);
    assert_int_not_equal(gn_st_writer_write(w, bad, &e), 0);
    assert_one_line_has(&e, "out.safetensors.tmp", "cannot create");
    gn_st_writer_free(w);
    assert_int_not_equal(access(bad, F_OK), 0);

    unlink(p);
    free(p);
}

static void test_writer_errors(void **state)
{
    (void)state;
    gn_error e = {{0}};
    float d[4] = {0};
    int64_t s[5] = {1, 1, 1, 1, 1}, neg[2] = {2, -1}, huge[4] = {INT64_MAX, 2, 2, 2};
    gn_st_writer *w = gn_st_writer_new();
    assert_int_equal(gn_st_writer_add(w, "a", 1, s, d, &e), 0);
    assert_int_not_equal(gn_st_writer_add(w, "a", 1, s, d, &e), 0);
    assert_one_line_has(&e, NULL, "duplicate tensor name 'a'");
    assert_int_not_equal(gn_st_writer_add(w, "", 1, s, d, &e), 0);
    assert_one_line_has(&e, NULL, "empty tensor name");
    assert_int_not_equal(gn_st_writer_add(w, "__metadata__", 1, s, d, &e), 0);
    assert_one_line_has(&e, NULL, "reserved");
    assert_int_not_equal(gn_st_writer_add(w, "r5", 5, s, d, &e), 0);
    assert_one_line_has(&e, NULL, "rank 5 not supported");
    assert_int_not_equal(gn_st_writer_add(w, "neg", 2, neg, d, &e), 0);
    assert_one_line_has(&e, NULL, "invalid shape [2,-1]");
    assert_int_not_equal(gn_st_writer_add(w, "huge", 4, huge, d, &e), 0);
    assert_one_line_has(&e, NULL, "invalid shape");
    assert_int_not_equal(gn_st_writer_add(w, "nul", 1, s, NULL, &e), 0);
    assert_one_line_has(&e, NULL, "NULL data");
    assert_int_not_equal(gn_st_writer_add(w, "bad\xff", 1, s, d, &e), 0);
    assert_one_line_has(&e, NULL, "UTF-8");
    assert_int_equal(gn_st_writer_count(w), 1);
    gn_st_writer_free(w);
}

static void test_malformed(void **state)
{
    (void)state;
    unsigned char d16[16] = {0};

    /* truncated file: shorter than the 8-byte length */
    char *p = tu_tmp_path("short.safetensors");
    write_bytes(p, "\x10\x00\x00", 3);
    expect_open_error(p, "truncated file");
    write_bytes(p, "", 0);
    expect_open_error(p, "truncated file");

    /* header length beyond the file size */
    unsigned char hb[18] = {0xe8, 0x03, 0, 0, 0, 0, 0, 0, '{', '}'};
    write_bytes(p, hb, sizeof hb);
    expect_open_error(p, "header length 1000 is beyond the file size (18 bytes");
    unsigned char hmax[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{', '}'};
    write_bytes(p, hmax, sizeof hmax);
    expect_open_error(p, "is beyond the file size");
    unsigned char hzero[8] = {0};
    write_bytes(p, hzero, sizeof hzero);
    expect_open_error(p, "header length is 0");
    unlink(p);
    free(p);

    /* missing file, folder */
    char *gone = tu_tmp_path("does-not-exist.safetensors");
    expect_open_error(gone, "cannot open");
    free(gone);
    const char *tmpdir = getenv("GPUNAS_TMP");
    if (tmpdir)
        expect_open_error(tmpdir, "not a regular file");

    /* malformed JSON, with jansson's line and column */
    expect_raw_error("json1.st", "{\"a\": {\"dtype\": \"F32\",", NULL, 0,
                     "malformed JSON header at line 1 column");
    expect_raw_error("json2.st", "{\n\"a\": [1,2,,]}", NULL, 0,
                     "malformed JSON header at line 2 column");
    expect_raw_error("json3.st", "[1,2,3]", NULL, 0, "top level is not an object");
    expect_raw_error("json4.st", "{\"a\":1} trailing", NULL, 0, "malformed JSON header");

    /* dtype */
    expect_raw_error("dt1.st", "{\"w\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}",
                     d16, 4, "tensor 'w': unsupported dtype 'F16'");
    expect_raw_error("dt2.st", "{\"w\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                     d16, 8, "unsupported dtype 'I32'");
    expect_raw_error("dt4.st", "{\"w\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                     d16, 8, "shape [2] of I64 needs 16");
    expect_raw_error("dt3.st", "{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", d16, 8,
                     "tensor 'w': missing 'dtype'");

    /* shape */
    expect_raw_error("sh1.st",
                     "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,2],\"data_offsets\":[0,8]}}",
                     d16, 8, "tensor 'w': rank 5 not supported");
    expect_raw_error("sh2.st", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}",
                     d16, 8, "shape[0] is not a non-negative integer");
    expect_raw_error("sh3.st", "{\"w\":{\"dtype\":\"F32\",\"shape\":\"2\",\"data_offsets\":[0,8]}}",
                     d16, 8, "'shape' is not an array");
    expect_raw_error("sh4.st",
                     "{\"w\":{\"dtype\":\"F32\",\"shape\":[9223372036854775807,4],"
                     "\"data_offsets\":[0,8]}}",
                     d16, 8, "is too large");

    /* data_offsets */
    expect_raw_error("off1.st", "{\"w\":{\"dtype\":\"F32\",\"shape\":[100],\"data_offsets\":[0,400]}}",
                     d16, 16, "tensor 'w': data_offsets [0,400] out of range");
    expect_raw_error("off2.st", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}",
                     d16, 16, "out of range: begin > end");
    expect_raw_error("off3.st", "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}",
                     d16, 16, "tensor 'w': data_offsets [0,8] span 8 bytes, but shape [3] of F32 "
                     "needs 12");
    expect_raw_error("off4.st",
                     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                     d16, 16, "tensor 'b': data_offsets [4,12] overlap tensor 'a' [0,8]");
    expect_raw_error("off5.st",
                     "{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
                     "\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
                     d16, 16, "overlap");
    expect_raw_error("off6.st", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}",
                     d16, 16, "'data_offsets' is not an array of two");
    expect_raw_error("off7.st", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", d16, 16,
                     "missing 'data_offsets'");
    expect_raw_error("off8.st",
                     "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8.0]}}", d16, 16,
                     "'data_offsets' is not an array of two");

    /* duplicate names */
    expect_raw_error("dup.st",
                     "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                     "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                     d16, 8, "duplicate name 'a'");

    /* entries and metadata of the wrong type */
    expect_raw_error("ent.st", "{\"w\":[1,2]}", NULL, 0, "tensor 'w': header entry is not");
    expect_raw_error("meta1.st", "{\"__metadata__\":{\"k\":3}}", NULL, 0,
                     "'__metadata__' key 'k': value is not a string");
    expect_raw_error("meta2.st", "{\"__metadata__\":[]}", NULL, 0,
                     "'__metadata__' is not a JSON object");

    /* valid odd cases: empty header object, zero-size tensors sharing an offset, gaps */
    char *q = tu_tmp_path("ok.st");
    gn_st_file *f = NULL;
    gn_error e = {{0}};
    write_raw(q, "{}", NULL, 0);
    assert_int_equal(gn_st_open(q, &f, &e), 0);
    assert_int_equal(gn_st_count(f), 0);
    gn_st_close(f);
    write_raw(q,
              "{\"z1\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
              "\"z2\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[4,4]},"
              "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"g\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}",
              d16, 16);
    assert_int_equal(gn_st_open(q, &f, &e), 0);
    assert_int_equal(gn_st_count(f), 4);
    gn_st_close(f);
    unlink(q);
    free(q);
}

/* Truncations and random byte corruptions of a valid file: open/load must either
 * succeed or fail with a one-line message, never crash (run under ASan/UBSan too). */
static void test_fuzz(void **state)
{
    (void)state;
    char *p = tu_tmp_path("fz-src.safetensors"), *q = tu_tmp_path("fz.safetensors");
    gn_error e = {{0}};
    float d[24];
    for (int i = 0; i < 24; i++)
        d[i] = (float)i;
    int64_t s1[2] = {2, 3}, s2[1] = {18};
    gn_st_writer *w = gn_st_writer_new();
    assert_int_equal(gn_st_writer_add(w, "alpha", 2, s1, d, &e), 0);
    assert_int_equal(gn_st_writer_add(w, "beta", 1, s2, d + 6, &e), 0);
    assert_int_equal(gn_st_writer_meta(w, "k", "v", &e), 0);
    assert_int_equal(gn_st_writer_write(w, p, &e), 0);
    gn_st_writer_free(w);
    size_t len = 0;
    unsigned char *good = (unsigned char *)tu_read_file(p, &len);
    assert_non_null(good);
    unsigned char *buf = malloc(len);

    int opened = 0, failed = 0;
    for (size_t cut = 0; cut < len; cut++) {
        write_bytes(q, good, cut);
        gn_st_file *f = NULL;
        if (gn_st_open(q, &f, &e) == 0) {
            opened++;
            gn_st_close(f);
        } else {
            failed++;
            assert_null(strchr(e.msg, '\n'));
        }
    }
    assert_true(failed > 0);
    srand(12345);
    float out[32];
    for (int it = 0; it < 3000; it++) {
        memcpy(buf, good, len);
        int nflip = 1 + rand() % 4;
        for (int k = 0; k < nflip; k++) {
            size_t pos = (size_t)rand() % len;
            /* bias towards the header, where the parsing happens */
            if (rand() % 4 != 0)
                pos = (size_t)rand() % (len < 200 ? len : 200);
            buf[pos] = (unsigned char)rand();
        }
        write_bytes(q, buf, len);
        gn_st_file *f = NULL;
        if (gn_st_open(q, &f, &e) == 0) {
            opened++;
            for (int i = 0; i < gn_st_count(f); i++) {
                const gn_st_info *t = gn_st_at(f, i);
                if (t->numel <= 32)
                    (void)gn_st_load_numel(f, t->name, t->numel, out, &e);
            }
            (void)gn_st_load(f, "alpha", 2, s1, out, &e);
            gn_st_close(f);
        } else {
            failed++;
            assert_null(strchr(e.msg, '\n'));
            assert_true(strlen(e.msg) > 0);
        }
    }
    assert_true(opened > 0);
    free(buf);
    free(good);
    unlink(p);
    unlink(q);
    free(p);
    free(q);
}

/* ------------------------------------------------------------ python cross-check */

static const char *PY_SCRIPT =
    "import json, struct, sys\n"
    "def read(path):\n"
    "    b = open(path, 'rb').read()\n"
    "    (n,) = struct.unpack('<Q', b[:8])\n"
    "    hdr = json.loads(b[8:8 + n].decode('utf-8'))\n"
    "    data = b[8 + n:]\n"
    "    meta = hdr.pop('__metadata__', {})\n"
    "    out = {}\n"
    "    spans = []\n"
    "    for k, v in hdr.items():\n"
    "        assert v['dtype'] == 'F32', k\n"
    "        s, e = v['data_offsets']\n"
    "        cnt = 1\n"
    "        for d in v['shape']: cnt *= d\n"
    "        assert e - s == 4 * cnt, k\n"
    "        out[k] = (v['shape'], struct.unpack('<%df' % cnt, data[s:e]))\n"
    "        spans.append((s, e))\n"
    "    spans.sort()\n"
    "    pos = 0\n"
    "    for s, e in spans:\n"
    "        assert s == pos, 'not contiguous'\n"
    "        pos = e\n"
    "    assert pos == len(data), 'buffer not fully covered'\n"
    "    return n, meta, out\n"
    "def val(k, j): return k * 1000.0 + j * 0.25 - 7.0\n"
    "mode, path = sys.argv[1], sys.argv[2]\n"
    "if mode == 'check':\n"
    "    n, meta, t = read(path)\n"
    "    assert (8 + n) % 8 == 0, 'header not 8-aligned'\n"
    "    assert meta == {'tool': 'gpunas', 'note': 'caf\\u00e9 \"q\"'}, meta\n"
    "    assert list(t) == ['t0', 't1', 'scalar'], list(t)\n"
    "    assert t['t0'][0] == [3, 4], t['t0'][0]\n"
    "    assert t['t1'][0] == [1, 2, 1, 5]\n"
    "    assert t['scalar'][0] == []\n"
    "    assert list(t['t0'][1]) == [val(0, j) for j in range(12)]\n"
    "    assert list(t['t1'][1]) == [val(1, j) for j in range(10)]\n"
    "    assert t['scalar'][1] == (-0.5,)\n"
    "    try:\n"
    "        from safetensors.numpy import load_file\n"
    "        import numpy as np\n"
    "        d = load_file(path)\n"
    "        assert np.array_equal(d['t0'].ravel(), np.array([val(0, j) for j in range(12)], 'f4'))\n"
    "        print('cross-read with the safetensors package: ok')\n"
    "    except ImportError:\n"
    "        print('safetensors package not available; json+struct reader only')\n"
    "    print('python reader: ok')\n"
    "else:\n"
    "    # write a file the way the reference implementation lays it out: sorted names,\n"
    "    # contiguous data, header padded with spaces\n"
    "    tensors = {'zeta': ([2, 2], [val(5, j) for j in range(4)]),\n"
    "               'alpha': ([3], [val(6, j) for j in range(3)])}\n"
    "    hdr = {'__metadata__': {'format': 'pt'}}\n"
    "    blob = b''\n"
    "    for k in sorted(tensors):\n"
    "        sh, v = tensors[k]\n"
    "        raw = struct.pack('<%df' % len(v), *v)\n"
    "        hdr[k] = {'dtype': 'F32', 'shape': sh, 'data_offsets': [len(blob), len(blob) + len(raw)]}\n"
    "        blob += raw\n"
    "    h = json.dumps(hdr, separators=(',', ':')).encode()\n"
    "    h += b' ' * ((8 - len(h) % 8) % 8)\n"
    "    open(path, 'wb').write(struct.pack('<Q', len(h)) + h + blob)\n";

static int run_py(const char *script, const char *mode, const char *path)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' %s '%s'", script, mode, path);
    int st = system(cmd);
    if (st == -1 || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

static void test_python_cross(void **state)
{
    (void)state;
    if (access("/usr/bin/python3", X_OK) != 0) {
        fprintf(stderr, "/usr/bin/python3 not found; skipping the Python cross-check\n");
        skip();
    }
    char *script = tu_tmp_path("st_check.py");
    assert_int_equal(tu_write_file(script, PY_SCRIPT), 0);

    /* C writes, Python reads */
    char *p = tu_tmp_path("py-in.safetensors");
    gn_error e = {{0}};
    float a[12], b[10], sc = -0.5f;
    for (int j = 0; j < 12; j++)
        a[j] = val(0, j);
    for (int j = 0; j < 10; j++)
        b[j] = val(1, j);
    int64_t sa[2] = {3, 4}, sb[4] = {1, 2, 1, 5};
    gn_st_writer *w = gn_st_writer_new();
    assert_int_equal(gn_st_writer_add(w, "t0", 2, sa, a, &e), 0);
    assert_int_equal(gn_st_writer_add(w, "t1", 4, sb, b, &e), 0);
    assert_int_equal(gn_st_writer_add(w, "scalar", 0, NULL, &sc, &e), 0);
    assert_int_equal(gn_st_writer_meta(w, "tool", "gpunas", &e), 0);
    assert_int_equal(gn_st_writer_meta(w, "note", "caf\xc3\xa9 \"q\"", &e), 0);
    assert_int_equal(gn_st_writer_write(w, p, &e), 0);
    gn_st_writer_free(w);
    assert_int_equal(run_py(script, "check", p), 0);

    /* Python writes, C reads */
    char *q = tu_tmp_path("py-out.safetensors");
    assert_int_equal(run_py(script, "write", q), 0);
    gn_st_file *f = NULL;
    assert_int_equal(gn_st_open(q, &f, &e), 0);
    assert_int_equal(gn_st_count(f), 2);
    assert_string_equal(gn_st_at(f, 0)->name, "alpha"); /* data order */
    assert_string_equal(gn_st_meta(f, "format"), "pt");
    float z[4], al[3];
    int64_t sz[2] = {2, 2}, sal[1] = {3};
    assert_int_equal(gn_st_load(f, "zeta", 2, sz, z, &e), 0);
    assert_int_equal(gn_st_load(f, "alpha", 1, sal, al, &e), 0);
    for (int j = 0; j < 4; j++)
        assert_true(z[j] == val(5, j));
    for (int j = 0; j < 3; j++)
        assert_true(al[j] == val(6, j));
    gn_st_close(f);

    unlink(p);
    unlink(q);
    unlink(script);
    free(p);
    free(q);
    free(script);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),    cmocka_unit_test(test_i64),    cmocka_unit_test(test_overwrite_atomic),
        cmocka_unit_test(test_writer_errors), cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_fuzz),          cmocka_unit_test(test_python_cross),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
