/* test_silu_mul.c - tmi_silu_mul_cpu against a double-precision reference. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kernels/test_util.h"
#include "kernels/registry.h"
#include "kernels/silu_mul/silu_mul.h"
#include "runtime/threadpool.h"

/* ||out - ref|| / ||ref||: expf (< 1 ulp) and three fp32 roundings. */
#define SILU_REL_TOL 1e-6

static tmi_pool *pool2;

/* scale widens the inputs so that expf's overflow side (x << 0) is covered. */
static void run_case(int64_t n, int64_t d, float scale, int in_place, tmi_pool *pool)
{
    int64_t ldg = d + 3, ldu = d + 1, ldo = in_place ? ldg : d;
    float *gate = malloc((size_t)(n * ldg + 1) * sizeof *gate); /* [n][ldg] */
    float *g0 = malloc((size_t)(n * ldg + 1) * sizeof *g0);
    float *up = malloc((size_t)(n * ldu + 1) * sizeof *up);     /* [n][ldu] */
    float *out = in_place ? gate : malloc((size_t)(n * ldo + 1) * sizeof *out);
    tt_fill_random(gate, n * ldg, (unsigned long long)(n + 3 * d));
    tt_fill_random(up, n * ldu, (unsigned long long)(n + 5 * d));
    for (int64_t i = 0; i < n * ldg; i++) gate[i] *= scale;
    memcpy(g0, gate, (size_t)(n * ldg) * sizeof *gate);
    if (!in_place)
        for (int64_t i = 0; i < n * ldo; i++) out[i] = NAN;
    tmi_exec ex = {.backend = TM_BACKEND_CPU, .pool = pool};
    tmi_silu_mul_args a = {.n = n, .d = d, .gate = gate, .ldg = ldg, .up = up, .ldu = ldu, .out = out, .ldo = ldo};
    if (CHECK_STATUS(tmi_silu_mul_cpu(&ex, &a), TM_OK)) {
        double err2 = 0, ref2 = 0;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < d; j++) {
                double g = g0[i * ldg + j];
                double ref = g / (1.0 + exp(-g)) * up[i * ldu + j];
                double e = out[i * ldo + j] - ref;
                err2 += e * e;
                ref2 += ref * ref;
            }
        double rel = ref2 > 0 ? sqrt(err2 / ref2) : sqrt(err2);
        if (!CHECK(rel < SILU_REL_TOL))
            fprintf(stderr, "  n=%lld d=%lld scale=%g: rel %.3g\n", (long long)n, (long long)d, scale, rel);
    }
    free(gate);
    free(g0);
    free(up);
    if (!in_place) free(out);
}

static void test_silu_mul_shapes(void)
{
    static const int64_t shapes[][2] = {{0, 5}, {5, 0}, {1, 1}, {3, 17}, {64, 4096}, {513, 1000}, {2, 11008}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int in_place = 0; in_place < 2; in_place++) {
            run_case(shapes[s][0], shapes[s][1], 4.0f, in_place, in_place ? pool2 : NULL);
            run_case(shapes[s][0], shapes[s][1], 120.0f, in_place, pool2);
        }
}

/* A 16-bit output is the fp32 output rounded once: bit-identical to rounding it. */
static void test_silu_mul_out_dtype(void)
{
    int64_t n = 4, d = 257, ldo = d + 3;
    float *g = malloc((size_t)(n * d) * sizeof *g), *u = malloc((size_t)(n * d) * sizeof *u);
    float *ref = malloc((size_t)(n * d) * sizeof *ref);
    uint16_t *got = malloc((size_t)(n * ldo) * sizeof *got);
    tt_fill_random(g, n * d, 81);
    tt_fill_random(u, n * d, 82);
    for (int64_t i = 0; i < n * d; i++) g[i] *= 8.0f;
    tmi_exec ex = {.backend = TM_BACKEND_CPU, .pool = pool2};
    for (int od = TM_F16; od <= TM_BF16; od++) {
        tmi_silu_mul_args a = {.n = n, .d = d, .gate = g, .ldg = d, .up = u, .ldu = d, .out = ref, .ldo = d};
        CHECK_STATUS(tmi_silu_mul_cpu(&ex, &a), TM_OK);
        memset(got, 0xff, (size_t)(n * ldo) * sizeof *got);
        a.out = got;
        a.ldo = ldo;
        a.out_dtype = (tm_dtype)od;
        CHECK_STATUS(tmi_silu_mul_cpu(&ex, &a), TM_OK);
        CHECK(tt_rounding_mismatches(got, ldo, ref, (tm_dtype)od, n, d) == 0);
    }
    tmi_silu_mul_args e = {.n = 1, .d = 4, .gate = g, .ldg = 4, .up = u, .ldu = 4, .out = got, .ldo = 4,
                           .out_dtype = TM_I32};
    CHECK_STATUS(tmi_silu_mul_cpu(&ex, &e), TM_ERR_INVALID_ARG);
    CHECK(strstr(tm_last_error(), "out dtype") != NULL);
    free(g);
    free(u);
    free(ref);
    free(got);
}

/* With split sums (common.h) the op reads gate and up as the sums: bit for bit the
 * op over the C they add up to, never reading C itself (NaN here); sums that do
 * not hold gate and up, or cover fewer rows, fail. */
static void test_silu_mul_split_sums(void)
{
    enum { M = 3, D = 37, SPLITS = 5, N = 2 * D, LDC = N + 3 };
    static float part[SPLITS * M * N], bias[N], c[M * LDC], nan_c[M * LDC];
    uint16_t got[M * D], want[M * D];
    tt_fill_random(bias, N, 41);
    tt_split_sums_fill(part, SPLITS, M, N, bias, c, LDC, 42);
    for (int i = 0; i < M * LDC; i++) nan_c[i] = NAN;
    tmi_exec ex = {.backend = TM_BACKEND_CPU, .pool = pool2};
    tmi_silu_mul_args a = {.n = M, .d = D, .gate = c, .ldg = LDC, .up = c + D, .ldu = LDC, .out = want, .ldo = D,
                           .out_dtype = TM_BF16};
    CHECK_STATUS(tmi_silu_mul_cpu(&ex, &a), TM_OK);
    tmi_split_sums s = {.splits = SPLITS, .part = part, .m = M, .n = N, .c = nan_c, .ldc = LDC, .bias = bias,
                        .bias_dtype = TM_F32};
    a.gate = nan_c;
    a.up = nan_c + D;
    a.out = got;
    a.sums = &s;
    CHECK_STATUS(tmi_silu_mul_cpu(&ex, &a), TM_OK);
    CHECK(memcmp(got, want, sizeof got) == 0);
    a.ldu = LDC + 1;
    CHECK_STATUS(tmi_silu_mul_cpu(&ex, &a), TM_ERR_INVALID_ARG);
    CHECK(strstr(tm_last_error(), "gate and up must lie in the split sums' c (ld 77)") != NULL);
    a.ldu = LDC;
    a.up = nan_c + D + 1; /* its last column past the sums' n */
    CHECK_STATUS(tmi_silu_mul_cpu(&ex, &a), TM_ERR_INVALID_ARG);
    a.up = nan_c + D;
    s.m = M - 1;
    CHECK_STATUS(tmi_silu_mul_cpu(&ex, &a), TM_ERR_INVALID_ARG);
    CHECK(strstr(tm_last_error(), "split sums do not cover the rows") != NULL);
    s.m = M;
    s.splits = 0; /* nothing deferred: C is read */
    a.gate = c;
    a.up = c + D;
    s.c = c;
    CHECK_STATUS(tmi_silu_mul_cpu(&ex, &a), TM_OK);
    CHECK(memcmp(got, want, sizeof got) == 0);
}

static void test_silu_mul_errors(void)
{
    float g[8] = {0}, u[8] = {0}, o[8];
    tmi_exec ex = {.backend = TM_BACKEND_CPU};
    tmi_silu_mul_args a = {.n = 2, .d = 4, .gate = g, .ldg = 4, .up = u, .ldu = 4, .out = o, .ldo = 4};
    CHECK_STATUS(tmi_silu_mul_cpu(&ex, &a), TM_OK);
    a.ldu = 2;
    CHECK_STATUS(tmi_silu_mul_cpu(&ex, &a), TM_ERR_INVALID_ARG);
    CHECK(strstr(tm_last_error(), "ldu") != NULL);
    a.ldu = 4;
    a.up = NULL;
    CHECK_STATUS(tmi_silu_mul_cpu(&ex, &a), TM_ERR_INVALID_ARG);
    a.up = u;
    a.d = -2;
    CHECK_STATUS(tmi_silu_mul_cpu(&ex, &a), TM_ERR_INVALID_ARG);
    CHECK(tmi_ops_get(TM_BACKEND_CPU)->silu_mul == tmi_silu_mul_cpu);
}

int main(void)
{
    if (tmi_pool_create(2, &pool2) != TM_OK) return 1;
    RUN(test_silu_mul_shapes);
    RUN(test_silu_mul_out_dtype);
    RUN(test_silu_mul_errors);
    RUN(test_silu_mul_split_sums);
    tmi_pool_destroy(pool2);
    return tt_finish();
}
