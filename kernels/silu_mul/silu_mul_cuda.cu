// silu_mul_cuda.cu - the CUDA twin of silu_mul_cpu.c: a grid-stride loop over the
// n x d elements, silu(x) = x / (1 + exp(-x)) with the accurate expf, stored as
// fp32 or rounded once to the 16-bit dtype the down projection reads.  Rows whose
// widths and addresses allow it go four elements a thread as float4s.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include "../pdl_cuda.h"
#include "../split_sums_cuda.h"
#include "../vec_cuda.h"
#include "silu_mul_cuda.h"

extern "C" {
#include "silu_mul.h"
}

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 1 << 16;

__device__ inline void store(float *p, float v) { *p = v; }
__device__ inline void store(__half *p, float v) { *p = __float2half_rn(v); }
__device__ inline void store(__nv_bfloat16 *p, float v) { *p = __float2bfloat16_rn(v); }

template <class O>
__global__ void silu_mul_kernel(int64_t n, int64_t d, const float *gate, int64_t ldg, const float *up, int64_t ldu,
                                O *out, int64_t ldo, tmi_split_sums S)
{
    tmi_pdl_trigger(); // the down projection may start streaming its weights
    tmi_pdl_wait();    // gate and up (or their split sums) are the kernel before's
    const int64_t total = n * d, stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const int64_t i = idx / d, j = idx - i * d;
        const float *const at[2] = {gate + i * ldg + j, up + i * ldu + j};
        float gu[2];
        tmi_sums_read_n<2>(S, at, i, gu);
        store(out + i * ldo + j, tmi_silu_times(gu[0], gu[1]));
    }
}

// Four consecutive elements a thread, as float4s: d, ldg, ldu, ldo multiples of 4,
// the three buffers 16-byte aligned.  The same arithmetic as silu_mul_kernel.
template <class O>
__global__ void silu_mul_vec_kernel(int64_t n, int64_t d, const float *gate, int64_t ldg, const float *up,
                                    int64_t ldu, O *out, int64_t ldo)
{
    tmi_pdl_trigger(); // the down projection may start streaming its weights
    tmi_pdl_wait();    // gate and up are the kernel before's
    const int64_t d4 = d / 4, total = n * d4, stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const int64_t i = idx / d4, j = 4 * (idx - i * d4);
        const float4 g = *reinterpret_cast<const float4 *>(gate + i * ldg + j);
        const float4 u = *reinterpret_cast<const float4 *>(up + i * ldu + j);
        tmi_store4(out + i * ldo + j, make_float4(tmi_silu_times(g.x, u.x), tmi_silu_times(g.y, u.y),
                                                  tmi_silu_times(g.z, u.z), tmi_silu_times(g.w, u.w)));
    }
}

bool vec_ok(const tmi_silu_mul_args *a)
{
    return a->d % 4 == 0 && a->ldg % 4 == 0 && a->ldu % 4 == 0 && a->ldo % 4 == 0 && (uintptr_t)a->gate % 16 == 0 &&
           (uintptr_t)a->up % 16 == 0 && (uintptr_t)a->out % 16 == 0;
}

template <class O> cudaError_t launch(const tmi_silu_mul_args *a, O *out, cudaStream_t st)
{
    const bool vec = vec_ok(a) && !tmi_sums_active(a->sums); // the split sums go element by element
    int64_t want = ((vec ? a->n * (a->d / 4) : a->n * a->d) + kThreads - 1) / kThreads;
    unsigned blocks = static_cast<unsigned>(want < kMaxBlocks ? want : kMaxBlocks);
    if (vec)
        return tmi_launch_pdl(silu_mul_vec_kernel<O>, blocks, kThreads, 0, st, a->n, a->d, a->gate, a->ldg, a->up,
                              a->ldu, out, a->ldo);
    return tmi_launch_pdl(silu_mul_kernel<O>, blocks, kThreads, 0, st, a->n, a->d, a->gate, a->ldg, a->up, a->ldu,
                          out, a->ldo, tmi_sums_value(a->sums));
}

} // namespace

extern "C" tm_status tmi_silu_mul_cuda(const tmi_exec *ex, const tmi_silu_mul_args *a)
{
    if (!ex || !a) return tmi_fail(TM_ERR_INVALID_ARG, "silu_mul_cuda: exec and args must not be NULL");
    if (a->n < 0 || a->d < 0)
        return tmi_fail(TM_ERR_INVALID_ARG, "silu_mul_cuda: n and d must be >= 0, got %lld, %lld", (long long)a->n,
                        (long long)a->d);
    if (a->n == 0 || a->d == 0) return TM_OK;
    if (!a->gate || !a->up || !a->out)
        return tmi_fail(TM_ERR_INVALID_ARG, "silu_mul_cuda: gate, up and out must not be NULL");
    if (a->ldg < a->d || a->ldu < a->d || a->ldo < a->d)
        return tmi_fail(TM_ERR_INVALID_ARG,
                        "silu_mul_cuda: ldg, ldu and ldo must be >= d (%lld), got %lld, %lld, %lld", (long long)a->d,
                        (long long)a->ldg, (long long)a->ldu, (long long)a->ldo);
    if (!tmi_is_float_dtype(a->out_dtype))
        return tmi_fail(TM_ERR_INVALID_ARG, "silu_mul_cuda: out dtype must be F32, F16 or BF16, got %s",
                        tm_dtype_name(a->out_dtype));
    tm_status cs = tmi_silu_mul_check_sums("silu_mul_cuda", a);
    if (cs != TM_OK) return cs;
    cudaStream_t st = static_cast<cudaStream_t>(ex->stream);
    cudaError_t e;
    if (a->out_dtype == TM_F16) e = launch(a, static_cast<__half *>(a->out), st);
    else if (a->out_dtype == TM_BF16) e = launch(a, static_cast<__nv_bfloat16 *>(a->out), st);
    else e = launch(a, static_cast<float *>(a->out), st);
    if (e != cudaSuccess) return tmi_fail(TM_ERR_DEVICE, "silu_mul_cuda: launch failed: %s", cudaGetErrorString(e));
    return TM_OK;
}
