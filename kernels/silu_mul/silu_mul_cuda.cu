// silu_mul_cuda.cu - the CUDA twin of silu_mul_cpu.c: a grid-stride loop over the
// n x d elements, silu(x) = x / (1 + exp(-x)) with the accurate expf, stored as
// fp32 or rounded once to the 16-bit dtype the down projection reads.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

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
                                O *out, int64_t ldo)
{
    const int64_t total = n * d, stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const int64_t i = idx / d, j = idx - i * d;
        const float g = gate[i * ldg + j];
        store(out + i * ldo + j, g / (1.0f + expf(-g)) * up[i * ldu + j]);
    }
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
    int64_t want = (a->n * a->d + kThreads - 1) / kThreads;
    unsigned blocks = static_cast<unsigned>(want < kMaxBlocks ? want : kMaxBlocks);
    cudaStream_t st = static_cast<cudaStream_t>(ex->stream);
    if (a->out_dtype == TM_F16)
        silu_mul_kernel<<<blocks, kThreads, 0, st>>>(a->n, a->d, a->gate, a->ldg, a->up, a->ldu,
                                                     static_cast<__half *>(a->out), a->ldo);
    else if (a->out_dtype == TM_BF16)
        silu_mul_kernel<<<blocks, kThreads, 0, st>>>(a->n, a->d, a->gate, a->ldg, a->up, a->ldu,
                                                     static_cast<__nv_bfloat16 *>(a->out), a->ldo);
    else
        silu_mul_kernel<<<blocks, kThreads, 0, st>>>(a->n, a->d, a->gate, a->ldg, a->up, a->ldu,
                                                     static_cast<float *>(a->out), a->ldo);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return tmi_fail(TM_ERR_DEVICE, "silu_mul_cuda: launch failed: %s", cudaGetErrorString(e));
    return TM_OK;
}
