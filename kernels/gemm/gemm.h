/* gemm.h - C = A x B (+ bias) (+ C when accumulate), fp32 accumulation.
 * The dense projection of every linear layer; B is a workspace weight in
 * [in][out] layout, so k is the input features and n the output features. */
#ifndef TMI_GEMM_H
#define TMI_GEMM_H

#include "../attention/attention.h"
#include "../common.h"
#include "../rmsnorm/rmsnorm.h"
#include "../silu_mul/silu_mul.h"

/* Where A comes from when the op that writes it has not run (tmi_gemm_args.a_src):
 * one of these ops' args, whose output is A (out == a, its out dtype == a_dtype,
 * ldo == lda, its rows == m, its width == k).  The GEMM either computes each
 * element of A itself as that op would store it (the CUDA small-m kernel at m = 1:
 * the op's kernel and its round trip through memory are saved), or runs the op
 * first and reads A.  A is written only in the second case, so nothing after the
 * GEMM may read it. */
struct tmi_gemm_args;

typedef enum tmi_gemm_a_kind {
    TMI_GEMM_A_SILU_MUL = 1, /* silu: silu_mul (silu_mul.h), with its gate/up GEMM's split sums */
    TMI_GEMM_A_RMSNORM,      /* norm: rmsnorm (rmsnorm.h) */
    TMI_GEMM_A_ATTN_MERGE    /* merge: the split-K merge a CUDA decode attention left (attention.h) */
} tmi_gemm_a_kind;

typedef struct tmi_gemm_a_src {
    tmi_gemm_a_kind kind;
    const tmi_silu_mul_args *silu;
    const tmi_rmsnorm_args *norm;
    const tmi_attn_merge *merge; /* nsplit == 0: nothing left, A is in memory */
} tmi_gemm_a_src;

/* 1 when src has something to compute (a merge with nsplit 0 has not). */
int tmi_gemm_a_src_active(const tmi_gemm_a_src *src);
/* TM_OK when g->a_src is NULL, inactive, or describes g's A (the rule above); op
 * names the caller in the message. */
tm_status tmi_gemm_check_a_src(const char *op, const struct tmi_gemm_args *g);

struct tmi_gemm_args {
    int64_t m, n, k;
    const void *a;    /* [m][lda], a_dtype; the first k columns are read */
    tm_dtype a_dtype; /* F32 (0, the default), or F16 / BF16 when equal to b_dtype */
    int64_t lda;
    const void *b;    /* [k][ldb], b_dtype in {F32, F16, BF16}; the first n columns */
    tm_dtype b_dtype;
    int64_t ldb;
    const void *bias; /* [n] of bias_dtype, or NULL */
    tm_dtype bias_dtype;
    float *c;         /* [m][ldc], fp32 */
    int64_t ldc;
    int accumulate;   /* 1: C += A x B (+ bias); 0: C = A x B (+ bias) */
    /* Optional, filled in: a path that splits k (the CUDA small-m kernel) leaves
     * the product as its partial sums in ex->workspace, described here, instead of
     * adding them up into C with a kernel of its own; the op that reads C next
     * finishes them (common.h), and C is left as it was.  Every other path writes C
     * and sets splits to 0.  The partials last until the workspace is next written. */
    tmi_split_sums *defer;
    /* Optional: A is the output of this op, not yet run (above); NULL: A is in memory. */
    const tmi_gemm_a_src *a_src;
};
typedef struct tmi_gemm_args tmi_gemm_args;

/* Scratch bytes tmi_gemm_cpu needs for the given shape with `threads` workers. */
size_t tmi_gemm_cpu_workspace(int64_t m, int64_t n, int64_t k, int threads);
tm_status tmi_gemm_cpu(const tmi_exec *ex, const tmi_gemm_args *a);

/* CUDA twin: a, b, bias and c are device pointers; ex->blas is the GEMM handle
 * (made by tmi_gemm_cuda_blas_create: cuBLAS, cuBLASLt and the kernels chosen for
 * decode shapes, gemm_tune_cuda.cu), ex->stream the stream it runs on.
 *
 * Two paths for a 16-bit B:
 *  - m <= the small-m cut (TMI_GEMM_SMALL_M_DEFAULT for an fp32 A,
 *    TMI_GEMM_SMALL_M_DEFAULT_A16 for a 16-bit one, or $TMRUN_GEMM_SMALL_M for
 *    both, read at each call: 0 never, 1 .. TMI_GEMM_SMALL_M_LIMIT up to that m): a
 *    bandwidth-bound kernel of its own (gemm_small_cuda.cu).  It reads A as given
 *    (fp32 or 16-bit), so it matches the CPU twin to fp32 summation order.  It
 *    needs B 16-byte aligned with ldb a multiple of 8; other B take cuBLAS.
 *  - otherwise cuBLAS: a 16-bit shape with m a power of two <= 512 that a decode step (ex->tune)
 *    brought runs the cuBLASLt kernel timed fastest for it the first time it came
 *    (gemm_tune_cuda.cu; $TMRUN_GEMM_TUNE=0: never), any other cublasGemmEx.
 *    cuBLAS multiplies equal operand types, so an fp32 A is
 *    first rounded to B's dtype in the workspace (and differs from the CPU twin
 *    by that rounding); a 16-bit A goes to cuBLAS as it is.
 * An fp32 B is always cuBLAS, in plain fp32 (not TF32).
 *
 * The workspace (16-byte aligned) holds the rounded A and the small-m kernel's
 * k-split partial sums.  Its size assumes an fp32 A (the larger need), does not
 * depend on n (the kernel caps its grid instead), and never decreases as m or k
 * grow, so one sized for the largest shape serves every smaller one. */
enum {
    TMI_GEMM_SMALL_M_DEFAULT = 1,     /* the cut for an fp32 A, from H200 timings: gemm_small_cuda.cu */
    TMI_GEMM_SMALL_M_DEFAULT_A16 = 1, /* and for a 16-bit A: in a 7B decode step (CUDA graphs) m = 1
                                         ran 4.23 ms a step against cuBLAS's 4.44, m = 4 lost */
    TMI_GEMM_SMALL_M_LIMIT = 16   /* the largest m the small-m kernel handles */
};
size_t tmi_gemm_cuda_workspace(int64_t m, int64_t k, tm_dtype b_dtype);
tm_status tmi_gemm_cuda(const tmi_exec *ex, const tmi_gemm_args *a);

/* Which CUDA path runs: AUTO is tmi_gemm_cuda's choice; BLAS forces cuBLAS;
 * SMALL_M forces the small-m kernel and fails with TM_ERR_UNSUPPORTED where it
 * cannot run (B not 16-bit, m > TMI_GEMM_SMALL_M_LIMIT, B misaligned).  For tests
 * and benchmarks. */
typedef enum tmi_gemm_path { TMI_GEMM_PATH_AUTO, TMI_GEMM_PATH_BLAS, TMI_GEMM_PATH_SMALL_M } tmi_gemm_path;
tm_status tmi_gemm_cuda_path(const tmi_exec *ex, const tmi_gemm_args *a, tmi_gemm_path path);

/* Benchmark: runs args[r % n_args] for r in [0, warmup + reps) on ex->stream (one
 * args per weight copy, so that B comes from DRAM and not from L2), times each of
 * the last reps with CUDA events, and returns the median in milliseconds.
 * Synchronises the stream.  n_args >= 1, reps in [1, 10000]. */
tm_status tmi_gemm_cuda_time(const tmi_exec *ex, const tmi_gemm_args *args, int n_args, tmi_gemm_path path,
                             int reps, double *median_ms);

/* The handle for ex->blas, and its release (NULL-safe).  _workspace gives the
 * handle device memory of the caller's for cuBLAS's and cuBLASLt's scratch, so that
 * they never allocate while a stream is captured into a CUDA graph. */
tm_status tmi_gemm_cuda_blas_create(void **blas);
tm_status tmi_gemm_cuda_blas_workspace(void *blas, void *workspace, size_t bytes);
/* Workspace bytes that let every decode shape of up to max_m rows and max_n columns
 * (ldc) be timed: its scratch C.  A smaller workspace only leaves larger shapes to
 * cublasGemmEx. */
size_t tmi_gemm_cuda_tune_workspace(int64_t max_m, int64_t max_n);
/* How many shapes the handle has timed its kernels for (tests). */
int tmi_gemm_cuda_timed_shapes(const void *blas);
void tmi_gemm_cuda_blas_destroy(void *blas);

#endif
