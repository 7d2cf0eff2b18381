// attention_cuda.cu - the CUDA twin of attention_cpu.c: argument checks, the plan
// of one call (which sequences run split-K, how many splits), its workspace, and
// the launches; attention_rows_cuda.cu has the kernels.
//
// A sequence with 1 <= q_len <= kDecodeMaxQ is a decode sequence: its key range
// [kb_seq, kv_len) (kb_seq > 0 only under a sliding window) is cut into splits of
// split_len keys, one block per (split, kv head, tile of (row, head) pairs).  The
// number of splits comes from the longest decode range and the SM count: enough
// blocks for kBlocksPerSm a multiprocessor, never more than the workspace cap
// (kMaxSplits, ranges of at least kMinSplitLen keys, kMaxPartialRows states), which
// depends on the batch alone so the workspace size does not depend on the device.
// Longer sequences (prefill chunks) take one block per 8 pairs, without splits.
#include <math.h>

#include "attention_kernels_cuda.h"

namespace {

using namespace tmi_attn_cuda;
using tmi_kv_cuda::align256;

// What a call needs, from the host's seqs alone.
struct Batch {
    int32_t group;
    int32_t n_dec, q_slot, max_range; // decode sequences: count, longest q_len, longest key range
    int64_t prefill_tiles;            // kPrefillPairs-pair tiles of the prefill sequences
    int32_t split_cap;                // splits the partials have room for; 1: none
    size_t meta, part_acc, part_ml, plan; // workspace parts in bytes, each a multiple of 256
};

int32_t split_cap(int64_t n_seq, int32_t q_slot, int32_t n_head, int32_t max_range)
{
    int64_t rows = n_seq * q_slot * n_head, cap = kMaxSplits;
    int64_t by_len = ((int64_t)max_range + kMinSplitLen - 1) / kMinSplitLen, by_room = kMaxPartialRows / rows;
    if (by_len < cap) cap = by_len;
    if (by_room < cap) cap = by_room;
    return cap < 1 ? 1 : (int32_t)cap;
}

// Tolerates unchecked arguments (the workspace functions run before any check).
void batch_of(const tmi_attention_args *a, Batch *b)
{
    *b = Batch{};
    b->group = a->n_head / a->cache.n_kv_head;
    b->split_cap = 1;
    for (int32_t s = 0; s < a->n_seq; s++) {
        const tmi_attn_seq *sq = &a->seqs[s];
        if (sq->q_len <= 0) continue;
        if (sq->q_len > kDecodeMaxQ) {
            b->prefill_tiles += ((int64_t)sq->q_len * b->group + kPrefillPairs - 1) / kPrefillPairs;
            continue;
        }
        int32_t hist = sq->kv_len - sq->q_len;
        int32_t kb = a->window > 0 && hist - a->window + 1 > 0 ? hist - a->window + 1 : 0;
        b->n_dec++;
        if (sq->q_len > b->q_slot) b->q_slot = sq->q_len;
        if (sq->kv_len - kb > b->max_range) b->max_range = sq->kv_len - kb;
    }
    if (b->n_dec && a->plan_kv_len > b->max_range) b->max_range = a->plan_kv_len;
    if (b->n_dec) b->split_cap = split_cap(a->n_seq, b->q_slot, a->n_head, b->max_range);
    if (!a->meta_dev) b->meta = tmi_kv_cuda::meta_bytes(a->seqs, a->n_seq, a->cache.block_len);
    if (b->split_cap > 1) {
        size_t states = (size_t)a->n_seq * b->q_slot * a->n_head * b->split_cap;
        b->part_acc = align256(states * a->cache.head_dim * sizeof(float));
        b->part_ml = align256(states * 2 * sizeof(float));
    }
    b->plan = align256((size_t)b->prefill_tiles * 2 * sizeof(int32_t));
}

// 16-, 8- or 4-byte loads need every row (and the online params) aligned.
bool vector_layout(const tmi_kv_cache *c)
{
    const bool online = tmi_kv_is_quant(c->dtype) && !c->qparams;
    const int64_t unit = (int64_t)tmi_kv_unit_bytes(c->dtype);
    const int64_t align = c->dtype == TM_F32 || c->dtype == TM_F16 ? 16 : c->dtype == TM_I8 || online ? 8 : 4;
    const int64_t row = tmi_kv_row_units(c->dtype, c->head_dim);
    if (c->head_dim % kChunk || (uintptr_t)c->base % (uintptr_t)align) return false;
    const int64_t offs[4] = {c->block_stride, c->layer_offset, c->v_offset, row};
    for (int i = 0; i < 4; i++)
        if (offs[i] * unit % align) return false;
    return !online || (int64_t)c->n_kv_head * c->block_len * row % 8 == 0;
}

// out may be q itself (F32, same stride) or lie apart from it: any other overlap
// lets one block's stores reach rows another block has not read yet.
bool out_overlaps_q(const tmi_attention_args *a)
{
    const int64_t n_tok = tmi_kv_batch_rows(a->seqs, a->n_seq);
    if (a->out_dtype == TM_F32 && a->ldo == a->ldq && a->out == (const void *)a->q) return false;
    const char *q0 = (const char *)a->q, *q1 = q0 + n_tok * a->ldq * 4;
    const char *o0 = (const char *)a->out, *o1 = o0 + n_tok * a->ldo * (int64_t)(a->out_dtype == TM_F32 ? 4 : 2);
    return n_tok > 0 && o0 < q1 && q0 < o1;
}

tm_status attention_check(const tmi_exec *ex, const tmi_attention_args *a, Batch *b)
{
    const tmi_kv_cache *c = &a->cache;
    tm_status st = tmi_kv_check_cache("attention_cuda", c);
    if (st != TM_OK) return st;
    if (c->head_dim > kMaxHeadDim)
        return tmi_fail(TM_ERR_UNSUPPORTED, "attention_cuda: head_dim must be <= %d, got %d", kMaxHeadDim, c->head_dim);
    if (a->n_head <= 0 || a->n_head % c->n_kv_head != 0)
        return tmi_fail(TM_ERR_INVALID_ARG, "attention_cuda: n_head must be a positive multiple of n_kv_head (%d), got %d",
                        c->n_kv_head, a->n_head);
    if (a->window < 0) return tmi_fail(TM_ERR_INVALID_ARG, "attention_cuda: window must be >= 0, got %d", a->window);
    if (a->out_dtype != TM_F32 && a->out_dtype != TM_F16 && a->out_dtype != TM_BF16)
        return tmi_fail(TM_ERR_UNSUPPORTED, "attention_cuda: out_dtype must be F32, F16 or BF16, got %d",
                        (int)a->out_dtype);
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
    if (out_overlaps_q(a))
        return tmi_fail(TM_ERR_INVALID_ARG,
                        "attention_cuda: out must be q itself (out_dtype F32, ldo == ldq) or not overlap q");
    batch_of(a, b);
    if (b->prefill_tiles > INT32_MAX)
        return tmi_fail(TM_ERR_UNSUPPORTED, "attention_cuda: %lld prefill tiles in one call (at most 2^31 - 1)",
                        (long long)b->prefill_tiles);
    if (b->n_dec == 0 && b->prefill_tiles == 0) return TM_OK;
    return tmi_kv_cuda::check_workspace("attention_cuda", ex, b->meta + b->part_acc + b->part_ml + b->plan);
}

Kind kind_of(tm_dtype dtype)
{
    return dtype == TM_F32 ? KIND_F32 : dtype == TM_F16 ? KIND_F16 : dtype == TM_I8 ? KIND_I8 : KIND_I4;
}

// The launch parameters every kernel of the call shares.
Params base_params(const tmi_attention_args *a, const int32_t *meta, const Batch &b)
{
    const tmi_kv_cache *c = &a->cache;
    Params P = {};
    P.meta = reinterpret_cast<const tmi_kv_cuda::SeqMeta *>(meta);
    P.ids = meta + 4 * (int64_t)a->n_seq;
    P.q = a->q;
    P.ldq = a->ldq;
    P.out = a->out;
    P.ldo = a->ldo;
    P.out_dtype = (int32_t)a->out_dtype;
    P.base = c->base;
    P.block_stride = c->block_stride;
    P.layer_offset = c->layer_offset;
    P.v_offset = c->v_offset;
    P.row_units = tmi_kv_row_units(c->dtype, c->head_dim);
    P.param_offset = (int64_t)c->n_kv_head * c->block_len * P.row_units;
    P.qparams = tmi_kv_is_quant(c->dtype) ? c->qparams : NULL;
    P.n_kv_head = c->n_kv_head;
    P.head_dim = c->head_dim;
    P.block_len = c->block_len;
    P.bl_shift = -1;
    for (int32_t sh = 0; sh < 31; sh++)
        if ((int32_t)1 << sh == c->block_len) P.bl_shift = sh;
    P.group = b.group;
    P.window = a->window;
    P.lpk = 1;
    while (P.lpk * kChunk < c->head_dim) P.lpk <<= 1;
    P.scale_log2 = a->scale * 1.4426950408889634f;
    P.n_head = a->n_head;
    P.q_slot = b.q_slot;
    P.nsplit = 1;
    return P;
}

// Splits for the decode sequences: from the SM count, within the workspace cap.
tm_status plan_splits(const Batch &b, int maxr, Params *P)
{
    int dev = 0, sms = 0;
    cudaError_t e = cudaGetDevice(&dev);
    if (e == cudaSuccess) e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    if (e != cudaSuccess)
        return tmi_fail(TM_ERR_DEVICE, "attention_cuda: reading the SM count failed: %s", cudaGetErrorString(e));
    P->row_tiles = (b.q_slot * b.group + maxr - 1) / maxr;
    int64_t blocks = (int64_t)b.n_dec * P->n_kv_head * P->row_tiles;
    int64_t want = ((int64_t)kBlocksPerSm * sms + blocks - 1) / blocks;
    int32_t nsplit = want < b.split_cap ? (int32_t)want : b.split_cap;
    if (nsplit < 1) nsplit = 1;
    int32_t len = b.max_range;
    if (nsplit > 1) {
        len = (b.max_range + nsplit - 1) / nsplit;
        len = (len + kSplitAlign - 1) / kSplitAlign * kSplitAlign;
        nsplit = (b.max_range + len - 1) / len;
    }
    P->nsplit = nsplit;
    P->split_len = len;
    return TM_OK;
}

// Every sequence has one new row, and sequence s's is row s: what a merge left to
// the o projection needs (its row i is sequence i's).
bool one_row_each(const tmi_attention_args *a)
{
    for (int32_t s = 0; s < a->n_seq; s++)
        if (a->seqs[s].q_len != 1 || a->seqs[s].q_start != s) return false;
    return true;
}

tm_status launched(cudaError_t e, const char *what)
{
    if (e != cudaSuccess) return tmi_fail(TM_ERR_DEVICE, "attention_cuda: %s launch failed: %s", what, cudaGetErrorString(e));
    return TM_OK;
}

} // namespace

extern "C" size_t tmi_attention_cuda_workspace(const tmi_attention_args *a)
{
    if (!a || a->n_seq <= 0 || !a->seqs || a->n_head <= 0 || a->cache.n_kv_head <= 0 || a->cache.block_len <= 0 ||
        a->cache.head_dim <= 0)
        return 0;
    Batch b;
    batch_of(a, &b);
    if (b.n_dec == 0 && b.prefill_tiles == 0) return 0;
    return b.meta + b.part_acc + b.part_ml + b.plan;
}

extern "C" size_t tmi_attention_cuda_workspace_bound(int32_t max_tok, int32_t max_seq, int32_t max_kv_len,
                                                     int32_t block_len, int32_t n_head, int32_t head_dim)
{
    if (max_tok <= 0 || max_seq <= 0 || max_kv_len <= 0 || block_len <= 0 || n_head <= 0 || head_dim <= 0) return 0;
    int64_t blocks = ((int64_t)max_kv_len + block_len - 1) / block_len;
    size_t meta = align256((size_t)max_seq * (4 + (size_t)blocks) * sizeof(int32_t));
    // split states: rows * cap <= kMaxPartialRows whenever cap > 1 (split_cap)
    int64_t q_slot = max_tok < kDecodeMaxQ ? max_tok : kDecodeMaxQ;
    int64_t by_len = ((int64_t)max_kv_len + kMinSplitLen - 1) / kMinSplitLen;
    int64_t splits = by_len < kMaxSplits ? by_len : kMaxSplits;
    int64_t states = (int64_t)max_seq * q_slot * n_head * splits;
    if (states > kMaxPartialRows) states = kMaxPartialRows;
    size_t part = splits > 1 ? align256((size_t)states * head_dim * sizeof(float)) +
                                   align256((size_t)states * 2 * sizeof(float))
                             : 0;
    // prefill tiles: ceil(q_len * group / 8) summed, group <= n_head
    size_t tiles = (size_t)max_tok * n_head / kPrefillPairs + (size_t)max_seq + 1;
    return meta + part + align256(tiles * 2 * sizeof(int32_t));
}

extern "C" tm_status tmi_attention_cuda(const tmi_exec *ex, const tmi_attention_args *a)
{
    if (!ex || !a) return tmi_fail(TM_ERR_INVALID_ARG, "attention_cuda: exec and args must not be NULL");
    if (a->defer_merge) a->defer_merge->nsplit = 0;
    if (a->n_seq == 0) return TM_OK;
    Batch b;
    tm_status st = attention_check(ex, a, &b);
    if (st != TM_OK || (b.n_dec == 0 && b.prefill_tiles == 0)) return st;

    const tmi_kv_cache *c = &a->cache;
    cudaStream_t stream = static_cast<cudaStream_t>(ex->stream);
    const int32_t *meta;
    if ((st = tmi_kv_cuda::device_meta("attention_cuda", a->meta_dev, a->seqs, a->n_seq, c->block_len, ex->workspace,
                                       stream, &meta)) != TM_OK)
        return st;
    char *ws = static_cast<char *>(ex->workspace) + b.meta; // [partials][plan]
    Params P = base_params(a, meta, b);
    const Kind kind = kind_of(c->dtype);
    const bool vec = vector_layout(c);
    if (b.n_dec) {
        int maxr = 1; // pairs a block: all of a decode row's group when they fit in 8
        while (vec && maxr < 8 && maxr < b.q_slot * b.group) maxr <<= 1;
        if (!vec) maxr = 8;
        if ((st = plan_splits(b, maxr, &P)) != TM_OK) return st;
        if ((int64_t)P.n_kv_head * P.row_tiles > 65535)
            return tmi_fail(TM_ERR_UNSUPPORTED, "attention_cuda: n_head * q_len must be <= 65535 * 8 in decode rows");
        if (P.nsplit > 1) {
            P.part_acc = reinterpret_cast<float *>(ws);
            P.part_ml = reinterpret_cast<float2 *>(ws + b.part_acc);
        }
        if ((st = launched(launch_decode(P, kind, vec, maxr, a->n_seq, stream), "decode")) != TM_OK) return st;
        if (P.nsplit > 1 && a->defer_merge && one_row_each(a)) { // the o projection merges (attention.h)
            *a->defer_merge = tmi_attn_merge{P.nsplit, P.split_len, a->n_seq, P.n_head, P.head_dim, P.window,
                                             meta, P.part_acc, reinterpret_cast<const float *>(P.part_ml),
                                             P.out, P.ldo, (tm_dtype)P.out_dtype};
        } else if (P.nsplit > 1 && (st = launched(launch_combine(P, a->n_seq, stream), "split merge")) != TM_OK) {
            return st;
        }
    }
    if (b.prefill_tiles) {
        int2 *map = reinterpret_cast<int2 *>(ws + b.part_acc + b.part_ml);
        if ((st = launched(launch_plan(P.meta, a->n_seq, b.group, b.prefill_tiles, map, stream), "prefill plan")) !=
            TM_OK)
            return st;
        P.map = map;
        P.nsplit = 1;
        P.part_acc = NULL;
        P.part_ml = NULL;
        if ((st = launched(launch_prefill(P, kind, vec, b.prefill_tiles, stream), "prefill")) != TM_OK) return st;
    }
    return TM_OK;
}

extern "C" tm_status tmi_attention_cuda_merge(const tmi_exec *ex, const tmi_attn_merge *m)
{
    if (!ex || !m) return tmi_fail(TM_ERR_INVALID_ARG, "attention_cuda: exec and merge must not be NULL");
    if (m->nsplit <= 0 || m->n_seq <= 0) return TM_OK;
    if (!m->meta || !m->part_acc || !m->part_ml || !m->out || m->n_head <= 0 || m->head_dim <= 0 ||
        m->head_dim > kMaxHeadDim || m->split_len <= 0 || m->ldo < (int64_t)m->n_head * m->head_dim)
        return tmi_fail(TM_ERR_INVALID_ARG, "attention_cuda: a left merge needs its partials, meta and out");
    Params P = {};
    P.meta = reinterpret_cast<const tmi_kv_cuda::SeqMeta *>(m->meta);
    P.out = m->out;
    P.ldo = m->ldo;
    P.out_dtype = (int32_t)m->out_dtype;
    P.head_dim = m->head_dim;
    P.window = m->window;
    P.n_head = m->n_head;
    P.nsplit = m->nsplit;
    P.split_len = m->split_len;
    P.q_slot = 1;
    P.part_acc = const_cast<float *>(m->part_acc);
    P.part_ml = reinterpret_cast<float2 *>(const_cast<float *>(m->part_ml));
    return launched(launch_combine(P, m->n_seq, static_cast<cudaStream_t>(ex->stream)), "split merge");
}
