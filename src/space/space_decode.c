/*
 * space_decode.c — encodings to GPUNet JSON layer lists and back (see gpunas/space.h).
 *
 * Decoding writes the layer list in the released format and key order —
 *   data {layer_type, img_resolution, distill: false}
 *   head {layer_type, num_in_channels, num_out_channels[, act]}
 *   conv {layer_type, num_in_channels, num_out_channels, stride, kernel_size, act, stage}
 *   irb / fused_irb {..., stride, expansion, kernel_size, act, use_se, stage}
 *   tail {layer_type, num_in_channels, num_out_channels, num_classes}
 * — one object per layer, stages with 0 layers left out, and hands the text to
 * gn_arch_parse(), so a decoded network is checked by exactly the rules that check a
 * user's file (and gets its shapes, params and MACs from the same code).  The head's
 * "act" is written only when the space chooses it (otherwise the builder default).
 *
 * Encoding an arch is the inverse: it walks the layers, groups them by their "stage"
 * field, and requires each group to be one stage of the space built by the same rule
 * (first layer: the stage's stride; the rest: stride 1 unless stride_first_only is
 * false; all layers alike otherwise), with every value among the space's choices.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "space/space_internal.h"

/* The builder: every jansson call that fails (out of memory) marks the text bad,
 * so a layer list is never written with a field missing. */
typedef struct {
    int bad;
} jb;

static void set(jb *b, json_t *o, const char *key, json_t *v)
{
    if (json_object_set_new(o, key, v)) /* frees v; fails on o or v NULL */
        b->bad = 1;
}

static void append(jb *b, json_t *arr, json_t *o)
{
    if (json_array_append_new(arr, o))
        b->bad = 1;
}

static json_t *layer(jb *b, const char *type, int in, int out)
{
    json_t *o = json_object();
    set(b, o, "layer_type", json_string(type));
    set(b, o, "num_in_channels", json_integer(in));
    set(b, o, "num_out_channels", json_integer(out));
    return o;
}

static json_t *number(double v)
{
    if (v == (double)(json_int_t)v)
        return json_integer((json_int_t)v);
    return json_real(v);
}

char *gn__sp_build_json(const gn_space *s, const int *x)
{
    jb b = {0};
    json_t *arr = json_array(), *o;
    o = json_object();
    set(&b, o, "layer_type", json_string("data"));
    set(&b, o, "img_resolution", json_integer(gn__sp_ivalue(&s->res, x)));
    set(&b, o, "distill", json_false());
    append(&b, arr, o);

    const sp_stage *h = &s->stages[0];
    int ch = gn__sp_ivalue(&h->p[P_FILTERS], x);
    o = layer(&b, "head", s->in_ch, ch);
    if (h->act_set)
        set(&b, o, "act", json_string(gn_act_name((gn_act)gn__sp_ivalue(&h->p[P_ACT], x))));
    append(&b, arr, o);

    for (int i = 1; i < s->n_stages; i++) {
        const sp_stage *st = &s->stages[i];
        int n = gn__sp_layers(s, i, x), out = gn__sp_ivalue(&st->p[P_FILTERS], x);
        for (int l = 0; l < n; l++) {
            o = layer(&b, gn_layer_type_name(st->type), ch, out);
            set(&b, o, "stride", json_integer(l == 0 || !st->stride_first_only ? st->stride : 1));
            if (st->type != GN_LAYER_CONV)
                set(&b, o, "expansion", number(gn__sp_value(&st->p[P_EXP], x)));
            set(&b, o, "kernel_size", json_integer(gn__sp_ivalue(&st->p[P_KERNEL], x)));
            set(&b, o, "act", json_string(gn_act_name((gn_act)gn__sp_ivalue(&st->p[P_ACT], x))));
            if (st->type != GN_LAYER_CONV)
                set(&b, o, "use_se", json_boolean(gn__sp_ivalue(&st->p[P_SE], x)));
            set(&b, o, "stage", json_integer(st->number));
            append(&b, arr, o);
            ch = out;
        }
    }
    o = layer(&b, "tail", ch, gn__sp_ivalue(&s->tail, x));
    set(&b, o, "num_classes", json_integer(s->classes));
    append(&b, arr, o);
    char *text = b.bad ? NULL : json_dumps(arr, JSON_PRESERVE_ORDER | JSON_COMPACT | JSON_REAL_PRECISION(17));
    json_decref(arr);
    return text;
}

int gn_space_decode(const gn_space *s, const int *x, gn_arch **out, gn_error *err)
{
    *out = NULL;
    if (gn_space_check(s, x, err))
        return -1;
    char *text = gn__sp_build_json(s, x);
    char *enc = gn_space_encode_to_string(s, x);
    size_t n = strlen(s->name) + (enc ? strlen(enc) : 0) + 4;
    char *src = malloc(n);
    int rc;
    if (!text || !enc || !src) {
        rc = gn_error_set(err, "%s: decoding a member: out of memory", s->name);
    } else {
        snprintf(src, n, "%s[%s]", s->name, enc);
        rc = gn_arch_parse(text, src, out, err);
    }
    free(src);
    free(enc);
    free(text);
    return rc;
}

char *gn_space_decode_json(const gn_space *s, const int *x, gn_error *err)
{
    gn_arch *a;
    if (gn_space_decode(s, x, &a, err))
        return NULL;
    char *text = gn_arch_to_json(a, err);
    gn_arch_free(a);
    return text;
}

/* ---- arch -> encoding ---- */

typedef struct {
    const gn_space *s;
    const gn_arch *a;
    gn_error *err;
    int *x;
} ectx;

static int nofit(ectx *c, int layer, const char *field, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int nofit(ectx *c, int layer, const char *field, const char *fmt, ...)
{
    char reason[GN_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (field)
        return gn_error_set(c->err, "%s: layer %d: field '%s': not in space %s: %s", c->a->source, layer, field,
                            c->s->name, reason);
    return gn_error_set(c->err, "%s: layer %d: not in space %s: %s", c->a->source, layer, c->s->name, reason);
}

static void choices_text(const sp_choice *ch, char *buf, size_t n)
{
    size_t o = 0;
    o += (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ch->n && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, i ? ", %g" : "%g", ch->v[i]);
    if (o < n)
        snprintf(buf + o, n - o, "]");
}

/* Set the dimension of choice ch to the index of v; error if v is not a choice. */
static int pick(ectx *c, const sp_choice *ch, double v, int layer, const char *field, const char *what)
{
    for (int i = 0; i < ch->n; i++)
        if (ch->v[i] == v) {
            if (ch->dim >= 0)
                c->x[ch->dim] = i;
            return 0;
        }
    char list[256];
    choices_text(ch, list, sizeof list);
    return nofit(c, layer, field, "%s %g is not one of %s", what, v, list);
}

/* The same for an activation, named in the message. */
static int pick_act(ectx *c, const sp_choice *ch, gn_act v, int layer, const char *what)
{
    if (pick(c, ch, v, layer, "act", what) == 0)
        return 0;
    char list[64] = "";
    for (int i = 0; i < ch->n; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s\"%s\"", i ? ", " : "",
                 gn_act_name((gn_act)(int)ch->v[i]));
    return nofit(c, layer, "act", "%s \"%s\" is not one of [%s]", what, gn_act_name(v), list);
}

int gn_space_encode_arch(const gn_space *s, const gn_arch *a, int *x, gn_error *err)
{
    ectx c = {.s = s, .a = a, .err = err, .x = x};
    memset(x, 0, sizeof(int) * (size_t)s->desc.ndims);
    if (a->distill)
        return nofit(&c, 0, "distill", "the space builds the standard family (distill = false)");
    if (a->same_pad_fix)
        return nofit(&c, 0, NULL, "the space builds networks with the released padding (no --same-pad)");
    if (pick(&c, &s->res, a->resolution, 0, "img_resolution", "resolution"))
        return -1;
    const gn_layer *H = &a->layers[1];
    if (H->type != GN_LAYER_HEAD)
        return nofit(&c, 1, "layer_type", "the head must be \"head\"");
    if (H->in_ch != s->in_ch)
        return nofit(&c, 1, "num_in_channels", "%d input channels, the space has %d", H->in_ch, s->in_ch);
    const sp_stage *hs = &s->stages[0];
    if (pick(&c, &hs->p[P_FILTERS], H->out_ch, 1, "num_out_channels", "head filters") ||
        pick_act(&c, &hs->p[P_ACT], H->act, 1, "head activation"))
        return -1;

    int li = 2, last = a->n_layers - 1, si = 1;
    while (li < last) {
        const gn_layer *L = &a->layers[li];
        if (!L->stage_set)
            return nofit(&c, li, "stage", "the layer has no stage number");
        while (si < s->n_stages && s->stages[si].number != L->stage) {
            const sp_stage *skip = &s->stages[si];
            if (pick(&c, &skip->p[P_LAYERS], 0, li, "stage", "stage left out; layer count"))
                return nofit(&c, li, "stage", "stage %d is missing and may not have 0 layers", skip->number);
            si++;
        }
        if (si == s->n_stages)
            return nofit(&c, li, "stage", "stage %d is not a stage of the space (or out of order)", L->stage);
        const sp_stage *st = &s->stages[si];
        int first = li, n = 0;
        for (; li < last && a->layers[li].stage_set && a->layers[li].stage == st->number; li++, n++) {
            const gn_layer *M = &a->layers[li];
            if (M->type != st->type)
                return nofit(&c, li, "layer_type", "stage %d is made of \"%s\" layers, got \"%s\"", st->number,
                             gn_layer_type_name(st->type), gn_layer_type_name(M->type));
            int want = n == 0 || !st->stride_first_only ? st->stride : 1;
            if (M->stride != want)
                return nofit(&c, li, "stride", "stride %d, the space's stage %d has %d here", M->stride, st->number,
                             want);
            if (n > 0) { /* every layer of a stage is like its first */
                const gn_layer *F = &a->layers[first];
                if (M->out_ch != F->out_ch)
                    return nofit(&c, li, "num_out_channels", "%d differs from %d of the stage's first layer",
                                 M->out_ch, F->out_ch);
                if (M->kernel != F->kernel)
                    return nofit(&c, li, "kernel_size", "%d differs from %d of the stage's first layer", M->kernel,
                                 F->kernel);
                if (M->act != F->act)
                    return nofit(&c, li, "act", "differs from the stage's first layer");
                if (M->type != GN_LAYER_CONV && M->expansion != F->expansion)
                    return nofit(&c, li, "expansion", "%g differs from %g of the stage's first layer", M->expansion,
                                 F->expansion);
                if (M->use_se != F->use_se)
                    return nofit(&c, li, "use_se", "differs from the stage's first layer");
                continue;
            }
            if (pick(&c, &st->p[P_FILTERS], M->out_ch, li, "num_out_channels", "filters") ||
                pick(&c, &st->p[P_KERNEL], M->kernel, li, "kernel_size", "kernel") ||
                pick_act(&c, &st->p[P_ACT], M->act, li, "activation"))
                return -1;
            if (st->type != GN_LAYER_CONV &&
                (pick(&c, &st->p[P_EXP], M->expansion, li, "expansion", "expansion") ||
                 pick(&c, &st->p[P_SE], M->use_se, li, "use_se", "use_se (1 = true)")))
                return -1;
        }
        if (pick(&c, &st->p[P_LAYERS], n, first, "stage", "layer count"))
            return -1;
        si++;
    }
    for (; si < s->n_stages; si++)
        if (pick(&c, &s->stages[si].p[P_LAYERS], 0, last, "stage", "stage left out; layer count"))
            return nofit(&c, last, "stage", "stage %d is missing and may not have 0 layers", s->stages[si].number);
    const gn_layer *T = &a->layers[last];
    if (pick(&c, &s->tail, T->out_ch, last, "num_out_channels", "tail filters"))
        return -1;
    if (T->num_classes != s->classes)
        return nofit(&c, last, "num_classes", "%d classes, the space has %d", T->num_classes, s->classes);
    gn_space_canonical(s, x, x);
    return 0;
}
