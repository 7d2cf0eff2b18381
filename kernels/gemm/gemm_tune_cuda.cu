// gemm_tune_cuda.cu - the handle behind ex->blas (gemm_tune.h), and cuBLASLt kernels
// chosen by timing for the decode shapes.
//
// cuBLAS picks a kernel for a shape by heuristic.  For the skinny products of a
// decode step (m = the batch, n and k the model's) the pick is often not the
// fastest one it has: on the H200 at m = 64 its o projection ran at 2.4 TB/s and the
// split-k down projection at 3.0.  So the first time a decode step (ex->tune) brings
// a 16-bit shape with m <= kMaxM outside a graph capture, the candidates cuBLASLt's heuristic offers
// (kCandidates of them) and cublasGemmEx's own pick are each timed on the real
// operands, writing into a scratch copy of C in the caller's workspace (a shape
// whose C does not fit there is not timed), and the fastest is kept for the shape:
// every later call of that shape, eager or captured, runs it.  A shape first seen
// while a stream is being captured, or past kMaxShapes, keeps cublasGemmEx.  The
// timing stalls its step by a few milliseconds a shape (some 25 ms for a 7B step's
// five), so only m that are powers of two are timed: a server's batch takes every
// size from 1 to max_batch as requests come and go, and timing each would stall the
// first step of each (the benchmark's first tokens showed it at batch 128 and 256,
// where requests joined over several steps).  Other m keep cublasGemmEx.
//
// Different kernels sum k in different orders, so a shape's result can change in
// the last bits from one process to the next (the choice is by timing); within a
// process it is fixed.  $TMRUN_GEMM_TUNE=0 turns the choice off (cublasGemmEx only).
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "gemm_tune.h"
}

namespace {

constexpr int kCandidates = 8;
constexpr int kMaxShapes = 256;
constexpr int64_t kMaxM = 512;
constexpr int kTimedRuns = 5;

struct Shape {
    int64_t m, n, k, lda, ldb, ldc;
    cudaDataType_t type;
    int beta1;
    int lt; // 1: the cuBLASLt algo below; 0: cublasGemmEx was fastest (or Lt has none)
    cublasLtMatmulAlgo_t algo;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, lc; // cuBLASLt's A (our B), B (our A), C = D
};

} // namespace

struct tmi_gemm_handle {
    cublasHandle_t blas;
    cublasLtHandle_t lt;
    cudaEvent_t e0, e1; // the timing's
    void *ws;
    size_t ws_bytes;
    int n_shapes;
    Shape shapes[kMaxShapes];
};

namespace {

void free_shape(Shape *s)
{
    if (s->op) cublasLtMatmulDescDestroy(s->op);
    if (s->la) cublasLtMatrixLayoutDestroy(s->la);
    if (s->lb) cublasLtMatrixLayoutDestroy(s->lb);
    if (s->lc) cublasLtMatrixLayoutDestroy(s->lc);
}

bool tuning_on()
{
    const char *env = getenv("TMRUN_GEMM_TUNE");
    return !(env && strcmp(env, "0") == 0);
}

// Row-major C[m][n] = A[m][k] B[k][n] is column-major C^T = B^T A^T: cuBLASLt's A is
// our B (n x k, ld ldb), its B our A (k x m, ld lda), C and D (n x m, ld ldc) fp32.
bool make_descs(Shape *s)
{
    cublasStatus_t st = cublasLtMatmulDescCreate(&s->op, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatrixLayoutCreate(&s->la, s->type, s->n, s->k, s->ldb);
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatrixLayoutCreate(&s->lb, s->type, s->k, s->m, s->lda);
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatrixLayoutCreate(&s->lc, CUDA_R_32F, s->n, s->m, s->ldc);
    return st == CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t run_lt(tmi_gemm_handle *h, const Shape *s, const cublasLtMatmulAlgo_t *algo, const void *a,
                      const void *b, const float *c, float *d, cudaStream_t stream)
{
    const float alpha = 1.0f, beta = s->beta1 ? 1.0f : 0.0f;
    return cublasLtMatmul(h->lt, s->op, &alpha, b, s->la, a, s->lb, &beta, c, s->lc, d, s->lc, algo, h->ws, h->ws_bytes,
                          stream);
}

cublasStatus_t run_ex(tmi_gemm_handle *h, const Shape *s, const void *a, const void *b, float *c)
{
    const float alpha = 1.0f, beta = s->beta1 ? 1.0f : 0.0f;
    return cublasGemmEx(h->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)s->n, (int)s->m, (int)s->k, &alpha, b, s->type,
                        (int)s->ldb, a, s->type, (int)s->lda, &beta, c, CUDA_R_32F, (int)s->ldc, CUBLAS_COMPUTE_32F,
                        CUBLAS_GEMM_DEFAULT);
}

// Milliseconds of kTimedRuns runs of one candidate (algo NULL: cublasGemmEx) into
// scratch, which starts as a copy of C; -1 when it fails.
float time_candidate(tmi_gemm_handle *h, const Shape *s, const cublasLtMatmulAlgo_t *algo, const void *a,
                     const void *b, const float *c, float *scratch, cudaEvent_t e0, cudaEvent_t e1,
                     cudaStream_t stream)
{
    size_t bytes = (size_t)s->m * s->ldc * sizeof(float);
    if (cudaMemcpyAsync(scratch, c, bytes, cudaMemcpyDeviceToDevice, stream) != cudaSuccess) return -1.0f;
    for (int r = -1; r < kTimedRuns; r++) { // r = -1: the warm-up
        if (r == 0) cudaEventRecord(e0, stream);
        // scratch as both C and D keeps the real C untouched; with beta 1 it grows run
        // after run, which costs the same time
        cublasStatus_t st = algo ? run_lt(h, s, algo, a, b, scratch, scratch, stream) : run_ex(h, s, a, b, scratch);
        if (st != CUBLAS_STATUS_SUCCESS) return -1.0f;
    }
    cudaEventRecord(e1, stream);
    float ms = -1.0f;
    if (cudaEventSynchronize(e1) != cudaSuccess || cudaEventElapsedTime(&ms, e0, e1) != cudaSuccess) return -1.0f;
    return ms;
}

// Times the candidates for s (descs made) into scratch ([m][ldc] fp32, the caller's
// workspace) and sets s->lt / s->algo.  Any failure leaves cublasGemmEx, the safe
// choice, and clears the error it left.
void choose(tmi_gemm_handle *h, Shape *s, const void *a, const void *b, const float *c, float *scratch,
            cudaStream_t stream)
{
    s->lt = 0;
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t res[kCandidates];
    int found = 0;
    size_t ws = h->ws_bytes;
    if (cublasLtMatmulPreferenceCreate(&pref) != CUBLAS_STATUS_SUCCESS) return;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(h->lt, s->op, s->la, s->lb, s->lc, s->lc, pref, kCandidates,
                                                       res, &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS || found <= 0) return;
    float best = time_candidate(h, s, NULL, a, b, c, scratch, h->e0, h->e1, stream);
    for (int i = 0; i < found; i++) {
        if (res[i].state != CUBLAS_STATUS_SUCCESS) continue;
        float t = time_candidate(h, s, &res[i].algo, a, b, c, scratch, h->e0, h->e1, stream);
        if (t > 0.0f && (best < 0.0f || t < best)) {
            best = t;
            s->lt = 1;
            s->algo = res[i].algo;
        }
    }
    cudaStreamSynchronize(stream);
    cudaGetLastError();
}

} // namespace

extern "C" tm_status tmi_gemm_handle_create(tmi_gemm_handle **out)
{
    tmi_gemm_handle *h = static_cast<tmi_gemm_handle *>(calloc(1, sizeof *h));
    if (!h) return tmi_fail(TM_ERR_NOMEM, "gemm_cuda: out of memory");
    cublasStatus_t s = cublasCreate(&h->blas);
    if (s != CUBLAS_STATUS_SUCCESS) {
        free(h);
        return tmi_fail(TM_ERR_DEVICE, "cublasCreate failed (status %d)", (int)s);
    }
    if ((s = cublasLtCreate(&h->lt)) != CUBLAS_STATUS_SUCCESS) {
        cublasDestroy(h->blas);
        free(h);
        return tmi_fail(TM_ERR_DEVICE, "cublasLtCreate failed (status %d)", (int)s);
    }
    cudaError_t e = cudaEventCreate(&h->e0);
    if (e == cudaSuccess) e = cudaEventCreate(&h->e1);
    if (e != cudaSuccess) {
        cudaGetLastError();
        tmi_gemm_handle_destroy(h);
        return tmi_fail(TM_ERR_DEVICE, "gemm_cuda: cudaEventCreate: %s", cudaGetErrorString(e));
    }
    *out = h;
    return TM_OK;
}

extern "C" void tmi_gemm_handle_destroy(tmi_gemm_handle *h)
{
    if (!h) return;
    for (int i = 0; i < h->n_shapes; i++) free_shape(&h->shapes[i]);
    if (h->e0) cudaEventDestroy(h->e0);
    if (h->e1) cudaEventDestroy(h->e1);
    cublasLtDestroy(h->lt);
    cublasDestroy(h->blas);
    free(h);
}

extern "C" tm_status tmi_gemm_handle_workspace(tmi_gemm_handle *h, void *ws, size_t bytes)
{
    cublasStatus_t s = cublasSetWorkspace(h->blas, ws, bytes);
    if (s != CUBLAS_STATUS_SUCCESS) return tmi_fail(TM_ERR_DEVICE, "cublasSetWorkspace failed (status %d)", (int)s);
    h->ws = ws;
    h->ws_bytes = bytes;
    return TM_OK;
}

extern "C" void *tmi_gemm_handle_blas(tmi_gemm_handle *h) { return h->blas; }

extern "C" size_t tmi_gemm_cuda_tune_workspace(int64_t max_m, int64_t max_n)
{
    int64_t m = 1;
    while (m * 2 <= max_m && m * 2 <= kMaxM) m *= 2; // the largest m that is timed
    return max_m > 0 && max_n > 0 ? (size_t)m * (size_t)max_n * sizeof(float) : 0;
}

extern "C" int tmi_gemm_cuda_timed_shapes(const void *blas)
{
    return blas ? static_cast<const tmi_gemm_handle *>(blas)->n_shapes : 0;
}

extern "C" int tmi_gemm_tuned_run(tmi_gemm_handle *h, const tmi_gemm_args *g, const void *a, int64_t lda,
                                  const tmi_exec *ex)
{
    cudaStream_t stream = static_cast<cudaStream_t>(ex->stream);
    const size_t scratch_bytes = (size_t)g->m * g->ldc * sizeof(float);
    if (g->m > kMaxM || g->b_dtype == TM_F32 || g->a_dtype != g->b_dtype || !tuning_on()) return 0;
    const cudaDataType_t type = g->b_dtype == TM_F16 ? CUDA_R_16F : CUDA_R_16BF;
    const int beta1 = g->accumulate ? 1 : 0;
    Shape *s = NULL;
    for (int i = 0; i < h->n_shapes && !s; i++) {
        Shape *t = &h->shapes[i];
        if (t->m == g->m && t->n == g->n && t->k == g->k && t->lda == lda && t->ldb == g->ldb && t->ldc == g->ldc &&
            t->type == type && t->beta1 == beta1)
            s = t;
    }
    if (!s) {
        cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
        if (!ex->tune || (g->m & (g->m - 1)) || h->n_shapes >= kMaxShapes || !ex->workspace ||
            ex->workspace_bytes < scratch_bytes || cudaStreamIsCapturing(stream, &cap) != cudaSuccess ||
            cap != cudaStreamCaptureStatusNone) {
            cudaGetLastError();
            return 0;
        }
        s = &h->shapes[h->n_shapes++];
        memset(s, 0, sizeof *s);
        *s = Shape{g->m, g->n, g->k, lda, g->ldb, g->ldc, type, beta1, 0, {}, NULL, NULL, NULL, NULL};
        if (make_descs(s)) choose(h, s, a, g->b, g->c, static_cast<float *>(ex->workspace), stream);
    }
    if (!s->lt) return 0;
    return run_lt(h, s, &s->algo, a, g->b, g->c, g->c, stream) == CUBLAS_STATUS_SUCCESS ? 1 : -1;
}
