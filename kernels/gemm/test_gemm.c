/* test_gemm.c - tmi_gemm_cpu against a double-precision reference written here,
 * with A in fp32 or in B's 16-bit dtype (the reference reads the same rounded
 * values, so the bound is the fp32 summation's either way). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kernels/gemm/gemm.h"
#include "kernels/registry.h"
#include "runtime/threadpool.h"

/* Norm-wise relative error allowed, ||c - ref|| / ||mag|| with mag = |c0| + |bias| +
 * sum |a||b| per element: ||ref|| alone would flag sums that cancel (one output
 * of 257 random terms can be 100x smaller than its terms). */
#define GEMM_REL_TOL 1e-5
/* Per element: |c - ref| <= (k + 2) * u * (|c0| + |bias| + sum |a||b|), the
 * textbook bound of a length-k fp32 dot product (u = 2^-24, doubled for slack). */
#define GEMM_UNIT 1.2e-7

static const float SENTINEL = 12345.0f;

typedef struct gemm_case {
    int64_t m, n, k;
    tm_dtype dtype;
    tm_dtype a_dtype; /* F32, or dtype */
    int bias;      /* 0: none; else bias in dtype */
    int accumulate;
    int pad;       /* extra columns in lda, ldb, ldc */
    tmi_pool *pool;
} gemm_case;

/* x (fp32, [count]) stored as dtype; returns a malloc'd buffer. */
static void *to_dtype(const float *x, int64_t count, tm_dtype dtype)
{
    if (dtype == TM_F32) {
        float *f = malloc((size_t)(count ? count : 1) * sizeof *f);
        memcpy(f, x, (size_t)count * sizeof *f);
        return f;
    }
    uint16_t *h = malloc((size_t)(count ? count : 1) * sizeof *h);
    for (int64_t i = 0; i < count; i++) h[i] = dtype == TM_F16 ? tmi_f32_to_f16(x[i]) : tmi_f32_to_bf16(x[i]);
    return h;
}

static unsigned long long seed_of(const gemm_case *c)
{
    return (unsigned long long)(c->m * 1000003 + c->n * 10007 + c->k * 101 + c->dtype * 7 + c->a_dtype * 3 + c->pad);
}

/* Runs one case and returns 1 when every check passed. */
static int run_case(const gemm_case *c)
{
    int64_t m = c->m, n = c->n, k = c->k;
    int64_t lda = k + c->pad, ldb = n + c->pad, ldc = n + c->pad;
    int threads = tmi_pool_threads(c->pool);
    float *a = malloc((size_t)(m * lda + 1) * sizeof *a);   /* [m][lda] fp32 */
    float *bf = malloc((size_t)(k * ldb + 1) * sizeof *bf); /* [k][ldb] fp32 source of b */
    float *biasf = malloc((size_t)(n + 1) * sizeof *biasf); /* [n] */
    float *c0 = malloc((size_t)(m * ldc + 1) * sizeof *c0); /* [m][ldc] initial C */
    tt_fill_random(a, m * lda, seed_of(c));
    tt_fill_random(bf, k * ldb, seed_of(c) + 1);
    tt_fill_random(biasf, n, seed_of(c) + 2);
    tt_fill_random(c0, m * ldc, seed_of(c) + 3);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = n; j < ldc; j++) c0[i * ldc + j] = SENTINEL;
    void *b = to_dtype(bf, k * ldb, c->dtype);
    void *as = to_dtype(a, m * lda, c->a_dtype); /* [m][lda] a_dtype: what the GEMM reads */
    void *bias = c->bias ? to_dtype(biasf, n, c->dtype) : NULL;
    float *cout = malloc((size_t)(m * ldc + 1) * sizeof *cout);
    memcpy(cout, c0, (size_t)(m * ldc) * sizeof *cout);

    size_t ws_bytes = tmi_gemm_cpu_workspace(m, n, k, threads);
    void *ws = ws_bytes ? malloc(ws_bytes) : NULL;
    tmi_exec ex = {.backend = TM_BACKEND_CPU, .pool = c->pool, .workspace = ws, .workspace_bytes = ws_bytes};
    tmi_gemm_args g = {.m = m, .n = n, .k = k, .a = as, .a_dtype = c->a_dtype, .lda = lda, .b = b,
                       .b_dtype = c->dtype, .ldb = ldb, .bias = bias, .bias_dtype = c->dtype, .c = cout,
                       .ldc = ldc, .accumulate = c->accumulate};
    int ok = CHECK_STATUS(tmi_gemm_cpu(&ex, &g), TM_OK);

    double err2 = 0, mag2 = 0, worst = 0;
    int sentinel_ok = 1;
    for (int64_t i = 0; i < m && ok; i++) {
        for (int64_t j = 0; j < n; j++) {
            double ref = 0, mag = 0;
            for (int64_t p = 0; p < k; p++) {
                double t = (double)tmi_load_f32(as, c->a_dtype, i * lda + p) * tmi_load_f32(b, c->dtype, p * ldb + j);
                ref += t;
                mag += fabs(t);
            }
            if (bias) {
                double bj = tmi_load_f32(bias, c->dtype, j);
                ref += bj;
                mag += fabs(bj);
            }
            if (c->accumulate) {
                ref += c0[i * ldc + j];
                mag += fabs(c0[i * ldc + j]);
            }
            double e = fabs(cout[i * ldc + j] - ref);
            err2 += e * e;
            mag2 += mag * mag;
            double bound = (double)(k + 2) * GEMM_UNIT * mag + 1e-30;
            if (!(e <= bound) && e / bound > worst) worst = e / bound;
        }
        for (int64_t j = n; j < ldc; j++) sentinel_ok &= cout[i * ldc + j] == SENTINEL;
    }
    double rel = mag2 > 0 ? sqrt(err2 / mag2) : sqrt(err2);
    ok &= CHECK(rel < GEMM_REL_TOL);
    ok &= CHECK(worst == 0);
    ok &= CHECK(sentinel_ok);
    if (!ok)
        fprintf(stderr,
                "  case m=%lld n=%lld k=%lld dtype=%d a_dtype=%d bias=%d acc=%d pad=%d threads=%d: rel %.3g, "
                "worst/bound %.3g\n",
                (long long)m, (long long)n, (long long)k, (int)c->dtype, (int)c->a_dtype, c->bias, c->accumulate,
                c->pad, threads, rel, worst);
    free(a);
    free(as);
    free(bf);
    free(biasf);
    free(c0);
    free(b);
    free(bias);
    free(cout);
    free(ws);
    return ok;
}

static tmi_pool *pool2;

/* The brief's grid: every m, n, k, dtype (A fp32 and, for a 16-bit B, A of B's
 * dtype) and thread count, cycling bias, accumulate and padded strides so each
 * shape meets each variant. */
static void test_gemm_grid(void)
{
    static const int64_t ms[] = {0, 1, 2, 5, 17, 64, 130};
    static const int64_t ns[] = {1, 7, 16, 33, 260};
    static const int64_t ks[] = {1, 3, 64, 257};
    static const tm_dtype dts[] = {TM_F32, TM_F16, TM_BF16};
    int failures = 0, variant = 0;
    for (size_t mi = 0; mi < sizeof ms / sizeof *ms; mi++)
        for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++)
            for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++)
                for (size_t di = 0; di < 3; di++)
                    for (int ai = 0; ai < (di ? 2 : 1); ai++)
                        for (int t = 0; t < 2; t++)
                            for (int v = 0; v < 4; v++, variant++) {
                                gemm_case c = {ms[mi], ns[ni], ks[ki], dts[di], ai ? dts[di] : TM_F32, v & 1,
                                               (v >> 1) & 1, (variant % 3) * 5, t ? pool2 : NULL};
                                failures += !run_case(&c);
                                if (failures > 5) return; /* the first few say enough */
                            }
}

/* Shapes past one K block and one N block, and decode shapes with long k. */
static void test_gemm_large(void)
{
    static const int64_t shapes[][3] = {
        {67, 530, 600}, {9, 100, 70}, {1, 300, 1001}, {3, 300, 1001}, {4, 1000, 515}, {6, 257, 300}, {200, 40, 129},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int d = 0; d < 5; d++) { /* B F32, F16, BF16 with fp32 A; F16, BF16 with 16-bit A */
            tm_dtype bd = (tm_dtype)(d < 3 ? d : d - 2), ad = d < 3 ? TM_F32 : bd;
            gemm_case c = {shapes[s][0], shapes[s][1], shapes[s][2], bd, ad, 1, (int)(s & 1), 3, pool2};
            run_case(&c);
        }
}

/* A 16-bit A is converted exactly where it is read, so it must give, bit for bit,
 * what the fp32 A path gives on the same values: on the GEMV path (m <= 8) and
 * the blocked path, with a row tail and a column tail, one and two threads. */
static void test_gemm_a16_matches_f32_bits(void)
{
    static const int64_t ms[] = {1, 3, 8, 9, 70};
    const int64_t n = 45, k = 300, lda = k + 2, ldc = n;
    for (int d = 1; d <= 2; d++)
        for (size_t mi = 0; mi < sizeof ms / sizeof *ms; mi++)
            for (int t = 0; t < 2; t++) {
                tm_dtype dt = (tm_dtype)d;
                int64_t m = ms[mi];
                float *af = malloc((size_t)(m * lda) * sizeof *af), *bf = malloc((size_t)(k * n) * sizeof *bf);
                float *c1 = malloc((size_t)(m * ldc) * sizeof *c1), *c2 = malloc((size_t)(m * ldc) * sizeof *c2);
                tt_fill_random(af, m * lda, 77 + (unsigned long long)(m * 3 + d));
                tt_fill_random(bf, k * n, 78 + (unsigned long long)d);
                uint16_t *a16 = to_dtype(af, m * lda, dt), *b16 = to_dtype(bf, k * n, dt);
                for (int64_t i = 0; i < m * lda; i++) af[i] = tmi_load_f32(a16, dt, i); /* the same values */
                tmi_pool *pool = t ? pool2 : NULL;
                size_t ws_bytes = tmi_gemm_cpu_workspace(m, n, k, tmi_pool_threads(pool));
                void *ws = ws_bytes ? malloc(ws_bytes) : NULL;
                tmi_exec ex = {.backend = TM_BACKEND_CPU, .pool = pool, .workspace = ws, .workspace_bytes = ws_bytes};
                tmi_gemm_args g = {.m = m, .n = n, .k = k, .a = af, .lda = lda, .b = b16, .b_dtype = dt, .ldb = n,
                                   .c = c1, .ldc = ldc};
                CHECK_STATUS(tmi_gemm_cpu(&ex, &g), TM_OK);
                g.a = a16;
                g.a_dtype = dt;
                g.c = c2;
                CHECK_STATUS(tmi_gemm_cpu(&ex, &g), TM_OK);
                if (!CHECK(memcmp(c1, c2, (size_t)(m * ldc) * sizeof *c1) == 0))
                    fprintf(stderr, "  m=%lld %s threads=%d\n", (long long)m, tm_dtype_name(dt), t + 1);
                free(af); free(bf); free(c1); free(c2); free(a16); free(b16); free(ws);
            }
}

static void test_gemm_k0(void)
{
    float c[6] = {1, 2, 3, 4, 5, 6};
    float bias[3] = {10, 20, 30};
    tmi_exec ex = {.backend = TM_BACKEND_CPU};
    tmi_gemm_args g = {.m = 2, .n = 3, .k = 0, .b_dtype = TM_F32, .bias = bias, .bias_dtype = TM_F32,
                       .c = c, .ldc = 3, .accumulate = 1};
    CHECK_STATUS(tmi_gemm_cpu(&ex, &g), TM_OK);
    CHECK(c[0] == 11 && c[2] == 33 && c[5] == 36);
    g.accumulate = 0;
    g.bias = NULL;
    tmi_split_sums s = {.splits = 7}; /* the CPU never defers: it says so and writes C */
    g.defer = &s;
    CHECK_STATUS(tmi_gemm_cpu(&ex, &g), TM_OK);
    CHECK(c[0] == 0 && c[5] == 0);
    CHECK(s.splits == 0);
}

static void test_gemm_errors(void)
{
    float a[64 * 8] = {0}, b[8 * 16] = {0}, c[64 * 16];
    tmi_exec ex = {.backend = TM_BACKEND_CPU};
    tmi_gemm_args g = {.m = 64, .n = 16, .k = 8, .a = a, .lda = 8, .b = b, .b_dtype = TM_F32, .ldb = 16,
                       .c = c, .ldc = 16};
    char ws[64];
    if (tmi_gemm_cpu_workspace(64, 16, 8, 1) > 0) { /* the packed path (builds without AVX2 pack nothing) */
        CHECK_STATUS(tmi_gemm_cpu(&ex, &g), TM_ERR_INVALID_ARG); /* no workspace */
        CHECK(strstr(tm_last_error(), "workspace") != NULL);
        ex.workspace = ws;
        ex.workspace_bytes = sizeof ws;
        CHECK_STATUS(tmi_gemm_cpu(&ex, &g), TM_ERR_INVALID_ARG); /* too small */
    }
    ex.workspace = ws;
    ex.workspace_bytes = sizeof ws;
    g.m = 1; /* the GEMV path needs none */
    CHECK_STATUS(tmi_gemm_cpu(&ex, &g), TM_OK);
    g.ldb = 15;
    CHECK_STATUS(tmi_gemm_cpu(&ex, &g), TM_ERR_INVALID_ARG);
    CHECK(strstr(tm_last_error(), "ldb") != NULL);
    g.ldb = 16;
    g.lda = 7;
    CHECK_STATUS(tmi_gemm_cpu(&ex, &g), TM_ERR_INVALID_ARG);
    g.lda = 8;
    g.a_dtype = TM_F16; /* a 16-bit A needs the same 16-bit B */
    CHECK_STATUS(tmi_gemm_cpu(&ex, &g), TM_ERR_INVALID_ARG);
    CHECK(strstr(tm_last_error(), "a dtype must be F32 or equal to b dtype (F32), got F16") != NULL);
    g.b_dtype = TM_BF16;
    CHECK_STATUS(tmi_gemm_cpu(&ex, &g), TM_ERR_INVALID_ARG);
    CHECK(strstr(tm_last_error(), "a dtype") != NULL);
    g.a_dtype = TM_I8;
    CHECK_STATUS(tmi_gemm_cpu(&ex, &g), TM_ERR_INVALID_ARG);
    g.a_dtype = TM_BF16;
    CHECK_STATUS(tmi_gemm_cpu(&ex, &g), TM_OK);
    g.a_dtype = TM_F32;
    CHECK_STATUS(tmi_gemm_cpu(&ex, &g), TM_OK); /* fp32 A with any B */
    g.b_dtype = TM_I32;
    CHECK_STATUS(tmi_gemm_cpu(&ex, &g), TM_ERR_INVALID_ARG);
    g.b_dtype = TM_F32;
    g.m = -1;
    CHECK_STATUS(tmi_gemm_cpu(&ex, &g), TM_ERR_INVALID_ARG);
    g.m = 1;
    g.bias = b;
    g.bias_dtype = TM_I8;
    CHECK_STATUS(tmi_gemm_cpu(&ex, &g), TM_ERR_INVALID_ARG);
    g.bias = NULL;
    g.n = 0; /* empty: nothing is read */
    g.ldc = 0;
    CHECK_STATUS(tmi_gemm_cpu(&ex, &g), TM_OK);
    /* the size grows with every dimension, so sizing for the largest shape is enough */
    CHECK(tmi_gemm_cpu_workspace(512, 4096, 4096, 2) >= tmi_gemm_cpu_workspace(64, 260, 257, 2));
    CHECK(tmi_gemm_cpu_workspace(512, 4096, 4096, 2) >= tmi_gemm_cpu_workspace(512, 4096, 4096, 1));
}

/* a_src on the CPU twin: the op runs first and writes A, so the product is the one
 * of the op's output read back (the same bits); a merge source is the CUDA
 * attention's; a source whose output is not A is refused. */
static void test_gemm_a_src(void)
{
    enum { M = 2, K = 40, N = 24 };
    tmi_pool *pool = NULL;
    if (!CHECK_STATUS(tmi_pool_create(2, &pool), TM_OK)) return;
    float x[M * K], gu[M * 2 * K], bf[K * N], c1[M * N], c2[M * N];
    uint16_t a[M * K], b[K * N], w[K];
    tt_fill_random(x, M * K, 1);
    tt_fill_random(gu, M * 2 * K, 2);
    tt_fill_random(bf, K * N, 3);
    for (int i = 0; i < K * N; i++) b[i] = tmi_f32_to_f16(bf[i]);
    for (int i = 0; i < K; i++) w[i] = tmi_f32_to_f16(1.0f + 0.01f * (float)i);
    size_t ws_bytes = tmi_gemm_cpu_workspace(M, N, K, 2);
    void *ws = malloc(ws_bytes + 1);
    tmi_exec ex = {.backend = TM_BACKEND_CPU, .pool = pool, .workspace = ws, .workspace_bytes = ws_bytes};
    tmi_rmsnorm_args r = {.n = M, .d = K, .x = x, .ldx = K, .weight = w, .w_dtype = TM_F16, .eps = 1e-5f, .out = a,
                          .out_dtype = TM_F16, .ldo = K};
    tmi_silu_mul_args sm = {.n = M, .d = K, .gate = gu, .ldg = 2 * K, .up = gu + K, .ldu = 2 * K, .out = a,
                            .ldo = K, .out_dtype = TM_F16};
    tmi_gemm_a_src srcs[2] = {{.kind = TMI_GEMM_A_RMSNORM, .norm = &r}, {.kind = TMI_GEMM_A_SILU_MUL, .silu = &sm}};
    tmi_gemm_args g = {.m = M, .n = N, .k = K, .a = a, .a_dtype = TM_F16, .lda = K, .b = b, .b_dtype = TM_F16,
                       .ldb = N, .c = c1, .ldc = N};
    for (int i = 0; i < 2; i++) {
        memset(a, 0xff, sizeof a);
        g.a_src = &srcs[i], g.c = c1;
        CHECK_STATUS(tmi_gemm_cpu(&ex, &g), TM_OK);
        memset(a, 0xff, sizeof a);
        CHECK_STATUS(i == 0 ? tmi_rmsnorm_cpu(&ex, &r) : tmi_silu_mul_cpu(&ex, &sm), TM_OK);
        g.a_src = NULL, g.c = c2;
        CHECK_STATUS(tmi_gemm_cpu(&ex, &g), TM_OK);
        CHECK(memcmp(c1, c2, sizeof c1) == 0);
    }
    g.a_src = &srcs[0];
    r.ldo = K + 1;
    CHECK_STATUS(tmi_gemm_cpu(&ex, &g), TM_ERR_INVALID_ARG);
    r.ldo = K, r.n = 1;
    CHECK_STATUS(tmi_gemm_cpu(&ex, &g), TM_ERR_INVALID_ARG);
    r.n = M;
    tmi_attn_merge mg = {.nsplit = 2, .split_len = 64, .n_seq = M, .n_head = 1, .head_dim = K, .out = a, .ldo = K,
                         .out_dtype = TM_F16};
    tmi_gemm_a_src merge = {.kind = TMI_GEMM_A_ATTN_MERGE, .merge = &mg};
    g.a_src = &merge;
    CHECK_STATUS(tmi_gemm_cpu(&ex, &g), TM_ERR_UNSUPPORTED);
    mg.nsplit = 0; /* nothing left: A is in memory */
    CHECK_STATUS(tmi_gemm_cpu(&ex, &g), TM_OK);
    free(ws);
    tmi_pool_destroy(pool);
}

static void test_gemm_registry_and_bench(void)
{
    const tmi_ops *ops = tmi_ops_get(TM_BACKEND_CPU);
    CHECK(ops && ops->gemm == tmi_gemm_cpu);
    double gf = 0;
    CHECK_STATUS(tm_bench_gemm_cpu(32, 48, 40, TM_F16, 2, 2, &gf), TM_OK);
    CHECK(gf > 0);
    CHECK_STATUS(tm_bench_gemm_cpu(1, 48, 40, TM_BF16, 1, 1, &gf), TM_OK);
    CHECK_STATUS(tm_bench_gemm_cpu(0, 48, 40, TM_F32, 1, 1, &gf), TM_ERR_INVALID_ARG);
    CHECK_STATUS(tm_bench_gemm_cpu(8, 8, 8, TM_I32, 1, 1, &gf), TM_ERR_INVALID_ARG);
    CHECK_STATUS(tm_bench_gemm_cpu(8, 8, 8, TM_F32, 1, 0, &gf), TM_ERR_INVALID_ARG);
    CHECK_STATUS(tm_bench_gemm_cpu(8, 8, 8, TM_F32, -1, 1, &gf), TM_ERR_INVALID_ARG);
}

int main(void)
{
    if (tmi_pool_create(2, &pool2) != TM_OK) {
        fprintf(stderr, "pool: %s\n", tm_last_error());
        return 1;
    }
    RUN(test_gemm_grid);
    RUN(test_gemm_large);
    RUN(test_gemm_a16_matches_f32_bits);
    RUN(test_gemm_k0);
    RUN(test_gemm_errors);
    RUN(test_gemm_a_src);
    RUN(test_gemm_registry_and_bench);
    tmi_pool_destroy(pool2);
    return tt_finish();
}
