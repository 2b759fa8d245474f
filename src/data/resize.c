/*
 * resize.c — bilinear resize with half-pixel centres.
 *
 * Design
 *   The same rule as torch.nn.functional.interpolate(mode='bilinear',
 *   align_corners=False, antialias=False): output position d maps to source coordinate
 *   s = (d + 0.5) * in / out - 0.5, clamped below at 0; i0 = floor(s), i1 = min(i0 + 1,
 *   in - 1), weight of i1 = s - i0.  No antialiasing, so shrinking by more than 2x skips
 *   pixels — as PyTorch does, which is what models trained there expect.
 *   The per-axis tables are computed once (all images of a dataset share a size), which
 *   makes a resize four multiply-adds per output value.
 */
#include <math.h>
#include <stdlib.h>

#include "data/data_internal.h"

int gn__resize_axis_init(gn__resize_axis *a, int in, int out, gn_error *err)
{
    a->out = out;
    a->i0 = malloc((size_t)out * sizeof *a->i0);
    a->i1 = malloc((size_t)out * sizeof *a->i1);
    a->l1 = malloc((size_t)out * sizeof *a->l1);
    if (!a->i0 || !a->i1 || !a->l1) {
        gn__resize_axis_free(a);
        return gn_error_set(err, "resize: out of memory");
    }
    double scale = (double)in / (double)out;
    for (int d = 0; d < out; d++) {
        double s = (d + 0.5) * scale - 0.5;
        if (s < 0)
            s = 0;
        int i0 = (int)s;
        if (i0 > in - 1)
            i0 = in - 1;
        a->i0[d] = i0;
        a->i1[d] = i0 < in - 1 ? i0 + 1 : i0;
        a->l1[d] = (float)(s - i0);
    }
    return 0;
}

void gn__resize_axis_free(gn__resize_axis *a)
{
    free(a->i0);
    free(a->i1);
    free(a->l1);
    a->i0 = a->i1 = NULL;
    a->l1 = NULL;
}

void gn__resize_plane_f32(const uint8_t *src, int w, const gn__resize_axis *ay, const gn__resize_axis *ax,
                          float *dst)
{
    for (int y = 0; y < ay->out; y++) {
        const uint8_t *r0 = src + (size_t)ay->i0[y] * w, *r1 = src + (size_t)ay->i1[y] * w;
        float ly = ay->l1[y], ly0 = 1.0f - ly;
        float *o = dst + (size_t)y * ax->out;
        for (int x = 0; x < ax->out; x++) {
            int x0 = ax->i0[x], x1 = ax->i1[x];
            float lx = ax->l1[x], lx0 = 1.0f - lx;
            o[x] = ly0 * (lx0 * r0[x0] + lx * r0[x1]) + ly * (lx0 * r1[x0] + lx * r1[x1]);
        }
    }
}

void gn__resize_plane_u8(const uint8_t *src, int w, const gn__resize_axis *ay, const gn__resize_axis *ax,
                         uint8_t *dst)
{
    for (int y = 0; y < ay->out; y++) {
        const uint8_t *r0 = src + (size_t)ay->i0[y] * w, *r1 = src + (size_t)ay->i1[y] * w;
        float ly = ay->l1[y], ly0 = 1.0f - ly;
        uint8_t *o = dst + (size_t)y * ax->out;
        for (int x = 0; x < ax->out; x++) {
            int x0 = ax->i0[x], x1 = ax->i1[x];
            float lx = ax->l1[x], lx0 = 1.0f - lx;
            float v = ly0 * (lx0 * r0[x0] + lx * r0[x1]) + ly * (lx0 * r1[x0] + lx * r1[x1]);
            int iv = (int)floorf(v + 0.5f);
            o[x] = (uint8_t)(iv < 0 ? 0 : iv > 255 ? 255 : iv); /* v is a convex mix of bytes */
        }
    }
}
