/* registry.h - the op table: one entry per op, one table per backend.
 * An entry is NULL where the backend has no such op yet; callers check. */
#ifndef TMI_REGISTRY_H
#define TMI_REGISTRY_H

#include "attention/attention.h"
#include "embedding/embedding.h"
#include "gemm/gemm.h"
#include "gemm_w4a16/gemm_w4a16.h"
#include "kv_write/kv_write.h"
#include "rmsnorm/rmsnorm.h"
#include "rope/rope.h"
#include "sample/sample.h"
#include "silu_mul/silu_mul.h"

typedef struct tmi_ops {
    const char *name; /* "cpu", "cuda" */
    tm_status (*gemm)(const tmi_exec *, const tmi_gemm_args *);
    tm_status (*rmsnorm)(const tmi_exec *, const tmi_rmsnorm_args *);
    tm_status (*rope)(const tmi_exec *, const tmi_rope_args *);
    tm_status (*attention)(const tmi_exec *, const tmi_attention_args *);
    tm_status (*kv_write)(const tmi_exec *, const tmi_kv_write_args *);
    tm_status (*silu_mul)(const tmi_exec *, const tmi_silu_mul_args *);
    tm_status (*embedding)(const tmi_exec *, const tmi_embedding_args *);
    tm_status (*gemm_w4a16)(const tmi_exec *, const tmi_gemm_w4a16_args *);
    tm_status (*sample)(const tmi_exec *, const tmi_sample_args *);
} tmi_ops;

/* The table of a backend, or NULL when this build lacks it (CUDA without nvcc). */
const tmi_ops *tmi_ops_get(tm_backend backend);

#endif
