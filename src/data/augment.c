/*
 * augment.c — the per-image transform of the loader and its seeding.
 *
 * Design
 *   Training:   resize (bilinear, to R x R) -> random crop R x R from the image padded
 *               with crop_pad zero pixels on each side -> horizontal flip (p = 0.5) ->
 *               normalise ((x/255 - mean) / std per channel) -> random erasing.
 *   Evaluation: resize -> normalise.
 *   This is torchvision's RandomCrop(R, padding=p) + RandomHorizontalFlip + ToTensor +
 *   Normalize followed by timm's RandomErasing(probability, mode='pixel'): with
 *   probability erase_prob, up to 10 attempts draw an area fraction U(0.02, 1/3) and a
 *   log-uniform aspect ratio in [0.3, 1/0.3]; h = round(sqrt(area*aspect)), w =
 *   round(sqrt(area/aspect)) (round half to even, as Python's round); the first attempt
 *   with h < R and w < R erases a rectangle at a uniform position, all channels, with
 *   independent N(0, 1) values (normalised units).  Padding is black (pixel 0) before
 *   normalisation, as in torchvision.
 *
 *   Crop, flip and normalisation are one pass over the output: out(y, x) =
 *   resized(y + oy - p, x' + ox - p) with x' = R-1-x when flipped, 0 outside.
 *
 *   Randomness: every image gets its own gn_rng seeded with gn__image_key(seed, epoch,
 *   position in the epoch) — splitmix64 finalisers chained over the three numbers — and
 *   draws in a fixed order: crop offsets (oy, ox in [0, 2p]) if crop_pad > 0, flip if
 *   hflip, then erasing if erase_prob > 0.  Erasing draws last, so the crop and flip of
 *   an image do not depend on erase_prob.  The epoch's shuffle uses gn__perm_key(seed,
 *   epoch).  Nothing depends on which thread runs the transform or when.
 */
#include <math.h>
#include <string.h>

#include "data/data_internal.h"
#include "gpunas/rng.h"

#define GOLDEN 0x9e3779b97f4a7c15ULL

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t gn__image_key(uint64_t seed, int epoch, int64_t position)
{
    uint64_t h = mix64(seed + GOLDEN);
    h = mix64(h ^ ((uint64_t)(uint32_t)epoch + 2 * GOLDEN));
    return mix64(h ^ ((uint64_t)position + 3 * GOLDEN));
}

uint64_t gn__perm_key(uint64_t seed, int epoch)
{
    uint64_t h = mix64(seed + GOLDEN);
    h = mix64(h ^ ((uint64_t)(uint32_t)epoch + 2 * GOLDEN));
    return mix64(h ^ (5 * GOLDEN));
}

void gn_augment_defaults(const gn_dataset *d, gn_augment *a)
{
    memset(a, 0, sizeof *a);
    int size = d ? (d->h > d->w ? d->h : d->w) : 32;
    a->resolution = size;
    a->augment = true;
    a->crop_pad = size / 8;
    a->hflip = true;
    a->erase_prob = 0.25f;
    for (int ch = 0; ch < GN_DATA_MAX_CHANNELS; ch++) {
        a->mean[ch] = d ? d->mean[ch] : 0.0f;
        a->std[ch] = d ? d->std[ch] : 1.0f;
    }
}

int gn__transform_init(gn__transform *t, const gn_augment *a, int c, int h, int w, gn_error *err)
{
    memset(t, 0, sizeof *t);
    if (a->resolution < 1 || a->resolution > 4096)
        return gn_error_set(err, "augment: resolution %d not in [1, 4096]", a->resolution);
    if (a->augment && (a->crop_pad < 0 || a->crop_pad > a->resolution))
        return gn_error_set(err, "augment: crop_pad %d not in [0, resolution %d]", a->crop_pad, a->resolution);
    if (a->augment && !(a->erase_prob >= 0.0f && a->erase_prob <= 1.0f))
        return gn_error_set(err, "augment: erase_prob %g not in [0, 1]", (double)a->erase_prob);
    if (c < 1 || c > GN_DATA_MAX_CHANNELS)
        return gn_error_set(err, "augment: %d channels not supported", c);
    for (int ch = 0; ch < c; ch++) {
        if (!isfinite(a->mean[ch]) || !(a->std[ch] > 0.0f) || !isfinite(a->std[ch]))
            return gn_error_set(err, "augment: channel %d: mean %g / std %g (std must be positive and finite)",
                                ch, (double)a->mean[ch], (double)a->std[ch]);
        t->scale[ch] = 1.0f / (255.0f * a->std[ch]);
        t->shift[ch] = a->mean[ch] / a->std[ch];
    }
    t->aug = *a;
    t->c = c, t->h = h, t->w = w;
    t->r = a->resolution;
    t->resize = h != t->r || w != t->r;
    if (t->resize && (gn__resize_axis_init(&t->ay, h, t->r, err) || gn__resize_axis_init(&t->ax, w, t->r, err))) {
        gn__transform_free(t);
        return -1;
    }
    return 0;
}

void gn__transform_free(gn__transform *t)
{
    gn__resize_axis_free(&t->ay);
    gn__resize_axis_free(&t->ax);
}

static void erase(const gn__transform *t, gn_rng *rng, float *dst)
{
    int R = t->r;
    if (gn_rng_uniform(rng) > t->aug.erase_prob)
        return;
    double area = (double)R * R, la = log(0.3), lb = log(1.0 / 0.3);
    for (int attempt = 0; attempt < 10; attempt++) {
        double target = (0.02 + (1.0 / 3.0 - 0.02) * gn_rng_uniform(rng)) * area;
        double aspect = exp(la + (lb - la) * gn_rng_uniform(rng));
        int h = (int)rint(sqrt(target * aspect)), w = (int)rint(sqrt(target / aspect));
        if (w < R && h < R) {
            int top = (int)gn_rng_below(rng, (uint64_t)(R - h) + 1);
            int left = (int)gn_rng_below(rng, (uint64_t)(R - w) + 1);
            for (int ch = 0; ch < t->c; ch++)
                for (int y = top; y < top + h; y++) {
                    float *row = dst + ((size_t)ch * R + y) * R;
                    for (int x = left; x < left + w; x++)
                        row[x] = (float)gn_rng_normal(rng);
                }
            return;
        }
    }
}

void gn__transform_image(const gn__transform *t, const uint8_t *src, uint64_t key, float *scratch, float *dst)
{
    const int R = t->r, c = t->c, h = t->h, w = t->w;
    const size_t plane = (size_t)R * R;
    int p = 0, oy = 0, ox = 0, flip = 0;
    gn_rng rng;
    if (t->aug.augment) {
        gn_rng_seed(&rng, key);
        p = t->aug.crop_pad;
        if (p > 0) {
            oy = (int)gn_rng_below(&rng, 2 * (uint64_t)p + 1);
            ox = (int)gn_rng_below(&rng, 2 * (uint64_t)p + 1);
        }
        if (t->aug.hflip)
            flip = gn_rng_uniform(&rng) < 0.5;
    } else {
        oy = ox = 0;
    }
    const int dy = oy - p, dx = ox - p;
    for (int ch = 0; ch < c; ch++) {
        const float scale = t->scale[ch], shift = t->shift[ch], pad = -shift;
        float *o = dst + (size_t)ch * plane;
        const float *fs = NULL;
        const uint8_t *us = NULL;
        if (t->resize) {
            gn__resize_plane_f32(src + (size_t)ch * h * w, w, &t->ay, &t->ax, scratch);
            fs = scratch;
        } else {
            us = src + (size_t)ch * plane;
        }
        for (int y = 0; y < R; y++) {
            float *orow = o + (size_t)y * R;
            int sy = y + dy;
            if (sy < 0 || sy >= R) {
                for (int x = 0; x < R; x++)
                    orow[x] = pad;
                continue;
            }
            /* x range whose source column lies inside: sx = (flip ? R-1-x : x) + dx */
            for (int x = 0; x < R; x++) {
                int sx = (flip ? R - 1 - x : x) + dx;
                float v;
                if (sx < 0 || sx >= R)
                    v = pad;
                else if (fs)
                    v = fs[(size_t)sy * R + sx] * scale - shift;
                else
                    v = us[(size_t)sy * R + sx] * scale - shift;
                orow[x] = v;
            }
        }
    }
    if (t->aug.augment && t->aug.erase_prob > 0.0f)
        erase(t, &rng, dst);
}
