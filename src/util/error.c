/* error.c — gn_error formatting (see gpunas/error.h). */
#include "gpunas/error.h"

#include <stdarg.h>
#include <stdio.h>

int gn_error_set(gn_error *err, const char *fmt, ...)
{
    if (!err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    for (char *p = err->msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return -1;
}

/* ------------------------------------------------------------------ notices */

static gn_notice_fn notice_fn;
static void *notice_ctx;

void gn_notice_set_handler(gn_notice_fn fn, void *ctx)
{
    notice_fn = fn;
    notice_ctx = ctx;
}

void gn_notice(const char *fmt, ...)
{
    if (!notice_fn)
        return;
    char msg[GN_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    notice_fn(msg, notice_ctx);
}
