/* sample_cpu.c - the batch sampler's reference: each row runs the steps of
 * runtime/sampler.c's tmi_sample (sanitise, logprob, draw) through the same
 * functions of sampler_select.c, on a private copy of the row, so it is the host
 * sampler by construction; rows are spread over the thread pool. */
#include "sample.h"

#include <math.h>

#include "../../runtime/sampler.h"
#include "../../runtime/threadpool.h"

static size_t round8(size_t b) { return (b + 7) & ~(size_t)7; }

/* One thread's slice: the selection workspace first (it holds doubles), then the
 * row copy and the probabilities. */
static size_t slice_bytes(int32_t vocab)
{
    return round8(tmi_sampler_select_workspace(vocab)) + round8((size_t)vocab * 2 * sizeof(float));
}

size_t tmi_sample_cpu_workspace(int32_t vocab, int threads)
{
    if (vocab < 1) return 0;
    return (size_t)(threads > 1 ? threads : 1) * slice_bytes(vocab);
}

static tm_sampling_params params_of(const tmi_sample_row *r)
{
    tm_sampling_params p = tm_sampling_default_params();
    p.temperature = r->temperature;
    p.top_k = r->top_k;
    p.top_p = r->top_p;
    p.min_p = r->min_p;
    return p;
}

/* The rules of tm_sampling_params_check, plus u in [0, 1) where it is read. */
static tm_status check_rows(const tmi_sample_args *a)
{
    for (int32_t r = 0; r < a->n; r++) {
        const tmi_sample_row *row = &a->rows[r];
        tm_sampling_params p = params_of(row);
        if (tm_sampling_params_check(&p, a->vocab) != TM_OK) {
            tmi_error_prefix("sample: rows[%d]", r);
            return TM_ERR_INVALID_ARG;
        }
        if (row->temperature > 0.0f && !(row->u >= 0.0 && row->u < 1.0))
            return tmi_fail(TM_ERR_INVALID_ARG, "sample: rows[%d].u must be in [0, 1), got %g", r, row->u);
    }
    return TM_OK;
}

static tm_status check_args(const tmi_exec *ex, const tmi_sample_args *a)
{
    if (!ex || !a) return tmi_fail(TM_ERR_INVALID_ARG, "sample: exec and args must not be NULL");
    if (a->n < 0 || a->vocab < 1)
        return tmi_fail(TM_ERR_INVALID_ARG, "sample: n must be >= 0 and vocab >= 1, got %d, %d", a->n, a->vocab);
    if (a->n == 0) return TM_OK;
    if (!a->logits || !a->rows || !a->tokens)
        return tmi_fail(TM_ERR_INVALID_ARG, "sample: logits, rows and tokens must not be NULL");
    if (a->ld < a->vocab)
        return tmi_fail(TM_ERR_INVALID_ARG, "sample: ld must be >= vocab (%d), got %lld", a->vocab, (long long)a->ld);
    size_t need = tmi_sample_cpu_workspace(a->vocab, tmi_pool_threads(ex->pool));
    if (!ex->workspace || ex->workspace_bytes < need || ((uintptr_t)ex->workspace & 7u) != 0)
        return tmi_fail(TM_ERR_INVALID_ARG,
                        "sample: workspace must be 8-byte aligned and hold %zu bytes for vocab %d and %d threads, "
                        "got %zu",
                        need, a->vocab, tmi_pool_threads(ex->pool), ex->workspace ? ex->workspace_bytes : 0);
    return check_rows(a);
}

typedef struct sample_job {
    const tmi_sample_args *a;
    char *workspace;
    size_t slice;
} sample_job;

/* tmi_sample's steps 4-10 without penalties: same calls, same order. */
static void sample_row(const tmi_sample_args *a, int32_t r, char *slice)
{
    const int32_t vocab = a->vocab;
    const tmi_sample_row *row = &a->rows[r];
    void *select = slice;
    float *x = (float *)(slice + round8(tmi_sampler_select_workspace(vocab))); /* [vocab] sanitised copy */
    float *prob = x + vocab;                                                   /* [vocab] exp((x - max) / t) */
    memcpy(x, a->logits + (int64_t)r * a->ld, (size_t)vocab * sizeof *x);

    float max = tmi_sampler_row_max(x, vocab); /* NaN becomes -inf */
    if (max == -INFINITY) {
        a->tokens[r] = -1;
        if (a->logprobs) a->logprobs[r] = NAN;
        return;
    }
    if (max == INFINITY) { /* the limit of softmax: uniform over the +inf entries */
        for (int32_t i = 0; i < vocab; i++) x[i] = x[i] == INFINITY ? 0.0f : -INFINITY;
        max = 0.0f;
    }
    int32_t token = 0;
    while (x[token] != max) token++;

    double lse = 0.0;
    int prob_at_1 = 0; /* prob holds the temperature-1 exponentials */
    if (a->logprobs) {
        lse = (double)max + log(tmi_sampler_exp(x, vocab, max, 1.0f, prob));
        prob_at_1 = 1;
    }
    if (row->temperature > 0.0f) {
        if (!(prob_at_1 && row->temperature == 1.0f)) tmi_sampler_exp(x, vocab, max, row->temperature, prob);
        tm_sampling_params p = params_of(row);
        token = tmi_sampler_draw(&p, prob, vocab, row->u, select);
    }
    a->tokens[r] = token;
    if (a->logprobs) a->logprobs[r] = (float)((double)x[token] - lse);
}

static void sample_task(void *ctx, int64_t index, int thread)
{
    const sample_job *job = ctx;
    sample_row(job->a, (int32_t)index, job->workspace + (size_t)thread * job->slice);
}

tm_status tmi_sample_cpu(const tmi_exec *ex, const tmi_sample_args *a)
{
    tm_status st = check_args(ex, a);
    if (st != TM_OK || a->n == 0) return st;
    sample_job job = {a, ex->workspace, slice_bytes(a->vocab)};
    tmi_pool_run(ex->pool, sample_task, &job, a->n);
    return TM_OK;
}
