// split_sums_cuda.h - tmi_sums_at (common.h) on the device: the ops that finish a
// GEMM's deferred k-split sums (kv_write with RoPE, silu_mul) read an element of C
// through this.  The order of the additions is small_m_reduce's (gemm_small_cuda.cu),
// so the value is the bits the GEMM would have written.
#ifndef TMI_SPLIT_SUMS_CUDA_H
#define TMI_SPLIT_SUMS_CUDA_H

#include "vec_cuda.h"

// s by value (kernel parameter); splits == 0: the element itself.
__device__ inline float tmi_sums_read(const tmi_split_sums &s, const float *p, int64_t i)
{
    if (s.splits <= 0) return *p;
    const int64_t j = (int64_t)(p - s.c) - i * s.ldc;
    float sum = 0.0f;
    for (int32_t k = 0; k < s.splits; k++) sum += s.part[((int64_t)k * s.m + i) * s.n + j];
    if (s.bias) sum += tmi_load_any(s.bias, s.bias_dtype, j);
    return s.accumulate ? *p + sum : sum;
}

// s, or its inactive copy when p is NULL or inactive: what a kernel takes by value.
inline tmi_split_sums tmi_sums_value(const tmi_split_sums *p)
{
    tmi_split_sums s = {};
    if (p && p->splits > 0) s = *p;
    return s;
}

#endif
