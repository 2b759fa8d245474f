/*
 * network_io.c — save/load a network's parameters and BN running statistics as
 * safetensors whose tensor names are NVIDIA's GPUNet state-dict keys (gpunas/network.h).
 *
 * A file is a complete PyTorch state dict of NVIDIA's builder: every parameter and
 * running statistic (F32, PyTorch shapes) plus each BN's num_batches_tracked (an I64
 * scalar), so `model.load_state_dict(safetensors.torch.load_file(F))` is strict-clean
 * in NVIDIA's code.  The metadata carries "format": "gpunas" and "arch": the canonical
 * GPUNet JSON, so a weights file describes its own network.
 *
 * Loading is strict: every tensor of the network must be present with the exact shape
 * and dtype, and the file may hold no others.  Files written by gpunas < 0.2 named
 * tensors "layers.{I}.{sub}.{param}" and had no num_batches_tracked: they are
 * recognised by their first tensor, read through the old names, and gn_notice() says
 * so in one line.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpunas/safetensors.h"
#include "nn/network_internal.h"

int64_t gn_net_bn_batches(const gn_net *net) { return net->bn_batches; }
void gn_net_set_bn_batches(gn_net *net, int64_t n) { net->bn_batches = n; }

size_t gn_net_num_values(const gn_net *net) { return net->n_total; }

int gn_net_set_values(gn_net *net, const float *host, gn_error *err)
{
    if (net->be->ops->copy_in(net->be, net->arena, host, net->n_total * sizeof *host))
        return gn_error_set(err, "%s: cannot copy weights to the %s backend", net->arch->source, net->be->name);
    net->ip.ready = false;
    return 0;
}

const char *gn_param_legacy_name(const gn_param *q, char *buf, size_t cap)
{
    snprintf(buf, cap, "layers.%d.%s", q->layer, q->name + q->local);
    return buf;
}

/* "X.running_var" -> "X.num_batches_tracked" in buf; false for other params. */
static bool nbt_name(const gn_param *q, char *buf, size_t cap)
{
    static const char rv[] = ".running_var";
    size_t n = strlen(q->name), k = sizeof rv - 1;
    if (n <= k || strcmp(q->name + n - k, rv) != 0)
        return false;
    snprintf(buf, cap, "%.*s.num_batches_tracked", (int)(n - k), q->name);
    return true;
}

int gn_net_save(gn_net *net, const char *path, gn_error *err)
{
    float *host = malloc((net->n_total ? net->n_total : 1) * sizeof *host);
    if (!host)
        return gn_error_set(err, "%s: out of memory", path);
    if (net->be->ops->copy_out(net->be, host, net->arena, net->n_total * sizeof *host)) {
        free(host);
        return gn_error_set(err, "%s: cannot read weights from the %s backend", path, net->be->name);
    }
    gn_st_writer *w = gn_st_writer_new();
    int rc = w ? 0 : gn_error_set(err, "%s: out of memory", path);
    for (int i = 0; i < net->n_params && !rc; i++) {
        gn_param *q = &net->params[i];
        char nbt[GN_NAME_MAX + 32];
        rc = gn_st_writer_add(w, q->name, q->ndim, q->shape, host + (q->value.data - net->arena), err);
        if (!rc && nbt_name(q, nbt, sizeof nbt)) /* PyTorch's order: right after running_var */
            rc = gn_st_writer_add_i64(w, nbt, 0, NULL, &net->bn_batches, err);
    }
    char *arch = rc ? NULL : gn_arch_to_json(net->arch, err);
    if (!rc && (!arch || gn_st_writer_meta(w, "format", "gpunas", err) || gn_st_writer_meta(w, "arch", arch, err)))
        rc = -1;
    if (!rc)
        rc = gn_st_writer_write(w, path, err);
    free(arch);
    gn_st_writer_free(w);
    free(host);
    return rc;
}

/* Is NAME a tensor this network expects (in the file's naming)? */
static bool expected(gn_net *net, const char *name, bool legacy)
{
    char buf[GN_NAME_MAX + 32];
    for (int i = 0; i < net->n_params; i++) {
        gn_param *q = &net->params[i];
        if (strcmp(legacy ? gn_param_legacy_name(q, buf, sizeof buf) : q->name, name) == 0)
            return true;
        if (!legacy && nbt_name(q, buf, sizeof buf) && strcmp(buf, name) == 0)
            return true;
    }
    return false;
}

int gn_net_load(gn_net *net, const char *path, gn_error *err)
{
    gn_st_file *f;
    if (gn_st_open(path, &f, err))
        return -1;
    float *host = malloc((net->n_total ? net->n_total : 1) * sizeof *host);
    if (!host) {
        gn_st_close(f);
        return gn_error_set(err, "%s: out of memory", path);
    }
    char old[GN_NAME_MAX + 32], nbt[GN_NAME_MAX + 32];
    /* the naming of the file, from the network's first tensor */
    bool legacy = net->n_params > 0 && !gn_st_find(f, net->params[0].name) &&
                  gn_st_find(f, gn_param_legacy_name(&net->params[0], old, sizeof old));
    int rc = 0, n_bn = 0;
    int64_t bn_batches = 0;
    for (int i = 0; i < net->n_params && !rc; i++) {
        gn_param *q = &net->params[i];
        const char *name = legacy ? gn_param_legacy_name(q, old, sizeof old) : q->name;
        rc = gn_st_load(f, name, q->ndim, q->shape, host + (q->value.data - net->arena), err);
        if (!rc && !legacy && nbt_name(q, nbt, sizeof nbt)) {
            int64_t v;
            rc = gn_st_load_i64(f, nbt, 1, &v, err);
            if (!rc && v < 0)
                rc = gn_error_set(err, "%s: tensor '%s': %" PRId64 " is negative", path, nbt, v);
            if (!rc && v > bn_batches)
                bn_batches = v;
            n_bn++;
        }
    }
    if (!rc && gn_st_count(f) != net->n_params + n_bn) {
        for (int i = 0; i < gn_st_count(f); i++)
            if (!expected(net, gn_st_at(f, i)->name, legacy)) {
                rc = gn_error_set(err, "%s: tensor '%s': not a parameter of %s", path, gn_st_at(f, i)->name,
                                  net->arch->source);
                break;
            }
    }
    if (!rc && net->be->ops->copy_in(net->be, net->arena, host, net->n_total * sizeof *host))
        rc = gn_error_set(err, "%s: cannot copy weights to the %s backend", path, net->be->name);
    free(host);
    gn_st_close(f);
    if (rc)
        return -1;
    net->ip.ready = false;
    net->bn_batches = bn_batches;
    if (legacy)
        gn_notice("%s: weights written by gpunas < 0.2 (tensor names 'layers.{I}.'); read through the old "
                  "names; `gpunas import %s --config CONFIG -o NEW.safetensors` rewrites them with NVIDIA's state-dict keys",
                  path,
                  path);
    return 0;
}
