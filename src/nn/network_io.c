/*
 * network_io.c — save/load a network's parameters and BN running statistics as
 * safetensors (names and PyTorch shapes from gpunas/network.h).  The file's
 * metadata carries "format": "gpunas" and "arch": the canonical GPUNet JSON, so a
 * weights file describes its own network.  Loading is strict: every tensor of the
 * network must be present with the exact shape, and the file may hold no others.
 */
#include <stdlib.h>
#include <string.h>

#include "gpunas/safetensors.h"
#include "nn/network_internal.h"

int gn_net_save(gn_net *net, const char *path, gn_error *err)
{
    float *host = malloc((net->n_total ? net->n_total : 1) * sizeof *host);
    if (net->be->ops->copy_out(net->be, host, net->arena, net->n_total * sizeof *host)) {
        free(host);
        return gn_error_set(err, "%s: cannot read weights from the %s backend", path, net->be->name);
    }
    gn_st_writer *w = gn_st_writer_new();
    int rc = 0;
    for (int i = 0; i < net->n_params && !rc; i++) {
        gn_param *q = &net->params[i];
        rc = gn_st_writer_add(w, q->name, q->ndim, q->shape, host + (q->value.data - net->arena), err);
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

int gn_net_load(gn_net *net, const char *path, gn_error *err)
{
    gn_st_file *f;
    if (gn_st_open(path, &f, err))
        return -1;
    float *host = malloc((net->n_total ? net->n_total : 1) * sizeof *host);
    int rc = 0;
    for (int i = 0; i < net->n_params && !rc; i++) {
        gn_param *q = &net->params[i];
        rc = gn_st_load(f, q->name, q->ndim, q->shape, host + (q->value.data - net->arena), err);
    }
    if (!rc && gn_st_count(f) != net->n_params) {
        for (int i = 0; i < gn_st_count(f); i++)
            if (!gn_net_find_param(net, gn_st_at(f, i)->name)) {
                rc = gn_error_set(err, "%s: tensor '%s': not a parameter of %s", path, gn_st_at(f, i)->name,
                                  net->arch->source);
                break;
            }
    }
    if (!rc && net->be->ops->copy_in(net->be, net->arena, host, net->n_total * sizeof *host))
        rc = gn_error_set(err, "%s: cannot copy weights to the %s backend", path, net->be->name);
    free(host);
    gn_st_close(f);
    if (!rc)
        net->ip.ready = false;
    return rc;
}
