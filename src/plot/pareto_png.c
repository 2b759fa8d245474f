/*
 * pareto_png.c — gn_plot_pareto_png: the accuracy/latency picture (design in
 * gpunas/plot.h).
 *
 * Layout (pixels): a 1000 x 640 white canvas; the plot area spans x [84, 770],
 * y [52, 572]; the legend sits to the right of it, the title above, the axis labels
 * below and to the left.  Drawing order: grid, tier edges, ordinary points, front
 * line and rings, hub symbols, hub labels, frame, ticks, texts, legend — so the
 * lines never hide the numbers and hub labels stay readable over the points.  The
 * data layers are clipped to the plot area.
 *
 * Font caches: cairo's toy text API goes through fontconfig, and both keep
 * process-wide caches whose blocks LeakSanitizer reports at exit (they are reachable
 * only through memory it does not scan, e.g. fontconfig's mmapped cache files), which
 * would fail every sanitizer run of a command that plots.  So after each picture the
 * caches are released: cairo_debug_reset_static_data() (legal once every cairo
 * object is destroyed) and fontconfig's FcFini(), found with dlsym because gpunas
 * links cairo only (fontconfig is cairo's own dependency, always loaded with it).
 * The next picture re-reads the font configuration (a few ms).  The price: no other
 * thread may use cairo or fontconfig while a picture is drawn; nothing else in gpunas
 * does.
 */
#include "gpunas/plot.h"

#include <cairo.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/fs_atomic.h"

#define W 1000
#define H 640
#define X0 84.0
#define X1 770.0
#define Y0 52.0
#define Y1 572.0
#define FONT "DejaVu Sans"

static const double PALETTE[][3] = {
    {0.122, 0.467, 0.706}, /* blue */
    {1.000, 0.498, 0.055}, /* orange */
    {0.173, 0.627, 0.173}, /* green */
    {0.839, 0.153, 0.157}, /* red */
    {0.580, 0.404, 0.741}, /* purple */
    {0.549, 0.337, 0.294}, /* brown */
    {0.890, 0.467, 0.761}, /* pink */
    {0.737, 0.741, 0.133}, /* olive */
    {0.090, 0.745, 0.812}, /* cyan */
};
#define NPAL ((int)(sizeof PALETTE / sizeof PALETTE[0]))
static const double GREY[3] = {0.55, 0.55, 0.55};

/* cairo_surface_write_to_png_stream's sink: the PNG bytes in memory */
typedef struct {
    unsigned char *data;
    size_t len, cap;
    int failed;
} png_buf;

static cairo_status_t png_append(void *closure, const unsigned char *data, unsigned int length)
{
    png_buf *b = closure;
    if (b->len + length > b->cap) {
        size_t cap = b->cap ? b->cap : 65536;
        while (cap < b->len + length)
            cap *= 2;
        unsigned char *nd = realloc(b->data, cap);
        if (!nd) {
            b->failed = 1;
            return CAIRO_STATUS_WRITE_ERROR;
        }
        b->data = nd;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, length);
    b->len += length;
    return CAIRO_STATUS_SUCCESS;
}

static void release_font_caches(void)
{
    cairo_debug_reset_static_data();
    void *sym = dlsym(RTLD_DEFAULT, "FcFini");
    void (*fc_fini)(void);
    memcpy(&fc_fini, &sym, sizeof fc_fini); /* object to function pointer, without the warning */
    if (fc_fini)
        fc_fini();
}

static const double *tier_colour(int tier) { return tier < 0 ? GREY : PALETTE[tier % NPAL]; }

typedef struct {
    double xlo, xhi, ylo, yhi; /* y in percent */
} ranges;

static double px(const ranges *r, double x) { return X0 + (x - r->xlo) / (r->xhi - r->xlo) * (X1 - X0); }
static double py(const ranges *r, double y) { return Y1 - (y - r->ylo) / (r->yhi - r->ylo) * (Y1 - Y0); }

/* Padded range of [lo, hi]; a single value gets +-10% of itself (+-1 for 0). */
static void pad_range(double lo, double hi, double *out_lo, double *out_hi)
{
    double span = hi - lo;
    if (!(span > 1e-12 * (fabs(lo) + fabs(hi)))) {
        double d = lo != 0 ? 0.1 * fabs(lo) : 1.0;
        *out_lo = lo - d;
        *out_hi = hi + d;
        return;
    }
    *out_lo = lo - 0.06 * span;
    *out_hi = hi + 0.06 * span;
}

static double nice_step(double span, int target)
{
    double raw = span / target, mag = pow(10, floor(log10(raw))), norm = raw / mag;
    double m = norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10;
    return m * mag;
}

static int step_decimals(double step)
{
    if (step >= 1)
        return 0;
    int d = (int)ceil(-log10(step) - 1e-9);
    return d > 8 ? 8 : d;
}

static void set_rgb(cairo_t *cr, const double *c, double a) { cairo_set_source_rgba(cr, c[0], c[1], c[2], a); }

static void font(cairo_t *cr, double size, int bold)
{
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

/* Text with its anchor: ax 0 left / 0.5 centre / 1 right of x; baseline at y. */
static void text_at(cairo_t *cr, double x, double y, double ax, const char *s)
{
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    cairo_move_to(cr, x - ax * e.x_advance, y);
    cairo_show_text(cr, s);
    cairo_new_path(cr); /* show_text leaves a current point: the next arc would join it */
}

static double text_width(cairo_t *cr, const char *s)
{
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    return e.x_advance;
}

static void square(cairo_t *cr, double x, double y, double r) { cairo_rectangle(cr, x - r, y - r, 2 * r, 2 * r); }

static void diamond(cairo_t *cr, double x, double y, double r)
{
    cairo_move_to(cr, x, y - r);
    cairo_line_to(cr, x + r, y);
    cairo_line_to(cr, x, y + r);
    cairo_line_to(cr, x - r, y);
    cairo_close_path(cr);
}

typedef struct {
    double x, y, w, h;
} box;

static int overlaps(const box *a, const box *b)
{
    return a->x < b->x + b->w && b->x < a->x + a->w && a->y < b->y + b->h && b->y < a->y + a->h;
}

typedef struct {
    int i;
    double x;
    double y;
} fpt;

static int cmp_fpt(const void *a, const void *b)
{
    const fpt *p = a, *q = b;
    if (p->x != q->x)
        return p->x < q->x ? -1 : 1;
    return p->y < q->y ? -1 : p->y > q->y;
}

static void draw_axes(cairo_t *cr, const ranges *r, const char *xl, const char *yl)
{
    char buf[64];
    /* grid + ticks + numbers */
    double xs = nice_step(r->xhi - r->xlo, 7), ys = nice_step(r->yhi - r->ylo, 6);
    int xd = step_decimals(xs), yd = step_decimals(ys);
    font(cr, 12, 0);
    for (double v = ceil(r->xlo / xs - 1e-9) * xs; v <= r->xhi + 1e-9 * xs; v += xs) {
        double x = px(r, v);
        if (x < X0 - 0.5 || x > X1 + 0.5)
            continue;
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        cairo_set_line_width(cr, 1);
        cairo_move_to(cr, floor(x) + 0.5, Y1);
        cairo_line_to(cr, floor(x) + 0.5, Y1 + 6);
        cairo_stroke(cr);
        snprintf(buf, sizeof buf, "%.*f", xd, fabs(v) < 1e-12 * xs ? 0.0 : v);
        text_at(cr, x, Y1 + 21, 0.5, buf);
    }
    for (double v = ceil(r->ylo / ys - 1e-9) * ys; v <= r->yhi + 1e-9 * ys; v += ys) {
        double y = py(r, v);
        if (y < Y0 - 0.5 || y > Y1 + 0.5)
            continue;
        cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
        cairo_set_line_width(cr, 1);
        cairo_move_to(cr, X0 - 6, floor(y) + 0.5);
        cairo_line_to(cr, X0, floor(y) + 0.5);
        cairo_stroke(cr);
        snprintf(buf, sizeof buf, "%.*f", yd, fabs(v) < 1e-12 * ys ? 0.0 : v);
        text_at(cr, X0 - 10, y + 4, 1, buf);
    }
    /* frame */
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cairo_set_line_width(cr, 1.2);
    cairo_rectangle(cr, X0, Y0, X1 - X0, Y1 - Y0);
    cairo_stroke(cr);
    /* axis labels */
    font(cr, 14, 0);
    cairo_set_source_rgb(cr, 0, 0, 0);
    text_at(cr, (X0 + X1) / 2, Y1 + 48, 0.5, xl);
    cairo_save(cr);
    cairo_translate(cr, 24, (Y0 + Y1) / 2);
    cairo_rotate(cr, -M_PI / 2);
    text_at(cr, 0, 0, 0.5, yl);
    cairo_restore(cr);
}

static void draw_grid(cairo_t *cr, const ranges *r)
{
    double xs = nice_step(r->xhi - r->xlo, 7), ys = nice_step(r->yhi - r->ylo, 6);
    cairo_set_source_rgb(cr, 0.91, 0.91, 0.91);
    cairo_set_line_width(cr, 1);
    for (double v = ceil(r->xlo / xs - 1e-9) * xs; v <= r->xhi + 1e-9 * xs; v += xs) {
        double x = floor(px(r, v)) + 0.5;
        cairo_move_to(cr, x, Y0);
        cairo_line_to(cr, x, Y1);
    }
    for (double v = ceil(r->ylo / ys - 1e-9) * ys; v <= r->yhi + 1e-9 * ys; v += ys) {
        double y = floor(py(r, v)) + 0.5;
        cairo_move_to(cr, X0, y);
        cairo_line_to(cr, X1, y);
    }
    cairo_stroke(cr);
}

static void legend(cairo_t *cr, const gn_plot_point *pts, int n, const double *edges, int n_tiers)
{
    int max_tier = n_tiers - 1, none = 0, front = 0, hub = 0, other = 0;
    for (int i = 0; i < n; i++) {
        other |= (pts[i].flags & GN_PLOT_OTHER) != 0;
        if (pts[i].flags & GN_PLOT_OTHER)
            continue; /* no tier colour */
        if (pts[i].tier > max_tier)
            max_tier = pts[i].tier;
        none |= pts[i].tier < 0;
        front |= (pts[i].flags & GN_PLOT_FRONT) != 0;
        hub |= (pts[i].flags & GN_PLOT_HUB) != 0;
    }
    if (max_tier > 63)
        max_tier = 63; /* a legend taller than the picture helps nobody */
    const double lx = X1 + 22, row = 22;
    double y = Y0 + 8;
    char buf[96];
    font(cr, 13, 1);
    cairo_set_source_rgb(cr, 0, 0, 0);
    text_at(cr, lx, y + 4, 0, "latency tier");
    y += row;
    font(cr, 12, 0);
    for (int t = -1; t <= max_tier; t++) {
        if (t < 0 && !none)
            continue;
        int count = 0;
        for (int i = 0; i < n; i++)
            count += pts[i].tier == t && !(pts[i].flags & GN_PLOT_OTHER);
        if (t < 0)
            snprintf(buf, sizeof buf, "no tier (%d)", count);
        else if (t < n_tiers && t == 0)
            snprintf(buf, sizeof buf, "%d: \xe2\x89\xa4 %g ms (%d)", t, edges[t], count);
        else if (t < n_tiers)
            snprintf(buf, sizeof buf, "%d: %g\xe2\x80\x93%g ms (%d)", t, edges[t - 1], edges[t], count);
        else
            snprintf(buf, sizeof buf, "tier %d (%d)", t, count);
        set_rgb(cr, tier_colour(t), 0.85);
        cairo_arc(cr, lx + 6, y, 5, 0, 2 * M_PI);
        cairo_fill_preserve(cr);
        cairo_set_source_rgba(cr, 0, 0, 0, 0.5);
        cairo_set_line_width(cr, 0.8);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        text_at(cr, lx + 18, y + 4, 0, buf);
        y += row;
        if (y > H - 20)
            return;
    }
    if (front) {
        y += 6;
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_set_line_width(cr, 1.8);
        cairo_move_to(cr, lx - 6, y + 5);
        cairo_line_to(cr, lx + 1, y + 5);
        cairo_line_to(cr, lx + 1, y - 5);
        cairo_line_to(cr, lx + 14, y - 5);
        cairo_stroke(cr);
        cairo_arc(cr, lx + 1, y - 5, 4.5, 0, 2 * M_PI);
        cairo_set_line_width(cr, 1.4);
        cairo_stroke(cr);
        text_at(cr, lx + 22, y + 4, 0, "Pareto front");
        y += row;
    }
    if (hub) {
        cairo_set_source_rgb(cr, 1, 1, 1);
        diamond(cr, lx + 6, y, 8);
        cairo_fill_preserve(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_set_line_width(cr, 2);
        cairo_stroke(cr);
        text_at(cr, lx + 22, y + 4, 0, "hub model");
        y += row;
    }
    if (other) {
        cairo_set_source_rgb(cr, 0.82, 0.82, 0.82);
        square(cr, lx + 6, y, 6.5);
        cairo_fill_preserve(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_set_line_width(cr, 2);
        cairo_stroke(cr);
        text_at(cr, lx + 22, y + 4, 0, "compared model");
    }
}

int gn_plot_pareto_png(const char *path, const gn_plot_point *pts, int n, const gn_plot_opts *o, gn_error *err)
{
    if (!path || !*path)
        return gn_error_set(err, "plot: empty output path");
    if (n < 0 || (n > 0 && !pts))
        return gn_error_set(err, "%s: plot: %s", path, n < 0 ? "negative point count" : "NULL points");
    if (n == 0)
        return gn_error_set(err, "%s: nothing to plot (no points)", path);
    gn_plot_opts def = {0};
    if (!o)
        o = &def;
    int n_tiers = o->tier_edges ? o->n_tiers : 0;
    if (n_tiers < 0)
        n_tiers = 0;
    for (int i = 0; i < n_tiers; i++)
        if (!isfinite(o->tier_edges[i]) || (i > 0 && !(o->tier_edges[i] > o->tier_edges[i - 1])))
            return gn_error_set(err, "%s: plot: tier edges not finite and ascending (edge %d: %g)", path, i,
                                o->tier_edges[i]);
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (!isfinite(pts[i].latency_ms) || !isfinite(pts[i].accuracy))
            return gn_error_set(err, "%s: plot: point %d: latency %g ms, accuracy %g (must be finite)", path, i,
                                pts[i].latency_ms, pts[i].accuracy);
        xmin = fmin(xmin, pts[i].latency_ms), xmax = fmax(xmax, pts[i].latency_ms);
        ymin = fmin(ymin, 100 * pts[i].accuracy), ymax = fmax(ymax, 100 * pts[i].accuracy);
    }
    double dxmin = xmin, dymin = ymin, dymax = ymax;
    for (int i = 0; i < n_tiers; i++)
        xmin = fmin(xmin, o->tier_edges[i]), xmax = fmax(xmax, o->tier_edges[i]);
    ranges r;
    pad_range(xmin, xmax, &r.xlo, &r.xhi);
    pad_range(ymin, ymax, &r.ylo, &r.yhi);
    if (r.xlo < 0 && xmin >= 0 && dxmin >= 0)
        r.xlo = 0;
    if (r.ylo < 0 && dymin >= 0)
        r.ylo = 0;
    if (r.yhi > 100 && dymax <= 100)
        r.yhi = 100;
    if (!(r.xhi > r.xlo))
        r.xhi = r.xlo + 1;
    if (!(r.yhi > r.ylo))
        r.yhi = r.ylo + 1;

    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, W, H);
    cairo_t *cr = cairo_create(s);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    draw_grid(cr, &r);

    /* data layers, clipped to the plot area */
    cairo_save(cr);
    cairo_rectangle(cr, X0, Y0, X1 - X0, Y1 - Y0);
    cairo_clip(cr);
    /* tier edges */
    const double dash[2] = {6, 4};
    font(cr, 11, 0);
    char buf[128];
    for (int i = 0; i < n_tiers; i++) {
        double x = floor(px(&r, o->tier_edges[i])) + 0.5;
        cairo_set_source_rgb(cr, 0.35, 0.35, 0.35);
        cairo_set_line_width(cr, 1.2);
        cairo_set_dash(cr, dash, 2, 0);
        cairo_move_to(cr, x, Y0);
        cairo_line_to(cr, x, Y1);
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
        snprintf(buf, sizeof buf, "tier %d \xe2\x89\xa4 %g ms", i, o->tier_edges[i]);
        double tw = text_width(cr, buf);
        cairo_save(cr);
        cairo_translate(cr, x - 6, Y0 + 6 + tw);
        cairo_rotate(cr, -M_PI / 2);
        cairo_set_source_rgba(cr, 1, 1, 1, 0.8);
        cairo_rectangle(cr, -2, -10, tw + 4, 13);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
        text_at(cr, 0, 0, 0, buf);
        cairo_restore(cr);
    }
    /* ordinary points (hub and compared models are drawn later, on top) */
    for (int i = 0; i < n; i++) {
        if (pts[i].flags & (GN_PLOT_HUB | GN_PLOT_OTHER))
            continue;
        set_rgb(cr, tier_colour(pts[i].tier), 0.8);
        cairo_arc(cr, px(&r, pts[i].latency_ms), py(&r, 100 * pts[i].accuracy), 4, 0, 2 * M_PI);
        cairo_fill_preserve(cr);
        cairo_set_source_rgba(cr, 0, 0, 0, 0.45);
        cairo_set_line_width(cr, 0.7);
        cairo_stroke(cr);
    }
    /* the front: step line, then rings */
    int nf = 0;
    for (int i = 0; i < n; i++)
        nf += (pts[i].flags & GN_PLOT_FRONT) != 0;
    fpt *fp = nf ? malloc((size_t)nf * sizeof *fp) : NULL;
    if (nf && !fp) {
        cairo_restore(cr);
        cairo_destroy(cr);
        cairo_surface_destroy(s);
        release_font_caches();
        return gn_error_set(err, "%s: plot: out of memory", path);
    }
    for (int i = 0, k = 0; i < n; i++)
        if (pts[i].flags & GN_PLOT_FRONT)
            fp[k++] = (fpt){i, pts[i].latency_ms, 100 * pts[i].accuracy};
    if (nf) {
        qsort(fp, (size_t)nf, sizeof *fp, cmp_fpt);
        cairo_set_source_rgba(cr, 0, 0, 0, 0.85);
        cairo_set_line_width(cr, 1.8);
        cairo_set_line_join(cr, CAIRO_LINE_JOIN_MITER);
        cairo_move_to(cr, px(&r, fp[0].x), py(&r, fp[0].y));
        for (int k = 1; k < nf; k++) {
            cairo_line_to(cr, px(&r, fp[k].x), py(&r, fp[k - 1].y));
            cairo_line_to(cr, px(&r, fp[k].x), py(&r, fp[k].y));
        }
        cairo_line_to(cr, X1, py(&r, fp[nf - 1].y));
        cairo_stroke(cr);
        cairo_set_line_width(cr, 1.4);
        for (int k = 0; k < nf; k++) {
            if (pts[fp[k].i].flags & GN_PLOT_HUB)
                continue;
            cairo_arc(cr, px(&r, fp[k].x), py(&r, fp[k].y), 6.5, 0, 2 * M_PI);
            cairo_stroke(cr);
        }
    }
    free(fp);
    /* hub models: big outlined diamonds */
    for (int i = 0; i < n; i++) {
        if (!(pts[i].flags & GN_PLOT_HUB))
            continue;
        double x = px(&r, pts[i].latency_ms), y = py(&r, 100 * pts[i].accuracy);
        set_rgb(cr, tier_colour(pts[i].tier), 1);
        diamond(cr, x, y, 10);
        cairo_fill_preserve(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_set_line_width(cr, 2.2);
        cairo_stroke(cr);
    }
    /* compared models: big outlined grey squares, on top of everything */
    for (int i = 0; i < n; i++) {
        if (!(pts[i].flags & GN_PLOT_OTHER))
            continue;
        cairo_set_source_rgba(cr, 0.82, 0.82, 0.82, 0.9);
        square(cr, px(&r, pts[i].latency_ms), py(&r, 100 * pts[i].accuracy), 7.5);
        cairo_fill_preserve(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_set_line_width(cr, 2);
        cairo_stroke(cr);
    }
    cairo_restore(cr); /* end of clip */

    /* hub and compared labels: right of the symbol (left near the right edge), nudged vertically
     * away from labels already placed and from every hub and compared symbol (a label box
     * drawn over a compared model's square would hide it); may extend past the plot area */
    if (o->labels) {
        box placed[128];
        int np = 0;
        for (int i = 0; i < n && np < 64; i++)
            if (pts[i].flags & (GN_PLOT_HUB | GN_PLOT_OTHER))
                placed[np++] = (box){px(&r, pts[i].latency_ms) - 10, py(&r, 100 * pts[i].accuracy) - 10, 20, 20};
        font(cr, 12, 1);
        for (int i = 0; i < n; i++) {
            const char *lab = o->labels[i];
            if (!(pts[i].flags & (GN_PLOT_HUB | GN_PLOT_OTHER)) || !lab || !*lab)
                continue;
            double x = px(&r, pts[i].latency_ms), y = py(&r, 100 * pts[i].accuracy);
            double tw = text_width(cr, lab), th = 14;
            box b = {x + 14, y - th / 2 - 2, tw + 8, th + 4};
            if (b.x + b.w > X1 - 2)
                b.x = x - 14 - b.w;
            if (b.x < 2)
                b.x = 2;
            box try = b;
            for (int k = 0; k < 12; k++) {
                int clash = 0;
                for (int j = 0; j < np && !clash; j++)
                    clash = overlaps(&try, &placed[j]);
                if (!clash)
                    break;
                double step = (th + 6) * ((k / 2) + 1);
                try = b;
                try.y = b.y + (k % 2 ? step : -step);
            }
            b = try;
            if (b.y < 2)
                b.y = 2;
            if (b.y + b.h > H - 2)
                b.y = H - 2 - b.h;
            if (np < 128)
                placed[np++] = b;
            cairo_set_source_rgba(cr, 1, 1, 1, 0.88);
            cairo_rectangle(cr, b.x, b.y, b.w, b.h);
            cairo_fill_preserve(cr);
            cairo_set_source_rgba(cr, 0, 0, 0, 0.35);
            cairo_set_line_width(cr, 0.8);
            cairo_stroke(cr);
            cairo_set_source_rgb(cr, 0, 0, 0);
            text_at(cr, b.x + 4, b.y + b.h - 5, 0, lab);
        }
    }

    draw_axes(cr, &r, o->x_label ? o->x_label : "latency (ms)", o->y_label ? o->y_label : "accuracy (%)");
    if (o->title && *o->title) {
        font(cr, 16, 1);
        cairo_set_source_rgb(cr, 0, 0, 0);
        text_at(cr, (X0 + X1) / 2, 32, 0.5, o->title);
    }
    legend(cr, pts, n, o->tier_edges, n_tiers);

    cairo_status_t cst = cairo_status(cr);
    cairo_destroy(cr);
    if (cst == CAIRO_STATUS_SUCCESS)
        cst = cairo_surface_status(s);
    if (cst != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(s);
        release_font_caches();
        return gn_error_set(err, "%s: plot: cairo: %s", path, cairo_status_to_string(cst));
    }
    /* encoded in memory, then PATH.tmp, fsync, rename, fsync of the folder
     * (util/fs_atomic.h): every write goes through write(2) and fails with its reason */
    png_buf pb = {0};
    cst = cairo_surface_write_to_png_stream(s, png_append, &pb);
    cairo_surface_destroy(s);
    release_font_caches();
    if (cst != CAIRO_STATUS_SUCCESS || pb.failed) {
        free(pb.data);
        return gn_error_set(err, "%s: plot: cannot encode the PNG: %s", path,
                            pb.failed ? "out of memory" : cairo_status_to_string(cst));
    }
    int rc = gn__fs_write_atomic(path, pb.data, pb.len, err);
    free(pb.data);
    return rc;
}