/* torch_read.c — dtypes, float16/bfloat16 conversion and gn_pt_read_f32/i64: copying a
 * tensor's elements out of its storage in C order (see gpunas/torchfile.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "import/torch_internal.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define PT_LITTLE 0
#else
#define PT_LITTLE 1
#endif

/* elements converted per chunk of a contiguous read */
#define CHUNK_BYTES ((size_t)1 << 16)

const char *gn_pt_dtype_name(gn_pt_dtype t)
{
    switch (t) {
    case GN_PT_F32: return "float32";
    case GN_PT_F64: return "float64";
    case GN_PT_F16: return "float16";
    case GN_PT_BF16: return "bfloat16";
    case GN_PT_I64: return "int64";
    case GN_PT_I32: return "int32";
    case GN_PT_I16: return "int16";
    case GN_PT_I8: return "int8";
    case GN_PT_U8: return "uint8";
    case GN_PT_BOOL: return "bool";
    }
    return "?";
}

int gn_pt_dtype_size(gn_pt_dtype t)
{
    switch (t) {
    case GN_PT_F64:
    case GN_PT_I64:
        return 8;
    case GN_PT_F32:
    case GN_PT_I32:
        return 4;
    case GN_PT_F16:
    case GN_PT_BF16:
    case GN_PT_I16:
        return 2;
    case GN_PT_I8:
    case GN_PT_U8:
    case GN_PT_BOOL:
        return 1;
    }
    return 0;
}

static bool is_float(gn_pt_dtype t)
{
    return t == GN_PT_F32 || t == GN_PT_F64 || t == GN_PT_F16 || t == GN_PT_BF16;
}

static float bits_f32(uint32_t b)
{
    float f;
    memcpy(&f, &b, 4);
    return f;
}

/* IEEE binary16 -> binary32, exact.  NaN keeps sign and payload, with the quiet bit set
 * (what torch's .float() and x86 F16C give for signaling NaNs). */
static float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    if (exp == 0x1f)
        return bits_f32(sign | 0x7f800000u | (mant ? 0x00400000u | (mant << 13) : 0));
    if (exp == 0) {
        if (mant == 0)
            return bits_f32(sign); /* +-0 */
        /* subnormal: mant * 2^-24; normalise into binary32 (always normal there) */
        uint32_t e = 113; /* 127 - 15 + 1 */
        while (!(mant & 0x400u)) {
            mant <<= 1;
            e--;
        }
        return bits_f32(sign | (e << 23) | ((mant & 0x3ffu) << 13));
    }
    return bits_f32(sign | ((exp + 112) << 23) | (mant << 13));
}

/* bfloat16 is the top half of a binary32: exact, NaN bits kept as they are */
static float bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

static uint64_t le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static float elem_f32(gn_pt_dtype t, const uint8_t *p)
{
    switch (t) {
    case GN_PT_F32:
        return bits_f32((uint32_t)le(p, 4));
    case GN_PT_F64: {
        uint64_t b = le(p, 8);
        double d;
        memcpy(&d, &b, 8);
        return (float)d;
    }
    case GN_PT_F16:
        return f16_to_f32((uint16_t)le(p, 2));
    case GN_PT_BF16:
        return bf16_to_f32((uint16_t)le(p, 2));
    default:
        return 0.0f;
    }
}

static int64_t elem_i64(gn_pt_dtype t, const uint8_t *p)
{
    switch (t) {
    case GN_PT_I64:
        return (int64_t)le(p, 8);
    case GN_PT_I32:
        return (int32_t)(uint32_t)le(p, 4);
    case GN_PT_I16:
        return (int16_t)(uint16_t)le(p, 2);
    case GN_PT_I8:
        return (int8_t)p[0];
    case GN_PT_U8:
        return p[0];
    case GN_PT_BOOL:
        return p[0] != 0;
    default:
        return 0;
    }
}

static void convert(gn_pt_dtype t, bool want_float, const uint8_t *src, size_t n, void *dst)
{
    int es = gn_pt_dtype_size(t);
    if (want_float) {
        float *d = dst;
        for (size_t i = 0; i < n; i++)
            d[i] = elem_f32(t, src + i * (size_t)es);
    } else {
        int64_t *d = dst;
        for (size_t i = 0; i < n; i++)
            d[i] = elem_i64(t, src + i * (size_t)es);
    }
}

static int read_tensor(gn_pt_file *f, const gn_pv *v, void *dst, bool want_float, gn_error *err)
{
    const char *fn = want_float ? "gn_pt_read_f32" : "gn_pt_read_i64";
    if (!f)
        return gn_error_set(err, "%s: no file", fn);
    if (!v || v->kind != GN_PV_TENSOR)
        return gn_error_set(err, "%s: %s: the value is a %s, not a tensor", f->path, fn,
                            v ? gn_pv_kind_name((gn_pv_kind)v->kind) : "NULL");
    const gn_pt_tensor_info *ti = &v->u.t->info;
    gn__pt_storage *st = v->u.t->storage->u.st;
    if (is_float(ti->dtype) != want_float)
        return gn_error_set(err, "%s: storage '%s': tensor is %s; %s reads %s tensors (use %s)",
                            f->path, st->key, gn_pt_dtype_name(ti->dtype), fn,
                            want_float ? "floating-point" : "integer and bool",
                            want_float ? "gn_pt_read_i64" : "gn_pt_read_f32");
    if (ti->numel == 0)
        return 0;
    if (!dst)
        return gn_error_set(err, "%s: storage '%s': %s: NULL destination", f->path, st->key, fn);
    const int es = gn_pt_dtype_size(ti->dtype);
    const size_t out_es = want_float ? sizeof(float) : sizeof(int64_t);

    bool contiguous = true;
    int64_t expect = 1, ext = 0;
    for (int i = ti->ndim - 1; i >= 0; i--) {
        if (ti->shape[i] != 1 && ti->stride[i] != expect)
            contiguous = false;
        expect *= ti->shape[i];
        ext += (ti->shape[i] - 1) * ti->stride[i]; /* checked at open */
    }
    if ((uint64_t)ti->numel > SIZE_MAX / out_es)
        return gn_error_set(err, "%s: storage '%s': tensor too large for this machine", f->path, st->key);

    gn__pt_stream s;
    if (contiguous) {
        bool whole = ti->offset == 0 && ti->numel == st->numel;
        if (gn__pt_stream_open(f, st, (uint64_t)ti->offset * (uint64_t)es, &s, err) < 0)
            return -1;
        uint8_t *bounce = NULL;
        bool direct = PT_LITTLE && want_float && ti->dtype == GN_PT_F32;
        if (!direct && !(bounce = malloc(CHUNK_BYTES))) {
            gn__pt_stream_close(&s, false, NULL);
            return gn_error_set(err, "%s: storage '%s': out of memory", f->path, st->key);
        }
        size_t left = (size_t)ti->numel, done = 0, per = CHUNK_BYTES / (size_t)es;
        int rc = 0;
        while (left > 0 && rc == 0) {
            size_t n = left < per ? left : per;
            char *out = (char *)dst + done * out_es;
            if (direct) {
                rc = gn__pt_stream_read(&s, out, n * 4, err);
            } else {
                rc = gn__pt_stream_read(&s, bounce, n * (size_t)es, err);
                if (rc == 0)
                    convert(ti->dtype, want_float, bounce, n, out);
            }
            done += n;
            left -= n;
        }
        free(bounce);
        if (rc < 0) {
            gn__pt_stream_close(&s, false, NULL);
            return -1;
        }
        return gn__pt_stream_close(&s, whole, err);
    }

    /* strided: read the span [offset, offset + ext] once, then gather in C order */
    uint64_t span = (uint64_t)(ext + 1) * (uint64_t)es;
    if (span > SIZE_MAX)
        return gn_error_set(err, "%s: storage '%s': tensor too large for this machine", f->path, st->key);
    uint8_t *buf = malloc((size_t)span);
    if (!buf)
        return gn_error_set(err, "%s: storage '%s': out of memory (%" PRIu64 " bytes for a strided "
                            "tensor)", f->path, st->key, span);
    bool whole = ti->offset == 0 && ext + 1 == st->numel;
    if (gn__pt_stream_open(f, st, (uint64_t)ti->offset * (uint64_t)es, &s, err) < 0) {
        free(buf);
        return -1;
    }
    if (gn__pt_stream_read(&s, buf, (size_t)span, err) < 0) {
        gn__pt_stream_close(&s, false, NULL);
        free(buf);
        return -1;
    }
    if (gn__pt_stream_close(&s, whole, err) < 0) {
        free(buf);
        return -1;
    }
    /* unsigned: a size-1 dimension may carry any stride, the wrap-around cancels */
    int64_t idx[GN_PT_MAX_DIMS] = {0};
    uint64_t off = 0;
    for (int64_t k = 0; k < ti->numel; k++) {
        convert(ti->dtype, want_float, buf + (size_t)off * (size_t)es, 1, (char *)dst + (size_t)k * out_es);
        for (int d = ti->ndim - 1; d >= 0; d--) {
            idx[d]++;
            off += (uint64_t)ti->stride[d];
            if (idx[d] < ti->shape[d])
                break;
            off -= (uint64_t)ti->stride[d] * (uint64_t)ti->shape[d];
            idx[d] = 0;
        }
    }
    free(buf);
    return 0;
}

int gn_pt_read_f32(gn_pt_file *f, const gn_pv *tensor, float *dst, gn_error *err)
{
    return read_tensor(f, tensor, dst, true, err);
}

int gn_pt_read_i64(gn_pt_file *f, const gn_pv *tensor, int64_t *dst, gn_error *err)
{
    return read_tensor(f, tensor, dst, false, err);
}
