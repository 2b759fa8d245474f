/*
 * arch_parse.c — GPUNet JSON layer list -> gn_arch (see gpunas/arch.h).
 *
 * Parsing is strict, like the released builder but with messages instead of Python
 * KeyErrors: every layer type has a set of required and optional keys; an unknown key,
 * a wrong JSON type, an out-of-range value or a layer type that does not belong to the
 * selected family ("distill") is an error naming the file, the layer index, the field
 * and the reason.  The one tolerated irregularity is the released GPUNet-D2 typo key
 * "stage:" (read as "stage"), so the seven released files load unchanged.
 *
 * Structural rules checked here: data first (and only there), then head (standard
 * family) or head/head_large (distill family), then body layers, then one tail, last.
 * Everything that depends on numbers across layers (channel chain, groups, shapes,
 * resolution too small) is checked by gn_arch_resolve() in arch_resolve.c.
 */
#include "gpunas/arch.h"
#include "util/read_text.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CHANNELS 65536
#define MAX_RESOLUTION 16384

const char *gn_layer_type_name(gn_layer_type t)
{
    switch (t) {
    case GN_LAYER_DATA: return "data";
    case GN_LAYER_HEAD: return "head";
    case GN_LAYER_HEAD_LARGE: return "head_large";
    case GN_LAYER_CONV: return "conv";
    case GN_LAYER_IRB: return "irb";
    case GN_LAYER_FUSED_IRB: return "fused_irb";
    case GN_LAYER_TAIL: return "tail";
    }
    return "?";
}

const char *gn_act_name(gn_act a)
{
    switch (a) {
    case GN_ACT_RELU: return "relu";
    case GN_ACT_SWISH: return "swish";
    case GN_ACT_NONE: return "none";
    }
    return "?";
}

static int layer_type_from_name(const char *s, gn_layer_type *t)
{
    static const gn_layer_type all[] = {GN_LAYER_DATA, GN_LAYER_HEAD, GN_LAYER_HEAD_LARGE, GN_LAYER_CONV,
                                        GN_LAYER_IRB, GN_LAYER_FUSED_IRB, GN_LAYER_TAIL};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(s, gn_layer_type_name(all[i])) == 0) {
            *t = all[i];
            return 0;
        }
    return -1;
}

/* Key bits: which keys a layer type accepts. */
enum {
    K_LAYER_TYPE = 1 << 0,
    K_IMG_RES = 1 << 1,
    K_DISTILL = 1 << 2,
    K_IN = 1 << 3,
    K_OUT = 1 << 4,
    K_STRIDE = 1 << 5,
    K_KERNEL = 1 << 6,
    K_EXP = 1 << 7,
    K_ACT = 1 << 8,
    K_SE = 1 << 9,
    K_STAGE = 1 << 10,
    K_GROUPS = 1 << 11,
    K_CLASSES = 1 << 12,
};

static const struct {
    const char *name;
    unsigned bit;
} key_names[] = {
    {"layer_type", K_LAYER_TYPE}, {"img_resolution", K_IMG_RES}, {"distill", K_DISTILL},
    {"num_in_channels", K_IN},    {"num_out_channels", K_OUT},   {"stride", K_STRIDE},
    {"kernel_size", K_KERNEL},    {"expansion", K_EXP},          {"act", K_ACT},
    {"use_se", K_SE},             {"stage", K_STAGE},            {"groups", K_GROUPS},
    {"num_classes", K_CLASSES},   {"stage:", K_STAGE}, /* released GPUNet-D2 typo */
};

static unsigned key_bit(const char *k)
{
    for (size_t i = 0; i < sizeof key_names / sizeof key_names[0]; i++)
        if (strcmp(k, key_names[i].name) == 0)
            return key_names[i].bit;
    return 0;
}

/* Required / allowed keys per (family, type). */
static void key_rules(bool distill, gn_layer_type t, unsigned *req, unsigned *opt)
{
    *opt = K_STAGE;
    switch (t) {
    case GN_LAYER_DATA:
        *req = K_LAYER_TYPE | K_IMG_RES | K_DISTILL;
        *opt = 0;
        break;
    case GN_LAYER_HEAD:
    case GN_LAYER_HEAD_LARGE:
        *req = K_LAYER_TYPE | K_IN | K_OUT;
        *opt |= K_ACT; /* standard: default swish; distill: only "relu" accepted */
        break;
    case GN_LAYER_CONV:
        *req = K_LAYER_TYPE | K_IN | K_OUT | K_STRIDE | K_KERNEL | K_ACT;
        break;
    case GN_LAYER_IRB:
    case GN_LAYER_FUSED_IRB:
        *req = K_LAYER_TYPE | K_IN | K_OUT | K_STRIDE | K_KERNEL | K_EXP;
        if (distill)
            *opt |= K_GROUPS | K_ACT; /* act, if present, must be relu */
        else
            *req |= K_ACT | K_SE;
        break;
    case GN_LAYER_TAIL:
        *req = K_LAYER_TYPE | K_IN | K_OUT | K_CLASSES;
        break;
    }
}

typedef struct {
    const char *src;
    int idx;
    json_t *obj;
    gn_error *err;
} ctx;

static int fail(ctx *c, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(ctx *c, const char *field, const char *fmt, ...)
{
    char reason[GN_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (field)
        return gn_error_set(c->err, "%s: layer %d: field '%s': %s", c->src, c->idx, field, reason);
    return gn_error_set(c->err, "%s: layer %d: %s", c->src, c->idx, reason);
}

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

static json_t *get(ctx *c, const char *key)
{
    json_t *v = json_object_get(c->obj, key);
    if (!v && strcmp(key, "stage") == 0)
        v = json_object_get(c->obj, "stage:");
    return v;
}

static int get_int(ctx *c, const char *key, int lo, int hi, int *out)
{
    json_t *v = get(c, key);
    if (!json_is_integer(v))
        return fail(c, key, "expected an integer, got %s", json_kind(v));
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return fail(c, key, "value %lld out of range [%d, %d]", (long long)x, lo, hi);
    *out = (int)x;
    return 0;
}

static int get_bool(ctx *c, const char *key, bool *out)
{
    json_t *v = get(c, key);
    if (!json_is_boolean(v))
        return fail(c, key, "expected true or false, got %s", json_kind(v));
    *out = json_is_true(v);
    return 0;
}

static int get_act(ctx *c, gn_act *out)
{
    json_t *v = get(c, "act");
    if (!json_is_string(v))
        return fail(c, "act", "expected \"relu\" or \"swish\", got %s", json_kind(v));
    const char *s = json_string_value(v);
    if (strcmp(s, "relu") == 0)
        *out = GN_ACT_RELU;
    else if (strcmp(s, "swish") == 0)
        *out = GN_ACT_SWISH;
    else
        return fail(c, "act", "unknown activation \"%s\" (expected \"relu\" or \"swish\")", s);
    return 0;
}

static int parse_layer(ctx *c, bool distill, gn_layer *L)
{
    json_t *o = c->obj;
    if (!json_is_object(o))
        return fail(c, NULL, "expected a layer object, got %s", json_kind(o));
    json_t *lt = json_object_get(o, "layer_type");
    if (!lt)
        return fail(c, "layer_type", "missing");
    if (!json_is_string(lt))
        return fail(c, "layer_type", "expected a string, got %s", json_kind(lt));
    if (layer_type_from_name(json_string_value(lt), &L->type) != 0)
        return fail(c, "layer_type", "unknown layer type \"%s\"", json_string_value(lt));

    unsigned req, opt;
    key_rules(distill, L->type, &req, &opt);
    if (L->type == GN_LAYER_HEAD_LARGE && !distill)
        return fail(c, "layer_type", "\"head_large\" exists only in the distill family (data.distill = true)");
    if (L->type == GN_LAYER_CONV && distill)
        return fail(c, "layer_type", "\"conv\" is not a layer of the distill family (data.distill = true)");

    /* unknown or misplaced keys */
    const char *key;
    json_t *val;
    unsigned seen = 0;
    json_object_foreach(o, key, val)
    {
        unsigned b = key_bit(key);
        if (!b)
            return fail(c, key, "unknown field for layer type \"%s\"", gn_layer_type_name(L->type));
        if (!(b & (req | opt))) {
            if (b == K_SE && distill)
                return fail(c, key, "squeeze-excitation is not supported in the distill family");
            if (b == K_GROUPS && !distill)
                return fail(c, key, "groups is only supported in the distill family");
            return fail(c, key, "not a field of layer type \"%s\"", gn_layer_type_name(L->type));
        }
        if (seen & b)
            return fail(c, key, "given twice (\"stage\" and \"stage:\")");
        seen |= b;
    }
    for (size_t i = 0; i < sizeof key_names / sizeof key_names[0]; i++)
        if ((req & key_names[i].bit) && !(seen & key_names[i].bit))
            return fail(c, key_names[i].name, "missing (required for layer type \"%s\")",
                        gn_layer_type_name(L->type));

    L->groups = 1;
    L->act = GN_ACT_NONE;
    if (seen & K_IN && get_int(c, "num_in_channels", 1, MAX_CHANNELS, &L->in_ch))
        return -1;
    if (seen & K_OUT && get_int(c, "num_out_channels", 1, MAX_CHANNELS, &L->out_ch))
        return -1;
    if (seen & K_STRIDE && get_int(c, "stride", 1, 2, &L->stride))
        return -1;
    if (seen & K_KERNEL) {
        if (get_int(c, "kernel_size", 1, 11, &L->kernel))
            return -1;
        if (L->kernel % 2 == 0)
            return fail(c, "kernel_size", "value %d must be odd", L->kernel);
    }
    if (seen & K_EXP) {
        json_t *v = get(c, "expansion");
        if (!json_is_number(v))
            return fail(c, "expansion", "expected a number, got %s", json_kind(v));
        L->expansion = json_number_value(v);
        L->expansion_is_int = json_is_integer(v);
        if (!(L->expansion > 0.0) || L->expansion > 64.0 || !isfinite(L->expansion))
            return fail(c, "expansion", "value %g out of range (0, 64]", L->expansion);
    }
    if (seen & K_ACT) {
        if (get_act(c, &L->act))
            return -1;
        L->act_set = true;
        if (distill && L->act != GN_ACT_RELU)
            return fail(c, "act", "the distill family always uses \"relu\"");
    }
    if (seen & K_SE) {
        if (get_bool(c, "use_se", &L->use_se))
            return -1;
        L->use_se_set = true;
    }
    if (seen & K_STAGE) {
        if (get_int(c, "stage", 0, 1000, &L->stage))
            return -1;
        L->stage_set = true;
    }
    if (seen & K_GROUPS) {
        if (get_int(c, "groups", 1, MAX_CHANNELS, &L->groups))
            return -1;
        L->groups_set = true;
    }
    if (seen & K_CLASSES && get_int(c, "num_classes", 1, 1000000, &L->num_classes))
        return -1;

    /* family defaults */
    switch (L->type) {
    case GN_LAYER_HEAD:
    case GN_LAYER_HEAD_LARGE:
        if (!L->act_set)
            L->act = distill ? GN_ACT_RELU : GN_ACT_SWISH; /* layerConfig.get("act","swish") */
        L->stride = 2;
        L->kernel = 3;
        break;
    case GN_LAYER_IRB:
    case GN_LAYER_FUSED_IRB:
        if (distill)
            L->act = GN_ACT_RELU;
        break;
    case GN_LAYER_TAIL:
        L->act = GN_ACT_RELU; /* fixed in Epilogue */
        L->kernel = 1;
        L->stride = 1;
        break;
    default:
        break;
    }
    return 0;
}

int gn_arch_parse(const char *text, const char *source, gn_arch **out, gn_error *err)
{
    *out = NULL;
    json_error_t je;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!root && json_error_code(&je) == json_error_out_of_memory)
        return gn_error_set(err, "%s: out of memory reading the JSON", source);
    if (!root)
        return gn_error_set(err, "%s:%d:%d: invalid JSON: %s", source, je.line, je.column, je.text);
    int rc = -1;
    gn_arch *a = calloc(1, sizeof *a);
    if (!a || !(a->source = strdup(source))) {
        free(a);
        json_decref(root);
        return gn_error_set(err, "%s: out of memory", source);
    }
    ctx c = {.src = source, .idx = 0, .obj = NULL, .err = err};

    if (!json_is_array(root)) {
        gn_error_set(err, "%s: top level: expected an array of layer objects, got %s", source, json_kind(root));
        goto done;
    }
    size_t n = json_array_size(root);
    if (n < 3) {
        gn_error_set(err, "%s: top level: %zu layer objects; a network needs at least data, head and tail", source, n);
        goto done;
    }
    a->n_layers = (int)n;
    a->layers = calloc(n, sizeof *a->layers);
    if (!a->layers) {
        gn_error_set(err, "%s: out of memory for %zu layers", source, n);
        goto done;
    }

    /* layer 0 decides the family */
    c.obj = json_array_get(root, 0);
    if (!json_is_object(c.obj)) {
        fail(&c, NULL, "expected the data layer object, got %s", json_kind(c.obj));
        goto done;
    }
    json_t *d = json_object_get(c.obj, "distill");
    if (d && !json_is_boolean(d)) {
        fail(&c, "distill", "expected true or false, got %s", json_kind(d));
        goto done;
    }
    a->distill = json_is_true(d);

    for (size_t i = 0; i < n; i++) {
        c.idx = (int)i;
        c.obj = json_array_get(root, i);
        gn_layer *L = &a->layers[i];
        if (parse_layer(&c, a->distill, L))
            goto done;
        bool first = i == 0, second = i == 1, last = i == n - 1;
        if (first != (L->type == GN_LAYER_DATA)) {
            fail(&c, "layer_type", first ? "layer 0 must be \"data\", got \"%s\"" : "\"%s\" may only be layer 0",
                 gn_layer_type_name(L->type));
            goto done;
        }
        bool is_head = L->type == GN_LAYER_HEAD || L->type == GN_LAYER_HEAD_LARGE;
        if (second != is_head) {
            fail(&c, "layer_type", second ? "layer 1 must be a head, got \"%s\"" : "\"%s\" may only be layer 1",
                 gn_layer_type_name(L->type));
            goto done;
        }
        if (last != (L->type == GN_LAYER_TAIL)) {
            fail(&c, "layer_type",
                 last ? "the last layer must be \"tail\", got \"%s\"" : "\"%s\" may only be the last layer",
                 gn_layer_type_name(L->type));
            goto done;
        }
        if (first) {
            ctx c0 = c;
            if (get_int(&c0, "img_resolution", 1, MAX_RESOLUTION, &a->resolution))
                goto done;
        }
    }
    if (gn_arch_resolve(a, err))
        goto done;
    rc = 0;
done:
    json_decref(root);
    if (rc)
        gn_arch_free(a);
    else
        *out = a;
    return rc;
}

int gn_arch_load(const char *path, gn_arch **out, gn_error *err)
{
    *out = NULL;
    char *buf;
    if (gn__read_text(path, 64u << 20, "a layer list", &buf, err))
        return -1;
    int rc = gn_arch_parse(buf, path, out, err);
    free(buf);
    return rc;
}

void gn_arch_free(gn_arch *a)
{
    if (!a)
        return;
    free(a->source);
    free(a->layers);
    free(a);
}
