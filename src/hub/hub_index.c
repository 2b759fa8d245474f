/*
 * hub_index.c — the hub's records: model.json per model folder, hub.json as the
 * index derived from them, the accuracy/latency front and picking by budget
 * (design in gpunas/hub.h).
 *
 * hub.json:
 *   {"format": "gpunas-hub", "version": 1,
 *    "models":  [RECORD, ...],   on the front, by latency
 *    "dropped": [RECORD + {"dropped": REASON}, ...]}
 * where RECORD is a model folder's model.json object (see hub_build.c for its
 * fields).  Only the fields below are needed to list and pick; every one is checked,
 * and a missing or mistyped one names the file and the field.
 */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "gpunas/hub.h"
#include "hub/hub_internal.h"
#include "util/fs_atomic.h"

static int get_num(json_t *o, const char *path, const char *field, double *v, gn_error *err)
{
    json_t *x = gn__hub_json_path(o, field);
    if (!x || !json_is_number(x))
        return gn_error_set(err, "%s: field '%s' %s", path, field, x ? "is not a number" : "is missing");
    *v = json_number_value(x);
    return 0;
}

/* A number that must be a whole count in [lo, hi] (checked before it is converted:
 * a double outside the target type's range is undefined behaviour to convert). */
static int get_count(json_t *o, const char *path, const char *field, double lo, double hi, double *v,
                     gn_error *err)
{
    if (get_num(o, path, field, v, err))
        return -1;
    if (!(*v >= lo && *v <= hi) || *v != floor(*v))
        return gn_error_set(err, "%s: field '%s': %.17g is not a whole number in [%.0f, %.0f]", path, field, *v, lo,
                            hi);
    return 0;
}

static int get_str(json_t *o, const char *path, const char *field, char *dst, size_t cap, gn_error *err)
{
    json_t *x = gn__hub_json_path(o, field);
    if (!x || !json_is_string(x))
        return gn_error_set(err, "%s: field '%s' %s", path, field, x ? "is not a string" : "is missing");
    if (strlen(json_string_value(x)) >= cap)
        return gn_error_set(err, "%s: field '%s' is too long", path, field);
    snprintf(dst, cap, "%s", json_string_value(x));
    return 0;
}

json_t *gn__hub_json_path(json_t *o, const char *dotted)
{
    char key[128];
    const char *p = dotted;
    while (o && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof key)
            return NULL;
        memcpy(key, p, n);
        key[n] = 0;
        o = json_is_object(o) ? json_object_get(o, key) : NULL;
        p = dot ? dot + 1 : p + n;
    }
    return o;
}

int gn__hub_model_from_json(json_t *o, const char *path, const char *folder, gn_hub_model *m, gn_error *err)
{
    memset(m, 0, sizeof *m);
    if (!json_is_object(o))
        return gn_error_set(err, "%s: a model record is not a JSON object", path);
    double tier = 0, rank = 0, thr = 0, params = 0, macs = 0, trial = 0, tmax = 0;
    const double big = 9223372036854774784.0; /* the largest double below 2^63 */
    if (get_str(o, path, "name", m->name, sizeof m->name, err) ||
        get_count(o, path, "search.tier", 0, INT_MAX, &tier, err) ||
        get_count(o, path, "search.rank", 0, INT_MAX, &rank, err) ||
        get_num(o, path, "search.tier_max_ms", &tmax, err) ||
        get_count(o, path, "search.trial_id", 0, big, &trial, err) ||
        get_str(o, path, "search.store", m->store, sizeof m->store, err) ||
        get_num(o, path, "accuracy.test_top1", &m->test_top1, err) ||
        get_num(o, path, "accuracy.test_top5", &m->test_top5, err) ||
        get_num(o, path, "latency.median_ms", &m->latency_ms, err) ||
        get_num(o, path, "latency.p10_ms", &m->latency_p10_ms, err) ||
        get_num(o, path, "latency.p90_ms", &m->latency_p90_ms, err) ||
        get_count(o, path, "latency.threads", 0, INT_MAX, &thr, err) ||
        get_str(o, path, "latency.device", m->device, sizeof m->device, err) ||
        get_count(o, path, "arch.params", 0, big, &params, err) || get_count(o, path, "arch.macs", 0, big, &macs, err))
        return -1;
    if (!(m->latency_ms > 0) || !(m->test_top1 >= 0 && m->test_top1 <= 1))
        return gn_error_set(err, "%s: model '%s': latency %.4g ms / accuracy %.4g out of range", path, m->name,
                            m->latency_ms, m->test_top1);
    if (strchr(m->name, '/') || m->name[0] == '.' || !m->name[0])
        return gn_error_set(err, "%s: field 'name': '%s' is not a folder name", path, m->name);
    m->tier = (int)tier;
    m->rank = (int)rank;
    m->tier_max_ms = tmax;
    m->threads = (int)thr;
    m->params = (int64_t)params;
    m->macs = (int64_t)macs;
    m->trial_id = (int64_t)trial;
    json_t *d = json_object_get(o, "dropped");
    if (d && json_is_string(d))
        snprintf(m->dropped, sizeof m->dropped, "%s", json_string_value(d));
    json_t *copy = json_deep_copy(o);
    json_object_del(copy, "dropped");
    m->record = json_dumps(copy, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(copy);
    m->folder = strdup(folder);
    if (!m->record || !m->folder) {
        free(m->record), free(m->folder);
        return gn_error_set(err, "%s: out of memory", path);
    }
    return 0;
}

static int add_model(gn_hub *h, const gn_hub_model *m, gn_error *err)
{
    gn_hub_model *nm = realloc(h->models, sizeof *nm * (h->n + 1));
    if (!nm)
        return gn_error_set(err, "%s: out of memory", h->dir);
    h->models = nm;
    h->models[h->n++] = *m;
    return 0;
}

void gn_hub_free(gn_hub *h)
{
    for (int i = 0; i < h->n; i++) {
        free(h->models[i].record);
        free(h->models[i].folder);
    }
    free(h->models);
    free(h->dir);
    memset(h, 0, sizeof *h);
}

static int hub_init(gn_hub *h, const char *dir, gn_error *err)
{
    memset(h, 0, sizeof *h);
    h->dir = strdup(dir);
    return h->dir ? 0 : gn_error_set(err, "%s: out of memory", dir);
}

static int load_list(gn_hub *h, json_t *arr, const char *path, const char *key, gn_error *err)
{
    if (!arr)
        return 0;
    if (!json_is_array(arr))
        return gn_error_set(err, "%s: field '%s' is not an array", path, key);
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        gn_hub_model m;
        char folder[PATH_MAX];
        json_t *nm = json_object_get(o, "name");
        snprintf(folder, sizeof folder, "%s/%s", h->dir, nm && json_is_string(nm) ? json_string_value(nm) : "?");
        if (gn__hub_model_from_json(o, path, folder, &m, err))
            return -1;
        if (!strcmp(key, "dropped") && !m.dropped[0])
            snprintf(m.dropped, sizeof m.dropped, "dropped (no reason recorded)");
        if (add_model(h, &m, err)) {
            free(m.record), free(m.folder);
            return -1;
        }
    }
    return 0;
}

int gn_hub_load(const char *dir, bool allow_missing, gn_hub *h, gn_error *err)
{
    if (hub_init(h, dir, err))
        return -1;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/hub.json", dir);
    if (!gn__fs_exists(path)) {
        if (allow_missing)
            return 0;
        gn_hub_free(h);
        return gn_error_set(err, "%s: no hub here (no hub.json; `gpunas hub build` makes one)", path);
    }
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) {
        gn_hub_free(h);
        return gn_error_set(err, "%s: line %d: corrupt hub index: %s", path, je.line, je.text);
    }
    json_t *fmt = json_object_get(root, "format");
    int rc = 0;
    if (!json_is_object(root) || !fmt || !json_is_string(fmt) || strcmp(json_string_value(fmt), "gpunas-hub"))
        rc = gn_error_set(err, "%s: field 'format': not a gpunas hub index (expected \"gpunas-hub\")", path);
    else if (!json_is_array(json_object_get(root, "models")))
        rc = gn_error_set(err, "%s: field 'models' %s", path,
                          json_object_get(root, "models") ? "is not an array" : "is missing");
    else
        rc = load_list(h, json_object_get(root, "models"), path, "models", err) ||
             load_list(h, json_object_get(root, "dropped"), path, "dropped", err);
    json_decref(root);
    if (rc) {
        gn_hub_free(h);
        return -1;
    }
    return 0;
}

int gn_hub_scan(const char *dir, gn_hub *h, gn_error *err)
{
    if (hub_init(h, dir, err))
        return -1;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT)
            return 0;
        gn_error_set(err, "%s: cannot list: %s", dir, strerror(errno));
        gn_hub_free(h);
        return -1;
    }
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char folder[PATH_MAX], path[PATH_MAX + 16];
        snprintf(folder, sizeof folder, "%s/%s", dir, e->d_name);
        snprintf(path, sizeof path, "%s/model.json", folder);
        struct stat st;
        if (stat(folder, &st) != 0 || !S_ISDIR(st.st_mode) || !gn__fs_exists(path))
            continue;
        json_error_t je;
        json_t *o = json_load_file(path, 0, &je);
        if (!o) {
            rc = gn_error_set(err, "%s: line %d: %s", path, je.line, je.text);
            break;
        }
        gn_hub_model m;
        rc = gn__hub_model_from_json(o, path, folder, &m, err);
        json_decref(o);
        if (rc == 0 && strcmp(m.name, e->d_name) != 0)
            rc = gn_error_set(err, "%s: field 'name' is '%s', the folder is '%s'", path, m.name, e->d_name);
        if (rc == 0)
            m.dropped[0] = 0;
        if (rc == 0 && (rc = add_model(h, &m, err)) != 0)
            free(m.record), free(m.folder);
        else if (rc)
            free(m.record), free(m.folder);
    }
    closedir(d);
    if (rc) {
        gn_hub_free(h);
        return -1;
    }
    gn_hub_mark_front(h);
    return 0;
}

static int by_latency(const void *a, const void *b)
{
    const gn_hub_model *x = a, *y = b;
    if (x->latency_ms != y->latency_ms)
        return x->latency_ms < y->latency_ms ? -1 : 1;
    if (x->test_top1 != y->test_top1)
        return x->test_top1 > y->test_top1 ? -1 : 1;
    return strcmp(x->name, y->name);
}

void gn_hub_mark_front(gn_hub *h)
{
    if (h->n > 1)
        qsort(h->models, h->n, sizeof *h->models, by_latency);
    int best = -1; /* the most accurate model so far (all faster ones) */
    for (int i = 0; i < h->n; i++) {
        gn_hub_model *m = &h->models[i];
        m->dropped[0] = 0;
        if (best >= 0 && m->test_top1 <= h->models[best].test_top1) {
            const gn_hub_model *b = &h->models[best];
            snprintf(m->dropped, sizeof m->dropped,
                     "slower than %s (%.3f ms) and not more accurate: %.2f%% <= %.2f%% test top-1", b->name,
                     b->latency_ms, 100 * m->test_top1, 100 * b->test_top1);
            continue;
        }
        best = i;
    }
}

int gn_hub_write_index(const gn_hub *h, gn_error *err)
{
    json_t *root = json_pack("{s:s, s:i}", "format", "gpunas-hub", "version", 1);
    json_t *models = json_array(), *dropped = json_array();
    int rc = 0;
    for (int i = 0; i < h->n && rc == 0; i++) {
        const gn_hub_model *m = &h->models[i];
        json_error_t je;
        json_t *o = json_loads(m->record, 0, &je);
        if (!o) {
            rc = gn_error_set(err, "%s: record of '%s' is not JSON: %s", h->dir, m->name, je.text);
            break;
        }
        if (m->dropped[0]) {
            json_object_set_new(o, "dropped", json_string(m->dropped));
            json_array_append_new(dropped, o);
        } else {
            json_array_append_new(models, o);
        }
    }
    json_object_set_new(root, "models", models);
    json_object_set_new(root, "dropped", dropped);
    char *text = rc ? NULL : json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (rc)
        return -1;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/hub.json", h->dir);
    rc = text ? gn__fs_write_text_atomic(path, text, err) : gn_error_set(err, "%s: out of memory", path);
    free(text);
    return rc;
}

int gn_hub_pick(const gn_hub *h, double budget_ms, const double *lat_ms, char *why, size_t why_size)
{
    int pick = -1, fastest = -1;
    for (int i = 0; i < h->n; i++) {
        const gn_hub_model *m = &h->models[i];
        double ms = lat_ms ? lat_ms[i] : m->latency_ms;
        if (!isfinite(ms))
            continue;
        if (fastest < 0 || ms < (lat_ms ? lat_ms[fastest] : h->models[fastest].latency_ms))
            fastest = i;
        /* every model competes (with another device's latencies the front is another
         * one); on equal accuracy the faster wins, so under the measured latencies a
         * dropped model is never picked */
        double best_ms = pick < 0 ? 0 : lat_ms ? lat_ms[pick] : h->models[pick].latency_ms;
        if (ms <= budget_ms && (pick < 0 || m->test_top1 > h->models[pick].test_top1 ||
                                (m->test_top1 == h->models[pick].test_top1 && ms < best_ms)))
            pick = i;
    }
    if (pick >= 0)
        return pick;
    if (why) {
        if (fastest < 0)
            snprintf(why, why_size, "%s: the hub has no model%s", h->dir, lat_ms ? " with a latency prediction" : "");
        else
            snprintf(why, why_size, "no model runs within %.4g ms: the fastest is %s at %.4g ms%s", budget_ms,
                     h->models[fastest].name, lat_ms ? lat_ms[fastest] : h->models[fastest].latency_ms,
                     lat_ms ? " (predicted)" : "");
    }
    return -1;
}
