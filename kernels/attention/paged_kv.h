/* paged_kv.h - addressing and validation of the paged KV cache, shared by the
 * attention and kv_write kernels (internal to kernels/). */
#ifndef TMI_PAGED_KV_H
#define TMI_PAGED_KV_H

#include "attention.h"

/* Element offset of the K row of token slot `slot` of block `block`, kv head g;
 * its V row is v_offset further. */
static inline int64_t tmi_kv_k_offset(const tmi_kv_cache *c, int32_t block, int32_t g, int32_t slot)
{
    return (int64_t)block * c->block_stride + c->layer_offset + ((int64_t)g * c->block_len + slot) * c->head_dim;
}

static inline tm_status tmi_kv_check_cache(const char *op, const tmi_kv_cache *c)
{
    if (c->dtype != TM_F32 && c->dtype != TM_F16)
        return tmi_fail(TM_ERR_UNSUPPORTED, "%s: kv cache dtype must be F32 or F16, got %s", op,
                        tm_dtype_name(c->dtype));
    if (!c->base) return tmi_fail(TM_ERR_INVALID_ARG, "%s: kv cache base must not be NULL", op);
    if (c->n_kv_head <= 0 || c->head_dim <= 0 || c->block_len <= 0)
        return tmi_fail(TM_ERR_INVALID_ARG, "%s: n_kv_head, head_dim and block_len must be > 0, got %d, %d, %d", op,
                        c->n_kv_head, c->head_dim, c->block_len);
    int64_t kv_elems = (int64_t)c->n_kv_head * c->block_len * c->head_dim;
    if (c->layer_offset < 0 || c->v_offset < kv_elems || c->block_stride < c->layer_offset + c->v_offset + kv_elems)
        return tmi_fail(TM_ERR_INVALID_ARG,
                        "%s: kv layout must have layer_offset >= 0, v_offset >= n_kv_head*block_len*head_dim (%lld) "
                        "and block_stride >= layer_offset + v_offset + that, got %lld, %lld, %lld",
                        op, (long long)kv_elems, (long long)c->layer_offset, (long long)c->v_offset,
                        (long long)c->block_stride);
    return TM_OK;
}

/* Checks every sequence (q_len <= kv_len, non-negative block ids) and reports
 * the longest kv_len. */
static inline tm_status tmi_kv_check_seqs(const char *op, const tmi_attn_seq *seqs, int32_t n_seq,
                                          int32_t block_len, int32_t *max_kv_len)
{
    *max_kv_len = 0;
    if (n_seq < 0) return tmi_fail(TM_ERR_INVALID_ARG, "%s: n_seq must be >= 0, got %d", op, n_seq);
    if (n_seq > 0 && !seqs) return tmi_fail(TM_ERR_INVALID_ARG, "%s: seqs must not be NULL", op);
    for (int32_t s = 0; s < n_seq; s++) {
        const tmi_attn_seq *sq = &seqs[s];
        if (sq->q_start < 0 || sq->q_len < 0 || sq->q_len > sq->kv_len)
            return tmi_fail(TM_ERR_INVALID_ARG,
                            "%s: sequence %d must have q_start >= 0 and 0 <= q_len <= kv_len, got q_start %d, "
                            "q_len %d, kv_len %d",
                            op, s, sq->q_start, sq->q_len, sq->kv_len);
        if (sq->kv_len == 0) continue;
        if (!sq->block_table)
            return tmi_fail(TM_ERR_INVALID_ARG, "%s: sequence %d has kv_len %d but no block table", op, s,
                            sq->kv_len);
        int32_t n_blocks = (int32_t)(((int64_t)sq->kv_len + block_len - 1) / block_len);
        for (int32_t b = 0; b < n_blocks; b++)
            if (sq->block_table[b] < 0)
                return tmi_fail(TM_ERR_INVALID_ARG, "%s: block ids must be >= 0, got sequence %d block_table[%d] = %d",
                                op, s, b, sq->block_table[b]);
        if (sq->kv_len > *max_kv_len) *max_kv_len = sq->kv_len;
    }
    return TM_OK;
}

#endif
