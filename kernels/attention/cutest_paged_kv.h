/* cutest_paged_kv.h - a random ragged batch over a paged KV pool for the CUDA
 * attention and kv_write tests: block ids shuffled across the batch, two layers
 * a block with slack between K, V and layers, so wrong offsets read garbage. */
#ifndef TMI_CUTEST_PAGED_KV_H
#define TMI_CUTEST_PAGED_KV_H

#include "kernels/attention/attention.h"
#include "kernels/cutest_util.h"

#define CU_MAX_SEQ 16

typedef struct cu_batch {
    int32_t n_seq, n_tok, n_blocks;
    tmi_attn_seq seqs[CU_MAX_SEQ];
    int32_t *ids;          /* every block table, one after another; a permutation of [0, n_blocks) */
    tmi_kv_cache cache;    /* base NULL: the caller allocates pool_units units */
    int64_t pool_units;
} cu_batch;

/* q_len[s], kv_len[s] for n_seq sequences. */
static inline int cu_batch_make(cu_batch *b, int32_t n_seq, const int32_t *q_len, const int32_t *kv_len,
                                int32_t n_kv_head, int32_t head_dim, int32_t block_len, tm_dtype dtype,
                                unsigned long long seed)
{
    memset(b, 0, sizeof *b);
    b->n_seq = n_seq;
    for (int32_t s = 0; s < n_seq; s++) b->n_blocks += (kv_len[s] + block_len - 1) / block_len;
    b->n_blocks += 3; /* spare blocks that no table names */
    b->ids = malloc((size_t)b->n_blocks * sizeof(int32_t));
    float *r = malloc((size_t)b->n_blocks * sizeof(float));
    if (!b->ids || !r) {
        free(r);
        return 0;
    }
    tt_fill_random(r, b->n_blocks, seed);
    for (int32_t i = 0; i < b->n_blocks; i++) b->ids[i] = i;
    for (int32_t i = b->n_blocks - 1; i > 0; i--) { /* Fisher-Yates */
        int32_t j = (int32_t)((r[i] + 1.0f) * 0.5f * (float)(i + 1));
        if (j > i) j = i;
        int32_t t = b->ids[i];
        b->ids[i] = b->ids[j];
        b->ids[j] = t;
    }
    free(r);
    int32_t off = 0, row = 0;
    for (int32_t s = 0; s < n_seq; s++) {
        b->seqs[s] = (tmi_attn_seq){.q_start = row, .q_len = q_len[s], .kv_len = kv_len[s],
                                    .block_table = kv_len[s] ? b->ids + off : NULL};
        off += (kv_len[s] + block_len - 1) / block_len;
        row += q_len[s];
    }
    b->n_tok = row;
    int64_t half = (int64_t)n_kv_head * block_len * head_dim;
    int64_t layer = 2 * half + 8;
    b->cache = (tmi_kv_cache){.dtype = dtype, .n_kv_head = n_kv_head, .head_dim = head_dim, .block_len = block_len,
                              .block_stride = 2 * layer, .layer_offset = layer, .v_offset = half + 3};
    b->pool_units = (int64_t)b->n_blocks * b->cache.block_stride;
    return 1;
}

static inline void cu_batch_free(cu_batch *b) { free(b->ids); }

#endif
