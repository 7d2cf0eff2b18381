/* quantizer_pack.c - group-wise int4 quantization and the AutoAWQ GEMM packing
 * (layout in quantizer.h): what the AWQ and RTN paths write, and what the reader
 * and the converter decode. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "kernels/common.h"
#include "quantizer.h"
#include "weights.h"

const int tmi_awq_order[8] = {0, 2, 4, 6, 1, 3, 5, 7};
const int tmi_awq_nibble_of[8] = {0, 4, 1, 5, 2, 6, 3, 7};

static inline float f16_round(float x) { return tmi_f16_to_f32(tmi_f32_to_f16(x)); }

void tmi_int4_quantize(const float *w, int64_t out, int64_t in, int32_t group, const float *max_val, uint8_t *q,
                       float *scales, float *zeros, float *deq)
{
    int64_t n_groups = in / group;
    for (int64_t o = 0; o < out; o++)
        for (int64_t gi = 0; gi < n_groups; gi++) {
            const float *wg = w + o * in + gi * group;
            float clip = max_val ? max_val[o * n_groups + gi] : INFINITY;
            float lo = INFINITY, hi = -INFINITY;
            for (int32_t t = 0; t < group; t++) {
                float v = fminf(fmaxf(wg[t], -clip), clip);
                lo = fminf(lo, v);
                hi = fmaxf(hi, v);
            }
            /* the scale is stored as fp16: quantize against the value the engine reads */
            float s = f16_round(fmaxf(hi - lo, 1e-5f) / 15.0f);
            float z = fminf(fmaxf(-roundf(lo / s), 0.0f), 15.0f);
            if (scales) scales[o * n_groups + gi] = s;
            if (zeros) zeros[o * n_groups + gi] = z;
            for (int32_t t = 0; t < group; t++) {
                float v = fminf(fmaxf(wg[t], -clip), clip);
                float qv = fminf(fmaxf(roundf(v / s) + z, 0.0f), 15.0f);
                if (q) q[o * in + gi * group + t] = (uint8_t)qv;
                if (deq) deq[o * in + gi * group + t] = (qv - z) * s;
            }
        }
}

static tm_status check_linear(const char *what, int64_t out, int64_t in, int32_t group)
{
    if (out < 8 || out % 8)
        return tmi_fail(TM_ERR_INVALID_ARG, "%s: out features must be a positive multiple of 8, got %lld", what,
                        (long long)out);
    if (group < 8 || in < group || in % group)
        return tmi_fail(TM_ERR_INVALID_ARG, "%s: group %d must be >= 8 and divide in features %lld", what, group,
                        (long long)in);
    return TM_OK;
}

/* The AutoAWQ tensors of q/s/z ([out][in], [out][in/g]) into dst as prefix.{qweight,qzeros,scales}. */
static tm_status write_awq(tm_weights *dst, const char *prefix, const uint8_t *q, const float *s, const float *z,
                           int64_t out, int64_t in, int32_t group)
{
    int64_t n_groups = in / group;
    int32_t *qw = calloc((size_t)(in * out / 8), sizeof *qw);   /* [in][out/8] */
    int32_t *qz = calloc((size_t)(n_groups * out / 8), sizeof *qz); /* [in/g][out/8] */
    uint16_t *sc = malloc((size_t)(n_groups * out) * sizeof *sc);    /* [in/g][out] */
    if (!qw || !qz || !sc) {
        free(qw);
        free(qz);
        free(sc);
        return tmi_fail(TM_ERR_NOMEM, "%s: out of memory", prefix);
    }
    for (int64_t o = 0; o < out; o++) {
        for (int64_t i = 0; i < in; i++) tmi_awq_put(qw + i * (out / 8), o, q[o * in + i]);
        for (int64_t gi = 0; gi < n_groups; gi++) {
            tmi_awq_put(qz + gi * (out / 8), o, (int)z[o * n_groups + gi]);
            sc[gi * out + o] = tmi_f32_to_f16(s[o * n_groups + gi]);
        }
    }
    char name[512];
    int64_t shape_qw[2] = {in, out / 8}, shape_qz[2] = {n_groups, out / 8}, shape_sc[2] = {n_groups, out};
    snprintf(name, sizeof name, "%s.qweight", prefix);
    /* adopt takes each buffer whatever the outcome; after a failure free the rest */
    tm_status st = tmi_weights_adopt(dst, name, TM_I32, 2, shape_qw, qw);
    snprintf(name, sizeof name, "%s.qzeros", prefix);
    if (st == TM_OK)
        st = tmi_weights_adopt(dst, name, TM_I32, 2, shape_qz, qz);
    else
        free(qz);
    snprintf(name, sizeof name, "%s.scales", prefix);
    if (st == TM_OK)
        st = tmi_weights_adopt(dst, name, TM_F16, 2, shape_sc, sc);
    else
        free(sc);
    return st;
}

tm_status tm_awq_quantize(tm_weights *dst, const char *prefix, const float *w, int64_t out, int64_t in,
                          int32_t group, const float *max_val)
{
    if (!dst || !prefix || !w) return tmi_fail(TM_ERR_INVALID_ARG, "tm_awq_quantize: NULL argument");
    tm_status st = check_linear(prefix, out, in, group);
    if (st) return st;
    int64_t n_groups = in / group;
    uint8_t *q = malloc((size_t)(out * in));
    float *s = malloc((size_t)(out * n_groups) * sizeof *s), *z = malloc((size_t)(out * n_groups) * sizeof *z);
    if (!q || !s || !z) {
        st = tmi_fail(TM_ERR_NOMEM, "%s: out of memory", prefix);
    } else {
        tmi_int4_quantize(w, out, in, group, max_val, q, s, z, NULL);
        st = write_awq(dst, prefix, q, s, z, out, in, group);
    }
    free(q);
    free(s);
    free(z);
    return st;
}

/* Finds name with dtype and 2 dims. */
static tm_status find2(const tm_weights *src, const char *name, tm_dtype dtype, tm_tensor_info *t)
{
    if (tm_weights_find(src, name, t) != TM_OK) return tmi_fail(TM_ERR_NOT_FOUND, "missing tensor %s", name);
    if (t->dtype != dtype || t->ndim != 2)
        return tmi_fail(TM_ERR_FORMAT, "tensor %s: %s with %d dims, want %s with 2", name, tm_dtype_name(t->dtype),
                        t->ndim, tm_dtype_name(dtype));
    return TM_OK;
}

tm_status tmi_awq_find(const tm_weights *src, const char *prefix, tm_tensor_info *qw, tm_tensor_info *qz,
                       tm_tensor_info *sc, int64_t *out, int64_t *in, int32_t *group)
{
    char name[512];
    tm_status st;
    snprintf(name, sizeof name, "%s.qweight", prefix);
    if ((st = find2(src, name, TM_I32, qw))) return st;
    snprintf(name, sizeof name, "%s.qzeros", prefix);
    if ((st = find2(src, name, TM_I32, qz))) return st;
    snprintf(name, sizeof name, "%s.scales", prefix);
    if ((st = find2(src, name, TM_F16, sc))) return st;
    int64_t i = qw->shape[0], o = qw->shape[1] * 8, ng = sc->shape[0];
    if (sc->shape[1] != o || qz->shape[0] != ng || qz->shape[1] != qw->shape[1] || ng < 1 || i % ng)
        return tmi_fail(TM_ERR_FORMAT,
                        "%s: AutoAWQ shapes disagree: qweight [%lld, %lld], qzeros [%lld, %lld], scales [%lld, %lld]",
                        prefix, (long long)qw->shape[0], (long long)qw->shape[1], (long long)qz->shape[0],
                        (long long)qz->shape[1], (long long)sc->shape[0], (long long)sc->shape[1]);
    *out = o;
    *in = i;
    *group = (int32_t)(i / ng);
    return TM_OK;
}

tm_status tm_awq_dequantize(const tm_weights *src, const char *prefix, int64_t out, int64_t in, float *w)
{
    if (!src || !prefix || !w) return tmi_fail(TM_ERR_INVALID_ARG, "tm_awq_dequantize: NULL argument");
    tm_tensor_info qw, qz, sc;
    int64_t o_n, i_n;
    int32_t group;
    tm_status st = tmi_awq_find(src, prefix, &qw, &qz, &sc, &o_n, &i_n, &group);
    if (st) return st;
    if (o_n != out || i_n != in)
        return tmi_fail(TM_ERR_INVALID_ARG, "%s: the checkpoint is [%lld out][%lld in], the caller asked [%lld][%lld]",
                        prefix, (long long)o_n, (long long)i_n, (long long)out, (long long)in);
    const int32_t *q = qw.data, *z = qz.data;
    const uint16_t *s = sc.data;
    for (int64_t i = 0; i < in; i++) {
        int64_t gi = i / group;
        for (int64_t o = 0; o < out; o++) {
            int qv = tmi_awq_get(q + i * (out / 8), o), zv = tmi_awq_get(z + gi * (out / 8), o);
            w[o * in + i] = (float)(qv - zv) * tmi_f16_to_f32(s[gi * out + o]);
        }
    }
    return TM_OK;
}
