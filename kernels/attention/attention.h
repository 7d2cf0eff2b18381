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

/* A CUDA decode call's split-K partial states that the op left for the op after it
 * to merge (tmi_attention_args.defer_merge), which saves the merge kernel: the GEMM
 * of the o projection computes each element of out as the merge would have stored
 * it (gemm.h's a_src).  Left only when every sequence of the call has exactly one
 * new row and sequence s's row is row s.  nsplit == 0: nothing is left, out holds
 * the result.  The partials live in ex->workspace until it is next written. */
typedef struct tmi_attn_merge {
    int32_t nsplit;         /* splits the partials have room for; 0: nothing left */
    int32_t split_len;      /* keys a split */
    int32_t n_seq, n_head, head_dim, window;
    const int32_t *meta;    /* device, [n_seq][4] (paged_kv_cuda.h): a sequence's splits come from it */
    const float *part_acc;  /* device, [n_seq][n_head][nsplit][head_dim] fp32, unnormalised */
    const float *part_ml;   /* device, [n_seq][n_head][nsplit][2] fp32 {max (log2 units), sum} */
    void *out;              /* [n_seq][ldo] of out_dtype: a sequence with one split was written there */
    int64_t ldo;
    tm_dtype out_dtype;
} tmi_attn_merge;

typedef struct tmi_attention_args {
    int32_t n_seq;
    const tmi_attn_seq *seqs;
    int32_t n_head;         /* query heads; a multiple of cache.n_kv_head */
    const float *q;         /* [n_tok][ldq], head h at h*head_dim, fp32 */
    int64_t ldq;
    void *out;              /* [n_tok][ldo], same layout as q, out_dtype; ldo counts out_dtype elements.
                               out may be q itself (out_dtype F32, ldo == ldq); otherwise it must not
                               overlap q */
    int64_t ldo;
    tm_dtype out_dtype;     /* TM_F32 (the zero default), TM_F16 or TM_BF16: rounded to nearest even,
                               for an o-projection that wants the weight's 16-bit dtype */
    tmi_kv_cache cache;
    float scale;            /* softmax scale, 1/sqrt(head_dim) */
    int32_t window;         /* sliding window in tokens; 0: none */
    const int32_t *meta_dev; /* CUDA only (the CPU twin ignores it): NULL, or a device copy of
                               tmi_kv_meta_fill's layout (paged_kv.h) for exactly these seqs, so the
                               op issues no copy and no synchronisation (capturable in a graph) */
    int32_t plan_kv_len;    /* CUDA only: 0, or a bound >= every decode sequence's key range that the
                               split-K plan is made for instead of this batch's longest range, so
                               one launch shape (a captured graph) serves every batch under it;
                               splits past a sequence's keys exit at once */
    tmi_attn_merge *defer_merge; /* CUDA only: NULL, or filled in (above): where the op may leave its
                                    split-K merge to the o projection (the CPU twin sets nsplit 0) */
} tmi_attention_args;

/* Rows of a sequence up to which the CUDA op treats it as decode (split-K, below);
 * plan_kv_len bounds the key ranges of those sequences. */
#define TMI_ATTN_DECODE_MAX_Q 8

/* Scratch bytes for `threads` workers and the longest kv_len in the batch. */
size_t tmi_attention_cpu_workspace(int32_t max_kv_len, int threads);
tm_status tmi_attention_cpu(const tmi_exec *ex, const tmi_attention_args *a);

/* CUDA twin: q, out, cache.base and cache.qparams (static quantized KV: this layer's
 * [4][n_kv_head] fp32) are device pointers; seqs and their block tables stay in host
 * memory (the launch shapes come from them) and, unless meta_dev is given, are packed
 * into the workspace on ex->stream.  Any KV kind (F32, F16, I8, INT4, online or
 * static), head_dim <= 256.
 *
 * Rows with q_len <= 8 (decode) run split-K (flash-decoding): one block per
 * (split of the key range, kv head, sequence), the number of splits chosen from the
 * longest key range and the SM count; a second kernel merges the splits' partial
 * softmax states.  Longer rows (prefill chunks) run one block per 8 (row, head)
 * pairs of a kv head, listed on the device by a small planning kernel.
 *
 * Workspace layout, in this order, each part starting on a 256-byte boundary:
 *   metadata   int32 meta[n_seq][4] then block ids (meta_dev == NULL only; absent
 *              when meta_dev is set, so the parts below move to offset 0);
 *   partials   split-K states, present when a split is possible:
 *              acc [n_seq][q_slot][n_head][splits][head_dim] fp32 (unnormalised),
 *              then {max (log2 units), sum} [n_seq][q_slot][n_head][splits] fp32 x 2,
 *              q_slot = the longest decode q_len, splits <= a cap that depends on the
 *              batch only (never on the device);
 *   plan       int32 {seq, tile} [prefill tiles], present when a row has q_len > 8.
 * tmi_attention_cuda_workspace is the exact size for one call (a's seqs, meta_dev,
 * n_head, cache); _bound covers every batch of at most max_tok rows, max_seq
 * sequences and max_kv_len tokens a sequence, meta_dev or not, any n_kv_head. */
size_t tmi_attention_cuda_workspace(const tmi_attention_args *a);
size_t tmi_attention_cuda_workspace_bound(int32_t max_tok, int32_t max_seq, int32_t max_kv_len, int32_t block_len,
                                          int32_t n_head, int32_t head_dim);
tm_status tmi_attention_cuda(const tmi_exec *ex, const tmi_attention_args *a);
/* Merges what a call left in *m into m->out on ex->stream (the merge kernel it
 * saved); nothing when m->nsplit == 0. */
tm_status tmi_attention_cuda_merge(const tmi_exec *ex, const tmi_attn_merge *m);

#endif
