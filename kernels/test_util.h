/* test_util.h - what the CPU kernel tests (kernels/<op>/test_<op>.c) share.
 * Header-only, static functions. */
#ifndef TMI_TEST_UTIL_H
#define TMI_TEST_UTIL_H

#include <stdint.h>

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

#endif
