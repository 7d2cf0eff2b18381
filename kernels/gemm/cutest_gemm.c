/* cutest_gemm.c - tmi_gemm_cuda against tmi_gemm_cpu on the GPU machine: both CUDA
 * paths (the small-m kernel and cuBLAS, each forced) for every B dtype, A in fp32
 * and in B's 16-bit dtype, bias or none, accumulate or not, padded leading
 * dimensions, odd shapes and the Llama-2-7B projections at m = 1 .. 256.  Inputs
 * are fresh random values; C is poisoned with NaN before each run (accumulate
 * cases start from random C).  CUTEST_BENCH=1 also times both paths on the 7B
 * shapes and prints the GB/s of B each reaches (CUTEST_BENCH_ONLY=1 as well: only
 * that). */
#include <stdlib.h>

#include "harness.h"
#include "kernels/cutest_util.h"
#include "kernels/gemm/gemm.h"
#include "kernels/registry.h"
#include "runtime/threadpool.h"

/* ||cuda - cpu|| / ||cpu||, by what the two sides multiply:
 *  - TOL_EXACT: the same operand values on both sides (fp32 B; a 16-bit A; the
 *    small-m kernel, which reads an fp32 A as fp32), so only the fp32 summation
 *    order differs (expected ~1e-6; cuBLAS's tensor-core accumulation gets 1e-4).
 *  - TOL_F16 / TOL_BF16: cuBLAS with an fp32 A, which it rounds to B's dtype and
 *    the CPU does not (2^-11 and 2^-8 relative per element, averaged by the sum).
 * Every shape has enough outputs for ||cpu|| not to hinge on one cancelling dot
 * product (m = n = 1, k = 4096 measured 7e-4 in fp32 that way). */
#define TOL_EXACT_SMALL 1e-5
#define TOL_EXACT_BLAS 1e-4
#define TOL_F16 1e-3
#define TOL_BF16 1e-2

enum { KIND_SMALL, KIND_BLAS_EXACT, KIND_BLAS_ROUNDED, N_KINDS };
static const char *const kind_names[N_KINDS] = {"small-m", "cuBLAS, A as B", "cuBLAS, A rounded"};
static double worst[N_KINDS][3]; /* [kind][b dtype] */

static tmi_pool *pool; /* the CPU reference's threads */
static void *blas;

static void *to_dtype(const float *src, int64_t n, tm_dtype dt)
{
    void *dst = malloc((size_t)(n > 0 ? n : 1) * (dt == TM_F32 ? 4 : 2));
    for (int64_t i = 0; dst && i < n; i++) {
        if (dt == TM_F32) ((float *)dst)[i] = src[i];
        else ((uint16_t *)dst)[i] = dt == TM_F16 ? tmi_f32_to_f16(src[i]) : tmi_f32_to_bf16(src[i]);
    }
    return dst;
}

/* B and bias of one shape, on the host (for the CPU twin) and on the device. */
typedef struct cu_weights {
    int64_t k, n, ldb;
    tm_dtype dt;
    void *b, *bias;   /* [k][ldb] and [n] of dt */
    void *db, *dbias;
} cu_weights;

static int weights_make(cu_weights *w, int64_t k, int64_t n, int64_t ldb, tm_dtype dt, unsigned long long seed)
{
    size_t es = dt == TM_F32 ? 4 : 2, count = (size_t)(k * ldb + 1);
    *w = (cu_weights){.k = k, .n = n, .ldb = ldb, .dt = dt};
    float *f = malloc(count * sizeof *f), *bf = malloc((size_t)(n + 1) * sizeof *bf);
    if (f && bf) {
        tt_fill_random(f, (long)count, seed);
        tt_fill_random(bf, (long)n, seed + 1);
        w->b = to_dtype(f, (int64_t)count, dt);
        w->bias = to_dtype(bf, n, dt);
    }
    free(f);
    free(bf);
    if (!CHECK(w->b && w->bias)) return 0;
    w->db = cu_upload(w->b, count * es);
    w->dbias = cu_upload(w->bias, (size_t)n * es + 1);
    return w->db && w->dbias;
}

static void weights_free(cu_weights *w)
{
    free(w->b);
    free(w->bias);
    tmi_cuda_free(w->db);
    tmi_cuda_free(w->dbias);
}

static double tol_of(int kind, tm_dtype dt)
{
    if (kind == KIND_SMALL) return TOL_EXACT_SMALL;
    if (kind == KIND_BLAS_EXACT) return TOL_EXACT_BLAS;
    return dt == TM_F16 ? TOL_F16 : TOL_BF16;
}

/* One product C (op)= A x W (+ bias) on the CPU, then on each CUDA path that can
 * run it, each from the same C0; returns 1 when every check passed. */
static int run_case(const cu_weights *w, int64_t m, tm_dtype adt, int bias, int acc, int pad,
                    unsigned long long seed)
{
    int64_t n = w->n, k = w->k, lda = k + pad, ldc = n + pad;
    size_t a_bytes = (size_t)(m * lda + 1) * (adt == TM_F32 ? 4 : 2), c_bytes = (size_t)(m * ldc + 1) * 4;
    float *af = malloc((size_t)(m * lda + 1) * 4), *c0 = malloc(c_bytes), *ref = malloc(c_bytes);
    float *got = malloc(c_bytes);
    int ok = CHECK(af && c0 && ref && got);
    void *a = NULL, *da = NULL, *dc = NULL, *dws = NULL, *cpu_ws = NULL;
    if (ok) {
        tt_fill_random(af, (long)(m * lda + 1), seed);
        a = to_dtype(af, m * lda + 1, adt);
        if (acc) tt_fill_random(c0, (long)(m * ldc + 1), seed + 3);
        else cu_fill_nan(c0, m * ldc + 1);
        memcpy(ref, c0, c_bytes);
        size_t cpu_ws_bytes = tmi_gemm_cpu_workspace(m, n, k, tmi_pool_threads(pool));
        cpu_ws = cpu_ws_bytes ? malloc(cpu_ws_bytes) : NULL;
        tmi_exec cpu = {.backend = TM_BACKEND_CPU, .pool = pool, .workspace = cpu_ws, .workspace_bytes = cpu_ws_bytes};
        tmi_gemm_args g = {.m = m, .n = n, .k = k, .a = a, .a_dtype = adt, .lda = lda, .b = w->b, .b_dtype = w->dt,
                           .ldb = w->ldb, .bias = bias ? w->bias : NULL, .bias_dtype = w->dt, .c = ref, .ldc = ldc,
                           .accumulate = acc};
        ok = CHECK(a != NULL) && CHECK_STATUS(tmi_gemm_cpu(&cpu, &g), TM_OK);
    }
    size_t ws_bytes = tmi_gemm_cuda_workspace(m, k, w->dt);
    if (ok) {
        da = cu_upload(a, a_bytes);
        dc = cu_upload(NULL, c_bytes);
        dws = ws_bytes ? cu_upload(NULL, ws_bytes) : NULL;
        ok = da && dc && (dws || !ws_bytes);
    }
    tmi_exec gpu = {.backend = TM_BACKEND_CUDA, .blas = blas, .workspace = dws, .workspace_bytes = ws_bytes};
    tmi_gemm_args g = {.m = m, .n = n, .k = k, .a = da, .a_dtype = adt, .lda = lda, .b = w->db, .b_dtype = w->dt,
                       .ldb = w->ldb, .bias = bias ? w->dbias : NULL, .bias_dtype = w->dt, .c = dc, .ldc = ldc,
                       .accumulate = acc};
    for (int path = TMI_GEMM_PATH_BLAS; ok && path <= TMI_GEMM_PATH_SMALL_M; path++) {
        int small = path == TMI_GEMM_PATH_SMALL_M;
        int fits = w->dt != TM_F32 && m >= 1 && m <= TMI_GEMM_SMALL_M_LIMIT && k >= 1 && w->ldb % 8 == 0;
        if (small && !fits) {
            CHECK_STATUS(tmi_gemm_cuda_path(&gpu, &g, TMI_GEMM_PATH_SMALL_M), m == 0 ? TM_OK : TM_ERR_UNSUPPORTED);
            continue;
        }
        ok = CHECK_STATUS(tmi_cuda_memcpy(dc, c0, c_bytes, 0), TM_OK) &&
             CHECK_STATUS(tmi_gemm_cuda_path(&gpu, &g, (tmi_gemm_path)path), TM_OK) && cu_download(got, dc, c_bytes);
        if (!ok) break;
        int kind = small ? KIND_SMALL : w->dt == TM_F32 || adt != TM_F32 ? KIND_BLAS_EXACT : KIND_BLAS_ROUNDED;
        double rel = cu_rel_err(got, ref, m, n, ldc);
        cu_note(&worst[kind][w->dt], rel);
        if (!CHECK(rel < tol_of(kind, w->dt)) || !CHECK(cu_padding_changed(got, c0, m, n, ldc) == 0)) {
            fprintf(stderr, "  %s: m=%lld n=%lld k=%lld B %s A %s bias=%d acc=%d ldb=%lld: rel %.3g\n",
                    kind_names[kind], (long long)m, (long long)n, (long long)k, tm_dtype_name(w->dt),
                    tm_dtype_name(adt), bias, acc, (long long)w->ldb, rel);
            ok = 0;
        }
    }
    tmi_cuda_free(da);
    tmi_cuda_free(dc);
    tmi_cuda_free(dws);
    free(af); free(c0); free(ref); free(got); free(a); free(cpu_ws);
    return ok;
}

/* Odd and edge shapes: k = 0, n < 8 (only a tail lane), n and k off every tile
 * and chunk size, a long k with few columns (many splits), both ldb kinds (a
 * multiple of 8, which the small-m kernel takes, and odd, which falls to cuBLAS). */
static void test_cuda_gemm_shapes(void)
{
    static const int64_t shapes[][3] = {{1, 1, 1},      {3, 17, 5},     {1, 4096, 1024}, {7, 33, 0},
                                        {64, 1000, 333}, {257, 512, 1024}, {8, 3072, 4096}, {1, 65, 4096},
                                        {5, 300, 129},  {16, 1000, 7000}, {2, 264, 60000}, {12, 8200, 300},
                                        {1, 7, 3},      {16, 1, 50},    {9, 2056, 1031}};
    int failures = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes && failures < 5; s++)
        for (int dt = 0; dt < 3; dt++)
            for (int v = 0; v < 4; v++) { /* plain, bias, bias + accumulate, accumulate; ldb odd on v == 3 */
                int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
                int64_t ldb = v == 3 ? n + (n & 1) + 1 : (n + 7) / 8 * 8 + 8;
                unsigned long long seed = (unsigned long long)(m * 1000003 + n * 1009 + k * 7 + dt * 3 + v);
                cu_weights w;
                if (weights_make(&w, k, n, ldb, (tm_dtype)dt, seed))
                    for (int ai = 0; ai < (dt ? 2 : 1); ai++)
                        failures += !run_case(&w, m, ai ? (tm_dtype)dt : TM_F32, v == 1 || v == 2, v >= 2, 3 + v,
                                              seed + 10 * ai);
                weights_free(&w);
            }
}

/* Llama-2-7B's projections (k x n): qkv, o, gate+up fused, down, lm head. */
static const int64_t llama_shapes[][2] = {{4096, 12288}, {4096, 4096}, {4096, 22016}, {11008, 4096}, {4096, 32000}};
static const char *const llama_names[] = {"qkv", "o", "gate_up", "down", "lm_head"};

static void test_cuda_gemm_llama7b(void)
{
    static const int64_t ms[] = {1, 2, 4, 8, 16, 64, 256};
    int variant = 0, failures = 0;
    for (size_t s = 0; s < sizeof llama_shapes / sizeof *llama_shapes && failures < 5; s++)
        for (int dt = TM_F16; dt <= TM_BF16; dt++) {
            cu_weights w;
            if (weights_make(&w, llama_shapes[s][0], llama_shapes[s][1], llama_shapes[s][1], (tm_dtype)dt,
                             1000 + s * 10 + (unsigned long long)dt))
                for (size_t mi = 0; mi < sizeof ms / sizeof *ms; mi++)
                    for (int ai = 0; ai < 2; ai++, variant++) /* bias and accumulate cycle through the cases */
                        failures += !run_case(&w, ms[mi], ai ? (tm_dtype)dt : TM_F32, variant % 3 != 0,
                                              variant % 4 == 1, 0, 5000 + (unsigned long long)variant);
            weights_free(&w);
        }
}

/* tmi_gemm_cuda (AUTO) takes the small-m kernel at m <= the cut (the default for
 * A's dtype, or TMRUN_GEMM_SMALL_M) and cuBLAS above it: bit for bit the forced
 * path's result, for m = 1 and 4, A fp32 and 16-bit. */
static void test_cuda_gemm_auto_path(void)
{
    cu_weights w;
    if (!weights_make(&w, 1000, 3000, 3000, TM_F16, 99)) {
        weights_free(&w);
        return;
    }
    const int64_t m_max = 4;
    size_t c_bytes = (size_t)(m_max * w.n) * 4, ws_bytes = tmi_gemm_cuda_workspace(m_max, w.k, TM_F16);
    float *a = malloc((size_t)(m_max * w.k) * 4), *c1 = malloc(c_bytes), *c2 = malloc(c_bytes);
    tt_fill_random(a, (long)(m_max * w.k), 98);
    void *a16 = to_dtype(a, m_max * w.k, TM_F16);
    void *da = cu_upload(a, (size_t)(m_max * w.k) * 4), *da16 = cu_upload(a16, (size_t)(m_max * w.k) * 2);
    void *dc = cu_upload(NULL, c_bytes), *dws = cu_upload(NULL, ws_bytes);
    tmi_exec gpu = {.backend = TM_BACKEND_CUDA, .blas = blas, .workspace = dws, .workspace_bytes = ws_bytes};
    tmi_gemm_args g = {.n = w.n, .k = w.k, .lda = w.k, .b = w.db, .b_dtype = TM_F16, .ldb = w.n, .c = dc, .ldc = w.n};
    static const char *const env[] = {NULL, "0", "3", "4", "16"};
    for (int v = 0; v < 4 * 5 && da && da16 && dc && dws; v++) {
        const char *e = env[v % 5];
        g.m = v / 5 % 2 ? 4 : 1;
        g.a_dtype = v / 10 ? TM_F16 : TM_F32;
        g.a = g.a_dtype == TM_F32 ? da : da16;
        if (e) setenv("TMRUN_GEMM_SMALL_M", e, 1);
        else unsetenv("TMRUN_GEMM_SMALL_M");
        int cut = e ? atoi(e) : g.a_dtype == TM_F32 ? TMI_GEMM_SMALL_M_DEFAULT : TMI_GEMM_SMALL_M_DEFAULT_A16;
        tmi_gemm_path want = g.m <= cut ? TMI_GEMM_PATH_SMALL_M : TMI_GEMM_PATH_BLAS;
        size_t bytes = (size_t)(g.m * w.n) * 4;
        if (CHECK_STATUS(tmi_gemm_cuda(&gpu, &g), TM_OK) && cu_download(c1, dc, bytes) &&
            CHECK_STATUS(tmi_gemm_cuda_path(&gpu, &g, want), TM_OK) && cu_download(c2, dc, bytes) &&
            !CHECK(memcmp(c1, c2, bytes) == 0))
            fprintf(stderr, "  m=%lld A %s TMRUN_GEMM_SMALL_M=%s: AUTO differs from the %s path\n", (long long)g.m,
                    tm_dtype_name(g.a_dtype), e ? e : "(unset)", want == TMI_GEMM_PATH_SMALL_M ? "small-m" : "cuBLAS");
    }
    setenv("TMRUN_GEMM_SMALL_M", "17", 1);
    CHECK_STATUS(tmi_gemm_cuda(&gpu, &g), TM_ERR_INVALID_ARG);
    CHECK(strstr(tm_last_error(), "TMRUN_GEMM_SMALL_M must be an integer in [0, 16], got \"17\"") != NULL);
    setenv("TMRUN_GEMM_SMALL_M", "x", 1);
    CHECK_STATUS(tmi_gemm_cuda(&gpu, &g), TM_ERR_INVALID_ARG);
    unsetenv("TMRUN_GEMM_SMALL_M");
    tmi_cuda_free(da);
    tmi_cuda_free(da16);
    tmi_cuda_free(dc);
    tmi_cuda_free(dws);
    free(a); free(a16); free(c1); free(c2);
    weights_free(&w);
}

/* A decode step (ex->tune) times cuBLASLt's kernels once for a new 16-bit shape whose
 * m is a power of two and keeps the fastest: its C is within fp32 summation order of
 * cublasGemmEx's ($TMRUN_GEMM_TUNE=0), the same bits at every later call, with and
 * without accumulate, and the chosen kernel serves the shape when tune is off too. */
static void test_cuda_gemm_tuned(void)
{
    cu_weights w;
    if (!weights_make(&w, 1536, 2048, 2048, TM_BF16, 71)) {
        weights_free(&w);
        return;
    }
    const int64_t m_max = 64;
    size_t c_bytes = (size_t)(m_max * w.n) * 4;
    float *a = malloc((size_t)(m_max * w.k) * 4), *c0 = malloc(c_bytes), *ref = malloc(c_bytes);
    float *got = malloc(c_bytes), *again = malloc(c_bytes);
    tt_fill_random(a, (long)(m_max * w.k), 72);
    tt_fill_random(c0, (long)(m_max * w.n), 73);
    void *a16 = to_dtype(a, m_max * w.k, TM_BF16);
    void *da = cu_upload(a16, (size_t)(m_max * w.k) * 2), *dc = cu_upload(NULL, c_bytes);
    void *dws = cu_upload(NULL, c_bytes); /* the timing's scratch C */
    tmi_exec gpu = {.backend = TM_BACKEND_CUDA, .blas = blas, .workspace = dws, .workspace_bytes = c_bytes};
    tmi_gemm_args g = {.k = w.k, .n = w.n, .a = da, .a_dtype = TM_BF16, .lda = w.k, .b = w.db, .b_dtype = TM_BF16,
                       .ldb = w.ldb, .c = dc, .ldc = w.n};
    static const int64_t ms[] = {2, 8, 64};
    int start = tmi_gemm_cuda_timed_shapes(blas);
    for (int v = 0; v < 6 && a && c0 && ref && got && again && da && dc && dws; v++) {
        g.m = ms[v % 3];
        g.accumulate = v / 3;
        size_t bytes = (size_t)(g.m * w.n) * 4;
        setenv("TMRUN_GEMM_TUNE", "0", 1);
        gpu.tune = 0;
        int ok = CHECK_STATUS(tmi_cuda_memcpy(dc, c0, bytes, 0), TM_OK) &&
                 CHECK_STATUS(tmi_gemm_cuda_path(&gpu, &g, TMI_GEMM_PATH_BLAS), TM_OK) && cu_download(ref, dc, bytes);
        unsetenv("TMRUN_GEMM_TUNE");
        gpu.tune = 1;
        int timed = tmi_gemm_cuda_timed_shapes(blas);
        ok = ok && CHECK_STATUS(tmi_cuda_memcpy(dc, c0, bytes, 0), TM_OK) &&
             CHECK_STATUS(tmi_gemm_cuda_path(&gpu, &g, TMI_GEMM_PATH_BLAS), TM_OK) && cu_download(got, dc, bytes);
        ok = ok && CHECK(tmi_gemm_cuda_timed_shapes(blas) == timed + 1); /* a new shape: timed once */
        gpu.tune = 0; /* the shape is known now: its kernel runs without tune */
        ok = ok && CHECK_STATUS(tmi_cuda_memcpy(dc, c0, bytes, 0), TM_OK) &&
             CHECK_STATUS(tmi_gemm_cuda_path(&gpu, &g, TMI_GEMM_PATH_BLAS), TM_OK) && cu_download(again, dc, bytes);
        if (!ok) continue;
        double rel = cu_rel_err(got, ref, g.m, w.n, w.n);
        if (!CHECK(rel < 1e-5) || !CHECK(memcmp(got, again, bytes) == 0))
            fprintf(stderr, "  tuned m=%lld accumulate=%d: rel %.3g to cublasGemmEx, repeat %s\n", (long long)g.m,
                    g.accumulate, rel, memcmp(got, again, bytes) ? "DIFFERS" : "same");
    }
    CHECK(tmi_gemm_cuda_timed_shapes(blas) == start + 6); /* the repeats found their shapes */
    g.m = 3; /* not a power of two: cublasGemmEx, no timing */
    gpu.tune = 1;
    if (da && dc && dws) CHECK_STATUS(tmi_gemm_cuda_path(&gpu, &g, TMI_GEMM_PATH_BLAS), TM_OK);
    CHECK(tmi_gemm_cuda_timed_shapes(blas) == start + 6);
    tmi_cuda_free(da);
    tmi_cuda_free(dc);
    tmi_cuda_free(dws);
    free(a), free(a16), free(c0), free(ref), free(got), free(again);
    weights_free(&w);
}

/* With defer, the small-m kernel leaves its k splits in the workspace and C as it
 * was (NaN, or the old C when accumulating), and those partials summed in split
 * order, plus the bias, plus the old C when accumulating, are the bits the reduce
 * kernel writes without defer; cuBLAS never defers. */
static void test_cuda_gemm_defer(void)
{
    static const int64_t shapes[][2] = {{4096, 4096}, {4096, 12288}, {11008, 4096}, {1000, 296}}; /* k, n */
    for (size_t t = 0; t < sizeof shapes / sizeof *shapes; t++)
        for (int acc = 0; acc < 2; acc++) {
            cu_weights w;
            if (!weights_make(&w, shapes[t][0], shapes[t][1], shapes[t][1], TM_F16, 91 + t)) {
                weights_free(&w);
                continue;
            }
            const int64_t m = 1, k = w.k, n = w.n;
            size_t c_bytes = (size_t)(m * n) * 4, ws_bytes = tmi_gemm_cuda_workspace(m, k, TM_F16);
            float *af = malloc((size_t)k * 4), *c0 = malloc(c_bytes), *ref = malloc(c_bytes), *got = malloc(c_bytes);
            float *part = malloc(ws_bytes);
            tt_fill_random(af, (long)k, 92 + t);
            void *a16 = to_dtype(af, k, TM_F16);
            void *da = cu_upload(a16, (size_t)k * 2), *dc = cu_upload(NULL, c_bytes), *dws = cu_upload(NULL, ws_bytes);
            int ok = CHECK(af && c0 && ref && got && part && a16 && da && dc && dws);
            if (ok && acc) tt_fill_random(c0, (long)(m * n), 93 + t);
            else if (ok) cu_fill_nan(c0, m * n);
            tmi_exec gpu = {.backend = TM_BACKEND_CUDA, .blas = blas, .workspace = dws, .workspace_bytes = ws_bytes};
            tmi_gemm_args g = {.m = m, .n = n, .k = k, .a = da, .a_dtype = TM_F16, .lda = k, .b = w.db,
                               .b_dtype = TM_F16, .ldb = w.ldb, .bias = w.dbias, .bias_dtype = TM_F16, .c = dc,
                               .ldc = n, .accumulate = acc};
            ok = ok && CHECK_STATUS(tmi_cuda_memcpy(dc, c0, c_bytes, 0), TM_OK) &&
                 CHECK_STATUS(tmi_gemm_cuda_path(&gpu, &g, TMI_GEMM_PATH_SMALL_M), TM_OK) &&
                 cu_download(ref, dc, c_bytes);
            tmi_split_sums s = {.splits = -1};
            g.defer = &s;
            ok = ok && CHECK_STATUS(tmi_cuda_memcpy(dc, c0, c_bytes, 0), TM_OK) &&
                 CHECK_STATUS(tmi_gemm_cuda_path(&gpu, &g, TMI_GEMM_PATH_SMALL_M), TM_OK);
            if (ok && CHECK(s.splits > 1) &&
                CHECK(s.part == dws && s.m == m && s.n == n && s.c == dc && s.ldc == n && s.accumulate == acc) &&
                cu_download(got, dc, c_bytes) && cu_download(part, dws, (size_t)s.splits * c_bytes)) {
                int64_t written = 0, differ = 0;
                for (int64_t j = 0; j < n; j++) {
                    written += memcmp(&got[j], &c0[j], 4) != 0;
                    float sum = 0.0f;
                    for (int32_t q = 0; q < s.splits; q++) sum += part[(int64_t)q * n + j];
                    sum += tmi_load_f32(w.bias, TM_F16, j);
                    if (acc) sum = c0[j] + sum;
                    differ += memcmp(&sum, &ref[j], 4) != 0;
                }
                if (!CHECK(written == 0) || !CHECK(differ == 0))
                    fprintf(stderr, "  defer k=%lld n=%lld acc=%d: %d splits, %lld of C written, %lld sums differ\n",
                            (long long)k, (long long)n, acc, s.splits, (long long)written, (long long)differ);
            }
            s.splits = -1;
            ok = ok && CHECK_STATUS(tmi_gemm_cuda_path(&gpu, &g, TMI_GEMM_PATH_BLAS), TM_OK) && CHECK(s.splits == 0);
            tmi_cuda_free(da), tmi_cuda_free(dc), tmi_cuda_free(dws);
            free(af), free(c0), free(ref), free(got), free(part), free(a16);
            weights_free(&w);
        }
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
    CHECK_STATUS(tmi_gemm_cuda_path(&gpu, &g, TMI_GEMM_PATH_SMALL_M), TM_ERR_UNSUPPORTED); /* fp32 B */
    g.a_dtype = TM_F16;
    CHECK_STATUS(tmi_gemm_cuda(&gpu, &g), TM_ERR_INVALID_ARG); /* 16-bit A, fp32 B */
    CHECK(strstr(tm_last_error(), "a dtype must be F32 or equal to b dtype (F32), got F16") != NULL);
    g.b_dtype = TM_BF16;
    CHECK_STATUS(tmi_gemm_cuda(&gpu, &g), TM_ERR_INVALID_ARG);
    g.a_dtype = TM_F32;
    g.m = TMI_GEMM_SMALL_M_LIMIT + 1;
    g.ldb = 8;
    CHECK_STATUS(tmi_gemm_cuda_path(&gpu, &g, TMI_GEMM_PATH_SMALL_M), TM_ERR_UNSUPPORTED);
    g.m = 2;
    CHECK_STATUS(tmi_gemm_cuda_path(&gpu, &g, (tmi_gemm_path)7), TM_ERR_INVALID_ARG);
    g.b_dtype = TM_I8;
    CHECK_STATUS(tmi_gemm_cuda(&gpu, &g), TM_ERR_INVALID_ARG);
    g.b_dtype = TM_F16;
    g.ldc = 3;
    CHECK_STATUS(tmi_gemm_cuda(&gpu, &g), TM_ERR_INVALID_ARG);
    g.ldc = 4;
    gpu.blas = blas;
    CHECK_STATUS(tmi_gemm_cuda_path(&gpu, &g, TMI_GEMM_PATH_BLAS), TM_ERR_INVALID_ARG); /* no room to round A */
    CHECK(strstr(tm_last_error(), "workspace") != NULL);
    /* sized for the largest shape serves every smaller one */
    CHECK(tmi_gemm_cuda_workspace(2, 4, TM_F32) == 0 && tmi_gemm_cuda_workspace(2, 4, TM_F16) >= 16);
    CHECK(tmi_gemm_cuda_workspace(16, 11008, TM_F16) >= tmi_gemm_cuda_workspace(8, 4096, TM_BF16));
    CHECK(tmi_gemm_cuda_workspace(17, 4096, TM_F16) >= tmi_gemm_cuda_workspace(16, 4096, TM_F16));
    CHECK(tmi_gemm_cuda_workspace(4096, 4096, TM_F16) >= tmi_gemm_cuda_workspace(4096, 1024, TM_F16));
    const tmi_ops *ops = tmi_ops_get(TM_BACKEND_CUDA);
    CHECK(ops && ops->gemm == tmi_gemm_cuda);
}

/* ---- CUTEST_BENCH=1 ----------------------------------------------------------------- */

enum { BENCH_REPS = 50, BENCH_MIN_COPIES = 4 };
#define BENCH_ROTATE_BYTES (400.0 * 1024 * 1024) /* 8x the H200's 50 MB L2 */

/* Median ms of one path over the copies of B; 0 when the path cannot run it. */
static double bench_path(void **dbs, int copies, const tmi_gemm_args *g0, tmi_gemm_path path, void *dws,
                         size_t ws_bytes)
{
    tmi_gemm_args args[64];
    for (int i = 0; i < copies; i++) {
        args[i] = *g0;
        args[i].b = dbs[i];
    }
    tmi_exec gpu = {.backend = TM_BACKEND_CUDA, .blas = blas, .workspace = dws, .workspace_bytes = ws_bytes};
    double ms = 0;
    return CHECK_STATUS(tmi_gemm_cuda_time(&gpu, args, copies, path, BENCH_REPS, &ms), TM_OK) ? ms : 0;
}

static void bench_shape(size_t s, tm_dtype dt)
{
    int64_t k = llama_shapes[s][0], n = llama_shapes[s][1];
    double bytes = (double)k * n * 2;
    int copies = (int)(BENCH_ROTATE_BYTES / bytes) + 1;
    if (copies < BENCH_MIN_COPIES) copies = BENCH_MIN_COPIES;
    if (copies > 64) copies = 64;
    cu_weights w;
    void *dbs[64] = {0};
    int ok = weights_make(&w, k, n, n, dt, 7 + s);
    for (int i = 0; ok && i < copies; i++) ok = (dbs[i] = cu_upload(w.b, (size_t)bytes)) != NULL;
    static const int64_t ms[] = {1, 4, 16};
    for (size_t mi = 0; ok && mi < 3; mi++) {
        int64_t m = ms[mi];
        size_t ws_bytes = tmi_gemm_cuda_workspace(m, k, dt);
        float *a = malloc((size_t)(m * k) * 4);
        tt_fill_random(a, (long)(m * k), 11 + mi);
        void *a16 = to_dtype(a, m * k, dt);
        void *da32 = cu_upload(a, (size_t)(m * k) * 4), *da16 = cu_upload(a16, (size_t)(m * k) * 2);
        void *dc = cu_upload(NULL, (size_t)(m * n) * 4), *dws = cu_upload(NULL, ws_bytes);
        double t[4] = {0}; /* small A16, small A32, cuBLAS A16, cuBLAS A32 */
        if (da32 && da16 && dc && dws)
            for (int v = 0; v < 4; v++) {
                tmi_gemm_args g = {.m = m, .n = n, .k = k, .a = v & 1 ? da32 : da16, .a_dtype = v & 1 ? TM_F32 : dt,
                                   .lda = k, .b_dtype = dt, .ldb = n, .bias = NULL, .c = dc, .ldc = n};
                t[v] = bench_path(dbs, copies, &g, v < 2 ? TMI_GEMM_PATH_SMALL_M : TMI_GEMM_PATH_BLAS, dws, ws_bytes);
            }
        printf("bench %-7s %-4s k=%5lld n=%5lld m=%2lld copies=%2d |", llama_names[s], tm_dtype_name(dt), (long long)k,
               (long long)n, (long long)m, copies);
        for (int v = 0; v < 4; v++) printf(" %7.1f us %6.0f GB/s |", t[v] * 1e3, t[v] > 0 ? bytes / (t[v] * 1e-3) / 1e9 : 0);
        printf("\n");
        tmi_cuda_free(da32);
        tmi_cuda_free(da16);
        tmi_cuda_free(dc);
        tmi_cuda_free(dws);
        free(a);
        free(a16);
    }
    for (int i = 0; i < copies; i++) tmi_cuda_free(dbs[i]);
    weights_free(&w);
}

static void bench_llama7b(void)
{
    printf("bench columns: small-m (A 16-bit) | small-m (A fp32) | cuBLAS (A 16-bit) | cuBLAS (A fp32, rounded "
           "first); median of %d, B rotated over copies (>= %d, >= 400 MB)\n", BENCH_REPS, BENCH_MIN_COPIES);
    for (size_t s = 0; s < sizeof llama_shapes / sizeof *llama_shapes; s++) bench_shape(s, TM_F16);
    bench_shape(0, TM_BF16);
}

int main(void)
{
    if (tm_cuda_device_count() == 0) {
        tt_skip("no CUDA device");
        return tt_finish();
    }
    if (tmi_pool_create(0, &pool) != TM_OK || tmi_gemm_cuda_blas_create(&blas) != TM_OK) {
        fprintf(stderr, "setup: %s\n", tm_last_error());
        return 1;
    }
    const char *bench = getenv("CUTEST_BENCH");
    if (bench && strcmp(bench, "1") == 0 && getenv("CUTEST_BENCH_ONLY")) {
        RUN(bench_llama7b);
    } else {
        RUN(test_cuda_gemm_args);
        RUN(test_cuda_gemm_auto_path);
        RUN(test_cuda_gemm_tuned);
        RUN(test_cuda_gemm_defer);
        RUN(test_cuda_gemm_shapes);
        RUN(test_cuda_gemm_llama7b);
        for (int kind = 0; kind < N_KINDS; kind++)
            for (int dt = 0; dt < 3; dt++)
                if (worst[kind][dt] > 0) printf("worst gemm %s, B %s: %.3g\n", kind_names[kind], tm_dtype_name((tm_dtype)dt), worst[kind][dt]);
        if (bench && strcmp(bench, "1") == 0) RUN(bench_llama7b);
    }
    tmi_gemm_cuda_blas_destroy(blas);
    tmi_pool_destroy(pool);
    return tt_finish();
}
