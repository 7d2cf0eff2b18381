/* quantizer.h - internal helpers shared by the quantizer files and the converter.
 *
 * AutoAWQ GEMM layout (the checkpoint format, WQLinear_GEMM), for a linear of `in`
 * inputs and `out` outputs, group g along the inputs:
 *   qweight I32 [in][out / 8]      nibble p (bits 4p .. 4p+3) of word (i, c) holds
 *                                  output column 8c + AWQ_ORDER[p]
 *   qzeros  I32 [in / g][out / 8]  zero points, packed the same way
 *   scales  F16 [in / g][out]
 *   w[o][i] = (q[i][o] - z[i / g][o]) * s[i / g][o]
 * The engine layout is in kernels/gemm_w4a16/gemm_w4a16.h. */
#ifndef TMI_QUANTIZER_H
#define TMI_QUANTIZER_H

#include <stdint.h>

#include "tmrun.h"

/* AutoAWQ's order_map: nibble p holds column 8c + order[p]; and its inverse. */
extern const int tmi_awq_order[8];
extern const int tmi_awq_nibble_of[8];

/* The 4-bit value of column j of an AutoAWQ-packed row (qweight or qzeros). */
static inline int tmi_awq_get(const int32_t *row, int64_t j)
{
    return (int)(((uint32_t)row[j / 8] >> (4 * tmi_awq_nibble_of[j % 8])) & 15u);
}

static inline void tmi_awq_put(int32_t *row, int64_t j, int q)
{
    row[j / 8] = (int32_t)((uint32_t)row[j / 8] | ((uint32_t)(q & 15) << (4 * tmi_awq_nibble_of[j % 8])));
}

/* Group-wise asymmetric int4 of w [out][in] (AutoAWQ's pseudo-quantize): per
 * (o, group) min/max (after clamping to [-max_val, max_val] when max_val, [out][in/g],
 * is not NULL), scale = (max - min) / 15 rounded to fp16, zero = round(-min / scale)
 * in [0, 15], q = clamp(round(w / scale) + zero, 0, 15).  Any output may be NULL. */
void tmi_int4_quantize(const float *w, int64_t out, int64_t in, int32_t group, const float *max_val,
                       uint8_t *q /* [out][in] */, float *scales /* [out][in/g] */, float *zeros /* [out][in/g] */,
                       float *deq /* [out][in] */);

/* The three AutoAWQ tensors of prefix, shape-checked; out, in and group from the shapes.
 * Codes: TM_ERR_NOT_FOUND, TM_ERR_FORMAT. */
tm_status tmi_awq_find(const tm_weights *src, const char *prefix, tm_tensor_info *qweight, tm_tensor_info *qzeros,
                       tm_tensor_info *scales, int64_t *out, int64_t *in, int32_t *group);

#endif
