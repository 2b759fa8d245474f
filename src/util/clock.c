/* clock.c — see clock.h. */
#include "util/clock.h"

#include <time.h>

int64_t gn__now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

double gn__now_s(void) { return (double)gn__now_ns() * 1e-9; }

double gn__now_ms(void) { return (double)gn__now_ns() * 1e-6; }
