/* block_pool.h - the paged KV cache's block pool: a free list and reference counts.
 *
 * A block is free (refcount 0, on the free list) or held (refcount >= 1: by a
 * running sequence, a cached session, or several samples sharing a prompt).
 * tmi_blocks_alloc moves free -> held, tmi_blocks_retain adds a holder,
 * tmi_blocks_release drops one and returns the block to the free list at zero.
 * Engine thread only. */
#ifndef TMI_BLOCK_POOL_H
#define TMI_BLOCK_POOL_H

#include <stdint.h>

#include "tmrun.h"

typedef struct tmi_block_pool {
    int32_t n_blocks;
    int32_t n_free;
    int32_t *free_ids; /* [n_blocks] stack; the top n_free entries are free */
    int32_t *refs;     /* [n_blocks] */
} tmi_block_pool;

tm_status tmi_blocks_init(tmi_block_pool *pool, int32_t n_blocks);
void tmi_blocks_free_all(tmi_block_pool *pool);

/* Takes n free blocks into ids (refcount 1); all or nothing: 0 on success, -1 when
 * fewer than n are free (nothing changes). */
int tmi_blocks_alloc(tmi_block_pool *pool, int32_t n, int32_t *ids);
void tmi_blocks_retain(tmi_block_pool *pool, const int32_t *ids, int32_t n);
void tmi_blocks_release(tmi_block_pool *pool, const int32_t *ids, int32_t n);

static inline int32_t tmi_blocks_free_count(const tmi_block_pool *pool) { return pool->n_free; }
static inline int32_t tmi_blocks_used_count(const tmi_block_pool *pool) { return pool->n_blocks - pool->n_free; }

#endif
