// attention_cuda.cu - the CUDA twin of attention_cpu.c for F32 and F16 caches:
// causal GQA attention of a ragged batch (prefill chunks and decode rows in one
// launch) over the paged KV cache, fp32 throughout, online softmax.
//
// A block takes one sequence, one kv head g and kWarps (row, query head) pairs of
// that head's group, pair i being row i / group, head g*group + i % group; so a
// decode row's group heads share every K/V tile the block reads (GQA), and a
// prefill's rows tile by kWarps / group.  Key tiles of kt tokens are gathered
// through the block table into shared memory as fp32 (row stride head_dim + 1:
// lane j reads key j's row without bank conflicts); in each warp lane j scores key
// j, the warp takes the tile's max and sum by shuffles, rescales its accumulator
// (lane owns dims lane + 32r) and adds the tile's p_j * v_j.
//
// Each row reads only keys in [max(0, p - window + 1), p]; the block loads the
// union of its rows' ranges.  Long decode rows are one block each: split-K over
// the sequence (flash-decoding) is the next step, not here.
#include <math.h>

#include <cuda_fp16.h>

#include "paged_kv_cuda.h"

extern "C" {
#include "paged_kv.h"
}

namespace {

using tmi_kv_cuda::SeqMeta;

constexpr int kWarps = 8;
constexpr int kThreads = kWarps * 32;
constexpr int kMaxHeadDim = 256;
constexpr int kDimRegs = kMaxHeadDim / 32;

struct Params {
    const SeqMeta *meta;
    const int32_t *ids;
    const float *q;
    int64_t ldq;
    float *out;
    int64_t ldo;
    const void *base;
    int64_t block_stride, layer_offset, v_offset; // units (elements)
    int32_t block_len, head_dim, group, window, kt;
    float scale;
};

__device__ inline float load(const float *p) { return *p; }
__device__ inline float load(const __half *p) { return __half2float(*p); }

__device__ inline float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ inline float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Gathers keys [j0, j0 + kt) of kv head g (those <= kend) into ks / vs, fp32,
// [kt][head_dim + 1]; rows past kend are zero.
template <class T>
__device__ void load_tile(const Params &P, const SeqMeta &m, int32_t g, int32_t j0, int32_t kend, float *ks, float *vs)
{
    const int32_t d = P.head_dim, ld = d + 1;
    const T *base = static_cast<const T *>(P.base);
    for (int32_t idx = threadIdx.x; idx < P.kt * d; idx += blockDim.x) {
        const int32_t jj = idx / d, i = idx - jj * d, j = j0 + jj;
        float kv = 0.0f, vv = 0.0f;
        if (j <= kend) {
            const int64_t block = P.ids[m.bt_off + j / P.block_len];
            const int64_t off = block * P.block_stride + P.layer_offset +
                                ((int64_t)g * P.block_len + j % P.block_len) * d + i;
            kv = load(base + off);
            vv = load(base + off + P.v_offset);
        }
        ks[jj * ld + i] = kv;
        vs[jj * ld + i] = vv;
    }
}

// grid: x = tile of kWarps pairs, y = kv head, z = sequence.  Dynamic shared
// memory: ks, vs [kt][head_dim + 1] and qs [kWarps][head_dim], fp32.
template <class T>
__global__ void __launch_bounds__(kThreads) attention_kernel(Params P)
{
    extern __shared__ float smem[];
    const int32_t d = P.head_dim, ld = d + 1;
    float *ks = smem, *vs = ks + P.kt * ld, *qs = vs + P.kt * ld;
    const SeqMeta m = P.meta[blockIdx.z];
    const int32_t g = blockIdx.y, pairs = m.q_len * P.group, p0 = blockIdx.x * kWarps;
    if (p0 >= pairs) return; // the whole block: no barrier is skipped by a part of it
    const int32_t lane = threadIdx.x & 31, w = threadIdx.x >> 5, pi = p0 + w;
    const bool active = pi < pairs;
    const int32_t hist = m.kv_len - m.q_len;
    const int32_t t = active ? pi / P.group : 0, h = g * P.group + (active ? pi % P.group : 0);
    const int32_t p = hist + t, jlo = P.window > 0 && p - P.window + 1 > 0 ? p - P.window + 1 : 0;
    const int32_t t_first = p0 / P.group, t_last = min(pairs - 1, p0 + kWarps - 1) / P.group;
    const int32_t kend = hist + t_last;
    const int32_t kbeg = P.window > 0 ? max(0, hist + t_first - P.window + 1) : 0;

    float *qw = qs + w * d; // [head_dim]
    if (active) {
        const float *qr = P.q + (int64_t)(m.q_start + t) * P.ldq + (int64_t)h * d;
        for (int32_t i = lane; i < d; i += 32) qw[i] = qr[i];
    }
    float acc[kDimRegs];
#pragma unroll
    for (int r = 0; r < kDimRegs; r++) acc[r] = 0.0f;
    float mx = -INFINITY, sum = 0.0f;

    for (int32_t j0 = kbeg; j0 <= kend; j0 += P.kt) {
        __syncthreads(); // the last tile's readers are done (and qs is written)
        load_tile<T>(P, m, g, j0, kend, ks, vs);
        __syncthreads();
        if (!active || j0 > p || j0 + P.kt <= jlo) continue; // warp-uniform
        const int32_t j = j0 + lane;
        const bool valid = lane < P.kt && j >= jlo && j <= p;
        float s = -INFINITY;
        if (valid) {
            const float *kr = ks + lane * ld;
            float dot = 0.0f;
            for (int32_t i = 0; i < d; i++) dot += qw[i] * kr[i];
            s = dot * P.scale;
        }
        const float mnew = fmaxf(mx, warp_max(s)); // finite: the tile holds a valid key
        const float alpha = expf(mx - mnew);       // 0 on the first tile (mx = -inf)
        const float e = valid ? expf(s - mnew) : 0.0f;
        sum = sum * alpha + warp_sum(e);
        mx = mnew;
#pragma unroll
        for (int r = 0; r < kDimRegs; r++) acc[r] *= alpha;
        for (int32_t jj = 0; jj < P.kt; jj++) {
            const float ej = __shfl_sync(0xffffffffu, e, jj);
            if (ej == 0.0f) continue; // warp-uniform: masked keys
            const float *vr = vs + jj * ld;
#pragma unroll
            for (int r = 0; r < kDimRegs; r++)
                if (lane + 32 * r < d) acc[r] += ej * vr[lane + 32 * r];
        }
    }
    if (!active) return;
    // q of this (row, head) sits in qs, so out may share q's storage
    float *orow = P.out + (int64_t)(m.q_start + t) * P.ldo + (int64_t)h * d;
    const float inv = 1.0f / sum;
#pragma unroll
    for (int r = 0; r < kDimRegs; r++)
        if (lane + 32 * r < d) orow[lane + 32 * r] = acc[r] * inv;
}

tm_status attention_check(const tmi_exec *ex, const tmi_attention_args *a, int32_t *max_q_len)
{
    const tmi_kv_cache *c = &a->cache;
    tm_status st = tmi_kv_check_cache("attention_cuda", c);
    if (st != TM_OK) return st;
    if (c->dtype != TM_F32 && c->dtype != TM_F16)
        return tmi_fail(TM_ERR_UNSUPPORTED, "attention_cuda: kv cache dtype must be F32 or F16 (INT8/INT4 not yet), got %d",
                        (int)c->dtype);
    if (c->head_dim > kMaxHeadDim)
        return tmi_fail(TM_ERR_UNSUPPORTED, "attention_cuda: head_dim must be <= %d, got %d", kMaxHeadDim, c->head_dim);
    if (a->n_head <= 0 || a->n_head % c->n_kv_head != 0)
        return tmi_fail(TM_ERR_INVALID_ARG, "attention_cuda: n_head must be a positive multiple of n_kv_head (%d), got %d",
                        c->n_kv_head, a->n_head);
    if (a->window < 0) return tmi_fail(TM_ERR_INVALID_ARG, "attention_cuda: window must be >= 0, got %d", a->window);
    if (a->n_seq > 65535 || c->n_kv_head > 65535)
        return tmi_fail(TM_ERR_UNSUPPORTED, "attention_cuda: n_seq and n_kv_head must be <= 65535, got %d, %d", a->n_seq,
                        c->n_kv_head);
    int64_t width = (int64_t)a->n_head * c->head_dim;
    if (!a->q || !a->out) return tmi_fail(TM_ERR_INVALID_ARG, "attention_cuda: q and out must not be NULL");
    if (a->ldq < width || a->ldo < width)
        return tmi_fail(TM_ERR_INVALID_ARG,
                        "attention_cuda: ldq and ldo must be >= n_head * head_dim (%lld), got %lld, %lld",
                        (long long)width, (long long)a->ldq, (long long)a->ldo);
    int32_t max_kv_len;
    if ((st = tmi_kv_check_seqs("attention_cuda", a->seqs, a->n_seq, c->block_len, &max_kv_len)) != TM_OK) return st;
    *max_q_len = 0;
    for (int32_t s = 0; s < a->n_seq; s++)
        if (a->seqs[s].q_len > *max_q_len) *max_q_len = a->seqs[s].q_len;
    size_t need = tmi_attention_cuda_workspace(a->seqs, a->n_seq, c->block_len);
    return *max_q_len ? tmi_kv_cuda::check_workspace("attention_cuda", ex, need) : TM_OK;
}

} // namespace

extern "C" size_t tmi_attention_cuda_workspace(const tmi_attn_seq *seqs, int32_t n_seq, int32_t block_len)
{
    return tmi_kv_cuda::meta_bytes(seqs, n_seq, block_len);
}

extern "C" tm_status tmi_attention_cuda(const tmi_exec *ex, const tmi_attention_args *a)
{
    if (!ex || !a) return tmi_fail(TM_ERR_INVALID_ARG, "attention_cuda: exec and args must not be NULL");
    if (a->n_seq == 0) return TM_OK;
    int32_t max_q_len = 0;
    tm_status st = attention_check(ex, a, &max_q_len);
    if (st != TM_OK || max_q_len == 0) return st;

    const tmi_kv_cache *c = &a->cache;
    cudaStream_t stream = static_cast<cudaStream_t>(ex->stream);
    if ((st = tmi_kv_cuda::pack("attention_cuda", a->seqs, a->n_seq, c->block_len, ex->workspace, stream)) != TM_OK)
        return st;
    Params P;
    P.meta = static_cast<const SeqMeta *>(ex->workspace);
    P.ids = static_cast<const int32_t *>(ex->workspace) + 4 * (int64_t)a->n_seq;
    P.q = a->q;
    P.ldq = a->ldq;
    P.out = a->out;
    P.ldo = a->ldo;
    P.base = c->base;
    P.block_stride = c->block_stride;
    P.layer_offset = c->layer_offset;
    P.v_offset = c->v_offset;
    P.block_len = c->block_len;
    P.head_dim = c->head_dim;
    P.group = a->n_head / c->n_kv_head;
    P.window = a->window;
    P.kt = c->head_dim <= 128 ? 32 : 16; // keeps shared memory under the 48 KiB default
    P.scale = a->scale;
    size_t smem = ((size_t)2 * P.kt * (c->head_dim + 1) + (size_t)kWarps * c->head_dim) * sizeof(float);
    int64_t tiles = ((int64_t)max_q_len * P.group + kWarps - 1) / kWarps;
    if (tiles > INT32_MAX) return tmi_fail(TM_ERR_UNSUPPORTED, "attention_cuda: q_len * group too large");
    dim3 grid((unsigned)tiles, (unsigned)c->n_kv_head, (unsigned)a->n_seq);
    if (c->dtype == TM_F16) attention_kernel<__half><<<grid, kThreads, smem, stream>>>(P);
    else attention_kernel<float><<<grid, kThreads, smem, stream>>>(P);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return tmi_fail(TM_ERR_DEVICE, "attention_cuda: launch failed: %s", cudaGetErrorString(e));
    return TM_OK;
}
