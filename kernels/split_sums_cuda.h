// split_sums_cuda.h - tmi_sums_at (common.h) on the device: the ops that finish a
// GEMM's deferred k-split sums (kv_write with RoPE, silu_mul, the small-m GEMM's silu
// source) read elements of C through this.  The order of the additions is small_m_reduce's (gemm_small_cuda.cu),
// so the value is the bits the GEMM would have written.
#ifndef TMI_SPLIT_SUMS_CUDA_H
#define TMI_SPLIT_SUMS_CUDA_H

#include "vec_cuda.h"

// The N elements at p[e], row i of s.c (s by value, a kernel parameter; splits == 0:
// the elements themselves).  The loads of up to 8 splits of all N go out before any
// of them is added (one round trip), and each sum is taken in split order.
template <int N>
__device__ __forceinline__ void tmi_sums_read_n(const tmi_split_sums &s, const float *const (&p)[N], int64_t i,
                                                float (&out)[N])
{
    if (s.splits <= 0) {
#pragma unroll
        for (int e = 0; e < N; e++) out[e] = *p[e];
        return;
    }
    int64_t j[N];
    float sum[N];
#pragma unroll
    for (int e = 0; e < N; e++) j[e] = (int64_t)(p[e] - s.c) - i * s.ldc, sum[e] = 0.0f;
    const float *part = s.part + i * s.n;
    const int64_t stride = s.m * s.n;
    for (int32_t k0 = 0; k0 < s.splits; k0 += 8) {
        float v[8][N];
#pragma unroll
        for (int q = 0; q < 8; q++)
#pragma unroll
            for (int e = 0; e < N; e++) v[q][e] = k0 + q < s.splits ? part[(int64_t)(k0 + q) * stride + j[e]] : 0.0f;
#pragma unroll
        for (int q = 0; q < 8; q++)
#pragma unroll
            for (int e = 0; e < N; e++)
                if (k0 + q < s.splits) sum[e] += v[q][e];
    }
#pragma unroll
    for (int e = 0; e < N; e++) {
        float x = sum[e];
        if (s.bias) x += tmi_load_any(s.bias, s.bias_dtype, j[e]);
        out[e] = s.accumulate ? *p[e] + x : x;
    }
}

// s, or its inactive copy when p is NULL or inactive: what a kernel takes by value.
inline tmi_split_sums tmi_sums_value(const tmi_split_sums *p)
{
    tmi_split_sums s = {};
    if (p && p->splits > 0) s = *p;
    return s;
}

#endif
