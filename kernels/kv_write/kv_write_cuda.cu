// kv_write_cuda.cu - the CUDA twin of kv_write_cpu.c for F32 and F16 caches: one
// block per (new row, sequence), its threads over the n_kv_head * head_dim values
// of K and of V; F16 rounds to nearest even like tmi_f32_to_f16, so both twins
// write the same bits.
#include <cuda_fp16.h>

#include "../attention/paged_kv_cuda.h"

extern "C" {
#include "kv_write.h"
#include "../attention/paged_kv.h"
}

namespace {

using tmi_kv_cuda::SeqMeta;

constexpr int kThreads = 128;

struct Layout {
    int64_t block_stride, layer_offset, v_offset; // units (elements)
    int32_t n_kv_head, head_dim, block_len;
};

__device__ inline void store(float *p, float v) { *p = v; }
__device__ inline void store(__half *p, float v) { *p = __float2half_rn(v); }

// grid: x = row t of the sequence, y = sequence.
template <class T>
__global__ void kv_write_kernel(const SeqMeta *meta, const int32_t *ids, const float *k, int64_t ldk, const float *v,
                                int64_t ldv, T *base, Layout L)
{
    const SeqMeta m = meta[blockIdx.y];
    const int32_t t = blockIdx.x;
    if (t >= m.q_len) return;
    const int32_t p = m.kv_len - m.q_len + t;
    const int64_t block = ids[m.bt_off + p / L.block_len];
    const int32_t slot = p % L.block_len;
    const float *kr = k + (int64_t)(m.q_start + t) * ldk; // [n_kv_head][head_dim] fp32
    const float *vr = v + (int64_t)(m.q_start + t) * ldv;
    const int32_t width = L.n_kv_head * L.head_dim;
    for (int32_t idx = threadIdx.x; idx < width; idx += blockDim.x) {
        const int32_t g = idx / L.head_dim, i = idx - g * L.head_dim;
        const int64_t off = block * L.block_stride + L.layer_offset + ((int64_t)g * L.block_len + slot) * L.head_dim + i;
        store(base + off, kr[idx]);
        store(base + off + L.v_offset, vr[idx]);
    }
}

} // namespace

extern "C" size_t tmi_kv_write_cuda_workspace(const tmi_attn_seq *seqs, int32_t n_seq, int32_t block_len)
{
    return tmi_kv_cuda::meta_bytes(seqs, n_seq, block_len);
}

extern "C" tm_status tmi_kv_write_cuda(const tmi_exec *ex, const tmi_kv_write_args *a)
{
    if (!ex || !a) return tmi_fail(TM_ERR_INVALID_ARG, "kv_write_cuda: exec and args must not be NULL");
    if (a->n_seq == 0) return TM_OK;
    const tmi_kv_cache *c = &a->cache;
    tm_status st = tmi_kv_check_cache("kv_write_cuda", c);
    if (st != TM_OK) return st;
    if (c->dtype != TM_F32 && c->dtype != TM_F16)
        return tmi_fail(TM_ERR_UNSUPPORTED, "kv_write_cuda: kv cache dtype must be F32 or F16 (INT8/INT4 not yet), got %d",
                        (int)c->dtype);
    int32_t max_kv_len;
    if ((st = tmi_kv_check_seqs("kv_write_cuda", a->seqs, a->n_seq, c->block_len, &max_kv_len)) != TM_OK) return st;
    if (a->n_seq > 65535)
        return tmi_fail(TM_ERR_UNSUPPORTED, "kv_write_cuda: n_seq must be <= 65535, got %d", a->n_seq);
    int64_t width = (int64_t)c->n_kv_head * c->head_dim;
    if (!a->k || !a->v) return tmi_fail(TM_ERR_INVALID_ARG, "kv_write_cuda: k and v must not be NULL");
    if (a->ldk < width || a->ldv < width)
        return tmi_fail(TM_ERR_INVALID_ARG,
                        "kv_write_cuda: ldk and ldv must be >= n_kv_head * head_dim (%lld), got %lld, %lld",
                        (long long)width, (long long)a->ldk, (long long)a->ldv);
    if (width > INT32_MAX) return tmi_fail(TM_ERR_UNSUPPORTED, "kv_write_cuda: n_kv_head * head_dim must fit in int32");
    int32_t max_q_len = 0;
    for (int32_t s = 0; s < a->n_seq; s++)
        if (a->seqs[s].q_len > max_q_len) max_q_len = a->seqs[s].q_len;
    if (max_q_len == 0) return TM_OK;
    size_t need = tmi_kv_write_cuda_workspace(a->seqs, a->n_seq, c->block_len);
    if ((st = tmi_kv_cuda::check_workspace("kv_write_cuda", ex, need)) != TM_OK) return st;

    cudaStream_t stream = static_cast<cudaStream_t>(ex->stream);
    if ((st = tmi_kv_cuda::pack("kv_write_cuda", a->seqs, a->n_seq, c->block_len, ex->workspace, stream)) != TM_OK)
        return st;
    const SeqMeta *meta = static_cast<const SeqMeta *>(ex->workspace);
    const int32_t *ids = static_cast<const int32_t *>(ex->workspace) + 4 * (int64_t)a->n_seq;
    Layout L = {c->block_stride, c->layer_offset, c->v_offset, c->n_kv_head, c->head_dim, c->block_len};
    dim3 grid((unsigned)max_q_len, (unsigned)a->n_seq);
    int threads = width >= kThreads ? kThreads : (int)((width + 31) / 32 * 32);
    if (c->dtype == TM_F16)
        kv_write_kernel<__half><<<grid, threads, 0, stream>>>(meta, ids, a->k, a->ldk, a->v, a->ldv,
                                                              static_cast<__half *>(c->base), L);
    else
        kv_write_kernel<float><<<grid, threads, 0, stream>>>(meta, ids, a->k, a->ldk, a->v, a->ldv,
                                                             static_cast<float *>(c->base), L);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return tmi_fail(TM_ERR_DEVICE, "kv_write_cuda: launch failed: %s", cudaGetErrorString(e));
    return TM_OK;
}
