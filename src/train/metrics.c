/*
 * metrics.c — the per-epoch metrics file (JSON lines, fields in gpunas/train.h).
 *
 * Lines are appended after each epoch's checkpoint; on resume the file is cut back
 * to the checkpoint's epoch (rewritten through a temp file + rename), so a run
 * interrupted between the checkpoint and the line, or after later epochs, ends with
 * exactly one line per epoch.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/train_internal.h"

char *gn__metrics_line(const gn_epoch_metrics *m)
{
    json_t *o = json_object();
    json_object_set_new(o, "epoch", json_integer(m->epoch));
    json_object_set_new(o, "lr", json_real(m->lr));
    json_object_set_new(o, "train_loss", json_real(m->train_loss));
    json_object_set_new(o, "train_acc", json_real(m->train_acc));
    if (m->has_val) {
        json_object_set_new(o, "val_loss", json_real(m->val_loss));
        json_object_set_new(o, "val_top1", json_real(m->val_top1));
        json_object_set_new(o, "val_top5", json_real(m->val_top5));
    }
    if (m->has_ema) {
        json_object_set_new(o, "ema_val_loss", json_real(m->ema_val_loss));
        json_object_set_new(o, "ema_val_top1", json_real(m->ema_val_top1));
        json_object_set_new(o, "ema_val_top5", json_real(m->ema_val_top5));
    }
    if (m->has_test) {
        json_object_set_new(o, "test_loss", json_real(m->test_loss));
        json_object_set_new(o, "test_top1", json_real(m->test_top1));
        json_object_set_new(o, "test_top5", json_real(m->test_top5));
    }
    json_object_set_new(o, "time_s", json_real(m->time_s));
    json_object_set_new(o, "train_time_s", json_real(m->train_time_s));
    json_object_set_new(o, "images_per_s", json_real(m->images_per_s));
    json_object_set_new(o, "threads_min", json_integer(m->threads_min));
    json_object_set_new(o, "threads_max", json_integer(m->threads_max));
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(o);
    return s;
}

int gn__metrics_append(const char *path, const gn_epoch_metrics *m, gn_error *err)
{
    char *line = gn__metrics_line(m);
    if (!line)
        return gn_error_set(err, "%s: cannot encode the metrics", path);
    FILE *f = fopen(path, "a");
    int rc = 0;
    if (!f)
        rc = gn_error_set(err, "%s: cannot open for appending", path);
    else if (fprintf(f, "%s\n", line) < 0 || fclose(f) != 0)
        rc = gn_error_set(err, "%s: write failed", path);
    free(line);
    return rc;
}

int gn__metrics_truncate(const char *path, int epochs_done, gn_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t plen = strlen(path) + 8;
    char *tmp = malloc(plen);
    snprintf(tmp, plen, "%s.tmp", path);
    FILE *o = fopen(tmp, "w");
    if (!o) {
        fclose(f);
        free(tmp);
        return gn_error_set(err, "%s: cannot write", path);
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        json_error_t je;
        json_t *j = json_loads(line, 0, &je);
        json_t *e = j ? json_object_get(j, "epoch") : NULL;
        if (json_is_integer(e) && json_integer_value(e) <= epochs_done && fputs(line, o) < 0)
            rc = -1;
        json_decref(j);
    }
    free(line);
    fclose(f);
    if (fclose(o) != 0)
        rc = -1;
    if (!rc && rename(tmp, path) != 0)
        rc = -1;
    if (rc) {
        remove(tmp);
        gn_error_set(err, "%s: cannot rewrite the metrics file", path);
    }
    free(tmp);
    return rc;
}
