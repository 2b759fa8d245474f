/* fd_io.c — see fd_io.h. */
#include "util/fd_io.h"

#include <errno.h>
#include <unistd.h>

/* at most 1 GiB per call: larger counts are not portable */
#define CHUNK ((size_t)1 << 30)

int gn__write_full(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t r = write(fd, p, len > CHUNK ? CHUNK : len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

ssize_t gn__pread_full(int fd, void *buf, size_t len, uint64_t off)
{
    char *p = buf;
    size_t got = 0;
    while (got < len) {
        size_t want = len - got > CHUNK ? CHUNK : len - got;
        ssize_t r = pread(fd, p + got, want, (off_t)(off + got));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}
