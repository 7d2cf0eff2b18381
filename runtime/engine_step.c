/* engine_step.c - the engine thread's bookkeeping: sessions, sequences, the
 * waiting queue, admission of new requests, finishing.  The step itself (plan,
 * forward, sample) is engine_sched.c.
 *
 * A step, in engine_sched.c: cancellations, admission from the waiting queue, a plan of how many
 * tokens each running sequence advances (decode tokens first, then prefill chunks
 * within max_prefill_token_num), KV blocks for the plan (evicting idle sessions,
 * then preempting the newest sequence when the pool is short), one forward over
 * the ragged batch, sampling, and delivery.  Sequences that finish leave at once;
 * waiting ones join at the next step. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine.h"
#include "engine_seq.h"
#include "error.h"

/* ------------------------------------------------------------ sessions -- */

tmi_seq *tmi_sessions_find(tmi_session_table *t, uint64_t id)
{
    for (tmi_seq *s = t->buckets[id % (uint64_t)t->n_buckets]; s; s = s->hnext)
        if (s->session_id == id) return s;
    return NULL;
}

static void sessions_insert(tmi_session_table *t, tmi_seq *s)
{
    tmi_seq **b = &t->buckets[s->session_id % (uint64_t)t->n_buckets];
    s->hnext = *b;
    *b = s;
    t->count++;
}

static void sessions_remove(tmi_session_table *t, tmi_seq *s)
{
    for (tmi_seq **p = &t->buckets[s->session_id % (uint64_t)t->n_buckets]; *p; p = &(*p)->hnext) {
        if (*p == s) {
            *p = s->hnext;
            t->count--;
            return;
        }
    }
}

/* LRU of idle sessions that hold blocks: least recently used at the head. */
void tmi_lru_remove(tm_engine *e, tmi_seq *s)
{
    if (!s->in_lru) return;
    if (s->lru_prev) s->lru_prev->lru_next = s->lru_next;
    else e->lru_head = s->lru_next;
    if (s->lru_next) s->lru_next->lru_prev = s->lru_prev;
    else e->lru_tail = s->lru_prev;
    s->lru_prev = s->lru_next = NULL;
    s->in_lru = 0;
}

static void lru_push(tm_engine *e, tmi_seq *s)
{
    s->lru_prev = e->lru_tail;
    s->lru_next = NULL;
    if (e->lru_tail) e->lru_tail->lru_next = s;
    else e->lru_head = s;
    e->lru_tail = s;
    s->in_lru = 1;
}

/* ----------------------------------------------------------- sequences -- */

tmi_seq *tmi_seq_new(int32_t cap_tokens)
{
    tmi_seq *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->cap_tokens = cap_tokens > 16 ? cap_tokens : 16;
    s->tokens = malloc((size_t)s->cap_tokens * sizeof(int32_t));
    if (!s->tokens) {
        free(s);
        return NULL;
    }
    return s;
}

void tmi_seq_release_blocks(tm_engine *e, tmi_seq *s)
{
    tmi_blocks_release(&e->pool, s->blocks, s->n_blocks);
    s->n_blocks = 0;
    s->n_cached = 0;
}

void tmi_seq_free(tm_engine *e, tmi_seq *s)
{
    tmi_seq_release_blocks(e, s);
    tm_tokenizer_stream_destroy(s->detok);
    free(s->tokens);
    free(s->blocks);
    free(s);
}

int tmi_seq_reserve_tokens(tmi_seq *s, int32_t n)
{
    if (n <= s->cap_tokens) return 0;
    int32_t cap = s->cap_tokens;
    while (cap < n) cap *= 2;
    int32_t *grown = realloc(s->tokens, (size_t)cap * sizeof(int32_t));
    if (!grown) return -1;
    s->tokens = grown;
    s->cap_tokens = cap;
    return 0;
}

/* Room for n entries in the block table (no blocks taken); 0 or -1. */
int tmi_seq_reserve_blocks(tmi_seq *s, int32_t n)
{
    if (n <= s->cap_blocks) return 0;
    int32_t cap = s->cap_blocks ? s->cap_blocks : 4;
    while (cap < n) cap *= 2;
    int32_t *grown = realloc(s->blocks, (size_t)cap * sizeof(int32_t));
    if (!grown) return -1;
    s->blocks = grown;
    s->cap_blocks = cap;
    return 0;
}

/* Blocks for the first n_tokens positions; 0, or -1 when the pool is short. */
int tmi_seq_grow_blocks(tm_engine *e, tmi_seq *s, int32_t n_tokens)
{
    int32_t bl = e->p.cache_block_seq_len;
    int32_t need = (n_tokens + bl - 1) / bl - s->n_blocks;
    if (need <= 0) return 0;
    if (tmi_seq_reserve_blocks(s, s->n_blocks + need)) return -1;
    if (tmi_blocks_alloc(&e->pool, need, s->blocks + s->n_blocks) != 0) return -1;
    s->n_blocks += need;
    return 0;
}

/* ------------------------------------------------------------- waiting -- */

static int waiting_grow(tm_engine *e)
{
    if (e->n_waiting < e->cap_waiting) return 0;
    int32_t cap = e->cap_waiting * 2;
    tmi_seq **grown = malloc((size_t)cap * sizeof *grown);
    if (!grown) return -1;
    for (int32_t i = 0; i < e->n_waiting; i++) grown[i] = e->waiting[(e->w_head + i) % e->cap_waiting];
    free(e->waiting);
    e->waiting = grown;
    e->cap_waiting = cap;
    e->w_head = 0;
    return 0;
}

int tmi_waiting_push(tm_engine *e, tmi_seq *s, int front)
{
    if (waiting_grow(e)) return -1;
    if (front) {
        e->w_head = (e->w_head + e->cap_waiting - 1) % e->cap_waiting;
        e->waiting[e->w_head] = s;
    } else {
        e->waiting[(e->w_head + e->n_waiting) % e->cap_waiting] = s;
    }
    e->n_waiting++;
    return 0;
}

tmi_seq *tmi_waiting_pop(tm_engine *e)
{
    tmi_seq *s = e->waiting[e->w_head];
    e->w_head = (e->w_head + 1) % e->cap_waiting;
    e->n_waiting--;
    return s;
}

void tmi_running_remove(tm_engine *e, int32_t i)
{
    memmove(e->running + i, e->running + i + 1, (size_t)(e->n_running - i - 1) * sizeof *e->running);
    e->n_running--;
}

/* ------------------------------------------------------------ requests -- */

int tmi_seq_start_request(tm_engine *e, tmi_seq *s, tm_request *r, int32_t sample)
{
    s->req = r;
    s->sample = sample;
    s->history_before = s->n_tokens;
    s->prompt_tokens = r->n_prompt;
    if (tmi_seq_reserve_tokens(s, s->n_tokens + r->n_prompt + 1)) return -1;
    memcpy(s->tokens + s->n_tokens, r->prompt, (size_t)r->n_prompt * sizeof(int32_t));
    s->n_tokens += r->n_prompt;
    s->gen_start = s->n_tokens;
    s->generated = 0;
    s->tail_len = 0;
    tmi_rng_seed(&s->rng, r->params.sampling.seed + (uint64_t)sample * 0x9E3779B97F4A7C15ull);
    if (r->params.n_stop_strings > 0 && !s->detok) {
        if (tm_tokenizer_stream_create(e->p.tokenizer, 1, &s->detok) != TM_OK) return -1;
    }
    return 0;
}

/* A new request from the inbox: attach it to its session (or a fresh sequence)
 * and queue it.  Rule violations finish it at once with an error event. */
void tmi_engine_admit_request(tm_engine *e, tm_request *r)
{
    char msg[512];
    uint64_t id = r->params.session_id;
    tmi_seq *s = id ? tmi_sessions_find(&e->sessions, id) : NULL;
    int fresh = s == NULL;
    if (s && s->req) {
        snprintf(msg, sizeof msg, "session %llu is busy with another request", (unsigned long long)id);
        goto fail;
    }
    if (s && (int64_t)s->n_tokens + r->n_prompt > e->p.session_len) {
        snprintf(msg, sizeof msg,
                 "context_length_exceeded: session %llu holds %d tokens; with %d more it passes session_len %d",
                 (unsigned long long)id, s->n_tokens, r->n_prompt, e->p.session_len);
        goto fail;
    }
    if (s && s->n_tokens + r->n_prompt == 0) {
        snprintf(msg, sizeof msg, "session %llu is empty: send at least one token", (unsigned long long)id);
        goto fail;
    }
    if (fresh && r->n_prompt == 0) {
        snprintf(msg, sizeof msg, "session %llu does not exist: send at least one token", (unsigned long long)id);
        goto fail;
    }
    if (fresh) {
        s = tmi_seq_new(r->n_prompt + 64);
        if (!s) {
            snprintf(msg, sizeof msg, "out of memory");
            goto fail;
        }
        s->session_id = id;
        if (id) sessions_insert(&e->sessions, s);
    }
    tmi_lru_remove(e, s);
    if (tmi_seq_start_request(e, s, r, 0) || tmi_waiting_push(e, s, 0)) {
        s->req = NULL;
        snprintf(msg, sizeof msg, "out of memory");
        if (fresh) {
            if (id) sessions_remove(&e->sessions, s);
            tmi_seq_free(e, s);
        }
        goto fail;
    }
    return;
fail:
    tmi_request_fail(r, msg);
    tmi_request_unref(r);
}

/* Pushes a sample's FINISH event and lets its sequence go: one-shot sequences and
 * ended sessions are freed, interactive sessions keep tokens and KV (idle, LRU). */
void tmi_engine_finish_seq(tm_engine *e, tmi_seq *s, tm_finish_reason why, int32_t stop_token, int32_t stop_string)
{
    tm_request *r = s->req;
    tm_event ev = {0};
    ev.kind = TM_EVENT_FINISH;
    ev.sample = s->sample;
    ev.token = stop_token;
    ev.finish_reason = why;
    ev.stop_string = stop_string;
    ev.prompt_tokens = s->prompt_tokens;
    ev.history_tokens = s->history_before;
    ev.completion_tokens = s->generated;
    int keep = s->session_id && r->params.interactive && !s->end_after && why != TM_FINISH_ERROR;
    s->req = NULL;
    tmi_request_push(r, &ev);
    tmi_request_unref(r);
    if (keep) {
        if (s->n_blocks) lru_push(e, s);
        return;
    }
    if (s->session_id) sessions_remove(&e->sessions, s);
    tmi_seq_free(e, s);
}

void tmi_engine_end_session_now(tm_engine *e, uint64_t id)
{
    tmi_seq *s = tmi_sessions_find(&e->sessions, id);
    if (!s) return;
    if (s->req) {
        s->end_after = 1; /* its running request finishes first */
        return;
    }
    tmi_lru_remove(e, s);
    sessions_remove(&e->sessions, s);
    tmi_seq_free(e, s);
}

/* Shutdown: every request finishes cancelled; sessions go. */
void tmi_engine_drop_all(tm_engine *e)
{
    while (e->n_running) {
        tmi_seq *s = e->running[e->n_running - 1];
        e->n_running--;
        tmi_engine_finish_seq(e, s, TM_FINISH_CANCELLED, -1, -1);
    }
    while (e->n_waiting) tmi_engine_finish_seq(e, tmi_waiting_pop(e), TM_FINISH_CANCELLED, -1, -1);
    for (int32_t b = 0; b < e->sessions.n_buckets; b++) {
        while (e->sessions.buckets && e->sessions.buckets[b]) {
            tmi_seq *s = e->sessions.buckets[b];
            tmi_lru_remove(e, s);
            sessions_remove(&e->sessions, s);
            tmi_seq_free(e, s);
        }
    }
}
