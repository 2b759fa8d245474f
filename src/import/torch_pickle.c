/* torch_pickle.c — the restricted unpickler of the checkpoint reader: a pickle stack
 * machine that knows only the opcodes and "classes" listed in gpunas/torchfile.h and
 * builds value nodes (torch_value.c) instead of calling anything. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "import/torch_internal.h"

/* ------------------------------------------------------------------ opcodes */

enum {
    OP_MARK = '(', OP_STOP = '.', OP_POP = '0', OP_POP_MARK = '1', OP_DUP = '2',
    OP_BININT = 'J', OP_BININT1 = 'K', OP_BININT2 = 'M', OP_NONE = 'N', OP_BINPERSID = 'Q',
    OP_REDUCE = 'R', OP_BINUNICODE = 'X', OP_APPEND = 'a', OP_BUILD = 'b', OP_GLOBAL = 'c',
    OP_DICT = 'd', OP_EMPTY_DICT = '}', OP_APPENDS = 'e', OP_BINGET = 'h', OP_LONG_BINGET = 'j',
    OP_LIST = 'l', OP_EMPTY_LIST = ']', OP_BINPUT = 'q', OP_LONG_BINPUT = 'r', OP_SETITEM = 's',
    OP_TUPLE = 't', OP_EMPTY_TUPLE = ')', OP_SETITEMS = 'u', OP_BINFLOAT = 'G',
    OP_PROTO = 0x80, OP_NEWOBJ = 0x81, OP_TUPLE1 = 0x85, OP_TUPLE2 = 0x86, OP_TUPLE3 = 0x87,
    OP_NEWTRUE = 0x88, OP_NEWFALSE = 0x89, OP_LONG1 = 0x8a, OP_BINBYTES = 'B',
    OP_SHORT_BINBYTES = 'C', OP_SHORT_BINUNICODE = 0x8c, OP_BINUNICODE8 = 0x8d,
    OP_BINBYTES8 = 0x8e, OP_EMPTY_SET = 0x8f, OP_ADDITEMS = 0x90, OP_STACK_GLOBAL = 0x93,
    OP_MEMOIZE = 0x94, OP_FRAME = 0x95
};

/* Python's names for every pickle opcode (for refusals). */
static const char *op_name(int op)
{
    switch (op) {
    case '(': return "MARK";
    case '.': return "STOP";
    case '0': return "POP";
    case '1': return "POP_MARK";
    case '2': return "DUP";
    case 'F': return "FLOAT";
    case 'I': return "INT";
    case 'J': return "BININT";
    case 'K': return "BININT1";
    case 'L': return "LONG";
    case 'M': return "BININT2";
    case 'N': return "NONE";
    case 'P': return "PERSID";
    case 'Q': return "BINPERSID";
    case 'R': return "REDUCE";
    case 'S': return "STRING";
    case 'T': return "BINSTRING";
    case 'U': return "SHORT_BINSTRING";
    case 'V': return "UNICODE";
    case 'X': return "BINUNICODE";
    case 'a': return "APPEND";
    case 'b': return "BUILD";
    case 'c': return "GLOBAL";
    case 'd': return "DICT";
    case '}': return "EMPTY_DICT";
    case 'e': return "APPENDS";
    case 'g': return "GET";
    case 'h': return "BINGET";
    case 'i': return "INST";
    case 'j': return "LONG_BINGET";
    case 'l': return "LIST";
    case ']': return "EMPTY_LIST";
    case 'o': return "OBJ";
    case 'p': return "PUT";
    case 'q': return "BINPUT";
    case 'r': return "LONG_BINPUT";
    case 's': return "SETITEM";
    case 't': return "TUPLE";
    case ')': return "EMPTY_TUPLE";
    case 'u': return "SETITEMS";
    case 'G': return "BINFLOAT";
    case 'B': return "BINBYTES";
    case 'C': return "SHORT_BINBYTES";
    case 0x80: return "PROTO";
    case 0x81: return "NEWOBJ";
    case 0x82: return "EXT1";
    case 0x83: return "EXT2";
    case 0x84: return "EXT4";
    case 0x85: return "TUPLE1";
    case 0x86: return "TUPLE2";
    case 0x87: return "TUPLE3";
    case 0x88: return "NEWTRUE";
    case 0x89: return "NEWFALSE";
    case 0x8a: return "LONG1";
    case 0x8b: return "LONG4";
    case 0x8c: return "SHORT_BINUNICODE";
    case 0x8d: return "BINUNICODE8";
    case 0x8e: return "BINBYTES8";
    case 0x8f: return "EMPTY_SET";
    case 0x90: return "ADDITEMS";
    case 0x91: return "FROZENSET";
    case 0x92: return "NEWOBJ_EX";
    case 0x93: return "STACK_GLOBAL";
    case 0x94: return "MEMOIZE";
    case 0x95: return "FRAME";
    case 0x96: return "BYTEARRAY8";
    case 0x97: return "NEXT_BUFFER";
    case 0x98: return "READONLY_BUFFER";
    default: return NULL;
    }
}

/* the legacy magic number 0x1950a86a20f9469cfc6c as LONG1's little-endian bytes */
static const uint8_t LEGACY_MAGIC[10] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};

/* ------------------------------------------------------------------ state */

typedef struct {
    gn__pt_heap *h;
    gn__pt_input *in;
    const gn__pt_pickle_opts *o;
    gn_error *err;
    size_t start, pos, op_pos;
    gn_pv **stack;
    size_t sn, scap;
    size_t marks[GN__PT_MAX_MARKS];
    int mn;
    gn_pv **memo;
    size_t memo_cap, memo_count;
} up;

static int fail(up *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(up *u, const char *fmt, ...)
{
    char msg[GN_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return gn_error_set(u->err, "%s: %s: byte %" PRIu64 ": %s", u->o->path, u->o->what,
                        u->in->base + (uint64_t)u->op_pos, msg);
}

/* a heap call failed: say why */
static int fail_heap(up *u)
{
    char why[256];
    return fail(u, "%s", gn__pt_fail_text(u->h, why, sizeof why));
}

/* n more bytes at pos, or NULL (err set) */
static const uint8_t *need(up *u, uint64_t n)
{
    gn__pt_input *in = u->in;
    if (n > in->len - u->pos) {
        if (in->more) {
            if (n > GN__PT_MAX_PICKLE || (u->pos - u->start) + n > GN__PT_MAX_PICKLE) {
                fail(u, "the pickle is larger than %" PRIu64 " bytes", GN__PT_MAX_PICKLE);
                return NULL;
            }
            if (in->more(in, u->pos + (size_t)n, u->err) < 0)
                return NULL;
        }
        if (n > in->len - u->pos) {
            gn_error_set(u->err, "%s: %s: truncated at byte %" PRIu64, u->o->path, u->o->what,
                         in->base + in->len);
            return NULL;
        }
    }
    const uint8_t *p = in->buf + u->pos;
    u->pos += (size_t)n;
    u->h->consumed += n;
    return p;
}

static uint64_t le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static int push(up *u, gn_pv *v)
{
    if (!v)
        return fail_heap(u);
    if (u->sn == u->scap) {
        if (u->scap >= GN__PT_MAX_STACK)
            return fail(u, "the stack holds more than %zu values", GN__PT_MAX_STACK);
        size_t nc = u->scap ? u->scap * 2 : 64;
        gn_pv **s = realloc(u->stack, nc * sizeof *s);
        if (!s)
            return fail(u, "out of memory");
        u->stack = s;
        u->scap = nc;
    }
    u->stack[u->sn++] = v;
    return 0;
}

/* stack index of the lowest value the current opcode may pop */
static size_t fence(const up *u) { return u->mn ? u->marks[u->mn - 1] : 0; }

/* Pop n values above the fence into out[0..n) (bottom first). */
static int popn(up *u, size_t n, gn_pv **out)
{
    if (u->sn - fence(u) < n)
        return fail(u, "stack underflow (%s needs %zu values)", op_name(u->in->buf[u->op_pos]), n);
    u->sn -= n;
    for (size_t i = 0; i < n; i++)
        out[i] = u->stack[u->sn + i];
    return 0;
}

static gn_pv *top(up *u)
{
    if (u->sn <= fence(u)) {
        fail(u, "stack underflow (%s needs a value)", op_name(u->in->buf[u->op_pos]));
        return NULL;
    }
    return u->stack[u->sn - 1];
}

/* Pop the topmost MARK: *first is the stack index of the first value above it; the
 * values stay in place (the caller truncates u->sn after using them). */
static int pop_mark(up *u, size_t *first)
{
    if (u->mn == 0)
        return fail(u, "%s without a MARK", op_name(u->in->buf[u->op_pos]));
    *first = u->marks[--u->mn];
    return 0;
}

/* the container that APPENDS/SETITEMS/ADDITEMS fill: just below the popped mark */
static gn_pv *below_mark(up *u, size_t first)
{
    if (first == 0 || first - 1 < fence(u)) {
        fail(u, "stack underflow (%s has no container below its MARK)",
             op_name(u->in->buf[u->op_pos]));
        return NULL;
    }
    return u->stack[first - 1];
}

static const char *kind_name(const gn_pv *v) { return gn_pv_kind_name((gn_pv_kind)v->kind); }

static bool utf8_ok(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
        if (len == 0 || n - i < len)
            return false;
        for (size_t k = 1; k < len; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
        if ((c == 0xe0 && s[i + 1] < 0xa0) || (c == 0xf0 && s[i + 1] < 0x90) ||
            (c == 0xf4 && s[i + 1] > 0x8f))
            return false;
        /* surrogates (ED A0..BF ..) pass, as Python's 'surrogatepass' lets them */
        i += len;
    }
    return true;
}

static bool str_is(const gn_pv *v, const char *s)
{
    return v && v->kind == GN_PV_STR && v->u.s.n == strlen(s) && memcmp(v->u.s.p, s, v->u.s.n) == 0;
}

static gn_pv *singleton(up *u, gn_pv **slot, int kind, bool b)
{
    if (!*slot) {
        *slot = gn__pt_new(u->h, kind);
        if (*slot) {
            (*slot)->u.b = b;
            (*slot)->color = 2; /* a leaf the tree check need not visit */
            (*slot)->height = 1;
        }
    }
    return *slot;
}

static gn_pv *new_int(up *u, int64_t i)
{
    gn_pv *v = gn__pt_new(u->h, GN_PV_INT);
    if (v)
        v->u.i = i;
    return v;
}

/* ------------------------------------------------------------------ classes */

typedef struct {
    const char *module, *name;
    gn__pt_cls id;
    gn_pt_dtype dtype;
    const char *full;
} cls_entry;

static const cls_entry CLASSES[] = {
    {"collections", "OrderedDict", GN__PT_CLS_ORDEREDDICT, 0, "collections.OrderedDict"},
    {"torch._utils", "_rebuild_tensor_v2", GN__PT_CLS_REBUILD_TENSOR_V2, 0,
     "torch._utils._rebuild_tensor_v2"},
    {"torch._utils", "_rebuild_parameter", GN__PT_CLS_REBUILD_PARAMETER, 0,
     "torch._utils._rebuild_parameter"},
    {"torch._utils", "_rebuild_parameter_with_state", GN__PT_CLS_REBUILD_PARAMETER_STATE, 0,
     "torch._utils._rebuild_parameter_with_state"},
    {"argparse", "Namespace", GN__PT_CLS_NAMESPACE, 0, "argparse.Namespace"},
    {"_codecs", "encode", GN__PT_CLS_CODECS_ENCODE, 0, "_codecs.encode"},
    {"builtins", "bytes", GN__PT_CLS_BYTES, 0, "builtins.bytes"},
    {"__builtin__", "bytes", GN__PT_CLS_BYTES, 0, "builtins.bytes"},
    {"builtins", "set", GN__PT_CLS_SET, 0, "builtins.set"},
    {"__builtin__", "set", GN__PT_CLS_SET, 0, "builtins.set"},
};

static const struct {
    const char *name;
    gn_pt_dtype dtype;
} STORAGES[] = {
    {"FloatStorage", GN_PT_F32}, {"DoubleStorage", GN_PT_F64}, {"HalfStorage", GN_PT_F16},
    {"BFloat16Storage", GN_PT_BF16}, {"LongStorage", GN_PT_I64}, {"IntStorage", GN_PT_I32},
    {"ShortStorage", GN_PT_I16}, {"CharStorage", GN_PT_I8}, {"ByteStorage", GN_PT_U8},
    {"BoolStorage", GN_PT_BOOL},
};

static bool eq(const char *a, size_t an, const char *b) { return an == strlen(b) && memcmp(a, b, an) == 0; }

/* push the class module.name, or refuse it */
static int resolve(up *u, const char *mod, size_t mn, const char *name, size_t nn)
{
    gn_pv *c = NULL;
    for (size_t i = 0; i < sizeof CLASSES / sizeof CLASSES[0]; i++)
        if (eq(mod, mn, CLASSES[i].module) && eq(name, nn, CLASSES[i].name)) {
            c = gn__pt_new(u->h, GN__PV_CLASS);
            if (!c)
                return fail_heap(u);
            c->u.cls.id = CLASSES[i].id;
            c->u.cls.name = CLASSES[i].full;
            return push(u, c);
        }
    if (eq(mod, mn, "torch") || eq(mod, mn, "torch.cuda"))
        for (size_t i = 0; i < sizeof STORAGES / sizeof STORAGES[0]; i++)
            if (eq(name, nn, STORAGES[i].name)) {
                c = gn__pt_new(u->h, GN__PV_CLASS);
                if (!c)
                    return fail_heap(u);
                c->u.cls.id = GN__PT_CLS_STORAGE;
                c->u.cls.dtype = STORAGES[i].dtype;
                c->u.cls.name = STORAGES[i].name;
                return push(u, c);
            }
    char mb[GN__PT_NM + 8], nb[GN__PT_NM + 8];
    gn__pt_printable(mod, mn, mb, sizeof mb);
    gn__pt_printable(name, nn, nb, sizeof nb);
    if ((eq(mod, mn, "torch") || eq(mod, mn, "torch.storage")) && eq(name, nn, "UntypedStorage"))
        return fail(u, "class '%s.%s' is not allowed (untyped storages are not read; state dicts "
                    "and checkpoints use typed storages such as torch.FloatStorage)", mb, nb);
    return fail(u, "class '%s.%s' is not allowed (only tensors, containers and argparse.Namespace "
                "are read; nothing is executed)", mb, nb);
}

/* GLOBAL's "module\nname\n" */
static int read_line(up *u, char *buf, size_t cap, size_t *n)
{
    *n = 0;
    for (;;) {
        const uint8_t *p = need(u, 1);
        if (!p)
            return -1;
        if (*p == '\n')
            return 0;
        if (*n + 1 >= cap)
            return fail(u, "GLOBAL name longer than %zu bytes", cap - 1);
        buf[(*n)++] = (char)*p;
    }
}

/* ------------------------------------------------------------------ calls */

static int64_t dtype_size(gn_pt_dtype t) { return gn_pt_dtype_size(t); }

/* the items of a tuple argument list, checking the count */
static int want_args(up *u, const gn_pv *cls, const gn_pv *args, int lo, int hi)
{
    if (args->kind != GN_PV_TUPLE)
        return fail(u, "%s called with a %s instead of an argument tuple", cls->u.cls.name,
                    kind_name(args));
    if (args->u.c.n < lo || args->u.c.n > hi) {
        if (lo == hi)
            return fail(u, "%s takes %d arguments, got %d", cls->u.cls.name, lo, args->u.c.n);
        return fail(u, "%s takes %d to %d arguments, got %d", cls->u.cls.name, lo, hi, args->u.c.n);
    }
    return 0;
}

static bool empty_dict(const gn_pv *v) { return v->kind == GN_PV_DICT && v->u.c.n == 0 && !v->u.c.attrs; }

static char *shape_str(int n, const int64_t *d, char *buf, size_t cap)
{
    size_t o = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < n && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%" PRId64, i ? "," : "", d[i]);
    if (o < cap)
        snprintf(buf + o, cap - o, "]");
    return buf;
}

static int int_tuple(up *u, const gn_pv *t, const char *what, int64_t *out, int *n)
{
    if (t->kind != GN_PV_TUPLE)
        return fail(u, "tensor %s is a %s, not a tuple", what, kind_name(t));
    if (t->u.c.n > GN_PT_MAX_DIMS)
        return fail(u, "tensor has %d dimensions (at most %d are read)", t->u.c.n, GN_PT_MAX_DIMS);
    for (int i = 0; i < t->u.c.n; i++) {
        const gn_pv *e = t->u.c.items[i];
        if (e->kind != GN_PV_INT)
            return fail(u, "tensor %s holds a %s, not an int", what, kind_name(e));
        if (e->u.i < 0)
            return fail(u, "tensor %s has a negative entry %" PRId64, what, e->u.i);
        out[i] = e->u.i;
    }
    *n = t->u.c.n;
    return 0;
}

static int rebuild_tensor(up *u, const gn_pv *cls, const gn_pv *args)
{
    if (want_args(u, cls, args, 6, 7) < 0)
        return -1;
    gn_pv *const *a = args->u.c.items;
    if (a[0]->kind != GN__PV_STORAGE)
        return fail(u, "tensor storage is a %s, not a persistent storage id", kind_name(a[0]));
    gn__pt_storage *st = a[0]->u.st;
    char kb[GN__PT_NM + 8];
    gn__pt_printable(st->key, st->key_len, kb, sizeof kb);
    if (a[1]->kind != GN_PV_INT || a[1]->u.i < 0)
        return fail(u, "tensor storage offset must be an int >= 0 (storage '%s')", kb);
    gn_pv *t = gn__pt_new(u->h, GN_PV_TENSOR);
    if (!t)
        return fail_heap(u);
    gn_pt_tensor_info *ti = &t->u.t->info;
    int ns = 0, nd = 0;
    if (int_tuple(u, a[2], "shape", ti->shape, &ns) < 0 || int_tuple(u, a[3], "stride", ti->stride, &nd) < 0)
        return -1;
    if (ns != nd)
        return fail(u, "tensor shape has %d dimensions but stride %d (storage '%s')", ns, nd, kb);
    if (a[4]->kind != GN_PV_BOOL)
        return fail(u, "tensor requires_grad is a %s, not a bool", kind_name(a[4]));
    if (!empty_dict(a[5]))
        return fail(u, "tensor backward hooks must be an empty dict (hooks are code; storage '%s')", kb);
    if (args->u.c.n == 7 && a[6]->kind != GN_PV_NONE && !empty_dict(a[6]))
        return fail(u, "tensor metadata must be None or an empty dict (storage '%s')", kb);
    ti->dtype = st->dtype;
    ti->ndim = ns;
    ti->offset = a[1]->u.i;
    ti->storage_key = st->key;
    ti->storage_numel = st->numel;
    ti->requires_grad = a[4]->u.b;
    t->u.t->storage = a[0];
    t->u.t->pos = u->in->base + u->op_pos;
    /* numel and the furthest element, in checked arithmetic */
    int64_t numel = 1, ext = 0;
    bool ovf = false;
    for (int i = 0; i < ns; i++)
        ovf |= __builtin_mul_overflow(numel, ti->shape[i], &numel);
    if (!ovf && numel > 0) {
        ext = ti->offset;
        for (int i = 0; i < ns; i++) {
            int64_t step;
            ovf |= __builtin_mul_overflow(ti->shape[i] - 1, ti->stride[i], &step);
            ovf |= __builtin_add_overflow(ext, step, &ext);
        }
    }
    char sb[200], tb[200];
    shape_str(ns, ti->shape, sb, sizeof sb);
    shape_str(ns, ti->stride, tb, sizeof tb);
    if (ovf)
        return fail(u, "tensor shape %s stride %s offset %" PRId64 " overflows 64-bit element "
                    "counts (storage '%s')", sb, tb, ti->offset, kb);
    ti->numel = numel;
    if (numel > 0 && ext >= st->numel)
        return fail(u, "tensor shape %s stride %s offset %" PRId64 " needs %" PRId64 " elements "
                    "of storage '%s', which has %" PRId64, sb, tb, ti->offset, ext + 1, kb, st->numel);
    return push(u, t);
}

static int rebuild_parameter(up *u, const gn_pv *cls, const gn_pv *args, bool with_state)
{
    if (want_args(u, cls, args, with_state ? 4 : 3, with_state ? 4 : 3) < 0)
        return -1;
    gn_pv *const *a = args->u.c.items;
    if (a[0]->kind != GN_PV_TENSOR)
        return fail(u, "%s: data is a %s, not a tensor", cls->u.cls.name, kind_name(a[0]));
    if (a[1]->kind != GN_PV_BOOL)
        return fail(u, "%s: requires_grad is a %s, not a bool", cls->u.cls.name, kind_name(a[1]));
    if (!empty_dict(a[2]))
        return fail(u, "%s: backward hooks must be an empty dict (hooks are code)", cls->u.cls.name);
    /* with_state: the parameter's Python attributes (a[3]) are not kept */
    gn_pv *t = gn__pt_new(u->h, GN_PV_TENSOR);
    if (!t)
        return fail_heap(u);
    *t->u.t = *a[0]->u.t;
    t->u.t->info.requires_grad = a[1]->u.b;
    return push(u, t);
}

/* OrderedDict(), OrderedDict(pairs) or OrderedDict(dict) */
static int ordered_dict(up *u, const gn_pv *cls, const gn_pv *args)
{
    if (want_args(u, cls, args, 0, 1) < 0)
        return -1;
    gn_pv *d = gn__pt_new(u->h, GN_PV_DICT);
    if (!d)
        return fail_heap(u);
    d->flags |= GN__PV_ORDERED;
    if (args->u.c.n == 1) {
        const gn_pv *src = args->u.c.items[0];
        if (src->kind == GN_PV_DICT) {
            for (int i = 0; i < src->u.c.n; i++)
                if (gn__pt_dict_set(u->h, d, src->u.c.keys[i], src->u.c.items[i]) < 0)
                    return fail_heap(u);
        } else if (src->kind == GN_PV_LIST || src->kind == GN_PV_TUPLE) {
            for (int i = 0; i < src->u.c.n; i++) {
                const gn_pv *p = src->u.c.items[i];
                if ((p->kind != GN_PV_TUPLE && p->kind != GN_PV_LIST) || p->u.c.n != 2)
                    return fail(u, "collections.OrderedDict: item %d is not a (key, value) pair", i);
                if (gn__pt_dict_set(u->h, d, p->u.c.items[0], p->u.c.items[1]) < 0)
                    return fail_heap(u);
            }
        } else {
            return fail(u, "collections.OrderedDict: argument is a %s (expected pairs or a dict)",
                        kind_name(src));
        }
    }
    return push(u, d);
}

/* _codecs.encode(str, 'latin1') -> bytes */
static int codecs_encode(up *u, const gn_pv *cls, const gn_pv *args)
{
    if (want_args(u, cls, args, 2, 2) < 0)
        return -1;
    const gn_pv *s = args->u.c.items[0];
    if (s->kind != GN_PV_STR || !str_is(args->u.c.items[1], "latin1"))
        return fail(u, "_codecs.encode is read only as encode(str, 'latin1')");
    const uint8_t *p = (const uint8_t *)s->u.s.p;
    size_t n = s->u.s.n, o = 0;
    char *buf = malloc(n + 1);
    if (!buf)
        return fail(u, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (p[i] < 0x80) {
            buf[o++] = (char)p[i];
        } else if ((p[i] == 0xc2 || p[i] == 0xc3) && i + 1 < n) {
            buf[o++] = (char)(((p[i] & 0x03) << 6) | (p[i + 1] & 0x3f));
            i++;
        } else {
            free(buf);
            return fail(u, "_codecs.encode: character above U+00FF cannot be latin1");
        }
    }
    gn_pv *b = gn__pt_new_str(u->h, GN_PV_BYTES, buf, o);
    free(buf);
    return push(u, b);
}

static gn_pv *new_namespace(up *u)
{
    gn_pv *o = gn__pt_new(u->h, GN_PV_OBJECT);
    gn_pv *st = o ? gn__pt_new(u->h, GN_PV_DICT) : NULL;
    if (!st)
        return NULL;
    o->u.o.cls = "argparse.Namespace";
    o->u.o.state = st;
    return o;
}

static int reduce(up *u, const gn_pv *cls, const gn_pv *args)
{
    if (cls->kind != GN__PV_CLASS)
        return fail(u, "REDUCE calls a %s (only the allowed classes can be called)", kind_name(cls));
    switch (cls->u.cls.id) {
    case GN__PT_CLS_ORDEREDDICT:
        return ordered_dict(u, cls, args);
    case GN__PT_CLS_REBUILD_TENSOR_V2:
        return rebuild_tensor(u, cls, args);
    case GN__PT_CLS_REBUILD_PARAMETER:
        return rebuild_parameter(u, cls, args, false);
    case GN__PT_CLS_REBUILD_PARAMETER_STATE:
        return rebuild_parameter(u, cls, args, true);
    case GN__PT_CLS_CODECS_ENCODE:
        return codecs_encode(u, cls, args);
    case GN__PT_CLS_BYTES:
        if (want_args(u, cls, args, 0, 0) < 0)
            return -1;
        return push(u, gn__pt_new_str(u->h, GN_PV_BYTES, "", 0));
    case GN__PT_CLS_SET: {
        if (want_args(u, cls, args, 0, 1) < 0)
            return -1;
        gn_pv *l = gn__pt_new(u->h, GN_PV_LIST);
        if (!l)
            return fail_heap(u);
        l->flags |= GN__PV_SET;
        if (args->u.c.n == 1) {
            const gn_pv *src = args->u.c.items[0];
            if (src->kind != GN_PV_LIST && src->kind != GN_PV_TUPLE)
                return fail(u, "builtins.set: argument is a %s, not a list", kind_name(src));
            for (int i = 0; i < src->u.c.n; i++)
                if (gn__pt_seq_push(u->h, l, src->u.c.items[i]) < 0)
                    return fail_heap(u);
        }
        return push(u, l);
    }
    case GN__PT_CLS_NAMESPACE:
        if (want_args(u, cls, args, 0, 0) < 0)
            return -1;
        return push(u, new_namespace(u));
    case GN__PT_CLS_STORAGE:
    default:
        return fail(u, "torch.%s is read only as the type inside a persistent id", cls->u.cls.name);
    }
}

/* d.update(state) for BUILD */
static int merge(up *u, gn_pv *dst, const gn_pv *state)
{
    for (int i = 0; i < state->u.c.n; i++)
        if (gn__pt_dict_set(u->h, dst, state->u.c.keys[i], state->u.c.items[i]) < 0)
            return fail_heap(u);
    return 0;
}

static int build(up *u, gn_pv *obj, const gn_pv *state)
{
    bool ns = obj->kind == GN_PV_OBJECT, od = obj->kind == GN_PV_DICT && (obj->flags & GN__PV_ORDERED);
    if (!ns && !od)
        return fail(u, "BUILD on a %s%s is not allowed (only OrderedDict and argparse.Namespace take "
                    "state)", obj->kind == GN_PV_DICT ? "plain " : "", kind_name(obj));
    if (state->kind == GN_PV_NONE)
        return 0;
    if (state->kind != GN_PV_DICT)
        return fail(u, "BUILD state is a %s (only a dict of attributes is read)", kind_name(state));
    if (ns)
        return merge(u, obj->u.o.state, state);
    if (!obj->u.c.attrs) {
        obj->u.c.attrs = gn__pt_new(u->h, GN_PV_DICT);
        if (!obj->u.c.attrs)
            return fail_heap(u);
    }
    return merge(u, obj->u.c.attrs, state);
}

static bool plain_key(const char *s, size_t n)
{
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return !(n <= 2 && s[0] == '.' && (n == 1 || s[1] == '.'));
}

/* BINPERSID: ('storage', <storage type>, key, location, numel[, None]) */
static int persistent(up *u, const gn_pv *pid)
{
    const gn__pt_pickle_opts *o = u->o;
    if (o->pid_len == 0)
        return fail(u, "persistent id outside the checkpoint's object pickle");
    if (pid->kind != GN_PV_TUPLE || pid->u.c.n != o->pid_len)
        return fail(u, "persistent id must be a tuple of %d items ('storage', type, key, location, "
                    "numel%s), got a %s of %d", o->pid_len, o->pid_len == 6 ? ", None" : "",
                    kind_name(pid), gn_pv_len(pid));
    gn_pv *const *a = pid->u.c.items;
    if (!str_is(a[0], "storage")) {
        char b[GN__PT_NM + 8] = "?";
        if (a[0]->kind == GN_PV_STR)
            gn__pt_printable(a[0]->u.s.p, a[0]->u.s.n, b, sizeof b);
        return fail(u, "persistent id of type '%s' is not allowed (only 'storage')", b);
    }
    if (a[1]->kind != GN__PV_CLASS || a[1]->u.cls.id != GN__PT_CLS_STORAGE)
        return fail(u, "persistent id storage type is a %s, not a torch storage class",
                    a[1]->kind == GN__PV_CLASS ? a[1]->u.cls.name : kind_name(a[1]));
    if (a[2]->kind != GN_PV_STR || !plain_key(a[2]->u.s.p, a[2]->u.s.n)) {
        char b[GN__PT_NM + 8] = "?";
        if (a[2]->kind == GN_PV_STR)
            gn__pt_printable(a[2]->u.s.p, a[2]->u.s.n, b, sizeof b);
        return fail(u, "storage key '%s' is not a plain name (1 to 64 of A-Z a-z 0-9 _ - .)", b);
    }
    const char *key = a[2]->u.s.p;
    if (a[3]->kind != GN_PV_STR)
        return fail(u, "storage '%s': location is a %s, not a str", key, kind_name(a[3]));
    gn_pt_dtype dt = a[1]->u.cls.dtype;
    int64_t bytes;
    if (a[4]->kind != GN_PV_INT || a[4]->u.i < 0 ||
        __builtin_mul_overflow(a[4]->u.i, dtype_size(dt), &bytes))
        return fail(u, "storage '%s': element count must be an int >= 0 that fits 64-bit bytes", key);
    if (o->pid_len == 6 && a[5]->kind != GN_PV_NONE)
        return fail(u, "storage '%s': storage views (view_metadata) are not supported", key);
    gn_pv *prev = gn__pt_dict_find_str(u->h->storages, key, a[2]->u.s.n);
    if (prev) {
        gn__pt_storage *ps = prev->u.st;
        if (ps->dtype != dt || ps->numel != a[4]->u.i)
            return fail(u, "storage '%s' is declared twice differently (%s x %" PRId64 ", then %s x %"
                        PRId64 ")", key, gn_pt_dtype_name(ps->dtype), ps->numel, gn_pt_dtype_name(dt),
                        a[4]->u.i);
        return push(u, prev);
    }
    if (!u->h->storages && !(u->h->storages = gn__pt_new(u->h, GN_PV_DICT)))
        return fail_heap(u);
    gn_pv *s = gn__pt_new(u->h, GN__PV_STORAGE);
    if (!s)
        return fail_heap(u);
    gn__pt_storage *st = s->u.st;
    st->dtype = dt;
    st->numel = a[4]->u.i;
    st->zindex = -1;
    if (gn__pt_charge(u->h, a[2]->u.s.n + a[3]->u.s.n + 2) < 0)
        return fail_heap(u);
    st->key = strdup(key);
    st->key_len = a[2]->u.s.n;
    st->location = strndup(a[3]->u.s.p, a[3]->u.s.n);
    if (!st->key || !st->location)
        return fail(u, "out of memory");
    if (gn__pt_dict_set(u->h, u->h->storages, a[2], s) < 0)
        return fail_heap(u);
    return push(u, s);
}

/* ------------------------------------------------------------------ the machine */

static int refuse_op(up *u, int op)
{
    const char *nm = op_name(op);
    if (!nm)
        return fail(u, "byte 0x%02x is not a pickle opcode", op);
    if (op >= 0x20 && op < 0x7f)
        return fail(u, "opcode 0x%02x ('%c', %s) is not allowed in a tensor checkpoint", op, op, nm);
    return fail(u, "opcode 0x%02x (%s) is not allowed in a tensor checkpoint", op, nm);
}

static int memo_put(up *u, uint64_t idx)
{
    gn_pv *v = top(u);
    if (!v)
        return -1;
    if (idx >= (uint64_t)(u->pos - u->start) + GN__PT_MEMO_SLACK)
        return fail(u, "memo index %" PRIu64 " is out of range", idx);
    if (idx >= u->memo_cap) {
        size_t nc = u->memo_cap ? u->memo_cap : 64;
        while (nc <= idx)
            nc *= 2;
        gn_pv **m = realloc(u->memo, nc * sizeof *m);
        if (!m)
            return fail(u, "out of memory");
        memset(m + u->memo_cap, 0, (nc - u->memo_cap) * sizeof *m);
        u->memo = m;
        u->memo_cap = nc;
    }
    if (!u->memo[idx])
        u->memo_count++;
    u->memo[idx] = v;
    return 0;
}

static int memo_get(up *u, uint64_t idx)
{
    if (idx >= u->memo_cap || !u->memo[idx])
        return fail(u, "memo index %" PRIu64 " was never stored", idx);
    return push(u, u->memo[idx]);
}

/* the values above the MARK at stack index first, then truncate the stack to it */
static int make_seq(up *u, int kind, size_t first)
{
    gn_pv *t = gn__pt_new(u->h, kind);
    if (!t)
        return fail_heap(u);
    for (size_t i = first; i < u->sn; i++)
        if (gn__pt_seq_push(u->h, t, u->stack[i]) < 0)
            return fail_heap(u);
    u->sn = first;
    return push(u, t);
}

static int set_pairs(up *u, gn_pv *d, size_t first)
{
    if ((u->sn - first) % 2)
        return fail(u, "%s with an odd number of values (%zu)", op_name(u->in->buf[u->op_pos]),
                    u->sn - first);
    for (size_t i = first; i < u->sn; i += 2)
        if (gn__pt_dict_set(u->h, d, u->stack[i], u->stack[i + 1]) < 0)
            return fail_heap(u);
    u->sn = first;
    return 0;
}

static int read_str(up *u, int kind, int lenbytes)
{
    const uint8_t *p = need(u, (uint64_t)lenbytes);
    if (!p)
        return -1;
    uint64_t n = le(p, lenbytes);
    if (!(p = need(u, n)))
        return -1;
    if (kind == GN_PV_STR && !utf8_ok(p, (size_t)n))
        return fail(u, "str is not valid UTF-8");
    return push(u, gn__pt_new_str(u->h, kind, p, (size_t)n));
}

static int step(up *u, int op)
{
    const uint8_t *p;
    gn_pv *v[3] = {NULL, NULL, NULL};
    size_t first = 0;
    switch (op) {
    case OP_PROTO:
        if (!(p = need(u, 1)))
            return -1;
        if (*p < 2 || *p > 5)
            return fail(u, "pickle protocol %d is not read (2 to 5)", *p);
        return 0;
    case OP_FRAME: /* framing only groups bytes; reading goes on across frames */
        return need(u, 8) ? 0 : -1;
    case OP_MARK:
        if (u->mn == GN__PT_MAX_MARKS)
            return fail(u, "more than %d open MARKs", GN__PT_MAX_MARKS);
        u->marks[u->mn++] = u->sn;
        return 0;
    case OP_POP:
        if (u->sn > fence(u))
            u->sn--;
        else if (u->mn > 0)
            u->mn--; /* as Python: POP with nothing above the mark drops the mark */
        else
            return fail(u, "stack underflow (POP on an empty stack)");
        return 0;
    case OP_POP_MARK:
        if (pop_mark(u, &first) < 0)
            return -1;
        u->sn = first;
        return 0;
    case OP_DUP:
        if (!(v[0] = top(u)))
            return -1;
        return push(u, v[0]);
    case OP_NONE:
        return push(u, singleton(u, &u->h->none_, GN_PV_NONE, false));
    case OP_NEWTRUE:
        return push(u, singleton(u, &u->h->true_, GN_PV_BOOL, true));
    case OP_NEWFALSE:
        return push(u, singleton(u, &u->h->false_, GN_PV_BOOL, false));
    case OP_BININT:
        if (!(p = need(u, 4)))
            return -1;
        return push(u, new_int(u, (int32_t)(uint32_t)le(p, 4)));
    case OP_BININT1:
        if (!(p = need(u, 1)))
            return -1;
        return push(u, new_int(u, p[0]));
    case OP_BININT2:
        if (!(p = need(u, 2)))
            return -1;
        return push(u, new_int(u, (int64_t)le(p, 2)));
    case OP_LONG1: {
        if (!(p = need(u, 1)))
            return -1;
        int n = p[0];
        if (!(p = need(u, (uint64_t)n)))
            return -1;
        if (n > 8) {
            if (u->o->allow_magic && n == 10 && memcmp(p, LEGACY_MAGIC, 10) == 0)
                return push(u, gn__pt_new(u->h, GN__PV_MAGIC));
            return fail(u, "integer of %d bytes is too large (at most 64-bit integers are read)", n);
        }
        uint64_t x = n ? le(p, n) : 0;
        if (n > 0 && n < 8 && (p[n - 1] & 0x80))
            x |= ~(uint64_t)0 << (8 * n); /* sign-extend */
        return push(u, new_int(u, (int64_t)x));
    }
    case OP_BINFLOAT: {
        if (!(p = need(u, 8)))
            return -1;
        uint64_t b = 0;
        for (int i = 0; i < 8; i++)
            b = (b << 8) | p[i]; /* big-endian */
        gn_pv *f = gn__pt_new(u->h, GN_PV_FLOAT);
        if (f)
            memcpy(&f->u.f, &b, 8);
        return push(u, f);
    }
    case OP_BINUNICODE:
        return read_str(u, GN_PV_STR, 4);
    case OP_SHORT_BINUNICODE:
        return read_str(u, GN_PV_STR, 1);
    case OP_BINUNICODE8:
        return read_str(u, GN_PV_STR, 8);
    case OP_BINBYTES:
        return read_str(u, GN_PV_BYTES, 4);
    case OP_SHORT_BINBYTES:
        return read_str(u, GN_PV_BYTES, 1);
    case OP_BINBYTES8:
        return read_str(u, GN_PV_BYTES, 8);
    case OP_EMPTY_TUPLE:
        return push(u, gn__pt_new(u->h, GN_PV_TUPLE));
    case OP_TUPLE:
        if (pop_mark(u, &first) < 0)
            return -1;
        return make_seq(u, GN_PV_TUPLE, first);
    case OP_TUPLE1:
    case OP_TUPLE2:
    case OP_TUPLE3: {
        size_t n = (size_t)(op - OP_TUPLE1 + 1);
        if (u->sn - fence(u) < n)
            return fail(u, "stack underflow (%s needs %zu values)", op_name(op), n);
        return make_seq(u, GN_PV_TUPLE, u->sn - n);
    }
    case OP_EMPTY_LIST:
        return push(u, gn__pt_new(u->h, GN_PV_LIST));
    case OP_LIST:
        if (pop_mark(u, &first) < 0)
            return -1;
        return make_seq(u, GN_PV_LIST, first);
    case OP_EMPTY_SET: {
        gn_pv *l = gn__pt_new(u->h, GN_PV_LIST);
        if (l)
            l->flags |= GN__PV_SET;
        return push(u, l);
    }
    case OP_APPEND:
        if (popn(u, 1, v) < 0 || !(v[1] = top(u)))
            return -1;
        if (v[1]->kind != GN_PV_LIST || (v[1]->flags & GN__PV_SET))
            return fail(u, "APPEND to a %s (only lists)",
                        (v[1]->flags & GN__PV_SET) ? "set" : kind_name(v[1]));
        return gn__pt_seq_push(u->h, v[1], v[0]) < 0 ? fail_heap(u) : 0;
    case OP_APPENDS:
    case OP_ADDITEMS: {
        if (pop_mark(u, &first) < 0 || !(v[0] = below_mark(u, first)))
            return -1;
        bool set = v[0]->kind == GN_PV_LIST && (v[0]->flags & GN__PV_SET);
        if (v[0]->kind != GN_PV_LIST || set != (op == OP_ADDITEMS))
            return fail(u, "%s to a %s (only %s)", op_name(op), set ? "set" : kind_name(v[0]),
                        op == OP_ADDITEMS ? "sets" : "lists");
        for (size_t i = first; i < u->sn; i++)
            if (gn__pt_seq_push(u->h, v[0], u->stack[i]) < 0)
                return fail_heap(u);
        u->sn = first;
        return 0;
    }
    case OP_EMPTY_DICT:
        return push(u, gn__pt_new(u->h, GN_PV_DICT));
    case OP_DICT: {
        if (pop_mark(u, &first) < 0)
            return -1;
        gn_pv *d = gn__pt_new(u->h, GN_PV_DICT);
        if (!d)
            return fail_heap(u);
        if (set_pairs(u, d, first) < 0)
            return -1;
        return push(u, d);
    }
    case OP_SETITEM:
        if (popn(u, 2, v) < 0 || !(v[2] = top(u)))
            return -1;
        if (v[2]->kind != GN_PV_DICT)
            return fail(u, "SETITEM on a %s (only dicts)", kind_name(v[2]));
        return gn__pt_dict_set(u->h, v[2], v[0], v[1]) < 0 ? fail_heap(u) : 0;
    case OP_SETITEMS:
        if (pop_mark(u, &first) < 0 || !(v[0] = below_mark(u, first)))
            return -1;
        if (v[0]->kind != GN_PV_DICT)
            return fail(u, "SETITEMS on a %s (only dicts)", kind_name(v[0]));
        return set_pairs(u, v[0], first);
    case OP_BINPUT:
        if (!(p = need(u, 1)))
            return -1;
        return memo_put(u, p[0]);
    case OP_LONG_BINPUT:
        if (!(p = need(u, 4)))
            return -1;
        return memo_put(u, le(p, 4));
    case OP_MEMOIZE:
        return memo_put(u, u->memo_count);
    case OP_BINGET:
        if (!(p = need(u, 1)))
            return -1;
        return memo_get(u, p[0]);
    case OP_LONG_BINGET:
        if (!(p = need(u, 4)))
            return -1;
        return memo_get(u, le(p, 4));
    case OP_GLOBAL: {
        char mod[257], name[257];
        size_t mn, nn;
        if (read_line(u, mod, sizeof mod, &mn) < 0 || read_line(u, name, sizeof name, &nn) < 0)
            return -1;
        return resolve(u, mod, mn, name, nn);
    }
    case OP_STACK_GLOBAL:
        if (popn(u, 2, v) < 0)
            return -1;
        if (v[0]->kind != GN_PV_STR || v[1]->kind != GN_PV_STR)
            return fail(u, "STACK_GLOBAL needs two str (module, name), got %s and %s",
                        kind_name(v[0]), kind_name(v[1]));
        return resolve(u, v[0]->u.s.p, v[0]->u.s.n, v[1]->u.s.p, v[1]->u.s.n);
    case OP_REDUCE:
        if (popn(u, 2, v) < 0)
            return -1;
        return reduce(u, v[0], v[1]);
    case OP_NEWOBJ:
        if (popn(u, 2, v) < 0)
            return -1;
        if (v[0]->kind != GN__PV_CLASS || v[0]->u.cls.id != GN__PT_CLS_NAMESPACE)
            return fail(u, "NEWOBJ of %s is not allowed (only argparse.Namespace)",
                        v[0]->kind == GN__PV_CLASS ? v[0]->u.cls.name : kind_name(v[0]));
        if (v[1]->kind != GN_PV_TUPLE || v[1]->u.c.n != 0)
            return fail(u, "argparse.Namespace is built with NEWOBJ and no arguments");
        return push(u, new_namespace(u));
    case OP_BUILD:
        if (popn(u, 1, v) < 0 || !(v[1] = top(u)))
            return -1;
        return build(u, v[1], v[0]);
    case OP_BINPERSID:
        if (popn(u, 1, v) < 0)
            return -1;
        return persistent(u, v[0]);
    default:
        return refuse_op(u, op);
    }
}

int gn__pt_unpickle(gn__pt_heap *h, gn__pt_input *in, size_t start,
                    const gn__pt_pickle_opts *o, gn_pv **out, size_t *end, gn_error *err)
{
    up u = {.h = h, .in = in, .o = o, .err = err, .start = start, .pos = start};
    int rc = -1;
    *out = NULL;
    for (bool first = true;; first = false) {
        u.op_pos = u.pos;
        const uint8_t *p = need(&u, 1);
        if (!p)
            goto done;
        int op = *p;
        if (first && op != OP_PROTO) {
            fail(&u, "the pickle does not start with PROTO (protocols 0 and 1 are not read)");
            goto done;
        }
        if (op == OP_STOP) {
            if (u.mn != 0) {
                fail(&u, "STOP with %d open MARK(s)", u.mn);
                goto done;
            }
            if (u.sn != 1) {
                fail(&u, "STOP leaves %zu values on the stack (expected exactly 1)", u.sn);
                goto done;
            }
            char why[300];
            if (gn__pt_check_tree(u.stack[0], o->allow_magic, why, sizeof why) < 0) {
                gn_error_set(err, "%s: %s: %s", o->path, o->what, why);
                goto done;
            }
            *out = u.stack[0];
            *end = u.pos;
            rc = 0;
            goto done;
        }
        if (step(&u, op) < 0)
            goto done;
    }
done:
    free(u.stack);
    free(u.memo);
    return rc;
}
