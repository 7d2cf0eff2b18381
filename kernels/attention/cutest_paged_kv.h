/* cutest_paged_kv.h - a random ragged batch over a paged KV pool for the CUDA
 * attention and kv_write tests: block ids shuffled across the batch, two layers a
 * block (the second one used).  Aligned layouts are what a forward builds (the
 * kernels' wide-load path); misaligned ones put odd slack between K, V and layers
 * (the element-by-element path), so wrong offsets read garbage either way. */
#ifndef TMI_CUTEST_PAGED_KV_H
#define TMI_CUTEST_PAGED_KV_H

#include "kernels/attention/paged_kv.h"
#include "kernels/cutest_util.h"

typedef struct cu_batch {
    int32_t n_seq, n_tok, n_blocks, max_kv_len;
    tmi_attn_seq *seqs;    /* [n_seq], rows in sequence order */
    int32_t *ids;          /* every block table, one after another; a permutation of [0, n_blocks) */
    tmi_kv_cache cache;    /* base NULL: the caller allocates pool_bytes; qparams NULL */
    int64_t pool_units;
    size_t pool_bytes;
} cu_batch;

static inline void cu_batch_free(cu_batch *b)
{
    free(b->ids);
    free(b->seqs);
    memset(b, 0, sizeof *b);
}

/* q_len[s], kv_len[s] for n_seq sequences.  online: room for the quantized kinds'
 * per-row params in the blocks.  Returns 0 when out of memory. */
static inline int cu_batch_make(cu_batch *b, int32_t n_seq, const int32_t *q_len, const int32_t *kv_len,
                                int32_t n_kv_head, int32_t head_dim, int32_t block_len, tm_dtype dtype, int online,
                                int aligned, unsigned long long seed)
{
    memset(b, 0, sizeof *b);
    b->n_seq = n_seq;
    for (int32_t s = 0; s < n_seq; s++) b->n_blocks += (kv_len[s] + block_len - 1) / block_len;
    b->n_blocks += 3; /* spare blocks that no table names */
    b->ids = malloc((size_t)b->n_blocks * sizeof(int32_t));
    b->seqs = malloc((size_t)(n_seq > 0 ? n_seq : 1) * sizeof(tmi_attn_seq));
    float *r = malloc((size_t)b->n_blocks * sizeof(float));
    if (!b->ids || !r || !b->seqs) {
        free(r);
        cu_batch_free(b);
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
        if (kv_len[s] > b->max_kv_len) b->max_kv_len = kv_len[s];
    }
    b->n_tok = row;
    int64_t half = tmi_kv_half_units(dtype, n_kv_head, block_len, head_dim, online);
    int64_t v_off = aligned ? (half + 15) / 16 * 16 : half + 3;
    int64_t layer = aligned ? 2 * v_off : 2 * v_off + 8 + 1;
    b->cache = (tmi_kv_cache){.dtype = dtype, .n_kv_head = n_kv_head, .head_dim = head_dim, .block_len = block_len,
                              .block_stride = 2 * layer, .layer_offset = layer, .v_offset = v_off};
    b->pool_units = (int64_t)b->n_blocks * b->cache.block_stride;
    b->pool_bytes = (size_t)b->pool_units * tmi_kv_unit_bytes(dtype);
    return 1;
}

/* Sum of kv_len over the sequences: keys read by one pass of attention. */
static inline int64_t cu_batch_keys(const cu_batch *b)
{
    int64_t n = 0;
    for (int32_t s = 0; s < b->n_seq; s++) n += b->seqs[s].q_len > 0 ? b->seqs[s].kv_len : 0;
    return n;
}

#endif
