/* sampler.c - the sampling pipeline of sampler.h: penalties, logit bias, logprobs,
 * temperature, top-k, top-p, min-p and the seeded draw, in that order.
 *
 * Truncation and the draw work on an array of candidates (id, unnormalised
 * probability) with partial selection: a quickselect that partitions around a
 * pivot, and for top-p and the draw one that also tracks the mass of the better
 * side, so it finds the prefix reaching a mass without sorting the vocabulary.
 * The order (probability desc, id asc) is strict, so every selection is unique
 * and a seed reproduces its tokens whatever the pivots did. */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

enum {
    MAX_LOGIT_BIAS = 1024,
    SMALL_RANGE = 24,    /* selections finish a range this short with an insertion sort */
    MAX_PARTITIONS = 64  /* after this many (an adversarial order), sort the rest instead */
};

/* One token still in the running. */
typedef struct cand {
    float p;    /* exp((logit - max) / temperature): (0, 1], 1 for the most likely */
    int32_t id;
} cand;

/* The caller's workspace, carved up. */
typedef struct sampler_ws {
    uint64_t *seen; /* [(vocab + 63) / 64] bitmap of ids met in the history */
    cand *cands;    /* [vocab] */
    int32_t *count; /* [vocab] occurrences in the generated ids; valid where seen */
} sampler_ws;

static size_t bitmap_words(int32_t vocab) { return ((size_t)vocab + 63) / 64; }

size_t tmi_sampler_workspace(int32_t vocab)
{
    if (vocab < 1) return 0;
    /* the bitmap first keeps every part aligned for its type */
    return bitmap_words(vocab) * sizeof(uint64_t) + (size_t)vocab * (sizeof(cand) + sizeof(int32_t));
}

static sampler_ws carve(void *workspace, int32_t vocab)
{
    sampler_ws w;
    w.seen = workspace;
    w.cands = (cand *)(w.seen + bitmap_words(vocab));
    w.count = (int32_t *)(w.cands + vocab);
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
    float m = -INFINITY;
    int32_t at = -1;
    for (int32_t i = 0; i < vocab; i++) {
        float v = x[i];
        if (isnan(v)) {
            x[i] = -INFINITY;
        } else if (v > m) {
            m = v;
            at = i;
        }
    }
    if (m == INFINITY) {
        for (int32_t i = 0; i < vocab; i++) x[i] = x[i] == INFINITY ? 0.0f : -INFINITY;
        m = 0.0f;
    }
    *max = m;
    return at;
}

/* ---------------------------------------------------------------- logprobs -- */

static double sum_exp(const float *x, int32_t vocab, float max)
{
    double s = 0.0;
    for (int32_t i = 0; i < vocab; i++) s += expf(x[i] - max);
    return s;
}

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

/* -------------------------------------------------------------- selection -- */

static inline int cand_before(cand a, cand b) { return a.p > b.p || (a.p == b.p && a.id < b.id); }

static int cand_compare(const void *x, const void *y)
{
    cand a = *(const cand *)x, b = *(const cand *)y;
    return cand_before(a, b) ? -1 : cand_before(b, a) ? 1 : 0;
}

static void cand_sort(cand *a, int32_t n)
{
    if (n > SMALL_RANGE) {
        qsort(a, (size_t)n, sizeof *a, cand_compare);
        return;
    }
    for (int32_t i = 1; i < n; i++) {
        cand c = a[i];
        int32_t j = i;
        for (; j > 0 && cand_before(c, a[j - 1]); j--) a[j] = a[j - 1];
        a[j] = c;
    }
}

static inline void cand_swap(cand *a, int32_t i, int32_t j)
{
    cand t = a[i];
    a[i] = a[j];
    a[j] = t;
}

/* Partitions a[lo, hi) (hi - lo >= 3) around the median of its first, middle and
 * last entries: returns the pivot's place m, with a[lo, m) before it and a[m + 1, hi)
 * after it in the order; *left_mass = the mass of a[lo, m). */
static int32_t partition(cand *a, int32_t lo, int32_t hi, double *left_mass)
{
    int32_t mid = lo + (hi - lo) / 2, last = hi - 1;
    if (cand_before(a[mid], a[lo])) cand_swap(a, mid, lo);
    if (cand_before(a[last], a[lo])) cand_swap(a, last, lo);
    if (cand_before(a[mid], a[last])) cand_swap(a, mid, last); /* a[last] is now the median */
    cand pivot = a[last];
    int32_t store = lo;
    double mass = 0.0;
    for (int32_t i = lo; i < last; i++) {
        if (cand_before(a[i], pivot)) {
            mass += a[i].p;
            cand_swap(a, i, store++);
        }
    }
    cand_swap(a, store, last);
    *left_mass = mass;
    return store;
}

/* Rearranges a[0, n) so that a[0, k) are its k first in the order (as a set). */
static void select_first(cand *a, int32_t n, int32_t k)
{
    int32_t lo = 0, hi = n; /* invariant: a[0, lo) first, a[hi, n) last, lo <= k <= hi */
    for (int rounds = 0; hi - lo > SMALL_RANGE; rounds++) {
        if (rounds == MAX_PARTITIONS) break;
        double unused;
        int32_t m = partition(a, lo, hi, &unused);
        if (m == k || m + 1 == k) return;
        if (m > k) hi = m;
        else lo = m + 1;
    }
    cand_sort(a + lo, hi - lo);
}

static inline int reaches(double cum, double target, int strict) { return strict ? cum > target : cum >= target; }

/* The smallest L whose first L candidates in the order have a mass reaching target
 * (> target when strict, else >=), n when rounding keeps the total short of it.
 * Rearranges a[0, n) so that a[0, L) holds them, a[L - 1] being the L-th. */
static int32_t select_mass_prefix(cand *a, int32_t n, double target, int strict)
{
    int32_t lo = 0, hi = n; /* invariant: a[0, lo) first, with mass acc not reaching target; a[hi, n) last */
    double acc = 0.0;
    for (int rounds = 0; hi - lo > SMALL_RANGE && rounds < MAX_PARTITIONS; rounds++) {
        double left;
        int32_t m = partition(a, lo, hi, &left);
        if (reaches(acc + left, target, strict)) {
            hi = m;
            continue;
        }
        acc += left + a[m].p;
        if (reaches(acc, target, strict)) return m + 1;
        lo = m + 1;
    }
    cand_sort(a + lo, hi - lo);
    for (int32_t i = lo; i < hi; i++) {
        acc += a[i].p;
        if (reaches(acc, target, strict)) return i + 1;
    }
    return hi; /* a[0, hi) reached it when summed in another order */
}

static double cand_mass(const cand *a, int32_t n)
{
    double s = 0.0;
    for (int32_t i = 0; i < n; i++) s += a[i].p;
    return s;
}

/* ---------------------------------------------------------------- sampling -- */

/* The candidates with p > 0 after the temperature; *mass = their sum. */
static int32_t build_candidates(const float *x, int32_t vocab, float max, float temperature, cand *c,
                                double *mass)
{
    int32_t n = 0;
    double s = 0.0;
    for (int32_t i = 0; i < vocab; i++) {
        float e = expf((x[i] - max) / temperature);
        if (e > 0.0f) {
            c[n].p = e;
            c[n].id = i;
            n++;
            s += e;
        }
    }
    *mass = s;
    return n;
}

/* Steps 7-10 of sampler.h on the n >= 1 candidates of total mass. */
static int32_t truncate_and_draw(const tm_sampling_params *p, cand *a, int32_t n, double mass, tmi_rng *rng)
{
    if (p->top_k > 0 && p->top_k < n) {
        select_first(a, n, p->top_k);
        n = p->top_k;
        mass = cand_mass(a, n);
    }
    if (p->top_p < 1.0f) {
        n = select_mass_prefix(a, n, (double)p->top_p * mass, 0);
        mass = cand_mass(a, n);
    }
    if (p->min_p > 0.0f) {
        /* p_max is 1 here (exp(0)); the order inside a[0, n) does not matter to the draw */
        int32_t kept = 0;
        for (int32_t i = 0; i < n; i++)
            if (a[i].p >= p->min_p) a[kept++] = a[i];
        n = kept;
        mass = cand_mass(a, n);
    }
    double u = tmi_rng_next_double(rng);
    int32_t at = select_mass_prefix(a, n, u * mass, 1);
    return a[at - 1].id;
}

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

    /* At temperature 1 the log-softmax's exponentials are the candidates: one pass. */
    int sampling = p->temperature > 0.0f;
    int32_t n_cand = 0;
    double sum;
    if (sampling && p->temperature == 1.0f) n_cand = build_candidates(logits, vocab, max, 1.0f, w.cands, &sum);
    else sum = sum_exp(logits, vocab, max);
    double lse = (double)max + log(sum);

    tmi_sample_result r;
    memset(&r, 0, sizeof r);
    r.n_top = p->top_logprobs < vocab ? p->top_logprobs : vocab;
    top_logprobs(logits, vocab, r.n_top, lse, r.top);
    r.token = argmax;
    if (sampling) {
        double mass = sum;
        if (p->temperature != 1.0f) n_cand = build_candidates(logits, vocab, max, p->temperature, w.cands, &mass);
        r.token = truncate_and_draw(p, w.cands, n_cand, mass, rng);
    }
    r.logprob = (float)((double)logits[r.token] - lse);
    *out = r;
    return TM_OK;
}
