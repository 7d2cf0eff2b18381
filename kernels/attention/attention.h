/* attention.h - causal GQA attention of a ragged batch over a paged KV cache.
 *
 * KV pool layout: block b holds, for every layer, K then V of block_len tokens:
 * k(b, l) = kv_base + b*block_stride + layer_offset, v(b, l) = k(b, l) + v_offset.
 * Token j of a sequence lives in block block_table[j / block_len], slot
 * j % block_len.  Offsets count units: elements for TM_F32 / TM_F16, bytes for
 * the quantized kinds.
 *
 * F32 / F16: each of K and V is [n_kv_head][block_len][head_dim] of that dtype.
 *
 * TM_I8 / TMI_KV_INT4 (kv_quant.h has the code format), each of K and V is
 *   codes  [n_kv_head][block_len][row_bytes]  row_bytes = head_dim (int8) or
 *          head_dim / 2 (int4, two codes a byte, low nibble first);
 *   online mode (qparams == NULL) only, right after the codes:
 *   params [n_kv_head][block_len][2] fp32 {scale, zero point} of that token's row,
 *          written with the codes, so a block is self-contained and the pool can
 *          move or cache it like a float block.
 *   Static mode (qparams != NULL) keeps no params in the block: every row of kv
 *   head g uses qparams[0][g], [1][g] for K and [2][g], [3][g] for V.
 * So v_offset >= n_kv_head * block_len * (row_bytes + 8 online / + 0 static). */
#ifndef TMI_ATTENTION_H
#define TMI_ATTENTION_H

#include "../common.h"

typedef struct tmi_attn_seq {
    int32_t q_start;            /* first row of this sequence in q / out / new k,v */
    int32_t q_len;              /* new tokens this step (rows) */
    int32_t kv_len;             /* tokens in the cache after this step (history + q_len) */
    const int32_t *block_table; /* [ceil(kv_len / block_len)] block ids */
} tmi_attn_seq;

/* The 4-bit KV kind: tm_dtype has no 4-bit member (it names safetensors dtypes),
 * so the cache uses a value outside that enum's range. */
#define TMI_KV_INT4 ((tm_dtype)64)

typedef struct tmi_kv_cache {
    void *base;             /* the pool, kv_dtype */
    tm_dtype dtype;         /* TM_F32, TM_F16, TM_I8 or TMI_KV_INT4 */
    int32_t n_kv_head;
    int32_t head_dim;
    int32_t block_len;
    int64_t block_stride;   /* units between blocks */
    int64_t layer_offset;   /* units from a block's start to this layer's K */
    int64_t v_offset;       /* units from K to V inside a block's layer */
    const float *qparams;   /* quantized kinds: NULL (online), or this layer's static
                               [4][n_kv_head] fp32: k_scale, k_zp, v_scale, v_zp */
} tmi_kv_cache;

typedef struct tmi_attention_args {
    int32_t n_seq;
    const tmi_attn_seq *seqs;
    int32_t n_head;         /* query heads; a multiple of cache.n_kv_head */
    const float *q;         /* [n_tok][ldq], head h at h*head_dim, fp32 */
    int64_t ldq;
    float *out;             /* [n_tok][ldo], same layout as q, fp32 */
    int64_t ldo;
    tmi_kv_cache cache;
    float scale;            /* softmax scale, 1/sqrt(head_dim) */
    int32_t window;         /* sliding window in tokens; 0: none */
} tmi_attention_args;

/* Scratch bytes for `threads` workers and the longest kv_len in the batch. */
size_t tmi_attention_cpu_workspace(int32_t max_kv_len, int threads);
tm_status tmi_attention_cpu(const tmi_exec *ex, const tmi_attention_args *a);
/* CUDA twin: q, out and cache.base are device pointers; seqs and their block
 * tables stay in host memory and are packed into the device workspace (its first
 * bytes) on ex->stream.  KV cache F32 or F16, head_dim <= 256. */
size_t tmi_attention_cuda_workspace(const tmi_attn_seq *seqs, int32_t n_seq, int32_t block_len);
tm_status tmi_attention_cuda(const tmi_exec *ex, const tmi_attention_args *a);

#endif
