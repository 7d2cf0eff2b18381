/* test_threadpool.c - tmi_pool: every task index runs exactly once, on a valid
 * thread, over many back-to-back runs (the forward's pattern). */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "runtime/threadpool.h"

enum { MAX_TASKS = 4096 };

typedef struct count_ctx {
    atomic_int hits[MAX_TASKS];
    atomic_int bad_thread;
    int threads;
    int spin; /* busy work per task, to make tasks uneven */
} count_ctx;

static void count_task(void *p, int64_t i, int thread)
{
    count_ctx *c = p;
    atomic_fetch_add(&c->hits[i], 1);
    if (thread < 0 || thread >= c->threads) atomic_fetch_add(&c->bad_thread, 1);
    volatile int x = 0;
    for (int k = 0; k < c->spin * (int)(i % 7); k++) x += k;
}

/* Runs n tasks and checks each index ran once. */
static int run_and_check(tmi_pool *pool, count_ctx *c, int64_t n)
{
    for (int64_t i = 0; i < MAX_TASKS; i++) atomic_store(&c->hits[i], 0);
    tmi_pool_run(pool, count_task, c, n);
    int ok = 1;
    for (int64_t i = 0; i < MAX_TASKS; i++) ok &= atomic_load(&c->hits[i]) == (i < n ? 1 : 0);
    return ok && atomic_load(&c->bad_thread) == 0;
}

static void test_pool_create_args(void)
{
    tmi_pool *pool = NULL;
    CHECK_STATUS(tmi_pool_create(-1, &pool), TM_ERR_INVALID_ARG);
    CHECK(strstr(tm_last_error(), "[1, 512]") != NULL);
    CHECK_STATUS(tmi_pool_create(513, &pool), TM_ERR_INVALID_ARG);
    CHECK(pool == NULL);
    CHECK_STATUS(tmi_pool_create(0, &pool), TM_OK);
    CHECK(tmi_pool_threads(pool) >= 1);
    tmi_pool_destroy(pool);
    tmi_pool_destroy(NULL);
    CHECK(tmi_pool_threads(NULL) == 1);
}

static void test_pool_exact_once(void)
{
    static const int sizes[] = {1, 2, 3, 5, 8};
    static const int64_t ns[] = {0, 1, 2, 3, 7, 64, 1000, MAX_TASKS};
    count_ctx *c = calloc(1, sizeof *c);
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        tmi_pool *pool = NULL;
        if (!CHECK_STATUS(tmi_pool_create(sizes[s], &pool), TM_OK)) continue;
        CHECK(tmi_pool_threads(pool) == sizes[s]);
        c->threads = sizes[s];
        for (int spin = 0; spin <= 200; spin += 200) {
            c->spin = spin;
            for (size_t k = 0; k < sizeof ns / sizeof *ns; k++) CHECK(run_and_check(pool, c, ns[k]));
        }
        tmi_pool_destroy(pool);
    }
    c->threads = 1; /* NULL pool: serial, always thread 0 */
    CHECK(run_and_check(NULL, c, 100));
    free(c);
}

typedef struct sum_ctx {
    int64_t *out; /* [n] */
    atomic_int_fast64_t total;
} sum_ctx;

static void sum_task(void *p, int64_t i, int thread)
{
    sum_ctx *c = p;
    c->out[i] = i * i;
    atomic_fetch_add(&c->total, i);
}

/* Thousands of short runs back to back: no lost wake-up, no stale job, and
 * the caller sees every task's writes when run returns. */
static void test_pool_many_runs(void)
{
  for (int threads = 2; threads <= 3; threads++) {
    tmi_pool *pool = NULL;
    if (!CHECK_STATUS(tmi_pool_create(threads, &pool), TM_OK)) return;
    int64_t out[64];
    sum_ctx c = {.out = out};
    int bad = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    enum { RUNS = 20000 };
    for (int r = 0; r < RUNS; r++) {
        int64_t n = 2 + r % 63;
        atomic_store(&c.total, 0);
        memset(out, 0xff, sizeof out);
        tmi_pool_run(pool, sum_task, &c, n);
        if (atomic_load(&c.total) != n * (n - 1) / 2) bad++;
        for (int64_t i = 0; i < n; i++) bad += out[i] != i * i;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    CHECK(bad == 0);
    double us = ((double)(t1.tv_sec - t0.tv_sec) * 1e6 + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-3) / RUNS;
    fprintf(stderr, "  %.2f us per run (%d threads)\n", us, threads);
    tmi_pool_destroy(pool);
  }
}

/* A pool created and used at once: workers that start late must still join the
 * first run (a regression: they used to wait for the run after it). */
static void test_pool_run_right_after_create(void)
{
    for (int r = 0; r < 50; r++) {
        tmi_pool *pool = NULL;
        if (!CHECK_STATUS(tmi_pool_create(4, &pool), TM_OK)) return;
        int64_t out[16];
        sum_ctx c = {.out = out};
        tmi_pool_run(pool, sum_task, &c, 16);
        CHECK(atomic_load(&c.total) == 120);
        tmi_pool_destroy(pool);
    }
}

int main(void)
{
    RUN(test_pool_create_args);
    RUN(test_pool_exact_once);
    RUN(test_pool_many_runs);
    RUN(test_pool_run_right_after_create);
    return tt_finish();
}
