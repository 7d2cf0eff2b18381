/* engine.c - tm_engine: parameters, the KV pool, the persistent thread and its
 * inbox, submit / end_session / stats.  The scheduling step is engine_step.c. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "engine.h"
#include "profile.h"
#include "error.h"

tm_engine_params tm_engine_default_params(void)
{
    tm_engine_params p = {0};
    p.max_batch_size = 64;
    p.max_prefill_token_num = 8192;
    p.cache_block_seq_len = 64;
    p.cache_max_entry_count = 0.5;
    p.n_eos_ids = 0;
    return p;
}

tm_request_params tm_request_default_params(void)
{
    tm_request_params p = {0};
    p.max_new_tokens = 16;
    p.n = 1;
    p.sampling = tm_sampling_default_params();
    return p;
}

static tm_status check_params(const tm_engine_params *p, const tm_model *m)
{
    if (p->max_batch_size < 1 || p->max_batch_size > 4096)
        return tmi_fail(TM_ERR_INVALID_ARG, "max_batch_size must be in [1, 4096], got %d", p->max_batch_size);
    if (p->max_prefill_token_num < 1 || p->max_prefill_token_num > (1 << 20))
        return tmi_fail(TM_ERR_INVALID_ARG, "max_prefill_token_num must be in [1, 1048576], got %d",
                        p->max_prefill_token_num);
    if (p->session_len < 0 || p->session_len > (1 << 24))
        return tmi_fail(TM_ERR_INVALID_ARG, "session_len must be in [1, 16777216] (or 0: model default), got %d",
                        p->session_len);
    if (p->cache_block_seq_len < 1 || p->cache_block_seq_len > 4096)
        return tmi_fail(TM_ERR_INVALID_ARG, "cache_block_seq_len must be in [1, 4096], got %d",
                        p->cache_block_seq_len);
    if (!(p->cache_max_entry_count > 0.0) || p->cache_max_entry_count > 1e9)
        return tmi_fail(TM_ERR_INVALID_ARG,
                        "cache_max_entry_count must be in (0, 1] (a fraction) or > 1 (a block count), got %g",
                        p->cache_max_entry_count);
    if (p->n_eos_ids < 0 || p->n_eos_ids > 8)
        return tmi_fail(TM_ERR_INVALID_ARG, "n_eos_ids must be in [0, 8], got %d", p->n_eos_ids);
    for (int i = 0; i < p->n_eos_ids; i++)
        if (p->eos_ids[i] < 0 || p->eos_ids[i] >= m->p.vocab_size)
            return tmi_fail(TM_ERR_INVALID_ARG, "eos_ids[%d] = %d is outside the vocabulary [0, %d)", i,
                            p->eos_ids[i], m->p.vocab_size);
    return TM_OK;
}

/* Bytes of memory available to the process (MemAvailable), 0 when unknown. */
static double mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    double kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %lf kB", &kb) == 1) break;
    fclose(f);
    return kb * 1024.0;
}

static tm_status size_pool(tm_engine *e, int32_t *n_blocks)
{
    const tm_engine_params *p = &e->p;
    size_t block_bytes = (size_t)tmi_model_kv_block_bytes(e->model, p->cache_block_seq_len);
    int64_t min_blocks = (p->session_len + p->cache_block_seq_len - 1) / p->cache_block_seq_len;
    int64_t n;
    if (p->cache_max_entry_count > 1.0) {
        n = (int64_t)p->cache_max_entry_count;
    } else {
        double avail = e->model->p.backend == TM_BACKEND_CUDA ? tmi_dev_mem_free() : mem_available();
        n = (int64_t)(avail * p->cache_max_entry_count / (double)block_bytes);
    }
    if (n < min_blocks) n = min_blocks; /* a request that fits session_len must always fit the pool */
    if (n > (1 << 30)) n = 1 << 30;
    *n_blocks = (int32_t)n;
    return TM_OK;
}

static tm_status alloc_state(tm_engine *e)
{
    const tm_engine_params *p = &e->p;
    int32_t vocab = e->model->p.vocab_size, batch = p->max_batch_size;
    int32_t n_blocks;
    tm_status s = size_pool(e, &n_blocks);
    if (s) return s;
    if ((s = tmi_blocks_init(&e->pool, n_blocks))) return s;
    size_t bytes = (size_t)n_blocks * (size_t)tmi_model_kv_block_bytes(e->model, p->cache_block_seq_len);
    if (e->model->p.backend == TM_BACKEND_CUDA) {
        if ((s = tmi_dev_alloc(&e->kv, bytes))) return s;
    } else {
        e->kv = malloc(bytes);
    }
    if (!e->kv) return tmi_fail(TM_ERR_NOMEM, "KV cache of %d blocks (%zu MB): out of memory", n_blocks,
                                bytes >> 20);
    e->cache = tmi_model_kv_layout(e->model, p->cache_block_seq_len);
    e->cache.base = e->kv;
    int32_t cap_tok = p->max_prefill_token_num + batch;
    if ((s = tmi_fwd_buffers_init(&e->fb, e->model, cap_tok, p->session_len, batch))) return s;
    e->running = calloc((size_t)batch, sizeof *e->running);
    e->cap_waiting = 64;
    e->waiting = calloc((size_t)e->cap_waiting, sizeof *e->waiting);
    e->sessions.n_buckets = 1024;
    e->sessions.buckets = calloc((size_t)e->sessions.n_buckets, sizeof *e->sessions.buckets);
    e->step_tokens = malloc((size_t)cap_tok * sizeof(int32_t));
    e->step_seqs = malloc((size_t)batch * sizeof *e->step_seqs);
    e->step_q = malloc((size_t)batch * sizeof(int32_t));
    e->logit_rows = malloc((size_t)batch * sizeof(int32_t));
    e->logit_seqs = malloc((size_t)batch * sizeof *e->logit_seqs);
    e->logits = malloc((size_t)batch * (size_t)vocab * sizeof(float));
    e->sampler_ws_bytes = tmi_sampler_workspace(vocab);
    e->sampler_ws = malloc(e->sampler_ws_bytes);
    if (!e->running || !e->waiting || !e->sessions.buckets || !e->step_tokens || !e->step_seqs || !e->step_q ||
        !e->logit_rows || !e->logit_seqs || !e->logits || !e->sampler_ws)
        return tmi_fail(TM_ERR_NOMEM, "engine buffers for batch %d: out of memory", batch);
    if ((s = tmi_engine_dev_init(e, batch))) return s;
    if (p->profile && (s = tmi_fwd_buffers_profile(&e->fb, e->model))) return s;
    e->local.blocks_total = n_blocks;
    e->local.blocks_free = n_blocks;
    e->stats = e->local;
    return TM_OK;
}

/* Moves what clients sent (new requests, session ends) to the engine thread;
 * blocks while there is nothing at all to do.  Returns 0 when stopping. */
static int take_inbox(tm_engine *e)
{
    pthread_mutex_lock(&e->mu);
    while (!e->stopping && !e->inbox_head && e->n_end == 0 && e->n_running == 0 && e->n_waiting == 0)
        pthread_cond_wait(&e->cv, &e->mu);
    if (e->stopping) {
        pthread_mutex_unlock(&e->mu);
        return 0;
    }
    tm_request *list = e->inbox_head;
    e->inbox_head = e->inbox_tail = NULL;
    e->inbox_count = 0;
    uint64_t ends[64];
    int32_t n_end = e->n_end < 64 ? e->n_end : 64;
    if (n_end > 0) {
        memcpy(ends, e->end_ids, (size_t)n_end * sizeof *ends);
        memmove(e->end_ids, e->end_ids + n_end, (size_t)(e->n_end - n_end) * sizeof *ends);
        e->n_end -= n_end;
    }
    pthread_mutex_unlock(&e->mu);

    while (list) {
        tm_request *next = list->inbox_next;
        tmi_engine_admit_request(e, list);
        list = next;
    }
    for (int32_t i = 0; i < n_end; i++) tmi_engine_end_session_now(e, ends[i]);
    return 1;
}

static void *engine_main(void *arg)
{
    tm_engine *e = arg;
    while (take_inbox(e)) tmi_engine_step(e);
    tmi_engine_drop_all(e);
    return NULL;
}

tm_status tm_engine_create(tm_model *model, const tm_engine_params *params, tm_engine **out)
{
    if (!model || !out) return tmi_fail(TM_ERR_INVALID_ARG, "tm_engine_create: NULL argument");
    tm_engine_params p = params ? *params : tm_engine_default_params();
    if (p.session_len == 0) p.session_len = model->p.max_position_embeddings;
    tm_status s = check_params(&p, model);
    if (s) return s;
    tm_engine *e = calloc(1, sizeof *e);
    if (!e) return tmi_fail(TM_ERR_NOMEM, "tm_engine_create: out of memory");
    e->model = model;
    e->p = p;
    e->event_fd = -1;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    if ((s = alloc_state(e))) goto err;
    e->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (e->event_fd < 0) {
        s = tmi_fail(TM_ERR_NOMEM, "eventfd failed");
        goto err;
    }
    if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
        s = tmi_fail(TM_ERR_NOMEM, "could not start the engine thread");
        goto err;
    }
    e->thread_started = 1;
    *out = e;
    return TM_OK;
err:
    tm_engine_destroy(e);
    return s;
}

void tm_engine_destroy(tm_engine *engine)
{
    if (!engine) return;
    tm_engine *e = engine;
    pthread_mutex_lock(&e->mu);
    e->stopping = 1;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    if (e->thread_started) pthread_join(e->thread, NULL);
    else tmi_engine_drop_all(e);
    /* requests still in the inbox never reached the engine thread */
    for (tm_request *r = e->inbox_head; r;) {
        tm_request *next = r->inbox_next;
        tmi_request_fail(r, "the engine was destroyed before the request started");
        tmi_request_unref(r);
        r = next;
    }
    tmi_engine_dev_free(e);
    tmi_fwd_buffers_free(&e->fb);
    tmi_blocks_free_all(&e->pool);
    if (e->model && e->model->p.backend == TM_BACKEND_CUDA) tmi_dev_free(e->kv);
    else free(e->kv);
    free(e->running);
    free(e->waiting);
    free(e->sessions.buckets);
    free(e->step_tokens);
    free(e->step_seqs);
    free(e->step_q);
    free(e->logit_rows);
    free(e->logit_seqs);
    free(e->logits);
    free(e->sampler_ws);
    free(e->end_ids);
    if (e->event_fd >= 0) close(e->event_fd);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

static tm_status copy_params(tm_request *r, const tm_request_params *p, const tm_engine *e)
{
    r->params = *p;
    if (p->n_stop_ids < 0 || p->n_stop_ids > TMI_MAX_STOP_IDS)
        return tmi_fail(TM_ERR_INVALID_ARG, "n_stop_ids must be in [0, %d], got %d", TMI_MAX_STOP_IDS, p->n_stop_ids);
    for (int32_t i = 0; i < p->n_stop_ids; i++) {
        if (p->stop_ids[i] < 0 || p->stop_ids[i] >= e->model->p.vocab_size)
            return tmi_fail(TM_ERR_INVALID_ARG, "stop_ids[%d] = %d is outside the vocabulary [0, %d)", i,
                            p->stop_ids[i], e->model->p.vocab_size);
        r->stop_ids[i] = p->stop_ids[i];
    }
    r->params.stop_ids = r->stop_ids;
    if (p->n_stop_strings < 0 || p->n_stop_strings > TMI_MAX_STOP_STRINGS)
        return tmi_fail(TM_ERR_INVALID_ARG, "n_stop_strings must be in [0, %d], got %d", TMI_MAX_STOP_STRINGS,
                        p->n_stop_strings);
    if (p->n_stop_strings > 0 && !e->p.tokenizer)
        return tmi_fail(TM_ERR_INVALID_ARG, "stop strings need an engine created with a tokenizer");
    for (int32_t i = 0; i < p->n_stop_strings; i++) {
        size_t len = p->stop_strings[i] ? strlen(p->stop_strings[i]) : 0;
        if (len < 1 || len > TMI_MAX_STOP_LEN)
            return tmi_fail(TM_ERR_INVALID_ARG, "stop_strings[%d] must be 1 to %d bytes, got %zu", i,
                            TMI_MAX_STOP_LEN, len);
        if (!(r->stop_strings[i] = strdup(p->stop_strings[i]))) return tmi_fail(TM_ERR_NOMEM, "out of memory");
        r->stop_lens[i] = (int32_t)len;
    }
    r->params.stop_strings = (const char *const *)r->stop_strings;
    int32_t nb = p->sampling.n_logit_bias;
    if (nb > 0) {
        r->bias_ids = malloc((size_t)nb * sizeof(int32_t));
        r->bias_values = malloc((size_t)nb * sizeof(float));
        if (!r->bias_ids || !r->bias_values) return tmi_fail(TM_ERR_NOMEM, "out of memory");
        memcpy(r->bias_ids, p->sampling.logit_bias_ids, (size_t)nb * sizeof(int32_t));
        memcpy(r->bias_values, p->sampling.logit_bias_values, (size_t)nb * sizeof(float));
        r->params.sampling.logit_bias_ids = r->bias_ids;
        r->params.sampling.logit_bias_values = r->bias_values;
    }
    return TM_OK;
}

static tm_status check_request(const tm_engine *e, const int32_t *tokens, int32_t n_tokens, const tm_request_params *p)
{
    int32_t vocab = e->model->p.vocab_size;
    if (n_tokens < 0 || (n_tokens > 0 && !tokens))
        return tmi_fail(TM_ERR_INVALID_ARG, "n_tokens must be >= 0 with a token array, got %d", n_tokens);
    if (n_tokens == 0 && p->session_id == 0)
        return tmi_fail(TM_ERR_INVALID_ARG, "a request without a session needs at least one token");
    if (n_tokens > e->p.session_len)
        return tmi_fail(TM_ERR_INVALID_ARG,
                        "context_length_exceeded: the prompt has %d tokens, more than session_len %d", n_tokens,
                        e->p.session_len);
    for (int32_t i = 0; i < n_tokens; i++)
        if (tokens[i] < 0 || tokens[i] >= vocab)
            return tmi_fail(TM_ERR_INVALID_ARG, "token %d at index %d is outside the vocabulary [0, %d)", tokens[i],
                            i, vocab);
    if (p->max_new_tokens < 0 || p->max_new_tokens > (1 << 24))
        return tmi_fail(TM_ERR_INVALID_ARG, "max_new_tokens must be in [0, 16777216], got %d", p->max_new_tokens);
    if (p->n < 1 || p->n > TMI_MAX_N)
        return tmi_fail(TM_ERR_INVALID_ARG, "n must be in [1, %d], got %d", TMI_MAX_N, p->n);
    if (p->n > 1 && p->session_id != 0)
        return tmi_fail(TM_ERR_INVALID_ARG, "n > 1 needs a one-shot request (session_id 0)");
    if (p->interactive && p->session_id == 0)
        return tmi_fail(TM_ERR_INVALID_ARG, "interactive needs a session_id");
    return tm_sampling_params_check(&p->sampling, vocab);
}

tm_status tm_engine_submit(tm_engine *engine, const int32_t *tokens, int32_t n_tokens,
                           const tm_request_params *params, tm_request **out)
{
    if (!engine || !params || !out) return tmi_fail(TM_ERR_INVALID_ARG, "tm_engine_submit: NULL argument");
    tm_engine *e = engine;
    tm_status s = check_request(e, tokens, n_tokens, params);
    if (s) return s;
    tm_request *r = calloc(1, sizeof *r);
    if (!r) return tmi_fail(TM_ERR_NOMEM, "tm_engine_submit: out of memory");
    atomic_init(&r->refs, 2); /* the caller's handle and the engine's */
    atomic_init(&r->cancel, 0);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->engine = e;
    r->n_prompt = n_tokens;
    r->prompt = malloc((size_t)(n_tokens > 0 ? n_tokens : 1) * sizeof(int32_t));
    if (!r->prompt) {
        s = tmi_fail(TM_ERR_NOMEM, "tm_engine_submit: out of memory");
        goto err;
    }
    if (n_tokens) memcpy(r->prompt, tokens, (size_t)n_tokens * sizeof(int32_t));
    if ((s = copy_params(r, params, e))) goto err;
    pthread_mutex_lock(&e->mu);
    if (e->stopping) {
        pthread_mutex_unlock(&e->mu);
        s = tmi_fail(TM_ERR_STATE, "the engine is stopping");
        goto err;
    }
    if (e->inbox_tail) e->inbox_tail->inbox_next = r;
    else e->inbox_head = r;
    e->inbox_tail = r;
    e->inbox_count++;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    *out = r;
    return TM_OK;
err:
    atomic_store(&r->refs, 1);
    tmi_request_unref(r);
    return s;
}

tm_status tm_engine_end_session(tm_engine *engine, uint64_t session_id)
{
    if (!engine) return tmi_fail(TM_ERR_INVALID_ARG, "tm_engine_end_session: NULL engine");
    tm_engine *e = engine;
    pthread_mutex_lock(&e->mu);
    tm_status s = TM_OK;
    if (e->stopping) {
        s = tmi_fail(TM_ERR_STATE, "the engine is stopping");
    } else {
        if (e->n_end == e->cap_end) {
            int32_t cap = e->cap_end ? e->cap_end * 2 : 16;
            uint64_t *grown = realloc(e->end_ids, (size_t)cap * sizeof *grown);
            if (!grown) s = tmi_fail(TM_ERR_NOMEM, "out of memory");
            else {
                e->end_ids = grown;
                e->cap_end = cap;
            }
        }
        if (!s) {
            e->end_ids[e->n_end++] = session_id;
            pthread_cond_signal(&e->cv);
        }
    }
    pthread_mutex_unlock(&e->mu);
    return s;
}

int32_t tm_engine_event_fd(const tm_engine *engine) { return engine ? engine->event_fd : -1; }

void tm_engine_event_drain(tm_engine *engine)
{
    uint64_t v;
    if (engine && read(engine->event_fd, &v, sizeof v) < 0) { /* EAGAIN: nothing pending */ }
}

int32_t tm_engine_profile(tm_engine *engine, char *buf, int32_t cap)
{
    if (buf && cap > 0) buf[0] = '\0';
    if (!engine || !engine->p.profile) return 0;
    pthread_mutex_lock(&engine->mu);
    tmi_prof_totals t = engine->prof_published;
    pthread_mutex_unlock(&engine->mu);
    return tmi_prof_format(&t, buf, buf ? cap : 0);
}

void tm_engine_get_stats(tm_engine *engine, tm_engine_stats *stats)
{
    if (!engine || !stats) return;
    pthread_mutex_lock(&engine->mu);
    *stats = engine->stats;
    stats->queued += engine->inbox_count;
    pthread_mutex_unlock(&engine->mu);
}
