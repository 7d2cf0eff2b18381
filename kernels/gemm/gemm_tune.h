/* gemm_tune.h - the CUDA GEMM's handle (what ex->blas points to) and its kernel
 * choice by timing for decode shapes (gemm_tune_cuda.cu).  Internal to kernels/gemm. */
#ifndef TMI_GEMM_TUNE_H
#define TMI_GEMM_TUNE_H

#include "gemm.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tmi_gemm_handle tmi_gemm_handle;

tm_status tmi_gemm_handle_create(tmi_gemm_handle **h);
void tmi_gemm_handle_destroy(tmi_gemm_handle *h); /* NULL-safe */
/* Device scratch for cuBLAS and cuBLASLt (the caller's; graph capture needs one). */
tm_status tmi_gemm_handle_workspace(tmi_gemm_handle *h, void *ws, size_t bytes);
void *tmi_gemm_handle_blas(tmi_gemm_handle *h); /* its cublasHandle_t */
/* C = A x B (+ C) for validated args g with A given as (a, lda) in B's 16-bit dtype,
 * on ex->stream, by the kernel timed fastest for this shape: 1 when it ran, 0 when the
 * caller should run cublasGemmEx (not a tuned shape: m too large or not a power of
 * two, fp32, a stream
 * being captured when the shape is new, or $TMRUN_GEMM_TUNE=0), -1 when cuBLASLt
 * failed.  A new shape is timed only when ex->tune is set (the forward's decode steps:
 * a prefill's m is a prompt length, which would fill the table with shapes that
 * do not come back), and its timing writes a scratch C ([m][ldc] fp32) into
 * ex->workspace, which must then hold it (else the shape is not timed). */
int tmi_gemm_tuned_run(tmi_gemm_handle *h, const tmi_gemm_args *g, const void *a, int64_t lda, const tmi_exec *ex);

#ifdef __cplusplus
}
#endif

#endif
