// embedding_cuda.cu - the CUDA twin of embedding_cpu.c: one block per token row
// (grid-stride over rows), threads over the row's d features, converted to fp32.
// An id outside [0, vocab) writes a NaN row (embedding.h says why).
#include <math.h>

#include <cuda_fp16.h>
#include <cuda_runtime.h>

extern "C" {
#include "embedding.h"
}

namespace {

constexpr int kMaxThreads = 256;
constexpr int64_t kMaxBlocks = 1 << 16;

__device__ inline float load(const float *p, int64_t i) { return p[i]; }
__device__ inline float load(const __half *p, int64_t i) { return __half2float(p[i]); }
__device__ inline float load(const unsigned short *p, int64_t i) { return __uint_as_float((unsigned)p[i] << 16); }

template <class T>
__global__ void embedding_kernel(int64_t n, const int32_t *ids, const T *table, int64_t vocab, int64_t d, float *out,
                                 int64_t ldo)
{
    for (int64_t t = blockIdx.x; t < n; t += gridDim.x) {
        const int32_t id = ids[t];
        float *o = out + t * ldo; // [d]
        if (id < 0 || id >= vocab) {
            for (int64_t j = threadIdx.x; j < d; j += blockDim.x) o[j] = NAN;
            continue;
        }
        const T *row = table + (int64_t)id * d;
        for (int64_t j = threadIdx.x; j < d; j += blockDim.x) o[j] = load(row, j);
    }
}

} // namespace

extern "C" tm_status tmi_embedding_cuda(const tmi_exec *ex, const tmi_embedding_args *a)
{
    if (!ex || !a) return tmi_fail(TM_ERR_INVALID_ARG, "embedding_cuda: exec and args must not be NULL");
    if (a->n < 0 || a->d < 0 || a->vocab < 0)
        return tmi_fail(TM_ERR_INVALID_ARG, "embedding_cuda: n, vocab and d must be >= 0, got %lld, %lld, %lld",
                        (long long)a->n, (long long)a->vocab, (long long)a->d);
    if (a->n == 0 || a->d == 0) return TM_OK;
    if (!a->ids || !a->table || !a->out)
        return tmi_fail(TM_ERR_INVALID_ARG, "embedding_cuda: ids, table and out must not be NULL");
    if (a->ldo < a->d)
        return tmi_fail(TM_ERR_INVALID_ARG, "embedding_cuda: ldo must be >= d (%lld), got %lld", (long long)a->d,
                        (long long)a->ldo);
    if (!tmi_is_float_dtype(a->dtype))
        return tmi_fail(TM_ERR_INVALID_ARG, "embedding_cuda: table dtype must be F32, F16 or BF16, got %s",
                        tm_dtype_name(a->dtype));
    int threads = a->d >= kMaxThreads ? kMaxThreads : (int)((a->d + 31) / 32 * 32);
    unsigned blocks = (unsigned)(a->n < kMaxBlocks ? a->n : kMaxBlocks);
    cudaStream_t stream = static_cast<cudaStream_t>(ex->stream);
    switch (a->dtype) {
    case TM_F16:
        embedding_kernel<<<blocks, threads, 0, stream>>>(a->n, a->ids, static_cast<const __half *>(a->table), a->vocab,
                                                         a->d, a->out, a->ldo);
        break;
    case TM_BF16:
        embedding_kernel<<<blocks, threads, 0, stream>>>(a->n, a->ids, static_cast<const unsigned short *>(a->table),
                                                         a->vocab, a->d, a->out, a->ldo);
        break;
    default:
        embedding_kernel<<<blocks, threads, 0, stream>>>(a->n, a->ids, static_cast<const float *>(a->table), a->vocab,
                                                         a->d, a->out, a->ldo);
        break;
    }
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return tmi_fail(TM_ERR_DEVICE, "embedding_cuda: launch failed: %s", cudaGetErrorString(e));
    return TM_OK;
}
