/*
 * gpunas/npy.h — float32 arrays in NumPy's .npy format (numpy.save / numpy.load).
 *
 * Format (numpy.lib.format, versions 1.0, 2.0 and 3.0):
 *   bytes [0, 6)      magic "\x93NUMPY"
 *   bytes [6, 8)      major, minor version (1.0, 2.0 or 3.0)
 *   then              header length HLEN: u16 little-endian (1.0) or u32 (2.0, 3.0)
 *   then HLEN bytes   a Python dict literal, e.g.
 *                       {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 *                     padded with spaces and ended by '\n' (3.0: UTF-8, else latin-1;
 *                     the keys and values read here are ASCII either way)
 *   then              the data, numel * itemsize bytes, C order for fortran_order False
 *
 * What is supported, and why so little: the arrays that cross between gpunas and
 * Python tools are network inputs (NCHW images) and outputs (logits), always float32.
 * So reading accepts dtype '<f4' only, fortran_order False only, 1 to GN_NPY_MAX_DIMS
 * dimensions (a dimension may be 0), and exactly numel*4 data bytes after the header.
 * Everything else is refused rather than converted, with one gn_error line naming the
 * file and the reason:
 *   "x.npy: not a .npy file (bad magic)"
 *   "x.npy: truncated header: expected 118 bytes, got 40"
 *   "x.npy: dtype '<f8' not supported (expected '<f4', little-endian float32)"
 *   "x.npy: fortran_order True not supported (save a C-order array: np.ascontiguousarray)"
 *   "x.npy: truncated data: shape [2,3] needs 24 bytes, got 20"
 *   "x.npy: 8 bytes after the data of shape [2,3]"
 * (the last two are the file's shape disagreeing with its size).  The dict parser
 * takes the keys in any order, either quote style, optional spaces and a trailing
 * comma, as numpy's own literal_eval-based reader does, and refuses unknown keys.
 *
 * Writing produces version 1.0, descr '<f4', fortran_order False, the header padded so
 * that the data starts at a multiple of 64 bytes (what numpy >= 1.14 writes), data
 * little-endian on any host.  The file is written as PATH.tmp, fsync'ed and renamed
 * over PATH (then the folder is fsync'ed, best effort), so PATH is always either the
 * old file or the complete new one; on failure PATH is untouched and PATH.tmp removed.
 *
 * Memory: gn_npy_read allocates out->data (numel floats, at least one allocation even
 * for numel 0); gn_npy_free releases it and zeroes the struct.  A zeroed gn_npy is
 * safe to free.  Nothing prints; nothing is thread-unsafe beyond the usual per-object
 * rule.
 */
#ifndef GPUNAS_NPY_H
#define GPUNAS_NPY_H

#include <stdint.h>

#include "gpunas/error.h"

#define GN_NPY_MAX_DIMS 4

typedef struct {
    int ndim;                        /* 1 .. GN_NPY_MAX_DIMS */
    int64_t shape[GN_NPY_MAX_DIMS];  /* entries >= ndim are 0 */
    int64_t numel;                   /* product of shape */
    float *data;                     /* numel floats, C order, owned */
} gn_npy;

/* Read a float32 C-order .npy file (v1.0/2.0/3.0).  On failure *out is zeroed and err
 * holds one line naming the file. */
int gn_npy_read(const char *path, gn_npy *out, gn_error *err);

/* Write data (numel = product of shape floats, C order) as a v1.0 '<f4' .npy file,
 * atomically.  ndim in [1, GN_NPY_MAX_DIMS], every dim >= 0; data may be NULL only
 * when numel is 0. */
int gn_npy_write(const char *path, int ndim, const int64_t *shape, const float *data, gn_error *err);

void gn_npy_free(gn_npy *a);

#endif
