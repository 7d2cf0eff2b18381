/* test_util.h - what the CPU kernel tests (kernels/<op>/test_<op>.c) share.
 * Header-only, static functions. */
#ifndef TMI_TEST_UTIL_H
#define TMI_TEST_UTIL_H

#include <math.h>
#include <stdint.h>

#include "harness.h"
#include "kernels/common.h"

/* Elements of a 16-bit output got [rows][ld] (F16 or BF16) that are not ref
 * [rows][cols] (fp32, dense) rounded once to dt, plus the padding columns
 * [cols, ld) that are no longer the 0xffff poison.  0 means bit-identical. */
static inline int64_t tt_rounding_mismatches(const uint16_t *got, int64_t ld, const float *ref, tm_dtype dt,
                                             int64_t rows, int64_t cols)
{
    int64_t bad = 0;
    for (int64_t i = 0; i < rows; i++) {
        for (int64_t j = 0; j < cols; j++) {
            float r = ref[i * cols + j];
            bad += got[i * ld + j] != (dt == TM_F16 ? tmi_f32_to_f16(r) : tmi_f32_to_bf16(r));
        }
        for (int64_t j = cols; j < ld; j++) bad += got[i * ld + j] != 0xffff;
    }
    return bad;
}

/* Static KV params from the data, per kv head over n_rows rows of k ([n_rows][ldk]) and
 * v ([n_rows][ldv]), head g at g * head_dim: zero point (min + max) / 2 and scale coverage * (max - min)
 * / (2^bits - 1), into qp[4][n_kv_head] (k scale, k zp, v scale, v zp).  coverage 1
 * is what kv_qparams.lua computes; below 1 the tails clamp. */
static inline void tt_kv_static_params(const float *k, int64_t ldk, const float *v, int64_t ldv, int32_t n_rows,
                                       int32_t n_kv_head, int32_t head_dim, int bits, float coverage, float *qp)
{
    for (int32_t g = 0; g < n_kv_head; g++)
        for (int isv = 0; isv < 2; isv++) {
            const float *x = isv ? v : k;
            const int64_t ld = isv ? ldv : ldk;
            float mn = INFINITY, mx = -INFINITY;
            for (int32_t i = 0; i < n_rows; i++)
                for (int32_t e = 0; e < head_dim; e++) {
                    float y = x[i * ld + (int64_t)g * head_dim + e];
                    mn = y < mn ? y : mn;
                    mx = y > mx ? y : mx;
                }
            qp[2 * isv * n_kv_head + g] = coverage * (mx - mn) / (float)((1 << bits) - 1);
            qp[(2 * isv + 1) * n_kv_head + g] = 0.5f * (mn + mx);
        }
}

/* Random k-split partials part [splits][m][n] of a product, and the C [m][ldc] they
 * stand for: summed in split order, then + bias[j] (fp32, or NULL), common.h's
 * order; the padding columns of C stay as they are. */
static inline void tt_split_sums_fill(float *part, int32_t splits, int64_t m, int64_t n, const float *bias, float *c,
                                      int64_t ldc, unsigned long long seed)
{
    tt_fill_random(part, (long)(splits * m * n), seed);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            float sum = 0.0f;
            for (int32_t k = 0; k < splits; k++) sum += part[((int64_t)k * m + i) * n + j];
            c[i * ldc + j] = bias ? sum + bias[j] : sum;
        }
}

#endif
