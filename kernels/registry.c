/* registry.c - the op tables of registry.h.  The CUDA table exists only in
 * builds with nvcc; its missing ops (gemm_w4a16) are NULL until their kernels land. */
#include "registry.h"

static const tmi_ops cpu_ops = {
    .name = "cpu",
    .gemm = tmi_gemm_cpu,
    .rmsnorm = tmi_rmsnorm_cpu,
    .rope = tmi_rope_cpu,
    .attention = tmi_attention_cpu,
    .kv_write = tmi_kv_write_cpu,
    .silu_mul = tmi_silu_mul_cpu,
    .embedding = tmi_embedding_cpu,
    .gemm_w4a16 = tmi_gemm_w4a16_cpu,
    .sample = tmi_sample_cpu,
};

#ifdef TMRUN_HAVE_CUDA
static const tmi_ops cuda_ops = {
    .name = "cuda",
    .gemm = tmi_gemm_cuda,
    .rmsnorm = tmi_rmsnorm_cuda,
    .rope = tmi_rope_cuda,
    .attention = tmi_attention_cuda,
    .kv_write = tmi_kv_write_cuda,
    .silu_mul = tmi_silu_mul_cuda,
    .embedding = tmi_embedding_cuda,
    .sample = tmi_sample_cuda,
};
#endif

const tmi_ops *tmi_ops_get(tm_backend backend)
{
    switch (backend) {
    case TM_BACKEND_CPU: return &cpu_ops;
#ifdef TMRUN_HAVE_CUDA
    case TM_BACKEND_CUDA: return &cuda_ops;
#endif
    default: return NULL;
    }
}
