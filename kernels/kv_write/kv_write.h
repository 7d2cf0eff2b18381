/* kv_write.h - store the new tokens' K and V of one layer into their cache blocks. */
#ifndef TMI_KV_WRITE_H
#define TMI_KV_WRITE_H

#include "../attention/attention.h"

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
} tmi_kv_write_args;

tm_status tmi_kv_write_cpu(const tmi_exec *ex, const tmi_kv_write_args *a);
/* CUDA twin: k, v, cache.base and cache.qparams (static quantized KV) are device
 * pointers; seqs and their block tables stay in host memory (the scheduler's
 * metadata, checked as on the CPU) and, unless meta_dev is given, are packed into
 * the device workspace on ex->stream.  Every KV kind; the quantized codes and
 * online params are bit-identical to the CPU twin's.  The workspace size is that of
 * the packed metadata (0 is enough with meta_dev). */
size_t tmi_kv_write_cuda_workspace(const tmi_attn_seq *seqs, int32_t n_seq, int32_t block_len);
tm_status tmi_kv_write_cuda(const tmi_exec *ex, const tmi_kv_write_args *a);

#endif
