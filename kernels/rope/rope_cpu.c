/* rope_cpu.c - rotary embedding, HF's rotate_half layout, in place.
 *
 * The angle is float(pos) * inv_freq[i] in fp32 and cos/sin are taken in fp32,
 * exactly as transformers does, so results agree with torch to ~1 ulp; cos and
 * sin are computed once per (token, pair) and applied to every head. */
#include "rope.h"

#include <math.h>

#include "../../runtime/threadpool.h"

enum { ROPE_TASK_ELEMS = 1 << 14 };

typedef struct rope_job {
    const tmi_rope_args *a;
    int64_t toks_per_task;
} rope_job;

static void rope_token(const tmi_rope_args *a, int64_t t)
{
    int32_t half = a->head_dim / 2;
    float fpos = (float)a->pos[t];
    float *row = a->x + t * a->ld; /* [n_head][head_dim] */
    for (int32_t i = 0; i < half; i++) {
        float angle = fpos * a->inv_freq[i];
        float c = cosf(angle) * a->attn_factor, s = sinf(angle) * a->attn_factor;
        for (int32_t h = 0; h < a->n_head; h++) {
            float *x = row + (int64_t)h * a->head_dim;
            float x0 = x[i], x1 = x[i + half];
            x[i] = x0 * c - x1 * s;
            x[i + half] = x1 * c + x0 * s;
        }
    }
}

static void rope_task(void *ctx, int64_t idx, int thread)
{
    const rope_job *job = ctx;
    int64_t t0 = idx * job->toks_per_task, t1 = t0 + job->toks_per_task;
    if (t1 > job->a->n_tok) t1 = job->a->n_tok;
    for (int64_t t = t0; t < t1; t++) rope_token(job->a, t);
}

tm_status tmi_rope_cpu(const tmi_exec *ex, const tmi_rope_args *a)
{
    if (!ex || !a) return tmi_fail(TM_ERR_INVALID_ARG, "rope: exec and args must not be NULL");
    if (a->n_tok < 0 || a->n_head < 0)
        return tmi_fail(TM_ERR_INVALID_ARG, "rope: n_tok and n_head must be >= 0, got %lld, %d", (long long)a->n_tok,
                        a->n_head);
    if (a->head_dim <= 0 || a->head_dim % 2 != 0)
        return tmi_fail(TM_ERR_INVALID_ARG, "rope: head_dim must be even and > 0, got %d", a->head_dim);
    if (a->n_tok == 0 || a->n_head == 0) return TM_OK;
    if (!a->x || !a->pos || !a->inv_freq)
        return tmi_fail(TM_ERR_INVALID_ARG, "rope: x, pos and inv_freq must not be NULL");
    if (a->ld < (int64_t)a->n_head * a->head_dim)
        return tmi_fail(TM_ERR_INVALID_ARG, "rope: ld must be >= n_head * head_dim (%lld), got %lld",
                        (long long)a->n_head * a->head_dim, (long long)a->ld);
    for (int64_t t = 0; t < a->n_tok; t++)
        if (a->pos[t] < 0)
            return tmi_fail(TM_ERR_INVALID_ARG, "rope: positions must be >= 0, got pos[%lld] = %d", (long long)t,
                            a->pos[t]);
    int64_t per_tok = (int64_t)a->n_head * a->head_dim;
    rope_job job = {a, ROPE_TASK_ELEMS / per_tok + 1};
    tmi_pool_run(ex->pool, rope_task, &job, (a->n_tok + job.toks_per_task - 1) / job.toks_per_task);
    return TM_OK;
}
