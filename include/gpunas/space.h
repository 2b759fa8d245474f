/*
 * gpunas/space.h — search spaces: a JSON file of per-stage choices, a fixed-length
 * integer encoding of its members, and decoding to GPUNet JSON layer lists.
 *
 * Design
 *   A space file (spaces/gpunet.json = paper Table 1, spaces/fmnist.json = the default
 *   for Fashion-MNIST-sized inputs) declares the input (channels, classes, resolution
 *   choices), the stages and the tail:
 *
 *     { "name": "gpunet", "in_channels": 3, "classes": 1000,
 *       "resolutions": [224, 256, ...],
 *       "stages": [
 *         {"stage": 0, "type": "head", "act": ["relu", "swish"],
 *          "filters": {"min": 24, "max": 32, "step": 8}},
 *         {"stage": 1, "type": "conv", "stride": 1, "kernel": [3, 5],
 *          "layers": {"min": 1, "max": 4}, "act": ["relu", "swish"], "filters": ...},
 *         {"stage": 2, "type": "fused_irb", "stride": 2, "stride_first_only": true,
 *          "kernel": [3, 5], "layers": {"min": 1, "max": 8}, "act": [...],
 *          "expansion": {"min": 2, "max": 6}, "filters": ..., "se": [false, true]}, ...],
 *       "tail": {"filters": [1792]} }
 *
 *   An integer choice is a list of distinct values or {"min", "max", "step" (default
 *   1)} with step dividing max - min; "expansion" may also list fractional numbers.
 *   Stage 0 must be the one "head" stage (the GPUNet prologue: a 3x3 stride-2 conv, so
 *   its kernel, stride and layer count are fixed); the others are "conv", "fused_irb"
 *   or "irb" ("conv" has no expansion or SE).  "stride_first_only" (default true): only
 *   a stage's first layer has the stage's stride, the rest stride 1 (docs §1.2).  A
 *   stage whose layers may be 0 is left out of the network when 0 is chosen.
 *   Stage numbers ("stage") must increase; they become the layers' "stage" fields.
 *   Loading checks every field and decodes the space's worst corner (smallest
 *   resolution, largest kernels, smallest filters, SE on, each expansion) so a space
 *   whose members could be invalid networks is refused at load time.
 *
 *   Encoding (gpunas/encoding.h): one dimension per choice that has at least two
 *   values, in file order: resolution, then per stage layers, kernel, act, expansion,
 *   filters, se; then the tail's filters.  x[i] is the index into that choice's list.
 *   Choices with one value are constants and take no dimension.  Dimensions of a
 *   stage with 0 layers are inert (decode ignores them); gn_space_canonical() zeroes
 *   them, so encodings of the same network compare equal.  Text form: "3,1,0,2,...".
 *
 *   Decoding writes the JSON layer list in the released format (data, head, the
 *   stages' layers, tail; "distill": false) and parses it with gn_arch_parse(), so
 *   every decoded model is valid by the same rules as a user's file.  The first layer
 *   of a stage changes the channel count (and has the stride); the others repeat it.
 *
 *   Errors: one line, "FILE: stage I: field 'F': reason" or "FILE: field 'F': reason".
 *   A loaded space is never modified, so threads may share one; a gn_space_sobol and
 *   a gn_rng belong to one thread each.
 */
#ifndef GPUNAS_SPACE_H
#define GPUNAS_SPACE_H

#include <stdint.h>

#include "gpunas/arch.h"
#include "gpunas/encoding.h"
#include "gpunas/error.h"
#include "gpunas/rng.h"

typedef struct gn_space gn_space;

/* Read and validate a space file (or text; source names it in messages). */
int gn_space_load(const char *path, gn_space **out, gn_error *err);
int gn_space_parse(const char *text, const char *source, gn_space **out, gn_error *err);
/* A built-in space, "gpunet" or "fmnist" (the text of spaces/<name>.json, embedded). */
int gn_space_builtin(const char *name, gn_space **out, gn_error *err);
/* The embedded JSON text of a built-in space, or NULL for an unknown name. */
const char *gn_space_builtin_text(const char *name);
void gn_space_free(gn_space *s);

const char *gn_space_name(const gn_space *s);
const gn_enc_desc *gn_space_desc(const gn_space *s);
/* Dimension i's name, e.g. "res", "s4.filters", "tail.filters". */
const char *gn_space_dim_name(const gn_space *s, int i);
/* Product of the cardinalities (number of distinct encodings; inert dims included). */
double gn_space_size(const gn_space *s);
int gn_space_in_channels(const gn_space *s);
int gn_space_classes(const gn_space *s);

/* Uniform random member. */
void gn_space_sample_random(const gn_space *s, gn_rng *r, int *x);

/* Scrambled Sobol points mapped to encodings, x[i] = floor(u[i] * card[i]).  seed 0
 * gives the unscrambled sequence (first point all zeros).  Among the first 2^k points
 * each value of a dimension appears 2^k / card times when card divides 2^k, and
 * within 2 of that otherwise.  skip/index let a resumed search continue the stream. */
typedef struct gn_space_sobol gn_space_sobol;
int gn_space_sobol_create(const gn_space *s, uint64_t seed, gn_space_sobol **out, gn_error *err);
void gn_space_sobol_next(gn_space_sobol *q, int *x);
void gn_space_sobol_skip(gn_space_sobol *q, uint64_t n);
uint64_t gn_space_sobol_index(const gn_space_sobol *q); /* points drawn so far (+ skipped) */
void gn_space_sobol_free(gn_space_sobol *q);

/* y = x with each dimension re-drawn (to a different value) with probability rate;
 * if that changed no dimension that matters for the decoded network, one such
 * dimension is changed, so decode(y) != decode(x).  x and y may be the same array. */
void gn_space_mutate(const gn_space *s, gn_rng *r, const int *x, int *y, double rate);

/* 1 if dimension i of x affects decode(x) (0: it belongs to a stage with 0 layers). */
int gn_space_dim_active(const gn_space *s, const int *x, int i);
/* y = x with inert dimensions set to 0.  x and y may be the same array. */
void gn_space_canonical(const gn_space *s, const int *x, int *y);

/* Check x (length and ranges); 0 or a one-line error. */
int gn_space_check(const gn_space *s, const int *x, gn_error *err);

/* The GPUNet JSON layer list of x (malloc'd text), and the parsed, resolved arch. */
char *gn_space_decode_json(const gn_space *s, const int *x, gn_error *err);
int gn_space_decode(const gn_space *s, const int *x, gn_arch **out, gn_error *err);

/* The encoding of an arch that is a member of the space (standard family, stages in
 * the space's order, every layer of a stage alike but for the first one's stride and
 * input channels, choices available); inert dims are 0.  Otherwise a one-line error
 * naming the layer and field that does not fit. */
int gn_space_encode_arch(const gn_space *s, const gn_arch *a, int *x, gn_error *err);

/* Short human description, e.g. "r384 h32S | 1:3xconv k3 32R | 2:1xfused k5 e6 32S+se
 * | ... | t1792" (malloc'd). */
char *gn_space_describe(const gn_space *s, const int *x);

/* "3,1,0,2,..." (malloc'd) and back; parse checks the count and every range. */
char *gn_space_encode_to_string(const gn_space *s, const int *x);
int gn_space_parse_string(const gn_space *s, const char *text, int *x, gn_error *err);

#endif
