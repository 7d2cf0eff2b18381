/* test_engine.c - the engine through the C API alone (no LuaJIT), so that ASan and
 * valgrind see every allocation: batching exactness against tm_context, cancel at
 * random moments, a pool smaller than the load, sessions, shutdown with work queued. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

enum { VOCAB = 97, HIDDEN = 32, HEADS = 4, KV_HEADS = 2, LAYERS = 2, INTER = 48 };

static tm_weights *weights;
static tm_model *model;

static void add_random(const char *name, int ndim, int64_t d0, int64_t d1, float scale, unsigned long long seed)
{
    int64_t shape[2] = {d0, d1};
    int64_t n = ndim == 1 ? d0 : d0 * d1;
    float *buf = malloc((size_t)n * sizeof(float));
    tt_fill_random(buf, n, seed);
    for (int64_t i = 0; i < n; i++) buf[i] = ndim == 1 ? 1.0f + 0.1f * buf[i] : buf[i] * scale;
    CHECK_STATUS(tm_weights_add(weights, name, TM_F32, ndim, shape, buf), TM_OK);
    free(buf);
}

static void build_model(void)
{
    int hd = HIDDEN / HEADS;
    CHECK_STATUS(tm_weights_create(&weights), TM_OK);
    add_random("tok_embeddings.weight", 2, VOCAB, HIDDEN, 1.0f, 1);
    add_random("norm.weight", 1, HIDDEN, 0, 0, 2);
    add_random("output.weight", 2, HIDDEN, VOCAB, 0.5f, 3);
    char name[128];
    for (int l = 0; l < LAYERS; l++) {
        unsigned long long s = 100 + 10 * (unsigned long long)l;
        snprintf(name, sizeof name, "layers.%d.attention_norm.weight", l);
        add_random(name, 1, HIDDEN, 0, 0, s);
        snprintf(name, sizeof name, "layers.%d.attention.w_qkv.0.weight", l);
        add_random(name, 2, HIDDEN, (HEADS + 2 * KV_HEADS) * hd, 0.4f, s + 1);
        snprintf(name, sizeof name, "layers.%d.attention.wo.0.weight", l);
        add_random(name, 2, HEADS * hd, HIDDEN, 0.3f, s + 2);
        snprintf(name, sizeof name, "layers.%d.ffn_norm.weight", l);
        add_random(name, 1, HIDDEN, 0, 0, s + 3);
        snprintf(name, sizeof name, "layers.%d.feed_forward.w1.0.weight", l);
        add_random(name, 2, HIDDEN, INTER, 0.3f, s + 4);
        snprintf(name, sizeof name, "layers.%d.feed_forward.w3.0.weight", l);
        add_random(name, 2, HIDDEN, INTER, 0.3f, s + 5);
        snprintf(name, sizeof name, "layers.%d.feed_forward.w2.0.weight", l);
        add_random(name, 2, INTER, HIDDEN, 0.3f, s + 6);
    }
    tm_model_params p = tm_model_default_params();
    p.vocab_size = VOCAB;
    p.hidden_size = HIDDEN;
    p.num_layer = LAYERS;
    p.head_num = HEADS;
    p.kv_head_num = KV_HEADS;
    p.size_per_head = hd;
    p.inter_size = INTER;
    p.max_position_embeddings = 128;
    p.num_threads = 2;
    /* TMRUN_TEST_BACKEND=cuda runs the same checks on the GPU (scripts/device/gpu_forward.sh) */
    const char *backend = getenv("TMRUN_TEST_BACKEND");
    if (backend && strcmp(backend, "cuda") == 0) p.backend = TM_BACKEND_CUDA;
    CHECK_STATUS(tm_model_create(&p, weights, &model), TM_OK);
}

/* Greedy tokens of a prompt through a private context: the reference. */
static void solo(const int32_t *prompt, int32_t n, int32_t n_new, int32_t *out)
{
    tm_context *ctx;
    tm_context_params cp = tm_context_default_params();
    cp.max_tokens = n + n_new;
    CHECK_STATUS(tm_context_create(model, &cp, &ctx), TM_OK);
    float logits[VOCAB];
    CHECK_STATUS(tm_context_eval(ctx, prompt, n, logits, 0), TM_OK);
    for (int32_t i = 0; i < n_new; i++) {
        int32_t best = 0;
        for (int32_t v = 1; v < VOCAB; v++)
            if (logits[v] > logits[best]) best = v;
        out[i] = best;
        if (i + 1 < n_new) CHECK_STATUS(tm_context_eval(ctx, &best, 1, logits, 0), TM_OK);
    }
    tm_context_destroy(ctx);
}

/* Collects a request's tokens until it finishes; returns the finish reason. */
static int collect(tm_request *r, int32_t *out, int32_t cap, int32_t *n_out)
{
    tm_event ev[16];
    int reason = TM_FINISH_NONE;
    *n_out = 0;
    while (reason == TM_FINISH_NONE) {
        tm_request_wait(r, -1);
        int32_t n = tm_request_poll(r, ev, 16);
        for (int32_t i = 0; i < n; i++) {
            if (ev[i].kind == TM_EVENT_TOKEN && *n_out < cap) out[(*n_out)++] = ev[i].token;
            if (ev[i].kind == TM_EVENT_FINISH) reason = ev[i].finish_reason;
        }
    }
    return reason;
}

static unsigned next_rand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (*s >> 8) & 0xffffff;
}

static void test_batch_cancel_and_pressure(void)
{
    enum { N = 40 };
    tm_engine_params ep = tm_engine_default_params();
    ep.max_batch_size = 8;
    ep.session_len = 64;
    ep.cache_block_seq_len = 4;
    ep.cache_max_entry_count = 20; /* < what 8 sequences of up to 48 tokens need */
    tm_engine *e;
    CHECK_STATUS(tm_engine_create(model, &ep, &e), TM_OK);
    tm_request *reqs[N];
    int32_t prompts[N][24], lens[N], news[N];
    int cancel[N];
    unsigned seed = 7;
    for (int i = 0; i < N; i++) {
        lens[i] = 1 + (int32_t)(next_rand(&seed) % 24);
        news[i] = 1 + (int32_t)(next_rand(&seed) % 24);
        cancel[i] = next_rand(&seed) % 2;
        for (int t = 0; t < lens[i]; t++) prompts[i][t] = (int32_t)(next_rand(&seed) % VOCAB);
        tm_request_params rp = tm_request_default_params();
        rp.max_new_tokens = news[i];
        rp.ignore_eos = 1;
        CHECK_STATUS(tm_engine_submit(e, prompts[i], lens[i], &rp, &reqs[i]), TM_OK);
    }
    for (int i = 0; i < N; i++) {
        if (!cancel[i]) continue;
        if (next_rand(&seed) % 2) usleep(next_rand(&seed) % 2000);
        tm_request_cancel(reqs[i]);
    }
    for (int i = 0; i < N; i++) {
        int32_t got[32], n, want[32];
        int why = collect(reqs[i], got, 32, &n);
        if (cancel[i]) {
            CHECK(why == TM_FINISH_CANCELLED || why == TM_FINISH_LENGTH);
        } else {
            solo(prompts[i], lens[i], news[i], want);
            int first = -1; /* the first token that differs from the solo run */
            for (int32_t t = 0; t < n && t < news[i] && first < 0; t++)
                if (got[t] != want[t]) first = t;
            if (!CHECK(why == TM_FINISH_LENGTH) ||
                !CHECK(n == news[i] && memcmp(got, want, (size_t)n * sizeof(int32_t)) == 0))
                fprintf(stderr, "  request %d: finish %d (error \"%s\"), %d of %d tokens, first differing %d\n", i,
                        why, tm_request_error(reqs[i]), n, news[i], first);
        }
        tm_request_destroy(reqs[i]);
    }
    tm_engine_stats st;
    /* stats are published at the end of the step that delivered the last event */
    for (int i = 0; i < 200; i++) {
        tm_engine_get_stats(e, &st);
        if (st.blocks_free == st.blocks_total && st.running == 0) break;
        usleep(5000);
    }
    CHECK(st.blocks_free == st.blocks_total);
    CHECK(st.preemptions > 0);
    tm_engine_destroy(e);
}

static void test_sessions_and_shutdown(void)
{
    tm_engine_params ep = tm_engine_default_params();
    ep.max_batch_size = 2;
    ep.session_len = 64;
    ep.cache_max_entry_count = 32;
    tm_engine *e;
    CHECK_STATUS(tm_engine_create(model, &ep, &e), TM_OK);
    int32_t history[64], n_hist = 0;
    for (int turn = 0; turn < 3; turn++) {
        int32_t turn_ids[3] = {turn + 5, turn + 9, turn + 13};
        memcpy(history + n_hist, turn_ids, sizeof turn_ids);
        n_hist += 3;
        tm_request_params rp = tm_request_default_params();
        rp.session_id = 42;
        rp.interactive = 1;
        rp.max_new_tokens = 5;
        rp.ignore_eos = 1;
        tm_request *r;
        CHECK_STATUS(tm_engine_submit(e, turn_ids, 3, &rp, &r), TM_OK);
        int32_t got[8], n, want[8];
        collect(r, got, 8, &n);
        solo(history, n_hist, 5, want);
        CHECK(n == 5 && memcmp(got, want, sizeof(int32_t) * 5) == 0);
        memcpy(history + n_hist, got, sizeof(int32_t) * 5);
        n_hist += 5;
        tm_request_destroy(r);
    }
    /* destroy with work in flight: every request finishes, nothing leaks */
    tm_request *busy[4];
    int32_t p[2] = {1, 2};
    for (int i = 0; i < 4; i++) {
        tm_request_params rp = tm_request_default_params();
        rp.max_new_tokens = 50;
        rp.ignore_eos = 1;
        CHECK_STATUS(tm_engine_submit(e, p, 2, &rp, &busy[i]), TM_OK);
    }
    tm_engine_destroy(e);
    for (int i = 0; i < 4; i++) {
        CHECK(tm_request_finished(busy[i]));
        tm_request_destroy(busy[i]);
    }
}

static void test_bad_params(void)
{
    tm_engine_params ep = tm_engine_default_params();
    tm_engine *e = NULL;
    ep.max_batch_size = 0;
    CHECK_STATUS(tm_engine_create(model, &ep, &e), TM_ERR_INVALID_ARG);
    CHECK(strstr(tm_last_error(), "max_batch_size must be in [1, 4096], got 0") != NULL);
    ep = tm_engine_default_params();
    ep.cache_max_entry_count = -1;
    CHECK_STATUS(tm_engine_create(model, &ep, &e), TM_ERR_INVALID_ARG);
    ep = tm_engine_default_params();
    ep.cache_max_entry_count = 16;
    ep.session_len = 32;
    CHECK_STATUS(tm_engine_create(model, &ep, &e), TM_OK);
    tm_request_params rp = tm_request_default_params();
    tm_request *r = NULL;
    int32_t long_prompt[40] = {0};
    CHECK_STATUS(tm_engine_submit(e, long_prompt, 40, &rp, &r), TM_ERR_INVALID_ARG);
    CHECK(strstr(tm_last_error(), "context_length_exceeded") != NULL);
    int32_t bad = VOCAB;
    CHECK_STATUS(tm_engine_submit(e, &bad, 1, &rp, &r), TM_ERR_INVALID_ARG);
    rp.sampling.top_p = 2.0f;
    CHECK_STATUS(tm_engine_submit(e, long_prompt, 1, &rp, &r), TM_ERR_INVALID_ARG);
    CHECK(r == NULL);
    tm_engine_destroy(e);
}

int main(void)
{
    build_model();
    if (!model) return tt_finish();
    RUN(test_batch_cancel_and_pressure);
    RUN(test_sessions_and_shutdown);
    RUN(test_bad_params);
    tm_model_destroy(model);
    tm_weights_destroy(weights);
    return tt_finish();
}
