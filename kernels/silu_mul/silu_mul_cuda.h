// silu_mul_cuda.h - silu(g) * u as silu_mul_cuda.cu computes it, for the kernels that
// compute silu_mul's output instead of reading it (the small-m GEMM, gemm.h's a_src):
// one expression in one place, so the fused value is the bits the op would store.
#ifndef TMI_SILU_MUL_CUDA_H
#define TMI_SILU_MUL_CUDA_H

// silu(x) = x / (1 + exp(-x)) with the accurate expf, times u.
__device__ __forceinline__ float tmi_silu_times(float g, float u) { return g / (1.0f + expf(-g)) * u; }

#endif
