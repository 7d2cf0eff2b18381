/* sample.h - the next token of every row of a batch of logits, in one call.
 *
 * The engine's per-row sampler (runtime/sampler.h) without penalties, logit bias
 * or top_logprobs: exactly its steps 4 and 6-10, and step 5's logprob of the
 * chosen token.  The CUDA twin lets the engine copy back n token ids (and n
 * logprobs) instead of n x vocab logits; rows that need a penalty, a bias or
 * top_logprobs stay on the host path.
 *
 * Per row, on a copy (the logits are never written):
 *   - NaN counts as -inf; a row with a +inf entry becomes 0 at every +inf entry
 *     and -inf elsewhere (uniform over the +inf entries).
 *   - A row that is then -inf everywhere gets token -1 and logprob NaN; the
 *     other rows are sampled and the call still returns TM_OK.
 *   - temperature == 0: the argmax, first index on ties (u is not read).
 *   - otherwise p = exp((logit - max) * (1 / temperature)), 0 below e^-87; top-k
 *     keeps the k most likely; top-p the shortest most-likely-first prefix of
 *     those with mass >= top_p of their mass; min-p drops p < min_p (p_max = 1);
 *     the token is the first, in the order (p desc, id asc), whose cumulative
 *     kept probability exceeds u times the kept mass.
 *   - logprob: the log-softmax of the sanitised logits at temperature 1 (no
 *     truncation) at the chosen token.
 */
#ifndef TMI_SAMPLE_H
#define TMI_SAMPLE_H

#include "../common.h"

/* One row's sampling parameters, 24 bytes with no padding (the same layout in C
 * and CUDA).  The rules are tm_sampling_params_check's. */
typedef struct tmi_sample_row {
    float temperature; /* 0: greedy argmax (first index on ties); else (0, 100] */
    int32_t top_k;     /* 0: off; else [1, vocab] */
    float top_p;       /* (0, 1]; 1: off */
    float min_p;       /* [0, 1]; 0: off */
    double u;          /* the request's uniform draw in [0, 1) (tmi_rng_next_double); unread when greedy */
} tmi_sample_row;

typedef struct tmi_sample_args {
    int32_t n, vocab;              /* n >= 0 rows, vocab >= 1 */
    const float *logits;           /* [n][ld] fp32, ld >= vocab; not modified */
    int64_t ld;
    const tmi_sample_row *rows;    /* [n] */
    int32_t *tokens;               /* [n] out: the token, or -1 (see above) */
    float *logprobs;               /* [n] out, or NULL: the chosen token's logprob (NaN with token -1) */
} tmi_sample_args;

/* Workspace bytes of tmi_sample_cpu for a pool of `threads` threads (the caller
 * counts as one; tmi_pool_threads(ex->pool)): per thread a copy of the row, its
 * probabilities and tmi_sampler_draw's workspace, about 16 bytes an id.  0 when
 * vocab < 1. */
size_t tmi_sample_cpu_workspace(int32_t vocab, int threads);

/* The reference, built from runtime/sampler_select.c's tmi_sampler_row_max,
 * tmi_sampler_exp and tmi_sampler_draw, so a row gives the same token and logprob
 * as tmi_sample with an rng whose next draw is u.  Rows run in parallel on
 * ex->pool.  ex->workspace: tmi_sample_cpu_workspace(vocab,
 * tmi_pool_threads(ex->pool)) bytes, 8-byte aligned.  Codes: TM_ERR_INVALID_ARG
 * (bad shapes, pointers or workspace, or a row whose parameters break their rule:
 * the message names the row; nothing is written then). */
tm_status tmi_sample_cpu(const tmi_exec *ex, const tmi_sample_args *a);

/* CUDA twin: logits, rows, tokens and logprobs are device pointers; one block a
 * row on ex->stream, no workspace, no host sync.  Greedy rows agree with the CPU
 * bit for bit; a sampled row agrees except where u times the kept mass (or the
 * top-p target) lies within float rounding of a boundary between two tokens.
 * The rows cannot be checked on the host without a copy back, so a row whose
 * parameters break their rule gets token -1 and logprob NaN, like a row with
 * nothing to sample.  vocab must be <= 2^19 (masses are summed as 64-bit
 * integers in units of 2^-44).  Codes: TM_ERR_INVALID_ARG (bad shapes or NULL pointers),
 * TM_ERR_DEVICE (the launch failed). */
tm_status tmi_sample_cuda(const tmi_exec *ex, const tmi_sample_args *a);

#endif
