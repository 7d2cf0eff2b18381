/* rmsnorm_cpu.c - out = x / sqrt(mean(x^2) + eps) * weight, the readable reference.
 *
 * Matches HF's LlamaRMSNorm in fp32: r = rsqrt(mean(x^2) + eps), out = w * (x * r).
 * The mean of squares is summed in double so long rows lose nothing. */
#include "rmsnorm.h"

#include <math.h>

#include "../../runtime/threadpool.h"

enum { RMSNORM_TASK_ELEMS = 1 << 15 }; /* below this a row block is not worth a thread */

typedef struct rmsnorm_job {
    const tmi_rmsnorm_args *a;
    int64_t rows_per_task;
} rmsnorm_job;

static void rmsnorm_row(const tmi_rmsnorm_args *a, int64_t i)
{
    const float *x = a->x + i * a->ldx; /* [d] */
    double ss = 0;
    for (int64_t j = 0; j < a->d; j++) ss += (double)x[j] * x[j];
    float r = 1.0f / sqrtf((float)(ss / (double)a->d) + a->eps);
    if (a->out_dtype != TM_F32) { /* rounded once, from the fp32 value below */
        for (int64_t j = 0; j < a->d; j++)
            tmi_store_f32(a->out, a->out_dtype, i * a->ldo + j, tmi_load_f32(a->weight, a->w_dtype, j) * (x[j] * r));
        return;
    }
    float *out = (float *)a->out + i * a->ldo; /* [d], may be x */
    switch (a->w_dtype) {
    case TM_F16:
        for (int64_t j = 0; j < a->d; j++) out[j] = tmi_f16_to_f32(((const uint16_t *)a->weight)[j]) * (x[j] * r);
        break;
    case TM_BF16:
        for (int64_t j = 0; j < a->d; j++) out[j] = tmi_bf16_to_f32(((const uint16_t *)a->weight)[j]) * (x[j] * r);
        break;
    default:
        for (int64_t j = 0; j < a->d; j++) out[j] = ((const float *)a->weight)[j] * (x[j] * r);
        break;
    }
}

static void rmsnorm_task(void *ctx, int64_t idx, int thread)
{
    const rmsnorm_job *job = ctx;
    int64_t i0 = idx * job->rows_per_task, i1 = i0 + job->rows_per_task;
    if (i1 > job->a->n) i1 = job->a->n;
    for (int64_t i = i0; i < i1; i++) rmsnorm_row(job->a, i);
}

tm_status tmi_rmsnorm_cpu(const tmi_exec *ex, const tmi_rmsnorm_args *a)
{
    if (!ex || !a) return tmi_fail(TM_ERR_INVALID_ARG, "rmsnorm: exec and args must not be NULL");
    if (a->n < 0 || a->d < 0)
        return tmi_fail(TM_ERR_INVALID_ARG, "rmsnorm: n and d must be >= 0, got %lld, %lld", (long long)a->n,
                        (long long)a->d);
    if (a->n == 0 || a->d == 0) return TM_OK;
    if (!a->x || !a->out || !a->weight)
        return tmi_fail(TM_ERR_INVALID_ARG, "rmsnorm: x, weight and out must not be NULL");
    if (a->ldx < a->d || a->ldo < a->d)
        return tmi_fail(TM_ERR_INVALID_ARG, "rmsnorm: ldx and ldo must be >= d (%lld), got %lld, %lld",
                        (long long)a->d, (long long)a->ldx, (long long)a->ldo);
    if (!tmi_is_float_dtype(a->w_dtype))
        return tmi_fail(TM_ERR_INVALID_ARG, "rmsnorm: weight dtype must be F32, F16 or BF16, got %s",
                        tm_dtype_name(a->w_dtype));
    if (!tmi_is_float_dtype(a->out_dtype))
        return tmi_fail(TM_ERR_INVALID_ARG, "rmsnorm: out dtype must be F32, F16 or BF16, got %s",
                        tm_dtype_name(a->out_dtype));
    if (!(a->eps >= 0.0f)) return tmi_fail(TM_ERR_INVALID_ARG, "rmsnorm: eps must be >= 0, got %g", (double)a->eps);
    rmsnorm_job job = {a, RMSNORM_TASK_ELEMS / a->d + 1};
    tmi_pool_run(ex->pool, rmsnorm_task, &job, (a->n + job.rows_per_task - 1) / job.rows_per_task);
    return TM_OK;
}
