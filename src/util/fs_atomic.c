/* fs_atomic.c — atomic file writes and folder publishing (see fs_atomic.h). */
#include "util/fs_atomic.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int gn__fs_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

int gn__fs_fsync(const char *path, gn_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return gn_error_set(err, "%s: cannot open to sync: %s", path, strerror(errno));
    struct stat st;
    int is_dir = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
    if (fsync(fd) != 0 && !(is_dir && (errno == EINVAL || errno == EBADF))) {
        int e = errno;
        close(fd);
        return gn_error_set(err, "%s: fsync failed: %s", path, strerror(e));
    }
    close(fd);
    return 0;
}

static void parent_of(const char *path, char *dir, size_t cap)
{
    snprintf(dir, cap, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, cap, ".");
    else if (slash == dir)
        dir[1] = 0;
    else
        *slash = 0;
}

int gn__fs_fsync_parent(const char *path, gn_error *err)
{
    char dir[PATH_MAX];
    parent_of(path, dir, sizeof dir);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return gn_error_set(err, "%s: cannot open its folder %s to sync: %s", path, dir, strerror(errno));
    if (fsync(fd) != 0 && errno != EINVAL && errno != EBADF) {
        int e = errno;
        close(fd);
        return gn_error_set(err, "%s: cannot sync its folder %s: %s", path, dir, strerror(e));
    }
    close(fd);
    return 0;
}

int gn__fs_write_atomic(const char *path, const void *data, size_t n, gn_error *err)
{
    char tmp[PATH_MAX + 8];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return gn_error_set(err, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return gn_error_set(err, "%s: cannot write: %s", tmp, strerror(errno));
    const char *p = data;
    size_t left = n;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = w < 0 ? errno : ENOSPC;
            close(fd);
            unlink(tmp);
            return gn_error_set(err, "%s: write failed: %s", tmp, strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return gn_error_set(err, "%s: fsync failed: %s", tmp, strerror(e));
    }
    if (close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return gn_error_set(err, "%s: close failed: %s", tmp, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return gn_error_set(err, "%s: cannot rename into place: %s", path, strerror(e));
    }
    return gn__fs_fsync_parent(path, err);
}

int gn__fs_write_text_atomic(const char *path, const char *text, gn_error *err)
{
    size_t n = strlen(text);
    if (n > 0 && text[n - 1] == '\n')
        return gn__fs_write_atomic(path, text, n, err);
    char *buf = malloc(n + 2);
    if (!buf)
        return gn_error_set(err, "%s: out of memory", path);
    memcpy(buf, text, n);
    buf[n] = '\n';
    int rc = gn__fs_write_atomic(path, buf, n + 1, err);
    free(buf);
    return rc;
}

int gn__fs_read_all(const char *path, char **out, size_t *n_out, gn_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return gn_error_set(err, "%s: cannot read: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (n < cap)
            break;
        cap *= 2;
        char *nb = realloc(buf, cap + 1);
        if (!nb) {
            free(buf);
            buf = NULL;
        }
        buf = nb;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf)
        return gn_error_set(err, "%s: out of memory", path);
    if (bad) {
        free(buf);
        return gn_error_set(err, "%s: read error", path);
    }
    buf[n] = 0;
    *out = buf;
    if (n_out)
        *n_out = n;
    return 0;
}

int gn__fs_copy(const char *src, const char *dst, gn_error *err)
{
    char *data;
    size_t n;
    if (gn__fs_read_all(src, &data, &n, err))
        return -1;
    int rc = gn__fs_write_atomic(dst, data, n, err);
    free(data);
    return rc;
}

int gn__fs_fsync_tree(const char *dir, gn_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return gn_error_set(err, "%s: cannot list: %s", dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode))
            rc = gn__fs_fsync(p, err);
    }
    closedir(d);
    return rc ? -1 : gn__fs_fsync(dir, err);
}

int gn__fs_mkdirs(const char *path, gn_error *err)
{
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p)
        return gn_error_set(err, "%s: path too long", path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = 0;
        if (mkdir(p, 0777) != 0 && errno != EEXIST)
            return gn_error_set(err, "%s: cannot create: %s", p, strerror(errno));
        *s = '/';
    }
    if (mkdir(p, 0777) != 0 && errno != EEXIST)
        return gn_error_set(err, "%s: cannot create: %s", p, strerror(errno));
    struct stat st;
    if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
        return gn_error_set(err, "%s: exists and is not a folder", p);
    return 0;
}

int gn__fs_remove_tree(const char *path, gn_error *err)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : gn_error_set(err, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d)
            return gn_error_set(err, "%s: cannot list: %s", path, strerror(errno));
        struct dirent *e;
        int rc = 0;
        while (rc == 0 && (e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char p[PATH_MAX];
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            rc = gn__fs_remove_tree(p, err);
        }
        closedir(d);
        if (rc)
            return -1;
        if (rmdir(path) != 0)
            return gn_error_set(err, "%s: cannot remove: %s", path, strerror(errno));
        return 0;
    }
    if (unlink(path) != 0)
        return gn_error_set(err, "%s: cannot remove: %s", path, strerror(errno));
    return 0;
}
