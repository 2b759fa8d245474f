/* torch_value.c — value nodes of the checkpoint reader: the heap that owns them, dicts
 * with a hash index, the finished-tree check and the public gn_pv_* accessors (see
 * gpunas/torchfile.h and torch_internal.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "import/torch_internal.h"

/* ------------------------------------------------------------------ heap */

void gn__pt_heap_init(gn__pt_heap *h) { memset(h, 0, sizeof *h); }

static void node_free(gn_pv *v)
{
    switch (v->kind) {
    case GN_PV_STR:
    case GN_PV_BYTES:
        free(v->u.s.p);
        break;
    case GN_PV_TUPLE:
    case GN_PV_LIST:
    case GN_PV_DICT:
        free(v->u.c.items);
        free(v->u.c.keys);
        free(v->u.c.table);
        break;
    case GN_PV_TENSOR:
        free(v->u.t);
        break;
    case GN__PV_STORAGE:
        if (v->u.st) {
            free(v->u.st->key);
            free(v->u.st->location);
            free(v->u.st);
        }
        break;
    default:
        break;
    }
    free(v);
}

void gn__pt_heap_free(gn__pt_heap *h)
{
    gn_pv *v = h->all;
    while (v) {
        gn_pv *n = v->next;
        node_free(v);
        v = n;
    }
    memset(h, 0, sizeof *h);
}

int gn__pt_charge(gn__pt_heap *h, size_t n)
{
    uint64_t limit = (uint64_t)GN__PT_HEAP_BASE;
    if (h->consumed > (UINT64_MAX - limit) / GN__PT_HEAP_PER_BYTE)
        limit = UINT64_MAX;
    else
        limit += h->consumed * GN__PT_HEAP_PER_BYTE;
    if ((uint64_t)n > limit || (uint64_t)h->used > limit - (uint64_t)n) {
        h->fail = GN__PT_FAIL_BUDGET;
        return -1;
    }
    h->used += n;
    return 0;
}

const char *gn__pt_fail_text(const gn__pt_heap *h, char *buf, size_t cap)
{
    switch (h->fail) {
    case GN__PT_FAIL_OOM:
        snprintf(buf, cap, "out of memory");
        break;
    case GN__PT_FAIL_BUDGET:
        snprintf(buf, cap, "the value tree would need more than %zu bytes of memory "
                 "(the limit is 1 MiB + %d bytes per pickle byte)", h->used,
                 GN__PT_HEAP_PER_BYTE);
        break;
    case GN__PT_FAIL_KEY:
        snprintf(buf, cap, "dict key is not hashable here (keys are None, bool, int, "
                 "float, str, bytes or tuples of them nested at most %d deep)",
                 GN__PT_MAX_KEY_DEPTH);
        break;
    case GN__PT_FAIL_ITEMS:
        snprintf(buf, cap, "container has more than %d items", GN__PT_MAX_ITEMS);
        break;
    default:
        snprintf(buf, cap, "internal error");
        break;
    }
    return buf;
}

gn_pv *gn__pt_new(gn__pt_heap *h, int kind)
{
    size_t extra = kind == GN_PV_TENSOR ? sizeof(gn__pt_tensor)
                   : kind == GN__PV_STORAGE ? sizeof(gn__pt_storage) : 0;
    if (gn__pt_charge(h, sizeof(gn_pv) + extra) < 0)
        return NULL;
    gn_pv *v = calloc(1, sizeof *v);
    if (!v) {
        h->fail = GN__PT_FAIL_OOM;
        return NULL;
    }
    v->kind = kind;
    if (kind == GN_PV_TENSOR || kind == GN__PV_STORAGE) {
        void *p = calloc(1, extra);
        if (!p) {
            free(v);
            h->fail = GN__PT_FAIL_OOM;
            return NULL;
        }
        if (kind == GN_PV_TENSOR)
            v->u.t = p;
        else
            v->u.st = p;
    }
    v->next = h->all;
    h->all = v;
    return v;
}

gn_pv *gn__pt_new_str(gn__pt_heap *h, int kind, const void *p, size_t n)
{
    if (n >= SIZE_MAX || gn__pt_charge(h, n + 1) < 0)
        return NULL;
    char *s = malloc(n + 1);
    if (!s) {
        h->fail = GN__PT_FAIL_OOM;
        return NULL;
    }
    if (n)
        memcpy(s, p, n);
    s[n] = 0;
    gn_pv *v = gn__pt_new(h, kind);
    if (!v) {
        free(s);
        return NULL;
    }
    v->u.s.p = s;
    v->u.s.n = n;
    return v;
}

/* ------------------------------------------------------------------ containers */

/* grow *arr (element size es) from *cap to hold n+1 elements */
static int grow(gn__pt_heap *h, void **arr, int *cap, int n, size_t es)
{
    if (n < *cap)
        return 0;
    if (n >= GN__PT_MAX_ITEMS) {
        h->fail = GN__PT_FAIL_ITEMS;
        return -1;
    }
    int nc = *cap ? (*cap > GN__PT_MAX_ITEMS / 2 ? GN__PT_MAX_ITEMS : *cap * 2) : 4;
    if (gn__pt_charge(h, (size_t)(nc - *cap) * es) < 0)
        return -1;
    void *p = realloc(*arr, (size_t)nc * es);
    if (!p) {
        h->fail = GN__PT_FAIL_OOM;
        return -1;
    }
    *arr = p;
    *cap = nc;
    return 0;
}

int gn__pt_seq_push(gn__pt_heap *h, gn_pv *seq, gn_pv *item)
{
    int cap = seq->u.c.cap;
    if (grow(h, (void **)&seq->u.c.items, &cap, seq->u.c.n, sizeof(gn_pv *)) < 0)
        return -1;
    seq->u.c.cap = cap;
    seq->u.c.items[seq->u.c.n++] = item;
    return 0;
}

static uint64_t fnv(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *b = p;
    uint64_t x = 1469598103934665603ull ^ seed;
    for (size_t i = 0; i < n; i++) {
        x ^= b[i];
        x *= 1099511628211ull;
    }
    return x;
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

/* float with an integral value that fits int64: its int (Python: 1.0 == 1) */
static bool float_as_int(double f, int64_t *i)
{
    if (!isfinite(f) || f != trunc(f) || f < -9223372036854775808.0 || f >= 9223372036854775808.0)
        return false;
    *i = (int64_t)f;
    return true;
}

static int key_hash(const gn_pv *k, int depth, uint64_t *out)
{
    int64_t i;
    switch (k->kind) {
    case GN_PV_NONE:
        *out = 0x6e6f6e65ull;
        return 0;
    case GN_PV_BOOL:
        *out = mix((uint64_t)(k->u.b ? 1 : 0));
        return 0;
    case GN_PV_INT:
        *out = mix((uint64_t)k->u.i);
        return 0;
    case GN_PV_FLOAT:
        if (float_as_int(k->u.f, &i)) {
            *out = mix((uint64_t)i);
        } else {
            uint64_t b;
            memcpy(&b, &k->u.f, 8);
            *out = mix(b ^ 0x5555555555555555ull);
        }
        return 0;
    case GN_PV_STR:
        *out = fnv(k->u.s.p, k->u.s.n, 1);
        return 0;
    case GN_PV_BYTES:
        *out = fnv(k->u.s.p, k->u.s.n, 2);
        return 0;
    case GN_PV_TUPLE: {
        if (depth >= GN__PT_MAX_KEY_DEPTH)
            return -1;
        uint64_t x = 0x345678ull;
        for (int j = 0; j < k->u.c.n; j++) {
            uint64_t e;
            if (key_hash(k->u.c.items[j], depth + 1, &e) < 0)
                return -1;
            x = mix(x ^ e) + (uint64_t)j;
        }
        *out = x;
        return 0;
    }
    default:
        return -1;
    }
}

static bool is_num(const gn_pv *v)
{
    return v->kind == GN_PV_BOOL || v->kind == GN_PV_INT || v->kind == GN_PV_FLOAT;
}

/* Python's == for the hashable kinds (identity first, as dict lookup does) */
static bool key_eq(const gn_pv *a, const gn_pv *b)
{
    if (a == b)
        return true;
    if (is_num(a) && is_num(b)) {
        if (a->kind == GN_PV_FLOAT && b->kind == GN_PV_FLOAT)
            return a->u.f == b->u.f;
        if (a->kind == GN_PV_FLOAT || b->kind == GN_PV_FLOAT) {
            const gn_pv *fl = a->kind == GN_PV_FLOAT ? a : b, *in = fl == a ? b : a;
            int64_t i;
            return float_as_int(fl->u.f, &i) && i == gn_pv_int(in);
        }
        return gn_pv_int(a) == gn_pv_int(b);
    }
    if (a->kind != b->kind)
        return false;
    switch (a->kind) {
    case GN_PV_NONE:
        return true;
    case GN_PV_STR:
    case GN_PV_BYTES:
        return a->u.s.n == b->u.s.n && memcmp(a->u.s.p, b->u.s.p, a->u.s.n) == 0;
    case GN_PV_TUPLE:
        if (a->u.c.n != b->u.c.n)
            return false;
        for (int j = 0; j < a->u.c.n; j++)
            if (!key_eq(a->u.c.items[j], b->u.c.items[j]))
                return false;
        return true;
    default:
        return false;
    }
}

static void table_insert(gn_pv *d, uint64_t hv, int entry)
{
    uint32_t mask = (uint32_t)d->u.c.tcap - 1, i = (uint32_t)hv & mask;
    while (d->u.c.table[i] >= 0)
        i = (i + 1) & mask;
    d->u.c.table[i] = entry;
}

static int rehash(gn__pt_heap *h, gn_pv *d, int tcap)
{
    if (gn__pt_charge(h, (size_t)(tcap > d->u.c.tcap ? tcap - d->u.c.tcap : 0) * sizeof(int32_t)) < 0)
        return -1;
    int32_t *t = malloc((size_t)tcap * sizeof *t);
    if (!t) {
        h->fail = GN__PT_FAIL_OOM;
        return -1;
    }
    free(d->u.c.table);
    d->u.c.table = t;
    d->u.c.tcap = tcap;
    for (int i = 0; i < tcap; i++)
        t[i] = -1;
    for (int e = 0; e < d->u.c.n; e++) {
        uint64_t hv = 0;
        key_hash(d->u.c.keys[e], 0, &hv); /* hashed before, cannot fail */
        table_insert(d, hv, e);
    }
    return 0;
}

int gn__pt_dict_set(gn__pt_heap *h, gn_pv *d, gn_pv *key, gn_pv *val)
{
    uint64_t hv;
    if (key_hash(key, 0, &hv) < 0) {
        h->fail = GN__PT_FAIL_KEY;
        return -1;
    }
    if (d->u.c.tcap) {
        uint32_t mask = (uint32_t)d->u.c.tcap - 1, i = (uint32_t)hv & mask;
        for (int32_t e; (e = d->u.c.table[i]) >= 0; i = (i + 1) & mask)
            if (key_eq(d->u.c.keys[e], key)) {
                d->u.c.items[e] = val;
                return 0;
            }
    }
    int n = d->u.c.n;
    if (n >= GN__PT_MAX_ITEMS / 2) {
        h->fail = GN__PT_FAIL_ITEMS;
        return -1;
    }
    int kc = d->u.c.cap, vc = d->u.c.cap;
    if (grow(h, (void **)&d->u.c.keys, &kc, n, sizeof(gn_pv *)) < 0)
        return -1;
    if (grow(h, (void **)&d->u.c.items, &vc, n, sizeof(gn_pv *)) < 0)
        return -1;
    /* both arrays grew from the same cap to the same size, or neither did */
    d->u.c.cap = kc;
    d->u.c.keys[n] = key;
    d->u.c.items[n] = val;
    d->u.c.n = n + 1;
    if ((int64_t)(n + 1) * 2 > d->u.c.tcap) {
        int tc = d->u.c.tcap ? d->u.c.tcap * 2 : 8;
        while ((int64_t)(n + 1) * 2 > tc)
            tc *= 2;
        if (rehash(h, d, tc) < 0) {
            d->u.c.n = n;
            return -1;
        }
    } else {
        table_insert(d, hv, n);
    }
    return 0;
}

gn_pv *gn__pt_dict_find_str(const gn_pv *d, const char *key, size_t n)
{
    if (!d || d->kind != GN_PV_DICT || !d->u.c.tcap)
        return NULL;
    uint64_t hv = fnv(key, n, 1);
    uint32_t mask = (uint32_t)d->u.c.tcap - 1, i = (uint32_t)hv & mask;
    for (int32_t e; (e = d->u.c.table[i]) >= 0; i = (i + 1) & mask) {
        const gn_pv *k = d->u.c.keys[e];
        if (k->kind == GN_PV_STR && k->u.s.n == n && memcmp(k->u.s.p, key, n) == 0)
            return d->u.c.items[e];
    }
    return NULL;
}

/* ------------------------------------------------------------------ tree check */

const char *gn__pt_printable(const char *s, size_t n, char *buf, size_t cap)
{
    size_t o = 0;
    if (cap == 0)
        return buf;
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        if (i == GN__PT_NM) {
            for (int k = 0; k < 3 && o + 1 < cap; k++)
                buf[o++] = '.';
            break;
        }
        unsigned char c = (unsigned char)s[i];
        buf[o++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    buf[o] = 0;
    return buf;
}

static int check(gn_pv *v, int depth, bool allow_magic, char *why, size_t cap)
{
    if (depth > GN__PT_MAX_DEPTH) {
        snprintf(why, cap, "values are nested more than %d deep", GN__PT_MAX_DEPTH);
        return -1;
    }
    if (v->color == 1) {
        snprintf(why, cap, "a %s contains itself (cyclic values are not read)",
                 gn_pv_kind_name((gn_pv_kind)v->kind));
        return -1;
    }
    if (v->color == 2) {
        if (depth - 1 + v->height > GN__PT_MAX_DEPTH) {
            snprintf(why, cap, "values are nested more than %d deep", GN__PT_MAX_DEPTH);
            return -1;
        }
        return 0;
    }
    char nb[GN__PT_NM + 8];
    switch (v->kind) {
    case GN__PV_CLASS:
        snprintf(why, cap, "the class %s itself is a value (only its results are read)",
                 v->u.cls.name);
        return -1;
    case GN__PV_STORAGE:
        snprintf(why, cap, "storage '%s' appears outside a tensor (bare storages are not read)",
                 gn__pt_printable(v->u.st->key, v->u.st->key_len, nb, sizeof nb));
        return -1;
    case GN__PV_MAGIC:
        if (!allow_magic || depth != 1) {
            snprintf(why, cap, "the legacy magic number appears inside a value");
            return -1;
        }
        break;
    default:
        break;
    }
    v->color = 1;
    int hgt = 1;
    gn_pv *kids[2] = {NULL, NULL};
    if (v->kind == GN_PV_TUPLE || v->kind == GN_PV_LIST || v->kind == GN_PV_DICT) {
        for (int i = 0; i < v->u.c.n; i++) {
            for (int w = 0; w < 2; w++) {
                gn_pv *c = w == 0 ? v->u.c.items[i] : (v->kind == GN_PV_DICT ? v->u.c.keys[i] : NULL);
                if (!c)
                    continue;
                if (check(c, depth + 1, allow_magic, why, cap) < 0)
                    return -1;
                if (c->height + 1 > hgt)
                    hgt = c->height + 1;
            }
        }
        if (v->kind == GN_PV_DICT)
            kids[0] = v->u.c.attrs;
    } else if (v->kind == GN_PV_OBJECT) {
        kids[0] = v->u.o.state;
    }
    for (int w = 0; w < 2; w++) {
        gn_pv *c = kids[w];
        if (!c)
            continue;
        if (check(c, depth + 1, allow_magic, why, cap) < 0)
            return -1;
        if (c->height + 1 > hgt)
            hgt = c->height + 1;
    }
    v->color = 2;
    v->height = hgt;
    return 0;
}

int gn__pt_check_tree(gn_pv *root, bool allow_magic, char *why, size_t cap)
{
    return check(root, 1, allow_magic, why, cap);
}

/* ------------------------------------------------------------------ public accessors */

static bool is_public(const gn_pv *v) { return v && v->kind >= GN_PV_NONE && v->kind <= GN_PV_OBJECT; }

gn_pv_kind gn_pv_kind_of(const gn_pv *v) { return is_public(v) ? (gn_pv_kind)v->kind : GN_PV_NONE; }

const char *gn_pv_kind_name(gn_pv_kind k)
{
    static const char *const names[] = {"None", "bool", "int", "float", "str", "bytes",
                                        "tuple", "list", "dict", "tensor", "object"};
    if ((int)k >= 0 && (int)k < (int)(sizeof names / sizeof names[0]))
        return names[k];
    switch ((int)k) {
    case GN__PV_CLASS:
        return "class";
    case GN__PV_STORAGE:
        return "storage";
    case GN__PV_MAGIC:
        return "magic number";
    default:
        return "?";
    }
}

bool gn_pv_bool(const gn_pv *v) { return v && v->kind == GN_PV_BOOL && v->u.b; }

int64_t gn_pv_int(const gn_pv *v)
{
    if (!v)
        return 0;
    if (v->kind == GN_PV_INT)
        return v->u.i;
    if (v->kind == GN_PV_BOOL)
        return v->u.b ? 1 : 0;
    return 0;
}

double gn_pv_float(const gn_pv *v)
{
    if (!v)
        return 0.0;
    if (v->kind == GN_PV_FLOAT)
        return v->u.f;
    if (v->kind == GN_PV_INT || v->kind == GN_PV_BOOL)
        return (double)gn_pv_int(v);
    return 0.0;
}

const char *gn_pv_str(const gn_pv *v, size_t *len)
{
    if (!v || (v->kind != GN_PV_STR && v->kind != GN_PV_BYTES)) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = v->u.s.n;
    return v->u.s.p;
}

static bool is_container(const gn_pv *v)
{
    return v && (v->kind == GN_PV_TUPLE || v->kind == GN_PV_LIST || v->kind == GN_PV_DICT);
}

int gn_pv_len(const gn_pv *v) { return is_container(v) ? v->u.c.n : 0; }

const gn_pv *gn_pv_item(const gn_pv *v, int i)
{
    if (!is_container(v) || i < 0 || i >= v->u.c.n)
        return NULL;
    return v->u.c.items[i];
}

const gn_pv *gn_pv_key(const gn_pv *v, int i)
{
    if (!v || v->kind != GN_PV_DICT || i < 0 || i >= v->u.c.n)
        return NULL;
    return v->u.c.keys[i];
}

const gn_pv *gn_pv_dict_get(const gn_pv *v, const char *key)
{
    if (!v || !key)
        return NULL;
    if (v->kind == GN_PV_OBJECT)
        v = v->u.o.state;
    return gn__pt_dict_find_str(v, key, strlen(key));
}

const char *gn_pv_class(const gn_pv *v)
{
    if (!v)
        return NULL;
    if (v->kind == GN_PV_OBJECT)
        return v->u.o.cls;
    if (v->kind == GN_PV_DICT)
        return (v->flags & GN__PV_ORDERED) ? "collections.OrderedDict" : "dict";
    return NULL;
}

const gn_pv *gn_pv_state(const gn_pv *v)
{
    if (!v)
        return NULL;
    if (v->kind == GN_PV_OBJECT)
        return v->u.o.state;
    if (v->kind == GN_PV_DICT)
        return v->u.c.attrs;
    return NULL;
}

const gn_pt_tensor_info *gn_pv_tensor(const gn_pv *v)
{
    return v && v->kind == GN_PV_TENSOR ? &v->u.t->info : NULL;
}
