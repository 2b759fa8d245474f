/* nas_internal.h — shared by the search-loop files (src/nas only). */
#ifndef GPUNAS_NAS_INTERNAL_H
#define GPUNAS_NAS_INTERNAL_H

#include "gpunas/latprofile.h"
#include "gpunas/nas.h"
#include "gpunas/search.h"

#define NAS_TIERING "tiering" /* optimizer name of phase-1 rows */
#define NAS_EST_F 4           /* latency-estimate features: 1, log MACs, log params, depth */

typedef struct {
    const gn_nas_config *c;
    const gn_nas_callbacks *cb;
    int d;                      /* encoding length */
    gn_backend *be;             /* latency measurements */
    char host[64];
    /* latency of every network seen, by canonical encoding text (nas_eval.c) */
    struct gn__strmap *lat_cache;
    /* phase-1 data for the latency estimate */
    double *p1_x, *p1_y;        /* p1_n rows of NAS_EST_F features; log latency */
    int p1_n, p1_cap;
    double coef[NAS_EST_F];
    int have_model;
    gn_lat_profile profile;
    int have_profile;
    /* tiers and their optimizers */
    int n_tiers;
    double edges[GN_NAS_MAX_TIERS];
    gn_optimizer *opt[GN_NAS_MAX_TIERS];
    int trained[GN_NAS_MAX_TIERS], misses[GN_NAS_MAX_TIERS], repeats[GN_NAS_MAX_TIERS];
    int exhausted[GN_NAS_MAX_TIERS];
    int accept_tier;            /* tier the accept() filter is asked about */
    int64_t next_seq;
    double t0;
    int unstable;               /* latency measurements that had to be repeated */
    /* latency conditions (nas_lat.c) */
    int lat_threads;            /* resolved thread count of the measurements */
    gn_arch *ref_arch;          /* the reference network (NULL: not paired) */
    gn_net *ref_net;
    double ref_base_ms;         /* the reference's median when the search began */
    double ref_moved_lo, ref_moved_hi; /* range of reference / baseline - 1 this run */
    int ref_n;                  /* paired measurements this run */
    char lat_note[512];         /* how the threads were chosen (empty: not now) */
    /* networks already trained (canonical key -> accuracy, trial id): a proposal that
     * decodes to one of them reuses its result instead of training it again */
    struct gn__strmap *acc_cache;
} nas_state;

/* nas_eval.c */
/* Latency of x (canonical text key): cached, predicted from the profile, or measured.
 * info (may be NULL): a measurement's conditions as JSON text (malloc'd), NULL when
 * the value came from the cache or the profile. */
int gn__nas_latency(nas_state *s, const int *x, double *ms, double *spread, char **info, gn_error *err);
void gn__nas_cache_put(nas_state *s, const char *key, double ms, double spread);
int gn__nas_cache_get(const nas_state *s, const char *key, double *ms, double *spread);
/* Canonical encoding text of x (malloc'd). */
char *gn__nas_key(const nas_state *s, const int *x);
/* Proxy-train the decoded x; *acc = validation top-1 in [0,1]. */
int gn__nas_proxy_train(nas_state *s, const gn_arch *a, double *acc, double *train_s, gn_error *err);
/* Latency estimate for accept(): features of a decoded arch, fit, apply. */
void gn__nas_features(const gn_arch *a, double *f);
int gn__nas_fit_estimate(nas_state *s, gn_error *err);
int gn__nas_estimate(nas_state *s, const int *x, double *ms);
int gn__nas_p1_add(nas_state *s, const int *x, double ms);

/* nas_lat.c */
/* Resolve the measuring threads (stored choice on resume, else GN_THREADS_BEST
 * measured now) and the reference baseline; records both in the store's meta. */
int gn__nas_lat_setup(nas_state *s, gn_store *st, gn_error *err);
void gn__nas_lat_free(nas_state *s);
/* One candidate measurement under those conditions (repeated when unstable or when
 * the reference moved); *info: the conditions as JSON (malloc'd). */
int gn__nas_lat_measure(nas_state *s, gn_net *net, double *ms, double *spread, char **info, gn_error *err);

/* nas_settings.c */
/* The settings record (JSON object text, malloc'd). */
char *gn__nas_settings_json(const gn_nas_config *c, gn_error *err);
/* Store it (new search) or compare with the stored one (resume). */
int gn__nas_settings_check(gn_store *st, const gn_nas_config *c, bool resume, gn_error *err);

#endif
