/* paged_kv.h - addressing and validation of the paged KV cache, shared by the
 * attention and kv_write kernels (internal to kernels/). */
#ifndef TMI_PAGED_KV_H
#define TMI_PAGED_KV_H

#include "attention.h"

static inline int tmi_kv_is_quant(tm_dtype dtype) { return dtype == TM_I8 || dtype == TMI_KV_INT4; }

/* Bytes of one unit of the layout offsets: an element (F32, F16) or a byte. */
static inline size_t tmi_kv_unit_bytes(tm_dtype dtype) { return dtype == TM_F32 ? 4 : dtype == TM_F16 ? 2 : 1; }

/* Units of one K (or V) row of one token and kv head, codes only. */
static inline int64_t tmi_kv_row_units(tm_dtype dtype, int32_t head_dim)
{
    return dtype == TMI_KV_INT4 ? head_dim / 2 : head_dim;
}

/* Units of one layer's K (or V) in a block: rows, plus the online params. */
static inline int64_t tmi_kv_half_units(tm_dtype dtype, int32_t n_kv_head, int32_t block_len, int32_t head_dim,
                                        int online)
{
    int64_t rows = (int64_t)n_kv_head * block_len;
    return rows * tmi_kv_row_units(dtype, head_dim) + (tmi_kv_is_quant(dtype) && online ? rows * 8 : 0);
}

/* Unit offset of the K row of token slot `slot` of block `block`, kv head g;
 * its V row is v_offset further. */
static inline int64_t tmi_kv_k_offset(const tmi_kv_cache *c, int32_t block, int32_t g, int32_t slot)
{
    return (int64_t)block * c->block_stride + c->layer_offset +
           ((int64_t)g * c->block_len + slot) * tmi_kv_row_units(c->dtype, c->head_dim);
}

/* Byte offset of the online {scale, zp} of that K row (quantized kinds, online);
 * its V params are v_offset further. */
static inline int64_t tmi_kv_param_offset(const tmi_kv_cache *c, int32_t block, int32_t g, int32_t slot)
{
    int64_t codes = (int64_t)c->n_kv_head * c->block_len * tmi_kv_row_units(c->dtype, c->head_dim);
    return (int64_t)block * c->block_stride + c->layer_offset + codes + ((int64_t)g * c->block_len + slot) * 8;
}

static inline tm_status tmi_kv_check_cache(const char *op, const tmi_kv_cache *c)
{
    if (c->dtype != TM_F32 && c->dtype != TM_F16 && !tmi_kv_is_quant(c->dtype))
        return tmi_fail(TM_ERR_UNSUPPORTED, "%s: kv cache dtype must be F32, F16, I8 or INT4, got %d", op,
                        (int)c->dtype);
    if (!c->base) return tmi_fail(TM_ERR_INVALID_ARG, "%s: kv cache base must not be NULL", op);
    if (c->n_kv_head <= 0 || c->head_dim <= 0 || c->block_len <= 0)
        return tmi_fail(TM_ERR_INVALID_ARG, "%s: n_kv_head, head_dim and block_len must be > 0, got %d, %d, %d", op,
                        c->n_kv_head, c->head_dim, c->block_len);
    if (c->dtype == TMI_KV_INT4 && c->head_dim % 2)
        return tmi_fail(TM_ERR_INVALID_ARG, "%s: an INT4 kv cache needs an even head_dim, got %d", op, c->head_dim);
    int64_t half = tmi_kv_half_units(c->dtype, c->n_kv_head, c->block_len, c->head_dim, c->qparams == NULL);
    if (c->layer_offset < 0 || c->v_offset < half || c->block_stride < c->layer_offset + c->v_offset + half)
        return tmi_fail(TM_ERR_INVALID_ARG,
                        "%s: kv layout must have layer_offset >= 0, v_offset >= the units of one layer's K (%lld) "
                        "and block_stride >= layer_offset + v_offset + that, got %lld, %lld, %lld",
                        op, (long long)half, (long long)c->layer_offset, (long long)c->v_offset,
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

/* The rows of q / k / v a batch's sequences reach: the end of the furthest non-empty one. */
static inline int64_t tmi_kv_batch_rows(const tmi_attn_seq *seqs, int32_t n_seq)
{
    int64_t rows = 0;
    for (int32_t s = 0; s < n_seq; s++)
        if (seqs[s].q_len > 0 && seqs[s].q_start + (int64_t)seqs[s].q_len > rows)
            rows = seqs[s].q_start + (int64_t)seqs[s].q_len;
    return rows;
}

/* The batch metadata the CUDA ops read, as paged_kv_cuda.h documents it:
 *   int32 meta[n_seq][4]  {q_start, q_len, kv_len, index in ids of the sequence's first block id}
 *   int32 ids[]           every sequence's block table (ceil(kv_len / block_len) ids), in order.
 * A forward fills it once per step (a pinned host buffer, one copy) and passes the
 * device copy as meta_dev to every layer's kv_write and attention.  Plain host code;
 * the sequences must have passed tmi_kv_check_seqs. */
static inline size_t tmi_kv_meta_ints(const tmi_attn_seq *seqs, int32_t n_seq, int32_t block_len)
{
    if (n_seq <= 0 || !seqs || block_len <= 0) return 0;
    size_t n = 4 * (size_t)n_seq;
    for (int32_t s = 0; s < n_seq; s++)
        if (seqs[s].kv_len > 0) n += (size_t)(((int64_t)seqs[s].kv_len + block_len - 1) / block_len);
    return n;
}

/* Writes the metadata to dst: the block tables back to back (stride 0, then
 * tmi_kv_meta_ints ints), or sequence s's at s * stride (stride >= every table's
 * length; 4 * n_seq + n_seq * stride ints, the gaps left as they were), a layout whose
 * offsets depend on n_seq alone, as a replayed CUDA graph needs them. */
static inline void tmi_kv_meta_fill_strided(int32_t *dst, const tmi_attn_seq *seqs, int32_t n_seq, int32_t block_len,
                                            int64_t stride)
{
    if (n_seq <= 0 || !seqs || block_len <= 0) return;
    int32_t *ids = dst + 4 * (size_t)n_seq;
    int64_t off = 0;
    for (int32_t s = 0; s < n_seq; s++) {
        const tmi_attn_seq *sq = &seqs[s];
        int64_t nb = sq->kv_len > 0 ? ((int64_t)sq->kv_len + block_len - 1) / block_len : 0;
        if (stride) off = s * stride;
        dst[4 * s + 0] = sq->q_start;
        dst[4 * s + 1] = sq->q_len;
        dst[4 * s + 2] = sq->kv_len;
        dst[4 * s + 3] = (int32_t)off;
        if (nb) memcpy(ids + off, sq->block_table, (size_t)nb * sizeof(int32_t));
        off += nb;
    }
}

/* Writes tmi_kv_meta_ints(seqs, n_seq, block_len) ints to dst (packed). */
static inline void tmi_kv_meta_fill(int32_t *dst, const tmi_attn_seq *seqs, int32_t n_seq, int32_t block_len)
{
    tmi_kv_meta_fill_strided(dst, seqs, n_seq, block_len, 0);
}

#endif
