/* clock.h — the monotonic clock every timing in gpunas reads (CLOCK_MONOTONIC:
 * never jumps with the wall clock).  Internal (src/ only). */
#ifndef GPUNAS_UTIL_CLOCK_H
#define GPUNAS_UTIL_CLOCK_H

#include <stdint.h>

int64_t gn__now_ns(void);
double gn__now_s(void);
double gn__now_ms(void);

#endif
