// sample_cuda.cu - the CUDA twin of sample_cpu.c: one block of 1024 threads a row,
// one launch for the batch, no sort of the vocabulary.
//
// A row's probabilities p = exp((x - max) / t) live in shared memory when the row
// fits (vocab * 4 bytes beside ~25 KiB of state: up to ~50k ids on sm_90, ~35k on
// sm_80); longer rows recompute p from the logits in each pass (the same
// instructions, so the same bits).  Every cut - top-k, top-p, the draw - is a
// search in the strict order key = (bits(p) << 32) | ~id, descending, which is
// (p desc, id asc):
//   1. one pass counts the tokens and their masses into 1024 bins by bits 29..20
//      of p (p <= 1 keeps bit 30 clear): a bin's tokens all precede the next
//      lower bin's;
//   2. a block scan over the bins finds the one where the cut's count or mass is
//      reached;
//   3. that bin's keys (at most kCap) are gathered and sorted in shared memory,
//      and a warp walks them to the crossing key; a larger bin is split again by
//      the next 10 bits (twice at most), and a bin of one probability value
//      that is still too large is resolved by id order directly.
// The kept set is then "key >= klo"; later cuts reuse the bins above the cut
// and the sorted list of the bin it fell in, so a row costs 2 passes over the
// logits plus about one per cut.  Masses are integers in units of 2^-44 (p
// rounded to it), so every sum is exact and independent of the order of the
// atomics: the same inputs give the same tokens on every run.
#include <math.h>
#include <stdint.h>

#include <cuda_runtime.h>

extern "C" {
#include "sample.h"
}

namespace {

using u64 = unsigned long long;

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;
constexpr int kBinBits = 10;
constexpr int kBins = 1 << kBinBits; // one bin a thread in the scans
constexpr int kTopShift = 20;        // level-1 bins: p's bits 29..20
constexpr int kCap = 1024;           // the most keys sorted in shared memory at once
constexpr float kFixedScale = 0x1p44f; // kMaxVocab * 2^44 = 2^63: sums cannot overflow
constexpr int kMaxVocab = 1 << 19;
static_assert(kBins == kThreads && kCap <= kThreads, "the scans give each thread one bin and one list entry");

enum Kind { kCount, kMassGE, kMassGT };

struct Shared {
    uint32_t bin_cnt[kBins]; // tokens with p > 0, by bits 29..20 of p
    u64 bin_mass[kBins];
    union {
        struct {
            uint32_t cnt[kBins];
            u64 mass[kBins];
        } sub;              // the next 10 bits of one bin (refine)
        u64 list[kCap];     // one bin's keys, sorted descending
    } u;
    uint32_t red_cnt[kWarps];
    u64 red_mass[kWarps];
    double red_sum[kWarps];
    float red_val[kWarps];
    int red_idx[kWarps];
    // a result one thread found, broadcast to the block
    int hit;
    uint32_t hit_excl_c, hit_c, gather_n;
    u64 hit_excl_w, hit_w, hit_key;
};

// The row: raw logits, and the shared copy that becomes p in smem mode.
struct Row {
    const float *x; // [vocab] fp32, global
    float *sp;      // [vocab] fp32, shared (kSmem only)
    int vocab;
    float m, scale;
    bool inf_row;
};

// The kept set: keys >= klo.  Bins above `edge` are whole; bin edge keeps
// edge_cnt tokens of mass edge_mass, listed (when `listed`) in u.list[0, edge_cnt).
struct Kept {
    u64 klo;
    int edge;
    uint32_t edge_cnt;
    u64 edge_mass;
    bool listed;
};

struct Target {
    Kind kind;
    int32_t top_k;
    float top_p;
    u64 u53; // u * 2^53
};

__device__ __forceinline__ float sanitise(float v, bool inf_row)
{
    if (inf_row) return v == INFINITY ? 0.0f : -INFINITY;
    return isnan(v) ? -INFINITY : v;
}

// exp((v - m) * scale) as sampler_select.c defines it: the same float exponent
// (no FMA), 0 below -87, exactly 1 at the maximum, never above 1.
__device__ __forceinline__ float exp_shifted(float v, float m, float scale)
{
    const float arg = __fmul_rn(__fsub_rn(v, m), scale);
    if (!(arg >= -87.0f)) return 0.0f;
    if (arg == 0.0f) return 1.0f;
    return fminf(expf(arg), 1.0f);
}

template <bool kSmem>
__device__ __forceinline__ float prob(const Row &r, int i)
{
    if (kSmem) return r.sp[i];
    return exp_shifted(sanitise(r.x[i], r.inf_row), r.m, r.scale);
}

__device__ __forceinline__ u64 fixed(float p) { return __float2ull_rn(p * kFixedScale); }
__device__ __forceinline__ u64 key_of(uint32_t pbits, int i) { return ((u64)pbits << 32) | (uint32_t)~(uint32_t)i; }
__device__ __forceinline__ float p_of_key(u64 key) { return __uint_as_float((uint32_t)(key >> 32)); }
__device__ __forceinline__ int id_of_key(u64 key) { return (int)~(uint32_t)key; }

__device__ __forceinline__ bool crosses(Kind kind, u64 t, uint32_t ec, uint32_t ic, u64 ew, u64 iw)
{
    switch (kind) {
    case kCount: return ec < t && t <= ic;
    case kMassGE: return ew < t && t <= iw;
    default: return ew <= t && t < iw; // the draw: cumulative mass strictly above u * mass
    }
}

// ------------------------------------------------------------ block helpers --

// Larger value, or the same value at a smaller index; every thread gets the result.
__device__ void block_argmax(Shared &s, float &v, int &i)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int round = 0; round < 2; round++) {
        for (int o = 16; o > 0; o >>= 1) {
            const float ov = __shfl_xor_sync(0xffffffffu, v, o);
            const int oi = __shfl_xor_sync(0xffffffffu, i, o);
            if (ov > v || (ov == v && oi < i)) {
                v = ov;
                i = oi;
            }
        }
        if (round == 1) break;
        if (lane == 0) {
            s.red_val[warp] = v;
            s.red_idx[warp] = i;
        }
        __syncthreads();
        v = s.red_val[lane];
        i = s.red_idx[lane];
    }
    __syncthreads(); // the scratch is reused
}

// A fixed-order sum (the same result on every run); every thread gets it.
__device__ double block_sum(Shared &s, double v)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if (lane == 0) s.red_sum[warp] = v;
    __syncthreads();
    v = s.red_sum[lane];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    __syncthreads();
    return v;
}

__device__ __forceinline__ void warp_scan(uint32_t &c, u64 &w)
{
    const int lane = threadIdx.x & 31;
    for (int o = 1; o < 32; o <<= 1) {
        const uint32_t oc = __shfl_up_sync(0xffffffffu, c, o);
        const u64 ow = __shfl_up_sync(0xffffffffu, w, o);
        if (lane >= o) {
            c += oc;
            w += ow;
        }
    }
}

// Inclusive scan of (c, w) in thread order; totals to every thread.
__device__ void block_scan(Shared &s, uint32_t &c, u64 &w, uint32_t &tot_c, u64 &tot_w)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    warp_scan(c, w);
    if (lane == 31) {
        s.red_cnt[warp] = c;
        s.red_mass[warp] = w;
    }
    __syncthreads();
    if (warp == 0) {
        uint32_t tc = s.red_cnt[lane];
        u64 tw = s.red_mass[lane];
        warp_scan(tc, tw);
        s.red_cnt[lane] = tc;
        s.red_mass[lane] = tw;
    }
    __syncthreads();
    if (warp > 0) {
        c += s.red_cnt[warp - 1];
        w += s.red_mass[warp - 1];
    }
    tot_c = s.red_cnt[kWarps - 1];
    tot_w = s.red_mass[kWarps - 1];
    __syncthreads();
}

// Scans histogram values (c, w), thread t holding the t-th bin in descending
// order, and broadcasts the bin where `need` is reached: its position, what
// precedes it and its own count.  Returns false when no bin reaches it.
__device__ bool locate(Shared &s, Kind kind, u64 need, uint32_t c, u64 w, int bin)
{
    uint32_t ic = c, tc;
    u64 iw = w, tw;
    if (threadIdx.x == 0) s.hit = -1; // ordered before any hit by the scan's barriers
    block_scan(s, ic, iw, tc, tw);
    if (crosses(kind, need, ic - c, ic, iw - w, iw)) {
        s.hit = bin;
        s.hit_excl_c = ic - c;
        s.hit_excl_w = iw - w;
        s.hit_c = c;
    }
    __syncthreads();
    return s.hit >= 0;
}

// Descending bitonic sort of a[0, n) (n <= kCap) padded with zeros to a power of two.
__device__ void sort_desc(u64 *a, uint32_t n)
{
    uint32_t size = 1;
    while (size < n) size <<= 1;
    const uint32_t i = threadIdx.x;
    if (i >= n && i < size) a[i] = 0; // below every key: p > 0 sets bit 32 or higher
    __syncthreads();
    for (uint32_t k = 2; k <= size; k <<= 1)
        for (uint32_t j = k >> 1; j > 0; j >>= 1) {
            const uint32_t l = i ^ j;
            if (i < size && l > i) {
                const u64 x = a[i], y = a[l];
                if ((i & k) == 0 ? x < y : x > y) {
                    a[i] = y;
                    a[l] = x;
                }
            }
            __syncthreads();
        }
}

// Keys >= klo whose p has (bits >> shift) == prefix, sorted into u.list.  Returns
// false unless there are exactly n of them, as the histogram said.
template <bool kSmem>
__device__ bool gather(Shared &s, const Row &r, u64 klo, uint32_t prefix, int shift, uint32_t n)
{
    if (threadIdx.x == 0) s.gather_n = 0;
    __syncthreads(); // also: every thread is done with the sub-histogram u.list overlays
    for (int i = threadIdx.x; i < r.vocab; i += kThreads) {
        const uint32_t b = __float_as_uint(prob<kSmem>(r, i));
        const u64 key = key_of(b, i);
        if ((b >> shift) == prefix && key >= klo) {
            const uint32_t slot = atomicAdd(&s.gather_n, 1u);
            if (slot < kCap) s.u.list[slot] = key;
        }
    }
    __syncthreads();
    const bool ok = s.gather_n == n;
    sort_desc(s.u.list, n);
    return ok;
}

// The first entry of u.list[0, n) at which the cumulative count or mass reaches
// need: its key and the count and mass through it.  One warp walks the list.
__device__ bool search_list(Shared &s, uint32_t n, Kind kind, u64 need, uint32_t &in_c, u64 &in_w, u64 &key)
{
    if (threadIdx.x < 32) {
        const int lane = threadIdx.x;
        uint32_t base_c = 0;
        u64 base_w = 0;
        bool found = false;
        for (uint32_t start = 0; start < n && !found; start += 32) {
            const uint32_t i = start + lane;
            const u64 k = i < n ? s.u.list[i] : 0;
            const uint32_t c0 = i < n ? 1u : 0u;
            const u64 w0 = i < n ? fixed(p_of_key(k)) : 0;
            uint32_t c = c0;
            u64 w = w0;
            warp_scan(c, w);
            c += base_c;
            w += base_w;
            const unsigned hits = __ballot_sync(0xffffffffu, i < n && crosses(kind, need, c - c0, c, w - w0, w));
            if (hits) {
                if (lane == __ffs(hits) - 1) {
                    s.hit = (int)i;
                    s.hit_c = c;
                    s.hit_w = w;
                    s.hit_key = k;
                }
                found = true;
            }
            base_c = __shfl_sync(0xffffffffu, c, 31);
            base_w = __shfl_sync(0xffffffffu, w, 31);
        }
        if (!found && lane == 0) s.hit = -1;
    }
    __syncthreads();
    const bool ok = s.hit >= 0;
    in_c = s.hit_c;
    in_w = s.hit_w;
    key = s.hit_key;
    __syncthreads();
    return ok;
}

// Among keys >= klo with p's bits == pbits (one probability, so id order), the
// nth (1-based) in id order: a block-wide ordered count over the ids.
template <bool kSmem>
__device__ bool nth_by_id(Shared &s, const Row &r, u64 klo, uint32_t pbits, uint32_t nth, u64 &key)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (threadIdx.x == 0) s.hit = -1;
    __syncthreads(); // before any thread records its hit
    uint32_t running = 0;
    for (int base = 0; base < r.vocab && running < nth; base += kThreads) {
        const int i = base + threadIdx.x;
        bool flag = false;
        u64 k = 0;
        if (i < r.vocab) {
            const uint32_t b = __float_as_uint(prob<kSmem>(r, i));
            k = key_of(b, i);
            flag = b == pbits && k >= klo;
        }
        const unsigned votes = __ballot_sync(0xffffffffu, flag);
        if (lane == 0) s.red_cnt[warp] = __popc(votes);
        __syncthreads();
        uint32_t before = 0, total = 0;
        for (int wi = 0; wi < kWarps; wi++) {
            before += wi < warp ? s.red_cnt[wi] : 0;
            total += s.red_cnt[wi];
        }
        const uint32_t rank = running + before + __popc(votes & ((1u << lane) - 1)) + 1;
        if (flag && rank == nth) {
            s.hit = 1;
            s.hit_key = k;
        }
        running += total;
        __syncthreads();
    }
    const bool ok = s.hit >= 0;
    key = s.hit_key;
    __syncthreads();
    return ok;
}

// Bin `bin` (keys >= klo) has more than kCap keys: split it by the next 10 bits
// until the part where need falls is small enough to sort, or is one value.
template <bool kSmem>
__device__ bool refine(Shared &s, const Row &r, u64 klo, uint32_t bin, Kind kind, u64 need, uint32_t &in_c,
                       u64 &in_w, u64 &key)
{
    uint32_t prefix = bin, acc_c = 0;
    u64 acc_w = 0;
    for (int shift = kTopShift; shift > 0;) {
        const int lo = shift - kBinBits;
        s.u.sub.cnt[threadIdx.x] = 0;
        s.u.sub.mass[threadIdx.x] = 0;
        __syncthreads();
        for (int i = threadIdx.x; i < r.vocab; i += kThreads) {
            const float p = prob<kSmem>(r, i);
            const uint32_t b = __float_as_uint(p);
            if ((b >> shift) == prefix && key_of(b, i) >= klo) {
                const uint32_t digit = (b >> lo) & (kBins - 1);
                atomicAdd(&s.u.sub.cnt[digit], 1u);
                atomicAdd(&s.u.sub.mass[digit], fixed(p));
            }
        }
        __syncthreads();
        const int digit = kBins - 1 - threadIdx.x;
        const u64 rest = need - (kind == kCount ? acc_c : acc_w);
        if (!locate(s, kind, rest, s.u.sub.cnt[digit], s.u.sub.mass[digit], digit)) return false;
        const int hit = s.hit;
        const uint32_t excl_c = s.hit_excl_c, count = s.hit_c;
        const u64 excl_w = s.hit_excl_w;
        __syncthreads();
        acc_c += excl_c;
        acc_w += excl_w;
        prefix = (prefix << kBinBits) | (uint32_t)hit;
        shift = lo;
        if (count <= kCap) {
            uint32_t c;
            u64 w;
            if (!gather<kSmem>(s, r, klo, prefix, shift, count) ||
                !search_list(s, count, kind, need - (kind == kCount ? acc_c : acc_w), c, w, key))
                return false;
            in_c = acc_c + c;
            in_w = acc_w + w;
            return true;
        }
    }
    // Still more than kCap keys of one probability: the cut is a count of them.
    const u64 each = fixed(__uint_as_float(prefix));
    const u64 rest = need - (kind == kCount ? acc_c : acc_w);
    if (kind != kCount && each == 0) return false;
    const u64 nth = kind == kCount ? rest : kind == kMassGE ? (rest + each - 1) / each : rest / each + 1;
    if (!nth_by_id<kSmem>(s, r, klo, prefix, (uint32_t)nth, key)) return false;
    in_c = acc_c + (uint32_t)nth;
    in_w = acc_w + nth * each;
    return true;
}

__device__ u64 target_of(const Target &t, uint32_t tot_c, u64 tot_w)
{
    switch (t.kind) {
    case kCount: return (u64)t.top_k;
    case kMassGE: {
        u64 need = (u64)ceil((double)t.top_p * (double)tot_w);
        return need < 1 ? 1 : need > tot_w ? tot_w : need;
    }
    default: return __umul64hi(t.u53 << 11, tot_w); // floor(u * mass), exactly
    }
}

// Narrows the kept set to its shortest prefix reaching the target.  Returns
// false on a broken invariant (the row's token is then -1).
template <bool kSmem>
__device__ bool cut(Shared &s, const Row &r, Kept &k, const Target &t)
{
    const int bin = kBins - 1 - threadIdx.x;
    uint32_t c = bin > k.edge ? s.bin_cnt[bin] : bin == k.edge ? k.edge_cnt : 0;
    u64 w = bin > k.edge ? s.bin_mass[bin] : bin == k.edge ? k.edge_mass : 0;
    uint32_t ic = c, tc;
    u64 iw = w, tw;
    block_scan(s, ic, iw, tc, tw);
    const u64 need = target_of(t, tc, tw);
    if (t.kind == kCount && need >= tc) return true; // top-k keeps everything
    if (!locate(s, t.kind, need, c, w, bin)) return false;
    const int at = s.hit;
    const uint32_t excl_c = s.hit_excl_c, count = s.hit_c;
    const u64 excl_w = s.hit_excl_w;
    __syncthreads();
    const u64 rest = need - (t.kind == kCount ? excl_c : excl_w);
    uint32_t in_c;
    u64 in_w, key;
    bool ok, listed = true;
    if (k.listed && at == k.edge) {
        ok = search_list(s, k.edge_cnt, t.kind, rest, in_c, in_w, key);
    } else if (count <= kCap) {
        ok = gather<kSmem>(s, r, k.klo, (uint32_t)at, kTopShift, count) &&
             search_list(s, count, t.kind, rest, in_c, in_w, key);
    } else {
        ok = refine<kSmem>(s, r, k.klo, (uint32_t)at, t.kind, rest, in_c, in_w, key);
        listed = false;
    }
    if (!ok) return false;
    k = Kept{key, at, in_c, in_w, listed};
    return true;
}

// Drops p < min_p: the bins above min_p's stay whole, its own bin is counted.
template <bool kSmem>
__device__ void keep_at_least(Shared &s, const Row &r, Kept &k, float min_p)
{
    const uint32_t tb = __float_as_uint(min_p);
    const u64 kmin = (u64)tb << 32;
    if (kmin <= k.klo) return; // block-uniform
    const int bin = (int)(tb >> kTopShift); // >= k.edge, since kmin > klo
    uint32_t c = 0, tc;
    u64 w = 0, tw;
    if (k.listed && bin == k.edge) {
        if (threadIdx.x < k.edge_cnt && s.u.list[threadIdx.x] >= kmin) {
            c = 1;
            w = fixed(p_of_key(s.u.list[threadIdx.x]));
        }
    } else {
        for (int i = threadIdx.x; i < r.vocab; i += kThreads) {
            const float p = prob<kSmem>(r, i);
            const uint32_t b = __float_as_uint(p);
            if ((b >> kTopShift) == (uint32_t)bin && key_of(b, i) >= kmin) {
                c++;
                w += fixed(p);
            }
        }
        k.listed = false;
    }
    block_scan(s, c, w, tc, tw);
    k.klo = kmin;
    k.edge = bin;
    k.edge_cnt = tc;
    k.edge_mass = tw;
}

__device__ bool row_valid(const tmi_sample_row &p, int vocab)
{
    const float t = p.temperature;
    return (t == 0.0f || (t > 0.0f && t <= 100.0f)) && p.top_k >= 0 && p.top_k <= vocab && p.top_p > 0.0f &&
           p.top_p <= 1.0f && p.min_p >= 0.0f && p.min_p <= 1.0f && (t == 0.0f || (p.u >= 0.0 && p.u < 1.0));
}

// Pass 1 of a sampled row: p (into shared memory in smem mode), the level-1
// bins, and the temperature-1 sum for the logprob.  Returns that sum.
template <bool kSmem>
__device__ double fill_bins(Shared &s, const Row &r, bool want_sum)
{
    s.bin_cnt[threadIdx.x] = 0;
    s.bin_mass[threadIdx.x] = 0;
    __syncthreads();
    double sum = 0.0;
    for (int i = threadIdx.x; i < r.vocab; i += kThreads) {
        const float v = sanitise(kSmem ? r.sp[i] : r.x[i], r.inf_row);
        const float p = exp_shifted(v, r.m, r.scale);
        if (kSmem) r.sp[i] = p; // each thread only ever touches its own ids: no barrier needed
        if (want_sum) sum += r.scale == 1.0f ? p : exp_shifted(v, r.m, 1.0f);
        if (p > 0.0f) {
            const uint32_t bin = __float_as_uint(p) >> kTopShift;
            atomicAdd(&s.bin_cnt[bin], 1u);
            atomicAdd(&s.bin_mass[bin], fixed(p));
        }
    }
    __syncthreads();
    return want_sum ? block_sum(s, sum) : 1.0;
}

template <bool kSmem>
__device__ int32_t draw_row(Shared &s, const Row &r, const tmi_sample_row &p)
{
    Kept k{1ull << 32, 0, s.bin_cnt[0], s.bin_mass[0], false}; // every p > 0
    bool ok = true;
    if (p.top_k > 0) ok = cut<kSmem>(s, r, k, Target{kCount, p.top_k, 1.0f, 0});
    if (ok && p.top_p < 1.0f) ok = cut<kSmem>(s, r, k, Target{kMassGE, 0, p.top_p, 0});
    if (ok && p.min_p > 0.0f) keep_at_least<kSmem>(s, r, k, p.min_p);
    if (ok) ok = cut<kSmem>(s, r, k, Target{kMassGT, 0, 1.0f, __double2ull_rz(p.u * 0x1p53)});
    return ok ? id_of_key(k.klo) : -1;
}

// blockIdx.x = the row.  Every branch below is uniform over the block.
template <bool kSmem>
__global__ void __launch_bounds__(kThreads, 1)
    sample_kernel(int vocab, const float *logits, int64_t ld, const tmi_sample_row *rows, int32_t *tokens,
                  float *logprobs)
{
    extern __shared__ float smem_row[]; // [vocab] in smem mode
    __shared__ Shared s;
    const int row = blockIdx.x;
    const tmi_sample_row prm = rows[row];
    Row r{logits + (int64_t)row * ld, smem_row, vocab, 0.0f, 1.0f, false};
    int32_t token = -1;
    double lse = 0.0;
    if (row_valid(prm, vocab)) {
        float best = -INFINITY;
        int at = INT32_MAX;
        for (int i = threadIdx.x; i < vocab; i += kThreads) {
            float v = r.x[i];
            if (kSmem) r.sp[i] = v;
            v = isnan(v) ? -INFINITY : v;
            if (v > best) { // ids rise within a thread: the first of equal values stays
                best = v;
                at = i;
            }
        }
        block_argmax(s, best, at);
        if (best != -INFINITY) {
            r.inf_row = best == INFINITY;
            r.m = r.inf_row ? 0.0f : best;
            token = at;
            const bool want_lp = logprobs != nullptr;
            double sum = 1.0;
            if (prm.temperature == 0.0f) {
                if (want_lp) {
                    double part = 0.0;
                    for (int i = threadIdx.x; i < vocab; i += kThreads)
                        part += exp_shifted(sanitise(kSmem ? r.sp[i] : r.x[i], r.inf_row), r.m, 1.0f);
                    sum = block_sum(s, part);
                }
            } else {
                r.scale = __frcp_rn(prm.temperature);
                sum = fill_bins<kSmem>(s, r, want_lp);
                token = draw_row<kSmem>(s, r, prm);
            }
            lse = (double)r.m + log(sum);
        }
    }
    if (threadIdx.x == 0) {
        tokens[row] = token;
        if (logprobs)
            logprobs[row] = token < 0 ? NAN : (float)((double)sanitise(r.x[token], r.inf_row) - lse);
    }
}

tm_status check_args(const tmi_exec *ex, const tmi_sample_args *a)
{
    if (!ex || !a) return tmi_fail(TM_ERR_INVALID_ARG, "sample_cuda: exec and args must not be NULL");
    if (a->n < 0 || a->vocab < 1 || a->vocab > kMaxVocab)
        return tmi_fail(TM_ERR_INVALID_ARG, "sample_cuda: n must be >= 0 and vocab in [1, %d], got %d, %d", kMaxVocab,
                        a->n, a->vocab);
    if (a->n == 0) return TM_OK;
    if (!a->logits || !a->rows || !a->tokens)
        return tmi_fail(TM_ERR_INVALID_ARG, "sample_cuda: logits, rows and tokens must not be NULL");
    if (a->ld < a->vocab)
        return tmi_fail(TM_ERR_INVALID_ARG, "sample_cuda: ld must be >= vocab (%d), got %lld", a->vocab,
                        (long long)a->ld);
    return TM_OK;
}

tm_status cuda_fail(cudaError_t e, const char *what)
{
    return tmi_fail(TM_ERR_DEVICE, "sample_cuda: %s failed: %s", what, cudaGetErrorString(e));
}

} // namespace

extern "C" tm_status tmi_sample_cuda(const tmi_exec *ex, const tmi_sample_args *a)
{
    tm_status st = check_args(ex, a);
    if (st != TM_OK || a->n == 0) return st;
    cudaStream_t stream = static_cast<cudaStream_t>(ex->stream);
    int dev = 0, optin = 0;
    cudaFuncAttributes fa;
    cudaError_t e = cudaGetDevice(&dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    if (e == cudaSuccess) e = cudaFuncGetAttributes(&fa, sample_kernel<true>);
    if (e != cudaSuccess) return cuda_fail(e, "querying the device");
    const size_t row_bytes = (size_t)a->vocab * sizeof(float);
    if (row_bytes + fa.sharedSizeBytes <= (size_t)optin) {
        e = cudaFuncSetAttribute(sample_kernel<true>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)row_bytes);
        if (e != cudaSuccess) return cuda_fail(e, "raising the shared memory limit");
        sample_kernel<true><<<(unsigned)a->n, kThreads, row_bytes, stream>>>(a->vocab, a->logits, a->ld, a->rows,
                                                                            a->tokens, a->logprobs);
    } else {
        sample_kernel<false><<<(unsigned)a->n, kThreads, 0, stream>>>(a->vocab, a->logits, a->ld, a->rows, a->tokens,
                                                                     a->logprobs);
    }
    e = cudaGetLastError();
    if (e != cudaSuccess) return cuda_fail(e, "launch");
    return TM_OK;
}
