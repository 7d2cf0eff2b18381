/* engine_sched.c - the step itself: plan, reserve blocks, forward, sample, deliver.
 * Bookkeeping of sequences, sessions and the waiting queue is in engine_step.c. */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "engine_seq.h"
#include "error.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Cancelled requests leave the batch and the queue. */
static void sweep_cancelled(tm_engine *e)
{
    for (int32_t i = e->n_running - 1; i >= 0; i--) {
        tmi_seq *s = e->running[i];
        if (atomic_load_explicit(&s->req->cancel, memory_order_relaxed)) {
            tmi_running_remove(e, i);
            tmi_engine_finish_seq(e, s, TM_FINISH_CANCELLED, -1, -1);
        }
    }
    for (int32_t n = e->n_waiting; n > 0; n--) {
        tmi_seq *s = tmi_waiting_pop(e);
        if (atomic_load_explicit(&s->req->cancel, memory_order_relaxed)) tmi_engine_finish_seq(e, s, TM_FINISH_CANCELLED, -1, -1);
        else tmi_waiting_push(e, s, 0);
    }
}

static void admit(tm_engine *e)
{
    while (e->n_running < e->p.max_batch_size && e->n_waiting > 0) {
        tmi_seq *s = tmi_waiting_pop(e);
        /* the last token's logits are needed to generate: recompute it if cached */
        if (s->n_cached >= s->n_tokens) s->n_cached = s->n_tokens - 1;
        s->admit_order = ++e->admit_counter;
        e->running[e->n_running++] = s;
    }
}

/* Frees blocks for `protect`: idle sessions (least recent first), then sequences
 * waiting in the queue, then the newest running sequence other than protect,
 * which goes back to the front of the queue.  0 when something was freed. */
static int reclaim(tm_engine *e, const tmi_seq *protect)
{
    if (e->lru_head) {
        tmi_seq *s = e->lru_head;
        tmi_lru_remove(e, s);
        tmi_seq_release_blocks(e, s);
        e->local.evictions++;
        return 0;
    }
    for (int32_t i = 0; i < e->n_waiting; i++) {
        tmi_seq *s = e->waiting[(e->w_head + i) % e->cap_waiting];
        if (s->n_blocks) {
            tmi_seq_release_blocks(e, s);
            e->local.evictions++;
            return 0;
        }
    }
    int32_t newest = -1;
    for (int32_t i = 0; i < e->n_running; i++)
        if (e->running[i] != protect && (newest < 0 || e->running[i]->admit_order > e->running[newest]->admit_order))
            newest = i;
    if (newest < 0) return -1;
    tmi_seq *s = e->running[newest];
    tmi_running_remove(e, newest);
    tmi_seq_release_blocks(e, s);
    tmi_waiting_push(e, s, 1);
    e->local.preemptions++;
    return 0;
}

/* How many tokens each running sequence advances: decoders 1, then prefill chunks
 * (oldest first) within max_prefill_token_num; blocks reserved as it goes. */
static int32_t plan(tm_engine *e)
{
    int32_t prefill_budget = e->p.max_prefill_token_num;
    int32_t total = 0;
    for (int32_t i = 0; i < e->n_running;) {
        tmi_seq *s = e->running[i];
        int32_t todo = s->n_tokens - s->n_cached;
        int32_t q = todo == 1 ? 1 : (todo < prefill_budget ? todo : prefill_budget);
        if (q > 0 && tmi_seq_grow_blocks(e, s, s->n_cached + q) != 0) {
            if (reclaim(e, s) == 0) {
                /* the pool changed (and maybe running[] too): plan again from here */
                i = 0;
                total = 0;
                prefill_budget = e->p.max_prefill_token_num;
                continue;
            }
            q = 0; /* cannot happen while the pool holds a session_len sequence */
        }
        if (todo > 1) prefill_budget -= q;
        e->step_q[i] = q;
        total += q;
        i++;
    }
    return total;
}

/* The ragged batch of the plan; logit rows for sequences whose tokens are all in. */
static int32_t build_batch(tm_engine *e, tmi_batch *b)
{
    int32_t row = 0, n_seq = 0, n_logits = 0;
    for (int32_t i = 0; i < e->n_running; i++) {
        tmi_seq *s = e->running[i];
        int32_t q = e->step_q[i];
        if (q == 0) continue;
        memcpy(e->step_tokens + row, s->tokens + s->n_cached, (size_t)q * sizeof(int32_t));
        tmi_attn_seq *a = &e->step_seqs[n_seq++];
        a->q_start = row;
        a->q_len = q;
        a->kv_len = s->n_cached + q;
        a->block_table = s->blocks;
        row += q;
        if (s->n_cached + q == s->n_tokens) {
            e->logit_rows[n_logits] = row - 1;
            e->logit_seqs[n_logits++] = s;
        }
    }
    b->n_tok = row;
    b->tokens = e->step_tokens;
    b->n_seq = n_seq;
    b->seqs = e->step_seqs;
    b->n_logits = n_logits;
    b->logit_rows = e->logit_rows;
    b->logits = e->logits;
    return n_logits;
}

/* n > 1: the other samples start from the first one's prompt, sharing its full
 * KV blocks and recomputing only the partial last block's tokens themselves. */
static void fork_samples(tm_engine *e, tmi_seq *first)
{
    tm_request *r = first->req;
    int32_t bl = e->p.cache_block_seq_len;
    int32_t shared = (first->n_tokens - 1) / bl; /* full blocks strictly before the last token */
    for (int32_t k = 1; k < r->params.n; k++) {
        tmi_seq *s = tmi_seq_new(first->n_tokens + 64);
        int ok = s && tmi_seq_reserve_blocks(s, shared + 1) == 0;
        if (ok) {
            atomic_fetch_add(&r->refs, 1);
            ok = tmi_seq_start_request(e, s, r, k) == 0;
        }
        if (!ok) {
            snprintf(r->error, sizeof r->error, "out of memory starting sample %d", k);
            if (s && s->req) {
                tmi_engine_finish_seq(e, s, TM_FINISH_ERROR, -1, -1);
                continue;
            }
            if (s) tmi_seq_free(e, s);
            tm_event ev = {.kind = TM_EVENT_FINISH, .sample = k, .token = -1, .stop_string = -1,
                           .finish_reason = TM_FINISH_ERROR, .prompt_tokens = r->n_prompt};
            tmi_request_push(r, &ev);
            continue;
        }
        memcpy(s->blocks, first->blocks, (size_t)shared * sizeof(int32_t));
        tmi_blocks_retain(&e->pool, s->blocks, shared);
        s->n_blocks = shared;
        s->n_cached = shared * bl;
        tmi_waiting_push(e, s, 1);
    }
}

static int is_stop_id(const tm_engine *e, const tm_request *r, int32_t id)
{
    if (!r->params.ignore_eos)
        for (int32_t i = 0; i < e->p.n_eos_ids; i++)
            if (e->p.eos_ids[i] == id) return 1;
    for (int32_t i = 0; i < r->params.n_stop_ids; i++)
        if (r->stop_ids[i] == id) return 1;
    return 0;
}

/* Decodes the new token into the tail and looks for a stop string; its index or -1. */
static int32_t match_stop_string(tmi_seq *s, int32_t token)
{
    const tm_request *r = s->req;
    const char *text;
    size_t len;
    if (tm_tokenizer_stream_feed(s->detok, token, &text, &len) != TM_OK || len == 0) return -1;
    for (size_t off = 0; off < len;) {
        size_t room = sizeof s->tail - (size_t)s->tail_len;
        if (room == 0) { /* keep the last TMI_MAX_STOP_LEN bytes: a match ends in the new text */
            memmove(s->tail, s->tail + TMI_MAX_STOP_LEN, TMI_MAX_STOP_LEN);
            s->tail_len = TMI_MAX_STOP_LEN;
            room = sizeof s->tail - (size_t)s->tail_len;
        }
        size_t take = len - off < room ? len - off : room;
        memcpy(s->tail + s->tail_len, text + off, take);
        s->tail_len += (int32_t)take;
        off += take;
        for (int32_t k = 0; k < r->params.n_stop_strings; k++)
            if (memmem(s->tail, (size_t)s->tail_len, r->stop_strings[k], (size_t)r->stop_lens[k])) return k;
    }
    return -1;
}

/* Appends a sampled token to the sequence and delivers it (res: the token and,
 * when the request asked, its logprobs).  Returns 1 when the sequence finished. */
static int deliver(tm_engine *e, tmi_seq *s, const tmi_sample_result *res)
{
    tm_request *r = s->req;
    const tm_request_params *rp = &r->params;
    if (tmi_seq_reserve_tokens(s, s->n_tokens + 1)) {
        snprintf(r->error, sizeof r->error, "out of memory for the token history");
        tmi_engine_finish_seq(e, s, TM_FINISH_ERROR, -1, -1);
        return 1;
    }
    s->tokens[s->n_tokens++] = res->token;
    s->generated++;
    e->local.tokens_generated++;
    if (is_stop_id(e, r, res->token)) {
        tmi_engine_finish_seq(e, s, TM_FINISH_STOP, res->token, -1);
        return 1;
    }
    tm_event ev = {0};
    ev.kind = TM_EVENT_TOKEN;
    ev.sample = s->sample;
    ev.token = res->token;
    ev.stop_string = -1;
    if (rp->logprobs) {
        ev.logprob = res->logprob;
        ev.n_top = res->n_top;
        for (int32_t k = 0; k < res->n_top; k++) {
            ev.top_ids[k] = res->top[k].id;
            ev.top_logprobs[k] = res->top[k].logprob;
        }
    }
    tmi_request_push(r, &ev);
    int32_t stop = rp->n_stop_strings ? match_stop_string(s, res->token) : -1;
    if (stop >= 0) tmi_engine_finish_seq(e, s, TM_FINISH_STOP, -1, stop);
    else if (s->generated >= rp->max_new_tokens || s->n_tokens >= e->p.session_len)
        tmi_engine_finish_seq(e, s, TM_FINISH_LENGTH, -1, -1);
    else return 0;
    return 1;
}

/* Samples one sequence's next token from its logits row on the host and delivers
 * it.  Returns 1 when the sequence finished. */
static int sample_and_deliver(tm_engine *e, tmi_seq *s, float *logits)
{
    tm_request *r = s->req;
    const tm_request_params *rp = &r->params;
    tmi_token_history h = {.tokens = s->tokens, .n_tokens = s->n_tokens, .n_prompt = s->gen_start};
    tmi_sample_result res;
    tm_status st = tmi_sample(&rp->sampling, logits, e->model->p.vocab_size, &h, &s->rng, e->sampler_ws,
                              e->sampler_ws_bytes, &res);
    if (st) {
        snprintf(r->error, sizeof r->error, "sampling failed: %s", tm_last_error());
        tmi_engine_finish_seq(e, s, TM_FINISH_ERROR, -1, -1);
        return 1;
    }
    return deliver(e, s, &res);
}

/* Delivers row j's token sampled on the device (engine_dev.c); 1 when finished. */
static int deliver_device(tm_engine *e, tmi_seq *s, int32_t j)
{
    tm_request *r = s->req;
    tmi_sample_result res = {.token = e->ds.out[j]};
    memcpy(&res.logprob, &e->ds.out[e->ds.cap + j], sizeof(float));
    if (res.token < 0) {
        snprintf(r->error, sizeof r->error, "sampling failed: every logit is -inf or NaN");
        tmi_engine_finish_seq(e, s, TM_FINISH_ERROR, -1, -1);
        return 1;
    }
    return deliver(e, s, &res);
}

static void publish(tm_engine *e, int delivered)
{
    e->local.queued = e->n_waiting;
    e->local.running = e->n_running;
    e->local.sessions = e->sessions.count;
    e->local.blocks_used = tmi_blocks_used_count(&e->pool);
    e->local.blocks_free = tmi_blocks_free_count(&e->pool);
    pthread_mutex_lock(&e->mu);
    e->stats = e->local;
    if (e->fb.prof) e->prof_published = e->fb.prof->totals;
    pthread_mutex_unlock(&e->mu);
    if (delivered) {
        uint64_t one = 1;
        if (write(e->event_fd, &one, sizeof one) < 0) { /* counter saturated: already readable */ }
    }
}

static void fail_batch(tm_engine *e, const char *why)
{
    while (e->n_running) {
        tmi_seq *s = e->running[--e->n_running];
        snprintf(s->req->error, sizeof s->req->error, "%s", why);
        tmi_engine_finish_seq(e, s, TM_FINISH_ERROR, -1, -1);
    }
}

int tmi_engine_step(tm_engine *e)
{
    double t0 = now_s();
    int delivered = e->n_running > 0 || e->n_waiting > 0;
    sweep_cancelled(e);
    admit(e);
    int32_t n_tok = plan(e);
    if (n_tok == 0) {
        e->local.schedule_seconds += now_s() - t0;
        publish(e, delivered);
        return 0;
    }
    tmi_batch b;
    int32_t n_logits = build_batch(e, &b);
    int on_device = e->ds.rows != NULL && n_logits > 0;
    if (on_device) b.logits = NULL; /* they stay on the GPU for tmi_engine_dev_sample */
    double t1 = now_s();
    tm_status st = tmi_forward(e->model, &e->fb, &b, e->cache);
    if (!st && on_device) st = tmi_engine_dev_sample(e, n_logits);
    double t2 = now_s();
    e->local.steps++;
    if (st) {
        char why[512];
        snprintf(why, sizeof why, "forward failed: %s", tm_last_error());
        fail_batch(e, why);
        publish(e, 1);
        return 1;
    }
    for (int32_t i = 0; i < e->n_running; i++) {
        tmi_seq *s = e->running[i];
        if (s->gen_start > s->n_cached) e->local.tokens_prefilled += e->step_q[i];
        s->n_cached += e->step_q[i];
    }
    int32_t vocab = e->model->p.vocab_size;
    for (int32_t j = 0; j < n_logits; j++) {
        tmi_seq *s = e->logit_seqs[j];
        if (s->sample == 0 && s->generated == 0 && s->req->params.n > 1) fork_samples(e, s);
        int32_t idx = 0;
        while (e->running[idx] != s) idx++;
        int done = 1;
        if (s->generated >= s->req->params.max_new_tokens) /* nothing left to make (max_new_tokens 0): no draw */
            tmi_engine_finish_seq(e, s, TM_FINISH_LENGTH, -1, -1);
        else if (on_device && !e->ds.host_row[j]) done = deliver_device(e, s, j);
        else done = sample_and_deliver(e, s, e->logits + (size_t)j * vocab);
        if (done) tmi_running_remove(e, idx);
    }
    double t3 = now_s();
    e->local.forward_seconds += t2 - t1;
    e->local.sample_seconds += t3 - t2;
    e->local.schedule_seconds += (t1 - t0);
    publish(e, 1);
    return 1;
}
