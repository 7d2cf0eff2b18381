// silu_mul_cuda.cu - the CUDA twin of silu_mul_cpu.c: a grid-stride loop over the
// n x d elements, silu(x) = x / (1 + exp(-x)) with the accurate expf.
#include <cuda_runtime.h>

extern "C" {
#include "silu_mul.h"
}

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 1 << 16;

__global__ void silu_mul_kernel(int64_t n, int64_t d, const float *gate, int64_t ldg, const float *up, int64_t ldu,
                                float *out, int64_t ldo)
{
    const int64_t total = n * d, stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const int64_t i = idx / d, j = idx - i * d;
        const float g = gate[i * ldg + j];
        out[i * ldo + j] = g / (1.0f + expf(-g)) * up[i * ldu + j];
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
    int64_t want = (a->n * a->d + kThreads - 1) / kThreads;
    unsigned blocks = static_cast<unsigned>(want < kMaxBlocks ? want : kMaxBlocks);
    silu_mul_kernel<<<blocks, kThreads, 0, static_cast<cudaStream_t>(ex->stream)>>>(a->n, a->d, a->gate, a->ldg, a->up,
                                                                                    a->ldu, a->out, a->ldo);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return tmi_fail(TM_ERR_DEVICE, "silu_mul_cuda: launch failed: %s", cudaGetErrorString(e));
    return TM_OK;
}
