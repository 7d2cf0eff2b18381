// attention_merge_cuda.h - the split-K merge of a decode row's partial softmax
// states, element by element: combine_kernel (attention_rows_cuda.cu) stores it,
// and the small-m GEMM computes it in place of reading out when the merge was left
// to it (tmi_attn_merge, attention.h), so both give the same bits.  Internal to
// the CUDA kernels.
#ifndef TMI_ATTENTION_MERGE_CUDA_H
#define TMI_ATTENTION_MERGE_CUDA_H

#include <math.h>

#include "paged_kv_cuda.h"

// Weight of a softmax state with max m when merged under the common max mm.
__device__ __forceinline__ float tmi_attn_merge_weight(float m, float mm) { return m == -INFINITY ? 0.0f : exp2f(m - mm); }

// The splits of split_len keys that sequence meta (one decode row or more) spans:
// its key range [kb_seq, kv_len), kb_seq > 0 only under a sliding window.
__device__ __forceinline__ int32_t tmi_attn_seq_splits(const tmi_kv_cuda::SeqMeta &m, int32_t window,
                                                       int32_t split_len)
{
    const int32_t hist = m.kv_len - m.q_len, kb_seq = window > 0 ? max(0, hist - window + 1) : 0;
    return (int32_t)(((int64_t)m.kv_len - kb_seq + split_len - 1) / split_len);
}

// The merge of ns >= 1 states of one (row, head): acc [ns][d] (unnormalised) and
// ml [ns] {max, sum}.  Element i is tmi_attn_merge_sum(..., i) * inv_l: the states
// are taken in split order with explicit FMAs, so every kernel gets the same bits.
// The loads of a loop are issued before its arithmetic (unrolled by 8): one round
// trip to memory a loop for the usual split counts.
struct tmi_attn_merge_state {
    float mm, inv_l; // the common max, 1 / the weighted sum of the states' sums
};

__device__ __forceinline__ tmi_attn_merge_state tmi_attn_merge_begin(const float2 *ml, int32_t ns)
{
    float mm = -INFINITY;
#pragma unroll 8
    for (int32_t j = 0; j < ns; j++) mm = fmaxf(mm, ml[j].x);
    float l = 0.0f;
#pragma unroll 8
    for (int32_t j = 0; j < ns; j++) {
        const float2 s = ml[j];
        l = fmaf(tmi_attn_merge_weight(s.x, mm), s.y, l);
    }
    return tmi_attn_merge_state{mm, 1.0f / l};
}

// The weighted sum of element i over the states (before the * inv_l).
__device__ __forceinline__ float tmi_attn_merge_sum(const float *acc, const float2 *ml, int32_t ns, int32_t d,
                                                    int32_t i, float mm)
{
    float a = 0.0f;
#pragma unroll 8
    for (int32_t j = 0; j < ns; j++) a = fmaf(tmi_attn_merge_weight(ml[j].x, mm), acc[(int64_t)j * d + i], a);
    return a;
}

// Element i of the merged output.
__device__ __forceinline__ float tmi_attn_merge_elem(const float *acc, const float2 *ml, int32_t ns, int32_t d,
                                                     int32_t i)
{
    const tmi_attn_merge_state st = tmi_attn_merge_begin(ml, ns);
    return tmi_attn_merge_sum(acc, ml, ns, d, i, st.mm) * st.inv_l;
}

#endif
