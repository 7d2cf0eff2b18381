/* rmsnorm.h - out = x / sqrt(mean(x^2) + eps) * weight, row by row. */
#ifndef TMI_RMSNORM_H
#define TMI_RMSNORM_H

#include "../common.h"

typedef struct tmi_rmsnorm_args {
    int64_t n, d;        /* rows, features */
    const float *x;      /* [n][ldx], fp32 */
    int64_t ldx;
    const void *weight;  /* [d], w_dtype in {F32, F16, BF16} */
    tm_dtype w_dtype;
    float eps;
    void *out;           /* [n][ldo] of out_dtype; may equal x when out_dtype is F32 */
    tm_dtype out_dtype;  /* F32 (the default, 0), F16 or BF16: the next GEMM's input dtype */
    int64_t ldo;
} tmi_rmsnorm_args;

tm_status tmi_rmsnorm_cpu(const tmi_exec *ex, const tmi_rmsnorm_args *a);
/* Same signature; x, weight and out are device pointers. */
tm_status tmi_rmsnorm_cuda(const tmi_exec *ex, const tmi_rmsnorm_args *a);

#endif
