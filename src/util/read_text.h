/* read_text.h — read a whole text file (see read_text.c).  Internal (src/ only). */
#ifndef GPUNAS_UTIL_READ_TEXT_H
#define GPUNAS_UTIL_READ_TEXT_H

#include <stddef.h>

#include "gpunas/error.h"

/* *out: the file's bytes, NUL-terminated (malloc'd); a file over max_bytes is refused
 * as "not WHAT" (e.g. "a layer list"). */
int gn__read_text(const char *path, size_t max_bytes, const char *what, char **out, gn_error *err);

#endif
