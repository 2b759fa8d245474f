/*
 * lat_profile.c — the device profile: its lookup table (sorted array, binary
 * search), table sums and calibrated prediction for an arch, and the JSON file
 * (save, and a load that validates every field; see gpunas/latprofile.h).
 */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpunas/latprofile.h"
#include "util/fs_atomic.h"
#include "util/read_text.h"

#define FORMAT "gpunas-latency-profile"
#define VERSION 1

void gn_lat_profile_init(gn_lat_profile *p)
{
    memset(p, 0, sizeof *p);
    p->batch = 1;
    gn_lat_opts_default(&p->net_opts);
    gn_lat_opts_default(&p->layer_opts);
}

void gn_lat_profile_free(gn_lat_profile *p)
{
    free(p->entries);
    gn_lat_profile_init(p);
}

/* Index of key, or -(insertion point) - 1. */
static int search(const gn_lat_profile *p, const char *key)
{
    int lo = 0, hi = p->n_entries - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(p->entries[mid].key, key);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -lo - 1;
}

const gn_lat_entry *gn_lat_profile_find(const gn_lat_profile *p, const char *key)
{
    int i = search(p, key);
    return i >= 0 ? &p->entries[i] : NULL;
}

int gn_lat_profile_add(gn_lat_profile *p, const gn_lat_entry *e, gn_error *err)
{
    int i = search(p, e->key);
    if (i >= 0)
        return gn_error_set(err, "latency table: key '%s' is already present", e->key);
    i = -i - 1;
    if (p->n_entries == p->cap_entries) {
        int cap = p->cap_entries ? 2 * p->cap_entries : 64;
        gn_lat_entry *ne = realloc(p->entries, (size_t)cap * sizeof *ne);
        if (!ne)
            return gn_error_set(err, "latency table: out of memory for %d entries", cap);
        p->entries = ne;
        p->cap_entries = cap;
    }
    memmove(&p->entries[i + 1], &p->entries[i], (size_t)(p->n_entries - i) * sizeof *p->entries);
    p->entries[i] = *e;
    p->n_entries++;
    return 0;
}

int gn_lat_table_layer_ms(const gn_lat_profile *p, const gn_arch *a, int layer, double *ms, bool *from_fallback,
                          gn_error *err)
{
    const gn_layer *L = &a->layers[layer];
    char key[GN_LAT_KEY_MAX];
    if (gn_lat_key(a, layer, p->batch, key, sizeof key, err))
        return -1;
    const gn_lat_entry *e = gn_lat_profile_find(p, key);
    *from_fallback = e == NULL;
    if (e) {
        *ms = e->ms;
        return 0;
    }
    if (!p->have_fallback[L->type])
        return gn_error_set(err, "%s: layer %d: key '%s' is not in the latency table and it has no fallback for "
                            "type %s", a->source, layer, key, gn_layer_type_name(L->type));
    return gn_lat_fallback_ms(p, L->type, key, gn_lat_layer_flops(L, p->batch) / 1e9,
                              gn_lat_layer_bytes(L, p->batch) / 1e6, ms, err);
}

int gn_lat_table_sums(const gn_lat_profile *p, const gn_arch *a, double *sums, int *missing, gn_error *err)
{
    for (int t = 0; t < GN_LAT_NTYPES; t++)
        sums[t] = 0;
    int miss = 0;
    for (int i = 1; i < a->n_layers; i++) {
        double ms;
        bool fb;
        if (gn_lat_table_layer_ms(p, a, i, &ms, &fb, err))
            return -1;
        sums[a->layers[i].type] += ms;
        miss += fb;
    }
    if (missing)
        *missing = miss;
    return 0;
}

int gn_lat_predict(const gn_lat_profile *p, const gn_arch *a, double *ms, int *missing, gn_error *err)
{
    if (!p->calibrated)
        return gn_error_set(err, "%s: the latency profile is not calibrated", a->source);
    double sums[GN_LAT_NTYPES];
    if (gn_lat_table_sums(p, a, sums, missing, err))
        return -1;
    *ms = gn_lat_calib_apply(&p->calib, sums);
    return 0;
}

/* ------------------------------------------------------------------ save */
static json_t *opts_json(const gn_lat_opts *o)
{
    return json_pack("{s:i, s:f, s:f, s:i}", "runs", o->runs, "min_ms", o->min_ms, "warmup_ms", o->warmup_ms,
                     "warmup_runs", o->warmup_runs);
}

int gn_lat_profile_save(const gn_lat_profile *p, const char *path, gn_error *err)
{
    const gn_lat_device *d = &p->device;
    json_t *root = json_object();
    json_object_set_new(root, "format", json_string(FORMAT));
    json_object_set_new(root, "version", json_integer(VERSION));
    json_object_set_new(root, "device",
                        json_pack("{s:s, s:s, s:s, s:i, s:i, s:i, s:s, s:s, s:s}", "id", d->id, "kind", d->kind,
                                  "cpu_model", d->cpu_model, "cores", d->cores, "logical_cpus", d->logical_cpus,
                                  "threads", d->threads, "backend", d->backend, "onednn", d->onednn, "gpunas",
                                  d->gpunas));
    json_object_set_new(json_object_get(root, "device"), "pinned", json_integer(d->pinned));
    json_object_set_new(root, "batch", json_integer(p->batch));
    json_object_set_new(root, "space", json_string(p->space));
    json_object_set_new(root, "measurement",
                        json_pack("{s:o, s:o}", "networks", opts_json(&p->net_opts), "layers", opts_json(&p->layer_opts)));
    json_t *ent = json_array();
    for (int i = 0; i < p->n_entries; i++) {
        const gn_lat_entry *e = &p->entries[i];
        json_array_append_new(ent, json_pack("{s:s, s:s, s:f, s:f, s:f, s:f}", "key", e->key, "type",
                                             gn_layer_type_name(e->type), "ms", e->ms, "cv", e->cv, "gflop", e->gflop,
                                             "mb", e->mb));
    }
    json_object_set_new(root, "entries", ent);
    json_t *fb = json_object();
    for (int t = 0; t < GN_LAT_NTYPES; t++)
        if (p->have_fallback[t]) {
            json_t *c = json_array();
            for (int j = 0; j < GN_LAT_FB_NCOEF; j++)
                json_array_append_new(c, json_real(p->fallback[t][j]));
            json_object_set_new(fb, gn_layer_type_name((gn_layer_type)t), c);
        }
    json_object_set_new(root, "fallback", fb);
    if (p->calibrated) {
        const gn_lat_calib *c = &p->calib;
        json_t *sc = json_object();
        for (int t = 1; t < GN_LAT_NTYPES; t++)
            json_object_set_new(sc, gn_layer_type_name((gn_layer_type)t), json_real(c->scale[t]));
        json_t *cj = json_pack("{s:s, s:f, s:o, s:i, s:f, s:f}", "model", gn_lat_model_name(c->model), "intercept_ms",
                               c->intercept_ms, "scale", sc, "networks", c->networks, "fit_mean_abs_pct",
                               c->fit_mean_abs_pct, "fit_max_pct", c->fit_max_pct);
        json_object_set_new(cj, "loo_mean_abs_pct",
                            isfinite(c->loo_mean_abs_pct) ? json_real(c->loo_mean_abs_pct) : json_null());
        json_object_set_new(root, "calibration", cj);
    }
    if (p->evaluated) {
        const gn_lat_eval *v = &p->eval;
        json_object_set_new(root, "evaluation",
                            json_pack("{s:i, s:f, s:f, s:f, s:f, s:i, s:i}", "networks", v->networks,
                                      "mean_abs_pct", v->mean_abs_pct, "max_pct", v->max_pct, "raw_mean_abs_pct",
                                      v->raw_mean_abs_pct, "raw_max_pct", v->raw_max_pct, "layers", v->layers,
                                      "missing", v->missing));
    }
    if (p->probe_ms > 0)
        json_object_set_new(root, "speed_probe", json_pack("{s:f}", "ms", p->probe_ms));
    /* PATH.tmp, fsync, rename (util/fs_atomic.h): never a half-written profile */
    char *text = json_dumps(root, JSON_INDENT(1) | JSON_REAL_PRECISION(12));
    json_decref(root);
    if (!text)
        return gn_error_set(err, "%s: cannot encode the latency profile (out of memory)", path);
    int rc = gn__fs_write_text_atomic(path, text, err);
    free(text);
    return rc;
}

/* ------------------------------------------------------------------ load */
typedef struct {
    const char *src;
    gn_error *err;
} ctx;

static int bad(ctx *c, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(ctx *c, const char *field, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return gn_error_set(c->err, "%s: field '%s': %s", c->src, field, msg);
}

static json_t *member(ctx *c, json_t *obj, const char *prefix, const char *name, char *path, size_t np)
{
    snprintf(path, np, "%s%s%s", prefix, *prefix ? "." : "", name);
    json_t *v = json_object_get(obj, name);
    if (!v)
        bad(c, path, "missing");
    return v;
}

static int get_num(ctx *c, json_t *obj, const char *prefix, const char *name, double lo, bool lo_open, double *out)
{
    char path[128];
    json_t *v = member(c, obj, prefix, name, path, sizeof path);
    if (!v)
        return -1;
    if (!json_is_number(v))
        return bad(c, path, "must be a number");
    double x = json_number_value(v);
    if (!isfinite(x) || (lo_open ? !(x > lo) : !(x >= lo)))
        return bad(c, path, "%g must be %s %g", x, lo_open ? ">" : ">=", lo);
    *out = x;
    return 0;
}

static int get_any_num(ctx *c, json_t *obj, const char *prefix, const char *name, double *out)
{
    char path[128];
    json_t *v = member(c, obj, prefix, name, path, sizeof path);
    if (!v)
        return -1;
    if (!json_is_number(v) || !isfinite(json_number_value(v)))
        return bad(c, path, "must be a finite number");
    *out = json_number_value(v);
    return 0;
}

static int get_int(ctx *c, json_t *obj, const char *prefix, const char *name, int lo, int *out)
{
    char path[128];
    json_t *v = member(c, obj, prefix, name, path, sizeof path);
    if (!v)
        return -1;
    if (!json_is_integer(v))
        return bad(c, path, "must be an integer");
    json_int_t x = json_integer_value(v);
    if (x < lo || x > 1000000000)
        return bad(c, path, "%lld out of range [%d, 1000000000]", (long long)x, lo);
    *out = (int)x;
    return 0;
}

static int get_str(ctx *c, json_t *obj, const char *prefix, const char *name, char *dst, size_t n)
{
    char path[128];
    json_t *v = member(c, obj, prefix, name, path, sizeof path);
    if (!v)
        return -1;
    if (!json_is_string(v))
        return bad(c, path, "must be a string");
    if (json_string_length(v) >= n)
        return bad(c, path, "longer than %zu characters", n - 1);
    snprintf(dst, n, "%s", json_string_value(v));
    return 0;
}

static int get_obj(ctx *c, json_t *obj, const char *prefix, const char *name, json_t **out)
{
    char path[128];
    json_t *v = member(c, obj, prefix, name, path, sizeof path);
    if (!v)
        return -1;
    if (!json_is_object(v))
        return bad(c, path, "must be an object");
    *out = v;
    return 0;
}

static int type_from_name(const char *s, gn_layer_type *t)
{
    for (int i = 1; i < GN_LAT_NTYPES; i++)
        if (strcmp(s, gn_layer_type_name((gn_layer_type)i)) == 0) {
            *t = (gn_layer_type)i;
            return 0;
        }
    return -1;
}

static int load_opts(ctx *c, json_t *m, const char *name, gn_lat_opts *o)
{
    json_t *v = NULL;
    char pre[64];
    snprintf(pre, sizeof pre, "measurement.%s", name);
    if (get_obj(c, m, "measurement", name, &v) || get_int(c, v, pre, "runs", 1, &o->runs) ||
        get_num(c, v, pre, "warmup_ms", 0, false, &o->warmup_ms) || get_int(c, v, pre, "warmup_runs", 0, &o->warmup_runs))
        return -1;
    o->min_ms = 0; /* optional: profiles before the timed-phase duration existed */
    if (json_object_get(v, "min_ms") && get_num(c, v, pre, "min_ms", 0, false, &o->min_ms))
        return -1;
    return 0;
}

static const char *top_keys[] = {"format",  "version",  "device",      "batch",      "space",      "speed_probe",
                                 "measurement", "entries", "fallback", "calibration", "evaluation"};

static int parse_root(ctx *c, json_t *root, gn_lat_profile *p)
{
    if (!json_is_object(root))
        return gn_error_set(c->err, "%s: a latency profile must be a JSON object", c->src);
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v) {
        bool known = false;
        for (size_t i = 0; i < sizeof top_keys / sizeof *top_keys; i++)
            known |= strcmp(k, top_keys[i]) == 0;
        if (!known)
            return bad(c, k, "unknown field");
    }
    char fmt[64];
    int ver;
    if (get_str(c, root, "", "format", fmt, sizeof fmt))
        return -1;
    if (strcmp(fmt, FORMAT) != 0)
        return bad(c, "format", "'%s' is not \"" FORMAT "\"", fmt);
    if (get_int(c, root, "", "version", 0, &ver))
        return -1;
    if (ver != VERSION)
        return bad(c, "version", "%d is not supported (this gpunas reads version %d)", ver, VERSION);
    json_t *dj = NULL, *mj = NULL, *ej, *fj = NULL;
    gn_lat_device *d = &p->device;
    if (get_obj(c, root, "", "device", &dj) || get_str(c, dj, "device", "id", d->id, sizeof d->id) ||
        get_str(c, dj, "device", "kind", d->kind, sizeof d->kind) ||
        get_str(c, dj, "device", "cpu_model", d->cpu_model, sizeof d->cpu_model) ||
        get_int(c, dj, "device", "cores", 1, &d->cores) || get_int(c, dj, "device", "logical_cpus", 1, &d->logical_cpus) ||
        get_int(c, dj, "device", "threads", 1, &d->threads) ||
        get_str(c, dj, "device", "backend", d->backend, sizeof d->backend) ||
        get_str(c, dj, "device", "onednn", d->onednn, sizeof d->onednn) ||
        get_str(c, dj, "device", "gpunas", d->gpunas, sizeof d->gpunas))
        return -1;
    json_t *pin = json_object_get(dj, "pinned"); /* absent in profiles before it existed: 0 */
    d->pinned = json_is_integer(pin) ? (int)json_integer_value(pin) : 0;
    if (get_int(c, root, "", "batch", 1, &p->batch) || get_str(c, root, "", "space", p->space, sizeof p->space) ||
        get_obj(c, root, "", "measurement", &mj) || load_opts(c, mj, "networks", &p->net_opts) ||
        load_opts(c, mj, "layers", &p->layer_opts))
        return -1;
    json_t *pj = json_object_get(root, "speed_probe");
    if (pj) {
        if (!json_is_object(pj))
            return bad(c, "speed_probe", "must be an object");
        if (get_num(c, pj, "speed_probe", "ms", 0, true, &p->probe_ms))
            return -1;
    }
    ej = json_object_get(root, "entries");
    if (!ej)
        return bad(c, "entries", "missing");
    if (!json_is_array(ej))
        return bad(c, "entries", "must be an array");
    size_t i;
    json_array_foreach(ej, i, v) {
        char pre[48], path[64];
        snprintf(pre, sizeof pre, "entries[%zu]", i);
        if (!json_is_object(v))
            return bad(c, pre, "must be an object");
        gn_lat_entry e = {0};
        char tname[32];
        if (get_str(c, v, pre, "key", e.key, sizeof e.key) || get_str(c, v, pre, "type", tname, sizeof tname))
            return -1;
        snprintf(path, sizeof path, "%s.type", pre);
        if (type_from_name(tname, &e.type))
            return bad(c, path, "'%s' is not a layer type", tname);
        size_t tl = strlen(tname);
        snprintf(path, sizeof path, "%s.key", pre);
        if (strncmp(e.key, tname, tl) != 0 || e.key[tl] != '|')
            return bad(c, path, "'%s' does not start with its type '%s|'", e.key, tname);
        char bq[16];
        snprintf(bq, sizeof bq, "|b=%d", p->batch);
        size_t kl = strlen(e.key), bl = strlen(bq);
        if (kl < bl || strcmp(e.key + kl - bl, bq) != 0)
            return bad(c, path, "'%s' is not for the profile's batch %d", e.key, p->batch);
        if (get_num(c, v, pre, "ms", 0, true, &e.ms) || get_num(c, v, pre, "cv", 0, false, &e.cv) ||
            get_num(c, v, pre, "gflop", 0, true, &e.gflop) || get_num(c, v, pre, "mb", 0, true, &e.mb))
            return -1;
        gn_error dup;
        if (gn_lat_profile_add(p, &e, &dup))
            return bad(c, path, "'%s' appears twice", e.key);
    }
    if (get_obj(c, root, "", "fallback", &fj))
        return -1;
    json_object_foreach(fj, k, v) {
        char path[64];
        snprintf(path, sizeof path, "fallback.%s", k);
        gn_layer_type t;
        if (type_from_name(k, &t))
            return bad(c, path, "'%s' is not a layer type", k);
        if (!json_is_array(v) || json_array_size(v) != GN_LAT_FB_NCOEF)
            return bad(c, path, "must be an array of %d numbers", GN_LAT_FB_NCOEF);
        for (int j = 0; j < GN_LAT_FB_NCOEF; j++) {
            json_t *x = json_array_get(v, j);
            if (!json_is_number(x) || !isfinite(json_number_value(x)))
                return bad(c, path, "element %d must be a finite number", j);
            p->fallback[t][j] = json_number_value(x);
        }
        p->have_fallback[t] = true;
    }
    json_t *cj = json_object_get(root, "calibration");
    if (cj) {
        gn_lat_calib *cb = &p->calib;
        json_t *sc = NULL;
        char model[32];
        if (!json_is_object(cj))
            return bad(c, "calibration", "must be an object");
        if (get_str(c, cj, "calibration", "model", model, sizeof model))
            return -1;
        if (strcmp(model, "linear") == 0)
            cb->model = GN_LAT_MODEL_LINEAR;
        else if (strcmp(model, "per_type") == 0)
            cb->model = GN_LAT_MODEL_PER_TYPE;
        else
            return bad(c, "calibration.model", "'%s' is not \"linear\" or \"per_type\"", model);
        if (get_any_num(c, cj, "calibration", "intercept_ms", &cb->intercept_ms) ||
            get_obj(c, cj, "calibration", "scale", &sc) || get_int(c, cj, "calibration", "networks", 1, &cb->networks) ||
            get_num(c, cj, "calibration", "fit_mean_abs_pct", 0, false, &cb->fit_mean_abs_pct) ||
            get_num(c, cj, "calibration", "fit_max_pct", 0, false, &cb->fit_max_pct))
            return -1;
        for (int t = 1; t < GN_LAT_NTYPES; t++)
            if (get_any_num(c, sc, "calibration.scale", gn_layer_type_name((gn_layer_type)t), &cb->scale[t]))
                return -1;
        json_t *l = json_object_get(cj, "loo_mean_abs_pct");
        if (!l || json_is_null(l))
            cb->loo_mean_abs_pct = NAN;
        else if (get_num(c, cj, "calibration", "loo_mean_abs_pct", 0, false, &cb->loo_mean_abs_pct))
            return -1;
        p->calibrated = true;
    }
    json_t *vj = json_object_get(root, "evaluation");
    if (vj) {
        gn_lat_eval *e = &p->eval;
        if (!json_is_object(vj))
            return bad(c, "evaluation", "must be an object");
        if (get_int(c, vj, "evaluation", "networks", 0, &e->networks) ||
            get_num(c, vj, "evaluation", "mean_abs_pct", 0, false, &e->mean_abs_pct) ||
            get_num(c, vj, "evaluation", "max_pct", 0, false, &e->max_pct) ||
            get_num(c, vj, "evaluation", "raw_mean_abs_pct", 0, false, &e->raw_mean_abs_pct) ||
            get_num(c, vj, "evaluation", "raw_max_pct", 0, false, &e->raw_max_pct) ||
            get_int(c, vj, "evaluation", "layers", 0, &e->layers) || get_int(c, vj, "evaluation", "missing", 0, &e->missing))
            return -1;
        p->evaluated = true;
    }
    return 0;
}

int gn_lat_profile_parse(const char *text, const char *source, gn_lat_profile *p, gn_error *err)
{
    gn_lat_profile_init(p);
    json_error_t je;
    json_t *root = json_loads(text, 0, &je);
    if (!root)
        return gn_error_set(err, "%s:%d:%d: %s", source, je.line, je.column, je.text);
    ctx c = {source, err};
    int rc = parse_root(&c, root, p);
    json_decref(root);
    if (rc)
        gn_lat_profile_free(p);
    return rc;
}

int gn_lat_profile_load(const char *path, gn_lat_profile *p, gn_error *err)
{
    gn_lat_profile_init(p);
    char *buf;
    if (gn__read_text(path, 256u << 20, "a latency profile", &buf, err))
        return -1;
    int rc = gn_lat_profile_parse(buf, path, p, err);
    free(buf);
    return rc;
}
