/*
 * torch_internal.h — shared between the files of the PyTorch checkpoint reader
 * (see gpunas/torchfile.h for the formats and the rules):
 *
 *   torch_value.c      value nodes, the heap that owns them (with its memory budget),
 *                      dicts (hash index), the tree check, the public gn_pv_* accessors
 *   torch_pickle.c     the restricted unpickler: bytes -> value tree
 *   torch_container.c  zip and legacy containers, storage lookup, gn_pt_open/close,
 *                      sequential storage streams
 *   torch_read.c       dtypes, float16/bfloat16 conversion, gn_pt_read_f32/i64
 */
#ifndef GPUNAS_TORCH_INTERNAL_H
#define GPUNAS_TORCH_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zip.h>

#include "gpunas/error.h"
#include "gpunas/torchfile.h"

/* limits (documented in gpunas/torchfile.h) */
#define GN__PT_MAX_PICKLE ((uint64_t)1 << 30)
#define GN__PT_HEAP_BASE ((size_t)1 << 20)
#define GN__PT_HEAP_PER_BYTE 128
#define GN__PT_MAX_STACK ((size_t)1 << 22)
#define GN__PT_MEMO_SLACK 1024
#define GN__PT_MAX_MARKS 512
#define GN__PT_MAX_DEPTH 256
#define GN__PT_MAX_KEY_DEPTH 16
#define GN__PT_MAX_ITEMS ((int)((1u << 30) - 1))

/* Names of values from the file are cut to this many bytes in messages. */
#define GN__PT_NM 120

/* internal node kinds, never reachable from a finished tree */
enum {
    GN__PV_CLASS = 100, /* a resolved GLOBAL (u.cls) */
    GN__PV_STORAGE,     /* a persistent id (u.st) */
    GN__PV_MAGIC        /* the legacy magic number (only as a whole pickle) */
};

/* the classes GLOBAL may name */
typedef enum {
    GN__PT_CLS_ORDEREDDICT,
    GN__PT_CLS_REBUILD_TENSOR_V2,
    GN__PT_CLS_REBUILD_PARAMETER,
    GN__PT_CLS_REBUILD_PARAMETER_STATE,
    GN__PT_CLS_STORAGE,
    GN__PT_CLS_NAMESPACE,
    GN__PT_CLS_CODECS_ENCODE,
    GN__PT_CLS_BYTES,
    GN__PT_CLS_SET
} gn__pt_cls;

/* node flags */
#define GN__PV_ORDERED 1u /* dict made by collections.OrderedDict */
#define GN__PV_SET 2u     /* list made by EMPTY_SET / builtins.set (ADDITEMS target) */

typedef struct {
    char *key;             /* NUL-terminated (the pickle's str, UTF-8 checked) */
    size_t key_len;
    gn_pt_dtype dtype;
    int64_t numel;         /* from the persistent id */
    char *location;        /* "cpu", "cuda:0", ... (informational) */
    /* filled in by the container */
    bool resolved;
    int64_t zindex;        /* zip: entry index of PREFIX/data/KEY */
    uint64_t offset;       /* legacy: file offset of the first data byte */
    bool listed;           /* legacy: seen in the key list */
} gn__pt_storage;

typedef struct {
    gn_pt_tensor_info info;
    gn_pv *storage;        /* a GN__PV_STORAGE node */
    uint64_t pos;          /* pickle byte of the REDUCE that built it (messages) */
} gn__pt_tensor;

struct gn_pv {
    int kind;              /* gn_pv_kind or GN__PV_* */
    unsigned flags;
    int color;             /* tree check: 0 new, 1 on the path, 2 done */
    int height;            /* tree check: 1 for leaves */
    gn_pv *next;           /* the heap's list of all nodes */
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            char *p;       /* NUL-terminated copy */
            size_t n;
        } s;               /* str, bytes */
        struct {
            gn_pv **items; /* tuple/list items, dict values */
            gn_pv **keys;  /* dict keys */
            int32_t *table;/* dict hash index: -1 free, else entry */
            int n, cap, tcap;
            gn_pv *attrs;  /* OrderedDict: dict set by BUILD, or NULL */
        } c;
        struct {
            const char *cls;
            gn_pv *state;  /* attribute dict */
        } o;
        struct {
            gn__pt_cls id;
            gn_pt_dtype dtype; /* storage classes */
            const char *name;  /* "collections.OrderedDict", ... */
        } cls;
        gn__pt_tensor *t;
        gn__pt_storage *st;
    } u;
};

/* Owns every node of one file.  Allocation is charged against a budget that grows with
 * the pickle bytes read: used <= GN__PT_HEAP_BASE + GN__PT_HEAP_PER_BYTE * consumed. */
typedef struct {
    gn_pv *all;
    size_t used;
    uint64_t consumed;
    gn_pv *storages;       /* dict: key (str) -> GN__PV_STORAGE node, first-use order */
    gn_pv *none_, *true_, *false_;
    int fail;              /* why the last heap call failed, GN__PT_FAIL_* */
} gn__pt_heap;

enum { GN__PT_FAIL_NONE, GN__PT_FAIL_OOM, GN__PT_FAIL_BUDGET, GN__PT_FAIL_KEY, GN__PT_FAIL_ITEMS };

void gn__pt_heap_init(gn__pt_heap *h);
void gn__pt_heap_free(gn__pt_heap *h);
/* A new zeroed node of `kind`; NULL on failure (h->fail says why). */
gn_pv *gn__pt_new(gn__pt_heap *h, int kind);
/* A str/bytes node holding a copy of p[0..n). */
gn_pv *gn__pt_new_str(gn__pt_heap *h, int kind, const void *p, size_t n);
/* Charge n more bytes; -1 (h->fail) if over budget. */
int gn__pt_charge(gn__pt_heap *h, size_t n);
/* The text for h->fail, e.g. "value tree exceeds its memory budget (...)". */
const char *gn__pt_fail_text(const gn__pt_heap *h, char *buf, size_t cap);

/* tuple/list append; -1 (h->fail) on failure */
int gn__pt_seq_push(gn__pt_heap *h, gn_pv *seq, gn_pv *item);
/* dict d[key] = val (an existing equal key keeps its position); -1 (h->fail) on failure,
 * GN__PT_FAIL_KEY when the key is not hashable (kind or nesting) */
int gn__pt_dict_set(gn__pt_heap *h, gn_pv *d, gn_pv *key, gn_pv *val);
/* value for a str key of n bytes, or NULL */
gn_pv *gn__pt_dict_find_str(const gn_pv *d, const char *key, size_t n);

/* Check the finished tree from root: no cycles, nesting <= GN__PT_MAX_DEPTH, no internal
 * nodes (classes, bare storages) left in it.  On failure writes the reason (no file
 * name) into why and returns -1. */
int gn__pt_check_tree(gn_pv *root, bool allow_magic, char *why, size_t cap);

/* Printable copy of a name from the file for messages: non-printable bytes as '?',
 * cut to GN__PT_NM bytes with "...". */
const char *gn__pt_printable(const char *s, size_t n, char *buf, size_t cap);

/* ------------------------------------------------------------------ unpickler */

/* The bytes being unpickled: buf[0..len) is what is available; positions are indices
 * into buf, and messages print base + position.  If `more` is set it is called when a
 * read needs bytes up to `need`; it may replace buf/len (more bytes, same prefix) and
 * returns -1 with err set on an I/O error.  A short buffer after that is "truncated". */
typedef struct gn__pt_input {
    const uint8_t *buf;
    size_t len;
    uint64_t base;
    int (*more)(struct gn__pt_input *in, size_t need, gn_error *err);
    void *ctx;
} gn__pt_input;

typedef struct {
    const char *path;      /* the file, for messages */
    const char *what;      /* "data.pkl", "legacy header", ... */
    int pid_len;           /* 5 (zip), 6 (legacy), 0: persistent ids are refused */
    bool allow_magic;      /* legacy: the magic number (a 10-byte LONG1) may appear */
} gn__pt_pickle_opts;

/* Unpickle one pickle starting at in->buf[start]; *out is its value (owned by h), *end
 * the position after STOP.  Returns 0 or -1 (err set). */
int gn__pt_unpickle(gn__pt_heap *h, gn__pt_input *in, size_t start,
                    const gn__pt_pickle_opts *o, gn_pv **out, size_t *end, gn_error *err);

/* ------------------------------------------------------------------ file */

enum { GN__PT_ZIP, GN__PT_LEGACY };

struct gn_pt_file {
    char *path;
    int format;
    gn__pt_heap heap;
    gn_pv *root;
    zip_t *zip;            /* zip format */
    char *prefix;          /* zip: the top-level folder */
    int fd;                /* legacy format, else -1 */
    uint64_t size;         /* legacy: file size */
};

/* Sequential reader of one storage's bytes from byte `from` on. */
typedef struct {
    gn_pt_file *f;
    gn__pt_storage *st;
    zip_file_t *zf;
    uint64_t pos;          /* byte position in the storage */
} gn__pt_stream;

int gn__pt_stream_open(gn_pt_file *f, gn__pt_storage *st, uint64_t from, gn__pt_stream *s,
                       gn_error *err);
/* exactly n bytes or an error */
int gn__pt_stream_read(gn__pt_stream *s, void *dst, size_t n, gn_error *err);
/* Close; with verify_end, first read to the end of a zip entry so that libzip checks
 * its size and CRC. */
int gn__pt_stream_close(gn__pt_stream *s, bool verify_end, gn_error *err);

#endif
