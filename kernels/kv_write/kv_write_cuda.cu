// kv_write_cuda.cu - the CUDA twin of kv_write_cpu.c: one block per (new row,
// sequence).  F32 / F16: its threads over the n_kv_head * head_dim values of K and
// of V; F16 rounds to nearest even like tmi_f32_to_f16.  INT8 / INT4: a warp per
// (kv head, K or V) row, which reduces the row's min and max for the online params
// and codes it with kv_quant.h's arithmetic (IEEE division and reciprocal, rintf,
// the same clamps), so both twins write the same bits.
//
// With rope (a decode layer's fused step) and a float cache, one kernel does the
// rotation and the stores: a thread per (head, pair) of a row, over the query
// heads (rotated in place), the kv heads' K (rotated in place and stored) and V
// (stored), so a row costs one round trip to memory whatever its width.  A
// quantized cache runs the rope kernel and then its own (the codes need the
// whole rotated row for their min and max).
#include <cuda_fp16.h>

#include "../attention/paged_kv_cuda.h"
#include "../pdl_cuda.h"
#include "../split_sums_cuda.h"

extern "C" {
#include "kv_write.h"
#include "../attention/kv_quant.h"
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

// One (head, pair) a thread; grid: x = row t of the sequence, y = sequence, z = chunks of
// kThreads units over (n_head + n_kv_head) x head_dim / 2: rope heads (queries, then the
// kv heads' K), then V.
template <class T>
__global__ void rope_kv_write_kernel(const SeqMeta *meta, const int32_t *ids, tmi_rope_args r, const float *v,
                                     int64_t ldv, T *base, Layout L, tmi_split_sums S)
{
    tmi_pdl_trigger();
    tmi_pdl_wait(); // q, k and v are the qkv GEMM's
    const SeqMeta m = meta[blockIdx.y];
    const int32_t t = blockIdx.x;
    if (t >= m.q_len) return;
    const int32_t half = L.head_dim / 2, n_q = r.n_head - L.n_kv_head;
    const int64_t unit = (int64_t)blockIdx.z * blockDim.x + threadIdx.x;
    if (unit >= (int64_t)(r.n_head + L.n_kv_head) * half) return;
    const int32_t h = (int32_t)(unit / half), i = (int32_t)(unit - (int64_t)h * half);
    const int64_t row = m.q_start + t;
    // every load of the thread goes out before any arithmetic: one round trip after meta's
    const int32_t is_v = h >= r.n_head, g = is_v ? h - r.n_head : h - n_q;
    const int32_t p = m.kv_len - m.q_len + t;
    const int64_t block = ids[m.bt_off + p / L.block_len];
    float *xh = is_v ? NULL : r.x + row * r.ld + (int64_t)h * L.head_dim;
    const float *src = is_v ? v + row * ldv + (int64_t)(h - r.n_head) * L.head_dim : xh;
    const float *const at[2] = {src + i, src + i + half};
    float a[2];
    tmi_sums_read_n<2>(S, at, row, a);
    float x0 = a[0], x1 = a[1];
    if (!is_v) { // rotated in place, rope_kernel's arithmetic
        const float angle = (float)r.pos[row] * r.inv_freq[i];
        float c, s;
        sincosf(angle, &s, &c); // one range reduction for both
        c *= r.attn_factor;
        s *= r.attn_factor;
        x0 = a[0] * c - a[1] * s;
        x1 = a[1] * c + a[0] * s;
        xh[i] = x0;
        xh[i + half] = x1;
        if (h < n_q) return;
    }
    const int32_t slot = p % L.block_len;
    const int64_t off = block * L.block_stride + L.layer_offset + (is_v ? L.v_offset : 0) +
                        ((int64_t)g * L.block_len + slot) * L.head_dim + i;
    store(base + off, x0);
    store(base + off + half, x1);
}

struct QuantLayout {
    int64_t block_stride, layer_offset, v_offset, param_offset; // bytes; params: from a layer's K start
    int32_t n_kv_head, head_dim, block_len, row_bytes, bits;
    const float *qparams; // static: [4][n_kv_head] fp32 device; NULL: online
};

// tmi_kv_code of kv_quant.h, line for line.
__device__ inline int32_t kv_code(float x, float inv_scale, float zp, int bits)
{
    const int32_t qmax = (1 << (bits - 1)) - 1, qmin = -qmax - 1;
    const float q = rintf((x - zp) * inv_scale);
    if (!(q >= (float)qmin)) return q != q ? 0 : qmin; // NaN codes as zp
    return q > (float)qmax ? qmax : (int32_t)q;
}

__device__ inline void store_f32_bytes(unsigned char *p, float v)
{
    if (((uintptr_t)p & 3u) == 0) {
        *reinterpret_cast<float *>(p) = v;
        return;
    }
    const uint32_t u = __float_as_uint(v);
    for (int k = 0; k < 4; k++) p[k] = (unsigned char)(u >> (8 * k));
}

// The online params of src[d], as tmi_kv_row_params: min and max over the row (a
// NaN first element poisons both, later NaNs are skipped, as the CPU's compares do).
__device__ inline void row_params(const float *src, int32_t d, int bits, float *scale, float *zp)
{
    const int lane = threadIdx.x & 31;
    float mn = INFINITY, mx = -INFINITY;
    for (int32_t i = lane; i < d; i += 32) {
        mn = fminf(mn, src[i]);
        mx = fmaxf(mx, src[i]);
    }
    for (int o = 16; o >= 1; o >>= 1) {
        mn = fminf(mn, __shfl_xor_sync(0xffffffffu, mn, o));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    }
    const float x0 = src[0];
    if (x0 != x0) mn = mx = x0;
    *scale = (mx - mn) / (float)((1 << bits) - 1);
    *zp = 0.5f * (mn + mx);
}

// grid: x = row t of the sequence, y = sequence; a warp per (kv head, K or V).
__global__ void kv_write_quant_kernel(const SeqMeta *meta, const int32_t *ids, const float *k, int64_t ldk,
                                      const float *v, int64_t ldv, unsigned char *base, QuantLayout L)
{
    const SeqMeta m = meta[blockIdx.y];
    const int32_t t = blockIdx.x;
    if (t >= m.q_len) return;
    const int32_t p = m.kv_len - m.q_len + t, slot = p % L.block_len;
    const int64_t blk = (int64_t)ids[m.bt_off + p / L.block_len] * L.block_stride + L.layer_offset;
    const int lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    for (int32_t rr = threadIdx.x >> 5; rr < 2 * L.n_kv_head; rr += warps) { // warp-uniform
        const int32_t g = rr >> 1, isv = rr & 1;
        const float *src = (isv ? v + (int64_t)(m.q_start + t) * ldv : k + (int64_t)(m.q_start + t) * ldk) +
                           (int64_t)g * L.head_dim; // [head_dim] fp32
        const int64_t row = (int64_t)g * L.block_len + slot, voff = isv ? L.v_offset : 0;
        float scale, zp;
        if (L.qparams) {
            scale = L.qparams[(2 * isv) * L.n_kv_head + g];
            zp = L.qparams[(2 * isv + 1) * L.n_kv_head + g];
        } else {
            row_params(src, L.head_dim, L.bits, &scale, &zp);
            if (lane == 0) {
                unsigned char *pp = base + blk + L.param_offset + row * 8 + voff;
                store_f32_bytes(pp, scale);
                store_f32_bytes(pp + 4, zp);
            }
        }
        const float inv = scale > 0.0f ? 1.0f / scale : 0.0f;
        unsigned char *dst = base + blk + row * L.row_bytes + voff;
        if (L.bits == 8) {
            for (int32_t i = lane; i < L.head_dim; i += 32)
                dst[i] = (unsigned char)(int8_t)kv_code(src[i], inv, zp, 8);
        } else {
            for (int32_t b = lane; b < L.row_bytes; b += 32) {
                const uint32_t lo = (uint32_t)(kv_code(src[2 * b], inv, zp, 4) + 8);
                const uint32_t hi = (uint32_t)(kv_code(src[2 * b + 1], inv, zp, 4) + 8);
                dst[b] = (unsigned char)(lo | hi << 4);
            }
        }
    }
}

} // namespace

extern "C" size_t tmi_kv_write_cuda_workspace(const tmi_attn_seq *seqs, int32_t n_seq, int32_t block_len)
{
    return tmi_kv_cuda::meta_bytes(seqs, n_seq, block_len);
}

static tm_status kv_write_check(const tmi_kv_write_args *a, int32_t *max_q_len)
{
    const tmi_kv_cache *c = &a->cache;
    tm_status st = tmi_kv_check_cache("kv_write_cuda", c);
    if (st != TM_OK) return st;
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
    *max_q_len = 0;
    for (int32_t s = 0; s < a->n_seq; s++)
        if (a->seqs[s].q_len > *max_q_len) *max_q_len = a->seqs[s].q_len;
    return TM_OK;
}

extern "C" tm_status tmi_kv_write_cuda(const tmi_exec *ex, const tmi_kv_write_args *a)
{
    if (!ex || !a) return tmi_fail(TM_ERR_INVALID_ARG, "kv_write_cuda: exec and args must not be NULL");
    if (a->n_seq == 0) return TM_OK;
    const tmi_kv_cache *c = &a->cache;
    int32_t max_q_len = 0;
    tm_status st = kv_write_check(a, &max_q_len);
    if (st != TM_OK || max_q_len == 0) return st;
    if ((st = tmi_kv_write_check_rope("kv_write_cuda", a)) != TM_OK) return st;
    const bool fused = a->rope && !tmi_kv_is_quant(c->dtype);
    if (tmi_sums_active(a->sums) && (!fused || !a->meta_dev))
        return tmi_fail(TM_ERR_UNSUPPORTED, "kv_write_cuda: split sums need rope, a float cache and meta_dev");
    if (a->rope && !fused && (st = tmi_rope_cuda(ex, a->rope)) != TM_OK) return st;
    size_t need = a->meta_dev ? 0 : tmi_kv_write_cuda_workspace(a->seqs, a->n_seq, c->block_len);
    if ((st = tmi_kv_cuda::check_workspace("kv_write_cuda", ex, need)) != TM_OK) return st;

    cudaStream_t stream = static_cast<cudaStream_t>(ex->stream);
    const int32_t *packed;
    if ((st = tmi_kv_cuda::device_meta("kv_write_cuda", a->meta_dev, a->seqs, a->n_seq, c->block_len, ex->workspace,
                                       stream, &packed)) != TM_OK)
        return st;
    const SeqMeta *meta = reinterpret_cast<const SeqMeta *>(packed);
    const int32_t *ids = packed + 4 * (int64_t)a->n_seq;
    dim3 grid((unsigned)max_q_len, (unsigned)a->n_seq);
    if (tmi_kv_is_quant(c->dtype)) {
        int32_t row_bytes = (int32_t)tmi_kv_row_units(c->dtype, c->head_dim);
        QuantLayout L = {c->block_stride, c->layer_offset, c->v_offset,
                         (int64_t)c->n_kv_head * c->block_len * row_bytes, c->n_kv_head, c->head_dim, c->block_len,
                         row_bytes, tmi_kv_bits(c->dtype), c->qparams};
        kv_write_quant_kernel<<<grid, kThreads, 0, stream>>>(meta, ids, a->k, a->ldk, a->v, a->ldv,
                                                             static_cast<unsigned char *>(c->base), L);
    } else if (fused) {
        Layout L = {c->block_stride, c->layer_offset, c->v_offset, c->n_kv_head, c->head_dim, c->block_len};
        int64_t units = (int64_t)(a->rope->n_head + c->n_kv_head) * (c->head_dim / 2);
        if ((units + kThreads - 1) / kThreads > 65535)
            return tmi_fail(TM_ERR_UNSUPPORTED, "kv_write_cuda: (n_head + n_kv_head) * head_dim / 2 must be <= %d",
                            65535 * kThreads);
        grid.z = (unsigned)((units + kThreads - 1) / kThreads);
        cudaError_t le =
            c->dtype == TM_F16
                ? tmi_launch_pdl(rope_kv_write_kernel<__half>, grid, kThreads, 0, stream, meta, ids, *a->rope, a->v,
                                 a->ldv, static_cast<__half *>(c->base), L, tmi_sums_value(a->sums))
                : tmi_launch_pdl(rope_kv_write_kernel<float>, grid, kThreads, 0, stream, meta, ids, *a->rope, a->v,
                                 a->ldv, static_cast<float *>(c->base), L, tmi_sums_value(a->sums));
        if (le != cudaSuccess)
            return tmi_fail(TM_ERR_DEVICE, "kv_write_cuda: launch failed: %s", cudaGetErrorString(le));
    } else {
        int64_t width = (int64_t)c->n_kv_head * c->head_dim;
        Layout L = {c->block_stride, c->layer_offset, c->v_offset, c->n_kv_head, c->head_dim, c->block_len};
        int threads = width >= kThreads ? kThreads : (int)((width + 31) / 32 * 32);
        if (c->dtype == TM_F16)
            kv_write_kernel<__half><<<grid, threads, 0, stream>>>(meta, ids, a->k, a->ldk, a->v, a->ldv,
                                                                  static_cast<__half *>(c->base), L);
        else
            kv_write_kernel<float><<<grid, threads, 0, stream>>>(meta, ids, a->k, a->ldk, a->v, a->ldv,
                                                                 static_cast<float *>(c->base), L);
    }
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return tmi_fail(TM_ERR_DEVICE, "kv_write_cuda: launch failed: %s", cudaGetErrorString(e));
    return TM_OK;
}
