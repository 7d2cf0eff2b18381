/* test_rmsnorm.c - tmi_rmsnorm_cpu against a double-precision reference. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kernels/test_util.h"
#include "kernels/registry.h"
#include "kernels/rmsnorm/rmsnorm.h"
#include "runtime/threadpool.h"

/* ||out - ref|| / ||ref||: two fp32 roundings per element and a sqrt. */
#define RMSNORM_REL_TOL 1e-6

static tmi_pool *pool2;

static void *weights_of(const float *w, int64_t d, tm_dtype dt)
{
    void *p = malloc((size_t)(d + 1) * 4);
    for (int64_t j = 0; j < d; j++) {
        if (dt == TM_F32) ((float *)p)[j] = w[j];
        else ((uint16_t *)p)[j] = dt == TM_F16 ? tmi_f32_to_f16(w[j]) : tmi_f32_to_bf16(w[j]);
    }
    return p;
}

/* in_place: out = x with ld = ldx; else out has its own padded stride. */
static void run_case(int64_t n, int64_t d, tm_dtype dt, int in_place, tmi_pool *pool, float eps)
{
    int64_t ldx = d + (d % 3), ldo = in_place ? ldx : d + 5;
    float *x = malloc((size_t)(n * ldx + 1) * sizeof *x);   /* [n][ldx] */
    float *x0 = malloc((size_t)(n * ldx + 1) * sizeof *x0); /* copy of the input */
    float *wf = malloc((size_t)(d + 1) * sizeof *wf);
    float *out = in_place ? x : malloc((size_t)(n * ldo + 1) * sizeof *out);
    tt_fill_random(x, n * ldx, (unsigned long long)(n * 31 + d));
    for (int64_t i = 0; i < n * ldx; i++) x[i] *= (float)(1 + i % 5); /* rows of uneven scale */
    memcpy(x0, x, (size_t)(n * ldx) * sizeof *x);
    tt_fill_random(wf, d, (unsigned long long)d + 7);
    void *w = weights_of(wf, d, dt);
    if (!in_place)
        for (int64_t i = 0; i < n * ldo; i++) out[i] = NAN;
    tmi_exec ex = {.backend = TM_BACKEND_CPU, .pool = pool};
    tmi_rmsnorm_args a = {.n = n, .d = d, .x = x, .ldx = ldx, .weight = w, .w_dtype = dt, .eps = eps,
                          .out = out, .ldo = ldo};
    if (!CHECK_STATUS(tmi_rmsnorm_cpu(&ex, &a), TM_OK)) goto done;
    double err2 = 0, ref2 = 0;
    int pad_ok = 1;
    for (int64_t i = 0; i < n; i++) {
        const float *xr = x0 + i * ldx;
        double ss = 0;
        for (int64_t j = 0; j < d; j++) ss += (double)xr[j] * xr[j];
        double r = 1.0 / sqrt(ss / (double)d + eps);
        for (int64_t j = 0; j < d; j++) {
            double ref = (double)tmi_load_f32(w, dt, j) * xr[j] * r;
            double e = out[i * ldo + j] - ref;
            err2 += e * e;
            ref2 += ref * ref;
        }
        for (int64_t j = d; j < ldo; j++)
            pad_ok &= in_place ? out[i * ldo + j] == x0[i * ldx + j] : isnan(out[i * ldo + j]);
    }
    double rel = ref2 > 0 ? sqrt(err2 / ref2) : sqrt(err2);
    if (!CHECK(rel < RMSNORM_REL_TOL) || !CHECK(pad_ok))
        fprintf(stderr, "  n=%lld d=%lld dtype=%d in_place=%d: rel %.3g\n", (long long)n, (long long)d, (int)dt,
                in_place, rel);
done:
    free(x);
    free(x0);
    free(wf);
    free(w);
    if (!in_place) free(out);
}

static void test_rmsnorm_shapes(void)
{
    static const int64_t shapes[][2] = {{0, 8}, {4, 0}, {1, 1}, {3, 17}, {2, 4096}, {64, 4096}, {513, 1000}, {7, 33}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int dt = 0; dt < 3; dt++)
            for (int in_place = 0; in_place < 2; in_place++)
                run_case(shapes[s][0], shapes[s][1], (tm_dtype)dt, in_place, (s + dt) & 1 ? pool2 : NULL,
                         dt == 1 ? 1e-6f : 1e-5f);
}

/* A 16-bit output is the fp32 output rounded once: bit-identical to rounding it. */
static void test_rmsnorm_out_dtype(void)
{
    int64_t n = 5, d = 300, ldo = d + 4;
    float *x = malloc((size_t)(n * d) * sizeof *x), *wf = malloc((size_t)d * sizeof *wf);
    float *ref = malloc((size_t)(n * d) * sizeof *ref);
    uint16_t *got = malloc((size_t)(n * ldo) * sizeof *got);
    tt_fill_random(x, n * d, 71);
    tt_fill_random(wf, d, 72);
    tmi_exec ex = {.backend = TM_BACKEND_CPU, .pool = pool2};
    for (int od = TM_F16; od <= TM_BF16; od++) {
        tmi_rmsnorm_args a = {.n = n, .d = d, .x = x, .ldx = d, .weight = wf, .w_dtype = TM_F32, .eps = 1e-5f,
                              .out = ref, .ldo = d};
        CHECK_STATUS(tmi_rmsnorm_cpu(&ex, &a), TM_OK);
        memset(got, 0xff, (size_t)(n * ldo) * sizeof *got);
        a.out = got;
        a.ldo = ldo;
        a.out_dtype = (tm_dtype)od;
        CHECK_STATUS(tmi_rmsnorm_cpu(&ex, &a), TM_OK);
        CHECK(tt_rounding_mismatches(got, ldo, ref, (tm_dtype)od, n, d) == 0);
    }
    tmi_rmsnorm_args e = {.n = 1, .d = 4, .x = x, .ldx = 4, .weight = wf, .w_dtype = TM_F32, .eps = 1e-5f,
                          .out = got, .ldo = 4, .out_dtype = TM_I8};
    CHECK_STATUS(tmi_rmsnorm_cpu(&ex, &e), TM_ERR_INVALID_ARG);
    CHECK(strstr(tm_last_error(), "out dtype") != NULL);
    free(x);
    free(wf);
    free(ref);
    free(got);
}

/* A zero row is eps-limited, not a division by zero. */
static void test_rmsnorm_zero_row(void)
{
    float x[4] = {0, 0, 0, 0}, w[4] = {1, 2, 3, 4}, out[4];
    tmi_exec ex = {.backend = TM_BACKEND_CPU};
    tmi_rmsnorm_args a = {.n = 1, .d = 4, .x = x, .ldx = 4, .weight = w, .w_dtype = TM_F32, .eps = 1e-6f,
                          .out = out, .ldo = 4};
    CHECK_STATUS(tmi_rmsnorm_cpu(&ex, &a), TM_OK);
    CHECK(out[0] == 0 && out[3] == 0);
}

static void test_rmsnorm_errors(void)
{
    float x[8] = {0}, w[8] = {0}, out[8];
    tmi_exec ex = {.backend = TM_BACKEND_CPU};
    tmi_rmsnorm_args a = {.n = 2, .d = 4, .x = x, .ldx = 4, .weight = w, .w_dtype = TM_F32, .eps = 1e-6f,
                          .out = out, .ldo = 4};
    a.w_dtype = TM_I8;
    CHECK_STATUS(tmi_rmsnorm_cpu(&ex, &a), TM_ERR_INVALID_ARG);
    CHECK(strstr(tm_last_error(), "weight dtype") != NULL);
    a.w_dtype = TM_BF16;
    a.ldx = 3;
    CHECK_STATUS(tmi_rmsnorm_cpu(&ex, &a), TM_ERR_INVALID_ARG);
    a.ldx = 4;
    a.n = -1;
    CHECK_STATUS(tmi_rmsnorm_cpu(&ex, &a), TM_ERR_INVALID_ARG);
    a.n = 2;
    a.weight = NULL;
    CHECK_STATUS(tmi_rmsnorm_cpu(&ex, &a), TM_ERR_INVALID_ARG);
    a.weight = w;
    a.eps = -1;
    CHECK_STATUS(tmi_rmsnorm_cpu(&ex, &a), TM_ERR_INVALID_ARG);
    CHECK(tmi_ops_get(TM_BACKEND_CPU)->rmsnorm == tmi_rmsnorm_cpu);
}

int main(void)
{
    if (tmi_pool_create(2, &pool2) != TM_OK) return 1;
    RUN(test_rmsnorm_shapes);
    RUN(test_rmsnorm_zero_row);
    RUN(test_rmsnorm_out_dtype);
    RUN(test_rmsnorm_errors);
    tmi_pool_destroy(pool2);
    return tt_finish();
}
