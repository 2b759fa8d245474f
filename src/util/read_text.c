/*
 * read_text.c — the one "read a whole text file" of gpunas (config, search-space and
 * latency-profile files): bounded size, checked allocations, a NUL byte refused (the
 * JSON parsers would stop there silently), every failure one line naming the file.
 */
#include "util/read_text.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int gn__read_text(const char *path, size_t max_bytes, const char *what, char **out, gn_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return gn_error_set(err, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 14, n = 0, r;
    char *buf = malloc(cap);
    while (buf && (r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (n > max_bytes) {
            fclose(f);
            free(buf);
            return gn_error_set(err, "%s: file larger than %zu MiB; not %s", path, max_bytes >> 20, what);
        }
        if (n + 1 == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb)
                free(buf);
            buf = nb;
        }
    }
    int rerr = ferror(f);
    fclose(f);
    if (!buf)
        return gn_error_set(err, "%s: out of memory reading the file", path);
    if (rerr) {
        free(buf);
        return gn_error_set(err, "%s: read error", path);
    }
    buf[n] = 0;
    if (strlen(buf) != n) {
        free(buf);
        return gn_error_set(err, "%s: contains a NUL byte; not a JSON text file", path);
    }
    *out = buf;
    return 0;
}
