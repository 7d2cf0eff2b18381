/* block_pool.c - see block_pool.h. */
#include <stdlib.h>

#include "block_pool.h"
#include "error.h"

tm_status tmi_blocks_init(tmi_block_pool *pool, int32_t n_blocks)
{
    pool->n_blocks = n_blocks;
    pool->n_free = n_blocks;
    pool->free_ids = malloc((size_t)n_blocks * sizeof(int32_t));
    pool->refs = calloc((size_t)n_blocks, sizeof(int32_t));
    if (!pool->free_ids || !pool->refs) {
        tmi_blocks_free_all(pool);
        return tmi_fail(TM_ERR_NOMEM, "KV block pool of %d blocks: out of memory", n_blocks);
    }
    /* lowest ids on top, so a fresh pool hands out 0, 1, 2 ... */
    for (int32_t i = 0; i < n_blocks; i++) pool->free_ids[i] = n_blocks - 1 - i;
    return TM_OK;
}

void tmi_blocks_free_all(tmi_block_pool *pool)
{
    free(pool->free_ids);
    free(pool->refs);
    pool->free_ids = NULL;
    pool->refs = NULL;
    pool->n_blocks = pool->n_free = 0;
}

int tmi_blocks_alloc(tmi_block_pool *pool, int32_t n, int32_t *ids)
{
    if (n > pool->n_free) return -1;
    for (int32_t i = 0; i < n; i++) {
        int32_t id = pool->free_ids[--pool->n_free];
        pool->refs[id] = 1;
        ids[i] = id;
    }
    return 0;
}

void tmi_blocks_retain(tmi_block_pool *pool, const int32_t *ids, int32_t n)
{
    for (int32_t i = 0; i < n; i++) pool->refs[ids[i]]++;
}

void tmi_blocks_release(tmi_block_pool *pool, const int32_t *ids, int32_t n)
{
    for (int32_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (--pool->refs[id] == 0) pool->free_ids[pool->n_free++] = id;
    }
}
