/*
 * strmap.h — the one string-keyed hash table gpunas's files use (as Redis's dict is
 * for Redis): keys are copied, values are fixed-size blobs stored inline.
 *
 * Open addressing with linear probing over a power-of-two table, FNV-1a hashes,
 * grown (doubled) at 3/4 load; no deletion (the users only add: caches of measured
 * latencies, trained accuracies, names).  Pointers returned by get/put stay valid
 * until the next put.  Internal (src/ only); not thread-safe.
 */
#ifndef GPUNAS_UTIL_STRMAP_H
#define GPUNAS_UTIL_STRMAP_H

#include <stddef.h>

typedef struct gn__strmap gn__strmap;

/* A map whose values are value_size bytes (> 0); NULL when out of memory. */
gn__strmap *gn__strmap_new(size_t value_size);
void gn__strmap_free(gn__strmap *m); /* NULL is fine */
size_t gn__strmap_count(const gn__strmap *m);
/* The value stored for key, or NULL. */
void *gn__strmap_get(const gn__strmap *m, const char *key);
/* Store value (value_size bytes copied) for key, replacing an old one; returns the
 * stored value, or NULL when out of memory (the map is unchanged then). */
void *gn__strmap_put(gn__strmap *m, const char *key, const void *value);
/* The i-th occupied slot (0 <= i < capacity) for iteration: key or NULL. */
size_t gn__strmap_capacity(const gn__strmap *m);
const char *gn__strmap_slot(const gn__strmap *m, size_t i, void **value);

#endif
