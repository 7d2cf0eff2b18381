/* kv_write.h - store the new tokens' K and V of one layer into their cache blocks,
 * optionally rotating q and k by RoPE first (the fused step of a decode layer). */
#ifndef TMI_KV_WRITE_H
#define TMI_KV_WRITE_H

#include "../attention/attention.h"
#include "../rope/rope.h"

typedef struct tmi_kv_write_args {
    int32_t n_seq;
    const tmi_attn_seq *seqs; /* row t of sequence s goes to position kv_len - q_len + t */
    const float *k;           /* [n_tok][ldk], kv head g at g*head_dim, fp32 */
    int64_t ldk;
    const float *v;           /* [n_tok][ldv] */
    int64_t ldv;
    tmi_kv_cache cache;
    const int32_t *meta_dev;  /* CUDA only (the CPU twin ignores it): NULL, or a device copy of
                                 tmi_kv_meta_fill's layout (attention/paged_kv.h) for exactly these
                                 seqs: then the op issues no copy and no synchronisation and needs
                                 no workspace */
    const tmi_rope_args *rope; /* NULL, or RoPE applied first, in place over rope->x, exactly as
                                 tmi_rope_* would: its last n_kv_head heads must be k (k ==
                                 x + (n_head - n_kv_head) * head_dim, ldk == ld, head_dim the
                                 cache's, even), so the stored K is the rotated one and the other
                                 heads (the queries) come out rotated too; n_tok is the batch's rows */
    const tmi_split_sums *sums; /* NULL, or the QKV GEMM's deferred sums (common.h), whose c holds
                                 rope->x, k and v: the op reads those elements as the sums.  Needs
                                 rope; on CUDA also a float cache and meta_dev (the partials are in
                                 the workspace).  The CPU twin first writes the sums into c. */
} tmi_kv_write_args;

/* The rope and sums arguments' rules above (checked seqs); op names the caller in the message. */
tm_status tmi_kv_write_check_rope(const char *op, const tmi_kv_write_args *a);

tm_status tmi_kv_write_cpu(const tmi_exec *ex, const tmi_kv_write_args *a);
/* CUDA twin: k, v, cache.base, cache.qparams (static quantized KV) and the rope
 * buffers are device pointers; with rope and a float cache one kernel rotates and
 * stores (its cosf / sinf are the rope kernel's, within rounding of the CPU's); seqs and their block tables stay in host memory (the scheduler's
 * metadata, checked as on the CPU) and, unless meta_dev is given, are packed into
 * the device workspace on ex->stream.  Every KV kind; the quantized codes and
 * online params are bit-identical to the CPU twin's.  The workspace size is that of
 * the packed metadata (0 is enough with meta_dev). */
size_t tmi_kv_write_cuda_workspace(const tmi_attn_seq *seqs, int32_t n_seq, int32_t block_len);
tm_status tmi_kv_write_cuda(const tmi_exec *ex, const tmi_kv_write_args *a);

#endif
