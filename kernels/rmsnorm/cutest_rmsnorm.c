/* cutest_rmsnorm.c - tmi_rmsnorm_cuda against tmi_rmsnorm_cpu on the GPU machine:
 * every weight dtype, strided and in-place rows, outputs poisoned with NaN. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kernels/registry.h"
#include "kernels/cutest_util.h"
#include "kernels/rmsnorm/rmsnorm.h"
#include "runtime/cuda/cuda_runtime.h"

/* ||cuda - cpu|| / ||cpu||: fp32 tree reduction against a double sum. */
#define CU_RMSNORM_REL_TOL 1e-5

static void run_case(int64_t n, int64_t d, tm_dtype dt, int in_place)
{
    /* ldo: a multiple of 4 when d is, so the float4 kernel runs out of place too */
    int64_t ldx = d + (d & 1), ldo = in_place ? ldx : d + 3 + (d % 4 == 0);
    size_t x_bytes = (size_t)(n * ldx + 1) * sizeof(float), o_bytes = (size_t)(n * ldo + 1) * sizeof(float);
    size_t w_bytes = (size_t)(d + 1) * (dt == TM_F32 ? 4 : 2);
    float *x = malloc(x_bytes), *ref = malloc(o_bytes), *got = malloc(o_bytes), *wf = malloc((size_t)(d + 1) * 4);
    void *w = malloc(w_bytes);
    tt_fill_random(x, n * ldx, (unsigned long long)(n * 13 + d));
    tt_fill_random(wf, d, (unsigned long long)d);
    for (int64_t j = 0; j < d; j++) {
        if (dt == TM_F32) ((float *)w)[j] = wf[j];
        else ((uint16_t *)w)[j] = dt == TM_F16 ? tmi_f32_to_f16(wf[j]) : tmi_f32_to_bf16(wf[j]);
    }
    void *dx = NULL, *dw = NULL, *dout = NULL;
    int ok = CHECK_STATUS(tmi_cuda_malloc(&dx, x_bytes), TM_OK) && CHECK_STATUS(tmi_cuda_malloc(&dw, w_bytes), TM_OK) &&
             CHECK_STATUS(tmi_cuda_malloc(&dout, o_bytes), TM_OK);
    if (ok) {
        /* CPU reference, then the device run on the same input with its output poisoned */
        if (in_place) memcpy(ref, x, x_bytes);
        else cu_fill_nan(ref, n * ldo + 1);
        tmi_exec cpu = {.backend = TM_BACKEND_CPU};
        tmi_rmsnorm_args a = {.n = n, .d = d, .x = in_place ? ref : x, .ldx = ldx, .weight = w, .w_dtype = dt,
                              .eps = 1e-5f, .out = ref, .ldo = ldo};
        ok = CHECK_STATUS(tmi_rmsnorm_cpu(&cpu, &a), TM_OK);
        cu_fill_nan(got, n * ldo + 1);
        ok = ok && CHECK_STATUS(tmi_cuda_memcpy(dx, x, x_bytes, 0), TM_OK) &&
             CHECK_STATUS(tmi_cuda_memcpy(dw, w, w_bytes, 0), TM_OK) &&
             CHECK_STATUS(tmi_cuda_memcpy(dout, got, o_bytes, 0), TM_OK);
        tmi_exec gpu = {.backend = TM_BACKEND_CUDA};
        a.x = dx;
        a.weight = dw;
        a.out = in_place ? dx : dout;
        ok = ok && CHECK_STATUS(tmi_rmsnorm_cuda(&gpu, &a), TM_OK) && CHECK_STATUS(tmi_cuda_sync(), TM_OK) &&
             CHECK_STATUS(tmi_cuda_memcpy(got, in_place ? dx : dout, in_place ? x_bytes : o_bytes, 1), TM_OK);
    }
    if (ok) {
        double err2 = 0, ref2 = 0;
        int64_t stray = 0;
        for (int64_t i = 0; i < n; i++) {
            for (int64_t j = 0; j < d; j++) {
                double e = (double)got[i * ldo + j] - ref[i * ldo + j];
                err2 += e * e;
                ref2 += (double)ref[i * ldo + j] * ref[i * ldo + j];
            }
            for (int64_t j = d; j < ldo && !in_place; j++) stray += !isnan(got[i * ldo + j]); /* padding untouched */
        }
        double rel = ref2 > 0 ? sqrt(err2 / ref2) : sqrt(err2);
        if (!CHECK(rel < CU_RMSNORM_REL_TOL) || !CHECK(stray == 0))
            fprintf(stderr, "  n=%lld d=%lld dtype=%d in_place=%d: rel %.3g\n", (long long)n, (long long)d, (int)dt,
                    in_place, rel);
    }
    tmi_cuda_free(dx);
    tmi_cuda_free(dw);
    tmi_cuda_free(dout);
    free(x);
    free(ref);
    free(got);
    free(wf);
    free(w);
}

static void test_cuda_rmsnorm_shapes(void)
{
    /* 4096 .. 16384: the float4 kernel with 1, 2 and 4 float4s a thread; 20000: past it */
    static const int64_t shapes[][2] = {{1, 1},    {3, 17},   {64, 4096}, {513, 1000}, {2, 31},
                                        {1000, 128}, {4, 8192}, {2, 16384}, {1, 20000}, {5, 12}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int dt = 0; dt < 3; dt++)
            for (int in_place = 0; in_place < 2; in_place++) run_case(shapes[s][0], shapes[s][1], (tm_dtype)dt, in_place);
}

/* 16-bit outputs (the forward's GEMM inputs): the CPU twin's rounding of its own
 * fp32 result against the device's; a sum-order difference can flip one ulp. */
static double worst16[3];

static void run_case16(int64_t n, int64_t d, tm_dtype od)
{
    int64_t ldo = d + 2;
    size_t xn = (size_t)(n * d), on = (size_t)(n * ldo);
    float *x = malloc(xn * 4), *w = malloc((size_t)d * 4);
    uint16_t *ref = malloc(on * 2), *got = malloc(on * 2);
    tt_fill_random(x, (int64_t)xn, (unsigned long long)(n * 7 + d + od));
    tt_fill_random(w, d, (unsigned long long)(d + 3));
    memset(ref, 0xff, on * 2);
    memset(got, 0xff, on * 2);
    tmi_exec cpu = {.backend = TM_BACKEND_CPU}, gpu = {.backend = TM_BACKEND_CUDA};
    tmi_rmsnorm_args a = {.n = n, .d = d, .x = x, .ldx = d, .weight = w, .w_dtype = TM_F32, .eps = 1e-5f,
                          .out = ref, .ldo = ldo, .out_dtype = od};
    CHECK_STATUS(tmi_rmsnorm_cpu(&cpu, &a), TM_OK);
    void *dx = cu_upload(x, xn * 4), *dw = cu_upload(w, (size_t)d * 4), *dout = cu_upload(got, on * 2);
    if (dx && dw && dout) {
        a.x = dx;
        a.weight = dw;
        a.out = dout;
        if (CHECK_STATUS(tmi_rmsnorm_cuda(&gpu, &a), TM_OK) && cu_download(got, dout, on * 2))
            cu_check_out16(got, ref, od, n, d, ldo, worst16, "rmsnorm");
    }
    tmi_cuda_free(dx);
    tmi_cuda_free(dw);
    tmi_cuda_free(dout);
    free(x);
    free(w);
    free(ref);
    free(got);
}

static void test_cuda_rmsnorm_out16(void)
{
    static const int64_t shapes[][2] = {{1, 4096}, {3, 17}, {64, 4096}, {257, 1000}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        run_case16(shapes[s][0], shapes[s][1], TM_F16);
        run_case16(shapes[s][0], shapes[s][1], TM_BF16);
    }
    printf("worst rmsnorm out F16 %.3g, out BF16 %.3g\n", worst16[TM_F16], worst16[TM_BF16]);
}

static void test_cuda_rmsnorm_args(void)
{
    tmi_exec gpu = {.backend = TM_BACKEND_CUDA};
    tmi_rmsnorm_args a = {.n = 0, .d = 16, .w_dtype = TM_F32, .eps = 1e-5f};
    CHECK_STATUS(tmi_rmsnorm_cuda(&gpu, &a), TM_OK); /* empty: nothing launched */
    float dummy;
    a.n = 2;
    a.x = a.out = &dummy;
    a.weight = &dummy;
    a.ldx = a.ldo = 16;
    a.w_dtype = TM_I8;
    CHECK_STATUS(tmi_rmsnorm_cuda(&gpu, &a), TM_ERR_INVALID_ARG);
    a.w_dtype = TM_F32;
    a.ldo = 8;
    CHECK_STATUS(tmi_rmsnorm_cuda(&gpu, &a), TM_ERR_INVALID_ARG);
    const tmi_ops *ops = tmi_ops_get(TM_BACKEND_CUDA);
    CHECK(ops && ops->rmsnorm == tmi_rmsnorm_cuda);
}

int main(void)
{
    if (tm_cuda_device_count() == 0) {
        tt_skip("no CUDA device");
        return tt_finish();
    }
    RUN(test_cuda_rmsnorm_shapes);
    RUN(test_cuda_rmsnorm_out16);
    RUN(test_cuda_rmsnorm_args);
    return tt_finish();
}
