/* rope.h - rotary position embedding in HF's half-split layout (rotate_half):
 * for pair i in [0, head_dim/2): (x[i], x[i + head_dim/2]) rotated by
 * angle = pos * inv_freq[i].  Every scaling variant (linear, dynamic NTK, llama3)
 * is a different inv_freq table, computed by the caller (runtime/rope_freq.c). */
#ifndef TMI_ROPE_H
#define TMI_ROPE_H

#include "../common.h"

typedef struct tmi_rope_args {
    int64_t n_tok;
    int32_t n_head;
    int32_t head_dim;        /* even */
    float *x;                /* [n_tok][ld], heads at x + t*ld + h*head_dim, fp32, in place */
    int64_t ld;
    const int32_t *pos;      /* [n_tok] absolute positions */
    const float *inv_freq;   /* [head_dim/2] */
    float attn_factor;       /* cos/sin multiplier (1 for every variant here) */
} tmi_rope_args;

tm_status tmi_rope_cpu(const tmi_exec *ex, const tmi_rope_args *a);
/* CUDA twin: x, pos and inv_freq are device pointers; positions are not checked
 * on the host (a negative one rotates backwards, as the formula says). */
tm_status tmi_rope_cuda(const tmi_exec *ex, const tmi_rope_args *a);

#endif
