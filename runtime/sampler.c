/* sampler.c - the sampling pipeline of sampler.h: parameter checks, penalties,
 * logit bias, logprobs and the order of the steps.  The softmax, truncation and
 * draw over the vocabulary are in sampler_select.c. */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

enum { MAX_LOGIT_BIAS = 1024 };

/* The caller's workspace, carved up; the selection's part comes first, since it
 * starts with doubles. */
typedef struct sampler_ws {
    void *select;   /* tmi_sampler_select_workspace(vocab) bytes */
    uint64_t *seen; /* [(vocab + 63) / 64] bitmap of ids met in the history */
    float *prob;    /* [vocab] exp((logit - max) / temperature) */
    int32_t *count; /* [vocab] occurrences in the generated ids; valid where seen */
} sampler_ws;

static size_t bitmap_words(int32_t vocab) { return ((size_t)vocab + 63) / 64; }

/* Rounded up to 8 so the bitmap after it stays aligned whatever the vocabulary. */
static size_t select_bytes(int32_t vocab) { return (tmi_sampler_select_workspace(vocab) + 7) & ~(size_t)7; }

size_t tmi_sampler_workspace(int32_t vocab)
{
    if (vocab < 1) return 0;
    return select_bytes(vocab) + bitmap_words(vocab) * sizeof(uint64_t) +
           (size_t)vocab * (sizeof(float) + sizeof(int32_t));
}

static sampler_ws carve(void *workspace, int32_t vocab)
{
    sampler_ws w;
    w.select = workspace;
    w.seen = (uint64_t *)((char *)workspace + select_bytes(vocab));
    w.prob = (float *)(w.seen + bitmap_words(vocab));
    w.count = (int32_t *)(w.prob + vocab);
    return w;
}

/* ------------------------------------------------------------------ params -- */

tm_sampling_params tm_sampling_default_params(void)
{
    tm_sampling_params p;
    memset(&p, 0, sizeof p);
    p.temperature = 0.0f; /* greedy */
    p.top_p = 1.0f;
    p.repetition_penalty = 1.0f;
    return p;
}

static tm_status check_logit_bias(const tm_sampling_params *p, int32_t vocab)
{
    if (p->n_logit_bias < 0 || p->n_logit_bias > MAX_LOGIT_BIAS)
        return tmi_fail(TM_ERR_INVALID_ARG, "n_logit_bias must be in [0, %d], got %d", MAX_LOGIT_BIAS,
                        p->n_logit_bias);
    if (p->n_logit_bias > 0 && (!p->logit_bias_ids || !p->logit_bias_values))
        return tmi_fail(TM_ERR_INVALID_ARG,
                        "logit_bias_ids and logit_bias_values must not be NULL when n_logit_bias = %d",
                        p->n_logit_bias);
    for (int32_t i = 0; i < p->n_logit_bias; i++) {
        int32_t id = p->logit_bias_ids[i];
        float v = p->logit_bias_values[i];
        if (id < 0 || id >= vocab)
            return tmi_fail(TM_ERR_INVALID_ARG, "logit_bias_ids[%d] must be a token id in [0, %d), got %d", i,
                            vocab, id);
        if (!(v >= -100.0f && v <= 100.0f))
            return tmi_fail(TM_ERR_INVALID_ARG, "logit_bias_values[%d] must be in [-100, 100], got %g", i,
                            (double)v);
    }
    return TM_OK;
}

/* Every range test is written so that NaN fails it. */
tm_status tm_sampling_params_check(const tm_sampling_params *p, int32_t vocab)
{
    if (!p) return tmi_fail(TM_ERR_INVALID_ARG, "sampling params must not be NULL");
    if (vocab < 1) return tmi_fail(TM_ERR_INVALID_ARG, "sampling: vocab must be >= 1, got %d", vocab);
    if (!(p->temperature == 0.0f || (p->temperature > 0.0f && p->temperature <= 100.0f)))
        return tmi_fail(TM_ERR_INVALID_ARG, "temperature must be 0 (greedy) or in (0, 100], got %g",
                        (double)p->temperature);
    if (p->top_k < 0 || p->top_k > vocab)
        return tmi_fail(TM_ERR_INVALID_ARG, "top_k must be 0 (off) or in [1, vocab = %d], got %d", vocab,
                        p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return tmi_fail(TM_ERR_INVALID_ARG, "top_p must be in (0, 1] (1: off), got %g", (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return tmi_fail(TM_ERR_INVALID_ARG, "min_p must be in [0, 1] (0: off), got %g", (double)p->min_p);
    if (!(p->repetition_penalty > 0.0f && p->repetition_penalty <= 100.0f))
        return tmi_fail(TM_ERR_INVALID_ARG, "repetition_penalty must be in (0, 100] (1: off), got %g",
                        (double)p->repetition_penalty);
    if (!(p->presence_penalty >= -2.0f && p->presence_penalty <= 2.0f))
        return tmi_fail(TM_ERR_INVALID_ARG, "presence_penalty must be in [-2, 2], got %g",
                        (double)p->presence_penalty);
    if (!(p->frequency_penalty >= -2.0f && p->frequency_penalty <= 2.0f))
        return tmi_fail(TM_ERR_INVALID_ARG, "frequency_penalty must be in [-2, 2], got %g",
                        (double)p->frequency_penalty);
    tm_status st = check_logit_bias(p, vocab);
    if (st != TM_OK) return st;
    if (p->top_logprobs < 0 || p->top_logprobs > TMI_MAX_TOP_LOGPROBS)
        return tmi_fail(TM_ERR_INVALID_ARG, "top_logprobs must be in [0, %d], got %d", TMI_MAX_TOP_LOGPROBS,
                        p->top_logprobs);
    return TM_OK;
}

/* History ids are only read by the penalties, so only then are they checked. */
static tm_status check_history(const tm_sampling_params *p, const tmi_token_history *h, int32_t vocab)
{
    if (!h) return TM_OK;
    if (h->n_tokens < 0 || (h->n_tokens > 0 && !h->tokens))
        return tmi_fail(TM_ERR_INVALID_ARG, "history: n_tokens must be >= 0 with tokens not NULL, got %d",
                        h->n_tokens);
    if (h->n_prompt < 0 || h->n_prompt > h->n_tokens)
        return tmi_fail(TM_ERR_INVALID_ARG, "history: n_prompt must be in [0, n_tokens = %d], got %d",
                        h->n_tokens, h->n_prompt);
    int uses = p->repetition_penalty != 1.0f || p->presence_penalty != 0.0f || p->frequency_penalty != 0.0f;
    for (int32_t i = 0; uses && i < h->n_tokens; i++)
        if (h->tokens[i] < 0 || h->tokens[i] >= vocab)
            return tmi_fail(TM_ERR_INVALID_ARG, "history: tokens[%d] must be an id in [0, %d), got %d", i,
                            vocab, h->tokens[i]);
    return TM_OK;
}

static tm_status check_args(const tm_sampling_params *p, const float *logits, int32_t vocab,
                            const tmi_token_history *h, const tmi_rng *rng, const void *workspace,
                            size_t workspace_bytes, const tmi_sample_result *out)
{
    tm_status st = tm_sampling_params_check(p, vocab);
    if (st != TM_OK) return st;
    if (!logits || !out) return tmi_fail(TM_ERR_INVALID_ARG, "sample: logits and out must not be NULL");
    if (p->temperature > 0.0f && !rng)
        return tmi_fail(TM_ERR_INVALID_ARG, "sample: rng must not be NULL when temperature > 0");
    size_t need = tmi_sampler_workspace(vocab);
    if (!workspace || workspace_bytes < need || ((uintptr_t)workspace & 7u) != 0)
        return tmi_fail(TM_ERR_INVALID_ARG,
                        "sample: workspace must be 8-byte aligned and hold %zu bytes for vocab %d, got %zu", need,
                        vocab, workspace ? workspace_bytes : 0);
    return check_history(p, h, vocab);
}

/* --------------------------------------------------------------- penalties -- */

static void apply_repetition(float *logits, const tmi_token_history *h, float r, uint64_t *seen,
                             int32_t vocab)
{
    memset(seen, 0, bitmap_words(vocab) * sizeof(uint64_t));
    for (int32_t i = 0; i < h->n_tokens; i++) {
        int32_t t = h->tokens[i];
        uint64_t bit = 1ull << (t & 63);
        if (seen[t >> 6] & bit) continue; /* each distinct id once */
        seen[t >> 6] |= bit;
        float x = logits[t];
        logits[t] = x > 0.0f ? x / r : x * r;
    }
}

/* Counts without clearing a [vocab] array: an id's count is reset when the bitmap
 * first meets it, and the second pass clears its bit as it applies the penalty. */
static void apply_presence_frequency(float *logits, const tmi_token_history *h, float presence,
                                     float frequency, const sampler_ws *w, int32_t vocab)
{
    memset(w->seen, 0, bitmap_words(vocab) * sizeof(uint64_t));
    for (int32_t i = h->n_prompt; i < h->n_tokens; i++) {
        int32_t t = h->tokens[i];
        uint64_t bit = 1ull << (t & 63);
        if (!(w->seen[t >> 6] & bit)) {
            w->seen[t >> 6] |= bit;
            w->count[t] = 0;
        }
        w->count[t]++;
    }
    for (int32_t i = h->n_prompt; i < h->n_tokens; i++) {
        int32_t t = h->tokens[i];
        uint64_t bit = 1ull << (t & 63);
        if (!(w->seen[t >> 6] & bit)) continue;
        w->seen[t >> 6] &= ~bit;
        /* vLLM's two steps, in its order */
        logits[t] -= frequency * (float)w->count[t];
        logits[t] -= presence;
    }
}

static void apply_penalties_and_bias(const tm_sampling_params *p, float *logits, int32_t vocab,
                                     const tmi_token_history *h, const sampler_ws *w)
{
    if (h && p->repetition_penalty != 1.0f) apply_repetition(logits, h, p->repetition_penalty, w->seen, vocab);
    if (h && (p->presence_penalty != 0.0f || p->frequency_penalty != 0.0f))
        apply_presence_frequency(logits, h, p->presence_penalty, p->frequency_penalty, w, vocab);
    for (int32_t i = 0; i < p->n_logit_bias; i++) logits[p->logit_bias_ids[i]] += p->logit_bias_values[i];
}

/* NaN becomes -inf; a row with +inf entries becomes 0 there and -inf elsewhere
 * (the limit of softmax).  Returns the first index of the maximum, -1 when every
 * entry is -inf; *max gets the maximum. */
static int32_t sanitize_row(float *x, int32_t vocab, float *max)
{
    float m = tmi_sampler_row_max(x, vocab);
    if (m == -INFINITY) return -1;
    if (m == INFINITY) {
        for (int32_t i = 0; i < vocab; i++) x[i] = x[i] == INFINITY ? 0.0f : -INFINITY;
        m = 0.0f;
    }
    *max = m;
    int32_t at = 0;
    while (x[at] != m) at++;
    return at;
}

/* ---------------------------------------------------------------- logprobs -- */

/* The n largest logits, largest first, ties to the lower id, as logprobs.  The scan
 * goes up the ids, so an equal value never displaces one already kept. */
static void top_logprobs(const float *x, int32_t vocab, int32_t n, double lse, tmi_logprob *top)
{
    if (n == 0) return;
    int32_t k = 0;
    for (int32_t i = 0; i < vocab; i++) {
        float v = x[i];
        if (k == n && !(v > top[n - 1].logprob)) continue;
        int32_t j = k < n ? k++ : n - 1;
        for (; j > 0 && v > top[j - 1].logprob; j--) top[j] = top[j - 1];
        top[j].id = i;
        top[j].logprob = v; /* the logit for now */
    }
    for (int32_t j = 0; j < n; j++) top[j].logprob = (float)((double)top[j].logprob - lse);
}

/* ------------------------------------------------------------------ sample -- */

tm_status tmi_sample(const tm_sampling_params *p, float *logits, int32_t vocab, const tmi_token_history *h,
                     tmi_rng *rng, void *workspace, size_t workspace_bytes, tmi_sample_result *out)
{
    tm_status st = check_args(p, logits, vocab, h, rng, workspace, workspace_bytes, out);
    if (st != TM_OK) return st;
    sampler_ws w = carve(workspace, vocab);
    apply_penalties_and_bias(p, logits, vocab, h, &w);

    float max;
    int32_t argmax = sanitize_row(logits, vocab, &max);
    if (argmax < 0)
        return tmi_fail(TM_ERR_INVALID_ARG,
                        "sample: every logit is -inf or NaN (after penalties and bias): nothing to sample");

    /* The log-softmax's exponentials are the probabilities at temperature 1. */
    double lse = (double)max + log(tmi_sampler_exp(logits, vocab, max, 1.0f, w.prob));

    tmi_sample_result r;
    memset(&r, 0, sizeof r);
    r.n_top = p->top_logprobs < vocab ? p->top_logprobs : vocab;
    top_logprobs(logits, vocab, r.n_top, lse, r.top);
    r.token = argmax;
    if (p->temperature > 0.0f) {
        if (p->temperature != 1.0f) tmi_sampler_exp(logits, vocab, max, p->temperature, w.prob);
        r.token = tmi_sampler_draw(p, w.prob, vocab, tmi_rng_next_double(rng), w.select);
    }
    r.logprob = (float)((double)logits[r.token] - lse);
    *out = r;
    return TM_OK;
}
