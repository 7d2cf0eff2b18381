/* sampler.h - picking the next token from one row of logits (the engine's sampler).
 *
 * Designed for the engine thread: fp32 logits, one sequence per call, no allocation
 * (the caller provides a workspace of tmi_sampler_workspace(vocab) bytes, reusable
 * across calls and sequences but not shared by concurrent calls), O(vocab): the
 * softmax is vectorised, and top-k, top-p and the draw group the candidates into
 * probability buckets and order only the bucket a cut falls in (sampler_select.c),
 * never sorting the vocabulary.  Probabilities below e^-87 times the largest one
 * (a float's normal range) count as 0: such a token is never drawn.
 *
 * Order of processing (vLLM / HF order); steps 1-4 change the caller's logits in place:
 *   1. repetition penalty over prompt + generated ids, each distinct id once:
 *      logit > 0 ? logit / r : logit * r                          (HF, CTRL)
 *   2. presence / frequency penalty over the generated ids only, by count c:
 *      logit -= frequency * c, then logit -= presence if c > 0    (OpenAI, vLLM)
 *   3. logit bias: logit += value (an id listed twice gets both values)
 *   4. NaN becomes -inf.  A row with a +inf entry becomes the limit of softmax:
 *      0 at every +inf entry, -inf elsewhere (uniform over the +inf entries).
 *      A row that is then -inf everywhere is TM_ERR_INVALID_ARG.
 *   5. logprobs: the log-softmax of the logits as they are now, i.e. after
 *      penalties and bias, BEFORE temperature and truncation.  out->logprob (the
 *      chosen token's) and out->top describe this adjusted, untruncated model
 *      distribution - vLLM's "processed_logprobs" without the temperature.  So
 *      a token sampled under top-k has the same logprob as it would under greedy.
 *   6. temperature == 0: the argmax (first index on ties); no random number is
 *      drawn.  Otherwise softmax of (logit - max) / temperature (multiplied by
 *      1 / temperature: exact at 1, one rounding off elsewhere),
 *   7. top-k: keep the k most likely,
 *   8. top-p: of those, the smallest most-likely-first prefix whose mass is
 *      >= top_p of the top-k mass (at least one token),
 *   9. min-p: drop tokens with p < min_p * p_max (p_max is always kept),
 *  10. draw u = tmi_rng_next_double() (exactly one per sampled call) and take the
 *      first token, in descending-probability order with ties to the lower id,
 *      whose cumulative kept probability exceeds u times the kept mass.
 * Steps 7-10 order the candidates by (probability desc, id asc), a strict order,
 * so the kept sets and the draw are the same for the same seed and logits.
 */
#ifndef TMI_SAMPLER_H
#define TMI_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "tmrun.h"
#include "rng.h"

typedef struct tmi_token_history {
    const int32_t *tokens; /* [n_tokens]: prompt ids then generated ids */
    int32_t n_tokens;
    int32_t n_prompt;      /* the first n_prompt are the prompt, [0, n_tokens] */
} tmi_token_history;

typedef struct tmi_logprob {
    int32_t id;
    float logprob;
} tmi_logprob;

enum { TMI_MAX_TOP_LOGPROBS = 20 };

typedef struct tmi_sample_result {
    int32_t token;
    float logprob;                        /* of token, from step 5 above */
    int32_t n_top;                        /* = min(top_logprobs, vocab) */
    tmi_logprob top[TMI_MAX_TOP_LOGPROBS]; /* [n_top], most likely first (ties: lower id first) */
} tmi_sample_result;

/* Workspace bytes for a vocabulary of vocab ids (0 when vocab < 1). */
size_t tmi_sampler_workspace(int32_t vocab);

/*
 * Samples one token.  p: checked with tm_sampling_params_check on every call (it
 * is O(n_logit_bias)).  logits: [vocab] fp32, modified in place by steps 1-4, so
 * on success they are the logits the logprobs describe (the temperature goes to a
 * copy).  h: the sequence's ids (NULL: none); when a penalty reads them, every id
 * must be in [0, vocab).  rng: the request's state, advanced by one draw when
 * temperature > 0 (may be NULL when temperature == 0).  workspace:
 * workspace_bytes >= tmi_sampler_workspace(vocab), 8-byte aligned; about
 * 20 bytes an id plus 32 KiB.  out is written only on success.
 * Codes: TM_ERR_INVALID_ARG (bad params, history or workspace: the logits are
 * left untouched; or a row that is -inf / NaN everywhere after steps 1-4).
 * Threads: any thread; concurrent calls need distinct logits, rng and workspace.
 */
tm_status tmi_sample(const tm_sampling_params *p, float *logits, int32_t vocab, const tmi_token_history *h,
                     tmi_rng *rng, void *workspace, size_t workspace_bytes, tmi_sample_result *out);

/* ---- the selection half (sampler_select.c), also used by the tests ---- */

/* out[i] = exp((x[i] - max) / temperature) for n entries, max >= every x[i],
 * temperature > 0, by a vectorised exp within 2 ulp of expf (exactly 1 at the
 * maximum, 0 below e^-87 and at -inf).  Returns the sum of out. */
double tmi_sampler_exp(const float *x, int32_t n, float max, float temperature, float *out);

/* The maximum of x[0, n), n >= 1, reading NaN as -inf; the NaNs are rewritten
 * as -inf (the row is only written when it has one). */
float tmi_sampler_row_max(float *x, int32_t n);

size_t tmi_sampler_select_workspace(int32_t vocab);

/* Steps 7-10 on prob [vocab] with u in [0, 1): the token drawn.  prob must be
 * tmi_sampler_exp's output: every entry in [0, 1] (a larger one would index
 * outside the buckets) and the maximum exactly 1.  workspace:
 * tmi_sampler_select_workspace(vocab) bytes, 8-byte aligned.  p is checked by
 * the caller. */
int32_t tmi_sampler_draw(const tm_sampling_params *p, const float *prob, int32_t vocab, double u,
                         void *workspace);

#endif
