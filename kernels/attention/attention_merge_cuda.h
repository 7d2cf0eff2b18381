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

// Element i of the merged output of ns >= 1 states: acc [ns][d] (unnormalised) and
// ml [ns] {max, sum}, in split order with explicit FMAs, so any kernel gets the
// same bits.
__device__ __forceinline__ float tmi_attn_merge_elem(const float *acc, const float2 *ml, int32_t ns, int32_t d,
                                                     int32_t i)
{
    float mm = -INFINITY;
    for (int32_t j = 0; j < ns; j++) mm = fmaxf(mm, ml[j].x);
    float l = 0.0f, a = 0.0f;
#pragma unroll 4
    for (int32_t j = 0; j < ns; j++) {
        const float2 s = ml[j];
        const float w = tmi_attn_merge_weight(s.x, mm);
        l = fmaf(w, s.y, l);
        a = fmaf(w, acc[(int64_t)j * d + i], a);
    }
    return a * (1.0f / l);
}

#endif
