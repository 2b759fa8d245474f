/* strmap.c — see strmap.h. */
#include "util/strmap.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct gn__strmap {
    size_t vsize, cap, n; /* cap: a power of two (or 0) */
    char **keys;          /* cap slots, NULL = empty */
    unsigned char *vals;  /* cap * vsize */
};

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

gn__strmap *gn__strmap_new(size_t value_size)
{
    if (value_size == 0)
        return NULL;
    gn__strmap *m = calloc(1, sizeof *m);
    if (m)
        m->vsize = value_size;
    return m;
}

void gn__strmap_free(gn__strmap *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->cap; i++)
        free(m->keys[i]);
    free(m->keys);
    free(m->vals);
    free(m);
}

size_t gn__strmap_count(const gn__strmap *m) { return m ? m->n : 0; }
size_t gn__strmap_capacity(const gn__strmap *m) { return m ? m->cap : 0; }

/* slot of key, or of the empty slot where it would go */
static size_t find(const gn__strmap *m, const char *key)
{
    assert(m->cap > m->n && (m->cap & (m->cap - 1)) == 0); /* a free slot ends every probe */
    size_t i = (size_t)hash(key) & (m->cap - 1);
    while (m->keys[i] && strcmp(m->keys[i], key) != 0)
        i = (i + 1) & (m->cap - 1);
    return i;
}

void *gn__strmap_get(const gn__strmap *m, const char *key)
{
    if (!m || !key || m->n == 0)
        return NULL;
    size_t i = find(m, key);
    return m->keys[i] ? m->vals + i * m->vsize : NULL;
}

static int grow(gn__strmap *m)
{
    size_t cap = m->cap ? 2 * m->cap : 16;
    char **keys = calloc(cap, sizeof *keys);
    unsigned char *vals = malloc(cap * m->vsize);
    if (!keys || !vals) {
        free(keys);
        free(vals);
        return -1;
    }
    gn__strmap old = *m;
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    for (size_t i = 0; i < old.cap; i++)
        if (old.keys[i]) {
            size_t j = find(m, old.keys[i]);
            m->keys[j] = old.keys[i];
            memcpy(m->vals + j * m->vsize, old.vals + i * m->vsize, m->vsize);
        }
    free(old.keys);
    free(old.vals);
    return 0;
}

void *gn__strmap_put(gn__strmap *m, const char *key, const void *value)
{
    if (!m || !key)
        return NULL;
    if (4 * (m->n + 1) > 3 * m->cap && grow(m))
        return NULL;
    size_t i = find(m, key);
    if (!m->keys[i]) {
        char *k = strdup(key);
        if (!k)
            return NULL;
        m->keys[i] = k;
        m->n++;
    }
    unsigned char *v = m->vals + i * m->vsize;
    memcpy(v, value, m->vsize);
    return v;
}

const char *gn__strmap_slot(const gn__strmap *m, size_t i, void **value)
{
    if (!m || i >= m->cap || !m->keys[i])
        return NULL;
    if (value)
        *value = m->vals + i * m->vsize;
    return m->keys[i];
}
