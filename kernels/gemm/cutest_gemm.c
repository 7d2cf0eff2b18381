/* cutest_gemm.c - tmi_gemm_cuda (cuBLAS) against tmi_gemm_cpu on the GPU machine:
 * every B dtype, bias or none, accumulate or not, padded leading dimensions,
 * shapes from 1 to 4096 including k = 0; C poisoned with NaN before each run. */
#include "harness.h"
#include "kernels/cutest_util.h"
#include "kernels/gemm/gemm.h"
#include "kernels/registry.h"

/* ||cuda - cpu|| / ||cpu||.  F32: both fp32 with different summation orders.
 * F16 / BF16: the CUDA twin rounds A to B's dtype (gemm.h), the CPU does not, so
 * the error is that rounding's (2^-11 and 2^-8 relative per element, averaged
 * down by the sum).  Every shape has enough outputs for ||cpu|| not to hinge on
 * one cancelling dot product (m = n = 1, k = 4096 measured 7e-4 in fp32 that way). */
#define CU_GEMM_TOL_F32 1e-5
#define CU_GEMM_TOL_16 1e-2

static double worst[3];

static void to_dtype(const float *src, void *dst, int64_t n, tm_dtype dt)
{
    for (int64_t i = 0; i < n; i++) {
        if (dt == TM_F32) ((float *)dst)[i] = src[i];
        else ((uint16_t *)dst)[i] = dt == TM_F16 ? tmi_f32_to_f16(src[i]) : tmi_f32_to_bf16(src[i]);
    }
}

static void run_case(void *blas, int64_t m, int64_t n, int64_t k, tm_dtype dt, int bias, int acc)
{
    int64_t lda = k + 3, ldb = n + (n & 1), ldc = n + 5;
    size_t es = dt == TM_F32 ? 4 : 2;
    size_t a_bytes = (size_t)(m * lda + 1) * 4, b_bytes = (size_t)(k * ldb + 1) * es, c_bytes = (size_t)(m * ldc) * 4;
    float *a = malloc(a_bytes), *bf = malloc((size_t)(k * ldb + 1) * 4), *bias_f = malloc((size_t)n * 4);
    float *c0 = malloc(c_bytes), *ref = malloc(c_bytes), *got = malloc(c_bytes);
    void *b = malloc(b_bytes), *bias_h = malloc((size_t)n * es);
    size_t cpu_ws_bytes = tmi_gemm_cpu_workspace(m, n, k, 1) + 64;
    void *cpu_ws = malloc(cpu_ws_bytes);
    unsigned long long seed = (unsigned long long)(m * 1000003 + n * 1009 + k * 7 + dt * 3 + bias + acc * 2);
    tt_fill_random(a, (long)(m * lda + 1), seed);
    tt_fill_random(bf, (long)(k * ldb + 1), seed + 1);
    tt_fill_random(bias_f, (long)n, seed + 2);
    to_dtype(bf, b, k * ldb + 1, dt);
    to_dtype(bias_f, bias_h, n, dt);
    if (acc) tt_fill_random(c0, (long)(m * ldc), seed + 3);
    else cu_fill_nan(c0, m * ldc);
    memcpy(ref, c0, c_bytes);

    tmi_exec cpu = {.backend = TM_BACKEND_CPU, .workspace = cpu_ws, .workspace_bytes = cpu_ws_bytes};
    tmi_gemm_args g = {.m = m, .n = n, .k = k, .a = a, .lda = lda, .b = b, .b_dtype = dt, .ldb = ldb,
                       .bias = bias ? bias_h : NULL, .bias_dtype = dt, .c = ref, .ldc = ldc, .accumulate = acc};
    int ok = CHECK_STATUS(tmi_gemm_cpu(&cpu, &g), TM_OK);

    size_t ws_bytes = tmi_gemm_cuda_workspace(m, k, dt);
    void *da = cu_upload(a, a_bytes), *db = cu_upload(b, b_bytes), *dbias = cu_upload(bias_h, (size_t)n * es + 1);
    void *dc = cu_upload(c0, c_bytes), *dws = ws_bytes ? cu_upload(NULL, ws_bytes) : NULL;
    ok = ok && da && db && dbias && dc && (dws || !ws_bytes);
    if (ok) {
        tmi_exec gpu = {.backend = TM_BACKEND_CUDA, .blas = blas, .workspace = dws, .workspace_bytes = ws_bytes};
        g.a = da;
        g.b = db;
        g.bias = bias ? dbias : NULL;
        g.c = dc;
        ok = CHECK_STATUS(tmi_gemm_cuda(&gpu, &g), TM_OK) && cu_download(got, dc, c_bytes);
    }
    if (ok) {
        double rel = cu_rel_err(got, ref, m, n, ldc), tol = dt == TM_F32 ? CU_GEMM_TOL_F32 : CU_GEMM_TOL_16;
        cu_note(&worst[dt], rel);
        if (!CHECK(rel < tol) || !CHECK(cu_padding_changed(got, c0, m, n, ldc) == 0))
            fprintf(stderr, "  m=%lld n=%lld k=%lld %s bias=%d acc=%d: rel %.3g\n", (long long)m, (long long)n,
                    (long long)k, tm_dtype_name(dt), bias, acc, rel);
    }
    tmi_cuda_free(da);
    tmi_cuda_free(db);
    tmi_cuda_free(dbias);
    tmi_cuda_free(dc);
    tmi_cuda_free(dws);
    free(a); free(bf); free(bias_f); free(c0); free(ref); free(got); free(b); free(bias_h); free(cpu_ws);
}

static void test_cuda_gemm_shapes(void)
{
    void *blas = NULL;
    if (!CHECK_STATUS(tmi_gemm_cuda_blas_create(&blas), TM_OK)) return;
    static const int64_t shapes[][3] = {{1, 1, 1},     {3, 17, 5},     {1, 4096, 1024}, {7, 33, 0},
                                        {64, 1000, 333}, {257, 512, 1024}, {8, 3072, 4096}, {1, 65, 4096}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int dt = 0; dt < 3; dt++)
            for (int v = 0; v < 3; v++) /* plain, bias, bias + accumulate */
                run_case(blas, shapes[s][0], shapes[s][1], shapes[s][2], (tm_dtype)dt, v > 0, v == 2);
    tmi_gemm_cuda_blas_destroy(blas);
    for (int dt = 0; dt < 3; dt++) printf("worst gemm %s: %.3g\n", tm_dtype_name((tm_dtype)dt), worst[dt]);
}

static void test_cuda_gemm_args(void)
{
    tmi_exec gpu = {.backend = TM_BACKEND_CUDA};
    float dummy[4];
    tmi_gemm_args g = {.m = 0, .n = 4, .k = 4, .b_dtype = TM_F32};
    CHECK_STATUS(tmi_gemm_cuda(&gpu, &g), TM_OK); /* empty */
    g.m = 2;
    g.a = g.c = dummy;
    g.b = dummy;
    g.lda = g.ldb = g.ldc = 4;
    CHECK_STATUS(tmi_gemm_cuda(&gpu, &g), TM_ERR_INVALID_ARG); /* no cuBLAS handle */
    g.b_dtype = TM_I8;
    CHECK_STATUS(tmi_gemm_cuda(&gpu, &g), TM_ERR_INVALID_ARG);
    g.b_dtype = TM_F16;
    g.ldc = 3;
    CHECK_STATUS(tmi_gemm_cuda(&gpu, &g), TM_ERR_INVALID_ARG);
    CHECK(tmi_gemm_cuda_workspace(2, 4, TM_F16) == 16 && tmi_gemm_cuda_workspace(2, 4, TM_F32) == 0);
    const tmi_ops *ops = tmi_ops_get(TM_BACKEND_CUDA);
    CHECK(ops && ops->gemm == tmi_gemm_cuda);
}

int main(void)
{
    if (tm_cuda_device_count() == 0) {
        tt_skip("no CUDA device");
        return tt_finish();
    }
    RUN(test_cuda_gemm_shapes);
    RUN(test_cuda_gemm_args);
    return tt_finish();
}
