/*
 * loader.c — gn_loader: float batches from a dataset view, prepared ahead on a thread.
 *
 * Design
 *   Content.  Batch k of epoch e holds epoch positions [k*B, min(n, (k+1)*B)); position
 *   i is image order[i] of the view, where order is the identity or (shuffle) a
 *   Fisher-Yates permutation drawn from gn__perm_key(seed, e).  Each image is
 *   transformed with its own RNG keyed by (seed, e, i) (augment.c).  So a batch is a
 *   pure function of (view, augment, seed, epoch, k): the thread only decides *when* it
 *   is computed, never *what* it holds — prefetch 0 and prefetch 4 give the same bytes,
 *   and a run resumed at epoch e sees the batches an uninterrupted run would.
 *
 *   Buffers.  S = prefetch + 1 slots of B images each; batch k of the epoch lives in slot
 *   (base + k) % S.  The consumer holds the slot it was last given until its next
 *   gn_loader_next (or gn_loader_free); the producer may write batch k only while
 *   k < limit, where limit counts the slots it may use: S at the start of an epoch (S-1
 *   if the consumer still holds a batch from before, whose slot is then placed just
 *   before base so it is reused last), plus one per batch the consumer releases.  So a
 *   returned batch stays valid until the next gn_loader_next even across
 *   gn_loader_start_epoch, and the producer runs at most `prefetch` batches ahead.
 *
 *   Thread protocol (prefetch > 0; one producer thread, one mutex, three condition
 *   variables).  The producer takes batch next_produce under the mutex, marks itself
 *   busy, fills the slot without the mutex, then publishes ready[slot] = k.  The epoch
 *   state it reads while busy (order, epoch, base) is only changed by
 *   gn_loader_start_epoch after it has set `cancel` and waited for busy == 0, so the
 *   producer never sees a half-changed epoch.  While `cancel` is set the producer takes
 *   no new batch (else it could starve the waiting restart, taking batch after batch and
 *   dropping each at once); `cancel` (atomic) is also polled per image so a restart or
 *   gn_loader_free does not wait for a whole batch.  A cancelled batch is discarded,
 *   never published.  gn_loader_free sets stop + cancel, wakes the thread and joins it
 *   before freeing anything.
 *   prefetch == 0: no thread; gn_loader_next computes the batch in the caller's thread.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"
#include "gpunas/rng.h"

#define MAX_PREFETCH 64

struct gn_loader {
    const gn_dataset *d;
    int32_t *index; /* copy of the view's indices */
    int n, batch, nbatches, prefetch, S;
    bool shuffle, drop_last;
    uint64_t seed;
    gn__transform tf;
    size_t img_bytes, img_floats;
    float **x;        /* S slots of batch * img_floats */
    int32_t **labels; /* S slots of batch */
    int *slot_n;      /* images in each slot's batch */
    int *ready;       /* batch index published in each slot, -1 if none */
    float *scratch;   /* r*r floats, used by the one producer (thread or caller) */
    int32_t *order;   /* epoch position -> dataset index */

    /* epoch state; with a thread, guarded by mu */
    int started, epoch, base, next_consume, next_produce, limit;
    int held, held_slot;

    int threaded;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_ready, cv_idle;
    int busy, stop;
    atomic_int cancel;
};

/* Fills slot `slot` with batch k of the current epoch; 0 when abandoned (cancel). */
static int produce(gn_loader *l, int k, int slot)
{
    int64_t first = (int64_t)k * l->batch;
    int count = l->n - (int)first < l->batch ? l->n - (int)first : l->batch;
    float *x = l->x[slot];
    int32_t *lab = l->labels[slot];
    for (int i = 0; i < count; i++) {
        if (l->threaded && atomic_load_explicit(&l->cancel, memory_order_relaxed))
            return 0;
        int64_t pos = first + i;
        int32_t idx = l->order[pos];
        gn__transform_image(&l->tf, l->d->pixels + (size_t)idx * l->img_bytes, gn__image_key(l->seed, l->epoch, pos),
                            l->scratch, x + (size_t)i * l->img_floats);
        lab[i] = l->d->labels[idx];
    }
    l->slot_n[slot] = count;
    return 1;
}

static void *producer_main(void *arg)
{
    gn_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        /* no new work while a restart is pending (cancel): it waits for busy == 0 */
        while (!l->stop && (atomic_load(&l->cancel) ||
                            !(l->started && l->next_produce < l->nbatches && l->next_produce < l->limit)))
            pthread_cond_wait(&l->cv_work, &l->mu);
        if (l->stop)
            break;
        int k = l->next_produce, slot = (l->base + k) % l->S;
        l->busy = 1;
        pthread_mutex_unlock(&l->mu);
        int ok = produce(l, k, slot);
        pthread_mutex_lock(&l->mu);
        l->busy = 0;
        if (ok && !atomic_load(&l->cancel)) {
            l->ready[slot] = k;
            l->next_produce++;
            pthread_cond_broadcast(&l->cv_ready);
        }
        pthread_cond_broadcast(&l->cv_idle);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

int gn_loader_create(const gn_dataset_view *v, int batch, const gn_augment *aug, bool shuffle, bool drop_last,
                     uint64_t seed, int prefetch, gn_loader **out, gn_error *err)
{
    if (!out)
        return gn_error_set(err, "loader: NULL output");
    *out = NULL;
    if (!v || !v->data || !v->index || v->n < 1 || !aug)
        return gn_error_set(err, "loader: empty view or NULL augment");
    const gn_dataset *d = v->data;
    if (batch < 1)
        return gn_error_set(err, "%s: loader: batch size %d < 1", d->source, batch);
    if (prefetch < 0 || prefetch > MAX_PREFETCH)
        return gn_error_set(err, "%s: loader: prefetch %d not in [0, %d]", d->source, prefetch, MAX_PREFETCH);
    if (drop_last && v->n < batch)
        return gn_error_set(err, "%s: loader: %d images make no full batch of %d (drop_last)", d->source, v->n,
                            batch);
    for (int i = 0; i < v->n; i++)
        if (v->index[i] < 0 || v->index[i] >= d->n)
            return gn_error_set(err, "%s: loader: view entry %d: index %d outside the %d images", d->source, i,
                                (int)v->index[i], d->n);
    gn_loader *l = calloc(1, sizeof *l);
    if (!l)
        return gn_error_set(err, "%s: loader: out of memory", d->source);
    if (gn__transform_init(&l->tf, aug, d->c, d->h, d->w, err)) {
        free(l);
        return -1;
    }
    l->d = d;
    l->n = v->n;
    l->batch = batch;
    l->nbatches = drop_last ? v->n / batch : (v->n + batch - 1) / batch;
    l->prefetch = prefetch;
    l->S = prefetch + 1;
    l->shuffle = shuffle;
    l->drop_last = drop_last;
    l->seed = seed;
    l->img_bytes = (size_t)d->c * d->h * d->w;
    l->img_floats = (size_t)d->c * aug->resolution * aug->resolution;
    l->index = malloc((size_t)v->n * sizeof *l->index);
    l->order = malloc((size_t)v->n * sizeof *l->order);
    l->scratch = malloc((size_t)aug->resolution * aug->resolution * sizeof *l->scratch);
    l->x = calloc((size_t)l->S, sizeof *l->x);
    l->labels = calloc((size_t)l->S, sizeof *l->labels);
    l->slot_n = calloc((size_t)l->S, sizeof *l->slot_n);
    l->ready = malloc((size_t)l->S * sizeof *l->ready);
    int ok = l->index && l->order && l->scratch && l->x && l->labels && l->slot_n && l->ready;
    for (int s = 0; ok && s < l->S; s++) {
        l->x[s] = malloc((size_t)batch * l->img_floats * sizeof(float));
        l->labels[s] = malloc((size_t)batch * sizeof(int32_t));
        ok = l->x[s] && l->labels[s];
    }
    if (!ok) {
        gn_loader_free(l);
        return gn_error_set(err, "%s: loader: out of memory for %d batches of %d images at %d", d->source, l->S,
                            batch, aug->resolution);
    }
    memcpy(l->index, v->index, (size_t)v->n * sizeof *l->index);
    for (int s = 0; s < l->S; s++)
        l->ready[s] = -1;
    atomic_init(&l->cancel, 0);
    if (prefetch > 0) {
        if (pthread_mutex_init(&l->mu, NULL) || pthread_cond_init(&l->cv_work, NULL) ||
            pthread_cond_init(&l->cv_ready, NULL) || pthread_cond_init(&l->cv_idle, NULL)) {
            gn_loader_free(l); /* threaded == 0: no destroy of the (possibly partial) sync objects */
            return gn_error_set(err, "%s: loader: cannot create synchronisation objects", d->source);
        }
        if (pthread_create(&l->thread, NULL, producer_main, l) != 0) {
            pthread_mutex_destroy(&l->mu);
            pthread_cond_destroy(&l->cv_work);
            pthread_cond_destroy(&l->cv_ready);
            pthread_cond_destroy(&l->cv_idle);
            gn_loader_free(l);
            return gn_error_set(err, "%s: loader: cannot start the prefetch thread", d->source);
        }
        l->threaded = 1;
    }
    *out = l;
    return 0;
}

static void make_order(gn_loader *l, int epoch)
{
    memcpy(l->order, l->index, (size_t)l->n * sizeof *l->order);
    if (!l->shuffle)
        return;
    gn_rng r;
    gn_rng_seed(&r, gn__perm_key(l->seed, epoch));
    for (int i = l->n - 1; i > 0; i--) {
        int j = (int)gn_rng_below(&r, (uint64_t)i + 1);
        int32_t t = l->order[i];
        l->order[i] = l->order[j];
        l->order[j] = t;
    }
}

int gn_loader_start_epoch(gn_loader *l, int epoch, gn_error *err)
{
    if (!l)
        return gn_error_set(err, "loader: NULL loader");
    if (epoch < 0)
        return gn_error_set(err, "%s: loader: epoch %d < 0", l->d->source, epoch);
    if (l->threaded) {
        pthread_mutex_lock(&l->mu);
        atomic_store(&l->cancel, 1);
        while (l->busy)
            pthread_cond_wait(&l->cv_idle, &l->mu);
    }
    l->epoch = epoch;
    make_order(l, epoch);
    if (l->held && l->S > 1) {
        l->base = (l->held_slot + 1) % l->S;
        l->limit = l->S - 1;
    } else {
        l->base = 0;
        l->limit = l->S;
    }
    for (int s = 0; s < l->S; s++)
        l->ready[s] = -1;
    l->next_produce = 0;
    l->next_consume = 0;
    l->started = 1;
    if (l->threaded) {
        atomic_store(&l->cancel, 0);
        pthread_cond_broadcast(&l->cv_work);
        pthread_mutex_unlock(&l->mu);
    }
    return 0;
}

int gn_loader_next(gn_loader *l, gn_batch *b, gn_error *err)
{
    if (!l || !b)
        return gn_error_set(err, "loader: NULL loader or batch");
    if (l->threaded)
        pthread_mutex_lock(&l->mu);
    int rc;
    if (!l->started) {
        rc = gn_error_set(err, "%s: loader: no epoch started (call gn_loader_start_epoch first)", l->d->source);
        goto out;
    }
    if (l->held) {
        l->held = 0;
        l->limit++;
        if (l->threaded)
            pthread_cond_broadcast(&l->cv_work);
    }
    if (l->next_consume >= l->nbatches) {
        rc = 0;
        goto out;
    }
    int k = l->next_consume, slot = (l->base + k) % l->S;
    if (l->threaded) {
        while (l->ready[slot] != k)
            pthread_cond_wait(&l->cv_ready, &l->mu);
    } else {
        produce(l, k, slot);
    }
    b->n = l->slot_n[slot];
    b->c = l->d->c;
    b->h = b->w = l->tf.r;
    b->x = l->x[slot];
    b->labels = l->labels[slot];
    b->first = (int64_t)k * l->batch;
    l->held = 1;
    l->held_slot = slot;
    l->next_consume++;
    rc = 1;
out:
    if (l->threaded)
        pthread_mutex_unlock(&l->mu);
    return rc;
}

int gn_loader_batches_per_epoch(const gn_loader *l) { return l ? l->nbatches : 0; }

void gn_loader_free(gn_loader *l)
{
    if (!l)
        return;
    if (l->threaded) {
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        atomic_store(&l->cancel, 1);
        pthread_cond_broadcast(&l->cv_work);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv_work);
        pthread_cond_destroy(&l->cv_ready);
        pthread_cond_destroy(&l->cv_idle);
    }
    for (int s = 0; s < l->S; s++) {
        if (l->x)
            free(l->x[s]);
        if (l->labels)
            free(l->labels[s]);
    }
    free(l->x);
    free(l->labels);
    free(l->slot_n);
    free(l->ready);
    free(l->scratch);
    free(l->order);
    free(l->index);
    gn__transform_free(&l->tf);
    free(l);
}
