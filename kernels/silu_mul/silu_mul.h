/* silu_mul.h - out = silu(gate) * up, the SwiGLU activation. */
#ifndef TMI_SILU_MUL_H
#define TMI_SILU_MUL_H

#include "../common.h"

typedef struct tmi_silu_mul_args {
    int64_t n, d;
    const float *gate; /* [n][ldg], fp32 */
    int64_t ldg;
    const float *up;   /* [n][ldu], fp32 */
    int64_t ldu;
    void *out;         /* [n][ldo] of out_dtype; may equal gate when out_dtype is F32 */
    int64_t ldo;
    tm_dtype out_dtype; /* F32 (the default, 0), F16 or BF16: the down projection's input dtype */
    const tmi_split_sums *sums; /* NULL, or the gate/up GEMM's deferred sums (common.h), whose c holds
                                   gate and up (ldg == ldu == its ldc): they are read as the sums */
} tmi_silu_mul_args;

/* The sums rule above; op names the caller in the message. */
tm_status tmi_silu_mul_check_sums(const char *op, const tmi_silu_mul_args *a);
tm_status tmi_silu_mul_cpu(const tmi_exec *ex, const tmi_silu_mul_args *a);
/* Same signature; device pointers. */
tm_status tmi_silu_mul_cuda(const tmi_exec *ex, const tmi_silu_mul_args *a);

#endif
