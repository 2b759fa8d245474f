/*
 * dataset_idx.c — IDX reader (MNIST, Fashion-MNIST), gzip-compressed or raw.
 *
 * Design
 *   Files go through zlib's gzread, which reads .gz and plain files alike (gzdirect tells
 *   which), so the same code serves "train-images-idx3-ubyte.gz" and an unpacked copy.
 *   IDX layout: magic 00 00 TYPE NDIMS (big-endian), NDIMS big-endian uint32 sizes, then
 *   the data.  Only unsigned-byte (TYPE 0x08) images with 3 dimensions (n, rows, cols)
 *   and labels with 1 dimension are accepted.
 *
 *   The header is trusted only after the data proves it: the body is read into a buffer
 *   that grows as data arrives (never sized from the header alone), so a header that
 *   claims 2^31 images in a 100-byte file fails with "truncated: expected N bytes, got
 *   M" instead of a huge allocation.  Extra bytes after the data are an error too (a
 *   wrong file, not something to ignore).  Sizes in messages are of the uncompressed
 *   stream.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "data/data_internal.h"

typedef struct {
    gzFile g;
    const char *path;
    uint64_t got; /* uncompressed bytes read so far */
} idx_src;

static int src_open(idx_src *s, const char *path, gn_error *err)
{
    s->path = path;
    s->got = 0;
    errno = 0;
    s->g = gzopen(path, "rb");
    if (!s->g)
        return gn_error_set(err, "%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
    gzbuffer(s->g, 1 << 17);
    return 0;
}

/* Reads up to n bytes; *nread < n only at the end of the stream.  A damaged gzip stream
 * (bad header, bad data, CRC mismatch, cut-off member) is an error. */
static int src_read(idx_src *s, void *buf, size_t n, size_t *nread, gn_error *err)
{
    size_t done = 0;
    while (done < n) {
        size_t want = n - done;
        if (want > (1u << 30))
            want = 1u << 30;
        int r = gzread(s->g, (char *)buf + done, (unsigned)want);
        if (r < 0 || r == 0) {
            int errnum = Z_OK;
            const char *msg = gzerror(s->g, &errnum);
            if (errnum == Z_ERRNO)
                return gn_error_set(err, "%s: read error: %s", s->path, strerror(errno));
            if (errnum != Z_OK)
                return gn_error_set(err, "%s: gzip data corrupt: %s", s->path,
                                    errnum == Z_BUF_ERROR ? "unexpected end of compressed data" : msg);
            if (r < 0)
                return gn_error_set(err, "%s: read error", s->path);
            break;
        }
        done += (size_t)r;
    }
    s->got += done;
    *nread = done;
    return 0;
}

/* Counts the rest of the stream (for the "got M bytes" of an oversize file). */
static int src_drain(idx_src *s, gn_error *err)
{
    char tmp[1 << 14];
    size_t r;
    do {
        if (src_read(s, tmp, sizeof tmp, &r, err))
            return -1;
    } while (r == sizeof tmp);
    return 0;
}

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

static const char *kind_of(gzFile g) { return gzdirect(g) ? "" : " (uncompressed)"; }

/* Reads one IDX file with `ndims` dimensions into dims[] and a malloc'd body. */
static int idx_read(const char *path, int ndims, const char *what, uint32_t *dims, uint8_t **body,
                    gn_error *err)
{
    idx_src s;
    uint8_t hdr[16];
    size_t hlen = 4 + 4 * (size_t)ndims, r;
    *body = NULL;
    if (src_open(&s, path, err))
        return -1;
    int rc = -1;
    uint8_t *buf = NULL;
    if (src_read(&s, hdr, 4, &r, err))
        goto out;
    uint32_t want_magic = 0x0800u | (uint32_t)ndims;
    if (r < 4) {
        gn_error_set(err, "%s: truncated: expected at least %zu bytes, got %zu%s", path, hlen, r, kind_of(s.g));
        goto out;
    }
    uint32_t magic = be32(hdr);
    if (magic != want_magic) {
        if (hdr[0] == 0 && hdr[1] == 0 && hdr[2] != 0x08 && hdr[3] == ndims)
            gn_error_set(err, "%s: IDX data type 0x%02x not supported (only unsigned byte, 0x08)", path, hdr[2]);
        else
            gn_error_set(err, "%s: bad magic 0x%08x (expected 0x%08x: IDX unsigned-byte %s, %d dimension%s)", path,
                         magic, want_magic, what, ndims, ndims > 1 ? "s" : "");
        goto out;
    }
    if (src_read(&s, hdr + 4, hlen - 4, &r, err))
        goto out;
    if (r < hlen - 4) {
        gn_error_set(err, "%s: truncated: expected at least %zu bytes, got %zu%s", path, hlen, 4 + r,
                     kind_of(s.g));
        goto out;
    }
    uint64_t count = 1;
    for (int i = 0; i < ndims; i++) {
        dims[i] = be32(hdr + 4 + 4 * i);
        if (dims[i] == 0 || dims[i] > (i == 0 ? (uint32_t)INT_MAX : 65535u)) {
            gn_error_set(err, "%s: dimension %d is %u (allowed 1..%u)", path, i, dims[i],
                         i == 0 ? (unsigned)INT_MAX : 65535u);
            goto out;
        }
        count *= dims[i];
    }
    /* dims[0] < 2^31, others < 2^16 each and ndims <= 3: count < 2^63 */
    uint64_t expected = hlen + count;
    size_t cap = count < ((size_t)1 << 24) ? (size_t)count : (size_t)1 << 24, have = 0;
    buf = malloc(cap ? cap : 1);
    if (!buf) {
        gn_error_set(err, "%s: out of memory", path);
        goto out;
    }
    for (;;) {
        if (src_read(&s, buf + have, cap - have, &r, err))
            goto out;
        have += r;
        if (have < cap || (uint64_t)have == count)
            break;
        size_t ncap = (uint64_t)cap * 2 < count ? cap * 2 : (size_t)count;
        uint8_t *nb = realloc(buf, ncap);
        if (!nb) {
            gn_error_set(err, "%s: out of memory (%zu bytes)", path, ncap);
            goto out;
        }
        buf = nb, cap = ncap;
    }
    if ((uint64_t)have < count) {
        gn_error_set(err, "%s: truncated: expected %llu bytes, got %llu%s", path, (unsigned long long)expected,
                     (unsigned long long)s.got, kind_of(s.g));
        goto out;
    }
    if (src_drain(&s, err))
        goto out;
    if (s.got != expected) {
        gn_error_set(err, "%s: size mismatch: expected %llu bytes for the header's dimensions, got %llu%s", path,
                     (unsigned long long)expected, (unsigned long long)s.got, kind_of(s.g));
        goto out;
    }
    *body = buf;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    gzclose(s.g);
    return rc;
}

int gn__idx_load(const char *images_path, const char *labels_path, int classes, gn_dataset **out, gn_error *err)
{
    uint32_t idim[3], ldim[1];
    uint8_t *pix = NULL, *lab = NULL;
    *out = NULL;
    if (idx_read(images_path, 3, "images", idim, &pix, err))
        return -1;
    if (idx_read(labels_path, 1, "labels", ldim, &lab, err)) {
        free(pix);
        return -1;
    }
    int rc = -1;
    if (idim[0] != ldim[0]) {
        gn_error_set(err, "%s: dimension mismatch: %u images but %s has %u labels", images_path, idim[0],
                     labels_path, ldim[0]);
        goto fail;
    }
    int n = (int)idim[0], maxl = 0;
    for (int i = 0; i < n; i++) {
        if (classes > 0 && lab[i] >= classes) {
            gn_error_set(err, "%s: record %d: label %d out of range [0, %d)", labels_path, i, lab[i], classes);
            goto fail;
        }
        if (lab[i] > maxl)
            maxl = lab[i];
    }
    gn_dataset *d = gn__dataset_new(n, 1, (int)idim[1], (int)idim[2], classes > 0 ? classes : maxl + 1, pix,
                                    images_path, err);
    pix = NULL;
    if (!d)
        goto fail;
    for (int i = 0; i < n; i++)
        d->labels[i] = lab[i];
    gn__dataset_stats(d);
    *out = d;
    rc = 0;
fail:
    free(pix);
    free(lab);
    return rc;
}

int gn_dataset_load_idx(const char *images_path, const char *labels_path, gn_dataset **out, gn_error *err)
{
    if (!out)
        return gn_error_set(err, "IDX load: NULL output");
    *out = NULL;
    if (!images_path || !labels_path)
        return gn_error_set(err, "IDX load: NULL path");
    return gn__idx_load(images_path, labels_path, 0, out, err);
}
