/* silu_mul_cpu.c - out = silu(gate) * up, silu(x) = x / (1 + exp(-x)) as torch computes it. */
#include "silu_mul.h"

#include <math.h>

#include "../../runtime/threadpool.h"

enum { SILU_TASK_ELEMS = 1 << 15 };

typedef struct silu_job {
    const tmi_silu_mul_args *a;
    int64_t rows_per_task;
} silu_job;

static void silu_task(void *ctx, int64_t idx, int thread)
{
    const silu_job *job = ctx;
    const tmi_silu_mul_args *a = job->a;
    int64_t i0 = idx * job->rows_per_task, i1 = i0 + job->rows_per_task;
    if (i1 > a->n) i1 = a->n;
    for (int64_t i = i0; i < i1; i++) {
        const float *g = a->gate + i * a->ldg; /* [d] */
        const float *u = a->up + i * a->ldu;   /* [d] */
        if (tmi_sums_active(a->sums)) {
            for (int64_t j = 0; j < a->d; j++) {
                float gj = tmi_sums_at(a->sums, g + j, i), uj = tmi_sums_at(a->sums, u + j, i);
                tmi_store_f32(a->out, a->out_dtype, i * a->ldo + j, gj / (1.0f + expf(-gj)) * uj);
            }
            continue;
        }
        if (a->out_dtype != TM_F32) {
            for (int64_t j = 0; j < a->d; j++)
                tmi_store_f32(a->out, a->out_dtype, i * a->ldo + j, g[j] / (1.0f + expf(-g[j])) * u[j]);
            continue;
        }
        float *o = (float *)a->out + i * a->ldo; /* [d], may be gate */
        for (int64_t j = 0; j < a->d; j++) o[j] = g[j] / (1.0f + expf(-g[j])) * u[j];
    }
}

tm_status tmi_silu_mul_check_sums(const char *op, const tmi_silu_mul_args *a)
{
    const tmi_split_sums *s = a->sums;
    const char *bad = tmi_sums_invalid(s, a->n);
    if (bad) return tmi_fail(TM_ERR_INVALID_ARG, "%s: %s", op, bad);
    if (!tmi_sums_active(s)) return TM_OK;
    if (a->ldg != s->ldc || a->ldu != s->ldc || a->gate < s->c || a->up < s->c || (a->gate - s->c) + a->d > s->n ||
        (a->up - s->c) + a->d > s->n)
        return tmi_fail(TM_ERR_INVALID_ARG, "%s: gate and up must lie in the split sums' c (ld %lld)", op,
                        (long long)s->ldc);
    return TM_OK;
}

tm_status tmi_silu_mul_cpu(const tmi_exec *ex, const tmi_silu_mul_args *a)
{
    if (!ex || !a) return tmi_fail(TM_ERR_INVALID_ARG, "silu_mul: exec and args must not be NULL");
    if (a->n < 0 || a->d < 0)
        return tmi_fail(TM_ERR_INVALID_ARG, "silu_mul: n and d must be >= 0, got %lld, %lld", (long long)a->n,
                        (long long)a->d);
    if (a->n == 0 || a->d == 0) return TM_OK;
    if (!a->gate || !a->up || !a->out)
        return tmi_fail(TM_ERR_INVALID_ARG, "silu_mul: gate, up and out must not be NULL");
    if (a->ldg < a->d || a->ldu < a->d || a->ldo < a->d)
        return tmi_fail(TM_ERR_INVALID_ARG, "silu_mul: ldg, ldu and ldo must be >= d (%lld), got %lld, %lld, %lld",
                        (long long)a->d, (long long)a->ldg, (long long)a->ldu, (long long)a->ldo);
    if (!tmi_is_float_dtype(a->out_dtype))
        return tmi_fail(TM_ERR_INVALID_ARG, "silu_mul: out dtype must be F32, F16 or BF16, got %s",
                        tm_dtype_name(a->out_dtype));
    tm_status st = tmi_silu_mul_check_sums("silu_mul", a);
    if (st != TM_OK) return st;
    silu_job job = {a, SILU_TASK_ELEMS / a->d + 1};
    tmi_pool_run(ex->pool, silu_task, &job, (a->n + job.rows_per_task - 1) / job.rows_per_task);
    return TM_OK;
}
