/*
 * gpunas/error.h — one-line error reports.
 *
 * Library code never prints; it fills a gn_error with a single line that names the
 * file, the item (layer, field, record...) and the reason, and returns non-zero.
 * The CLI prints "gpunas: <msg>" to stderr and exits non-zero.
 *
 * Notices: a few library calls succeed but have something to say (e.g. weights of
 * an older gpunas read by mapping their names).  They call gn_notice(), which hands
 * one line to the handler the program installed (the CLI prints "gpunas: notice:
 * <msg>" to stderr); without a handler a notice goes nowhere.  Process-wide, set once
 * at start-up.
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

typedef void (*gn_notice_fn)(const char *msg, void *ctx);
void gn_notice_set_handler(gn_notice_fn fn, void *ctx);
void gn_notice(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

#endif
