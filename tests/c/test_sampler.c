/* test_sampler.c - the sampling pipeline (runtime/sampler.c) and its PRNG (runtime/rng.h).
 *
 * Each processor is checked against the rule computed plainly here; kept sets are
 * probed by drawing many times (a kept token of probability >= 5% shows up in 4000
 * draws with certainty for these fixed seeds, a dropped one never may); the
 * partial selections are checked against a full-sort reference sampler. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "runtime/rng.h"
#include "runtime/sampler.h"

/* Samples with a workspace of its own. */
static tm_status sample(const tm_sampling_params *p, float *logits, int32_t vocab, const tmi_token_history *h,
                        tmi_rng *rng, tmi_sample_result *out)
{
    size_t bytes = tmi_sampler_workspace(vocab);
    void *ws = malloc(bytes);
    if (!ws) return TM_ERR_NOMEM;
    tm_status st = tmi_sample(p, logits, vocab, h, rng, ws, bytes, out);
    free(ws);
    return st;
}

/* Greedy sample of a copy, returning the processed logits in out_logits. */
static void process(const tm_sampling_params *p, const float *logits, int32_t vocab, const tmi_token_history *h,
                    float *out_logits)
{
    tmi_sample_result r;
    memcpy(out_logits, logits, sizeof(float) * (size_t)vocab);
    CHECK_STATUS(sample(p, out_logits, vocab, h, NULL, &r), TM_OK);
}

/* logits[i] = log(prob[i]) */
static void log_probs(const double *prob, int32_t n, float *logits)
{
    for (int32_t i = 0; i < n; i++) logits[i] = prob[i] > 0 ? (float)log(prob[i]) : -INFINITY;
}

/* Counts the tokens of draws samples, one seed each. */
static void draw_counts(const tm_sampling_params *p, const float *logits, int32_t vocab, int draws,
                        long *counts)
{
    float *x = malloc(sizeof(float) * (size_t)vocab);
    size_t bytes = tmi_sampler_workspace(vocab);
    void *ws = malloc(bytes);
    if (!CHECK(x && ws)) goto done;
    memset(counts, 0, sizeof(long) * (size_t)vocab);
    tmi_rng rng;
    tmi_rng_seed(&rng, 12345);
    for (int d = 0; d < draws; d++) {
        tmi_sample_result r;
        memcpy(x, logits, sizeof(float) * (size_t)vocab);
        if (!CHECK_STATUS(tmi_sample(p, x, vocab, NULL, &rng, ws, bytes, &r), TM_OK)) break;
        if (!CHECK(r.token >= 0 && r.token < vocab)) break;
        counts[r.token]++;
    }
done:
    free(ws);
    free(x);
}

/* The tokens ever drawn (in 4000 draws) must be exactly want[0, n_want). */
static int kept_set_is(const tm_sampling_params *p, const float *logits, int32_t vocab, const int32_t *want,
                       int n_want)
{
    long counts[64];
    int expect[64] = {0};
    draw_counts(p, logits, vocab, 4000, counts);
    for (int i = 0; i < n_want; i++) expect[want[i]] = 1;
    int ok = 1;
    for (int32_t i = 0; i < vocab; i++) {
        if ((counts[i] > 0) != expect[i]) {
            fprintf(stderr, "  token %d: drawn %ld times, %s\n", i, counts[i], expect[i] ? "want kept" : "want dropped");
            ok = 0;
        }
    }
    return ok;
}

/* ------------------------------------------------------------------- rng -- */

static void test_rng(void)
{
    /* the reference outputs of splitmix64 and of xoshiro256** from the state {1, 2, 3, 4} */
    uint64_t x = 0;
    CHECK(tmi_splitmix64(&x) == 0xe220a8397b1dcdafull);
    tmi_rng r = {{1, 2, 3, 4}};
    CHECK(tmi_rng_next(&r) == 11520u);
    CHECK(tmi_rng_next(&r) == 0u);
    CHECK(tmi_rng_next(&r) == 1509978240u);
    CHECK(tmi_rng_next(&r) == 1215971899390074240ull);

    tmi_rng a, b;
    tmi_rng_seed(&a, 0);
    CHECK(a.s[0] | a.s[1] | a.s[2] | a.s[3]);
    tmi_rng_seed(&a, 42);
    tmi_rng_seed(&b, 42);
    double lo = 1, hi = 0, sum = 0;
    int differ = 0;
    for (int i = 0; i < 100000; i++) {
        double u = tmi_rng_next_double(&a);
        differ += u != tmi_rng_next_double(&b);
        if (u < lo) lo = u;
        if (u > hi) hi = u;
        sum += u;
    }
    CHECK(differ == 0);
    CHECK(lo >= 0.0 && lo < 1e-3 && hi < 1.0 && hi > 1 - 1e-3);
    CHECK_NEAR(sum / 100000, 0.5, 4 * sqrt(1.0 / 12 / 100000));
}

/* The vectorised exp against libm, over the range it serves and its edges. */
static void test_exp(void)
{
    enum { N = 20003 }; /* odd: the padded tail runs too */
    float *x = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N);
    if (!CHECK(x && y)) goto done;
    for (int i = 0; i < N; i++) x[i] = -90.0f * (float)i / (N - 1); /* 0 down to -90 */
    x[5] = -INFINITY;
    double sum = tmi_sampler_exp(x, N, 0.0f, 1.0f, y), want_sum = 0, worst = 0;
    for (int i = 0; i < N; i++) {
        double e = x[i] >= -87.0f ? exp((double)x[i]) : 0.0;
        want_sum += e;
        if (e > 0) worst = fmax(worst, fabs(y[i] - e) / e);
        else CHECK(y[i] == 0.0f);
        CHECK(y[i] <= 1.0f);
    }
    CHECK(y[0] == 1.0f);
    CHECK(worst < 3e-7); /* about 2 ulp */
    CHECK_NEAR(sum, want_sum, 1e-6 * want_sum); /* float lanes, then double */
    /* max and temperature: exp((x - max) / t) */
    float row[3] = {2.0f, 1.0f, -INFINITY}, out[3];
    tmi_sampler_exp(row, 3, 2.0f, 0.5f, out);
    CHECK(out[0] == 1.0f && fabs(out[1] - exp(-2.0)) < 3e-7 * exp(-2.0) && out[2] == 0.0f);

    float nan_row[11] = {1, NAN, 3, -INFINITY, 2, 7, NAN, 0, 5, 6, NAN};
    CHECK(tmi_sampler_row_max(nan_row, 11) == 7.0f);
    CHECK(isinf(nan_row[1]) && nan_row[1] < 0 && isinf(nan_row[10]) && nan_row[10] < 0 && nan_row[2] == 3.0f);
    float tail_max[10] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 9};
    CHECK(tmi_sampler_row_max(tail_max, 10) == 9.0f);
done:
    free(x);
    free(y);
}

/* ---------------------------------------------------------------- params -- */

static void expect_rejected(const tm_sampling_params *p, int32_t vocab, const char *needle)
{
    CHECK_STATUS(tm_sampling_params_check(p, vocab), TM_ERR_INVALID_ARG);
    if (!strstr(tm_last_error(), needle)) {
        CHECK(!"message names the field");
        fprintf(stderr, "  want \"%s\" in: %s\n", needle, tm_last_error());
    }
}

static void test_params_check(void)
{
    tm_sampling_params d = tm_sampling_default_params(), p;
    CHECK(d.temperature == 0.0f && d.top_k == 0 && d.top_p == 1.0f && d.min_p == 0.0f);
    CHECK(d.repetition_penalty == 1.0f && d.presence_penalty == 0.0f && d.frequency_penalty == 0.0f);
    CHECK(d.n_logit_bias == 0 && d.top_logprobs == 0);
    CHECK_STATUS(tm_sampling_params_check(&d, 1), TM_OK);
    CHECK_STATUS(tm_sampling_params_check(NULL, 10), TM_ERR_INVALID_ARG);
    expect_rejected(&d, 0, "vocab");

    struct { float *field; float value; const char *name; } floats[] = {
        {&p.temperature, NAN, "temperature"},   {&p.temperature, -0.5f, "temperature"},
        {&p.temperature, 100.5f, "temperature"}, {&p.temperature, INFINITY, "temperature"},
        {&p.top_p, 0.0f, "top_p"},               {&p.top_p, -0.1f, "top_p"},
        {&p.top_p, 1.01f, "top_p"},              {&p.top_p, NAN, "top_p"},
        {&p.min_p, -0.01f, "min_p"},             {&p.min_p, 1.5f, "min_p"},
        {&p.min_p, NAN, "min_p"},                {&p.repetition_penalty, 0.0f, "repetition_penalty"},
        {&p.repetition_penalty, -1.0f, "repetition_penalty"}, {&p.repetition_penalty, 101.0f, "repetition_penalty"},
        {&p.repetition_penalty, NAN, "repetition_penalty"},   {&p.presence_penalty, 2.5f, "presence_penalty"},
        {&p.presence_penalty, NAN, "presence_penalty"},       {&p.frequency_penalty, -3.0f, "frequency_penalty"},
        {&p.frequency_penalty, INFINITY, "frequency_penalty"},
    };
    for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++) {
        p = d;
        *floats[i].field = floats[i].value;
        expect_rejected(&p, 100, floats[i].name);
    }
    /* the edges of each range are accepted */
    p = d;
    p.temperature = 100.0f;
    p.top_p = 1e-6f;
    p.min_p = 1.0f;
    p.repetition_penalty = 100.0f;
    p.presence_penalty = -2.0f;
    p.frequency_penalty = 2.0f;
    p.top_k = 100;
    p.top_logprobs = 20;
    CHECK_STATUS(tm_sampling_params_check(&p, 100), TM_OK);

    p = d;
    p.top_k = 101;
    expect_rejected(&p, 100, "top_k");
    p.top_k = -1;
    expect_rejected(&p, 100, "top_k");
    p = d;
    p.top_logprobs = 21;
    expect_rejected(&p, 100, "top_logprobs");
    p.top_logprobs = -1;
    expect_rejected(&p, 100, "top_logprobs");

    int32_t ids[1025] = {0};
    float values[1025] = {0};
    p = d;
    p.logit_bias_ids = ids;
    p.logit_bias_values = values;
    p.n_logit_bias = 1024;
    CHECK_STATUS(tm_sampling_params_check(&p, 100), TM_OK);
    p.n_logit_bias = 1025;
    expect_rejected(&p, 100, "n_logit_bias");
    p.n_logit_bias = -1;
    expect_rejected(&p, 100, "n_logit_bias");
    p.n_logit_bias = 3;
    ids[2] = 100;
    expect_rejected(&p, 100, "logit_bias_ids[2]");
    ids[2] = -1;
    expect_rejected(&p, 100, "logit_bias_ids[2]");
    ids[2] = 99;
    values[1] = 100.5f;
    expect_rejected(&p, 100, "logit_bias_values[1]");
    values[1] = NAN;
    expect_rejected(&p, 100, "logit_bias_values[1]");
    values[1] = -100.0f;
    CHECK_STATUS(tm_sampling_params_check(&p, 100), TM_OK);
    p.logit_bias_values = NULL;
    expect_rejected(&p, 100, "logit_bias_values");
}

/* ------------------------------------------------------------- penalties -- */

static void test_repetition_penalty(void)
{
    enum { V = 8 };
    const float logits[V] = {2.0f, -1.5f, 0.5f, -3.0f, 4.0f, 0.0f, 1.25f, -0.25f};
    /* prompt {0, 1, 1, 5}, generated {3, 0, 3, 7}: 0 and 3 twice, each penalised once */
    const int32_t ids[] = {0, 1, 1, 5, 3, 0, 3, 7};
    tmi_token_history h = {ids, 8, 4};
    tm_sampling_params p = tm_sampling_default_params();
    p.repetition_penalty = 1.3f;
    float got[V], want[V];
    memcpy(want, logits, sizeof want);
    const int32_t distinct[] = {0, 1, 5, 3, 7};
    for (int i = 0; i < 5; i++) {
        float x = want[distinct[i]];
        want[distinct[i]] = x > 0 ? x / 1.3f : x * 1.3f;
    }
    process(&p, logits, V, &h, got);
    for (int i = 0; i < V; i++) CHECK(got[i] == want[i]);
    CHECK(got[0] == 2.0f / 1.3f && got[1] == -1.5f * 1.3f && got[5] == 0.0f && got[4] == 4.0f);

    /* a penalty below 1 rewards instead; the history's boundary does not matter to it */
    p.repetition_penalty = 0.5f;
    h.n_prompt = 0;
    process(&p, logits, V, &h, got);
    CHECK(got[0] == 4.0f && got[1] == -0.75f && got[3] == -1.5f && got[2] == 0.5f);
    /* no history: nothing changes */
    process(&p, logits, V, NULL, got);
    CHECK(!memcmp(got, logits, sizeof got));
}

static void test_presence_frequency(void)
{
    enum { V = 6 };
    const float logits[V] = {1.0f, 2.0f, -1.0f, 0.5f, 3.0f, -2.0f};
    /* prompt {4, 4, 2}; generated {1, 3, 1, 1, 5}: counts 1:3, 3:1, 5:1; the prompt ids 4 and 2 untouched */
    const int32_t ids[] = {4, 4, 2, 1, 3, 1, 1, 5};
    tmi_token_history h = {ids, 8, 3};
    tm_sampling_params p = tm_sampling_default_params();
    p.presence_penalty = 0.75f;
    p.frequency_penalty = 0.5f;
    float got[V];
    process(&p, logits, V, &h, got);
    const int count[V] = {0, 3, 0, 1, 0, 1};
    for (int i = 0; i < V; i++) {
        float want = logits[i] - 0.5f * (float)count[i];
        if (count[i] > 0) want -= 0.75f;
        CHECK(got[i] == want);
    }
    CHECK_NEAR(got[1], 2.0 - 1.5 - 0.75, 1e-6);

    /* negative penalties encourage repeats; all of the history as prompt: no effect */
    p.presence_penalty = -1.0f;
    p.frequency_penalty = -2.0f;
    process(&p, logits, V, &h, got);
    CHECK(got[1] == 2.0f + 6.0f + 1.0f && got[3] == 0.5f + 2.0f + 1.0f && got[4] == 3.0f);
    h.n_prompt = 8;
    process(&p, logits, V, &h, got);
    CHECK(!memcmp(got, logits, sizeof got));

    /* combined with repetition: repetition first (prompt and generated), then counts */
    h.n_prompt = 3;
    p.repetition_penalty = 2.0f;
    p.presence_penalty = 0.25f;
    p.frequency_penalty = 0.0f;
    process(&p, logits, V, &h, got);
    CHECK(got[4] == 1.5f && got[2] == -2.0f && got[1] == 1.0f - 0.25f && got[5] == -4.0f - 0.25f);
    CHECK(got[0] == 1.0f);
}

static void test_logit_bias(void)
{
    enum { V = 5 };
    const float logits[V] = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f};
    const int32_t ids[] = {0, 4, 2, 0};
    const float values[] = {10.0f, -100.0f, 0.5f, -1.0f}; /* id 0 listed twice: both apply */
    tm_sampling_params p = tm_sampling_default_params();
    p.logit_bias_ids = ids;
    p.logit_bias_values = values;
    p.n_logit_bias = 4;
    float got[V];
    process(&p, logits, V, NULL, got);
    CHECK(got[0] == 10.0f && got[1] == 2.0f && got[2] == 3.5f && got[3] == 4.0f && got[4] == -95.0f);
    float x[V];
    tmi_sample_result r;
    memcpy(x, logits, sizeof x);
    CHECK_STATUS(sample(&p, x, V, NULL, NULL, &r), TM_OK);
    CHECK(r.token == 0);

    /* bias comes after the penalties: repetition of a biased token divides the raw logit */
    const int32_t hist[] = {3};
    tmi_token_history h = {hist, 1, 1};
    p.repetition_penalty = 4.0f;
    const int32_t id3[] = {3};
    const float v3[] = {2.0f};
    p.logit_bias_ids = id3;
    p.logit_bias_values = v3;
    p.n_logit_bias = 1;
    process(&p, logits, V, &h, got);
    CHECK(got[3] == 4.0f / 4.0f + 2.0f);
}

/* ---------------------------------------------------------------- greedy -- */

static void test_greedy(void)
{
    const float logits[6] = {1.0f, 3.0f, -2.0f, 3.0f, NAN, 2.5f};
    tm_sampling_params p = tm_sampling_default_params();
    float x[6];
    tmi_sample_result r;
    tmi_rng rng, before;
    tmi_rng_seed(&rng, 7);
    before = rng;
    memcpy(x, logits, sizeof x);
    CHECK_STATUS(sample(&p, x, 6, NULL, &rng, &r), TM_OK);
    CHECK(r.token == 1); /* first index of the tie */
    CHECK(!memcmp(&rng, &before, sizeof rng)); /* greedy draws no random number */
    CHECK(isinf(x[4]) && x[4] < 0); /* NaN counts as -inf */
    double lse = log(exp(1.0) + 2 * exp(3.0) + exp(-2.0) + exp(2.5));
    CHECK_NEAR(r.logprob, 3.0 - lse, 1e-5);
    CHECK(r.n_top == 0);

    /* all NaN but one */
    float y[4] = {NAN, NAN, -5.0f, NAN};
    CHECK_STATUS(sample(&p, y, 4, NULL, NULL, &r), TM_OK);
    CHECK(r.token == 2 && r.logprob == 0.0f);
}

/* ------------------------------------------------------------ truncation -- */

/* p: 0.05 0.3 0.1 0.3 0.15 0.1; the order is 1, 3, 4, 2, 5, 0 (ties to the lower id) */
static const double crafted[6] = {0.05, 0.3, 0.1, 0.3, 0.15, 0.1};

static void test_top_k(void)
{
    float logits[6];
    log_probs(crafted, 6, logits);
    tm_sampling_params p = tm_sampling_default_params();
    p.temperature = 1.0f;
    p.top_k = 1;
    CHECK(kept_set_is(&p, logits, 6, (const int32_t[]){1}, 1));
    p.top_k = 2;
    CHECK(kept_set_is(&p, logits, 6, (const int32_t[]){1, 3}, 2));
    p.top_k = 3;
    CHECK(kept_set_is(&p, logits, 6, (const int32_t[]){1, 3, 4}, 3));
    p.top_k = 4;
    CHECK(kept_set_is(&p, logits, 6, (const int32_t[]){1, 3, 4, 2}, 4));
    p.top_k = 6;
    CHECK(kept_set_is(&p, logits, 6, (const int32_t[]){0, 1, 2, 3, 4, 5}, 6));
    p.top_k = 7;
    CHECK_STATUS(tm_sampling_params_check(&p, 6), TM_ERR_INVALID_ARG);
    float x[6];
    tmi_sample_result r;
    tmi_rng rng;
    tmi_rng_seed(&rng, 1);
    memcpy(x, logits, sizeof x);
    CHECK_STATUS(sample(&p, x, 6, NULL, &rng, &r), TM_ERR_INVALID_ARG);
    CHECK(strstr(tm_last_error(), "top_k") != NULL);
    CHECK(!memcmp(x, logits, sizeof x)); /* a rejected call leaves the logits alone */
}

static void test_top_p(void)
{
    float logits[6];
    log_probs(crafted, 6, logits);
    tm_sampling_params p = tm_sampling_default_params();
    p.temperature = 1.0f;
    /* cumulative: 0.3 0.6 0.75 0.85 0.95 1 */
    p.top_p = 0.01f; /* so small only the most likely is kept */
    CHECK(kept_set_is(&p, logits, 6, (const int32_t[]){1}, 1));
    p.top_p = 0.5f;
    CHECK(kept_set_is(&p, logits, 6, (const int32_t[]){1, 3}, 2));
    p.top_p = 0.7f;
    CHECK(kept_set_is(&p, logits, 6, (const int32_t[]){1, 3, 4}, 3));
    p.top_p = 0.8f;
    CHECK(kept_set_is(&p, logits, 6, (const int32_t[]){1, 3, 4, 2}, 4));
    p.top_p = 0.9f;
    CHECK(kept_set_is(&p, logits, 6, (const int32_t[]){1, 3, 4, 2, 5}, 5));
    p.top_p = 0.97f;
    CHECK(kept_set_is(&p, logits, 6, (const int32_t[]){0, 1, 2, 3, 4, 5}, 6));
    /* after top-k 3 the mass renormalises to 0.4 0.4 0.2: 0.7 keeps two, not three */
    p.top_k = 3;
    p.top_p = 0.7f;
    CHECK(kept_set_is(&p, logits, 6, (const int32_t[]){1, 3}, 2));
    p.top_p = 0.85f;
    CHECK(kept_set_is(&p, logits, 6, (const int32_t[]){1, 3, 4}, 3));
}

static void test_min_p(void)
{
    float logits[6];
    log_probs(crafted, 6, logits);
    tm_sampling_params p = tm_sampling_default_params();
    p.temperature = 1.0f;
    p.min_p = 0.4f; /* p >= 0.12 */
    CHECK(kept_set_is(&p, logits, 6, (const int32_t[]){1, 3, 4}, 3));
    p.min_p = 0.3f; /* p >= 0.09 */
    CHECK(kept_set_is(&p, logits, 6, (const int32_t[]){1, 3, 4, 2, 5}, 5));
    p.min_p = 1.0f; /* only the maximum, both of the tie */
    CHECK(kept_set_is(&p, logits, 6, (const int32_t[]){1, 3}, 2));
    /* relative to the temperature-scaled distribution: at T = 2 the ratios are square
     * roots, 0.1 / 0.3 -> 0.577, 0.05 / 0.3 -> 0.408 */
    p.temperature = 2.0f;
    p.min_p = 0.5f;
    CHECK(kept_set_is(&p, logits, 6, (const int32_t[]){1, 3, 4, 2, 5}, 5));
    /* min-p comes after top-p: top-p 0.8 keeps {1, 3, 4, 2} at T = 1, min-p 0.4 then drops 2 */
    p.temperature = 1.0f;
    p.top_p = 0.8f;
    p.min_p = 0.4f;
    CHECK(kept_set_is(&p, logits, 6, (const int32_t[]){1, 3, 4}, 3));
}

/* -------------------------------------------------------------- the draw -- */

static void test_distribution(void)
{
    enum { V = 8, N = 200000 };
    const double prob[V] = {0.02, 0.25, 0.08, 0.18, 0.12, 0.2, 0.1, 0.05};
    float logits[V];
    log_probs(prob, V, logits);
    tm_sampling_params p = tm_sampling_default_params();
    p.temperature = 0.8f;
    p.top_k = 6;   /* drops 0 (0.02) and 7 (0.05) */
    p.top_p = 0.9f; /* of the renormalised rest */
    long counts[V];
    draw_counts(&p, logits, V, N, counts);

    /* the expected probabilities, computed plainly */
    double q[V], z = 0;
    for (int i = 0; i < V; i++) z += q[i] = pow(prob[i], 1.0 / 0.8);
    int order[V] = {1, 5, 3, 4, 6, 2, 7, 0};
    int keep[V] = {0};
    double zk = 0, cum = 0, zp = 0;
    for (int i = 0; i < 6; i++) zk += q[order[i]];
    for (int i = 0; i < 6 && cum < 0.9; i++) {
        cum += q[order[i]] / zk;
        keep[order[i]] = 1;
        zp += q[order[i]];
    }
    int n_kept = 0;
    for (int i = 0; i < V; i++) n_kept += keep[i];
    CHECK(n_kept == 5); /* 1 5 3 4 6: cumulative 0.83 before 6, 0.93 with it - not on an edge */
    for (int i = 0; i < V; i++) {
        double e = keep[i] ? q[i] / zp : 0.0;
        double sigma = sqrt(N * e * (1 - e));
        if (!keep[i]) CHECK(counts[i] == 0);
        else CHECK_NEAR((double)counts[i], N * e, 4 * sigma);
    }

    /* no truncation at all: the plain softmax */
    p = tm_sampling_default_params();
    p.temperature = 1.0f;
    draw_counts(&p, logits, V, N, counts);
    for (int i = 0; i < V; i++) CHECK_NEAR((double)counts[i], N * prob[i], 4 * sqrt(N * prob[i] * (1 - prob[i])));
}

static void test_seed_repeats(void)
{
    enum { V = 300, DRAWS = 100 };
    float logits[V], x[V];
    tt_fill_random(logits, V, 99);
    for (int i = 0; i < V; i++) logits[i] *= 4.0f;
    tm_sampling_params p = tm_sampling_default_params();
    p.temperature = 0.9f;
    p.top_p = 0.95f;
    p.seed = 2024;
    int32_t seq[3][DRAWS];
    uint64_t seeds[3] = {p.seed, p.seed, p.seed + 1};
    for (int s = 0; s < 3; s++) {
        tmi_rng rng;
        tmi_rng_seed(&rng, seeds[s]);
        for (int d = 0; d < DRAWS; d++) {
            tmi_sample_result r;
            memcpy(x, logits, sizeof x);
            CHECK_STATUS(sample(&p, x, V, NULL, &rng, &r), TM_OK);
            seq[s][d] = r.token;
        }
    }
    CHECK(!memcmp(seq[0], seq[1], sizeof seq[0]));
    CHECK(memcmp(seq[0], seq[2], sizeof seq[0]) != 0);
    int distinct = 0;
    for (int d = 1; d < DRAWS; d++) distinct += seq[0][d] != seq[0][0];
    CHECK(distinct > 10); /* it does sample */
}

/* The full-sort reference: order by (p desc, id asc) with p computed by the
 * sampler's exp, cut, renormalise, then the inverse CDF for u.  Masses here are
 * summed in another order than the sampler's, which could only matter for a u
 * within ~1e-12 of a boundary. */
static const float *ref_p;
static int ref_compare(const void *a, const void *b)
{
    int32_t i = *(const int32_t *)a, j = *(const int32_t *)b;
    if (ref_p[i] != ref_p[j]) return ref_p[i] > ref_p[j] ? -1 : 1;
    return i < j ? -1 : 1;
}

static int32_t ref_sample(const tm_sampling_params *p, const float *x, int32_t vocab, double u, float *prob,
                          int32_t *idx)
{
    float max = -INFINITY;
    for (int32_t i = 0; i < vocab; i++) max = x[i] > max ? x[i] : max;
    tmi_sampler_exp(x, vocab, max, p->temperature, prob); /* checked against exp in test_exp */
    for (int32_t i = 0; i < vocab; i++) idx[i] = i;
    ref_p = prob;
    qsort(idx, (size_t)vocab, sizeof *idx, ref_compare);
    int32_t n = vocab;
    if (p->top_k > 0) n = p->top_k;
    double total = 0, cum = 0;
    for (int32_t i = 0; i < n; i++) total += prob[idx[i]];
    if (p->top_p < 1.0f) {
        int32_t keep = n;
        for (int32_t i = 0; i < n; i++) {
            cum += prob[idx[i]];
            if (cum >= p->top_p * total) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    while (n > 1 && prob[idx[n - 1]] < p->min_p * prob[idx[0]]) n--;
    total = 0;
    for (int32_t i = 0; i < n; i++) total += prob[idx[i]];
    cum = 0;
    for (int32_t i = 0; i < n; i++) {
        cum += prob[idx[i]];
        if (cum > u * total) return idx[i];
    }
    return idx[n - 1];
}

static void test_against_reference(void)
{
    enum { V = 5000 };
    float *logits = malloc(sizeof(float) * V), *x = malloc(sizeof(float) * V), *prob = malloc(sizeof(float) * V);
    int32_t *idx = malloc(sizeof(int32_t) * V);
    if (!CHECK(logits && x && prob && idx)) goto done;
    struct { float t; int32_t k; float top_p, min_p, scale; } cases[] = {
        {1.0f, 0, 1.0f, 0.0f, 3.0f},    {1.0f, 0, 0.9f, 0.0f, 3.0f},    {0.7f, 50, 1.0f, 0.0f, 3.0f},
        {1.3f, 1000, 0.8f, 0.0f, 2.0f}, {1.0f, 0, 0.5f, 0.05f, 8.0f},   {0.5f, 4999, 0.99f, 0.0f, 1.0f},
        {2.0f, 30, 0.3f, 0.2f, 5.0f},   {1.0f, 0, 1.0f, 0.01f, 12.0f},
        /* nearly flat: a few dense buckets, ordered by quickselect */
        {1.0f, 0, 0.9f, 0.0f, 0.01f},   {1.0f, 2000, 0.5f, 0.0f, 0.05f}, {0.8f, 0, 1.0f, 0.999f, 0.02f},
        /* very peaked: the cut in the first buckets */
        {1.0f, 0, 0.95f, 0.0f, 60.0f},  {0.3f, 3, 1.0f, 0.0f, 40.0f},
    };
    int mismatches = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tm_sampling_params p = tm_sampling_default_params();
        p.temperature = cases[c].t;
        p.top_k = cases[c].k;
        p.top_p = cases[c].top_p;
        p.min_p = cases[c].min_p;
        tt_fill_random(logits, V, 1000 + c);
        for (int i = 0; i < V; i++) logits[i] *= cases[c].scale;
        tmi_rng rng, twin;
        tmi_rng_seed(&rng, c);
        for (int d = 0; d < 60; d++) {
            tmi_sample_result r;
            twin = rng;
            memcpy(x, logits, sizeof(float) * V);
            if (!CHECK_STATUS(sample(&p, x, V, NULL, &rng, &r), TM_OK)) break;
            int32_t want = ref_sample(&p, logits, V, tmi_rng_next_double(&twin), prob, idx);
            if (r.token != want) {
                fprintf(stderr, "  case %zu draw %d: got %d, reference %d\n", c, d, r.token, want);
                mismatches++;
            }
        }
    }
    CHECK(mismatches == 0);
done:
    free(logits);
    free(x);
    free(prob);
    free(idx);
}

/* -------------------------------------------------------------- logprobs -- */

static void test_logprobs(void)
{
    enum { V = 50 };
    float logits[V], x[V];
    tt_fill_random(logits, V, 5);
    for (int i = 0; i < V; i++) logits[i] *= 3.0f;
    logits[10] = logits[20] = logits[30] = 5.0f; /* a three-way tie at the top */
    logits[7] = -INFINITY;
    tm_sampling_params p = tm_sampling_default_params();
    p.temperature = 0.6f; /* logprobs ignore the temperature */
    p.top_k = 3;
    p.top_logprobs = 20;
    tmi_rng rng;
    tmi_rng_seed(&rng, 3);
    tmi_sample_result r;
    memcpy(x, logits, sizeof x);
    CHECK_STATUS(sample(&p, x, V, NULL, &rng, &r), TM_OK);
    CHECK(r.token == 10 || r.token == 20 || r.token == 30);

    double max = 5.0, s = 0;
    for (int i = 0; i < V; i++) s += exp((double)logits[i] - max);
    double lse = max + log(s);
    CHECK_NEAR(r.logprob, 5.0 - lse, 1e-5);
    CHECK(r.n_top == 20);
    CHECK(r.top[0].id == 10 && r.top[1].id == 20 && r.top[2].id == 30);
    for (int j = 0; j < r.n_top; j++) {
        CHECK_NEAR(r.top[j].logprob, logits[r.top[j].id] - lse, 1e-5);
        if (j > 0) CHECK(r.top[j].logprob <= r.top[j - 1].logprob);
    }
    /* the 20th is larger than every token left out */
    int in_top[V] = {0};
    for (int j = 0; j < r.n_top; j++) in_top[r.top[j].id] = 1;
    for (int i = 0; i < V; i++)
        if (!in_top[i]) CHECK(logits[i] <= logits[r.top[19].id]);
    /* exp of the full log-softmax sums to 1 */
    double lse_got = (double)logits[r.token] - r.logprob, total = 0;
    for (int i = 0; i < V; i++) total += exp((double)logits[i] - lse_got);
    CHECK_NEAR(total, 1.0, 1e-5);

    /* with a penalty the logprobs describe the penalised logits */
    const int32_t hist[] = {10, 20};
    tmi_token_history h = {hist, 2, 0};
    p.frequency_penalty = 1.0f;
    p.top_k = 1;
    p.top_logprobs = 2;
    memcpy(x, logits, sizeof x);
    CHECK_STATUS(sample(&p, x, V, &h, &rng, &r), TM_OK);
    CHECK(r.token == 30 && r.n_top == 2 && r.top[0].id == 30 && r.top[0].logprob == r.logprob);
    CHECK(x[10] == 4.0f && r.top[1].id == 10);

    /* fewer ids than top_logprobs */
    float y[3] = {0.0f, 1.0f, -INFINITY};
    p = tm_sampling_default_params();
    p.top_logprobs = 5;
    CHECK_STATUS(sample(&p, y, 3, NULL, NULL, &r), TM_OK);
    CHECK(r.n_top == 3 && r.top[0].id == 1 && r.top[1].id == 0 && r.top[2].id == 2);
    CHECK_NEAR(r.top[0].logprob, -log1p(exp(-1.0)), 1e-6);
    CHECK(isinf(r.top[2].logprob) && r.top[2].logprob < 0);
}

/* ------------------------------------------------------------ edge cases -- */

static void test_edges(void)
{
    tm_sampling_params p = tm_sampling_default_params();
    p.temperature = 1.0f;
    p.top_logprobs = 1;
    tmi_rng rng;
    tmi_rng_seed(&rng, 11);
    tmi_sample_result r;
    float one[1] = {-3.0f};
    CHECK_STATUS(sample(&p, one, 1, NULL, &rng, &r), TM_OK);
    CHECK(r.token == 0 && r.logprob == 0.0f && r.n_top == 1 && r.top[0].id == 0);

    float dead[4] = {-INFINITY, NAN, -INFINITY, NAN};
    CHECK_STATUS(sample(&p, dead, 4, NULL, &rng, &r), TM_ERR_INVALID_ARG);
    CHECK(strstr(tm_last_error(), "-inf") != NULL);
    p.temperature = 0.0f;
    float dead2[2] = {-INFINITY, -INFINITY};
    CHECK_STATUS(sample(&p, dead2, 2, NULL, NULL, &r), TM_ERR_INVALID_ARG);

    /* +inf entries: uniform over them */
    p.temperature = 1.0f;
    long counts[4];
    const float inf_row[4] = {0.0f, INFINITY, 50.0f, INFINITY};
    draw_counts(&p, inf_row, 4, 4000, counts);
    CHECK(counts[0] == 0 && counts[2] == 0 && counts[1] > 1800 && counts[3] > 1800);
    float xi[4];
    memcpy(xi, inf_row, sizeof xi);
    CHECK_STATUS(sample(&p, xi, 4, NULL, &rng, &r), TM_OK);
    CHECK_NEAR(r.logprob, -log(2.0), 1e-6);

    /* bad arguments, each leaving the logits alone */
    float x[4] = {1, 2, 3, 4}, keep[4];
    memcpy(keep, x, sizeof x);
    const int32_t bad_hist[] = {1, 4};
    tmi_token_history h = {bad_hist, 2, 1};
    p.repetition_penalty = 1.5f;
    CHECK_STATUS(sample(&p, x, 4, &h, &rng, &r), TM_ERR_INVALID_ARG);
    CHECK(strstr(tm_last_error(), "tokens[1]") != NULL);
    h.n_prompt = 3;
    CHECK_STATUS(sample(&p, x, 4, &h, &rng, &r), TM_ERR_INVALID_ARG);
    CHECK(strstr(tm_last_error(), "n_prompt") != NULL);
    CHECK_STATUS(sample(&p, x, 4, NULL, NULL, &r), TM_ERR_INVALID_ARG); /* rng needed */
    size_t bytes = tmi_sampler_workspace(4);
    uint64_t *ws = malloc(bytes + 8);
    if (CHECK(ws)) {
        CHECK_STATUS(tmi_sample(&p, x, 4, NULL, &rng, ws, bytes - 1, &r), TM_ERR_INVALID_ARG);
        CHECK(strstr(tm_last_error(), "workspace") != NULL);
        CHECK_STATUS(tmi_sample(&p, x, 4, NULL, &rng, (char *)ws + 4, bytes, &r), TM_ERR_INVALID_ARG);
        CHECK_STATUS(tmi_sample(&p, x, 4, NULL, &rng, NULL, bytes, &r), TM_ERR_INVALID_ARG);
        CHECK(!memcmp(x, keep, sizeof x));
        CHECK_STATUS(tmi_sample(&p, x, 4, NULL, &rng, ws, bytes, NULL), TM_ERR_INVALID_ARG);
        p.repetition_penalty = 1.0f; /* no penalty reads the history: its ids are not checked */
        h.n_prompt = 1;
        CHECK_STATUS(tmi_sample(&p, x, 4, &h, &rng, ws, bytes, &r), TM_OK);
    }
    free(ws);
    CHECK(tmi_sampler_workspace(0) == 0 && tmi_sampler_workspace(-5) == 0);
}

/* A selection must not go quadratic or wrong on orders that defeat its pivots:
 * sorted, reversed, and all equal (ties broken by id only). */
static void test_adversarial_orders(void)
{
    enum { V = 20000 };
    float *logits = malloc(sizeof(float) * V), *prob = malloc(sizeof(float) * V);
    int32_t *idx = malloc(sizeof(int32_t) * V);
    if (!CHECK(logits && prob && idx)) goto done;
    for (int shape = 0; shape < 3; shape++) {
        for (int i = 0; i < V; i++)
            logits[i] = shape == 0 ? (float)i * 1e-3f : shape == 1 ? (float)(V - i) * 1e-3f : 0.25f;
        tm_sampling_params p = tm_sampling_default_params();
        p.temperature = 1.0f;
        p.top_k = 777;
        p.top_p = 0.6f;
        for (int d = 0; d < 5; d++) {
            tmi_rng rng, twin;
            tmi_rng_seed(&rng, (uint64_t)(shape * 10 + d));
            twin = rng;
            tmi_sample_result r;
            float *x = malloc(sizeof(float) * V);
            if (!CHECK(x)) break;
            memcpy(x, logits, sizeof(float) * V);
            CHECK_STATUS(sample(&p, x, V, NULL, &rng, &r), TM_OK);
            CHECK(r.token == ref_sample(&p, logits, V, tmi_rng_next_double(&twin), prob, idx));
            free(x);
        }
    }
done:
    free(logits);
    free(prob);
    free(idx);
}

/* ---------------------------------------------------------------- timing -- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void time_one(const char *what, const tm_sampling_params *p, const float *logits, float *x, int32_t vocab,
                     void *ws, size_t bytes)
{
    enum { REPS = 50 };
    tmi_rng rng;
    tmi_rng_seed(&rng, 1);
    double spent = 0, best = 1e9;
    for (int i = 0; i < REPS; i++) {
        tmi_sample_result r;
        memcpy(x, logits, sizeof(float) * (size_t)vocab);
        double t0 = now_s();
        CHECK_STATUS(tmi_sample(p, x, vocab, NULL, &rng, ws, bytes, &r), TM_OK);
        double t = now_s() - t0;
        spent += t;
        best = t < best ? t : best;
    }
    /* printed, not asserted: a Debug (-O0) build is several times slower */
    fprintf(stderr, "  vocab %d, %s: %.3f ms per token (best %.3f)\n", vocab, what, 1e3 * spent / REPS, 1e3 * best);
}

static void test_timing(void)
{
    enum { V = 128000 };
    float *logits = malloc(sizeof(float) * V), *x = malloc(sizeof(float) * V);
    size_t bytes = tmi_sampler_workspace(V);
    void *ws = malloc(bytes);
    if (!CHECK(logits && x && ws)) goto done;
    tt_fill_random(logits, V, 77);
    for (int i = 0; i < V; i++) logits[i] *= 8.0f; /* a spread like a model's logits */
    tm_sampling_params p = tm_sampling_default_params();
    p.temperature = 1.0f;
    p.top_p = 0.9f;
    time_one("T 1, top_p 0.9", &p, logits, x, V, ws, bytes);
    p.temperature = 0.7f;
    p.top_k = 40;
    p.top_logprobs = 5;
    time_one("T 0.7, top_k 40, top_p 0.9, 5 logprobs", &p, logits, x, V, ws, bytes);
    for (int i = 0; i < V; i++) logits[i] *= 0.125f; /* flat: top-p keeps most of the vocabulary */
    p = tm_sampling_default_params();
    p.temperature = 1.0f;
    p.top_p = 0.9f;
    time_one("flat, T 1, top_p 0.9", &p, logits, x, V, ws, bytes);
done:
    free(logits);
    free(x);
    free(ws);
}

int main(void)
{
    RUN(test_rng);
    RUN(test_exp);
    RUN(test_params_check);
    RUN(test_repetition_penalty);
    RUN(test_presence_frequency);
    RUN(test_logit_bias);
    RUN(test_greedy);
    RUN(test_top_k);
    RUN(test_top_p);
    RUN(test_min_p);
    RUN(test_distribution);
    RUN(test_seed_repeats);
    RUN(test_against_reference);
    RUN(test_logprobs);
    RUN(test_edges);
    RUN(test_adversarial_orders);
    RUN(test_timing);
    return tt_finish();
}
