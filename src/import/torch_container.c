/* torch_container.c — the two torch.save containers (zip via libzip, and the legacy
 * stream of pickles + raw storages), storage lookup, gn_pt_open/close and sequential
 * storage streams (see gpunas/torchfile.h). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "import/torch_internal.h"
#include "util/fd_io.h"

/* ------------------------------------------------------------------ helpers */

static char *join3(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s%s%s", a, b, c);
    return p;
}

/* the storages the pickle declared, in first-use order */
static int n_storages(const gn_pt_file *f) { return f->heap.storages ? f->heap.storages->u.c.n : 0; }
static gn__pt_storage *storage_at(const gn_pt_file *f, int i) { return f->heap.storages->u.c.items[i]->u.st; }

/* ------------------------------------------------------------------ zip */

/* stat an entry and check that it can be read: not encrypted, stored or deflated */
static int entry_stat(const gn_pt_file *f, zip_int64_t idx, const char *name, zip_stat_t *sb,
                      gn_error *err)
{
    zip_stat_init(sb);
    if (zip_stat_index(f->zip, (zip_uint64_t)idx, 0, sb) < 0)
        return gn_error_set(err, "%s: entry '%s': %s", f->path, name, zip_strerror(f->zip));
    const zip_uint64_t need = ZIP_STAT_SIZE | ZIP_STAT_COMP_METHOD | ZIP_STAT_ENCRYPTION_METHOD;
    if ((sb->valid & need) != need)
        return gn_error_set(err, "%s: entry '%s': size or method unknown", f->path, name);
    if (sb->encryption_method != ZIP_EM_NONE)
        return gn_error_set(err, "%s: entry '%s' is encrypted", f->path, name);
    if (sb->comp_method != ZIP_CM_STORE && sb->comp_method != ZIP_CM_DEFLATE)
        return gn_error_set(err, "%s: entry '%s' uses compression method %d (stored and deflate "
                            "are read)", f->path, name, (int)sb->comp_method);
    return 0;
}

/* Read a whole entry of at most max bytes (the buffer grows as data arrive, so a size the
 * header lies about costs nothing); the end is read too, so libzip checks the CRC. */
static int read_entry(gn_pt_file *f, zip_int64_t idx, const char *name, uint64_t max,
                      uint8_t **out, size_t *len, gn_error *err)
{
    zip_stat_t sb;
    *out = NULL;
    *len = 0;
    if (entry_stat(f, idx, name, &sb, err) < 0)
        return -1;
    if (sb.size > max)
        return gn_error_set(err, "%s: entry '%s' is %" PRIu64 " bytes (at most %" PRIu64 " are read)",
                            f->path, name, (uint64_t)sb.size, max);
    zip_file_t *zf = zip_fopen_index(f->zip, (zip_uint64_t)idx, 0);
    if (!zf)
        return gn_error_set(err, "%s: entry '%s': %s", f->path, name, zip_strerror(f->zip));
    size_t size = (size_t)sb.size, cap = size < ((size_t)1 << 20) ? size + 1 : (size_t)1 << 20, got = 0;
    uint8_t *buf = malloc(cap);
    int rc = -1;
    if (!buf) {
        gn_error_set(err, "%s: entry '%s': out of memory", f->path, name);
        goto done;
    }
    for (;;) {
        if (got == cap) {
            size_t nc = cap * 2 > size + 1 ? size + 1 : cap * 2;
            uint8_t *nb = nc > cap ? realloc(buf, nc) : NULL;
            if (!nb) {
                gn_error_set(err, nc > cap ? "%s: entry '%s': out of memory"
                             : "%s: entry '%s' is longer than its declared size", f->path, name);
                goto done;
            }
            buf = nb;
            cap = nc;
        }
        zip_int64_t r = zip_fread(zf, buf + got, cap - got);
        if (r < 0) {
            gn_error_set(err, "%s: entry '%s': %s", f->path, name, zip_file_strerror(zf));
            goto done;
        }
        if (r == 0)
            break;
        got += (size_t)r;
        if (got > size) {
            gn_error_set(err, "%s: entry '%s' is longer than its declared size", f->path, name);
            goto done;
        }
    }
    if (got != size) {
        gn_error_set(err, "%s: entry '%s' is truncated (%zu of %zu bytes)", f->path, name, got, size);
        goto done;
    }
    *out = buf;
    *len = got;
    buf = NULL;
    rc = 0;
done:
    free(buf);
    zip_fclose(zf);
    return rc;
}

static zip_int64_t locate(const gn_pt_file *f, const char *suffix, char **name_out)
{
    char *name = join3(f->prefix, "/", suffix);
    if (!name)
        return -2;
    zip_int64_t i = zip_name_locate(f->zip, name, ZIP_FL_ENC_RAW);
    if (name_out)
        *name_out = name;
    else
        free(name);
    return i;
}

static int open_zip(gn_pt_file *f, gn_error *err)
{
    int zerr = 0;
    f->zip = zip_open(f->path, ZIP_RDONLY | ZIP_CHECKCONS, &zerr);
    if (!f->zip) {
        zip_error_t ze;
        zip_error_init_with_code(&ze, zerr);
        gn_error_set(err, "%s: zip archive is damaged or truncated (libzip: %s)", f->path,
                     zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return -1;
    }
    /* the one PREFIX/data.pkl at depth 1 */
    zip_int64_t n = zip_get_num_entries(f->zip, 0), pkl = -1;
    const char *first = NULL;
    int found = 0;
    for (zip_int64_t i = 0; i < n; i++) {
        const char *name = zip_get_name(f->zip, (zip_uint64_t)i, ZIP_FL_ENC_RAW);
        const char *slash = name ? strchr(name, '/') : NULL;
        if (!slash || slash == name || strcmp(slash + 1, "data.pkl") != 0)
            continue;
        if (found++ == 0) {
            first = name;
            pkl = i;
        } else {
            char a[GN__PT_NM + 8], b[GN__PT_NM + 8];
            return gn_error_set(err, "%s: zip archive has several '*/data.pkl' entries ('%s', '%s'); "
                                "a torch.save archive has one", f->path,
                                gn__pt_printable(first, strlen(first), a, sizeof a),
                                gn__pt_printable(name, strlen(name), b, sizeof b));
        }
    }
    if (!found)
        return gn_error_set(err, "%s: zip archive has no 'FOLDER/data.pkl' entry (not a torch.save "
                            "checkpoint)", f->path);
    f->prefix = strndup(first, (size_t)(strchr(first, '/') - first));
    if (!f->prefix)
        return gn_error_set(err, "%s: out of memory", f->path);
    char pb[GN__PT_NM + 8];
    gn__pt_printable(f->prefix, strlen(f->prefix), pb, sizeof pb);

    if (locate(f, "constants.pkl", NULL) >= 0)
        return gn_error_set(err, "%s: a TorchScript archive (torch.jit.save, '%s/constants.pkl'), not "
                            "a torch.save checkpoint", f->path, pb);
    char *name = NULL;
    zip_int64_t bo = locate(f, "byteorder", &name);
    if (!name)
        return gn_error_set(err, "%s: out of memory", f->path);
    if (bo >= 0) {
        uint8_t *b;
        size_t bl;
        int rc = read_entry(f, bo, name, 64, &b, &bl, err);
        free(name);
        if (rc < 0)
            return -1;
        bool little = bl == 6 && memcmp(b, "little", 6) == 0, big = bl == 3 && memcmp(b, "big", 3) == 0;
        char vb[80];
        gn__pt_printable((const char *)b, bl, vb, sizeof vb);
        free(b);
        if (big)
            return gn_error_set(err, "%s: byteorder 'big': big-endian checkpoints are not read", f->path);
        if (!little)
            return gn_error_set(err, "%s: '%s/byteorder' is '%s' (expected 'little')", f->path, pb, vb);
    } else {
        free(name);
    }

    uint8_t *pk;
    size_t pl;
    if (read_entry(f, pkl, first, GN__PT_MAX_PICKLE, &pk, &pl, err) < 0)
        return -1;
    gn__pt_input in = {.buf = pk, .len = pl};
    gn__pt_pickle_opts o = {.path = f->path, .what = "data.pkl", .pid_len = 5};
    size_t end;
    int rc = gn__pt_unpickle(&f->heap, &in, 0, &o, &f->root, &end, err);
    free(pk); /* bytes after STOP are ignored, as torch.load does */
    if (rc < 0)
        return -1;

    for (int i = 0; i < n_storages(f); i++) {
        gn__pt_storage *st = storage_at(f, i);
        char *sub = join3("data/", st->key, "");
        zip_int64_t idx = sub ? locate(f, sub, &name) : -2;
        free(sub);
        if (idx == -2 || !name)
            return gn_error_set(err, "%s: out of memory", f->path);
        if (idx < 0) {
            gn_error_set(err, "%s: storage '%s': entry '%s/data/%s' is missing from the zip archive",
                         f->path, st->key, pb, st->key);
            free(name);
            return -1;
        }
        zip_stat_t sb;
        rc = entry_stat(f, idx, name, &sb, err);
        free(name);
        if (rc < 0)
            return -1;
        uint64_t want = (uint64_t)st->numel * (uint64_t)gn_pt_dtype_size(st->dtype);
        if ((uint64_t)sb.size != want)
            return gn_error_set(err, "%s: storage '%s': entry '%s/data/%s' has %" PRIu64 " bytes, the "
                                "pickle declares %" PRId64 " %s elements (%" PRIu64 " bytes)", f->path,
                                st->key, pb, st->key, (uint64_t)sb.size, st->numel,
                                gn_pt_dtype_name(st->dtype), want);
        st->zindex = idx;
        st->resolved = true;
    }
    return 0;
}

/* ------------------------------------------------------------------ legacy */

typedef struct {
    gn_pt_file *f;
    uint8_t *buf;
    size_t len;
} legacy_buf;

/* gn__pt_input.more: the file's head, read further as the pickles need it */
static int legacy_more(gn__pt_input *in, size_t need, gn_error *err)
{
    legacy_buf *lb = in->ctx;
    uint64_t size = lb->f->size;
    if (need <= lb->len || lb->len >= size)
        return 0;
    size_t grow = lb->len < ((size_t)1 << 16) ? ((size_t)1 << 16) : lb->len;
    if (grow > ((size_t)1 << 26))
        grow = (size_t)1 << 26;
    uint64_t nl = lb->len + grow > need ? lb->len + grow : need;
    if (nl > size)
        nl = size;
    uint8_t *nb = realloc(lb->buf, (size_t)nl);
    if (!nb)
        return gn_error_set(err, "%s: out of memory", lb->f->path);
    lb->buf = nb;
    ssize_t r = gn__pread_full(lb->f->fd, nb + lb->len, (size_t)nl - lb->len, lb->len);
    if (r < 0)
        return gn_error_set(err, "%s: read failed: %s", lb->f->path, strerror(errno));
    lb->len += (size_t)r;
    in->buf = lb->buf;
    in->len = lb->len;
    return 0;
}

static int legacy_pickles(gn_pt_file *f, legacy_buf *lb, size_t *pos, gn_error *err)
{
    gn__pt_input in = {.more = legacy_more, .ctx = lb};
    gn__pt_pickle_opts o = {.path = f->path};
    gn_pv *v;
    size_t p = 0;

    o.what = "first pickle";
    o.allow_magic = true;
    if (gn__pt_unpickle(&f->heap, &in, p, &o, &v, &p, err) < 0) {
        if (err) { /* say what the file is not, then why */
            char why[GN_ERROR_MAX];
            size_t pl = strlen(f->path), ml = strlen(err->msg);
            const char *rest = ml >= pl + 2 && strncmp(err->msg, f->path, pl) == 0 ? err->msg + pl + 2
                                                                                 : err->msg;
            snprintf(why, sizeof why, "%s", rest);
            gn_error_set(err, "%s: not a legacy torch.save stream (%s)", f->path, why);
        }
        return -1;
    }
    if (v->kind != GN__PV_MAGIC)
        return gn_error_set(err, "%s: not a legacy torch.save stream (the first pickle is a %s, not "
                            "torch's magic number)", f->path, gn_pv_kind_name((gn_pv_kind)v->kind));
    o.allow_magic = false;
    o.what = "protocol version pickle";
    if (gn__pt_unpickle(&f->heap, &in, p, &o, &v, &p, err) < 0)
        return -1;
    if (v->kind != GN_PV_INT || v->u.i != 1001)
        return gn_error_set(err, "%s: legacy protocol version %" PRId64 " is not read (expected 1001)",
                            f->path, gn_pv_int(v));
    o.what = "sys_info pickle";
    if (gn__pt_unpickle(&f->heap, &in, p, &o, &v, &p, err) < 0)
        return -1;
    if (v->kind != GN_PV_DICT)
        return gn_error_set(err, "%s: legacy sys_info is a %s, not a dict", f->path,
                            gn_pv_kind_name((gn_pv_kind)v->kind));
    const gn_pv *le = gn__pt_dict_find_str(v, "little_endian", 13);
    if (le && le->kind == GN_PV_BOOL && !le->u.b)
        return gn_error_set(err, "%s: sys_info little_endian is False: big-endian checkpoints are not "
                            "read", f->path);
    o.what = "object pickle";
    o.pid_len = 6;
    if (gn__pt_unpickle(&f->heap, &in, p, &o, &f->root, &p, err) < 0)
        return -1;
    o.what = "storage key pickle";
    o.pid_len = 0;
    gn_pv *keys;
    if (gn__pt_unpickle(&f->heap, &in, p, &o, &keys, &p, err) < 0)
        return -1;
    if (keys->kind != GN_PV_LIST)
        return gn_error_set(err, "%s: legacy storage key list is a %s, not a list", f->path,
                            gn_pv_kind_name((gn_pv_kind)keys->kind));

    /* the storages, in the order of the key list */
    uint64_t off = p;
    for (int i = 0; i < keys->u.c.n; i++) {
        const gn_pv *k = keys->u.c.items[i];
        char kb[GN__PT_NM + 8];
        if (k->kind != GN_PV_STR)
            return gn_error_set(err, "%s: legacy storage key list holds a %s, not a str", f->path,
                                gn_pv_kind_name((gn_pv_kind)k->kind));
        gn__pt_printable(k->u.s.p, k->u.s.n, kb, sizeof kb);
        gn_pv *sv = gn__pt_dict_find_str(f->heap.storages, k->u.s.p, k->u.s.n);
        if (!sv)
            return gn_error_set(err, "%s: storage '%s' is in the storage table but no tensor uses it",
                                f->path, kb);
        gn__pt_storage *st = sv->u.st;
        if (st->listed)
            return gn_error_set(err, "%s: storage '%s' is listed twice in the storage table", f->path, kb);
        st->listed = true;
        uint8_t hdr[8];
        ssize_t r = gn__pread_full(f->fd, hdr, 8, off);
        if (r < 0)
            return gn_error_set(err, "%s: storage '%s': read failed: %s", f->path, kb, strerror(errno));
        if (r != 8)
            return gn_error_set(err, "%s: storage '%s': truncated (the file ends at byte %" PRIu64
                                ", inside the storage's size field at %" PRIu64 ")", f->path, kb,
                                f->size, off);
        uint64_t count = 0;
        for (int b = 7; b >= 0; b--)
            count = (count << 8) | hdr[b];
        if (count != (uint64_t)st->numel)
            return gn_error_set(err, "%s: storage '%s': the storage table says %" PRIu64 " elements, the "
                                "pickle declares %" PRId64, f->path, kb, count, st->numel);
        uint64_t bytes = count * (uint64_t)gn_pt_dtype_size(st->dtype); /* checked by the unpickler */
        if (bytes > f->size - (off + 8))
            return gn_error_set(err, "%s: storage '%s': truncated (%" PRIu64 " bytes of %s data from byte %"
                                PRIu64 ", the file has %" PRIu64 ")", f->path, kb, bytes,
                                gn_pt_dtype_name(st->dtype), off + 8, f->size);
        st->offset = off + 8;
        st->resolved = true;
        off += 8 + bytes;
    }
    for (int i = 0; i < n_storages(f); i++)
        if (!storage_at(f, i)->resolved)
            return gn_error_set(err, "%s: storage '%s' is used by a tensor but missing from the storage "
                                "table", f->path, storage_at(f, i)->key);
    *pos = (size_t)p;
    return 0;
}

static int open_legacy(gn_pt_file *f, gn_error *err)
{
    legacy_buf lb = {.f = f};
    size_t pos;
    int rc = legacy_pickles(f, &lb, &pos, err);
    free(lb.buf);
    return rc;
}

/* ------------------------------------------------------------------ open / close */

int gn_pt_open(const char *path, gn_pt_file **out, gn_error *err)
{
    if (out)
        *out = NULL;
    if (!path || !out)
        return gn_error_set(err, "gn_pt_open: NULL argument");
    gn_pt_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return gn_error_set(err, "%s: out of memory", path);
    }
    f->fd = -1;
    gn__pt_heap_init(&f->heap);
    int rc = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    uint8_t head[4] = {0};
    ssize_t hn;
    if (fd < 0) {
        gn_error_set(err, "%s: cannot open: %s", path, strerror(errno));
        goto done;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        gn_error_set(err, "%s: not a regular file", path);
        close(fd);
        goto done;
    }
    f->size = (uint64_t)sb.st_size;
    hn = gn__pread_full(fd, head, 4, 0);
    if (hn < 0) {
        gn_error_set(err, "%s: read failed: %s", path, strerror(errno));
        close(fd);
        goto done;
    }
    if (hn == 0) {
        gn_error_set(err, "%s: empty file, not a PyTorch checkpoint", path);
        close(fd);
        goto done;
    }
    if (hn == 4 && head[0] == 'P' && head[1] == 'K' &&
        ((head[2] == 3 && head[3] == 4) || (head[2] == 5 && head[3] == 6))) {
        close(fd);
        f->format = GN__PT_ZIP;
        rc = open_zip(f, err);
    } else if (head[0] == 0x80) {
        f->fd = fd;
        f->format = GN__PT_LEGACY;
        rc = open_legacy(f, err);
    } else {
        close(fd);
        gn_error_set(err, "%s: not a PyTorch checkpoint (neither a zip archive nor a legacy "
                     "torch.save stream)", path);
    }
done:
    if (rc < 0) {
        gn_pt_close(f);
        return -1;
    }
    *out = f;
    return 0;
}

void gn_pt_close(gn_pt_file *f)
{
    if (!f)
        return;
    gn__pt_heap_free(&f->heap);
    if (f->zip)
        zip_discard(f->zip);
    if (f->fd >= 0)
        close(f->fd);
    free(f->prefix);
    free(f->path);
    free(f);
}

const char *gn_pt_path(const gn_pt_file *f) { return f ? f->path : NULL; }
const char *gn_pt_format(const gn_pt_file *f)
{
    return !f ? NULL : f->format == GN__PT_ZIP ? "zip" : "legacy";
}
const gn_pv *gn_pt_root(const gn_pt_file *f) { return f ? f->root : NULL; }

/* ------------------------------------------------------------------ storage streams */

static int stream_fail(const gn__pt_stream *s, const char *why, gn_error *err)
{
    return gn_error_set(err, "%s: storage '%s': reading '%s/data/%s' failed: %s", s->f->path,
                        s->st->key, s->f->prefix, s->st->key, why);
}

/* skip n bytes of a zip entry by reading them */
static int zip_skip(gn__pt_stream *s, uint64_t n, gn_error *err)
{
    char scratch[1 << 14];
    while (n > 0) {
        zip_int64_t r = zip_fread(s->zf, scratch, n < sizeof scratch ? n : sizeof scratch);
        if (r < 0)
            return stream_fail(s, zip_file_strerror(s->zf), err);
        if (r == 0)
            return stream_fail(s, "entry ends early", err);
        n -= (uint64_t)r;
    }
    return 0;
}

int gn__pt_stream_open(gn_pt_file *f, gn__pt_storage *st, uint64_t from, gn__pt_stream *s,
                       gn_error *err)
{
    memset(s, 0, sizeof *s);
    s->f = f;
    s->st = st;
    s->pos = from;
    if (!st->resolved)
        return gn_error_set(err, "%s: storage '%s' is not resolved", f->path, st->key);
    if (f->format != GN__PT_ZIP)
        return 0;
    s->zf = zip_fopen_index(f->zip, (zip_uint64_t)st->zindex, 0);
    if (!s->zf)
        return stream_fail(s, zip_strerror(f->zip), err);
    if (from == 0)
        return 0;
    if (zip_fseek(s->zf, (zip_int64_t)from, SEEK_SET) == 0)
        return 0;
    /* compressed: no seeking; start again and read up to `from` */
    zip_fclose(s->zf);
    s->zf = zip_fopen_index(f->zip, (zip_uint64_t)st->zindex, 0);
    if (!s->zf)
        return stream_fail(s, zip_strerror(f->zip), err);
    if (zip_skip(s, from, err) < 0) {
        zip_fclose(s->zf);
        s->zf = NULL;
        return -1;
    }
    return 0;
}

int gn__pt_stream_read(gn__pt_stream *s, void *dst, size_t n, gn_error *err)
{
    if (s->f->format == GN__PT_ZIP) {
        size_t got = 0;
        while (got < n) {
            zip_int64_t r = zip_fread(s->zf, (char *)dst + got, n - got);
            if (r < 0)
                return stream_fail(s, zip_file_strerror(s->zf), err);
            if (r == 0)
                return stream_fail(s, "entry ends early", err);
            got += (size_t)r;
        }
    } else {
        ssize_t r = gn__pread_full(s->f->fd, dst, n, s->st->offset + s->pos);
        if (r < 0)
            return gn_error_set(err, "%s: storage '%s': read failed: %s", s->f->path, s->st->key,
                                strerror(errno));
        if ((size_t)r != n)
            return gn_error_set(err, "%s: storage '%s': the file ends inside the storage (was it "
                                "truncated after opening?)", s->f->path, s->st->key);
    }
    s->pos += n;
    return 0;
}

int gn__pt_stream_close(gn__pt_stream *s, bool verify_end, gn_error *err)
{
    int rc = 0;
    if (s->zf) {
        if (verify_end) {
            char c;
            zip_int64_t r = zip_fread(s->zf, &c, 1);
            if (r < 0)
                rc = stream_fail(s, zip_file_strerror(s->zf), err);
            else if (r > 0)
                rc = stream_fail(s, "entry is longer than its declared size", err);
        }
        zip_fclose(s->zf);
        s->zf = NULL;
    }
    return rc;
}
