// vec_cuda.h - four consecutive fp32 values stored as one 16-byte float4, or rounded to
// nearest even as two 16-bit pairs: the float4 paths of the elementwise kernels
// (rmsnorm, silu_mul).  p must be aligned to the stored width.
#ifndef TMI_VEC_CUDA_H
#define TMI_VEC_CUDA_H

#include <cuda_bf16.h>
#include <cuda_fp16.h>

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
