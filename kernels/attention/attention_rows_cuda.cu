// attention_rows_cuda.cu - the kernels behind tmi_attention_cuda (attention_cuda.cu
// plans and launches them; attention_kernels_cuda.h has the work split):
//   rows_kernel     one block: up to MAXR (row, head) pairs of a kv head over one key
//                   range, either a split of a decode sequence (writing the split's
//                   partial softmax state, or the output when it is the only split)
//                   or a prefill tile listed by plan_kernel (writing the output);
//   combine_kernel  merges the splits of each decode row;
//   plan_kernel     lists the prefill tiles from the device metadata, so a batch of
//                   many decode rows and a few long prefill rows launches only the
//                   prefill blocks that have work.
// fp32 arithmetic throughout: K/V are converted (or dequantized) to fp32 in
// registers, scores live in log2 units (q is pre-scaled by scale * log2 e) so the
// softmax uses exp2f.
#include <math.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "attention_kernels_cuda.h"
#include "attention_merge_cuda.h"
#include "../pdl_cuda.h"

namespace tmi_attn_cuda {
namespace {

using tmi_kv_cuda::SeqMeta;

constexpr unsigned kFull = 0xffffffffu;

template <int KIND> struct KindInfo {
    static constexpr int64_t unit = KIND == KIND_F32 ? 4 : KIND == KIND_F16 ? 2 : 1; // bytes a layout unit
    static constexpr bool quant = KIND == KIND_I8 || KIND == KIND_I4;
};

// Element i of a row as fp32 (for the quantized kinds: the signed code).
template <int KIND> __device__ inline float elem(const unsigned char *row, int32_t i)
{
    if (KIND == KIND_F32) return reinterpret_cast<const float *>(row)[i];
    if (KIND == KIND_F16) return __half2float(reinterpret_cast<const __half *>(row)[i]);
    if (KIND == KIND_I8) return (float)(int32_t)(int8_t)row[i];
    return (float)((int32_t)((row[i >> 1] >> ((i & 1) * 4)) & 15u) - 8);
}

__device__ inline float half_lo(uint32_t u) { return __half2float(__ushort_as_half((unsigned short)(u & 0xffffu))); }
__device__ inline float half_hi(uint32_t u) { return __half2float(__ushort_as_half((unsigned short)(u >> 16))); }

// Dims [d0, d0 + 8) of one K or V row.  The generic form reads element by element
// (any alignment, any head_dim); the VEC forms read one wide word and need the
// row 16 (F16, F32), 8 (I8) or 4 (INT4) byte aligned and head_dim % 8 == 0.  The
// raw word stays in registers until get(), so a lane's loads are all in flight
// before the first is used.
template <int KIND, bool VEC> struct Chunk {
    float v[kChunk];
    __device__ void zero()
    {
#pragma unroll
        for (int e = 0; e < kChunk; e++) v[e] = 0.0f;
    }
    __device__ void load(const unsigned char *row, int32_t d0, int32_t d)
    {
#pragma unroll
        for (int e = 0; e < kChunk; e++) v[e] = d0 + e < d ? elem<KIND>(row, d0 + e) : 0.0f;
    }
    __device__ void get(float x[kChunk]) const
    {
#pragma unroll
        for (int e = 0; e < kChunk; e++) x[e] = v[e];
    }
};

template <> struct Chunk<KIND_F16, true> {
    uint4 w;
    __device__ void zero() { w = make_uint4(0, 0, 0, 0); }
    __device__ void load(const unsigned char *row, int32_t d0, int32_t d)
    {
        if (d0 < d) w = *reinterpret_cast<const uint4 *>(row + 2 * d0);
        else zero();
    }
    __device__ void get(float x[kChunk]) const
    {
        x[0] = half_lo(w.x), x[1] = half_hi(w.x), x[2] = half_lo(w.y), x[3] = half_hi(w.y);
        x[4] = half_lo(w.z), x[5] = half_hi(w.z), x[6] = half_lo(w.w), x[7] = half_hi(w.w);
    }
};

template <> struct Chunk<KIND_F32, true> {
    float4 a, b;
    __device__ void zero() { a = b = make_float4(0.0f, 0.0f, 0.0f, 0.0f); }
    __device__ void load(const unsigned char *row, int32_t d0, int32_t d)
    {
        if (d0 < d) {
            const float4 *p = reinterpret_cast<const float4 *>(row + 4 * d0);
            a = p[0];
            b = p[1];
        } else {
            zero();
        }
    }
    __device__ void get(float x[kChunk]) const
    {
        x[0] = a.x, x[1] = a.y, x[2] = a.z, x[3] = a.w, x[4] = b.x, x[5] = b.y, x[6] = b.z, x[7] = b.w;
    }
};

template <> struct Chunk<KIND_I8, true> {
    uint2 w;
    __device__ void zero() { w = make_uint2(0, 0); }
    __device__ void load(const unsigned char *row, int32_t d0, int32_t d)
    {
        if (d0 < d) w = *reinterpret_cast<const uint2 *>(row + d0);
        else zero();
    }
    __device__ void get(float x[kChunk]) const
    {
        // code + 128 as the low byte of the float 2^23 + (code + 128): one byte permute
        // and one add a value, where an int-to-float conversion runs at a quarter rate
        const uint32_t lo = w.x ^ 0x80808080u, hi = w.y ^ 0x80808080u;
#pragma unroll
        for (int e = 0; e < 4; e++) {
            x[e] = __uint_as_float(__byte_perm(lo, 0x4b000000u, 0x7540u + e)) - 8388736.0f;
            x[e + 4] = __uint_as_float(__byte_perm(hi, 0x4b000000u, 0x7540u + e)) - 8388736.0f;
        }
    }
};

template <> struct Chunk<KIND_I4, true> {
    uint32_t w;
    __device__ void zero() { w = 0x88888888u; } // codes 0
    __device__ void load(const unsigned char *row, int32_t d0, int32_t d)
    {
        if (d0 < d) w = *reinterpret_cast<const uint32_t *>(row + d0 / 2);
        else zero();
    }
    __device__ void get(float x[kChunk]) const
    {
#pragma unroll
        for (int e = 0; e < kChunk; e++) // the nibble (code + 8) as the low bits of 2^23 + nibble
            x[e] = __uint_as_float(((w >> (4 * e)) & 15u) | 0x4b000000u) - 8388616.0f;
    }
};

// The online {scale, zero point} of a row: 8 bytes, 8-byte aligned when VEC.
template <bool VEC> __device__ inline float2 load_params(const unsigned char *p)
{
    if constexpr (VEC) {
        return *reinterpret_cast<const float2 *>(p);
    } else {
        uint32_t u[2];
#pragma unroll
        for (int k = 0; k < 2; k++)
            u[k] = (uint32_t)p[4 * k] | (uint32_t)p[4 * k + 1] << 8 | (uint32_t)p[4 * k + 2] << 16 |
                   (uint32_t)p[4 * k + 3] << 24;
        return make_float2(__uint_as_float(u[0]), __uint_as_float(u[1]));
    }
}

__device__ inline void store_out(void *out, int32_t dtype, int64_t idx, float v)
{
    if (dtype == TM_F16) static_cast<__half *>(out)[idx] = __float2half_rn(v);
    else if (dtype == TM_BF16) static_cast<__nv_bfloat16 *>(out)[idx] = __float2bfloat16_rn(v);
    else static_cast<float *>(out)[idx] = v;
}

__device__ __forceinline__ float merge_weight(float m, float mm) { return tmi_attn_merge_weight(m, mm); }

// Sum over the lpk lanes that read one key row (lpk a power of two, uniform).
__device__ inline float key_group_sum(float x, int32_t lpk)
{
#pragma unroll
    for (int o = 16; o >= 1; o >>= 1)
        if (o < lpk) x += __shfl_xor_sync(kFull, x, o);
    return x;
}

// Which sequence, kv head, pairs and keys a block takes.
struct Work {
    int32_t s, g, pair0, npair, split, nsplit_s, kb, ke;
    SeqMeta m;
};

template <int MAXR> __device__ inline bool find_work(const Params &P, Work &w)
{
    if (P.map) {
        const int2 e = P.map[blockIdx.x];
        if (e.x < 0) return false;
        w.s = e.x, w.g = blockIdx.y, w.pair0 = e.y * MAXR, w.split = 0;
    } else {
        w.s = blockIdx.z, w.g = blockIdx.y / P.row_tiles, w.split = blockIdx.x;
        w.pair0 = (blockIdx.y - w.g * P.row_tiles) * MAXR;
    }
    w.m = P.meta[w.s];
    const SeqMeta &m = w.m;
    if (!P.map && (m.q_len < 1 || m.q_len > kDecodeMaxQ)) return false; // a prefill sequence
    const int32_t pairs = m.q_len * P.group;
    if (w.pair0 >= pairs) return false;
    w.npair = min(MAXR, pairs - w.pair0);
    const int32_t hist = m.kv_len - m.q_len;
    const int32_t t_first = w.pair0 / P.group, t_last = (w.pair0 + w.npair - 1) / P.group;
    w.kb = P.window > 0 ? max(0, hist + t_first - P.window + 1) : 0;
    w.ke = hist + t_last + 1;
    w.nsplit_s = 1;
    if (!P.map) { // the splits tile [kb_seq, kv_len) the same way for every row tile (combine_kernel too)
        const int32_t kb_seq = P.window > 0 ? max(0, hist - P.window + 1) : 0;
        w.nsplit_s = tmi_attn_seq_splits(m, P.window, P.split_len);
        if (w.split >= w.nsplit_s) return false;
        const int64_t lo = (int64_t)kb_seq + (int64_t)w.split * P.split_len;
        w.kb = (int32_t)max((int64_t)w.kb, lo);
        w.ke = (int32_t)min((int64_t)w.ke, lo + P.split_len);
    }
    return true; // kb >= ke is possible (a split past this tile's rows): it writes an empty state
}

// Dynamic shared memory: acc [kWarps][MAXR][head_dim] fp32, then {max, sum}
// [kWarps][MAXR] float2.  A block never returns after its first barrier.
template <int KIND, bool VEC, int MAXR> __global__ void __launch_bounds__(kThreads) rows_kernel(const Params P)
{
    constexpr bool QUANT = KindInfo<KIND>::quant;
    constexpr int64_t UNIT = KindInfo<KIND>::unit;
    constexpr int C = MAXR == 1 ? 8 : MAXR >= 8 ? 2 : 4; // keys in flight per key group and loop step
    extern __shared__ float smem[];
    tmi_pdl_trigger(); // the o projection may start streaming its weights
    tmi_pdl_wait();    // launched as a programmatic dependent: q and K/V are kv_write's, the tiles plan_kernel's
    Work w;
    if (!find_work<MAXR>(P, w)) return; // uniform over the block
    const SeqMeta &m = w.m;
    const int32_t d = P.head_dim, lpk = P.lpk, kpw = 32 / lpk, hist = m.kv_len - m.q_len;
    const int32_t lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int32_t d0 = (lane & (lpk - 1)) * kChunk;     // this lane's dims of a key row
    const int32_t ng = kWarps * kpw, gi = warp * kpw + lane / lpk; // key groups; mine

    float q[MAXR][kChunk], qsum[MAXR]; // pre-scaled q; its sum (quantized K: zp * sum(q))
    int32_t rlo[MAXR], rhi[MAXR];      // each row's keys [rlo, rhi]; rhi -1 on unused rows
#pragma unroll
    for (int r = 0; r < MAXR; r++) {
        const int32_t pi = w.pair0 + r, t = pi / P.group, h = w.g * P.group + (pi - t * P.group);
        const bool used = r < w.npair;
        rhi[r] = used ? hist + t : -1;
        rlo[r] = P.window > 0 ? max(0, hist + t - P.window + 1) : 0;
        const float *qr = P.q + (int64_t)(m.q_start + t) * P.ldq + (int64_t)h * d; // [head_dim]
        float sum = 0.0f;
#pragma unroll
        for (int e = 0; e < kChunk; e++) {
            q[r][e] = used && d0 + e < d ? qr[d0 + e] * P.scale_log2 : 0.0f;
            sum += q[r][e];
        }
        qsum[r] = QUANT ? key_group_sum(sum, lpk) : 0.0f;
    }
    float ks = 1.0f, kz = 0.0f, vs = 1.0f, vz = 0.0f; // static quantization params of kv head g
    if (QUANT && P.qparams) {
        ks = P.qparams[w.g], kz = P.qparams[P.n_kv_head + w.g];
        vs = P.qparams[2 * P.n_kv_head + w.g], vz = P.qparams[3 * P.n_kv_head + w.g];
    }

    float mx[MAXR], sm[MAXR], acc[MAXR][kChunk], zacc[MAXR]; // this key group's softmax state
#pragma unroll
    for (int r = 0; r < MAXR; r++) {
        mx[r] = -INFINITY, sm[r] = 0.0f, zacc[r] = 0.0f;
#pragma unroll
        for (int e = 0; e < kChunk; e++) acc[r][e] = 0.0f;
    }
    const unsigned char *base = static_cast<const unsigned char *>(P.base);
    const int32_t *table = P.ids + m.bt_off;
    const int64_t row0 = (int64_t)w.g * P.block_len; // kv head g's first row in a block

    for (int32_t k0 = w.kb; k0 < w.ke; k0 += ng * C) {
        Chunk<KIND, VEC> kc[C], vc[C];
        float2 kp[C], vp[C]; // {scale, zp} of each key's K and V row
        int32_t jj[C];
#pragma unroll
        for (int c = 0; c < C; c++) {
            const int32_t j = k0 + c * ng + gi; // a step's keys are consecutive across the block
            jj[c] = j;
            kp[c] = make_float2(ks, kz), vp[c] = make_float2(vs, vz);
            if (j < w.ke) {
                const int32_t bi = P.bl_shift >= 0 ? j >> P.bl_shift : j / P.block_len;
                const int64_t blk = (int64_t)table[bi] * P.block_stride + P.layer_offset;
                const int64_t row = row0 + (j - bi * P.block_len);
                const unsigned char *kr = base + (blk + row * P.row_units) * UNIT;
                kc[c].load(kr, d0, d);
                vc[c].load(kr + P.v_offset * UNIT, d0, d);
                if (QUANT && !P.qparams) {
                    const unsigned char *pp = base + blk + P.param_offset + row * 8;
                    kp[c] = load_params<VEC>(pp);
                    vp[c] = load_params<VEC>(pp + P.v_offset);
                }
            } else {
                kc[c].zero();
                vc[c].zero();
            }
        }
        float sc[MAXR][C]; // scores, then probabilities
#pragma unroll
        for (int c = 0; c < C; c++) {
            float x[kChunk];
            kc[c].get(x);
#pragma unroll
            for (int r = 0; r < MAXR; r++) {
                float dot = 0.0f;
#pragma unroll
                for (int e = 0; e < kChunk; e++) dot = fmaf(q[r][e], x[e], dot);
                sc[r][c] = dot;
            }
        }
#pragma unroll
        for (int o = 16; o >= 1; o >>= 1)
            if (o < lpk) {
#pragma unroll
                for (int r = 0; r < MAXR; r++)
#pragma unroll
                    for (int c = 0; c < C; c++) sc[r][c] += __shfl_xor_sync(kFull, sc[r][c], o);
            }
#pragma unroll
        for (int r = 0; r < MAXR; r++) {
            float cmax = -INFINITY;
#pragma unroll
            for (int c = 0; c < C; c++) {
                float v = QUANT ? fmaf(kp[c].x, sc[r][c], kp[c].y * qsum[r]) : sc[r][c];
                v = jj[c] < w.ke && jj[c] >= rlo[r] && jj[c] <= rhi[r] ? v : -INFINITY;
                sc[r][c] = v;
                cmax = fmaxf(cmax, v);
            }
            const float mnew = fmaxf(mx[r], cmax);
            const float mref = mnew == -INFINITY ? 0.0f : mnew; // nothing seen yet: every weight is 0
            const float alpha = exp2f(mx[r] - mref);
            float psum = 0.0f;
#pragma unroll
            for (int c = 0; c < C; c++) {
                sc[r][c] = exp2f(sc[r][c] - mref);
                psum += sc[r][c];
            }
            sm[r] = sm[r] * alpha + psum;
            mx[r] = mnew;
            zacc[r] *= alpha;
#pragma unroll
            for (int e = 0; e < kChunk; e++) acc[r][e] *= alpha;
        }
#pragma unroll
        for (int c = 0; c < C; c++) {
            float x[kChunk];
            vc[c].get(x);
#pragma unroll
            for (int r = 0; r < MAXR; r++) {
                const float p = QUANT ? sc[r][c] * vp[c].x : sc[r][c]; // v = code * scale + zp
                if (QUANT) zacc[r] = fmaf(sc[r][c], vp[c].y, zacc[r]);
#pragma unroll
                for (int e = 0; e < kChunk; e++) acc[r][e] = fmaf(p, x[e], acc[r][e]);
            }
        }
    }

    // merge the key groups of the warp (lanes lpk, 2 lpk, ... apart)
#pragma unroll
    for (int r = 0; r < MAXR; r++)
#pragma unroll
        for (int e = 0; e < kChunk; e++) acc[r][e] += zacc[r];
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        if (o < lpk) continue;
#pragma unroll
        for (int r = 0; r < MAXR; r++) {
            const float mo = __shfl_xor_sync(kFull, mx[r], o), so = __shfl_xor_sync(kFull, sm[r], o);
            const float mm = fmaxf(mx[r], mo), a1 = merge_weight(mx[r], mm), a2 = merge_weight(mo, mm);
            sm[r] = sm[r] * a1 + so * a2;
            mx[r] = mm;
#pragma unroll
            for (int e = 0; e < kChunk; e++) acc[r][e] = acc[r][e] * a1 + __shfl_xor_sync(kFull, acc[r][e], o) * a2;
        }
    }
    // then the warps, through shared memory
    float *s_acc = smem;                                                    // [kWarps][MAXR][d]
    float2 *s_ml = reinterpret_cast<float2 *>(smem + (size_t)kWarps * MAXR * d); // [kWarps][MAXR]
#pragma unroll
    for (int r = 0; r < MAXR; r++) {
        if (r >= w.npair) break;
        if (lane < lpk)
#pragma unroll
            for (int e = 0; e < kChunk; e++)
                if (d0 + e < d) s_acc[(warp * MAXR + r) * d + d0 + e] = acc[r][e];
        if (lane == 0) s_ml[warp * MAXR + r] = make_float2(mx[r], sm[r]);
    }
    __syncthreads();
    const bool partial = !P.map && w.nsplit_s > 1;
    for (int32_t idx = threadIdx.x; idx < w.npair * d; idx += kThreads) {
        const int32_t r = idx / d, i = idx - r * d;
        float mm = -INFINITY, l = 0.0f, a = 0.0f;
#pragma unroll
        for (int k = 0; k < kWarps; k++) mm = fmaxf(mm, s_ml[k * MAXR + r].x);
#pragma unroll
        for (int k = 0; k < kWarps; k++) {
            const float2 ml = s_ml[k * MAXR + r];
            const float wt = merge_weight(ml.x, mm);
            l += wt * ml.y;
            a += wt * s_acc[(k * MAXR + r) * d + i];
        }
        const int32_t pi = w.pair0 + r, t = pi / P.group, h = w.g * P.group + (pi - t * P.group);
        if (partial) { // unnormalised; an empty split stores {-inf, 0} and weighs nothing
            const int64_t ps = ((((int64_t)w.s * P.q_slot + t) * P.n_head + h) * P.nsplit) + w.split;
            P.part_acc[ps * d + i] = a;
            if (i == 0) P.part_ml[ps] = make_float2(mm, l);
        } else { // q of these pairs was read into registers above, so out may be q
            store_out(P.out, P.out_dtype, (int64_t)(m.q_start + t) * P.ldo + (int64_t)h * d + i, a / l);
        }
    }
}

// grid (ceil(n_head / kWarps), q_slot, n_seq): a warp per (decode row, head), a
// lane per head_dim / 32 elements, each the merge of tmi_attn_merge_elem (the same
// operations in the same order, the elements' sums side by side).
__global__ void __launch_bounds__(kThreads) combine_kernel(const Params P)
{
    tmi_pdl_trigger();
    tmi_pdl_wait(); // the partials are rows_kernel's
    const int32_t h = blockIdx.x * kWarps + (threadIdx.x >> 5), t = blockIdx.y, s = blockIdx.z;
    const SeqMeta m = P.meta[s];
    if (h >= P.n_head || m.q_len < 1 || m.q_len > kDecodeMaxQ || t >= m.q_len) return; // no barriers here
    const int32_t ns = tmi_attn_seq_splits(m, P.window, P.split_len);
    if (ns <= 1) return; // rows_kernel wrote the output itself
    const int32_t lane = threadIdx.x & 31, d = P.head_dim;
    const int64_t ps0 = (((int64_t)s * P.q_slot + t) * P.n_head + h) * P.nsplit;
    const int64_t orow = (int64_t)(m.q_start + t) * P.ldo + (int64_t)h * d;
    const float2 *ml = P.part_ml + ps0;
    const float *acc = P.part_acc + ps0 * d; // [ns][d]
    const tmi_attn_merge_state st = tmi_attn_merge_begin(ml, ns);
    // the lane's elements lane + 32 k side by side: each the sum of tmi_attn_merge_sum, in its order
    constexpr int kPer = kMaxHeadDim / 32;
    float o[kPer];
#pragma unroll
    for (int k = 0; k < kPer; k++) o[k] = 0.0f;
#pragma unroll 4
    for (int32_t j = 0; j < ns; j++) {
        const float w = tmi_attn_merge_weight(ml[j].x, st.mm);
#pragma unroll
        for (int k = 0; k < kPer; k++)
            if (lane + 32 * k < d) o[k] = fmaf(w, acc[(int64_t)j * d + lane + 32 * k], o[k]);
    }
#pragma unroll
    for (int k = 0; k < kPer; k++)
        if (lane + 32 * k < d) store_out(P.out, P.out_dtype, orow + lane + 32 * k, o[k] * st.inv_l);
}

constexpr int kPlanThreads = 1024;

// One block: sequences in chunks of 1024, an exclusive scan of their tile counts in
// shared memory, then every tile of the chunk finds its sequence by binary search.
__global__ void __launch_bounds__(kPlanThreads) plan_kernel(const SeqMeta *meta, int32_t n_seq, int32_t group,
                                                            int64_t tiles, int2 *map)
{
    __shared__ int32_t pre[kPlanThreads + 1]; // pre[i]: tiles of the chunk's sequences before i
    __shared__ int32_t warp_sum[kPlanThreads / 32];
    const int32_t tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    int64_t done = 0;
    for (int32_t c0 = 0; c0 < n_seq; c0 += kPlanThreads) {
        int32_t n = 0;
        if (c0 + tid < n_seq) {
            const int32_t ql = meta[c0 + tid].q_len;
            if (ql > kDecodeMaxQ) n = (int32_t)(((int64_t)ql * group + kPrefillPairs - 1) / kPrefillPairs);
        }
        int32_t x = n; // inclusive scan: warp, then the warp totals
        for (int o = 1; o < 32; o <<= 1) {
            const int32_t y = __shfl_up_sync(kFull, x, o);
            if (lane >= o) x += y;
        }
        if (lane == 31) warp_sum[warp] = x;
        __syncthreads();
        if (warp == 0) {
            int32_t v = warp_sum[lane];
            for (int o = 1; o < 32; o <<= 1) {
                const int32_t y = __shfl_up_sync(kFull, v, o);
                if (lane >= o) v += y;
            }
            warp_sum[lane] = v;
        }
        __syncthreads();
        pre[tid + 1] = x + (warp > 0 ? warp_sum[warp - 1] : 0);
        if (tid == 0) pre[0] = 0;
        __syncthreads();
        const int32_t total = pre[kPlanThreads];
        for (int32_t b = tid; b < total; b += kPlanThreads) {
            int32_t lo = 0, hi = kPlanThreads - 1; // the last i with pre[i] <= b
            while (lo < hi) {
                const int32_t mid = (lo + hi + 1) >> 1;
                if (pre[mid] <= b) lo = mid;
                else hi = mid - 1;
            }
            if (done + b < tiles) map[done + b] = make_int2(c0 + lo, b - pre[lo]);
        }
        done += total;
        __syncthreads(); // pre and warp_sum are rewritten for the next chunk
    }
    // tiles the host counted but the device metadata does not have: no work
    for (int64_t b = done + tid; b < tiles; b += kPlanThreads) map[b] = make_int2(-1, 0);
}

template <int KIND, bool VEC, int MAXR> cudaError_t launch_rows(const Params &P, dim3 grid, cudaStream_t stream)
{
    const size_t smem = (size_t)kWarps * MAXR * (P.head_dim + 2) * sizeof(float);
    return tmi_launch_pdl(rows_kernel<KIND, VEC, MAXR>, grid, kThreads, smem, stream, P);
}

// The generic (unaligned) path has one row capacity, 8, to bound the variants.
template <int KIND>
cudaError_t launch_rows_kind(const Params &P, bool vec, int maxr, dim3 grid, cudaStream_t stream)
{
    if (!vec) return launch_rows<KIND, false, 8>(P, grid, stream);
    switch (maxr) {
    case 1: return launch_rows<KIND, true, 1>(P, grid, stream);
    case 2: return launch_rows<KIND, true, 2>(P, grid, stream);
    case 4: return launch_rows<KIND, true, 4>(P, grid, stream);
    default: return launch_rows<KIND, true, 8>(P, grid, stream);
    }
}

cudaError_t launch_rows_any(const Params &P, Kind kind, bool vec, int maxr, dim3 grid, cudaStream_t stream)
{
    switch (kind) {
    case KIND_F32: return launch_rows_kind<KIND_F32>(P, vec, maxr, grid, stream);
    case KIND_F16: return launch_rows_kind<KIND_F16>(P, vec, maxr, grid, stream);
    case KIND_I8: return launch_rows_kind<KIND_I8>(P, vec, maxr, grid, stream);
    default: return launch_rows_kind<KIND_I4>(P, vec, maxr, grid, stream);
    }
}

} // namespace

cudaError_t launch_decode(const Params &P, Kind kind, bool vec, int maxr, int32_t n_seq, cudaStream_t stream)
{
    dim3 grid((unsigned)P.nsplit, (unsigned)(P.n_kv_head * P.row_tiles), (unsigned)n_seq);
    return launch_rows_any(P, kind, vec, vec ? maxr : 8, grid, stream);
}

cudaError_t launch_prefill(const Params &P, Kind kind, bool vec, int64_t tiles, cudaStream_t stream)
{
    static_assert(kPrefillPairs == 8, "prefill tiles are counted in pairs of the MAXR 8 kernel");
    dim3 grid((unsigned)tiles, (unsigned)P.n_kv_head);
    return launch_rows_any(P, kind, vec, 8, grid, stream);
}

cudaError_t launch_combine(const Params &P, int32_t n_seq, cudaStream_t stream)
{
    dim3 grid((unsigned)((P.n_head + kWarps - 1) / kWarps), (unsigned)P.q_slot, (unsigned)n_seq);
    return tmi_launch_pdl(combine_kernel, grid, kThreads, 0, stream, P);
}

cudaError_t launch_plan(const SeqMeta *meta, int32_t n_seq, int32_t group, int64_t tiles, int2 *map,
                        cudaStream_t stream)
{
    plan_kernel<<<1, kPlanThreads, 0, stream>>>(meta, n_seq, group, tiles, map);
    return cudaGetLastError();
}

} // namespace tmi_attn_cuda
