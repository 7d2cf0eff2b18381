// rope_cuda.cu - the CUDA twin of rope_cpu.c: a grid-stride loop over the
// (token, head, pair) triples, in place; angle = float(pos) * inv_freq[i] and the
// accurate sin and cos (sincosf) in fp32, as the CPU twin and transformers do.
#include <cuda_runtime.h>

extern "C" {
#include "rope.h"
}

namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 1 << 16;

__global__ void rope_kernel(int64_t n_tok, int32_t n_head, int32_t head_dim, float *x, int64_t ld, const int32_t *pos,
                            const float *inv_freq, float attn_factor)
{
    const int32_t half = head_dim / 2;
    const int64_t per_tok = (int64_t)n_head * half, total = n_tok * per_tok;
    const int64_t stride = (int64_t)gridDim.x * blockDim.x;
    for (int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += stride) {
        const int64_t t = idx / per_tok;
        const int32_t rest = (int32_t)(idx - t * per_tok), h = rest / half, i = rest - h * half;
        const float angle = (float)pos[t] * inv_freq[i];
        float c, s;
        sincosf(angle, &s, &c); // the accurate pair, one range reduction for both
        c *= attn_factor;
        s *= attn_factor;
        float *xh = x + t * ld + (int64_t)h * head_dim; // [head_dim]
        const float x0 = xh[i], x1 = xh[i + half];
        xh[i] = x0 * c - x1 * s;
        xh[i + half] = x1 * c + x0 * s;
    }
}

} // namespace

extern "C" tm_status tmi_rope_cuda(const tmi_exec *ex, const tmi_rope_args *a)
{
    if (!ex || !a) return tmi_fail(TM_ERR_INVALID_ARG, "rope_cuda: exec and args must not be NULL");
    if (a->n_tok < 0 || a->n_head < 0)
        return tmi_fail(TM_ERR_INVALID_ARG, "rope_cuda: n_tok and n_head must be >= 0, got %lld, %d",
                        (long long)a->n_tok, a->n_head);
    if (a->head_dim <= 0 || a->head_dim % 2 != 0)
        return tmi_fail(TM_ERR_INVALID_ARG, "rope_cuda: head_dim must be even and > 0, got %d", a->head_dim);
    if (a->n_tok == 0 || a->n_head == 0) return TM_OK;
    if (!a->x || !a->pos || !a->inv_freq)
        return tmi_fail(TM_ERR_INVALID_ARG, "rope_cuda: x, pos and inv_freq must not be NULL");
    if (a->ld < (int64_t)a->n_head * a->head_dim)
        return tmi_fail(TM_ERR_INVALID_ARG, "rope_cuda: ld must be >= n_head * head_dim (%lld), got %lld",
                        (long long)a->n_head * a->head_dim, (long long)a->ld);
    int64_t total = a->n_tok * a->n_head * (a->head_dim / 2);
    int64_t blocks = (total + kThreads - 1) / kThreads;
    cudaStream_t stream = static_cast<cudaStream_t>(ex->stream);
    rope_kernel<<<(unsigned)(blocks < kMaxBlocks ? blocks : kMaxBlocks), kThreads, 0, stream>>>(
        a->n_tok, a->n_head, a->head_dim, a->x, a->ld, a->pos, a->inv_freq, a->attn_factor);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return tmi_fail(TM_ERR_DEVICE, "rope_cuda: launch failed: %s", cudaGetErrorString(e));
    return TM_OK;
}
