/* bench.c - tm_bench_gemm_cpu: the CPU GEMM's speed on one shape.
 *
 * Builds its own pool, operands and workspace, runs once to warm caches and
 * wake the workers, then reports the best of `reps` timed runs. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <time.h>

#include "tmrun.h"
#include "error.h"
#include "threadpool.h"
#include "../kernels/gemm/gemm.h"

enum { BENCH_MAX_DIM = 1 << 16, BENCH_MAX_REPS = 100000 };

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Deterministic values in [-1, 1): the timing must not depend on the data. */
static void fill(float *x, int64_t n, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(s >> 40) / 8388608.0 - 1.0);
    }
}

static void *fill_b(int64_t k, int64_t n, tm_dtype dtype)
{
    size_t count = (size_t)(k * n);
    float *f = malloc(count * sizeof *f);
    if (!f) return NULL;
    fill(f, (int64_t)count, 2);
    if (dtype == TM_F32) return f;
    uint16_t *h = malloc(count * sizeof *h);
    if (h) {
        for (size_t i = 0; i < count; i++) h[i] = dtype == TM_F16 ? tmi_f32_to_f16(f[i]) : tmi_f32_to_bf16(f[i]);
    }
    free(f);
    return h;
}

tm_status tm_bench_gemm_cpu(int64_t m, int64_t n, int64_t k, tm_dtype dtype, int32_t num_threads, int32_t reps,
                            double *gflops)
{
    if (!gflops) return tmi_fail(TM_ERR_INVALID_ARG, "bench_gemm: gflops must not be NULL");
    if (m < 1 || n < 1 || k < 1 || m > BENCH_MAX_DIM || n > BENCH_MAX_DIM || k > BENCH_MAX_DIM)
        return tmi_fail(TM_ERR_INVALID_ARG, "bench_gemm: m, n, k must be in [1, %d], got %lld, %lld, %lld",
                        BENCH_MAX_DIM, (long long)m, (long long)n, (long long)k);
    if (!tmi_is_float_dtype(dtype))
        return tmi_fail(TM_ERR_INVALID_ARG, "bench_gemm: dtype must be F32, F16 or BF16, got %d", (int)dtype);
    if (reps < 1 || reps > BENCH_MAX_REPS)
        return tmi_fail(TM_ERR_INVALID_ARG, "bench_gemm: reps must be in [1, %d], got %d", BENCH_MAX_REPS, reps);
    if (num_threads < 0)
        return tmi_fail(TM_ERR_INVALID_ARG, "bench_gemm: num_threads must be >= 0, got %d", num_threads);

    tmi_pool *pool = NULL;
    tm_status st = tmi_pool_create(num_threads, &pool);
    if (st != TM_OK) return st;
    size_t ws_bytes = tmi_gemm_cpu_workspace(m, n, k, tmi_pool_threads(pool));
    float *a = malloc((size_t)(m * k) * sizeof *a); /* [m][k] fp32 */
    float *c = malloc((size_t)(m * n) * sizeof *c); /* [m][n] fp32 */
    void *b = fill_b(k, n, dtype);                  /* [k][n] dtype */
    void *ws = ws_bytes ? malloc(ws_bytes) : NULL;
    if (!a || !b || !c || (ws_bytes && !ws)) {
        st = tmi_fail(TM_ERR_NOMEM, "bench_gemm: out of memory for %lldx%lldx%lld", (long long)m, (long long)n,
                      (long long)k);
        goto done;
    }
    fill(a, m * k, 1);
    tmi_exec ex = {.backend = TM_BACKEND_CPU, .pool = pool, .workspace = ws, .workspace_bytes = ws_bytes};
    tmi_gemm_args g = {.m = m, .n = n, .k = k, .a = a, .lda = k, .b = b, .b_dtype = dtype, .ldb = n,
                       .c = c, .ldc = n};
    if ((st = tmi_gemm_cpu(&ex, &g)) != TM_OK) goto done;
    double best = 1e30;
    for (int32_t r = 0; r < reps; r++) {
        double t0 = now_s();
        tmi_gemm_cpu(&ex, &g);
        double t = now_s() - t0;
        if (t < best) best = t;
    }
    if (best < 1e-9) best = 1e-9; /* clock resolution on tiny shapes */
    *gflops = 2.0 * (double)m * (double)n * (double)k / best * 1e-9;
done:
    free(a);
    free(b);
    free(c);
    free(ws);
    tmi_pool_destroy(pool);
    return st;
}
