/* fd_io.h — whole writes and positioned reads on file descriptors, retried on EINTR
 * and short counts (the safetensors, .npy and PyTorch-checkpoint code).  Internal. */
#ifndef GPUNAS_UTIL_FD_IO_H
#define GPUNAS_UTIL_FD_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Write all len bytes: 0, or -1 with errno set. */
int gn__write_full(int fd, const void *buf, size_t len);
/* Read len bytes at off: the bytes read (short only at end of file), or -1 with errno. */
ssize_t gn__pread_full(int fd, void *buf, size_t len, uint64_t off);

#endif
