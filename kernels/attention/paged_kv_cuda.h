// paged_kv_cuda.h - the device copy of a batch's sequence metadata, shared by the
// CUDA attention and kv_write kernels (internal to kernels/, included by .cu only).
//
// The caller's tmi_attn_seq array and block tables are host memory (the
// scheduler's own); the kernels read this layout on the device:
//   int32 meta[n_seq][4]   {q_start, q_len, kv_len, first block id's index in ids}
//   int32 ids[total]       every sequence's block table, one after another
// (tmi_kv_meta_ints / tmi_kv_meta_fill in paged_kv.h build it on the host).  A
// forward builds it once per step and passes the device copy as meta_dev; without
// it the op packs it into the start of ex->workspace through a small host buffer on
// the stack, flushed with cudaMemcpyAsync on the op's stream.  A copy from pageable
// memory has consumed its source when the call returns, so the buffer can be
// refilled at once; it is not capturable in a CUDA graph, which meta_dev is for.
#ifndef TMI_PAGED_KV_CUDA_H
#define TMI_PAGED_KV_CUDA_H

#include <cuda_runtime.h>

extern "C" {
#include "attention.h"
#include "paged_kv.h"
}

namespace tmi_kv_cuda {

struct SeqMeta {
    int32_t q_start, q_len, kv_len, bt_off;
};

inline int64_t blocks_of(const tmi_attn_seq *sq, int32_t block_len)
{
    return sq->kv_len > 0 ? ((int64_t)sq->kv_len + block_len - 1) / block_len : 0;
}

// Bytes of the packed metadata (rounded to 256 so what follows stays aligned).
inline size_t meta_bytes(const tmi_attn_seq *seqs, int32_t n_seq, int32_t block_len)
{
    return (tmi_kv_meta_ints(seqs, n_seq, block_len) * 4 + 255) / 256 * 256;
}

inline size_t align256(size_t n) { return (n + 255) / 256 * 256; }

class Packer {
  public:
    Packer(int32_t *dst, cudaStream_t stream) : dst_(dst), stream_(stream) {}
    cudaError_t put(int32_t v)
    {
        buf_[n_++] = v;
        return n_ == kBuf ? flush() : cudaSuccess;
    }
    cudaError_t flush()
    {
        if (n_ == 0) return cudaSuccess;
        cudaError_t e = cudaMemcpyAsync(dst_, buf_, (size_t)n_ * sizeof(int32_t), cudaMemcpyHostToDevice, stream_);
        dst_ += n_;
        n_ = 0;
        return e;
    }

  private:
    static constexpr int kBuf = 2048; // 8 KiB of stack
    int32_t buf_[kBuf];
    int n_ = 0;
    int32_t *dst_;
    cudaStream_t stream_;
};

// Packs the metadata (already checked by tmi_kv_check_seqs) into ws.
inline tm_status pack(const char *op, const tmi_attn_seq *seqs, int32_t n_seq, int32_t block_len, void *ws,
                      cudaStream_t stream)
{
    Packer pk(static_cast<int32_t *>(ws), stream);
    cudaError_t e = cudaSuccess;
    int64_t off = 0;
    for (int32_t s = 0; s < n_seq && e == cudaSuccess; s++) {
        const tmi_attn_seq *sq = &seqs[s];
        if ((e = pk.put(sq->q_start)) == cudaSuccess && (e = pk.put(sq->q_len)) == cudaSuccess &&
            (e = pk.put(sq->kv_len)) == cudaSuccess)
            e = pk.put((int32_t)off);
        off += blocks_of(sq, block_len);
    }
    if (off > INT32_MAX) return tmi_fail(TM_ERR_UNSUPPORTED, "%s: more than 2^31 block ids in one batch", op);
    for (int32_t s = 0; s < n_seq && e == cudaSuccess; s++) {
        int64_t nb = blocks_of(&seqs[s], block_len);
        for (int64_t b = 0; b < nb && e == cudaSuccess; b++) e = pk.put(seqs[s].block_table[b]);
    }
    if (e == cudaSuccess) e = pk.flush();
    if (e != cudaSuccess) return tmi_fail(TM_ERR_DEVICE, "%s: copying the block tables failed: %s", op, cudaGetErrorString(e));
    return TM_OK;
}

// The device metadata of one call: the caller's meta_dev as is, or the batch packed
// into the start of ws (which then holds meta_bytes() of it).
inline tm_status device_meta(const char *op, const int32_t *meta_dev, const tmi_attn_seq *seqs, int32_t n_seq,
                             int32_t block_len, void *ws, cudaStream_t stream, const int32_t **meta)
{
    if (meta_dev) {
        *meta = meta_dev;
        return TM_OK;
    }
    *meta = static_cast<const int32_t *>(ws);
    return pack(op, seqs, n_seq, block_len, ws, stream);
}

// Workspace check shared by both ops.
inline tm_status check_workspace(const char *op, const tmi_exec *ex, size_t need)
{
    if (need && (!ex->workspace || ex->workspace_bytes < need))
        return tmi_fail(TM_ERR_INVALID_ARG, "%s: workspace must hold %zu bytes (the _cuda_workspace size), got %zu", op,
                        need, ex->workspace ? ex->workspace_bytes : (size_t)0);
    if (((uintptr_t)ex->workspace & 15u) != 0)
        return tmi_fail(TM_ERR_INVALID_ARG, "%s: workspace must be 16-byte aligned", op);
    return TM_OK;
}

} // namespace tmi_kv_cuda

#endif
