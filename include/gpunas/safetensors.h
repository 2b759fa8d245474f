/*
 * gpunas/safetensors.h — reading and writing F32 (and I64) tensors in the safetensors
 * format.
 *
 * Format (https://github.com/huggingface/safetensors, "format" section):
 *   bytes [0, 8)        u64 little-endian N, the header length
 *   bytes [8, 8+N)      UTF-8 JSON object:
 *                         { "NAME": {"dtype": "F32", "shape": [d0, ...],
 *                                    "data_offsets": [BEGIN, END]}, ...,
 *                           "__metadata__": {"key": "value", ...} }   (optional)
 *                       padded with spaces so that 8+N is a multiple of 8
 *   bytes [8+N, EOF)    the data buffer; a tensor's bytes are buffer[BEGIN, END),
 *                       row-major (C order), little-endian
 *
 * Dtypes F32 (every weight) and I64 (PyTorch's BN num_batches_tracked, so that our
 * files are complete PyTorch state dicts), with 0 to GN_ST_MAX_DIMS dimensions
 * (0 = scalar).  Reading a tensor as the other dtype is an error naming both.
 *
 * Writing: gn_st_writer collects tensors in insertion order (data laid out in that
 * order) plus metadata string pairs, and gn_st_writer_write() writes "PATH.tmp",
 * fsyncs it, renames it over PATH and fsyncs the folder, so PATH is either the old
 * file or the complete new one, never a truncated file.
 *
 * Reading: gn_st_open() reads and validates the whole header up front (sizes,
 * JSON syntax, dtype, shapes, data_offsets in range / non-overlapping / equal to
 * numel*4, duplicate names); tensor data is read on demand with pread() into the
 * caller's buffer by gn_st_load*().  The file stays open until gn_st_close().
 *
 * Errors: every failing call fills gn_error with one line naming the file, the
 * tensor (if any) and the reason, e.g.
 *   "w.safetensors: tensor 'layers.2.conv.weight': shape [32,32,3,3] in file, expected [32,32,5,5]"
 * and returns non-zero.  Nothing is printed.
 *
 * Not thread-safe per object; distinct objects may be used from distinct threads.
 */
#ifndef GPUNAS_SAFETENSORS_H
#define GPUNAS_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "gpunas/error.h"

#define GN_ST_MAX_DIMS 4

typedef enum { GN_ST_F32 = 0, GN_ST_I64 } gn_st_dtype;
const char *gn_st_dtype_name(gn_st_dtype d); /* "F32", "I64" */

/* ------------------------------------------------------------------ writer */

typedef struct gn_st_writer gn_st_writer;

gn_st_writer *gn_st_writer_new(void); /* NULL only if out of memory */
void gn_st_writer_free(gn_st_writer *w);

/* Add an F32 tensor.  ndim in [0, GN_ST_MAX_DIMS], dims >= 0.  The data pointer is
 * BORROWED: it must stay valid until gn_st_writer_write() returns (or the writer is
 * freed).  Fails on an empty name, "__metadata__", a duplicate name, invalid UTF-8,
 * a bad shape, or NULL data with numel > 0. */
int gn_st_writer_add(gn_st_writer *w, const char *name, int ndim, const int64_t *shape,
                     const float *data, gn_error *err);
/* Same, but the writer copies the data (for temporaries such as a scalar loss). */
int gn_st_writer_add_copy(gn_st_writer *w, const char *name, int ndim,
                          const int64_t *shape, const float *data, gn_error *err);
/* An I64 tensor (copied). */
int gn_st_writer_add_i64(gn_st_writer *w, const char *name, int ndim, const int64_t *shape,
                         const int64_t *data, gn_error *err);
/* Set a "__metadata__" string pair (insertion order; setting a key again replaces its
 * value). */
int gn_st_writer_meta(gn_st_writer *w, const char *key, const char *value, gn_error *err);

int gn_st_writer_count(const gn_st_writer *w);

/* Write the file atomically (see above).  The writer can be written again. */
int gn_st_writer_write(const gn_st_writer *w, const char *path, gn_error *err);

/* ------------------------------------------------------------------ reader */

typedef struct gn_st_file gn_st_file;

typedef struct {
    const char *name;               /* owned by the gn_st_file */
    int ndim;                       /* 0 .. GN_ST_MAX_DIMS */
    int64_t shape[GN_ST_MAX_DIMS];  /* unused entries are 0 */
    int64_t numel;                  /* product of shape (1 for a scalar) */
    gn_st_dtype dtype;
    uint64_t begin, end;            /* data_offsets, relative to the data buffer */
} gn_st_info;

/* Open and validate; on success *out owns the file. */
int gn_st_open(const char *path, gn_st_file **out, gn_error *err);
void gn_st_close(gn_st_file *f);

const char *gn_st_path(const gn_st_file *f);
/* Tensors, ordered by data offset (i.e. the writer's insertion order for our files). */
int gn_st_count(const gn_st_file *f);
const gn_st_info *gn_st_at(const gn_st_file *f, int i);
/* Lookup by name: NULL if absent (no error). */
const gn_st_info *gn_st_find(const gn_st_file *f, const char *name);
/* Lookup by name; a missing tensor is an error ("FILE: tensor 'X': missing"). */
int gn_st_get(const gn_st_file *f, const char *name, const gn_st_info **out, gn_error *err);

/* Copy a tensor into dst (host floats).  The shape in the file must equal
 * (ndim, shape) exactly, otherwise "shape [..] in file, expected [..]". */
int gn_st_load(const gn_st_file *f, const char *name, int ndim, const int64_t *shape,
               float *dst, gn_error *err);
/* Same, but only the element count must equal numel (for layout-agnostic callers,
 * e.g. a [out,in] weight stored as [out,in,1,1]). */
int gn_st_load_numel(const gn_st_file *f, const char *name, int64_t numel, float *dst,
                     gn_error *err);

/* An I64 tensor of numel elements (any shape with that count). */
int gn_st_load_i64(const gn_st_file *f, const char *name, int64_t numel, int64_t *dst, gn_error *err);

/* "__metadata__" string pairs: value for key, or NULL if absent. */
const char *gn_st_meta(const gn_st_file *f, const char *key);
int gn_st_meta_count(const gn_st_file *f);
/* i-th pair in header order; returns 0, or -1 if i is out of range. */
int gn_st_meta_at(const gn_st_file *f, int i, const char **key, const char **value);

/* Format a shape as "[d0,d1,...]" ("[]" for a scalar) into buf; returns buf. */
char *gn_st_shape_str(int ndim, const int64_t *shape, char *buf, size_t cap);

#endif
