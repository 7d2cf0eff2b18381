/* kv_quant.h - the INT8 / INT4 codes of the quantized KV cache (internal to kernels/).
 *
 * One row is the head_dim values of one token and one kv head.  A value x is
 * stored as a signed code q = clamp(rint((x - zp) / scale), qmin, qmax) and read
 * back as q * scale + zp:
 *   int8: q in [-128, 127], one byte (int8_t) per value;
 *   int4: q in [-8, 7], stored as the nibble q + 8; value 2i is the low nibble of
 *         byte i, value 2i + 1 the high nibble.
 * The parameters follow the seed's LMDeploy kv_qparams (asymmetric):
 *   zp = (min + max) / 2, scale = (max - min) / (2^bits - 1),
 * so the row's range maps onto [-(2^bits - 1)/2, +(2^bits - 1)/2]; the half-step
 * at the top that rounds past qmax is clamped, an error of at most scale / 2, the
 * same bound as every other value.  Online mode computes (scale, zp) per row when
 * the row is written; static mode takes them per layer and kv head from the model. */
#ifndef TMI_KV_QUANT_H
#define TMI_KV_QUANT_H

#include <math.h>

#include "attention.h"

static inline int tmi_kv_bits(tm_dtype dtype) { return dtype == TM_I8 ? 8 : dtype == TMI_KV_INT4 ? 4 : 0; }

/* Online parameters of one row x[d]: scale (>= 0) and zero point. */
static inline void tmi_kv_row_params(const float *x, int32_t d, int bits, float *scale, float *zp)
{
    float mn = x[0], mx = x[0];
    for (int32_t i = 1; i < d; i++) {
        if (x[i] < mn) mn = x[i];
        if (x[i] > mx) mx = x[i];
    }
    *scale = (mx - mn) / (float)((1 << bits) - 1);
    *zp = 0.5f * (mn + mx);
}

/* The code of x; a zero scale (a constant row) codes everything as 0 = zp. */
static inline int32_t tmi_kv_code(float x, float inv_scale, float zp, int bits)
{
    int32_t qmax = (1 << (bits - 1)) - 1, qmin = -qmax - 1;
    float q = rintf((x - zp) * inv_scale);
    if (!(q >= (float)qmin)) return q != q ? 0 : qmin; /* NaN codes as zp */
    return q > (float)qmax ? qmax : (int32_t)q;
}

/* Codes of x[d] into dst: d bytes (int8) or d/2 bytes (int4, d even). */
static inline void tmi_kv_quantize_row(const float *x, int32_t d, int bits, float scale, float zp, uint8_t *dst)
{
    float inv = scale > 0.0f ? 1.0f / scale : 0.0f;
    if (bits == 8) {
        for (int32_t i = 0; i < d; i++) dst[i] = (uint8_t)(int8_t)tmi_kv_code(x[i], inv, zp, 8);
        return;
    }
    for (int32_t i = 0; i + 1 < d; i += 2) {
        uint32_t lo = (uint32_t)(tmi_kv_code(x[i], inv, zp, 4) + 8);
        uint32_t hi = (uint32_t)(tmi_kv_code(x[i + 1], inv, zp, 4) + 8);
        dst[i / 2] = (uint8_t)(lo | hi << 4);
    }
}

/* Code i of a row as a float (without scale and zero point). */
static inline float tmi_kv_code_at(const uint8_t *row, int bits, int32_t i)
{
    if (bits == 8) return (float)(int8_t)row[i];
    return (float)((int32_t)((row[i >> 1] >> ((i & 1) * 4)) & 15u) - 8);
}

static inline float tmi_kv_dequant(const uint8_t *row, int bits, int32_t i, float scale, float zp)
{
    return tmi_kv_code_at(row, bits, i) * scale + zp;
}

#endif
