/*
 * arch_write.c — gn_arch -> GPUNet JSON, in the layout of NVIDIA's released files
 * (an array of objects, 6-space item indent, 12-space key indent, canonical key order
 * per layer type, optional keys only when they were given, trailing newline).
 *
 * The released files that NVIDIA wrote by program (GPUNet-0/1/2, D1) are reproduced
 * byte for byte plus a final newline; P0/P1 were hand-edited (tabs, a blank line) and
 * D2 has the typo key "stage:" (written as "stage").  A second rewrite is always
 * byte-identical to the first.  Fractional expansions are written in the shortest form that reads back to
 * the same double (7.67, not 7.6699999999999999).
 */
#include "gpunas/arch.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/fs_atomic.h"

typedef struct {
    char *buf; /* NULL once an allocation failed: later puts do nothing */
    size_t len, cap;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    while (b->buf) {
        va_start(ap, fmt);
        int n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (size_t)n + 64;
        char *nb = realloc(b->buf, b->cap);
        if (!nb)
            free(b->buf);
        b->buf = nb;
    }
}

static void shortest_double(char *out, size_t n, double v)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, n, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            break;
    }
    /* keep it a JSON real: 8 is written as an integer only when it was one */
    if (!strpbrk(out, ".eE"))
        strncat(out, ".0", n - strlen(out) - 1);
}

typedef struct {
    sbuf *b;
    bool first;
} obj;

static void key(obj *o, const char *k)
{
    put(o->b, "%s\n            \"%s\": ", o->first ? "" : ",", k);
    o->first = false;
}
static void kint(obj *o, const char *k, long long v)
{
    key(o, k);
    put(o->b, "%lld", v);
}
static void kstr(obj *o, const char *k, const char *v)
{
    key(o, k);
    put(o->b, "\"%s\"", v);
}
static void kbool(obj *o, const char *k, bool v)
{
    key(o, k);
    put(o->b, "%s", v ? "true" : "false");
}

char *gn_arch_to_json(const gn_arch *a, gn_error *err)
{
    sbuf b = {malloc(4096), 0, 4096};
    put(&b, "[");
    for (int i = 0; i < a->n_layers; i++) {
        const gn_layer *L = &a->layers[i];
        put(&b, "%s\n      {", i ? "," : "");
        obj o = {&b, true};
        kstr(&o, "layer_type", gn_layer_type_name(L->type));
        if (L->type == GN_LAYER_DATA) {
            kint(&o, "img_resolution", a->resolution);
            kbool(&o, "distill", a->distill);
            put(&b, "\n      }");
            continue;
        }
        kint(&o, "num_in_channels", L->in_ch);
        kint(&o, "num_out_channels", L->out_ch);
        bool body = L->type == GN_LAYER_CONV || L->type == GN_LAYER_IRB || L->type == GN_LAYER_FUSED_IRB;
        if (body)
            kint(&o, "stride", L->stride);
        if (L->type == GN_LAYER_IRB || L->type == GN_LAYER_FUSED_IRB) {
            key(&o, "expansion");
            if (L->expansion_is_int) {
                put(&b, "%lld", (long long)L->expansion);
            } else {
                char num[64];
                shortest_double(num, sizeof num, L->expansion);
                put(&b, "%s", num);
            }
        }
        if (body)
            kint(&o, "kernel_size", L->kernel);
        if (L->groups_set)
            kint(&o, "groups", L->groups);
        if (L->act_set)
            kstr(&o, "act", gn_act_name(L->act));
        if (L->use_se_set)
            kbool(&o, "use_se", L->use_se);
        if (L->type == GN_LAYER_TAIL)
            kint(&o, "num_classes", L->num_classes);
        if (L->stage_set)
            kint(&o, "stage", L->stage);
        put(&b, "\n      }");
    }
    put(&b, "\n]\n");
    if (!b.buf)
        gn_error_set(err, "%s: out of memory writing the layer list", a->source ? a->source : "arch");
    return b.buf;
}

/* PATH.tmp, fsync, rename, fsync of the folder (util/fs_atomic.h): the previous
 * file stays whole until the new one is complete. */
int gn_arch_save(const gn_arch *a, const char *path, gn_error *err)
{
    char *text = gn_arch_to_json(a, err);
    if (!text)
        return -1;
    int rc = gn__fs_write_text_atomic(path, text, err);
    free(text);
    return rc;
}
