/*
 * npy.c — float32 .npy read and write (format and rules in gpunas/npy.h).
 *
 * Reading takes the header in one read, parses the dict literal with a small
 * hand-written scanner (three known keys, any order), checks the data size against
 * the file size before allocating (so a header claiming a huge shape cannot make us
 * allocate more than the file holds), then reads the data in one go.
 */
#include "gpunas/npy.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fs_atomic.h"
#include "util/fd_io.h"

static const unsigned char MAGIC[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};

static int host_big_endian(void)
{
    const uint32_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 0;
}

static void swap_floats(float *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char b[4], t;
        memcpy(b, &p[i], 4);
        t = b[0], b[0] = b[3], b[3] = t;
        t = b[1], b[1] = b[2], b[2] = t;
        memcpy(&p[i], b, 4);
    }
}

static void shape_str(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t k = 0;
    k += (size_t)snprintf(buf + k, cap - k, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (k < cap)
        snprintf(buf + k, cap - k, "]");
}

void gn_npy_free(gn_npy *a)
{
    if (!a)
        return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

/* ------------------------------------------------------------------ header parser */

typedef struct {
    const char *s, *end;
    const char *path;
    gn_error *err;
} scan;

static void skip_ws(scan *c)
{
    while (c->s < c->end && (*c->s == ' ' || *c->s == '\t' || *c->s == '\n' || *c->s == '\r'))
        c->s++;
}

/* A quoted string ('...' or "...") into out (cap bytes). */
static int scan_string(scan *c, char *out, size_t cap, const char *what)
{
    if (c->s >= c->end || (*c->s != '\'' && *c->s != '"'))
        return gn_error_set(c->err, "%s: bad .npy header: %s is not a quoted string", c->path, what);
    char q = *c->s++;
    const char *b = c->s;
    while (c->s < c->end && *c->s != q)
        c->s++;
    if (c->s >= c->end)
        return gn_error_set(c->err, "%s: bad .npy header: unterminated string in %s", c->path, what);
    size_t n = (size_t)(c->s - b);
    c->s++;
    if (n >= cap)
        n = cap - 1; /* long strings are never valid keys or dtypes; the message shows a prefix */
    memcpy(out, b, n);
    out[n] = 0;
    return 0;
}

static int expect_char(scan *c, char ch, const char *where)
{
    skip_ws(c);
    if (c->s >= c->end || *c->s != ch)
        return gn_error_set(c->err, "%s: bad .npy header: expected '%c' %s", c->path, ch, where);
    c->s++;
    return 0;
}

static int scan_shape(scan *c, int *ndim, int64_t *shape)
{
    if (expect_char(c, '(', "to open 'shape'"))
        return -1;
    int n = 0;
    for (;;) {
        skip_ws(c);
        if (c->s < c->end && *c->s == ')') {
            c->s++;
            break;
        }
        if (c->s >= c->end || !isdigit((unsigned char)*c->s))
            return gn_error_set(c->err, "%s: bad .npy header: 'shape' is not a tuple of non-negative integers",
                                c->path);
        int64_t v = 0;
        while (c->s < c->end && isdigit((unsigned char)*c->s)) {
            int d = *c->s++ - '0';
            if (v > (INT64_MAX - d) / 10)
                return gn_error_set(c->err, "%s: bad .npy header: 'shape' dimension too large", c->path);
            v = v * 10 + d;
        }
        if (c->s < c->end && (*c->s == 'L' || *c->s == 'l'))
            c->s++; /* Python 2 long literal, as old numpy wrote */
        if (n == GN_NPY_MAX_DIMS)
            return gn_error_set(c->err, "%s: shape has more than %d dimensions (1 to %d supported)", c->path,
                                GN_NPY_MAX_DIMS, GN_NPY_MAX_DIMS);
        shape[n++] = v;
        skip_ws(c);
        if (c->s < c->end && *c->s == ',') {
            c->s++;
            continue;
        }
        if (c->s < c->end && *c->s == ')') {
            c->s++;
            break;
        }
        return gn_error_set(c->err, "%s: bad .npy header: expected ',' or ')' in 'shape'", c->path);
    }
    *ndim = n;
    return 0;
}

typedef struct {
    char descr[64];
    int fortran;
    int ndim;
    int64_t shape[GN_NPY_MAX_DIMS];
} header;

static int parse_header(const char *text, size_t len, const char *path, header *h, gn_error *err)
{
    scan c = {text, text + len, path, err};
    int have_descr = 0, have_fortran = 0, have_shape = 0;
    memset(h, 0, sizeof *h);
    if (expect_char(&c, '{', "at the start of the dict"))
        return -1;
    for (;;) {
        skip_ws(&c);
        if (c.s < c.end && *c.s == '}') {
            c.s++;
            break;
        }
        char key[64];
        if (scan_string(&c, key, sizeof key, "a dict key") || expect_char(&c, ':', "after a dict key"))
            return -1;
        skip_ws(&c);
        if (!strcmp(key, "descr")) {
            if (c.s < c.end && (*c.s == '[' || *c.s == '('))
                return gn_error_set(err, "%s: structured dtype not supported (expected '<f4', little-endian float32)",
                                    path);
            if (scan_string(&c, h->descr, sizeof h->descr, "'descr'"))
                return -1;
            have_descr++;
        } else if (!strcmp(key, "fortran_order")) {
            if ((size_t)(c.end - c.s) >= 4 && !memcmp(c.s, "True", 4))
                h->fortran = 1, c.s += 4;
            else if ((size_t)(c.end - c.s) >= 5 && !memcmp(c.s, "False", 5))
                h->fortran = 0, c.s += 5;
            else
                return gn_error_set(err, "%s: bad .npy header: 'fortran_order' is not True or False", path);
            have_fortran++;
        } else if (!strcmp(key, "shape")) {
            if (scan_shape(&c, &h->ndim, h->shape))
                return -1;
            have_shape++;
        } else {
            return gn_error_set(err, "%s: bad .npy header: unknown key '%s'", path, key);
        }
        skip_ws(&c);
        if (c.s < c.end && *c.s == ',') {
            c.s++;
            continue;
        }
        if (c.s < c.end && *c.s == '}') {
            c.s++;
            break;
        }
        return gn_error_set(err, "%s: bad .npy header: expected ',' or '}' after '%s'", path, key);
    }
    skip_ws(&c);
    while (c.s < c.end && *c.s == '\0')
        c.s++; /* some writers pad with NULs */
    if (c.s != c.end)
        return gn_error_set(err, "%s: bad .npy header: text after the dict", path);
    if (have_descr != 1 || have_fortran != 1 || have_shape != 1) {
        const char *k = have_descr != 1 ? "descr" : have_fortran != 1 ? "fortran_order" : "shape";
        return gn_error_set(err, "%s: bad .npy header: key '%s' %s", path, k,
                            (k[0] == 'd' ? have_descr : k[0] == 'f' ? have_fortran : have_shape) ? "repeated"
                                                                                                   : "missing");
    }
    return 0;
}

/* ------------------------------------------------------------------ read */

int gn_npy_read(const char *path, gn_npy *out, gn_error *err)
{
    if (!out)
        return gn_error_set(err, "npy read: NULL output");
    memset(out, 0, sizeof *out);
    if (!path)
        return gn_error_set(err, "npy read: NULL path");
    FILE *f = fopen(path, "rb");
    if (!f)
        return gn_error_set(err, "%s: cannot open: %s", path, strerror(errno));
    int rc = -1;
    char *text = NULL;
    float *data = NULL;
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        gn_error_set(err, "%s: cannot stat: %s", path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        gn_error_set(err, "%s: not a regular file", path);
        goto done;
    }
    unsigned char pre[12];
    size_t got = fread(pre, 1, 8, f);
    if (got < 6 || memcmp(pre, MAGIC, 6) != 0) {
        gn_error_set(err, "%s: not a .npy file (bad magic%s)", path, got == 0 ? ": empty file" : "");
        goto done;
    }
    if (got < 8) {
        gn_error_set(err, "%s: truncated header: no version bytes", path);
        goto done;
    }
    int major = pre[6], minor = pre[7];
    size_t lenbytes = major == 1 ? 2 : 4;
    if ((major != 1 && major != 2 && major != 3) || minor != 0) {
        gn_error_set(err, "%s: .npy format version %d.%d not supported (1.0, 2.0, 3.0)", path, major, minor);
        goto done;
    }
    got = fread(pre + 8, 1, lenbytes, f);
    if (got < lenbytes) {
        gn_error_set(err, "%s: truncated header: no header length", path);
        goto done;
    }
    size_t hlen = lenbytes == 2 ? (size_t)pre[8] | (size_t)pre[9] << 8
                                : (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
    size_t hstart = 8 + lenbytes;
    if ((uint64_t)st.st_size < hstart + hlen) {
        gn_error_set(err, "%s: truncated header: expected %zu bytes, got %lld", path, hlen,
                     (long long)st.st_size - (long long)hstart);
        goto done;
    }
    text = malloc(hlen + 1);
    if (!text) {
        gn_error_set(err, "%s: out of memory for a %zu-byte header", path, hlen);
        goto done;
    }
    got = fread(text, 1, hlen, f);
    if (got < hlen) {
        gn_error_set(err, "%s: truncated header: expected %zu bytes, got %zu", path, hlen, got);
        goto done;
    }
    text[hlen] = 0;
    header h;
    if (parse_header(text, hlen, path, &h, err))
        goto done;
    if (strcmp(h.descr, "<f4") != 0) {
        gn_error_set(err, "%s: dtype '%s' not supported (expected '<f4', little-endian float32)", path, h.descr);
        goto done;
    }
    if (h.fortran) {
        gn_error_set(err, "%s: fortran_order True not supported (save a C-order array: np.ascontiguousarray)",
                     path);
        goto done;
    }
    if (h.ndim < 1) {
        gn_error_set(err, "%s: shape () (a scalar) not supported: 1 to %d dimensions", path, GN_NPY_MAX_DIMS);
        goto done;
    }
    char sh[128];
    shape_str(sh, sizeof sh, h.ndim, h.shape);
    int64_t numel = 1;
    for (int i = 0; i < h.ndim; i++) {
        if (h.shape[i] != 0 && numel > INT64_MAX / 4 / h.shape[i]) {
            gn_error_set(err, "%s: shape %s too large", path, sh);
            goto done;
        }
        numel *= h.shape[i];
    }
    uint64_t need = (uint64_t)numel * 4u, have = (uint64_t)st.st_size - (uint64_t)(hstart + hlen);
    if (have < need) {
        gn_error_set(err, "%s: truncated data: shape %s needs %llu bytes, got %llu", path, sh,
                     (unsigned long long)need, (unsigned long long)have);
        goto done;
    }
    if (have > need) {
        gn_error_set(err, "%s: %llu bytes after the data of shape %s", path, (unsigned long long)(have - need), sh);
        goto done;
    }
    if (need > SIZE_MAX - 4 || !(data = malloc(need ? (size_t)need : 1))) {
        gn_error_set(err, "%s: out of memory for shape %s", path, sh);
        goto done;
    }
    if (need && fread(data, 1, (size_t)need, f) != (size_t)need) {
        gn_error_set(err, "%s: truncated data: read error: %s", path, ferror(f) ? strerror(errno) : "end of file");
        goto done;
    }
    if (host_big_endian())
        swap_floats(data, (size_t)numel);
    out->ndim = h.ndim;
    for (int i = 0; i < h.ndim; i++)
        out->shape[i] = h.shape[i];
    out->numel = numel;
    out->data = data;
    data = NULL;
    rc = 0;
done:
    free(text);
    free(data);
    fclose(f);
    return rc;
}

/* ------------------------------------------------------------------ write */

int gn_npy_write(const char *path, int ndim, const int64_t *shape, const float *data, gn_error *err)
{
    if (!path || !*path)
        return gn_error_set(err, "npy write: empty path");
    if (ndim < 1 || ndim > GN_NPY_MAX_DIMS || !shape)
        return gn_error_set(err, "%s: npy write: %d dimensions (1 to %d supported)", path, ndim, GN_NPY_MAX_DIMS);
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (shape[i] != 0 && numel > INT64_MAX / 4 / shape[i]))
            return gn_error_set(err, "%s: npy write: bad dimension %d: %lld", path, i, (long long)shape[i]);
        numel *= shape[i];
    }
    if (numel > 0 && !data)
        return gn_error_set(err, "%s: npy write: NULL data", path);

    char tuple[128];
    size_t k = 0;
    for (int i = 0; i < ndim; i++)
        k += (size_t)snprintf(tuple + k, sizeof tuple - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (ndim == 1)
        snprintf(tuple + k, sizeof tuple - k, ",");
    char head[256];
    int hl = snprintf(head + 10, sizeof head - 10, "{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", tuple);
    size_t total = 10 + (size_t)hl + 1; /* + '\n' */
    size_t padded = (total + 63) & ~(size_t)63;
    memset(head + 10 + hl, ' ', padded - total);
    head[padded - 1] = '\n';
    size_t hlen = padded - 10;
    memcpy(head, MAGIC, 6);
    head[6] = 1, head[7] = 0;
    head[8] = (char)(hlen & 0xff), head[9] = (char)(hlen >> 8);

    char tmp[4200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return gn_error_set(err, "%s: path too long", path);
    const char *what = "write failed";
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return gn_error_set(err, "%s: cannot create: %s", tmp, strerror(errno));
    if (gn__write_full(fd, head, padded) != 0)
        goto werr;
    if (!host_big_endian()) {
        if (numel && gn__write_full(fd, data, (size_t)numel * 4) != 0)
            goto werr;
    } else {
        float chunk[4096];
        for (int64_t j = 0; j < numel; j += 4096) {
            size_t m = (size_t)(numel - j < 4096 ? numel - j : 4096);
            memcpy(chunk, data + j, m * 4);
            swap_floats(chunk, m);
            if (gn__write_full(fd, chunk, m * 4) != 0)
                goto werr;
        }
    }
    what = "fsync failed";
    if (fsync(fd) != 0)
        goto werr;
    what = "close failed";
    if (close(fd) != 0) {
        fd = -1;
        goto werr;
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return gn_error_set(err, "%s: cannot rename %s into place: %s", path, tmp, strerror(e));
    }
    return gn__fs_fsync_parent(path, err); /* the rename survives a power cut */
werr:;
    int e = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return gn_error_set(err, "%s: %s: %s", tmp, what, strerror(e));
}
