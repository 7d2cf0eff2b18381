/* gemm_w4a16.h - C = A x dequant(Q) (+ bias) (+ C when accumulate), fp32 accumulation.
 *
 * The int4 linear of an AWQ workspace (weight_type = int4).  Engine layout, per
 * linear of k input and n output features, group g along the input features:
 *
 *   qweight      I32 [k / 8][n]      word (r, j) holds rows 8r .. 8r+7 of column j,
 *                                    row 8r + t in bits 4t .. 4t+3 (low nibble first)
 *   scales_zeros F16 [k / g][n][2]   (scale, zero point) of group (k / g, j)
 *
 *   w[i][j] = (q[i][j] - zero[i / g][j]) * scale[i / g][j]
 *
 * Packing along k makes one 32-bit load give 8 rows of one column, and one 256-bit
 * load give one row-octet of 8 consecutive columns, so the dequant vectorises along
 * n with plain shifts.  The weight is never expanded to a full fp copy: decode works
 * on it a group (GEMV) or a 32 x 64 tile (blocked) at a time. */
#ifndef TMI_GEMM_W4A16_H
#define TMI_GEMM_W4A16_H

#include "../common.h"

typedef struct tmi_gemm_w4a16_args {
    int64_t m, n, k;
    const float *a;                /* [m][lda], fp32; the first k columns are read */
    int64_t lda;
    const int32_t *qweight;        /* [k / 8][n] packed int4 (layout above) */
    const uint16_t *scales_zeros;  /* [k / group][n][2] fp16 (scale, zero) */
    int32_t group;                 /* 32, 64 or 128 (any multiple of 32 dividing k) */
    const void *bias;              /* [n] of bias_dtype, or NULL */
    tm_dtype bias_dtype;
    float *c;                      /* [m][ldc], fp32 */
    int64_t ldc;
    int accumulate;                /* 1: C += A x W (+ bias); 0: C = A x W (+ bias) */
} tmi_gemm_w4a16_args;

tm_status tmi_gemm_w4a16_cpu(const tmi_exec *ex, const tmi_gemm_w4a16_args *a);
/* The plain C reference of the same op (no SIMD), for tests and non-AVX2 builds. */
tm_status tmi_gemm_w4a16_cpu_scalar(const tmi_exec *ex, const tmi_gemm_w4a16_args *a);

#endif
