/* cutest_sample.c - tmi_sample_cuda against tmi_sample_cpu on the GPU machine:
 * random logits at the benchmark vocabularies (32000, 128256, 151936) and odd
 * ones, n 1 / 64 / 256, mixed per-row parameters, NaN / +inf / all-NaN / flat
 * rows, bad row parameters, determinism, and a timing line.  Outputs are
 * poisoned before each run.
 *
 * Greedy rows and rows with nothing to sample must match bit for bit.  A sampled
 * row must give the CPU's token, or one the double-precision judge of
 * sample_ref.h accepts: the two twins' exp and sums differ by float rounding, so
 * a draw whose u * mass (or a top-p / min-p cut) falls within that rounding of a
 * boundary between two tokens may go either way, and nothing else may.
 * CUTEST_SAMPLE_QUICK=1 runs only small cases and no timing (for compute-sanitizer). */
#include <cuda_runtime_api.h> /* events, for the timing only */

#include "harness.h"
#include "kernels/cutest_util.h"
#include "kernels/registry.h"
#include "kernels/sample/sample.h"
#include "kernels/sample/sample_ref.h"
#include "runtime/rng.h"
#include "runtime/threadpool.h"

#define CU_SAMPLE_TOL_P 1e-6       /* relative error of one probability (expf vs Cephes: a few ulp) */
#define CU_SAMPLE_TOL_MASS 1e-5    /* of a cumulative mass, relative to the kept mass (the brief's bound) */
#define CU_SAMPLE_TOL_LOGPROB 1e-5 /* |got - ref| <= tol * (1 + |ref|) */
#define CU_SAMPLE_TOKEN_POISON 0x5a5a5a5a
#define CU_SAMPLE_LOGPROB_POISON 12345.0f

static tmi_pool *pool;
static double worst_logprob, worst_boundary;
static long n_sampled, n_mismatch;

static tmi_sample_row row_params(int32_t i, int32_t vocab, double u)
{
    int32_t k40 = vocab < 40 ? vocab : 40, k1000 = vocab < 1000 ? vocab : 1000;
    switch (i % 7) {
    case 0: return (tmi_sample_row){0.0f, 0, 1.0f, 0.0f, u};   /* greedy */
    case 1: return (tmi_sample_row){0.7f, k40, 1.0f, 0.0f, u}; /* temperature 0.7, top-k 40 */
    case 2: return (tmi_sample_row){1.0f, 0, 0.9f, 0.0f, u};   /* top-p 0.9 */
    case 3: return (tmi_sample_row){1.0f, 0, 1.0f, 0.05f, u};  /* min-p 0.05 */
    case 4: return (tmi_sample_row){1.0f, 0, 1.0f, 0.0f, u};   /* all off */
    case 5: return (tmi_sample_row){1.5f, k1000, 0.95f, 0.01f, u}; /* all three, one after another */
    default: return (tmi_sample_row){0.8f, 0, 0.5f, 0.0f, u};
    }
}

/* Rows 2, 5, 6, 9 (when present) are the special ones. */
static void fill_logits(float *x, int32_t n, int32_t vocab, int64_t ld, float scale, uint64_t seed)
{
    tt_fill_random(x, (long)(n * ld), seed);
    for (int64_t i = 0; i < n * ld; i++) x[i] *= scale;
    if (n > 2) x[2 * ld + vocab / 2] = NAN;                                  /* a NaN in a normal row */
    if (n > 5) x[5 * ld + vocab / 3] = x[5 * ld + vocab - 1] = INFINITY;      /* uniform over two ids */
    if (n > 6)
        for (int32_t j = 0; j < vocab; j++) x[6 * ld + j] = 1.5f;            /* every id equal */
    if (n > 9)
        for (int32_t j = 0; j < vocab; j++) x[9 * ld + j] = j % 3 ? NAN : -INFINITY; /* nothing to sample */
}

typedef struct cu_buffers {
    void *logits, *rows, *tokens, *logprobs;
} cu_buffers;

static void cu_free_all(cu_buffers *b)
{
    tmi_cuda_free(b->logits);
    tmi_cuda_free(b->rows);
    tmi_cuda_free(b->tokens);
    tmi_cuda_free(b->logprobs);
}

/* Uploads poisoned outputs, runs the CUDA op, downloads tokens and logprobs. */
static int run_gpu(const cu_buffers *b, int32_t n, int32_t vocab, int64_t ld, int32_t *tok, float *lp)
{
    for (int32_t r = 0; r < n; r++) {
        tok[r] = CU_SAMPLE_TOKEN_POISON;
        lp[r] = CU_SAMPLE_LOGPROB_POISON;
    }
    if (!CHECK_STATUS(tmi_cuda_memcpy(b->tokens, tok, sizeof *tok * (size_t)n, 0), TM_OK) ||
        !CHECK_STATUS(tmi_cuda_memcpy(b->logprobs, lp, sizeof *lp * (size_t)n, 0), TM_OK))
        return 0;
    tmi_exec gpu = {.backend = TM_BACKEND_CUDA};
    tmi_sample_args a = {n, vocab, b->logits, ld, b->rows, b->tokens, b->logprobs};
    return CHECK_STATUS(tmi_sample_cuda(&gpu, &a), TM_OK) && cu_download(tok, b->tokens, sizeof *tok * (size_t)n) &&
           cu_download(lp, b->logprobs, sizeof *lp * (size_t)n);
}

static void check_row(const float *x, int32_t vocab, const tmi_sample_row *p, int32_t want, float want_lp,
                      int32_t got, float got_lp, int32_t r)
{
    int sampled = p->temperature > 0.0f && want >= 0;
    if (sampled) n_sampled++;
    if (got != want) {
        double dist = INFINITY;
        int ok = sampled && sref_explains(x, vocab, p, got, CU_SAMPLE_TOL_P, CU_SAMPLE_TOL_MASS, &dist);
        if (ok) {
            n_mismatch++;
            cu_note(&worst_boundary, dist);
        }
        CHECK(ok);
        fprintf(stderr, "  %s vocab=%d row %d (t %g k %d p %g min_p %g u %.17g): gpu %d, cpu %d, boundary %.3g\n",
                ok ? "accepted" : "REJECTED", vocab, r, (double)p->temperature, p->top_k, (double)p->top_p,
                (double)p->min_p, p->u, got, want, dist);
    }
    if (want < 0 || got < 0) {
        CHECK(got == want && isnan(got_lp) && isnan(want_lp));
        return;
    }
    double ref = got == want ? (double)want_lp : sref_logprob(x, vocab, got);
    double err = fabs((double)got_lp - ref) / (1.0 + fabs(ref));
    cu_note(&worst_logprob, err);
    if (!CHECK(err <= CU_SAMPLE_TOL_LOGPROB))
        fprintf(stderr, "  vocab=%d row %d: logprob %.9g, want %.9g\n", vocab, r, (double)got_lp, ref);
}

static void run_case(int32_t n, int32_t vocab, float scale, uint64_t seed)
{
    int64_t ld = vocab + 5;
    size_t xb = sizeof(float) * (size_t)(n * ld);
    float *x = malloc(xb), *lp_cpu = malloc(sizeof(float) * (size_t)n), *lp_gpu = malloc(sizeof(float) * (size_t)n),
          *lp_again = malloc(sizeof(float) * (size_t)n);
    int32_t *tok_cpu = malloc(sizeof(int32_t) * (size_t)n), *tok_gpu = malloc(sizeof(int32_t) * (size_t)n),
            *tok_again = malloc(sizeof(int32_t) * (size_t)n);
    tmi_sample_row *rows = malloc(sizeof *rows * (size_t)n);
    size_t wsb = tmi_sample_cpu_workspace(vocab, tmi_pool_threads(pool));
    void *ws = malloc(wsb);
    fill_logits(x, n, vocab, ld, scale, seed);
    tmi_rng rng;
    tmi_rng_seed(&rng, seed);
    for (int32_t r = 0; r < n; r++) rows[r] = row_params(r + (int32_t)seed, vocab, tmi_rng_next_double(&rng));
    tmi_exec cpu = {.backend = TM_BACKEND_CPU, .pool = pool, .workspace = ws, .workspace_bytes = wsb};
    tmi_sample_args a = {n, vocab, x, ld, rows, tok_cpu, lp_cpu};
    int ok = CHECK_STATUS(tmi_sample_cpu(&cpu, &a), TM_OK);
    cu_buffers b = {cu_upload(x, xb), cu_upload(rows, sizeof *rows * (size_t)n), cu_upload(NULL, sizeof(int32_t) * (size_t)n),
                    cu_upload(NULL, sizeof(float) * (size_t)n)};
    ok = ok && b.logits && b.rows && b.tokens && b.logprobs && run_gpu(&b, n, vocab, ld, tok_gpu, lp_gpu) &&
         run_gpu(&b, n, vocab, ld, tok_again, lp_again);
    if (ok) {
        for (int32_t r = 0; r < n; r++)
            check_row(x + r * ld, vocab, &rows[r], tok_cpu[r], lp_cpu[r], tok_gpu[r], lp_gpu[r], r);
        /* integer masses and fixed-order sums: a rerun is bit-identical */
        if (!CHECK(memcmp(tok_gpu, tok_again, sizeof(int32_t) * (size_t)n) == 0 &&
                   memcmp(lp_gpu, lp_again, sizeof(float) * (size_t)n) == 0))
            fprintf(stderr, "  n=%d vocab=%d: a second run differs\n", n, vocab);
    }
    cu_free_all(&b);
    free(x); free(lp_cpu); free(lp_gpu); free(lp_again); free(tok_cpu); free(tok_gpu); free(tok_again);
    free(rows); free(ws);
}

static void test_cuda_sample_shapes(void)
{
    static const struct { int32_t n, vocab; float scale; } cases[] = {
        {1, 1, 1.0f},      {3, 2, 1.0f},       {12, 7, 2.0f},      {17, 1000, 8.0f},   {33, 4097, 8.0f},
        {1, 32000, 8.0f},  {64, 32000, 8.0f},  {256, 32000, 8.0f}, {64, 32000, 0.02f}, /* flat: bins past kCap */
        {64, 32000, 30.0f}, /* peaked */        {64, 40000, 8.0f},  /* shared memory on sm_90, not sm_80 */
        {1, 128256, 8.0f}, {64, 128256, 8.0f}, {256, 128256, 8.0f}, {1, 151936, 8.0f}, {64, 151936, 0.02f},
        {256, 151936, 8.0f},
    };
    /* CUTEST_SAMPLE_QUICK=1: a few small cases that still take every path (shared
     * memory and recompute, refine, equal probabilities), for compute-sanitizer */
    static const struct { int32_t n, vocab; float scale; } quick[] = {
        {12, 7, 2.0f}, {17, 1000, 8.0f}, {10, 4097, 8.0f}, {10, 32000, 0.02f}, {10, 60000, 8.0f}, {10, 60000, 0.02f},
    };
    const char *q = getenv("CUTEST_SAMPLE_QUICK");
    int is_quick = q && *q && strcmp(q, "0") != 0;
    size_t count = is_quick ? sizeof quick / sizeof *quick : sizeof cases / sizeof *cases;
    for (size_t i = 0; i < count; i++) {
        if (is_quick) run_case(quick[i].n, quick[i].vocab, quick[i].scale, 2000 + i);
        else run_case(cases[i].n, cases[i].vocab, cases[i].scale, 1000 + i);
    }
    printf("worst sample logprob: %.3g\n", worst_logprob);
    printf("worst sample boundary: %.3g (%ld of %ld sampled rows differ from the CPU, each within the judge's bound)\n",
           worst_boundary, n_mismatch, n_sampled);
}

/* Rows whose parameters break their rule get -1 and NaN; the others are sampled. */
static void test_cuda_sample_bad_rows(void)
{
    enum { V = 100, N = 8 };
    float x[N * V];
    tt_fill_random(x, N * V, 5);
    tmi_sample_row rows[N] = {
        {0.0f, 0, 1.0f, 0.0f, 0.0},  {-1.0f, 0, 1.0f, 0.0f, 0.5}, {1.0f, V + 1, 1.0f, 0.0f, 0.5},
        {1.0f, 0, 0.0f, 0.0f, 0.5},  {1.0f, 0, 1.0f, 2.0f, 0.5},  {1.0f, 0, 1.0f, 0.0f, 1.0},
        {NAN, 0, 1.0f, 0.0f, 0.5},   {1.0f, 0, 1.0f, 0.0f, 0.5},
    };
    cu_buffers b = {cu_upload(x, sizeof x), cu_upload(rows, sizeof rows), cu_upload(NULL, sizeof(int32_t) * N),
                    cu_upload(NULL, sizeof(float) * N)};
    int32_t tok[N];
    float lp[N];
    if (b.logits && b.rows && b.tokens && b.logprobs && run_gpu(&b, N, V, V, tok, lp)) {
        CHECK(tok[0] >= 0 && tok[7] >= 0 && !isnan(lp[0]) && !isnan(lp[7]));
        for (int r = 1; r < 7; r++)
            if (!CHECK(tok[r] == -1 && isnan(lp[r]))) fprintf(stderr, "  bad row %d: token %d\n", r, tok[r]);
    }
    tmi_exec gpu = {.backend = TM_BACKEND_CUDA};
    tmi_sample_args a = {N, V, b.logits, V, b.rows, b.tokens, NULL};
    tmi_sample_args c = a;
    CHECK_STATUS(tmi_sample_cuda(NULL, &a), TM_ERR_INVALID_ARG);
    CHECK_STATUS(tmi_sample_cuda(&gpu, NULL), TM_ERR_INVALID_ARG);
    c.n = -1;
    CHECK_STATUS(tmi_sample_cuda(&gpu, &c), TM_ERR_INVALID_ARG);
    c = a, c.vocab = 0;
    CHECK_STATUS(tmi_sample_cuda(&gpu, &c), TM_ERR_INVALID_ARG);
    c = a, c.vocab = (1 << 19) + 1, c.ld = c.vocab;
    CHECK_STATUS(tmi_sample_cuda(&gpu, &c), TM_ERR_INVALID_ARG);
    c = a, c.ld = V - 1;
    CHECK_STATUS(tmi_sample_cuda(&gpu, &c), TM_ERR_INVALID_ARG);
    c = a, c.tokens = NULL;
    CHECK_STATUS(tmi_sample_cuda(&gpu, &c), TM_ERR_INVALID_ARG);
    c = a, c.n = 0, c.logits = NULL, c.rows = NULL, c.tokens = NULL;
    CHECK_STATUS(tmi_sample_cuda(&gpu, &c), TM_OK);
    cu_free_all(&b);
    const tmi_ops *ops = tmi_ops_get(TM_BACKEND_CUDA);
    CHECK(ops && ops->sample == tmi_sample_cuda);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Median of 50 launches, each between two events, rotating over 4 input sets so
 * the logits are not all served from L2. */
static void time_case(int32_t n, int32_t vocab, int greedy_only, const char *label)
{
    enum { SETS = 4, WARM = 5, REPS = 50 };
    size_t xb = sizeof(float) * (size_t)n * (size_t)vocab;
    float *x = malloc(xb);
    tmi_sample_row *rows = malloc(sizeof *rows * (size_t)n);
    cu_buffers b[SETS];
    memset(b, 0, sizeof b);
    int ok = x && rows;
    tmi_rng rng;
    tmi_rng_seed(&rng, 99);
    for (int32_t r = 0; ok && r < n; r++) rows[r] = row_params(greedy_only ? 0 : r, vocab, tmi_rng_next_double(&rng));
    for (int s = 0; ok && s < SETS; s++) {
        tt_fill_random(x, (long)n * vocab, 500 + s);
        for (size_t i = 0; i < (size_t)n * vocab; i++) x[i] *= 8.0f;
        b[s] = (cu_buffers){cu_upload(x, xb), cu_upload(rows, sizeof *rows * (size_t)n),
                            cu_upload(NULL, sizeof(int32_t) * (size_t)n), cu_upload(NULL, sizeof(float) * (size_t)n)};
        ok = b[s].logits && b[s].rows && b[s].tokens && b[s].logprobs;
    }
    cudaEvent_t start = NULL, stop = NULL;
    ok = ok && CHECK(cudaEventCreate(&start) == cudaSuccess) && CHECK(cudaEventCreate(&stop) == cudaSuccess);
    float ms[REPS];
    tmi_exec gpu = {.backend = TM_BACKEND_CUDA};
    for (int i = 0; ok && i < WARM + REPS; i++) {
        const cu_buffers *s = &b[i % SETS];
        tmi_sample_args a = {n, vocab, s->logits, vocab, s->rows, s->tokens, s->logprobs};
        ok = CHECK(cudaEventRecord(start, 0) == cudaSuccess) && CHECK_STATUS(tmi_sample_cuda(&gpu, &a), TM_OK) &&
             CHECK(cudaEventRecord(stop, 0) == cudaSuccess) && CHECK(cudaEventSynchronize(stop) == cudaSuccess);
        if (ok && i >= WARM) ok = CHECK(cudaEventElapsedTime(&ms[i - WARM], start, stop) == cudaSuccess);
    }
    if (ok) {
        qsort(ms, REPS, sizeof *ms, cmp_float);
        printf("time sample n=%d vocab=%d%s: %.1f us (min %.1f, max %.1f)\n", n, vocab, label,
               1000.0 * ms[REPS / 2], 1000.0 * ms[0], 1000.0 * ms[REPS - 1]);
    }
    if (start) cudaEventDestroy(start);
    if (stop) cudaEventDestroy(stop);
    for (int s = 0; s < SETS; s++) cu_free_all(&b[s]);
    free(x);
    free(rows);
}

static void test_cuda_sample_timing(void)
{
    time_case(256, 32000, 0, "");
    time_case(256, 32000, 1, " greedy");
    time_case(256, 128256, 0, "");
    time_case(256, 151936, 0, "");
    time_case(1, 32000, 0, "");
}

int main(void)
{
    if (tm_cuda_device_count() == 0) {
        tt_skip("no CUDA device");
        return tt_finish();
    }
    if (tmi_pool_create(0, &pool) != TM_OK) return 1;
    RUN(test_cuda_sample_shapes);
    RUN(test_cuda_sample_bad_rows);
    if (!getenv("CUTEST_SAMPLE_QUICK")) RUN(test_cuda_sample_timing);
    tmi_pool_destroy(pool);
    return tt_finish();
}
