/* attention.h - causal GQA attention of a ragged batch over a paged KV cache.
 *
 * KV pool layout (elements of kv_dtype): block b holds, for every layer, K then V
 * of block_len tokens:  k(b, l) = kv_base + b*block_stride + layer_offset,
 * v(b, l) = k(b, l) + v_offset, each [n_kv_head][block_len][head_dim].
 * Token j of a sequence lives in block block_table[j / block_len], slot
 * j % block_len. */
#ifndef TMI_ATTENTION_H
#define TMI_ATTENTION_H

#include "../common.h"

typedef struct tmi_attn_seq {
    int32_t q_start;            /* first row of this sequence in q / out / new k,v */
    int32_t q_len;              /* new tokens this step (rows) */
    int32_t kv_len;             /* tokens in the cache after this step (history + q_len) */
    const int32_t *block_table; /* [ceil(kv_len / block_len)] block ids */
} tmi_attn_seq;

typedef struct tmi_kv_cache {
    void *base;             /* the pool, kv_dtype */
    tm_dtype dtype;         /* TM_F32 or TM_F16 (quantized kinds come with issue 7) */
    int32_t n_kv_head;
    int32_t head_dim;
    int32_t block_len;
    int64_t block_stride;   /* elements between blocks */
    int64_t layer_offset;   /* elements from a block's start to this layer's K */
    int64_t v_offset;       /* elements from K to V inside a block's layer */
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

#endif
