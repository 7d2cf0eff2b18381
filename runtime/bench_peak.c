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

/* PEAK_CHAINS independent FMA chains: more than latency x pipes, so the loop is
 * throughput-bound; the sink keeps the compiler from removing it. */
static void *peak_thread(void *arg)
{
    peak_job *job = arg;
    v8f acc[PEAK_CHAINS];
    v8f a = {1.0000001f, 1.0000001f, 1.0000001f, 1.0000001f, 1.0000001f, 1.0000001f, 1.0000001f, 1.0000001f};
    v8f b = {1e-7f, 1e-7f, 1e-7f, 1e-7f, 1e-7f, 1e-7f, 1e-7f, 1e-7f};
    for (int c = 0; c < PEAK_CHAINS; c++) acc[c] = b * (float)c;
    double t0 = now_s();
    for (long i = 0; i < PEAK_ITERS; i++) {
        for (int c = 0; c < PEAK_CHAINS; c++) acc[c] = acc[c] * a + b;
        __asm__ volatile("" : "+x"(acc[0]), "+x"(acc[1]), "+x"(acc[2]), "+x"(acc[3]));
    }
    job->seconds = now_s() - t0;
    float s = 0;
    for (int c = 0; c < PEAK_CHAINS; c++)
        for (int l = 0; l < 8; l++) s += acc[c][l];
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
