/*
 * gpunas/error.h — one-line error reports.
 *
 * Library code never prints; it fills a gn_error with a single line that names the
 * file, the item (layer, field, record...) and the reason, and returns non-zero.
 * The CLI prints "gpunas: <msg>" to stderr and exits non-zero.
 */
#ifndef GPUNAS_ERROR_H
#define GPUNAS_ERROR_H

#define GN_ERROR_MAX 512

typedef struct {
    char msg[GN_ERROR_MAX];
} gn_error;

/* printf-style; newlines in the result are replaced by spaces. Returns -1. */
int gn_error_set(gn_error *err, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#endif
