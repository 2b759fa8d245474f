/*
 * gpunas/plot.h — the accuracy/latency picture of a search or of the model hub, as PNG.
 *
 * Design
 *   One picture, drawn with cairo's image surface and toy text API (no other plotting
 *   dependency): x is latency in ms, y is accuracy shown in percent.  On it:
 *     - a frame with ticks and numbers on both axes (1/2/5 x 10^k steps, about six
 *       per axis) and a light grid;
 *     - every point as a small disc coloured by its tier (a fixed ten-colour palette,
 *       cycling; tier -1 grey), with a legend on the right: one entry per tier that
 *       has an edge or a point ("tier i  <= E ms"), "no tier" when used, then the
 *       front and hub symbols when present;
 *     - the tier edges as dashed vertical lines labelled with their value;
 *     - the points flagged GN_PLOT_FRONT joined by a step line in latency order (at
 *       latency x the best accuracy reachable is that of the last front point at or
 *       left of x: a horizontal run, then a rise), carried on to the right edge, and
 *       ringed in black;
 *     - points flagged GN_PLOT_HUB as large outlined diamonds with their label (from
 *       opts->labels[i]) on a white backing, placed to the right of the symbol or to
 *       its left near the right edge;
 *     - points flagged GN_PLOT_OTHER (models compared with the hub, e.g. hand-designed
 *       baselines: `gpunas hub plot --compare`) as large outlined grey squares, on top,
 *       labelled like hub models; their tier is ignored (they keep no tier colour).
 *   Ranges: x from the points and the tier edges, y from the points, each padded by
 *   6% of its span (a single value gets +-10% of itself, or +-1 for 0); x never below 0,
 *   y kept inside [0, 100%].  So n = 1 gives a sensible picture too.
 *
 *   The PNG (1000 x 640 px) is written to PATH.tmp with cairo_surface_write_to_png,
 *   fsync'ed and renamed over PATH, so PATH is the old picture or the new one.
 *
 *   Errors (one gn_error line naming PATH): n == 0 ("nothing to plot"), NULL points,
 *   a non-finite latency or accuracy, tier edges not ascending, a cairo failure, a
 *   write or rename failure.  Nothing prints.
 */
#ifndef GPUNAS_PLOT_H
#define GPUNAS_PLOT_H

#include "gpunas/error.h"

typedef struct {
    double latency_ms, accuracy; /* accuracy in [0,1] */
    int tier;                    /* -1: none */
    int flags;
} gn_plot_point;

#define GN_PLOT_FRONT 1 /* on the accuracy/latency Pareto front */
#define GN_PLOT_HUB 2   /* a hub model (drawn as a large marked symbol, with its label) */
#define GN_PLOT_OTHER 4 /* a model compared with the hub (a large grey square, with its label) */

typedef struct {
    const char *title;              /* NULL: none */
    const char *x_label;            /* NULL: "latency (ms)" */
    const char *y_label;            /* NULL: "accuracy (%)" */
    const double *tier_edges;       /* n_tiers ascending upper edges in ms, or NULL */
    int n_tiers;
    const char *const *labels;      /* per point, NULL or label (hub models); the array may be NULL */
} gn_plot_opts;

/* o may be NULL (defaults above). */
int gn_plot_pareto_png(const char *path, const gn_plot_point *pts, int n, const gn_plot_opts *o, gn_error *err);

#endif
