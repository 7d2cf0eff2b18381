// rmsnorm_cuda.cu - the CUDA twin of rmsnorm_cpu.c: one block per row (grid-stride
// over rows), sum of squares reduced by warp shuffles, then out = w * (x * r),
// stored as fp32 or rounded once to the 16-bit dtype the next GEMM reads.
//
// A decode step has few rows, so a row's latency is the kernel's: when x's rows
// are 16-byte aligned the row is read once, as float4s held in registers (up to
// kRmsMaxVec a thread, blocks of up to 1024 threads), which makes it one round trip
// to memory instead of d / blockDim dependent ones.  Other layouts take the
// plain loop.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include "../pdl_cuda.h"
#include "../vec_cuda.h"
#include "rmsnorm_cuda.h"

extern "C" {
#include "rmsnorm.h"
}

namespace {

constexpr int kMaxThreads = 256;
constexpr int64_t kMaxBlocks = 1 << 20;

struct WeightF32 {
    static __device__ float get(const void *w, int64_t i) { return static_cast<const float *>(w)[i]; }
};
struct WeightF16 {
    static __device__ float get(const void *w, int64_t i) { return __half2float(static_cast<const __half *>(w)[i]); }
};
struct WeightBF16 {
    static __device__ float get(const void *w, int64_t i)
    {
        return __uint_as_float(static_cast<unsigned>(static_cast<const unsigned short *>(w)[i]) << 16);
    }
};

__device__ inline void store(float *p, float v) { *p = v; }
__device__ inline void store(__half *p, float v) { *p = __float2half_rn(v); }
__device__ inline void store(__nv_bfloat16 *p, float v) { *p = __float2bfloat16_rn(v); }

constexpr int kMaxWarps = kRmsMaxVecThreads / 32;

// 1 / sqrt(mean + eps) of a row whose squares this thread summed into ss, for the
// whole block (partial: [kMaxWarps] shared scratch); ends behind a barrier, and the
// caller must pass one more before partial is used again.  With the float4 kernel's
// sums this is the order tmi_rms_scale_as (rmsnorm_cuda.h) repeats.
__device__ float block_rms_scale(float ss, int64_t d, float eps, float *partial)
{
    __shared__ float scale;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    ss = tmi_rms_warp_sum(ss);
    if (lane == 0) partial[warp] = ss;
    __syncthreads();
    if (warp == 0) {
        float t = tmi_rms_warp_sum(lane < n_warps ? partial[lane] : 0.0f);
        if (lane == 0) scale = tmi_rms_scale_of(t, d, eps);
    }
    __syncthreads();
    return scale;
}

// blockDim.x is a multiple of 32, at most kMaxThreads.
template <class W, class O>
__global__ void rmsnorm_kernel(int64_t n, int64_t d, const float *x, int64_t ldx, const void *w, float eps,
                               O *out, int64_t ldo)
{
    __shared__ float partial[kMaxWarps];
    tmi_pdl_trigger(); // the GEMM after it may start streaming its weights
    tmi_pdl_wait();    // x is the kernel before's
    for (int64_t row = blockIdx.x; row < n; row += gridDim.x) {
        const float *xr = x + row * ldx; // [d]
        float ss = 0.0f;
        for (int64_t j = threadIdx.x; j < d; j += blockDim.x) ss += xr[j] * xr[j];
        const float r = block_rms_scale(ss, d, eps, partial);
        O *orow = out + row * ldo; // [d], may be xr (fp32): every read of xr is behind the barrier
        for (int64_t j = threadIdx.x; j < d; j += blockDim.x) store(orow + j, W::get(w, j) * (xr[j] * r));
        __syncthreads(); // partial and scale are reused by the next row
    }
}

// d % 4 == 0, x and out rows 16-byte aligned (ldx, ldo multiples of 4), d <= 4 V blockDim.x.
template <class W, class O, int V>
__global__ void rmsnorm_vec_kernel(int64_t n, int64_t d, const float *x, int64_t ldx, const void *w, float eps,
                                   O *out, int64_t ldo)
{
    __shared__ float partial[kMaxWarps];
    tmi_pdl_trigger(); // the GEMM after it may start streaming its weights
    tmi_pdl_wait();    // x is the kernel before's
    const int64_t d4 = d / 4;
    for (int64_t row = blockIdx.x; row < n; row += gridDim.x) {
        const float4 *xr = reinterpret_cast<const float4 *>(x + row * ldx); // [d / 4]
        float4 v[V];
        float ss = 0.0f;
#pragma unroll
        for (int k = 0; k < V; k++) {
            const int64_t j = threadIdx.x + (int64_t)k * blockDim.x;
            v[k] = j < d4 ? xr[j] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            ss = tmi_rms_sq4(ss, v[k]);
        }
        const float r = block_rms_scale(ss, d, eps, partial);
        O *orow = out + row * ldo; // may be x's row (fp32): every read of it is in v
#pragma unroll
        for (int k = 0; k < V; k++) {
            const int64_t j = threadIdx.x + (int64_t)k * blockDim.x, e = 4 * j;
            if (j < d4)
                tmi_store4(orow + e, make_float4(W::get(w, e) * (v[k].x * r), W::get(w, e + 1) * (v[k].y * r),
                                                 W::get(w, e + 2) * (v[k].z * r), W::get(w, e + 3) * (v[k].w * r)));
        }
        __syncthreads(); // partial and scale are reused by the next row
    }
}

// The vector kernel's threads and float4s a thread for this call, or 0 when it cannot run.
int vec_plan(const tmi_rmsnorm_args *a, int *threads)
{
    return tmi_rms_vec_plan(a->d, a->ldx, a->ldo, a->x, a->out, threads);
}

template <class W, class O, int V>
cudaError_t launch_vec_v(const tmi_rmsnorm_args *a, O *out, unsigned blocks, int threads, cudaStream_t stream)
{
    return tmi_launch_pdl(rmsnorm_vec_kernel<W, O, V>, blocks, threads, 0, stream, a->n, a->d, a->x, a->ldx,
                          a->weight, a->eps, out, a->ldo);
}

template <class W, class O>
cudaError_t launch_w(const tmi_rmsnorm_args *a, O *out, unsigned blocks, int threads, cudaStream_t stream)
{
    int vthreads = 0, v = vec_plan(a, &vthreads);
    if (v == 1) return launch_vec_v<W, O, 1>(a, out, blocks, vthreads, stream);
    if (v == 2) return launch_vec_v<W, O, 2>(a, out, blocks, vthreads, stream);
    if (v == 4) return launch_vec_v<W, O, 4>(a, out, blocks, vthreads, stream);
    return tmi_launch_pdl(rmsnorm_kernel<W, O>, blocks, threads, 0, stream, a->n, a->d, a->x, a->ldx, a->weight,
                          a->eps, out, a->ldo);
}

template <class O>
cudaError_t launch(const tmi_rmsnorm_args *a, O *out, unsigned blocks, int threads, cudaStream_t stream)
{
    switch (a->w_dtype) {
    case TM_F16: return launch_w<WeightF16>(a, out, blocks, threads, stream);
    case TM_BF16: return launch_w<WeightBF16>(a, out, blocks, threads, stream);
    default: return launch_w<WeightF32>(a, out, blocks, threads, stream);
    }
}

} // namespace

extern "C" tm_status tmi_rmsnorm_cuda(const tmi_exec *ex, const tmi_rmsnorm_args *a)
{
    if (!ex || !a) return tmi_fail(TM_ERR_INVALID_ARG, "rmsnorm_cuda: exec and args must not be NULL");
    if (a->n < 0 || a->d < 0)
        return tmi_fail(TM_ERR_INVALID_ARG, "rmsnorm_cuda: n and d must be >= 0, got %lld, %lld", (long long)a->n,
                        (long long)a->d);
    if (a->n == 0 || a->d == 0) return TM_OK;
    if (!a->x || !a->out || !a->weight)
        return tmi_fail(TM_ERR_INVALID_ARG, "rmsnorm_cuda: x, weight and out must not be NULL");
    if (a->ldx < a->d || a->ldo < a->d)
        return tmi_fail(TM_ERR_INVALID_ARG, "rmsnorm_cuda: ldx and ldo must be >= d (%lld), got %lld, %lld",
                        (long long)a->d, (long long)a->ldx, (long long)a->ldo);
    if (!tmi_is_float_dtype(a->w_dtype))
        return tmi_fail(TM_ERR_INVALID_ARG, "rmsnorm_cuda: weight dtype must be F32, F16 or BF16, got %s",
                        tm_dtype_name(a->w_dtype));
    if (!tmi_is_float_dtype(a->out_dtype))
        return tmi_fail(TM_ERR_INVALID_ARG, "rmsnorm_cuda: out dtype must be F32, F16 or BF16, got %s",
                        tm_dtype_name(a->out_dtype));
    if (!(a->eps >= 0.0f))
        return tmi_fail(TM_ERR_INVALID_ARG, "rmsnorm_cuda: eps must be >= 0, got %g", (double)a->eps);
    int threads = a->d >= kMaxThreads ? kMaxThreads : static_cast<int>((a->d + 31) / 32 * 32);
    unsigned blocks = static_cast<unsigned>(a->n < kMaxBlocks ? a->n : kMaxBlocks);
    cudaStream_t stream = static_cast<cudaStream_t>(ex->stream);
    cudaError_t e;
    switch (a->out_dtype) {
    case TM_F16: e = launch(a, static_cast<__half *>(a->out), blocks, threads, stream); break;
    case TM_BF16: e = launch(a, static_cast<__nv_bfloat16 *>(a->out), blocks, threads, stream); break;
    default: e = launch(a, static_cast<float *>(a->out), blocks, threads, stream); break;
    }
    if (e != cudaSuccess) return tmi_fail(TM_ERR_DEVICE, "rmsnorm_cuda: launch failed: %s", cudaGetErrorString(e));
    return TM_OK;
}
