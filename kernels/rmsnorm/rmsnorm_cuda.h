// rmsnorm_cuda.h - the parts of rmsnorm_cuda.cu's float4 kernel that a kernel
// computing rmsnorm's output itself (the small-m GEMM, gemm.h's a_src) must repeat
// bit for bit: the kernel's shape for a row, the order of its sum of squares, and
// the scale.  Internal to the CUDA kernels.
#ifndef TMI_RMSNORM_CUDA_H
#define TMI_RMSNORM_CUDA_H

#include <stdint.h>

constexpr int kRmsMaxVec = 4;          // float4s a thread of the float4 kernel holds
constexpr int kRmsMaxVecThreads = 1024; // its largest block

// The float4 kernel's float4s a thread (1, 2 or 4) and its threads (a multiple of
// 32) for rows of d floats, or 0 when it cannot run: d % 4, ldx % 4, ldo % 4 and
// both row starts 16-byte aligned, d <= 4 * kRmsMaxVec * kRmsMaxVecThreads.
inline int tmi_rms_vec_plan(int64_t d, int64_t ldx, int64_t ldo, const void *x, const void *out, int *threads)
{
    if (d % 4 || ldx % 4 || ldo % 4 || (uintptr_t)x % 16 || (uintptr_t)out % 16) return 0;
    const int64_t d4 = d / 4;
    for (int v = 1; v <= kRmsMaxVec; v *= 2)
        if (d4 <= (int64_t)v * kRmsMaxVecThreads) {
            const int64_t t = (d4 + v - 1) / v;
            *threads = (int)((t + 31) / 32 * 32);
            return v;
        }
    return 0;
}

// The warp's sum, by xor shuffles (every lane gets the same bits: each step adds
// the same two values in either order).
__device__ __forceinline__ float tmi_rms_warp_sum(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// ss plus the squares of v, as explicit FMAs (no contraction left to the compiler).
__device__ __forceinline__ float tmi_rms_sq4(float ss, float4 v)
{
    return fmaf(v.w, v.w, fmaf(v.z, v.z, fmaf(v.y, v.y, fmaf(v.x, v.x, ss))));
}

// 1 / sqrt(mean + eps) from a row's sum of squares.
__device__ __forceinline__ float tmi_rms_scale_of(float total, int64_t d, float eps)
{
    return 1.0f / sqrtf(total / static_cast<float>(d) + eps);
}

// The float4 kernel's scale for row xr (d floats, 16-byte aligned) with `threads`
// threads of `vec` float4s (tmi_rms_vec_plan), computed by a block of any multiple
// of 32 threads: its warp w plays the kernel's warps w, w + warps, ...; part is 32
// shared floats plus one.  Every thread gets the scale; ends behind a barrier.
__device__ inline float tmi_rms_scale_as(const float *xr, int64_t d, float eps, int threads, int vec, float *part)
{
    constexpr int kHeld = 4; // float4s a thread loads before it sums any (one round trip to memory)
    const float4 *x4 = reinterpret_cast<const float4 *>(xr);
    const int64_t d4 = d / 4;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5, played = threads >> 5;
    const float4 zero = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if (vec == 1 && played <= kHeld * warps) { // the common case (d <= 4096 with 256 threads): loads first
        float4 v[kHeld];
#pragma unroll
        for (int q = 0; q < kHeld; q++) {
            const int w = warp + q * warps;
            const int64_t j = (int64_t)w * 32 + lane;
            v[q] = w < played && j < d4 ? x4[j] : zero;
        }
#pragma unroll
        for (int q = 0; q < kHeld; q++) {
            const float ss = tmi_rms_warp_sum(tmi_rms_sq4(0.0f, v[q])); // uniform in the warp
            if (lane == 0 && warp + q * warps < played) part[warp + q * warps] = ss;
        }
    } else {
        for (int w = warp; w < played; w += warps) {
            float ss = 0.0f;
            for (int k = 0; k < vec; k++) {
                const int64_t j = w * 32 + lane + (int64_t)k * threads;
                ss = tmi_rms_sq4(ss, j < d4 ? x4[j] : zero);
            }
            ss = tmi_rms_warp_sum(ss);
            if (lane == 0) part[w] = ss;
        }
    }
    __syncthreads();
    if (warp == 0) {
        const float t = tmi_rms_warp_sum(lane < played ? part[lane] : 0.0f);
        if (lane == 0) part[32] = tmi_rms_scale_of(t, d, eps);
    }
    __syncthreads();
    return part[32];
}

#endif
