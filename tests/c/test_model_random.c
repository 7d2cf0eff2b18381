/* test_model_random.c - tm_model_create_random: the shape is the params', the
 * weights are deterministic in the seed (same seed, same logits; another seed,
 * others), every dtype runs, and the counted weight bytes are the shapes' sum.
 * TMRUN_TEST_BACKEND=cuda runs the same model on the GPU and checks it gives the
 * CPU model's logits (the noise is the same on both backends). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "tmrun.h"

static tm_model_params shape(tm_backend backend)
{
    tm_model_params p = tm_model_default_params();
    p.vocab_size = 97;
    p.hidden_size = 64;
    p.num_layer = 2;
    p.head_num = 4;
    p.kv_head_num = 2;
    p.size_per_head = 16;
    p.inter_size = 96;
    p.max_position_embeddings = 64;
    p.num_threads = 2;
    p.backend = backend;
    return p;
}

/* Each step's logits of a 5-token prompt and then `steps` single tokens, into
 * out[(steps + 1) * 97]. */
static int decode_steps(tm_model *m, int steps, int32_t block_len, float *out)
{
    static const int32_t prompt[5] = {3, 50, 7, 96, 11};
    tm_context *ctx = NULL;
    tm_context_params cp = tm_context_default_params();
    cp.max_tokens = 16 + steps;
    cp.block_len = block_len;
    int ok = CHECK_STATUS(tm_context_create(m, &cp, &ctx), TM_OK) &&
             CHECK_STATUS(tm_context_eval(ctx, prompt, 5, out, 0), TM_OK);
    for (int t = 1; ok && t <= steps; t++) {
        int32_t tok = (t * 29 + 1) % 97;
        ok = CHECK_STATUS(tm_context_eval(ctx, &tok, 1, out + (size_t)t * 97, 0), TM_OK);
    }
    tm_context_destroy(ctx);
    return ok;
}

/* Logits of the last of 5 prompt tokens, into out[97]. */
static int eval(tm_model *m, float *out) { return decode_steps(m, 0, 4, out); }

static double max_abs_diff(const float *a, const float *b, int n)
{
    double d = 0;
    for (int i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (isnan(e)) return INFINITY;
        if (e > d) d = e;
    }
    return d;
}

static void test_random_deterministic(void)
{
    tm_model_params p = shape(TM_BACKEND_CPU);
    float a[97], b[97], c[97];
    tm_model *m1 = NULL, *m2 = NULL, *m3 = NULL;
    CHECK_STATUS(tm_model_create_random(&p, TM_F16, 7, &m1), TM_OK);
    CHECK_STATUS(tm_model_create_random(&p, TM_F16, 7, &m2), TM_OK);
    CHECK_STATUS(tm_model_create_random(&p, TM_F16, 8, &m3), TM_OK);
    if (m1 && m2 && m3 && eval(m1, a) && eval(m2, b) && eval(m3, c)) {
        CHECK(memcmp(a, b, sizeof a) == 0);
        CHECK(max_abs_diff(a, c, 97) > 1e-3);
        double spread = 0;
        for (int i = 0; i < 97; i++) spread += fabs(a[i] - a[0]);
        CHECK(spread > 1e-2); /* not a constant row: the weights are noise, not zeros */
    }
    /* counted bytes: embedding + output + norm, and per layer qkv, o, gate, up, down and two norms, all fp16 */
    int64_t hd = 16, q = 4 * hd, kv = 2 * hd;
    int64_t want = 2 * (97 * 64 * 2 + 64) + 2 * (64 * (q + 2 * kv) + q * 64 + 3 * 64 * 96 + 2 * 64) * 2;
    CHECK(tm_model_weight_bytes(m1) == want);
    CHECK(tm_model_param_count(m1) == 2 * 97 * 64 + 64 + 2 * (64 * (q + 2 * kv) + q * 64 + 3 * 64 * 96 + 2 * 64));
    tm_model_destroy(m1);
    tm_model_destroy(m2);
    tm_model_destroy(m3);
}

static void test_random_dtypes(void)
{
    tm_model_params p = shape(TM_BACKEND_CPU);
    float ref[97], got[97];
    tm_model *m = NULL;
    CHECK_STATUS(tm_model_create_random(&p, TM_F32, 3, &m), TM_OK);
    int ok = m && eval(m, ref);
    tm_model_destroy(m);
    for (int dt = TM_F16; dt <= TM_BF16 && ok; dt++) {
        m = NULL;
        CHECK_STATUS(tm_model_create_random(&p, (tm_dtype)dt, 3, &m), TM_OK);
        if (m && eval(m, got)) {
            /* the same noise rounded to 16 bits: close to the fp32 model, not equal */
            double d = max_abs_diff(ref, got, 97);
            CHECK(d > 0 && d < (dt == TM_F16 ? 0.05 : 0.3));
        }
        tm_model_destroy(m);
    }
}

static void test_random_errors(void)
{
    tm_model_params p = shape(TM_BACKEND_CPU);
    tm_model *m = NULL;
    CHECK_STATUS(tm_model_create_random(&p, TM_I8, 1, &m), TM_ERR_INVALID_ARG);
    CHECK(strstr(tm_last_error(), "dtype") != NULL);
    CHECK_STATUS(tm_model_create_random(NULL, TM_F16, 1, &m), TM_ERR_INVALID_ARG);
    p.group_size = 128;
    CHECK_STATUS(tm_model_create_random(&p, TM_F16, 1, &m), TM_ERR_UNSUPPORTED);
    p = shape(TM_BACKEND_CPU);
    p.kv_head_num = 3; /* not a divisor of head_num: the params' own check */
    CHECK_STATUS(tm_model_create_random(&p, TM_F16, 1, &m), TM_ERR_INVALID_ARG);
    CHECK(m == NULL);
}

/* The CUDA model of a seed is the CPU model of that seed. */
static void test_random_cuda_matches_cpu(void)
{
    const char *backend = getenv("TMRUN_TEST_BACKEND");
    if (!backend || strcmp(backend, "cuda") != 0) return;
    for (int dt = TM_F32; dt <= TM_BF16; dt++) {
        tm_model_params pc = shape(TM_BACKEND_CPU), pg = shape(TM_BACKEND_CUDA);
        tm_model *mc = NULL, *mg = NULL;
        float ref[97], got[97];
        CHECK_STATUS(tm_model_create_random(&pc, (tm_dtype)dt, 5, &mc), TM_OK);
        CHECK_STATUS(tm_model_create_random(&pg, (tm_dtype)dt, 5, &mg), TM_OK);
        if (mc && mg && eval(mc, ref) && eval(mg, got)) {
            double d = max_abs_diff(ref, got, 97), scale = 0;
            for (int i = 0; i < 97; i++) scale = fmax(scale, fabs(ref[i]));
            printf("random model dtype %d: cuda vs cpu max|d| %.3g (max|ref| %.3g)\n", dt, d, scale);
            /* fp32: rounding only; 16-bit: activations rounded to the weight dtype on the GPU */
            CHECK(d < (dt == TM_F32 ? 1e-4 : dt == TM_F16 ? 2e-2 : 1e-1) * (scale > 1 ? scale : 1));
        }
        tm_model_destroy(mc);
        tm_model_destroy(mg);
    }
}

/* Each step's logits of a 40-token prompt and then 260 single tokens (decode
 * steps, which the CUDA forward replays as graphs, across the 256-key bound where
 * attention's split plan changes), into out[301][97]. */
static int decode_run(tm_model *m, float *out)
{
    tm_context *ctx = NULL;
    tm_context_params cp = tm_context_default_params();
    cp.max_tokens = 320;
    cp.block_len = 16;
    int32_t prompt[40];
    for (int i = 0; i < 40; i++) prompt[i] = (i * 37 + 5) % 97;
    int ok = CHECK_STATUS(tm_context_create(m, &cp, &ctx), TM_OK) &&
             CHECK_STATUS(tm_context_eval(ctx, prompt, 40, out, 0), TM_OK);
    for (int t = 1; ok && t <= 260; t++) {
        int32_t tok = (t * 11 + 3) % 97;
        ok = CHECK_STATUS(tm_context_eval(ctx, &tok, 1, out + (size_t)t * 97, 0), TM_OK);
    }
    tm_context_destroy(ctx);
    return ok;
}

/* CUDA graph replay computes what the eager steps compute, bit for bit. */
static void test_random_cuda_graphs_match_eager(void)
{
    const char *backend = getenv("TMRUN_TEST_BACKEND");
    if (!backend || strcmp(backend, "cuda") != 0) return;
    static float eager[261 * 97], graph[261 * 97];
    for (int dt = TM_F32; dt <= TM_BF16; dt += 2) {
        tm_model_params p = shape(TM_BACKEND_CUDA);
        p.max_position_embeddings = 512;
        tm_model *m = NULL;
        if (!CHECK_STATUS(tm_model_create_random(&p, (tm_dtype)dt, 9, &m), TM_OK)) continue;
        /* each runner has its own GEMM handle, which picks its cuBLASLt kernels by timing
           (gemm_tune_cuda.cu): two runners may differ in the last bits for that reason
           alone, so the comparison takes cublasGemmEx in both */
        setenv("TMRUN_GEMM_TUNE", "0", 1);
        setenv("TMRUN_CUDA_GRAPHS", "0", 1);
        int ok = decode_run(m, eager);
        setenv("TMRUN_CUDA_GRAPHS", "require", 1); /* a capture that fails is an error, not eager */
        ok = ok && decode_run(m, graph);
        unsetenv("TMRUN_CUDA_GRAPHS");
        unsetenv("TMRUN_GEMM_TUNE");
        int first = -1;
        for (int t = 0; ok && t <= 260 && first < 0; t++)
            if (memcmp(eager + (size_t)t * 97, graph + (size_t)t * 97, 97 * sizeof(float))) first = t;
        printf("cuda graphs, dtype %d: %s (first differing step %d)\n", dt, first < 0 ? "same bits" : "DIFFERENT", first);
        CHECK(ok && first < 0);
        tm_model_destroy(m);
    }
}

/* A model wide enough (k >= 512) that batch-1 decode GEMMs split k, so on CUDA the
 * QKV and gate/up projections leave their splits to kv_write and silu_mul
 * (TMRUN_GEMM_DEFER, gemm.h), and the GEMMs take the norms, silu_mul and (past 64
 * keys, two splits) attention's merge before them (TMRUN_GEMM_FUSE, gemm.h's
 * a_src): 80 decode steps on CUDA give the CPU's logits, and the same bits as
 * without the deferral and without the fusion; replayed graphs give the eager
 * steps'. */
static void test_random_cuda_wide_decode(void)
{
    const char *backend = getenv("TMRUN_TEST_BACKEND");
    if (!backend || strcmp(backend, "cuda") != 0) return;
    enum { STEPS = 80 };
    static float ref[(STEPS + 1) * 97], got[(STEPS + 1) * 97], plain[(STEPS + 1) * 97], eager[(STEPS + 1) * 97];
    static float unfused[(STEPS + 1) * 97];
    for (int dt = TM_F16; dt <= TM_BF16; dt++) {
        tm_model_params pc = shape(TM_BACKEND_CPU), pg = shape(TM_BACKEND_CUDA);
        pc.hidden_size = pg.hidden_size = 512;
        pc.head_num = pg.head_num = 8;
        pc.kv_head_num = pg.kv_head_num = 4;
        pc.size_per_head = pg.size_per_head = 64;
        pc.inter_size = pg.inter_size = 1376;
        tm_model *mc = NULL, *mg = NULL;
        int ok = CHECK_STATUS(tm_model_create_random(&pc, (tm_dtype)dt, 13, &mc), TM_OK) &&
                 CHECK_STATUS(tm_model_create_random(&pg, (tm_dtype)dt, 13, &mg), TM_OK);
        setenv("TMRUN_GEMM_TUNE", "0", 1);
        ok = ok && decode_steps(mc, STEPS, 16, ref) && decode_steps(mg, STEPS, 16, got);
        setenv("TMRUN_GEMM_DEFER", "0", 1);
        ok = ok && decode_steps(mg, STEPS, 16, plain);
        unsetenv("TMRUN_GEMM_DEFER");
        setenv("TMRUN_GEMM_FUSE", "0", 1);
        ok = ok && decode_steps(mg, STEPS, 16, unfused);
        unsetenv("TMRUN_GEMM_FUSE");
        setenv("TMRUN_CUDA_GRAPHS", "0", 1);
        ok = ok && decode_steps(mg, STEPS, 16, eager);
        unsetenv("TMRUN_CUDA_GRAPHS");
        unsetenv("TMRUN_GEMM_TUNE");
        if (ok) {
            double scale = 0;
            for (int i = 0; i < (STEPS + 1) * 97; i++) scale = fmax(scale, fabs(ref[i]));
            double d_cpu = max_abs_diff(ref, got, (STEPS + 1) * 97), d_plain = max_abs_diff(plain, got, (STEPS + 1) * 97);
            double d_fused = max_abs_diff(unfused, got, (STEPS + 1) * 97);
            int same = memcmp(got, eager, sizeof got) == 0, same_plain = memcmp(got, plain, sizeof got) == 0;
            int same_fused = memcmp(got, unfused, sizeof got) == 0;
            printf("wide random model dtype %d, %d decode steps: cuda vs cpu max|d| %.3g, deferred vs not %.3g, "
                   "fused vs not %.3g (max|ref| %.3g), graphs %s eager\n", dt, STEPS, d_cpu, d_plain, d_fused, scale,
                   same ? "==" : "!=");
            double tol = (dt == TM_F16 ? 2e-2 : 1e-1) * (scale > 1 ? scale : 1);
            CHECK(d_cpu < tol);
            CHECK(same_plain);
            CHECK(same_fused);
            CHECK(same);
        }
        tm_model_destroy(mc);
        tm_model_destroy(mg);
    }
}

int main(void)
{
    RUN(test_random_deterministic);
    RUN(test_random_dtypes);
    RUN(test_random_errors);
    RUN(test_random_cuda_matches_cpu);
    RUN(test_random_cuda_graphs_match_eager);
    RUN(test_random_cuda_wide_decode);
    return tt_finish();
}
