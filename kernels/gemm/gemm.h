/* gemm.h - C = A x B (+ bias) (+ C when accumulate), fp32 accumulation.
 * The dense projection of every linear layer; B is a workspace weight in
 * [in][out] layout, so k is the input features and n the output features. */
#ifndef TMI_GEMM_H
#define TMI_GEMM_H

#include "../common.h"

typedef struct tmi_gemm_args {
    int64_t m, n, k;
    const float *a;   /* [m][lda], fp32; the first k columns are read */
    int64_t lda;
    const void *b;    /* [k][ldb], b_dtype in {F32, F16, BF16}; the first n columns */
    tm_dtype b_dtype;
    int64_t ldb;
    const void *bias; /* [n] of bias_dtype, or NULL */
    tm_dtype bias_dtype;
    float *c;         /* [m][ldc], fp32 */
    int64_t ldc;
    int accumulate;   /* 1: C += A x B (+ bias); 0: C = A x B (+ bias) */
} tmi_gemm_args;

/* Scratch bytes tmi_gemm_cpu needs for the given shape with `threads` workers. */
size_t tmi_gemm_cpu_workspace(int64_t m, int64_t n, int64_t k, int threads);
tm_status tmi_gemm_cpu(const tmi_exec *ex, const tmi_gemm_args *a);

/* CUDA twin: a, b, bias and c are device pointers; ex->blas is a cuBLAS handle
 * (made by tmi_gemm_cuda_blas_create), ex->stream the stream it runs on.  A 16-bit
 * B has A rounded to B's dtype in the workspace first (cuBLAS multiplies equal
 * operand types), so the 16-bit path differs from the CPU twin by that rounding. */
size_t tmi_gemm_cuda_workspace(int64_t m, int64_t k, tm_dtype b_dtype);
tm_status tmi_gemm_cuda(const tmi_exec *ex, const tmi_gemm_args *a);
/* A cuBLAS handle for ex->blas, and its release (NULL-safe). */
tm_status tmi_gemm_cuda_blas_create(void **blas);
void tmi_gemm_cuda_blas_destroy(void *blas);

#endif
