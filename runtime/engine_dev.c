/* engine_dev.c - sampling on the GPU for the CUDA engine (kernels/sample).
 *
 * After the forward the logits stay in device memory.  Every row whose request
 * needs nothing the batch sampler lacks (penalties, logit bias, top_logprobs) is
 * sampled there, in one launch for the batch: the host sends n 24-byte rows (the
 * request's parameters and its next uniform draw, taken from its rng exactly as
 * the host sampler would take it) and gets back n token ids and logprobs.  Any
 * other row has just its logits copied back and goes through tmi_sample.  The
 * copies go through pinned buffers on the runner's stream, and the step's only
 * synchronisation is the wait for those results. */
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "engine_seq.h"
#include "error.h"
#include "profile.h"

#ifdef TMRUN_HAVE_CUDA
#include "cuda/cuda_runtime.h"

/* What only the host sampler does. */
static int needs_host(const tm_request_params *rp)
{
    const tm_sampling_params *p = &rp->sampling;
    return p->repetition_penalty != 1.0f || p->presence_penalty != 0.0f || p->frequency_penalty != 0.0f ||
           p->n_logit_bias > 0 || (rp->logprobs && p->top_logprobs > 0);
}

tm_status tmi_engine_dev_init(tm_engine *e, int32_t batch)
{
    if (e->model->p.backend != TM_BACKEND_CUDA || !e->model->ops->sample) return TM_OK;
    tm_status s;
    size_t rows = (size_t)batch * sizeof(tmi_sample_row), out = (size_t)batch * 8;
    if ((s = tmi_cuda_host_alloc((void **)&e->ds.rows, rows)) || (s = tmi_dev_alloc((void **)&e->ds.rows_dev, rows)) ||
        (s = tmi_cuda_host_alloc((void **)&e->ds.out, out)) || (s = tmi_dev_alloc((void **)&e->ds.out_dev, out)))
        return s;
    e->ds.host_row = calloc((size_t)batch, 1);
    e->ds.cap = batch;
    return e->ds.host_row ? TM_OK : tmi_fail(TM_ERR_NOMEM, "engine: out of memory");
}

void tmi_engine_dev_free(tm_engine *e)
{
    tmi_cuda_host_free(e->ds.rows);
    tmi_dev_free(e->ds.rows_dev);
    tmi_cuda_host_free(e->ds.out);
    tmi_dev_free(e->ds.out_dev);
    free(e->ds.host_row);
    memset(&e->ds, 0, sizeof e->ds);
}

tm_status tmi_engine_dev_sample(tm_engine *e, int32_t n)
{
    tmi_fwd_buffers *fb = &e->fb;
    int32_t vocab = e->model->p.vocab_size;
    tm_status s;
    for (int32_t j = 0; j < n; j++) {
        tmi_seq *sq = e->logit_seqs[j];
        const tm_request_params *rp = &sq->req->params;
        tmi_sample_row *row = &e->ds.rows[j];
        memset(row, 0, sizeof *row);
        row->top_p = 1.0f;
        e->ds.host_row[j] = (uint8_t)needs_host(rp);
        if (e->ds.host_row[j]) {
            if ((s = tmi_cuda_memcpy_async(e->logits + (size_t)j * vocab, fb->dev.logits + (size_t)j * vocab,
                                           (size_t)vocab * sizeof(float), 1, fb->dev.stream)))
                return s;
            continue; /* its row samples greedily on the device, unread */
        }
        if (sq->generated >= rp->max_new_tokens) continue; /* finishes without a draw */
        row->temperature = rp->sampling.temperature;
        row->top_k = rp->sampling.top_k;
        row->top_p = rp->sampling.top_p;
        row->min_p = rp->sampling.min_p;
        if (row->temperature > 0.0f) row->u = tmi_rng_next_double(&sq->rng);
    }
    tmi_exec ex = {.backend = TM_BACKEND_CUDA, .stream = fb->dev.stream};
    tmi_sample_args a = {
        .n = n, .vocab = vocab, .logits = fb->dev.logits, .ld = vocab, .rows = e->ds.rows_dev,
        .tokens = e->ds.out_dev, .logprobs = (float *)(e->ds.out_dev + e->ds.cap),
    };
    if ((s = tmi_cuda_memcpy_async(e->ds.rows_dev, e->ds.rows, (size_t)n * sizeof(tmi_sample_row), 0,
                                   fb->dev.stream)) ||
        (s = e->model->ops->sample(&ex, &a)) ||
        (s = tmi_cuda_memcpy_async(e->ds.out, e->ds.out_dev, (size_t)n * sizeof(int32_t), 1, fb->dev.stream)) ||
        (s = tmi_cuda_memcpy_async(e->ds.out + e->ds.cap, e->ds.out_dev + e->ds.cap, (size_t)n * sizeof(float), 1,
                                   fb->dev.stream)))
        return s;
    tmi_prof_mark(fb->prof, TMI_PROF_SAMPLE);
    if ((s = tmi_cuda_stream_sync(fb->dev.stream))) return s;
    return tmi_prof_end(fb->prof);
}
#else
tm_status tmi_engine_dev_init(tm_engine *e, int32_t batch)
{
    (void)e, (void)batch;
    return TM_OK;
}
void tmi_engine_dev_free(tm_engine *e) { (void)e; }
tm_status tmi_engine_dev_sample(tm_engine *e, int32_t n)
{
    (void)e, (void)n;
    return tmi_fail(TM_ERR_UNSUPPORTED, "this build has no CUDA backend");
}
#endif
