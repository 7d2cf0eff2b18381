// gemm_cuda.cu - the CUDA twin of gemm_cpu.c through cuBLAS.
//
// Row-major C[m][n] = A[m][k] x B[k][n] is, read column-major, C^T = B^T x A^T,
// so one cublasGemmEx with the operands swapped and no transposes does it:
// (rows n, cols m, inner k; B with ldb, A with lda, C with ldc).  cuBLAS wants A
// and B of one type: for a 16-bit B, A is rounded to B's dtype into the
// workspace ([m][k], ld k) first.  Compute is CUBLAS_COMPUTE_32F with fp32 C
// (for an fp32 B that is plain fp32, not TF32: the handle's default math mode).
// accumulate is beta = 1; the bias is added by a small kernel afterwards, so the
// result is A x B + bias (+ old C) as on the CPU.  The fused QKV and gate/up
// projections are single calls here: their weights are one [k][n_fused] B.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

extern "C" {
#include "gemm.h"
}

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 1 << 16;

__device__ inline float load(const void *p, tm_dtype dt, int64_t i)
{
    if (dt == TM_F16) return __half2float(static_cast<const __half *>(p)[i]);
    if (dt == TM_BF16) return __uint_as_float((unsigned)static_cast<const unsigned short *>(p)[i] << 16);
    return static_cast<const float *>(p)[i];
}

// dst[m][k] (ld k) = A rounded to nearest even in B's 16-bit dtype.
template <class T>
__global__ void convert_a_kernel(int64_t m, int64_t k, const float *a, int64_t lda, T *dst);

template <>
__global__ void convert_a_kernel<__half>(int64_t m, int64_t k, const float *a, int64_t lda, __half *dst)
{
    const int64_t total = m * k, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const int64_t i = idx / k, j = idx - i * k;
        dst[idx] = __float2half_rn(a[i * lda + j]);
    }
}

template <>
__global__ void convert_a_kernel<__nv_bfloat16>(int64_t m, int64_t k, const float *a, int64_t lda, __nv_bfloat16 *dst)
{
    const int64_t total = m * k, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const int64_t i = idx / k, j = idx - i * k;
        dst[idx] = __float2bfloat16_rn(a[i * lda + j]);
    }
}

// C[i][j] = (keep ? C[i][j] : 0) + bias[j] (bias may be NULL: then keep is 0, k == 0).
__global__ void bias_kernel(int64_t m, int64_t n, const void *bias, tm_dtype bias_dtype, float *c, int64_t ldc, int keep)
{
    const int64_t total = m * n, stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const int64_t i = idx / n, j = idx - i * n;
        const float b = bias ? load(bias, bias_dtype, j) : 0.0f;
        float *cij = c + i * ldc + j;
        *cij = keep ? *cij + b : b;
    }
}

unsigned blocks_for(int64_t total)
{
    int64_t b = (total + kThreads - 1) / kThreads;
    return (unsigned)(b < kMaxBlocks ? b : kMaxBlocks);
}

const char *blas_status_name(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "cuBLAS error";
    }
}

tm_status gemm_check(const tmi_exec *ex, const tmi_gemm_args *a)
{
    if (a->m < 0 || a->n < 0 || a->k < 0)
        return tmi_fail(TM_ERR_INVALID_ARG, "gemm_cuda: m, n and k must be >= 0, got %lld, %lld, %lld", (long long)a->m,
                        (long long)a->n, (long long)a->k);
    if (a->m > INT32_MAX || a->n > INT32_MAX || a->k > INT32_MAX || a->lda > INT32_MAX || a->ldb > INT32_MAX ||
        a->ldc > INT32_MAX)
        return tmi_fail(TM_ERR_UNSUPPORTED, "gemm_cuda: m, n, k and the leading dimensions must fit in int32");
    if (a->m == 0 || a->n == 0) return TM_OK;
    if (!a->c) return tmi_fail(TM_ERR_INVALID_ARG, "gemm_cuda: c must not be NULL");
    if (a->ldc < a->n)
        return tmi_fail(TM_ERR_INVALID_ARG, "gemm_cuda: ldc must be >= n (%lld), got %lld", (long long)a->n,
                        (long long)a->ldc);
    if (a->bias && !tmi_is_float_dtype(a->bias_dtype))
        return tmi_fail(TM_ERR_INVALID_ARG, "gemm_cuda: bias dtype must be F32, F16 or BF16, got %s",
                        tm_dtype_name(a->bias_dtype));
    if (a->k == 0) return TM_OK;
    if (!a->a || !a->b) return tmi_fail(TM_ERR_INVALID_ARG, "gemm_cuda: a and b must not be NULL");
    if (a->lda < a->k || a->ldb < a->n)
        return tmi_fail(TM_ERR_INVALID_ARG, "gemm_cuda: lda must be >= k (%lld) and ldb >= n (%lld), got %lld, %lld",
                        (long long)a->k, (long long)a->n, (long long)a->lda, (long long)a->ldb);
    if (!tmi_is_float_dtype(a->b_dtype))
        return tmi_fail(TM_ERR_INVALID_ARG, "gemm_cuda: b dtype must be F32, F16 or BF16, got %s",
                        tm_dtype_name(a->b_dtype));
    if (!ex->blas) return tmi_fail(TM_ERR_INVALID_ARG, "gemm_cuda: ex->blas must be a cuBLAS handle");
    size_t need = tmi_gemm_cuda_workspace(a->m, a->k, a->b_dtype);
    if (need && (!ex->workspace || ex->workspace_bytes < need))
        return tmi_fail(TM_ERR_INVALID_ARG, "gemm_cuda: workspace must hold tmi_gemm_cuda_workspace() = %zu bytes, got %zu",
                        need, ex->workspace ? ex->workspace_bytes : (size_t)0);
    if (need && ((uintptr_t)ex->workspace & 15u))
        return tmi_fail(TM_ERR_INVALID_ARG, "gemm_cuda: workspace must be 16-byte aligned");
    return TM_OK;
}

// A x B into C (beta = accumulate), A converted first when B is 16-bit.
tm_status gemm_blas(const tmi_exec *ex, const tmi_gemm_args *a, cudaStream_t stream)
{
    cublasHandle_t h = static_cast<cublasHandle_t>(ex->blas);
    cublasStatus_t bs = cublasSetStream(h, stream);
    if (bs != CUBLAS_STATUS_SUCCESS) return tmi_fail(TM_ERR_DEVICE, "gemm_cuda: cublasSetStream: %s", blas_status_name(bs));
    const void *aop = a->a;
    int64_t lda = a->lda;
    cudaDataType_t type = CUDA_R_32F;
    if (a->b_dtype != TM_F32) {
        unsigned blocks = blocks_for(a->m * a->k);
        if (a->b_dtype == TM_F16) {
            convert_a_kernel<__half><<<blocks, kThreads, 0, stream>>>(a->m, a->k, a->a, a->lda,
                                                                      static_cast<__half *>(ex->workspace));
            type = CUDA_R_16F;
        } else {
            convert_a_kernel<__nv_bfloat16><<<blocks, kThreads, 0, stream>>>(
                a->m, a->k, a->a, a->lda, static_cast<__nv_bfloat16 *>(ex->workspace));
            type = CUDA_R_16BF;
        }
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) return tmi_fail(TM_ERR_DEVICE, "gemm_cuda: convert launch failed: %s", cudaGetErrorString(e));
        aop = ex->workspace;
        lda = a->k;
    }
    const float alpha = 1.0f, beta = a->accumulate ? 1.0f : 0.0f;
    bs = cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, (int)a->n, (int)a->m, (int)a->k, &alpha, a->b, type, (int)a->ldb,
                      aop, type, (int)lda, &beta, a->c, CUDA_R_32F, (int)a->ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (bs != CUBLAS_STATUS_SUCCESS)
        return tmi_fail(TM_ERR_DEVICE, "gemm_cuda: cublasGemmEx(m %lld, n %lld, k %lld, %s): %s", (long long)a->m,
                        (long long)a->n, (long long)a->k, tm_dtype_name(a->b_dtype), blas_status_name(bs));
    return TM_OK;
}

} // namespace

extern "C" size_t tmi_gemm_cuda_workspace(int64_t m, int64_t k, tm_dtype b_dtype)
{
    if (m <= 0 || k <= 0 || b_dtype == TM_F32) return 0;
    return (size_t)m * (size_t)k * 2;
}

extern "C" tm_status tmi_gemm_cuda_blas_create(void **blas)
{
    if (!blas) return tmi_fail(TM_ERR_INVALID_ARG, "gemm_cuda: blas must not be NULL");
    cublasHandle_t h = NULL;
    cublasStatus_t s = cublasCreate(&h);
    if (s != CUBLAS_STATUS_SUCCESS) return tmi_fail(TM_ERR_DEVICE, "cublasCreate: %s", blas_status_name(s));
    *blas = h;
    return TM_OK;
}

extern "C" void tmi_gemm_cuda_blas_destroy(void *blas)
{
    if (blas) cublasDestroy(static_cast<cublasHandle_t>(blas));
}

extern "C" tm_status tmi_gemm_cuda(const tmi_exec *ex, const tmi_gemm_args *a)
{
    if (!ex || !a) return tmi_fail(TM_ERR_INVALID_ARG, "gemm_cuda: exec and args must not be NULL");
    tm_status st = gemm_check(ex, a);
    if (st != TM_OK || a->m == 0 || a->n == 0) return st;
    cudaStream_t stream = static_cast<cudaStream_t>(ex->stream);
    if (a->k > 0 && (st = gemm_blas(ex, a, stream)) != TM_OK) return st;
    // k == 0 leaves only bias (+ old C); otherwise C already holds A x B (+ old C)
    int keep = a->k > 0 || a->accumulate;
    if (a->bias || a->k == 0) {
        bias_kernel<<<blocks_for(a->m * a->n), kThreads, 0, stream>>>(a->m, a->n, a->bias, a->bias_dtype, a->c, a->ldc,
                                                                     keep);
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) return tmi_fail(TM_ERR_DEVICE, "gemm_cuda: bias launch failed: %s", cudaGetErrorString(e));
    }
    return TM_OK;
}
