/* safetensors.c — F32 (+ I64) safetensors reader/writer (see gpunas/safetensors.h). */
#include "gpunas/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/fs_atomic.h"
#include "util/fd_io.h"

/* Largest header we accept (the reference implementation's limit). */
#define ST_MAX_HEADER ((uint64_t)100000000)
/* Names are truncated to this many bytes inside error messages. */
#define NM "%.160s"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define ST_BIG_ENDIAN 1
#else
#define ST_BIG_ENDIAN 0
#endif

/* ------------------------------------------------------------------ helpers */

char *gn_st_shape_str(int ndim, const int64_t *shape, char *buf, size_t cap)
{
    size_t n = 0;
    if (cap == 0)
        return buf;
    buf[0] = 0;
    n += (size_t)snprintf(buf + n, cap - n, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%" PRId64, i ? "," : "", shape[i]);
    if (n < cap)
        snprintf(buf + n, cap - n, "]");
    return buf;
}

/* numel of a shape, or -1 if a dim is negative or numel*8 would overflow. */
static int64_t shape_numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    const int64_t limit = INT64_MAX / 8;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return -1;
        if (shape[i] != 0 && n > limit / shape[i])
            return -1;
        n *= shape[i];
    }
    if ((uint64_t)n * 8 > (uint64_t)SIZE_MAX)
        return -1;
    return n;
}

static size_t dtype_size(gn_st_dtype d) { return d == GN_ST_I64 ? 8 : 4; }
const char *gn_st_dtype_name(gn_st_dtype d) { return d == GN_ST_I64 ? "I64" : "F32"; }

static uint64_t bswap64(uint64_t v)
{
    v = ((v & 0x00ff00ff00ff00ffull) << 8) | ((v >> 8) & 0x00ff00ff00ff00ffull);
    v = ((v & 0x0000ffff0000ffffull) << 16) | ((v >> 16) & 0x0000ffff0000ffffull);
    return (v << 32) | (v >> 32);
}

static uint32_t bswap32(uint32_t v)
{
    return (v >> 24) | ((v >> 8) & 0xff00u) | ((v << 8) & 0xff0000u) | (v << 24);
}

static void swap_elems(void *p, size_t n, size_t size)
{
    if (size == 8) {
        uint64_t *u = p;
        for (size_t i = 0; i < n; i++)
            u[i] = bswap64(u[i]);
        return;
    }
    uint32_t *u = p;
    for (size_t i = 0; i < n; i++)
        u[i] = bswap32(u[i]);
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

/* ------------------------------------------------------------------ writer */

typedef struct {
    char *name;
    int ndim;
    int64_t shape[GN_ST_MAX_DIMS];
    int64_t numel;
    gn_st_dtype dtype;
    const void *data;
    void *owned;
} st_entry;

struct gn_st_writer {
    st_entry *t;
    int n, cap;
    char **mkey, **mval;
    int nm, mcap;
};

gn_st_writer *gn_st_writer_new(void) { return calloc(1, sizeof(gn_st_writer)); }

void gn_st_writer_free(gn_st_writer *w)
{
    if (!w)
        return;
    for (int i = 0; i < w->n; i++) {
        free(w->t[i].name);
        free(w->t[i].owned);
    }
    for (int i = 0; i < w->nm; i++) {
        free(w->mkey[i]);
        free(w->mval[i]);
    }
    free(w->t);
    free(w->mkey);
    free(w->mval);
    free(w);
}

int gn_st_writer_count(const gn_st_writer *w) { return w ? w->n : 0; }

static bool valid_utf8(const char *s)
{
    json_t *j = json_string(s); /* jansson validates UTF-8 */
    if (!j)
        return false;
    json_decref(j);
    return true;
}

static int writer_add(gn_st_writer *w, const char *name, int ndim, const int64_t *shape,
                      gn_st_dtype dtype, const void *data, bool copy, gn_error *err)
{
    char sbuf[128];
    if (!w)
        return gn_error_set(err, "safetensors writer: NULL writer");
    if (!name || !*name)
        return gn_error_set(err, "safetensors writer: empty tensor name");
    if (strcmp(name, "__metadata__") == 0)
        return gn_error_set(err, "safetensors writer: tensor name '__metadata__' is reserved");
    if (!valid_utf8(name))
        return gn_error_set(err, "safetensors writer: tensor name '" NM "' is not valid UTF-8",
                            name);
    if (ndim < 0 || ndim > GN_ST_MAX_DIMS)
        return gn_error_set(err, "safetensors writer: tensor '" NM "': rank %d not supported "
                            "(0 to %d)", name, ndim, GN_ST_MAX_DIMS);
    if (ndim > 0 && !shape)
        return gn_error_set(err, "safetensors writer: tensor '" NM "': NULL shape", name);
    int64_t numel = shape_numel(ndim, shape);
    if (numel < 0)
        return gn_error_set(err, "safetensors writer: tensor '" NM "': invalid shape %s", name,
                            gn_st_shape_str(ndim, shape, sbuf, sizeof sbuf));
    if (numel > 0 && !data)
        return gn_error_set(err, "safetensors writer: tensor '" NM "': NULL data", name);
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return gn_error_set(err, "safetensors writer: duplicate tensor name '" NM "'", name);
    if (w->n == w->cap) {
        int nc = w->cap ? w->cap * 2 : 64;
        st_entry *nt = realloc(w->t, (size_t)nc * sizeof *nt);
        if (!nt)
            return gn_error_set(err, "safetensors writer: out of memory");
        w->t = nt;
        w->cap = nc;
    }
    st_entry e = {0};
    e.name = xstrdup(name);
    if (!e.name)
        return gn_error_set(err, "safetensors writer: out of memory");
    e.ndim = ndim;
    for (int i = 0; i < ndim; i++)
        e.shape[i] = shape[i];
    e.numel = numel;
    e.dtype = dtype;
    e.data = data;
    if (copy && numel > 0) {
        e.owned = malloc((size_t)numel * dtype_size(dtype));
        if (!e.owned) {
            free(e.name);
            return gn_error_set(err, "safetensors writer: out of memory");
        }
        memcpy(e.owned, data, (size_t)numel * dtype_size(dtype));
        e.data = e.owned;
    }
    w->t[w->n++] = e;
    return 0;
}

int gn_st_writer_add(gn_st_writer *w, const char *name, int ndim, const int64_t *shape,
                     const float *data, gn_error *err)
{
    return writer_add(w, name, ndim, shape, GN_ST_F32, data, false, err);
}

int gn_st_writer_add_copy(gn_st_writer *w, const char *name, int ndim,
                          const int64_t *shape, const float *data, gn_error *err)
{
    return writer_add(w, name, ndim, shape, GN_ST_F32, data, true, err);
}

int gn_st_writer_add_i64(gn_st_writer *w, const char *name, int ndim, const int64_t *shape,
                         const int64_t *data, gn_error *err)
{
    return writer_add(w, name, ndim, shape, GN_ST_I64, data, true, err);
}

int gn_st_writer_meta(gn_st_writer *w, const char *key, const char *value, gn_error *err)
{
    if (!w || !key || !value)
        return gn_error_set(err, "safetensors writer: NULL metadata argument");
    if (!valid_utf8(key) || !valid_utf8(value))
        return gn_error_set(err, "safetensors writer: metadata '" NM "' is not valid UTF-8",
                            key);
    for (int i = 0; i < w->nm; i++) {
        if (strcmp(w->mkey[i], key) == 0) {
            char *v = xstrdup(value);
            if (!v)
                return gn_error_set(err, "safetensors writer: out of memory");
            free(w->mval[i]);
            w->mval[i] = v;
            return 0;
        }
    }
    if (w->nm == w->mcap) {
        int nc = w->mcap ? w->mcap * 2 : 8;
        char **nk = realloc(w->mkey, (size_t)nc * sizeof *nk);
        if (!nk)
            return gn_error_set(err, "safetensors writer: out of memory");
        w->mkey = nk;
        char **nv = realloc(w->mval, (size_t)nc * sizeof *nv);
        if (!nv)
            return gn_error_set(err, "safetensors writer: out of memory");
        w->mval = nv;
        w->mcap = nc;
    }
    char *k = xstrdup(key), *v = xstrdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        return gn_error_set(err, "safetensors writer: out of memory");
    }
    w->mkey[w->nm] = k;
    w->mval[w->nm] = v;
    w->nm++;
    return 0;
}

/* Build the JSON header text (compact, not padded); malloc'd. */
static char *build_header(const gn_st_writer *w, gn_error *err, const char *path)
{
    json_t *root = json_object();
    if (!root)
        goto oom;
    if (w->nm > 0) {
        json_t *meta = json_object();
        if (!meta || json_object_set_new(root, "__metadata__", meta) != 0)
            goto oom;
        for (int i = 0; i < w->nm; i++)
            if (json_object_set_new(meta, w->mkey[i], json_string(w->mval[i])) != 0)
                goto oom;
    }
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const st_entry *e = &w->t[i];
        json_t *shape = json_array();
        if (!shape)
            goto oom;
        for (int d = 0; d < e->ndim; d++)
            if (json_array_append_new(shape, json_integer((json_int_t)e->shape[d])) != 0) {
                json_decref(shape);
                goto oom;
            }
        uint64_t end = off + (uint64_t)e->numel * dtype_size(e->dtype);
        json_t *ent = json_pack("{s:s,s:o,s:[I,I]}", "dtype", gn_st_dtype_name(e->dtype), "shape", shape,
                                "data_offsets", (json_int_t)off, (json_int_t)end);
        if (!ent || json_object_set_new(root, e->name, ent) != 0)
            goto oom;
        off = end;
    }
    char *s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!s)
        gn_error_set(err, "%s: cannot serialise the safetensors header", path);
    return s;
oom:
    json_decref(root);
    gn_error_set(err, "%s: out of memory building the safetensors header", path);
    return NULL;
}

int gn_st_writer_write(const gn_st_writer *w, const char *path, gn_error *err)
{
    if (!w || !path || !*path)
        return gn_error_set(err, "safetensors writer: no writer or empty path");
    char *hdr = build_header(w, err, path);
    if (!hdr)
        return -1;
    size_t hlen = strlen(hdr);
    size_t plen = (hlen + 7u) & ~(size_t)7u;

    unsigned char *head = malloc(8 + plen);
    if (!head) {
        free(hdr);
        return gn_error_set(err, "%s: out of memory", path);
    }
    uint64_t n = plen;
    for (int i = 0; i < 8; i++)
        head[i] = (unsigned char)(n >> (8 * i));
    memcpy(head + 8, hdr, hlen);
    memset(head + 8 + hlen, ' ', plen - hlen);
    free(hdr);

    size_t tlen = strlen(path) + 5;
    char *tmp = malloc(tlen);
    if (!tmp) {
        free(head);
        return gn_error_set(err, "%s: out of memory", path);
    }
    snprintf(tmp, tlen, "%s.tmp", path);

    int rc = 0;
    const char *what = "write failed";
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = gn_error_set(err, "%s: cannot create: %s", tmp, strerror(errno));
        goto done;
    }
    if (gn__write_full(fd, head, 8 + plen) != 0)
        goto werr;
    for (int i = 0; i < w->n; i++) {
        const st_entry *e = &w->t[i];
        size_t es = dtype_size(e->dtype), bytes = (size_t)e->numel * es;
        if (bytes == 0)
            continue;
        if (!ST_BIG_ENDIAN) {
            if (gn__write_full(fd, e->data, bytes) != 0)
                goto werr;
        } else {
            uint64_t chunk[4096];
            for (int64_t j = 0; j < e->numel; j += 4096) {
                size_t k = (size_t)(e->numel - j < 4096 ? e->numel - j : 4096);
                memcpy(chunk, (const char *)e->data + (size_t)j * es, k * es);
                swap_elems(chunk, k, es);
                if (gn__write_full(fd, chunk, k * es) != 0)
                    goto werr;
            }
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
    fd = -1;
    if (rename(tmp, path) != 0) {
        rc = gn_error_set(err, "%s: cannot rename %s into place: %s", path, tmp,
                          strerror(errno));
        unlink(tmp);
        goto done;
    }
    rc = gn__fs_fsync_parent(path, err); /* the rename survives a power cut */
    goto done;

werr:
    rc = gn_error_set(err, "%s: %s: %s", tmp, what, strerror(errno));
    if (fd >= 0)
        close(fd);
    unlink(tmp);
done:
    free(tmp);
    free(head);
    return rc;
}

/* ------------------------------------------------------------------ reader */

struct gn_st_file {
    char *path;
    int fd;
    uint64_t data_start, data_size;
    gn_st_info *t; /* sorted by begin */
    int n;
    const gn_st_info **by_name; /* pointers into t, sorted by name */
    char **mkey, **mval;
    int nm;
};

void gn_st_close(gn_st_file *f)
{
    if (!f)
        return;
    if (f->fd >= 0)
        close(f->fd);
    for (int i = 0; i < f->n; i++)
        free((char *)f->t[i].name);
    for (int i = 0; i < f->nm; i++) {
        free(f->mkey[i]);
        free(f->mval[i]);
    }
    free(f->t);
    free(f->by_name);
    free(f->mkey);
    free(f->mval);
    free(f->path);
    free(f);
}

const char *gn_st_path(const gn_st_file *f) { return f ? f->path : NULL; }
int gn_st_count(const gn_st_file *f) { return f ? f->n : 0; }
const gn_st_info *gn_st_at(const gn_st_file *f, int i)
{
    return (f && i >= 0 && i < f->n) ? &f->t[i] : NULL;
}

static int cmp_begin(const void *a, const void *b)
{
    const gn_st_info *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_name_ptr(const void *a, const void *b)
{
    return strcmp((*(const gn_st_info *const *)a)->name, (*(const gn_st_info *const *)b)->name);
}

const gn_st_info *gn_st_find(const gn_st_file *f, const char *name)
{
    if (!f || !name)
        return NULL;
    int lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const gn_st_info *t = f->by_name[mid];
        int c = strcmp(name, t->name);
        if (c == 0)
            return t;
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

int gn_st_get(const gn_st_file *f, const char *name, const gn_st_info **out, gn_error *err)
{
    if (!f)
        return gn_error_set(err, "safetensors: NULL file");
    const gn_st_info *t = gn_st_find(f, name);
    if (!t)
        return gn_error_set(err, "%s: tensor '" NM "': missing", f->path, name ? name : "");
    if (out)
        *out = t;
    return 0;
}

static int read_data(const gn_st_file *f, const gn_st_info *t, gn_st_dtype want, void *dst, gn_error *err)
{
    if (t->dtype != want)
        return gn_error_set(err, "%s: tensor '" NM "': dtype %s in file, expected %s", f->path, t->name,
                            gn_st_dtype_name(t->dtype), gn_st_dtype_name(want));
    size_t bytes = (size_t)t->numel * dtype_size(t->dtype);
    if (bytes == 0)
        return 0;
    if (!dst)
        return gn_error_set(err, "%s: tensor '" NM "': NULL destination", f->path, t->name);
    ssize_t r = gn__pread_full(f->fd, dst, bytes, f->data_start + t->begin);
    if (r < 0)
        return gn_error_set(err, "%s: tensor '" NM "': read failed: %s", f->path, t->name,
                            strerror(errno));
    if ((size_t)r != bytes)
        return gn_error_set(err, "%s: tensor '" NM "': truncated file (got %zd of %zu data "
                            "bytes; the file shrank after opening?)", f->path, t->name, r,
                            bytes);
    if (ST_BIG_ENDIAN)
        swap_elems(dst, (size_t)t->numel, dtype_size(t->dtype));
    return 0;
}

int gn_st_load(const gn_st_file *f, const char *name, int ndim, const int64_t *shape,
               float *dst, gn_error *err)
{
    const gn_st_info *t;
    if (gn_st_get(f, name, &t, err) != 0)
        return -1;
    bool same = ndim == t->ndim && (ndim == 0 || shape);
    for (int i = 0; same && i < ndim; i++)
        same = shape[i] == t->shape[i];
    if (!same) {
        char a[128], b[128];
        if (ndim < 0 || ndim > 16 || (ndim > 0 && !shape))
            snprintf(b, sizeof b, "(invalid rank %d)", ndim);
        else
            gn_st_shape_str(ndim, shape, b, sizeof b);
        return gn_error_set(err, "%s: tensor '" NM "': shape mismatch: %s in file, expected %s",
                            f->path, name, gn_st_shape_str(t->ndim, t->shape, a, sizeof a), b);
    }
    return read_data(f, t, GN_ST_F32, dst, err);
}

int gn_st_load_i64(const gn_st_file *f, const char *name, int64_t numel, int64_t *dst, gn_error *err)
{
    const gn_st_info *t;
    if (gn_st_get(f, name, &t, err) != 0)
        return -1;
    if (t->numel != numel) {
        char a[128];
        return gn_error_set(err, "%s: tensor '" NM "': shape %s in file, expected %" PRId64 " elements",
                            f->path, name, gn_st_shape_str(t->ndim, t->shape, a, sizeof a), numel);
    }
    return read_data(f, t, GN_ST_I64, dst, err);
}

int gn_st_load_numel(const gn_st_file *f, const char *name, int64_t numel, float *dst,
                     gn_error *err)
{
    const gn_st_info *t;
    if (gn_st_get(f, name, &t, err) != 0)
        return -1;
    if (t->numel != numel) {
        char a[128];
        return gn_error_set(err, "%s: tensor '" NM "': shape mismatch: %s (%" PRId64
                            " elements) in file, expected %" PRId64 " elements",
                            f->path, name, gn_st_shape_str(t->ndim, t->shape, a, sizeof a),
                            t->numel, numel);
    }
    return read_data(f, t, GN_ST_F32, dst, err);
}

const char *gn_st_meta(const gn_st_file *f, const char *key)
{
    if (!f || !key)
        return NULL;
    for (int i = 0; i < f->nm; i++)
        if (strcmp(f->mkey[i], key) == 0)
            return f->mval[i];
    return NULL;
}

int gn_st_meta_count(const gn_st_file *f) { return f ? f->nm : 0; }

int gn_st_meta_at(const gn_st_file *f, int i, const char **key, const char **value)
{
    if (!f || i < 0 || i >= f->nm)
        return -1;
    if (key)
        *key = f->mkey[i];
    if (value)
        *value = f->mval[i];
    return 0;
}

/* A JSON value as a non-negative integer that fits int64. */
static bool json_u63(const json_t *v, int64_t *out)
{
    if (!json_is_integer(v))
        return false;
    json_int_t x = json_integer_value(v);
    if (x < 0)
        return false;
    *out = (int64_t)x;
    return true;
}

static int parse_entry(gn_st_file *f, const char *name, json_t *v, gn_st_info *t,
                       gn_error *err)
{
    const char *P = f->path;
    char sbuf[128];
    if (!json_is_object(v))
        return gn_error_set(err, "%s: tensor '" NM "': header entry is not a JSON object", P,
                            name);
    json_t *dt = json_object_get(v, "dtype");
    if (!dt)
        return gn_error_set(err, "%s: tensor '" NM "': missing 'dtype'", P, name);
    if (!json_is_string(dt))
        return gn_error_set(err, "%s: tensor '" NM "': 'dtype' is not a string", P, name);
    if (strcmp(json_string_value(dt), "F32") == 0)
        t->dtype = GN_ST_F32;
    else if (strcmp(json_string_value(dt), "I64") == 0)
        t->dtype = GN_ST_I64;
    else
        return gn_error_set(err, "%s: tensor '" NM "': unsupported dtype '%.32s' (only F32 and I64 "
                            "are supported)", P, name, json_string_value(dt));
    json_t *sh = json_object_get(v, "shape");
    if (!sh)
        return gn_error_set(err, "%s: tensor '" NM "': missing 'shape'", P, name);
    if (!json_is_array(sh))
        return gn_error_set(err, "%s: tensor '" NM "': 'shape' is not an array", P, name);
    size_t nd = json_array_size(sh);
    if (nd > GN_ST_MAX_DIMS)
        return gn_error_set(err, "%s: tensor '" NM "': rank %zu not supported (0 to %d)", P,
                            name, nd, GN_ST_MAX_DIMS);
    t->ndim = (int)nd;
    for (size_t i = 0; i < nd; i++)
        if (!json_u63(json_array_get(sh, i), &t->shape[i]))
            return gn_error_set(err, "%s: tensor '" NM "': shape[%zu] is not a non-negative "
                                "integer", P, name, i);
    t->numel = shape_numel(t->ndim, t->shape);
    if (t->numel < 0)
        return gn_error_set(err, "%s: tensor '" NM "': shape %s is too large", P, name,
                            gn_st_shape_str(t->ndim, t->shape, sbuf, sizeof sbuf));
    json_t *off = json_object_get(v, "data_offsets");
    if (!off)
        return gn_error_set(err, "%s: tensor '" NM "': missing 'data_offsets'", P, name);
    int64_t b, e;
    if (!json_is_array(off) || json_array_size(off) != 2 ||
        !json_u63(json_array_get(off, 0), &b) || !json_u63(json_array_get(off, 1), &e))
        return gn_error_set(err, "%s: tensor '" NM "': 'data_offsets' is not an array of two "
                            "non-negative integers", P, name);
    if (b > e)
        return gn_error_set(err, "%s: tensor '" NM "': data_offsets [%" PRId64 ",%" PRId64
                            "] out of range: begin > end", P, name, b, e);
    if ((uint64_t)e > f->data_size)
        return gn_error_set(err, "%s: tensor '" NM "': data_offsets [%" PRId64 ",%" PRId64
                            "] out of range: the data buffer has %" PRIu64
                            " bytes (truncated file?)", P, name, b, e, f->data_size);
    int64_t need = t->numel * (int64_t)dtype_size(t->dtype);
    if ((uint64_t)(e - b) != (uint64_t)need)
        return gn_error_set(err, "%s: tensor '" NM "': data_offsets [%" PRId64 ",%" PRId64
                            "] span %" PRId64 " bytes, but shape %s of %s needs %" PRId64,
                            P, name, b, e, e - b,
                            gn_st_shape_str(t->ndim, t->shape, sbuf, sizeof sbuf),
                            gn_st_dtype_name(t->dtype), need);
    t->begin = (uint64_t)b;
    t->end = (uint64_t)e;
    return 0;
}

static int parse_meta(gn_st_file *f, json_t *m, gn_error *err)
{
    if (!json_is_object(m))
        return gn_error_set(err, "%s: '__metadata__' is not a JSON object", f->path);
    size_t n = json_object_size(m);
    f->mkey = calloc(n ? n : 1, sizeof(char *));
    f->mval = calloc(n ? n : 1, sizeof(char *));
    if (!f->mkey || !f->mval)
        return gn_error_set(err, "%s: out of memory", f->path);
    const char *k;
    json_t *v;
    json_object_foreach(m, k, v)
    {
        if (!json_is_string(v))
            return gn_error_set(err, "%s: '__metadata__' key '" NM "': value is not a string",
                                f->path, k);
        f->mkey[f->nm] = xstrdup(k);
        f->mval[f->nm] = xstrdup(json_string_value(v));
        f->nm++;
        if (!f->mkey[f->nm - 1] || !f->mval[f->nm - 1])
            return gn_error_set(err, "%s: out of memory", f->path);
    }
    return 0;
}

/* "duplicate object key near '"NAME"'" -> NAME (into buf). */
static const char *dup_key_name(const char *text, char *buf, size_t cap)
{
    const char *p = strstr(text, "near '");
    if (!p) {
        snprintf(buf, cap, "?");
        return buf;
    }
    p += 6;
    if (*p == '"')
        p++;
    size_t n = strlen(p);
    if (n > 0 && p[n - 1] == '\'')
        n--;
    if (n > 0 && p[n - 1] == '"')
        n--;
    if (n >= cap)
        n = cap - 1;
    memcpy(buf, p, n);
    buf[n] = 0;
    return buf;
}

int gn_st_open(const char *path, gn_st_file **out, gn_error *err)
{
    if (out)
        *out = NULL;
    if (!path || !out)
        return gn_error_set(err, "safetensors: NULL path or output");
    gn_st_file *f = calloc(1, sizeof *f);
    if (!f)
        return gn_error_set(err, "%s: out of memory", path);
    f->fd = -1;
    f->path = xstrdup(path);
    json_t *root = NULL;
    char *hbuf = NULL;
    if (!f->path) {
        gn_error_set(err, "%s: out of memory", path);
        goto fail;
    }
    const char *P = f->path;

    f->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0) {
        gn_error_set(err, "%s: cannot open: %s", P, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(f->fd, &st) != 0) {
        gn_error_set(err, "%s: cannot stat: %s", P, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        gn_error_set(err, "%s: not a regular file", P);
        goto fail;
    }
    uint64_t fsize = (uint64_t)st.st_size;
    if (fsize < 8) {
        gn_error_set(err, "%s: truncated file: %" PRIu64 " bytes, too short for the 8-byte "
                     "header length", P, fsize);
        goto fail;
    }
    unsigned char lb[8];
    ssize_t r = gn__pread_full(f->fd, lb, 8, 0);
    if (r != 8) {
        gn_error_set(err, "%s: truncated file: cannot read the header length", P);
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++)
        hlen |= (uint64_t)lb[i] << (8 * i);
    if (hlen > fsize - 8) {
        gn_error_set(err, "%s: header length %" PRIu64 " is beyond the file size (%" PRIu64
                     " bytes; truncated file?)", P, hlen, fsize);
        goto fail;
    }
    if (hlen > ST_MAX_HEADER) {
        gn_error_set(err, "%s: header length %" PRIu64 " exceeds the limit of %" PRIu64
                     " bytes", P, hlen, ST_MAX_HEADER);
        goto fail;
    }
    if (hlen == 0) {
        gn_error_set(err, "%s: malformed JSON header: header length is 0", P);
        goto fail;
    }
    hbuf = malloc((size_t)hlen + 1);
    if (!hbuf) {
        gn_error_set(err, "%s: out of memory for a %" PRIu64 "-byte header", P, hlen);
        goto fail;
    }
    r = gn__pread_full(f->fd, hbuf, (size_t)hlen, 8);
    if (r < 0 || (uint64_t)r != hlen) {
        gn_error_set(err, "%s: truncated file: cannot read the %" PRIu64 "-byte header", P,
                     hlen);
        goto fail;
    }
    hbuf[hlen] = 0;
    f->data_start = 8 + hlen;
    f->data_size = fsize - 8 - hlen;

    json_error_t jerr;
    root = json_loadb(hbuf, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (strncmp(jerr.text, "duplicate object key", 20) == 0) {
            char nb[200];
            gn_error_set(err, "%s: header line %d column %d: duplicate name '%s'", P,
                         jerr.line, jerr.column, dup_key_name(jerr.text, nb, sizeof nb));
        } else {
            gn_error_set(err, "%s: malformed JSON header at line %d column %d: %s", P,
                         jerr.line, jerr.column, jerr.text);
        }
        goto fail;
    }
    if (!json_is_object(root)) {
        gn_error_set(err, "%s: malformed JSON header: top level is not an object", P);
        goto fail;
    }

    size_t nkeys = json_object_size(root);
    f->t = calloc(nkeys ? nkeys : 1, sizeof *f->t);
    f->by_name = calloc(nkeys ? nkeys : 1, sizeof *f->by_name);
    if (!f->t || !f->by_name) {
        gn_error_set(err, "%s: out of memory", P);
        goto fail;
    }
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val)
    {
        if (strcmp(key, "__metadata__") == 0) {
            if (parse_meta(f, val, err) != 0)
                goto fail;
            continue;
        }
        gn_st_info *t = &f->t[f->n];
        memset(t, 0, sizeof *t);
        if (parse_entry(f, key, val, t, err) != 0)
            goto fail;
        t->name = xstrdup(key);
        if (!t->name) {
            gn_error_set(err, "%s: out of memory", P);
            goto fail;
        }
        f->n++;
    }

    /* Overlap check in data order. */
    qsort(f->t, (size_t)f->n, sizeof *f->t, cmp_begin);
    const gn_st_info *prev = NULL; /* non-empty tensor with the largest end so far */
    for (int i = 0; i < f->n; i++) {
        const gn_st_info *t = &f->t[i];
        if (t->begin == t->end)
            continue;
        if (prev && t->begin < prev->end) {
            gn_error_set(err, "%s: tensor '" NM "': data_offsets [%" PRIu64 ",%" PRIu64
                         "] overlap tensor '" NM "' [%" PRIu64 ",%" PRIu64 "]", P, t->name,
                         t->begin, t->end, prev->name, prev->begin, prev->end);
            goto fail;
        }
        if (!prev || t->end > prev->end)
            prev = t;
    }
    for (int i = 0; i < f->n; i++)
        f->by_name[i] = &f->t[i];
    qsort(f->by_name, (size_t)f->n, sizeof *f->by_name, cmp_name_ptr);

    json_decref(root);
    free(hbuf);
    *out = f;
    return 0;

fail:
    json_decref(root);
    free(hbuf);
    gn_st_close(f);
    return -1;
}
