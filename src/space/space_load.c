/*
 * space_load.c — read and validate a search-space file (format: gpunas/space.h),
 * number its encoding dimensions, and refuse spaces whose members could be invalid.
 *
 * Validation is strict in the style of arch_parse.c: unknown keys, wrong JSON types,
 * empty or repeated choices, min > max, a step that does not divide max - min, values
 * out of range, a field that does not belong to a stage type, a head that is not stage
 * 0, stage numbers that do not increase — each is one line "FILE: stage I: field 'F':
 * reason" (I = position in "stages").  Then the worst corner of the space is decoded
 * (smallest resolution, largest kernels, most layers, smallest filters, SE on, each
 * expansion in turn): if any of those is not a valid network (input too small for the
 * strides, SE width 0, ...) the space is refused with the arch error.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "space/space_internal.h"
#include "util/read_text.h"

typedef struct {
    const char *src;
    int stage;          /* -1: top level */
    const char *prefix; /* prepended to field names ("tail.") or NULL */
    gn_error *err;
} pctx;

static int bad(pctx *c, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(pctx *c, const char *field, const char *fmt, ...)
{
    char reason[GN_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    const char *pre = c->prefix ? c->prefix : "";
    if (c->stage >= 0)
        return gn_error_set(c->err, "%s: stage %d: field '%s%s': %s", c->src, c->stage, pre, field, reason);
    return gn_error_set(c->err, "%s: field '%s%s': %s", c->src, pre, field, reason);
}

static const char *kind(const json_t *v)
{
    if (!v)
        return "nothing";
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

static int get_int(pctx *c, json_t *o, const char *key, int lo, int hi, int *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        return bad(c, key, "expected an integer, got %s", kind(v));
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return bad(c, key, "value %lld out of range [%d, %d]", (long long)x, lo, hi);
    *out = (int)x;
    return 0;
}

static int push(pctx *c, const char *key, sp_choice *ch, double v)
{
    for (int i = 0; i < ch->n; i++)
        if (ch->v[i] == v)
            return bad(c, key, "value %g given twice", v);
    if (ch->n >= SPACE_MAX_CHOICES)
        return bad(c, key, "more than %d choices", SPACE_MAX_CHOICES);
    ch->v[ch->n++] = v;
    return 0;
}

/* A numeric choice: a list of distinct numbers or {"min", "max", "step"}.  Integers
 * only unless allow_real.  Values must lie in [lo, hi]; odd: kernel sizes. */
static int get_choice(pctx *c, json_t *o, const char *key, double lo, double hi, bool allow_real, bool odd,
                      sp_choice *ch)
{
    json_t *v = json_object_get(o, key);
    ch->n = 0;
    ch->dim = -1;
    free(ch->v);
    ch->v = malloc(sizeof(double) * SPACE_MAX_CHOICES);
    if (!ch->v)
        return gn_error_set(c->err, "%s: out of memory", c->src);
    if (json_is_array(v)) {
        if (json_array_size(v) == 0)
            return bad(c, key, "empty choice list");
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            if (!(allow_real ? json_is_number(e) : json_is_integer(e)))
                return bad(c, key, "choice %zu: expected %s, got %s", i, allow_real ? "a number" : "an integer",
                           kind(e));
            double x = json_number_value(e);
            if (!isfinite(x) || x < lo || x > hi)
                return bad(c, key, "choice %zu: value %g out of range [%g, %g]", i, x, lo, hi);
            if (odd && (long long)x % 2 == 0)
                return bad(c, key, "choice %zu: value %g must be odd", i, x);
            if (push(c, key, ch, x))
                return -1;
        }
        return 0;
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *e;
        json_object_foreach(v, k, e)
        {
            if (strcmp(k, "min") && strcmp(k, "max") && strcmp(k, "step"))
                return bad(c, key, "unknown key '%s' in a range (expected min, max, step)", k);
            if (!json_is_integer(e))
                return bad(c, key, "'%s': expected an integer, got %s", k, kind(e));
        }
        json_t *mn = json_object_get(v, "min"), *mx = json_object_get(v, "max"), *st = json_object_get(v, "step");
        if (!mn || !mx)
            return bad(c, key, "a range needs 'min' and 'max'");
        long long a = json_integer_value(mn), b = json_integer_value(mx), s = st ? json_integer_value(st) : 1;
        if (a > b)
            return bad(c, key, "min %lld > max %lld", a, b);
        if (s < 1)
            return bad(c, key, "step %lld must be >= 1", s);
        if ((b - a) % s)
            return bad(c, key, "step %lld does not divide max - min = %lld", s, b - a);
        if (a < lo || b > hi)
            return bad(c, key, "range [%lld, %lld] out of range [%g, %g]", a, b, lo, hi);
        if ((b - a) / s + 1 > SPACE_MAX_CHOICES)
            return bad(c, key, "more than %d choices", SPACE_MAX_CHOICES);
        for (long long x = a; x <= b; x += s) {
            if (odd && x % 2 == 0)
                return bad(c, key, "value %lld of the range must be odd", x);
            ch->v[ch->n++] = (double)x;
        }
        return 0;
    }
    return bad(c, key, "expected a list of choices or {\"min\", \"max\", \"step\"}, got %s", kind(v));
}

static int get_act_choice(pctx *c, json_t *o, sp_choice *ch)
{
    json_t *v = json_object_get(o, "act");
    ch->n = 0;
    ch->dim = -1;
    free(ch->v);
    ch->v = malloc(sizeof(double) * 2);
    if (!ch->v)
        return gn_error_set(c->err, "%s: out of memory", c->src);
    if (!json_is_array(v))
        return bad(c, "act", "expected a list of \"relu\"/\"swish\", got %s", kind(v));
    if (json_array_size(v) == 0)
        return bad(c, "act", "empty choice list");
    if (json_array_size(v) > 2)
        return bad(c, "act", "at most the two choices \"relu\" and \"swish\"");
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        const char *s = json_string_value(e);
        if (!s)
            return bad(c, "act", "choice %zu: expected \"relu\" or \"swish\", got %s", i, kind(e));
        gn_act a;
        if (strcmp(s, "relu") == 0)
            a = GN_ACT_RELU;
        else if (strcmp(s, "swish") == 0)
            a = GN_ACT_SWISH;
        else
            return bad(c, "act", "choice %zu: unknown activation \"%s\" (expected \"relu\" or \"swish\")", i, s);
        if (push(c, "act", ch, a))
            return bad(c, "act", "\"%s\" given twice", s);
    }
    return 0;
}

static int get_se_choice(pctx *c, json_t *o, sp_choice *ch)
{
    json_t *v = json_object_get(o, "se");
    ch->n = 0;
    ch->dim = -1;
    free(ch->v);
    ch->v = malloc(sizeof(double) * 2);
    if (!ch->v)
        return gn_error_set(c->err, "%s: out of memory", c->src);
    if (!v) { /* default: no squeeze-excitation */
        ch->v[ch->n++] = 0;
        return 0;
    }
    if (!json_is_array(v))
        return bad(c, "se", "expected a list of true/false, got %s", kind(v));
    if (json_array_size(v) == 0)
        return bad(c, "se", "empty choice list");
    if (json_array_size(v) > 2)
        return bad(c, "se", "at most the two choices false and true");
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        if (!json_is_boolean(e))
            return bad(c, "se", "choice %zu: expected true or false, got %s", i, kind(e));
        if (push(c, "se", ch, json_is_true(e)))
            return -1;
    }
    return 0;
}

static int const_choice(pctx *c, sp_choice *ch, double v)
{
    free(ch->v);
    ch->v = malloc(sizeof(double));
    if (!ch->v) {
        ch->n = 0;
        return gn_error_set(c->err, "%s: out of memory", c->src);
    }
    ch->v[0] = v;
    ch->n = 1;
    ch->dim = -1;
    return 0;
}

static int check_keys(pctx *c, json_t *o, const char *const *allowed, const char *what)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        bool ok = false;
        for (const char *const *a = allowed; *a; a++)
            ok |= strcmp(k, *a) == 0;
        if (!ok)
            return bad(c, k, "unknown field for %s", what);
    }
    return 0;
}

static int parse_stage(pctx *c, json_t *o, int idx, int prev_number, sp_stage *st)
{
    if (!json_is_object(o))
        return gn_error_set(c->err, "%s: stage %d: expected a stage object, got %s", c->src, idx, kind(o));
    json_t *t = json_object_get(o, "type");
    if (!json_is_string(t))
        return bad(c, "type", "expected \"head\", \"conv\", \"fused_irb\" or \"irb\", got %s", kind(t));
    const char *ts = json_string_value(t);
    if (strcmp(ts, "head") == 0)
        st->type = GN_LAYER_HEAD;
    else if (strcmp(ts, "conv") == 0)
        st->type = GN_LAYER_CONV;
    else if (strcmp(ts, "fused_irb") == 0)
        st->type = GN_LAYER_FUSED_IRB;
    else if (strcmp(ts, "irb") == 0)
        st->type = GN_LAYER_IRB;
    else
        return bad(c, "type", "unknown block type \"%s\" (expected \"head\", \"conv\", \"fused_irb\" or \"irb\")",
                   ts);
    bool head = st->type == GN_LAYER_HEAD;
    if (head != (idx == 0))
        return bad(c, "type", idx == 0 ? "stage 0 must be the \"head\" (got \"%s\")"
                                       : "\"%s\" may only be stage 0", ts);

    static const char *const head_keys[] = {"stage", "type", "stride", "kernel", "layers", "act", "filters", "note",
                                            NULL};
    static const char *const conv_keys[] = {"stage", "type",    "stride",  "stride_first_only", "kernel",
                                            "layers", "act",    "filters", "note",              NULL};
    static const char *const irb_keys[] = {"stage",  "type", "stride",    "stride_first_only", "kernel", "layers",
                                           "act",    "expansion", "filters", "se",           "note",   NULL};
    if (head) {
        if (check_keys(c, o, head_keys, "the head stage (the prologue: only act and filters are chosen)"))
            return -1;
    } else if (st->type == GN_LAYER_CONV) {
        json_t *k;
        if ((k = json_object_get(o, "expansion")))
            return bad(c, "expansion", "a conv stage has no expansion");
        if ((k = json_object_get(o, "se")))
            return bad(c, "se", "a conv stage has no squeeze-excitation");
        if (check_keys(c, o, conv_keys, "a conv stage"))
            return -1;
    } else if (check_keys(c, o, irb_keys, "an irb/fused_irb stage")) {
        return -1;
    }
    json_t *nt = json_object_get(o, "note");
    if (nt && !json_is_string(nt))
        return bad(c, "note", "expected a string, got %s", kind(nt));

    st->number = idx;
    if (json_object_get(o, "stage") && get_int(c, o, "stage", 0, 1000, &st->number))
        return -1;
    if (st->number <= prev_number)
        return bad(c, "stage", "stage numbers must increase (%d after %d)", st->number, prev_number);

    if (head) {
        /* the released prologue is a fixed 3x3 stride-2 conv: anything else is not expressible */
        if (json_object_get(o, "stride") && (get_int(c, o, "stride", 2, 2, &st->stride)))
            return bad(c, "stride", "the head (prologue) always has stride 2");
        st->stride = 2;
        st->stride_first_only = true;
        if (json_object_get(o, "kernel")) {
            if (get_choice(c, o, "kernel", 1, 11, false, true, &st->p[P_KERNEL]))
                return -1;
            if (st->p[P_KERNEL].n != 1 || st->p[P_KERNEL].v[0] != 3)
                return bad(c, "kernel", "the head (prologue) is always a 3x3 convolution: use [3]");
        } else {
            if (const_choice(c, &st->p[P_KERNEL], 3))
                return -1;
        }
        if (json_object_get(o, "layers")) {
            if (get_choice(c, o, "layers", 0, 1000, false, false, &st->p[P_LAYERS]))
                return -1;
            if (st->p[P_LAYERS].n != 1 || st->p[P_LAYERS].v[0] != 1)
                return bad(c, "layers", "the head is always one layer: use [1]");
        } else {
            if (const_choice(c, &st->p[P_LAYERS], 1))
                return -1;
        }
        if (json_object_get(o, "act")) {
            if (get_act_choice(c, o, &st->p[P_ACT]))
                return -1;
            st->act_set = true;
        } else {
            if (const_choice(c, &st->p[P_ACT], GN_ACT_SWISH)) /* layerConfig.get("act", "swish") */
                return -1;
        }
        if (get_choice(c, o, "filters", 1, 65536, false, false, &st->p[P_FILTERS]))
            return -1;
        return 0;
    }

    if (get_int(c, o, "stride", 1, 2, &st->stride))
        return -1;
    st->stride_first_only = true;
    json_t *sf = json_object_get(o, "stride_first_only");
    if (sf) {
        if (!json_is_boolean(sf))
            return bad(c, "stride_first_only", "expected true or false, got %s", kind(sf));
        st->stride_first_only = json_is_true(sf);
    }
    if (get_choice(c, o, "kernel", 1, 11, false, true, &st->p[P_KERNEL]))
        return -1;
    if (get_choice(c, o, "layers", 0, 1000, false, false, &st->p[P_LAYERS]))
        return -1;
    if (st->p[P_LAYERS].n == 1 && st->p[P_LAYERS].v[0] == 0)
        return bad(c, "layers", "the stage never has a layer (only 0 allowed); remove the stage");
    st->act_set = true;
    if (get_act_choice(c, o, &st->p[P_ACT]))
        return -1;
    if (get_choice(c, o, "filters", 1, 65536, false, false, &st->p[P_FILTERS]))
        return -1;
    if (st->type == GN_LAYER_CONV)
        return 0;
    if (get_choice(c, o, "expansion", 1e-3, 64, true, false, &st->p[P_EXP]))
        return -1;
    return get_se_choice(c, o, &st->p[P_SE]);
}

/* Assign encoding dimensions to every choice with >= 2 values. */
static int number_dims(gn_space *s, gn_error *err)
{
    int d = 0;
    static const char *pname[P_COUNT] = {"layers", "kernel", "act", "expansion", "filters", "se"};
#define ADD(ch, stage, param, ...)                                                                     \
    do {                                                                                               \
        if ((ch)->n >= 2) {                                                                            \
            if (d >= GN_ENC_MAX_DIMS)                                                                  \
                return gn_error_set(err, "%s: the space has more than %d encoding dimensions", s->source, \
                                    GN_ENC_MAX_DIMS);                                                  \
            (ch)->dim = d;                                                                             \
            s->desc.card[d] = (ch)->n;                                                                 \
            s->dim_stage[d] = (stage);                                                                 \
            s->dim_param[d] = (param);                                                                 \
            snprintf(s->dim_name[d], sizeof s->dim_name[d], __VA_ARGS__);                              \
            d++;                                                                                       \
        }                                                                                              \
    } while (0)
    ADD(&s->res, -1, -1, "res");
    for (int i = 0; i < s->n_stages; i++)
        for (int p = 0; p < P_COUNT; p++)
            if (s->stages[i].p[p].n)
                ADD(&s->stages[i].p[p], i, p, "s%d.%s", s->stages[i].number, pname[p]);
    ADD(&s->tail, -1, -1, "tail.filters");
#undef ADD
    s->desc.ndims = d;
    if (d == 0)
        return gn_error_set(err, "%s: every choice has a single value: the space has one member, nothing to search",
                            s->source);
    return 0;
}

static int try_decode(gn_space *s, const int *x, gn_error *err)
{
    gn_arch *a;
    gn_error aerr;
    if (gn_space_decode(s, x, &a, &aerr)) {
        if (strstr(aerr.msg, "out of memory"))
            return gn_error_set(err, "%s: %s", s->source, aerr.msg);
        char *enc = gn_space_encode_to_string(s, x);
        gn_error_set(err, "%s: the space contains invalid networks, e.g. %s: %s", s->source, enc ? enc : "?",
                     aerr.msg);
        free(enc);
        return -1;
    }
    gn_arch_free(a);
    return 0;
}

/* Decode the corner where networks are smallest / SE widths thinnest, and the one
 * where they are largest (parameter and MAC counts grow with every choice there, so
 * a space whose biggest member overflows them is refused too); refuse the space if
 * one of those is invalid. */
static int check_corner(gn_space *s, gn_error *err)
{
    int x[GN_ENC_MAX_DIMS] = {0};
    int max_exp = 1;
    for (int i = 0; i < s->n_stages; i++)
        if (s->stages[i].p[P_EXP].n > max_exp)
            max_exp = s->stages[i].p[P_EXP].n;
#define ARG(ch, better)                                                                    \
    do {                                                                                   \
        if ((ch)->dim >= 0) {                                                              \
            int b = 0;                                                                     \
            for (int k = 1; k < (ch)->n; k++)                                              \
                if ((ch)->v[k] better(ch)->v[b])                                           \
                    b = k;                                                                 \
            x[(ch)->dim] = b;                                                              \
        }                                                                                  \
    } while (0)
    ARG(&s->res, <);
    ARG(&s->tail, <);
    for (int i = 0; i < s->n_stages; i++) {
        sp_stage *st = &s->stages[i];
        ARG(&st->p[P_LAYERS], >);
        ARG(&st->p[P_KERNEL], >);
        ARG(&st->p[P_FILTERS], <);
        ARG(&st->p[P_SE], >);
    }
    for (int e = 0; e < max_exp; e++) {
        for (int i = 0; i < s->n_stages; i++) {
            sp_choice *c = &s->stages[i].p[P_EXP];
            if (c->dim >= 0)
                x[c->dim] = e < c->n ? e : c->n - 1;
        }
        if (try_decode(s, x, err))
            return -1;
    }
    /* the largest member */
    ARG(&s->res, >);
    ARG(&s->tail, >);
    for (int i = 0; i < s->n_stages; i++) {
        sp_stage *st = &s->stages[i];
        ARG(&st->p[P_LAYERS], >);
        ARG(&st->p[P_KERNEL], >);
        ARG(&st->p[P_FILTERS], >);
        ARG(&st->p[P_SE], >);
        ARG(&st->p[P_EXP], >);
    }
#undef ARG
    return try_decode(s, x, err);
}

int gn_space_parse(const char *text, const char *source, gn_space **out, gn_error *err)
{
    *out = NULL;
    json_error_t je;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!root && json_error_code(&je) == json_error_out_of_memory)
        return gn_error_set(err, "%s: out of memory reading the JSON", source);
    if (!root)
        return gn_error_set(err, "%s:%d:%d: invalid JSON: %s", source, je.line, je.column, je.text);
    gn_space *s = calloc(1, sizeof *s);
    if (!s || !(s->source = strdup(source))) {
        free(s);
        json_decref(root);
        return gn_error_set(err, "%s: out of memory", source);
    }
    s->res.dim = s->tail.dim = -1;
    pctx c = {.src = source, .stage = -1, .prefix = NULL, .err = err};
    int rc = -1;

    if (!json_is_object(root)) {
        gn_error_set(err, "%s: top level: expected a search-space object, got %s", source, kind(root));
        goto done;
    }
    static const char *const top_keys[] = {"name", "note", "in_channels", "classes", "resolutions", "stages",
                                           "tail", NULL};
    if (check_keys(&c, root, top_keys, "a search space"))
        goto done;
    json_t *nm = json_object_get(root, "name");
    if (!json_is_string(nm) || !json_string_value(nm)[0]) {
        bad(&c, "name", "expected a non-empty string, got %s", kind(nm));
        goto done;
    }
    s->name = strdup(json_string_value(nm));
    if (!s->name) {
        gn_error_set(err, "%s: out of memory", source);
        goto done;
    }
    json_t *nt = json_object_get(root, "note");
    if (nt && !json_is_string(nt)) {
        bad(&c, "note", "expected a string, got %s", kind(nt));
        goto done;
    }
    if (get_int(&c, root, "in_channels", 1, 65536, &s->in_ch) || get_int(&c, root, "classes", 1, 1000000, &s->classes))
        goto done;
    if (get_choice(&c, root, "resolutions", 1, 16384, false, false, &s->res))
        goto done;

    json_t *stages = json_object_get(root, "stages");
    if (!json_is_array(stages)) {
        bad(&c, "stages", "expected a list of stage objects, got %s", kind(stages));
        goto done;
    }
    size_t ns = json_array_size(stages);
    if (ns < 2) {
        bad(&c, "stages", "%zu stages; a space needs the head (stage 0) and at least one more", ns);
        goto done;
    }
    if (ns > SPACE_MAX_STAGES) {
        bad(&c, "stages", "%zu stages; at most %d", ns, SPACE_MAX_STAGES);
        goto done;
    }
    for (size_t i = 0; i < ns; i++) {
        c.stage = (int)i;
        s->n_stages = (int)i + 1;
        for (int p = 0; p < P_COUNT; p++)
            s->stages[i].p[p].dim = -1;
        if (parse_stage(&c, json_array_get(stages, i), (int)i, i ? s->stages[i - 1].number : -1, &s->stages[i]))
            goto done;
    }
    c.stage = -1;

    json_t *tail = json_object_get(root, "tail");
    if (!json_is_object(tail)) {
        bad(&c, "tail", "expected an object {\"filters\": ...}, got %s", kind(tail));
        goto done;
    }
    static const char *const tail_keys[] = {"filters", "note", NULL};
    c.prefix = "tail.";
    if (check_keys(&c, tail, tail_keys, "the tail") ||
        get_choice(&c, tail, "filters", 1, 65536, false, false, &s->tail))
        goto done;
    c.prefix = NULL;
    if (number_dims(s, err) || check_corner(s, err))
        goto done;
    rc = 0;
done:
    json_decref(root);
    if (rc)
        gn_space_free(s);
    else
        *out = s;
    return rc;
}

int gn_space_load(const char *path, gn_space **out, gn_error *err)
{
    *out = NULL;
    char *buf;
    if (gn__read_text(path, 16u << 20, "a search-space file", &buf, err))
        return -1;
    int rc = gn_space_parse(buf, path, out, err);
    free(buf);
    return rc;
}

int gn_space_builtin(const char *name, gn_space **out, gn_error *err)
{
    *out = NULL;
    const char *text = gn_space_builtin_text(name);
    if (!text)
        return gn_error_set(err, "unknown built-in search space '%s' (built in: gpunet, fmnist)", name ? name : "");
    char src[64];
    snprintf(src, sizeof src, "builtin:%s", name);
    return gn_space_parse(text, src, out, err);
}

void gn_space_free(gn_space *s)
{
    if (!s)
        return;
    free(s->name);
    free(s->source);
    free(s->res.v);
    free(s->tail.v);
    for (int i = 0; i < SPACE_MAX_STAGES; i++)
        for (int p = 0; p < P_COUNT; p++)
            free(s->stages[i].p[p].v);
    free(s);
}

const char *gn_space_name(const gn_space *s) { return s->name; }
const gn_enc_desc *gn_space_desc(const gn_space *s) { return &s->desc; }
int gn_space_in_channels(const gn_space *s) { return s->in_ch; }
int gn_space_classes(const gn_space *s) { return s->classes; }

const char *gn_space_dim_name(const gn_space *s, int i)
{
    return i >= 0 && i < s->desc.ndims ? s->dim_name[i] : "?";
}

double gn_space_size(const gn_space *s)
{
    double n = 1;
    for (int i = 0; i < s->desc.ndims; i++)
        n *= s->desc.card[i];
    return n;
}
