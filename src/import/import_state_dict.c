/*
 * import_state_dict.c — copy a PyTorch state dict (gpunas/torchfile.h) into a gpunas
 * network whose tensor names are NVIDIA's keys (design: gpunas/import.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpunas/import.h"
#include "gpunas/safetensors.h"
#include "gpunas/torchfile.h"
#include "util/strmap.h"

#define NM "%.160s"

typedef struct {
    const char *path, *entry, *config;
    gn_pt_file *f;
    const gn_pv *sd;
    int n;
    const char **keys; /* state-dict keys without "module." */
    gn__strmap *index; /* key -> position (the first of duplicates) */
    bool *used;
} ctx;

/* index of KEY in the state dict, or -1 */
static int find(const ctx *c, const char *key)
{
    const int *i = gn__strmap_get(c->index, key);
    return i ? *i : -1;
}

static bool is_float(gn_pt_dtype d) { return d == GN_PT_F32 || d == GN_PT_F64 || d == GN_PT_F16 || d == GN_PT_BF16; }

static const gn_pv *tensor_at(const ctx *c, int i) { return gn_pv_item(c->sd, i); }

/* The state dict to import, per gpunas/import.h step 2. */
static const gn_pv *choose(const gn_pv *root, const gn_import_opts *o, const char *path, const char **entry,
                           gn_error *err)
{
    char keys[200] = "";
    if (gn_pv_kind_of(root) == GN_PV_DICT)
        for (int i = 0, n = 0; i < gn_pv_len(root); i++) {
            const char *k = gn_pv_str(gn_pv_key(root, i), NULL);
            if (k && strlen(keys) + strlen(k) + 3 < sizeof keys)
                n += snprintf(keys + n, sizeof keys - (size_t)n, "%s%s", n ? ", " : "", k);
        }
    if (gn_pv_kind_of(root) != GN_PV_DICT) {
        gn_error_set(err, "%s: the file holds a %s, not a state dict or a checkpoint dict", path,
                     gn_pv_kind_name(gn_pv_kind_of(root)));
        return NULL;
    }
    bool plain = gn_pv_len(root) > 0;
    for (int i = 0; plain && i < gn_pv_len(root); i++)
        plain = gn_pv_kind_of(gn_pv_item(root, i)) == GN_PV_TENSOR;
    const char *want = o->key ? o->key : o->ema ? "state_dict_ema" : NULL;
    if (want) {
        const gn_pv *v = gn_pv_dict_get(root, want);
        if (!v && plain)
            gn_error_set(err, "%s: no entry '%s': the file is a plain state dict (the layout of the P models), "
                         "import it without %s", path, want, o->key ? "--key" : "--ema");
        else if (!v)
            gn_error_set(err, "%s: no entry '%s' in the checkpoint (it has: %s)", path, want, keys);
        else if (gn_pv_kind_of(v) != GN_PV_DICT) {
            gn_error_set(err, "%s: entry '%s' is a %s, not a state dict", path, want,
                         gn_pv_kind_name(gn_pv_kind_of(v)));
            v = NULL;
        }
        *entry = want;
        return v;
    }
    const gn_pv *v = gn_pv_dict_get(root, "state_dict");
    if (v && gn_pv_kind_of(v) == GN_PV_DICT) {
        *entry = "state_dict";
        return v;
    }
    if (plain) {
        *entry = "(the file itself)";
        return root;
    }
    gn_error_set(err, "%s: neither a state dict nor a checkpoint with 'state_dict' (it has: %s); --key chooses "
                 "an entry", path, keys);
    return NULL;
}

/* Shape check of state-dict entry i against (ndim, shape) of gpunas tensor NAME. */
static int check_shape(const ctx *c, int i, const char *name, int ndim, const int64_t *shape, gn_error *err)
{
    const gn_pt_tensor_info *t = gn_pv_tensor(tensor_at(c, i));
    bool same = t->ndim == ndim;
    for (int d = 0; same && d < ndim; d++)
        same = t->shape[d] == shape[d];
    if (same)
        return 0;
    char a[128], b[128];
    return gn_error_set(err, "%s: %s: tensor '" NM "': shape %s in the checkpoint, %s in %s (a checkpoint of another "
                        "config?)", c->path, c->entry, name, gn_st_shape_str(t->ndim, t->shape, a, sizeof a),
                        gn_st_shape_str(ndim, shape, b, sizeof b), c->config);
}

static int missing(const ctx *c, const char *name, int need, gn_error *err)
{
    return gn_error_set(err, "%s: %s: tensor '" NM "' missing (%s needs %d tensors, the state dict has %d: a "
                        "checkpoint of another config?)", c->path, c->entry, name, c->config, need, c->n);
}

/* "X.running_var" -> "X.num_batches_tracked" */
static bool nbt_name(const char *name, char *buf, size_t cap)
{
    static const char rv[] = ".running_var";
    size_t n = strlen(name), k = sizeof rv - 1;
    if (n <= k || strcmp(name + n - k, rv) != 0)
        return false;
    snprintf(buf, cap, "%.*s.num_batches_tracked", (int)(n - k), name);
    return true;
}

static int copy_all(ctx *c, gn_net *net, float *host, gn_import_info *info, gn_error *err)
{
    const float *base = gn_net_values(net);
    int np = gn_net_num_params(net), need = np;
    for (int q = 0; q < np; q++) {
        char nbt[GN_NAME_MAX + 32];
        if (nbt_name(gn_net_param(net, q)->name, nbt, sizeof nbt))
            need++;
    }
    for (int q = 0; q < np; q++) {
        gn_param *p = gn_net_param(net, q);
        int i = find(c, p->name);
        if (i < 0)
            return missing(c, p->name, need, err);
        const gn_pt_tensor_info *t = gn_pv_tensor(tensor_at(c, i));
        if (!is_float(t->dtype))
            return gn_error_set(err, "%s: %s: tensor '" NM "': dtype %s, expected a floating-point tensor", c->path,
                                c->entry, p->name, gn_pt_dtype_name(t->dtype));
        if (check_shape(c, i, p->name, p->ndim, p->shape, err) ||
            gn_pt_read_f32(c->f, tensor_at(c, i), host + (p->value.data - base), err))
            return -1;
        info->n_converted += t->dtype != GN_PT_F32;
        c->used[i] = true;
        char nbt[GN_NAME_MAX + 32];
        if (!nbt_name(p->name, nbt, sizeof nbt))
            continue;
        int j = find(c, nbt);
        if (j < 0)
            return missing(c, nbt, need, err);
        t = gn_pv_tensor(tensor_at(c, j));
        if (is_float(t->dtype) || t->numel != 1)
            return gn_error_set(err, "%s: %s: tensor '" NM "': %s of %" PRId64 " elements, expected one integer",
                                c->path, c->entry, nbt, gn_pt_dtype_name(t->dtype), t->numel);
        int64_t v;
        if (gn_pt_read_i64(c->f, tensor_at(c, j), &v, err))
            return -1;
        if (v < 0)
            return gn_error_set(err, "%s: %s: tensor '" NM "': %" PRId64 " is negative", c->path, c->entry, nbt, v);
        if (v > info->bn_batches)
            info->bn_batches = v;
        c->used[j] = true;
    }
    for (int i = 0; i < c->n; i++)
        if (!c->used[i])
            return gn_error_set(err, "%s: %s: tensor '" NM "' is not in %s (a checkpoint of another config?)",
                                c->path, c->entry, c->keys[i], c->config);
    return 0;
}

int gn_net_import_torch(gn_net *net, const char *path, const gn_import_opts *opts, gn_import_info *info,
                        gn_error *err)
{
    gn_import_opts o = opts ? *opts : (gn_import_opts){0};
    gn_import_info tmp;
    if (!info)
        info = &tmp;
    memset(info, 0, sizeof *info);
    info->epoch = -1;
    ctx c = {.path = path, .config = gn_net_arch(net)->source};
    if (gn_pt_open(path, &c.f, err))
        return -1;
    const gn_pv *root = gn_pt_root(c.f);
    snprintf(info->format, sizeof info->format, "%s", gn_pt_format(c.f));
    int rc = -1;
    float *host = NULL;
    c.sd = choose(root, &o, path, &c.entry, err);
    if (!c.sd)
        goto done;
    snprintf(info->entry, sizeof info->entry, "%s", c.entry);
    info->has_ema = gn_pv_dict_get(root, "state_dict_ema") != NULL && c.sd != root;
    const gn_pv *ep = gn_pv_dict_get(root, "epoch"), *ar = gn_pv_dict_get(root, "arch");
    if (c.sd != root && gn_pv_kind_of(ep) == GN_PV_INT)
        info->epoch = gn_pv_int(ep);
    if (c.sd != root && gn_pv_kind_of(ar) == GN_PV_STR)
        snprintf(info->arch, sizeof info->arch, "%s", gn_pv_str(ar, NULL));

    c.n = info->n_tensors = gn_pv_len(c.sd);
    c.keys = calloc((size_t)(c.n ? c.n : 1), sizeof *c.keys);
    c.used = calloc((size_t)(c.n ? c.n : 1), sizeof *c.used);
    c.index = gn__strmap_new(sizeof(int));
    host = malloc((gn_net_num_values(net) ? gn_net_num_values(net) : 1) * sizeof *host);
    if (!c.keys || !c.used || !c.index || !host) {
        gn_error_set(err, "%s: out of memory", path);
        goto done;
    }
    for (int i = 0; i < c.n; i++) {
        const char *k = gn_pv_str(gn_pv_key(c.sd, i), NULL);
        if (gn_pv_kind_of(gn_pv_key(c.sd, i)) != GN_PV_STR || !k) {
            gn_error_set(err, "%s: %s: entry %d has a %s key, not a tensor name", path, c.entry, i,
                         gn_pv_kind_name(gn_pv_kind_of(gn_pv_key(c.sd, i))));
            goto done;
        }
        if (gn_pv_kind_of(gn_pv_item(c.sd, i)) != GN_PV_TENSOR) {
            gn_error_set(err, "%s: %s: '" NM "' is a %s, not a tensor", path, c.entry, k,
                         gn_pv_kind_name(gn_pv_kind_of(gn_pv_item(c.sd, i))));
            goto done;
        }
        if (strncmp(k, "module.", 7) == 0) {
            k += 7;
            info->stripped_module = true;
        }
        c.keys[i] = k;
        if (find(&c, k) < 0 && !gn__strmap_put(c.index, k, &i)) {
            gn_error_set(err, "%s: out of memory", path);
            goto done;
        }
    }
    /* copy_all reads every parameter and running statistic into host (it checks
     * completeness), so the whole arena is replaced at once */
    if (copy_all(&c, net, host, info, err) || gn_net_set_values(net, host, err))
        goto done;
    gn_net_set_bn_batches(net, info->bn_batches);
    rc = 0;
done:
    free(host);
    free(c.keys);
    free(c.used);
    gn__strmap_free(c.index);
    gn_pt_close(c.f);
    return rc;
}
