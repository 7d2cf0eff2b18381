/* threadpool.c - see threadpool.h.
 *
 * A run is published by bumping `generation`; workers notice it either while
 * spinning briefly after their last run (a forward issues runs back to back, so
 * most wake-ups cost no syscall) or on the `wake` condition variable once they
 * have gone to sleep.  Tasks are handed out one index at a time from an atomic
 * counter, so uneven tasks balance themselves.  The caller works too, then waits
 * until every worker has left the run: only then may it reuse the job fields. */
#define _GNU_SOURCE
#include "threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "error.h"

/* Spin iterations before a worker (or the waiting caller) blocks.  About 20-50 us
 * on current x86: long enough to bridge the gap between two kernels of one
 * forward, short enough not to burn a core when the engine is idle. */
enum { POOL_SPIN = 2000, POOL_MAX_THREADS = 512 };

struct tmi_pool {
    int n_threads;         /* including the caller */
    int n_started;         /* workers actually created (n_threads - 1 once built) */
    pthread_t *workers;    /* [n_threads - 1] */
    pthread_mutex_t mu;
    pthread_cond_t wake;   /* workers sleep here between runs */
    pthread_cond_t done;   /* the caller sleeps here until busy == 0 */

    /* the current run: written by the caller before generation is bumped */
    tmi_task_fn fn;
    void *ctx;
    int64_t n_tasks;
    atomic_int_fast64_t next; /* next task index to hand out */
    atomic_uint generation;   /* bumped once per run */
    atomic_int busy;          /* workers that have not finished the current run */
    atomic_int stop;
};

typedef struct worker_arg {
    tmi_pool *pool;
    int thread;
} worker_arg;

/* One spin step.  Every 64th step yields the core: when there are more threads
 * than free cores (other processes, or n_threads > cores), the thread being
 * waited for may need this very core. */
static inline void spin_step(int i)
{
    if ((i & 63) == 63) {
        sched_yield();
        return;
    }
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void pool_work(tmi_pool *pool, int thread)
{
    tmi_task_fn fn = pool->fn;
    void *ctx = pool->ctx;
    int64_t n = pool->n_tasks;
    for (;;) {
        int64_t i = atomic_fetch_add_explicit(&pool->next, 1, memory_order_relaxed);
        if (i >= n) break;
        fn(ctx, i, thread);
    }
}

/* Waits for a generation other than `seen`; returns it, or seen when stopping. */
static unsigned worker_wait(tmi_pool *pool, unsigned seen)
{
    for (int i = 0; i < POOL_SPIN; i++) {
        unsigned g = atomic_load_explicit(&pool->generation, memory_order_acquire);
        if (g != seen || atomic_load_explicit(&pool->stop, memory_order_relaxed)) return g;
        spin_step(i);
    }
    pthread_mutex_lock(&pool->mu);
    unsigned g;
    while ((g = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen &&
           !atomic_load_explicit(&pool->stop, memory_order_relaxed))
        pthread_cond_wait(&pool->wake, &pool->mu);
    pthread_mutex_unlock(&pool->mu);
    return g;
}

static void *worker_main(void *p)
{
    worker_arg *arg = p;
    tmi_pool *pool = arg->pool;
    int thread = arg->thread;
    free(arg);
    /* Not the current value: a run may have been published before this thread
     * got going, and it must still take part in it. */
    unsigned seen = 0;
    for (;;) {
        seen = worker_wait(pool, seen);
        if (atomic_load_explicit(&pool->stop, memory_order_acquire)) return NULL;
        pool_work(pool, thread);
        /* The last worker out wakes the caller; taking the mutex orders this
         * signal after the caller's check of busy, so the wake-up is never lost. */
        if (atomic_fetch_sub_explicit(&pool->busy, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&pool->mu);
            pthread_cond_signal(&pool->done);
            pthread_mutex_unlock(&pool->mu);
        }
    }
}

/* Cores this process may run on: the affinity mask (taskset, cgroup cpusets)
 * can be smaller than the machine. */
static int usable_cores(void)
{
#ifdef CPU_COUNT
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > POOL_MAX_THREADS ? POOL_MAX_THREADS : (int)n;
}

tm_status tmi_pool_create(int n_threads, tmi_pool **out)
{
    if (!out) return tmi_fail(TM_ERR_INVALID_ARG, "tmi_pool_create: out must not be NULL");
    if (n_threads == 0) {
        int n = usable_cores();
        n_threads = n > POOL_MAX_THREADS ? POOL_MAX_THREADS : n;
    }
    if (n_threads < 1 || n_threads > POOL_MAX_THREADS)
        return tmi_fail(TM_ERR_INVALID_ARG, "thread pool: n_threads must be in [1, %d] or 0, got %d",
                        POOL_MAX_THREADS, n_threads);
    tmi_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return tmi_fail(TM_ERR_NOMEM, "thread pool: out of memory");
    pool->n_threads = n_threads;
    atomic_init(&pool->next, 0);
    atomic_init(&pool->generation, 0);
    atomic_init(&pool->busy, 0);
    atomic_init(&pool->stop, 0);
    if (pthread_mutex_init(&pool->mu, NULL) != 0) {
        free(pool);
        return tmi_fail(TM_ERR_NOMEM, "thread pool: pthread_mutex_init failed");
    }
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->done, NULL);
    if (n_threads > 1) {
        pool->workers = calloc((size_t)n_threads - 1, sizeof *pool->workers);
        if (!pool->workers) {
            tmi_pool_destroy(pool);
            return tmi_fail(TM_ERR_NOMEM, "thread pool: out of memory");
        }
    }
    for (int t = 1; t < n_threads; t++) {
        worker_arg *arg = malloc(sizeof *arg);
        if (!arg) {
            tmi_pool_destroy(pool);
            return tmi_fail(TM_ERR_NOMEM, "thread pool: out of memory");
        }
        arg->pool = pool;
        arg->thread = t;
        if (pthread_create(&pool->workers[t - 1], NULL, worker_main, arg) != 0) {
            free(arg);
            tmi_pool_destroy(pool);
            return tmi_fail(TM_ERR_NOMEM, "thread pool: could not start worker %d of %d", t, n_threads - 1);
        }
        pool->n_started++;
    }
    *out = pool;
    return TM_OK;
}

void tmi_pool_destroy(tmi_pool *pool)
{
    if (!pool) return;
    pthread_mutex_lock(&pool->mu);
    atomic_store_explicit(&pool->stop, 1, memory_order_release);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mu);
    for (int t = 0; t < pool->n_started; t++) pthread_join(pool->workers[t], NULL);
    pthread_cond_destroy(&pool->wake);
    pthread_cond_destroy(&pool->done);
    pthread_mutex_destroy(&pool->mu);
    free(pool->workers);
    free(pool);
}

int tmi_pool_threads(const tmi_pool *pool) { return pool ? pool->n_threads : 1; }

void tmi_pool_run(tmi_pool *pool, tmi_task_fn task, void *ctx, int64_t n_tasks)
{
    if (n_tasks <= 0) return;
    /* Waking workers for a single task only adds latency. */
    if (!pool || pool->n_threads == 1 || n_tasks == 1) {
        for (int64_t i = 0; i < n_tasks; i++) task(ctx, i, 0);
        return;
    }
    pool->fn = task;
    pool->ctx = ctx;
    pool->n_tasks = n_tasks;
    atomic_store_explicit(&pool->next, 0, memory_order_relaxed);
    atomic_store_explicit(&pool->busy, pool->n_threads - 1, memory_order_relaxed);
    pthread_mutex_lock(&pool->mu);
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mu);

    pool_work(pool, 0);

    for (int i = 0; i < POOL_SPIN; i++) {
        if (atomic_load_explicit(&pool->busy, memory_order_acquire) == 0) return;
        spin_step(i);
    }
    pthread_mutex_lock(&pool->mu);
    while (atomic_load_explicit(&pool->busy, memory_order_acquire) != 0) pthread_cond_wait(&pool->done, &pool->mu);
    pthread_mutex_unlock(&pool->mu);
}
