/*
 * fs_atomic.h — files that are either absent, the old version or the complete new
 * one, never half-written (library-internal; the hub and the search's winners use it).
 *
 * The recipe is the usual one: write PATH.tmp, fsync it, rename it over PATH, fsync
 * the folder (so the rename itself survives a power cut).  A folder is published the
 * same way: fill STAGING/, fsync every file and STAGING, rename STAGING to its final
 * name, fsync the parent.  A kill -9 at any point leaves at worst a *.tmp file or a
 * staging folder, which the next run overwrites or removes.
 *
 * Errors: 0 / -1 with gn_error naming the path and the reason (strerror).
 */
#ifndef GPUNAS_FS_ATOMIC_H
#define GPUNAS_FS_ATOMIC_H

#include <stddef.h>

#include "gpunas/error.h"

/* Write n bytes to PATH atomically (PATH.tmp + fsync + rename + fsync of the folder). */
int gn__fs_write_atomic(const char *path, const void *data, size_t n, gn_error *err);
/* The same for a NUL-terminated text (a newline is added when missing). */
int gn__fs_write_text_atomic(const char *path, const char *text, gn_error *err);
/* Read a whole file (NUL-terminated, *n_out bytes without the NUL; n_out may be NULL). */
int gn__fs_read_all(const char *path, char **out, size_t *n_out, gn_error *err);
/* Copy SRC to DST atomically. */
int gn__fs_copy(const char *src, const char *dst, gn_error *err);
/* fsync a file or a folder (folders: best effort where the file system refuses). */
int gn__fs_fsync(const char *path, gn_error *err);
/* fsync the folder that holds PATH, so that a rename into it survives a power cut
 * (EINVAL, a file system that cannot sync folders, is not an error). */
int gn__fs_fsync_parent(const char *path, gn_error *err);
/* fsync every regular file in DIR (not recursive), then DIR. */
int gn__fs_fsync_tree(const char *dir, gn_error *err);
/* mkdir -p */
int gn__fs_mkdirs(const char *path, gn_error *err);
/* rm -r (a missing path is not an error). */
int gn__fs_remove_tree(const char *path, gn_error *err);
/* 1 if PATH exists (any type), 0 if not. */
int gn__fs_exists(const char *path);

#endif
