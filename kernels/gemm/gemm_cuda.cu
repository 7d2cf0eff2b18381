// gemm_cuda.cu - the CUDA twin of gemm_cpu.c: cuBLAS, and for a 16-bit B at
// small m the bandwidth-bound kernel of gemm_small_cuda.cu (gemm.h says when).
//
// Row-major C[m][n] = A[m][k] x B[k][n] is, read column-major, C^T = B^T x A^T,
// so one cublasGemmEx with the operands swapped and no transposes does it:
// (rows n, cols m, inner k; B with ldb, A with lda, C with ldc).  cuBLAS wants A
// and B of one type: for a 16-bit B and an fp32 A, A is rounded to B's dtype into
// the workspace ([m][k], ld k) first; a 16-bit A is passed as it is.  Compute is
// CUBLAS_COMPUTE_32F with fp32 C
// (for an fp32 B that is plain fp32, not TF32: the handle's default math mode).
// accumulate is beta = 1; the bias is added by a small kernel afterwards, so the
// result is A x B + bias (+ old C) as on the CPU.  The fused QKV and gate/up
// projections are single calls here: their weights are one [k][n_fused] B.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdlib.h>

#include "../vec_cuda.h"

extern "C" {
#include "gemm.h"
#include "gemm_small.h"
#include "gemm_tune.h"
}

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 1 << 16;

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
        const float b = bias ? tmi_load_any(bias, bias_dtype, j) : 0.0f;
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
    if (a->a_dtype != TM_F32 && a->a_dtype != a->b_dtype)
        return tmi_fail(TM_ERR_INVALID_ARG, "gemm_cuda: a dtype must be F32 or equal to b dtype (%s), got %s",
                        tm_dtype_name(a->b_dtype), tm_dtype_name(a->a_dtype));
    if (ex->workspace && ((uintptr_t)ex->workspace & 15u))
        return tmi_fail(TM_ERR_INVALID_ARG, "gemm_cuda: workspace must be 16-byte aligned");
    return TM_OK;
}

// The small-m cut: the default for A's dtype, or $TMRUN_GEMM_SMALL_M (read at every
// call, so the paths can be compared on one binary; 0 = cuBLAS always).
tm_status small_m_cut(tm_dtype a_dtype, int *cut)
{
    const char *env = getenv("TMRUN_GEMM_SMALL_M");
    *cut = a_dtype == TM_F32 ? TMI_GEMM_SMALL_M_DEFAULT : TMI_GEMM_SMALL_M_DEFAULT_A16;
    if (!env || !*env) return TM_OK;
    char *end = NULL;
    long v = strtol(env, &end, 10);
    if (*end || v < 0 || v > TMI_GEMM_SMALL_M_LIMIT)
        return tmi_fail(TM_ERR_INVALID_ARG, "TMRUN_GEMM_SMALL_M must be an integer in [0, %d], got \"%s\"",
                        (int)TMI_GEMM_SMALL_M_LIMIT, env);
    *cut = (int)v;
    return TM_OK;
}

// A x B into C (beta = accumulate), an fp32 A rounded first when B is 16-bit.
tm_status gemm_blas(const tmi_exec *ex, const tmi_gemm_args *a, cudaStream_t stream)
{
    if (!ex->blas) return tmi_fail(TM_ERR_INVALID_ARG, "gemm_cuda: ex->blas must come from tmi_gemm_cuda_blas_create");
    tmi_gemm_handle *gh = static_cast<tmi_gemm_handle *>(ex->blas);
    cublasHandle_t h = static_cast<cublasHandle_t>(tmi_gemm_handle_blas(gh));
    cublasStatus_t bs = cublasSetStream(h, stream);
    if (bs != CUBLAS_STATUS_SUCCESS) return tmi_fail(TM_ERR_DEVICE, "gemm_cuda: cublasSetStream: %s", blas_status_name(bs));
    const void *aop = a->a;
    int64_t lda = a->lda;
    cudaDataType_t type = a->b_dtype == TM_F16 ? CUDA_R_16F : a->b_dtype == TM_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    if (a->b_dtype != TM_F32 && a->a_dtype == TM_F32) {
        size_t need = (size_t)a->m * (size_t)a->k * 2;
        if (!ex->workspace || ex->workspace_bytes < need)
            return tmi_fail(TM_ERR_INVALID_ARG, "gemm_cuda: workspace must hold %zu bytes to round an fp32 A "
                            "(tmi_gemm_cuda_workspace), got %zu", need, ex->workspace ? ex->workspace_bytes : (size_t)0);
        unsigned blocks = blocks_for(a->m * a->k);
        const float *af = static_cast<const float *>(a->a);
        if (a->b_dtype == TM_F16)
            convert_a_kernel<__half><<<blocks, kThreads, 0, stream>>>(a->m, a->k, af, a->lda,
                                                                      static_cast<__half *>(ex->workspace));
        else
            convert_a_kernel<__nv_bfloat16><<<blocks, kThreads, 0, stream>>>(
                a->m, a->k, af, a->lda, static_cast<__nv_bfloat16 *>(ex->workspace));
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) return tmi_fail(TM_ERR_DEVICE, "gemm_cuda: convert launch failed: %s", cudaGetErrorString(e));
        aop = ex->workspace;
        lda = a->k;
    }
    int tuned = tmi_gemm_tuned_run(gh, a, aop, lda, ex);
    if (tuned < 0)
        return tmi_fail(TM_ERR_DEVICE, "gemm_cuda: cublasLtMatmul(m %lld, n %lld, k %lld) failed", (long long)a->m,
                        (long long)a->n, (long long)a->k);
    if (tuned) return TM_OK;
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
    size_t rounded_a = (size_t)m * (size_t)k * 2, partials = tmi_gemm_small_workspace(m);
    return rounded_a > partials ? rounded_a : partials;
}

extern "C" tm_status tmi_gemm_cuda_blas_create(void **blas)
{
    if (!blas) return tmi_fail(TM_ERR_INVALID_ARG, "gemm_cuda: blas must not be NULL");
    tmi_gemm_handle *h = NULL;
    tm_status st = tmi_gemm_handle_create(&h);
    *blas = st == TM_OK ? h : NULL;
    return st;
}

extern "C" tm_status tmi_gemm_cuda_blas_workspace(void *blas, void *workspace, size_t bytes)
{
    if (!blas || !workspace) return tmi_fail(TM_ERR_INVALID_ARG, "gemm_cuda: blas and workspace must not be NULL");
    return tmi_gemm_handle_workspace(static_cast<tmi_gemm_handle *>(blas), workspace, bytes);
}

extern "C" void tmi_gemm_cuda_blas_destroy(void *blas) { tmi_gemm_handle_destroy(static_cast<tmi_gemm_handle *>(blas)); }

extern "C" tm_status tmi_gemm_run_a_src(const tmi_exec *ex, const tmi_gemm_a_src *src)
{
    switch (src->kind) {
    case TMI_GEMM_A_SILU_MUL: return tmi_silu_mul_cuda(ex, src->silu);
    case TMI_GEMM_A_RMSNORM: return tmi_rmsnorm_cuda(ex, src->norm);
    default: return tmi_attention_cuda_merge(ex, src->merge);
    }
}

extern "C" tm_status tmi_gemm_cuda_path(const tmi_exec *ex, const tmi_gemm_args *a, tmi_gemm_path path)
{
    if (!ex || !a) return tmi_fail(TM_ERR_INVALID_ARG, "gemm_cuda: exec and args must not be NULL");
    if (a->defer) a->defer->splits = 0; // only the small-m kernel defers, and says so
    if (path != TMI_GEMM_PATH_AUTO && path != TMI_GEMM_PATH_BLAS && path != TMI_GEMM_PATH_SMALL_M)
        return tmi_fail(TM_ERR_INVALID_ARG, "gemm_cuda: path must be AUTO, BLAS or SMALL_M, got %d", (int)path);
    tm_status st = gemm_check(ex, a);
    if (st != TM_OK || a->m == 0 || a->n == 0) return st;
    int small = 0;
    if (path == TMI_GEMM_PATH_SMALL_M) {
        if (!tmi_gemm_small_fits(a))
            return tmi_fail(TM_ERR_UNSUPPORTED, "gemm_cuda: the small-m path needs a 16-bit B (16-byte aligned, ldb "
                            "a multiple of 8), 1 <= m <= %d and k >= 1; got m %lld, k %lld, %s B, ldb %lld",
                            (int)TMI_GEMM_SMALL_M_LIMIT, (long long)a->m, (long long)a->k, tm_dtype_name(a->b_dtype),
                            (long long)a->ldb);
        small = 1;
    } else if (path == TMI_GEMM_PATH_AUTO) {
        int cut = 0;
        if ((st = small_m_cut(a->a_dtype, &cut)) != TM_OK) return st;
        small = a->m <= cut && tmi_gemm_small_fits(a);
    }
    if ((st = tmi_gemm_check_a_src("gemm_cuda", a)) != TM_OK) return st;
    if (small) return tmi_gemm_small_run(ex, a); // bias, accumulate and a_src included
    tmi_gemm_args in_memory;
    if (tmi_gemm_a_src_active(a->a_src) && a->k > 0) { // cuBLAS reads A: the op writes it first
        if ((st = tmi_gemm_run_a_src(ex, a->a_src)) != TM_OK) return st;
        in_memory = *a;
        in_memory.a_src = NULL;
        a = &in_memory;
    }
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

extern "C" tm_status tmi_gemm_cuda(const tmi_exec *ex, const tmi_gemm_args *a)
{
    return tmi_gemm_cuda_path(ex, a, TMI_GEMM_PATH_AUTO);
}
