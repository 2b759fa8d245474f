/*
 * metrics.c — the per-epoch metrics file (JSON lines, fields in gpunas/train.h).
 *
 * Lines are appended before each epoch's checkpoint (a failed append is cut off
 * again); on resume the file is cut back to the checkpoint's epoch (rewritten through
 * a temp file + rename), so a run interrupted between the line and the checkpoint, or
 * after later epochs, ends with exactly one line per epoch.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "train/train_internal.h"
#include "util/fs_atomic.h"

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

/* One line appended with write(2); a write that fails part-way is cut off again, so
 * the file never ends in half a line. */
int gn__metrics_append(const char *path, const gn_epoch_metrics *m, gn_error *err)
{
    char *line = gn__metrics_line(m);
    if (!line)
        return gn_error_set(err, "%s: cannot encode the metrics (out of memory)", path);
    size_t n = strlen(line);
    line[n] = '\n'; /* json_dumps' NUL: the line's end */
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        free(line);
        return gn_error_set(err, "%s: cannot open for appending: %s", path, strerror(e));
    }
    struct stat st;
    off_t start = fstat(fd, &st) == 0 ? st.st_size : -1;
    const char *p = line;
    size_t left = n + 1;
    int e = 0;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            e = w < 0 ? errno : ENOSPC;
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    free(line);
    if (e) {
        if (start >= 0)
            (void)!ftruncate(fd, start);
        close(fd);
        return gn_error_set(err, "%s: write failed: %s", path, strerror(e));
    }
    if (close(fd) != 0)
        return gn_error_set(err, "%s: write failed: %s", path, strerror(errno));
    return 0;
}

/* Keep the lines of epochs 1..epochs_done (whole lines that parse); the file is
 * replaced atomically (util/fs_atomic.h), so a failure leaves it as it was. */
int gn__metrics_truncate(const char *path, int epochs_done, gn_error *err)
{
    if (access(path, F_OK) != 0)
        return 0;
    char *text;
    size_t n;
    if (gn__fs_read_all(path, &text, &n, err))
        return -1;
    char *out = malloc(n + 1);
    if (!out) {
        free(text);
        return gn_error_set(err, "%s: out of memory", path);
    }
    size_t k = 0;
    int rc = 0;
    for (char *l = text; *l;) {
        char *nl = strchr(l, '\n');
        if (!nl)
            break; /* a last line without its newline was cut by a crash */
        *nl = 0;
        json_error_t je;
        json_t *j = json_loads(l, 0, &je);
        if (!j && json_error_code(&je) == json_error_out_of_memory) {
            rc = gn_error_set(err, "%s: out of memory", path);
            break;
        }
        json_t *e = j ? json_object_get(j, "epoch") : NULL;
        if (json_is_integer(e) && json_integer_value(e) <= epochs_done) {
            size_t len = (size_t)(nl - l);
            memcpy(out + k, l, len);
            out[k + len] = '\n';
            k += len + 1;
        }
        json_decref(j);
        l = nl + 1;
    }
    free(text);
    if (!rc)
        rc = gn__fs_write_atomic(path, out, k, err);
    free(out);
    return rc;
}
