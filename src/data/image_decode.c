/*
 * image_decode.c — one PNG or JPEG file to 8-bit grey or RGB planes.
 *
 * Design
 *   The format is taken from the file's signature, not its name.  Both libraries report
 *   errors by longjmp from a callback; the callbacks here store the library's message
 *   (libraries never print from gpunas) and the caller turns it into one line naming
 *   the file.  Conversions, so that every image comes out as 1 (grey) or 3 (RGB)
 *   channels of 8 bits: PNG palettes -> RGB, grey below 8 bits -> 8 bits, 16 bits ->
 *   8 (scaled, rounded), alpha and tRNS transparency dropped (the colour values are
 *   kept as stored, not composited).  JPEG: greyscale stays grey, YCbCr/RGB -> RGB,
 *   CMYK/YCCK are refused.  JPEG data-corruption warnings (premature end, bad Huffman
 *   code...) are errors here: libjpeg would otherwise fill the rest with grey and a
 *   damaged training image would pass silently; decoding stops at the first one (a
 *   few hundred bytes declaring 16384 x 16384 would otherwise have every row filled,
 *   seconds of work); harmless warnings (extraneous bytes, unknown JFIF revision, bad
 *   ICC marker) are ignored.  Images larger than 16384 on a side are refused before
 *   any pixel memory is allocated.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "data/data_internal.h"

#define MAX_SIDE 16384

/* interleaved [h][w][c] -> planes [c][h][w] */
static uint8_t *to_planes(const uint8_t *in, int c, int h, int w)
{
    size_t plane = (size_t)h * (size_t)w;
    uint8_t *out = malloc(plane * (size_t)c);
    if (!out)
        return NULL;
    for (int ch = 0; ch < c; ch++)
        for (size_t k = 0; k < plane; k++)
            out[ch * plane + k] = in[k * (size_t)c + ch];
    return out;
}

/* ------------------------------------------------------------------ PNG */

typedef struct {
    char msg[256];
} png_ctx;

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_ctx *ctx = png_get_error_ptr(png);
    snprintf(ctx->msg, sizeof ctx->msg, "%s", msg ? msg : "unknown error");
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

static int decode_png(const char *path, FILE *f, uint8_t **pixels, int *c, int *h, int *w, gn_error *err)
{
    png_ctx ctx = {{0}};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_error, png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        return gn_error_set(err, "%s: out of memory for the PNG decoder", path);
    }
    uint8_t *volatile inter = NULL;
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        free(inter);
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        return gn_error_set(err, "%s: undecodable PNG: %s", path, ctx.msg);
    }
    png_init_io(png, f);
    png_set_user_limits(png, MAX_SIDE, MAX_SIDE);
    png_read_info(png, info);
    int ct = png_get_color_type(png, info), bd = png_get_bit_depth(png, info);
    if (ct == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (ct == PNG_COLOR_TYPE_GRAY && bd < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (bd == 16)
        png_set_scale_16(png);
    /* a palette's tRNS becomes an alpha channel when the palette is expanded */
    if ((ct & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS))
        png_set_strip_alpha(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int ww = (int)png_get_image_width(png, info), hh = (int)png_get_image_height(png, info);
    int cc = png_get_channels(png, info);
    if (cc != 1 && cc != 3) {
        snprintf(ctx.msg, sizeof ctx.msg, "%d channels after conversion (expected 1 or 3)", cc);
        png_longjmp(png, 1);
    }
    size_t rb = png_get_rowbytes(png, info);
    if (rb != (size_t)ww * (size_t)cc) {
        snprintf(ctx.msg, sizeof ctx.msg, "unexpected row size %zu", rb);
        png_longjmp(png, 1);
    }
    inter = malloc(rb * (size_t)hh);
    rows = malloc((size_t)hh * sizeof *rows);
    if (!inter || !rows) {
        snprintf(ctx.msg, sizeof ctx.msg, "out of memory for %dx%d pixels", ww, hh);
        png_longjmp(png, 1);
    }
    for (int y = 0; y < hh; y++)
        rows[y] = inter + (size_t)y * rb;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    uint8_t *planes = to_planes(inter, cc, hh, ww);
    free(inter);
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    if (!planes)
        return gn_error_set(err, "%s: out of memory for %dx%d pixels", path, ww, hh);
    *pixels = planes, *c = cc, *h = hh, *w = ww;
    return 0;
}

/* ------------------------------------------------------------------ JPEG */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jb;
    char msg[JMSG_LENGTH_MAX + 64];
} jpeg_ctx;

static void jpeg_on_error(j_common_ptr cinfo)
{
    jpeg_ctx *ctx = (jpeg_ctx *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, ctx->msg);
    longjmp(ctx->jb, 1);
}

static void jpeg_on_message(j_common_ptr cinfo, int level)
{
    jpeg_ctx *ctx = (jpeg_ctx *)cinfo->err;
    if (level >= 0)
        return; /* trace messages */
    int code = cinfo->err->msg_code;
    if (code == JWRN_HIT_MARKER || code == JWRN_HUFF_BAD_CODE || code == JWRN_JPEG_EOF || code == JWRN_MUST_RESYNC ||
        code == JWRN_ARITH_BAD_CODE || code == JWRN_NOT_SEQUENTIAL) {
        (*cinfo->err->format_message)(cinfo, ctx->msg);
        longjmp(ctx->jb, 1); /* as error_exit: the caller reports "undecodable JPEG" */
    }
}

static void jpeg_on_output(j_common_ptr cinfo) { (void)cinfo; }

static int decode_jpeg(const char *path, FILE *f, uint8_t **pixels, int *c, int *h, int *w, gn_error *err)
{
    struct jpeg_decompress_struct cinfo;
    jpeg_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    cinfo.err = jpeg_std_error(&ctx.pub);
    ctx.pub.error_exit = jpeg_on_error;
    ctx.pub.emit_message = jpeg_on_message;
    ctx.pub.output_message = jpeg_on_output;
    uint8_t *volatile inter = NULL;
    if (setjmp(ctx.jb)) {
        free(inter);
        jpeg_destroy_decompress(&cinfo);
        return gn_error_set(err, "%s: undecodable JPEG: %s", path, ctx.msg);
    }
    jpeg_create_decompress(&cinfo);
    jpeg_stdio_src(&cinfo, f);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        jpeg_destroy_decompress(&cinfo);
        return gn_error_set(err, "%s: CMYK JPEG not supported (convert it to RGB)", path);
    }
    if (cinfo.image_width > MAX_SIDE || cinfo.image_height > MAX_SIDE) {
        int iw = (int)cinfo.image_width, ih = (int)cinfo.image_height;
        jpeg_destroy_decompress(&cinfo);
        return gn_error_set(err, "%s: image %dx%d larger than %d on a side", path, iw, ih, MAX_SIDE);
    }
    cinfo.out_color_space = cinfo.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(&cinfo);
    int ww = (int)cinfo.output_width, hh = (int)cinfo.output_height, cc = cinfo.output_components;
    if (cc != 1 && cc != 3) {
        jpeg_destroy_decompress(&cinfo);
        return gn_error_set(err, "%s: JPEG with %d components not supported", path, cc);
    }
    size_t rb = (size_t)ww * (size_t)cc;
    inter = malloc(rb * (size_t)hh);
    if (!inter) {
        jpeg_destroy_decompress(&cinfo);
        return gn_error_set(err, "%s: out of memory for %dx%d pixels", path, ww, hh);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = inter + (size_t)cinfo.output_scanline * rb;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    uint8_t *planes = to_planes(inter, cc, hh, ww);
    free(inter);
    if (!planes)
        return gn_error_set(err, "%s: out of memory for %dx%d pixels", path, ww, hh);
    *pixels = planes, *c = cc, *h = hh, *w = ww;
    return 0;
}

int gn__image_decode(const char *path, uint8_t **pixels, int *c, int *h, int *w, gn_error *err)
{
    *pixels = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return gn_error_set(err, "%s: cannot open: %s", path, strerror(errno));
    uint8_t sig[8] = {0};
    size_t n = fread(sig, 1, sizeof sig, f);
    int rc;
    if (fseek(f, 0, SEEK_SET) != 0)
        rc = gn_error_set(err, "%s: cannot seek: %s", path, strerror(errno));
    else if (n == 8 && !png_sig_cmp(sig, 0, 8))
        rc = decode_png(path, f, pixels, c, h, w, err);
    else if (n >= 3 && sig[0] == 0xFF && sig[1] == 0xD8 && sig[2] == 0xFF)
        rc = decode_jpeg(path, f, pixels, c, h, w, err);
    else
        rc = gn_error_set(err, "%s: undecodable image: not a PNG or JPEG file%s", path, n == 0 ? " (empty)" : "");
    fclose(f);
    return rc;
}
