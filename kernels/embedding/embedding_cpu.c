/* embedding_cpu.c - out[t] = table[ids[t]] as fp32.
 * Every id is checked before any row is written, so a bad batch leaves out as it was. */
#include "embedding.h"

#include "../../runtime/threadpool.h"

enum { EMBED_TASK_ELEMS = 1 << 15 };

typedef struct embed_job {
    const tmi_embedding_args *a;
    int64_t rows_per_task;
} embed_job;

static void embed_task(void *ctx, int64_t idx, int thread)
{
    const embed_job *job = ctx;
    const tmi_embedding_args *a = job->a;
    int64_t t0 = idx * job->rows_per_task, t1 = t0 + job->rows_per_task;
    if (t1 > a->n) t1 = a->n;
    for (int64_t t = t0; t < t1; t++) {
        int64_t row = (int64_t)a->ids[t] * a->d;
        float *out = a->out + t * a->ldo; /* [d] */
        switch (a->dtype) {
        case TM_F16:
            for (int64_t j = 0; j < a->d; j++) out[j] = tmi_f16_to_f32(((const uint16_t *)a->table)[row + j]);
            break;
        case TM_BF16:
            for (int64_t j = 0; j < a->d; j++) out[j] = tmi_bf16_to_f32(((const uint16_t *)a->table)[row + j]);
            break;
        default: memcpy(out, (const float *)a->table + row, (size_t)a->d * sizeof(float)); break;
        }
    }
}

tm_status tmi_embedding_cpu(const tmi_exec *ex, const tmi_embedding_args *a)
{
    if (!ex || !a) return tmi_fail(TM_ERR_INVALID_ARG, "embedding: exec and args must not be NULL");
    if (a->n < 0 || a->d < 0 || a->vocab < 0)
        return tmi_fail(TM_ERR_INVALID_ARG, "embedding: n, vocab and d must be >= 0, got %lld, %lld, %lld",
                        (long long)a->n, (long long)a->vocab, (long long)a->d);
    if (a->n == 0) return TM_OK;
    if (!a->ids) return tmi_fail(TM_ERR_INVALID_ARG, "embedding: ids must not be NULL");
    for (int64_t t = 0; t < a->n; t++)
        if (a->ids[t] < 0 || a->ids[t] >= a->vocab)
            return tmi_fail(TM_ERR_INVALID_ARG, "embedding: token id must be in [0, %lld), got ids[%lld] = %d",
                            (long long)a->vocab, (long long)t, a->ids[t]);
    if (a->d == 0) return TM_OK;
    if (!a->table || !a->out) return tmi_fail(TM_ERR_INVALID_ARG, "embedding: table and out must not be NULL");
    if (a->ldo < a->d)
        return tmi_fail(TM_ERR_INVALID_ARG, "embedding: ldo must be >= d (%lld), got %lld", (long long)a->d,
                        (long long)a->ldo);
    if (!tmi_is_float_dtype(a->dtype))
        return tmi_fail(TM_ERR_INVALID_ARG, "embedding: table dtype must be F32, F16 or BF16, got %s",
                        tm_dtype_name(a->dtype));
    embed_job job = {a, EMBED_TASK_ELEMS / a->d + 1};
    tmi_pool_run(ex->pool, embed_task, &job, (a->n + job.rows_per_task - 1) / job.rows_per_task);
    return TM_OK;
}
