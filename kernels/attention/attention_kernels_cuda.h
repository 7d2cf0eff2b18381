// attention_kernels_cuda.h - what attention_cuda.cu (checks, planning, dispatch)
// shares with attention_rows_cuda.cu (the kernels): the launch parameters and the
// launchers.  Internal to kernels/attention, included by .cu files only.
//
// The unit of work is a block of kWarps warps over up to MAXR (row, query head)
// pairs of one sequence and one kv head g: pair i is row i / group, head
// g * group + i % group, so all query heads of a GQA group share every K/V row the
// block reads.  The block's warps split the keys between them: a key row is read by
// lpk lanes (each owns kChunk = 8 consecutive dims, one 16-byte load for F16), so a
// warp reads 32 / lpk keys at once and each such key group keeps its own online
// softmax state (max, sum, acc); the groups merge at the end, first by shuffles
// inside the warp, then through shared memory.
#ifndef TMI_ATTENTION_KERNELS_CUDA_H
#define TMI_ATTENTION_KERNELS_CUDA_H

#include "paged_kv_cuda.h"

namespace tmi_attn_cuda {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kMaxHeadDim = 256;
constexpr int kChunk = 8;          // dims of a key row one lane reads
constexpr int kDecodeMaxQ = TMI_ATTN_DECODE_MAX_Q; // rows of a sequence with q_len <= this run split-K
constexpr int kPrefillPairs = 8;   // (row, head) pairs a prefill block takes
constexpr int kMaxSplits = 64;     // splits of a decode row: bounds the partials
constexpr int kMinSplitLen = 64;   // keys: shorter splits spend more on their epilogue than they save
constexpr int kSplitAlign = 64;
constexpr int kBlocksPerSm = 4;    // split-K aims at this many blocks per multiprocessor
constexpr int64_t kMaxPartialRows = 16384; // (row, head, split) states: 8.5 MB at head_dim 128

enum Kind { KIND_F32, KIND_F16, KIND_I8, KIND_I4 };

struct Params {
    const tmi_kv_cuda::SeqMeta *meta; // [n_seq]
    const int32_t *ids;               // block ids, meta[s].bt_off onwards
    const int2 *map;                  // prefill launches: [tiles] {seq, pair tile}; decode: NULL
    const float *q;                   // [n_tok][ldq] fp32
    int64_t ldq;
    void *out;                        // [n_tok][ldo] out_dtype
    int64_t ldo;
    int32_t out_dtype;                // TM_F32, TM_F16, TM_BF16
    const void *base;                 // the KV pool
    int64_t block_stride, layer_offset, v_offset; // units (attention.h)
    int64_t param_offset;             // online quantized: units from a layer's K start to its params
    int64_t row_units;                // units of one K row (codes only)
    const float *qparams;             // static quantized: [4][n_kv_head] fp32, device; else NULL
    int32_t n_kv_head, head_dim, block_len, bl_shift; // bl_shift: log2(block_len), or -1
    int32_t group, window, lpk;       // lpk: lanes a key row, a power of two in [1, 32]
    float scale_log2;                 // softmax scale * log2(e): scores are in log2 units
    // split-K (decode launches)
    int32_t n_head, nsplit, split_len, q_slot, row_tiles;
    float *part_acc;                  // [n_seq][q_slot][n_head][nsplit][head_dim], NULL when nsplit == 1
    float2 *part_ml;                  // [n_seq][q_slot][n_head][nsplit] {max, sum}
};

// Each returns the launch's error (cudaGetLastError right after it).
// Decode: grid (nsplit, n_kv_head * row_tiles, n_seq), maxr pairs a block (1, 2, 4 or 8).
cudaError_t launch_decode(const Params &P, Kind kind, bool vec, int maxr, int32_t n_seq, cudaStream_t stream);
// Prefill: grid (tiles, n_kv_head), kPrefillPairs pairs a block, P.map filled by launch_plan.
cudaError_t launch_prefill(const Params &P, Kind kind, bool vec, int64_t tiles, cudaStream_t stream);
// Merges the split-K partials of every decode row whose sequence used > 1 split.
cudaError_t launch_combine(const Params &P, int32_t n_seq, cudaStream_t stream);
// Lists the prefill tiles {seq, pair tile} of every sequence with q_len > kDecodeMaxQ
// into map[tiles] (the host counted them the same way); one block.
cudaError_t launch_plan(const tmi_kv_cuda::SeqMeta *meta, int32_t n_seq, int32_t group, int64_t tiles, int2 *map,
                        cudaStream_t stream);

} // namespace tmi_attn_cuda

#endif
