/* test_gemm_w4a16.c - the int4 GEMM (both paths) against dequantize-then-fp32. */
#include <math.h>
#include <stdlib.h>

#include "harness.h"
#include "kernels/gemm_w4a16/gemm_w4a16.h"
#include "runtime/threadpool.h"

typedef struct case_data {
    int64_t m, n, k;
    int32_t group;
    float *a;          /* [m][k] */
    int32_t *qweight;  /* [k/8][n] */
    uint16_t *sz;      /* [k/group][n][2] */
    float *w;          /* [k][n] dequantized reference */
    float *bias;       /* [n] */
} case_data;

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

static case_data make_case(int64_t m, int64_t n, int64_t k, int32_t group, uint64_t seed)
{
    case_data d = {.m = m, .n = n, .k = k, .group = group};
    d.a = malloc(sizeof(float) * (size_t)(m * k + 1));
    d.qweight = calloc((size_t)(k / 8 * n + 1), sizeof(int32_t));
    d.sz = malloc(sizeof(uint16_t) * (size_t)(k / group * n * 2 + 2));
    d.w = malloc(sizeof(float) * (size_t)(k * n + 1));
    d.bias = malloc(sizeof(float) * (size_t)(n + 1));
    tt_fill_random(d.a, (long)(m * k), seed);
    tt_fill_random(d.bias, (long)n, seed + 1);
    uint64_t s = seed * 7 + 3;
    for (int64_t gi = 0; gi < k / group; gi++)
        for (int64_t j = 0; j < n; j++) {
            float scale = 0.01f + (float)(lcg(&s) % 1000) / 20000.0f;
            float zero = (float)(lcg(&s) % 16);
            d.sz[(gi * n + j) * 2] = tmi_f32_to_f16(scale);
            d.sz[(gi * n + j) * 2 + 1] = tmi_f32_to_f16(zero);
        }
    for (int64_t i = 0; i < k; i++)
        for (int64_t j = 0; j < n; j++) {
            uint32_t q = (uint32_t)(lcg(&s) % 16);
            d.qweight[(i / 8) * n + j] |= (int32_t)(q << (4 * (i % 8)));
            const uint16_t *sz = d.sz + ((i / group) * n + j) * 2;
            d.w[i * n + j] = ((float)q - tmi_f16_to_f32(sz[1])) * tmi_f16_to_f32(sz[0]);
        }
    return d;
}

static void free_case(case_data *d)
{
    free(d->a);
    free(d->qweight);
    free(d->sz);
    free(d->w);
    free(d->bias);
}

/* Max |got - ref| / (max |ref| + 1e-3) over C, with ref in double from the dequantized W. */
static double run_case(const case_data *d, tmi_pool *pool, int scalar, int with_bias, int accumulate)
{
    float *c = malloc(sizeof(float) * (size_t)(d->m * d->n + 1));
    double *ref = malloc(sizeof(double) * (size_t)(d->m * d->n + 1));
    for (int64_t i = 0; i < d->m * d->n; i++) c[i] = 0.5f;
    for (int64_t i = 0; i < d->m; i++)
        for (int64_t j = 0; j < d->n; j++) {
            double s = (with_bias ? d->bias[j] : 0.0) + (accumulate ? 0.5 : 0.0);
            for (int64_t p = 0; p < d->k; p++) s += (double)d->a[i * d->k + p] * d->w[p * d->n + j];
            ref[i * d->n + j] = s;
        }
    tmi_gemm_w4a16_args g = {
        .m = d->m, .n = d->n, .k = d->k, .a = d->a, .lda = d->k, .qweight = d->qweight, .scales_zeros = d->sz,
        .group = d->group, .bias = with_bias ? d->bias : NULL, .bias_dtype = TM_F32, .c = c, .ldc = d->n,
        .accumulate = accumulate,
    };
    tmi_exec ex = {.backend = TM_BACKEND_CPU, .pool = pool};
    tm_status st = scalar ? tmi_gemm_w4a16_cpu_scalar(&ex, &g) : tmi_gemm_w4a16_cpu(&ex, &g);
    CHECK_STATUS(st, TM_OK);
    double max_err = 0.0, max_ref = 0.0;
    for (int64_t i = 0; i < d->m * d->n; i++) {
        double e = fabs(c[i] - ref[i]);
        if (e > max_err) max_err = e;
        if (fabs(ref[i]) > max_ref) max_ref = fabs(ref[i]);
    }
    free(c);
    free(ref);
    return max_err / (max_ref + 1e-3);
}

static void test_shapes(void)
{
    tmi_pool *pool = NULL;
    CHECK_STATUS(tmi_pool_create(2, &pool), TM_OK);
    const int64_t ms[] = {1, 2, 3, 7, 8, 9, 33, 65, 130};
    const int64_t ns[] = {8, 32, 40, 64, 100, 384};
    const int32_t groups[] = {32, 64, 128};
    uint64_t seed = 11;
    for (size_t gi = 0; gi < 3; gi++)
        for (size_t mi = 0; mi < sizeof ms / sizeof *ms; mi++)
            for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++) {
                int64_t k = groups[gi] * (1 + (int64_t)(mi % 3));
                case_data d = make_case(ms[mi], ns[ni], k, groups[gi], seed++);
                /* fp32 sums of up to 384 terms against a double reference: 1e-5 relative */
                double e1 = run_case(&d, pool, 0, (int)(mi & 1), (int)(ni & 1));
                double e2 = run_case(&d, pool, 1, (int)(ni & 1), (int)(mi & 1));
                if (!CHECK(e1 < 1e-5 && e2 < 1e-5))
                    fprintf(stderr, "  m %lld n %lld k %lld group %d: rel err %g (simd) %g (scalar)\n",
                            (long long)d.m, (long long)d.n, (long long)k, d.group, e1, e2);
                free_case(&d);
            }
    tmi_pool_destroy(pool);
}

static void test_empty_and_k0(void)
{
    float c[4] = {1, 2, 3, 4}, bias[4] = {1, 1, 1, 1};
    tmi_exec ex = {.backend = TM_BACKEND_CPU};
    tmi_gemm_w4a16_args g = {.m = 0, .n = 4, .k = 0, .group = 32, .c = c, .ldc = 4};
    CHECK_STATUS(tmi_gemm_w4a16_cpu(&ex, &g), TM_OK);
    CHECK(c[0] == 1.0f);
    g.m = 1;
    g.bias = bias;
    g.bias_dtype = TM_F32;
    g.accumulate = 1;
    CHECK_STATUS(tmi_gemm_w4a16_cpu(&ex, &g), TM_OK);
    CHECK(c[0] == 2.0f && c[3] == 5.0f);
}

static void test_rejects(void)
{
    float a[64] = {0}, c[8] = {0};
    int32_t q[64] = {0};
    uint16_t sz[64] = {0};
    tmi_exec ex = {.backend = TM_BACKEND_CPU};
    tmi_gemm_w4a16_args g = {.m = 1, .n = 8, .k = 64, .a = a, .lda = 64, .qweight = q, .scales_zeros = sz,
                             .group = 48, .c = c, .ldc = 8};
    CHECK_STATUS(tmi_gemm_w4a16_cpu(&ex, &g), TM_ERR_INVALID_ARG);
    g.group = 128; /* does not divide k */
    CHECK_STATUS(tmi_gemm_w4a16_cpu(&ex, &g), TM_ERR_INVALID_ARG);
    g.group = 32;
    g.lda = 10;
    CHECK_STATUS(tmi_gemm_w4a16_cpu(&ex, &g), TM_ERR_INVALID_ARG);
    g.lda = 64;
    g.qweight = NULL;
    CHECK_STATUS(tmi_gemm_w4a16_cpu(&ex, &g), TM_ERR_INVALID_ARG);
}

int main(void)
{
    RUN(test_shapes);
    RUN(test_empty_and_k0);
    RUN(test_rejects);
    return tt_finish();
}
