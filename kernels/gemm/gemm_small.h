/* gemm_small.h - the CUDA small-m GEMM (gemm_small_cuda.cu), as gemm_cuda.cu
 * calls it.  Internal to kernels/gemm. */
#ifndef TMI_GEMM_SMALL_H
#define TMI_GEMM_SMALL_H

#include "gemm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when the small-m kernel can run these (already validated) args: a 16-bit B,
 * 16-byte aligned with ldb a multiple of 8, 1 <= m <= TMI_GEMM_SMALL_M_LIMIT, k >= 1. */
int tmi_gemm_small_fits(const tmi_gemm_args *a);
/* 1 when tmi_gemm_small_run computes A from an active a->a_src itself (m = 1, a
 * source it can repeat bit for bit, room for its partials past the source's inputs
 * in the workspace); 0: it runs the source's op first and reads A (tests). */
int tmi_gemm_small_fuses(const tmi_exec *ex, const tmi_gemm_args *a);
/* Runs a_src's op on ex->stream, writing A (gemm_cuda.cu): the paths that read A. */
tm_status tmi_gemm_run_a_src(const tmi_exec *ex, const tmi_gemm_a_src *src);
/* Upper bound of the partial-sum bytes it takes from the workspace, any n and k. */
size_t tmi_gemm_small_workspace(int64_t m);
/* C = A x B (+ bias) (+ C) on ex->stream; args fit (above), the workspace holds
 * tmi_gemm_small_workspace(m) bytes or the need of this shape, which it checks.
 * An active a->a_src (checked) it fuses, or runs first. */
tm_status tmi_gemm_small_run(const tmi_exec *ex, const tmi_gemm_args *a);

#ifdef __cplusplus
}
#endif

#endif
