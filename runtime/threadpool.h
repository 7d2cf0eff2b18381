/* threadpool.h - a fixed pool of worker threads for the CPU kernels.
 *
 * tmi_pool_run() splits [0, n_tasks) over the workers and the calling thread and
 * returns when every task is done.  One caller at a time per pool (the model's
 * forward is single-threaded at the top); tasks must not call tmi_pool_run. */
#ifndef TMI_THREADPOOL_H
#define TMI_THREADPOOL_H

#include <stdint.h>

#include "tmrun.h"

typedef struct tmi_pool tmi_pool;

/* task(ctx, index, thread) for index in [0, n_tasks); thread in [0, threads). */
typedef void (*tmi_task_fn)(void *ctx, int64_t index, int thread);

/* n_threads: total threads including the caller, [1, 512]; 0: one per online core. */
tm_status tmi_pool_create(int n_threads, tmi_pool **out);
void tmi_pool_destroy(tmi_pool *pool);
int tmi_pool_threads(const tmi_pool *pool); /* 1 when pool is NULL */
void tmi_pool_run(tmi_pool *pool, tmi_task_fn task, void *ctx, int64_t n_tasks);

#endif
