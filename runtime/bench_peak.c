/* bench_peak.c - tm_bench_fma_peak_cpu: what the cores can issue, the yardstick
 * for the GEMM numbers in docs/BENCHMARKS.md. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "error.h"

enum { PEAK_CHAINS = 12, PEAK_ITERS = 20000000 };

typedef float v8f __attribute__((vector_size(32)));

typedef struct peak_job {
    double seconds;
    float sink;
} peak_job;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* PEAK_CHAINS (12) independent FMA chains in registers: more than latency x pipes,
 * so the loop is throughput-bound; the empty asm keeps the compiler from folding
 * the chains, and the sink from removing them. */
static void *peak_thread(void *arg)
{
    peak_job *job = arg;
    v8f a = {1.0000001f, 1.0000001f, 1.0000001f, 1.0000001f, 1.0000001f, 1.0000001f, 1.0000001f, 1.0000001f};
    v8f b = {1e-7f, 1e-7f, 1e-7f, 1e-7f, 1e-7f, 1e-7f, 1e-7f, 1e-7f};
    v8f c0 = b, c1 = b * 2.0f, c2 = b * 3.0f, c3 = b * 4.0f, c4 = b * 5.0f, c5 = b * 6.0f;
    v8f c6 = b * 7.0f, c7 = b * 8.0f, c8 = b * 9.0f, c9 = b * 10.0f, c10 = b * 11.0f, c11 = b * 12.0f;
    double t0 = now_s();
    for (long i = 0; i < PEAK_ITERS; i++) {
        c0 = c0 * a + b; c1 = c1 * a + b; c2 = c2 * a + b; c3 = c3 * a + b;
        c4 = c4 * a + b; c5 = c5 * a + b; c6 = c6 * a + b; c7 = c7 * a + b;
        c8 = c8 * a + b; c9 = c9 * a + b; c10 = c10 * a + b; c11 = c11 * a + b;
        __asm__ volatile("" : "+x"(c0), "+x"(c1), "+x"(c2), "+x"(c3), "+x"(c4), "+x"(c5));
        __asm__ volatile("" : "+x"(c6), "+x"(c7), "+x"(c8), "+x"(c9), "+x"(c10), "+x"(c11));
    }
    job->seconds = now_s() - t0;
    v8f sum = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11;
    float s = 0;
    for (int l = 0; l < 8; l++) s += sum[l];
    job->sink = s;
    return NULL;
}

tm_status tm_bench_fma_peak_cpu(int32_t num_threads, double *gflops)
{
    if (!gflops) return tmi_fail(TM_ERR_INVALID_ARG, "tm_bench_fma_peak_cpu: gflops must not be NULL");
    if (num_threads == 0) num_threads = (int32_t)sysconf(_SC_NPROCESSORS_ONLN);
    if (num_threads < 1 || num_threads > 512)
        return tmi_fail(TM_ERR_INVALID_ARG, "num_threads must be in [1, 512] or 0, got %d", num_threads);
    pthread_t *th = calloc((size_t)num_threads, sizeof *th);
    peak_job *jobs = calloc((size_t)num_threads, sizeof *jobs);
    if (!th || !jobs) {
        free(th);
        free(jobs);
        return tmi_fail(TM_ERR_NOMEM, "tm_bench_fma_peak_cpu: out of memory");
    }
    int started = 0;
    for (int i = 0; i < num_threads; i++, started++)
        if (pthread_create(&th[i], NULL, peak_thread, &jobs[i]) != 0) break;
    double worst = 0;
    for (int i = 0; i < started; i++) {
        pthread_join(th[i], NULL);
        if (jobs[i].seconds > worst) worst = jobs[i].seconds;
    }
    free(th);
    free(jobs);
    if (started == 0 || worst <= 0) return tmi_fail(TM_ERR_NOMEM, "tm_bench_fma_peak_cpu: no thread started");
    /* each FMA lane is 2 flops */
    *gflops = (double)started * PEAK_ITERS * PEAK_CHAINS * 8 * 2 / worst / 1e9;
    return TM_OK;
}
