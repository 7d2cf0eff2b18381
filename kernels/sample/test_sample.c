/* test_sample.c - tmi_sample_cpu: greedy ties, NaN / inf rows, each truncation at
 * its extremes, bit-for-bit agreement with the host sampler (tmi_sample fed the
 * same draw) on many random rows, the double-precision judge of sample_ref.h
 * (which the CUDA test relies on) on the same rows, threads, and bad arguments. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kernels/registry.h"
#include "kernels/sample/sample.h"
#include "kernels/sample/sample_ref.h"
#include "runtime/rng.h"
#include "runtime/sampler.h"
#include "runtime/threadpool.h"

static tmi_pool *pool3;

/* Runs the op with a fresh workspace; outputs poisoned first. */
static tm_status run(int32_t n, int32_t vocab, const float *logits, int64_t ld, const tmi_sample_row *rows,
                     int32_t *tokens, float *logprobs, tmi_pool *pool)
{
    size_t bytes = tmi_sample_cpu_workspace(vocab, tmi_pool_threads(pool));
    void *ws = malloc(bytes ? bytes : 1);
    for (int32_t r = 0; r < n; r++) {
        tokens[r] = -7;
        if (logprobs) logprobs[r] = 12345.0f;
    }
    tmi_exec ex = {.backend = TM_BACKEND_CPU, .pool = pool, .workspace = ws, .workspace_bytes = bytes};
    tmi_sample_args a = {n, vocab, logits, ld, rows, tokens, logprobs};
    tm_status st = tmi_sample_cpu(&ex, &a);
    free(ws);
    return st;
}

static tmi_sample_row greedy(void) { return (tmi_sample_row){0.0f, 0, 1.0f, 0.0f, 0.0}; }
static tmi_sample_row sampled(float t, int32_t k, float top_p, float min_p, double u)
{
    return (tmi_sample_row){t, k, top_p, min_p, u};
}

static void test_sample_greedy_ties(void)
{
    float x[2][6] = {{1, 3, NAN, 3, -2, 3}, {-INFINITY, NAN, -5, -5, -6, -INFINITY}};
    tmi_sample_row rows[2] = {greedy(), greedy()};
    int32_t tok[2];
    float lp[2];
    if (CHECK_STATUS(run(2, 6, &x[0][0], 6, rows, tok, lp, NULL), TM_OK)) {
        CHECK(tok[0] == 1 && tok[1] == 2);
        CHECK_NEAR(lp[0], sref_logprob(x[0], 6, 1), 1e-6);
        CHECK_NEAR(lp[1], sref_logprob(x[1], 6, 2), 1e-6);
    }
    /* ld > vocab: the padding is never read */
    float y[2][4] = {{0, 2, 1, 100}, {5, 4, 6, 100}};
    if (CHECK_STATUS(run(2, 3, &y[0][0], 4, rows, tok, NULL, NULL), TM_OK)) CHECK(tok[0] == 1 && tok[1] == 2);
}

static void test_sample_nan_inf_rows(void)
{
    enum { V = 5 };
    float x[4][V] = {
        {NAN, NAN, NAN, NAN, NAN},
        {-INFINITY, NAN, -INFINITY, NAN, -INFINITY},
        {1, INFINITY, NAN, INFINITY, -INFINITY},
        {-INFINITY, -INFINITY, -INFINITY, -INFINITY, 2.5f},
    };
    float before[4][V];
    memcpy(before, x, sizeof x);
    for (int sampled_rows = 0; sampled_rows < 2; sampled_rows++) {
        tmi_sample_row rows[4];
        for (int r = 0; r < 4; r++) rows[r] = sampled_rows ? sampled(0.8f, 0, 1.0f, 0.0f, 0.75) : greedy();
        int32_t tok[4];
        float lp[4];
        if (!CHECK_STATUS(run(4, V, &x[0][0], V, rows, tok, lp, pool3), TM_OK)) continue;
        CHECK(tok[0] == -1 && isnan(lp[0]));
        CHECK(tok[1] == -1 && isnan(lp[1]));
        /* uniform over the two +inf entries: greedy takes the first, u = 0.75 the second */
        CHECK(tok[2] == (sampled_rows ? 3 : 1));
        CHECK_NEAR(lp[2], -log(2.0), 1e-7);
        CHECK(tok[3] == 4 && lp[3] == 0.0f);
    }
    CHECK(memcmp(before, x, sizeof x) == 0); /* the logits are never written */
}

/* Each truncation at the extreme where only the argmax survives, whatever u. */
static void test_sample_truncations(void)
{
    enum { V = 3000, R = 6 };
    float *x = malloc(sizeof(float) * V * R); /* R copies of one row */
    tt_fill_random(x, V, 42);
    for (int i = 0; i < V; i++) x[i] *= 6.0f;
    for (int r = 1; r < R; r++) memcpy(x + r * V, x, sizeof(float) * V);
    int32_t argmax = 0;
    for (int i = 1; i < V; i++)
        if (x[i] > x[argmax]) argmax = i;
    const double us[R] = {0.0, 0.1, 0.5, 0.9, 0.999, 1.0 - 0x1p-53};
    tmi_sample_row rows[R];
    int32_t tok[R];
    for (int kind = 0; kind < 3; kind++) {
        for (int r = 0; r < R; r++)
            rows[r] = kind == 0   ? sampled(1.0f, 1, 1.0f, 0.0f, us[r])
                      : kind == 1 ? sampled(2.0f, 0, 1e-6f, 0.0f, us[r])
                                  : sampled(5.0f, 0, 1.0f, 1.0f, us[r]);
        if (CHECK_STATUS(run(R, V, x, V, rows, tok, NULL, NULL), TM_OK))
            for (int r = 0; r < R; r++)
                if (!CHECK(tok[r] == argmax)) fprintf(stderr, "  kind %d u %g: %d, want %d\n", kind, us[r], tok[r], argmax);
        CHECK(!sref_explains(x, V, &rows[0], argmax == 0 ? 1 : 0, 1e-6, 1e-5, NULL));
        CHECK(sref_explains(x, V, &rows[0], argmax, 1e-6, 1e-5, NULL));
    }
    /* min-p 0.5 at temperature 1: only logits within ln 2 of the max, each drawn */
    int32_t in_band = 0, seen = 0;
    for (int i = 0; i < V; i++) in_band += x[i] >= x[argmax] - 0.69f;
    for (int s = 0; s < 64; s++) {
        tmi_sample_row row = sampled(1.0f, 0, 1.0f, 0.5f, (s + 0.5) / 64.0);
        int32_t t;
        if (!CHECK_STATUS(run(1, V, x, V, &row, &t, NULL, NULL), TM_OK)) break;
        float p = expf(x[t] - x[argmax]);
        CHECK(p >= 0.5f * (1.0f - 1e-6f));
        seen += t != argmax;
    }
    CHECK(in_band == 1 || seen > 0);
    free(x);
}

static tmi_sample_row mixed_row(int32_t i, int32_t vocab, double u)
{
    switch (i % 7) {
    case 0: return greedy();
    case 1: return sampled(0.7f, 40 < vocab ? 40 : vocab, 1.0f, 0.0f, u);
    case 2: return sampled(1.0f, 0, 0.9f, 0.0f, u);
    case 3: return sampled(1.0f, 0, 1.0f, 0.05f, u);
    case 4: return sampled(1.3f, 0, 1.0f, 0.0f, u);
    case 5: return sampled(0.5f, 1 + i % vocab, 0.5f, 0.01f, u);
    default: return sampled(1.0f, 0, 1.0f, 0.0f, u);
    }
}

/* The same token and logprob as tmi_sample given an rng whose next draw is u, and
 * every token is one the double-precision judge accepts. */
static void check_against_host(int32_t n, int32_t vocab, float scale, uint64_t seed, tmi_pool *pool)
{
    int64_t ld = vocab + 3;
    float *x = malloc(sizeof(float) * (size_t)(n * ld));
    float *copy = malloc(sizeof(float) * (size_t)vocab);
    tmi_sample_row *rows = malloc(sizeof *rows * (size_t)n);
    tmi_rng *rngs = malloc(sizeof *rngs * (size_t)n);
    int32_t *tok = malloc(sizeof *tok * (size_t)n);
    float *lp = malloc(sizeof *lp * (size_t)n);
    size_t wsb = tmi_sampler_workspace(vocab);
    void *ws = malloc(wsb);
    tt_fill_random(x, (long)(n * ld), seed);
    for (int64_t i = 0; i < n * ld; i++) x[i] *= scale;
    for (int32_t r = 0; r < n; r++) {
        tmi_rng_seed(&rngs[r], seed * 1000 + (uint64_t)r);
        tmi_rng peek = rngs[r];
        rows[r] = mixed_row(r, vocab, tmi_rng_next_double(&peek));
    }
    if (n > 3) x[3 * ld + 1] = NAN; /* a NaN inside an otherwise normal row */
    int64_t wrong = 0, unexplained = 0, sampled_rows = 0, neighbour_accepted = 0;
    if (CHECK_STATUS(run(n, vocab, x, ld, rows, tok, lp, pool), TM_OK)) {
        for (int32_t r = 0; r < n; r++) {
            const float *row = x + r * ld;
            memcpy(copy, row, sizeof(float) * (size_t)vocab);
            tm_sampling_params p = tm_sampling_default_params();
            p.temperature = rows[r].temperature;
            p.top_k = rows[r].top_k;
            p.top_p = rows[r].top_p;
            p.min_p = rows[r].min_p;
            tmi_sample_result want;
            if (!CHECK_STATUS(tmi_sample(&p, copy, vocab, NULL, &rngs[r], ws, wsb, &want), TM_OK)) break;
            if (tok[r] != want.token || memcmp(&lp[r], &want.logprob, sizeof lp[r]) != 0) {
                if (wrong++ < 5)
                    fprintf(stderr, "  vocab %d row %d: token %d logprob %.9g, host %d %.9g\n", vocab, r, tok[r],
                            (double)lp[r], want.token, (double)want.logprob);
            }
            double dist;
            if (!sref_explains(row, vocab, &rows[r], tok[r], 1e-6, 1e-5, &dist) && unexplained++ < 5)
                fprintf(stderr, "  vocab %d row %d: judge rejects token %d (dist %.3g)\n", vocab, r, tok[r], dist);
            CHECK_NEAR(lp[r], sref_logprob(row, vocab, tok[r]), 1e-5 * (1.0 + fabs((double)lp[r])));
            /* the judge has teeth: another id is rarely a possible draw */
            if (rows[r].temperature > 0.0f && vocab >= 100) {
                sampled_rows++;
                neighbour_accepted += sref_explains(row, vocab, &rows[r], (tok[r] + 1) % vocab, 1e-6, 1e-5, NULL);
            }
        }
    }
    CHECK(wrong == 0);
    CHECK(unexplained == 0);
    if (!CHECK(neighbour_accepted * 50 <= sampled_rows))
        fprintf(stderr, "  vocab %d: the judge accepts id + 1 in %lld of %lld rows\n", vocab, (long long)neighbour_accepted,
                (long long)sampled_rows);
    free(x); free(copy); free(rows); free(rngs); free(tok); free(lp); free(ws);
}

static void test_sample_matches_host(void)
{
    check_against_host(1, 1, 1.0f, 1, NULL);
    check_against_host(9, 2, 1.0f, 2, NULL);
    check_against_host(30, 7, 3.0f, 3, NULL);
    check_against_host(200, 100, 4.0f, 4, pool3);
    check_against_host(300, 1000, 8.0f, 5, pool3);
    check_against_host(100, 4099, 0.01f, 6, pool3); /* nearly flat: long kept sets */
    check_against_host(60, 32000, 8.0f, 7, pool3);
}

/* Rows with many equal probabilities: the order (p desc, id asc) decides. */
static void test_sample_equal_logits(void)
{
    enum { V = 500, R = 40 };
    float *x = malloc(sizeof(float) * V * R);
    for (int i = 0; i < V * R; i++) x[i] = (float)((i % V) % 3); /* three levels, ~167 tokens each */
    tmi_sample_row rows[R];
    for (int r = 0; r < R; r++)
        rows[r] = sampled(1.0f, r % 4 == 0 ? 50 + r : 0, r % 4 == 1 ? 0.3f : 1.0f, r % 4 == 2 ? 0.2f : 0.0f,
                          (r + 0.25) / R);
    int32_t tok[R];
    if (CHECK_STATUS(run(R, V, x, V, rows, tok, NULL, NULL), TM_OK))
        for (int r = 0; r < R; r++) CHECK(sref_explains(x + r * V, V, &rows[r], tok[r], 0.0, 1e-9, NULL));
    /* top_k = 10 keeps the 10 lowest ids of the top level (ids 2, 5, .., 29): u = 0.95 draws the last */
    tmi_sample_row k10 = sampled(1.0f, 10, 1.0f, 0.0f, 0.95);
    if (CHECK_STATUS(run(1, V, x + V, V, &k10, tok, NULL, NULL), TM_OK)) CHECK(tok[0] == 29);
    float flat[V];
    for (int i = 0; i < V; i++) flat[i] = 0.25f;
    if (CHECK_STATUS(run(1, V, flat, V, &k10, tok, NULL, NULL), TM_OK)) CHECK(tok[0] == 9);
    free(x);
}

static void test_sample_threads(void)
{
    enum { N = 97, V = 2000 };
    float *x = malloc(sizeof(float) * N * V);
    tt_fill_random(x, N * V, 77);
    tmi_sample_row rows[N];
    for (int r = 0; r < N; r++) rows[r] = mixed_row(r, V, (r * 0.618033988749) - floor(r * 0.618033988749));
    int32_t t1[N], t3[N];
    float l1[N], l3[N];
    if (CHECK_STATUS(run(N, V, x, V, rows, t1, l1, NULL), TM_OK) && CHECK_STATUS(run(N, V, x, V, rows, t3, l3, pool3), TM_OK))
        CHECK(memcmp(t1, t3, sizeof t1) == 0 && memcmp(l1, l3, sizeof l1) == 0);
    free(x);
}

static void test_sample_bad_args(void)
{
    float x[4] = {1, 2, 3, 4};
    int32_t tok[1] = {-7};
    tmi_sample_row row = sampled(1.0f, 0, 1.0f, 0.0f, 0.5);
    size_t bytes = tmi_sample_cpu_workspace(4, 1);
    void *ws = malloc(bytes);
    CHECK(bytes > 0);
    tmi_exec ex = {.backend = TM_BACKEND_CPU, .workspace = ws, .workspace_bytes = bytes};
    tmi_sample_args a = {1, 4, x, 4, &row, tok, NULL};
    CHECK_STATUS(tmi_sample_cpu(NULL, &a), TM_ERR_INVALID_ARG);
    CHECK_STATUS(tmi_sample_cpu(&ex, NULL), TM_ERR_INVALID_ARG);
    tmi_sample_args b = a;
    b.n = -1;
    CHECK_STATUS(tmi_sample_cpu(&ex, &b), TM_ERR_INVALID_ARG);
    b = a, b.vocab = 0;
    CHECK_STATUS(tmi_sample_cpu(&ex, &b), TM_ERR_INVALID_ARG);
    b = a, b.ld = 3;
    CHECK_STATUS(tmi_sample_cpu(&ex, &b), TM_ERR_INVALID_ARG);
    CHECK(strstr(tm_last_error(), "ld must be >= vocab") != NULL);
    b = a, b.tokens = NULL;
    CHECK_STATUS(tmi_sample_cpu(&ex, &b), TM_ERR_INVALID_ARG);
    b = a, b.rows = NULL;
    CHECK_STATUS(tmi_sample_cpu(&ex, &b), TM_ERR_INVALID_ARG);
    tmi_exec small = ex;
    small.workspace_bytes = bytes - 1;
    CHECK_STATUS(tmi_sample_cpu(&small, &a), TM_ERR_INVALID_ARG);
    small = ex, small.workspace = (char *)ws + 4;
    CHECK_STATUS(tmi_sample_cpu(&small, &a), TM_ERR_INVALID_ARG);
    const tmi_sample_row bad[] = {
        sampled(-1.0f, 0, 1.0f, 0.0f, 0.5), sampled(101.0f, 0, 1.0f, 0.0f, 0.5), sampled(NAN, 0, 1.0f, 0.0f, 0.5),
        sampled(1.0f, 5, 1.0f, 0.0f, 0.5),  sampled(1.0f, -1, 1.0f, 0.0f, 0.5),  sampled(1.0f, 0, 0.0f, 0.0f, 0.5),
        sampled(1.0f, 0, 1.5f, 0.0f, 0.5),  sampled(1.0f, 0, 1.0f, -0.1f, 0.5),  sampled(1.0f, 0, 1.0f, 1.1f, 0.5),
        sampled(1.0f, 0, 1.0f, 0.0f, 1.0),  sampled(1.0f, 0, 1.0f, 0.0f, -0.1),  sampled(1.0f, 0, 1.0f, 0.0f, NAN),
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        tmi_sample_row two[2] = {row, bad[i]};
        int32_t t2[2] = {-7, -7};
        float xx[8] = {1, 2, 3, 4, 1, 2, 3, 4};
        tmi_sample_args c = {2, 4, xx, 4, two, t2, NULL};
        if (!CHECK_STATUS(tmi_sample_cpu(&ex, &c), TM_ERR_INVALID_ARG)) fprintf(stderr, "  bad row %zu accepted\n", i);
        CHECK(strstr(tm_last_error(), "rows[1]") != NULL);
        CHECK(t2[0] == -7); /* nothing written */
    }
    /* greedy rows never read u */
    tmi_sample_row g = greedy();
    g.u = NAN;
    CHECK_STATUS(tmi_sample_cpu(&ex, &(tmi_sample_args){1, 4, x, 4, &g, tok, NULL}), TM_OK);
    CHECK(tok[0] == 3);
    /* n = 0 needs nothing */
    tmi_exec none = {.backend = TM_BACKEND_CPU};
    CHECK_STATUS(tmi_sample_cpu(&none, &(tmi_sample_args){0, 4, NULL, 0, NULL, NULL, NULL}), TM_OK);
    CHECK(tmi_sample_cpu_workspace(0, 4) == 0);
    CHECK(tmi_sample_cpu_workspace(1000, 4) == 4 * tmi_sample_cpu_workspace(1000, 1));
    free(ws);
}

static void test_sample_registry(void)
{
    const tmi_ops *ops = tmi_ops_get(TM_BACKEND_CPU);
    CHECK(ops && ops->sample == tmi_sample_cpu);
}

int main(void)
{
    if (tmi_pool_create(3, &pool3) != TM_OK) return 1;
    RUN(test_sample_greedy_ties);
    RUN(test_sample_nan_inf_rows);
    RUN(test_sample_truncations);
    RUN(test_sample_matches_host);
    RUN(test_sample_equal_logits);
    RUN(test_sample_threads);
    RUN(test_sample_bad_args);
    RUN(test_sample_registry);
    tmi_pool_destroy(pool3);
    return tt_finish();
}
