/*
 * fuzz_image.c — the PNG / JPEG decode path of image-folder data sets
 * (gn__image_decode in src/data/image_decode.c, then the bilinear resize the folder
 * reader applies, src/data/resize.c).
 *
 * Feeds: the input as a file (memfd, opened by path); the format is chosen by the
 * content, as the reader does.
 * Asserts:
 *   - failure: no pixels are returned and the error is one non-empty line;
 *   - success: 1 or 3 channels, 1 <= h, w <= 16384, every pixel readable; the image
 *     resizes to 8 x 8 (uint8) without reading out of bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"
#include "fuzz_util.h"

static fz_memfile in_file;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fz_memfile_put(&in_file, "image", data, size);
    uint8_t *px = (uint8_t *)1;
    int c = -1, h = -1, w = -1;
    gn_error err = {{0}};
    if (gn__image_decode(path, &px, &c, &h, &w, &err) != 0) {
        FZ_CHECK(px == NULL, "failed decode returned pixels");
        fz_check_error(&err);
        return 0;
    }
    FZ_CHECK(px != NULL, "no pixels");
    FZ_CHECK(c == 1 || c == 3, "%d channels", c);
    FZ_CHECK(h >= 1 && h <= 16384 && w >= 1 && w <= 16384, "size %dx%d", w, h);
    size_t n = (size_t)c * (size_t)h * (size_t)w;
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += px[i];
    volatile unsigned sink = sum;
    (void)sink;

    gn__resize_axis ay, ax;
    FZ_CHECK(gn__resize_axis_init(&ay, h, 8, &err) == 0, "resize: %s", err.msg);
    FZ_CHECK(gn__resize_axis_init(&ax, w, 8, &err) == 0, "resize: %s", err.msg);
    uint8_t out[8 * 8];
    for (int k = 0; k < c; k++)
        gn__resize_plane_u8(px + (size_t)k * h * w, w, &ay, &ax, out);
    gn__resize_axis_free(&ay);
    gn__resize_axis_free(&ax);
    free(px);
    return 0;
}
