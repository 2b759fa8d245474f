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
