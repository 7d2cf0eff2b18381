// gemm_bench_cuda.cu - tmi_gemm_cuda_time: one path's device time on one shape,
// for cutest_gemm's CUTEST_BENCH mode (the .c tests include no CUDA header).
#include <cuda_runtime.h>
#include <stdlib.h>

extern "C" {
#include "gemm.h"
}

namespace {

constexpr int kWarmup = 5;
constexpr int kMaxReps = 10000;

int cmp_float(const void *x, const void *y)
{
    float a = *static_cast<const float *>(x), b = *static_cast<const float *>(y);
    return a < b ? -1 : a > b;
}

// Records ev[2r], the run, ev[2r + 1] for each timed run r; the events exist.
tm_status time_runs(const tmi_exec *ex, const tmi_gemm_args *args, int n_args, tmi_gemm_path path, int reps,
                    cudaEvent_t *ev, float *ms)
{
    cudaStream_t stream = static_cast<cudaStream_t>(ex->stream);
    tm_status st = TM_OK;
    for (int r = 0; r < kWarmup + reps && st == TM_OK; r++) {
        int timed = r >= kWarmup;
        cudaError_t e = timed ? cudaEventRecord(ev[2 * (r - kWarmup)], stream) : cudaSuccess;
        if (e == cudaSuccess) st = tmi_gemm_cuda_path(ex, &args[r % n_args], path);
        if (st == TM_OK && timed) e = cudaEventRecord(ev[2 * (r - kWarmup) + 1], stream);
        if (e != cudaSuccess) st = tmi_fail(TM_ERR_DEVICE, "gemm_time: cudaEventRecord: %s", cudaGetErrorString(e));
    }
    if (st != TM_OK) return st;
    cudaError_t e = cudaStreamSynchronize(stream);
    for (int r = 0; r < reps && e == cudaSuccess; r++) e = cudaEventElapsedTime(&ms[r], ev[2 * r], ev[2 * r + 1]);
    if (e != cudaSuccess) return tmi_fail(TM_ERR_DEVICE, "gemm_time: %s", cudaGetErrorString(e));
    return TM_OK;
}

} // namespace

extern "C" tm_status tmi_gemm_cuda_time(const tmi_exec *ex, const tmi_gemm_args *args, int n_args,
                                        tmi_gemm_path path, int reps, double *median_ms)
{
    if (!ex || !args || !median_ms) return tmi_fail(TM_ERR_INVALID_ARG, "gemm_time: ex, args and median_ms must not be NULL");
    if (n_args < 1 || reps < 1 || reps > kMaxReps)
        return tmi_fail(TM_ERR_INVALID_ARG, "gemm_time: n_args must be >= 1 and reps in [1, %d], got %d, %d", kMaxReps,
                        n_args, reps);
    cudaEvent_t *ev = static_cast<cudaEvent_t *>(calloc((size_t)reps * 2, sizeof *ev));
    float *ms = static_cast<float *>(malloc((size_t)reps * sizeof *ms));
    tm_status st = ev && ms ? TM_OK : tmi_fail(TM_ERR_NOMEM, "gemm_time: out of memory for %d runs", reps);
    int made = 0;
    for (; st == TM_OK && made < 2 * reps; made++) {
        cudaError_t e = cudaEventCreate(&ev[made]);
        if (e != cudaSuccess) st = tmi_fail(TM_ERR_DEVICE, "gemm_time: cudaEventCreate: %s", cudaGetErrorString(e));
    }
    if (st == TM_OK) st = time_runs(ex, args, n_args, path, reps, ev, ms);
    if (st == TM_OK) {
        qsort(ms, (size_t)reps, sizeof *ms, cmp_float);
        *median_ms = reps % 2 ? ms[reps / 2] : 0.5 * ((double)ms[reps / 2 - 1] + ms[reps / 2]);
    }
    for (int i = 0; ev && i < made; i++)
        if (ev[i]) cudaEventDestroy(ev[i]);
    free(ev);
    free(ms);
    return st;
}
