// vec_cuda.h - the element helpers the CUDA kernels share: four consecutive fp32
// values stored as one 16-byte float4, or rounded to nearest even as two 16-bit
// pairs (the float4 paths of rmsnorm and silu_mul; p aligned to the stored width),
// element i of an F32 / F16 / BF16 array as fp32 (exact), and a value as a store of
// it to such an array would leave it (what a fused consumer reads instead).
#ifndef TMI_VEC_CUDA_H
#define TMI_VEC_CUDA_H

#include <cuda_bf16.h>
#include <cuda_fp16.h>

extern "C" {
#include "common.h"
}

__device__ __forceinline__ float tmi_load_any(const void *p, tm_dtype dt, int64_t i)
{
    if (dt == TM_F16) return __half2float(static_cast<const __half *>(p)[i]);
    if (dt == TM_BF16) return __uint_as_float((unsigned)static_cast<const unsigned short *>(p)[i] << 16);
    return static_cast<const float *>(p)[i];
}

// v after a store to an array of dtype dt and a tmi_load_any of it: rounded to
// nearest even for F16 and BF16, itself for F32.
__device__ __forceinline__ float tmi_round_to(tm_dtype dt, float v)
{
    if (dt == TM_F16) return __half2float(__float2half_rn(v));
    if (dt == TM_BF16) return __bfloat162float(__float2bfloat16_rn(v));
    return v;
}

__device__ __forceinline__ void tmi_store4(float *p, float4 v) { *reinterpret_cast<float4 *>(p) = v; }

__device__ __forceinline__ void tmi_store4(__half *p, float4 v)
{
    __half2 *q = reinterpret_cast<__half2 *>(p);
    q[0] = __floats2half2_rn(v.x, v.y);
    q[1] = __floats2half2_rn(v.z, v.w);
}

__device__ __forceinline__ void tmi_store4(__nv_bfloat16 *p, float4 v)
{
    __nv_bfloat162 *q = reinterpret_cast<__nv_bfloat162 *>(p);
    q[0] = __floats2bfloat162_rn(v.x, v.y);
    q[1] = __floats2bfloat162_rn(v.z, v.w);
}

#endif
