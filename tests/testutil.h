/*
 * testutil.h — helpers shared by the cmocka tests.
 *
 * Paths come from the environment CTest sets (see CMakeLists.txt):
 *   GPUNAS_SOURCE  the source tree (configs/, configs/gpunet/, tests/data/)
 *   GPUNAS_CLI     the built gpunas binary
 *   GPUNAS_TMP     a scratch folder in the build tree
 */
#ifndef GPUNAS_TESTUTIL_H
#define GPUNAS_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* "$GPUNAS_SOURCE/<rel>"; malloc'd. Tests read only files inside the repository. */
char *tu_source_path(const char *rel);
/* A fresh path in the scratch folder (folder created); malloc'd. */
char *tu_tmp_path(const char *name);
/* Write text to a file; returns 0 on success. */
int tu_write_file(const char *path, const char *text);
/* Read a whole file; malloc'd, NUL-terminated; NULL on failure. */
char *tu_read_file(const char *path, size_t *len);
/* Run `$GPUNAS_CLI <args>` via /bin/sh; captures stdout and stderr (malloc'd, may be NULL
 * pointers if not wanted).  Returns the exit status, or -1 if it did not exit normally. */
int tu_run_cli(const char *args, char **out, char **err);
/* The same without a shell: ARGS split at spaces (no quoting), ENV a NULL-terminated
 * list of "NAME=VALUE" set in the child only (may be NULL).  Returns the exit status,
 * or -1 with *signo the signal that ended it (signo may be NULL). */
int tu_run_cli_env(const char *const *env, const char *args, char **out, char **err, int *signo);
/* Start `$GPUNAS_CLI <args>` in the background (via /bin/sh, output discarded) and
 * return its pid, or -1. */
long tu_spawn_cli(const char *args);

/* An IDX pair in DIR, PREFIX-images-idx3-ubyte (N SIDE x SIDE images) and
 * PREFIX-labels-idx1-ubyte, drawn from SEED: CLASSES classes on a grid of b x b blocks
 * (b = the smallest with b*b >= CLASSES, blocks SIDE/b wide), class c bright (170) in
 * block c and dark (50) elsewhere, plus noise (sd 30).  tu_write_idx(d, p, n, 28, 10, s)
 * is Fashion-MNIST-shaped.  Fails the running cmocka test if a file cannot be written. */
void tu_write_idx(const char *dir, const char *prefix, int n, int side, int classes, uint64_t seed);

/* ------------------------------------------------------------------ numbers */
/* max |a[i]| over n floats */
double tu_maxabs(const float *a, size_t n);
/* Fails the running cmocka test unless every got[i] is finite and
 * max |got - ref| <= tol * max(1, max |ref|) (tol 0: exactly equal); the message names
 * `what`, the worst element and both values. */
void tu_assert_close(const char *what, const float *got, const float *ref, size_t n, double tol);

/* ------------------------------------------------------------------ network internals */
#include "gpunas/network.h"
/* The input of unit j (0 <= j < numel of the node's output value) of ReLU node `node` after
 * net's last training forward: the stored value, or, for a ReLU run fused with its BN
 * (src/nn/network_train.c keeps no pre-activation), BN's formula recomputed in double
 * from the BN's input and batch statistics (equal to the fused op's within float
 * rounding; for kink margins). */
double tu_relu_input(const gn_net *net, int node, size_t j);

/* ------------------------------------------------------------------ UNAS tests */
#include "gpunas/latprofile.h"
#include "gpunas/supernet.h"

/* The tiny space of test_supernet.c (resolution 16, 1 channel, 4 classes, 768
 * members), used by test_unas_step.c and test_unas_run.c. */
extern const char tu_tiny_space[];
/* A hand-made device profile (batch 1) for every path of sn: each layer key gets a
 * made-up time growing with FLOPs and bytes, plus 0.5 ms for an SE block and
 * 0.01 ms per mid channel, so that every choice has a clear cost; calibrated by hand
 * (per-type scales, an intercept).  p is initialised here.  0 / -1 with err. */
int tu_unas_profile(gn_supernet *sn, gn_lat_profile *p, gn_error *err);

#endif
