/* cutest_silu_mul.c - tmi_silu_mul_cuda against tmi_silu_mul_cpu on the GPU
 * machine: strided and in-place rows, outputs poisoned with NaN. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kernels/cutest_util.h"
#include "kernels/registry.h"
#include "kernels/silu_mul/silu_mul.h"
#include "kernels/test_util.h"
#include "runtime/cuda/cuda_runtime.h"

/* ||cuda - cpu|| / ||cpu||: both use an accurate expf (a few ulp apart). */
#define CU_SILU_REL_TOL 1e-5

static void run_case(int64_t n, int64_t d, float scale, int in_place)
{
    /* padded rows; multiples of 4 when d is, so those shapes take the float4 kernel */
    int64_t ldg = d + (d % 4 ? 1 : 4), ldu = d + (d % 4 ? 2 : 8), ldo = in_place ? ldg : d;
    size_t g_bytes = (size_t)(n * ldg + 1) * 4, u_bytes = (size_t)(n * ldu + 1) * 4, o_bytes = (size_t)(n * ldo + 1) * 4;
    float *gate = malloc(g_bytes), *up = malloc(u_bytes), *ref = malloc(o_bytes > g_bytes ? o_bytes : g_bytes);
    float *got = malloc(o_bytes > g_bytes ? o_bytes : g_bytes);
    tt_fill_random(gate, n * ldg, (unsigned long long)(n + d));
    tt_fill_random(up, n * ldu, (unsigned long long)(2 * n + d));
    for (int64_t i = 0; i < n * ldg; i++) gate[i] *= scale;
    void *dg = NULL, *du = NULL, *dout = NULL;
    int ok = CHECK_STATUS(tmi_cuda_malloc(&dg, g_bytes), TM_OK) && CHECK_STATUS(tmi_cuda_malloc(&du, u_bytes), TM_OK) &&
             CHECK_STATUS(tmi_cuda_malloc(&dout, o_bytes), TM_OK);
    if (ok) {
        tmi_exec cpu = {.backend = TM_BACKEND_CPU};
        if (in_place) memcpy(ref, gate, g_bytes);
        else cu_fill_nan(ref, n * ldo + 1);
        tmi_silu_mul_args a = {.n = n, .d = d, .gate = in_place ? ref : gate, .ldg = ldg, .up = up, .ldu = ldu,
                               .out = ref, .ldo = ldo};
        ok = CHECK_STATUS(tmi_silu_mul_cpu(&cpu, &a), TM_OK);
        cu_fill_nan(got, n * ldo + 1);
        ok = ok && CHECK_STATUS(tmi_cuda_memcpy(dg, gate, g_bytes, 0), TM_OK) &&
             CHECK_STATUS(tmi_cuda_memcpy(du, up, u_bytes, 0), TM_OK) &&
             CHECK_STATUS(tmi_cuda_memcpy(dout, got, o_bytes, 0), TM_OK);
        tmi_exec gpu = {.backend = TM_BACKEND_CUDA};
        a.gate = dg;
        a.up = du;
        a.out = in_place ? dg : dout;
        ok = ok && CHECK_STATUS(tmi_silu_mul_cuda(&gpu, &a), TM_OK) && CHECK_STATUS(tmi_cuda_sync(), TM_OK) &&
             CHECK_STATUS(tmi_cuda_memcpy(got, in_place ? dg : dout, in_place ? g_bytes : o_bytes, 1), TM_OK);
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
            if (in_place) stray += got[i * ldo + d] != gate[i * ldg + d]; /* the padding column is not written */
        }
        double rel = ref2 > 0 ? sqrt(err2 / ref2) : sqrt(err2);
        if (!CHECK(rel < CU_SILU_REL_TOL) || !CHECK(stray == 0))
            fprintf(stderr, "  n=%lld d=%lld scale=%g in_place=%d: rel %.3g\n", (long long)n, (long long)d, scale,
                    in_place, rel);
    }
    tmi_cuda_free(dg);
    tmi_cuda_free(du);
    tmi_cuda_free(dout);
    free(gate);
    free(up);
    free(ref);
    free(got);
}

static void test_cuda_silu_mul_shapes(void)
{
    static const int64_t shapes[][2] = {{1, 1}, {3, 17}, {64, 4096}, {513, 1000}, {2, 11008}, {4000, 300}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int in_place = 0; in_place < 2; in_place++) {
            run_case(shapes[s][0], shapes[s][1], 4.0f, in_place);
            run_case(shapes[s][0], shapes[s][1], 100.0f, in_place);
        }
}

/* 16-bit outputs (the down projection's input), against the CPU twin's rounding. */
static double worst16[3];

static void run_case16(int64_t n, int64_t d, tm_dtype od)
{
    int64_t ld = 2 * d, ldo = d + 1; /* gate and up side by side, as the fused gate/up GEMM writes them */
    size_t in = (size_t)(n * ld), on = (size_t)(n * ldo);
    float *gu = malloc(in * 4);
    uint16_t *ref = malloc(on * 2), *got = malloc(on * 2);
    tt_fill_random(gu, (int64_t)in, (unsigned long long)(n * 5 + d + od));
    for (size_t i = 0; i < in; i++) gu[i] *= 6.0f;
    memset(ref, 0xff, on * 2);
    memset(got, 0xff, on * 2);
    tmi_exec cpu = {.backend = TM_BACKEND_CPU}, gpu = {.backend = TM_BACKEND_CUDA};
    tmi_silu_mul_args a = {.n = n, .d = d, .gate = gu, .ldg = ld, .up = gu + d, .ldu = ld, .out = ref, .ldo = ldo,
                           .out_dtype = od};
    CHECK_STATUS(tmi_silu_mul_cpu(&cpu, &a), TM_OK);
    float *dgu = cu_upload(gu, in * 4);
    void *dout = cu_upload(got, on * 2);
    if (dgu && dout) {
        a.gate = dgu;
        a.up = dgu + d;
        a.out = dout;
        if (CHECK_STATUS(tmi_silu_mul_cuda(&gpu, &a), TM_OK) && cu_download(got, dout, on * 2))
            cu_check_out16(got, ref, od, n, d, ldo, worst16, "silu_mul");
    }
    tmi_cuda_free(dgu);
    tmi_cuda_free(dout);
    free(gu);
    free(ref);
    free(got);
}

static void test_cuda_silu_mul_out16(void)
{
    static const int64_t shapes[][2] = {{1, 11008}, {3, 17}, {64, 11008}, {129, 1000}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        run_case16(shapes[s][0], shapes[s][1], TM_F16);
        run_case16(shapes[s][0], shapes[s][1], TM_BF16);
    }
    printf("worst silu_mul out F16 %.3g, out BF16 %.3g\n", worst16[TM_F16], worst16[TM_BF16]);
}

/* With the gate/up GEMM's split sums: bit for bit the CUDA op over the C they add
 * up to, with C itself NaN (never read), for both kernels' shapes. */
static void test_cuda_silu_mul_split_sums(void)
{
    static const int64_t shapes[][3] = {{1, 11008, 4}, {3, 37, 5}, {2, 1000, 8}}; /* m, d, splits */
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++) {
        int64_t m = shapes[t][0], d = shapes[t][1], n = 2 * d, ldc = n + 4;
        int32_t splits = (int32_t)shapes[t][2];
        size_t part_bytes = (size_t)(splits * m * n) * 4, c_bytes = (size_t)(m * ldc) * 4, o_bytes = (size_t)(m * d) * 2;
        float *part = malloc(part_bytes), *bias = malloc((size_t)n * 4), *c = malloc(c_bytes), *nan_c = malloc(c_bytes);
        uint16_t *got = malloc(o_bytes), *want = malloc(o_bytes);
        if (!CHECK(part && bias && c && nan_c && got && want)) return;
        tt_fill_random(bias, (long)n, 51 + t);
        tt_split_sums_fill(part, splits, m, n, bias, c, ldc, 52 + t);
        cu_fill_nan(nan_c, m * ldc);
        void *dpart = cu_upload(part, part_bytes), *dbias = cu_upload(bias, (size_t)n * 4), *dc = cu_upload(c, c_bytes);
        void *dnan = cu_upload(nan_c, c_bytes), *dout = cu_upload(NULL, o_bytes);
        tmi_exec gpu = {.backend = TM_BACKEND_CUDA};
        tmi_silu_mul_args a = {.n = m, .d = d, .gate = dc, .ldg = ldc, .up = (float *)dc + d, .ldu = ldc, .out = dout,
                               .ldo = d, .out_dtype = TM_F16};
        int ok = dpart && dbias && dc && dnan && dout && CHECK_STATUS(tmi_silu_mul_cuda(&gpu, &a), TM_OK) &&
                 cu_download(want, dout, o_bytes);
        tmi_split_sums s = {.splits = splits, .part = dpart, .m = m, .n = n, .c = dnan, .ldc = ldc, .bias = dbias,
                            .bias_dtype = TM_F32};
        a.gate = dnan;
        a.up = (float *)dnan + d;
        a.sums = &s;
        ok = ok && CHECK_STATUS(tmi_silu_mul_cuda(&gpu, &a), TM_OK) && cu_download(got, dout, o_bytes);
        if (ok && !CHECK(memcmp(got, want, o_bytes) == 0))
            fprintf(stderr, "  split sums m=%lld d=%lld splits=%d: differs from the summed C\n", (long long)m,
                    (long long)d, splits);
        void *dev[] = {dpart, dbias, dc, dnan, dout};
        for (size_t i = 0; i < sizeof dev / sizeof *dev; i++) tmi_cuda_free(dev[i]);
        free(part), free(bias), free(c), free(nan_c), free(got), free(want);
    }
}

static void test_cuda_silu_mul_args(void)
{
    tmi_exec gpu = {.backend = TM_BACKEND_CUDA};
    tmi_silu_mul_args a = {.n = 5, .d = 0};
    CHECK_STATUS(tmi_silu_mul_cuda(&gpu, &a), TM_OK); /* empty: nothing launched */
    float dummy;
    a.d = 4;
    a.gate = a.up = a.out = &dummy;
    a.ldg = a.ldu = 4;
    a.ldo = 3;
    CHECK_STATUS(tmi_silu_mul_cuda(&gpu, &a), TM_ERR_INVALID_ARG);
    const tmi_ops *ops = tmi_ops_get(TM_BACKEND_CUDA);
    CHECK(ops && ops->silu_mul == tmi_silu_mul_cuda);
}

int main(void)
{
    if (tm_cuda_device_count() == 0) {
        tt_skip("no CUDA device");
        return tt_finish();
    }
    RUN(test_cuda_silu_mul_shapes);
    RUN(test_cuda_silu_mul_out16);
    RUN(test_cuda_silu_mul_args);
    RUN(test_cuda_silu_mul_split_sums);
    return tt_finish();
}
